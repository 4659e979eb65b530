//! Elementwise nonlinearities, their derivatives, and sums accumulated in float64.
//!
//! - `sigmoid(x) = 1 / (1 + exp(-x))`, in [0, 1] for every x: its exponential is clamped, which
//!   changes nothing in float32/float64 precision;
//! - `softplus(x) = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))`, `log_sigmoid(x) = -softplus(-x)`;
//! - `relu(x) = max(x, 0)`, `tanh`, and the identity;
//! - binary cross-entropy on logits `l` with targets `y`: `softplus(l) - y l`, gradient `sigmoid(l) - y`.
//!
//! Slice kernels run in parallel over fixed chunks, so results do not depend on the number of threads.

use multiversion::multiversion;
use rayon::prelude::*;

use crate::error::{KernelError, Result};
use crate::real::Real;
use crate::rng::CHUNK;

/// A nonlinearity of a dense layer or a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Sigmoid,
    Tanh,
    Relu,
    Softplus,
}

impl Activation {
    pub const NAMES: &'static str = "'identity', 'sigmoid', 'tanh', 'relu' or 'softplus'";

    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "identity" | "linear" => Activation::Identity,
            "sigmoid" | "logistic" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "relu" => Activation::Relu,
            "softplus" => Activation::Softplus,
            other => return Err(KernelError::value("activation", Self::NAMES, format!("'{other}'"))),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::Softplus => "softplus",
        }
    }

    /// f(x).
    #[inline(always)]
    pub fn apply<T: Real>(self, x: T) -> T {
        match self {
            Activation::Identity => x,
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => tanh(x),
            Activation::Relu => relu(x),
            Activation::Softplus => softplus(x),
        }
    }

    /// f'(x), from the input x.
    #[inline(always)]
    pub fn derivative<T: Real>(self, x: T) -> T {
        match self {
            Activation::Identity => T::one(),
            Activation::Sigmoid => {
                let s = sigmoid(x);
                s * (T::one() - s)
            }
            Activation::Tanh => {
                let t = tanh(x);
                T::one() - t * t
            }
            Activation::Relu => {
                if x > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::Softplus => sigmoid(x),
        }
    }

    /// f'(x) written through the output y = f(x), as backpropagation stores only outputs.
    #[inline(always)]
    pub fn derivative_from_output<T: Real>(self, y: T) -> T {
        match self {
            Activation::Identity => T::one(),
            Activation::Sigmoid => y * (T::one() - y),
            Activation::Tanh => T::one() - y * y,
            Activation::Relu => {
                if y > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            // softplus' = sigmoid(x) = 1 - exp(-y)
            Activation::Softplus => -(-y).exp_m1(),
        }
    }
}

/// exp(x) for the hot loops: a branch-free Cephes-style polynomial in float32 (error below 2 ulp,
/// vectorised by LLVM), the correctly rounded libm exp in float64.
#[inline(always)]
pub fn exp_fast<T: Real>(x: T) -> T {
    if std::mem::size_of::<T>() == 4 {
        T::of(expf_poly(x.f64() as f32) as f64)
    } else {
        x.exp()
    }
}

#[inline(always)]
fn expf_poly(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND; // round(x / ln 2)
    let r = x - n * LN2_HI - n * LN2_LO; // |r| <= ln(2) / 2
    let p = ((((1.987_569_2e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 5e-1;
    let y = p * r * r + r + 1.0;
    // 2^n from the integer in the low mantissa bits of t.
    let bits = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    f32::from_bits(((bits + 127) << 23) as u32) * y
}

/// The logistic function 1 / (1 + exp(-x)), in [0, 1] for every x.
#[inline(always)]
pub fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + exp_fast(-x))
}

/// log(1 + exp(x)) without overflow: `max(x, 0) + log1p(exp(-|x|))`. Branch-free polynomial forms in
/// float32 (absolute error below 2e-7, vectorised by LLVM); libm in float64.
#[inline(always)]
pub fn softplus<T: Real>(x: T) -> T {
    if std::mem::size_of::<T>() == 4 {
        let x = x.f64() as f32;
        T::of((x.max(0.0) + log1p_unit(expf_poly(-x.abs()))) as f64)
    } else {
        x.max(T::zero()) + (-x.abs()).exp().ln_1p()
    }
}

/// log(1 + u) for u in [0, 1], float32: `2 atanh(t)` with `t = u / (2 + u)` in [0, 1/3], by its odd
/// series to t^13 (truncation below 5e-8 relative), accurate for tiny u as well.
#[inline(always)]
fn log1p_unit(u: f32) -> f32 {
    let t = u / (2.0 + u);
    let t2 = t * t;
    let series = 1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0 + t2 * (1.0 / 9.0 + t2 * (1.0 / 11.0 + t2 * (1.0 / 13.0))))));
    2.0 * t * series
}

