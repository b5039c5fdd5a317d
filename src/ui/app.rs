//! The eframe app: owns UI state, drains engine events and background results once per frame,
//! lays out the panels (sizes from [`super::layout`]), and routes the panels' [`Command`]s
//! (see [`super::commands`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::cache::{RunCurves, StoreCache};
pub use super::commands::Command;
use super::dialogs::{DialogKind, FileDialogs, NativeDialogs};
use super::identity::display_names;
use super::layout;
use super::panels::{
    self, AnalysisPanel, DataState, ExportState, LiveTraining, MistakesState, ModelUseState,
    RunsPanel, RunsView, SweepContext, SweepPanel, SweepUpdate, TargetsPanel, VersionsState,
};
use super::plot::{PlotGroup, PlotOutcome, PlotRun, curves_ui};
use super::promise::Task;
use super::settings::{BottomTab, Settings};
pub use super::status::Level;
use super::status::StatusBar;
use crate::runs::{RunSummary, default_runs_dir};
use crate::train::AdapterSummary;

/// How the app is started (tests give a temporary store and scripted dialogs).
pub struct AppOptions {
    pub runs_dir: PathBuf,
    /// Dataset to show first; defaults to the bundled iris sample.
    pub initial_data: Option<PathBuf>,
    pub dialogs: Arc<dyn FileDialogs>,
    /// Load and save settings through eframe's storage.
    pub persist: bool,
    /// The compute targets file (default: `$KILN_TARGETS` or the config folder's).
    pub targets_file: Option<PathBuf>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            runs_dir: default_runs_dir(),
            initial_data: None,
            dialogs: Arc::new(NativeDialogs),
            persist: true,
            targets_file: None,
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

pub struct KilnApp {
    pub(crate) settings: Settings,
    persist: bool,
    dialogs: Arc<dyn FileDialogs>,
    pub(crate) cache: StoreCache,
    pub(crate) data: DataState,
    pub(crate) training: Option<LiveTraining>,
    pub(crate) runs: RunsPanel,
    pub(crate) analysis: AnalysisPanel,
    /// The run picked in the table or on the plot.
    pub(crate) highlighted: Option<String>,
    pub(crate) sweep: SweepPanel,
    pub(crate) targets: TargetsPanel,
    pub(crate) export: ExportState,
    pub(crate) model_use: ModelUseState,
    pub(crate) mistakes: MistakesState,
    pub(crate) versions: VersionsState,
    devices: panels::DevicesPanel,
    pub(crate) selected_checkpoint: Option<(String, usize)>,
    status: StatusBar,
    dialog: Task<(DialogKind, Option<PathBuf>)>,
    adapters: Task<Vec<AdapterSummary>>,
    pub(crate) detected_adapters: Option<Vec<AdapterSummary>>,
    pub(crate) commands: Vec<Command>,
    /// The name each listed run is shown under (see [`display_names`]).
    names: HashMap<String, String>,
    last_plot: PlotOutcome,
    /// The Train/Stop block's height in the last frame.
    train_controls_height: f32,
    auto_selected: bool,
    /// Whether a run list has arrived since launch (the first may prune remembered runs).
    listed_once: bool,
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
            runs: RunsPanel::default(),
            analysis: AnalysisPanel::default(),
            highlighted: None,
            sweep: SweepPanel::default(),
            targets: TargetsPanel::new(
                options
                    .targets_file
                    .unwrap_or_else(crate::cluster::default_targets_path),
            ),
            export: ExportState::default(),
            model_use: ModelUseState::default(),
            mistakes: MistakesState::default(),
            versions: VersionsState::default(),
            devices: panels::DevicesPanel::default(),
            selected_checkpoint: None,
            status: StatusBar::default(),
            dialog: Task::default(),
            adapters: Task::default(),
            detected_adapters: None,
            commands: vec![Command::LoadData, Command::Rescan],
            names: HashMap::new(),
            last_plot: PlotOutcome::default(),
            train_controls_height: 0.0,
            auto_selected: false,
            listed_once: false,
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

    /// The compute targets section ("Run on", Test connection, remote runs followed).
    pub fn targets(&self) -> &TargetsPanel {
        &self.targets
    }

    /// True from Train (or Resume) until the run has ended, preparation included.
    pub fn is_training(&self) -> bool {
        self.training.as_ref().is_some_and(|t| t.finished.is_none())
    }

    /// True while this window's run is still reading and preparing its data.
    pub fn is_preparing_data(&self) -> bool {
        self.training
            .as_ref()
            .is_some_and(|t| t.finished.is_none() && t.is_preparing())
    }

