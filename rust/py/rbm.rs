//! Bindings of the RBM kernels and of the partition-function estimators.

use numpy::{Element, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::arrays::{dispatch, expect_shape, float_dtype, indices, input, input_unchecked, new_array, output, rows_of, seed_arg, SeedStep};
use super::errors::{ensure_allocatable, run, to_pyerr, value_error};
use crate::ais;
use crate::batch::Batch;
use crate::rbm::{self, CdSettings, Rbm, RbmState};
use crate::real::Real;
use crate::rng::purpose;
use crate::units::Units;

/// An RBM as passed from Python: its arrays and unit types. A function that needs only one bias
/// gets `None` for the other (zeros stand in for it).
pub struct RbmArgs<'a, 'py> {
    pub components: &'a Bound<'py, PyAny>,
    pub intercept_visible: Option<&'a Bound<'py, PyAny>>,
    pub intercept_hidden: Option<&'a Bound<'py, PyAny>>,
    pub visible: Units,
    pub hidden: Units,
}

impl<'a, 'py> RbmArgs<'a, 'py> {
    /// An RBM with both biases.
    pub fn full(
        components: &'a Bound<'py, PyAny>,
        visible_bias: &'a Bound<'py, PyAny>,
        hidden_bias: &'a Bound<'py, PyAny>,
        visible: Units,
        hidden: Units,
    ) -> Self {
        RbmArgs { components, intercept_visible: Some(visible_bias), intercept_hidden: Some(hidden_bias), visible, hidden }
    }
}

/// A bias borrowed from Python, or zeros for one a function does not take.
enum Bias<'py, T: Element> {
    Given(PyReadonlyArrayDyn<'py, T>),
    Zeros(Vec<T>),
}

impl<T: Element + Real> Bias<'_, T> {
    fn as_slice(&self) -> PyResult<&[T]> {
        match self {
            Bias::Given(a) => Ok(a.as_slice()?),
            Bias::Zeros(z) => Ok(z),
        }
    }
}

/// The arrays of an RBM, borrowed read-only.
struct Params<'py, T: Element> {
    w: PyReadonlyArrayDyn<'py, T>,
    b: Bias<'py, T>,
    c: Bias<'py, T>,
    visible: Units,
    hidden: Units,
}

impl<'py, T: Element + Real> Params<'py, T> {
    fn borrow(args: &RbmArgs<'_, 'py>) -> PyResult<Self> {
        let w = input::<T>(args.components, "components", 2)?;
        let (nh, nv) = (w.shape()[0], w.shape()[1]);
        let bias = |arg: Option<&Bound<'py, PyAny>>, name: &str, len: usize| -> PyResult<Bias<'py, T>> {
            Ok(match arg {
                Some(a) => Bias::Given(input::<T>(a, name, 1)?),
                None => Bias::Zeros(vec![T::zero(); len]),
            })
        };
        let b = bias(args.intercept_visible, "intercept_visible", nv)?;
        let c = bias(args.intercept_hidden, "intercept_hidden", nh)?;
        Ok(Params { w, b, c, visible: args.visible, hidden: args.hidden })
    }

    /// The RBM, its shapes checked by the kernel (`function` names the call in errors).
    fn rbm(&self, function: &str) -> PyResult<Rbm<'_, T>> {
        let rbm = Rbm {
            weight: self.w.as_slice()?,
            visible_bias: self.b.as_slice()?,
            hidden_bias: self.c.as_slice()?,
            n_visible: self.w.shape()[1],
            n_hidden: self.w.shape()[0],
            visible: self.visible,
            hidden: self.hidden,
        };
        rbm.check().map_err(|e| to_pyerr(function, e))?;
        Ok(rbm)
    }

    /// Visible states `v` (n, n_visible), in the range of the visible units.
    fn visible_data(&self, v: &Bound<'py, PyAny>, name: &str) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
        let v = rows_of::<T>(v, name, self.w.shape()[1])?;
        if let Some(bad) = self.visible.first_outside(v.as_slice()?) {
            let (range, title) = (self.visible.range(), self.visible.title());
            return Err(value_error(name, format!("expected {range} for {title} visible units, got {bad}")));
        }
        Ok(v)
    }
}

