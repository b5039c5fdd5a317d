//! Kiln's benchmark suite: training throughput (Kiln's engine against a bare burn loop and,
//! where installed, PyTorch; an MLP on synthetic data and the CNN on the digits sample), engine
//! overhead, the UI at scale, store scans, memory, and the
//! fraction of the machine's matmul peak the training loop reaches.
//!
//!     cargo run --release --example bench            # full suite, rewrites BENCHMARKS.md
//!     cargo run --release --example bench -- --quick # a short smoke run, writes nothing
//!     cargo run --release --example bench -- --only sweeps  # just the sweep section
//!     cargo run --release --example bench -- --only table   # the run table at scale
//!     cargo run --release --example bench -- --only loading # a 100 MB CSV against pandas/polars
//!     cargo run --release --example bench -- --only cnn-ops # the CNN's ops, forward and backward
//!     cargo run --release --example bench -- --only cnn-rounds # CNN training rounds against PyTorch
//!     cargo run --release --example bench -- --only overhead # Kiln's MLP overhead over bare burn, split
//!
//! PyTorch is measured when `KILN_TORCH_PYTHON` names a Python with torch installed.

mod cnn;
mod cnn_rounds;
mod loading;
mod ops;
mod overhead;
mod sweeps;
mod table;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use kiln::data::DataSpec;
use kiln::model::{MlpConfig, ModelConfig};
use kiln::runs::{CheckpointEntry, CheckpointIndex, MetricPoint, MetricsLog, RunStore, SplitName};
use kiln::train::{DeviceChoice, TrainConfig, TrainEvent, TrainRequest, start};
use kiln::ui::{PlotRun, PlotSettings, RunCurves, curves_ui};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng, rngs::StdRng};

const FEATURES: usize = 64;
const CLASSES: usize = 10;
pub(crate) const HIDDEN: [usize; 2] = [256, 256];
pub(crate) const BATCH: usize = 256;

struct Options {
    quick: bool,
}

pub(crate) struct Row {
    group: &'static str,
    name: String,
    value: String,
    note: String,
}

