//! The library's error: what failed, sorted by what the caller can do about it, with the rows
//! delivered before it.

use std::fmt;

use arrow_schema::ArrowError;

use crate::protocol::{DbError, ErrorKind as WireKind};

/// A failure of any pgarrow call, with the number of rows delivered before it.
///
/// [`kind`](Error::kind) says what failed; [`category`](Error::category) (and the `is_*`
/// methods) says what the caller can do about it: fix the call, check the server or the
/// network, fix a value, free the output, or report a bug. Wrapped errors stay reachable
/// through [`std::error::Error::source`].
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
    /// The call asks for something impossible or contradictory: an invalid name or option, a
    /// statement that returns no rows, a file that is not what it should be. Nothing ran.
    Usage(String),
    /// Connecting failed (the settings, the network, TLS, authentication, or the server
    /// refusing the session); nothing ran.
    Connect(pgarrow_protocol::Error),
    /// The server reported an error (with its SQLSTATE), or the connection failed or broke
    /// while working.
    Protocol(pgarrow_protocol::Error),
    /// The server answered in a way pgarrow does not expect (a catalog query, a snapshot):
    /// a server, proxy or extension pgarrow does not understand.
    Unexpected(String),
    /// The COPY data could not be decoded into Arrow: a value (column, row) has no exact form
    /// under the options, or the bytes are malformed.
    Decode(pgarrow_decode::Error),
    /// A value or a column cannot go into its target column (a load): the error says what
    /// was wrong ([`encode::ErrorKind`](crate::encode::ErrorKind)), and where.
    Encode(pgarrow_encode::EncodeError),
    /// Reading a load's input failed.
    Input(ArrowError),
    /// An input holds what it must not (a change file with an unknown operation, a manifest
    /// out of order): the message says what and where.
    InvalidInput(String),
    /// The data cannot be applied as it is: a change lacks a value its target needs, or the
    /// target is not in step with the source the changes came from.
    OutOfStep(String),
    /// An optimistic commit lost its race: another writer changed the lake table since it was
    /// read (a version taken, a file ended, a catalog row moved). Nothing was committed; the
    /// caller reads the table again and retries ([`Error::is_conflict`]).
    Conflict(String),
    /// The server's row count does not match the rows decoded.
    RowCount {
        /// Rows the server says it sent.
        server: u64,
        /// Rows decoded.
        decoded: u64,
    },
    /// Reading an input file, writing an output or reaching an object store failed, or the
    /// call asked the files for something impossible ([`io::Error`](crate::io::Error) says
    /// which: [`is_usage`](crate::io::Error::is_usage),
    /// [`is_input`](crate::io::Error::is_input), else an output that failed).
    Io(pgarrow_io::Error),
    /// A [`RecordBatchWriter`](arrow_array::RecordBatchWriter) given to
    /// [`Export::write_to`](crate::Export::write_to) failed.
    Write(ArrowError),
    /// The work was stopped through its [`Stop`](crate::Stop): the server query was
    /// cancelled, nothing was written (a load rolled back).
    Cancelled,
    /// An error explained by what was being done (a part of a partitioned export, a table of
    /// several); the cause is its `source()`.
    Context {
        /// What was being done.
        what: String,
        /// The cause.
        source: Box<Error>,
    },
    /// Something pgarrow itself got wrong (a worker thread panicked, ...): a bug to report.
    Internal(String),
    /// A service the work needs besides the server (an Iceberg REST catalog) did not answer,
    /// or answered that it cannot serve now (HTTP 429, 502, 503, 504): the network or the
    /// service. Trying again later may succeed ([`Error::is_transient`]).
    Unavailable(String),
}

/// What the caller can do about an [`Error`]: the coarse class that exit statuses, Python
/// exception classes and retries are chosen by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Category {
    /// Fix the call: an argument, an option, the connection settings, an input file's shape.
    Usage,
    /// No session: the server could not be reached or refused the connection.
    Connection,
    /// The server reported an error while working (see [`Error::code`]), or the connection
    /// broke.
    Server,
    /// A value cannot be converted exactly (the message names the column and row), or data
    /// cannot be applied as it is (a change lacks a key, the target is out of step).
    Value,
    /// Reading the input of a load failed.
    Input,
    /// Writing the output failed.
    Output,
    /// The caller stopped the work.
    Cancelled,
    /// A bug in pgarrow.
    Internal,
}