/// Binary cross-entropy on logits for one row, fused with its gradient:
/// returns `sum_j softplus(l_j) - y_j l_j` (float64) and, if `delta` is given, writes
/// `delta_j = (sigmoid(l_j) - y_j) * scale`. One exponential and one log per element: with
/// `e = exp(-|l|)`, `softplus(l) = max(l, 0) + log1p(e)` and `sigmoid(l) = 1 / (1 + e)` or `e / (1 + e)`.
#[inline]
pub fn bce_with_logits<T: Real>(y: &[T], logits: &[T], delta: Option<&mut [T]>, scale: T) -> f64 {
    debug_assert_eq!(y.len(), logits.len());
    match delta {
        Some(d) => bce_fused(y, logits, d, scale),
        None => bce_loss(y, logits),
    }
}

#[inline(always)]
fn bce_term<T: Real>(y: T, l: T) -> (T, T) {
    let e = exp_fast(-l.abs());
    let one = T::one();
    let log1p_e = if std::mem::size_of::<T>() == 4 { T::of(log1p_unit(e.f64() as f32) as f64) } else { e.ln_1p() };
    let loss = l.max(T::zero()) + log1p_e - y * l;
    let inv = one / (one + e);
    let sig = if l >= T::zero() { inv } else { e * inv };
    (loss, sig - y)
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl", "x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn bce_fused<T: Real>(y: &[T], logits: &[T], delta: &mut [T], scale: T) -> f64 {
    // Blocks of 16: the terms vectorise in T, the sum goes to float64 lanes in a fixed order.
    let mut lanes = [0.0f64; 16];
    let mut total = 0.0f64;
    let n = y.len();
    let full = n / 16 * 16;
    for ((yc, lc), dc) in y[..full].chunks_exact(16).zip(logits[..full].chunks_exact(16)).zip(delta[..full].chunks_exact_mut(16)) {
        let mut terms = [T::zero(); 16];
        for i in 0..16 {
            let (loss, g) = bce_term(yc[i], lc[i]);
            terms[i] = loss;
            dc[i] = g * scale;
        }
        for i in 0..16 {
            lanes[i] += terms[i].f64();
        }
    }
    for i in full..n {
        let (loss, g) = bce_term(y[i], logits[i]);
        total += loss.f64();
        delta[i] = g * scale;
    }
    lanes.iter().sum::<f64>() + total
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl", "x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn bce_loss<T: Real>(y: &[T], logits: &[T]) -> f64 {
    let mut lanes = [0.0f64; 16];
    let mut total = 0.0f64;
    let n = y.len();
    let full = n / 16 * 16;
    for (yc, lc) in y[..full].chunks_exact(16).zip(logits[..full].chunks_exact(16)) {
        let mut terms = [T::zero(); 16];
        for i in 0..16 {
            terms[i] = bce_term(yc[i], lc[i]).0;
        }
        for i in 0..16 {
            lanes[i] += terms[i].f64();
        }
    }
    for i in full..n {
        total += bce_term(y[i], logits[i]).0.f64();
    }
    lanes.iter().sum::<f64>() + total
}

/// The sum of `f(x)` over a slice, accumulated in float64 in 8 independent lanes (so the loop
/// vectorises) and combined in a fixed order (so the result is deterministic).
#[inline(always)]
pub fn sum_f64<T: Real>(xs: &[T], f: impl Fn(T) -> T) -> f64 {
    sum_pairs_f64(xs, xs, |x, _| f(x))
}

/// `sum_i f(x_i, y_i)` over two slices, accumulated like [`sum_f64`].
#[inline(always)]
pub fn sum_pairs_f64<T: Real, R: Real>(x: &[T], y: &[T], f: impl Fn(T, T) -> R) -> f64 {
    let mut lanes = [0.0f64; 8];
    let full = x.len().min(y.len()) / 8 * 8;
    for (a, b) in x[..full].chunks_exact(8).zip(y[..full].chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] += f(a[l], b[l]).f64();
        }
    }
    let rest: f64 = (full..x.len().min(y.len())).map(|i| f(x[i], y[i]).f64()).sum();
    lanes.iter().sum::<f64>() + rest
}

