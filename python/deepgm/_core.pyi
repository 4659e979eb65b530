"""Type stubs of the native module ``deepgm._core`` (kept by hand; see rust/py/).

Arrays are float32 or float64 (one dtype per call) and must be C-contiguous: the kernels never copy.
Functions that update arrays in place return None. ``n_jobs``: None or -1 = all cores, else >= 1.
Randomness comes from streams keyed by (seed, step, fixed chunk): identical for any n_jobs.
"""

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32] | npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.integer]
Activation = Literal["identity", "linear", "sigmoid", "logistic", "tanh", "relu", "softplus"]
Loss = Literal["squared_error", "mse", "binary_cross_entropy", "bce", "softmax_cross_entropy", "cross_entropy"]
Optimizer = Literal["sgd", "adam"]
Units = Literal["bernoulli", "gaussian"]
Likelihood = Literal["bernoulli", "gaussian"]
Conditioning = Literal["none", "prior_mean", "concat"]

__version__: str

# -- basic kernels -------------------------------------------------------------------------------------

def gemm(
    a: FloatArray,
    b: FloatArray,
    c: FloatArray,
    *,
    alpha: float = 1.0,
    beta: float = 0.0,
    trans_a: bool = False,
    trans_b: bool = False,
    n_jobs: int | None = None,
) -> None:
    """c = alpha * op(a) @ op(b) + beta * c, in place."""

def activation(x: FloatArray, name: Activation, *, derivative: bool = False, n_jobs: int | None = None) -> FloatArray: ...
def sigmoid_bernoulli(
    pre: FloatArray, bias: FloatArray, *, seed: int, step: int = 0, n_jobs: int | None = None
) -> tuple[FloatArray, FloatArray]: ...
def bernoulli(probs: FloatArray, *, seed: int, step: int = 0, n_jobs: int | None = None) -> FloatArray: ...
def gaussian(
    mean: FloatArray, scale: FloatArray, *, seed: int, step: int = 0, n_jobs: int | None = None
) -> tuple[FloatArray, FloatArray]: ...
def effective_n_jobs(n_jobs: int | None = None) -> int: ...
def _panic_for_testing() -> None: ...

# -- dense layer chains ------------------------------------------------------------------------------

def mlp_forward(
    x: FloatArray,
    weights: list[FloatArray],
    biases: list[FloatArray],
    activations: Sequence[Activation],
    *,
    all_layers: bool = False,
    n_jobs: int | None = None,
) -> FloatArray | list[FloatArray]: ...
def mlp_loss_gradients(
    x: FloatArray,
    y: FloatArray,
    weights: list[FloatArray],
    biases: list[FloatArray],
    activations: Sequence[Activation],
    loss: Loss,
    *,
    n_jobs: int | None = None,
) -> tuple[float, list[FloatArray], list[FloatArray], FloatArray]: ...
def mlp_train_step(
    x: FloatArray,
    y: FloatArray,
    weights: list[FloatArray],
    biases: list[FloatArray],
    activations: Sequence[Activation],
    loss: Loss,
    slots: list[list[FloatArray]],
    *,
    rows: IndexArray | None = None,
    optimizer: Optimizer = "sgd",
    learning_rate: float = 0.01,
    momentum: float = 0.0,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    t: int = 1,
    weight_decay: float = 0.0,
    dropout: float = 0.0,
    seed: int | None = None,
    step: int = 0,
    n_jobs: int | None = None,
) -> float: ...
def optimizer_step(
    param: FloatArray,
    grad: FloatArray,
    slots: list[FloatArray],
    *,
    optimizer: Optimizer = "sgd",
    learning_rate: float = 0.01,
    momentum: float = 0.0,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    t: int = 1,
    weight_decay: float = 0.0,
    n_jobs: int | None = None,
) -> None: ...

# -- restricted Boltzmann machines -------------------------------------------------------------------

