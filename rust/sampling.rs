//! Random draws from fixed streams: Bernoulli units (fused with their sigmoid), reparameterised
//! Gaussians and standard normals.
//!
//! - Bernoulli: `s_i = 1 if u_i < p_i else 0` with `u_i` uniform on [0, 1), so `P(s_i = 1) = p_i`;
//! - Gaussian: `x_i = mean_i + scale_i * eps_i` with `eps_i ~ N(0, 1)`.
//!
//! Chunk `i` of a draw (of [`CHUNK`] elements) reads the stream `(seed, step, purpose, i)` of a
//! [`StreamKey`] (see `rng`), whichever thread runs it: the draws do not depend on the number of threads.

use rayon::prelude::*;

use crate::activations::{for_each_row_segment, sigmoid_bias_inplace};
use crate::real::Real;
use crate::rng::{stream, CHUNK};

/// Which random stream a sampling kernel reads (see `rng`).
#[derive(Clone, Copy, Debug)]
pub struct StreamKey {
    pub seed: u64,
    pub step: u64,
    pub purpose: u64,
}

/// Fused hidden/visible unit update: `probs <- sigmoid(probs + bias)` (probs holds the pre-activations
/// of a row-major (rows, cols) matrix on entry), then `samples[i] = 1 if u_i < probs[i] else 0`
/// with `u_i` uniform on [0, 1). `samples` may be `None` to compute probabilities only.
pub fn sigmoid_bernoulli<T: Real>(probs: &mut [T], cols: usize, bias: &[T], samples: Option<&mut [T]>, key: StreamKey) {
    debug_assert_eq!(bias.len(), cols);
    let sample_chunk = |ci: usize, p: &mut [T], s: Option<&mut [T]>| {
        for_each_row_segment(p, ci * CHUNK, cols, |seg, col| sigmoid_bias_inplace(seg, &bias[col..col + seg.len()]));
        if let Some(s) = s {
            bernoulli_chunk(p, s, key, ci);
        }
    };
    match samples {
        Some(samples) => {
            debug_assert_eq!(samples.len(), probs.len());
            probs
                .par_chunks_mut(CHUNK)
                .zip(samples.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(ci, (p, s))| sample_chunk(ci, p, Some(s)));
        }
        None => probs.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, p)| sample_chunk(ci, p, None)),
    }
}

/// `samples[i] = 1 if u_i < probs[i] else 0` for chunk `ci` of a larger array.
#[inline]
pub fn bernoulli_chunk<T: Real>(probs: &[T], samples: &mut [T], key: StreamKey, ci: usize) {
    let mut rng = stream(key.seed, key.step, key.purpose, ci as u64);
    for (s, &p) in samples.iter_mut().zip(probs) {
        *s = if T::uniform(&mut rng) < p { T::one() } else { T::zero() };
    }
}

/// Bernoulli draws: `samples[i] = 1 with probability probs[i]`.
pub fn bernoulli<T: Real>(probs: &[T], samples: &mut [T], key: StreamKey) {
    samples.par_chunks_mut(CHUNK).zip(probs.par_chunks(CHUNK)).enumerate().for_each(|(ci, (s, p))| bernoulli_chunk(p, s, key, ci));
}

/// Reparameterised Gaussian draws: `out = mean + scale * eps`, `eps ~ N(0, 1)` elementwise; `eps` is
/// written to `eps_out` when given (a VAE's backward pass needs it). `scale` has the length of `mean`,
/// or length 1 for one scale for all.
pub fn gaussian<T: Real>(mean: &[T], scale: &[T], out: &mut [T], eps_out: Option<&mut [T]>, key: StreamKey) {
    let scalar = scale.len() == 1;
    let body = |ci: usize, o: &mut [T], e: Option<&mut [T]>| {
        let start = ci * CHUNK;
        let mut rng = stream(key.seed, key.step, key.purpose, ci as u64);
        let m = &mean[start..start + o.len()];
        match e {
            Some(e) => {
                for (i, (o, e)) in o.iter_mut().zip(e.iter_mut()).enumerate() {
                    let z = T::normal(&mut rng);
                    let s = if scalar { scale[0] } else { scale[start + i] };
                    *e = z;
                    *o = m[i] + s * z;
                }
            }
            None => {
                for (i, o) in o.iter_mut().enumerate() {
                    let z = T::normal(&mut rng);
                    let s = if scalar { scale[0] } else { scale[start + i] };
                    *o = m[i] + s * z;
                }
            }
        }
    };
    match eps_out {
        Some(eps) => out.par_chunks_mut(CHUNK).zip(eps.par_chunks_mut(CHUNK)).enumerate().for_each(|(ci, (o, e))| body(ci, o, Some(e))),
        None => out.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, o)| body(ci, o, None)),
    }
}

