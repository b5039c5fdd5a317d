//! The run folder's writes during training — metric points, each epoch's confusion matrix,
//! checkpoint files, the index and `run.json` — on a thread of their own, in the order they
//! always had, so the training loop goes on with the next epoch while the disk syncs (about ten
//! syncs an epoch: 4 ms of a 90 ms MLP epoch on this project's VM, BENCHMARKS.md overhead).
//!
//! A metric that cannot be appended is a warning, as before. A checkpoint or record that cannot
//! be written stops the writing there: the loop asks at each epoch's end and ends the run as
//! failed, and the run's record falls back to the last one written, which names only
//! checkpoints that are on disk.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{Scope, ScopedJoinHandle};

use super::engine::Emitter;
use super::events::TrainEvent;
use crate::runs::{CheckpointEntry, CheckpointIndex, MetricPoint, RunDir, RunRecord};

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
            apply(write, dir, emitter, &self.written);
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
    for write in receiver {
        apply(write, dir, emitter, written);
    }
}

fn apply(write: Write, dir: &RunDir, emitter: &Emitter, written: &Mutex<Written>) {
    let failed = || {
        written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failure
            .is_some()
    };
    match write {
        Write::Log(points, confusion) => {
            append_metrics(dir, emitter, &points);
            if let Some((epoch, confusion)) = confusion {
                append_confusion(dir, emitter, epoch, &confusion);
            }
        }
        // After a failure nothing more is saved: the folder keeps naming what it holds.
        Write::Epoch(_) if failed() => {}
        Write::Epoch(write) => {
            let result = write_epoch(dir, emitter, &write);
            let mut state = written.lock().unwrap_or_else(PoisonError::into_inner);
            match result {
                Ok(()) => state.record = Some(write.record),
                Err(message) => state.failure = Some(message),
            }
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

fn write_epoch(dir: &RunDir, emitter: &Emitter, write: &EpochWrite) -> Result<(), String> {
    let epoch = write.entry.epoch;
    append_metrics(dir, emitter, &write.points);
    if let Some(confusion) = &write.entry.confusion {
        append_confusion(dir, emitter, epoch, confusion);
    }
    // A full disk or a vanished folder: stop with the earlier checkpoints intact.
    dir.write_checkpoint(
        &write.entry,
        &write.model_bytes,
        &write.optimizer_bytes,
        &write.index,
        &write.dropped,
    )
    .map_err(|error| format!("saving checkpoint {epoch}: {error}"))?;
    dir.write_record(&write.record)
        .map_err(|error| format!("updating run.json: {error}"))?;
    emitter.send(TrainEvent::Checkpoint {
        epoch,
        best_epoch: write.best_epoch,
    });
    Ok(())
}
