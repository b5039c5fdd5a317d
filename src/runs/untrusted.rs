//! Reading files that another machine or person may have written: names that must stay inside
//! their folder, and reads bounded before anything is allocated.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest `run.json`, `index.json` or model card Kiln reads (real ones are kilobytes).
pub const MAX_JSON_BYTES: u64 = 64 * 1024 * 1024;
/// Largest append-only log (`metrics.jsonl`, `confusion.jsonl`) Kiln reads.
pub const MAX_LOG_BYTES: u64 = 512 * 1024 * 1024;
/// Largest weights file (checkpoint, burnpack, safetensors or ONNX) Kiln reads.
pub const MAX_WEIGHTS_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Why a name from a file cannot be used as a file name inside a folder.
pub fn plain_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it names a folder, not a file in it")
    } else if name.contains(['/', '\\']) {
        Some("it contains a path separator")
    } else if name.contains('\0') {
        Some("it contains a NUL byte")
    } else if Path::new(name).is_absolute() || name.contains(':') {
        Some("it is an absolute path or names a drive")
    } else {
        None
    }
}

/// `folder/name` when `name` is a plain name and the file, if it is a link, stays inside
/// `folder`; otherwise the reason it is refused.
pub fn file_inside(folder: &Path, name: &str) -> Result<PathBuf, String> {
    if let Some(problem) = plain_name_problem(name) {
        return Err(format!("'{name}' is not a plain file name ({problem})"));
    }
    let path = folder.join(name);
    if let Ok(metadata) = std::fs::symlink_metadata(&path)
        && metadata.file_type().is_symlink()
    {
        let inside = match (path.canonicalize(), folder.canonicalize()) {
            (Ok(target), Ok(folder)) => target.starts_with(&folder),
            _ => false,
        };
        if !inside {
            return Err(format!(
                "'{name}' is a link leading outside {}",
                folder.display()
            ));
        }
    }
    Ok(path)
}

/// Reads a whole file, refusing one larger than `max_bytes` before reading it.
pub fn read_bounded(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    if length > max_bytes {
        return Err(too_large(length, max_bytes));
    }
    let mut bytes = Vec::with_capacity(length as usize);
    // A file still growing is read no further than the limit.
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64, max_bytes));
    }
    Ok(bytes)
}

/// As [`read_bounded`], as text; a file that does not exist reads as empty.
pub fn read_text_bounded(path: &Path, max_bytes: u64) -> std::io::Result<String> {
    match read_bounded(path, max_bytes) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|error| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, error.utf8_error())
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(error) => Err(error),
    }
}

fn too_large(length: u64, max_bytes: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("the file is {length} bytes, more than the {max_bytes} Kiln reads for it"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_only() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "/etc/passwd",
            "C:x",
            "a\0b",
        ] {
            assert!(plain_name_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["model.bpk", "model-0001.bpk", ".hidden", "a..b"] {
            assert!(plain_name_problem(good).is_none(), "{good:?}");
        }
    }
}
