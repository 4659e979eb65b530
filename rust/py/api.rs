//! The Python signatures of `deepgm._core`, the same list as `python/deepgm/_core.pyi`.
//!
//! Each function here is the Python API of one kernel call: its docstring, its arguments and their
//! defaults. It converts the scalar arguments (seeds, counts, thread counts, the names of unit types,
//! losses and optimisers), packs them with the array arguments into the settings of a binding in
//! `kernels.rs`, `dense.rs`, `rbm.rs` or `vae.rs`, and calls it. Nothing else happens here.

// A #[pyfunction] takes one Rust parameter per Python argument, so the functions of this file have as
// many parameters as the Python signatures they define; the bindings they call take settings structs.
#![allow(clippy::too_many_arguments, reason = "one Rust parameter per Python argument")]

use pyo3::prelude::*;

use super::arrays::{count_arg, optional_seed, seed_arg, threads, units, SeedStep};
use super::dense::{self, ChainArgs, OptimizerArgs};
use super::errors::run;
use super::kernels::{self, Gemm};
use super::rbm::{self, CdStep, Flips, RbmArgs};
use super::vae::{self, NetArgs, VaeArgs};
use crate::rbm::CdSettings;
use crate::units::Units;

// -- basic kernels -------------------------------------------------------------------------------

/// c = alpha * op(a) @ op(b) + beta * c, in place (op = transpose if trans_*), float32 or float64.
#[pyfunction]
#[pyo3(signature = (a, b, c, *, alpha=1.0, beta=0.0, trans_a=false, trans_b=false, n_jobs=None))]
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
    kernels::gemm(py, Gemm { a, b, c, alpha, beta, trans_a, trans_b }, threads(n_jobs)?)
}

/// f(x) (or f'(x) with derivative=True) elementwise for f in 'identity', 'sigmoid', 'tanh', 'relu',
/// 'softplus'; returns a new array of x's shape and dtype.
#[pyfunction]
#[pyo3(signature = (x, name, *, derivative=false, n_jobs=None))]
fn activation<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    name: &str,
    derivative: bool,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    kernels::activation(py, x, name, derivative, threads(n_jobs)?)
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
    kernels::sigmoid_bernoulli(py, pre, bias, SeedStep::parse(seed, step)?, threads(n_jobs)?)
}

/// Bernoulli draws: a new array with 1 where a uniform draw falls below probs, else 0.
#[pyfunction]
#[pyo3(signature = (probs, *, seed, step=0, n_jobs=None))]
fn bernoulli<'py>(py: Python<'py>, probs: &Bound<'py, PyAny>, seed: u64, step: u64, n_jobs: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
    kernels::bernoulli(py, probs, SeedStep { seed, step }, threads(n_jobs)?)
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
    kernels::gaussian(py, mean, scale, SeedStep::parse(seed, step)?, threads(n_jobs)?)
}

/// The number of threads `n_jobs` resolves to.
#[pyfunction]
#[pyo3(signature = (n_jobs=None))]
fn effective_n_jobs(n_jobs: Option<i64>) -> PyResult<usize> {
    Ok(crate::threads::resolve_threads(threads(n_jobs)?))
}

/// Raises a Rust panic inside the kernel machinery; the binding layer must turn it into RuntimeError.
/// Exists to test that a panic never crosses into Python.
#[pyfunction]
fn _panic_for_testing(py: Python<'_>) -> PyResult<()> {
    run(py, "_panic_for_testing", 2, || -> crate::error::Result<()> {
        use rayon::prelude::*;
        (0..4).into_par_iter().for_each(|i| {
            if i == 3 {
                panic!("deliberate panic in a worker thread")
            }
        });
        Ok(())
    })
}

// -- dense layer chains ------------------------------------------------------------------------

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
    dense::forward(py, x, ChainArgs::new(weights, biases, activations), all_layers, threads(n_jobs)?)
}

