//! The part of ONNX's protobuf format Kiln's graphs use, decoded by hand with every length
//! checked against the bytes present (a malicious file cannot make it allocate more).

use super::tensor::{Tensor, Value};

/// One protobuf field's payload.
enum Wire<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .bytes
                .get(self.at)
                .ok_or("a number runs past the end")?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a number is longer than 10 bytes".to_string())
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(length)
            .filter(|&end| end <= self.bytes.len())
            .ok_or("a field runs past the end")?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn next(&mut self) -> Result<Option<(u64, Wire<'a>)>, String> {
        if self.at >= self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed64
            }
            2 => {
                let length = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                Wire::Bytes(self.take(length)?)
            }
            5 => {
                let bytes = self.take(4)?;
                Wire::Fixed32(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            }
            other => return Err(format!("unknown protobuf wire type {other}")),
        };
        Ok(Some((key >> 3, wire)))
    }
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a name is not UTF-8".to_string())
}

/// Repeated integers, packed or one per field.
fn push_ints(wire: Wire<'_>, out: &mut Vec<i64>) -> Result<(), String> {
    match wire {
        Wire::Varint(value) => out.push(value as i64),
        Wire::Bytes(bytes) => {
            let mut reader = Reader::new(bytes);
            while reader.at < bytes.len() {
                out.push(reader.varint()? as i64);
            }
        }
        _ => return Err("integers of the wrong wire type".to_string()),
    }
    Ok(())
}

/// Repeated floats, packed or one per field.
fn push_floats(wire: Wire<'_>, out: &mut Vec<f32>) -> Result<(), String> {
    match wire {
        Wire::Fixed32(bits) => out.push(f32::from_bits(bits)),
        Wire::Bytes(bytes) if bytes.len() % 4 == 0 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        _ => return Err("floats of the wrong wire type".to_string()),
    }
    Ok(())
}

#[derive(Debug, Default)]
pub struct Node {
    pub op: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Default)]
pub struct Attribute {
    pub name: String,
    pub int: Option<i64>,
    pub float: Option<f32>,
    pub ints: Vec<i64>,
    pub tensor: Option<Value>,
}

#[derive(Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub initializers: Vec<(String, Value)>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

/// Reads a `ModelProto` and returns its graph.
pub fn parse_model(bytes: &[u8]) -> Result<Graph, String> {
    let mut reader = Reader::new(bytes);
    let mut graph = None;
    while let Some((field, wire)) = reader.next()? {
        if let (7, Wire::Bytes(bytes)) = (field, wire) {
            graph = Some(parse_graph(bytes)?);
        }
    }
    graph.ok_or_else(|| "no graph in the model".to_string())
}

fn parse_graph(bytes: &[u8]) -> Result<Graph, String> {
    let mut reader = Reader::new(bytes);
    let mut graph = Graph::default();
    while let Some((field, wire)) = reader.next()? {
        match (field, wire) {
            (1, Wire::Bytes(bytes)) => graph.nodes.push(parse_node(bytes)?),
            (5, Wire::Bytes(bytes)) => graph.initializers.push(parse_tensor(bytes)?),
            (11, Wire::Bytes(bytes)) => graph.inputs.push(value_info_name(bytes)?),
            (12, Wire::Bytes(bytes)) => graph.outputs.push(value_info_name(bytes)?),
            _ => {}
        }
    }
    Ok(graph)
}

fn value_info_name(bytes: &[u8]) -> Result<String, String> {
    let mut reader = Reader::new(bytes);
    while let Some((field, wire)) = reader.next()? {
        if let (1, Wire::Bytes(name)) = (field, wire) {
            return text(name);
        }
    }
    Err("a graph input or output has no name".to_string())
}

fn parse_node(bytes: &[u8]) -> Result<Node, String> {
    let mut reader = Reader::new(bytes);
    let mut node = Node::default();
    while let Some((field, wire)) = reader.next()? {
        match (field, wire) {
            (1, Wire::Bytes(name)) => node.inputs.push(text(name)?),
            (2, Wire::Bytes(name)) => node.outputs.push(text(name)?),
            (4, Wire::Bytes(op)) => node.op = text(op)?,
            (5, Wire::Bytes(bytes)) => node.attributes.push(parse_attribute(bytes)?),
            _ => {}
        }
    }
    Ok(node)
}

fn parse_attribute(bytes: &[u8]) -> Result<Attribute, String> {
    let mut reader = Reader::new(bytes);
    let mut attribute = Attribute::default();
    while let Some((field, wire)) = reader.next()? {
        match (field, wire) {
            (1, Wire::Bytes(name)) => attribute.name = text(name)?,
            (2, Wire::Fixed32(bits)) => attribute.float = Some(f32::from_bits(bits)),
            (3, Wire::Varint(value)) => attribute.int = Some(value as i64),
            (5, Wire::Bytes(bytes)) => attribute.tensor = Some(parse_tensor(bytes)?.1),
            (8, wire) => push_ints(wire, &mut attribute.ints)?,
            _ => {}
        }
    }
    Ok(attribute)
}

const FLOAT: i64 = 1;
const INT32: i64 = 6;
const INT64: i64 = 7;

fn parse_tensor(bytes: &[u8]) -> Result<(String, Value), String> {
    let mut reader = Reader::new(bytes);
    let (mut dims, mut data_type, mut name) = (Vec::new(), 0i64, String::new());
    let (mut floats, mut ints) = (Vec::new(), Vec::new());
    let mut raw: Option<&[u8]> = None;
    while let Some((field, wire)) = reader.next()? {
        match (field, wire) {
            (1, wire) => push_ints(wire, &mut dims)?,
            (2, Wire::Varint(value)) => data_type = value as i64,
            (4, wire) => push_floats(wire, &mut floats)?,
            (5 | 7, wire) => push_ints(wire, &mut ints)?,
            (8, Wire::Bytes(bytes)) => name = text(bytes)?,
            (9, Wire::Bytes(bytes)) => raw = Some(bytes),
            (13 | 14, _) => return Err(format!("tensor '{name}' keeps its data in another file")),
            _ => {}
        }
    }
    let shape = dims
        .iter()
        .map(|&dim| {
            usize::try_from(dim).map_err(|_| format!("tensor '{name}' has a negative size"))
        })
        .collect::<Result<Vec<usize>, String>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |product, &dim| product.checked_mul(dim))
        .ok_or_else(|| format!("tensor '{name}' claims an impossible size"))?;
    let value = match data_type {
        FLOAT => {
            if let Some(raw) = raw {
                push_floats(Wire::Bytes(raw), &mut floats)?;
            }
            Value::F32(Tensor::new(shape, floats)?)
        }
        INT64 | INT32 => {
            if let Some(raw) = raw {
                let width = if data_type == INT64 { 8 } else { 4 };
                if raw.len() != count.saturating_mul(width) {
                    return Err(format!("tensor '{name}' has {} bytes of data", raw.len()));
                }
                ints.extend(raw.chunks_exact(width).map(|b| {
                    if width == 8 {
                        i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                    } else {
                        i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    }
                }));
            }
            Value::I64(Tensor::new(shape, ints)?)
        }
        other => {
            return Err(format!(
                "tensor '{name}' has data type {other}, not float or integer"
            ));
        }
    };
    Ok((name, value))
}
