//! Bindings of dense layer chains (MLPs) and of the optimisers.

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{Element, IntoPyArray, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::arrays::{expect_shape, float_dtype, indices, input, input_list, input_unchecked, ndim_of, output, output_list, threads, Dtype};
use super::errors::{ensure_allocatable, run, value_error};
use super::kernels::dispatch;
use crate::activations::Activation;
use crate::sampling::StreamKey;
use crate::batch::Batch;
use crate::dense::{self, Dropout, Layer, LayerMut, Loss, Training};
use crate::optim::{self, Optimizer, Update};
use crate::real::Real;
use crate::rng::purpose;

pub(crate) fn new_array<'py, T: Element + Real>(py: Python<'py>, shape: &[usize], data: Vec<T>) -> PyResult<Bound<'py, PyAny>> {
    let array = ArrayD::from_shape_vec(IxDyn(shape), data)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("deepgm internal error: output of shape {shape:?}: {e}")))?;
    Ok(array.into_pyarray(py).into_any())
}

pub(crate) fn parse_activations(list: &Bound<'_, PyAny>, n_layers: usize, name: &str) -> PyResult<Vec<Activation>> {
    let names: Vec<String> = list.extract().map_err(|_| PyTypeError::new_err(format!("{name} must be a list of strings")))?;
    if names.len() != n_layers {
        return Err(value_error(name, format!("one activation per layer expected ({n_layers}), got {}", names.len())));
    }
    names.iter().map(|n| Activation::parse(n).map_err(|e| value_error(name, e))).collect()
}

/// The parameters of a chain, borrowed read-only, with their shapes.
pub(crate) struct ChainIn<'py, T: Element> {
    weights: Vec<PyReadonlyArrayDyn<'py, T>>,
    biases: Vec<PyReadonlyArrayDyn<'py, T>>,
    acts: Vec<Activation>,
}

impl<'py, T: Element + Real> ChainIn<'py, T> {
    pub fn extract(weights: &Bound<'py, PyAny>, biases: &Bound<'py, PyAny>, acts: &Bound<'py, PyAny>, prefix: &str) -> PyResult<Self> {
        let weights = input_list::<T>(weights, &format!("{prefix}weights"), 2)?;
        let biases = input_list::<T>(biases, &format!("{prefix}biases"), 1)?;
        if weights.len() != biases.len() {
            return Err(value_error(prefix.trim_end_matches('_'), format!("{} weight matrices but {} bias vectors", weights.len(), biases.len())));
        }
        let acts = parse_activations(acts, weights.len(), &format!("{prefix}activations"))?;
        Ok(ChainIn { weights, biases, acts })
    }

    pub fn layers(&self) -> PyResult<Vec<Layer<'_, T>>> {
        self.weights
            .iter()
            .zip(&self.biases)
            .zip(&self.acts)
            .map(|((w, b), &activation)| {
                let s = w.shape();
                Ok(Layer { weight: w.as_slice()?, bias: b.as_slice()?, n_in: s[0], n_out: s[1], activation })
            })
            .collect()
    }
}

/// The parameters of a chain, borrowed writable.
pub(crate) struct ChainOut<'py, T: Element> {
    weights: Vec<PyReadwriteArrayDyn<'py, T>>,
    biases: Vec<PyReadwriteArrayDyn<'py, T>>,
    acts: Vec<Activation>,
}

impl<'py, T: Element + Real> ChainOut<'py, T> {
    pub fn extract(weights: &Bound<'py, PyAny>, biases: &Bound<'py, PyAny>, acts: &Bound<'py, PyAny>, prefix: &str) -> PyResult<Self> {
        let weights = output_list::<T>(weights, &format!("{prefix}weights"), 2)?;
        let biases = output_list::<T>(biases, &format!("{prefix}biases"), 1)?;
        if weights.len() != biases.len() {
            return Err(value_error(prefix.trim_end_matches('_'), format!("{} weight matrices but {} bias vectors", weights.len(), biases.len())));
        }
        let acts = parse_activations(acts, weights.len(), &format!("{prefix}activations"))?;
        Ok(ChainOut { weights, biases, acts })
    }

