//! The engine's public face: start or resume a run on a worker thread, get a handle back.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use super::config::{TrainConfig, TrainConfigError};
use super::device::{DeviceChoice, DeviceInfo};
use super::events::{Outcome, TrainEvent};
use super::fit::{EpochJudge, FitPlan, InitialWeights, run_fit};
use crate::data::{DataError, DataSpec, PreparedData, prepare, prepare_for_model};
use crate::model::{ModelConfig, ModelConfigError};
use crate::runs::{
    CheckpointEntry, ConfigChange, Lineage, RUN_FORMAT_VERSION, RunDir, RunLock, RunRecord,
    RunStatus, RunStore, StoreError, SweepTag, append_resume_marker,
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
    /// Continue with this base learning rate (e.g. lower, after a divergence); recorded in the run.
    pub learning_rate: Option<f64>,
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

/// A run that is ready to train: the request is validated and the data prepared, but nothing is
/// written yet. Planning is the slow part (reading, parsing and splitting the data), so a window
/// plans on a background thread; [`PlannedRun::execute`] then writes the run folder and starts
/// the worker, which is quick.
pub struct PlannedRun {
    kind: PlannedKind,
    data: PreparedData,
    device: DeviceChoice,
    judge: Option<EpochJudge>,
    sweep: Option<SweepTag>,
}

enum PlannedKind {
    New {
        runs_dir: PathBuf,
        request: Box<TrainRequest>,
        warm: Option<Box<WarmStart>>,
    },
    Resume {
        dir: RunDir,
        record: Box<RunRecord>,
        last: Option<CheckpointEntry>,
        /// A new base learning rate from the resumed epoch on.
        learning_rate: Option<f64>,
        /// Taken when planning, so two resumes of one run cannot both get this far.
        lock: Box<RunLock>,
    },
}

impl PlannedRun {
    /// The dataset as it will be trained on.
    pub fn data(&self) -> &PreparedData {
        &self.data
    }

    /// Asks `judge` after every epoch whether to go on (a sweep's pruner).
    pub fn with_judge(mut self, judge: EpochJudge) -> Self {
        self.judge = Some(judge);
        self
    }

    /// Marks a new run as a trial of a sweep (recorded in `run.json`).
    pub fn in_sweep(mut self, tag: SweepTag) -> Self {
        self.sweep = Some(tag);
        self
    }

    /// Writes the run (a new folder, or the resumed run's changes) and starts training.
    pub fn execute(self, notify: Option<Notify>) -> Result<TrainHandle, EngineError> {
        let PlannedRun {
            kind,
            data,
            device,
            judge,
            sweep,
        } = self;
        let (plan, lock) = match kind {
            PlannedKind::New {
                runs_dir,
                request,
                warm,
            } => create_run(&runs_dir, *request, data, sweep, warm.map(|warm| *warm))?,
            PlannedKind::Resume {
                dir,
                record,
                last,
                learning_rate,
                lock,
            } => reopen_run(dir, *record, last, learning_rate, data, *lock)?,
        };
        spawn(
            FitPlan {
                device,
                judge,
                ..plan
            },
            notify,
            lock,
        )
    }
}

/// Validates the request and prepares the data; writes nothing. Errors in the request or the
/// data are returned here.
pub fn plan(request: TrainRequest) -> Result<PlannedRun, EngineError> {
    request.model.validate()?;
    request.train.validate()?;
    let prepared = prepare(&request.data)?;
    planned_new(request, prepared, None)
}

/// A new run's plan once its data is prepared: the model must take the data's inputs.
fn planned_new(
    request: TrainRequest,
    prepared: PreparedData,
    warm: Option<Box<WarmStart>>,
) -> Result<PlannedRun, EngineError> {
    request
        .model
        .validate_for(&prepared.preprocessor.input_shape())?;
    Ok(PlannedRun {
        device: request.device,
        judge: None,
        sweep: None,
        kind: PlannedKind::New {
            runs_dir: request.runs_dir.clone(),
            request: Box::new(request),
            warm,
        },
        data: prepared,
    })
}

/// A model to start from: its architecture, the inputs it takes, its weights (and optimizer
/// state), and where it came from. The export layer builds one from a run's checkpoint or a
/// bundle (`export::warm_start`).
#[derive(Debug, Clone)]
pub struct WarmStart {
    pub model: ModelConfig,
    pub schema: crate::data::Schema,
    pub preprocessor: crate::data::Preprocessor,
    pub weights: Vec<u8>,
    pub optimizer: Option<Vec<u8>>,
    /// Refit the input statistics on the new data (else keep the parent's).
    pub refit_stats: bool,
    /// The parent and its own history (`lineage.chain` ends with the parent).
    pub lineage: Lineage,
}

/// Plans a new run that starts from an earlier model's weights: the architecture is the
/// parent's (`request.model` is replaced), and the data must fit its inputs (the same columns
/// and types, no unseen category or class, the same image size), else an error names what does
/// not fit. The parent's input statistics are kept unless `warm.refit_stats`.
pub fn plan_warm(mut request: TrainRequest, warm: WarmStart) -> Result<PlannedRun, EngineError> {
    request.model = warm.model.clone();
    // The parent's column choices (left out, categories, as missing) come with its inputs.
    request.data.columns = warm.preprocessor.choices.clone();
    request.model.validate()?;
    request.train.validate()?;
    let prepared = prepare_for_model(
        &request.data,
        &warm.schema,
        &warm.preprocessor,
        warm.refit_stats,
    )?;
    planned_new(request, prepared, Some(Box::new(warm)))
}

/// Plans and starts a new run (see [`plan`] and [`PlannedRun::execute`]).
pub fn start(request: TrainRequest, notify: Option<Notify>) -> Result<TrainHandle, EngineError> {
    plan(request)?.execute(notify)
}

fn create_run(
    runs_dir: &std::path::Path,
    request: TrainRequest,
    prepared: PreparedData,
    sweep: Option<SweepTag>,
    warm: Option<WarmStart>,
) -> Result<(FitPlan, RunLock), EngineError> {
    let store = RunStore::open(runs_dir)?;
    let wanted = request
        .name
        .clone()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| request.data.dataset_name());
    // Two runs never share a name silently: the second "iris" becomes "iris-2".
    let name = store.unused_name(wanted.trim())?;
    let mut written = None;
    let dir = store.create_run_dir_complete(&name, |staged| {
        let mut record = new_record(
            &staged.id,
            name.clone(),
            &request,
            &prepared,
            sweep.clone(),
            warm.as_ref().map(|warm| warm.lineage.clone()),
        );
        record.pid = Some(std::process::id());
        staged.write_record(&record)?;
        written = Some(record);
        Ok(())
    })?;
    // Nobody else knows the new id yet, so taking the lock once it is in place loses nothing.
    let lock = RunLock::acquire(&dir.path)?;
    let Some(record) = written else {
        return Err(EngineError::Store(crate::runs::StoreError::Corrupt {
            path: dir.path.clone(),
            message: "the new run's record was not written".to_string(),
        }));
    };
    let plan = FitPlan {
        dir,
        record,
        data: prepared,
        device: request.device,
        resume_from: None,
        judge: None,
        initial: warm.map(|warm| InitialWeights {
            model: warm.weights,
            optimizer: warm.optimizer,
        }),
    };
    Ok((plan, lock))
}

