//! Optimisers that update a parameter array in place, in one fused parallel pass.
//!
//! Gradients `g` here are of a loss to *minimise*. Weight decay is the L2 penalty
//! `weight_decay / 2 * ||p||^2`, added to the gradient (as `torch.optim.SGD`/`Adam` do):
//!
//! - SGD with momentum: `v <- momentum * v - lr * (g + wd * p)`, `p <- p + v`;
//! - Adam (Kingma & Ba 2015): `m <- b1 m + (1 - b1) g`, `v <- b2 v + (1 - b2) g^2`,
//!   `p <- p - lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)`.
//!
//! The state of a list of parameters is laid out one way everywhere: `slots[p]` holds the state arrays
//! of parameter p (the velocity, or Adam's m and v), each as long as the parameter.

use multiversion::multiversion;
use rayon::prelude::*;

use crate::error::{KernelError, Result};
use crate::real::Real;
use crate::rng::CHUNK;

/// One optimiser step's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// `v <- momentum * v - lr * (g + wd * p)`, `p <- p + v`. One state array (the velocity).
    Sgd { learning_rate: f64, momentum: f64 },
    /// Adam (Kingma & Ba 2015) with bias correction at step `t >= 1`. Two state arrays (m, v).
    Adam { learning_rate: f64, beta1: f64, beta2: f64, epsilon: f64, t: u64 },
}

impl Optimizer {
    /// How many state arrays (each the size of the parameter) the optimiser keeps per parameter.
    pub fn n_slots(&self) -> usize {
        match self {
            Optimizer::Sgd { .. } => 1,
            Optimizer::Adam { .. } => 2,
        }
    }

    /// Rejects settings outside their valid range.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, x: f64| {
            if x.is_finite() && x > 0.0 {
                Ok(())
            } else {
                Err(KernelError::value(name, "a finite number > 0", x))
            }
        };
        let unit = |name: &str, x: f64| {
            if (0.0..1.0).contains(&x) {
                Ok(())
            } else {
                Err(KernelError::value(name, "in [0, 1)", x))
            }
        };
        match *self {
            Optimizer::Sgd { learning_rate, momentum } => {
                positive("learning_rate", learning_rate)?;
                unit("momentum", momentum)
            }
            Optimizer::Adam { learning_rate, beta1, beta2, epsilon, t } => {
                positive("learning_rate", learning_rate)?;
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                positive("epsilon", epsilon)?;
                if t == 0 {
                    return Err(KernelError::value("t", "the 1-based step count (>= 1)", t));
                }
                Ok(())
            }
        }
    }
}

/// An optimiser step of a network's parameters: weight decay applies to the weight matrices, not to
/// the biases (or other vectors).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Update {
    pub optimizer: Optimizer,
    pub weight_decay: f64,
}

impl Update {
    /// Rejects settings outside their valid range.
    pub fn validate(&self) -> Result<()> {
        self.optimizer.validate()?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(KernelError::value("weight_decay", "a finite number >= 0", self.weight_decay));
        }
        Ok(())
    }

    /// Applies one step to each `(parameter, gradient, decayed)` in order, `slots[p]` being the state
    /// of parameter p ([`check_state`] first); `decayed` marks the weight matrices.
    pub fn apply<'p, T: Real>(&self, slots: &mut [Vec<&mut [T]>], params: impl IntoIterator<Item = (&'p mut [T], &'p [T], bool)>) {
        for ((param, grad, decayed), state) in params.into_iter().zip(slots.iter_mut()) {
            let weight_decay = if decayed { self.weight_decay } else { 0.0 };
            step(&self.optimizer, param, grad, state, weight_decay);
        }
    }
}

