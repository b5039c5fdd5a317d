//! Using an exported model: open a bundle, read its card, predict on a CSV or a typed row, or
//! (image models) on an image file or a folder of images.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use egui_extras::{Column, TableBuilder};

use crate::data::ColumnTransform;
use crate::export::{
    ImagePredictionReport, LoadedModel, Prediction, PredictionReport, image_predictions_to_csv,
    predict_csv, predict_images, predictions_to_csv,
};
use crate::ui::app::{Command, KilnApp};
use crate::ui::dialogs::DialogKind;
use crate::ui::promise::Task;

/// Prediction rows shown in the table.
const SHOWN_PREDICTIONS: usize = 200;

#[derive(Default)]
pub struct ModelUseState {
    pub path: String,
    pub csv_path: String,
    pub model: Option<Arc<LoadedModel>>,
    pub report: Option<PredictionReport>,
    pub image_report: Option<ImagePredictionReport>,
    pub row: BTreeMap<String, String>,
    pub row_result: Option<Result<Prediction, String>>,
    /// Why the last prediction on a file failed; its earlier results are gone with it, so that
    /// nothing on screen (or saved) belongs to another file.
    pub predict_error: Option<String>,
    /// Where "Save predictions" writes (typed, or from the dialog).
    pub save_path: String,
    opening: Task<Result<LoadedModel, String>>,
    predicting: Task<Result<Predictions, String>>,
}

/// What a prediction task produced: rows of a CSV, or images.
pub enum Predictions {
    Table(PredictionReport),
    Images(ImagePredictionReport),
}

impl ModelUseState {
    pub fn is_pending(&self) -> bool {
        self.opening.is_pending() || self.predicting.is_pending()
    }
}

impl KilnApp {
    pub(crate) fn open_model(&mut self, ctx: &egui::Context, path: PathBuf) {
        self.model_use.path = path.display().to_string();
        self.settings.bottom_tab = crate::ui::settings::BottomTab::Model;
        self.model_use.opening.start(ctx, move || {
            LoadedModel::open(&path).map_err(|e| e.to_string())
        });
    }

    pub(crate) fn predict_file(&mut self, ctx: &egui::Context, path: PathBuf) {
        let Some(model) = self.model_use.model.clone() else {
            self.error("Open a model first.");
            return;
        };
        self.model_use.csv_path = path.display().to_string();
        self.model_use.predicting.start(ctx, move || {
            if model.takes_images() {
                predict_images(&model, &path).map(Predictions::Images)
            } else {
                predict_csv(&model, &path).map(Predictions::Table)
            }
            .map_err(|e| e.to_string())
        });
    }

    pub(crate) fn predict_typed_row(&mut self) {
        let Some(model) = &self.model_use.model else {
            return;
        };
        let cells: Vec<(String, String)> = model
            .card
            .preprocessor
            .columns
            .iter()
            .map(|column| {
                let name = column.name().to_string();
                let value = self.model_use.row.get(&name).cloned().unwrap_or_default();
                (name, value)
            })
            .collect();
        self.model_use.row_result = Some(model.predict_row(&cells).map_err(|e| e.to_string()));
    }

    pub(crate) fn poll_model_use(&mut self) {
        match self.model_use.opening.take() {
            Some(Ok(Ok(model))) => {
                self.info(format!("Opened {}", model.card_path.display()));
                self.model_use.row = first_golden_row(&model);
                self.model_use.model = Some(Arc::new(model));
                self.model_use.report = None;
                self.model_use.image_report = None;
                self.model_use.row_result = None;
                self.model_use.predict_error = None;
            }
            Some(Ok(Err(error))) => self.error(format!("Cannot open the model: {error}")),
            Some(Err(crashed)) => self.error(format!("Opening the model failed: {crashed}")),
            None => {}
        }
        match self.model_use.predicting.take() {
            Some(Ok(Ok(Predictions::Table(report)))) => {
                let mut message = format!("Predicted {} rows", report.predictions.len());
                if let Some(score) = &report.score {
                    message.push_str(&format!(": {score}"));
                }
                self.info(message);
                self.model_use.report = Some(report);
                self.model_use.image_report = None;
                self.model_use.predict_error = None;
            }
            Some(Ok(Ok(Predictions::Images(report)))) => {
                self.info(format!("Predicted {} images", report.images.len()));
                self.model_use.image_report = Some(report);
                self.model_use.report = None;
                self.model_use.predict_error = None;
            }
            Some(Ok(Err(error))) => self.prediction_failed(format!("Cannot predict: {error}")),
            Some(Err(crashed)) => self.prediction_failed(format!("Predicting failed: {crashed}")),
            None => {}
        }
    }

