//! Bindings of the (conditional) VAE kernels.
//!
//! Every function takes the network as `encoder_weights, encoder_biases, encoder_activations,
//! decoder_weights, decoder_biases, decoder_activations, class_means` plus the keyword settings
//! `n_latent, likelihood, decoder_variance, conditioning, n_classes`.

use numpy::{Element, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::arrays::{float_dtype, indices, input, input_unchecked, output, threads};
use super::dense::{new_array, parse_optimizer, ChainIn, ChainOut, Slots};
use super::errors::{ensure_allocatable, run, value_error};
use super::kernels::dispatch;
use crate::real::Real;
use crate::batch::Batch;
use crate::vae::{self, Conditioning, Likelihood, Vae, VaeMut, VaeSpec};

/// The keyword settings shared by all VAE functions.
#[derive(Clone, Copy)]
struct Settings {
    n_latent: usize,
    n_classes: usize,
    likelihood: Likelihood,
    conditioning: Conditioning,
}

fn settings(n_latent: i64, likelihood: &str, decoder_variance: f64, conditioning: &str, n_classes: i64) -> PyResult<Settings> {
    let n_latent = super::arrays::count_arg(n_latent, "n_latent", 1)?;
    let n_classes = super::arrays::count_arg(n_classes, "n_classes", 0)?;
    if !(decoder_variance.is_finite() && decoder_variance > 0.0) {
        return Err(value_error("decoder_variance", format!("must be a finite number > 0, got {decoder_variance}")));
    }
    let likelihood = match likelihood {
        "bernoulli" => Likelihood::Bernoulli,
        "gaussian" => Likelihood::Gaussian { variance: decoder_variance },
        other => return Err(value_error("likelihood", format!("must be 'bernoulli' or 'gaussian', got '{other}'"))),
    };
    let conditioning = Conditioning::parse(conditioning).map_err(|e| value_error("conditioning", e))?;
    if conditioning != Conditioning::None && n_classes == 0 {
        return Err(value_error("n_classes", "a conditional VAE needs n_classes >= 1"));
    }
    Ok(Settings { n_latent, n_classes, likelihood, conditioning })
}

fn spec(s: Settings, n_features: usize) -> VaeSpec {
    VaeSpec { n_features, n_latent: s.n_latent, n_classes: s.n_classes, likelihood: s.likelihood, conditioning: s.conditioning }
}

/// The network borrowed read-only.
struct NetIn<'py, T: Element> {
    encoder: ChainIn<'py, T>,
    decoder: ChainIn<'py, T>,
    class_means: Option<PyReadonlyArrayDyn<'py, T>>,
    n_features: usize,
}

/// The network as passed from Python: the seven positional arguments.
type NetArgs<'a, 'py> = (
    &'a Bound<'py, PyAny>,
    &'a Bound<'py, PyAny>,
    &'a Bound<'py, PyAny>,
    &'a Bound<'py, PyAny>,
    &'a Bound<'py, PyAny>,
    &'a Bound<'py, PyAny>,
    Option<&'a Bound<'py, PyAny>>,
);

impl<'py, T: Element + Real> NetIn<'py, T> {
    fn extract(args: NetArgs<'_, 'py>) -> PyResult<Self> {
        let (ew, eb, ea, dw, db, da, cm) = args;
        let encoder = ChainIn::<T>::extract(ew, eb, ea, "encoder_")?;
        let decoder = ChainIn::<T>::extract(dw, db, da, "decoder_")?;
        let class_means = cm.filter(|c| !c.is_none()).map(|c| input::<T>(c, "class_means", 2)).transpose()?;
        let n_features = decoder.layers()?.last().map(|l| l.n_out).unwrap_or(0);
        Ok(NetIn { encoder, decoder, class_means, n_features })
    }

    fn vae(&self, s: Settings) -> PyResult<Vae<'_, T>> {
        let vae = Vae {
            encoder: self.encoder.layers()?,
            decoder: self.decoder.layers()?,
            class_means: match &self.class_means {
                Some(c) => Some(c.as_slice()?),
                None => None,
            },
            spec: spec(s, self.n_features),
        };
        vae.check().map_err(|e| value_error("vae", e))?;
        Ok(vae)
    }
}

