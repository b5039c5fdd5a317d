//! The model form: MLP (tables or flattened pixels) or CNN (images), with a live summary.

use crate::model::{
    Activation, CnnConfig, ConvBlock, MAX_CONV_CHANNELS, MAX_KERNEL_SIZE, MAX_LAYER_WIDTH,
    MlpConfig,
};
use crate::ui::app::KilnApp;
use crate::ui::settings::ModelKind;
use crate::ui::widgets::{FieldIssue, checked_number};

/// 1 to `max`, with why the limit is there.
fn count_issue(what: &'static str, max: usize) -> impl Fn(usize) -> Option<FieldIssue> {
    move |value| {
        (value == 0 || value > max).then(|| {
            FieldIssue::Error(format!(
                "{what} must be 1 to {max} (Kiln is made for small models; more is almost surely a typo)"
            ))
        })
    }
}

pub fn model_form_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    super::versions::warm_banner_ui(app, ui);
    // Starting from an earlier model, the architecture is that model's.
    let from_scratch = app.settings.warm_from.is_none();
    ui.add_enabled_ui(from_scratch, |ui| model_settings_ui(app, ui));
}

fn model_settings_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
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
            checked_number(
                ui,
                width,
                1.0,
                label,
                count_issue("a layer's width", MAX_LAYER_WIDTH),
            );
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
                    checked_number(
                        ui,
                        &mut block.channels,
                        1.0,
                        label.id,
                        count_issue("the channels", MAX_CONV_CHANNELS),
                    )
                    .on_hover_text("Output channels");
                    ui.label("ch, k");
                    // Odd sizes only: with same padding they keep the image's size.
                    egui::ComboBox::from_id_salt(("kernel", index))
                        .width(40.0)
                        .selected_text(block.kernel_size.to_string())
                        .show_ui(ui, |ui| {
                            for size in (1..=MAX_KERNEL_SIZE).step_by(2) {
                                ui.selectable_value(&mut block.kernel_size, size, size.to_string());
                            }
                        })
                        .response
                        .on_hover_text("Kernel size (odd, so the block keeps its input's size)");
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
                    channels: (last.channels * 2).min(MAX_CONV_CHANNELS),
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
