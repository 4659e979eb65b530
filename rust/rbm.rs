//! Restricted Boltzmann machines: conditionals, Gibbs sampling, free energy, pseudo-likelihood and
//! the CD-k / persistent-CD training step.
//!
//! Notation (as scikit-learn's `BernoulliRBM`): `W` is (n_hidden, n_visible) (`components_`), `b` the
//! visible bias (`intercept_visible_`), `c` the hidden bias (`intercept_hidden_`). With the layers'
//! own energies `e_v(v; b)` and `e_h(h; c)` (their unit types, see `units`):
//!
//! - `E(v, h) = e_v(v; b) + e_h(h; c) - h.W v`;
//! - `p(h | v)` is the hidden units' conditional given the input `W v`, `p(v | h)` the visible units'
//!   given `h W` (Bernoulli: `p(h_j = 1 | v) = sigmoid(c_j + (W v)_j)`; Gaussian: `N(c + W v, I)`);
//! - the free energy sums h out: `F(v) = e_v(v; b) - log sum_h exp(-e_h(h; c) + h.W v)`, e.g.
//!   `F(v) = -b.v - sum_j softplus(c_j + (W v)_j)` for Bernoulli units in both layers.
//!
//! Gaussian visible units model real-valued data (unit variance); Gaussian hidden units are the linear
//! code layer of Hinton & Salakhutdinov's deep autoencoder.
//!
//! CD-k (and persistent CD) estimates the log-likelihood gradient as `<v h>_data - <v h>_model`, the
//! model statistics from k steps of block Gibbs sampling.

use multiversion::multiversion;
use rayon::prelude::*;

use crate::activations::{log_sigmoid, softplus, sum_f64};
use crate::batch::Batch;
use crate::error::{KernelError, Result};
use crate::linalg::{column_sums, gemm, transpose_into, Threads, View, ViewMut};
use crate::real::{first_non_finite, Real};
use crate::rng::{purpose, stream, CHUNK};
use crate::sampling::StreamKey;
use crate::scratch;
use crate::sparse;
use crate::units::Units;

/// Read-only parameters of an RBM.
#[derive(Clone, Copy, Debug)]
pub struct Rbm<'a, T> {
    /// (n_hidden, n_visible)
    pub weight: &'a [T],
    /// (n_visible,)
    pub visible_bias: &'a [T],
    /// (n_hidden,)
    pub hidden_bias: &'a [T],
    pub n_visible: usize,
    pub n_hidden: usize,
    pub visible: Units,
    pub hidden: Units,
}

impl<'a, T: Real> Rbm<'a, T> {
    /// The RBM of `weight` (n_hidden, n_visible) and the biases, whose lengths give the layers' sizes.
    pub fn new(weight: &'a [T], visible_bias: &'a [T], hidden_bias: &'a [T], visible: Units, hidden: Units) -> Self {
        let (n_visible, n_hidden) = (visible_bias.len(), hidden_bias.len());
        Rbm { weight, visible_bias, hidden_bias, n_visible, n_hidden, visible, hidden }
    }

    pub fn check(&self) -> Result<()> {
        if self.n_visible == 0 || self.n_hidden == 0 {
            return Err(KernelError::shape(
                "components",
                "at least one visible and one hidden unit",
                format!("{}x{}", self.n_hidden, self.n_visible),
            ));
        }
        if self.weight.len() != self.n_hidden * self.n_visible {
            return Err(KernelError::shape(
                "components",
                format!("{}x{}", self.n_hidden, self.n_visible),
                format!("{} values", self.weight.len()),
            ));
        }
        if self.visible_bias.len() != self.n_visible {
            return Err(KernelError::shape("intercept_visible", format!("length {}", self.n_visible), self.visible_bias.len()));
        }
        if self.hidden_bias.len() != self.n_hidden {
            return Err(KernelError::shape("intercept_hidden", format!("length {}", self.n_hidden), self.hidden_bias.len()));
        }
        Ok(())
    }