fn labels_of(y: Option<&Bound<'_, PyAny>>, n: usize, s: Settings) -> PyResult<Option<Vec<usize>>> {
    match (y.filter(|y| !y.is_none()), s.conditioning) {
        (None, Conditioning::None) => Ok(None),
        (None, _) => Err(value_error("y", "class labels are required by a conditional VAE")),
        (Some(y), _) => {
            let l = indices(y, "y", s.n_classes.max(1))?;
            if l.len() != n {
                return Err(value_error("y", format!("expected {n} labels (one per row of x), got {}", l.len())));
            }
            Ok(Some(l))
        }
    }
}

/// x as a (n, width) array; `finite` checks every value (the training step checks only its rows).
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

macro_rules! net_signature_fn {
    ($(#[$meta:meta])* fn $name:ident<$py:lifetime>($($lead:ident : $lty:ty),* ; $($arg:ident : $ty:ty),*) -> $ret:ty => $imp:ident($($pass:expr),*)) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        fn $name<$py>(
            py: Python<$py>,
            $($lead: $lty,)*
            encoder_weights: &Bound<$py, PyAny>,
            encoder_biases: &Bound<$py, PyAny>,
            encoder_activations: &Bound<$py, PyAny>,
            decoder_weights: &Bound<$py, PyAny>,
            decoder_biases: &Bound<$py, PyAny>,
            decoder_activations: &Bound<$py, PyAny>,
            class_means: Option<&Bound<$py, PyAny>>,
            $($arg: $ty,)*
            n_latent: i64,
            likelihood: &str,
            decoder_variance: f64,
            conditioning: &str,
            n_classes: i64,
            n_jobs: Option<i64>,
        ) -> PyResult<$ret> {
            let s = settings(n_latent, likelihood, decoder_variance, conditioning, n_classes)?;
            let n_jobs = threads(n_jobs)?;
            let net: NetArgs<'_, $py> = (encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations, class_means);
            dispatch!(float_dtype(encoder_biases.cast::<PyList>().ok().and_then(|l| l.get_item(0).ok()).as_ref().unwrap_or(encoder_biases), "encoder_biases")?, $imp(py, net, s, n_jobs, $($pass),*))
        }
    };
}

/// Values per sample in the activations of one pass through encoder and decoder.
fn widths<T>(vae: &crate::vae::Vae<'_, T>) -> usize {
    vae.encoder.iter().chain(&vae.decoder).map(|l| l.n_out).sum::<usize>() + 4 * vae.spec.n_latent
}

fn encode_impl<'py, T: Real + Element>(py: Python<'py>, net: NetArgs<'_, 'py>, s: Settings, n_jobs: usize, x: &Bound<'py, PyAny>, y: Option<&Bound<'py, PyAny>>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let net = NetIn::<T>::extract(net)?;
    let x = x_of::<T>(x, net.n_features, true)?;
    let n = x.shape()[0];
    let labels = labels_of(y, n, s)?;
    let vae = net.vae(s)?;
    let xs = x.as_slice()?;
    ensure_allocatable("vae_encode", n.saturating_mul(widths(&vae)), std::mem::size_of::<T>())?;
    let (mu, lv) = run(py, "vae_encode", n_jobs, || vae.encode(&Batch::new(xs, net.n_features).labels(labels.as_deref())))?;
    Ok((new_array(py, &[n, s.n_latent], mu)?, new_array(py, &[n, s.n_latent], lv)?))
}

net_signature_fn!(
    /// The posterior q(z | x): returns (mu, log_var), each (n, n_latent).
    #[pyfunction]
    #[pyo3(signature = (x, encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations,
        class_means=None, *, y=None, n_latent, likelihood="bernoulli", decoder_variance=1.0, conditioning="none", n_classes=0, n_jobs=None))]
    fn vae_encode<'py>(x: &Bound<'py, PyAny>; y: Option<&Bound<'py, PyAny>>) -> (Bound<'py, PyAny>, Bound<'py, PyAny>) => encode_impl(x, y)
);

