//! Bindings of the RBM kernels and of the partition-function estimators.

use numpy::{Element, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::arrays::{expect_shape, float_dtype, indices, input, input_unchecked, output, threads};
use super::dense::new_array;
use super::errors::{ensure_allocatable, run, value_error};
use super::kernels::dispatch;
use crate::sampling::StreamKey;
use crate::ais;
use crate::batch::Batch;
use crate::rbm::{self, CdSettings, Rbm, RbmState, Units};
use crate::real::Real;
use crate::rng::purpose;

/// The unit type a Python string names ("bernoulli", "gaussian"); `param` names the argument.
fn units(name: &str, param: &str) -> PyResult<Units> {
    Units::parse(name, param).map_err(|e| value_error(param, e))
}

/// The three parameter arrays of an RBM, borrowed read-only and shape-checked.
struct Params<'py, T: Element> {
    w: PyReadonlyArrayDyn<'py, T>,
    b: PyReadonlyArrayDyn<'py, T>,
    c: PyReadonlyArrayDyn<'py, T>,
    visible: Units,
    hidden: Units,
}

impl<'py, T: Element + Real> Params<'py, T> {
    fn extract(w: &Bound<'py, PyAny>, b: &Bound<'py, PyAny>, c: &Bound<'py, PyAny>, visible: &str, hidden: &str) -> PyResult<Self> {
        let w = input::<T>(w, "components", 2)?;
        let b = input::<T>(b, "intercept_visible", 1)?;
        let c = input::<T>(c, "intercept_hidden", 1)?;
        let (nh, nv) = (w.shape()[0], w.shape()[1]);
    if nh == 0 || nv == 0 {
        return Err(value_error("components", format!("must have at least one hidden and one visible unit, got shape {:?}", w.shape())));
    }
        expect_shape("intercept_visible", b.shape(), &[nv])?;
        expect_shape("intercept_hidden", c.shape(), &[nh])?;
        Ok(Params { w, b, c, visible: units(visible, "visible")?, hidden: units(hidden, "hidden")? })
    }

    /// Visible states `v` (n, n_visible): in [0, 1] for Bernoulli visible units.
    fn visible_data(&self, v: &Bound<'py, PyAny>, name: &str) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
        let v = data::<T>(v, name, self.w.shape()[1])?;
        if let Some(bad) = self.visible.first_outside(v.as_slice()?) {
            let (range, title) = (self.visible.range(), self.visible.title());
            return Err(value_error(name, format!("expected {range} for {title} visible units, got {bad}")));
        }
        Ok(v)
    }

    fn rbm(&self) -> PyResult<Rbm<'_, T>> {
        Ok(Rbm {
            weight: self.w.as_slice()?,
            visible_bias: self.b.as_slice()?,
            hidden_bias: self.c.as_slice()?,
            n_visible: self.w.shape()[1],
            n_hidden: self.w.shape()[0],
            visible: self.visible,
            hidden: self.hidden,
        })
    }
}

fn data<'py, T: Element + Real>(v: &Bound<'py, PyAny>, name: &str, width: usize) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    let v = input::<T>(v, name, 2)?;
    if v.shape()[1] != width {
        return Err(value_error(name, format!("expected {width} columns, got {}", v.shape()[1])));
    }
    Ok(v)
}

#[allow(clippy::too_many_arguments)]
fn hidden_impl<'py, T: Real + Element>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    c: &Bound<'py, PyAny>,
    hidden: &str,
    seed: Option<u64>,
    step: u64,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let hidden = units(hidden, "hidden")?;
    let w = input::<T>(w, "components", 2)?;
    let c = input::<T>(c, "intercept_hidden", 1)?;
    let (nh, nv) = (w.shape()[0], w.shape()[1]);
    if nh == 0 || nv == 0 {
        return Err(value_error("components", format!("must have at least one hidden and one visible unit, got shape {:?}", w.shape())));
    }
    expect_shape("intercept_hidden", c.shape(), &[nh])?;
    let v = data::<T>(v, "v", nv)?;
    let n = v.shape()[0];
    let (ws, cs, vs) = (w.as_slice()?, c.as_slice()?, v.as_slice()?);
    // The visible bias is not needed for p(h | v).
    let zeros = vec![T::zero(); nv];
    ensure_allocatable("rbm_hidden", n.saturating_mul(2 * nh), std::mem::size_of::<T>())?;
    let (probs, samples) = run(py, "rbm_hidden", n_jobs, || {
        let rbm = Rbm { weight: ws, visible_bias: &zeros, hidden_bias: cs, n_visible: nv, n_hidden: nh, visible: Units::Bernoulli, hidden };
        let mut probs = vec![T::zero(); n * nh];
        let mut samples = seed.map(|_| vec![T::zero(); n * nh]);
        let key = StreamKey { seed: seed.unwrap_or(0), step, purpose: purpose::HIDDEN };
        rbm.hidden(vs, &mut probs, samples.as_deref_mut(), key);
        Ok((probs, samples))
    })?;
    let probs = new_array(py, &[n, nh], probs)?;
    Ok(match samples {
        Some(s) => (probs, new_array(py, &[n, nh], s)?).into_pyobject(py)?.into_any(),
        None => probs,
    })
}

