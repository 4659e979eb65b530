//! Products with a mostly-zero operand: the visible states of an RBM's Gibbs chains.
//!
//! Sampling and annealed importance sampling give the hidden units their input `V W^T` at every
//! step, and on data like MNIST the binary visible states are mostly zero (10-20% ones). A dense
//! product does every multiply-add; [`sparse_times`] does only those of the nonzeros: row i of
//! `X B` is `sum_t x[i, t] B[t, :]` over the nonzeros of row i, each term a run of contiguous
//! multiply-adds into accumulators kept in registers. With B = W^T (transposed once per call, not
//! per step), that reads the weights a visible unit at a time.
//!
//! Each output element is a sequence of fused multiply-adds over the row's nonzeros in increasing
//! column order, whichever thread computes it: results do not depend on the number of threads. They
//! differ from a dense product's only in rounding (fewer terms, another order), so a caller chooses
//! the form by the operand's density ([`worth_it`]) and never mixes forms within one result.

use multiversion::multiversion;
use rayon::prelude::*;

use crate::real::Real;

/// Output columns computed together: 64 f32 accumulators are eight AVX2 registers (four AVX-512).
const BLOCK: usize = 64;

/// Whether the sparse form beats a dense product for an operand with `nonzeros` of `len` values
/// nonzero. Measured (benches/NOTES.md entry 26, AVX2): the sparse form does one multiply-add per
/// loaded value where a dense kernel reuses each load across a register tile; at 100x784x500 it
/// takes 0.55x the dense time at 12% nonzero, 0.75x at 18%, and loses from about 25%.
pub fn worth_it(nonzeros: usize, len: usize) -> bool {
    len > 0 && (nonzeros as f64) < MAX_DENSITY * len as f64
}

/// The density below which [`worth_it`] chooses the sparse form.
pub const MAX_DENSITY: f64 = 0.25;

/// The number of nonzero values in `x`.
pub fn count_nonzeros<T: Real>(x: &[T]) -> usize {
    x.par_chunks(1 << 14).map(|c| c.iter().filter(|&&v| v != T::zero()).count()).sum()
}

/// `out = X B` for X (m, k) and B (k, n) row-major, `out` (m, n) overwritten, doing only the
/// multiply-adds of X's nonzeros.
pub fn sparse_times<T: Real>(x: &[T], m: usize, k: usize, b: &[T], n: usize, out: &mut [T]) {
    assert_eq!(x.len(), m * k, "sparse product: X is not {m}x{k}");
    assert_eq!(b.len(), k * n, "sparse product: B is not {k}x{n}");
    assert_eq!(out.len(), m * n, "sparse product: out is not {m}x{n}");
    if n == 0 {
        return;
    }
    if k == 0 {
        out.iter_mut().for_each(|o| *o = T::zero());
        return;
    }
    // One task per thread: each streams B once from memory, a column block at a time, and reuses the
    // block for all its rows.
    let rows_per_task = m.div_ceil(rayon::current_num_threads()).max(1);
    out.par_chunks_mut(rows_per_task * n).zip(x.par_chunks(rows_per_task * k)).for_each(|(out_rows, x_rows)| {
        // The task's rows' nonzeros: (column, value) lists, row after row.
        let mut idx = Vec::with_capacity(x_rows.len());
        let mut vals = Vec::with_capacity(x_rows.len());
        let mut starts = vec![0usize];
        for row in x_rows.chunks_exact(k) {
            for (j, &v) in row.iter().enumerate() {
                if v != T::zero() {
                    idx.push(j as u32);
                    vals.push(v);
                }
            }
            starts.push(vals.len());
        }
        // Column blocks outside, rows inside: a block of B (k x 64) stays in the core's cache while
        // the task's rows use it.
        for c0 in (0..n).step_by(BLOCK) {
            let width = BLOCK.min(n - c0);
            for (r, out_row) in out_rows.chunks_exact_mut(n).enumerate() {
                let (s, e) = (starts[r], starts[r + 1]);
                accumulate(&mut out_row[c0..c0 + width], b, n, c0, &idx[s..e], &vals[s..e]);
            }
        }
    });
}

