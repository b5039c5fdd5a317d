//! Kiln's own CPU kernels for the layers where burn flex's generic ones cost the most in
//! training (BENCHMARKS.md, cnn-ops): the convolution as matrix products forward and backward,
//! a 2×2 max-pool that remembers which of the four won, batch-norm, the dense layer with its
//! ReLU, and the cross-entropy loss with the batch's tally.
//!
//! They are a burn backend extension implemented for flex and for autodiff over flex, with
//! hand-written backward passes. Every wrapper here checks the tensor's device first and keeps
//! burn's own op anywhere else (wgpu, the graph an ONNX export traces), so exports and GPU
//! training are untouched; on the CPU the values agree with burn's to float rounding (tests).

mod conv;
mod dense;
mod dropout;
mod gemm;
mod loss;
mod norm;
mod pool;

use std::borrow::Cow;

pub use dropout::dropout;

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::conv::Conv2d;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::{DType, Device, Int, Shape, Tensor, TensorData};

#[backend_extension(Flex, Autodiff)]
pub trait CpuKernels: Backend {
    /// Convolution, stride 1, zero padding of half the (odd, square) kernel on every side.
    fn conv2d_same(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// Batch normalisation with the batch's own statistics: (output, mean, biased variance),
    /// the statistics per channel and without gradient (for the running averages).
    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// Max over each 2×2 window, stride 2 (odd trailing rows/columns dropped, as burn's pool).
    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `x·W + b`, then ReLU when `relu`: x `[rows, inputs]`, W `[inputs, outputs]`, b `[outputs]`.
    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self>;
    /// Cross-entropy of logits `[rows, classes]` against class indices: (mean loss `[1]`, and
    /// without gradient `[2]`: the summed loss and the count of correct arg-max predictions).
    fn cross_entropy_tally(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

impl CpuKernels for Flex {
    fn conv2d_same(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        conv::forward(&x, &weight, &bias)
    }

    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (output, stats) = norm::forward(&x, &gamma, &beta, epsilon);
        let (mean, variance) = stats.tensors();
        (output, mean, variance)
    }

    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        pool::forward(&x).0
    }

    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self> {
        dense::forward(&x, &weight, &bias, relu)
    }

    fn cross_entropy_tally(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        loss::forward(&logits, &targets)
    }
}

impl<C: CheckpointStrategy> CpuKernels for Autodiff<Flex, C> {
    fn conv2d_same(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        conv::forward_tracked::<C>(x, weight, bias)
    }

    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        norm::forward_tracked::<C>(x, gamma, beta, epsilon)
    }

    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        pool::forward_tracked::<C>(x)
    }

    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self> {
        dense::forward_tracked::<C>(x, weight, bias, relu)
    }

    fn cross_entropy_tally(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        loss::forward_tracked::<C>(logits, targets)
    }
}

/// Runs `op` compiled for the widest vector instructions the processor has (AVX-512, AVX2),
/// picked at run time: the build targets baseline x86-64, whose element-wise loops use 4 lanes.
/// `op`'s loops must be inlined into it (closures and iterator adaptors are) to benefit.
pub(crate) fn vectorized<R>(op: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(op)
}

/// Whether a tensor is one these kernels serve: f32 on the CPU backend.
fn served<const D: usize>(x: &Tensor<D>) -> bool {
    served_device(&x.dtype(), &x.device())
}

/// Whether values of this dtype on this device are f32 on the CPU backend (where Kiln's own
/// kernels, and its fused Adam, run).
pub(crate) fn served_device(dtype: &DType, device: &Device) -> bool {
    *dtype == DType::F32 && device.clone().inner() == Device::flex()
}

/// Whether [`conv2d`] computes this convolution with Kiln's kernel: stride 1, no dilation or
/// groups, an odd square kernel with "same" padding and a bias (every Kiln conv block).
fn kernel_suits(conv: &Conv2d) -> bool {
    let [_, _, kernel_h, kernel_w] = conv.weight.dims();
    let half = kernel_h / 2;
    let same_padding = match conv.padding {
        PaddingConfig2d::Same => true,
        PaddingConfig2d::Explicit(top, left, bottom, right) => {
            [top, left, bottom, right] == [half; 4]
        }
        PaddingConfig2d::Valid => false,
    };
    kernel_h == kernel_w
        && kernel_h % 2 == 1
        && same_padding
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && conv.bias.is_some()
}

