//! The models the doctor bench trains, stated exactly so its figures can be compared with other
//! tools (benches/torch_mlp.py and benches/torch_cnn.py build the same networks).

use serde::{Deserialize, Serialize};

use crate::data::{ImageShape, InputShape};
use crate::model::{CnnConfig, MlpConfig, ModelConfig};

/// One model, input shape and batch size to time.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub id: &'static str,
    pub model: ModelConfig,
    pub input: InputShape,
    pub classes: usize,
    pub batch: usize,
}

/// What a model is, for scaling measured speeds by arithmetic: an MLP's cost is a few matrix
/// products, a CNN's mostly convolutions, and the two run at different rates on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFamily {
    Mlp,
    Cnn,
}

impl ModelFamily {
    pub fn of(model: &ModelConfig) -> Self {
        match model {
            ModelConfig::Mlp(_) => ModelFamily::Mlp,
            ModelConfig::Cnn(_) => ModelFamily::Cnn,
        }
    }
}

/// The tiny workload whose step time stands for a device's fixed cost per step (kernel launches,
/// synchronisation), which dominates small models on a GPU.
pub const LAUNCH_WORKLOAD: &str = "launch";

/// What `kiln doctor --bench` runs unless told otherwise: enough for `auto` to compare devices.
pub const DEFAULT_WORKLOADS: [&str; 3] = [LAUNCH_WORKLOAD, "mlp", "cnn"];

impl Workload {
    pub fn family(&self) -> ModelFamily {
        ModelFamily::of(&self.model)
    }

    pub fn training_flops_per_sample(&self) -> f64 {
        self.model
            .training_flops_per_sample(&self.input, self.classes)
    }

    /// E.g. `mlp 64→256→256→10 relu, batch 256`.
    pub fn describe(&self) -> String {
        format!(
            "{}, batch {}",
            self.model.describe(&self.input, self.classes),
            self.batch
        )
    }
}

fn mlp(id: &'static str, widths: &[usize], classes: usize, batch: usize) -> Workload {
    Workload {
        id,
        model: ModelConfig::Mlp(MlpConfig {
            hidden: widths[1..].to_vec(),
            ..MlpConfig::default()
        }),
        input: InputShape::Flat(widths[0]),
        classes,
        batch,
    }
}

/// Kiln's default CNN (conv 16/32 3×3 + batch-norm + ReLU + 2×2 pool, dense 64, dropout 0.25).
fn cnn(id: &'static str, channels: usize, size: usize, batch: usize) -> Workload {
    Workload {
        id,
        model: ModelConfig::Cnn(CnnConfig::default()),
        input: InputShape::Image(ImageShape {
            channels,
            height: size,
            width: size,
        }),
        classes: 10,
        batch,
    }
}

/// Every workload the bench knows, the default ones first.
pub fn catalogue() -> Vec<Workload> {
    vec![
        mlp(LAUNCH_WORKLOAD, &[16, 16], 2, 16),
        mlp("mlp", &[64, 256, 256], 10, 256),
        cnn("cnn", 1, 8, 128),
        cnn("cnn-b32", 1, 8, 32),
        mlp("mlp-wide", &[784, 1024, 1024], 10, 1024),
        cnn("cnn-rgb32", 3, 32, 256),
    ]
}

/// The workloads named, in the order given; an unknown name is an error listing the known ones.
pub fn named(ids: &[String]) -> Result<Vec<Workload>, String> {
    let all = catalogue();
    ids.iter()
        .map(|id| {
            all.iter().find(|w| w.id == id).cloned().ok_or_else(|| {
                let known: Vec<&str> = all.iter().map(|w| w.id).collect();
                format!("unknown workload '{id}'; known: {}", known.join(", "))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stated_models_are_the_ones_built() {
        let all = catalogue();
        let describe = |id: &str| all.iter().find(|w| w.id == id).unwrap().describe();
        assert_eq!(describe("mlp"), "mlp 64→256→256→10 relu, batch 256");
        assert_eq!(
            describe("mlp-wide"),
            "mlp 784→1024→1024→10 relu, batch 1024"
        );
        assert_eq!(
            describe("cnn-rgb32"),
            "cnn 3×32×32 [16k3p 32k3p] bn →64 →10 dropout 0.25, batch 256"
        );
        assert!(named(&["mlp".into(), "nope".into()]).is_err());
    }
}
