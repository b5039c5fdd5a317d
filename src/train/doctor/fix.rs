//! From what was found to a verdict: is a GPU usable, and if not, what exactly to do about it.

use serde::Serialize;

use super::nvidia::NvidiaDriver;
use super::vulkan::{DriverFile, VulkanReport, debian_package_for};
use crate::train::AdapterSummary;

/// The verdict, which is also `kiln doctor`'s exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// burn's wgpu runtime runs on a hardware GPU. Exit code 0.
    GpuReady,
    /// wgpu offers only software adapters (Mesa lavapipe/llvmpipe); training runs on the CPU.
    /// Exit code 3.
    SoftwareOnly,
    /// wgpu offers no adapter at all; training runs on the CPU. Exit code 3.
    NoAdapter,
    /// A hardware GPU adapter is there, but burn's wgpu runtime failed to start on it; training
    /// runs on the CPU. Exit code 4.
    GpuFailed,
}

/// A bench workload failed on some device (only with `--bench`, when the health is
/// [`Health::GpuReady`]).
pub const BENCH_FAILED_EXIT_CODE: u8 = 5;

impl Health {
    pub fn exit_code(self) -> u8 {
        match self {
            Health::GpuReady => 0,
            Health::SoftwareOnly | Health::NoAdapter => 3,
            Health::GpuFailed => 4,
        }
    }
}

/// The facts the verdict rests on.
pub struct Findings<'a> {
    pub adapters: &'a [AdapterSummary],
    /// burn's default wgpu runtime: the adapter it started on, or its error.
    pub runtime: Result<&'a AdapterSummary, &'a str>,
    pub vulkan: &'a VulkanReport,
    pub nvidia: Option<&'a NvidiaDriver>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub health: Health,
    pub summary: String,
    /// What to do, most likely cause first; empty when nothing needs doing.
    pub fixes: Vec<String>,
}

/// Packages that give a Debian machine the Vulkan loader and Mesa's drivers.
pub const MESA_PACKAGES: &str = "libvulkan1 mesa-vulkan-drivers";

pub fn verdict(found: &Findings) -> Verdict {
    let hardware: Vec<&AdapterSummary> = found.adapters.iter().filter(|a| !a.software).collect();
    if let Some(gpu) = hardware.first() {
        return match found.runtime {
            Ok(adapter) if !adapter.software => {
                let mut fixes = Vec::new();
                if adapter.backend == "Gl" {
                    fixes.push(format!(
                        "burn runs on OpenGL here, a fallback: with a Vulkan driver for this GPU it would use Vulkan. {}",
                        vulkan_fixes(found).join(" ")
                    ));
                }
                Verdict {
                    health: Health::GpuReady,
                    summary: format!("wgpu trains on the GPU {}", adapter.describe()),
                    fixes,
                }
            }
            Ok(adapter) => Verdict {
                health: Health::GpuFailed,
                summary: format!(
                    "a GPU ({}) is there, but burn's wgpu runtime chose the software adapter {}",
                    gpu.describe(),
                    adapter.name
                ),
                fixes: vec![
                    "unset CUBECL_WGPU_DEFAULT_DEVICE if it names the CPU adapter".to_string(),
                ],
            },
            Err(error) => Verdict {
                health: Health::GpuFailed,
                summary: format!(
                    "a GPU ({}) is there, but burn's wgpu runtime failed to start on it: {error}; training runs on the CPU",
                    gpu.describe()
                ),
                fixes: vec![
                    format!(
                        "update the GPU's driver (now {} {})",
                        gpu.driver, gpu.driver_info
                    ),
                    "for wgpu's own messages run: RUST_LOG=wgpu_hal=warn,wgpu_core=warn kiln doctor"
                        .to_string(),
                ],
            },
        };
    }
    let mut software: Vec<&str> = found
        .adapters
        .iter()
        .filter(|a| a.software)
        .map(|a| a.name.as_str())
        .collect();
    software.sort_unstable();
    software.dedup();
    let (health, summary) = if software.is_empty() {
        (
            Health::NoAdapter,
            "no wgpu adapter: training runs on the CPU (burn's flex backend)".to_string(),
        )
    } else {
        (
            Health::SoftwareOnly,
            format!(
                "only a software adapter ({}): it runs on the CPU and is far slower than burn's flex backend, so training runs on the CPU",
                software.join(", ")
            ),
        )
    };
    Verdict {
        health,
        summary,
        fixes: vulkan_fixes(found),
    }
}

