//! K-way softmax groups: the visible units of the collaborative-filtering RBM (one group per rated item,
//! over the rating values) and of the Replicated Softmax topic model (one group over the vocabulary,
//! shared by each of a document's D words).
//!
//! A group with logits `z_1..z_K` has `p_k = exp(z_k - m) / sum_l exp(z_l - m)` with `m = max_l z_l`
//! (the stable form: no exponential overflows), and `log sum_k exp(z_k) = m + log sum_k exp(z_k - m)`.
//!
//! Sampling inverts the cumulative distribution: one category from one uniform draw `u`, the first `k`
//! with `u < p_1 + ... + p_k`; D independent draws (a multinomial) by D such inversions, each a binary
//! search in the cumulative sums. The sums are kept in float64, so a vocabulary of thousands of words
//! loses no probability mass to rounding, and `u` is scaled by their total, so no draw falls past the
//! last category.

use rand::Rng;

use crate::activations::exp_fast;
use crate::real::Real;

/// `log sum_k exp(z_k)`, stably, in float64.
pub fn log_sum_exp<T: Real>(z: &[T]) -> f64 {
    let m = z.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x.f64()));
    if !m.is_finite() {
        return m;
    }
    m + z.iter().map(|&x| (x.f64() - m).exp()).sum::<f64>().ln()
}

/// Replaces the logits `z` by the probabilities `softmax(z)`; returns `log sum_k exp(z_k)` (float64).
///
/// The exponentials use the type's fast `exp` (a vectorised polynomial in float32); the normaliser is
/// summed in float64.
#[inline(always)]
pub fn softmax_in_place<T: Real>(z: &mut [T]) -> f64 {
    let m = z.iter().fold(T::neg_infinity(), |m, &x| if x > m { x } else { m });
    let mut lanes = [0.0f64; 8];
    let mut chunks = z.chunks_exact_mut(8);
    for chunk in &mut chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk.iter_mut()) {
            *x = exp_fast(*x - m);
            *lane += x.f64();
        }
    }
    let mut total: f64 = lanes.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp_fast(*x - m);
        total += x.f64();
    }
    let inv = T::of(1.0 / total);
    z.iter_mut().for_each(|x| *x *= inv);
    m.f64() + total.ln()
}

/// One category drawn from the probabilities `p` (which sum to 1 up to rounding).
#[inline(always)]
pub fn sample_category<T: Real, R: Rng + ?Sized>(p: &[T], rng: &mut R) -> usize {
    let u = f64::uniform(rng) * p.iter().map(|x| x.f64()).sum::<f64>();
    let mut acc = 0.0f64;
    for (k, &x) in p.iter().enumerate() {
        acc += x.f64();
        if u < acc {
            return k;
        }
    }
    // Only reached when rounding made `u` equal the total: the last category with positive mass.
    p.iter().rposition(|&x| x > T::zero()).unwrap_or(p.len() - 1)
}

/// `cdf[k] = p_0 + ... + p_k` in float64 (`cdf` as long as `p`).
pub fn cumulative<T: Real>(p: &[T], cdf: &mut [f64]) {
    debug_assert_eq!(p.len(), cdf.len());
    let mut acc = 0.0f64;
    for (c, &x) in cdf.iter_mut().zip(p) {
        acc += x.f64();
        *c = acc;
    }
}

/// `n_draws` independent categories from the cumulative sums `cdf` (see [`cumulative`]): calls
/// `on_draw(k)` once per draw, in the order drawn.
pub fn multinomial<R: Rng + ?Sized>(cdf: &[f64], n_draws: usize, rng: &mut R, mut on_draw: impl FnMut(usize)) {
    let total = *cdf.last().expect("multinomial: no categories");
    let last = cdf.len() - 1;
    for _ in 0..n_draws {
        let u = f64::uniform(rng) * total;
        // The first k with u < cdf[k]; a category of zero mass (cdf[k] == cdf[k - 1]) is never chosen.
        on_draw(cdf.partition_point(|&c| c <= u).min(last));
    }
}

/// `sum_i a_i b_i`, accumulated in 8 lanes of the element type (the loop vectorises).
#[inline(always)]
pub fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut lanes = [T::zero(); 8];
    let n = a.len().min(b.len());
    let full = n / 8 * 8;
    for (x, y) in a[..full].chunks_exact(8).zip(b[..full].chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let mut total = lanes.iter().fold(T::zero(), |s, &x| s + x);
    for i in full..n {
        total += a[i] * b[i];
    }
    total
}

/// `y += alpha * x`.
#[inline(always)]
pub fn axpy<T: Real>(alpha: T, x: &[T], y: &mut [T]) {
    y.iter_mut().zip(x).for_each(|(y, &x)| *y += alpha * x);
}

