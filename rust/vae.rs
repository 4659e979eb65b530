//! Variational autoencoders (Kingma & Welling 2014) and conditional VAEs.
//!
//! - Encoder: an MLP whose last (linear) layer has 2 * n_latent outputs, `[mu | log_var]` of the
//!   diagonal Gaussian q(z | x).
//! - Reparameterisation: `z = mu + exp(log_var / 2) * eps`, `eps ~ N(0, I)`, so gradients reach mu
//!   (added) and sigma (multiplied) through z.
//! - Decoder: an MLP from z to the parameters of p(x | z): logits of independent Bernoullis, or the
//!   means of a Gaussian with a fixed variance.
//! - Prior: N(0, I), or for a CVAE with `PriorMean` conditioning N(mu_y, I) with one learned mean per
//!   class, so that `KL = 1/2 sum_i [(mu_i - mu_y,i)^2 + sigma_i^2 - log sigma_i^2 - 1]`. With `Concat`
//!   conditioning the one-hot label is appended to the encoder's and the decoder's inputs.
//!
//! The loss of a minibatch is the mean over samples of `-ELBO = -log p(x | z) + KL`, in nats. Its
//! gradient reaches the encoder's outputs through z and the KL term:
//! `dL/dmu = dL/dz + (mu - mu_y) / n` and `dL/dlog_var = dL/dz * eps * sigma / 2 + (sigma^2 - 1) / (2n)`
//! (zero where log_var was clamped), and the class means get `-(mu - mu_y) / n`.
//!
//! The log-likelihood is estimated by importance sampling from q (the IWAE bound):
//! `log p(x) ~ log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x)`, `z_k ~ q(z | x)`.

use rayon::prelude::*;

use crate::activations::{bce_with_logits, exp_fast, sigmoid, LogSumExp};
use crate::batch::Batch;
use crate::dense::{
    backward, check_named_chain, forward, forward_with, grad_buffers, recycle_grads, Activations, Layer, LayerGrad, LayerMut,
};
use crate::error::{KernelError, Result};
use crate::linalg::{Threads, View};
use crate::optim::{self, Update};
use crate::real::Real;
use crate::rng::{purpose, stream, CHUNK};
use crate::sampling::{self, StreamKey};
use crate::scratch;
use crate::zero_columns::FirstLayer;

/// log-variances are clamped to this range in the forward pass (with zero gradient outside), so that
/// exp(log_var) can neither overflow nor vanish.
pub const LOG_VAR_MIN: f64 = -30.0;
pub const LOG_VAR_MAX: f64 = 20.0;

/// The observation model p(x | z).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Likelihood {
    /// Independent Bernoullis with logits from the decoder.
    Bernoulli,
    /// A Gaussian with the decoder's output as mean and a fixed variance.
    Gaussian { variance: f64 },
}

/// How a CVAE uses the class label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conditioning {
    /// A plain VAE.
    None,
    /// One learned prior mean per class.
    PriorMean,
    /// The one-hot label is appended to the encoder's and the decoder's inputs.
    Concat,
}

impl Conditioning {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "none" => Ok(Conditioning::None),
            "prior_mean" => Ok(Conditioning::PriorMean),
            "concat" => Ok(Conditioning::Concat),
            other => Err(KernelError::value("conditioning", "'none', 'prior_mean' or 'concat'", format!("'{other}'"))),
        }
    }
}

/// The shape of a (conditional) VAE.
#[derive(Clone, Copy, Debug)]
pub struct VaeSpec {
    pub n_features: usize,
    pub n_latent: usize,
    pub n_classes: usize,
    pub likelihood: Likelihood,
    pub conditioning: Conditioning,
}

impl VaeSpec {
    fn label_width(&self) -> usize {
        if self.conditioning == Conditioning::Concat {
            self.n_classes
        } else {
            0
        }
    }

    pub fn encoder_inputs(&self) -> usize {
        self.n_features + self.label_width()
    }

    pub fn decoder_inputs(&self) -> usize {
        self.n_latent + self.label_width()
    }

    fn needs_labels(&self) -> bool {
        self.conditioning != Conditioning::None
    }
}

/// Read-only parameters of a VAE.
pub struct Vae<'a, T> {
    pub encoder: Vec<Layer<'a, T>>,
    pub decoder: Vec<Layer<'a, T>>,
    /// (n_classes, n_latent), for `PriorMean` conditioning.
    pub class_means: Option<&'a [T]>,
    pub spec: VaeSpec,
}

/// Everything one forward pass computes that the loss and the backward pass need.
struct Pass<T> {
    batch: usize,
    labels: Vec<usize>,
    encoder_input: Vec<T>,
    /// The encoder's first layer: over the batch's kept (not all-zero) columns in training gradients.
    first_layer: FirstLayer<T>,
    encoder: Activations<T>,
    /// (batch, n_latent) each: the posterior mean and standard deviation exp(log_var / 2), log_var
    /// clamped.
    mu: Vec<T>,
    sigma: Vec<T>,
    log_var_in_range: Vec<bool>,
    eps: Vec<T>,
    decoder_input: Vec<T>,
    decoder: Activations<T>,
    /// Per sample: -log p(x | z) and KL(q || prior), in nats.
    recon: Vec<f64>,
    kl: Vec<f64>,
    /// d(mean -log p(x | z)) / d(decoder output) (batch, n_features), when asked for.
    delta: Vec<T>,
}

