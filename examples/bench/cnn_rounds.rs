//! Kiln's CNN training loop against PyTorch's, round by round: the default CNN on digits at
//! batch 32, 128 and 256, and a 32×32 RGB CNN (conv 32/64) at batch 128, on the CPU.
//!
//!     KILN_TORCH_PYTHON=… cargo run --release --example bench -- --only cnn-rounds

use std::path::Path;

use kiln::data::{DataSpec, ImageOptions};
use kiln::model::{CnnConfig, ConvBlock, ModelConfig};
use kiln::train::{DeviceChoice, TrainConfig, TrainRequest, start};

use super::{Row, median, row};

pub const EXPLANATION: &str = "Each round trains Kiln (the engine's full path: events, metrics log, \
    validation and a checkpoint every epoch, as `kiln train` runs) and then PyTorch (`benches/torch_cnn.py`: \
    the same network, batch and optimiser on random data of the same shape, no validation or checkpoints), \
    alternating; a rate is the median samples/s of the epochs after the first. Kiln's rate counts an epoch's \
    training steps (the engine's own samples/s), as PyTorch's script times its steps; the full-path row times \
    from one epoch's end to the next, validation and checkpoint included. \
    The ratio is Kiln's steps rate over PyTorch's in the same round (above 1: Kiln is faster). \
    The RGB images are generated (10 classes of 32×32 noise around a class colour). \
    Where the time goes, op by op, is in the cnn-ops section.";

struct Setup {
    label: &'static str,
    batch: usize,
    rgb: bool,
}

const SETUPS: [Setup; 4] = [
    Setup {
        label: "default CNN, digits 1×8×8",
        batch: 32,
        rgb: false,
    },
    Setup {
        label: "default CNN, digits 1×8×8",
        batch: 128,
        rgb: false,
    },
    Setup {
        label: "default CNN, digits 1×8×8",
        batch: 256,
        rgb: false,
    },
    Setup {
        label: "CNN conv 32/64, RGB 3×32×32",
        batch: 128,
        rgb: true,
    },
];

/// Writes 10 class folders of `per_class` 32×32 RGB images.
fn write_rgb_images(dir: &Path, per_class: usize) -> anyhow::Result<()> {
    use rand::{RngExt, SeedableRng, rngs::StdRng};
    let mut rng = StdRng::seed_from_u64(5);
    for class in 0..10u8 {
        let folder = dir.join(format!("class{class}"));
        std::fs::create_dir_all(&folder)?;
        let base = [class * 25, 255 - class * 20, (class * 70) % 255];
        for index in 0..per_class {
            let pixels: Vec<u8> = (0..32 * 32 * 3)
                .map(|i| base[i % 3].saturating_add(rng.random_range(0..60)))
                .collect();
            image::RgbImage::from_raw(32, 32, pixels)
                .ok_or_else(|| anyhow::anyhow!("image size"))?
                .save(folder.join(format!("{index}.png")))?;
        }
    }
    Ok(())
}

fn kiln_rate(setup: &Setup, data: &Path, runs: &Path, epochs: usize) -> anyhow::Result<KilnRates> {
    let mut config = CnnConfig::default();
    if setup.rgb {
        config.blocks = [32, 64]
            .map(|channels| ConvBlock {
                channels,
                kernel_size: 3,
                pool: true,
            })
            .to_vec();
    }
    let mut spec = DataSpec::new(data);
    if setup.rgb {
        spec.images = Some(ImageOptions::default());
    }
    let handle = start(
        TrainRequest {
            data: spec,
            model: ModelConfig::Cnn(config),
            train: TrainConfig {
                epochs,
                batch_size: setup.batch,
                learning_rate: 0.003,
                ..TrainConfig::default()
            },
            device: DeviceChoice::Cpu,
            name: Some("bench-cnn-rounds".into()),
            runs_dir: runs.to_path_buf(),
        },
        None,
    )?;
    let events = handle.wait();
    let (train_rows, ends) = super::epoch_ends(&events);
    Ok(KilnRates {
        steps: median(super::step_rates(&events)),
        full: median(super::rates_between(train_rows, &ends)),
        train_rows,
    })
}