/// The mean of h | v, and with `draw` a sample: `mean` or `(mean, sample)`.
pub fn hidden<'py>(
    py: Python<'py>,
    model: RbmArgs<'_, 'py>,
    v: &Bound<'py, PyAny>,
    draw: Option<SeedStep>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(float_dtype(model.components, "components")?, conditional(py, &model, v, Layer::Hidden, draw, n_jobs))
}

/// The mean of v | h, and with `draw` a sample: `mean` or `(mean, sample)`.
pub fn visible<'py>(
    py: Python<'py>,
    model: RbmArgs<'_, 'py>,
    h: &Bound<'py, PyAny>,
    draw: Option<SeedStep>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(float_dtype(model.components, "components")?, conditional(py, &model, h, Layer::Visible, draw, n_jobs))
}

/// The layer a conditional gives the distribution of.
#[derive(Clone, Copy, PartialEq)]
enum Layer {
    Hidden,
    Visible,
}

fn conditional<'py, T: Real + Element>(
    py: Python<'py>,
    model: &RbmArgs<'_, 'py>,
    given: &Bound<'py, PyAny>,
    layer: Layer,
    draw: Option<SeedStep>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let function = if layer == Layer::Hidden { "rbm_hidden" } else { "rbm_visible" };
    let p = Params::<T>::borrow(model)?;
    let rbm = p.rbm(function)?;
    let (name, width_in, width_out) = match layer {
        Layer::Hidden => ("v", rbm.n_visible, rbm.n_hidden),
        Layer::Visible => ("h", rbm.n_hidden, rbm.n_visible),
    };
    let given = rows_of::<T>(given, name, width_in)?;
    let n = given.shape()[0];
    let gs = given.as_slice()?;
    ensure_allocatable(function, n.saturating_mul(2 * width_out), std::mem::size_of::<T>())?;
    let (mean, samples) = run(py, function, n_jobs, || {
        let mut mean = vec![T::zero(); n * width_out];
        let mut samples = draw.map(|_| vec![T::zero(); n * width_out]);
        // Without a draw the key is not read.
        let draw = draw.unwrap_or(SeedStep { seed: 0, step: 0 });
        match layer {
            Layer::Hidden => rbm.hidden(gs, &mut mean, samples.as_deref_mut(), draw.key(purpose::HIDDEN)),
            Layer::Visible => rbm.visible(gs, &mut mean, samples.as_deref_mut(), draw.key(purpose::VISIBLE)),
        }
        Ok((mean, samples))
    })?;
    let mean = new_array(py, &[n, width_out], mean)?;
    Ok(match samples {
        Some(s) => (mean, new_array(py, &[n, width_out], s)?).into_pyobject(py)?.into_any(),
        None => mean,
    })
}

/// Which visible unit the pseudo-likelihood flips in each row.
pub enum Flips {
    /// One uniform draw per row from the stream (seed, step).
    Drawn(SeedStep),
    /// Given indices, one per row.
    Given(Vec<usize>),
}

impl Flips {
    /// `flip` if given, else draws from (seed, step); one of them is required.
    pub fn parse(seed: Option<&Bound<'_, PyAny>>, step: u64, flip: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        match (seed, flip) {
            (_, Some(flip)) => Ok(Flips::Given(indices(flip, "flip")?)),
            (Some(seed), None) => Ok(Flips::Drawn(SeedStep { seed: seed_arg(seed, "seed")?, step })),
            (None, None) => Err(PyValueError::new_err("rbm_pseudo_likelihood needs seed (random flips) or flip (one index per row)")),
        }
    }
}