/// `conv.forward(x)`: Kiln's kernel on the CPU for the convolutions it suits, burn's otherwise.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match &conv.bias {
        Some(bias) if served(&x) && kernel_suits(conv) => {
            Tensor::from_dispatch(<Dispatch as CpuKernels>::conv2d_same(
                x.into_dispatch(),
                conv.weight.val().into_dispatch(),
                bias.val().into_dispatch(),
            ))
        }
        _ => conv.forward(x),
    }
}

/// `norm.forward(x)`: in training on the CPU Kiln's kernel, which also moves the running
/// averages as burn's layer does; burn's layer otherwise (inference uses the running averages).
pub fn batch_norm(norm: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    if !(served(&x) && x.device().is_autodiff() && norm.training.is_enabled()) {
        return norm.forward(x);
    }
    let (output, mean, variance) = <Dispatch as CpuKernels>::batch_norm_train(
        x.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        norm.beta.val().into_dispatch(),
        norm.epsilon,
    );
    let (mean, variance) = (
        Tensor::<1>::from_dispatch(mean),
        Tensor::<1>::from_dispatch(variance),
    );
    let device = mean.device();
    let momentum = norm.momentum;
    let running_mean = norm.running_mean.value_sync().to_device(&device);
    let running_var = norm.running_var.value_sync().to_device(&device);
    norm.running_mean.update(
        (running_mean.mul_scalar(1.0 - momentum) + mean.detach().mul_scalar(momentum)).detach(),
    );
    norm.running_var.update(
        (running_var.mul_scalar(1.0 - momentum) + variance.detach().mul_scalar(momentum)).detach(),
    );
    Tensor::from_dispatch(output)
}

/// 2×2 max-pool with stride 2: Kiln's kernel on the CPU, burn's elsewhere.
pub fn max_pool_2x2(x: Tensor<4>) -> Tensor<4> {
    if served(&x) {
        Tensor::from_dispatch(<Dispatch as CpuKernels>::max_pool_2x2(x.into_dispatch()))
    } else {
        MaxPool2dConfig::new([2, 2]).init().forward(x)
    }
}

/// `relu?(layer.forward(x))`: one kernel on the CPU, burn's layer (and ReLU) elsewhere.
pub fn dense(layer: &Linear, x: Tensor<2>, relu: bool) -> Tensor<2> {
    let weight = layer.weight.val();
    match &layer.bias {
        Some(bias) if served(&x) && served(&weight) => {
            Tensor::from_dispatch(<Dispatch as CpuKernels>::dense(
                x.into_dispatch(),
                weight.into_dispatch(),
                bias.val().into_dispatch(),
                relu,
            ))
        }
        _ => {
            let output = layer.forward(x);
            if relu {
                burn::tensor::activation::relu(output)
            } else {
                output
            }
        }
    }
}

/// Cross-entropy of `logits` `[rows, classes]` against class indices (burn's
/// `CrossEntropyLoss` with its defaults), and the batch's tally without gradient: `[2]`, the
/// summed loss and the count of correct arg-max predictions. One pass on the CPU.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> (Tensor<1>, Tensor<1>) {
    let integer_targets = matches!(
        targets.dtype(),
        DType::I64 | DType::I32 | DType::U32 | DType::U8
    );
    if served(&logits) && integer_targets {
        let (loss, tally) = <Dispatch as CpuKernels>::cross_entropy_tally(
            logits.into_dispatch(),
            targets.into_dispatch(),
        );
        return (
            Tensor::from_dispatch(loss),
            Tensor::<1>::from_dispatch(tally).inner(),
        );
    }
    let rows = logits.dims()[0];
    let loss = CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits.clone(), targets.clone());
    let predicted = logits.inner().argmax(1).flatten::<1>(0, 1);
    let correct = predicted.equal(targets.inner()).float().sum();
    let summed = loss.clone().inner().mul_scalar(rows as f32);
    (loss, Tensor::cat(vec![summed, correct], 0))
}

/// Hands each parent that tracks gradients its gradient, the three-parent ops' (conv,
/// batch-norm, dense) common end of the backward pass: `parents` are the op's parent ids, and a
/// gradient left `None` was not computed (an input that needs none).
fn register_gradients(
    grads: &mut burn::backend::autodiff::grads::Gradients,
    parents: [Option<burn::backend::autodiff::NodeId>; 3],
    gradients: [Option<FlexTensor>; 3],
) {
    for (parent, gradient) in parents.into_iter().zip(gradients) {
        if let (Some(parent), Some(gradient)) = (parent, gradient) {
            grads.register::<Flex>(parent, gradient);
        }
    }
}

