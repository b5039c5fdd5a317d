//! Starting, following and stopping a run; the model and training form.

use crate::train::{
    DeviceChoice, EpochMetrics, LrSchedule, OptimizerConfig, Outcome, ResumeRequest, TrainEvent,
    TrainHandle, TrainRequest, resume, start,
};
use crate::ui::app::{Command, KilnApp};

/// The run this window is training, as far as its events have told.
pub struct LiveTraining {
    pub run_id: String,
    pub run_name: String,
    pub handle: TrainHandle,
    pub device: Option<String>,
    /// (epoch, batch, batches, samples/s, ETA seconds)
    pub progress: Option<(usize, usize, usize, f64, f64)>,
    pub total_epochs: usize,
    pub last_epoch: Option<EpochMetrics>,
    pub finished: Option<(Outcome, String)>,
    pub stop_requested: bool,
}

impl KilnApp {
    pub(crate) fn start_training(&mut self, ctx: &egui::Context) {
        if self.is_training() {
            return;
        }
        let request = TrainRequest {
            data: self.data_spec(),
            model: self.settings.model_config(),
            train: self.settings.train.clone(),
            device: self.settings.device,
            name: Some(self.settings.run_name.clone()).filter(|n| !n.trim().is_empty()),
            runs_dir: self.cache.runs_dir.clone(),
        };
        let repaint = ctx.clone();
        match start(
            request,
            Some(std::sync::Arc::new(move || repaint.request_repaint())),
        ) {
            Ok(handle) => self.follow(handle),
            Err(error) => self.error(format!("Cannot train: {error}")),
        }
    }

    pub(crate) fn resume_run(
        &mut self,
        ctx: &egui::Context,
        run: String,
        extra_epochs: Option<usize>,
    ) {
        if self.is_training() {
            self.error("A run is training already; stop it first.");
            return;
        }
        let repaint = ctx.clone();
        let request = ResumeRequest {
            runs_dir: self.cache.runs_dir.clone(),
            run,
            extra_epochs,
            device: Some(self.settings.device),
        };
        match resume(
            request,
            Some(std::sync::Arc::new(move || repaint.request_repaint())),
        ) {
            Ok(handle) => self.follow(handle),
            Err(error) => self.error(format!("Cannot resume: {error}")),
        }
    }

    fn follow(&mut self, handle: TrainHandle) {
        let run_id = handle.run_id.clone();
        self.cache.invalidate(&run_id);
        if !self.settings.selected_runs.contains(&run_id) {
            self.settings.selected_runs.push(run_id.clone());
        }
        self.training = Some(LiveTraining {
            run_name: run_id.clone(),
            run_id,
            handle,
            device: None,
            progress: None,
            total_epochs: 0,
            last_epoch: None,
            finished: None,
            stop_requested: false,
        });
    }

    pub(crate) fn poll_training(&mut self, ctx: &egui::Context) {
        let Some(training) = &mut self.training else {
            return;
        };
        let mut points = Vec::new();
        let mut changed = false;
        let mut finished_message = None;
        while let Ok(event) = training.handle.events().try_recv() {
            match event {
                TrainEvent::Started {
                    run_name,
                    device,
                    total_epochs,
                    ..
                } => {
                    training.run_name = run_name;
                    training.device = Some(format!("{} — {}", device.adapter, device.reason));
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
                } => training.progress = Some((epoch, batch, batches, samples_per_sec, eta_secs)),
                TrainEvent::Epoch(metrics) => {
                    points.extend(metrics.points());
                    training.last_epoch = Some(metrics);
                }
                TrainEvent::Checkpoint { .. } => changed = true,
                TrainEvent::Warning { message } => finished_message = Some((false, message)),
                TrainEvent::Finished {
                    outcome, message, ..
                } => {
                    training.finished = Some((outcome, message.clone()));
                    finished_message = Some((
                        outcome == Outcome::Failed || outcome == Outcome::Diverged,
                        message,
                    ));
                    changed = true;
                }
            }
        }
        let run_id = training.run_id.clone();
        if !points.is_empty() {
            self.cache.push_live_points(&run_id, points);
        }
        if changed {
            self.cache.invalidate(&run_id);
            self.cache.rescan(ctx);
        }
        match finished_message {
            Some((true, message)) => self.error(message),
            Some((false, message)) => self.info(message),
            None => {}
        }
    }
}

