//! Column types, the target and the task, inferred from a parsed table.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::DataError;
use super::columns::{BadCells, ColumnChoices, Inferred, infer_feature};
use super::csv::{CellKind, CellValue, RawTable, cell_kind, parse_number};
use super::dialect::Delimiter;
use super::images::ImageOptions;
use super::row_ids::RowIdColumn;

/// Categorical feature columns with more distinct values than this are rejected, not one-hot encoded.
pub const MAX_ONE_HOT_CATEGORIES: usize = 32;
/// An integer target with at most this many distinct values is treated as class labels.
pub const MAX_INTEGER_CLASSES: usize = 20;

/// How to read a dataset: which file, which column to predict, and how to split it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    pub path: PathBuf,
    /// Target column name; `None` means the last column.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub task: TaskOverride,
    #[serde(default = "default_valid_fraction")]
    pub valid_fraction: f64,
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
    /// Fill missing feature cells (training mean / most frequent category) instead of failing.
    #[serde(default)]
    pub impute_missing: bool,
    /// How to read image datasets (a folder of class folders, or IDX files); ignored for CSV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageOptions>,
    /// Rows held out from training, validation, sweeps, pruning and early stopping: read only
    /// to evaluate a chosen checkpoint once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<TestSplit>,
    /// Columns left out, read as categories, or with non-numbers as missing (CSV only).
    #[serde(default, skip_serializing_if = "ColumnChoices::is_empty")]
    pub columns: ColumnChoices,
    /// The CSV file's delimiter as chosen; `None`: detected (comma, semicolon, tab or pipe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<Delimiter>,
}

/// Where the test rows come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestSplit {
    /// A seeded share of the dataset (stratified by class), split off before validation.
    Fraction(f64),
    /// A separate CSV file with the same columns (tables only).
    File(PathBuf),
}

impl TestSplit {
    pub fn fraction(&self) -> f64 {
        match self {
            TestSplit::Fraction(fraction) => *fraction,
            TestSplit::File(_) => 0.0,
        }
    }
}

/// What kind of dataset a path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    Csv(PathBuf),
    ImageFolder(PathBuf),
    /// The images file of an IDX pair.
    Idx(PathBuf),
}

fn default_valid_fraction() -> f64 {
    0.2
}

fn default_split_seed() -> u64 {
    42
}

impl DataSpec {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            target: None,
            task: TaskOverride::Auto,
            valid_fraction: default_valid_fraction(),
            split_seed: default_split_seed(),
            impute_missing: false,
            images: None,
            test: None,
            columns: ColumnChoices::default(),
            delimiter: None,
        }
    }

    /// A folder is an image dataset (its IDX pair if it holds one, else class folders); a file
    /// named `*-images-idx3-ubyte[.gz]` is IDX; anything else is read as CSV.
    pub fn source(&self) -> DataSource {
        if self.path.is_dir() {
            match super::idx::find_idx_images(&self.path) {
                Some(images) if !has_sub_folders(&self.path) => DataSource::Idx(images),
                _ => DataSource::ImageFolder(self.path.clone()),
            }
        } else if super::idx::is_idx_images(&self.path) {
            DataSource::Idx(self.path.clone())
        } else {
            DataSource::Csv(self.path.clone())
        }
    }

    /// Columns read as written rather than as numbers: the ones declared categorical, and the
    /// target when classification is asked for (its classes are names, even if numeric).
    pub fn text_columns(&self) -> Vec<&str> {
        let mut columns: Vec<&str> = self
            .columns
            .categorical
            .iter()
            .map(String::as_str)
            .collect();
        if self.task == TaskOverride::Classification
            && let Some(target) = &self.target
        {
            columns.push(target);
        }
        columns
    }

    pub fn is_image_data(&self) -> bool {
        !matches!(self.source(), DataSource::Csv(_))
    }

    /// The dataset's short name, for run names and tables.
    pub fn dataset_name(&self) -> String {
        let path = if self.path.is_dir() {
            self.path
                .canonicalize()
                .unwrap_or_else(|_| self.path.clone())
        } else {
            self.path.clone()
        };
        path.file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".to_string())
    }
}