fn main() -> anyhow::Result<()> {
    let options = Options {
        quick: std::env::args().any(|a| a == "--quick"),
    };
    if let Some(file) = std::env::args().skip_while(|a| a != "--load-once").nth(1) {
        return loading::load_once(Path::new(&file));
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--overhead-once") {
        return overhead::once(&args[at + 1..]);
    }
    let only: Option<String> = std::env::args().skip_while(|a| a != "--only").nth(1);
    if let Some(section) = only.as_deref() {
        let work = tempfile::tempdir()?;
        let (title, rows, explanation) = match section {
            "sweeps" => (
                "Sweeps",
                sweeps::rows(work.path(), options.quick)?,
                sweeps::EXPLANATION,
            ),
            "table" => (
                "The run table at scale",
                table::rows(work.path(), options.quick)?,
                table::EXPLANATION,
            ),
            "loading" => (
                "Loading a large CSV",
                loading::rows(work.path(), options.quick)?,
                loading::EXPLANATION,
            ),
            "cnn-ops" => (
                "Where a CNN training step spends its time (CPU)",
                ops::rows(options.quick)?,
                ops::EXPLANATION,
            ),
            "overhead" => (
                "Kiln's overhead over a bare burn loop (CPU)",
                overhead::rows(work.path(), options.quick)?,
                overhead::EXPLANATION,
            ),
            "cnn-rounds" => (
                "CNN training: Kiln against PyTorch, round by round (CPU)",
                cnn_rounds::rows(work.path(), options.quick)?,
                cnn_rounds::EXPLANATION,
            ),
            other => anyhow::bail!(
                "unknown section '{other}': sweeps, table, loading, cnn-ops, cnn-rounds or overhead"
            ),
        };
        let table = render(&rows);
        println!("{table}");
        if !options.quick {
            let text = format!(
                "## {title}\n\nMeasured {} on {} ({} cores) by `cargo run --release --example bench -- --only {section}`.\n\n{table}\n{explanation}\n",
                chrono::Utc::now().format("%Y-%m-%d"),
                cpu_model(),
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            );
            write_section(section, &text)?;
        }
        return Ok(());
    }
    let work = tempfile::tempdir()?;
    let mut rows = Vec::new();
    let rows_in_data = if options.quick { 4096 } else { 32_768 };
    let data = write_dataset(work.path(), rows_in_data)?;
    let epochs = if options.quick { 2 } else { 6 };

    // 1 + 2: throughput and overhead on the CPU backend, interleaved and repeated because a
    // shared two-core machine is noisy; each figure is the median of the repeats.
    let repeats = if options.quick { 1 } else { 3 };
    let (mut bare, mut kiln, mut torch_rates) = (Vec::new(), Vec::new(), Vec::new());
    let mut torch_version = None;
    for repeat in 0..repeats {
        // Each in a process of its own (one run after another in a process measured up to 40 %
        // slower here). Kiln validates a fifth of the rows at each epoch's end; so does this loop.
        let bare_rate = overhead::child(&[
            "bare".into(),
            (rows_in_data - rows_in_data / 5).to_string(),
            epochs.to_string(),
            (rows_in_data / 5).to_string(),
        ])?;
        bare.push(bare_rate.first().copied().unwrap_or(f64::NAN));
        let runs = work.path().join(format!("core-runs-{repeat}"));
        let kiln_rates = overhead::child(&[
            "kiln".into(),
            data.display().to_string(),
            epochs.to_string(),
            runs.display().to_string(),
        ])?;
        // (training steps, full path, epoch-end share): the full path here.
        kiln.push(kiln_rates.get(1).copied().unwrap_or(f64::NAN));
        if let Some((rate, version)) = torch_samples_per_sec(rows_in_data, epochs) {
            torch_rates.push(rate);
            torch_version = Some(version);
        }
    }
    let rounds = |values: &[f64]| rounds_list(values, 1.0, 0);
    let (bare_rounds, kiln_rounds, torch_rounds) =
        (rounds(&bare), rounds(&kiln), rounds(&torch_rates));
    let ratio_rounds = rounds_list(&ratios(&kiln, &bare), 1.0, 3);
    let (bare_cpu, kiln_cpu) = (median(bare), median(kiln));
    let torch = (!torch_rates.is_empty()).then(|| median(torch_rates));
    let flops_per_sample = training_flops_per_sample();
    rows.push(row(
        "training",
        "bare burn loop, CPU (flex)",
        format!("{bare_cpu:.0} samples/s"),
        format!("same model, data on device, loss read once an epoch, a fifth of the rows held out and predicted at each epoch's end; rounds {bare_rounds}"),
    ));
    rows.push(row(
        "training",
        "Kiln engine, CPU (flex)",
        format!("{kiln_cpu:.0} samples/s"),
        format!("full path: events, metrics log, validation and a checkpoint every epoch; rounds {kiln_rounds}"),
    ));
    rows.push(row(
        "training",
        "Kiln / bare burn (CPU)",
        format!("{:.3}×", kiln_cpu / bare_cpu),
        format!(
            "overhead {:+.1} % (goal ≤ 3 %); rounds {ratio_rounds}",
            (bare_cpu / kiln_cpu - 1.0) * 100.0
        ),
    ));
    match torch {
        Some(torch) => {
            rows.push(row(
                "training",
                "PyTorch, CPU",
                format!("{torch:.0} samples/s"),
                format!(
                    "benches/torch_mlp.py, same model and batch ({}); rounds {torch_rounds}",
                    torch_version.clone().unwrap_or_default()
                ),
            ));
            rows.push(row(
                "training",
                "Kiln / PyTorch (CPU)",
                format!("{:.3}×", kiln_cpu / torch),
                "Kiln's full path (validation included) against PyTorch's steps alone; steps against steps, in rounds, in the overhead section",
            ));
        }
        None => rows.push(row(
            "training",
            "PyTorch, CPU",
            "not measured".into(),
            "set KILN_TORCH_PYTHON to a Python with torch",
        )),
    }
    if !options.quick {
        match kiln::train::resolve(DeviceChoice::Wgpu) {
            Ok(resolved) => {
                let wgpu_rows = 4096;
                let bare = bare_burn_samples_per_sec(&resolved.device, wgpu_rows, 2, 0, false);
                let small = write_dataset(work.path(), wgpu_rows)?;
                let kiln = kiln_samples_per_sec(work.path(), &small, DeviceChoice::Wgpu, 2)?;
                rows.push(row(
                    "training",
                    "bare burn loop, wgpu",
                    format!("{bare:.0} samples/s"),
                    resolved.info.adapter.clone(),
                ));
                rows.push(row(
                    "training",
                    "Kiln engine, wgpu",
                    format!("{kiln:.0} samples/s"),
                    format!("Kiln / bare {:.3}×", kiln / bare),
                ));
            }
            Err(error) => rows.push(row(
                "training",
                "wgpu",
                "not measured".into(),
                error.to_string(),
            )),
        }
    }

    // The CNN on the image sample (Kiln's default CNN, CPU), and PyTorch's same network.
    let cnn_epochs = if options.quick { 3 } else { 12 };
    let mut cnn_rates = Vec::new();
    let mut cnn_torch_rates = Vec::new();
    let mut cnn_torch_version = None;
    let mut cnn_last = None;
    for _ in 0..repeats {
        let figures = cnn::kiln_cnn(work.path(), cnn_epochs)?;
        cnn_rates.push(figures.samples_per_sec);
        if let Some((rate, version)) = cnn::torch_cnn(figures.train_rows, cnn_epochs) {
            cnn_torch_rates.push(rate);
            cnn_torch_version = Some(version);
        }
        cnn_last = Some(figures);
    }
    let (cnn_rounds, cnn_torch_rounds) = (rounds(&cnn_rates), rounds(&cnn_torch_rates));
    let kiln_cnn = median(cnn_rates);
    rows.push(row(
        "images",
        "Kiln engine, default CNN on digits, CPU",
        format!("{kiln_cnn:.0} samples/s"),
        format!(
            "1×8×8, conv 16/32 + batch-norm + pool, dense 64, batch {}; full path; rounds {cnn_rounds}",
            cnn::CNN_BATCH
        ),
    ));
    if let Some(figures) = &cnn_last {
        rows.push(row(
            "images",
            format!(
                "time to {:.0} % validation accuracy (digits, CPU)",
                cnn::target_accuracy_percent()
            ),
            figures
                .secs_to_target
                .map_or("not reached".to_string(), |secs| format!("{secs:.2} s")),
            format!(
                "best {:.1} % in {cnn_epochs} epochs",
                figures.best_accuracy * 100.0
            ),
        ));
    }
    match (!cnn_torch_rates.is_empty()).then(|| median(cnn_torch_rates)) {
        Some(torch) => {
            rows.push(row(
                "images",
                "PyTorch, same CNN, CPU",
                format!("{torch:.0} samples/s"),
                format!(
                    "benches/torch_cnn.py ({}); rounds {cnn_torch_rounds}",
                    cnn_torch_version.unwrap_or_default()
                ),
            ));
            rows.push(row(
                "images",
                "Kiln / PyTorch (CNN, CPU)",
                format!("{:.3}×", kiln_cnn / torch),
                "Kiln's full path against PyTorch's steps; round by round, per batch size, in the cnn-rounds section",
            ));
        }
        None => rows.push(row(
            "images",
            "PyTorch, same CNN, CPU",
            "not measured".into(),
            "set KILN_TORCH_PYTHON to a Python with torch",
        )),
    }

    // 5: the limit.
    let peak = matmul_gflops(&Device::flex(), if options.quick { 512 } else { 1024 });
    let achieved = kiln_cpu * flops_per_sample / 1e9;
    rows.push(row(
        "limit",
        "FLOPs per training sample",
        format!("{:.2} MFLOP", flops_per_sample / 1e6),
        "forward + backward (3× forward matmuls)",
    ));
    rows.push(row(
        "limit",
        "CPU matmul peak (flex)",
        format!("{peak:.1} GFLOP/s"),
        "square f32 matmul",
    ));
    rows.push(row(
        "limit",
        "Kiln training, CPU",
        format!("{achieved:.1} GFLOP/s"),
        format!("{:.0} % of the matmul peak", achieved / peak * 100.0),
    ));

    // 4: memory.
    let peak_rss = peak_rss_mib();
    rows.push(row(
        "memory",
        "peak resident memory of this process",
        format!("{peak_rss:.0} MiB"),
        "after the training benchmarks, before the UI ones",
    ));
    let (first, last) = memory_across_epochs(work.path(), if options.quick { 5 } else { 50 })?;
    rows.push(row(
        "memory",
        "resident memory, epoch 1 → last (iris, CPU)",
        format!("{first:.0} → {last:.0} MiB"),
        "flat means no leak",
    ));

    // 3: the UI at scale.
    let point_counts: &[usize] = if options.quick {
        &[10_000]
    } else {
        &[10_000, 100_000]
    };
    let run_counts: &[usize] = if options.quick {
        &[1, 10]
    } else {
        &[1, 10, 100]
    };
    for &points in point_counts {
        for &runs in run_counts {
            for hover in [false, true] {
                let ms = frame_ms(runs, points, hover, if options.quick { 3 } else { 5 });
                rows.push(row(
                    "ui",
                    format!(
                        "compare view, {runs} run(s) × {points} points{}",
                        if hover { ", hovering" } else { "" }
                    ),
                    format!("{ms:.1} ms/frame"),
                    "UI pass + tessellation; goal < 16 ms",
                ));
            }
        }
    }
    match startup_ms(work.path()) {
        Some(ms) => rows.push(row(
            "ui",
            "process start to first frame (window closed after it)",
            format!("{ms:.0} ms"),
            "the release binary on this machine's display (Xvfb + lavapipe here)",
        )),
        None => rows.push(row(
            "ui",
            "process start to first frame",
            "not measured".into(),
            "needs a display (DISPLAY)",
        )),
    }
    let scan_runs = if options.quick { 100 } else { 1000 };
    let scan = store_scan_ms(work.path(), scan_runs)?;
    rows.push(row(
        "ui",
        format!("scan a store of {scan_runs} runs"),
        format!("{scan:.0} ms"),
        "list + read every run.json",
    ));

    let table = render(&rows);
    println!("{table}");
    let explanation = "Training rows are samples per second (higher is better); Kiln's engine includes its \
        events, metrics log, validation and a checkpoint (model + optimizer state, atomic writes) every epoch. \
        Training figures are medians over interleaved repeats. UI rows time one egui pass of the \
        compare view plus tessellation, without GPU upload; long curves are drawn decimated \
        (first/min/max/last per bucket, a shared budget of points per frame) and cached between \
        frames. Memory rows read /proc/self/status. Image rows train Kiln's default CNN on \
        sample_data/digits (1438 training images of 1×8×8) through the full engine path, against \
        benches/torch_cnn.py: the same network in PyTorch on random data of the same shape, without \
        validation or checkpoints.";
    if !options.quick {
        let document = format!(
            "# Kiln benchmarks\n\nMeasured {} on {} ({} cores), burn {}, by `cargo run --release --example bench`.\n\
             MLP {FEATURES}→{}→{}→{CLASSES}, batch {BATCH}, Adam, synthetic data; medians of epochs after a warm-up epoch.\n\n{table}\n{explanation}\n",
            chrono::Utc::now().format("%Y-%m-%d"),
            cpu_model(),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            kiln::BURN_VERSION,
            HIDDEN[0],
            HIDDEN[1],
        );
        write_section("core", &document)?;
    }
    Ok(())
}

