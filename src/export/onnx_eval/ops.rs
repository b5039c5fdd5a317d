//! The ONNX operators of the graphs burn-onnx writes for Kiln's models, computed on the CPU.

use super::proto::Node;
use super::tensor::{Tensor, Value, check_work, element_count};

fn attribute_int(node: &Node, name: &str, default: i64) -> i64 {
    node.attributes
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| a.int)
        .unwrap_or(default)
}

fn attribute_ints(node: &Node, name: &str) -> Option<Vec<i64>> {
    node.attributes
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}

fn float(value: &Value) -> Result<&Tensor<f32>, String> {
    match value {
        Value::F32(tensor) => Ok(tensor),
        Value::I64(_) => Err("expected a float tensor, got integers".to_string()),
    }
}

fn ints(value: &Value) -> Result<&Tensor<i64>, String> {
    match value {
        Value::I64(tensor) => Ok(tensor),
        Value::F32(_) => Err("expected an integer tensor, got floats".to_string()),
    }
}

/// A possibly negative axis of a tensor of `rank` dimensions.
fn axis(value: i64, rank: usize) -> Result<usize, String> {
    let resolved = if value < 0 {
        value + rank as i64
    } else {
        value
    };
    usize::try_from(resolved)
        .ok()
        .filter(|&axis| axis < rank.max(1))
        .ok_or_else(|| format!("axis {value} of a rank-{rank} tensor"))
}