/// The free energy of every row of v, or with `flips` scikit-learn's pseudo-likelihood proxy.
pub fn free_energy<'py>(
    py: Python<'py>,
    model: RbmArgs<'_, 'py>,
    v: &Bound<'py, PyAny>,
    flips: Option<Flips>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(float_dtype(model.components, "components")?, free_energy_typed(py, &model, v, flips, n_jobs))
}

fn free_energy_typed<'py, T: Real + Element>(
    py: Python<'py>,
    model: &RbmArgs<'_, 'py>,
    v: &Bound<'py, PyAny>,
    flips: Option<Flips>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let name = if flips.is_some() { "rbm_pseudo_likelihood" } else { "rbm_free_energy" };
    let p = Params::<T>::borrow(model)?;
    let rbm = p.rbm(name)?;
    let v = p.visible_data(v, "v")?;
    let n = v.shape()[0];
    let vs = v.as_slice()?;
    ensure_allocatable(name, n.saturating_mul(rbm.n_hidden + 1), std::mem::size_of::<T>())?;
    let out = run(py, name, n_jobs, || {
        let mut out = vec![0.0f64; n];
        match flips {
            None => rbm.free_energy(vs, &mut out),
            Some(Flips::Drawn(draw)) => rbm.pseudo_likelihood(vs, &mut out, draw.key(purpose::PSEUDO_LIKELIHOOD))?,
            Some(Flips::Given(ref flip)) => rbm.pseudo_likelihood_flipping(vs, flip, &mut out)?,
        }
        Ok(out)
    })?;
    new_array(py, &[n], out)
}

/// `n_steps` of block Gibbs sampling from the rows of v: (the last sample, the last mean of v | h).
pub fn gibbs<'py>(
    py: Python<'py>,
    model: RbmArgs<'_, 'py>,
    v: &Bound<'py, PyAny>,
    n_steps: usize,
    seed: u64,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    dispatch!(float_dtype(model.components, "components")?, gibbs_typed(py, &model, v, n_steps, seed, n_jobs))
}

fn gibbs_typed<'py, T: Real + Element>(
    py: Python<'py>,
    model: &RbmArgs<'_, 'py>,
    v: &Bound<'py, PyAny>,
    n_steps: usize,
    seed: u64,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let p = Params::<T>::borrow(model)?;
    let rbm = p.rbm("rbm_gibbs")?;
    let v = p.visible_data(v, "v")?;
    let (n, nv) = (v.shape()[0], rbm.n_visible);
    let vs = v.as_slice()?;
    ensure_allocatable("rbm_gibbs", n.saturating_mul(2 * (nv + rbm.n_hidden)), std::mem::size_of::<T>())?;
    let (state, mean) = run(py, "rbm_gibbs", n_jobs, || {
        let mut state = vs.to_vec();
        let mut mean = vec![T::zero(); vs.len()];
        rbm.gibbs_chain(&mut state, n_steps, Some(&mut mean), seed);
        Ok((state, mean))
    })?;
    Ok((new_array(py, &[n, nv], state)?, new_array(py, &[n, nv], mean)?))
}

/// One CD-k step as passed from Python.
pub struct CdStep<'a, 'py> {
    pub x: &'a Bound<'py, PyAny>,
    /// components, intercept_visible, intercept_hidden, then their velocities (all updated in place).
    pub params: [&'a Bound<'py, PyAny>; 6],
    pub visible: Units,
    pub hidden: Units,
    pub rows: Option<&'a Bound<'py, PyAny>>,
    pub h_samples: Option<&'a Bound<'py, PyAny>>,
    pub settings: CdSettings,
    pub draw: SeedStep,
}

pub fn cd_step(py: Python<'_>, step: CdStep<'_, '_>, n_jobs: usize) -> PyResult<()> {
    dispatch!(float_dtype(step.params[0], "components")?, cd_step_typed(py, &step, n_jobs))
}

