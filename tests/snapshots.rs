//! Snapshot tests of the main screens, rendered with wgpu (Mesa lavapipe where there is no GPU).
//! Regenerate after an intended change with `UPDATE_SNAPSHOTS=1 cargo test --release --test snapshots`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use kiln::ui::dialogs::ScriptedDialogs;
use kiln::ui::{AppOptions, KilnApp};

/// A fixed, empty store per test: the status bar shows its path, so it must not vary between runs.
fn harness(name: &str) -> Harness<'static, KilnApp> {
    harness_on(name, "sample_data/iris.csv")
}

fn harness_on(name: &str, data: &str) -> Harness<'static, KilnApp> {
    let store = PathBuf::from(format!("/tmp/kiln-snapshot-{name}"));
    let _ = std::fs::remove_dir_all(&store);
    // Relative (tests run in the package root): the path is shown, so it must not depend on the checkout.
    let data = PathBuf::from(data);
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .wgpu()
        .build_eframe(move |cc| {
            KilnApp::new(
                cc,
                AppOptions {
                    runs_dir: store,
                    initial_data: Some(data),
                    dialogs: Arc::new(ScriptedDialogs::default()),
                    persist: false,
                },
            )
        });
    let start = Instant::now();
    while !(harness.state().dataset_loaded() && harness.state().adapters_detected()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the app did not settle"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.run_steps(4);
    harness
}

#[test]
fn main_screen_on_launch() {
    let mut harness = harness("launch");
    harness.snapshot("main_screen_on_launch");
}

#[test]
fn data_preview_tab() {
    let mut harness = harness("preview");
    harness.get_by_label("Data preview").click_accesskit();
    harness.run_steps(4);
    harness.snapshot("data_preview_tab");
}

#[test]
fn image_thumbnails_tab() {
    let mut harness = harness_on("thumbnails", "sample_data/digits");
    harness.get_by_label("Data preview").click_accesskit();
    harness.run_steps(4);
    harness.snapshot("image_thumbnails_tab");
}
