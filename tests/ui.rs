//! The real app driven through egui_kittest: train, compare, export, open and predict.

mod common;

use common::app::{app_on, step_until, train_run};
use common::sample;

use std::path::Path;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use kiln::model::ModelConfig;
use kiln::runs::RunStore;
use kiln::ui::dialogs::{DialogKind, ScriptedDialogs};
use kiln::ui::{KilnApp, ModelKind};

fn app(runs_dir: &Path, dialogs: ScriptedDialogs) -> Harness<'static, KilnApp> {
    app_on(runs_dir, dialogs, sample("iris.csv"), [1280.0, 860.0])
}

#[test]
fn click_train_and_watch_the_run_finish_with_curves() {
    let store = tempfile::tempdir().unwrap();
    let mut harness = app(store.path(), ScriptedDialogs::default());
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    harness.state_mut().settings_mut().train.epochs = 30;
    harness.step();
    harness.get_by_label("▶ Train").click();
    step_until(&mut harness, "training to finish", |app| {
        app.last_finished().is_some()
    });
    let (run_id, message) = harness.state().last_finished().unwrap();
    assert!(message.contains("trained 30 epochs"), "{message}");
    step_until(&mut harness, "the curves", |app| {
        app.last_plot().points_drawn >= 60
    });

    let runs = RunStore::open(store.path()).unwrap().list().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].id(), run_id);
    let plot = harness.state().last_plot().clone();
    assert!(
        plot.points_drawn >= 60,
        "train + valid loss for 30 epochs: {plot:?}"
    );
    assert!(plot.markers_drawn >= 1, "checkpoint markers: {plot:?}");
    assert!(harness.state().selected_runs().contains(&run_id));
}

#[test]
fn stop_button_stops_within_a_batch_and_the_run_is_resumable() {
    let store = tempfile::tempdir().unwrap();
    let mut harness = app(store.path(), ScriptedDialogs::default());
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    {
        let settings = harness.state_mut().settings_mut();
        settings.train.epochs = 100_000;
        settings.train.batch_size = 1;
    }
    harness.step();
    harness.get_by_label("▶ Train").click();
    step_until(&mut harness, "a few epochs", |app| {
        app.run_summaries()
            .iter()
            .any(|run| run.epochs_completed >= 2)
    });
    harness.get_by_label("■ Stop").click();
    step_until(&mut harness, "the stop", |app| {
        app.last_finished().is_some()
    });
    let (_, message) = harness.state().last_finished().unwrap();
    assert!(message.contains("stopped after"), "{message}");
    step_until(&mut harness, "the rescan", |app| {
        app.run_summaries()
            .iter()
            .any(|run| run.status.is_resumable())
    });
    // The run's menu in the runs table offers Resume for it.
    harness.get_by_label("Runs").click_accesskit();
    harness.run_steps(2);
    harness.get_by_label("⋯").click();
    harness.run_steps(2);
    assert!(harness.query_by_label("Resume").is_some());
}

