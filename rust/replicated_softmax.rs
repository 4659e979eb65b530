//! The Replicated Softmax topic model of Salakhutdinov & Hinton (NIPS 2009).
//!
//! A document is the word counts `v` over a vocabulary of V words, of length `D = sum_k v_k`. Each of its
//! D words is a softmax over the vocabulary; all D share the weights `W` (F, V), the visible biases `b`
//! (V) and the hidden biases `a` (F), which are scaled by D:
//!
//! - `E(v, h) = -b.v - D a.h - h.W v`;
//! - `p(h_j = 1 | v) = sigmoid(D a_j + W_j . v)`;
//! - given h, the D words are independent draws from `softmax(b + W^T h)`;
//! - `log p*(v) = b.v + sum_j softplus(D a_j + W_j . v)`: the unnormalised log-probability of the
//!   document's word sequence, whose normaliser over all sequences of length D is
//!   `Z_D = sum_h exp(D a.h) (sum_k exp(b_k + (W^T h)_k))^D`.
//!
//! CD-T on a minibatch of B documents (`v~` after T Gibbs steps, hidden probabilities `P`):
//! `dW = 1/B sum_n [P(v_n) v_n^T - P(v~_n) v~_n^T]`, `db = 1/B sum_n (v_n - v~_n)`,
//! `da = 1/B sum_n D_n (P(v_n) - P(v~_n))`; `vel = momentum * vel + lr * (grad - weight_decay * W)`,
//! `W += vel` (no decay on the biases). The hidden biases' step is divided by the minibatch's mean
//! document length: their gradient, and the curvature along them, grow with the length.
//!
//! AIS (Neal 2001; Salakhutdinov & Murray 2008) sums the visible units out: `Z_D = sum_h exp(D phi(h))`
//! with `phi(h) = a.h + log sum_k exp(b_k + (W^T h)_k)`, so D is an inverse temperature of a model of
//! h alone and one run annealed from D = 0 (uniform h) gives `log Z_D` for every length on the way.
//!
//! Every document (or chain) is one task with its own random stream, keyed by (seed, step, its index):
//! results do not depend on the number of threads.

use rayon::prelude::*;

use multiversion::multiversion;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::activations::{exp_fast, sigmoid, softplus, sum_f64, LogSumExp};
use crate::error::{KernelError, Result};
use crate::linalg::{column_sums, gemm, transpose_into, Threads, View, ViewMut};
use crate::rbm::CdSettings;
use crate::real::Real;
use crate::rng::stream;
use crate::scratch;
use crate::softmax::{axpy, cumulative, log_sum_exp, momentum_step, multinomial, softmax_in_place};

/// Random-stream purposes of this module.
pub mod purpose {
    /// One document's draws in a CD step.
    pub const DOCUMENT: u64 = 80;
    /// One chain of `sample`.
    pub const SAMPLE: u64 = 81;
    /// One AIS chain.
    pub const AIS: u64 = 82;
}

/// The most hidden units whose 2^F states [`Rsm::log_partition_exact`] enumerates.
pub const MAX_EXACT_UNITS: usize = 24;

/// Hidden states enumerated per block (a fixed number: the sum's order does not depend on threads).
const STATES_PER_BLOCK: usize = 256;

/// Documents as word counts in compressed sparse rows: document d holds `counts[e]` times the word
/// `words[e]` for `e` in `indptr[d]..indptr[d + 1]`.
#[derive(Clone, Copy, Debug)]
pub struct Docs<'a, T> {
    pub indptr: &'a [i64],
    pub words: &'a [i64],
    pub counts: &'a [T],
}

impl<'a, T: Real> Docs<'a, T> {
    pub fn n_docs(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// A valid CSR structure over `n_words` columns holding non-negative integer counts.
    pub fn check(&self, name: &str, n_words: usize) -> Result<()> {
        let ip = self.indptr;
        if ip.is_empty() || ip[0] != 0 || *ip.last().unwrap() != self.words.len() as i64 {
            return Err(KernelError::shape(
                &format!("{name}_indptr"),
                format!("n_documents + 1 offsets from 0 to {}", self.words.len()),
                format!("{} offsets from {:?} to {:?}", ip.len(), ip.first(), ip.last()),
            ));
        }
        if let Some(w) = ip.windows(2).find(|w| w[1] < w[0]) {
            return Err(KernelError::value(&format!("{name}_indptr"), "non-decreasing offsets", format!("{} after {}", w[1], w[0])));
        }
        self.check_entries(name, 0..self.words.len(), n_words)
    }

    /// Checks only the documents `rows` (a training step reads no others).
    pub fn check_rows(&self, name: &str, rows: &[usize], n_words: usize) -> Result<()> {
        let (ip, n) = (self.indptr, self.words.len());
        for &d in rows {
            if d + 1 >= ip.len() {
                return Err(KernelError::Index { name: "rows".into(), index: d as i64, len: ip.len().saturating_sub(1) });
            }
            let (lo, hi) = (ip[d], ip[d + 1]);
            if lo < 0 || hi < lo || hi as usize > n {
                return Err(KernelError::value(
                    &format!("{name}_indptr"),
                    format!("offsets within [0, {n}] that do not decrease"),
                    format!("{lo}..{hi} for document {d}"),
                ));
            }
            self.check_entries(name, lo as usize..hi as usize, n_words)?;
        }
        Ok(())
    }

    fn check_entries(&self, name: &str, range: std::ops::Range<usize>, n_words: usize) -> Result<()> {
        if self.counts.len() != self.words.len() {
            return Err(KernelError::shape(
                &format!("{name}_data"),
                format!("one count per entry ({})", self.words.len()),
                self.counts.len(),
            ));
        }
        if let Some(&w) = self.words[range.clone()].iter().find(|&&w| w < 0 || w as u64 >= n_words as u64) {
            return Err(KernelError::value(&format!("{name}_indices"), format!("word indices in [0, {n_words})"), w));
        }
        if let Some(&c) = self.counts[range].iter().find(|&&c| !(c >= T::zero() && c.is_finite() && c.fract() == T::zero())) {
            return Err(KernelError::value(&format!("{name}_data"), "non-negative integer word counts", c));
        }
        Ok(())
    }

    #[inline]
    fn of(&self, d: usize) -> (&'a [i64], &'a [T]) {
        let r = self.indptr[d] as usize..self.indptr[d + 1] as usize;
        (&self.words[r.clone()], &self.counts[r])
    }

    /// D, the number of words of document d.
    #[inline]
    fn length(&self, d: usize) -> usize {
        self.of(d).1.iter().map(|c| c.f64()).sum::<f64>() as usize
    }
}

/// Read-only parameters of a Replicated Softmax model.
#[derive(Clone, Copy, Debug)]
pub struct Rsm<'a, T> {
    /// W, (n_hidden, n_words)
    pub weight: &'a [T],
    /// b, (n_words,)
    pub visible_bias: &'a [T],
    /// a, (n_hidden,): scaled by the document length
    pub hidden_bias: &'a [T],
    pub n_words: usize,
    pub n_hidden: usize,
}

