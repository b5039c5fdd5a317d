//! The user's choices about particular columns (leave out, read as categories, treat non-numbers
//! as missing) and the type inference of feature columns that honours them.
//!
//! Nothing is re-typed silently: a column that is mostly numbers is numeric, and its other
//! cells are an error until the user picks one of the two ways out.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::DataError;
use super::csv::{CellKind, CellValue, RawTable, cell_kind, is_missing};

/// Bad cells named in an error; the rest are counted.
const CELLS_SHOWN: usize = 5;
/// A categorical column with at least this share of distinct values per row looks like an id.
const ID_LIKE_SHARE: f64 = 0.9;
/// Fewer present cells than this say too little to call a column id-like.
const ID_LIKE_MIN_ROWS: usize = 8;

/// Per-column decisions, recorded in the run and the model card so `predict` applies the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnChoices {
    /// Left out of the features (ids, names, free text); `predict` ignores them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Read as categories (one-hot) even though most cells are numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categorical: Vec<String>,
    /// Numeric columns whose non-numbers (typos, `NaN`, `inf`) and blanks count as missing and
    /// are filled with the training mean.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub as_missing: Vec<String>,
    /// Used as features although Kiln would leave them out on its own (row names, row numbers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<String>,
}

impl ColumnChoices {
    pub fn is_empty(&self) -> bool {
        self.exclude.is_empty()
            && self.categorical.is_empty()
            && self.as_missing.is_empty()
            && self.keep.is_empty()
    }

    pub fn keeps(&self, column: &str) -> bool {
        self.keep.iter().any(|name| name == column)
    }

    pub fn excludes(&self, column: &str) -> bool {
        self.exclude.iter().any(|name| name == column)
    }

    pub fn is_categorical(&self, column: &str) -> bool {
        self.categorical.iter().any(|name| name == column)
    }

    pub fn treats_as_missing(&self, column: &str) -> bool {
        self.as_missing.iter().any(|name| name == column)
    }

    /// Adds or removes `column` from a list (for check boxes and buttons).
    pub fn set(list: &mut Vec<String>, column: &str, on: bool) {
        list.retain(|name| name != column);
        if on {
            list.push(column.to_string());
        }
    }

    /// Every named column exists, none is the target, and no column has two contradicting choices.
    pub(crate) fn check(&self, table: &RawTable, target: &str) -> Result<(), DataError> {
        let lists = [
            (&self.exclude, "excluded"),
            (&self.categorical, "categorical"),
            (&self.as_missing, "treated as missing"),
            (&self.keep, "kept"),
        ];
        for (list, what) in lists {
            for name in list {
                if table.column_index(name).is_none() {
                    return Err(DataError::NoSuchColumn {
                        path: table.path.clone(),
                        column: name.clone(),
                        available: table.header.join(", "),
                    });
                }
                if name == target {
                    return Err(DataError::Invalid {
                        path: table.path.clone(),
                        message: format!(
                            "column '{name}' is the target; it cannot be {what} (choose another target first)"
                        ),
                    });
                }
            }
        }
        if let Some(both) = self.keep.iter().find(|name| self.excludes(name)) {
            return Err(DataError::Invalid {
                path: table.path.clone(),
                message: format!("column '{both}' cannot be both kept and excluded; pick one"),
            });
        }
        if let Some(both) = self
            .categorical
            .iter()
            .find(|name| self.treats_as_missing(name))
        {
            return Err(DataError::Invalid {
                path: table.path.clone(),
                message: format!(
                    "column '{both}' cannot be both categorical and numeric with non-numbers as missing; pick one"
                ),
            });
        }
        Ok(())
    }
}

/// A cell that is not a usable number, where one was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCell {
    pub line: u64,
    pub value: String,
}

/// `line 4: 'abc', line 9: 'NaN'`, and how many more.
pub(crate) fn describe_cells(cells: &[BadCell], count: &usize) -> String {
    let mut text = cells
        .iter()
        .map(|cell| format!("line {}: '{}'", cell.line, cell.value))
        .collect::<Vec<_>>()
        .join(", ");
    if *count > cells.len() {
        text.push_str(&format!(" and {} more", count - cells.len()));
    }
    text
}

