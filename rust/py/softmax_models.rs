//! Bindings of the softmax-unit models: the collaborative-filtering RBM (`collab_*`) and the Replicated
//! Softmax topic model (`rs_*`). Their Python signatures are in `softmax_api`, which packs the
//! arguments into the settings structs below.
//!
//! Sparse inputs arrive as the three arrays of a CSR matrix: `indptr` and `indices` as int64, and the
//! stored values (rating-value indices as int64, or word counts in the model's float dtype). The
//! kernels check the structure (of the minibatch's rows only, in a training step) before reading it.

use numpy::{Element, PyArray1, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::arrays::{dispatch, expect_shape, float_dtype, input, input_unchecked, new_array, output, SeedStep};
use super::errors::{ensure_allocatable, run, value_error};
use crate::collaborative::{self, Crbm, CrbmState, CrbmStep, DecayPer, Pattern, Ratings};
use crate::rbm::CdSettings;
use crate::real::Real;
use crate::replicated_softmax::{self, Docs, Rsm, RsmState};

/// A CSR matrix's structure as Python passed it: `indptr` and `indices`.
#[derive(Clone, Copy)]
pub struct Csr<'a, 'py> {
    pub indptr: &'a Bound<'py, PyAny>,
    pub indices: &'a Bound<'py, PyAny>,
}

/// The structure of a CSR matrix: `indptr` and `indices`, int64, borrowed read-only.
struct CsrArrays<'py> {
    indptr: PyReadonlyArrayDyn<'py, i64>,
    indices: PyReadonlyArrayDyn<'py, i64>,
}

impl<'py> CsrArrays<'py> {
    fn extract(csr: Csr<'_, 'py>, prefix: &str) -> PyResult<Self> {
        Ok(CsrArrays {
            indptr: input_unchecked::<i64>(csr.indptr, &format!("{prefix}indptr"), 1)?,
            indices: input_unchecked::<i64>(csr.indices, &format!("{prefix}indices"), 1)?,
        })
    }

    fn pattern(&self) -> PyResult<Pattern<'_>> {
        Ok(Pattern { indptr: self.indptr.as_slice()?, items: self.indices.as_slice()? })
    }

    fn n_rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }
}

fn int64_array<'py>(py: Python<'py>, values: Vec<i64>) -> Bound<'py, PyAny> {
    PyArray1::from_vec(py, values).into_any()
}

/// CD settings from Python's arguments, refused with the binding's name if out of range.
pub fn cd_settings(k: usize, learning_rate: f64, momentum: f64, weight_decay: f64, function: &str) -> PyResult<CdSettings> {
    let settings = CdSettings { k, learning_rate, momentum, weight_decay };
    settings.validate().map_err(|e| value_error(function, e))?;
    Ok(settings)
}

// -- collaborative filtering ---------------------------------------------------------------------------

/// Users' ratings as Python passed them: a CSR structure and, per stored entry, the index of its rating
/// value (int64).
#[derive(Clone, Copy)]
pub struct RatingsArgs<'a, 'py> {
    pub csr: Csr<'a, 'py>,
    pub codes: &'a Bound<'py, PyAny>,
}

/// The read-only parameters of a collaborative-filtering RBM a call needs (the others are None).
#[derive(Clone, Copy)]
pub struct CrbmArgs<'a, 'py> {
    pub components: &'a Bound<'py, PyAny>,
    pub intercept_visible: Option<&'a Bound<'py, PyAny>>,
    pub intercept_hidden: Option<&'a Bound<'py, PyAny>>,
    pub conditional_weights: Option<&'a Bound<'py, PyAny>>,
    pub shared_components: Option<&'a Bound<'py, PyAny>>,
}

/// A parameter and its velocity, both given or both absent.
pub type Pair<'a, 'py> = Option<(&'a Bound<'py, PyAny>, &'a Bound<'py, PyAny>)>;

