//! Serializable model configurations, validated before anything is built.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Relu,
    Gelu,
    Tanh,
}

impl Activation {
    pub const ALL: [Activation; 3] = [Activation::Relu, Activation::Gelu, Activation::Tanh];

    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::Tanh => "tanh",
        }
    }
}

/// A multi-layer perceptron: dense layers with an activation (and dropout) between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Width of each hidden layer, input side first; empty means a linear model.
    pub hidden: Vec<usize>,
    #[serde(default)]
    pub activation: Activation,
    /// Probability of zeroing a hidden unit during training.
    #[serde(default)]
    pub dropout: f64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: vec![64, 64],
            activation: Activation::Relu,
            dropout: 0.0,
        }
    }
}

/// The model of a run; the input and output widths come from the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelConfig {
    Mlp(MlpConfig),
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Mlp(MlpConfig::default())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelConfigError {
    #[error("hidden layer {index} has width 0; every layer needs at least one unit")]
    ZeroWidth { index: usize },
    #[error("hidden layer {index} has width {width}; the limit is {max}")]
    TooWide {
        index: usize,
        width: usize,
        max: usize,
    },
    #[error("dropout must be at least 0 and below 1, not {0}")]
    Dropout(f64),
}

/// Wider layers than this are almost certainly a typo for a tool aimed at small models.
pub const MAX_LAYER_WIDTH: usize = 16_384;

impl ModelConfig {
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        match self {
            ModelConfig::Mlp(config) => {
                for (index, &width) in config.hidden.iter().enumerate() {
                    if width == 0 {
                        return Err(ModelConfigError::ZeroWidth { index: index + 1 });
                    }
                    if width > MAX_LAYER_WIDTH {
                        return Err(ModelConfigError::TooWide {
                            index: index + 1,
                            width,
                            max: MAX_LAYER_WIDTH,
                        });
                    }
                }
                if !(0.0..1.0).contains(&config.dropout) || !config.dropout.is_finite() {
                    return Err(ModelConfigError::Dropout(config.dropout));
                }
                Ok(())
            }
        }
    }

    /// A one-line description, e.g. `mlp 4→64→64→3 relu`.
    pub fn describe(&self, inputs: usize, outputs: usize) -> String {
        match self {
            ModelConfig::Mlp(config) => {
                let mut widths = vec![inputs.to_string()];
                widths.extend(config.hidden.iter().map(usize::to_string));
                widths.push(outputs.to_string());
                let mut text = format!("mlp {} {}", widths.join("→"), config.activation.name());
                if config.dropout > 0.0 {
                    text.push_str(&format!(" dropout {}", config.dropout));
                }
                text
            }
        }
    }

    /// Number of trainable parameters for the given input and output widths.
    pub fn parameter_count(&self, inputs: usize, outputs: usize) -> usize {
        match self {
            ModelConfig::Mlp(config) => {
                let mut widths = vec![inputs];
                widths.extend(&config.hidden);
                widths.push(outputs);
                widths
                    .windows(2)
                    .map(|pair| pair[0] * pair[1] + pair[1])
                    .sum()
            }
        }
    }
}
