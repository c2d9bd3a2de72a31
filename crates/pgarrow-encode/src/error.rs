//! The encoder's error: what was wrong ([`ErrorKind`]), and where (the column, the row, and
//! the place inside a nested value, [`Step`]s), as the decoder's errors say it.
//!
//! The writers return an [`EncodeError`] that knows only what was wrong and where inside the
//! value; [`RowEncoder`](crate::RowEncoder) adds the column and the row. The error is one
//! pointer wide, so that the `Result`s of the row loop stay small.

use std::fmt;

use arrow_array::Array;
use arrow_schema::{DataType, TimeUnit};

use crate::scalar::TextLimit;

/// A value or a column that cannot go into its target: what was wrong ([`kind`]), in which
/// column ([`column`]), at which input row ([`row`]) and where inside a nested value
/// ([`path`]).
///
/// ```
/// use arrow_schema::{DataType, Field, Schema};
/// use pgarrow_encode::error::{ErrorKind, TargetKind};
/// use pgarrow_encode::RowEncoder;
/// use pgarrow_types::{Catalog, PgColumn, oid};
///
/// let targets = [PgColumn::new("id", oid::INT8, -1)];
/// let input = Schema::new(vec![Field::new("id", DataType::Utf8, false)]);
/// let e = RowEncoder::new(&targets, &Catalog::new(), &input).unwrap_err();
/// assert_eq!((e.column(), e.pg_type(), e.row()), (Some("id"), Some("bigint"), None));
/// assert!(matches!(
///     e.kind(),
///     ErrorKind::Unsupported { input: DataType::Utf8, target: TargetKind::Scalar }
/// ));
/// assert_eq!(
///     e.to_string(),
///     "column \"id\" (bigint): an Arrow Utf8 column cannot be loaded into it"
/// );
/// ```
///
/// [`kind`]: EncodeError::kind
/// [`column`]: EncodeError::column
/// [`row`]: EncodeError::row
/// [`path`]: EncodeError::path
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeError(Box<Inner>);

#[derive(Debug, Clone, PartialEq)]
struct Inner {
    column: Option<Column>,
    row: Option<u64>,
    /// Outermost first.
    path: Vec<Step>,
    kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq)]
struct Column {
    index: usize,
    name: String,
    pg_type: String,
}

impl EncodeError {
    /// What was wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// Consumes the error, returning what was wrong.
    pub fn into_kind(self) -> ErrorKind {
        self.0.kind
    }

    /// The target column's name; `None` when the error is about the input as a whole (its
    /// number of columns).
    pub fn column(&self) -> Option<&str> {
        self.0.column.as_ref().map(|c| c.name.as_str())
    }

    /// The target column's position (0-based), as [`column`](EncodeError::column).
    pub fn column_index(&self) -> Option<usize> {
        self.0.column.as_ref().map(|c| c.index)
    }

    /// The target column's PostgreSQL type, as the server names it (`bigint`,
    /// `numeric(12,2)`), as [`column`](EncodeError::column).
    pub fn pg_type(&self) -> Option<&str> {
        self.0.column.as_ref().map(|c| c.pg_type.as_str())
    }

    /// The input row (1-based, counted over every batch given, as the export's errors number
    /// theirs), for a value; `None` for a column refused before any row.
    pub fn row(&self) -> Option<u64> {
        self.0.row
    }

    /// Where inside a nested value (an array's element, a composite's attribute, a range's
    /// bound, ...), outermost first; empty for a scalar.
    pub fn path(&self) -> &[Step] {
        &self.0.path
    }

    /// The error, one level down in a nested value: `step` is where the value that failed is
    /// in the one being written.
    #[cold]
    pub(crate) fn at(mut self, step: Step) -> Self {
        self.0.path.insert(0, step);
        self
    }

    /// The error, in column `index` (`name`, of type `pg_type`).
    #[cold]
    pub(crate) fn in_column(mut self, index: usize, name: &str, pg_type: &str) -> Self {
        self.0.column = Some(Column {
            index,
            name: name.to_owned(),
            pg_type: pg_type.to_owned(),
        });
        self
    }

