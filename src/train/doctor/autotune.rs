//! Where burn keeps its autotune results (which kernel variant is fastest for each shape on a
//! device), and whether they survive the process.
//!
//! In this build they do not: burn 0.22.1's `wgpu` feature builds cubecl-runtime without its
//! `persistence` feature, so the results live in memory, per device runtime, and every process
//! tunes again on its first steps (`cargo tree -e features -i cubecl-runtime` shows no
//! `persistence`). Turning it on would change burn's features, which Kiln keeps as burn sets
//! them. Within a process the cache is warm after the first steps: the bench's "warm first
//! step" is what a second run in the same window pays.

use std::path::PathBuf;

use serde::Serialize;

/// Whether this build writes autotune results to disk (see the module comment).
const PERSISTENT: bool = false;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AutotuneCache {
    pub persistent: bool,
    /// Where the results live, in words.
    pub location: String,
    /// Folders where a cubecl build with persistence would keep them, and which of them exist
    /// (left by other programs built on cubecl).
    pub disk_locations: Vec<(PathBuf, bool)>,
    /// `CUBECL_AUTOTUNE_LEVEL` when set (a lower level tunes fewer variants, faster).
    pub level: Option<String>,
    pub summary: String,
}

pub fn inspect() -> AutotuneCache {
    let disk_locations: Vec<(PathBuf, bool)> = dirs::cache_dir()
        .map(|dir| dir.join("cubecl"))
        .into_iter()
        .chain(
            std::env::current_dir()
                .ok()
                .map(|dir| dir.join("target/environment")),
        )
        .map(|dir| {
            let exists = dir.exists();
            (dir, exists)
        })
        .collect();
    let level = std::env::var("CUBECL_AUTOTUNE_LEVEL").ok();
    AutotuneCache {
        persistent: PERSISTENT,
        location: "in memory, per device, for the life of the process".to_string(),
        summary: "burn's autotune cache is in memory only in this build (cubecl without its \
                  `persistence` feature): each new process tunes again during its first steps \
                  (the bench's first-step time), and later runs in the same process start warm \
                  (the bench's warm first step)"
            .to_string(),
        disk_locations,
        level,
    }
}