/// Pairs `param` with `velocity`: both or neither, else a ValueError naming them.
pub fn pair<'a, 'py>(param: Option<&'a Bound<'py, PyAny>>, velocity: Option<&'a Bound<'py, PyAny>>, name: &str) -> PyResult<Pair<'a, 'py>> {
    match (param, velocity) {
        (Some(p), Some(v)) => Ok(Some((p, v))),
        (None, None) => Ok(None),
        _ => Err(value_error(name, format!("{name} and {name}_velocity go together"))),
    }
}

/// The writable arrays of a collaborative-filtering RBM's training: W, b, c and their velocities (in
/// that order), D and S with their velocities when present, and the items' step counts.
#[derive(Clone, Copy)]
pub struct CrbmTraining<'a, 'py> {
    pub params: [&'a Bound<'py, PyAny>; 6],
    pub conditional: Pair<'a, 'py>,
    pub shared: Pair<'a, 'py>,
    pub last_update: &'a Bound<'py, PyAny>,
}

/// The parameters of a collaborative-filtering RBM, borrowed read-only and shape-checked.
struct CrbmArrays<'py, T: Element> {
    w: PyReadonlyArrayDyn<'py, T>,
    b: Option<PyReadonlyArrayDyn<'py, T>>,
    c: Option<PyReadonlyArrayDyn<'py, T>>,
    d: Option<PyReadonlyArrayDyn<'py, T>>,
    s: Option<PyReadonlyArrayDyn<'py, T>>,
}

impl<'py, T: Element + Real> CrbmArrays<'py, T> {
    fn extract(args: &CrbmArgs<'_, 'py>) -> PyResult<Self> {
        let (w, b, c) = (args.components, args.intercept_visible, args.intercept_hidden);
        let (d, s) = (args.conditional_weights, args.shared_components);
        let w = input::<T>(w, "components", 3)?;
        let (i, k, f) = (w.shape()[0], w.shape()[1], w.shape()[2]);
        if i == 0 || k == 0 || f == 0 {
            return Err(value_error(
                "components",
                format!("must have at least one item, rating value and hidden unit, got shape {:?}", w.shape()),
            ));
        }
        let b = b.map(|b| input::<T>(b, "intercept_visible", 2)).transpose()?;
        let c = c.map(|c| input::<T>(c, "intercept_hidden", 1)).transpose()?;
        let d = d.filter(|d| !d.is_none()).map(|d| input::<T>(d, "conditional_weights", 2)).transpose()?;
        if let Some(b) = &b {
            expect_shape("intercept_visible", b.shape(), &[i, k])?;
        }
        if let Some(c) = &c {
            expect_shape("intercept_hidden", c.shape(), &[f])?;
        }
        if let Some(d) = &d {
            expect_shape("conditional_weights", d.shape(), &[i, f])?;
        }
        let s = s.filter(|s| !s.is_none()).map(|s| input::<T>(s, "shared_components", 2)).transpose()?;
        if let Some(s) = &s {
            expect_shape("shared_components", s.shape(), &[k, f])?;
        }
        Ok(CrbmArrays { w, b, c, d, s })
    }

    fn dims(&self) -> (usize, usize, usize) {
        let s = self.w.shape();
        (s[0], s[1], s[2])
    }

    fn crbm(&self) -> PyResult<Crbm<'_, T>> {
        let (n_items, n_values, n_hidden) = self.dims();
        Ok(Crbm {
            weight: self.w.as_slice()?,
            visible_bias: match &self.b {
                Some(b) => b.as_slice()?,
                None => &[],
            },
            hidden_bias: match &self.c {
                Some(c) => c.as_slice()?,
                None => &[],
            },
            conditional: self.d.as_ref().map(|d| d.as_slice()).transpose()?,
            shared: self.s.as_ref().map(|s| s.as_slice()).transpose()?,
            n_items,
            n_values,
            n_hidden,
        })
    }
}

/// The optional item sets r of the conditional RBM: `r_indptr` and `r_indices`, or neither.
pub fn conditional_sets<'a, 'py>(
    r_indptr: Option<&'a Bound<'py, PyAny>>,
    r_indices: Option<&'a Bound<'py, PyAny>>,
) -> PyResult<Option<Csr<'a, 'py>>> {
    match (r_indptr, r_indices) {
        (Some(indptr), Some(indices)) => Ok(Some(Csr { indptr, indices })),
        (None, None) => Ok(None),
        _ => Err(value_error("r_indptr", "r_indptr and r_indices go together")),
    }
}

