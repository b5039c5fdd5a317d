//! The bench over every usable device: which devices count, the run with its progress, and the
//! record it leaves for `auto`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;
use serde::Serialize;

use super::bench::{BenchLimits, WorkloadResult, run_workload};
use super::records::{BenchRecords, DeviceRecord, cpu_key, gpu_key};
use super::report::BenchSection;
use super::runtimes::device_for;
use super::workloads::Workload;
use crate::train::AdapterSummary;
use crate::train::device::{cpu_description, wgpu_adapters};

/// A device the bench will time.
#[derive(Debug, Clone)]
pub struct BenchTarget {
    pub key: String,
    /// `cpu` or `wgpu`.
    pub backend: String,
    pub label: String,
    pub software: bool,
    pub adapter: Option<AdapterSummary>,
}

/// A device left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub label: String,
    pub why: String,
}

/// The CPU, and each wgpu adapter that `auto` or `--device wgpu` could train on.
pub fn bench_targets() -> (Vec<BenchTarget>, Vec<Skipped>) {
    let cpu = BenchTarget {
        key: cpu_key(),
        backend: "cpu".to_string(),
        label: cpu_description(),
        software: false,
        adapter: None,
    };
    let (gpus, skipped) = wgpu_targets(wgpu_adapters());
    (std::iter::once(cpu).chain(gpus).collect(), skipped)
}

/// The adapters worth timing, and why the others are not: an OpenGL adapter where Vulkan has a
/// GPU, or where both offer only software (burn takes Vulkan first: OpenGL is its fallback for a
/// GPU that only OpenGL reaches), and software adapters where a GPU exists (never chosen then,
/// and slow to time).
pub fn wgpu_targets(adapters: &[AdapterSummary]) -> (Vec<BenchTarget>, Vec<Skipped>) {
    let vulkan_gpu = adapters
        .iter()
        .any(|a| a.backend == "Vulkan" && !a.software);
    let vulkan_any = adapters.iter().any(|a| a.backend == "Vulkan");
    let has_hardware = adapters.iter().any(|a| !a.software);
    let mut targets: Vec<BenchTarget> = Vec::new();
    let mut skipped = Vec::new();
    for adapter in adapters {
        let why = if adapter.backend == "Gl" && (vulkan_gpu || (adapter.software && vulkan_any)) {
            Some("burn uses Vulkan where it has adapters; OpenGL is its fallback")
        } else if adapter.software && has_hardware {
            Some("a software adapter is never chosen while there is a GPU")
        } else {
            None
        };
        let key = gpu_key(adapter);
        if let Some(why) = why {
            skipped.push(Skipped {
                label: adapter.describe(),
                why: why.to_string(),
            });
        } else if !targets.iter().any(|t| t.key == key) {
            targets.push(BenchTarget {
                key,
                backend: "wgpu".to_string(),
                label: adapter.describe(),
                software: adapter.software,
                adapter: Some(adapter.clone()),
            });
        }
    }
    (targets, skipped)
}

/// [`bench_targets`] limited to one backend (`cpu` or `wgpu`) when `only` names one; the others
/// are listed as skipped.
pub fn bench_targets_on(only: Option<&str>) -> (Vec<BenchTarget>, Vec<Skipped>) {
    let (targets, mut skipped) = bench_targets();
    let Some(backend) = only else {
        return (targets, skipped);
    };
    let (kept, left_out): (Vec<BenchTarget>, Vec<BenchTarget>) =
        targets.into_iter().partition(|t| t.backend == backend);
    skipped.extend(left_out.into_iter().map(|target| Skipped {
        label: target.label,
        why: format!("only {backend} devices were asked for"),
    }));
    (kept, skipped)
}

/// One device's bench.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceBench {
    pub key: String,
    pub backend: String,
    pub label: String,
    pub software: bool,
    /// Why the device could not be used at all.
    pub error: Option<String>,
    pub results: Vec<WorkloadOutcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadOutcome {
    pub workload: String,
    pub result: Result<WorkloadResult, String>,
}

impl DeviceBench {
    /// What the record keeps: the workloads that ran, when any did.
    pub fn record(&self, measured: &str) -> Option<DeviceRecord> {
        let results: Vec<WorkloadResult> = self
            .results
            .iter()
            .filter_map(|outcome| outcome.result.clone().ok())
            .collect();
        (!results.is_empty()).then(|| DeviceRecord {
            key: self.key.clone(),
            backend: self.backend.clone(),
            label: self.label.clone(),
            software: self.software,
            measured: measured.to_string(),
            kiln_version: env!("CARGO_PKG_VERSION").to_string(),
            results,
        })
    }

    pub fn failures(&self) -> usize {
        usize::from(self.error.is_some())
            + self.results.iter().filter(|o| o.result.is_err()).count()
    }
}

