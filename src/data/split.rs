//! Deterministic, seeded train/validation split (stratified for classification).

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::csv::RawTable;
use super::schema::{Schema, Task};

/// Row indices (into the table) of each split, in a fixed shuffled order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub valid: Vec<usize>,
    /// Held out from training and selection alike (empty without a test fraction).
    pub test: Vec<usize>,
}

/// Splits rows so that about `valid_fraction` of them (and `test_fraction`, for a test split)
/// of each class, for classification, are held out. The same table, fractions and seed always
/// give the same split; without a test fraction it is the split Kiln always made.
pub fn split_indices(
    table: &RawTable,
    schema: &Schema,
    valid_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> Result<Split, String> {
    check_fractions(valid_fraction, test_fraction)?;
    let groups: Vec<Vec<usize>> = match schema.target.task {
        Task::Regression => vec![(0..table.row_count()).collect()],
        Task::Classification => {
            let target = table
                .column_index(&schema.target.name)
                .ok_or_else(|| format!("no target column '{}'", schema.target.name))?;
            let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for (row_index, row) in table.rows().enumerate() {
                let class = schema
                    .target
                    .class_index(&row.get(target))
                    .unwrap_or(usize::MAX);
                by_class.entry(class).or_default().push(row_index);
            }
            by_class.into_values().collect()
        }
    };
    Ok(split_groups(groups, valid_fraction, test_fraction, seed))
}

/// Splits class labels (stratified), for datasets that are not tables.
pub fn stratified_split(
    labels: &[usize],
    valid_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> Result<Split, String> {
    check_fractions(valid_fraction, test_fraction)?;
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (index, &label) in labels.iter().enumerate() {
        by_class.entry(label).or_default().push(index);
    }
    Ok(split_groups(
        by_class.into_values().collect(),
        valid_fraction,
        test_fraction,
        seed,
    ))
}

fn check_fractions(valid_fraction: f64, test_fraction: f64) -> Result<(), String> {
    if !(valid_fraction > 0.0 && valid_fraction < 1.0) {
        return Err(format!(
            "the validation fraction must be between 0 and 1, not {valid_fraction}"
        ));
    }
    if !(0.0..1.0).contains(&test_fraction) {
        return Err(format!(
            "the test fraction must be at least 0 and below 1, not {test_fraction}"
        ));
    }
    if valid_fraction + test_fraction >= 1.0 {
        return Err(format!(
            "validation ({valid_fraction}) and test ({test_fraction}) together leave no rows to train on"
        ));
    }
    Ok(())
}

fn split_groups(
    groups: Vec<Vec<usize>>,
    valid_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> Split {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut split = Split {
        train: Vec::new(),
        valid: Vec::new(),
        test: Vec::new(),
    };
    for mut group in groups {
        group.shuffle(&mut rng);
        let size = group.len();
        let mut test_count = (size as f64 * test_fraction).round() as usize;
        if test_fraction > 0.0 && size >= 3 {
            test_count = test_count.clamp(1, size - 2);
        }
        test_count = test_count.min(size.saturating_sub(2));
        let rest = size - test_count;
        let mut valid_count = (size as f64 * valid_fraction).round() as usize;
        if rest >= 2 {
            valid_count = valid_count.clamp(1, rest - 1);
        }
        valid_count = valid_count.min(rest);
        split.test.extend_from_slice(&group[..test_count]);
        split
            .valid
            .extend_from_slice(&group[test_count..test_count + valid_count]);
        split
            .train
            .extend_from_slice(&group[test_count + valid_count..]);
    }
    split.train.shuffle(&mut rng);
    split.valid.sort_unstable();
    split.test.sort_unstable();
    split
}