    fn w(&self) -> View<'a, T> {
        View::new(self.weight, self.n_hidden, self.n_visible)
    }

    /// `out = V W^T` (n, n_hidden): hidden pre-activations without the bias.
    fn hidden_input(&self, v: View<'_, T>, out: &mut [T], threads: Threads) {
        gemm(T::one(), v, self.w().t(), T::zero(), ViewMut::new(out, v.rows, self.n_hidden), threads);
    }

    /// `out = V W^T` (n, n_hidden) for the rows of `v` (n, n_visible); given also `weight_t` = W^T
    /// (n_visible, n_hidden), a `v` that is mostly zero is multiplied by its nonzeros alone
    /// ([`sparse::sparse_times`]).
    pub fn hidden_input_from(&self, v: &[T], out: &mut [T], weight_t: Option<&[T]>) {
        let n = v.len() / self.n_visible.max(1);
        match weight_t {
            Some(wt) if sparse::worth_it(sparse::count_nonzeros(v), v.len()) => {
                sparse::sparse_times(v, n, self.n_visible, wt, self.n_hidden, out)
            }
            _ => self.hidden_input(View::new(v, n, self.n_visible), out, Threads::Pool),
        }
    }

    /// `out = H W` (n, n_visible): visible pre-activations without the bias.
    fn visible_input(&self, h: View<'_, T>, out: &mut [T], threads: Threads) {
        gemm(T::one(), h, self.w(), T::zero(), ViewMut::new(out, h.rows, self.n_visible), threads);
    }

    /// The mean of h | v (`p(h = 1 | v)` for Bernoulli units) for the rows of `v` (n, n_visible) into
    /// `out` (n, n_hidden); with `samples`, also a draw of h.
    pub fn hidden(&self, v: &[T], out: &mut [T], samples: Option<&mut [T]>, key: StreamKey) {
        self.hidden_with(v, out, samples, key, None);
    }

    /// `W^T` (n_visible, n_hidden), for [`Rbm::hidden_with`]; a scratch buffer (hand it back with
    /// `scratch::recycle`).
    pub fn weight_transposed(&self) -> Vec<T> {
        let mut wt = scratch::take(self.n_visible * self.n_hidden); // every element written below
        transpose_into(self.weight, self.n_hidden, self.n_visible, &mut wt);
        wt
    }

    /// [`Rbm::hidden`], given also the weights transposed, `weight_t` (n_visible, n_hidden): then a `v`
    /// that is mostly zero is multiplied by its nonzeros alone ([`sparse::sparse_times`]), which reads
    /// the weights a visible unit at a time: the rows of W^T (benches/NOTES.md entry 26).
    pub fn hidden_with(&self, v: &[T], out: &mut [T], samples: Option<&mut [T]>, key: StreamKey, weight_t: Option<&[T]>) {
        self.hidden_input_from(v, out, weight_t);
        self.hidden.activate(out, self.hidden_bias, samples, key);
    }

    /// The mean of `v | h` for the rows of `h` (n, n_hidden) into `out` (n, n_visible); with `samples`,
    /// also a draw of v.
    pub fn visible(&self, h: &[T], out: &mut [T], samples: Option<&mut [T]>, key: StreamKey) {
        let n = h.len() / self.n_hidden.max(1);
        self.visible_input(View::new(h, n, self.n_hidden), out, Threads::Pool);
        self.visible.activate(out, self.visible_bias, samples, key);
    }

    /// Free energy `F(v)` of each row of `v` (n, n_visible) into `out` (n,).
    pub fn free_energy(&self, v: &[T], out: &mut [f64]) {
        let n = out.len();
        let mut pre = vec![T::zero(); n * self.n_hidden];
        self.hidden_input(View::new(v, n, self.n_visible), &mut pre, Threads::Pool);
        out.par_iter_mut().enumerate().for_each(|(i, f)| {
            let vi = &v[i * self.n_visible..(i + 1) * self.n_visible];
            let pi = &pre[i * self.n_hidden..(i + 1) * self.n_hidden];
            *f = self.free_energy_row(vi, pi);
        });
    }

    /// `F(v) = e_v(v; b) - log sum_h exp(-e_h(h; c) + h.pre)` given `pre = W v` (without the hidden bias).
    fn free_energy_row(&self, v: &[T], pre: &[T]) -> f64 {
        self.visible.energy(v, self.visible_bias) - self.hidden.log_sum(pre, self.hidden_bias)
    }

    /// scikit-learn's pseudo-likelihood proxy: for each row, flip one visible unit chosen uniformly at
    /// random and return `n_visible * log sigmoid(F(v_flipped) - F(v))` (Bernoulli units only).
    pub fn pseudo_likelihood(&self, v: &[T], out: &mut [f64], key: StreamKey) -> Result<()> {
        let nv = self.n_visible;
        // One uniform index per row, from fixed chunks of rows.
        let mut flip = vec![0usize; out.len()];
        flip.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, idx)| {
            let mut rng = stream(key.seed, key.step, key.purpose, ci as u64);
            idx.iter_mut().for_each(|i| *i = ((T::uniform(&mut rng).f64() * nv as f64) as usize).min(nv - 1));
        });
        self.pseudo_likelihood_flipping(v, &flip, out)
    }

    /// The pseudo-likelihood of each row of `v` with the given unit `flip[r] < n_visible` flipped in row
    /// r (scikit-learn draws these indices with NumPy; the Python estimator does the same).
    pub fn pseudo_likelihood_flipping(&self, v: &[T], flip: &[usize], out: &mut [f64]) -> Result<()> {
        // Flipping a unit needs binary states, in both layers (the hidden layer is summed out as such).
        if let Some(units) = [self.visible, self.hidden].into_iter().find(|u| !u.binary()) {
            return Err(KernelError::value(
                "units",
                "binary visible and hidden units for the pseudo-likelihood",
                format!("{} units", units.title()),
            ));
        }
        let (n, nv, nh) = (out.len(), self.n_visible, self.n_hidden);
        if flip.len() != n {
            return Err(KernelError::shape("flip", format!("one index per row ({n})"), flip.len()));
        }
        if let Some(&k) = flip.iter().find(|&&k| k >= nv) {
            return Err(KernelError::value("flip", format!("indices below n_visible = {nv}"), k));
        }
        let mut pre = vec![T::zero(); n * nh];
        self.hidden_input(View::new(v, n, nv), &mut pre, Threads::Pool);
        out.par_iter_mut().enumerate().for_each_init(
            || vec![T::zero(); nh],
            |flipped_pre, (r, o)| {
                let vi = &v[r * nv..(r + 1) * nv];
                let pi = &pre[r * nh..(r + 1) * nh];
                let visible = self.visible.energy(vi, self.visible_bias);
                let f = visible - self.hidden.log_sum(pi, self.hidden_bias);
                // Flipping unit k changes W v by W[:, k] * (1 - 2 v_k) and b.v by b_k (1 - 2 v_k).
                let k = flip[r];
                let delta = T::one() - T::of(2.0) * vi[k];
                for (j, x) in flipped_pre.iter_mut().enumerate() {
                    *x = pi[j] + self.hidden_bias[j] + self.weight[j * nv + k] * delta;
                }
                let f_flipped = visible - (self.visible_bias[k] * delta).f64() - softplus_total(flipped_pre);
                *o = nv as f64 * log_sigmoid(f_flipped - f);
            },
        );
        Ok(())
    }

    /// `n_steps` of block Gibbs sampling v -> h -> v on the rows of `v` (n, n_visible), in place.
    /// If given, `v_mean` receives the mean of v | h of the last step (less noisy to look at).
    pub fn gibbs_chain(&self, v: &mut [T], n_steps: usize, v_mean: Option<&mut [T]>, seed: u64) {
        let n = v.len() / self.n_visible.max(1);
        let mut h_probs = vec![T::zero(); n * self.n_hidden];
        let mut h = vec![T::zero(); n * self.n_hidden];
        let mut mean = vec![T::zero(); n * self.n_visible];
        // Binary visible samples are mostly zero on data like MNIST: their products go through W^T.
        let weight_t = (self.visible.binary() && n_steps > 0).then(|| self.weight_transposed());
        for step in 0..n_steps as u64 {
            self.hidden_with(v, &mut h_probs, Some(&mut h), StreamKey { seed, step, purpose: purpose::HIDDEN }, weight_t.as_deref());
            self.visible(&h, &mut mean, Some(v), StreamKey { seed, step, purpose: purpose::VISIBLE });
        }
        if let Some(wt) = weight_t {
            scratch::recycle(wt);
        }
        if let Some(out) = v_mean {
            out.copy_from_slice(&mean);
        }
    }
}

