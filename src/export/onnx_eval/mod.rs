//! A small ONNX interpreter for the graphs Kiln exports, so `kiln verify` runs the `.onnx`
//! file itself, independently of burn, on the card's golden inputs.
//!
//! Why not `tract-onnx`: it turns on features (`half/std`, `num-traits/default`, …) of crates
//! the burn/wgpu stack shares, which makes cargo rebuild that whole stack, and adds about 50
//! crates. This reads only the operators burn-onnx writes for Kiln's models (matmul, add,
//! relu/tanh, exp/log, conv, max-pool, batch-norm, reshape, …) and refuses anything else.

mod ops;
mod proto;
mod tensor;

use std::collections::HashMap;

use tensor::{Tensor, Value};

/// Runs an ONNX model on one float input of `shape` and returns its first output, flattened.
pub(crate) fn run_onnx(
    model: &[u8],
    shape: Vec<usize>,
    input: Vec<f32>,
) -> Result<Vec<f32>, String> {
    let graph = proto::parse_model(model)?;
    let mut values: HashMap<String, Value> = graph.initializers.into_iter().collect();
    let input_name = graph
        .inputs
        .iter()
        .find(|name| !values.contains_key(*name))
        .ok_or("the graph has no input")?
        .clone();
    values.insert(input_name, Value::F32(Tensor::new(shape, input)?));
    for node in &graph.nodes {
        let inputs: Vec<Option<&Value>> = node
            .inputs
            .iter()
            .map(|name| {
                if name.is_empty() {
                    None
                } else {
                    values.get(name)
                }
            })
            .collect();
        if let Some(missing) = node
            .inputs
            .iter()
            .zip(&inputs)
            .find(|(name, value)| !name.is_empty() && value.is_none())
        {
            return Err(format!(
                "{} reads '{}' before it is computed",
                node.op, missing.0
            ));
        }
        let outputs = ops::apply(node, &inputs).map_err(|error| format!("{}: {error}", node.op))?;
        for (name, value) in node.outputs.iter().zip(outputs) {
            values.insert(name.clone(), value);
        }
    }
    let output = graph.outputs.first().ok_or("the graph has no output")?;
    match values.remove(output) {
        Some(Value::F32(tensor)) => Ok(tensor.data),
        Some(Value::I64(_)) => Err("the graph's output is not float".to_string()),
        None => Err(format!("the graph never computes its output '{output}'")),
    }
}