    /// Frames drawn while the current run's data was being prepared.
    pub fn frames_while_preparing(&self) -> usize {
        self.training
            .as_ref()
            .map_or(0, |t| t.frames_while_preparing)
    }

    /// The finished run of this session, if the last training ended: (run id, outcome message).
    /// The id is empty when the run ended before its folder was made.
    pub fn last_finished(&self) -> Option<(String, String)> {
        let training = self.training.as_ref()?;
        let finished = training.finished.as_ref()?;
        Some((
            training.run_id.clone().unwrap_or_default(),
            finished.message.clone(),
        ))
    }

    /// The live run's ending as the panel shows it: (outcome, epochs completed, planned epochs).
    pub fn last_ending(&self) -> Option<(crate::train::Outcome, usize, usize)> {
        let training = self.training.as_ref()?;
        let finished = training.finished.as_ref()?;
        Some((
            finished.outcome,
            finished.epochs_completed,
            training.total_epochs,
        ))
    }

    /// Warnings the live run reported, in order.
    pub fn training_warnings(&self) -> Vec<String> {
        self.training
            .as_ref()
            .map(|t| t.warnings.clone())
            .unwrap_or_default()
    }

    pub fn dataset_loaded(&self) -> bool {
        self.data.loaded.is_some()
    }

    /// The path of the dataset Train would use now.
    pub fn loaded_dataset(&self) -> Option<&std::path::Path> {
        self.data
            .loaded
            .as_ref()
            .map(|(spec, _)| spec.path.as_path())
    }

    pub fn adapters_detected(&self) -> bool {
        self.detected_adapters.is_some()
    }

