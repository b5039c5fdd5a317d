//! Using an exported bundle: predictions on new data, drift warnings, and verification.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::ExportError;
use super::card::ModelCard;
use crate::data::{ColumnTransform, Delimiter, Preprocessor, Schema, Task, load_csv_with};
use crate::model::Network;
use crate::runs::untrusted::{MAX_WEIGHTS_BYTES, file_inside, read_bounded};
use crate::train::{Predictor, argmax, softmax};

/// Shift of a feature's mean, in training standard deviations, above which `predict` warns.
pub const DRIFT_MEAN_SHIFT: f64 = 0.5;
/// Ratio of a feature's spread to the training spread outside `[1/x, x]` that triggers a warning.
pub const DRIFT_STD_RATIO: f64 = 2.0;
/// Fewer rows than this say too little about a distribution to warn about drift.
pub const DRIFT_MIN_ROWS: usize = 10;

/// A bundle loaded for inference (on the CPU: small models, deterministic results).
pub struct LoadedModel {
    pub card_path: PathBuf,
    pub card: ModelCard,
    model: Network,
    device: Device,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Predicted class name (classification).
    pub class: Option<String>,
    pub probabilities: Vec<f64>,
    /// Predicted value in the target's units (regression).
    pub value: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DriftWarning {
    pub column: String,
    pub training_mean: f64,
    pub training_std: f64,
    pub data_mean: f64,
    pub data_std: f64,
}

impl std::fmt::Display for DriftWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shift = (self.data_mean - self.training_mean) / self.training_std;
        write!(
            f,
            "column '{}' looks different from the training data: mean {:.4} vs {:.4} in training ({shift:+.2} training std), std {:.4} vs {:.4}",
            self.column, self.data_mean, self.training_mean, self.data_std, self.training_std
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PredictionReport {
    pub predictions: Vec<Prediction>,
    pub drift: Vec<DriftWarning>,
    /// How well the predictions match the target column, when the file has one.
    pub score: Option<TargetScore>,
}

/// The predictions scored against the target column the new data carries.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetScore {
    Accuracy { correct: usize, rows: usize },
    Rmse { rmse: f64, rows: usize },
}

impl std::fmt::Display for TargetScore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetScore::Accuracy { correct, rows } => write!(
                f,
                "accuracy {:.2}% ({correct} of {rows} rows with a target value)",
                100.0 * *correct as f64 / (*rows).max(1) as f64
            ),
            TargetScore::Rmse { rmse, rows } => {
                write!(f, "RMSE {rmse:.4} on {rows} rows with a target value")
            }
        }
    }
}

impl LoadedModel {
    pub fn open(path: &Path) -> Result<Self, ExportError> {
        let (card_path, card) = ModelCard::locate(path)?;
        let burnpack = card
            .files
            .get("burnpack")
            .ok_or_else(|| ExportError::BadCard {
                path: card_path.clone(),
                message: "the bundle has no burnpack weights".to_string(),
            })?;
        let (weights_path, bytes) = read_bundle_file(&card_path, &burnpack.file)?;
        let device = Device::flex();
        let model = Network::from_burnpack(
            &card.model,
            &card.preprocessor.input_shape(),
            card.schema.target.output_width(),
            bytes,
            &device,
        )
        .map_err(|error| ExportError::Model(format!("{}: {error}", weights_path.display())))?;
        Ok(Self {
            card_path,
            card,
            model,
            device,
        })
    }

    /// The model's raw outputs for encoded input rows: logits (classification) or standardised
    /// values (regression), `outputs` per row.
    pub fn raw_outputs(&self, inputs: &[f32]) -> Result<Vec<f32>, ExportError> {
        Predictor {
            model: &self.model,
            device: &self.device,
        }
        .outputs(inputs, self.card.preprocessor.output_width())
        .map_err(ExportError::Model)
    }

