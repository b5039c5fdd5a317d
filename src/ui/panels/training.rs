//! Starting, following and stopping this window's run: the data is prepared on a background
//! thread (the window keeps answering, Stop works), then the engine's worker trains and reports
//! events that this panel turns into progress, warnings and an honest account of how it ended.

use crate::train::{
    EpochMetrics, Outcome, PlannedRun, ResumeRequest, TrainEvent, TrainHandle, TrainRequest, plan,
    plan_resume, plan_warm,
};
use crate::ui::app::{Command, KilnApp};
use crate::ui::promise::Task;

use super::training_form::form_problems;

/// The latest batch event.
#[derive(Debug, Clone, Copy)]
pub struct BatchProgress {
    pub epoch: usize,
    pub batch: usize,
    pub batches: usize,
    pub samples_per_sec: f64,
    pub eta_secs: f64,
}

/// How the run ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub outcome: Outcome,
    pub message: String,
    pub epochs_completed: usize,
}

enum Phase {
    /// Reading and preparing the data (and, for a resume, checking the run) off the UI thread.
    Planning(Task<Result<PlannedRun, String>>),
    Training(TrainHandle),
    Ended,
}

/// The run this window is training, as far as its events have told.
pub struct LiveTraining {
    /// Known once the run folder exists (a resume knows it from the start).
    pub run_id: Option<String>,
    pub run_name: String,
    phase: Phase,
    pub device: Option<String>,
    pub progress: Option<BatchProgress>,
    pub start_epoch: usize,
    pub total_epochs: usize,
    pub last_epoch: Option<EpochMetrics>,
    /// Every warning of this run, in order (none replaces another).
    pub warnings: Vec<String>,
    pub finished: Option<Finished>,
    pub stop_requested: bool,
    /// Frames drawn while the data was being prepared: the window kept answering.
    pub frames_while_preparing: usize,
}

impl LiveTraining {
    fn planning(
        run_id: Option<String>,
        run_name: String,
        task: Task<Result<PlannedRun, String>>,
    ) -> Self {
        Self {
            run_id,
            run_name,
            phase: Phase::Planning(task),
            device: None,
            progress: None,
            start_epoch: 0,
            total_epochs: 0,
            last_epoch: None,
            warnings: Vec::new(),
            finished: None,
            stop_requested: false,
            frames_while_preparing: 0,
        }
    }

    /// Stops the run before its next batch; during preparation, before anything is written.
    pub fn stop(&mut self) {
        if let Phase::Training(handle) = &self.phase {
            handle.stop();
        }
        self.stop_requested = true;
    }

    pub fn is_preparing(&self) -> bool {
        matches!(self.phase, Phase::Planning(_))
    }

    fn end(&mut self, outcome: Outcome, message: String) {
        self.phase = Phase::Ended;
        self.finished = Some(Finished {
            outcome,
            message,
            epochs_completed: self.start_epoch,
        });
    }
}

impl KilnApp {
    pub(crate) fn start_training(&mut self, ctx: &egui::Context) {
        if self.is_training() {
            return;
        }
        // Train uses the dataset that loaded, not a path typed since.
        let Some((spec, _)) = &self.data.loaded else {
            self.error("Load a dataset first.");
            return;
        };
        let name = Some(self.settings.run_name.trim().to_string()).filter(|n| !n.is_empty());
        let request = TrainRequest {
            data: spec.clone(),
            model: self.settings.model_config(),
            train: self.settings.train.clone(),
            device: self.settings.device,
            name: name.clone(),
            runs_dir: self.cache.runs_dir.clone(),
        };
        // The next run gets its own name unless one is typed again.
        self.settings.run_name.clear();
        let shown_name = name.unwrap_or_else(|| spec.dataset_name());
        let warm = self.settings.warm_from.clone();
        if self.targets.is_remote() {
            if warm.is_some() {
                self.error("A run that starts from another model trains here: choose Run on local");
                return;
            }
            // Planned and sent off the UI thread; the Targets section follows it from there.
            self.targets.submit(ctx, request);
            return;
        }
        let runs_dir = self.cache.runs_dir.clone();
        let mut task = Task::default();
        task.start(ctx, move || match warm {
            // Loading the parent and fitting the data to its inputs happen here, off the UI thread.
            Some(warm) => crate::export::warm_start(
                &runs_dir,
                &warm.source,
                warm.keep_optimizer,
                warm.refit_stats,
            )
            .map_err(|error| error.to_string())
            .and_then(|start| plan_warm(request, start).map_err(|error| error.to_string())),
            None => plan(request).map_err(|error| error.to_string()),
        });
        self.training = Some(LiveTraining::planning(None, shown_name, task));
    }

