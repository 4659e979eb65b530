//! The collaborative-filtering RBM of Salakhutdinov, Mnih & Hinton (ICML 2007).
//!
//! Every user is an RBM of their own whose visible layer holds one K-way softmax group per item they
//! rated (over the K rating values) and nothing for the other items; the parameters are shared by all
//! users. Items `i`, rating values `k < K`, hidden units `j < F`:
//!
//! - `W` (n_items, K, F), visible biases `b` (n_items, K), hidden biases `c` (F); the conditional RBM
//!   adds `D` (n_items, F), through which the set `r` of items a user rated (or will rate) shifts the
//!   hidden units.
//! - Optionally, weights `S` (K, F) shared by all items: item i's weights are then `W_i + S`, so that
//!   what a rating value says about the hidden units (and back) is learnt from every item's ratings,
//!   and an item with few ratings starts from it rather than from nothing.
//! - `p(h_j = 1 | V) = sigmoid(c_j + sum_{(i, k) rated} (W_ikj + S_kj) + sum_{i in r} D_ij)`.
//! - `p(v_i = k | h) = softmax_k(b_ik + sum_j h_j (W_ikj + S_kj))`, for the rated items only.
//!
//! CD-T on a minibatch of B users (`V~` the ratings after T Gibbs steps, hidden probabilities `P`):
//!
//! - `dW_ikj = 1/B sum_u [1(v_ui = k) P_j(V_u) - 1(v~_ui = k) P_j(V~_u)]`
//! - `db_ik  = 1/B sum_u [1(v_ui = k) - 1(v~_ui = k)]`
//! - `dc_j   = 1/B sum_u [P_j(V_u) - P_j(V~_u)]`
//! - `dD_ij  = 1/B sum_{u: i in r_u} [P_j(V_u) - P_j(V~_u)]` (in training, `r_u` = the items u rated)
//! - `dS_kj  = B / n_ratings sum_i dW_ikj`: S sums every rated item's statistics, so they are averaged
//!   over the minibatch's ratings rather than its users, and S has a step size of its own
//!
//! and `vel = momentum * vel + lr * (grad - decay * param)`, `param += vel` (no decay on biases).
//! The decay of W and D is spread in one of two ways ([`DecayPer`]):
//!
//! - per step: `decay = weight_decay` for every item at every step, whether the minibatch rated it or
//!   not; an item rated by few users then decays far more, relative to its gradient, than a popular one;
//! - per rating: the L2 penalty `weight_decay / 2 |W_i|^2` (and `|D_i|^2`) is counted once per rating
//!   of item i, as the likelihood is, so `decay = weight_decay * n_i / B` with `n_i` the minibatch's
//!   ratings of item i, and 0 in the steps where nobody in the minibatch rated it (the penalty of
//!   alternating least squares with weighted lambda, ALS-WR). S, whose statistics are averaged over
//!   the minibatch's ratings, decays by `weight_decay` either way.
//!
//! Only the rows of the items rated in the minibatch are read, updated, decayed and moved by
//! momentum, so a step costs time proportional to its users' ratings, never to the number of items.
//!
//! Parallel over users; each user's draws come from the stream keyed by (seed, step, its position in
//! the minibatch), and each item's gradient sums its users in minibatch order, so results do not
//! depend on the number of threads.

use multiversion::multiversion;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

use crate::activations::sigmoid;
use crate::error::{KernelError, Result};
use crate::rbm::CdSettings;
use crate::real::Real;
use crate::rng::stream;
use crate::softmax::{axpy, dot, momentum_step, sample_category, softmax_in_place};

/// Random-stream purposes of this module (beside those of `rng::purpose`).
pub mod purpose {
    /// The draws of one user in a CD step or a Gibbs chain.
    pub const USER_CHAIN: u64 = 64;
}

/// Which items each user rated, in compressed sparse rows: user u's items are
/// `items[indptr[u]..indptr[u + 1]]`.
#[derive(Clone, Copy, Debug)]
pub struct Pattern<'a> {
    pub indptr: &'a [i64],
    pub items: &'a [i64],
}

impl<'a> Pattern<'a> {
    pub fn n_users(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// The range of entries of user `u` (after [`Pattern::check`]).
    #[inline]
    fn range(&self, u: usize) -> std::ops::Range<usize> {
        self.indptr[u] as usize..self.indptr[u + 1] as usize
    }

    #[inline]
    fn items_of(&self, u: usize) -> &'a [i64] {
        &self.items[self.range(u)]
    }

    /// A valid CSR structure over `n_items` columns: `indptr` starts at 0, never decreases and ends at
    /// `items.len()`; every item is in `[0, n_items)`.
    pub fn check(&self, name: &str, n_items: usize) -> Result<()> {
        let ip = self.indptr;
        if ip.is_empty() || ip[0] != 0 || *ip.last().unwrap() != self.items.len() as i64 {
            return Err(KernelError::shape(
                &format!("{name}_indptr"),
                format!("n_users + 1 offsets from 0 to {}", self.items.len()),
                format!("{} offsets from {:?} to {:?}", ip.len(), ip.first(), ip.last()),
            ));
        }
        if let Some(w) = ip.windows(2).find(|w| w[1] < w[0]) {
            return Err(KernelError::value(&format!("{name}_indptr"), "non-decreasing offsets", format!("{} after {}", w[1], w[0])));
        }
        check_range(&format!("{name}_indices"), self.items, n_items)
    }
}

/// Users' ratings: a [`Pattern`] and, for each stored entry, the index `k < K` of its rating value.
#[derive(Clone, Copy, Debug)]
pub struct Ratings<'a> {
    pub pattern: Pattern<'a>,
    pub codes: &'a [i64],
}

impl<'a> Ratings<'a> {
    pub fn check(&self, name: &str, n_items: usize, n_values: usize) -> Result<()> {
        self.pattern.check(name, n_items)?;
        if self.codes.len() != self.pattern.items.len() {
            return Err(KernelError::shape(
                &format!("{name}_codes"),
                format!("one per rating ({})", self.pattern.items.len()),
                self.codes.len(),
            ));
        }
        check_range(&format!("{name}_codes"), self.codes, n_values)
    }

    /// Checks only the rows of `users` (a training step reads no other rows of the data set).
    pub fn check_users(&self, name: &str, users: &[usize], n_items: usize, n_values: usize) -> Result<()> {
        let (ip, n) = (self.pattern.indptr, self.pattern.items.len());
        if self.codes.len() != n {
            return Err(KernelError::shape(&format!("{name}_codes"), format!("one per rating ({n})"), self.codes.len()));
        }
        for &u in users {
            if u + 1 >= ip.len() {
                return Err(KernelError::Index { name: "users".into(), index: u as i64, len: ip.len().saturating_sub(1) });
            }
            let (lo, hi) = (ip[u], ip[u + 1]);
            if lo < 0 || hi < lo || hi as usize > n {
                return Err(KernelError::value(
                    &format!("{name}_indptr"),
                    format!("offsets within [0, {n}] that do not decrease"),
                    format!("{lo}..{hi} for user {u}"),
                ));
            }
            let range = lo as usize..hi as usize;
            check_range(&format!("{name}_indices"), &self.pattern.items[range.clone()], n_items)?;
            check_range(&format!("{name}_codes"), &self.codes[range], n_values)?;
        }
        Ok(())
    }

    #[inline]
    fn of(&self, u: usize) -> (&'a [i64], &'a [i64]) {
        let r = self.pattern.range(u);
        (&self.pattern.items[r.clone()], &self.codes[r])
    }
}

fn check_range(name: &str, values: &[i64], upper: usize) -> Result<()> {
    match values.iter().find(|&&v| v < 0 || v as u64 >= upper as u64) {
        Some(&v) => Err(KernelError::value(name, format!("values in [0, {upper})"), v)),
        None => Ok(()),
    }
}

