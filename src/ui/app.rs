//! The eframe app: owns UI state, drains engine events and background results once per frame,
//! lays out the panels, and turns the panels' [`Command`]s into engine and store calls.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::cache::StoreCache;
use super::dialogs::{DialogKind, FileDialogs, NativeDialogs};
use super::panels::{
    self, DataState, ExportState, LiveTraining, MistakesState, ModelUseState, RunsState,
};
use super::plot::{PlotOutcome, PlotRun, curves_ui, run_color};
use super::promise::Task;
use super::settings::{BottomTab, Settings};
use crate::runs::{RunListing, default_runs_dir};
use crate::train::AdapterSummary;

/// How the app is started (tests give a temporary store and scripted dialogs).
pub struct AppOptions {
    pub runs_dir: PathBuf,
    /// Dataset to show first; defaults to the bundled iris sample.
    pub initial_data: Option<PathBuf>,
    pub dialogs: Arc<dyn FileDialogs>,
    /// Load and save settings through eframe's storage.
    pub persist: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            runs_dir: default_runs_dir(),
            initial_data: None,
            dialogs: Arc::new(NativeDialogs),
            persist: true,
        }
    }
}

/// The bundled iris sample, looked up beside the working directory and the source tree.
pub fn bundled_sample() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from("sample_data/iris.csv"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample_data/iris.csv"),
    ];
    candidates.into_iter().find(|path| path.is_file())
}

/// Something a panel asks the app to do; handled after the panels are drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Dialog(DialogKind),
    LoadData,
    StartTraining,
    StopTraining,
    Resume {
        run: String,
        extra_epochs: Option<usize>,
    },
    Rename {
        run: String,
        name: String,
    },
    Delete {
        run: String,
    },
    SelectCheckpoint {
        run: String,
        epoch: usize,
    },
    Export {
        path: PathBuf,
        force: bool,
    },
    OpenModel(PathBuf),
    PredictFile(PathBuf),
    PredictRow,
    Rescan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

pub struct KilnApp {
    pub(crate) settings: Settings,
    persist: bool,
    dialogs: Arc<dyn FileDialogs>,
    pub(crate) cache: StoreCache,
    pub(crate) data: DataState,
    pub(crate) training: Option<LiveTraining>,
    pub(crate) runs: RunsState,
    pub(crate) export: ExportState,
    pub(crate) model_use: ModelUseState,
    pub(crate) mistakes: MistakesState,
    pub(crate) selected_checkpoint: Option<(String, usize)>,
    messages: Vec<(Instant, Level, String)>,
    dialog: Task<(DialogKind, Option<PathBuf>)>,
    adapters: Task<Vec<AdapterSummary>>,
    pub(crate) detected_adapters: Option<Vec<AdapterSummary>>,
    commands: Vec<Command>,
    last_plot: PlotOutcome,
    auto_selected: bool,
    first_frame_shown: bool,
}

impl KilnApp {
    pub fn new(creation: &eframe::CreationContext<'_>, options: AppOptions) -> Self {
        let mut settings: Settings = if options.persist {
            creation
                .storage
                .and_then(|storage| eframe::get_value(storage, eframe::APP_KEY))
                .unwrap_or_default()
        } else {
            Settings::default()
        };
        if let Some(path) = options
            .initial_data
            .or_else(|| settings.data_path.is_empty().then(bundled_sample).flatten())
        {
            settings.data_path = path.display().to_string();
        }
        let ctx = &creation.egui_ctx;
        install_fonts(ctx);
        let mut app = Self {
            cache: StoreCache::new(options.runs_dir),
            persist: options.persist,
            dialogs: options.dialogs,
            data: DataState::default(),
            training: None,
            runs: RunsState::default(),
            export: ExportState::default(),
            model_use: ModelUseState::default(),
            mistakes: MistakesState::default(),
            selected_checkpoint: None,
            messages: Vec::new(),
            dialog: Task::default(),
            adapters: Task::default(),
            detected_adapters: None,
            commands: vec![Command::LoadData, Command::Rescan],
            last_plot: PlotOutcome::default(),
            auto_selected: false,
            first_frame_shown: false,
            settings,
        };
        app.adapters
            .start(ctx, || crate::train::wgpu_adapters().to_vec());
        app
    }

