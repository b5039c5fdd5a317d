//! Snapshot tests of the main screens, rendered with wgpu (Mesa lavapipe where there is no GPU).
//! Regenerate after an intended change with `UPDATE_SNAPSHOTS=1 cargo test --release --test snapshots`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use kiln::data::{DataSpec, ImageOptions};
use kiln::model::{CnnConfig, MlpConfig, ModelConfig};
use kiln::runs::{BestSummary, MetricPoint, RunStatus, RunStore, SplitName};
use kiln::train::{DeviceChoice, TrainConfig, TrainRequest, start};
use kiln::ui::dialogs::ScriptedDialogs;
use kiln::ui::{AppOptions, KilnApp};

/// The sizes the layout must hold at: the smallest supported window and a large one.
const SMALL: [f32; 2] = [1024.0, 640.0];
const LARGE: [f32; 2] = [1600.0, 1000.0];

/// A fixed store per test: the status bar shows its path, so it must not vary between runs.
fn store_for(name: &str) -> PathBuf {
    let store = PathBuf::from(format!("/tmp/kiln-snapshot-{name}"));
    let _ = std::fs::remove_dir_all(&store);
    store
}

fn harness(name: &str) -> Harness<'static, KilnApp> {
    harness_on(name, "sample_data/iris.csv")
}

fn harness_on(name: &str, data: &str) -> Harness<'static, KilnApp> {
    harness_with(store_for(name), data, [1280.0, 800.0])
}

