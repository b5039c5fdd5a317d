//! Sweeps end to end: specs and their errors, grid/random/TPE trials as runs, seeds, pruning,
//! kill -9 and resume, the test split that selection never reads, and promotion.

mod common;

use common::{kiln, sample, text};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln::runs::{RunListing, RunStatus, RunStore};
use kiln::sweep::{SweepRecord, SweepState, SweepStore, TrialStatus};
use serde_json::{Value, json};

/// A spec on iris with the given search; small and fast.
fn spec(parameters: Value, method: &str, extra: Value) -> Value {
    let mut spec = json!({
        "name": "iris-sweep",
        "data": { "path": sample("iris.csv") },
        "model": { "kind": "mlp", "hidden": [16], "activation": "relu", "dropout": 0.0 },
        "train": {
            "optimizer": { "kind": "adam" },
            "learning_rate": 0.01,
            "schedule": { "kind": "constant" },
            "batch_size": 16,
            "epochs": 8,
            "seed": 42
        },
        "device": "cpu",
        "parameters": parameters,
        "method": method,
        "metric": "valid_loss",
        "max_trials": 6,
        "concurrency": 2,
        "seed": 3
    });
    if let (Value::Object(spec), Value::Object(extra)) = (&mut spec, extra) {
        spec.extend(extra);
    }
    spec
}

fn write_spec(dir: &Path, name: &str, spec: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(spec).unwrap()).unwrap();
    path
}

