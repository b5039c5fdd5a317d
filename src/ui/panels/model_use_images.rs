//! Predicting with an image model: an image or a folder in, a table of classes out.

use std::path::PathBuf;

use egui_extras::{Column, TableBuilder};

use crate::export::{ImagePredictionReport, ModelCard};
use crate::ui::app::{Command, KilnApp};
use crate::ui::dialogs::DialogKind;

/// Images listed in the results table.
const SHOWN_IMAGES: usize = 500;

pub fn image_predict_ui(app: &mut KilnApp, ui: &mut egui::Ui, card: &ModelCard) {
    if let Some(image) = &card.preprocessor.image {
        ui.weak(format!(
            "takes {} images (others are resized and converted to match)",
            image.shape
        ));
    }
    ui.horizontal(|ui| {
        let label = ui.label("Predict on an image or folder:");
        ui.add(
            egui::TextEdit::singleline(&mut app.model_use.csv_path)
                .hint_text("photo.png or a folder")
                .desired_width(260.0),
        )
        .labelled_by(label.id);
        if ui.button("Predict").clicked() {
            let path = PathBuf::from(app.model_use.csv_path.trim());
            app.push(Command::PredictFile(path));
        }
        if ui.button("Image…").clicked() {
            app.push(Command::Dialog(DialogKind::PredictImage));
        }
        if ui.button("Folder…").clicked() {
            app.push(Command::Dialog(DialogKind::PredictFolder));
        }
    });
    super::model_use::save_predictions_ui(app, ui);
    if let Some(report) = &app.model_use.image_report {
        report_ui(ui, card, report);
    }
}

fn report_ui(ui: &mut egui::Ui, card: &ModelCard, report: &ImagePredictionReport) {
    for warning in &report.drift {
        ui.colored_label(ui.visuals().warn_fg_color, format!("⚠ drift: {warning}"));
    }
    let mut summary = format!("{} images", report.images.len());
    if report.unreadable() > 0 {
        summary.push_str(&format!(", {} unreadable", report.unreadable()));
    }
    if let Some((accuracy, count)) = report.accuracy() {
        summary.push_str(&format!(
            " · {:.1}% right on the {count} in class-named folders",
            accuracy * 100.0
        ));
    }
    if report.images.len() > SHOWN_IMAGES {
        summary.push_str(&format!(" (first {SHOWN_IMAGES} shown)"));
    }
    ui.label(summary);
    let classes = &card.schema.target.classes;
    TableBuilder::new(ui)
        .id_salt("image_predictions")
        .striped(true)
        .column(Column::auto().at_least(160.0).clip(true))
        .column(Column::auto().at_least(60.0))
        .column(Column::auto().at_least(110.0))
        .columns(Column::auto().at_least(52.0), classes.len())
        .header(20.0, |mut header| {
            for title in ["file", "actual", "prediction"] {
                header.col(|ui| {
                    ui.strong(title);
                });
            }
            for class in classes {
                header.col(|ui| {
                    ui.strong(format!("p({class})"));
                });
            }
        })
        .body(|body| {
            body.rows(18.0, report.images.len().min(SHOWN_IMAGES), |mut row| {
                let image = &report.images[row.index()];
                row.col(|ui| {
                    let name = image
                        .file
                        .file_name()
                        .map(|name| name.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    ui.label(name)
                        .on_hover_text(image.file.display().to_string());
                });
                row.col(|ui| {
                    ui.label(image.actual.as_deref().unwrap_or("—"));
                });
                match &image.result {
                    Ok(prediction) => {
                        row.col(|ui| {
                            let text = super::model_use::describe(prediction);
                            let wrong = image.actual.is_some() && image.actual != prediction.class;
                            if wrong {
                                ui.colored_label(ui.visuals().warn_fg_color, text);
                            } else {
                                ui.label(text);
                            }
                        });
                        for p in &prediction.probabilities {
                            row.col(|ui| {
                                ui.monospace(format!("{p:.3}"));
                            });
                        }
                    }
                    Err(reason) => {
                        row.col(|ui| {
                            ui.colored_label(ui.visuals().error_fg_color, "unreadable")
                                .on_hover_text(reason);
                        });
                    }
                }
            });
        });
}