    pub fn layers(&mut self) -> PyResult<Vec<LayerMut<'_, T>>> {
        self.weights
            .iter_mut()
            .zip(self.biases.iter_mut())
            .zip(&self.acts)
            .map(|((w, b), &activation)| {
                let s = w.shape().to_vec();
                Ok(LayerMut { weight: w.as_slice_mut()?, bias: b.as_slice_mut()?, n_in: s[0], n_out: s[1], activation })
            })
            .collect()
    }
}

/// Optimiser state: a list (one entry per parameter) of lists of arrays.
pub(crate) struct Slots<'py, T: Element> {
    arrays: Vec<Vec<PyReadwriteArrayDyn<'py, T>>>,
}

impl<'py, T: Element + Real> Slots<'py, T> {
    pub fn extract(slots: &Bound<'py, PyAny>, n_params: usize, per_param: usize) -> PyResult<Self> {
        let list = slots.cast::<PyList>().map_err(|_| PyTypeError::new_err("slots must be a list of lists of arrays"))?;
        if list.len() != n_params {
            return Err(value_error("slots", format!("one entry per parameter array expected ({n_params}), got {}", list.len())));
        }
        let arrays = list
            .iter()
            .enumerate()
            .map(|(i, inner)| {
                let inner_list = output_list_any::<T>(&inner, &format!("slots[{i}]"))?;
                if inner_list.len() != per_param {
                    return Err(value_error("slots", format!("slots[{i}] must hold {per_param} arrays for this optimizer, got {}", inner_list.len())));
                }
                Ok(inner_list)
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Slots { arrays })
    }

    /// Checks that slot arrays of parameter p hold `len` values each.
    pub fn check_sizes(&self, sizes: &[usize]) -> PyResult<()> {
        for (p, (slot, &len)) in self.arrays.iter().zip(sizes).enumerate() {
            for (k, a) in slot.iter().enumerate() {
                if a.len() != len {
                    return Err(value_error("slots", format!("slots[{p}][{k}] must hold {len} values (the size of its parameter), got {}", a.len())));
                }
            }
        }
        Ok(())
    }

    pub fn slices(&mut self) -> PyResult<Vec<Vec<&mut [T]>>> {
        self.arrays.iter_mut().map(|v| v.iter_mut().map(|a| Ok(a.as_slice_mut()?)).collect()).collect()
    }
}

/// Like `output_list`, for arrays of any number of dimensions.
fn output_list_any<'py, T: Element>(list: &Bound<'py, PyAny>, name: &str) -> PyResult<Vec<PyReadwriteArrayDyn<'py, T>>> {
    let list = list.cast::<PyList>().map_err(|_| PyTypeError::new_err(format!("{name} must be a list of arrays")))?;
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            output::<T>(&a, &format!("{name}[{i}]"), ndim_of(&a))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn parse_optimizer(name: &str, learning_rate: f64, momentum: f64, beta1: f64, beta2: f64, epsilon: f64, t: u64) -> PyResult<Optimizer> {
    let opt = match name {
        "sgd" => Optimizer::Sgd { learning_rate, momentum },
        "adam" => Optimizer::Adam { learning_rate, beta1, beta2, epsilon, t },
        other => return Err(value_error("optimizer", format!("must be 'sgd' or 'adam', got '{other}'"))),
    };
    opt.validate().map_err(|e| value_error("optimizer", e))?;
    Ok(opt)
}