impl Error {
    /// What failed.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The innermost error under any [`ErrorKind::Context`], and under an input that failed
    /// with pgarrow's own error (the source of a copy, a manifest's count): what failed.
    fn root(&self) -> &Error {
        let mut e = self;
        loop {
            e = match &*e.kind {
                ErrorKind::Context { source, .. } => source,
                ErrorKind::Input(ArrowError::ExternalError(inner)) => {
                    match inner.downcast_ref::<Error>() {
                        Some(inner) => inner,
                        None => return e,
                    }
                }
                _ => return e,
            };
        }
    }

    /// What the caller can do about it.
    pub fn category(&self) -> Category {
        match &*self.root().kind {
            ErrorKind::Usage(_) => Category::Usage,
            ErrorKind::Connect(p) if matches!(p.kind(), WireKind::Config(_)) => Category::Usage,
            ErrorKind::Connect(_) | ErrorKind::Unavailable(_) => Category::Connection,
            ErrorKind::Protocol(p) => match p.kind() {
                WireKind::Config(_) => Category::Usage,
                WireKind::Connect { .. } | WireKind::Auth(_) | WireKind::Tls { .. } => {
                    Category::Connection
                }
                _ => Category::Server,
            },
            ErrorKind::Unexpected(_) | ErrorKind::RowCount { .. } | ErrorKind::Conflict(_) => {
                Category::Server
            }
            ErrorKind::Decode(_) | ErrorKind::Encode(_) | ErrorKind::OutOfStep(_) => {
                Category::Value
            }
            ErrorKind::InvalidInput(_) => Category::Input,
            ErrorKind::Input(ArrowError::ExternalError(inner)) => {
                match inner.downcast_ref::<pgarrow_io::Error>() {
                    Some(io) if io.is_usage() => Category::Usage,
                    _ => Category::Input,
                }
            }
            ErrorKind::Input(_) => Category::Input,
            ErrorKind::Io(e) if e.is_usage() => Category::Usage,
            ErrorKind::Io(e) if e.is_input() => Category::Input,
            ErrorKind::Io(_) | ErrorKind::Write(_) => Category::Output,
            ErrorKind::Cancelled => Category::Cancelled,
            ErrorKind::Internal(_) => Category::Internal,
            ErrorKind::Context { .. } => unreachable!("root() looks under every context"),
        }
    }

    /// The call asked for something impossible (see [`Category::Usage`]).
    pub fn is_usage(&self) -> bool {
        self.category() == Category::Usage
    }

    /// An input (a file, a lake table another writer made) holds what it must not, or what
    /// pgarrow does not read: [`ErrorKind::InvalidInput`] under any context. A data error, not
    /// the call's: the command line's exit status 3, Python's `pgarrow.DataError`.
    pub fn is_invalid_input(&self) -> bool {
        matches!(&*self.root().kind, ErrorKind::InvalidInput(_))
    }

