//! Dense matrix products over row-major buffers.
//!
//! Every matrix in deepgm is a row-major slice. [`gemm`] computes `C = alpha * op(A) op(B) + beta * C`
//! with faer's runtime-dispatched (AVX2 / AVX-512) kernels. faer splits the output, never the inner
//! dimension, across threads, so a product is bit-identical for any number of threads. A product uses
//! the threads of the pool it runs on (see `threads`), all of them, one, or a part ([`Threads`]).
//!
//! Also the row-major helpers around products: column sums, row gathers and transposes.

use faer::{MatMut, MatRef, Par};

use crate::real::Real;

/// A row-major matrix operand, optionally transposed: `op(A)` has `rows_op() x cols_op()`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a, T> {
    pub data: &'a [T],
    /// Stored shape (before the optional transpose).
    pub rows: usize,
    pub cols: usize,
    /// Distance between the starts of two stored rows (>= cols).
    pub row_stride: usize,
    pub transposed: bool,
}

impl<'a, T: Real> View<'a, T> {
    /// A dense row-major `rows x cols` matrix.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        debug_assert!(data.len() >= rows * cols, "view larger than its buffer");
        View { data, rows, cols, row_stride: cols, transposed: false }
    }

    /// The first `cols` columns of a row-major matrix whose rows are `row_stride` apart.
    pub fn strided(data: &'a [T], rows: usize, cols: usize, row_stride: usize) -> Self {
        debug_assert!(rows == 0 || data.len() >= (rows - 1) * row_stride + cols);
        View { data, rows, cols, row_stride, transposed: false }
    }

    /// The same operand, transposed.
    pub fn t(self) -> Self {
        View { transposed: !self.transposed, ..self }
    }

    pub fn rows_op(&self) -> usize {
        if self.transposed {
            self.cols
        } else {
            self.rows
        }
    }

    pub fn cols_op(&self) -> usize {
        if self.transposed {
            self.rows
        } else {
            self.cols
        }
    }

    fn faer(&self) -> MatRef<'a, T> {
        // Built from raw parts after a bounds check: faer 0.24's `from_row_major_slice_with_stride_mut`
        // swaps the strides, so both views are made the same explicit way.
        assert!(self.rows == 0 || self.cols == 0 || self.data.len() >= (self.rows - 1) * self.row_stride + self.cols);
        // SAFETY: every element (i, j), i < rows, j < cols, lies at i * row_stride + j < data.len().
        let m = unsafe { MatRef::from_raw_parts(self.data.as_ptr(), self.rows, self.cols, self.row_stride as isize, 1) };
        if self.transposed {
            m.transpose()
        } else {
            m
        }
    }
}

/// A row-major output matrix.
#[derive(Debug)]
pub struct ViewMut<'a, T> {
    pub data: &'a mut [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

impl<'a, T: Real> ViewMut<'a, T> {
    pub fn new(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        debug_assert!(data.len() >= rows * cols, "view larger than its buffer");
        ViewMut { data, rows, cols, row_stride: cols }
    }

    pub fn strided(data: &'a mut [T], rows: usize, cols: usize, row_stride: usize) -> Self {
        debug_assert!(rows == 0 || data.len() >= (rows - 1) * row_stride + cols);
        ViewMut { data, rows, cols, row_stride }
    }

    fn faer(self) -> MatMut<'a, T> {
        assert!(self.rows == 0 || self.cols == 0 || self.data.len() >= (self.rows - 1) * self.row_stride + self.cols);
        assert!(self.rows <= 1 || self.row_stride >= self.cols, "rows of a mutable view must not overlap");
        // SAFETY: in bounds as above; rows do not overlap, and the view borrows `data` mutably for 'a.
        unsafe { MatMut::from_raw_parts_mut(self.data.as_mut_ptr(), self.rows, self.cols, self.row_stride as isize, 1) }
    }
}

/// How a product may use threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// All threads of the current pool (see [`crate::threads::with_threads`]).
    Pool,
    /// The calling thread only: for products inside an already parallel loop.
    Single,
    /// Split the product into at most this many blocks of the current pool's work: for a product that
    /// runs beside other work (the pool's idle threads may still steal blocks or the scaling of C).
    Part(usize),
}