/// Collects the first few bad cells of a column and counts them all.
#[derive(Debug, Default)]
pub(crate) struct BadCells {
    pub cells: Vec<BadCell>,
    pub count: usize,
}

impl BadCells {
    pub(crate) fn add(&mut self, line: u64, value: &str) {
        self.count += 1;
        if self.cells.len() < CELLS_SHOWN {
            self.cells.push(BadCell {
                line,
                value: value.to_string(),
            });
        }
    }
}

/// A feature column's type as inferred.
pub(crate) enum Inferred {
    Numeric,
    Categorical(BTreeSet<String>),
}

/// Infers one feature column's type, honouring the user's choices; notes what the user should
/// know (a mixed column read as categories, an id-like column) in `warnings`.
pub(crate) fn infer_feature(
    table: &RawTable,
    column: usize,
    choices: &ColumnChoices,
    warnings: &mut Vec<String>,
) -> Result<Inferred, DataError> {
    let name = &table.header[column];
    let mut present = 0usize;
    let mut numbers = 0usize;
    let mut unusable = 0usize;
    let mut bad = BadCells::default();
    // Distinct values are gathered only once the column turns out to be categorical: a numeric
    // column of 200,000 rows would otherwise keep a set of 200,000 strings for nothing.
    for (row_index, value) in table.values(column).enumerate() {
        let cell = match value {
            CellValue::Number(_) => {
                present += 1;
                numbers += 1;
                continue;
            }
            CellValue::Text(cell) => cell,
        };
        if is_missing(cell) {
            continue;
        }
        present += 1;
        match cell_kind(cell) {
            CellKind::Number => numbers += 1,
            kind => {
                if kind == CellKind::Unusable {
                    unusable += 1;
                }
                bad.add(table.cell_line(row_index, column), cell);
            }
        }
    }
    if choices.is_categorical(name) {
        return Ok(Inferred::Categorical(distinct_values(table, column)));
    }
    if choices.treats_as_missing(name) {
        if numbers == 0 && present > 0 {
            return Err(DataError::Invalid {
                path: table.path.clone(),
                message: format!(
                    "column '{name}' has no numbers, so treating its non-numbers as missing leaves nothing; read it as categories or exclude it"
                ),
            });
        }
        return Ok(Inferred::Numeric);
    }
    // NaN and inf spelled out are numbers in intent, so they count towards "mostly numbers".
    if reads_as_numbers(numbers + unusable, bad.count, present) {
        if bad.count > 0 {
            return Err(DataError::NonNumericCells {
                path: table.path.clone(),
                column: name.clone(),
                count: bad.count,
                cells: bad.cells,
            });
        }
        return Ok(Inferred::Numeric);
    }
    if numbers > 0 {
        warnings.push(format!(
            "column '{name}' is read as categories: only {numbers} of its {present} cells are numbers (declare it categorical to confirm, or treat its non-numbers as missing with --as-missing {name})"
        ));
    }
    let distinct = distinct_values(table, column);
    if present >= ID_LIKE_MIN_ROWS && distinct.len() as f64 >= ID_LIKE_SHARE * present as f64 {
        warnings.push(id_like_warning(name, distinct.len(), present));
    }
    Ok(Inferred::Categorical(distinct))
}

/// Whether a column with these counts of cells is numeric: every present cell a number, or
/// most of them meant as one (`NaN` and `inf` spelled out count, as numbers in intent).
pub(crate) fn reads_as_numbers(numeric_like: usize, bad: usize, present: usize) -> bool {
    bad == 0 || 2 * numeric_like > present
}

/// A column's present (not missing) values, each once.
fn distinct_values(table: &RawTable, column: usize) -> BTreeSet<String> {
    table
        .column(column)
        .filter(|cell| !is_missing(cell))
        .map(|cell| cell.into_owned())
        .collect()
}

fn id_like_warning(name: &str, distinct: usize, rows: usize) -> String {
    format!(
        "column '{name}' has {distinct} different values in {rows} rows: it looks like an id or free text, which a model cannot learn from; consider excluding it (--exclude {name}, or untick it in the data panel)"
    )
}
