//! CSV parsing into a [`RawTable`], with errors that name line and column.
//!
//! Numeric columns are parsed once, straight into numbers; a file without quoted cells is parsed
//! in parts on every core.

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::DataError;
use super::columns::reads_as_numbers;
pub use super::dialect::{CsvFormat, Delimiter};
use super::dialect::{NamedColumns, name_columns};
use super::lines::{LineIndex, count_line_breaks, skip_line_breaks};
use super::table::{Column, NumberColumn, TextColumn};

pub use super::table::{CellValue, RawTable, RowRef};

/// Below this many bytes, one thread parses a block.
const PARALLEL_PARSE_MIN_BYTES: usize = 1 << 20;
/// How much of a file is read at a time when it streams.
const BLOCK_BYTES: usize = 8 << 20;

/// Reads and parses a CSV file, its delimiter detected.
pub fn load_csv(path: &Path) -> Result<RawTable, DataError> {
    load_csv_keeping_text(path, &[])
}

/// Reads and parses a CSV file, keeping the text of the named columns (categories) as written.
pub fn load_csv_keeping_text(path: &Path, text_columns: &[&str]) -> Result<RawTable, DataError> {
    load_csv_hashed(path, text_columns).map(|(table, _)| table)
}

/// As [`load_csv_keeping_text`], with the delimiter given (`None`: detected).
pub fn load_csv_with(
    path: &Path,
    text_columns: &[&str],
    delimiter: Option<Delimiter>,
) -> Result<RawTable, DataError> {
    load_csv_hashed_with(path, text_columns, delimiter).map(|(table, _)| table)
}

/// Reads and parses a CSV file block by block, hashing it as it goes: the whole file is never
/// in memory at once, only its cells. Returns the table and the SHA-256 of the file's bytes.
///
/// A file with quoted cells (whose line breaks a block could cut) is read whole instead.
pub fn load_csv_hashed(
    path: &Path,
    text_columns: &[&str],
) -> Result<(RawTable, [u8; 32]), DataError> {
    load_csv_hashed_with(path, text_columns, None)
}

/// As [`load_csv_hashed`], with the delimiter given (`None`: detected from the file's start).
pub fn load_csv_hashed_with(
    path: &Path,
    text_columns: &[&str],
    delimiter: Option<Delimiter>,
) -> Result<(RawTable, [u8; 32]), DataError> {
    let io_error = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_error)?;
    let size = file.metadata().map_err(io_error)?.len();
    let mut parser = Parser::new(path, text_columns, delimiter, size);
    let mut hasher = Sha256::new();
    let quoted = parse_blocks(
        &mut parser,
        path,
        |pending| (&mut file).take(BLOCK_BYTES as u64).read_to_end(pending),
        &mut hasher,
    )?;
    if quoted {
        let bytes = std::fs::read(path).map_err(io_error)?;
        let table = parse_csv_with(path, &bytes, text_columns, delimiter)?;
        return Ok((table, Sha256::digest(&bytes).into()));
    }
    let hash = hasher.finalize().into();
    let table = parser.finish(|columns, format| {
        // Mixed columns are rare: read the file again, whole, for their text.
        let bytes = std::fs::read(path).map_err(io_error)?;
        text_of_columns(path, &bytes, columns, format)
    })?;
    Ok((table, hash))
}

/// Feeds the parser the blocks `read_block` appends (none at the end), each cut after its last
/// line break so that no row is cut in two, and `hasher` every byte in order. `Ok(true)` when
/// the file turned out to have quoted cells, which it must read whole.
fn parse_blocks(
    parser: &mut Parser,
    path: &Path,
    mut read_block: impl FnMut(&mut Vec<u8>) -> std::io::Result<usize>,
    hasher: &mut Sha256,
) -> Result<bool, DataError> {
    let mut pending: Vec<u8> = Vec::with_capacity(BLOCK_BYTES);
    loop {
        let read = read_block(&mut pending).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let end_of_file = read == 0;
        let cut = if end_of_file {
            pending.len()
        } else {
            match pending.iter().rposition(|&b| b == b'\n') {
                Some(newline) => newline + 1,
                None => continue,
            }
        };
        if has_quote(&pending[..cut]) {
            return Ok(true);
        }
        // The hash runs beside the parse: parsing leaves a core idle between its parallel
        // parts (splitting the block, joining the parts), which the hash fills.
        let block = &pending[..cut];
        std::thread::scope(|scope| {
            scope.spawn(|| hasher.update(block));
            parser.feed(block)
        })?;
        pending.drain(..cut);
        if end_of_file {
            return Ok(false);
        }
    }
}

