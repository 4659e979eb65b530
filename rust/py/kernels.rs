//! Bindings of the basic kernels: GEMM, activations, samplers.

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{Element, IntoPyArray, PyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::arrays::{expect_shape, float_dtype, input, input_unchecked, ndim_of, output, threads};
use super::errors::{run, value_error};
use crate::activations::{self, Activation};
use crate::sampling::{self, StreamKey};
use crate::linalg::{gemm as gemm_kernel, Threads, View, ViewMut};
use crate::real::Real;
use crate::rng::purpose;

macro_rules! dispatch {
    ($dtype:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $dtype {
            $crate::py::arrays::Dtype::F32 => $f::<f32>($($arg),*),
            $crate::py::arrays::Dtype::F64 => $f::<f64>($($arg),*),
        }
    };
}
pub(crate) use dispatch;

fn gemm_impl<T: Real + Element>(
    py: Python<'_>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    c: &Bound<'_, PyAny>,
    alpha: f64,
    beta: f64,
    trans_a: bool,
    trans_b: bool,
    n_jobs: usize,
) -> PyResult<()> {
    // Like BLAS, gemm propagates NaN and infinity in its operands (checking them would cost a tenth
    // of a product's time); its scalars must be finite.
    for (name, value) in [("alpha", alpha), ("beta", beta)] {
        if !value.is_finite() {
            return Err(value_error(name, format!("a finite number, got {value}")));
        }
    }
    let a = input_unchecked::<T>(a, "a", 2)?;
    let b = input_unchecked::<T>(b, "b", 2)?;
    let mut c = output::<T>(c, "c", 2)?;
    let (sa, sb, sc) = (a.shape().to_vec(), b.shape().to_vec(), c.shape().to_vec());
    let (m, k) = if trans_a { (sa[1], sa[0]) } else { (sa[0], sa[1]) };
    let (k2, n) = if trans_b { (sb[1], sb[0]) } else { (sb[0], sb[1]) };
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

/// c = alpha * op(a) @ op(b) + beta * c, in place (op = transpose if trans_*), float32 or float64.
#[pyfunction]
#[pyo3(signature = (a, b, c, *, alpha=1.0, beta=0.0, trans_a=false, trans_b=false, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn gemm(
    py: Python<'_>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    c: &Bound<'_, PyAny>,
    alpha: f64,
    beta: f64,
    trans_a: bool,
    trans_b: bool,
    n_jobs: Option<i64>,
) -> PyResult<()> {
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(c, "c")?, gemm_impl(py, a, b, c, alpha, beta, trans_a, trans_b, n_jobs))
}

fn new_like<'py, T: Element + Real>(py: Python<'py>, shape: &[usize], data: Vec<T>) -> Bound<'py, PyArrayDyn<T>> {
    ArrayD::from_shape_vec(IxDyn(shape), data).expect("shape matches data").into_pyarray(py)
}

fn activation_impl<'py, T: Real + Element>(py: Python<'py>, x: &Bound<'py, PyAny>, name: &str, derivative: bool, n_jobs: usize) -> PyResult<Bound<'py, PyAny>> {
    let act = Activation::parse(name).map_err(|e| value_error("activation", e))?;
    let xa = ndim_of(x);
    let x = input::<T>(x, "x", xa)?;
    let shape = x.shape().to_vec();
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
    Ok(new_like(py, &shape, out).into_any())
}

/// f(x) (or f'(x) with derivative=True) elementwise for f in 'identity', 'sigmoid', 'tanh', 'relu',
/// 'softplus'; returns a new array of x's shape and dtype.
#[pyfunction]
#[pyo3(signature = (x, name, *, derivative=false, n_jobs=None))]
fn activation<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, name: &str, derivative: bool, n_jobs: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(x, "x")?, activation_impl(py, x, name, derivative, n_jobs))
}

fn sigmoid_bernoulli_impl<'py, T: Real + Element>(
    py: Python<'py>,
    pre: &Bound<'py, PyAny>,
    bias: &Bound<'py, PyAny>,
    seed: u64,
    step: u64,
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
        sampling::sigmoid_bernoulli(&mut probs, shape[1], bs, Some(&mut samples), StreamKey { seed, step, purpose: purpose::USER });
        Ok((probs, samples))
    })?;
    Ok((new_like(py, &shape, probs).into_any(), new_like(py, &shape, samples).into_any()))
}

/// The fused unit update: probs = sigmoid(pre + bias) (bias broadcast over rows), and samples[i] = 1
/// with probability probs[i]. Returns (probs, samples). Same (seed, step) -> same samples, for any n_jobs.
#[pyfunction]
#[pyo3(signature = (pre, bias, *, seed, step=0, n_jobs=None))]
fn sigmoid_bernoulli<'py>(
    py: Python<'py>,
    pre: &Bound<'py, PyAny>,
    bias: &Bound<'py, PyAny>,
    seed: &Bound<'_, PyAny>,
    step: i64,
    n_jobs: Option<i64>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let seed = super::arrays::seed_arg(seed, "seed")?;
    let step = super::arrays::count_arg(step, "step", 0)? as u64;
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(pre, "pre")?, sigmoid_bernoulli_impl(py, pre, bias, seed, step, n_jobs))
}