    /// Predictions for encoded input rows (row-major, `input_names().len()` wide).
    pub fn predict_encoded(&self, inputs: &[f32]) -> Result<Vec<Prediction>, ExportError> {
        let outputs = self.raw_outputs(inputs)?;
        let values = outputs_to_card_values(&outputs, &self.card.schema, &self.card.preprocessor);
        Ok(values
            .into_iter()
            .map(|row| match self.card.schema.task() {
                Task::Classification => {
                    let best = argmax(&row.iter().map(|&p| p as f32).collect::<Vec<_>>());
                    Prediction {
                        class: self.card.schema.target.classes.get(best).cloned(),
                        probabilities: row,
                        value: None,
                    }
                }
                Task::Regression => Prediction {
                    class: None,
                    probabilities: Vec::new(),
                    value: row.first().copied(),
                },
            })
            .collect())
    }

    /// Whether the model takes images (then predict on image files, not CSV rows).
    pub fn takes_images(&self) -> bool {
        self.card.preprocessor.image.is_some()
    }

    fn refuse_images(&self) -> Result<(), ExportError> {
        if self.takes_images() {
            return Err(ExportError::Model(
                "this model takes images; predict on an image file or a folder of images"
                    .to_string(),
            ));
        }
        Ok(())
    }

    /// Predicts one row given as `(column, cell)` pairs, e.g. typed into a form.
    pub fn predict_row(&self, cells: &[(String, String)]) -> Result<Prediction, ExportError> {
        self.refuse_images()?;
        let table = crate::data::RawTable::new(
            PathBuf::from("(typed row)"),
            cells.iter().map(|(name, _)| name.clone()).collect(),
            vec![
                cells
                    .iter()
                    .map(|(_, cell)| cell.trim().to_string())
                    .collect(),
            ],
            vec![1],
        );
        let inputs = self.card.preprocessor.encode_inputs(&table, &[0], false)?;
        Ok(self.predict_encoded(&inputs)?.remove(0))
    }
}

/// Raw model outputs to what the card promises: probabilities, or values in target units.
pub(crate) fn outputs_to_card_values(
    outputs: &[f32],
    schema: &Schema,
    preprocessor: &Preprocessor,
) -> Vec<Vec<f64>> {
    let width = schema.target.output_width().max(1);
    outputs
        .chunks(width)
        .map(|row| match schema.task() {
            Task::Classification => softmax(row),
            Task::Regression => vec![preprocessor.decode_value(row[0])],
        })
        .collect()
}

/// Checks a CSV against the model's input schema, predicts every row, and measures drift.
pub fn predict_csv(model: &LoadedModel, data: &Path) -> Result<PredictionReport, ExportError> {
    predict_csv_with(model, data, None)
}

/// As [`predict_csv`], with the CSV's delimiter given (`None`: detected).
pub fn predict_csv_with(
    model: &LoadedModel,
    data: &Path,
    delimiter: Option<Delimiter>,
) -> Result<PredictionReport, ExportError> {
    model.refuse_images()?;
    let table = load_csv_with(data, &model.card.schema.text_columns(), delimiter)?;
    let preprocessor = &model.card.preprocessor;
    preprocessor.check_columns(&table, &[model.card.schema.target.name.as_str()])?;
    let rows: Vec<usize> = (0..table.row_count()).collect();
    let inputs = preprocessor.encode_inputs(&table, &rows, false)?;
    let predictions = model.predict_encoded(&inputs)?;
    Ok(PredictionReport {
        score: score_against_target(&model.card.schema, &table, &predictions),
        drift: drift(preprocessor, &table),
        predictions,
    })
}

