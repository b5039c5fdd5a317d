//! New data for a model trained before (a warm start): it must fit the model's inputs — the same
//! feature columns with the same types, no category or class the model never saw, images of the
//! same size and channels — and is encoded with the model's own standardisation unless asked to
//! refit it. Anything that does not fit is an error naming it, before any training.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::csv::{is_missing, parse_csv_with};
use super::fingerprint::{fingerprint, image_fingerprint};
use super::image_transform::ImageTransform;
use super::images::load_image_folder;
use super::preprocess::{ColumnTransform, EncodedMatrix, Preprocessor};
use super::schema::{DataSource, DataSpec, Schema};
use super::{DataError, LoadedData, PreparedData, load_idx};

/// Lines listed at most in an error.
const SHOWN_LINES: usize = 5;

/// Prepares `spec`'s data for a model with `schema` and `preprocessor`. `refit_stats` refits
/// the numeric standardisation (or image normalisation) on the new training split; categories,
/// classes and the columns stay the model's.
pub fn prepare_for_model(
    spec: &DataSpec,
    schema: &Schema,
    preprocessor: &Preprocessor,
    refit_stats: bool,
) -> Result<PreparedData, DataError> {
    match (&preprocessor.image, spec.source()) {
        (Some(transform), DataSource::ImageFolder(_) | DataSource::Idx(_)) => {
            prepare_images_for(spec, schema, transform, refit_stats)
        }
        (None, DataSource::Csv(path)) => {
            let bytes = std::fs::read(&path).map_err(|source| DataError::Io {
                path: path.clone(),
                source,
            })?;
            prepare_table_for(spec, &bytes, schema, preprocessor, refit_stats)
        }
        (Some(_), DataSource::Csv(path)) => Err(DataError::SchemaMismatch(format!(
            "{} is a table, but the model takes images",
            path.display()
        ))),
        (None, _) => Err(DataError::SchemaMismatch(format!(
            "{} holds images, but the model takes a table",
            spec.path.display()
        ))),
    }
}

fn lines_text(lines: &[u64]) -> String {
    let shown: Vec<String> = lines.iter().take(SHOWN_LINES).map(u64::to_string).collect();
    if lines.len() > SHOWN_LINES {
        format!("lines {}, … ({} rows)", shown.join(", "), lines.len())
    } else if lines.len() == 1 {
        format!("line {}", shown[0])
    } else {
        format!("lines {}", shown.join(", "))
    }
}

fn prepare_table_for(
    spec: &DataSpec,
    bytes: &[u8],
    schema: &Schema,
    model_preprocessor: &Preprocessor,
    refit_stats: bool,
) -> Result<PreparedData, DataError> {
    let table = parse_csv_with(&spec.path, bytes, &schema.text_columns(), spec.delimiter)?;
    let target = &schema.target.name;
    if table.column_index(target).is_none() {
        return Err(DataError::SchemaMismatch(format!(
            "{} has no target column '{target}', which the model predicts",
            table.path.display()
        )));
    }
    model_preprocessor.check_columns(&table, &[target.as_str()])?;
    // Categories and classes the model never saw: every one, with its lines.
    for column in &model_preprocessor.columns {
        let ColumnTransform::OneHot {
            name, categories, ..
        } = column
        else {
            continue;
        };
        let index = table.column_index(name).unwrap_or_default();
        let mut unseen: BTreeMap<Cow<str>, Vec<u64>> = BTreeMap::new();
        for (cell, line) in table.column(index).zip(&table.lines) {
            if !is_missing(&cell) && !categories.iter().any(|c| *c == cell) {
                unseen.entry(cell).or_default().push(*line);
            }
        }
        if let Some((value, lines)) = unseen.iter().next() {
            return Err(DataError::SchemaMismatch(format!(
                "{}: column '{name}' has the category '{value}' ({}) that the model never saw{}; it knows {}. A model cannot take a new category: train a new model on this data",
                table.path.display(),
                lines_text(lines),
                if unseen.len() > 1 {
                    format!(" (and {} more new categories)", unseen.len() - 1)
                } else {
                    String::new()
                },
                categories.join(", ")
            )));
        }
    }
    if schema.task() == super::Task::Classification {
        let index = table.column_index(target).unwrap_or_default();
        let mut unseen: BTreeMap<Cow<str>, Vec<u64>> = BTreeMap::new();
        for (cell, line) in table.column(index).zip(&table.lines) {
            if !is_missing(&cell) && schema.target.class_index(&cell).is_none() {
                unseen.entry(cell).or_default().push(*line);
            }
        }
        if let Some((class, lines)) = unseen.iter().next() {
            return Err(DataError::SchemaMismatch(format!(
                "{}: the target '{target}' has the class '{class}' ({}) that the model does not predict; its classes are {}. A new class needs a new model",
                table.path.display(),
                lines_text(lines),
                schema.target.classes.join(", ")
            )));
        }
    }
    let table_notes = table.header_notes.clone();
    let test_file = super::read_test_file(spec, schema)?;
    let fingerprint = fingerprint(
        bytes,
        spec,
        &table,
        schema,
        test_file.as_ref().map(|(_, bytes)| bytes.as_slice()),
    );
    let split = super::split_table(spec, &table, schema)?;
    let preprocessor = if refit_stats {
        refit_table(model_preprocessor, &table, schema, &split.train)
    } else {
        model_preprocessor.clone()
    };
    let encode =
        |table, rows: &[usize]| preprocessor.encode_rows(table, schema, rows, spec.impute_missing);
    let train = encode(&table, &split.train)?;
    let valid = encode(&table, &split.valid)?;
    let test = match test_file {
        Some((test_table, _)) => {
            model_preprocessor.check_columns(&test_table, &[target.as_str()])?;
            let rows: Vec<usize> = (0..test_table.row_count()).collect();
            Some(encode(&test_table, &rows)?)
        }
        None if spec.test.is_some() => Some(encode(&table, &split.test)?),
        None => None,
    };
    Ok(PreparedData {
        schema: schema.clone(),
        fingerprint,
        preprocessor,
        train,
        valid,
        test,
        loaded: LoadedData::Table(table),
        split,
        augmentation: None,
        warnings: table_notes,
        row_ids: Vec::new(),
    })
}