/// The `run.json` a new run starts with (status running, no process yet).
fn new_record(
    id: &str,
    name: String,
    request: &TrainRequest,
    prepared: &PreparedData,
    sweep: Option<SweepTag>,
    lineage: Option<Lineage>,
) -> RunRecord {
    let now = chrono::Utc::now().to_rfc3339();
    RunRecord {
        format_version: RUN_FORMAT_VERSION,
        id: id.to_string(),
        name,
        created: now.clone(),
        updated: now,
        status: RunStatus::Running,
        status_message: None,
        // With the column choices in force: row numbers Kiln left out are listed as excluded.
        data: crate::data::DataSpec {
            columns: prepared.preprocessor.choices.clone(),
            ..request.data.clone()
        },
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
        pid: None,
        changes: Vec::new(),
        sweep,
        test: None,
        lineage,
        remote: None,
    }
}

impl PlannedRun {
    /// The run's wanted name (the request's, else the dataset's); `None` for a resume.
    pub fn wanted_name(&self) -> Option<String> {
        match &self.kind {
            PlannedKind::New { request, .. } => Some(
                request
                    .name
                    .clone()
                    .filter(|name| !name.trim().is_empty())
                    .unwrap_or_else(|| request.data.dataset_name())
                    .trim()
                    .to_string(),
            ),
            PlannedKind::Resume { .. } => None,
        }
    }