/// Read-only parameters of a collaborative-filtering RBM.
#[derive(Clone, Copy, Debug)]
pub struct Crbm<'a, T> {
    /// W, (n_items, n_values, n_hidden)
    pub weight: &'a [T],
    /// b, (n_items, n_values)
    pub visible_bias: &'a [T],
    /// c, (n_hidden,)
    pub hidden_bias: &'a [T],
    /// D, (n_items, n_hidden), for the conditional RBM
    pub conditional: Option<&'a [T]>,
    /// S, (n_values, n_hidden), weights shared by all items
    pub shared: Option<&'a [T]>,
    pub n_items: usize,
    pub n_values: usize,
    pub n_hidden: usize,
}

impl<'a, T: Real> Crbm<'a, T> {
    pub fn check(&self) -> Result<()> {
        let (i, k, f) = (self.n_items, self.n_values, self.n_hidden);
        if i == 0 || k == 0 || f == 0 {
            return Err(KernelError::shape("components", "at least one item, rating value and hidden unit", format!("{i}x{k}x{f}")));
        }
        let expect = |name: &str, len: usize, want: usize, shape: String| {
            if len != want {
                Err(KernelError::shape(name, shape, format!("{len} values")))
            } else {
                Ok(())
            }
        };
        expect("components", self.weight.len(), i * k * f, format!("{i}x{k}x{f}"))?;
        expect("intercept_visible", self.visible_bias.len(), i * k, format!("{i}x{k}"))?;
        expect("intercept_hidden", self.hidden_bias.len(), f, format!("length {f}"))?;
        if let Some(d) = self.conditional {
            expect("conditional_weights", d.len(), i * f, format!("{i}x{f}"))?;
        }
        if let Some(s) = self.shared {
            expect("shared_components", s.len(), k * f, format!("{k}x{f}"))?;
        }
        Ok(())
    }

    /// W[i, k, :]
    #[inline(always)]
    fn w(&self, item: usize, k: usize) -> &'a [T] {
        let f = self.n_hidden;
        let at = (item * self.n_values + k) * f;
        &self.weight[at..at + f]
    }

    /// S[k, :] (empty without shared weights)
    #[inline(always)]
    fn s(&self, k: usize) -> &'a [T] {
        let f = self.n_hidden;
        self.shared.map_or(&[], |s| &s[k * f..(k + 1) * f])
    }

    /// `out = c + sum_{(i, k) rated} (W[i, k, :] + S[k, :]) + sum_{i in which} D[i, :]`: hidden
    /// pre-activations.
    #[inline(always)]
    fn hidden_input(&self, items: &[i64], codes: &[i64], which: &[i64], out: &mut [T]) {
        out.copy_from_slice(self.hidden_bias);
        for (&i, &k) in items.iter().zip(codes) {
            axpy(T::one(), self.w(i as usize, k as usize), out);
            axpy(T::one(), self.s(k as usize), out);
        }
        self.add_conditional(which, out);
    }

    /// `out[k] = S[k, :] . h` (zeros without shared weights): the shared part of every item's logits.
    #[inline(always)]
    fn shared_scores(&self, h: &[T], out: &mut [T]) {
        for (k, o) in out.iter_mut().enumerate() {
            *o = dot(self.s(k), h);
        }
    }

    /// `out += sum_{i in which} D[i, :]` (nothing for the unconditional RBM).
    #[inline(always)]
    fn add_conditional(&self, which: &[i64], out: &mut [T]) {
        if let Some(d) = self.conditional {
            let f = self.n_hidden;
            for &i in which {
                axpy(T::one(), &d[i as usize * f..(i as usize + 1) * f], out);
            }
        }
    }

    /// `probs = softmax_k(b[i, k] + W[i, k, :] . h + shared[k])` (K values) for one item, given
    /// `shared` from [`Crbm::shared_scores`].
    #[inline(always)]
    fn visible_probs(&self, h: &[T], shared: &[T], item: usize, probs: &mut [T]) {
        let kk = self.n_values;
        for (k, p) in probs.iter_mut().enumerate() {
            *p = self.visible_bias[item * kk + k] + dot(self.w(item, k), h) + shared[k];
        }
        softmax_in_place(probs);
    }

    /// p(h = 1 | V) of every user of `data` into `out` (n_users, n_hidden); `which` gives the item sets
    /// r of the conditional RBM (by default, the rated items).
    pub fn hidden(&self, data: Ratings<'_>, which: Option<Pattern<'_>>, out: &mut [T]) {
        let f = self.n_hidden;
        out.par_chunks_mut(f).enumerate().for_each(|(u, row)| {
            let (items, codes) = data.of(u);
            hidden_row(self, items, codes, which.map_or(items, |p| p.items_of(u)), row);
        });
    }

    /// p(v_i = k | h) for every entry of `pattern` (user u's hidden probabilities in row u of `h`) into
    /// `out` (nnz, n_values), rows in the pattern's order.
    pub fn visible(&self, h: &[T], pattern: Pattern<'_>, out: &mut [T]) {
        let (f, kk) = (self.n_hidden, self.n_values);
        let pieces = split_by_offsets(out, pattern.indptr, kk);
        pieces.into_par_iter().enumerate().for_each(|(u, piece)| visible_rows(self, &h[u * f..(u + 1) * f], pattern.items_of(u), piece));
    }

    /// `n_steps` of Gibbs sampling V -> h -> V over each user's rated items, starting from their ratings;
    /// returns the last ratings (rating-value indices, in the data's order). User u's draws come from
    /// the stream (seed, 0, u).
    pub fn gibbs(&self, data: Ratings<'_>, which: Option<Pattern<'_>>, n_steps: usize, seed: u64) -> Vec<i64> {
        let mut codes = data.codes.to_vec();
        let pieces = split_by_offsets(&mut codes, data.pattern.indptr, 1);
        pieces.into_par_iter().enumerate().for_each_init(
            || UserScratch::new(self.n_hidden, self.n_values),
            |scratch, (u, state)| {
                let items = data.pattern.items_of(u);
                let mut rng = stream(seed, 0, purpose::USER_CHAIN, u as u64);
                gibbs_user(self, items, which.map_or(items, |p| p.items_of(u)), state, n_steps, scratch, &mut rng);
            },
        );
        codes
    }

    /// Draws every item's rating from p(v_i | h) into `codes`.
    #[inline(always)]
    fn resample<R: rand::Rng + ?Sized>(&self, items: &[i64], h: &[T], codes: &mut [i64], scratch: &mut UserScratch<T>, rng: &mut R) {
        self.shared_scores(h, &mut scratch.shared);
        for (&i, code) in items.iter().zip(codes.iter_mut()) {
            self.visible_probs(h, &scratch.shared, i as usize, &mut scratch.probs);
            *code = sample_category(&scratch.probs, rng) as i64;
        }
    }
}

/// p(h = 1 | V) of one user into `row`. (Compiled for AVX2 / AVX-512 too, with everything it inlines.)
#[multiversion(targets = "simd")]
fn hidden_row<T: Real>(model: &Crbm<'_, T>, items: &[i64], codes: &[i64], which: &[i64], row: &mut [T]) {
    model.hidden_input(items, codes, which, row);
    row.iter_mut().for_each(|x| *x = sigmoid(*x));
}

/// p(v_i = k | h) of the items `items` of one user into `out` (len(items), K).
#[multiversion(targets = "simd")]
fn visible_rows<T: Real>(model: &Crbm<'_, T>, h: &[T], items: &[i64], out: &mut [T]) {
    let mut shared = vec![T::zero(); model.n_values];
    model.shared_scores(h, &mut shared);
    for (probs, &i) in out.chunks_exact_mut(model.n_values).zip(items) {
        model.visible_probs(h, &shared, i as usize, probs);
    }
}

