//! Feature encoding: standardisation and one-hot encoding fitted on the training split only.

use serde::{Deserialize, Serialize};

use super::DataError;
use super::columns::{BadCells, ColumnChoices};
use super::csv::RawTable;
use super::image_transform::ImageTransform;
use super::images::ImageShape;
use super::schema::{ColumnKind, Schema, Task};

/// How one input column becomes one or more model inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnTransform {
    /// `(x - mean) / std`; a missing cell becomes the mean when imputing.
    Standardize { name: String, mean: f64, std: f64 },
    /// One input per category (in this order); a missing cell becomes the most frequent category.
    OneHot {
        name: String,
        categories: Vec<String>,
        most_frequent: String,
    },
}

impl ColumnTransform {
    pub fn name(&self) -> &str {
        match self {
            ColumnTransform::Standardize { name, .. } | ColumnTransform::OneHot { name, .. } => {
                name
            }
        }
    }

    pub fn width(&self) -> usize {
        match self {
            ColumnTransform::Standardize { .. } => 1,
            ColumnTransform::OneHot { categories, .. } => categories.len(),
        }
    }
}

/// Everything needed to turn raw rows into model inputs and model outputs back into values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    pub columns: Vec<ColumnTransform>,
    /// Regression targets are trained standardised; predictions are mapped back with these.
    #[serde(default)]
    pub target_mean: f64,
    #[serde(default = "one")]
    pub target_std: f64,
    /// Image models: the input shape and the per-channel normalisation (then `columns` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageTransform>,
    /// The user's column choices at training time: `predict` ignores excluded columns and treats
    /// non-numbers as missing where training did.
    #[serde(default, skip_serializing_if = "ColumnChoices::is_empty")]
    pub choices: ColumnChoices,
}

fn one() -> f64 {
    1.0
}

/// What a model takes: a flat row of features, or an image (still passed flat, channel-major).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputShape {
    Flat(usize),
    Image(ImageShape),
}

impl InputShape {
    /// Inputs per row.
    pub fn width(&self) -> usize {
        match self {
            InputShape::Flat(width) => *width,
            InputShape::Image(shape) => shape.pixels(),
        }
    }
}

/// Encoded rows: inputs row-major, plus class labels or (standardised) regression values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodedMatrix {
    pub inputs: Vec<f32>,
    pub rows: usize,
    pub width: usize,
    /// Class index per row (classification).
    pub labels: Vec<i64>,
    /// Standardised target per row (regression).
    pub values: Vec<f32>,
}

impl EncodedMatrix {
    pub fn row(&self, index: usize) -> &[f32] {
        &self.inputs[index * self.width..(index + 1) * self.width]
    }
}

/// Writes values one after another into a slice sized for them.
struct Cursor<'a> {
    out: &'a mut [f32],
    at: usize,
}

impl Cursor<'_> {
    fn push(&mut self, value: f32) {
        self.out[self.at] = value;
        self.at += 1;
    }

    fn extend(&mut self, values: impl IntoIterator<Item = f32>) {
        for value in values {
            self.push(value);
        }
    }
}

/// Below this many rows, encoding on one thread costs less than starting more.
const PARALLEL_ENCODE_MIN_ROWS: usize = 20_000;

fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 1.0);
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    let std = variance.sqrt();
    // A constant column carries no information; dividing by 1 keeps it at zero instead of NaN.
    (mean, if std > 1e-12 { std } else { 1.0 })
}

impl Preprocessor {
    /// Fits standardisation statistics (and imputation values) on the given training rows.
    pub fn fit(table: &RawTable, schema: &Schema, train_rows: &[usize]) -> Self {
        // The split's rows come shuffled; reading them in file order walks the table's memory
        // front to back instead of jumping (about twice as fast on 200,000 rows). The sums then add in
        // file order, which can move a mean by a rounding step: the model sees the same data.
        let mut ordered = train_rows.to_vec();
        ordered.sort_unstable();
        let train_rows = ordered.as_slice();
        let fitted = super::parallel::map_in_parallel(&schema.features, |feature| {
            let index = table.column_index(&feature.name)?;
            Some(match &feature.kind {
                ColumnKind::Numeric => {
                    let values: Vec<f64> = train_rows
                        .iter()
                        .filter_map(|&row| table.value(row, index).number())
                        .collect();
                    let (mean, std) = mean_std(&values);
                    ColumnTransform::Standardize {
                        name: feature.name.clone(),
                        mean,
                        std,
                    }
                }
                ColumnKind::Categorical { categories } => {
                    let mut counts = vec![0usize; categories.len()];
                    for cell in train_rows.iter().map(|&row| table.cell(row, index)) {
                        if let Some(position) = categories.iter().position(|c| *c == cell) {
                            counts[position] += 1;
                        }
                    }
                    let most = (0..categories.len())
                        .max_by_key(|&i| counts[i])
                        .unwrap_or(0);
                    ColumnTransform::OneHot {
                        name: feature.name.clone(),
                        categories: categories.clone(),
                        most_frequent: categories.get(most).cloned().unwrap_or_default(),
                    }
                }
            })
        });
        let columns: Vec<ColumnTransform> = fitted.into_iter().flatten().collect();
        let (target_mean, target_std) =
            match (schema.target.task, table.column_index(&schema.target.name)) {
                (Task::Regression, Some(target)) => {
                    let values: Vec<f64> = train_rows
                        .iter()
                        .filter_map(|&row| table.value(row, target).number())
                        .collect();
                    mean_std(&values)
                }
                _ => (0.0, 1.0),
            };
        Self {
            columns,
            target_mean,
            target_std,
            image: None,
            choices: ColumnChoices::default(),
        }
    }

