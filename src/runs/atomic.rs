//! Crash-safe file writes: a reader sees the old file or the new one, never half of either.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A temporary file name beside `path`, unique per call: two threads of one process (a trainer
/// and a rename), or two machines sharing a store, never write the same temp file.
pub fn unique_temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let parent = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    parent.join(format!(
        ".{file_name}.tmp-{}-{}-{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    ))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let temp = unique_temp_path(path);
    let result = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        // The rename itself is durable only once the directory is synced; not every platform allows it.
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Appends one line (a trailing newline is added) and flushes it to disk.
pub fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    append_lines(path, &[line])
}

/// Appends lines (each given a trailing newline) in one write, flushed to disk once: an
/// epoch's metrics cost one flush, not one each (half a millisecond apiece here).
pub fn append_lines(path: &Path, lines: &[&str]) -> std::io::Result<()> {
    append_lines_unsynced(path, lines)?;
    sync_data(path)
}

/// Appends lines in one write, left for [`sync_data`] (or the system) to flush to disk.
pub fn append_lines_unsynced(path: &Path, lines: &[&str]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut buffer = Vec::with_capacity(lines.iter().map(|line| line.len() + 1).sum());
    for line in lines {
        buffer.extend_from_slice(line.as_bytes());
        buffer.push(b'\n');
    }
    file.write_all(&buffer)
}

/// Flushes what was written to a file to disk; a file that does not exist has nothing to flush.
pub fn sync_data(path: &Path) -> std::io::Result<()> {
    match File::open(path) {
        Ok(file) => file.sync_data(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}