    /// The `run.json` of this new run as another machine will train it (a compute target:
    /// its `kiln resume` starts a pending run from epoch 0, and continues it after a requeue).
    /// Status pending; `None` for a resume or a warm start (not supported there).
    pub fn record_for_elsewhere(&self, id: &str, name: &str) -> Option<RunRecord> {
        match &self.kind {
            PlannedKind::New {
                request,
                warm: None,
                ..
            } => {
                let mut record = new_record(
                    id,
                    name.to_string(),
                    request,
                    &self.data,
                    self.sweep.clone(),
                    None,
                );
                record.status = RunStatus::Pending;
                Some(record)
            }
            _ => None,
        }
    }
}

/// Plans a new run with exactly `run`'s settings, seed, device and data. Refused, naming what
/// changed, when the dataset's fingerprint is not the original's.
pub fn plan_rerun(runs_dir: &std::path::Path, run: &str) -> Result<PlannedRun, EngineError> {
    let dir = RunStore::open(runs_dir)?.find(run)?;
    let record = dir.read_record()?;
    let refuse = |reason: String| EngineError::NotResumable {
        run: record.id.clone(),
        reason,
    };
    if record.lineage.is_some() {
        return Err(refuse(
            "it started from another model; re-run it from the same parent with --from".to_string(),
        ));
    }
    let device = match record.device.backend.as_str() {
        "wgpu" => DeviceChoice::Wgpu,
        "cpu" => DeviceChoice::Cpu,
        _ => DeviceChoice::Auto,
    };
    let planned = plan(TrainRequest {
        data: record.data.clone(),
        model: record.model.clone(),
        train: record.train.clone(),
        device,
        name: Some(format!("{}-rerun", record.name)),
        runs_dir: runs_dir.to_path_buf(),
    })?;
    let now = &planned.data.fingerprint;
    let then = &record.fingerprint;
    if now.id != then.id {
        let what = if now.content_sha256 != then.content_sha256 {
            format!(
                "the content of {} changed ({} rows now, {} then)",
                record.data.path.display(),
                now.rows,
                then.rows
            )
        } else {
            "the way it is read changed (target, task, split or options)".to_string()
        };
        return Err(refuse(format!(
            "cannot be re-run exactly: {what}; fingerprint {} now, {} then",
            now.short_id(),
            then.short_id()
        )));
    }
    Ok(planned)
}

