//! Bindings of the softmax-unit models: the collaborative-filtering RBM (`collab_*`) and the Replicated
//! Softmax topic model (`rs_*`).
//!
//! Sparse inputs arrive as the three arrays of a CSR matrix: `indptr` and `indices` as int64, and the
//! stored values (rating-value indices as int64, or word counts in the model's float dtype). The
//! kernels check the structure (of the minibatch's rows only, in a training step) before reading it.

use numpy::{Element, PyArray1, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::arrays::{count_arg, expect_shape, float_dtype, indices, input, input_unchecked, output, seed_arg, threads};
use super::dense::new_array;
use super::errors::{ensure_allocatable, run, value_error};
use super::kernels::dispatch;
use crate::collaborative::{self, Crbm, CrbmState, Pattern, Ratings};
use crate::rbm::CdSettings;
use crate::real::Real;
use crate::replicated_softmax::{self, Docs, Rsm, RsmState};

/// The structure of a CSR matrix: `indptr` and `indices`, int64, borrowed read-only.
struct CsrArrays<'py> {
    indptr: PyReadonlyArrayDyn<'py, i64>,
    indices: PyReadonlyArrayDyn<'py, i64>,
}

impl<'py> CsrArrays<'py> {
    fn extract(indptr: &Bound<'py, PyAny>, indices: &Bound<'py, PyAny>, prefix: &str) -> PyResult<Self> {
        Ok(CsrArrays {
            indptr: input_unchecked::<i64>(indptr, &format!("{prefix}indptr"), 1)?,
            indices: input_unchecked::<i64>(indices, &format!("{prefix}indices"), 1)?,
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

fn cd_settings(k: i64, learning_rate: f64, momentum: f64, weight_decay: f64, function: &str) -> PyResult<CdSettings> {
    let settings = CdSettings { k: count_arg(k, "k", 1)?, learning_rate, momentum, weight_decay };
    settings.validate().map_err(|e| value_error(function, e))?;
    Ok(settings)
}

// -- collaborative filtering ---------------------------------------------------------------------------

/// The parameters of a collaborative-filtering RBM, borrowed read-only and shape-checked.
struct CrbmArrays<'py, T: Element> {
    w: PyReadonlyArrayDyn<'py, T>,
    b: Option<PyReadonlyArrayDyn<'py, T>>,
    c: Option<PyReadonlyArrayDyn<'py, T>>,
    d: Option<PyReadonlyArrayDyn<'py, T>>,
    s: Option<PyReadonlyArrayDyn<'py, T>>,
}

impl<'py, T: Element + Real> CrbmArrays<'py, T> {
    fn extract(
        w: &Bound<'py, PyAny>,
        b: Option<&Bound<'py, PyAny>>,
        c: Option<&Bound<'py, PyAny>>,
        d: Option<&Bound<'py, PyAny>>,
        s: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let w = input::<T>(w, "components", 3)?;
        let (i, k, f) = (w.shape()[0], w.shape()[1], w.shape()[2]);
        if i == 0 || k == 0 || f == 0 {
            return Err(value_error("components", format!("must have at least one item, rating value and hidden unit, got shape {:?}", w.shape())));
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
fn conditional_sets<'py>(r_indptr: Option<&Bound<'py, PyAny>>, r_indices: Option<&Bound<'py, PyAny>>) -> PyResult<Option<CsrArrays<'py>>> {
    match (r_indptr, r_indices) {
        (Some(p), Some(i)) => Ok(Some(CsrArrays::extract(p, i, "r_")?)),
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

#[allow(clippy::too_many_arguments)]
fn collab_hidden_impl<'py, T: Real + Element>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    idx: &Bound<'py, PyAny>,
    codes: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    c: &Bound<'py, PyAny>,
    d: Option<&Bound<'py, PyAny>>,
    s: Option<&Bound<'py, PyAny>>,
    r_indptr: Option<&Bound<'py, PyAny>>,
    r_indices: Option<&Bound<'py, PyAny>>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let p = CrbmArrays::<T>::extract(w, None, Some(c), d, s)?;
    let (n_items, n_values, n_hidden) = p.dims();
    let x = CsrArrays::extract(indptr, idx, "")?;
    let codes = input_unchecked::<i64>(codes, "codes", 1)?;
    let data = ratings(&x, &codes)?;
    data.check("x", n_items, n_values).map_err(|e| value_error("collab_hidden", e))?;
    let sets = conditional_sets(r_indptr, r_indices)?;
    check_sets(&sets, x.n_rows(), n_items)?;
    let which = sets.as_ref().map(|s| s.pattern()).transpose()?;
    let n = x.n_rows();
    ensure_allocatable("collab_hidden", n.saturating_mul(n_hidden), std::mem::size_of::<T>())?;
    let model = p.crbm()?;
    let out = run(py, "collab_hidden", n_jobs, || {
        let mut out = vec![T::zero(); n * n_hidden];
        model.hidden(data, which, &mut out);
        Ok(out)
    })?;
    new_array(py, &[n, n_hidden], out)
}

/// p(h = 1 | V) (n_users, n_hidden) for the users of the CSR ratings (indptr, indices, codes = rating-
/// value indices); with conditional_weights, the item sets r default to the rated items or are given
/// as (r_indptr, r_indices); with shared_components (n_values, n_hidden), every item's weights are
/// components[i] + shared_components.
#[pyfunction]
#[pyo3(signature = (indptr, indices, codes, components, intercept_hidden, *, conditional_weights=None, shared_components=None, r_indptr=None, r_indices=None, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn collab_hidden<'py>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    codes: &Bound<'py, PyAny>,
    components: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    conditional_weights: Option<&Bound<'py, PyAny>>,
    shared_components: Option<&Bound<'py, PyAny>>,
    r_indptr: Option<&Bound<'py, PyAny>>,
    r_indices: Option<&Bound<'py, PyAny>>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let n_jobs = threads(n_jobs)?;
    dispatch!(
        float_dtype(components, "components")?,
        collab_hidden_impl(py, indptr, indices, codes, components, intercept_hidden, conditional_weights, shared_components, r_indptr, r_indices, n_jobs)
    )
}

#[allow(clippy::too_many_arguments)]
fn collab_visible_impl<'py, T: Real + Element>(
    py: Python<'py>,
    h: &Bound<'py, PyAny>,
    indptr: &Bound<'py, PyAny>,
    idx: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    s: Option<&Bound<'py, PyAny>>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let p = CrbmArrays::<T>::extract(w, Some(b), None, None, s)?;
    let (n_items, n_values, n_hidden) = p.dims();
    let h = input::<T>(h, "h", 2)?;
    let pattern = CsrArrays::extract(indptr, idx, "")?;
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

/// p(v_i = k | h) (nnz, n_values) for every entry of the CSR pattern (indptr, indices); row u of h
/// holds the hidden probabilities (or states) of the pattern's user u.
#[pyfunction]
#[pyo3(signature = (h, indptr, indices, components, intercept_visible, *, shared_components=None, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn collab_visible<'py>(
    py: Python<'py>,
    h: &Bound<'py, PyAny>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    components: &Bound<'py, PyAny>,
    intercept_visible: &Bound<'py, PyAny>,
    shared_components: Option<&Bound<'py, PyAny>>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(components, "components")?, collab_visible_impl(py, h, indptr, indices, components, intercept_visible, shared_components, n_jobs))
}

#[allow(clippy::too_many_arguments)]
fn collab_gibbs_impl<'py, T: Real + Element>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    idx: &Bound<'py, PyAny>,
    codes: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    c: &Bound<'py, PyAny>,
    d: Option<&Bound<'py, PyAny>>,
    s: Option<&Bound<'py, PyAny>>,
    r_indptr: Option<&Bound<'py, PyAny>>,
    r_indices: Option<&Bound<'py, PyAny>>,
    n_steps: usize,
    seed: u64,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let p = CrbmArrays::<T>::extract(w, Some(b), Some(c), d, s)?;
    let (n_items, n_values, _) = p.dims();
    let x = CsrArrays::extract(indptr, idx, "")?;
    let codes = input_unchecked::<i64>(codes, "codes", 1)?;
    let data = ratings(&x, &codes)?;
    data.check("x", n_items, n_values).map_err(|e| value_error("collab_gibbs", e))?;
    let sets = conditional_sets(r_indptr, r_indices)?;
    check_sets(&sets, x.n_rows(), n_items)?;
    let which = sets.as_ref().map(|s| s.pattern()).transpose()?;
    let model = p.crbm()?;
    let out = run(py, "collab_gibbs", n_jobs, || Ok(model.gibbs(data, which, n_steps, seed)))?;
    Ok(int64_array(py, out))
}

/// n_steps of Gibbs sampling V -> h -> V over each user's rated items, from the given ratings; returns
/// the last ratings (rating-value indices, int64, in the CSR order). User u draws from the stream
/// (seed, u): the same seed gives the same chains for any n_jobs.
#[pyfunction]
#[pyo3(signature = (indptr, indices, codes, components, intercept_visible, intercept_hidden, *, conditional_weights=None, shared_components=None, r_indptr=None, r_indices=None, n_steps=1, seed, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn collab_gibbs<'py>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    codes: &Bound<'py, PyAny>,
    components: &Bound<'py, PyAny>,
    intercept_visible: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    conditional_weights: Option<&Bound<'py, PyAny>>,
    shared_components: Option<&Bound<'py, PyAny>>,
    r_indptr: Option<&Bound<'py, PyAny>>,
    r_indices: Option<&Bound<'py, PyAny>>,
    n_steps: i64,
    seed: &Bound<'_, PyAny>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let seed = seed_arg(seed, "seed")?;
    let n_steps = count_arg(n_steps, "n_steps", 0)?;
    let n_jobs = threads(n_jobs)?;
    dispatch!(
        float_dtype(components, "components")?,
        collab_gibbs_impl(py, indptr, indices, codes, components, intercept_visible, intercept_hidden, conditional_weights, shared_components, r_indptr, r_indices, n_steps, seed, n_jobs)
    )
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

/// A parameter and its velocity, both given or both absent.
type Pair<'a, 'py> = Option<(&'a Bound<'py, PyAny>, &'a Bound<'py, PyAny>)>;

fn pair<'a, 'py>(param: Option<&'a Bound<'py, PyAny>>, velocity: Option<&'a Bound<'py, PyAny>>, name: &str) -> PyResult<Pair<'a, 'py>> {
    match (param, velocity) {
        (Some(p), Some(v)) => Ok(Some((p, v))),
        (None, None) => Ok(None),
        _ => Err(value_error(name, format!("{name} and {name}_velocity go together"))),
    }
}

impl<'py, T: Element + Real> CrbmOutputs<'py, T> {
    fn extract(params: [&Bound<'py, PyAny>; 6], conditional: Pair<'_, 'py>, shared: Pair<'_, 'py>, last_update: &Bound<'py, PyAny>) -> PyResult<Self> {
        let [w, b, c, vw, vb, vc] = params;
        let w = output::<T>(w, "components", 3)?;
        let (i, k, f) = (w.shape()[0], w.shape()[1], w.shape()[2]);
        let checked = |arr: &Bound<'py, PyAny>, name: &str, shape: &[usize]| -> PyResult<PyReadwriteArrayDyn<'py, T>> {
            let out = output::<T>(arr, name, shape.len())?;
            expect_shape(name, out.shape(), shape)?;
            Ok(out)
        };
        let pair_of = |p: Pair<'_, 'py>, name: &str, shape: &[usize]| -> PyResult<Option<(PyReadwriteArrayDyn<'py, T>, PyReadwriteArrayDyn<'py, T>)>> {
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

#[allow(clippy::too_many_arguments)]
fn collab_cd_impl<'py, T: Real + Element>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    idx: &Bound<'py, PyAny>,
    codes: &Bound<'py, PyAny>,
    params: [&Bound<'py, PyAny>; 6],
    conditional: Pair<'_, 'py>,
    shared: Pair<'_, 'py>,
    last_update: &Bound<'py, PyAny>,
    users: &Bound<'py, PyAny>,
    settings: CdSettings,
    shared_learning_rate: f64,
    seed: u64,
    step: u64,
    return_reconstruction: bool,
    n_jobs: usize,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let mut arrays = CrbmOutputs::<T>::extract(params, conditional, shared, last_update)?;
    let x = CsrArrays::extract(indptr, idx, "")?;
    let codes = input_unchecked::<i64>(codes, "codes", 1)?;
    let users = indices(users, "users", x.n_rows())?;
    let data = ratings(&x, &codes)?;
    let (mut state, last) = arrays.state()?;
    let recon = run(py, "collab_cd_step", n_jobs, || collaborative::cd_step(&mut state, last, data, &users, &settings, shared_learning_rate, seed, step))?;
    Ok(return_reconstruction.then(|| int64_array(py, recon)))
}

/// One CD-k step on the users `users` of the CSR ratings (indptr, indices, codes), updating the
/// parameters and velocities in place (and, with conditional_weights, D and its velocity: the item
/// sets r are the rated items; and with shared_components, S and its velocity). `last_update` (int64,
/// one per item) counts the steps each item's rows have seen: the step first brings its items up to
/// `step`, as the dense algorithm has them (see collab_catch_up). The shared weights step by
/// shared_learning_rate (default: learning_rate) on their statistics averaged over the minibatch's
/// ratings. With return_reconstruction, returns the
/// reconstructed ratings of the minibatch (rating-value indices, user after user in the order of
/// `users`).
#[pyfunction]
#[pyo3(signature = (indptr, indices, codes, components, intercept_visible, intercept_hidden, components_velocity,
    intercept_visible_velocity, intercept_hidden_velocity, *, users, last_update, conditional_weights=None, conditional_weights_velocity=None,
    shared_components=None, shared_components_velocity=None, k=1, learning_rate=0.1, momentum=0.0, weight_decay=0.0,
    shared_learning_rate=None, seed, step, return_reconstruction=false, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn collab_cd_step<'py>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    codes: &Bound<'py, PyAny>,
    components: &Bound<'py, PyAny>,
    intercept_visible: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    components_velocity: &Bound<'py, PyAny>,
    intercept_visible_velocity: &Bound<'py, PyAny>,
    intercept_hidden_velocity: &Bound<'py, PyAny>,
    users: &Bound<'py, PyAny>,
    last_update: &Bound<'py, PyAny>,
    conditional_weights: Option<&Bound<'py, PyAny>>,
    conditional_weights_velocity: Option<&Bound<'py, PyAny>>,
    shared_components: Option<&Bound<'py, PyAny>>,
    shared_components_velocity: Option<&Bound<'py, PyAny>>,
    k: i64,
    learning_rate: f64,
    momentum: f64,
    weight_decay: f64,
    shared_learning_rate: Option<f64>,
    seed: &Bound<'_, PyAny>,
    step: i64,
    return_reconstruction: bool,
    n_jobs: Option<i64>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let seed = seed_arg(seed, "seed")?;
    let step = count_arg(step, "step", 0)? as u64;
    let settings = cd_settings(k, learning_rate, momentum, weight_decay, "collab_cd_step")?;
    let shared_learning_rate = shared_learning_rate.unwrap_or(learning_rate);
    let n_jobs = threads(n_jobs)?;
    let conditional = pair(conditional_weights, conditional_weights_velocity, "conditional_weights")?;
    let shared = pair(shared_components, shared_components_velocity, "shared_components")?;
    let params = [components, intercept_visible, intercept_hidden, components_velocity, intercept_visible_velocity, intercept_hidden_velocity];
    dispatch!(
        float_dtype(components, "components")?,
        collab_cd_impl(py, indptr, indices, codes, params, conditional, shared, last_update, users, settings, shared_learning_rate, seed, step, return_reconstruction, n_jobs)
    )
}

#[allow(clippy::too_many_arguments)]
fn collab_catch_up_impl<'py, T: Real + Element>(
    py: Python<'py>,
    params: [&Bound<'py, PyAny>; 6],
    conditional: Pair<'_, 'py>,
    shared: Pair<'_, 'py>,
    last_update: &Bound<'py, PyAny>,
    settings: CdSettings,
    step: u64,
    n_jobs: usize,
) -> PyResult<()> {
    let mut arrays = CrbmOutputs::<T>::extract(params, conditional, shared, last_update)?;
    let (mut state, last) = arrays.state()?;
    run(py, "collab_catch_up", n_jobs, || collaborative::catch_up(&mut state, last, &settings, step))
}

/// Brings every item's rows (W, b, D and their velocities) up to `step` steps: the steps an item
/// missed since `last_update[i]` move it by momentum and weight decay alone, as the dense algorithm
/// does at every step. `learning_rate`, `momentum` and `weight_decay` must be those of the missed steps.
#[pyfunction]
#[pyo3(signature = (components, intercept_visible, intercept_hidden, components_velocity, intercept_visible_velocity,
    intercept_hidden_velocity, *, last_update, conditional_weights=None, conditional_weights_velocity=None, shared_components=None,
    shared_components_velocity=None, learning_rate=0.1, momentum=0.0, weight_decay=0.0, step, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn collab_catch_up(
    py: Python<'_>,
    components: &Bound<'_, PyAny>,
    intercept_visible: &Bound<'_, PyAny>,
    intercept_hidden: &Bound<'_, PyAny>,
    components_velocity: &Bound<'_, PyAny>,
    intercept_visible_velocity: &Bound<'_, PyAny>,
    intercept_hidden_velocity: &Bound<'_, PyAny>,
    last_update: &Bound<'_, PyAny>,
    conditional_weights: Option<&Bound<'_, PyAny>>,
    conditional_weights_velocity: Option<&Bound<'_, PyAny>>,
    shared_components: Option<&Bound<'_, PyAny>>,
    shared_components_velocity: Option<&Bound<'_, PyAny>>,
    learning_rate: f64,
    momentum: f64,
    weight_decay: f64,
    step: i64,
    n_jobs: Option<i64>,
) -> PyResult<()> {
    let step = count_arg(step, "step", 0)? as u64;
    let settings = cd_settings(1, learning_rate, momentum, weight_decay, "collab_catch_up")?;
    let n_jobs = threads(n_jobs)?;
    let conditional = pair(conditional_weights, conditional_weights_velocity, "conditional_weights")?;
    let shared = pair(shared_components, shared_components_velocity, "shared_components")?;
    let params = [components, intercept_visible, intercept_hidden, components_velocity, intercept_visible_velocity, intercept_hidden_velocity];
    dispatch!(float_dtype(components, "components")?, collab_catch_up_impl(py, params, conditional, shared, last_update, settings, step, n_jobs))
}

// -- Replicated Softmax ---------------------------------------------------------------------------------

/// The parameters of a Replicated Softmax model, borrowed read-only and shape-checked.
struct RsmArrays<'py, T: Element> {
    w: PyReadonlyArrayDyn<'py, T>,
    b: Option<PyReadonlyArrayDyn<'py, T>>,
    a: PyReadonlyArrayDyn<'py, T>,
}

impl<'py, T: Element + Real> RsmArrays<'py, T> {
    fn extract(w: &Bound<'py, PyAny>, b: Option<&Bound<'py, PyAny>>, a: &Bound<'py, PyAny>) -> PyResult<Self> {
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
    fn extract(indptr: &Bound<'py, PyAny>, idx: &Bound<'py, PyAny>, data: &Bound<'py, PyAny>) -> PyResult<Self> {
        Ok(DocArrays { csr: CsrArrays::extract(indptr, idx, "")?, counts: input_unchecked::<T>(data, "data", 1)? })
    }

    fn docs(&self) -> PyResult<Docs<'_, T>> {
        Ok(Docs { indptr: self.csr.indptr.as_slice()?, words: self.csr.indices.as_slice()?, counts: self.counts.as_slice()? })
    }
}

fn rs_docs_impl<'py, T: Real + Element>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    idx: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    b: Option<&Bound<'py, PyAny>>,
    a: &Bound<'py, PyAny>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let p = RsmArrays::<T>::extract(w, b, a)?;
    let x = DocArrays::<T>::extract(indptr, idx, data)?;
    let docs = x.docs()?;
    let model = p.rsm()?;
    let name = if b.is_some() { "rs_log_unnormalized" } else { "rs_hidden" };
    docs.check("x", model.n_words).map_err(|e| value_error(name, e))?;
    let (n, f) = (docs.n_docs(), model.n_hidden);
    ensure_allocatable(name, n.saturating_mul(f + 1), std::mem::size_of::<T>().max(8))?;
    if b.is_some() {
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

/// p(h = 1 | v) (n_documents, n_hidden) for the word counts of the CSR matrix (indptr, indices, data).
#[pyfunction]
#[pyo3(signature = (indptr, indices, data, components, intercept_hidden, *, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn rs_hidden<'py>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    components: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(components, "components")?, rs_docs_impl(py, indptr, indices, data, components, None, intercept_hidden, n_jobs))
}

/// log p*(v) = b.v + sum_j softplus(D a_j + W_j . v) (float64, (n_documents,)): the unnormalised
/// log-probability of each document's word sequence.
#[pyfunction]
#[pyo3(signature = (indptr, indices, data, components, intercept_visible, intercept_hidden, *, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn rs_log_unnormalized<'py>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    components: &Bound<'py, PyAny>,
    intercept_visible: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let n_jobs = threads(n_jobs)?;
    dispatch!(
        float_dtype(components, "components")?,
        rs_docs_impl(py, indptr, indices, data, components, Some(intercept_visible), intercept_hidden, n_jobs)
    )
}

#[allow(clippy::too_many_arguments)]
fn rs_cd_impl<'py, T: Real + Element>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    idx: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    params: [&Bound<'py, PyAny>; 6],
    rows: &Bound<'py, PyAny>,
    settings: CdSettings,
    seed: u64,
    step: u64,
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
    let x = DocArrays::<T>::extract(indptr, idx, data)?;
    let rows = indices(rows, "rows", x.csr.n_rows())?;
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
    let n = rows.len();
    let recon = run(py, "rs_cd_step", n_jobs, || replicated_softmax::cd_step(&mut state, docs, &rows, &settings, seed, step))?;
    if return_reconstruction {
        Ok(Some(new_array(py, &[n, v], recon)?))
    } else {
        crate::scratch::recycle(recon);
        Ok(None)
    }
}

/// One CD-k step on the documents `rows` of the CSR word counts (indptr, indices, data), updating the
/// parameters and velocities in place. With return_reconstruction, returns the reconstructed
/// documents' counts (len(rows), n_words).
#[pyfunction]
#[pyo3(signature = (indptr, indices, data, components, intercept_visible, intercept_hidden, components_velocity,
    intercept_visible_velocity, intercept_hidden_velocity, *, rows, k=1, learning_rate=0.1, momentum=0.0, weight_decay=0.0,
    seed, step, return_reconstruction=false, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn rs_cd_step<'py>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    components: &Bound<'py, PyAny>,
    intercept_visible: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    components_velocity: &Bound<'py, PyAny>,
    intercept_visible_velocity: &Bound<'py, PyAny>,
    intercept_hidden_velocity: &Bound<'py, PyAny>,
    rows: &Bound<'py, PyAny>,
    k: i64,
    learning_rate: f64,
    momentum: f64,
    weight_decay: f64,
    seed: &Bound<'_, PyAny>,
    step: i64,
    return_reconstruction: bool,
    n_jobs: Option<i64>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let seed = seed_arg(seed, "seed")?;
    let step = count_arg(step, "step", 0)? as u64;
    let settings = cd_settings(k, learning_rate, momentum, weight_decay, "rs_cd_step")?;
    let n_jobs = threads(n_jobs)?;
    let params = [components, intercept_visible, intercept_hidden, components_velocity, intercept_visible_velocity, intercept_hidden_velocity];
    dispatch!(float_dtype(components, "components")?, rs_cd_impl(py, indptr, indices, data, params, rows, settings, seed, step, return_reconstruction, n_jobs))
}

fn rs_exact_impl<'py, T: Real + Element>(
    py: Python<'py>,
    w: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    a: &Bound<'py, PyAny>,
    lengths: Vec<usize>,
    max_units: usize,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let p = RsmArrays::<T>::extract(w, Some(b), a)?;
    let model = p.rsm()?;
    let n = lengths.len();
    let out = run(py, "rs_log_partition_exact", n_jobs, || model.log_partition_exact(&lengths, max_units))?;
    new_array(py, &[n], out)
}

/// Exact log Z_D (float64) for each length D in doc_lengths, enumerating the 2^n_hidden hidden states
/// once for all of them (n_hidden <= max_units <= 24).
#[pyfunction]
#[pyo3(signature = (components, intercept_visible, intercept_hidden, doc_lengths, *, max_units=20, n_jobs=None))]
fn rs_log_partition_exact<'py>(
    py: Python<'py>,
    components: &Bound<'py, PyAny>,
    intercept_visible: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    doc_lengths: &Bound<'py, PyAny>,
    max_units: i64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let lengths = indices(doc_lengths, "doc_lengths", usize::MAX)?;
    let max_units = count_arg(max_units, "max_units", 1)?;
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(components, "components")?, rs_exact_impl(py, components, intercept_visible, intercept_hidden, lengths, max_units, n_jobs))
}