fn ratings<'a>(x: &'a CsrArrays<'_>, codes: &'a PyReadonlyArrayDyn<'_, i64>) -> PyResult<Ratings<'a>> {
    Ok(Ratings { pattern: x.pattern()?, codes: codes.as_slice()? })
}

fn check_sets(sets: &Option<CsrArrays<'_>>, n_users: usize, n_items: usize) -> PyResult<()> {
    if let Some(r) = sets {
        if r.n_rows() != n_users {
            return Err(value_error("r_indptr", format!("one item set per user expected ({n_users}), got {}", r.n_rows())));
        }
        r.pattern()?.check("r", n_items).map_err(|e| value_error("collab", e))?;
    }
    Ok(())
}

/// The writable arrays of a training step: parameters, velocities and the items' step counts.
struct CrbmOutputs<'py, T: Element> {
    w: PyReadwriteArrayDyn<'py, T>,
    b: PyReadwriteArrayDyn<'py, T>,
    c: PyReadwriteArrayDyn<'py, T>,
    vw: PyReadwriteArrayDyn<'py, T>,
    vb: PyReadwriteArrayDyn<'py, T>,
    vc: PyReadwriteArrayDyn<'py, T>,
    conditional: Option<(PyReadwriteArrayDyn<'py, T>, PyReadwriteArrayDyn<'py, T>)>,
    shared: Option<(PyReadwriteArrayDyn<'py, T>, PyReadwriteArrayDyn<'py, T>)>,
    last_update: PyReadwriteArrayDyn<'py, i64>,
}

impl<'py, T: Element + Real> CrbmOutputs<'py, T> {
    fn extract(args: &CrbmTraining<'_, 'py>) -> PyResult<Self> {
        let [w, b, c, vw, vb, vc] = args.params;
        let (conditional, shared, last_update) = (args.conditional, args.shared, args.last_update);
        let w = output::<T>(w, "components", 3)?;
        let (i, k, f) = (w.shape()[0], w.shape()[1], w.shape()[2]);
        let checked = |arr: &Bound<'py, PyAny>, name: &str, shape: &[usize]| -> PyResult<PyReadwriteArrayDyn<'py, T>> {
            let out = output::<T>(arr, name, shape.len())?;
            expect_shape(name, out.shape(), shape)?;
            Ok(out)
        };
        let pair_of = |p: Pair<'_, 'py>,
                       name: &str,
                       shape: &[usize]|
         -> PyResult<Option<(PyReadwriteArrayDyn<'py, T>, PyReadwriteArrayDyn<'py, T>)>> {
            p.map(|(x, v)| Ok((checked(x, name, shape)?, checked(v, &format!("{name}_velocity"), shape)?))).transpose()
        };
        let last_update = output::<i64>(last_update, "last_update", 1)?;
        expect_shape("last_update", last_update.shape(), &[i])?;
        Ok(CrbmOutputs {
            b: checked(b, "intercept_visible", &[i, k])?,
            c: checked(c, "intercept_hidden", &[f])?,
            vw: checked(vw, "components_velocity", &[i, k, f])?,
            vb: checked(vb, "intercept_visible_velocity", &[i, k])?,
            vc: checked(vc, "intercept_hidden_velocity", &[f])?,
            conditional: pair_of(conditional, "conditional_weights", &[i, f])?,
            shared: pair_of(shared, "shared_components", &[k, f])?,
            last_update,
            w,
        })
    }

