//! A run in a line: what the run table, filters, groups and analyses need, without the run's
//! schema, statistics or curves. Built from `run.json` and `metrics.jsonl`; kept in the store
//! index so a store of thousands of runs opens without reading them all.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::checkpoints::Goal;
use super::metrics_log::MetricsLog;
use super::run::{RunRecord, RunStatus};

/// A metric over a run's epochs: its best value (by the metric's natural goal) and its last.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    pub best: f64,
    pub best_epoch: usize,
    pub last: f64,
    pub last_epoch: usize,
}

/// How a metric column is summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Summary {
    #[default]
    Best,
    Last,
    EpochOfBest,
}

impl Summary {
    pub const ALL: [Summary; 3] = [Summary::Best, Summary::Last, Summary::EpochOfBest];

    pub fn name(self) -> &'static str {
        match self {
            Summary::Best => "best",
            Summary::Last => "last",
            Summary::EpochOfBest => "epoch of best",
        }
    }
}

impl MetricSummary {
    pub fn value(&self, summary: Summary) -> f64 {
        match summary {
            Summary::Best => self.best,
            Summary::Last => self.last,
            Summary::EpochOfBest => self.best_epoch as f64,
        }
    }
}

/// Everything the run table shows and filters on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: String,
    pub name: String,
    /// As stored (`running` is judged alive or interrupted when listed).
    pub status: RunStatus,
    #[serde(default)]
    pub status_message: Option<String>,
    pub created: String,
    pub train_secs: f64,
    pub epochs_completed: usize,
    pub planned_epochs: usize,
    pub dataset: String,
    pub fingerprint: String,
    /// The run's settings flattened to dotted paths (`train.learning_rate`, `model.hidden`,
    /// `data.valid_fraction`, `device`): the table's config columns.
    pub config: BTreeMap<String, serde_json::Value>,
    /// `valid_loss`, `train_accuracy`, …
    pub metrics: BTreeMap<String, MetricSummary>,
    #[serde(default)]
    pub sweep: Option<(String, usize)>,
    /// The run this one started from (a warm start).
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub pid: Option<u32>,
    /// The compute target the run trains on (a mirrored run), if not this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl RunSummary {
    pub fn of(record: &RunRecord, log: &MetricsLog) -> Self {
        let mut config = BTreeMap::new();
        let document = serde_json::json!({
            "data": {
                "target": record.schema.target.name,
                "task": record.schema.target.task,
                "valid_fraction": record.data.valid_fraction,
                "split_seed": record.data.split_seed,
                "test": record.data.test,
                "images": record.data.images,
            },
            "model": record.model,
            "train": record.train,
            "device": record.device.backend,
        });
        flatten("", &document, &mut config);
        let metrics = summarize_metrics(log);
        Self {
            id: record.id.clone(),
            name: record.name.clone(),
            status: record.status,
            status_message: record.status_message.clone(),
            created: record.created.clone(),
            train_secs: record.train_secs,
            epochs_completed: record.epochs_completed,
            planned_epochs: record.train.epochs,
            dataset: record.fingerprint.file_name.clone(),
            fingerprint: record.fingerprint.id.clone(),
            config,
            metrics,
            sweep: record
                .sweep
                .as_ref()
                .map(|tag| (tag.sweep_id.clone(), tag.trial)),
            parent: record
                .lineage
                .as_ref()
                .and_then(|lineage| lineage.parent())
                .map(|parent| parent.run_name.clone()),
            pid: record.pid,
            target: record.remote.as_ref().map(|remote| remote.target.clone()),
        }
    }

    /// The config without the seed: runs that differ only in it are repeats of one setting.
    pub fn group_key(&self) -> String {
        self.config
            .iter()
            .filter(|(key, _)| key.as_str() != "train.seed")
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// Every metric of a log (`valid_loss`, `train_accuracy`, …) as best (by its natural goal;
/// non-finite values are never the best), epoch of best, last and last epoch.
pub fn summarize_metrics(log: &MetricsLog) -> BTreeMap<String, MetricSummary> {
    let mut series: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
    for point in &log.points {
        series
            .entry(format!("{}_{}", point.split.name(), point.metric))
            .or_default()
            .push((point.epoch, point.value));
    }
    series
        .into_iter()
        .filter(|(name, _)| name != "train_batch_loss")
        .filter_map(|(name, points)| {
            let goal = Goal::natural(&name);
            let (last_epoch, last) = *points.last()?;
            let (best_epoch, best) = points
                .iter()
                .filter(|(_, value)| value.is_finite())
                .min_by(|a, b| goal.as_cost(a.1).total_cmp(&goal.as_cost(b.1)))
                .copied()
                .unwrap_or((last_epoch, last));
            Some((
                name,
                MetricSummary {
                    best,
                    best_epoch,
                    last,
                    last_epoch,
                },
            ))
        })
        .collect()
}

/// Flattens a JSON value into `path → value` pairs (lists and scalars are leaves).
pub fn flatten(
    prefix: &str,
    value: &serde_json::Value,
    out: &mut BTreeMap<String, serde_json::Value>,
) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, child, out);
            }
        }
        serde_json::Value::Null => {}
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// A metric or setting for people: whole numbers as they are, ordinary magnitudes with four
/// decimals, tiny and huge ones in scientific notation (a best loss of 3e-7 is not "0.0000").
pub fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e9 {
        format!("{value}")
    } else if value.abs() >= 1e-3 && value.abs() < 1e6 {
        format!("{value:.4}")
    } else {
        format!("{value:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_magnitude_when_formatted() {
        assert_eq!(format_number(30.0), "30");
        assert_eq!(format_number(0.25), "0.2500");
        assert_eq!(format_number(2.747e-7), "2.747e-7");
        assert_eq!(format_number(1.5e7), "15000000");
        assert_eq!(format_number(1.25e7), "12500000");
        assert_eq!(format_number(1234567.5), "1.235e6");
    }

    #[test]
    fn metrics_are_summarised_as_best_last_and_epoch_of_best() {
        let log = MetricsLog::parse(
            r#"{"epoch":1,"step":1,"split":"valid","metric":"loss","value":0.9,"wall_secs":1}
{"epoch":2,"step":2,"split":"valid","metric":"loss","value":0.4,"wall_secs":2}
{"epoch":3,"step":3,"split":"valid","metric":"loss","value":0.6,"wall_secs":3}
{"epoch":1,"step":1,"split":"valid","metric":"accuracy","value":0.5,"wall_secs":1}
{"epoch":2,"step":2,"split":"valid","metric":"accuracy","value":0.9,"wall_secs":2}
{"epoch":3,"step":3,"split":"valid","metric":"accuracy","value":"NaN","wall_secs":3}
"#,
        );
        let metrics = summarize_metrics(&log);
        let summarise = |name: &str| metrics[name];
        let loss = summarise("valid_loss");
        assert_eq!(
            (loss.best, loss.best_epoch, loss.last, loss.last_epoch),
            (0.4, 2, 0.6, 3)
        );
        assert_eq!(loss.value(Summary::EpochOfBest), 2.0);
        let accuracy = summarise("valid_accuracy");
        // Higher is better for accuracy; a NaN is never the best.
        assert_eq!((accuracy.best, accuracy.best_epoch), (0.9, 2));
        assert!(accuracy.last.is_nan());
    }
}
