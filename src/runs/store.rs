//! Opening, listing, creating, renaming and deleting runs in a store folder.

use std::path::{Path, PathBuf};

use rand::RngExt;

use super::atomic::write_json_atomic;
use super::checkpoints::{CheckpointEntry, CheckpointFiles, CheckpointIndex};
use super::confusion_log::{ConfusionLog, append_confusion};
use super::lock::{LockHolder, live_holder, process_alive, read_holder};
use super::metrics_log::{MetricPoint, MetricsLog, append_points};
use super::run::{RunRecord, RunStatus};
use super::untrusted::{
    MAX_JSON_BYTES, MAX_WEIGHTS_BYTES, file_inside, plain_name_problem, read_bounded,
};
use super::user_fields::{USER_FILE, UserFields};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable run ({message})")]
    Corrupt { path: PathBuf, message: String },
    #[error("no run matches '{0}' (see `kiln runs`)")]
    NotFound(String),
    #[error("'{query}' matches several runs: {matches}")]
    Ambiguous { query: String, matches: String },
    #[error("run {run} has no checkpoint {what}")]
    NoCheckpoint { run: String, what: String },
    #[error("a run name must not be empty")]
    EmptyName,
    #[error("run {id} is named '{name}' already; choose another name")]
    NameTaken { name: String, id: String },
    #[error(
        "run {run} is being trained by {holder}; wait for it to finish or stop it there (a holder silent for a minute counts as gone)"
    )]
    Busy { run: String, holder: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The store location: `$KILN_RUNS_DIR`, else the platform data folder (`~/.local/share/kiln/runs`).
pub fn default_runs_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KILN_RUNS_DIR").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("kiln")
        .join("runs")
}

#[derive(Debug, Clone)]
pub struct RunStore {
    root: PathBuf,
}

/// One entry of a store listing: a readable run, or a folder that is not one (reported, not fatal).
#[derive(Debug, Clone)]
pub enum RunListing {
    Run {
        dir: RunDir,
        record: Box<RunRecord>,
        /// The stored status, or `Interrupted` for a `running` run whose process is gone.
        status: RunStatus,
        /// The process training the run right now (host, process id, heartbeat), if any.
        busy: Option<LockHolder>,
    },
    Broken {
        id: String,
        path: PathBuf,
        error: String,
    },
}

impl RunListing {
    pub fn id(&self) -> &str {
        match self {
            RunListing::Run { dir, .. } => &dir.id,
            RunListing::Broken { id, .. } => id,
        }
    }
}

/// Which checkpoint of a run: `RUN`, `RUN@best`, `RUN@last` or `RUN@EPOCH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointSelector {
    Best,
    Last,
    Epoch(usize),
}

impl CheckpointSelector {
    /// Splits `run@which` into the run query and the selector (best when absent).
    pub fn parse(text: &str) -> Result<(String, Self), String> {
        let (run, which) = match text.rsplit_once('@') {
            Some((run, which)) => (run, which),
            None => (text, "best"),
        };
        let selector = match which {
            "best" | "" => CheckpointSelector::Best,
            "last" | "latest" => CheckpointSelector::Last,
            epoch => CheckpointSelector::Epoch(epoch.parse().map_err(|_| {
                format!("'{epoch}' is not a checkpoint: use an epoch number, 'best' or 'last'")
            })?),
        };
        Ok((run.to_string(), selector))
    }

    pub fn pick<'a>(&self, index: &'a CheckpointIndex) -> Option<&'a CheckpointEntry> {
        match self {
            CheckpointSelector::Best => index.best().or_else(|| index.last()),
            CheckpointSelector::Last => index.last(),
            CheckpointSelector::Epoch(epoch) => index.at_epoch(*epoch),
        }
    }
}

impl std::fmt::Display for CheckpointSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckpointSelector::Best => f.write_str("best"),
            CheckpointSelector::Last => f.write_str("last"),
            CheckpointSelector::Epoch(epoch) => write!(f, "at epoch {epoch}"),
        }
    }
}