/// Problems with the form that would make Train fail, shown before it is pressed.
pub fn form_problems(app: &KilnApp) -> Vec<String> {
    let mut problems = Vec::new();
    if app.data.loaded.is_none() {
        problems.push("Load a dataset first.".to_string());
    }
    let input = app
        .data
        .loaded
        .as_ref()
        .map(|(_, prepared)| prepared.preprocessor.input_shape());
    let checked = match &input {
        Some(input) => app.settings.model_config().validate_for(input),
        None => app.settings.model_config().validate(),
    };
    if let Err(error) = checked {
        problems.push(error.to_string());
    }
    if let Err(error) = app.settings.train.validate() {
        problems.push(error.to_string());
    }
    problems
}

pub fn training_form_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    let train = &mut app.settings.train;
    egui::Grid::new("train_grid")
        .num_columns(2)
        .spacing([8.0, 4.0])
        .show(ui, |ui| {
            ui.label("Optimizer");
            ui.horizontal(|ui| {
                let current = train.optimizer.name();
                for (name, value) in [
                    ("sgd", OptimizerConfig::Sgd { momentum: 0.9 }),
                    ("adam", OptimizerConfig::Adam),
                    ("adamw", OptimizerConfig::AdamW { weight_decay: 0.01 }),
                ] {
                    if ui.selectable_label(current == name, name).clicked() && current != name {
                        train.optimizer = value;
                    }
                }
            });
            ui.end_row();
            match &mut train.optimizer {
                OptimizerConfig::Sgd { momentum } => {
                    let label = ui.label("Momentum");
                    ui.add(
                        egui::DragValue::new(momentum)
                            .range(0.0..=0.999)
                            .speed(0.01),
                    )
                    .labelled_by(label.id);
                    ui.end_row();
                }
                OptimizerConfig::AdamW { weight_decay } => {
                    let label = ui.label("Weight decay");
                    ui.add(
                        egui::DragValue::new(weight_decay)
                            .range(0.0..=1.0)
                            .speed(0.001),
                    )
                    .labelled_by(label.id);
                    ui.end_row();
                }
                OptimizerConfig::Adam => {}
            }
            let label = ui.label("Learning rate");
            ui.add(
                egui::DragValue::new(&mut train.learning_rate)
                    .range(1e-6..=1.0)
                    .speed(0.0005)
                    .max_decimals(6),
            )
            .labelled_by(label.id);
            ui.end_row();
            ui.label("Schedule");
            ui.horizontal(|ui| {
                let current = train.schedule.name();
                for (name, value) in [
                    ("constant", LrSchedule::Constant),
                    ("cosine", LrSchedule::Cosine { min_factor: 0.0 }),
                    (
                        "step",
                        LrSchedule::Step {
                            every_epochs: 10,
                            gamma: 0.5,
                        },
                    ),
                ] {
                    if ui.selectable_label(current == name, name).clicked() && current != name {
                        train.schedule = value;
                    }
                }
            });
            ui.end_row();
            if let LrSchedule::Step {
                every_epochs,
                gamma,
            } = &mut train.schedule
            {
                ui.label("Step every");
                ui.horizontal(|ui| {
                    ui.add(
                        egui::DragValue::new(every_epochs)
                            .range(1..=10_000)
                            .suffix(" epochs"),
                    );
                    let label = ui.label("×");
                    ui.add(egui::DragValue::new(gamma).range(0.01..=1.0).speed(0.01))
                        .labelled_by(label.id);
                });
                ui.end_row();
            }
            let label = ui.label("Batch size");
            ui.add(egui::DragValue::new(&mut train.batch_size).range(1..=65_536))
                .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Epochs");
            ui.add(egui::DragValue::new(&mut train.epochs).range(1..=100_000))
                .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Seed");
            ui.add(egui::DragValue::new(&mut train.seed))
                .labelled_by(label.id);
            ui.end_row();
            ui.label("Early stopping");
            ui.horizontal(|ui| {
                let mut enabled = train.early_stopping_patience.is_some();
                let toggle = ui.checkbox(&mut enabled, "patience");
                if toggle.changed() {
                    train.early_stopping_patience = enabled.then_some(10);
                }
                if let Some(patience) = &mut train.early_stopping_patience {
                    ui.add(
                        egui::DragValue::new(patience)
                            .range(1..=10_000)
                            .suffix(" epochs"),
                    )
                    .labelled_by(toggle.id);
                }
            });
            ui.end_row();
            ui.label("Device");
            ui.horizontal(|ui| {
                for choice in DeviceChoice::ALL {
                    ui.selectable_value(&mut app.settings.device, choice, choice.name());
                }
            });
            ui.end_row();
        });
    match &app.detected_adapters {
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.weak("Looking for GPUs…");
            });
        }
        Some(adapters) if adapters.is_empty() => {
            ui.weak("No wgpu adapter found: training runs on the CPU.");
        }
        Some(adapters) => {
            for adapter in adapters {
                ui.weak(format!(
                    "wgpu: {} ({}{})",
                    adapter.name,
                    adapter.backend,
                    if adapter.software {
                        ", software — auto uses the CPU"
                    } else {
                        ""
                    }
                ));
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
        .labelled_by(label.id);
    });
    let problems = form_problems(app);
    for problem in &problems {
        ui.colored_label(ui.visuals().warn_fg_color, format!("⚠ {problem}"));
    }
    ui.horizontal(|ui| {
        let training = app.is_training();
        let train_button = egui::Button::new(egui::RichText::new("▶ Train").size(16.0))
            .min_size(egui::vec2(110.0, 30.0));
        if ui
            .add_enabled(!training && problems.is_empty(), train_button)
            .clicked()
        {
            app.push(Command::StartTraining);
        }
        let stop_button = egui::Button::new(egui::RichText::new("■ Stop").size(16.0))
            .min_size(egui::vec2(90.0, 30.0));
        if ui.add_enabled(training, stop_button).clicked() {
            app.push(Command::StopTraining);
        }
    });
    let Some(training) = &app.training else {
        return;
    };
    ui.label(egui::RichText::new(&training.run_name).strong());
    if let Some(device) = &training.device {
        ui.weak(device);
    }
    if let Some((epoch, batch, batches, samples_per_sec, eta_secs)) = training.progress {
        let total = training.total_epochs.max(1);
        let done = (epoch - 1) as f32 + batch as f32 / batches.max(1) as f32;
        let fraction = if training.finished.is_some() {
            1.0
        } else {
            done / total as f32
        };
        ui.add(
            egui::ProgressBar::new(fraction)
                .show_percentage()
                .desired_width(300.0),
        );
        ui.label(format!(
            "epoch {epoch}/{total} · batch {batch}/{batches} · {samples_per_sec:.0} samples/s · ETA {}",
            format_duration(eta_secs)
        ));
    } else if training.finished.is_none() {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("Starting (choosing the device, compiling kernels)…");
        });
    }
    if let Some(metrics) = &training.last_epoch {
        let mut text = format!(
            "train loss {:.4} · valid loss {:.4}",
            metrics.train_loss, metrics.valid_loss
        );
        if let Some(accuracy) = metrics.valid_accuracy {
            text.push_str(&format!(" · valid acc {:.1}%", accuracy * 100.0));
        }
        if let Some(rmse) = metrics.valid_rmse {
            text.push_str(&format!(" · valid RMSE {rmse:.3}"));
        }
        ui.label(text);
    }
    if let Some((outcome, message)) = &training.finished {
        let color = match outcome {
            Outcome::Failed | Outcome::Diverged => ui.visuals().error_fg_color,
            _ => ui.visuals().text_color(),
        };
        ui.colored_label(color, message);
    } else if training.stop_requested {
        ui.weak("Stopping after this batch…");
    }
}

pub fn format_duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "—".to_string();
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
