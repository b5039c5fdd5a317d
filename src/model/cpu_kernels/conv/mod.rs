//! 2D convolution, stride 1, "same" zero padding (Kiln's conv blocks), as matrix products,
//! forward and backward, two ways chosen by shape:
//! - few input channels or small images: one product per group of images over their k×k
//!   neighbourhoods laid out as a column matrix (im2col), kept from the forward for the
//!   weight's gradient;
//! - many channels on larger images: k² products over shifted views of the padded images
//!   ([`shifted`]), no column matrix at all.
//!
//! Burn flex computes the backward through generic routes (a transposed convolution for the
//! input's gradient, a convolution whose kernel is the whole image for the weight's). The work
//! is split over images in fixed groups, and the groups' weight gradients added in group order,
//! so the sums never depend on the thread count or on which thread finished first: a seed gives
//! the same run.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use rayon::prelude::*;
use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

mod shifted;

use super::gemm::{Matrix, multiply};
use super::{AutodiffFloat, contiguous_f32, dims4, register_gradients, tensor};

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
        let columns = if shifted::suits(self) {
            shifted::COLUMNS_PER_TASK
        } else {
            COLUMNS_PER_TASK
        };
        (columns / self.pixels().max(1)).clamp(1, self.batch.max(1))
    }

    /// The images of one task.
    fn task_images(&self, task: usize) -> std::ops::Range<usize> {
        let first = task * self.images_per_task();
        first..(first + self.images_per_task()).min(self.batch)
    }

    fn pad(&self) -> usize {
        self.kernel / 2
    }

    /// A row of an image zero-padded on every side.
    fn padded_width(&self) -> usize {
        self.width + 2 * self.pad()
    }

    /// Floats in one channel of an image zero-padded on every side.
    fn padded_plane(&self) -> usize {
        (self.height + 2 * self.pad()) * self.padded_width()
    }

    /// Floats in one image zero-padded on every side.
    fn padded_image(&self) -> usize {
        self.channels_in * self.padded_plane()
    }
}

thread_local! {
    /// Per-thread working memory, reused from call to call (its contents are stale: every user
    /// overwrites or clears what it takes).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `work` on `len` floats of this thread's scratch memory (fresh memory if it is in use).
fn with_scratch<R>(len: usize, work: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
            work(&mut buffer[..len])
        }
        Err(_) => work(&mut vec![0.0; len]),
    })
}

/// Copies images into `padded` (one after another), each channel framed by `pad` zeros.
fn pad_images<'a>(images: impl Iterator<Item = &'a [f32]>, shape: &ConvShape, padded: &mut [f32]) {
    let (pad, width) = (shape.pad(), shape.width);
    let (padded_width, padded_plane) = (shape.padded_width(), shape.padded_plane());
    padded.fill(0.0);
    for (image, target) in images.zip(padded.chunks_mut(shape.padded_image())) {
        for (plane, target) in image
            .chunks(shape.pixels().max(1))
            .zip(target.chunks_mut(padded_plane))
        {
            for (row, source) in plane.chunks(width.max(1)).enumerate() {
                target[(row + pad) * padded_width + pad..][..width].copy_from_slice(source);
            }
        }
    }
}

/// Image width from which [`im2col`] copies whole rows rather than value by value.
const WIDE_ROW: usize = 16;

/// For one image's block of a column matrix (`[patch, pixels]`, row = input channel, kernel
/// row, kernel column; column = output y, x): where each value sits in the padded image. One
/// lookup per value, with no arithmetic per row: for small images the bookkeeping per row of
/// 4–8 values used to cost more than the copying.
fn gather_table(shape: &ConvShape) -> Vec<usize> {
    let (width, kernel) = (shape.width, shape.kernel);
    let (padded_width, padded_plane) = (shape.padded_width(), shape.padded_plane());
    let mut table = Vec::with_capacity(shape.patch() * shape.pixels());
    for channel in 0..shape.channels_in {
        for ky in 0..kernel {
            for kx in 0..kernel {
                for out_y in 0..shape.height {
                    let start = channel * padded_plane + (out_y + ky) * padded_width + kx;
                    table.extend(start..start + width);
                }
            }
        }
    }
    table
}

