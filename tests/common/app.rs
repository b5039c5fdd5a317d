//! Driving the real window through egui_kittest: build it on a store, step frames until a
//! condition holds, and make runs with the engine directly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use kiln::data::DataSpec;
use kiln::model::{MlpConfig, ModelConfig};
use kiln::train::{DeviceChoice, TrainConfig, TrainRequest, start};
use kiln::ui::dialogs::FileDialogs;
use kiln::ui::{AppOptions, KilnApp};

use super::sample;

/// The window on `runs_dir`, with `data` loaded first, training on the CPU.
pub fn app_on(
    runs_dir: &Path,
    dialogs: impl FileDialogs + 'static,
    data: PathBuf,
    size: [f32; 2],
) -> Harness<'static, KilnApp> {
    let runs_dir = runs_dir.to_path_buf();
    let dialogs: Arc<dyn FileDialogs> = Arc::new(dialogs);
    Harness::builder().with_size(size).build_eframe(move |cc| {
        let mut app = KilnApp::new(
            cc,
            AppOptions {
                // No targets unless a test writes this file (never the user's own).
                targets_file: Some(runs_dir.join(".targets.toml")),
                runs_dir,
                initial_data: Some(data),
                dialogs,
                persist: false,
            },
        );
        app.settings_mut().device = DeviceChoice::Cpu;
        app
    })
}

/// Steps frames (letting background threads work) until `done` holds.
pub fn step_until(
    harness: &mut Harness<'static, KilnApp>,
    what: &str,
    done: impl Fn(&KilnApp) -> bool,
) {
    let start = Instant::now();
    while !done(harness.state()) {
        let app = harness.state();
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}: selected {:?}, plot {:?}, messages {:?}",
            app.selected_runs(),
            app.last_plot(),
            app.messages()
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.step();
}

/// Trains an 8-epoch iris run with the engine (as the CLI would) and returns its id.
pub fn train_run(runs_dir: &Path, name: &str, learning_rate: f64) -> String {
    train_with(
        runs_dir,
        name,
        ModelConfig::Mlp(MlpConfig::default()),
        TrainConfig {
            epochs: 8,
            learning_rate,
            batch_size: 16,
            ..TrainConfig::default()
        },
    )
}

pub fn train_with(runs_dir: &Path, name: &str, model: ModelConfig, train: TrainConfig) -> String {
    let handle = start(
        TrainRequest {
            data: DataSpec::new(sample("iris.csv")),
            model,
            train,
            device: DeviceChoice::Cpu,
            name: Some(name.to_string()),
            runs_dir: runs_dir.to_path_buf(),
        },
        None,
    )
    .expect("starts");
    let id = handle.run_id.clone();
    handle.wait();
    id
}
