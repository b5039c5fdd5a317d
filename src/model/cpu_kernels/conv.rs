//! 2D convolution, stride 1, "same" zero padding (Kiln's conv blocks), as one matrix product per
//! image over its k×k neighbourhoods (im2col), forward and backward.
//!
//! Burn flex computes the backward through generic routes (a transposed convolution for the
//! input's gradient, a convolution whose kernel is the whole image for the weight's); here both
//! are matrix products on the neighbourhoods already laid out, which is what PyTorch's CPU
//! convolution does too. The work is split over images, in fixed groups, so the weight gradient
//! is summed in the same order whatever the thread count: a seed gives the same run.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use rayon::prelude::*;

use super::gemm::{Matrix, multiply};
use super::{contiguous_f32, dims4, tensor};

/// Output pixels a task's matrix products should span at least: small images are grouped side
/// by side into one product (one call of a few dozen columns costs as much as one of hundreds).
const COLUMNS_PER_TASK: usize = 256;

#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    batch: usize,
    channels_in: usize,
    height: usize,
    width: usize,
    channels_out: usize,
    kernel: usize,
}

impl ConvShape {
    fn new(x: [usize; 4], weight: [usize; 4]) -> Self {
        Self {
            batch: x[0],
            channels_in: x[1],
            height: x[2],
            width: x[3],
            channels_out: weight[0],
            kernel: weight[2],
        }
    }

    fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// Values in one neighbourhood: the rows of an image's column matrix.
    fn patch(&self) -> usize {
        self.channels_in * self.kernel * self.kernel
    }

    fn image_in(&self) -> usize {
        self.channels_in * self.pixels()
    }

    fn image_out(&self) -> usize {
        self.channels_out * self.pixels()
    }

    /// Images per parallel task: from the shape alone (never the thread count), so the order in
    /// which the weight gradient's per-task parts are added never changes.
    fn images_per_task(&self) -> usize {
        (COLUMNS_PER_TASK / self.pixels().max(1)).clamp(1, self.batch.max(1))
    }

    fn tasks(&self) -> usize {
        self.batch.div_ceil(self.images_per_task())
    }

    /// The images of one task.
    fn task_images(&self, task: usize) -> std::ops::Range<usize> {
        let first = task * self.images_per_task();
        first..(first + self.images_per_task()).min(self.batch)
    }

    /// For each row of the column matrix (input channel, kernel row, kernel column) and each
    /// output row: the input row it reads (None: padding) and the output columns `lo..hi` that
    /// read inside the image, at input column `output column + shift`.
    fn walk(&self, mut visit: impl FnMut(usize, usize, Option<usize>, usize, usize, isize)) {
        let pad = (self.kernel / 2) as isize;
        let (height, width) = (self.height as isize, self.width as isize);
        for channel in 0..self.channels_in {
            for ky in 0..self.kernel {
                for kx in 0..self.kernel {
                    let row = (channel * self.kernel + ky) * self.kernel + kx;
                    let shift = kx as isize - pad;
                    let lo = (-shift).clamp(0, width) as usize;
                    let hi = (width - shift).clamp(lo as isize, width) as usize;
                    for out_y in 0..self.height {
                        let in_y = out_y as isize + ky as isize - pad;
                        let source = (0..height)
                            .contains(&in_y)
                            .then(|| channel * self.pixels() + in_y as usize * self.width);
                        visit(row, out_y, source, lo, hi, shift);
                    }
                }
            }
        }
    }
}

/// Where one image's block lies in a task's column matrix `[patch, images · pixels]`: the
/// matrix's row length and the block's first column.
#[derive(Clone, Copy)]
struct Block {
    row_length: usize,
    first_column: usize,
}

