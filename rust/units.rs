//! The types of units an RBM layer can have, and everything that depends on the type.
//!
//! A layer of `n` units `s` with biases `a`, receiving the input `x` from the other layer (`W v` for
//! the hidden layer, `h W` for the visible one), has the energy `e(s; a) - s.x`. A unit type defines:
//!
//! - `e(s; a)`, the layer's own energy ([`Units::energy`]):
//!   Bernoulli `-a.s` (s in {0, 1}), Gaussian with unit variance `|s - a|^2 / 2` (s real);
//! - the conditional `p(s | x) ~ exp(-e(s; a) + s.x)`: its mean and a draw ([`Units::activate`],
//!   [`Units::mean`], [`Units::sample`]): Bernoulli `p(s_j = 1 | x) = sigmoid(a_j + x_j)`, Gaussian
//!   `s | x ~ N(a + x, I)`;
//! - the log of the sum (or integral) over the layer's states, which sums the layer out of the free
//!   energy ([`Units::log_sum`]): `log sum_s exp(-e(s; a) + s.x)` = Bernoulli
//!   `sum_j softplus(a_j + x_j)`, Gaussian `sum_j (a_j x_j + x_j^2 / 2) + n/2 log(2 pi)`;
//! - the layer alone (no weights, x = 0), AIS's base-rate model: its log partition function
//!   ([`Units::log_partition`]) and the part of `e(s; a)` that depends on the biases alone
//!   ([`Units::bias_energy`]: `|a|^2 / 2` for Gaussian units, 0 for Bernoulli ones), which changes
//!   along the annealing path from the base biases to the model's;
//! - which data it accepts ([`Units::first_outside`]).
//!
//! Every `match` on the unit type lives in this file: adding a type (such as a K-way softmax group)
//! adds a variant and its arm in each method here.

use multiversion::multiversion;
use rayon::prelude::*;

use crate::activations::{sigmoid, softplus, sum_pairs_f64};
use crate::error::{KernelError, Result};
use crate::real::Real;
use crate::sampling::{bernoulli, gaussian, sigmoid_bernoulli, StreamKey};

/// The type of a layer's units: binary, or real-valued with unit-variance Gaussian noise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Units {
    Bernoulli,
    Gaussian,
}

impl Units {
    /// The names [`Units::parse`] accepts, for messages.
    pub const NAMES: &'static str = "'bernoulli' or 'gaussian'";

    /// Parses "bernoulli" / "gaussian"; `param` names the argument in the error.
    pub fn parse(name: &str, param: &str) -> Result<Self> {
        match name {
            "bernoulli" => Ok(Units::Bernoulli),
            "gaussian" => Ok(Units::Gaussian),
            other => Err(KernelError::value(param, Self::NAMES, format!("'{other}'"))),
        }
    }