fn forward_impl<'py, T: Real + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    weights: &Bound<'py, PyAny>,
    biases: &Bound<'py, PyAny>,
    activations: &Bound<'py, PyAny>,
    all_layers: bool,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let x = input::<T>(x, "x", 2)?;
    let chain = ChainIn::<T>::extract(weights, biases, activations, "")?;
    let layers = chain.layers()?;
    let (n, d) = (x.shape()[0], x.shape()[1]);
    dense::check_chain(&layers, d).map_err(|e| value_error("mlp_forward", e))?;
    let xs = x.as_slice()?;
    ensure_allocatable("mlp_forward", n.saturating_mul(layers.iter().map(|l| l.n_out).sum()), std::mem::size_of::<T>())?;
    let outs = run(py, "mlp_forward", n_jobs, || Ok(dense::forward(&layers, crate::linalg::View::new(xs, n, d), None).outputs))?;
    let widths: Vec<usize> = layers.iter().map(|l| l.n_out).collect();
    if all_layers {
        let list = PyList::empty(py);
        for (o, w) in outs.into_iter().zip(widths) {
            list.append(new_array(py, &[n, w], o)?)?;
        }
        Ok(list.into_any())
    } else {
        let w = *widths.last().unwrap_or(&d);
        let last = outs.into_iter().last().unwrap_or_else(|| xs.to_vec());
        Ok(new_array(py, &[n, w], last)?)
    }
}

/// Forward pass of x (n, n_features) through layers `a = f(a @ W + b)`; returns the output (n, n_out),
/// or the list of every layer's output with all_layers=True.
#[pyfunction]
#[pyo3(signature = (x, weights, biases, activations, *, all_layers=false, n_jobs=None))]
fn mlp_forward<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    weights: &Bound<'py, PyAny>,
    biases: &Bound<'py, PyAny>,
    activations: &Bound<'py, PyAny>,
    all_layers: bool,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(x, "x")?, forward_impl(py, x, weights, biases, activations, all_layers, n_jobs))
}

fn parse_loss(loss: &str) -> PyResult<Loss> {
    Loss::parse(loss).map_err(|e| value_error("loss", e))
}

#[allow(clippy::type_complexity)]
fn gradients_impl<'py, T: Real + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    weights: &Bound<'py, PyAny>,
    biases: &Bound<'py, PyAny>,
    activations: &Bound<'py, PyAny>,
    loss: &str,
    n_jobs: usize,
) -> PyResult<(f64, Bound<'py, PyList>, Bound<'py, PyList>, Bound<'py, PyAny>)> {
    let loss = parse_loss(loss)?;
    let x = input::<T>(x, "x", 2)?;
    let y = input::<T>(y, "y", 2)?;
    let chain = ChainIn::<T>::extract(weights, biases, activations, "")?;
    let layers = chain.layers()?;
    let (n, d) = (x.shape()[0], x.shape()[1]);
    let n_out = layers.last().map(|l| l.n_out).unwrap_or(d);
    expect_shape("y", y.shape(), &[n, n_out])?;
    let (xs, ys) = (x.as_slice()?, y.as_slice()?);
    let (value, grads, gin) = run(py, "mlp_loss_gradients", n_jobs, || {
        dense::loss_gradients(&layers, &Batch::new(xs, d).values(ys, n_out), loss)
    })?;
    let gw = PyList::empty(py);
    let gb = PyList::empty(py);
    for (g, l) in grads.into_iter().zip(&layers) {
        gw.append(new_array(py, &[l.n_in, l.n_out], g.weight)?)?;
        gb.append(new_array(py, &[l.n_out], g.bias)?)?;
    }
    Ok((value, gw, gb, new_array(py, &[n, d], gin)?))
}

/// Mean loss of (x, y) and its gradients: returns (loss, weight grads, bias grads, input grad).
#[pyfunction]
#[pyo3(signature = (x, y, weights, biases, activations, loss, *, n_jobs=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn mlp_loss_gradients<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    weights: &Bound<'py, PyAny>,
    biases: &Bound<'py, PyAny>,
    activations: &Bound<'py, PyAny>,
    loss: &str,
    n_jobs: Option<i64>,
) -> PyResult<(f64, Bound<'py, PyList>, Bound<'py, PyList>, Bound<'py, PyAny>)> {
    let n_jobs = threads(n_jobs)?;
    dispatch!(float_dtype(x, "x")?, gradients_impl(py, x, y, weights, biases, activations, loss, n_jobs))
}

