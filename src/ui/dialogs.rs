//! Native file dialogs behind a trait, so tests can answer them with paths.
//!
//! rfd returns `None` both on cancel and when no dialog service (xdg portal) exists, so every
//! place that opens a dialog also offers a typed path.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogKind {
    OpenCsv,
    /// An image-folder dataset.
    OpenFolder,
    SaveBundle,
    OpenModel,
    PredictCsv,
    /// Images to predict on with an image model: a file or a folder.
    PredictImage,
    PredictFolder,
    /// Where to write the predictions shown in "Use a model".
    SavePredictions,
}

/// Blocking dialogs; the app always calls them from a background thread.
pub trait FileDialogs: Send + Sync {
    fn pick(&self, kind: DialogKind) -> Option<PathBuf>;
}

/// The platform's dialogs through rfd (xdg desktop portal on Linux).
pub struct NativeDialogs;

impl FileDialogs for NativeDialogs {
    fn pick(&self, kind: DialogKind) -> Option<PathBuf> {
        let dialog = rfd::FileDialog::new();
        match kind {
            DialogKind::OpenCsv => dialog
                .set_title("Open a dataset")
                .add_filter("CSV or IDX", &["csv", "gz", "idx3-ubyte"])
                .pick_file(),
            DialogKind::PredictCsv => dialog
                .set_title("Predict on a CSV file")
                .add_filter("CSV", &["csv"])
                .pick_file(),
            DialogKind::OpenFolder => dialog
                .set_title("Open an image folder (one sub-folder per class)")
                .pick_folder(),
            DialogKind::PredictImage => dialog
                .set_title("Predict on an image")
                .add_filter("Images", &crate::data::IMAGE_EXTENSIONS)
                .pick_file(),
            DialogKind::PredictFolder => dialog
                .set_title("Predict on a folder of images")
                .pick_folder(),
            DialogKind::SaveBundle => dialog
                .set_title("Export model as")
                .set_file_name("model.bpk")
                .add_filter("Kiln model (burnpack)", &["bpk"])
                .save_file(),
            DialogKind::SavePredictions => dialog
                .set_title("Save the predictions as")
                .set_file_name("predictions.csv")
                .add_filter("CSV", &["csv"])
                .save_file(),
            DialogKind::OpenModel => dialog
                .set_title("Open a Kiln model")
                .add_filter("Kiln model card or weights", &["json", "bpk"])
                .pick_file(),
        }
    }
}

/// Dialogs that answer from a queue of prepared paths (for tests and scripted demos).
#[derive(Default, Clone)]
pub struct ScriptedDialogs {
    answers: Arc<Mutex<Vec<(DialogKind, PathBuf)>>>,
}

impl ScriptedDialogs {
    pub fn answer(&self, kind: DialogKind, path: impl Into<PathBuf>) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.push((kind, path.into()));
        }
    }
}

impl FileDialogs for ScriptedDialogs {
    fn pick(&self, kind: DialogKind) -> Option<PathBuf> {
        let mut answers = self.answers.lock().ok()?;
        let position = answers.iter().position(|(k, _)| *k == kind)?;
        Some(answers.remove(position).1)
    }
}
