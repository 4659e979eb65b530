//! Conversion of Python arguments: float arrays (dtype dispatch, layout checks, borrows), index
//! arrays, seeds, counts, thread counts and the names of unit types; new arrays for results. Arrays
//! are never copied: a float32 C-contiguous array is used in place, anything else is refused with a
//! message naming the argument.
//!
//! The bindings check here what only they can see (a Python object's type, dtype, number of
//! dimensions, layout, and the width of a 2-D array's rows); the kernels check the rest (sizes that
//! must agree, values in range) and their errors reach Python through `errors`.

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{
    Element, IntoPyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::errors::value_error;
use crate::real::Real;
use crate::sampling::StreamKey;
use crate::units::Units;

/// The two element types of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
}

/// Calls `f::<f32>(args)` or `f::<f64>(args)` for a [`Dtype`].
macro_rules! dispatch {
    ($dtype:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $dtype {
            $crate::py::arrays::Dtype::F32 => $f::<f32>($($arg),*),
            $crate::py::arrays::Dtype::F64 => $f::<f64>($($arg),*),
        }
    };
}
pub(crate) use dispatch;

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into())
}

fn untyped<'a, 'py>(obj: &'a Bound<'py, PyAny>, name: &str) -> PyResult<&'a Bound<'py, PyUntypedArray>> {
    obj.cast::<PyUntypedArray>().map_err(|_| PyTypeError::new_err(format!("{name} must be a numpy.ndarray, got {}", type_name(obj))))
}

/// The float type of array `obj`: float32 or float64, else a `TypeError`.
pub fn float_dtype(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Dtype> {
    let arr = untyped(obj, name)?;
    let py = obj.py();
    let dt = arr.dtype();
    if dt.is_equiv_to(&numpy::dtype::<f32>(py)) {
        Ok(Dtype::F32)
    } else if dt.is_equiv_to(&numpy::dtype::<f64>(py)) {
        Ok(Dtype::F64)
    } else {
        Err(PyTypeError::new_err(format!("{name} must have dtype float32 or float64, got {}", dt)))
    }
}

fn check_layout(arr: &Bound<'_, PyUntypedArray>, name: &str, ndim: usize) -> PyResult<()> {
    if arr.ndim() != ndim {
        return Err(PyValueError::new_err(format!("{name} must be a {ndim}-D array, got {}-D with shape {:?}", arr.ndim(), arr.shape())));
    }
    if !arr.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{name} must be C-contiguous (deepgm never copies silently; use numpy.ascontiguousarray)"
        )));
    }
    Ok(())
}

fn typed<'a, 'py, T: Element>(obj: &'a Bound<'py, PyAny>, name: &str, ndim: usize) -> PyResult<&'a Bound<'py, PyArrayDyn<T>>> {
    let arr = untyped(obj, name)?;
    let py = obj.py();
    let want = numpy::dtype::<T>(py);
    if !arr.dtype().is_equiv_to(&want) {
        return Err(PyTypeError::new_err(format!("{name} must have dtype {} (the dtype of the other arrays), got {}", want, arr.dtype())));
    }
    check_layout(arr, name, ndim)?;
    obj.cast::<PyArrayDyn<T>>().map_err(|e| PyTypeError::new_err(format!("{name}: {e}")))
}

/// The number of dimensions of `obj` if it is an array (1 otherwise, so that the typed borrow that
/// follows reports what `obj` really is).
pub fn ndim_of(obj: &Bound<'_, PyAny>) -> usize {
    obj.cast::<PyUntypedArray>().map(|a| a.ndim()).unwrap_or(1)
}

/// A read-only borrow of a C-contiguous `ndim`-D array of element type T whose values are all finite.
pub fn input<'py, T: Element + Real>(obj: &Bound<'py, PyAny>, name: &str, ndim: usize) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    let arr = input_unchecked::<T>(obj, name, ndim)?;
    if let Some(i) = crate::real::first_non_finite(arr.as_slice()?) {
        let value = arr.as_slice()?[i];
        let (mut index, mut rest) = (vec![0usize; arr.ndim()], i);
        for (d, &len) in arr.shape().iter().enumerate().rev() {
            index[d] = rest % len.max(1);
            rest /= len.max(1);
        }
        return Err(PyValueError::new_err(format!("{name} must hold finite values (no NaN or infinity); got {value} at index {index:?}")));
    }
    Ok(arr)
}

/// [`input`] without the finiteness check: for the training steps, which read only the minibatch's
/// rows of a (possibly huge) array and check those, and for `gemm`, which like BLAS propagates them.
pub fn input_unchecked<'py, T: Element>(obj: &Bound<'py, PyAny>, name: &str, ndim: usize) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    typed::<T>(obj, name, ndim)?.try_readonly().map_err(|e| PyValueError::new_err(format!("{name} cannot be read: {e}")))
}

/// A writable borrow of a C-contiguous `ndim`-D array of element type T (fails if the array is
/// read-only or already borrowed by another argument of the same call).
pub fn output<'py, T: Element>(obj: &Bound<'py, PyAny>, name: &str, ndim: usize) -> PyResult<PyReadwriteArrayDyn<'py, T>> {
    typed::<T>(obj, name, ndim)?
        .try_readwrite()
        .map_err(|e| PyValueError::new_err(format!("{name} must be a writeable array not passed twice to the same call ({e})")))
}

/// A read-only borrow of a finite 2-D array whose rows have `width` values.
pub fn rows_of<'py, T: Element + Real>(obj: &Bound<'py, PyAny>, name: &str, width: usize) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    let arr = input::<T>(obj, name, 2)?;
    if arr.shape()[1] != width {
        return Err(value_error(name, format!("expected {width} columns, got {}", arr.shape()[1])));
    }
    Ok(arr)
}

