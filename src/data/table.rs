//! A parsed CSV file held column by column: numeric columns as `f32` values, the others as text.
//!
//! A 100 MB file of numbers has 13 million cells. Kept as text they cost as much memory as the
//! file again, and every step after parsing (schema inference, fitting, encoding) would parse
//! each of them once more; kept as numbers they cost 4 bytes each and are parsed once.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::csv::parse_number;

/// A parsed CSV file: header and cells, each row remembering its line in the file.
#[derive(Debug, Clone)]
pub struct RawTable {
    pub path: PathBuf,
    pub header: Vec<String>,
    pub(crate) columns: Vec<Column>,
    row_count: usize,
    /// 1-based line number where each row starts in the file, for error messages.
    pub lines: Vec<u64>,
    /// For rows whose quoted cells span lines: each cell's line offset from the row's start.
    pub spanning: BTreeMap<usize, Vec<u32>>,
    /// The delimiter and decimal mark the file was read with.
    pub format: super::dialect::CsvFormat,
    /// Header names Kiln gave (empty or repeated in the file), worded for the user.
    pub header_notes: Vec<String>,
    /// The column whose header was empty in the first place: the rows' names or numbers.
    pub row_names: Option<usize>,
}

/// One cell as stored: a number read from a numeric column, or the cell's trimmed text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CellValue<'a> {
    Number(f32),
    Text(&'a str),
}

impl CellValue<'_> {
    /// Whether the cell means "no value" (a number never does).
    pub fn is_missing(self) -> bool {
        matches!(self, CellValue::Text(cell) if super::csv::is_missing(cell))
    }

    /// The cell as a usable number, if it is one.
    pub fn number(self) -> Option<f64> {
        match self {
            CellValue::Number(value) => Some(f64::from(value)),
            CellValue::Text(text) => parse_number(text),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Column {
    /// Every cell's trimmed text in one buffer, with where each cell ends.
    Text(TextColumn),
    /// Numbers; `NaN` marks a cell whose text is kept in `others` (missing cells, non-numbers,
    /// and integers beyond what `f32` holds exactly).
    Numbers(NumberColumn),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct TextColumn {
    text: String,
    ends: Vec<usize>,
}

impl TextColumn {
    pub(crate) fn push(&mut self, cell: &str) {
        self.text.push_str(cell);
        self.ends.push(self.text.len());
    }

    fn get(&self, row: usize) -> &str {
        let start = if row == 0 { 0 } else { self.ends[row - 1] };
        &self.text[start..self.ends[row]]
    }

    pub(crate) fn append(&mut self, other: TextColumn) {
        let offset = self.text.len();
        self.text.push_str(&other.text);
        self.ends
            .extend(other.ends.into_iter().map(|end| end + offset));
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct NumberColumn {
    pub(crate) values: Vec<f32>,
    /// (row, text) of the cells stored as `NaN`, in row order.
    pub(crate) others: Vec<(usize, Box<str>)>,
    /// The first [`WRITTEN_ROWS`] cells as written (`3.0`, not `3`), for previews.
    written: Vec<Box<str>>,
}

/// Rows whose numbers keep their text as written: more than a data preview shows.
const WRITTEN_ROWS: usize = 100;

/// Integers beyond this lose digits as `f32`; such cells keep their text (ids, large labels).
const F32_EXACT_INTEGER: f64 = 16_777_216.0;

/// Whether a number beyond [`F32_EXACT_INTEGER`] has a fractional part. `f64::fract` calls
/// the C library's `trunc` on every cell (it is evaluated before the comparison that would
/// make it unneeded); a cast is one instruction, and every `f64` of 2^52 or more is whole.
fn has_fraction(value: f64) -> bool {
    value.abs() < 4_503_599_627_370_496.0 && (value as i64) as f64 != value
}

impl NumberColumn {
    /// Stores a cell; its text is kept (and `true` returned) unless it is a number `f32` holds
    /// well.
    pub(crate) fn push(&mut self, cell: &str) -> bool {
        if self.values.len() < WRITTEN_ROWS {
            self.written.push(cell.into());
        }
        match parse_number(cell) {
            Some(value) if value.abs() <= F32_EXACT_INTEGER || has_fraction(value) => {
                self.values.push(value as f32);
                false
            }
            _ => {
                self.push_text(cell);
                true
            }
        }
    }

    /// A text column's cells read as numbers where they are.
    pub(crate) fn from_text(text: &TextColumn) -> Self {
        let mut numbers = Self::default();
        for row in 0..text.ends.len() {
            numbers.push(text.get(row));
        }
        numbers
    }

    fn push_text(&mut self, cell: &str) {
        self.others.push((self.values.len(), cell.into()));
        self.values.push(f32::NAN);
    }

    fn get(&self, row: usize) -> CellValue<'_> {
        let value = self.values[row];
        if !value.is_nan() {
            return CellValue::Number(value);
        }
        match self.others.binary_search_by_key(&row, |(other, _)| *other) {
            Ok(position) => CellValue::Text(&self.others[position].1),
            Err(_) => CellValue::Text(""),
        }
    }

    /// Whether no cell so far was a number (so turning into text loses nothing).
    pub(crate) fn holds_no_numbers(&self) -> bool {
        self.others.len() == self.values.len()
    }

    /// The same cells as text; only lossless while [`Self::holds_no_numbers`].
    pub(crate) fn into_text(self) -> TextColumn {
        let mut text = TextColumn::default();
        for (_, cell) in self.others {
            text.push(&cell);
        }
        text
    }

    pub(crate) fn append(&mut self, other: NumberColumn) {
        let wanted = WRITTEN_ROWS.saturating_sub(self.values.len());
        self.written.extend(other.written.into_iter().take(wanted));
        let offset = self.values.len();
        self.values.extend(other.values);
        self.others.extend(
            other
                .others
                .into_iter()
                .map(|(row, text)| (row + offset, text)),
        );
    }
}

impl Column {
    pub(crate) fn shrink_to_fit(&mut self) {
        match self {
            Column::Text(column) => {
                column.text.shrink_to_fit();
                column.ends.shrink_to_fit();
            }
            Column::Numbers(column) => {
                column.values.shrink_to_fit();
                column.others.shrink_to_fit();
            }
        }
    }

    fn get(&self, row: usize) -> CellValue<'_> {
        match self {
            Column::Text(column) => CellValue::Text(column.get(row)),
            Column::Numbers(column) => column.get(row),
        }
    }
}

/// One row of a [`RawTable`].
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    table: &'a RawTable,
    row: usize,
}

impl<'a> RowRef<'a> {
    /// The cell's trimmed text (numbers written as the shortest text that reads back the same).
    pub fn get(&self, column: usize) -> Cow<'a, str> {
        self.table.cell(self.row, column)
    }

    pub fn value(&self, column: usize) -> CellValue<'a> {
        self.table.value(self.row, column)
    }

    pub fn len(&self) -> usize {
        self.table.header.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.header.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Cow<'a, str>> + use<'a> {
        let (table, row) = (self.table, self.row);
        (0..table.header.len()).map(move |column| table.cell(row, column))
    }
}

/// A number as the shortest text that reads back as the same `f32`; very large and very small
/// magnitudes in exponent form rather than as a long row of zeros.
pub(crate) fn number_text(value: f32) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-5..1e16).contains(&magnitude) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