    /// The name [`Units::parse`] reads: "bernoulli", "gaussian".
    pub fn name(self) -> &'static str {
        match self {
            Units::Bernoulli => "bernoulli",
            Units::Gaussian => "gaussian",
        }
    }

    /// The name in messages: "Bernoulli", "Gaussian".
    pub fn title(self) -> &'static str {
        match self {
            Units::Bernoulli => "Bernoulli",
            Units::Gaussian => "Gaussian",
        }
    }

    /// Whether the states are 0 or 1: a batch of them is mostly zero on data like MNIST, so a
    /// product with it may go through its nonzeros (see `sparse`).
    pub fn binary(self) -> bool {
        match self {
            Units::Bernoulli => true,
            Units::Gaussian => false,
        }
    }

    /// Whether the layer has finitely many states (2^n for Bernoulli units), which an exact
    /// partition function can enumerate.
    pub fn countable(self) -> bool {
        self.binary()
    }

    /// The data these units accept, for messages: "values in [0, 1]", or "" for any real.
    pub fn range(self) -> &'static str {
        match self {
            Units::Bernoulli => "values in [0, 1]",
            Units::Gaussian => "",
        }
    }

    /// The first value outside [`Units::range`], if any.
    pub fn first_outside<T: Real>(self, values: &[T]) -> Option<T> {
        match self {
            Units::Bernoulli => values.iter().copied().find(|&x| x < T::zero() || x > T::one()),
            Units::Gaussian => None,
        }
    }

    /// The conditional of a layer, for rows of width `bias.len()`: on entry `out` holds the inputs `x`
    /// (without the bias), on return the means of `s | x`; with `samples`, also a draw of s.
    pub fn activate<T: Real>(self, out: &mut [T], bias: &[T], samples: Option<&mut [T]>, key: StreamKey) {
        match self {
            Units::Bernoulli => sigmoid_bernoulli(out, bias.len(), bias, samples, key),
            Units::Gaussian => {
                out.par_chunks_mut(bias.len()).for_each(|row| row.iter_mut().zip(bias).for_each(|(x, &a)| *x += a));
                if let Some(s) = samples {
                    gaussian(out, &[T::one()], s, None, key);
                }
            }
        }
    }

    /// The mean of one unit given its total input `a + x`.
    #[inline(always)]
    pub fn mean<T: Real>(self, total_input: T) -> T {
        match self {
            Units::Bernoulli => sigmoid(total_input),
            Units::Gaussian => total_input,
        }
    }

    /// `out` = a draw of units with the given means.
    pub fn sample<T: Real>(self, mean: &[T], out: &mut [T], key: StreamKey) {
        match self {
            Units::Bernoulli => bernoulli(mean, out, key),
            Units::Gaussian => gaussian(mean, &[T::one()], out, None, key),
        }
    }

    /// `e(s; a)` of one state `s` in float64: `-a.s` (Bernoulli) or `|s - a|^2 / 2` (Gaussian).
    pub fn energy<T: Real>(self, s: &[T], bias: &[T]) -> f64 {
        match self {
            Units::Bernoulli => -dot_f64(s, bias),
            Units::Gaussian => sum_pairs_f64(s, bias, |x, b| 0.5 * (x - b).f64().powi(2)),
        }
    }

    /// `log sum_s exp(-e(s; a) + s.x)` over the states of one layer given its input `x` (without the
    /// bias), in float64 lanes: `sum_j softplus(a_j + x_j)` (Bernoulli) or the Gaussian integral
    /// `sum_j (a_j x_j + x_j^2 / 2) + n/2 log(2 pi)`.
    pub fn log_sum<T: Real>(self, x: &[T], bias: &[T]) -> f64 {
        match self {
            Units::Bernoulli => softplus_sum(x, bias),
            // In float64: x^2 overflows float32 long before the free energy does.
            Units::Gaussian => {
                sum_pairs_f64(x, bias, |p, c| c.f64() * p.f64() + 0.5 * p.f64() * p.f64())
                    + 0.5 * bias.len() as f64 * (2.0 * std::f64::consts::PI).ln()
            }
        }
    }

    /// [`Units::log_sum`] without its constant [`Units::log_sum_constant`], each term formed in
    /// float64 and summed in order: `sum_j softplus(a_j + x_j)` (Bernoulli, see [`softplus_sum_f64`])
    /// or `sum_j ((a_j + x_j)^2 - a_j^2) / 2` (Gaussian). The exact partition function sums it over
    /// every state of the other layer.
    pub fn log_sum_f64<T: Real>(self, x: &[T], bias: &[T]) -> f64 {
        match self {
            Units::Bernoulli => softplus_sum_f64(x.iter().zip(bias).map(|(&p, &b)| p.f64() + b.f64())),
            Units::Gaussian => x
                .iter()
                .zip(bias)
                .map(|(&p, &b)| {
                    let (p, b) = (p.f64(), b.f64());
                    0.5 * (b + p) * (b + p) - 0.5 * b * b
                })
                .sum(),
        }
    }

    /// The constant term of [`Units::log_sum`] for `n` units: `n/2 log(2 pi)` for Gaussian units.
    pub fn log_sum_constant(self, n: usize) -> f64 {
        match self {
            Units::Bernoulli => 0.0,
            Units::Gaussian => 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln(),
        }
    }

    /// The part of `e(s; a)` that depends on the biases alone: `|a|^2 / 2` (Gaussian), 0 (Bernoulli).
    pub fn bias_energy<T: Real>(self, bias: &[T]) -> f64 {
        match self {
            Units::Bernoulli => 0.0,
            Units::Gaussian => 0.5 * bias.iter().map(|&a| a.f64() * a.f64()).sum::<f64>(),
        }
    }

    /// `log sum_s exp(-e(s; a))`, the log partition function of the layer alone (no weights):
    /// `sum_j softplus(a_j)` (Bernoulli) or `n/2 log(2 pi)` (Gaussian: exp(-|s - a|^2 / 2)
    /// integrates to (2 pi)^(n/2) whatever a).
    pub fn log_partition<T: Real>(self, bias: &[T]) -> f64 {
        match self {
            Units::Bernoulli => bias.iter().map(|&a| softplus(a.f64())).sum::<f64>(),
            Units::Gaussian => 0.5 * bias.len() as f64 * (2.0 * std::f64::consts::PI).ln(),
        }
    }
}

