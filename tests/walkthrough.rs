//! The window as a new user finds it (issue 16's walk-through), each problem driven through
//! egui_kittest on the real app.

mod common;

use common::app::{app_on, step_until, train_run, train_with};
use common::sample;

use std::io::Write;
use std::path::{Path, PathBuf};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use kiln::model::{Activation, MlpConfig, ModelConfig};
use kiln::runs::{RunStatus, RunStore};
use kiln::train::{DeviceChoice, OptimizerConfig, Outcome, ResumeRequest, TrainConfig, resume};
use kiln::ui::KilnApp;
use kiln::ui::dialogs::{DialogKind, FileDialogs, ScriptedDialogs};

const SIZE: [f32; 2] = [1280.0, 860.0];

fn app(runs_dir: &Path) -> Harness<'static, KilnApp> {
    app_on(
        runs_dir,
        ScriptedDialogs::default(),
        sample("iris.csv"),
        SIZE,
    )
}

fn click_train(harness: &mut Harness<'static, KilnApp>) {
    harness.get_by_label("▶ Train").click();
    harness.step();
}

fn record(runs_dir: &Path, id: &str) -> kiln::runs::RunRecord {
    RunStore::open(runs_dir)
        .unwrap()
        .find(id)
        .unwrap()
        .read_record()
        .unwrap()
}

/// Opens row `index`'s action menu (rows are newest first) in the Runs tab.
fn open_row_menu(harness: &mut Harness<'static, KilnApp>, index: usize) {
    harness.get_by_label("Runs").click_accesskit();
    harness.run_steps(2);
    let menus: Vec<_> = harness.query_all_by_label("⋯").collect();
    menus[index].click();
    harness.run_steps(2);
}

#[test]
fn an_unticked_run_leaves_the_plot_even_right_after_it_trained() {
    let store = tempfile::tempdir().unwrap();
    let mut harness = app(store.path());
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    harness.state_mut().settings_mut().train.epochs = 5;
    harness.step();
    click_train(&mut harness);
    step_until(&mut harness, "training", |app| {
        app.last_finished().is_some()
    });
    step_until(&mut harness, "the curves", |app| {
        app.last_plot().points_drawn >= 10
    });
    assert_eq!(harness.state().last_plot().legend, vec!["iris".to_string()]);

    harness.get_by_label("Runs").click_accesskit();
    harness.run_steps(3);
    harness
        .get_by_role_and_label(egui::accesskit::Role::CheckBox, "iris")
        .click_accesskit();
    harness.run_steps(3);
    assert!(harness.state().selected_runs().is_empty());
    let plot = harness.state().last_plot();
    assert_eq!(plot.points_drawn, 0, "{plot:?}");
    assert!(plot.legend.is_empty(), "{plot:?}");
}

#[test]
fn a_typed_name_names_one_run_and_equal_names_never_merge_in_the_plot() {
    let store = tempfile::tempdir().unwrap();
    let mut harness = app(store.path());
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    harness.state_mut().settings_mut().train.epochs = 3;
    for _ in 0..2 {
        harness.state_mut().settings_mut().run_name = "trial".to_string();
        harness.step();
        click_train(&mut harness);
        // The field is cleared at once: the next run does not inherit the name.
        assert_eq!(harness.state_mut().settings_mut().run_name, "");
        step_until(&mut harness, "training", |app| {
            app.last_finished().is_some()
        });
    }
    step_until(&mut harness, "both runs listed", |app| {
        app.run_summaries().len() == 2
    });
    let mut names: Vec<String> = harness
        .state()
        .run_summaries()
        .iter()
        .map(|run| run.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["trial", "trial-2"]);
    step_until(&mut harness, "both curves", |app| {
        app.last_plot().legend.len() == 2
    });

    // Runs that share a name anyway (an older store, a run folder copied in) stay apart too.
    let dir = RunStore::open(store.path())
        .unwrap()
        .find("trial-2")
        .unwrap();
    let mut second = dir.read_record().unwrap();
    second.name = "trial".to_string();
    dir.write_record(&second).unwrap();
    harness.get_by_label("Rescan").click_accesskit();
    step_until(&mut harness, "the shared name", |app| {
        app.run_summaries().iter().all(|run| run.name == "trial")
    });
    harness.run_steps(3);
    let legend = harness.state().last_plot().legend.clone();
    assert_eq!(legend.len(), 2, "{legend:?}");
    assert_ne!(
        legend[0], legend[1],
        "two runs, two legend entries: {legend:?}"
    );
}

