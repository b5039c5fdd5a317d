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
fn the_fitted_statistics_are_those_of_the_training_rows_in_any_order() {
    // Enough rows and columns that the columns are fitted on several threads.
    let mut text = String::from("a,b,c,d,e,label\n");
    for row in 0..2000u32 {
        let cells: Vec<String> = (0..5u32)
            .map(|column| {
                format!(
                    "{:.4}",
                    f64::from((row * 37 + column * 11) % 97) / 7.0 - 3.0
                )
            })
            .collect();
        text.push_str(&format!(
            "{},{}\n",
            cells.join(","),
            ["x", "y"][(row % 2) as usize]
        ));
    }
    let data = load(text.as_bytes()).expect("loads");
    let kiln::data::LoadedData::Table(table) = &data.loaded else {
        panic!("a table");
    };
    for (column, transform) in data.preprocessor.columns.iter().enumerate() {
        let kiln::data::ColumnTransform::Standardize { mean, std, .. } = transform else {
            panic!("numeric columns");
        };
        let values: Vec<f64> = data
            .split
            .train
            .iter()
            // Numeric columns are held as f32: their text reads back as the same f32.
            .map(|&row| f64::from(table.cell(row, column).parse::<f32>().unwrap()))
            .collect();
        let expected_mean = values.iter().sum::<f64>() / values.len() as f64;
        let expected_std = (values
            .iter()
            .map(|v| (v - expected_mean).powi(2))
            .sum::<f64>()
            / values.len() as f64)
            .sqrt();
        assert!(
            (mean - expected_mean).abs() < 1e-12,
            "column {column}: {mean} vs {expected_mean}"
        );
        assert!(
            (std - expected_std).abs() < 1e-12,
            "column {column}: {std} vs {expected_std}"
        );
    }
    // The first rows come back as written; further down, numbers as the shortest text of
    // their f32 value.
    assert_eq!(table.row_count(), 2000);
    assert_eq!(table.cell(1999, 5), "y");
    assert_eq!(
        table.row(0).iter().collect::<Vec<_>>(),
        ["-3.0000", "-1.4286", "0.1429", "1.7143", "3.2857", "x"]
    );
}