/// One Kiln round: the training steps' rate (what PyTorch's script times), the full path's
/// (validation, log and checkpoint included) and the rows trained on.
struct KilnRates {
    steps: f64,
    full: f64,
    train_rows: usize,
}

/// PyTorch's samples/s and "torch VERSION, N threads" for the same setup.
fn torch_rate(setup: &Setup, rows: usize, epochs: usize) -> Option<(f64, String)> {
    let (shape, channels) = if setup.rgb {
        ("3,32,32", "32,64")
    } else {
        ("1,8,8", "16,32")
    };
    super::torch_rate(
        "benches/torch_cnn.py",
        rows,
        epochs,
        setup.batch,
        &["cpu", shape, channels],
    )
}

pub fn rows(work: &Path, quick: bool) -> anyhow::Result<Vec<Row>> {
    let rounds = if quick { 1 } else { 5 };
    let rgb = work.join("rgb32");
    write_rgb_images(&rgb, if quick { 20 } else { 100 })?;
    let mut rows = Vec::new();
    for setup in &SETUPS {
        if quick && setup.batch > 32 && !setup.rgb {
            continue;
        }
        let (data, epochs) = if setup.rgb {
            (rgb.clone(), if quick { 2 } else { 4 })
        } else {
            (super::cnn::digits(), if quick { 3 } else { 8 })
        };
        let (mut kiln, mut full, mut torch, mut ratios, mut full_ratios) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut version = None;
        for round in 0..rounds {
            let runs = work.join(format!("runs-{}-{round}", setup.batch));
            let rates = kiln_rate(setup, &data, &runs, epochs)?;
            kiln.push(rates.steps);
            full.push(rates.full);
            if let Some((torch_rate, torch_version)) = torch_rate(setup, rates.train_rows, epochs) {
                torch.push(torch_rate);
                ratios.push(rates.steps / torch_rate);
                full_ratios.push(rates.full / torch_rate);
                version = Some(torch_version);
            }
        }
        let list = |values: &[f64], digits: usize| super::rounds_list(values, 1.0, digits);
        let name = format!("{}, batch {}", setup.label, setup.batch);
        rows.push(row(
            "cnn vs pytorch",
            format!("Kiln, {name}"),
            format!("{:.0} samples/s", median(kiln.clone())),
            format!("training steps; rounds {}", list(&kiln, 0)),
        ));
        rows.push(row(
            "cnn vs pytorch",
            format!("Kiln full path, {name}"),
            format!("{:.0} samples/s", median(full.clone())),
            format!(
                "steps, validation, log and checkpoint; rounds {}",
                list(&full, 0)
            ),
        ));
        if ratios.is_empty() {
            rows.push(row(
                "cnn vs pytorch",
                format!("PyTorch, {name}"),
                "not measured".to_string(),
                "set KILN_TORCH_PYTHON to a Python with torch".to_string(),
            ));
            continue;
        }
        rows.push(row(
            "cnn vs pytorch",
            format!("PyTorch, {name}"),
            format!("{:.0} samples/s", median(torch.clone())),
            format!(
                "rounds {}; {}",
                list(&torch, 0),
                version.unwrap_or_default()
            ),
        ));
        let lowest = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        rows.push(row(
            "cnn vs pytorch",
            format!("Kiln / PyTorch, {name}"),
            format!("{:.2}× (lowest round {lowest:.2}×)", median(ratios.clone())),
            format!(
                "training steps against PyTorch's; rounds {}; goal ≥ 1.0, no round below 0.9; Kiln's full path / PyTorch {:.2}×",
                list(&ratios, 2),
                median(full_ratios.clone())
            ),
        ));
    }
    Ok(rows)
}
