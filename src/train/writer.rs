//! The run folder's writes during training — metric points, each epoch's confusion matrix,
//! checkpoint files, the index and `run.json` — on a thread of their own, in the order they
//! always had, so the training loop goes on with the next epoch while the disk syncs.
//!
//! Epochs that end less than [`GROUP_WINDOW`] after the last write are written together, when
//! that window closes (group commit): the logs flushed once, the files of the checkpoints the
//! keep policy still holds, one index and one `run.json`. Each write costs about ten syncs (4 ms
//! on this project's VM, 2.6 % of a 96 ms MLP epoch in BENCHMARKS.md's overhead section), which
//! short epochs paid every time; epochs longer than the window are written as each ends, as
//! before. A checkpoint is announced once on disk; a crash loses at most the window's epochs,
//! never one announced.
//!
//! A metric that cannot be appended is a warning, as before. A checkpoint or record that cannot
//! be written stops the writing there: the loop asks at each epoch's end and ends the run as
//! failed, and the run's record falls back to the last one written, which names only
//! checkpoints that are on disk.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use super::engine::Emitter;
use super::events::TrainEvent;
use crate::runs::{
    CheckpointEntry, CheckpointFiles, CheckpointIndex, MetricPoint, RunDir, RunRecord,
};

/// How long an epoch's checkpoint may wait to be written with the epochs after it.
const GROUP_WINDOW: Duration = Duration::from_secs(1);
/// Checkpoint bytes held back at most; more are written at once (a large model's epochs).
const GROUP_BYTES: usize = 256 << 20;

/// What an epoch's end writes, in this order.
pub(crate) struct EpochWrite {
    pub points: Vec<MetricPoint>,
    /// The checkpoint; its confusion matrix is also appended to the epoch log.
    pub entry: CheckpointEntry,
    pub model_bytes: Vec<u8>,
    pub optimizer_bytes: Vec<u8>,
    /// The index with `entry` inserted, and the entries its keep policy dropped.
    pub index: CheckpointIndex,
    pub dropped: Vec<CheckpointEntry>,
    /// `run.json` once the checkpoint is on disk.
    pub record: RunRecord,
    pub best_epoch: Option<usize>,
}

enum Write {
    /// Metric points, and an epoch's confusion matrix (an epoch that saves no checkpoint).
    Log(Vec<MetricPoint>, Option<(usize, Vec<Vec<u64>>)>),
    Epoch(Box<EpochWrite>),
}

#[derive(Default)]
struct Written {
    failure: Option<String>,
    /// The record as last written: what the folder says.
    record: Option<RunRecord>,
}

pub(crate) struct StoreWriter<'scope> {
    sender: Option<SyncSender<Write>>,
    thread: Option<ScopedJoinHandle<'scope, ()>>,
    written: Arc<Mutex<Written>>,
}