/// Settings of one contrastive-divergence step.
#[derive(Clone, Copy, Debug)]
pub struct CdSettings {
    /// Gibbs steps of the negative phase (k of CD-k), >= 1.
    pub k: usize,
    pub learning_rate: f64,
    pub momentum: f64,
    /// L2 penalty on the weights (not the biases).
    pub weight_decay: f64,
}

impl CdSettings {
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(KernelError::value("k", "an integer >= 1", self.k));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(KernelError::value("learning_rate", "a finite number > 0", self.learning_rate));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(KernelError::value("momentum", "in [0, 1)", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(KernelError::value("weight_decay", "a finite number >= 0", self.weight_decay));
        }
        Ok(())
    }
}

/// Writable RBM parameters and their momentum buffers (same shapes).
pub struct RbmState<'a, T> {
    pub weight: &'a mut [T],
    pub visible_bias: &'a mut [T],
    pub hidden_bias: &'a mut [T],
    pub weight_velocity: &'a mut [T],
    pub visible_velocity: &'a mut [T],
    pub hidden_velocity: &'a mut [T],
    pub n_visible: usize,
    pub n_hidden: usize,
    pub visible: Units,
    pub hidden: Units,
}

impl<'a, T: Real> RbmState<'a, T> {
    /// Checks the parameters (see [`Rbm::check`]) and that each velocity has its parameter's size.
    pub fn check(&self) -> Result<()> {
        self.rbm().check()?;
        let (nv, nh) = (self.n_visible, self.n_hidden);
        for (name, len, want) in [
            ("components_velocity", self.weight_velocity.len(), nh * nv),
            ("intercept_visible_velocity", self.visible_velocity.len(), nv),
            ("intercept_hidden_velocity", self.hidden_velocity.len(), nh),
        ] {
            if len != want {
                return Err(KernelError::shape(name, format!("{want} values (the size of its parameter)"), format!("{len} values")));
            }
        }
        Ok(())
    }

    pub fn rbm(&self) -> Rbm<'_, T> {
        Rbm {
            weight: self.weight,
            visible_bias: self.visible_bias,
            hidden_bias: self.hidden_bias,
            n_visible: self.n_visible,
            n_hidden: self.n_hidden,
            visible: self.visible,
            hidden: self.hidden,
        }
    }
}

