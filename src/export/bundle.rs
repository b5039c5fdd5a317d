//! Writing an export bundle from a run's checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::{BurnToPyTorchAdapter, SafetensorsStore};
use burn::tensor::Device;

use super::card::{
    ArchitectureLayer, CARD_FORMAT_VERSION, CardSweep, FileDigest, GoldenVectors, ModelCard,
};
use super::predict::outputs_to_card_values;
use super::staged::write_all_or_nothing;
use super::{ExportError, io_error, sha256_hex};
use crate::data::InputShape;
use crate::data::Task;
use crate::model::{ModelConfig, Network};
use crate::runs::{CheckpointSelector, RunStore};
use crate::train::Predictor;

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub burnpack: bool,
    pub safetensors: bool,
    pub onnx: bool,
    /// Replace existing files.
    pub force: bool,
    /// Score the checkpoint on the run's test split (once) and put the result in the card and
    /// the run.
    pub evaluate_test: bool,
    /// The sweep the checkpoint is promoted from.
    pub sweep: Option<CardSweep>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            burnpack: true,
            safetensors: true,
            onnx: true,
            force: false,
            evaluate_test: false,
            sweep: None,
        }
    }
}

/// The files of a bundle. `out` is a folder (files named `model.*` inside it) or a path
/// ending in `.bpk` (files named after it, side by side).
#[derive(Debug, Clone, PartialEq)]
pub struct BundlePaths {
    pub card: PathBuf,
    pub burnpack: PathBuf,
    pub safetensors: PathBuf,
    pub onnx: PathBuf,
}

impl BundlePaths {
    pub fn for_output(out: &Path) -> Self {
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (dir, stem) = match name.strip_suffix(".bpk") {
            Some(stem) => (
                out.parent().unwrap_or(Path::new(".")).to_path_buf(),
                stem.to_string(),
            ),
            None => (out.to_path_buf(), "model".to_string()),
        };
        Self {
            card: dir.join(format!("{stem}.card.json")),
            burnpack: dir.join(format!("{stem}.bpk")),
            safetensors: dir.join(format!("{stem}.safetensors")),
            onnx: dir.join(format!("{stem}.onnx")),
        }
    }
}