/// Computes one node's outputs from its inputs (`None` for an omitted optional input).
pub fn apply(node: &Node, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
    let input = |i: usize| -> Result<&Value, String> {
        inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| format!("input {i} missing"))
    };
    let unary = |f: fn(f32) -> f32| -> Result<Vec<Value>, String> {
        let x = float(input(0)?)?;
        Ok(vec![Value::F32(Tensor {
            shape: x.shape.clone(),
            data: x.data.iter().map(|&v| f(v)).collect(),
        })])
    };
    let binary = |ff: fn(f32, f32) -> f32, fi: fn(i64, i64) -> i64| -> Result<Vec<Value>, String> {
        Ok(vec![match (input(0)?, input(1)?) {
            (Value::F32(a), Value::F32(b)) => Value::F32(a.broadcast(b, ff)?),
            (Value::I64(a), Value::I64(b)) => Value::I64(a.broadcast(b, fi)?),
            _ => return Err("mixed float and integer operands".to_string()),
        }])
    };
    match node.op.as_str() {
        "Identity" => Ok(vec![input(0)?.clone()]),
        "Constant" => node
            .attributes
            .iter()
            .find_map(|a| a.tensor.clone())
            .map(|value| vec![value])
            .ok_or_else(|| "a Constant without a tensor".to_string()),
        "Add" => binary(|a, b| a + b, i64::wrapping_add),
        "Sub" => binary(|a, b| a - b, i64::wrapping_sub),
        "Mul" => binary(|a, b| a * b, i64::wrapping_mul),
        "Div" => binary(|a, b| a / b, |a, b| a.checked_div(b).unwrap_or(0)),
        "Neg" => unary(|v| -v),
        "Abs" => unary(f32::abs),
        "Exp" => unary(f32::exp),
        "Log" => unary(f32::ln),
        "Sqrt" => unary(f32::sqrt),
        "Relu" => unary(|v| v.max(0.0)),
        "Tanh" => unary(f32::tanh),
        "Sigmoid" => unary(|v| 1.0 / (1.0 + (-v).exp())),
        "MatMul" => Ok(vec![Value::F32(matmul(
            float(input(0)?)?,
            float(input(1)?)?,
        )?)]),
        "Reshape" => reshape(input(0)?, ints(input(1)?)?),
        "Flatten" => {
            let value = input(0)?;
            let shape = shape_of(value);
            let at = axis(attribute_int(node, "axis", 1), shape.len() + 1)?;
            let outer: usize = shape[..at].iter().product();
            let inner: usize = shape[at..].iter().product();
            with_shape(value, vec![outer, inner])
        }
        "Shape" => {
            let shape = shape_of(input(0)?);
            Ok(vec![Value::I64(Tensor {
                shape: vec![shape.len()],
                data: shape.iter().map(|&d| d as i64).collect(),
            })])
        }
        "Cast" => {
            let to = attribute_int(node, "to", 1);
            Ok(vec![match (input(0)?, to) {
                (Value::F32(t), 1) => Value::F32(t.clone()),
                (Value::I64(t), 1) => Value::F32(Tensor {
                    shape: t.shape.clone(),
                    data: t.data.iter().map(|&v| v as f32).collect(),
                }),
                (Value::F32(t), 6 | 7) => Value::I64(Tensor {
                    shape: t.shape.clone(),
                    data: t.data.iter().map(|&v| v as i64).collect(),
                }),
                (Value::I64(t), 6 | 7) => Value::I64(t.clone()),
                (_, other) => return Err(format!("Cast to data type {other}")),
            }])
        }
        "Conv" => conv(
            node,
            float(input(0)?)?,
            float(input(1)?)?,
            inputs.get(2).copied().flatten(),
        ),
        "MaxPool" => max_pool(node, float(input(0)?)?),
        "BatchNormalization" => batch_norm(
            node,
            float(input(0)?)?,
            [
                float(input(1)?)?,
                float(input(2)?)?,
                float(input(3)?)?,
                float(input(4)?)?,
            ],
        ),
        "ReduceSum" => reduce_sum(node, float(input(0)?)?, inputs.get(1).copied().flatten()),
        "Gather" => {
            let indices = ints(input(1)?)?;
            let at = attribute_int(node, "axis", 0);
            Ok(vec![match input(0)? {
                Value::F32(t) => Value::F32(gather(t, indices, at)?),
                Value::I64(t) => Value::I64(gather(t, indices, at)?),
            }])
        }
        "Concat" => {
            let at = attribute_int(node, "axis", 0);
            let parts: Vec<&Value> = inputs.iter().copied().flatten().collect();
            Ok(vec![match parts.first() {
                Some(Value::F32(_)) => {
                    let tensors = parts
                        .iter()
                        .map(|v| float(v))
                        .collect::<Result<Vec<_>, _>>()?;
                    Value::F32(concat(&tensors, at)?)
                }
                Some(Value::I64(_)) => {
                    let tensors = parts
                        .iter()
                        .map(|v| ints(v))
                        .collect::<Result<Vec<_>, _>>()?;
                    Value::I64(concat(&tensors, at)?)
                }
                None => return Err("Concat of nothing".to_string()),
            }])
        }
        "Unsqueeze" => {
            let value = input(0)?;
            let mut shape = shape_of(value);
            let mut axes: Vec<i64> = ints(input(1)?)?.data.clone();
            let rank = shape.len() + axes.len();
            let mut resolved = axes
                .drain(..)
                .map(|a| axis(a, rank))
                .collect::<Result<Vec<usize>, String>>()?;
            resolved.sort_unstable();
            for a in resolved {
                shape.insert(a.min(shape.len()), 1);
            }
            with_shape(value, shape)
        }
        "Squeeze" => {
            let value = input(0)?;
            let shape = shape_of(value);
            let axes: Vec<usize> = match inputs.get(1).copied().flatten() {
                Some(axes) => ints(axes)?
                    .data
                    .iter()
                    .map(|&a| axis(a, shape.len()))
                    .collect::<Result<_, _>>()?,
                None => (0..shape.len()).filter(|&a| shape[a] == 1).collect(),
            };
            let kept = shape
                .iter()
                .enumerate()
                .filter(|(a, _)| !axes.contains(a))
                .map(|(_, &d)| d)
                .collect();
            with_shape(value, kept)
        }
        "TopK" => top_k(node, float(input(0)?)?, ints(input(1)?)?),
        other => Err(format!("operator {other} is not one Kiln's graphs use")),
    }
}

fn shape_of(value: &Value) -> Vec<usize> {
    match value {
        Value::F32(t) => t.shape.clone(),
        Value::I64(t) => t.shape.clone(),
    }
}

fn with_shape(value: &Value, shape: Vec<usize>) -> Result<Vec<Value>, String> {
    Ok(vec![match value {
        Value::F32(t) => Value::F32(Tensor::new(shape, t.data.clone())?),
        Value::I64(t) => Value::I64(Tensor::new(shape, t.data.clone())?),
    }])
}