    /// A new run with exactly `run`'s settings, seed and data (planned off the UI thread).
    pub(crate) fn rerun(&mut self, ctx: &egui::Context, run: String) {
        if self.is_training() {
            self.error("A run is training already; stop it first.");
            return;
        }
        let runs_dir = self.cache.runs_dir.clone();
        let name = format!("{} (re-run)", self.identity_name(&run));
        let mut task = Task::default();
        task.start(ctx, move || {
            crate::train::plan_rerun(&runs_dir, &run).map_err(|error| error.to_string())
        });
        self.training = Some(LiveTraining::planning(None, name, task));
    }

    pub(crate) fn resume_run(
        &mut self,
        ctx: &egui::Context,
        run: String,
        extra_epochs: Option<usize>,
        learning_rate: Option<f64>,
    ) {
        if self.is_training() {
            self.error("A run is training already; stop it first.");
            return;
        }
        let request = ResumeRequest {
            runs_dir: self.cache.runs_dir.clone(),
            run: run.clone(),
            extra_epochs,
            device: Some(self.settings.device),
            learning_rate,
        };
        let name = self.identity_name(&run);
        let mut task = Task::default();
        task.start(ctx, move || {
            plan_resume(request).map_err(|error| error.to_string())
        });
        self.training = Some(LiveTraining::planning(Some(run), name, task));
    }

    pub(crate) fn poll_training(&mut self, ctx: &egui::Context) {
        let Some(training) = &mut self.training else {
            return;
        };
        if let Phase::Planning(task) = &mut training.phase {
            let Some(planned) = task.take() else {
                training.frames_while_preparing += 1;
                return;
            };
            let planned = planned
                .map_err(|crashed| format!("preparing the run failed: {crashed}"))
                .and_then(|result| result);
            match planned {
                Ok(_) if training.stop_requested => training.end(
                    Outcome::Stopped,
                    "stopped before training began; nothing was written".to_string(),
                ),
                Ok(planned) => {
                    let repaint = ctx.clone();
                    let notify = std::sync::Arc::new(move || repaint.request_repaint());
                    match planned.execute(Some(notify)) {
                        Ok(handle) => {
                            let run_id = handle.run_id.clone();
                            training.run_id = Some(run_id.clone());
                            training.phase = Phase::Training(handle);
                            self.cache.invalidate(&run_id);
                            if !self.settings.selected_runs.contains(&run_id) {
                                self.settings.selected_runs.push(run_id);
                            }
                        }
                        Err(error) => {
                            training.end(Outcome::Failed, format!("Cannot train: {error}"))
                        }
                    }
                }
                Err(error) => training.end(Outcome::Failed, format!("Cannot train: {error}")),
            }
            if let Some(finished) = &training.finished
                && finished.outcome == Outcome::Failed
            {
                let message = finished.message.clone();
                self.error(message);
            }
            return;
        }
        let Phase::Training(handle) = &training.phase else {
            return;
        };
        let mut points = Vec::new();
        let mut changed = false;
        let mut messages = Vec::new();
        while let Ok(event) = handle.events().try_recv() {
            match event {
                TrainEvent::Started {
                    run_name,
                    device,
                    start_epoch,
                    total_epochs,
                    ..
                } => {
                    training.run_name = run_name;
                    training.device = Some(format!("{} — {}", device.adapter, device.reason));
                    training.start_epoch = start_epoch;
                    training.total_epochs = total_epochs;
                    changed = true;
                }
                TrainEvent::Batch {
                    epoch,
                    batch,
                    batches,
                    samples_per_sec,
                    eta_secs,
                    ..
                } => {
                    training.progress = Some(BatchProgress {
                        epoch,
                        batch,
                        batches,
                        samples_per_sec,
                        eta_secs,
                    })
                }
                TrainEvent::Epoch(metrics) => {
                    points.extend(metrics.points());
                    training.last_epoch = Some(metrics);
                }
                TrainEvent::Checkpoint { .. } => changed = true,
                TrainEvent::Warning { message } => {
                    messages.push((false, message.clone()));
                    training.warnings.push(message);
                }
                TrainEvent::Finished {
                    outcome,
                    message,
                    epochs_completed,
                } => {
                    training.phase = Phase::Ended;
                    training.finished = Some(Finished {
                        outcome,
                        message: message.clone(),
                        epochs_completed,
                    });
                    messages.push((
                        outcome == Outcome::Failed || outcome == Outcome::Diverged,
                        message,
                    ));
                    changed = true;
                    break;
                }
            }
        }
        let run_id = training.run_id.clone();
        if let Some(run_id) = run_id {
            if !points.is_empty() {
                self.cache.push_live_points(&run_id, points);
            }
            if changed {
                self.cache.invalidate(&run_id);
                self.cache.rescan(ctx);
            }
        }
        for (is_error, message) in messages {
            if is_error {
                self.error(message);
            } else {
                self.info(message);
            }
        }
    }
}