    /// The error, at input row `row`.
    #[cold]
    pub(crate) fn in_row(mut self, row: u64) -> Self {
        self.0.row = Some(row);
        self
    }

    /// An array that is not of the type its column was checked for.
    #[cold]
    pub(crate) fn changed(array: &dyn Array) -> Self {
        ErrorKind::TypeChanged {
            found: array.data_type().clone(),
            expected: None,
        }
        .into()
    }
}

impl From<ErrorKind> for EncodeError {
    #[cold]
    fn from(kind: ErrorKind) -> Self {
        EncodeError(Box::new(Inner {
            column: None,
            row: None,
            path: Vec::new(),
            kind,
        }))
    }
}

macro_rules! from_kind {
    ($($t:ident => $variant:ident),* $(,)?) => {$(
        impl From<$t> for EncodeError {
            #[cold]
            fn from(e: $t) -> Self {
                ErrorKind::$variant(e).into()
            }
        }
        impl From<$t> for ErrorKind {
            fn from(e: $t) -> Self {
                ErrorKind::$variant(e)
            }
        }
    )*};
}

from_kind! {
    OutOfRange => OutOfRange,
    Inexact => Inexact,
    NestedFault => Nested,
    JsonFault => Json,
    VariantFault => Variant,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.0.column {
            write!(f, "column \"{}\" ({})", c.name, c.pg_type)?;
            if let Some(row) = self.0.row {
                write!(f, ", row {row}")?;
            }
            f.write_str(": ")?;
        }
        for step in &self.0.path {
            write!(f, "{step}: ")?;
        }
        self.0.kind.fmt(f)
    }
}

impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.kind.source()
    }
}

/// What was wrong: with the input's columns (before any row), or with a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input has another number of columns than the target.
    #[error("the input has {input} columns and the target {target}")]
    ColumnCount {
        /// The input's columns.
        input: usize,
        /// The target's columns.
        target: usize,
    },
    /// More columns than a binary COPY row holds (32767).
    #[error("{0} columns: more than 32767")]
    TooManyColumns(usize),
    /// An Arrow type the target (or its part at the error's [`path`](EncodeError::path))
    /// does not take.
    #[error("{}", unsupported(.input, .target))]
    Unsupported {
        /// The input's Arrow type.
        input: DataType,
        /// What the target is, which says what it takes.
        target: TargetKind,
    },
    /// A struct field with no attribute of its name in the composite target.
    #[error(
        "the struct field {field:?} is not an attribute of the type (its attributes: {})",
        .attributes.join(", ")
    )]
    NotAnAttribute {
        /// The struct field's name.
        field: String,
        /// The composite's attributes.
        attributes: Vec<String>,
    },
    /// Lists nested deeper than PostgreSQL's arrays have dimensions (6).
    #[error("{0} nests lists deeper than PostgreSQL's 6 array dimensions")]
    TooManyDimensions(DataType),
    /// A batch whose column (or a part of it) is not of the type the input's schema gave.
    #[error("{}", type_changed(.found, .expected.as_ref()))]
    TypeChanged {
        /// The batch's Arrow type.
        found: DataType,
        /// The input schema's, when the column itself changed.
        expected: Option<DataType>,
    },
    /// A value outside its target type's range.
    #[error(transparent)]
    OutOfRange(OutOfRange),
    /// A value its target would round (or cut short): refused, never changed.
    #[error(transparent)]
    Inexact(Inexact),
    /// Nanoseconds that are not whole microseconds (PostgreSQL keeps microseconds), refused
    /// under [`Nanoseconds::Error`](crate::Nanoseconds::Error).
    #[error(
        "{what} {nanos} ns is not a whole number of microseconds, and PostgreSQL keeps \
         microseconds (the nanosecond policy is error: --nanoseconds round rounds them half to \
         even, as PostgreSQL rounds its input, and counts them)"
    )]
    Nanoseconds {
        /// What the value is.
        what: Temporal,
        /// The value, in nanoseconds (from 1970 for an instant).
        nanos: i64,
    },
    /// Text longer than its target's length limit.
    #[error("{}", too_long(.value, .limit, .chars))]
    TooLong {
        /// The value.
        value: String,
        /// The target's limit.
        limit: TextLimit,
        /// Its length in characters (for `char(n)`, without trailing spaces), or bytes for
        /// `name`.
        chars: usize,
    },
    /// Text that is not a value of its target type.
    #[error("{} is not {expected}", quoted(.value))]
    Invalid {
        /// The value.
        value: String,
        /// What it should be.
        expected: Expected,
    },
    /// Bytes that are not well-known binary, into a geometry.
    #[error("not a WKB geometry: {0}")]
    Wkb(pgarrow_types::wkb::WkbError),
    /// Text that is not a label of the target enum.
    #[error("{} is not a label of the enum (its labels: {})", quoted(.value), .labels.join(", "))]
    NotALabel {
        /// The value.
        value: String,
        /// The enum's labels.
        labels: Vec<String>,
    },
    /// A numeric NaN or infinity (from a float or text) into `money`, which has neither.
    #[error("money has no NaN or infinity")]
    MoneyNotFinite,
    /// A float with no decimal text `numeric` reads.
    #[error("{0} has no decimal form numeric can read")]
    NoDecimalForm(f64),
    /// A nested value PostgreSQL's type cannot hold as it is (a ragged array, a NULL where
    /// none goes, a repeated key).
    #[error(transparent)]
    Nested(NestedFault),
    /// A value with no JSON form (into `json`, `jsonb` or `text` as JSON).
    #[error(transparent)]
    Json(JsonFault),
    /// A Parquet Variant that is malformed or badly shredded.
    #[error(transparent)]
    Variant(VariantFault),
}