/// `C = alpha * op(A) op(B) + beta * C`. With `beta == 0`, C is overwritten (its old values, even NaN, are
/// ignored), as in BLAS.
///
/// Shapes: op(A) (m, k), op(B) (k, n), C (m, n). Panics on a shape mismatch: callers validate shapes
/// first (the Python bindings turn shape errors into `ValueError` before calling).
pub fn gemm<T: Real>(alpha: T, a: View<'_, T>, b: View<'_, T>, beta: T, c: ViewMut<'_, T>, threads: Threads) {
    let n_threads = match threads {
        Threads::Single => 1,
        Threads::Pool => rayon::current_num_threads(),
        Threads::Part(n) => n.clamp(1, rayon::current_num_threads()),
    };
    let (m, k, n) = (a.rows_op(), a.cols_op(), b.cols_op());
    assert_eq!(b.rows_op(), k, "gemm: inner dimensions differ ({m}x{k} times {}x{n})", b.rows_op());
    assert!(c.rows == m && c.cols == n, "gemm: C is {}x{}, expected {m}x{n}", c.rows, c.cols);
    if m == 0 || n == 0 {
        return;
    }
    if beta != T::zero() && beta != T::one() {
        // faer accumulates C += alpha A B; scale C first, row by row (C is row-major).
        let (cols, stride) = (c.cols, c.row_stride);
        let scale = |row: &mut [T]| scale_in_place(&mut row[..cols], beta);
        if n_threads > 1 && m * n >= 1 << 16 {
            use rayon::prelude::*;
            c.data.par_chunks_mut(stride).for_each(|row| {
                if row.len() >= cols {
                    scale(row)
                }
            });
        } else {
            c.data.chunks_mut(stride).take(m).for_each(|row| {
                if row.len() >= cols {
                    scale(row)
                }
            });
        }
    }
    let beta = if beta == T::zero() { T::zero() } else { T::one() };
    let (a, b, c) = (a.faer(), b.faer(), c.faer());
    if n_threads == 1 || m * n * k < 32 * 32 * 32 {
        T::matmul(c, beta, a, b, alpha, Par::Seq);
    } else if k <= MAX_SPLIT_K && (n >= 64 * n_threads || m >= 16 * n_threads) {
        split_gemm(c, beta, a, b, alpha, n_threads);
    } else {
        T::matmul(c, beta, a, b, alpha, Par::rayon(n_threads));
    }
}

/// `x *= factor`, compiled for AVX2 and SSE4.2 too (the crate's baseline is SSE2; multiversion's
/// "simd" preset has no AVX-512 version; the pass is bound by memory traffic): the momentum
/// scaling of the RBM's velocity before its product.
#[multiversion::multiversion(targets = "simd")]
fn scale_in_place<T: Real>(x: &mut [T], factor: T) {
    x.iter_mut().for_each(|v| *v *= factor);
}

/// Beyond this inner dimension faer's sequential kernel may block the reduction differently for
/// sub-blocks, so split products would not be bit-identical to the whole product.
const MAX_SPLIT_K: usize = 8192;

/// The output split into `parts` blocks of columns (or rows, when it is too narrow), each block
/// computed by faer's sequential kernel on its own thread.
///
/// For the products of this crate (a few hundred rows), this beats faer's own parallel GEMM by 20-35%
/// (benches/NOTES.md): each thread packs and streams only its share, with one fork/join per product.
/// Every element of C is still computed by the same sequential kernel over the same k-blocking, so
/// the result is bit-identical to the single-threaded product (tested).
fn split_gemm<T: Real>(c: MatMut<'_, T>, beta: T, a: MatRef<'_, T>, b: MatRef<'_, T>, alpha: T, parts: usize) {
    let (m, n) = (c.nrows(), c.ncols());
    let by_columns = n >= 64 * parts;
    let extent = if by_columns { n } else { m };
    // Block boundaries on multiples of 16 (whole SIMD registers), as even as that allows.
    let align = 16;
    let mut bounds = vec![0usize];
    for p in 1..parts {
        let cut = ((extent * p / parts + align / 2) / align * align).clamp(*bounds.last().unwrap(), extent);
        bounds.push(cut);
    }
    bounds.push(extent);
    let mut blocks = Vec::with_capacity(parts);
    let mut rest = c;
    for w in bounds.windows(2).rev() {
        let len = w[1] - w[0];
        let (head, tail) = if by_columns { rest.split_at_col_mut(w[0]) } else { rest.split_at_row_mut(w[0]) };
        blocks.push((w[0], len, tail));
        rest = head;
    }
    // Left to right: the calling thread takes the first block and the other threads steal the rest.
    // Measured (benches/NOTES.md entry 23): with the blocks right to left, the same two-thread
    // products took 0.33-0.38 ms instead of 0.27-0.31 ms, with or without idle workers spinning.
    blocks.reverse();
    let compute = |(start, len, block): (usize, usize, MatMut<'_, T>)| {
        if len == 0 {
            return;
        }
        if by_columns {
            T::matmul(block, beta, a, b.subcols(start, len), alpha, Par::Seq);
        } else {
            T::matmul(block, beta, a.subrows(start, len), b, alpha, Par::Seq);
        }
    };
    join_all(blocks, &compute);
}