/// Per-sample losses of a batch.
#[derive(Clone, Debug, Default)]
pub struct Losses {
    pub recon: Vec<f64>,
    pub kl: Vec<f64>,
}

impl Losses {
    pub fn mean_loss(&self) -> (f64, f64, f64) {
        let n = self.recon.len().max(1) as f64;
        let r = self.recon.iter().sum::<f64>() / n;
        let k = self.kl.iter().sum::<f64>() / n;
        (r + k, r, k)
    }
}

/// What [`Vae::gradients`] computes.
pub struct Gradients<T> {
    pub losses: Losses,
    pub encoder: Vec<LayerGrad<T>>,
    pub decoder: Vec<LayerGrad<T>>,
    /// (n_classes, n_latent), for `PriorMean` conditioning.
    pub class_means: Option<Vec<T>>,
}

/// `-log p(x | z)` of one sample given the decoder output (logits or means).
#[inline]
fn recon_nll<T: Real>(likelihood: Likelihood, x: &[T], out: &[T]) -> f64 {
    match likelihood {
        Likelihood::Bernoulli => bce_with_logits(x, out, None, T::one()),
        Likelihood::Gaussian { variance } => {
            let sq: f64 = x.iter().zip(out).map(|(&x, &m)| (x - m).f64().powi(2)).sum();
            0.5 * sq / variance + 0.5 * x.len() as f64 * (2.0 * std::f64::consts::PI * variance).ln()
        }
    }
}

/// KL(N(mu, diag exp(log_var)) || N(prior_mean, I)) of one sample.
#[inline]
pub fn gaussian_kl<T: Real>(mu: &[T], log_var: &[T], prior_mean: Option<&[T]>) -> f64 {
    (0..mu.len())
        .map(|j| {
            let m = prior_mean.map(|p| p[j]).unwrap_or(T::zero());
            let (d, lv) = ((mu[j] - m).f64(), log_var[j].f64());
            0.5 * (d * d + lv.exp() - lv - 1.0)
        })
        .sum()
}

impl<'a, T: Real> Vae<'a, T> {
    pub fn check(&self) -> Result<()> {
        let s = &self.spec;
        if s.n_latent == 0 {
            return Err(KernelError::value("n_components", "an integer >= 1", 0));
        }
        if s.n_features == 0 {
            return Err(KernelError::value("x", "at least one feature", 0));
        }
        check_named_chain(&self.encoder, s.encoder_inputs(), "encoder_")?;
        check_named_chain(&self.decoder, s.decoder_inputs(), "decoder_")?;
        let enc_out = self.encoder.last().map(|l| l.n_out).unwrap_or(0);
        if enc_out != 2 * s.n_latent {
            return Err(KernelError::shape(
                "encoder",
                format!("{} outputs (mu and log_var)", 2 * s.n_latent),
                format!("{enc_out} outputs"),
            ));
        }
        let dec_out = self.decoder.last().map(|l| l.n_out).unwrap_or(0);
        if dec_out != s.n_features {
            return Err(KernelError::shape("decoder", format!("{} outputs", s.n_features), format!("{dec_out} outputs")));
        }
        if s.needs_labels() && s.n_classes == 0 {
            return Err(KernelError::value("n_classes", "an integer >= 1 for a conditional VAE", 0));
        }
        if s.conditioning == Conditioning::PriorMean {
            let len = self.class_means.map(|c| c.len()).unwrap_or(0);
            if len != s.n_classes * s.n_latent || s.n_classes == 0 {
                return Err(KernelError::shape("class_means", format!("{}x{}", s.n_classes, s.n_latent), format!("{len} values")));
            }
        }
        if let Likelihood::Gaussian { variance } = s.likelihood {
            if !(variance.is_finite() && variance > 0.0) {
                return Err(KernelError::value("decoder_variance", "a finite number > 0", variance));
            }
        }
        Ok(())
    }

    /// Checks `batch` (rows of `width` values: the features, or the latent codes) and returns the
    /// labels of its rows, checked against n_classes (none for a plain VAE).
    fn batch_labels(&self, batch: &Batch<'_, T>, width: usize) -> Result<Vec<usize>> {
        if batch.n_features != width {
            return Err(KernelError::shape("x", format!("rows of {width} values"), format!("rows of {}", batch.n_features)));
        }
        batch.check()?;
        let labels = match (batch.batch_labels(), self.spec.needs_labels()) {
            (None, false) => return Ok(vec![]),
            (Some(labels), false) => {
                return Err(KernelError::value("y", "None for a VAE without conditioning", format!("{} labels", labels.len())))
            }
            (None, true) => return Err(KernelError::value("y", "class labels for a conditional VAE", "None")),
            (Some(labels), true) => labels,
        };
        if let Some(&bad) = labels.iter().find(|&&c| c >= self.spec.n_classes) {
            return Err(KernelError::Index { name: "y".into(), index: bad as i64, len: self.spec.n_classes });
        }
        Ok(labels)
    }