/// What a target is, as [`ErrorKind::Unsupported`] names it (each says which Arrow input it
/// takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetKind {
    /// A scalar type (the column's own, or an array's element, an attribute, ...).
    Scalar,
    /// A type with no binary encoder here, loaded from its text (a text column).
    TextForm,
    /// An array (a List takes it).
    Array,
    /// A composite (a Struct).
    Composite,
    /// A range (a Struct as pgarrow exports ranges).
    Range,
    /// A multirange (a List of ranges).
    Multirange,
    /// `hstore` (a Map of text to text).
    Hstore,
    /// pgvector `vector` or `halfvec` (a List or FixedSizeList of floats).
    Vector,
    /// pgvector `sparsevec` (a Struct{dim, indices, values}).
    SparseVec,
}

fn unsupported(t: &DataType, target: &TargetKind) -> String {
    match target {
        TargetKind::Scalar => format!("an Arrow {t} column cannot be loaded into it"),
        TargetKind::TextForm => format!(
            "an Arrow {t} column cannot be loaded into it: this type is loaded from its text \
             form (a text column)"
        ),
        TargetKind::Array => {
            format!("Arrow {t} values cannot be loaded into an array (a List can)")
        }
        TargetKind::Composite => {
            format!("an Arrow {t} column cannot be loaded into a composite (a Struct can)")
        }
        TargetKind::Range => format!(
            "an Arrow {t} column cannot be loaded into a range (a Struct{{lower, upper, \
             lower_inclusive, upper_inclusive, empty}} can, as pgarrow exports ranges)"
        ),
        TargetKind::Multirange => {
            format!("an Arrow {t} column cannot be loaded into a multirange (a List of ranges can)")
        }
        TargetKind::Hstore => {
            format!("an Arrow {t} column cannot be loaded into hstore (a Map of text to text can)")
        }
        TargetKind::Vector => format!(
            "an Arrow {t} column cannot be loaded into vector or halfvec (a List or \
             FixedSizeList of floats can)"
        ),
        TargetKind::SparseVec => format!(
            "an Arrow {t} column cannot be loaded into sparsevec (a Struct{{dim: integer, \
             indices: List of integers, 0-based, values: List of floats}} can, as pgarrow \
             exports sparsevec)"
        ),
    }
}

fn type_changed(found: &DataType, expected: Option<&DataType>) -> String {
    match expected {
        Some(expected) => format!(
            "the batch's type changed: an Arrow {found} column, where the input's schema has \
             {expected}"
        ),
        None => format!("the batch holds an Arrow {found} here: the input's type changed"),
    }
}

