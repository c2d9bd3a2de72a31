//! The order a Parquet file's `sorting_columns` claim, checked row by row as the rows are
//! written: readers trust the claim (to skip, to merge), so rows out of it are an error, never a
//! file that says something false.

use std::cmp::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_ord::ord::make_comparator;
use arrow_schema::{DataType, Schema, SortOptions};

use super::options::SortKey;
use crate::{Error, Result};

/// The sort keys of a file, by field, and the last row written (to check the next batch's
/// first row against).
#[derive(Debug, Clone)]
pub(crate) struct OrderCheck {
    keys: Vec<(usize, SortKey)>,
    /// The key columns of the last row written, one row each.
    last: Option<Vec<ArrayRef>>,
    /// Rows checked so far.
    rows: u64,
}

impl OrderCheck {
    /// The check of `keys` on files of `schema`, or `None` without keys.
    ///
    /// # Errors
    /// A key names no column of the schema.
    pub(crate) fn of(schema: &Schema, keys: &[SortKey]) -> Result<Option<OrderCheck>> {
        if keys.is_empty() {
            return Ok(None);
        }
        let keys = keys
            .iter()
            .map(|k| {
                schema
                    .index_of(&k.column)
                    .map(|i| (i, k.clone()))
                    .map_err(|_| {
                        let names: Vec<&str> =
                            schema.fields().iter().map(|f| f.name().as_str()).collect();
                        Error::usage(format!(
                            "a sort order on column \"{}\": the result has no such column (its \
                             columns: {})",
                            k.column,
                            names.join(", ")
                        ))
                    })
            })
            .collect::<Result<_>>()?;
        Ok(Some(OrderCheck {
            keys,
            last: None,
            rows: 0,
        }))
    }

    /// Checks that `batch`'s rows follow the keys' order, from the last row written before.
    ///
    /// # Errors
    /// A row that comes before the one above it, named by its number in the file and the
    /// column that decided.
    pub(crate) fn check(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let columns: Vec<&ArrayRef> = self.keys.iter().map(|(i, _)| batch.column(*i)).collect();
        if let Some(last) = &self.last {
            let pairs: Vec<(&dyn Array, &dyn Array)> = last
                .iter()
                .zip(&columns)
                .map(|(a, b)| (a.as_ref(), b.as_ref()))
                .collect();
            self.compare_rows(&pairs, std::iter::once((0, 0)), 0)?;
        }
        let pairs: Vec<(&dyn Array, &dyn Array)> =
            columns.iter().map(|c| (c.as_ref(), c.as_ref())).collect();
        self.compare_rows(&pairs, (1..n).map(|i| (i - 1, i)), 1)?;
        self.last = Some(columns.iter().map(|c| c.slice(n - 1, 1)).collect());
        self.rows += n as u64;
        Ok(())
    }

    /// Each `(above, below)` row pair of `pairs`' arrays in the keys' order; `first` is the
    /// batch row of the first pair's lower row.
    fn compare_rows(
        &self,
        pairs: &[(&dyn Array, &dyn Array)],
        steps: impl Iterator<Item = (usize, usize)>,
        first: usize,
    ) -> Result<()> {
        let comparators = pairs
            .iter()
            .zip(&self.keys)
            .map(|((a, b), (_, key))| Comparator::new(*a, *b, key.descending))
            .collect::<Result<Vec<_>>>()?;
        for (k, (above, below)) in steps.enumerate() {
            for (c, (_, key)) in comparators.iter().zip(&self.keys) {
                match c.compare(above, below) {
                    Ordering::Less => break,
                    Ordering::Equal => continue,
                    Ordering::Greater => {
                        return Err(self.out_of_order(self.rows + (first + k) as u64 + 1, key));
                    }
                }
            }
        }
        Ok(())
    }

    #[cold]
    fn out_of_order(&self, row: u64, key: &SortKey) -> Error {
        let keys: Vec<String> = self.keys.iter().map(|(_, k)| k.to_string()).collect();
        Error::usage(format!(
            "the rows are not sorted by {}: row {row} of the file comes before the row above it \
             (column \"{}\"); order the query by these columns (text in byte order: COLLATE \"C\"), \
             or leave the sort order out",
            keys.join(", "),
            key.column
        ))
    }
}

/// Compares a row of one array with a row of another, as PostgreSQL's ORDER BY orders them
/// (NULLs last ascending, first descending; a float's -0 equal to 0 and NaN above all).
enum Comparator {
    Arrow(arrow_ord::ord::DynComparator),
    Float {
        above: Vec<Option<f64>>,
        below: Vec<Option<f64>>,
        descending: bool,
    },
}

