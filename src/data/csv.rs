//! CSV parsing into a table of trimmed strings, with errors that name line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::DataError;
use super::lines::{LineIndex, count_line_breaks, skip_line_breaks};

/// A parsed CSV file: header and rows of cells, each row remembering its line in the file.
#[derive(Debug, Clone)]
pub struct RawTable {
    pub path: PathBuf,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// 1-based line number where each row starts in the file, for error messages.
    pub lines: Vec<u64>,
    /// For rows whose quoted cells span lines: each cell's line offset from the row's start.
    pub spanning: BTreeMap<usize, Vec<u32>>,
}

impl RawTable {
    /// A table of rows that each sit on one line (typed rows, tests).
    pub fn new(
        path: PathBuf,
        header: Vec<String>,
        rows: Vec<Vec<String>>,
        lines: Vec<u64>,
    ) -> Self {
        Self {
            path,
            header,
            rows,
            lines,
            spanning: BTreeMap::new(),
        }
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|column| column == name)
    }

    /// The line a text editor shows for the start of a cell.
    pub fn cell_line(&self, row: usize, column: usize) -> u64 {
        let offset = self
            .spanning
            .get(&row)
            .and_then(|offsets| offsets.get(column))
            .copied()
            .unwrap_or(0);
        self.lines[row] + u64::from(offset)
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

fn trim(cell: &str) -> &str {
    cell.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// Parses CSV bytes; `path` is only used to name the file in errors.
pub fn parse_csv_bytes(path: &Path, bytes: &[u8]) -> Result<RawTable, DataError> {
    let path_buf = path.to_path_buf();
    if let Err(error) = std::str::from_utf8(bytes) {
        let byte = error.valid_up_to();
        return Err(DataError::NotUtf8 {
            path: path_buf,
            line: LineIndex::new(&bytes[..byte]).line_of(byte),
            byte,
        });
    }
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(DataError::Empty { path: path_buf });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let lines = LineIndex::new(bytes);
    // Cells are trimmed here rather than by the reader, so line breaks inside trimmed
    // whitespace still count towards the line numbers of the cells after them.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);

    let header: Vec<String> = reader
        .headers()
        .map_err(|error| csv_error(&path_buf, &lines, bytes, error))?
        .iter()
        .map(|name| trim(name).to_string())
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

    let mut table = RawTable::new(path_buf.clone(), header, Vec::new(), Vec::new());
    for record in reader.records() {
        let record = record.map_err(|error| csv_error(&path_buf, &lines, bytes, error))?;
        let start = record.position().map_or(0, |position| {
            skip_line_breaks(bytes, position.byte() as usize)
        });
        let line = lines.line_of(start);
        if record.iter().all(|cell| trim(cell).is_empty()) {
            continue; // blank lines (often a trailing one) carry no data
        }
        if record.len() != table.header.len() {
            return Err(DataError::Ragged {
                path: path_buf,
                line,
                expected: table.header.len(),
                found: record.len(),
            });
        }
        let mut offsets = Vec::with_capacity(record.len());
        let mut breaks_before = 0u64;
        for cell in record.iter() {
            let leading = &cell[..cell.len()
                - cell
                    .trim_start_matches(|c: char| c.is_ascii_whitespace())
                    .len()];
            offsets.push(
                u32::try_from(breaks_before + count_line_breaks(leading)).unwrap_or(u32::MAX),
            );
            breaks_before += count_line_breaks(cell);
        }
        if breaks_before > 0 {
            table.spanning.insert(table.rows.len(), offsets);
        }
        table
            .rows
            .push(record.iter().map(|cell| trim(cell).to_string()).collect());
        table.lines.push(line);
    }
    if table.rows.is_empty() {
        return Err(DataError::HeaderOnly { path: path_buf });
    }
    Ok(table)
}

fn csv_error(path: &Path, lines: &LineIndex, bytes: &[u8], error: csv::Error) -> DataError {
    let line = error.position().map_or(0, |position| {
        lines.line_of(skip_line_breaks(bytes, position.byte() as usize))
    });
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

/// Parses a numeric cell: a finite number within f32's range (what the model computes in).
pub(crate) fn parse_number(cell: &str) -> Option<f64> {
    cell.parse::<f64>()
        .ok()
        .filter(|value| value.is_finite() && value.abs() <= f64::from(f32::MAX))
}

/// What a present cell says about its column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CellKind {
    Number,
    /// `NaN`, `inf`, `-Infinity` or a number beyond f32's range: meant as a number, unusable as one.
    Unusable,
    Text,
}

pub(crate) fn cell_kind(cell: &str) -> CellKind {
    if parse_number(cell).is_some() {
        CellKind::Number
    } else if cell.parse::<f64>().is_ok() {
        CellKind::Unusable
    } else {
        CellKind::Text
    }
}