/// One CD-k (or persistent CD-k) step on a minibatch, updating the parameters in place.
///
/// The minibatch `batch` has rows of n_visible values (its targets are not read). With `chain`
/// (n_chains, n_hidden), the negative phase starts from those hidden states and leaves its
/// last hidden sample there (persistent CD); otherwise it starts from a sample of h | v_data.
///
/// The gradient of the log-likelihood is estimated as `<v h>_data - <v h>_model` (hidden
/// probabilities P, visible states V), so the velocity update
/// `vel = momentum * vel + lr/B * P_data^T V_data - lr/C * P_model^T V_model` is two products with
/// `beta`/`alpha`. The first needs only the positive phase: it runs beside the negative chain.
pub fn cd_step<T: Real>(
    state: &mut RbmState<'_, T>,
    batch: &Batch<'_, T>,
    chain: Option<&mut [T]>,
    settings: &CdSettings,
    seed: u64,
    step: u64,
) -> Result<()> {
    settings.validate()?;
    state.check()?;
    let (nv, nh) = (state.n_visible, state.n_hidden);
    if batch.n_features != nv {
        return Err(KernelError::shape("x", format!("{nv} columns (the visible units)"), format!("{} columns", batch.n_features)));
    }
    batch.check()?;
    batch.check_not_empty()?;
    let b = batch.len();
    let c = match &chain {
        Some(ch) if ch.len() % nh != 0 => {
            return Err(KernelError::shape("h_samples", format!("rows of {nh} hidden units"), format!("{} values", ch.len())));
        }
        Some(ch) => ch.len() / nh,
        None => b,
    };
    if c == 0 {
        return Err(KernelError::value("h_samples", "at least one persistent chain", 0));
    }
    let total = b + c;
    // X = [V_data ; V_model] (b + c, nv), S = [H_data ; H_model] (b + c, nh)
    // From the scratch pool: every element is written below before it is read.
    let mut x = scratch::take(total * nv);
    let mut s = scratch::take(total * nh);
    let mut v_mean = scratch::take(c * nv);
    let (inv_b, inv_c) = (T::of(1.0 / b as f64), T::of(1.0 / c as f64));
    let (lr, mu, wd) = (T::of(settings.learning_rate), T::of(settings.momentum), T::of(settings.weight_decay));
    {
        // The chain reads the parameters while the positive statistics go into the velocity.
        let rbm = Rbm {
            weight: &*state.weight,
            visible_bias: &*state.visible_bias,
            hidden_bias: &*state.hidden_bias,
            n_visible: nv,
            n_hidden: nh,
            visible: state.visible,
            hidden: state.hidden,
        };
        let weight_velocity = &mut *state.weight_velocity;
        let (x_data, x_model) = x.split_at_mut(b * nv);
        let (s_data, s_model) = s.split_at_mut(b * nh);
        batch.gather_into(x_data);
        if let Some(i) = first_non_finite(x_data) {
            return Err(KernelError::value("x", "finite values in the minibatch", x_data[i]));
        }
        let key = |p: u64, gibbs: usize| StreamKey { seed, step, purpose: p + 16 * gibbs as u64 };

        // Positive phase: p(h | v_data), and a sample of it to start the chain (CD).
        let mut h_state = match chain {
            Some(ref ch) => ch.to_vec(),
            None => scratch::take(c * nh), // the positive phase's sample
        };
        let sample_into = if chain.is_none() { Some(h_state.as_mut_slice()) } else { None };
        rbm.hidden(x_data, s_data, sample_into, key(purpose::HIDDEN, 0));

        // vel = momentum * vel + lr/B * P_data^T V_data, on half of the pool, beside the negative
        // phase (k steps h -> v -> h), whose split products the other threads share by work stealing.
        // Each product's result does not depend on how many threads compute it.
        let positive_statistics = || {
            let part = Threads::Part((rayon::current_num_threads() / 2).max(1));
            let (s_data, x_data) = (View::new(s_data, b, nh), View::new(x_data, b, nv));
            gemm(lr * inv_b, s_data.t(), x_data, mu, ViewMut::new(weight_velocity, nh, nv), part);
        };
        let negative_phase = || {
            for g in 1..=settings.k {
                rbm.visible(&h_state, &mut v_mean, Some(x_model), key(purpose::VISIBLE, g));
                let last = g == settings.k;
                let keep_sample = !last || chain.is_some();
                rbm.hidden(x_model, s_model, if keep_sample { Some(h_state.as_mut_slice()) } else { None }, key(purpose::HIDDEN, g));
            }
        };
        rayon::join(positive_statistics, negative_phase);
        if let Some(ch) = chain {
            ch.copy_from_slice(&h_state);
        }
        scratch::recycle(h_state);
    }
    scratch::recycle(v_mean);

    // Bias gradients: column means of the data half minus those of the model half.
    let mut sums_v = vec![T::zero(); 2 * nv];
    let mut sums_h = vec![T::zero(); 2 * nh];
    column_sums(&x[..b * nv], b, nv, &mut sums_v[..nv]);
    column_sums(&x[b * nv..], c, nv, &mut sums_v[nv..]);
    column_sums(&s[..b * nh], b, nh, &mut sums_h[..nh]);
    column_sums(&s[b * nh..], c, nh, &mut sums_h[nh..]);
    let grad_v: Vec<T> = (0..nv).map(|i| sums_v[i] * inv_b - sums_v[nv + i] * inv_c).collect();
    let grad_h: Vec<T> = (0..nh).map(|j| sums_h[j] * inv_b - sums_h[nh + j] * inv_c).collect();

    // vel -= lr/C * P_model^T V_model
    gemm(
        -(lr * inv_c),
        View::new(&s[b * nh..], c, nh).t(),
        View::new(&x[b * nv..], c, nv),
        T::one(),
        ViewMut::new(state.weight_velocity, nh, nv),
        Threads::Pool,
    );
    scratch::recycle(x);
    scratch::recycle(s);
    // W += vel - lr * wd * W folded into the velocity (so decay also carries momentum).
    let weights_finite = state
        .weight
        .par_chunks_mut(CHUNK)
        .zip(state.weight_velocity.par_chunks_mut(CHUNK))
        .map(|(w, v)| decay_and_step(w, v, lr * wd))
        .reduce(|| true, |a, b| a && b);
    let mut biases_finite = true;
    for (p, (v, g)) in state.visible_bias.iter_mut().zip(state.visible_velocity.iter_mut().zip(&grad_v)) {
        *v = mu * *v + lr * *g;
        *p += *v;
        biases_finite &= p.is_finite();
    }
    for (p, (v, g)) in state.hidden_bias.iter_mut().zip(state.hidden_velocity.iter_mut().zip(&grad_h)) {
        *v = mu * *v + lr * *g;
        *p += *v;
        biases_finite &= p.is_finite();
    }
    if !(weights_finite && biases_finite) {
        return Err(KernelError::NonFinite(
            "the RBM parameters became non-finite: training diverged (try a smaller learning_rate)".to_string(),
        ));
    }
    Ok(())
}

/// `v -= lr_wd * w; w += v` over a chunk of the weights and their velocity; whether every new weight
/// is finite. Compiled for AVX2 and SSE4.2 too (multiversion's "simd" preset; no AVX-512 version):
/// the baseline SSE2 loop was ~4% of a CD step.
#[multiversion(targets = "simd")]
fn decay_and_step<T: Real>(w: &mut [T], v: &mut [T], lr_wd: T) -> bool {
    let mut finite = true;
    for (w, v) in w.iter_mut().zip(v.iter_mut()) {
        *v -= lr_wd * *w;
        *w += *v;
        // `|x| < inf` is false for NaN and infinities; `&` keeps the loop branch-free.
        finite &= w.abs() < T::infinity();
    }
    finite
}

