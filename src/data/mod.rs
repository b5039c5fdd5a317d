//! Loading, validating, fingerprinting, splitting and normalising datasets: CSV tables, image
//! folders and IDX files.
//!
//! Nothing here knows about models or training: the output is plain `f32` matrices plus the
//! [`Preprocessor`] that produced them, which is stored with every run and every exported model.

mod clean_encode;
mod columns;
mod csv;
mod dialect;
mod fingerprint;
mod for_model;
mod idx;
mod image_transform;
mod images;
mod lines;
mod parallel;
mod preprocess;
mod row_ids;
mod schema;
mod split;
mod table;

pub use self::csv::{
    CellValue, CsvFormat, Delimiter, RawTable, RowRef, load_csv, load_csv_hashed,
    load_csv_hashed_with, load_csv_keeping_text, load_csv_with, parse_csv_bytes,
    parse_csv_keeping_text, parse_csv_with,
};
pub use columns::{BadCell, ColumnChoices};
pub use fingerprint::{DatasetFingerprint, fingerprint, fingerprint_hashed, image_fingerprint};
pub use for_model::prepare_for_model;
pub use idx::{find_idx_images, is_idx_images, load_idx, parse_idx, write_idx};
pub use image_transform::{ImageTransform, augment_image};
pub use images::{
    Augmentation, ChannelMode, IMAGE_EXTENSIONS, ImageItem, ImageOptions, ImageSet, ImageShape,
    MAX_IMAGE_EDGE_PX, decode as decode_image, image_files_in, is_image_file, load_image_folder,
};
pub use preprocess::{ColumnTransform, EncodedMatrix, InputShape, Preprocessor};
pub use row_ids::{RowIdColumn, RowIdKind};
pub use schema::{
    ColumnKind, ColumnSchema, DataSource, DataSpec, Schema, TableInference, TargetSchema, Task,
    TaskOverride, TestSplit, infer_schema, infer_table,
};
pub use split::{Split, split_indices, stratified_split};

use std::path::PathBuf;

