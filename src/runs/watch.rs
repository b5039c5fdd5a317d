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
                if !changes_content(&event.kind) {
                    return;
                }
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

/// Whether an event may change what a reader sees. Opening or reading a file does not, and
/// must not count: the reader's own reads would otherwise wake it again, forever.
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
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

    #[test]
    fn reading_a_run_is_not_a_change() {
        use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind};
        assert!(!changes_content(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(changes_content(&EventKind::Modify(ModifyKind::Any)));
        assert!(changes_content(&EventKind::Create(CreateKind::File)));
    }

    #[test]
    fn reading_a_watched_store_does_not_wake_the_watcher() {
        let root = std::env::temp_dir().join(format!("kiln-watch-read-{}", std::process::id()));
        let run = root.join("run-1");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("run.json"), "{}").unwrap();
        let watcher = StoreWatcher::start(&root, || {}).unwrap();
        for _ in 0..3 {
            std::fs::read(run.join("run.json")).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(watcher.take_changed().is_empty());
        std::fs::write(run.join("metrics.jsonl"), "{}\n").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut changed = BTreeSet::new();
        while changed.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
            changed = watcher.take_changed();
        }
        assert_eq!(changed.into_iter().collect::<Vec<_>>(), vec!["run-1"]);
        let _ = std::fs::remove_dir_all(&root);
    }
}
