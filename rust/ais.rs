//! The partition function of an RBM: exactly, by enumerating the states of the smaller layer, or by
//! annealed importance sampling (AIS) from a base-rate model (Salakhutdinov & Murray, 2008).
//!
//! Both work with unnormalised marginals: for Bernoulli visible units, summing h out gives
//! `log p*(v) = b.v + sum_j softplus(c_j + (W v)_j)`, and summing v out gives
//! `log p*(h) = c.h + sum_i softplus(b_i + (h W)_i)`. For Gaussian visible units (unit variance),
//! integrating v out gives `log p*(h) = c.h + |b + h W|^2 / 2 - |b|^2 / 2 + n_visible / 2 * log(2 pi)`.

use rayon::prelude::*;

use crate::activations::{sigmoid, softplus};
use crate::error::{KernelError, Result};
use crate::linalg::{gemm, Threads, View, ViewMut};
use crate::rbm::{Rbm, Visible};
use crate::real::Real;
use crate::rng::{purpose, stream};

/// The most units whose 2^n states [`log_partition_exact`] enumerates.
pub const MAX_EXACT_UNITS: usize = 24;

/// States enumerated per block (a fixed number, so the sum's order does not depend on threads).
const STATES_PER_BLOCK: usize = 2048;

/// Adds `log(sum exp(xs))` of one block to a running (max, sum) pair, stably.
fn accumulate(acc: (f64, f64), block: (f64, f64)) -> (f64, f64) {
    let (m1, s1) = acc;
    let (m2, s2) = block;
    if m1 == f64::NEG_INFINITY {
        return block;
    }
    if m2 == f64::NEG_INFINITY {
        return acc;
    }
    let m = m1.max(m2);
    (m, s1 * (m1 - m).exp() + s2 * (m2 - m).exp())
}

fn log_sum_exp(xs: &[f64]) -> (f64, f64) {
    let m = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return (m, 0.0);
    }
    (m, xs.iter().map(|x| (x - m).exp()).sum())
}

/// Exact `log Z` by enumerating the 2^n states of the smaller layer (the hidden layer for Gaussian
/// visible units). Fails if that layer has more than `max_units` (<= [`MAX_EXACT_UNITS`]) units.
pub fn log_partition_exact<T: Real>(rbm: &Rbm<'_, T>, max_units: usize) -> Result<f64> {
    rbm.check()?;
    let (nv, nh) = (rbm.n_visible, rbm.n_hidden);
    let enumerate_hidden = rbm.visible == Visible::Gaussian || nh <= nv;
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
    // The other layer's width.
    let m = if enumerate_hidden { nv } else { nh };
    let blocks: Vec<(f64, f64)> = (0..n_blocks)
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
            let (own_bias, other_bias) = if enumerate_hidden { (rbm.hidden_bias, rbm.visible_bias) } else { (rbm.visible_bias, rbm.hidden_bias) };
            let terms: Vec<f64> = (0..count)
                .map(|s| {
                    let st = &states[s * n_units..(s + 1) * n_units];
                    let pr = &pre[s * m..(s + 1) * m];
                    let linear: f64 = st.iter().zip(own_bias).map(|(&x, &b)| (x * b).f64()).sum();
                    let other: f64 = match (enumerate_hidden, rbm.visible) {
                        (true, Visible::Gaussian) => pr
                            .iter()
                            .zip(other_bias)
                            .map(|(&p, &b)| {
                                let (p, b) = (p.f64(), b.f64());
                                0.5 * (b + p) * (b + p) - 0.5 * b * b
                            })
                            .sum(),
                        _ => pr.iter().zip(other_bias).map(|(&p, &b)| softplus(p.f64() + b.f64())).sum(),
                    };
                    linear + other
                })
                .collect();
            log_sum_exp(&terms)
        })
        .collect();
    let (mx, sum) = blocks.into_iter().fold((f64::NEG_INFINITY, 0.0), accumulate);
    let mut log_z = mx + sum.ln();
    if rbm.visible == Visible::Gaussian {
        log_z += 0.5 * nv as f64 * (2.0 * std::f64::consts::PI).ln();
    }
    Ok(log_z)
}

/// Chains advanced together as one block (a fixed number: results do not depend on threads).
const CHAINS_PER_BLOCK: usize = 16;