/// Checks the optimiser state of a list of parameters of `sizes` values each: one entry per parameter,
/// holding `opt.n_slots()` arrays as long as the parameter.
pub fn check_state<T>(opt: &Optimizer, slots: &[Vec<&mut [T]>], sizes: &[usize]) -> Result<()> {
    if slots.len() != sizes.len() {
        return Err(KernelError::shape("slots", format!("one entry per parameter array ({})", sizes.len()), slots.len()));
    }
    for (p, (state, &len)) in slots.iter().zip(sizes).enumerate() {
        if state.len() != opt.n_slots() {
            return Err(KernelError::shape(&format!("slots[{p}]"), format!("{} arrays for this optimizer", opt.n_slots()), state.len()));
        }
        if let Some((k, a)) = state.iter().enumerate().find(|(_, a)| a.len() != len) {
            return Err(KernelError::shape(&format!("slots[{p}][{k}]"), format!("{len} values (the size of its parameter)"), a.len()));
        }
    }
    Ok(())
}

/// Applies one step of `opt` to `param` given `grad`; `slots` are the optimiser's state arrays for
/// this parameter (`opt.n_slots()` of them, each as long as `param`).
pub fn step<T: Real>(opt: &Optimizer, param: &mut [T], grad: &[T], slots: &mut [&mut [T]], weight_decay: f64) {
    assert_eq!(slots.len(), opt.n_slots(), "optimiser state: wrong number of slots");
    assert!(slots.iter().all(|s| s.len() == param.len()) && grad.len() == param.len(), "optimiser: length mismatch");
    let wd = T::of(weight_decay);
    match *opt {
        Optimizer::Sgd { learning_rate, momentum } => {
            let (lr, mu) = (T::of(learning_rate), T::of(momentum));
            let vel = &mut *slots[0];
            param
                .par_chunks_mut(CHUNK)
                .zip(vel.par_chunks_mut(CHUNK))
                .zip(grad.par_chunks(CHUNK))
                .for_each(|((p, v), g)| sgd_chunk(p, v, g, lr, mu, wd));
        }
        Optimizer::Adam { learning_rate, beta1, beta2, epsilon, t } => {
            // Bias corrections folded into the step size, as in the paper's efficient form.
            let c1 = 1.0 - beta1.powf(t as f64);
            let c2 = 1.0 - beta2.powf(t as f64);
            let (b1, b2) = (T::of(beta1), T::of(beta2));
            let (one_b1, one_b2) = (T::of(1.0 - beta1), T::of(1.0 - beta2));
            let step_size = T::of(learning_rate / c1);
            let inv_c2 = T::of(1.0 / c2);
            let eps = T::of(epsilon);
            let (m_slot, v_slot) = slots.split_at_mut(1);
            let (m, v) = (&mut *m_slot[0], &mut *v_slot[0]);
            param.par_chunks_mut(CHUNK).zip(m.par_chunks_mut(CHUNK)).zip(v.par_chunks_mut(CHUNK)).zip(grad.par_chunks(CHUNK)).for_each(
                |(((p, m), v), g)| {
                    let k = AdamConstants { b1, b2, one_b1, one_b2, step_size, inv_c2, eps, wd };
                    adam_chunk(p, m, v, g, k)
                },
            );
        }
    }
}

// The update loops are compiled for AVX-512 / AVX2 too and picked at run time (the crate's baseline
// is SSE2): measured 10-15% of a VAE epoch, whose Adam step passes over 650k parameters.
//
// The optimiser state is flushed to zero below the smallest normal number. A parameter whose gradient
// is exactly zero (a weight from an MNIST border pixel that is 0 in every image) sees its moments decay
// geometrically into subnormal numbers after ~800 steps, and arithmetic on subnormals takes a slow
// microcode path: a VAE epoch became 30% slower from its tenth epoch on (benches/NOTES.md entry 13).
// Such values are 1e-38 and below; the updates they would make are smaller still.

