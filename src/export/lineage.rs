//! Versions of a model: starting a run from an earlier model (a run's checkpoint or a bundle),
//! the history every version carries, and the champion/challenger comparison of a new version
//! with its parent on the new data.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::card::ModelCard;
use super::{ExportError, io_error, sha256_hex};
use crate::data::{
    EncodedMatrix, LoadedData, PreparedData, Preprocessor, Schema, Task, prepare_for_model,
};
use crate::model::{ModelConfig, Network};
use crate::runs::{Ancestor, CheckpointSelector, Lineage, RunStore};
use crate::train::{Predictor, WarmStart, score};

/// A model as the engine needs it: architecture, inputs, weights.
#[derive(Debug, Clone)]
pub struct ModelParts {
    pub model: ModelConfig,
    pub schema: Schema,
    pub preprocessor: Preprocessor,
    pub weights: Vec<u8>,
    /// Optimizer state, for a run's checkpoint.
    pub optimizer: Option<Vec<u8>>,
    /// This model as an ancestor of the next version.
    pub ancestor: Ancestor,
    /// Its own history, oldest first.
    pub history: Vec<Ancestor>,
}

/// Whether `source` names an exported bundle (a folder with a card, a card or a `.bpk`
/// beside one) rather than a run.
pub fn is_bundle(source: &str) -> bool {
    let path = Path::new(source);
    path.exists() && ModelCard::locate(path).is_ok()
}

/// The model `source` names: `RUN[@best|@last|@EPOCH]` in the store, or a bundle path.
pub fn load_model(runs_dir: &Path, source: &str) -> Result<ModelParts, ExportError> {
    if is_bundle(source) {
        from_bundle(Path::new(source))
    } else {
        from_run(runs_dir, source)
    }
}

fn from_run(runs_dir: &Path, source: &str) -> Result<ModelParts, ExportError> {
    let (query, selector) = CheckpointSelector::parse(source).map_err(ExportError::Model)?;
    let dir = RunStore::open(runs_dir)?.find(&query)?;
    let record = dir.read_record()?;
    let entry = dir.checkpoint(&selector)?;
    let weights = dir.read_checkpoint_file(&entry.model_file)?;
    let optimizer = dir.read_checkpoint_file(&entry.optimizer_file).ok();
    let ancestor = Ancestor {
        run_id: record.id.clone(),
        run_name: record.name.clone(),
        epoch: entry.epoch,
        bundle: None,
        weights_sha256: sha256_hex(&weights),
        dataset: record.fingerprint.id.clone(),
        dataset_file: record.fingerprint.file_name.clone(),
        metrics: entry.metrics.clone(),
        created: record.created.clone(),
    };
    Ok(ModelParts {
        model: record.model,
        schema: record.schema,
        preprocessor: record.preprocessor,
        weights,
        optimizer,
        ancestor,
        history: record
            .lineage
            .map(|lineage| lineage.chain)
            .unwrap_or_default(),
    })
}

fn from_bundle(path: &Path) -> Result<ModelParts, ExportError> {
    let (card_path, card) = ModelCard::locate(path)?;
    let burnpack = card
        .files
        .get("burnpack")
        .ok_or_else(|| ExportError::BadCard {
            path: card_path.clone(),
            message: "the bundle has no burnpack weights".to_string(),
        })?;
    let weights_path = card_path.with_file_name(&burnpack.file);
    let weights = std::fs::read(&weights_path).map_err(io_error(&weights_path))?;
    let hash = sha256_hex(&weights);
    if hash != burnpack.sha256 {
        return Err(ExportError::BadCard {
            path: card_path,
            message: format!(
                "{} changed since it was exported: its SHA-256 does not match the card",
                burnpack.file
            ),
        });
    }
    let ancestor = Ancestor {
        run_id: card.source_run_id.clone(),
        run_name: card.source_run_name.clone(),
        epoch: card.epoch,
        bundle: Some(card_path.display().to_string()),
        weights_sha256: hash,
        dataset: card.dataset.id.clone(),
        dataset_file: card.dataset.file_name.clone(),
        metrics: card.metrics.clone(),
        created: card.created.clone(),
    };
    Ok(ModelParts {
        model: card.model,
        schema: card.schema,
        preprocessor: card.preprocessor,
        weights,
        optimizer: None,
        ancestor,
        history: card.lineage,
    })
}

