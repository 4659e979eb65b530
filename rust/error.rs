//! Typed errors of the kernels. The Python bindings map every variant to a Python exception in one
//! place (`py/errors.rs`); Rust callers get a `Result` they can match on.

use thiserror::Error;

/// Why a kernel refused its input.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum KernelError {
    /// Two arrays whose dimensions must agree do not.
    #[error("{name}: expected {expected}, got {got}")]
    Shape { name: String, expected: String, got: String },

    /// A scalar argument is outside its valid range.
    #[error("{name} must be {expected}; got {got}")]
    Value { name: String, expected: String, got: String },

    /// An index (a row of a minibatch, a class label) points outside its array.
    #[error("{name}: index {index} is out of range for {len} entries")]
    Index { name: String, index: i64, len: usize },

    /// The computation produced a non-finite value from finite input (for example a diverging model).
    #[error("{0}")]
    NonFinite(String),
}

pub type Result<T> = std::result::Result<T, KernelError>;

impl KernelError {
    pub fn shape(name: &str, expected: impl ToString, got: impl ToString) -> Self {
        KernelError::Shape { name: name.to_string(), expected: expected.to_string(), got: got.to_string() }
    }

    pub fn value(name: &str, expected: impl ToString, got: impl ToString) -> Self {
        KernelError::Value { name: name.to_string(), expected: expected.to_string(), got: got.to_string() }
    }
}

/// Fails with a `Shape` error unless `slice_len == rows * cols`.
pub fn check_len(name: &str, slice_len: usize, rows: usize, cols: usize) -> Result<()> {
    if slice_len != rows * cols {
        return Err(KernelError::shape(name, format!("{rows}x{cols} = {} values", rows * cols), format!("{slice_len} values")));
    }
    Ok(())
}
