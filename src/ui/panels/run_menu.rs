//! A run's actions (the row menu of the runs table) and their dialogs: resume, continue with
//! more epochs or a new learning rate, re-run exactly, reuse the settings, rename, delete.

use crate::runs::{RunStatus, RunSummary};
use crate::ui::app::Command;

/// The dialogs a row's menu opens.
#[derive(Default)]
pub struct RunDialogs {
    rename: Option<RenameDialog>,
    /// The run to delete once confirmed, and the name to call it by.
    pub(super) confirm_delete: Option<(String, String)>,
    continue_dialog: Option<ContinueDialog>,
}

struct RenameDialog {
    run: String,
    name: String,
    focused: bool,
}

/// Continue a run from its last checkpoint, with a new learning rate and more epochs.
struct ContinueDialog {
    run: String,
    shown_name: String,
    from_epoch: usize,
    was_rate: f64,
    learning_rate: f64,
    extra_epochs: usize,
}

impl RunDialogs {
    /// The row's actions. `busy`: this window trains a run already.
    pub fn menu_ui(
        &mut self,
        ui: &mut egui::Ui,
        run: &RunSummary,
        shown_name: &str,
        live: bool,
        busy: bool,
        commands: &mut Vec<Command>,
    ) {
        let id = &run.id;
        let status = run.status;
        let running = status == RunStatus::Running || live;
        let learning_rate = run
            .config
            .get("train.learning_rate")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.01);
        ui.menu_button("⋯", |ui| {
            ui.set_min_width(220.0);
            let has_checkpoint = run.epochs_completed > 0;
            if status.is_resumable()
                && ui
                    .add_enabled(!busy, egui::Button::new("Resume"))
                    .on_hover_text("Continue from the last checkpoint to the planned epochs")
                    .on_disabled_hover_text("Another run is training in this window")
                    .clicked()
            {
                commands.push(Command::Resume {
                    run: id.clone(),
                    extra_epochs: None,
                    learning_rate: None,
                });
                ui.close();
            }
            let continue_label = if status == RunStatus::Diverged {
                "Continue with a lower learning rate…"
            } else {
                "Continue with more epochs…"
            };
            let continue_button = ui
                .add_enabled(
                    !running && !busy && has_checkpoint,
                    egui::Button::new(continue_label),
                )
                .on_disabled_hover_text(if has_checkpoint {
                    "Another run is training"
                } else {
                    "No checkpoint was saved: use its settings for a new run instead"
                });
            if continue_button.clicked() {
                let diverged = status == RunStatus::Diverged;
                self.continue_dialog = Some(ContinueDialog {
                    run: id.clone(),
                    shown_name: shown_name.to_string(),
                    from_epoch: run.epochs_completed,
                    was_rate: learning_rate,
                    learning_rate: if diverged {
                        learning_rate / 10.0
                    } else {
                        learning_rate
                    },
                    extra_epochs: if diverged {
                        run.planned_epochs
                            .saturating_sub(run.epochs_completed)
                            .max(1)
                    } else {
                        20
                    },
                });
                ui.close();
            }
            if ui
                .add_enabled(!busy, egui::Button::new("Re-run exactly"))
                .on_hover_text(
                    "A new run with the same settings, seed and data (refused if the data changed)",
                )
                .clicked()
            {
                commands.push(Command::Rerun { run: id.clone() });
                ui.close();
            }
            if ui
                .button("Use its settings in the form")
                .on_hover_text("Data, model and training settings of this run, for a new run")
                .clicked()
            {
                commands.push(Command::UseSettingsOf { run: id.clone() });
                ui.close();
            }
            ui.separator();
            if ui.button("Rename…").clicked() {
                self.rename = Some(RenameDialog {
                    run: id.clone(),
                    name: run.name.clone(),
                    focused: false,
                });
                ui.close();
            }
            if ui
                .add_enabled(!running, egui::Button::new("Delete…"))
                .on_disabled_hover_text("Stop the run first")
                .clicked()
            {
                self.confirm_delete = Some((id.clone(), run.name.clone()));
                ui.close();
            }
        });
    }

    /// The dialogs, drawn above everything; each closes with Escape or a click outside.
    pub fn modals_ui(&mut self, ctx: &egui::Context, commands: &mut Vec<Command>) {
        self.rename_modal(ctx, commands);
        self.delete_modal(ctx, commands);
        self.continue_modal(ctx, commands);
    }

    fn rename_modal(&mut self, ctx: &egui::Context, commands: &mut Vec<Command>) {
        let Some(dialog) = &mut self.rename else {
            return;
        };
        let mut decision = None;
        let modal = egui::Modal::new(egui::Id::unique("rename_run")).show(ctx, |ui| {
            ui.heading("Rename run");
            let edit = ui.add(
                egui::TextEdit::singleline(&mut dialog.name)
                    .desired_width(280.0)
                    .hint_text("new name"),
            );
            if !dialog.focused {
                edit.request_focus();
                dialog.focused = true;
            }
            if edit.lost_focus() && ui.input(|input| input.key_pressed(egui::Key::Enter)) {
                decision = Some(true);
            }
            ui.weak("Enter renames, Escape cancels.");
            if let Some(choice) = confirm_buttons(ui, "Rename", !dialog.name.trim().is_empty()) {
                decision = Some(choice);
            }
        });
        if modal.should_close() {
            decision = Some(false);
        }
        match decision {
            Some(true) if !dialog.name.trim().is_empty() => {
                commands.push(Command::Rename {
                    run: dialog.run.clone(),
                    name: dialog.name.trim().to_string(),
                });
                self.rename = None;
            }
            Some(_) => self.rename = None,
            None => {}
        }
    }

    fn delete_modal(&mut self, ctx: &egui::Context, commands: &mut Vec<Command>) {
        let Some((id, name)) = self.confirm_delete.clone() else {
            return;
        };
        let mut decision = None;
        let modal = egui::Modal::new(egui::Id::unique("delete_run")).show(ctx, |ui| {
            ui.heading("Delete run?");
            ui.label(format!(
                "Delete '{name}' with all its checkpoints and metrics? This cannot be undone."
            ))
            .on_hover_text(format!("Run folder {id}"));
            if let Some(choice) = confirm_buttons(ui, "Delete", true) {
                decision = Some(choice);
            }
        });
        if modal.should_close() {
            decision = Some(false);
        }
        match decision {
            Some(true) => {
                self.confirm_delete = None;
                commands.push(Command::Delete { run: id });
            }
            Some(false) => self.confirm_delete = None,
            None => {}
        }
    }

    fn continue_modal(&mut self, ctx: &egui::Context, commands: &mut Vec<Command>) {
        let Some(dialog) = &mut self.continue_dialog else {
            return;
        };
        let mut decision = None;
        let modal = egui::Modal::new(egui::Id::unique("continue_run")).show(ctx, |ui| {
            ui.heading(format!("Continue {}", dialog.shown_name));
            ui.label(format!(
                "From the checkpoint of epoch {}, with the model and optimizer state saved there.",
                dialog.from_epoch
            ));
            egui::Grid::new("continue_grid")
                .num_columns(2)
                .show(ui, |ui| {
                    let label = ui.label("New learning rate");
                    crate::ui::widgets::checked_number(
                        ui,
                        &mut dialog.learning_rate,
                        dialog.was_rate / 100.0,
                        label.id,
                        |rate| {
                            crate::ui::widgets::FieldIssue::from_result(
                                crate::train::check_learning_rate(rate),
                            )
                        },
                    );
                    ui.end_row();
                    let label = ui.label("More epochs");
                    crate::ui::widgets::checked_number(
                        ui,
                        &mut dialog.extra_epochs,
                        1.0,
                        label.id,
                        |epochs| {
                            (epochs == 0).then(|| {
                                crate::ui::widgets::FieldIssue::Error(
                                    "continue for at least one epoch".to_string(),
                                )
                            })
                        },
                    );
                    ui.end_row();
                });
            if dialog.learning_rate != dialog.was_rate {
                ui.weak(format!(
                    "The change from {} is recorded in the run.",
                    dialog.was_rate
                ));
            }
            let valid = dialog.extra_epochs > 0
                && crate::train::check_learning_rate(dialog.learning_rate).is_ok();
            if let Some(choice) = confirm_buttons(ui, "Continue", valid) {
                decision = Some(choice);
            }
        });
        if modal.should_close() {
            decision = Some(false);
        }
        match decision {
            Some(true) => {
                commands.push(Command::Resume {
                    run: dialog.run.clone(),
                    extra_epochs: Some(dialog.extra_epochs),
                    learning_rate: Some(dialog.learning_rate)
                        .filter(|rate| *rate != dialog.was_rate),
                });
                self.continue_dialog = None;
            }
            Some(false) => self.continue_dialog = None,
            None => {}
        }
    }
}

/// A dialog's action button (enabled when its input is valid) and Cancel: `Some(true)` for the
/// action, `Some(false)` for Cancel, `None` while neither is clicked.
fn confirm_buttons(ui: &mut egui::Ui, action: &str, enabled: bool) -> Option<bool> {
    ui.horizontal(|ui| {
        if ui.add_enabled(enabled, egui::Button::new(action)).clicked() {
            Some(true)
        } else if ui.button("Cancel").clicked() {
            Some(false)
        } else {
            None
        }
    })
    .inner
}
