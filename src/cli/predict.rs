//! `kiln predict` for image models: CSV out, unreadable files and accuracy on stderr.

use std::path::Path;

use anyhow::{Result, bail};

use crate::export::{LoadedModel, predict_images};

/// Predicts images; CSV out (`file`, `actual` when folders name classes, `prediction`, one
/// probability per class); unreadable files and the accuracy go to standard error.
pub(super) fn image_predictions(model: &LoadedModel, data: &Path) -> Result<String> {
    let report = predict_images(model, data)?;
    for warning in &report.drift {
        eprintln!("warning: drift: {warning}");
    }
    let labelled = report.images.iter().any(|image| image.actual.is_some());
    let mut csv = String::from("file");
    if labelled {
        csv.push_str(",actual");
    }
    csv.push_str(",prediction");
    for class in &model.card.schema.target.classes {
        csv.push_str(&format!(",p_{class}"));
    }
    csv.push('\n');
    for image in &report.images {
        match &image.result {
            Ok(prediction) => {
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
            Err(reason) => eprintln!("error: {}: {reason}", image.file.display()),
        }
    }
    let unreadable = report.unreadable();
    if unreadable == report.images.len() {
        bail!("none of the {unreadable} image(s) could be read");
    }
    if unreadable > 0 {
        eprintln!(
            "warning: {unreadable} of {} image(s) could not be read",
            report.images.len()
        );
    }
    if let Some((accuracy, count)) = report.accuracy() {
        eprintln!(
            "accuracy on {count} image(s) in class-named folders: {:.2}%",
            accuracy * 100.0
        );
    }
    Ok(csv)
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}
