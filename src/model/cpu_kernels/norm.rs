//! Batch normalisation in training mode over `[batch, channels, height, width]`: the batch's
//! mean and (biased) variance per channel, the normalised output, and its backward, each as two
//! passes — statistics per channel, then the element-wise part per image.
//!
//! Burn flex runs the generic version: reductions over a transposed view, then broadcasts, each
//! its own pass over the activation and its own allocation, forward and backward.

use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::{AutodiffFloat, contiguous_f32, dims4, register_gradients, tensor};

/// The batch's statistics, per channel.
#[derive(Debug)]
pub struct Statistics {
    mean: Vec<f32>,
    variance: Vec<f32>,
    inverse_std: Vec<f32>,
    /// Values per channel (images × pixels), at least 1.
    count: f64,
}

impl Statistics {
    /// The mean and the variance as `[channels]` tensors.
    pub fn tensors(&self) -> (FlexTensor, FlexTensor) {
        let channels = vec![self.mean.len()];
        (
            tensor(self.mean.clone(), channels.clone()),
            tensor(self.variance.clone(), channels),
        )
    }
}

/// One channel's plane of every image.
fn planes(values: &[f32], dims: [usize; 4], channel: usize) -> impl Iterator<Item = &[f32]> {
    let [batch, channels, height, width] = dims;
    let pixels = height * width;
    (0..batch).map(move |image| &values[(image * channels + channel) * pixels..][..pixels])
}

/// Mean and biased variance per channel; sums in f64, in a fixed order.
fn statistics(x: &[f32], dims: [usize; 4], epsilon: f64) -> Statistics {
    let count = (dims[0] * dims[2] * dims[3]).max(1) as f64;
    let per_channel: Vec<(f32, f32)> = (0..dims[1])
        .into_par_iter()
        .map(|channel| {
            let sum: f64 = planes(x, dims, channel)
                .map(|plane| plane.iter().map(|&v| f64::from(v)).sum::<f64>())
                .sum();
            let mean = sum / count;
            let squares: f64 = planes(x, dims, channel)
                .map(|plane| {
                    plane
                        .iter()
                        .map(|&v| (f64::from(v) - mean).powi(2))
                        .sum::<f64>()
                })
                .sum();
            (mean as f32, (squares / count) as f32)
        })
        .collect();
    let (mean, variance): (Vec<f32>, Vec<f32>) = per_channel.into_iter().unzip();
    let inverse_std = variance
        .iter()
        .map(|&v| (1.0 / (f64::from(v) + epsilon).sqrt()) as f32)
        .collect();
    Statistics {
        mean,
        variance,
        inverse_std,
        count,
    }
}

/// `f(channel, input planes, output plane)` for every plane of `output`, in parallel over
/// images; the inputs are laid out as the output.
fn per_plane<const N: usize>(
    output: &mut [f32],
    inputs: [&[f32]; N],
    dims: [usize; 4],
    f: impl Fn(usize, [&[f32]; N], &mut [f32]) + Sync,
) {
    let pixels = dims[2] * dims[3];
    let image = dims[1] * pixels;
    if image == 0 {
        return;
    }
    output
        .par_chunks_mut(image)
        .enumerate()
        .for_each(|(index, out)| {
            for (channel, out) in out.chunks_mut(pixels).enumerate() {
                let at = index * image + channel * pixels;
                f(channel, inputs.map(|input| &input[at..][..pixels]), out);
            }
        });
}

/// (output, statistics).
pub fn forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, Statistics) {
    let dims = dims4(x);
    let (values, gamma, beta) = (
        contiguous_f32(x),
        contiguous_f32(gamma),
        contiguous_f32(beta),
    );
    let stats = statistics(&values, dims, epsilon);
    let mut output = vec![0.0f32; values.len()];
    per_plane(&mut output, [&values], dims, |channel, [input], out| {
        let scale = gamma[channel] * stats.inverse_std[channel];
        let mean = stats.mean[channel];
        let shift = beta[channel];
        for (out, &value) in out.iter_mut().zip(input) {
            *out = (value - mean) * scale + shift;
        }
    });
    (tensor(output, dims.to_vec()), stats)
}

/// (input gradient, gamma gradient, beta gradient).
fn backward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    stats: &Statistics,
    grad: &FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let dims = dims4(x);
    let (values, gamma, grad) = (
        contiguous_f32(x),
        contiguous_f32(gamma),
        contiguous_f32(grad),
    );
    // Per channel: Σ grad (beta's gradient) and Σ grad · x̂ (gamma's), x̂ the normalised input.
    let sums: Vec<(f32, f32)> = (0..dims[1])
        .into_par_iter()
        .map(|channel| {
            let (mean, inverse_std) = (stats.mean[channel], stats.inverse_std[channel]);
            let (mut grad_sum, mut weighted_sum) = (0.0f64, 0.0f64);
            for (grad, input) in planes(&grad, dims, channel).zip(planes(&values, dims, channel)) {
                for (&g, &v) in grad.iter().zip(input) {
                    grad_sum += f64::from(g);
                    weighted_sum += f64::from(g) * f64::from((v - mean) * inverse_std);
                }
            }
            (grad_sum as f32, weighted_sum as f32)
        })
        .collect();
    let mut input_grad = vec![0.0f32; values.len()];
    per_plane(
        &mut input_grad,
        [&values, &grad],
        dims,
        |channel, [input, grad], out| {
            let (mean, inverse_std) = (stats.mean[channel], stats.inverse_std[channel]);
            let (grad_sum, weighted_sum) = sums[channel];
            let grad_mean = (f64::from(grad_sum) / stats.count) as f32;
            let weighted_mean = (f64::from(weighted_sum) / stats.count) as f32;
            let scale = gamma[channel] * inverse_std;
            for ((out, &v), &g) in out.iter_mut().zip(input).zip(grad) {
                let normalised = (v - mean) * inverse_std;
                *out = scale * (g - grad_mean - normalised * weighted_mean);
            }
        },
    );
    let (beta_grad, gamma_grad): (Vec<f32>, Vec<f32>) = sums.into_iter().unzip();
    let channels = vec![dims[1]];
    (
        tensor(input_grad, dims.to_vec()),
        tensor(gamma_grad, channels.clone()),
        tensor(beta_grad, channels),
    )
}

#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = (FlexTensor, FlexTensor, Arc<Statistics>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let parents = ops.parents.map(|parent| parent.map(|node| node.id));
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, gamma, stats) = ops.state;
        let (input_grad, gamma_grad, beta_grad) = backward(&x, &gamma, &stats, &grad);
        register_gradients(
            grads,
            parents,
            [Some(input_grad), Some(gamma_grad), Some(beta_grad)],
        );
    }
}

/// (output, batch mean, batch variance); the statistics carry no gradient.
pub fn forward_tracked<C: CheckpointStrategy>(
    x: AutodiffFloat<C>,
    gamma: AutodiffFloat<C>,
    beta: AutodiffFloat<C>,
    epsilon: f64,
) -> (AutodiffFloat<C>, AutodiffFloat<C>, AutodiffFloat<C>) {
    let (output, stats) = forward(x.primitive(), gamma.primitive(), beta.primitive(), epsilon);
    let (mean, variance) = stats.tensors();
    let (mean, variance) = (
        AutodiffFloat::<C>::new(mean),
        AutodiffFloat::<C>::new(variance),
    );
    let output = match BatchNormBackward
        .prepare::<C>([x.node(), gamma.node(), beta.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = (
                x.primitive().clone(),
                gamma.primitive().clone(),
                Arc::new(stats),
            );
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    (output, mean, variance)
}
