//! The doctor bench: a few hundred training steps of each workload on each usable device, timed
//! three ways — the first step of the process (kernel compilation and burn's autotune), the
//! steady step (many steps, one synchronisation per chunk), and the first step of a fresh model
//! of the same shapes afterwards (kernels compiled and autotune results warm).
//!
//! This is the bare loop (model, Adam, data already on the device), the same per-step work as
//! the engine's without its events, logs and checkpoints.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::workloads::{ModelFamily, Workload};
use crate::model::Network;
use crate::model::cpu_kernels::cross_entropy;

/// Distinct batches cycled through, so a step never reuses the previous step's input.
const BATCHES_IN_POOL: usize = 4;
/// Steps after the first and before timing: the last shapes' autotune settles here.
const WARMUP_STEPS: usize = 5;
/// Steps between synchronisations while timing (a read of the loss waits for the device).
const STEPS_PER_SYNC: usize = 25;

/// One workload timed on one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadResult {
    pub workload: String,
    pub description: String,
    pub family: ModelFamily,
    pub batch: usize,
    pub training_flops_per_sample: f64,
    /// Steps in the steady-state timing.
    pub steps: usize,
    /// The process's first step: kernel compilation and autotune included.
    pub first_step_secs: f64,
    /// The first step of a second model of the same shapes: compiled kernels and autotune
    /// results are reused.
    pub warm_first_step_secs: f64,
    /// Steady-state seconds per step.
    pub step_secs: f64,
    pub samples_per_sec: f64,
    /// The last loss read; finite, or the device computes garbage.
    pub final_loss: f64,
}

impl WorkloadResult {
    /// Floating-point operations of one step.
    pub fn step_flops(&self) -> f64 {
        self.training_flops_per_sample * self.batch as f64
    }

    /// Achieved arithmetic rate.
    pub fn gflops(&self) -> f64 {
        self.step_flops() / self.step_secs.max(1e-12) / 1e9
    }
}

/// How long and how far each workload runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchLimits {
    /// Steps timed in the steady state (fewer when the time budget runs out first).
    pub steps: usize,
    /// Wall time for the steady-state part of one workload on one device.
    pub budget: Duration,
}

impl Default for BenchLimits {
    fn default() -> Self {
        Self {
            steps: 300,
            budget: Duration::from_secs(20),
        }
    }
}

/// Trains `workload` on `device` and times it; `progress` gets the steps done so far out of the
/// most that will run. A failed or panicking device is an error, not a crash. It runs on the
/// threads a training run uses (a pool of its own), so the CPU's figure is what training gets.
pub fn run_workload(
    device: &Device,
    workload: &Workload,
    limits: BenchLimits,
    progress: &mut (dyn FnMut(usize, usize) + Send),
    stop: &AtomicBool,
) -> Result<WorkloadResult, String> {
    crate::train::threads::in_training_pool(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            timed(device, workload, limits, progress, stop)
        }))
    })
    .unwrap_or_else(|payload| {
        let text = payload
            .downcast_ref::<&str>()
            .map(|t| t.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_string());
        Err(format!("training panicked: {text}"))
    })
}

/// The error when a stop was asked for.
pub const STOPPED: &str = "stopped";

fn timed(
    device: &Device,
    workload: &Workload,
    limits: BenchLimits,
    progress: &mut (dyn FnMut(usize, usize) + Send),
    stop: &AtomicBool,
) -> Result<WorkloadResult, String> {
    let train_device = device.clone().autodiff();
    let total = 1 + WARMUP_STEPS + limits.steps + 1;
    let mut trainer = Trainer::new(workload, &train_device)?;

    let started = Instant::now();
    let first_loss = trainer.step(0).into_scalar::<f32>();
    let first_step_secs = started.elapsed().as_secs_f64();
    progress(1, total);

    let mut loss = None;
    for step in 1..=WARMUP_STEPS {
        loss = Some(trainer.step(step));
    }
    let _ = loss.map(|l| l.into_scalar::<f32>());
    progress(1 + WARMUP_STEPS, total);

    let started = Instant::now();
    let mut steps = 0;
    let mut final_loss = first_loss as f64;
    while steps < limits.steps {
        if stop.load(Ordering::SeqCst) {
            return Err(STOPPED.to_string());
        }
        let chunk = STEPS_PER_SYNC.min(limits.steps - steps);
        let mut last = None;
        for offset in 0..chunk {
            last = Some(trainer.step(steps + offset));
        }
        if let Some(last) = last {
            final_loss = last.into_scalar::<f32>() as f64;
        }
        steps += chunk;
        progress(1 + WARMUP_STEPS + steps, total);
        if started.elapsed() >= limits.budget {
            break;
        }
    }
    let step_secs = started.elapsed().as_secs_f64() / steps.max(1) as f64;

    // A fresh model of the same shapes: what a second run in the same process pays.
    let mut fresh = Trainer::new(workload, &train_device)?;
    let started = Instant::now();
    let _ = fresh.step(0).into_scalar::<f32>();
    let warm_first_step_secs = started.elapsed().as_secs_f64();
    progress(total, total);

    if !final_loss.is_finite() {
        return Err(format!("the loss became {final_loss}"));
    }
    Ok(WorkloadResult {
        workload: workload.id.to_string(),
        description: workload.describe(),
        family: workload.family(),
        batch: workload.batch,
        training_flops_per_sample: workload.training_flops_per_sample(),
        steps,
        first_step_secs,
        warm_first_step_secs,
        step_secs,
        samples_per_sec: workload.batch as f64 / step_secs.max(1e-12),
        final_loss,
    })
}

/// A model, its optimiser and a pool of random batches on the training device.
struct Trainer {
    model: Network,
    optimizer: burn::optim::ModuleOptimizer,
    inputs: Tensor<2>,
    labels: Tensor<1, Int>,
    batch: usize,
}

impl Trainer {
    fn new(workload: &Workload, device: &Device) -> Result<Self, String> {
        let rows = workload.batch * BATCHES_IN_POOL;
        let width = workload.input.width();
        let mut rng = StdRng::seed_from_u64(7);
        let inputs: Vec<f32> = (0..rows * width).map(|_| rng.random::<f32>()).collect();
        let labels: Vec<i64> = (0..rows)
            .map(|_| rng.random_range(0..workload.classes as i64))
            .collect();
        Ok(Self {
            model: Network::new(&workload.model, &workload.input, workload.classes, device)?,
            optimizer: crate::train::adam(),
            inputs: Tensor::from_data(TensorData::new(inputs, [rows, width]), device),
            labels: Tensor::from_data(TensorData::new(labels, [rows]), device),
            batch: workload.batch,
        })
    }

    /// One optimisation step on batch `step` of the pool; the loss stays on the device.
    fn step(&mut self, step: usize) -> Tensor<1> {
        let start = (step % BATCHES_IN_POOL) * self.batch;
        let end = start + self.batch;
        let output = self
            .model
            .forward(self.inputs.clone().slice(start..end), true);
        let (loss, _) = cross_entropy(output, self.labels.clone().slice(start..end));
        let value = loss.clone().inner();
        self.model.step(&mut self.optimizer, 1e-3, loss.backward());
        value
    }
}