    // Read-only views for tests and callers.

    pub fn runs_dir(&self) -> &std::path::Path {
        &self.cache.runs_dir
    }

    pub fn is_training(&self) -> bool {
        self.training.as_ref().is_some_and(|t| t.finished.is_none())
    }

    /// The finished run of this session, if the last training ended: (run id, outcome message).
    pub fn last_finished(&self) -> Option<(String, String)> {
        let training = self.training.as_ref()?;
        let (_, message) = training.finished.as_ref()?;
        Some((training.run_id.clone(), message.clone()))
    }

    pub fn dataset_loaded(&self) -> bool {
        self.data.loaded.is_some()
    }

    pub fn adapters_detected(&self) -> bool {
        self.detected_adapters.is_some()
    }

    /// The model opened in the "Use a model" tab, if any.
    pub fn opened_model(&self) -> Option<&crate::export::LoadedModel> {
        self.model_use.model.as_deref()
    }

    /// The curves read for a run, if loaded.
    pub fn run_curves_loaded(&self, id: &str) -> bool {
        self.cache.curves(id).is_some()
    }

    pub fn selected_runs(&self) -> &[String] {
        &self.settings.selected_runs
    }

    pub fn selected_checkpoint(&self) -> Option<(String, usize)> {
        self.selected_checkpoint.clone()
    }

    pub fn last_plot(&self) -> &PlotOutcome {
        &self.last_plot
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages
            .iter()
            .map(|(_, _, text)| text.clone())
            .collect()
    }

    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    pub fn run_listings(&self) -> &[RunListing] {
        &self.cache.listings
    }

    /// True while any background work (scan, load, export, prediction, dialog) is pending.
    pub fn is_busy(&self) -> bool {
        self.dialog.is_pending()
            || self.data.is_loading()
            || self.export.is_pending()
            || self.model_use.is_pending()
            || self.mistakes.is_pending()
    }

    pub(crate) fn info(&mut self, text: impl Into<String>) {
        self.messages
            .push((Instant::now(), Level::Info, text.into()));
    }

    pub(crate) fn error(&mut self, text: impl Into<String>) {
        self.messages
            .push((Instant::now(), Level::Error, text.into()));
    }

    pub(crate) fn push(&mut self, command: Command) {
        self.commands.push(command);
    }

    fn poll_background(&mut self, ctx: &egui::Context) {
        if let Some(adapters) = self.adapters.take() {
            self.detected_adapters = Some(adapters);
        }
        if let Some((kind, path)) = self.dialog.take() {
            match (kind, path) {
                (_, None) => self.info(
                    "No file chosen (or no file dialog service); you can type a path instead.",
                ),
                (DialogKind::OpenCsv | DialogKind::OpenFolder, Some(path)) => {
                    self.settings.data_path = path.display().to_string();
                    self.push(Command::LoadData);
                }
                (DialogKind::SaveBundle, Some(path)) => {
                    self.push(Command::Export { path, force: false })
                }
                (DialogKind::OpenModel, Some(path)) => self.push(Command::OpenModel(path)),
                (
                    DialogKind::PredictCsv | DialogKind::PredictImage | DialogKind::PredictFolder,
                    Some(path),
                ) => self.push(Command::PredictFile(path)),
            }
        }
        let dropped: Vec<PathBuf> = ctx.input(|input| {
            input
                .raw
                .dropped_files
                .iter()
                .map(|file| file.path().to_path_buf())
                .filter(|path| !path.as_os_str().is_empty())
                .collect()
        });
        for path in dropped {
            let dataset = path.is_dir()
                || crate::data::is_idx_images(&path)
                || path
                    .extension()
                    .is_some_and(|ext| ext.eq_ignore_ascii_case("csv"));
            if dataset {
                self.settings.data_path = path.display().to_string();
                self.push(Command::LoadData);
            } else {
                self.error(format!(
                    "{}: drop a CSV file, an IDX images file or an image folder to load it as a dataset",
                    path.display()
                ));
            }
        }
        self.poll_data();
        self.poll_training(ctx);
        self.poll_export();
        self.poll_model_use();
        self.poll_mistakes();
        let mut wanted = self.settings.selected_runs.clone();
        if let Some(training) = &self.training
            && !wanted.contains(&training.run_id)
        {
            wanted.push(training.run_id.clone());
        }
        if self.cache.update(ctx, &wanted) {
            self.on_rescan();
        }
    }

