//! Keeping a model current: warm starts, schema checks on new data, the chain of versions, and
//! `kiln update`'s champion/challenger rule.

mod common;

use common::{kiln, sample, text};

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln::runs::RunStore;
use serde_json::Value;

fn train(runs: &Path, args: &[&str]) -> String {
    let mut full = vec!["train", "--device", "cpu"];
    full.extend_from_slice(args);
    let out = kiln(runs, &full);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

fn first_valid_loss(runs: &Path, run: &str) -> f64 {
    let dir = RunStore::open(runs).unwrap().find(run).unwrap();
    dir.read_metrics()
        .unwrap()
        .series(kiln::runs::SplitName::Valid, "loss")
        .next()
        .unwrap()
        .value
}

#[test]
fn a_warm_start_begins_where_its_parent_was_not_where_a_fresh_model_is() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let iris = sample("iris.csv");
    let iris = iris.to_str().unwrap();
    let parent = train(
        &runs,
        &["--data", iris, "--epochs", "40", "--name", "parent"],
    );
    let record = RunStore::open(&runs)
        .unwrap()
        .find(&parent)
        .unwrap()
        .read_record()
        .unwrap();
    let parent_loss = record.best.unwrap().valid_loss;
    let warm = train(
        &runs,
        &[
            "--data", iris, "--epochs", "1", "--from", "parent", "--name", "warm",
        ],
    );
    let fresh = train(&runs, &["--data", iris, "--epochs", "1", "--name", "fresh"]);
    let (warm_loss, fresh_loss) = (
        first_valid_loss(&runs, &warm),
        first_valid_loss(&runs, &fresh),
    );
    assert!(
        (warm_loss - parent_loss).abs() < 0.25 * (fresh_loss - parent_loss),
        "parent {parent_loss:.4}, warm start's first epoch {warm_loss:.4}, fresh {fresh_loss:.4}"
    );
    // The run records its parent and that parent's data.
    let warm_record = RunStore::open(&runs)
        .unwrap()
        .find(&warm)
        .unwrap()
        .read_record()
        .unwrap();
    let lineage = warm_record.lineage.unwrap();
    let parent_entry = lineage.parent().unwrap();
    assert_eq!(parent_entry.run_id, parent);
    assert_eq!(parent_entry.dataset, record.fingerprint.id);
    assert!(!lineage.refit_stats && !lineage.kept_optimizer);
    // The parent's input statistics are kept.
    assert_eq!(warm_record.preprocessor, record.preprocessor);
    // A flag that would change the architecture is refused.
    let out = kiln(
        &runs,
        &["train", "--data", iris, "--from", "parent", "--hidden", "8"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--hidden"),
        "{}",
        text(&out.stderr)
    );
}

/// Two features; the label is which side of a line a point lies on. `shift` moves the first
/// feature and the line with it: the same kind of data, somewhere a model trained on the
/// unshifted part has not seen.
fn shifted_data(path: &Path, rows: usize, shift: f64, seed: u64) -> PathBuf {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(file, "x1,x2,label").unwrap();
    let mut state = seed.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(3);
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
    };
    for _ in 0..rows {
        let (x1, x2) = (next() + shift, next());
        let label = if (x1 - shift) * 0.5 + x2 > 0.0 {
            "up"
        } else {
            "down"
        };
        writeln!(file, "{x1:.4},{x2:.4},{label}").unwrap();
    }
    path.to_path_buf()
}

#[test]
fn update_replaces_a_model_only_with_a_better_one() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let part_a = shifted_data(&dir.path().join("a.csv"), 400, 0.0, 1);
    let part_b = shifted_data(&dir.path().join("b.csv"), 400, 3.0, 2);
    train(
        &runs,
        &[
            "--data",
            part_a.to_str().unwrap(),
            "--epochs",
            "40",
            "--hidden",
            "16",
            "--name",
            "v1",
        ],
    );
    let v1 = dir.path().join("v1");
    assert!(
        kiln(&runs, &["export", "v1", "--out", v1.to_str().unwrap()])
            .status
            .success()
    );

    // v2 learns the shifted data and beats v1 on it: written.
    let v2 = dir.path().join("v2");
    let out = kiln(
        &runs,
        &[
            "update",
            v1.to_str().unwrap(),
            "--data",
            part_b.to_str().unwrap(),
            "--out",
            v2.to_str().unwrap(),
            "--epochs",
            "40",
            "--lr",
            "0.01",
            "--device",
            "cpu",
        ],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("current accuracy") && stderr.contains("new accuracy"),
        "{stderr}"
    );
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(v2.join("model.card.json")).unwrap())
            .unwrap();
    assert_eq!(card["lineage"].as_array().unwrap().len(), 1);
    assert!(
        kiln(&runs, &["verify", v2.to_str().unwrap()])
            .status
            .success()
    );

    // A bad v3 (an absurd learning rate) on data v2 already fits: refused, nothing written.
    let v3 = dir.path().join("v3");
    let out = kiln(
        &runs,
        &[
            "update",
            v2.to_str().unwrap(),
            "--data",
            part_b.to_str().unwrap(),
            "--out",
            v3.to_str().unwrap(),
            "--epochs",
            "3",
            "--lr",
            "5",
            "--device",
            "cpu",
        ],
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("not better"), "{stderr}");
    assert!(
        stderr.contains("current") && stderr.contains("new"),
        "both numbers: {stderr}"
    );
    assert!(!v3.exists(), "nothing written");
}