/// A running `log sum_i exp(x_i)` over blocks of float64 terms, kept as `max + ln(sum)` with
/// `max = max_i x_i` and `sum = sum_i exp(x_i - max)`, so that no exponential overflows. Blocks are
/// added in the caller's (fixed) order: the result does not depend on the number of threads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogSumExp {
    pub max: f64,
    pub sum: f64,
}

impl LogSumExp {
    /// No terms: `log 0 = -inf`.
    pub const EMPTY: LogSumExp = LogSumExp { max: f64::NEG_INFINITY, sum: 0.0 };

    /// The terms of one block.
    pub fn of(xs: &[f64]) -> Self {
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            return LogSumExp { max, sum: 0.0 };
        }
        LogSumExp { max, sum: xs.iter().map(|x| (x - max).exp()).sum() }
    }

    /// The terms of both.
    pub fn merge(self, other: LogSumExp) -> Self {
        if self.max == f64::NEG_INFINITY {
            return other;
        }
        if other.max == f64::NEG_INFINITY {
            return self;
        }
        let max = self.max.max(other.max);
        LogSumExp { max, sum: self.sum * (self.max - max).exp() + other.sum * (other.max - max).exp() }
    }

    /// `log sum_i exp(x_i)`.
    pub fn value(self) -> f64 {
        self.max + self.sum.ln()
    }

    /// `log (1/n) sum_i exp(x_i)`: the log of the mean of `n` terms.
    pub fn log_mean(self, n: usize) -> f64 {
        self.max + (self.sum / n as f64).ln()
    }
}

/// log(sigmoid(x)) = -softplus(-x).
#[inline(always)]
pub fn log_sigmoid<T: Real>(x: T) -> T {
    -softplus(-x)
}

#[inline(always)]
pub fn relu<T: Real>(x: T) -> T {
    if x > T::zero() {
        x
    } else {
        T::zero()
    }
}

#[inline(always)]
pub fn tanh<T: Real>(x: T) -> T {
    x.tanh()
}

/// Calls `f(segment, first_column)` for the pieces of `chunk` (which starts at flat index `offset` of a
/// row-major matrix with `cols` columns) that lie within one row each.
#[inline(always)]
pub(crate) fn for_each_row_segment<T>(chunk: &mut [T], offset: usize, cols: usize, mut f: impl FnMut(&mut [T], usize)) {
    let mut col = offset % cols;
    let mut rest = chunk;
    while !rest.is_empty() {
        let take = (cols - col).min(rest.len());
        let (seg, tail) = rest.split_at_mut(take);
        f(seg, col);
        rest = tail;
        col = 0;
    }
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl", "x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
pub(crate) fn sigmoid_bias_inplace<T: Real>(x: &mut [T], bias: &[T]) {
    for (v, &b) in x.iter_mut().zip(bias) {
        *v = sigmoid(*v + b);
    }
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl", "x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn apply_inplace<T: Real>(act: Activation, x: &mut [T]) {
    match act {
        Activation::Identity => {}
        Activation::Sigmoid => x.iter_mut().for_each(|v| *v = sigmoid(*v)),
        Activation::Tanh => x.iter_mut().for_each(|v| *v = tanh(*v)),
        Activation::Relu => x.iter_mut().for_each(|v| *v = relu(*v)),
        Activation::Softplus => x.iter_mut().for_each(|v| *v = softplus(*v)),
    }
}

/// `x <- f(x + bias)` for a row-major (rows, cols) matrix `x` and a bias of length `cols`.
pub fn bias_activation<T: Real>(act: Activation, x: &mut [T], cols: usize, bias: &[T]) {
    debug_assert_eq!(bias.len(), cols);
    x.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, chunk)| {
        for_each_row_segment(chunk, ci * CHUNK, cols, |seg, col| {
            let b = &bias[col..col + seg.len()];
            if act == Activation::Sigmoid {
                sigmoid_bias_inplace(seg, b);
            } else {
                seg.iter_mut().zip(b).for_each(|(v, &bb)| *v += bb);
                apply_inplace(act, seg);
            }
        });
    });
}

