//! Sweep benchmarks: trials per minute on iris at concurrency 1, 2 and 4 (trials as threads of
//! one process) against the same trials as separate `kiln train` processes, and TPE against
//! random search (the best validation loss after N trials, over several seeds).
//!
//!     cargo run --release --example bench -- --only sweeps   # writes its section of BENCHMARKS.md

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kiln::sweep::{SweepSpec, SweepState, SweepStore, start_sweep};
use serde_json::{Value, json};

use super::{Row, median, row};

pub const EXPLANATION: &str = "Trials per minute time whole sweeps (planning, training with a validation pass and a checkpoint every epoch, the sweep record) of the same 12 iris trials; \
    threads share the process's thread pool, processes each start their own (and read the data themselves). \
    The search rows run 20-trial sweeps over learning rate (log), width, dropout and batch size on the diabetes regression, \
    two trials at a time, once per seed; each value is the best validation loss among the first N trials, the median over the seeds.";

const IRIS_TRIALS: usize = 12;
const SEARCH_TRIALS: usize = 20;

fn iris_spec(concurrency: usize) -> Value {
    json!({
        "name": "bench-iris",
        "data": { "path": sample("iris.csv") },
        "model": { "kind": "mlp", "hidden": [64, 64], "activation": "relu", "dropout": 0.0 },
        "train": {
            "optimizer": { "kind": "adam" }, "learning_rate": 0.01,
            "schedule": { "kind": "constant" }, "batch_size": 16, "epochs": 30, "seed": 42
        },
        "device": "cpu",
        "parameters": { "train.learning_rate": { "float": [0.001, 0.1], "log": true } },
        "method": "random",
        "metric": "valid_loss",
        "max_trials": IRIS_TRIALS,
        "concurrency": concurrency,
        "seed": 1
    })
}

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("sample_data")
        .join(name)
}

fn run_spec(spec: &Value, runs: &Path) -> anyhow::Result<kiln::sweep::SweepRecord> {
    let spec: SweepSpec = serde_json::from_value(spec.clone())?;
    let handle = start_sweep(spec, runs, None)?;
    let id = handle.sweep_id.clone();
    handle.wait();
    let record = SweepStore::open(runs).read(&id)?;
    anyhow::ensure!(
        record.state == SweepState::Completed,
        "sweep {id}: {:?}",
        record.message
    );
    Ok(record)
}

/// Trials per minute of the in-process runner.
fn threads_rate(dir: &Path, concurrency: usize) -> anyhow::Result<f64> {
    let runs = dir.join(format!("threads-{concurrency}-{}", rand::random::<u32>()));
    let start = Instant::now();
    run_spec(&iris_spec(concurrency), &runs)?;
    Ok(IRIS_TRIALS as f64 / (start.elapsed().as_secs_f64() / 60.0))
}

/// The `kiln` binary beside this example's folder.
fn kiln_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let binary = exe.parent()?.parent()?.join("kiln");
    binary.is_file().then_some(binary)
}

/// Trials per minute as separate processes (`kiln train`), `concurrency` at a time.
fn processes_rate(dir: &Path, concurrency: usize) -> anyhow::Result<Option<f64>> {
    let Some(kiln) = kiln_binary() else {
        return Ok(None);
    };
    let runs = dir.join(format!("processes-{concurrency}-{}", rand::random::<u32>()));
    let rates: Vec<f64> = (0..IRIS_TRIALS)
        .map(|i| 0.001 * 100f64.powf(i as f64 / IRIS_TRIALS as f64))
        .collect();
    let start = Instant::now();
    for chunk in rates.chunks(concurrency) {
        let children: Vec<_> = chunk
            .iter()
            .map(|rate| {
                Command::new(&kiln)
                    .args(["train", "--data"])
                    .arg(sample("iris.csv"))
                    .args(["--epochs", "30", "--batch-size", "16", "--device", "cpu"])
                    .args(["--hidden", "64,64", "--lr", &rate.to_string(), "--runs-dir"])
                    .arg(&runs)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
            })
            .collect::<Result<_, _>>()?;
        for mut child in children {
            child.wait()?;
        }
    }
    Ok(Some(
        IRIS_TRIALS as f64 / (start.elapsed().as_secs_f64() / 60.0),
    ))
}