impl RunStore {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(io_error(&root))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes a new, empty run folder with a unique sortable id.
    pub fn create_run_dir(&self, name: &str) -> Result<RunDir, StoreError> {
        loop {
            let id = new_run_id(name);
            match self.create_run_dir_with_id(&id) {
                Err(StoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    continue;
                }
                result => return result,
            }
        }
    }

    /// Makes a new run's folder with `fill` (its run.json) done before the folder appears in the
    /// store: it is built under a hidden name and renamed into place. A process killed in
    /// between leaves a hidden `.creating-…` folder, never a run without its record that a
    /// resumed sweep would not recognise as its trial's.
    pub fn create_run_dir_complete(
        &self,
        name: &str,
        fill: impl FnOnce(&RunDir) -> Result<(), StoreError>,
    ) -> Result<RunDir, StoreError> {
        let (id, staging) = loop {
            let id = new_run_id(name);
            if let Some(problem) = plain_name_problem(&id) {
                return Err(StoreError::Corrupt {
                    path: self.root.join(&id),
                    message: problem.to_string(),
                });
            }
            if self.root.join(&id).exists() {
                continue;
            }
            let staging = self.root.join(format!(".creating-{id}"));
            match std::fs::create_dir(&staging) {
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                result => result.map_err(io_error(&staging))?,
            }
            break (id, staging);
        };
        let filled = std::fs::create_dir(staging.join("checkpoints"))
            .map_err(io_error(&staging))
            .and_then(|()| {
                fill(&RunDir {
                    id: id.clone(),
                    path: staging.clone(),
                })
            });
        let path = self.root.join(&id);
        let placed =
            filled.and_then(|()| std::fs::rename(&staging, &path).map_err(io_error(&path)));
        if let Err(error) = placed {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
        Ok(RunDir { id, path })
    }

    /// Makes the empty folder of run `id` (e.g. the mirror of a run trained elsewhere, which
    /// keeps the id it has there); an existing folder is an error.
    pub fn create_run_dir_with_id(&self, id: &str) -> Result<RunDir, StoreError> {
        if let Some(problem) = plain_name_problem(id) {
            return Err(StoreError::Corrupt {
                path: self.root.join(id),
                message: problem.to_string(),
            });
        }
        let path = self.root.join(id);
        std::fs::create_dir(&path).map_err(io_error(&path))?;
        let checkpoints = path.join("checkpoints");
        std::fs::create_dir_all(&checkpoints).map_err(io_error(&checkpoints))?;
        Ok(RunDir {
            id: id.to_string(),
            path,
        })
    }

    /// Renames the run `query` names, refusing a name another run has (names identify runs).
    pub fn rename(&self, query: &str, name: &str) -> Result<RunDir, StoreError> {
        let dir = self.find(query)?;
        let name = name.trim();
        let owner = self.list()?.into_iter().find_map(|listing| match listing {
            RunListing::Run {
                dir: other, record, ..
            } if record.name == name && other.id != dir.id => Some(other.id),
            _ => None,
        });
        if let Some(id) = owner {
            return Err(StoreError::NameTaken {
                name: name.to_string(),
                id,
            });
        }
        dir.rename(name)?;
        Ok(dir)
    }

    /// `wanted` if no run has that name yet, else the first free `wanted-2`, `wanted-3`, …
    pub fn unused_name(&self, wanted: &str) -> Result<String, StoreError> {
        let taken: std::collections::HashSet<String> = self
            .list()?
            .into_iter()
            .filter_map(|listing| match listing {
                RunListing::Run { record, .. } => Some(record.name),
                RunListing::Broken { .. } => None,
            })
            .collect();
        Ok(std::iter::once(wanted.to_string())
            .chain((2..).map(|n| format!("{wanted}-{n}")))
            .find(|name| !taken.contains(name))
            .unwrap_or_else(|| wanted.to_string()))
    }

    /// Every run folder, sorted by id (oldest first). Unreadable runs are listed as broken.
    pub fn list(&self) -> Result<Vec<RunListing>, StoreError> {
        let entries = std::fs::read_dir(&self.root).map_err(io_error(&self.root))?;
        let mut listings = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let id = entry.file_name().to_string_lossy().into_owned();
            if id.starts_with('.') {
                continue;
            }
            // A link could lead anywhere; a store's runs are its own folders.
            if entry.file_type().is_ok_and(|kind| kind.is_symlink()) {
                listings.push(RunListing::Broken {
                    id,
                    path,
                    error: "a link, not a run folder of this store (not followed)".to_string(),
                });
                continue;
            }
            let dir = RunDir {
                id: id.clone(),
                path: path.clone(),
            };
            listings.push(match dir.read_record() {
                Ok(record) => {
                    let status = effective_status(
                        &dir.path,
                        record.status,
                        record.pid,
                        record.remote.is_some(),
                    );
                    RunListing::Run {
                        busy: live_holder(&dir.path),
                        dir,
                        record: Box::new(record),
                        status,
                    }
                }
                Err(error) => RunListing::Broken {
                    id,
                    path,
                    error: error.to_string(),
                },
            });
        }
        listings.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(listings)
    }

