//! Reading CSV files as typed columns: a file read block by block gives the same table, hash
//! and errors as the same bytes parsed whole; categories keep their text as written.

use std::path::Path;

use kiln::data::{
    CellValue, ColumnChoices, ColumnKind, DataSpec, RawTable, TestSplit, load_csv_hashed,
    parse_csv_bytes, prepare, prepare_bytes,
};
use sha2::{Digest, Sha256};

/// Rows enough to span several of the reader's 8 MiB blocks (about 22 MB).
fn big_csv(rows: usize) -> String {
    let mut text = String::from("a,b,c,label\n");
    for row in 0..rows {
        let x = row as f64 * 0.001;
        text.push_str(&format!(
            "{x:.4}, {:.6},{},{}\r\n",
            (x * 7.0).sin(),
            row % 1000,
            if row % 3 == 0 { "yes" } else { "no" }
        ));
        if row % 50_000 == 7 {
            text.push_str(",,,\n\n"); // blank lines, skipped wherever they fall
        }
    }
    text
}

fn same_cells(left: &RawTable, right: &RawTable) {
    assert_eq!(left.header, right.header);
    assert_eq!(left.row_count(), right.row_count());
    assert_eq!(left.lines, right.lines);
    for row in (0..left.row_count()).step_by(997) {
        for column in 0..left.header.len() {
            assert_eq!(left.value(row, column), right.value(row, column));
        }
    }
}

#[test]
fn a_file_read_in_blocks_is_the_same_table_and_hash_as_its_bytes_parsed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.csv");
    let text = big_csv(800_000);
    assert!(text.len() > 2 * 8 * 1024 * 1024, "spans several blocks");
    std::fs::write(&path, &text).unwrap();

    let (streamed, hash) = load_csv_hashed(&path, &[]).unwrap();
    let whole = parse_csv_bytes(&path, text.as_bytes()).unwrap();
    same_cells(&streamed, &whole);
    assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(text.as_bytes())));
    assert_eq!(streamed.row_count(), 800_000);
    assert_eq!(streamed.value(0, 0), CellValue::Number(0.0));
    assert_eq!(streamed.value(799_999, 2), CellValue::Number(999.0));
    assert_eq!(streamed.value(799_999, 3), CellValue::Text("no"));
    assert!(!streamed.is_text_column(0) && streamed.is_text_column(3));
    // Line numbers count the blank lines skipped in earlier blocks.
    let last_line = text.lines().count() as u64;
    assert_eq!(streamed.lines[799_999], last_line);

    // The fingerprint hashes the same bytes whichever way the file was read.
    let from_file = prepare(&DataSpec::new(&path)).unwrap();
    let from_bytes = prepare_bytes(&DataSpec::new(&path), text.as_bytes()).unwrap();
    assert_eq!(from_file.fingerprint, from_bytes.fingerprint);
    assert_eq!(from_file.train.inputs, from_bytes.train.inputs);
}

#[test]
fn a_ragged_row_deep_in_the_file_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ragged.csv");
    let mut text = big_csv(400_000);
    let line = text.lines().count() + 1;
    text.push_str("1,2,3\n");
    std::fs::write(&path, &text).unwrap();
    let message = load_csv_hashed(&path, &[]).unwrap_err().to_string();
    assert!(
        message.contains(&format!("line {line} has 3 cells but the header has 4")),
        "{message}"
    );
    let whole = parse_csv_bytes(&path, text.as_bytes()).unwrap_err();
    assert_eq!(whole.to_string(), message);
}

#[test]
fn quoted_files_and_old_mac_line_ends_read_as_before() {
    let quoted = b"name,x,label\n\"Smith, J\",1.5,a\n\"multi\nline\",2,b\n";
    let table = parse_csv_bytes(Path::new("q.csv"), quoted).unwrap();
    assert_eq!(table.cell(0, 0), "Smith, J");
    assert_eq!(table.cell(1, 0), "multi\nline");
    assert_eq!(table.value(1, 1), CellValue::Number(2.0));
    assert_eq!(table.lines, [2, 3]);

    let old_mac = b"x,label\r1,a\r2,b\r";
    let table = parse_csv_bytes(Path::new("mac.csv"), old_mac).unwrap();
    assert_eq!(table.row_count(), 2);
    assert_eq!(table.lines, [2, 3]);
    assert_eq!(table.cell(1, 1), "b");
}