/// Replaces one marked section of BENCHMARKS.md, keeping the others (each benchmark group is
/// measured by its own command). A file without markers is taken as the core section.
fn write_section(name: &str, text: &str) -> anyhow::Result<()> {
    let path = Path::new("BENCHMARKS.md");
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let old = if old.contains("<!-- section:") {
        old
    } else {
        format!("<!-- section:core -->\n{}<!-- /section:core -->\n", old)
    };
    let (open, close) = (
        format!("<!-- section:{name} -->\n"),
        format!("<!-- /section:{name} -->\n"),
    );
    let block = format!("{open}{text}{close}");
    let document = match (old.find(&open), old.find(&close)) {
        (Some(start), Some(end)) if end > start => {
            format!("{}{block}{}", &old[..start], &old[end + close.len()..])
        }
        _ => format!("{old}\n{block}"),
    };
    std::fs::write(path, document)?;
    println!("wrote the {name} section of BENCHMARKS.md");
    Ok(())
}

pub(crate) fn row(
    group: &'static str,
    name: impl Into<String>,
    value: String,
    note: impl Into<String>,
) -> Row {
    Row {
        group,
        name: name.into(),
        value,
        note: note.into(),
    }
}

fn render(rows: &[Row]) -> String {
    let mut out = String::from("| group | measurement | value | note |\n|---|---|---|---|\n");
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            row.group, row.name, row.value, row.note
        ));
    }
    out
}