/// `n_steps` of Gibbs sampling of one user's ratings `codes` (in place).
#[multiversion(targets = "simd")]
fn gibbs_user<T: Real>(
    model: &Crbm<'_, T>,
    items: &[i64],
    which: &[i64],
    codes: &mut [i64],
    n_steps: usize,
    scratch: &mut UserScratch<T>,
    rng: &mut Xoshiro256PlusPlus,
) {
    for _ in 0..n_steps {
        model.hidden_input(items, codes, which, &mut scratch.x);
        sample_hidden(&scratch.x, &mut scratch.h, rng);
        let h = std::mem::take(&mut scratch.h);
        model.resample(items, &h, codes, scratch, rng);
        scratch.h = h;
    }
}

/// One user's results of the two phases of CD-T: `h_data = P(V)`, `h_model = P(V~)` (n_hidden each)
/// and the reconstructed ratings `recon` (V~, one per rated item).
struct Phases<'a, T> {
    h_data: &'a mut [T],
    h_model: &'a mut [T],
    recon: &'a mut [i64],
}

/// The positive and negative phases of CD-`k` for the user who rated `items` with `codes` (V~ after
/// `k` Gibbs steps from a sample of h | V).
#[multiversion(targets = "simd")]
fn contrast<T: Real>(
    model: &Crbm<'_, T>,
    (items, codes): (&[i64], &[i64]),
    k: usize,
    out: Phases<'_, T>,
    scratch: &mut UserScratch<T>,
    rng: &mut Xoshiro256PlusPlus,
) {
    model.hidden_input(items, codes, items, &mut scratch.x);
    out.h_data.iter_mut().zip(&scratch.x).for_each(|(p, &x)| *p = sigmoid(x));
    sample_hidden(&scratch.x, &mut scratch.h, rng);
    for step in 1..=k {
        let h = std::mem::take(&mut scratch.h);
        model.resample(items, &h, out.recon, scratch, rng);
        scratch.h = h;
        model.hidden_input(items, out.recon, items, &mut scratch.x);
        if step < k {
            sample_hidden(&scratch.x, &mut scratch.h, rng);
        }
    }
    out.h_model.iter_mut().zip(&scratch.x).for_each(|(p, &x)| *p = sigmoid(x));
}

/// Per-thread buffers of one user's chain.
struct UserScratch<T> {
    x: Vec<T>,
    h: Vec<T>,
    probs: Vec<T>,
    shared: Vec<T>,
}

impl<T: Real> UserScratch<T> {
    fn new(n_hidden: usize, n_values: usize) -> Self {
        UserScratch {
            x: vec![T::zero(); n_hidden],
            h: vec![T::zero(); n_hidden],
            probs: vec![T::zero(); n_values],
            shared: vec![T::zero(); n_values],
        }
    }
}

/// `h_j = 1` with probability `sigmoid(x_j)`, else 0.
#[inline(always)]
fn sample_hidden<T: Real, R: rand::Rng + ?Sized>(x: &[T], h: &mut [T], rng: &mut R) {
    for (h, &x) in h.iter_mut().zip(x) {
        *h = if T::uniform(rng) < sigmoid(x) { T::one() } else { T::zero() };
    }
}

/// `data` (offsets.last() * width values) cut into the pieces `[offsets[u] * width, offsets[u + 1] * width)`.
fn split_by_offsets<'a, X>(mut data: &'a mut [X], offsets: &[i64], width: usize) -> Vec<&'a mut [X]> {
    let mut pieces = Vec::with_capacity(offsets.len().saturating_sub(1));
    for w in offsets.windows(2) {
        let (piece, rest) = std::mem::take(&mut data).split_at_mut((w[1] - w[0]) as usize * width);
        pieces.push(piece);
        data = rest;
    }
    pieces
}

/// Rows `rows` (ascending, distinct) of a row-major matrix of `width` columns, as disjoint slices.
fn rows_mut<'a, X>(mut data: &'a mut [X], width: usize, rows: &[usize]) -> Vec<&'a mut [X]> {
    let mut out = Vec::with_capacity(rows.len());
    let mut next = 0; // the first row still in `data`
    for &r in rows {
        let (_, rest) = std::mem::take(&mut data).split_at_mut((r - next) * width);
        let (row, rest) = rest.split_at_mut(width);
        out.push(row);
        data = rest;
        next = r + 1;
    }
    out
}

/// Writable parameters of a collaborative-filtering RBM and their momentum buffers (same shapes).
pub struct CrbmState<'a, T> {
    pub weight: &'a mut [T],
    pub visible_bias: &'a mut [T],
    pub hidden_bias: &'a mut [T],
    pub conditional: Option<&'a mut [T]>,
    pub weight_velocity: &'a mut [T],
    pub visible_velocity: &'a mut [T],
    pub hidden_velocity: &'a mut [T],
    pub conditional_velocity: Option<&'a mut [T]>,
    pub shared: Option<&'a mut [T]>,
    pub shared_velocity: Option<&'a mut [T]>,
    pub n_items: usize,
    pub n_values: usize,
    pub n_hidden: usize,
}

impl<'a, T: Real> CrbmState<'a, T> {
    pub fn crbm(&self) -> Crbm<'_, T> {
        Crbm {
            weight: self.weight,
            visible_bias: self.visible_bias,
            hidden_bias: self.hidden_bias,
            conditional: self.conditional.as_deref(),
            shared: self.shared.as_deref(),
            n_items: self.n_items,
            n_values: self.n_values,
            n_hidden: self.n_hidden,
        }
    }

    fn check(&self) -> Result<()> {
        self.crbm().check()?;
        let lens = [
            ("components_velocity", self.weight_velocity.len(), self.weight.len()),
            ("intercept_visible_velocity", self.visible_velocity.len(), self.visible_bias.len()),
            ("intercept_hidden_velocity", self.hidden_velocity.len(), self.hidden_bias.len()),
        ];
        for (name, got, want) in lens {
            if got != want {
                return Err(KernelError::shape(name, format!("{want} values"), format!("{got} values")));
            }
        }
        match (&self.conditional, &self.conditional_velocity) {
            (Some(d), Some(v)) if d.len() == v.len() => {}
            (None, None) => {}
            _ => {
                return Err(KernelError::shape("conditional_weights_velocity", "the shape of conditional_weights", "another shape or none"))
            }
        }
        match (&self.shared, &self.shared_velocity) {
            (Some(s), Some(v)) if s.len() == v.len() => Ok(()),
            (None, None) => Ok(()),
            _ => Err(KernelError::shape("shared_components_velocity", "the shape of shared_components", "another shape or none")),
        }
    }
}

/// How the weight decay of the items' weights (W and D) is spread over training (see the module's
/// description).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecayPer {
    /// Every item decays by `weight_decay` at every step.
    Step,
    /// Item i decays by `weight_decay * n_i / B` at a step whose B users rated it `n_i` times: an L2
    /// penalty per rating.
    Rating,
}

/// What one training step does: its CD settings, how the decay is spread, the step size of the shared
/// weights, and its random stream (the fit's seed and the step's number).
#[derive(Clone, Copy, Debug)]
pub struct CrbmStep {
    pub cd: CdSettings,
    pub decay_per: DecayPer,
    pub shared_learning_rate: f64,
    pub seed: u64,
    pub step: u64,
}

