//! What the UI has read from the run store: the run list and, for shown runs, their curves.
//! Reads happen on background threads; the UI only swaps in finished results.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::promise::Task;
use super::series::SeriesCache;
use crate::runs::{CheckpointIndex, ConfusionLog, MetricPoint, MetricsLog, RunListing, RunStore};

/// How often the store is rescanned to pick up runs started elsewhere (e.g. the CLI).
const RESCAN_INTERVAL: Duration = Duration::from_secs(2);

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

pub struct StoreCache {
    pub runs_dir: PathBuf,
    pub listings: Vec<RunListing>,
    pub scan_error: Option<String>,
    scan: Task<Result<Vec<RunListing>, String>>,
    last_scan: Option<Instant>,
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
            listings: Vec::new(),
            scan_error: None,
            scan: Task::default(),
            last_scan: None,
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

    /// Starts a rescan now.
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
                .and_then(|store| store.list())
                .map_err(|error| error.to_string())
        });
    }

    /// Picks up finished reads, rescans when due, and (re)loads curves for `wanted` runs.
    /// Returns whether a new run list arrived this frame.
    pub fn update(&mut self, ctx: &egui::Context, wanted: &[String]) -> bool {
        let mut rescanned = false;
        if let Some(result) = self.scan.take() {
            match result
                .unwrap_or_else(|crashed| Err(format!("reading the store failed: {crashed}")))
            {
                Ok(listings) => {
                    self.listings = listings;
                    self.scan_error = None;
                    rescanned = true;
                }
                Err(error) => self.scan_error = Some(error),
            }
        }
        if self.rescan_again
            || self
                .last_scan
                .is_none_or(|at| at.elapsed() >= RESCAN_INTERVAL)
        {
            self.rescan(ctx);
        }
        ctx.request_repaint_after(RESCAN_INTERVAL);

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
        rescanned
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

    /// Rescans on the next frame's update (e.g. after a file of a run changed).
    pub fn rescan_soon(&mut self) {
        self.rescan_again = true;
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

    pub fn listing(&self, id: &str) -> Option<&RunListing> {
        self.listings.iter().find(|listing| listing.id() == id)
    }

    pub fn forget(&mut self, id: &str) {
        self.curves.remove(id);
        self.listings.retain(|listing| listing.id() != id);
    }
}