#[allow(clippy::too_many_arguments)]
fn train_impl<T: Real + Element>(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    weights: &Bound<'_, PyAny>,
    biases: &Bound<'_, PyAny>,
    activations: &Bound<'_, PyAny>,
    loss: Loss,
    slots: &Bound<'_, PyAny>,
    rows: Option<&Bound<'_, PyAny>>,
    opt: Optimizer,
    weight_decay: f64,
    dropout: f64,
    seed: u64,
    step: u64,
    n_jobs: usize,
) -> PyResult<f64> {
    // Unchecked here: the step checks the minibatch's rows (x may be the whole data set).
    let x = input_unchecked::<T>(x, "x", 2)?;
    let y = input_unchecked::<T>(y, "y", 2)?;
    let (n, d) = (x.shape()[0], x.shape()[1]);
    if y.shape()[0] != n {
        return Err(value_error("mlp_train_step", format!("x has {n} rows but y has {}", y.shape()[0])));
    }
    let n_targets = y.shape()[1];
    let rows = rows.map(|r| indices(r, "rows", n)).transpose()?;
    let mut chain = ChainOut::<T>::extract(weights, biases, activations, "")?;
    let mut slots = Slots::<T>::extract(slots, 2 * chain.weights.len(), opt.n_slots())?;
    let sizes: Vec<usize> = chain.weights.iter().zip(&chain.biases).flat_map(|(w, b)| [w.len(), b.len()]).collect();
    slots.check_sizes(&sizes)?;
    let mut layers = chain.layers()?;
    if layers.last().map(|l| l.n_out) != Some(n_targets) {
        return Err(value_error("mlp_train_step", format!("y has {n_targets} columns but the last layer has {:?} outputs", layers.last().map(|l| l.n_out))));
    }
    let mut per_param = slots.slices()?;
    let (xs, ys) = (x.as_slice()?, y.as_slice()?);
    if !(0.0..1.0).contains(&dropout) {
        return Err(value_error("dropout", format!("must be in [0, 1), got {dropout}")));
    }
    let drop = (dropout > 0.0).then_some(Dropout { rate: dropout, key: StreamKey { seed, step, purpose: purpose::DROPOUT } });
    let training = Training { loss, update: Update { optimizer: opt, weight_decay }, dropout: drop };
    run(py, "mlp_train_step", n_jobs, || {
        let batch = Batch::new(xs, d).values(ys, n_targets).rows(rows.as_deref());
        dense::train_step(&mut layers, &mut per_param, &batch, &training)
    })
}

