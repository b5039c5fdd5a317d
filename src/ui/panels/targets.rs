//! Compute targets in the window: the "Run on" choice beside Train, the Targets section (the
//! targets file, editable here, with **Test connection** per target), sending a run to a
//! target, and following every remote run that has not ended (one background follower each,
//! started again when the window reopens). Everything that touches the network runs off the UI
//! thread; this panel only turns what comes back into [`SweepUpdate`]s for the app to route
//! (the same routing as a sweep's trials: plot a run, draw its points, re-read it, say so).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use super::SweepUpdate;
use crate::cluster::{
    ConnectionReport, FollowEvent, Follower, LOCAL, Submitted, TargetsFile, submit_runs,
    test_connection,
};
use crate::runs::{RunListing, RunStatus, RunStore};
use crate::train::TrainRequest;
use crate::ui::promise::Task;

/// Remote runs shown with their progress under Train.
const SHOWN_UNDER_TRAIN: usize = 3;

/// How often a follower polls its run.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

/// How far a remote run is, from the epochs its mirror has received.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RemoteProgress {
    pub epochs_total: usize,
    pub epochs_done: usize,
    /// The first epoch seen by this window and the run's clock then (its points' wall_secs).
    first_seen: Option<(usize, f64)>,
    last_wall_secs: f64,
}

impl RemoteProgress {
    fn new(epochs_total: usize, epochs_done: usize) -> Self {
        Self {
            epochs_total,
            epochs_done,
            ..Self::default()
        }
    }

    fn add(&mut self, points: &[crate::runs::MetricPoint]) {
        for point in points {
            self.epochs_done = self.epochs_done.max(point.epoch);
            self.last_wall_secs = self.last_wall_secs.max(point.wall_secs);
            if self.first_seen.is_none() {
                self.first_seen = Some((point.epoch, point.wall_secs));
            }
        }
    }

    /// Seconds left at the pace of the epochs seen so far (the run's own clock, so the link's
    /// delays do not count); none before two epochs were seen.
    pub fn eta_secs(&self) -> Option<f64> {
        let (first_epoch, first_secs) = self.first_seen?;
        let epochs = self
            .epochs_done
            .checked_sub(first_epoch)
            .filter(|&n| n > 0)?;
        let per_epoch = (self.last_wall_secs - first_secs) / epochs as f64;
        Some(per_epoch * self.epochs_total.saturating_sub(self.epochs_done) as f64)
    }

    fn fraction(&self) -> f32 {
        (self.epochs_done as f32 / self.epochs_total.max(1) as f32).clamp(0.0, 1.0)
    }
}

/// A follower thread mirroring one remote run.
struct Following {
    name: String,
    status: String,
    problem: Option<String>,
    progress: RemoteProgress,
    events: Receiver<FollowEvent>,
    stop: Arc<AtomicBool>,
    /// Set when the follower thread ended (its error, if any, was reported).
    done: Task<Result<(), String>>,
}

pub struct TargetsPanel {
    path: PathBuf,
    file: Result<TargetsFile, String>,
    /// The file's text as edited here.
    text: String,
    text_error: Option<String>,
    /// Where the next run trains: `local` or a target's name.
    pub run_on: String,
    tests: BTreeMap<String, Task<Result<ConnectionReport, String>>>,
    reports: BTreeMap<String, Result<String, String>>,
    submitting: Task<Result<Vec<Submitted>, String>>,
    stopping: Task<Result<String, String>>,
    followers: BTreeMap<String, Following>,
    /// The store was looked through for remote runs still under way (once per window).
    picked_up: bool,
}

impl TargetsPanel {
    pub fn new(path: PathBuf) -> Self {
        let file = TargetsFile::read(&path).map_err(|error| error.to_string());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        Self {
            path,
            file,
            text,
            text_error: None,
            run_on: LOCAL.to_string(),
            tests: BTreeMap::new(),
            reports: BTreeMap::new(),
            submitting: Task::default(),
            stopping: Task::default(),
            followers: BTreeMap::new(),
            picked_up: false,
        }
    }

    /// The targets file as last read (`None` when it does not parse).
    pub fn file(&self) -> Option<&TargetsFile> {
        self.file.as_ref().ok()
    }

