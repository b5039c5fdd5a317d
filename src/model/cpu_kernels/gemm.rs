//! One safe matrix product over the `gemm` crate (the one burn flex uses, so the same AVX-512 /
//! AVX2 kernels), with strides so that transposes cost nothing. Single-threaded: the kernels
//! split their work over images themselves.

/// A read-only view of a matrix inside a slice: element (r, c) is `data[r * row_stride + c *
/// col_stride]`.
#[derive(Clone, Copy)]
pub struct Matrix<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Matrix<'a> {
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    pub fn transposed(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Whether every element the view names lies inside `data`.
    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `out = a × b` (or `out += a × b` when `accumulate`), `out` row-major `[a.rows, b.cols]`.
pub fn multiply(out: &mut [f32], a: Matrix, b: Matrix, accumulate: bool) {
    let columns = b.cols;
    multiply_into(out, (columns, 1), a, b, accumulate);
}

/// [`multiply`] into `out` laid out with `(row stride, column stride)`: rows apart (column
/// stride 1, row stride at least the row's length) or columns apart (row stride 1, column
/// stride at least the column's length), so that no two results share a place.
pub fn multiply_into(
    out: &mut [f32],
    (row_stride, col_stride): (usize, usize),
    a: Matrix,
    b: Matrix,
    accumulate: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "matrix product: inner sizes differ");
    let apart = (col_stride == 1 && row_stride >= n) || (row_stride == 1 && col_stride >= m);
    let out_fits =
        m == 0 || n == 0 || (apart && (m - 1) * row_stride + (n - 1) * col_stride < out.len());
    assert!(
        out_fits && a.fits() && b.fits(),
        "matrix product out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                for column in 0..n {
                    out[row * row_stride + column * col_stride] = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: the asserts above keep every element gemm reads (a, b) or writes (out: m × n
    // places at the given strides, pairwise distinct as the strides keep rows or columns
    // apart) inside its slice; `out` is borrowed mutably, so nothing else aliases it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            col_stride as isize,
            row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_follow_the_strides() {
        // a = [[1, 2, 3], [4, 5, 6]], b = aᵀ.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = [0.0; 4];
        let view = Matrix::row_major(&a, 2, 3);
        multiply(&mut out, view, view.transposed(), false);
        assert_eq!(out, [14.0, 32.0, 32.0, 77.0]);
        multiply(&mut out, view, view.transposed(), true);
        assert_eq!(out, [28.0, 64.0, 64.0, 154.0]);
        let mut big = [0.0; 9];
        multiply(&mut big, view.transposed(), view, false);
        assert_eq!(big, [17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]);
    }

    #[test]
    fn results_can_land_rows_or_columns_apart() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let identity = [1.0, 0.0, 0.0, 1.0];
        let mut out = [9.0; 7];
        // [[1, 2], [3, 4]] × I into rows 4 apart: the gaps keep their values.
        let (a, identity) = (
            Matrix::row_major(&a, 2, 2),
            Matrix::row_major(&identity, 2, 2),
        );
        multiply_into(&mut out, (4, 1), a, identity, false);
        assert_eq!(out, [1.0, 2.0, 9.0, 9.0, 3.0, 4.0, 9.0]);
        // Columns 4 apart: the result stored transposed.
        let mut out = [9.0; 7];
        multiply_into(&mut out, (1, 4), a, identity, false);
        assert_eq!(out, [1.0, 3.0, 9.0, 9.0, 2.0, 4.0, 9.0]);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_past_its_slice_is_refused() {
        let a = [1.0; 5];
        let mut out = [0.0; 4];
        multiply(
            &mut out,
            Matrix::row_major(&a, 2, 3),
            Matrix::row_major(&a, 3, 2),
            false,
        );
    }
}