    fn prediction_failed(&mut self, message: String) {
        self.model_use.report = None;
        self.model_use.image_report = None;
        self.model_use.predict_error = Some(message.clone());
        self.error(message);
    }

    /// Writes the shown predictions as the CLI's `kiln predict --out` would.
    pub(crate) fn save_predictions(&mut self, path: PathBuf) {
        let Some(model) = &self.model_use.model else {
            self.error("Open a model and predict first.");
            return;
        };
        let csv = match (&self.model_use.report, &self.model_use.image_report) {
            (Some(report), _) => predictions_to_csv(&model.card, &report.predictions),
            (None, Some(report)) => image_predictions_to_csv(&model.card, report),
            (None, None) => {
                self.error("Predict on a file first; then its predictions can be saved.");
                return;
            }
        };
        self.model_use.save_path = path.display().to_string();
        match crate::runs::atomic::write_atomic(&path, csv.as_bytes()) {
            Ok(()) => self.info(format!("Saved the predictions to {}", path.display())),
            Err(error) => self.error(format!("Cannot save to {}: {error}", path.display())),
        }
    }
}

/// "Save predictions…" and a typed path, once there are predictions to save.
pub(super) fn save_predictions_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    if app.model_use.report.is_none() && app.model_use.image_report.is_none() {
        return;
    }
    ui.horizontal(|ui| {
        if ui.button("Save predictions…").clicked() {
            app.push(Command::Dialog(DialogKind::SavePredictions));
        }
        let label = ui.label("or to");
        ui.add(
            egui::TextEdit::singleline(&mut app.model_use.save_path)
                .hint_text("predictions.csv")
                .desired_width(260.0),
        )
        .labelled_by(label.id);
        if ui
            .add_enabled(
                !app.model_use.save_path.trim().is_empty(),
                egui::Button::new("Save"),
            )
            .clicked()
        {
            let path = PathBuf::from(app.model_use.save_path.trim());
            app.push(Command::SavePredictions(path));
        }
    });
}

/// Pre-fills the row form with a real row from the card, so Predict works at once.
fn first_golden_row(model: &LoadedModel) -> BTreeMap<String, String> {
    model.card.golden.raw.first().cloned().unwrap_or_default()
}