/// Per-task buffers of one chain: the hidden input and state, the visible logits / probabilities,
/// their cumulative sums, and the drawn counts with the list of words they touch.
struct Chain<T> {
    x: Vec<T>,
    h: Vec<T>,
    probs: Vec<T>,
    cdf: Vec<f64>,
    counts: Vec<T>,
    touched: Vec<usize>,
}

impl<T: Real> Chain<T> {
    fn new(n_words: usize, n_hidden: usize) -> Self {
        Chain {
            x: vec![T::zero(); n_hidden],
            h: vec![T::zero(); n_hidden],
            probs: vec![T::zero(); n_words],
            cdf: vec![0.0; n_words],
            counts: vec![T::zero(); n_words],
            touched: Vec::new(),
        }
    }

    /// `counts` back to all zeros (only the touched words are non-zero).
    fn clear_counts(&mut self) {
        for &w in &self.touched {
            self.counts[w] = T::zero();
        }
        self.touched.clear();
    }

    /// `counts` = `length` words drawn from `probs` (which the caller filled with probabilities).
    fn draw_words<R: rand::Rng + ?Sized>(&mut self, length: usize, rng: &mut R) {
        self.clear_counts();
        cumulative(&self.probs, &mut self.cdf);
        let (counts, touched) = (&mut self.counts, &mut self.touched);
        multinomial(&self.cdf, length, rng, |w| {
            if counts[w] == T::zero() {
                touched.push(w);
            }
            counts[w] += T::one();
        });
        // Ascending word order: sums over the touched words do not depend on the draw order.
        touched.sort_unstable();
    }
}

/// `h_j = 1` with probability `sigmoid(scale * x_j)`, else 0.
#[inline]
fn sample_hidden<T: Real, R: rand::Rng + ?Sized>(x: &[T], scale: T, h: &mut [T], rng: &mut R) {
    for (h, &x) in h.iter_mut().zip(x) {
        *h = if T::uniform(rng) < sigmoid(scale * x) { T::one() } else { T::zero() };
    }
}

impl<'a, T: Real> Rsm<'a, T> {
    pub fn check(&self) -> Result<()> {
        let (v, f) = (self.n_words, self.n_hidden);
        if v == 0 || f == 0 {
            return Err(KernelError::shape("components", "at least one hidden unit and one word", format!("{f}x{v}")));
        }
        if self.weight.len() != f * v {
            return Err(KernelError::shape("components", format!("{f}x{v}"), format!("{} values", self.weight.len())));
        }
        if self.visible_bias.len() != v {
            return Err(KernelError::shape("intercept_visible", format!("length {v}"), self.visible_bias.len()));
        }
        if self.hidden_bias.len() != f {
            return Err(KernelError::shape("intercept_hidden", format!("length {f}"), self.hidden_bias.len()));
        }
        Ok(())
    }

    /// W^T (n_words, n_hidden): a word's weights contiguous, for the hidden inputs of sparse counts. A
    /// scratch buffer (hand it back with `scratch::recycle`).
    fn weight_transposed(&self) -> Vec<T> {
        let mut wt = scratch::take(self.n_words * self.n_hidden); // every element written below
        transpose_into(self.weight, self.n_hidden, self.n_words, &mut wt);
        wt
    }

    /// `out = D a + sum_e counts[e] W[:, words[e]]` (given `wt` = W^T).
    fn hidden_input(&self, wt: &[T], words: impl Iterator<Item = (usize, T)>, length: usize, out: &mut [T]) {
        let f = self.n_hidden;
        let d = T::of(length as f64);
        out.iter_mut().zip(self.hidden_bias).for_each(|(x, &a)| *x = d * a);
        for (w, c) in words {
            axpy(c, &wt[w * f..(w + 1) * f], out);
        }
    }

    /// `probs = softmax(b + W^T h)` for `h` binary or holding probabilities.
    fn visible_probs(&self, h: &[T], probs: &mut [T]) {
        let v = self.n_words;
        probs.copy_from_slice(self.visible_bias);
        for (j, &hj) in h.iter().enumerate() {
            if hj != T::zero() {
                axpy(hj, &self.weight[j * v..(j + 1) * v], probs);
            }
        }
        softmax_in_place(probs);
    }

