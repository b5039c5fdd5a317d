//! The command line, end to end: train, list, show, export, predict, verify, errors.

mod common;

use common::{kiln, sample, text};

use std::process::Command;

#[test]
fn train_list_show_export_predict_verify() {
    let runs = tempfile::tempdir().unwrap();
    let data = sample("iris.csv");
    let out = kiln(
        runs.path(),
        &[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "40",
            "--device",
            "cpu",
            "--name",
            "cli-iris",
            "--batch-size",
            "16",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("epoch   40"), "{stderr}");
    assert!(stderr.contains("valid acc"), "{stderr}");
    let run_id = text(&out.stdout).trim().to_string();
    assert!(run_id.contains("cli-iris"), "{run_id}");

    let out = kiln(runs.path(), &["runs"]);
    assert!(out.status.success());
    let table = text(&out.stdout);
    assert!(
        table.contains(&run_id) && table.contains("completed") && table.contains("40/40"),
        "{table}"
    );

    let out = kiln(runs.path(), &["runs", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("runs --json is JSON");
    assert_eq!(rows[0]["id"], run_id.as_str());
    assert_eq!(rows[0]["epochs"], 40);
    assert!(rows[0]["best_valid_accuracy"].as_f64().unwrap() > 0.8);

    let out = kiln(runs.path(), &["show", "cli-iris", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["record"]["schema"]["target"]["name"], "species");
    assert!(
        shown["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["best"] == true)
    );
    let out = kiln(runs.path(), &["show", &run_id]);
    assert!(text(&out.stdout).contains("fingerprint:"));

    let exports = tempfile::tempdir().unwrap();
    let bundle = exports.path().join("exported");
    let out = kiln(
        runs.path(),
        &[
            "export",
            &format!("{run_id}@best"),
            "--out",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = kiln(
        runs.path(),
        &["export", &run_id, "--out", bundle.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    let out = kiln(
        runs.path(),
        &[
            "export",
            &format!("{run_id}@last"),
            "--out",
            bundle.to_str().unwrap(),
            "--force",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = kiln(
        runs.path(),
        &[
            "predict",
            "--model",
            bundle.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("prediction,p_setosa,p_versicolor,p_virginica")
    );
    assert_eq!(lines.count(), 150);

    let out = kiln(runs.path(), &["verify", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    // Tampering with the weights is caught.
    let weights = bundle.join("model.bpk");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&weights, bytes).unwrap();
    let out = kiln(runs.path(), &["verify", bundle.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("FAIL model.bpk"),
        "{}",
        text(&out.stdout)
    );

    let out = kiln(runs.path(), &["rename", &run_id, "renamed run"]);
    assert!(out.status.success());
    let out = kiln(runs.path(), &["delete", "renamed run", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = kiln(runs.path(), &["runs", "--json"]);
    assert_eq!(text(&out.stdout).trim(), "[]");
}

#[test]
fn errors_go_to_stderr_with_a_failing_exit_code() {
    let runs = tempfile::tempdir().unwrap();
    let bad = runs.path().join("bad.csv");
    std::fs::write(&bad, "a,b,label\n1,2,x\n3\n").unwrap();
    let out = kiln(
        runs.path(),
        &["train", "--data", bad.to_str().unwrap(), "--device", "cpu"],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("bad.csv"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = kiln(runs.path(), &["show", "nope"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no run matches 'nope'"));

    let out = kiln(
        runs.path(),
        &["predict", "--model", "/no/model", "--data", "x.csv"],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/no/model"));
}

#[test]
fn ctrl_c_stops_training_cleanly_and_leaves_a_resumable_run() {
    use std::io::{BufRead, BufReader};
    let runs = tempfile::tempdir().unwrap();
    let data = sample("diabetes.csv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "train",
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "100000",
            "--batch-size",
            "1",
            "--device",
            "cpu",
        ])
        .arg("--runs-dir")
        .arg(runs.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("epoch    2") {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{rest:?}");
    assert!(
        rest.iter().any(|line| line.contains("kiln resume")),
        "{rest:?}"
    );
    let run_id = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let out = kiln(runs.path(), &["show", &run_id, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["status"], "stopped");
    let done = shown["record"]["epochs_completed"].as_u64().unwrap();
    assert!(done >= 2);
    let out = kiln(runs.path(), &["resume", &run_id, "--epochs", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = kiln(runs.path(), &["show", &run_id, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        shown["record"]["epochs_completed"].as_u64().unwrap(),
        done + 1
    );
    assert_eq!(shown["status"], "completed");
}

/// A two-class table: `id` (one value per row), `x` with the given cell at row 5, `y`, `label`.
fn table_with(x_at_5: &str, rows: usize, newline: &str) -> String {
    let mut text = format!("id,x,y,label{newline}");
    for row in 0..rows {
        let x = if row == 5 {
            x_at_5.to_string()
        } else {
            format!("{}.5", row % 9)
        };
        let label = if row % 9 < 4 { "low" } else { "high" };
        text.push_str(&format!("id{row},{x},{}.25,{label}{newline}", row % 4));
    }
    text
}

#[test]
fn typos_in_numeric_columns_stop_training_with_two_ways_out_recorded_for_predict() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let data = dir.path().join("typo.csv");
    std::fs::write(&data, table_with("4.O", 40, "\r\n")).unwrap();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "3",
            "--device",
            "cpu",
        ];
        args.extend_from_slice(extra);
        kiln(&runs, &args)
    };
    let out = train(&["--exclude", "id"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    // CRLF file: header line 1, row 5 on line 7.
    for part in [
        "line 7: '4.O'",
        "column 'x'",
        "--as-missing x",
        "--categorical x",
    ] {
        assert!(stderr.contains(part), "{part}: {stderr}");
    }

    // Without --exclude, the id column (40 distinct values) is refused with the way out.
    let out = train(&["--as-missing", "x"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--exclude id"),
        "{}",
        text(&out.stderr)
    );

    let out = train(&["--as-missing", "x", "--exclude", "id"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let run = text(&out.stdout).trim().to_string();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs.join(&run).join("run.json")).unwrap()).unwrap();
    assert_eq!(record["data"]["columns"]["as_missing"][0], "x");
    assert_eq!(record["data"]["columns"]["exclude"][0], "id");
    assert_eq!(record["preprocessor"]["choices"]["exclude"][0], "id");

    let bundle = dir.path().join("bundle");
    let out = kiln(
        &runs,
        &[
            "export",
            &run,
            "--out",
            bundle.to_str().unwrap(),
            "--no-onnx",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("model.card.json")).unwrap()).unwrap();
    assert_eq!(card["preprocessor"]["choices"]["as_missing"][0], "x");

    // New data: the excluded id column may be there; a typo in x is missing (as in training);
    // a typo in y is an error naming its line and column.
    let new = dir.path().join("new.csv");
    std::fs::write(&new, "id,x,y\nn1,1.5,0.25\nn2,NaN,1.25\nn3,2.5,2.25\n").unwrap();
    let predict = |data: &std::path::Path| {
        kiln(
            &runs,
            &[
                "predict",
                "--model",
                bundle.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
            ],
        )
    };
    let out = predict(&new);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        4,
        "{}",
        text(&out.stdout)
    );
    std::fs::write(&new, "id,x,y\nn1,1.5,0.25\nn2,2.5,1,25\nn3,2.5,2.2.5\n").unwrap();
    let out = predict(&new);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("line 3 has 4 cells"), "{stderr}");
    std::fs::write(
        &new,
        "id,x,y\r\nn1,1.5,0.25\r\nn2,2.5,1.25\r\nn3,2.5,2.2.5\r\n",
    )
    .unwrap();
    let out = predict(&new);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("column 'y'") && stderr.contains("line 4: '2.2.5'"),
        "{stderr}"
    );
}

#[test]
fn declaring_a_column_categorical_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let data = dir.path().join("sizes.csv");
    std::fs::write(&data, table_with("L", 40, "\n")).unwrap();
    let out = kiln(
        &runs,
        &[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--exclude",
            "id",
            "--categorical",
            "x",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let run = text(&out.stdout).trim().to_string();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs.join(&run).join("run.json")).unwrap()).unwrap();
    assert_eq!(record["schema"]["features"][0]["name"], "x");
    assert_eq!(record["schema"]["features"][0]["type"], "categorical");
}

/// SIGTERM (what Slurm sends before a time limit, on scancel or preemption) stops the headless
/// trainer as Ctrl-C does: a checkpoint, a clean exit, a resumable run. `kiln stop RUN` sends it.
#[test]
fn kiln_stop_sends_sigterm_and_the_trainer_saves_and_exits_resumable() {
    use std::io::{BufRead, BufReader};
    let runs = tempfile::tempdir().unwrap();
    let data = sample("diabetes.csv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "train",
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "100000",
        ])
        .args(["--batch-size", "1", "--device", "cpu", "--name", "term-me"])
        .arg("--runs-dir")
        .arg(runs.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("epoch    2") {
            break;
        }
    }
    let out = kiln(runs.path(), &["stop", "term-me"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{rest:?}");
    assert!(
        rest.iter().any(|line| line.contains("kiln resume")),
        "{rest:?}"
    );
    let run_id = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let out = kiln(runs.path(), &["show", &run_id, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["status"], "stopped");
    assert!(shown["record"]["epochs_completed"].as_u64().unwrap() >= 2);
    // Nothing trains it now: a second stop says so.
    let out = kiln(runs.path(), &["stop", "term-me"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not training"),
        "{}",
        text(&out.stderr)
    );
}