use sha2::{Digest, Sha256};

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
    #[error(
        "{path}: line {line}, column '{column}': '{value}' is not a number, but the column is numeric"
    )]
    NotANumber {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
    },
    #[error(
        "{path}: column '{column}' is numeric, but {count} cell(s) are not usable numbers: {shown}. Fix the file, or choose a way out: treat them as missing, filled with the training mean (--as-missing {column}, or \"Treat as missing\" in the data panel), or read the column as categories on purpose (--categorical {column}, or \"Categorical\")",
        shown = columns::describe_cells(.cells, .count)
    )]
    NonNumericCells {
        path: PathBuf,
        column: String,
        count: usize,
        cells: Vec<BadCell>,
    },
    #[error(
        "{path}: the target column '{column}' is numeric, but {count} cell(s) are not usable numbers: {shown}. Fix them, or classify (--task classification) to read its values as class names",
        shown = columns::describe_cells(.cells, .count)
    )]
    NonNumericTarget {
        path: PathBuf,
        column: String,
        count: usize,
        cells: Vec<BadCell>,
    },
    #[error(
        "{path}: column '{column}' held numbers in training, but {count} cell(s) here are not usable numbers: {shown}; fix them (the model was not trained to treat them as missing)",
        shown = columns::describe_cells(.cells, .count)
    )]
    NonNumericInput {
        path: PathBuf,
        column: String,
        count: usize,
        cells: Vec<BadCell>,
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
        "{path}: column '{column}' is categorical with {distinct} distinct values; at most {max} can be one-hot encoded (if it is an id, a name or free text, exclude it: --exclude {column}, or untick it in the data panel)"
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

/// The dataset as read, before encoding.
#[derive(Debug, Clone)]
pub enum LoadedData {
    Table(RawTable),
    Images(ImageSet),
}

/// A dataset loaded, checked and split, ready to become tensors.
#[derive(Debug, Clone)]
pub struct PreparedData {
    pub schema: Schema,
    pub fingerprint: DatasetFingerprint,
    pub preprocessor: Preprocessor,
    pub train: EncodedMatrix,
    pub valid: EncodedMatrix,
    /// The held-out test rows, when the spec asks for a test split. The trainer never reads
    /// them; only the evaluation of a chosen checkpoint does.
    pub test: Option<EncodedMatrix>,
    pub loaded: LoadedData,
    pub split: Split,
    /// Training-time changes to image data (flips, shifts), if any.
    pub augmentation: Option<Augmentation>,
    /// What the user should know that did not stop loading (skipped files, renamed header
    /// cells, row numbers left out).
    pub warnings: Vec<String>,
    /// Columns that name or number the rows (tables only), kept or left out.
    pub row_ids: Vec<RowIdColumn>,
}

impl PreparedData {
    pub fn input_width(&self) -> usize {
        self.preprocessor.output_width()
    }

    pub fn output_width(&self) -> usize {
        self.schema.target.output_width()
    }

    pub fn table(&self) -> Option<&RawTable> {
        match &self.loaded {
            LoadedData::Table(table) => Some(table),
            LoadedData::Images(_) => None,
        }
    }

    pub fn images(&self) -> Option<&ImageSet> {
        match &self.loaded {
            LoadedData::Images(set) => Some(set),
            LoadedData::Table(_) => None,
        }
    }

    /// The input shape of image data.
    pub fn image_shape(&self) -> Option<ImageShape> {
        self.images().map(|set| set.shape)
    }

    /// The training split with this epoch's random flips and shifts, when augmentation is on.
    pub fn augmented_train(&self, seed: u64) -> Option<EncodedMatrix> {
        use rand::SeedableRng;
        let augment = self.augmentation.filter(Augmentation::is_active)?;
        let set = self.images()?;
        let transform = self.preprocessor.image.as_ref()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut inputs = Vec::with_capacity(self.train.inputs.len());
        for &index in &self.split.train {
            let changed = augment_image(set.image(index), set.shape, &augment, &mut rng);
            transform.encode_into(&changed, &mut inputs);
        }
        Some(EncodedMatrix {
            inputs,
            rows: self.train.rows,
            width: self.train.width,
            labels: self.train.labels.clone(),
            values: self.train.values.clone(),
        })
    }

    /// Rows kept with a run for its exports' golden vectors: the first `typical` validation
    /// rows, then up to `extreme` others with the largest encoded input (in absolute value),
    /// most extreme first — the rows that drive a model's outputs furthest.
    pub fn golden_candidates(&self, typical: usize, extreme: usize) -> Vec<SampleRow> {
        let mut order: Vec<usize> = (typical.min(self.valid.rows)..self.valid.rows).collect();
        let largest = |position: usize| {
            self.valid
                .row(position)
                .iter()
                .fold(0f32, |max, value| max.max(value.abs()))
        };
        order.sort_by(|&a, &b| largest(b).total_cmp(&largest(a)));
        order.truncate(extreme);
        let mut positions: Vec<usize> = (0..typical.min(self.valid.rows)).collect();
        positions.extend(order);
        positions
            .into_iter()
            .map(|position| self.valid_sample(position))
            .collect()
    }

    /// Up to `count` validation rows as in the file (by column name), with their encoded inputs.
    pub fn sample_valid_rows(&self, count: usize) -> Vec<SampleRow> {
        (0..count.min(self.valid.rows))
            .map(|position| self.valid_sample(position))
            .collect()
    }

    /// The validation row at `position` of the split, as in the file and encoded.
    fn valid_sample(&self, position: usize) -> SampleRow {
        let index = self.split.valid[position];
        let raw = match &self.loaded {
            LoadedData::Images(set) => [
                ("file".to_string(), set.items[index].name.clone()),
                (
                    "class".to_string(),
                    set.classes[set.items[index].label].clone(),
                ),
            ]
            .into_iter()
            .collect(),
            LoadedData::Table(table) => table
                .header
                .iter()
                .cloned()
                .zip(table.row(index).iter().map(|cell| cell.into_owned()))
                .collect(),
        };
        SampleRow {
            raw,
            inputs: self.valid.row(position).to_vec(),
        }
    }
}

/// Typical validation rows (the first ones) in every run's golden candidates.
pub const TYPICAL_GOLDEN_ROWS: usize = 5;

/// One row of real data kept with a run, for golden vectors in exports.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SampleRow {
    pub raw: std::collections::BTreeMap<String, String>,
    pub inputs: Vec<f32>,
}

