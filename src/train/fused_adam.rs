//! Adam as one pass per parameter on the CPU: both moments and the parameter updated together,
//! where burn's Adam runs about ten element-wise operations per parameter, each over the whole
//! tensor and each allocating its result (measured: a fifth of the MLP's training loop on two
//! cores, BENCHMARKS.md overhead). The same formula in the same precision, and burn's own state
//! type, so checkpoints (the optimizer's moments) read and write as before; anywhere but the CPU
//! (wgpu), burn's Adam runs.

use burn::optim::{
    AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer,
};
use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

use crate::model::cpu_kernels::{served_device, vectorized};

const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;
/// Values per parallel task; element-wise, so the split never changes a result.
const CHUNK: usize = 1 << 14;

/// Kiln's Adam: burn's defaults (β₁ 0.9, β₂ 0.999, ε 1e-5), fused on the CPU.
pub fn adam() -> ModuleOptimizer {
    ModuleOptimizer::from(FusedAdam {
        fallback: AdamConfig::new()
            .with_beta_1(BETA_1)
            .with_beta_2(BETA_2)
            .with_epsilon(EPSILON)
            .build(),
    })
}

#[derive(Clone)]
struct FusedAdam {
    fallback: burn::optim::Adam,
}

/// The tensor's values on the host (no copy when it is the only reference), or its data back
/// when they cannot be read as f32.
fn host_values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, Box<TensorData>> {
    let data = tensor.into_data();
    if data.as_slice::<f32>().is_err() {
        return Err(Box::new(data));
    }
    Ok(data.try_into_vec::<f32>().unwrap_or_default())
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let device = tensor.device();
        let moments_f32 = state.as_ref().is_none_or(|state| {
            state.momentum.moment_1.dtype() == DType::F32
                && state.momentum.moment_2.dtype() == DType::F32
                && state.momentum.max_moment_2.is_none()
        });
        let on_cpu = served_device(&tensor.dtype(), &device)
            && served_device(&grad.dtype(), &device)
            && moments_f32;
        if !on_cpu {
            return self.fallback.step(lr, tensor, grad, state);
        }
        let shape = tensor.shape();
        let rebuild =
            |values: Vec<f32>| Tensor::from_data(TensorData::new(values, shape.clone()), &device);
        let mut parameter = match host_values(tensor) {
            Ok(values) => values,
            Err(data) => {
                let tensor = Tensor::from_data(*data, &device);
                return self.fallback.step(lr, tensor, grad, state);
            }
        };
        let grad = match host_values(grad) {
            Ok(values) => values,
            Err(data) => {
                let grad = Tensor::from_data(*data, &device);
                return self.fallback.step(lr, rebuild(parameter), grad, state);
            }
        };
        let count = grad.len();
        let (time, mut moment_1, mut moment_2) = match state {
            // Moments that cannot be read (not expected once their dtype is checked) restart
            // from zero, as on a first step, rather than stop the run.
            Some(state) => (
                state.momentum.time + 1,
                host_values(state.momentum.moment_1).unwrap_or_else(|_| vec![0.0; count]),
                host_values(state.momentum.moment_2).unwrap_or_else(|_| vec![0.0; count]),
            ),
            None => (1, vec![0.0; count], vec![0.0; count]),
        };
        // burn's Adam, step for step: the first step's moments start from the gradient alone,
        // which is what decaying zeros gives too.
        let bias_correction_2 = (1.0 - BETA_2.powi(time as i32)).sqrt();
        let combined = bias_correction_2 / (1.0 - BETA_1.powi(time as i32));
        let epsilon = EPSILON * bias_correction_2;
        let rate = lr as f32;
        parameter
            .par_chunks_mut(CHUNK)
            .zip(moment_1.par_chunks_mut(CHUNK))
            .zip(moment_2.par_chunks_mut(CHUNK))
            .zip(grad.par_chunks(CHUNK))
            .for_each(|(((parameter, moment_1), moment_2), grad)| {
                vectorized(|| {
                    for (((p, m), v), &g) in parameter
                        .iter_mut()
                        .zip(moment_1.iter_mut())
                        .zip(moment_2.iter_mut())
                        .zip(grad)
                    {
                        *m = *m * BETA_1 + g * (1.0 - BETA_1);
                        *v = *v * BETA_2 + g * g * (1.0 - BETA_2);
                        let step = *m * combined / (v.sqrt() + epsilon);
                        *p -= step * rate;
                    }
                })
            });
        let momentum = AdaptiveMomentumState::new(time, rebuild(moment_1), rebuild(moment_2));
        (rebuild(parameter), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <burn::optim::Adam as Optimizer>::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::model::cpu_kernels::max_difference;

    #[test]
    fn it_follows_burns_adam_step_by_step() {
        let device = Device::flex();
        let ours = FusedAdam {
            fallback: AdamConfig::new().build(),
        };
        let burns = AdamConfig::new().build();
        let start: Tensor<2> = Tensor::random([70, 300], Distribution::Normal(0.0, 1.0), &device);
        let (mut a, mut b) = (start.clone(), start);
        let (mut state_a, mut state_b) = (None, None);
        for step in 0..4 {
            let grad: Tensor<2> = Tensor::random(
                [70, 300],
                Distribution::Normal(0.0, 1.0 + step as f64),
                &device,
            );
            (a, state_a) = ours.step(0.01, a, grad.clone(), state_a);
            (b, state_b) = burns.step(0.01, b, grad, state_b);
        }
        assert!(max_difference(a, b) < 1e-6);
        let (Some(state_a), Some(state_b)) = (state_a, state_b) else {
            panic!("states");
        };
        assert_eq!(state_a.momentum.time, state_b.momentum.time);
        let (ours, burns) = (state_a.momentum, state_b.momentum);
        assert!(max_difference(ours.moment_1, burns.moment_1) < 1e-6);
        assert!(max_difference(ours.moment_2, burns.moment_2) < 1e-6);
    }
}
