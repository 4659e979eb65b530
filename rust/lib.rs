//! deepgm's compute core: the kernels that train restricted Boltzmann machines, deep belief networks,
//! deep autoencoders and variational autoencoders on the CPU.
//!
//! The kernels are plain Rust over row-major slices, generic over `f32`/`f64`, parallel with rayon,
//! and know nothing of Python. The `python` feature (turned on by maturin) adds the `deepgm._core`
//! extension module in `py/`, which only converts arrays, releases the GIL and maps errors.

pub mod activations;
pub mod ais;
pub mod batch;
pub mod collaborative;
pub mod dense;
pub mod error;
pub mod linalg;
pub mod optim;
pub mod rbm;
pub mod real;
pub mod replicated_softmax;
pub mod rng;
pub mod sampling;
pub mod scratch;
pub mod softmax;
pub mod sparse;
pub mod threads;
pub mod units;
pub mod vae;
pub mod zero_columns;

#[cfg(feature = "python")]
mod py;
