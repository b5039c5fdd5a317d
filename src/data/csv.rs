//! CSV parsing into a table of trimmed strings, with errors that name line and column.

use std::path::{Path, PathBuf};

use super::DataError;

/// A parsed CSV file: header and rows of cells, each row remembering its line in the file.
#[derive(Debug, Clone)]
pub struct RawTable {
    pub path: PathBuf,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// 1-based line number of each row in the file, for error messages.
    pub lines: Vec<u64>,
}

impl RawTable {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|column| column == name)
    }
}

/// Reads and parses a CSV file.
pub fn load_csv(path: &Path) -> Result<RawTable, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_csv_bytes(path, &bytes)
}

/// Parses CSV bytes; `path` is only used to name the file in errors.
pub fn parse_csv_bytes(path: &Path, bytes: &[u8]) -> Result<RawTable, DataError> {
    let path_buf = path.to_path_buf();
    if let Err(error) = std::str::from_utf8(bytes) {
        let byte = error.valid_up_to();
        let line = 1 + bytes[..byte].iter().filter(|&&b| b == b'\n').count() as u64;
        return Err(DataError::NotUtf8 {
            path: path_buf,
            line,
            byte,
        });
    }
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(DataError::Empty { path: path_buf });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);

    let header: Vec<String> = reader
        .headers()
        .map_err(|error| csv_error(&path_buf, error))?
        .iter()
        .map(str::to_string)
        .collect();
    for (index, name) in header.iter().enumerate() {
        if name.is_empty() {
            return Err(DataError::Invalid {
                path: path_buf,
                message: format!("the header's column {} has no name", index + 1),
            });
        }
        if header[..index].contains(name) {
            return Err(DataError::DuplicateColumn {
                path: path_buf,
                column: name.clone(),
            });
        }
    }

    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|error| csv_error(&path_buf, error))?;
        let line = record.position().map_or(0, |position| position.line());
        if record.iter().all(str::is_empty) {
            continue; // blank lines (often a trailing one) carry no data
        }
        if record.len() != header.len() {
            return Err(DataError::Ragged {
                path: path_buf,
                line,
                expected: header.len(),
                found: record.len(),
            });
        }
        rows.push(record.iter().map(str::to_string).collect());
        lines.push(line);
    }
    if rows.is_empty() {
        return Err(DataError::HeaderOnly { path: path_buf });
    }
    Ok(RawTable {
        path: path_buf,
        header,
        rows,
        lines,
    })
}

fn csv_error(path: &Path, error: csv::Error) -> DataError {
    let line = error.position().map_or(0, |position| position.line());
    match error.into_kind() {
        csv::ErrorKind::Io(source) => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
        csv::ErrorKind::Utf8 { err, .. } => DataError::NotUtf8 {
            path: path.to_path_buf(),
            line,
            byte: err.valid_up_to(),
        },
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => DataError::Ragged {
            path: path.to_path_buf(),
            line,
            expected: expected_len as usize,
            found: len as usize,
        },
        other => DataError::Invalid {
            path: path.to_path_buf(),
            message: format!("line {line}: {other:?}"),
        },
    }
}

/// Cells that mean "no value".
pub(crate) fn is_missing(cell: &str) -> bool {
    matches!(
        cell,
        "" | "NA" | "N/A" | "na" | "n/a" | "?" | "null" | "NULL"
    )
}

/// Parses a numeric cell; `nan`/`inf` spellings are not numbers a user meant to train on.
pub(crate) fn parse_number(cell: &str) -> Option<f64> {
    cell.parse::<f64>().ok().filter(|value| value.is_finite())
}
