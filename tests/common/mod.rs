//! Helpers shared by the integration tests (each test file is its own crate and uses some).
#![allow(dead_code)]

pub mod app;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A file or folder of the bundled `sample_data/`.
pub fn sample(name: &str) -> PathBuf {
    let built_in = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // A test binary carried to another machine (scripts/gpu-check) runs from the repository's
    // root there, where the folder it was built in does not exist.
    let root = if built_in.join("sample_data").is_dir() {
        built_in
    } else {
        PathBuf::from(".")
    };
    root.join("sample_data").join(name)
}

/// Runs the `kiln` binary with `args` on the run store at `runs_dir`.
pub fn kiln(runs_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .arg("--runs-dir")
        .arg(runs_dir)
        .output()
        .expect("kiln runs")
}

/// A process's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A copy of iris in `dir` whose 7th validation row (after the 5 typical golden rows) has a
/// petal length of 10,000 cm: standardised, thousands of training deviations out, so a trained
/// classifier gives it logits far beyond the ~88 where a naive softmax overflows f32. Returns
/// the file and that row's petal length as written.
pub fn iris_with_outlier(dir: &Path) -> (PathBuf, String) {
    let spec = kiln::data::DataSpec::new(sample("iris.csv"));
    let prepared = kiln::data::prepare(&spec).expect("iris loads");
    // The split depends on the labels and the seed only, so it stays the same.
    let row = prepared.split.valid[6];
    let text = std::fs::read_to_string(sample("iris.csv")).expect("iris reads");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut cells: Vec<String> = lines[row + 1].split(',').map(str::to_string).collect();
    cells[2] = "10000".to_string();
    lines[row + 1] = cells.join(",");
    let path = dir.join("iris-outlier.csv");
    std::fs::write(&path, lines.join("\n") + "\n").expect("written");
    (path, "10000".to_string())
}