fn decode_impl<'py, T: Real + Element>(py: Python<'py>, net: NetArgs<'_, 'py>, s: Settings, n_jobs: usize, z: &Bound<'py, PyAny>, y: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    let net = NetIn::<T>::extract(net)?;
    let z = input::<T>(z, "z", 2)?;
    if z.shape()[1] != s.n_latent {
        return Err(value_error("z", format!("expected {} columns, got {}", s.n_latent, z.shape()[1])));
    }
    let n = z.shape()[0];
    let labels = labels_of(y, n, s)?;
    let vae = net.vae(s)?;
    let zs = z.as_slice()?;
    let d = net.n_features;
    ensure_allocatable("vae_decode", n.saturating_mul(widths(&vae)), std::mem::size_of::<T>())?;
    let out = run(py, "vae_decode", n_jobs, || vae.decode(zs, labels.as_deref()))?;
    Ok(new_array(py, &[n, d], out)?)
}

net_signature_fn!(
    /// The decoder's mean for latent codes z (n, n_latent): sigmoid of the logits (Bernoulli) or the
    /// Gaussian mean.
    #[pyfunction]
    #[pyo3(signature = (z, encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations,
        class_means=None, *, y=None, n_latent, likelihood="bernoulli", decoder_variance=1.0, conditioning="none", n_classes=0, n_jobs=None))]
    fn vae_decode<'py>(z: &Bound<'py, PyAny>; y: Option<&Bound<'py, PyAny>>) -> Bound<'py, PyAny> => decode_impl(z, y)
);

#[allow(clippy::too_many_arguments)]
fn losses_impl<'py, T: Real + Element>(
    py: Python<'py>,
    net: NetArgs<'_, 'py>,
    s: Settings,
    n_jobs: usize,
    x: &Bound<'py, PyAny>,
    y: Option<&Bound<'py, PyAny>>,
    eps: Option<&Bound<'py, PyAny>>,
    seed: Option<&Bound<'py, PyAny>>,
    step: i64,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let seed = super::arrays::optional_seed(seed, "seed")?.unwrap_or(0);
    let step = super::arrays::count_arg(step, "step", 0)? as u64;
    let net = NetIn::<T>::extract(net)?;
    let x = x_of::<T>(x, net.n_features, true)?;
    let n = x.shape()[0];
    let labels = labels_of(y, n, s)?;
    let eps = eps.filter(|e| !e.is_none()).map(|e| input::<T>(e, "eps", 2)).transpose()?;
    if let Some(e) = &eps {
        if e.shape() != [n, s.n_latent] {
            return Err(value_error("eps", format!("expected shape [{n}, {}], got {:?}", s.n_latent, e.shape())));
        }
    }
    let vae = net.vae(s)?;
    let xs = x.as_slice()?;
    let eps_vec = match &eps {
        Some(e) => Some(e.as_slice()?.to_vec()),
        None => None,
    };
    ensure_allocatable("vae_losses", n.saturating_mul(widths(&vae) + net.n_features), std::mem::size_of::<T>())?;
    let l = run(py, "vae_losses", n_jobs, || {
        let e = eps_vec.unwrap_or_else(|| vae.draw_eps(n, seed, step));
        vae.losses(&Batch::new(xs, net.n_features).labels(labels.as_deref()), e)
    })?;
    Ok((new_array(py, &[n], l.recon)?, new_array(py, &[n], l.kl)?))
}

net_signature_fn!(
    /// Per-sample -log p(x | z) and KL(q(z | x) || prior) (float64 each), with z drawn once per sample
    /// from the stream (seed, step), or from the given standard-normal noise eps (n, n_latent).
    /// -ELBO = recon + kl.
    #[pyfunction]
    #[pyo3(signature = (x, encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations,
        class_means=None, *, y=None, eps=None, seed=None, step=0, n_latent, likelihood="bernoulli", decoder_variance=1.0, conditioning="none",
        n_classes=0, n_jobs=None))]
    fn vae_losses<'py>(x: &Bound<'py, PyAny>; y: Option<&Bound<'py, PyAny>>, eps: Option<&Bound<'py, PyAny>>, seed: Option<&Bound<'py, PyAny>>, step: i64) -> (Bound<'py, PyAny>, Bound<'py, PyAny>) => losses_impl(x, y, eps, seed, step)
);

