//! The MLP as a burn module.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{gelu, tanh};
use burn::tensor::{Device, Tensor};

use super::config::{Activation, MlpConfig};
use super::cpu_kernels::dense;

/// Dense layers only; activation and dropout are applied in `forward`, so the stored weights are
/// exactly the linear layers (`layers.N.weight`, `layers.N.bias`) and nothing else.
#[derive(Module, Debug)]
pub struct Mlp {
    pub layers: Vec<Linear>,
    #[module(skip)]
    pub activation: Activation,
    #[module(skip)]
    pub dropout: f64,
}

impl Mlp {
    pub fn new(config: &MlpConfig, inputs: usize, outputs: usize, device: &Device) -> Self {
        let mut widths = vec![inputs];
        widths.extend(&config.hidden);
        widths.push(outputs);
        let layers = widths
            .windows(2)
            .map(|pair| LinearConfig::new(pair[0], pair[1]).init(device))
            .collect();
        Self {
            layers,
            activation: config.activation,
            dropout: config.dropout,
        }
    }

    /// Logits (classification) or standardised values (regression), `[batch, outputs]`.
    pub fn forward(&self, input: Tensor<2>, training: bool) -> Tensor<2> {
        let last = self.layers.len().saturating_sub(1);
        let mut x = input;
        for (index, layer) in self.layers.iter().enumerate() {
            if index < last {
                // ReLU is part of the dense kernel on the CPU (no separate pass or mask tensor).
                x = match self.activation {
                    Activation::Relu => dense(layer, x, true),
                    Activation::Gelu => gelu(dense(layer, x, false)),
                    Activation::Tanh => tanh(dense(layer, x, false)),
                };
                if training && self.dropout > 0.0 {
                    x = super::cpu_kernels::dropout(x, 1.0 - self.dropout);
                }
            } else {
                x = dense(layer, x, false);
            }
        }
        x
    }
}

impl Mlp {
    /// An empty stand-in, for the instant the optimizer owns the model.
    pub(crate) fn placeholder(&self) -> Self {
        Self {
            layers: Vec::new(),
            activation: self.activation,
            dropout: self.dropout,
        }
    }
}
