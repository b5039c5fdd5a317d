//! The engine's public face: start or resume a run on a worker thread, get a handle back.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use super::config::{TrainConfig, TrainConfigError};
use super::device::{DeviceChoice, DeviceInfo};
use super::events::{Outcome, TrainEvent};
use super::fit::{FitPlan, run_fit};
use crate::data::{DataError, DataSpec, prepare};
use crate::model::{ModelConfig, ModelConfigError};
use crate::runs::{
    RUN_FORMAT_VERSION, RunDir, RunLock, RunRecord, RunStatus, RunStore, StoreError,
    append_resume_marker,
};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("model: {0}")]
    Model(#[from] ModelConfigError),
    #[error("training: {0}")]
    Config(#[from] TrainConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {run} cannot be resumed: {reason}")]
    NotResumable { run: String, reason: String },
    #[error("could not start the training thread: {0}")]
    Thread(std::io::Error),
}

/// Validation rows with the most extreme inputs kept with each run (beside the typical ones),
/// so exports can put the rows with the largest outputs into their golden vectors.
const EXTREME_ROWS: usize = 8;

/// Everything a new run needs.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    pub data: DataSpec,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub device: DeviceChoice,
    /// Defaults to the dataset's name.
    pub name: Option<String>,
    pub runs_dir: PathBuf,
}

/// Continue a run from its last checkpoint.
#[derive(Debug, Clone)]
pub struct ResumeRequest {
    pub runs_dir: PathBuf,
    /// Run id, id prefix or name.
    pub run: String,
    /// Train this many epochs beyond the ones completed (required for a finished run).
    pub extra_epochs: Option<usize>,
    /// Defaults to the device choice of the original run's backend.
    pub device: Option<DeviceChoice>,
}

/// A running (or finished) training job.
pub struct TrainHandle {
    pub run_id: String,
    pub run_dir: PathBuf,
    events: Receiver<TrainEvent>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TrainHandle {
    /// Asks training to stop; it does so before the next batch and the run stays resumable.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// A flag that stops the run when set (for signal handlers).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    pub fn events(&self) -> &Receiver<TrainEvent> {
        &self.events
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the worker thread and returns every event not yet received.
    pub fn wait(mut self) -> Vec<TrainEvent> {
        let events: Vec<TrainEvent> = self.events.iter().collect();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        events
    }
}

/// Called after each event is sent, e.g. to wake a UI.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// Validates the request, loads the data, creates the run folder and starts training.
/// Errors in the request or the data are returned here, before any thread starts.
pub fn start(request: TrainRequest, notify: Option<Notify>) -> Result<TrainHandle, EngineError> {
    request.model.validate()?;
    request.train.validate()?;
    let prepared = prepare(&request.data)?;
    request
        .model
        .validate_for(&prepared.preprocessor.input_shape())?;
    let store = RunStore::open(&request.runs_dir)?;
    let name = request
        .name
        .clone()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| request.data.dataset_name());
    let dir = store.create_run_dir(&name)?;
    let lock = RunLock::acquire(&dir.path)?;
    let now = chrono::Utc::now().to_rfc3339();
    let record = RunRecord {
        format_version: RUN_FORMAT_VERSION,
        id: dir.id.clone(),
        name,
        created: now.clone(),
        updated: now,
        status: RunStatus::Running,
        status_message: None,
        data: request.data.clone(),
        fingerprint: prepared.fingerprint.clone(),
        schema: prepared.schema.clone(),
        preprocessor: prepared.preprocessor.clone(),
        model: request.model.clone(),
        train: request.train.clone(),
        device: DeviceInfo {
            backend: request.device.name().to_string(),
            adapter: "not yet chosen".to_string(),
            reason: "starting".to_string(),
        },
        epochs_completed: 0,
        steps_completed: 0,
        train_secs: 0.0,
        best: None,
        kiln_version: env!("CARGO_PKG_VERSION").to_string(),
        burn_version: crate::BURN_VERSION.to_string(),
        sample_rows: prepared.golden_candidates(crate::data::TYPICAL_GOLDEN_ROWS, EXTREME_ROWS),
        pid: Some(std::process::id()),
    };
    dir.write_record(&record)?;
    spawn(
        FitPlan {
            dir,
            record,
            data: prepared,
            device: request.device,
            resume_from: None,
        },
        notify,
        lock,
    )
}

