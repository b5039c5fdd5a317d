//! The sweep record in the store: `RUNS/.sweeps/ID/sweep.json` (the spec, every trial and its
//! state), replaced atomically by the one process running the sweep. The trials themselves are
//! ordinary runs in the store; a `stop` file beside the record asks the runner to stop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::space::Assignment;
use super::spec::SweepSpec;
use crate::runs::atomic::write_json_atomic;
use crate::runs::{Goal, RunStatus};

pub const SWEEP_FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SweepStoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable sweep record ({message})")]
    Corrupt { path: PathBuf, message: String },
    #[error("no sweep matches '{0}' (see `kiln sweep list`)")]
    NotFound(String),
    #[error("'{query}' matches several sweeps: {matches}")]
    Ambiguous { query: String, matches: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SweepStoreError + '_ {
    move |source| SweepStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepState {
    Running,
    Completed,
    Stopped,
    Failed,
}

impl SweepState {
    pub fn name(self) -> &'static str {
        match self {
            SweepState::Running => "running",
            SweepState::Completed => "completed",
            SweepState::Stopped => "stopped",
            SweepState::Failed => "failed",
        }
    }
}

/// Where one trial run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialStatus {
    /// Its settings are chosen; its run has not started.
    Planned,
    Running,
    Completed,
    EarlyStopped,
    Pruned,
    Diverged,
    Failed,
    /// Stopped with the sweep; `kiln sweep resume` continues it from its checkpoint.
    Stopped,
}

impl TrialStatus {
    pub fn name(self) -> &'static str {
        match self {
            TrialStatus::Planned => "planned",
            TrialStatus::Running => "running",
            TrialStatus::Completed => "completed",
            TrialStatus::EarlyStopped => "early stopped",
            TrialStatus::Pruned => "pruned",
            TrialStatus::Diverged => "diverged",
            TrialStatus::Failed => "failed",
            TrialStatus::Stopped => "stopped",
        }
    }

    /// Done for good: it will not train again in this sweep.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TrialStatus::Completed
                | TrialStatus::EarlyStopped
                | TrialStatus::Pruned
                | TrialStatus::Diverged
                | TrialStatus::Failed
        )
    }

    pub fn from_run(status: RunStatus) -> Self {
        match status {
            // Queued on a compute target: under way, as far as the sweep is concerned.
            RunStatus::Running | RunStatus::Pending => TrialStatus::Running,
            RunStatus::Completed => TrialStatus::Completed,
            RunStatus::EarlyStopped => TrialStatus::EarlyStopped,
            RunStatus::Pruned => TrialStatus::Pruned,
            RunStatus::Diverged => TrialStatus::Diverged,
            RunStatus::Failed => TrialStatus::Failed,
            RunStatus::Stopped | RunStatus::Interrupted => TrialStatus::Stopped,
        }
    }
}

/// One run of a trial (a trial has `repeats` of them, with consecutive seeds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// 1-based.
    pub trial: usize,
    /// 0-based.
    pub repeat: usize,
    pub params: Assignment,
    pub run_id: Option<String>,
    pub status: TrialStatus,
    /// The best value of the sweep's metric over the run's epochs, and that epoch.
    pub best: Option<f64>,
    pub best_epoch: Option<usize>,
    pub epochs: usize,
    pub secs: f64,
    #[serde(default)]
    pub message: Option<String>,
}