    /// `[x | onehot(label)]` (Concat) or the plain rows of x.
    fn encoder_input(&self, batch: &Batch<'_, T>, labels: &[usize], n: usize) -> Vec<T> {
        let d = self.spec.n_features;
        let width = self.spec.encoder_inputs();
        if width == d {
            let mut out = scratch::take(n * width); // overwritten by the copy
            batch.gather_into(&mut out);
            return out;
        }
        // Zeroed: the one-hot part keeps its zeros.
        let mut out = vec![T::zero(); n * width];
        out.par_chunks_mut(width).enumerate().for_each(|(i, row)| {
            row[..d].copy_from_slice(batch.x_row(i));
            row[d + labels[i]] = T::one();
        });
        out
    }

    /// `[z | onehot(label)]` (Concat) or z.
    fn decoder_input(&self, z: &[T], labels: &[usize], n: usize) -> Vec<T> {
        let k = self.spec.n_latent;
        let width = self.spec.decoder_inputs();
        if width == k {
            return z.to_vec();
        }
        let mut out = vec![T::zero(); n * width];
        out.par_chunks_mut(width).enumerate().for_each(|(i, row)| {
            row[..k].copy_from_slice(&z[i * k..(i + 1) * k]);
            row[k + labels[i]] = T::one();
        });
        out
    }

    fn prior_mean(&self, labels: &[usize], i: usize) -> Option<&[T]> {
        let k = self.spec.n_latent;
        match (self.spec.conditioning, self.class_means) {
            (Conditioning::PriorMean, Some(cm)) => Some(&cm[labels[i] * k..(labels[i] + 1) * k]),
            _ => None,
        }
    }

    /// Splits the encoder output (n, 2k) into mu and a clamped log_var.
    fn split_posterior(&self, out: &[T], n: usize) -> (Vec<T>, Vec<T>, Vec<bool>) {
        let k = self.spec.n_latent;
        let mut mu = vec![T::zero(); n * k];
        let mut lv = vec![T::zero(); n * k];
        let mut ok = vec![true; n * k];
        let (lo, hi) = (T::of(LOG_VAR_MIN), T::of(LOG_VAR_MAX));
        for i in 0..n {
            mu[i * k..(i + 1) * k].copy_from_slice(&out[i * 2 * k..i * 2 * k + k]);
            for j in 0..k {
                let v = out[i * 2 * k + k + j];
                ok[i * k + j] = v >= lo && v <= hi;
                lv[i * k + j] = v.max(lo).min(hi);
            }
        }
        (mu, lv, ok)
    }

    /// The posterior q(z | x): (mu, log_var), each (n, n_latent).
    pub fn encode(&self, batch: &Batch<'_, T>) -> Result<(Vec<T>, Vec<T>)> {
        self.check()?;
        let labels = self.batch_labels(batch, self.spec.n_features)?;
        let n = batch.len();
        let input = self.encoder_input(batch, &labels, n);
        let acts = forward(&self.encoder, View::new(&input, n, self.spec.encoder_inputs()), None);
        let (mu, lv, _) = self.split_posterior(acts.output(), n);
        Ok((mu, lv))
    }

    /// The decoder's output for latent codes z (n, n_latent): Bernoulli means (sigmoid of the logits)
    /// or Gaussian means.
    pub fn decode(&self, z: &[T], labels: Option<&[usize]>) -> Result<Vec<T>> {
        self.check()?;
        let labels = self.batch_labels(&Batch::new(z, self.spec.n_latent).labels(labels), self.spec.n_latent)?;
        let n = z.len() / self.spec.n_latent;
        let input = self.decoder_input(z, &labels, n);
        let acts = forward(&self.decoder, View::new(&input, n, self.spec.decoder_inputs()), None);
        let mut out = acts.outputs.into_iter().last().unwrap_or_default();
        if self.spec.likelihood == Likelihood::Bernoulli {
            out.par_chunks_mut(CHUNK).for_each(|c| c.iter_mut().for_each(|l| *l = sigmoid(*l)));
        }
        Ok(out)
    }

