//! The decoder's error type.

use std::borrow::Cow;
use std::fmt;

use arrow_schema::ArrowError;

/// A specialized `Result` for decoding.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from the binary COPY decoder.
///
/// The kind is boxed so that `Result<T, Error>` stays one pointer wide on the hot path.
#[derive(Debug)]
pub struct Error(Box<ErrorKind>);

/// What went wrong, with the position where it happened.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The bytes are not a valid binary COPY stream (bad signature, field count, truncation).
    Protocol {
        /// Byte offset in the COPY stream where the problem was found.
        offset: u64,
        /// 1-based row number being decoded, 0 while in the header.
        row: u64,
        /// What was wrong.
        message: Cow<'static, str>,
    },
    /// One field could not be decoded, or represented exactly in its Arrow type.
    Value {
        /// 1-based row number.
        row: u64,
        /// 0-based column index.
        column: usize,
        /// Column name as the server reported it.
        name: String,
        /// PostgreSQL type name of the column.
        pg_type: String,
        /// Byte offset in the COPY stream where the field's value starts, when known (not
        /// for what is found when a batch is built, such as invalid UTF-8).
        offset: Option<u64>,
        /// What was wrong with the value.
        cause: FieldError,
    },
    /// A column's type has no decoder and was not cast to text.
    Unsupported {
        /// 0-based column index.
        column: usize,
        /// Column name.
        name: String,
        /// PostgreSQL type OID.
        oid: u32,
        /// PostgreSQL type name.
        pg_type: String,
    },
    /// Building an Arrow array or batch failed.
    Arrow(ArrowError),
}

impl Error {
    /// The kind of error.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// Consumes the error, returning its kind.
    pub fn into_kind(self) -> ErrorKind {
        *self.0
    }

    /// The 1-based row the error is about, if it is about a row.
    pub fn row(&self) -> Option<u64> {
        match &*self.0 {
            ErrorKind::Protocol { row, .. } | ErrorKind::Value { row, .. } if *row > 0 => {
                Some(*row)
            }
            _ => None,
        }
    }

    pub(crate) fn protocol(offset: u64, row: u64, message: impl Into<Cow<'static, str>>) -> Self {
        Error(Box::new(ErrorKind::Protocol {
            offset,
            row,
            message: message.into(),
        }))
    }

    pub(crate) fn new(kind: ErrorKind) -> Self {
        Error(Box::new(kind))
    }

    /// Adds `base` (wrapping) to a value error's offset: the row loops record where a value
    /// starts in their input, and their callers know where that input starts in the stream.
    #[cold]
    pub(crate) fn rebased(mut self, base: u64) -> Self {
        if let ErrorKind::Value {
            offset: Some(offset),
            ..
        } = &mut *self.0
        {
            *offset = offset.wrapping_add(base);
        }
        self
    }
}

impl From<ArrowError> for Error {
    fn from(e: ArrowError) -> Self {
        Error(Box::new(ErrorKind::Arrow(e)))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            ErrorKind::Protocol {
                offset,
                row,
                message,
            } => {
                write!(f, "invalid binary COPY data at byte {offset}")?;
                if *row > 0 {
                    write!(f, " (row {row})")?;
                }
                write!(f, ": {message}")
            }
            ErrorKind::Value {
                row,
                column,
                name,
                pg_type,
                cause,
                ..
            } => write!(
                f,
                "row {row}, column {} \"{name}\" ({pg_type}): {cause}",
                column + 1
            ),
            ErrorKind::Unsupported {
                column,
                name,
                oid,
                pg_type,
            } => write!(
                f,
                "column {} \"{name}\": type {pg_type} (oid {oid}) has no binary decoder",
                column + 1
            ),
            ErrorKind::Arrow(e) => write!(f, "building Arrow data: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            ErrorKind::Arrow(e) => Some(e),
            ErrorKind::Value { cause, .. } => cause.source(),
            _ => None,
        }
    }
}

