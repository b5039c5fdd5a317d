//! The panels of the window, one file each; they read app state and push [`Command`]s.

mod analysis;
mod compare;
mod confusion;
mod data;
mod data_columns;
mod devices;
mod export;
mod mistakes;
mod model_form;
mod model_use;
mod model_use_images;
mod run_menu;
mod runs;
mod sweep;
mod targets;
mod thumbnails;
mod training;
mod training_form;
mod versions;

pub use analysis::AnalysisPanel;
pub use compare::compare_ui;
pub use data::{DataState, data_preview_ui};
pub use devices::{BenchPlan, DevicesPanel};
pub use export::{ExportState, checkpoint_ui};
pub use mistakes::MistakesState;
pub use model_use::{ModelUseState, model_use_ui};
pub use runs::{RunsPanel, RunsView};
pub use sweep::{SweepContext, SweepPanel, SweepUpdate};
pub use targets::TargetsPanel;
pub use training::LiveTraining;
pub use versions::{VersionsState, WarmFrom};

use crate::ui::app::KilnApp;
use crate::ui::plot::{PlotSettings, XAxis};

/// The left column: data, model, training, Train/Stop.
pub fn setup_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    egui::CollapsingHeader::new(egui::RichText::new("Data").heading())
        .default_open(true)
        .show(ui, |ui| data::data_form_ui(app, ui));
    egui::CollapsingHeader::new(egui::RichText::new("Model").heading())
        .default_open(true)
        .show(ui, |ui| model_form::model_form_ui(app, ui));
    egui::CollapsingHeader::new(egui::RichText::new("Training").heading())
        .default_open(true)
        .show(ui, |ui| training_form::training_form_ui(app, ui));
    let runs_dir = app.cache.runs_dir.clone();
    egui::CollapsingHeader::new(egui::RichText::new("Targets").heading())
        .default_open(false)
        .show(ui, |ui| app.targets.ui(ui, &runs_dir));
}

pub use training::train_controls_ui;

/// The plot's toolbar, compact enough for one line beside the setup column at 1024 px.
pub fn plot_controls_ui(ui: &mut egui::Ui, settings: &mut PlotSettings) {
    ui.horizontal_wrapped(|ui| {
        let label = ui.label("Metric");
        egui::ComboBox::from_id_salt("plot_metric")
            .selected_text(settings.metric.as_str())
            .width(96.0)
            .show_ui(ui, |ui| {
                for metric in [
                    "loss",
                    "accuracy",
                    "precision",
                    "recall",
                    "rmse",
                    "batch_loss",
                ] {
                    ui.selectable_value(&mut settings.metric, metric.to_string(), metric);
                }
            })
            .response
            .labelled_by(label.id);
        let label = ui.label("x");
        egui::ComboBox::from_id_salt("plot_x_axis")
            .selected_text(settings.x_axis.label())
            .width(96.0)
            .show_ui(ui, |ui| {
                for axis in XAxis::ALL {
                    ui.selectable_value(&mut settings.x_axis, axis, axis.label());
                }
            })
            .response
            .labelled_by(label.id);
        ui.checkbox(&mut settings.log_y, "log y");
        ui.checkbox(&mut settings.group_seeds, "group seeds")
            .on_hover_text("Runs that differ only in their seed: one mean line with a band");
        if settings.group_seeds {
            egui::ComboBox::from_id_salt("plot_band")
                .selected_text(settings.band.name())
                .width(70.0)
                .show_ui(ui, |ui| {
                    for band in crate::analysis::BandKind::ALL {
                        ui.selectable_value(&mut settings.band, band, band.name());
                    }
                });
            ui.checkbox(&mut settings.show_members, "members");
        }
        let label = ui.label("Smoothing");
        ui.spacing_mut().slider_width = 90.0;
        ui.add(egui::Slider::new(&mut settings.smoothing, 0.0..=0.99).fixed_decimals(2))
            .labelled_by(label.id);
    });
}