/// Mean loss of (x, y) and its gradients: returns (loss, weight grads, bias grads, input grad).
#[pyfunction]
#[pyo3(signature = (x, y, weights, biases, activations, loss, *, n_jobs=None))]
fn mlp_loss_gradients<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    weights: &Bound<'py, PyAny>,
    biases: &Bound<'py, PyAny>,
    activations: &Bound<'py, PyAny>,
    loss: &str,
    n_jobs: Option<i64>,
) -> PyResult<dense::Gradients<'py>> {
    let chain = ChainArgs::new(weights, biases, activations);
    dense::loss_gradients(py, dense::Data { x, y, rows: None }, chain, dense::loss(loss)?, threads(n_jobs)?)
}

/// One minibatch training step in place: forward (with dropout on hidden layers), loss, backward, and
/// an optimiser update of every weight and bias. `slots[p]` holds the optimiser state of parameter p in
/// the order [W0, b0, W1, b1, ...] (1 array each for 'sgd', 2 for 'adam'). With `rows`, the minibatch
/// is x[rows], y[rows] (no copy of x is made). Returns the mean loss before the update.
#[pyfunction]
#[pyo3(signature = (x, y, weights, biases, activations, loss, slots, *, rows=None, optimizer="sgd", learning_rate=0.01,
    momentum=0.0, beta1=0.9, beta2=0.999, epsilon=1e-8, t=1, weight_decay=0.0, dropout=0.0, seed=None, step=0, n_jobs=None))]
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
    let draw = SeedStep::parse_optional(seed, step)?;
    let update = OptimizerArgs { name: optimizer, learning_rate, momentum, beta1, beta2, epsilon, t }.update(weight_decay)?;
    let training = dense::training(dense::loss(loss)?, update, dropout, draw);
    let chain = ChainArgs::new(weights, biases, activations);
    dense::train_step(py, dense::Data { x, y, rows }, chain, slots, training, threads(n_jobs)?)
}

/// One optimiser step on `param` in place given `grad`; `slots` are its state arrays
/// ([velocity] for 'sgd', [m, v] for 'adam').
#[pyfunction]
#[pyo3(signature = (param, grad, slots, *, optimizer="sgd", learning_rate=0.01, momentum=0.0, beta1=0.9, beta2=0.999,
    epsilon=1e-8, t=1, weight_decay=0.0, n_jobs=None))]
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
    let update = OptimizerArgs { name: optimizer, learning_rate, momentum, beta1, beta2, epsilon, t }.update(weight_decay)?;
    dense::optimizer_step(py, param, grad, slots, update, threads(n_jobs)?)
}

// -- restricted Boltzmann machines -------------------------------------------------------------

/// The mean of h | v (n, n_hidden): p(h = 1 | v) for Bernoulli units, c + W v for Gaussian units;
/// with a seed, returns (mean, a sample of h).
#[pyfunction]
#[pyo3(signature = (v, components, intercept_hidden, *, hidden="bernoulli", seed=None, step=0, n_jobs=None))]
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
    let step = count_arg(step, "step", 0)? as u64;
    let draw = optional_seed(seed, "seed")?.map(|seed| SeedStep { seed, step });
    let model = RbmArgs {
        components,
        intercept_visible: None,
        intercept_hidden: Some(intercept_hidden),
        visible: Units::Bernoulli,
        hidden: units(hidden, "hidden")?,
    };
    rbm::hidden(py, model, v, draw, threads(n_jobs)?)
}

/// The mean of v | h (n, n_visible); with a seed, returns (mean, a sample of v).
#[pyfunction]
#[pyo3(signature = (h, components, intercept_visible, *, visible="bernoulli", seed=None, step=0, n_jobs=None))]
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
    let step = count_arg(step, "step", 0)? as u64;
    let draw = optional_seed(seed, "seed")?.map(|seed| SeedStep { seed, step });
    let model = RbmArgs {
        components,
        intercept_visible: Some(intercept_visible),
        intercept_hidden: None,
        visible: units(visible, "visible")?,
        hidden: Units::Bernoulli,
    };
    rbm::visible(py, model, h, draw, threads(n_jobs)?)
}

/// Free energy F(v) of every row (float64, (n,)).
#[pyfunction]
#[pyo3(signature = (v, components, intercept_visible, intercept_hidden, *, visible="bernoulli", hidden="bernoulli", n_jobs=None))]
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
    let model = RbmArgs::full(components, intercept_visible, intercept_hidden, units(visible, "visible")?, units(hidden, "hidden")?);
    rbm::free_energy(py, model, v, None, threads(n_jobs)?)
}

