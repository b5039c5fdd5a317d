//! Running a sweep: keeps `concurrency` trial runs training on the engine (threads of this
//! process sharing its thread pool), starts the next trial when one ends, prunes, records every
//! change in the sweep record, and reports [`SweepEvent`]s. Resuming picks up where a stopped
//! or killed sweep left off: finished trials are not run again, interrupted ones continue from
//! their checkpoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::planner::{Finished, Planner, Suggestion};
use super::pruner::{JobKey, Pruner, metric_value};
use super::record::{
    SweepRecord, SweepState, SweepStore, SweepStoreError, TrialRecord, TrialStatus, host_name,
    runner_alive,
};
use super::space::{Assignment, apply};
use super::spec::{SpecError, SweepSpec};
use crate::data::prepare;
use crate::runs::{BestBy, RunStore, SplitName, SweepTag};
use crate::train::{
    EngineError, EpochJudge, EpochMetrics, Notify, ResumeRequest, TrainEvent, TrainHandle,
    TrainRequest, plan, plan_resume,
};

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Store(#[from] SweepStoreError),
    #[error(transparent)]
    Runs(#[from] crate::runs::StoreError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("sweep {id} is running right now (process {pid} on {host}); stop it first")]
    Running { id: String, pid: u32, host: String },
    #[error("sweep {id} is {state}: it has nothing left to run")]
    Done { id: String, state: String },
    #[error("could not start the sweep's thread: {0}")]
    Thread(std::io::Error),
}

/// What a running sweep reports (plain data: the CLI prints it, the window draws it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SweepEvent {
    Started {
        sweep_id: String,
        name: String,
        max_trials: usize,
        concurrency: usize,
    },
    TrialStarted {
        trial: usize,
        repeat: usize,
        run_id: String,
        params: Assignment,
        /// Continued from a checkpoint of an earlier session.
        resumed: bool,
    },
    TrialProgress {
        trial: usize,
        repeat: usize,
        epoch: usize,
        total_epochs: usize,
        batch: usize,
        batches: usize,
    },
    TrialEpoch {
        trial: usize,
        repeat: usize,
        run_id: String,
        metrics: EpochMetrics,
    },
    TrialEnded {
        trial: usize,
        repeat: usize,
        run_id: String,
        status: TrialStatus,
        best: Option<f64>,
        best_epoch: Option<usize>,
        message: String,
    },
    Warning {
        message: String,
    },
    Finished {
        state: SweepState,
        message: String,
    },
}

/// A sweep running on a thread of this process.
pub struct SweepHandle {
    pub sweep_id: String,
    events: Receiver<SweepEvent>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SweepHandle {
    /// Stops every running trial (each stays resumable) and ends the sweep as `stopped`.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    pub fn events(&self) -> &Receiver<SweepEvent> {
        &self.events
    }

    /// Waits for the sweep to end and returns the events not yet received.
    pub fn wait(mut self) -> Vec<SweepEvent> {
        let events: Vec<SweepEvent> = self.events.iter().collect();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        events
    }
}

/// Checks the spec against the data (its task decides which metrics exist), records a new
/// sweep in the store and starts it. Nothing trains when the spec or the data is wrong.
pub fn start_sweep(
    spec: SweepSpec,
    runs_dir: &Path,
    notify: Option<Notify>,
) -> Result<SweepHandle, SweepError> {
    spec.check()?;
    let data = prepare(&spec.data)?;
    spec.check_metric_for(data.schema.task())?;
    spec.model
        .validate_for(&data.preprocessor.input_shape())
        .map_err(|error| super::spec::field_error("model", error.to_string()))?;
    RunStore::open(runs_dir)?;
    let store = SweepStore::open(runs_dir);
    let name = spec.display_name();
    let id = store.create(&name)?;
    let record = SweepRecord::started(id, name, spec, Some(std::process::id()));
    store.write(&record)?;
    spawn(runs_dir, record, notify)
}