/// A tensor's values in row-major order, borrowed when already laid out that way.
fn contiguous_f32(x: &FlexTensor) -> Cow<'_, [f32]> {
    match x.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(
            x.to_contiguous()
                .as_slice::<f32>()
                .unwrap_or_default()
                .to_vec(),
        ),
    }
}

fn dims4(x: &FlexTensor) -> [usize; 4] {
    let dims = x.layout().shape();
    [dims[0], dims[1], dims[2], dims[3]]
}

fn tensor(values: Vec<f32>, dims: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, Shape::from(dims)))
}

/// A float tensor of autodiff over flex: what the kernels' tracked forwards take and return.
type AutodiffFloat<C> = FloatTensor<Autodiff<Flex, C>>;

/// The largest absolute difference between two tensors (the kernels' tests against burn's ops).
#[cfg(test)]
pub(crate) fn max_difference<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

#[cfg(test)]
mod tests {
    use burn::nn::BatchNormConfig;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    use super::*;

    #[test]
    fn max_pool_matches_burns_values_and_gradient() {
        let device = Device::flex().autodiff();
        // Odd sizes drop the last row/column; many planes cross the parallel split; the ReLU'd
        // input has ties (zeros) as a real network's does.
        for dims in [[2, 3, 5, 7], [3, 40, 8, 8], [1, 1, 2, 2]] {
            let x: Tensor<4> = Tensor::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let x = burn::tensor::activation::relu(x).detach().require_grad();
            let expected = MaxPool2dConfig::new([2, 2]).init().forward(x.clone());
            let ours = max_pool_2x2(x.clone());
            assert_eq!(expected.dims(), ours.dims());
            assert_eq!(max_difference(expected.clone(), ours.clone()), 0.0);

            let weights: Tensor<4> =
                Tensor::random(expected.dims(), Distribution::Normal(0.0, 1.0), &device);
            let grad_expected = x.grad(&(expected * weights.clone()).sum().backward());
            let grad_ours = x.grad(&(ours * weights).sum().backward());
            let (Some(a), Some(b)) = (grad_expected, grad_ours) else {
                panic!("input gradients");
            };
            assert_eq!(max_difference(a, b), 0.0);
        }
    }

    fn conv(channels: [usize; 2], kernel: usize, device: &Device) -> Conv2d {
        Conv2dConfig::new(channels, [kernel, kernel])
            .with_padding(PaddingConfig2d::Explicit(
                kernel / 2,
                kernel / 2,
                kernel / 2,
                kernel / 2,
            ))
            .init(device)
    }

