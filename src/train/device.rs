//! Choosing where to train: a real GPU through wgpu, or the CPU through burn's `flex` backend.

use std::sync::OnceLock;

use burn::tensor::Device;
use burn::tensor::wgpu::wgpu;
use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    /// Software rasterisers (Mesa lavapipe/llvmpipe) report themselves as CPU devices.
    pub software: bool,
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
                .map(|adapter| {
                    let info = adapter.get_info();
                    AdapterSummary {
                        name: info.name,
                        backend: format!("{:?}", info.backend),
                        software: info.device_type == wgpu::DeviceType::Cpu,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
    })
}

/// The first hardware GPU adapter, if any.
pub fn hardware_gpu() -> Option<&'static AdapterSummary> {
    wgpu_adapters().iter().find(|adapter| !adapter.software)
}

/// burn's wgpu runtime can be initialised once per process; keep the result.
fn wgpu_device() -> Result<(Device, String), DeviceError> {
    static WGPU: OnceLock<Result<(Device, String), String>> = OnceLock::new();
    WGPU.get_or_init(|| {
        let outcome = std::panic::catch_unwind(|| Device::wgpu_options().init_with_setup());
        match outcome {
            Ok(Ok((device, setup))) => {
                let info = setup.adapter.get_info();
                let kind = if info.device_type == wgpu::DeviceType::Cpu {
                    "software"
                } else {
                    "GPU"
                };
                Ok((
                    device,
                    format!("{} ({:?}, {kind})", info.name, info.backend),
                ))
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("the wgpu runtime panicked while starting".to_string()),
        }
    })
    .clone()
    .map_err(DeviceError::Wgpu)
}

fn cpu_description() -> String {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("CPU, burn flex backend ({threads} threads)")
}

/// A device ready for training, and the facts recorded about it.
#[derive(Debug, Clone)]
pub struct ResolvedDevice {
    pub device: Device,
    pub info: DeviceInfo,
}

pub fn resolve(choice: DeviceChoice) -> Result<ResolvedDevice, DeviceError> {
    let cpu = |reason: String| ResolvedDevice {
        device: Device::flex(),
        info: DeviceInfo {
            backend: "cpu".to_string(),
            adapter: cpu_description(),
            reason,
        },
    };
    match choice {
        DeviceChoice::Cpu => Ok(cpu("CPU requested".to_string())),
        DeviceChoice::Wgpu => {
            let (device, adapter) = wgpu_device()?;
            Ok(ResolvedDevice {
                device,
                info: DeviceInfo {
                    backend: "wgpu".to_string(),
                    adapter,
                    reason: "wgpu requested".to_string(),
                },
            })
        }
        DeviceChoice::Auto => match hardware_gpu() {
            Some(gpu) => match wgpu_device() {
                Ok((device, adapter)) => Ok(ResolvedDevice {
                    device,
                    info: DeviceInfo {
                        backend: "wgpu".to_string(),
                        adapter,
                        reason: format!("auto: found the GPU {}", gpu.name),
                    },
                }),
                Err(error) => Ok(cpu(format!(
                    "auto: the GPU {} failed to start ({error}); using the CPU",
                    gpu.name
                ))),
            },
            None => {
                let mut software: Vec<&str> = wgpu_adapters()
                    .iter()
                    .filter(|adapter| adapter.software)
                    .map(|adapter| adapter.name.as_str())
                    .collect();
                software.dedup();
                Ok(cpu(if software.is_empty() {
                    "auto: no GPU adapter found; using the CPU".to_string()
                } else {
                    format!(
                        "auto: only a software adapter ({}) found, which is far slower than the CPU backend",
                        software.join(", ")
                    )
                }))
            }
        },
    }
}
