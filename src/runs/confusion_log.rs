//! `confusion.jsonl`: the validation confusion matrix of every epoch of a classification run,
//! append-only like the metrics log. Checkpoints keep theirs too, but only the best and the
//! latest checkpoints are kept; this keeps every epoch's.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ConfusionLine {
    epoch: usize,
    /// `confusion[actual][predicted]` counts on the validation split.
    confusion: Vec<Vec<u64>>,
}

/// Confusion matrices by epoch; for an epoch logged twice (a resumed run repeats the epochs after
/// its checkpoint), the later line wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfusionLog {
    pub by_epoch: BTreeMap<usize, Vec<Vec<u64>>>,
    /// Lines that could not be parsed (a torn last line after a crash, typically).
    pub bad_lines: Vec<usize>,
}

impl ConfusionLog {
    /// Reads the log, keeping epochs up to `last_epoch` (later ones were never checkpointed).
    pub fn read(path: &Path, last_epoch: usize) -> std::io::Result<Self> {
        let text = super::untrusted::read_text_bounded(path, super::untrusted::MAX_LOG_BYTES)?;
        Ok(Self::parse(&text, last_epoch))
    }

    /// Parses the log's text, keeping epochs up to `last_epoch`.
    pub fn parse(text: &str, last_epoch: usize) -> Self {
        let mut log = Self::default();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<ConfusionLine>(line) {
                Ok(entry) if entry.epoch <= last_epoch => {
                    log.by_epoch.insert(entry.epoch, entry.confusion);
                }
                Ok(_) => {}
                Err(_) => log.bad_lines.push(index + 1),
            }
        }
        log
    }
}

/// Appends an epoch's matrix, left for [`super::atomic::sync_data`] to flush to disk (as the
/// metrics log).
pub fn append_confusion(path: &Path, epoch: usize, confusion: &[Vec<u64>]) -> std::io::Result<()> {
    let line = serde_json::to_string(&ConfusionLine {
        epoch,
        confusion: confusion.to_vec(),
    })
    .map_err(std::io::Error::other)?;
    super::atomic::append_lines_unsynced(path, &[&line])
}