def rbm_hidden(
    v: FloatArray,
    components: FloatArray,
    intercept_hidden: FloatArray,
    *,
    hidden: Units = "bernoulli",
    seed: int | None = None,
    step: int = 0,
    n_jobs: int | None = None,
) -> FloatArray | tuple[FloatArray, FloatArray]: ...
def rbm_visible(
    h: FloatArray,
    components: FloatArray,
    intercept_visible: FloatArray,
    *,
    visible: Units = "bernoulli",
    seed: int | None = None,
    step: int = 0,
    n_jobs: int | None = None,
) -> FloatArray | tuple[FloatArray, FloatArray]: ...
def rbm_free_energy(
    v: FloatArray,
    components: FloatArray,
    intercept_visible: FloatArray,
    intercept_hidden: FloatArray,
    *,
    visible: Units = "bernoulli",
    hidden: Units = "bernoulli",
    n_jobs: int | None = None,
) -> npt.NDArray[np.float64]: ...
def rbm_pseudo_likelihood(
    v: FloatArray,
    components: FloatArray,
    intercept_visible: FloatArray,
    intercept_hidden: FloatArray,
    *,
    seed: int | None = None,
    step: int = 0,
    flip: IndexArray | None = None,
    n_jobs: int | None = None,
) -> npt.NDArray[np.float64]: ...
def rbm_gibbs(
    v: FloatArray,
    components: FloatArray,
    intercept_visible: FloatArray,
    intercept_hidden: FloatArray,
    *,
    n_steps: int = 1,
    visible: Units = "bernoulli",
    hidden: Units = "bernoulli",
    seed: int,
    n_jobs: int | None = None,
) -> tuple[FloatArray, FloatArray]: ...
def rbm_cd_step(
    x: FloatArray,
    components: FloatArray,
    intercept_visible: FloatArray,
    intercept_hidden: FloatArray,
    components_velocity: FloatArray,
    intercept_visible_velocity: FloatArray,
    intercept_hidden_velocity: FloatArray,
    *,
    rows: IndexArray | None = None,
    h_samples: FloatArray | None = None,
    visible: Units = "bernoulli",
    hidden: Units = "bernoulli",
    k: int = 1,
    learning_rate: float = 0.1,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    seed: int,
    step: int,
    n_jobs: int | None = None,
) -> None: ...
def rbm_log_partition_exact(
    components: FloatArray,
    intercept_visible: FloatArray,
    intercept_hidden: FloatArray,
    *,
    visible: Units = "bernoulli",
    max_units: int = 20,
    n_jobs: int | None = None,
) -> float: ...
def rbm_ais(
    components: FloatArray,
    intercept_visible: FloatArray,
    intercept_hidden: FloatArray,
    base_bias: FloatArray,
    betas: npt.NDArray[np.float64],
    *,
    visible: Units = "bernoulli",
    n_chains: int = 100,
    seed: int,
    n_jobs: int | None = None,
) -> tuple[npt.NDArray[np.float64], float]: ...

# -- variational autoencoders ------------------------------------------------------------------------
# Every function takes the network as (encoder_weights, encoder_biases, encoder_activations,
# decoder_weights, decoder_biases, decoder_activations, class_means) and the keyword settings below.