#[allow(clippy::type_complexity)]
fn gradients_impl<'py, T: Real + Element>(
    py: Python<'py>,
    net: NetArgs<'_, 'py>,
    s: Settings,
    n_jobs: usize,
    x: &Bound<'py, PyAny>,
    eps: &Bound<'py, PyAny>,
    y: Option<&Bound<'py, PyAny>>,
) -> PyResult<(f64, Bound<'py, PyList>, Bound<'py, PyList>, Bound<'py, PyAny>)> {
    let net = NetIn::<T>::extract(net)?;
    let x = x_of::<T>(x, net.n_features, true)?;
    let n = x.shape()[0];
    let labels = labels_of(y, n, s)?;
    let eps = input::<T>(eps, "eps", 2)?;
    if eps.shape() != [n, s.n_latent] {
        return Err(value_error("eps", format!("expected shape [{n}, {}], got {:?}", s.n_latent, eps.shape())));
    }
    let vae = net.vae(s)?;
    let xs = x.as_slice()?;
    let e = eps.as_slice()?.to_vec();
    let (losses, eg, dg, cg) = run(py, "vae_gradients", n_jobs, || vae.gradients(&Batch::new(xs, net.n_features).labels(labels.as_deref()), e))?;
    let to_list = |grads: Vec<crate::dense::LayerGrad<T>>, layers: &[crate::dense::Layer<'_, T>]| -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for (g, l) in grads.into_iter().zip(layers) {
            list.append((new_array(py, &[l.n_in, l.n_out], g.weight)?, new_array(py, &[l.n_out], g.bias)?))?;
        }
        Ok(list)
    };
    let enc = to_list(eg, &vae.encoder)?;
    let dec = to_list(dg, &vae.decoder)?;
    let cm = match cg {
        Some(g) => new_array(py, &[s.n_classes, s.n_latent], g)?,
        None => py.None().into_bound(py),
    };
    Ok((losses.mean_loss().0, enc, dec, cm))
}

net_signature_fn!(
    /// Mean -ELBO of x with fixed noise eps (n, n_latent), and its gradients: returns
    /// (loss, [(dW, db) per encoder layer], [(dW, db) per decoder layer], d class_means or None).
    #[pyfunction]
    #[pyo3(signature = (x, eps, encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations,
        class_means=None, *, y=None, n_latent, likelihood="bernoulli", decoder_variance=1.0, conditioning="none", n_classes=0, n_jobs=None))]
    fn vae_gradients<'py>(x: &Bound<'py, PyAny>, eps: &Bound<'py, PyAny>; y: Option<&Bound<'py, PyAny>>) -> (f64, Bound<'py, PyList>, Bound<'py, PyList>, Bound<'py, PyAny>) => gradients_impl(x, eps, y)
);

#[allow(clippy::too_many_arguments)]
fn ll_impl<'py, T: Real + Element>(
    py: Python<'py>,
    net: NetArgs<'_, 'py>,
    s: Settings,
    n_jobs: usize,
    x: &Bound<'py, PyAny>,
    y: Option<&Bound<'py, PyAny>>,
    n_importance: i64,
    seed: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let seed = super::arrays::optional_seed(seed, "seed")?.unwrap_or(0);
    let n_importance = super::arrays::count_arg(n_importance, "n_importance", 1)?;
    let net = NetIn::<T>::extract(net)?;
    let x = x_of::<T>(x, net.n_features, true)?;
    let n = x.shape()[0];
    let labels = labels_of(y, n, s)?;
    let vae = net.vae(s)?;
    let xs = x.as_slice()?;
    ensure_allocatable("vae_log_likelihood", n.saturating_mul(widths(&vae)), std::mem::size_of::<T>())?;
    let out = run(py, "vae_log_likelihood", n_jobs, || vae.log_likelihood(&Batch::new(xs, net.n_features).labels(labels.as_deref()), n_importance, seed))?;
    Ok(new_array(py, &[n], out)?)
}

