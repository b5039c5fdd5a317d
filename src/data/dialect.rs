//! The CSV files people have: which character separates the cells (comma, semicolon, tab),
//! whether decimals are written with a comma, and headers with empty or repeated names (pandas'
//! `to_csv` and R's `write.csv` write an empty name over the rows' names).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::csv::parse_number;

/// How far into a file the delimiter is looked for, and in how many lines.
const SAMPLE_BYTES: usize = 64 << 10;
const SAMPLE_LINES: usize = 20;

/// The character between cells: an ASCII character other than a quote or a line break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delimiter(u8);

impl Delimiter {
    pub const COMMA: Delimiter = Delimiter(b',');
    pub const SEMICOLON: Delimiter = Delimiter(b';');
    pub const TAB: Delimiter = Delimiter(b'\t');
    pub const PIPE: Delimiter = Delimiter(b'|');

    pub fn byte(self) -> u8 {
        self.0
    }

    /// What a person calls it.
    pub fn name(self) -> String {
        match self.0 {
            b',' => "comma".to_string(),
            b';' => "semicolon".to_string(),
            b'\t' => "tab".to_string(),
            b'|' => "pipe".to_string(),
            other => format!("'{}'", char::from(other)),
        }
    }
}

impl std::fmt::Display for Delimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for Delimiter {
    type Err = String;

    /// `,` `;` `|` or any one ASCII character; `tab` or `\t` for a tab; the names `comma`,
    /// `semicolon`, `pipe`.
    fn from_str(text: &str) -> Result<Self, String> {
        let byte = match text {
            "tab" | "\\t" | "\t" => b'\t',
            "comma" => b',',
            "semicolon" => b';',
            "pipe" => b'|',
            one if one.len() == 1 => one.as_bytes()[0],
            _ => {
                return Err(format!(
                    "'{text}' is not a delimiter: use one character such as , or ; or |, or 'tab'"
                ));
            }
        };
        if !byte.is_ascii() || matches!(byte, b'"' | b'\n' | b'\r') || byte.is_ascii_alphanumeric()
        {
            return Err(format!(
                "'{text}' cannot separate cells: use , ; | or tab (not a quote, a line break, a letter or a digit)"
            ));
        }
        Ok(Delimiter(byte))
    }
}

impl Serialize for Delimiter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&char::from(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Delimiter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How one file is written: its delimiter, and whether its decimals use a comma (`3,14`), as
/// spreadsheets in much of Europe write semicolon-separated files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvFormat {
    pub delimiter: Delimiter,
    pub decimal_comma: bool,
}

impl Default for CsvFormat {
    fn default() -> Self {
        Self::with(Delimiter::COMMA)
    }
}

impl CsvFormat {
    /// A file separated by `delimiter`; a semicolon file may write decimals with a comma.
    pub fn with(delimiter: Delimiter) -> Self {
        Self {
            delimiter,
            decimal_comma: delimiter == Delimiter::SEMICOLON,
        }
    }

    /// The delimiter a file's first lines use: of comma, semicolon, tab and pipe, the one that
    /// splits every sampled line (outside quotes) into the same number of cells, most cells
    /// first; else the one the header holds most of; else a comma.
    pub fn detect(bytes: &[u8]) -> Self {
        let sample = &bytes[..bytes.len().min(SAMPLE_BYTES)];
        let mut lines: Vec<&[u8]> = sample
            .split(|&byte| byte == b'\n')
            .filter(|line| !line.trim_ascii().is_empty())
            .take(SAMPLE_LINES + 1)
            .collect();
        // The last line of a cut sample may be cut too.
        if (sample.len() < bytes.len() || lines.len() > SAMPLE_LINES) && lines.len() > 1 {
            lines.pop();
        }
        let Some(header) = lines.first() else {
            return Self::default();
        };
        // Ties go to the rarer character: a semicolon or tab on every line is no accident.
        let candidates = [
            Delimiter::TAB,
            Delimiter::SEMICOLON,
            Delimiter::PIPE,
            Delimiter::COMMA,
        ];
        let in_header: Vec<(Delimiter, usize)> = candidates
            .iter()
            .map(|&delimiter| (delimiter, count_outside_quotes(header, delimiter.byte())))
            .filter(|&(_, count)| count > 0)
            .collect();
        let consistent = in_header.iter().filter(|&&(delimiter, count)| {
            lines
                .iter()
                .all(|line| count_outside_quotes(line, delimiter.byte()) == count)
        });
        let delimiter = most_cells(consistent).or_else(|| most_cells(in_header.iter()));
        Self::with(delimiter.unwrap_or(Delimiter::COMMA))
    }

    /// A cell as the number parser reads it: `3,14` becomes `3.14` in a file with decimal
    /// commas (only where the result is a number; text with a comma stays as written).
    pub(crate) fn number_text<'a>(&self, cell: &'a str) -> Cow<'a, str> {
        if !self.decimal_comma || cell.contains('.') {
            return Cow::Borrowed(cell);
        }
        let mut commas = memchr::memchr_iter(b',', cell.as_bytes());
        match (commas.next(), commas.next()) {
            (Some(_), None) => {
                let pointed = cell.replacen(',', ".", 1);
                if parse_number(&pointed).is_some() {
                    Cow::Owned(pointed)
                } else {
                    Cow::Borrowed(cell)
                }
            }
            _ => Cow::Borrowed(cell),
        }
    }

    /// "semicolon-separated, decimal commas", for notes and the data panel.
    pub fn describe(&self) -> String {
        let mut text = format!("{}-separated", self.delimiter.name());
        if self.decimal_comma {
            text.push_str(", decimal commas");
        }
        text
    }
}

