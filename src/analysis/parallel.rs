//! Parallel coordinates: one vertical axis per varying setting plus the metric; each run a
//! line through its values. Numeric settings spanning two or more orders of magnitude (a
//! learning rate) get a log axis; lists and words are categories. Brushing an axis (a range on
//! it) keeps the runs whose value falls in the range on every brushed axis.

use std::collections::BTreeSet;

use super::columns::{CellValue, Column};
use crate::runs::RunSummary;

#[derive(Debug, Clone, PartialEq)]
pub enum AxisKind {
    Numeric { min: f64, max: f64, log: bool },
    Categorical { values: Vec<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub column: Column,
    pub kind: AxisKind,
}

/// A brushed range on axis `axis`, in the axis's own 0–1 position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Brush {
    pub axis: usize,
    pub low: f64,
    pub high: f64,
}

fn text_of(value: &CellValue) -> Option<String> {
    match value {
        CellValue::Text(text) => Some(text.clone()),
        CellValue::Number(number) => Some(number.to_string()),
        CellValue::Missing => None,
    }
}

impl Axis {
    pub fn for_column(column: Column, runs: &[&RunSummary]) -> Option<Axis> {
        let values: Vec<CellValue> = runs.iter().map(|run| CellValue::of(run, &column)).collect();
        let numbers: Vec<f64> = values
            .iter()
            .filter_map(CellValue::as_number)
            .filter(|v| v.is_finite())
            .collect();
        let present = values.iter().filter(|v| **v != CellValue::Missing).count();
        let kind = if !numbers.is_empty() && numbers.len() == present {
            let min = numbers.iter().copied().fold(f64::INFINITY, f64::min);
            let max = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            AxisKind::Numeric {
                min,
                max,
                log: min > 0.0 && max / min >= 100.0,
            }
        } else {
            let distinct: BTreeSet<String> = values.iter().filter_map(text_of).collect();
            if distinct.is_empty() {
                return None;
            }
            AxisKind::Categorical {
                values: distinct.into_iter().collect(),
            }
        };
        Some(Axis { column, kind })
    }

    /// Where a run sits on this axis, 0 (bottom) to 1 (top); `None` without a value.
    pub fn position(&self, run: &RunSummary) -> Option<f64> {
        let value = CellValue::of(run, &self.column);
        match &self.kind {
            AxisKind::Numeric { min, max, log } => {
                let v = value.as_number().filter(|v| v.is_finite())?;
                if max <= min {
                    return Some(0.5);
                }
                Some(if *log {
                    (v.ln() - min.ln()) / (max.ln() - min.ln())
                } else {
                    (v - min) / (max - min)
                })
            }
            AxisKind::Categorical { values } => {
                let text = text_of(&value)?;
                let index = values.iter().position(|v| *v == text)?;
                Some(if values.len() == 1 {
                    0.5
                } else {
                    index as f64 / (values.len() - 1) as f64
                })
            }
        }
    }

    /// The value shown at position `t` (for tick labels).
    pub fn label_at(&self, t: f64) -> String {
        match &self.kind {
            AxisKind::Numeric { min, max, log } => {
                let v = if *log {
                    (min.ln() + t * (max.ln() - min.ln())).exp()
                } else {
                    min + t * (max - min)
                };
                CellValue::Number(v).display()
            }
            AxisKind::Categorical { values } => {
                let index = (t * (values.len().saturating_sub(1)) as f64).round() as usize;
                values.get(index).cloned().unwrap_or_default()
            }
        }
    }
}

/// An axis for each setting in `keys` that varies, then the metric column.
pub fn axes_for(runs: &[&RunSummary], keys: &[String], metric: Column) -> Vec<Axis> {
    keys.iter()
        .filter_map(|key| Axis::for_column(Column::Config(key.clone()), runs))
        .chain(Axis::for_column(metric, runs))
        .collect()
}

/// The runs inside every brush (all runs without brushes).
pub fn brushed<'a>(
    runs: &[&'a RunSummary],
    axes: &[Axis],
    brushes: &[Brush],
) -> Vec<&'a RunSummary> {
    runs.iter()
        .copied()
        .filter(|run| {
            brushes.iter().all(|brush| {
                axes.get(brush.axis)
                    .and_then(|axis| axis.position(run))
                    .is_some_and(|t| {
                        let (low, high) = (brush.low.min(brush.high), brush.low.max(brush.high));
                        // A hair of slack so a run exactly on an end stays in.
                        t >= low - 1e-9 && t <= high + 1e-9
                    })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::{MetricSummary, RunStatus, Summary};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn run(id: &str, lr: f64, optimizer: &str, loss: f64) -> RunSummary {
        RunSummary {
            id: id.into(),
            name: id.into(),
            status: RunStatus::Completed,
            status_message: None,
            created: String::new(),
            train_secs: 1.0,
            epochs_completed: 5,
            planned_epochs: 5,
            dataset: "d".into(),
            fingerprint: "f".into(),
            config: BTreeMap::from([
                ("train.learning_rate".to_string(), json!(lr)),
                ("train.optimizer.kind".to_string(), json!(optimizer)),
            ]),
            metrics: BTreeMap::from([(
                "valid_loss".to_string(),
                MetricSummary {
                    best: loss,
                    best_epoch: 1,
                    last: loss,
                    last_epoch: 5,
                },
            )]),
            sweep: None,
            parent: None,
            pid: None,
            target: None,
        }
    }

    #[test]
    fn brushing_keeps_exactly_the_runs_in_every_range() {
        let runs = [
            run("a", 0.0001, "adam", 0.9),
            run("b", 0.001, "sgd", 0.5),
            run("c", 0.01, "adam", 0.2),
            run("d", 0.1, "sgd", 0.4),
            run("e", 1.0, "adam", 2.0),
        ];
        let refs: Vec<&RunSummary> = runs.iter().collect();
        let keys = vec![
            "train.learning_rate".to_string(),
            "train.optimizer.kind".to_string(),
        ];
        let axes = axes_for(
            &refs,
            &keys,
            Column::Metric("valid_loss".into(), Summary::Best),
        );
        assert_eq!(axes.len(), 3);
        assert!(matches!(axes[0].kind, AxisKind::Numeric { log: true, .. }));
        // On the log axis 0.001 … 0.1 is the middle half: 0.25 … 0.75.
        let lr = Brush {
            axis: 0,
            low: 0.25,
            high: 0.75,
        };
        let ids = |selected: Vec<&RunSummary>| -> Vec<String> {
            selected.iter().map(|run| run.id.clone()).collect()
        };
        assert_eq!(ids(brushed(&refs, &axes, &[lr])), ["b", "c", "d"]);
        // And sgd only (the top of the categorical axis adam < sgd).
        let sgd = Brush {
            axis: 1,
            low: 0.9,
            high: 1.0,
        };
        assert_eq!(ids(brushed(&refs, &axes, &[lr, sgd])), ["b", "d"]);
        // A loss below 0.45: positions (loss − 0.2) / 1.8 ≤ 0.139.
        let loss = Brush {
            axis: 2,
            low: 0.0,
            high: 0.139,
        };
        assert_eq!(ids(brushed(&refs, &axes, &[lr, sgd, loss])), ["d"]);
        assert_eq!(brushed(&refs, &axes, &[]).len(), 5);
    }
}
