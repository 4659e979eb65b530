//! Seeded random streams that do not depend on the number of threads.
//!
//! A kernel never draws from "the thread's generator". Its work is cut into chunks of a fixed size
//! ([`CHUNK`] elements), and chunk `i` of the draw `purpose` at training step `step` reads the stream
//! `stream(seed, step, purpose, i)`. Whichever thread runs a chunk, it sees the same numbers, so a
//! model trained with a given seed is bit-identical on 1, 2 or 64 threads.

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Elements per random stream (a multiple of 64 keeps chunks aligned to cache lines).
pub const CHUNK: usize = 4096;

/// Purposes: the different draws of one step read unrelated streams.
pub mod purpose {
    pub const HIDDEN: u64 = 1;
    pub const VISIBLE: u64 = 2;
    pub const NOISE: u64 = 3;
    pub const DROPOUT: u64 = 4;
    pub const PSEUDO_LIKELIHOOD: u64 = 5;
    pub const AIS: u64 = 6;
    pub const LATENT: u64 = 7;
    pub const USER: u64 = 8;
}

/// The SplitMix64 finaliser: a bijection of u64 whose output bits all depend on all input bits.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The generator of chunk `chunk` of draw `purpose` at step `step` under `seed`.
pub fn stream(seed: u64, step: u64, purpose: u64, chunk: u64) -> Xoshiro256PlusPlus {
    // Chain the four coordinates through the mixer so that nearby tuples give unrelated seeds.
    let mut h = mix(seed ^ 0x6a09_e667_f3bc_c908);
    h = mix(h ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    h = mix(h ^ purpose.wrapping_mul(0xc2b2_ae3d_27d4_eb4f));
    h = mix(h ^ chunk.wrapping_mul(0x1656_67b1_9e37_79f9));
    Xoshiro256PlusPlus::seed_from_u64(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::Real;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |s, t, p, c| {
            let mut r = stream(s, t, p, c);
            (0..4).map(|_| f64::uniform(&mut r)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, 2, 3, 4), draw(1, 2, 3, 4));
        let base = draw(1, 2, 3, 4);
        for other in [draw(2, 2, 3, 4), draw(1, 3, 3, 4), draw(1, 2, 4, 4), draw(1, 2, 3, 5)] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn uniform_moments_and_range() {
        let mut r = stream(7, 0, 0, 0);
        let n = 200_000;
        let xs: Vec<f32> = (0..n).map(|_| f32::uniform(&mut r)).collect();
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard errors: 1/sqrt(12 n) ~ 6.5e-4 for the mean; 5 sigma bounds.
        assert!((mean - 0.5).abs() < 3.3e-3, "mean {mean}");
        assert!((var - 1.0 / 12.0).abs() < 2e-3, "var {var}");
    }

    #[test]
    fn normal_moments() {
        let mut r = stream(11, 0, 0, 0);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| f64::normal(&mut r)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let kurt = xs.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n as f64 / (var * var);
        assert!(mean.abs() < 0.0112, "mean {mean}"); // 5 / sqrt(n)
        assert!((var - 1.0).abs() < 0.016, "var {var}"); // 5 sqrt(2/n)
        assert!((kurt - 3.0).abs() < 0.1, "kurtosis {kurt}");
    }
}