/// A new NumPy array of `shape` holding `data`.
pub fn new_array<'py, T: Element + Real>(py: Python<'py>, shape: &[usize], data: Vec<T>) -> PyResult<Bound<'py, PyAny>> {
    let array = ArrayD::from_shape_vec(IxDyn(shape), data)
        .map_err(|e| PyRuntimeError::new_err(format!("deepgm internal error: output of shape {shape:?}: {e}")))?;
    Ok(array.into_pyarray(py).into_any())
}

/// Fails unless `shape == expected`.
pub fn expect_shape(name: &str, shape: &[usize], expected: &[usize]) -> PyResult<()> {
    if shape != expected {
        return Err(PyValueError::new_err(format!("{name} must have shape {expected:?}, got {shape:?}")));
    }
    Ok(())
}

/// A list of arrays, each borrowed read-only.
pub fn input_list<'py, T: Element + Real>(list: &Bound<'py, PyAny>, name: &str, ndim: usize) -> PyResult<Vec<PyReadonlyArrayDyn<'py, T>>> {
    let list = list.cast::<PyList>().map_err(|_| PyTypeError::new_err(format!("{name} must be a list of arrays")))?;
    list.iter().enumerate().map(|(i, a)| input::<T>(&a, &format!("{name}[{i}]"), ndim)).collect()
}

/// A list of arrays, each borrowed writable.
pub fn output_list<'py, T: Element>(list: &Bound<'py, PyAny>, name: &str, ndim: usize) -> PyResult<Vec<PyReadwriteArrayDyn<'py, T>>> {
    let list = list.cast::<PyList>().map_err(|_| PyTypeError::new_err(format!("{name} must be a list of arrays")))?;
    list.iter().enumerate().map(|(i, a)| output::<T>(&a, &format!("{name}[{i}]"), ndim)).collect()
}

/// A 1-D integer array (any integer dtype) of non-negative indices, as usize. The kernels check the
/// indices against what they index.
pub fn indices(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<usize>> {
    let arr = untyped(obj, name)?;
    if arr.ndim() != 1 {
        return Err(PyValueError::new_err(format!("{name} must be a 1-D integer array, got {}-D", arr.ndim())));
    }
    let kind = arr.dtype().kind();
    if kind != b'i' && kind != b'u' {
        return Err(PyTypeError::new_err(format!("{name} must be an integer array, got dtype {}", arr.dtype())));
    }
    let values =
        obj.call_method1("astype", ("int64",))?.cast_into::<PyArrayDyn<i64>>().map_err(|e| PyTypeError::new_err(format!("{name}: {e}")))?;
    let values = values.readonly();
    values
        .as_array()
        .iter()
        .map(|&v| usize::try_from(v).map_err(|_| PyValueError::new_err(format!("{name} must hold indices >= 0, got {v}"))))
        .collect()
}

/// `n_jobs` as a thread count: None or -1 = all cores (0 inside the kernels), else >= 1.
///
/// More threads than cores are capped at the core count: results do not depend on the number of
/// threads, and extra threads on a busy core only wait for each other (64 threads on 2 cores made a
/// VAE epoch 100x slower).
pub fn threads(n_jobs: Option<i64>) -> PyResult<usize> {
    match n_jobs {
        None | Some(-1) => Ok(0),
        Some(n) if n >= 1 => Ok((n as usize).min(crate::threads::resolve_threads(0))),
        Some(n) => Err(PyValueError::new_err(format!("n_jobs must be None, -1 or an integer >= 1, got {n}"))),
    }
}

/// A random seed: an int in [0, 2**64), else a ValueError naming the argument.
pub fn seed_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    value.extract::<u64>().map_err(|_| {
        let shown = value.repr().map(|r| r.to_string()).unwrap_or_else(|_| "?".into());
        PyValueError::new_err(format!("{name} must be an integer in [0, 2**64); got {shown}"))
    })
}

/// An optional seed (None: no sampling).
pub fn optional_seed(value: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<u64>> {
    value.filter(|v| !v.is_none()).map(|v| seed_arg(v, name)).transpose()
}

/// The random stream of a call that draws: its seed and training step (see `rng`).
#[derive(Clone, Copy, Debug)]
pub struct SeedStep {
    pub seed: u64,
    pub step: u64,
}

impl SeedStep {
    /// `seed` (an int in [0, 2**64)) and `step` (an int >= 0).
    pub fn parse(seed: &Bound<'_, PyAny>, step: i64) -> PyResult<Self> {
        Ok(SeedStep { seed: seed_arg(seed, "seed")?, step: count_arg(step, "step", 0)? as u64 })
    }

    /// An optional `seed` (None: 0, for a call that may not draw) and `step`.
    pub fn parse_optional(seed: Option<&Bound<'_, PyAny>>, step: i64) -> PyResult<Self> {
        Ok(SeedStep { seed: optional_seed(seed, "seed")?.unwrap_or(0), step: count_arg(step, "step", 0)? as u64 })
    }

    /// The key of the draw `purpose` (see `rng::purpose`).
    pub fn key(self, purpose: u64) -> StreamKey {
        StreamKey { seed: self.seed, step: self.step, purpose }
    }
}

/// The unit type a Python string names ("bernoulli", "gaussian"); `param` names the argument.
pub fn units(name: &str, param: &str) -> PyResult<Units> {
    Units::parse(name, param).map_err(|e| value_error(param, e))
}

/// A count or index argument: an int >= `min`, else a ValueError naming it.
pub fn count_arg(value: i64, name: &str, min: i64) -> PyResult<usize> {
    if value < min {
        return Err(PyValueError::new_err(format!("{name} must be an integer >= {min}; got {value}")));
    }
    Ok(value as usize)
}