#[test]
fn a_manual_stop_reports_where_it_stopped_without_an_eta() {
    let store = tempfile::tempdir().unwrap();
    let mut harness = app(store.path());
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    {
        let settings = harness.state_mut().settings_mut();
        settings.train.epochs = 3000;
        settings.train.batch_size = 1;
    }
    harness.step();
    click_train(&mut harness);
    step_until(&mut harness, "two epochs", |app| {
        app.run_summaries()
            .iter()
            .any(|run| run.epochs_completed >= 2)
    });
    harness.get_by_label("■ Stop").click();
    step_until(&mut harness, "the stop", |app| {
        app.last_finished().is_some()
    });
    harness.run_steps(2);
    let (outcome, done, total) = harness.state().last_ending().unwrap();
    assert_eq!(outcome, Outcome::Stopped);
    assert!((2..3000).contains(&done), "{done}");
    assert_eq!(total, 3000);
    assert!(
        harness
            .query_by_label_contains(&format!("Stopped after epoch {done} of 3000"))
            .is_some()
    );
    assert!(harness.query_by_label_contains("ETA").is_none());
}

#[test]
fn an_early_stop_shows_the_epoch_it_reached() {
    let store = tempfile::tempdir().unwrap();
    let mut harness = app(store.path());
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    {
        let settings = harness.state_mut().settings_mut();
        settings.train.epochs = 400;
        settings.train.learning_rate = 0.05;
        settings.train.early_stopping_patience = Some(3);
    }
    harness.step();
    click_train(&mut harness);
    step_until(&mut harness, "training", |app| {
        app.last_finished().is_some()
    });
    harness.run_steps(2);
    let (outcome, done, total) = harness.state().last_ending().unwrap();
    assert_eq!(outcome, Outcome::EarlyStopped);
    assert!(done < total, "{done} of {total}");
    assert!(
        harness
            .query_by_label_contains(&format!("Stopped early after epoch {done} of 400"))
            .is_some()
    );
    assert!(harness.query_by_label_contains("ETA").is_none());
}

fn diverging() -> TrainConfig {
    TrainConfig {
        epochs: 4,
        learning_rate: 1e9,
        optimizer: OptimizerConfig::Sgd { momentum: 0.9 },
        ..TrainConfig::default()
    }
}

#[test]
fn a_divergence_in_the_first_epoch_says_no_checkpoint_exists() {
    let store = tempfile::tempdir().unwrap();
    let mut harness = app(store.path());
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    harness.state_mut().settings_mut().train = diverging();
    harness.step();
    click_train(&mut harness);
    step_until(&mut harness, "training", |app| {
        app.last_finished().is_some()
    });
    let (_, message) = harness.state().last_finished().unwrap();
    assert!(message.contains("before any checkpoint"), "{message}");
    assert!(!message.contains("kept"), "{message}");
    let (outcome, done, _) = harness.state().last_ending().unwrap();
    assert_eq!((outcome, done), (Outcome::Diverged, 0));

    // Nothing to continue from: the menu says so instead of offering a resume that cannot work.
    step_until(&mut harness, "the run listed", |app| {
        !app.run_summaries().is_empty()
    });
    open_row_menu(&mut harness, 0);
    let continue_item = harness.get_by_label("Continue with a lower learning rate…");
    assert!(continue_item.accesskit_node().is_disabled());
}

