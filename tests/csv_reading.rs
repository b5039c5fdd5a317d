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
