//! Compute targets: training runs on another machine — an SSH host running `kiln`, or a Slurm
//! cluster — and following them from here. The run itself is the same headless `kiln` writing
//! the same run folder in the target's store (the engine never knows where it runs); this
//! layer submits it (dataset upload to a content-addressed cache, the batch script, `sbatch`),
//! mirrors its files into the local store as they grow (so the window, compare and export
//! treat it like any run), and stops or resubmits it. Used by the CLI and the window alike.
//!
//! SSH is the system OpenSSH client with one multiplexed connection per follower: the user's
//! ssh config, agent and known hosts apply, `BatchMode` means no password is ever asked, and
//! every remote command is built from quoted words ([`quote`]).

mod check;
mod follow;
pub mod quote;
mod shell;
pub mod slurm;
mod submit;
mod targets;

pub use check::{ConnectionReport, check_kiln, test_connection};
pub use follow::{FollowEvent, Follower, fetch_checkpoint, mirror_record};
pub use shell::{Reply, Shell};
pub use submit::{Submitted, resubmit, stop, submit_runs};
pub use targets::{LOCAL, SlurmSettings, Target, TargetKind, TargetsFile, default_targets_path};

use crate::runs::StoreError;
use crate::train::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("targets: {0}")]
    Config(String),
    #[error("cannot reach target '{target}': {message}")]
    Connect { target: String, message: String },
    #[error("target '{target}': {what} failed: {message}")]
    Remote {
        target: String,
        what: String,
        message: String,
    },
    #[error("target '{target}': {message}")]
    Kiln { target: String, message: String },
    #[error("{0}")]
    Submit(String),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ClusterError {
    /// The target could not be reached (worth retrying), as opposed to a refusal.
    pub fn is_connection(&self) -> bool {
        matches!(self, ClusterError::Connect { .. })
    }
}
