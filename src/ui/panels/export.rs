//! The selected checkpoint: its metrics, and exporting it as a model bundle.

use std::path::PathBuf;

use crate::export::{BundlePaths, CardSweep, ExportError, ExportOptions, export_checkpoint};
use crate::ui::app::{Command, KilnApp};
use crate::ui::dialogs::DialogKind;
use crate::ui::promise::Task;

#[derive(Default)]
pub struct ExportState {
    pub path: String,
    /// The epoch whose confusion matrix the checkpoint tab shows (`None`: the checkpoint's own).
    pub confusion_epoch: Option<usize>,
    pub confirm_overwrite: Option<PathBuf>,
    /// The last export, shown only with the checkpoint it came from.
    pub last: Option<ExportDone>,
    task: Task<(PathBuf, Result<BundlePaths, ExportFailure>)>,
    /// The checkpoint being exported and the formats it gets.
    exporting: Option<((String, usize), ExportFormats)>,
    /// Score the exported checkpoint on the run's test split.
    pub evaluate_test: bool,
    /// A sweep's winner chosen by "Promote best": its checkpoint and the card's sweep section.
    pub promoted: Option<((String, usize), CardSweep)>,
}

/// An export that finished: where, from which checkpoint, and what was written.
pub struct ExportDone {
    pub checkpoint: (String, usize),
    pub paths: BundlePaths,
    pub formats: ExportFormats,
}

/// Which files a model's bundle gets, and why one is missing.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportFormats {
    /// `None`: ONNX is written; `Some(reason)`: it cannot be, for this model.
    pub onnx_missing: Option<String>,
}

impl ExportFormats {
    pub fn for_model(model: &crate::model::ModelConfig) -> Self {
        Self {
            onnx_missing: crate::export::onnx_support(model).err(),
        }
    }

    fn written(&self) -> &'static str {
        if self.onnx_missing.is_none() {
            "model card, Kiln weights (.bpk), safetensors (Python) and ONNX"
        } else {
            "model card, Kiln weights (.bpk) and safetensors (Python) — no ONNX"
        }
    }
}

pub enum ExportFailure {
    Exists,
    Other(String),
}

impl ExportState {
    pub fn is_pending(&self) -> bool {
        self.task.is_pending()
    }
}

impl KilnApp {
    pub(crate) fn export_selected(&mut self, ctx: &egui::Context, path: PathBuf, force: bool) {
        let Some((run, epoch)) = self.selected_checkpoint.clone() else {
            self.error("Select a checkpoint first (click a marker on the plot).");
            return;
        };
        let runs_dir = self.cache.runs_dir.clone();
        self.export.path = path.display().to_string();
        let formats = match self.cache.record(&run) {
            Some(record) => ExportFormats::for_model(&record.model),
            None => ExportFormats { onnx_missing: None },
        };
        let onnx = formats.onnx_missing.is_none();
        let evaluate_test = self.export.evaluate_test
            && self
                .cache
                .record(&run)
                .is_some_and(|record| record.data.test.is_some());
        let sweep = self
            .export
            .promoted
            .as_ref()
            .filter(|(checkpoint, _)| *checkpoint == (run.clone(), epoch))
            .map(|(_, card)| card.clone());
        // A mirrored run keeps only its best weights here: others are fetched from its target.
        let fetch_from = self
            .cache
            .record(&run)
            .is_some_and(|record| record.remote.is_some())
            .then(|| self.targets.file().cloned())
            .flatten();
        self.export.exporting = Some(((run.clone(), epoch), formats));
        self.export.task.start(ctx, move || {
            if let Some(targets) = &fetch_from
                && let Err(error) =
                    crate::cluster::fetch_checkpoint(&runs_dir, &format!("{run}@{epoch}"), targets)
            {
                return (
                    path,
                    Err(ExportFailure::Other(format!(
                        "fetching the checkpoint from its target: {error}"
                    ))),
                );
            }
            let options = ExportOptions {
                force,
                onnx,
                evaluate_test,
                sweep,
                ..ExportOptions::default()
            };
            let result = export_checkpoint(&runs_dir, &format!("{run}@{epoch}"), &path, &options)
                .map_err(|error| match error {
                    ExportError::Exists(_) => ExportFailure::Exists,
                    other => ExportFailure::Other(other.to_string()),
                });
            (path, result)
        });
    }

