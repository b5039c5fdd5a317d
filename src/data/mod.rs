//! Loading, validating, fingerprinting, splitting and normalising tabular datasets.
//!
//! Nothing here knows about models or training: the output is plain `f32` matrices plus the
//! [`Preprocessor`] that produced them, which is stored with every run and every exported model.

mod csv;
mod fingerprint;
mod preprocess;
mod schema;
mod split;

pub use self::csv::{RawTable, load_csv, parse_csv_bytes};
pub use fingerprint::{DatasetFingerprint, fingerprint};
pub use preprocess::{ColumnTransform, EncodedMatrix, Preprocessor};
pub use schema::{
    ColumnKind, ColumnSchema, DataSpec, Schema, TargetSchema, Task, TaskOverride, infer_schema,
};
pub use split::{Split, split_indices};

use std::path::PathBuf;

/// Everything that can be wrong with a dataset, worded for the person who chose the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: the file has a header row but no data rows")]
    HeaderOnly { path: PathBuf },
    #[error("{path}: line {line} is not valid UTF-8 text (byte {byte} of the file)")]
    NotUtf8 {
        path: PathBuf,
        line: u64,
        byte: usize,
    },
    #[error("{path}: line {line} has {found} cells but the header has {expected} columns")]
    Ragged {
        path: PathBuf,
        line: u64,
        expected: usize,
        found: usize,
    },
    #[error("{path}: the header names column '{column}' twice")]
    DuplicateColumn { path: PathBuf, column: String },
    #[error(
        "{path}: line {line}, column '{column}': '{value}' is not a number, but the column is numeric"
    )]
    NotANumber {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
    },
    #[error("{path}: no column named '{column}' (columns: {available})")]
    NoSuchColumn {
        path: PathBuf,
        column: String,
        available: String,
    },
    #[error(
        "{path}: missing values in {count} cell(s), first at line {line}, column '{column}'; fix the file or turn on imputation"
    )]
    MissingCells {
        path: PathBuf,
        count: usize,
        line: u64,
        column: String,
    },
    #[error("{path}: line {line} has no value in the target column '{column}'")]
    MissingTarget {
        path: PathBuf,
        line: u64,
        column: String,
    },
    #[error(
        "{path}: the target column '{column}' has a single class ('{class}'); classification needs at least two"
    )]
    SingleClass {
        path: PathBuf,
        column: String,
        class: String,
    },
    #[error(
        "{path}: column '{column}' is categorical with {distinct} distinct values; at most {max} can be one-hot encoded"
    )]
    TooManyCategories {
        path: PathBuf,
        column: String,
        distinct: usize,
        max: usize,
    },
    #[error(
        "{path}: the target column '{column}' is not numeric, so it cannot be a regression target"
    )]
    NonNumericRegressionTarget { path: PathBuf, column: String },
    #[error("{path}: the dataset has no feature columns besides the target '{column}'")]
    NoFeatures { path: PathBuf, column: String },
    #[error("{path}: {rows} rows are too few to split into training and validation sets")]
    TooFewRows { path: PathBuf, rows: usize },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("the data does not match the model's input schema: {0}")]
    SchemaMismatch(String),
}

/// A dataset loaded, checked and split, ready to become tensors.
#[derive(Debug, Clone)]
pub struct PreparedData {
    pub schema: Schema,
    pub fingerprint: DatasetFingerprint,
    pub preprocessor: Preprocessor,
    pub train: EncodedMatrix,
    pub valid: EncodedMatrix,
    pub table: RawTable,
    pub split: Split,
}

impl PreparedData {
    pub fn input_width(&self) -> usize {
        self.preprocessor.output_width()
    }

    pub fn output_width(&self) -> usize {
        self.schema.target.output_width()
    }

    /// Up to `count` validation rows as in the file (by column name), with their encoded inputs.
    pub fn sample_valid_rows(&self, count: usize) -> Vec<SampleRow> {
        self.split
            .valid
            .iter()
            .take(count)
            .enumerate()
            .map(|(position, &row)| SampleRow {
                raw: self
                    .table
                    .header
                    .iter()
                    .cloned()
                    .zip(self.table.rows[row].iter().cloned())
                    .collect(),
                inputs: self.valid.row(position).to_vec(),
            })
            .collect()
    }
}

/// One row of real data kept with a run, for golden vectors in exports.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SampleRow {
    pub raw: std::collections::BTreeMap<String, String>,
    pub inputs: Vec<f32>,
}

/// Loads a CSV file, infers its schema, splits it and fits preprocessing on the training rows.
pub fn prepare(spec: &DataSpec) -> Result<PreparedData, DataError> {
    let bytes = std::fs::read(&spec.path).map_err(|source| DataError::Io {
        path: spec.path.clone(),
        source,
    })?;
    prepare_bytes(spec, &bytes)
}

/// As [`prepare`], on bytes already read (the fingerprint hashes exactly these bytes).
pub fn prepare_bytes(spec: &DataSpec, bytes: &[u8]) -> Result<PreparedData, DataError> {
    let table = parse_csv_bytes(&spec.path, bytes)?;
    let schema = infer_schema(&table, spec)?;
    let fingerprint = fingerprint(bytes, spec, &table, &schema);
    let split = split_indices(&table, &schema, spec.valid_fraction, spec.split_seed).map_err(
        |message| DataError::Invalid {
            path: spec.path.clone(),
            message,
        },
    )?;
    if split.train.is_empty() || split.valid.is_empty() {
        return Err(DataError::TooFewRows {
            path: spec.path.clone(),
            rows: table.rows.len(),
        });
    }
    let preprocessor = Preprocessor::fit(&table, &schema, &split.train);
    let train = preprocessor.encode_rows(&table, &schema, &split.train, spec.impute_missing)?;
    let valid = preprocessor.encode_rows(&table, &schema, &split.valid, spec.impute_missing)?;
    Ok(PreparedData {
        schema,
        fingerprint,
        preprocessor,
        train,
        valid,
        table,
        split,
    })
}
