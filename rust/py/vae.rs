//! Bindings of the (conditional) VAE kernels.
//!
//! Every function takes the network as `encoder_weights, encoder_biases, encoder_activations,
//! decoder_weights, decoder_biases, decoder_activations, class_means` ([`NetArgs`]) plus the keyword
//! settings `n_latent, likelihood, decoder_variance, conditioning, n_classes` ([`VaeArgs`]).

use numpy::{Element, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::arrays::{count_arg, dispatch, float_dtype, indices, input, input_unchecked, new_array, output, rows_of, Dtype, SeedStep};
use super::dense::{ChainArgs, ChainIn, ChainOut, Slots};
use super::errors::{ensure_allocatable, run, value_error};
use crate::batch::Batch;
use crate::dense::{Layer, LayerGrad};
use crate::optim::Update;
use crate::real::Real;
use crate::vae::{self, Conditioning, Likelihood, Vae, VaeMut, VaeSpec};

/// The network as passed from Python: the encoder's and the decoder's lists, and the class means.
#[derive(Clone, Copy)]
pub struct NetArgs<'a, 'py> {
    encoder: ChainArgs<'a, 'py>,
    decoder: ChainArgs<'a, 'py>,
    class_means: Option<&'a Bound<'py, PyAny>>,
}

impl<'a, 'py> NetArgs<'a, 'py> {
    pub fn new(
        encoder_weights: &'a Bound<'py, PyAny>,
        encoder_biases: &'a Bound<'py, PyAny>,
        encoder_activations: &'a Bound<'py, PyAny>,
        decoder_weights: &'a Bound<'py, PyAny>,
        decoder_biases: &'a Bound<'py, PyAny>,
        decoder_activations: &'a Bound<'py, PyAny>,
        class_means: Option<&'a Bound<'py, PyAny>>,
    ) -> Self {
        NetArgs {
            encoder: ChainArgs::new(encoder_weights, encoder_biases, encoder_activations),
            decoder: ChainArgs::new(decoder_weights, decoder_biases, decoder_activations),
            class_means: class_means.filter(|c| !c.is_none()),
        }
    }
}

/// A VAE call's network and settings, parsed.
#[derive(Clone, Copy)]
pub struct VaeArgs<'a, 'py> {
    net: NetArgs<'a, 'py>,
    n_latent: usize,
    n_classes: usize,
    likelihood: Likelihood,
    conditioning: Conditioning,
}

impl<'a, 'py> VaeArgs<'a, 'py> {
    pub fn parse(
        net: NetArgs<'a, 'py>,
        n_latent: i64,
        likelihood: &str,
        decoder_variance: f64,
        conditioning: &str,
        n_classes: i64,
    ) -> PyResult<Self> {
        let n_latent = count_arg(n_latent, "n_latent", 1)?;
        let n_classes = count_arg(n_classes, "n_classes", 0)?;
        // Refused whatever the likelihood, as its name says a Gaussian's variance.
        if !(decoder_variance.is_finite() && decoder_variance > 0.0) {
            return Err(value_error("decoder_variance", format!("must be a finite number > 0, got {decoder_variance}")));
        }
        let likelihood = match likelihood {
            "bernoulli" => Likelihood::Bernoulli,
            "gaussian" => Likelihood::Gaussian { variance: decoder_variance },
            other => return Err(value_error("likelihood", format!("must be 'bernoulli' or 'gaussian', got '{other}'"))),
        };
        let conditioning = Conditioning::parse(conditioning).map_err(|e| value_error("conditioning", e))?;
        Ok(VaeArgs { net, n_latent, n_classes, likelihood, conditioning })
    }

    fn spec(&self, n_features: usize) -> VaeSpec {
        VaeSpec {
            n_features,
            n_latent: self.n_latent,
            n_classes: self.n_classes,
            likelihood: self.likelihood,
            conditioning: self.conditioning,
        }
    }

    /// The element type of the network (of its first encoder bias).
    fn dtype(&self) -> PyResult<Dtype> {
        let biases = self.net.encoder.biases();
        let first = biases.cast::<PyList>().ok().and_then(|l| l.get_item(0).ok());
        float_dtype(first.as_ref().unwrap_or(biases), "encoder_biases")
    }
}

/// The network borrowed read-only.
struct NetIn<'py, T: Element> {
    encoder: ChainIn<'py, T>,
    decoder: ChainIn<'py, T>,
    class_means: Option<PyReadonlyArrayDyn<'py, T>>,
    n_features: usize,
}

