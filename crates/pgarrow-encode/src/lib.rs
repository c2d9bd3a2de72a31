//! Apache Arrow to PostgreSQL's binary COPY format: the inverse of `pgarrow-decode`.
//!
//! A [`RowEncoder`] is made from the target table's columns as the server describes them
//! ([`PgColumn`]: name, type OID, typmod and type name), the [`Catalog`] of their types, and
//! the Arrow schema of the input; all of the PostgreSQL side comes from `pgarrow-types`, so
//! this crate does not depend on the decoder. Each input column is parsed against its target
//! once, into the encoder of that pair (which Arrow type feeds which PostgreSQL type): a
//! compatible Arrow type is converted value by value with checks (integers of any width,
//! decimals and floats into `numeric`, any timestamp unit into `timestamp`/`timestamptz`,
//! ...), and a value the target cannot hold exactly is an error that names the column, the
//! row (counted in the input) and the value. Nothing is rounded or truncated silently.
//!
//! Sans-IO: [`RowEncoder::encode`] appends whole rows to a buffer; the COPY FROM STDIN around
//! it is the caller's (`pgarrow_protocol::CopyIn`).
//!
//! Targets: `bool`, `int2`/`int4`/`int8`, `oid`, `float4`/`float8`, `numeric` (constrained or
//! not), `money`, `text`/`varchar(n)`/`char(n)`/`name`/`citext`/`xml`, `"char"`, `bytea`,
//! `uuid`, `json`, `jsonb`, `date`, `time`, `timestamp`, `timestamptz`, `interval`, enums,
//! `ltree`, PostGIS `geometry`/`geography` (EWKB), and, around any of those, arrays of any
//! number of dimensions (nested Lists), composites (Structs), ranges and multiranges (as
//! pgarrow exports them), `hstore` (a Map) and pgvector `vector` (a List of floats), through
//! domains.
//!
//! A column of any other type (`inet`, `bit`, `tsvector`, `point`, ...) whose input is text
//! is a *text column*
//! ([`RowEncoder::text_columns`]): its values are sent as text, and the caller loads them
//! through a table of text columns and a cast (`CAST(value AS type)`), so that the server's
//! own input function reads them, as it reads what pgarrow's export gives for such types.

#![warn(missing_docs)]

mod numeric;
mod read;
mod scalar;
mod shape;
mod temporal;

use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema};
use pgarrow_types::{Catalog, PgColumn};

pub use scalar::{Target, TextLimit};
use shape::{Shape, field};

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
    shape: Shape,
    input: DataType,
    /// Sent as text, for the caller to cast.
    text: bool,
}

/// Encodes record batches into binary COPY rows for one target table.
#[derive(Debug, Clone)]
pub struct RowEncoder {
    columns: Vec<Column>,
}

impl RowEncoder {
    /// An encoder writing `input`'s columns, in order, into the target columns `targets` (as
    /// many), whose types `catalog` describes (arrays, composites, domains, enums, ranges and
    /// extension types; built-in scalars need nothing).
    ///
    /// # Errors
    /// The counts differ, or an input column's Arrow type cannot be converted into its
    /// target's type; the error names the column and both types.
    pub fn new<'a>(
        targets: impl IntoIterator<Item = &'a PgColumn>,
        catalog: &Catalog,
        input: &Schema,
    ) -> Result<RowEncoder, EncodeError> {
        let targets: Vec<&PgColumn> = targets.into_iter().collect();
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
            .into_iter()
            .zip(input.fields())
            .map(|(c, field)| {
                let t = field.data_type();
                let shape = Shape::resolve(c.oid, c.typmod, catalog);
                let accepted = shape.as_ref().map(|s| s.accepts(t));
                let (shape, text) = match accepted {
                    Some(Ok(())) => (shape.expect("resolved"), false),
                    // No binary encoder: the server reads the text with the type's input
                    // function.
                    None if scalar::is_text(t) => {
                        (Shape::Scalar(Target::Text(TextLimit::None)), true)
                    }
                    Some(Err(message)) => {
                        return Err(EncodeError {
                            column: c.name.clone(),
                            pg_type: c.type_name.clone(),
                            row: None,
                            message,
                        });
                    }
                    None => {
                        return Err(EncodeError {
                            column: c.name.clone(),
                            pg_type: c.type_name.clone(),
                            row: None,
                            message: format!(
                                "an Arrow {t} column cannot be loaded into it: this type is \
                                 loaded from its text form (a text column)"
                            ),
                        });
                    }
                };
                Ok(Column {
                    name: c.name.clone(),
                    pg_type: c.type_name.clone(),
                    shape,
                    input: t.clone(),
                    text,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RowEncoder { columns })
    }

    /// The columns (by position) whose values are sent as text: their type has no binary
    /// encoder here (`inet`, `bit`, `tsvector`, arrays of those, ...). The caller copies
    /// them into `text` columns and casts them to their types (the server's input function
    /// reads them).
    pub fn text_columns(&self) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|&i| self.columns[i].text)
            .collect()
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
                Ok(c.shape.writer(array.as_ref()))
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
                field(out, |out| w(row, out))
                    .map_err(|m| self.error(c, Some(first_row + row as u64), m))?;
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
