//! The protocol crate's error type, and the server's own errors with every field kept.

use std::fmt;
use std::io;

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::ErrorFields;

/// A specialized `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error talking to PostgreSQL.
#[derive(Debug)]
pub struct Error(Box<ErrorKind>);

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection settings are invalid.
    Config(String),
    /// The server could not be reached.
    Connect {
        /// `user@host:port/db`, without the password.
        target: String,
        /// The underlying failure.
        source: io::Error,
    },
    /// Reading or writing the socket failed.
    Io(io::Error),
    /// The server closed the connection unexpectedly.
    Closed,
    /// An operation did not finish in time.
    Timeout(String),
    /// Authentication could not proceed (no password, unsupported method, bad server proof,
    /// channel binding refused).
    Auth(String),
    /// TLS could not be set up: the server refused it under a mode that requires it, a
    /// certificate did not verify, a key or certificate file is unusable, or the handshake
    /// failed.
    Tls {
        /// What failed, for people.
        message: String,
        /// The underlying TLS or I/O error, if any.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The server reported an error.
    Db(Box<DbError>),
    /// The server sent something that breaks the protocol.
    Protocol(String),
    /// The connection is unusable: it was left in the middle of a COPY or failed earlier.
    Broken(String),
}

impl Error {
    /// The kind of error.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// The server's error, if this is one.
    pub fn as_db_error(&self) -> Option<&DbError> {
        match &*self.0 {
            ErrorKind::Db(e) => Some(e),
            _ => None,
        }
    }

    /// The SQLSTATE code, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        self.as_db_error().map(|e| e.code.as_str())
    }

    pub(crate) fn new(kind: ErrorKind) -> Self {
        Error(Box::new(kind))
    }

    pub(crate) fn config(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config(msg.into()))
    }

    pub(crate) fn protocol(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol(msg.into()))
    }

    pub(crate) fn auth(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth(msg.into()))
    }

    pub(crate) fn tls(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Tls {
            message: msg.into(),
            source: None,
        })
    }

    pub(crate) fn tls_with(
        msg: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::new(ErrorKind::Tls {
            message: msg.into(),
            source: Some(source.into()),
        })
    }

    pub(crate) fn db(e: DbError) -> Self {
        Self::new(ErrorKind::Db(Box::new(e)))
    }

    pub(crate) fn timeout(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout(msg.into()))
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        // A reset or a TLS session ending without close_notify is the same event for the
        // caller as a clean close: the server went away mid-conversation.
        if matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        ) {
            return Error::new(ErrorKind::Closed);
        }
        Error::new(ErrorKind::Io(e))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            ErrorKind::Config(m) => write!(f, "invalid connection settings: {m}"),
            ErrorKind::Connect { target, source } => {
                write!(f, "could not connect to {target}: {source}")
            }
            ErrorKind::Io(e) => write!(f, "connection error: {e}"),
            ErrorKind::Closed => f.write_str("the server closed the connection unexpectedly"),
            ErrorKind::Timeout(m) => write!(f, "timed out: {m}"),
            ErrorKind::Auth(m) => write!(f, "authentication failed: {m}"),
            ErrorKind::Tls { message, source } => match source {
                Some(s) => write!(f, "TLS error: {message}: {s}"),
                None => write!(f, "TLS error: {message}"),
            },
            ErrorKind::Db(e) => e.fmt(f),
            ErrorKind::Protocol(m) => write!(f, "protocol error: {m}"),
            ErrorKind::Broken(m) => write!(f, "connection unusable: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            ErrorKind::Connect { source, .. } => Some(source),
            ErrorKind::Io(e) => Some(e),
            ErrorKind::Db(e) => Some(e.as_ref()),
            ErrorKind::Tls {
                source: Some(s), ..
            } => Some(s.as_ref()),
            _ => None,
        }
    }
}

/// An ErrorResponse or NoticeResponse from the server, every field kept.
///
/// `Display` gives one line: `SEVERITY: message (SQLSTATE code); DETAIL: ...; HINT: ...`.
///
/// Field meanings: PostgreSQL `doc/src/sgml/protocol.sgml`, "Error and Notice Message Fields".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbError {
    /// `ERROR`, `FATAL`, `PANIC`, `WARNING`, `NOTICE`, ... (not localized when available).
    pub severity: String,
    /// The SQLSTATE code.
    pub code: String,
    /// The primary message.
    pub message: String,
    /// Optional detail.
    pub detail: Option<String>,
    /// Optional hint.
    pub hint: Option<String>,
    /// Cursor position in the query string (1-based characters).
    pub position: Option<u32>,
    /// Position in an internally generated query.
    pub internal_position: Option<u32>,
    /// The internally generated query.
    pub internal_query: Option<String>,
    /// Context (call stack) of the error.
    pub where_: Option<String>,
    /// Schema name.
    pub schema: Option<String>,
    /// Table name.
    pub table: Option<String>,
    /// Column name.
    pub column: Option<String>,
    /// Data type name.
    pub datatype: Option<String>,
    /// Constraint name.
    pub constraint: Option<String>,
    /// Server source file.
    pub file: Option<String>,
    /// Server source line.
    pub line: Option<u32>,
    /// Server source routine.
    pub routine: Option<String>,
}

impl DbError {
    /// Reads the fields of an ErrorResponse or NoticeResponse.
    pub fn parse(fields: &mut ErrorFields<'_>) -> Result<DbError> {
        let mut e = DbError::default();
        let mut localized_severity = String::new();
        while let Some(field) = fields
            .next()
            .map_err(|err| Error::protocol(format!("malformed error fields: {err}")))?
        {
            let v = String::from_utf8_lossy(field.value_bytes()).into_owned();
            match field.type_() {
                b'S' => localized_severity = v,
                b'V' => e.severity = v,
                b'C' => e.code = v,
                b'M' => e.message = v,
                b'D' => e.detail = Some(v),
                b'H' => e.hint = Some(v),
                b'P' => e.position = v.parse().ok(),
                b'p' => e.internal_position = v.parse().ok(),
                b'q' => e.internal_query = Some(v),
                b'W' => e.where_ = Some(v),
                b's' => e.schema = Some(v),
                b't' => e.table = Some(v),
                b'c' => e.column = Some(v),
                b'd' => e.datatype = Some(v),
                b'n' => e.constraint = Some(v),
                b'F' => e.file = Some(v),
                b'L' => e.line = v.parse().ok(),
                b'R' => e.routine = Some(v),
                _ => {}
            }
        }
        if e.severity.is_empty() {
            e.severity = localized_severity;
        }
        Ok(e)
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (SQLSTATE {})",
            self.severity, self.message, self.code
        )?;
        if let Some(d) = &self.detail {
            write!(f, "; DETAIL: {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "; HINT: {h}")?;
        }
        Ok(())
    }
}

impl DbError {
    /// Whether the server ends the session after this error (severity `FATAL` or `PANIC`):
    /// no ReadyForQuery follows, the connection closes.
    pub fn is_fatal(&self) -> bool {
        matches!(self.severity.as_str(), "FATAL" | "PANIC")
    }
}

impl std::error::Error for DbError {}