    /// The kernels' view of the arrays, and the items' step counts.
    fn state(&mut self) -> PyResult<(CrbmState<'_, T>, &mut [i64])> {
        let (n_items, n_values, n_hidden) = (self.w.shape()[0], self.w.shape()[1], self.w.shape()[2]);
        let (d, vd) = match self.conditional.as_mut() {
            Some((d, vd)) => (Some(d.as_slice_mut()?), Some(vd.as_slice_mut()?)),
            None => (None, None),
        };
        let (s, vs) = match self.shared.as_mut() {
            Some((s, vs)) => (Some(s.as_slice_mut()?), Some(vs.as_slice_mut()?)),
            None => (None, None),
        };
        let state = CrbmState {
            weight: self.w.as_slice_mut()?,
            visible_bias: self.b.as_slice_mut()?,
            hidden_bias: self.c.as_slice_mut()?,
            conditional: d,
            weight_velocity: self.vw.as_slice_mut()?,
            visible_velocity: self.vb.as_slice_mut()?,
            hidden_velocity: self.vc.as_slice_mut()?,
            conditional_velocity: vd,
            shared: s,
            shared_velocity: vs,
            n_items,
            n_values,
            n_hidden,
        };
        Ok((state, self.last_update.as_slice_mut()?))
    }
}

/// The conditional RBM's item sets r of each user, when given, checked against the ratings.
fn item_sets<'py>(sets: Option<Csr<'_, 'py>>, n_users: usize, n_items: usize) -> PyResult<Option<CsrArrays<'py>>> {
    let sets = sets.map(|r| CsrArrays::extract(r, "r_")).transpose()?;
    check_sets(&sets, n_users, n_items)?;
    Ok(sets)
}

/// p(h = 1 | V) (n_users, n_hidden); `sets` are the conditional RBM's item sets (default: the rated items).
pub fn collab_hidden<'py>(
    py: Python<'py>,
    x: RatingsArgs<'_, 'py>,
    model: CrbmArgs<'_, 'py>,
    sets: Option<Csr<'_, 'py>>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(float_dtype(model.components, "components")?, collab_hidden_typed(py, x, model, sets, n_jobs))
}

fn collab_hidden_typed<'py, T: Real + Element>(
    py: Python<'py>,
    x: RatingsArgs<'_, 'py>,
    model: CrbmArgs<'_, 'py>,
    sets: Option<Csr<'_, 'py>>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let p = CrbmArrays::<T>::extract(&model)?;
    let (n_items, n_values, n_hidden) = p.dims();
    let csr = CsrArrays::extract(x.csr, "")?;
    let codes = input_unchecked::<i64>(x.codes, "codes", 1)?;
    let data = ratings(&csr, &codes)?;
    data.check("x", n_items, n_values).map_err(|e| value_error("collab_hidden", e))?;
    let sets = item_sets(sets, csr.n_rows(), n_items)?;
    let which = sets.as_ref().map(|s| s.pattern()).transpose()?;
    let n = csr.n_rows();
    ensure_allocatable("collab_hidden", n.saturating_mul(n_hidden), std::mem::size_of::<T>())?;
    let model = p.crbm()?;
    let out = run(py, "collab_hidden", n_jobs, || {
        let mut out = vec![T::zero(); n * n_hidden];
        model.hidden(data, which, &mut out);
        Ok(out)
    })?;
    new_array(py, &[n, n_hidden], out)
}

/// p(v_i = k | h) (nnz, n_values) for every entry of the CSR `pattern`; row u of `h` holds the hidden
/// probabilities (or states) of the pattern's user u.
pub fn collab_visible<'py>(
    py: Python<'py>,
    h: &Bound<'py, PyAny>,
    pattern: Csr<'_, 'py>,
    model: CrbmArgs<'_, 'py>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(float_dtype(model.components, "components")?, collab_visible_typed(py, h, pattern, model, n_jobs))
}

