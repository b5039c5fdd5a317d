//! Where Kiln's overhead over a bare burn loop goes, for the MLP on the CPU: the training steps
//! themselves, and the work at each epoch's end (validation, the metrics log, the checkpoint).
//!
//!     cargo run --release --example bench -- --only overhead

use std::path::Path;

use kiln::train::{DeviceChoice, TrainEvent, start};

use super::{BATCH, Row, bare_burn_samples_per_sec, median, row};

pub const EXPLANATION: &str = "Rounds alternate the bare burn loop (the same MLP, data on the device, \
    sequential batches, loss read once an epoch) and Kiln's engine on a synthetic CSV (shuffled batches, events, \
    the metrics log, validation and a checkpoint every epoch), each the median of the epochs after the first. \
    Each run is a process of its own. Kiln's training rate counts an epoch's steps alone (the engine's own samples/s); its full rate the time \
    between two epoch ends. The epoch-end share is the part of an epoch spent after its last step: validation \
    (kept at one point per epoch, as the issue asks), the metrics log and the checkpoint.";

/// (training-only samples/s, full-path samples/s, epoch-end share) of one Kiln run.
fn kiln_rates(dir: &Path, data: &Path, epochs: usize) -> anyhow::Result<(f64, f64, f64)> {
    let handle = start(
        super::mlp_request(data, dir.to_path_buf(), DeviceChoice::Cpu, epochs),
        None,
    )?;
    let events = handle.wait();
    let (train_rows, ends) = super::epoch_ends(&events);
    let full = super::rates_between(train_rows, &ends);
    let training: Vec<f64> = events
        .iter()
        .filter_map(|event| match event {
            TrainEvent::Epoch(metrics) => Some(metrics.samples_per_sec),
            _ => None,
        })
        .skip(1)
        .collect();
    let shares: Vec<f64> = full
        .iter()
        .zip(&training)
        .map(|(full, training)| 1.0 - full / training)
        .collect();
    Ok((median(training), median(full), median(shares)))
}

/// The child side of a round (`bench --overhead-once bare ROWS EPOCHS` or
/// `bench --overhead-once kiln DATA EPOCHS RUNS_DIR`): prints its rates, so that each run has a
/// process to itself (runs after another in one process measured up to 40 % slower here).
pub fn once(args: &[String]) -> anyhow::Result<()> {
    match args {
        [kind, rows, epochs] if kind == "bare" => {
            let rate = bare_burn_samples_per_sec(
                &burn::tensor::Device::flex(),
                rows.parse()?,
                epochs.parse()?,
            );
            println!("{rate}");
        }
        [kind, data, epochs, runs] if kind == "kiln" => {
            let (training, full, share) =
                kiln_rates(Path::new(runs), Path::new(data), epochs.parse()?)?;
            println!("{training} {full} {share}");
        }
        _ => anyhow::bail!("usage: --overhead-once bare ROWS EPOCHS | kiln DATA EPOCHS RUNS_DIR"),
    }
    Ok(())
}

fn child(args: &[String]) -> anyhow::Result<Vec<f64>> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("--overhead-once")
        .args(args)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "overhead round failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(|word| Ok(word.parse::<f64>()?))
        .collect()
}

pub fn rows(work: &Path, quick: bool) -> anyhow::Result<Vec<Row>> {
    let rows_in_data = if quick { 4096 } else { 32_768 };
    let data = super::write_dataset(work, rows_in_data)?;
    let (epochs, rounds) = if quick { (2, 1) } else { (6, 5) };
    let (mut bare, mut training, mut full, mut shares) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let bare_rate = child(&["bare".into(), rows_in_data.to_string(), epochs.to_string()])?;
        bare.push(bare_rate.first().copied().unwrap_or(f64::NAN));
        let runs = work.join(format!("runs-{round}"));
        let kiln = child(&[
            "kiln".into(),
            data.display().to_string(),
            epochs.to_string(),
            runs.display().to_string(),
        ])?;
        let [train_rate, full_rate, share] = kiln[..] else {
            anyhow::bail!("a Kiln round printed {kiln:?}");
        };
        training.push(train_rate);
        full.push(full_rate);
        shares.push(share);
    }
    let list = |values: &[f64], scale: f64, digits: usize| {
        values
            .iter()
            .map(|value| format!("{:.digits$}", value * scale))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ratio = |kiln: &[f64]| -> Vec<f64> { kiln.iter().zip(&bare).map(|(k, b)| k / b).collect() };
    let (training_ratio, full_ratio) = (ratio(&training), ratio(&full));
    let shape = format!("MLP 64→256→256→10, batch {BATCH}, {rows_in_data} rows");
    Ok(vec![
        row(
            "overhead",
            "bare burn loop, CPU",
            format!("{:.0} samples/s", median(bare.clone())),
            format!("{shape}; rounds {}", list(&bare, 1.0, 0)),
        ),
        row(
            "overhead",
            "Kiln, training steps only",
            format!("{:.0} samples/s", median(training.clone())),
            format!(
                "Kiln / bare {:.3}× (rounds {})",
                median(training_ratio.clone()),
                list(&training_ratio, 1.0, 3)
            ),
        ),
        row(
            "overhead",
            "Kiln, full path",
            format!("{:.0} samples/s", median(full.clone())),
            format!(
                "Kiln / bare {:.3}× (rounds {}); goal ≥ 0.97× (≤ 3 % overhead)",
                median(full_ratio.clone()),
                list(&full_ratio, 1.0, 3)
            ),
        ),
        row(
            "overhead",
            "epoch-end share of Kiln's epoch (validation, log, checkpoint)",
            format!("{:.1} %", 100.0 * median(shares.clone())),
            format!("rounds {} %", list(&shares, 100.0, 1)),
        ),
    ])
}