pub(crate) fn write_dataset(dir: &Path, rows: usize) -> anyhow::Result<PathBuf> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut text = (0..FEATURES)
        .map(|i| format!("f{i}"))
        .collect::<Vec<_>>()
        .join(",")
        + ",label\n";
    for _ in 0..rows {
        let values: Vec<f32> = (0..FEATURES)
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect();
        let label = (values[0] * 2.5 + values[1] * 2.5 + 5.0).clamp(0.0, 9.0) as usize;
        for value in &values {
            text.push_str(&format!("{value:.4},"));
        }
        text.push_str(&format!("c{label}\n"));
    }
    let path = dir.join(format!("synthetic-{rows}.csv"));
    std::fs::write(&path, text)?;
    Ok(path)
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Kiln training the benchmark MLP on `data`, its runs kept in `runs_dir`.
pub(crate) fn mlp_request(
    data: &Path,
    runs_dir: PathBuf,
    device: DeviceChoice,
    epochs: usize,
) -> TrainRequest {
    TrainRequest {
        data: DataSpec::new(data),
        model: ModelConfig::Mlp(MlpConfig {
            hidden: HIDDEN.to_vec(),
            ..MlpConfig::default()
        }),
        train: TrainConfig {
            epochs,
            batch_size: BATCH,
            learning_rate: 0.001,
            ..TrainConfig::default()
        },
        device,
        name: Some("bench".into()),
        runs_dir,
    }
}