fn collab_visible_typed<'py, T: Real + Element>(
    py: Python<'py>,
    h: &Bound<'py, PyAny>,
    pattern: Csr<'_, 'py>,
    model: CrbmArgs<'_, 'py>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let p = CrbmArrays::<T>::extract(&model)?;
    let (n_items, n_values, n_hidden) = p.dims();
    let h = input::<T>(h, "h", 2)?;
    let pattern = CsrArrays::extract(pattern, "")?;
    expect_shape("h", h.shape(), &[pattern.n_rows(), n_hidden])?;
    let pat = pattern.pattern()?;
    pat.check("query", n_items).map_err(|e| value_error("collab_visible", e))?;
    let nnz = pat.items.len();
    ensure_allocatable("collab_visible", nnz.saturating_mul(n_values), std::mem::size_of::<T>())?;
    let (hs, model) = (h.as_slice()?, p.crbm()?);
    let out = run(py, "collab_visible", n_jobs, || {
        let mut out = vec![T::zero(); nnz * n_values];
        model.visible(hs, pat, &mut out);
        Ok(out)
    })?;
    new_array(py, &[nnz, n_values], out)
}

/// `n_steps` of Gibbs sampling from the ratings `x`; the chains draw from `seed`.
#[derive(Clone, Copy)]
pub struct Chains {
    pub n_steps: usize,
    pub seed: u64,
}

/// The last ratings (rating-value indices, int64, in the CSR order) of Gibbs chains V -> h -> V over
/// each user's rated items.
pub fn collab_gibbs<'py>(
    py: Python<'py>,
    x: RatingsArgs<'_, 'py>,
    model: CrbmArgs<'_, 'py>,
    sets: Option<Csr<'_, 'py>>,
    chains: Chains,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(float_dtype(model.components, "components")?, collab_gibbs_typed(py, x, model, sets, chains, n_jobs))
}

fn collab_gibbs_typed<'py, T: Real + Element>(
    py: Python<'py>,
    x: RatingsArgs<'_, 'py>,
    model: CrbmArgs<'_, 'py>,
    sets: Option<Csr<'_, 'py>>,
    chains: Chains,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let p = CrbmArrays::<T>::extract(&model)?;
    let (n_items, n_values, _) = p.dims();
    let csr = CsrArrays::extract(x.csr, "")?;
    let codes = input_unchecked::<i64>(x.codes, "codes", 1)?;
    let data = ratings(&csr, &codes)?;
    data.check("x", n_items, n_values).map_err(|e| value_error("collab_gibbs", e))?;
    let sets = item_sets(sets, csr.n_rows(), n_items)?;
    let which = sets.as_ref().map(|s| s.pattern()).transpose()?;
    let model = p.crbm()?;
    let out = run(py, "collab_gibbs", n_jobs, || Ok(model.gibbs(data, which, chains.n_steps, chains.seed)))?;
    Ok(int64_array(py, out))
}

/// One CD step on the users `users` of `x`, in place; with `return_reconstruction`, returns the
/// minibatch's reconstructed ratings (rating-value indices, user after user in the order of `users`).
pub fn collab_cd_step<'py>(
    py: Python<'py>,
    x: RatingsArgs<'_, 'py>,
    training: CrbmTraining<'_, 'py>,
    users: Vec<usize>,
    how: CrbmStep,
    return_reconstruction: bool,
    n_jobs: usize,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let [components, ..] = training.params;
    let recon = dispatch!(float_dtype(components, "components")?, collab_cd_typed(py, x, training, &users, how, n_jobs))?;
    Ok(return_reconstruction.then(|| int64_array(py, recon)))
}

fn collab_cd_typed<'py, T: Real + Element>(
    py: Python<'py>,
    x: RatingsArgs<'_, 'py>,
    training: CrbmTraining<'_, 'py>,
    users: &[usize],
    how: CrbmStep,
    n_jobs: usize,
) -> PyResult<Vec<i64>> {
    let mut arrays = CrbmOutputs::<T>::extract(&training)?;
    let csr = CsrArrays::extract(x.csr, "")?;
    let codes = input_unchecked::<i64>(x.codes, "codes", 1)?;
    let data = ratings(&csr, &codes)?;
    let (mut state, last) = arrays.state()?;
    run(py, "collab_cd_step", n_jobs, || collaborative::cd_step(&mut state, last, data, users, &how))
}