fn reshape(value: &Value, target: &Tensor<i64>) -> Result<Vec<Value>, String> {
    let current = shape_of(value);
    let total: usize = current.iter().product();
    let mut shape = Vec::with_capacity(target.data.len());
    let mut infer = None;
    for (position, &dim) in target.data.iter().enumerate() {
        match dim {
            0 => shape.push(
                *current
                    .get(position)
                    .ok_or("Reshape copies a missing axis")?,
            ),
            -1 if infer.is_none() => {
                infer = Some(position);
                shape.push(1);
            }
            dim if dim > 0 => shape.push(dim as usize),
            _ => return Err(format!("Reshape to {:?}", target.data)),
        }
    }
    if let Some(position) = infer {
        let known: usize = shape.iter().product::<usize>().max(1);
        shape[position] = total / known;
    }
    with_shape(value, shape)
}

fn matmul(a: &Tensor<f32>, b: &Tensor<f32>) -> Result<Tensor<f32>, String> {
    let (&[m, k], &[k2, n]) = (a.shape.as_slice(), b.shape.as_slice()) else {
        return Err(format!(
            "MatMul of {:?} by {:?}: matrices only",
            a.shape, b.shape
        ));
    };
    if k != k2 {
        return Err(format!("MatMul of {:?} by {:?}", a.shape, b.shape));
    }
    check_work("MatMul", &[m, k, n])?;
    let mut out = vec![0f32; element_count(&[m, n])?];
    for row in 0..m {
        for inner in 0..k {
            let left = a.data[row * k + inner];
            let right = &b.data[inner * n..(inner + 1) * n];
            let target = &mut out[row * n..(row + 1) * n];
            for (o, &r) in target.iter_mut().zip(right) {
                *o += left * r;
            }
        }
    }
    Tensor::new(vec![m, n], out)
}

fn four(shape: &[usize], what: &str) -> Result<[usize; 4], String> {
    <[usize; 4]>::try_from(shape).map_err(|_| format!("{what} of a tensor of shape {shape:?}"))
}

/// Pads, strides and the kernel size of a 2-D window operator.
fn window(node: &Node, kernel: [usize; 2]) -> Result<([usize; 4], [usize; 2]), String> {
    let pads = attribute_ints(node, "pads").unwrap_or_else(|| vec![0; 4]);
    let strides = attribute_ints(node, "strides").unwrap_or_else(|| vec![1, 1]);
    let dilations = attribute_ints(node, "dilations").unwrap_or_else(|| vec![1, 1]);
    if dilations.iter().any(|&d| d != 1) || attribute_int(node, "group", 1) != 1 {
        return Err("dilated or grouped windows".to_string());
    }
    let as_usize = |v: &[i64], n: usize| -> Result<Vec<usize>, String> {
        if v.len() != n || v.iter().any(|&x| !(0..=1 << 16).contains(&x)) {
            return Err(format!("window attribute {v:?}"));
        }
        Ok(v.iter().map(|&x| x as usize).collect())
    };
    let pads = as_usize(&pads, 4)?;
    let strides = as_usize(&strides, 2)?;
    if strides.contains(&0) || kernel.contains(&0) {
        return Err("a zero stride or kernel".to_string());
    }
    Ok((
        [pads[0], pads[1], pads[2], pads[3]],
        [strides[0], strides[1]],
    ))
}

fn out_size(size: usize, before: usize, after: usize, kernel: usize, stride: usize) -> usize {
    (size + before + after).saturating_sub(kernel) / stride + 1
}