fn kiln_samples_per_sec(
    dir: &Path,
    data: &Path,
    device: DeviceChoice,
    epochs: usize,
) -> anyhow::Result<f64> {
    let handle = start(
        mlp_request(data, dir.join("bench-runs"), device, epochs),
        None,
    )?;
    // The full path: the time between two epoch ends covers the previous checkpoint (model and
    // optimizer written atomically), the metrics log, the events, training and validation.
    let (train_rows, ends) = epoch_ends(&handle.wait());
    Ok(median(rates_between(train_rows, &ends)))
}

/// Training rows, and each epoch's end (wall seconds) with its validation accuracy.
pub(crate) fn epoch_ends(events: &[TrainEvent]) -> (usize, Vec<(f64, Option<f64>)>) {
    let train_rows = events
        .iter()
        .find_map(|event| match event {
            TrainEvent::Started { train_rows, .. } => Some(*train_rows),
            _ => None,
        })
        .unwrap_or(0);
    let ends = events
        .iter()
        .filter_map(|event| match event {
            TrainEvent::Epoch(m) => Some((m.wall_secs, m.valid_accuracy)),
            _ => None,
        })
        .collect();
    (train_rows, ends)
}

/// Each round's value (times `scale`) with `digits` decimals, comma-separated.
pub(crate) fn rounds_list(values: &[f64], scale: f64, digits: usize) -> String {
    values
        .iter()
        .map(|value| format!("{:.digits$}", value * scale))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Round-by-round ratios of two sets of rounds.
pub(crate) fn ratios(numerators: &[f64], denominators: &[f64]) -> Vec<f64> {
    numerators
        .iter()
        .zip(denominators)
        .map(|(numerator, denominator)| numerator / denominator)
        .collect()
}

/// The engine's own samples/s of each epoch's training steps, the first (warm-up) epoch left out.
pub(crate) fn step_rates(events: &[TrainEvent]) -> Vec<f64> {
    events
        .iter()
        .filter_map(|event| match event {
            TrainEvent::Epoch(metrics) => Some(metrics.samples_per_sec),
            _ => None,
        })
        .skip(1)
        .collect()
}

/// Samples per second between consecutive epoch ends (so the first, warm-up epoch is left out).
pub(crate) fn rates_between(train_rows: usize, ends: &[(f64, Option<f64>)]) -> Vec<f64> {
    ends.windows(2)
        .map(|pair| train_rows as f64 / (pair[1].0 - pair[0].0))
        .collect()
}

/// Samples/s of a hand-written burn loop (the same model and optimiser as Kiln's engine,
/// without events, logs or checkpoints) training the MLP on `rows` rows; with `valid_rows`,
/// it also predicts that many held-out rows at each epoch's end (with the model's inference
/// copy, in chunks, reading the outputs back), as a loop that validates once an epoch would.
pub(crate) fn bare_burn_samples_per_sec(
    device: &Device,
    rows: usize,
    epochs: usize,
    valid_rows: usize,
    shuffled: bool,
) -> f64 {
    // On the threads Kiln trains on, so that the difference is Kiln's own work: the same loop
    // issued from a plain thread shares the cores with rayon's global pool (the threads
    // module says why that is slower on few cores).
    kiln::train::in_training_pool(|| bare_loop(device, rows, epochs, valid_rows, shuffled))
}

/// `shuffled`: each epoch reads its batches in a fresh random order (each batch's rows picked
/// by index, as a hand-written loop that shuffles does); otherwise in order.
fn bare_loop(
    device: &Device,
    rows: usize,
    epochs: usize,
    valid_rows: usize,
    shuffled: bool,
) -> f64 {
    let train_device = device.clone().autodiff();
    let mut rng = StdRng::seed_from_u64(1);
    let inputs: Vec<f32> = (0..rows * FEATURES).map(|_| rng.random::<f32>()).collect();
    let labels: Vec<i64> = (0..rows)
        .map(|_| rng.random_range(0..CLASSES as i64))
        .collect();
    let x = Tensor::<2>::from_data(TensorData::new(inputs, [rows, FEATURES]), &train_device);
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [rows]), &train_device);
    let config = MlpConfig {
        hidden: HIDDEN.to_vec(),
        ..MlpConfig::default()
    };
    let valid_inputs: Vec<f32> = (0..valid_rows * FEATURES)
        .map(|_| rng.random::<f32>())
        .collect();
    let valid_x = Tensor::<2>::from_data(
        TensorData::new(valid_inputs, [valid_rows, FEATURES]),
        device,
    );
    let mut model = kiln::model::Mlp::new(&config, FEATURES, CLASSES, &train_device);
    // Kiln's Adam (fused on the CPU), as Kiln's engine uses: the difference stays Kiln's own work.
    let mut optimizer = kiln::train::adam();
    let mut rates = Vec::new();
    let mut order: Vec<i64> = (0..rows as i64).collect();
    for epoch in 0..epochs {
        let started = Instant::now();
        if shuffled {
            order.shuffle(&mut rng);
        }
        let mut sum: Option<Tensor<1>> = None;
        for start in (0..rows).step_by(BATCH) {
            let end = (start + BATCH).min(rows);
            kiln::train::keep_warm();
            let idx = if shuffled {
                let picked = TensorData::new(order[start..end].to_vec(), [end - start]);
                Tensor::<1, Int>::from_data(picked, &train_device)
            } else {
                Tensor::<1, Int>::arange(start as i64..end as i64, &train_device)
            };
            let output = model.forward(x.clone().select(0, idx.clone()), true);
            // Kiln's loss kernel, as its engine uses (the tally it also returns is left unused).
            let (loss, _) =
                kiln::model::cpu_kernels::cross_entropy(output, y.clone().select(0, idx));
            let detached = loss.clone().inner();
            sum = Some(match sum.take() {
                Some(s) => s + detached,
                None => detached,
            });
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(0.001, model, grads);
        }
        let _ = sum.map(|s| s.into_scalar::<f32>());
        if valid_rows > 0 {
            let inference = model.valid();
            for start in (0..valid_rows).step_by(VALID_CHUNK_ROWS) {
                let end = (start + VALID_CHUNK_ROWS).min(valid_rows);
                let outputs = inference.forward(valid_x.clone().slice(start..end), false);
                let _ = outputs.into_data().try_to_vec::<f32>();
            }
        }
        if epoch > 0 {
            rates.push(rows as f64 / started.elapsed().as_secs_f64());
        }
    }
    let _ = model.num_params();
    median(rates)
}