    /// Whether the "Use a model" tab shows predictions on a file (and could save them).
    pub fn predictions_shown(&self) -> bool {
        self.model_use.report.is_some() || self.model_use.image_report.is_some()
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

    /// Selects a checkpoint as a click on its marker would.
    pub fn select_checkpoint(&mut self, run: &str, epoch: usize) {
        self.push(Command::SelectCheckpoint {
            run: run.to_string(),
            epoch,
        });
    }

    pub fn selected_checkpoint(&self) -> Option<(String, usize)> {
        self.selected_checkpoint.clone()
    }

    pub fn last_plot(&self) -> &PlotOutcome {
        &self.last_plot
    }

    /// Every message of this session, oldest first.
    pub fn messages(&self) -> Vec<String> {
        self.status.texts()
    }

    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    /// The runs table's rows as shown (filtered, brushed, sorted).
    pub fn table_run_ids(&self) -> Vec<String> {
        self.runs.shown_ids(&self.cache.runs)
    }

    /// What is wrong with the table's filter expression, if anything.
    pub fn table_filter_error(&self) -> Option<String> {
        self.runs.filter_error().map(ToString::to_string)
    }

    /// Whether the store is watched for changes (else polled).
    pub fn store_watched(&self) -> bool {
        self.cache.is_watched()
    }

    /// Axes brushed in the analysis view.
    pub fn brushes(&self) -> usize {
        self.analysis.brush_count()
    }

    /// The run picked in the table or on the plot.
    pub fn highlighted_run(&self) -> Option<&str> {
        self.highlighted.as_deref()
    }

    /// Every run of the store as the window last read it, oldest first.
    pub fn run_summaries(&self) -> &[RunSummary] {
        &self.cache.runs
    }

    /// The colour a run is drawn in, everywhere in the window.
    pub fn run_color(&self, id: &str) -> egui::Color32 {
        self.settings.run_colors.color(id)
    }

    /// The name a run is shown under: its own, or with its id's end where two runs share it.
    pub fn identity_name(&self, id: &str) -> String {
        if let Some(name) = self.names.get(id) {
            return name.clone();
        }
        match &self.training {
            Some(training) if training.run_id.as_deref() == Some(id) => training.run_name.clone(),
            _ => short_id(id),
        }
    }

    /// The sweep the Sweep tab shows (running, or chosen), as last read.
    pub fn shown_sweep(&self) -> Option<&crate::sweep::SweepRecord> {
        self.sweep.shown()
    }

    /// True while this window runs (or starts) a sweep.
    pub fn sweep_running(&self) -> bool {
        self.sweep.is_running()
    }

    /// True while any background work (scan, load, export, prediction, dialog) is pending.
    pub fn is_busy(&self) -> bool {
        self.dialog.is_pending()
            || self.data.is_loading()
            || self.export.is_pending()
            || self.model_use.is_pending()
            || self.mistakes.is_pending()
            || self.versions.is_pending()
    }

    pub(crate) fn info(&mut self, text: impl Into<String>) {
        self.status.push(Level::Info, text.into());
    }

    pub(crate) fn error(&mut self, text: impl Into<String>) {
        self.status.push(Level::Error, text.into());
    }

    pub(crate) fn push(&mut self, command: Command) {
        self.commands.push(command);
    }

    fn poll_background(&mut self, ctx: &egui::Context) {
        match self.adapters.take() {
            Some(Ok(adapters)) => self.detected_adapters = Some(adapters),
            Some(Err(crashed)) => {
                self.detected_adapters = Some(Vec::new());
                self.error(format!("Looking for GPUs failed: {crashed}"));
            }
            None => {}
        }
        match self.dialog.take() {
            Some(Ok((kind, path))) => self.on_dialog(kind, path),
            Some(Err(crashed)) => self.error(format!(
                "The file dialog failed: {crashed}. You can type a path instead."
            )),
            None => {}
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
            self.on_dropped(path);
        }
        self.poll_data();
        self.poll_training(ctx);
        let updates = self.sweep.poll(&self.cache.runs_dir);
        self.apply_sweep_updates(updates);
        // Remote runs report as a sweep's trials do: plot, draw points, re-read, say so.
        let updates = self.targets.poll(ctx, &self.cache.runs_dir);
        self.apply_sweep_updates(updates);
        self.poll_export();
        self.poll_model_use();
        self.poll_mistakes();
        if let Some(error) = self.versions.poll() {
            self.error(error);
        }
        let wanted = self.settings.selected_runs.clone();
        if self.cache.update(ctx, &wanted) {
            self.on_rescan();
        }
        if let Some(error) = self.cache.take_task_error() {
            self.error(error);
        }
    }

    fn apply_sweep_updates(&mut self, updates: Vec<SweepUpdate>) {
        for update in updates {
            match update {
                SweepUpdate::ShowRun(run) => {
                    if !self.settings.selected_runs.contains(&run) {
                        self.settings.selected_runs.push(run.clone());
                    }
                    self.cache.invalidate(&run);
                    self.cache.rescan_soon();
                }
                SweepUpdate::LivePoints(run, points) => self.cache.push_live_points(&run, points),
                SweepUpdate::RunChanged(run) => {
                    self.cache.invalidate(&run);
                    self.cache.rescan_soon();
                }
                SweepUpdate::Info(text) => self.info(text),
                SweepUpdate::Error(text) => self.error(text),
                SweepUpdate::Promote { run, epoch, card } => {
                    self.info(format!(
                        "Trial {} of {} won ({} {:.4}); export its checkpoint of epoch {epoch} here",
                        card.trial, card.sweep_name, card.metric, card.value
                    ));
                    if !self.settings.selected_runs.contains(&run) {
                        self.settings.selected_runs.push(run.clone());
                    }
                    self.export.evaluate_test = true;
                    self.export.promoted = Some(((run.clone(), epoch), card));
                    self.push(Command::SelectCheckpoint { run, epoch });
                }
            }
        }
    }

    fn on_dialog(&mut self, kind: DialogKind, path: Option<PathBuf>) {
        match (kind, path) {
            (_, None) => self
                .info("No file chosen (or no file dialog service); you can type a path instead."),
            (DialogKind::OpenCsv | DialogKind::OpenFolder, Some(path)) => {
                self.settings.data_path = path.display().to_string();
                self.push(Command::LoadData);
            }
            (DialogKind::SaveBundle, Some(path)) => {
                self.push(Command::Export { path, force: false })
            }
            (DialogKind::SavePredictions, Some(path)) => self.push(Command::SavePredictions(path)),
            (DialogKind::OpenModel, Some(path)) => self.push(Command::OpenModel(path)),
            (
                DialogKind::PredictCsv | DialogKind::PredictImage | DialogKind::PredictFolder,
                Some(path),
            ) => self.push(Command::PredictFile(path)),
        }
    }

    fn on_dropped(&mut self, path: PathBuf) {
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

    /// Keeps the plotted selection, colours and shown names in step with a fresh run list.
    fn on_rescan(&mut self) {
        let known: Vec<&str> = self.cache.runs.iter().map(|run| run.id.as_str()).collect();
        self.settings.run_colors.update(known.iter().copied());
        self.names = display_names(&self.cache.runs);
        // Runs deleted elsewhere drop out of the selection, and at launch so do runs remembered
        // from another store; a run that just started may not be listed yet and stays.
        let live = self.training.as_ref().and_then(|t| t.run_id.as_deref());
        let known: std::collections::HashSet<&str> = known.into_iter().collect();
        // Only the launch's listing may drop runs whose folders exist: remembered from another
        // store. Later, a run that just started (a sweep's trials start together) stays even
        // before a listing includes it — also when the store was empty at launch.
        let first_listing = !std::mem::replace(&mut self.listed_once, true);
        let runs_dir = self.cache.runs_dir.clone();
        self.settings.selected_runs.retain(|id| {
            known.contains(id.as_str())
                || Some(id.as_str()) == live
                || (!first_listing && runs_dir.join(id).is_dir())
        });
        // On a launch with runs in the store, show the newest one instead of an empty plot.
        if !self.auto_selected && !self.cache.runs.is_empty() {
            self.auto_selected = true;
            if self.settings.selected_runs.is_empty()
                && let Some(newest) = self.cache.runs.last()
            {
                self.settings.selected_runs.push(newest.id.clone());
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

    /// The plot shows exactly the ticked runs (unticked means hidden, the live run included),
    /// narrowed to the analysis view's brushes when any axis is brushed.
    fn plot_ui(&mut self, ui: &mut egui::Ui) {
        panels::plot_controls_ui(ui, &mut self.settings.plot);
        let shown: Vec<(String, String)> = self
            .settings
            .selected_runs
            .iter()
            .filter(|id| {
                self.analysis
                    .kept
                    .as_ref()
                    .is_none_or(|kept| kept.contains(id.as_str()))
            })
            .map(|id| (id.clone(), self.identity_name(id)))
            .collect();
        let runs: Vec<PlotRun<'_>> = shown
            .iter()
            .filter_map(|(id, name)| {
                Some(PlotRun {
                    id,
                    name,
                    color: self.settings.run_colors.color(id),
                    curves: self.cache.curves(id)?,
                    highlighted: self.highlighted.as_deref() == Some(id.as_str()),
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
        let groups = if self.settings.plot.group_seeds {
            self.plot_groups(&runs)
        } else {
            Vec::new()
        };
        let selected = self
            .selected_checkpoint
            .as_ref()
            .map(|(run, epoch)| (run.as_str(), *epoch));
        let outcome = curves_ui(ui, &self.settings.plot, &runs, &groups, selected);
        if let Some((run, epoch)) = outcome.clicked_checkpoint.clone() {
            self.push(Command::SelectCheckpoint { run, epoch });
        }
        if let Some(run) = outcome.clicked_run.clone() {
            self.runs.reveal(&run);
            self.highlighted = Some(run);
        }
        self.last_plot = outcome;
    }

    /// The shown runs grouped by their settings minus the seed.
    fn plot_groups<'a>(&'a self, runs: &[PlotRun<'a>]) -> Vec<PlotGroup<'a>> {
        let summaries: Vec<&RunSummary> = runs
            .iter()
            .filter_map(|run| self.cache.summary(run.id))
            .collect();
        crate::analysis::seed_groups(&summaries)
            .into_iter()
            .enumerate()
            .filter_map(|(index, group)| {
                let first = group.members.first()?;
                let members: Vec<&RunCurves> = group
                    .members
                    .iter()
                    .filter_map(|id| self.cache.curves(id))
                    .collect();
                Some(PlotGroup {
                    name: if group.members.len() > 1 {
                        format!("{} +{}", self.identity_name(first), group.members.len() - 1)
                    } else {
                        self.identity_name(first)
                    },
                    // By the group's place, not its first run's: members' colours are spread
                    // over the palette, and neighbouring groups must stay apart.
                    color: super::plot::run_color(index),
                    members,
                    mixed_data: group.mixed_data,
                })
            })
            .collect()
    }

    fn details_ui(&mut self, ui: &mut egui::Ui) {
        // Fill the height the panel was given (its default, or where the splitter was dragged),
        // rather than shrinking to a short tab's content.
        ui.set_min_height(ui.available_height());
        ui.horizontal(|ui| {
            for tab in BottomTab::ALL {
                ui.selectable_value(&mut self.settings.bottom_tab, tab, tab.title());
            }
        });
        ui.separator();
        if self.settings.bottom_tab == BottomTab::Runs {
            // The table scrolls itself (its rows are virtualised).
            let live = self.training.as_ref().and_then(|t| t.run_id.as_deref());
            let training = live.filter(|_| self.is_training());
            self.runs.ui(
                ui,
                RunsView {
                    runs_dir: &self.cache.runs_dir,
                    scan_error: self.cache.scan_error.as_deref(),
                    runs: &self.cache.runs,
                    broken: &self.cache.broken,
                    generation: self.cache.generation,
                    selected: &mut self.settings.selected_runs,
                    colors: &self.settings.run_colors,
                    names: &self.names,
                    training,
                    highlighted: &mut self.highlighted,
                    brushed: self.analysis.kept.as_ref(),
                    commands: &mut self.commands,
                },
            );
            return;
        }
        if self.settings.bottom_tab == BottomTab::Analysis {
            egui::ScrollArea::both()
                .id_salt("analysis_scroll")
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    self.analysis
                        .ui(ui, &self.cache.runs, &self.runs.filter_text)
                });
            return;
        }
        egui::ScrollArea::both()
            .id_salt("details_scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| match self.settings.bottom_tab {
                BottomTab::Runs | BottomTab::Analysis => {}
                BottomTab::Sweep => self.sweep_ui(ui),
                BottomTab::Data => panels::data_preview_ui(self, ui),
                BottomTab::Compare => panels::compare_ui(self, ui),
                BottomTab::Checkpoint => panels::checkpoint_ui(self, ui),
                BottomTab::Model => panels::model_use_ui(self, ui),
                BottomTab::Devices => self.devices.ui(ui),
            });
    }
}

impl KilnApp {
    fn sweep_ui(&mut self, ui: &mut egui::Ui) {
        let data = self
            .data
            .loaded
            .as_ref()
            .map(|(spec, prepared)| (spec, prepared.schema.task()));
        let context = SweepContext {
            runs_dir: &self.cache.runs_dir,
            data,
            model: self.settings.model_config(),
            train: self.settings.train.clone(),
            device: self.settings.device,
        };
        let mut updates = Vec::new();
        self.sweep.ui(ui, context, &mut updates);
        self.apply_sweep_updates(updates);
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
        // Why the window drew this frame (KILN_DEBUG_REPAINT=1): for keeping idle idle.
        if std::env::var_os("KILN_DEBUG_REPAINT").is_some() {
            log::warn!("repaint causes: {:?}", ctx.repaint_causes());
        }
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
                    ui.weak(crate::ui::widgets::count(
                        self.cache.runs.len(),
                        "run",
                        "runs",
                    ));
                });
            });
        });
        egui::Panel::bottom("kiln_status").show(ui, |ui| {
            let busy = self.is_busy() || self.cache.is_scanning();
            self.status.ui(ui, &self.cache.runs_dir, busy);
        });
        let setup = egui::Panel::left("kiln_setup")
            .resizable(true)
            .default_size(layout::DEFAULT_SETUP_WIDTH)
            .size_range(layout::setup_width_range(ui.available_width()))
            .show(ui, |ui| {
                // Train and Stop stay in view however long the form gets; their block scrolls
                // too when a small window cannot hold all of it.
                // Sized from its content (measured last frame), up to a share of the window;
                // beyond that it scrolls. A panel cannot grow from inside a scroll area by itself.
                let max_height =
                    ui.ctx().content_rect().height() * layout::MAX_TRAIN_CONTROLS_FRACTION;
                let height = (self.train_controls_height + 12.0).min(max_height);
                egui::Panel::bottom("kiln_train_controls")
                    .exact_size(height)
                    .show(ui, |ui| {
                        ui.add_space(4.0);
                        let scroll = egui::ScrollArea::vertical()
                            .id_salt("train_controls_scroll")
                            .auto_shrink([false, true])
                            .show(ui, |ui| panels::train_controls_ui(self, ui));
                        let content = scroll.content_size.y;
                        if (content - self.train_controls_height).abs() > 0.5 {
                            self.train_controls_height = content;
                            ui.ctx().request_repaint();
                        }
                    });
                egui::ScrollArea::vertical().show(ui, |ui| {
                    panels::setup_ui(self, ui);
                });
            });
        layout::splitter_grip(&ctx, setup.response.rect, layout::Edge::Right);
        let details = egui::Panel::bottom("kiln_details")
            .resizable(true)
            .default_size(layout::default_details_height(ui.available_height()))
            .size_range(layout::details_height_range(ui.available_height()))
            .show(ui, |ui| self.details_ui(ui));
        layout::splitter_grip(&ctx, details.response.rect, layout::Edge::Top);
        egui::CentralPanel::default_margins().show(ui, |ui| self.plot_ui(ui));
        self.runs.dialogs.modals_ui(&ctx, &mut self.commands);
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
