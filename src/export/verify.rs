//! `kiln verify`: every file of a bundle re-hashed, and the card's golden inputs run through
//! each format — burnpack and safetensors through Kiln's model, the ONNX graph through a
//! separate interpreter — with the largest difference from the golden outputs per format.

use std::path::Path;

use burn::store::{PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::Device;

use super::card::ModelCard;
use super::onnx_eval::run_onnx;
use super::predict::{outputs_to_card_values, read_bundle_file};
use super::safetensors_check::check_safetensors;
use super::{ExportError, sha256_hex};
use crate::data::InputShape;
use crate::model::Network;
use crate::train::Predictor;

/// How one format's file reproduced the golden outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatCheck {
    /// `burnpack`, `safetensors` or `onnx`.
    pub format: String,
    /// Largest difference from the golden outputs (relative above 1); `None` if it did not run.
    pub max_error: Option<f64>,
    /// Why the file could not be run, if it could not.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    /// `(file, problem)` for each file whose hash does not match the card or that is refused.
    pub bad_files: Vec<(String, String)>,
    pub files_checked: usize,
    /// The largest difference over every format (infinite when a format could not run).
    pub golden_max_error: f64,
    pub golden_rows: usize,
    pub tolerance: f64,
    pub formats: Vec<FormatCheck>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.bad_files.is_empty()
            && !self.formats.is_empty()
            && self.formats.iter().all(|check| check.problem.is_none())
            && self.golden_max_error <= self.tolerance
    }
}

/// Re-hashes every file of the bundle and runs the golden inputs through every format.
pub fn verify_bundle(path: &Path) -> Result<VerifyReport, ExportError> {
    let (card_path, card) = ModelCard::locate(path)?;
    let mut bad_files = Vec::new();
    let mut formats = Vec::new();
    for (format, digest) in &card.files {
        let bytes = match read_bundle_file(&card_path, &digest.file) {
            Ok((_, bytes)) => bytes,
            Err(error) => {
                bad_files.push((digest.file.clone(), error.to_string()));
                continue;
            }
        };
        if sha256_hex(&bytes) != digest.sha256 {
            bad_files.push((
                digest.file.clone(),
                format!("{format} file changed: its SHA-256 does not match the card"),
            ));
            continue;
        }
        let outcome = match format.as_str() {
            "burnpack" => native_outputs(&card, NativeFormat::Burnpack, bytes),
            "safetensors" => native_outputs(&card, NativeFormat::Safetensors, bytes),
            "onnx" => onnx_outputs(&card, &bytes),
            other => Err(format!("unknown format '{other}'")),
        };
        formats.push(match outcome {
            Ok(outputs) => FormatCheck {
                format: format.clone(),
                max_error: Some(largest_difference(&outputs, &card.golden.outputs)),
                problem: None,
            },
            Err(problem) => FormatCheck {
                format: format.clone(),
                max_error: None,
                problem: Some(problem),
            },
        });
    }
    let golden_max_error = formats
        .iter()
        .map(|check| check.max_error.unwrap_or(f64::INFINITY))
        .fold(
            if formats.is_empty() {
                f64::INFINITY
            } else {
                0.0
            },
            f64::max,
        );
    Ok(VerifyReport {
        files_checked: card.files.len(),
        bad_files,
        golden_max_error,
        golden_rows: card.golden.inputs.len(),
        tolerance: card.golden.tolerance,
        formats,
    })
}

enum NativeFormat {
    Burnpack,
    Safetensors,
}

/// The card's outputs for the golden inputs, from Kiln's model with these weights.
fn native_outputs(
    card: &ModelCard,
    format: NativeFormat,
    bytes: Vec<u8>,
) -> Result<Vec<Vec<f64>>, String> {
    let device = Device::flex();
    let input = card.preprocessor.input_shape();
    let outputs = card.schema.target.output_width();
    let model = match format {
        NativeFormat::Burnpack => {
            Network::from_burnpack(&card.model, &input, outputs, bytes, &device)?
        }
        NativeFormat::Safetensors => {
            check_safetensors(&bytes, &card.layers)?;
            let length = bytes.len();
            let mut store =
                SafetensorsStore::from_bytes(Some(bytes)).with_from_adapter(PyTorchToBurnAdapter);
            Network::from_store(&card.model, &input, outputs, &mut store, length, &device)?
        }
    };
    let flat: Vec<f32> = card.golden.inputs.iter().flatten().copied().collect();
    let raw = Predictor {
        model: &model,
        device: &device,
    }
    .outputs(&flat, input.width())?;
    Ok(outputs_to_card_values(
        &raw,
        &card.schema,
        &card.preprocessor,
    ))
}

/// The golden inputs through the ONNX graph, which returns the card's outputs itself.
fn onnx_outputs(card: &ModelCard, bytes: &[u8]) -> Result<Vec<Vec<f64>>, String> {
    let rows = card.golden.inputs.len();
    let input = card.preprocessor.input_shape();
    let shape = match (input, &card.model) {
        (InputShape::Image(image), crate::model::ModelConfig::Cnn(_)) => {
            vec![rows, image.channels, image.height, image.width]
        }
        _ => vec![rows, input.width()],
    };
    let flat: Vec<f32> = card.golden.inputs.iter().flatten().copied().collect();
    let outputs = run_onnx(bytes, shape, flat)?;
    let width = card.schema.target.output_width().max(1);
    if outputs.len() != rows * width {
        return Err(format!(
            "the graph gives {} values for {rows} rows of {width} outputs",
            outputs.len()
        ));
    }
    Ok(outputs
        .chunks(width)
        .map(|row| row.iter().map(|&v| f64::from(v)).collect())
        .collect())
}

/// Relative for large regression values, absolute near zero (probabilities); NaN is infinite.
fn largest_difference(got: &[Vec<f64>], expected: &[Vec<f64>]) -> f64 {
    if got.len() != expected.len() {
        return f64::INFINITY;
    }
    let mut largest: f64 = 0.0;
    for (a_row, b_row) in got.iter().zip(expected) {
        if a_row.len() != b_row.len() {
            return f64::INFINITY;
        }
        for (a, b) in a_row.iter().zip(b_row) {
            let error = (a - b).abs() / b.abs().max(1.0);
            largest = if error.is_nan() {
                f64::INFINITY
            } else {
                largest.max(error)
            };
        }
    }
    largest
}
