//! Bindings of dense layer chains (MLPs) and of the optimisers.

use numpy::{Element, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::arrays::{
    dispatch, expect_shape, float_dtype, indices, input, input_list, input_unchecked, ndim_of, new_array, output, output_list, SeedStep,
};
use super::errors::{ensure_allocatable, run, to_pyerr, value_error};
use crate::activations::Activation;
use crate::batch::Batch;
use crate::dense::{self, Dropout, Layer, LayerMut, Loss, Training};
use crate::linalg::View;
use crate::optim::{self, Optimizer, Update};
use crate::real::Real;
use crate::rng::purpose;

/// A chain's parameter lists as passed from Python: `weights`, `biases` and the names of the
/// `activations`, one per layer.
#[derive(Clone, Copy)]
pub struct ChainArgs<'a, 'py> {
    weights: &'a Bound<'py, PyAny>,
    biases: &'a Bound<'py, PyAny>,
    activations: &'a Bound<'py, PyAny>,
}

impl<'a, 'py> ChainArgs<'a, 'py> {
    pub fn new(weights: &'a Bound<'py, PyAny>, biases: &'a Bound<'py, PyAny>, activations: &'a Bound<'py, PyAny>) -> Self {
        ChainArgs { weights, biases, activations }
    }

    pub fn biases(&self) -> &'a Bound<'py, PyAny> {
        self.biases
    }

    /// The arrays borrowed by `borrow` (read-only or writable) and the parsed activations; `prefix`
    /// names the lists in errors ("encoder_", "decoder_" or "").
    fn borrow<A>(
        self,
        prefix: &str,
        borrow: impl Fn(&Bound<'py, PyAny>, &str, usize) -> PyResult<Vec<A>>,
    ) -> PyResult<(Vec<A>, Vec<A>, Vec<Activation>)> {
        let weights = borrow(self.weights, &format!("{prefix}weights"), 2)?;
        let biases = borrow(self.biases, &format!("{prefix}biases"), 1)?;
        if weights.len() != biases.len() {
            return Err(value_error(
                prefix.trim_end_matches('_'),
                format!("{} weight matrices but {} bias vectors", weights.len(), biases.len()),
            ));
        }
        let name = format!("{prefix}activations");
        let names: Vec<String> =
            self.activations.extract().map_err(|_| PyTypeError::new_err(format!("{name} must be a list of strings")))?;
        if names.len() != weights.len() {
            return Err(value_error(&name, format!("one activation per layer expected ({}), got {}", weights.len(), names.len())));
        }
        let acts = names.iter().map(|n| Activation::parse(n).map_err(|e| value_error(&name, e))).collect::<PyResult<_>>()?;
        Ok((weights, biases, acts))
    }
}

/// The parameters of a chain, borrowed read-only, with their shapes.
pub(crate) struct ChainIn<'py, T: Element> {
    weights: Vec<PyReadonlyArrayDyn<'py, T>>,
    biases: Vec<PyReadonlyArrayDyn<'py, T>>,
    acts: Vec<Activation>,
}

impl<'py, T: Element + Real> ChainIn<'py, T> {
    pub fn borrow(args: ChainArgs<'_, 'py>, prefix: &str) -> PyResult<Self> {
        let (weights, biases, acts) = args.borrow(prefix, input_list::<T>)?;
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
    pub fn borrow(args: ChainArgs<'_, 'py>, prefix: &str) -> PyResult<Self> {
        let (weights, biases, acts) = args.borrow(prefix, output_list::<T>)?;
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

/// Optimiser state as passed from Python: a list (one entry per parameter) of lists of arrays of any
/// shape, borrowed writable. The kernels check their number and sizes (`optim::check_state`).
pub(crate) struct Slots<'py, T: Element> {
    arrays: Vec<Vec<PyReadwriteArrayDyn<'py, T>>>,
}

impl<'py, T: Element + Real> Slots<'py, T> {
    pub fn borrow(slots: &Bound<'py, PyAny>) -> PyResult<Self> {
        let list = slots.cast::<PyList>().map_err(|_| PyTypeError::new_err("slots must be a list of lists of arrays"))?;
        let arrays = list.iter().enumerate().map(|(p, state)| Self::borrow_one(&state, &format!("slots[{p}]"))).collect::<PyResult<_>>()?;
        Ok(Slots { arrays })
    }

    /// One parameter's state arrays, `name` a list of arrays of any shape.
    fn borrow_one(state: &Bound<'py, PyAny>, name: &str) -> PyResult<Vec<PyReadwriteArrayDyn<'py, T>>> {
        let list = state.cast::<PyList>().map_err(|_| PyTypeError::new_err(format!("{name} must be a list of arrays")))?;
        list.iter().enumerate().map(|(k, a)| output::<T>(&a, &format!("{name}[{k}]"), ndim_of(&a))).collect()
    }

    pub fn slices(&mut self) -> PyResult<Vec<Vec<&mut [T]>>> {
        self.arrays.iter_mut().map(|v| v.iter_mut().map(|a| Ok(a.as_slice_mut()?)).collect()).collect()
    }
}

/// An optimiser's settings as passed from Python.
pub struct OptimizerArgs<'a> {
    pub name: &'a str,
    pub learning_rate: f64,
    pub momentum: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    pub t: i64,
}

impl OptimizerArgs<'_> {
    /// The update these settings and `weight_decay` make ("sgd" or "adam"); the kernels validate it.
    pub fn update(&self, weight_decay: f64) -> PyResult<Update> {
        let t = super::arrays::count_arg(self.t, "t", 1)? as u64;
        let (learning_rate, momentum, beta1, beta2, epsilon) = (self.learning_rate, self.momentum, self.beta1, self.beta2, self.epsilon);
        let optimizer = match self.name {
            "sgd" => Optimizer::Sgd { learning_rate, momentum },
            "adam" => Optimizer::Adam { learning_rate, beta1, beta2, epsilon, t },
            other => return Err(value_error("optimizer", format!("must be 'sgd' or 'adam', got '{other}'"))),
        };
        Ok(Update { optimizer, weight_decay })
    }
}

/// The loss a Python string names.
pub fn loss(name: &str) -> PyResult<Loss> {
    Loss::parse(name).map_err(|e| value_error("loss", e))
}

/// A training step's settings, with dropout (if `rate > 0`) drawn from the stream `draw`.
pub fn training(loss: Loss, update: Update, rate: f64, draw: SeedStep) -> Training {
    let dropout = (rate != 0.0).then_some(Dropout { rate, key: draw.key(purpose::DROPOUT) });
    Training { loss, update, dropout }
}

pub fn forward<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    chain: ChainArgs<'_, 'py>,
    all_layers: bool,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(float_dtype(x, "x")?, forward_typed(py, x, chain, all_layers, n_jobs))
}

fn forward_typed<'py, T: Real + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    chain: ChainArgs<'_, 'py>,
    all_layers: bool,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let x = input::<T>(x, "x", 2)?;
    let chain = ChainIn::<T>::borrow(chain, "")?;
    let layers = chain.layers()?;
    let (n, d) = (x.shape()[0], x.shape()[1]);
    dense::check_chain(&layers, d).map_err(|e| value_error("mlp_forward", e))?;
    let xs = x.as_slice()?;
    ensure_allocatable("mlp_forward", n.saturating_mul(layers.iter().map(|l| l.n_out).sum()), std::mem::size_of::<T>())?;
    let outs = run(py, "mlp_forward", n_jobs, || Ok(dense::forward(&layers, View::new(xs, n, d), None).outputs))?;
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
        new_array(py, &[n, w], last)
    }
}

