//! The desktop app: a thin eframe shell over the engine and the run store.

mod app;
mod cache;
mod commands;
pub mod dialogs;
mod identity;
mod layout;
mod panels;
mod plot;
mod promise;
mod series;
mod settings;
mod status;
mod widgets;

pub use app::{AppOptions, KilnApp};
pub use cache::RunCurves;
pub use identity::RunColors;
pub use panels::{BenchPlan, DevicesPanel, TargetsPanel};
pub use plot::{
    PlotGroup, PlotOutcome, PlotRun, PlotSettings, XAxis, curves_ui, debiased_ema, run_color,
};
pub use series::{MAX_DRAWN_POINTS, decimate};
pub use settings::{ModelKind, Settings};

/// Opens the main window; returns when it is closed.
pub fn run_app(options: AppOptions) -> eframe::Result {
    let native_options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Kiln")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size(layout::MIN_WINDOW)
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "Kiln",
        native_options,
        Box::new(move |creation| Ok(Box::new(KilnApp::new(creation, options)))),
    )
}