/// Scores predictions against the file's target column, if it has one; rows without a target
/// value are left out.
fn score_against_target(
    schema: &Schema,
    table: &crate::data::RawTable,
    predictions: &[Prediction],
) -> Option<TargetScore> {
    let column = table.column_index(&schema.target.name)?;
    let actual = table.column(column);
    match schema.task() {
        Task::Classification => {
            let same = |predicted: &str, actual: &str| {
                predicted == actual
                    || (schema.target.numeric_labels
                        && matches!(
                            (predicted.parse::<f64>(), actual.parse::<f64>()),
                            (Ok(a), Ok(b)) if a == b
                        ))
            };
            let (mut correct, mut rows) = (0, 0);
            for (prediction, actual) in predictions.iter().zip(actual) {
                if actual.is_empty() {
                    continue;
                }
                rows += 1;
                if prediction
                    .class
                    .as_deref()
                    .is_some_and(|p| same(p, &actual))
                {
                    correct += 1;
                }
            }
            (rows > 0).then_some(TargetScore::Accuracy { correct, rows })
        }
        Task::Regression => {
            let errors: Vec<f64> = predictions
                .iter()
                .zip(actual)
                .filter_map(|(prediction, actual)| {
                    let actual = actual.parse::<f64>().ok().filter(|v| v.is_finite())?;
                    Some((prediction.value? - actual).powi(2))
                })
                .collect();
            (!errors.is_empty()).then(|| TargetScore::Rmse {
                rmse: (errors.iter().sum::<f64>() / errors.len() as f64).sqrt(),
                rows: errors.len(),
            })
        }
    }
}

/// Drift: each numeric column's mean and spread in the new data against the training split's
/// statistics stored in the card (mean shift in training standard deviations; spread ratio).
fn drift(preprocessor: &Preprocessor, table: &crate::data::RawTable) -> Vec<DriftWarning> {
    if table.row_count() < DRIFT_MIN_ROWS {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    for column in &preprocessor.columns {
        let ColumnTransform::Standardize { name, mean, std } = column else {
            continue;
        };
        let Some(index) = table.column_index(name) else {
            continue;
        };
        let values: Vec<f64> = table
            .values(index)
            .filter_map(|value| value.number())
            .collect();
        if values.len() < DRIFT_MIN_ROWS {
            continue;
        }
        let n = values.len() as f64;
        let data_mean = values.iter().sum::<f64>() / n;
        let data_std = (values.iter().map(|v| (v - data_mean).powi(2)).sum::<f64>() / n).sqrt();
        let shift = (data_mean - mean).abs() / std;
        let ratio = (data_std / std).max(1e-12);
        if shift > DRIFT_MEAN_SHIFT || !(1.0 / DRIFT_STD_RATIO..=DRIFT_STD_RATIO).contains(&ratio) {
            warnings.push(DriftWarning {
                column: name.clone(),
                training_mean: *mean,
                training_std: *std,
                data_mean,
                data_std,
            });
        }
    }
    warnings
}

/// Predictions as CSV: `prediction` then `p_<class>` per class, or `prediction` alone.
pub fn predictions_to_csv(card: &ModelCard, predictions: &[Prediction]) -> String {
    let mut out = String::new();
    match card.schema.task() {
        Task::Classification => {
            out.push_str("prediction");
            for class in &card.schema.target.classes {
                out.push_str(&format!(",p_{class}"));
            }
            out.push('\n');
            for prediction in predictions {
                out.push_str(prediction.class.as_deref().unwrap_or(""));
                for p in &prediction.probabilities {
                    out.push_str(&format!(",{p:.6}"));
                }
                out.push('\n');
            }
        }
        Task::Regression => {
            out.push_str("prediction\n");
            for prediction in predictions {
                out.push_str(&format!("{}\n", prediction.value.unwrap_or(f64::NAN)));
            }
        }
    }
    out
}

/// A file the card names, read from the bundle's folder only and bounded in size.
pub(crate) fn read_bundle_file(
    card_path: &Path,
    name: &str,
) -> Result<(PathBuf, Vec<u8>), ExportError> {
    let folder = card_path.parent().unwrap_or(Path::new("."));
    let path = file_inside(folder, name).map_err(|message| ExportError::BadCard {
        path: card_path.to_path_buf(),
        message,
    })?;
    let bytes = read_bounded(&path, MAX_WEIGHTS_BYTES).map_err(super::io_error(&path))?;
    Ok((path, bytes))
}
