//! The training form: optimiser, learning rate and schedule, batches, epochs, early stopping and
//! device. Values are kept as typed; what is wrong with one is said where it is typed.

use crate::train::{
    DeviceChoice, LrSchedule, OptimizerConfig, TrainConfig, check_learning_rate, check_momentum,
    check_weight_decay, learning_rate_warning,
};
use crate::ui::app::KilnApp;
use crate::ui::widgets::{FieldIssue, checked_number};

fn learning_rate_issue(rate: f64) -> Option<FieldIssue> {
    FieldIssue::from_result(check_learning_rate(rate))
        .or_else(|| learning_rate_warning(rate).map(FieldIssue::Warning))
}

fn at_least_one(what: &'static str) -> impl Fn(usize) -> Option<FieldIssue> {
    move |value| (value == 0).then(|| FieldIssue::Error(format!("{what} must be at least 1")))
}

pub fn training_form_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    let train = &mut app.settings.train;
    egui::Grid::new("train_grid")
        .num_columns(2)
        .spacing([8.0, 4.0])
        .show(ui, |ui| {
            optimizer_rows(ui, train);
            let label = ui.label("Learning rate");
            checked_number(
                ui,
                &mut train.learning_rate,
                0.0005,
                label.id,
                learning_rate_issue,
            );
            ui.end_row();
            schedule_rows(ui, train);
            let label = ui.label("Batch size");
            checked_number(
                ui,
                &mut train.batch_size,
                1.0,
                label.id,
                at_least_one("the batch size"),
            );
            ui.end_row();
            let label = ui.label("Epochs");
            checked_number(
                ui,
                &mut train.epochs,
                1.0,
                label.id,
                at_least_one("training"),
            );
            ui.end_row();
            let label = ui.label("Seed");
            ui.add(egui::DragValue::new(&mut train.seed))
                .labelled_by(label.id);
            ui.end_row();
            ui.label("Early stopping");
            ui.horizontal(|ui| {
                let mut enabled = train.early_stopping_patience.is_some();
                let toggle = ui.checkbox(&mut enabled, "patience");
                if toggle.changed() {
                    train.early_stopping_patience = enabled.then_some(10);
                }
                if let Some(patience) = &mut train.early_stopping_patience {
                    checked_number(ui, patience, 1.0, toggle.id, at_least_one("patience"));
                    ui.label("epochs");
                }
            });
            ui.end_row();
            ui.label("Device");
            ui.horizontal(|ui| {
                for choice in DeviceChoice::ALL {
                    ui.selectable_value(&mut app.settings.device, choice, choice.name());
                }
            });
            ui.end_row();
        });
    adapters_ui(app, ui);
}

fn optimizer_rows(ui: &mut egui::Ui, train: &mut TrainConfig) {
    ui.label("Optimizer");
    ui.horizontal(|ui| {
        let current = train.optimizer.name();
        for (name, value) in [
            ("sgd", OptimizerConfig::Sgd { momentum: 0.9 }),
            ("adam", OptimizerConfig::Adam),
            ("adamw", OptimizerConfig::AdamW { weight_decay: 0.01 }),
        ] {
            if ui.selectable_label(current == name, name).clicked() && current != name {
                train.optimizer = value;
            }
        }
    });
    ui.end_row();
    match &mut train.optimizer {
        OptimizerConfig::Sgd { momentum } => {
            let label = ui.label("Momentum");
            checked_number(ui, momentum, 0.01, label.id, |value| {
                FieldIssue::from_result(check_momentum(value))
            });
            ui.end_row();
        }
        OptimizerConfig::AdamW { weight_decay } => {
            let label = ui.label("Weight decay");
            checked_number(ui, weight_decay, 0.001, label.id, |value| {
                FieldIssue::from_result(check_weight_decay(value))
            });
            ui.end_row();
        }
        OptimizerConfig::Adam => {}
    }
}

fn schedule_rows(ui: &mut egui::Ui, train: &mut TrainConfig) {
    ui.label("Schedule");
    ui.horizontal(|ui| {
        let current = train.schedule.name();
        for (name, value) in [
            ("constant", LrSchedule::Constant),
            ("cosine", LrSchedule::Cosine { min_factor: 0.0 }),
            (
                "step",
                LrSchedule::Step {
                    every_epochs: 10,
                    gamma: 0.5,
                },
            ),
        ] {
            if ui.selectable_label(current == name, name).clicked() && current != name {
                train.schedule = value;
            }
        }
    });
    ui.end_row();
    if let LrSchedule::Step {
        every_epochs,
        gamma,
    } = &mut train.schedule
    {
        let label = ui.label("Step every");
        ui.horizontal(|ui| {
            checked_number(
                ui,
                every_epochs,
                1.0,
                label.id,
                at_least_one("the step interval"),
            );
            ui.label("epochs, ×");
            checked_number(ui, gamma, 0.01, label.id, |gamma| {
                (!(gamma > 0.0 && gamma <= 1.0)).then(|| {
                    FieldIssue::Error(
                        "the factor must be above 0 and at most 1 (the rate only decays)"
                            .to_string(),
                    )
                })
            });
        });
        ui.end_row();
    }
}

fn adapters_ui(app: &KilnApp, ui: &mut egui::Ui) {
    match &app.detected_adapters {
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.weak("Looking for GPUs…");
            });
        }
        Some(adapters) if adapters.is_empty() => {
            ui.weak("No wgpu adapter found: training runs on the CPU.");
        }
        Some(adapters) => {
            for adapter in adapters {
                ui.weak(format!(
                    "wgpu: {} ({}{})",
                    adapter.name,
                    adapter.backend,
                    if adapter.software {
                        ", software — auto uses the CPU"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
}

/// Problems with the form that would make Train fail, listed beside the Train button.
pub fn form_problems(app: &KilnApp) -> Vec<String> {
    let mut problems = Vec::new();
    if app.data.loaded.is_none() {
        problems.push("Load a dataset first.".to_string());
    }
    let input = app
        .data
        .loaded
        .as_ref()
        .map(|(_, prepared)| prepared.preprocessor.input_shape());
    let checked = match &input {
        Some(input) => app.settings.model_config().validate_for(input),
        None => app.settings.model_config().validate(),
    };
    if let Err(error) = checked {
        problems.push(error.to_string());
    }
    if let Err(error) = app.settings.train.validate() {
        problems.push(error.to_string());
    }
    problems
}