fn trim(cell: &str) -> &str {
    let bytes = cell.as_bytes();
    // Most cells have no spaces around them: two byte tests instead of a pattern search.
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last))
            if !first.is_ascii_whitespace() && !last.is_ascii_whitespace() =>
        {
            cell
        }
        _ => cell.trim_matches(|c: char| c.is_ascii_whitespace()),
    }
}

/// `bytes` as text, or the error naming the line and byte of the first that is not UTF-8;
/// `lines_before` and `bytes_before`: where in the file `bytes` start.
fn utf8<'a>(
    path: &Path,
    bytes: &'a [u8],
    lines_before: u64,
    bytes_before: usize,
) -> Result<&'a str, DataError> {
    std::str::from_utf8(bytes).map_err(|error| {
        let byte = error.valid_up_to();
        DataError::NotUtf8 {
            path: path.to_path_buf(),
            line: lines_before + LineIndex::new(&bytes[..byte]).line_of(byte),
            byte: bytes_before + byte,
        }
    })
}

/// Whether `bytes` hold a quote (then cells may hold commas and line breaks). `memchr`'s
/// vector search: the slice method looks at a word at a time, and every block is searched.
fn has_quote(bytes: &[u8]) -> bool {
    memchr::memchr(b'"', bytes).is_some()
}

/// `text.split('\n')`, searching with `memchr`'s vector search.
fn lines_of(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain(std::iter::once(text.len()));
    ends.map(move |end| {
        let line = &text[start..end];
        start = end + 1;
        line
    })
}

/// Parses CSV bytes; `path` is only used to name the file in errors.
pub fn parse_csv_bytes(path: &Path, bytes: &[u8]) -> Result<RawTable, DataError> {
    parse_csv_keeping_text(path, bytes, &[])
}

/// Parses CSV bytes, keeping the named columns as text whatever they hold: a category written
/// `02139` or `1.0` stays that, where a numeric column would read it as the number.
pub fn parse_csv_keeping_text(
    path: &Path,
    bytes: &[u8],
    text_columns: &[&str],
) -> Result<RawTable, DataError> {
    parse_csv_with(path, bytes, text_columns, None)
}

/// As [`parse_csv_keeping_text`], with the delimiter given (`None`: detected).
pub fn parse_csv_with(
    path: &Path,
    bytes: &[u8],
    text_columns: &[&str],
    delimiter: Option<Delimiter>,
) -> Result<RawTable, DataError> {
    let mut parser = Parser::new(path, text_columns, delimiter, bytes.len() as u64);
    parser.feed(bytes)?;
    parser.finish(|columns, format| text_of_columns(path, bytes, columns, format))
}

/// The text of the given columns of a whole file, every data row, as written.
fn text_of_columns(
    path: &Path,
    bytes: &[u8],
    columns: &[usize],
    format: CsvFormat,
) -> Result<Vec<TextColumn>, DataError> {
    let text = utf8(path, bytes, 0, 0)?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let lines = LineIndex::new(text.as_bytes());
    let source = Source {
        path,
        text,
        lines: &lines,
        line_base: 0,
        byte_base: 0,
        format,
    };
    let (_, body_start) = source.header()?;
    let mut texts = vec![TextColumn::default(); columns.len()];
    source.for_each_record(body_start..text.len(), |record, _| {
        for (text, &column) in texts.iter_mut().zip(columns) {
            let cell = record.get(column).unwrap_or_default();
            let cell = trim(std::str::from_utf8(cell).unwrap_or_default());
            text.push(&source.format.number_text(cell));
        }
        Ok(())
    })?;
    Ok(texts)
}

/// The header and what it says about each column.
struct Header {
    names: Vec<String>,
    as_text: Vec<bool>,
    notes: Vec<String>,
    row_names: Option<usize>,
    format: CsvFormat,
}