/// Exports `run[@best|@last|@EPOCH]` from the store at `runs_dir` to `out`.
pub fn export_checkpoint(
    runs_dir: &Path,
    run: &str,
    out: &Path,
    options: &ExportOptions,
) -> Result<BundlePaths, ExportError> {
    let (query, selector) = CheckpointSelector::parse(run).map_err(ExportError::Model)?;
    let store = RunStore::open(runs_dir)?;
    let dir = store.find(&query)?;
    let record = dir.read_record()?;
    let entry = dir.checkpoint(&selector)?;
    let model_bytes = dir.read_checkpoint_file(&entry.model_file)?;

    let paths = BundlePaths::for_output(out);
    let mut targets = vec![&paths.card];
    if options.burnpack {
        targets.push(&paths.burnpack);
    }
    if options.safetensors {
        targets.push(&paths.safetensors);
    }
    if options.onnx {
        targets.push(&paths.onnx);
    }
    if !options.force
        && let Some(existing) = targets.iter().find(|path| path.exists())
    {
        return Err(ExportError::Exists((*existing).clone()));
    }
    // Refuse before writing anything, so a refused export leaves no partial bundle.
    if options.onnx {
        super::onnx::onnx_support(&record.model).map_err(|reason| {
            ExportError::Model(format!("ONNX export: {reason} (or export without ONNX)"))
        })?;
    }
    // Measured before anything is written, so a failing evaluation leaves no bundle.
    let test = if options.evaluate_test {
        Some(super::test_split::evaluate_test_split(
            runs_dir,
            &record.id,
            entry.epoch,
        )?)
    } else {
        None
    };
    let input = record.preprocessor.input_shape();
    let (inputs, outputs) = (input.width(), record.output_width());
    let device = Device::flex();
    let model =
        Network::from_burnpack(&record.model, &input, outputs, model_bytes.clone(), &device)
            .map_err(|error| ExportError::Model(format!("checkpoint {}: {error}", entry.epoch)))?;

    // Everything is computed in memory first and the files are written all or nothing, card
    // last, so a failure at any step leaves no partial bundle (and no file it replaced lost).
    let mut weights: Vec<(&str, &PathBuf, Vec<u8>)> = Vec::new();
    if options.burnpack {
        weights.push(("burnpack", &paths.burnpack, model_bytes.clone()));
    }
    if options.safetensors {
        let mut store = SafetensorsStore::from_bytes(None)
            .with_to_adapter(BurnToPyTorchAdapter)
            .metadata("kiln_run", record.id.as_str());
        model
            .save_into(&mut store)
            .map_err(|error| ExportError::Model(format!("safetensors: {error}")))?;
        let bytes = store
            .get_bytes()
            .map_err(|error| ExportError::Model(format!("safetensors: {error}")))?;
        weights.push(("safetensors", &paths.safetensors, bytes.to_vec()));
    }
    if options.onnx {
        let bytes = super::onnx::onnx_bytes(
            &model,
            record.schema.task(),
            &record.preprocessor,
            (inputs, outputs),
            &device,
        )
        .map_err(|error| {
            ExportError::Model(format!(
                "ONNX export: {error} (export without ONNX to write the other formats)"
            ))
        })?;
        weights.push(("onnx", &paths.onnx, bytes));
    }
    let files: BTreeMap<String, FileDigest> = weights
        .iter()
        .map(|(format, path, bytes)| (format.to_string(), digest(path, bytes)))
        .collect();
    let golden = golden_vectors(&record, &model, &device, inputs)?;

    let layers = architecture(&record.model, &input, outputs);
    let card = ModelCard {
        format: "kiln-model-card".to_string(),
        format_version: CARD_FORMAT_VERSION,
        kiln_version: env!("CARGO_PKG_VERSION").to_string(),
        burn_version: crate::BURN_VERSION.to_string(),
        created: chrono::Utc::now().to_rfc3339(),
        source_run_id: record.id.clone(),
        source_run_name: record.name.clone(),
        epoch: entry.epoch,
        step: entry.step,
        metrics: entry.metrics.clone(),
        model: record.model.clone(),
        description: record.model_summary(),
        parameters: record.model.parameter_count(&input, outputs),
        layers,
        schema: record.schema.clone(),
        preprocessor: record.preprocessor.clone(),
        input_names: record.preprocessor.input_names(),
        output_kind: match record.schema.task() {
            Task::Classification => "probabilities",
            Task::Regression => "value",
        }
        .to_string(),
        dataset: record.fingerprint.clone(),
        files,
        golden,
        sweep: options.sweep.clone(),
        test,
        lineage: record
            .lineage
            .as_ref()
            .map(|lineage| lineage.chain.clone())
            .unwrap_or_default(),
    };
    let mut card_bytes = serde_json::to_vec_pretty(&card)
        .map_err(|error| ExportError::Model(format!("model card: {error}")))?;
    card_bytes.push(b'\n');
    let mut to_write: Vec<(PathBuf, Vec<u8>)> = weights
        .into_iter()
        .map(|(_, path, bytes)| (path.clone(), bytes))
        .collect();
    to_write.push((paths.card.clone(), card_bytes));
    let folder = paths.card.parent().unwrap_or(Path::new("."));
    let new_folder = !folder.exists();
    std::fs::create_dir_all(folder).map_err(io_error(folder))?;
    if let Err((path, source)) = write_all_or_nothing(&to_write) {
        if new_folder {
            // Only succeeds while empty: never removes anything but the folder made here.
            let _ = std::fs::remove_dir(folder);
        }
        return Err(ExportError::Io { path, source });
    }
    Ok(paths)
}

/// Extreme rows whose outputs the golden vectors show, beside the typical ones.
const EXTREME_GOLDEN_ROWS: usize = 3;

