//! Predictions of an image model on an image file or a folder of images.

use std::path::{Path, PathBuf};

use super::ExportError;
use super::predict::{DRIFT_MEAN_SHIFT, DRIFT_MIN_ROWS, DriftWarning, LoadedModel, Prediction};
use crate::data::{IMAGE_EXTENSIONS, image_files_in};

/// One image and what the model says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePrediction {
    pub file: PathBuf,
    /// The class its folder names, when the folder is named after one of the model's classes.
    pub actual: Option<String>,
    /// The prediction, or why the file could not be read.
    pub result: Result<Prediction, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImagePredictionReport {
    pub images: Vec<ImagePrediction>,
    pub drift: Vec<DriftWarning>,
}

impl ImagePredictionReport {
    /// Share of labelled images (in class-named folders) predicted right, and how many there were.
    pub fn accuracy(&self) -> Option<(f64, usize)> {
        let labelled: Vec<bool> = self
            .images
            .iter()
            .filter_map(|image| {
                let actual = image.actual.as_ref()?;
                let predicted = image.result.as_ref().ok()?.class.as_ref()?;
                Some(actual == predicted)
            })
            .collect();
        (!labelled.is_empty()).then(|| {
            let right = labelled.iter().filter(|&&ok| ok).count();
            (right as f64 / labelled.len() as f64, labelled.len())
        })
    }

    pub fn unreadable(&self) -> usize {
        self.images
            .iter()
            .filter(|image| image.result.is_err())
            .count()
    }
}

/// Predicts an image file, or every image in a folder (and its class sub-folders). Unreadable
/// files get their own error line and do not stop the others.
pub fn predict_images(
    model: &LoadedModel,
    path: &Path,
) -> Result<ImagePredictionReport, ExportError> {
    let transform = model.card.preprocessor.image.as_ref().ok_or_else(|| {
        ExportError::Model(
            "this model takes table rows; predict on a CSV file, not images".to_string(),
        )
    })?;
    let files = if path.is_dir() {
        image_files_in(path)?
    } else {
        std::fs::metadata(path).map_err(super::io_error(path))?;
        vec![path.to_path_buf()]
    };
    if files.is_empty() {
        return Err(ExportError::Model(format!(
            "{} holds no images ({})",
            path.display(),
            IMAGE_EXTENSIONS.join(", ")
        )));
    }
    let classes = &model.card.schema.target.classes;
    let width = transform.shape.pixels();
    let mut encoded: Vec<f32> = Vec::new();
    let mut readable = Vec::new();
    let mut images = Vec::with_capacity(files.len());
    for file in files {
        let actual = file
            .parent()
            .and_then(|parent| parent.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .filter(|name| classes.contains(name));
        let inputs = std::fs::read(&file)
            .map_err(|error| format!("cannot read: {error}"))
            .and_then(|bytes| transform.encode_file_bytes(&bytes));
        let result = match inputs {
            Ok(inputs) => {
                encoded.extend(inputs);
                readable.push(images.len());
                Err(String::new())
            }
            Err(reason) => Err(reason),
        };
        images.push(ImagePrediction {
            file,
            actual,
            result,
        });
    }
    let predictions = model.predict_encoded(&encoded)?;
    for (index, prediction) in readable.iter().zip(predictions) {
        images[*index].result = Ok(prediction);
    }
    Ok(ImagePredictionReport {
        drift: image_drift(&encoded, width, transform.shape.channels),
        images,
    })
}

/// Standardised inputs have mean 0 per channel on the training images; a new batch whose
/// channel mean is far from 0 (in training standard deviations) is unlike the training data.
fn image_drift(encoded: &[f32], width: usize, channels: usize) -> Vec<DriftWarning> {
    let rows = encoded.len().checked_div(width).unwrap_or(0);
    if rows < DRIFT_MIN_ROWS {
        return Vec::new();
    }
    let plane = width / channels.max(1);
    (0..channels)
        .filter_map(|channel| {
            let values: Vec<f64> = (0..rows)
                .flat_map(|row| {
                    let start = row * width + channel * plane;
                    encoded[start..start + plane].iter().map(|&v| v as f64)
                })
                .collect();
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            (mean.abs() > DRIFT_MEAN_SHIFT).then(|| DriftWarning {
                column: if channels == 1 {
                    "pixel brightness".to_string()
                } else {
                    format!("{} channel", ["red", "green", "blue"][channel.min(2)])
                },
                training_mean: 0.0,
                training_std: 1.0,
                data_mean: mean,
                data_std: std,
            })
        })
        .collect()
}

/// The predictions as CSV: `file`, `actual` (when folders name classes), `prediction`, then one
/// probability per class. Unreadable images have no line.
pub fn image_predictions_to_csv(card: &super::ModelCard, report: &ImagePredictionReport) -> String {
    let labelled = report.images.iter().any(|image| image.actual.is_some());
    let mut csv = String::from("file");
    if labelled {
        csv.push_str(",actual");
    }
    csv.push_str(",prediction");
    for class in &card.schema.target.classes {
        csv.push_str(&format!(",p_{class}"));
    }
    csv.push('\n');
    for image in &report.images {
        let Ok(prediction) = &image.result else {
            continue;
        };
        csv.push_str(&csv_cell(&image.file.display().to_string()));
        if labelled {
            csv.push_str(&format!(",{}", image.actual.as_deref().unwrap_or("")));
        }
        csv.push_str(&format!(",{}", prediction.class.as_deref().unwrap_or("")));
        for p in &prediction.probabilities {
            csv.push_str(&format!(",{p:.6}"));
        }
        csv.push('\n');
    }
    csv
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}