/// The delimiter that splits into the most cells; of equals, the first.
fn most_cells<'a>(found: impl Iterator<Item = &'a (Delimiter, usize)>) -> Option<Delimiter> {
    found
        .fold(
            None,
            |best: Option<&(Delimiter, usize)>, candidate| match best {
                Some(most) if most.1 >= candidate.1 => best,
                _ => Some(candidate),
            },
        )
        .map(|&(delimiter, _)| delimiter)
}

/// How many times `delimiter` appears in `line` outside double quotes.
fn count_outside_quotes(line: &[u8], delimiter: u8) -> usize {
    let mut quoted = false;
    let mut count = 0;
    for &byte in line {
        if byte == b'"' {
            quoted = !quoted;
        } else if byte == delimiter && !quoted {
            count += 1;
        }
    }
    count
}

/// A header with every column named once.
pub(crate) struct NamedColumns {
    pub names: Vec<String>,
    /// What was renamed, and why, for the user.
    pub notes: Vec<String>,
    /// A first column without a name, over other named ones: the rows' names or numbers, as
    /// pandas (`to_csv` keeps the index) and R (`write.csv`) write them.
    pub row_names: Option<usize>,
}

/// Gives an empty header cell at (1-based) position N the name `column_N`, and a name seen
/// before `NAME_2`, `NAME_3`… (never a name the header already has).
pub(crate) fn name_columns(written: Vec<String>) -> NamedColumns {
    let mut names: Vec<String> = Vec::with_capacity(written.len());
    let mut notes = Vec::new();
    let others_named = written.iter().skip(1).any(|name| !name.is_empty());
    let row_names = (written.len() > 1 && written[0].is_empty() && others_named).then_some(0);
    for (index, name) in written.iter().enumerate() {
        let taken = |candidate: &str, names: &[String]| {
            written.iter().any(|name| name == candidate) || names.iter().any(|n| n == candidate)
        };
        if name.is_empty() {
            let mut generated = format!("column_{}", index + 1);
            let mut extra = 2;
            while taken(&generated, &names) {
                generated = format!("column_{}_{extra}", index + 1);
                extra += 1;
            }
            if row_names != Some(index) {
                notes.push(format!(
                    "the header's column {} has no name; it is called '{generated}'",
                    index + 1
                ));
            }
            names.push(generated);
        } else if names.contains(name) {
            let mut extra = 2;
            let mut generated = format!("{name}_{extra}");
            while taken(&generated, &names) {
                extra += 1;
                generated = format!("{name}_{extra}");
            }
            notes.push(format!(
                "the header names '{name}' more than once; its column {} is called '{generated}'",
                index + 1
            ));
            names.push(generated);
        } else {
            names.push(name.clone());
        }
    }
    NamedColumns {
        names,
        notes,
        row_names,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delimiter_is_the_one_every_line_agrees_on() {
        let detect = |text: &str| CsvFormat::detect(text.as_bytes());
        assert_eq!(detect("a,b,c\n1,2,3\n").delimiter, Delimiter::COMMA);
        assert_eq!(detect("a;b;c\n1,5;2;3\n").delimiter, Delimiter::SEMICOLON);
        assert!(detect("a;b;c\n1,5;2;3\n").decimal_comma);
        assert_eq!(detect("a\tb\n1.5\t2\n").delimiter, Delimiter::TAB);
        // A comma inside quotes does not count.
        assert_eq!(
            detect("name;x\n\"Smith, J\";1\n\"Doe, A\";2\n").delimiter,
            Delimiter::SEMICOLON
        );
        // One column: nothing to detect.
        assert_eq!(detect("x\n1\n2\n").delimiter, Delimiter::COMMA);
    }

    #[test]
    fn decimal_commas_become_points_only_in_numbers() {
        let format = CsvFormat::with(Delimiter::SEMICOLON);
        assert_eq!(format.number_text("3,14"), "3.14");
        assert_eq!(format.number_text("-0,5"), "-0.5");
        assert_eq!(format.number_text("Smith, J"), "Smith, J");
        assert_eq!(format.number_text("1,234,5"), "1,234,5");
        assert_eq!(CsvFormat::default().number_text("3,14"), "3,14");
    }

    #[test]
    fn delimiters_are_read_from_what_people_type() {
        assert_eq!("tab".parse::<Delimiter>(), Ok(Delimiter::TAB));
        assert_eq!("\\t".parse::<Delimiter>(), Ok(Delimiter::TAB));
        assert_eq!(";".parse::<Delimiter>(), Ok(Delimiter::SEMICOLON));
        assert!("x".parse::<Delimiter>().is_err());
        assert!("\"".parse::<Delimiter>().is_err());
        assert!(";;".parse::<Delimiter>().is_err());
    }

    #[test]
    fn empty_and_repeated_names_get_clear_ones() {
        let named = name_columns(
            ["", "a", "a", "", "a_2"]
                .iter()
                .map(|name| name.to_string())
                .collect(),
        );
        assert_eq!(
            named.names,
            ["column_1", "a", "a_3", "column_4", "a_2"].map(String::from)
        );
        assert_eq!(named.row_names, Some(0));
        assert_eq!(named.notes.len(), 2, "{:?}", named.notes);
    }
}
