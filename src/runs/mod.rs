//! The on-disk run store: one folder per run with `run.json`, `metrics.jsonl`, `confusion.jsonl`
//! (classification) and `checkpoints/`.

pub mod atomic;
mod checkpoints;
mod confusion_log;
pub mod lock;
mod metrics_log;
mod run;
mod store;
pub mod untrusted;
mod user_fields;

pub use checkpoints::{
    CheckpointEntry, CheckpointIndex, ClassMetrics, class_report, macro_precision_recall,
};
pub use confusion_log::{ConfusionLog, append_confusion};
pub use lock::{LockHolder, RunLock};
pub use metrics_log::{MetricPoint, MetricsLog, SplitName, append_point, append_resume_marker};
pub use run::{BestSummary, RUN_FORMAT_VERSION, RunRecord, RunStatus};
pub use store::{CheckpointSelector, RunDir, RunListing, RunStore, StoreError, default_runs_dir};
pub use user_fields::UserFields;
