//! Export bundles: the weights (burnpack for Kiln, safetensors for Python), a model card that
//! says exactly what the model expects, and golden vectors that prove it still works.

mod bundle;
mod card;
mod evaluate;
mod lineage;
mod onnx;
mod onnx_eval;
mod predict;
mod predict_images;
mod promote;
mod safetensors_check;
mod staged;
mod test_split;
mod verify;

pub use bundle::{BundlePaths, ExportOptions, export_checkpoint};
pub use card::{
    ArchitectureLayer, CARD_FORMAT_VERSION, CardSweep, FileDigest, GoldenVectors, ModelCard,
};
pub use evaluate::{CheckpointEvaluation, ValidationPrediction, evaluate_checkpoint};
pub use lineage::{
    Comparison, ModelParts, SplitScore, compare_with_parent, is_bundle, load_model, warm_start,
};
pub use onnx::onnx_support;
pub use predict::{
    DriftWarning, LoadedModel, Prediction, PredictionReport, TargetScore, predict_csv,
    predict_csv_with, predictions_to_csv,
};
pub use predict_images::{
    ImagePrediction, ImagePredictionReport, image_predictions_to_csv, predict_images,
};
pub use promote::{PromoteError, Promoted, promote, winner};
pub use test_split::evaluate_test_split;
pub use verify::{FormatCheck, VerifyReport, verify_bundle};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] crate::runs::StoreError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} exists already; choose another location or allow overwriting (--force)")]
    Exists(std::path::PathBuf),
    #[error("{path}: not a Kiln model card ({message})")]
    BadCard {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("model: {0}")]
    Model(String),
}

pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
