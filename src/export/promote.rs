//! Promoting a sweep's winner: the best trial's best checkpoint (by the sweep's metric, not its
//! last) exported as a bundle whose card names the sweep, the trial's rank and its settings, and
//! scored once on the test split when the data has one.

use std::path::Path;

use super::{BundlePaths, CardSweep, ExportError, ExportOptions, export_checkpoint};
use crate::runs::{RunStore, TestResult};
use crate::sweep::{SweepError, SweepStore, SweepStoreError};

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error(transparent)]
    Sweep(#[from] SweepError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("sweep {0} has no trial with a result yet")]
    NoResult(String),
}

impl From<SweepStoreError> for PromoteError {
    fn from(error: SweepStoreError) -> Self {
        PromoteError::Sweep(SweepError::Store(error))
    }
}

impl From<crate::runs::StoreError> for PromoteError {
    fn from(error: crate::runs::StoreError) -> Self {
        PromoteError::Sweep(SweepError::Runs(error))
    }
}

/// What was promoted and where it went.
#[derive(Debug, Clone)]
pub struct Promoted {
    pub run_id: String,
    pub epoch: usize,
    pub sweep: CardSweep,
    pub paths: BundlePaths,
    pub test: Option<TestResult>,
}

/// The run and checkpoint epoch a promotion would export: the best trial's best repeat, at the
/// epoch where its sweep metric was best.
pub fn winner(runs_dir: &Path, query: &str) -> Result<(String, usize, CardSweep), PromoteError> {
    let record = SweepStore::open(runs_dir).find(query)?;
    let goal = record.spec.goal();
    let summaries = record.summaries();
    let best = summaries
        .iter()
        .find(|summary| summary.rank == Some(1))
        .ok_or_else(|| PromoteError::NoResult(record.id.clone()))?;
    let run = best
        .best_run(goal)
        .ok_or_else(|| PromoteError::NoResult(record.id.clone()))?;
    let run_id = run.run_id.clone().unwrap_or_default();
    let dir = RunStore::open(runs_dir)?.find(&run_id)?;
    let index = dir.read_index()?;
    // The kept checkpoint where the metric is best (the trial's runs keep that one by design).
    let entry = index
        .checkpoints
        .iter()
        .filter_map(|entry| Some((entry, *entry.metrics.get(&record.spec.metric)?)))
        .filter(|(_, value)| value.is_finite())
        .min_by(|a, b| goal.as_cost(a.1).total_cmp(&goal.as_cost(b.1)))
        .map(|(entry, _)| entry.epoch)
        .ok_or_else(|| PromoteError::NoResult(record.id.clone()))?;
    let card = CardSweep {
        sweep_id: record.id.clone(),
        sweep_name: record.name.clone(),
        trial: best.trial,
        repeat: run.repeat,
        rank: 1,
        trials: summaries.len(),
        metric: record.spec.metric.clone(),
        goal,
        value: best.value.unwrap_or(f64::NAN),
        params: best.params.clone(),
    };
    Ok((run_id, entry, card))
}

/// Exports the winner to `out`; the test split (if the data has one) is scored now, once.
pub fn promote(
    runs_dir: &Path,
    query: &str,
    out: &Path,
    force: bool,
) -> Result<Promoted, PromoteError> {
    let (run_id, epoch, sweep) = winner(runs_dir, query)?;
    let record = RunStore::open(runs_dir)?.find(&run_id)?.read_record()?;
    let onnx = super::onnx_support(&record.model).is_ok();
    let options = ExportOptions {
        onnx,
        force,
        evaluate_test: record.data.test.is_some(),
        sweep: Some(sweep.clone()),
        ..ExportOptions::default()
    };
    let paths = export_checkpoint(runs_dir, &format!("{run_id}@{epoch}"), out, &options)?;
    let test = RunStore::open(runs_dir)?
        .find(&run_id)?
        .read_record()?
        .test
        .filter(|result| result.epoch == epoch);
    Ok(Promoted {
        run_id,
        epoch,
        sweep,
        paths,
        test,
    })
}