/// Loads a dataset (CSV, image folder or IDX), checks it, splits it and fits preprocessing on
/// the training part.
pub fn prepare(spec: &DataSpec) -> Result<PreparedData, DataError> {
    let options = spec.images.clone().unwrap_or_default();
    match spec.source() {
        DataSource::Csv(path) => {
            // Read in blocks, hashed as they pass: the file's bytes are never all in memory.
            let (table, content_sha256) =
                load_csv_hashed_with(&path, &spec.text_columns(), spec.delimiter)?;
            let parsed = infer_and_fingerprint(spec, table, &content_sha256)?;
            encode_parsed(spec, parsed)
        }
        DataSource::ImageFolder(dir) => prepare_images(spec, load_image_folder(&dir, &options)?),
        DataSource::Idx(file) => prepare_images(spec, load_idx(&file, &options)?),
    }
}

/// Splits an image set (stratified), fits the normalisation on the training images and encodes.
pub fn prepare_images(spec: &DataSpec, set: ImageSet) -> Result<PreparedData, DataError> {
    if spec.task == TaskOverride::Regression {
        return Err(DataError::Invalid {
            path: spec.path.clone(),
            message:
                "image datasets are classified by folder or label; regression needs a CSV file"
                    .to_string(),
        });
    }
    let invalid = |message: String| DataError::Invalid {
        path: spec.path.clone(),
        message,
    };
    if matches!(spec.test, Some(TestSplit::File(_))) {
        return Err(invalid(
            "a separate test file is for CSV datasets; give image datasets a test fraction"
                .to_string(),
        ));
    }
    let split = split_images(spec, &set)?;
    let transform = ImageTransform::fit(&set, &split.train);
    let encode = |rows: &[usize]| {
        let mut inputs = Vec::with_capacity(rows.len() * set.shape.pixels());
        for &row in rows {
            transform.encode_into(set.image(row), &mut inputs);
        }
        EncodedMatrix {
            inputs,
            rows: rows.len(),
            width: set.shape.pixels(),
            labels: rows
                .iter()
                .map(|&row| set.items[row].label as i64)
                .collect(),
            values: Vec::new(),
        }
    };
    let (train, valid) = (encode(&split.train), encode(&split.valid));
    let test = spec.test.is_some().then(|| encode(&split.test));
    let schema = Schema {
        features: Vec::new(),
        target: TargetSchema {
            name: "class".to_string(),
            task: Task::Classification,
            classes: set.classes.clone(),
            numeric_labels: false,
        },
    };
    let warnings = match set.skipped.len() {
        0 => Vec::new(),
        count => vec![format!(
            "skipped {count} unreadable image(s) as asked; first: {}",
            set.skipped[0]
        )],
    };
    Ok(PreparedData {
        schema,
        fingerprint: image_fingerprint(&set, spec),
        preprocessor: Preprocessor::for_images(transform),
        train,
        valid,
        test,
        loaded: LoadedData::Images(set),
        split,
        augmentation: spec.images.as_ref().map(|options| options.augment),
        warnings,
        row_ids: Vec::new(),
    })
}

/// As [`prepare`], on bytes already read (the fingerprint hashes exactly these bytes).
pub fn prepare_bytes(spec: &DataSpec, bytes: &[u8]) -> Result<PreparedData, DataError> {
    let parsed = parse_and_fingerprint(spec, bytes)?;
    encode_parsed(spec, parsed)
}

/// A CSV file parsed, its schema inferred and fingerprinted: all that needs the file's bytes.
struct ParsedTable {
    table: RawTable,
    schema: Schema,
    warnings: Vec<String>,
    row_ids: Vec<RowIdColumn>,
    /// The spec's column choices with the row ids it does not keep left out.
    choices: ColumnChoices,
    test_table: Option<RawTable>,
    fingerprint: DatasetFingerprint,
}

/// A table's rows split as the spec asks (fractions and seed), training and validation rows
/// both present.
pub(crate) fn split_table(
    spec: &DataSpec,
    table: &RawTable,
    schema: &Schema,
) -> Result<Split, DataError> {
    let test_fraction = spec.test.as_ref().map_or(0.0, TestSplit::fraction);
    let split = split_indices(
        table,
        schema,
        spec.valid_fraction,
        test_fraction,
        spec.split_seed,
    );
    checked_split(spec, split, table.row_count())
}

/// An image set split by class as the spec asks, training and validation images both present.
pub(crate) fn split_images(spec: &DataSpec, set: &ImageSet) -> Result<Split, DataError> {
    let test_fraction = spec.test.as_ref().map_or(0.0, TestSplit::fraction);
    let split = stratified_split(
        &set.labels(),
        spec.valid_fraction,
        test_fraction,
        spec.split_seed,
    );
    checked_split(spec, split, set.items.len())
}

