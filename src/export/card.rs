//! The model card: a JSON document describing an exported model completely.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ExportError;
use crate::data::{DatasetFingerprint, Preprocessor, Schema};
use crate::model::ModelConfig;
use crate::runs::untrusted::{MAX_JSON_BYTES, plain_name_problem, read_bounded};

pub const CARD_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchitectureLayer {
    /// Tensor name prefix in the weight files, e.g. `layers.0` or `blocks.0.conv`.
    pub name: String,
    /// `linear`, or `conv2d …` with its padding, batch-norm and pooling.
    #[serde(default = "linear")]
    pub kind: String,
    /// Input features (linear) or channels (conv).
    pub inputs: usize,
    pub outputs: usize,
    /// Shape of `<name>.weight` in the safetensors file (PyTorch layout: `[outputs, inputs]`,
    /// conv `[out, in, kh, kw]`).
    pub safetensors_weight_shape: Vec<usize>,
    /// Shape of `<name>.weight` in the burnpack file (burn layout: `[inputs, outputs]`).
    pub burnpack_weight_shape: Vec<usize>,
}

fn linear() -> String {
    "linear".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileDigest {
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
}

/// A few real validation rows and what the exported model outputs for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenVectors {
    /// The rows as they appear in the CSV, by column name.
    pub raw: Vec<BTreeMap<String, String>>,
    /// The same rows after preprocessing: the model's inputs.
    pub inputs: Vec<Vec<f32>>,
    /// Class probabilities (classification) or the value in target units (regression).
    pub outputs: Vec<Vec<f64>>,
    /// Comparison tolerance used by `kiln verify`.
    pub tolerance: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: String,
    pub format_version: u32,
    pub kiln_version: String,
    pub burn_version: String,
    pub created: String,
    pub source_run_id: String,
    pub source_run_name: String,
    pub epoch: usize,
    pub step: u64,
    pub metrics: BTreeMap<String, f64>,
    pub model: ModelConfig,
    pub description: String,
    pub parameters: usize,
    /// Hidden and output layers in order; the activation follows every layer but the last.
    pub layers: Vec<ArchitectureLayer>,
    /// Input columns, their types, one-hot categories and standardisation statistics.
    pub schema: Schema,
    pub preprocessor: Preprocessor,
    /// The model's inputs in order, after encoding.
    pub input_names: Vec<String>,
    /// `probabilities` (softmax over `schema.target.classes`) or `value`.
    pub output_kind: String,
    pub dataset: DatasetFingerprint,
    /// Weight files of the bundle, by format (`burnpack`, `safetensors`, `onnx`). The ONNX graph
    /// takes the encoded inputs (`input_names`, dynamic batch axis) and returns the card's outputs.
    pub files: BTreeMap<String, FileDigest>,
    pub golden: GoldenVectors,
    /// The sweep this model won (or placed in), when it was promoted from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<CardSweep>,
    /// The checkpoint's metrics on the held-out test split (measured once, at export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<crate::runs::TestResult>,
    /// The earlier versions this model was trained from, oldest first (each with its weights'
    /// hash, its data's fingerprint and its metrics); empty for a model trained from scratch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage: Vec<crate::runs::Ancestor>,
}

/// Where a promoted model stood in its sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardSweep {
    pub sweep_id: String,
    pub sweep_name: String,
    pub trial: usize,
    pub repeat: usize,
    /// 1 = the best trial by `metric`.
    pub rank: usize,
    pub trials: usize,
    pub metric: String,
    pub goal: crate::runs::Goal,
    /// The trial's value of `metric` (its mean over repeats), on the validation split.
    pub value: f64,
    pub params: BTreeMap<String, serde_json::Value>,
}

