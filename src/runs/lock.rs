//! One writer per run: `lock.json` in the run folder names the process training it (host and
//! process id) and carries a heartbeat, so a second writer is refused with a message naming the
//! holder, and a lock whose holder is gone — a dead process here, or silence from another
//! machine sharing the store — is taken over. Readers never need the lock.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::atomic::{unique_temp_path, write_json_atomic};
use super::untrusted::{MAX_JSON_BYTES, read_bounded};

pub const LOCK_FILE: &str = "lock.json";
/// How often the holder renews its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A holder silent for this long counts as gone (generous, for clocks that disagree a little).
pub const STALE_AFTER_SECS: i64 = 60;

/// Who holds a run's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub host: String,
    pub pid: u32,
    /// RFC 3339: when the lock was taken, and the holder's latest sign of life.
    pub since: String,
    pub heartbeat: String,
    /// Unique per lock taken, so a holder can tell its lock from a successor's.
    pub token: String,
}

impl LockHolder {
    fn new() -> Self {
        let now = chrono::Utc::now().to_rfc3339();
        Self {
            host: this_host(),
            pid: std::process::id(),
            since: now.clone(),
            heartbeat: now,
            token: format!("{:016x}", rand::random::<u64>()),
        }
    }

    /// Seconds since the last heartbeat (`None` if it cannot be read).
    pub fn silent_secs(&self) -> Option<i64> {
        let beat = chrono::DateTime::parse_from_rfc3339(&self.heartbeat).ok()?;
        Some((chrono::Utc::now() - beat.with_timezone(&chrono::Utc)).num_seconds())
    }

    /// Alive: a recent heartbeat and, on this machine, a running process.
    pub fn is_live(&self) -> bool {
        let fresh = self
            .silent_secs()
            .is_some_and(|secs| secs < STALE_AFTER_SECS);
        if self.host == this_host() {
            fresh && process_alive(self.pid)
        } else {
            fresh
        }
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "process {} on {} (since {}",
            self.pid, self.host, self.since
        )?;
        match self.silent_secs() {
            Some(secs) => write!(f, ", last heartbeat {}s ago)", secs.max(0)),
            None => f.write_str(")"),
        }
    }
}

/// The lock's holder as the file says, alive or not; `None` without a readable lock file.
pub fn read_holder(run_dir: &Path) -> Option<LockHolder> {
    let bytes = read_bounded(&run_dir.join(LOCK_FILE), MAX_JSON_BYTES).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The live holder of a run's lock, if any: the run is being trained right now.
pub fn live_holder(run_dir: &Path) -> Option<LockHolder> {
    read_holder(run_dir).filter(LockHolder::is_live)
}

/// A held lock. Dropping it stops the heartbeat and removes the lock file (if still ours).
pub struct RunLock {
    path: PathBuf,
    token: String,
    stop: Arc<AtomicBool>,
    /// Set when another process took the lock over (this holder looked dead to it).
    lost: Arc<AtomicBool>,
    /// Flags to raise when the lock is lost (the trainer's stop flag).
    on_lost: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    heartbeat: Option<JoinHandle<()>>,
}

impl RunLock {
    /// Takes the lock of the run in `run_dir`, or says who holds it.
    pub fn acquire(run_dir: &Path) -> Result<Self, StoreError> {
        let path = run_dir.join(LOCK_FILE);
        let run = run_dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        // Taking over a stale lock races with other takers; a few rounds settle it.
        for _ in 0..4 {
            let holder = LockHolder::new();
            if create_exclusive(&path, &holder).map_err(io)? {
                return Ok(Self::start(path.clone(), holder));
            }
            match read_holder(run_dir) {
                Some(current) if current.is_live() => {
                    return Err(StoreError::Busy {
                        run,
                        holder: current.to_string(),
                    });
                }
                Some(stale) => {
                    take_over(&path, Some(&stale)).map_err(|holder| StoreError::Busy {
                        run: run.clone(),
                        holder,
                    })?
                }
                // Unreadable: a lock being written right now, or debris. Only old debris goes.
                None if file_age_secs(&path).is_some_and(|age| age < STALE_AFTER_SECS) => {
                    return Err(StoreError::Busy {
                        run,
                        holder: "another process (its lock file is unreadable)".to_string(),
                    });
                }
                None => take_over(&path, None).map_err(|holder| StoreError::Busy {
                    run: run.clone(),
                    holder,
                })?,
            }
        }
        Err(StoreError::Busy {
            run,
            holder: "other processes racing for it".to_string(),
        })
    }

    fn start(path: PathBuf, holder: LockHolder) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicBool::new(false));
        let on_lost: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let token = holder.token.clone();
        let thread = {
            let (path, stop, lost, on_lost) =
                (path.clone(), stop.clone(), lost.clone(), on_lost.clone());
            std::thread::Builder::new()
                .name("kiln-run-lock".to_string())
                .spawn(move || heartbeat(&path, holder, &stop, &lost, &on_lost))
                .ok()
        };
        Self {
            path,
            token,
            stop,
            lost,
            on_lost,
            heartbeat: thread,
        }
    }

    /// Raises `flag` if another process takes this lock over.
    pub fn raise_when_lost(&self, flag: Arc<AtomicBool>) {
        if self.lost.load(Ordering::SeqCst) {
            flag.store(true, Ordering::SeqCst);
        }
        if let Ok(mut flags) = self.on_lost.lock() {
            flags.push(flag);
        }
    }

    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.heartbeat.take() {
            let _ = thread.join();
        }
        let run_dir = self.path.parent().unwrap_or(Path::new("."));
        if read_holder(run_dir).is_some_and(|holder| holder.token == self.token) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Renews the heartbeat until stopped; notices when the lock is no longer ours.
