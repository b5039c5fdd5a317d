//! Which settings matter for a metric across runs.
//!
//! Two measures, shown together: the out-of-bag **permutation importance** of a small random
//! forest (how much worse the forest predicts the metric, on runs each tree did not see, when
//! one setting's values are shuffled), and **Spearman's rank correlation** of each setting with
//! the metric. Out-of-bag error never rewards a forest for memorising a handful of runs, and a
//! setting that does not matter gets an importance near zero (or below it) rather than a share
//! of a fixed total; the rank correlation needs no model at all and catches monotone effects.
//! With fewer than 10 runs both are flagged as rough.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

/// Runs below which the importance is shown as rough.
pub const FEW_RUNS: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    pub parameter: String,
    /// Increase of the out-of-bag mean squared error when the setting is shuffled, relative to
    /// the metric's variance (0: no effect).
    pub permutation: f64,
    /// Spearman's rank correlation with the metric, in [-1, 1] (`NaN` for a constant setting).
    pub spearman: f64,
}

/// `features[i][j]`: run i's value of parameter j (categorical settings as codes); `target[i]`
/// the metric. Sorted by permutation importance, largest first. Deterministic for a seed.
pub fn parameter_importance(
    names: &[String],
    features: &[Vec<f64>],
    target: &[f64],
    seed: u64,
) -> Vec<Importance> {
    let n = target.len();
    if n < 3 || names.is_empty() {
        return Vec::new();
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let forest = Forest::fit(features, target, 100, &mut rng);
    let variance = variance(target).max(1e-12);
    let mut results: Vec<Importance> = (0..names.len())
        .map(|column| Importance {
            parameter: names[column].clone(),
            permutation: forest.permutation_increase(features, target, column, &mut rng) / variance,
            spearman: spearman(
                &features.iter().map(|row| row[column]).collect::<Vec<_>>(),
                target,
            ),
        })
        .collect();
    results.sort_by(|a, b| b.permutation.total_cmp(&a.permutation));
    results
}

fn variance(values: &[f64]) -> f64 {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64
}

fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        // Ties share the mean rank.
        let rank = (i + j) as f64 / 2.0;
        for &index in &order[i..=j] {
            ranks[index] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rank correlation (Pearson's on the ranks).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let (va, vb): (f64, f64) = (
        ra.iter().map(|x| (x - ma).powi(2)).sum(),
        rb.iter().map(|y| (y - mb).powi(2)).sum(),
    );
    if va == 0.0 || vb == 0.0 {
        return f64::NAN;
    }
    cov / (va.sqrt() * vb.sqrt())
}

/// A regression tree node: a split or a leaf value.
enum Node {
    Leaf(f64),
    Split {
        feature: usize,
        threshold: f64,
        left: Box<Node>,
        right: Box<Node>,
    },
}

impl Node {
    fn predict(&self, row: &[f64]) -> f64 {
        match self {
            Node::Leaf(value) => *value,
            Node::Split {
                feature,
                threshold,
                left,
                right,
            } => {
                if row[*feature] <= *threshold {
                    left.predict(row)
                } else {
                    right.predict(row)
                }
            }
        }
    }
}

const MAX_DEPTH: usize = 6;
const MIN_LEAF: usize = 2;

fn grow(
    features: &[Vec<f64>],
    target: &[f64],
    rows: &[usize],
    depth: usize,
    rng: &mut StdRng,
) -> Node {
    let mean = rows.iter().map(|&i| target[i]).sum::<f64>() / rows.len() as f64;
    if depth >= MAX_DEPTH || rows.len() < 2 * MIN_LEAF {
        return Node::Leaf(mean);
    }
    let width = features[0].len();
    let tried = (width / 3).max(1).min(width);
    let mut candidates: Vec<usize> = (0..width).collect();
    candidates.shuffle(rng);
    let sse = |rows: &[usize]| {
        let m = rows.iter().map(|&i| target[i]).sum::<f64>() / rows.len() as f64;
        rows.iter().map(|&i| (target[i] - m).powi(2)).sum::<f64>()
    };
    let parent = sse(rows);
    let mut best: Option<(f64, usize, f64)> = None;
    for &feature in &candidates[..tried] {
        // Sorted by the feature, every split point is scored from running sums in one pass.
        let mut sorted: Vec<(f64, f64)> = rows
            .iter()
            .map(|&i| (features[i][feature], target[i]))
            .collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (total_sum, total_sq): (f64, f64) = sorted
            .iter()
            .fold((0.0, 0.0), |(s, q), (_, y)| (s + y, q + y * y));
        let (mut left_sum, mut left_sq) = (0.0, 0.0);
        for split in 1..sorted.len() {
            let y = sorted[split - 1].1;
            left_sum += y;
            left_sq += y * y;
            if sorted[split].0 == sorted[split - 1].0
                || split < MIN_LEAF
                || sorted.len() - split < MIN_LEAF
            {
                continue;
            }
            let (nl, nr) = (split as f64, (sorted.len() - split) as f64);
            let (right_sum, right_sq) = (total_sum - left_sum, total_sq - left_sq);
            let total =
                (left_sq - left_sum * left_sum / nl) + (right_sq - right_sum * right_sum / nr);
            if best.is_none_or(|(current, _, _)| total < current) {
                let threshold = (sorted[split - 1].0 + sorted[split].0) / 2.0;
                best = Some((total, feature, threshold));
            }
        }
    }
    match best {
        Some((total, feature, threshold)) if total < parent - 1e-12 => {
            let (left, right): (Vec<usize>, Vec<usize>) = rows
                .iter()
                .partition(|&&i| features[i][feature] <= threshold);
            Node::Split {
                feature,
                threshold,
                left: Box::new(grow(features, target, &left, depth + 1, rng)),
                right: Box::new(grow(features, target, &right, depth + 1, rng)),
            }
        }
        _ => Node::Leaf(mean),
    }
}

struct Forest {
    trees: Vec<(Node, Vec<usize>)>,
}

impl Forest {
    /// Bootstrap-sampled trees, each with the rows it did not see (its out-of-bag rows).
    fn fit(features: &[Vec<f64>], target: &[f64], count: usize, rng: &mut StdRng) -> Self {
        let n = target.len();
        let trees = (0..count)
            .map(|_| {
                let sample: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
                let mut seen = vec![false; n];
                for &i in &sample {
                    seen[i] = true;
                }
                let out_of_bag = (0..n).filter(|&i| !seen[i]).collect();
                (grow(features, target, &sample, 0, rng), out_of_bag)
            })
            .collect();
        Self { trees }
    }

    /// Out-of-bag squared error with `column` shuffled, minus the error without shuffling.
    fn permutation_increase(
        &self,
        features: &[Vec<f64>],
        target: &[f64],
        column: usize,
        rng: &mut StdRng,
    ) -> f64 {
        let (mut base, mut shuffled, mut count) = (0.0, 0.0, 0usize);
        for (tree, out_of_bag) in &self.trees {
            if out_of_bag.len() < 2 {
                continue;
            }
            let mut values: Vec<f64> = out_of_bag.iter().map(|&i| features[i][column]).collect();
            values.shuffle(rng);
            for (&i, &value) in out_of_bag.iter().zip(&values) {
                let mut row = features[i].clone();
                base += (tree.predict(&row) - target[i]).powi(2);
                row[column] = value;
                shuffled += (tree.predict(&row) - target[i]).powi(2);
                count += 1;
            }
        }
        if count == 0 {
            return 0.0;
        }
        (shuffled - base) / count as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_settings_that_matter_rank_first() {
        let mut rng = StdRng::seed_from_u64(11);
        let names: Vec<String> = ["lr", "noise_a", "width", "noise_b", "noise_c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut features = Vec::new();
        let mut target = Vec::new();
        for _ in 0..60 {
            let row: Vec<f64> = (0..5).map(|_| rng.random::<f64>()).collect();
            // Only lr (0) and width (2) matter.
            target.push((row[0] * 3.0).sin() * 2.0 + row[2] * 1.5 + rng.random::<f64>() * 0.05);
            features.push(row);
        }
        let ranked = parameter_importance(&names, &features, &target, 7);
        let top: Vec<&str> = ranked[..2].iter().map(|i| i.parameter.as_str()).collect();
        assert!(top.contains(&"lr") && top.contains(&"width"), "{ranked:#?}");
        assert!(
            ranked[2].permutation < ranked[1].permutation / 3.0,
            "{ranked:#?}"
        );
        // Deterministic for a seed.
        assert_eq!(ranked, parameter_importance(&names, &features, &target, 7));
    }

    #[test]
    fn spearman_sees_monotone_relations() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 25.0, 100.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert!(spearman(&a, &[1.0, 1.0, 1.0, 1.0]).is_nan());
    }
}