impl RawTable {
    /// A table of rows that each sit on one line (typed rows, tests), every column kept as
    /// text. A row shorter than the header is padded with empty (missing) cells, a longer one
    /// cut to the header.
    pub fn new(
        path: PathBuf,
        header: Vec<String>,
        rows: Vec<Vec<String>>,
        lines: Vec<u64>,
    ) -> Self {
        let width = header.len();
        let mut columns = vec![TextColumn::default(); width];
        for row in &rows {
            let cells = row
                .iter()
                .map(String::as_str)
                .chain(std::iter::repeat(""))
                .take(width);
            for (column, cell) in columns.iter_mut().zip(cells) {
                column.push(cell);
            }
        }
        Self {
            path,
            header,
            columns: columns.into_iter().map(Column::Text).collect(),
            row_count: rows.len(),
            lines,
            spanning: BTreeMap::new(),
            format: Default::default(),
            header_notes: Vec::new(),
            row_names: None,
        }
    }

    pub(crate) fn from_columns(
        path: PathBuf,
        header: Vec<String>,
        columns: Vec<Column>,
        lines: Vec<u64>,
        spanning: BTreeMap<usize, Vec<u32>>,
    ) -> Self {
        Self {
            path,
            header,
            columns,
            row_count: lines.len(),
            lines,
            spanning,
            format: Default::default(),
            header_notes: Vec::new(),
            row_names: None,
        }
    }

    pub fn row_count(&self) -> usize {
        self.row_count
    }

