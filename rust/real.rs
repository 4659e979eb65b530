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
    fn matmul(
        c: faer::MatMut<'_, Self>,
        beta: Self,
        a: faer::MatRef<'_, Self>,
        b: faer::MatRef<'_, Self>,
        alpha: Self,
        par: faer::Par,
    );
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
        }
    };
}

impl_real!(f32, "float32", 24);
impl_real!(f64, "float64", 53);