/// Train / Stop and the live progress of this window's run.
pub fn train_controls_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        let label = ui.label("Run name");
        ui.add(
            egui::TextEdit::singleline(&mut app.settings.run_name)
                .hint_text("dataset name")
                .desired_width(180.0),
        )
        .labelled_by(label.id)
        .on_hover_text(
            "Left empty, the run is named after the dataset; a name in use gets -2, -3, …",
        );
    });
    let problems = form_problems(app);
    for problem in &problems {
        ui.colored_label(ui.visuals().warn_fg_color, format!("⚠ {problem}"));
    }
    ui.horizontal(|ui| {
        let training = app.is_training() || app.targets.is_submitting();
        let train_button = egui::Button::new(egui::RichText::new("▶ Train").size(16.0))
            .min_size(egui::vec2(110.0, 30.0));
        if ui
            .add_enabled(!training && problems.is_empty(), train_button)
            .clicked()
        {
            app.push(Command::StartTraining);
        }
        // Only where targets exist: a laptop-only setup sees no extra choice.
        if app.targets.has_targets() {
            app.targets.run_on_ui(ui);
        }
        let stop_button = egui::Button::new(egui::RichText::new("■ Stop").size(16.0))
            .min_size(egui::vec2(90.0, 30.0));
        if ui.add_enabled(training, stop_button).clicked() {
            app.push(Command::StopTraining);
        }
    });
    app.targets.progress_ui(ui);
    if let Some(training) = &app.training {
        progress_ui(ui, training);
    }
}

fn progress_ui(ui: &mut egui::Ui, training: &LiveTraining) {
    ui.label(egui::RichText::new(&training.run_name).strong());
    if let Some(device) = &training.device {
        ui.weak(device);
    }
    let total = training.total_epochs.max(1);
    match (&training.finished, training.progress) {
        (Some(finished), _) => {
            // Where it really ended, not 100 %: an early stop at 19 of 60 shows 19 of 60.
            let done = finished.epochs_completed.min(total);
            if training.total_epochs > 0 {
                ui.add(
                    egui::ProgressBar::new(done as f32 / total as f32)
                        .text(format!("{done} of {total} epochs"))
                        .desired_width(300.0),
                );
            }
            ui.label(ending_summary(finished, training.total_epochs));
        }
        (None, Some(progress)) => {
            let done = (progress.epoch - 1) as f32
                + progress.batch as f32 / progress.batches.max(1) as f32;
            ui.add(
                egui::ProgressBar::new(done / total as f32)
                    .show_percentage()
                    .desired_width(300.0),
            );
            ui.label(format!(
                "epoch {}/{total} · batch {}/{} · {:.0} samples/s · ETA {}",
                progress.epoch,
                progress.batch,
                progress.batches,
                progress.samples_per_sec,
                format_duration(progress.eta_secs)
            ));
        }
        (None, None) => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(if training.is_preparing() {
                    "Preparing the data…"
                } else {
                    "Starting (choosing the device, compiling kernels)…"
                });
            });
        }
    }
    if let Some(metrics) = &training.last_epoch {
        let mut text = format!(
            "epoch {}: train loss {:.4} · valid loss {:.4}",
            metrics.epoch, metrics.train_loss, metrics.valid_loss
        );
        if let Some(accuracy) = metrics.valid_accuracy {
            text.push_str(&format!(" · valid acc {:.1}%", accuracy * 100.0));
        }
        if let Some(rmse) = metrics.valid_rmse {
            text.push_str(&format!(" · valid RMSE {rmse:.3}"));
        }
        ui.label(text);
    }
    for warning in &training.warnings {
        ui.colored_label(ui.visuals().warn_fg_color, format!("⚠ {warning}"));
    }
    if let Some(finished) = &training.finished {
        let color = match finished.outcome {
            Outcome::Failed | Outcome::Diverged => ui.visuals().error_fg_color,
            _ => ui.visuals().text_color(),
        };
        ui.add(egui::Label::new(egui::RichText::new(&finished.message).color(color)).wrap());
    } else if training.stop_requested {
        ui.weak(if training.is_preparing() {
            "Stopping once the data is read…"
        } else {
            "Stopping after this batch…"
        });
    }
}

/// One line on how a run ended, with the epoch it reached.
fn ending_summary(finished: &Finished, total_epochs: usize) -> String {
    let done = finished.epochs_completed;
    match finished.outcome {
        Outcome::Completed => format!("Completed all {done} epochs."),
        Outcome::EarlyStopped => format!("Stopped early after epoch {done} of {total_epochs}."),
        Outcome::Pruned => format!("Pruned after epoch {done} of {total_epochs}."),
        Outcome::Stopped if total_epochs == 0 => "Stopped before training began.".to_string(),
        Outcome::Stopped => format!("Stopped after epoch {done} of {total_epochs}."),
        Outcome::Diverged => format!("Diverged in epoch {}.", done + 1),
        Outcome::Failed => format!("Failed after epoch {done}."),
    }
}

pub fn format_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "—".to_string();
    }
    // Short runs are common (small tables): "0s" would say nothing.
    if secs < 10.0 {
        return format!("{secs:.1}s");
    }
    let secs = secs.round() as u64;
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}