    /// One cell as stored: a number, or text.
    pub fn value(&self, row: usize, column: usize) -> CellValue<'_> {
        self.columns[column].get(row)
    }

    /// The trimmed text of one cell: as written in the first rows, further down numbers as the
    /// shortest text that reads back as the same `f32`.
    pub fn cell(&self, row: usize, column: usize) -> Cow<'_, str> {
        if let Column::Numbers(numbers) = &self.columns[column]
            && let Some(text) = numbers.written.get(row)
        {
            return Cow::Borrowed(text);
        }
        match self.value(row, column) {
            CellValue::Text(text) => Cow::Borrowed(text),
            CellValue::Number(value) => Cow::Owned(number_text(value)),
        }
    }

    /// A numeric column's values, `NaN` where a cell keeps its text; `None` for a text column.
    pub(crate) fn numbers(&self, column: usize) -> Option<&[f32]> {
        match &self.columns[column] {
            Column::Numbers(numbers) => Some(&numbers.values),
            Column::Text(_) => None,
        }
    }

    /// Whether a column keeps every cell's text (it was read as text, not as numbers).
    pub fn is_text_column(&self, column: usize) -> bool {
        matches!(self.columns[column], Column::Text(_))
    }

    pub fn row(&self, row: usize) -> RowRef<'_> {
        RowRef { table: self, row }
    }

    pub fn rows(&self) -> impl ExactSizeIterator<Item = RowRef<'_>> {
        (0..self.row_count()).map(|row| self.row(row))
    }

    /// One column's cells as stored, top to bottom.
    pub fn values(&self, column: usize) -> impl ExactSizeIterator<Item = CellValue<'_>> {
        let column = &self.columns[column];
        (0..self.row_count).map(move |row| column.get(row))
    }

    /// One column's cells as text, top to bottom.
    pub fn column(&self, column: usize) -> impl ExactSizeIterator<Item = Cow<'_, str>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fraction_is_seen_in_big_numbers_and_never_past_2_to_the_52() {
        assert!(has_fraction(16_777_217.5));
        assert!(has_fraction(-123_456_789.25));
        assert!(!has_fraction(16_777_217.0));
        assert!(!has_fraction(-9_007_199_254_740_993.0));
        assert!(!has_fraction(1e30));
    }

    #[test]
    fn the_first_rows_show_numbers_as_written_and_the_rest_as_their_value() {
        let rows = WRITTEN_ROWS + 50;
        let mut first = NumberColumn::default();
        let mut second = NumberColumn::default();
        for row in 0..rows {
            // Two parts, as a file parsed on two cores.
            let part = if row < 60 { &mut first } else { &mut second };
            part.push(if row % 2 == 0 { "3.0" } else { "0.50" });
        }
        first.append(second);
        let table = RawTable::from_columns(
            PathBuf::from("t.csv"),
            vec!["x".to_string()],
            vec![Column::Numbers(first)],
            (2..2 + rows as u64).collect(),
            BTreeMap::new(),
        );
        assert_eq!(table.cell(0, 0), "3.0");
        assert_eq!(table.cell(WRITTEN_ROWS - 1, 0), "0.50");
        assert_eq!(table.cell(WRITTEN_ROWS, 0), "3");
        assert_eq!(table.cell(WRITTEN_ROWS + 1, 0), "0.5");
        assert_eq!(table.value(0, 0), CellValue::Number(3.0));
    }

    #[test]
    fn numbers_read_back_as_the_same_f32_and_other_cells_keep_their_text() {
        let mut column = NumberColumn::default();
        for cell in [
            "5.1",
            "",
            "NA",
            "abc",
            "-0.000001",
            "123456789",
            "3e38",
            "7",
        ] {
            column.push(cell);
        }
        let cells: Vec<CellValue> = (0..8).map(|row| column.get(row)).collect();
        assert_eq!(cells[0], CellValue::Number(5.1));
        assert_eq!(cells[1], CellValue::Text(""));
        assert_eq!(cells[2], CellValue::Text("NA"));
        assert_eq!(cells[3], CellValue::Text("abc"));
        assert_eq!(
            cells[5],
            CellValue::Text("123456789"),
            "an id keeps every digit"
        );
        assert_eq!(cells[7], CellValue::Number(7.0));
        for value in [5.1f32, -0.000001, 3e38, 7.0, 0.1, 1e-30, 16_777_216.0] {
            let text = number_text(value);
            assert_eq!(text.parse::<f32>().ok(), Some(value), "{text}");
        }
        assert_eq!(number_text(5.1), "5.1");
        assert_eq!(number_text(7.0), "7");
        assert_eq!(number_text(3e38), "3e38");
    }
}
