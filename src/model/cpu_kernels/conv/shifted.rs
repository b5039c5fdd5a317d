//! The convolution as k² matrix products over shifted views of zero-padded images, for layers
//! with many input channels on larger images (32→64 on 16×16, say). No column matrix (k² copies
//! of the input, tens of MB at batch 128) is written and read back: each product reads the
//! padded images in place, through a view shifted by the kernel offset.
//!
//! A task's images lie one under another in one tall plane per channel, each framed by `pad`
//! zeros. The output is computed on that grid too, so a shifted view is a plain strided matrix;
//! the grid's frame positions are computed and dropped (an eighth of the work at 16×16).

use std::ops::Range;

use super::{ConvShape, with_scratch};
use crate::model::cpu_kernels::gemm::{Matrix, multiply, multiply_into};

/// Output pixels a task's products span at least: wider products than the column path's, as
/// each of the k² products is short (as deep as the input channels).
pub const COLUMNS_PER_TASK: usize = 256;

/// Whether this shape takes the shifted products: enough input channels to make each of the
/// k² products worth a call, and images wide enough that the frame wastes little.
pub fn suits(shape: &ConvShape) -> bool {
    shape.channels_in >= 8 && shape.width >= 8 && shape.height >= 8
}

/// The padded grid of one task's images.
struct Grid {
    pad: usize,
    padded_width: usize,
    image_rows: usize,
    /// Floats per channel: the images' padded rows, plus one spare row so that a view shifted
    /// by up to 2·pad rows and columns stays inside its channel's plane.
    plane: usize,
    /// Output positions computed per channel: every grid row an output row can start on.
    columns: usize,
}

impl Grid {
    fn new(shape: &ConvShape, images: usize) -> Self {
        let pad = shape.pad();
        let padded_width = shape.padded_width();
        let image_rows = shape.height + 2 * pad;
        Self {
            pad,
            padded_width,
            image_rows,
            plane: (images * image_rows + 1) * padded_width,
            columns: (images * image_rows - 2 * pad) * padded_width,
        }
    }

    /// Grid position of output (image, y, x = 0).
    fn output_row(&self, image: usize, y: usize) -> usize {
        (image * self.image_rows + y) * self.padded_width
    }

    /// Grid position of input (image, y, x = 0), inside the frame.
    fn input_row(&self, image: usize, y: usize) -> usize {
        (image * self.image_rows + y + self.pad) * self.padded_width + self.pad
    }

    fn offset(&self, ky: usize, kx: usize) -> usize {
        ky * self.padded_width + kx
    }

    /// The padded input shifted by a kernel offset, as `[channels in, columns]`.
    fn input_view<'a>(
        &self,
        padded: &'a [f32],
        ky: usize,
        kx: usize,
        channels: usize,
    ) -> Matrix<'a> {
        Matrix {
            data: &padded[self.offset(ky, kx)..],
            rows: channels,
            cols: self.columns,
            row_stride: self.plane,
            col_stride: 1,
        }
    }
}

/// The weights of one kernel offset, `[channels out, channels in]`.
fn weight_view<'a>(weight: &'a [f32], shape: &ConvShape, ky: usize, kx: usize) -> Matrix<'a> {
    let kernel = shape.kernel;
    Matrix {
        data: &weight[ky * kernel + kx..],
        rows: shape.channels_out,
        cols: shape.channels_in,
        row_stride: shape.channels_in * kernel * kernel,
        col_stride: kernel * kernel,
    }
}

fn offsets(shape: &ConvShape) -> impl Iterator<Item = (usize, usize)> {
    let kernel = shape.kernel;
    (0..kernel).flat_map(move |ky| (0..kernel).map(move |kx| (ky, kx)))
}

/// Writes the task's images of `x` into `padded` (zeros everywhere else).
fn pad_task(x: &[f32], shape: &ConvShape, images: Range<usize>, grid: &Grid, padded: &mut [f32]) {
    let width = shape.width;
    padded.fill(0.0);
    for (local, image) in images.enumerate() {
        let image = &x[image * shape.image_in()..][..shape.image_in()];
        for (channel, plane) in image.chunks(shape.pixels()).enumerate() {
            for (y, row) in plane.chunks(width).enumerate() {
                let at = channel * grid.plane + grid.input_row(local, y);
                padded[at..][..width].copy_from_slice(row);
            }
        }
    }
}