#[test]
fn a_diverged_run_continues_from_its_last_good_checkpoint_with_a_lower_learning_rate() {
    let store = tempfile::tempdir().unwrap();
    let run = train_run(store.path(), "unstable", 0.01);
    // Three more epochs at an absurd rate: it diverges after the 8 good ones.
    let events = resume(
        ResumeRequest {
            runs_dir: store.path().to_path_buf(),
            run: run.clone(),
            extra_epochs: Some(3),
            device: Some(DeviceChoice::Cpu),
            learning_rate: Some(1e12),
        },
        None,
    )
    .unwrap()
    .wait();
    assert!(events.iter().any(|event| matches!(
        event,
        kiln::train::TrainEvent::Finished {
            outcome: Outcome::Diverged,
            ..
        }
    )));
    let diverged = record(store.path(), &run);
    assert_eq!(diverged.status, RunStatus::Diverged);
    assert_eq!(diverged.epochs_completed, 8);
    assert!(
        diverged
            .status_message
            .as_deref()
            .is_some_and(|m| m.contains("epoch 8 is kept")),
        "{:?}",
        diverged.status_message
    );

    let mut harness = app(store.path());
    step_until(&mut harness, "the run list", |app| {
        app.run_summaries().len() == 1
    });
    harness.run_steps(2);
    open_row_menu(&mut harness, 0);
    harness
        .get_by_label("Continue with a lower learning rate…")
        .click();
    harness.run_steps(2);
    // The dialog's field comes after the form's own learning rate (the dialog is drawn on top);
    // it starts at a tenth of the rate that diverged.
    let field = harness
        .query_all_by_role(egui::accesskit::Role::SpinButton)
        .find(|node| node.accesskit_node().numeric_value() == Some(1e11))
        .expect("the dialog's learning rate, a tenth of the one that diverged");
    field.set_value_accesskit(0.01);
    harness.run_steps(2);
    harness.get_by_label("Continue").click();
    step_until(&mut harness, "the continued run", |app| {
        app.last_finished().is_some()
    });
    let (outcome, _, _) = harness.state().last_ending().unwrap();
    assert_eq!(outcome, Outcome::Completed);
    let continued = record(store.path(), &run);
    assert_eq!(continued.status, RunStatus::Completed);
    assert_eq!(continued.epochs_completed, 11);
    assert_eq!(continued.train.learning_rate, 0.01);
    // The change is part of the run's history, with the epoch it applies after.
    let change = continued.changes.last().expect("the change is recorded");
    assert_eq!(
        (
            change.field.as_str(),
            change.after_epoch,
            change.to.as_str()
        ),
        ("train.learning_rate", 8, "0.01")
    );
}

#[test]
fn rename_takes_focus_escape_cancels_and_enter_renames() {
    let store = tempfile::tempdir().unwrap();
    let run = train_run(store.path(), "first-name", 0.01);
    let mut harness = app(store.path());
    step_until(&mut harness, "the run list", |app| {
        app.run_summaries().len() == 1
    });
    harness.run_steps(2);

    open_row_menu(&mut harness, 0);
    harness.get_by_label("Rename…").click();
    harness.run_steps(2);
    let focused = harness
        .query_all_by_role(egui::accesskit::Role::TextInput)
        .find(|node| node.is_focused())
        .expect("the name field has the keyboard at once");
    assert_eq!(focused.value().as_deref(), Some("first-name"));
    focused.type_text("-typed");
    harness.step();
    harness.key_press(egui::Key::Escape);
    harness.run_steps(3);
    assert!(
        harness.query_by_label("Rename run").is_none(),
        "Escape closes"
    );
    step_until(&mut harness, "a rescan", |app| !app.is_busy());
    assert_eq!(
        record(store.path(), &run).name,
        "first-name",
        "Escape cancels"
    );

    open_row_menu(&mut harness, 0);
    harness.get_by_label("Rename…").click();
    harness.run_steps(2);
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.step();
    harness
        .query_all_by_role(egui::accesskit::Role::TextInput)
        .find(|node| node.is_focused())
        .expect("focused again")
        .type_text("second-name");
    harness.step();
    harness.key_press(egui::Key::Enter);
    harness.run_steps(3);
    assert_eq!(record(store.path(), &run).name, "second-name");
}

