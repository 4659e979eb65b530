//! The Python signatures of the softmax-unit models' kernels in `deepgm._core` (`collab_*` for
//! `CollaborativeRBM`, `rs_*` for `ReplicatedSoftmax`), as `api` has them for the other models.
//!
//! Each function here is the Python API of one kernel call: its docstring, its arguments and their
//! defaults. It converts the scalar arguments, packs them with the array arguments into the settings of
//! a binding in `softmax_models`, and calls it. Nothing else happens here.

// A #[pyfunction] takes one Rust parameter per Python argument, so the functions of this file have as
// many parameters as the Python signatures they define; the bindings they call take settings structs.
#![allow(clippy::too_many_arguments, reason = "one Rust parameter per Python argument")]

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::arrays::{count_arg, indices, seed_arg, threads, SeedStep};
use super::softmax_models::{
    self as models, cd_settings, conditional_sets, pair, Ais, Chains, CrbmArgs, CrbmTraining, Csr, DocsArgs, RatingsArgs, RsStep, RsmArgs,
    Samples,
};
use crate::collaborative::{CrbmStep, DecayPer};

/// The `decay_per` argument: "step" or "rating".
fn decay_per(value: &str) -> PyResult<DecayPer> {
    match value {
        "step" => Ok(DecayPer::Step),
        "rating" => Ok(DecayPer::Rating),
        other => Err(PyValueError::new_err(format!("decay_per must be 'step' or 'rating', got {other:?}"))),
    }
}

// -- collaborative filtering ---------------------------------------------------------------------------

/// p(h = 1 | V) (n_users, n_hidden) for the users of the CSR ratings (indptr, indices, codes = rating-
/// value indices); with conditional_weights, the item sets r default to the rated items or are given
/// as (r_indptr, r_indices); with shared_components (n_values, n_hidden), every item's weights are
/// components[i] + shared_components.
#[pyfunction]
#[pyo3(signature = (indptr, indices, codes, components, intercept_hidden, *, conditional_weights=None, shared_components=None,
    r_indptr=None, r_indices=None, n_jobs=None))]
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
    let x = RatingsArgs { csr: Csr { indptr, indices }, codes };
    let model =
        CrbmArgs { components, intercept_visible: None, intercept_hidden: Some(intercept_hidden), conditional_weights, shared_components };
    models::collab_hidden(py, x, model, conditional_sets(r_indptr, r_indices)?, threads(n_jobs)?)
}

/// p(v_i = k | h) (nnz, n_values) for every entry of the CSR pattern (indptr, indices); row u of h
/// holds the hidden probabilities (or states) of the pattern's user u.
#[pyfunction]
#[pyo3(signature = (h, indptr, indices, components, intercept_visible, *, shared_components=None, n_jobs=None))]
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
    let model = CrbmArgs {
        components,
        intercept_visible: Some(intercept_visible),
        intercept_hidden: None,
        conditional_weights: None,
        shared_components,
    };
    models::collab_visible(py, h, Csr { indptr, indices }, model, threads(n_jobs)?)
}

/// n_steps of Gibbs sampling V -> h -> V over each user's rated items, from the given ratings; returns
/// the last ratings (rating-value indices, int64, in the CSR order). User u draws from the stream
/// (seed, u): the same seed gives the same chains for any n_jobs.
#[pyfunction]
#[pyo3(signature = (indptr, indices, codes, components, intercept_visible, intercept_hidden, *, conditional_weights=None,
    shared_components=None, r_indptr=None, r_indices=None, n_steps=1, seed, n_jobs=None))]
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
    let chains = Chains { n_steps: count_arg(n_steps, "n_steps", 0)?, seed: seed_arg(seed, "seed")? };
    let x = RatingsArgs { csr: Csr { indptr, indices }, codes };
    let model = CrbmArgs {
        components,
        intercept_visible: Some(intercept_visible),
        intercept_hidden: Some(intercept_hidden),
        conditional_weights,
        shared_components,
    };
    models::collab_gibbs(py, x, model, conditional_sets(r_indptr, r_indices)?, chains, threads(n_jobs)?)
}