    /// The preprocessing of an image model.
    pub fn for_images(transform: ImageTransform) -> Self {
        Self {
            columns: Vec::new(),
            target_mean: 0.0,
            target_std: 1.0,
            image: Some(transform),
            choices: ColumnChoices::default(),
        }
    }

    /// The shape of the model's input.
    pub fn input_shape(&self) -> InputShape {
        match &self.image {
            Some(image) => InputShape::Image(image.shape),
            None => InputShape::Flat(self.output_width()),
        }
    }

    pub fn output_width(&self) -> usize {
        match &self.image {
            Some(image) => image.shape.pixels(),
            None => self.columns.iter().map(ColumnTransform::width).sum(),
        }
    }

    /// Names of the model's inputs, one per encoded column (`color=red` for one-hot inputs);
    /// for images, one name per pixel, `c0_y3_x5`, in the model's channel-major order.
    pub fn input_names(&self) -> Vec<String> {
        if let Some(image) = &self.image {
            let shape = image.shape;
            let mut names = Vec::with_capacity(shape.pixels());
            for c in 0..shape.channels {
                for y in 0..shape.height {
                    for x in 0..shape.width {
                        names.push(format!("c{c}_y{y}_x{x}"));
                    }
                }
            }
            return names;
        }
        let mut names = Vec::with_capacity(self.output_width());
        for column in &self.columns {
            match column {
                ColumnTransform::Standardize { name, .. } => names.push(name.clone()),
                ColumnTransform::OneHot {
                    name, categories, ..
                } => names.extend(categories.iter().map(|c| format!("{name}={c}"))),
            }
        }
        names
    }

    /// Checks that a table has every input column, with numbers where numbers are expected.
    /// Columns in `allowed_extra` (the target, usually) may be present; any other extra is an error.
    pub fn check_columns(&self, table: &RawTable, allowed_extra: &[&str]) -> Result<(), DataError> {
        let missing: Vec<&str> = self
            .columns
            .iter()
            .map(ColumnTransform::name)
            .filter(|name| table.column_index(name).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(DataError::SchemaMismatch(format!(
                "{} lacks the column(s) {} that the model was trained on",
                table.path.display(),
                missing.join(", ")
            )));
        }
        let extra: Vec<&str> = table
            .header
            .iter()
            .map(String::as_str)
            .filter(|name| {
                !allowed_extra.contains(name)
                    && !self.choices.excludes(name)
                    && !self.columns.iter().any(|c| c.name() == *name)
            })
            .collect();
        if !extra.is_empty() {
            return Err(DataError::SchemaMismatch(format!(
                "{} has column(s) {} that the model does not know",
                table.path.display(),
                extra.join(", ")
            )));
        }
        Ok(())
    }

    /// Encodes the inputs of the given rows. Missing cells are an error unless `impute` (or the
    /// column's non-numbers are treated as missing); non-numbers in a numeric column are an
    /// error naming the first few and counting them.
    pub fn encode_inputs(
        &self,
        table: &RawTable,
        rows: &[usize],
        impute: bool,
    ) -> Result<Vec<f32>, DataError> {
        let width = self.output_width();
        let mut inputs = vec![0f32; rows.len() * width];
        if rows.len() < PARALLEL_ENCODE_MIN_ROWS {
            self.encode_inputs_in_order(table, rows, impute, &mut inputs)?;
            return Ok(inputs);
        }
        // Each thread writes its rows straight into the matrix: no second copy of it.
        let rows_per_chunk = PARALLEL_ENCODE_MIN_ROWS / 2;
        // Behind a lock only to hand each thread its chunk mutably; no two threads share one.
        let chunks: Vec<std::sync::Mutex<(&[usize], &mut [f32])>> = rows
            .chunks(rows_per_chunk)
            .zip(inputs.chunks_mut(rows_per_chunk * width))
            .map(std::sync::Mutex::new)
            .collect();
        let encoded = super::parallel::map_in_parallel(&chunks, |chunk| {
            let mut chunk = chunk
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let (chunk_rows, out) = &mut *chunk;
            self.encode_inputs_in_order(table, chunk_rows, impute, out)
        });
        drop(chunks);
        if encoded.iter().any(Result::is_err) {
            // Bad cells are rare: the whole pass again, in order, names them exactly as always
            // (the first line, every count) rather than merging each chunk's partial report.
            self.encode_inputs_in_order(table, rows, impute, &mut inputs)?;
        }
        Ok(inputs)
    }

