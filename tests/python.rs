//! Interop: the Python example (numpy + safetensors) and onnxruntime reproduce `kiln predict`.
//!
//! Needs Python 3 with venv; the packages go into a virtual environment in the target folder
//! (or set KILN_PYTHON to an interpreter that has numpy, safetensors and onnxruntime).

mod common;

use common::sample;

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("KILN_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kiln-pyenv");
    let python = venv.join("bin/python");
    let ready = venv.join(".ready");
    // The tests run side by side: one makes the environment while the others wait (two
    // `python3 -m venv` on one folder fail with "File exists").
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _making = MAKING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !ready.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(
            status.success(),
            "python3 -m venv failed (install python3-venv)"
        );
        let status = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "numpy",
                "safetensors",
                "onnxruntime",
            ])
            .status()
            .expect("pip runs");
        assert!(
            status.success(),
            "pip install numpy safetensors onnxruntime failed"
        );
        std::fs::write(&ready, b"").unwrap();
    }
    python
}

fn kiln(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("kiln runs")
}

fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Trains on `data` with the extra flags and exports the run (all formats) to `work/bundle`.
fn train_and_export(work: &Path, data: &Path, epochs: usize, extra: &[&str]) -> PathBuf {
    let runs = work.join("runs");
    let epochs = epochs.to_string();
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        &epochs,
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--runs-dir", runs.to_str().unwrap()]);
    let out = kiln(&args);
    assert_ok(&out);
    let run = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let bundle = work.join("bundle");
    assert_ok(&kiln(&[
        "export",
        &run,
        "--out",
        bundle.to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
    ]));
    bundle
}

/// `kiln predict` on `data` (a CSV, or image files), written to `work/kiln.csv`.
fn kiln_predict(work: &Path, bundle: &Path, data: &Path) -> PathBuf {
    let predictions = work.join("kiln.csv");
    assert_ok(&kiln(&[
        "predict",
        "--model",
        bundle.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        predictions.to_str().unwrap(),
    ]));
    predictions
}

/// Runs tests/python/compare.py: the example and onnxruntime against Kiln and the golden rows.
fn compare(bundle: &Path, data: &Path, predictions: &Path) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/compare.py");
    let out = Command::new(python())
        .arg(script)
        .arg(bundle)
        .arg(data)
        .arg(predictions)
        .output()
        .expect("python runs");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert_ok(&out);
}

fn check(name: &str, extra: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let data = sample(name);
    let bundle = train_and_export(work.path(), &data, 15, extra);
    let predictions = kiln_predict(work.path(), &bundle, &data);
    compare(&bundle, &data, &predictions);
}

#[test]
fn python_and_onnxruntime_reproduce_a_classifier() {
    check("iris.csv", &[]);
}

#[test]
fn python_and_onnxruntime_reproduce_a_regressor_with_tanh() {
    check(
        "diabetes.csv",
        &["--activation", "tanh", "--hidden", "32,16"],
    );
}