    /// Forward pass with given noise `eps` (n, n_latent).
    /// With `want_delta` (training gradients), also d(mean -log p(x|z)) / d(decoder output), fused
    /// with the loss, and the encoder's first layer skips the batch's all-zero input columns (never at
    /// inference, where a row's result must not depend on its batch: see zero_columns).
    fn pass(&self, batch: &Batch<'_, T>, eps: Vec<T>, want_delta: bool) -> Result<Pass<T>> {
        let s = self.spec;
        let labels = self.batch_labels(batch, s.n_features)?;
        let n = batch.len();
        if eps.len() != n * s.n_latent {
            return Err(KernelError::shape(
                "eps",
                format!("{n}x{} values (one row per sample)", s.n_latent),
                format!("{} values", eps.len()),
            ));
        }
        let encoder_input = self.encoder_input(batch, &labels, n);
        let first_layer = FirstLayer::new(want_delta, &encoder_input, n, &self.encoder[0]);
        let encoder = forward(&first_layer.chain(&self.encoder), first_layer.input(&encoder_input, n, s.encoder_inputs()), None);
        let (mu, log_var, log_var_in_range) = self.split_posterior(encoder.output(), n);
        let sigma: Vec<T> = log_var.iter().map(|&lv| exp_fast(T::of(0.5) * lv)).collect();
        let z: Vec<T> = (0..n * s.n_latent).map(|i| mu[i] + sigma[i] * eps[i]).collect();
        let decoder_input = self.decoder_input(&z, &labels, n);
        let decoder = forward(&self.decoder, View::new(&decoder_input, n, s.decoder_inputs()), None);
        let out = decoder.output();
        let d = s.n_features;
        let x_row = |i: usize| batch.x_row(i);
        let inv_n = T::of(1.0 / n.max(1) as f64);
        // Every element of delta is written below.
        let mut delta = if want_delta { scratch::take(n * d) } else { vec![] };
        let mut recon = vec![0.0f64; n];
        if want_delta {
            recon.par_iter_mut().zip(delta.par_chunks_mut(d)).enumerate().for_each(|(i, (r, row))| {
                let (x, o) = (x_row(i), &out[i * d..(i + 1) * d]);
                *r = match s.likelihood {
                    Likelihood::Bernoulli => bce_with_logits(x, o, Some(row), inv_n),
                    Likelihood::Gaussian { variance } => {
                        let scale = inv_n / T::of(variance);
                        row.iter_mut().zip(o.iter().zip(x)).for_each(|(g, (&o, &x))| *g = (o - x) * scale);
                        recon_nll(s.likelihood, x, o)
                    }
                };
            });
        } else {
            recon.par_iter_mut().enumerate().for_each(|(i, r)| *r = recon_nll(s.likelihood, x_row(i), &out[i * d..(i + 1) * d]));
        }
        let k = s.n_latent;
        let kl: Vec<f64> =
            (0..n).map(|i| gaussian_kl(&mu[i * k..(i + 1) * k], &log_var[i * k..(i + 1) * k], self.prior_mean(&labels, i))).collect();
        Ok(Pass {
            batch: n,
            labels,
            encoder_input,
            first_layer,
            encoder,
            mu,
            sigma,
            log_var_in_range,
            eps,
            decoder_input,
            decoder,
            recon,
            kl,
            delta,
        })
    }

    /// Standard normal noise for a batch of n at training step `step`.
    pub fn draw_eps(&self, n: usize, seed: u64, step: u64) -> Vec<T> {
        let mut eps = vec![T::zero(); n * self.spec.n_latent];
        sampling::standard_normal(&mut eps, StreamKey { seed, step, purpose: purpose::LATENT });
        eps
    }

    /// Per-sample reconstruction terms and KL with the given noise (one sample of z per x).
    pub fn losses(&self, batch: &Batch<'_, T>, eps: Vec<T>) -> Result<Losses> {
        self.check()?;
        let p = self.pass(batch, eps, false)?;
        Ok(Losses { recon: p.recon, kl: p.kl })
    }

    /// The per-sample losses and the gradients of the mean loss for every parameter, for a batch and
    /// fixed noise `eps`. As in a training step, the encoder's first layer skips the batch's all-zero
    /// input columns (see zero_columns), so the per-sample losses may differ from [`Vae::losses`] in
    /// the last bits.
    pub fn gradients(&self, batch: &Batch<'_, T>, eps: Vec<T>) -> Result<Gradients<T>> {
        self.check()?;
        let mut p = self.pass(batch, eps, true)?;
        let s = self.spec;
        let (n, k) = (p.batch, s.n_latent);
        let inv_n = T::of(1.0 / n.max(1) as f64);
        let delta = std::mem::take(&mut p.delta);
        let mut dec_grads = grad_buffers(&self.decoder);
        let mut d_dec_input = vec![T::zero(); n * s.decoder_inputs()];
        backward(
            &self.decoder,
            View::new(&p.decoder_input, n, s.decoder_inputs()),
            &p.decoder,
            delta,
            &mut dec_grads,
            Some(&mut d_dec_input),
        );

        // Through z = mu + exp(log_var / 2) * eps, plus the KL term.
        let w = s.decoder_inputs();
        let mut d_enc_out = vec![T::zero(); n * 2 * k];
        let mut d_class_means = (s.conditioning == Conditioning::PriorMean).then(|| vec![T::zero(); s.n_classes * k]);
        let half = T::of(0.5);
        for i in 0..n {
            let prior = self.prior_mean(&p.labels, i);
            for j in 0..k {
                let idx = i * k + j;
                let dz = d_dec_input[i * w + j];
                let sigma = p.sigma[idx];
                let diff = p.mu[idx] - prior.map(|m| m[j]).unwrap_or(T::zero());
                d_enc_out[i * 2 * k + j] = dz + diff * inv_n;
                d_enc_out[i * 2 * k + k + j] = if p.log_var_in_range[idx] {
                    dz * p.eps[idx] * half * sigma + half * (sigma * sigma - T::one()) * inv_n
                } else {
                    T::zero()
                };
                if let Some(g) = d_class_means.as_mut() {
                    g[p.labels[i] * k + j] -= diff * inv_n;
                }
            }
        }
        let encoder_layers = p.first_layer.chain(&self.encoder);
        let encoder_input = p.first_layer.input(&p.encoder_input, n, s.encoder_inputs());
        let mut enc_grads = grad_buffers(&encoder_layers);
        backward(&encoder_layers, encoder_input, &p.encoder, d_enc_out, &mut enc_grads, None);
        p.first_layer.finish(&mut enc_grads);
        p.encoder.recycle();
        p.decoder.recycle();
        scratch::recycle(p.encoder_input);
        Ok(Gradients { losses: Losses { recon: p.recon, kl: p.kl }, encoder: enc_grads, decoder: dec_grads, class_means: d_class_means })
    }

