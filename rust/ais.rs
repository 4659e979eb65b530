//! The partition function of an RBM: exactly, by enumerating the states of the smaller layer, or by
//! annealed importance sampling (AIS) from a base-rate model (Salakhutdinov & Murray, 2008).
//!
//! Both work with unnormalised marginals, one layer summed out (see `units`):
//! `log p*(v) = -e_v(v; b) + log sum_h exp(-e_h(h; c) + h.W v)`, and likewise `log p*(h)`. For
//! Bernoulli units in both layers, `log p*(v) = b.v + sum_j softplus(c_j + (W v)_j)` and
//! `log p*(h) = c.h + sum_i softplus(b_i + (h W)_i)`; for Gaussian visible units (unit variance),
//! `log p*(h) = c.h + |b + h W|^2 / 2 - |b|^2 / 2 + n_visible / 2 * log(2 pi)`.
//!
//! `log Z = log sum_h p*(h)` exactly when a layer is small enough to enumerate; otherwise AIS anneals
//! from the base-rate model `p_0(v) ~ exp(-e_v(v; a))` (no weights, known `log Z_0`) through
//! `p_k(v) ~ exp(-(1 - beta_k) e_v(v; a) - beta_k e_v(v; b) + log sum_h exp(-e_h(h; c) + beta_k h.W v))`
//! with `beta_k` rising from 0 to 1, and `Z / Z_0 = E[prod_k p*_k(v_k) / p*_{k-1}(v_k)]`.

use rayon::prelude::*;

use crate::activations::{sigmoid, softplus, sum_f64, LogSumExp};
use crate::error::{KernelError, Result};
use crate::linalg::{gemm, Threads, View, ViewMut};
use crate::rbm::Rbm;
use crate::real::Real;
use crate::rng::{purpose, stream, CHUNK};
use crate::sampling::StreamKey;
use crate::scratch;
use crate::units::Units;

fn require_bernoulli_hidden<T>(rbm: &Rbm<'_, T>) -> Result<()> {
    // The estimators sum the hidden layer out with the binary units' softplus form.
    if !rbm.hidden.binary() {
        return Err(KernelError::value("hidden", "'bernoulli' for the partition function", format!("'{}'", rbm.hidden.name())));
    }
    Ok(())
}

/// The most units whose 2^n states [`log_partition_exact`] enumerates.
pub const MAX_EXACT_UNITS: usize = 24;

/// States enumerated per block (a fixed number, so the sum's order does not depend on threads).
const STATES_PER_BLOCK: usize = 2048;

/// Exact `log Z` by enumerating the 2^n states of the smaller layer (the hidden layer for Gaussian
/// visible units). Fails if that layer has more than `max_units` (<= [`MAX_EXACT_UNITS`]) units.
pub fn log_partition_exact<T: Real>(rbm: &Rbm<'_, T>, max_units: usize) -> Result<f64> {
    rbm.check()?;
    require_bernoulli_hidden(rbm)?;
    let (nv, nh) = (rbm.n_visible, rbm.n_hidden);
    // A layer of real-valued units cannot be enumerated: then the hidden layer is.
    let enumerate_hidden = !rbm.visible.countable() || nh <= nv;
    let n_units = if enumerate_hidden { nh } else { nv };
    let limit = max_units.min(MAX_EXACT_UNITS);
    if n_units > limit {
        let layer = if enumerate_hidden { "hidden" } else { "visible" };
        return Err(KernelError::value(
            "method='exact'",
            format!("a layer of at most {limit} units to enumerate"),
            format!("{n_units} {layer} units (use method='ais')"),
        ));
    }
    let n_states = 1usize << n_units;
    let n_blocks = n_states.div_ceil(STATES_PER_BLOCK);
    // The other layer, summed out of every enumerated state.
    let (m, other) = if enumerate_hidden { (nv, rbm.visible) } else { (nh, rbm.hidden) };
    let blocks: Vec<LogSumExp> = (0..n_blocks)
        .into_par_iter()
        .map(|blk| {
            let first = blk * STATES_PER_BLOCK;
            let count = STATES_PER_BLOCK.min(n_states - first);
            let mut states = vec![T::zero(); count * n_units];
            for s in 0..count {
                for u in 0..n_units {
                    if ((first + s) >> u) & 1 == 1 {
                        states[s * n_units + u] = T::one();
                    }
                }
            }
            let mut pre = vec![T::zero(); count * m];
            let w = View::new(rbm.weight, nh, nv);
            let op_w = if enumerate_hidden { w } else { w.t() };
            gemm(T::one(), View::new(&states, count, n_units), op_w, T::zero(), ViewMut::new(&mut pre, count, m), Threads::Single);
            let (own_bias, other_bias) =
                if enumerate_hidden { (rbm.hidden_bias, rbm.visible_bias) } else { (rbm.visible_bias, rbm.hidden_bias) };
            let terms: Vec<f64> = (0..count)
                .map(|s| {
                    let st = &states[s * n_units..(s + 1) * n_units];
                    let pr = &pre[s * m..(s + 1) * m];
                    let linear: f64 = st.iter().zip(own_bias).map(|(&x, &b)| (x * b).f64()).sum();
                    linear + other.log_sum_f64(pr, other_bias)
                })
                .collect();
            LogSumExp::of(&terms)
        })
        .collect();
    let total = blocks.into_iter().fold(LogSumExp::EMPTY, LogSumExp::merge);
    Ok(total.value() + other.log_sum_constant(m))
}