/// A warm start from `source`: the parent's architecture, inputs and weights; its optimizer
/// state when asked (a run's checkpoint only: bundles carry none).
pub fn warm_start(
    runs_dir: &Path,
    source: &str,
    keep_optimizer: bool,
    refit_stats: bool,
) -> Result<WarmStart, ExportError> {
    let parts = load_model(runs_dir, source)?;
    if keep_optimizer && parts.optimizer.is_none() {
        return Err(ExportError::Model(format!(
            "{source} carries no optimizer state (a bundle has only weights); start from a run's checkpoint (RUN@EPOCH) to keep it, or leave the optimizer fresh"
        )));
    }
    let mut chain = parts.history.clone();
    chain.push(parts.ancestor.clone());
    Ok(WarmStart {
        model: parts.model,
        schema: parts.schema,
        preprocessor: parts.preprocessor,
        weights: parts.weights,
        optimizer: parts.optimizer.filter(|_| keep_optimizer),
        refit_stats,
        lineage: Lineage {
            chain,
            refit_stats,
            kept_optimizer: keep_optimizer,
        },
    })
}

/// One model's score on a split.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitScore {
    pub loss: f64,
    pub accuracy: Option<f64>,
    pub rmse: Option<f64>,
}

impl SplitScore {
    /// The task's metric: accuracy for classification, RMSE for regression.
    pub fn headline(&self) -> (&'static str, f64) {
        match (self.accuracy, self.rmse) {
            (Some(accuracy), _) => ("accuracy", accuracy),
            (None, Some(rmse)) => ("RMSE", rmse),
            (None, None) => ("loss", self.loss),
        }
    }

    /// Better by the task's metric (ties broken by the loss).
    pub fn beats(&self, other: &SplitScore) -> bool {
        match (self.accuracy, other.accuracy, self.rmse, other.rmse) {
            (Some(a), Some(b), _, _) if a != b => a > b,
            (_, _, Some(a), Some(b)) if a != b => a < b,
            _ => self.loss < other.loss,
        }
    }
}

impl std::fmt::Display for SplitScore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.accuracy, self.rmse) {
            (Some(accuracy), _) => write!(
                f,
                "accuracy {:.2}% (loss {:.4})",
                accuracy * 100.0,
                self.loss
            ),
            (None, Some(rmse)) => write!(f, "RMSE {rmse:.4}"),
            (None, None) => write!(f, "loss {:.4}", self.loss),
        }
    }
}

/// The parent and the new version on the same rows.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub parent: Ancestor,
    pub rows: usize,
    pub old: SplitScore,
    pub new: SplitScore,
    /// The same on the test split, where the data has one.
    pub test: Option<(SplitScore, SplitScore)>,
}

impl Comparison {
    pub fn new_is_better(&self) -> bool {
        self.new.beats(&self.old)
    }
}

/// Scores a warm-started run's checkpoint and its parent on the run's validation split (and its
/// test split, if any). The parent is found as its run's checkpoint or its bundle; each model
/// sees the rows encoded with its own input statistics.
pub fn compare_with_parent(
    runs_dir: &Path,
    run: &str,
    epoch: usize,
) -> Result<Comparison, ExportError> {
    let dir = RunStore::open(runs_dir)?.find(run)?;
    let record = dir.read_record()?;
    let lineage = record.lineage.clone().ok_or_else(|| {
        ExportError::Model(format!(
            "run {} did not start from another model",
            record.id
        ))
    })?;
    let parent_ancestor = lineage
        .parent()
        .cloned()
        .ok_or_else(|| ExportError::Model("the run's lineage is empty".to_string()))?;
    let parent = parent_parts(runs_dir, &parent_ancestor)?;
    let entry = dir.checkpoint(&CheckpointSelector::Epoch(epoch))?;
    let new_weights = dir.read_checkpoint_file(&entry.model_file)?;
    let data = prepare_for_model(&record.data, &record.schema, &record.preprocessor, false)?;
    let valid_rows = data.split.valid.clone();
    let score_both = |rows: &[usize],
                      new_matrix: &EncodedMatrix|
     -> Result<(SplitScore, SplitScore), ExportError> {
        let new = score_model(
            &record.model,
            &record.preprocessor,
            &record.schema,
            &new_weights,
            new_matrix,
        )?;
        let old_matrix = encode_like(
            &parent.preprocessor,
            &record.schema,
            &data,
            rows,
            new_matrix,
        )?;
        let old = score_model(
            &parent.model,
            &parent.preprocessor,
            &parent.schema,
            &parent.weights,
            &old_matrix,
        )?;
        Ok((old, new))
    };
    let (old, new) = score_both(&valid_rows, &data.valid)?;
    let test = match &data.test {
        // Test rows of a fraction are table/image rows of the same data; a separate test file's
        // rows are encoded only with the run's statistics, so both models are scored on those.
        Some(test) if !data.split.test.is_empty() => {
            Some(score_both(&data.split.test.clone(), test)?)
        }
        _ => None,
    };
    Ok(Comparison {
        parent: parent_ancestor,
        rows: data.valid.rows,
        old,
        new,
        test,
    })
}