/// `out = f(x)` elementwise.
pub fn apply<T: Real>(act: Activation, x: &[T], out: &mut [T]) {
    out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(o, i)| {
        o.copy_from_slice(i);
        apply_inplace(act, o);
    });
}

/// `out = f'(x)` elementwise.
pub fn apply_derivative<T: Real>(act: Activation, x: &[T], out: &mut [T]) {
    out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(o, i)| {
        o.iter_mut().zip(i).for_each(|(o, &v)| *o = act.derivative(v));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn oracle(act: Activation, x: f64) -> (f64, f64) {
        // Float64 closed forms, written independently of the kernels.
        match act {
            Activation::Identity => (x, 1.0),
            Activation::Sigmoid => {
                let s = if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { x.exp() / (1.0 + x.exp()) };
                (s, s * (1.0 - s))
            }
            Activation::Tanh => (x.tanh(), 1.0 - x.tanh().powi(2)),
            Activation::Relu => (x.max(0.0), if x > 0.0 { 1.0 } else { 0.0 }),
            Activation::Softplus => {
                let sp = if x > 30.0 { x + (-x).exp() } else { x.exp().ln_1p() };
                (sp, 1.0 / (1.0 + (-x).exp()))
            }
        }
    }

    const ALL: [Activation; 5] = [Activation::Identity, Activation::Sigmoid, Activation::Tanh, Activation::Relu, Activation::Softplus];

    #[test]
    fn values_and_derivatives_match_float64_oracle() {
        let xs: Vec<f64> = (-400..=400).map(|i| i as f64 * 0.1).chain([-1e4, -700.0, 700.0, 1e4]).collect();
        for act in ALL {
            for &x in &xs {
                let (f, d) = oracle(act, x);
                let tol = |v: f64| 1e-12 * (1.0 + v.abs());
                assert!((act.apply(x) - f).abs() <= tol(f), "{act:?}({x})");
                assert!((act.derivative(x) - d).abs() <= tol(d), "{act:?}'({x})");
                assert!(
                    (act.derivative_from_output(act.apply(x)) - d).abs() <= 1e-9 * (1.0 + d.abs())
                        || act == Activation::Softplus && x > 30.0
                );
                // float32 kernels: relative error of a few ulp
                let x32 = x as f32;
                let (f32_want, _) = oracle(act, x32 as f64);
                let got = act.apply(x32) as f64;
                assert!((got - f32_want).abs() <= 4e-7 * (1.0 + f32_want.abs()), "{act:?}({x32}) = {got}, want {f32_want}");
                assert!(got.is_finite());
            }
        }
    }

    #[test]
    fn expf_poly_is_accurate_over_its_range() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let rel = ((expf_poly(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 3.0 * f32::EPSILON as f64, "worst relative error {worst}");
        assert_eq!(expf_poly(-1e30), expf_poly(-87.0));
        assert!(expf_poly(1e30).is_finite());
    }

    #[test]
    fn float32_softplus_is_accurate_everywhere() {
        let mut worst = 0.0f64;
        let mut x = -120.0f64;
        while x < 120.0 {
            let want = if x > 30.0 { x + (-x).exp() } else { x.exp().ln_1p() };
            let got = softplus(x as f32) as f64;
            let want32 = {
                let x = x as f32 as f64;
                if x > 30.0 {
                    x + (-x).exp()
                } else {
                    x.exp().ln_1p()
                }
            };
            worst = worst.max((got - want32).abs() / (1.0 + want.abs()));
            x += 0.00731;
        }
        assert!(worst < 2.5e-7, "worst error {worst}");
        assert!((log1p_unit(1e-10) as f64 - 1e-10).abs() < 1e-16);
        assert!((log1p_unit(1.0) as f64 - 2f64.ln()).abs() < 1e-7);
    }

    #[test]
    fn fused_bce_matches_float64_oracle() {
        let n = 1000; // not a multiple of 16: the tail path runs too
        let y: Vec<f64> = (0..n).map(|i| ((i * 7) % 11) as f64 / 10.0).collect();
        let l: Vec<f64> = (0..n).map(|i| (i as f64 - 500.0) * 0.37).collect();
        let want: f64 = y.iter().zip(&l).map(|(&y, &l)| (if l > 30.0 { l + (-l).exp() } else { l.exp().ln_1p() }) - y * l).sum();
        for scale in [1.0, 0.25] {
            let mut d = vec![0.0; n];
            let got = bce_with_logits(&y, &l, Some(&mut d), scale);
            assert!((got - want).abs() < 1e-9 * want.abs(), "{got} vs {want}");
            for i in 0..n {
                let s = 1.0 / (1.0 + (-l[i]).exp());
                assert!((d[i] - (s - y[i]) * scale).abs() < 1e-12);
            }
            assert_eq!(bce_with_logits(&y, &l, None, scale), got);
        }
        // float32: close to the float64 value of the float32 inputs
        let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
        let l32: Vec<f32> = l.iter().map(|&v| v as f32).collect();
        let mut d32 = vec![0.0f32; n];
        let got32 = bce_with_logits(&y32, &l32, Some(&mut d32), 1.0);
        assert!((got32 - want).abs() < 1e-5 * want.abs(), "{got32} vs {want}");
        assert!(d32.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn sum_f64_matches_plain_sum() {
        let xs: Vec<f32> = (0..1003).map(|i| i as f32 * 0.5).collect();
        let want: f64 = xs.iter().map(|&x| (x * 2.0) as f64).sum();
        assert_eq!(sum_f64(&xs, |x| x * 2.0), want);
    }

    #[test]
    fn log_sum_exp_matches_the_direct_sum_and_survives_large_terms() {
        let xs: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin() * 5.0).collect();
        let want = xs.iter().map(|x| x.exp()).sum::<f64>().ln();
        let whole = LogSumExp::of(&xs);
        let blocks = xs.chunks(7).fold(LogSumExp::EMPTY, |acc, b| acc.merge(LogSumExp::of(b)));
        assert!((whole.value() - want).abs() < 1e-12 && (blocks.value() - want).abs() < 1e-12);
        assert!((blocks.log_mean(50) - (want - 50f64.ln())).abs() < 1e-12);
        // Terms far beyond exp's range, and blocks of zeros (-inf) on either side.
        let big = LogSumExp::of(&[1000.0, 1000.0]).merge(LogSumExp::of(&[f64::NEG_INFINITY]));
        assert!((big.value() - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(LogSumExp::EMPTY.merge(LogSumExp::of(&[f64::NEG_INFINITY])).value(), f64::NEG_INFINITY);
    }

    #[test]
    fn bias_activation_matches_scalar_loop() {
        let (rows, cols) = (7, 1000); // chunks cross row boundaries
        let x0: Vec<f64> = (0..rows * cols).map(|i| ((i * 37 % 101) as f64 - 50.0) / 10.0).collect();
        let bias: Vec<f64> = (0..cols).map(|j| (j % 13) as f64 / 13.0 - 0.5).collect();
        for act in ALL {
            let mut x = x0.clone();
            bias_activation(act, &mut x, cols, &bias);
            for i in 0..rows * cols {
                let want = oracle(act, x0[i] + bias[i % cols]).0;
                assert!((x[i] - want).abs() < 1e-12 * (1.0 + want.abs()));
            }
        }
    }

    proptest! {
        #[test]
        fn sigmoid_and_softplus_finite_and_bounded(x in -1e30f64..1e30) {
            let s = sigmoid(x as f32);
            prop_assert!((0.0..=1.0).contains(&s));
            let sp = softplus(x);
            prop_assert!(sp.is_finite() && sp >= 0.0 && sp >= x);
            prop_assert!(log_sigmoid(x) <= 0.0);
        }
    }
}