/// Brings every item's rows up to `step` steps with the settings of the missed steps (see
/// `collaborative::catch_up`).
pub fn collab_catch_up(
    py: Python<'_>,
    training: CrbmTraining<'_, '_>,
    settings: CdSettings,
    decay_per: DecayPer,
    step: u64,
    n_jobs: usize,
) -> PyResult<()> {
    let [components, ..] = training.params;
    dispatch!(float_dtype(components, "components")?, collab_catch_up_typed(py, training, settings, decay_per, step, n_jobs))
}

fn collab_catch_up_typed<T: Real + Element>(
    py: Python<'_>,
    training: CrbmTraining<'_, '_>,
    settings: CdSettings,
    decay_per: DecayPer,
    step: u64,
    n_jobs: usize,
) -> PyResult<()> {
    let mut arrays = CrbmOutputs::<T>::extract(&training)?;
    let (mut state, last) = arrays.state()?;
    run(py, "collab_catch_up", n_jobs, || collaborative::catch_up(&mut state, last, &settings, decay_per, step))
}

// -- Replicated Softmax ---------------------------------------------------------------------------------

/// Documents as Python passed them: a CSR structure and the word counts (in the model's dtype).
#[derive(Clone, Copy)]
pub struct DocsArgs<'a, 'py> {
    pub csr: Csr<'a, 'py>,
    pub data: &'a Bound<'py, PyAny>,
}

/// The read-only parameters of a Replicated Softmax model (the word biases only where needed).
#[derive(Clone, Copy)]
pub struct RsmArgs<'a, 'py> {
    pub components: &'a Bound<'py, PyAny>,
    pub intercept_visible: Option<&'a Bound<'py, PyAny>>,
    pub intercept_hidden: &'a Bound<'py, PyAny>,
}

/// The parameters of a Replicated Softmax model, borrowed read-only and shape-checked.
struct RsmArrays<'py, T: Element> {
    w: PyReadonlyArrayDyn<'py, T>,
    b: Option<PyReadonlyArrayDyn<'py, T>>,
    a: PyReadonlyArrayDyn<'py, T>,
}

impl<'py, T: Element + Real> RsmArrays<'py, T> {
    fn extract(args: &RsmArgs<'_, 'py>) -> PyResult<Self> {
        let (w, b, a) = (args.components, args.intercept_visible, args.intercept_hidden);
        let w = input::<T>(w, "components", 2)?;
        let (f, v) = (w.shape()[0], w.shape()[1]);
        if f == 0 || v == 0 {
            return Err(value_error("components", format!("must have at least one hidden unit and one word, got shape {:?}", w.shape())));
        }
        let b = b.map(|b| input::<T>(b, "intercept_visible", 1)).transpose()?;
        let a = input::<T>(a, "intercept_hidden", 1)?;
        if let Some(b) = &b {
            expect_shape("intercept_visible", b.shape(), &[v])?;
        }
        expect_shape("intercept_hidden", a.shape(), &[f])?;
        Ok(RsmArrays { w, b, a })
    }

    fn rsm(&self) -> PyResult<Rsm<'_, T>> {
        Ok(Rsm {
            weight: self.w.as_slice()?,
            visible_bias: match &self.b {
                Some(b) => b.as_slice()?,
                None => &[],
            },
            hidden_bias: self.a.as_slice()?,
            n_words: self.w.shape()[1],
            n_hidden: self.w.shape()[0],
        })
    }
}

/// The documents' CSR arrays, with the counts in the model's dtype.
struct DocArrays<'py, T: Element> {
    csr: CsrArrays<'py>,
    counts: PyReadonlyArrayDyn<'py, T>,
}

impl<'py, T: Element + Real> DocArrays<'py, T> {
    fn extract(args: DocsArgs<'_, 'py>) -> PyResult<Self> {
        Ok(DocArrays { csr: CsrArrays::extract(args.csr, "")?, counts: input_unchecked::<T>(args.data, "data", 1)? })
    }

    fn docs(&self) -> PyResult<Docs<'_, T>> {
        Ok(Docs { indptr: self.csr.indptr.as_slice()?, words: self.csr.indices.as_slice()?, counts: self.counts.as_slice()? })
    }
}