/// Continues a stopped or killed sweep until its budget is spent.
pub fn resume_sweep(
    runs_dir: &Path,
    query: &str,
    notify: Option<Notify>,
) -> Result<SweepHandle, SweepError> {
    let store = SweepStore::open(runs_dir);
    let mut record = store.find(query)?;
    if runner_alive(&record) {
        return Err(SweepError::Running {
            id: record.id.clone(),
            pid: record.pid.unwrap_or(0),
            host: record.host.clone(),
        });
    }
    if matches!(record.state, SweepState::Completed) {
        return Err(SweepError::Done {
            id: record.id.clone(),
            state: record.state.name().to_string(),
        });
    }
    record.spec.check()?;
    store.clear_stop(&record.id);
    record.state = SweepState::Running;
    record.message = None;
    record.pid = Some(std::process::id());
    record.host = host_name();
    record.updated = chrono::Utc::now().to_rfc3339();
    store.write(&record)?;
    spawn(runs_dir, record, notify)
}

/// Asks the process running sweep `query` (this one or another) to stop.
pub fn request_stop(runs_dir: &Path, query: &str) -> Result<SweepRecord, SweepError> {
    let store = SweepStore::open(runs_dir);
    let record = store.find(query)?;
    store.request_stop(&record.id)?;
    Ok(record)
}

fn spawn(
    runs_dir: &Path,
    record: SweepRecord,
    notify: Option<Notify>,
) -> Result<SweepHandle, SweepError> {
    let (sender, events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let sweep_id = record.id.clone();
    let runs_dir = runs_dir.to_path_buf();
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("kiln-sweep-{sweep_id}"))
        .spawn(move || {
            let mut runner = Runner::new(runs_dir, record, sender, notify, thread_stop);
            runner.run();
        })
        .map_err(SweepError::Thread)?;
    Ok(SweepHandle {
        sweep_id,
        events,
        stop,
        thread: Some(thread),
    })
}

/// A trial run training now.
struct Job {
    key: JobKey,
    run_id: String,
    handle: TrainHandle,
    started: Instant,
    total_epochs: usize,
}

struct Runner {
    runs_dir: PathBuf,
    store: SweepStore,
    record: SweepRecord,
    sender: Sender<SweepEvent>,
    notify: Option<Notify>,
    stop: Arc<AtomicBool>,
    /// Woken by every trial's events, so the loop sleeps between them.
    wake: (Sender<()>, Receiver<()>),
    planner: Option<Planner>,
    pruner: Arc<Pruner>,
    running: Vec<Job>,
    deadline: Option<Instant>,
    /// No new trials: the grid has no more points.
    planning_done: bool,
    /// The time budget is spent: nothing more starts; running trials finish.
    time_up: bool,
    stopping: bool,
}

/// How often the loop looks at the stop file and the clock when no trial reports.
const POLL: Duration = Duration::from_millis(100);

impl Runner {
    fn new(
        runs_dir: PathBuf,
        record: SweepRecord,
        sender: Sender<SweepEvent>,
        notify: Option<Notify>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let spec = &record.spec;
        let planner = spec.space().ok().map(|space| {
            Planner::new(
                spec.method,
                space,
                spec.seed,
                spec.concurrency,
                spec.max_trials,
            )
        });
        let pruner = Arc::new(Pruner::new(spec.pruner, &spec.metric, spec.goal()));
        let deadline = spec
            .max_minutes
            .map(|minutes| Instant::now() + Duration::from_secs_f64(minutes * 60.0));
        Self {
            store: SweepStore::open(&runs_dir),
            runs_dir,
            record,
            sender,
            notify,
            stop,
            wake: channel(),
            planner,
            pruner,
            running: Vec::new(),
            deadline,
            planning_done: false,
            time_up: false,
            stopping: false,
        }
    }

