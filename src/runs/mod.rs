//! The on-disk run store: one folder per run with `run.json`, `metrics.jsonl`, `confusion.jsonl`
//! (classification) and `checkpoints/`.

pub mod atomic;
mod checkpoints;
mod confusion_log;
mod index;
pub mod lock;
mod metrics_log;
mod run;
mod store;
mod summary;
pub mod untrusted;
mod user_fields;
mod watch;

pub use checkpoints::{
    BestBy, CheckpointEntry, CheckpointFiles, CheckpointIndex, ClassMetrics, Goal, class_report,
    macro_precision_recall,
};
pub use confusion_log::{ConfusionLog, append_confusion};
pub use index::{FileStamp, StoreSummary};
pub use lock::{LockHolder, RunLock};
pub use metrics_log::{MetricPoint, MetricsLog, SplitName, append_points, append_resume_marker};
pub use run::{
    Ancestor, BestSummary, ConfigChange, Lineage, RUN_FORMAT_VERSION, RemoteLink, RunRecord,
    RunStatus, SweepTag, TestResult,
};
pub use store::{
    CheckpointSelector, RunDir, RunListing, RunStore, StoreError, default_runs_dir, id_slug,
    new_run_id,
};
pub use summary::{MetricSummary, RunSummary, Summary, flatten, format_number, summarize_metrics};
pub use user_fields::UserFields;
pub use watch::StoreWatcher;