/// scikit-learn's pseudo-likelihood proxy of every row (float64, (n,)), flipping in each row the unit
/// `flip[r]` if given, else one drawn from the stream (seed, step).
#[pyfunction]
#[pyo3(signature = (v, components, intercept_visible, intercept_hidden, *, seed=None, step=0, flip=None, n_jobs=None))]
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
    let step = count_arg(step, "step", 0)? as u64;
    let flips = Flips::parse(seed, step, flip)?;
    let model = RbmArgs::full(components, intercept_visible, intercept_hidden, Units::Bernoulli, Units::Bernoulli);
    rbm::free_energy(py, model, v, Some(flips), threads(n_jobs)?)
}

/// `n_steps` of block Gibbs sampling v -> h -> v from the rows of v; returns (the last sample of v,
/// the mean of v | h at the last step). v itself is not modified.
#[pyfunction]
#[pyo3(signature = (v, components, intercept_visible, intercept_hidden, *, n_steps=1, visible="bernoulli", hidden="bernoulli", seed, n_jobs=None))]
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
    let seed = seed_arg(seed, "seed")?;
    let n_steps = count_arg(n_steps, "n_steps", 0)?;
    let model = RbmArgs::full(components, intercept_visible, intercept_hidden, units(visible, "visible")?, units(hidden, "hidden")?);
    rbm::gibbs(py, model, v, n_steps, seed, threads(n_jobs)?)
}

/// One CD-k step (PCD-k with h_samples, the persistent hidden chains) on the minibatch X[rows] (or all
/// of X), updating the parameters and their velocities in place.
#[pyfunction]
#[pyo3(signature = (x, components, intercept_visible, intercept_hidden, components_velocity, intercept_visible_velocity,
    intercept_hidden_velocity, *, rows=None, h_samples=None, visible="bernoulli", hidden="bernoulli", k=1, learning_rate=0.1, momentum=0.0,
    weight_decay=0.0, seed, step, n_jobs=None))]
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
    let draw = SeedStep::parse(seed, step)?;
    let settings = CdSettings { k: count_arg(k, "k", 1)?, learning_rate, momentum, weight_decay };
    let params =
        [components, intercept_visible, intercept_hidden, components_velocity, intercept_visible_velocity, intercept_hidden_velocity];
    let (visible, hidden) = (units(visible, "visible")?, units(hidden, "hidden")?);
    rbm::cd_step(py, CdStep { x, params, visible, hidden, rows, h_samples, settings, draw }, threads(n_jobs)?)
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
    let max_units = count_arg(max_units, "max_units", 1)?;
    let model = RbmArgs::full(components, intercept_visible, intercept_hidden, units(visible, "visible")?, Units::Bernoulli);
    rbm::log_partition_exact(py, model, max_units, threads(n_jobs)?)
}

/// Annealed importance sampling: returns (log importance weights (n_chains,), log Z of the base-rate
/// model). The estimate is log Z_base + log mean exp(log_w).
#[pyfunction]
#[pyo3(signature = (components, intercept_visible, intercept_hidden, base_bias, betas, *, visible="bernoulli", n_chains=100, seed, n_jobs=None))]
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
    let seed = seed_arg(seed, "seed")?;
    let n_chains = count_arg(n_chains, "n_chains", 1)?;
    let model = RbmArgs::full(components, intercept_visible, intercept_hidden, units(visible, "visible")?, Units::Bernoulli);
    rbm::ais(py, model, rbm::Annealing { base_bias, betas, n_chains, seed }, threads(n_jobs)?)
}

// -- variational autoencoders ------------------------------------------------------------------