/// `kiln sweep run`; returns the sweep id (its last stdout line).
fn run_sweep(runs: &Path, spec: &Path) -> String {
    let out = kiln(runs, &["sweep", "run", spec.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .find(|line| line.contains("-iris-sweep-"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn record(runs: &Path, id: &str) -> SweepRecord {
    SweepStore::open(runs).find(id).unwrap()
}

fn params_in_order(record: &SweepRecord) -> Vec<Value> {
    record
        .summaries()
        .iter()
        .map(|summary| json!(summary.params))
        .collect()
}

#[test]
fn a_grid_sweep_runs_every_point_as_an_ordinary_tagged_run() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let spec = write_spec(
        dir.path(),
        "grid.json",
        &spec(
            json!({
                "train.learning_rate": { "float": [0.001, 0.1], "log": true, "steps": 3 },
                "model.hidden": [[8], [16, 8]]
            }),
            "grid",
            json!({ "max_trials": 10 }),
        ),
    );
    let id = run_sweep(&runs, &spec);
    let sweep = record(&runs, &id);
    assert_eq!(sweep.state, SweepState::Completed);
    // 3 × 2 points, fewer than the budget of 10: the grid ends the sweep.
    assert_eq!(sweep.summaries().len(), 6);
    let listings = RunStore::open(&runs).unwrap().list().unwrap();
    assert_eq!(listings.len(), 6);
    for listing in &listings {
        let RunListing::Run { record, .. } = listing else {
            panic!("broken run {listing:?}")
        };
        let tag = record.sweep.as_ref().expect("every trial is tagged");
        assert_eq!(tag.sweep_id, id);
        assert!(record.name.starts_with("iris-sweep-t"), "{}", record.name);
    }
    let rates: std::collections::BTreeSet<String> = sweep
        .trials
        .iter()
        .map(|t| format!("{:.4}", t.params["train.learning_rate"].as_f64().unwrap()))
        .collect();
    assert_eq!(rates.len(), 3, "{rates:?}");
    // The ordinary run commands work on trials.
    let run = sweep.trials[0].run_id.clone().unwrap();
    assert!(kiln(&runs, &["show", &run]).status.success());

    // The same spec and seed choose the same trials in the same order.
    let again = run_sweep(&runs, &spec);
    assert_eq!(
        params_in_order(&record(&runs, &again)),
        params_in_order(&sweep)
    );
    let shown = kiln(&runs, &["sweep", "show", &id, "--json"]);
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("sweep show --json is JSON");
    assert_eq!(shown["trials"].as_array().unwrap().len(), 6);
    assert!(shown["trials"][0]["params"]["train.learning_rate"].is_number());
}

#[test]
fn tpe_and_random_sweeps_repeat_their_trials_for_the_same_seed() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let parameters = json!({
        "train.learning_rate": { "float": [0.0001, 0.5], "log": true },
        "model.dropout": { "float": [0.0, 0.4] },
        "train.optimizer": ["adam", "sgd"]
    });
    for method in ["tpe", "random"] {
        // TPE learns from earlier trials' results; with one trial at a time those are the same
        // in both sweeps (CPU training repeats exactly), so the suggestions are too.
        let spec = write_spec(
            dir.path(),
            &format!("{method}.json"),
            &spec(
                parameters.clone(),
                method,
                json!({ "max_trials": 7, "concurrency": 1 }),
            ),
        );
        let first = run_sweep(&runs, &spec);
        let second = run_sweep(&runs, &spec);
        let (first, second) = (record(&runs, &first), record(&runs, &second));
        assert_eq!(first.summaries().len(), 7);
        assert_eq!(
            params_in_order(&first),
            params_in_order(&second),
            "{method}"
        );
        let values: Vec<Option<f64>> = first.summaries().iter().map(|s| s.value).collect();
        let again: Vec<Option<f64>> = second.summaries().iter().map(|s| s.value).collect();
        assert_eq!(
            values, again,
            "{method}: the same trials give the same results"
        );
    }
}

#[test]
fn absurd_learning_rates_end_pruned_or_diverged_and_a_good_trial_reaches_90_percent() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let spec = write_spec(
        dir.path(),
        "lr.json",
        &spec(
            json!({ "train.learning_rate": [0.003, 0.01, 0.03, 10.0, 30.0] }),
            "grid",
            json!({
                "max_trials": 5,
                "metric": "valid_accuracy",
                "concurrency": 2,
                "train": {
                    "optimizer": { "kind": "sgd", "momentum": 0.9 },
                    "learning_rate": 0.01,
                    "schedule": { "kind": "constant" },
                    "batch_size": 16,
                    "epochs": 40,
                    "seed": 42
                },
                "pruner": { "kind": "median", "min_epochs": 3 }
            }),
        ),
    );
    let id = run_sweep(&runs, &spec);
    let sweep = record(&runs, &id);
    let mut good = 0;
    for summary in sweep.summaries() {
        let rate = summary.params["train.learning_rate"].as_f64().unwrap();
        let status = summary.status();
        if rate >= 10.0 {
            assert!(
                matches!(status, TrialStatus::Pruned | TrialStatus::Diverged),
                "learning rate {rate} ended {status:?}"
            );
        }
        if summary.value.is_some_and(|accuracy| accuracy >= 0.9) {
            good += 1;
        }
    }
    assert!(good >= 1, "{:#?}", sweep.summaries());
    // Pruned trials are runs with their own status, shown as such.
    let pruned_runs: Vec<String> = sweep
        .trials
        .iter()
        .filter(|t| t.status == TrialStatus::Pruned)
        .filter_map(|t| t.run_id.clone())
        .collect();
    for run in pruned_runs {
        let dir = RunStore::open(&runs).unwrap().find(&run).unwrap();
        assert_eq!(dir.status().unwrap(), RunStatus::Pruned);
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_9_mid_sweep_then_resume_finishes_the_budget_without_running_a_trial_twice() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let spec = write_spec(
        dir.path(),
        "long.json",
        &spec(
            json!({ "train.learning_rate": { "float": [0.001, 0.05], "log": true } }),
            "random",
            json!({
                "max_trials": 5,
                "concurrency": 2,
                "train": {
                    "optimizer": { "kind": "adam" },
                    "learning_rate": 0.01,
                    "schedule": { "kind": "constant" },
                    "batch_size": 1,
                    "epochs": 30,
                    "seed": 42
                }
            }),
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["sweep", "run", spec.to_str().unwrap(), "--runs-dir"])
        .arg(&runs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kiln starts");
    let store = SweepStore::open(&runs);
    wait_for(
        "a finished trial and a running one",
        Duration::from_secs(120),
        || {
            store.list().into_iter().flatten().any(|sweep| {
                let finished = sweep.trials.iter().filter(|t| t.status.is_final()).count();
                let running = sweep
                    .trials
                    .iter()
                    .filter(|t| t.status == TrialStatus::Running)
                    .count();
                finished >= 1 && running >= 1
            })
        },
    );
    // SIGKILL: no chance to record anything.
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = store.list().into_iter().flatten().next().unwrap();
    let finished_before: Vec<(usize, String)> = killed
        .trials
        .iter()
        .filter(|t| t.status.is_final())
        .map(|t| (t.trial, t.run_id.clone().unwrap()))
        .collect();
    let metrics_before: Vec<String> = finished_before
        .iter()
        .map(|(_, run)| {
            let dir = RunStore::open(&runs).unwrap().find(run).unwrap();
            std::fs::read_to_string(dir.metrics_path()).unwrap()
        })
        .collect();
    let listed = kiln(&runs, &["sweep", "list"]);
    assert!(
        text(&listed.stdout).contains("interrupted"),
        "{}",
        text(&listed.stdout)
    );

    let out = kiln(&runs, &["sweep", "resume", &killed.id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let done = record(&runs, &killed.id);
    assert_eq!(done.state, SweepState::Completed);
    let summaries = done.summaries();
    assert_eq!(summaries.len(), 5, "the whole budget");
    let numbers: Vec<usize> = summaries.iter().map(|s| s.trial).collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5], "every trial listed once");
    assert!(done.trials.iter().all(|t| t.status.is_final()));
    // Finished trials kept their runs and did not train again.
    for ((trial, run), before) in finished_before.iter().zip(&metrics_before) {
        let now = done.trials.iter().find(|t| t.trial == *trial).unwrap();
        assert_eq!(now.run_id.as_ref(), Some(run));
        let dir = RunStore::open(&runs).unwrap().find(run).unwrap();
        assert_eq!(
            &std::fs::read_to_string(dir.metrics_path()).unwrap(),
            before
        );
    }
    // One run per trial in the store: interrupted ones continued in their own folders.
    let listed: Vec<String> = RunStore::open(&runs)
        .unwrap()
        .list()
        .unwrap()
        .iter()
        .map(|listing| match listing {
            kiln::runs::RunListing::Run { dir, record, .. } => {
                format!(
                    "{} {:?} {:?}",
                    dir.id,
                    record.status,
                    record.sweep.as_ref().map(|t| t.trial)
                )
            }
            kiln::runs::RunListing::Broken { id, error, .. } => format!("{id} broken: {error}"),
        })
        .collect();
    assert_eq!(listed.len(), 5, "{listed:#?}\n{:#?}", done.trials);
    for trial in &done.trials {
        let dir = RunStore::open(&runs)
            .unwrap()
            .find(trial.run_id.as_ref().unwrap())
            .unwrap();
        let log = dir.read_metrics().unwrap();
        let epochs: Vec<usize> = log
            .series(kiln::runs::SplitName::Valid, "loss")
            .map(|p| p.epoch)
            .collect();
        let unique: std::collections::BTreeSet<usize> = epochs.iter().copied().collect();
        assert_eq!(
            epochs.len(),
            unique.len(),
            "every epoch logged once: {epochs:?}"
        );
    }
}

#[test]
fn bad_specs_are_refused_naming_the_field_before_any_trial() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let lr = json!({ "train.learning_rate": [0.01] });
    let cases = [
        (
            spec(json!({ "train.lerning_rate": [0.01] }), "grid", json!({})),
            "parameters.train.lerning_rate",
        ),
        (
            spec(
                json!({ "model.dropout": { "float": [0.5, 0.1] } }),
                "random",
                json!({}),
            ),
            "empty",
        ),
        (
            spec(
                json!({ "train.learning_rate": { "float": [0, 0.1], "log": true } }),
                "random",
                json!({}),
            ),
            "above 0",
        ),
        (
            spec(lr.clone(), "grid", json!({ "concurrency": 0 })),
            "concurrency",
        ),
        (
            spec(
                lr.clone(),
                "grid",
                json!({ "data": { "path": sample("diabetes.csv") }, "metric": "valid_accuracy" }),
            ),
            "valid_accuracy",
        ),
        (
            spec(json!({ "model.dropout": [0.2, 1.5] }), "grid", json!({})),
            "1.5",
        ),
        (
            spec(
                json!({ "model.dropout": { "float": [0.0, 0.5] } }),
                "grid",
                json!({}),
            ),
            "steps",
        ),
    ];
    for (index, (spec, expected)) in cases.iter().enumerate() {
        let path = write_spec(dir.path(), &format!("bad-{index}.json"), spec);
        let out = kiln(&runs, &["sweep", "run", path.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "case {index} ran: {stderr}");
        assert!(stderr.contains(expected), "case {index}: {stderr}");
    }
    let invalid = dir.path().join("invalid.json");
    std::fs::write(&invalid, "{ \"method\": \"grid\", ").unwrap();
    let out = kiln(&runs, &["sweep", "run", invalid.to_str().unwrap()]);
    assert!(
        text(&out.stderr).contains("not valid JSON"),
        "{}",
        text(&out.stderr)
    );
    // Nothing trained.
    let runs_made = RunStore::open(&runs).map_or(0, |store| store.list().unwrap().len());
    assert_eq!(runs_made, 0);
}

/// A test file whose rows would wreck the metrics if training or selection read them.
fn test_files(dir: &Path) -> (PathBuf, PathBuf) {
    let iris = std::fs::read_to_string(sample("iris.csv")).unwrap();
    let mut lines = iris.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let clean: String = std::iter::once(header)
        .chain(rows.iter().step_by(5).copied())
        .collect::<Vec<_>>()
        .join("\n");
    let poisoned: String = std::iter::once(header.to_string())
        .chain(rows.iter().step_by(5).map(|row| {
            // Extreme features, and every label swapped for another class.
            let cells: Vec<&str> = row.split(',').collect();
            let label = match cells[4] {
                "setosa" => "virginica",
                "virginica" => "versicolor",
                _ => "setosa",
            };
            format!("9999,-9999,9999,-9999,{label}")
        }))
        .collect::<Vec<_>>()
        .join("\n");
    let (a, b) = (dir.join("test-clean.csv"), dir.join("test-poisoned.csv"));
    std::fs::write(&a, clean + "\n").unwrap();
    std::fs::write(&b, poisoned + "\n").unwrap();
    (a, b)
}

fn valid_metrics(runs: &Path, run: &str) -> Vec<(usize, String, String, u64)> {
    let dir = RunStore::open(runs).unwrap().find(run).unwrap();
    dir.read_metrics()
        .unwrap()
        .points
        .iter()
        .map(|p| {
            (
                p.epoch,
                p.split.name().to_string(),
                p.metric.clone(),
                p.value.to_bits(),
            )
        })
        .collect()
}

#[test]
fn no_training_sweep_or_pruning_step_reads_the_test_split_and_promote_scores_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, poisoned) = test_files(dir.path());
    let mut outcomes = Vec::new();
    for (name, test_file) in [("clean", &clean), ("poisoned", &poisoned)] {
        let runs = dir.path().join(name);
        let spec = write_spec(
            dir.path(),
            &format!("{name}.json"),
            &spec(
                json!({ "train.learning_rate": [0.003, 0.01, 0.03, 0.1] }),
                "grid",
                json!({
                    "data": { "path": sample("iris.csv"), "test": { "file": test_file } },
                    // One at a time: the pruner then compares with the same trials both times.
                    "concurrency": 1,
                    "pruner": { "kind": "median", "min_epochs": 2 },
                    "train": {
                        "optimizer": { "kind": "adam" },
                        "learning_rate": 0.01,
                        "schedule": { "kind": "constant" },
                        "batch_size": 16,
                        "epochs": 12,
                        "seed": 42,
                        "early_stopping_patience": 4
                    }
                }),
            ),
        );
        let id = run_sweep(&runs, &spec);
        let sweep = record(&runs, &id);
        let trials: Vec<(Value, Option<String>, TrialStatus)> = sweep
            .trials
            .iter()
            .map(|t| {
                (
                    json!(t.params),
                    t.best.map(|v| format!("{v:.12}")),
                    t.status,
                )
            })
            .collect();
        let metrics: Vec<_> = sweep
            .trials
            .iter()
            .map(|t| valid_metrics(&runs, t.run_id.as_ref().unwrap()))
            .collect();
        let out = kiln(
            &runs,
            &[
                "sweep",
                "promote",
                &id,
                "--out",
                dir.path().join(format!("{name}-best")).to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("test split:"),
            "{}",
            text(&out.stdout)
        );
        let card: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(format!("{name}-best/model.card.json")))
                .unwrap(),
        )
        .unwrap();
        outcomes.push((trials, metrics, card));
    }
    let (clean, poisoned) = (&outcomes[0], &outcomes[1]);
    // Training, validation, pruning, early stopping and the ranking saw the same thing.
    assert_eq!(
        clean.0, poisoned.0,
        "trials, their best values and statuses"
    );
    assert_eq!(clean.1, poisoned.1, "every logged metric, bit for bit");
    assert_eq!(clean.2["sweep"]["trial"], poisoned.2["sweep"]["trial"]);
    // Only the final test score differs: it read the rows, once.
    let accuracy = |card: &Value| card["test"]["metrics"]["test_accuracy"].as_f64().unwrap();
    assert!(accuracy(&clean.2) >= 0.8, "{}", clean.2["test"]);
    assert!(accuracy(&poisoned.2) <= 0.4, "{}", poisoned.2["test"]);
    assert_eq!(clean.2["test"]["rows"], 30);
    // The card names the sweep, the trial's rank and its settings.
    assert_eq!(clean.2["sweep"]["rank"], 1);
    assert!(clean.2["sweep"]["params"]["train.learning_rate"].is_number());
}

#[test]
fn promote_exports_the_best_checkpoint_not_the_last_and_the_bundle_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    // A wide MLP overfits the diabetes regression: validation loss bottoms out early.
    let spec = write_spec(
        dir.path(),
        "overfit.json",
        &spec(
            json!({ "train.learning_rate": [0.01, 0.003] }),
            "grid",
            json!({
                "data": { "path": sample("diabetes.csv") },
                "train": {
                    "optimizer": { "kind": "adam" },
                    "learning_rate": 0.01,
                    "schedule": { "kind": "constant" },
                    "batch_size": 16,
                    "epochs": 30,
                    "seed": 42
                },
                "model": { "kind": "mlp", "hidden": [128, 128], "activation": "relu", "dropout": 0.0 }
            }),
        ),
    );
    let id = run_sweep(&runs, &spec);
    let (run, epoch, card) = kiln::export::winner(&runs, &id).unwrap();
    let store_dir = RunStore::open(&runs).unwrap().find(&run).unwrap();
    let record = store_dir.read_record().unwrap();
    assert!(
        epoch < record.epochs_completed,
        "the best epoch ({epoch}) is before the last ({})",
        record.epochs_completed
    );
    assert_eq!(card.trial, record.sweep.as_ref().unwrap().trial);
    let out_dir = dir.path().join("best");
    let out = kiln(
        &runs,
        &["sweep", "promote", &id, "--out", out_dir.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let entry = store_dir
        .read_index()
        .unwrap()
        .checkpoints
        .into_iter()
        .find(|c| c.epoch == epoch)
        .unwrap();
    let checkpoint = store_dir.read_checkpoint_file(&entry.model_file).unwrap();
    let exported = std::fs::read(out_dir.join("model.bpk")).unwrap();
    assert_eq!(
        exported, checkpoint,
        "the exported weights are that checkpoint's"
    );
    let verify = kiln(&runs, &["verify", out_dir.to_str().unwrap()]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("model.card.json")).unwrap())
            .unwrap();
    assert_eq!(card["epoch"], epoch);
    assert_eq!(card["sweep"]["sweep_id"], id.as_str());
}
