//! Dataset fingerprints: what a run was trained on, precisely enough to tell two datasets apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::csv::RawTable;
use super::images::ImageSet;
use super::schema::{DataSpec, Schema};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetFingerprint {
    /// Hash of the file's bytes and the parsing options: equal ids mean equal training data.
    pub id: String,
    /// SHA-256 of the file's bytes alone.
    pub content_sha256: String,
    pub file_name: String,
    pub rows: usize,
    pub columns: usize,
    /// Rows per class (classification only).
    #[serde(default)]
    pub class_counts: BTreeMap<String, usize>,
}

impl DatasetFingerprint {
    /// The first 12 hex digits of the id, for tables.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }
}

/// `test_file`: the bytes of a separate test file, when the spec names one.
pub fn fingerprint(
    bytes: &[u8],
    spec: &DataSpec,
    table: &RawTable,
    schema: &Schema,
    test_file: Option<&[u8]>,
) -> DatasetFingerprint {
    let content_sha256: [u8; 32] = Sha256::digest(bytes).into();
    fingerprint_hashed(&content_sha256, spec, table, schema, test_file)
}

/// As [`fingerprint`], with the SHA-256 of the file's bytes hashed while reading it.
pub fn fingerprint_hashed(
    content_sha256: &[u8; 32],
    spec: &DataSpec,
    table: &RawTable,
    schema: &Schema,
    test_file: Option<&[u8]>,
) -> DatasetFingerprint {
    let content_sha256 = hex(content_sha256);
    let mut options = serde_json::json!({
        "target": schema.target.name,
        "task": schema.target.task,
        "valid_fraction": spec.valid_fraction,
        "split_seed": spec.split_seed,
        "impute_missing": spec.impute_missing,
    });
    // Only present with a test split, so every earlier fingerprint stays what it was.
    add_test_options(&mut options, spec, test_file);
    // Only when set, so runs made before column choices existed keep their fingerprints.
    if !spec.columns.is_empty()
        && let Some(map) = options.as_object_mut()
    {
        map.insert("columns".to_string(), serde_json::json!(spec.columns));
    }
    let mut hasher = Sha256::new();
    hasher.update(content_sha256.as_bytes());
    hasher.update(options.to_string().as_bytes());
    let id = hex(&hasher.finalize());

    let mut class_counts = BTreeMap::new();
    if let Some(target) = table.column_index(&schema.target.name) {
        for row in table.rows() {
            if let Some(class) = schema.target.class_index(&row.get(target)) {
                *class_counts
                    .entry(schema.target.classes[class].clone())
                    .or_insert(0) += 1;
            }
        }
    }
    DatasetFingerprint {
        id,
        content_sha256,
        file_name: spec
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        rows: table.row_count(),
        columns: table.header.len(),
        class_counts,
    }
}

/// The fingerprint of an image dataset: every file's name and content, and the loading options.
pub fn image_fingerprint(set: &ImageSet, spec: &DataSpec) -> DatasetFingerprint {
    let mut options = serde_json::json!({
        "images": spec.images.clone().unwrap_or_default(),
        "shape": set.shape,
        "valid_fraction": spec.valid_fraction,
        "split_seed": spec.split_seed,
    });
    add_test_options(&mut options, spec, None);
    let mut hasher = Sha256::new();
    hasher.update(set.content_sha256.as_bytes());
    hasher.update(options.to_string().as_bytes());
    let counts = set.class_counts();
    DatasetFingerprint {
        id: hex(&hasher.finalize()),
        content_sha256: set.content_sha256.clone(),
        file_name: spec
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        rows: set.items.len(),
        columns: set.shape.pixels(),
        class_counts: set.classes.iter().cloned().zip(counts).collect(),
    }
}

fn add_test_options(options: &mut serde_json::Value, spec: &DataSpec, test_file: Option<&[u8]>) {
    let test = match (&spec.test, test_file) {
        (None, _) => return,
        (Some(super::TestSplit::Fraction(fraction)), _) => {
            serde_json::json!({ "fraction": fraction })
        }
        (Some(super::TestSplit::File(_)), bytes) => serde_json::json!({
            "file_sha256": bytes.map(|bytes| hex(&Sha256::digest(bytes))),
        }),
    };
    options["test"] = test;
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