/// The task's output `[images, channels out, height, width]` into `output`.
pub fn forward_task(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    shape: &ConvShape,
    task: usize,
    output: &mut [f32],
) {
    let images = shape.task_images(task);
    let grid = Grid::new(shape, images.len());
    let (inputs, outputs) = (shape.channels_in, shape.channels_out);
    with_scratch(inputs * grid.plane + outputs * grid.columns, |scratch| {
        let (padded, products) = scratch.split_at_mut(inputs * grid.plane);
        pad_task(x, shape, images.clone(), &grid, padded);
        for (index, (ky, kx)) in offsets(shape).enumerate() {
            multiply(
                products,
                weight_view(weight, shape, ky, kx),
                grid.input_view(padded, ky, kx, inputs),
                index > 0,
            );
        }
        let width = shape.width;
        for (local, out) in output.chunks_mut(shape.image_out()).enumerate() {
            for (channel, plane) in out.chunks_mut(shape.pixels()).enumerate() {
                for (y, row) in plane.chunks_mut(width).enumerate() {
                    let at = channel * grid.columns + grid.output_row(local, y);
                    for (value, &sum) in row.iter_mut().zip(&products[at..][..width]) {
                        *value = sum + bias[channel];
                    }
                }
            }
        }
    });
}

/// One task's share of the backward: its images' part of the weight gradient (`[channels out,
/// channels in, k, k]`) and the bias gradient, and their input gradients when asked for.
pub fn backward_task(
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    shape: &ConvShape,
    task: usize,
    input_grad: Option<&mut [f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let images = shape.task_images(task);
    let grid = Grid::new(shape, images.len());
    let (inputs, outputs, width) = (shape.channels_in, shape.channels_out, shape.width);
    let kernel_area = shape.kernel * shape.kernel;
    let mut weight_grad = vec![0.0f32; outputs * inputs * kernel_area];
    let mut bias_grad = vec![0.0f32; outputs];
    let padded_len = inputs * grid.plane;
    let grads_len = outputs * grid.columns;
    let input_grad_len = if input_grad.is_some() { padded_len } else { 0 };
    let scratch_len = padded_len + grads_len + outputs * inputs + input_grad_len;
    with_scratch(scratch_len, |scratch| {
        let (padded, rest) = scratch.split_at_mut(padded_len);
        let (grads, rest) = rest.split_at_mut(grads_len);
        let (per_offset, padded_grad) = rest.split_at_mut(outputs * inputs);
        pad_task(x, shape, images.clone(), &grid, padded);
        // The output gradient on the grid, zero on the frame (which then adds nothing).
        grads.fill(0.0);
        for (local, image) in images.clone().enumerate() {
            let image_grad = &grad[image * shape.image_out()..][..shape.image_out()];
            for (channel, plane) in image_grad.chunks(shape.pixels()).enumerate() {
                for (y, row) in plane.chunks(width).enumerate() {
                    let at = channel * grid.columns + grid.output_row(local, y);
                    grads[at..][..width].copy_from_slice(row);
                }
            }
        }
        let grads = &*grads;
        for (sum, row) in bias_grad.iter_mut().zip(grads.chunks(grid.columns)) {
            *sum = row.iter().sum();
        }
        let grads_matrix = Matrix::row_major(grads, outputs, grid.columns);
        for (ky, kx) in offsets(shape) {
            let view = grid.input_view(padded, ky, kx, inputs);
            multiply(per_offset, grads_matrix, view.transposed(), false);
            let position = ky * shape.kernel + kx;
            for (index, &value) in per_offset.iter().enumerate() {
                weight_grad[index * kernel_area + position] = value;
            }
        }
        if let Some(input_grad) = input_grad {
            padded_grad.fill(0.0);
            // Computed transposed, `[columns, channels in]` (the long side as the product's
            // rows suits the matrix kernels better than 32 rows of a few hundred) and stored
            // column by column into the channel planes.
            for (ky, kx) in offsets(shape) {
                multiply_into(
                    &mut padded_grad[grid.offset(ky, kx)..],
                    (1, grid.plane),
                    grads_matrix.transposed(),
                    weight_view(weight, shape, ky, kx),
                    true,
                );
            }
            for (local, image_grad) in input_grad.chunks_mut(shape.image_in()).enumerate() {
                for (channel, plane) in image_grad.chunks_mut(shape.pixels()).enumerate() {
                    for (y, row) in plane.chunks_mut(width).enumerate() {
                        let at = channel * grid.plane + grid.input_row(local, y);
                        row.copy_from_slice(&padded_grad[at..][..width]);
                    }
                }
            }
        }
    });
    (weight_grad, bias_grad)
}