/// One CD-k step on the users `users` of the CSR ratings (indptr, indices, codes), updating the
/// parameters and velocities in place (and, with conditional_weights, D and its velocity: the item
/// sets r are the rated items; and with shared_components, S and its velocity). `last_update` (int64,
/// one per item) counts the steps each item's rows have seen: the step first brings its items up to
/// `step`, as the dense algorithm has them (see collab_catch_up). decay_per="step" decays every item's
/// W and D rows by weight_decay at every step; "rating" decays item i's rows by weight_decay times
/// its number of ratings in the minibatch over the minibatch's number of users (an L2 penalty per
/// rating), and not in steps where nobody in the minibatch rated it. The shared weights step by
/// shared_learning_rate (default: learning_rate) on their statistics averaged over the minibatch's
/// ratings. With return_reconstruction, returns the reconstructed ratings of the minibatch
/// (rating-value indices, user after user in the order of `users`).
#[pyfunction]
#[pyo3(signature = (indptr, indices, codes, components, intercept_visible, intercept_hidden, components_velocity,
    intercept_visible_velocity, intercept_hidden_velocity, *, users, last_update, conditional_weights=None,
    conditional_weights_velocity=None, shared_components=None, shared_components_velocity=None, k=1, learning_rate=0.1,
    momentum=0.0, weight_decay=0.0, decay_per="step", shared_learning_rate=None, seed, step, return_reconstruction=false,
    n_jobs=None))]
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
    decay_per: &str,
    shared_learning_rate: Option<f64>,
    seed: &Bound<'_, PyAny>,
    step: i64,
    return_reconstruction: bool,
    n_jobs: Option<i64>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let draw = SeedStep::parse(seed, step)?;
    let how = CrbmStep {
        cd: cd_settings(count_arg(k, "k", 1)?, learning_rate, momentum, weight_decay, "collab_cd_step")?,
        decay_per: self::decay_per(decay_per)?,
        shared_learning_rate: shared_learning_rate.unwrap_or(learning_rate),
        seed: draw.seed,
        step: draw.step,
    };
    let training = CrbmTraining {
        params: [
            components,
            intercept_visible,
            intercept_hidden,
            components_velocity,
            intercept_visible_velocity,
            intercept_hidden_velocity,
        ],
        conditional: pair(conditional_weights, conditional_weights_velocity, "conditional_weights")?,
        shared: pair(shared_components, shared_components_velocity, "shared_components")?,
        last_update,
    };
    let x = RatingsArgs { csr: Csr { indptr, indices }, codes };
    models::collab_cd_step(py, x, training, self::indices(users, "users")?, how, return_reconstruction, threads(n_jobs)?)
}

/// Brings every item's rows (W, b, D and their velocities) up to `step` steps: the steps an item
/// missed since `last_update[i]` move it by momentum and (with decay_per="step") weight decay alone,
/// as the dense algorithm does at every step. `learning_rate`, `momentum`, `weight_decay` and
/// `decay_per` must be those of the missed steps.
#[pyfunction]
#[pyo3(signature = (components, intercept_visible, intercept_hidden, components_velocity, intercept_visible_velocity,
    intercept_hidden_velocity, *, last_update, conditional_weights=None, conditional_weights_velocity=None, shared_components=None,
    shared_components_velocity=None, learning_rate=0.1, momentum=0.0, weight_decay=0.0, decay_per="step", step, n_jobs=None))]
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
    decay_per: &str,
    step: i64,
    n_jobs: Option<i64>,
) -> PyResult<()> {
    let step = count_arg(step, "step", 0)? as u64;
    let settings = cd_settings(1, learning_rate, momentum, weight_decay, "collab_catch_up")?;
    let training = CrbmTraining {
        params: [
            components,
            intercept_visible,
            intercept_hidden,
            components_velocity,
            intercept_visible_velocity,
            intercept_hidden_velocity,
        ],
        conditional: pair(conditional_weights, conditional_weights_velocity, "conditional_weights")?,
        shared: pair(shared_components, shared_components_velocity, "shared_components")?,
        last_update,
    };
    models::collab_catch_up(py, training, settings, self::decay_per(decay_per)?, step, threads(n_jobs)?)
}

// -- Replicated Softmax ---------------------------------------------------------------------------------

