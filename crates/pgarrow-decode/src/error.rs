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
    /// One field could not be represented exactly in its Arrow type.
    Value {
        /// 1-based row number.
        row: u64,
        /// 0-based column index.
        column: usize,
        /// Column name as the server reported it.
        name: String,
        /// PostgreSQL type name of the column.
        pg_type: String,
        /// What was wrong with the value.
        message: Cow<'static, str>,
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
                message,
            } => write!(
                f,
                "row {row}, column {} \"{name}\" ({pg_type}): {message}",
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

/// Why a single field could not be decoded; the decoder adds the position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// What was wrong.
    pub message: Cow<'static, str>,
    /// Set when the value is valid but has no exact Arrow form (policies apply).
    pub special: Option<Special>,
}

impl FieldError {
    pub(crate) fn new(message: impl Into<Cow<'static, str>>) -> Self {
        FieldError {
            message: message.into(),
            special: None,
        }
    }

    pub(crate) fn special(special: Special, message: impl Into<Cow<'static, str>>) -> Self {
        FieldError {
            message: message.into(),
            special: Some(special),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FieldError {}
