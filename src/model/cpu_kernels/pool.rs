//! 2×2 max-pool, stride 2: one pass forward that also keeps each window's winner (a byte), and a
//! backward that writes each output's gradient to that winner.

use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::{AutodiffFloat, contiguous_f32, dims4, tensor};

/// Planes (one channel of one image) per parallel task: small maps are not worth a split each.
const PLANES_PER_TASK: usize = 16;

/// The pooled tensor and, per output, which of its window's four inputs (row-major) won.
pub fn forward(x: &FlexTensor) -> (FlexTensor, Vec<u8>) {
    let [batch, channels, height, width] = dims4(x);
    let values = contiguous_f32(x);
    let (out_h, out_w) = (height / 2, width / 2);
    let plane_in = height * width;
    let plane_out = out_h * out_w;
    let mut output = vec![0.0f32; batch * channels * plane_out];
    let mut winners = vec![0u8; output.len()];
    let chunk_out = (PLANES_PER_TASK * plane_out).max(1);
    output
        .par_chunks_mut(chunk_out)
        .zip(winners.par_chunks_mut(chunk_out))
        .enumerate()
        .for_each(|(task, (out, won))| {
            let first_plane = task * PLANES_PER_TASK;
            for (local, (out, won)) in out
                .chunks_mut(plane_out)
                .zip(won.chunks_mut(plane_out))
                .enumerate()
            {
                let plane = &values[(first_plane + local) * plane_in..][..plane_in];
                for row in 0..out_h {
                    let top = plane[2 * row * width..][..2 * out_w].chunks_exact(2);
                    let bottom = plane[(2 * row + 1) * width..][..2 * out_w].chunks_exact(2);
                    let out = &mut out[row * out_w..][..out_w];
                    let won = &mut won[row * out_w..][..out_w];
                    for ((out, won), (top, bottom)) in
                        out.iter_mut().zip(won.iter_mut()).zip(top.zip(bottom))
                    {
                        // Row-major order; the first maximum wins ties, as burn's pool; a NaN
                        // anywhere makes the output NaN. Written without branches.
                        let [a, b, c, d] = [top[0], top[1], bottom[0], bottom[1]];
                        let (upper, upper_at) = if b > a { (b, 1) } else { (a, 0) };
                        let (lower, lower_at) = if d > c { (d, 3) } else { (c, 2) };
                        let (best, at) = if lower > upper {
                            (lower, lower_at)
                        } else {
                            (upper, upper_at)
                        };
                        let any_nan = a.is_nan() | b.is_nan() | c.is_nan() | d.is_nan();
                        *out = if any_nan { f32::NAN } else { best };
                        *won = at;
                    }
                }
            }
        });
    (tensor(output, vec![batch, channels, out_h, out_w]), winners)
}

/// The input's gradient: each output's gradient at its window's winner, zero elsewhere.
fn backward(grad: &FlexTensor, winners: &[u8], input_dims: [usize; 4]) -> FlexTensor {
    let [_, _, out_h, out_w] = dims4(grad);
    let grad = contiguous_f32(grad);
    let [_, _, height, width] = input_dims;
    let plane_in = height * width;
    let plane_out = out_h * out_w;
    let mut input_grad = vec![0.0f32; input_dims.iter().product()];
    let chunk_in = (PLANES_PER_TASK * plane_in).max(1);
    input_grad
        .par_chunks_mut(chunk_in)
        .enumerate()
        .for_each(|(task, planes)| {
            let first_plane = task * PLANES_PER_TASK;
            for (local, plane) in planes.chunks_mut(plane_in).enumerate() {
                let offset = (first_plane + local) * plane_out;
                let grad = &grad[offset..][..plane_out];
                let won = &winners[offset..][..plane_out];
                for row in 0..out_h {
                    for col in 0..out_w {
                        let at = row * out_w + col;
                        let winner = usize::from(won[at]);
                        let (dy, dx) = (winner / 2, winner % 2);
                        plane[(2 * row + dy) * width + 2 * col + dx] = grad[at];
                    }
                }
            }
        });
    tensor(input_grad, input_dims.to_vec())
}

#[derive(Debug)]
struct MaxPool2x2Backward;

impl Backward<Flex, 1> for MaxPool2x2Backward {
    type State = (Arc<Vec<u8>>, [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(parent) = parent {
            let (winners, input_dims) = ops.state;
            grads.register::<Flex>(parent.id, backward(&grad, &winners, input_dims));
        }
    }
}

pub fn forward_tracked<C: CheckpointStrategy>(x: AutodiffFloat<C>) -> AutodiffFloat<C> {
    match MaxPool2x2Backward
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let input_dims = dims4(x.primitive());
            let (output, winners) = forward(x.primitive());
            prep.finish((Arc::new(winners), input_dims), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive()).0),
    }
}