/// One step of SGD with momentum and L2 decay: `vel = momentum * vel + lr * (grad_scale * grad -
/// decay * param)`, `param += vel` (pass `decay = 0` for biases). Returns whether every new parameter
/// is finite.
#[inline(always)]
pub fn momentum_step<T: Real>(param: &mut [T], vel: &mut [T], grad: &[T], grad_scale: T, lr: T, momentum: T, decay: T) -> bool {
    let mut finite = true;
    for ((p, v), &g) in param.iter_mut().zip(vel.iter_mut()).zip(grad) {
        *v = momentum * *v + lr * (grad_scale * g - decay * *p);
        *p += *v;
        // `|x| < inf` is false for NaN and infinities; `&` keeps the loop branch-free.
        finite &= p.abs() < T::infinity();
    }
    finite
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    #[test]
    fn softmax_is_stable_and_normalised() {
        for scale in [1.0, 100.0, 1e4] {
            let z: Vec<f64> = (0..13).map(|i| ((i * 7) % 5) as f64 * scale - 2.0 * scale).collect();
            let mut p = z.clone();
            let lse = softmax_in_place(&mut p);
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let want_lse = m + z.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
            assert!((lse - want_lse).abs() < 1e-12 * want_lse.abs().max(1.0), "{lse} vs {want_lse}");
            assert!((log_sum_exp(&z) - want_lse).abs() < 1e-12 * want_lse.abs().max(1.0));
            assert!(p.iter().all(|x| x.is_finite() && *x >= 0.0));
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            for (pk, zk) in p.iter().zip(&z) {
                assert!((pk - (zk - want_lse).exp()).abs() < 1e-12);
            }
        }
        let mut p32 = vec![1e30f32, -1e30, 0.0, 88.0];
        let lse = softmax_in_place(&mut p32);
        assert!((lse - 1e30).abs() / 1e30 < 1e-6);
        // float32's fast exp stops at exp(-87) ~ 1.6e-38: negligible, never a NaN or an overflow.
        assert_eq!(p32[0], 1.0);
        assert!(p32[1..].iter().all(|&p| (0.0..1e-37).contains(&p)), "{p32:?}");
    }

    /// Pearson's statistic of `counts` against `n * p`.
    fn chi_square(counts: &[f64], p: &[f64]) -> f64 {
        let n: f64 = counts.iter().sum();
        counts.iter().zip(p).filter(|(_, &p)| p > 0.0).map(|(c, p)| (c - n * p).powi(2) / (n * p)).sum()
    }

    #[test]
    fn categories_follow_their_probabilities() {
        let p = [0.5f32, 0.0, 0.2, 0.25, 0.05];
        let p64: Vec<f64> = p.iter().map(|&x| x as f64).collect();
        let mut rng = stream(3, 0, 0, 0);
        let mut counts = vec![0.0; 5];
        for _ in 0..100_000 {
            counts[sample_category(&p, &mut rng)] += 1.0;
        }
        assert_eq!(counts[1], 0.0, "a category of zero probability is never drawn");
        // 3 degrees of freedom: P(chi2 > 16.27) = 0.001.
        assert!(chi_square(&counts, &p64) < 16.27, "{counts:?}");
        assert!(chi_square(&counts, &[0.2; 5]) > 16.27, "the test rejects a wrong distribution");
    }

    #[test]
    fn multinomial_draws_follow_their_probabilities() {
        let p: Vec<f64> = [3.0, 0.0, 1.0, 0.5, 0.0, 5.5].iter().map(|x| x / 10.0).collect();
        let mut cdf = vec![0.0; p.len()];
        cumulative(&p, &mut cdf);
        let mut rng = stream(5, 1, 2, 3);
        let mut counts = vec![0.0; p.len()];
        let mut n = 0;
        for _ in 0..20_000 {
            multinomial(&cdf, 7, &mut rng, |k| {
                counts[k] += 1.0;
                n += 1;
            });
        }
        assert_eq!(n, 140_000, "exactly n_draws per call");
        assert_eq!((counts[1], counts[4]), (0.0, 0.0));
        // 3 degrees of freedom (4 categories of positive mass).
        assert!(chi_square(&counts, &p) < 16.27, "{counts:?}");
    }

    #[test]
    fn a_draw_never_passes_the_last_category_with_mass() {
        // Probabilities that do not sum to 1 exactly, and trailing zeros.
        let p = [0.1f32, 0.2, 0.3, 0.0, 0.0];
        let mut cdf = vec![0.0; 5];
        cumulative(&p, &mut cdf);
        let mut rng = stream(9, 0, 0, 0);
        for _ in 0..10_000 {
            assert!(sample_category(&p, &mut rng) < 3);
            multinomial(&cdf, 3, &mut rng, |k| assert!(k < 3));
        }
    }

    #[test]
    fn dot_and_axpy() {
        let a: Vec<f64> = (0..21).map(|i| i as f64 * 0.5 - 3.0).collect();
        let b: Vec<f64> = (0..21).map(|i| (i as f64).sin()).collect();
        let want: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - want).abs() < 1e-12);
        let mut y = b.clone();
        axpy(2.0, &a, &mut y);
        for i in 0..21 {
            assert_eq!(y[i], b[i] + 2.0 * a[i]);
        }
    }
}