/// Rows per chunk of the bare loop's validation: what Kiln's engine uses.
const VALID_CHUNK_ROWS: usize = 4096;

/// (samples/s, "torch VERSION, N threads") of the MLP in PyTorch.
fn torch_samples_per_sec(rows: usize, epochs: usize) -> Option<(f64, String)> {
    torch_rate("benches/torch_mlp.py", rows, epochs, BATCH, &[])
}

/// Runs a PyTorch baseline script (`SCRIPT ROWS EPOCHS BATCH`, printing "rate version threads")
/// with the Python named by `KILN_TORCH_PYTHON`.
/// `extra`: the script's further arguments (device, image shape, channels).
pub(crate) fn torch_rate(
    script: &str,
    rows: usize,
    epochs: usize,
    batch: usize,
    extra: &[&str],
) -> Option<(f64, String)> {
    let python = std::env::var_os("KILN_TORCH_PYTHON")?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script);
    let output = std::process::Command::new(python)
        .arg(script)
        .args([rows.to_string(), epochs.to_string(), batch.to_string()])
        .args(extra)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut fields = text.split_whitespace();
    let rate = fields.next()?.parse().ok()?;
    let version = fields.next().unwrap_or("?");
    let threads = fields.next().unwrap_or("?");
    Some((rate, format!("torch {version}, {threads} threads")))
}

