//! The Sweep tab: a search built from the current form (tick the settings to vary and give their
//! ranges), method, budget, concurrency and pruner; a live table of trials sorted by the metric;
//! the trials' curves in the plot; "Promote best" opens the export of the winner's best
//! checkpoint. The sweep runs on the engine's threads; this panel only follows its events.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use egui_extras::{Column, TableBuilder};
use serde_json::{Value, json};

use crate::analysis::CellValue;
use crate::data::{DataSpec, Task};
use crate::export::CardSweep;
use crate::model::ModelConfig;
use crate::runs::{Goal, MetricPoint};
use crate::sweep::{
    Method, PrunerSpec, SweepEvent, SweepHandle, SweepRecord, SweepSpec, SweepState, SweepStore,
    TrialStatus, metrics_for, runner_alive,
};
use crate::train::DeviceChoice;
use crate::ui::promise::Task as Background;
use crate::ui::widgets::{FieldIssue, checked_number};

/// What the sweep asks of the rest of the window.
pub enum SweepUpdate {
    /// Plot this run (a trial started).
    ShowRun(String),
    /// Points of a running trial, to draw before its log is re-read.
    LivePoints(String, Vec<MetricPoint>),
    /// A trial's files changed (it ended).
    RunChanged(String),
    Info(String),
    Error(String),
    /// Select this checkpoint for export, with the card's sweep section.
    Promote {
        run: String,
        epoch: usize,
        card: CardSweep,
    },
}

/// One searchable setting of the form: whether it is searched and its domain as typed.
struct Knob {
    path: &'static str,
    label: &'static str,
    enabled: bool,
    kind: KnobKind,
}