    fn emit(&self, event: SweepEvent) {
        // The receiver may be gone (a closed window): the sweep still runs and is recorded.
        let _ = self.sender.send(event);
        if let Some(notify) = &self.notify {
            notify();
        }
    }

    fn save(&mut self) {
        self.record.updated = chrono::Utc::now().to_rfc3339();
        if let Err(error) = self.store.write(&self.record) {
            self.emit(SweepEvent::Warning {
                message: format!("could not update the sweep record: {error}"),
            });
        }
    }

    fn run(&mut self) {
        self.emit(SweepEvent::Started {
            sweep_id: self.record.id.clone(),
            name: self.record.name.clone(),
            max_trials: self.record.spec.max_trials,
            concurrency: self.record.spec.concurrency,
        });
        if self.planner.is_none() {
            return self.finish(
                SweepState::Failed,
                "the spec's parameters are not valid".into(),
            );
        }
        self.reconcile();
        loop {
            self.poll_jobs();
            if !self.stopping && self.stop_asked() {
                self.stopping = true;
                for job in &self.running {
                    job.handle.stop();
                }
            }
            if self.stopping {
                if self.running.is_empty() {
                    return self.finish(
                        SweepState::Stopped,
                        "stopped; `kiln sweep resume` continues it".into(),
                    );
                }
            } else {
                if self
                    .deadline
                    .is_some_and(|deadline| Instant::now() >= deadline)
                {
                    self.time_up = true;
                }
                if !self.time_up {
                    self.start_jobs();
                }
                if self.running.is_empty() && self.nothing_left() {
                    let message = self.ending_message();
                    return self.finish(SweepState::Completed, message);
                }
            }
            let _ = self.wake.1.recv_timeout(POLL);
        }
    }

    fn stop_asked(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.store.stop_requested(&self.record.id)
    }

    fn finish(&mut self, state: SweepState, message: String) {
        self.record.state = state;
        self.record.message = Some(message.clone());
        self.save();
        self.store.clear_stop(&self.record.id);
        self.emit(SweepEvent::Finished { state, message });
    }

    fn ending_message(&self) -> String {
        let trials = self.record.summaries().len();
        let mut message = format!("{trials} trials");
        if self.time_up {
            message.push_str(" (the time budget ended it)");
        }
        if let Some(best) = self.record.best() {
            message.push_str(&format!(
                "; best: trial {} with {} {}",
                best.trial,
                self.record.spec.metric,
                crate::runs::format_number(best.value.unwrap_or(f64::NAN))
            ));
        }
        message
    }

    /// Brings the record in line with the store after a restart: runs that finished while no
    /// runner watched are recorded as finished; runs started but not recorded are adopted.
    fn reconcile(&mut self) {
        let Ok(store) = RunStore::open(&self.runs_dir) else {
            return;
        };
        let listings = store.list().unwrap_or_default();
        let tagged: BTreeMap<JobKey, String> = listings
            .iter()
            .filter_map(|listing| match listing {
                crate::runs::RunListing::Run { dir, record, .. } => record
                    .sweep
                    .as_ref()
                    .filter(|tag| tag.sweep_id == self.record.id)
                    .map(|tag| ((tag.trial, tag.repeat), dir.id.clone())),
                _ => None,
            })
            .collect();
        for index in 0..self.record.trials.len() {
            let key = (
                self.record.trials[index].trial,
                self.record.trials[index].repeat,
            );
            if self.record.trials[index].run_id.is_none()
                && let Some(run_id) = tagged.get(&key)
            {
                self.record.trials[index].run_id = Some(run_id.clone());
                self.record.trials[index].status = TrialStatus::Stopped;
            }
            let Some(run_id) = self.record.trials[index].run_id.clone() else {
                continue;
            };
            if self.record.trials[index].status.is_final() {
                continue;
            }
            if let Ok(dir) = store.find(&run_id)
                && let Ok(status) = dir.status()
            {
                let status = TrialStatus::from_run(status);
                self.record.trials[index].status = status;
                self.update_from_run(index);
            }
            // The pruner compares with every run the sweep has seen.
            self.remember_history(index);
        }
        for index in 0..self.record.trials.len() {
            if self.record.trials[index].status.is_final() {
                self.remember_history(index);
            }
        }
        self.save();
    }

