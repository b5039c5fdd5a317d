//! What the UI has read from the run store: a summary of every run (from the store index), the
//! full records of the runs it looks at, and the curves of shown runs. The store is watched:
//! only runs whose files changed are read again, and nothing is read (or repainted) while
//! nothing changes. Where the store cannot be watched, it is rescanned every few seconds.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::promise::Task;
use super::series::SeriesCache;
use crate::runs::{
    CheckpointIndex, ConfusionLog, MetricPoint, MetricsLog, RunRecord, RunStore, RunSummary,
    StoreError, StoreSummary, StoreWatcher,
};

/// Rescans of a store that cannot be watched (a network filesystem, say).
const FALLBACK_RESCAN: Duration = Duration::from_secs(5);

/// A run's curves and checkpoints as last read.
#[derive(Debug, Clone, Default)]
pub struct RunCurves {
    pub log: MetricsLog,
    pub index: CheckpointIndex,
    /// Every epoch's validation confusion matrix (classification runs).
    pub confusions: ConfusionLog,
    /// Drawable series derived from `log`, kept between frames.
    pub series: SeriesCache,
}

type CurvesResult = (String, Result<RunCurves, String>);
/// Re-read runs: their new summary, or `None` when the folder is gone (or not a run).
type Refreshed = Vec<(String, Option<RunSummary>)>;

pub struct StoreCache {
    pub runs_dir: PathBuf,
    /// Every readable run, sorted by id (oldest first).
    pub runs: Vec<RunSummary>,
    /// Folders that are not readable runs: (id, why).
    pub broken: Vec<(String, String)>,
    pub scan_error: Option<String>,
    /// Bumped whenever `runs` changes, so views rebuild what they derive from it.
    pub generation: u64,
    scan: Task<Result<StoreSummary, String>>,
    refresh: Task<Refreshed>,
    to_refresh: BTreeSet<String>,
    watcher: Option<StoreWatcher>,
    /// The watcher could not start: poll instead.
    polling: bool,
    last_scan: Option<Instant>,
    records: RefCell<HashMap<String, Arc<RunRecord>>>,
    curves: HashMap<String, RunCurves>,
    curve_tasks: HashMap<String, Task<CurvesResult>>,
    /// Runs whose files changed since their curves were read.
    stale: Vec<String>,
    /// A reading task that crashed, to report once.
    task_error: Option<String>,
    /// A rescan was asked for while one was running: the files may have changed since it began.
    rescan_again: bool,
}

impl StoreCache {
    pub fn new(runs_dir: PathBuf) -> Self {
        Self {
            runs_dir,
            runs: Vec::new(),
            broken: Vec::new(),
            scan_error: None,
            generation: 0,
            scan: Task::default(),
            refresh: Task::default(),
            to_refresh: BTreeSet::new(),
            watcher: None,
            polling: false,
            last_scan: None,
            records: RefCell::default(),
            curves: HashMap::new(),
            curve_tasks: HashMap::new(),
            stale: Vec::new(),
            task_error: None,
            rescan_again: false,
        }
    }

    pub fn is_scanning(&self) -> bool {
        self.scan.is_pending()
    }

    /// Whether the store is watched (else polled).
    pub fn is_watched(&self) -> bool {
        self.watcher.is_some()
    }

    /// Starts a full rescan now (through the index, so only changed runs are read).
    pub fn rescan(&mut self, ctx: &egui::Context) {
        if self.scan.is_pending() {
            self.rescan_again = true;
            return;
        }
        self.rescan_again = false;
        let runs_dir = self.runs_dir.clone();
        self.last_scan = Some(Instant::now());
        self.scan.start(ctx, move || {
            RunStore::open(&runs_dir)
                .and_then(|store| store.summaries())
                .map_err(|error| error.to_string())
        });
    }

    /// Rescans on the next frame's update (e.g. after a file of a run changed).
    pub fn rescan_soon(&mut self) {
        self.rescan_again = true;
    }