impl TrialRecord {
    /// A run of a trial as planned: settings chosen, nothing trained yet.
    pub fn planned(trial: usize, repeat: usize, params: Assignment) -> Self {
        Self {
            trial,
            repeat,
            params,
            run_id: None,
            status: TrialStatus::Planned,
            best: None,
            best_epoch: None,
            epochs: 0,
            secs: 0.0,
            message: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    pub format_version: u32,
    pub id: String,
    pub name: String,
    /// RFC 3339 times.
    pub created: String,
    pub updated: String,
    pub state: SweepState,
    #[serde(default)]
    pub message: Option<String>,
    pub spec: SweepSpec,
    /// The process running the sweep and its host, to tell a live sweep from a killed one.
    pub pid: Option<u32>,
    #[serde(default)]
    pub host: String,
    pub trials: Vec<TrialRecord>,
}

/// A trial's summary over its repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialSummary {
    pub trial: usize,
    pub params: Assignment,
    /// The mean of the repeats' best values (repeats that have one).
    pub value: Option<f64>,
    /// 1 = best by the sweep's goal; `None` without a value.
    pub rank: Option<usize>,
    pub runs: Vec<TrialRecord>,
}

impl TrialSummary {
    /// The trial's overall status: running if any repeat runs, else the first repeat's.
    pub fn status(&self) -> TrialStatus {
        if self
            .runs
            .iter()
            .any(|run| run.status == TrialStatus::Running)
        {
            return TrialStatus::Running;
        }
        self.runs
            .first()
            .map_or(TrialStatus::Planned, |run| run.status)
    }

    pub fn is_final(&self) -> bool {
        self.runs.iter().all(|run| run.status.is_final())
    }

    /// The repeat with the best value.
    pub fn best_run(&self, goal: Goal) -> Option<&TrialRecord> {
        self.runs
            .iter()
            .filter(|run| run.best.is_some_and(f64::is_finite) && run.run_id.is_some())
            .min_by(|a, b| {
                goal.as_cost(a.best.unwrap_or(f64::NAN))
                    .total_cmp(&goal.as_cost(b.best.unwrap_or(f64::NAN)))
            })
    }
}

impl SweepRecord {
    /// A new sweep's record, running from now, with no trials yet; `pid`: the process that runs
    /// it, when it runs in this one.
    pub fn started(id: String, name: String, spec: SweepSpec, pid: Option<u32>) -> Self {
        let now = chrono::Utc::now().to_rfc3339();
        Self {
            format_version: SWEEP_FORMAT_VERSION,
            id,
            name,
            created: now.clone(),
            updated: now,
            state: SweepState::Running,
            message: None,
            spec,
            pid,
            host: host_name(),
            trials: Vec::new(),
        }
    }

    /// Trials with their repeats grouped, ranked by the sweep's goal.
    pub fn summaries(&self) -> Vec<TrialSummary> {
        let mut by_trial: BTreeMap<usize, Vec<TrialRecord>> = BTreeMap::new();
        for run in &self.trials {
            by_trial.entry(run.trial).or_default().push(run.clone());
        }
        let goal = self.spec.goal();
        let mut summaries: Vec<TrialSummary> = by_trial
            .into_iter()
            .map(|(trial, runs)| {
                let values: Vec<f64> = runs
                    .iter()
                    .filter_map(|run| run.best.filter(|v| v.is_finite()))
                    .collect();
                TrialSummary {
                    trial,
                    params: runs.first().map(|r| r.params.clone()).unwrap_or_default(),
                    value: (!values.is_empty())
                        .then(|| values.iter().sum::<f64>() / values.len() as f64),
                    rank: None,
                    runs,
                }
            })
            .collect();
        let mut ranked: Vec<(usize, f64)> = summaries
            .iter()
            .enumerate()
            .filter_map(|(index, summary)| Some((index, goal.as_cost(summary.value?))))
            .collect();
        ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
        for (rank, (index, _)) in ranked.into_iter().enumerate() {
            summaries[index].rank = Some(rank + 1);
        }
        summaries
    }

    /// The best trial by the sweep's goal.
    pub fn best(&self) -> Option<TrialSummary> {
        self.summaries()
            .into_iter()
            .find(|summary| summary.rank == Some(1))
    }
}

/// The sweeps of a run store.
pub struct SweepStore {
    root: PathBuf,
}

impl SweepStore {
    pub fn open(runs_dir: &Path) -> Self {
        Self {
            root: runs_dir.join(".sweeps"),
        }
    }