enum KnobKind {
    /// A float range.
    Range { low: f64, high: f64, log: bool },
    /// Typed values, separated by `;` (each a number or a list like `128,64`).
    List(String),
    /// A choice among names.
    Choice(Vec<(&'static str, bool)>),
}

pub struct SweepPanel {
    knobs: Vec<Knob>,
    method: Method,
    max_trials: usize,
    max_minutes: Option<f64>,
    concurrency: usize,
    repeats: usize,
    seed: u64,
    grid_steps: usize,
    metric: String,
    pruner: PrunerChoice,
    min_epochs: usize,
    eta: usize,
    /// The sweep this window runs (or ran last).
    handle: Option<SweepHandle>,
    starting: Background<Result<SweepHandle, String>>,
    /// The sweep shown in the table, as last read.
    shown: Option<SweepRecord>,
    /// Sweeps of the store, for picking an earlier one.
    listed: Vec<(String, String)>,
    error: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PrunerChoice {
    None,
    Median,
    Asha,
}

impl Default for SweepPanel {
    fn default() -> Self {
        Self {
            knobs: vec![
                Knob {
                    path: "train.learning_rate",
                    label: "Learning rate",
                    enabled: true,
                    kind: KnobKind::Range {
                        low: 1e-4,
                        high: 0.1,
                        log: true,
                    },
                },
                Knob {
                    path: "train.batch_size",
                    label: "Batch size",
                    enabled: false,
                    kind: KnobKind::List("16; 32; 64".to_string()),
                },
                Knob {
                    path: "model.hidden",
                    label: "Hidden layers",
                    enabled: false,
                    kind: KnobKind::List("64; 128,64".to_string()),
                },
                Knob {
                    path: "model.conv_channels",
                    label: "Conv channels",
                    enabled: false,
                    kind: KnobKind::List("16,32; 32,64".to_string()),
                },
                Knob {
                    path: "model.dropout",
                    label: "Dropout",
                    enabled: false,
                    kind: KnobKind::Range {
                        low: 0.0,
                        high: 0.5,
                        log: false,
                    },
                },
                Knob {
                    path: "train.optimizer",
                    label: "Optimizer",
                    enabled: false,
                    kind: KnobKind::Choice(vec![("sgd", true), ("adam", true), ("adamw", false)]),
                },
                Knob {
                    path: "model.activation",
                    label: "Activation",
                    enabled: false,
                    kind: KnobKind::Choice(vec![("relu", true), ("gelu", false), ("tanh", true)]),
                },
            ],
            method: Method::Tpe,
            max_trials: 12,
            max_minutes: None,
            // As a spec that does not say, on the CPU (see sweep::default_concurrency).
            concurrency: 2,
            repeats: 1,
            seed: 0,
            grid_steps: 4,
            metric: "valid_loss".to_string(),
            pruner: PrunerChoice::Median,
            min_epochs: 3,
            eta: 3,
            handle: None,
            starting: Background::default(),
            shown: None,
            listed: Vec::new(),
            error: None,
        }
    }
}

/// What the panel reads from the window: the form and the loaded dataset.
pub struct SweepContext<'a> {
    pub runs_dir: &'a Path,
    pub data: Option<(&'a DataSpec, Task)>,
    pub model: ModelConfig,
    pub train: crate::train::TrainConfig,
    pub device: DeviceChoice,
}

impl SweepPanel {
    pub fn is_running(&self) -> bool {
        self.starting.is_pending() || self.handle.is_some()
    }

    /// The sweep shown in the tab, if any (for tests).
    pub fn shown(&self) -> Option<&SweepRecord> {
        self.shown.as_ref()
    }

    /// Drains the running sweep's events; returns what the window should do about them.
    pub fn poll(&mut self, runs_dir: &Path) -> Vec<SweepUpdate> {
        let mut updates = Vec::new();
        match self.starting.take() {
            Some(Ok(Ok(handle))) => self.handle = Some(handle),
            Some(Ok(Err(error))) => {
                self.error = Some(error.clone());
                updates.push(SweepUpdate::Error(format!(
                    "Cannot start the sweep: {error}"
                )));
            }
            Some(Err(crashed)) => updates.push(SweepUpdate::Error(format!(
                "Starting the sweep failed: {crashed}"
            ))),
            None => {}
        }
        let Some(handle) = &self.handle else {
            return updates;
        };
        let mut reread = false;
        let mut finished = false;
        while let Ok(event) = handle.events().try_recv() {
            match event {
                SweepEvent::Started { .. } => reread = true,
                SweepEvent::TrialStarted { run_id, .. } => {
                    updates.push(SweepUpdate::ShowRun(run_id));
                    reread = true;
                }
                SweepEvent::TrialEpoch {
                    run_id, metrics, ..
                } => updates.push(SweepUpdate::LivePoints(run_id, metrics.points())),
                SweepEvent::TrialEnded { run_id, .. } => {
                    updates.push(SweepUpdate::RunChanged(run_id));
                    reread = true;
                }
                SweepEvent::TrialProgress { .. } => {}
                SweepEvent::Warning { message } => updates.push(SweepUpdate::Info(message)),
                SweepEvent::Finished { state, message } => {
                    let text = format!("Sweep {}: {message}", state.name());
                    updates.push(if state == SweepState::Failed {
                        SweepUpdate::Error(text)
                    } else {
                        SweepUpdate::Info(text)
                    });
                    reread = true;
                    finished = true;
                }
            }
        }
        if reread {
            let id = handle.sweep_id.clone();
            match SweepStore::open(runs_dir).read(&id) {
                Ok(record) => self.shown = Some(record),
                Err(error) => updates.push(SweepUpdate::Error(error.to_string())),
            }
        }
        if finished {
            self.handle = None;
            self.refresh_list(runs_dir);
        }
        updates
    }

    fn refresh_list(&mut self, runs_dir: &Path) {
        self.listed = SweepStore::open(runs_dir)
            .list()
            .into_iter()
            .flatten()
            .map(|record| {
                let state = if record.state == SweepState::Running && !runner_alive(&record) {
                    "interrupted"
                } else {
                    record.state.name()
                };
                (record.id.clone(), format!("{} ({state})", record.name))
            })
            .collect();
    }

    /// The spec the form describes.
    pub fn spec(&self, context: &SweepContext<'_>) -> Result<SweepSpec, String> {
        let Some((data, _)) = context.data else {
            return Err("Load a dataset first.".to_string());
        };
        let mut parameters = BTreeMap::new();
        for knob in self.knobs.iter().filter(|knob| knob.enabled) {
            let is_cnn = matches!(context.model, ModelConfig::Cnn(_));
            match knob.path {
                "model.hidden" | "model.activation" if is_cnn => continue,
                crate::sweep::CONV_CHANNELS if !is_cnn => continue,
                _ => {}
            }
            parameters.insert(knob.path.to_string(), self.domain(knob)?);
        }
        if parameters.is_empty() {
            return Err("Tick at least one setting to vary.".to_string());
        }
        let pruner = match self.pruner {
            PrunerChoice::None => PrunerSpec::None,
            PrunerChoice::Median => PrunerSpec::Median {
                min_epochs: self.min_epochs,
            },
            PrunerChoice::Asha => PrunerSpec::Asha {
                min_epochs: self.min_epochs,
                eta: self.eta,
            },
        };
        let spec = SweepSpec {
            name: None,
            data: data.clone(),
            model: context.model.clone(),
            train: context.train.clone(),
            device: context.device,
            parameters,
            method: self.method,
            metric: self.metric.clone(),
            goal: None,
            max_trials: self.max_trials,
            max_minutes: self.max_minutes,
            concurrency: self.concurrency,
            repeats: self.repeats,
            seed: self.seed,
            pruner,
        };
        spec.check().map_err(|error| error.to_string())?;
        Ok(spec)
    }

    fn domain(&self, knob: &Knob) -> Result<Value, String> {
        match &knob.kind {
            KnobKind::Range { low, high, log } => {
                let mut domain = json!({ "float": [low, high], "log": log });
                if self.method == Method::Grid {
                    domain["steps"] = json!(self.grid_steps);
                }
                Ok(domain)
            }
            KnobKind::List(text) => {
                let values: Result<Vec<Value>, String> = text
                    .split(';')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| {
                        let numbers: Result<Vec<u64>, _> =
                            item.split(',').map(|n| n.trim().parse::<u64>()).collect();
                        match numbers {
                            Ok(list) if knob.path == "train.batch_size" && list.len() == 1 => {
                                Ok(json!(list[0]))
                            }
                            Ok(list) => Ok(json!(list)),
                            Err(_) => Err(format!(
                                "{}: '{item}' is not a number or a list like 128,64",
                                knob.label
                            )),
                        }
                    })
                    .collect();
                Ok(json!({ "values": values? }))
            }
            KnobKind::Choice(options) => {
                let chosen: Vec<Value> = options
                    .iter()
                    .filter(|(_, on)| *on)
                    .map(|(name, _)| json!(name))
                    .collect();
                if chosen.is_empty() {
                    return Err(format!("{}: tick at least one choice", knob.label));
                }
                Ok(json!({ "values": chosen }))
            }
        }
    }

    fn start(&mut self, ctx: &egui::Context, context: &SweepContext<'_>) {
        let spec = match self.spec(context) {
            Ok(spec) => spec,
            Err(error) => {
                self.error = Some(error);
                return;
            }
        };
        self.error = None;
        self.shown = None;
        let runs_dir = context.runs_dir.to_path_buf();
        let repaint = ctx.clone();
        self.starting.start(ctx, move || {
            let notify: crate::train::Notify =
                std::sync::Arc::new(move || repaint.request_repaint());
            crate::sweep::start_sweep(spec, &runs_dir, Some(notify)).map_err(|e| e.to_string())
        });
    }

    fn resume(&mut self, ctx: &egui::Context, runs_dir: &Path, id: String) {
        self.error = None;
        let runs_dir: PathBuf = runs_dir.to_path_buf();
        let repaint = ctx.clone();
        self.starting.start(ctx, move || {
            let notify: crate::train::Notify =
                std::sync::Arc::new(move || repaint.request_repaint());
            crate::sweep::resume_sweep(&runs_dir, &id, Some(notify)).map_err(|e| e.to_string())
        });
    }

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        context: SweepContext<'_>,
        updates: &mut Vec<SweepUpdate>,
    ) {
        if self.listed.is_empty() {
            self.refresh_list(context.runs_dir);
        }
        let task = context.data.map(|(_, task)| task);
        if let Some(task) = task
            && !metrics_for(task).contains(&self.metric.as_str())
        {
            self.metric = "valid_loss".to_string();
        }
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_max_width(460.0);
                self.search_form(ui, &context);
            });
            ui.add_space(16.0);
            ui.vertical(|ui| self.run_form(ui, &context, task, updates));
        });
        ui.separator();
        self.trials_ui(ui, context.runs_dir, updates);
    }

    fn search_form(&mut self, ui: &mut egui::Ui, context: &SweepContext<'_>) {
        ui.strong("Vary");
        let is_cnn = matches!(context.model, ModelConfig::Cnn(_));
        let grid = self.method == Method::Grid;
        egui::Grid::new("sweep_knobs")
            .num_columns(2)
            .show(ui, |ui| {
                for knob in &mut self.knobs {
                    let applies = match knob.path {
                        "model.hidden" | "model.activation" => !is_cnn,
                        crate::sweep::CONV_CHANNELS => is_cnn,
                        _ => true,
                    };
                    if !applies {
                        continue;
                    }
                    ui.checkbox(&mut knob.enabled, knob.label);
                    ui.add_enabled_ui(knob.enabled, |ui| match &mut knob.kind {
                        KnobKind::Range { low, high, log } => {
                            ui.horizontal(|ui| {
                                let id = ui.label("from").id;
                                checked_number(ui, low, (*low * 0.1).max(1e-5), id, |_| None);
                                let id = ui.label("to").id;
                                checked_number(ui, high, (*high * 0.1).max(1e-5), id, |_| None);
                                ui.checkbox(log, "log");
                            });
                            if low > high {
                                ui.colored_label(ui.visuals().error_fg_color, "the range is empty");
                            }
                            if *log && *low <= 0.0 {
                                ui.colored_label(
                                    ui.visuals().error_fg_color,
                                    "a log range must stay above 0",
                                );
                            }
                            if grid {
                                ui.weak("(grid: steps below)");
                            }
                        }
                        KnobKind::List(text) => {
                            ui.add(egui::TextEdit::singleline(text).desired_width(200.0))
                                .on_hover_text(
                                    "Values separated by ';' — e.g. 64; 128,64 for two layer lists",
                                );
                        }
                        KnobKind::Choice(options) => {
                            ui.horizontal(|ui| {
                                for (name, on) in options.iter_mut() {
                                    ui.checkbox(on, *name);
                                }
                            });
                        }
                    });
                    ui.end_row();
                }
            });
    }

    fn run_form(
        &mut self,
        ui: &mut egui::Ui,
        context: &SweepContext<'_>,
        task: Option<Task>,
        updates: &mut Vec<SweepUpdate>,
    ) {
        egui::Grid::new("sweep_run_form")
            .num_columns(2)
            .show(ui, |ui| {
                ui.label("Method");
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut self.method, Method::Grid, "grid");
                    ui.selectable_value(&mut self.method, Method::Random, "random");
                    ui.selectable_value(&mut self.method, Method::Tpe, "TPE");
                });
                ui.end_row();
                if self.method == Method::Grid {
                    let id = ui.label("Grid steps").id;
                    checked_number(ui, &mut self.grid_steps, 1.0, id, |steps| {
                        (steps < 2).then(|| FieldIssue::Error("at least 2 points per range".into()))
                    });
                    ui.end_row();
                }
                let id = ui.label("Metric").id;
                egui::ComboBox::from_id_salt("sweep_metric")
                    .selected_text(format!("{} ({})", self.metric, Goal::natural(&self.metric)))
                    .show_ui(ui, |ui| {
                        for metric in task.map_or(&["valid_loss"][..], metrics_for) {
                            ui.selectable_value(&mut self.metric, metric.to_string(), *metric);
                        }
                    })
                    .response
                    .labelled_by(id);
                ui.end_row();
                let id = ui.label("Trials").id;
                ui.horizontal(|ui| {
                    checked_number(ui, &mut self.max_trials, 1.0, id, |n| {
                        (n == 0).then(|| FieldIssue::Error("at least 1 trial".into()))
                    });
                    let at_once = ui.label("at once").id;
                    checked_number(ui, &mut self.concurrency, 1.0, at_once, |n| {
                        (n == 0).then(|| FieldIssue::Error("at least 1".into()))
                    })
                    .on_hover_text(
                        "Trials trained at once. On the CPU two small trials side by side finish \
                         sooner than one using both cores; on a GPU, one at a time",
                    );
                    let repeats = ui.label("seeds").id;
                    checked_number(ui, &mut self.repeats, 1.0, repeats, |n| {
                        (n == 0).then(|| FieldIssue::Error("at least 1".into()))
                    })
                    .on_hover_text(
                        "Runs per trial, with consecutive seeds; the metric is their mean",
                    );
                });
                ui.end_row();
                ui.label("Time budget");
                ui.horizontal(|ui| {
                    let mut limited = self.max_minutes.is_some();
                    if ui.checkbox(&mut limited, "at most").changed() {
                        self.max_minutes = limited.then_some(10.0);
                    }
                    if let Some(minutes) = &mut self.max_minutes {
                        let id = ui.label("minutes").id;
                        checked_number(ui, minutes, 1.0, id, |m| {
                            (m <= 0.0).then(|| FieldIssue::Error("a positive number".into()))
                        });
                    }
                });
                ui.end_row();
                ui.label("Pruner");
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut self.pruner, PrunerChoice::None, "none");
                    ui.selectable_value(&mut self.pruner, PrunerChoice::Median, "median");
                    ui.selectable_value(&mut self.pruner, PrunerChoice::Asha, "ASHA");
                    if self.pruner != PrunerChoice::None {
                        let id = ui.label("from epoch").id;
                        checked_number(ui, &mut self.min_epochs, 1.0, id, |n| {
                            (n == 0).then(|| FieldIssue::Error("at least 1".into()))
                        });
                    }
                    if self.pruner == PrunerChoice::Asha {
                        let id = ui.label("eta").id;
                        checked_number(ui, &mut self.eta, 1.0, id, |n| {
                            (n < 2).then(|| FieldIssue::Error("at least 2".into()))
                        });
                    }
                });
                ui.end_row();
                let id = ui.label("Seed").id;
                ui.add(egui::DragValue::new(&mut self.seed)).labelled_by(id);
                ui.end_row();
            });
        ui.horizontal(|ui| {
            let running = self.is_running();
            if ui
                .add_enabled(!running, egui::Button::new("▶ Start sweep"))
                .on_hover_text(
                    "Each trial is a run of the form's settings with the ticked ones varied",
                )
                .clicked()
            {
                self.start(ui.ctx(), context);
            }
            if ui
                .add_enabled(self.handle.is_some(), egui::Button::new("■ Stop sweep"))
                .on_hover_text("Stops the running trials; Resume continues the sweep later")
                .clicked()
                && let Some(handle) = &self.handle
            {
                handle.stop();
            }
            if running {
                ui.spinner();
            }
        });
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        let _ = updates;
    }

    fn trials_ui(&mut self, ui: &mut egui::Ui, runs_dir: &Path, updates: &mut Vec<SweepUpdate>) {
        ui.horizontal(|ui| {
            let current = self
                .shown
                .as_ref()
                .map_or("choose a sweep".to_string(), |record| record.name.clone());
            let mut chosen = None;
            let id = ui.label("Sweep").id;
            egui::ComboBox::from_id_salt("sweep_pick")
                .selected_text(current)
                .show_ui(ui, |ui| {
                    for (id, label) in self.listed.iter().rev() {
                        if ui.selectable_label(false, label).clicked() {
                            chosen = Some(id.clone());
                        }
                    }
                })
                .response
                .labelled_by(id);
            if ui
                .small_button("↻")
                .on_hover_text("Re-read the sweeps")
                .clicked()
            {
                self.refresh_list(runs_dir);
                chosen = self.shown.as_ref().map(|record| record.id.clone());
            }
            if let Some(id) = chosen {
                match SweepStore::open(runs_dir).read(&id) {
                    Ok(record) => {
                        for trial in record.trials.iter().filter_map(|t| t.run_id.clone()) {
                            updates.push(SweepUpdate::ShowRun(trial));
                        }
                        self.shown = Some(record);
                    }
                    Err(error) => updates.push(SweepUpdate::Error(error.to_string())),
                }
            }
            let Some(record) = self.shown.clone() else {
                return;
            };
            let resumable = !self.is_running()
                && matches!(record.state, SweepState::Stopped | SweepState::Running)
                && !runner_alive(&record);
            if resumable && ui.button("Resume sweep").clicked() {
                self.resume(ui.ctx(), runs_dir, record.id.clone());
            }
            if ui
                .add_enabled(record.best().is_some(), egui::Button::new("Promote best"))
                .on_hover_text(
                    "Select the best trial's best checkpoint for export (Checkpoint & export tab)",
                )
                .clicked()
            {
                match crate::export::winner(runs_dir, &record.id) {
                    Ok((run, epoch, card)) => {
                        updates.push(SweepUpdate::Promote { run, epoch, card })
                    }
                    Err(error) => updates.push(SweepUpdate::Error(error.to_string())),
                }
            }
        });
        let Some(record) = &self.shown else {
            ui.weak("Start a sweep, or choose an earlier one to see its trials.");
            return;
        };
        let goal = record.spec.goal();
        let mut summaries = record.summaries();
        summaries.sort_by_key(|summary| (summary.rank.unwrap_or(usize::MAX), summary.trial));
        ui.label(format!(
            "{} — {} of {} trials · {} ({goal}) · {}",
            record.state.name(),
            summaries.len(),
            record.spec.max_trials,
            record.spec.metric,
            record.message.clone().unwrap_or_default()
        ));
        let paths: Vec<String> = record.spec.parameters.keys().cloned().collect();
        TableBuilder::new(ui)
            .id_salt("sweep_trials")
            .striped(true)
            .column(Column::auto().at_least(40.0))
            .column(Column::auto().at_least(40.0))
            .column(Column::auto().at_least(90.0))
            .column(Column::auto().at_least(80.0))
            .column(Column::auto().at_least(50.0))
            .columns(Column::auto().at_least(80.0), paths.len())
            .header(20.0, |mut header| {
                for title in [
                    "rank",
                    "trial",
                    "status",
                    record.spec.metric.as_str(),
                    "epoch",
                ] {
                    header.col(|ui| {
                        ui.strong(title);
                    });
                }
                for path in &paths {
                    header.col(|ui| {
                        ui.strong(path.rsplit('.').next().unwrap_or(path))
                            .on_hover_text(path);
                    });
                }
            })
            .body(|body| {
                body.rows(20.0, summaries.len(), |mut row| {
                    let summary = &summaries[row.index()];
                    let status = summary.status();
                    row.col(|ui| {
                        ui.label(summary.rank.map_or("-".into(), |r| r.to_string()));
                    });
                    row.col(|ui| {
                        ui.label(summary.trial.to_string());
                    });
                    row.col(|ui| {
                        let text = status.name();
                        if matches!(
                            status,
                            TrialStatus::Pruned | TrialStatus::Diverged | TrialStatus::Failed
                        ) {
                            ui.weak(text)
                        } else {
                            ui.label(text)
                        }
                        .on_hover_text(
                            summary
                                .runs
                                .iter()
                                .filter_map(|run| run.message.clone())
                                .collect::<Vec<_>>()
                                .join("\n"),
                        );
                    });
                    row.col(|ui| {
                        ui.monospace(
                            summary
                                .value
                                .map_or("—".into(), |v| CellValue::Number(v).display()),
                        );
                    });
                    row.col(|ui| {
                        let epoch = summary
                            .best_run(goal)
                            .and_then(|run| run.best_epoch)
                            .map_or("—".into(), |e| e.to_string());
                        ui.label(epoch);
                    });
                    for path in &paths {
                        row.col(|ui| {
                            ui.label(summary.params.get(path).map_or("—".into(), |value| {
                                CellValue::of_setting(value).display()
                            }));
                        });
                    }
                });
            });
    }
}