/// Runs `f` on every item, in parallel by recursive halving with `rayon::join`.
fn join_all<I: Send, F: Fn(I) + Sync>(mut items: Vec<I>, f: &F) {
    match items.len() {
        0 => {}
        1 => f(items.pop().unwrap()),
        len => {
            let right = items.split_off(len / 2);
            rayon::join(|| join_all(items, f), || join_all(right, f));
        }
    }
}

/// `out[j] = sum_i x[i, j]` for a row-major (rows, cols) matrix, summing rows in order (so the result
/// does not depend on the number of threads: threads split the columns).
pub fn column_sums<T: Real>(x: &[T], rows: usize, cols: usize, out: &mut [T]) {
    use rayon::prelude::*;
    debug_assert_eq!(x.len(), rows * cols);
    debug_assert_eq!(out.len(), cols);
    const BLOCK: usize = 256;
    out.par_chunks_mut(BLOCK).enumerate().for_each(|(bi, acc)| {
        let j0 = bi * BLOCK;
        acc.iter_mut().for_each(|a| *a = T::zero());
        for i in 0..rows {
            let row = &x[i * cols + j0..i * cols + j0 + acc.len()];
            acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
        }
    });
}

/// `dst = src^T`: `src` (rows, cols) and `dst` (cols, rows), both row-major. Threads split the rows of
/// `dst` in bands of 32; within a band, tiles of 8x8 are transposed in registers (AVX2, for f32) or
/// element by element.
pub fn transpose_into<T: Real>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    use rayon::prelude::*;
    const BAND: usize = 32;
    assert_eq!(src.len(), rows * cols, "transpose: source is not {rows}x{cols}");
    assert_eq!(dst.len(), rows * cols, "transpose: destination is not {cols}x{rows}");
    if rows == 0 || cols == 0 {
        return;
    }
    dst.par_chunks_mut(BAND * rows).enumerate().for_each(|(band, out)| {
        let c0 = band * BAND;
        let width = out.len() / rows;
        let mut r0 = 0;
        #[cfg(target_arch = "x86_64")]
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: T is f32 (checked above), so the slices may be viewed as f32.
            let (src32, out32) = unsafe {
                (
                    std::slice::from_raw_parts(src.as_ptr() as *const f32, src.len()),
                    std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut f32, out.len()),
                )
            };
            while r0 + 8 <= rows {
                let mut c = 0;
                while c + 8 <= width {
                    // SAFETY: AVX2 is available; rows r0..r0+8 and columns c0+c..c0+c+8 of src, and rows
                    // c..c+8, columns r0..r0+8 of the band, are in bounds.
                    unsafe { transpose_8x8_avx2(&src32[r0 * cols + c0 + c..], cols, &mut out32[c * rows + r0..], rows) };
                    c += 8;
                }
                for r in r0..r0 + 8 {
                    for cc in c..width {
                        out[cc * rows + r] = src[r * cols + c0 + cc];
                    }
                }
                r0 += 8;
            }
        }
        for r in r0..rows {
            for (c, &v) in src[r * cols + c0..r * cols + c0 + width].iter().enumerate() {
                out[c * rows + r] = v;
            }
        }
    });
}

/// Transposes the 8x8 block at the start of `src` (rows `src_stride` apart) into the start of `dst`
/// (rows `dst_stride` apart), in registers.
///
/// # Safety
/// AVX2 must be available; `src` must hold `7 * src_stride + 8` values and `dst` `7 * dst_stride + 8`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_8x8_avx2(src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize) {
    use std::arch::x86_64::*;
    assert!(src.len() >= 7 * src_stride + 8 && dst.len() >= 7 * dst_stride + 8);
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(s.add(i * src_stride)));
    // Pairs of rows interleaved, then pairs of pairs, then the 128-bit halves exchanged.
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    let out = [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ];
    for (i, row) in out.iter().enumerate() {
        _mm256_storeu_ps(d.add(i * dst_stride), *row);
    }
}