/// The parent model: its run's checkpoint if the run is still in the store, else its bundle;
/// the weights must be the ones recorded.
fn parent_parts(runs_dir: &Path, parent: &Ancestor) -> Result<ModelParts, ExportError> {
    let from_run = from_run(runs_dir, &format!("{}@{}", parent.run_id, parent.epoch))
        .ok()
        .filter(|parts| parts.ancestor.weights_sha256 == parent.weights_sha256);
    if let Some(parts) = from_run {
        return Ok(parts);
    }
    if let Some(bundle) = &parent.bundle
        && let Ok(parts) = from_bundle(&PathBuf::from(bundle))
        && parts.ancestor.weights_sha256 == parent.weights_sha256
    {
        return Ok(parts);
    }
    Err(ExportError::Model(format!(
        "the parent model ({} at epoch {}) is no longer available: its run was deleted{}",
        parent.run_name,
        parent.epoch,
        if parent.bundle.is_some() {
            " and its bundle moved or changed"
        } else {
            ""
        }
    )))
}

/// `rows` of the prepared data encoded with another model's statistics (the same matrix when
/// they are the run's own).
fn encode_like(
    preprocessor: &Preprocessor,
    schema: &Schema,
    data: &PreparedData,
    rows: &[usize],
    same: &EncodedMatrix,
) -> Result<EncodedMatrix, ExportError> {
    if *preprocessor == data.preprocessor {
        return Ok(same.clone());
    }
    match &data.loaded {
        LoadedData::Table(table) => Ok(preprocessor.encode_rows(table, schema, rows, true)?),
        LoadedData::Images(set) => {
            let transform = preprocessor
                .image
                .as_ref()
                .ok_or_else(|| ExportError::Model("the parent does not take images".to_string()))?;
            let mut inputs = Vec::with_capacity(rows.len() * set.shape.pixels());
            for &row in rows {
                transform.encode_into(set.image(row), &mut inputs);
            }
            Ok(EncodedMatrix {
                inputs,
                rows: rows.len(),
                width: set.shape.pixels(),
                labels: same.labels.clone(),
                values: Vec::new(),
            })
        }
    }
}

fn score_model(
    model: &ModelConfig,
    preprocessor: &Preprocessor,
    schema: &Schema,
    weights: &[u8],
    matrix: &EncodedMatrix,
) -> Result<SplitScore, ExportError> {
    let device = Device::flex();
    let input = preprocessor.input_shape();
    let outputs = schema.target.output_width();
    let network = Network::from_burnpack(model, &input, outputs, weights.to_vec(), &device)
        .map_err(|error| ExportError::Model(error.to_string()))?;
    let raw = Predictor {
        model: &network,
        device: &device,
    }
    .outputs(&matrix.inputs, matrix.width)
    .map_err(ExportError::Model)?;
    let scored = score(
        &raw,
        matrix,
        schema.task(),
        outputs,
        preprocessor.target_std,
    );
    Ok(SplitScore {
        loss: scored.loss,
        accuracy: scored
            .accuracy
            .filter(|_| schema.task() == Task::Classification),
        rmse: scored.rmse,
    })
}