net_signature_fn!(
    /// Importance-sampled log p(x) per sample (float64): log (1/K) sum_k p(x, z_k) / q(z_k | x) with
    /// K = n_importance draws from q(z | x) (the IWAE bound), computed with log-sum-exp.
    #[pyfunction]
    #[pyo3(signature = (x, encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations,
        class_means=None, *, y=None, n_importance=1000, seed=None, n_latent, likelihood="bernoulli", decoder_variance=1.0, conditioning="none",
        n_classes=0, n_jobs=None))]
    fn vae_log_likelihood<'py>(x: &Bound<'py, PyAny>; y: Option<&Bound<'py, PyAny>>, n_importance: i64, seed: Option<&Bound<'py, PyAny>>) -> Bound<'py, PyAny> => ll_impl(x, y, n_importance, seed)
);

/// The network borrowed writable, for training.
struct NetOut<'py, T: Element> {
    encoder: ChainOut<'py, T>,
    decoder: ChainOut<'py, T>,
    class_means: Option<PyReadwriteArrayDyn<'py, T>>,
}

#[allow(clippy::too_many_arguments)]
fn train_impl<'py, T: Real + Element>(
    py: Python<'py>,
    net: NetArgs<'_, 'py>,
    s: Settings,
    n_jobs: usize,
    x: &Bound<'py, PyAny>,
    slots: &Bound<'py, PyAny>,
    rows: Option<&Bound<'py, PyAny>>,
    y: Option<&Bound<'py, PyAny>>,
    opt: crate::optim::Optimizer,
    weight_decay: f64,
    seed: u64,
    step: u64,
) -> PyResult<(f64, f64, f64)> {
    let (ew, eb, ea, dw, db, da, cm) = net;
    let mut net = NetOut::<T> {
        encoder: ChainOut::<T>::extract(ew, eb, ea, "encoder_")?,
        decoder: ChainOut::<T>::extract(dw, db, da, "decoder_")?,
        class_means: cm.filter(|c| !c.is_none()).map(|c| output::<T>(c, "class_means", 2)).transpose()?,
    };
    let mut encoder = net.encoder.layers()?;
    let mut decoder = net.decoder.layers()?;
    let n_features = decoder.last().map(|l| l.n_out).unwrap_or(0);
    let x = x_of::<T>(x, n_features, false)?;
    let n = x.shape()[0];
    let labels = labels_of(y, n, s)?;
    let rows = rows.filter(|r| !r.is_none()).map(|r| indices(r, "rows", n)).transpose()?;
    let mut sizes: Vec<usize> = encoder.iter().chain(decoder.iter()).flat_map(|l| [l.weight.len(), l.bias.len()]).collect();
    let class_means = match net.class_means.as_mut() {
        Some(c) => {
            sizes.push(c.len());
            Some(c.as_slice_mut()?)
        }
        None => None,
    };
    let mut slot_arrays = Slots::<T>::extract(slots, sizes.len(), opt.n_slots())?;
    slot_arrays.check_sizes(&sizes)?;
    let mut slot_slices = slot_arrays.slices()?;
    let xs = x.as_slice()?;
    let mut vae_mut = VaeMut {
        encoder: std::mem::take(&mut encoder),
        decoder: std::mem::take(&mut decoder),
        class_means,
        spec: spec(s, n_features),
    };
    vae_mut.view().check().map_err(|e| value_error("vae", e))?;
    run(py, "vae_train_step", n_jobs, || {
        let batch = Batch::new(xs, n_features).labels(labels.as_deref()).rows(rows.as_deref());
        vae::train_step(&mut vae_mut, &mut slot_slices, &batch, &crate::optim::Update { optimizer: opt, weight_decay }, seed, step)
    })
}