#[test]
fn compare_two_runs_and_export_the_best_checkpoint_through_the_dialog() {
    let store = tempfile::tempdir().unwrap();
    let fast = train_run(store.path(), "fast-lr", 0.05);
    let slow = train_run(store.path(), "slow-lr", 0.001);
    let dialogs = ScriptedDialogs::default();
    let export_to = store.path().join("exports").join("iris-best.bpk");
    dialogs.answer(DialogKind::SaveBundle, &export_to);
    let mut harness = app(store.path(), dialogs);
    step_until(&mut harness, "the run list", |app| {
        app.run_summaries().len() == 2
    });
    // The table sizes its columns in its first frame; interact after that.
    harness.run_steps(3);

    // The newest run is shown at launch; unticking and ticking toggles a run in the plot.
    assert_eq!(harness.state().selected_runs(), std::slice::from_ref(&slow));
    harness
        .get_by_role_and_label(egui::accesskit::Role::CheckBox, "slow-lr")
        .click_accesskit();
    harness.run_steps(2);
    assert!(harness.state().selected_runs().is_empty());
    // Tick both runs: both series and their checkpoint markers are drawn.
    harness
        .get_by_role_and_label(egui::accesskit::Role::CheckBox, "fast-lr")
        .click_accesskit();
    harness.run_steps(2);
    assert_eq!(harness.state().selected_runs(), std::slice::from_ref(&fast));
    harness
        .get_by_role_and_label(egui::accesskit::Role::CheckBox, "slow-lr")
        .click_accesskit();
    step_until(&mut harness, "both runs' curves", |app| {
        app.run_curves_loaded(&fast)
            && app.run_curves_loaded(&slow)
            && app.last_plot().points_drawn >= 32
    });
    assert_eq!(harness.state().selected_runs().len(), 2);
    let plot = harness.state().last_plot().clone();
    assert_eq!(
        plot.points_drawn,
        2 * 2 * 8,
        "train+valid × 8 epochs × 2 runs: {plot:?}"
    );
    let kept: usize = [&fast, &slow]
        .iter()
        .map(|id| {
            RunStore::open(store.path())
                .unwrap()
                .find(id)
                .unwrap()
                .read_index()
                .unwrap()
                .checkpoints
                .len()
        })
        .sum();
    assert_eq!(plot.markers_drawn, kept, "{plot:?}");

    // What differs between them.
    harness.get_by_label("Compare").click_accesskit();
    harness.step();
    assert!(harness.query_by_label("train.learning_rate").is_some());
    assert!(harness.query_by_label_contains("Same dataset").is_some());

    // Export the best checkpoint of the first run through the (scripted) file dialog.
    harness
        .get_by_label("Checkpoint & export")
        .click_accesskit();
    harness.step();
    harness
        .get_by_label_contains("Select the best checkpoint of fast-lr")
        .click_accesskit();
    harness.step();
    harness.step();
    assert!(
        harness
            .query_by_label_contains("Confusion matrix")
            .is_some()
    );
    // The per-class report's header and the epoch's macro value.
    assert!(harness.query_all_by_label("precision").count() >= 1);
    assert!(harness.query_by_label("valid_precision").is_some());
    harness.get_by_label("Export…").click_accesskit();
    step_until(&mut harness, "the export", |app| {
        !app.is_busy() && export_to.with_extension("card.json").exists()
    });
    let model = kiln::export::LoadedModel::open(&export_to).expect("the written bundle loads");
    assert_eq!(model.card.source_run_id, fast);

    // Open it in the app and predict on the sample.
    step_until(&mut harness, "the export message", |app| {
        app.messages().iter().any(|m| m.starts_with("Exported"))
    });
    harness.get_by_label("Open this model").click_accesskit();
    step_until(&mut harness, "the model", |app| {
        app.opened_model().is_some()
    });
    harness.get_by_label("Predict one row").click_accesskit();
    harness.run_steps(3);
    harness.get_by_label("Predict row").click_accesskit();
    harness.run_steps(3);
    assert!(
        harness.query_by_label_contains("%)").is_some(),
        "a class with its probability is shown"
    );
}

#[test]
fn a_run_started_elsewhere_appears_in_the_browser() {
    let store = tempfile::tempdir().unwrap();
    let mut harness = app(store.path(), ScriptedDialogs::default());
    step_until(&mut harness, "the first scan", |app| !app.is_busy());
    assert!(harness.state().run_summaries().is_empty());
    let id = train_run(store.path(), "from-the-cli", 0.01);
    step_until(&mut harness, "the rescan", |app| {
        app.run_summaries().iter().any(|run| run.id == id)
    });
}

