//! Training on the wgpu device (a real GPU, or Mesa lavapipe where there is none).

mod common;

use common::sample;

use std::path::PathBuf;

use kiln::data::DataSpec;
use kiln::model::{CnnConfig, ConvBlock, MlpConfig, ModelConfig};
use kiln::train::{
    DeviceChoice, EpochMetrics, Outcome, TrainConfig, TrainEvent, TrainRequest, start,
};

/// Trains on wgpu and returns the epochs' metrics, after checking the run completed there.
fn train_on_wgpu(data: PathBuf, model: ModelConfig, train: TrainConfig) -> Vec<EpochMetrics> {
    let store = tempfile::tempdir().unwrap();
    let handle = start(
        TrainRequest {
            data: DataSpec::new(data),
            model,
            train,
            device: DeviceChoice::Wgpu,
            name: Some("wgpu".to_string()),
            runs_dir: store.path().to_path_buf(),
        },
        None,
    )
    .expect("starts");
    let events = handle.wait();
    let device = events.iter().find_map(|e| match e {
        TrainEvent::Started { device, .. } => Some(device.clone()),
        _ => None,
    });
    let finished = events.iter().find_map(|e| match e {
        TrainEvent::Finished {
            outcome, message, ..
        } => Some((*outcome, message.clone())),
        _ => None,
    });
    let (outcome, message) = finished.expect("finished");
    assert_eq!(
        outcome,
        Outcome::Completed,
        "{message} (is a Vulkan driver such as mesa-vulkan-drivers installed?)"
    );
    let device = device.expect("started");
    assert_eq!(device.backend, "wgpu");
    assert!(!device.adapter.is_empty());
    events
        .into_iter()
        .filter_map(|e| match e {
            TrainEvent::Epoch(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[test]
fn trains_on_wgpu_with_a_finite_falling_loss() {
    let epochs = train_on_wgpu(
        sample("iris.csv"),
        ModelConfig::Mlp(MlpConfig {
            hidden: vec![32],
            ..MlpConfig::default()
        }),
        TrainConfig {
            epochs: 4,
            batch_size: 32,
            learning_rate: 0.02,
            ..TrainConfig::default()
        },
    );
    let losses: Vec<f64> = epochs.iter().map(|m| m.train_loss).collect();
    assert_eq!(losses.len(), 4);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[3] < losses[0], "loss falls: {losses:?}");
}

#[test]
fn a_batch_norm_cnn_trains_on_wgpu() {
    let epochs = train_on_wgpu(
        sample("digits"),
        ModelConfig::Cnn(CnnConfig {
            blocks: vec![ConvBlock {
                channels: 8,
                kernel_size: 3,
                pool: true,
            }],
            batch_norm: true,
            dropout: 0.0,
            dense: Vec::new(),
        }),
        TrainConfig {
            epochs: 3,
            batch_size: 64,
            learning_rate: 0.01,
            ..TrainConfig::default()
        },
    );
    assert_eq!(epochs.len(), 3);
    assert!(
        epochs.iter().all(|m| m.train_loss.is_finite()),
        "{epochs:?}"
    );
    let accuracy = epochs[2].valid_accuracy.expect("classification");
    assert!(accuracy > 0.8, "validation accuracy {accuracy}");
}
