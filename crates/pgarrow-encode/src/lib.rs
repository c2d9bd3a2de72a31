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
//! row (counted in the input) and the value ([`EncodeError`]: its [`ErrorKind`] says what was
//! wrong, its [`path`](EncodeError::path) where inside a nested value). Nothing is rounded or
//! truncated silently.
//!
//! Sans-IO: [`RowEncoder::encode`] appends whole rows to a buffer; the COPY FROM STDIN around
//! it is the caller's (`pgarrow_protocol::CopyIn`).
//!
//! Targets: `bool`, `int2`/`int4`/`int8`, `oid`, `float4`/`float8`, `numeric` (constrained or
//! not), `money`, `text`/`varchar(n)`/`char(n)`/`name`/`citext`/`xml`, `"char"`, `bytea`,
//! `uuid`, `json`, `jsonb`, `date`, `time`, `timestamp`, `timestamptz`, `interval`, enums,
//! `ltree`, PostGIS `geometry`/`geography` (ISO WKB or EWKB, given the SRID of the input
//! field's CRS), and, around any of those, arrays of any number of dimensions (nested Lists),
//! composites (Structs), ranges and multiranges (as pgarrow exports them), `hstore` (a Map),
//! pgvector `vector` and `halfvec` (Lists of floats) and `sparsevec` (a Struct{dim, indices,
//! values}), through domains.
//!
//! A column of any other type (`inet`, `bit`, `tsvector`, `point`, ...) whose input is text
//! is a *text column*
//! ([`RowEncoder::text_columns`]): its values are sent as text, and the caller loads them
//! through a table of text columns and a cast (`CAST(value AS type)`), so that the server's
//! own input function reads them, as it reads what pgarrow's export gives for such types.

#![warn(missing_docs)]

pub mod crs;
pub mod error;
mod json;
mod nested;
mod numeric;
mod read;
mod scalar;
mod shape;
mod temporal;
mod variant;

use std::sync::atomic::Ordering::Relaxed;

use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema};
use pgarrow_types::{Catalog, PgColumn};

use error::TargetKind;
pub use error::{EncodeError, ErrorKind};
use nested::field;
use read::Strs;
use scalar::ScalarEncoder;
pub use scalar::{Target, TextLimit};

/// Whether a Struct's fields are Parquet's Variant as readers give it (a binary `metadata`,
/// a binary `value` and/or a shredded `typed_value`): it loads as its JSON.
pub fn is_variant(fields: &arrow_schema::Fields) -> bool {
    variant::is_variant(fields)
}
use shape::{Encoder, Shape};
use temporal::WriteCx;

/// The 19-byte header of a binary COPY stream: signature, flags, no extension.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The trailer of a binary COPY stream: a field count of -1.
pub const TRAILER: &[u8] = &[0xff, 0xff];

/// What a load does with an input value its column cannot hold exactly. Every default
/// refuses (the error names the policy that would take the value); every other choice is
/// counted ([`RowEncoder::rounded`]). [`EncodePolicies::default`], then `with_*`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncodePolicies {
    /// Nanoseconds that are not whole microseconds (timestamps, times, durations, intervals):
    /// PostgreSQL keeps microseconds.
    pub nanoseconds: Nanoseconds,
}

/// What to do with nanoseconds that are not whole microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Nanoseconds {
    /// Refuse the value, naming row, column and value.
    #[default]
    Error,
    /// Round half to even, as PostgreSQL rounds its own input, and count it.
    Round,
}

impl std::str::FromStr for Nanoseconds {
    type Err = pgarrow_types::ChoiceError;

    /// `error` or `round`: the CLI's `--nanoseconds`, Python's `nanoseconds=` and ADBC's
    /// `pgarrow.nanoseconds`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "error" => Ok(Nanoseconds::Error),
            "round" => Ok(Nanoseconds::Round),
            other => Err(pgarrow_types::ChoiceError::new(
                "nanoseconds policy",
                other,
                "error or round",
            )),
        }
    }
}

impl std::fmt::Display for Nanoseconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Nanoseconds::Error => "error",
            Nanoseconds::Round => "round",
        })
    }
}