/// Annealed importance sampling from the base-rate model with visible bias `base_bias` (Bernoulli:
/// logits of the data's pixel means; Gaussian: the data mean) and no weights, through the
/// distributions `p_k(v) ~ exp((1 - beta_k) base.v + beta_k log p*_target(v))`, `betas` rising from 0 to 1.
///
/// Returns one log importance weight per chain; then
/// `log Z ~ log Z_base + log mean(exp(log_w))`, with `log Z_base` from [`base_log_partition`].
pub fn ais_log_weights<T: Real>(rbm: &Rbm<'_, T>, base_bias: &[T], betas: &[f64], n_chains: usize, seed: u64) -> Result<Vec<f64>> {
    rbm.check()?;
    let (nv, nh) = (rbm.n_visible, rbm.n_hidden);
    if base_bias.len() != nv {
        return Err(KernelError::shape("base_bias", format!("length {nv}"), format!("length {}", base_bias.len())));
    }
    if betas.len() < 2 || betas[0] != 0.0 || *betas.last().unwrap() != 1.0 || betas.windows(2).any(|w| !(w[1] >= w[0])) {
        return Err(KernelError::value("betas", "a non-decreasing schedule from 0 to 1 with at least 2 entries", format!("{} values", betas.len())));
    }
    if n_chains == 0 {
        return Err(KernelError::value("n_chains", "an integer >= 1", 0));
    }
    let n_blocks = n_chains.div_ceil(CHAINS_PER_BLOCK);
    let gaussian = rbm.visible == Visible::Gaussian;
    let per_block: Vec<Vec<f64>> = (0..n_blocks)
        .into_par_iter()
        .map(|blk| {
            let n = CHAINS_PER_BLOCK.min(n_chains - blk * CHAINS_PER_BLOCK);
            let mut rng = stream(seed, 0, purpose::AIS, blk as u64);
            // Start: an exact draw from the base model.
            let mut v = vec![T::zero(); n * nv];
            for r in 0..n {
                for i in 0..nv {
                    v[r * nv + i] = if gaussian {
                        base_bias[i] + T::normal(&mut rng)
                    } else if T::uniform(&mut rng) < sigmoid(base_bias[i]) {
                        T::one()
                    } else {
                        T::zero()
                    };
                }
            }
            let mut log_w = vec![0.0f64; n];
            let mut pre_h = vec![T::zero(); n * nh];
            let mut h = vec![T::zero(); n * nh];
            let mut pre_v = vec![T::zero(); n * nv];
            // Gaussian units: the squared biases of -|v - b|^2 / 2 also change with beta.
            let half_sq = |x: &[T]| 0.5 * x.iter().map(|&a| a.f64() * a.f64()).sum::<f64>();
            let (base_sq, target_sq) = if gaussian { (half_sq(base_bias), half_sq(rbm.visible_bias)) } else { (0.0, 0.0) };
            // log p*_beta(v), up to terms constant in beta:
            // (1 - beta) (a.v - |a|^2/2) + beta (b.v - |b|^2/2) + sum_j softplus(beta (W v + c)_j).
            let log_p = |v: &[T], pre: &[T], beta: f64| -> f64 {
                let lin: f64 = v.iter().zip(base_bias).zip(rbm.visible_bias).map(|((&x, &a), &b)| x.f64() * ((1.0 - beta) * a.f64() + beta * b.f64())).sum();
                let hid: f64 = pre.iter().zip(rbm.hidden_bias).map(|(&p, &c)| softplus(beta * (p.f64() + c.f64()))).sum();
                lin + hid - (1.0 - beta) * base_sq - beta * target_sq
            };
            for k in 1..betas.len() {
                gemm(T::one(), View::new(&v, n, nv), View::new(rbm.weight, nh, nv).t(), T::zero(), ViewMut::new(&mut pre_h, n, nh), Threads::Single);
                for r in 0..n {
                    let (vr, pr) = (&v[r * nv..(r + 1) * nv], &pre_h[r * nh..(r + 1) * nh]);
                    log_w[r] += log_p(vr, pr, betas[k]) - log_p(vr, pr, betas[k - 1]);
                }
                if k + 1 == betas.len() {
                    break;
                }
                // Transition that leaves p_k invariant: h | v, then v | h, at beta_k.
                let beta = T::of(betas[k]);
                let one_minus = T::of(1.0 - betas[k]);
                for (j, (hj, &p)) in h.iter_mut().zip(&pre_h).enumerate() {
                    let prob = sigmoid(beta * (p + rbm.hidden_bias[j % nh]));
                    *hj = if T::uniform(&mut rng) < prob { T::one() } else { T::zero() };
                }
                gemm(T::one(), View::new(&h, n, nh), View::new(rbm.weight, nh, nv), T::zero(), ViewMut::new(&mut pre_v, n, nv), Threads::Single);
                for (idx, (vi, &p)) in v.iter_mut().zip(&pre_v).enumerate() {
                    let i = idx % nv;
                    let mean = one_minus * base_bias[i] + beta * (p + rbm.visible_bias[i]);
                    *vi = if gaussian {
                        mean + T::normal(&mut rng)
                    } else if T::uniform(&mut rng) < sigmoid(mean) {
                        T::one()
                    } else {
                        T::zero()
                    };
                }
            }
            log_w
        })
        .collect();
    Ok(per_block.into_iter().flatten().collect())
}