/// A value with no exact Arrow form, which a policy may turn into NULL or a clamped value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// `infinity` / `Infinity`.
    PosInfinity,
    /// `-infinity` / `-Infinity`.
    NegInfinity,
    /// numeric `NaN`.
    NaN,
    /// `time` 24:00:00.
    Time2400,
    /// Past the largest value Arrow's type holds.
    AboveRange,
    /// Before the smallest value Arrow's type holds.
    BelowRange,
    /// A numeric too large (or too precise) for its decimal.
    Overflow,
}

/// Why a single field could not be decoded, in typed form: building one allocates nothing for
/// the scalar types, so the wire parsers (`*_from_sql`) serve the decoder's fast path as well
/// as its general one. The decoder adds the row, column, type and byte offset
/// ([`ErrorKind::Value`]).
///
/// It is two words wide (what is rare and large is boxed), so that the `Result`s the wire
/// parsers return inside the row loop stay small.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldError {
    /// A fixed-size type's field has another size.
    Size {
        /// The PostgreSQL type.
        ty: WireType,
        /// Its size on the wire.
        expected: u8,
        /// The field's size.
        got: u32,
    },
    /// A version byte other than 1 (`jsonb`, `ltree`), or an empty field.
    Version {
        /// The PostgreSQL type.
        ty: WireType,
        /// The version byte, `None` for an empty field.
        version: Option<u8>,
    },
    /// A value PostgreSQL holds but the Arrow type cannot: the policies decide what happens
    /// (see [`special`](FieldError::special)).
    Unrepresentable(Unrepresentable),
    /// A `time` outside a day (PostgreSQL never sends one).
    TimeOfDay(i64),
    /// Anything else wrong with a value, chiefly the structure of a nested one (arrays,
    /// composites, ranges, maps) or a numeric, described.
    Invalid(Box<Cow<'static, str>>),
    /// A value the policies were asked to refuse: the value's error, and how to accept it.
    Refused(Box<Refusal>),
}

/// A value the policies refused ([`FieldError::Refused`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What the value is.
    pub error: FieldError,
    /// What the policy says, and the options that would accept the value.
    pub policy: &'static str,
}

/// The scalar wire formats, as size and version errors name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireType {
    /// `bool`.
    Bool,
    /// `"char"`.
    Char,
    /// `int2`.
    Int2,
    /// `int4`.
    Int4,
    /// `int8`.
    Int8,
    /// `oid`.
    Oid,
    /// `float4`.
    Float4,
    /// `float8`.
    Float8,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `timetz`.
    Timetz,
    /// `timestamp` and `timestamptz`.
    Timestamp,
    /// `interval`.
    Interval,
    /// `uuid`.
    Uuid,
    /// `jsonb`.
    Jsonb,
    /// `ltree`.
    Ltree,
}

impl WireType {
    /// The type's name in PostgreSQL.
    pub fn name(self) -> &'static str {
        match self {
            WireType::Bool => "bool",
            WireType::Char => "\"char\"",
            WireType::Int2 => "int2",
            WireType::Int4 => "int4",
            WireType::Int8 => "int8",
            WireType::Oid => "oid",
            WireType::Float4 => "float4",
            WireType::Float8 => "float8",
            WireType::Date => "date",
            WireType::Time => "time",
            WireType::Timetz => "timetz",
            WireType::Timestamp => "timestamp",
            WireType::Interval => "interval",
            WireType::Uuid => "uuid",
            WireType::Jsonb => "jsonb",
            WireType::Ltree => "ltree",
        }
    }
}