/// `sum_j softplus(x_j)` in float64: terms computed in blocks of 8 (vectorised), summed in 8 float64
/// lanes combined in a fixed order.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl", "x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn softplus_total<T: Real>(x: &[T]) -> f64 {
    sum_f64(x, softplus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threads::with_threads;

    pub(crate) struct Owned {
        pub w: Vec<f64>,
        pub b: Vec<f64>,
        pub c: Vec<f64>,
        pub nv: usize,
        pub visible: Units,
    }

    impl Owned {
        pub fn new(nv: usize, nh: usize, visible: Units, scale: f64, salt: u64) -> Self {
            let r = |i: u64, k: u64| ((((i + salt * 7919) * 2654435761 + k) % 10007) as f64 / 10007.0 - 0.5) * 2.0;
            Owned {
                w: (0..(nv * nh) as u64).map(|i| r(i, 1) * scale).collect(),
                b: (0..nv as u64).map(|i| r(i, 2) * scale).collect(),
                c: (0..nh as u64).map(|i| r(i, 3) * scale).collect(),
                nv,
                visible,
            }
        }

        pub fn rbm(&self) -> Rbm<'_, f64> {
            Rbm::new(&self.w, &self.b, &self.c, self.visible, Units::Bernoulli)
        }

        /// Energy E(v, h), float64, straight from the definition.
        pub fn energy(&self, v: &[f64], h: &[f64]) -> f64 {
            let mut e = 0.0;
            for (j, &hj) in h.iter().enumerate() {
                let wv: f64 = (0..self.nv).map(|i| self.w[j * self.nv + i] * v[i]).sum();
                e -= hj * (wv + self.c[j]);
            }
            e + match self.visible {
                Units::Bernoulli => -(0..self.nv).map(|i| self.b[i] * v[i]).sum::<f64>(),
                Units::Gaussian => (0..self.nv).map(|i| 0.5 * (v[i] - self.b[i]).powi(2)).sum::<f64>(),
            }
        }
    }

    /// The parameters and velocities of an RBM being trained, owned; `state` lends them to `cd_step`.
    struct Trainee<T> {
        w: Vec<T>,
        b: Vec<T>,
        c: Vec<T>,
        vw: Vec<T>,
        vb: Vec<T>,
        vc: Vec<T>,
        visible: Units,
    }

    impl<T: Real> Trainee<T> {
        /// Weights `w` (n_hidden x n_visible) and biases `b`, `c`, with zero velocities.
        fn new(w: Vec<T>, b: Vec<T>, c: Vec<T>, visible: Units) -> Self {
            let (vw, vb, vc) = (vec![T::zero(); w.len()], vec![T::zero(); b.len()], vec![T::zero(); c.len()]);
            Trainee { w, b, c, vw, vb, vc, visible }
        }

        fn state(&mut self) -> RbmState<'_, T> {
            let (n_visible, n_hidden) = (self.b.len(), self.c.len());
            RbmState {
                weight: &mut self.w,
                visible_bias: &mut self.b,
                hidden_bias: &mut self.c,
                weight_velocity: &mut self.vw,
                visible_velocity: &mut self.vb,
                hidden_velocity: &mut self.vc,
                n_visible,
                n_hidden,
                visible: self.visible,
                hidden: Units::Bernoulli,
            }
        }
    }

    impl Owned {
        /// This RBM's parameters, to train.
        fn trainee(&self) -> Trainee<f64> {
            Trainee::new(self.w.clone(), self.b.clone(), self.c.clone(), self.visible)
        }
    }

    fn bits(state: usize, n: usize) -> Vec<f64> {
        (0..n).map(|i| ((state >> i) & 1) as f64).collect()
    }

    #[test]
    fn free_energy_matches_sum_over_hidden_states() {
        for visible in [Units::Bernoulli, Units::Gaussian] {
            let m = Owned::new(5, 4, visible, 1.0, 3);
            let vs: Vec<f64> = (0..3 * 5).map(|i| ((i * 7) % 5) as f64 / 4.0).collect();
            let mut fe = vec![0.0; 3];
            m.rbm().free_energy(&vs, &mut fe);
            for r in 0..3 {
                let v = &vs[r * 5..(r + 1) * 5];
                // F(v) = -log sum_h exp(-E(v, h))
                let want = -(0..16).map(|s| (-m.energy(v, &bits(s, 4))).exp()).sum::<f64>().ln();
                assert!((fe[r] - want).abs() < 1e-10, "{visible:?}: {} vs {want}", fe[r]);
            }
        }
    }

    #[test]
    fn gaussian_hidden_free_energy_matches_numerical_integration() {
        // Two visible Bernoulli units, two linear hidden units: integrate exp(-E(v, h)) over h on a grid.
        let w = vec![0.8, -0.5, 0.3, 1.1];
        let (b, c) = (vec![0.2, -0.4], vec![0.5, -0.3]);
        let rbm = Rbm::new(&w, &b, &c, Units::Bernoulli, Units::Gaussian);
        for v in [[0.0, 1.0], [1.0, 1.0]] {
            let mut f = vec![0.0];
            rbm.free_energy(&v, &mut f);
            let (lo, step, n) = (-12.0, 0.02, 1200);
            let mut total = 0.0;
            for a in 0..n {
                for bb in 0..n {
                    let h = [lo + a as f64 * step, lo + bb as f64 * step];
                    let mut neg_e = b[0] * v[0] + b[1] * v[1];
                    for j in 0..2 {
                        neg_e += -0.5 * (h[j] - c[j]).powi(2) + h[j] * (w[j * 2] * v[0] + w[j * 2 + 1] * v[1]);
                    }
                    total += neg_e.exp() * step * step;
                }
            }
            assert!((f[0] + total.ln()).abs() < 1e-6, "{} vs {}", f[0], -total.ln());
        }
    }

    #[test]
    fn gaussian_hidden_units_are_linear_with_unit_noise() {
        let (nv, nh, n) = (3, 2, 20000);
        let w = vec![0.5, -1.0, 0.25, 1.5, 0.0, -0.5];
        let (b, c) = (vec![0.0; nv], vec![0.3, -0.2]);
        let rbm = Rbm::new(&w, &b, &c, Units::Bernoulli, Units::Gaussian);
        let v: Vec<f64> = (0..n).flat_map(|_| [1.0, 0.0, 1.0]).collect();
        let mut mean = vec![0.0; n * nh];
        let mut s = vec![0.0; n * nh];
        rbm.hidden(&v, &mut mean, Some(&mut s), StreamKey { seed: 1, step: 0, purpose: 1 });
        let want = [0.3 + 0.5 + 0.25, -0.2 + 1.5 - 0.5];
        for j in 0..nh {
            assert!((mean[j] - want[j]).abs() < 1e-12);
            let m = (0..n).map(|r| s[r * nh + j]).sum::<f64>() / n as f64;
            let var = (0..n).map(|r| (s[r * nh + j] - m).powi(2)).sum::<f64>() / n as f64;
            assert!((m - want[j]).abs() < 5.0 / (n as f64).sqrt() && (var - 1.0).abs() < 0.05, "mean {m} var {var}");
        }
    }

    #[test]
    fn pseudo_likelihood_refuses_real_valued_units_naming_them() {
        let (w, b, c) = (vec![0.5; 6], vec![0.0; 3], vec![0.0; 2]);
        for (visible, hidden) in [(Units::Gaussian, Units::Bernoulli), (Units::Bernoulli, Units::Gaussian)] {
            let rbm = Rbm::new(&w, &b, &c, visible, hidden);
            let err = rbm.pseudo_likelihood_flipping(&[1.0, 0.0, 1.0], &[0], &mut [0.0]).unwrap_err();
            assert!(err.to_string().contains("Gaussian units"), "{err}");
        }
    }

    #[test]
    fn pseudo_likelihood_matches_explicit_flip() {
        let m = Owned::new(6, 3, Units::Bernoulli, 1.0, 1);
        let v: Vec<f64> = (0..4 * 6).map(|i| ((i * 5 + 1) % 3 == 0) as u8 as f64).collect();
        let key = StreamKey { seed: 4, step: 0, purpose: purpose::PSEUDO_LIKELIHOOD };
        let mut pl = vec![0.0; 4];
        m.rbm().pseudo_likelihood(&v, &mut pl, key).unwrap();
        // Recover the flipped index of each row by trying all of them.
        for r in 0..4 {
            let row = &v[r * 6..(r + 1) * 6];
            let mut f = vec![0.0];
            m.rbm().free_energy(row, &mut f);
            let candidates: Vec<f64> = (0..6)
                .map(|k| {
                    let mut flipped = row.to_vec();
                    flipped[k] = 1.0 - flipped[k];
                    let mut ff = vec![0.0];
                    m.rbm().free_energy(&flipped, &mut ff);
                    let d: f64 = ff[0] - f[0];
                    6.0 * -(1.0 + (-d).exp()).ln()
                })
                .collect();
            assert!(candidates.iter().any(|c| (c - pl[r]).abs() < 1e-10), "row {r}: {} not in {candidates:?}", pl[r]);
        }
    }

    #[test]
    fn cd_statistics_match_float64_oracle_for_k1() {
        // With learning_rate = 1 and no momentum or decay, the update is exactly the gradient estimate,
        // which the oracle recomputes from the same random draws (recovered from the kernel's streams).
        let (nv, nh, n) = (7, 5, 6);
        let m = Owned::new(nv, nh, Units::Bernoulli, 0.5, 2);
        let data: Vec<f64> = (0..n * nv).map(|i| ((i * 3) % 4 == 0) as u8 as f64).collect();
        let mut t = m.trainee();
        let settings = CdSettings { k: 1, learning_rate: 1.0, momentum: 0.0, weight_decay: 0.0 };
        cd_step(&mut t.state(), &Batch::new(&data, nv), None, &settings, 77, 5).unwrap();
        let Trainee { w, b, c, .. } = t;

        // Oracle with the kernel's random streams.
        let rbm = m.rbm();
        let mut h0 = vec![0.0; n * nh];
        let mut h0s = vec![0.0; n * nh];
        rbm.hidden(&data, &mut h0, Some(&mut h0s), StreamKey { seed: 77, step: 5, purpose: purpose::HIDDEN });
        let mut vm = vec![0.0; n * nv];
        let mut v1 = vec![0.0; n * nv];
        rbm.visible(&h0s, &mut vm, Some(&mut v1), StreamKey { seed: 77, step: 5, purpose: purpose::VISIBLE + 16 });
        // Independent float64 recomputation of the conditionals.
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let mut h1 = vec![0.0; n * nh];
        for r in 0..n {
            for j in 0..nh {
                let a: f64 = (0..nv).map(|i| m.w[j * nv + i] * v1[r * nv + i]).sum::<f64>() + m.c[j];
                h1[r * nh + j] = sig(a);
                let a0: f64 = (0..nv).map(|i| m.w[j * nv + i] * data[r * nv + i]).sum::<f64>() + m.c[j];
                assert!((h0[r * nh + j] - sig(a0)).abs() < 1e-12);
            }
        }
        for j in 0..nh {
            for i in 0..nv {
                let pos: f64 = (0..n).map(|r| h0[r * nh + j] * data[r * nv + i]).sum::<f64>() / n as f64;
                let neg: f64 = (0..n).map(|r| h1[r * nh + j] * v1[r * nv + i]).sum::<f64>() / n as f64;
                let want = m.w[j * nv + i] + pos - neg;
                assert!((w[j * nv + i] - want).abs() < 1e-12, "W[{j},{i}]");
            }
            let want_c = m.c[j] + (0..n).map(|r| h0[r * nh + j] - h1[r * nh + j]).sum::<f64>() / n as f64;
            assert!((c[j] - want_c).abs() < 1e-12);
        }
        for i in 0..nv {
            let want_b = m.b[i] + (0..n).map(|r| data[r * nv + i] - v1[r * nv + i]).sum::<f64>() / n as f64;
            assert!((b[i] - want_b).abs() < 1e-12);
        }
    }

    #[test]
    fn persistent_statistics_match_float64_oracle_with_more_chains_than_rows() {
        // PCD-1 with B = 3 data rows and C = 5 persistent chains: the positive statistics are means
        // over the B rows, the negative ones over the C chains (each its own 1/B and 1/C).
        let (nv, nh, b, c) = (7, 5, 3, 5);
        let m = Owned::new(nv, nh, Units::Bernoulli, 0.5, 3);
        let data: Vec<f64> = (0..b * nv).map(|i| ((i * 5) % 3 == 0) as u8 as f64).collect();
        let chain0: Vec<f64> = (0..c * nh).map(|i| ((i * 7) % 4 < 2) as u8 as f64).collect();
        let mut chain = chain0.clone();
        let mut t = m.trainee();
        let settings = CdSettings { k: 1, learning_rate: 1.0, momentum: 0.0, weight_decay: 0.0 };
        with_threads(2, || cd_step(&mut t.state(), &Batch::new(&data, nv), Some(&mut chain), &settings, 91, 4)).unwrap();
        let Trainee { w, b: vb, c: hb, .. } = t;

        // Oracle: the chain's visible draw with the kernel's stream, then float64 conditionals.
        let rbm = m.rbm();
        let (mut vm, mut v1) = (vec![0.0; c * nv], vec![0.0; c * nv]);
        rbm.visible(&chain0, &mut vm, Some(&mut v1), StreamKey { seed: 91, step: 4, purpose: purpose::VISIBLE + 16 });
        let (mut h1p, mut h1s) = (vec![0.0; c * nh], vec![0.0; c * nh]);
        rbm.hidden(&v1, &mut h1p, Some(&mut h1s), StreamKey { seed: 91, step: 4, purpose: purpose::HIDDEN + 16 });
        assert_eq!(chain, h1s, "the chains keep the last hidden sample");
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let cond = |v: &[f64], r: usize, j: usize| sig((0..nv).map(|i| m.w[j * nv + i] * v[r * nv + i]).sum::<f64>() + m.c[j]);
        for j in 0..nh {
            for i in 0..nv {
                let pos: f64 = (0..b).map(|r| cond(&data, r, j) * data[r * nv + i]).sum::<f64>() / b as f64;
                let neg: f64 = (0..c).map(|r| cond(&v1, r, j) * v1[r * nv + i]).sum::<f64>() / c as f64;
                assert!((w[j * nv + i] - (m.w[j * nv + i] + pos - neg)).abs() < 1e-12, "W[{j},{i}]");
            }
            let pos: f64 = (0..b).map(|r| cond(&data, r, j)).sum::<f64>() / b as f64;
            let neg: f64 = (0..c).map(|r| cond(&v1, r, j)).sum::<f64>() / c as f64;
            assert!((hb[j] - (m.c[j] + pos - neg)).abs() < 1e-12, "c[{j}]");
        }
        for i in 0..nv {
            let pos: f64 = (0..b).map(|r| data[r * nv + i]).sum::<f64>() / b as f64;
            let neg: f64 = (0..c).map(|r| v1[r * nv + i]).sum::<f64>() / c as f64;
            assert!((vb[i] - (m.b[i] + pos - neg)).abs() < 1e-12, "b[{i}]");
        }
    }

    #[test]
    fn momentum_and_weight_decay_follow_the_recursion() {
        let (nv, nh) = (4, 3);
        let m = Owned::new(nv, nh, Units::Bernoulli, 0.3, 5);
        let data: Vec<f64> = (0..2 * nv).map(|i| (i % 2) as f64).collect();
        let run = |mu: f64, wd: f64, lr: f64| {
            let mut t = m.trainee();
            t.vw = vec![0.1; nv * nh];
            let settings = CdSettings { k: 1, learning_rate: lr, momentum: mu, weight_decay: wd };
            cd_step(&mut t.state(), &Batch::new(&data, nv), None, &settings, 1, 1).unwrap();
            t.w
        };
        // The gradient G from a plain step: w1 = w0 + G (velocity 0.1 only enters through momentum).
        let plain = run(0.0, 0.0, 1.0);
        let with = run(0.5, 0.01, 0.2);
        for i in 0..nv * nh {
            let g = plain[i] - m.w[i];
            let want = m.w[i] + 0.5 * 0.1 + 0.2 * g - 0.2 * 0.01 * m.w[i];
            assert!((with[i] - want).abs() < 1e-12);
        }
    }

    #[test]
    fn persistent_chain_is_updated_and_rows_select_the_batch() {
        let (nv, nh) = (6, 4);
        let m = Owned::new(nv, nh, Units::Bernoulli, 1.0, 9);
        let data: Vec<f64> = (0..10 * nv).map(|i| ((i * 7) % 3 == 0) as u8 as f64).collect();
        let rows = [3usize, 7, 1];
        let sub: Vec<f64> = rows.iter().flat_map(|&r| data[r * nv..(r + 1) * nv].to_vec()).collect();
        let run = |use_rows: bool| {
            let mut t = m.trainee();
            let mut chain = vec![0.0; 5 * nh];
            let s = CdSettings { k: 2, learning_rate: 0.1, momentum: 0.0, weight_decay: 0.0 };
            let batch = if use_rows { Batch::new(&data, nv).rows(Some(&rows)) } else { Batch::new(&sub, nv) };
            cd_step(&mut t.state(), &batch, Some(&mut chain), &s, 3, 0).unwrap();
            (t.w, chain)
        };
        let (w1, chain1) = run(true);
        let (w2, chain2) = run(false);
        assert_eq!(w1, w2);
        assert_eq!(chain1, chain2);
        assert!(chain1.iter().all(|&x| x == 0.0 || x == 1.0));
        assert!(chain1.contains(&1.0), "the chain moved");
    }

    #[test]
    fn gibbs_sampling_matches_exact_distribution() {
        check_gibbs_against_exact_distribution(&Owned::new(3, 2, Units::Bernoulli, 1.5, 4));
    }

    #[test]
    fn gibbs_sampling_of_mostly_zero_states_matches_exact_distribution() {
        // Visible biases of -2.5 leave ~15% of the units on: the chains' hidden inputs then come
        // from the sparse product over W^T.
        let mut m = Owned::new(3, 2, Units::Bernoulli, 1.0, 4);
        m.b.iter_mut().for_each(|b| *b -= 2.5);
        let mut v = vec![0.0; 3000];
        m.rbm().gibbs_chain(&mut v, 20, None, 5);
        assert!(sparse::worth_it(sparse::count_nonzeros(&v), v.len()), "states are not sparse: {}", sparse::count_nonzeros(&v));
        check_gibbs_against_exact_distribution(&m);
    }

    /// 3 visible x 2 hidden: 8 visible states; long chains vs exact p(v) = exp(-F(v)) / Z, chi-square.
    fn check_gibbs_against_exact_distribution(m: &Owned) {
        let rbm = m.rbm();
        let mut f = vec![0.0; 8];
        let states: Vec<f64> = (0..8).flat_map(|s| bits(s, 3)).collect();
        rbm.free_energy(&states, &mut f);
        let z: f64 = f.iter().map(|x| (-x).exp()).sum();
        let p: Vec<f64> = f.iter().map(|x| (-x).exp() / z).collect();
        let n_chains = 2000;
        let mut v = vec![0.0; n_chains * 3];
        let mut counts = vec![0.0; 8];
        let burn_in = 20;
        let mut total = 0.0;
        for round in 0..60u64 {
            rbm.gibbs_chain(&mut v, 1, None, 1000 + round);
            if round >= burn_in {
                for r in 0..n_chains {
                    let s = (0..3).map(|i| (v[r * 3 + i] as usize) << i).sum::<usize>();
                    counts[s] += 1.0;
                    total += 1.0;
                }
            }
        }
        // Successive rounds are correlated, so treat the 40 rounds as ~10 effective: scale the statistic.
        let chi2: f64 = (0..8).map(|s| (counts[s] - total * p[s]).powi(2) / (total * p[s])).sum::<f64>() / 4.0;
        // 7 degrees of freedom: P(chi2 > 24.3) = 0.001.
        assert!(chi2 < 24.3, "chi-square {chi2}, counts {counts:?}, p {p:?}");
        // And a wrong distribution (uniform) is rejected by the same test.
        let chi2_uniform: f64 = (0..8).map(|s| (counts[s] - total / 8.0).powi(2) / (total / 8.0)).sum::<f64>() / 4.0;
        assert!(chi2_uniform > 24.3);
    }

    #[test]
    fn cd_step_is_thread_count_independent_and_learns() {
        let (nv, nh, n) = (64, 32, 256);
        // Two prototypes with noise.
        let data: Vec<f32> = (0..n * nv)
            .map(|i| {
                let (r, c) = (i / nv, i % nv);
                let proto = if r % 2 == 0 { c < nv / 2 } else { c >= nv / 2 };
                let flip = (i * 2654435761) % 10 == 0;
                (proto ^ flip) as u8 as f32
            })
            .collect();
        // Products beside the chain (the positive statistics) and split ones: any thread count, CD-1,
        // and persistent CD-2.
        let run = |threads, k: usize, persistent: bool| {
            let w: Vec<f32> = (0..nv * nh).map(|i| (((i * 7919) % 101) as f32 / 101.0 - 0.5) * 0.02).collect();
            let mut t = Trainee::new(w, vec![0.0f32; nv], vec![0.0f32; nh], Units::Bernoulli);
            let s = CdSettings { k, learning_rate: 0.1, momentum: 0.5, weight_decay: 1e-4 };
            let mut chain = vec![0.0f32; 24 * nh];
            with_threads(threads, || {
                for step in 0..200u64 {
                    let rows: Vec<usize> = (0..32).map(|i| ((step as usize * 32 + i) * 97) % n).collect();
                    let chain = if persistent { Some(chain.as_mut_slice()) } else { None };
                    cd_step(&mut t.state(), &Batch::new(&data, nv).rows(Some(&rows)), chain, &s, 42, step).unwrap();
                }
            });
            let (mut fe, mut fe_noise) = (vec![0.0; n], vec![0.0; n]);
            let noise: Vec<f32> = (0..n * nv).map(|i| ((i * 48271) % 2) as f32).collect();
            let st = t.state();
            st.rbm().free_energy(&data, &mut fe);
            st.rbm().free_energy(&noise, &mut fe_noise);
            (t.w, fe.iter().sum::<f64>() / n as f64, fe_noise.iter().sum::<f64>() / n as f64)
        };
        for (k, persistent) in [(1, false), (2, true)] {
            let (w1, fe_data, fe_noise) = run(1, k, persistent);
            assert!(fe_data < fe_noise - 10.0, "k={k}: data should get lower free energy: {fe_data} vs {fe_noise}");
            // 4 and 5 threads also split the positive statistics' product (on half of the pool).
            for threads in [2, 3, 4, 5] {
                let (w, ..) = run(threads, k, persistent);
                assert!(w == w1, "k={k} persistent={persistent}: {threads} threads differ from 1");
            }
        }
    }

    #[test]
    fn cd_step_refuses_inputs_that_disagree_naming_them() {
        let (nv, nh) = (4, 3);
        let m = Owned::new(nv, nh, Units::Bernoulli, 0.1, 1);
        let data = vec![0.0; 2 * nv];
        let s = CdSettings { k: 1, learning_rate: 0.1, momentum: 0.0, weight_decay: 0.0 };
        let error = |vb_len: usize, rows: Option<&[usize]>, chain_len: Option<usize>| {
            let mut t = m.trainee();
            t.vb = vec![0.0; vb_len];
            let mut chain = chain_len.map(|len| vec![0.0; len]);
            cd_step(&mut t.state(), &Batch::new(&data, nv).rows(rows), chain.as_deref_mut(), &s, 0, 0).unwrap_err().to_string()
        };
        assert!(error(nv + 1, None, None).starts_with("intercept_visible_velocity:"));
        assert!(error(nv, Some(&[0, 2]), None).starts_with("rows:"));
        assert!(error(nv, Some(&[]), None).starts_with("rows"));
        assert!(error(nv, None, Some(nh + 1)).starts_with("h_samples:"));
    }

    #[test]
    fn diverging_training_is_an_error() {
        let (nv, nh) = (4, 3);
        let mut t = Trainee::new(vec![1e38f32; nv * nh], vec![0.0f32; nv], vec![0.0f32; nh], Units::Gaussian);
        let data = vec![1e3f32; 2 * nv];
        let s = CdSettings { k: 1, learning_rate: 1e3, momentum: 0.0, weight_decay: 0.0 };
        assert!(matches!(cd_step(&mut t.state(), &Batch::new(&data, nv), None, &s, 0, 0), Err(KernelError::NonFinite(_))));
    }
}
