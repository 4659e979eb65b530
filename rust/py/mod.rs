//! The `deepgm._core` extension module: argument conversion, GIL release and error mapping around the
//! kernels. Nothing here computes; every function forwards to a kernel module.
//!
//! - `api`: the Python signatures, one function per kernel call;
//! - `kernels`, `dense`, `rbm`, `vae`: the bindings they call: borrow the arrays, build the kernels'
//!   inputs, run the kernel with the GIL released, and return new arrays;
//! - `softmax_api` and `softmax_models`: the same two layers for the softmax-unit models
//!   (`CollaborativeRBM`, `ReplicatedSoftmax`);
//! - `arrays`: conversion of Python arguments; `errors`: kernel errors and panics as Python exceptions.

mod api;
pub(crate) mod arrays;
mod dense;
mod errors;
mod kernels;
mod rbm;
mod softmax_api;
mod softmax_models;
mod vae;

use pyo3::prelude::*;

/// The kernels allocate their working buffers per call (training steps reuse theirs through
/// `scratch`). With the system allocator, buffers of a megabyte or more come from fresh mmap pages
/// every time and the page faults cost about a millisecond per VAE step (benches/NOTES.md); mimalloc
/// keeps and reuses freed pages, so memory stays flat and warm across calls.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The native module `deepgm._core`.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    api::register(m)?;
    softmax_api::register(m)
}
