//! Encoding of rows whose cells are all clean (numbers in numeric columns, known categories):
//! the common case, done column by column over tiles of rows.
//!
//! The table is held column by column and the matrix row by row. Reading a row's cells one
//! column after another touches a different column's memory for every cell, more streams than
//! the processor prefetches; a tile of rows read column by column streams one column at a time
//! while the tile's rows of the matrix stay in cache.

use std::borrow::Cow;

use super::csv::{RawTable, is_missing};
use super::preprocess::ColumnTransform;

/// Rows per tile: their rows of the matrix (a few hundred bytes each) stay in the L1 cache
/// while each column is written (64 beat 256 by about half the encoding time).
const TILE_ROWS: usize = 64;

/// Encodes `order`'s rows, given as (row in the table, row in `out`), into `out` (`width`
/// inputs per row), the columns read at `indices`. `false`, with `out` partly written, as soon
/// as a cell needs more than this (a missing or non-numeric cell, an unseen category): the
/// caller then encodes cell by cell, which imputes or reports it.
pub(super) fn encode_clean_rows(
    columns: &[ColumnTransform],
    indices: &[usize],
    table: &RawTable,
    order: &[(usize, usize)],
    width: usize,
    out: &mut [f32],
) -> bool {
    for tile in order.chunks(TILE_ROWS) {
        let mut slots = Slots {
            out: &mut *out,
            width,
            offset: 0,
        };
        for (column, &index) in columns.iter().zip(indices) {
            let (clean, inputs) = match column {
                ColumnTransform::Standardize { mean, std, .. } => {
                    let Some(values) = table.numbers(index) else {
                        return false;
                    };
                    (standardize(values, *mean, *std, tile, &mut slots), 1)
                }
                ColumnTransform::OneHot { categories, .. } => (
                    one_hot(table, index, categories, tile, &mut slots),
                    categories.len(),
                ),
            };
            if !clean {
                return false;
            }
            slots.offset += inputs;
        }
    }
    true
}

/// Where one column's inputs go in the matrix: `width` inputs per row, the column's from
/// `offset`.
struct Slots<'a> {
    out: &'a mut [f32],
    width: usize,
    offset: usize,
}

impl Slots<'_> {
    /// The column's `count` inputs in the matrix row at `position`.
    fn at(&mut self, position: usize, count: usize) -> &mut [f32] {
        &mut self.out[position * self.width + self.offset..][..count]
    }
}

fn standardize(
    values: &[f32],
    mean: f64,
    std: f64,
    tile: &[(usize, usize)],
    slots: &mut Slots<'_>,
) -> bool {
    for &(row, position) in tile {
        let value = values[row];
        // NaN marks a cell kept as text: missing or not a number.
        if value.is_nan() {
            return false;
        }
        slots.out[position * slots.width + slots.offset] = ((f64::from(value) - mean) / std) as f32;
    }
    true
}

fn one_hot(
    table: &RawTable,
    index: usize,
    categories: &[String],
    tile: &[(usize, usize)],
    slots: &mut Slots<'_>,
) -> bool {
    for &(row, position) in tile {
        let cell: Cow<'_, str> = table.cell(row, index);
        if is_missing(&cell) {
            return false;
        }
        let Some(hot) = categories.iter().position(|category| *category == cell) else {
            return false;
        };
        let inputs = slots.at(position, categories.len());
        inputs.fill(0.0);
        inputs[hot] = 1.0;
    }
    true
}
