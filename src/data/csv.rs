//! CSV parsing into a table of trimmed strings, with errors that name line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::DataError;
use super::lines::{LineIndex, count_line_breaks, skip_line_breaks};

/// A parsed CSV file: header and rows of cells, each row remembering its line in the file.
///
/// The cells' text lives in one buffer with an end offset per cell rather than a `String` per
/// cell: a 100 MB file has 13 million cells, and a heap allocation each cost more memory than
/// the file itself and most of the time spent reading it.
#[derive(Debug, Clone)]
pub struct RawTable {
    pub path: PathBuf,
    pub header: Vec<String>,
    /// Every cell's trimmed text, row after row.
    text: String,
    /// Where each cell ends in `text`, row-major; every row has `header.len()` cells.
    cell_ends: Vec<u32>,
    /// 1-based line number where each row starts in the file, for error messages.
    pub lines: Vec<u64>,
    /// For rows whose quoted cells span lines: each cell's line offset from the row's start.
    pub spanning: BTreeMap<usize, Vec<u32>>,
}

/// One row of a [`RawTable`]: `row[column]` is the cell's trimmed text.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    table: &'a RawTable,
    row: usize,
}

impl<'a> RowRef<'a> {
    pub fn get(&self, column: usize) -> &'a str {
        self.table.cell(self.row, column)
    }

    pub fn len(&self) -> usize {
        self.table.header.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.header.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + use<'a> {
        let (table, row) = (self.table, self.row);
        (0..table.header.len()).map(move |column| table.cell(row, column))
    }
}

impl std::ops::Index<usize> for RowRef<'_> {
    type Output = str;

    fn index(&self, column: usize) -> &str {
        self.get(column)
    }
}

/// The cells' text outgrew the 32-bit offsets (4 GiB of cells).
#[derive(Debug)]
pub struct TableTooLarge;

impl RawTable {
    /// A table of rows that each sit on one line (typed rows, tests). A row shorter than the
    /// header is padded with empty (missing) cells, a longer one cut to the header.
    pub fn new(
        path: PathBuf,
        header: Vec<String>,
        rows: Vec<Vec<String>>,
        lines: Vec<u64>,
    ) -> Self {
        let mut table = Self::empty(path, header);
        for row in rows {
            let width = table.header.len();
            let cells = row
                .iter()
                .map(String::as_str)
                .chain(std::iter::repeat(""))
                .take(width);
            // Typed rows and test tables are far below 4 GiB.
            let _ = table.push_row(cells);
        }
        table.lines = lines;
        table
    }

    fn empty(path: PathBuf, header: Vec<String>) -> Self {
        Self {
            path,
            header,
            text: String::new(),
            cell_ends: Vec::new(),
            lines: Vec::new(),
            spanning: BTreeMap::new(),
        }
    }

    /// Appends a row of exactly `header.len()` cells.
    fn push_row<'c>(&mut self, cells: impl Iterator<Item = &'c str>) -> Result<(), TableTooLarge> {
        for cell in cells {
            self.text.push_str(cell);
            self.cell_ends
                .push(u32::try_from(self.text.len()).map_err(|_| TableTooLarge)?);
        }
        Ok(())
    }

    pub fn row_count(&self) -> usize {
        self.cell_ends
            .len()
            .checked_div(self.header.len())
            .unwrap_or(0)
    }

    /// The trimmed text of one cell.
    pub fn cell(&self, row: usize, column: usize) -> &str {
        let index = row * self.header.len() + column;
        let start = if index == 0 {
            0
        } else {
            self.cell_ends[index - 1] as usize
        };
        &self.text[start..self.cell_ends[index] as usize]
    }

    pub fn row(&self, row: usize) -> RowRef<'_> {
        RowRef { table: self, row }
    }

    pub fn rows(&self) -> impl ExactSizeIterator<Item = RowRef<'_>> {
        (0..self.row_count()).map(|row| self.row(row))
    }

    /// One column's cells, top to bottom.
    pub fn column(&self, column: usize) -> impl ExactSizeIterator<Item = &str> {
        (0..self.row_count()).map(move |row| self.cell(row, column))
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

    let mut table = RawTable::empty(path_buf.clone(), header);
    // The file is about as large as its cells' text: reserve once instead of doubling.
    table.text.reserve(bytes.len());
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => return Err(csv_error(&path_buf, &lines, bytes, error)),
        }
        let start = record.position().map_or(0, |position| {
            skip_line_breaks(bytes, position.byte() as usize)
        });
        let line = lines.line_of(start);
        let mut cells: Vec<&str> = Vec::with_capacity(record.len());
        for field in record.iter() {
            // The whole file was checked to be UTF-8 and quotes are ASCII, so every field is.
            cells.push(
                std::str::from_utf8(field).map_err(|error| DataError::NotUtf8 {
                    path: path_buf.clone(),
                    line,
                    byte: start + error.valid_up_to(),
                })?,
            );
        }
        if cells.iter().all(|cell| trim(cell).is_empty()) {
            continue; // blank lines (often a trailing one) carry no data
        }
        if cells.len() != table.header.len() {
            return Err(DataError::Ragged {
                path: path_buf,
                line,
                expected: table.header.len(),
                found: cells.len(),
            });
        }
        // Line breaks inside quoted cells move the lines of the cells after them.
        if cells.iter().any(|cell| cell.contains(['\n', '\r'])) {
            let mut offsets = Vec::with_capacity(cells.len());
            let mut breaks_before = 0u64;
            for cell in &cells {
                let leading = &cell[..cell.len()
                    - cell
                        .trim_start_matches(|c: char| c.is_ascii_whitespace())
                        .len()];
                offsets.push(
                    u32::try_from(breaks_before + count_line_breaks(leading)).unwrap_or(u32::MAX),
                );
                breaks_before += count_line_breaks(cell);
            }
            table.spanning.insert(table.lines.len(), offsets);
        }
        table
            .push_row(cells.iter().map(|cell| trim(cell)))
            .map_err(|TableTooLarge| DataError::Invalid {
                path: path_buf.clone(),
                message: "the file's cells hold more than 4 GiB of text, more than Kiln reads"
                    .to_string(),
            })?;
        table.lines.push(line);
    }
    if table.lines.is_empty() {
        return Err(DataError::HeaderOnly { path: path_buf });
    }
    // The reserve's unused tail was never touched, so it costs address space, not memory.
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