/// Parses a file fed to it in blocks that each end at a line end.
struct Parser<'p> {
    path: &'p Path,
    text_columns: &'p [&'p str],
    /// The delimiter the user chose; `None`: detected from the first block.
    delimiter: Option<Delimiter>,
    /// The file's size, to reserve the columns once instead of growing them.
    file_bytes: u64,
    header: Option<Header>,
    rows: Option<Part>,
    /// Line breaks and bytes before the next block.
    lines_before: u64,
    bytes_before: usize,
}

impl<'p> Parser<'p> {
    fn new(
        path: &'p Path,
        text_columns: &'p [&'p str],
        delimiter: Option<Delimiter>,
        file_bytes: u64,
    ) -> Self {
        Self {
            path,
            text_columns,
            delimiter,
            file_bytes,
            header: None,
            rows: None,
            lines_before: 0,
            bytes_before: 0,
        }
    }

    fn feed(&mut self, block: &[u8]) -> Result<(), DataError> {
        let path = self.path;
        // Checked once here, for the whole block: its parts are then read as text directly.
        let block = utf8(path, block, self.lines_before, self.bytes_before)?;
        let (block, bom) = match block.strip_prefix('\u{FEFF}') {
            Some(rest) if self.bytes_before == 0 => (rest, 3),
            _ => (block, 0),
        };
        let lines = LineIndex::new(block.as_bytes());
        if self.header.is_none() && block.bytes().all(|b| b.is_ascii_whitespace()) {
            self.advance(&lines, bom + block.len());
            return Ok(());
        }
        let format = match (&self.header, self.delimiter) {
            (Some(header), _) => header.format,
            (None, Some(delimiter)) => CsvFormat::with(delimiter),
            (None, None) => CsvFormat::detect(block.as_bytes()),
        };
        let source = Source {
            path,
            text: block,
            lines: &lines,
            line_base: self.lines_before,
            byte_base: self.bytes_before + bom,
            format,
        };
        let mut body_start = 0;
        if self.header.is_none() {
            let (written, header_end) = source.header()?;
            body_start = header_end;
            let NamedColumns {
                names,
                notes,
                row_names,
            } = name_columns(written);
            let as_text = names
                .iter()
                .map(|name| self.text_columns.contains(&name.as_str()))
                .collect();
            self.header = Some(Header {
                names,
                as_text,
                notes,
                row_names,
                format,
            });
        }
        let Some(header) = &self.header else {
            return Ok(());
        };
        // Searched once: a block with no quote anywhere is split and parsed without a CSV
        // reader.
        let quoted = has_quote(&block.as_bytes()[body_start..]);
        let parts = source.parts(body_start, quoted);
        let parsed = super::parallel::map_in_parallel(&parts, |range| {
            source.parse_part(range.clone(), &header.as_text, quoted)
        });
        for part in parsed {
            let part = part?;
            match &mut self.rows {
                Some(rows) => rows.append(part),
                None => {
                    // Reserve for the whole file at this block's bytes per row: numeric
                    // columns then grow once, not by doubling (which would leave up to half
                    // of each unused).
                    let per_row = (block.len() - body_start) / part.lines.len().max(1);
                    let expected = (self.file_bytes as usize / per_row.max(1)) * 21 / 20;
                    let mut rows = part;
                    rows.reserve(expected);
                    self.rows = Some(rows);
                }
            }
        }
        self.advance(&lines, bom + block.len());
        Ok(())
    }

    fn advance(&mut self, lines: &LineIndex, bytes: usize) {
        self.lines_before += lines.breaks();
        self.bytes_before += bytes;
    }

    /// The table, once every block was fed; `reread(columns)` gives the text of the columns
    /// that turned out mostly non-numbers after starting as numbers.
    fn finish(
        self,
        reread: impl FnOnce(&[usize], CsvFormat) -> Result<Vec<TextColumn>, DataError>,
    ) -> Result<RawTable, DataError> {
        let path = self.path.to_path_buf();
        let Some(header) = self.header else {
            return Err(DataError::Empty { path });
        };
        let Some(Part {
            columns,
            lines,
            spanning,
        }) = self.rows.filter(|rows| !rows.lines.is_empty())
        else {
            return Err(DataError::HeaderOnly { path });
        };
        let mixed: Vec<usize> = columns
            .iter()
            .enumerate()
            .filter(|(_, column)| column.needs_text())
            .map(|(index, _)| index)
            .collect();
        let mut columns: Vec<Column> = columns
            .into_iter()
            .map(|column| {
                let mut column = column.finish();
                column.shrink_to_fit();
                column
            })
            .collect();
        if !mixed.is_empty() {
            for (index, text) in mixed.iter().zip(reread(&mixed, header.format)?) {
                columns[*index] = Column::Text(text);
            }
        }
        let mut table = RawTable::from_columns(path, header.names, columns, lines, spanning);
        table.format = header.format;
        table.header_notes = header.notes;
        table.row_names = header.row_names;
        Ok(table)
    }
}

