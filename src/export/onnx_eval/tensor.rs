//! Dense row-major tensors of f32 (values) or i64 (shapes and indices), with broadcasting.

/// No intermediate result may hold more elements than this (1 GiB of f32).
pub const MAX_ELEMENTS: usize = 1 << 28;
/// No operator may do more multiply-adds than this (seconds of work; Kiln's graphs on the
/// golden rows need millions), so a crafted graph cannot make `verify` hang.
pub const MAX_WORK: u128 = 1 << 31;

/// Refuses an operator whose work (the product of `factors`) is beyond [`MAX_WORK`].
pub fn check_work(what: &str, factors: &[usize]) -> Result<(), String> {
    let work = factors
        .iter()
        .fold(1u128, |product, &f| product.saturating_mul(f as u128));
    if work > MAX_WORK {
        return Err(format!(
            "{what} would take {work} multiply-adds; Kiln's graphs need far fewer"
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<E> {
    pub shape: Vec<usize>,
    pub data: Vec<E>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    F32(Tensor<f32>),
    I64(Tensor<i64>),
}

/// The element count of `shape`, refused when absurd.
pub fn element_count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |product, &dim| product.checked_mul(dim))
        .filter(|&count| count <= MAX_ELEMENTS)
        .ok_or_else(|| format!("a tensor of shape {shape:?} is too large"))
}

impl<E: Copy> Tensor<E> {
    pub fn new(shape: Vec<usize>, data: Vec<E>) -> Result<Self, String> {
        if element_count(&shape)? != data.len() {
            return Err(format!(
                "a tensor of shape {shape:?} with {} values",
                data.len()
            ));
        }
        Ok(Self { shape, data })
    }

    /// Element-wise `f(a, b)` with numpy broadcasting.
    pub fn broadcast<F: Copy>(
        &self,
        other: &Tensor<E>,
        f: impl Fn(E, E) -> F,
    ) -> Result<Tensor<F>, String> {
        let rank = self.shape.len().max(other.shape.len());
        let pad = |shape: &[usize]| {
            let mut padded = vec![1; rank - shape.len()];
            padded.extend_from_slice(shape);
            padded
        };
        let (a, b) = (pad(&self.shape), pad(&other.shape));
        let mut shape = Vec::with_capacity(rank);
        for (&x, &y) in a.iter().zip(&b) {
            shape.push(match (x, y) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => {
                    return Err(format!(
                        "shapes {:?} and {:?} do not broadcast",
                        self.shape, other.shape
                    ));
                }
            });
        }
        let count = element_count(&shape)?;
        let strides = |dims: &[usize]| {
            let mut strides = vec![0usize; rank];
            let mut step = 1;
            for axis in (0..rank).rev() {
                strides[axis] = if dims[axis] == 1 { 0 } else { step };
                step *= dims[axis];
            }
            strides
        };
        let (sa, sb) = (strides(&a), strides(&b));
        let mut data = Vec::with_capacity(count);
        let mut index = vec![0usize; rank];
        for _ in 0..count {
            let (mut ia, mut ib) = (0, 0);
            for axis in 0..rank {
                ia += index[axis] * sa[axis];
                ib += index[axis] * sb[axis];
            }
            data.push(f(self.data[ia], other.data[ib]));
            for axis in (0..rank).rev() {
                index[axis] += 1;
                if index[axis] < shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        Ok(Tensor { shape, data })
    }
}