    /// Whether the targets file names any target (else "Run on" is not shown).
    pub fn has_targets(&self) -> bool {
        self.file
            .as_ref()
            .is_ok_and(|file| !file.targets.is_empty())
    }

    /// Whether the next run goes to a target.
    pub fn is_remote(&self) -> bool {
        self.run_on != LOCAL
    }

    pub fn is_submitting(&self) -> bool {
        self.submitting.is_pending()
    }

    fn target_names(&self) -> Vec<String> {
        let mut names = vec![LOCAL.to_string()];
        if let Ok(file) = &self.file {
            names.extend(
                file.targets
                    .iter()
                    .filter(|t| t.name != LOCAL)
                    .map(|t| t.name.clone()),
            );
        }
        names
    }

    /// The "Run on" choice (beside Train).
    pub fn run_on_ui(&mut self, ui: &mut egui::Ui) {
        let names = self.target_names();
        if !names.contains(&self.run_on) {
            self.run_on = LOCAL.to_string();
        }
        let label = ui.label("Run on");
        egui::ComboBox::from_id_salt("run_on")
            .selected_text(self.run_on.as_str())
            .width(110.0)
            .show_ui(ui, |ui| {
                for name in names {
                    let text = if name == LOCAL {
                        "local (this machine)".to_string()
                    } else {
                        name.clone()
                    };
                    ui.selectable_value(&mut self.run_on, name, text);
                }
            })
            .response
            .labelled_by(label.id)
            .on_hover_text("Train here, or send the run to a compute target (Targets section)");
    }

    /// Sends a new run to the chosen target: planned (data checked) and submitted off the UI
    /// thread; the result arrives in [`TargetsPanel::poll`].
    pub fn submit(&mut self, ctx: &egui::Context, request: TrainRequest) {
        let target = match self.file.as_ref().map(|file| file.get(&self.run_on)) {
            Ok(Ok(target)) => target,
            Ok(Err(error)) => {
                self.reports
                    .insert(self.run_on.clone(), Err(error.to_string()));
                return;
            }
            Err(error) => {
                self.reports.insert(self.run_on.clone(), Err(error.clone()));
                return;
            }
        };
        let runs_dir = request.runs_dir.clone();
        self.submitting.start(ctx, move || {
            let planned = crate::train::plan(request).map_err(|error| error.to_string())?;
            submit_runs(&target, &runs_dir, &[planned], 1, &mut |_| {})
                .map_err(|error| error.to_string())
        });
    }