/// `out[c] = sum_t vals[t] * b[idx[t] * n + c0 + c]` for the columns `c` of `out` (at most `BLOCK`):
/// a sequence of fused multiply-adds in the order of the entries, kept in registers for a full block.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl", "x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn accumulate<T: Real>(out: &mut [T], b: &[T], n: usize, c0: usize, idx: &[u32], vals: &[T]) {
    if out.len() == BLOCK {
        let mut acc = [T::zero(); BLOCK];
        for (&i, &v) in idx.iter().zip(vals) {
            let start = i as usize * n + c0;
            let row: &[T; BLOCK] = b[start..start + BLOCK].try_into().unwrap();
            for c in 0..BLOCK {
                acc[c] = v.mul_add(row[c], acc[c]);
            }
        }
        out.copy_from_slice(&acc);
    } else {
        // The same sequence of multiply-adds per element, accumulated in memory.
        out.iter_mut().for_each(|o| *o = T::zero());
        let width = out.len();
        for (&i, &v) in idx.iter().zip(vals) {
            let start = i as usize * n + c0;
            for (o, &x) in out.iter_mut().zip(&b[start..start + width]) {
                *o = v.mul_add(x, *o);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threads::with_threads;
    use proptest::prelude::*;

    /// A (rows, cols) matrix with about `density` of its values nonzero (in (0, 1]), whole zero rows
    /// and columns included.
    fn sparse_matrix(rows: usize, cols: usize, density: f64, seed: u64) -> Vec<f64> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..rows * cols)
            .map(|i| {
                if i % cols == 3 || i / cols == 1 {
                    0.0
                } else if next() < density {
                    next() + 1e-3
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Float64 oracle: the textbook product.
    fn naive(x: &[f64], m: usize, k: usize, b: &[f64], n: usize) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for t in 0..k {
                for j in 0..n {
                    out[i * n + j] += x[i * k + t] * b[t * n + j];
                }
            }
        }
        out
    }

    #[test]
    fn sparse_product_matches_float64_oracle() {
        // Widths below, at and beyond one register block; a row and a column of zeros in every X.
        for &(m, k, n) in &[(1, 1, 1), (5, 7, 3), (13, 40, 64), (20, 100, 65), (100, 784, 500)] {
            let x = sparse_matrix(m, k, 0.2, 1);
            let b = sparse_matrix(k, n, 1.0, 2).iter().map(|v| v - 0.5).collect::<Vec<_>>();
            let want = naive(&x, m, k, &b, n);
            let mut got = vec![f64::NAN; m * n];
            with_threads(2, || sparse_times(&x, m, k, &b, n, &mut got));
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12 * (1.0 + w.abs()), "{m}x{k}x{n}: {g} vs {w}");
            }
            // float32, against the same oracle
            let (x32, b32): (Vec<f32>, Vec<f32>) = (x.iter().map(|&v| v as f32).collect(), b.iter().map(|&v| v as f32).collect());
            let mut got32 = vec![f32::NAN; m * n];
            with_threads(2, || sparse_times(&x32, m, k, &b32, n, &mut got32));
            for (g, w) in got32.iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-5 * (1.0 + k as f64).sqrt(), "f32 {m}x{k}x{n}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn sparse_product_does_not_depend_on_the_thread_count() {
        let (m, k, n) = (100, 784, 500);
        let x: Vec<f32> = sparse_matrix(m, k, 0.15, 3).iter().map(|&v| v as f32).collect();
        let b: Vec<f32> = sparse_matrix(k, n, 1.0, 4).iter().map(|&v| (v - 0.5) as f32).collect();
        let run = |threads: usize| {
            let mut out = vec![0.0f32; m * n];
            with_threads(threads, || sparse_times(&x, m, k, &b, n, &mut out));
            out
        };
        let one = run(1);
        for threads in 2..=5 {
            assert!(one == run(threads), "{threads} threads");
        }
    }

    #[test]
    fn density_rule_counts_nonzeros() {
        let x = [0.0f32, 1.0, 0.0, -2.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0];
        assert_eq!(count_nonzeros(&x), 3);
        assert!(worth_it(2, 10) && worth_it(24, 100));
        assert!(!worth_it(3, 10) && !worth_it(26, 100));
        assert!(worth_it(0, 10));
        assert!(!worth_it(10, 10));
        assert!(!worth_it(0, 0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// The sparse product equals the float64 oracle for any shape and density.
        #[test]
        fn sparse_product_matches_oracle_for_any_shape(m in 1usize..12, k in 1usize..90, n in 1usize..140, density in 0.0f64..1.0, seed in 0u64..1000) {
            let x = sparse_matrix(m, k, density, seed);
            let b: Vec<f64> = sparse_matrix(k, n, 1.0, seed + 1).iter().map(|v| v - 0.5).collect();
            let want = naive(&x, m, k, &b, n);
            let mut got = vec![f64::NAN; m * n];
            sparse_times(&x, m, k, &b, n, &mut got);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g - w).abs() < 1e-12 * (1.0 + w.abs()));
            }
        }
    }
}