#[test]
fn large_tables_encode_on_several_threads_to_the_same_matrix_and_the_same_errors() {
    let mut text = String::from("a,b,label\n");
    for row in 0..30_000u32 {
        text.push_str(&format!(
            "{},{},{}\n",
            row % 101,
            (row * 7) % 13,
            ["x", "y"][(row % 2) as usize]
        ));
    }
    let data = load(text.as_bytes()).expect("loads");
    let kiln::data::LoadedData::Table(table) = &data.loaded else {
        panic!("a table");
    };
    let rows: Vec<usize> = (0..table.row_count()).collect();
    let whole = data
        .preprocessor
        .encode_inputs(table, &rows, false)
        .unwrap();
    // Pieces below the parallel threshold are encoded on one thread.
    let in_pieces: Vec<f32> = rows
        .chunks(1000)
        .flat_map(|piece| {
            data.preprocessor
                .encode_inputs(table, piece, false)
                .unwrap()
        })
        .collect();
    assert_eq!(whole, in_pieces);

    // A bad cell deep in a large file is named by its line, as in a small one.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let cells = lines[29_001].split_once(',').unwrap().1.to_string();
    lines[29_001] = format!("oops,{cells}");
    let bad_text = lines.join("\n") + "\n";
    // At loading, the schema names it; encoding a new file (predicting) must name it too.
    let message = message(bad_text.as_bytes());
    assert!(
        message.contains("oops") && message.contains("29002"),
        "{message}"
    );
    let bad_table =
        kiln::data::parse_csv_bytes(std::path::Path::new("new.csv"), bad_text.as_bytes()).unwrap();
    let error = data
        .preprocessor
        .encode_inputs(&bad_table, &rows, false)
        .unwrap_err()
        .to_string();
    assert!(error.contains("oops") && error.contains("29002"), "{error}");
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
    // (Sizes out of order: 1, 2, …, 10 on the rows in turn would be row numbers, left out.)
    let text = b"color,size,label\nred,3,a\nblue,1,b\nred,4,a\ngreen,1,b\nblue,5,a\nred,9,b\ngreen,2,a\nblue,6,b\nred,5,a\ngreen,3,b\n";
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
    assert!(text.contains("not usable numbers"), "{text}");
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

// --- Typos, spelled-out NaN/inf, column choices and line numbers (issue 14, part 1) ---

fn numbers_with(rows: usize, bad: &[(usize, &str)]) -> String {
    let mut text = String::from("x,y,label\n");
    for row in 0..rows {
        let x = bad
            .iter()
            .find(|(at, _)| *at == row)
            .map_or_else(|| format!("{}.5", row % 7), |(_, cell)| cell.to_string());
        text.push_str(&format!(
            "{x},{},{}\n",
            row % 5,
            if row % 2 == 0 { "a" } else { "b" }
        ));
    }
    text
}

fn spec_with(columns: kiln::data::ColumnChoices) -> DataSpec {
    DataSpec {
        columns,
        ..DataSpec::new("bad.csv")
    }
}

#[test]
fn a_small_table_with_two_typos_stays_numeric_and_names_them() {
    // 20 rows, 2 typos: the column is numeric; the typos are an error naming each and the count.
    let text = numbers_with(20, &[(3, "4..2"), (11, "abc")]);
    let error = load(text.as_bytes()).expect_err("refused");
    let DataError::NonNumericCells {
        column,
        count,
        cells,
        ..
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!((column.as_str(), *count), ("x", 2));
    assert_eq!(
        cells.iter().map(|c| c.line).collect::<Vec<_>>(),
        vec![5, 13]
    );
    let message = error.to_string();
    for part in [
        "line 5: '4..2'",
        "line 13: 'abc'",
        "--as-missing x",
        "--categorical x",
    ] {
        assert!(message.contains(part), "{message}");
    }
}

#[test]
fn many_bad_cells_show_the_first_few_and_a_count() {
    let bad: Vec<(usize, String)> = (0..9).map(|i| (i * 2, format!("oops{i}"))).collect();
    let bad: Vec<(usize, &str)> = bad.iter().map(|(at, cell)| (*at, cell.as_str())).collect();
    let message = message(numbers_with(30, &bad).as_bytes());
    assert!(
        message.contains("9 cell(s)") && message.contains("and 4 more"),
        "{message}"
    );
}

#[test]
fn inf_and_numbers_beyond_f32_are_refused_with_line_and_column() {
    // (`NaN` is a missing marker, as pandas and NumPy write one: see csv_reading.rs.)
    for (cell, line) in [("inf", 4), ("-Infinity", 4), ("1e39", 4), ("-4e38", 4)] {
        let text = numbers_with(6, &[(2, cell)]);
        let message = message(text.as_bytes());
        assert!(
            message.contains(&format!("line {line}: '{cell}'")) && message.contains("column 'x'"),
            "{cell}: {message}"
        );
    }
    // A column of nothing but spelled-out non-numbers is numeric in intent too.
    let message = message(b"x,label\nNaN,a\ninf,b\nNaN,a\ninf,b\nNaN,a\n");
    assert!(message.contains("column 'x' is numeric"), "{message}");
}

#[test]
fn treating_non_numbers_as_missing_fills_them_with_the_training_mean() {
    let text = numbers_with(20, &[(3, "NaN"), (11, "abc")]);
    let data = prepare_bytes(
        &spec_with(kiln::data::ColumnChoices {
            as_missing: vec!["x".to_string()],
            ..Default::default()
        }),
        text.as_bytes(),
    )
    .expect("loads with the typos as missing");
    assert_eq!(data.schema.features[0].kind, ColumnKind::Numeric);
    assert!(
        data.train
            .inputs
            .iter()
            .chain(&data.valid.inputs)
            .all(|v| v.is_finite())
    );
    // Recorded in the preprocessing, so predictions do the same.
    assert_eq!(data.preprocessor.choices.as_missing, ["x"]);
}

#[test]
fn declaring_a_column_categorical_reads_its_values_as_categories() {
    let text = numbers_with(20, &[(3, "L")]);
    let data = prepare_bytes(
        &spec_with(kiln::data::ColumnChoices {
            categorical: vec!["x".to_string()],
            ..Default::default()
        }),
        text.as_bytes(),
    )
    .expect("loads as categories");
    let ColumnKind::Categorical { categories } = &data.schema.features[0].kind else {
        panic!("x is categorical");
    };
    assert!(categories.contains(&"L".to_string()));
}

#[test]
fn a_mostly_text_column_with_some_numbers_is_categorical_with_a_warning() {
    let data = load(b"x,y,label\nred,1,a\nblue,2,b\n3,3,a\nred,4,b\nblue,5,a\nred,6,b\n").unwrap();
    assert!(matches!(
        data.schema.features[0].kind,
        ColumnKind::Categorical { .. }
    ));
    assert!(
        data.warnings
            .iter()
            .any(|w| w.contains("column 'x' is read as categories")),
        "{:?}",
        data.warnings
    );
}

#[test]
fn an_id_like_column_warns_and_can_be_excluded() {
    let mut text = String::from("name,x,label\n");
    for row in 0..12 {
        text.push_str(&format!("person{row},{row}.5,{}\n", row % 2));
    }
    let data = load(text.as_bytes()).unwrap();
    assert!(
        data.warnings
            .iter()
            .any(|w| w.contains("column 'name'") && w.contains("--exclude name")),
        "{:?}",
        data.warnings
    );
    let data = prepare_bytes(
        &spec_with(kiln::data::ColumnChoices {
            exclude: vec!["name".to_string()],
            ..Default::default()
        }),
        text.as_bytes(),
    )
    .unwrap();
    assert!(data.warnings.is_empty(), "{:?}", data.warnings);
    assert_eq!(data.input_width(), 1);
    assert_eq!(data.preprocessor.choices.exclude, ["name"]);
    // Too many distinct values to one-hot: the error suggests excluding the column.
    let mut text = String::from("name,x,label\n");
    for row in 0..40 {
        text.push_str(&format!("person{row},{row}.5,{}\n", row % 2));
    }
    let message = message(text.as_bytes());
    assert!(message.contains("--exclude name"), "{message}");
}

#[test]
fn column_choices_must_name_columns_of_the_file() {
    for columns in [
        kiln::data::ColumnChoices {
            exclude: vec!["nope".to_string()],
            ..Default::default()
        },
        kiln::data::ColumnChoices {
            exclude: vec!["label".to_string()],
            ..Default::default()
        },
        kiln::data::ColumnChoices {
            categorical: vec!["x".to_string()],
            as_missing: vec!["x".to_string()],
            ..Default::default()
        },
    ] {
        let result = prepare_bytes(
            &spec_with(columns.clone()),
            numbers_with(10, &[]).as_bytes(),
        );
        assert!(result.is_err(), "{columns:?} accepted");
    }
}

#[test]
fn a_numeric_target_with_a_typo_is_not_turned_into_classes() {
    let mut text = String::from("x,price\n");
    for row in 0..20 {
        let price = if row == 7 {
            "12;5".to_string()
        } else {
            format!("{}.25", row * 3)
        };
        text.push_str(&format!("{row},{price}\n"));
    }
    let message = message(text.as_bytes());
    assert!(
        message.contains("target column 'price'") && message.contains("line 9: '12;5'"),
        "{message}"
    );
}

#[test]
fn crlf_files_name_the_line_an_editor_shows() {
    let text = numbers_with(8, &[(4, "x7")]).replace('\n', "\r\n");
    let typo = message(text.as_bytes());
    // Header is line 1, row 0 is line 2, so row 4 is line 6.
    assert!(typo.contains("line 6: 'x7'"), "{typo}");
    assert!(!typo.contains("line 5"), "{typo}");
    // A ragged row, a missing target and an unreadable byte, too.
    let ragged = message(b"a,b,label\r\n1,2,x\r\n3,4\r\n5,6,y\r\n");
    assert!(ragged.contains("line 3 has 2 cells"), "{ragged}");
    let missing = message(b"a,label\r\n1,x\r\n2,y\r\n3,\r\n");
    assert!(missing.contains("line 4"), "{missing}");
    let bytes = b"a,label\r\n1,x\r\n2,\xff\r\n";
    let utf8 = message(bytes);
    assert!(utf8.contains("line 3"), "{utf8}");
}

#[test]
fn quoted_cells_spanning_lines_keep_later_line_numbers_right() {
    let text = "note,x,label\n\"two\nlines\",1.5,a\n\"three\r\nlines\r\nhere\",2.5,b\nplain,3.5,a\nplain,oops,b\nplain,5.5,a\nplain,6.5,b\n";
    let later = message(text.as_bytes());
    // Rows start on lines 2, 4, 7, 8: the typo sits on line 8.
    assert!(later.contains("line 8: 'oops'"), "{later}");
    // A bad cell after a line break inside the same row names the line it is on.
    let text =
        "note,x,label\n\"a\nb\",oops,a\nplain,1.5,b\nplain,2.5,a\nplain,3.5,b\nplain,4.5,a\n";
    let same_row = message(text.as_bytes());
    assert!(same_row.contains("line 3: 'oops'"), "{same_row}");
}