fn heartbeat(
    path: &Path,
    mut holder: LockHolder,
    stop: &AtomicBool,
    lost: &AtomicBool,
    on_lost: &Mutex<Vec<Arc<AtomicBool>>>,
) {
    let tick = Duration::from_millis(100);
    let run_dir = path.parent().unwrap_or(Path::new("."));
    loop {
        let mut waited = Duration::ZERO;
        while waited < HEARTBEAT_INTERVAL {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(tick);
            waited += tick;
        }
        let ours = read_holder(run_dir).is_some_and(|current| current.token == holder.token);
        if !ours {
            lost.store(true, Ordering::SeqCst);
            if let Ok(flags) = on_lost.lock() {
                for flag in flags.iter() {
                    flag.store(true, Ordering::SeqCst);
                }
            }
            return;
        }
        holder.heartbeat = chrono::Utc::now().to_rfc3339();
        // A failed renewal (a full disk) is retried next tick; others see the lock age meanwhile.
        let _ = write_json_atomic(path, &holder);
    }
}

/// Creates the lock file with its full content in one step (a hard link of a finished temp
/// file), so no reader sees it half-written; false when a lock file exists already.
fn create_exclusive(path: &Path, holder: &LockHolder) -> std::io::Result<bool> {
    let temp = unique_temp_path(path);
    let mut bytes = serde_json::to_vec_pretty(holder).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    std::fs::write(&temp, &bytes)?;
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        // File systems without hard links: exclusive creation, then the content.
        Err(_) => match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut file) => {
                use std::io::Write;
                file.write_all(&bytes)?;
                file.sync_all()?;
                Ok(true)
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(error),
        },
    }
}

/// Moves a stale lock aside, checking that what moved is the lock judged stale (another taker
/// may have replaced it meanwhile; then it goes back and that taker holds the run).
fn take_over(path: &Path, stale: Option<&LockHolder>) -> Result<(), String> {
    let aside = unique_temp_path(path);
    if std::fs::rename(path, &aside).is_err() {
        return Ok(()); // gone already: someone else moved it; try again
    }
    let moved: Option<LockHolder> = read_bounded(&aside, MAX_JSON_BYTES)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let same = match (stale, &moved) {
        (Some(stale), Some(moved)) => stale.token == moved.token,
        (None, None) => true,
        _ => false,
    };
    if !same {
        let _ = std::fs::hard_link(&aside, path);
        let _ = std::fs::remove_file(&aside);
        return Err(moved.map_or_else(|| "another process".to_string(), |h| h.to_string()));
    }
    let _ = std::fs::remove_file(&aside);
    Ok(())
}

fn file_age_secs(path: &Path) -> Option<i64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(modified.elapsed().map_or(0, |age| age.as_secs() as i64))
}

/// This machine's name, as other machines sharing the store see it in lock files.
pub fn this_host() -> String {
    #[cfg(unix)]
    {
        let mut buffer = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
        let result =
            unsafe { libc::gethostname(buffer.as_mut_ptr().cast::<libc::c_char>(), buffer.len()) };
        if result == 0 {
            let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
            let name = String::from_utf8_lossy(&buffer[..end]).into_owned();
            if !name.is_empty() {
                return name;
            }
        }
    }
    std::env::var("COMPUTERNAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".to_string())
}

/// Whether a process of this machine is running.
#[cfg(target_os = "linux")]
pub(crate) fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
pub(crate) fn process_alive(_pid: u32) -> bool {
    true
}