impl ModelCard {
    /// Reads a card from a bundle folder, a card file, or a weight file with its card beside it.
    pub fn locate(path: &Path) -> Result<(PathBuf, ModelCard), ExportError> {
        let card_path = card_path_for(path);
        let bytes =
            read_bounded(&card_path, MAX_JSON_BYTES).map_err(super::io_error(&card_path))?;
        let card: ModelCard =
            serde_json::from_slice(&bytes).map_err(|error| ExportError::BadCard {
                path: card_path.clone(),
                message: error.to_string(),
            })?;
        if card.format != "kiln-model-card" {
            return Err(ExportError::BadCard {
                path: card_path,
                message: format!("format is '{}'", card.format),
            });
        }
        if card.format_version > CARD_FORMAT_VERSION {
            return Err(ExportError::BadCard {
                path: card_path,
                message: format!(
                    "format version {} is newer than this Kiln understands ({CARD_FORMAT_VERSION})",
                    card.format_version
                ),
            });
        }
        card.check().map_err(|message| ExportError::BadCard {
            path: card_path.clone(),
            message,
        })?;
        Ok((card_path, card))
    }

    /// A card from elsewhere is checked before anything it describes is read or allocated:
    /// plain file names, golden vectors of the model's widths, and a layer list that matches
    /// the model it describes.
    fn check(&self) -> Result<(), String> {
        for (format, digest) in &self.files {
            if let Some(problem) = plain_name_problem(&digest.file) {
                return Err(format!(
                    "the {format} file '{}' is not a plain file name in the bundle's folder ({problem})",
                    digest.file
                ));
            }
        }
        if let Some(image) = &self.preprocessor.image {
            let shape = image.shape;
            if shape.channels == 0
                || shape.channels > 4
                || shape.height > 1 << 16
                || shape.width > 1 << 16
            {
                return Err(format!("an image input of {shape} is not one Kiln makes"));
            }
        }
        let golden = &self.golden;
        if golden.inputs.len() > MAX_GOLDEN_ROWS {
            return Err(format!(
                "{} golden rows; Kiln checks at most {MAX_GOLDEN_ROWS}",
                golden.inputs.len()
            ));
        }
        if golden.outputs.len() != golden.inputs.len() {
            return Err(format!(
                "{} golden inputs but {} golden outputs",
                golden.inputs.len(),
                golden.outputs.len()
            ));
        }
        let width = self.preprocessor.output_width();
        let outputs = self.schema.target.output_width();
        if let Some(row) = golden.inputs.iter().position(|row| row.len() != width) {
            return Err(format!(
                "golden row {} has {} inputs; the model takes {width}",
                row + 1,
                golden.inputs[row].len()
            ));
        }
        if let Some(row) = golden.outputs.iter().position(|row| row.len() != outputs) {
            return Err(format!(
                "golden row {} has {} outputs; the model gives {outputs}",
                row + 1,
                golden.outputs[row].len()
            ));
        }
        if !(golden.tolerance.is_finite() && golden.tolerance >= 0.0) {
            return Err("the golden tolerance is not a finite, non-negative number".to_string());
        }
        let input = self.preprocessor.input_shape();
        if self.layers.len() > MAX_CARD_LAYERS
            || self.layers != super::bundle::architecture(&self.model, &input, outputs)
        {
            return Err(
                "its layer list does not match the model it describes (tensor names and shapes)"
                    .to_string(),
            );
        }
        Ok(())
    }
}

/// Golden rows a card may carry (Kiln writes about a dozen).
const MAX_GOLDEN_ROWS: usize = 10_000;
/// Layers a card may list.
const MAX_CARD_LAYERS: usize = 256;

/// `DIR` → `DIR/model.card.json`; `X.bpk`/`X.safetensors` → `X.card.json`; a card → itself.
pub fn card_path_for(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.join("model.card.json");
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(".card.json") {
        return path.to_path_buf();
    }
    let stem = name
        .strip_suffix(".bpk")
        .or_else(|| name.strip_suffix(".safetensors"))
        .unwrap_or(&name);
    path.with_file_name(format!("{stem}.card.json"))
}
