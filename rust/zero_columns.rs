//! Skipping a minibatch's all-zero input columns in the first layer's products (training steps only).
//!
//! A batch of 128 MNIST images has ~260 of its 784 pixels black in every image. Those columns add
//! exactly nothing to the first layer's forward product `X W` and their rows of the weight gradient
//! `X^T delta` are exactly zero, so a training step can run both products over the kept columns alone
//! (a third fewer multiply-adds in two of a VAE step's five large products).
//!
//! Training steps only: which columns are kept depends on which rows share the batch, and a product
//! over fewer inner terms rounds differently. A training step's result depends on its whole batch
//! anyway; inference (`transform`, `elbo`, ...) must not, so it never compacts.

use rayon::prelude::*;

use crate::dense::{Layer, LayerGrad};
use crate::linalg::View;
use crate::real::{first_non_finite, Real};
use crate::scratch;

/// The first layer of a chain as a step runs it: over the batch's kept columns when [`compact`] finds
/// enough all-zero ones in a training step, else over all of them. A step builds it once, takes the
/// chain and its input from it for the forward and backward passes, and [`FirstLayer::finish`]es the
/// gradients with it.
pub struct FirstLayer<T> {
    compacted: Option<ZeroColumns<T>>,
}

impl<T: Real> FirstLayer<T> {
    /// The first layer `layer` for `input` (batch, layer.n_in): compacted if `skip_zero_columns` (a
    /// training step) and it pays.
    pub fn new(skip_zero_columns: bool, input: &[T], batch: usize, layer: &Layer<'_, T>) -> Self {
        FirstLayer { compacted: if skip_zero_columns { compact(input, batch, layer) } else { None } }
    }

    /// The chain `layers` with its first layer as this runs it.
    pub fn chain<'a>(&'a self, layers: &[Layer<'a, T>]) -> Vec<Layer<'a, T>> {
        let mut chain = layers.to_vec();
        if let Some(c) = &self.compacted {
            chain[0] = c.layer(&layers[0]);
        }
        chain
    }

    /// The input the first layer reads: the batch's kept columns, or `full` (batch, width).
    pub fn input<'a>(&'a self, full: &'a [T], batch: usize, width: usize) -> View<'a, T> {
        match &self.compacted {
            Some(c) => View::new(c.input(), batch, c.width()),
            None => View::new(full, batch, width),
        }
    }

    /// Turns the first layer's weight gradient in `grads[0]` into the full layer's (zero rows for the
    /// skipped columns) and hands the compacted buffers back to the scratch pool.
    pub fn finish(self, grads: &mut [LayerGrad<T>]) {
        if let Some(c) = self.compacted {
            let compact_grad = std::mem::take(&mut grads[0].weight);
            grads[0].weight = c.expand_weight_grad(compact_grad);
            c.recycle();
        }
    }
}

/// Compact only when at most this fraction of the columns is kept: below it the saved multiply-adds
/// outweigh gathering the kept weight rows and scattering their gradient back.
const MAX_KEPT_FRACTION: f64 = 0.85;

/// A batch's kept (not all-zero) input columns and the first layer's weight rows for them.
pub struct ZeroColumns<T> {
    /// Indices of the kept columns, ascending.
    kept: Vec<usize>,
    n_in: usize,
    n_out: usize,
    /// (batch, kept.len()): the batch restricted to the kept columns.
    input: Vec<T>,
    /// (kept.len(), n_out): the rows `kept` of the first layer's weight.
    weight: Vec<T>,
}

/// The compacted batch for `layer` (the first layer) and `input` (batch, layer.n_in), or `None` when
/// too few columns are all-zero for skipping them to pay, when every column is zero, or when a weight
/// row to be skipped holds NaN or inf (the full product turns it into a NaN loss, which the training
/// step reports as divergence; skipping it would hide a broken model).
pub fn compact<T: Real>(input: &[T], batch: usize, layer: &Layer<'_, T>) -> Option<ZeroColumns<T>> {
    let (n_in, n_out) = (layer.n_in, layer.n_out);
    debug_assert_eq!(input.len(), batch * n_in);
    // NaN and inf compare unequal to zero, so such columns are kept (and reported by the caller).
    let mut nonzero = vec![false; n_in];
    for row in input.chunks_exact(n_in) {
        nonzero.iter_mut().zip(row).for_each(|(f, &v)| *f |= v != T::zero());
    }
    let width = nonzero.iter().filter(|&&f| f).count();
    // An all-zero batch keeps the plain path: no empty (k = 0) products.
    if width == 0 || width as f64 > MAX_KEPT_FRACTION * n_in as f64 {
        return None;
    }
    // The kept columns as runs `start..end` (MNIST's are the middle spans of the image rows, ~20
    // per batch): the batch's rows are gathered a run at a time.
    let skipped_rows_finite =
        (0..n_in).filter(|&j| !nonzero[j]).all(|j| first_non_finite(&layer.weight[j * n_out..(j + 1) * n_out]).is_none());
    if !skipped_rows_finite {
        return None;
    }
    let mut runs = Vec::new();
    let mut j = 0;
    while j < n_in {
        if nonzero[j] {
            let start = j;
            while j < n_in && nonzero[j] {
                j += 1;
            }
            runs.push(start..j);
        } else {
            j += 1;
        }
    }
    let mut compact_input = scratch::take(batch * width); // every element written below
    compact_input.par_chunks_mut(width).zip(input.par_chunks(n_in)).for_each(|(dst, src)| {
        let mut at = 0;
        for run in &runs {
            dst[at..at + run.len()].copy_from_slice(&src[run.clone()]);
            at += run.len();
        }
    });
    let kept: Vec<usize> = runs.iter().flat_map(|r| r.clone()).collect();
    let mut weight = scratch::take(width * n_out); // every row written below
    if n_out > 0 {
        weight
            .par_chunks_mut(n_out)
            .zip(kept.par_iter())
            .for_each(|(dst, &j)| dst.copy_from_slice(&layer.weight[j * n_out..(j + 1) * n_out]));
    }
    Some(ZeroColumns { kept, n_in, n_out, input: compact_input, weight })
}

impl<T: Real> ZeroColumns<T> {
    /// The number of kept columns (the compact first layer's input width).
    pub fn width(&self) -> usize {
        self.kept.len()
    }

