//! The `deepgm._core` extension module: argument conversion, GIL release and error mapping around the
//! kernels. Nothing here computes; every function forwards to a kernel module.

pub(crate) mod arrays;
mod errors;
mod dense;
mod kernels;
mod rbm;
mod softmax_models;
mod vae;

use pyo3::prelude::*;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    kernels::register(m)?;
    dense::register(m)?;
    rbm::register(m)?;
    vae::register(m)?;
    softmax_models::register(m)?;
    Ok(())
}