#[test]
fn categories_keep_their_text_as_written() {
    // A column declared categorical keeps leading zeros and trailing decimals.
    let text = "zip,x,label\n02139,1,a\n10001,2,b\n02139,3,a\n1.50,4,b\n";
    let mut spec = DataSpec::new("zips.csv");
    spec.columns = ColumnChoices {
        categorical: vec!["zip".to_string()],
        ..ColumnChoices::default()
    };
    let data = prepare_bytes(&spec, text.as_bytes()).unwrap();
    assert_eq!(
        data.schema.features[0].kind,
        ColumnKind::Categorical {
            categories: vec!["02139".into(), "1.50".into(), "10001".into()]
        }
    );

    // A separate test file reads its categories as written too, past the rows whose text every
    // column keeps.
    let dir = tempfile::tempdir().unwrap();
    let test_path = dir.path().join("zips-test.csv");
    let mut test_text = String::from("zip,x,label\n");
    for row in 0..150 {
        test_text.push_str(["02139,5,a\n", "1.50,6,b\n"][row % 2]);
    }
    std::fs::write(&test_path, test_text).unwrap();
    let mut with_test = spec.clone();
    with_test.test = Some(TestSplit::File(test_path));
    let data = prepare_bytes(&with_test, text.as_bytes()).unwrap();
    let test = data.test.expect("the test file is encoded");
    assert_eq!(test.rows, 150);
    let last = &test.inputs[149 * test.width..];
    assert_eq!(
        &last[..3],
        &[0.0, 1.0, 0.0],
        "row 150 is 1.50, the second category"
    );

    // A column that starts with numbers but is mostly words is read again as text: its
    // numbers stay as written too.
    let mut text = String::from("size,x,label\n");
    text.push_str("007,1,a\n");
    for row in 0..30 {
        let size = ["small", "large"][row % 2];
        text.push_str(&format!("{size},{row},{}\n", ["a", "b"][row % 2]));
    }
    let data = prepare_bytes(&DataSpec::new("sizes.csv"), text.as_bytes()).unwrap();
    assert_eq!(
        data.schema.features[0].kind,
        ColumnKind::Categorical {
            categories: vec!["007".into(), "large".into(), "small".into()]
        }
    );
    let table = data.table().unwrap();
    assert_eq!(table.cell(0, 0), "007");
}

#[test]
fn large_integers_keep_every_digit() {
    let text = "id,x,label\n123456789,1,a\n123456790,2,b\n";
    let table = parse_csv_bytes(Path::new("ids.csv"), text.as_bytes()).unwrap();
    assert_eq!(table.cell(0, 0), "123456789");
    assert_eq!(table.value(1, 0).number(), Some(123_456_790.0));
    assert_eq!(table.value(0, 1), CellValue::Number(1.0));
}

// --- The CSV files people have (issue 33): row names, row numbers, headers, missing markers,
// delimiters ---

fn pima(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pima")
        .join(file)
}

fn feature_names(data: &kiln::data::PreparedData) -> Vec<&str> {
    data.schema
        .features
        .iter()
        .map(|feature| feature.name.as_str())
        .collect()
}

/// Rows sorted by class, as many public files are: a row number then predicts the label.
fn sorted_by_class(index_header: &str, index_of: impl Fn(usize) -> String) -> String {
    let mut text = format!("{index_header},x,y,label\n");
    for row in 0..40 {
        let label = if row < 20 { "a" } else { "b" };
        text.push_str(&format!(
            "{},{:.2},{},{label}\n",
            index_of(row),
            (row * 37 % 11) as f64 * 0.5,
            row % 3
        ));
    }
    text
}

#[test]
fn a_pandas_export_with_its_index_loads_and_leaves_the_index_out() {
    // `df.to_csv("f.csv")`: an empty first header over the index 0, 1, 2, …
    let text = sorted_by_class("", |row| row.to_string());
    let data = prepare_bytes(&DataSpec::new("pandas.csv"), text.as_bytes()).unwrap();
    assert_eq!(feature_names(&data), ["x", "y"]);
    assert_eq!(data.table().unwrap().header[0], "column_1");
    assert_eq!(data.preprocessor.choices.exclude, ["column_1"]);
    assert_eq!(data.row_ids[0].kind, kiln::data::RowIdKind::Names);
    let note = data.warnings.join("\n");
    assert!(
        note.contains("no name in the header") && note.contains("--keep column_1"),
        "{note}"
    );
}