/// `x`, or 0 if `x` is subnormal (a branch-free select: the loops stay vectorised).
#[inline(always)]
fn flush_subnormal<T: Real>(x: T) -> T {
    if x.abs() < T::min_positive_value() {
        T::zero()
    } else {
        x
    }
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl", "x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn sgd_chunk<T: Real>(p: &mut [T], v: &mut [T], g: &[T], lr: T, mu: T, wd: T) {
    for ((p, v), &g) in p.iter_mut().zip(v.iter_mut()).zip(g) {
        *v = flush_subnormal(mu * *v - lr * (g + wd * *p));
        *p += *v;
    }
}

#[derive(Clone, Copy)]
struct AdamConstants<T> {
    b1: T,
    b2: T,
    one_b1: T,
    one_b2: T,
    step_size: T,
    inv_c2: T,
    eps: T,
    wd: T,
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl", "x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn adam_chunk<T: Real>(p: &mut [T], m: &mut [T], v: &mut [T], g: &[T], k: AdamConstants<T>) {
    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        let g = g + k.wd * *p;
        *m = flush_subnormal(k.b1 * *m + k.one_b1 * g);
        *v = flush_subnormal(k.b2 * *v + k.one_b2 * g * g);
        *p -= k.step_size * *m / ((*v * k.inv_c2).sqrt() + k.eps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_matches_reference_recursion() {
        let opt = Optimizer::Sgd { learning_rate: 0.1, momentum: 0.9 };
        let mut p = vec![1.0f64, -2.0, 3.0];
        let mut v = vec![0.0f64; 3];
        let (mut pr, mut vr) = (p.clone(), v.clone());
        for it in 0..5 {
            let g: Vec<f64> = p.iter().map(|x| 2.0 * x + it as f64).collect();
            step(&opt, &mut p, &g, &mut [&mut v], 0.01);
            for i in 0..3 {
                let gr = 2.0 * pr[i] + it as f64;
                vr[i] = 0.9 * vr[i] - 0.1 * (gr + 0.01 * pr[i]);
                pr[i] += vr[i];
            }
        }
        assert_eq!(p, pr);
    }

    #[test]
    fn adam_matches_textbook_form() {
        let opt = |t| Optimizer::Adam { learning_rate: 1e-2, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, t };
        let mut p = vec![0.5f64, -1.5];
        let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
        let (mut pr, mut mr, mut vr) = (p.clone(), m.clone(), v.clone());
        for t in 1..=20u64 {
            let g: Vec<f64> = p.iter().map(|x| x.powi(3)).collect();
            step(&opt(t), &mut p, &g, &mut [&mut m, &mut v], 0.0);
            for i in 0..2 {
                let g = pr[i].powi(3);
                mr[i] = 0.9 * mr[i] + 0.1 * g;
                vr[i] = 0.999 * vr[i] + 0.001 * g * g;
                let mhat = mr[i] / (1.0 - 0.9f64.powi(t as i32));
                let vhat = vr[i] / (1.0 - 0.999f64.powi(t as i32));
                pr[i] -= 1e-2 * mhat / (vhat.sqrt() + 1e-8);
            }
        }
        for i in 0..2 {
            assert!((p[i] - pr[i]).abs() < 1e-12, "{} vs {}", p[i], pr[i]);
        }
    }

    #[test]
    fn adam_minimises_a_quadratic() {
        let mut p = vec![5.0f32; 10_000];
        let (mut m, mut v) = (vec![0.0f32; p.len()], vec![0.0f32; p.len()]);
        for t in 1..=2000 {
            let g: Vec<f32> = p.iter().map(|x| 2.0 * (x - 1.0)).collect();
            let opt = Optimizer::Adam { learning_rate: 0.05, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, t };
            step(&opt, &mut p, &g, &mut [&mut m, &mut v], 0.0);
        }
        assert!(p.iter().all(|x| (x - 1.0).abs() < 1e-2));
    }

    #[test]
    fn state_of_parameters_without_gradient_decays_to_zero_not_to_subnormals() {
        let normal_or_zero = |x: f32| x == 0.0 || x.abs() >= f32::MIN_POSITIVE;
        let n = 64;
        let (mut p, mut m, mut v) = (vec![1.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        let (mut ps, mut vel) = (vec![1.0f32; n], vec![0.0f32; n]);
        let zeros = vec![0.0f32; n];
        for t in 1..=3000u64 {
            // A gradient for the first 10 steps, then none: the moments decay through the subnormal range.
            let g = if t <= 10 { vec![1e-3f32; n] } else { zeros.clone() };
            let adam = Optimizer::Adam { learning_rate: 1e-3, beta1: 0.9, beta2: 0.9, epsilon: 1e-8, t };
            step(&adam, &mut p, &g, &mut [&mut m, &mut v], 0.0);
            step(&Optimizer::Sgd { learning_rate: 0.1, momentum: 0.9 }, &mut ps, &g, &mut [&mut vel], 0.0);
            assert!(m.iter().chain(&v).chain(&vel).all(|&x| normal_or_zero(x)), "subnormal state at step {t}");
        }
        assert!(m.iter().chain(&v).chain(&vel).all(|&x| x == 0.0), "the state reached zero");
        assert!(p.iter().chain(&ps).all(|x| x.is_finite() && *x < 1.0), "the early steps moved the parameters");
    }

    #[test]
    fn state_checks_name_the_slot_that_disagrees() {
        let (mut a, mut b, mut c) = (vec![0.0f32; 3], vec![0.0f32; 3], vec![0.0f32; 2]);
        let adam = Optimizer::Adam { learning_rate: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, t: 1 };
        let sgd = Optimizer::Sgd { learning_rate: 0.1, momentum: 0.0 };
        let slots: Vec<Vec<&mut [f32]>> = vec![vec![&mut a, &mut b], vec![&mut c]];
        assert!(check_state(&sgd, &slots, &[3, 2]).unwrap_err().to_string().starts_with("slots[0]:"));
        assert!(check_state(&adam, &slots, &[3, 2]).unwrap_err().to_string().starts_with("slots[1]:"));
        assert!(check_state(&adam, &slots, &[3]).unwrap_err().to_string().starts_with("slots:"));
        let slots: Vec<Vec<&mut [f32]>> = vec![vec![&mut a], vec![&mut c]];
        assert!(check_state(&sgd, &slots, &[3, 2]).is_ok());
        assert!(check_state(&sgd, &slots, &[3, 3]).unwrap_err().to_string().starts_with("slots[1][0]:"));
    }

    #[test]
    fn update_decays_only_the_marked_parameters() {
        let update = Update { optimizer: Optimizer::Sgd { learning_rate: 0.5, momentum: 0.0 }, weight_decay: 0.1 };
        let (mut w, mut b) = (vec![2.0f64], vec![2.0f64]);
        let (mut vw, mut vb) = (vec![0.0f64], vec![0.0f64]);
        let mut slots: Vec<Vec<&mut [f64]>> = vec![vec![&mut vw], vec![&mut vb]];
        update.apply(&mut slots, [(&mut w[..], &[1.0][..], true), (&mut b[..], &[1.0][..], false)]);
        assert_eq!(w, vec![2.0 - 0.5 * (1.0 + 0.1 * 2.0)]);
        assert_eq!(b, vec![2.0 - 0.5]);
        assert!(Update { weight_decay: -1.0, ..update }.validate().is_err());
    }

    #[test]
    fn validation_rejects_bad_settings() {
        assert!(Optimizer::Sgd { learning_rate: 0.0, momentum: 0.5 }.validate().is_err());
        assert!(Optimizer::Sgd { learning_rate: 0.1, momentum: 1.0 }.validate().is_err());
        assert!(Optimizer::Adam { learning_rate: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, t: 0 }.validate().is_err());
        assert!(Optimizer::Adam { learning_rate: f64::NAN, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, t: 1 }.validate().is_err());
        assert!(Optimizer::Adam { learning_rate: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, t: 1 }.validate().is_ok());
    }
}
