//! A minibatch: the rows of a data matrix one step reads (all of them, or the listed ones), with the
//! targets that go with them.
//!
//! The data set `x` is (n, n_features), row-major; with `rows`, the batch is `x[rows]` (in that order,
//! repeats allowed) and no copy of `x` is made until a kernel gathers the batch's rows. Targets are
//! indexed like the rows of `x`: values `y` (n, width) for a supervised network, or one class label
//! per row for a conditional model.

use crate::error::{KernelError, Result};
use crate::linalg::gather_rows;
use crate::real::{first_non_finite, Real};
use crate::scratch;

/// What each row of `x` is to be mapped to.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a, T> {
    None,
    /// `y` (n, width): regression or classification outputs.
    Values {
        y: &'a [T],
        width: usize,
    },
    /// One class label per row of `x`.
    Labels(&'a [usize]),
}

/// The rows `rows` of `x` (all of them if `None`) and their targets.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a, T> {
    pub x: &'a [T],
    pub n_features: usize,
    pub rows: Option<&'a [usize]>,
    pub targets: Targets<'a, T>,
}

impl<'a, T: Real> Batch<'a, T> {
    /// All the rows of `x` (n, n_features), without targets.
    pub fn new(x: &'a [T], n_features: usize) -> Self {
        Batch { x, n_features, rows: None, targets: Targets::None }
    }

    /// The same data, the batch being the rows `rows` (all of them if `None`).
    pub fn rows(self, rows: Option<&'a [usize]>) -> Self {
        Batch { rows, ..self }
    }

    /// With targets `y` (n, width).
    pub fn values(self, y: &'a [T], width: usize) -> Self {
        Batch { targets: Targets::Values { y, width }, ..self }
    }

    /// With one class label per row of `x` (no targets if `None`).
    pub fn labels(self, labels: Option<&'a [usize]>) -> Self {
        Batch { targets: labels.map_or(Targets::None, Targets::Labels), ..self }
    }

    /// The number of rows of `x`.
    pub fn n_rows(&self) -> usize {
        self.x.len() / self.n_features.max(1)
    }