#[test]
fn a_real_r_export_with_row_names_trains_without_editing() {
    // MASS's Pima.tr as R's write.csv wrote it: `"","npreg",…` over `"1",5,86,…`.
    let data = prepare(&DataSpec::new(pima("Pima.tr.csv"))).unwrap();
    assert_eq!(
        feature_names(&data),
        ["npreg", "glu", "bp", "skin", "bmi", "ped", "age"]
    );
    assert_eq!(data.schema.target.classes, ["No", "Yes"]);
    assert_eq!(data.train.rows + data.valid.rows, 200);
    // R's row names as text ("Mazda RX4") are row names too.
    let cars = "\"\",\"mpg\",\"cyl\",\"am\"\n".to_string()
        + &(0..12)
            .map(|i| {
                format!(
                    "\"Car {i}\",{}.5,{},{}\n",
                    15 + i % 6,
                    4 + 2 * (i % 3),
                    i % 2
                )
            })
            .collect::<String>();
    let data = prepare_bytes(&DataSpec::new("mtcars.csv"), cars.as_bytes()).unwrap();
    assert_eq!(feature_names(&data), ["mpg", "cyl"]);
}

#[test]
fn row_numbers_never_leak_the_label_unless_kept() {
    // A named id that grows on every row, in a file sorted by class.
    let text = sorted_by_class("PassengerId", |row| (row + 1).to_string());
    let data = prepare_bytes(&DataSpec::new("titanic.csv"), text.as_bytes()).unwrap();
    assert_eq!(feature_names(&data), ["x", "y"]);
    assert_eq!(data.preprocessor.choices.exclude, ["PassengerId"]);
    assert!(
        data.warnings
            .iter()
            .any(|w| w.contains("'PassengerId'") && w.contains("--keep PassengerId")),
        "{:?}",
        data.warnings
    );
    // 1…n in another order is row numbers too.
    let shuffled = sorted_by_class("id", |row| ((row * 17) % 40 + 1).to_string());
    let data = prepare_bytes(&DataSpec::new("shuffled.csv"), shuffled.as_bytes()).unwrap();
    assert_eq!(data.row_ids[0].kind, kiln::data::RowIdKind::Permutation);
    assert_eq!(feature_names(&data), ["x", "y"]);
    // Kept on purpose, it is a feature, and the record says so.
    let mut spec = DataSpec::new("titanic.csv");
    spec.columns.keep = vec!["PassengerId".to_string()];
    let data = prepare_bytes(&spec, text.as_bytes()).unwrap();
    assert_eq!(feature_names(&data), ["PassengerId", "x", "y"]);
    assert!(data.preprocessor.choices.exclude.is_empty());
    assert_eq!(data.preprocessor.choices.keep, ["PassengerId"]);
    // A column that only repeats or measures is not a row number.
    let ages = "age,label\n".to_string()
        + &(0..30)
            .map(|i| format!("{},{}\n", 20 + i % 7, i % 2))
            .collect::<String>();
    let data = prepare_bytes(&DataSpec::new("ages.csv"), ages.as_bytes()).unwrap();
    assert_eq!(feature_names(&data), ["age"]);
    assert!(data.row_ids.is_empty());
}

#[test]
fn the_spec_a_run_records_prepares_to_the_same_fingerprint() {
    let text = sorted_by_class("", |row| row.to_string());
    let first = prepare_bytes(&DataSpec::new("pandas.csv"), text.as_bytes()).unwrap();
    let mut recorded = DataSpec::new("pandas.csv");
    recorded.columns = first.preprocessor.choices.clone();
    let again = prepare_bytes(&recorded, text.as_bytes()).unwrap();
    assert_eq!(first.fingerprint.id, again.fingerprint.id);
    assert_eq!(feature_names(&first), feature_names(&again));
}