#[test]
fn image_folder_shows_thumbnails_trains_a_cnn_and_predicts_a_folder() {
    let store = tempfile::tempdir().unwrap();
    let dialogs = ScriptedDialogs::default();
    let export_to = store.path().join("exports").join("digits.bpk");
    dialogs.answer(DialogKind::SaveBundle, &export_to);
    dialogs.answer(DialogKind::PredictFolder, sample("digits").join("7"));
    let mut harness = app_on(store.path(), dialogs, sample("digits"), [1280.0, 860.0]);
    step_until(&mut harness, "the image dataset", KilnApp::dataset_loaded);
    assert_eq!(
        harness.state_mut().settings_mut().model_kind,
        ModelKind::Cnn
    );
    assert!(
        harness
            .query_by_label_contains("1797 images, 10 classes, 8×8 gray")
            .is_some()
    );

    // Thumbnails per class, with counts.
    harness.get_by_label("Data preview").click_accesskit();
    harness.run_steps(3);
    assert!(
        harness
            .query_by_label_contains("1797 images in 10 classes")
            .is_some()
    );
    assert!(
        harness.query_by_label("178 images").is_some(),
        "class 0's count"
    );

    {
        let settings = harness.state_mut().settings_mut();
        settings.train.epochs = 6;
        settings.train.batch_size = 32;
        settings.train.learning_rate = 0.003;
    }
    harness.step();
    harness.get_by_label("▶ Train").click();
    step_until(&mut harness, "the CNN to train", |app| {
        app.last_finished().is_some()
    });
    let (run_id, message) = harness.state().last_finished().unwrap();
    assert!(message.contains("trained 6 epochs"), "{message}");
    let record = RunStore::open(store.path())
        .unwrap()
        .find(&run_id)
        .unwrap()
        .read_record()
        .unwrap();
    assert!(matches!(record.model, ModelConfig::Cnn(_)));
    assert!(record.best.unwrap().valid_accuracy.unwrap() >= 0.9);

    // The best checkpoint's confusion matrix, then export it.
    step_until(&mut harness, "the rescan", |app| {
        app.run_summaries().iter().any(|run| run.id == run_id)
    });
    harness
        .get_by_label("Checkpoint & export")
        .click_accesskit();
    harness.step();
    // Before a checkpoint is chosen: the latest epoch's confusion matrix of the run just trained.
    assert!(
        harness
            .query_by_label_contains("epoch 6 (latest)")
            .is_some()
    );
    harness
        .get_by_label_contains("Select the best checkpoint of")
        .click_accesskit();
    harness.run_steps(2);
    assert!(
        harness
            .query_by_label_contains("Confusion matrix")
            .is_some()
    );
    // Any epoch's matrix can be chosen, not only the kept checkpoints'.
    assert!(harness.query_all_by_label("Epoch").count() >= 1);
    // The validation images the checkpoint gets wrong, as thumbnails.
    harness
        .get_by_label("Show the validation images it gets wrong")
        .click_accesskit();
    harness.run_steps(2);
    step_until(&mut harness, "the evaluation", |app| !app.is_busy());
    harness.run_steps(2);
    assert!(
        harness
            .query_by_label_contains("validation images wrong at epoch")
            .is_some()
    );
    harness.get_by_label("Export…").click_accesskit();
    step_until(&mut harness, "the export", |app| {
        !app.is_busy() && export_to.with_extension("card.json").exists()
    });
    step_until(&mut harness, "the export message", |app| {
        app.messages().iter().any(|m| m.starts_with("Exported"))
    });

    // Open it and predict on the folder of sevens through the (scripted) folder dialog.
    harness.get_by_label("Open this model").click_accesskit();
    step_until(&mut harness, "the model", |app| {
        app.opened_model().is_some()
    });
    harness.run_steps(2);
    harness.get_by_label("Folder…").click_accesskit();
    step_until(&mut harness, "the predictions", |app| {
        app.messages().iter().any(|m| m.starts_with("Predicted"))
    });
    harness.run_steps(2);
    assert!(
        harness
            .query_by_label_contains("right on the 179 in class-named folders")
            .is_some(),
        "the accuracy on the labelled folder is shown"
    );
}