/// The group's column matrix `[patch, images · pixels]`, row-major: row (channel, ky, kx),
/// column (image, y, x) holds input (channel, y + ky − pad, x + kx − pad) of that image, zero
/// outside it; read from the padded images.
fn im2col(padded: &[f32], shape: &ConvShape, images: usize, table: &[usize]) -> Vec<f32> {
    let (pixels, width) = (shape.pixels(), shape.width);
    // Appended, never zeroed first: the matrix is tens of MB for 32×32 images.
    let mut columns = Vec::with_capacity(shape.patch() * images * pixels);
    for table in table.chunks(pixels.max(1)) {
        for image in 0..images {
            let source = &padded[image * shape.padded_image()..][..shape.padded_image()];
            if width >= WIDE_ROW {
                // Each output row reads one contiguous run of the padded row.
                for row in table.chunks(width) {
                    columns.extend_from_slice(&source[row[0]..][..width]);
                }
            } else {
                columns.extend(table.iter().map(|&at| source[at]));
            }
        }
    }
    columns
}

/// Adds a column matrix's values back onto the padded positions they were read from.
fn col2im_add(
    columns: &[f32],
    shape: &ConvShape,
    images: usize,
    table: &[usize],
    padded: &mut [f32],
) {
    let pixels = shape.pixels();
    for (values, table) in columns.chunks(images * pixels).zip(table.chunks(pixels)) {
        for (image, values) in values.chunks(pixels).enumerate() {
            let target = &mut padded[image * shape.padded_image()..][..shape.padded_image()];
            for (&value, &at) in values.iter().zip(table) {
                target[at] += value;
            }
        }
    }
}

/// The inside of padded images (the frame dropped), into `images` laid out unpadded.
fn unpad_images(padded: &[f32], shape: &ConvShape, images: &mut [f32]) {
    let (pad, width) = (shape.pad(), shape.width);
    let (padded_width, padded_plane) = (shape.padded_width(), shape.padded_plane());
    for (image, source) in images
        .chunks_mut(shape.image_in().max(1))
        .zip(padded.chunks(shape.padded_image()))
    {
        for (plane, source) in image
            .chunks_mut(shape.pixels().max(1))
            .zip(source.chunks(padded_plane))
        {
            for (row, target) in plane.chunks_mut(width.max(1)).enumerate() {
                target.copy_from_slice(&source[(row + pad) * padded_width + pad..][..width]);
            }
        }
    }
}

/// One task's column matrix, from its images of `x`.
fn task_columns(x: &[f32], shape: &ConvShape, task: usize, table: &[usize]) -> Vec<f32> {
    let images = shape.task_images(task);
    let count = images.len();
    let inputs = images.map(|image| &x[image * shape.image_in()..][..shape.image_in()]);
    with_scratch(count * shape.padded_image(), |padded| {
        pad_images(inputs, shape, padded);
        im2col(padded, shape, count, table)
    })
}

