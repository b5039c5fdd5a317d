//! Loading CSV files: schema inference, splits, fingerprints, and every bad-input message.

mod common;

use common::sample;

use kiln::data::{ColumnKind, DataError, DataSpec, Task, TaskOverride, prepare, prepare_bytes};

fn load(text: &[u8]) -> Result<kiln::data::PreparedData, DataError> {
    prepare_bytes(&DataSpec::new("bad.csv"), text)
}

fn message(text: &[u8]) -> String {
    match load(text) {
        Ok(_) => panic!("expected an error for {:?}", String::from_utf8_lossy(text)),
        Err(error) => error.to_string(),
    }
}

#[test]
fn iris_is_classification_with_three_balanced_classes() {
    let data = prepare(&DataSpec::new(sample("iris.csv"))).expect("iris loads");
    assert_eq!(data.schema.task(), Task::Classification);
    assert_eq!(data.schema.target.name, "species");
    assert_eq!(
        data.schema.target.classes,
        ["setosa", "versicolor", "virginica"]
    );
    assert_eq!(data.input_width(), 4);
    assert_eq!(data.train.rows + data.valid.rows, 150);
    assert_eq!(data.valid.rows, 30);
    // Stratified: each class keeps its share in validation.
    for class in 0..3 {
        let count = data.valid.labels.iter().filter(|&&l| l == class).count();
        assert_eq!(count, 10, "class {class}");
    }
    assert_eq!(data.fingerprint.class_counts.values().sum::<usize>(), 150);
}

#[test]
fn diabetes_is_regression_with_standardised_target() {
    let data = prepare(&DataSpec::new(sample("diabetes.csv"))).expect("diabetes loads");
    assert_eq!(data.schema.task(), Task::Regression);
    assert_eq!(data.input_width(), 10);
    assert!(data.preprocessor.target_std > 10.0);
    let mean: f32 = data.train.values.iter().sum::<f32>() / data.train.rows as f32;
    assert!(mean.abs() < 1e-4, "train targets are centred, mean {mean}");
}

#[test]
fn standardisation_uses_training_rows_only() {
    let data = prepare(&DataSpec::new(sample("iris.csv"))).expect("iris loads");
    for column in 0..data.input_width() {
        let values: Vec<f32> = (0..data.train.rows)
            .map(|r| data.train.row(r)[column])
            .collect();
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        assert!(mean.abs() < 1e-4, "column {column} training mean {mean}");
    }
    let valid_mean: f32 = (0..data.valid.rows)
        .map(|r| data.valid.row(r)[0])
        .sum::<f32>()
        / data.valid.rows as f32;
    assert!(
        valid_mean.abs() > 1e-6,
        "validation rows are not re-centred"
    );
}

#[test]
fn split_and_fingerprint_are_deterministic_and_seeded() {
    let spec = DataSpec::new(sample("iris.csv"));
    let a = prepare(&spec).unwrap();
    let b = prepare(&spec).unwrap();
    assert_eq!(a.split, b.split);
    assert_eq!(a.fingerprint, b.fingerprint);
    let mut other_seed = spec.clone();
    other_seed.split_seed = 7;
    let c = prepare(&other_seed).unwrap();
    assert_ne!(a.split.valid, c.split.valid);
    assert_ne!(
        a.fingerprint.id, c.fingerprint.id,
        "options are part of the fingerprint"
    );
    assert_eq!(a.fingerprint.content_sha256, c.fingerprint.content_sha256);
}

#[test]
fn categorical_features_are_one_hot_encoded() {
    let text = b"color,size,label\nred,1,a\nblue,2,b\nred,3,a\ngreen,4,b\nblue,5,a\nred,6,b\ngreen,7,a\nblue,8,b\nred,9,a\ngreen,10,b\n";
    let data = load(text).unwrap();
    assert!(
        matches!(&data.schema.features[0].kind, ColumnKind::Categorical { categories } if categories == &["blue", "green", "red"])
    );
    assert_eq!(data.input_width(), 4);
    assert_eq!(
        data.preprocessor.input_names()[..3],
        ["color=blue", "color=green", "color=red"]
    );
}