/// Checks that a run can continue and prepares its data again; writes nothing.
pub fn plan_resume(request: ResumeRequest) -> Result<PlannedRun, EngineError> {
    let store = RunStore::open(&request.runs_dir)?;
    let dir = store.find(&request.run)?;
    // One writer per run: a second resume (another window, terminal or machine) stops here.
    let lock = RunLock::acquire(&dir.path)?;
    let mut record = dir.read_record()?;
    let not_resumable = |reason: String| EngineError::NotResumable {
        run: dir.id.clone(),
        reason,
    };
    if let Some(remote) = &record.remote {
        return Err(not_resumable(format!(
            "it trains on the target '{}'; `kiln resume {}` in a terminal sends it there again",
            remote.target, dir.id
        )));
    }
    // With the lock held, a stored `running` is a run whose writer died; a pending run
    // (submitted to a compute target, this is that target) starts from epoch 0.
    let status = match record.status {
        RunStatus::Running | RunStatus::Pending => RunStatus::Interrupted,
        status => status,
    };
    if let Some(rate) = request.learning_rate {
        super::config::check_learning_rate(rate)?;
    }
    let index = dir.read_index()?;
    let last = index.last().cloned();
    let done = last.as_ref().map_or(0, |entry| entry.epoch);
    if done == 0 && status == RunStatus::Diverged {
        return Err(not_resumable(
            "it diverged in its first epoch, so there is no good checkpoint to continue from; train a new run with a lower learning rate".to_string(),
        ));
    }
    match request.extra_epochs {
        Some(0) => return Err(not_resumable("extend by at least one epoch".to_string())),
        Some(extra) => record.train.epochs = done + extra,
        // A diverged run continues only with a changed learning rate: the same one would
        // diverge again from the same checkpoint.
        None if (status.is_resumable()
            || (status == RunStatus::Diverged && request.learning_rate.is_some()))
            && done < record.train.epochs => {}
        None => {
            return Err(not_resumable(format!(
                "it is {status} after {done} of {} epochs; ask for more epochs to extend it",
                record.train.epochs
            )));
        }
    }
    // A warm-started run's data is encoded as its parent's was.
    let prepared = match &record.lineage {
        Some(_) => prepare_for_model(&record.data, &record.schema, &record.preprocessor, false)?,
        None => prepare(&record.data)?,
    };
    if prepared.fingerprint.id != record.fingerprint.id {
        return Err(not_resumable(format!(
            "{} changed since the run was trained (fingerprint {} now, {} then); train a new run on the new data",
            record.data.path.display(),
            prepared.fingerprint.short_id(),
            record.fingerprint.short_id()
        )));
    }
    let device = request
        .device
        .unwrap_or(match record.device.backend.as_str() {
            "wgpu" => DeviceChoice::Wgpu,
            "cpu" => DeviceChoice::Cpu,
            _ => DeviceChoice::Auto,
        });
    Ok(PlannedRun {
        kind: PlannedKind::Resume {
            dir,
            record: Box::new(record),
            last,
            learning_rate: request.learning_rate,
            lock: Box::new(lock),
        },
        data: prepared,
        device,
        judge: None,
        sweep: None,
    })
}

/// Continues a stopped, interrupted or failed run from its last checkpoint, or extends a
/// finished one by `extra_epochs` (see [`plan_resume`] and [`PlannedRun::execute`]).
pub fn resume(request: ResumeRequest, notify: Option<Notify>) -> Result<TrainHandle, EngineError> {
    plan_resume(request)?.execute(notify)
}

fn reopen_run(
    dir: RunDir,
    mut record: RunRecord,
    last: Option<CheckpointEntry>,
    learning_rate: Option<f64>,
    prepared: PreparedData,
    lock: RunLock,
) -> Result<(FitPlan, RunLock), EngineError> {
    let done = last.as_ref().map_or(0, |entry| entry.epoch);
    // Anything logged after the checkpoint we continue from is superseded by what comes next.
    dir.truncate_checkpoints_after(done)?;
    append_resume_marker(&dir.metrics_path(), done).map_err(|source| StoreError::Io {
        path: dir.metrics_path(),
        source,
    })?;
    let now = chrono::Utc::now().to_rfc3339();
    if let Some(rate) = learning_rate
        && rate != record.train.learning_rate
    {
        record.changes.push(ConfigChange {
            after_epoch: done,
            field: "train.learning_rate".to_string(),
            from: record.train.learning_rate.to_string(),
            to: rate.to_string(),
            at: now.clone(),
        });
        record.train.learning_rate = rate;
    }
    record.status = RunStatus::Running;
    record.status_message = None;
    record.epochs_completed = done;
    record.steps_completed = last.as_ref().map_or(0, |entry| entry.step);
    record.pid = Some(std::process::id());
    record.updated = now;
    dir.write_record(&record)?;
    let plan = FitPlan {
        dir,
        record,
        data: prepared,
        device: DeviceChoice::Auto,
        resume_from: last,
        judge: None,
        initial: None,
    };
    Ok((plan, lock))
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
