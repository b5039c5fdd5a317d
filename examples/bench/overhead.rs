//! Where Kiln's overhead over a bare burn loop goes, for the MLP on the CPU: the training steps
//! themselves, and the work at each epoch's end (validation, the metrics log, the checkpoint).
//!
//!     cargo run --release --example bench -- --only overhead

use std::path::Path;

use kiln::train::{DeviceChoice, start};

use super::{BATCH, Row, bare_burn_samples_per_sec, median, ratios, rounds_list, row};

pub const EXPLANATION: &str = "Rounds alternate six processes: the bare burn loop (the same MLP, data on the device, \
    sequential batches, loss read once an epoch, run on a thread pool like Kiln's training pool and with Kiln's Adam, fused on the CPU, so that the difference is Kiln's own work), the same loop also predicting its held-out fifth once an epoch \
    (the model's inference copy, chunks of 4096 rows, outputs read back: what a hand-written loop that validates does), that loop again with its batches shuffled each epoch (which Kiln does and the goal's loop does not), \
    Kiln's engine on a synthetic CSV (shuffled batches, events, the metrics log, validation and a checkpoint every epoch; \
    run once with its run folder on disk and once on a tmpfs, `/dev/shm`, where syncs return at once, to split off the disk's part: \
    about ten syncs an epoch, each file synced before the name that points at it) \
    and PyTorch (`benches/torch_mlp.py`, same model, batch and optimiser, no validation), each the median of the epochs after the first. \
    Kiln's training rate counts an epoch's steps alone (the engine's own samples/s), set against the loops without validation; \
    its full rate the time between two epoch ends, set against the loop that validates. The epoch-end share is the part of an \
    epoch spent after its last step: validation (kept at one point per epoch, as the issue asks), the metrics log and the checkpoint; \
    the bare loop's share is what its validation alone costs.";

/// (training-only samples/s, full-path samples/s, epoch-end share) of one Kiln run.
fn kiln_rates(dir: &Path, data: &Path, epochs: usize) -> anyhow::Result<(f64, f64, f64)> {
    let handle = start(
        super::mlp_request(data, dir.to_path_buf(), DeviceChoice::Cpu, epochs),
        None,
    )?;
    let events = handle.wait();
    let (train_rows, ends) = super::epoch_ends(&events);
    let full = super::rates_between(train_rows, &ends);
    let training = super::step_rates(&events);
    let shares: Vec<f64> = full
        .iter()
        .zip(&training)
        .map(|(full, training)| 1.0 - full / training)
        .collect();
    Ok((median(training), median(full), median(shares)))
}

/// The child side of a round (`bench --overhead-once bare ROWS EPOCHS VALID_ROWS [shuffled]` or
/// `bench --overhead-once kiln DATA EPOCHS RUNS_DIR`): prints its rates, so that each run has a
/// process to itself (runs after another in one process measured up to 40 % slower here).
pub fn once(args: &[String]) -> anyhow::Result<()> {
    match args {
        [kind, rows, epochs, valid_rows, order @ ..] if kind == "bare" => {
            let rate = bare_burn_samples_per_sec(
                &burn::tensor::Device::flex(),
                rows.parse()?,
                epochs.parse()?,
                valid_rows.parse()?,
                order.iter().any(|word| word == "shuffled"),
            );
            println!("{rate}");
        }
        [kind, data, epochs, runs] if kind == "kiln" => {
            let (training, full, share) =
                kiln_rates(Path::new(runs), Path::new(data), epochs.parse()?)?;
            println!("{training} {full} {share}");
        }
        _ => anyhow::bail!(
            "usage: --overhead-once bare ROWS EPOCHS VALID_ROWS [shuffled] | kiln DATA EPOCHS RUNS_DIR"
        ),
    }
    Ok(())
}

pub(crate) fn child(args: &[String]) -> anyhow::Result<Vec<f64>> {
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
    // Kiln holds out a fifth of the rows for validation and trains on the rest.
    let valid_rows = rows_in_data / 5;
    let train_rows = rows_in_data - valid_rows;
    let mut rates = Rates::default();
    for round in 0..rounds {
        let bare = |valid: usize, order: &str| -> anyhow::Result<f64> {
            let rate = child(&[
                "bare".into(),
                train_rows.to_string(),
                epochs.to_string(),
                valid.to_string(),
                order.into(),
            ])?;
            Ok(rate.first().copied().unwrap_or(f64::NAN))
        };
        rates.bare.push(bare(0, "in-order")?);
        rates.bare_validating.push(bare(valid_rows, "in-order")?);
        rates
            .bare_validating_shuffled
            .push(bare(valid_rows, "shuffled")?);
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
        rates.training.push(train_rate);
        rates.full.push(full_rate);
        rates.shares.push(share);
        if let Some(rate) = in_memory_full_rate(&data, epochs, round)? {
            rates.full_in_memory.push(rate);
        }
        if let Some((rate, version)) =
            super::torch_rate("benches/torch_mlp.py", train_rows, epochs, BATCH, &[])
        {
            rates.torch.push(rate);
            rates.torch_version = version;
        }
    }
    Ok(rates.rows(&format!(
        "MLP 64→256→256→10, batch {BATCH}, {train_rows} training rows"
    )))
}

/// Where a run folder can live in memory: a tmpfs, whose syncs return at once and whose files
/// never reach a disk.
const MEMORY_FOLDER: &str = "/dev/shm";

