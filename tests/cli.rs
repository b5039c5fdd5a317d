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