/// p(h = 1 | v) (n_documents, n_hidden) of the documents `x`.
pub fn rs_hidden<'py>(py: Python<'py>, x: DocsArgs<'_, 'py>, model: RsmArgs<'_, 'py>, n_jobs: usize) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(float_dtype(model.components, "components")?, rs_docs_typed(py, x, model, n_jobs))
}

/// log p*(v) (float64, (n_documents,)) of the documents `x` (`model` with its word biases).
pub fn rs_log_unnormalized<'py>(
    py: Python<'py>,
    x: DocsArgs<'_, 'py>,
    model: RsmArgs<'_, 'py>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(float_dtype(model.components, "components")?, rs_docs_typed(py, x, model, n_jobs))
}

/// p(h | v) without word biases, log p*(v) with them.
fn rs_docs_typed<'py, T: Real + Element>(
    py: Python<'py>,
    x: DocsArgs<'_, 'py>,
    model: RsmArgs<'_, 'py>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let p = RsmArrays::<T>::extract(&model)?;
    let x = DocArrays::<T>::extract(x)?;
    let docs = x.docs()?;
    let with_biases = model.intercept_visible.is_some();
    let model = p.rsm()?;
    let name = if with_biases { "rs_log_unnormalized" } else { "rs_hidden" };
    docs.check("x", model.n_words).map_err(|e| value_error(name, e))?;
    let (n, f) = (docs.n_docs(), model.n_hidden);
    ensure_allocatable(name, n.saturating_mul(f + 1), std::mem::size_of::<T>().max(8))?;
    if with_biases {
        let out = run(py, name, n_jobs, || {
            let mut out = vec![0.0f64; n];
            model.log_unnormalized(docs, &mut out);
            Ok(out)
        })?;
        new_array(py, &[n], out)
    } else {
        let out = run(py, name, n_jobs, || {
            let mut out = vec![T::zero(); n * f];
            model.hidden(docs, &mut out);
            Ok(out)
        })?;
        new_array(py, &[n, f], out)
    }
}

/// What one training step does: its CD settings and its random stream.
#[derive(Clone, Copy)]
pub struct RsStep {
    pub settings: CdSettings,
    pub draw: SeedStep,
}

/// One CD step on the documents `rows` of `x`, updating `params` (W, b, a and their velocities) in place;
/// with `return_reconstruction`, returns the reconstructed documents' counts (len(rows), n_words).
pub fn rs_cd_step<'py>(
    py: Python<'py>,
    x: DocsArgs<'_, 'py>,
    params: [&Bound<'py, PyAny>; 6],
    rows: Vec<usize>,
    how: RsStep,
    return_reconstruction: bool,
    n_jobs: usize,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    dispatch!(float_dtype(params[0], "components")?, rs_cd_typed(py, x, params, &rows, how, return_reconstruction, n_jobs))
}

fn rs_cd_typed<'py, T: Real + Element>(
    py: Python<'py>,
    x: DocsArgs<'_, 'py>,
    params: [&Bound<'py, PyAny>; 6],
    rows: &[usize],
    how: RsStep,
    return_reconstruction: bool,
    n_jobs: usize,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let [w, b, a, vw, vb, va] = params;
    let mut w = output::<T>(w, "components", 2)?;
    let (f, v) = (w.shape()[0], w.shape()[1]);
    let mut b = output::<T>(b, "intercept_visible", 1)?;
    let mut a = output::<T>(a, "intercept_hidden", 1)?;
    let mut vw = output::<T>(vw, "components_velocity", 2)?;
    let mut vb = output::<T>(vb, "intercept_visible_velocity", 1)?;
    let mut va = output::<T>(va, "intercept_hidden_velocity", 1)?;
    expect_shape("intercept_visible", b.shape(), &[v])?;
    expect_shape("intercept_hidden", a.shape(), &[f])?;
    expect_shape("components_velocity", vw.shape(), &[f, v])?;
    expect_shape("intercept_visible_velocity", vb.shape(), &[v])?;
    expect_shape("intercept_hidden_velocity", va.shape(), &[f])?;
    let x = DocArrays::<T>::extract(x)?;
    let docs = x.docs()?;
    let mut state = RsmState {
        weight: w.as_slice_mut()?,
        visible_bias: b.as_slice_mut()?,
        hidden_bias: a.as_slice_mut()?,
        weight_velocity: vw.as_slice_mut()?,
        visible_velocity: vb.as_slice_mut()?,
        hidden_velocity: va.as_slice_mut()?,
        n_words: v,
        n_hidden: f,
    };
    let (settings, SeedStep { seed, step }) = (how.settings, how.draw);
    let recon = run(py, "rs_cd_step", n_jobs, || replicated_softmax::cd_step(&mut state, docs, rows, &settings, seed, step))?;
    if return_reconstruction {
        Ok(Some(new_array(py, &[rows.len(), v], recon)?))
    } else {
        crate::scratch::recycle(recon);
        Ok(None)
    }
}