/// Kiln's full-path rate with its run folder on a tmpfs: the same run without the disk's part
/// (the run folder's syncs and writes), so the two full-path rows split the overhead. `None`
/// where the machine has no `/dev/shm`.
fn in_memory_full_rate(data: &Path, epochs: usize, round: usize) -> anyhow::Result<Option<f64>> {
    let memory = Path::new(MEMORY_FOLDER);
    if !memory.is_dir() {
        return Ok(None);
    }
    let runs = memory.join(format!("kiln-bench-{}-{round}", std::process::id()));
    let rates = child(&[
        "kiln".into(),
        data.display().to_string(),
        epochs.to_string(),
        runs.display().to_string(),
    ]);
    let _ = std::fs::remove_dir_all(&runs);
    match rates?[..] {
        [_, full_rate, _] => Ok(Some(full_rate)),
        ref other => anyhow::bail!("a Kiln round printed {other:?}"),
    }
}

#[derive(Default)]
struct Rates {
    bare: Vec<f64>,
    bare_validating: Vec<f64>,
    bare_validating_shuffled: Vec<f64>,
    training: Vec<f64>,
    full: Vec<f64>,
    full_in_memory: Vec<f64>,
    shares: Vec<f64>,
    torch: Vec<f64>,
    torch_version: String,
}

/// "Kiln / OTHER 0.997× (rounds …, lowest …)".
fn ratio_note(other: &str, ratios: &[f64]) -> String {
    format!(
        "Kiln / {other} {:.3}× (rounds {}; lowest {:.3})",
        median(ratios.to_vec()),
        rounds_list(ratios, 1.0, 3),
        ratios.iter().copied().fold(f64::INFINITY, f64::min)
    )
}

impl Rates {
    fn rows(&self, shape: &str) -> Vec<Row> {
        let rate = |values: &[f64]| format!("{:.0} samples/s", median(values.to_vec()));
        let bare_shares: Vec<f64> = ratios(&self.bare_validating, &self.bare)
            .iter()
            .map(|ratio| 1.0 - ratio)
            .collect();
        let mut rows = vec![
            row(
                "overhead",
                "bare burn loop, CPU",
                rate(&self.bare),
                format!("{shape}; rounds {}", rounds_list(&self.bare, 1.0, 0)),
            ),
            row(
                "overhead",
                "bare burn loop validating once an epoch, CPU",
                rate(&self.bare_validating),
                format!(
                    "{shape}, a fifth more rows predicted at each epoch's end; rounds {}; validation {:.1} % of its epoch",
                    rounds_list(&self.bare_validating, 1.0, 0),
                    100.0 * median(bare_shares)
                ),
            ),
            row(
                "overhead",
                "bare burn loop validating and shuffling once an epoch, CPU",
                rate(&self.bare_validating_shuffled),
                format!(
                    "as the row above, each epoch's batches in a fresh random order (rows picked by index, as Kiln's batches are); rounds {}; Kiln's full path against it: {}",
                    rounds_list(&self.bare_validating_shuffled, 1.0, 0),
                    ratio_note(
                        "shuffling bare loop",
                        &ratios(&self.full, &self.bare_validating_shuffled)
                    )
                ),
            ),
            row(
                "overhead",
                "Kiln, training steps only",
                rate(&self.training),
                ratio_note("bare", &ratios(&self.training, &self.bare)),
            ),
            row(
                "overhead",
                "Kiln, full path",
                rate(&self.full),
                format!(
                    "{}; goal ≥ 0.97× (≤ 3 % overhead)",
                    ratio_note(
                        "validating bare loop",
                        &ratios(&self.full, &self.bare_validating)
                    )
                ),
            ),
            row(
                "overhead",
                "Kiln, full path, run folder in memory (/dev/shm)",
                if self.full_in_memory.is_empty() {
                    "not measured".into()
                } else {
                    rate(&self.full_in_memory)
                },
                if self.full_in_memory.is_empty() {
                    format!("no {MEMORY_FOLDER} on this machine")
                } else {
                    format!(
                        "{}; the same run with nothing reaching a disk: the gap to the row above is the run folder's durable writes",
                        ratio_note(
                            "validating bare loop",
                            &ratios(&self.full_in_memory, &self.bare_validating)
                        )
                    )
                },
            ),
            row(
                "overhead",
                "epoch-end share of Kiln's epoch (validation, log, checkpoint)",
                format!("{:.1} %", 100.0 * median(self.shares.clone())),
                format!("rounds {} %", rounds_list(&self.shares, 100.0, 1)),
            ),
        ];
        if self.torch.is_empty() {
            rows.push(row(
                "overhead",
                "PyTorch, CPU",
                "not measured".into(),
                "set KILN_TORCH_PYTHON to a Python with torch",
            ));
        } else {
            rows.push(row(
                "overhead",
                "PyTorch, CPU (training steps)",
                rate(&self.torch),
                format!(
                    "benches/torch_mlp.py ({}); rounds {}",
                    self.torch_version,
                    rounds_list(&self.torch, 1.0, 0)
                ),
            ));
            rows.push(row(
                "overhead",
                "Kiln training steps / PyTorch",
                format!("{:.3}×", median(ratios(&self.training, &self.torch))),
                format!(
                    "{}; goal ≥ 1.1× on the median, no round below 1.0",
                    ratio_note("PyTorch", &ratios(&self.training, &self.torch))
                ),
            ));
        }
        rows
    }
}
