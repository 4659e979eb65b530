//! Dense layers and chains of them (multilayer perceptrons): forward pass, losses, backward pass and
//! a whole minibatch training step.
//!
//! A layer computes `A_out = f(A_in W + b)` with `W` of shape (n_in, n_out), row-major, and `b` of
//! length n_out (the layout of scikit-learn's `coefs_` / `intercepts_`). Losses are per-sample sums over
//! the outputs, averaged over the minibatch:
//!
//! - squared error: `1/2 * sum_j (a_j - y_j)^2` (any output activation);
//! - binary cross-entropy with logits: `sum_j softplus(z_j) - y_j z_j` (identity output, z = logits);
//! - softmax cross-entropy: `logsumexp(z) - sum_j y_j z_j` for target rows summing to 1 (identity output).
//!
//! Backpropagation: with `delta = d(loss) / d(Z)` for a layer's pre-activations `Z = A_in W + b`,
//! `dW = A_in^T delta`, `db = sum over rows of delta`, and the layer below receives
//! `delta_in = (delta W^T) * f'(Z_in)` elementwise (times the dropout mask where dropout ran).

use rayon::prelude::*;

use crate::activations::{bce_with_logits, bias_activation, Activation};
use crate::batch::Batch;
use crate::error::{KernelError, Result};
use crate::linalg::{column_sums, gemm, Threads, View, ViewMut};
use crate::optim::{self, Update};
use crate::real::{first_non_finite, Real};
use crate::rng::CHUNK;
use crate::sampling::{bernoulli_chunk, StreamKey};
use crate::scratch;
use crate::zero_columns::FirstLayer;

/// A read-only view of one layer's parameters.
#[derive(Clone, Copy, Debug)]
pub struct Layer<'a, T> {
    /// (n_in, n_out), row-major.
    pub weight: &'a [T],
    /// (n_out,)
    pub bias: &'a [T],
    pub n_in: usize,
    pub n_out: usize,
    pub activation: Activation,
}

/// A layer's parameters, writable (for training).
#[derive(Debug)]
pub struct LayerMut<'a, T> {
    pub weight: &'a mut [T],
    pub bias: &'a mut [T],
    pub n_in: usize,
    pub n_out: usize,
    pub activation: Activation,
}

impl<'a, T: Real> LayerMut<'a, T> {
    pub fn view(&self) -> Layer<'_, T> {
        Layer { weight: self.weight, bias: self.bias, n_in: self.n_in, n_out: self.n_out, activation: self.activation }
    }
}

/// Checks that consecutive layers fit together and buffers have their stated sizes.
pub fn check_chain<T>(layers: &[Layer<'_, T>], n_features: usize) -> Result<()> {
    check_named_chain(layers, n_features, "")
}

/// [`check_chain`] with the parameter lists named `{prefix}weights` / `{prefix}biases` in errors.
pub fn check_named_chain<T>(layers: &[Layer<'_, T>], n_features: usize, prefix: &str) -> Result<()> {
    let mut width = n_features;
    for (l, layer) in layers.iter().enumerate() {
        if layer.n_in != width {
            let source = if l == 0 { "the input's width".to_string() } else { format!("the outputs of {prefix}weights[{}]", l - 1) };
            return Err(KernelError::shape(
                &format!("{prefix}weights[{l}]"),
                format!("{width} rows ({source})"),
                format!("{} rows", layer.n_in),
            ));
        }
        if layer.n_in == 0 || layer.n_out == 0 {
            return Err(KernelError::shape(
                &format!("{prefix}weights[{l}]"),
                "at least one input and one output",
                format!("{}x{}", layer.n_in, layer.n_out),
            ));
        }
        if layer.weight.len() != layer.n_in * layer.n_out {
            return Err(KernelError::shape(
                &format!("{prefix}weights[{l}]"),
                format!("{} values", layer.n_in * layer.n_out),
                layer.weight.len(),
            ));
        }
        if layer.bias.len() != layer.n_out {
            return Err(KernelError::shape(
                &format!("{prefix}biases[{l}]"),
                format!("length {}", layer.n_out),
                format!("length {}", layer.bias.len()),
            ));
        }
        width = layer.n_out;
    }
    Ok(())
}

/// Inverted dropout on hidden layers: each hidden output is zeroed with probability `rate` and the
/// survivors scaled by 1 / (1 - rate), so no rescaling is needed at prediction time.
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    pub rate: f64,
    pub key: StreamKey,
}

impl Dropout {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(KernelError::value("dropout", "in [0, 1)", self.rate));
        }
        Ok(())
    }
}

