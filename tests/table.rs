//! Many runs: the store index, `kiln runs --filter`, exact re-runs, and the run table in the
//! window (filter → tick top N → plot, seed groups, a clicked curve's row).

mod common;

use common::app::{app_on, step_until, train_with};
use common::{kiln, sample, text};

use std::path::Path;

use egui_kittest::kittest::Queryable;
use kiln::model::{MlpConfig, ModelConfig};
use kiln::runs::RunStore;
use kiln::train::TrainConfig;
use kiln::ui::KilnApp;
use kiln::ui::dialogs::ScriptedDialogs;

fn quick_run(runs: &Path, name: &str, learning_rate: f64, seed: u64) -> String {
    train_with(
        runs,
        name,
        ModelConfig::Mlp(MlpConfig {
            hidden: vec![16],
            ..MlpConfig::default()
        }),
        TrainConfig {
            epochs: 4,
            learning_rate,
            seed,
            batch_size: 16,
            ..TrainConfig::default()
        },
    )
}

#[test]
fn the_index_rereads_only_changed_runs_and_is_never_the_only_copy() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    for (i, rate) in [0.01, 0.02, 0.05].iter().enumerate() {
        quick_run(runs, &format!("run-{i}"), *rate, 1);
    }
    let store = RunStore::open(runs).unwrap();
    let first = store.summaries().unwrap();
    assert_eq!((first.runs.len(), first.reread), (3, 3));
    let again = store.summaries().unwrap();
    assert_eq!(
        (again.runs.len(), again.reread),
        (3, 0),
        "all from the index"
    );
    assert_eq!(again.runs, first.runs);
    // A rename rewrites one run.json: one run is read again.
    store.rename("run-1", "renamed").unwrap();
    let after = store.summaries().unwrap();
    assert_eq!(after.reread, 1);
    assert!(after.runs.iter().any(|run| run.name == "renamed"));
    // Without (or with a broken) index everything is still there, read from the runs.
    std::fs::write(runs.join(".kiln-index.json"), b"{ not json").unwrap();
    let rebuilt = store.summaries().unwrap();
    assert_eq!((rebuilt.runs.len(), rebuilt.reread), (3, 3));
    std::fs::remove_file(runs.join(".kiln-index.json")).unwrap();
    assert_eq!(store.summaries().unwrap().runs, rebuilt.runs);
    // A deleted run leaves the listing.
    let doomed = store.find("run-0").unwrap();
    store.delete(&doomed).unwrap();
    assert_eq!(store.summaries().unwrap().runs.len(), 2);
}

