//! The store index, `RUNS/.kiln-index.json`: every run's [`RunSummary`] with the sizes and
//! modification times of the files it was made from. Opening a store re-reads only the runs
//! whose files changed; the index is rebuilt when missing, unreadable or of another version,
//! and is never the only copy of anything (the run folders stay the truth).

use std::collections::HashMap;
use std::path::Path;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::atomic::write_json_atomic;
use super::store::{RunDir, RunStore, StoreError};
use super::summary::RunSummary;

const INDEX_FILE: &str = ".kiln-index.json";
const INDEX_VERSION: u32 = 1;

/// Size and modification time (ns) of a file; absent files count as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileStamp {
    pub len: u64,
    pub modified_ns: u128,
}

impl FileStamp {
    fn of(path: &Path) -> Self {
        match std::fs::metadata(path) {
            Ok(meta) => Self {
                len: meta.len(),
                modified_ns: meta
                    .modified()
                    .ok()
                    .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |since| since.as_nanos()),
            },
            Err(_) => Self::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    record: FileStamp,
    metrics: FileStamp,
    /// `user.json` (a rename), absent in indexes written before it existed.
    #[serde(default)]
    user: FileStamp,
    summary: RunSummary,
}

#[derive(Debug, Default, Deserialize)]
struct IndexFile {
    version: u32,
    entries: HashMap<String, Entry>,
}

/// The index as written: the same shape as [`IndexFile`], from entries kept in store order.
struct IndexToWrite<'a>(&'a [(String, Entry)]);

impl Serialize for IndexToWrite<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Entries<'a>(&'a [(String, Entry)]);
        impl Serialize for Entries<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().map(|(id, entry)| (id, entry)))
            }
        }
        let mut index = serializer.serialize_struct("IndexFile", 2)?;
        index.serialize_field("version", &INDEX_VERSION)?;
        index.serialize_field("entries", &Entries(self.0))?;
        index.end()
    }
}

/// A store as the run table sees it.
#[derive(Debug, Clone, Default)]
pub struct StoreSummary {
    /// Oldest first, with `running` runs whose process is gone shown as interrupted.
    pub runs: Vec<RunSummary>,
    /// Folders that are not readable runs: (id, why).
    pub broken: Vec<(String, String)>,
    /// Runs whose files were read this time (the rest came from the index).
    pub reread: usize,
}

impl RunStore {
    fn index_path(&self) -> std::path::PathBuf {
        self.root().join(INDEX_FILE)
    }

    /// Every run's summary, re-reading only runs whose files changed since the index was
    /// written; the index is brought up to date (when the store is writable).
    pub fn summaries(&self) -> Result<StoreSummary, StoreError> {
        let path = self.index_path();
        let mut index: IndexFile = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<IndexFile>(&bytes).ok())
            .filter(|index| index.version == INDEX_VERSION)
            .unwrap_or_default();
        let root = self.root();
        let entries = std::fs::read_dir(root).map_err(|source| StoreError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|id| !id.starts_with('.'))
            .collect();
        ids.sort();
        let mut result = StoreSummary::default();
        let mut changed = index.entries.len() != ids.len();
        // Entries are moved, never cloned: with thousands of runs, copies freed after the scan
        // would leave the heap fragmented and the window tens of MB larger.
        let mut fresh: Vec<(String, Entry)> = Vec::with_capacity(ids.len());
        for id in ids {
            let dir = RunDir {
                id: id.clone(),
                path: root.join(&id),
            };
            let stamps = (
                FileStamp::of(&dir.record_path()),
                FileStamp::of(&dir.metrics_path()),
                FileStamp::of(&dir.user_path()),
            );
            let cached = index
                .entries
                .remove(&id)
                .filter(|entry| (entry.record, entry.metrics, entry.user) == stamps);
            let entry = match cached {
                Some(entry) => entry,
                None => {
                    changed = true;
                    result.reread += 1;
                    match summarize(&dir) {
                        Ok(summary) => Entry {
                            record: stamps.0,
                            metrics: stamps.1,
                            user: stamps.2,
                            summary,
                        },
                        Err(error) => {
                            result.broken.push((id, error.to_string()));
                            continue;
                        }
                    }
                }
            };
            fresh.push((id, entry));
        }
        drop(index);
        if changed {
            // A read-only or full store still lists; the index is only a cache.
            let _ = write_json_atomic(&path, &IndexToWrite(&fresh));
        }
        result.runs = fresh
            .into_iter()
            .map(|(id, entry)| {
                let mut summary = entry.summary;
                summary.status = super::store::effective_status(
                    &root.join(id),
                    summary.status,
                    summary.pid,
                    summary.target.is_some(),
                );
                summary
            })
            .collect();
        Ok(result)
    }

    /// One run's summary, read from its files now.
    pub fn summary_of(&self, id: &str) -> Result<RunSummary, StoreError> {
        let dir = self.find(id)?;
        let mut summary = summarize(&dir)?;
        summary.status = super::store::effective_status(
            &dir.path,
            summary.status,
            summary.pid,
            summary.target.is_some(),
        );
        Ok(summary)
    }
}

fn summarize(dir: &RunDir) -> Result<RunSummary, StoreError> {
    let record = dir.read_record()?;
    let log = dir.read_metrics()?;
    Ok(RunSummary::of(&record, &log))
}
