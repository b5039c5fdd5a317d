//! A dense layer, `x·W + b`, optionally followed by ReLU, as one kernel: the forward writes the
//! bias and adds the product onto it (no separate broadcast add, no ReLU pass or mask tensor),
//! and the backward masks the gradient and sums the bias gradient in one pass, then takes the
//! input and weight gradients as strided products (no transposed copies).
//!
//! Work is split in groups of rows (or weight columns) fixed by the shape, each product summed
//! over the whole batch by one call, so results never depend on the thread count. burn flex runs
//! products below 192³ multiply-adds on one thread (this MLP's first and last layers); here every
//! product is split.

use std::borrow::Cow;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::gemm::{Matrix, multiply};
use super::{AutodiffFloat, contiguous_f32, register_gradients, tensor, vectorized};

/// At least this many rows (of the output, of the input gradient) or weight rows/columns per
/// parallel task, and at least [`TASK_WORK`] multiply-adds: waking the other thread for less
/// costs more than it saves.
const LINES_PER_TASK: usize = 64;
const TASK_WORK: usize = 1 << 20;

/// Lines per task when each line costs `work_per_line`; a function of the shape alone.
fn lines_per_task(work_per_line: usize) -> usize {
    LINES_PER_TASK.max(TASK_WORK.div_ceil(work_per_line.max(1)))
}

/// A 2-D tensor's values with its (row, column) strides: its own storage where the strides allow
/// (a transposed weight is read in place), a row-major copy otherwise.
struct Strided<'a> {
    values: Cow<'a, [f32]>,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Strided<'a> {
    fn of(x: &'a FlexTensor) -> Self {
        let layout = x.layout();
        let dims = layout.shape();
        let (rows, cols) = (dims[0], dims[1]);
        let strides = layout.strides();
        if strides.iter().all(|&stride| stride > 0) {
            let storage = x.storage::<f32>();
            Self {
                values: Cow::Borrowed(&storage[layout.start_offset()..]),
                rows,
                cols,
                row_stride: strides[0].unsigned_abs(),
                col_stride: strides[1].unsigned_abs(),
            }
        } else {
            Self {
                values: contiguous_f32(x),
                rows,
                cols,
                row_stride: cols,
                col_stride: 1,
            }
        }
    }

    /// Rows `first..first + count` as a matrix view.
    fn rows_view(&self, first: usize, count: usize) -> Matrix<'_> {
        Matrix {
            data: &self.values[(first * self.row_stride).min(self.values.len())..],
            rows: count,
            cols: self.cols,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
        }
    }

    fn view(&self) -> Matrix<'_> {
        self.rows_view(0, self.rows)
    }
}

/// ReLU that keeps NaN (as burn's, which zeroes only what is `<= 0`). A select, not a branch:
/// signs are random, and a conditional store mispredicts half the time.
#[inline(always)]
fn relu_in_place(values: &mut [f32]) {
    for value in values {
        *value = if *value <= 0.0 { 0.0 } else { *value };
    }
}

/// `relu?(x·W + b)`: x `[rows, inputs]`, W `[inputs, outputs]`, b `[outputs]`.
pub fn forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor, relu: bool) -> FlexTensor {
    let x = Strided::of(x);
    let weight = Strided::of(weight);
    let bias = contiguous_f32(bias);
    let (rows, outputs) = (x.rows, weight.cols);
    let mut output = Vec::with_capacity(rows * outputs);
    for _ in 0..rows {
        output.extend_from_slice(&bias);
    }
    let lines = lines_per_task(x.cols * outputs);
    output
        .par_chunks_mut((lines * outputs).max(1))
        .enumerate()
        .for_each(|(task, out)| {
            let count = out.len() / outputs;
            multiply(out, x.rows_view(task * lines, count), weight.view(), true);
            if relu {
                vectorized(|| relu_in_place(out));
            }
        });
    tensor(output, vec![rows, outputs])
}

/// The gradient at the product, `[rows, outputs]` row-major (masked by the ReLU's output where
/// there is one: in place when the incoming gradient is ours alone), and the bias gradient,
/// summed per group of rows and the groups added in order.
fn masked_gradient(
    grad: FlexTensor,
    output: Option<&[f32]>,
    (rows, outputs): (usize, usize),
) -> (FlexTensor, Vec<f32>) {
    let count = rows * outputs;
    let chunk = (lines_per_task(outputs) * outputs).max(1);
    let column_sums = |rows: &[f32]| {
        let mut sums = vec![0.0f32; outputs];
        vectorized(|| {
            for row in rows.chunks_exact(outputs.max(1)) {
                sums.iter_mut()
                    .zip(row)
                    .for_each(|(sum, value)| *sum += value);
            }
        });
        sums
    };
    let owned_row_major =
        grad.layout().contiguous_offsets() == Some((0, count)) && grad.is_unique();
    let (grad, parts): (FlexTensor, Vec<Vec<f32>>) = match output {
        Some(output) => {
            let mut grad = if owned_row_major {
                grad
            } else {
                tensor(contiguous_f32(&grad).into_owned(), vec![rows, outputs])
            };
            let values = &mut grad.storage_mut::<f32>()[..count];
            let parts = values
                .par_chunks_mut(chunk)
                .zip(output.par_chunks(chunk))
                .map(|(grad, output)| {
                    vectorized(|| {
                        for (grad, output) in grad.iter_mut().zip(output) {
                            *grad = if *output <= 0.0 { 0.0 } else { *grad };
                        }
                    });
                    column_sums(grad)
                })
                .collect();
            (grad, parts)
        }
        None => {
            let grad = match grad.as_slice::<f32>() {
                Some(_) => grad,
                None => tensor(contiguous_f32(&grad).into_owned(), vec![rows, outputs]),
            };
            let parts = contiguous_f32(&grad)
                .par_chunks(chunk)
                .map(column_sums)
                .collect();
            (grad, parts)
        }
    };
    let mut bias_grad = vec![0.0f32; outputs];
    for part in parts {
        bias_grad
            .iter_mut()
            .zip(part)
            .for_each(|(sum, value)| *sum += value);
    }
    (grad, bias_grad)
}