pub fn model_use_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        if ui.button("Open model…").clicked() {
            app.push(Command::Dialog(DialogKind::OpenModel));
        }
        let label = ui.label("or open");
        ui.add(
            egui::TextEdit::singleline(&mut app.model_use.path)
                .hint_text("bundle folder, .card.json or .bpk")
                .desired_width(360.0),
        )
        .labelled_by(label.id);
        if ui.button("Open").clicked() {
            let path = PathBuf::from(app.model_use.path.trim());
            app.push(Command::OpenModel(path));
        }
        if app.model_use.is_pending() {
            ui.spinner();
        }
    });
    let Some(model) = app.model_use.model.clone() else {
        ui.label("Open an exported model to see its card and predict with it.");
        return;
    };
    let card = &model.card;
    ui.separator();
    ui.label(
        egui::RichText::new(format!("{} · epoch {}", card.source_run_name, card.epoch)).strong(),
    );
    let inputs = match &card.preprocessor.image {
        Some(image) => format!("{} image", image.shape),
        None => format!("{} inputs", card.input_names.len()),
    };
    ui.label(format!(
        "{} · {} parameters · {inputs} → {}",
        card.description,
        card.parameters,
        match card.output_kind.as_str() {
            "probabilities" =>
                format!("probabilities of {}", card.schema.target.classes.join(", ")),
            _ => format!("{} (value)", card.schema.target.name),
        }
    ));
    ui.horizontal(|ui| {
        ui.weak(format!(
            "trained on {} (fingerprint {}), run {}",
            card.dataset.file_name,
            card.dataset.short_id(),
            card.source_run_id
        ));
        if ui
            .button("Train on new data…")
            .on_hover_text("A new run that starts from this model's weights; choose the new data in the Data section")
            .clicked()
        {
            app.settings.warm_from = Some(super::WarmFrom {
                source: model.card_path.display().to_string(),
                label: format!("the model {} (epoch {})", card.source_run_name, card.epoch),
                has_optimizer: false,
                refit_stats: false,
                keep_optimizer: false,
            });
            app.info("The form now starts from this model: choose the new data, then Train");
        }
    });
    if !card.lineage.is_empty() {
        ui.weak(format!(
            "version {} of this model; earlier: {}",
            card.lineage.len() + 1,
            card.lineage
                .iter()
                .map(|a| format!("{}@{}", a.run_name, a.epoch))
                .collect::<Vec<_>>()
                .join(" → ")
        ));
    }
    ui.separator();
    if let Some(error) = &app.model_use.predict_error {
        ui.colored_label(ui.visuals().error_fg_color, error);
    }
    if model.takes_images() {
        super::model_use_images::image_predict_ui(app, ui, card);
        return;
    }
    ui.horizontal(|ui| {
        let label = ui.label("Predict on a CSV:");
        ui.add(egui::TextEdit::singleline(&mut app.model_use.csv_path).desired_width(300.0))
            .labelled_by(label.id);
        if ui.button("Predict").clicked() {
            let path = PathBuf::from(app.model_use.csv_path.trim());
            app.push(Command::PredictFile(path));
        }
        if ui.button("Browse…").clicked() {
            app.push(Command::Dialog(DialogKind::PredictCsv));
        }
    });
    ui.collapsing("Predict one row", |ui| {
        egui::Grid::new("row_form").num_columns(2).show(ui, |ui| {
            for column in &card.preprocessor.columns {
                let value = app
                    .model_use
                    .row
                    .entry(column.name().to_string())
                    .or_default();
                let label = ui.label(column.name());
                match column {
                    ColumnTransform::OneHot { categories, .. } => {
                        egui::ComboBox::from_id_salt(column.name())
                            .selected_text(value.as_str())
                            .show_ui(ui, |ui| {
                                for category in categories {
                                    ui.selectable_value(value, category.clone(), category);
                                }
                            })
                            .response
                            .labelled_by(label.id);
                    }
                    ColumnTransform::Standardize { mean, .. } => {
                        ui.add(
                            egui::TextEdit::singleline(value)
                                .hint_text(format!("{mean:.3}"))
                                .desired_width(120.0),
                        )
                        .labelled_by(label.id);
                    }
                }
                ui.end_row();
            }
        });
        if ui.button("Predict row").clicked() {
            app.push(Command::PredictRow);
        }
        match &app.model_use.row_result {
            Some(Ok(prediction)) => {
                ui.label(egui::RichText::new(describe(prediction)).strong());
            }
            Some(Err(error)) => {
                ui.colored_label(ui.visuals().error_fg_color, error);
            }
            None => {}
        }
    });
    save_predictions_ui(app, ui);
    if let Some(report) = &app.model_use.report {
        for warning in &report.drift {
            ui.colored_label(ui.visuals().warn_fg_color, format!("⚠ drift: {warning}"));
        }
        if let Some(score) = &report.score {
            ui.strong(format!(
                "Against the file's '{}' column: {score}",
                card.schema.target.name
            ));
        }
        predictions_table(ui, card, report);
    }
}

pub(super) fn describe(prediction: &Prediction) -> String {
    match (&prediction.class, prediction.value) {
        (Some(class), _) => {
            let confidence = prediction.probabilities.iter().copied().fold(0.0, f64::max);
            format!("{class} ({:.1}%)", confidence * 100.0)
        }
        (None, Some(value)) => format!("{value:.4}"),
        _ => "—".to_string(),
    }
}

fn predictions_table(
    ui: &mut egui::Ui,
    card: &crate::export::ModelCard,
    report: &PredictionReport,
) {
    let classes = &card.schema.target.classes;
    ui.label(format!(
        "{} predictions{}",
        report.predictions.len(),
        if report.predictions.len() > SHOWN_PREDICTIONS {
            format!(" (first {SHOWN_PREDICTIONS} shown)")
        } else {
            String::new()
        }
    ));
    TableBuilder::new(ui)
        .id_salt("predictions")
        .striped(true)
        .column(Column::auto().at_least(40.0))
        .column(Column::auto().at_least(100.0))
        .columns(Column::auto().at_least(70.0), classes.len())
        .header(20.0, |mut header| {
            header.col(|ui| {
                ui.strong("row");
            });
            header.col(|ui| {
                ui.strong("prediction");
            });
            for class in classes {
                header.col(|ui| {
                    ui.strong(format!("p({class})"));
                });
            }
        })
        .body(|body| {
            body.rows(
                18.0,
                report.predictions.len().min(SHOWN_PREDICTIONS),
                |mut row| {
                    let index = row.index();
                    let prediction = &report.predictions[index];
                    row.col(|ui| {
                        ui.label((index + 1).to_string());
                    });
                    row.col(|ui| {
                        ui.label(describe(prediction));
                    });
                    for p in &prediction.probabilities {
                        row.col(|ui| {
                            ui.monospace(format!("{p:.4}"));
                        });
                    }
                },
            );
        });
}