    /// Importance-sampled log-likelihood (the IWAE bound) of each sample with `n_importance` draws
    /// from q(z | x): `log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x)`, computed with log-sum-exp.
    /// Parallel over samples; each sample's draws come from its own stream.
    pub fn log_likelihood(&self, batch: &Batch<'_, T>, n_importance: usize, seed: u64) -> Result<Vec<f64>> {
        self.check()?;
        if n_importance == 0 {
            return Err(KernelError::value("n_importance", "an integer >= 1", 0));
        }
        let s = self.spec;
        let labels = self.batch_labels(batch, s.n_features)?;
        let n = batch.len();
        let (mu, log_var) = self.encode(batch)?;
        let (k, d) = (s.n_latent, s.n_features);
        const DRAWS_PER_BLOCK: usize = 256;
        Ok((0..n)
            .into_par_iter()
            .map(|i| {
                let x = batch.x_row(i);
                let (mu_i, lv_i) = (&mu[i * k..(i + 1) * k], &log_var[i * k..(i + 1) * k]);
                let prior = self.prior_mean(&labels, i);
                let sum_lv: f64 = lv_i.iter().map(|v| v.f64()).sum();
                let mut acc = LogSumExp::EMPTY;
                let mut rng = stream(seed, i as u64, purpose::LATENT, 0);
                let mut done = 0;
                while done < n_importance {
                    let m = DRAWS_PER_BLOCK.min(n_importance - done);
                    let mut z = vec![T::zero(); m * k];
                    let mut log_w = vec![0.0f64; m];
                    for t in 0..m {
                        let mut eps_sq = 0.0;
                        let mut prior_sq = 0.0;
                        for j in 0..k {
                            let e = T::normal(&mut rng);
                            let zj = mu_i[j] + (T::of(0.5) * lv_i[j]).exp() * e;
                            z[t * k + j] = zj;
                            eps_sq += e.f64() * e.f64();
                            let pm = prior.map(|p| p[j].f64()).unwrap_or(0.0);
                            prior_sq += (zj.f64() - pm).powi(2);
                        }
                        // log p(z) - log q(z | x); the (2 pi)^(k/2) factors cancel.
                        log_w[t] = -0.5 * prior_sq + 0.5 * eps_sq + 0.5 * sum_lv;
                    }
                    let lab = vec![labels.get(i).copied().unwrap_or(0); m];
                    let input = self.decoder_input(&z, &lab, m);
                    let acts = forward_with(&self.decoder, View::new(&input, m, s.decoder_inputs()), None, Threads::Single);
                    let out = acts.output();
                    for t in 0..m {
                        log_w[t] -= recon_nll(s.likelihood, x, &out[t * d..(t + 1) * d]);
                    }
                    acc = acc.merge(LogSumExp::of(&log_w));
                    done += m;
                }
                acc.log_mean(n_importance)
            })
            .collect())
    }
}

/// Writable VAE parameters.
pub struct VaeMut<'a, T> {
    pub encoder: Vec<LayerMut<'a, T>>,
    pub decoder: Vec<LayerMut<'a, T>>,
    pub class_means: Option<&'a mut [T]>,
    pub spec: VaeSpec,
}

