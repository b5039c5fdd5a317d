//! Helpers shared by the integration tests (each test file is its own crate and uses some).
#![allow(dead_code)]

pub mod app;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A file or folder of the bundled `sample_data/`.
pub fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("sample_data")
        .join(name)
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
