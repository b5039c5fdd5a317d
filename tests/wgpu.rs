//! Training on the wgpu device (a real GPU, or Mesa lavapipe where there is none).

use std::path::PathBuf;

use kiln::data::DataSpec;
use kiln::model::{MlpConfig, ModelConfig};
use kiln::train::{DeviceChoice, Outcome, TrainConfig, TrainEvent, TrainRequest, start};

#[test]
fn trains_on_wgpu_with_a_finite_falling_loss() {
    let store = tempfile::tempdir().unwrap();
    let handle = start(
        TrainRequest {
            data: DataSpec::new(
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample_data/iris.csv"),
            ),
            model: ModelConfig::Mlp(MlpConfig {
                hidden: vec![32],
                ..MlpConfig::default()
            }),
            train: TrainConfig {
                epochs: 4,
                batch_size: 32,
                learning_rate: 0.02,
                ..TrainConfig::default()
            },
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
    let losses: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Epoch(m) => Some(m.train_loss),
            _ => None,
        })
        .collect();
    assert_eq!(losses.len(), 4);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[3] < losses[0], "loss falls: {losses:?}");
}
