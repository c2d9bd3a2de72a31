//! The PostgreSQL wire protocol as pgarrow speaks it.
//!
//! [`Config`] reads connection settings from a URL, a libpq `key=value` string, a service file
//! and the `PG*` environment. [`Connection`] connects over TCP (with TLS per libpq's `sslmode`,
//! rustls underneath) or a Unix socket, authenticates (trust, cleartext password, md5,
//! SCRAM-SHA-256 and SCRAM-SHA-256-PLUS with channel binding, client certificates; passwords
//! from the password file), forces `client_encoding=UTF8`, and offers the three operations an
//! export needs: [`Connection::describe`] (Parse/Describe/Sync: a query's columns without
//! running it), [`Connection::simple_query`] (catalog look-ups, as text) and
//! [`Connection::copy_out`], whose [`CopyOut`] hands out COPY data straight from the read
//! buffer. A [`CancelToken`] stops a running query from anywhere. Message encoding, decoding
//! and SCRAM come from `postgres-protocol`.
//!
//! Nothing here waits forever unless told to: `connect_timeout` bounds connecting, TCP
//! keepalives (on by default) notice a dead peer, and the optional `read_timeout` bounds how
//! long a silent server is waited for.
//!
//! ```no_run
//! # async fn run() -> Result<(), pgarrow_protocol::Error> {
//! use pgarrow_protocol::{Config, Connection};
//!
//! let config = Config::parse("postgresql://postgres@localhost/postgres")?;
//! let mut conn = Connection::connect(&config).await?;
//! let mut copy = conn.copy_out("COPY (SELECT 1) TO STDOUT (FORMAT binary)").await?;
//! loop {
//!     let chunk = copy.fill().await?;
//!     if chunk.is_empty() {
//!         break;
//!     }
//!     let n = chunk.len(); // hand `chunk` to a decoder here
//!     copy.consume(n);
//! }
//! assert_eq!(copy.rows(), Some(1));
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod cancel;
mod config;
mod conn;
mod conninfo;
mod copy;
mod copy_in;
mod error;
pub mod framing;
mod pgpass;
mod query;
pub mod replication;
mod replication_stream;
mod service;
mod socket;
mod startup;
mod tls;

pub use cancel::CancelToken;
pub use config::{
    ChannelBinding, Config, Host, InvalidDuration, Keepalives, NoticeHandler, RequireAuth, SslMode,
    SslNegotiation, SslRootCert, parse_duration,
};
pub use conn::{Connection, Notification, TransactionStatus};
pub use conninfo::redact;
pub use copy::CopyOut;
pub use copy_in::{COPY_IN_MESSAGE, CopyIn};
pub use error::{DbError, Error, ErrorKind, Result};
pub use query::{Described, FieldDescription, TextRow};
pub use replication_stream::ReplicationStream;

/// Internals exposed for the cargo-fuzz targets in `fuzz/` (a separate crate, so `pub(crate)`
/// does not reach it). Hidden from the docs on purpose: not part of the API, and free to change
/// without notice.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::pgpass::find as pgpass_find;
}

/// SQL quoting, defined beside the names they quote (`pgarrow-types`).
pub use pgarrow_types::{quote_ident, quote_literal};

#[cfg(test)]
mod tests {
    #[test]
    fn quote_literal() {
        assert_eq!(super::quote_literal("a'b"), "'a''b'");
        assert_eq!(super::quote_literal(r"a\b'"), r"E'a\\b'''");
    }

    #[test]
    fn quote_ident() {
        assert_eq!(super::quote_ident("a"), "\"a\"");
        assert_eq!(super::quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
