//! The panels of the window, one file each; they read app state and push [`Command`]s.

mod confusion;
mod data;
mod data_columns;
mod export;
mod mistakes;
mod model_form;
mod model_use;
mod model_use_images;
mod runs;
mod thumbnails;
mod training;

pub use data::{DataState, data_preview_ui};
pub use export::{ExportState, checkpoint_ui};
pub use mistakes::MistakesState;
pub use model_use::{ModelUseState, model_use_ui};
pub use runs::{RunsState, compare_ui, modals_ui, runs_ui};
pub use training::LiveTraining;

use crate::runs::RunStore;
use crate::ui::app::{Command, KilnApp};
use crate::ui::plot::{PlotSettings, XAxis};

/// The left column: data, model, training, Train/Stop.
pub fn setup_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    egui::CollapsingHeader::new(egui::RichText::new("Data").heading())
        .default_open(true)
        .show(ui, |ui| data::data_form_ui(app, ui));
    egui::CollapsingHeader::new(egui::RichText::new("Model").heading())
        .default_open(true)
        .show(ui, |ui| model_form::model_form_ui(app, ui));
    egui::CollapsingHeader::new(egui::RichText::new("Training").heading())
        .default_open(true)
        .show(ui, |ui| training::training_form_ui(app, ui));
}

pub use training::train_controls_ui;

pub fn plot_controls_ui(ui: &mut egui::Ui, settings: &mut PlotSettings) {
    ui.horizontal_wrapped(|ui| {
        ui.label("Metric");
        for metric in [
            "loss",
            "accuracy",
            "precision",
            "recall",
            "rmse",
            "batch_loss",
        ] {
            ui.selectable_value(&mut settings.metric, metric.to_string(), metric);
        }
        ui.separator();
        ui.label("x");
        for axis in XAxis::ALL {
            ui.selectable_value(&mut settings.x_axis, axis, axis.label());
        }
        ui.separator();
        ui.checkbox(&mut settings.log_y, "log y");
        let label = ui.label("Smoothing");
        // Narrow enough that the whole bar fits a 1280-pixel window beside the setup column.
        ui.spacing_mut().slider_width = 90.0;
        ui.add(egui::Slider::new(&mut settings.smoothing, 0.0..=0.99).fixed_decimals(2))
            .labelled_by(label.id);
    });
}

impl KilnApp {
    /// Carries out one command from the panels.
    pub(crate) fn handle(&mut self, ctx: &egui::Context, command: Command) {
        match command {
            Command::LoadData => self.load_data(ctx),
            Command::StartTraining => self.start_training(ctx),
            Command::StopTraining => {
                if let Some(training) = &mut self.training {
                    training.handle.stop();
                    training.stop_requested = true;
                }
            }
            Command::Resume { run, extra_epochs } => self.resume_run(ctx, run, extra_epochs),
            Command::Rename { run, name } => {
                let result = RunStore::open(&self.cache.runs_dir)
                    .and_then(|store| store.find(&run))
                    .and_then(|dir| dir.rename(&name));
                match result {
                    Ok(_) => self.cache.rescan(ctx),
                    Err(error) => self.error(format!("Cannot rename: {error}")),
                }
            }
            Command::Delete { run } => {
                let result = RunStore::open(&self.cache.runs_dir).and_then(|store| {
                    let dir = store.find(&run)?;
                    store.delete(&dir)
                });
                match result {
                    Ok(()) => {
                        self.info(format!("Deleted {run}"));
                        self.settings.selected_runs.retain(|id| *id != run);
                        if self
                            .selected_checkpoint
                            .as_ref()
                            .is_some_and(|(r, _)| *r == run)
                        {
                            self.selected_checkpoint = None;
                        }
                        self.cache.forget(&run);
                        self.cache.rescan(ctx);
                    }
                    Err(error) => self.error(format!("Cannot delete: {error}")),
                }
            }
            Command::SelectCheckpoint { run, epoch } => {
                self.selected_checkpoint = Some((run, epoch));
                self.export.path.clear();
                self.export.confusion_epoch = None;
                self.mistakes.cell = None;
                self.settings.bottom_tab = crate::ui::settings::BottomTab::Checkpoint;
            }
            Command::Export { path, force } => self.export_selected(ctx, path, force),
            Command::OpenModel(path) => self.open_model(ctx, path),
            Command::PredictFile(path) => self.predict_file(ctx, path),
            Command::PredictRow => self.predict_typed_row(),
            // Handled by the app before panels' commands reach here.
            Command::Dialog(_) | Command::Rescan => {}
        }
    }
}
