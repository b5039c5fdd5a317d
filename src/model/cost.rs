//! What one training sample costs a model in arithmetic, so measured speeds of one model can be
//! scaled to another (the device doctor's bench, and `auto` choosing a device by evidence).

use super::config::ModelConfig;
use crate::data::InputShape;

/// A backward pass costs about twice the forward pass (gradients for the inputs and for the
/// weights), so training is about three forward passes.
const TRAINING_PASSES: f64 = 3.0;

impl ModelConfig {
    /// Floating-point operations of one forward pass for one sample: the multiply-adds of the
    /// dense layers and convolutions, counted as two operations each. Activations, pooling and
    /// batch-norm are a few operations per value and are left out: they are small beside the
    /// products for every model worth timing.
    pub fn forward_flops_per_sample(&self, input: &InputShape, outputs: usize) -> f64 {
        match self {
            ModelConfig::Mlp(config) => {
                let mut widths = vec![input.width()];
                widths.extend(&config.hidden);
                widths.push(outputs);
                dense_flops(&widths)
            }
            ModelConfig::Cnn(config) => {
                let InputShape::Image(image) = input else {
                    return 0.0;
                };
                let mut channels = image.channels;
                let (mut height, mut width) = (image.height, image.width);
                let mut total = 0.0;
                for (block, after) in config.blocks.iter().zip(config.block_shapes(*image)) {
                    // Same padding: the convolution runs at the block's input size, pooling after.
                    let products = channels * block.channels * block.kernel_size.pow(2);
                    total += 2.0 * (products * height * width) as f64;
                    channels = after.channels;
                    (height, width) = (after.height, after.width);
                }
                let mut widths = vec![config.flattened_width(*image)];
                widths.extend(&config.dense);
                widths.push(outputs);
                total + dense_flops(&widths)
            }
        }
    }

    /// Floating-point operations of one training step per sample (forward and backward).
    pub fn training_flops_per_sample(&self, input: &InputShape, outputs: usize) -> f64 {
        TRAINING_PASSES * self.forward_flops_per_sample(input, outputs)
    }
}

fn dense_flops(widths: &[usize]) -> f64 {
    widths
        .windows(2)
        .map(|pair| 2.0 * (pair[0] * pair[1]) as f64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;
    use crate::model::{CnnConfig, MlpConfig};

    #[test]
    fn an_mlp_costs_its_matrix_products() {
        let model = ModelConfig::Mlp(MlpConfig {
            hidden: vec![256, 256],
            ..MlpConfig::default()
        });
        let forward = 2.0 * (64.0 * 256.0 + 256.0 * 256.0 + 256.0 * 10.0);
        assert_eq!(
            model.forward_flops_per_sample(&InputShape::Flat(64), 10),
            forward
        );
        assert_eq!(
            model.training_flops_per_sample(&InputShape::Flat(64), 10),
            3.0 * forward
        );
    }

    #[test]
    fn a_cnn_counts_each_convolution_at_its_input_size() {
        let input = InputShape::Image(ImageShape {
            channels: 1,
            height: 8,
            width: 8,
        });
        let model = ModelConfig::Cnn(CnnConfig::default());
        // conv 1→16 at 8×8, pool to 4×4, conv 16→32 at 4×4, pool to 2×2, dense 128→64→10.
        let convs = 2.0 * (16.0 * 9.0 * 64.0) + 2.0 * (16.0 * 32.0 * 9.0 * 16.0);
        let dense = 2.0 * (128.0 * 64.0 + 64.0 * 10.0);
        assert_eq!(model.forward_flops_per_sample(&input, 10), convs + dense);
    }
}