#[test]
fn three_versions_keep_their_chain_even_when_the_middle_run_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let iris = sample("iris.csv");
    let iris = iris.to_str().unwrap();
    train(&runs, &["--data", iris, "--epochs", "10", "--name", "v1"]);
    train(
        &runs,
        &[
            "--data", iris, "--epochs", "3", "--from", "v1", "--name", "v2",
        ],
    );
    let v3 = train(
        &runs,
        &[
            "--data", iris, "--epochs", "3", "--from", "v2@last", "--name", "v3",
        ],
    );
    let shown = text(&kiln(&runs, &["show", "v3"]).stdout);
    for version in ["v1 v1 @", "v2 v2 @", "v3 v3 (this run)"] {
        assert!(shown.contains(version), "{version}: {shown}");
    }
    let bundle = dir.path().join("v3-bundle");
    assert!(
        kiln(&runs, &["export", "v3", "--out", bundle.to_str().unwrap()])
            .status
            .success()
    );
    let read_card = || -> Value {
        serde_json::from_str(&std::fs::read_to_string(bundle.join("model.card.json")).unwrap())
            .unwrap()
    };
    let lineage = read_card()["lineage"].clone();
    let names: Vec<&str> = lineage
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["run_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["v1", "v2"]);
    for ancestor in lineage.as_array().unwrap() {
        assert_eq!(ancestor["weights_sha256"].as_str().unwrap().len(), 64);
        assert_eq!(ancestor["dataset"].as_str().unwrap().len(), 64);
    }
    // Deleting the middle run breaks nothing: the history is copied, not referenced.
    assert!(kiln(&runs, &["delete", "v2", "--yes"]).status.success());
    assert!(
        kiln(&runs, &["verify", bundle.to_str().unwrap()])
            .status
            .success()
    );
    assert_eq!(read_card()["lineage"], lineage);
    let shown = text(&kiln(&runs, &["show", &v3]).stdout);
    assert!(shown.contains("v2 v2 @"), "{shown}");
    // And v4 can start from v3's bundle.
    train(
        &runs,
        &[
            "--data",
            iris,
            "--epochs",
            "1",
            "--from",
            bundle.to_str().unwrap(),
            "--name",
            "v4",
        ],
    );
    let shown = text(&kiln(&runs, &["show", "v4"]).stdout);
    assert!(
        shown.contains("v3 v3 @") && shown.contains("from bundle"),
        "{shown}"
    );
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

#[test]
fn new_data_that_does_not_fit_the_model_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let iris = std::fs::read_to_string(sample("iris.csv")).unwrap();
    train(
        &runs,
        &[
            "--data",
            sample("iris.csv").to_str().unwrap(),
            "--epochs",
            "3",
            "--name",
            "iris",
        ],
    );
    let mut colors = String::from("x,color,label\n");
    for i in 0..60 {
        let color = ["red", "green"][i % 2];
        colors.push_str(&format!("{},{color},{}\n", i % 7, ["a", "b"][i % 2]));
    }
    let colors_file = write(&dir.path().join("colors.csv"), &colors);
    train(
        &runs,
        &[
            "--data",
            colors_file.to_str().unwrap(),
            "--epochs",
            "2",
            "--name",
            "colors",
        ],
    );
    let missing: String = iris
        .lines()
        .map(|line| line.rsplitn(2, ',').collect::<Vec<_>>())
        .map(|parts| {
            let cells: Vec<&str> = parts[1].split(',').collect();
            format!("{},{},{},{}", cells[0], cells[1], cells[2], parts[0])
        })
        .collect::<Vec<_>>()
        .join("\n");
    let extra: String = iris
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 {
                format!("{line},note")
            } else {
                format!("{line},x")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let new_class = iris.replacen("setosa", "orchid", 3);
    let new_category = colors.replacen("red", "purple", 2);
    let cases = [
        (
            "iris",
            write(&dir.path().join("missing.csv"), &missing),
            "petal_width",
        ),
        ("iris", write(&dir.path().join("extra.csv"), &extra), "note"),
        (
            "iris",
            write(&dir.path().join("class.csv"), &new_class),
            "'orchid'",
        ),
        (
            "colors",
            write(&dir.path().join("category.csv"), &new_category),
            "'purple'",
        ),
    ];
    for (model, data, expected) in &cases {
        let out = kiln(
            &runs,
            &[
                "train",
                "--data",
                data.to_str().unwrap(),
                "--from",
                model,
                "--device",
                "cpu",
            ],
        );
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{expected}: trained");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    // The new category's message names its lines and the ways it cannot be taken.
    let out = kiln(
        &runs,
        &[
            "train",
            "--data",
            cases[3].1.to_str().unwrap(),
            "--from",
            "colors",
        ],
    );
    assert!(
        text(&out.stderr).contains("lines 2, 4"),
        "{}",
        text(&out.stderr)
    );
    // Image models: the same size.
    let digits = sample("digits");
    train(
        &runs,
        &[
            "--data",
            digits.to_str().unwrap(),
            "--epochs",
            "1",
            "--name",
            "digits",
        ],
    );
    let out = kiln(
        &runs,
        &[
            "train",
            "--data",
            digits.to_str().unwrap(),
            "--from",
            "digits",
            "--size",
            "16x16",
        ],
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("16×16") && stderr.contains("8×8"),
        "{stderr}"
    );
    // Nothing was trained by any refused attempt.
    assert_eq!(RunStore::open(&runs).unwrap().list().unwrap().len(), 3);
}

#[test]
fn the_window_trains_a_new_version_from_a_checkpoint_and_shows_its_chain_and_comparison() {
    use common::app::{app_on, step_until};
    use egui_kittest::kittest::Queryable;
    use kiln::ui::KilnApp;
    use kiln::ui::dialogs::ScriptedDialogs;

    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let iris = sample("iris.csv");
    let parent = train(
        &runs,
        &[
            "--data",
            iris.to_str().unwrap(),
            "--epochs",
            "10",
            "--name",
            "v1",
        ],
    );
    let mut harness = app_on(
        &runs,
        ScriptedDialogs::default(),
        iris.clone(),
        [1400.0, 900.0],
    );
    step_until(&mut harness, "the run's curves", |app| {
        app.dataset_loaded() && app.run_curves_loaded(&parent)
    });
    harness
        .get_by_label("Checkpoint & export")
        .click_accesskit();
    harness.run_steps(2);
    harness
        .get_by_label_contains("Select the best checkpoint of v1")
        .click_accesskit();
    harness.run_steps(2);
    harness.get_by_label("Train on new data…").click_accesskit();
    harness.run_steps(2);
    assert!(
        harness
            .query_by_label_contains("Starts from v1 at epoch")
            .is_some()
    );
    harness.state_mut().settings_mut().train.epochs = 3;
    harness.step();
    harness.get_by_label("▶ Train").click();
    step_until(&mut harness, "the new version", |app| {
        app.last_finished().is_some()
    });
    let (child, message) = harness.state().last_finished().unwrap();
    assert!(message.contains("trained 3 epochs"), "{message}");
    let record = RunStore::open(&runs)
        .unwrap()
        .find(&child)
        .unwrap()
        .read_record()
        .unwrap();
    assert_eq!(record.lineage.unwrap().parent().unwrap().run_id, parent);

    // Its checkpoint shows the chain and how it compares with its parent before export.
    step_until(&mut harness, "the child's curves", |app| {
        app.run_curves_loaded(&child)
    });
    let best = RunStore::open(&runs)
        .unwrap()
        .find(&child)
        .unwrap()
        .read_index()
        .unwrap()
        .best()
        .unwrap()
        .epoch;
    harness.state_mut().select_checkpoint(&child, best);
    // The comparison runs in the background; wait for it to be shown.
    for _ in 0..500 {
        if harness
            .query_by_label_contains("against the parent's")
            .is_some()
        {
            break;
        }
        harness.step();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(harness.query_by_label_contains("Versions:").is_some());
    assert!(harness.query_by_label_contains("v1 v1@").is_some());
    assert!(
        harness
            .query_by_label_contains("against the parent's")
            .is_some(),
        "the comparison with the parent is shown"
    );
    let _: &KilnApp = harness.state();
}