    pub(crate) fn poll_export(&mut self) {
        let Some(outcome) = self.export.task.take() else {
            return;
        };
        let exporting = self.export.exporting.take();
        match outcome {
            Ok((_, Ok(paths))) => {
                let Some((checkpoint, formats)) = exporting else {
                    return;
                };
                let mut message = format!(
                    "Exported to {}: {}",
                    paths.card.parent().unwrap_or(&paths.card).display(),
                    formats.written()
                );
                if let Some(reason) = &formats.onnx_missing {
                    message.push_str(&format!(" ({reason})"));
                }
                self.info(message);
                self.cache.invalidate(&checkpoint.0);
                self.cache.rescan_soon();
                self.export.last = Some(ExportDone {
                    checkpoint,
                    paths,
                    formats,
                });
            }
            Ok((path, Err(ExportFailure::Exists))) => {
                self.export.confirm_overwrite = Some(path);
                self.export.exporting = exporting;
            }
            Ok((_, Err(ExportFailure::Other(message)))) => {
                self.error(format!("Export failed: {message}"))
            }
            Err(crashed) => self.error(format!("Export failed: {crashed}")),
        }
    }
}

/// Room the checkpoint's metric list takes beside the confusion matrix.
const METRICS_WIDTH: f32 = 240.0;

