//! Watching a store for changes (inotify, FSEvents, ReadDirectoryChanges through `notify`), so
//! a reader re-reads only the runs that changed and sleeps otherwise. Where the platform cannot
//! watch (some network filesystems), [`StoreWatcher::start`] fails and callers poll instead.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::{RecursiveMode, Watcher};

/// Run ids whose folders changed since the last [`StoreWatcher::take_changed`].
pub struct StoreWatcher {
    // Kept alive: dropping it stops the watch.
    _watcher: notify::RecommendedWatcher,
    changed: Arc<Mutex<BTreeSet<String>>>,
}

impl StoreWatcher {
    /// Watches `root` (recursively); `wake` is called after each batch of events (e.g. to
    /// repaint a window).
    pub fn start(root: &Path, wake: impl Fn() + Send + 'static) -> notify::Result<Self> {
        let changed: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let sink = changed.clone();
        let root_for_events: PathBuf = root.to_path_buf();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else {
                    return;
                };
                let ids: Vec<String> = event
                    .paths
                    .iter()
                    .filter_map(|path| run_id_of(&root_for_events, path))
                    .collect();
                if ids.is_empty() {
                    return;
                }
                if let Ok(mut changed) = sink.lock() {
                    changed.extend(ids);
                }
                wake();
            })?;
        watcher.watch(root, RecursiveMode::Recursive)?;
        Ok(Self {
            _watcher: watcher,
            changed,
        })
    }

    pub fn take_changed(&self) -> BTreeSet<String> {
        self.changed
            .lock()
            .map(|mut changed| std::mem::take(&mut *changed))
            .unwrap_or_default()
    }
}

/// The run folder a changed path belongs to (the first component under the store), skipping
/// the store's own hidden files (the index, sweeps, temp files).
fn run_id_of(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let first = relative.components().next()?;
    let id = first.as_os_str().to_string_lossy().into_owned();
    (!id.starts_with('.')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_attributed_to_their_run() {
        let root = Path::new("/store");
        assert_eq!(
            run_id_of(root, Path::new("/store/run-1/metrics.jsonl")).as_deref(),
            Some("run-1")
        );
        assert_eq!(run_id_of(root, Path::new("/store/.kiln-index.json")), None);
        assert_eq!(run_id_of(root, Path::new("/elsewhere/x")), None);
    }
}
