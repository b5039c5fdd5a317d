//! The model form: MLP (tables or flattened pixels) or CNN (images), with a live summary.

use crate::model::{Activation, CnnConfig, ConvBlock, MAX_KERNEL_SIZE, MlpConfig};
use crate::ui::app::KilnApp;
use crate::ui::settings::ModelKind;

pub fn model_form_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    let images = app
        .data
        .loaded
        .as_ref()
        .is_some_and(|(_, prepared)| prepared.images().is_some());
    ui.horizontal(|ui| {
        let label = ui.label("Model");
        ui.selectable_value(&mut app.settings.model_kind, ModelKind::Mlp, "MLP")
            .labelled_by(label.id)
            .on_hover_text("Dense layers; on images it sees the pixels flattened");
        ui.add_enabled_ui(images, |ui| {
            ui.selectable_value(&mut app.settings.model_kind, ModelKind::Cnn, "CNN")
                .on_hover_text("Convolution blocks, then a dense head")
                .on_disabled_hover_text("A CNN needs an image dataset");
        });
    });
    match app.settings.model_kind {
        ModelKind::Mlp => mlp_form_ui(&mut app.settings.model, ui),
        ModelKind::Cnn => cnn_form_ui(&mut app.settings.cnn, ui),
    }
    if let Some((_, prepared)) = &app.data.loaded {
        let config = app.settings.model_config();
        let (input, outputs) = (prepared.preprocessor.input_shape(), prepared.output_width());
        ui.weak(format!(
            "{} · {} parameters",
            config.describe(&input, outputs),
            config.parameter_count(&input, outputs)
        ));
    }
}

/// A row of layer widths with × to remove one and + to add one.
fn widths_ui(ui: &mut egui::Ui, widths: &mut Vec<usize>, label: egui::Id, default: usize) {
    ui.horizontal_wrapped(|ui| {
        let mut remove = None;
        for (index, width) in widths.iter_mut().enumerate() {
            ui.add(egui::DragValue::new(width).range(1..=4096).speed(1.0))
                .labelled_by(label);
            if ui
                .small_button("×")
                .on_hover_text("Remove this layer")
                .clicked()
            {
                remove = Some(index);
            }
        }
        if let Some(index) = remove {
            widths.remove(index);
        }
        if ui.small_button("+").on_hover_text("Add a layer").clicked() {
            widths.push(widths.last().copied().unwrap_or(default));
        }
    });
}

fn mlp_form_ui(model: &mut MlpConfig, ui: &mut egui::Ui) {
    egui::Grid::new("model_grid")
        .num_columns(2)
        .spacing([8.0, 4.0])
        .show(ui, |ui| {
            let label = ui.label("Hidden layers");
            widths_ui(ui, &mut model.hidden, label.id, 64);
            ui.end_row();
            ui.label("Activation");
            ui.horizontal(|ui| {
                for activation in Activation::ALL {
                    ui.selectable_value(&mut model.activation, activation, activation.name());
                }
            });
            ui.end_row();
            let label = ui.label("Dropout");
            ui.add(egui::Slider::new(&mut model.dropout, 0.0..=0.9).step_by(0.05))
                .labelled_by(label.id);
            ui.end_row();
        });
}

fn cnn_form_ui(cnn: &mut CnnConfig, ui: &mut egui::Ui) {
    egui::Grid::new("cnn_grid")
        .num_columns(2)
        .spacing([8.0, 4.0])
        .show(ui, |ui| {
            let mut remove = None;
            for (index, block) in cnn.blocks.iter_mut().enumerate() {
                let label = ui.label(format!("Conv {}", index + 1));
                ui.horizontal(|ui| {
                    ui.add(
                        egui::DragValue::new(&mut block.channels)
                            .range(1..=512)
                            .suffix(" ch"),
                    )
                    .labelled_by(label.id)
                    .on_hover_text("Output channels");
                    let kernel = ui.label("k");
                    let mut size = block.kernel_size;
                    if ui
                        .add(egui::DragValue::new(&mut size).range(1..=MAX_KERNEL_SIZE))
                        .labelled_by(kernel.id)
                        .on_hover_text("Kernel size (odd)")
                        .changed()
                    {
                        // Keep kernels odd so a block keeps its input's size.
                        block.kernel_size = if size % 2 == 0 {
                            if size > block.kernel_size {
                                size + 1
                            } else {
                                size - 1
                            }
                        } else {
                            size
                        }
                        .clamp(1, MAX_KERNEL_SIZE);
                    }
                    ui.checkbox(&mut block.pool, "pool")
                        .on_hover_text("2×2 max-pool after this block (halves the size)");
                    if ui
                        .small_button("×")
                        .on_hover_text("Remove this block")
                        .clicked()
                    {
                        remove = Some(index);
                    }
                });
                ui.end_row();
            }
            if let Some(index) = remove {
                cnn.blocks.remove(index);
            }
            ui.label("");
            if ui.small_button("+ conv block").clicked() {
                let last = cnn.blocks.last().copied().unwrap_or(ConvBlock {
                    channels: 8,
                    kernel_size: 3,
                    pool: true,
                });
                cnn.blocks.push(ConvBlock {
                    channels: (last.channels * 2).min(512),
                    ..last
                });
            }
            ui.end_row();
            ui.label("Batch-norm");
            ui.checkbox(&mut cnn.batch_norm, "after each convolution");
            ui.end_row();
            let label = ui.label("Dense head");
            widths_ui(ui, &mut cnn.dense, label.id, 64);
            ui.end_row();
            let label = ui.label("Dropout");
            ui.add(egui::Slider::new(&mut cnn.dropout, 0.0..=0.9).step_by(0.05))
                .labelled_by(label.id)
                .on_hover_text("Before each dense layer, during training");
            ui.end_row();
        });
}