/// What the backward pass needs from the forward pass.
pub struct Activations<T> {
    /// `outputs[l]`: (batch, n_out_l), the output of layer l (after dropout, for hidden layers).
    pub outputs: Vec<Vec<T>>,
    /// `masks[l]`: the dropout multipliers (0 or 1 / (1 - rate)) of hidden layer l, if dropout ran.
    pub masks: Vec<Option<Vec<T>>>,
    pub batch: usize,
}

impl<T: Real> Activations<T> {
    /// The network's output, (batch, n_out_last).
    pub fn output(&self) -> &[T] {
        self.outputs.last().map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// Hands the buffers back to the scratch pool once the backward pass is done with them.
    pub fn recycle(self) {
        self.outputs.into_iter().for_each(scratch::recycle);
        self.masks.into_iter().flatten().for_each(scratch::recycle);
    }
}

/// Forward pass of a batch `input` (batch, n_in_0) through `layers`.
pub fn forward<T: Real>(layers: &[Layer<'_, T>], input: View<'_, T>, dropout: Option<Dropout>) -> Activations<T> {
    forward_with(layers, input, dropout, Threads::Pool)
}

/// [`forward`] with a choice of threading for the products (`Single` inside an already parallel loop).
pub fn forward_with<T: Real>(layers: &[Layer<'_, T>], input: View<'_, T>, dropout: Option<Dropout>, threads: Threads) -> Activations<T> {
    let batch = input.rows_op();
    let mut outputs: Vec<Vec<T>> = Vec::with_capacity(layers.len());
    let mut masks = Vec::with_capacity(layers.len());
    for (l, layer) in layers.iter().enumerate() {
        let mut z = scratch::take(batch * layer.n_out); // overwritten by the product
        {
            let a_in = if l == 0 { input } else { View::new(&outputs[l - 1], batch, layers[l - 1].n_out) };
            gemm(
                T::one(),
                a_in,
                View::new(layer.weight, layer.n_in, layer.n_out),
                T::zero(),
                ViewMut::new(&mut z, batch, layer.n_out),
                threads,
            );
        }
        bias_activation(layer.activation, &mut z, layer.n_out, layer.bias);
        let is_hidden = l + 1 < layers.len();
        let mask = match dropout {
            Some(d) if is_hidden && d.rate > 0.0 => {
                let key = StreamKey { purpose: d.key.purpose.wrapping_add(1000 * l as u64), ..d.key };
                Some(apply_dropout(&mut z, d.rate, key))
            }
            _ => None,
        };
        masks.push(mask);
        outputs.push(z);
    }
    Activations { outputs, masks, batch }
}

fn apply_dropout<T: Real>(a: &mut [T], rate: f64, key: StreamKey) -> Vec<T> {
    let keep = T::of(1.0 - rate);
    let scale = T::of(1.0 / (1.0 - rate));
    let mut mask = vec![T::zero(); a.len()];
    mask.par_chunks_mut(CHUNK).zip(a.par_chunks_mut(CHUNK)).enumerate().for_each(|(ci, (m, a))| {
        let keep_probs = vec![keep; m.len()];
        bernoulli_chunk(&keep_probs, m, key, ci);
        for (m, a) in m.iter_mut().zip(a.iter_mut()) {
            *m *= scale;
            *a *= *m;
        }
    });
    mask
}

/// A training objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    SquaredError,
    BinaryCrossEntropy,
    SoftmaxCrossEntropy,
}

impl Loss {
    pub const NAMES: &'static str = "'squared_error', 'binary_cross_entropy' or 'softmax_cross_entropy'";

    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "squared_error" | "mse" => Loss::SquaredError,
            "binary_cross_entropy" | "bce" => Loss::BinaryCrossEntropy,
            "softmax_cross_entropy" | "cross_entropy" => Loss::SoftmaxCrossEntropy,
            other => return Err(KernelError::value("loss", Self::NAMES, format!("'{other}'"))),
        })
    }

    /// Losses on logits need a linear output layer.
    pub fn check_output(self, act: Activation) -> Result<()> {
        if self != Loss::SquaredError && act != Activation::Identity {
            return Err(KernelError::value("activations[-1]", "'identity' (the loss takes logits)", format!("'{}'", act.name())));
        }
        Ok(())
    }
}