impl Comparator {
    fn new(above: &dyn Array, below: &dyn Array, descending: bool) -> Result<Comparator> {
        let floats = |a: &dyn Array| -> Option<Vec<Option<f64>>> {
            Some(match a.data_type() {
                DataType::Float16 => a
                    .as_primitive::<Float16Type>()
                    .iter()
                    .map(|v| v.map(f64::from))
                    .collect(),
                DataType::Float32 => a
                    .as_primitive::<Float32Type>()
                    .iter()
                    .map(|v| v.map(f64::from))
                    .collect(),
                DataType::Float64 => a.as_primitive::<Float64Type>().iter().collect(),
                _ => return None,
            })
        };
        if let (Some(above), Some(below)) = (floats(above), floats(below)) {
            return Ok(Comparator::Float {
                above,
                below,
                descending,
            });
        }
        let options = SortOptions {
            descending,
            nulls_first: descending,
        };
        Ok(Comparator::Arrow(make_comparator(above, below, options)?))
    }

    fn compare(&self, i: usize, j: usize) -> Ordering {
        match self {
            Comparator::Arrow(c) => c(i, j),
            Comparator::Float {
                above,
                below,
                descending,
            } => {
                let order = match (above[i], below[j]) {
                    (None, None) => Ordering::Equal,
                    // NULLs last ascending: reversed below with the rest.
                    (None, Some(_)) => Ordering::Greater,
                    (Some(_), None) => Ordering::Less,
                    (Some(a), Some(b)) => match (a.is_nan(), b.is_nan()) {
                        (true, true) => Ordering::Equal,
                        (true, false) => Ordering::Greater,
                        (false, true) => Ordering::Less,
                        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
                    },
                };
                if *descending { order.reverse() } else { order }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int32Array, StringArray};
    use arrow_schema::Field;
    use std::sync::Arc;

    fn batch(k: Vec<Option<i32>>, s: Vec<&str>, f: Vec<Option<f64>>) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("k", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("f", DataType::Float64, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int32Array::from(k)),
                Arc::new(StringArray::from(s)),
                Arc::new(Float64Array::from(f)),
            ],
        )
        .unwrap()
    }

    fn check(keys: &[&str], batches: &[RecordBatch]) -> Result<()> {
        let keys: Vec<SortKey> = keys.iter().map(|k| k.parse().unwrap()).collect();
        let mut c = OrderCheck::of(&batches[0].schema(), &keys)?.unwrap();
        for b in batches {
            c.check(b)?;
        }
        Ok(())
    }

    #[test]
    fn ordered_rows_pass_across_batches() {
        let a = batch(
            vec![Some(1), Some(1), Some(2)],
            vec!["b", "c", "a"],
            vec![None; 3],
        );
        let b = batch(vec![Some(2), None], vec!["a", "z"], vec![None; 2]);
        check(&["k", "s"], &[a.clone(), b.clone()]).unwrap();
        // Descending puts NULLs first.
        let d = batch(vec![None, Some(3), Some(1)], vec!["x"; 3], vec![None; 3]);
        check(&["k:desc"], &[d]).unwrap();
        // -0 equals 0, NaN is above every number, NULLs last.
        let f = batch(
            vec![Some(0); 5],
            vec!["x"; 5],
            vec![Some(0.0), Some(-0.0), Some(1.0), Some(f64::NAN), None],
        );
        check(&["f"], &[f]).unwrap();
    }

    #[test]
    fn a_row_out_of_order_is_named() {
        let a = batch(vec![Some(1), Some(2)], vec!["a", "b"], vec![None; 2]);
        let b = batch(vec![Some(3), Some(1)], vec!["a", "b"], vec![None; 2]);
        let e = check(&["k"], &[a.clone(), b]).unwrap_err().to_string();
        assert!(
            e.contains("row 4 of the file") && e.contains("\"k\""),
            "{e}"
        );
        // Across the batch boundary.
        let c = batch(vec![Some(0)], vec!["a"], vec![None]);
        let e = check(&["k"], &[a.clone(), c]).unwrap_err().to_string();
        assert!(e.contains("row 3 of the file"), "{e}");
        // The second key decides among equal first keys; text is in byte order.
        let t = batch(vec![Some(1), Some(1)], vec!["b", "B"], vec![None; 2]);
        let e = check(&["k", "s"], &[t]).unwrap_err().to_string();
        assert!(e.contains("\"s\"") && e.contains("COLLATE"), "{e}");
        let e = check(&["nope"], &[a]).unwrap_err().to_string();
        assert!(e.contains("no such column"), "{e}");
    }
}
