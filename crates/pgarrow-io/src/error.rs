//! The I/O crate's error: what failed reading an input, writing an output or reaching an
//! object store, sorted so that the engine (and any other caller) can tell a call to fix from
//! a failure on the way.

use std::io;
use std::path::PathBuf;

use arrow_schema::ArrowError;
use parquet::errors::ParquetError;

use crate::store::StorageError;

/// A failure reading, writing or storing Arrow data.
///
/// [`is_usage`](Error::is_usage) and [`is_input`](Error::is_input) say what the caller can do
/// about it; anything else is an output that failed on its way (a disk, a network, a writer).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Creating, writing or renaming a file failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// Writing to standard output failed.
    #[error("writing to standard output: {0}")]
    Stdout(#[source] io::Error),
    /// The Parquet writer refused.
    #[error("Parquet: {0}")]
    Parquet(#[from] ParquetError),
    /// The Arrow IPC writer refused.
    #[error("Arrow IPC: {0}")]
    Arrow(#[from] ArrowError),
    /// The call asks for something impossible: an invalid option or name, no input, a
    /// directory without a manifest, a file that is not what it should be. Nothing ran.
    #[error("{0}")]
    Invalid(String),
    /// The format cannot hold this schema exactly (checked before any file is created).
    #[error("{0}")]
    Unsupported(String),
    /// An object store refused or failed: the bucket, the credentials, the permissions, the
    /// settings (usage), or the network and the service.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reading an input failed: a file that cannot be opened or read as its format.
    #[error("reading the input failed: {0}")]
    Input(#[source] ArrowError),
    /// An error explained by what was being done (the file being read).
    #[error("{what}: {source}")]
    Context {
        /// What was being done.
        what: String,
        /// The cause.
        source: Box<Error>,
    },
}

/// A specialized `Result` for inputs, outputs and object stores.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Invalid`]: the call must change.
    pub(crate) fn usage(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }

    /// This error, explained by what was being done.
    pub(crate) fn context(self, what: impl Into<String>) -> Error {
        Error::Context {
            what: what.into(),
            source: Box::new(self),
        }
    }

    /// The innermost error under any [`Error::Context`].
    pub fn root(&self) -> &Error {
        let mut e = self;
        while let Error::Context { source, .. } = e {
            e = source;
        }
        e
    }

    /// The object store's failure, whether it is this error or the I/O failure of a sink
    /// writing an object.
    pub fn storage(&self) -> Option<&StorageError> {
        match self.root() {
            Error::Storage(e) => Some(e),
            Error::Io { source, .. } => source.get_ref().and_then(|e| e.downcast_ref()),
            _ => None,
        }
    }

    /// Whether the call must change (an option, a name, a path, an input's shape, the object
    /// store's settings or credentials), rather than the work having failed on its way.
    pub fn is_usage(&self) -> bool {
        if let Some(storage) = self.storage() {
            return storage.is_usage();
        }
        matches!(self.root(), Error::Invalid(_) | Error::Unsupported(_))
    }

    /// Whether reading an input failed (its bytes, not the call).
    pub fn is_input(&self) -> bool {
        matches!(self.root(), Error::Input(_))
    }

    /// Whether trying again later may succeed: an object store that did not answer, or
    /// answered with a failure of its own (the network, the service), not one of the call's.
    pub fn is_transient(&self) -> bool {
        self.storage()
            .is_some_and(|s| s.problem == crate::StorageProblem::Other)
    }
}

impl From<Error> for ArrowError {
    /// For arrow interfaces (an input's `RecordBatchReader`): the error travels as
    /// [`ArrowError::ExternalError`] and can be downcast back.
    fn from(e: Error) -> Self {
        ArrowError::ExternalError(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_look_under_context() {
        let e = Error::usage("no input").context("reading x");
        assert!(e.is_usage() && !e.is_input(), "{e}");
        assert_eq!(e.to_string(), "reading x: no input");
        let input = Error::Input(ArrowError::ParseError("bad".into())).context("f.parquet");
        assert!(input.is_input() && !input.is_usage(), "{input}");
        let disk = Error::Io {
            what: "writing",
            path: "f".into(),
            source: io::Error::from(io::ErrorKind::StorageFull),
        };
        assert!(!disk.is_usage() && !disk.is_input() && disk.storage().is_none());
    }
}