/// One training step in place on the minibatch x[rows] (or all of x): draw eps, forward, -ELBO,
/// backward, optimiser update of every parameter. `slots[p]` is the optimiser state of parameter p in
/// the order [encoder W0, b0, ..., decoder W0, b0, ..., class_means]. Returns the minibatch means
/// (loss, reconstruction, KL) before the update.
#[pyfunction]
#[pyo3(signature = (x, encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations,
    class_means, slots, *, rows=None, y=None, optimizer="adam", learning_rate=1e-3, momentum=0.0, beta1=0.9, beta2=0.999, epsilon=1e-8, t=1,
    weight_decay=0.0, seed=None, step=0, n_latent, likelihood="bernoulli", decoder_variance=1.0, conditioning="none", n_classes=0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn vae_train_step<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    encoder_weights: &Bound<'py, PyAny>,
    encoder_biases: &Bound<'py, PyAny>,
    encoder_activations: &Bound<'py, PyAny>,
    decoder_weights: &Bound<'py, PyAny>,
    decoder_biases: &Bound<'py, PyAny>,
    decoder_activations: &Bound<'py, PyAny>,
    class_means: Option<&Bound<'py, PyAny>>,
    slots: &Bound<'py, PyAny>,
    rows: Option<&Bound<'py, PyAny>>,
    y: Option<&Bound<'py, PyAny>>,
    optimizer: &str,
    learning_rate: f64,
    momentum: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    t: i64,
    weight_decay: f64,
    seed: Option<&Bound<'py, PyAny>>,
    step: i64,
    n_latent: i64,
    likelihood: &str,
    decoder_variance: f64,
    conditioning: &str,
    n_classes: i64,
    n_jobs: Option<i64>,
) -> PyResult<(f64, f64, f64)> {
    let seed = super::arrays::optional_seed(seed, "seed")?.unwrap_or(0);
    let step = super::arrays::count_arg(step, "step", 0)? as u64;
    let t = super::arrays::count_arg(t, "t", 1)? as u64;
    let s = settings(n_latent, likelihood, decoder_variance, conditioning, n_classes)?;
    let n_jobs = threads(n_jobs)?;
    let opt = parse_optimizer(optimizer, learning_rate, momentum, beta1, beta2, epsilon, t)?;
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return Err(value_error("weight_decay", format!("must be a finite number >= 0, got {weight_decay}")));
    }
    let net: NetArgs<'_, 'py> = (encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations, class_means);
    dispatch!(float_dtype(x, "x")?, train_impl(py, net, s, n_jobs, x, slots, rows, y, opt, weight_decay, seed, step))
}

/// KL(N(mu, diag exp(log_var)) || N(prior_mean, I)) per row (float64).
#[pyfunction]
#[pyo3(signature = (mu, log_var, prior_mean=None))]
fn gaussian_kl<'py>(py: Python<'py>, mu: &Bound<'py, PyAny>, log_var: &Bound<'py, PyAny>, prior_mean: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    fn imp<'py, T: Real + Element>(py: Python<'py>, mu: &Bound<'py, PyAny>, lv: &Bound<'py, PyAny>, pm: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
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
        let out: Vec<f64> = (0..n).map(|i| vae::gaussian_kl(&ms[i * k..(i + 1) * k], &ls[i * k..(i + 1) * k], ps.map(|p| &p[i * k..(i + 1) * k]))).collect();
        Ok(new_array(py, &[n], out)?)
    }
    dispatch!(float_dtype(mu, "mu")?, imp(py, mu, log_var, prior_mean))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(vae_encode, m)?)?;
    m.add_function(wrap_pyfunction!(vae_decode, m)?)?;
    m.add_function(wrap_pyfunction!(vae_losses, m)?)?;
    m.add_function(wrap_pyfunction!(vae_gradients, m)?)?;
    m.add_function(wrap_pyfunction!(vae_log_likelihood, m)?)?;
    m.add_function(wrap_pyfunction!(vae_train_step, m)?)?;
    m.add_function(wrap_pyfunction!(gaussian_kl, m)?)?;
    Ok(())
}