#[allow(clippy::too_many_arguments)]
fn rs_ais_impl<'py, T: Real + Element>(
    py: Python<'py>,
    w: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    a: &Bound<'py, PyAny>,
    lengths: Vec<usize>,
    steps_per_word: usize,
    n_chains: usize,
    seed: u64,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let p = RsmArrays::<T>::extract(w, Some(b), a)?;
    let model = p.rsm()?;
    let n = lengths.len();
    let log_w = run(py, "rs_ais", n_jobs, || model.ais_log_weights(&lengths, steps_per_word, n_chains, seed))?;
    new_array(py, &[n, n_chains], log_w)
}

/// Annealed importance sampling of log Z_D for each length in doc_lengths (ascending, distinct): the log
/// importance weights (n_lengths, n_chains); the estimate for length l is
/// n_hidden * log(2) + log mean exp(log_w[l]). One run per chain anneals the hidden units (the visible
/// units summed out) from length 0 up to the longest length, steps_per_word steps per word at first.
#[pyfunction]
#[pyo3(signature = (components, intercept_visible, intercept_hidden, doc_lengths, *, steps_per_word=50, n_chains=100, seed, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn rs_ais<'py>(
    py: Python<'py>,
    components: &Bound<'py, PyAny>,
    intercept_visible: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    doc_lengths: &Bound<'py, PyAny>,
    steps_per_word: i64,
    n_chains: i64,
    seed: &Bound<'_, PyAny>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let seed = seed_arg(seed, "seed")?;
    let n_chains = count_arg(n_chains, "n_chains", 1)?;
    let steps_per_word = count_arg(steps_per_word, "steps_per_word", 1)?;
    let lengths = indices(doc_lengths, "doc_lengths", usize::MAX)?;
    let n_jobs = threads(n_jobs)?;
    dispatch!(
        float_dtype(components, "components")?,
        rs_ais_impl(py, components, intercept_visible, intercept_hidden, lengths, steps_per_word, n_chains, seed, n_jobs)
    )
}

