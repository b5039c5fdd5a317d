//! Short fuzzing runs of every parser Kiln runs on files it did not write (seconds each), and
//! every input that ever failed, kept in `tests/fuzz_regressions/`. The long run is
//! `cargo run --release --example fuzz -- --minutes N`.

#[path = "../examples/fuzz/driver.rs"]
mod driver;
#[path = "../examples/fuzz/targets.rs"]
mod targets;

use std::time::Duration;

/// Inputs per target in the test suite (a few seconds for the slowest target).
const INPUTS: u64 = 1000;

fn check(name: &str) {
    driver::quiet_panics();
    let target = targets::by_name(name).expect("a known target");
    for (path, input) in driver::regressions(name) {
        let elapsed = driver::run_one(&target, &input)
            .unwrap_or_else(|message| panic!("{}: panics again: {message}", path.display()));
        assert!(
            elapsed <= driver::HANG_LIMIT,
            "{}: takes {elapsed:?}",
            path.display()
        );
    }
    let summary = driver::fuzz(&target, 7, Duration::from_secs(20), INPUTS);
    assert!(summary.inputs > 0);
    assert_eq!(
        (summary.panics, summary.hangs),
        (0, 0),
        "{name}: failing inputs saved as {:?}",
        summary.saved
    );
}

#[test]
fn fuzz_csv_loading_and_schema_inference() {
    check("csv");
}

#[test]
fn fuzz_idx_reader() {
    check("idx");
}

#[test]
fn fuzz_image_decoding() {
    check("image");
}

#[test]
fn fuzz_run_json() {
    check("run_json");
}

#[test]
fn fuzz_index_json() {
    check("index_json");
}

#[test]
fn fuzz_metrics_jsonl() {
    check("metrics_jsonl");
}

#[test]
fn fuzz_confusion_jsonl() {
    check("confusion_jsonl");
}

#[test]
fn fuzz_model_card() {
    check("model_card");
}

#[test]
fn fuzz_bundle_loader() {
    check("bundle");
}