fn has_sub_folders(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|entry| entry.path().is_dir())
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskOverride {
    #[default]
    Auto,
    Classification,
    Regression,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Classification,
    Regression,
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ColumnKind {
    Numeric,
    Categorical { categories: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSchema {
    pub name: String,
    #[serde(flatten)]
    pub kind: ColumnKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSchema {
    pub name: String,
    pub task: Task,
    /// Class names in output order; empty for regression.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Whether class labels were numbers in the file (so "1.0" and "1" are the same class).
    #[serde(default)]
    pub numeric_labels: bool,
}

impl TargetSchema {
    pub fn output_width(&self) -> usize {
        match self.task {
            Task::Classification => self.classes.len(),
            Task::Regression => 1,
        }
    }

    /// The class index of a target cell, if it names a known class.
    pub fn class_index(&self, cell: &str) -> Option<usize> {
        let key = if self.numeric_labels {
            integer_label(parse_number(cell)?)?
        } else {
            cell.to_string()
        };
        self.classes.iter().position(|class| *class == key)
    }
}

/// The feature columns (in order) and the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub features: Vec<ColumnSchema>,
    pub target: TargetSchema,
}

impl Schema {
    pub fn task(&self) -> Task {
        self.target.task
    }

    /// Columns whose cells are read as written rather than as numbers: the categorical
    /// features, and the target when its classes are names.
    pub fn text_columns(&self) -> Vec<&str> {
        let mut columns: Vec<&str> = self
            .features
            .iter()
            .filter(|feature| matches!(feature.kind, ColumnKind::Categorical { .. }))
            .map(|feature| feature.name.as_str())
            .collect();
        if self.target.task == Task::Classification && !self.target.numeric_labels {
            columns.push(&self.target.name);
        }
        columns
    }
}

fn integer_label(value: f64) -> Option<String> {
    (value.fract() == 0.0 && value.abs() < 1e15).then(|| format!("{}", value as i64))
}

/// Infers the feature columns' types, the target and the task; also returns what the user should
/// know that does not stop loading (id-like columns, mixed columns read as categories).
pub fn infer_schema(table: &RawTable, spec: &DataSpec) -> Result<(Schema, Vec<String>), DataError> {
    infer_table(table, spec).map(|inferred| (inferred.schema, inferred.warnings))
}

/// A table's schema, what the user should know about it, and the columns that number or name
/// its rows.
#[derive(Debug, Clone)]
pub struct TableInference {
    pub schema: Schema,
    pub warnings: Vec<String>,
    /// Row names and row numbers found, kept (`--keep`) or left out.
    pub row_ids: Vec<RowIdColumn>,
    /// The spec's column choices with the row ids it does not keep added to `exclude`: what
    /// the run records and `predict` applies.
    pub choices: ColumnChoices,
}

/// As [`infer_schema`], with the row ids found and the column choices in force.
pub fn infer_table(table: &RawTable, spec: &DataSpec) -> Result<TableInference, DataError> {
    let target_index = match &spec.target {
        Some(name) => table
            .column_index(name)
            .ok_or_else(|| DataError::NoSuchColumn {
                path: table.path.clone(),
                column: name.clone(),
                available: table.header.join(", "),
            })?,
        None => table.header.len() - 1,
    };
    let target_name = table.header[target_index].clone();
    if table.header.len() < 2 {
        return Err(DataError::NoFeatures {
            path: table.path.clone(),
            column: target_name,
        });
    }
    spec.columns.check(table, &target_name)?;
    let target = infer_target(table, target_index, spec.task)?;

    let mut features = Vec::new();
    let mut warnings = table.header_notes.clone();
    let row_ids = super::row_ids::find_row_ids(table, target_index, &spec.columns);
    let mut choices = spec.columns.clone();
    for id in row_ids.iter().filter(|id| !spec.columns.keeps(&id.name)) {
        warnings.push(id.note());
        ColumnChoices::set(&mut choices.exclude, &id.name, true);
    }
    let feature_columns: Vec<usize> = (0..table.header.len())
        .filter(|&index| index != target_index && !choices.excludes(&table.header[index]))
        .collect();
    // Each column is read on its own; the first column in the file with a problem is reported.
    let inferred = super::parallel::map_in_parallel(&feature_columns, |&index| {
        let mut column_warnings = Vec::new();
        let inferred = infer_feature(table, index, &spec.columns, &mut column_warnings);
        (inferred, column_warnings)
    });
    for (&index, (inferred, column_warnings)) in feature_columns.iter().zip(inferred) {
        let name = &table.header[index];
        warnings.extend(column_warnings);
        let kind = match inferred? {
            Inferred::Numeric => ColumnKind::Numeric,
            Inferred::Categorical(values) if values.len() > MAX_ONE_HOT_CATEGORIES => {
                return Err(DataError::TooManyCategories {
                    path: table.path.clone(),
                    column: name.clone(),
                    distinct: values.len(),
                    max: MAX_ONE_HOT_CATEGORIES,
                });
            }
            Inferred::Categorical(values) => ColumnKind::Categorical {
                categories: values.into_iter().collect(),
            },
        };
        features.push(ColumnSchema {
            name: name.clone(),
            kind,
        });
    }
    if features.is_empty() {
        return Err(DataError::NoFeatures {
            path: table.path.clone(),
            column: target_name,
        });
    }
    Ok(TableInference {
        schema: Schema { features, target },
        warnings,
        row_ids,
        choices,
    })
}

fn infer_target(
    table: &RawTable,
    column: usize,
    task: TaskOverride,
) -> Result<TargetSchema, DataError> {
    let name = table.header[column].clone();
    if let Some(row) = table.values(column).position(CellValue::is_missing) {
        return Err(DataError::MissingTarget {
            path: table.path.clone(),
            line: table.cell_line(row, column),
            column: name,
        });
    }
    let mut bad = BadCells::default();
    let mut numeric_like = 0usize;
    for (row_index, value) in table.values(column).enumerate() {
        let cell = match value {
            CellValue::Number(_) => {
                numeric_like += 1;
                continue;
            }
            CellValue::Text(cell) => cell,
        };
        match cell_kind(cell) {
            CellKind::Number => numeric_like += 1,
            CellKind::Unusable => {
                numeric_like += 1;
                bad.add(table.cell_line(row_index, column), cell);
            }
            CellKind::Text => bad.add(table.cell_line(row_index, column), cell),
        }
    }
    let all_numeric = bad.count == 0;
    // A mostly numeric target with a few typos is not a set of class names by accident.
    if !all_numeric && task != TaskOverride::Classification && 2 * numeric_like > table.row_count()
    {
        return Err(DataError::NonNumericTarget {
            path: table.path.clone(),
            column: name,
            count: bad.count,
            cells: bad.cells,
        });
    }
    let integer_labels: Option<BTreeSet<i64>> = all_numeric
        .then(|| {
            table
                .values(column)
                .map(|value| {
                    let value = value.number()?;
                    (value.fract() == 0.0).then_some(value as i64)
                })
                .collect()
        })
        .flatten();

    let task = match task {
        TaskOverride::Classification => Task::Classification,
        TaskOverride::Regression => Task::Regression,
        TaskOverride::Auto if !all_numeric => Task::Classification,
        TaskOverride::Auto => match &integer_labels {
            Some(labels) if labels.len() <= MAX_INTEGER_CLASSES => Task::Classification,
            _ => Task::Regression,
        },
    };
    if task == Task::Regression {
        if !all_numeric {
            return Err(DataError::NonNumericRegressionTarget {
                path: table.path.clone(),
                column: name,
            });
        }
        return Ok(TargetSchema {
            name,
            task,
            classes: Vec::new(),
            numeric_labels: false,
        });
    }

    let (classes, numeric_labels) = match integer_labels {
        Some(labels) => (labels.iter().map(i64::to_string).collect::<Vec<_>>(), true),
        None => {
            let labels: BTreeSet<Cow<str>> = table.column(column).collect();
            (labels.into_iter().map(Cow::into_owned).collect(), false)
        }
    };
    if classes.len() < 2 {
        return Err(DataError::SingleClass {
            path: table.path.clone(),
            column: name,
            class: classes.first().cloned().unwrap_or_default(),
        });
    }
    Ok(TargetSchema {
        name,
        task,
        classes,
        numeric_labels,
    })
}