pub fn checkpoint_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    let Some((run, epoch)) = app.selected_checkpoint.clone() else {
        ui.label(
            "Click a checkpoint marker on the plot (● per epoch, ◆ the best) to select it here.",
        );
        best_shortcuts_ui(app, ui);
        live_confusion_ui(app, ui);
        return;
    };
    let curves = app.cache.curves(&run);
    let entry = curves.and_then(|c| c.index.at_epoch(epoch)).cloned();
    let confusions = curves
        .map(|c| c.confusions.by_epoch.clone())
        .unwrap_or_default();
    let (name, classes, images) = match app.cache.record(&run) {
        Some(record) => (
            app.identity_name(&run),
            record.schema.target.classes.clone(),
            record.preprocessor.image.is_some(),
        ),
        None => (run.clone(), Vec::new(), false),
    };
    ui.heading(format!("{name} · epoch {epoch}"));
    let Some(entry) = entry else {
        ui.label("This checkpoint is no longer kept (only the best and the latest ones are).");
        return;
    };
    // Metrics on the left and the confusion matrix (classification) beside them where the
    // panel is wide enough; stacked otherwise.
    let has_confusion = entry.confusion.is_some() || !confusions.is_empty();
    let beside = has_confusion
        && crate::ui::layout::fits_side_by_side(
            ui,
            METRICS_WIDTH,
            super::confusion::needed_width(classes.len()),
        );
    let metrics_ui = |ui: &mut egui::Ui| {
        ui.vertical(|ui| {
            if entry.best {
                ui.label("◆ The best checkpoint of this run (lowest validation loss).");
            }
            if beside || !has_confusion {
                egui::Grid::new("checkpoint_metrics")
                    .num_columns(2)
                    .show(ui, |ui| {
                        for (metric, value) in &entry.metrics {
                            ui.label(metric);
                            ui.monospace(format!("{value:.5}"));
                            ui.end_row();
                        }
                        ui.label("step");
                        ui.monospace(entry.step.to_string());
                        ui.end_row();
                    });
            } else {
                // Above the matrix: one wrapped line, so the matrix starts high in the panel.
                ui.horizontal_wrapped(|ui| {
                    for (metric, value) in &entry.metrics {
                        ui.label(metric);
                        ui.monospace(format!("{value:.5}"));
                        ui.add_space(10.0);
                    }
                    ui.label("step");
                    ui.monospace(entry.step.to_string());
                });
            }
        });
    };
    let mut clicked = None;
    let mut confusion_block = |ui: &mut egui::Ui| {
        ui.vertical(|ui| {
            clicked = epoch_confusion_ui(
                ui,
                &mut app.export.confusion_epoch,
                epoch,
                &confusions,
                entry.confusion.as_ref(),
                &classes,
            );
        });
    };
    if beside {
        ui.horizontal_top(|ui| {
            metrics_ui(ui);
            // Space, not a separator: a vertical separator would stretch the row to the
            // panel's whole height.
            ui.add_space(24.0);
            confusion_block(ui);
        });
    } else {
        metrics_ui(ui);
        if has_confusion {
            ui.add_space(8.0);
            confusion_block(ui);
        }
    }
    if clicked.is_some() {
        app.mistakes.cell = clicked;
    }
    if images && entry.confusion.is_some() {
        ui.separator();
        if app.mistakes.cell.is_some() && !app.mistakes_shown_for(&run, epoch) {
            // A clicked cell asks for its images: evaluate without waiting for the button.
            app.request_mistakes(ui.ctx(), &run, epoch);
        }
        super::mistakes::mistakes_ui(app, ui, &run, epoch, &classes);
    }
    ui.separator();
    super::versions::lineage_ui(app, ui, &run, epoch);
    if app.export.path.is_empty() {
        let base = dirs::document_dir()
            .or_else(dirs::home_dir)
            .unwrap_or_else(|| PathBuf::from("."));
        app.export.path = base
            .join("kiln-models")
            .join(format!("{}-epoch{epoch}.bpk", sanitize(&name)))
            .display()
            .to_string();
    }
    ui.horizontal(|ui| {
        if ui
            .add_enabled(!app.export.is_pending(), egui::Button::new("Export…"))
            .on_hover_text("Choose where in a file dialog")
            .clicked()
        {
            app.push(Command::Dialog(DialogKind::SaveBundle));
        }
        let label = ui.label("or to");
        ui.add(egui::TextEdit::singleline(&mut app.export.path).desired_width(360.0))
            .labelled_by(label.id);
        if ui
            .add_enabled(!app.export.is_pending(), egui::Button::new("Export"))
            .clicked()
        {
            let path = PathBuf::from(app.export.path.trim());
            app.push(Command::Export { path, force: false });
        }
        if app.export.is_pending() {
            ui.spinner();
        }
    });
    if let Some(((_, _), card)) = app
        .export
        .promoted
        .as_ref()
        .filter(|(checkpoint, _)| *checkpoint == (run.clone(), epoch))
    {
        ui.strong(format!(
            "The winner of sweep {}: trial {} (rank 1 of {}), {} {:.4}; the card will say so.",
            card.sweep_name, card.trial, card.trials, card.metric, card.value
        ));
    }
    test_split_ui(app, ui, &run, epoch);
    // Which files this model gets, said before exporting (and again after it).
    let formats = match app.cache.record(&run) {
        Some(record) => ExportFormats::for_model(&record.model),
        None => ExportFormats { onnx_missing: None },
    };
    ui.weak(format!(
        "Writes the {} with golden vectors.",
        formats.written()
    ));
    if let Some(reason) = &formats.onnx_missing {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!("⚠ No ONNX file for this model: {reason}."),
        );
    }
    if let Some(done) = &app.export.last
        && done.checkpoint == (run.clone(), epoch)
    {
        ui.label(format!(
            "Exported: {} ({})",
            done.paths.card.display(),
            done.formats.written()
        ));
        if let Some(reason) = &done.formats.onnx_missing {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("ONNX was not written: {reason}."),
            );
        }
        if ui.button("Open this model").clicked() {
            app.push(Command::OpenModel(done.paths.card.clone()));
        }
    }
    if let Some(path) = app.export.confirm_overwrite.clone() {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!("{} exists already.", path.display()),
        );
        ui.horizontal(|ui| {
            if ui.button("Overwrite").clicked() {
                app.export.confirm_overwrite = None;
                app.push(Command::Export {
                    path: path.clone(),
                    force: true,
                });
            }
            if ui.button("Cancel").clicked() {
                app.export.confirm_overwrite = None;
            }
        });
    }
}

