//! What the engine tells its caller, as plain data (the CLI prints it, the UI draws it).

use serde::{Deserialize, Serialize};

use super::device::DeviceInfo;
use crate::data::Task;
use crate::runs::{MetricPoint, SplitName};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    EarlyStopped,
    /// Ended by a sweep's pruner: it lagged behind the other trials.
    Pruned,
    Stopped,
    Diverged,
    Failed,
}

/// The metrics of one finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    pub step: u64,
    pub train_loss: f64,
    pub valid_loss: f64,
    pub train_accuracy: Option<f64>,
    pub valid_accuracy: Option<f64>,
    /// Root mean squared error in the target's units (regression).
    pub valid_rmse: Option<f64>,
    pub learning_rate: f64,
    pub samples_per_sec: f64,
    pub wall_secs: f64,
    /// Validation `confusion[actual][predicted]` counts (classification).
    #[serde(default)]
    pub confusion: Option<Vec<Vec<u64>>>,
}

impl EpochMetrics {
    /// The points this epoch adds to the metrics log: the engine writes them, the UI draws them
    /// live before it re-reads the log.
    pub fn points(&self) -> Vec<MetricPoint> {
        let mut values = vec![
            (SplitName::Train, "loss", self.train_loss),
            (SplitName::Valid, "loss", self.valid_loss),
        ];
        values.extend(
            self.train_accuracy
                .map(|v| (SplitName::Train, "accuracy", v)),
        );
        values.extend(
            self.valid_accuracy
                .map(|v| (SplitName::Valid, "accuracy", v)),
        );
        values.extend(self.valid_rmse.map(|v| (SplitName::Valid, "rmse", v)));
        if let Some(confusion) = &self.confusion {
            let (precision, recall) = crate::runs::macro_precision_recall(confusion);
            values.push((SplitName::Valid, "precision", precision));
            values.push((SplitName::Valid, "recall", recall));
        }
        values
            .into_iter()
            .map(|(split, metric, value)| MetricPoint {
                epoch: self.epoch,
                step: self.step,
                split,
                metric: metric.to_string(),
                value,
                wall_secs: self.wall_secs,
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    Started {
        run_id: String,
        run_name: String,
        device: DeviceInfo,
        task: Task,
        model: String,
        /// Epochs already done (non-zero when resuming).
        start_epoch: usize,
        total_epochs: usize,
        batches_per_epoch: usize,
        train_rows: usize,
        valid_rows: usize,
    },
    /// Sent at most ~20 times a second, and for the last batch of each epoch.
    Batch {
        epoch: usize,
        batch: usize,
        batches: usize,
        step: u64,
        samples_per_sec: f64,
        /// Estimated seconds to the end of training.
        eta_secs: f64,
    },
    Epoch(EpochMetrics),
    Checkpoint {
        epoch: usize,
        best_epoch: Option<usize>,
    },
    Warning {
        message: String,
    },
    Finished {
        outcome: Outcome,
        epochs_completed: usize,
        message: String,
    },
}
