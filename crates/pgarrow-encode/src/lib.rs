//! Apache Arrow to PostgreSQL's binary COPY format: the inverse of `pgarrow-decode`.
//!
//! A [`RowEncoder`] is made from the target table's columns, as the decoder's planning
//! describes them ([`ColumnPlan`]: the type plan, the type name and typmod), and the Arrow
//! schema of the input. Each input column is checked against its target once: a compatible
//! Arrow type is converted value by value with checks (integers of any width, decimals and
//! floats into `numeric`, any timestamp unit into `timestamp`/`timestamptz`, ...), and a
//! value the target cannot hold exactly is an error that names the column, the row (counted
//! in the input) and the value. Nothing is rounded or truncated silently.
//!
//! Sans-IO: [`RowEncoder::encode`] appends whole rows to a buffer; the COPY FROM STDIN around
//! it is the caller's (`pgarrow_protocol::CopyIn`).
//!
//! Supported targets so far: `bool`, `int2`/`int4`/`int8`, `oid`, `float4`/`float8`,
//! `numeric` (constrained or not), `text`/`varchar`/`char(n)`/`name`/`citext`, `bytea`, `uuid`,
//! `json`, `jsonb`, `date`, `time`, `timestamp`, `timestamptz`, `interval` and enums. Other
//! targets (arrays, composites, ranges, hstore, ...) are refused when the encoder is made,
//! naming the column.

#![warn(missing_docs)]

mod numeric;
mod read;
mod scalar;
mod temporal;

use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema};
use pgarrow_decode::ColumnPlan;
use pgarrow_decode::plan::TypePlan;

pub use scalar::Target;

/// The 19-byte header of a binary COPY stream: signature, flags, no extension.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The trailer of a binary COPY stream: a field count of -1.
pub const TRAILER: &[u8] = &[0xff, 0xff];

/// A value or a column that cannot go into its target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column \"{column}\" ({pg_type}){}: {message}", row.map(|r| format!(", row {r}")).unwrap_or_default())]
pub struct EncodeError {
    /// The target column.
    pub column: String,
    /// Its PostgreSQL type.
    pub pg_type: String,
    /// The input row (0-based, counted over every batch given), for a value.
    pub row: Option<u64>,
    /// What is wrong, with the value.
    pub message: String,
}

/// One target column and how its input is converted.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    pg_type: String,
    target: Target,
    input: DataType,
}

/// Encodes record batches into binary COPY rows for one target table.
#[derive(Debug, Clone)]
pub struct RowEncoder {
    columns: Vec<Column>,
}

impl RowEncoder {
    /// An encoder writing `input`'s columns, in order, into the target columns `targets` (as
    /// many).
    ///
    /// # Errors
    /// The counts differ, a target type is not supported, or an input column's Arrow type
    /// cannot be converted into its target's type; the error names the column and both types.
    pub fn new(targets: &[ColumnPlan], input: &Schema) -> Result<RowEncoder, EncodeError> {
        if targets.len() != input.fields().len() {
            return Err(EncodeError {
                column: String::new(),
                pg_type: String::new(),
                row: None,
                message: format!(
                    "the input has {} columns and the target {}",
                    input.fields().len(),
                    targets.len()
                ),
            });
        }
        let columns = targets
            .iter()
            .zip(input.fields())
            .map(|(plan, field)| {
                let error = |message: String| EncodeError {
                    column: plan.column.name.clone(),
                    pg_type: plan.column.type_name.clone(),
                    row: None,
                    message,
                };
                let target = match (&plan.kind, plan.cast) {
                    (TypePlan::Scalar { kind, .. }, None) => {
                        Target::for_scalar(*kind, &plan.column).ok_or_else(|| {
                            error("loading this type is not supported yet".to_owned())
                        })?
                    }
                    (TypePlan::Enum(labels), None) => Target::Enum(labels.clone()),
                    _ => return Err(error("loading this type is not supported yet".to_owned())),
                };
                target.accepts(field.data_type()).map_err(error)?;
                Ok(Column {
                    name: plan.column.name.clone(),
                    pg_type: plan.column.type_name.clone(),
                    target,
                    input: field.data_type().clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RowEncoder { columns })
    }

    /// Appends the rows of `batch` to `out`; `first_row` is the input row number of its first
    /// row, for errors.
    ///
    /// # Errors
    /// A value its target cannot hold: the column, the row and the value. `out` then holds
    /// part of the batch: the caller fails the COPY.
    pub fn encode(
        &self,
        batch: &RecordBatch,
        first_row: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let writers = self
            .columns
            .iter()
            .zip(batch.columns())
            .map(|(c, array)| {
                if *array.data_type() != c.input {
                    return Err(self.error(c, None, "the batch's type changed".to_owned()));
                }
                Ok(c.target.writer(array.as_ref()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let count = i16::try_from(self.columns.len()).map_err(|_| EncodeError {
            column: String::new(),
            pg_type: String::new(),
            row: None,
            message: "more than 32767 columns".to_owned(),
        })?;
        for row in 0..batch.num_rows() {
            out.extend_from_slice(&count.to_be_bytes());
            for ((c, w), array) in self.columns.iter().zip(&writers).zip(batch.columns()) {
                if array.is_null(row) {
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                    continue;
                }
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                w(row, out).map_err(|m| self.error(c, Some(first_row + row as u64), m))?;
                let len = i32::try_from(out.len() - at - 4).map_err(|_| {
                    self.error(c, Some(first_row + row as u64), "value over 2 GiB".into())
                })?;
                out[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
        }
        Ok(())
    }

    fn error(&self, c: &Column, row: Option<u64>, message: String) -> EncodeError {
        EncodeError {
            column: c.name.clone(),
            pg_type: c.pg_type.clone(),
            row,
            message,
        }
    }
}