def vae_encode(
    x: FloatArray,
    encoder_weights: list[FloatArray],
    encoder_biases: list[FloatArray],
    encoder_activations: Sequence[Activation],
    decoder_weights: list[FloatArray],
    decoder_biases: list[FloatArray],
    decoder_activations: Sequence[Activation],
    class_means: FloatArray | None = None,
    *,
    y: IndexArray | None = None,
    n_latent: int,
    likelihood: Likelihood = "bernoulli",
    decoder_variance: float = 1.0,
    conditioning: Conditioning = "none",
    n_classes: int = 0,
    n_jobs: int | None = None,
) -> tuple[FloatArray, FloatArray]: ...
def vae_decode(
    z: FloatArray,
    encoder_weights: list[FloatArray],
    encoder_biases: list[FloatArray],
    encoder_activations: Sequence[Activation],
    decoder_weights: list[FloatArray],
    decoder_biases: list[FloatArray],
    decoder_activations: Sequence[Activation],
    class_means: FloatArray | None = None,
    *,
    y: IndexArray | None = None,
    n_latent: int,
    likelihood: Likelihood = "bernoulli",
    decoder_variance: float = 1.0,
    conditioning: Conditioning = "none",
    n_classes: int = 0,
    n_jobs: int | None = None,
) -> FloatArray: ...
def vae_losses(
    x: FloatArray,
    encoder_weights: list[FloatArray],
    encoder_biases: list[FloatArray],
    encoder_activations: Sequence[Activation],
    decoder_weights: list[FloatArray],
    decoder_biases: list[FloatArray],
    decoder_activations: Sequence[Activation],
    class_means: FloatArray | None = None,
    *,
    y: IndexArray | None = None,
    eps: FloatArray | None = None,
    seed: int | None = None,
    step: int = 0,
    n_latent: int,
    likelihood: Likelihood = "bernoulli",
    decoder_variance: float = 1.0,
    conditioning: Conditioning = "none",
    n_classes: int = 0,
    n_jobs: int | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def vae_gradients(
    x: FloatArray,
    eps: FloatArray,
    encoder_weights: list[FloatArray],
    encoder_biases: list[FloatArray],
    encoder_activations: Sequence[Activation],
    decoder_weights: list[FloatArray],
    decoder_biases: list[FloatArray],
    decoder_activations: Sequence[Activation],
    class_means: FloatArray | None = None,
    *,
    y: IndexArray | None = None,
    n_latent: int,
    likelihood: Likelihood = "bernoulli",
    decoder_variance: float = 1.0,
    conditioning: Conditioning = "none",
    n_classes: int = 0,
    n_jobs: int | None = None,
) -> tuple[float, list[tuple[FloatArray, FloatArray]], list[tuple[FloatArray, FloatArray]], FloatArray | None]: ...
def vae_log_likelihood(
    x: FloatArray,
    encoder_weights: list[FloatArray],
    encoder_biases: list[FloatArray],
    encoder_activations: Sequence[Activation],
    decoder_weights: list[FloatArray],
    decoder_biases: list[FloatArray],
    decoder_activations: Sequence[Activation],
    class_means: FloatArray | None = None,
    *,
    y: IndexArray | None = None,
    n_importance: int = 1000,
    seed: int | None = None,
    n_latent: int,
    likelihood: Likelihood = "bernoulli",
    decoder_variance: float = 1.0,
    conditioning: Conditioning = "none",
    n_classes: int = 0,
    n_jobs: int | None = None,
) -> npt.NDArray[np.float64]: ...
def vae_train_step(
    x: FloatArray,
    encoder_weights: list[FloatArray],
    encoder_biases: list[FloatArray],
    encoder_activations: Sequence[Activation],
    decoder_weights: list[FloatArray],
    decoder_biases: list[FloatArray],
    decoder_activations: Sequence[Activation],
    class_means: FloatArray | None,
    slots: list[list[FloatArray]],
    *,
    rows: IndexArray | None = None,
    y: IndexArray | None = None,
    optimizer: Optimizer = "adam",
    learning_rate: float = 1e-3,
    momentum: float = 0.0,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    t: int = 1,
    weight_decay: float = 0.0,
    seed: int | None = None,
    step: int = 0,
    n_latent: int,
    likelihood: Likelihood = "bernoulli",
    decoder_variance: float = 1.0,
    conditioning: Conditioning = "none",
    n_classes: int = 0,
    n_jobs: int | None = None,
) -> tuple[float, float, float]: ...
def gaussian_kl(mu: FloatArray, log_var: FloatArray, prior_mean: FloatArray | None = None) -> npt.NDArray[np.float64]: ...

# -- softmax-unit models (rust/py/softmax_api.rs) ------------------------------------------------------
# Sparse inputs as a CSR matrix's arrays: indptr and indices int64; codes (rating-value indices) int64,
# or word counts in the model's dtype.

def collab_hidden(
    indptr: IndexArray,
    indices: IndexArray,
    codes: IndexArray,
    components: FloatArray,
    intercept_hidden: FloatArray,
    *,
    conditional_weights: FloatArray | None = None,
    shared_components: FloatArray | None = None,
    r_indptr: IndexArray | None = None,
    r_indices: IndexArray | None = None,
    n_jobs: int | None = None,
) -> FloatArray: ...
def collab_visible(
    h: FloatArray,
    indptr: IndexArray,
    indices: IndexArray,
    components: FloatArray,
    intercept_visible: FloatArray,
    *,
    shared_components: FloatArray | None = None,
    n_jobs: int | None = None,
) -> FloatArray: ...
def collab_gibbs(
    indptr: IndexArray,
    indices: IndexArray,
    codes: IndexArray,
    components: FloatArray,
    intercept_visible: FloatArray,
    intercept_hidden: FloatArray,
    *,
    conditional_weights: FloatArray | None = None,
    shared_components: FloatArray | None = None,
    r_indptr: IndexArray | None = None,
    r_indices: IndexArray | None = None,
    n_steps: int = 1,
    seed: int,
    n_jobs: int | None = None,
) -> npt.NDArray[np.int64]: ...
def collab_cd_step(
    indptr: IndexArray,
    indices: IndexArray,
    codes: IndexArray,
    components: FloatArray,
    intercept_visible: FloatArray,
    intercept_hidden: FloatArray,
    components_velocity: FloatArray,
    intercept_visible_velocity: FloatArray,
    intercept_hidden_velocity: FloatArray,
    *,
    users: IndexArray,
    last_update: npt.NDArray[np.int64],
    conditional_weights: FloatArray | None = None,
    conditional_weights_velocity: FloatArray | None = None,
    shared_components: FloatArray | None = None,
    shared_components_velocity: FloatArray | None = None,
    k: int = 1,
    learning_rate: float = 0.1,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    decay_per: Literal["step", "rating"] = "step",
    shared_learning_rate: float | None = None,
    seed: int,
    step: int,
    return_reconstruction: bool = False,
    n_jobs: int | None = None,
) -> npt.NDArray[np.int64] | None: ...
def collab_catch_up(
    components: FloatArray,
    intercept_visible: FloatArray,
    intercept_hidden: FloatArray,
    components_velocity: FloatArray,
    intercept_visible_velocity: FloatArray,
    intercept_hidden_velocity: FloatArray,
    *,
    last_update: npt.NDArray[np.int64],
    conditional_weights: FloatArray | None = None,
    conditional_weights_velocity: FloatArray | None = None,
    shared_components: FloatArray | None = None,
    shared_components_velocity: FloatArray | None = None,
    learning_rate: float = 0.1,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    decay_per: Literal["step", "rating"] = "step",
    step: int,
    n_jobs: int | None = None,
) -> None: ...
def rs_hidden(
    indptr: IndexArray,
    indices: IndexArray,
    data: FloatArray,
    components: FloatArray,
    intercept_hidden: FloatArray,
    *,
    n_jobs: int | None = None,
) -> FloatArray: ...
def rs_log_unnormalized(
    indptr: IndexArray,
    indices: IndexArray,
    data: FloatArray,
    components: FloatArray,
    intercept_visible: FloatArray,
    intercept_hidden: FloatArray,
    *,
    n_jobs: int | None = None,
) -> npt.NDArray[np.float64]: ...
def rs_cd_step(
    indptr: IndexArray,
    indices: IndexArray,
    data: FloatArray,
    components: FloatArray,
    intercept_visible: FloatArray,
    intercept_hidden: FloatArray,
    components_velocity: FloatArray,
    intercept_visible_velocity: FloatArray,
    intercept_hidden_velocity: FloatArray,
    *,
    rows: IndexArray,
    k: int = 1,
    learning_rate: float = 0.1,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    seed: int,
    step: int,
    return_reconstruction: bool = False,
    n_jobs: int | None = None,
) -> FloatArray | None: ...
def rs_log_partition_exact(
    components: FloatArray,
    intercept_visible: FloatArray,
    intercept_hidden: FloatArray,
    doc_lengths: IndexArray,
    *,
    max_units: int = 20,
    n_jobs: int | None = None,
) -> npt.NDArray[np.float64]: ...
def rs_ais(
    components: FloatArray,
    intercept_visible: FloatArray,
    intercept_hidden: FloatArray,
    doc_lengths: IndexArray,
    *,
    steps_per_word: int = 50,
    n_chains: int = 100,
    seed: int,
    n_jobs: int | None = None,
) -> npt.NDArray[np.float64]: ...
def rs_sample(
    components: FloatArray,
    intercept_visible: FloatArray,
    intercept_hidden: FloatArray,
    *,
    n_samples: int,
    doc_length: int,
    n_steps: int = 1000,
    seed: int,
    n_jobs: int | None = None,
) -> FloatArray: ...
