//! The one place where kernel errors and panics become Python exceptions, and where the GIL is
//! released around kernel work.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyFloatingPointError, PyMemoryError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::error::KernelError;
use crate::threads::with_threads;

/// Maps a kernel error to the Python exception a user expects.
pub fn to_pyerr(function: &str, err: KernelError) -> PyErr {
    match err {
        // Shapes, values and indices are the caller's input: ValueError, prefixed by the function.
        KernelError::Shape { .. } | KernelError::Value { .. } | KernelError::Index { .. } => {
            PyValueError::new_err(format!("{function}: {err}"))
        }
        // Non-finite results from finite input: the model diverged.
        KernelError::NonFinite(msg) => PyFloatingPointError::new_err(msg),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs kernel work `f` with the GIL released, on `n_jobs` threads (0 = all cores). A kernel error
/// becomes the matching Python exception; a panic (a bug) becomes a `RuntimeError` instead of
/// unwinding into Python.
pub fn run<R: Send>(py: Python<'_>, function: &str, n_jobs: usize, f: impl FnOnce() -> crate::error::Result<R> + Send) -> PyResult<R> {
    let outcome = py.detach(|| catch_unwind(AssertUnwindSafe(|| with_threads(n_jobs, f))));
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(to_pyerr(function, err)),
        Err(payload) => Err(PyRuntimeError::new_err(format!(
            "deepgm internal error in {function}: {} (please report this bug)",
            panic_message(payload.as_ref())
        ))),
    }
}

/// Refuses with `MemoryError` a call whose buffers (`elements` values of `elem_bytes` each) cannot be
/// allocated. Rust aborts the whole process when an allocation fails, so a call sized by its input
/// (e.g. decoding a million codes) first reserves that much address space, untouched, and releases it.
pub fn ensure_allocatable(function: &str, elements: usize, elem_bytes: usize) -> PyResult<()> {
    let bytes = elements.saturating_mul(elem_bytes);
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(bytes).map_err(|_| {
        PyMemoryError::new_err(format!("{function}: cannot allocate the {:.1} GiB its buffers need", bytes as f64 / (1u64 << 30) as f64))
    })
}

/// A `ValueError` prefixed with the function name.
pub fn value_error(function: &str, msg: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{function}: {msg}"))
}