fn conv(
    node: &Node,
    x: &Tensor<f32>,
    w: &Tensor<f32>,
    bias: Option<&Value>,
) -> Result<Vec<Value>, String> {
    let [batch, channels, height, width] = four(&x.shape, "Conv")?;
    let [filters, in_channels, kh, kw] = four(&w.shape, "Conv weights")?;
    if in_channels != channels {
        return Err(format!("Conv of {:?} by {:?}", x.shape, w.shape));
    }
    let ([top, left, bottom, right], [sy, sx]) = window(node, [kh, kw])?;
    let (oh, ow) = (
        out_size(height, top, bottom, kh, sy),
        out_size(width, left, right, kw, sx),
    );
    check_work("Conv", &[batch, filters, oh, ow, channels, kh, kw])?;
    let bias = match bias {
        Some(value) => float(value)?.data.clone(),
        None => vec![0.0; filters],
    };
    if bias.len() != filters {
        return Err("Conv bias of the wrong size".to_string());
    }
    let mut out = vec![0f32; element_count(&[batch, filters, oh, ow])?];
    for b in 0..batch {
        for f in 0..filters {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut sum = bias[f];
                    for c in 0..channels {
                        for ky in 0..kh {
                            let y = (oy * sy + ky) as isize - top as isize;
                            if y < 0 || y >= height as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let xx = (ox * sx + kx) as isize - left as isize;
                                if xx < 0 || xx >= width as isize {
                                    continue;
                                }
                                sum += x.data[((b * channels + c) * height + y as usize) * width
                                    + xx as usize]
                                    * w.data[((f * channels + c) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    out[((b * filters + f) * oh + oy) * ow + ox] = sum;
                }
            }
        }
    }
    Ok(vec![Value::F32(Tensor::new(
        vec![batch, filters, oh, ow],
        out,
    )?)])
}

fn max_pool(node: &Node, x: &Tensor<f32>) -> Result<Vec<Value>, String> {
    let [batch, channels, height, width] = four(&x.shape, "MaxPool")?;
    let kernel = attribute_ints(node, "kernel_shape").ok_or("MaxPool without a kernel")?;
    let [kh, kw] = <[i64; 2]>::try_from(kernel.as_slice()).map_err(|_| "MaxPool kernel")?;
    let (kh, kw) = (kh.clamp(0, 1 << 16) as usize, kw.clamp(0, 1 << 16) as usize);
    let ([top, left, bottom, right], [sy, sx]) = window(node, [kh, kw])?;
    let (oh, ow) = (
        out_size(height, top, bottom, kh, sy),
        out_size(width, left, right, kw, sx),
    );
    check_work("MaxPool", &[batch, channels, oh, ow, kh, kw])?;
    let mut out = vec![f32::NEG_INFINITY; element_count(&[batch, channels, oh, ow])?];
    for plane in 0..batch * channels {
        for oy in 0..oh {
            for ox in 0..ow {
                let target = &mut out[(plane * oh + oy) * ow + ox];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let y = (oy * sy + ky) as isize - top as isize;
                        let xx = (ox * sx + kx) as isize - left as isize;
                        if (0..height as isize).contains(&y) && (0..width as isize).contains(&xx) {
                            let v = x.data[(plane * height + y as usize) * width + xx as usize];
                            *target = target.max(v);
                        }
                    }
                }
            }
        }
    }
    Ok(vec![Value::F32(Tensor::new(
        vec![batch, channels, oh, ow],
        out,
    )?)])
}

fn batch_norm(
    node: &Node,
    x: &Tensor<f32>,
    [scale, bias, mean, var]: [&Tensor<f32>; 4],
) -> Result<Vec<Value>, String> {
    let channels = *x.shape.get(1).ok_or("BatchNormalization of a vector")?;
    if [scale, bias, mean, var]
        .iter()
        .any(|t| t.data.len() != channels)
    {
        return Err("BatchNormalization statistics of the wrong size".to_string());
    }
    let epsilon = node
        .attributes
        .iter()
        .find(|a| a.name == "epsilon")
        .and_then(|a| a.float)
        .unwrap_or(1e-5);
    let inner: usize = x.shape[2..].iter().product();
    let data = x
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner.max(1)) % channels;
            (v - mean.data[c]) / (var.data[c] + epsilon).sqrt() * scale.data[c] + bias.data[c]
        })
        .collect();
    Ok(vec![Value::F32(Tensor::new(x.shape.clone(), data)?)])
}