/// Annealed importance sampling from the base-rate model with visible bias `base_bias` (Bernoulli:
/// logits of the data's pixel means; Gaussian: the data mean) and no weights, through the
/// distributions `p_k(v) ~ exp((1 - beta_k) base.v + beta_k log p*_target(v))`, `betas` rising from 0 to 1.
///
/// Returns one log importance weight per chain; then
/// `log Z ~ log Z_base + log mean(exp(log_w))`, with `log Z_base` from [`base_log_partition`].
///
/// All chains advance together: each step is two parallel products over the whole batch of chains,
/// elementwise work is split in fixed chunks with their own random streams (keyed by the step), and
/// each chain's weight is summed by one task, so results do not depend on the number of threads.
pub fn ais_log_weights<T: Real>(rbm: &Rbm<'_, T>, base_bias: &[T], betas: &[f64], n_chains: usize, seed: u64) -> Result<Vec<f64>> {
    rbm.check()?;
    require_bernoulli_hidden(rbm)?;
    let (nv, nh) = (rbm.n_visible, rbm.n_hidden);
    if base_bias.len() != nv {
        return Err(KernelError::shape("base_bias", format!("length {nv}"), format!("length {}", base_bias.len())));
    }
    if betas.len() < 2 || betas[0] != 0.0 || *betas.last().unwrap() != 1.0 || betas.windows(2).any(|w| w[1].is_nan() || w[1] < w[0]) {
        return Err(KernelError::value(
            "betas",
            "a non-decreasing schedule from 0 to 1 with at least 2 entries",
            format!("{} values", betas.len()),
        ));
    }
    if n_chains == 0 {
        return Err(KernelError::value("n_chains", "an integer >= 1", 0));
    }
    let visible = rbm.visible;
    let n = n_chains;
    let key = |step: u64, p: u64| StreamKey { seed, step, purpose: p };

    // Start: an exact draw from the base model, every chain from the same means.
    let base_mean: Vec<T> = (0..n * nv).map(|i| visible.mean(base_bias[i % nv])).collect();
    let mut v = vec![T::zero(); n * nv];
    visible.sample(&base_mean, &mut v, key(0, purpose::AIS));

    // With e_v(v; a) = g(v) - a.v + e_0(a) (e_0 = units' bias_energy: |a|^2 / 2 for Gaussian units),
    // log p*_beta(v) = -g(v) + (1 - beta) (a.v - e_0(a)) + beta (b.v - e_0(b)) + sum_j softplus(beta x_j),
    // x = W v + c: its change from beta_{k-1} to beta_k is
    // (beta_k - beta_{k-1}) ((b - a).v - (e_0(b) - e_0(a))) + sum_j [softplus(beta_k x_j) - softplus(beta_{k-1} x_j)].
    let sq_change = visible.bias_energy(rbm.visible_bias) - visible.bias_energy(base_bias);
    let bias_diff: Vec<T> = rbm.visible_bias.iter().zip(base_bias).map(|(&b, &a)| b - a).collect();
    let mut log_w = vec![0.0f64; n];
    let mut x = vec![T::zero(); n * nh];
    let mut h = vec![T::zero(); n * nh];
    let mut mean_v = vec![T::zero(); n * nv];
    let w = View::new(rbm.weight, nh, nv);
    // Binary visible states are mostly zero on data like MNIST: then x comes from their nonzeros and W^T.
    let weight_t = visible.binary().then(|| rbm.weight_transposed());
    for k in 1..betas.len() {
        let (b_prev, b_now) = (betas[k - 1], betas[k]);
        rbm.hidden_input_from(&v, &mut x, weight_t.as_deref());
        let (bp, bn) = (T::of(b_prev), T::of(b_now));
        log_w.par_iter_mut().zip(x.par_chunks_mut(nh)).zip(v.par_chunks(nv)).for_each(|((lw, xr), vr)| {
            xr.iter_mut().zip(rbm.hidden_bias).for_each(|(x, &c)| *x += c);
            let hidden = sum_f64(xr, |x| softplus(bn * x) - softplus(bp * x));
            let visible: f64 = vr.iter().zip(&bias_diff).map(|(&v, &d)| (v * d).f64()).sum();
            *lw += hidden + (b_now - b_prev) * (visible - sq_change);
        });
        if k + 1 == betas.len() {
            break;
        }
        // Transition that leaves p_k invariant: h | v, then v | h, at beta_k.
        h.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).enumerate().for_each(|(ci, (hc, xc))| {
            let mut rng = stream(seed, k as u64, purpose::AIS + 1, ci as u64);
            for (h, &x) in hc.iter_mut().zip(xc) {
                *h = if T::uniform(&mut rng) < sigmoid(bn * x) { T::one() } else { T::zero() };
            }
        });
        gemm(T::one(), View::new(&h, n, nh), w, T::zero(), ViewMut::new(&mut mean_v, n, nv), Threads::Pool);
        let one_minus = T::one() - bn;
        mean_v.par_chunks_mut(nv).for_each(|row| {
            for (i, m) in row.iter_mut().enumerate() {
                let pre = one_minus * base_bias[i] + bn * (*m + rbm.visible_bias[i]);
                *m = visible.mean(pre);
            }
        });
        visible.sample(&mean_v, &mut v, key(k as u64, purpose::AIS));
    }
    if let Some(wt) = weight_t {
        scratch::recycle(wt);
    }
    Ok(log_w)
}

