//! What the Vulkan loader would find: the loader library itself and the driver (ICD) manifest
//! files on its search path, each with the driver library it names and whether that library
//! loads. Most "why is it on the CPU?" answers are here: no loader, no driver file, a driver
//! file whose library lacks a dependency, or a `VK_ICD_FILENAMES` that names nothing.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The loader's file name on Linux (what wgpu's Vulkan backend opens).
pub const LOADER_NAME: &str = "libvulkan.so.1";

/// Variables that replace the loader's driver search, newest first: `VK_DRIVER_FILES` wins
/// over the deprecated `VK_ICD_FILENAMES` when both are set.
const OVERRIDE_VARIABLES: [&str; 2] = ["VK_DRIVER_FILES", "VK_ICD_FILENAMES"];

/// Where drivers sit that the loader does not search by itself: an NVIDIA container's driver
/// mount (seen on this project's GPU machines).
const UNSEARCHED_DRIVER_DIRS: [&str; 2] = [
    "/usr/local/nvidia/share/vulkan/icd.d",
    "/usr/local/nvidia/etc/vulkan/icd.d",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VulkanReport {
    /// The loader library's path, when it loads.
    pub loader: Option<String>,
    /// Why the loader could not be loaded.
    pub loader_error: Option<String>,
    /// `VK_DRIVER_FILES=…` or `VK_ICD_FILENAMES=…` when one replaces the search.
    pub driver_override: Option<DriverOverride>,
    /// The folders (or, with an override, the files and folders) searched, in order.
    pub searched: Vec<PathBuf>,
    /// The driver files found on the search path.
    pub drivers: Vec<DriverFile>,
    /// Driver files found where the loader does not look (they need `VK_DRIVER_FILES`).
    pub unsearched_drivers: Vec<DriverFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriverOverride {
    pub variable: String,
    pub value: String,
}

/// One ICD manifest (`*.json`) and the driver library it names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriverFile {
    pub path: PathBuf,
    /// `ICD.library_path` from the manifest.
    pub library: Option<String>,
    pub api_version: Option<String>,
    /// Why the manifest or its library is unusable; `None` when the library loads.
    pub problem: Option<String>,
}

impl DriverFile {
    /// Mesa's lavapipe and Google's SwiftShader run Vulkan on the CPU.
    pub fn is_software(&self) -> bool {
        let name = self.library.as_deref().unwrap_or_default().to_lowercase();
        name.contains("lvp") || name.contains("swiftshader")
    }

    pub fn is_nvidia(&self) -> bool {
        let text = format!(
            "{} {}",
            self.path.display(),
            self.library.as_deref().unwrap_or_default()
        )
        .to_lowercase();
        text.contains("nvidia")
    }
}

impl VulkanReport {
    pub fn usable_drivers(&self) -> impl Iterator<Item = &DriverFile> {
        self.drivers.iter().filter(|d| d.problem.is_none())
    }
}

/// Looks at this process's environment and file system.
pub fn inspect() -> VulkanReport {
    let searched = search_path(&|name| std::env::var(name).ok());
    let driver_override = OVERRIDE_VARIABLES.iter().find_map(|variable| {
        std::env::var(variable)
            .ok()
            .filter(|value| !value.is_empty())
            .map(|value| DriverOverride {
                variable: variable.to_string(),
                value,
            })
    });
    let drivers = searched
        .iter()
        .flat_map(|place| manifests_at(place))
        .map(|path| read_driver(&path))
        .collect();
    let unsearched_drivers = UNSEARCHED_DRIVER_DIRS
        .iter()
        .map(Path::new)
        .filter(|dir| !searched.iter().any(|place| place == dir))
        .flat_map(manifests_at)
        .filter(|path| !searched.iter().any(|place| place == path))
        .map(|path| read_driver(&path))
        .collect();
    let loader = load_library(LOADER_NAME)
        .map(|()| mapped_path(LOADER_NAME).unwrap_or_else(|| format!("{LOADER_NAME} (loaded)")));
    VulkanReport {
        loader: loader.as_ref().ok().cloned(),
        loader_error: loader.err(),
        driver_override,
        searched,
        drivers,
        unsearched_drivers,
    }
}

/// The places the Vulkan loader reads driver manifests from, in its order (Linux): the files and
/// folders of `VK_DRIVER_FILES` / `VK_ICD_FILENAMES` when set (`VK_ADD_DRIVER_FILES` first), else
/// the XDG config folders, `/etc`, and the XDG data folders, each with `vulkan/icd.d`.
pub fn search_path(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    let split = |value: String| -> Vec<PathBuf> {
        value
            .split(':')
            .filter(|part| !part.is_empty())
            .map(PathBuf::from)
            .collect()
    };
    let added = set("VK_ADD_DRIVER_FILES").map(split).unwrap_or_default();
    if let Some(value) = OVERRIDE_VARIABLES.iter().find_map(|name| set(name)) {
        return added.into_iter().chain(split(value)).collect();
    }
    let home = set("HOME").map(PathBuf::from);
    let under_home = |relative: &str| home.as_ref().map(|home| home.join(relative));
    let config_home = set("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| under_home(".config"));
    let config_dirs = set("XDG_CONFIG_DIRS").unwrap_or_else(|| "/etc/xdg".to_string());
    let data_home = set("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| under_home(".local/share"));
    let data_dirs = set("XDG_DATA_DIRS").unwrap_or_else(|| "/usr/local/share:/usr/share".into());
    let mut roots: Vec<PathBuf> = Vec::new();
    roots.extend(config_home);
    roots.extend(split(config_dirs));
    roots.push(PathBuf::from("/etc"));
    roots.extend(data_home);
    roots.extend(split(data_dirs));
    let mut places: Vec<PathBuf> = added;
    for root in roots {
        let place = root.join("vulkan/icd.d");
        if !places.contains(&place) {
            places.push(place);
        }
    }
    places
}

/// The manifests a search entry stands for: the file itself, or a folder's `*.json` files.
fn manifests_at(place: &Path) -> Vec<PathBuf> {
    if place.is_file() {
        return vec![place.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(place) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

#[derive(serde::Deserialize)]
struct Manifest {
    #[serde(rename = "ICD")]
    icd: ManifestIcd,
}

#[derive(serde::Deserialize)]
struct ManifestIcd {
    library_path: String,
    #[serde(default)]
    api_version: Option<String>,
}

fn read_driver(path: &Path) -> DriverFile {
    let unusable = |problem: String| DriverFile {
        path: path.to_path_buf(),
        library: None,
        api_version: None,
        problem: Some(problem),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => return unusable(format!("cannot be read: {error}")),
    };
    let manifest: Manifest = match serde_json::from_str(&text) {
        Ok(manifest) => manifest,
        Err(error) => return unusable(format!("is not a driver manifest: {error}")),
    };
    let library = manifest.icd.library_path;
    // A relative path with a slash is relative to the manifest; a bare name goes through the
    // dynamic linker's search, as the loader does.
    let to_open = if library.contains('/') && !library.starts_with('/') {
        path.parent()
            .unwrap_or(Path::new("/"))
            .join(&library)
            .display()
            .to_string()
    } else {
        library.clone()
    };
    DriverFile {
        path: path.to_path_buf(),
        problem: load_library(&to_open)
            .err()
            .map(|error| format!("its library does not load: {error}")),
        library: Some(library),
        api_version: manifest.icd.api_version,
    }
}

/// Opens a shared library the way the loader would and closes it again; the dynamic linker's
/// message when it fails (it names a missing dependency).
pub fn load_library(name: &str) -> Result<(), String> {
    let Ok(c_name) = CString::new(name) else {
        return Err(format!("{name:?} is not a library name"));
    };
    // SAFETY: dlopen gets a NUL-terminated name; the handle is closed right after. Loading runs
    // the library's initialisers, as the Vulkan loader does with the same library later.
    unsafe {
        let handle = libc::dlopen(c_name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
        if handle.is_null() {
            let message = libc::dlerror();
            return Err(if message.is_null() {
                format!("{name} could not be loaded")
            } else {
                CStr::from_ptr(message).to_string_lossy().into_owned()
            });
        }
        libc::dlclose(handle);
    }
    Ok(())
}

/// Where a library loaded into this process lives, read from `/proc/self/maps`.
fn mapped_path(name: &str) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    // Keep it loaded while looking, so it is mapped.
    let c_name = CString::new(name).ok()?;
    // SAFETY: as in `load_library`; the handle is closed after reading the maps.
    let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
    let maps = if handle.is_null() {
        maps
    } else {
        let fresh = std::fs::read_to_string("/proc/self/maps").unwrap_or(maps);
        // SAFETY: the handle came from dlopen above and is closed once.
        unsafe { libc::dlclose(handle) };
        fresh
    };
    let stem = name.split(".so").next().unwrap_or(name);
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| {
            Path::new(path)
                .file_name()
                .is_some_and(|file| file.to_string_lossy().starts_with(&format!("{stem}.so")))
        })
        .map(str::to_string)
}

/// The Debian package that ships a shared library the NVIDIA or Mesa drivers need, for naming
/// the fix when the dynamic linker reports it missing.
pub fn debian_package_for(library: &str) -> Option<&'static str> {
    const PACKAGES: [(&str, &str); 7] = [
        ("libvulkan.so", "libvulkan1"),
        ("libGLdispatch.so", "libglvnd0"),
        ("libEGL.so", "libegl1"),
        ("libGLX.so", "libglx0"),
        ("libOpenGL.so", "libopengl0"),
        ("libGL.so", "libgl1"),
        ("libGLESv2.so", "libgles2"),
    ];
    PACKAGES
        .iter()
        .find(|(prefix, _)| library.contains(prefix))
        .map(|(_, package)| *package)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn the_standard_search_covers_config_etc_and_data_folders_in_order() {
        let places = search_path(&env_of(&[("HOME", "/home/u")]));
        let expected: Vec<PathBuf> = [
            "/home/u/.config/vulkan/icd.d",
            "/etc/xdg/vulkan/icd.d",
            "/etc/vulkan/icd.d",
            "/home/u/.local/share/vulkan/icd.d",
            "/usr/local/share/vulkan/icd.d",
            "/usr/share/vulkan/icd.d",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(places, expected);
    }

    #[test]
    fn driver_files_replaces_the_search_and_wins_over_the_old_name() {
        let places = search_path(&env_of(&[
            ("HOME", "/home/u"),
            ("VK_ICD_FILENAMES", "/old.json"),
            ("VK_DRIVER_FILES", "/a.json:/b"),
            ("VK_ADD_DRIVER_FILES", "/extra.json"),
        ]));
        let expected: Vec<PathBuf> = ["/extra.json", "/a.json", "/b"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(places, expected);
    }

    #[test]
    fn a_manifest_whose_library_is_missing_says_what_the_linker_said() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone_icd.json");
        std::fs::write(
            &path,
            r#"{"file_format_version":"1.0.0","ICD":{"library_path":"libkiln_no_such_driver.so.0","api_version":"1.3.0"}}"#,
        )
        .unwrap();
        let driver = read_driver(&path);
        assert_eq!(
            driver.library.as_deref(),
            Some("libkiln_no_such_driver.so.0")
        );
        assert_eq!(driver.api_version.as_deref(), Some("1.3.0"));
        let problem = driver.problem.expect("a missing library is a problem");
        assert!(problem.contains("libkiln_no_such_driver.so.0"), "{problem}");

        std::fs::write(&path, "not json").unwrap();
        let problem = read_driver(&path).problem.expect("invalid manifest");
        assert!(problem.contains("not a driver manifest"), "{problem}");
    }

    #[test]
    fn missing_libraries_map_to_their_debian_packages() {
        assert_eq!(
            debian_package_for("libGLdispatch.so.0: cannot open shared object file"),
            Some("libglvnd0")
        );
        assert_eq!(debian_package_for("libvulkan.so.1"), Some("libvulkan1"));
        assert_eq!(debian_package_for("libfoo.so"), None);
    }
}
