//! Bindings of the basic kernels: GEMM, activations, samplers.

use numpy::{Element, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::arrays::{dispatch, expect_shape, float_dtype, input, input_unchecked, ndim_of, new_array, output, SeedStep};
use super::errors::{run, value_error};
use crate::activations::{self, Activation};
use crate::linalg::{gemm as gemm_kernel, Threads, View, ViewMut};
use crate::real::Real;
use crate::rng::purpose;
use crate::sampling;

/// A product `c = alpha * op(a) @ op(b) + beta * c` as passed from Python.
pub struct Gemm<'a, 'py> {
    pub a: &'a Bound<'py, PyAny>,
    pub b: &'a Bound<'py, PyAny>,
    pub c: &'a Bound<'py, PyAny>,
    pub alpha: f64,
    pub beta: f64,
    pub trans_a: bool,
    pub trans_b: bool,
}

pub fn gemm(py: Python<'_>, product: Gemm<'_, '_>, n_jobs: usize) -> PyResult<()> {
    dispatch!(float_dtype(product.c, "c")?, gemm_typed(py, &product, n_jobs))
}

fn gemm_typed<T: Real + Element>(py: Python<'_>, product: &Gemm<'_, '_>, n_jobs: usize) -> PyResult<()> {
    let Gemm { alpha, beta, trans_a, trans_b, .. } = *product;
    // Like BLAS, gemm propagates NaN and infinity in its operands (checking them would cost a tenth
    // of a product's time); its scalars must be finite.
    for (name, value) in [("alpha", alpha), ("beta", beta)] {
        if !value.is_finite() {
            return Err(value_error(name, format!("a finite number, got {value}")));
        }
    }
    let a = input_unchecked::<T>(product.a, "a", 2)?;
    let b = input_unchecked::<T>(product.b, "b", 2)?;
    let mut c = output::<T>(product.c, "c", 2)?;
    let (sa, sb, sc) = (a.shape().to_vec(), b.shape().to_vec(), c.shape().to_vec());
    let (m, k) = if trans_a { (sa[1], sa[0]) } else { (sa[0], sa[1]) };
    let (k2, n) = if trans_b { (sb[1], sb[0]) } else { (sb[0], sb[1]) };
    // The kernel asserts its shapes (a mismatch there is a bug): the binding checks them first.
    if k != k2 {
        return Err(value_error("gemm", format!("op(a) is {m}x{k} but op(b) is {k2}x{n}: inner dimensions differ")));
    }
    expect_shape("c", &sc, &[m, n])?;
    let (av, bv) = (a.as_slice()?, b.as_slice()?);
    let cv = c.as_slice_mut()?;
    run(py, "gemm", n_jobs, || {
        let mut va = View::new(av, sa[0], sa[1]);
        let mut vb = View::new(bv, sb[0], sb[1]);
        if trans_a {
            va = va.t();
        }
        if trans_b {
            vb = vb.t();
        }
        gemm_kernel(T::of(alpha), va, vb, T::of(beta), ViewMut::new(cv, m, n), Threads::Pool);
        Ok(())
    })
}

pub fn activation<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, name: &str, derivative: bool, n_jobs: usize) -> PyResult<Bound<'py, PyAny>> {
    let act = Activation::parse(name).map_err(|e| value_error("activation", e))?;
    dispatch!(float_dtype(x, "x")?, activation_typed(py, x, act, derivative, n_jobs))
}

fn activation_typed<'py, T: Real + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    act: Activation,
    derivative: bool,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let x = input::<T>(x, "x", ndim_of(x))?;
    let xs = x.as_slice()?;
    let out = run(py, "activation", n_jobs, || {
        let mut out = vec![T::zero(); xs.len()];
        if derivative {
            activations::apply_derivative(act, xs, &mut out);
        } else {
            activations::apply(act, xs, &mut out);
        }
        Ok(out)
    })?;
    new_array(py, x.shape(), out)
}

