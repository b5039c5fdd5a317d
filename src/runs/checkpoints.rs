//! The checkpoint index of a run (`checkpoints/index.json`) and the keep-best-plus-last-N policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointEntry {
    pub epoch: usize,
    pub step: u64,
    /// File names inside `checkpoints/`.
    pub model_file: String,
    pub optimizer_file: String,
    /// Metrics at this epoch, e.g. `valid_loss`, `valid_accuracy`, `train_loss`.
    #[serde(with = "non_finite_map")]
    pub metrics: BTreeMap<String, f64>,
    /// Validation `confusion[actual][predicted]` counts at this epoch (classification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Vec<Vec<u64>>>,
    #[serde(default)]
    pub best: bool,
    pub wall_secs: f64,
}

impl CheckpointEntry {
    pub fn valid_loss(&self) -> Option<f64> {
        self.metrics.get("valid_loss").copied()
    }

    /// Per-class precision and recall on the validation split (classification checkpoints).
    pub fn class_report(&self) -> Option<Vec<ClassMetrics>> {
        self.confusion.as_deref().map(class_report)
    }
}

/// Precision, recall and support of one class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMetrics {
    pub class: usize,
    /// Of the rows predicted as this class, the share that are; `None` when none were.
    pub precision: Option<f64>,
    /// Of the rows of this class, the share predicted as it; `None` when there are none.
    pub recall: Option<f64>,
    pub support: u64,
}

/// Per-class metrics from `confusion[actual][predicted]`.
pub fn class_report(confusion: &[Vec<u64>]) -> Vec<ClassMetrics> {
    (0..confusion.len())
        .map(|class| {
            let hits = confusion[class].get(class).copied().unwrap_or(0);
            let support: u64 = confusion[class].iter().sum();
            let predicted: u64 = confusion
                .iter()
                .map(|row| row.get(class).copied().unwrap_or(0))
                .sum();
            ClassMetrics {
                class,
                precision: (predicted > 0).then(|| hits as f64 / predicted as f64),
                recall: (support > 0).then(|| hits as f64 / support as f64),
                support,
            }
        })
        .collect()
}

/// Macro-averaged precision and recall: the mean over classes (a class never predicted counts
/// as precision 0; classes without rows are left out of recall).
pub fn macro_precision_recall(confusion: &[Vec<u64>]) -> (f64, f64) {
    let report = class_report(confusion);
    let mean = |values: Vec<f64>| {
        if values.is_empty() {
            0.0
        } else {
            values.iter().sum::<f64>() / values.len() as f64
        }
    };
    let precision = mean(
        report
            .iter()
            .filter(|metrics| metrics.support > 0)
            .map(|metrics| metrics.precision.unwrap_or(0.0))
            .collect(),
    );
    let recall = mean(report.iter().filter_map(|metrics| metrics.recall).collect());
    (precision, recall)
}

/// A checkpoint to write: its entry and its two files' bytes.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointFiles<'a> {
    pub entry: &'a CheckpointEntry,
    pub model_bytes: &'a [u8],
    pub optimizer_bytes: &'a [u8],
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointIndex {
    pub checkpoints: Vec<CheckpointEntry>,
    /// What makes a checkpoint the best one; absent: the lowest validation loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_by: Option<BestBy>,
}

/// The metric (a key of [`CheckpointEntry::metrics`], e.g. `valid_accuracy`) that picks the best
/// checkpoint, and whether higher or lower is better.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BestBy {
    pub metric: String,
    pub goal: Goal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    Min,
    Max,
}

impl Goal {
    /// The goal a metric naturally has: losses and errors go down, the rest up.
    pub fn natural(metric: &str) -> Self {
        if metric.ends_with("loss") || metric.ends_with("rmse") {
            Goal::Min
        } else {
            Goal::Max
        }
    }

    /// `value` turned into something to minimise.
    pub fn as_cost(self, value: f64) -> f64 {
        match self {
            Goal::Min => value,
            Goal::Max => -value,
        }
    }

    /// Whether `a` is better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        self.as_cost(a) < self.as_cost(b)
    }
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Goal::Min => "min",
            Goal::Max => "max",
        })
    }
}

impl Default for BestBy {
    fn default() -> Self {
        Self {
            metric: "valid_loss".to_string(),
            goal: Goal::Min,
        }
    }
}

impl CheckpointIndex {
    pub fn best(&self) -> Option<&CheckpointEntry> {
        self.checkpoints.iter().find(|entry| entry.best)
    }

    pub fn last(&self) -> Option<&CheckpointEntry> {
        self.checkpoints.iter().max_by_key(|entry| entry.epoch)
    }

    pub fn at_epoch(&self, epoch: usize) -> Option<&CheckpointEntry> {
        self.checkpoints.iter().find(|entry| entry.epoch == epoch)
    }

    /// Adds a checkpoint (replacing one of the same epoch), re-marks the best (by
    /// [`Self::best_by`]: the lowest finite validation loss unless set) and returns the entries
    /// the keep policy drops, whose files can go.
    pub fn insert(&mut self, entry: CheckpointEntry, keep_last: usize) -> Vec<CheckpointEntry> {
        self.checkpoints
            .retain(|existing| existing.epoch != entry.epoch);
        self.checkpoints.push(entry);
        self.checkpoints.sort_by_key(|entry| entry.epoch);
        self.mark_best();
        let keep_from = self.checkpoints.len().saturating_sub(keep_last.max(1));
        let mut dropped = Vec::new();
        let mut kept = Vec::new();
        for (position, entry) in std::mem::take(&mut self.checkpoints)
            .into_iter()
            .enumerate()
        {
            if entry.best || position >= keep_from {
                kept.push(entry);
            } else {
                dropped.push(entry);
            }
        }
        self.checkpoints = kept;
        dropped
    }

    /// Forgets checkpoints after `epoch` (they belong to a superseded continuation).
    pub fn truncate_after(&mut self, epoch: usize) -> Vec<CheckpointEntry> {
        let (kept, dropped) = std::mem::take(&mut self.checkpoints)
            .into_iter()
            .partition(|entry| entry.epoch <= epoch);
        self.checkpoints = kept;
        self.mark_best();
        dropped
    }

    fn mark_best(&mut self) {
        let best_by = self.best_by.clone().unwrap_or_default();
        let best_epoch = self
            .checkpoints
            .iter()
            .filter_map(|entry| {
                let value = entry.metrics.get(&best_by.metric)?;
                Some((entry.epoch, best_by.goal.as_cost(*value)))
            })
            .filter(|(_, cost)| cost.is_finite())
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(epoch, _)| epoch);
        for entry in &mut self.checkpoints {
            entry.best = Some(entry.epoch) == best_epoch;
        }
    }
}

mod non_finite_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Value(#[serde(with = "crate::runs::metrics_log::non_finite")] f64);

    pub fn serialize<S: Serializer>(map: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        let wrapped: BTreeMap<&String, Value> = map.iter().map(|(k, v)| (k, Value(*v))).collect();
        wrapped.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let wrapped = BTreeMap::<String, Value>::deserialize(d)?;
        Ok(wrapped.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}
