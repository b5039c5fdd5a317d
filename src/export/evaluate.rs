//! A checkpoint run over its own validation split again: which rows (images) it gets wrong.

use std::path::Path;

use burn::tensor::Device;

use super::ExportError;
use crate::data::{PreparedData, Task, prepare};
use crate::model::Network;
use crate::runs::{CheckpointSelector, RunStore};
use crate::train::{Predictor, argmax, softmax};

/// One validation row and the checkpoint's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationPrediction {
    /// Index into the dataset (an image of the set, or a table row).
    pub row: usize,
    pub actual: usize,
    pub predicted: usize,
    /// Probability of the predicted class.
    pub confidence: f64,
}

/// A classification checkpoint's predictions on its validation split, with the data they came from.
pub struct CheckpointEvaluation {
    pub data: PreparedData,
    pub predictions: Vec<ValidationPrediction>,
}

impl CheckpointEvaluation {
    /// The wrong answers, most confident first (the most telling mistakes).
    pub fn misclassified(&self) -> Vec<&ValidationPrediction> {
        let mut wrong: Vec<&ValidationPrediction> = self
            .predictions
            .iter()
            .filter(|p| p.actual != p.predicted)
            .collect();
        wrong.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        wrong
    }
}

/// Reloads the run's dataset (which must still have the run's fingerprint) and the checkpoint
/// of `epoch`, and predicts every validation row on the CPU.
pub fn evaluate_checkpoint(
    runs_dir: &Path,
    run: &str,
    epoch: usize,
) -> Result<CheckpointEvaluation, ExportError> {
    let store = RunStore::open(runs_dir)?;
    let dir = store.find(run)?;
    let record = dir.read_record()?;
    if record.schema.task() != Task::Classification {
        return Err(ExportError::Model(
            "only classification checkpoints have right and wrong answers".to_string(),
        ));
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
    let device = Device::flex();
    let input = record.preprocessor.input_shape();
    let classes = record.output_width();
    let bytes = dir.read_checkpoint_file(&entry.model_file)?;
    let model = Network::from_burnpack(&record.model, &input, classes, bytes, &device)
        .map_err(|error| ExportError::Model(format!("checkpoint {epoch}: {error}")))?;
    let outputs = Predictor {
        model: &model,
        device: &device,
    }
    .outputs(&data.valid.inputs, data.valid.width)
    .map_err(ExportError::Model)?;
    let predictions = data
        .split
        .valid
        .iter()
        .zip(&data.valid.labels)
        .zip(outputs.chunks(classes.max(1)))
        .map(|((&row, &label), logits)| {
            let predicted = argmax(logits);
            ValidationPrediction {
                row,
                actual: label as usize,
                predicted,
                confidence: softmax(logits)[predicted],
            }
        })
        .collect();
    Ok(CheckpointEvaluation { data, predictions })
}
