//! Reading a bundle's safetensors file as untrusted input: the header's length and every
//! tensor's extent are checked against the file before anything is allocated, and the tensor
//! shapes against the card's layer list.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::card::ArchitectureLayer;

/// Largest safetensors header Kiln reads (its own are a few kilobytes).
const MAX_HEADER_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// Checks the file's layout and that each layer's weight and bias have the card's shapes.
pub(crate) fn check_safetensors(bytes: &[u8], layers: &[ArchitectureLayer]) -> Result<(), String> {
    let length_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or("the file is shorter than a safetensors header")?;
    let header_length = u64::from_le_bytes(length_bytes);
    let data_start = 8u64
        .checked_add(header_length)
        .filter(|&end| header_length <= MAX_HEADER_BYTES && end <= bytes.len() as u64)
        .ok_or_else(|| {
            format!(
                "the header claims {header_length} bytes; the file has {} and Kiln reads at most {MAX_HEADER_BYTES}",
                bytes.len()
            )
        })? as usize;
    let header: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&bytes[8..data_start])
        .map_err(|error| format!("the header is not valid JSON ({error})"))?;
    let data_length = (bytes.len() - data_start) as u64;
    let mut tensors = BTreeMap::new();
    for (name, value) in header {
        if name == "__metadata__" {
            continue;
        }
        let info: TensorInfo =
            serde_json::from_value(value).map_err(|error| format!("tensor '{name}': {error}"))?;
        let element_size = match info.dtype.as_str() {
            "F32" | "I32" | "U32" => 4,
            "F64" | "I64" | "U64" => 8,
            "F16" | "BF16" | "I16" | "U16" => 2,
            "I8" | "U8" | "BOOL" => 1,
            other => return Err(format!("tensor '{name}' has the unknown type {other}")),
        };
        let size = info
            .shape
            .iter()
            .try_fold(element_size, |product: u64, &dim| product.checked_mul(dim));
        let [start, end] = info.data_offsets;
        if start > end || end > data_length || size != Some(end - start) {
            return Err(format!(
                "tensor '{name}' of shape {:?} does not fit its place in the file",
                info.shape
            ));
        }
        tensors.insert(name, info.shape);
    }
    for layer in layers {
        let expected = [
            (
                format!("{}.weight", layer.name),
                layer.safetensors_weight_shape.clone(),
            ),
            (format!("{}.bias", layer.name), vec![layer.outputs]),
        ];
        for (name, shape) in expected {
            let found = tensors
                .get(&name)
                .ok_or_else(|| format!("no tensor '{name}', which the card's layers list"))?;
            if !found.iter().map(|&d| d as usize).eq(shape.iter().copied()) {
                return Err(format!(
                    "tensor '{name}' has shape {found:?}; the card's architecture says {shape:?}"
                ));
            }
        }
    }
    Ok(())
}