#[allow(clippy::too_many_arguments)]
fn rs_sample_impl<'py, T: Real + Element>(
    py: Python<'py>,
    w: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    a: &Bound<'py, PyAny>,
    n_samples: usize,
    length: usize,
    n_steps: usize,
    seed: u64,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let p = RsmArrays::<T>::extract(w, Some(b), a)?;
    let model = p.rsm()?;
    ensure_allocatable("rs_sample", n_samples.saturating_mul(model.n_words), std::mem::size_of::<T>())?;
    let out = run(py, "rs_sample", n_jobs, || Ok(model.sample(n_samples, length, n_steps, seed)))?;
    new_array(py, &[n_samples, model.n_words], out)
}

/// n_samples documents of doc_length words after n_steps of Gibbs sampling from D words drawn from
/// softmax(b): their word counts (n_samples, n_words). Chain c draws from the stream (seed, c).
#[pyfunction]
#[pyo3(signature = (components, intercept_visible, intercept_hidden, *, n_samples, doc_length, n_steps=1000, seed, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn rs_sample<'py>(
    py: Python<'py>,
    components: &Bound<'py, PyAny>,
    intercept_visible: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    n_samples: i64,
    doc_length: i64,
    n_steps: i64,
    seed: &Bound<'_, PyAny>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let seed = seed_arg(seed, "seed")?;
    let n_samples = count_arg(n_samples, "n_samples", 1)?;
    let length = count_arg(doc_length, "doc_length", 0)?;
    let n_steps = count_arg(n_steps, "n_steps", 0)?;
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(components, "components")?, rs_sample_impl(py, components, intercept_visible, intercept_hidden, n_samples, length, n_steps, seed, n_jobs))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(collab_hidden, m)?)?;
    m.add_function(wrap_pyfunction!(collab_visible, m)?)?;
    m.add_function(wrap_pyfunction!(collab_gibbs, m)?)?;
    m.add_function(wrap_pyfunction!(collab_cd_step, m)?)?;
    m.add_function(wrap_pyfunction!(collab_catch_up, m)?)?;
    m.add_function(wrap_pyfunction!(rs_hidden, m)?)?;
    m.add_function(wrap_pyfunction!(rs_log_unnormalized, m)?)?;
    m.add_function(wrap_pyfunction!(rs_cd_step, m)?)?;
    m.add_function(wrap_pyfunction!(rs_log_partition_exact, m)?)?;
    m.add_function(wrap_pyfunction!(rs_ais, m)?)?;
    m.add_function(wrap_pyfunction!(rs_sample, m)?)?;
    Ok(())
}
