//! The library's error: what failed, with the rows delivered before it.

use std::fmt;

use arrow_schema::ArrowError;

use crate::protocol::DbError;

/// An export failure, with the number of rows delivered before it.
#[derive(Debug)]
pub struct Error {
    kind: Box<ErrorKind>,
    pub(crate) rows: Option<u64>,
    /// Whether the server's error was about the source's own SQL (see
    /// [`Error::query_position`]).
    in_query: bool,
}

/// What failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Connecting, a server error, or the protocol.
    Protocol(pgarrow_protocol::Error),
    /// The COPY data could not be decoded into Arrow.
    Decode(pgarrow_decode::Error),
    /// A value or a column cannot go into its target column (a load).
    Encode(pgarrow_encode::EncodeError),
    /// Reading a load's input failed.
    Input(ArrowError),
    /// The query cannot be exported (it returns no rows, it takes parameters, ...).
    Query(String),
    /// The server's row count does not match the rows decoded.
    RowCount {
        /// Rows the server says it sent.
        server: u64,
        /// Rows decoded.
        decoded: u64,
    },
    /// Creating, writing or finishing an output file failed.
    Sink(pgarrow_sink::Error),
    /// A [`RecordBatchWriter`](arrow_array::RecordBatchWriter) given to
    /// [`Export::write_to`](crate::Export::write_to) failed.
    Write(ArrowError),
    /// The export was cancelled (the cancel future of its [`Hooks`](crate::Hooks) resolved):
    /// the server query was cancelled and nothing was written.
    Cancelled,
    /// An error explained by what was being done (a part of a partitioned export, importing
    /// a snapshot); the cause is its `source()`.
    Context {
        /// What was being done.
        what: String,
        /// The cause.
        source: Box<Error>,
    },
    /// Something pgarrow itself got wrong (a worker thread panicked, ...): a bug to report.
    Internal(String),
}

impl Error {
    /// What failed.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Rows delivered to the caller before the failure, when the export had started.
    pub fn rows_delivered(&self) -> Option<u64> {
        self.rows
    }

    /// The server's error, if the server sent one.
    pub fn as_db_error(&self) -> Option<&DbError> {
        match &*self.kind {
            ErrorKind::Protocol(e) => e.as_db_error(),
            ErrorKind::Context { source, .. } => source.as_db_error(),
            _ => None,
        }
    }

    /// The server's SQLSTATE, if the server sent an error.
    pub fn code(&self) -> Option<&str> {
        self.as_db_error().map(|e| e.code.as_str())
    }

    /// Whether the export was cancelled by its caller.
    pub fn is_cancelled(&self) -> bool {
        match &*self.kind {
            ErrorKind::Cancelled => true,
            ErrorKind::Context { source, .. } => source.is_cancelled(),
            _ => false,
        }
    }

    /// Where in the source's SQL ([`Source::sql`](crate::Source::sql), which keeps a query's
    /// text as written up to its last token) the server's error points, in characters from
    /// 1: set for errors found while the query was parsed and described (a syntax error, an
    /// unknown column), to show the user the spot as psql does.
    pub fn query_position(&self) -> Option<u32> {
        match &*self.kind {
            _ if self.in_query => self.as_db_error().and_then(|e| e.position),
            ErrorKind::Context { source, .. } => source.query_position(),
            _ => None,
        }
    }

    /// Marks a server error as one about the source's SQL.
    pub(crate) fn in_query(mut self) -> Self {
        self.in_query = true;
        self
    }

    pub(crate) fn with_rows(mut self, rows: u64) -> Self {
        if self.rows.is_none() {
            self.rows = Some(rows);
        }
        self
    }

    pub(crate) fn query(msg: impl Into<String>) -> Self {
        ErrorKind::Query(msg.into()).into()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error {
            kind: Box::new(kind),
            rows: None,
            in_query: false,
        }
    }
}

impl From<pgarrow_protocol::Error> for Error {
    fn from(e: pgarrow_protocol::Error) -> Self {
        ErrorKind::Protocol(e).into()
    }
}

impl From<pgarrow_decode::Error> for Error {
    fn from(e: pgarrow_decode::Error) -> Self {
        ErrorKind::Decode(e).into()
    }
}

impl From<pgarrow_sink::Error> for Error {
    fn from(e: pgarrow_sink::Error) -> Self {
        ErrorKind::Sink(e).into()
    }
}

impl From<Error> for ArrowError {
    /// For arrow interfaces ([`RecordBatchReader`](arrow_array::RecordBatchReader)): the error
    /// travels as [`ArrowError::ExternalError`] and can be downcast back.
    fn from(e: Error) -> Self {
        ArrowError::ExternalError(Box::new(e))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            ErrorKind::Protocol(e) => e.fmt(f)?,
            ErrorKind::Decode(e) => e.fmt(f)?,
            ErrorKind::Encode(e) => e.fmt(f)?,
            ErrorKind::Input(ArrowError::ExternalError(e)) => {
                write!(f, "reading the input failed: {e}")?
            }
            ErrorKind::Input(e) => write!(f, "reading the input failed: {e}")?,
            ErrorKind::Query(m) => f.write_str(m)?,
            ErrorKind::RowCount { server, decoded } => write!(
                f,
                "the server reported {server} rows but {decoded} were decoded"
            )?,
            ErrorKind::Sink(e) => e.fmt(f)?,
            ErrorKind::Write(e) => write!(f, "the batch writer failed: {e}")?,
            ErrorKind::Cancelled => f.write_str("cancelled by the caller")?,
            ErrorKind::Internal(m) => write!(f, "internal error (a bug in pgarrow): {m}")?,
            ErrorKind::Context { what, source } => write!(f, "{what}: {source}")?,
        }
        if let Some(rows) = self.rows {
            write!(f, " [after {rows} rows]")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            ErrorKind::Protocol(e) => Some(e),
            ErrorKind::Decode(e) => Some(e),
            ErrorKind::Encode(e) => Some(e),
            ErrorKind::Input(e) => Some(e),
            ErrorKind::Sink(e) => Some(e),
            ErrorKind::Write(e) => Some(e),
            ErrorKind::Context { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// A specialized `Result` for exports.
pub type Result<T, E = Error> = std::result::Result<T, E>;