/// Trains the window's settings for two epochs and reads the finished run's record.
fn train_two_epochs(
    harness: &mut Harness<'static, KilnApp>,
    store: &Path,
) -> kiln::runs::RunRecord {
    harness.state_mut().settings_mut().train.epochs = 2;
    harness.step();
    harness.get_by_label("▶ Train").click();
    step_until(harness, "training to finish", |app| {
        app.last_finished().is_some()
    });
    let (run_id, _) = harness.state().last_finished().unwrap();
    RunStore::open(store)
        .unwrap()
        .find(&run_id)
        .unwrap()
        .read_record()
        .unwrap()
}

/// The data panel offers the two ways out of a typo in a numeric column, warns about an id-like
/// column and lets it be left out; the run it trains records both choices.
#[test]
fn the_data_panel_resolves_a_typo_and_excludes_an_id_column() {
    let store = tempfile::tempdir().unwrap();
    let data = store.path().join("patients.csv");
    let mut text = String::from("patient_id,dose,label\r\n");
    for row in 0..24 {
        let dose = if row == 9 {
            "1.5.".to_string()
        } else {
            format!("{}.5", row % 6)
        };
        text.push_str(&format!(
            "p{row:03},{dose},{}\r\n",
            if row % 6 < 3 { "low" } else { "high" }
        ));
    }
    std::fs::write(&data, text).unwrap();
    let mut harness = app_on(
        store.path(),
        ScriptedDialogs::default(),
        data,
        [1280.0, 860.0],
    );
    step_until(&mut harness, "the typo error", |app| {
        app.data_error().is_some()
    });
    let error = harness.state().data_error().unwrap().to_string();
    assert!(
        error.contains("line 11: '1.5.'") && error.contains("column 'dose'"),
        "{error}"
    );

    harness.get_by_label("Treat as missing").click();
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    assert_eq!(harness.state().column_choices().as_missing, ["dose"]);
    let warnings = harness.state().data_warnings();
    assert!(
        warnings.iter().any(|w| w.contains("'patient_id'")),
        "{warnings:?}"
    );

    // The column list opens by itself when there is a warning: untick the id column.
    harness.run_steps(2);
    harness
        .get_by_role_and_label(egui::accesskit::Role::CheckBox, "patient_id")
        .click();
    step_until(&mut harness, "the reload without the id", |app| {
        app.dataset_loaded()
            && app.column_choices().exclude == ["patient_id"]
            && app.data_warnings().is_empty()
    });

    let record = train_two_epochs(&mut harness, store.path());
    assert_eq!(record.data.columns.exclude, ["patient_id"]);
    assert_eq!(record.preprocessor.choices.as_missing, ["dose"]);
}

/// A run that another machine is training (a live lock with its heartbeat) is listed as busy.
#[test]
fn a_run_trained_by_another_machine_is_shown_busy() {
    let store = tempfile::tempdir().unwrap();
    let id = train_run(store.path(), "elsewhere", 0.01);
    let dir = RunStore::open(store.path()).unwrap().find(&id).unwrap();
    let mut record = dir.read_record().unwrap();
    record.status = kiln::runs::RunStatus::Running;
    dir.write_record(&record).unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    let holder = kiln::runs::LockHolder {
        host: "cluster-node-7".to_string(),
        pid: 99,
        since: now.clone(),
        heartbeat: now,
        token: "remote".to_string(),
    };
    std::fs::write(
        dir.path.join(kiln::runs::lock::LOCK_FILE),
        serde_json::to_vec(&holder).unwrap(),
    )
    .unwrap();
    let mut harness = app(store.path(), ScriptedDialogs::default());
    step_until(&mut harness, "the run list", |app| {
        app.run_summaries().len() == 1
    });
    harness.get_by_label("Runs").click_accesskit();
    harness.run_steps(3);
    assert!(harness.query_by_label("busy").is_some());
    // Its menu offers nothing that would write to it.
    harness.get_by_label("⋯").click();
    harness.run_steps(2);
    assert!(harness.query_by_label("Resume").is_none());
    assert!(
        harness.query_by_label("Delete…").is_some(),
        "the menu opened"
    );
}