impl EncodePolicies {
    /// Nanoseconds that are not whole microseconds: `nanoseconds`.
    pub fn with_nanoseconds(mut self, nanoseconds: Nanoseconds) -> Self {
        self.nanoseconds = nanoseconds;
        self
    }
}

/// One target column and how its input is converted.
#[derive(Debug)]
struct Column {
    name: String,
    pg_type: String,
    encoder: Encoder,
    input: DataType,
    /// Sent as text, for the caller to cast.
    text: bool,
    /// Values whose nanoseconds were rounded, over every batch encoded.
    rounded: std::sync::atomic::AtomicU64,
}

impl Clone for Column {
    fn clone(&self) -> Self {
        Column {
            name: self.name.clone(),
            pg_type: self.pg_type.clone(),
            encoder: self.encoder.clone(),
            input: self.input.clone(),
            text: self.text,
            rounded: self.rounded.load(Relaxed).into(),
        }
    }
}

/// Encodes record batches into binary COPY rows for one target table.
#[derive(Debug, Clone)]
pub struct RowEncoder {
    columns: Vec<Column>,
    policies: EncodePolicies,
}

impl RowEncoder {
    /// An encoder writing `input`'s columns, in order, into the target columns `targets` (as
    /// many), whose types `catalog` describes (arrays, composites, domains, enums, ranges and
    /// extension types; built-in scalars need nothing).
    ///
    /// ```
    /// use arrow_schema::{DataType, Field, Schema};
    /// use pgarrow_encode::RowEncoder;
    /// use pgarrow_types::{Catalog, PgColumn, oid};
    ///
    /// let targets = [PgColumn::new("id", oid::INT8, -1), PgColumn::new("name", oid::TEXT, -1)];
    /// let input = Schema::new(vec![
    ///     Field::new("id", DataType::Int32, false),
    ///     Field::new("name", DataType::Utf8View, true),
    /// ]);
    /// let encoder = RowEncoder::new(&targets, &Catalog::new(), &input)?;
    /// assert!(encoder.text_columns().is_empty());
    ///
    /// // A column that cannot go into its target is refused here, not at the first row.
    /// let wrong = Schema::new(vec![
    ///     Field::new("id", DataType::Utf8, false),
    ///     Field::new("name", DataType::Utf8, true),
    /// ]);
    /// let e = RowEncoder::new(&targets, &Catalog::new(), &wrong).unwrap_err();
    /// assert_eq!((e.column(), e.pg_type()), (Some("id"), Some("bigint")));
    /// # Ok::<(), pgarrow_encode::EncodeError>(())
    /// ```
    ///
    /// # Errors
    /// The counts differ, or an input column's Arrow type cannot be converted into its
    /// target's type; the error names the column and both types.
    pub fn new<'a>(
        targets: impl IntoIterator<Item = &'a PgColumn>,
        catalog: &Catalog,
        input: &Schema,
    ) -> Result<RowEncoder, EncodeError> {
        RowEncoder::with_policies(targets, catalog, input, EncodePolicies::default())
    }

    /// [`new`](RowEncoder::new) with `policies` for the values that cannot be held exactly.
    ///
    /// # Errors
    /// As [`new`](RowEncoder::new).
    pub fn with_policies<'a>(
        targets: impl IntoIterator<Item = &'a PgColumn>,
        catalog: &Catalog,
        input: &Schema,
        policies: EncodePolicies,
    ) -> Result<RowEncoder, EncodeError> {
        let targets: Vec<&PgColumn> = targets.into_iter().collect();
        if targets.len() != input.fields().len() {
            return Err(ErrorKind::ColumnCount {
                input: input.fields().len(),
                target: targets.len(),
            }
            .into());
        }
        let columns = targets
            .into_iter()
            .zip(input.fields())
            .enumerate()
            .map(|(index, (c, field))| {
                let t = field.data_type();
                let parsed = match Shape::resolve(c.oid, c.typmod, catalog) {
                    // Text where the target takes no text in binary: an array's, a
                    // composite's or a range's literal (`[0:1]={1,2}`), or a value pgarrow's
                    // export gave as the server's text (`--out-of-range text`, `--array-shape
                    // text`: the field says `pgarrow.cast`). The server's input function
                    // reads it, exactly.
                    Some(shape) => match (shape.encoder(t), Strs::of(t)) {
                        (Ok(encoder), _) => Ok((encoder, false)),
                        (Err(_), Some(strs)) if shape.is_nested() || is_server_text(field) => Ok((
                            Encoder::Scalar(ScalarEncoder::Text(TextLimit::None, strs)),
                            true,
                        )),
                        (Err(e), _) => Err(e),
                    },
                    // No binary encoder: the server reads the text with the type's input
                    // function.
                    // Arrow's null type: NULL in any column, whatever its type.
                    None if *t == DataType::Null => Ok((Encoder::Null, false)),
                    None => match Strs::of(t) {
                        Some(strs) => Ok((
                            Encoder::Scalar(ScalarEncoder::Text(TextLimit::None, strs)),
                            true,
                        )),
                        None => Err(ErrorKind::Unsupported {
                            input: t.clone(),
                            target: TargetKind::TextForm,
                        }
                        .into()),
                    },
                };
                let (mut encoder, text) =
                    parsed.map_err(|e: EncodeError| e.in_column(index, &c.name, &c.type_name))?;
                if let Encoder::Scalar(ScalarEncoder::Wkb(_, srid)) = &mut encoder {
                    *srid = field_srid(field);
                }
                Ok(Column {
                    name: c.name.clone(),
                    pg_type: c.type_name.clone(),
                    encoder,
                    input: t.clone(),
                    text,
                    rounded: 0.into(),
                })
            })
            .collect::<Result<Vec<_>, EncodeError>>()?;
        Ok(RowEncoder { columns, policies })
    }

    /// The values rounded under [`Nanoseconds::Round`] so far, per column (by name, in
    /// column order; columns with none are left out).
    pub fn rounded(&self) -> Vec<(String, u64)> {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.rounded.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
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
        let round = self.policies.nanoseconds == Nanoseconds::Round;
        let cxs: Vec<WriteCx> = self.columns.iter().map(|_| WriteCx::new(round)).collect();
        let written = self.encode_in(batch, first_row, out, &cxs);
        // Counted whether or not the batch was written whole: a failed batch fails the load.
        for (c, cx) in self.columns.iter().zip(&cxs) {
            c.rounded.fetch_add(cx.rounded.get(), Relaxed);
        }
        written
    }

    fn encode_in(
        &self,
        batch: &RecordBatch,
        first_row: u64,
        out: &mut Vec<u8>,
        cxs: &[WriteCx],
    ) -> Result<(), EncodeError> {
        let writers = self
            .columns
            .iter()
            .zip(batch.columns())
            .zip(cxs)
            .enumerate()
            .map(|(index, ((c, array), cx))| {
                if *array.data_type() != c.input {
                    return Err(EncodeError::from(ErrorKind::TypeChanged {
                        found: array.data_type().clone(),
                        expected: Some(c.input.clone()),
                    })
                    .in_column(index, &c.name, &c.pg_type));
                }
                c.encoder
                    .writer(array.as_ref(), cx)
                    .map_err(|e| e.in_column(index, &c.name, &c.pg_type))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let count = i16::try_from(self.columns.len())
            .map_err(|_| ErrorKind::TooManyColumns(self.columns.len()))?;
        for row in 0..batch.num_rows() {
            out.extend_from_slice(&count.to_be_bytes());
            for (index, ((c, w), array)) in self
                .columns
                .iter()
                .zip(&writers)
                .zip(batch.columns())
                .enumerate()
            {
                if read::null_at(array.as_ref(), row) {
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                    continue;
                }
                field(out, |out| w(row, out)).map_err(|e| {
                    e.in_column(index, &c.name, &c.pg_type)
                        .in_row(first_row + row as u64 + 1)
                })?;
            }
        }
        Ok(())
    }
}

/// The field metadata pgarrow's export writes on a column it read as the server's text.
const META_CAST: &str = "pgarrow.cast";

/// The field metadata a lake table's files carry on a value given its text form (a `uuid`
/// or a `time` in Delta, a wide `numeric`): `pgarrow.form = text`.
const META_FORM: &str = "pgarrow.form";

/// Whether `field` holds the server's text of its values (pgarrow's export cast it, or a lake
/// format holds them as text).
fn is_server_text(field: &arrow_schema::Field) -> bool {
    field.metadata().get(META_CAST).is_some_and(|c| c == "text")
        || field.metadata().get(META_FORM).is_some_and(|c| c == "text")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMicrosecondType};
    use arrow_array::{
        ArrayRef, Float64Array, Int32Array, Int64Array, ListArray, StringArray,
        TimestampNanosecondArray,
    };
    use arrow_schema::{Field, TimeUnit};
    use pgarrow_decode::{CopyDecoder, DecodeOptions};
    use pgarrow_types::{CatalogKind, CatalogType, oid};

    use super::error::Step;
    use super::*;

    fn schema(types: &[DataType]) -> Schema {
        Schema::new(
            types
                .iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("c{i}"), t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    fn batch(columns: Vec<ArrayRef>) -> RecordBatch {
        let types: Vec<DataType> = columns.iter().map(|c| c.data_type().clone()).collect();
        RecordBatch::try_new(Arc::new(schema(&types)), columns).unwrap()
    }

    /// A catalog with `int4[]` (1007) and a composite `pair(a int4, b text)` (90001).
    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        let mut add = |oid, name: &str, kind| {
            c.insert(CatalogType {
                oid,
                schema: "public".into(),
                name: name.into(),
                display: name.into(),
                kind,
            })
        };
        add(1007, "_int4", CatalogKind::Array { element: oid::INT4 });
        let attribute = |name: &str, oid| pgarrow_types::Attribute {
            name: name.into(),
            oid,
            typmod: -1,
            display: String::new(),
            dims: 0,
        };
        add(
            90001,
            "pair",
            CatalogKind::Composite {
                fields: vec![attribute("a", oid::INT4), attribute("b", oid::TEXT)],
            },
        );
        c
    }

    #[test]
    fn nanoseconds_words_round_trip() {
        for word in ["error", "round"] {
            assert_eq!(word.parse::<Nanoseconds>().unwrap().to_string(), word);
        }
        let e = "truncate".parse::<Nanoseconds>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown nanoseconds policy \"truncate\" (expected error or round)"
        );
    }

    #[test]
    fn a_mismatch_names_the_column_and_both_types() {
        let targets = [
            PgColumn::new("id", oid::INT4, -1),
            PgColumn::new("at", oid::TIMESTAMPTZ, -1),
        ];
        let e = RowEncoder::new(
            &targets,
            &Catalog::new(),
            &schema(&[DataType::Int64, DataType::Utf8]),
        )
        .unwrap_err();
        assert_eq!(
            (e.column(), e.column_index(), e.pg_type(), e.row()),
            (Some("at"), Some(1), Some("timestamp with time zone"), None)
        );
        assert_eq!(
            *e.kind(),
            ErrorKind::Unsupported {
                input: DataType::Utf8,
                target: TargetKind::Scalar
            }
        );
        let shown = e.to_string();
        for part in ["\"at\"", "timestamp with time zone", "Arrow Utf8"] {
            assert!(shown.contains(part), "{shown}");
        }
        // float8 into float4 would round: refused for the column, not at a value.
        let e = RowEncoder::new(
            [&PgColumn::new("f", oid::FLOAT4, -1)],
            &Catalog::new(),
            &schema(&[DataType::Float64]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("Float64"), "{e}");
        // money takes no floats (binary fractions are not cents).
        let mut money = Catalog::new();
        money.set_money_scale(2);
        let e = RowEncoder::new(
            [&PgColumn::new("m", oid::MONEY, -1)],
            &money,
            &schema(&[DataType::Float64]),
        )
        .unwrap_err();
        assert_eq!(e.pg_type(), Some("money"));
        let e = RowEncoder::new(&targets[..1], &Catalog::new(), &schema(&[])).unwrap_err();
        assert_eq!(
            *e.kind(),
            ErrorKind::ColumnCount {
                input: 0,
                target: 1
            }
        );
        // About no column in particular: none is named.
        assert_eq!(e.to_string(), "the input has 0 columns and the target 1");
    }

    #[test]
    fn nested_mismatches_say_where() {
        let c = catalog();
        let list_of = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
        let array = [PgColumn {
            type_name: "integer[]".into(),
            ..PgColumn::new("xs", 1007, -1)
        }];
        let e = RowEncoder::new(&array, &c, &schema(&[list_of(DataType::Utf8)])).unwrap_err();
        assert!(e.to_string().contains("its elements: an Arrow Utf8"), "{e}");
        assert_eq!(e.path(), [Step::Elements]);
        let e = RowEncoder::new(&array, &c, &schema(&[DataType::Int32])).unwrap_err();
        assert!(e.to_string().contains("a List can"), "{e}");
        assert!(matches!(
            e.kind(),
            ErrorKind::Unsupported {
                target: TargetKind::Array,
                ..
            }
        ));
        // Seven list levels: one more than PostgreSQL's arrays have.
        let deep = (0..7).fold(DataType::Int32, |t, _| list_of(t));
        let e = RowEncoder::new(&array, &c, &schema(&[deep])).unwrap_err();
        assert!(e.to_string().contains("6 array dimensions"), "{e}");
        assert!(matches!(e.kind(), ErrorKind::TooManyDimensions(_)));
        let pair = [PgColumn::new("p", 90001, -1)];
        let fields = vec![
            Field::new("a", DataType::Int32, true),
            Field::new("z", DataType::Utf8, true),
        ];
        let e =
            RowEncoder::new(&pair, &c, &schema(&[DataType::Struct(fields.into())])).unwrap_err();
        assert!(e.to_string().contains("\"z\" is not an attribute"), "{e}");
        assert_eq!(
            *e.kind(),
            ErrorKind::NotAnAttribute {
                field: "z".into(),
                attributes: vec!["a".into(), "b".into()]
            }
        );
        let fields = vec![Field::new("b", DataType::Int32, true)];
        let e =
            RowEncoder::new(&pair, &c, &schema(&[DataType::Struct(fields.into())])).unwrap_err();
        assert!(e.to_string().contains("attribute \"b\": "), "{e}");
        assert_eq!(e.path(), [Step::Attribute("b".into())]);
    }

    #[test]
    fn types_without_a_binary_encoder_are_text_columns() {
        let inet = [PgColumn::new("addr", oid::INET, -1)];
        let encoder = RowEncoder::new(&inet, &Catalog::new(), &schema(&[DataType::Utf8])).unwrap();
        assert_eq!(encoder.text_columns(), [0]);
        let e = RowEncoder::new(&inet, &Catalog::new(), &schema(&[DataType::Int32])).unwrap_err();
        assert!(e.to_string().contains("(a text column)"), "{e}");
        assert!(matches!(
            e.kind(),
            ErrorKind::Unsupported {
                target: TargetKind::TextForm,
                ..
            }
        ));
    }

    #[test]
    fn a_batch_of_another_type_is_an_error_not_a_panic() {
        let targets = [PgColumn::new("id", oid::INT8, -1)];
        let encoder =
            RowEncoder::new(&targets, &Catalog::new(), &schema(&[DataType::Int64])).unwrap();
        let wrong = batch(vec![Arc::new(Int32Array::from(vec![1]))]);
        let e = encoder.encode(&wrong, 0, &mut Vec::new()).unwrap_err();
        assert_eq!((e.column(), e.row()), (Some("id"), None));
        assert_eq!(
            *e.kind(),
            ErrorKind::TypeChanged {
                found: DataType::Int32,
                expected: Some(DataType::Int64)
            }
        );
        let shown = e.to_string();
        assert!(shown.contains("Int32") && shown.contains("Int64"), "{e}");
    }

    /// Encodes `columns` into `targets` (rounding nanoseconds), then decodes the COPY stream
    /// with the decoder.
    fn round_trip(targets: Vec<PgColumn>, columns: Vec<ArrayRef>) -> RecordBatch {
        let batch = batch(columns);
        let policies = EncodePolicies {
            nanoseconds: Nanoseconds::Round,
        };
        let encoder =
            RowEncoder::with_policies(&targets, &Catalog::new(), &batch.schema(), policies)
                .unwrap();
        let mut out = HEADER.to_vec();
        encoder.encode(&batch, 0, &mut out).unwrap();
        out.extend_from_slice(TRAILER);
        let mut decoder = CopyDecoder::new(targets, DecodeOptions::default()).unwrap();
        assert_eq!(decoder.decode(&out).unwrap(), out.len());
        decoder.finish().unwrap().unwrap()
    }

    #[test]
    fn the_decoder_reads_back_what_is_written() {
        let out = round_trip(
            vec![
                PgColumn::new("n", oid::INT8, -1),
                PgColumn::new("s", oid::TEXT, -1),
                PgColumn::new("x", oid::NUMERIC, -1),
                PgColumn::new("t", oid::TIMESTAMP, -1),
            ],
            vec![
                Arc::new(Int32Array::from(vec![Some(-7), None, Some(i32::MAX)])),
                Arc::new(StringArray::from(vec![Some("é"), Some(""), None])),
                Arc::new(Float64Array::from(vec![0.1, f64::NAN, -2.5e-7])),
                Arc::new(TimestampNanosecondArray::from(vec![1_500, 2_500, 0])),
            ],
        );
        let n = out.column(0).as_primitive::<Int64Type>();
        assert_eq!(
            n.iter().collect::<Vec<_>>(),
            [Some(-7), None, Some(2_147_483_647)]
        );
        let s = out.column(1).as_string::<i32>();
        assert_eq!(s.iter().collect::<Vec<_>>(), [Some("é"), Some(""), None]);
        let x = out.column(2).as_string::<i32>();
        assert_eq!(
            x.iter().collect::<Vec<_>>(),
            [Some("0.1"), Some("NaN"), Some("-0.00000025")]
        );
        // Nanoseconds round half to even, as PostgreSQL rounds its input.
        let t = out.column(3).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(t.values().to_vec(), [2, 2, 0]);
        assert_eq!(
            *out.schema().field(3).data_type(),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
    }

    #[test]
    fn nanoseconds_are_refused_or_rounded_and_counted() {
        let targets = [
            PgColumn::new("t", oid::TIMESTAMP, -1),
            PgColumn::new("d", oid::INTERVAL, -1),
        ];
        let b = batch(vec![
            Arc::new(TimestampNanosecondArray::from(vec![2_000, 1, 500, 1_500])),
            Arc::new(arrow_array::DurationNanosecondArray::from(vec![
                1_000, 0, 0, 7,
            ])),
        ]);
        // By default the first value that is not whole microseconds is refused, by row.
        let strict = RowEncoder::new(&targets, &Catalog::new(), &b.schema()).unwrap();
        let e = strict.encode(&b, 0, &mut Vec::new()).unwrap_err();
        assert_eq!((e.column(), e.row()), (Some("t"), Some(2)));
        assert_eq!(
            *e.kind(),
            ErrorKind::Nanoseconds {
                what: error::Temporal::Timestamp,
                nanos: 1
            }
        );
        let shown = e.to_string();
        assert!(
            shown.contains("1 ns") && shown.contains("--nanoseconds round"),
            "{e}"
        );
        // Whole microseconds go through untouched, and nothing is counted.
        let whole = b.slice(0, 1);
        strict.encode(&whole, 0, &mut Vec::new()).unwrap();
        assert!(strict.rounded().is_empty());
        // Rounding: counted per column, over every batch.
        let policies = EncodePolicies {
            nanoseconds: Nanoseconds::Round,
        };
        let lenient =
            RowEncoder::with_policies(&targets, &Catalog::new(), &b.schema(), policies).unwrap();
        lenient.encode(&b, 0, &mut Vec::new()).unwrap();
        lenient.encode(&b.slice(1, 1), 4, &mut Vec::new()).unwrap();
        assert_eq!(
            lenient.rounded(),
            [("t".to_owned(), 4), ("d".to_owned(), 1)]
        );
        assert_eq!("round".parse(), Ok(Nanoseconds::Round));
        assert!("truncate".parse::<Nanoseconds>().is_err());
    }

    #[test]
    fn only_microseconds_hold_the_infinity_sentinel() {
        let targets = [PgColumn::new("t", oid::TIMESTAMP, -1)];
        let encode = |column: ArrayRef| {
            let b = batch(vec![column]);
            let encoder = RowEncoder::new(&targets, &Catalog::new(), &b.schema()).unwrap();
            let mut out = Vec::new();
            encoder.encode(&b, 0, &mut out).map(|()| out)
        };
        // i64::MAX microseconds: infinity, as pgarrow and DuckDB write it.
        let out = encode(Arc::new(arrow_array::TimestampMicrosecondArray::from(
            vec![i64::MAX],
        )))
        .unwrap();
        assert_eq!(out[6..], i64::MAX.to_be_bytes());
        // i64::MAX nanoseconds is pandas' Timestamp.max, 2262-04-11 23:47:16.854775807: a
        // finite instant, refused for its nanoseconds (never infinity).
        let e = encode(Arc::new(TimestampNanosecondArray::from(vec![i64::MAX]))).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::Nanoseconds {
                    nanos: i64::MAX,
                    ..
                }
            ),
            "{e}"
        );
        // i64::MAX seconds is past the range.
        let e = encode(Arc::new(arrow_array::TimestampSecondArray::from(vec![
            i64::MAX,
        ])))
        .unwrap_err();
        assert!(e.to_string().contains("outside timestamp's range"), "{e}");
        assert_eq!(
            *e.kind(),
            ErrorKind::OutOfRange(error::OutOfRange::Timestamp {
                value: i64::MAX,
                unit: TimeUnit::Second
            })
        );
    }

    #[test]
    fn a_value_that_does_not_fit_names_its_row() {
        let targets = [PgColumn::new("small", oid::INT2, -1)];
        let values = Int64Array::from(vec![1, 40_000]);
        let b = batch(vec![Arc::new(values)]);
        let encoder = RowEncoder::new(&targets, &Catalog::new(), &b.schema()).unwrap();
        let e = encoder.encode(&b, 10, &mut Vec::new()).unwrap_err();
        assert_eq!(e.row(), Some(12));
        assert_eq!(
            e.to_string(),
            "column \"small\" (smallint), row 12: 40000 is out of its range (-32768 to 32767)"
        );
        assert_eq!(
            *e.kind(),
            ErrorKind::OutOfRange(error::OutOfRange::Integer {
                value: 40_000,
                min: -32_768,
                max: 32_767
            })
        );
        // An array's elements are checked the same way.
        let c = catalog();
        let array = [PgColumn::new("xs", 1007, -1)];
        let list = ListArray::from_iter_primitive::<Int64Type, _, _>([Some(vec![
            Some(1),
            None,
            Some(1 << 40),
        ])]);
        let b = batch(vec![Arc::new(list)]);
        let encoder = RowEncoder::new(&array, &c, &b.schema()).unwrap();
        let e = encoder.encode(&b, 0, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("row 1: element 3: "), "{e}");
        assert_eq!(e.path(), [Step::Element(3)]);
        assert!(matches!(
            e.kind(),
            ErrorKind::OutOfRange(error::OutOfRange::Integer {
                value: 1_099_511_627_776,
                ..
            })
        ));
    }
}