    /// (batch, width): the batch restricted to the kept columns.
    pub fn input(&self) -> &[T] {
        &self.input
    }

    /// The first layer restricted to the kept columns.
    pub fn layer<'a>(&'a self, layer: &Layer<'a, T>) -> Layer<'a, T> {
        Layer { weight: &self.weight, n_in: self.kept.len(), ..*layer }
    }

    /// The full (n_in, n_out) weight gradient from the compact layer's (width, n_out) one: the
    /// skipped columns' rows are exactly zero. Hands `compact_grad` back to the scratch pool.
    pub fn expand_weight_grad(&self, compact_grad: Vec<T>) -> Vec<T> {
        let n_out = self.n_out;
        debug_assert_eq!(compact_grad.len(), self.kept.len() * n_out);
        // Row j of the full gradient (every row is written below): row r of the compact one if j is
        // the r-th kept column, else 0.
        let mut full = scratch::take(self.n_in * n_out);
        let mut source = vec![usize::MAX; self.n_in];
        self.kept.iter().enumerate().for_each(|(r, &j)| source[j] = r);
        if n_out > 0 {
            full.par_chunks_mut(n_out).zip(source.par_iter()).for_each(|(dst, &r)| match r {
                usize::MAX => dst.iter_mut().for_each(|v| *v = T::zero()),
                r => dst.copy_from_slice(&compact_grad[r * n_out..(r + 1) * n_out]),
            });
        }
        scratch::recycle(compact_grad);
        full
    }