    /// Keeps the plotted selection in step with a freshly read run list.
    fn on_rescan(&mut self) {
        // Runs deleted elsewhere (or remembered from another store) drop out of the selection.
        let known: Vec<&str> = self.cache.listings.iter().map(RunListing::id).collect();
        let live = self.training.as_ref().map(|t| t.run_id.as_str());
        self.settings
            .selected_runs
            .retain(|id| known.contains(&id.as_str()) || Some(id.as_str()) == live);
        // On a launch with runs in the store, show the newest one instead of an empty plot.
        if !self.auto_selected && !self.cache.listings.is_empty() {
            self.auto_selected = true;
            if self.settings.selected_runs.is_empty()
                && let Some(RunListing::Run { dir, .. }) = self
                    .cache
                    .listings
                    .iter()
                    .rev()
                    .find(|listing| matches!(listing, RunListing::Run { .. }))
            {
                self.settings.selected_runs.push(dir.id.clone());
            }
        }
    }

    fn handle_commands(&mut self, ctx: &egui::Context) {
        for command in std::mem::take(&mut self.commands) {
            match command {
                Command::Dialog(kind) => {
                    if self.dialog.is_pending() {
                        continue;
                    }
                    let dialogs = self.dialogs.clone();
                    self.dialog.start(ctx, move || (kind, dialogs.pick(kind)));
                }
                Command::Rescan => self.cache.rescan(ctx),
                other => self.handle(ctx, other),
            }
        }
    }

    fn plot_ui(&mut self, ui: &mut egui::Ui) {
        panels::plot_controls_ui(ui, &mut self.settings.plot);
        let mut ids: Vec<String> = self.settings.selected_runs.clone();
        if let Some(training) = &self.training
            && !ids.contains(&training.run_id)
        {
            ids.insert(0, training.run_id.clone());
        }
        let names: Vec<(String, String)> = ids
            .iter()
            .map(|id| {
                let name = match self.cache.listing(id) {
                    Some(RunListing::Run { record, .. }) => record.name.clone(),
                    _ => self
                        .training
                        .as_ref()
                        .filter(|t| &t.run_id == id)
                        .map_or_else(|| short_id(id), |t| t.run_name.clone()),
                };
                (id.clone(), name)
            })
            .collect();
        let all_ids: Vec<&str> = self.cache.listings.iter().map(RunListing::id).collect();
        let runs: Vec<PlotRun<'_>> = names
            .iter()
            .filter_map(|(id, name)| {
                let color_index = all_ids
                    .iter()
                    .position(|other| other == id)
                    .unwrap_or(all_ids.len());
                Some(PlotRun {
                    id,
                    name,
                    color: run_color(color_index),
                    curves: self.cache.curves(id)?,
                })
            })
            .collect();
        if runs.is_empty() {
            ui.centered_and_justified(|ui| {
                ui.label("Click Train to start a run, or tick runs in the Runs tab to compare their curves.");
            });
            self.last_plot = PlotOutcome::default();
            return;
        }
        let selected = self
            .selected_checkpoint
            .as_ref()
            .map(|(run, epoch)| (run.as_str(), *epoch));
        let outcome = curves_ui(ui, &self.settings.plot, &runs, selected);
        if let Some((run, epoch)) = outcome.clicked_checkpoint.clone() {
            self.push(Command::SelectCheckpoint { run, epoch });
        }
        self.last_plot = outcome;
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        // Messages fade after a while; errors stay longer.
        self.messages.retain(|(at, level, _)| {
            at.elapsed().as_secs() < if *level == Level::Error { 30 } else { 8 }
        });
        ui.horizontal(|ui| {
            if let Some((_, level, text)) = self.messages.last() {
                let color = match level {
                    Level::Info => ui.visuals().text_color(),
                    Level::Error => ui.visuals().error_fg_color,
                };
                ui.colored_label(color, text);
            } else {
                ui.weak(format!("Run store: {}", self.cache.runs_dir.display()));
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if self.is_busy() || self.cache.is_scanning() {
                    ui.spinner();
                }
            });
        });
    }
}

