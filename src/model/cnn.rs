//! The small CNN as a burn module: conv blocks (conv, optional batch-norm, ReLU, optional
//! 2×2 max-pool), then a dense head. Inputs arrive flat (channel-major) and are reshaped here.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::config::CnnConfig;
use crate::data::ImageShape;

#[derive(Module, Debug)]
pub struct ConvLayer {
    pub conv: Conv2d,
    pub norm: Option<BatchNorm>,
    #[module(skip)]
    pub pool: bool,
}

impl ConvLayer {
    /// On the CPU the convolution, the batch-norm and the pool are Kiln's kernels (see [`super::cpu_kernels`]).
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = super::cpu_kernels::conv2d(&self.conv, x);
        if let Some(norm) = &self.norm {
            x = super::cpu_kernels::batch_norm(norm, x);
        }
        // ReLU after the pool rather than before: the same values and gradients (ReLU is
        // monotonic, so the window's winner is the same, and a window of negatives gives zero
        // either way) on a quarter of the elements.
        if self.pool {
            x = super::cpu_kernels::max_pool_2x2(x);
        }
        relu(x)
    }
}

/// Stored tensors: `blocks.N.conv.{weight,bias}`, `blocks.N.norm.{gamma,beta,running_mean,
/// running_var}` and `head.N.{weight,bias}`.
#[derive(Module, Debug)]
pub struct Cnn {
    pub blocks: Vec<ConvLayer>,
    pub head: Vec<Linear>,
    #[module(skip)]
    pub channels: usize,
    #[module(skip)]
    pub height: usize,
    #[module(skip)]
    pub width: usize,
    #[module(skip)]
    pub dropout: f64,
}

impl Cnn {
    pub fn new(config: &CnnConfig, input: ImageShape, outputs: usize, device: &Device) -> Self {
        let mut channels = input.channels;
        let blocks = config
            .blocks
            .iter()
            .map(|block| {
                let padding = block.kernel_size / 2;
                let conv = Conv2dConfig::new(
                    [channels, block.channels],
                    [block.kernel_size, block.kernel_size],
                )
                .with_padding(PaddingConfig2d::Explicit(
                    padding, padding, padding, padding,
                ))
                .init(device);
                channels = block.channels;
                ConvLayer {
                    conv,
                    norm: config
                        .batch_norm
                        .then(|| BatchNormConfig::new(block.channels).init(device)),
                    pool: block.pool,
                }
            })
            .collect();
        let mut widths = vec![config.flattened_width(input)];
        widths.extend(&config.dense);
        widths.push(outputs);
        let head = widths
            .windows(2)
            .map(|pair| LinearConfig::new(pair[0], pair[1]).init(device))
            .collect();
        Self {
            blocks,
            head,
            channels: input.channels,
            height: input.height,
            width: input.width,
            dropout: config.dropout,
        }
    }

    /// Logits `[batch, outputs]` for flat channel-major images `[batch, channels·height·width]`.
    pub fn forward(&self, input: Tensor<2>, training: bool) -> Tensor<2> {
        let [batch, _] = input.dims();
        let images = input.reshape([batch, self.channels, self.height, self.width]);
        self.forward_images(images, training)
    }

    /// Logits `[batch, outputs]` for images `[batch, channels, height, width]`.
    pub fn forward_images(&self, images: Tensor<4>, training: bool) -> Tensor<2> {
        let mut x = images;
        for block in &self.blocks {
            x = block.forward(x);
        }
        let mut x: Tensor<2> = x.flatten(1, 3);
        let last = self.head.len().saturating_sub(1);
        for (index, layer) in self.head.iter().enumerate() {
            if training && self.dropout > 0.0 {
                x = super::cpu_kernels::dropout(x, 1.0 - self.dropout);
            }
            x = super::cpu_kernels::dense(layer, x, index < last);
        }
        x
    }

    /// An empty stand-in, for the instant the optimizer owns the model.
    pub(crate) fn placeholder(&self) -> Self {
        Self {
            blocks: Vec::new(),
            head: Vec::new(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            dropout: self.dropout,
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::Distribution;

    use super::*;

    #[test]
    fn pooling_before_the_relu_changes_neither_values_nor_gradients() {
        let device = Device::flex().autodiff();
        let x: Tensor<4> =
            Tensor::random([3, 4, 6, 6], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let pool = MaxPool2dConfig::new([2, 2]).init();
        let usual = pool.forward(relu(x.clone()));
        let ours = relu(super::super::cpu_kernels::max_pool_2x2(x.clone()));
        let difference = (usual.clone() - ours.clone())
            .abs()
            .max()
            .into_scalar::<f32>();
        assert_eq!(difference, 0.0);
        let weights: Tensor<4> = Tensor::random(usual.dims(), Distribution::Default, &device);
        let (Some(a), Some(b)) = (
            x.grad(&(usual * weights.clone()).sum().backward()),
            x.grad(&(ours * weights).sum().backward()),
        ) else {
            panic!("input gradients");
        };
        assert_eq!((a - b).abs().max().into_scalar::<f32>(), 0.0);
    }
}