/// A column being filled: numbers until its cells say otherwise.
enum Builder {
    Text(TextColumn),
    Numbers(NumberColumn),
}

impl Builder {
    fn push(&mut self, cell: &str) {
        match self {
            Builder::Text(column) => column.push(cell),
            Builder::Numbers(column) => {
                if column.push(cell) && column.holds_no_numbers() && !is_missing(cell) {
                    // Text before any number: a text column, and nothing is lost turning it so.
                    let numbers = std::mem::take(column);
                    *self = Builder::Text(numbers.into_text());
                }
            }
        }
    }

    fn append(&mut self, other: Builder) {
        match (&mut *self, other) {
            (Builder::Text(column), Builder::Text(other)) => column.append(other),
            (Builder::Numbers(column), Builder::Numbers(other)) => column.append(other),
            (Builder::Text(column), Builder::Numbers(other)) if other.holds_no_numbers() => {
                column.append(other.into_text())
            }
            (Builder::Numbers(column), Builder::Text(other)) if column.holds_no_numbers() => {
                let mut text = std::mem::take(column).into_text();
                text.append(other);
                *self = Builder::Text(text);
            }
            // Numbers in one part, text in another: the column is mixed, and
            // [`Builder::needs_text`] decides on all of it.
            (Builder::Numbers(column), Builder::Text(other)) => {
                column.append(NumberColumn::from_text(&other))
            }
            (Builder::Text(column), Builder::Numbers(other)) => {
                let mut numbers = NumberColumn::from_text(column);
                numbers.append(other);
                *self = Builder::Numbers(numbers);
            }
        }
    }

    fn reserve(&mut self, rows: usize) {
        if let Builder::Numbers(column) = self {
            column
                .values
                .reserve(rows.saturating_sub(column.values.len()));
        }
    }

    /// A numeric column whose cells are mostly not numbers: a categorical one, whose text as
    /// written the numbers in it do not keep.
    fn needs_text(&self) -> bool {
        let Builder::Numbers(column) = self else {
            return false;
        };
        if column.others.is_empty() {
            return false;
        }
        let (mut present, mut numeric_like, mut bad) = (column.values.len(), 0, 0);
        for (_, cell) in &column.others {
            if is_missing(cell) {
                present -= 1;
                continue;
            }
            match cell_kind(cell) {
                CellKind::Number => {}
                CellKind::Unusable => {
                    numeric_like += 1;
                    bad += 1;
                }
                CellKind::Text => bad += 1,
            }
        }
        numeric_like += column.values.len() - column.others.len();
        !reads_as_numbers(numeric_like, bad, present)
    }

    fn finish(self) -> Column {
        match self {
            Builder::Text(column) => Column::Text(column),
            Builder::Numbers(column) => Column::Numbers(column),
        }
    }
}

/// The rows of one part of the file.
struct Part {
    columns: Vec<Builder>,
    lines: Vec<u64>,
    spanning: BTreeMap<usize, Vec<u32>>,
}

impl Part {
    /// No rows yet: every column numbers, except those to keep as text.
    fn new(as_text: &[bool]) -> Self {
        Self {
            columns: as_text
                .iter()
                .map(|&text| {
                    if text {
                        Builder::Text(TextColumn::default())
                    } else {
                        Builder::Numbers(NumberColumn::default())
                    }
                })
                .collect(),
            lines: Vec::new(),
            spanning: BTreeMap::new(),
        }
    }

    fn append(&mut self, other: Part) {
        let offset = self.lines.len();
        for (column, other) in self.columns.iter_mut().zip(other.columns) {
            column.append(other);
        }
        self.lines.extend(other.lines);
        self.spanning.extend(
            other
                .spanning
                .into_iter()
                .map(|(row, offsets)| (row + offset, offsets)),
        );
    }