fn training_flops_per_sample() -> f64 {
    let widths = [FEATURES, HIDDEN[0], HIDDEN[1], CLASSES];
    let forward: f64 = widths.windows(2).map(|w| 2.0 * (w[0] * w[1]) as f64).sum();
    3.0 * forward
}

fn matmul_gflops(device: &Device, n: usize) -> f64 {
    let a = Tensor::<2>::ones([n, n], device);
    let b = Tensor::<2>::ones([n, n], device);
    let _ = a.clone().matmul(b.clone()).sum().into_scalar::<f32>();
    let repeats = 5;
    let started = Instant::now();
    for _ in 0..repeats {
        let _ = a.clone().matmul(b.clone()).sum().into_scalar::<f32>();
    }
    let secs = started.elapsed().as_secs_f64();
    2.0 * (n * n * n) as f64 * repeats as f64 / secs / 1e9
}

fn synthetic_curves(points: usize, seed: u64) -> RunCurves {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = MetricsLog::default();
    for i in 0..points {
        let split = if i % 2 == 0 {
            SplitName::Train
        } else {
            SplitName::Valid
        };
        log.points.push(MetricPoint {
            epoch: i / 2 + 1,
            step: i as u64,
            split,
            metric: "loss".into(),
            value: 1.0 / (1.0 + i as f64 * 0.01) + rng.random::<f64>() * 0.05,
            wall_secs: i as f64 * 0.01,
        });
    }
    let mut index = CheckpointIndex::default();
    for epoch in (points / 2).saturating_sub(3)..=points / 2 {
        index.insert(
            CheckpointEntry {
                epoch,
                step: epoch as u64 * 2,
                model_file: String::new(),
                optimizer_file: String::new(),
                metrics: [("valid_loss".to_string(), 0.1)].into(),
                confusion: None,
                best: false,
                wall_secs: 0.0,
            },
            3,
        );
    }
    RunCurves {
        log,
        index,
        confusions: Default::default(),
        series: Default::default(),
    }
}