/// Exact log Z_D (float64) for each length D in `lengths`, enumerating at most 2^`max_units` states.
pub fn rs_log_partition_exact<'py>(
    py: Python<'py>,
    model: RsmArgs<'_, 'py>,
    lengths: Vec<usize>,
    max_units: usize,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(float_dtype(model.components, "components")?, rs_exact_typed(py, model, lengths, max_units, n_jobs))
}

fn rs_exact_typed<'py, T: Real + Element>(
    py: Python<'py>,
    model: RsmArgs<'_, 'py>,
    lengths: Vec<usize>,
    max_units: usize,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let p = RsmArrays::<T>::extract(&model)?;
    let model = p.rsm()?;
    let n = lengths.len();
    let out = run(py, "rs_log_partition_exact", n_jobs, || model.log_partition_exact(&lengths, max_units))?;
    new_array(py, &[n], out)
}

/// An AIS run: the lengths to estimate log Z_D for (ascending, distinct), the annealing steps per word
/// at the start, the number of chains and their seed.
pub struct Ais {
    pub lengths: Vec<usize>,
    pub steps_per_word: usize,
    pub n_chains: usize,
    pub seed: u64,
}

/// The log importance weights (n_lengths, n_chains) of an AIS run.
pub fn rs_ais<'py>(py: Python<'py>, model: RsmArgs<'_, 'py>, ais: Ais, n_jobs: usize) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(float_dtype(model.components, "components")?, rs_ais_typed(py, model, &ais, n_jobs))
}

fn rs_ais_typed<'py, T: Real + Element>(py: Python<'py>, model: RsmArgs<'_, 'py>, ais: &Ais, n_jobs: usize) -> PyResult<Bound<'py, PyAny>> {
    let p = RsmArrays::<T>::extract(&model)?;
    let model = p.rsm()?;
    let log_w = run(py, "rs_ais", n_jobs, || model.ais_log_weights(&ais.lengths, ais.steps_per_word, ais.n_chains, ais.seed))?;
    new_array(py, &[ais.lengths.len(), ais.n_chains], log_w)
}

/// `n_samples` documents of `length` words after `n_steps` of Gibbs sampling, from `seed`.
#[derive(Clone, Copy)]
pub struct Samples {
    pub n_samples: usize,
    pub length: usize,
    pub n_steps: usize,
    pub seed: u64,
}

/// The word counts (n_samples, n_words) of sampled documents.
pub fn rs_sample<'py>(py: Python<'py>, model: RsmArgs<'_, 'py>, samples: Samples, n_jobs: usize) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(float_dtype(model.components, "components")?, rs_sample_typed(py, model, samples, n_jobs))
}

fn rs_sample_typed<'py, T: Real + Element>(
    py: Python<'py>,
    model: RsmArgs<'_, 'py>,
    s: Samples,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let p = RsmArrays::<T>::extract(&model)?;
    let model = p.rsm()?;
    ensure_allocatable("rs_sample", s.n_samples.saturating_mul(model.n_words), std::mem::size_of::<T>())?;
    let out = run(py, "rs_sample", n_jobs, || Ok(model.sample(s.n_samples, s.length, s.n_steps, s.seed)))?;
    new_array(py, &[s.n_samples, model.n_words], out)
}
