//! Does wgpu compute what the CPU computes? One training step of the same model, from the same
//! weights on the same batch, on burn's flex backend and on wgpu, compared number by number.
//!
//! The step is taken twice: with plain SGD at learning rate 1, so each weight moves by exactly
//! its gradient and the weights' largest difference is the gradients' largest difference; and
//! with Adam as Kiln trains, whose first step moves every weight by about ±lr whatever the
//! gradient's size (so a gradient near zero can flip its move: up to 2×lr apart).

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::workloads::Workload;
use crate::model::{ModelConfig, Network};

/// A model's weight tensors by name, as `f32` values.
type NamedWeights = Vec<(String, Vec<f32>)>;

/// Largest difference in outputs, loss and gradients accepted as the same result in f32.
pub const TOLERANCE: f64 = 1e-3;
const ADAM_LEARNING_RATE: f64 = 1e-3;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepAgreement {
    pub workload: String,
    pub description: String,
    pub wgpu_adapter: String,
    pub loss_cpu: f64,
    pub loss_wgpu: f64,
    /// Largest difference of the outputs (logits) before the step.
    pub outputs_max_diff: f64,
    /// Largest difference of the gradients (weights after one SGD step at learning rate 1; for
    /// batch-norm, its running statistics after the step).
    pub gradients_max_diff: f64,
    /// The tensor where they differ most.
    pub gradients_worst_tensor: String,
    /// Largest difference of the weights after one Adam step (learning rate 1e-3).
    pub adam_weights_max_diff: f64,
    pub tolerance: f64,
    pub agrees: bool,
}

/// Runs one step of `workload`'s model (with dropout off, whose random masks differ between
/// devices) on the CPU and on `wgpu`, and compares.
pub fn compare_step(
    workload: &Workload,
    wgpu: &Device,
    wgpu_adapter: &str,
) -> Result<StepAgreement, String> {
    let model = without_dropout(&workload.model);
    let cpu = Device::flex().autodiff();
    let gpu = wgpu.clone().autodiff();
    cpu.seed(11);
    let initial = Network::new(&model, &workload.input, workload.classes, &cpu)?;
    let weights = initial.to_burnpack()?;
    let (inputs, labels) = batch(workload);

    let on_cpu = Side::new(&model, workload, weights.clone(), &cpu, &inputs, &labels)?;
    let on_gpu = Side::new(&model, workload, weights.clone(), &gpu, &inputs, &labels)?;
    let outputs_max_diff = max_diff(&on_cpu.outputs()?, &on_gpu.outputs()?);
    let (loss_cpu, sgd_cpu) = on_cpu.step(SgdConfig::new().init(), 1.0)?;
    let (loss_wgpu, sgd_gpu) = on_gpu.step(SgdConfig::new().init(), 1.0)?;
    let (gradients_max_diff, gradients_worst_tensor) = largest_difference(&sgd_cpu, &sgd_gpu)?;

    let on_cpu = Side::new(&model, workload, weights.clone(), &cpu, &inputs, &labels)?;
    let on_gpu = Side::new(&model, workload, weights, &gpu, &inputs, &labels)?;
    let (_, adam_cpu) = on_cpu.step(AdamConfig::new().init(), ADAM_LEARNING_RATE)?;
    let (_, adam_gpu) = on_gpu.step(AdamConfig::new().init(), ADAM_LEARNING_RATE)?;
    let (adam_weights_max_diff, _) = largest_difference(&adam_cpu, &adam_gpu)?;

    let loss_diff = (loss_cpu - loss_wgpu).abs();
    Ok(StepAgreement {
        workload: workload.id.to_string(),
        description: Workload {
            model,
            ..workload.clone()
        }
        .describe(),
        wgpu_adapter: wgpu_adapter.to_string(),
        loss_cpu,
        loss_wgpu,
        outputs_max_diff,
        gradients_max_diff,
        gradients_worst_tensor,
        adam_weights_max_diff,
        tolerance: TOLERANCE,
        agrees: outputs_max_diff <= TOLERANCE
            && loss_diff <= TOLERANCE
            && gradients_max_diff <= TOLERANCE,
    })
}

fn without_dropout(model: &ModelConfig) -> ModelConfig {
    let mut model = model.clone();
    match &mut model {
        ModelConfig::Mlp(mlp) => mlp.dropout = 0.0,
        ModelConfig::Cnn(cnn) => cnn.dropout = 0.0,
    }
    model
}

fn batch(workload: &Workload) -> (Vec<f32>, Vec<i64>) {
    let mut rng = StdRng::seed_from_u64(5);
    let inputs = (0..workload.batch * workload.input.width())
        .map(|_| rng.random::<f32>())
        .collect();
    let labels = (0..workload.batch)
        .map(|_| rng.random_range(0..workload.classes as i64))
        .collect();
    (inputs, labels)
}

/// One device's copy of the model and the batch.
struct Side {
    model: Network,
    inputs: Tensor<2>,
    labels: Tensor<1, Int>,
    device: Device,
}

impl Side {
    fn new(
        model: &ModelConfig,
        workload: &Workload,
        weights: Vec<u8>,
        device: &Device,
        inputs: &[f32],
        labels: &[i64],
    ) -> Result<Self, String> {
        let rows = labels.len();
        Ok(Self {
            model: Network::from_burnpack(
                model,
                &workload.input,
                workload.classes,
                weights,
                device,
            )?,
            inputs: Tensor::from_data(
                TensorData::new(inputs.to_vec(), [rows, workload.input.width()]),
                device,
            ),
            labels: Tensor::from_data(TensorData::new(labels.to_vec(), [rows]), device),
            device: device.clone(),
        })
    }

    fn outputs(&self) -> Result<Vec<f32>, String> {
        self.model
            .forward(self.inputs.clone(), true)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|error| format!("{error:?}"))
    }

    /// The loss before the step, and the weights after it.
    fn step(
        mut self,
        mut optimizer: ModuleOptimizer,
        learning_rate: f64,
    ) -> Result<(f64, NamedWeights), String> {
        let outputs = self.model.forward(self.inputs.clone(), true);
        let loss = CrossEntropyLossConfig::new()
            .init(&self.device)
            .forward(outputs, self.labels.clone());
        let value = loss.clone().into_scalar::<f32>() as f64;
        self.model
            .step(&mut optimizer, learning_rate, loss.backward());
        Ok((value, self.model.parameters()?))
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
}

fn largest_difference(a: &NamedWeights, b: &NamedWeights) -> Result<(f64, String), String> {
    let mut worst = (0.0, String::new());
    for (name, values) in a {
        let other = b
            .iter()
            .find(|(other, _)| other == name)
            .ok_or_else(|| format!("{name} is missing from the wgpu model"))?;
        let diff = max_diff(values, &other.1);
        if diff >= worst.0 {
            worst = (diff, name.clone());
        }
    }
    Ok(worst)
}
