//! pgarrow's errors as ADBC errors: a status chosen from what the caller can do, the SQLSTATE,
//! and every field of the server's error in the error's details.

use std::os::raw::c_char;

use adbc_core::error::{Error, Status};
use pgarrow::Category;

/// The ADBC result of this driver.
pub type Result<T> = std::result::Result<T, Error>;

/// An ADBC error with `status` and `message`.
pub(crate) fn error(status: Status, message: impl Into<String>) -> Error {
    Error::with_message_and_status(message, status)
}

/// `e` with `code` (five characters) as its SQLSTATE.
pub(crate) fn with_sqlstate(mut e: Error, code: &str) -> Error {
    if code.len() == 5 {
        for (slot, b) in e.sqlstate.iter_mut().zip(code.bytes()) {
            *slot = b as c_char;
        }
    }
    e
}

/// The error for an option this driver does not know (ADBC's convention: NOT_IMPLEMENTED).
pub(crate) fn unknown_option(key: &str) -> Error {
    error(
        Status::NotImplemented,
        format!("pgarrow: unknown option {key:?}"),
    )
}

/// The error for an option whose value is not what it takes.
pub(crate) fn bad_option(key: &str, why: impl std::fmt::Display) -> Error {
    error(
        Status::InvalidArguments,
        format!("pgarrow: invalid value for option {key:?}: {why}"),
    )
}

/// `e` as an ADBC error. The status follows the SQLSTATE when the server reported the error,
/// else pgarrow's [`Category`]; the details carry the server's fields under libpq's names
/// (`PG_DIAG_SQLSTATE`, `PG_DIAG_MESSAGE_DETAIL`, ...), as the official PostgreSQL driver
/// names them, so code written for it reads ours.
pub(crate) fn from_pgarrow(e: &pgarrow::Error) -> Error {
    let mut out = Error::with_message_and_status(e.to_string(), status_of(e));
    if let Some(code) = e.code() {
        out = with_sqlstate(out, code);
    }
    if let Some(db) = e.as_db_error() {
        let mut details: Vec<(String, Vec<u8>)> = Vec::new();
        let mut put = |key: &str, value: Option<&str>| {
            if let Some(v) = value {
                details.push((key.to_owned(), v.as_bytes().to_vec()));
            }
        };
        put("PG_DIAG_SEVERITY", Some(&db.severity));
        put("PG_DIAG_SQLSTATE", Some(&db.code));
        put("PG_DIAG_MESSAGE_PRIMARY", Some(&db.message));
        put("PG_DIAG_MESSAGE_DETAIL", db.detail.as_deref());
        put("PG_DIAG_MESSAGE_HINT", db.hint.as_deref());
        let position = db.position.map(|p| p.to_string());
        put("PG_DIAG_STATEMENT_POSITION", position.as_deref());
        put("PG_DIAG_CONTEXT", db.where_.as_deref());
        put("PG_DIAG_SCHEMA_NAME", db.schema.as_deref());
        put("PG_DIAG_TABLE_NAME", db.table.as_deref());
        put("PG_DIAG_COLUMN_NAME", db.column.as_deref());
        put("PG_DIAG_DATATYPE_NAME", db.datatype.as_deref());
        put("PG_DIAG_CONSTRAINT_NAME", db.constraint.as_deref());
        out.details = Some(details);
    }
    out
}

/// The ADBC status for `e`.
fn status_of(e: &pgarrow::Error) -> Status {
    if let Some(status) = e.code().and_then(status_of_sqlstate) {
        return status;
    }
    match e.category() {
        Category::Usage => Status::InvalidArguments,
        Category::Connection => Status::IO,
        Category::Server => Status::IO,
        Category::Value | Category::Input => Status::InvalidData,
        Category::Output => Status::IO,
        Category::Cancelled => Status::Cancelled,
        _ => Status::Internal,
    }
}

/// The ADBC status a SQLSTATE stands for, where one fits better than the category's.
fn status_of_sqlstate(code: &str) -> Option<Status> {
    Some(match code {
        "57014" => Status::Cancelled,
        "42501" => Status::Unauthorized,
        "42P01" | "42703" | "42883" | "3F000" | "3D000" | "42704" => Status::NotFound,
        "42P07" | "42P06" | "42710" | "42P04" => Status::AlreadyExists,
        "25006" => Status::InvalidState,
        // The server shut the session down (terminated, shutdown, crash, database dropped).
        "57P01" | "57P02" | "57P03" | "57P04" | "57P05" => Status::IO,
        _ => match &code[..2.min(code.len())] {
            "23" => Status::Integrity,
            "28" => Status::Unauthenticated,
            "08" => Status::IO,
            "22" => Status::InvalidData,
            "25" => Status::InvalidState,
            "40" => Status::Unknown,
            "42" => Status::InvalidArguments,
            "57" => Status::Timeout,
            _ => return None,
        },
    })
}

/// `result`'s pgarrow error as an ADBC error.
pub(crate) trait OrAdbc<T> {
    /// The ADBC result.
    fn or_adbc(self) -> Result<T>;
}

impl<T> OrAdbc<T> for pgarrow::Result<T> {
    fn or_adbc(self) -> Result<T> {
        self.map_err(|e| from_pgarrow(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_choose_the_status() {
        assert_eq!(status_of_sqlstate("23505"), Some(Status::Integrity));
        assert_eq!(status_of_sqlstate("42P01"), Some(Status::NotFound));
        assert_eq!(status_of_sqlstate("42P07"), Some(Status::AlreadyExists));
        assert_eq!(status_of_sqlstate("57014"), Some(Status::Cancelled));
        assert_eq!(status_of_sqlstate("57P01"), Some(Status::IO));
        assert_eq!(status_of_sqlstate("42601"), Some(Status::InvalidArguments));
        assert_eq!(status_of_sqlstate("28P01"), Some(Status::Unauthenticated));
        assert_eq!(status_of_sqlstate("XX000"), None);
    }
}