/// `xᵀ·g`, `[inputs, outputs]`: split over weight rows, or over its columns when there are few
/// rows (a first layer on few features), each group summed over the whole batch.
fn weight_gradient(x: &Strided, grad: Matrix) -> Vec<f32> {
    let (inputs, outputs) = (x.cols, grad.cols);
    let x_transposed = x.view().transposed();
    let batch = x.rows;
    let mut weight_grad = vec![0.0f32; inputs * outputs];
    let (row_lines, column_lines) = (
        lines_per_task(batch * outputs),
        lines_per_task(batch * inputs),
    );
    if inputs >= 2 * row_lines || outputs < 2 * column_lines {
        weight_grad
            .par_chunks_mut((row_lines * outputs).max(1))
            .enumerate()
            .for_each(|(task, out)| {
                let first = task * row_lines;
                let count = out.len() / outputs;
                let rows = Matrix {
                    data: &x_transposed.data
                        [(first * x_transposed.row_stride).min(x_transposed.data.len())..],
                    rows: count,
                    ..x_transposed
                };
                multiply(out, rows, grad, false);
            });
        return weight_grad;
    }
    let columns: Vec<(usize, Vec<f32>)> = (0..outputs.div_ceil(column_lines))
        .into_par_iter()
        .map(|task| {
            let first = task * column_lines;
            let count = column_lines.min(outputs - first);
            let mut part = vec![0.0f32; inputs * count];
            let grad_columns = Matrix {
                data: &grad.data[first * grad.col_stride..],
                cols: count,
                ..grad
            };
            multiply(&mut part, x_transposed, grad_columns, false);
            (first, part)
        })
        .collect();
    for (first, part) in columns {
        let count = part.len() / inputs.max(1);
        for (row, values) in part.chunks_exact(count.max(1)).enumerate() {
            weight_grad[row * outputs + first..][..count].copy_from_slice(values);
        }
    }
    weight_grad
}

/// `g·Wᵀ`, `[rows, inputs]`, split over rows.
fn input_gradient(grad: &[f32], weight: &Strided, rows: usize) -> Vec<f32> {
    let (inputs, outputs) = (weight.rows, weight.cols);
    let weight_transposed = weight.view().transposed();
    let mut input_grad = vec![0.0f32; rows * inputs];
    let lines = lines_per_task(outputs * inputs);
    input_grad
        .par_chunks_mut((lines * inputs).max(1))
        .enumerate()
        .for_each(|(task, out)| {
            let count = out.len() / inputs;
            let first = task * lines;
            let grad_rows = Matrix::row_major(&grad[first * outputs..], count, outputs);
            multiply(out, grad_rows, weight_transposed, false);
        });
    input_grad
}

/// The (input, weight, bias) gradients; the input's only when asked for.
fn backward(
    saved: &DenseSaved,
    grad: FlexTensor,
    with_input: bool,
) -> (Option<FlexTensor>, FlexTensor, FlexTensor) {
    let x = Strided::of(&saved.x);
    let weight = Strided::of(&saved.weight);
    let (rows, inputs, outputs) = (x.rows, x.cols, weight.cols);
    let output = saved.output.as_ref().map(contiguous_f32);
    let (masked, bias_grad) = masked_gradient(grad, output.as_deref(), (rows, outputs));
    let masked = contiguous_f32(&masked);
    let weight_grad = weight_gradient(&x, Matrix::row_major(&masked, rows, outputs));
    let input_grad = with_input.then(|| input_gradient(&masked, &weight, rows));
    (
        input_grad.map(|values| tensor(values, vec![rows, inputs])),
        tensor(weight_grad, vec![inputs, outputs]),
        tensor(bias_grad, vec![outputs]),
    )
}

/// What the backward needs: the input, the weight and, after a ReLU, the output (its mask).
#[derive(Debug, Clone)]
struct DenseSaved {
    x: FlexTensor,
    weight: FlexTensor,
    output: Option<FlexTensor>,
}

#[derive(Debug)]
struct DenseBackward;