/// Median time of a UI pass plus tessellation for the compare view.
pub(crate) fn frame_ms(runs: usize, points: usize, hover: bool, frames: usize) -> f64 {
    let ctx = egui::Context::default();
    let curves: Vec<RunCurves> = (0..runs)
        .map(|i| synthetic_curves(points, i as u64))
        .collect();
    let names: Vec<String> = (0..runs).map(|i| format!("run {i}")).collect();
    let settings = PlotSettings::default();
    let mut times = Vec::new();
    for frame in 0..frames + 1 {
        let mut input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(1280.0, 800.0),
            )),
            ..Default::default()
        };
        if hover {
            input
                .events
                .push(egui::Event::PointerMoved(egui::pos2(640.0, 400.0)));
        }
        let started = Instant::now();
        let output = ctx.run_ui(input, |ui| {
            let plot_runs: Vec<PlotRun<'_>> = curves
                .iter()
                .enumerate()
                .map(|(i, c)| PlotRun {
                    id: &names[i],
                    name: &names[i],
                    color: kiln::ui::run_color(i),
                    curves: c,
                    highlighted: false,
                })
                .collect();
            curves_ui(ui, &settings, &plot_runs, &[], None);
        });
        let _ = ctx.tessellate(output.shapes, output.pixels_per_point);
        if frame > 0 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    median(times)
}

/// A default-model iris run on the CPU.
pub(crate) fn iris_request(runs_dir: &Path, epochs: usize, name: &str) -> TrainRequest {
    TrainRequest {
        data: DataSpec::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample_data/iris.csv")),
        model: ModelConfig::default(),
        train: TrainConfig {
            epochs,
            ..TrainConfig::default()
        },
        device: DeviceChoice::Cpu,
        name: Some(name.into()),
        runs_dir: runs_dir.to_path_buf(),
    }
}

fn store_scan_ms(dir: &Path, runs: usize) -> anyhow::Result<f64> {
    // A real run.json to copy, from a tiny training run.
    let source_dir = dir.join("scan-source");
    let handle = start(iris_request(&source_dir, 1, "scan"), None)?;
    let id = handle.run_id.clone();
    handle.wait();
    let record = std::fs::read(source_dir.join(&id).join("run.json"))?;
    let store_dir = dir.join("scan-store");
    for i in 0..runs {
        let run = store_dir.join(format!("20260101-000000-run-{i:05}"));
        std::fs::create_dir_all(run.join("checkpoints"))?;
        std::fs::write(run.join("run.json"), &record)?;
    }
    let store = RunStore::open(&store_dir)?;
    let started = Instant::now();
    let listed = store.list()?.len();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(listed == runs, "listed {listed} of {runs} runs");
    Ok(ms)
}

fn status_field_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn peak_rss_mib() -> f64 {
    status_field_mib("VmHWM:")
}

/// Resident memory after the first and the last epoch of an iris run.
fn memory_across_epochs(dir: &Path, epochs: usize) -> anyhow::Result<(f64, f64)> {
    let handle = start(
        iris_request(&dir.join("memory-runs"), epochs, "memory"),
        None,
    )?;
    let mut first = f64::NAN;
    let mut last = f64::NAN;
    for event in handle.events().iter() {
        if let TrainEvent::Epoch(m) = &event {
            let rss = status_field_mib("VmRSS:");
            if m.epoch == 1 {
                first = rss;
            }
            last = rss;
        }
        if matches!(event, TrainEvent::Finished { .. }) {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(10));
    Ok((first, last))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// Median wall time of launching the app until it has drawn its first frame and closed.
fn startup_ms(dir: &Path) -> Option<f64> {
    std::env::var_os("DISPLAY")?;
    // examples live in target/release/examples; the app binary is one folder up.
    let exe = std::env::current_exe()
        .ok()?
        .parent()?
        .parent()?
        .join("kiln");
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let status = std::process::Command::new(&exe)
            .env("KILN_EXIT_AFTER_FIRST_FRAME", "1")
            .env("HOME", dir)
            .arg("--runs-dir")
            .arg(dir.join("startup-runs"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Some(median(times))
}