/// A network's data as passed from Python: inputs `x`, targets `y`, and the minibatch's rows.
pub struct Data<'a, 'py> {
    pub x: &'a Bound<'py, PyAny>,
    pub y: &'a Bound<'py, PyAny>,
    pub rows: Option<&'a Bound<'py, PyAny>>,
}

/// (loss, weight gradients, bias gradients, input gradient).
pub type Gradients<'py> = (f64, Bound<'py, PyList>, Bound<'py, PyList>, Bound<'py, PyAny>);

pub fn loss_gradients<'py>(
    py: Python<'py>,
    data: Data<'_, 'py>,
    chain: ChainArgs<'_, 'py>,
    loss: Loss,
    n_jobs: usize,
) -> PyResult<Gradients<'py>> {
    dispatch!(float_dtype(data.x, "x")?, gradients_typed(py, &data, chain, loss, n_jobs))
}

fn gradients_typed<'py, T: Real + Element>(
    py: Python<'py>,
    data: &Data<'_, 'py>,
    chain: ChainArgs<'_, 'py>,
    loss: Loss,
    n_jobs: usize,
) -> PyResult<Gradients<'py>> {
    let x = input::<T>(data.x, "x", 2)?;
    let y = input::<T>(data.y, "y", 2)?;
    let chain = ChainIn::<T>::borrow(chain, "")?;
    let layers = chain.layers()?;
    let (n, d) = (x.shape()[0], x.shape()[1]);
    let (xs, ys) = (x.as_slice()?, y.as_slice()?);
    let n_targets = y.shape()[1];
    let (value, grads, gin) =
        run(py, "mlp_loss_gradients", n_jobs, || dense::loss_gradients(&layers, &Batch::new(xs, d).values(ys, n_targets), loss))?;
    let gw = PyList::empty(py);
    let gb = PyList::empty(py);
    for (g, l) in grads.into_iter().zip(&layers) {
        gw.append(new_array(py, &[l.n_in, l.n_out], g.weight)?)?;
        gb.append(new_array(py, &[l.n_out], g.bias)?)?;
    }
    Ok((value, gw, gb, new_array(py, &[n, d], gin)?))
}