#[test]
fn integer_targets_with_few_values_are_classes_unless_overridden() {
    let text = b"x,y\n1,0\n2,1\n3,0\n4,1\n5,0\n6,1\n7,0\n8,1\n9,0\n10,1\n";
    assert_eq!(load(text).unwrap().schema.task(), Task::Classification);
    let mut spec = DataSpec::new("y.csv");
    spec.task = TaskOverride::Regression;
    assert_eq!(
        prepare_bytes(&spec, text).unwrap().schema.task(),
        Task::Regression
    );
}

#[test]
fn ragged_row_names_line_and_counts() {
    let text = message(b"a,b,c\n1,2,3\n4,5\n6,7,8\n");
    assert!(text.contains("bad.csv"), "{text}");
    assert!(text.contains("line 3"), "{text}");
    assert!(
        text.contains("2 cells") && text.contains("3 columns"),
        "{text}"
    );
}

#[test]
fn non_numeric_cell_in_numeric_column_names_line_column_and_value() {
    let text = message(b"a,b,label\n1,2,x\n3,4,y\n5,oops,x\n7,8,y\n9,10,x\n11,12,y\n");
    assert!(text.contains("line 4"), "{text}");
    assert!(text.contains("'b'"), "{text}");
    assert!(text.contains("'oops'"), "{text}");
    assert!(text.contains("not a number"), "{text}");
}

#[test]
fn empty_file() {
    let text = message(b"");
    assert!(text.contains("empty"), "{text}");
}

#[test]
fn header_only() {
    let text = message(b"a,b,label\n");
    assert!(text.contains("no data rows"), "{text}");
}

#[test]
fn single_class() {
    let text = message(b"a,label\n1,x\n2,x\n3,x\n");
    assert!(text.contains("single class"), "{text}");
    assert!(text.contains("'x'"), "{text}");
}

#[test]
fn non_utf8_names_the_line() {
    let text = message(b"a,label\n1,x\n2,\xff\xfe\n");
    assert!(text.contains("UTF-8"), "{text}");
    assert!(text.contains("line 3"), "{text}");
}

#[test]
fn missing_cells_are_reported_or_imputed_on_request() {
    let csv = b"a,b,label\n1,2,x\n3,,y\n5,6,x\n7,8,y\n9,10,x\n11,12,y\n13,14,x\n15,16,y\n17,18,x\n19,20,y\n";
    let text = message(csv);
    assert!(text.contains("missing"), "{text}");
    assert!(text.contains("line 3") && text.contains("'b'"), "{text}");
    let mut spec = DataSpec::new("bad.csv");
    spec.impute_missing = true;
    let data = prepare_bytes(&spec, csv).expect("imputation fills the gap");
    assert!(
        data.train
            .inputs
            .iter()
            .chain(&data.valid.inputs)
            .all(|v| v.is_finite())
    );
}

#[test]
fn missing_target_column_lists_the_columns() {
    let mut spec = DataSpec::new(sample("iris.csv"));
    spec.target = Some("kind".to_string());
    let text = prepare(&spec).unwrap_err().to_string();
    assert!(
        text.contains("no column named 'kind'") && text.contains("species"),
        "{text}"
    );
}

#[test]
fn too_many_categories_are_rejected() {
    let mut csv = String::from("id,label\n");
    for row in 0..100 {
        csv.push_str(&format!("name{row},{}\n", row % 2));
    }
    let text = message(csv.as_bytes());
    assert!(
        text.contains("'id'") && text.contains("100 distinct"),
        "{text}"
    );
}

#[test]
fn missing_file_names_the_path() {
    let text = prepare(&DataSpec::new("/nonexistent/data.csv"))
        .unwrap_err()
        .to_string();
    assert!(text.contains("/nonexistent/data.csv"), "{text}");
}