/// The mean of h | v (n, n_hidden): p(h = 1 | v) for Bernoulli units, c + W v for Gaussian units;
/// with a seed, returns (mean, a sample of h).
#[pyfunction]
#[pyo3(signature = (v, components, intercept_hidden, *, hidden="bernoulli", seed=None, step=0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn rbm_hidden<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    components: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    hidden: &str,
    seed: Option<&Bound<'_, PyAny>>,
    step: i64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let step = super::arrays::count_arg(step, "step", 0)? as u64;
    let seed = super::arrays::optional_seed(seed, "seed")?;
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(components, "components")?, hidden_impl(py, v, components, intercept_hidden, hidden, seed, step, n_jobs))
}

#[allow(clippy::too_many_arguments)]
fn visible_impl<'py, T: Real + Element>(
    py: Python<'py>,
    h: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    visible: &str,
    seed: Option<u64>,
    step: u64,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let visible = units(visible, "visible")?;
    let w = input::<T>(w, "components", 2)?;
    let b = input::<T>(b, "intercept_visible", 1)?;
    let (nh, nv) = (w.shape()[0], w.shape()[1]);
    if nh == 0 || nv == 0 {
        return Err(value_error("components", format!("must have at least one hidden and one visible unit, got shape {:?}", w.shape())));
    }
    expect_shape("intercept_visible", b.shape(), &[nv])?;
    let h = data::<T>(h, "h", nh)?;
    let n = h.shape()[0];
    let (ws, bs, hs) = (w.as_slice()?, b.as_slice()?, h.as_slice()?);
    let zeros = vec![T::zero(); nh];
    ensure_allocatable("rbm_visible", n.saturating_mul(2 * nv), std::mem::size_of::<T>())?;
    let (mean, samples) = run(py, "rbm_visible", n_jobs, || {
        let rbm = Rbm { weight: ws, visible_bias: bs, hidden_bias: &zeros, n_visible: nv, n_hidden: nh, visible, hidden: Units::Bernoulli };
        let mut mean = vec![T::zero(); n * nv];
        let mut samples = seed.map(|_| vec![T::zero(); n * nv]);
        let key = StreamKey { seed: seed.unwrap_or(0), step, purpose: purpose::VISIBLE };
        rbm.visible(hs, &mut mean, samples.as_deref_mut(), key);
        Ok((mean, samples))
    })?;
    let mean = new_array(py, &[n, nv], mean)?;
    Ok(match samples {
        Some(s) => (mean, new_array(py, &[n, nv], s)?).into_pyobject(py)?.into_any(),
        None => mean,
    })
}

/// The mean of v | h (n, n_visible); with a seed, returns (mean, a sample of v).
#[pyfunction]
#[pyo3(signature = (h, components, intercept_visible, *, visible="bernoulli", seed=None, step=0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn rbm_visible<'py>(
    py: Python<'py>,
    h: &Bound<'py, PyAny>,
    components: &Bound<'py, PyAny>,
    intercept_visible: &Bound<'py, PyAny>,
    visible: &str,
    seed: Option<&Bound<'_, PyAny>>,
    step: i64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let step = super::arrays::count_arg(step, "step", 0)? as u64;
    let seed = super::arrays::optional_seed(seed, "seed")?;
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(components, "components")?, visible_impl(py, h, components, intercept_visible, visible, seed, step, n_jobs))
}