#[test]
fn deleting_a_run_keeps_the_colours_of_the_others() {
    let store = tempfile::tempdir().unwrap();
    let ids: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|name| train_run(store.path(), name, 0.01))
        .collect();
    let mut harness = app(store.path());
    step_until(&mut harness, "the run list", |app| {
        app.run_summaries().len() == 3
    });
    harness.run_steps(2);
    let before: Vec<egui::Color32> = ids.iter().map(|id| harness.state().run_color(id)).collect();
    assert_eq!(
        before
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        3,
        "three runs, three colours"
    );
    // The middle run ("b") is the second row (newest first).
    open_row_menu(&mut harness, 1);
    harness.get_by_label("Delete…").click();
    harness.run_steps(2);
    harness.get_by_label("Delete").click();
    step_until(&mut harness, "the deletion", |app| {
        app.run_summaries().len() == 2
    });
    harness.run_steps(2);
    assert_eq!(harness.state().run_color(&ids[0]), before[0]);
    assert_eq!(harness.state().run_color(&ids[2]), before[2]);
}

#[test]
fn a_failed_load_keeps_the_dataset_that_was_loaded() {
    let store = tempfile::tempdir().unwrap();
    let mut harness = app(store.path());
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    let missing = store.path().join("no-such-file.csv");
    harness.state_mut().settings_mut().data_path = missing.display().to_string();
    harness.step();
    harness.get_by_label("Load").click_accesskit();
    step_until(&mut harness, "the load error", |app| {
        app.data_error().is_some()
    });
    harness.run_steps(2);
    assert!(harness.state().dataset_loaded());
    assert_eq!(
        harness.state().loaded_dataset(),
        Some(sample("iris.csv").as_path())
    );
    assert!(
        !harness
            .get_by_label("▶ Train")
            .accesskit_node()
            .is_disabled(),
        "Train still works on the loaded dataset"
    );
    assert!(
        harness
            .query_by_label_contains("The dataset loaded before stays in use")
            .is_some()
    );
}

#[test]
fn the_export_panel_says_which_formats_a_gelu_model_gets_before_and_after() {
    let store = tempfile::tempdir().unwrap();
    let gelu = ModelConfig::Mlp(MlpConfig {
        activation: Activation::Gelu,
        ..MlpConfig::default()
    });
    let run = train_with(
        store.path(),
        "gelu",
        gelu,
        TrainConfig {
            epochs: 3,
            ..TrainConfig::default()
        },
    );
    let dialogs = ScriptedDialogs::default();
    let export_to = store.path().join("exports").join("gelu.bpk");
    dialogs.answer(DialogKind::SaveBundle, &export_to);
    let mut harness = app_on(store.path(), dialogs, sample("iris.csv"), SIZE);
    step_until(&mut harness, "the curves", |app| {
        app.run_curves_loaded(&run)
    });
    harness
        .get_by_label("Checkpoint & export")
        .click_accesskit();
    harness.step();
    harness
        .get_by_label_contains("Select the best checkpoint of")
        .click_accesskit();
    harness.run_steps(2);
    assert!(
        harness
            .query_by_label_contains("No ONNX file for this model")
            .is_some()
    );
    harness.get_by_label("Export…").click_accesskit();
    step_until(&mut harness, "the export", |app| {
        !app.is_busy() && app.messages().iter().any(|m| m.starts_with("Exported"))
    });
    harness.run_steps(3);
    // Still said after the export, in the panel (not only in a passing status line).
    assert!(
        harness
            .query_by_label_contains("ONNX was not written")
            .is_some()
    );
    let message = harness.state().messages().last().cloned().unwrap();
    assert!(message.contains("no ONNX"), "{message}");
    assert!(export_to.with_extension("card.json").exists());
    assert!(!export_to.with_extension("onnx").exists());
}