impl<'py, T: Element + Real> NetIn<'py, T> {
    fn borrow(net: NetArgs<'_, 'py>) -> PyResult<Self> {
        let encoder = ChainIn::<T>::borrow(net.encoder, "encoder_")?;
        let decoder = ChainIn::<T>::borrow(net.decoder, "decoder_")?;
        let class_means = net.class_means.map(|c| input::<T>(c, "class_means", 2)).transpose()?;
        let n_features = decoder.layers()?.last().map(|l| l.n_out).unwrap_or(0);
        Ok(NetIn { encoder, decoder, class_means, n_features })
    }

    /// The VAE, checked by the kernel.
    fn vae(&self, args: &VaeArgs<'_, 'py>) -> PyResult<Vae<'_, T>> {
        let vae = Vae {
            encoder: self.encoder.layers()?,
            decoder: self.decoder.layers()?,
            class_means: match &self.class_means {
                Some(c) => Some(c.as_slice()?),
                None => None,
            },
            spec: args.spec(self.n_features),
        };
        vae.check().map_err(|e| value_error("vae", e))?;
        Ok(vae)
    }
}

/// The class labels `y`, if given (the kernels check them against the rows and the classes).
fn labels_of(y: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<usize>>> {
    y.filter(|y| !y.is_none()).map(|y| indices(y, "y")).transpose()
}

/// The network, the data `x` (finite, at least one row) and its labels of an inference call.
struct Inputs<'py, T: Element> {
    net: NetIn<'py, T>,
    x: PyReadonlyArrayDyn<'py, T>,
    labels: Option<Vec<usize>>,
}

impl<'py, T: Element + Real> Inputs<'py, T> {
    fn borrow(args: &VaeArgs<'_, 'py>, x: &Bound<'py, PyAny>, y: Option<&Bound<'py, PyAny>>) -> PyResult<Self> {
        let net = NetIn::<T>::borrow(args.net)?;
        let x = x_of::<T>(x, net.n_features, true)?;
        Ok(Inputs { net, x, labels: labels_of(y)? })
    }

    fn n_samples(&self) -> usize {
        self.x.shape()[0]
    }

    fn batch(&self) -> PyResult<Batch<'_, T>> {
        Ok(Batch::new(self.x.as_slice()?, self.net.n_features).labels(self.labels.as_deref()))
    }
}

/// x as a (n, width) array with at least one row; `finite` checks every value (the training step
/// checks only its rows).
fn x_of<'py, T: Element + Real>(x: &Bound<'py, PyAny>, width: usize, finite: bool) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    let x = if finite { input::<T>(x, "x", 2)? } else { input_unchecked::<T>(x, "x", 2)? };
    if x.shape()[1] == 0 || x.shape()[0] == 0 {
        return Err(value_error("x", format!("expected at least one sample and one feature, got shape {:?}", x.shape())));
    }
    if x.shape()[1] != width {
        return Err(value_error("x", format!("expected {width} columns, got {}", x.shape()[1])));
    }
    Ok(x)
}

/// Values per sample in the activations of one pass through encoder and decoder.
fn widths<T>(vae: &Vae<'_, T>) -> usize {
    vae.encoder.iter().chain(&vae.decoder).map(|l| l.n_out).sum::<usize>() + 4 * vae.spec.n_latent
}

pub fn encode<'py>(
    py: Python<'py>,
    args: VaeArgs<'_, 'py>,
    x: &Bound<'py, PyAny>,
    y: Option<&Bound<'py, PyAny>>,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    dispatch!(args.dtype()?, encode_typed(py, &args, x, y, n_jobs))
}

fn encode_typed<'py, T: Real + Element>(
    py: Python<'py>,
    args: &VaeArgs<'_, 'py>,
    x: &Bound<'py, PyAny>,
    y: Option<&Bound<'py, PyAny>>,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let inputs = Inputs::<T>::borrow(args, x, y)?;
    let (vae, batch, n) = (inputs.net.vae(args)?, inputs.batch()?, inputs.n_samples());
    ensure_allocatable("vae_encode", n.saturating_mul(widths(&vae)), std::mem::size_of::<T>())?;
    let (mu, lv) = run(py, "vae_encode", n_jobs, || vae.encode(&batch))?;
    Ok((new_array(py, &[n, args.n_latent], mu)?, new_array(py, &[n, args.n_latent], lv)?))
}

pub fn decode<'py>(
    py: Python<'py>,
    args: VaeArgs<'_, 'py>,
    z: &Bound<'py, PyAny>,
    y: Option<&Bound<'py, PyAny>>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(args.dtype()?, decode_typed(py, &args, z, y, n_jobs))
}