    /// An optimistic commit lost its race to another writer ([`ErrorKind::Conflict`] under
    /// any context): nothing was committed, and reading the table again and retrying may
    /// succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(&*self.root().kind, ErrorKind::Conflict(_))
    }

    /// No session could be had (see [`Category::Connection`]).
    pub fn is_connection(&self) -> bool {
        self.category() == Category::Connection
    }

    /// Whether the same work tried again later may succeed: the connection to the server
    /// could not be made or broke (the network, a restart, the server shutting down or out
    /// of connections or resources), the server refused for a passing reason (a
    /// serialization failure, a deadlock, an object in use: a replication slot whose last
    /// reader the server has not yet seen go), or an object store or catalog did not answer.
    /// What the call or its data got wrong (settings, a refused password, a value) is not.
    pub fn is_transient(&self) -> bool {
        match &*self.root().kind {
            ErrorKind::Connect(p) | ErrorKind::Protocol(p) => match p.kind() {
                WireKind::Connect { .. }
                | WireKind::Io(_)
                | WireKind::Closed
                | WireKind::Timeout(_)
                | WireKind::Broken(_) => true,
                WireKind::Db(db) => transient_state(&db.code),
                _ => false,
            },
            ErrorKind::Unavailable(_) => true,
            ErrorKind::Io(e) => e.is_transient(),
            ErrorKind::Input(ArrowError::ExternalError(inner)) => inner
                .downcast_ref::<pgarrow_io::Error>()
                .is_some_and(pgarrow_io::Error::is_transient),
            _ => false,
        }
    }

    /// A value could not be converted exactly (see [`Category::Value`]).
    pub fn is_value(&self) -> bool {
        self.category() == Category::Value
    }

    /// Writing the output failed (see [`Category::Output`]).
    pub fn is_output(&self) -> bool {
        self.category() == Category::Output
    }

    /// Whether the work was stopped by its caller.
    pub fn is_cancelled(&self) -> bool {
        self.category() == Category::Cancelled
    }

    /// Whether writing failed because the reader of a pipe closed it (`| head`): the reader
    /// has what it wanted.
    pub fn is_broken_pipe(&self) -> bool {
        if !self.is_output() {
            return false;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(c) = cause {
            if c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return true;
            }
            cause = c.source();
        }
        false
    }

    /// Rows delivered to the caller before the failure, when the export had started.
    pub fn rows_delivered(&self) -> Option<u64> {
        self.rows
    }

    /// The server's error, if the server sent one.
    pub fn as_db_error(&self) -> Option<&DbError> {
        match &*self.root().kind {
            ErrorKind::Protocol(e) | ErrorKind::Connect(e) => e.as_db_error(),
            _ => None,
        }
    }

    /// The server's SQLSTATE, if the server sent an error.
    pub fn code(&self) -> Option<&str> {
        self.as_db_error().map(|e| e.code.as_str())
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

    /// An [`ErrorKind::Usage`] error: the call must change. For crates built over the engine
    /// (`pgarrow-changes`), as for the engine itself.
    pub fn usage(msg: impl Into<String>) -> Self {
        ErrorKind::Usage(msg.into()).into()
    }

    /// An [`ErrorKind::InvalidInput`] error: an input holds what it must not.
    pub fn invalid_input(msg: impl Into<String>) -> Self {
        ErrorKind::InvalidInput(msg.into()).into()
    }

    /// An [`ErrorKind::OutOfStep`] error: the data cannot be applied as it is.
    pub fn out_of_step(msg: impl Into<String>) -> Self {
        ErrorKind::OutOfStep(msg.into()).into()
    }

    /// An [`ErrorKind::Unexpected`] error: the server answered in a way pgarrow does not
    /// expect.
    pub fn unexpected(msg: impl Into<String>) -> Self {
        ErrorKind::Unexpected(msg.into()).into()
    }

    /// An [`ErrorKind::Internal`] error: a bug in pgarrow.
    pub fn internal(msg: impl Into<String>) -> Self {
        ErrorKind::Internal(msg.into()).into()
    }

    /// This error, explained by what was being done ([`ErrorKind::Context`]); its category
    /// stays the cause's.
    pub fn context(mut self, what: impl Into<String>) -> Self {
        // The rows are said once, by the outer error.
        let rows = self.rows.take();
        let mut e = Error::from(ErrorKind::Context {
            what: what.into(),
            source: Box::new(self),
        });
        e.rows = rows;
        e
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

impl From<pgarrow_types::InvalidName> for Error {
    fn from(e: pgarrow_types::InvalidName) -> Self {
        Error::usage(e.0)
    }
}

impl From<pgarrow_types::ChoiceError> for Error {
    /// A word that names none of an option's choices: the call must change.
    fn from(e: pgarrow_types::ChoiceError) -> Self {
        Error::usage(e.to_string())
    }
}

impl From<pgarrow_decode::Error> for Error {
    fn from(e: pgarrow_decode::Error) -> Self {
        ErrorKind::Decode(e).into()
    }
}

impl From<pgarrow_io::Error> for Error {
    fn from(e: pgarrow_io::Error) -> Self {
        ErrorKind::Io(e).into()
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
            ErrorKind::Protocol(e) | ErrorKind::Connect(e) => e.fmt(f)?,
            ErrorKind::Decode(e) => e.fmt(f)?,
            ErrorKind::Encode(e) => e.fmt(f)?,
            // pgarrow's own error, raised by an input it made (a manifest's file, the source
            // of a copy), says what failed itself.
            ErrorKind::Input(ArrowError::ExternalError(e))
                if e.is::<Error>() || e.is::<pgarrow_io::Error>() =>
            {
                e.fmt(f)?
            }
            ErrorKind::Input(ArrowError::ExternalError(e)) => {
                write!(f, "reading the input failed: {e}")?
            }
            ErrorKind::Input(e) => write!(f, "reading the input failed: {e}")?,
            ErrorKind::Usage(m)
            | ErrorKind::Unexpected(m)
            | ErrorKind::InvalidInput(m)
            | ErrorKind::OutOfStep(m)
            | ErrorKind::Conflict(m)
            | ErrorKind::Unavailable(m) => f.write_str(m)?,
            ErrorKind::RowCount { server, decoded } => write!(
                f,
                "the server reported {server} rows but {decoded} were decoded"
            )?,
            // An object store's failure under a sink's I/O error is told as itself: which
            // object, what was done, and whether the call must change.
            ErrorKind::Io(e) => match e.storage() {
                Some(storage) => storage.fmt(f)?,
                None => e.fmt(f)?,
            },
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
            ErrorKind::Protocol(e) | ErrorKind::Connect(e) => Some(e),
            ErrorKind::Decode(e) => Some(e),
            ErrorKind::Encode(e) => Some(e),
            // The wrapped error itself, not its "External error" wrapper.
            ErrorKind::Input(ArrowError::ExternalError(e)) => Some(e.as_ref()),
            ErrorKind::Input(e) => Some(e),
            ErrorKind::Io(e) => Some(e),
            ErrorKind::Write(e) => Some(e),
            ErrorKind::Context { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// Whether a SQLSTATE says trying again later may succeed: a connection exception (class
/// 08), insufficient resources (53), the server shutting down or not yet up (57P01-57P03), a
/// serialization failure or deadlock (40001, 40P01), an object in use or a lock not
/// available (55006, 55P03).
fn transient_state(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "55006" | "55P03"
        )
}

/// A specialized `Result` for exports.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_failures_are_transient_under_any_context_and_the_calls_are_not() {
        let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let broke = Error::from(ErrorKind::Protocol(cut.into())).context("mirror of t");
        assert!(broke.is_transient(), "{broke}");
        let catalog = Error::from(ErrorKind::Unavailable("the catalog did not answer".into()));
        assert!(catalog.is_transient() && catalog.is_connection());
        assert!(!Error::usage("no such table").is_transient());
        assert!(!Error::from(ErrorKind::OutOfStep("gone".into())).is_transient());
        assert!(!Error::from(ErrorKind::Conflict("lost".into())).is_transient());
        for code in ["08006", "57P01", "53300", "40001", "40P01", "55006"] {
            assert!(transient_state(code), "{code}");
        }
        for code in ["42P01", "28P01", "57P04", "22003", "XX000"] {
            assert!(!transient_state(code), "{code}");
        }
    }

    #[test]
    fn a_lost_race_is_a_conflict_by_its_kind_under_any_context() {
        let e = Error::from(ErrorKind::Conflict(
            "another writer committed version 3".into(),
        ))
        .context("Delta table t")
        .context("mirror");
        assert!(e.is_conflict());
        assert_eq!(e.category(), Category::Server);
        assert!(
            e.to_string()
                .ends_with("another writer committed version 3"),
            "{e}"
        );
        // The same words in another kind are no conflict.
        let other = Error::unexpected("another writer committed version 3");
        assert!(!other.is_conflict());
        // Through an input's Arrow error, as a reader hands it on.
        let through = Error::from(ErrorKind::Input(ArrowError::ExternalError(Box::new(
            Error::from(ErrorKind::Conflict("moved".into())),
        ))));
        assert!(through.is_conflict());
    }

    #[test]
    fn categories_look_under_context() {
        let e = Error::usage("bad").context("table t");
        assert_eq!(e.category(), Category::Usage);
        assert!(e.is_usage() && !e.is_connection());
        let config = crate::protocol::Config::parse("port=0").unwrap_err();
        assert!(Error::from(config).is_usage());
        let cancelled = Error::from(ErrorKind::Cancelled).context("part 3");
        assert!(cancelled.is_cancelled());
        assert_eq!(Error::internal("x").category(), Category::Internal);
    }

    #[test]
    fn broken_pipes_are_found_through_the_sources() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let e = Error::from(pgarrow_io::Error::Stdout(io));
        assert!(e.is_broken_pipe(), "{e}");
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!Error::from(pgarrow_io::Error::Stdout(other)).is_broken_pipe());
    }
}