fn too_long(value: &str, limit: &TextLimit, chars: &usize) -> String {
    let (t, max) = match limit {
        TextLimit::Varchar(n) => ("character varying", n),
        TextLimit::Bpchar(n) => ("character", n),
        TextLimit::Name => {
            return format!(
                "{} is longer than a name's {} bytes",
                quoted(value),
                crate::scalar::NAME_MAX
            );
        }
        TextLimit::None => return format!("{} is too long", quoted(value)),
    };
    format!(
        "{} has {chars} characters, more than {t}({max}) holds",
        quoted(value)
    )
}

/// A value shown in a message: quoted, its first 60 characters.
pub(crate) fn quoted(s: &str) -> String {
    let shown: String = s.chars().take(60).collect();
    let more = if s.chars().count() > 60 { "..." } else { "" };
    format!("{shown:?}{more}")
}

/// What a text value should have been ([`ErrorKind::Invalid`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expected {
    /// A number, as `numeric_in` reads it.
    Number,
    /// A UUID.
    Uuid,
    /// A `"char"`, as `charout` writes it.
    Char,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expected::Number => "a number",
            Expected::Uuid => "a UUID",
            Expected::Char => "a \"char\" (one ASCII character, \\ooo, or empty)",
        })
    }
}

/// A date, time or duration value, as [`ErrorKind::Nanoseconds`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Temporal {
    /// A timestamp.
    Timestamp,
    /// A time of day.
    Time,
    /// An interval's time part.
    IntervalTime,
    /// A duration.
    Duration,
}

impl fmt::Display for Temporal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Temporal::Timestamp => "the timestamp",
            Temporal::Time => "the time",
            Temporal::IntervalTime => "the interval's time",
            Temporal::Duration => "the duration",
        })
    }
}

/// A value outside its target type's range ([`ErrorKind::OutOfRange`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutOfRange {
    /// An integer into an integer type (`int2`, `int4`, `int8`, `oid`).
    #[error("{value} is out of its range ({min} to {max})")]
    Integer {
        /// The value.
        value: i128,
        /// The type's smallest value.
        min: i128,
        /// The type's largest value.
        max: i128,
    },
    /// A date past `date`'s range.
    #[error("{days} days from 1970-01-01 is outside date's range (4713 BC to 5874897 AD)")]
    Date {
        /// Days from 1970-01-01.
        days: i64,
    },
    /// A timestamp past `timestamp`'s range.
    #[error("{value} ({unit:?} from 1970) is outside timestamp's range (4713 BC to 294276 AD)")]
    Timestamp {
        /// The value, in `unit`s from 1970-01-01.
        value: i64,
        /// Its unit.
        unit: TimeUnit,
    },
    /// A time of day outside 00:00:00 to 24:00:00.
    #[error("the time is outside 00:00:00 to 24:00:00")]
    Time,
    /// An interval whose time part overflows microseconds.
    #[error("the interval's time part overflows")]
    IntervalTime,
    /// A number past `money`'s range.
    #[error("{value} is outside money's range")]
    Money {
        /// The value, as decimal text.
        value: String,
    },
    /// A number with more digits before the point than `numeric(precision, scale)` has.
    #[error("{}", numeric_room(.value, .precision, .scale))]
    Numeric {
        /// The value, as decimal text.
        value: String,
        /// The target's precision.
        precision: u32,
        /// The target's scale.
        scale: i32,
    },
    /// More items (array elements, dimensions, map entries) than PostgreSQL takes.
    #[error("{0} items are more than PostgreSQL takes")]
    Items(usize),
    /// More dimensions than a pgvector `vector` holds.
    #[error("{0} dimensions: vector holds at most 16000")]
    VectorDimensions(usize),
    /// A `sparsevec` dimension outside 1..=i32::MAX.
    #[error("dimension {0}: a sparsevec has 1 to 2147483647")]
    SparseDimension(i128),
    /// A value of more bytes than a field holds.
    #[error("value over 2 GiB ({0} bytes)")]
    Size(usize),
}

