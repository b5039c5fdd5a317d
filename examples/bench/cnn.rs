//! The image benchmark: the default CNN on the digits sample, Kiln against PyTorch on the CPU.

use std::path::{Path, PathBuf};

use kiln::data::DataSpec;
use kiln::model::{CnnConfig, ModelConfig};
use kiln::train::{DeviceChoice, TrainConfig, TrainRequest, start};

pub const CNN_BATCH: usize = 32;
/// A validation accuracy worth waiting for on digits.
const TARGET_ACCURACY: f64 = 0.95;

pub struct CnnFigures {
    pub samples_per_sec: f64,
    pub train_rows: usize,
    /// Wall seconds from the start of training to the first epoch at the target accuracy.
    pub secs_to_target: Option<f64>,
    pub best_accuracy: f64,
}

pub fn digits() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample_data/digits")
}

/// Kiln's full path (events, metrics log, validation, a checkpoint every epoch) training the
/// default CNN on digits; the rate is the median over epochs after the first.
pub fn kiln_cnn(dir: &Path, epochs: usize) -> anyhow::Result<CnnFigures> {
    let handle = start(
        TrainRequest {
            data: DataSpec::new(digits()),
            model: ModelConfig::Cnn(CnnConfig::default()),
            train: TrainConfig {
                epochs,
                batch_size: CNN_BATCH,
                learning_rate: 0.003,
                ..TrainConfig::default()
            },
            device: DeviceChoice::Cpu,
            name: Some("bench-cnn".into()),
            runs_dir: dir.join("bench-cnn-runs"),
        },
        None,
    )?;
    let (train_rows, ends) = super::epoch_ends(&handle.wait());
    let accuracies: Vec<(f64, f64)> = ends
        .iter()
        .map(|(secs, accuracy)| (*secs, accuracy.unwrap_or(0.0)))
        .collect();
    Ok(CnnFigures {
        samples_per_sec: super::median(super::rates_between(train_rows, &ends)),
        train_rows,
        secs_to_target: accuracies
            .iter()
            .find(|(_, accuracy)| *accuracy >= TARGET_ACCURACY)
            .map(|(secs, _)| *secs),
        best_accuracy: accuracies.iter().map(|(_, a)| *a).fold(0.0, f64::max),
    })
}

/// (samples/s, "torch VERSION, N threads") for the same CNN in PyTorch on data of the same shape.
pub fn torch_cnn(rows: usize, epochs: usize) -> Option<(f64, String)> {
    super::torch_rate("benches/torch_cnn.py", rows, epochs, CNN_BATCH, &[])
}

pub fn target_accuracy_percent() -> f64 {
    TARGET_ACCURACY * 100.0
}