/// The output, and each task's column matrix with the table that gathered them (which the
/// backward reuses).
fn forward_values(x: &[f32], weight: &[f32], bias: &[f32], shape: ConvShape) -> (Vec<f32>, Saved) {
    let (pixels, patch, outputs) = (shape.pixels(), shape.patch(), shape.channels_out);
    let mut output = vec![0.0f32; shape.batch * shape.image_out()];
    let table = gather_table(&shape);
    let columns = output
        .par_chunks_mut(shape.images_per_task() * shape.image_out())
        .enumerate()
        .map(|(task, output)| {
            let columns = task_columns(x, &shape, task, &table);
            let row_length = shape.task_images(task).len() * pixels;
            with_scratch(outputs * row_length, |products| {
                multiply(
                    products,
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
            columns
        })
        .collect();
    (output, Saved::Columns { columns, table })
}

/// What the backward needs from the forward: the column matrices of the tasks (their
/// neighbourhoods, already laid out) or, for the shifted products, the input itself.
#[derive(Debug)]
enum Saved {
    Columns {
        columns: Vec<Vec<f32>>,
        table: Vec<usize>,
    },
    Input(FlexTensor),
}

/// [`Saved`] as the backward's tasks read it.
enum Source<'a> {
    Columns {
        columns: &'a [Vec<f32>],
        table: &'a [usize],
    },
    Input(Cow<'a, [f32]>),
}

/// The output, and what its backward needs.
fn forward_saving(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
) -> (FlexTensor, Saved, ConvShape) {
    let shape = ConvShape::new(dims4(x), dims4(weight));
    let (values, weight, bias) = (
        contiguous_f32(x),
        contiguous_f32(weight),
        contiguous_f32(bias),
    );
    let (output, saved) = if shifted::suits(&shape) {
        let mut output = vec![0.0f32; shape.batch * shape.image_out()];
        output
            .par_chunks_mut(shape.images_per_task() * shape.image_out())
            .enumerate()
            .for_each(|(task, output)| {
                shifted::forward_task(&values, &weight, &bias, &shape, task, output);
            });
        (output, Saved::Input(x.clone()))
    } else {
        forward_values(&values, &weight, &bias, shape)
    };
    let dims = vec![shape.batch, shape.channels_out, shape.height, shape.width];
    (tensor(output, dims), saved, shape)
}

pub fn forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    forward_saving(x, weight, bias).0
}

/// One task's share of the backward: its images' part of the weight and bias gradients, and
/// (when `input_grad` is given) their input gradients.
fn backward_task(
    task: usize,
    columns: &[f32],
    weight: &[f32],
    grad: &[f32],
    shape: &ConvShape,
    table: &[usize],
    input_grad: Option<&mut [f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let (pixels, patch, outputs) = (shape.pixels(), shape.patch(), shape.channels_out);
    let images = shape.task_images(task);
    let count = images.len();
    let row_length = count * pixels;
    // The output gradient as one matrix `[channels out, images · pixels]`, like the product.
    let mut grads = Vec::with_capacity(outputs * row_length);
    for channel in 0..outputs {
        for image in images.clone() {
            grads
                .extend_from_slice(&grad[image * shape.image_out() + channel * pixels..][..pixels]);
        }
    }
    let grads_matrix = Matrix::row_major(&grads, outputs, row_length);
    let mut weight_grad = vec![0.0f32; outputs * patch];
    multiply(
        &mut weight_grad,
        grads_matrix,
        Matrix::row_major(columns, patch, row_length).transposed(),
        false,
    );
    let bias_grad = grads
        .chunks(row_length.max(1))
        .map(|row| row.iter().sum::<f32>())
        .collect();
    if let Some(input_grad) = input_grad {
        let padded_len = count * shape.padded_image();
        with_scratch(patch * row_length + padded_len, |scratch| {
            let (column_grad, padded) = scratch.split_at_mut(patch * row_length);
            multiply(
                column_grad,
                Matrix::row_major(weight, outputs, patch).transposed(),
                grads_matrix,
                false,
            );
            padded.fill(0.0);
            col2im_add(column_grad, shape, count, table, padded);
            unpad_images(padded, shape, input_grad);
        });
    }
    (weight_grad, bias_grad)
}

/// (input gradient when asked for, weight gradient, bias gradient).
fn backward(
    saved: &Saved,
    weight: &FlexTensor,
    grad: &FlexTensor,
    shape: ConvShape,
    want_input_grad: bool,
) -> (Option<FlexTensor>, FlexTensor, FlexTensor) {
    let (weight, grad) = (contiguous_f32(weight), contiguous_f32(grad));
    // What the tasks read, the input's values taken once here rather than once per task.
    let source = match saved {
        Saved::Columns { columns, table } => Source::Columns { columns, table },
        Saved::Input(x) => Source::Input(contiguous_f32(x)),
    };
    let task_part = |task: usize, input_grad: Option<&mut [f32]>| match &source {
        Source::Columns { columns, table } => backward_task(
            task,
            &columns[task],
            &weight,
            &grad,
            &shape,
            table,
            input_grad,
        ),
        Source::Input(input) => {
            shifted::backward_task(input, &weight, &grad, &shape, task, input_grad)
        }
    };
    let mut input_grad = want_input_grad.then(|| vec![0.0f32; shape.batch * shape.image_in()]);
    let parts: Vec<(Vec<f32>, Vec<f32>)> = match &mut input_grad {
        Some(input_grad) => input_grad
            .par_chunks_mut(shape.images_per_task() * shape.image_in())
            .enumerate()
            .map(|(task, chunk)| task_part(task, Some(chunk)))
            .collect(),
        None => (0..shape.batch.div_ceil(shape.images_per_task()))
            .into_par_iter()
            .map(|task| task_part(task, None))
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
    /// The forward's column matrices (the input's neighbourhoods, needed for the weight's
    /// gradient), the weight, and the shape.
    type State = (Arc<Saved>, FlexTensor, ConvShape);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let parents = ops.parents.map(|parent| parent.map(|node| node.id));
        let grad = grads.consume::<Flex>(&ops.node);
        let (saved, weight, shape) = ops.state;
        let (input_grad, weight_grad, bias_grad) =
            backward(&saved, &weight, &grad, shape, parents[0].is_some());
        register_gradients(
            grads,
            parents,
            [input_grad, Some(weight_grad), Some(bias_grad)],
        );
    }
}

pub fn forward_tracked<C: CheckpointStrategy>(
    x: AutodiffFloat<C>,
    weight: AutodiffFloat<C>,
    bias: AutodiffFloat<C>,
) -> AutodiffFloat<C> {
    let (output, saved, shape) =
        forward_saving(x.primitive(), weight.primitive(), bias.primitive());
    match ConvBackward
        .prepare::<C>([x.node(), weight.node(), bias.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = (Arc::new(saved), weight.primitive().clone(), shape);
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}