impl<'scope> StoreWriter<'scope> {
    pub fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        dir: &'env RunDir,
        emitter: &'env Emitter,
    ) -> Self {
        // One epoch ahead at most: a loop faster than the disk waits instead of piling up
        // checkpoints in memory.
        let (sender, receiver) = sync_channel(1);
        let written = Arc::new(Mutex::new(Written::default()));
        let shared = written.clone();
        let thread = std::thread::Builder::new()
            .name("kiln-store-writer".into())
            .spawn_scoped(scope, move || write_all(receiver, dir, emitter, &shared));
        match thread {
            Ok(thread) => Self {
                sender: Some(sender),
                thread: Some(thread),
                written,
            },
            // No thread: every write happens on the caller's (see `send`).
            Err(_) => Self {
                sender: None,
                thread: None,
                written,
            },
        }
    }

    /// The record the folder holds now (written by the loop itself before the first epoch).
    pub fn record_written(&self, record: &RunRecord) {
        self.lock().record = Some(record.clone());
    }

    /// Why writing stopped, if it did.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    pub fn log(
        &self,
        dir: &RunDir,
        emitter: &Emitter,
        points: Vec<MetricPoint>,
        confusion: Option<(usize, Vec<Vec<u64>>)>,
    ) {
        self.send(dir, emitter, Write::Log(points, confusion));
    }

    pub fn epoch(&self, dir: &RunDir, emitter: &Emitter, write: EpochWrite) {
        self.send(dir, emitter, Write::Epoch(Box::new(write)));
    }

    fn send(&self, dir: &RunDir, emitter: &Emitter, write: Write) {
        let unsent = match &self.sender {
            Some(sender) => sender.send(write).err().map(|error| error.0),
            None => Some(write),
        };
        if let Some(write) = unsent {
            let mut group = Group::default();
            group.add(write, dir, emitter);
            group.commit(dir, emitter, &self.written);
        }
    }

    /// Waits for every write; returns why writing stopped, if it did, and the record the folder
    /// holds.
    pub fn finish(mut self) -> (Option<String>, Option<RunRecord>) {
        self.sender.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            let mut written = self.lock();
            written
                .failure
                .get_or_insert_with(|| "the store writer stopped".to_string());
        }
        let written = self.lock();
        (written.failure.clone(), written.record.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Written> {
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn write_all(receiver: Receiver<Write>, dir: &RunDir, emitter: &Emitter, written: &Mutex<Written>) {
    let mut group = Group::default();
    // The first epoch is written as soon as it ends.
    let mut window_end = Instant::now();
    loop {
        let received = if group.is_empty() {
            receiver.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            receiver.recv_timeout(window_end.saturating_duration_since(Instant::now()))
        };
        match received {
            Ok(write) => group.add(write, dir, emitter),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() >= window_end || group.bytes >= GROUP_BYTES {
            group.commit(dir, emitter, written);
            window_end = Instant::now() + GROUP_WINDOW;
        }
    }
    group.commit(dir, emitter, written);
}

/// Writes received since the last commit: the logs are appended as they come (flushed at the
/// commit), the epochs' checkpoints held until it.
#[derive(Default)]
struct Group {
    epochs: Vec<EpochWrite>,
    logs_appended: bool,
    bytes: usize,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.epochs.is_empty() && !self.logs_appended
    }

    fn add(&mut self, write: Write, dir: &RunDir, emitter: &Emitter) {
        self.logs_appended = true;
        match write {
            Write::Log(points, confusion) => {
                append_metrics(dir, emitter, &points);
                if let Some((epoch, confusion)) = confusion {
                    append_confusion(dir, emitter, epoch, &confusion);
                }
            }
            Write::Epoch(write) => {
                append_metrics(dir, emitter, &write.points);
                if let Some(confusion) = &write.entry.confusion {
                    append_confusion(dir, emitter, write.entry.epoch, confusion);
                }
                // A held checkpoint the keep policy has let go is never written: its bytes go.
                for held in &mut self.epochs {
                    if write.index.at_epoch(held.entry.epoch).is_none() {
                        self.bytes -= held.model_bytes.len() + held.optimizer_bytes.len();
                        held.model_bytes = Vec::new();
                        held.optimizer_bytes = Vec::new();
                    }
                }
                self.bytes += write.model_bytes.len() + write.optimizer_bytes.len();
                self.epochs.push(*write);
            }
        }
    }

    /// Flushes the logs, then writes the checkpoints, the latest index and `run.json`, and
    /// announces each checkpoint.
    fn commit(&mut self, dir: &RunDir, emitter: &Emitter, written: &Mutex<Written>) {
        let epochs = std::mem::take(&mut self.epochs);
        self.bytes = 0;
        if std::mem::take(&mut self.logs_appended)
            && let Err(error) = dir.sync_logs()
        {
            emitter.send(TrainEvent::Warning {
                message: format!("could not log a metric: {error}"),
            });
        }
        // After a failure nothing more is saved: the folder keeps naming what it holds.
        let failed = written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failure
            .is_some();
        if failed {
            return;
        }
        let Some(latest) = epochs.last() else {
            return;
        };
        let result = write_epochs(dir, &epochs);
        let mut state = written.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(()) => state.record = Some(latest.record.clone()),
            Err(message) => {
                state.failure = Some(message);
                return;
            }
        }
        drop(state);
        for write in &epochs {
            emitter.send(TrainEvent::Checkpoint {
                epoch: write.entry.epoch,
                best_epoch: write.best_epoch,
            });
        }
    }
}

fn append_metrics(dir: &RunDir, emitter: &Emitter, points: &[MetricPoint]) {
    if let Err(error) = dir.append_metrics(points) {
        emitter.send(TrainEvent::Warning {
            message: format!("could not log a metric: {error}"),
        });
    }
}

fn append_confusion(dir: &RunDir, emitter: &Emitter, epoch: usize, confusion: &[Vec<u64>]) {
    if let Err(error) = dir.append_confusion(epoch, confusion) {
        emitter.send(TrainEvent::Warning {
            message: format!("could not log the confusion matrix: {error}"),
        });
    }
}

/// The epochs' checkpoints (those the latest index still holds), that index and the latest
/// `run.json`, in that order.
fn write_epochs(dir: &RunDir, epochs: &[EpochWrite]) -> Result<(), String> {
    let Some(latest) = epochs.last() else {
        return Ok(());
    };
    let files: Vec<CheckpointFiles<'_>> = epochs
        .iter()
        .map(|write| CheckpointFiles {
            entry: &write.entry,
            model_bytes: &write.model_bytes,
            optimizer_bytes: &write.optimizer_bytes,
        })
        .collect();
    let dropped: Vec<CheckpointEntry> = epochs
        .iter()
        .flat_map(|write| write.dropped.iter().cloned())
        .collect();
    // A full disk or a vanished folder: stop with the earlier checkpoints intact.
    dir.write_checkpoints(&files, &latest.index, &dropped)
        .map_err(|error| format!("saving checkpoint {}: {error}", latest.entry.epoch))?;
    dir.write_record(&latest.record)
        .map_err(|error| format!("updating run.json: {error}"))
}