/// The SRID a geometry field's CRS names: GeoArrow's `ARROW:extension:metadata`, its `"crs"`
/// an authority code (as pgarrow's exports, and its reading of GeoParquet, write it), a
/// PROJJSON object with an EPSG id (as other writers' Arrow files have it) or a bare SRID
/// ([`crs`]); 0 when it names none.
fn field_srid(field: &arrow_schema::Field) -> i32 {
    field
        .metadata()
        .get("ARROW:extension:metadata")
        .and_then(|meta| crs::extension_srid(meta))
        .unwrap_or(0)
}

#[cfg(test)]
mod srid_tests {
    use super::*;

    #[test]
    fn a_fields_crs_names_its_srid() {
        let field = |meta: &str| {
            arrow_schema::Field::new("g", DataType::Binary, true).with_metadata(
                std::collections::HashMap::from([(
                    "ARROW:extension:metadata".to_owned(),
                    meta.to_owned(),
                )]),
            )
        };
        let f = field(r#"{"crs":"EPSG:3857","crs_type":"authority_code"}"#);
        assert_eq!(field_srid(&f), 3857);
        assert_eq!(field_srid(&field("{}")), 0);
        assert_eq!(field_srid(&field(r#"{"crs":"OGC:CRS84"}"#)), 4326);
        assert_eq!(field_srid(&field(r#"{"crs":"ESRI:102003"}"#)), 0);
        let projjson = r#"{"crs":{"type":"ProjectedCRS","id":{"authority":"EPSG","code":32633}}}"#;
        assert_eq!(field_srid(&field(projjson)), 32633);
        assert_eq!(
            field_srid(&arrow_schema::Field::new("g", DataType::Binary, true)),
            0
        );
    }
}