    fn remember_history(&self, index: usize) {
        let trial = &self.record.trials[index];
        let Some(run_id) = &trial.run_id else {
            return;
        };
        let values = metric_series(&self.runs_dir, &self.record.spec, run_id);
        if !values.is_empty() {
            self.pruner.remember((trial.trial, trial.repeat), &values);
        }
    }

    /// The sweep metric's value at every epoch of a run, from its metrics log.
    /// Fills a trial's best value, epoch count and time from its run's files.
    fn update_from_run(&mut self, index: usize) {
        fill_from_run(
            &self.runs_dir,
            &self.record.spec,
            &mut self.record.trials[index],
        );
    }

    fn poll_jobs(&mut self) {
        let mut ended = Vec::new();
        for (position, job) in self.running.iter_mut().enumerate() {
            let (trial, repeat) = job.key;
            while let Ok(event) = job.handle.events().try_recv() {
                match event {
                    TrainEvent::Started { total_epochs, .. } => job.total_epochs = total_epochs,
                    TrainEvent::Epoch(metrics) => {
                        let _ = self.sender.send(SweepEvent::TrialEpoch {
                            trial,
                            repeat,
                            run_id: job.run_id.clone(),
                            metrics,
                        });
                    }
                    TrainEvent::Batch {
                        epoch,
                        batch,
                        batches,
                        ..
                    } => {
                        let _ = self.sender.send(SweepEvent::TrialProgress {
                            trial,
                            repeat,
                            epoch,
                            total_epochs: job.total_epochs,
                            batch,
                            batches,
                        });
                    }
                    TrainEvent::Warning { message } => {
                        let _ = self.sender.send(SweepEvent::Warning {
                            message: format!("trial {trial}: {message}"),
                        });
                    }
                    TrainEvent::Finished { .. } => ended.push(position),
                    TrainEvent::Checkpoint { .. } => {}
                }
            }
        }
        for position in ended.into_iter().rev() {
            let job = self.running.remove(position);
            self.job_ended(job);
        }
    }

    fn job_ended(&mut self, job: Job) {
        let secs = job.started.elapsed().as_secs_f64();
        let run_id = job.run_id.clone();
        // The run's own record says how it ended (the engine wrote it before the last event).
        let _ = job.handle.wait();
        let status = RunStore::open(&self.runs_dir)
            .and_then(|store| store.find(&run_id))
            .and_then(|dir| dir.status())
            .map(TrialStatus::from_run)
            .unwrap_or(TrialStatus::Failed);
        let Some(index) = self.index_of(job.key) else {
            return;
        };
        self.record.trials[index].status = status;
        self.update_from_run(index);
        if self.record.trials[index].secs == 0.0 {
            self.record.trials[index].secs = secs;
        }
        let trial = self.record.trials[index].clone();
        self.save();
        self.emit(SweepEvent::TrialEnded {
            trial: trial.trial,
            repeat: trial.repeat,
            run_id,
            status: trial.status,
            best: trial.best,
            best_epoch: trial.best_epoch,
            message: trial.message.unwrap_or_default(),
        });
    }

    fn index_of(&self, key: JobKey) -> Option<usize> {
        self.record
            .trials
            .iter()
            .position(|trial| (trial.trial, trial.repeat) == key)
    }

    fn nothing_left(&self) -> bool {
        if self.time_up {
            return true;
        }
        let pending = self
            .record
            .trials
            .iter()
            .any(|trial| !trial.status.is_final());
        !pending && (self.planning_done || self.trials_planned() >= self.record.spec.max_trials)
    }

    fn trials_planned(&self) -> usize {
        self.record
            .trials
            .iter()
            .map(|trial| trial.trial)
            .max()
            .unwrap_or(0)
    }