fn decode_typed<'py, T: Real + Element>(
    py: Python<'py>,
    args: &VaeArgs<'_, 'py>,
    z: &Bound<'py, PyAny>,
    y: Option<&Bound<'py, PyAny>>,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let net = NetIn::<T>::borrow(args.net)?;
    let z = rows_of::<T>(z, "z", args.n_latent)?;
    let n = z.shape()[0];
    let labels = labels_of(y)?;
    let vae = net.vae(args)?;
    let zs = z.as_slice()?;
    ensure_allocatable("vae_decode", n.saturating_mul(widths(&vae)), std::mem::size_of::<T>())?;
    let out = run(py, "vae_decode", n_jobs, || vae.decode(zs, labels.as_deref()))?;
    new_array(py, &[n, net.n_features], out)
}

/// Per-sample losses with the noise `eps` (n, n_latent), or noise drawn from `draw` without it.
pub fn losses<'py>(
    py: Python<'py>,
    args: VaeArgs<'_, 'py>,
    x: &Bound<'py, PyAny>,
    y: Option<&Bound<'py, PyAny>>,
    eps: Option<&Bound<'py, PyAny>>,
    draw: SeedStep,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    dispatch!(args.dtype()?, losses_typed(py, &args, x, y, eps.filter(|e| !e.is_none()), draw, n_jobs))
}

fn losses_typed<'py, T: Real + Element>(
    py: Python<'py>,
    args: &VaeArgs<'_, 'py>,
    x: &Bound<'py, PyAny>,
    y: Option<&Bound<'py, PyAny>>,
    eps: Option<&Bound<'py, PyAny>>,
    draw: SeedStep,
    n_jobs: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let inputs = Inputs::<T>::borrow(args, x, y)?;
    let eps = match eps {
        Some(e) => Some(rows_of::<T>(e, "eps", args.n_latent)?.as_slice()?.to_vec()),
        None => None,
    };
    let (vae, batch, n) = (inputs.net.vae(args)?, inputs.batch()?, inputs.n_samples());
    ensure_allocatable("vae_losses", n.saturating_mul(widths(&vae) + inputs.net.n_features), std::mem::size_of::<T>())?;
    let l = run(py, "vae_losses", n_jobs, || {
        let eps = eps.unwrap_or_else(|| vae.draw_eps(n, draw.seed, draw.step));
        vae.losses(&batch, eps)
    })?;
    Ok((new_array(py, &[n], l.recon)?, new_array(py, &[n], l.kl)?))
}

/// (mean loss, [(dW, db) per encoder layer], [(dW, db) per decoder layer], d class_means or None).
pub type Gradients<'py> = (f64, Bound<'py, PyList>, Bound<'py, PyList>, Bound<'py, PyAny>);

pub fn gradients<'py>(
    py: Python<'py>,
    args: VaeArgs<'_, 'py>,
    x: &Bound<'py, PyAny>,
    y: Option<&Bound<'py, PyAny>>,
    eps: &Bound<'py, PyAny>,
    n_jobs: usize,
) -> PyResult<Gradients<'py>> {
    dispatch!(args.dtype()?, gradients_typed(py, &args, x, y, eps, n_jobs))
}

fn gradients_typed<'py, T: Real + Element>(
    py: Python<'py>,
    args: &VaeArgs<'_, 'py>,
    x: &Bound<'py, PyAny>,
    y: Option<&Bound<'py, PyAny>>,
    eps: &Bound<'py, PyAny>,
    n_jobs: usize,
) -> PyResult<Gradients<'py>> {
    let inputs = Inputs::<T>::borrow(args, x, y)?;
    let eps = rows_of::<T>(eps, "eps", args.n_latent)?.as_slice()?.to_vec();
    let (vae, batch) = (inputs.net.vae(args)?, inputs.batch()?);
    let grads = run(py, "vae_gradients", n_jobs, || vae.gradients(&batch, eps))?;
    let to_list = |grads: Vec<LayerGrad<T>>, layers: &[Layer<'_, T>]| -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for (g, l) in grads.into_iter().zip(layers) {
            list.append((new_array(py, &[l.n_in, l.n_out], g.weight)?, new_array(py, &[l.n_out], g.bias)?))?;
        }
        Ok(list)
    };
    let enc = to_list(grads.encoder, &vae.encoder)?;
    let dec = to_list(grads.decoder, &vae.decoder)?;
    let cm = match grads.class_means {
        Some(g) => new_array(py, &[args.n_classes, args.n_latent], g)?,
        None => py.None().into_bound(py),
    };
    Ok((grads.losses.mean_loss().0, enc, dec, cm))
}

pub fn log_likelihood<'py>(
    py: Python<'py>,
    args: VaeArgs<'_, 'py>,
    x: &Bound<'py, PyAny>,
    y: Option<&Bound<'py, PyAny>>,
    n_importance: usize,
    seed: u64,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(args.dtype()?, log_likelihood_typed(py, &args, x, y, n_importance, seed, n_jobs))
}