pub fn train_step(
    py: Python<'_>,
    data: Data<'_, '_>,
    chain: ChainArgs<'_, '_>,
    slots: &Bound<'_, PyAny>,
    training: Training,
    n_jobs: usize,
) -> PyResult<f64> {
    dispatch!(float_dtype(data.x, "x")?, train_typed(py, &data, chain, slots, training, n_jobs))
}

fn train_typed<T: Real + Element>(
    py: Python<'_>,
    data: &Data<'_, '_>,
    chain: ChainArgs<'_, '_>,
    slots: &Bound<'_, PyAny>,
    training: Training,
    n_jobs: usize,
) -> PyResult<f64> {
    // Unchecked here: the step checks the minibatch's rows (x may be the whole data set).
    let x = input_unchecked::<T>(data.x, "x", 2)?;
    let y = input_unchecked::<T>(data.y, "y", 2)?;
    let (d, n_targets) = (x.shape()[1], y.shape()[1]);
    let rows = data.rows.map(|r| indices(r, "rows")).transpose()?;
    let mut chain = ChainOut::<T>::borrow(chain, "")?;
    let mut slots = Slots::<T>::borrow(slots)?;
    let mut layers = chain.layers()?;
    let mut state = slots.slices()?;
    let (xs, ys) = (x.as_slice()?, y.as_slice()?);
    run(py, "mlp_train_step", n_jobs, || {
        let batch = Batch::new(xs, d).values(ys, n_targets).rows(rows.as_deref());
        dense::train_step(&mut layers, &mut state, &batch, &training)
    })
}

pub fn optimizer_step(
    py: Python<'_>,
    param: &Bound<'_, PyAny>,
    grad: &Bound<'_, PyAny>,
    slots: &Bound<'_, PyAny>,
    update: Update,
    n_jobs: usize,
) -> PyResult<()> {
    dispatch!(float_dtype(param, "param")?, optimizer_step_typed(py, param, grad, slots, update, n_jobs))
}

fn optimizer_step_typed<T: Real + Element>(
    py: Python<'_>,
    param: &Bound<'_, PyAny>,
    grad: &Bound<'_, PyAny>,
    slots: &Bound<'_, PyAny>,
    update: Update,
    n_jobs: usize,
) -> PyResult<()> {
    let mut p = output::<T>(param, "param", ndim_of(param))?;
    let g = input::<T>(grad, "grad", ndim_of(param))?;
    expect_shape("grad", g.shape(), p.shape())?;
    let wrapped = PyList::new(py, [slots])?;
    let mut s = Slots::<T>::borrow(wrapped.as_any())?;
    let mut state = s.slices()?;
    update.validate().map_err(|e| value_error("optimizer", e))?;
    optim::check_state(&update.optimizer, &state, &[p.len()]).map_err(|e| to_pyerr("optimizer_step", e))?;
    let (ps, gs) = (p.as_slice_mut()?, g.as_slice()?);
    run(py, "optimizer_step", n_jobs, || {
        update.apply(&mut state, [(ps, gs, true)]);
        Ok(())
    })
}
