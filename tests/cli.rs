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

/// A real R export (MASS's Pima, `write.csv` with row names) trains without editing, the row
/// names left out with a note; the model predicts R's test file, and the same rows written
/// the European way (semicolons, decimal commas).
#[test]
fn an_r_export_with_row_names_trains_and_predicts_without_editing() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let fixture = |file: &str| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pima")
            .join(file)
    };
    let train = fixture("Pima.tr.csv");
    let out = kiln(
        &runs,
        &[
            "train",
            "--data",
            train.to_str().unwrap(),
            "--epochs",
            "5",
            "--device",
            "cpu",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no name in the header") && stderr.contains("--keep column_1"),
        "{stderr}"
    );
    let run = text(&out.stdout).trim().to_string();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs.join(&run).join("run.json")).unwrap()).unwrap();
    assert_eq!(record["data"]["columns"]["exclude"][0], "column_1");
    assert_eq!(record["schema"]["features"][0]["name"], "npreg");

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
    let predict = |data: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "predict",
            "--model",
            bundle.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        kiln(&runs, &args)
    };
    let out = predict(&fixture("Pima.te.csv"), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let comma_rows = text(&out.stdout);
    assert_eq!(comma_rows.lines().count(), 333, "{comma_rows}");

    // The same test rows from a spreadsheet set to German: `;` between cells, `,` in decimals.
    let european: String = std::fs::read_to_string(fixture("Pima.te.csv"))
        .unwrap()
        .lines()
        .map(|line| line.replace(',', ";").replace('.', ",") + "\n")
        .collect();
    let semicolons = dir.path().join("pima-de.csv");
    std::fs::write(&semicolons, european).unwrap();
    let out = predict(&semicolons, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), comma_rows);
    let out = predict(&semicolons, &["--delimiter", "tab"]);
    assert!(!out.status.success(), "a wrong delimiter is refused");
    let out = predict(&semicolons, &["--delimiter", "x"]);
    assert!(text(&out.stderr).contains("cannot separate cells"));
}

// --- Docs that quote commands (issue 33): every `kiln …` line of a ```sh block in the README,
// ARCHITECTURE.md and docs/ parses with the real command line; ```sh tested blocks run. ---

/// The documentation files whose command blocks are checked.
fn documentation() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    let mut pages: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

/// The lines of each fenced block opened by "```sh" (or "```sh tested": `true`).
fn shell_blocks(text: &str) -> Vec<(bool, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut open: Option<(bool, Vec<String>)> = None;
    for line in text.lines() {
        let fence = line.trim_start();
        match &mut open {
            Some(_) if fence.starts_with("```") => blocks.extend(open.take()),
            Some((_, lines)) => lines.push(line.to_string()),
            None if fence == "```sh" => open = Some((false, Vec::new())),
            None if fence == "```sh tested" => open = Some((true, Vec::new())),
            None => {}
        }
    }
    blocks
}

/// A command line split as a POSIX shell splits words: quotes group, backslashes escape.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.get_or_insert_with(String::new).push(c),
            (_, '\\') => word.get_or_insert_with(String::new).extend(chars.next()),
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

#[test]
fn every_kiln_command_in_the_docs_parses() {
    use clap::Parser;
    let mut checked = 0;
    for file in documentation() {
        let content = std::fs::read_to_string(&file).unwrap();
        for (_, lines) in shell_blocks(&content) {
            for line in lines.iter().filter(|line| line.starts_with("kiln")) {
                let words = shell_words(line);
                if words[0] != "kiln" {
                    continue;
                }
                if let Err(error) = kiln::cli::Cli::try_parse_from(&words) {
                    panic!("{}: `{line}` does not parse:\n{error}", file.display());
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "only {checked} commands found in the docs");
}

#[test]
fn the_tested_command_blocks_in_the_docs_run() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = tempfile::tempdir().unwrap();
    let runs = scratch.path().join("runs");
    // The blocks write under /tmp/kiln-tour; here, under a private folder instead.
    let private = scratch.path().join("kiln-tour");
    let mut ran = 0;
    for file in documentation() {
        let content = std::fs::read_to_string(&file).unwrap();
        for (_, lines) in shell_blocks(&content)
            .into_iter()
            .filter(|(tested, _)| *tested)
        {
            for line in &lines {
                let line = line.replace("/tmp/kiln-tour", private.to_str().unwrap());
                let words = shell_words(&line);
                assert_eq!(words[0], "kiln", "{}: `{line}`", file.display());
                let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
                    .args(&words[1..])
                    .arg("--runs-dir")
                    .arg(&runs)
                    .current_dir(root)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}: `{line}` failed:\n{}",
                    file.display(),
                    text(&out.stderr)
                );
                ran += 1;
            }
        }
    }
    assert!(ran >= 3, "only {ran} tested commands");
    assert!(private.join("predictions.csv").is_file());
}

#[test]
fn shell_words_split_as_a_shell_does() {
    assert_eq!(
        shell_words(r#"kiln runs --filter 'lr < 0.01 && tag = "a b"' x\ y"#),
        [
            "kiln",
            "runs",
            "--filter",
            r#"lr < 0.01 && tag = "a b""#,
            "x y"
        ]
    );
    assert_eq!(shell_words(r#"a "" b"#), ["a", "", "b"]);
}
