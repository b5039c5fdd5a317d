//! Choosing where to train: a real GPU through wgpu, or the CPU through burn's `flex` backend.

use std::sync::OnceLock;

use burn::tensor::Device;
use burn::tensor::wgpu::wgpu;
use serde::{Deserialize, Serialize};

use super::doctor::{BenchRecords, ModelCost, compare_devices, records_path};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// wgpu on a real GPU when there is one, otherwise the CPU.
    #[default]
    Auto,
    Wgpu,
    Cpu,
}

impl DeviceChoice {
    pub const ALL: [DeviceChoice; 3] = [DeviceChoice::Auto, DeviceChoice::Wgpu, DeviceChoice::Cpu];

    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::Cpu => "cpu",
        }
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(DeviceChoice::Auto),
            "wgpu" | "gpu" => Ok(DeviceChoice::Wgpu),
            "cpu" | "flex" => Ok(DeviceChoice::Cpu),
            other => Err(format!("unknown device '{other}': use auto, wgpu or cpu")),
        }
    }
}

/// Which device a run trained on, and why; recorded in `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `wgpu` or `cpu`.
    pub backend: String,
    /// The adapter name (wgpu) or a description of the CPU backend.
    pub adapter: String,
    pub reason: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DeviceError {
    #[error("wgpu could not start: {0}")]
    Wgpu(String),
}

/// One wgpu adapter found on this machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterSummary {
    pub name: String,
    /// The graphics API: Vulkan, Gl, Metal or Dx12.
    pub backend: String,
    /// Software rasterisers (Mesa lavapipe/llvmpipe) report themselves as CPU devices.
    pub software: bool,
    /// PCI vendor id: 0x10de NVIDIA, 0x1002 AMD, 0x8086 Intel (Mesa's software drivers use
    /// 0x10005).
    pub vendor: u32,
    pub device: u32,
    /// wgpu's device type: DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu or Other.
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
}

impl AdapterSummary {
    pub fn from_info(info: &wgpu::AdapterInfo) -> Self {
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            software: info.device_type == wgpu::DeviceType::Cpu,
            vendor: info.vendor,
            device: info.device,
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
        }
    }

    /// The adapter as a run's device line names it, e.g. `NVIDIA H100 (Vulkan, GPU)`.
    pub fn describe(&self) -> String {
        let kind = if self.software { "software" } else { "GPU" };
        format!("{} ({}, {kind})", self.name, self.backend)
    }
}

/// The wgpu adapters on this machine (probed once per process).
pub fn wgpu_adapters() -> &'static [AdapterSummary] {
    static ADAPTERS: OnceLock<Vec<AdapterSummary>> = OnceLock::new();
    ADAPTERS.get_or_init(|| {
        // A broken driver can panic inside wgpu; that must not take the application down.
        std::panic::catch_unwind(|| {
            let instance =
                wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
            pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
                .into_iter()
                .map(|adapter| AdapterSummary::from_info(&adapter.get_info()))
                .collect()
        })
        .unwrap_or_default()
    })
}

/// The first hardware GPU adapter, if any.
pub fn hardware_gpu() -> Option<&'static AdapterSummary> {
    wgpu_adapters().iter().find(|adapter| !adapter.software)
}

/// burn's wgpu runtime can be initialised once per process; keep the result: the device and
/// the adapter it runs on.
pub(crate) fn wgpu_device() -> Result<(Device, AdapterSummary), DeviceError> {
    static WGPU: OnceLock<Result<(Device, AdapterSummary), String>> = OnceLock::new();
    WGPU.get_or_init(|| {
        let outcome = std::panic::catch_unwind(|| Device::wgpu_options().init_with_setup());
        match outcome {
            Ok(Ok((device, setup))) => {
                Ok((device, AdapterSummary::from_info(&setup.adapter.get_info())))
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("the wgpu runtime panicked while starting".to_string()),
        }
    })
    .clone()
    .map_err(DeviceError::Wgpu)
}

pub(crate) fn cpu_description() -> String {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("CPU, burn flex backend ({threads} threads)")
}

/// A device ready for training, and the facts recorded about it.
#[derive(Debug, Clone)]
pub struct ResolvedDevice {
    pub device: Device,
    pub info: DeviceInfo,
}

/// Resolves a device choice without knowing the model: `auto` takes a hardware GPU when there
/// is one (see [`resolve_for`]).
pub fn resolve(choice: DeviceChoice) -> Result<ResolvedDevice, DeviceError> {
    resolve_for(choice, None)
}

/// Resolves a device choice for a model. With `auto`, a hardware GPU and a model cost, the doctor
/// bench's records (when there are records for both the GPU and the CPU) decide which of the two
/// trains this model faster; without records the hardware GPU is used.
pub fn resolve_for(
    choice: DeviceChoice,
    cost: Option<&ModelCost>,
) -> Result<ResolvedDevice, DeviceError> {
    let cpu = |reason: String| ResolvedDevice {
        device: Device::flex(),
        info: DeviceInfo {
            backend: "cpu".to_string(),
            adapter: cpu_description(),
            reason,
        },
    };
    let gpu = |device: Device, adapter: &AdapterSummary, reason: String| ResolvedDevice {
        device,
        info: DeviceInfo {
            backend: "wgpu".to_string(),
            adapter: adapter.describe(),
            reason,
        },
    };
    match choice {
        DeviceChoice::Cpu => Ok(cpu("CPU requested".to_string())),
        DeviceChoice::Wgpu => {
            let (device, adapter) = wgpu_device()?;
            Ok(gpu(device, &adapter, "wgpu requested".to_string()))
        }
        DeviceChoice::Auto => match hardware_gpu() {
            Some(found) => match wgpu_device() {
                Ok((device, adapter)) => {
                    let comparison = cost.and_then(|cost| {
                        let records = BenchRecords::load(&records_path()).ok()?;
                        compare_devices(&records, &adapter, cost)
                    });
                    Ok(match comparison {
                        Some(comparison) if comparison.cpu_is_faster() => {
                            cpu(format!("auto: {}", comparison.explain()))
                        }
                        Some(comparison) => {
                            gpu(device, &adapter, format!("auto: {}", comparison.explain()))
                        }
                        // For a model, say how auto could compare; without one there is no
                        // comparison to make.
                        None if cost.is_some() => gpu(
                            device,
                            &adapter,
                            format!(
                                "auto: found the GPU {} (no doctor bench record of it and the CPU to compare them)",
                                found.name
                            ),
                        ),
                        None => gpu(
                            device,
                            &adapter,
                            format!("auto: found the GPU {}", found.name),
                        ),
                    })
                }
                Err(error) => Ok(cpu(format!(
                    "auto: the GPU {} failed to start ({error}); using the CPU",
                    found.name
                ))),
            },
            None => Ok(cpu(no_gpu_reason())),
        },
    }
}

/// Why `auto` trains on the CPU when wgpu offers no hardware GPU.
pub(crate) fn no_gpu_reason() -> String {
    let mut software: Vec<&str> = wgpu_adapters()
        .iter()
        .filter(|adapter| adapter.software)
        .map(|adapter| adapter.name.as_str())
        .collect();
    software.dedup();
    if software.is_empty() {
        "auto: no GPU adapter found; using the CPU".to_string()
    } else {
        format!(
            "auto: only a software adapter ({}) found, which is far slower than the CPU backend",
            software.join(", ")
        )
    }
}
