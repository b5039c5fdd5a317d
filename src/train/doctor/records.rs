//! The doctor bench's record: per device, how long each workload's training step took. `auto`
//! reads it to choose between a GPU and the CPU by evidence. It lives in the user's cache folder
//! (`~/.cache/kiln/device-bench.json`), or in `KILN_CACHE_DIR` when that is set (tests, and
//! machines whose cache folder is elsewhere).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bench::WorkloadResult;
use crate::train::AdapterSummary;

pub const RECORDS_FILE: &str = "device-bench.json";
const RECORDS_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("could not read the bench record {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the bench record {path} is not valid ({message}); delete it or run `kiln doctor --bench` again"
    )]
    Invalid { path: PathBuf, message: String },
    #[error("could not write the bench record {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// The bench's findings for one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Identifies the device across runs: see [`gpu_key`] and [`cpu_key`].
    pub key: String,
    /// `cpu` or `wgpu`.
    pub backend: String,
    /// How a person would name it, e.g. `NVIDIA H100 (Vulkan, GPU)`.
    pub label: String,
    pub software: bool,
    /// RFC 3339 time of the measurement.
    pub measured: String,
    pub kiln_version: String,
    pub results: Vec<WorkloadResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRecords {
    pub format: u32,
    pub devices: Vec<DeviceRecord>,
}

impl Default for BenchRecords {
    fn default() -> Self {
        Self {
            format: RECORDS_FORMAT,
            devices: Vec::new(),
        }
    }
}

/// Where the record is read and written: `$KILN_CACHE_DIR/device-bench.json`, else the user's
/// cache folder's `kiln/device-bench.json`.
pub fn records_path() -> PathBuf {
    let dir = std::env::var_os("KILN_CACHE_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|dir| dir.join("kiln")))
        .unwrap_or_else(|| std::env::temp_dir().join("kiln"));
    dir.join(RECORDS_FILE)
}

impl BenchRecords {
    /// The record at `path`; no file yet is an empty record.
    pub fn load(path: &Path) -> Result<Self, RecordsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(source) => {
                return Err(RecordsError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        serde_json::from_str(&text).map_err(|error| RecordsError::Invalid {
            path: path.to_path_buf(),
            message: error.to_string(),
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), RecordsError> {
        let failed = |message: String| RecordsError::Write {
            path: path.to_path_buf(),
            message,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|error| failed(error.to_string()))?;
        }
        let text = serde_json::to_vec_pretty(self).map_err(|error| failed(error.to_string()))?;
        crate::runs::atomic::write_atomic(path, &text).map_err(|error| failed(error.to_string()))
    }

    pub fn find(&self, key: &str) -> Option<&DeviceRecord> {
        self.devices.iter().find(|device| device.key == key)
    }

    /// Replaces the device's record (its workloads measured again keep only the new figures;
    /// workloads not measured this time are kept from before).
    pub fn upsert(&mut self, mut record: DeviceRecord) {
        match self.devices.iter_mut().find(|d| d.key == record.key) {
            Some(existing) => {
                for old in &existing.results {
                    if !record
                        .results
                        .iter()
                        .any(|new| new.workload == old.workload)
                    {
                        record.results.push(old.clone());
                    }
                }
                *existing = record;
            }
            None => self.devices.push(record),
        }
    }
}

/// A wgpu adapter's identity: its API, PCI ids and name (a new driver keeps the record).
pub fn gpu_key(adapter: &AdapterSummary) -> String {
    format!(
        "wgpu:{}:{:#06x}:{:#06x}:{}",
        adapter.backend, adapter.vendor, adapter.device, adapter.name
    )
}

/// This machine's CPU as burn's flex backend uses it: the processor model and the threads.
pub fn cpu_key() -> String {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("cpu:{}:{threads} threads", cpu_model())
}

/// The processor's model name from `/proc/cpuinfo` (Linux), or the architecture.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}
