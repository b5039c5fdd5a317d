//! The runs table (tick to plot) and what can be done with a run: resume, continue with other
//! settings, rename, reuse its settings, delete. Actions sit in a menu at the start of each row,
//! so they stay reachable at any window width and never move under the pointer.

use std::collections::HashMap;

use egui_extras::{Column, TableBuilder};

use crate::runs::{RunListing, RunRecord, RunStatus};
use crate::ui::app::Command;
use crate::ui::identity::RunColors;

/// What the runs table needs from the app, and where it sends commands.
pub struct RunsView<'a> {
    pub runs_dir: &'a std::path::Path,
    pub scan_error: Option<&'a str>,
    pub listings: &'a [RunListing],
    pub selected: &'a mut Vec<String>,
    pub colors: &'a RunColors,
    pub names: &'a HashMap<String, String>,
    /// The run this window is training, if any.
    pub training: Option<&'a str>,
    pub commands: &'a mut Vec<Command>,
}

/// The runs tab and its dialogs.
#[derive(Default)]
pub struct RunsPanel {
    rename: Option<RenameDialog>,
    confirm_delete: Option<String>,
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

impl RunsPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, view: RunsView<'_>) {
        if let Some(error) = view.scan_error {
            ui.colored_label(
                ui.visuals().error_fg_color,
                format!("Cannot read the run store: {error}"),
            );
        }
        if view.listings.is_empty() {
            ui.label(format!(
                "No runs yet in {}. Click Train to make one.",
                view.runs_dir.display()
            ));
            return;
        }
        let RunsView {
            listings,
            selected,
            colors,
            names,
            training,
            commands,
            ..
        } = view;
        egui::ScrollArea::horizontal()
            .id_salt("runs_table_scroll")
            .show(ui, |ui| {
                TableBuilder::new(ui)
                    .striped(true)
                    .auto_shrink([false, false])
                    .column(Column::exact(18.0))
                    .column(Column::exact(26.0))
                    .column(Column::auto().at_least(150.0).resizable(true).clip(true))
                    .column(Column::auto().at_least(60.0).clip(true))
                    .column(Column::auto().at_least(80.0).clip(true))
                    .column(Column::auto().at_least(90.0))
                    .column(Column::auto().at_least(115.0))
                    .column(Column::auto().at_least(60.0))
                    .column(Column::remainder().at_least(100.0))
                    .header(20.0, |mut header| {
                        for title in [
                            "",
                            "",
                            "Run",
                            "From",
                            "Dataset",
                            "Status",
                            "Started",
                            "Epochs",
                            "Best valid",
                        ] {
                            header.col(|ui| {
                                ui.strong(title);
                            });
                        }
                    })
                    .body(|body| {
                        // Newest first.
                        body.rows(22.0, listings.len(), |mut row| {
                            let listing = &listings[listings.len() - 1 - row.index()];
                            match listing {
                                RunListing::Run {
                                    dir,
                                    record,
                                    status,
                                } => {
                                    let id = dir.id.as_str();
                                    let live = training == Some(id);
                                    let shown =
                                        names.get(id).map_or(record.name.as_str(), String::as_str);
                                    row.col(|ui| {
                                        ui.colored_label(colors.color(id), "●");
                                    });
                                    row.col(|ui| {
                                        self.menu_ui(
                                            ui,
                                            record,
                                            *status,
                                            shown,
                                            live,
                                            training.is_some(),
                                            commands,
                                        );
                                    });
                                    row.col(|ui| {
                                        let mut ticked = selected.iter().any(|s| s == id);
                                        let toggle = ui.checkbox(&mut ticked, shown).on_hover_text(
                                            format!("{id}\nTick to show in the plot"),
                                        );
                                        if toggle.changed() {
                                            if ticked {
                                                selected.push(id.to_string());
                                            } else {
                                                selected.retain(|s| s != id);
                                            }
                                        }
                                    });
                                    row.col(|ui| {
                                        // The version it was trained from (a warm start).
                                        match record.lineage.as_ref().and_then(|l| l.parent()) {
                                            Some(parent) => {
                                                ui.label(format!("← {}", parent.run_name))
                                                    .on_hover_text(format!(
                                                        "started from {} at epoch {}",
                                                        parent.run_name, parent.epoch
                                                    ));
                                            }
                                            None => {
                                                ui.weak("—");
                                            }
                                        }
                                    });
                                    row.col(|ui| {
                                        ui.label(&record.fingerprint.file_name).on_hover_text(
                                            format!(
                                                "fingerprint {}",
                                                record.fingerprint.short_id()
                                            ),
                                        );
                                    });
                                    row.col(|ui| {
                                        let text = if live { "training" } else { status.name() };
                                        let label = ui.label(text);
                                        if let Some(message) = &record.status_message {
                                            label.on_hover_text(message);
                                        }
                                    });
                                    row.col(|ui| {
                                        ui.label(
                                            record
                                                .created
                                                .get(..16)
                                                .unwrap_or(&record.created)
                                                .replace('T', " "),
                                        );
                                    });
                                    row.col(|ui| {
                                        ui.label(format!(
                                            "{}/{}",
                                            record.epochs_completed, record.train.epochs
                                        ));
                                    });
                                    row.col(|ui| {
                                        ui.label(best_text(record));
                                    });
                                }
                                RunListing::Broken { id, error, .. } => {
                                    row.col(|_| {});
                                    row.col(|ui| {
                                        ui.menu_button("⋯", |ui| {
                                            if ui.button("Delete…").clicked() {
                                                self.confirm_delete = Some(id.clone());
                                                ui.close();
                                            }
                                        });
                                    });
                                    row.col(|ui| {
                                        ui.label(id);
                                    });
                                    row.col(|_| {});
                                    row.col(|_| {});
                                    row.col(|ui| {
                                        ui.colored_label(ui.visuals().error_fg_color, "broken")
                                            .on_hover_text(error);
                                    });
                                    for _ in 0..3 {
                                        row.col(|_| {});
                                    }
                                }
                            }
                        });
                    });
            });
    }

    /// The row's actions. `busy`: this window trains a run already.
    #[allow(clippy::too_many_arguments)]
    fn menu_ui(
        &mut self,
        ui: &mut egui::Ui,
        record: &RunRecord,
        status: RunStatus,
        shown_name: &str,
        live: bool,
        busy: bool,
        commands: &mut Vec<Command>,
    ) {
        let id = &record.id;
        let running = status == RunStatus::Running || live;
        ui.menu_button("⋯", |ui| {
            ui.set_min_width(220.0);
            let has_checkpoint = record.epochs_completed > 0;
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
                    from_epoch: record.epochs_completed,
                    was_rate: record.train.learning_rate,
                    learning_rate: if diverged {
                        record.train.learning_rate / 10.0
                    } else {
                        record.train.learning_rate
                    },
                    extra_epochs: if diverged {
                        record
                            .train
                            .epochs
                            .saturating_sub(record.epochs_completed)
                            .max(1)
                    } else {
                        20
                    },
                });
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
                    name: record.name.clone(),
                    focused: false,
                });
                ui.close();
            }
            if ui
                .add_enabled(!running, egui::Button::new("Delete…"))
                .on_disabled_hover_text("Stop the run first")
                .clicked()
            {
                self.confirm_delete = Some(id.clone());
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
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(!dialog.name.trim().is_empty(), egui::Button::new("Rename"))
                    .clicked()
                {
                    decision = Some(true);
                }
                if ui.button("Cancel").clicked() {
                    decision = Some(false);
                }
            });
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
        let Some(id) = self.confirm_delete.clone() else {
            return;
        };
        let mut decision = None;
        let modal = egui::Modal::new(egui::Id::unique("delete_run")).show(ctx, |ui| {
            ui.heading("Delete run?");
            ui.label(format!(
                "Delete {id} with all its checkpoints and metrics? This cannot be undone."
            ));
            ui.horizontal(|ui| {
                if ui.button("Delete").clicked() {
                    decision = Some(true);
                }
                if ui.button("Cancel").clicked() {
                    decision = Some(false);
                }
            });
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
            ui.horizontal(|ui| {
                let valid = dialog.extra_epochs > 0
                    && crate::train::check_learning_rate(dialog.learning_rate).is_ok();
                if ui
                    .add_enabled(valid, egui::Button::new("Continue"))
                    .clicked()
                {
                    decision = Some(true);
                }
                if ui.button("Cancel").clicked() {
                    decision = Some(false);
                }
            });
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

fn best_text(record: &RunRecord) -> String {
    match &record.best {
        Some(best) => match best.valid_accuracy {
            Some(accuracy) => format!("{:.1}% @{}", accuracy * 100.0, best.epoch),
            None => format!("loss {:.4} @{}", best.valid_loss, best.epoch),
        },
        None => "—".to_string(),
    }
}