    /// Encodes `rows` into `inputs`, which holds exactly their encoded width.
    fn encode_inputs_in_order(
        &self,
        table: &RawTable,
        rows: &[usize],
        impute: bool,
        inputs: &mut [f32],
    ) -> Result<(), DataError> {
        let width = self.output_width();
        let mut missing: Option<(usize, u64, String)> = None;
        let mut not_numbers: Option<(String, BadCells)> = None;
        let mut indices = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            indices.push(table.column_index(column.name()).ok_or_else(|| {
                DataError::SchemaMismatch(format!(
                    "{} lacks the column '{}'",
                    table.path.display(),
                    column.name()
                ))
            })?);
        }
        // Rows are read in file order, each written to its place in `rows`: the table is held
        // column by column, and reading it in the split's shuffled order would miss the cache
        // on every cell. Problems are reported in file order too.
        let mut order: Vec<(usize, usize)> = rows
            .iter()
            .enumerate()
            .map(|(position, &row)| (row, position))
            .collect();
        order.sort_unstable();
        if super::clean_encode::encode_clean_rows(
            &self.columns,
            &indices,
            table,
            &order,
            width,
            inputs,
        ) {
            return Ok(());
        }
        for (row, position) in order {
            let mut inputs = Cursor {
                out: &mut inputs[position * width..(position + 1) * width],
                at: 0,
            };
            for (column, &index) in self.columns.iter().zip(&indices) {
                let value = table.value(row, index);
                let line = || table.cell_line(row, index);
                let as_missing = self.choices.treats_as_missing(column.name());
                let cell_missing = value.is_missing();
                if cell_missing && !impute && !as_missing {
                    let entry = missing.get_or_insert((0, line(), column.name().to_string()));
                    entry.0 += 1;
                }
                match column {
                    ColumnTransform::Standardize { name, mean, std } => {
                        let value = match value.number() {
                            Some(value) if !cell_missing => value,
                            _ if cell_missing || as_missing => *mean,
                            _ => {
                                // The first column with bad cells is reported, all of them counted.
                                let (bad_column, cells) = not_numbers
                                    .get_or_insert_with(|| (name.clone(), BadCells::default()));
                                if bad_column == name {
                                    cells.add(line(), &table.cell(row, index));
                                }
                                *mean
                            }
                        };
                        inputs.push(((value - mean) / std) as f32);
                    }
                    ColumnTransform::OneHot {
                        name,
                        categories,
                        most_frequent,
                    } => {
                        let text = table.cell(row, index);
                        let cell = if cell_missing {
                            most_frequent.as_str()
                        } else {
                            &text
                        };
                        let position = categories.iter().position(|c| c == cell).ok_or_else(|| {
                            DataError::SchemaMismatch(format!(
                                "{} line {}: column '{name}' has the category '{cell}', unseen in training (known: {})",
                                table.path.display(),
                                line(),
                                categories.join(", ")
                            ))
                        })?;
                        inputs.extend(
                            (0..categories.len()).map(|i| if i == position { 1.0 } else { 0.0 }),
                        );
                    }
                }
            }
        }
        if let Some((column, cells)) = not_numbers {
            return Err(DataError::NonNumericInput {
                path: table.path.clone(),
                column,
                count: cells.count,
                cells: cells.cells,
            });
        }
        if let Some((count, line, column)) = missing {
            return Err(DataError::MissingCells {
                path: table.path.clone(),
                count,
                line,
                column,
            });
        }
        Ok(())
    }

    /// Encodes inputs and targets of the given rows of a training table.
    pub fn encode_rows(
        &self,
        table: &RawTable,
        schema: &Schema,
        rows: &[usize],
        impute: bool,
    ) -> Result<EncodedMatrix, DataError> {
        let inputs = self.encode_inputs(table, rows, impute)?;
        let target =
            table
                .column_index(&schema.target.name)
                .ok_or_else(|| DataError::NoSuchColumn {
                    path: table.path.clone(),
                    column: schema.target.name.clone(),
                    available: table.header.join(", "),
                })?;
        let mut labels = Vec::new();
        let mut values = Vec::new();
        for &row in rows {
            let cell = table.cell(row, target);
            match schema.target.task {
                Task::Classification => {
                    let class =
                        schema
                            .target
                            .class_index(&cell)
                            .ok_or_else(|| DataError::Invalid {
                                path: table.path.clone(),
                                message: format!(
                                    "line {}: unknown class '{cell}'",
                                    table.cell_line(row, target)
                                ),
                            })?;
                    labels.push(class as i64);
                }
                Task::Regression => {
                    let value =
                        table
                            .value(row, target)
                            .number()
                            .ok_or_else(|| DataError::NotANumber {
                                path: table.path.clone(),
                                line: table.cell_line(row, target),
                                column: schema.target.name.clone(),
                                value: cell.to_string(),
                            })?;
                    values.push(((value - self.target_mean) / self.target_std) as f32);
                }
            }
        }
        Ok(EncodedMatrix {
            inputs,
            rows: rows.len(),
            width: self.output_width(),
            labels,
            values,
        })
    }

    /// Maps a standardised regression output back to the target's units.
    pub fn decode_value(&self, standardized: f32) -> f64 {
        standardized as f64 * self.target_std + self.target_mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataSpec, infer_schema, parse_csv_bytes, split_indices};
    use std::path::Path;

    /// The tiled path (clean rows) and the cell-by-cell path (what a dirty cell falls back to)
    /// give the same matrix, bit for bit, rows in the split's shuffled order.
    #[test]
    fn clean_rows_encode_column_by_column_as_cell_by_cell() {
        let mut text = String::from("x,colour,y,label\n");
        for row in 0..700 {
            let colour = ["red", "green", "blue"][row % 3];
            let x = (row as f64 * 0.37).sin() * 50.0;
            text.push_str(&format!("{x:.4},{colour},{},{}\n", row % 17, row % 2));
        }
        let path = Path::new("clean.csv");
        let table = parse_csv_bytes(path, text.as_bytes()).expect("parses");
        let spec = DataSpec::new(path);
        let (schema, _) = infer_schema(&table, &spec).expect("schema");
        let split = split_indices(&table, &schema, 0.2, 0.0, 3).expect("split");
        let preprocessor = Preprocessor::fit(&table, &schema, &split.train);
        assert!(
            preprocessor
                .columns
                .iter()
                .any(|column| matches!(column, ColumnTransform::OneHot { .. })),
            "the test covers a one-hot column"
        );
        let width = preprocessor.output_width();
        let rows = &split.train;
        let tiled = preprocessor
            .encode_inputs(&table, rows, false)
            .expect("encodes");
        let indices: Vec<usize> = preprocessor
            .columns
            .iter()
            .map(|column| table.column_index(column.name()).expect("column"))
            .collect();
        let order: Vec<(usize, usize)> = rows
            .iter()
            .enumerate()
            .map(|(position, &row)| (row, position))
            .collect();
        let mut cell_by_cell = vec![f32::NAN; rows.len() * width];
        for (column_index, (column, &index)) in
            preprocessor.columns.iter().zip(&indices).enumerate()
        {
            let offset: usize = preprocessor.columns[..column_index]
                .iter()
                .map(|column| match column {
                    ColumnTransform::Standardize { .. } => 1,
                    ColumnTransform::OneHot { categories, .. } => categories.len(),
                })
                .sum();
            for &(row, position) in &order {
                let out = &mut cell_by_cell[position * width + offset..];
                match column {
                    ColumnTransform::Standardize { mean, std, .. } => {
                        let value = table.value(row, index).number().expect("a number");
                        out[0] = ((value - mean) / std) as f32;
                    }
                    ColumnTransform::OneHot { categories, .. } => {
                        let cell = table.cell(row, index);
                        for (i, category) in categories.iter().enumerate() {
                            out[i] = if *category == cell { 1.0 } else { 0.0 };
                        }
                    }
                }
            }
        }
        assert_eq!(tiled.len(), cell_by_cell.len());
        for (a, b) in tiled.iter().zip(&cell_by_cell) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
        // A missing cell makes the clean path give up; imputing then fills the column's mean.
        let gap_row = rows[0];
        let with_gap: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(line, cells)| match line == gap_row + 1 {
                true => format!(",{}", cells.split_once(',').expect("cells").1),
                false => cells.to_string(),
            })
            .collect();
        let gap_table = parse_csv_bytes(path, with_gap.join("\n").as_bytes()).expect("parses");
        let imputed = preprocessor
            .encode_inputs(&gap_table, rows, true)
            .expect("imputes");
        for (position, &row) in rows.iter().enumerate() {
            let expected = &tiled[position * width..(position + 1) * width];
            let got = &imputed[position * width..(position + 1) * width];
            if row == gap_row {
                assert_eq!(got[0], 0.0, "row {row}: the mean, standardised");
                assert_eq!(&got[1..], &expected[1..]);
            } else {
                assert_eq!(got, expected, "row {row}");
            }
        }
        assert!(preprocessor.encode_inputs(&gap_table, rows, false).is_err());
    }
}
