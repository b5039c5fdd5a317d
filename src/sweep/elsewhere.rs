//! A sweep whose trials train elsewhere, all at once (a compute target's job array): every
//! trial is planned up front, so only methods that need no earlier result qualify (grid and
//! random; TPE learns from finished trials and runs here). The sweep record is written like a
//! local sweep's, so `kiln sweep show`, the window and promotion read it the same way; its
//! trials' statuses and bests are refreshed from their (mirrored) runs.

use std::path::Path;

use super::planner::{Planner, Suggestion};
use super::record::{SweepRecord, SweepState, SweepStore, TrialRecord, TrialStatus};
use super::runner::{SweepError, fill_from_run, plan_trial};
use super::spec::{Method, PrunerSpec, SweepSpec, field_error};
use crate::data::prepare;
use crate::runs::RunStore;
use crate::train::PlannedRun;

/// A sweep recorded in the store (no trial started) and its trials' runs, planned.
pub struct PlannedSweep {
    pub record: SweepRecord,
    /// One per trial record, in the same order.
    pub runs: Vec<PlannedRun>,
}

/// Checks the spec for training elsewhere, records the sweep (state running, no local runner)
/// and plans every trial's run. On error nothing is left in the store.
pub fn plan_sweep_elsewhere(spec: SweepSpec, runs_dir: &Path) -> Result<PlannedSweep, SweepError> {
    spec.check()?;
    if spec.method == Method::Tpe {
        return Err(field_error(
            "method",
            "TPE chooses each trial from the results of earlier ones, so its trials cannot go out as one job array; use grid or random there, or run the TPE sweep here",
        )
        .into());
    }
    if spec.pruner != PrunerSpec::None {
        return Err(field_error(
            "pruner",
            "trials on a compute target are not pruned; leave out the pruner",
        )
        .into());
    }
    if spec.max_minutes.is_some() {
        return Err(field_error(
            "max_minutes",
            "a job array has no time budget of the sweep's own; use the target's time limit",
        )
        .into());
    }
    let data = prepare(&spec.data)?;
    spec.check_metric_for(data.schema.task())?;
    spec.model
        .validate_for(&data.preprocessor.input_shape())
        .map_err(|error| field_error("model", error.to_string()))?;
    RunStore::open(runs_dir)?;
    let planner = Planner::new(
        spec.method,
        spec.space()?,
        spec.seed,
        spec.concurrency,
        spec.max_trials,
    );
    let store = SweepStore::open(runs_dir);
    let name = spec.display_name();
    let id = store.create(&name)?;
    let mut record = SweepRecord::started(id, name, spec, None);
    let planned = plan_trials(&planner, &mut record, runs_dir);
    match planned {
        Ok(runs) if !runs.is_empty() => Ok(PlannedSweep { record, runs }),
        Ok(_) => {
            store.discard(&record.id);
            Err(field_error("parameters", "the sweep has no trials").into())
        }
        Err(error) => {
            store.discard(&record.id);
            Err(error)
        }
    }
}

fn plan_trials(
    planner: &Planner,
    record: &mut SweepRecord,
    runs_dir: &Path,
) -> Result<Vec<PlannedRun>, SweepError> {
    let mut runs = Vec::new();
    let none = std::collections::BTreeMap::new();
    for trial in 1..=record.spec.max_trials {
        let params = match planner.suggest(trial, &none) {
            Suggestion::Ready(params) => params,
            Suggestion::Wait | Suggestion::Exhausted => break,
        };
        for repeat in 0..record.spec.repeats {
            let trial = TrialRecord::planned(trial, repeat, params.clone());
            runs.push(plan_trial(record, &trial, runs_dir)?);
            record.trials.push(trial);
        }
    }
    Ok(runs)
}

/// Records the runs the trials were submitted as (in trial order) and writes the sweep.
pub fn record_submitted(
    runs_dir: &Path,
    record: &mut SweepRecord,
    run_ids: &[String],
    message: String,
) -> Result<(), SweepError> {
    for (trial, run_id) in record.trials.iter_mut().zip(run_ids) {
        trial.run_id = Some(run_id.clone());
        trial.status = TrialStatus::Running;
    }
    record.message = Some(message);
    record.updated = chrono::Utc::now().to_rfc3339();
    SweepStore::open(runs_dir).write(record)?;
    Ok(())
}

/// Removes a planned sweep that was never submitted.
pub fn discard_sweep(runs_dir: &Path, id: &str) {
    SweepStore::open(runs_dir).discard(id);
}

/// Refreshes a sweep without a local runner from its trials' runs: statuses, bests, and the
/// sweep's state once every trial has ended.
pub fn refresh_from_runs(runs_dir: &Path, query: &str) -> Result<SweepRecord, SweepError> {
    let sweeps = SweepStore::open(runs_dir);
    let mut record = sweeps.find(query)?;
    let store = RunStore::open(runs_dir)?;
    for trial in &mut record.trials {
        let Some(run_id) = trial.run_id.clone() else {
            continue;
        };
        if let Ok(status) = store.find(&run_id).and_then(|dir| dir.status()) {
            trial.status = TrialStatus::from_run(status);
        }
        fill_from_run(runs_dir, &record.spec, trial);
    }
    if record.state == SweepState::Running && record.trials.iter().all(|t| t.status.is_final()) {
        let failed = record
            .trials
            .iter()
            .all(|t| t.status == TrialStatus::Failed);
        record.state = if failed {
            SweepState::Failed
        } else {
            SweepState::Completed
        };
    }
    record.updated = chrono::Utc::now().to_rfc3339();
    sweeps.write(&record)?;
    Ok(record)
}