/// Per-sample losses of `output` (batch, n_out) against `target` (batch, n_out) written to `per_sample`,
/// and `delta = d(mean loss) / d(pre-activation of the output layer)` (same shape as output).
pub fn loss_and_delta<T: Real>(
    loss: Loss,
    out_activation: Activation,
    output: &[T],
    target: &[T],
    n_out: usize,
    delta: &mut [T],
    per_sample: &mut [f64],
) {
    let batch = per_sample.len();
    let inv_batch = T::of(1.0 / batch.max(1) as f64);
    delta.par_chunks_mut(n_out.max(1)).zip(per_sample.par_iter_mut()).enumerate().for_each(|(i, (d, ls))| {
        let a = &output[i * n_out..(i + 1) * n_out];
        let y = &target[i * n_out..(i + 1) * n_out];
        *ls = match loss {
            Loss::SquaredError => {
                let mut s = 0.0;
                for j in 0..n_out {
                    let r = a[j] - y[j];
                    s += 0.5 * (r * r).f64();
                    d[j] = r * out_activation.derivative_from_output(a[j]) * inv_batch;
                }
                s
            }
            Loss::BinaryCrossEntropy => bce_with_logits(y, a, Some(d), inv_batch),
            Loss::SoftmaxCrossEntropy => {
                let max = a.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
                let sum_exp: T = a.iter().map(|&v| (v - max).exp()).sum();
                let log_z = max + sum_exp.ln();
                let y_sum: T = y.iter().copied().sum();
                let mut s = 0.0;
                for j in 0..n_out {
                    let p = (a[j] - log_z).exp();
                    s -= (y[j] * (a[j] - log_z)).f64();
                    // d/dz_j of logsumexp(z) * sum(y) - y.z
                    d[j] = (p * y_sum - y[j]) * inv_batch;
                }
                s
            }
        };
    });
}

/// Gradients of one layer: `weight` (n_in, n_out) and `bias` (n_out,).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerGrad<T> {
    pub weight: Vec<T>,
    pub bias: Vec<T>,
}

/// Backward pass. `delta` holds d(loss)/d(pre-activation of the last layer); on return `grads[l]` hold
/// the gradients of every layer and, if `input_grad` is given, d(loss)/d(input) is written there.
pub fn backward<T: Real>(
    layers: &[Layer<'_, T>],
    input: View<'_, T>,
    acts: &Activations<T>,
    mut delta: Vec<T>,
    grads: &mut [LayerGrad<T>],
    input_grad: Option<&mut [T]>,
) {
    let batch = acts.batch;
    let mut input_grad = input_grad;
    for l in (0..layers.len()).rev() {
        let layer = &layers[l];
        let a_in = if l == 0 { input } else { View::new(&acts.outputs[l - 1], batch, layers[l - 1].n_out) };
        let g = &mut grads[l];
        // dW = A_in^T delta: (n_in, n_out)
        gemm(
            T::one(),
            a_in.t(),
            View::new(&delta, batch, layer.n_out),
            T::zero(),
            ViewMut::new(&mut g.weight, layer.n_in, layer.n_out),
            Threads::Pool,
        );
        column_sums(&delta, batch, layer.n_out, &mut g.bias);
        if l == 0 && input_grad.is_none() {
            break;
        }
        // delta_in = delta W^T: (batch, n_in)
        let mut delta_in = scratch::take(batch * layer.n_in); // overwritten by the product
        gemm(
            T::one(),
            View::new(&delta, batch, layer.n_out),
            View::new(layer.weight, layer.n_in, layer.n_out).t(),
            T::zero(),
            ViewMut::new(&mut delta_in, batch, layer.n_in),
            Threads::Pool,
        );
        if l == 0 {
            if let Some(out) = input_grad.take() {
                out.copy_from_slice(&delta_in);
            }
            scratch::recycle(delta_in);
            break;
        }
        // Through the activation (and dropout mask) of the layer below.
        let below = &layers[l - 1];
        let a = &acts.outputs[l - 1];
        match &acts.masks[l - 1] {
            None => delta_in.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).for_each(|(d, a)| {
                d.iter_mut().zip(a).for_each(|(d, &a)| *d *= below.activation.derivative_from_output(a));
            }),
            Some(mask) => delta_in.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).zip(mask.par_chunks(CHUNK)).for_each(|((d, a), m)| {
                for ((d, &a), &m) in d.iter_mut().zip(a).zip(m) {
                    // a = f(z) * m, so f(z) = a / m where the unit was kept.
                    *d = if m == T::zero() { T::zero() } else { *d * m * below.activation.derivative_from_output(a / m) };
                }
            }),
        }
        scratch::recycle(std::mem::replace(&mut delta, delta_in));
    }
    scratch::recycle(delta);
}