/// One CD-`how.cd.k` step on the users `users` of `data`, updating the parameters in place (the
/// shared weights, if any, with the step size `how.shared_learning_rate`). Returns the reconstructed
/// ratings of the minibatch (V~, rating-value indices), user after user in the order of `users`, each
/// user's in the data's order.
///
/// `last_update[i]` counts the steps item i's rows have seen. The step first brings the rows of the
/// minibatch's items up to `how.step` ([`catch_up`]), so every step reads exactly the parameters of
/// the dense algorithm, whose momentum and weight decay move every item at every step; then it
/// updates those rows and sets their `last_update` to `how.step + 1`.
pub fn cd_step<T: Real>(
    state: &mut CrbmState<'_, T>,
    last_update: &mut [i64],
    data: Ratings<'_>,
    users: &[usize],
    how: &CrbmStep,
) -> Result<Vec<i64>> {
    let (settings, shared_learning_rate, step) = (&how.cd, how.shared_learning_rate, how.step);
    settings.validate()?;
    if !(shared_learning_rate.is_finite() && shared_learning_rate >= 0.0) {
        return Err(KernelError::value("shared_learning_rate", "a finite number >= 0", shared_learning_rate));
    }
    state.check()?;
    if users.is_empty() {
        return Err(KernelError::value("users", "at least one user in the minibatch", 0));
    }
    check_last_update(last_update, state.n_items, step)?;
    data.check_users("x", users, state.n_items, state.n_values)?;
    let (f, kk, b) = (state.n_hidden, state.n_values, users.len());

    // The minibatch's ratings grouped by item, each item's in minibatch order.
    let mut offsets = vec![0i64; b + 1];
    for (n, &u) in users.iter().enumerate() {
        offsets[n + 1] = offsets[n] + data.pattern.range(u).len() as i64;
    }
    let n_entries = offsets[b] as usize;
    let mut entries: Vec<(usize, usize)> = Vec::with_capacity(n_entries); // (item, entry index)
    for (n, &u) in users.iter().enumerate() {
        let (items, _) = data.of(u);
        entries.extend(items.iter().enumerate().map(|(j, &i)| (i as usize, offsets[n] as usize + j)));
    }
    entries.sort_unstable();
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0;
    for e in 1..=entries.len() {
        if e == entries.len() || entries[e].0 != entries[start].0 {
            groups.push(start..e);
            start = e;
        }
    }
    let touched: Vec<usize> = groups.iter().map(|g| entries[g.start].0).collect();
    let step_scalars = Step::new(settings, how.decay_per, b);

    // The minibatch's items to the parameters of the dense algorithm at this step.
    item_rows(state, last_update, &touched).into_par_iter().for_each(|rows| rows.catch_up(step, step_scalars));

    // Positive and negative phases, user by user.
    let mut recon = vec![0i64; n_entries];
    let mut h_data = vec![T::zero(); b * f];
    let mut h_model = vec![T::zero(); b * f];
    {
        let model = state.crbm();
        let pieces = split_by_offsets(&mut recon, &offsets, 1);
        h_data.par_chunks_mut(f).zip(h_model.par_chunks_mut(f)).zip(pieces).enumerate().for_each_init(
            || UserScratch::new(f, kk),
            |scratch, (n, ((hd, hm), rec))| {
                let mut rng = stream(how.seed, how.step, purpose::USER_CHAIN, n as u64);
                contrast(&model, data.of(users[n]), settings.k, Phases { h_data: hd, h_model: hm, recon: rec }, scratch, &mut rng);
            },
        );
    }

    // Each rated item's statistics and momentum step.
    let mut entry_user = vec![0usize; n_entries];
    for n in 0..b {
        entry_user[offsets[n] as usize..offsets[n + 1] as usize].iter_mut().for_each(|x| *x = n);
    }
    let data_codes: Vec<i64> = users.iter().flat_map(|&u| data.of(u).1.iter().copied()).collect();
    let stats = Statistics { entry_user: &entry_user, data_codes: &data_codes, recon: &recon, h_data: &h_data, h_model: &h_model };
    let items_finite = groups
        .par_iter()
        .zip(item_rows(state, last_update, &touched))
        .map_init(
            || ItemScratch { gw: vec![T::zero(); kk * f], gb: vec![T::zero(); kk], gd: vec![T::zero(); f] },
            |scratch, (group, rows)| update_item(&stats, &entries[group.clone()], rows, scratch, step_scalars, step),
        )
        .reduce(|| true, |a, b| a && b);

    // Hidden biases (and shared weights), updated at every step: the users' statistics summed in
    // minibatch order.
    let Step { lr, mu, wd, inv_b, .. } = step_scalars;
    let mut gc = vec![T::zero(); f];
    for n in 0..b {
        axpy(T::one(), &h_data[n * f..(n + 1) * f], &mut gc);
        axpy(-T::one(), &h_model[n * f..(n + 1) * f], &mut gc);
    }
    let mut hidden_finite = momentum_step(state.hidden_bias, state.hidden_velocity, &gc, inv_b, lr, mu, T::zero());
    if let (Some(shared), Some(velocity)) = (state.shared.as_deref_mut(), state.shared_velocity.as_deref_mut()) {
        let mut gs = vec![T::zero(); kk * f];
        for n in 0..b {
            let (hd, hm) = (&h_data[n * f..(n + 1) * f], &h_model[n * f..(n + 1) * f]);
            for e in offsets[n] as usize..offsets[n + 1] as usize {
                let (kd, km) = (data_codes[e] as usize, recon[e] as usize);
                axpy(T::one(), hd, &mut gs[kd * f..(kd + 1) * f]);
                axpy(-T::one(), hm, &mut gs[km * f..(km + 1) * f]);
            }
        }
        // Averaged over the minibatch's ratings (not its users, as S sums every item's statistics),
        // with its own step size.
        let inv_n = T::of(1.0 / n_entries.max(1) as f64);
        hidden_finite &= momentum_step(shared, velocity, &gs, inv_n, T::of(shared_learning_rate), mu, wd);
    }
    if !(items_finite && hidden_finite) {
        return Err(KernelError::NonFinite(
            "the CollaborativeRBM parameters became non-finite: training diverged (try a smaller learning_rate)".to_string(),
        ));
    }
    Ok(recon)
}

/// Brings every item's rows up to `step` steps (momentum, and with [`DecayPer::Step`] weight decay,
/// with zero gradient for the steps an item missed), as the dense algorithm has them; `settings` and
/// `decay_per` must be those of the missed steps. Then every `last_update` is `step`.
pub fn catch_up<T: Real>(
    state: &mut CrbmState<'_, T>,
    last_update: &mut [i64],
    settings: &CdSettings,
    decay_per: DecayPer,
    step: u64,
) -> Result<()> {
    settings.validate()?;
    state.check()?;
    check_last_update(last_update, state.n_items, step)?;
    let all: Vec<usize> = (0..state.n_items).collect();
    let scalars = Step::new(settings, decay_per, 1);
    item_rows(state, last_update, &all).into_par_iter().for_each(|rows| rows.catch_up(step, scalars));
    Ok(())
}

fn check_last_update(last_update: &[i64], n_items: usize, step: u64) -> Result<()> {
    if last_update.len() != n_items {
        return Err(KernelError::shape("last_update", format!("one step count per item ({n_items})"), last_update.len()));
    }
    if let Some(&bad) = last_update.iter().find(|&&s| s < 0 || s as u64 > step) {
        return Err(KernelError::value("last_update", format!("step counts in [0, step = {step}]"), bad));
    }
    Ok(())
}

/// The rows of the items `items` (ascending, distinct) of every parameter and velocity.
fn item_rows<'s, T: Real>(state: &'s mut CrbmState<'_, T>, last_update: &'s mut [i64], items: &[usize]) -> Vec<ItemRows<'s, T>> {
    let (kk, f) = (state.n_values, state.n_hidden);
    let mut d_rows: Vec<Option<(&mut [T], &mut [T])>> = match (state.conditional.as_deref_mut(), state.conditional_velocity.as_deref_mut())
    {
        (Some(d), Some(vd)) => rows_mut(d, f, items).into_iter().zip(rows_mut(vd, f, items)).map(Some).collect(),
        _ => (0..items.len()).map(|_| None).collect(),
    };
    rows_mut(state.weight, kk * f, items)
        .into_iter()
        .zip(rows_mut(state.weight_velocity, kk * f, items))
        .zip(rows_mut(state.visible_bias, kk, items))
        .zip(rows_mut(state.visible_velocity, kk, items))
        .zip(d_rows.drain(..))
        .zip(rows_mut(last_update, 1, items))
        .map(|(((((w, vw), bias), vb), d), last)| ItemRows { w, vw, bias, vb, d, last: &mut last[0] })
        .collect()
}