impl<'a, T: Real> VaeMut<'a, T> {
    pub fn view(&self) -> Vae<'_, T> {
        Vae {
            encoder: self.encoder.iter().map(|l| l.view()).collect(),
            decoder: self.decoder.iter().map(|l| l.view()).collect(),
            class_means: self.class_means.as_deref(),
            spec: self.spec,
        }
    }

    /// The sizes of the parameter arrays the optimiser state covers, in its order: (W, b) of every
    /// encoder then decoder layer, then the class means.
    pub fn param_sizes(&self) -> Vec<usize> {
        let layers = self.encoder.iter().chain(&self.decoder).flat_map(|l| [l.weight.len(), l.bias.len()]);
        layers.chain(self.class_means.as_ref().map(|c| c.len())).collect()
    }
}

/// One training step: draw eps, forward, loss, backward, optimiser update of every parameter.
/// `slots[p]` holds the optimiser state of parameter p in the order of [`VaeMut::param_sizes`].
/// Weight decay applies to the weight matrices only. Returns (loss, reconstruction, KL) means.
pub fn train_step<T: Real>(
    net: &mut VaeMut<'_, T>,
    slots: &mut [Vec<&mut [T]>],
    batch: &Batch<'_, T>,
    update: &Update,
    seed: u64,
    step: u64,
) -> Result<(f64, f64, f64)> {
    update.validate()?;
    optim::check_state(&update.optimizer, slots, &net.param_sizes())?;
    net.view().check()?;
    batch.check()?;
    batch.check_not_empty()?;
    batch.check_finite()?;
    let Gradients { losses, encoder: enc_grads, decoder: dec_grads, class_means: cm_grad } = {
        let view = net.view();
        let eps = view.draw_eps(batch.len(), seed, step);
        view.gradients(batch, eps)?
    };
    let (loss, recon, kl) = losses.mean_loss();
    if !loss.is_finite() {
        return Err(KernelError::NonFinite(format!("the training loss is {loss}: the model diverged (try a smaller learning_rate)")));
    }
    let layers = net.encoder.iter_mut().zip(&enc_grads).chain(net.decoder.iter_mut().zip(&dec_grads));
    let weights_and_biases = layers.flat_map(|(l, g)| [(&mut *l.weight, &g.weight[..], true), (&mut *l.bias, &g.bias[..], false)]);
    let class_means = net.class_means.as_deref_mut().zip(cm_grad.as_deref()).map(|(p, g)| (p, g, false));
    update.apply(slots, weights_and_biases.chain(class_means));
    recycle_grads(enc_grads);
    recycle_grads(dec_grads);
    Ok((loss, recon, kl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activations::Activation;

    struct Owned {
        enc: Vec<OwnedLayer>,
        dec: Vec<OwnedLayer>,
        class_means: Option<Vec<f64>>,
        spec: VaeSpec,
    }

    /// (weight, bias, n_in, n_out, activation)
    type OwnedLayer = (Vec<f64>, Vec<f64>, usize, usize, Activation);

    fn layer(n_in: usize, n_out: usize, act: Activation, salt: u64) -> OwnedLayer {
        let r = |i: u64, k: u64| ((((i + salt * 7919) * 2654435761 + k) % 10007) as f64 / 10007.0 - 0.5) * 2.0;
        ((0..(n_in * n_out) as u64).map(|i| r(i, 1) * 0.6).collect(), (0..n_out as u64).map(|i| r(i, 2) * 0.3).collect(), n_in, n_out, act)
    }

    impl Owned {
        fn new(likelihood: Likelihood, conditioning: Conditioning) -> Self {
            let (d, k, c, h) = (6, 2, 3, 5);
            let spec = VaeSpec { n_features: d, n_latent: k, n_classes: c, likelihood, conditioning };
            Owned {
                enc: vec![layer(spec.encoder_inputs(), h, Activation::Tanh, 1), layer(h, 2 * k, Activation::Identity, 2)],
                dec: vec![layer(spec.decoder_inputs(), h, Activation::Sigmoid, 3), layer(h, d, Activation::Identity, 4)],
                class_means: (conditioning == Conditioning::PriorMean).then(|| (0..c * k).map(|i| i as f64 * 0.3 - 0.5).collect()),
                spec,
            }
        }

        fn vae(&self) -> Vae<'_, f64> {
            fn conv(ls: &[OwnedLayer]) -> Vec<Layer<'_, f64>> {
                ls.iter().map(|(w, b, i, o, a)| Layer { weight: w, bias: b, n_in: *i, n_out: *o, activation: *a }).collect()
            }
            Vae { encoder: conv(&self.enc), decoder: conv(&self.dec), class_means: self.class_means.as_deref(), spec: self.spec }
        }

        fn mean_loss(&self, batch: &Batch<'_, f64>, eps: &[f64]) -> f64 {
            self.vae().losses(batch, eps.to_vec()).unwrap().mean_loss().0
        }
    }

    /// With `zero_columns`, pixels 1 and 4 (and class 1) are absent from the whole batch, so the
    /// training gradients skip them in the encoder's first layer (see zero_columns).
    fn check_all_gradients(likelihood: Likelihood, conditioning: Conditioning, zero_columns: bool) {
        let mut m = Owned::new(likelihood, conditioning);
        let n = 4;
        let x: Vec<f64> = (0..n * 6)
            .map(|i| if zero_columns && (i % 6 == 1 || i % 6 == 4) { 0.0 } else { ((i * 37) % 11) as f64 / 10.0 + 0.05 })
            .collect();
        let labels = if zero_columns { vec![0usize, 2, 0, 2] } else { vec![0usize, 2, 1, 2] };
        let eps: Vec<f64> = (0..n * 2).map(|i| ((i * 13) % 7) as f64 / 3.0 - 1.0).collect();
        // Labels for a conditional VAE only: a plain one refuses them.
        let batch = Batch::new(&x, 6).labels((conditioning != Conditioning::None).then_some(&labels[..]));
        {
            let vae = m.vae();
            let input = vae.encoder_input(&batch, &labels, n);
            let compacted = crate::zero_columns::compact(&input, n, &vae.encoder[0]).is_some();
            assert_eq!(compacted, zero_columns, "the test batch must (not) have skippable columns");
        }
        let Gradients { encoder: eg, decoder: dg, class_means: cg, .. } = m.vae().gradients(&batch, eps.clone()).unwrap();
        let h = 1e-6;
        let tol = |fd: f64| 1e-6 * (1.0 + fd.abs());
        macro_rules! check_param {
            ($vec:expr, $grad:expr, $name:expr) => {
                for i in 0..$vec.len() {
                    let orig = $vec[i];
                    $vec[i] = orig + h;
                    let up = m.mean_loss(&batch, &eps);
                    $vec[i] = orig - h;
                    let down = m.mean_loss(&batch, &eps);
                    $vec[i] = orig;
                    let fd = (up - down) / (2.0 * h);
                    assert!((fd - $grad[i]).abs() < tol(fd), "{:?}/{:?} {}[{i}]: fd {fd} vs {}", likelihood, conditioning, $name, $grad[i]);
                }
            };
        }
        for (l, g) in eg.iter().enumerate() {
            check_param!(m.enc[l].0, g.weight, format!("enc W{l}"));
            check_param!(m.enc[l].1, g.bias, format!("enc b{l}"));
        }
        for (l, g) in dg.iter().enumerate() {
            check_param!(m.dec[l].0, g.weight, format!("dec W{l}"));
            check_param!(m.dec[l].1, g.bias, format!("dec b{l}"));
        }
        if let Some(g) = cg {
            let mut cm = m.class_means.take().unwrap();
            for i in 0..cm.len() {
                let orig = cm[i];
                cm[i] = orig + h;
                m.class_means = Some(cm.clone());
                let up = m.mean_loss(&batch, &eps);
                cm[i] = orig - h;
                m.class_means = Some(cm.clone());
                let down = m.mean_loss(&batch, &eps);
                cm[i] = orig;
                let fd = (up - down) / (2.0 * h);
                assert!((fd - g[i]).abs() < tol(fd), "class mean [{i}]: fd {fd} vs {}", g[i]);
            }
            m.class_means = Some(cm);
        }
    }

    #[test]
    fn elbo_gradients_match_finite_differences() {
        for zero_columns in [false, true] {
            check_all_gradients(Likelihood::Bernoulli, Conditioning::None, zero_columns);
            check_all_gradients(Likelihood::Gaussian { variance: 0.5 }, Conditioning::None, zero_columns);
            check_all_gradients(Likelihood::Bernoulli, Conditioning::PriorMean, zero_columns);
            check_all_gradients(Likelihood::Bernoulli, Conditioning::Concat, zero_columns);
        }
    }

    #[test]
    fn kl_matches_closed_form_and_monte_carlo() {
        let mu = [0.3f64, -1.2];
        let lv = [0.4f64, -0.7];
        let pm = [1.0f64, 0.5];
        let kl = gaussian_kl(&mu, &lv, Some(&pm));
        let closed: f64 = (0..2).map(|j| 0.5 * ((mu[j] - pm[j]).powi(2) + lv[j].exp() - lv[j] - 1.0)).sum();
        assert!((kl - closed).abs() < 1e-14);
        // Monte Carlo: E_q[log q(z) - log p(z)].
        let mut rng = stream(1, 0, 0, 0);
        let n = 400_000;
        let mut total = 0.0;
        let mut sq = 0.0;
        for _ in 0..n {
            let mut v = 0.0;
            for j in 0..2 {
                let e = f64::normal(&mut rng);
                let s = (0.5 * lv[j]).exp();
                let z = mu[j] + s * e;
                v += -0.5 * e * e - 0.5 * lv[j] + 0.5 * (z - pm[j]).powi(2);
            }
            total += v;
            sq += v * v;
        }
        let mean = total / n as f64;
        let se = ((sq / n as f64 - mean * mean) / n as f64).sqrt();
        assert!((mean - kl).abs() < 5.0 * se, "MC {mean} vs {kl} (se {se})");
    }

    #[test]
    fn importance_sampling_bounds_and_convergence() {
        let m = Owned::new(Likelihood::Bernoulli, Conditioning::None);
        let n = 8;
        let x: Vec<f64> = (0..n * 6).map(|i| ((i * 5) % 3 == 0) as u8 as f64).collect();
        let batch = Batch::new(&x, 6);
        let vae = m.vae();
        // Average ELBO over many eps: the IWAE estimate with K = 1 is an ELBO sample.
        let mut elbo = vec![0.0; n];
        for s in 0..200 {
            let l = vae.losses(&batch, vae.draw_eps(n, 5, s)).unwrap();
            for (i, e) in elbo.iter_mut().enumerate() {
                *e += -(l.recon[i] + l.kl[i]) / 200.0;
            }
        }
        let k1 = vae.log_likelihood(&batch, 1, 3).unwrap();
        let k100 = vae.log_likelihood(&batch, 100, 3).unwrap();
        let k5000 = vae.log_likelihood(&batch, 5000, 3).unwrap();
        // Exact log p(x) by quadrature over the 2-D latent space.
        let (lo, hi, g) = (-7.0, 7.0, 281);
        let step = (hi - lo) / (g - 1) as f64;
        let mut z = vec![];
        for a in 0..g {
            for b in 0..g {
                z.push(lo + a as f64 * step);
                z.push(lo + b as f64 * step);
            }
        }
        let means = vae.decode(&z, None).unwrap();
        for i in 0..n {
            let xi = &x[i * 6..(i + 1) * 6];
            let mut terms = vec![];
            for p in 0..g * g {
                let (z0, z1) = (z[2 * p], z[2 * p + 1]);
                let log_prior = -0.5 * (z0 * z0 + z1 * z1) - (2.0 * std::f64::consts::PI).ln();
                let ll: f64 = (0..6).map(|j| if xi[j] > 0.5 { means[p * 6 + j].ln() } else { (1.0 - means[p * 6 + j]).ln() }).sum();
                terms.push(ll + log_prior + 2.0 * step.ln());
            }
            let mx = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let exact = mx + terms.iter().map(|t| (t - mx).exp()).sum::<f64>().ln();
            assert!(elbo[i] <= exact + 0.05, "ELBO {} above log p(x) {exact}", elbo[i]);
            assert!(k5000[i] <= exact + 0.05 && k5000[i] >= exact - 0.05, "IWAE(5000) {} vs {exact}", k5000[i]);
            assert!(k100[i] >= elbo[i] - 0.05, "IWAE(100) {} below ELBO {}", k100[i], elbo[i]);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(mean(&k1) < mean(&k100) && mean(&k100) <= mean(&k5000) + 1e-3);
    }

    #[test]
    fn training_lowers_the_loss_deterministically() {
        let run = |threads: usize| {
            let mut m = Owned::new(Likelihood::Bernoulli, Conditioning::PriorMean);
            let n = 64;
            let x: Vec<f64> = (0..n * 6).map(|i| ((i / 6) % 3 == (i % 6) % 3) as u8 as f64).collect();
            let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
            let mut state: Vec<Vec<Vec<f64>>> = vec![];
            let sizes: Vec<usize> =
                m.enc.iter().chain(&m.dec).flat_map(|l| [l.0.len(), l.1.len()]).chain([m.class_means.as_ref().unwrap().len()]).collect();
            for s in &sizes {
                state.push(vec![vec![0.0; *s], vec![0.0; *s]]);
            }
            let mut losses = vec![];
            crate::threads::with_threads(threads, || {
                for t in 1..=300u64 {
                    let mut net = VaeMut {
                        encoder: m
                            .enc
                            .iter_mut()
                            .map(|(w, b, i, o, a)| LayerMut { weight: w, bias: b, n_in: *i, n_out: *o, activation: *a })
                            .collect(),
                        decoder: m
                            .dec
                            .iter_mut()
                            .map(|(w, b, i, o, a)| LayerMut { weight: w, bias: b, n_in: *i, n_out: *o, activation: *a })
                            .collect(),
                        class_means: m.class_means.as_deref_mut(),
                        spec: m.spec,
                    };
                    let mut slots: Vec<Vec<&mut [f64]>> =
                        state.iter_mut().map(|s| s.iter_mut().map(|v| v.as_mut_slice()).collect()).collect();
                    let optimizer = crate::optim::Optimizer::Adam { learning_rate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, t };
                    let update = Update { optimizer, weight_decay: 0.0 };
                    let batch = Batch::new(&x, 6).labels(Some(&labels));
                    losses.push(train_step(&mut net, &mut slots, &batch, &update, 11, t).unwrap().0);
                }
            });
            (losses, m.class_means.clone().unwrap())
        };
        let (l1, cm1) = run(1);
        let first: f64 = l1[..20].iter().sum::<f64>() / 20.0;
        let last: f64 = l1[280..].iter().sum::<f64>() / 20.0;
        assert!(last < first - 0.5, "loss {first} -> {last}");
        let (l2, cm2) = run(2);
        assert_eq!(l1, l2);
        assert_eq!(cm1, cm2);
    }
}