    /// Hands the buffers back to the scratch pool.
    pub fn recycle(self) {
        scratch::recycle(self.input);
        scratch::recycle(self.weight);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activations::Activation;
    use crate::linalg::{gemm, Threads, View, ViewMut};
    use proptest::prelude::*;

    fn layer<'a>(w: &'a [f64], b: &'a [f64], n_in: usize, n_out: usize) -> Layer<'a, f64> {
        Layer { weight: w, bias: b, n_in, n_out, activation: Activation::Identity }
    }

    #[test]
    fn dense_columns_are_not_compacted() {
        let x = vec![1.0; 4 * 10];
        let (w, b) = (vec![0.5; 10 * 3], vec![0.0; 3]);
        assert!(compact(&x, 4, &layer(&w, &b, 10, 3)).is_none());
    }

    #[test]
    fn an_all_zero_batch_is_not_compacted() {
        let x = vec![0.0; 4 * 10];
        let (w, b) = (vec![0.5; 10 * 3], vec![0.0; 3]);
        assert!(compact(&x, 4, &layer(&w, &b, 10, 3)).is_none());
    }

    #[test]
    fn non_finite_weights_in_a_skipped_row_turn_compaction_off() {
        let mut x = vec![0.0; 2 * 10];
        x[3] = 1.0;
        let (mut w, b) = (vec![0.5; 10 * 3], vec![0.0; 3]);
        assert!(compact(&x, 2, &layer(&w, &b, 10, 3)).is_some());
        w[5 * 3 + 1] = f64::INFINITY; // row 5: a skipped column's weights
        assert!(compact(&x, 2, &layer(&w, &b, 10, 3)).is_none());
    }

    #[test]
    fn nan_and_inf_columns_are_kept() {
        let mut x = vec![0.0; 2 * 10];
        x[3] = f64::NAN;
        x[10 + 7] = f64::INFINITY;
        let (w, b) = (vec![0.5; 10 * 3], vec![0.0; 3]);
        let c = compact(&x, 2, &layer(&w, &b, 10, 3)).unwrap();
        assert_eq!(c.kept, vec![3, 7]);
    }

    proptest! {
        /// Oracle: the compact products equal the full ones over all columns (float64, where a product
        /// over fewer zero terms may round differently only at the last bits), and the expanded
        /// gradient has exact zeros in the skipped rows.
        #[test]
        fn compact_products_match_full_products(
            batch in 1usize..9, n_in in 1usize..40, n_out in 1usize..7, density in 0.0f64..0.5, seed in 0u64..1000,
        ) {
            let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s >> 11) as f64 / (1u64 << 53) as f64 };
            // Whole columns switched off, as MNIST's border pixels.
            let on: Vec<bool> = (0..n_in).map(|_| next() < density).collect();
            let x: Vec<f64> = (0..batch * n_in).map(|i| if on[i % n_in] { next() - 0.3 } else { 0.0 }).collect();
            let w: Vec<f64> = (0..n_in * n_out).map(|_| next() - 0.5).collect();
            let delta: Vec<f64> = (0..batch * n_out).map(|_| next() - 0.5).collect();
            let b = vec![0.0; n_out];
            let full_layer = layer(&w, &b, n_in, n_out);
            let Some(c) = compact(&x, batch, &full_layer) else {
                let kept = on.iter().filter(|&&o| o).count();
                prop_assert!(kept == 0 || kept as f64 > MAX_KEPT_FRACTION * n_in as f64);
                return Ok(());
            };
            let cl = c.layer(&full_layer);
            let mut z_full = vec![0.0; batch * n_out];
            let mut z = vec![0.0; batch * n_out];
            gemm(1.0, View::new(&x, batch, n_in), View::new(&w, n_in, n_out), 0.0, ViewMut::new(&mut z_full, batch, n_out), Threads::Single);
            gemm(1.0, View::new(c.input(), batch, c.width()), View::new(cl.weight, cl.n_in, n_out), 0.0, ViewMut::new(&mut z, batch, n_out), Threads::Single);
            for (a, e) in z.iter().zip(&z_full) {
                prop_assert!((a - e).abs() <= 1e-12 * (1.0 + e.abs()));
            }
            let mut g_full = vec![0.0; n_in * n_out];
            gemm(1.0, View::new(&x, batch, n_in).t(), View::new(&delta, batch, n_out), 0.0, ViewMut::new(&mut g_full, n_in, n_out), Threads::Single);
            let mut g = vec![0.0; c.width() * n_out];
            gemm(1.0, View::new(c.input(), batch, c.width()).t(), View::new(&delta, batch, n_out), 0.0, ViewMut::new(&mut g, c.width(), n_out), Threads::Single);
            let g = c.expand_weight_grad(g);
            for j in 0..n_in {
                for o in 0..n_out {
                    let (a, e) = (g[j * n_out + o], g_full[j * n_out + o]);
                    if on[j] {
                        prop_assert!((a - e).abs() <= 1e-12 * (1.0 + e.abs()));
                    } else {
                        prop_assert_eq!(a, 0.0);
                    }
                }
            }
        }
    }
}