    /// p(h = 1 | v) of every document into `out` (n_docs, n_hidden).
    pub fn hidden(&self, docs: Docs<'_, T>, out: &mut [T]) {
        let wt = self.weight_transposed();
        out.par_chunks_mut(self.n_hidden).enumerate().for_each(|(d, row)| {
            let (words, counts) = docs.of(d);
            self.hidden_input(&wt, words.iter().map(|&w| w as usize).zip(counts.iter().copied()), docs.length(d), row);
            row.iter_mut().for_each(|x| *x = sigmoid(*x));
        });
        scratch::recycle(wt);
    }

    /// `log p*(v) = b.v + sum_j softplus(D a_j + W_j . v)` of every document into `out` (float64).
    pub fn log_unnormalized(&self, docs: Docs<'_, T>, out: &mut [f64]) {
        let wt = self.weight_transposed();
        out.par_iter_mut().enumerate().for_each_init(
            || vec![T::zero(); self.n_hidden],
            |x, (d, o)| {
                let (words, counts) = docs.of(d);
                self.hidden_input(&wt, words.iter().map(|&w| w as usize).zip(counts.iter().copied()), docs.length(d), x);
                let bv: f64 = words.iter().zip(counts).map(|(&w, &c)| c.f64() * self.visible_bias[w as usize].f64()).sum();
                *o = bv + sum_f64(x, softplus);
            },
        );
        scratch::recycle(wt);
    }

    /// Exact `log Z_D` for documents of each length D in `lengths`, enumerating the 2^F hidden states
    /// (F at most `max_units` <= [`MAX_EXACT_UNITS`]):
    /// `log Z_D = log sum_h exp(D (a.h + log sum_k exp(b_k + (W^T h)_k)))`. The per-state terms do not
    /// depend on D: one pass over the states serves every length.
    pub fn log_partition_exact(&self, lengths: &[usize], max_units: usize) -> Result<Vec<f64>> {
        self.check()?;
        let (v, f) = (self.n_words, self.n_hidden);
        let limit = max_units.min(MAX_EXACT_UNITS);
        if f > limit {
            return Err(KernelError::value(
                "method='exact'",
                format!("at most {limit} hidden units to enumerate"),
                format!("{f} hidden units (use method='ais')"),
            ));
        }
        let n_states = 1usize << f;
        let blocks: Vec<Vec<LogSumExp>> = (0..n_states.div_ceil(STATES_PER_BLOCK))
            .into_par_iter()
            .map(|blk| {
                let first = blk * STATES_PER_BLOCK;
                let count = STATES_PER_BLOCK.min(n_states - first);
                let mut states = vec![T::zero(); count * f];
                for s in 0..count {
                    for j in 0..f {
                        if ((first + s) >> j) & 1 == 1 {
                            states[s * f + j] = T::one();
                        }
                    }
                }
                let mut logits = vec![T::zero(); count * v];
                for row in logits.chunks_exact_mut(v) {
                    row.copy_from_slice(self.visible_bias);
                }
                gemm(
                    T::one(),
                    View::new(&states, count, f),
                    View::new(self.weight, f, v),
                    T::one(),
                    ViewMut::new(&mut logits, count, v),
                    Threads::Single,
                );
                // Per state: a.h + log sum_k exp(b_k + (W^T h)_k), the log-normaliser of one word.
                let per_word: Vec<f64> = (0..count)
                    .map(|s| {
                        let ah: f64 = states[s * f..(s + 1) * f].iter().zip(self.hidden_bias).map(|(&h, &a)| (h * a).f64()).sum();
                        ah + log_sum_exp(&logits[s * v..(s + 1) * v])
                    })
                    .collect();
                lengths.iter().map(|&d| LogSumExp::of(&per_word.iter().map(|&t| d as f64 * t).collect::<Vec<f64>>())).collect()
            })
            .collect();
        // Blocks combined in their fixed order (the same sums for any number of threads).
        Ok((0..lengths.len()).map(|l| blocks.iter().fold(LogSumExp::EMPTY, |acc, b| acc.merge(b[l])).value()).collect())
    }

    /// AIS estimates of `log Z_D` for every length D in `lengths` (ascending, distinct): `n_chains` log
    /// importance weights per length, row-major (lengths, chains); then
    /// `log Z_D ~ F log 2 + log mean exp(log_w)`.
    ///
    /// The visible units are summed out exactly: `Z_D = sum_h exp(D phi(h))` with
    /// `phi(h) = a.h + log sum_k exp(b_k + (W^T h)_k)`. So the document length is an inverse temperature
    /// of a model of the hidden units alone, and one annealing run from length 0 (the uniform
    /// distribution, `Z_0 = 2^F`) up to the longest length gives every shorter one on the way. Its
    /// transitions are Gibbs sweeps over the hidden units at the current length (each unit's two
    /// states compared through one log-sum-exp over the vocabulary). The lengths are a prefix of a fixed
    /// grid ([`length_grid`]), so the estimate for a length does not depend on the others asked for.
    ///
    /// (The AIS of the paper, from a base-rate model through distributions over v and h with Gibbs steps
    /// that redraw the D words, was tens to hundreds of nats below the exact log Z for documents of a
    /// few hundred words: its chains cannot find the hidden states that dominate `Z_D` for large D.)
    pub fn ais_log_weights(&self, lengths: &[usize], steps_per_word: usize, n_chains: usize, seed: u64) -> Result<Vec<f64>> {
        self.check()?;
        if lengths.windows(2).any(|w| w[1] <= w[0]) {
            return Err(KernelError::value("doc_lengths", "ascending distinct lengths", format!("{lengths:?}")));
        }
        if n_chains == 0 || steps_per_word == 0 {
            return Err(KernelError::value("n_chains and steps_per_word", "integers >= 1", format!("{n_chains} and {steps_per_word}")));
        }
        let grid = length_grid(lengths.last().copied().unwrap_or(0), steps_per_word);
        let mut log_w = vec![0.0f64; lengths.len() * n_chains];
        let per_chain: Vec<Vec<f64>> = (0..n_chains)
            .into_par_iter()
            .map(|c| {
                let mut rng = stream(seed, 0, purpose::AIS, c as u64);
                anneal_hidden(self, &grid, lengths, &mut rng)
            })
            .collect();
        for (c, weights) in per_chain.iter().enumerate() {
            for (l, &w) in weights.iter().enumerate() {
                log_w[l * n_chains + c] = w;
            }
        }
        Ok(log_w)
    }