/// One minibatch training step in place: forward (with dropout on hidden layers), loss, backward, and
/// an optimiser update of every weight and bias. `slots[p]` holds the optimiser state of parameter p in
/// the order [W0, b0, W1, b1, ...] (1 array each for 'sgd', 2 for 'adam'). With `rows`, the minibatch
/// is x[rows], y[rows] (no copy of x is made). Returns the mean loss before the update.
#[pyfunction]
#[pyo3(signature = (x, y, weights, biases, activations, loss, slots, *, rows=None, optimizer="sgd", learning_rate=0.01,
    momentum=0.0, beta1=0.9, beta2=0.999, epsilon=1e-8, t=1, weight_decay=0.0, dropout=0.0, seed=None, step=0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn mlp_train_step(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    weights: &Bound<'_, PyAny>,
    biases: &Bound<'_, PyAny>,
    activations: &Bound<'_, PyAny>,
    loss: &str,
    slots: &Bound<'_, PyAny>,
    rows: Option<&Bound<'_, PyAny>>,
    optimizer: &str,
    learning_rate: f64,
    momentum: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    t: i64,
    weight_decay: f64,
    dropout: f64,
    seed: Option<&Bound<'_, PyAny>>,
    step: i64,
    n_jobs: Option<i64>,
) -> PyResult<f64> {
    let seed = super::arrays::optional_seed(seed, "seed")?.unwrap_or(0);
    let step = super::arrays::count_arg(step, "step", 0)? as u64;
    let t = super::arrays::count_arg(t, "t", 1)? as u64;
    let n_jobs = threads(n_jobs)?;
    let loss = parse_loss(loss)?;
    let opt = parse_optimizer(optimizer, learning_rate, momentum, beta1, beta2, epsilon, t)?;
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return Err(value_error("weight_decay", format!("must be a finite number >= 0, got {weight_decay}")));
    }
    dispatch!(
        float_dtype(x, "x")?,
        train_impl(py, x, y, weights, biases, activations, loss, slots, rows, opt, weight_decay, dropout, seed, step, n_jobs)
    )
}

#[allow(clippy::too_many_arguments)]
fn optimizer_step_impl<T: Real + Element>(
    py: Python<'_>,
    param: &Bound<'_, PyAny>,
    grad: &Bound<'_, PyAny>,
    slots: &Bound<'_, PyAny>,
    opt: Optimizer,
    weight_decay: f64,
    n_jobs: usize,
) -> PyResult<()> {
    let pnd = ndim_of(param);
    let mut p = output::<T>(param, "param", pnd)?;
    let g = input::<T>(grad, "grad", pnd)?;
    expect_shape("grad", g.shape(), p.shape())?;
    let wrapped = PyList::new(py, [slots])?;
    let mut s = Slots::<T>::extract(wrapped.as_any(), 1, opt.n_slots())?;
    s.check_sizes(&[p.len()])?;
    let mut flat = s.slices()?;
    let (ps, gs) = (p.as_slice_mut()?, g.as_slice()?);
    let slot = &mut flat[0];
    run(py, "optimizer_step", n_jobs, || {
        optim::step(&opt, ps, gs, slot, weight_decay);
        Ok(())
    })
}

/// One optimiser step on `param` in place given `grad`; `slots` are its state arrays
/// ([velocity] for 'sgd', [m, v] for 'adam').
#[pyfunction]
#[pyo3(signature = (param, grad, slots, *, optimizer="sgd", learning_rate=0.01, momentum=0.0, beta1=0.9, beta2=0.999,
    epsilon=1e-8, t=1, weight_decay=0.0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn optimizer_step(
    py: Python<'_>,
    param: &Bound<'_, PyAny>,
    grad: &Bound<'_, PyAny>,
    slots: &Bound<'_, PyAny>,
    optimizer: &str,
    learning_rate: f64,
    momentum: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    t: i64,
    weight_decay: f64,
    n_jobs: Option<i64>,
) -> PyResult<()> {
    let t = super::arrays::count_arg(t, "t", 1)? as u64;
    let n_jobs = threads(n_jobs)?;
    let opt = parse_optimizer(optimizer, learning_rate, momentum, beta1, beta2, epsilon, t)?;
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return Err(value_error("weight_decay", format!("must be a finite number >= 0, got {weight_decay}")));
    }
    match float_dtype(param, "param")? {
        Dtype::F32 => optimizer_step_impl::<f32>(py, param, grad, slots, opt, weight_decay, n_jobs),
        Dtype::F64 => optimizer_step_impl::<f64>(py, param, grad, slots, opt, weight_decay, n_jobs),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mlp_forward, m)?)?;
    m.add_function(wrap_pyfunction!(mlp_loss_gradients, m)?)?;
    m.add_function(wrap_pyfunction!(mlp_train_step, m)?)?;
    m.add_function(wrap_pyfunction!(optimizer_step, m)?)?;
    Ok(())
}