/// What the items' statistics read: per minibatch entry its user (position in the minibatch), data and
/// reconstructed rating; the users' hidden probabilities.
struct Statistics<'s, T> {
    entry_user: &'s [usize],
    data_codes: &'s [i64],
    recon: &'s [i64],
    h_data: &'s [T],
    h_model: &'s [T],
}

/// One item's rows of the parameters and velocities: W and its velocity (K, F), b and its velocity
/// (K,), D with its velocity (F,) for the conditional RBM, and the item's step count.
struct ItemRows<'p, T> {
    w: &'p mut [T],
    vw: &'p mut [T],
    bias: &'p mut [T],
    vb: &'p mut [T],
    d: Option<(&'p mut [T], &'p mut [T])>,
    last: &'p mut i64,
}

impl<T: Real> ItemRows<'_, T> {
    /// The steps from `last` to `step` with zero gradient: weights with decay (per step; none per
    /// rating, as nobody rated the item in those steps), biases without.
    fn catch_up(self, step: u64, s: Step<T>) {
        let missed = step - *self.last as u64;
        if missed > 0 {
            let (lr, mu) = (s.lr.f64(), s.mu.f64());
            let wd = if s.per_rating { 0.0 } else { s.wd.f64() };
            apply_zero_gradient_steps(self.w, self.vw, zero_gradient_steps(missed, lr * wd, mu));
            apply_zero_gradient_steps(self.bias, self.vb, zero_gradient_steps(missed, 0.0, mu));
            if let Some((d, vd)) = self.d {
                apply_zero_gradient_steps(d, vd, zero_gradient_steps(missed, lr * wd, mu));
            }
        }
        *self.last = step as i64;
    }
}

/// The matrix `[[a, b], [c, d]]` of `n` steps `v <- mu v - decay w; w <- w + v` (zero gradient, with
/// `decay = lr * weight_decay`) acting on `(w, v)`: `w_n = a w + b v`, `v_n = c w + d v`.
fn zero_gradient_steps(n: u64, decay: f64, mu: f64) -> [f64; 4] {
    let mul = |x: [f64; 4], y: [f64; 4]| {
        [x[0] * y[0] + x[1] * y[2], x[0] * y[1] + x[1] * y[3], x[2] * y[0] + x[3] * y[2], x[2] * y[1] + x[3] * y[3]]
    };
    // One step: v' = mu v - decay w, w' = w + v' = (1 - decay) w + mu v.
    let (mut base, mut out, mut n) = ([1.0 - decay, mu, -decay, mu], [1.0, 0.0, 0.0, 1.0], n);
    while n > 0 {
        if n & 1 == 1 {
            out = mul(out, base);
        }
        base = mul(base, base);
        n >>= 1;
    }
    out
}

#[inline(always)]
fn apply_zero_gradient_steps<T: Real>(w: &mut [T], v: &mut [T], m: [f64; 4]) {
    let [a, b, c, d] = m.map(T::of);
    for (w, v) in w.iter_mut().zip(v.iter_mut()) {
        let (w0, v0) = (*w, *v);
        *w = a * w0 + b * v0;
        *v = c * w0 + d * v0;
    }
}

/// The gradient buffers of one item.
struct ItemScratch<T> {
    gw: Vec<T>,
    gb: Vec<T>,
    gd: Vec<T>,
}

/// The scalars of the update: 1/B, learning rate, momentum, weight decay, and whether the items'
/// decay is per rating.
#[derive(Clone, Copy)]
struct Step<T> {
    inv_b: T,
    lr: T,
    mu: T,
    wd: T,
    per_rating: bool,
}

impl<T: Real> Step<T> {
    fn new(settings: &CdSettings, decay_per: DecayPer, batch: usize) -> Self {
        Step {
            inv_b: T::of(1.0 / batch.max(1) as f64),
            lr: T::of(settings.learning_rate),
            mu: T::of(settings.momentum),
            wd: T::of(settings.weight_decay),
            per_rating: decay_per == DecayPer::Rating,
        }
    }

    /// The decay of the weights of an item rated `n_ratings` times in the minibatch.
    #[inline(always)]
    fn item_decay(&self, n_ratings: usize) -> T {
        if self.per_rating {
            self.wd * T::of(n_ratings as f64) * self.inv_b
        } else {
            self.wd
        }
    }
}