    fn reserve(&mut self, rows: usize) {
        for column in &mut self.columns {
            column.reserve(rows);
        }
        self.lines.reserve(rows.saturating_sub(self.lines.len()));
    }
}

/// A block of the file being parsed.
struct Source<'a> {
    path: &'a Path,
    /// The block, checked to be UTF-8.
    text: &'a str,
    /// Line breaks in this block.
    lines: &'a LineIndex,
    /// Line breaks and bytes in the file before this block.
    line_base: u64,
    byte_base: usize,
    format: CsvFormat,
}

impl<'a> Source<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The 1-based line in the file of the byte at `offset` in this block.
    fn line_of(&self, offset: usize) -> u64 {
        self.line_base + self.lines.line_of(offset)
    }

    /// A CSV reader's error, from a reader that started at `base` in this block.
    fn error(&self, base: usize, error: csv::Error) -> DataError {
        let line = error.position().map_or(self.line_base, |position| {
            self.line_of(skip_line_breaks(
                self.bytes(),
                base + position.byte() as usize,
            ))
        });
        csv_error(self.path, line, self.byte_base + base, error)
    }

    /// The header's trimmed names, and where the rows after it start; for the file's first block.
    fn header(&self) -> Result<(Vec<String>, usize), DataError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .delimiter(self.format.delimiter.byte())
            .from_reader(self.bytes());
        let names = reader
            .headers()
            .map_err(|error| self.error(0, error))?
            .iter()
            .map(|name| trim(name).to_string())
            .collect();
        let body_start = (reader.position().byte() as usize).min(self.text.len());
        Ok((names, body_start))
    }

    /// The block split at line ends into one part per core; one part when quoted cells could
    /// hold line breaks (`quoted`), or the block is small.
    fn parts(&self, body_start: usize, quoted: bool) -> Vec<Range<usize>> {
        let end = self.text.len();
        let body = &self.bytes()[body_start..];
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        if threads < 2 || body.len() < PARALLEL_PARSE_MIN_BYTES || quoted {
            return std::iter::once(body_start..end).collect();
        }
        let mut parts = Vec::with_capacity(threads);
        let mut start = body_start;
        for part in 1..threads {
            let target = (body_start + body.len() * part / threads).max(start);
            let Some(newline) = self.bytes()[target..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let split = target + newline + 1;
            parts.push(start..split);
            start = split;
        }
        parts.push(start..end);
        parts
    }

    /// Calls `row` with each data record of `range` (blank lines skipped), its cells untrimmed,
    /// and the offset in this block where it starts.
    fn for_each_record(
        &self,
        range: Range<usize>,
        mut row: impl FnMut(&csv::ByteRecord, usize) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let base = range.start;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(self.format.delimiter.byte())
            .from_reader(&self.bytes()[range]);
        let mut record = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(error) => return Err(self.error(base, error)),
            }
            if record.iter().all(|field| field.trim_ascii().is_empty()) {
                continue; // blank lines (often a trailing one) carry no data
            }
            let start = record.position().map_or(base, |position| {
                skip_line_breaks(self.bytes(), base + position.byte() as usize)
            });
            row(&record, start)?;
        }
    }

    /// `quoted`: whether the block holds a quote (then a CSV reader parses it).
    fn parse_part(
        &self,
        range: Range<usize>,
        as_text: &[bool],
        quoted: bool,
    ) -> Result<Part, DataError> {
        if !quoted && let Some(part) = self.parse_plain_part(range.clone(), as_text)? {
            return Ok(part);
        }
        let mut part = Part::new(as_text);
        let width = as_text.len();
        self.for_each_record(range, |record, start| {
            let line = self.line_of(start);
            if record.len() != width {
                return Err(DataError::Ragged {
                    path: self.path.to_path_buf(),
                    line,
                    expected: width,
                    found: record.len(),
                });
            }
            let mut spans = false;
            for (column, field) in part.columns.iter_mut().zip(record.iter()) {
                // The whole block was checked to be UTF-8 and quotes are ASCII, so every field is.
                let cell = std::str::from_utf8(field).map_err(|error| DataError::NotUtf8 {
                    path: self.path.to_path_buf(),
                    line,
                    byte: self.byte_base + start + error.valid_up_to(),
                })?;
                spans |= cell.contains(['\n', '\r']);
                column.push(&self.format.number_text(trim(cell)));
            }
            if spans {
                // Line breaks inside quoted cells move the lines of the cells after them.
                part.spanning
                    .insert(part.lines.len(), spanning_offsets(record));
            }
            part.lines.push(line);
            Ok(())
        })?;
        Ok(part)
    }
}