fn numeric_room(value: &str, precision: &u32, scale: &i32) -> String {
    // PostgreSQL's rule: |v| < 10^(precision - scale).
    let room = i64::from(*precision) - i64::from(*scale);
    if room > 0 {
        format!(
            "{value} does not fit numeric({precision},{scale}): at most {room} digits before \
             the point"
        )
    } else {
        let bound = match room {
            0 => "1".to_owned(),
            n => format!("0.{}1", "0".repeat((-n - 1) as usize)),
        };
        format!(
            "{value} does not fit numeric({precision},{scale}): its absolute value must be \
             below {bound}"
        )
    }
}

/// A value its target would round or cut short ([`ErrorKind::Inexact`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Inexact {
    /// More decimal places than `numeric(precision, scale)` keeps.
    #[error(
        "{value} has more decimal places than numeric({precision},{scale}) keeps (it would be \
         rounded)"
    )]
    NumericScale {
        /// The value, as decimal text.
        value: String,
        /// The target's precision.
        precision: u32,
        /// The target's scale.
        scale: i32,
    },
    /// More decimal places than `money` keeps (the session's `lc_monetary`).
    #[error("{value} has more decimal places than money's {scale} (it would be rounded)")]
    MoneyScale {
        /// The value, as decimal text.
        value: String,
        /// Money's fraction digits.
        scale: i8,
    },
    /// A float8 that float4 does not hold exactly (a pgvector element).
    #[error("{value} is not exact in float4 (it would be rounded to {rounded})")]
    Float4 {
        /// The value.
        value: f64,
        /// What float4 would make of it.
        rounded: f32,
    },
    /// A float that half precision does not hold exactly (a pgvector `halfvec` element).
    #[error("{value} is not exact in halfvec's half precision (it would be {rounded})")]
    Half {
        /// The value.
        value: f64,
        /// What half precision would make of it (widened).
        rounded: f64,
    },
    /// A Date64 that is not a whole day.
    #[error("{ms} ms is not a whole day")]
    PartialDay {
        /// Milliseconds from 1970-01-01.
        ms: i64,
    },
}

/// A nested value PostgreSQL's type cannot hold as it is ([`ErrorKind::Nested`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NestedFault {
    /// A NULL list inside an array (a PostgreSQL array has no NULL sub-arrays).
    #[error("a NULL list at depth {depth}: a PostgreSQL array has no NULL sub-arrays")]
    NullSubArray {
        /// The list level (1 is the outermost).
        depth: usize,
    },
    /// Lists of different lengths at one level of an array (a PostgreSQL array is
    /// rectangular).
    #[error(
        "lists of {first} and {other} items at depth {depth}: a PostgreSQL array is rectangular"
    )]
    Ragged {
        /// The list level (1 is the outermost).
        depth: usize,
        /// The first list's length at that level.
        first: usize,
        /// Another list's length.
        other: usize,
    },
    /// A NULL item where the type holds none (a multirange's range, a vector's element).
    #[error("NULL (a {0} holds none)")]
    Null(Holder),
    /// A NULL `hstore` key.
    #[error("a NULL key (hstore keys cannot be NULL)")]
    NullKey,
    /// A `sparsevec` index out of order, repeated, or outside its dimension.
    #[error(
        "index {index} after {previous:?} in a sparsevec of dimension {dim}: indices are \
         0-based, increasing, below the dimension"
    )]
    SparseIndex {
        /// The index.
        index: i128,
        /// The index before it, if any.
        previous: Option<i128>,
        /// The vector's dimension.
        dim: i128,
    },
    /// A `sparsevec` whose indices and values differ in number.
    #[error("{indices} indices and {values} values: a sparsevec has one value per index")]
    SparseLengths {
        /// The number of indices.
        indices: usize,
        /// The number of values.
        values: usize,
    },
    /// A Map with a key twice, into a type that keeps one value per key.
    #[error("the map has the key {key:?} twice ({into} keeps one value per key)")]
    DuplicateKey {
        /// The key.
        key: String,
        /// What it goes into.
        into: Holder,
    },
}