    /// Finds a run by exact id, unique id prefix, or unique name.
    pub fn find(&self, query: &str) -> Result<RunDir, StoreError> {
        let exact = self.root.join(query);
        let is_link = std::fs::symlink_metadata(&exact).is_ok_and(|m| m.file_type().is_symlink());
        if plain_name_problem(query).is_none() && !is_link && exact.join("run.json").is_file() {
            return Ok(RunDir {
                id: query.to_string(),
                path: exact,
            });
        }
        let listings = self.list()?;
        let matches: Vec<&RunListing> = listings
            .iter()
            .filter(|listing| match listing {
                RunListing::Run { dir, record, .. } => {
                    dir.id.starts_with(query) || record.name == query
                }
                // Broken runs can be found (to delete them), but never through a link.
                RunListing::Broken { id, path, .. } => {
                    id.starts_with(query)
                        && !std::fs::symlink_metadata(path)
                            .is_ok_and(|m| m.file_type().is_symlink())
                }
            })
            .collect();
        match matches.as_slice() {
            [] => Err(StoreError::NotFound(query.to_string())),
            [one] => Ok(RunDir {
                id: one.id().to_string(),
                path: self.root.join(one.id()),
            }),
            many => Err(StoreError::Ambiguous {
                query: query.to_string(),
                matches: many.iter().map(|m| m.id()).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Deletes a run folder and everything in it.
    pub fn delete(&self, dir: &RunDir) -> Result<(), StoreError> {
        std::fs::remove_dir_all(&dir.path).map_err(io_error(&dir.path))
    }
}

/// A new sortable run id for `name`: time, the name's letters and digits, a random suffix.
pub fn new_run_id(name: &str) -> String {
    let slug = id_slug(name);
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let suffix: u16 = rand::rng().random();
    format!("{stamp}-{slug}-{suffix:04x}")
}

/// A name as it goes into an id (runs, sweeps): lower-case letters and digits, single dashes
/// between them, at most 32 characters.
pub fn id_slug(name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    slug.chars().take(32).collect()
}

/// `running` only while a live process holds the run's lock (or, for runs written before locks,
/// while the recorded local process exists); otherwise a `running` run was interrupted. A run
/// mirrored from a compute target (`remote`) has the status its follower last saw there.
pub(crate) fn effective_status(
    run_dir: &Path,
    status: RunStatus,
    pid: Option<u32>,
    remote: bool,
) -> RunStatus {
    if status != RunStatus::Running || remote {
        return status;
    }
    let alive = match read_holder(run_dir) {
        Some(holder) => holder.is_live(),
        None => pid.is_some_and(process_alive),
    };
    if alive {
        RunStatus::Running
    } else {
        RunStatus::Interrupted
    }
}

/// One run's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    pub id: String,
    pub path: PathBuf,
}

impl RunDir {
    pub fn record_path(&self) -> PathBuf {
        self.path.join("run.json")
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.path.join("metrics.jsonl")
    }

    pub fn checkpoints_dir(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    fn index_path(&self) -> PathBuf {
        self.checkpoints_dir().join("index.json")
    }

    /// `run.json` with the user's fields (`user.json`) applied over the trainer's copy.
    pub fn read_record(&self) -> Result<RunRecord, StoreError> {
        let path = self.record_path();
        let bytes = read_bounded(&path, MAX_JSON_BYTES).map_err(io_error(&path))?;
        let mut record: RunRecord =
            serde_json::from_slice(&bytes).map_err(|error| StoreError::Corrupt {
                path,
                message: error.to_string(),
            })?;
        if let Some(name) = self.read_user_fields()?.name {
            record.name = name;
        }
        Ok(record)
    }

    /// The run's status as a reader should see it (`interrupted` for a dead `running` run).
    pub fn status(&self) -> Result<RunStatus, StoreError> {
        let record = self.read_record()?;
        Ok(effective_status(
            &self.path,
            record.status,
            record.pid,
            record.remote.is_some(),
        ))
    }

    /// The process training this run right now, if any.
    pub fn busy(&self) -> Option<LockHolder> {
        live_holder(&self.path)
    }

    /// Writes `run.json` (the trainer's file; user-edited fields live in `user.json`).
    pub fn write_record(&self, record: &RunRecord) -> Result<(), StoreError> {
        let path = self.record_path();
        write_json_atomic(&path, record).map_err(io_error(&path))
    }

    pub fn user_path(&self) -> PathBuf {
        self.path.join(USER_FILE)
    }

    /// The user's fields; empty for runs that were never renamed (their name is in `run.json`).
    pub fn read_user_fields(&self) -> Result<UserFields, StoreError> {
        let path = self.user_path();
        match read_bounded(&path, MAX_JSON_BYTES) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| StoreError::Corrupt {
                path,
                message: error.to_string(),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(UserFields::default()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Renames the run in `user.json`, which only people edit: safe while the run trains.
    pub fn rename(&self, name: &str) -> Result<RunRecord, StoreError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::EmptyName);
        }
        let mut fields = self.read_user_fields()?;
        fields.name = Some(name.to_string());
        let path = self.user_path();
        write_json_atomic(&path, &fields).map_err(io_error(&path))?;
        self.read_record()
    }

    pub fn read_metrics(&self) -> Result<MetricsLog, StoreError> {
        let path = self.metrics_path();
        MetricsLog::read(&path).map_err(io_error(&path))
    }

    /// Appends points in one write; they are on disk once [`Self::sync_logs`] returns.
    pub fn append_metrics(&self, points: &[MetricPoint]) -> Result<(), StoreError> {
        let path = self.metrics_path();
        append_points(&path, points).map_err(io_error(&path))
    }

    pub fn confusion_path(&self) -> PathBuf {
        self.path.join("confusion.jsonl")
    }

    /// Every epoch's validation confusion matrix, up to `last_epoch`.
    pub fn read_confusions(&self, last_epoch: usize) -> Result<ConfusionLog, StoreError> {
        let path = self.confusion_path();
        ConfusionLog::read(&path, last_epoch).map_err(io_error(&path))
    }

    /// Appends an epoch's confusion matrix; on disk once [`Self::sync_logs`] returns.
    pub fn append_confusion(&self, epoch: usize, confusion: &[Vec<u64>]) -> Result<(), StoreError> {
        let path = self.confusion_path();
        append_confusion(&path, epoch, confusion).map_err(io_error(&path))
    }

    /// Flushes the metrics and confusion logs to disk.
    pub fn sync_logs(&self) -> Result<(), StoreError> {
        for path in [self.metrics_path(), self.confusion_path()] {
            super::atomic::sync_data(&path).map_err(io_error(&path))?;
        }
        Ok(())
    }

    pub fn read_index(&self) -> Result<CheckpointIndex, StoreError> {
        let path = self.index_path();
        match read_bounded(&path, MAX_JSON_BYTES) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| StoreError::Corrupt {
                path,
                message: error.to_string(),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Ok(CheckpointIndex::default())
            }
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    pub fn write_index(&self, index: &CheckpointIndex) -> Result<(), StoreError> {
        let path = self.index_path();
        write_json_atomic(&path, index).map_err(io_error(&path))
    }

    /// Writes checkpoints' files, then the index that names them, then removes the files of
    /// checkpoints the keep policy dropped. A crash at any point leaves a consistent run. The
    /// caller keeps the index (the training loop is its only writer while a run trains): `index`
    /// already holds the new entries, and `dropped` is what their insertion let go. A new
    /// checkpoint that `index` no longer holds (dropped before it was written) is skipped.
    pub fn write_checkpoints(
        &self,
        checkpoints: &[CheckpointFiles<'_>],
        index: &CheckpointIndex,
        dropped: &[CheckpointEntry],
    ) -> Result<(), StoreError> {
        for checkpoint in checkpoints {
            let entry = checkpoint.entry;
            if index.at_epoch(entry.epoch).is_none() {
                continue;
            }
            let model_path = self.checkpoint_file_path(&entry.model_file)?;
            super::atomic::write_atomic(&model_path, checkpoint.model_bytes)
                .map_err(io_error(&model_path))?;
            let optimizer_path = self.checkpoint_file_path(&entry.optimizer_file)?;
            super::atomic::write_atomic(&optimizer_path, checkpoint.optimizer_bytes)
                .map_err(io_error(&optimizer_path))?;
        }
        self.write_index(index)?;
        self.remove_checkpoint_files(dropped);
        Ok(())
    }

    /// Forgets checkpoints after `epoch`, e.g. when a run continues from an earlier one.
    pub fn truncate_checkpoints_after(&self, epoch: usize) -> Result<CheckpointIndex, StoreError> {
        let mut index = self.read_index()?;
        let dropped = index.truncate_after(epoch);
        if !dropped.is_empty() {
            self.write_index(&index)?;
            self.remove_checkpoint_files(&dropped);
        }
        Ok(index)
    }

    fn remove_checkpoint_files(&self, entries: &[CheckpointEntry]) {
        let dir = self.checkpoints_dir();
        for entry in entries {
            for file in [&entry.model_file, &entry.optimizer_file] {
                // Only plain names inside checkpoints/; removing a link removes the link alone.
                // A file that is already gone is what we wanted; nothing else to do.
                if plain_name_problem(file).is_none() {
                    let _ = std::fs::remove_file(dir.join(file));
                }
            }
        }
    }

    /// A checkpoint file named by `index.json`, which must stay inside `checkpoints/`.
    fn checkpoint_file_path(&self, file: &str) -> Result<PathBuf, StoreError> {
        file_inside(&self.checkpoints_dir(), file).map_err(|message| StoreError::Corrupt {
            path: self.index_path(),
            message,
        })
    }

    pub fn read_checkpoint_file(&self, file: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.checkpoint_file_path(file)?;
        read_bounded(&path, MAX_WEIGHTS_BYTES).map_err(io_error(&path))
    }

    /// The checkpoint a selector names.
    pub fn checkpoint(&self, selector: &CheckpointSelector) -> Result<CheckpointEntry, StoreError> {
        let index = self.read_index()?;
        selector
            .pick(&index)
            .cloned()
            .ok_or_else(|| StoreError::NoCheckpoint {
                run: self.id.clone(),
                what: selector.to_string(),
            })
    }
}