    fn start_watching(&mut self, ctx: &egui::Context) {
        if self.watcher.is_some() || self.polling {
            return;
        }
        let _ = RunStore::open(&self.runs_dir);
        let wake = ctx.clone();
        match StoreWatcher::start(&self.runs_dir, move || wake.request_repaint()) {
            Ok(watcher) => self.watcher = Some(watcher),
            Err(error) => {
                log::warn!(
                    "cannot watch {} ({error}); rescanning every {} s",
                    self.runs_dir.display(),
                    FALLBACK_RESCAN.as_secs()
                );
                self.polling = true;
            }
        }
    }

    /// Picks up finished reads, re-reads changed runs, and (re)loads curves for `wanted` runs.
    /// Returns whether the run list changed this frame.
    pub fn update(&mut self, ctx: &egui::Context, wanted: &[String]) -> bool {
        self.start_watching(ctx);
        let mut changed = false;
        if let Some(result) = self.scan.take() {
            match result
                .unwrap_or_else(|crashed| Err(format!("reading the store failed: {crashed}")))
            {
                Ok(summary) => {
                    self.runs = summary.runs;
                    self.broken = summary.broken;
                    self.scan_error = None;
                    self.records.borrow_mut().clear();
                    changed = true;
                }
                Err(error) => self.scan_error = Some(error),
            }
        }
        match self.refresh.take() {
            Some(Ok(refreshed)) => {
                for (id, summary) in refreshed {
                    self.apply(id, summary);
                }
                changed = true;
            }
            Some(Err(crashed)) => {
                self.task_error = Some(format!("Re-reading runs failed: {crashed}"));
            }
            None => {}
        }
        let due = self.last_scan.is_none()
            || self.rescan_again
            || (self.polling
                && self
                    .last_scan
                    .is_some_and(|at| at.elapsed() >= FALLBACK_RESCAN));
        if due {
            self.rescan(ctx);
        }
        if self.polling {
            ctx.request_repaint_after(FALLBACK_RESCAN);
        }
        if let Some(watcher) = &self.watcher {
            self.to_refresh.extend(watcher.take_changed());
        }
        if !self.to_refresh.is_empty() && !self.refresh.is_pending() && !self.scan.is_pending() {
            let ids: Vec<String> = std::mem::take(&mut self.to_refresh).into_iter().collect();
            for id in &ids {
                self.invalidate(id);
            }
            let runs_dir = self.runs_dir.clone();
            self.refresh.start(ctx, move || {
                let store = RunStore::open(&runs_dir);
                ids.into_iter()
                    .map(|id| {
                        let summary = store.as_ref().ok().and_then(|store| {
                            match store.summary_of(&id) {
                                Ok(summary) => Some(summary),
                                // A folder being created has no run.json yet; it comes with the
                                // next change.
                                Err(StoreError::NotFound(_)) => None,
                                Err(_) => None,
                            }
                        });
                        (id, summary)
                    })
                    .collect()
            });
        }
        if changed {
            self.generation += 1;
        }

        let mut finished: Vec<CurvesResult> = Vec::new();
        let mut crashed: Vec<String> = Vec::new();
        for (id, task) in &mut self.curve_tasks {
            match task.take() {
                Some(Ok(result)) => finished.push(result),
                Some(Err(error)) => {
                    crashed.push(id.clone());
                    self.task_error = Some(format!("Reading the curves of {id} failed: {error}"));
                }
                None => {}
            }
        }
        for id in crashed {
            self.curve_tasks.remove(&id);
            // Not read again every frame: only when the run's files change.
            self.curves.insert(id, RunCurves::default());
        }
        for (id, result) in finished {
            self.curve_tasks.remove(&id);
            match result {
                Ok(curves) => {
                    self.curves.insert(id, curves);
                }
                Err(error) => {
                    self.task_error = Some(format!("Cannot read the curves of {id}: {error}"));
                    self.curves.insert(id, RunCurves::default());
                }
            }
        }
        for id in wanted {
            let missing = !self.curves.contains_key(id);
            let stale = self.stale.contains(id);
            if (missing || stale) && !self.curve_tasks.contains_key(id) {
                self.stale.retain(|s| s != id);
                self.load_curves(ctx, id.clone());
            }
        }
        changed
    }