impl Source<'_> {
    /// Parses a part without quotes, where a row is a line and a cell what lies between commas:
    /// several times faster than a CSV reader's state machine. `None` for a part whose lines
    /// break at a lone carriage return (old Mac files), which the CSV reader handles.
    fn parse_plain_part(
        &self,
        range: Range<usize>,
        as_text: &[bool],
    ) -> Result<Option<Part>, DataError> {
        let mut part = Part::new(as_text);
        let width = as_text.len();
        let mut start = range.start;
        // Parts start and end at line ends, so `get` always finds one.
        let Some(text) = self.text.get(range.clone()) else {
            return Ok(None);
        };
        for raw in lines_of(text) {
            let line_start = start;
            start += raw.len() + 1;
            let row = raw.strip_suffix('\r').unwrap_or(raw);
            if row.contains('\r') {
                return Ok(None);
            }
            let delimiter = self.format.delimiter.byte();
            if row
                .bytes()
                .all(|b| b == delimiter || b.is_ascii_whitespace())
            {
                continue; // blank lines (often a trailing one) carry no data
            }
            let mut fields = Fields {
                rest: Some(row),
                delimiter,
            };
            let mut found = 0;
            // Tested once a line: most files have no decimal commas, and this loop runs for
            // every cell of a large file.
            let decimal_comma = self.format.decimal_comma;
            for (column, cell) in part.columns.iter_mut().zip(fields.by_ref()) {
                found += 1;
                if decimal_comma {
                    column.push(&self.format.number_text(trim(cell)));
                } else {
                    column.push(trim(cell));
                }
            }
            let line = self.line_of(line_start);
            if found != width || fields.next().is_some() {
                return Err(DataError::Ragged {
                    path: self.path.to_path_buf(),
                    line,
                    expected: width,
                    found: row.split(char::from(delimiter)).count(),
                });
            }
            part.lines.push(line);
        }
        Ok(Some(part))
    }
}

/// The cells of a line without quotes: what lies between its delimiters. `str::split` does
/// the same, but searching each cell of a few bytes as a general pattern costs more than the
/// number in it takes to parse.
struct Fields<'a> {
    rest: Option<&'a str>,
    /// An ASCII byte, so the cuts fall between characters.
    delimiter: u8,
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let delimiter = self.delimiter;
        match rest.bytes().position(|byte| byte == delimiter) {
            Some(comma) => {
                self.rest = Some(&rest[comma + 1..]);
                Some(&rest[..comma])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// Each cell's line offset from its row's start, for a record whose quoted cells hold line
/// breaks.
fn spanning_offsets(record: &csv::ByteRecord) -> Vec<u32> {
    let mut offsets = Vec::with_capacity(record.len());
    let mut breaks_before = 0u64;
    for field in record.iter() {
        let cell = std::str::from_utf8(field).unwrap_or_default();
        let leading = &cell[..cell.len()
            - cell
                .trim_start_matches(|c: char| c.is_ascii_whitespace())
                .len()];
        offsets.push(u32::try_from(breaks_before + count_line_breaks(leading)).unwrap_or(u32::MAX));
        breaks_before += count_line_breaks(cell);
    }
    offsets
}

/// A CSV reader's error at `line`; `base`: where in the file the reader started.
fn csv_error(path: &Path, line: u64, base: usize, error: csv::Error) -> DataError {
    match error.into_kind() {
        csv::ErrorKind::Io(source) => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
        csv::ErrorKind::Utf8 { err, .. } => DataError::NotUtf8 {
            path: path.to_path_buf(),
            line,
            byte: base + err.valid_up_to(),
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

/// Cells that mean "no value": empty, and the markers pandas, R, NumPy, SQL exports and
/// spreadsheets write for one.
pub(crate) fn is_missing(cell: &str) -> bool {
    matches!(
        cell,
        "" | "NA"
            | "N/A"
            | "na"
            | "n/a"
            | "?"
            | "null"
            | "NULL"
            | "Null"
            | "nan"
            | "NaN"
            | "NAN"
            | "#N/A"
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