#[allow(clippy::too_many_arguments)]
fn free_energy_impl<'py, T: Real + Element>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    c: &Bound<'py, PyAny>,
    visible: &str,
    hidden: &str,
    pseudo: Option<Flips>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let p = Params::<T>::extract(w, b, c, visible, hidden)?;
    let v = p.visible_data(v, "v")?;
    let n = v.shape()[0];
    let vs = v.as_slice()?;
    let rbm = p.rbm()?;
    let name = if pseudo.is_some() { "rbm_pseudo_likelihood" } else { "rbm_free_energy" };
    ensure_allocatable(name, n.saturating_mul(rbm.n_hidden + 1), std::mem::size_of::<T>())?;
    let out = run(py, name, n_jobs, || {
        let mut out = vec![0.0f64; n];
        match pseudo {
            None => rbm.free_energy(vs, &mut out),
            Some(Flips::Drawn { seed, step }) => rbm.pseudo_likelihood(vs, &mut out, StreamKey { seed, step, purpose: purpose::PSEUDO_LIKELIHOOD })?,
            Some(Flips::Given(ref flip)) => rbm.pseudo_likelihood_flipping(vs, flip, &mut out)?,
        }
        Ok(out)
    })?;
    Ok(new_array(py, &[n], out)?)
}

/// Free energy F(v) of every row (float64, (n,)).
#[pyfunction]
#[pyo3(signature = (v, components, intercept_visible, intercept_hidden, *, visible="bernoulli", hidden="bernoulli", n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn rbm_free_energy<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    components: &Bound<'py, PyAny>,
    intercept_visible: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    visible: &str,
    hidden: &str,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(components, "components")?, free_energy_impl(py, v, components, intercept_visible, intercept_hidden, visible, hidden, None, n_jobs))
}

/// Which visible unit the pseudo-likelihood flips in each row.
enum Flips {
    /// One uniform draw per row from the stream (seed, step).
    Drawn { seed: u64, step: u64 },
    /// Given indices, one per row.
    Given(Vec<usize>),
}

/// scikit-learn's pseudo-likelihood proxy of every row (float64, (n,)), flipping in each row the unit
/// `flip[r]` if given, else one drawn from the stream (seed, step).
#[pyfunction]
#[pyo3(signature = (v, components, intercept_visible, intercept_hidden, *, seed=None, step=0, flip=None, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn rbm_pseudo_likelihood<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    components: &Bound<'py, PyAny>,
    intercept_visible: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    seed: Option<&Bound<'_, PyAny>>,
    step: i64,
    flip: Option<&Bound<'_, PyAny>>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let step = super::arrays::count_arg(step, "step", 0)? as u64;
    let flips = match (seed, flip) {
        (_, Some(flip)) => Flips::Given(indices(flip, "flip", usize::MAX)?),
        (Some(seed), None) => Flips::Drawn { seed: super::arrays::seed_arg(seed, "seed")?, step },
        (None, None) => return Err(PyValueError::new_err("rbm_pseudo_likelihood needs seed (random flips) or flip (one index per row)")),
    };
    let n_jobs = threads(n_jobs)?;
    dispatch!(
        float_dtype(components, "components")?,
        free_energy_impl(py, v, components, intercept_visible, intercept_hidden, "bernoulli", "bernoulli", Some(flips), n_jobs)
    )
}

#[allow(clippy::too_many_arguments)]
fn gibbs_impl<'py, T: Real + Element>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    c: &Bound<'py, PyAny>,
    visible: &str,
    hidden: &str,
    n_steps: usize,
    seed: u64,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let p = Params::<T>::extract(w, b, c, visible, hidden)?;
    let nv = p.w.shape()[1];
    let v = p.visible_data(v, "v")?;
    let n = v.shape()[0];
    let vs = v.as_slice()?;
    let rbm = p.rbm()?;
    ensure_allocatable("rbm_gibbs", n.saturating_mul(2 * (nv + rbm.n_hidden)), std::mem::size_of::<T>())?;
    let (state, mean) = run(py, "rbm_gibbs", n_jobs, || {
        let mut state = vs.to_vec();
        let mut mean = vec![T::zero(); vs.len()];
        rbm.gibbs_chain(&mut state, n_steps, Some(&mut mean), seed);
        Ok((state, mean))
    })?;
    Ok((new_array(py, &[n, nv], state)?, new_array(py, &[n, nv], mean)?))
}

/// `n_steps` of block Gibbs sampling v -> h -> v from the rows of v; returns (the last sample of v,
/// the mean of v | h at the last step). v itself is not modified.
#[pyfunction]
#[pyo3(signature = (v, components, intercept_visible, intercept_hidden, *, n_steps=1, visible="bernoulli", hidden="bernoulli", seed, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn rbm_gibbs<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    components: &Bound<'py, PyAny>,
    intercept_visible: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    n_steps: i64,
    visible: &str,
    hidden: &str,
    seed: &Bound<'_, PyAny>,
    n_jobs: Option<i64>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let seed = super::arrays::seed_arg(seed, "seed")?;
    let n_steps = super::arrays::count_arg(n_steps, "n_steps", 0)?;
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(components, "components")?, gibbs_impl(py, v, components, intercept_visible, intercept_hidden, visible, hidden, n_steps, seed, n_jobs))
}