/// The golden vectors: the run's typical validation rows, then the kept extreme rows with the
/// largest raw outputs (logits), where an exported softmax would overflow first.
fn golden_vectors(
    record: &crate::runs::RunRecord,
    model: &Network,
    device: &Device,
    inputs: usize,
) -> Result<GoldenVectors, ExportError> {
    let flat: Vec<f32> = record
        .sample_rows
        .iter()
        .flat_map(|row| row.inputs.iter().copied())
        .collect();
    let raw_outputs = Predictor { model, device }
        .outputs(&flat, inputs)
        .map_err(ExportError::Model)?;
    let width = record.output_width().max(1);
    let largest = |row: usize| {
        raw_outputs[row * width..(row + 1) * width]
            .iter()
            .fold(0f32, |max, value| max.max(value.abs()))
    };
    let typical = crate::data::TYPICAL_GOLDEN_ROWS.min(record.sample_rows.len());
    let mut extreme: Vec<usize> = (typical..record.sample_rows.len()).collect();
    extreme.sort_by(|&a, &b| largest(b).total_cmp(&largest(a)));
    extreme.truncate(EXTREME_GOLDEN_ROWS);
    let chosen: Vec<usize> = (0..typical).chain(extreme).collect();
    let card_values = outputs_to_card_values(&raw_outputs, &record.schema, &record.preprocessor);
    Ok(GoldenVectors {
        raw: chosen
            .iter()
            .map(|&row| record.sample_rows[row].raw.clone())
            .collect(),
        inputs: chosen
            .iter()
            .map(|&row| record.sample_rows[row].inputs.clone())
            .collect(),
        outputs: chosen.iter().map(|&row| card_values[row].clone()).collect(),
        tolerance: 1e-4,
    })
}

/// The card's layer list: every weight tensor's name prefix and shapes in both files.
pub(crate) fn architecture(
    model: &ModelConfig,
    input: &InputShape,
    outputs: usize,
) -> Vec<ArchitectureLayer> {
    let dense = |prefix: &str, widths: &[usize]| -> Vec<ArchitectureLayer> {
        widths
            .windows(2)
            .enumerate()
            .map(|(index, pair)| ArchitectureLayer {
                name: format!("{prefix}.{index}"),
                kind: "linear".to_string(),
                inputs: pair[0],
                outputs: pair[1],
                safetensors_weight_shape: vec![pair[1], pair[0]],
                burnpack_weight_shape: vec![pair[0], pair[1]],
            })
            .collect()
    };
    match (model, input) {
        (ModelConfig::Mlp(config), _) => {
            let mut widths = vec![input.width()];
            widths.extend(&config.hidden);
            widths.push(outputs);
            dense("layers", &widths)
        }
        (ModelConfig::Cnn(config), InputShape::Image(image)) => {
            let mut layers = Vec::new();
            let mut channels = image.channels;
            for (index, block) in config.blocks.iter().enumerate() {
                let shape = vec![
                    block.channels,
                    channels,
                    block.kernel_size,
                    block.kernel_size,
                ];
                layers.push(ArchitectureLayer {
                    name: format!("blocks.{index}.conv"),
                    kind: format!(
                        "conv2d padding {}{}{}",
                        block.kernel_size / 2,
                        if config.batch_norm {
                            ", batch-norm"
                        } else {
                            ""
                        },
                        if block.pool { ", max-pool 2×2" } else { "" }
                    ),
                    inputs: channels,
                    outputs: block.channels,
                    safetensors_weight_shape: shape.clone(),
                    burnpack_weight_shape: shape,
                });
                channels = block.channels;
            }
            let mut widths = vec![config.flattened_width(*image)];
            widths.extend(&config.dense);
            widths.push(outputs);
            layers.extend(dense("head", &widths));
            layers
        }
        (ModelConfig::Cnn(_), InputShape::Flat(_)) => Vec::new(),
    }
}

fn digest(path: &Path, bytes: &[u8]) -> FileDigest {
    FileDigest {
        file: path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256: sha256_hex(bytes),
        bytes: bytes.len() as u64,
    }
}