impl Backward<Flex, 3> for DenseBackward {
    type State = DenseSaved;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let parents = ops.parents.map(|parent| parent.map(|node| node.id));
        let grad = grads.consume::<Flex>(&ops.node);
        let (input_grad, weight_grad, bias_grad) = backward(&ops.state, grad, parents[0].is_some());
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
    relu: bool,
) -> AutodiffFloat<C> {
    let output = forward(x.primitive(), weight.primitive(), bias.primitive(), relu);
    match DenseBackward
        .prepare::<C>([x.node(), weight.node(), bias.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = DenseSaved {
                x: x.primitive().clone(),
                weight: weight.primitive().clone(),
                output: relu.then(|| output.clone()),
            };
            prep.finish(saved, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{LinearConfig, LinearLayout};
    use burn::tensor::activation::relu;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::super::max_difference;

    #[test]
    fn dense_matches_burns_layer_values_and_gradients() {
        let device = Device::flex().autodiff();
        // Rows off the task size, a first layer on few features (split over weight columns),
        // a narrow last layer, a single unit, and a weight stored transposed (read in place).
        let cases = [
            (7, 5, 3, true, true, LinearLayout::Row),
            (300, 64, 256, true, false, LinearLayout::Row),
            (130, 256, 10, false, true, LinearLayout::Row),
            (1, 1, 1, true, true, LinearLayout::Row),
            (70, 33, 140, true, true, LinearLayout::Col),
        ];
        for (rows, inputs, outputs, relu_after, input_grad, layout) in cases {
            let layer = LinearConfig::new(inputs, outputs)
                .with_layout(layout)
                .init(&device);
            let x: Tensor<2> =
                Tensor::random([rows, inputs], Distribution::Normal(0.0, 1.0), &device);
            let x = if input_grad { x.require_grad() } else { x };
            let expected = layer.forward(x.clone());
            let expected = if relu_after { relu(expected) } else { expected };
            let ours = super::super::dense(&layer, x.clone(), relu_after);
            assert_eq!(expected.dims(), ours.dims());
            let case = (rows, inputs, outputs, relu_after);
            assert!(
                max_difference(expected.clone(), ours.clone()) < 1e-4,
                "{case:?}"
            );

            let weights: Tensor<2> =
                Tensor::random(expected.dims(), Distribution::Normal(0.0, 1.0), &device);
            let grads_expected = (expected * weights.clone()).sum().backward();
            let grads_ours = (ours * weights).sum().backward();
            let weight = layer.weight.val();
            let bias = layer.bias.as_ref().map(|bias| bias.val());
            let bias_grad = |grads| {
                let grad: Option<Tensor<1>> = bias.as_ref().and_then(|bias| bias.grad(grads));
                grad.map(|grad| grad.unsqueeze::<2>())
            };
            let pairs = [
                (weight.grad(&grads_expected), weight.grad(&grads_ours)),
                (bias_grad(&grads_expected), bias_grad(&grads_ours)),
            ];
            for pair in pairs {
                let (Some(a), Some(b)) = pair else {
                    panic!("parameter gradients for {case:?}");
                };
                assert!(max_difference(a, b) < 1e-3, "{case:?}");
            }
            match (x.grad(&grads_expected), x.grad(&grads_ours)) {
                (Some(a), Some(b)) => assert!(max_difference(a, b) < 1e-4, "{case:?}"),
                (None, None) => assert!(!input_grad),
                _ => panic!("input gradient on one side only for {case:?}"),
            }
        }
    }

    #[test]
    fn relu_keeps_nan_so_a_diverging_run_shows() {
        let device = Device::flex();
        let layer = LinearConfig::new(2, 3).init(&device);
        let x = Tensor::<2>::from_floats([[f32::NAN, 1.0], [1.0, 1.0]], &device);
        let output = super::super::dense(&layer, x, true).into_data();
        let values = output.try_to_vec::<f32>().unwrap_or_default();
        assert!(values[..3].iter().all(|value| value.is_nan()), "{values:?}");
        assert!(values[3..].iter().all(|value| *value >= 0.0), "{values:?}");
    }

    #[test]
    fn gradients_do_not_depend_on_the_thread_count() {
        // The layer and the input are drawn once: the device's generator is shared with the
        // tests running beside this one, so reseeding it would not give the same values twice.
        let device = Device::flex().autodiff();
        let layer = LinearConfig::new(96, 200).init(&device);
        let x: Tensor<2> = Tensor::random([257, 96], Distribution::Default, &device).require_grad();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool");
            pool.install(|| {
                let grads = super::super::dense(&layer, x.clone(), true)
                    .powi_scalar(2)
                    .sum()
                    .backward();
                (
                    layer.weight.val().grad(&grads).map(|grad| grad.into_data()),
                    x.grad(&grads).map(|grad| grad.into_data()),
                )
            })
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn layers_without_bias_keep_burns() {
        let device = Device::flex();
        let layer = LinearConfig::new(4, 3).with_bias(false).init(&device);
        let x: Tensor<2> = Tensor::random([5, 4], Distribution::Default, &device);
        let expected = relu(layer.forward(x.clone()));
        assert_eq!(
            max_difference(expected, super::super::dense(&layer, x, true)),
            0.0
        );
    }
}