/// Standard normal draws into `out`.
pub fn standard_normal<T: Real>(out: &mut [T], key: StreamKey) {
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, o)| {
        let mut rng = stream(key.seed, key.step, key.purpose, ci as u64);
        o.iter_mut().for_each(|x| *x = T::normal(&mut rng));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threads::with_threads;

    fn sigmoid64(x: f64) -> f64 {
        if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            x.exp() / (1.0 + x.exp())
        }
    }

    #[test]
    fn bernoulli_frequencies_match_probabilities() {
        // 40 probabilities, each drawn 5000 times: every frequency within 5 standard errors of p.
        let ps: Vec<f64> = (0..40).map(|i| i as f64 / 39.0).collect();
        let reps = 5000;
        let probs: Vec<f64> = (0..reps).flat_map(|_| ps.iter().copied()).collect();
        let mut samples = vec![0.0; probs.len()];
        bernoulli(&probs, &mut samples, StreamKey { seed: 3, step: 1, purpose: 1 });
        for (j, &p) in ps.iter().enumerate() {
            let freq = (0..reps).map(|r| samples[r * ps.len() + j]).sum::<f64>() / reps as f64;
            let se = (p * (1.0 - p) / reps as f64).sqrt();
            assert!((freq - p).abs() <= 5.0 * se + 1e-12, "p={p} freq={freq}");
        }
        assert!(samples.iter().all(|&s| s == 0.0 || s == 1.0));
    }

    #[test]
    fn sigmoid_bernoulli_probabilities_and_samples_are_consistent() {
        let (rows, cols) = (50, 300);
        let pre: Vec<f32> = (0..rows * cols).map(|i| ((i % 17) as f32 - 8.0) / 2.0).collect();
        let bias: Vec<f32> = (0..cols).map(|j| (j % 5) as f32 / 5.0).collect();
        let mut probs = pre.clone();
        let mut samples = vec![0.0f32; rows * cols];
        sigmoid_bernoulli(&mut probs, cols, &bias, Some(&mut samples), StreamKey { seed: 9, step: 0, purpose: 1 });
        for i in 0..rows * cols {
            let want = sigmoid64((pre[i] + bias[i % cols]) as f64);
            assert!((probs[i] as f64 - want).abs() < 1e-6);
        }
        // Samples are the same draws as a plain Bernoulli over the probabilities.
        let mut again = vec![0.0f32; rows * cols];
        bernoulli(&probs, &mut again, StreamKey { seed: 9, step: 0, purpose: 1 });
        assert_eq!(samples, again);
    }

    #[test]
    fn gaussian_mean_variance_and_eps() {
        let n = 100_000;
        let mean = vec![2.0f64; n];
        let scale = vec![3.0f64; n];
        let mut out = vec![0.0; n];
        let mut eps = vec![0.0; n];
        gaussian(&mean, &scale, &mut out, Some(&mut eps), StreamKey { seed: 5, step: 2, purpose: 3 });
        let m = out.iter().sum::<f64>() / n as f64;
        let v = out.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
        assert!((m - 2.0).abs() < 5.0 * 3.0 / (n as f64).sqrt(), "mean {m}");
        assert!((v - 9.0).abs() < 5.0 * 9.0 * (2.0 / n as f64).sqrt(), "var {v}");
        for i in 0..n {
            assert!((out[i] - (2.0 + 3.0 * eps[i])).abs() < 1e-12);
        }
        let mut scalar_out = vec![0.0; n];
        gaussian(&mean, &[3.0], &mut scalar_out, None, StreamKey { seed: 5, step: 2, purpose: 3 });
        assert_eq!(out, scalar_out, "a length-1 scale broadcasts, and eps_out does not change the draws");
    }

    #[test]
    fn draws_do_not_depend_on_thread_count() {
        let probs: Vec<f32> = (0..100_000).map(|i| (i % 100) as f32 / 100.0).collect();
        let run = |t| {
            let mut s = vec![0.0f32; probs.len()];
            let mut g = vec![0.0f32; probs.len()];
            with_threads(t, || {
                bernoulli(&probs, &mut s, StreamKey { seed: 1, step: 4, purpose: 2 });
                gaussian(&probs, &[1.0], &mut g, None, StreamKey { seed: 1, step: 4, purpose: 3 });
            });
            (s, g)
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(4));
    }
}
