//! The one look at the test split: a chosen checkpoint scored on rows that no training run,
//! sweep, pruner or early stop has read. Kept apart from everything that selects models.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;

use super::ExportError;
use crate::data::{Task, prepare};
use crate::model::Network;
use crate::runs::{CheckpointSelector, RunStatus, RunStore, TestResult};
use crate::train::{Predictor, score};

/// Scores checkpoint `epoch` of `run` on the run's test split and records the result in the
/// run. The dataset must still have the run's fingerprint.
pub fn evaluate_test_split(
    runs_dir: &Path,
    run: &str,
    epoch: usize,
) -> Result<TestResult, ExportError> {
    let store = RunStore::open(runs_dir)?;
    let dir = store.find(run)?;
    let record = dir.read_record()?;
    if record.data.test.is_none() {
        return Err(ExportError::Model(format!(
            "run {} was trained without a test split; train with a test fraction or file to measure one",
            record.id
        )));
    }
    let entry = dir.checkpoint(&CheckpointSelector::Epoch(epoch))?;
    let data = prepare(&record.data)?;
    if data.fingerprint.id != record.fingerprint.id {
        return Err(ExportError::Model(format!(
            "{} changed since the run was trained (fingerprint {} now, {} then)",
            record.data.path.display(),
            data.fingerprint.short_id(),
            record.fingerprint.short_id()
        )));
    }
    let Some(test) = &data.test else {
        return Err(ExportError::Model(
            "the dataset gave no test rows".to_string(),
        ));
    };
    let device = Device::flex();
    let input = record.preprocessor.input_shape();
    let outputs_width = record.output_width();
    let bytes = dir.read_checkpoint_file(&entry.model_file)?;
    let model = Network::from_burnpack(&record.model, &input, outputs_width, bytes, &device)
        .map_err(|error| ExportError::Model(format!("checkpoint {epoch}: {error}")))?;
    let outputs = Predictor {
        model: &model,
        device: &device,
    }
    .outputs(&test.inputs, test.width)
    .map_err(ExportError::Model)?;
    let task = record.schema.task();
    let result = score(
        &outputs,
        test,
        task,
        outputs_width,
        record.preprocessor.target_std,
    );
    let mut metrics = BTreeMap::from([("test_loss".to_string(), result.loss)]);
    match task {
        Task::Classification => {
            if let Some(accuracy) = result.accuracy {
                metrics.insert("test_accuracy".to_string(), accuracy);
            }
        }
        Task::Regression => {
            if let Some(rmse) = result.rmse {
                metrics.insert("test_rmse".to_string(), rmse);
            }
        }
    }
    let measured = TestResult {
        epoch,
        rows: test.rows,
        metrics,
        evaluated: chrono::Utc::now().to_rfc3339(),
    };
    // Recorded with the run; a run that trains right now owns its run.json, so it is not
    // touched then (the result still goes into the bundle's card).
    let mut latest = dir.read_record()?;
    if dir.status()? != RunStatus::Running {
        latest.test = Some(measured.clone());
        dir.write_record(&latest)?;
    }
    Ok(measured)
}