fn bernoulli_impl<'py, T: Real + Element>(py: Python<'py>, probs: &Bound<'py, PyAny>, seed: u64, step: u64, n_jobs: usize) -> PyResult<Bound<'py, PyAny>> {
    let nd = ndim_of(probs);
    let probs = input::<T>(probs, "probs", nd)?;
    let shape = probs.shape().to_vec();
    let ps = probs.as_slice()?;
    if let Some(bad) = ps.iter().find(|p| !(**p >= T::zero() && **p <= T::one())) {
        return Err(value_error("bernoulli", format!("probs must lie in [0, 1], got {bad}")));
    }
    let out = run(py, "bernoulli", n_jobs, || {
        let mut s = vec![T::zero(); ps.len()];
        sampling::bernoulli(ps, &mut s, StreamKey { seed, step, purpose: purpose::USER });
        Ok(s)
    })?;
    Ok(new_like(py, &shape, out).into_any())
}

/// Bernoulli draws: a new array with 1 where a uniform draw falls below probs, else 0.
#[pyfunction]
#[pyo3(signature = (probs, *, seed, step=0, n_jobs=None))]
fn bernoulli<'py>(py: Python<'py>, probs: &Bound<'py, PyAny>, seed: u64, step: u64, n_jobs: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(probs, "probs")?, bernoulli_impl(py, probs, seed, step, n_jobs))
}

fn gaussian_impl<'py, T: Real + Element>(
    py: Python<'py>,
    mean: &Bound<'py, PyAny>,
    scale: &Bound<'py, PyAny>,
    seed: u64,
    step: u64,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let nd = ndim_of(mean);
    let mean = input::<T>(mean, "mean", nd)?;
    let snd = ndim_of(scale);
    let scale = input::<T>(scale, "scale", snd)?;
    let shape = mean.shape().to_vec();
    let (ms, ss) = (mean.as_slice()?, scale.as_slice()?);
    if ss.len() != 1 && scale.shape() != mean.shape() {
        return Err(value_error("gaussian", format!("scale must have the shape of mean {:?} or a single value, got {:?}", shape, scale.shape())));
    }
    let (out, eps) = run(py, "gaussian", n_jobs, || {
        let mut out = vec![T::zero(); ms.len()];
        let mut eps = vec![T::zero(); ms.len()];
        sampling::gaussian(ms, ss, &mut out, Some(&mut eps), StreamKey { seed, step, purpose: purpose::NOISE });
        Ok((out, eps))
    })?;
    Ok((new_like(py, &shape, out).into_any(), new_like(py, &shape, eps).into_any()))
}

/// Reparameterised Gaussian draws: returns (mean + scale * eps, eps) with eps ~ N(0, 1); scale has
/// mean's shape or holds one value.
#[pyfunction]
#[pyo3(signature = (mean, scale, *, seed, step=0, n_jobs=None))]
fn gaussian<'py>(
    py: Python<'py>,
    mean: &Bound<'py, PyAny>,
    scale: &Bound<'py, PyAny>,
    seed: &Bound<'_, PyAny>,
    step: i64,
    n_jobs: Option<i64>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let seed = super::arrays::seed_arg(seed, "seed")?;
    let step = super::arrays::count_arg(step, "step", 0)? as u64;
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(mean, "mean")?, gaussian_impl(py, mean, scale, seed, step, n_jobs))
}

/// Raises a Rust panic inside the kernel machinery; the binding layer must turn it into RuntimeError.
/// Exists to test that a panic never crosses into Python.
#[pyfunction]
fn _panic_for_testing(py: Python<'_>) -> PyResult<()> {
    run(py, "_panic_for_testing", 2, || -> crate::error::Result<()> {
        use rayon::prelude::*;
        (0..4).into_par_iter().for_each(|i| if i == 3 { panic!("deliberate panic in a worker thread") });
        Ok(())
    })
}

/// The number of threads `n_jobs` resolves to.
#[pyfunction]
#[pyo3(signature = (n_jobs=None))]
fn effective_n_jobs(n_jobs: Option<i64>) -> PyResult<usize> {
    Ok(crate::threads::resolve_threads(threads(n_jobs)?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gemm, m)?)?;
    m.add_function(wrap_pyfunction!(activation, m)?)?;
    m.add_function(wrap_pyfunction!(sigmoid_bernoulli, m)?)?;
    m.add_function(wrap_pyfunction!(bernoulli, m)?)?;
    m.add_function(wrap_pyfunction!(gaussian, m)?)?;
    m.add_function(wrap_pyfunction!(effective_n_jobs, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_testing, m)?)?;
    Ok(())
}
