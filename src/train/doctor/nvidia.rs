//! Signs of an NVIDIA driver, for naming the right fix when Vulkan finds no GPU: a machine (or
//! container) with the driver's compute part but not its graphics part has `/dev/nvidia*` and
//! `nvidia-smi`, yet no Vulkan driver file.

use std::path::Path;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NvidiaDriver {
    /// The kernel module's version line, or what `nvidia-smi` reported.
    pub version: Option<String>,
    /// GPU names reported by `nvidia-smi`.
    pub gpus: Vec<String>,
    /// `NVIDIA_DRIVER_CAPABILITIES` as a container runtime set it (it must include `graphics`,
    /// or be `all`, for the Vulkan driver to be mounted).
    pub container_capabilities: Option<String>,
}

impl NvidiaDriver {
    /// Whether the container was told to leave out the driver's graphics libraries.
    pub fn graphics_capability_missing(&self) -> bool {
        self.container_capabilities.as_deref().is_some_and(|caps| {
            !caps
                .split(',')
                .any(|cap| matches!(cap.trim(), "all" | "graphics"))
        })
    }
}

/// `None` when nothing on this machine suggests an NVIDIA driver.
pub fn inspect() -> Option<NvidiaDriver> {
    let kernel_version = std::fs::read_to_string("/proc/driver/nvidia/version")
        .ok()
        .and_then(|text| text.lines().next().map(|line| line.trim().to_string()));
    let device_nodes = Path::new("/dev/nvidiactl").exists() || Path::new("/dev/nvidia0").exists();
    let smi = nvidia_smi();
    if kernel_version.is_none() && !device_nodes && smi.is_none() {
        return None;
    }
    let (gpus, smi_version) = smi.unwrap_or_default();
    Some(NvidiaDriver {
        version: kernel_version.or(smi_version.map(|v| format!("driver {v} (nvidia-smi)"))),
        gpus,
        container_capabilities: std::env::var("NVIDIA_DRIVER_CAPABILITIES").ok(),
    })
}

/// GPU names and the driver version from `nvidia-smi`, when it is installed and answers.
fn nvidia_smi() -> Option<(Vec<String>, Option<String>)> {
    let output = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name,driver_version", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut version = None;
    let gpus = text
        .lines()
        .filter_map(|line| {
            let (name, driver) = line.split_once(',')?;
            version.get_or_insert_with(|| driver.trim().to_string());
            Some(name.trim().to_string())
        })
        .collect();
    Some((gpus, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_capabilities(caps: Option<&str>) -> NvidiaDriver {
        NvidiaDriver {
            version: None,
            gpus: Vec::new(),
            container_capabilities: caps.map(str::to_string),
        }
    }

    #[test]
    fn graphics_is_missing_only_when_a_container_left_it_out() {
        assert!(with_capabilities(Some("compute,utility")).graphics_capability_missing());
        assert!(!with_capabilities(Some("compute,utility,graphics")).graphics_capability_missing());
        assert!(!with_capabilities(Some("all")).graphics_capability_missing());
        assert!(!with_capabilities(None).graphics_capability_missing());
    }
}