    /// Puts one re-read run in place (or removes it).
    fn apply(&mut self, id: String, summary: Option<RunSummary>) {
        self.records.borrow_mut().remove(&id);
        let position = self.runs.binary_search_by(|run| run.id.as_str().cmp(&id));
        match (position, summary) {
            (Ok(index), Some(summary)) => self.runs[index] = summary,
            (Err(index), Some(summary)) => self.runs.insert(index, summary),
            (Ok(index), None) => {
                // Gone, or not readable now: a full rescan says which.
                if !RunStore::open(&self.runs_dir)
                    .map(|store| store.root().join(&id).is_dir())
                    .unwrap_or(false)
                {
                    self.runs.remove(index);
                    self.curves.remove(&id);
                } else {
                    self.rescan_again = true;
                }
            }
            (Err(_), None) => {}
        }
        self.broken.retain(|(broken, _)| *broken != id);
    }

    fn load_curves(&mut self, ctx: &egui::Context, id: String) {
        let runs_dir = self.runs_dir.clone();
        let key = id.clone();
        let mut task = Task::default();
        task.start(ctx, move || {
            let result = (|| {
                let store = RunStore::open(&runs_dir)?;
                let dir = store.find(&id)?;
                let log = dir.read_metrics()?;
                let last_epoch = log.points.iter().map(|p| p.epoch).max().unwrap_or(0);
                Ok::<_, crate::runs::StoreError>(RunCurves {
                    confusions: dir.read_confusions(last_epoch)?,
                    log,
                    index: dir.read_index()?,
                    series: SeriesCache::default(),
                })
            })()
            .map_err(|error| error.to_string());
            (id, result)
        });
        self.curve_tasks.insert(key, task);
    }

    /// A background read that crashed since the last call, to show once.
    pub fn take_task_error(&mut self) -> Option<String> {
        self.task_error.take()
    }

    /// Marks a run's curves for re-reading (its files changed).
    pub fn invalidate(&mut self, id: &str) {
        if !self.stale.iter().any(|s| s == id) {
            self.stale.push(id.to_string());
        }
        self.records.borrow_mut().remove(id);
    }

    /// Adds points that arrived as events before the file is re-read, so live curves move at once.
    pub fn push_live_points(&mut self, id: &str, points: Vec<MetricPoint>) {
        self.curves
            .entry(id.to_string())
            .or_default()
            .log
            .points
            .extend(points);
    }

    pub fn curves(&self, id: &str) -> Option<&RunCurves> {
        self.curves.get(id)
    }

    pub fn summary(&self, id: &str) -> Option<&RunSummary> {
        self.runs
            .binary_search_by(|run| run.id.as_str().cmp(id))
            .ok()
            .map(|index| &self.runs[index])
    }

    /// A run's full record, read once and kept until the run changes.
    pub fn record(&self, id: &str) -> Option<Arc<RunRecord>> {
        if let Some(record) = self.records.borrow().get(id) {
            return Some(record.clone());
        }
        self.summary(id)?;
        let record = RunStore::open(&self.runs_dir)
            .and_then(|store| store.find(id))
            .and_then(|dir| dir.read_record())
            .ok()?;
        let record = Arc::new(record);
        self.records
            .borrow_mut()
            .insert(id.to_string(), record.clone());
        Some(record)
    }

    pub fn forget(&mut self, id: &str) {
        self.curves.remove(id);
        self.records.borrow_mut().remove(id);
        self.runs.retain(|run| run.id != id);
        self.generation += 1;
    }
}