/// Defines a VAE function: `py`, its leading arguments, the network (`encoder_weights, ...,
/// class_means`), its own arguments, then the settings every VAE function takes (`n_latent,
/// likelihood, decoder_variance, conditioning, n_classes, n_jobs`), in the order of the Python
/// signature. The body sees the parsed network and settings as `$vae` and the thread count as `$n_jobs`.
macro_rules! vae_function {
    (
        $(#[$meta:meta])*
        fn $name:ident<$py:lifetime>($pyarg:ident, $($lead:ident: $lead_ty:ty),* ; $($arg:ident: $ty:ty),*) -> $ret:ty;
        |$vae:ident, $n_jobs:ident| $body:expr
    ) => {
        $(#[$meta])*
        fn $name<$py>(
            $pyarg: Python<$py>,
            $($lead: $lead_ty,)*
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
            let net = NetArgs::new(encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations, class_means);
            let $vae = VaeArgs::parse(net, n_latent, likelihood, decoder_variance, conditioning, n_classes)?;
            let $n_jobs = threads(n_jobs)?;
            $body
        }
    };
}

vae_function!(
    /// The posterior q(z | x): returns (mu, log_var), each (n, n_latent).
    #[pyfunction]
    #[pyo3(signature = (x, encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations,
        class_means=None, *, y=None, n_latent, likelihood="bernoulli", decoder_variance=1.0, conditioning="none", n_classes=0, n_jobs=None))]
    fn vae_encode<'py>(py, x: &Bound<'py, PyAny>; y: Option<&Bound<'py, PyAny>>) -> (Bound<'py, PyAny>, Bound<'py, PyAny>);
    |vae, n_jobs| vae::encode(py, vae, x, y, n_jobs)
);

vae_function!(
    /// The decoder's mean for latent codes z (n, n_latent): sigmoid of the logits (Bernoulli) or the
    /// Gaussian mean.
    #[pyfunction]
    #[pyo3(signature = (z, encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations,
        class_means=None, *, y=None, n_latent, likelihood="bernoulli", decoder_variance=1.0, conditioning="none", n_classes=0, n_jobs=None))]
    fn vae_decode<'py>(py, z: &Bound<'py, PyAny>; y: Option<&Bound<'py, PyAny>>) -> Bound<'py, PyAny>;
    |vae, n_jobs| vae::decode(py, vae, z, y, n_jobs)
);

vae_function!(
    /// Per-sample -log p(x | z) and KL(q(z | x) || prior) (float64 each), with z drawn once per sample
    /// from the stream (seed, step), or from the given standard-normal noise eps (n, n_latent).
    /// -ELBO = recon + kl.
    #[pyfunction]
    #[pyo3(signature = (x, encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations,
        class_means=None, *, y=None, eps=None, seed=None, step=0, n_latent, likelihood="bernoulli", decoder_variance=1.0, conditioning="none",
        n_classes=0, n_jobs=None))]
    fn vae_losses<'py>(
        py, x: &Bound<'py, PyAny>;
        y: Option<&Bound<'py, PyAny>>, eps: Option<&Bound<'py, PyAny>>, seed: Option<&Bound<'py, PyAny>>, step: i64
    ) -> (Bound<'py, PyAny>, Bound<'py, PyAny>);
    |vae, n_jobs| vae::losses(py, vae, x, y, eps, SeedStep::parse_optional(seed, step)?, n_jobs)
);

vae_function!(
    /// Mean -ELBO of x with fixed noise eps (n, n_latent), and its gradients: returns
    /// (loss, [(dW, db) per encoder layer], [(dW, db) per decoder layer], d class_means or None).
    #[pyfunction]
    #[pyo3(signature = (x, eps, encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations,
        class_means=None, *, y=None, n_latent, likelihood="bernoulli", decoder_variance=1.0, conditioning="none", n_classes=0, n_jobs=None))]
    fn vae_gradients<'py>(py, x: &Bound<'py, PyAny>, eps: &Bound<'py, PyAny>; y: Option<&Bound<'py, PyAny>>) -> vae::Gradients<'py>;
    |vae, n_jobs| vae::gradients(py, vae, x, y, eps, n_jobs)
);

vae_function!(
    /// Importance-sampled log p(x) per sample (float64): log (1/K) sum_k p(x, z_k) / q(z_k | x) with
    /// K = n_importance draws from q(z | x) (the IWAE bound), computed with log-sum-exp.
    #[pyfunction]
    #[pyo3(signature = (x, encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations,
        class_means=None, *, y=None, n_importance=1000, seed=None, n_latent, likelihood="bernoulli", decoder_variance=1.0, conditioning="none",
        n_classes=0, n_jobs=None))]
    fn vae_log_likelihood<'py>(py, x: &Bound<'py, PyAny>; y: Option<&Bound<'py, PyAny>>, n_importance: i64, seed: Option<&Bound<'py, PyAny>>)
        -> Bound<'py, PyAny>;
    |vae, n_jobs| {
        let seed = optional_seed(seed, "seed")?.unwrap_or(0);
        vae::log_likelihood(py, vae, x, y, count_arg(n_importance, "n_importance", 1)?, seed, n_jobs)
    }
);

