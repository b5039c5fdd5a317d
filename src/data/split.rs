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
}

/// Splits rows so that about `valid_fraction` of them (of each class, for classification) are
/// held out for validation. The same table, fraction and seed always give the same split.
pub fn split_indices(
    table: &RawTable,
    schema: &Schema,
    valid_fraction: f64,
    seed: u64,
) -> Result<Split, String> {
    check_fraction(valid_fraction)?;
    let groups: Vec<Vec<usize>> = match schema.target.task {
        Task::Regression => vec![(0..table.rows.len()).collect()],
        Task::Classification => {
            let target = table
                .column_index(&schema.target.name)
                .ok_or_else(|| format!("no target column '{}'", schema.target.name))?;
            let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for (row_index, row) in table.rows.iter().enumerate() {
                let class = schema
                    .target
                    .class_index(&row[target])
                    .unwrap_or(usize::MAX);
                by_class.entry(class).or_default().push(row_index);
            }
            by_class.into_values().collect()
        }
    };
    Ok(split_groups(groups, valid_fraction, seed))
}

/// Splits class labels (stratified), for datasets that are not tables.
pub fn stratified_split(labels: &[usize], valid_fraction: f64, seed: u64) -> Result<Split, String> {
    check_fraction(valid_fraction)?;
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (index, &label) in labels.iter().enumerate() {
        by_class.entry(label).or_default().push(index);
    }
    Ok(split_groups(
        by_class.into_values().collect(),
        valid_fraction,
        seed,
    ))
}

fn check_fraction(valid_fraction: f64) -> Result<(), String> {
    if !(valid_fraction > 0.0 && valid_fraction < 1.0) {
        return Err(format!(
            "the validation fraction must be between 0 and 1, not {valid_fraction}"
        ));
    }
    Ok(())
}

fn split_groups(groups: Vec<Vec<usize>>, valid_fraction: f64, seed: u64) -> Split {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut split = Split {
        train: Vec::new(),
        valid: Vec::new(),
    };
    for mut group in groups {
        group.shuffle(&mut rng);
        let mut valid_count = (group.len() as f64 * valid_fraction).round() as usize;
        if group.len() >= 2 {
            valid_count = valid_count.clamp(1, group.len() - 1);
        }
        split.valid.extend_from_slice(&group[..valid_count]);
        split.train.extend_from_slice(&group[valid_count..]);
    }
    split.train.shuffle(&mut rng);
    split.valid.sort_unstable();
    split
}