#[test]
fn kiln_runs_filters_with_the_tables_expressions() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    quick_run(runs, "slow", 0.001, 1);
    quick_run(runs, "fast", 0.05, 1);
    let out = kiln(
        runs,
        &["runs", "--filter", "lr >= 0.01 && status == completed"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("fast") && !table.contains("slow"), "{table}");
    let out = kiln(runs, &["runs", "--filter", "valid_loss < 100", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert!(rows[0]["config"]["train.learning_rate"].is_number());
    assert!(rows[0]["metrics"]["valid_loss"]["best"].is_number());
    let out = kiln(runs, &["runs", "--filter", "lr <"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("expected a value"),
        "{}",
        text(&out.stderr)
    );
}

fn metric_values(runs: &Path, run: &str) -> Vec<(usize, String, String, u64)> {
    let dir = RunStore::open(runs).unwrap().find(run).unwrap();
    dir.read_metrics()
        .unwrap()
        .points
        .iter()
        .filter(|point| point.metric != "batch_loss")
        .map(|point| {
            (
                point.epoch,
                point.split.name().to_string(),
                point.metric.clone(),
                point.value.to_bits(),
            )
        })
        .collect()
}

#[test]
fn a_rerun_repeats_the_metrics_exactly_on_the_cpu_and_refuses_changed_data() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let data = dir.path().join("iris.csv");
    std::fs::copy(sample("iris.csv"), &data).unwrap();
    let out = kiln(
        &runs,
        &[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "6",
            "--device",
            "cpu",
            "--name",
            "original",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let original = text(&out.stdout).trim().to_string();
    let out = kiln(&runs, &["rerun", "original"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = text(&out.stdout).trim().to_string();
    assert_ne!(again, original);
    assert_eq!(
        metric_values(&runs, &again),
        metric_values(&runs, &original),
        "every metric of every epoch, bit for bit"
    );
    // One changed row and the re-run is refused, saying what changed.
    let changed = std::fs::read_to_string(&data)
        .unwrap()
        .replacen("5.1,3.5", "5.2,3.5", 1);
    std::fs::write(&data, changed).unwrap();
    let out = kiln(&runs, &["rerun", "original"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("content of") && stderr.contains("changed"),
        "{stderr}"
    );
}

#[test]
fn filter_then_tick_the_top_runs_and_they_are_plotted() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    for (name, rate) in [
        ("a", 0.003),
        ("b", 0.01),
        ("c", 0.03),
        ("d", 0.1),
        ("e", 0.5),
    ] {
        quick_run(runs, name, rate, 1);
    }
    let mut harness = app_on(
        runs,
        ScriptedDialogs::default(),
        sample("iris.csv"),
        [1400.0, 900.0],
    );
    step_until(&mut harness, "the runs", |app| {
        app.run_summaries().len() == 5
    });
    harness.run_steps(2);
    harness.get_by_label("Runs").click_accesskit();
    harness.run_steps(2);
    assert_eq!(harness.state().table_run_ids().len(), 5);

    // A bad expression says what is wrong and filters nothing.
    harness.get_by_label("Filter").click();
    harness.run_steps(1);
    harness.get_by_label("Filter").type_text("lr <");
    harness.run_steps(2);
    let error = harness.state().table_filter_error().unwrap();
    assert!(error.contains("expected a value"), "{error}");
    assert_eq!(harness.state().table_run_ids().len(), 5);
    harness
        .get_by_label("Filter")
        .type_text(" 0.2 && lr > 0.005");
    harness.run_steps(3);
    assert_eq!(harness.state().table_filter_error(), None);
    let shown = harness.state().table_run_ids();
    assert_eq!(shown.len(), 3, "b, c and d");

    // Tick the best two of those by validation loss: they are what the plot shows.
    harness.get_by_label("Tick top").set_value_accesskit(2.0);
    harness.run_steps(1);
    harness.get_by_label("Tick").click();
    harness.run_steps(2);
    let ticked = harness.state().selected_runs().to_vec();
    assert_eq!(ticked.len(), 2);
    let summaries = harness.state().run_summaries().to_vec();
    let loss =
        |id: &str| summaries.iter().find(|run| run.id == id).unwrap().metrics["valid_loss"].best;
    let mut candidates: Vec<&String> = shown.iter().collect();
    candidates.sort_by(|a, b| loss(a).total_cmp(&loss(b)));
    let mut expected: Vec<String> = candidates[..2].iter().map(|id| id.to_string()).collect();
    let mut got = ticked.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    step_until(&mut harness, "their curves", |app| {
        app.last_plot().legend.len() == 2
    });
}

#[test]
fn repeats_with_other_seeds_draw_as_one_band_flagged_when_data_differs() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    let mut ids = Vec::new();
    for seed in [1, 2, 3] {
        ids.push(quick_run(runs, &format!("s{seed}"), 0.01, seed));
    }
    ids.push(quick_run(runs, "other", 0.05, 1));
    let mut harness = app_on(
        runs,
        ScriptedDialogs::default(),
        sample("iris.csv"),
        [1400.0, 900.0],
    );
    step_until(&mut harness, "the runs", |app| {
        app.run_summaries().len() == 4
    });
    harness.state_mut().settings_mut().selected_runs = ids.clone();
    harness.state_mut().settings_mut().plot.group_seeds = true;
    step_until(&mut harness, "the curves", |app| {
        ids.iter().all(|id| app.run_curves_loaded(id))
    });
    harness.run_steps(3);
    let plot = harness.state().last_plot().clone();
    assert_eq!(plot.groups_drawn, 2, "{plot:?}");
    assert!(
        plot.legend.iter().any(|name| name.ends_with("+2")),
        "{plot:?}"
    );
    assert!(harness.query_by_label_contains("mixed data").is_none());
}

#[test]
fn the_window_lists_a_run_written_by_another_process_without_polling() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    let mut harness = app_on(
        runs,
        ScriptedDialogs::default(),
        sample("iris.csv"),
        [1280.0, 800.0],
    );
    step_until(&mut harness, "the first scan", |app| !app.is_busy());
    assert!(harness.state().store_watched(), "the store is watched");
    let id = quick_run(runs, "from-elsewhere", 0.01, 1);
    step_until(&mut harness, "the watcher", |app| {
        app.run_summaries()
            .iter()
            .any(|run| run.id == id && run.epochs_completed == 4)
    });
    let _: &KilnApp = harness.state();
}
