//! What panels ask the app to do, and the routing of each request to the part that does it.

use std::path::PathBuf;

use super::app::KilnApp;
use super::dialogs::DialogKind;
use crate::runs::RunStore;

/// Something a panel asks the app to do; handled after the panels are drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Dialog(DialogKind),
    LoadData,
    StartTraining,
    StopTraining,
    /// Continue a run; `learning_rate` replaces its base rate from the resumed epoch on.
    Resume {
        run: String,
        extra_epochs: Option<usize>,
        learning_rate: Option<f64>,
    },
    Rename {
        run: String,
        name: String,
    },
    Delete {
        run: String,
    },
    /// Fill the form with a run's settings.
    UseSettingsOf {
        run: String,
    },
    /// A new run with exactly a run's settings, seed and data.
    Rerun {
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
    /// Write the predictions shown in "Use a model" to a CSV file.
    SavePredictions(PathBuf),
    Rescan,
}

impl KilnApp {
    /// Carries out one command from the panels.
    pub(crate) fn handle(&mut self, ctx: &egui::Context, command: Command) {
        match command {
            Command::LoadData => self.load_data(ctx),
            Command::StartTraining => self.start_training(ctx),
            Command::StopTraining => {
                if let Some(training) = &mut self.training {
                    training.stop();
                }
            }
            Command::Resume {
                run,
                extra_epochs,
                learning_rate,
            } => self.resume_run(ctx, run, extra_epochs, learning_rate),
            Command::Rename { run, name } => {
                let result = RunStore::open(&self.cache.runs_dir)
                    .and_then(|store| store.rename(&run, &name));
                match result {
                    Ok(_) => {
                        self.info(format!("Renamed to '{}'", name.trim()));
                        self.cache.rescan(ctx);
                    }
                    Err(error) => self.error(format!("Cannot rename: {error}")),
                }
            }
            Command::UseSettingsOf { run } => match self.cache.record(&run) {
                Some(record) => {
                    self.settings.use_run(&record);
                    self.info(format!(
                        "The form now holds the settings of {}; change what you like and press Train",
                        self.identity_name(&run)
                    ));
                    self.push(Command::LoadData);
                }
                None => self.error(format!("Run {run} is no longer in the store")),
            },
            Command::Delete { run } => {
                let name = self.identity_name(&run);
                let result = RunStore::open(&self.cache.runs_dir).and_then(|store| {
                    let dir = store.find(&run)?;
                    store.delete(&dir)
                });
                match result {
                    Ok(()) => {
                        self.info(format!("Deleted '{name}'"));
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
            Command::Rerun { run } => self.rerun(ctx, run),
            Command::SavePredictions(path) => self.save_predictions(path),
            // Handled by the app before panels' commands reach here.
            Command::Dialog(_) | Command::Rescan => {}
        }
    }
}