/// A nested type, as [`NestedFault`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Holder {
    /// A multirange.
    Multirange,
    /// A pgvector `vector`.
    Vector,
    /// A pgvector `halfvec`.
    HalfVec,
    /// A pgvector `sparsevec`.
    SparseVec,
    /// `hstore`.
    Hstore,
    /// A JSON object.
    JsonObject,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Holder::Multirange => "multirange",
            Holder::Vector => "vector",
            Holder::HalfVec => "halfvec",
            Holder::SparseVec => "sparsevec",
            Holder::Hstore => "hstore",
            Holder::JsonObject => "a JSON object",
        })
    }
}

/// A value with no JSON form ([`ErrorKind::Json`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonFault {
    /// A float NaN or infinity (JSON has neither).
    #[error("{0} has no JSON form")]
    NotFinite(f64),
    /// A time past a day.
    #[error("{0} ns is not a time of day")]
    TimeOfDay(i64),
    /// An Arrow type with no JSON form here.
    #[error("an Arrow {0} value has no JSON form here")]
    Type(DataType),
}

/// Which part of a Variant value a [`VariantFault::Truncated`] ends inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VariantPart {
    /// An integer of the encoding (a count, an offset, an id).
    Integer,
    /// A value.
    Value,
    /// A decimal.
    Decimal,
}

impl fmt::Display for VariantPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VariantPart::Integer => "an integer",
            VariantPart::Value => "a value",
            VariantPart::Decimal => "a decimal",
        })
    }
}

/// What a shredded Variant holds, as [`VariantFault::ValueAndTyped`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shredded {
    /// An array.
    Array,
    /// A uuid.
    Uuid,
    /// A primitive (not an object).
    Primitive,
}

impl fmt::Display for Shredded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shredded::Array => "an array",
            Shredded::Uuid => "a uuid",
            Shredded::Primitive => "a value that is not an object",
        })
    }
}

/// A malformed or badly shredded Parquet Variant ([`ErrorKind::Variant`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VariantFault {
    /// A Variant column without its `metadata` field.
    #[error("a Variant without metadata")]
    NoMetadataColumn,
    /// A row whose metadata is NULL.
    #[error("a Variant without its metadata")]
    NoMetadata,
    /// Empty metadata bytes.
    #[error("empty metadata")]
    EmptyMetadata,
    /// Metadata of an unknown version.
    #[error("metadata of version {0} (1 is known)")]
    Version(u8),
    /// A dictionary claiming more keys than it has bytes.
    #[error("a dictionary of {keys} keys in {bytes} bytes")]
    DictionarySize {
        /// The keys it claims.
        keys: usize,
        /// Its bytes.
        bytes: usize,
    },
    /// Dictionary offsets out of order or past its end.
    #[error("dictionary offsets out of order or past its end")]
    DictionaryOffsets,
    /// A key id not in the dictionary.
    #[error("key {0} is not in the dictionary")]
    UnknownKey(usize),
    /// A dictionary key that is not UTF-8.
    #[error("key {0} is not UTF-8")]
    KeyNotUtf8(usize),
    /// The bytes end inside a part.
    #[error("it ends inside {0}")]
    Truncated(VariantPart),
    /// An empty value.
    #[error("an empty value")]
    EmptyValue,
    /// A value nested deeper than 256 levels.
    #[error("nested deeper than {0}")]
    TooDeep(usize),
    /// A string that is not UTF-8.
    #[error("a string that is not UTF-8")]
    NotUtf8,
    /// An array claiming more elements than it has bytes.
    #[error("an array of {elements} elements in {bytes} bytes")]
    ArraySize {
        /// The elements it claims.
        elements: usize,
        /// Its bytes.
        bytes: usize,
    },
    /// An array element starting past the array's end (0-based).
    #[error("element {0} starts past the array's end")]
    ElementPastEnd(usize),
    /// An object claiming more fields than it has bytes.
    #[error("an object of {fields} fields in {bytes} bytes")]
    ObjectSize {
        /// The fields it claims.
        fields: usize,
        /// Its bytes.
        bytes: usize,
    },
    /// An object field starting past the object's end (0-based).
    #[error("field {0} starts past the object's end")]
    FieldPastEnd(usize),
    /// A decimal of a scale past 38.
    #[error("a decimal of scale {0}")]
    DecimalScale(u8),
    /// A time outside a day.
    #[error("a time of {0} microseconds")]
    Time(i64),
    /// A primitive of a type the encoding does not define.
    #[error("a primitive of unknown type {0}")]
    UnknownPrimitive(usize),
    /// A `value` field that is not binary.
    #[error("a Variant value that is not binary")]
    ValueNotBinary,
    /// A shredding level with neither `value` nor `typed_value`.
    #[error("a shredded Variant level with neither value nor typed_value")]
    EmptyLevel,
    /// Shredding nested deeper than 256 levels.
    #[error("a shredded Variant nested deeper than {0}")]
    ShreddedTooDeep(usize),
    /// A shredded object's field that is not a group of `value` and `typed_value`.
    #[error("the shredded object field {0:?} is not a group of value and typed_value")]
    FieldNotGroup(String),
    /// A shredded array's elements that are not groups of `value` and `typed_value`.
    #[error("a shredded array whose elements are not groups of value and typed_value")]
    ElementsNotGroups,
    /// A `typed_value` of an Arrow type shredding does not use.
    #[error("a shredded Variant typed_value of Arrow type {0}")]
    TypedValueType(DataType),
    /// A shredded object whose `value` is not an object.
    #[error("a shredded object whose value is not an object")]
    NotAnObject,
    /// A field both shredded and in the object's `value`.
    #[error("field {0:?} is both shredded and in the object's value")]
    ShreddedTwice(String),
    /// Something other than an object with both a `value` and a `typed_value`.
    #[error("{0} with both a value and a typed_value")]
    ValueAndTyped(Shredded),
}