#[allow(clippy::too_many_arguments)]
fn cd_impl<T: Real + Element>(
    py: Python<'_>,
    data_arr: &Bound<'_, PyAny>,
    w: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    c: &Bound<'_, PyAny>,
    vw: &Bound<'_, PyAny>,
    vb: &Bound<'_, PyAny>,
    vc: &Bound<'_, PyAny>,
    rows: Option<&Bound<'_, PyAny>>,
    h_samples: Option<&Bound<'_, PyAny>>,
    visible: Units,
    hidden: Units,
    settings: CdSettings,
    seed: u64,
    step: u64,
    n_jobs: usize,
) -> PyResult<()> {
    let mut w = output::<T>(w, "components", 2)?;
    let (nh, nv) = (w.shape()[0], w.shape()[1]);
    if nh == 0 || nv == 0 {
        return Err(value_error("components", format!("must have at least one hidden and one visible unit, got shape {:?}", w.shape())));
    }
    let mut b = output::<T>(b, "intercept_visible", 1)?;
    let mut c = output::<T>(c, "intercept_hidden", 1)?;
    let mut vw = output::<T>(vw, "components_velocity", 2)?;
    let mut vb = output::<T>(vb, "intercept_visible_velocity", 1)?;
    let mut vc = output::<T>(vc, "intercept_hidden_velocity", 1)?;
    expect_shape("intercept_visible", b.shape(), &[nv])?;
    expect_shape("intercept_hidden", c.shape(), &[nh])?;
    expect_shape("components_velocity", vw.shape(), &[nh, nv])?;
    expect_shape("intercept_visible_velocity", vb.shape(), &[nv])?;
    expect_shape("intercept_hidden_velocity", vc.shape(), &[nh])?;
    // Unchecked here: the step checks the minibatch's rows (x may be the whole data set).
    let x = input_unchecked::<T>(data_arr, "x", 2)?;
    if x.shape()[1] != nv {
        return Err(value_error("x", format!("expected {nv} columns, got {}", x.shape()[1])));
    }
    let n = x.shape()[0];
    let rows = rows.map(|r| indices(r, "rows", n)).transpose()?;
    let mut chain = h_samples.map(|h| output::<T>(h, "h_samples", 2)).transpose()?;
    if let Some(ch) = &chain {
        if ch.shape()[1] != nh {
            return Err(value_error("h_samples", format!("expected {nh} columns, got {}", ch.shape()[1])));
        }
    }
    let xs = x.as_slice()?;
    let chain_slice = match chain.as_mut() {
        Some(ch) => Some(ch.as_slice_mut()?),
        None => None,
    };
    let mut state = RbmState {
        weight: w.as_slice_mut()?,
        visible_bias: b.as_slice_mut()?,
        hidden_bias: c.as_slice_mut()?,
        weight_velocity: vw.as_slice_mut()?,
        visible_velocity: vb.as_slice_mut()?,
        hidden_velocity: vc.as_slice_mut()?,
        n_visible: nv,
        n_hidden: nh,
        visible,
        hidden,
    };
    run(py, "rbm_cd_step", n_jobs, || rbm::cd_step(&mut state, &Batch::new(xs, nv).rows(rows.as_deref()), chain_slice, &settings, seed, step))
}

/// One CD-k step (PCD-k with h_samples, the persistent hidden chains) on the minibatch X[rows] (or all
/// of X), updating the parameters and their velocities in place.
#[pyfunction]
#[pyo3(signature = (x, components, intercept_visible, intercept_hidden, components_velocity, intercept_visible_velocity,
    intercept_hidden_velocity, *, rows=None, h_samples=None, visible="bernoulli", hidden="bernoulli", k=1, learning_rate=0.1, momentum=0.0,
    weight_decay=0.0, seed, step, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn rbm_cd_step(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    components: &Bound<'_, PyAny>,
    intercept_visible: &Bound<'_, PyAny>,
    intercept_hidden: &Bound<'_, PyAny>,
    components_velocity: &Bound<'_, PyAny>,
    intercept_visible_velocity: &Bound<'_, PyAny>,
    intercept_hidden_velocity: &Bound<'_, PyAny>,
    rows: Option<&Bound<'_, PyAny>>,
    h_samples: Option<&Bound<'_, PyAny>>,
    visible: &str,
    hidden: &str,
    k: i64,
    learning_rate: f64,
    momentum: f64,
    weight_decay: f64,
    seed: &Bound<'_, PyAny>,
    step: i64,
    n_jobs: Option<i64>,
) -> PyResult<()> {
    let seed = super::arrays::seed_arg(seed, "seed")?;
    let step = super::arrays::count_arg(step, "step", 0)? as u64;
    let k = super::arrays::count_arg(k, "k", 1)?;
    let n_jobs = threads(n_jobs)?;
    let visible = units(visible, "visible")?;
    let hidden = units(hidden, "hidden")?;
    let settings = CdSettings { k, learning_rate, momentum, weight_decay };
    settings.validate().map_err(|e| value_error("rbm_cd_step", e))?;
    dispatch!(
        float_dtype(components, "components")?,
        cd_impl(
            py, x, components, intercept_visible, intercept_hidden, components_velocity, intercept_visible_velocity,
            intercept_hidden_velocity, rows, h_samples, visible, hidden, settings, seed, step, n_jobs
        )
    )
}

