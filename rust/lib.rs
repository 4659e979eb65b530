//! deepgm's compute core: the kernels that train restricted Boltzmann machines, deep belief networks,
//! deep autoencoders and variational autoencoders on the CPU.
//!
//! The kernels are plain Rust over row-major slices, generic over `f32`/`f64`, parallel with rayon,
//! and know nothing of Python. The `python` feature (turned on by maturin) adds the `deepgm._core`
//! extension module in `py/`, which only converts arrays, releases the GIL and maps errors.

pub mod activations;
pub mod ais;
pub mod collaborative;
pub mod dense;
pub mod error;
pub mod linalg;
pub mod optim;
pub mod rbm;
pub mod real;
pub mod replicated_softmax;
pub mod rng;
pub mod scratch;
pub mod softmax;
pub mod sparse;
pub mod vae;
pub mod zero_columns;

#[cfg(feature = "python")]
mod py;

/// The kernels allocate their working buffers per call (training steps reuse theirs through
/// `scratch`). With the system allocator, buffers of a megabyte or more come from fresh mmap pages
/// every time and the page faults cost about a millisecond per VAE step (benches/NOTES.md); mimalloc
/// keeps and reuses freed pages, so memory stays flat and warm across calls.
#[cfg(feature = "python")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "python")]
use pyo3::prelude::*;

/// The native module `deepgm._core`.
#[cfg(feature = "python")]
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    py::register(m)
}