    fn folder(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.folder(id).join("sweep.json")
    }

    fn stop_path(&self, id: &str) -> PathBuf {
        self.folder(id).join("stop")
    }

    /// A new, unique sweep id from the time and the name.
    pub fn create(&self, name: &str) -> Result<String, SweepStoreError> {
        std::fs::create_dir_all(&self.root).map_err(io_error(&self.root))?;
        let slug = crate::runs::id_slug(name);
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
        let mut rng = rand::rng();
        loop {
            let suffix: u16 = rng.random();
            let id = format!("{stamp}-{slug}-{suffix:04x}");
            let folder = self.folder(&id);
            match std::fs::create_dir(&folder) {
                Ok(()) => return Ok(id),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(SweepStoreError::Io {
                        path: folder,
                        source,
                    });
                }
            }
        }
    }

    /// Removes a sweep's folder (a sweep planned but never started).
    pub fn discard(&self, id: &str) {
        if !id.is_empty() && !id.contains(['/', '\\']) && id != "." && id != ".." {
            let _ = std::fs::remove_dir_all(self.folder(id));
        }
    }

    pub fn write(&self, record: &SweepRecord) -> Result<(), SweepStoreError> {
        let path = self.record_path(&record.id);
        write_json_atomic(&path, record).map_err(io_error(&path))
    }

    pub fn read(&self, id: &str) -> Result<SweepRecord, SweepStoreError> {
        let path = self.record_path(id);
        let bytes = std::fs::read(&path).map_err(io_error(&path))?;
        serde_json::from_slice(&bytes).map_err(|error| SweepStoreError::Corrupt {
            path,
            message: error.to_string(),
        })
    }

    /// Every sweep, oldest first; unreadable ones as errors beside their ids.
    pub fn list(&self) -> Vec<Result<SweepRecord, (String, SweepStoreError)>> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|entry| entry.path().is_dir())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        ids.into_iter()
            .map(|id| self.read(&id).map_err(|error| (id, error)))
            .collect()
    }

    /// A sweep by exact id, unique id prefix, or unique name.
    pub fn find(&self, query: &str) -> Result<SweepRecord, SweepStoreError> {
        let plain =
            !query.is_empty() && !query.contains(['/', '\\']) && query != "." && query != "..";
        if plain && self.record_path(query).is_file() {
            return self.read(query);
        }
        let matches: Vec<SweepRecord> = self
            .list()
            .into_iter()
            .flatten()
            .filter(|record| record.id.starts_with(query) || record.name == query)
            .collect();
        match matches.len() {
            0 => Err(SweepStoreError::NotFound(query.to_string())),
            1 => Ok(matches.into_iter().next().expect("one match")),
            _ => Err(SweepStoreError::Ambiguous {
                query: query.to_string(),
                matches: matches
                    .iter()
                    .map(|record| record.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Asks the process running the sweep to stop (it checks between epochs and batches).
    pub fn request_stop(&self, id: &str) -> Result<(), SweepStoreError> {
        let path = self.stop_path(id);
        std::fs::write(&path, b"stop\n").map_err(io_error(&path))
    }

    pub fn stop_requested(&self, id: &str) -> bool {
        self.stop_path(id).exists()
    }

    pub fn clear_stop(&self, id: &str) {
        // Already gone is what we want.
        let _ = std::fs::remove_file(self.stop_path(id));
    }
}

/// This machine's name, to tell a sweep running here from one running on another machine
/// sharing the store.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether the sweep's process is alive (on this host; one on another host counts as alive).
pub fn runner_alive(record: &SweepRecord) -> bool {
    if record.state != SweepState::Running {
        return false;
    }
    if record.host != host_name() {
        return true;
    }
    match record.pid {
        Some(pid) => Path::new(&format!("/proc/{pid}")).exists(),
        None => false,
    }
}