/// `log Z` of the base-rate model of [`ais_log_weights`] (its n_hidden units have no parameters).
pub fn base_log_partition<T: Real>(base_bias: &[T], n_hidden: usize, visible: Visible) -> f64 {
    let hidden = n_hidden as f64 * std::f64::consts::LN_2;
    match visible {
        Visible::Bernoulli => base_bias.iter().map(|&a| softplus(a.f64())).sum::<f64>() + hidden,
        // exp(-|v - a|^2 / 2) integrates to (2 pi)^(n/2) whatever a.
        Visible::Gaussian => 0.5 * base_bias.len() as f64 * (2.0 * std::f64::consts::PI).ln() + hidden,
    }
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
        let (m, s) = log_sum_exp(&terms);
        m + s.ln()
    }

    #[test]
    fn exact_matches_brute_force_enumerating_either_layer() {
        for &(nv, nh) in &[(5, 3), (3, 6), (4, 4)] {
            let (w, b, c) = model(nv, nh, 1.0, nv as u64);
            let rbm = Rbm { weight: &w, visible_bias: &b, hidden_bias: &c, n_visible: nv, n_hidden: nh, visible: Visible::Bernoulli };
            let got = log_partition_exact(&rbm, 20).unwrap();
            let want = brute_force(&w, &b, &c, nv, nh);
            assert!((got - want).abs() < 1e-10, "{nv}x{nh}: {got} vs {want}");
        }
    }

    #[test]
    fn exact_gaussian_matches_numerical_integration() {
        // One Gaussian visible unit, two hidden units: integrate exp(-F(v)) over v on a fine grid.
        let (w, b, c) = (vec![0.7, -1.1], vec![0.3], vec![0.2, -0.4]);
        let rbm = Rbm { weight: &w, visible_bias: &b, hidden_bias: &c, n_visible: 1, n_hidden: 2, visible: Visible::Gaussian };
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
        let rbm = Rbm { weight: &w, visible_bias: &b, hidden_bias: &c, n_visible: 30, n_hidden: 25, visible: Visible::Bernoulli };
        assert!(log_partition_exact(&rbm, 20).is_err());
    }

    fn schedule(n: usize) -> Vec<f64> {
        (0..n).map(|k| k as f64 / (n - 1) as f64).collect()
    }

    #[test]
    fn ais_agrees_with_exact_for_bernoulli_and_gaussian() {
        for visible in [Visible::Bernoulli, Visible::Gaussian] {
            let (nv, nh) = (20, 8);
            let (w, b, c) = model(nv, nh, 0.4, 2);
            let rbm = Rbm { weight: &w, visible_bias: &b, hidden_bias: &c, n_visible: nv, n_hidden: nh, visible };
            let exact = log_partition_exact(&rbm, 20).unwrap();
            let base: Vec<f64> = b.iter().map(|x| x * 0.5).collect();
            let lw = ais_log_weights(&rbm, &base, &schedule(2000), 64, 7).unwrap();
            let (m, s) = log_sum_exp(&lw);
            let est = base_log_partition(&base, nh, visible) + m + (s / lw.len() as f64).ln();
            assert!((est - exact).abs() < 0.1, "{visible:?}: AIS {est} vs exact {exact}");
        }
    }

    #[test]
    fn ais_is_thread_count_independent() {
        let (w, b, c) = model(12, 5, 1.0, 3);
        let rbm = Rbm { weight: &w, visible_bias: &b, hidden_bias: &c, n_visible: 12, n_hidden: 5, visible: Visible::Bernoulli };
        let base = vec![0.0; 12];
        let one = crate::linalg::with_threads(1, || ais_log_weights(&rbm, &base, &schedule(50), 40, 1).unwrap());
        let two = crate::linalg::with_threads(2, || ais_log_weights(&rbm, &base, &schedule(50), 40, 1).unwrap());
        assert_eq!(one, two);
        assert_eq!(one.len(), 40);
    }

    #[test]
    fn ais_rejects_bad_schedules() {
        let (w, b, c) = model(3, 2, 1.0, 3);
        let rbm = Rbm { weight: &w, visible_bias: &b, hidden_bias: &c, n_visible: 3, n_hidden: 2, visible: Visible::Bernoulli };
        assert!(ais_log_weights(&rbm, &[0.0; 3], &[0.0, 0.5], 4, 0).is_err());
        assert!(ais_log_weights(&rbm, &[0.0; 3], &[0.0, 0.7, 0.5, 1.0], 4, 0).is_err());
        assert!(ais_log_weights(&rbm, &[0.0; 2], &[0.0, 1.0], 4, 0).is_err());
    }
}