/// Row numbers in a file sorted by class are left out with a note, shown unticked as "row
/// numbers" in the column list; ticking keeps them as a feature, and the run records it.
/// A semicolon file with decimal commas shows what was detected.
#[test]
fn the_data_panel_leaves_row_numbers_out_and_keeps_them_when_ticked() {
    let store = tempfile::tempdir().unwrap();
    let data = store.path().join("titanic.csv");
    let mut text = String::from("PassengerId,fare,label\n");
    for row in 0..30 {
        let label = if row < 15 { "died" } else { "lived" };
        text.push_str(&format!("{},{}.25,{label}\n", row + 1, (row * 7) % 11));
    }
    std::fs::write(&data, text).unwrap();
    let mut harness = app_on(
        store.path(),
        ScriptedDialogs::default(),
        data,
        [1280.0, 860.0],
    );
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    let warnings = harness.state().data_warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("'PassengerId'") && w.contains("row numbers")),
        "{warnings:?}"
    );
    harness.run_steps(2);
    assert!(
        harness
            .query_all_by_label("row numbers, left out")
            .next()
            .is_some(),
        "the column list says why the column is out"
    );
    harness
        .get_by_role_and_label(egui::accesskit::Role::CheckBox, "PassengerId")
        .click();
    step_until(&mut harness, "the reload with the row numbers", |app| {
        app.dataset_loaded()
            && app.column_choices().keep == ["PassengerId"]
            && app.data_warnings().is_empty()
    });
    let record = train_two_epochs(&mut harness, store.path());
    assert_eq!(record.data.columns.keep, ["PassengerId"]);
    assert_eq!(record.schema.features[0].name, "PassengerId");

    // Another file, written the European way: the delimiter is detected and shown.
    let european = store.path().join("messwerte.csv");
    let mut text = String::from("temperatur;druck;zustand\n");
    for row in 0..30 {
        text.push_str(&format!(
            "{},{};{},5;{}\n",
            row % 9,
            row % 4,
            1000 + row % 3,
            if row % 2 == 0 { "gut" } else { "schlecht" }
        ));
    }
    std::fs::write(&european, text).unwrap();
    harness.state_mut().settings_mut().data_path = european.display().to_string();
    harness.step();
    harness.get_by_label("Load").click_accesskit();
    step_until(&mut harness, "the semicolon file", |app| {
        app.dataset_loaded()
            && app.loaded_dataset() == Some(european.as_path())
            && app.data_error().is_none()
    });
    harness.run_steps(2);
    assert!(
        harness
            .query_all_by_label_contains("semicolon-separated, decimal commas (detected)")
            .chain(harness.query_all_by_value("semicolon-separated, decimal commas (detected)"))
            .next()
            .is_some(),
        "the data panel shows the detected delimiter"
    );
}

/// A target picked on one file does not stick to the next: a file without that column loads
/// with its own last column as the target, and says so (walk-through, issue 32, problem 1).
#[test]
fn a_target_picked_on_one_file_does_not_stick_to_the_next() {
    let store = tempfile::tempdir().unwrap();
    let mut harness = app_on(
        store.path(),
        ScriptedDialogs::default(),
        sample("iris.csv"),
        [1280.0, 860.0],
    );
    step_until(&mut harness, "iris", KilnApp::dataset_loaded);
    harness.state_mut().settings_mut().target = Some("sepal_length".to_string());
    harness.state_mut().settings_mut().data_path = sample("diabetes.csv").display().to_string();
    harness.step();
    harness.get_by_label("Load").click_accesskit();
    step_until(&mut harness, "diabetes with its own target", |app| {
        app.loaded_dataset() == Some(sample("diabetes.csv").as_path())
            && app.data_error().is_none()
            && !app.data_is_loading()
    });
    assert_eq!(harness.state_mut().settings_mut().target, None);
    assert!(
        harness
            .state()
            .messages()
            .iter()
            .any(|m| m.contains("has no column 'sepal_length'")),
        "{:?}",
        harness.state().messages()
    );
}