#[allow(clippy::too_many_arguments)]
fn exact_impl<T: Real + Element>(py: Python<'_>, w: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>, c: &Bound<'_, PyAny>, visible: &str, max_units: usize, n_jobs: usize) -> PyResult<f64> {
    let p = Params::<T>::extract(w, b, c, visible, "bernoulli")?;
    let rbm = p.rbm()?;
    run(py, "rbm_log_partition_exact", n_jobs, || ais::log_partition_exact(&rbm, max_units))
}

/// Exact log Z by enumerating the smaller layer (at most max_units <= 24 units).
#[pyfunction]
#[pyo3(signature = (components, intercept_visible, intercept_hidden, *, visible="bernoulli", max_units=20, n_jobs=None))]
fn rbm_log_partition_exact(
    py: Python<'_>,
    components: &Bound<'_, PyAny>,
    intercept_visible: &Bound<'_, PyAny>,
    intercept_hidden: &Bound<'_, PyAny>,
    visible: &str,
    max_units: i64,
    n_jobs: Option<i64>,
) -> PyResult<f64> {
    let max_units = super::arrays::count_arg(max_units, "max_units", 1)?;
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(components, "components")?, exact_impl(py, components, intercept_visible, intercept_hidden, visible, max_units, n_jobs))
}

#[allow(clippy::too_many_arguments)]
fn ais_impl<'py, T: Real + Element>(
    py: Python<'py>,
    w: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    c: &Bound<'py, PyAny>,
    base_bias: &Bound<'py, PyAny>,
    betas: &Bound<'py, PyAny>,
    visible: &str,
    n_chains: usize,
    seed: u64,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, f64)> {
    let p = Params::<T>::extract(w, b, c, visible, "bernoulli")?;
    let nv = p.w.shape()[1];
    let base = input::<T>(base_bias, "base_bias", 1)?;
    expect_shape("base_bias", base.shape(), &[nv])?;
    let betas = input::<f64>(betas, "betas", 1)?;
    let (bs, betas) = (base.as_slice()?, betas.as_slice()?);
    let rbm = p.rbm()?;
    let log_w = run(py, "rbm_ais", n_jobs, || ais::ais_log_weights(&rbm, bs, betas, n_chains, seed))?;
    let log_z_base = ais::base_log_partition(bs, rbm.n_hidden, rbm.visible);
    Ok((new_array(py, &[n_chains], log_w)?, log_z_base))
}

/// Annealed importance sampling: returns (log importance weights (n_chains,), log Z of the base-rate
/// model). The estimate is log Z_base + log mean exp(log_w).
#[pyfunction]
#[pyo3(signature = (components, intercept_visible, intercept_hidden, base_bias, betas, *, visible="bernoulli", n_chains=100, seed, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn rbm_ais<'py>(
    py: Python<'py>,
    components: &Bound<'py, PyAny>,
    intercept_visible: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    base_bias: &Bound<'py, PyAny>,
    betas: &Bound<'py, PyAny>,
    visible: &str,
    n_chains: i64,
    seed: &Bound<'_, PyAny>,
    n_jobs: Option<i64>,
) -> PyResult<(Bound<'py, PyAny>, f64)> {
    let seed = super::arrays::seed_arg(seed, "seed")?;
    let n_chains = super::arrays::count_arg(n_chains, "n_chains", 1)?;
    let n_jobs = threads(n_jobs)?;
    dispatch!(
        float_dtype(components, "components")?,
        ais_impl(py, components, intercept_visible, intercept_hidden, base_bias, betas, visible, n_chains, seed, n_jobs)
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rbm_hidden, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_visible, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_free_energy, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_pseudo_likelihood, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_gibbs, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_cd_step, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_log_partition_exact, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_ais, m)?)?;
    Ok(())
}