/// The model's columns and categories with the numeric statistics (and a regression target's)
/// refitted on the new training rows.
fn refit_table(
    model: &Preprocessor,
    table: &super::RawTable,
    schema: &Schema,
    train_rows: &[usize],
) -> Preprocessor {
    let fitted = Preprocessor::fit(table, schema, train_rows);
    let columns = model
        .columns
        .iter()
        .map(|column| match column {
            ColumnTransform::Standardize { name, .. } => fitted
                .columns
                .iter()
                .find(|c| c.name() == name)
                .cloned()
                .unwrap_or_else(|| column.clone()),
            ColumnTransform::OneHot { .. } => column.clone(),
        })
        .collect();
    Preprocessor {
        columns,
        target_mean: fitted.target_mean,
        target_std: fitted.target_std,
        image: None,
        choices: model.choices.clone(),
    }
}

fn prepare_images_for(
    spec: &DataSpec,
    schema: &Schema,
    model_transform: &ImageTransform,
    refit_stats: bool,
) -> Result<PreparedData, DataError> {
    let shape = model_transform.shape;
    // Read at the model's size and channels unless the spec says otherwise (then it must agree).
    let mut options = spec.images.clone().unwrap_or_default();
    if options.size.is_none() {
        options.size = Some([shape.width as u32, shape.height as u32]);
    }
    if options.channels == super::ChannelMode::Auto {
        options.channels = if shape.channels == 1 {
            super::ChannelMode::Gray
        } else {
            super::ChannelMode::Rgb
        };
    }
    let mut set = match spec.source() {
        DataSource::Idx(file) => load_idx(&file, &options)?,
        _ => load_image_folder(&spec.path, &options)?,
    };
    if set.shape != shape {
        return Err(DataError::SchemaMismatch(format!(
            "{}: the images are {}, but the model takes {}",
            spec.path.display(),
            set.shape,
            shape
        )));
    }
    // The folders' classes in the model's output order.
    let mut mapping = Vec::with_capacity(set.classes.len());
    for class in &set.classes {
        match schema
            .target
            .classes
            .iter()
            .position(|known| known == class)
        {
            Some(index) => mapping.push(index),
            None => {
                let count = set
                    .items
                    .iter()
                    .filter(|item| set.classes[item.label] == *class)
                    .count();
                return Err(DataError::SchemaMismatch(format!(
                    "{}: the class folder '{class}' ({count} images) is not one of the model's classes ({}). A new class needs a new model",
                    spec.path.display(),
                    schema.target.classes.join(", ")
                )));
            }
        }
    }
    for item in &mut set.items {
        item.label = mapping[item.label];
    }
    set.classes = schema.target.classes.clone();
    let split = super::split_images(spec, &set)?;
    let transform = if refit_stats {
        ImageTransform::fit(&set, &split.train)
    } else {
        model_transform.clone()
    };
    let encode = |rows: &[usize]| {
        let mut inputs = Vec::with_capacity(rows.len() * shape.pixels());
        for &row in rows {
            transform.encode_into(set.image(row), &mut inputs);
        }
        EncodedMatrix {
            inputs,
            rows: rows.len(),
            width: shape.pixels(),
            labels: rows
                .iter()
                .map(|&row| set.items[row].label as i64)
                .collect(),
            values: Vec::new(),
        }
    };
    let (train, valid) = (encode(&split.train), encode(&split.valid));
    let test = spec.test.is_some().then(|| encode(&split.test));
    let effective = DataSpec {
        images: Some(options.clone()),
        ..spec.clone()
    };
    Ok(PreparedData {
        schema: schema.clone(),
        fingerprint: image_fingerprint(&set, &effective),
        preprocessor: Preprocessor::for_images(transform),
        train,
        valid,
        test,
        loaded: LoadedData::Images(set),
        split,
        augmentation: Some(options.augment),
        warnings: Vec::new(),
        row_ids: Vec::new(),
    })
}