    fn start_jobs(&mut self) {
        while self.running.len() < self.record.spec.concurrency {
            // Runs of planned trials first (their repeats, or work left from an earlier session).
            let waiting = self.record.trials.iter().position(|trial| {
                !trial.status.is_final()
                    && trial.status != TrialStatus::Running
                    && !self
                        .running
                        .iter()
                        .any(|job| job.key == (trial.trial, trial.repeat))
            });
            let index = match waiting {
                Some(index) => index,
                None => match self.plan_next() {
                    Some(index) => index,
                    None => return,
                },
            };
            self.start_job(index);
        }
    }

    /// Plans the next trial (all its repeats), if the budget and the planner allow.
    fn plan_next(&mut self) -> Option<usize> {
        if self.planning_done {
            return None;
        }
        let next = self.trials_planned() + 1;
        if next > self.record.spec.max_trials {
            return None;
        }
        let planner = self.planner.as_ref()?;
        match planner.suggest(next, &self.finished_trials()) {
            Suggestion::Ready(params) => {
                let first = self.record.trials.len();
                for repeat in 0..self.record.spec.repeats {
                    self.record
                        .trials
                        .push(TrialRecord::planned(next, repeat, params.clone()));
                }
                self.save();
                Some(first)
            }
            Suggestion::Wait => None,
            Suggestion::Exhausted => {
                self.planning_done = true;
                None
            }
        }
    }

    /// Finished trials (every repeat final) with their mean cost, for the planner.
    fn finished_trials(&self) -> BTreeMap<usize, Finished> {
        let goal = self.record.spec.goal();
        self.record
            .summaries()
            .into_iter()
            .filter(|summary| summary.is_final())
            .map(|summary| {
                (
                    summary.trial,
                    Finished {
                        params: summary.params,
                        cost: summary.value.map(|value| goal.as_cost(value)),
                    },
                )
            })
            .collect()
    }

    fn judge_for(&self, key: JobKey) -> EpochJudge {
        let pruner = self.pruner.clone();
        let metric = self.record.spec.metric.clone();
        Arc::new(move |metrics: &EpochMetrics| {
            let value = metric_value(&metric, metrics)?;
            pruner.judge(key, metrics.epoch, value)
        })
    }

    fn notify_for_job(&self) -> Notify {
        let wake = self.wake.0.clone();
        let outer = self.notify.clone();
        Arc::new(move || {
            let _ = wake.send(());
            if let Some(outer) = &outer {
                outer();
            }
        })
    }

    fn start_job(&mut self, index: usize) {
        let trial = self.record.trials[index].clone();
        let key = (trial.trial, trial.repeat);
        let resumed = trial.run_id.is_some();
        let result = match &trial.run_id {
            Some(run_id) => self.resume_job(run_id, key),
            None => self.new_job(&trial, key),
        };
        match result {
            Ok(handle) => {
                let run_id = handle.run_id.clone();
                let entry = &mut self.record.trials[index];
                entry.run_id = Some(run_id.clone());
                entry.status = TrialStatus::Running;
                self.running.push(Job {
                    key,
                    run_id: run_id.clone(),
                    handle,
                    started: Instant::now(),
                    total_epochs: 0,
                });
                self.save();
                self.emit(SweepEvent::TrialStarted {
                    trial: trial.trial,
                    repeat: trial.repeat,
                    run_id,
                    params: trial.params,
                    resumed,
                });
            }
            Err(message) => {
                let entry = &mut self.record.trials[index];
                entry.status = TrialStatus::Failed;
                entry.message = Some(message.clone());
                self.save();
                self.emit(SweepEvent::TrialEnded {
                    trial: trial.trial,
                    repeat: trial.repeat,
                    run_id: trial.run_id.unwrap_or_default(),
                    status: TrialStatus::Failed,
                    best: None,
                    best_epoch: None,
                    message,
                });
            }
        }
    }