pub fn sigmoid_bernoulli<'py>(
    py: Python<'py>,
    pre: &Bound<'py, PyAny>,
    bias: &Bound<'py, PyAny>,
    draw: SeedStep,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    dispatch!(float_dtype(pre, "pre")?, sigmoid_bernoulli_typed(py, pre, bias, draw, n_jobs))
}

fn sigmoid_bernoulli_typed<'py, T: Real + Element>(
    py: Python<'py>,
    pre: &Bound<'py, PyAny>,
    bias: &Bound<'py, PyAny>,
    draw: SeedStep,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let pre = input::<T>(pre, "pre", 2)?;
    let bias = input::<T>(bias, "bias", 1)?;
    let shape = pre.shape().to_vec();
    expect_shape("bias", bias.shape(), &[shape[1]])?;
    let (ps, bs) = (pre.as_slice()?, bias.as_slice()?);
    let (probs, samples) = run(py, "sigmoid_bernoulli", n_jobs, || {
        let mut probs = ps.to_vec();
        let mut samples = vec![T::zero(); ps.len()];
        sampling::sigmoid_bernoulli(&mut probs, shape[1], bs, Some(&mut samples), draw.key(purpose::USER));
        Ok((probs, samples))
    })?;
    Ok((new_array(py, &shape, probs)?, new_array(py, &shape, samples)?))
}

pub fn bernoulli<'py>(py: Python<'py>, probs: &Bound<'py, PyAny>, draw: SeedStep, n_jobs: usize) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(float_dtype(probs, "probs")?, bernoulli_typed(py, probs, draw, n_jobs))
}

fn bernoulli_typed<'py, T: Real + Element>(
    py: Python<'py>,
    probs: &Bound<'py, PyAny>,
    draw: SeedStep,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let probs = input::<T>(probs, "probs", ndim_of(probs))?;
    let ps = probs.as_slice()?;
    if let Some(bad) = ps.iter().find(|p| !(**p >= T::zero() && **p <= T::one())) {
        return Err(value_error("bernoulli", format!("probs must lie in [0, 1], got {bad}")));
    }
    let out = run(py, "bernoulli", n_jobs, || {
        let mut s = vec![T::zero(); ps.len()];
        sampling::bernoulli(ps, &mut s, draw.key(purpose::USER));
        Ok(s)
    })?;
    new_array(py, probs.shape(), out)
}

pub fn gaussian<'py>(
    py: Python<'py>,
    mean: &Bound<'py, PyAny>,
    scale: &Bound<'py, PyAny>,
    draw: SeedStep,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    dispatch!(float_dtype(mean, "mean")?, gaussian_typed(py, mean, scale, draw, n_jobs))
}

fn gaussian_typed<'py, T: Real + Element>(
    py: Python<'py>,
    mean: &Bound<'py, PyAny>,
    scale: &Bound<'py, PyAny>,
    draw: SeedStep,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let mean = input::<T>(mean, "mean", ndim_of(mean))?;
    let scale = input::<T>(scale, "scale", ndim_of(scale))?;
    let shape = mean.shape().to_vec();
    let (ms, ss) = (mean.as_slice()?, scale.as_slice()?);
    if ss.len() != 1 && scale.shape() != mean.shape() {
        return Err(value_error(
            "gaussian",
            format!("scale must have the shape of mean {:?} or a single value, got {:?}", shape, scale.shape()),
        ));
    }
    let (out, eps) = run(py, "gaussian", n_jobs, || {
        let mut out = vec![T::zero(); ms.len()];
        let mut eps = vec![T::zero(); ms.len()];
        sampling::gaussian(ms, ss, &mut out, Some(&mut eps), draw.key(purpose::NOISE));
        Ok((out, eps))
    })?;
    Ok((new_array(py, &shape, out)?, new_array(py, &shape, eps)?))
}