/// One item's CD statistics (its minibatch `entries`, summed in minibatch order) and momentum step;
/// whether its new parameters are finite. Its rows count `step + 1` steps afterwards.
#[multiversion(targets = "simd")]
fn update_item<T: Real>(
    stats: &Statistics<'_, T>,
    entries: &[(usize, usize)],
    rows: ItemRows<'_, T>,
    g: &mut ItemScratch<T>,
    s: Step<T>,
    step: u64,
) -> bool {
    let f = g.gd.len();
    let conditional = rows.d.is_some();
    g.gw.iter_mut().for_each(|x| *x = T::zero());
    g.gb.iter_mut().for_each(|x| *x = T::zero());
    g.gd.iter_mut().for_each(|x| *x = T::zero());
    for &(_, e) in entries {
        let n = stats.entry_user[e];
        let (hd, hm) = (&stats.h_data[n * f..(n + 1) * f], &stats.h_model[n * f..(n + 1) * f]);
        let (kd, km) = (stats.data_codes[e] as usize, stats.recon[e] as usize);
        axpy(T::one(), hd, &mut g.gw[kd * f..(kd + 1) * f]);
        axpy(-T::one(), hm, &mut g.gw[km * f..(km + 1) * f]);
        g.gb[kd] += T::one();
        g.gb[km] -= T::one();
        if conditional {
            axpy(T::one(), hd, &mut g.gd);
            axpy(-T::one(), hm, &mut g.gd);
        }
    }
    let decay = s.item_decay(entries.len());
    let mut finite = momentum_step(rows.w, rows.vw, &g.gw, s.inv_b, s.lr, s.mu, decay);
    finite &= momentum_step(rows.bias, rows.vb, &g.gb, s.inv_b, s.lr, s.mu, T::zero());
    if let Some((d, vd)) = rows.d {
        finite &= momentum_step(d, vd, &g.gd, s.inv_b, s.lr, s.mu, decay);
    }
    *rows.last = step as i64 + 1;
    finite
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threads::with_threads;

    /// A small model with deterministic pseudo-random parameters (float64).
    struct Owned {
        w: Vec<f64>,
        b: Vec<f64>,
        c: Vec<f64>,
        d: Option<Vec<f64>>,
        s: Option<Vec<f64>>,
        items: usize,
        values: usize,
        hidden: usize,
    }

    impl Owned {
        fn new(items: usize, values: usize, hidden: usize, scale: f64, conditional: bool) -> Self {
            let r = |n: usize, salt: u64| -> Vec<f64> {
                (0..n as u64).map(|i| ((((i + salt * 7919) * 2654435761) % 10007) as f64 / 10007.0 - 0.5) * 2.0 * scale).collect()
            };
            Owned {
                w: r(items * values * hidden, 1),
                b: r(items * values, 2),
                c: r(hidden, 3),
                d: conditional.then(|| r(items * hidden, 4)),
                s: None,
                items,
                values,
                hidden,
            }
        }

        fn with_shared(mut self, scale: f64) -> Self {
            self.s = Some((0..self.values * self.hidden).map(|i| ((i * 37 % 11) as f64 / 11.0 - 0.5) * scale).collect());
            self
        }

        /// The weight of (item i, value k, hidden j): W + S.
        fn weight(&self, i: usize, k: usize, j: usize) -> f64 {
            self.w[(i * self.values + k) * self.hidden + j] + self.s.as_ref().map_or(0.0, |s| s[k * self.hidden + j])
        }

        fn crbm(&self) -> Crbm<'_, f64> {
            Crbm {
                weight: &self.w,
                visible_bias: &self.b,
                hidden_bias: &self.c,
                conditional: self.d.as_deref(),
                shared: self.s.as_deref(),
                n_items: self.items,
                n_values: self.values,
                n_hidden: self.hidden,
            }
        }
    }

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// Float64 p(h | V) from the definition.
    fn oracle_hidden(m: &Owned, items: &[i64], codes: &[i64], which: &[i64]) -> Vec<f64> {
        (0..m.hidden)
            .map(|j| {
                let mut x = m.c[j];
                for (&i, &k) in items.iter().zip(codes) {
                    x += m.weight(i as usize, k as usize, j);
                }
                if let Some(d) = &m.d {
                    x += which.iter().map(|&i| d[i as usize * m.hidden + j]).sum::<f64>();
                }
                sig(x)
            })
            .collect()
    }

    #[test]
    fn conditionals_match_the_definition() {
        for (conditional, shared) in [(false, false), (true, false), (true, true)] {
            let mut m = Owned::new(6, 3, 4, 0.8, conditional);
            if shared {
                m = m.with_shared(0.7);
            }
            // User 0 rated items 1 and 4; user 1 nothing; user 2 items 0, 2, 5.
            let (indptr, items, codes) = (vec![0i64, 2, 2, 5], vec![1i64, 4, 0, 2, 5], vec![2i64, 0, 1, 1, 2]);
            let data = Ratings { pattern: Pattern { indptr: &indptr, items: &items }, codes: &codes };
            data.check("x", 6, 3).unwrap();
            // The conditional set adds item 3 for user 0 (a query item).
            let (r_ptr, r_items) = (vec![0i64, 3, 3, 6], vec![1i64, 3, 4, 0, 2, 5]);
            let r = Pattern { indptr: &r_ptr, items: &r_items };
            let mut h = vec![0.0; 3 * 4];
            m.crbm().hidden(data, Some(r), &mut h);
            for u in 0..3 {
                let (lo, hi) = (indptr[u] as usize, indptr[u + 1] as usize);
                let which = &r_items[r_ptr[u] as usize..r_ptr[u + 1] as usize];
                let want = oracle_hidden(&m, &items[lo..hi], &codes[lo..hi], which);
                for j in 0..4 {
                    assert!((h[u * 4 + j] - want[j]).abs() < 1e-12);
                }
            }
            let mut p = vec![0.0; 5 * 3];
            m.crbm().visible(&h, data.pattern, &mut p);
            for u in 0..3 {
                for e in indptr[u] as usize..indptr[u + 1] as usize {
                    let i = items[e] as usize;
                    let z: Vec<f64> =
                        (0..3).map(|k| m.b[i * 3 + k] + (0..4).map(|j| h[u * 4 + j] * m.weight(i, k, j)).sum::<f64>()).collect();
                    let norm: f64 = z.iter().map(|x| x.exp()).sum();
                    for k in 0..3 {
                        assert!((p[e * 3 + k] - z[k].exp() / norm).abs() < 1e-12);
                    }
                }
            }
        }
    }

    #[test]
    fn cd_statistics_match_float64_oracle() {
        // lr = 1, no momentum or decay: each parameter moves by its gradient estimate, which the oracle
        // recomputes from the data and the reconstruction the step returns.
        for (conditional, shared, k) in [(false, false, 1), (true, false, 1), (true, true, 3), (false, true, 2)] {
            let mut m = Owned::new(5, 3, 4, 0.5, conditional);
            if shared {
                m = m.with_shared(0.4);
            }
            let (indptr, items, codes) = (vec![0i64, 2, 2, 5, 7], vec![1i64, 4, 0, 1, 4, 2, 3], vec![2i64, 0, 1, 1, 2, 0, 0]);
            let data = Ratings { pattern: Pattern { indptr: &indptr, items: &items }, codes: &codes };
            let users = [3usize, 0, 2, 1];
            let (mut w, mut b, mut c, mut d, mut s) = (m.w.clone(), m.b.clone(), m.c.clone(), m.d.clone(), m.s.clone());
            let (mut vw, mut vb, mut vc) = (vec![0.0; w.len()], vec![0.0; b.len()], vec![0.0; c.len()]);
            let mut vd = d.as_ref().map(|d| vec![0.0; d.len()]);
            let mut vs = s.as_ref().map(|s| vec![0.0; s.len()]);
            let mut state = CrbmState {
                weight: &mut w,
                visible_bias: &mut b,
                hidden_bias: &mut c,
                conditional: d.as_deref_mut(),
                weight_velocity: &mut vw,
                visible_velocity: &mut vb,
                hidden_velocity: &mut vc,
                conditional_velocity: vd.as_deref_mut(),
                shared: s.as_deref_mut(),
                shared_velocity: vs.as_deref_mut(),
                n_items: 5,
                n_values: 3,
                n_hidden: 4,
            };
            let settings = CdSettings { k, learning_rate: 1.0, momentum: 0.0, weight_decay: 0.0 };
            let recon = cd_step(
                &mut state,
                &mut [2; 5],
                data,
                &users,
                &CrbmStep { cd: settings, decay_per: DecayPer::Step, shared_learning_rate: 1.0, seed: 7, step: 2 },
            )
            .unwrap();
            assert_eq!(recon.len(), 7);

            let (mut gw, mut gb, mut gc, mut gd) = (vec![0.0; m.w.len()], vec![0.0; m.b.len()], vec![0.0; 4], vec![0.0; 5 * 4]);
            let mut at = 0;
            for &u in &users {
                let (lo, hi) = (indptr[u] as usize, indptr[u + 1] as usize);
                let (its, cds) = (&items[lo..hi], &codes[lo..hi]);
                let rec = &recon[at..at + (hi - lo)];
                at += hi - lo;
                let (pd, pm) = (oracle_hidden(&m, its, cds, its), oracle_hidden(&m, its, rec, its));
                for (e, &i) in its.iter().enumerate() {
                    let i = i as usize;
                    for j in 0..4 {
                        gw[(i * 3 + cds[e] as usize) * 4 + j] += pd[j] / 4.0;
                        gw[(i * 3 + rec[e] as usize) * 4 + j] -= pm[j] / 4.0;
                        gd[i * 4 + j] += (pd[j] - pm[j]) / 4.0;
                    }
                    gb[i * 3 + cds[e] as usize] += 0.25;
                    gb[i * 3 + rec[e] as usize] -= 0.25;
                }
                for j in 0..4 {
                    gc[j] += (pd[j] - pm[j]) / 4.0;
                }
            }
            for n in 0..m.w.len() {
                assert!((w[n] - m.w[n] - gw[n]).abs() < 1e-12, "W[{n}]");
            }
            for n in 0..m.b.len() {
                assert!((b[n] - m.b[n] - gb[n]).abs() < 1e-12, "b[{n}]");
            }
            for j in 0..4 {
                assert!((c[j] - m.c[j] - gc[j]).abs() < 1e-12, "c[{j}]");
            }
            if let (Some(s), Some(s0)) = (&s, &m.s) {
                // dS = the sum over items of dW, averaged over the minibatch's 7 ratings (not its 4 users).
                for n in 0..s.len() {
                    let (k, j) = (n / 4, n % 4);
                    let want: f64 = (0..5).map(|i| gw[(i * 3 + k) * 4 + j]).sum::<f64>() * 4.0 / 7.0;
                    assert!((s[n] - s0[n] - want).abs() < 1e-12, "S[{n}]");
                }
            }
            if let (Some(d), Some(d0)) = (&d, &m.d) {
                for n in 0..d.len() {
                    assert!((d[n] - d0[n] - gd[n]).abs() < 1e-12, "D[{n}]");
                }
            }
            // Item 2 was rated only by user 3 and item 3 only by user 3: every item here was touched;
            // the velocity of an item nobody in the batch rated stays untouched (checked below).
        }
    }

    #[test]
    fn items_outside_the_minibatch_are_not_touched() {
        let m = Owned::new(6, 2, 3, 0.5, true);
        let (indptr, items, codes) = (vec![0i64, 2, 3], vec![0i64, 2, 4], vec![1i64, 0, 1]);
        let data = Ratings { pattern: Pattern { indptr: &indptr, items: &items }, codes: &codes };
        let (mut w, mut b, mut c, mut d) = (m.w.clone(), m.b.clone(), m.c.clone(), m.d.clone().unwrap());
        let (mut vw, mut vb, mut vc, mut vd) = (vec![0.5; w.len()], vec![0.5; b.len()], vec![0.0; 3], vec![0.5; d.len()]);
        let mut state = CrbmState {
            weight: &mut w,
            visible_bias: &mut b,
            hidden_bias: &mut c,
            conditional: Some(&mut d),
            weight_velocity: &mut vw,
            visible_velocity: &mut vb,
            hidden_velocity: &mut vc,
            conditional_velocity: Some(&mut vd),
            shared: None,
            shared_velocity: None,
            n_items: 6,
            n_values: 2,
            n_hidden: 3,
        };
        let settings = CdSettings { k: 1, learning_rate: 0.1, momentum: 0.9, weight_decay: 0.01 };
        let how = CrbmStep { cd: settings, decay_per: DecayPer::Step, shared_learning_rate: 0.1, seed: 1, step: 0 };
        cd_step(&mut state, &mut [0; 6], data, &[0], &how).unwrap();
        for i in [1usize, 3, 4, 5] {
            assert_eq!(&w[i * 6..(i + 1) * 6], &m.w[i * 6..(i + 1) * 6], "W of item {i}");
            assert_eq!(&d[i * 3..(i + 1) * 3], &m.d.as_ref().unwrap()[i * 3..(i + 1) * 3], "D of item {i}");
            assert!(vw[i * 6..(i + 1) * 6].iter().all(|&v| v == 0.5));
        }
        for i in [0usize, 2] {
            assert_ne!(&w[i * 6..(i + 1) * 6], &m.w[i * 6..(i + 1) * 6], "W of rated item {i}");
        }
    }

    #[test]
    fn per_rating_decay_scales_with_each_items_ratings() {
        // No momentum: a step with decay differs from the same step without (same draws, so the same
        // gradient) by -lr * decay * W0 (and D0) on the rated items, decay = weight_decay per step or
        // weight_decay * n_i / B per rating; S decays by weight_decay either way.
        let m = Owned::new(6, 3, 4, 0.5, true).with_shared(0.3);
        // Users 0, 1, 2 (B = 3): item 1 rated by all three, item 4 by two, items 0 and 3 by one, 2 and 5 by none.
        let (indptr, items, codes) = (vec![0i64, 3, 5, 7], vec![0i64, 1, 4, 1, 3, 1, 4], vec![2i64, 0, 1, 1, 2, 0, 0]);
        let data = Ratings { pattern: Pattern { indptr: &indptr, items: &items }, codes: &codes };
        let (lr, wd) = (0.2, 0.1);
        let step = |weight_decay: f64, decay_per: DecayPer| {
            let (mut w, mut b, mut c, mut d, mut s) = (m.w.clone(), m.b.clone(), m.c.clone(), m.d.clone().unwrap(), m.s.clone().unwrap());
            let (mut vw, mut vb, mut vc, mut vd, mut vs) =
                (vec![0.0; w.len()], vec![0.0; b.len()], vec![0.0; 4], vec![0.0; d.len()], vec![0.0; s.len()]);
            let mut state = CrbmState {
                weight: &mut w,
                visible_bias: &mut b,
                hidden_bias: &mut c,
                conditional: Some(&mut d),
                weight_velocity: &mut vw,
                visible_velocity: &mut vb,
                hidden_velocity: &mut vc,
                conditional_velocity: Some(&mut vd),
                shared: Some(&mut s),
                shared_velocity: Some(&mut vs),
                n_items: 6,
                n_values: 3,
                n_hidden: 4,
            };
            let cd = CdSettings { k: 1, learning_rate: lr, momentum: 0.0, weight_decay };
            let mut last = vec![0; 6];
            cd_step(&mut state, &mut last, data, &[0, 1, 2], &CrbmStep { cd, decay_per, shared_learning_rate: lr, seed: 3, step: 0 })
                .unwrap();
            catch_up(&mut state, &mut last, &cd, decay_per, 1).unwrap();
            (w, d, s)
        };
        for decay_per in [DecayPer::Step, DecayPer::Rating] {
            let ((w0, d0, s0), (w1, d1, s1)) = (step(0.0, decay_per), step(wd, decay_per));
            for (item, n_i) in [(0usize, 1.0), (1, 3.0), (2, 0.0), (3, 1.0), (4, 2.0), (5, 0.0)] {
                let decay = match decay_per {
                    DecayPer::Step => wd,
                    DecayPer::Rating => wd * n_i / 3.0,
                };
                for n in item * 12..(item + 1) * 12 {
                    let want = -lr * decay * m.w[n];
                    assert!((w1[n] - w0[n] - want).abs() < 1e-12, "{decay_per:?}: W[{n}] moved {} not {want}", w1[n] - w0[n]);
                }
                for n in item * 4..(item + 1) * 4 {
                    let want = -lr * decay * m.d.as_ref().unwrap()[n];
                    assert!((d1[n] - d0[n] - want).abs() < 1e-12, "{decay_per:?}: D[{n}]");
                }
            }
            for n in 0..s0.len() {
                assert!((s1[n] - s0[n] + lr * wd * m.s.as_ref().unwrap()[n]).abs() < 1e-12, "{decay_per:?}: S[{n}]");
            }
        }
    }

    #[test]
    fn zero_gradient_steps_compose_single_steps() {
        let (decay, mu) = (0.03, 0.9);
        for n in [0u64, 1, 2, 7, 64, 1000] {
            let m = zero_gradient_steps(n, decay, mu);
            let (mut w, mut v) = (1.5f64, -0.25f64);
            for _ in 0..n {
                v = mu * v - decay * w;
                w += v;
            }
            assert!((m[0] * 1.5 + m[1] * -0.25 - w).abs() < 1e-12 && (m[2] * 1.5 + m[3] * -0.25 - v).abs() < 1e-12, "n = {n}");
        }
    }

    #[test]
    fn lazy_updates_equal_the_dense_algorithm() {
        // Items caught up only when rated (and once at the end) end where items moved by momentum and
        // decay at every step end: the same steps, with every item caught up after each step.
        let (n_items, n_users, kk, f) = (12usize, 10usize, 3usize, 4usize);
        let mut indptr = vec![0i64];
        let (mut items, mut codes) = (vec![], vec![]);
        for u in 0..n_users {
            for i in 0..n_items {
                if (u * 5 + i * 3) % 7 < 2 {
                    items.push(i as i64);
                    codes.push(((u + 2 * i) % kk) as i64);
                }
            }
            indptr.push(items.len() as i64);
        }
        let data = Ratings { pattern: Pattern { indptr: &indptr, items: &items }, codes: &codes };
        let settings = CdSettings { k: 1, learning_rate: 0.1, momentum: 0.9, weight_decay: 0.05 };
        let run = |eager: bool, decay_per: DecayPer| {
            let m = Owned::new(n_items, kk, f, 0.3, true).with_shared(0.1);
            let (mut w, mut b, mut c, mut d, mut sh) = (m.w.clone(), m.b.clone(), m.c.clone(), m.d.clone().unwrap(), m.s.clone().unwrap());
            let (mut vw, mut vb, mut vc) = (vec![0.01; w.len()], vec![0.02; b.len()], vec![0.0; f]);
            let (mut vd, mut vsh) = (vec![-0.01; d.len()], vec![0.0; sh.len()]);
            let mut state = CrbmState {
                weight: &mut w,
                visible_bias: &mut b,
                hidden_bias: &mut c,
                conditional: Some(&mut d),
                weight_velocity: &mut vw,
                visible_velocity: &mut vb,
                hidden_velocity: &mut vc,
                conditional_velocity: Some(&mut vd),
                shared: Some(&mut sh),
                shared_velocity: Some(&mut vsh),
                n_items,
                n_values: kk,
                n_hidden: f,
            };
            let mut last = vec![0; n_items];
            for step in 0..6u64 {
                let users = [(step as usize) % n_users, (step as usize + 3) % n_users];
                let how = CrbmStep { cd: settings, decay_per, shared_learning_rate: 0.2, seed: 9, step };
                cd_step(&mut state, &mut last, data, &users, &how).unwrap();
                if eager {
                    catch_up(&mut state, &mut last, &settings, decay_per, step + 1).unwrap();
                }
            }
            catch_up(&mut state, &mut last, &settings, decay_per, 6).unwrap();
            assert!(last.iter().all(|&s| s == 6));
            (w, b, d, vw)
        };
        for decay_per in [DecayPer::Step, DecayPer::Rating] {
            let (lazy, eager) = (run(false, decay_per), run(true, decay_per));
            for (x, y) in [(&lazy.0, &eager.0), (&lazy.1, &eager.1), (&lazy.2, &eager.2), (&lazy.3, &eager.3)] {
                for (a, b) in x.iter().zip(y) {
                    assert!((a - b).abs() < 1e-12, "{decay_per:?}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn gibbs_sampling_matches_exact_distribution() {
        // One user rating 2 items with 3 values, 2 hidden units (conditional): 9 rating vectors;
        // p(V) ~ exp(b.V) prod_j (1 + exp(x_j(V))).
        let m = Owned::new(3, 3, 2, 1.2, true).with_shared(1.0);
        let (items, r) = ([0i64, 2], [0i64, 1, 2]);
        let log_p: Vec<f64> = (0..9)
            .map(|s| {
                let codes = [(s % 3) as i64, (s / 3) as i64];
                let bv: f64 = items.iter().zip(&codes).map(|(&i, &k)| m.b[i as usize * 3 + k as usize]).sum();
                // (Shared weights enter through the hidden inputs only.)
                let h = oracle_hidden(&m, &items, &codes, &r);
                // softplus(x) = -log(1 - sigmoid(x))
                bv + h.iter().map(|p| -(1.0 - p).ln()).sum::<f64>()
            })
            .collect();
        let z: f64 = log_p.iter().map(|x| x.exp()).sum();
        let p: Vec<f64> = log_p.iter().map(|x| x.exp() / z).collect();
        let n_chains = 3000;
        let indptr: Vec<i64> = (0..=n_chains as i64).map(|u| 2 * u).collect();
        let all_items: Vec<i64> = (0..n_chains).flat_map(|_| items).collect();
        let r_ptr: Vec<i64> = (0..=n_chains as i64).map(|u| 3 * u).collect();
        let r_items: Vec<i64> = (0..n_chains).flat_map(|_| r).collect();
        let start = vec![0i64; 2 * n_chains];
        let data = Ratings { pattern: Pattern { indptr: &indptr, items: &all_items }, codes: &start };
        let codes = with_threads(2, || m.crbm().gibbs(data, Some(Pattern { indptr: &r_ptr, items: &r_items }), 30, 11));
        let mut counts = vec![0.0; 9];
        for u in 0..n_chains {
            counts[(codes[2 * u] + 3 * codes[2 * u + 1]) as usize] += 1.0;
        }
        let chi2: f64 = (0..9).map(|s| (counts[s] - n_chains as f64 * p[s]).powi(2) / (n_chains as f64 * p[s])).sum();
        // 8 degrees of freedom: P(chi2 > 26.12) = 0.001.
        assert!(chi2 < 26.12, "chi-square {chi2}: counts {counts:?}, p {p:?}");
        let chi2_uniform: f64 = (0..9).map(|s| (counts[s] - n_chains as f64 / 9.0).powi(2) / (n_chains as f64 / 9.0)).sum();
        assert!(chi2_uniform > 26.12, "the test tells this model from a uniform one");
        let one = with_threads(1, || m.crbm().gibbs(data, Some(Pattern { indptr: &r_ptr, items: &r_items }), 30, 11));
        assert_eq!(codes, one, "thread-count independent");
    }

    #[test]
    fn cd_step_is_thread_count_independent() {
        let (n_items, n_users, kk, f) = (40usize, 64usize, 5usize, 16usize);
        let mut indptr = vec![0i64];
        let (mut items, mut codes) = (vec![], vec![]);
        for u in 0..n_users {
            for i in 0..n_items {
                if (u * 31 + i * 17) % 5 < 2 {
                    items.push(i as i64);
                    codes.push(((u + i) % kk) as i64);
                }
            }
            indptr.push(items.len() as i64);
        }
        let data = Ratings { pattern: Pattern { indptr: &indptr, items: &items }, codes: &codes };
        let run = |threads: usize, decay_per: DecayPer| {
            let m = Owned::new(n_items, kk, f, 0.1, true);
            let (mut w, mut b, mut c, mut d) = (m.w.clone(), m.b.clone(), m.c.clone(), m.d.clone().unwrap());
            let (mut vw, mut vb, mut vc, mut vd) = (vec![0.0; w.len()], vec![0.0; b.len()], vec![0.0; f], vec![0.0; d.len()]);
            let (mut sh, mut vsh) = (vec![0.01; kk * f], vec![0.0; kk * f]);
            let mut state = CrbmState {
                weight: &mut w,
                visible_bias: &mut b,
                hidden_bias: &mut c,
                conditional: Some(&mut d),
                weight_velocity: &mut vw,
                visible_velocity: &mut vb,
                hidden_velocity: &mut vc,
                conditional_velocity: Some(&mut vd),
                shared: Some(&mut sh),
                shared_velocity: Some(&mut vsh),
                n_items,
                n_values: kk,
                n_hidden: f,
            };
            let settings = CdSettings { k: 2, learning_rate: 0.05, momentum: 0.5, weight_decay: 1e-3 };
            let mut last = vec![0; n_items];
            with_threads(threads, || {
                for step in 0..20u64 {
                    let users: Vec<usize> = (0..16).map(|n| (step as usize * 16 + n * 7) % n_users).collect();
                    let how = CrbmStep { cd: settings, decay_per, shared_learning_rate: 0.3, seed: 5, step };
                    cd_step(&mut state, &mut last, data, &users, &how).unwrap();
                }
                catch_up(&mut state, &mut last, &settings, decay_per, 20).unwrap();
            });
            (w, b, c, d, sh)
        };
        for decay_per in [DecayPer::Step, DecayPer::Rating] {
            let one = run(1, decay_per);
            for threads in [2, 3] {
                assert!(run(threads, decay_per) == one, "{decay_per:?}: {threads} threads differ from 1");
            }
        }
    }

    #[test]
    fn bad_structures_are_refused() {
        let (indptr, items, codes) = (vec![0i64, 2, 1], vec![0i64, 1], vec![0i64, 1]);
        let bad = Ratings { pattern: Pattern { indptr: &indptr, items: &items }, codes: &codes };
        assert!(bad.check("x", 3, 2).is_err(), "decreasing offsets");
        let (indptr, items, codes) = (vec![0i64, 2], vec![0i64, 3], vec![0i64, 1]);
        let bad = Ratings { pattern: Pattern { indptr: &indptr, items: &items }, codes: &codes };
        assert!(bad.check("x", 3, 2).is_err(), "item out of range");
        assert!(bad.check_users("x", &[0], 3, 2).is_err());
        let (indptr, items, codes) = (vec![0i64, 2], vec![0i64, 1], vec![0i64, 2]);
        let bad = Ratings { pattern: Pattern { indptr: &indptr, items: &items }, codes: &codes };
        assert!(bad.check("x", 3, 2).is_err(), "rating value out of range");
        assert!(bad.check_users("x", &[1], 3, 2).is_err(), "user out of range");
    }
}