fn cd_step_typed<T: Real + Element>(py: Python<'_>, step: &CdStep<'_, '_>, n_jobs: usize) -> PyResult<()> {
    const NAMES: [&str; 6] = [
        "components",
        "intercept_visible",
        "intercept_hidden",
        "components_velocity",
        "intercept_visible_velocity",
        "intercept_hidden_velocity",
    ];
    let borrow = |i: usize, ndim: usize| output::<T>(step.params[i], NAMES[i], ndim);
    let (mut w, mut b, mut c) = (borrow(0, 2)?, borrow(1, 1)?, borrow(2, 1)?);
    let (mut vw, mut vb, mut vc) = (borrow(3, 2)?, borrow(4, 1)?, borrow(5, 1)?);
    let (nh, nv) = (w.shape()[0], w.shape()[1]);
    // The kernel checks sizes; only here is the weight velocity's 2-D layout seen.
    expect_shape(NAMES[3], vw.shape(), &[nh, nv])?;
    // Unchecked here: the step checks the minibatch's rows (x may be the whole data set).
    let x = input_unchecked::<T>(step.x, "x", 2)?;
    if x.shape()[1] != nv {
        return Err(value_error("x", format!("expected {nv} columns, got {}", x.shape()[1])));
    }
    let rows = step.rows.map(|r| indices(r, "rows")).transpose()?;
    let mut chain = step.h_samples.map(|h| output::<T>(h, "h_samples", 2)).transpose()?;
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
        visible: step.visible,
        hidden: step.hidden,
    };
    let (settings, draw) = (step.settings, step.draw);
    run(py, "rbm_cd_step", n_jobs, || {
        let batch = Batch::new(xs, nv).rows(rows.as_deref());
        rbm::cd_step(&mut state, &batch, chain_slice, &settings, draw.seed, draw.step)
    })
}

pub fn log_partition_exact(py: Python<'_>, model: RbmArgs<'_, '_>, max_units: usize, n_jobs: usize) -> PyResult<f64> {
    dispatch!(float_dtype(model.components, "components")?, exact_typed(py, &model, max_units, n_jobs))
}

fn exact_typed<T: Real + Element>(py: Python<'_>, model: &RbmArgs<'_, '_>, max_units: usize, n_jobs: usize) -> PyResult<f64> {
    let p = Params::<T>::borrow(model)?;
    let rbm = p.rbm("rbm_log_partition_exact")?;
    run(py, "rbm_log_partition_exact", n_jobs, || ais::log_partition_exact(&rbm, max_units))
}

/// The annealing of AIS as passed from Python.
pub struct Annealing<'a, 'py> {
    pub base_bias: &'a Bound<'py, PyAny>,
    pub betas: &'a Bound<'py, PyAny>,
    pub n_chains: usize,
    pub seed: u64,
}

pub fn ais<'py>(
    py: Python<'py>,
    model: RbmArgs<'_, 'py>,
    annealing: Annealing<'_, 'py>,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, f64)> {
    dispatch!(float_dtype(model.components, "components")?, ais_typed(py, &model, &annealing, n_jobs))
}

fn ais_typed<'py, T: Real + Element>(
    py: Python<'py>,
    model: &RbmArgs<'_, 'py>,
    annealing: &Annealing<'_, 'py>,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, f64)> {
    let p = Params::<T>::borrow(model)?;
    let rbm = p.rbm("rbm_ais")?;
    let base = input::<T>(annealing.base_bias, "base_bias", 1)?;
    let betas = input::<f64>(annealing.betas, "betas", 1)?;
    let (bs, betas) = (base.as_slice()?, betas.as_slice()?);
    let (n_chains, seed) = (annealing.n_chains, annealing.seed);
    let log_w = run(py, "rbm_ais", n_jobs, || ais::ais_log_weights(&rbm, bs, betas, n_chains, seed))?;
    let log_z_base = ais::base_log_partition(bs, rbm.n_hidden, rbm.visible);
    Ok((new_array(py, &[n_chains], log_w)?, log_z_base))
}
