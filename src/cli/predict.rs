//! `kiln predict` for image models: CSV out, unreadable files and accuracy on stderr.

use std::path::Path;

use anyhow::{Result, bail};

use crate::export::{LoadedModel, image_predictions_to_csv, predict_images};

/// Predicts images; CSV out (`file`, `actual` when folders name classes, `prediction`, one
/// probability per class); unreadable files and the accuracy go to standard error.
pub(super) fn image_predictions(model: &LoadedModel, data: &Path) -> Result<String> {
    let report = predict_images(model, data)?;
    for warning in &report.drift {
        eprintln!("warning: drift: {warning}");
    }
    let csv = image_predictions_to_csv(&model.card, &report);
    for image in &report.images {
        if let Err(reason) = &image.result {
            eprintln!("error: {}: {reason}", image.file.display());
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