/// Continues a stopped, interrupted or failed run from its last checkpoint, or extends a
/// finished one by `extra_epochs`.
pub fn resume(request: ResumeRequest, notify: Option<Notify>) -> Result<TrainHandle, EngineError> {
    let store = RunStore::open(&request.runs_dir)?;
    let dir = store.find(&request.run)?;
    // One writer per run: a second resume (another window, terminal or machine) stops here.
    let lock = RunLock::acquire(&dir.path)?;
    let mut record = dir.read_record()?;
    // With the lock held, a stored `running` is a run whose writer died.
    let status = match record.status {
        RunStatus::Running => RunStatus::Interrupted,
        status => status,
    };
    let not_resumable = |reason: String| EngineError::NotResumable {
        run: dir.id.clone(),
        reason,
    };
    let index = dir.read_index()?;
    let last = index.last().cloned();
    let done = last.as_ref().map_or(0, |entry| entry.epoch);
    match request.extra_epochs {
        Some(0) => return Err(not_resumable("extend by at least one epoch".to_string())),
        Some(extra) => record.train.epochs = done + extra,
        None if status.is_resumable() && done < record.train.epochs => {}
        None => {
            return Err(not_resumable(format!(
                "it is {status} after {done} of {} epochs; ask for more epochs to extend it",
                record.train.epochs
            )));
        }
    }
    let prepared = prepare(&record.data)?;
    if prepared.fingerprint.id != record.fingerprint.id {
        return Err(not_resumable(format!(
            "{} changed since the run was trained (fingerprint {} now, {} then); train a new run on the new data",
            record.data.path.display(),
            prepared.fingerprint.short_id(),
            record.fingerprint.short_id()
        )));
    }
    // Anything logged after the checkpoint we continue from is superseded by what comes next.
    dir.truncate_checkpoints_after(done)?;
    append_resume_marker(&dir.metrics_path(), done).map_err(|source| StoreError::Io {
        path: dir.metrics_path(),
        source,
    })?;
    record.status = RunStatus::Running;
    record.status_message = None;
    record.epochs_completed = done;
    record.steps_completed = last.as_ref().map_or(0, |entry| entry.step);
    record.pid = Some(std::process::id());
    record.updated = chrono::Utc::now().to_rfc3339();
    dir.write_record(&record)?;
    let device = request
        .device
        .unwrap_or(match record.device.backend.as_str() {
            "wgpu" => DeviceChoice::Wgpu,
            "cpu" => DeviceChoice::Cpu,
            _ => DeviceChoice::Auto,
        });
    spawn(
        FitPlan {
            dir,
            record,
            data: prepared,
            device,
            resume_from: last,
        },
        notify,
        lock,
    )
}

/// Trains on a worker thread that holds the run's lock until the run's end is recorded.
fn spawn(plan: FitPlan, notify: Option<Notify>, lock: RunLock) -> Result<TrainHandle, EngineError> {
    let (sender, events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    // Another process that took the lock over (this one looked dead to it) now owns the run.
    lock.raise_when_lost(stop.clone());
    let run_id = plan.dir.id.clone();
    let run_dir = plan.dir.path.clone();
    let dir = plan.dir.clone();
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("kiln-train-{run_id}"))
        .spawn(move || {
            let emitter = Emitter {
                sender,
                notify,
                lock: std::sync::Mutex::new(Some(lock)),
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_fit(plan, &emitter, &thread_stop)
            }));
            if outcome.is_err() {
                // The loop itself never panics on bad input; this guards against bugs below us
                // (a backend panic) so the run is marked failed instead of left "running".
                mark_failed(&dir, "training crashed inside the backend");
                emitter.send(TrainEvent::Finished {
                    outcome: Outcome::Failed,
                    epochs_completed: dir.read_record().map_or(0, |r| r.epochs_completed),
                    message: "training crashed inside the backend".to_string(),
                });
            }
            emitter.release_lock();
        })
        .map_err(EngineError::Thread)?;
    Ok(TrainHandle {
        run_id,
        run_dir,
        events,
        stop,
        thread: Some(thread),
    })
}

fn mark_failed(dir: &RunDir, message: &str) {
    if let Ok(mut record) = dir.read_record() {
        record.status = RunStatus::Failed;
        record.status_message = Some(message.to_string());
        record.updated = chrono::Utc::now().to_rfc3339();
        let _ = dir.write_record(&record);
    }
}

/// Sends events and wakes the listener; holds the run's lock until the run's end is recorded.
pub(crate) struct Emitter {
    sender: Sender<TrainEvent>,
    notify: Option<Notify>,
    lock: std::sync::Mutex<Option<RunLock>>,
}

impl Emitter {
    /// Lets the run go: whoever hears `Finished` may resume it at once.
    fn release_lock(&self) {
        if let Ok(mut lock) = self.lock.lock() {
            lock.take();
        }
    }

    pub(crate) fn send(&self, event: TrainEvent) {
        if matches!(event, TrainEvent::Finished { .. }) {
            self.release_lock();
        }
        // The receiver may be gone (a closed window); training still finishes and is stored.
        let _ = self.sender.send(event);
        if let Some(notify) = &self.notify {
            notify();
        }
    }
}