fn search_spec(method: &str, seed: u64) -> Value {
    json!({
        "name": format!("bench-{method}-{seed}"),
        "data": { "path": sample("diabetes.csv") },
        "model": { "kind": "mlp", "hidden": [64], "activation": "relu", "dropout": 0.0 },
        "train": {
            "optimizer": { "kind": "adam" }, "learning_rate": 0.01,
            "schedule": { "kind": "constant" }, "batch_size": 32, "epochs": 25, "seed": 42
        },
        "device": "cpu",
        "parameters": {
            "train.learning_rate": { "float": [0.00003, 1.0], "log": true },
            "model.hidden": [[8], [32], [128], [128, 64]],
            "model.dropout": { "float": [0.0, 0.6] },
            "train.batch_size": [8, 16, 32, 64, 128]
        },
        "method": method,
        "metric": "valid_loss",
        "max_trials": SEARCH_TRIALS,
        "concurrency": 2,
        "seed": seed
    })
}

/// The best value among the first `n` trials.
fn best_after(record: &kiln::sweep::SweepRecord, n: usize) -> f64 {
    record
        .summaries()
        .iter()
        .filter(|summary| summary.trial <= n)
        .filter_map(|summary| summary.value)
        .fold(f64::INFINITY, f64::min)
}

pub fn rows(dir: &Path, quick: bool) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let rounds = if quick { 1 } else { 3 };
    // Interleaved rounds: the machine is shared, so each figure is a median over rounds.
    let mut by_concurrency: Vec<(usize, Vec<f64>)> = [1, 2, 4].map(|c| (c, Vec::new())).into();
    let mut processes = Vec::new();
    for _ in 0..rounds {
        for (concurrency, rates) in &mut by_concurrency {
            rates.push(threads_rate(dir, *concurrency)?);
        }
        if let Some(rate) = processes_rate(dir, 2)? {
            processes.push(rate);
        }
    }
    for (concurrency, rates) in by_concurrency {
        let rounds_text: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        rows.push(row(
            "sweeps",
            format!("iris trials per minute, concurrency {concurrency} (threads)"),
            format!("{:.0}", median(rates)),
            format!(
                "{IRIS_TRIALS} trials × 30 epochs, MLP 64-64, batch 16; rounds: {}",
                rounds_text.join(", ")
            ),
        ));
    }
    if !processes.is_empty() {
        let rounds_text: Vec<String> = processes.iter().map(|r| format!("{r:.0}")).collect();
        rows.push(row(
            "sweeps",
            "iris trials per minute, 2 separate `kiln train` processes".to_string(),
            format!("{:.0}", median(processes)),
            format!(
                "same trials, a process each; rounds: {}",
                rounds_text.join(", ")
            ),
        ));
    }
    let seeds: Vec<u64> = if quick { vec![1] } else { (1..=5).collect() };
    for checkpoint in [5, 10, SEARCH_TRIALS] {
        let mut medians = Vec::new();
        for method in ["random", "tpe"] {
            let mut values = Vec::new();
            for &seed in &seeds {
                let runs = dir.join(format!("search-{method}-{seed}"));
                let record = match SweepStore::open(&runs).list().into_iter().flatten().next() {
                    Some(record) => record,
                    None => run_spec(&search_spec(method, seed), &runs)?,
                };
                values.push(best_after(&record, checkpoint));
            }
            let text: Vec<String> = values.iter().map(|v| format!("{v:.4}")).collect();
            medians.push((method, median(values.clone()), text.join(", ")));
        }
        for (method, value, per_seed) in medians {
            rows.push(row(
                "sweeps",
                format!(
                    "{method}: best valid loss after {checkpoint} trials (median of {} seeds)",
                    seeds.len()
                ),
                format!("{value:.4}"),
                format!("diabetes MLP, 4 parameters; per seed: {per_seed}"),
            ));
        }
    }
    Ok(rows)
}