/// Copies rows `rows[i]` of the (n, cols) matrix `src` into row `i` of `dst` (`rows.len()` x `cols`).
pub fn gather_rows<T: Real>(src: &[T], cols: usize, rows: &[usize], dst: &mut [T]) {
    use rayon::prelude::*;
    debug_assert_eq!(dst.len(), rows.len() * cols);
    if cols == 0 {
        return;
    }
    dst.par_chunks_mut(cols).zip(rows.par_iter()).for_each(|(d, &r)| d.copy_from_slice(&src[r * cols..(r + 1) * cols]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threads::with_threads;
    use proptest::prelude::*;

    /// Float64 oracle: the textbook triple loop.
    fn naive(a: View<'_, f64>, b: View<'_, f64>) -> Vec<f64> {
        let (m, k, n) = (a.rows_op(), a.cols_op(), b.cols_op());
        let at = |i: usize, p: usize| if a.transposed { a.data[p * a.cols + i] } else { a.data[i * a.cols + p] };
        let bt = |p: usize, j: usize| if b.transposed { b.data[j * b.cols + p] } else { b.data[p * b.cols + j] };
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
            }
        }
        c
    }

    /// `data` (rows, cols) as an operand, transposed if `transposed`.
    fn operand<T: Real>(data: &[T], rows: usize, cols: usize, transposed: bool) -> View<'_, T> {
        let view = View::new(data, rows, cols);
        if transposed {
            view.t()
        } else {
            view
        }
    }

    fn filled(len: usize, salt: u64) -> Vec<f64> {
        (0..len as u64).map(|i| (((i * 2654435761 + salt) % 1000) as f64) / 500.0 - 1.0).collect()
    }

    #[test]
    fn gemm_matches_naive_for_every_transpose_and_beta() {
        let (m, k, n) = (37, 53, 29);
        for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
            let (ar, ac) = if ta { (k, m) } else { (m, k) };
            let (br, bc) = if tb { (n, k) } else { (k, n) };
            let a = filled(ar * ac, 1);
            let b = filled(br * bc, 2);
            let c0 = filled(m * n, 3);
            let (av, bv) = (operand(&a, ar, ac, ta), operand(&b, br, bc, tb));
            let ab = naive(av, bv);
            for &(alpha, beta) in &[(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)] {
                let mut c = c0.clone();
                with_threads(2, || gemm(alpha, av, bv, beta, ViewMut::new(&mut c, m, n), Threads::Pool));
                for i in 0..m * n {
                    let want = alpha * ab[i] + beta * c0[i];
                    assert!((c[i] - want).abs() < 1e-12, "ta={ta} tb={tb} i={i}: {} vs {want}", c[i]);
                }
            }
        }
    }

    #[test]
    fn beta_zero_ignores_nan_in_c() {
        let a = vec![1.0f32; 6];
        let b = vec![2.0f32; 6];
        let mut c = vec![f32::NAN; 4];
        gemm(1.0, View::new(&a, 2, 3), View::new(&b, 3, 2), 0.0, ViewMut::new(&mut c, 2, 2), Threads::Single);
        assert_eq!(c, vec![6.0; 4]);
    }

    #[test]
    fn strided_views_use_only_their_columns() {
        // A is the left 2 columns of a 3x4 buffer.
        let buf: Vec<f64> = (0..12).map(|x| x as f64).collect();
        let a = View::strided(&buf, 3, 2, 4);
        let b = vec![1.0, 0.0, 0.0, 1.0];
        let mut out = vec![0.0; 3 * 5];
        gemm(1.0, a, View::new(&b, 2, 2), 0.0, ViewMut::strided(&mut out, 3, 2, 5), Threads::Single);
        assert_eq!(&out[0..2], &[0.0, 1.0]);
        assert_eq!(&out[5..7], &[4.0, 5.0]);
        assert_eq!(&out[10..12], &[8.0, 9.0]);
        assert_eq!(out[2], 0.0, "columns outside the view are untouched");
    }

    #[test]
    fn result_is_identical_for_any_thread_count() {
        let (m, k, n) = (300, 200, 250);
        let a: Vec<f32> = filled(m * k, 5).into_iter().map(|x| x as f32).collect();
        let b: Vec<f32> = filled(k * n, 6).into_iter().map(|x| x as f32).collect();
        let run = |t: usize| {
            let mut c = vec![0.0f32; m * n];
            with_threads(t, || gemm(1.0, View::new(&a, m, k), View::new(&b, k, n), 0.0, ViewMut::new(&mut c, m, n), Threads::Pool));
            c
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }

    #[test]
    fn column_sums_and_gather_rows() {
        let x: Vec<f64> = (0..3 * 600).map(|v| v as f64).collect();
        let mut sums = vec![0.0; 600];
        with_threads(2, || column_sums(&x, 3, 600, &mut sums));
        for (j, &sum) in sums.iter().enumerate() {
            assert_eq!(sum, (j + (600 + j) + (1200 + j)) as f64);
        }
        let mut g = vec![0.0; 2 * 600];
        gather_rows(&x, 600, &[2, 0], &mut g);
        assert_eq!(&g[..600], &x[1200..]);
        assert_eq!(&g[600..], &x[..600]);
    }

    #[test]
    fn split_products_are_bit_identical_to_single_threaded_ones() {
        // The shapes of the models' products, with every transpose, for 1 to 4 threads.
        let shapes = [
            (100, 784, 500),
            (100, 500, 784),
            (500, 784, 200),
            (128, 400, 784),
            (128, 784, 400),
            (784, 400, 128),
            (16, 2000, 64),
            (1000, 30, 250),
        ];
        for &(m, k, n) in &shapes {
            for &(ta, tb) in &[(false, false), (true, false), (false, true)] {
                let (ar, ac) = if ta { (k, m) } else { (m, k) };
                let (br, bc) = if tb { (n, k) } else { (k, n) };
                let a: Vec<f32> = filled(ar * ac, 3).into_iter().map(|x| x as f32).collect();
                let b: Vec<f32> = filled(br * bc, 4).into_iter().map(|x| x as f32).collect();
                let c0: Vec<f32> = filled(m * n, 5).into_iter().map(|x| x as f32).collect();
                let run = |t: usize, beta: f32| {
                    let mut c = c0.clone();
                    let (av, bv) = (operand(&a, ar, ac, ta), operand(&b, br, bc, tb));
                    with_threads(t, || gemm(1.0, av, bv, beta, ViewMut::new(&mut c, m, n), Threads::Pool));
                    c
                };
                for beta in [0.0f32, 1.0, 0.5] {
                    let one = run(1, beta);
                    for t in 2..=4 {
                        assert!(one == run(t, beta), "{m}x{k}x{n} ta={ta} tb={tb} beta={beta} threads={t}");
                    }
                }
            }
        }
    }

    #[test]
    fn transpose_matches_element_by_element_copy() {
        // Shapes with and without whole 8x8 tiles and 32-column bands, f32 (AVX2 tiles) and f64.
        for &(rows, cols) in &[(1, 1), (1, 9), (9, 1), (7, 9), (8, 8), (16, 40), (33, 65), (500, 784), (784, 500)] {
            let src64 = filled(rows * cols, 11);
            let src32: Vec<f32> = src64.iter().map(|&x| x as f32).collect();
            let mut dst32 = vec![f32::NAN; rows * cols];
            let mut dst64 = vec![f64::NAN; rows * cols];
            with_threads(2, || {
                transpose_into(&src32, rows, cols, &mut dst32);
                transpose_into(&src64, rows, cols, &mut dst64);
            });
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst32[c * rows + r], src32[r * cols + c], "f32 {rows}x{cols} at ({r}, {c})");
                    assert_eq!(dst64[c * rows + r], src64[r * cols + c], "f64 {rows}x{cols} at ({r}, {c})");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn gemm_property_random_shapes(m in 0usize..20, k in 0usize..20, n in 0usize..20, ta: bool, tb: bool, salt in 0u64..1000) {
            let (ar, ac) = if ta { (k, m) } else { (m, k) };
            let (br, bc) = if tb { (n, k) } else { (k, n) };
            let a = filled(ar * ac, salt);
            let b = filled(br * bc, salt + 7);
            let (av, bv) = (operand(&a, ar, ac, ta), operand(&b, br, bc, tb));
            let want = naive(av, bv);
            let mut c = vec![0.0; m * n];
            gemm(1.0, av, bv, 0.0, ViewMut::new(&mut c, m, n), Threads::Pool);
            for (x, y) in c.iter().zip(&want) {
                prop_assert!((x - y).abs() < 1e-12);
            }
        }
    }
}