/// Why Vulkan shows no GPU, and the fix for each cause found.
fn vulkan_fixes(found: &Findings) -> Vec<String> {
    let vulkan = found.vulkan;
    let mut fixes = Vec::new();
    if let Some(set) = &vulkan.driver_override
        && !vulkan.searched.iter().any(|place| place.exists())
    {
        fixes.push(format!(
            "{}={} names no file or folder that exists: unset {} (or point it at a driver's .json file)",
            set.variable, set.value, set.variable
        ));
    }
    let nvidia = found.nvidia;
    if let Some(error) = &vulkan.loader_error {
        fixes.push(match nvidia {
            Some(driver) => format!(
                "the NVIDIA driver ({}) is here but not the Vulkan loader ({error}): install it with `sudo apt-get install libvulkan1`; on a machine without a package registry, unpack the .deb packages libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libopengl0 libgles2 with `dpkg -x PACKAGE.deb /` (scripts/gpu-check does this)",
                driver_version(driver)
            ),
            None => format!(
                "the Vulkan loader is missing ({error}): install it with `sudo apt-get install {MESA_PACKAGES}`"
            ),
        });
    }
    for driver in vulkan.drivers.iter().filter(|d| d.problem.is_some()) {
        fixes.push(broken_driver_fix(driver));
    }
    let hardware_drivers: Vec<&DriverFile> = vulkan
        .usable_drivers()
        .filter(|driver| !driver.is_software())
        .collect();
    match nvidia {
        Some(driver) if !hardware_drivers.iter().any(|file| file.is_nvidia()) => {
            fixes.push(nvidia_without_vulkan(driver, vulkan));
        }
        Some(driver) => fixes.push(format!(
            "NVIDIA's Vulkan driver file is there and loads, yet Vulkan lists no NVIDIA GPU: check that the driver libraries match the kernel module ({})",
            driver_version(driver)
        )),
        None if vulkan.drivers.is_empty() => {
            let found = match &vulkan.driver_override {
                Some(set) => format!("the loader finds no Vulkan driver where {} points", set.variable),
                None => "no Vulkan driver is installed".to_string(),
            };
            fixes.push(format!(
                "{found}: `sudo apt-get install {MESA_PACKAGES}` gives AMD and Intel GPUs theirs (and Mesa's software driver); an NVIDIA GPU needs NVIDIA's driver with its Vulkan part (Debian: nvidia-driver nvidia-vulkan-icd)"
            ));
        }
        None if hardware_drivers.is_empty() => fixes.push(
            "only a software Vulkan driver (Mesa lavapipe) is installed and no GPU is visible: for an AMD or Intel GPU install mesa-vulkan-drivers, for NVIDIA its driver with the Vulkan part (Debian: nvidia-driver nvidia-vulkan-icd); in a virtual machine or container, pass the GPU through"
                .to_string(),
        ),
        None => {
            let names: Vec<String> = hardware_drivers
                .iter()
                .map(|file| {
                    file.path
                        .file_name()
                        .map_or_else(String::new, |name| name.to_string_lossy().into_owned())
                })
                .collect();
            fixes.push(format!(
                "Vulkan drivers are installed ({}) but none found a GPU of its kind, and no NVIDIA driver is loaded: this machine shows no GPU to Vulkan. For an NVIDIA GPU install its driver with the Vulkan part (Debian: nvidia-driver nvidia-vulkan-icd); in a virtual machine or container, pass the GPU through",
                names.join(", ")
            ));
        }
    }
    fixes
}

fn driver_version(driver: &NvidiaDriver) -> String {
    driver
        .version
        .clone()
        .unwrap_or_else(|| "version unknown".to_string())
}

fn broken_driver_fix(driver: &DriverFile) -> String {
    let problem = driver.problem.as_deref().unwrap_or_default();
    let package = debian_package_for(problem)
        .map(|package| format!(": install {package} (`sudo apt-get install {package}`)"))
        .unwrap_or_default();
    format!(
        "the Vulkan driver file {} {problem}{package}",
        driver.path.display()
    )
}

