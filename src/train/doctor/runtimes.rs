//! burn devices for particular wgpu adapters, so the bench can time each one: burn's default
//! runtime takes whichever adapter it prefers, while a runtime pinned to a device kind, its index
//! and a graphics API lands on one adapter.

use std::collections::HashMap;
use std::sync::Mutex;

use burn::tensor::wgpu::WgpuBackend;
use burn::tensor::{Device, DeviceKind};

use crate::train::AdapterSummary;
use crate::train::device::{wgpu_adapters, wgpu_device};

/// A burn device on `adapter` (one of [`wgpu_adapters`]). burn's runtimes start once per
/// process, so each is kept; the default runtime is reused when it sits on this adapter.
pub fn device_for(adapter: &AdapterSummary) -> Result<Device, String> {
    static STARTED: Mutex<Vec<(AdapterSummary, Result<Device, String>)>> = Mutex::new(Vec::new());
    if let Ok((device, default_adapter)) = wgpu_device()
        && &default_adapter == adapter
    {
        return Ok(device);
    }
    let mut started = STARTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, device)) = started.iter().find(|(a, _)| a == adapter) {
        return device.clone();
    }
    let outcome = start(adapter);
    started.push((adapter.clone(), outcome.clone()));
    outcome
}

fn start(adapter: &AdapterSummary) -> Result<Device, String> {
    let kind = device_kind(adapter, wgpu_adapters())?;
    let api = match adapter.backend.as_str() {
        "Vulkan" => WgpuBackend::Vulkan,
        "Gl" => WgpuBackend::Gl,
        "Metal" => WgpuBackend::Metal,
        "Dx12" => WgpuBackend::Dx12,
        other => return Err(format!("burn cannot pin the graphics API {other}")),
    };
    let outcome = std::panic::catch_unwind(|| {
        Device::wgpu_options()
            .device_kind(kind)
            .graphics_api(api)
            .init()
    });
    match outcome {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("the wgpu runtime panicked while starting".to_string()),
    }
}

/// burn numbers adapters per graphics API and device type, in wgpu's enumeration order:
/// the second discrete GPU on Vulkan is `DiscreteGpu(1)` there.
pub fn device_kind(adapter: &AdapterSummary, all: &[AdapterSummary]) -> Result<DeviceKind, String> {
    let mut counts: HashMap<(&str, &str), usize> = HashMap::new();
    let mut index = None;
    for other in all {
        let count = counts
            .entry((other.backend.as_str(), other.device_type.as_str()))
            .or_default();
        if other == adapter {
            index = Some(*count);
            break;
        }
        *count += 1;
    }
    let index = index.ok_or_else(|| format!("{} is not among wgpu's adapters", adapter.name))?;
    match adapter.device_type.as_str() {
        "DiscreteGpu" => Ok(DeviceKind::DiscreteGpu(index)),
        "IntegratedGpu" => Ok(DeviceKind::IntegratedGpu(index)),
        "VirtualGpu" => Ok(DeviceKind::VirtualGpu(index)),
        "Cpu" => Ok(DeviceKind::Cpu),
        other => Err(format!(
            "burn cannot pick a device of type {other} by itself"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, backend: &str, device_type: &str) -> AdapterSummary {
        AdapterSummary {
            name: name.to_string(),
            backend: backend.to_string(),
            software: device_type == "Cpu",
            vendor: 0x10de,
            device: 0,
            device_type: device_type.to_string(),
            driver: String::new(),
            driver_info: String::new(),
        }
    }

    #[test]
    fn adapters_count_per_api_and_type() {
        let all = vec![
            adapter("a", "Vulkan", "DiscreteGpu"),
            adapter("lvp", "Vulkan", "Cpu"),
            adapter("b", "Vulkan", "DiscreteGpu"),
            adapter("b", "Gl", "DiscreteGpu"),
        ];
        assert_eq!(device_kind(&all[2], &all), Ok(DeviceKind::DiscreteGpu(1)));
        assert_eq!(device_kind(&all[3], &all), Ok(DeviceKind::DiscreteGpu(0)));
        assert_eq!(device_kind(&all[1], &all), Ok(DeviceKind::Cpu));
        assert!(device_kind(&adapter("x", "Vulkan", "Other"), &all).is_err());
    }
}