    /// Picks up what arrived: test reports, submissions, follower events. Starts followers for
    /// remote runs still under way (on the first call, and for each new submission).
    pub fn poll(&mut self, ctx: &egui::Context, runs_dir: &Path) -> Vec<SweepUpdate> {
        let mut updates = Vec::new();
        if !self.picked_up {
            self.picked_up = true;
            self.pick_up(ctx, runs_dir);
        }
        let names: Vec<String> = self.tests.keys().cloned().collect();
        for name in names {
            let Some(result) = self.tests.get_mut(&name).and_then(Task::take) else {
                continue;
            };
            self.tests.remove(&name);
            let report = result
                .map_err(|crashed| format!("the test failed: {crashed}"))
                .and_then(|report| report.map(|report| report.to_string()));
            self.reports.insert(name, report);
        }
        match self.submitting.take() {
            Some(Ok(Ok(submitted))) => {
                for run in submitted {
                    updates.push(SweepUpdate::Info(format!(
                        "{} sent to {} as job {}",
                        run.name, self.run_on, run.job
                    )));
                    updates.push(SweepUpdate::ShowRun(run.run_id.clone()));
                    self.follow(ctx, runs_dir, &run.run_id, run.name);
                }
            }
            Some(Ok(Err(error))) => {
                updates.push(SweepUpdate::Error(format!(
                    "Cannot send the run to {}: {error}",
                    self.run_on
                )));
                self.reports.insert(self.run_on.clone(), Err(error));
            }
            Some(Err(crashed)) => {
                updates.push(SweepUpdate::Error(format!(
                    "Sending the run failed: {crashed}"
                )));
            }
            None => {}
        }
        match self.stopping.take() {
            Some(Ok(Ok(text))) => updates.push(SweepUpdate::Info(text)),
            Some(Ok(Err(text))) => updates.push(SweepUpdate::Error(text)),
            Some(Err(crashed)) => {
                updates.push(SweepUpdate::Error(format!("Stopping failed: {crashed}")))
            }
            None => {}
        }
        let mut ended = Vec::new();
        for (run, following) in &mut self.followers {
            let mut points = Vec::new();
            let mut changed = false;
            while let Ok(event) = following.events.try_recv() {
                match event {
                    FollowEvent::Points(new) => {
                        following.progress.add(&new);
                        points.extend(new);
                    }
                    FollowEvent::Status { status, message } => {
                        following.status = status_text(status, message.as_deref());
                        changed = true;
                    }
                    FollowEvent::Disconnected(message) => {
                        following.problem = Some(format!("disconnected, retrying: {message}"));
                        changed = true;
                    }
                    FollowEvent::Reconnected => {
                        following.problem = None;
                        changed = true;
                    }
                    FollowEvent::Settled { status, message } => {
                        following.status = status_text(status, message.as_deref());
                        let text =
                            format!("{} on its target: {}", following.name, following.status);
                        updates.push(if status == RunStatus::Failed {
                            SweepUpdate::Error(text)
                        } else {
                            SweepUpdate::Info(text)
                        });
                        changed = true;
                    }
                }
            }
            if !points.is_empty() {
                updates.push(SweepUpdate::LivePoints(run.clone(), points));
            }
            if changed {
                updates.push(SweepUpdate::RunChanged(run.clone()));
            }
            match following.done.take() {
                Some(Ok(Ok(()))) => ended.push(run.clone()),
                Some(Ok(Err(error))) => {
                    updates.push(SweepUpdate::Error(format!(
                        "Stopped following {}: {error}",
                        following.name
                    )));
                    ended.push(run.clone());
                }
                Some(Err(crashed)) => {
                    updates.push(SweepUpdate::Error(format!(
                        "Following {} failed: {crashed}",
                        following.name
                    )));
                    ended.push(run.clone());
                }
                None => {}
            }
        }
        for run in ended {
            if let Some(following) = self.followers.remove(&run) {
                // The last events sent before the thread ended.
                while let Ok(FollowEvent::Points(points)) = following.events.try_recv() {
                    updates.push(SweepUpdate::LivePoints(run.clone(), points));
                }
            }
            updates.push(SweepUpdate::RunChanged(run));
        }
        updates
    }

    /// Follows every mirrored run of the store that has not ended.
    fn pick_up(&mut self, ctx: &egui::Context, runs_dir: &Path) {
        let Ok(store) = RunStore::open(runs_dir) else {
            return;
        };
        for listing in store.list().unwrap_or_default() {
            if let RunListing::Run { dir, record, .. } = listing
                && record.remote.as_ref().is_some_and(|link| !link.settled)
            {
                self.follow(ctx, runs_dir, &dir.id, record.name.clone());
            }
        }
    }

    fn follow(&mut self, ctx: &egui::Context, runs_dir: &Path, run: &str, name: String) {
        if self.followers.contains_key(run) {
            return;
        }
        let targets = match &self.file {
            Ok(file) => file.clone(),
            Err(_) => return,
        };
        // The mirror's record says how many epochs the run trains and how many are in.
        let progress = RunStore::open(runs_dir)
            .and_then(|store| store.find(run))
            .and_then(|dir| dir.read_record())
            .map_or_else(
                |_| RemoteProgress::default(),
                |record| RemoteProgress::new(record.train.epochs, record.epochs_completed),
            );
        let (sender, events) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let runs_dir = runs_dir.to_path_buf();
        let run_id = run.to_string();
        let repaint = ctx.clone();
        let mut done = Task::default();
        done.start(ctx, move || {
            let mut follower =
                Follower::open(&runs_dir, &run_id, &targets).map_err(|error| error.to_string())?;
            follower
                .follow(&flag, FOLLOW_INTERVAL, &mut |event| {
                    let _ = sender.send(event);
                    repaint.request_repaint();
                })
                .map(|_| ())
                .map_err(|error| error.to_string())
        });
        self.followers.insert(
            run.to_string(),
            Following {
                name,
                status: "following…".to_string(),
                problem: None,
                progress,
                events,
                stop,
                done,
            },
        );
    }