fn harness_with(store: PathBuf, data: &str, size: [f32; 2]) -> Harness<'static, KilnApp> {
    // Relative (tests run in the package root): the path is shown, so it must not depend on the checkout.
    let data = PathBuf::from(data);
    let mut harness = Harness::builder()
        .with_size(size)
        .wgpu()
        .build_eframe(move |cc| {
            KilnApp::new(
                cc,
                AppOptions {
                    targets_file: Some(store.join(".targets.toml")),
                    runs_dir: store,
                    initial_data: Some(data),
                    dialogs: Arc::new(ScriptedDialogs::default()),
                    persist: false,
                },
            )
        });
    let start = Instant::now();
    while !(harness.state().dataset_loaded()
        && harness.state().adapters_detected()
        && !harness.state().is_busy())
    {
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

/// A real run (so every file is in Kiln's format) whose changing parts — times, curves, metrics,
/// confusion matrices — are then replaced by fixed values, so its screens render the same on
/// every machine.
fn fixed_run(store: &Path, name: &str, data: DataSpec, model: ModelConfig, status: RunStatus) {
    let handle = start(
        TrainRequest {
            data,
            model,
            train: TrainConfig {
                epochs: 3,
                batch_size: 64,
                ..TrainConfig::default()
            },
            device: DeviceChoice::Cpu,
            name: Some(name.to_string()),
            runs_dir: store.to_path_buf(),
        },
        None,
    )
    .expect("starts");
    let id = handle.run_id.clone();
    handle.wait();
    let dir = RunStore::open(store).unwrap().find(&id).unwrap();
    let mut record = dir.read_record().unwrap();
    let classes = record.schema.target.classes.len();
    let (done, planned) = (12, 40);
    let loss = |epoch: usize, offset: f64| 1.6 * (-(epoch as f64) / 4.0).exp() + offset;
    let accuracy = |epoch: usize| 1.0 - 0.9 * (-(epoch as f64) / 3.0).exp();
    let mut log = String::new();
    for epoch in 1..=done {
        for (split, metric, value) in [
            (SplitName::Train, "loss", loss(epoch, 0.05)),
            (SplitName::Valid, "loss", loss(epoch, 0.12)),
            (SplitName::Train, "accuracy", accuracy(epoch)),
            (SplitName::Valid, "accuracy", accuracy(epoch) - 0.02),
        ] {
            let point = MetricPoint {
                epoch,
                step: epoch as u64 * 10,
                split,
                metric: metric.to_string(),
                value,
                wall_secs: epoch as f64,
            };
            log.push_str(&serde_json::to_string(&point).unwrap());
            log.push('\n');
        }
    }
    std::fs::write(dir.metrics_path(), log).unwrap();
    let _ = std::fs::remove_file(dir.confusion_path());
    // A confusion matrix with most counts on the diagonal and a few typical mix-ups.
    let confusion: Vec<Vec<u64>> = (0..classes)
        .map(|actual| {
            (0..classes)
                .map(|predicted| match (actual, predicted) {
                    (a, p) if a == p => 30 + (a as u64 * 7) % 9,
                    (a, p) if (a + 3) % classes == p => (a as u64 % 3) + 1,
                    _ => 0,
                })
                .collect()
        })
        .collect();
    let mut index = dir.read_index().unwrap();
    let template = index.checkpoints[0].clone();
    index.checkpoints = [done - 2, done - 1, done]
        .into_iter()
        .map(|epoch| {
            let mut entry = template.clone();
            entry.epoch = epoch;
            entry.step = epoch as u64 * 10;
            entry.wall_secs = epoch as f64;
            entry.best = epoch == done - 1;
            entry.metrics = BTreeMap::from([
                ("train_loss".to_string(), loss(epoch, 0.05)),
                ("valid_loss".to_string(), loss(epoch, 0.12)),
                ("valid_accuracy".to_string(), accuracy(epoch) - 0.02),
            ]);
            entry.confusion = Some(confusion.clone());
            entry
        })
        .collect();
    dir.write_index(&index).unwrap();
    record.status = status;
    record.status_message = Some("stopped after 12 epochs; resume continues from there".into());
    record.created = "2026-11-27T09:30:00+00:00".to_string();
    record.updated = "2026-11-27T09:31:00+00:00".to_string();
    record.epochs_completed = done;
    record.train.epochs = planned;
    record.train_secs = done as f64;
    record.best = Some(BestSummary {
        epoch: done - 1,
        valid_loss: loss(done - 1, 0.12),
        valid_accuracy: Some(accuracy(done - 1) - 0.02),
    });
    dir.write_record(&record).unwrap();
}

fn stopped_iris_store(name: &str) -> PathBuf {
    let store = store_for(name);
    fixed_run(
        &store,
        "iris-stopped",
        DataSpec::new("sample_data/iris.csv"),
        ModelConfig::Mlp(MlpConfig::default()),
        RunStatus::Stopped,
    );
    store
}

fn digits_store(name: &str) -> PathBuf {
    let store = store_for(name);
    let mut data = DataSpec::new("sample_data/digits");
    data.images = Some(ImageOptions::default());
    fixed_run(
        &store,
        "digits-cnn",
        data,
        ModelConfig::Cnn(CnnConfig::default()),
        RunStatus::Completed,
    );
    store
}

fn settle_on_runs(harness: &mut Harness<'static, KilnApp>) {
    let start = Instant::now();
    while harness.state().run_summaries().is_empty()
        || !harness
            .state()
            .selected_runs()
            .iter()
            .all(|id| harness.state().run_curves_loaded(id))
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no runs shown");
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.run_steps(4);
}

fn runs_tab(name: &str, size: [f32; 2]) {
    let mut harness = harness_with(stopped_iris_store(name), "sample_data/iris.csv", size);
    settle_on_runs(&mut harness);
    harness.snapshot(name);
}

fn checkpoint_tab(name: &str, size: [f32; 2]) {
    let mut harness = harness_with(digits_store(name), "sample_data/digits", size);
    settle_on_runs(&mut harness);
    harness
        .get_by_label("Checkpoint & export")
        .click_accesskit();
    harness.run_steps(2);
    harness
        .get_by_label_contains("Select the best checkpoint of")
        .click_accesskit();
    harness.run_steps(4);
    // The suggested export path is under the user's home folder, which differs per machine.
    let export_path = harness
        .query_all_by_role(egui::accesskit::Role::TextInput)
        .find(|node| node.value().is_some_and(|v| v.contains("kiln-models")))
        .map(|node| node.rect());
    if let Some(rect) = export_path {
        harness.mask(rect);
    }
    harness.snapshot(name);
}

#[test]
fn main_screen_small() {
    let mut harness = harness_with(store_for("main-small"), "sample_data/iris.csv", SMALL);
    harness.snapshot("main_screen_1024x640");
}

#[test]
fn main_screen_large() {
    let mut harness = harness_with(store_for("main-large"), "sample_data/iris.csv", LARGE);
    harness.snapshot("main_screen_1600x1000");
}

#[test]
fn runs_tab_with_a_stopped_run_small() {
    runs_tab("runs_tab_stopped_1024x640", SMALL);
}

#[test]
fn runs_tab_with_a_stopped_run_large() {
    runs_tab("runs_tab_stopped_1600x1000", LARGE);
}

#[test]
fn checkpoint_tab_with_ten_classes_small() {
    checkpoint_tab("checkpoint_tab_10_classes_1024x640", SMALL);
}

#[test]
fn checkpoint_tab_with_ten_classes_large() {
    checkpoint_tab("checkpoint_tab_10_classes_1600x1000", LARGE);
}
