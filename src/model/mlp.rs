//! The MLP as a burn module.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{gelu, relu, tanh};
use burn::tensor::{Device, Tensor};

use super::config::{Activation, MlpConfig};

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
            x = layer.forward(x);
            if index < last {
                x = match self.activation {
                    Activation::Relu => relu(x),
                    Activation::Gelu => gelu(x),
                    Activation::Tanh => tanh(x),
                };
                if training && self.dropout > 0.0 {
                    x = super::cpu_kernels::dropout(x, 1.0 - self.dropout);
                }
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
