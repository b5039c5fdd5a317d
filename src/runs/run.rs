//! `run.json`: everything needed to understand, reproduce and resume a run.

use serde::{Deserialize, Serialize};

use crate::data::{DataSpec, DatasetFingerprint, Preprocessor, SampleRow, Schema};
use crate::model::ModelConfig;
use crate::train::{DeviceInfo, TrainConfig};

pub const RUN_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Submitted to a compute target and waiting there (a Slurm job in the queue); never
    /// written by a trainer.
    Pending,
    Running,
    Completed,
    EarlyStopped,
    /// Ended by a sweep's pruner (kept, like every run, and can be extended).
    Pruned,
    Stopped,
    Diverged,
    Failed,
    /// Never written: shown for a `running` run whose process is gone.
    Interrupted,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::EarlyStopped => "early stopped",
            RunStatus::Pruned => "pruned",
            RunStatus::Stopped => "stopped",
            RunStatus::Diverged => "diverged",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Whether `resume` makes sense: training did not reach its planned end.
    pub fn is_resumable(self) -> bool {
        matches!(
            self,
            RunStatus::Stopped | RunStatus::Interrupted | RunStatus::Failed
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Summary of the best checkpoint, kept in `run.json` so listing runs needs no other file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestSummary {
    pub epoch: usize,
    pub valid_loss: f64,
    #[serde(default)]
    pub valid_accuracy: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub format_version: u32,
    pub id: String,
    pub name: String,
    /// RFC 3339 times.
    pub created: String,
    pub updated: String,
    pub status: RunStatus,
    #[serde(default)]
    pub status_message: Option<String>,
    pub data: DataSpec,
    pub fingerprint: DatasetFingerprint,
    pub schema: Schema,
    pub preprocessor: Preprocessor,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub device: DeviceInfo,
    pub epochs_completed: usize,
    #[serde(default)]
    pub steps_completed: u64,
    /// Wall time spent training, across resumes.
    #[serde(default)]
    pub train_secs: f64,
    #[serde(default)]
    pub best: Option<BestSummary>,
    pub kiln_version: String,
    pub burn_version: String,
    /// A few validation rows, kept so an export can carry golden vectors without the data file.
    #[serde(default)]
    pub sample_rows: Vec<SampleRow>,
    /// The process training this run, to tell a live run from an interrupted one.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Settings changed during the run's life (e.g. a lower learning rate after a divergence).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ConfigChange>,
    /// The sweep this run is a trial of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepTag>,
    /// A checkpoint's metrics on the held-out test split, measured once when it was chosen
    /// (never during training or selection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<TestResult>,
    /// The model this run started from (a warm start), with that model's own history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<Lineage>,
    /// Where the run trains when it is not this machine: a mirror of a run on a compute target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteLink>,
}

/// A run that trains on a compute target; this store holds its mirror. Names the target and
/// the job, nothing secret (the target's address and keys stay in the targets file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteLink {
    /// The target's name in the targets file.
    pub target: String,
    /// The run's folder on the target.
    pub path: String,
    /// The Slurm job id, or `pid N` of the trainer on an SSH host.
    pub job: String,
    /// The scheduler's state as last seen (`PENDING (Priority)`, `RUNNING`, `CANCELLED`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_state: Option<String>,
    /// The dataset as named on this machine (the target trains on its cached copy).
    pub local_data: std::path::PathBuf,
    /// Set while the target cannot be reached: what went wrong and since when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_problem: Option<String>,
    /// The end of the job's output, kept when the job failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
    /// The run has ended and its final files (and best checkpoint) are here.
    #[serde(default)]
    pub settled: bool,
}

/// Where a warm-started run's first weights came from, and every earlier version before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// Oldest first; the last one is the direct parent. Copied, not referenced, so deleting an
    /// ancestor's run leaves the history intact.
    pub chain: Vec<Ancestor>,
    /// The input statistics were refitted on the new data (else the parent's were kept).
    #[serde(default)]
    pub refit_stats: bool,
    /// The optimizer state came from the parent checkpoint too.
    #[serde(default)]
    pub kept_optimizer: bool,
}

impl Lineage {
    pub fn parent(&self) -> Option<&Ancestor> {
        self.chain.last()
    }
}

/// One earlier version of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ancestor {
    /// The run that trained it, its name and the checkpoint's epoch.
    pub run_id: String,
    pub run_name: String,
    pub epoch: usize,
    /// Set when the weights were taken from an exported bundle (its card's path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// SHA-256 of its burnpack weights.
    pub weights_sha256: String,
    /// The fingerprint id and file of the data it was trained on.
    pub dataset: String,
    pub dataset_file: String,
    /// Its checkpoint's validation metrics.
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// When its run was created (RFC 3339).
    pub created: String,
}

/// Which sweep a run belongs to, and which of its trials it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepTag {
    pub sweep_id: String,
    /// 1-based trial number.
    pub trial: usize,
    /// 0-based repeat of the trial's settings (with another seed).
    #[serde(default)]
    pub repeat: usize,
    /// The searched settings of this trial, by dotted path (`train.learning_rate`).
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Metrics of one checkpoint on the test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub epoch: usize,
    pub rows: usize,
    /// `test_loss`, `test_accuracy` or `test_rmse`.
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// RFC 3339 time of the evaluation.
    pub evaluated: String,
}

/// A setting changed when a run was resumed: training after `after_epoch` used `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigChange {
    pub after_epoch: usize,
    /// Dotted path as in `run.json`, e.g. `train.learning_rate`.
    pub field: String,
    pub from: String,
    pub to: String,
    /// RFC 3339 time of the change.
    pub at: String,
}

impl RunRecord {
    pub fn output_width(&self) -> usize {
        self.schema.target.output_width()
    }

    pub fn model_summary(&self) -> String {
        self.model
            .describe(&self.preprocessor.input_shape(), self.output_width())
    }
}
