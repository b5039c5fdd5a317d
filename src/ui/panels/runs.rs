//! The runs browser, the comparison of two runs, and run management (resume, rename, delete).

use std::collections::BTreeMap;

use egui_extras::{Column, TableBuilder};

use crate::runs::{RunListing, RunRecord, RunStatus};
use crate::ui::app::{Command, KilnApp};
use crate::ui::plot::run_color;

#[derive(Default)]
pub struct RunsState {
    /// Run id → name being edited.
    pub renaming: Option<(String, String)>,
    /// Run id awaiting delete confirmation.
    pub confirm_delete: Option<String>,
    pub extra_epochs: usize,
}

pub fn runs_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    if let Some(error) = &app.cache.scan_error {
        ui.colored_label(
            ui.visuals().error_fg_color,
            format!("Cannot read the run store: {error}"),
        );
    }
    if app.cache.listings.is_empty() {
        ui.label(format!(
            "No runs yet in {}. Click Train to make one.",
            app.cache.runs_dir.display()
        ));
        return;
    }
    if app.runs.extra_epochs == 0 {
        app.runs.extra_epochs = 20;
    }
    let training_id = app
        .training
        .as_ref()
        .filter(|_| app.is_training())
        .map(|t| t.run_id.clone());
    let listings: Vec<RunListing> = app.cache.listings.iter().rev().cloned().collect();
    let all_ids: Vec<String> = app
        .cache
        .listings
        .iter()
        .map(|l| l.id().to_string())
        .collect();
    TableBuilder::new(ui)
        .striped(true)
        .column(Column::exact(24.0))
        .column(Column::auto().at_least(150.0).resizable(true))
        .column(Column::auto().at_least(80.0))
        .column(Column::auto().at_least(90.0))
        .column(Column::auto().at_least(120.0))
        .column(Column::auto().at_least(60.0))
        .column(Column::auto().at_least(110.0))
        .column(Column::remainder().at_least(200.0))
        .header(20.0, |mut header| {
            for title in [
                "",
                "Run",
                "Dataset",
                "Status",
                "Started",
                "Epochs",
                "Best valid",
                "Actions",
            ] {
                header.col(|ui| {
                    ui.strong(title);
                });
            }
        })
        .body(|mut body| {
            for listing in &listings {
                body.row(22.0, |mut row| match listing {
                    RunListing::Run {
                        dir,
                        record,
                        status,
                        busy,
                    } => {
                        let id = dir.id.clone();
                        let color = run_color(all_ids.iter().position(|i| *i == id).unwrap_or(0));
                        row.col(|ui| {
                            ui.colored_label(color, "●");
                        });
                        row.col(|ui| {
                            let editing = app.runs.renaming.as_ref().is_some_and(|(r, _)| *r == id);
                            if editing {
                                if let Some((_, name)) = &mut app.runs.renaming {
                                    let response = ui
                                        .text_edit_singleline(name)
                                        .on_hover_text("New name (Enter to keep)");
                                    if response.lost_focus() {
                                        let name = name.clone();
                                        app.runs.renaming = None;
                                        app.push(Command::Rename {
                                            run: id.clone(),
                                            name,
                                        });
                                    }
                                }
                            } else {
                                let mut selected = app.settings.selected_runs.contains(&id);
                                let toggle = ui
                                    .checkbox(&mut selected, &record.name)
                                    .on_hover_text(format!("{id}\nShow in the plot"));
                                if toggle.changed() {
                                    if selected {
                                        app.settings.selected_runs.push(id.clone());
                                    } else {
                                        app.settings.selected_runs.retain(|s| *s != id);
                                    }
                                }
                            }
                        });
                        row.col(|ui| {
                            ui.label(&record.fingerprint.file_name)
                                .on_hover_text(format!(
                                    "fingerprint {}",
                                    record.fingerprint.short_id()
                                ));
                        });
                        row.col(|ui| {
                            let text = if Some(&id) == training_id.as_ref() {
                                "training"
                            } else if busy.is_some() {
                                "busy"
                            } else {
                                status.name()
                            };
                            let label = ui.label(text);
                            if let Some(holder) = busy {
                                label.on_hover_text(format!("Being trained by {holder}"));
                            } else if let Some(message) = &record.status_message {
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
                        row.col(|ui| {
                            actions_ui(app, ui, &id, *status, training_id.is_some());
                        });
                    }
                    RunListing::Broken { id, error, .. } => {
                        row.col(|_| {});
                        row.col(|ui| {
                            ui.label(id);
                        });
                        row.col(|_| {});
                        row.col(|ui| {
                            ui.colored_label(ui.visuals().error_fg_color, "broken")
                                .on_hover_text(error);
                        });
                        for _ in 0..3 {
                            row.col(|_| {});
                        }
                        row.col(|ui| {
                            if ui.small_button("Delete…").clicked() {
                                app.runs.confirm_delete = Some(id.clone());
                            }
                        });
                    }
                });
            }
        });
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

fn actions_ui(app: &mut KilnApp, ui: &mut egui::Ui, id: &str, status: RunStatus, busy: bool) {
    ui.horizontal(|ui| actions_row_ui(app, ui, id, status, busy));
}

fn actions_row_ui(app: &mut KilnApp, ui: &mut egui::Ui, id: &str, status: RunStatus, busy: bool) {
    let running = status == RunStatus::Running;
    if status.is_resumable()
        && ui
            .add_enabled(!busy, egui::Button::new("Resume").small())
            .clicked()
    {
        app.push(Command::Resume {
            run: id.to_string(),
            extra_epochs: None,
        });
    }
    if !running
        && ui
            .add_enabled(
                !busy,
                egui::Button::new(format!("+{} epochs", app.runs.extra_epochs)).small(),
            )
            .on_hover_text("Continue training from the last checkpoint")
            .clicked()
    {
        app.push(Command::Resume {
            run: id.to_string(),
            extra_epochs: Some(app.runs.extra_epochs),
        });
    }
    if ui.small_button("Rename").clicked() {
        let name = match app.cache.listing(id) {
            Some(RunListing::Run { record, .. }) => record.name.clone(),
            _ => String::new(),
        };
        app.runs.renaming = Some((id.to_string(), name));
    }
    if ui
        .add_enabled(!running, egui::Button::new("Delete…").small())
        .clicked()
    {
        app.runs.confirm_delete = Some(id.to_string());
    }
}

/// Flattens a JSON value into `path → value` pairs for field-by-field comparison.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, child, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The configuration fields (and dataset facts) where two runs differ.
pub fn differences(a: &RunRecord, b: &RunRecord) -> Vec<(String, String, String)> {
    let describe = |record: &RunRecord| {
        let mut fields = BTreeMap::new();
        let document = serde_json::json!({
            "data": record.data,
            "dataset": {
                "fingerprint": record.fingerprint.id,
                "rows": record.fingerprint.rows,
                "columns": record.fingerprint.columns,
                "target": record.schema.target.name,
                "task": record.schema.target.task,
            },
            "model": record.model,
            "train": record.train,
            "device": record.device.adapter,
        });
        flatten("", &document, &mut fields);
        fields
    };
    let (left, right) = (describe(a), describe(b));
    let keys: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let l = left.get(key).cloned().unwrap_or_else(|| "—".to_string());
            let r = right.get(key).cloned().unwrap_or_else(|| "—".to_string());
            (l != r).then(|| (key.clone(), l, r))
        })
        .collect()
}

pub fn compare_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    let records: Vec<&RunRecord> = app
        .settings
        .selected_runs
        .iter()
        .filter_map(|id| match app.cache.listing(id) {
            Some(RunListing::Run { record, .. }) => Some(record.as_ref()),
            _ => None,
        })
        .collect();
    if records.len() != 2 {
        ui.label(format!(
            "Tick exactly two runs in the Runs tab to see what differs between them ({} ticked).",
            records.len()
        ));
        return;
    }
    let (a, b) = (records[0], records[1]);
    let diffs = differences(a, b);
    if a.fingerprint.id == b.fingerprint.id {
        ui.label(format!(
            "Same dataset (fingerprint {}).",
            a.fingerprint.short_id()
        ));
    } else {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "Different data: {} ({}) vs {} ({}).",
                a.fingerprint.file_name,
                a.fingerprint.short_id(),
                b.fingerprint.file_name,
                b.fingerprint.short_id()
            ),
        );
    }
    if diffs.is_empty() {
        ui.label("The two runs have the same configuration.");
        return;
    }
    egui::Grid::new("diff_grid")
        .striped(true)
        .num_columns(3)
        .show(ui, |ui| {
            ui.strong("Field");
            ui.strong(&a.name);
            ui.strong(&b.name);
            ui.end_row();
            for (field, left, right) in &diffs {
                ui.monospace(field);
                ui.label(left);
                ui.label(right);
                ui.end_row();
            }
        });
}

/// Confirmation dialogs drawn above everything.
pub fn modals_ui(app: &mut KilnApp, ctx: &egui::Context) {
    let Some(id) = app.runs.confirm_delete.clone() else {
        return;
    };
    let mut decision = None;
    egui::Window::new("Delete run?")
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
        .show(ctx, |ui| {
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
    match decision {
        Some(true) => {
            app.runs.confirm_delete = None;
            app.push(Command::Delete { run: id });
        }
        Some(false) => app.runs.confirm_delete = None,
        None => {}
    }
}