impl fmt::Display for WireType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A valid PostgreSQL value with no exact Arrow form.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unrepresentable {
    /// `date` `infinity` or `-infinity` ([`Special::PosInfinity`] or `NegInfinity`).
    DateInfinity(Special),
    /// A date Date32 cannot hold (days from 2000-01-01).
    DateRange(i32),
    /// `time` 24:00:00.
    Time2400,
    /// `timestamp` `infinity` or `-infinity`.
    TimestampInfinity(Special),
    /// A timestamp past Arrow's last microsecond (294247 AD).
    TimestampRange,
    /// `interval` `infinity` or `-infinity` (PostgreSQL 17).
    IntervalInfinity(Special),
    /// An interval whose time part (microseconds) overflows nanoseconds.
    IntervalRange(i64),
    /// A numeric NaN or ±Infinity, or a value that does not fit its decimal, described.
    Numeric(Special, Box<Cow<'static, str>>),
}

impl Unrepresentable {
    /// The kind of special value.
    pub fn special(&self) -> Special {
        match self {
            Unrepresentable::DateInfinity(s)
            | Unrepresentable::TimestampInfinity(s)
            | Unrepresentable::IntervalInfinity(s)
            | Unrepresentable::Numeric(s, _) => *s,
            Unrepresentable::DateRange(_) | Unrepresentable::TimestampRange => Special::AboveRange,
            Unrepresentable::Time2400 => Special::Time2400,
            Unrepresentable::IntervalRange(us) if *us > 0 => Special::AboveRange,
            Unrepresentable::IntervalRange(_) => Special::BelowRange,
        }
    }
}

fn sign(s: Special) -> &'static str {
    if s == Special::NegInfinity { "-" } else { "" }
}

impl fmt::Display for Unrepresentable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unrepresentable::DateInfinity(s) => write!(
                f,
                "date '{}infinity' has no Date32 value of its own",
                sign(*s)
            ),
            Unrepresentable::DateRange(d) => {
                write!(f, "date {d} days from 2000-01-01 out of range")
            }
            Unrepresentable::Time2400 => f.write_str(
                "time 24:00:00 is outside Arrow Time64's range (00:00:00 to 23:59:59.999999)",
            ),
            Unrepresentable::TimestampInfinity(s) => write!(
                f,
                "timestamp '{}infinity' has no Timestamp value of its own",
                sign(*s)
            ),
            Unrepresentable::TimestampRange => f.write_str(
                "timestamp is past Arrow Timestamp(us)'s last finite instant, \
                 294247-01-10 04:00:54.775806 (the next is the value that means infinity; \
                 PostgreSQL's range goes on to 294276 AD)",
            ),
            Unrepresentable::IntervalInfinity(s) => {
                write!(f, "interval '{}infinity' has no Arrow value", sign(*s))
            }
            Unrepresentable::IntervalRange(us) => write!(
                f,
                "interval time part of {us} us exceeds Arrow's nanosecond range (+-2562047 hours)"
            ),
            Unrepresentable::Numeric(_, message) => f.write_str(message),
        }
    }
}

impl FieldError {
    pub(crate) fn new(message: impl Into<Cow<'static, str>>) -> Self {
        FieldError::Invalid(Box::new(message.into()))
    }

    /// Set when the value is valid but has no exact Arrow form (the policies apply).
    pub fn special(&self) -> Option<Special> {
        match self {
            FieldError::Unrepresentable(u) => Some(u.special()),
            _ => None,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::Size { ty, expected, got } => {
                write!(f, "{ty} field has {got} bytes, expected {expected}")
            }
            FieldError::Version {
                ty,
                version: Some(v),
            } => write!(f, "unsupported {ty} version {v}"),
            FieldError::Version { ty, version: None } => write!(f, "empty {ty} field"),
            FieldError::Unrepresentable(u) => u.fmt(f),
            FieldError::TimeOfDay(t) => write!(f, "time {t} us is not within a day"),
            FieldError::Invalid(message) => f.write_str(message),
            FieldError::Refused(r) => write!(f, "{}, and {}", r.error, r.policy),
        }
    }
}

impl std::error::Error for FieldError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_are_two_words_wide() {
        // Kept small for the row loop (see `FieldError`).
        assert_eq!(std::mem::size_of::<FieldError>(), 16);
        assert_eq!(std::mem::size_of::<Result<i64, FieldError>>(), 16);
    }
}