fn log_likelihood_typed<'py, T: Real + Element>(
    py: Python<'py>,
    args: &VaeArgs<'_, 'py>,
    x: &Bound<'py, PyAny>,
    y: Option<&Bound<'py, PyAny>>,
    n_importance: usize,
    seed: u64,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let inputs = Inputs::<T>::borrow(args, x, y)?;
    let (vae, batch, n) = (inputs.net.vae(args)?, inputs.batch()?, inputs.n_samples());
    ensure_allocatable("vae_log_likelihood", n.saturating_mul(widths(&vae)), std::mem::size_of::<T>())?;
    let out = run(py, "vae_log_likelihood", n_jobs, || vae.log_likelihood(&batch, n_importance, seed))?;
    new_array(py, &[n], out)
}

/// A training step's data and optimiser as passed from Python.
pub struct TrainingArgs<'a, 'py> {
    pub x: &'a Bound<'py, PyAny>,
    pub rows: Option<&'a Bound<'py, PyAny>>,
    pub y: Option<&'a Bound<'py, PyAny>>,
    pub slots: &'a Bound<'py, PyAny>,
    pub update: Update,
    pub draw: SeedStep,
}

pub fn train_step<'py>(py: Python<'py>, args: VaeArgs<'_, 'py>, step: TrainingArgs<'_, 'py>, n_jobs: usize) -> PyResult<(f64, f64, f64)> {
    dispatch!(float_dtype(step.x, "x")?, train_typed(py, &args, &step, n_jobs))
}

fn train_typed<'py, T: Real + Element>(
    py: Python<'py>,
    args: &VaeArgs<'_, 'py>,
    step: &TrainingArgs<'_, 'py>,
    n_jobs: usize,
) -> PyResult<(f64, f64, f64)> {
    let mut encoder = ChainOut::<T>::borrow(args.net.encoder, "encoder_")?;
    let mut decoder = ChainOut::<T>::borrow(args.net.decoder, "decoder_")?;
    let mut class_means: Option<PyReadwriteArrayDyn<'py, T>> =
        args.net.class_means.map(|c| output::<T>(c, "class_means", 2)).transpose()?;
    let encoder = encoder.layers()?;
    let decoder = decoder.layers()?;
    let n_features = decoder.last().map(|l| l.n_out).unwrap_or(0);
    let x = x_of::<T>(step.x, n_features, false)?;
    let labels = labels_of(step.y)?;
    let rows = step.rows.filter(|r| !r.is_none()).map(|r| indices(r, "rows")).transpose()?;
    let class_means = match class_means.as_mut() {
        Some(c) => Some(c.as_slice_mut()?),
        None => None,
    };
    let mut slots = Slots::<T>::borrow(step.slots)?;
    let mut state = slots.slices()?;
    let xs = x.as_slice()?;
    let mut net = VaeMut { encoder, decoder, class_means, spec: args.spec(n_features) };
    let (update, draw) = (step.update, step.draw);
    run(py, "vae_train_step", n_jobs, || {
        let batch = Batch::new(xs, n_features).labels(labels.as_deref()).rows(rows.as_deref());
        vae::train_step(&mut net, &mut state, &batch, &update, draw.seed, draw.step)
    })
}

pub fn gaussian_kl<'py>(
    py: Python<'py>,
    mu: &Bound<'py, PyAny>,
    log_var: &Bound<'py, PyAny>,
    prior_mean: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    dispatch!(float_dtype(mu, "mu")?, gaussian_kl_typed(py, mu, log_var, prior_mean))
}

fn gaussian_kl_typed<'py, T: Real + Element>(
    py: Python<'py>,
    mu: &Bound<'py, PyAny>,
    lv: &Bound<'py, PyAny>,
    pm: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mu = input::<T>(mu, "mu", 2)?;
    let lv = input::<T>(lv, "log_var", 2)?;
    super::arrays::expect_shape("log_var", lv.shape(), mu.shape())?;
    let pm = pm.filter(|p| !p.is_none()).map(|p| input::<T>(p, "prior_mean", 2)).transpose()?;
    if let Some(p) = &pm {
        super::arrays::expect_shape("prior_mean", p.shape(), mu.shape())?;
    }
    let (n, k) = (mu.shape()[0], mu.shape()[1]);
    let (ms, ls) = (mu.as_slice()?, lv.as_slice()?);
    let ps = match &pm {
        Some(p) => Some(p.as_slice()?),
        None => None,
    };
    let out: Vec<f64> =
        (0..n).map(|i| vae::gaussian_kl(&ms[i * k..(i + 1) * k], &ls[i * k..(i + 1) * k], ps.map(|p| &p[i * k..(i + 1) * k]))).collect();
    new_array(py, &[n], out)
}