/// Symbols such as → ● ◆ are in the bundled monospace font only; let proportional text use it too.
fn install_fonts(ctx: &egui::Context) {
    let mut fonts = egui::FontDefinitions::default();
    if let Some(proportional) = fonts.families.get_mut(&egui::FontFamily::Proportional) {
        proportional.push("Hack".to_owned());
    }
    ctx.set_fonts(fonts);
}

pub(crate) fn short_id(id: &str) -> String {
    id.chars().take(24).collect()
}

impl eframe::App for KilnApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.poll_background(&ctx);

        egui::Panel::top("kiln_top").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("Kiln");
                ui.separator();
                ui.weak("train · compare · export");
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui
                        .button("Rescan")
                        .on_hover_text("Re-read the run store")
                        .clicked()
                    {
                        self.push(Command::Rescan);
                    }
                    ui.weak(format!("{} runs", self.cache.listings.len()));
                });
            });
        });
        egui::Panel::bottom("kiln_status").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("kiln_setup")
            .resizable(true)
            .default_size(330.0)
            .show(ui, |ui| {
                // Train and Stop stay in view however long the form gets.
                egui::Panel::bottom("kiln_train_controls").show(ui, |ui| {
                    ui.add_space(4.0);
                    panels::train_controls_ui(self, ui);
                });
                egui::ScrollArea::vertical().show(ui, |ui| {
                    panels::setup_ui(self, ui);
                });
            });
        egui::Panel::bottom("kiln_details")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    for tab in BottomTab::ALL {
                        ui.selectable_value(&mut self.settings.bottom_tab, tab, tab.title());
                    }
                });
                ui.separator();
                egui::ScrollArea::vertical()
                    .id_salt("details_scroll")
                    .auto_shrink([false, false])
                    .show(ui, |ui| match self.settings.bottom_tab {
                        BottomTab::Runs => panels::runs_ui(self, ui),
                        BottomTab::Data => panels::data_preview_ui(self, ui),
                        BottomTab::Compare => panels::compare_ui(self, ui),
                        BottomTab::Checkpoint => panels::checkpoint_ui(self, ui),
                        BottomTab::Model => panels::model_use_ui(self, ui),
                    });
            });
        egui::CentralPanel::default_margins().show(ui, |ui| self.plot_ui(ui));
        panels::modals_ui(self, &ctx);
        if !self.first_frame_shown {
            self.first_frame_shown = true;
            // For the start-up benchmark: quit as soon as the first frame is laid out.
            if std::env::var_os("KILN_EXIT_AFTER_FIRST_FRAME").is_some() {
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
        }

        self.handle_commands(&ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if self.persist {
            eframe::set_value(storage, eframe::APP_KEY, &self.settings);
        }
    }
}
