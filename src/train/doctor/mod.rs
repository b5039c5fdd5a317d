//! The device doctor: what this machine offers for training — every wgpu adapter, the Vulkan
//! loader and its driver files, signs of an NVIDIA driver —, which device `auto` picks and why,
//! the exact fix when no GPU is usable, and a short training bench per device whose record lets
//! `auto` choose between a GPU and the CPU by evidence. Headless: `kiln doctor` and the window's
//! Devices tab are shells over it.

mod agreement;
mod autotune;
mod bench;
mod bench_all;
mod evidence;
mod fix;
mod nvidia;
mod records;
mod report;
mod runtimes;
mod vulkan;
mod workloads;

pub use agreement::{StepAgreement, TOLERANCE, compare_step};
pub use autotune::AutotuneCache;
pub use bench::{BenchLimits, STOPPED, WorkloadResult, run_workload};
pub use bench_all::{
    BenchProgress, BenchTarget, DeviceBench, Skipped, WorkloadOutcome, bench_and_record,
    bench_targets, bench_targets_on, run_bench, wgpu_targets,
};
pub use evidence::{Comparison, ModelCost, compare_devices, seconds_per_sample};
pub use fix::{BENCH_FAILED_EXIT_CODE, Findings, Health, MESA_PACKAGES, Verdict, verdict};
pub use nvidia::NvidiaDriver;
pub use records::{
    BenchRecords, DeviceRecord, RECORDS_FILE, RecordsError, cpu_key, gpu_key, records_path,
};
pub use report::{AutoForModel, BenchSection, DoctorReport, auto_by_model, diagnose};
pub use runtimes::device_for;
pub use vulkan::{DriverFile, DriverOverride, LOADER_NAME, VulkanReport, search_path};
pub use workloads::{DEFAULT_WORKLOADS, LAUNCH_WORKLOAD, ModelFamily, Workload, catalogue, named};