/// Sums over the axes given (all when none), keeping them as size 1 unless `keepdims` is 0.
fn reduce_sum(node: &Node, x: &Tensor<f32>, axes: Option<&Value>) -> Result<Vec<Value>, String> {
    let rank = x.shape.len();
    let axes: Vec<usize> = match axes {
        Some(value) => ints(value)?
            .data
            .iter()
            .map(|&a| axis(a, rank))
            .collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    let kept: Vec<usize> = x
        .shape
        .iter()
        .enumerate()
        .map(|(a, &d)| if axes.contains(&a) { 1 } else { d })
        .collect();
    let mut out = vec![0f32; element_count(&kept)?];
    let mut index = vec![0usize; rank];
    for &v in &x.data {
        let mut target = 0;
        for a in 0..rank {
            target = target * kept[a] + if axes.contains(&a) { 0 } else { index[a] };
        }
        out[target] += v;
        for a in (0..rank).rev() {
            index[a] += 1;
            if index[a] < x.shape[a] {
                break;
            }
            index[a] = 0;
        }
    }
    let shape = if attribute_int(node, "keepdims", 1) == 0 {
        kept.iter()
            .enumerate()
            .filter(|(a, _)| !axes.contains(a))
            .map(|(_, &d)| d)
            .collect()
    } else {
        kept
    };
    Ok(vec![Value::F32(Tensor::new(shape, out)?)])
}

/// The largest (or smallest) `k` values along the last axis, with their indices.
fn top_k(node: &Node, x: &Tensor<f32>, k: &Tensor<i64>) -> Result<Vec<Value>, String> {
    let rank = x.shape.len();
    if axis(attribute_int(node, "axis", -1), rank)? != rank.saturating_sub(1) {
        return Err("TopK along an axis other than the last".to_string());
    }
    let k = usize::try_from(*k.data.first().ok_or("TopK without k")?).map_err(|_| "negative k")?;
    let width = *x.shape.last().ok_or("TopK of a scalar")?;
    if k > width {
        return Err("TopK k larger than the axis".to_string());
    }
    let largest = attribute_int(node, "largest", 1) != 0;
    let mut shape = x.shape.clone();
    shape[rank - 1] = k;
    let (mut values, mut indices) = (Vec::new(), Vec::new());
    for row in x.data.chunks(width.max(1)) {
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| {
            let ordering = row[a].total_cmp(&row[b]);
            if largest {
                ordering.reverse()
            } else {
                ordering
            }
        });
        for &i in &order[..k] {
            values.push(row[i]);
            indices.push(i as i64);
        }
    }
    Ok(vec![
        Value::F32(Tensor::new(shape.clone(), values)?),
        Value::I64(Tensor::new(shape, indices)?),
    ])
}

/// `data` indexed along `at` by `indices` (negative indices count from the end).
fn gather<E: Copy>(data: &Tensor<E>, indices: &Tensor<i64>, at: i64) -> Result<Tensor<E>, String> {
    let rank = data.shape.len();
    let at = axis(at, rank)?;
    let size = data.shape[at];
    let outer: usize = data.shape[..at].iter().product();
    let inner: usize = data.shape[at + 1..].iter().product();
    let mut shape = data.shape[..at].to_vec();
    shape.extend(&indices.shape);
    shape.extend(&data.shape[at + 1..]);
    element_count(&shape)?;
    let positions = indices
        .data
        .iter()
        .map(|&i| {
            let resolved = if i < 0 { i + size as i64 } else { i };
            usize::try_from(resolved)
                .ok()
                .filter(|&p| p < size)
                .ok_or_else(|| format!("Gather index {i} outside an axis of {size}"))
        })
        .collect::<Result<Vec<usize>, String>>()?;
    let mut out = Vec::new();
    for o in 0..outer {
        for &p in &positions {
            let start = (o * size + p) * inner;
            out.extend_from_slice(&data.data[start..start + inner]);
        }
    }
    Tensor::new(shape, out)
}

/// Tensors joined along `at`; every other axis must agree.
fn concat<E: Copy>(parts: &[&Tensor<E>], at: i64) -> Result<Tensor<E>, String> {
    let first = parts.first().ok_or("Concat of nothing")?;
    let rank = first.shape.len();
    let at = axis(at, rank)?;
    let mut shape = first.shape.clone();
    shape[at] = 0;
    for part in parts {
        let same_rest = part.shape.len() == rank
            && (0..rank).all(|a| a == at || part.shape[a] == first.shape[a]);
        if !same_rest {
            return Err(format!("Concat of {:?} and {:?}", first.shape, part.shape));
        }
        shape[at] += part.shape[at];
    }
    element_count(&shape)?;
    let outer: usize = first.shape[..at].iter().product();
    let mut out = Vec::new();
    for o in 0..outer {
        for part in parts {
            let chunk = part.shape[at..].iter().product::<usize>();
            out.extend_from_slice(&part.data[o * chunk..(o + 1) * chunk]);
        }
    }
    Tensor::new(shape, out)
}
