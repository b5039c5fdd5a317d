//! Dropout in training: each value kept with probability `keep` and scaled by `1 / keep`, or
//! zeroed. On the CPU the mask is drawn by a fast seeded generator (fastrand's wyrand), already
//! scaled, so dropout is one multiplication; burn's `random_like` draws through ChaCha20 and a
//! float sampler per value, and the scaling was a second pass (together a twentieth of a
//! 32×32 RGB CNN's step). The seed comes from the device's generator, so a run's seed still
//! fixes every mask.

use burn::tensor::{Distribution, Tensor, TensorData};
use rayon::prelude::*;

/// Values per independently seeded chunk: fixed, so the mask never depends on the thread count.
const CHUNK: usize = 1 << 14;

/// `x` with dropout at rate `1 − keep` applied (training only; `keep` in (0, 1]).
pub fn dropout(x: Tensor<2>, keep: f64) -> Tensor<2> {
    let device = x.device();
    if !super::served_device(&x.dtype(), &device) {
        let mask = x.random_like(Distribution::Bernoulli(keep));
        return x * mask / keep;
    }
    // Two uniform draws from the device generator make the 64-bit seed of this mask.
    let draws: Vec<f32> = Tensor::<1>::random([2], Distribution::Default, &device)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let seed = draws
        .iter()
        .fold(0u64, |seed, draw| (seed << 32) | u64::from(draw.to_bits()));
    let dims = x.dims();
    let values = mask_values(dims[0] * dims[1], keep, seed);
    let mask = Tensor::<2>::from_data(TensorData::new(values, dims), &device);
    x * mask
}

/// `count` values, each `1 / keep` with probability `keep`, else 0.
fn mask_values(count: usize, keep: f64, seed: u64) -> Vec<f32> {
    // A value is kept when a uniform u32 falls below keep · 2³².
    let threshold = (keep * 4_294_967_296.0).min(4_294_967_295.0) as u32;
    let kept = (1.0 / keep) as f32;
    let mut values = vec![0.0f32; count];
    values
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(chunk, values)| {
            let mut rng =
                fastrand::Rng::with_seed(seed ^ (chunk as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for value in values {
                *value = if rng.u32(..) < threshold { kept } else { 0.0 };
            }
        });
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_keeps_its_share_scaled_and_repeats_with_its_seed() {
        let keep = 0.75;
        let values = mask_values(100_000, keep, 7);
        let kept = values.iter().filter(|&&value| value > 0.0).count();
        assert!((kept as f64 / 100_000.0 - keep).abs() < 0.01, "{kept}");
        assert!(
            values
                .iter()
                .all(|&value| value == 0.0 || (value - 1.0 / 0.75).abs() < 1e-6)
        );
        assert_eq!(values, mask_values(100_000, keep, 7));
        assert_ne!(values, mask_values(100_000, keep, 8));
        assert!(mask_values(1000, 1.0, 3).iter().all(|&value| value == 1.0));
    }
}