/// A failed prediction takes the earlier results off the screen and out of "Save predictions",
/// and says why beside the path (walk-through, issue 32, problem 4).
#[test]
fn a_failed_prediction_leaves_no_stale_results() {
    let store = tempfile::tempdir().unwrap();
    let run = train_run(store.path(), "to-use", 0.01);
    let bundle = store.path().join("bundle");
    let options = kiln::export::ExportOptions {
        onnx: false,
        ..Default::default()
    };
    kiln::export::export_checkpoint(store.path(), &run, &bundle, &options).unwrap();
    let mut harness = app(store.path(), ScriptedDialogs::default());
    step_until(&mut harness, "the first scan", |app| !app.is_busy());
    harness.get_by_label("Use a model").click_accesskit();
    harness.run_steps(2);
    harness.get_by_label("or open").click();
    harness.run_steps(1);
    harness
        .get_by_label("or open")
        .type_text(bundle.to_str().unwrap());
    harness.run_steps(1);
    harness.get_by_label("Open").click_accesskit();
    step_until(&mut harness, "the model", |app| {
        app.opened_model().is_some()
    });
    harness.run_steps(2);
    let field = "Predict on a CSV:";
    harness.get_by_label(field).click();
    harness.run_steps(1);
    harness
        .get_by_label(field)
        .type_text(sample("iris.csv").to_str().unwrap());
    harness.run_steps(1);
    harness.get_by_label("Predict").click_accesskit();
    step_until(&mut harness, "the predictions", |app| {
        app.messages()
            .iter()
            .any(|m| m.starts_with("Predicted 150 rows"))
    });
    assert!(harness.state().predictions_shown());

    // The path now names no file: the error shows by it, the old rows are gone.
    harness.get_by_label(field).click();
    harness.run_steps(1);
    harness.get_by_label(field).type_text(".missing");
    harness.run_steps(1);
    harness.get_by_label("Predict").click_accesskit();
    step_until(&mut harness, "the error", |app| {
        app.messages()
            .iter()
            .any(|m| m.starts_with("Cannot predict"))
    });
    harness.run_steps(2);
    assert!(!harness.state().predictions_shown());
    assert!(
        harness
            .query_all_by_label_contains("Cannot predict")
            .next()
            .is_some(),
        "the error is shown in the tab, not only in the status bar"
    );
}

/// The corrupt-image error names its way out, and the checkbox it names is there even while
/// the dataset loaded before stays in use (walk-through, issue 32, problem 7).
#[test]
fn an_unreadable_image_can_be_skipped_from_the_error_while_another_dataset_is_loaded() {
    let store = tempfile::tempdir().unwrap();
    let root = store.path().join("shapes");
    for class in ["0", "1"] {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        let sources: Vec<_> = std::fs::read_dir(sample("digits").join(class))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .take(6)
            .collect();
        for source in sources {
            std::fs::copy(&source, dir.join(source.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(root.join("1/broken.png"), b"not a png at all").unwrap();
    let mut harness = app(store.path(), ScriptedDialogs::default());
    step_until(&mut harness, "iris", KilnApp::dataset_loaded);
    harness.state_mut().settings_mut().data_path = root.display().to_string();
    harness.step();
    harness.get_by_label("Load").click_accesskit();
    step_until(&mut harness, "the corrupt-image error", |app| {
        app.data_error()
            .is_some_and(|error| error.contains("broken.png"))
    });
    harness.run_steps(2);
    harness
        .get_by_label("Skip unreadable images (and say how many)")
        .click();
    step_until(&mut harness, "the folder, skipping the file", |app| {
        app.loaded_dataset() == Some(root.as_path()) && app.data_error().is_none()
    });
    let warnings = harness.state().data_warnings();
    assert!(
        warnings.iter().any(|w| w.contains("skipped 1")),
        "{warnings:?}"
    );
}
