//! The exceptions: pgarrow's error, its class chosen by what the caller can do about it.

use pgarrow::Category;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyType;

pyo3::create_exception!(
    _pgarrow,
    Error,
    PyException,
    "Base class of pgarrow's errors. Attributes: `sqlstate` and `server_message` (when the \
     server reported the error, else None), `detail`, `hint`, and `rows` (rows delivered \
     before the failure, when the export had started)."
);
pyo3::create_exception!(
    _pgarrow,
    ConnectError,
    Error,
    "Connecting or authenticating failed (the server is unreachable, refused the connection, \
     or the database does not exist)."
);
pyo3::create_exception!(
    _pgarrow,
    QueryError,
    Error,
    "The server refused or aborted the query (see `sqlstate`), or the connection broke while \
     it ran."
);
pyo3::create_exception!(
    _pgarrow,
    DecodeError,
    Error,
    "A value has no exact Arrow form under the chosen options; the message names the column, \
     the row, and the option that would let it through."
);
pyo3::create_exception!(
    _pgarrow,
    OutputError,
    Error,
    "Writing the output file failed; nothing was left behind."
);
pyo3::create_exception!(
    _pgarrow,
    DataError,
    Error,
    "An input (a file, a lake table another writer made) holds what it must not, or what \
     pgarrow does not read: a malformed file or deletion vector, a log that does not parse, a \
     table's feature pgarrow refuses. The message names the file or table and what is wrong; \
     the command line exits 3."
);
/// The Python exception for a pgarrow error, its class from what the caller can do about it
/// ([`Category`]), with its attributes set.
pub(crate) fn py_err(py: Python<'_>, e: &pgarrow::Error) -> PyErr {
    let message = e.to_string();
    let err = match e.category() {
        Category::Usage => usage_error(py, message),
        Category::Connection => ConnectError::new_err(message),
        Category::Server => QueryError::new_err(message),
        Category::Value if matches!(root_kind(e), pgarrow::ErrorKind::Decode(_)) => {
            DecodeError::new_err(message)
        }
        Category::Output => OutputError::new_err(message),
        _ if e.is_invalid_input() => DataError::new_err(message),
        // Ctrl-C while a Python producer of `write`'s input ran: the handler raised inside it,
        // and its C stream can pass on only the text.
        Category::Input if message.contains("\nKeyboardInterrupt") => {
            PyKeyboardInterrupt::new_err(message)
        }
        _ => Error::new_err(message),
    };
    let value = err.value(py);
    let db = e.as_db_error();
    // Setting attributes on a fresh exception instance does not fail.
    let _ = value.setattr("sqlstate", db.map(|d| d.code.clone()));
    let _ = value.setattr("server_message", db.map(|d| d.message.clone()));
    let _ = value.setattr("detail", db.and_then(|d| d.detail.clone()));
    let _ = value.setattr("hint", db.and_then(|d| d.hint.clone()));
    let _ = value.setattr("rows", e.rows_delivered());
    err
}

/// `pgarrow.UsageError` (defined in Python, as a subclass of both `pgarrow.Error` and
/// `ValueError`), or a plain `ValueError` if the package cannot be imported.
pub(crate) fn usage_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    let message = message.into();
    match py
        .import("pgarrow")
        .and_then(|m| m.getattr("UsageError"))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from))
    {
        Ok(class) => PyErr::from_type(class, message),
        Err(_) => PyValueError::new_err(message),
    }
}

/// What failed, under any context the message adds.
fn root_kind(e: &pgarrow::Error) -> &pgarrow::ErrorKind {
    let mut inner = e;
    while let pgarrow::ErrorKind::Context { source, .. } = inner.kind() {
        inner = source;
    }
    inner.kind()
}
