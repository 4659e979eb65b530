//! The floating-point element type every kernel is generic over: `f32` (the default) or `f64`.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use num_traits::{Float, FloatConst, FromPrimitive, ToPrimitive};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// `f32` or `f64`.
pub trait Real:
    Float
    + FloatConst
    + FromPrimitive
    + ToPrimitive
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
{
    /// The NumPy name of the type, for messages.
    const DTYPE: &'static str;

    /// Converts an `f64` constant (panics never: every f64 is representable, possibly rounded).
    fn of(x: f64) -> Self;

    /// Widens to `f64` (exact for both types).
    fn f64(self) -> f64;

    /// A uniform draw from [0, 1) with the full mantissa of the type.
    fn uniform<R: Rng + ?Sized>(rng: &mut R) -> Self;

    /// A standard normal draw.
    fn normal<R: Rng + ?Sized>(rng: &mut R) -> Self;

    /// `C = alpha * op(A) * op(B) + beta * C` on faer views, for `beta` 0 (overwrite) or 1 (accumulate);
    /// `linalg::gemm` handles other betas.
    fn matmul(c: faer::MatMut<'_, Self>, beta: Self, a: faer::MatRef<'_, Self>, b: faer::MatRef<'_, Self>, alpha: Self, par: faer::Par);

    /// Runs `f` on this thread's pool of reusable buffers of this type (see `scratch`); `None` once
    /// the thread is shutting down.
    fn with_scratch_pool<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> Option<R>;
}

macro_rules! impl_real {
    ($t:ty, $name:literal, $bits:literal) => {
        impl Real for $t {
            const DTYPE: &'static str = $name;

            #[inline(always)]
            fn of(x: f64) -> Self {
                x as $t
            }

            #[inline(always)]
            fn f64(self) -> f64 {
                self as f64
            }

            #[inline(always)]
            fn uniform<R: Rng + ?Sized>(rng: &mut R) -> Self {
                // The top `mantissa + 1` bits of a 64-bit draw, scaled to [0, 1).
                let bits = rng.next_u64() >> (64 - $bits);
                bits as $t * (1.0 / (1u64 << $bits) as $t)
            }

            #[inline(always)]
            fn normal<R: Rng + ?Sized>(rng: &mut R) -> Self {
                <StandardNormal as Distribution<$t>>::sample(&StandardNormal, rng)
            }

            fn matmul(
                c: faer::MatMut<'_, Self>,
                beta: Self,
                a: faer::MatRef<'_, Self>,
                b: faer::MatRef<'_, Self>,
                alpha: Self,
                par: faer::Par,
            ) {
                debug_assert!(beta == 0.0 || beta == 1.0);
                let accum = if beta == 0.0 { faer::Accum::Replace } else { faer::Accum::Add };
                faer::linalg::matmul::matmul(c, accum, a, b, alpha, par);
            }

            fn with_scratch_pool<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> Option<R> {
                thread_local! {
                    static POOL: std::cell::RefCell<Vec<Vec<$t>>> = const { std::cell::RefCell::new(Vec::new()) };
                }
                POOL.try_with(|pool| f(&mut pool.borrow_mut())).ok()
            }
        }
    };
}

impl_real!(f32, "float32", 24);
impl_real!(f64, "float64", 53);

/// The index of the first NaN or infinity in `values`, if any. Blocks of 64 are tested without
/// branches (the loop vectorises: a whole-array check costs about as much as reading it), and only a
/// block that fails is searched element by element.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
pub fn first_non_finite<T: Real>(values: &[T]) -> Option<usize> {
    const BLOCK: usize = 64;
    for (b, block) in values.chunks(BLOCK).enumerate() {
        // `|x| < inf` is false for NaN and infinities; `&` (not `&&`) keeps the loop branch-free.
        let all_finite = block.iter().fold(true, |ok, &x| ok & (x.abs() < T::infinity()));
        if !all_finite {
            return block.iter().position(|x| !x.is_finite()).map(|i| b * BLOCK + i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_non_finite_finds_the_first_bad_value_anywhere() {
        for n in [0usize, 1, 63, 64, 65, 200] {
            let clean: Vec<f32> = (0..n).map(|i| i as f32 - 3.5).collect();
            assert_eq!(first_non_finite(&clean), None);
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                for at in [0, n / 2, n.saturating_sub(1)].into_iter().filter(|&i| i < n) {
                    let mut v = clean.clone();
                    v[at] = bad;
                    if at + 1 < n {
                        v[n - 1] = f32::NAN; // a later bad value does not hide the first
                    }
                    assert_eq!(first_non_finite(&v), Some(at), "n {n}, bad {bad} at {at}");
                }
            }
        }
        assert_eq!(first_non_finite(&[1.0f64, f64::MAX, f64::MIN_POSITIVE, -0.0]), None);
    }
}
