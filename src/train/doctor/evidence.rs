//! `auto` choosing by evidence: from the bench record, how long one training sample of *this*
//! model would take on the GPU and on the CPU.
//!
//! A step costs a fixed part (kernel launches and synchronisation, timed by the tiny `launch`
//! workload) plus arithmetic at the rate the device reached on the benched workload of the same
//! family (MLP or CNN) closest in size. A GPU's fixed part is large and its rate high, so a small
//! model with a small batch (iris, batch 16) can be faster on the CPU while a wide one is faster
//! on the GPU: comparing the measured rates alone, without the fixed part, would give every
//! model the same answer.

use super::records::{BenchRecords, DeviceRecord, cpu_key, gpu_key};
use super::workloads::{LAUNCH_WORKLOAD, ModelFamily};
use crate::data::InputShape;
use crate::model::ModelConfig;
use crate::train::AdapterSummary;

/// The arithmetic part of a benched step is at least this share of it: timing noise must not
/// make the launch overhead swallow the whole step and the device look infinitely fast. Small,
/// because on a GPU a benched step can really be almost all launch overhead.
const MIN_COMPUTE_SHARE: f64 = 0.01;

/// What one training step of the model at hand costs in arithmetic.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCost {
    pub family: ModelFamily,
    pub training_flops_per_sample: f64,
    pub batch: usize,
}

impl ModelCost {
    pub fn of(model: &ModelConfig, input: &InputShape, outputs: usize, batch: usize) -> Self {
        Self {
            family: ModelFamily::of(model),
            training_flops_per_sample: model.training_flops_per_sample(input, outputs),
            batch: batch.max(1),
        }
    }
}

/// Estimated seconds per training sample of a model on one recorded device.
pub fn seconds_per_sample(record: &DeviceRecord, cost: &ModelCost) -> Option<f64> {
    let launch_secs = record
        .results
        .iter()
        .find(|r| r.workload == LAUNCH_WORKLOAD)
        .map_or(0.0, |r| r.step_secs);
    let step_flops = cost.training_flops_per_sample * cost.batch as f64;
    let size_gap = |flops: f64| (flops.max(1.0) / step_flops.max(1.0)).ln().abs();
    let candidates = || {
        record
            .results
            .iter()
            .filter(|r| r.workload != LAUNCH_WORKLOAD && r.step_secs > 0.0)
    };
    // The benched workload most like this model: same family if any, then closest in size.
    let reference = candidates()
        .filter(|r| r.family == cost.family)
        .min_by(|a, b| size_gap(a.step_flops()).total_cmp(&size_gap(b.step_flops())))
        .or_else(|| {
            candidates()
                .min_by(|a, b| size_gap(a.step_flops()).total_cmp(&size_gap(b.step_flops())))
        })?;
    let compute_secs =
        (reference.step_secs - launch_secs).max(reference.step_secs * MIN_COMPUTE_SHARE);
    let secs_per_flop = compute_secs / reference.step_flops().max(1.0);
    Some((launch_secs + step_flops * secs_per_flop) / cost.batch as f64)
}

/// The GPU against the CPU for one model, from their bench records.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub gpu: String,
    pub gpu_secs_per_sample: f64,
    pub cpu_secs_per_sample: f64,
    /// When the GPU's record was measured (RFC 3339).
    pub measured: String,
}

impl Comparison {
    pub fn cpu_is_faster(&self) -> bool {
        self.cpu_secs_per_sample < self.gpu_secs_per_sample
    }

    /// One sentence for the run's device line.
    pub fn explain(&self) -> String {
        let date = self.measured.get(..10).unwrap_or(&self.measured);
        let (gpu, cpu) = (
            micros(self.gpu_secs_per_sample),
            micros(self.cpu_secs_per_sample),
        );
        if self.cpu_is_faster() {
            format!(
                "the CPU is faster than the GPU {} for this model by the doctor bench of {date} (about {cpu} per sample against {gpu})",
                self.gpu
            )
        } else {
            format!(
                "the GPU {} is faster than the CPU for this model by the doctor bench of {date} (about {gpu} per sample against {cpu})",
                self.gpu
            )
        }
    }
}

fn micros(secs: f64) -> String {
    let us = secs * 1e6;
    if us >= 100.0 {
        format!("{us:.0} µs")
    } else if us >= 1.0 {
        format!("{us:.1} µs")
    } else {
        format!("{us:.3} µs")
    }
}

/// Compares the GPU `adapter` with this machine's CPU for the model, when the record holds both.
pub fn compare_devices(
    records: &BenchRecords,
    adapter: &AdapterSummary,
    cost: &ModelCost,
) -> Option<Comparison> {
    let gpu = records.find(&gpu_key(adapter))?;
    let cpu = records.find(&cpu_key())?;
    Some(Comparison {
        gpu: adapter.name.clone(),
        gpu_secs_per_sample: seconds_per_sample(gpu, cost)?,
        cpu_secs_per_sample: seconds_per_sample(cpu, cost)?,
        measured: gpu.measured.clone(),
    })
}