/// `sum_j softplus(x_j + bias_j)` in float64: the terms are computed in blocks of 8 (vectorised) and
/// summed in 8 float64 lanes combined in a fixed order.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl", "x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn softplus_sum<T: Real>(x: &[T], bias: &[T]) -> f64 {
    sum_pairs_f64(x, bias, |p, c| softplus(p + c))
}

/// `sum_i x_i y_i` in float64 lanes (fixed order).
#[multiversion(targets = "simd")]
fn dot_f64<T: Real>(x: &[T], y: &[T]) -> f64 {
    sum_pairs_f64(x, y, |a, b| a * b)
}

/// `sum_i softplus(x_i)` in float64, as `sum_i max(x_i, 0) + ln prod_i (1 + exp(-|x_i|))`: one
/// logarithm per 512 terms instead of one `log1p` per term (the exact log Z sums a softplus for every
/// state and unit: 51 million for 16 hidden x 784 visible units). Each factor lies in (1, 2], so a
/// product of 512 stays below 2^512; the result differs from the term-by-term sum by rounding only.
pub fn softplus_sum_f64(xs: impl Iterator<Item = f64>) -> f64 {
    const TERMS_PER_LOG: usize = 512;
    let (mut linear, mut logs, mut product, mut n) = (0.0f64, 0.0f64, 1.0f64, 0usize);
    for x in xs {
        linear += x.max(0.0);
        product *= 1.0 + (-x.abs()).exp();
        n += 1;
        if n == TERMS_PER_LOG {
            logs += product.ln();
            (product, n) = (1.0, 0);
        }
    }
    linear + logs + product.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Units; 2] = [Units::Bernoulli, Units::Gaussian];

    /// `log sum_s exp(-e(s; a) + s x)` of one unit by brute force: the two states of a Bernoulli unit,
    /// a fine grid over s for a Gaussian one.
    fn log_sum_oracle(units: Units, x: f64, a: f64) -> f64 {
        match units {
            Units::Bernoulli => (1.0 + (a + x).exp()).ln(),
            Units::Gaussian => {
                let (lo, hi, n) = (-40.0, 40.0, 400_000);
                let ds = (hi - lo) / n as f64;
                let total: f64 = (0..n).map(|k| lo + (k as f64 + 0.5) * ds).map(|s| (-0.5 * (s - a) * (s - a) + s * x).exp() * ds).sum();
                total.ln()
            }
        }
    }

    #[test]
    fn log_sums_match_the_sum_over_states() {
        let x = [0.3f64, -1.2, 2.0];
        let a = [-0.5f64, 0.7, 0.1];
        for units in ALL {
            let want: f64 = (0..3).map(|j| log_sum_oracle(units, x[j], a[j])).sum();
            assert!((units.log_sum(&x, &a) - want).abs() < 1e-8, "{units:?}");
            let f64_form = units.log_sum_f64(&x, &a) + units.log_sum_constant(3);
            assert!((f64_form - want).abs() < 1e-8, "{units:?}");
            let alone: f64 = (0..3).map(|j| log_sum_oracle(units, 0.0, a[j])).sum();
            assert!((units.log_partition(&a) - alone).abs() < 1e-8, "{units:?}");
        }
    }

    #[test]
    fn energy_and_bias_energy_follow_their_definitions() {
        let (s, a) = ([1.0f64, 0.0, 1.0], [0.5f64, -2.0, 1.5]);
        assert_eq!(Units::Bernoulli.energy(&s, &a), -2.0);
        assert_eq!(Units::Gaussian.energy(&s, &a), 0.5 * (0.25 + 4.0 + 0.25));
        assert_eq!(Units::Bernoulli.bias_energy(&a), 0.0);
        assert_eq!(Units::Gaussian.bias_energy(&a), 0.5 * (0.25 + 4.0 + 2.25));
    }

    #[test]
    fn means_are_the_conditional_expectations() {
        for units in ALL {
            for t in [-3.0f64, 0.0, 0.5, 4.0] {
                let want = match units {
                    Units::Bernoulli => 1.0 / (1.0 + (-t).exp()),
                    Units::Gaussian => t,
                };
                assert!((units.mean(t) - want).abs() < 1e-15);
            }
        }
    }

    #[test]
    fn activate_gives_means_and_draws_with_those_means() {
        let (rows, cols) = (20_000, 2);
        let bias = [0.4f64, -1.0];
        let x: Vec<f64> = (0..rows * cols).map(|i| if i % 2 == 0 { 0.6 } else { 0.5 }).collect();
        for units in ALL {
            let mut mean = x.clone();
            let mut draws = vec![0.0; rows * cols];
            units.activate(&mut mean, &bias, Some(&mut draws), StreamKey { seed: 1, step: 2, purpose: 3 });
            for j in 0..cols {
                let want = units.mean(x[j] + bias[j]);
                assert!((mean[j] - want).abs() < 1e-12);
                let avg = (0..rows).map(|r| draws[r * cols + j]).sum::<f64>() / rows as f64;
                let var = match units {
                    Units::Bernoulli => want * (1.0 - want),
                    Units::Gaussian => 1.0,
                };
                assert!((avg - want).abs() < 5.0 * (var / rows as f64).sqrt(), "{units:?}: {avg} vs {want}");
            }
            if units.binary() {
                assert!(draws.iter().all(|&d| d == 0.0 || d == 1.0));
            }
            // The same draws as sampling from the means.
            let mut again = vec![0.0; rows * cols];
            units.sample(&mean, &mut again, StreamKey { seed: 1, step: 2, purpose: 3 });
            assert_eq!(draws, again, "{units:?}");
        }
    }

    #[test]
    fn softplus_sum_f64_matches_the_term_by_term_sum() {
        for n in [0usize, 1, 7, 511, 512, 513, 2000] {
            let xs: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7311).sin() * 40.0).collect();
            let want: f64 = xs.iter().map(|&x| softplus(x)).sum();
            let got = softplus_sum_f64(xs.iter().copied());
            assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{n}: {got} vs {want}");
        }
    }

    #[test]
    fn ranges_and_names() {
        assert_eq!(Units::Bernoulli.first_outside(&[0.0f32, 1.0, 0.5, 1.5, -1.0]), Some(1.5));
        assert_eq!(Units::Gaussian.first_outside(&[-7.0f32, 9.0]), None);
        assert_eq!(Units::parse("gaussian", "visible").unwrap(), Units::Gaussian);
        assert!(Units::parse("softmax", "visible").unwrap_err().to_string().contains("'bernoulli' or 'gaussian'"));
    }
}