vae_function!(
    /// One training step in place on the minibatch x[rows] (or all of x): draw eps, forward, -ELBO,
    /// backward, optimiser update of every parameter. `slots[p]` is the optimiser state of parameter p in
    /// the order [encoder W0, b0, ..., decoder W0, b0, ..., class_means]. Returns the minibatch means
    /// (loss, reconstruction, KL) before the update.
    #[pyfunction]
    #[pyo3(signature = (x, encoder_weights, encoder_biases, encoder_activations, decoder_weights, decoder_biases, decoder_activations,
        class_means, slots, *, rows=None, y=None, optimizer="adam", learning_rate=1e-3, momentum=0.0, beta1=0.9, beta2=0.999, epsilon=1e-8, t=1,
        weight_decay=0.0, seed=None, step=0, n_latent, likelihood="bernoulli", decoder_variance=1.0, conditioning="none", n_classes=0, n_jobs=None))]
    fn vae_train_step<'py>(
        py, x: &Bound<'py, PyAny>;
        slots: &Bound<'py, PyAny>, rows: Option<&Bound<'py, PyAny>>, y: Option<&Bound<'py, PyAny>>, optimizer: &str, learning_rate: f64,
        momentum: f64, beta1: f64, beta2: f64, epsilon: f64, t: i64, weight_decay: f64, seed: Option<&Bound<'py, PyAny>>, step: i64
    ) -> (f64, f64, f64);
    |vae, n_jobs| {
        let draw = SeedStep::parse_optional(seed, step)?;
        let update = OptimizerArgs { name: optimizer, learning_rate, momentum, beta1, beta2, epsilon, t }.update(weight_decay)?;
        vae::train_step(py, vae, vae::TrainingArgs { x, rows, y, slots, update, draw }, n_jobs)
    }
);

/// KL(N(mu, diag exp(log_var)) || N(prior_mean, I)) per row (float64).
#[pyfunction]
#[pyo3(signature = (mu, log_var, prior_mean=None))]
fn gaussian_kl<'py>(
    py: Python<'py>,
    mu: &Bound<'py, PyAny>,
    log_var: &Bound<'py, PyAny>,
    prior_mean: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    vae::gaussian_kl(py, mu, log_var, prior_mean)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gemm, m)?)?;
    m.add_function(wrap_pyfunction!(activation, m)?)?;
    m.add_function(wrap_pyfunction!(sigmoid_bernoulli, m)?)?;
    m.add_function(wrap_pyfunction!(bernoulli, m)?)?;
    m.add_function(wrap_pyfunction!(gaussian, m)?)?;
    m.add_function(wrap_pyfunction!(effective_n_jobs, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_testing, m)?)?;
    m.add_function(wrap_pyfunction!(mlp_forward, m)?)?;
    m.add_function(wrap_pyfunction!(mlp_loss_gradients, m)?)?;
    m.add_function(wrap_pyfunction!(mlp_train_step, m)?)?;
    m.add_function(wrap_pyfunction!(optimizer_step, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_hidden, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_visible, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_free_energy, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_pseudo_likelihood, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_gibbs, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_cd_step, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_log_partition_exact, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_ais, m)?)?;
    m.add_function(wrap_pyfunction!(vae_encode, m)?)?;
    m.add_function(wrap_pyfunction!(vae_decode, m)?)?;
    m.add_function(wrap_pyfunction!(vae_losses, m)?)?;
    m.add_function(wrap_pyfunction!(vae_gradients, m)?)?;
    m.add_function(wrap_pyfunction!(vae_log_likelihood, m)?)?;
    m.add_function(wrap_pyfunction!(vae_train_step, m)?)?;
    m.add_function(wrap_pyfunction!(gaussian_kl, m)?)?;
    Ok(())
}
