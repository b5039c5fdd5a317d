//! Moving encoded data onto a device, and running a model over many rows.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rayon::prelude::*;

use crate::data::{EncodedMatrix, Task};
use crate::model::Network;

/// Rows per forward pass when evaluating or predicting; bounds device memory for large sets.
const EVAL_CHUNK_ROWS: usize = 4096;

pub(crate) fn matrix(values: &[f32], rows: usize, width: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values.to_vec(), [rows, width]), device)
}

/// The training split on the (autodiff) training device: inputs and targets, uploaded once.
pub struct DeviceData {
    pub inputs: Tensor<2>,
    pub labels: Option<Tensor<1, Int>>,
    /// `[rows, 1]` standardised regression targets.
    pub values: Option<Tensor<2>>,
    pub rows: usize,
}

impl DeviceData {
    pub fn upload(data: &EncodedMatrix, task: Task, device: &Device) -> Self {
        let inputs = matrix(&data.inputs, data.rows, data.width, device);
        let (labels, values) = match task {
            Task::Classification => (
                Some(Tensor::from_data(
                    TensorData::new(data.labels.clone(), [data.rows]),
                    device,
                )),
                None,
            ),
            Task::Regression => (None, Some(matrix(&data.values, data.rows, 1, device))),
        };
        Self {
            inputs,
            labels,
            values,
            rows: data.rows,
        }
    }

    /// `data`'s rows in `order`, gathered on the host (over the pool's threads) and handed to
    /// the device: on the CPU the whole cost of an epoch's shuffle, one copy, with no second
    /// copy of the split kept on the device.
    pub fn upload_in_order(
        data: &EncodedMatrix,
        order: &[usize],
        task: Task,
        device: &Device,
    ) -> Self {
        const ROWS_PER_TASK: usize = 1024;
        let width = data.width;
        let mut inputs = vec![0.0f32; order.len() * width];
        inputs
            .par_chunks_mut((ROWS_PER_TASK * width).max(1))
            .zip(order.par_chunks(ROWS_PER_TASK))
            .for_each(|(out, rows)| {
                for (out, &row) in out.chunks_exact_mut(width.max(1)).zip(rows) {
                    out.copy_from_slice(data.row(row));
                }
            });
        let rows = order.len();
        let (labels, values) = match task {
            Task::Classification => {
                let labels: Vec<i64> = order.iter().map(|&row| data.labels[row]).collect();
                let labels = TensorData::new(labels, [rows]);
                (Some(Tensor::from_data(labels, device)), None)
            }
            Task::Regression => {
                let values: Vec<f32> = order.iter().map(|&row| data.values[row]).collect();
                let values = TensorData::new(values, [rows, 1]);
                (None, Some(Tensor::from_data(values, device)))
            }
        };
        Self {
            inputs: Tensor::from_data(TensorData::new(inputs, [rows, width]), device),
            labels,
            values,
            rows,
        }
    }

    /// A copy with its rows in `order`: one gather an epoch, so batches are contiguous slices.
    pub fn permuted(&self, order: Tensor<1, Int>) -> Self {
        Self {
            inputs: self.inputs.clone().select(0, order.clone()),
            labels: self
                .labels
                .as_ref()
                .map(|l| l.clone().select(0, order.clone())),
            values: self
                .values
                .as_ref()
                .map(|v| v.clone().select(0, order.clone())),
            rows: self.rows,
        }
    }

    /// Rows `start..end`.
    pub fn rows(&self, start: usize, end: usize) -> Self {
        Self {
            inputs: self.inputs.clone().slice(start..end),
            labels: self.labels.as_ref().map(|l| l.clone().slice(start..end)),
            values: self.values.as_ref().map(|v| v.clone().slice(start..end)),
            rows: end - start,
        }
    }
}

/// Inference with a trained model: rows in, raw outputs (logits or standardised values) out.
pub struct Predictor<'a> {
    pub model: &'a Network,
    pub device: &'a Device,
}

impl Predictor<'_> {
    /// Raw outputs, row-major `[rows, outputs]`.
    pub fn outputs(&self, inputs: &[f32], width: usize) -> Result<Vec<f32>, String> {
        let rows = inputs.len().checked_div(width).unwrap_or(0);
        let mut outputs = Vec::new();
        let mut start = 0;
        while start < rows {
            let end = (start + EVAL_CHUNK_ROWS).min(rows);
            let x = matrix(
                &inputs[start * width..end * width],
                end - start,
                width,
                self.device,
            );
            // Keeps the pool's threads awake through the chunks, as the training steps do.
            super::threads::keep_warm();
            let y = self.model.forward(x, false);
            let data = y.into_data();
            let values = data
                .try_to_vec::<f32>()
                .map_err(|error| format!("reading outputs back from the device: {error:?}"))?;
            outputs.extend(values);
            start = end;
        }
        Ok(outputs)
    }
}

/// Softmax probabilities of one row of logits (numerically stable).
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// How well raw outputs match encoded targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub loss: f64,
    pub accuracy: Option<f64>,
    /// Root mean squared error in the target's units (regression).
    pub rmse: Option<f64>,
    /// `confusion[actual][predicted]` counts (classification).
    pub confusion: Option<Vec<Vec<u64>>>,
}

pub fn score(
    outputs: &[f32],
    data: &EncodedMatrix,
    task: Task,
    classes: usize,
    target_std: f64,
) -> Score {
    if data.rows == 0 {
        return Score {
            loss: f64::NAN,
            accuracy: None,
            rmse: None,
            confusion: None,
        };
    }
    match task {
        Task::Classification => {
            let mut loss = 0.0;
            let mut confusion = vec![vec![0u64; classes]; classes];
            // The log of the softmax at the label, computed directly (a softmax vector per row
            // was a tenth of the MLP benchmark's epoch end); a probability below the smallest
            // positive f64 (or a NaN) counts as that smallest one, as before.
            let floor = f64::MIN_POSITIVE.ln();
            for (row, &label) in data.labels.iter().enumerate() {
                let logits = &outputs[row * classes..(row + 1) * classes];
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
                let log_probability = (logits[label as usize] as f64 - max) - sum.ln();
                loss -= log_probability.max(floor);
                confusion[label as usize][argmax(logits)] += 1;
            }
            let n = data.rows as f64;
            let correct: u64 = (0..classes).map(|c| confusion[c][c]).sum();
            Score {
                loss: loss / n,
                accuracy: Some(correct as f64 / n),
                rmse: None,
                confusion: Some(confusion),
            }
        }
        Task::Regression => {
            let mse = outputs
                .iter()
                .zip(&data.values)
                .map(|(&o, &t)| (o as f64 - t as f64).powi(2))
                .sum::<f64>()
                / data.rows as f64;
            Score {
                loss: mse,
                accuracy: None,
                rmse: Some(mse.sqrt() * target_std),
                confusion: None,
            }
        }
    }
}

pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (index, value) in values.iter().enumerate() {
        if *value > values[best] || values[best].is_nan() {
            best = index;
        }
    }
    best
}
