//! Writing a bundle's files all or nothing: every file goes to a temporary file first, then
//! they are renamed into place in order (the card last); if any step fails, the files already
//! placed are removed and any files they replaced are put back.

use std::path::{Path, PathBuf};

use crate::runs::atomic::unique_temp_path;

/// Writes `files` (path, bytes) so that either all of them are in place, or none of them
/// changed. On failure, the path that failed and why.
pub(crate) fn write_all_or_nothing(
    files: &[(PathBuf, Vec<u8>)],
) -> Result<(), (PathBuf, std::io::Error)> {
    let mut temps: Vec<PathBuf> = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        let temp = unique_temp_path(path);
        if let Err(error) = write_synced(&temp, bytes) {
            let _ = std::fs::remove_file(&temp);
            remove_all(&temps);
            return Err((path.clone(), error));
        }
        temps.push(temp);
    }
    let mut placed: Vec<(&Path, Option<PathBuf>)> = Vec::with_capacity(files.len());
    for ((path, _), temp) in files.iter().zip(&temps) {
        if let Err(error) = place(path, temp).map(|backup| placed.push((path.as_path(), backup))) {
            // Undo in reverse: the new files go, the files they replaced come back.
            for (path, backup) in placed.iter().rev() {
                let _ = std::fs::remove_file(path);
                if let Some(backup) = backup {
                    let _ = std::fs::rename(backup, path);
                }
            }
            remove_all(&temps);
            return Err((path.clone(), error));
        }
    }
    for (_, backup) in placed {
        if let Some(backup) = backup {
            let _ = std::fs::remove_file(backup);
        }
    }
    if let Some(parent) = files.first().and_then(|(path, _)| path.parent())
        && let Ok(dir) = std::fs::File::open(parent)
    {
        // Durable renames need a synced directory; not every platform allows it.
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Moves `temp` to `path`, first moving a file already at `path` aside; returns where it went.
fn place(path: &Path, temp: &Path) -> std::io::Result<Option<PathBuf>> {
    let backup = match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a folder is in the way of this file",
            ));
        }
        Ok(_) => {
            let backup = unique_temp_path(path);
            std::fs::rename(path, &backup)?;
            Some(backup)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    if let Err(error) = std::fs::rename(temp, path) {
        if let Some(backup) = &backup {
            let _ = std::fs::rename(backup, path);
        }
        return Err(error);
    }
    Ok(backup)
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn remove_all(paths: &[PathBuf]) {
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}
