//! Interop: the Python example (numpy + safetensors) and onnxruntime reproduce `kiln predict`.
//!
//! Needs Python 3 with venv; the packages go into a virtual environment in the target folder
//! (or set KILN_PYTHON to an interpreter that has numpy, safetensors and onnxruntime).

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("KILN_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kiln-pyenv");
    let python = venv.join("bin/python");
    let ready = venv.join(".ready");
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

fn check(sample: &str, extra: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let runs = work.path().join("runs");
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("sample_data")
        .join(sample);
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "15",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--runs-dir", runs.to_str().unwrap()]);
    let out = kiln(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let bundle = work.path().join("bundle");
    let out = kiln(&[
        "export",
        &run,
        "--out",
        bundle.to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let predictions = work.path().join("kiln.csv");
    let out = kiln(&[
        "predict",
        "--model",
        bundle.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        predictions.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/compare.py");
    let out = Command::new(python())
        .arg(script)
        .arg(&bundle)
        .arg(&data)
        .arg(&predictions)
        .output()
        .expect("python runs");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