/// p(h = 1 | v) (n_documents, n_hidden) for the word counts of the CSR matrix (indptr, indices, data).
#[pyfunction]
#[pyo3(signature = (indptr, indices, data, components, intercept_hidden, *, n_jobs=None))]
fn rs_hidden<'py>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    components: &Bound<'py, PyAny>,
    intercept_hidden: &Bound<'py, PyAny>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let x = DocsArgs { csr: Csr { indptr, indices }, data };
    models::rs_hidden(py, x, RsmArgs { components, intercept_visible: None, intercept_hidden }, threads(n_jobs)?)
}

/// log p*(v) = b.v + sum_j softplus(D a_j + W_j . v) (float64, (n_documents,)): the unnormalised
/// log-probability of each document's word sequence.
#[pyfunction]
#[pyo3(signature = (indptr, indices, data, components, intercept_visible, intercept_hidden, *, n_jobs=None))]
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
    let x = DocsArgs { csr: Csr { indptr, indices }, data };
    models::rs_log_unnormalized(
        py,
        x,
        RsmArgs { components, intercept_visible: Some(intercept_visible), intercept_hidden },
        threads(n_jobs)?,
    )
}

/// One CD-k step on the documents `rows` of the CSR word counts (indptr, indices, data), updating the
/// parameters and velocities in place. With return_reconstruction, returns the reconstructed
/// documents' counts (len(rows), n_words).
#[pyfunction]
#[pyo3(signature = (indptr, indices, data, components, intercept_visible, intercept_hidden, components_velocity,
    intercept_visible_velocity, intercept_hidden_velocity, *, rows, k=1, learning_rate=0.1, momentum=0.0, weight_decay=0.0,
    seed, step, return_reconstruction=false, n_jobs=None))]
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
    let how = RsStep {
        settings: cd_settings(count_arg(k, "k", 1)?, learning_rate, momentum, weight_decay, "rs_cd_step")?,
        draw: SeedStep::parse(seed, step)?,
    };
    let x = DocsArgs { csr: Csr { indptr, indices }, data };
    let params =
        [components, intercept_visible, intercept_hidden, components_velocity, intercept_visible_velocity, intercept_hidden_velocity];
    models::rs_cd_step(py, x, params, self::indices(rows, "rows")?, how, return_reconstruction, threads(n_jobs)?)
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
    let model = RsmArgs { components, intercept_visible: Some(intercept_visible), intercept_hidden };
    let lengths = indices(doc_lengths, "doc_lengths")?;
    models::rs_log_partition_exact(py, model, lengths, count_arg(max_units, "max_units", 1)?, threads(n_jobs)?)
}

/// Annealed importance sampling of log Z_D for each length in doc_lengths (ascending, distinct): the log
/// importance weights (n_lengths, n_chains); the estimate for length l is
/// n_hidden * log(2) + log mean exp(log_w[l]). One run per chain anneals the hidden units (the visible
/// units summed out) from length 0 up to the longest length, steps_per_word steps per word at first.
#[pyfunction]
#[pyo3(signature = (components, intercept_visible, intercept_hidden, doc_lengths, *, steps_per_word=50, n_chains=100, seed, n_jobs=None))]
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
    let ais = Ais {
        lengths: indices(doc_lengths, "doc_lengths")?,
        steps_per_word: count_arg(steps_per_word, "steps_per_word", 1)?,
        n_chains: count_arg(n_chains, "n_chains", 1)?,
        seed: seed_arg(seed, "seed")?,
    };
    let model = RsmArgs { components, intercept_visible: Some(intercept_visible), intercept_hidden };
    models::rs_ais(py, model, ais, threads(n_jobs)?)
}

/// n_samples documents of doc_length words after n_steps of Gibbs sampling from D words drawn from
/// softmax(b): their word counts (n_samples, n_words). Chain c draws from the stream (seed, c).
#[pyfunction]
#[pyo3(signature = (components, intercept_visible, intercept_hidden, *, n_samples, doc_length, n_steps=1000, seed, n_jobs=None))]
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
    let samples = Samples {
        n_samples: count_arg(n_samples, "n_samples", 1)?,
        length: count_arg(doc_length, "doc_length", 0)?,
        n_steps: count_arg(n_steps, "n_steps", 0)?,
        seed: seed_arg(seed, "seed")?,
    };
    let model = RsmArgs { components, intercept_visible: Some(intercept_visible), intercept_hidden };
    models::rs_sample(py, model, samples, threads(n_jobs)?)
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