/// The run's test split: whether the export scores it, and the result once measured (shown
/// apart from the validation metrics, which selection used).
fn test_split_ui(app: &mut KilnApp, ui: &mut egui::Ui, run: &str, epoch: usize) {
    let Some(record) = app.cache.record(run) else {
        return;
    };
    if record.data.test.is_none() {
        return;
    }
    let result = record.test.clone().filter(|result| result.epoch == epoch);
    ui.checkbox(
        &mut app.export.evaluate_test,
        "Score this checkpoint on the held-out test split when exporting",
    )
    .on_hover_text(
        "The test rows were never used for training or choosing; look at them once, at the end",
    );
    if let Some(result) = result {
        let metrics: Vec<String> = result
            .metrics
            .iter()
            .map(|(name, value)| {
                if name.ends_with("accuracy") {
                    format!("{name} {:.2}%", value * 100.0)
                } else {
                    format!("{name} {value:.4}")
                }
            })
            .collect();
        ui.strong(format!(
            "Test split (held out): {} on {} rows",
            metrics.join(", "),
            result.rows
        ));
    }
}

/// Quick selection of each shown run's best checkpoint.
fn best_shortcuts_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    let mut choices = Vec::new();
    for id in &app.settings.selected_runs {
        if let Some(best) = app.cache.curves(id).and_then(|c| c.index.best()) {
            choices.push((id.clone(), best.epoch));
        }
    }
    for (id, epoch) in choices {
        if ui
            .button(format!(
                "Select the best checkpoint of {} (epoch {epoch})",
                app.identity_name(&id)
            ))
            .clicked()
        {
            app.push(Command::SelectCheckpoint { run: id, epoch });
        }
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// While a classifier trains: the confusion matrix of its latest validation epoch.
fn live_confusion_ui(app: &KilnApp, ui: &mut egui::Ui) {
    let Some(training) = &app.training else {
        return;
    };
    let Some(metrics) = &training.last_epoch else {
        return;
    };
    let Some(confusion) = &metrics.confusion else {
        return;
    };
    let record = training
        .run_id
        .as_deref()
        .and_then(|id| app.cache.record(id));
    let classes = match record {
        Some(record) => record.schema.target.classes.clone(),
        None => (0..confusion.len())
            .map(|class| class.to_string())
            .collect(),
    };
    ui.separator();
    ui.strong(format!(
        "{} · epoch {} (latest){}",
        training.run_name,
        metrics.epoch,
        if training.finished.is_none() {
            ", updating as it trains"
        } else {
            ""
        }
    ));
    // Cells only narrow a checkpoint's mistakes; there is no checkpoint selected here.
    let _ = super::confusion::confusion_ui(ui, &classes, confusion);
}

/// The confusion matrix of the selected checkpoint, or of any other validation epoch logged.
fn epoch_confusion_ui(
    ui: &mut egui::Ui,
    chosen: &mut Option<usize>,
    checkpoint_epoch: usize,
    by_epoch: &std::collections::BTreeMap<usize, Vec<Vec<u64>>>,
    checkpoint_confusion: Option<&Vec<Vec<u64>>>,
    classes: &[String],
) -> Option<(usize, usize)> {
    let (Some(&first), Some(&last)) = (by_epoch.keys().next(), by_epoch.keys().next_back()) else {
        return checkpoint_confusion
            .and_then(|confusion| super::confusion::confusion_ui(ui, classes, confusion));
    };
    let mut epoch = chosen.unwrap_or(checkpoint_epoch).clamp(first, last);
    ui.horizontal(|ui| {
        let label = ui.label("Epoch");
        if ui
            .add(egui::Slider::new(&mut epoch, first..=last).integer())
            .labelled_by(label.id)
            .on_hover_text("Every validation epoch's confusion matrix is kept")
            .changed()
        {
            *chosen = Some(epoch);
        }
        if epoch != checkpoint_epoch && ui.button("Back to the checkpoint").clicked() {
            *chosen = None;
            epoch = checkpoint_epoch;
        }
    });
    let confusion = by_epoch
        .get(&epoch)
        .or(checkpoint_confusion.filter(|_| epoch == checkpoint_epoch));
    match confusion {
        Some(confusion) => super::confusion::confusion_ui(ui, classes, confusion),
        None => {
            ui.label(format!("No confusion matrix was logged for epoch {epoch}."));
            None
        }
    }
}