fn nvidia_without_vulkan(driver: &NvidiaDriver, vulkan: &VulkanReport) -> String {
    let version = driver_version(driver);
    if let Some(file) = vulkan
        .unsearched_drivers
        .iter()
        .find(|file| file.is_nvidia() && file.problem.is_none())
    {
        return format!(
            "the NVIDIA driver's Vulkan file {} is where the loader does not look: export VK_DRIVER_FILES={}",
            file.path.display(),
            file.path.display()
        );
    }
    if let Some(file) = vulkan
        .unsearched_drivers
        .iter()
        .find(|file| file.is_nvidia())
    {
        return format!(
            "the NVIDIA driver's Vulkan file {} is where the loader does not look, and {}; fix that, then export VK_DRIVER_FILES={}",
            file.path.display(),
            file.problem.as_deref().unwrap_or("it is unusable"),
            file.path.display()
        );
    }
    let capabilities = match &driver.container_capabilities {
        Some(caps) if driver.graphics_capability_missing() => {
            format!(" (NVIDIA_DRIVER_CAPABILITIES is '{caps}', without graphics)")
        }
        _ => String::new(),
    };
    format!(
        "the NVIDIA driver ({version}) is here without its Vulkan driver file (nvidia_icd.json){capabilities}: in a container the driver's graphics capability is missing — start it with NVIDIA_DRIVER_CAPABILITIES=all (or add graphics), which mounts nvidia_icd.json and libGLX_nvidia.so.0; on a host, install the driver's Vulkan part (Debian: nvidia-vulkan-icd)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::doctor::vulkan::DriverOverride;
    use std::path::PathBuf;

    fn adapter(name: &str, software: bool) -> AdapterSummary {
        AdapterSummary {
            name: name.to_string(),
            backend: "Vulkan".to_string(),
            software,
            vendor: if software { 0x10005 } else { 0x10de },
            device: 0,
            device_type: if software { "Cpu" } else { "DiscreteGpu" }.to_string(),
            driver: "NVIDIA".to_string(),
            driver_info: "580.159.04".to_string(),
        }
    }

    fn vulkan(loader: bool, drivers: Vec<DriverFile>, unsearched: Vec<DriverFile>) -> VulkanReport {
        VulkanReport {
            loader: loader.then(|| "/usr/lib/x86_64-linux-gnu/libvulkan.so.1".to_string()),
            loader_error: (!loader)
                .then(|| "libvulkan.so.1: cannot open shared object file".to_string()),
            driver_override: None,
            searched: vec![PathBuf::from("/usr/share/vulkan/icd.d")],
            drivers,
            unsearched_drivers: unsearched,
        }
    }

    fn driver(path: &str, library: &str, problem: Option<&str>) -> DriverFile {
        DriverFile {
            path: PathBuf::from(path),
            library: Some(library.to_string()),
            api_version: Some("1.3.0".to_string()),
            problem: problem.map(str::to_string),
        }
    }

    fn nvidia() -> NvidiaDriver {
        NvidiaDriver {
            version: Some("NVRM version: 580.159.04".to_string()),
            gpus: vec!["NVIDIA H100 80GB HBM3".to_string()],
            container_capabilities: Some("compute,utility".to_string()),
        }
    }

    #[test]
    fn a_started_gpu_is_ready_with_nothing_to_fix() {
        let gpu = adapter("NVIDIA H100", false);
        let report = vulkan(true, vec![], vec![]);
        let verdict = verdict(&Findings {
            adapters: std::slice::from_ref(&gpu),
            runtime: Ok(&gpu),
            vulkan: &report,
            nvidia: None,
        });
        assert_eq!(verdict.health, Health::GpuReady);
        assert_eq!(verdict.health.exit_code(), 0);
        assert!(verdict.fixes.is_empty(), "{:?}", verdict.fixes);
    }

    #[test]
    fn a_gpu_that_fails_to_start_is_its_own_exit_code() {
        let gpu = adapter("NVIDIA H100", false);
        let report = vulkan(true, vec![], vec![]);
        let verdict = verdict(&Findings {
            adapters: std::slice::from_ref(&gpu),
            runtime: Err("device lost"),
            vulkan: &report,
            nvidia: None,
        });
        assert_eq!(verdict.health, Health::GpuFailed);
        assert_eq!(verdict.health.exit_code(), 4);
        assert!(verdict.summary.contains("device lost"));
    }

    #[test]
    fn nvidia_without_a_loader_names_the_packages_to_unpack() {
        let report = vulkan(false, vec![], vec![]);
        let verdict = verdict(&Findings {
            adapters: &[],
            runtime: Err("no adapter"),
            vulkan: &report,
            nvidia: Some(&nvidia()),
        });
        assert_eq!(verdict.health, Health::NoAdapter);
        assert_eq!(verdict.health.exit_code(), 3);
        let all = verdict.fixes.join("\n");
        assert!(all.contains("libvulkan1 libglvnd0"), "{all}");
        assert!(all.contains("graphics capability"), "{all}");
        assert!(all.contains("'compute,utility'"), "{all}");
    }

    #[test]
    fn an_nvidia_driver_file_outside_the_search_path_is_pointed_at() {
        let file = driver(
            "/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json",
            "libGLX_nvidia.so.0",
            None,
        );
        let report = vulkan(true, vec![], vec![file]);
        let verdict = verdict(&Findings {
            adapters: &[],
            runtime: Err("no adapter"),
            vulkan: &report,
            nvidia: Some(&nvidia()),
        });
        assert!(
            verdict.fixes.iter().any(|fix| fix.contains(
                "export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json"
            )),
            "{:?}",
            verdict.fixes
        );
    }

    #[test]
    fn a_driver_missing_a_library_names_its_package() {
        let file = driver(
            "/usr/share/vulkan/icd.d/nvidia_icd.json",
            "libGLX_nvidia.so.0",
            Some("its library does not load: libGLdispatch.so.0: cannot open shared object file"),
        );
        let report = vulkan(true, vec![file], vec![]);
        let verdict = verdict(&Findings {
            adapters: &[],
            runtime: Err("no adapter"),
            vulkan: &report,
            nvidia: Some(&nvidia()),
        });
        assert!(
            verdict
                .fixes
                .iter()
                .any(|fix| fix.contains("install libglvnd0")),
            "{:?}",
            verdict.fixes
        );
    }

    #[test]
    fn software_only_says_the_cpu_trains_and_what_to_install() {
        let lavapipe = adapter("llvmpipe (LLVM 15.0.6, 256 bits)", true);
        let report = vulkan(
            true,
            vec![driver(
                "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json",
                "/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so",
                None,
            )],
            vec![],
        );
        let verdict = verdict(&Findings {
            adapters: std::slice::from_ref(&lavapipe),
            runtime: Ok(&lavapipe),
            vulkan: &report,
            nvidia: None,
        });
        assert_eq!(verdict.health, Health::SoftwareOnly);
        assert_eq!(verdict.health.exit_code(), 3);
        assert!(verdict.summary.contains("llvmpipe"));
        assert!(
            verdict
                .fixes
                .iter()
                .any(|f| f.contains("mesa-vulkan-drivers"))
        );
    }

    #[test]
    fn gpu_drivers_that_find_no_gpu_say_no_gpu_is_visible() {
        let lavapipe = adapter("llvmpipe (LLVM 15.0.6, 256 bits)", true);
        let report = vulkan(
            true,
            vec![
                driver(
                    "/usr/share/vulkan/icd.d/intel_icd.x86_64.json",
                    "/usr/lib/x86_64-linux-gnu/libvulkan_intel.so",
                    None,
                ),
                driver(
                    "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json",
                    "/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so",
                    None,
                ),
            ],
            vec![],
        );
        let verdict = verdict(&Findings {
            adapters: &[lavapipe.clone(), lavapipe.clone()],
            runtime: Ok(&lavapipe),
            vulkan: &report,
            nvidia: None,
        });
        assert_eq!(verdict.health, Health::SoftwareOnly);
        assert_eq!(
            verdict.summary.matches("llvmpipe").count(),
            1,
            "{}",
            verdict.summary
        );
        assert_eq!(verdict.fixes.len(), 1, "{:?}", verdict.fixes);
        assert!(verdict.fixes[0].contains("intel_icd.x86_64.json"));
        assert!(verdict.fixes[0].contains("shows no GPU"));
    }

    #[test]
    fn an_override_naming_nothing_is_called_out() {
        let mut report = vulkan(true, vec![], vec![]);
        report.driver_override = Some(DriverOverride {
            variable: "VK_ICD_FILENAMES".to_string(),
            value: "/nowhere/none.json".to_string(),
        });
        report.searched = vec![PathBuf::from("/nowhere/none.json")];
        let verdict = verdict(&Findings {
            adapters: &[],
            runtime: Err("no adapter"),
            vulkan: &report,
            nvidia: None,
        });
        assert!(
            verdict.fixes[0].starts_with("VK_ICD_FILENAMES=/nowhere/none.json names no file"),
            "{:?}",
            verdict.fixes
        );
        assert!(verdict.fixes.iter().any(|f| f.contains(MESA_PACKAGES)));
    }
}