#[test]
fn typed_values_are_kept_and_explained_not_clamped() {
    let store = tempfile::tempdir().unwrap();
    let mut harness = app(store.path());
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    harness
        .get_by_label("Learning rate")
        .set_value_accesskit(100.0);
    harness.run_steps(2);
    assert_eq!(
        harness.state_mut().settings_mut().train.learning_rate,
        100.0
    );
    assert!(
        harness
            .query_all_by_label_contains("above 1 makes most models diverge")
            .next()
            .is_some()
    );
    // A warning, not an error: absurd rates are legal (a sweep may try them).
    assert!(
        !harness
            .get_by_label("▶ Train")
            .accesskit_node()
            .is_disabled()
    );
    harness
        .get_by_label("Learning rate")
        .set_value_accesskit(-1.0);
    harness.run_steps(2);
    assert!(
        harness
            .query_all_by_label_contains("must be a positive number")
            .next()
            .is_some()
    );
    assert!(
        harness
            .get_by_label("▶ Train")
            .accesskit_node()
            .is_disabled()
    );
}

/// A CSV large enough that reading and preparing it takes many frames.
fn large_csv(dir: &Path) -> PathBuf {
    let path = dir.join("large.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let columns = 24;
    let header: Vec<String> = (0..columns).map(|c| format!("f{c}")).collect();
    writeln!(file, "{},label", header.join(",")).unwrap();
    let mut state = 12345u64;
    for row in 0..120_000 {
        let mut cells = Vec::with_capacity(columns + 1);
        for _ in 0..columns {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            cells.push(format!("{:.5}", (state >> 33) as f64 / (1u64 << 31) as f64));
        }
        cells.push(["a", "b", "c"][row % 3].to_string());
        writeln!(file, "{}", cells.join(",")).unwrap();
    }
    path
}

#[test]
fn the_window_keeps_answering_while_train_prepares_a_large_dataset_and_stop_works_then() {
    let store = tempfile::tempdir().unwrap();
    let data = large_csv(store.path());
    let mut harness = app_on(store.path(), ScriptedDialogs::default(), data, SIZE);
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    {
        let settings = harness.state_mut().settings_mut();
        settings.train.epochs = 1;
        settings.train.batch_size = 4096;
    }
    harness.step();
    click_train(&mut harness);
    // The click's frame returned before the data was read: frames keep coming meanwhile.
    assert!(harness.state().is_preparing_data());
    step_until(&mut harness, "the preparation", |app| {
        !app.is_preparing_data()
    });
    let frames = harness.state().frames_while_preparing();
    assert!(
        frames >= 3,
        "only {frames} frames were drawn while the data was prepared"
    );
    step_until(&mut harness, "training", |app| {
        app.last_finished().is_some()
    });

    // Stop while the data is being prepared: nothing is written.
    let runs_before = RunStore::open(store.path()).unwrap().list().unwrap().len();
    click_train(&mut harness);
    assert!(harness.state().is_preparing_data());
    harness.get_by_label("■ Stop").click();
    step_until(&mut harness, "the stop", |app| {
        app.last_finished().is_some()
    });
    let (_, message) = harness.state().last_finished().unwrap();
    assert!(message.contains("before training began"), "{message}");
    assert_eq!(
        RunStore::open(store.path()).unwrap().list().unwrap().len(),
        runs_before
    );
}

/// A file dialog whose library panics (as a broken portal binding might).
struct PanickingDialogs;

impl FileDialogs for PanickingDialogs {
    fn pick(&self, _kind: DialogKind) -> Option<PathBuf> {
        panic!("the dialog service exploded")
    }
}

#[test]
fn a_panicking_background_task_ends_with_an_error_and_dialogs_open_again() {
    let store = tempfile::tempdir().unwrap();
    let mut harness = app_on(store.path(), PanickingDialogs, sample("iris.csv"), SIZE);
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    for attempt in 1..=2 {
        harness.get_by_label("Browse…").click_accesskit();
        step_until(&mut harness, "the crash report", |app| {
            app.messages()
                .iter()
                .filter(|m| m.contains("The file dialog failed"))
                .count()
                == attempt
        });
        assert!(!harness.state().is_busy(), "no spinner left behind");
    }
    let message = harness.state().messages().last().cloned().unwrap();
    assert!(message.contains("the dialog service exploded"), "{message}");
}