    /// The Targets section: the file, each target with Test connection, the runs followed.
    pub fn ui(&mut self, ui: &mut egui::Ui, runs_dir: &Path) {
        ui.horizontal_wrapped(|ui| {
            ui.weak("File:");
            ui.weak(self.path.display().to_string());
        });
        match &self.file {
            Err(error) => {
                ui.colored_label(ui.visuals().error_fg_color, error);
            }
            Ok(file) if file.targets.is_empty() => {
                ui.weak("No targets yet: add one below (see docs/cluster.md).");
            }
            Ok(_) => {}
        }
        let targets = self
            .file
            .as_ref()
            .map(|f| f.targets.clone())
            .unwrap_or_default();
        for target in targets {
            ui.horizontal(|ui| {
                ui.label(egui::RichText::new(&target.name).strong());
                ui.weak(target.describe());
            });
            ui.horizontal(|ui| {
                let testing = self.tests.contains_key(&target.name);
                if ui
                    .add_enabled(!testing, egui::Button::new("Test connection"))
                    .clicked()
                {
                    let mut task = Task::default();
                    let probe = target.clone();
                    task.start(ui.ctx(), move || {
                        test_connection(&probe).map_err(|error| error.to_string())
                    });
                    self.tests.insert(target.name.clone(), task);
                    self.reports.remove(&target.name);
                }
                if testing {
                    ui.spinner();
                    ui.weak("connecting…");
                }
            });
            match self.reports.get(&target.name) {
                Some(Ok(report)) => {
                    ui.label(
                        egui::RichText::new(format!("✔ {report}"))
                            .monospace()
                            .small(),
                    );
                }
                Some(Err(error)) => {
                    ui.add(
                        egui::Label::new(
                            egui::RichText::new(format!("✖ {error}"))
                                .color(ui.visuals().error_fg_color),
                        )
                        .wrap(),
                    );
                }
                None => {}
            }
            ui.separator();
        }
        egui::CollapsingHeader::new("Edit the targets file")
            .id_salt("edit_targets")
            .show(ui, |ui| {
                ui.add(
                    egui::TextEdit::multiline(&mut self.text)
                        .code_editor()
                        .desired_rows(8)
                        .desired_width(f32::INFINITY)
                        .hint_text("[[target]]\nname = \"cluster\"\nkind = \"slurm\"\nhost = \"login.example.org\""),
                );
                ui.horizontal(|ui| {
                    if ui.button("Save").clicked() {
                        self.save_text();
                    }
                    if ui.button("Reload").clicked() {
                        self.reload();
                    }
                });
                if let Some(error) = &self.text_error {
                    ui.colored_label(ui.visuals().error_fg_color, error);
                }
            });
        if !self.followers.is_empty() {
            ui.label(egui::RichText::new("Remote runs").strong());
        }
        let mut stop = None;
        for (run, following) in &self.followers {
            ui.horizontal_wrapped(|ui| {
                ui.label(&following.name);
                ui.weak(&following.status);
                if ui
                    .add_enabled(!self.stopping.is_pending(), egui::Button::new("Stop"))
                    .on_hover_text("scancel: the trainer saves its checkpoint; resumable")
                    .clicked()
                {
                    stop = Some(run.clone());
                }
            });
            progress_bar_ui(ui, &following.progress);
            if let Some(problem) = &following.problem {
                ui.colored_label(ui.visuals().warn_fg_color, problem);
            }
        }
        if let (Some(run), Ok(file)) = (stop, &self.file) {
            let targets = file.clone();
            let runs_dir = runs_dir.to_path_buf();
            self.stopping.start(ui.ctx(), move || {
                crate::cluster::stop(&runs_dir, &run, &targets)
                    .map(|job| {
                        format!("Asked the target to stop job {job}; it saves its checkpoint first")
                    })
                    .map_err(|error| format!("Cannot stop {run}: {error}"))
            });
        }
    }