/// Writes the image's block of the column matrix: row (channel, ky, kx), column (y, x) holds
/// input (channel, y + ky − pad, x + kx − pad), zero outside the image.
fn im2col(image: &[f32], shape: &ConvShape, columns: &mut [f32], block: Block) {
    let width = shape.width;
    shape.walk(|row, out_y, source, lo, hi, shift| {
        let at = row * block.row_length + block.first_column + out_y * width;
        let segment = &mut columns[at..][..width];
        match source {
            Some(start) if lo < hi => {
                segment[..lo].fill(0.0);
                segment[hi..].fill(0.0);
                let from = (start as isize + lo as isize + shift) as usize;
                segment[lo..hi].copy_from_slice(&image[from..from + (hi - lo)]);
            }
            _ => segment.fill(0.0),
        }
    });
}

/// Adds the image's block of a column matrix back onto the positions it was read from.
fn col2im_add(columns: &[f32], shape: &ConvShape, image: &mut [f32], block: Block) {
    let width = shape.width;
    shape.walk(|row, out_y, source, lo, hi, shift| {
        if let Some(start) = source
            && lo < hi
        {
            let at = row * block.row_length + block.first_column + out_y * width;
            let segment = &columns[at..][lo..hi];
            let from = (start as isize + lo as isize + shift) as usize;
            for (target, value) in image[from..from + (hi - lo)].iter_mut().zip(segment) {
                *target += value;
            }
        }
    });
}

fn forward_values(x: &[f32], weight: &[f32], bias: &[f32], shape: ConvShape) -> Vec<f32> {
    let (pixels, patch, outputs) = (shape.pixels(), shape.patch(), shape.channels_out);
    let mut output = vec![0.0f32; shape.batch * shape.image_out()];
    output
        .par_chunks_mut(shape.images_per_task() * shape.image_out())
        .enumerate()
        .for_each(|(task, output)| {
            let images = shape.task_images(task);
            let row_length = images.len() * pixels;
            let mut columns = vec![0.0f32; patch * row_length];
            for (local, image) in images.clone().enumerate() {
                let block = Block {
                    row_length,
                    first_column: local * pixels,
                };
                let input = &x[image * shape.image_in()..][..shape.image_in()];
                im2col(input, &shape, &mut columns, block);
            }
            let mut products = vec![0.0f32; outputs * row_length];
            multiply(
                &mut products,
                Matrix::row_major(weight, outputs, patch),
                Matrix::row_major(&columns, patch, row_length),
                false,
            );
            // Row `channel` of the product holds that channel for every image side by side.
            for (local, out) in output.chunks_mut(shape.image_out()).enumerate() {
                for (channel, plane) in out.chunks_mut(pixels).enumerate() {
                    let product = &products[channel * row_length + local * pixels..][..pixels];
                    for (value, &sum) in plane.iter_mut().zip(product) {
                        *value = sum + bias[channel];
                    }
                }
            }
        });
    output
}

pub fn forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let shape = ConvShape::new(dims4(x), dims4(weight));
    let (x, weight, bias) = (
        contiguous_f32(x),
        contiguous_f32(weight),
        contiguous_f32(bias),
    );
    let values = forward_values(&x, &weight, &bias, shape);
    tensor(
        values,
        vec![shape.batch, shape.channels_out, shape.height, shape.width],
    )
}

