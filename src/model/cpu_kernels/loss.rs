//! Cross-entropy over logits in one pass per row: the mean loss (tracked), and the batch's tally
//! (summed loss, correct predictions) that the training loop adds up for its epoch figures, where
//! burn's loss and an argmax/compare/sum would take a dozen small tensor ops per step.

use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::DType;

use super::{AutodiffFloat, contiguous_f32, tensor};

/// Per row: the softmax (kept for the backward), the loss and whether the arg-max is the target.
struct Rows {
    probabilities: Vec<f32>,
    targets: Vec<Option<usize>>,
    loss_sum: f64,
    correct: usize,
    rows: usize,
}

/// Class indices as `usize`; `None` for one that is negative (no class).
fn targets_of(targets: &FlexTensor) -> Vec<Option<usize>> {
    let targets = targets.to_contiguous();
    let index = |value: i64| usize::try_from(value).ok();
    match targets.dtype() {
        DType::I32 => targets
            .storage::<i32>()
            .iter()
            .map(|&t| index(t.into()))
            .collect(),
        DType::I64 => targets.storage::<i64>().iter().map(|&t| index(t)).collect(),
        DType::U32 => targets
            .storage::<u32>()
            .iter()
            .map(|&t| index(t.into()))
            .collect(),
        DType::U8 => targets
            .storage::<u8>()
            .iter()
            .map(|&t| index(t.into()))
            .collect(),
        // The wrapper routes only the integer types above here.
        other => unreachable!("class targets are integers, not {other:?}"),
    }
}

fn rows_of(logits: &FlexTensor, targets: &FlexTensor) -> Rows {
    let dims = logits.layout().shape();
    let (rows, classes) = (dims[0], dims[1]);
    let logits = contiguous_f32(logits);
    let targets = targets_of(targets);
    let mut probabilities = vec![0.0f32; rows * classes];
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    for ((row, out), target) in logits
        .chunks_exact(classes.max(1))
        .zip(probabilities.chunks_exact_mut(classes.max(1)))
        .zip(&targets)
    {
        // The first maximum is the prediction (as burn's argmax); a NaN row makes a NaN loss.
        let (mut best, mut best_at) = (f32::NEG_INFINITY, 0);
        for (at, &value) in row.iter().enumerate() {
            if value > best {
                (best, best_at) = (value, at);
            }
        }
        let mut total = 0.0f32;
        for (out, &value) in out.iter_mut().zip(row) {
            *out = (value - best).exp();
            total += *out;
        }
        let scale = 1.0 / total;
        out.iter_mut().for_each(|p| *p *= scale);
        let log_partition = best + total.ln();
        let loss = match target.filter(|&t| t < classes) {
            Some(t) => {
                correct += usize::from(t == best_at);
                log_partition - row[t]
            }
            None => f32::NAN,
        };
        loss_sum += f64::from(loss);
    }
    Rows {
        probabilities,
        targets,
        loss_sum,
        correct,
        rows,
    }
}

/// (mean loss `[1]`, tally `[2]`: summed loss and correct predictions).
fn outputs(rows: &Rows) -> (FlexTensor, FlexTensor) {
    let mean = rows.loss_sum / rows.rows.max(1) as f64;
    let mean = if rows.rows == 0 { f64::NAN } else { mean };
    (
        tensor(vec![mean as f32], vec![1]),
        tensor(vec![rows.loss_sum as f32, rows.correct as f32], vec![2]),
    )
}

pub fn forward(logits: &FlexTensor, targets: &FlexTensor) -> (FlexTensor, FlexTensor) {
    outputs(&rows_of(logits, targets))
}

/// What the backward needs: the softmax, the targets and the logits' shape.
#[derive(Debug, Clone)]
struct LossSaved {
    probabilities: Arc<Vec<f32>>,
    targets: Arc<Vec<Option<usize>>>,
    classes: usize,
}

