//! Columns that name or number the rows rather than describe them: pandas' index and R's row
//! names (an empty first header), and integer columns that count the rows. A model learns the
//! file's order from them, and a file sorted by class then leaks the label: Titanic's row
//! numbers lift validation accuracy from 81 % to 94–97 %. They are left out unless kept.

use serde::{Deserialize, Serialize};

use super::columns::ColumnChoices;
use super::csv::RawTable;

/// Fewer rows than this say too little to call a column row numbers.
const MIN_ROWS: usize = 8;

/// How a column was recognised as naming or numbering the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowIdKind {
    /// The first column has no name in the header (pandas' `to_csv`, R's `write.csv`).
    Names,
    /// Integers that grow on every row.
    Increasing,
    /// The integers 1…n (or 0…n−1) in some order.
    Permutation,
}

/// A column found to name or number the rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowIdColumn {
    pub name: String,
    pub kind: RowIdKind,
}

impl RowIdColumn {
    /// A short label for the data panel.
    pub fn label(&self) -> &'static str {
        match self.kind {
            RowIdKind::Names => "row names",
            RowIdKind::Increasing | RowIdKind::Permutation => "row numbers",
        }
    }

    /// What was left out and why, and how to keep it.
    pub fn note(&self) -> String {
        let name = &self.name;
        let why = match self.kind {
            RowIdKind::Names => format!(
                "the first column has no name in the header, as pandas' to_csv and R's write.csv write the rows' names or index; it is called '{name}' and left out of the features"
            ),
            RowIdKind::Increasing => format!(
                "column '{name}' holds integers that grow on every row: row numbers, left out of the features (a model would learn the file's order, and a file sorted by class leaks the label)"
            ),
            RowIdKind::Permutation => format!(
                "column '{name}' holds each row number once: row numbers, left out of the features (a model would learn the file's order, and a file sorted by class leaks the label)"
            ),
        };
        format!(
            "{why}; if it is a real feature, keep it: --keep {name}, or tick it in the data panel's Columns"
        )
    }
}

/// The columns of `table` that name or number its rows, in file order. The target, and
/// columns the user already decided about (excluded, categorical, non-numbers as missing), are
/// never counted; `keep` does not hide a column from this list. When every feature column is
/// one, none is returned: leaving them all out would leave nothing to learn from.
pub(crate) fn find_row_ids(
    table: &RawTable,
    target: usize,
    choices: &ColumnChoices,
) -> Vec<RowIdColumn> {
    let candidates: Vec<usize> = (0..table.header.len())
        .filter(|&index| index != target && !choices.excludes(&table.header[index]))
        .collect();
    let found: Vec<RowIdColumn> = candidates
        .iter()
        .filter_map(|&index| {
            let name = &table.header[index];
            let decided = choices.is_categorical(name) || choices.treats_as_missing(name);
            let kind = if table.row_names == Some(index) {
                RowIdKind::Names
            } else if decided {
                return None;
            } else {
                counting_kind(table.numbers(index)?)?
            };
            Some(RowIdColumn {
                name: name.clone(),
                kind,
            })
        })
        .collect();
    let all_kept_out =
        found.iter().filter(|id| !choices.keeps(&id.name)).count() == candidates.len();
    if all_kept_out { Vec::new() } else { found }
}

/// Whether a numeric column counts the rows: integers, every cell present, strictly increasing
/// or each of 1…n (or 0…n−1) once.
fn counting_kind(values: &[f32]) -> Option<RowIdKind> {
    if values.len() < MIN_ROWS || values.iter().any(|value| value.fract() != 0.0) {
        return None; // a missing cell is NaN, whose fraction is NaN
    }
    if values.windows(2).all(|pair| pair[0] < pair[1]) {
        return Some(RowIdKind::Increasing);
    }
    let rows = values.len();
    let mut seen = vec![false; rows + 1];
    let lowest = values
        .iter()
        .fold(f32::INFINITY, |low, &value| low.min(value));
    if lowest != 0.0 && lowest != 1.0 {
        return None;
    }
    for &value in values {
        let at = (value - lowest) as usize;
        if value < lowest || at >= rows || seen[at] {
            return None;
        }
        seen[at] = true;
    }
    Some(RowIdKind::Permutation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_columns_are_recognised_and_others_are_not() {
        let ramp: Vec<f32> = (1..=20).map(|n| n as f32).collect();
        assert_eq!(counting_kind(&ramp), Some(RowIdKind::Increasing));
        let sparse: Vec<f32> = (0..20).map(|n| (1000 + 7 * n) as f32).collect();
        assert_eq!(counting_kind(&sparse), Some(RowIdKind::Increasing));
        let mut shuffled: Vec<f32> = (0..20).map(|n| ((n * 7) % 20) as f32).collect();
        assert_eq!(counting_kind(&shuffled), Some(RowIdKind::Permutation));
        shuffled[3] = shuffled[4]; // a repeat: not a permutation
        assert_eq!(counting_kind(&shuffled), None);
        let measured: Vec<f32> = (0..20).map(|n| n as f32 + 0.5).collect();
        assert_eq!(counting_kind(&measured), None);
        let ages: Vec<f32> = [30, 22, 45, 30, 61, 18, 22, 40, 33, 29]
            .map(|n| n as f32)
            .to_vec();
        assert_eq!(counting_kind(&ages), None);
        let short: Vec<f32> = (1..=5).map(|n| n as f32).collect();
        assert_eq!(counting_kind(&short), None);
        let mut gap = ramp.clone();
        gap[4] = f32::NAN;
        assert_eq!(counting_kind(&gap), None);
        // Shifted by one more than 1: not a permutation of 1…n.
        let offset: Vec<f32> = (0..20).map(|n| ((n * 7) % 20 + 2) as f32).collect();
        assert_eq!(counting_kind(&offset), None);
    }
}