/// `log Z` of the base-rate model of [`ais_log_weights`]: the visible layer alone with biases
/// `base_bias`, times 2^n_hidden for its Bernoulli hidden units, which have no parameters.
pub fn base_log_partition<T: Real>(base_bias: &[T], n_hidden: usize, visible: Units) -> f64 {
    visible.log_partition(base_bias) + n_hidden as f64 * std::f64::consts::LN_2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(nv: usize, nh: usize, scale: f64, salt: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let r = |i: u64, k: u64| ((((i + salt * 7919) * 2654435761 + k) % 10007) as f64 / 10007.0 - 0.5) * 2.0;
        (
            (0..(nv * nh) as u64).map(|i| r(i, 1) * scale).collect(),
            (0..nv as u64).map(|i| r(i, 2) * scale).collect(),
            (0..nh as u64).map(|i| r(i, 3) * scale).collect(),
        )
    }

    /// Brute force over every joint state (v, h): log sum exp(-E(v, h)).
    fn brute_force(w: &[f64], b: &[f64], c: &[f64], nv: usize, nh: usize) -> f64 {
        let mut terms = vec![];
        for vs in 0..1usize << nv {
            for hs in 0..1usize << nh {
                let v: Vec<f64> = (0..nv).map(|i| ((vs >> i) & 1) as f64).collect();
                let h: Vec<f64> = (0..nh).map(|j| ((hs >> j) & 1) as f64).collect();
                let mut neg_e: f64 = (0..nv).map(|i| b[i] * v[i]).sum::<f64>() + (0..nh).map(|j| c[j] * h[j]).sum::<f64>();
                for j in 0..nh {
                    for i in 0..nv {
                        neg_e += h[j] * w[j * nv + i] * v[i];
                    }
                }
                terms.push(neg_e);
            }
        }
        LogSumExp::of(&terms).value()
    }

    #[test]
    fn exact_matches_brute_force_enumerating_either_layer() {
        for &(nv, nh) in &[(5, 3), (3, 6), (4, 4)] {
            let (w, b, c) = model(nv, nh, 1.0, nv as u64);
            let rbm = Rbm::new(&w, &b, &c, Units::Bernoulli, Units::Bernoulli);
            let got = log_partition_exact(&rbm, 20).unwrap();
            let want = brute_force(&w, &b, &c, nv, nh);
            assert!((got - want).abs() < 1e-10, "{nv}x{nh}: {got} vs {want}");
        }
    }

    #[test]
    fn partition_function_refuses_gaussian_hidden_units_naming_them() {
        let (w, b, c) = (vec![0.7, -1.1], vec![0.3], vec![0.2, -0.4]);
        let rbm = Rbm::new(&w, &b, &c, Units::Bernoulli, Units::Gaussian);
        let err = log_partition_exact(&rbm, 20).unwrap_err();
        assert!(err.to_string().contains("'gaussian'"), "{err}");
    }

    #[test]
    fn exact_gaussian_matches_numerical_integration() {
        // One Gaussian visible unit, two hidden units: integrate exp(-F(v)) over v on a fine grid.
        let (w, b, c) = (vec![0.7, -1.1], vec![0.3], vec![0.2, -0.4]);
        let rbm = Rbm::new(&w, &b, &c, Units::Gaussian, Units::Bernoulli);
        let got = log_partition_exact(&rbm, 20).unwrap();
        let (lo, hi, n) = (-15.0, 15.0, 300_000);
        let dx = (hi - lo) / n as f64;
        let mut total = 0.0;
        for k in 0..n {
            let v = lo + (k as f64 + 0.5) * dx;
            let mut f = vec![0.0];
            rbm.free_energy(&[v], &mut f);
            total += (-f[0]).exp() * dx;
        }
        assert!((got - total.ln()).abs() < 1e-8, "{got} vs {}", total.ln());
    }

    #[test]
    fn exact_refuses_large_layers() {
        let (w, b, c) = model(30, 25, 0.1, 1);
        let rbm = Rbm::new(&w, &b, &c, Units::Bernoulli, Units::Bernoulli);
        assert!(log_partition_exact(&rbm, 20).is_err());
    }

    fn schedule(n: usize) -> Vec<f64> {
        (0..n).map(|k| k as f64 / (n - 1) as f64).collect()
    }

    #[test]
    fn ais_agrees_with_exact_for_bernoulli_and_gaussian() {
        for visible in [Units::Bernoulli, Units::Gaussian] {
            let (nv, nh) = (20, 8);
            let (w, b, c) = model(nv, nh, 0.4, 2);
            let rbm = Rbm::new(&w, &b, &c, visible, Units::Bernoulli);
            let exact = log_partition_exact(&rbm, 20).unwrap();
            let base: Vec<f64> = b.iter().map(|x| x * 0.5).collect();
            let lw = ais_log_weights(&rbm, &base, &schedule(2000), 64, 7).unwrap();
            let est = base_log_partition(&base, nh, visible) + LogSumExp::of(&lw).log_mean(lw.len());
            assert!((est - exact).abs() < 0.1, "{visible:?}: AIS {est} vs exact {exact}");
        }
    }

    #[test]
    fn ais_agrees_with_exact_for_mostly_zero_visible_states() {
        // Visible biases near -3 (as MNIST's background pixels): the chains' states are ~10% ones and
        // their hidden inputs come from the sparse product over W^T.
        let (nv, nh) = (40, 10);
        let (w, mut b, c) = model(nv, nh, 0.5, 4);
        b.iter_mut().for_each(|b| *b -= 3.0);
        let rbm = Rbm::new(&w, &b, &c, Units::Bernoulli, Units::Bernoulli);
        let exact = log_partition_exact(&rbm, 20).unwrap();
        let lw = |threads: usize| crate::threads::with_threads(threads, || ais_log_weights(&rbm, &b, &schedule(1000), 64, 9).unwrap());
        let weights = lw(2);
        let est = base_log_partition(&b, nh, Units::Bernoulli) + LogSumExp::of(&weights).log_mean(weights.len());
        assert!((est - exact).abs() < 0.1, "AIS {est} vs exact {exact}");
        assert_eq!(weights, lw(1));
        assert_eq!(weights, lw(3));
    }

    #[test]
    fn ais_is_thread_count_independent() {
        let (w, b, c) = model(12, 5, 1.0, 3);
        let rbm = Rbm::new(&w, &b, &c, Units::Bernoulli, Units::Bernoulli);
        let base = vec![0.0; 12];
        let one = crate::threads::with_threads(1, || ais_log_weights(&rbm, &base, &schedule(50), 40, 1).unwrap());
        let two = crate::threads::with_threads(2, || ais_log_weights(&rbm, &base, &schedule(50), 40, 1).unwrap());
        assert_eq!(one, two);
        assert_eq!(one.len(), 40);
    }

    #[test]
    fn ais_rejects_bad_schedules() {
        let (w, b, c) = model(3, 2, 1.0, 3);
        let rbm = Rbm::new(&w, &b, &c, Units::Bernoulli, Units::Bernoulli);
        assert!(ais_log_weights(&rbm, &[0.0; 3], &[0.0, 0.5], 4, 0).is_err());
        assert!(ais_log_weights(&rbm, &[0.0; 3], &[0.0, 0.7, 0.5, 1.0], 4, 0).is_err());
        assert!(ais_log_weights(&rbm, &[0.0; 2], &[0.0, 1.0], 4, 0).is_err());
    }
}
