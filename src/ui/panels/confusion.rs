//! The confusion matrix of a checkpoint as a heat map, with per-class precision and recall.

use egui::{Color32, Sense, vec2};

use crate::runs::class_report;

const CELL: egui::Vec2 = egui::Vec2::new(56.0, 26.0);
/// Cells for many classes, so a 10-class matrix fits beside the checkpoint's metrics.
const SMALL_CELL: egui::Vec2 = egui::Vec2::new(38.0, 22.0);

/// Draws `confusion[actual][predicted]` with class names on both axes; counts show on hover.
/// Returns the `(actual, predicted)` cell clicked this frame.
pub fn confusion_ui(
    ui: &mut egui::Ui,
    classes: &[String],
    confusion: &[Vec<u64>],
) -> Option<(usize, usize)> {
    ui.label("Confusion matrix (rows: actual class, columns: predicted), validation split");
    if crate::ui::layout::fits_side_by_side(ui, matrix_width(classes.len()), REPORT_WIDTH) {
        ui.horizontal_top(|ui| {
            let clicked = matrix_ui(ui, classes, confusion);
            ui.add_space(12.0);
            report_ui(ui, classes, confusion);
            clicked
        })
        .inner
    } else {
        let clicked = matrix_ui(ui, classes, confusion);
        ui.add_space(8.0);
        report_ui(ui, classes, confusion);
        clicked
    }
}

/// The per-class report's width, roughly.
const REPORT_WIDTH: f32 = 260.0;

fn cell_size(classes: usize) -> egui::Vec2 {
    if classes > 6 { SMALL_CELL } else { CELL }
}

fn matrix_width(classes: usize) -> f32 {
    (classes as f32 + 1.0) * (cell_size(classes).x + 2.0)
}

/// The width the matrix and its report take side by side.
pub fn needed_width(classes: usize) -> f32 {
    matrix_width(classes) + REPORT_WIDTH
}

fn matrix_ui(
    ui: &mut egui::Ui,
    classes: &[String],
    confusion: &[Vec<u64>],
) -> Option<(usize, usize)> {
    let mut clicked = None;
    let accent = Color32::from_rgb(0x4e, 0x9a, 0xf1);
    let cell = cell_size(classes.len());
    egui::Grid::new("confusion_grid")
        .spacing(vec2(2.0, 2.0))
        .show(ui, |ui| {
            ui.label("");
            for class in classes {
                ui.add_sized(
                    cell,
                    egui::Label::new(egui::RichText::new(class).small()).truncate(),
                );
            }
            ui.end_row();
            for (actual, row) in confusion.iter().enumerate() {
                let total: u64 = row.iter().sum::<u64>().max(1);
                ui.add_sized(
                    cell,
                    egui::Label::new(classes.get(actual).map_or("?", String::as_str)).truncate(),
                );
                for (predicted, &count) in row.iter().enumerate() {
                    let share = count as f32 / total as f32;
                    let (rect, response) = ui.allocate_exact_size(cell, Sense::click());
                    let fill = if count == 0 {
                        ui.visuals().faint_bg_color
                    } else {
                        accent.gamma_multiply(0.15 + 0.85 * share)
                    };
                    ui.painter().rect_filled(rect, 3.0, fill);
                    ui.painter().text(
                        rect.center(),
                        egui::Align2::CENTER_CENTER,
                        count.to_string(),
                        egui::FontId::proportional(13.0),
                        if share > 0.5 {
                            Color32::WHITE
                        } else {
                            ui.visuals().text_color()
                        },
                    );
                    if response.clicked() {
                        clicked = Some((actual, predicted));
                    }
                    response.on_hover_text(format!(
                        "actual {}, predicted {}: {count} of {total} ({:.1}%)",
                        classes.get(actual).map_or("?", String::as_str),
                        classes.get(predicted).map_or("?", String::as_str),
                        share * 100.0
                    ));
                }
                ui.end_row();
            }
        });
    clicked
}

/// Precision, recall and support per class.
fn report_ui(ui: &mut egui::Ui, classes: &[String], confusion: &[Vec<u64>]) {
    egui::Grid::new("class_report")
        .striped(true)
        .num_columns(4)
        .show(ui, |ui| {
            for title in ["class", "precision", "recall", "rows"] {
                ui.strong(title);
            }
            ui.end_row();
            let percent = |value: Option<f64>| {
                value.map_or("—".to_string(), |v| format!("{:.1}%", v * 100.0))
            };
            for metrics in class_report(confusion) {
                ui.label(classes.get(metrics.class).map_or("?", String::as_str));
                ui.monospace(percent(metrics.precision));
                ui.monospace(percent(metrics.recall));
                ui.monospace(metrics.support.to_string());
                ui.end_row();
            }
        });
}