/// A CNN with a 5×5 unpooled block, a pooled 3×3 block, batch-norm and a dense layer: the
/// example (numpy) and onnxruntime reproduce `kiln predict` on real image files (given to
/// Python as pixel values) and the card's golden outputs.
#[test]
fn python_and_onnxruntime_reproduce_a_cnn_on_images() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("cnn.json");
    std::fs::write(
        &config,
        r#"{"model": {"kind": "cnn", "batch_norm": true, "dropout": 0.1, "dense": [32],
            "blocks": [{"channels": 8, "kernel_size": 5, "pool": false},
                       {"channels": 16, "kernel_size": 3, "pool": true}]}}"#,
    )
    .unwrap();
    let bundle = train_and_export(
        work.path(),
        &sample("digits"),
        4,
        &["--config", config.to_str().unwrap()],
    );
    let class = sample("digits").join("3");
    let predictions = kiln_predict(work.path(), &bundle, &class);

    // The pixels of the files Kiln predicted, in its order, as the example's input CSV.
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("model.card.json")).unwrap()).unwrap();
    assert_eq!(card["model"]["kind"], "cnn");
    let names: Vec<&str> = card["input_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 64);
    let kiln_csv = std::fs::read_to_string(&predictions).unwrap();
    let mut pixels_csv = names.join(",") + "\n";
    let mut files = 0;
    for line in kiln_csv.lines().skip(1) {
        let file = line.split(',').next().unwrap();
        let gray = image::open(file).unwrap().to_luma8();
        let row: Vec<String> = gray.as_raw().iter().map(u8::to_string).collect();
        pixels_csv.push_str(&(row.join(",") + "\n"));
        files += 1;
    }
    assert!(files > 150, "{files} images of digits/3");
    let pixels = work.path().join("pixels.csv");
    std::fs::write(&pixels, pixels_csv).unwrap();
    compare(&bundle, &pixels, &predictions);

    // The example's command line prints the same predicted classes as Kiln.
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/python/predict.py");
    let out = Command::new(python())
        .arg(script)
        .arg(&bundle)
        .arg(&pixels)
        .output()
        .expect("python runs");
    assert_ok(&out);
    let example = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut example_lines = example.lines();
    assert!(
        example_lines
            .next()
            .unwrap()
            .starts_with("prediction,p_0,p_1"),
        "{example}"
    );
    let classes = |lines: Vec<&str>, column: usize| -> Vec<String> {
        lines
            .iter()
            .map(|line| line.split(',').nth(column).unwrap().to_string())
            .collect()
    };
    let kiln_header: Vec<&str> = kiln_csv.lines().next().unwrap().split(',').collect();
    let column = kiln_header.iter().position(|c| *c == "prediction").unwrap();
    assert_eq!(
        classes(example_lines.collect(), 0),
        classes(kiln_csv.lines().skip(1).collect(), column)
    );
}

/// Logits of ±1000 and more: a row thousands of training deviations out. onnxruntime gives the
/// probabilities `kiln predict` gives (0 and 1, no NaN) for it and for the card's golden rows,
/// which include it.
#[test]
fn onnxruntime_gives_no_nan_where_logits_reach_1000() {
    let work = tempfile::tempdir().unwrap();
    let (data, _) = common::iris_with_outlier(work.path());
    let bundle = train_and_export(work.path(), &data, 30, &[]);
    // New rows further out still, in both directions.
    let extreme = work.path().join("extreme.csv");
    std::fs::write(
        &extreme,
        "sepal_length,sepal_width,petal_length,petal_width\n\
         5.1,3.5,10000,0.2\n5.1,3.5,-10000,0.2\n-3000,9000,1.4,-500\n6.3,2.9,5.6,1.8\n",
    )
    .unwrap();
    let predictions = kiln_predict(work.path(), &bundle, &extreme);
    let kiln_csv = std::fs::read_to_string(&predictions).unwrap();
    assert!(!kiln_csv.contains("NaN"), "{kiln_csv}");
    compare(&bundle, &extreme, &predictions);
    let verify = kiln(&["verify", bundle.to_str().unwrap()]);
    assert_ok(&verify);
}

/// A column whose non-numbers the model treats as missing: the example fills them with the
/// training mean as Kiln does, typos and NaN alike.
#[test]
fn the_python_example_treats_non_numbers_as_missing_where_kiln_does() {
    let work = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(sample("iris.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (line, bad) in [(3, "1.4x"), (60, "NaN"), (120, "")] {
        let mut cells: Vec<String> = lines[line].split(',').map(str::to_string).collect();
        cells[2] = bad.to_string();
        lines[line] = cells.join(",");
    }
    let data = work.path().join("iris-typos.csv");
    std::fs::write(&data, lines.join("\n") + "\n").unwrap();
    let bundle = train_and_export(work.path(), &data, 15, &["--as-missing", "petal_length"]);
    let predictions = kiln_predict(work.path(), &bundle, &data);
    compare(&bundle, &data, &predictions);
}