/// Fails with a `Value` error naming `name` if `values` holds NaN or inf.
pub fn check_finite<T: Real>(name: &str, values: &[T]) -> Result<()> {
    match first_non_finite(values).map(|i| values[i]) {
        Some(bad) => Err(KernelError::value(name, "finite values in the minibatch", bad)),
        None => Ok(()),
    }
}

/// Gradient buffers shaped like `layers`, from the scratch pool: their contents are unspecified until
/// [`backward`] overwrites every one of them.
pub fn grad_buffers<T: Real>(layers: &[Layer<'_, T>]) -> Vec<LayerGrad<T>> {
    layers.iter().map(|l| LayerGrad { weight: scratch::take(l.n_in * l.n_out), bias: scratch::take(l.n_out) }).collect()
}

/// Hands gradient buffers back to the scratch pool once the optimiser has applied them.
pub fn recycle_grads<T: Real>(grads: Vec<LayerGrad<T>>) {
    for g in grads {
        scratch::recycle(g.weight);
        scratch::recycle(g.bias);
    }
}

/// Mean loss and the gradients of every layer for one batch (no update). For tests and diagnostics.
pub fn loss_gradients<T: Real>(layers: &[Layer<'_, T>], batch: &Batch<'_, T>, loss: Loss) -> Result<(f64, Vec<LayerGrad<T>>, Vec<T>)> {
    let pass = forward_backward(layers, batch, loss, None, true, false)?;
    Ok((pass.loss, pass.grads, pass.input_grad.unwrap_or_default()))
}

/// What one forward and backward pass over a minibatch yields.
struct Gradients<T> {
    loss: f64,
    grads: Vec<LayerGrad<T>>,
    input_grad: Option<Vec<T>>,
}

/// Forward (with optional dropout), loss and backward pass over `batch`: the mean loss, every layer's
/// gradients and, with `input_grad`, d(loss)/d(input). With `training`, non-finite inputs are refused
/// and a non-finite loss is reported as divergence before any gradient is computed.
fn forward_backward<T: Real>(
    layers: &[Layer<'_, T>],
    batch: &Batch<'_, T>,
    loss: Loss,
    dropout: Option<Dropout>,
    input_grad: bool,
    training: bool,
) -> Result<Gradients<T>> {
    check_chain(layers, batch.n_features)?;
    let last = layers.last().ok_or_else(|| KernelError::value("weights", "at least one layer", "none"))?;
    loss.check_output(last.activation)?;
    batch.check()?;
    let (y_all, n_targets) = batch.target_values()?;
    if n_targets != last.n_out {
        return Err(KernelError::shape(
            "y",
            format!("{} columns (the outputs of the last layer)", last.n_out),
            format!("{n_targets} columns"),
        ));
    }
    let n = batch.len();
    let (xb, yb) = (batch.gathered_x(), batch.gathered_y());
    let x = xb.as_deref().unwrap_or(batch.x);
    let y = yb.as_deref().unwrap_or(y_all);
    if training {
        check_finite("x", &x[..n * batch.n_features])?;
        check_finite("y", &y[..n * n_targets])?;
    }
    // A training step without an input gradient skips the batch's all-zero input columns in the first
    // layer (see zero_columns: never at inference, where rows must not depend on their batch).
    let first = FirstLayer::new(training && !input_grad, &x[..n * batch.n_features], n, &layers[0]);
    let layers = first.chain(layers);
    let input = first.input(x, n, batch.n_features);
    let acts = forward(&layers, input, dropout);
    let mut delta = scratch::take(n * last.n_out); // every element is written by loss_and_delta
    let mut per_sample = vec![0.0; n];
    loss_and_delta(loss, last.activation, acts.output(), y, last.n_out, &mut delta, &mut per_sample);
    let loss_value = per_sample.iter().sum::<f64>() / n.max(1) as f64;
    if training && !loss_value.is_finite() {
        return Err(KernelError::NonFinite(format!("the training loss is {loss_value}: the model diverged (try a smaller learning rate)")));
    }
    let mut grads = grad_buffers(&layers);
    let mut d_input = input_grad.then(|| vec![T::zero(); n * batch.n_features]);
    backward(&layers, input, &acts, delta, &mut grads, d_input.as_deref_mut());
    acts.recycle();
    first.finish(&mut grads);
    xb.into_iter().chain(yb).for_each(scratch::recycle);
    Ok(Gradients { loss: loss_value, grads, input_grad: d_input })
}

/// How a training step of a chain runs: its loss, its optimiser step, and dropout on the hidden layers.
#[derive(Clone, Copy, Debug)]
pub struct Training {
    pub loss: Loss,
    pub update: Update,
    pub dropout: Option<Dropout>,
}

/// One training step on a minibatch: forward (with optional dropout), loss, backward, and an
/// optimiser update of every weight and bias in place. `slots[p]` holds the optimiser state of
/// parameter p in the order [W0, b0, W1, b1, ...]. Weight decay applies to weights, not biases.
/// Returns the mean loss of the minibatch (before the update).
pub fn train_step<T: Real>(
    layers: &mut [LayerMut<'_, T>],
    slots: &mut [Vec<&mut [T]>],
    batch: &Batch<'_, T>,
    training: &Training,
) -> Result<f64> {
    training.update.validate()?;
    if let Some(d) = training.dropout {
        d.validate()?;
    }
    let sizes: Vec<usize> = layers.iter().flat_map(|l| [l.weight.len(), l.bias.len()]).collect();
    optim::check_state(&training.update.optimizer, slots, &sizes)?;
    batch.check_not_empty()?;
    let (loss_value, grads) = {
        let views: Vec<Layer<'_, T>> = layers.iter().map(|l| l.view()).collect();
        let pass = forward_backward(&views, batch, training.loss, training.dropout, false, true)?;
        (pass.loss, pass.grads)
    };
    let params =
        layers.iter_mut().zip(&grads).flat_map(|(l, g)| [(&mut *l.weight, &g.weight[..], true), (&mut *l.bias, &g.bias[..], false)]);
    training.update.apply(slots, params);
    recycle_grads(grads);
    Ok(loss_value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::Optimizer;
    use crate::threads::with_threads;

    /// Plain gradient descent on `loss`, no momentum, decay or dropout.
    fn sgd(loss: Loss, learning_rate: f64) -> Training {
        Training { loss, update: Update { optimizer: Optimizer::Sgd { learning_rate, momentum: 0.0 }, weight_decay: 0.0 }, dropout: None }
    }

    struct Net {
        weights: Vec<Vec<f64>>,
        biases: Vec<Vec<f64>>,
        sizes: Vec<usize>,
        acts: Vec<Activation>,
    }

    impl Net {
        fn new(sizes: &[usize], acts: &[Activation], salt: u64) -> Self {
            let mut weights = vec![];
            let mut biases = vec![];
            for l in 0..sizes.len() - 1 {
                let (a, b) = (sizes[l], sizes[l + 1]);
                weights.push((0..a * b).map(|i| ((((i as u64 + salt) * 2654435761) % 997) as f64 / 997.0 - 0.5) * 0.8).collect());
                biases.push((0..b).map(|i| ((i as u64 * 31 + salt) % 7) as f64 / 7.0 - 0.5).collect());
            }
            Net { weights, biases, sizes: sizes.to_vec(), acts: acts.to_vec() }
        }

        fn layers(&self) -> Vec<Layer<'_, f64>> {
            (0..self.weights.len())
                .map(|l| Layer {
                    weight: &self.weights[l],
                    bias: &self.biases[l],
                    n_in: self.sizes[l],
                    n_out: self.sizes[l + 1],
                    activation: self.acts[l],
                })
                .collect()
        }

        fn loss(&self, x: &[f64], y: &[f64], loss: Loss) -> f64 {
            let n_out = *self.sizes.last().unwrap();
            let batch = Batch::new(x, self.sizes[0]).values(y, n_out);
            loss_gradients(&self.layers(), &batch, loss).unwrap().0
        }
    }

    fn data(n: usize, d: usize, salt: u64) -> Vec<f64> {
        (0..n * d).map(|i| (((i as u64 * 7 + salt) * 40503) % 1000) as f64 / 1000.0).collect()
    }

    fn check_gradients(sizes: &[usize], acts: &[Activation], loss: Loss, target: Vec<f64>) {
        let n = 5;
        let x = data(n, sizes[0], 3);
        let mut net = Net::new(sizes, acts, 11);
        let batch = Batch::new(&x, sizes[0]).values(&target, *sizes.last().unwrap());
        let (_, grads, input_grad) = loss_gradients(&net.layers(), &batch, loss).unwrap();
        let h = 1e-6;
        for (l, g) in grads.iter().enumerate() {
            for i in 0..net.weights[l].len() {
                let orig = net.weights[l][i];
                net.weights[l][i] = orig + h;
                let up = net.loss(&x, &target, loss);
                net.weights[l][i] = orig - h;
                let down = net.loss(&x, &target, loss);
                net.weights[l][i] = orig;
                let fd = (up - down) / (2.0 * h);
                assert!((fd - g.weight[i]).abs() < 1e-7 * (1.0 + fd.abs()), "{loss:?} W{l}[{i}]: fd {fd} vs {}", g.weight[i]);
            }
            for i in 0..net.biases[l].len() {
                let orig = net.biases[l][i];
                net.biases[l][i] = orig + h;
                let up = net.loss(&x, &target, loss);
                net.biases[l][i] = orig - h;
                let down = net.loss(&x, &target, loss);
                net.biases[l][i] = orig;
                let fd = (up - down) / (2.0 * h);
                assert!((fd - g.bias[i]).abs() < 1e-7 * (1.0 + fd.abs()), "{loss:?} b{l}[{i}]: fd {fd} vs {}", g.bias[i]);
            }
        }
        // d loss / d input
        let mut xp = x.clone();
        for i in 0..x.len() {
            xp[i] = x[i] + h;
            let up = net.loss(&xp, &target, loss);
            xp[i] = x[i] - h;
            let down = net.loss(&xp, &target, loss);
            xp[i] = x[i];
            let fd = (up - down) / (2.0 * h);
            assert!((fd - input_grad[i]).abs() < 1e-7 * (1.0 + fd.abs()), "{loss:?} x[{i}]");
        }
    }

    #[test]
    fn gradients_match_finite_differences_for_every_loss_and_activation() {
        use Activation::*;
        let n = 5;
        check_gradients(&[4, 6, 5, 3], &[Sigmoid, Tanh, Identity], Loss::SquaredError, data(n, 3, 9));
        check_gradients(&[4, 6, 3], &[Softplus, Sigmoid], Loss::SquaredError, data(n, 3, 9));
        check_gradients(&[4, 7, 6, 3], &[Relu, Sigmoid, Identity], Loss::BinaryCrossEntropy, data(n, 3, 1));
        let onehot: Vec<f64> = (0..n * 3).map(|i| if i % 3 == (i / 3) % 3 { 1.0 } else { 0.0 }).collect();
        check_gradients(&[4, 6, 6, 3], &[Tanh, Relu, Identity], Loss::SoftmaxCrossEntropy, onehot);
    }

    #[test]
    fn rows_select_the_same_batch_as_a_copy() {
        let net = Net::new(&[3, 4, 2], &[Activation::Sigmoid, Activation::Identity], 2);
        let x = data(6, 3, 1);
        let y = data(6, 2, 2);
        let rows = [4usize, 1, 1];
        let xb: Vec<f64> = rows.iter().flat_map(|&r| x[r * 3..r * 3 + 3].to_vec()).collect();
        let yb: Vec<f64> = rows.iter().flat_map(|&r| y[r * 2..r * 2 + 2].to_vec()).collect();
        let a = loss_gradients(&net.layers(), &Batch::new(&x, 3).values(&y, 2).rows(Some(&rows)), Loss::SquaredError).unwrap();
        let b = loss_gradients(&net.layers(), &Batch::new(&xb, 3).values(&yb, 2), Loss::SquaredError).unwrap();
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1);
    }

    #[test]
    fn training_step_on_zero_columns_applies_the_full_gradients() {
        // Columns 0, 3, 4 and 7 are zero in every row: the step skips them in the first layer
        // (zero_columns) and must still apply the gradients of the uncompacted pass.
        let (sizes, acts) = ([8, 5, 3], [Activation::Tanh, Activation::Identity]);
        let n = 6;
        let x: Vec<f64> = data(n, 8, 5).iter().enumerate().map(|(i, &v)| if [0, 3, 4, 7].contains(&(i % 8)) { 0.0 } else { v }).collect();
        let y = data(n, 3, 9);
        let net = Net::new(&sizes, &acts, 13);
        let batch = Batch::new(&x, 8).values(&y, 3);
        assert!(crate::zero_columns::compact(&x, n, &net.layers()[0]).is_some());
        let (loss, grads, _) = loss_gradients(&net.layers(), &batch, Loss::SquaredError).unwrap();
        let (mut weights, mut biases) = (net.weights.clone(), net.biases.clone());
        let mut state: Vec<Vec<f64>> = weights.iter().chain(&biases).map(|p| vec![0.0; p.len()]).collect();
        let (ws, bs) = state.split_at_mut(2);
        let mut slots: Vec<Vec<&mut [f64]>> =
            ws.iter_mut().zip(bs.iter_mut()).flat_map(|(w, b)| [vec![w.as_mut_slice()], vec![b.as_mut_slice()]]).collect();
        let (w_rest, b_rest) = (&mut weights[..], &mut biases[..]);
        let mut layers: Vec<LayerMut<'_, f64>> = w_rest
            .iter_mut()
            .zip(b_rest.iter_mut())
            .enumerate()
            .map(|(l, (w, b))| LayerMut { weight: w, bias: b, n_in: sizes[l], n_out: sizes[l + 1], activation: acts[l] })
            .collect();
        let training = sgd(Loss::SquaredError, 1.0);
        let step_loss = train_step(&mut layers, &mut slots, &batch, &training).unwrap();
        assert!((step_loss - loss).abs() < 1e-12 * (1.0 + loss.abs()));
        for l in 0..2 {
            for (i, g) in grads[l].weight.iter().enumerate() {
                let stepped = net.weights[l][i] - weights[l][i];
                assert!((stepped - g).abs() < 1e-12 * (1.0 + g.abs()), "W{l}[{i}]: stepped {stepped} vs gradient {g}");
            }
            for (i, g) in grads[l].bias.iter().enumerate() {
                let stepped = net.biases[l][i] - biases[l][i];
                assert!((stepped - g).abs() < 1e-12 * (1.0 + g.abs()), "b{l}[{i}]: stepped {stepped} vs gradient {g}");
            }
        }
    }

    #[test]
    fn training_fits_xor_and_is_thread_count_independent() {
        let x = vec![0.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
        let y = vec![0.0f32, 1.0, 1.0, 0.0];
        let run = |threads: usize| {
            let mut w0: Vec<f32> = (0..2 * 8).map(|i| ((i * 37 % 11) as f32 / 11.0 - 0.5) * 2.0).collect();
            let mut b0 = vec![0.0f32; 8];
            let mut w1: Vec<f32> = (0..8).map(|i| ((i * 17 % 7) as f32 / 7.0 - 0.5) * 2.0).collect();
            let mut b1 = vec![0.0f32; 1];
            let mut st: Vec<Vec<f32>> =
                vec![vec![0.0; 16], vec![0.0; 16], vec![0.0; 8], vec![0.0; 8], vec![0.0; 8], vec![0.0; 8], vec![0.0; 1], vec![0.0; 1]];
            let mut last = 0.0;
            with_threads(threads, || {
                for t in 1..=1500u64 {
                    // [m, v] of each of W0, b0, W1, b1.
                    let mut slots: Vec<Vec<&mut [f32]>> =
                        st.chunks_mut(2).map(|c| c.iter_mut().map(|v| v.as_mut_slice()).collect()).collect();
                    let mut layers = vec![
                        LayerMut { weight: &mut w0, bias: &mut b0, n_in: 2, n_out: 8, activation: Activation::Tanh },
                        LayerMut { weight: &mut w1, bias: &mut b1, n_in: 8, n_out: 1, activation: Activation::Identity },
                    ];
                    let optimizer = Optimizer::Adam { learning_rate: 0.03, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, t };
                    let training =
                        Training { loss: Loss::BinaryCrossEntropy, update: Update { optimizer, weight_decay: 0.0 }, dropout: None };
                    let batch = Batch::new(&x, 2).values(&y, 1);
                    last = train_step(&mut layers, &mut slots, &batch, &training).unwrap();
                }
            });
            (last, w0, w1)
        };
        let (loss1, w0a, w1a) = run(1);
        assert!(loss1 < 0.05, "XOR not learnt: loss {loss1}");
        let (loss2, w0b, w1b) = run(2);
        assert_eq!((loss1, w0a, w1a), (loss2, w0b, w1b));
    }

    #[test]
    fn dropout_zeroes_and_rescales() {
        let w = vec![1.0f64; 3 * 4000];
        let b = vec![0.0; 4000];
        let w2 = vec![1.0; 4000];
        let b2 = vec![0.0; 1];
        let layers = [
            Layer { weight: &w, bias: &b, n_in: 3, n_out: 4000, activation: Activation::Identity },
            Layer { weight: &w2, bias: &b2, n_in: 4000, n_out: 1, activation: Activation::Identity },
        ];
        let x = vec![1.0, 1.0, 1.0];
        let d = Dropout { rate: 0.25, key: StreamKey { seed: 1, step: 1, purpose: 4 } };
        let acts = forward(&layers, View::new(&x, 1, 3), Some(d));
        let h = &acts.outputs[0];
        let zeros = h.iter().filter(|&&v| v == 0.0).count() as f64 / 4000.0;
        assert!((zeros - 0.25).abs() < 5.0 * (0.25f64 * 0.75 / 4000.0).sqrt(), "dropped fraction {zeros}");
        assert!(h.iter().all(|&v| v == 0.0 || (v - 4.0).abs() < 1e-12), "kept units scaled by 1/(1-p)");
        assert!(acts.masks[1].is_none(), "no dropout on the output layer");
    }

    #[test]
    fn divergence_is_reported_not_returned() {
        let mut w = vec![1e30f32; 2];
        let mut b = vec![0.0f32; 1];
        let mut v1 = vec![0.0f32; 2];
        let mut v2 = vec![0.0f32; 1];
        let x = vec![1e10f32, 1e10];
        let y = vec![0.0f32];
        let mut layers = vec![LayerMut { weight: &mut w, bias: &mut b, n_in: 2, n_out: 1, activation: Activation::Identity }];
        let mut slots: Vec<Vec<&mut [f32]>> = vec![vec![&mut v1], vec![&mut v2]];
        let batch = Batch::new(&x, 2).values(&y, 1);
        let err = train_step(&mut layers, &mut slots, &batch, &sgd(Loss::SquaredError, 0.1)).unwrap_err();
        assert!(matches!(err, KernelError::NonFinite(_)));
        assert_eq!(w, vec![1e30f32; 2], "parameters untouched by a failed step");
    }
}