/// One task's share of the backward: its images' part of the weight and bias gradients, and
/// (when `input_grad` is given) their input gradients.
fn backward_task(
    task: usize,
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    shape: &ConvShape,
    input_grad: Option<&mut [f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let (pixels, patch, outputs) = (shape.pixels(), shape.patch(), shape.channels_out);
    let images = shape.task_images(task);
    let row_length = images.len() * pixels;
    let block = |local: usize| Block {
        row_length,
        first_column: local * pixels,
    };
    let mut columns = vec![0.0f32; patch * row_length];
    // The output gradient as one matrix `[channels out, images · pixels]`, like the product.
    let mut grads = vec![0.0f32; outputs * row_length];
    for (local, image) in images.clone().enumerate() {
        let input = &x[image * shape.image_in()..][..shape.image_in()];
        im2col(input, shape, &mut columns, block(local));
        let grad = &grad[image * shape.image_out()..][..shape.image_out()];
        for (channel, plane) in grad.chunks(pixels).enumerate() {
            grads[channel * row_length + local * pixels..][..pixels].copy_from_slice(plane);
        }
    }
    let grads_matrix = Matrix::row_major(&grads, outputs, row_length);
    let mut weight_grad = vec![0.0f32; outputs * patch];
    multiply(
        &mut weight_grad,
        grads_matrix,
        Matrix::row_major(&columns, patch, row_length).transposed(),
        false,
    );
    let bias_grad = grads
        .chunks(row_length.max(1))
        .map(|row| row.iter().sum::<f32>())
        .collect();
    if let Some(input_grad) = input_grad {
        // The columns are no longer needed: their buffer takes the columns' gradient.
        multiply(
            &mut columns,
            Matrix::row_major(weight, outputs, patch).transposed(),
            grads_matrix,
            false,
        );
        for (local, image_grad) in input_grad.chunks_mut(shape.image_in()).enumerate() {
            col2im_add(&columns, shape, image_grad, block(local));
        }
    }
    (weight_grad, bias_grad)
}

/// (input gradient when asked for, weight gradient, bias gradient).
fn backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    shape: ConvShape,
    want_input_grad: bool,
) -> (Option<FlexTensor>, FlexTensor, FlexTensor) {
    let (x, weight, grad) = (
        contiguous_f32(x),
        contiguous_f32(weight),
        contiguous_f32(grad),
    );
    let mut input_grad = want_input_grad.then(|| vec![0.0f32; shape.batch * shape.image_in()]);
    let parts: Vec<(Vec<f32>, Vec<f32>)> = match &mut input_grad {
        Some(input_grad) => input_grad
            .par_chunks_mut(shape.images_per_task() * shape.image_in())
            .enumerate()
            .map(|(task, chunk)| backward_task(task, &x, &weight, &grad, &shape, Some(chunk)))
            .collect(),
        None => (0..shape.tasks())
            .into_par_iter()
            .map(|task| backward_task(task, &x, &weight, &grad, &shape, None))
            .collect(),
    };
    // In task order, so the sums never depend on which thread finished first.
    let mut weight_grad = vec![0.0f32; shape.channels_out * shape.patch()];
    let mut bias_grad = vec![0.0f32; shape.channels_out];
    for (weight_part, bias_part) in parts {
        weight_grad
            .iter_mut()
            .zip(weight_part)
            .for_each(|(sum, part)| *sum += part);
        bias_grad
            .iter_mut()
            .zip(bias_part)
            .for_each(|(sum, part)| *sum += part);
    }
    let input_dims = vec![shape.batch, shape.channels_in, shape.height, shape.width];
    let weight_dims = vec![
        shape.channels_out,
        shape.channels_in,
        shape.kernel,
        shape.kernel,
    ];
    (
        input_grad.map(|values| tensor(values, input_dims)),
        tensor(weight_grad, weight_dims),
        tensor(bias_grad, vec![shape.channels_out]),
    )
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = (FlexTensor, FlexTensor, ConvShape);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, weight_node, bias_node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, weight, shape) = ops.state;
        let (input_grad, weight_grad, bias_grad) =
            backward(&x, &weight, &grad, shape, x_node.is_some());
        if let (Some(node), Some(input_grad)) = (x_node, input_grad) {
            grads.register::<Flex>(node.id, input_grad);
        }
        if let Some(node) = weight_node {
            grads.register::<Flex>(node.id, weight_grad);
        }
        if let Some(node) = bias_node {
            grads.register::<Flex>(node.id, bias_grad);
        }
    }
}

type AutodiffFloat<C> = burn::backend::tensor::FloatTensor<Autodiff<Flex, C>>;

pub fn forward_tracked<C: CheckpointStrategy>(
    x: AutodiffFloat<C>,
    weight: AutodiffFloat<C>,
    bias: AutodiffFloat<C>,
) -> AutodiffFloat<C> {
    let output = forward(x.primitive(), weight.primitive(), bias.primitive());
    match ConvBackward
        .prepare::<C>([x.node(), weight.node(), bias.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let shape = ConvShape::new(dims4(x.primitive()), dims4(weight.primitive()));
            let state = (x.primitive().clone(), weight.primitive().clone(), shape);
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}