    #[test]
    fn convolution_matches_burns_values_and_gradients() {
        let device = Device::flex().autodiff();
        // Batches off the task size, odd sides, 1×1 and 5×5 kernels, a kernel wider than the
        // image, and first layers (no input gradient), on both ways of computing it.
        let cases = [
            ([9, 3, 5, 7], 8, 3, true),
            ([4, 16, 4, 4], 32, 3, true),
            ([2, 2, 6, 6], 4, 1, true),
            ([3, 2, 6, 5], 4, 5, true),
            ([2, 3, 2, 2], 5, 5, true),
            ([6, 1, 8, 8], 16, 3, false),
            // Many channels on larger images: the shifted products.
            ([5, 8, 9, 11], 6, 3, true),
            ([3, 12, 8, 8], 4, 5, true),
            ([2, 8, 8, 10], 3, 1, true),
            ([20, 8, 16, 16], 16, 3, false),
        ];
        for (dims, outputs, kernel, input_grad) in cases {
            let layer = conv([dims[1], outputs], kernel, &device);
            assert!(kernel_suits(&layer));
            let x: Tensor<4> = Tensor::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let x = if input_grad { x.require_grad() } else { x };
            let expected = layer.forward(x.clone());
            let ours = conv2d(&layer, x.clone());
            assert_eq!(expected.dims(), ours.dims());
            assert!(max_difference(expected.clone(), ours.clone()) < 1e-4);

            // A loss that weighs every output differently, so any misplaced value shows.
            let weights: Tensor<4> =
                Tensor::random(expected.dims(), Distribution::Normal(0.0, 1.0), &device);
            let grads_expected = (expected * weights.clone()).sum().backward();
            let grads_ours = (ours * weights).sum().backward();
            let weight = layer.weight.val();
            let (Some(a), Some(b)) = (weight.grad(&grads_expected), weight.grad(&grads_ours))
            else {
                panic!("weight gradients for {dims:?}");
            };
            assert!(max_difference(a, b) < 1e-3, "{dims:?}");
            let bias = layer.bias.as_ref().map(|bias| bias.val());
            let (Some(a), Some(b)) = (
                bias.as_ref().and_then(|bias| bias.grad(&grads_expected)),
                bias.as_ref().and_then(|bias| bias.grad(&grads_ours)),
            ) else {
                panic!("bias gradients for {dims:?}");
            };
            assert!(max_difference(a, b) < 1e-3, "{dims:?}");
            match (x.grad(&grads_expected), x.grad(&grads_ours)) {
                (Some(a), Some(b)) => assert!(max_difference(a, b) < 1e-4, "{dims:?}"),
                (None, None) => assert!(!input_grad),
                _ => panic!("input gradient present on one side only for {dims:?}"),
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_gradients() {
        let device = Device::flex().autodiff();
        let layer = conv([8, 16], 3, &device);
        let x: Tensor<4> =
            Tensor::random([37, 8, 6, 6], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let grad = || {
            let grads = conv2d(&layer, x.clone()).powi_scalar(2).sum().backward();
            layer.weight.val().grad(&grads).map(|grad| grad.into_data())
        };
        assert_eq!(grad(), grad());
    }

    #[test]
    fn convolutions_it_does_not_compute_exactly_keep_burns() {
        let device = Device::flex();
        let strided = Conv2dConfig::new([1, 8], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Same)
            .init(&device);
        let unpadded = Conv2dConfig::new([1, 8], [3, 3]).init(&device);
        let even = Conv2dConfig::new([1, 8], [2, 2]).init(&device);
        let no_bias = Conv2dConfig::new([1, 8], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .with_bias(false)
            .init(&device);
        for layer in [strided, unpadded, even, no_bias] {
            assert!(!kernel_suits(&layer));
            let x: Tensor<4> = Tensor::random([2, 1, 6, 6], Distribution::Default, &device);
            assert_eq!(
                max_difference(layer.forward(x.clone()), conv2d(&layer, x)),
                0.0
            );
        }
    }

    #[test]
    fn batch_norm_matches_burns_values_gradients_and_running_averages() {
        let device = Device::flex().autodiff();
        for dims in [[9, 3, 5, 7], [32, 16, 8, 8], [1, 2, 1, 1]] {
            // Two layers (a clone would share its running averages), initialised alike.
            let ours_layer = BatchNormConfig::new(dims[1]).init(&device);
            let burns_layer = BatchNormConfig::new(dims[1]).init(&device);
            let x: Tensor<4> = Tensor::random(dims, Distribution::Normal(2.0, 3.0), &device);
            let x = x.require_grad();
            let expected = burns_layer.forward(x.clone());
            let ours = batch_norm(&ours_layer, x.clone());
            assert!(
                max_difference(expected.clone(), ours.clone()) < 1e-4,
                "{dims:?}"
            );
            let pairs = [
                (&burns_layer.running_mean, &ours_layer.running_mean),
                (&burns_layer.running_var, &ours_layer.running_var),
            ];
            for (a, b) in pairs {
                assert!(max_difference(a.value(), b.value()) < 1e-5, "{dims:?}");
            }

            let weights: Tensor<4> = Tensor::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let grads_expected = (expected * weights.clone()).sum().backward();
            let grads_ours = (ours * weights).sum().backward();
            let (Some(a), Some(b)) = (x.grad(&grads_expected), x.grad(&grads_ours)) else {
                panic!("input gradients")
            };
            assert!(max_difference(a, b) < 1e-4, "{dims:?}");
            for (a, b) in [
                (
                    burns_layer.gamma.val().grad(&grads_expected),
                    ours_layer.gamma.val().grad(&grads_ours),
                ),
                (
                    burns_layer.beta.val().grad(&grads_expected),
                    ours_layer.beta.val().grad(&grads_ours),
                ),
            ] {
                let (Some(a), Some(b)) = (a, b) else {
                    panic!("parameter gradients")
                };
                assert!(max_difference(a, b) < 1e-3, "{dims:?}");
            }
        }
    }

    #[test]
    fn other_devices_keep_burns_pool() {
        let device = Device::flex();
        let x: Tensor<4> = Tensor::random([1, 2, 4, 4], Distribution::Default, &device);
        let expected = MaxPool2dConfig::new([2, 2]).init().forward(x.clone());
        assert_eq!(max_difference(expected, max_pool_2x2(x)), 0.0);
    }
}
