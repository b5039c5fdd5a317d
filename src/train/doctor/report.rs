//! The doctor's whole report: gathered once, printed by the CLI (text or JSON) and drawn by the
//! window's Devices tab.

use std::path::PathBuf;

use serde::Serialize;

use super::autotune::{self, AutotuneCache};
use super::bench::BenchLimits;
use super::bench_all::{DeviceBench, Skipped};
use super::evidence::{ModelCost, compare_devices};
use super::fix::{BENCH_FAILED_EXIT_CODE, Findings, Health, Verdict, verdict};
use super::nvidia::{self, NvidiaDriver};
use super::records::{BenchRecords, records_path};
use super::vulkan::{self, VulkanReport};
use super::workloads::{LAUNCH_WORKLOAD, catalogue};
use crate::data::InputShape;
use crate::model::{MlpConfig, ModelConfig};
use crate::train::device::{wgpu_adapters, wgpu_device};
use crate::train::{AdapterSummary, DeviceChoice, DeviceError, DeviceInfo, resolve};

/// Environment variables that change what wgpu, cubecl or the Vulkan loader do.
const RELEVANT_PREFIXES: [&str; 6] = [
    "VK_",
    "CUBECL_",
    "WGPU_",
    "NVIDIA_",
    "__EGL_VENDOR",
    "KILN_CACHE_DIR",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoctorReport {
    pub kiln_version: String,
    pub burn_version: String,
    /// Every adapter wgpu enumerates, over all graphics APIs.
    pub adapters: Vec<AdapterSummary>,
    /// burn's default wgpu runtime (what `--device wgpu` uses): the adapter it started on…
    pub wgpu_adapter: Option<AdapterSummary>,
    /// …or why it did not start.
    pub wgpu_error: Option<String>,
    /// What `auto` picks for a model it knows nothing about, and why.
    pub auto: DeviceInfo,
    /// What `auto` picks for particular models, by the bench record (GPU machines with a record
    /// for both the GPU and the CPU).
    pub auto_by_model: Vec<AutoForModel>,
    pub vulkan: VulkanReport,
    pub nvidia: Option<NvidiaDriver>,
    /// Variables set in this process that steer wgpu, cubecl or the Vulkan loader.
    pub environment: Vec<(String, String)>,
    pub autotune: AutotuneCache,
    pub records_path: PathBuf,
    pub records: Option<BenchRecords>,
    pub records_error: Option<String>,
    pub verdict: Verdict,
    pub bench: Option<BenchSection>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AutoForModel {
    pub model: String,
    pub device: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchSection {
    pub steps: usize,
    pub budget_secs: f64,
    pub devices: Vec<DeviceBench>,
    pub skipped: Vec<Skipped>,
    /// Where the record was written, or why it was not.
    pub record: Result<PathBuf, String>,
}

impl BenchSection {
    pub fn new(
        limits: BenchLimits,
        devices: Vec<DeviceBench>,
        skipped: Vec<Skipped>,
        record: Result<PathBuf, String>,
    ) -> Self {
        Self {
            steps: limits.steps,
            budget_secs: limits.budget.as_secs_f64(),
            devices,
            skipped,
            record,
        }
    }
}

impl DoctorReport {
    /// 0: a hardware GPU is usable; 3: no usable GPU (training runs on the CPU; a fix is named);
    /// 4: a GPU is there but failed to start; 5: a bench workload failed on some device.
    pub fn exit_code(&self) -> u8 {
        let health = self.verdict.health.exit_code();
        let bench_failed = self
            .bench
            .as_ref()
            .is_some_and(|bench| bench.devices.iter().any(|d| d.failures() > 0));
        if health == 0 && bench_failed {
            BENCH_FAILED_EXIT_CODE
        } else {
            health
        }
    }

    /// The report with a bench's results; the record it wrote changes `auto`'s picks per model.
    pub fn with_bench(mut self, bench: BenchSection) -> Self {
        match BenchRecords::load(&self.records_path) {
            Ok(records) => {
                self.records = Some(records);
                self.records_error = None;
            }
            Err(error) => self.records_error = Some(error.to_string()),
        }
        self.auto_by_model = match (&self.wgpu_adapter, &self.records) {
            (Some(adapter), Some(records)) if !adapter.software => auto_by_model(records, adapter),
            _ => Vec::new(),
        };
        self.bench = Some(bench);
        self
    }

    pub fn gpu_ready(&self) -> bool {
        self.verdict.health == Health::GpuReady
    }
}

/// Looks at everything. Starts burn's default wgpu runtime (to know whether it starts), so call
/// it off a UI thread.
pub fn diagnose() -> DoctorReport {
    let adapters = wgpu_adapters().to_vec();
    let runtime: Result<AdapterSummary, String> = wgpu_device()
        .map(|(_, adapter)| adapter)
        .map_err(|DeviceError::Wgpu(message)| message);
    let vulkan = vulkan::inspect();
    let nvidia = nvidia::inspect();
    let verdict = verdict(&Findings {
        adapters: &adapters,
        runtime: match &runtime {
            Ok(adapter) => Ok(adapter),
            Err(error) => Err(error.as_str()),
        },
        vulkan: &vulkan,
        nvidia: nvidia.as_ref(),
    });
    let auto = match resolve(DeviceChoice::Auto) {
        Ok(resolved) => resolved.info,
        Err(error) => DeviceInfo {
            backend: "none".to_string(),
            adapter: String::new(),
            reason: error.to_string(),
        },
    };
    let path = records_path();
    let (records, records_error) = match BenchRecords::load(&path) {
        Ok(records) => (Some(records), None),
        Err(error) => (None, Some(error.to_string())),
    };
    let auto_by_model = match (&runtime, &records) {
        (Ok(adapter), Some(records)) if !adapter.software => auto_by_model(records, adapter),
        _ => Vec::new(),
    };
    let mut environment: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| RELEVANT_PREFIXES.iter().any(|p| name.starts_with(p)))
        .collect();
    environment.sort();
    DoctorReport {
        kiln_version: env!("CARGO_PKG_VERSION").to_string(),
        burn_version: crate::BURN_VERSION.to_string(),
        adapters,
        wgpu_adapter: runtime.as_ref().ok().cloned(),
        wgpu_error: runtime.err(),
        auto,
        auto_by_model,
        vulkan,
        nvidia,
        environment,
        autotune: autotune::inspect(),
        records_path: path,
        records,
        records_error,
        verdict,
        bench: None,
    }
}

/// `auto`'s pick for each benched model and for a small table model (iris with Kiln's default
/// MLP), where the record holds both the GPU and the CPU.
pub fn auto_by_model(records: &BenchRecords, gpu: &AdapterSummary) -> Vec<AutoForModel> {
    let iris = ModelConfig::Mlp(MlpConfig::default());
    let mut models: Vec<(String, ModelCost)> = vec![(
        format!(
            "{}, batch 16 (iris)",
            iris.describe(&InputShape::Flat(4), 3)
        ),
        ModelCost::of(&iris, &InputShape::Flat(4), 3, 16),
    )];
    models.extend(
        catalogue()
            .into_iter()
            .filter(|w| w.id != LAUNCH_WORKLOAD)
            .map(|w| {
                (
                    w.describe(),
                    ModelCost::of(&w.model, &w.input, w.classes, w.batch),
                )
            }),
    );
    models
        .into_iter()
        .filter_map(|(model, cost)| {
            let comparison = compare_devices(records, gpu, &cost)?;
            Some(AutoForModel {
                model,
                device: if comparison.cpu_is_faster() {
                    "cpu".to_string()
                } else {
                    format!("wgpu ({})", gpu.name)
                },
                why: comparison.explain(),
            })
        })
        .collect()
}
