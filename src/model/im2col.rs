//! The first convolution of a CNN in training, as one matrix product over the image's 3×3
//! neighbourhoods (im2col) instead of burn flex's direct convolution.
//!
//! Measured on the CPU (BENCHMARKS.md, cnn-ops): for the 1–3 input channels of a first layer the
//! matrix product is 1.5–3× faster forward + backward, the backward most of all: flex computes a
//! convolution's weight gradient as another convolution whose kernel is the whole image. In whole
//! training runs the gain (a tenth of a digits step at most) stayed within this machine's noise
//! (cnn-rounds: +6–9 % at batch 128 and 256 in one set of rounds, not in another). A first layer needs
//! no gradient for its input, which spares the product the cost that makes it slower than flex
//! deeper in the network (scattering the gradient back through every neighbourhood).

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::PadMode;
use burn::tensor::{Tensor, s};

/// Input channels up to which the product beats flex (grayscale and RGB images were measured).
const MAX_CHANNELS: usize = 3;

/// Whether [`conv_by_matmul`] computes this convolution: stride 1, no dilation or groups, an odd
/// square kernel with "same" padding (as every Kiln conv block), and few input channels.
pub fn suits(conv: &Conv2d) -> bool {
    let [_, channels, kernel_h, kernel_w] = conv.weight.dims();
    let half = kernel_h / 2;
    let same_padding = match conv.padding {
        PaddingConfig2d::Same => true,
        PaddingConfig2d::Explicit(top, left, bottom, right) => {
            [top, left, bottom, right] == [half; 4]
        }
        PaddingConfig2d::Valid => false,
    };
    channels <= MAX_CHANNELS
        && kernel_h == kernel_w
        && kernel_h % 2 == 1
        && same_padding
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
}

/// The same values as `conv.forward(x)` (to float rounding) for a convolution that [`suits`].
pub fn conv_by_matmul(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [batch, channels, height, width] = x.dims();
    let weight = conv.weight.val();
    let [outputs, _, kernel, _] = weight.dims();
    let pad = kernel / 2;
    let padded = x.pad(
        [(0, 0), (0, 0), (pad, pad), (pad, pad)],
        PadMode::Constant(0.0),
    );
    let mut windows = Vec::with_capacity(kernel * kernel);
    for dy in 0..kernel {
        for dx in 0..kernel {
            let window: Tensor<4> =
                padded
                    .clone()
                    .slice(s![.., .., dy..dy + height, dx..dx + width]);
            windows.push(window.unsqueeze_dim::<5>(2));
        }
    }
    // [batch, channels, kernel², height, width]: the weight's own (channel, row, column) order,
    // so neither side needs a transpose.
    let columns: Tensor<5> = Tensor::cat(windows, 2);
    let columns: Tensor<3> = columns.reshape([batch, channels * kernel * kernel, height * width]);
    let weight: Tensor<3> = weight.reshape([1, outputs, channels * kernel * kernel]);
    let mut out = weight.matmul(columns);
    if let Some(bias) = &conv.bias {
        out = out + bias.val().reshape([1, outputs, 1]);
    }
    out.reshape([batch, outputs, height, width])
}

#[cfg(test)]
mod tests {
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

    use super::*;

    fn max_difference<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn the_matrix_product_gives_the_convolution_and_its_gradients() {
        let device = Device::flex().autodiff();
        for (channels, kernel) in [(1, 3), (3, 3), (3, 5)] {
            let conv = Conv2dConfig::new([channels, 8], [kernel, kernel])
                .with_padding(PaddingConfig2d::Explicit(
                    kernel / 2,
                    kernel / 2,
                    kernel / 2,
                    kernel / 2,
                ))
                .init(&device);
            assert!(suits(&conv));
            let x: Tensor<4> =
                Tensor::random([4, channels, 6, 7], Distribution::Normal(0.0, 1.0), &device);
            let target: Tensor<4> =
                Tensor::random([4, 8, 6, 7], Distribution::Normal(0.0, 1.0), &device);
            let direct = conv.forward(x.clone());
            let product = conv_by_matmul(&conv, x);
            assert_eq!(direct.dims(), product.dims());
            assert!(max_difference(direct.clone(), product.clone()) < 1e-5);

            // A loss that weighs every output differently, so any misplaced value shows.
            let grads_direct = (direct * target.clone()).sum().backward();
            let grads_product = (product * target).sum().backward();
            let weight = conv.weight.val();
            let (Some(a), Some(b)) = (weight.grad(&grads_direct), weight.grad(&grads_product))
            else {
                panic!("weight gradients");
            };
            assert!(max_difference(a, b) < 1e-4);
            let bias = conv.bias.as_ref().map(|bias| bias.val());
            let (Some(a), Some(b)) = (
                bias.as_ref().and_then(|bias| bias.grad(&grads_direct)),
                bias.as_ref().and_then(|bias| bias.grad(&grads_product)),
            ) else {
                panic!("bias gradients");
            };
            assert!(max_difference(a, b) < 1e-4);
        }
    }

    #[test]
    fn only_convolutions_it_computes_exactly_are_taken() {
        let device = Device::flex();
        let wide = Conv2dConfig::new([16, 8], [3, 3]).init(&device);
        let even = Conv2dConfig::new([1, 8], [2, 2]).init(&device);
        let strided = Conv2dConfig::new([1, 8], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Same)
            .init(&device);
        let unpadded = Conv2dConfig::new([1, 8], [3, 3]).init(&device);
        assert!(!suits(&wide) && !suits(&even) && !suits(&strided) && !suits(&unpadded));
    }
}