fn checked_split(
    spec: &DataSpec,
    split: Result<Split, String>,
    rows: usize,
) -> Result<Split, DataError> {
    let split = split.map_err(|message| DataError::Invalid {
        path: spec.path.clone(),
        message,
    })?;
    if split.train.is_empty() || split.valid.is_empty() {
        return Err(DataError::TooFewRows {
            path: spec.path.clone(),
            rows,
        });
    }
    Ok(split)
}

/// The separate test file a spec names, parsed, with its bytes (the fingerprint hashes them).
/// Its categorical columns keep their text as written, as in the training file (`schema`).
pub(crate) fn read_test_file(
    spec: &DataSpec,
    schema: &Schema,
) -> Result<Option<(RawTable, Vec<u8>)>, DataError> {
    let Some(TestSplit::File(path)) = &spec.test else {
        return Ok(None);
    };
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    let table = parse_csv_with(path, &bytes, &schema.text_columns(), spec.delimiter)?;
    Ok(Some((table, bytes)))
}

fn parse_and_fingerprint(spec: &DataSpec, bytes: &[u8]) -> Result<ParsedTable, DataError> {
    let table = parse_csv_with(&spec.path, bytes, &spec.text_columns(), spec.delimiter)?;
    infer_and_fingerprint(spec, table, &Sha256::digest(bytes).into())
}

/// Infers a parsed table's schema and fingerprints it; `content_sha256` hashes the file's bytes.
fn infer_and_fingerprint(
    spec: &DataSpec,
    table: RawTable,
    content_sha256: &[u8; 32],
) -> Result<ParsedTable, DataError> {
    let TableInference {
        schema,
        warnings,
        row_ids,
        choices,
    } = infer_table(&table, spec)?;
    let test_file = read_test_file(spec, &schema)?;
    // The choices in force, so that the run's recorded spec (which lists the row ids left
    // out) prepares to the same fingerprint.
    let effective = DataSpec {
        columns: choices.clone(),
        ..spec.clone()
    };
    let fingerprint = fingerprint_hashed(
        content_sha256,
        &effective,
        &table,
        &schema,
        test_file.as_ref().map(|(_, bytes)| bytes.as_slice()),
    );
    Ok(ParsedTable {
        table,
        schema,
        warnings,
        row_ids,
        choices,
        test_table: test_file.map(|(table, _)| table),
        fingerprint,
    })
}

/// Splits a parsed table, fits the preprocessing on its training rows and encodes every split.
fn encode_parsed(spec: &DataSpec, parsed: ParsedTable) -> Result<PreparedData, DataError> {
    let ParsedTable {
        table,
        schema,
        warnings,
        row_ids,
        choices,
        test_table,
        fingerprint,
    } = parsed;
    let split = split_table(spec, &table, &schema)?;
    let mut preprocessor = Preprocessor::fit(&table, &schema, &split.train);
    preprocessor.choices = choices;
    let train = preprocessor.encode_rows(&table, &schema, &split.train, spec.impute_missing)?;
    let valid = preprocessor.encode_rows(&table, &schema, &split.valid, spec.impute_missing)?;
    let test = match (&spec.test, test_table) {
        (Some(TestSplit::File(_)), Some(test_table)) => {
            // The target column is required here: the test rows are scored against it.
            preprocessor.check_columns(&test_table, &[schema.target.name.as_str()])?;
            let rows: Vec<usize> = (0..test_table.row_count()).collect();
            Some(preprocessor.encode_rows(&test_table, &schema, &rows, spec.impute_missing)?)
        }
        (Some(TestSplit::Fraction(_)), _) => {
            Some(preprocessor.encode_rows(&table, &schema, &split.test, spec.impute_missing)?)
        }
        _ => None,
    };
    if test.as_ref().is_some_and(|test| test.rows == 0) {
        return Err(DataError::Invalid {
            path: spec.path.clone(),
            message: "the test split has no rows".to_string(),
        });
    }
    Ok(PreparedData {
        schema,
        fingerprint,
        preprocessor,
        train,
        valid,
        test,
        loaded: LoadedData::Table(table),
        split,
        augmentation: None,
        warnings,
        row_ids,
    })
}