/// Where inside a nested value an error is ([`EncodeError::path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// An array's elements (a column's type checked against its element type).
    Elements,
    /// An element (1-based) of an array, a vector or a JSON list.
    Element(usize),
    /// A composite's attribute.
    Attribute(String),
    /// A range's lower bound.
    LowerBound,
    /// A range's upper bound.
    UpperBound,
    /// A range (1-based) of a multirange.
    Range(usize),
    /// A Struct's field, as a JSON object's member (or a shredded Variant object's field).
    Field(String),
    /// A Variant's metadata.
    VariantMetadata,
    /// A Variant's value.
    VariantValue,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Elements => f.write_str("its elements"),
            Step::Element(k) => write!(f, "element {k}"),
            Step::Attribute(name) => write!(f, "attribute {name:?}"),
            Step::LowerBound => f.write_str("lower bound"),
            Step::UpperBound => f.write_str("upper bound"),
            Step::Range(k) => write!(f, "range {k}"),
            Step::Field(name) => write!(f, "field {name:?}"),
            Step::VariantMetadata => f.write_str("Variant metadata"),
            Step::VariantValue => f.write_str("Variant value"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_is_one_pointer_wide() {
        // Kept small for the row loop (see the module's doc).
        assert_eq!(std::mem::size_of::<EncodeError>(), 8);
        assert_eq!(std::mem::size_of::<Result<(), EncodeError>>(), 8);
    }

    #[test]
    fn positions_and_steps_are_shown_outermost_first() {
        let e = EncodeError::from(OutOfRange::Integer {
            value: 40_000,
            min: -32_768,
            max: 32_767,
        })
        .at(Step::Element(3))
        .at(Step::Attribute("a".into()))
        .in_column(1, "p", "pair[]")
        .in_row(7);
        assert_eq!(
            e.to_string(),
            "column \"p\" (pair[]), row 7: attribute \"a\": element 3: 40000 is out of its range \
             (-32768 to 32767)"
        );
        assert_eq!(e.path(), [Step::Attribute("a".into()), Step::Element(3)]);
        assert_eq!((e.column_index(), e.row()), (Some(1), Some(7)));
        // About the input as a whole: no column to name.
        let e = EncodeError::from(ErrorKind::ColumnCount {
            input: 0,
            target: 1,
        });
        assert_eq!(e.to_string(), "the input has 0 columns and the target 1");
        assert_eq!(e.column(), None);
    }
}