/// Where the bench is, for a progress bar.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchProgress {
    pub device: String,
    pub workload: String,
    /// Of the whole bench, 0 to 1.
    pub fraction: f32,
}

/// Times every workload on every target, in order; `progress` is called as steps complete.
pub fn run_bench(
    targets: &[BenchTarget],
    workloads: &[Workload],
    limits: BenchLimits,
    progress: &mut (dyn FnMut(&BenchProgress) + Send),
    stop: &AtomicBool,
) -> Vec<DeviceBench> {
    let parts = (targets.len() * workloads.len()).max(1) as f32;
    let mut benches = Vec::new();
    for (t, target) in targets.iter().enumerate() {
        let mut bench = DeviceBench {
            key: target.key.clone(),
            backend: target.backend.clone(),
            label: target.label.clone(),
            software: target.software,
            error: None,
            results: Vec::new(),
        };
        let device = match &target.adapter {
            None => Ok(Device::flex()),
            Some(adapter) => device_for(adapter),
        };
        match device {
            Err(error) => bench.error = Some(error),
            Ok(device) => {
                for (w, workload) in workloads.iter().enumerate() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let done_before = (t * workloads.len() + w) as f32;
                    let mut report = |done: usize, total: usize| {
                        progress(&BenchProgress {
                            device: target.label.clone(),
                            workload: workload.describe(),
                            fraction: (done_before + done as f32 / total.max(1) as f32) / parts,
                        })
                    };
                    let result = run_workload(&device, workload, limits, &mut report, stop);
                    bench.results.push(WorkloadOutcome {
                        workload: workload.id.to_string(),
                        result,
                    });
                }
            }
        }
        benches.push(bench);
    }
    benches
}

/// Benches the targets (see [`bench_targets`]) and, unless `record_to` is `None`, merges what
/// ran into the record there.
pub fn bench_and_record(
    (targets, skipped): (Vec<BenchTarget>, Vec<Skipped>),
    workloads: &[Workload],
    limits: BenchLimits,
    record_to: Option<&Path>,
    progress: &mut (dyn FnMut(&BenchProgress) + Send),
    stop: &AtomicBool,
) -> BenchSection {
    let devices = run_bench(&targets, workloads, limits, progress, stop);
    let record = match record_to {
        None => Err("not written: asked not to".to_string()),
        Some(path) => write_records(path, &devices),
    };
    BenchSection::new(limits, devices, skipped, record)
}

fn write_records(path: &Path, devices: &[DeviceBench]) -> Result<PathBuf, String> {
    // An unreadable old record is replaced rather than blocking a new one.
    let mut records = BenchRecords::load(path).unwrap_or_default();
    let now = chrono::Utc::now().to_rfc3339();
    for device in devices {
        if let Some(record) = device.record(&now) {
            records.upsert(record);
        }
    }
    records
        .save(path)
        .map(|()| path.to_path_buf())
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, backend: &str, software: bool) -> AdapterSummary {
        AdapterSummary {
            name: name.to_string(),
            backend: backend.to_string(),
            software,
            vendor: if software { 0x10005 } else { 0x10de },
            device: 0,
            device_type: if software { "Cpu" } else { "DiscreteGpu" }.to_string(),
            driver: String::new(),
            driver_info: String::new(),
        }
    }

    fn names(targets: &[BenchTarget]) -> Vec<String> {
        targets.iter().map(|t| t.label.clone()).collect()
    }

    #[test]
    fn a_gpu_on_vulkan_is_timed_and_its_opengl_twin_and_lavapipe_are_not() {
        let (targets, skipped) = wgpu_targets(&[
            adapter("H100", "Vulkan", false),
            adapter("llvmpipe", "Vulkan", true),
            adapter("H100", "Gl", false),
        ]);
        assert_eq!(names(&targets), ["H100 (Vulkan, GPU)"]);
        assert_eq!(skipped.len(), 2);
    }

    #[test]
    fn a_gpu_only_opengl_reaches_is_timed_beside_vulkan_software() {
        let (targets, _) = wgpu_targets(&[
            adapter("llvmpipe", "Vulkan", true),
            adapter("Passed-through GPU", "Gl", false),
        ]);
        assert_eq!(names(&targets), ["Passed-through GPU (Gl, GPU)"]);
    }

    #[test]
    fn software_only_machines_time_lavapipe_on_vulkan_alone() {
        let (targets, skipped) = wgpu_targets(&[
            adapter("llvmpipe", "Vulkan", true),
            adapter("llvmpipe", "Gl", true),
        ]);
        assert_eq!(names(&targets), ["llvmpipe (Vulkan, software)"]);
        assert_eq!(skipped[0].label, "llvmpipe (Gl, software)");
    }
}