    /// The number of rows in the batch.
    pub fn len(&self) -> usize {
        self.rows.map_or(self.n_rows(), |r| r.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row of `x` that is the batch's row `i`.
    pub fn source(&self, i: usize) -> usize {
        self.rows.map_or(i, |r| r[i])
    }

    /// The batch's row `i` of `x`.
    pub fn x_row(&self, i: usize) -> &'a [T] {
        let r = self.source(i);
        &self.x[r * self.n_features..(r + 1) * self.n_features]
    }

    /// Checks that the arrays agree: `x` holds whole rows, every listed row exists, and the targets
    /// have one row (or label) per row of `x`.
    pub fn check(&self) -> Result<()> {
        let d = self.n_features;
        if d == 0 || !self.x.len().is_multiple_of(d) {
            return Err(KernelError::shape("x", format!("rows of {d} features"), format!("{} values", self.x.len())));
        }
        let n = self.n_rows();
        if let Some(&bad) = self.rows.and_then(|rows| rows.iter().find(|&&r| r >= n)) {
            return Err(KernelError::Index { name: "rows".into(), index: bad as i64, len: n });
        }
        match self.targets {
            Targets::None => Ok(()),
            Targets::Values { y, width } if y.len() != n * width => {
                Err(KernelError::shape("y", format!("{n} rows of {width} values (one per row of x)"), format!("{} values", y.len())))
            }
            Targets::Values { .. } => Ok(()),
            Targets::Labels(labels) if labels.len() != n => {
                Err(KernelError::shape("y", format!("{n} labels (one per row of x)"), format!("{} labels", labels.len())))
            }
            Targets::Labels(_) => Ok(()),
        }
    }

    /// Fails unless the batch has at least one row (naming `rows` when the batch is a selection).
    pub fn check_not_empty(&self) -> Result<()> {
        if self.is_empty() {
            return Err(KernelError::value(if self.rows.is_some() { "rows" } else { "x" }, "at least one sample in the minibatch", 0));
        }
        Ok(())
    }

    /// Fails if a row of the batch holds NaN or inf (the rest of `x` is not read).
    pub fn check_finite(&self) -> Result<()> {
        let bad = |values: &[T]| first_non_finite(values).map(|i| values[i]);
        let found = match self.rows {
            Some(_) => (0..self.len()).find_map(|i| bad(self.x_row(i))),
            None => bad(self.x),
        };
        match found {
            Some(value) => Err(KernelError::value("x", "finite values in the minibatch", value)),
            None => Ok(()),
        }
    }

    /// Writes the batch's rows of `x` to `out` (len() x n_features).
    pub fn gather_into(&self, out: &mut [T]) {
        match self.rows {
            Some(rows) => gather_rows(self.x, self.n_features, rows, out),
            None => out.copy_from_slice(&self.x[..out.len()]),
        }
    }

    /// The batch's rows of `x` in a scratch buffer, or `None` when the batch is all of `x`.
    pub fn gathered_x(&self) -> Option<Vec<T>> {
        self.rows.map(|rows| {
            let mut out = scratch::take(rows.len() * self.n_features); // overwritten by the gather
            gather_rows(self.x, self.n_features, rows, &mut out);
            out
        })
    }

    /// The target values `(y, width)`; an error names `y` if the batch has none.
    pub fn target_values(&self) -> Result<(&'a [T], usize)> {
        match self.targets {
            Targets::Values { y, width } => Ok((y, width)),
            _ => Err(KernelError::value("y", "target values", "none")),
        }
    }

    /// The batch's rows of the target values in a scratch buffer, or `None` when the batch is all of
    /// `x` (or there are no target values).
    pub fn gathered_y(&self) -> Option<Vec<T>> {
        match (self.rows, self.targets) {
            (Some(rows), Targets::Values { y, width }) => {
                let mut out = scratch::take(rows.len() * width); // overwritten by the gather
                gather_rows(y, width, rows, &mut out);
                Some(out)
            }
            _ => None,
        }
    }

    /// The labels of the batch's rows, if it has labels.
    pub fn batch_labels(&self) -> Option<Vec<usize>> {
        match self.targets {
            Targets::Labels(labels) => Some((0..self.len()).map(|i| labels[self.source(i)]).collect()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_select_rows_of_x_and_of_the_targets() {
        let x: Vec<f64> = (0..12).map(|v| v as f64).collect(); // 4 rows of 3
        let y: Vec<f64> = (0..8).map(|v| -(v as f64)).collect(); // 4 rows of 2
        let labels = [7usize, 8, 9, 10];
        let rows = [2usize, 0, 2];
        let batch = Batch::new(&x, 3).rows(Some(&rows)).values(&y, 2);
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.x_row(0), &[6.0, 7.0, 8.0]);
        assert_eq!(batch.gathered_x().unwrap(), vec![6.0, 7.0, 8.0, 0.0, 1.0, 2.0, 6.0, 7.0, 8.0]);
        assert_eq!(batch.gathered_y().unwrap(), vec![-4.0, -5.0, 0.0, -1.0, -4.0, -5.0]);
        let mut out = vec![0.0; 9];
        batch.gather_into(&mut out);
        assert_eq!(out, batch.gathered_x().unwrap());
        assert_eq!(batch.labels(Some(&labels)).batch_labels().unwrap(), vec![9, 7, 9]);
        let all = Batch::new(&x, 3);
        assert_eq!((all.len(), all.gathered_x()), (4, None));
    }

    #[test]
    fn checks_name_what_disagrees() {
        let x = vec![0.0f32; 12];
        let message = |b: Batch<'_, f32>| b.check().unwrap_err().to_string();
        assert!(message(Batch::new(&x[..11], 3)).starts_with("x:"));
        assert!(message(Batch::new(&x, 3).rows(Some(&[1, 4]))).starts_with("rows:"));
        assert!(message(Batch::new(&x, 3).values(&x[..7], 2)).starts_with("y:"));
        assert!(message(Batch::new(&x, 3).labels(Some(&[1, 2]))).starts_with("y:"));
        assert!(Batch::new(&x, 3).rows(Some(&[3, 0])).labels(Some(&[0; 4])).check().is_ok());
        assert!(Batch::new(&x, 3).rows(Some(&[])).check_not_empty().unwrap_err().to_string().starts_with("rows"));
        let mut bad = x.clone();
        bad[10] = f32::NAN;
        assert!(Batch::new(&bad, 3).rows(Some(&[0, 1])).check_finite().is_ok(), "rows outside the batch are not read");
        assert!(Batch::new(&bad, 3).rows(Some(&[3])).check_finite().is_err());
        assert!(Batch::new(&bad, 3).check_finite().is_err());
    }
}