    fn new_job(&self, trial: &TrialRecord, key: JobKey) -> Result<TrainHandle, String> {
        plan_trial(&self.record, trial, &self.runs_dir)
            .map_err(|error| error.to_string())?
            .with_judge(self.judge_for(key))
            .execute(Some(self.notify_for_job()))
            .map_err(|error| error.to_string())
    }

    fn resume_job(&self, run_id: &str, key: JobKey) -> Result<TrainHandle, String> {
        plan_resume(ResumeRequest {
            runs_dir: self.runs_dir.clone(),
            run: run_id.to_string(),
            extra_epochs: None,
            device: Some(self.record.spec.device),
            learning_rate: None,
        })
        .map_err(|error| error.to_string())?
        .with_judge(self.judge_for(key))
        .execute(Some(self.notify_for_job()))
        .map_err(|error| error.to_string())
    }
}

/// A trial's run as planned (a new run tagged with the sweep), not started.
pub(super) fn plan_trial(
    record: &SweepRecord,
    trial: &TrialRecord,
    runs_dir: &Path,
) -> Result<crate::train::PlannedRun, SweepError> {
    let spec = &record.spec;
    let (model, mut train) = apply(&spec.model, &spec.train, &trial.params)
        .map_err(|error| super::spec::field_error("parameters", error))?;
    train.seed = spec.train.seed.wrapping_add(trial.repeat as u64);
    train.best_by = Some(BestBy {
        metric: spec.metric.clone(),
        goal: spec.goal(),
    });
    let name = if spec.repeats > 1 {
        format!("{}-t{}-r{}", record.name, trial.trial, trial.repeat + 1)
    } else {
        format!("{}-t{}", record.name, trial.trial)
    };
    let planned = plan(TrainRequest {
        data: spec.data.clone(),
        model,
        train,
        device: spec.device,
        name: Some(name),
        runs_dir: runs_dir.to_path_buf(),
    })?;
    Ok(planned.in_sweep(SweepTag {
        sweep_id: record.id.clone(),
        trial: trial.trial,
        repeat: trial.repeat,
        params: trial.params.clone(),
    }))
}

/// The sweep metric's values by epoch in a run's log.
fn metric_series(runs_dir: &Path, spec: &SweepSpec, run_id: &str) -> Vec<f64> {
    let Ok(dir) = RunStore::open(runs_dir).and_then(|store| store.find(run_id)) else {
        return Vec::new();
    };
    let Ok(log) = dir.read_metrics() else {
        return Vec::new();
    };
    let name = spec
        .metric
        .strip_prefix("valid_")
        .unwrap_or(&spec.metric)
        .to_string();
    let mut by_epoch: BTreeMap<usize, f64> = BTreeMap::new();
    for point in log.series(SplitName::Valid, &name) {
        by_epoch.insert(point.epoch, point.value);
    }
    by_epoch.into_values().collect()
}

/// Fills a trial's best value, epoch count and time from its run's files.
pub(super) fn fill_from_run(runs_dir: &Path, spec: &SweepSpec, trial: &mut TrialRecord) {
    let Some(run_id) = trial.run_id.clone() else {
        return;
    };
    let series = metric_series(runs_dir, spec, &run_id);
    let goal = spec.goal();
    let best = series
        .iter()
        .enumerate()
        .filter(|(_, value)| value.is_finite())
        .min_by(|a, b| goal.as_cost(*a.1).total_cmp(&goal.as_cost(*b.1)));
    trial.best = best.map(|(_, value)| *value);
    trial.best_epoch = best.map(|(epoch, _)| epoch + 1);
    if let Ok(record) = RunStore::open(runs_dir)
        .and_then(|store| store.find(&run_id))
        .and_then(|dir| dir.read_record())
    {
        trial.epochs = record.epochs_completed;
        trial.secs = record.train_secs;
        trial.message = record.status_message;
    }
}