#[test]
fn empty_and_repeated_header_names_get_generated_names_and_a_warning() {
    let text = "a,,a,label\n1,2,3,x\n4,5,6,y\n7,8,9,x\n1,2,3,y\n4,5,6,x\n7,8,9,y\n";
    let data = prepare_bytes(&DataSpec::new("names.csv"), text.as_bytes()).unwrap();
    assert_eq!(feature_names(&data), ["a", "column_2", "a_2"]);
    let notes = data.warnings.join("\n");
    assert!(
        notes.contains("column 2 has no name") && notes.contains("'a_2'"),
        "{notes}"
    );
}

#[test]
fn the_usual_missing_markers_are_missing_cells() {
    for marker in ["NA", "NULL", "nan", "NaN", ""] {
        let text = format!("x,y,label\n1,2,a\n{marker},3,b\n2,4,a\n3,1,b\n4,2,a\n5,3,b\n");
        let error = prepare_bytes(&DataSpec::new("gaps.csv"), text.as_bytes())
            .expect_err("missing cells need imputation")
            .to_string();
        assert!(
            error.contains("missing values in 1 cell(s), first at line 3, column 'x'"),
            "{marker:?}: {error}"
        );
        let mut spec = DataSpec::new("gaps.csv");
        spec.impute_missing = true;
        let data = prepare_bytes(&spec, text.as_bytes()).unwrap();
        assert_eq!(
            data.schema.features[0].kind,
            ColumnKind::Numeric,
            "{marker:?}"
        );
    }
    // A real file with NA cells (MASS's Pima.tr2, 100 rows without `skin`) trains with imputation.
    let mut spec = DataSpec::new(pima("Pima.tr2.csv"));
    spec.impute_missing = true;
    let data = prepare(&spec).unwrap();
    assert_eq!(data.train.rows + data.valid.rows, 300);
    assert!(data.train.inputs.iter().all(|value| value.is_finite()));
}

#[test]
fn semicolons_with_decimal_commas_tabs_and_commas_read_as_the_same_table() {
    let rows = [("1.5", "2", "a"), ("-0.25", "3", "b"), ("4", "1.75", "a")];
    let mut files = Vec::new();
    for (delimiter, decimal) in [(",", "."), (";", ","), ("\t", "."), ("|", ".")] {
        let mut text = ["x", "y", "label"].join(delimiter) + "\n";
        for _ in 0..4 {
            for (x, y, label) in rows {
                let cells = [
                    x.replace('.', decimal),
                    y.replace('.', decimal),
                    label.into(),
                ];
                text.push_str(&(cells.join(delimiter) + "\n"));
            }
        }
        files.push((delimiter, text));
    }
    let reference = prepare_bytes(&DataSpec::new("t.csv"), files[0].1.as_bytes()).unwrap();
    for (delimiter, text) in &files[1..] {
        let data = prepare_bytes(&DataSpec::new("t.csv"), text.as_bytes())
            .unwrap_or_else(|error| panic!("{delimiter:?}: {error}"));
        assert_eq!(feature_names(&data), ["x", "y"], "{delimiter:?}");
        assert_eq!(data.train.inputs, reference.train.inputs, "{delimiter:?}");
        assert_eq!(
            data.table().unwrap().format.delimiter.byte(),
            delimiter.as_bytes()[0]
        );
    }
    // Chosen by hand: a semicolon file read with commas is one column per line, and refused.
    let mut spec = DataSpec::new("t.csv");
    spec.delimiter = Some(kiln::data::Delimiter::COMMA);
    assert!(prepare_bytes(&spec, files[1].1.as_bytes()).is_err());
    spec.delimiter = Some(kiln::data::Delimiter::SEMICOLON);
    let data = prepare_bytes(&spec, files[1].1.as_bytes()).unwrap();
    assert_eq!(data.train.inputs, reference.train.inputs);
}

#[test]
fn a_semicolon_file_read_in_blocks_matches_its_bytes_parsed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.csv");
    let mut text = String::from("a;b;label\n");
    // About 10 MB: more than one of the reader's 8 MiB blocks.
    for row in 0..900_000 {
        text.push_str(&format!(
            "{},{};{};{}\n",
            row % 97,
            row % 10,
            row % 13,
            row % 2
        ));
    }
    std::fs::write(&path, &text).unwrap();
    let (streamed, _) = load_csv_hashed(&path, &[]).unwrap();
    let whole = parse_csv_bytes(&path, text.as_bytes()).unwrap();
    same_cells(&streamed, &whole);
    assert_eq!(streamed.value(3, 0), CellValue::Number(3.3));
}