    /// `n_samples` documents of `length` words after `n_steps` of Gibbs sampling h | v, v | h from D
    /// words drawn from `softmax(b)`; returns their counts (n_samples, n_words). Chain c uses the stream
    /// (seed, 0, c).
    pub fn sample(&self, n_samples: usize, length: usize, n_steps: usize, seed: u64) -> Vec<T> {
        let (v, f) = (self.n_words, self.n_hidden);
        let wt = self.weight_transposed();
        let mut out = vec![T::zero(); n_samples * v];
        out.par_chunks_mut(v).enumerate().for_each_init(
            || Chain::new(v, f),
            |chain, (c, row)| {
                let mut rng = stream(seed, 0, purpose::SAMPLE, c as u64);
                chain.probs.copy_from_slice(self.visible_bias);
                softmax_in_place(&mut chain.probs);
                chain.draw_words(length, &mut rng);
                for _ in 0..n_steps {
                    let counts = &chain.counts;
                    self.hidden_input(&wt, chain.touched.iter().map(|&w| (w, counts[w])), length, &mut chain.x);
                    sample_hidden(&chain.x, T::one(), &mut chain.h, &mut rng);
                    let h = std::mem::take(&mut chain.h);
                    self.visible_probs(&h, &mut chain.probs);
                    chain.h = h;
                    chain.draw_words(length, &mut rng);
                }
                row.copy_from_slice(&chain.counts);
            },
        );
        scratch::recycle(wt);
        out
    }
}

/// The inverse temperatures (document lengths) of the AIS run up to `max_length`: 0, then each unit
/// interval `[n, n + 1]` cut into `max(1, round(steps_per_word / (1 + n / 10)))` equal steps (fine where
/// the distribution of h is broad, one step per word once it is peaked). Every integer is a point, and
/// the grid up to n does not depend on `max_length`.
pub fn length_grid(max_length: usize, steps_per_word: usize) -> Vec<f64> {
    let mut grid = vec![0.0];
    for n in 0..max_length {
        let steps = ((steps_per_word as f64 / (1.0 + n as f64 / 10.0)).round() as usize).max(1);
        grid.extend((1..=steps).map(|s| if s == steps { (n + 1) as f64 } else { n as f64 + s as f64 / steps as f64 }));
    }
    grid
}

/// `log sum_k exp(z_k)` with the type's fast exp, accumulated in float64 lanes.
#[inline(always)]
fn log_sum_exp_fast<T: Real>(z: &[T]) -> f64 {
    let m = z.iter().fold(T::neg_infinity(), |m, &x| if x > m { x } else { m });
    let mut lanes = [0.0f64; 8];
    let mut chunks = z.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += exp_fast(x - m).f64();
        }
    }
    let rest: f64 = chunks.remainder().iter().map(|&x| exp_fast(x - m).f64()).sum();
    m.f64() + (lanes.iter().sum::<f64>() + rest).ln()
}

/// One AIS chain over the hidden units along `grid`: the log weights at each length of `lengths` (in
/// order). `p_t(h) ~ exp(t phi(h))`, started from h uniform (t = 0); at each point the weight gains
/// `(t_k - t_{k-1}) phi(h)`, then a Gibbs sweep at `t_k` moves h.
#[multiversion(targets = "simd")]
fn anneal_hidden<T: Real>(model: &Rsm<'_, T>, grid: &[f64], lengths: &[usize], rng: &mut Xoshiro256PlusPlus) -> Vec<f64> {
    let (v, f) = (model.n_words, model.n_hidden);
    let mut h: Vec<bool> = (0..f).map(|_| f64::uniform(rng) < 0.5).collect();
    // z = b + W^T h and its log-sum-exp; `alt` holds z with one unit flipped.
    let mut z = model.visible_bias.to_vec();
    for (j, &on) in h.iter().enumerate() {
        if on {
            axpy(T::one(), &model.weight[j * v..(j + 1) * v], &mut z);
        }
    }
    let mut lse = log_sum_exp_fast(&z);
    let mut alt = vec![T::zero(); v];
    let phi = |h: &[bool], lse: f64| lse + h.iter().zip(model.hidden_bias).filter(|(&on, _)| on).map(|(_, &a)| a.f64()).sum::<f64>();
    let mut current = phi(&h, lse);
    let (mut log_w, mut out, mut next) = (0.0f64, Vec::with_capacity(lengths.len()), 0);
    while next < lengths.len() && lengths[next] == 0 {
        out.push(0.0); // Z_0 = 2^F exactly
        next += 1;
    }
    for k in 1..grid.len() {
        if next == lengths.len() {
            break;
        }
        let t = grid[k];
        log_w += (t - grid[k - 1]) * current;
        if next < lengths.len() && t == lengths[next] as f64 {
            out.push(log_w);
            next += 1;
        }
        for ((hj, wj), aj) in h.iter_mut().zip(model.weight.chunks_exact(v)).zip(model.hidden_bias) {
            let sign = if *hj { -T::one() } else { T::one() };
            alt.iter_mut().zip(&z).zip(wj).for_each(|((a, &z), &w)| *a = z + sign * w);
            let lse_alt = log_sum_exp_fast(&alt);
            let (lse_on, lse_off) = if *hj { (lse, lse_alt) } else { (lse_alt, lse) };
            let p_on = sigmoid(t * (aj.f64() + lse_on - lse_off));
            let on = f64::uniform(rng) < p_on;
            if on != *hj {
                *hj = on;
                std::mem::swap(&mut z, &mut alt);
                lse = lse_alt;
            }
        }
        current = phi(&h, lse);
    }
    out
}