    /// The sending of this window's run to a target, and the runs followed, under Train.
    pub fn progress_ui(&self, ui: &mut egui::Ui) {
        // A few here; a job array's many runs are all listed in the Targets section.
        for following in self.followers.values().take(SHOWN_UNDER_TRAIN) {
            ui.label(format!("{}: {}", following.name, following.status));
            progress_bar_ui(ui, &following.progress);
            if let Some(problem) = &following.problem {
                ui.colored_label(ui.visuals().warn_fg_color, problem);
            }
        }
        if self.followers.len() > SHOWN_UNDER_TRAIN {
            ui.weak(format!(
                "and {} more remote runs (Targets section)",
                self.followers.len() - SHOWN_UNDER_TRAIN
            ));
        }
        if self.submitting.is_pending() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("Sending the run to {}…", self.run_on));
            });
        } else if let Some(Err(error)) = self.reports.get(&self.run_on) {
            ui.add(
                egui::Label::new(
                    egui::RichText::new(format!("✖ {error}")).color(ui.visuals().error_fg_color),
                )
                .wrap(),
            );
        }
    }

    fn save_text(&mut self) {
        let parsed: Result<TargetsFile, String> =
            toml::from_str(&self.text).map_err(|error| error.to_string());
        let checked = parsed.and_then(|file| {
            let problems: Vec<String> = file
                .targets
                .iter()
                .filter_map(|t| t.problems().map(|p| format!("target '{}': {p}", t.name)))
                .collect();
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            }
        });
        match checked {
            Ok(()) => {
                let written = self
                    .path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| {
                        crate::runs::atomic::write_atomic(&self.path, self.text.as_bytes())
                    });
                match written {
                    Ok(()) => self.reload(),
                    Err(error) => {
                        self.text_error = Some(format!("{}: {error}", self.path.display()))
                    }
                }
            }
            Err(error) => self.text_error = Some(format!("Not saved: {error}")),
        }
    }

    fn reload(&mut self) {
        self.file = TargetsFile::read(&self.path).map_err(|error| error.to_string());
        self.text = std::fs::read_to_string(&self.path).unwrap_or_default();
        self.text_error = self.file.as_ref().err().cloned();
    }

    /// How far a followed run is.
    pub fn progress_of(&self, run: &str) -> Option<&RemoteProgress> {
        self.followers.get(run).map(|following| &following.progress)
    }

    /// Runs being followed, with their status line (for tests and the window).
    pub fn followed(&self) -> Vec<(String, String)> {
        self.followers
            .iter()
            .map(|(run, following)| (run.clone(), following.status.clone()))
            .collect()
    }

    /// The last Test connection result of a target.
    pub fn report(&self, target: &str) -> Option<&Result<String, String>> {
        self.reports.get(target)
    }

    pub fn is_testing(&self) -> bool {
        !self.tests.is_empty()
    }
}

impl Drop for TargetsPanel {
    fn drop(&mut self) {
        for following in self.followers.values() {
            following.stop.store(true, Ordering::SeqCst);
        }
    }
}

/// Epochs in of the run's total, with the time left once the pace is known.
fn progress_bar_ui(ui: &mut egui::Ui, progress: &RemoteProgress) {
    if progress.epochs_total == 0 {
        return;
    }
    let eta = progress
        .eta_secs()
        .filter(|_| progress.epochs_done < progress.epochs_total)
        .map(|secs| format!(" · ETA {}", super::training::format_duration(secs)))
        .unwrap_or_default();
    ui.add(
        egui::ProgressBar::new(progress.fraction())
            .text(format!(
                "{} of {} epochs{eta}",
                progress.epochs_done, progress.epochs_total
            ))
            .desired_width(280.0),
    );
}

fn status_text(status: RunStatus, message: Option<&str>) -> String {
    match message {
        Some(message) => format!("{status}: {message}"),
        None => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::RemoteProgress;
    use crate::runs::{MetricPoint, SplitName};

    fn point(epoch: usize, wall_secs: f64) -> MetricPoint {
        MetricPoint {
            epoch,
            step: epoch as u64,
            split: SplitName::Valid,
            metric: "loss".into(),
            value: 0.5,
            wall_secs,
        }
    }

    #[test]
    fn the_eta_follows_the_runs_own_clock_once_two_epochs_are_in() {
        let mut progress = RemoteProgress::new(10, 2);
        assert_eq!(progress.eta_secs(), None);
        progress.add(&[point(3, 30.0)]);
        assert_eq!(progress.eta_secs(), None, "one epoch gives no pace");
        progress.add(&[point(4, 40.0), point(5, 50.0)]);
        assert_eq!(progress.epochs_done, 5);
        assert_eq!(
            progress.eta_secs(),
            Some(50.0),
            "5 epochs left at 10 s each"
        );
    }
}