/// `d(mean loss)/d logits = (softmax − one-hot(target)) · g / rows`.
fn backward(saved: &LossSaved, grad: &FlexTensor) -> FlexTensor {
    let grad = contiguous_f32(grad).first().copied().unwrap_or(0.0);
    let rows = saved.targets.len();
    let scale = grad / rows.max(1) as f32;
    let classes = saved.classes;
    let mut values: Vec<f32> = saved.probabilities.iter().map(|p| p * scale).collect();
    for (row, target) in values
        .chunks_exact_mut(classes.max(1))
        .zip(saved.targets.iter())
    {
        if let Some(t) = target.filter(|&t| t < classes) {
            row[t] -= scale;
        }
    }
    tensor(values, vec![rows, classes])
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl Backward<Flex, 1> for CrossEntropyBackward {
    type State = LossSaved;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [logits_node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = logits_node {
            grads.register::<Flex>(node.id, backward(&ops.state, &grad));
        }
    }
}

pub fn forward_tracked<C: CheckpointStrategy>(
    logits: AutodiffFloat<C>,
    targets: FlexTensor,
) -> (AutodiffFloat<C>, AutodiffFloat<C>) {
    let classes = logits.primitive().layout().shape()[1];
    let rows = rows_of(logits.primitive(), &targets);
    let (loss, tally) = outputs(&rows);
    let tally = AutodiffFloat::<C>::new(tally);
    let loss = match CrossEntropyBackward
        .prepare::<C>([logits.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = LossSaved {
                probabilities: Arc::new(rows.probabilities),
                targets: Arc::new(rows.targets),
                classes,
            };
            prep.finish(saved, loss)
        }
        OpsKind::UnTracked(prep) => prep.finish(loss),
    };
    (loss, tally)
}

#[cfg(test)]
mod tests {
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

    #[test]
    fn cross_entropy_matches_burns_loss_gradient_and_counts_correct_predictions() {
        let device = Device::flex().autodiff();
        for (rows, classes) in [(37, 10), (1, 2), (256, 3)] {
            let logits: Tensor<2> =
                Tensor::random([rows, classes], Distribution::Normal(0.0, 3.0), &device);
            let logits = logits.require_grad();
            let labels: Vec<i64> = (0..rows).map(|row| ((row * 7) % classes) as i64).collect();
            let targets =
                Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [rows]), &device);
            let expected = CrossEntropyLossConfig::new()
                .init(&device)
                .forward(logits.clone(), targets.clone());
            let (ours, tally) = super::super::cross_entropy(logits.clone(), targets);
            let difference = (expected.clone() - ours.clone()).abs().into_scalar::<f32>();
            assert!(difference < 1e-5, "{rows}×{classes}: {difference}");

            let grad_expected = logits.grad(&(expected.clone() * 3.0).backward());
            let grad_ours = logits.grad(&(ours * 3.0).backward());
            let (Some(a), Some(b)) = (grad_expected, grad_ours) else {
                panic!("logit gradients");
            };
            assert!((a - b).abs().max().into_scalar::<f32>() < 1e-6);

            let values = logits
                .inner()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap_or_default();
            let correct = values
                .chunks_exact(classes)
                .zip(&labels)
                .filter(|(row, label)| {
                    let best = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    row.iter().position(|&value| value == best) == Some(**label as usize)
                })
                .count();
            let tally = tally.into_data().try_to_vec::<f32>().unwrap_or_default();
            let mean = expected.into_scalar::<f32>();
            assert!((tally[0] - mean * rows as f32).abs() < 1e-3 * rows as f32);
            assert_eq!(tally[1], correct as f32, "{rows}×{classes}");
        }
    }

    #[test]
    fn without_autodiff_the_loss_and_tally_are_the_same() {
        let device = Device::flex();
        let logits = Tensor::<2>::from_floats([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]], &device);
        let targets = Tensor::<1, Int>::from_ints([0, 0, 0], &device);
        let (loss, tally) = super::super::cross_entropy(logits.clone(), targets.clone());
        let expected = CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits, targets)
            .into_scalar::<f32>();
        assert!((loss.into_scalar::<f32>() - expected).abs() < 1e-6);
        let tally = tally.into_data().try_to_vec::<f32>().unwrap_or_default();
        assert!((tally[0] - 3.0 * expected).abs() < 1e-5);
        assert_eq!(tally[1], 2.0);
    }
}
