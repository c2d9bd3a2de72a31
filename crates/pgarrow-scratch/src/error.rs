//! The crate's error type.

use std::fmt;
use std::io;

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong, as a message that names the failed step (and, when the
/// server failed to start, ends with the tail of the server log), with its
/// [`ErrorKind`] and the underlying I/O error, if any, as its `source()`.
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    message: String,
    source: Option<io::Error>,
}

/// The kind of an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No PostgreSQL server binaries: [`find_bin_dir`](crate::find_bin_dir)
    /// found none, or the directory given lacks `initdb`, `pg_ctl` or
    /// `postgres`. The message says how to point at them.
    NoServerBinaries,
    /// An I/O operation failed: creating or writing a file, binding a port,
    /// running a program. The I/O error is the `source()`.
    Io,
    /// A program (`initdb`, `pg_ctl`, `psql`, `useradd`, ...) failed or
    /// printed something unexpected. The message holds its output.
    Command,
}

impl Error {
    /// An error of `kind` with `message` (for code that builds on a
    /// [`Cluster`](crate::Cluster) and reports its own failures in the same
    /// type).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            source: None,
        }))
    }

    /// An [`ErrorKind::Io`] error: `message` says what was being done,
    /// `source` is what went wrong.
    pub fn io(message: impl Into<String>, source: io::Error) -> Error {
        Error(Box::new(Inner {
            kind: ErrorKind::Io,
            message: message.into(),
            source: Some(source),
        }))
    }

    pub(crate) fn command(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Command, message)
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message, without the underlying I/O error (if any).
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.source {
            Some(source) => write!(f, "{}: {source}", self.0.message),
            None => f.write_str(&self.0.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source.as_ref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_source() {
        let e = Error::io(
            "cannot write /x",
            io::Error::new(io::ErrorKind::PermissionDenied, "denied"),
        );
        assert_eq!(e.kind(), ErrorKind::Io);
        assert_eq!(e.message(), "cannot write /x");
        assert_eq!(e.to_string(), "cannot write /x: denied");
        assert!(std::error::Error::source(&e).is_some());
        let e = Error::command("initdb failed");
        assert_eq!(e.kind(), ErrorKind::Command);
        assert_eq!(e.to_string(), "initdb failed");
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn error_is_small_and_sendable() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }
}