/// Writable parameters of a Replicated Softmax model and their momentum buffers (same shapes).
pub struct RsmState<'a, T> {
    pub weight: &'a mut [T],
    pub visible_bias: &'a mut [T],
    pub hidden_bias: &'a mut [T],
    pub weight_velocity: &'a mut [T],
    pub visible_velocity: &'a mut [T],
    pub hidden_velocity: &'a mut [T],
    pub n_words: usize,
    pub n_hidden: usize,
}

impl<'a, T: Real> RsmState<'a, T> {
    pub fn rsm(&self) -> Rsm<'_, T> {
        Rsm {
            weight: self.weight,
            visible_bias: self.visible_bias,
            hidden_bias: self.hidden_bias,
            n_words: self.n_words,
            n_hidden: self.n_hidden,
        }
    }
}

/// One CD-`settings.k` step on the documents `rows` of `docs`, updating the parameters in place.
/// Returns the reconstructed documents' counts (len(rows), n_words), a scratch buffer.
pub fn cd_step<T: Real>(
    state: &mut RsmState<'_, T>,
    docs: Docs<'_, T>,
    rows: &[usize],
    settings: &CdSettings,
    seed: u64,
    step: u64,
) -> Result<Vec<T>> {
    settings.validate()?;
    state.rsm().check()?;
    let (v, f, b) = (state.n_words, state.n_hidden, rows.len());
    for (name, got, want) in [
        ("components_velocity", state.weight_velocity.len(), v * f),
        ("intercept_visible_velocity", state.visible_velocity.len(), v),
        ("intercept_hidden_velocity", state.hidden_velocity.len(), f),
    ] {
        if got != want {
            return Err(KernelError::shape(name, format!("{want} values"), format!("{got} values")));
        }
    }
    if b == 0 {
        return Err(KernelError::value("rows", "at least one document in the minibatch", 0));
    }
    docs.check_rows("x", rows, v)?;

    // X = [V_data ; V_model] (2B, V) and S = [P(V_data) ; -P(V_model)] (2B, F): then the weight
    // gradient is S^T X / B, one product.
    let mut x = scratch::take(2 * b * v);
    x.iter_mut().for_each(|e| *e = T::zero());
    let mut s = scratch::take(2 * b * f); // every element written below
    let lengths: Vec<usize> = rows.iter().map(|&d| docs.length(d)).collect();
    {
        let model = state.rsm();
        let wt = model.weight_transposed();
        let (x_data, x_model) = x.split_at_mut(b * v);
        let (s_data, s_model) = s.split_at_mut(b * f);
        x_data
            .par_chunks_mut(v)
            .zip(x_model.par_chunks_mut(v))
            .zip(s_data.par_chunks_mut(f).zip(s_model.par_chunks_mut(f)))
            .enumerate()
            .for_each_init(
                || Chain::new(v, f),
                |chain, (n, ((vd, vm), (pd, pm)))| {
                    let (words, counts) = docs.of(rows[n]);
                    let length = lengths[n];
                    let mut rng = stream(seed, step, purpose::DOCUMENT, n as u64);
                    for (&w, &c) in words.iter().zip(counts) {
                        vd[w as usize] += c;
                    }
                    model.hidden_input(&wt, words.iter().map(|&w| w as usize).zip(counts.iter().copied()), length, &mut chain.x);
                    pd.iter_mut().zip(&chain.x).for_each(|(p, &x)| *p = sigmoid(x));
                    sample_hidden(&chain.x, T::one(), &mut chain.h, &mut rng);
                    for t in 1..=settings.k {
                        let h = std::mem::take(&mut chain.h);
                        model.visible_probs(&h, &mut chain.probs);
                        chain.h = h;
                        chain.draw_words(length, &mut rng);
                        let counts = &chain.counts;
                        model.hidden_input(&wt, chain.touched.iter().map(|&w| (w, counts[w])), length, &mut chain.x);
                        if t < settings.k {
                            sample_hidden(&chain.x, T::one(), &mut chain.h, &mut rng);
                        }
                    }
                    for &w in &chain.touched {
                        vm[w] = chain.counts[w];
                    }
                    pm.iter_mut().zip(&chain.x).for_each(|(p, &x)| *p = -sigmoid(x));
                },
            );
        scratch::recycle(wt);
    }

    let (lr, mu, wd, inv_b) =
        (T::of(settings.learning_rate), T::of(settings.momentum), T::of(settings.weight_decay), T::of(1.0 / b as f64));
    // Biases: db = 1/B sum_n (v_n - v~_n), da = 1/B sum_n D_n (P(v_n) - P(v~_n)).
    let mut sums = vec![T::zero(); 2 * v];
    column_sums(&x[..b * v], b, v, &mut sums[..v]);
    column_sums(&x[b * v..], b, v, &mut sums[v..]);
    let grad_b: Vec<T> = (0..v).map(|k| sums[k] - sums[v + k]).collect();
    // The hidden biases act through D a, so their statistics, and the curvature along them, grow with
    // the documents' lengths: their step is divided by the minibatch's mean length (a step per word), or
    // on long documents they run away and switch the hidden units off before W has learnt anything.
    let inv_mean_length = T::of(b as f64 / lengths.iter().sum::<usize>().max(1) as f64);
    let mut grad_a = vec![T::zero(); f];
    for (n, &length) in lengths.iter().enumerate() {
        let d = T::of(length as f64);
        for j in 0..f {
            grad_a[j] += d * (s[n * f + j] + s[(b + n) * f + j]);
        }
    }
    // vel = momentum * vel + lr/B S^T X, then vel -= lr wd W and W += vel.
    gemm(lr * inv_b, View::new(&s, 2 * b, f).t(), View::new(&x, 2 * b, v), mu, ViewMut::new(state.weight_velocity, f, v), Threads::Pool);
    scratch::recycle(s);
    let zero_grad = vec![T::zero(); v.min(1 << 12)];
    let weights_finite = state
        .weight
        .par_chunks_mut(zero_grad.len())
        .zip(state.weight_velocity.par_chunks_mut(zero_grad.len()))
        .map(|(w, vel)| {
            // The velocity already holds momentum * vel + lr * grad: only the decay is left to add.
            momentum_step(w, vel, &zero_grad[..w.len()], T::zero(), lr, T::one(), wd)
        })
        .reduce(|| true, |a, b| a && b);
    let biases_finite = momentum_step(state.visible_bias, state.visible_velocity, &grad_b, inv_b, lr, mu, T::zero())
        & momentum_step(state.hidden_bias, state.hidden_velocity, &grad_a, inv_b * inv_mean_length, lr, mu, T::zero());
    if !(weights_finite && biases_finite) {
        scratch::recycle(x);
        return Err(KernelError::NonFinite(
            "the ReplicatedSoftmax parameters became non-finite: training diverged (try a smaller learning_rate)".to_string(),
        ));
    }
    // The reconstructions: the second half of X.
    x.drain(..b * v);
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threads::with_threads;

    struct Owned {
        w: Vec<f64>,
        b: Vec<f64>,
        a: Vec<f64>,
        v: usize,
        f: usize,
    }

    impl Owned {
        fn new(v: usize, f: usize, scale: f64, salt: u64) -> Self {
            let r = |n: usize, k: u64| -> Vec<f64> {
                (0..n as u64)
                    .map(|i| ((((i + salt * 7919 + k * 104729) * 2654435761) % 10007) as f64 / 10007.0 - 0.5) * 2.0 * scale)
                    .collect()
            };
            Owned { w: r(f * v, 1), b: r(v, 2), a: r(f, 3).iter().map(|x| x * 0.2).collect(), v, f }
        }

        fn rsm(&self) -> Rsm<'_, f64> {
            Rsm { weight: &self.w, visible_bias: &self.b, hidden_bias: &self.a, n_words: self.v, n_hidden: self.f }
        }

        /// D a_j + W_j . v
        fn pre(&self, counts: &[f64]) -> Vec<f64> {
            let d: f64 = counts.iter().sum();
            (0..self.f).map(|j| d * self.a[j] + (0..self.v).map(|k| self.w[j * self.v + k] * counts[k]).sum::<f64>()).collect()
        }

        fn log_p_star(&self, counts: &[f64]) -> f64 {
            let bv: f64 = counts.iter().zip(&self.b).map(|(c, b)| c * b).sum();
            bv + self.pre(counts).iter().map(|&x| softplus(x)).sum::<f64>()
        }
    }

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// Every count vector of `length` words over `v` words.
    fn count_vectors(v: usize, length: usize) -> Vec<Vec<f64>> {
        if v == 1 {
            return vec![vec![length as f64]];
        }
        (0..=length)
            .flat_map(|c| {
                count_vectors(v - 1, length - c).into_iter().map(move |mut rest| {
                    rest.insert(0, c as f64);
                    rest
                })
            })
            .collect()
    }

    /// log of the number of word sequences with these counts: D! / prod_k v_k!.
    fn log_multinomial(counts: &[f64]) -> f64 {
        let lf = |n: f64| (1..=n as u64).map(|i| (i as f64).ln()).sum::<f64>();
        lf(counts.iter().sum()) - counts.iter().map(|&c| lf(c)).sum::<f64>()
    }

    fn csr(rows: &[Vec<f64>]) -> (Vec<i64>, Vec<i64>, Vec<f64>) {
        let (mut ip, mut words, mut counts) = (vec![0i64], vec![], vec![]);
        for row in rows {
            for (k, &c) in row.iter().enumerate() {
                if c != 0.0 {
                    words.push(k as i64);
                    counts.push(c);
                }
            }
            ip.push(words.len() as i64);
        }
        (ip, words, counts)
    }

    #[test]
    fn conditionals_scale_the_hidden_bias_by_the_length() {
        let m = Owned::new(7, 4, 0.7, 1);
        let rows = vec![vec![1.0, 0.0, 3.0, 0.0, 0.0, 2.0, 0.0], vec![0.0; 7], vec![0.0, 0.0, 0.0, 0.0, 9.0, 0.0, 1.0]];
        let (ip, words, counts) = csr(&rows);
        let docs = Docs { indptr: &ip, words: &words, counts: &counts };
        docs.check("x", 7).unwrap();
        let mut h = vec![0.0; 3 * 4];
        let mut lp = vec![0.0; 3];
        with_threads(2, || {
            m.rsm().hidden(docs, &mut h);
            m.rsm().log_unnormalized(docs, &mut lp);
        });
        for (n, row) in rows.iter().enumerate() {
            let pre = m.pre(row);
            for j in 0..4 {
                assert!((h[n * 4 + j] - sig(pre[j])).abs() < 1e-12);
            }
            assert!((lp[n] - m.log_p_star(row)).abs() < 1e-10);
        }
        // An empty document: p(h | v) = sigmoid(0), log p* = F log 2.
        assert!(h[4..8].iter().all(|&p| p == 0.5));
        assert!((lp[1] - 4.0 * std::f64::consts::LN_2).abs() < 1e-12);
    }

    #[test]
    fn exact_log_partition_matches_a_sum_over_word_sequences() {
        for (v, f, length) in [(3, 3, 3), (4, 2, 5), (2, 5, 1), (3, 2, 0)] {
            let m = Owned::new(v, f, 0.9, v as u64);
            // Z_D = sum over count vectors of (number of sequences) * p*(v).
            let terms: Vec<f64> = count_vectors(v, length).iter().map(|c| log_multinomial(c) + m.log_p_star(c)).collect();
            let want = log_sum_exp(&terms);
            let got = m.rsm().log_partition_exact(&[length, length + 1], 20).unwrap();
            assert!((got[0] - want).abs() < 1e-10, "V={v} F={f} D={length}: {got:?} vs {want}");
        }
        assert!(Owned::new(3, 25, 0.1, 1).rsm().log_partition_exact(&[3], 20).is_err());
    }

    #[test]
    fn ais_agrees_with_the_exact_log_partition_for_short_and_long_documents() {
        // Weights of a topic model's scale: the sums over h are dominated by few states for long
        // documents, where annealing must find them.
        let m = Owned::new(60, 10, 1.0, 3);
        let lengths = [0usize, 1, 7, 30, 120, 600];
        let log_w = with_threads(2, || m.rsm().ais_log_weights(&lengths, 50, 32, 9).unwrap());
        let exact = m.rsm().log_partition_exact(&lengths, 20).unwrap();
        for (l, &length) in lengths.iter().enumerate() {
            let w = &log_w[l * 32..(l + 1) * 32];
            let est = 10.0 * std::f64::consts::LN_2 + log_sum_exp(w) - (32f64).ln();
            assert!((est - exact[l]).abs() < 0.5, "D={length}: AIS {est} vs exact {}", exact[l]);
        }
        assert_eq!(log_w, with_threads(1, || m.rsm().ais_log_weights(&lengths, 50, 32, 9).unwrap()), "thread-count independent");
        // A length's estimate does not depend on the other lengths asked for.
        let alone = m.rsm().ais_log_weights(&[30], 50, 32, 9).unwrap();
        assert_eq!(&alone[..], &log_w[3 * 32..4 * 32]);
    }

    #[test]
    fn length_grid_is_a_prefix_stable_grid_through_every_length() {
        let long = length_grid(200, 40);
        let short = length_grid(20, 40);
        assert_eq!(&long[..short.len()], &short[..]);
        assert!(long.windows(2).all(|w| w[1] > w[0]));
        for n in 0..=200usize {
            assert!(long.contains(&(n as f64)), "{n}");
        }
        assert_eq!(length_grid(0, 40), vec![0.0]);
    }

    #[test]
    fn samples_follow_the_exact_distribution() {
        // V = 3 words, D = 3: 10 count vectors, p(v) = (number of sequences) p*(v) / Z_D.
        let m = Owned::new(3, 2, 1.5, 4);
        let length = 3;
        let vectors = count_vectors(3, length);
        let log_z = m.rsm().log_partition_exact(&[length], 20).unwrap()[0];
        let p: Vec<f64> = vectors.iter().map(|c| (log_multinomial(c) + m.log_p_star(c) - log_z).exp()).collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-10);
        let n = 4000;
        let samples = with_threads(2, || m.rsm().sample(n, length, 20, 17));
        let mut counts = vec![0.0; vectors.len()];
        for row in samples.chunks_exact(3) {
            assert_eq!(row.iter().sum::<f64>(), length as f64);
            counts[vectors.iter().position(|c| c.as_slice() == row).unwrap()] += 1.0;
        }
        let chi2 = |q: &[f64]| (0..q.len()).map(|s| (counts[s] - n as f64 * q[s]).powi(2) / (n as f64 * q[s])).sum::<f64>();
        // 9 degrees of freedom: P(chi2 > 27.88) = 0.001.
        assert!(chi2(&p) < 27.88, "chi-square {}: counts {counts:?}, p {p:?}", chi2(&p));
        // The same test rejects the model without its hidden units (words independent, softmax(b)).
        let z: f64 = m.b.iter().map(|x| x.exp()).sum();
        let q: Vec<f64> = vectors
            .iter()
            .map(|c| (log_multinomial(c) + c.iter().zip(&m.b).map(|(c, b)| c * b).sum::<f64>() - length as f64 * z.ln()).exp())
            .collect();
        assert!(chi2(&q) > 27.88, "the test tells the model from its hidden-less base");
        assert_eq!(samples, with_threads(1, || m.rsm().sample(n, length, 20, 17)));
    }

    #[test]
    fn cd_statistics_match_float64_oracle() {
        for k in [1, 2] {
            let m = Owned::new(6, 3, 0.6, 5);
            let rows = vec![vec![2.0, 0.0, 1.0, 0.0, 0.0, 4.0], vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0], vec![0.0, 0.0, 5.0, 3.0, 1.0, 1.0]];
            let (ip, words, counts) = csr(&rows);
            let docs = Docs { indptr: &ip, words: &words, counts: &counts };
            let batch = [2usize, 0, 1];
            let (mut w, mut b, mut a) = (m.w.clone(), m.b.clone(), m.a.clone());
            let (mut vw, mut vb, mut va) = (vec![0.0; w.len()], vec![0.0; 6], vec![0.0; 3]);
            let mut state = RsmState {
                weight: &mut w,
                visible_bias: &mut b,
                hidden_bias: &mut a,
                weight_velocity: &mut vw,
                visible_velocity: &mut vb,
                hidden_velocity: &mut va,
                n_words: 6,
                n_hidden: 3,
            };
            let settings = CdSettings { k, learning_rate: 1.0, momentum: 0.0, weight_decay: 0.0 };
            let recon = cd_step(&mut state, docs, &batch, &settings, 3, 1).unwrap();
            let (mut gw, mut gb, mut ga) = (vec![0.0; 18], vec![0.0; 6], vec![0.0; 3]);
            // The hidden biases' step is divided by the mean document length of the minibatch.
            let mean_length = batch.iter().map(|&d| rows[d].iter().sum::<f64>()).sum::<f64>() / 3.0;
            for (n, &d) in batch.iter().enumerate() {
                let (vd, vm) = (&rows[d], &recon[n * 6..(n + 1) * 6]);
                let length: f64 = vd.iter().sum();
                assert_eq!(vm.iter().sum::<f64>(), length, "a reconstruction keeps the document's length");
                let (pd, pm): (Vec<f64>, Vec<f64>) =
                    (m.pre(vd).iter().map(|&x| sig(x)).collect(), m.pre(vm).iter().map(|&x| sig(x)).collect());
                for j in 0..3 {
                    for i in 0..6 {
                        gw[j * 6 + i] += (pd[j] * vd[i] - pm[j] * vm[i]) / 3.0;
                    }
                    ga[j] += length * (pd[j] - pm[j]) / 3.0 / mean_length;
                }
                for i in 0..6 {
                    gb[i] += (vd[i] - vm[i]) / 3.0;
                }
            }
            for i in 0..18 {
                assert!((w[i] - m.w[i] - gw[i]).abs() < 1e-12, "W[{i}]");
            }
            for i in 0..6 {
                assert!((b[i] - m.b[i] - gb[i]).abs() < 1e-12, "b[{i}]");
            }
            for j in 0..3 {
                assert!((a[j] - m.a[j] - ga[j]).abs() < 1e-12, "a[{j}]");
            }
        }
    }

    #[test]
    fn cd_step_is_thread_count_independent_and_decays_weights() {
        let (v, f, n) = (50usize, 8usize, 40usize);
        let rows: Vec<Vec<f64>> =
            (0..n).map(|d| (0..v).map(|k| if (d * 13 + k * 7) % 9 < 2 { ((d + k) % 4) as f64 } else { 0.0 }).collect()).collect();
        let (ip, words, counts) = csr(&rows);
        let docs = Docs { indptr: &ip, words: &words, counts: &counts };
        let run = |threads: usize, wd: f64| {
            let m = Owned::new(v, f, 0.05, 6);
            let (mut w, mut b, mut a) = (m.w.clone(), m.b.clone(), m.a.clone());
            let (mut vw, mut vb, mut va) = (vec![0.0; w.len()], vec![0.0; v], vec![0.0; f]);
            let mut state = RsmState {
                weight: &mut w,
                visible_bias: &mut b,
                hidden_bias: &mut a,
                weight_velocity: &mut vw,
                visible_velocity: &mut vb,
                hidden_velocity: &mut va,
                n_words: v,
                n_hidden: f,
            };
            let settings = CdSettings { k: 1, learning_rate: 0.01, momentum: 0.5, weight_decay: wd };
            with_threads(threads, || {
                for step in 0..10u64 {
                    let batch: Vec<usize> = (0..10).map(|i| (step as usize * 10 + i * 3) % n).collect();
                    cd_step(&mut state, docs, &batch, &settings, 8, step).unwrap();
                }
            });
            (w, b, a)
        };
        let one = run(1, 1e-3);
        assert!(run(2, 1e-3) == one && run(3, 1e-3) == one, "thread counts give different models");
        let norm = |w: &[f64]| w.iter().map(|x| x * x).sum::<f64>();
        assert!(norm(&run(1, 1.0).0) < norm(&one.0), "weight decay shrinks the weights");
    }

    #[test]
    fn bad_counts_are_refused() {
        let (ip, words) = (vec![0i64, 2], vec![0i64, 1]);
        for bad in [vec![1.0, -1.0], vec![1.5, 1.0], vec![f64::NAN, 1.0]] {
            let docs = Docs { indptr: &ip, words: &words, counts: &bad };
            assert!(docs.check("x", 2).is_err(), "{bad:?}");
            assert!(docs.check_rows("x", &[0], 2).is_err());
        }
        let docs = Docs { indptr: &ip, words: &words, counts: &[1.0, 2.0] };
        assert!(docs.check("x", 1).is_err(), "word out of range");
        assert!(docs.check_rows("x", &[1], 2).is_err(), "row out of range");
    }
}
