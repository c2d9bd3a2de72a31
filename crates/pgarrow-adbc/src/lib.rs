//! pgarrow as an ADBC driver: every ADBC driver manager (Python, R, Go, Java, C/C++, Rust)
//! reads PostgreSQL through pgarrow's binary COPY path, with its exact type mapping, and
//! writes through its load.
//!
//! The driver library (`libpgarrow_adbc.so`) exports `PgarrowAdbcDriverInit` and the fallback
//! `AdbcDriverInit` (ADBC 1.1.0). The same types work in Rust through `adbc_core`'s traits:
//!
//! ```no_run
//! use adbc_core::options::{OptionDatabase, OptionValue};
//! use adbc_core::{Connection, Database, Driver, Statement};
//!
//! # fn run() -> adbc_core::error::Result<()> {
//! let mut driver = pgarrow_adbc::Driver::default();
//! let db = driver.new_database_with_opts([(
//!     OptionDatabase::Uri,
//!     OptionValue::String("postgresql://postgres@localhost/postgres".into()),
//! )])?;
//! let mut conn = db.new_connection()?;
//! let mut stmt = conn.new_statement()?;
//! stmt.set_sql_query("SELECT 1 AS one")?;
//! for batch in stmt.execute()? {
//!     println!("{} rows", batch?.num_rows());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! What maps where:
//!
//! * **Database**: `uri` (a `postgresql://` URL or a libpq `key=value` string), `username`,
//!   `password`; the `PG*` environment, the service file and `~/.pgpass` fill in the rest,
//!   as for the `pgarrow` command; TLS as there.
//! * **Connection**: one PostgreSQL session. Autocommit on (the default) runs each statement
//!   in its own transaction; off, the session opens a transaction before the first statement
//!   after each commit or rollback. Read-only, isolation level, current schema
//!   (`search_path`), `GetInfo`, `GetObjects`, `GetTableSchema`, `GetTableTypes`,
//!   `GetStatistics`, `ReadPartition`, cancel; the official driver's
//!   `adbc.postgresql.transaction_status`.
//! * **Statement**: a query runs as `COPY (...) TO STDOUT (FORMAT binary)` and is decoded in
//!   place into Arrow (see [`pgarrow::Client::export`]); a statement that returns no rows
//!   runs as it is (`ExecuteUpdate` and `ExecuteQuery` give its row count); bound parameters run through
//!   [`pgarrow::Client::run_bound`]; bulk ingest through [`pgarrow::Client::load`] (binary
//!   `COPY FROM`), in one transaction; `ExecutePartitions` plans parts of one exported
//!   snapshot. Options `pgarrow.numeric`, `pgarrow.infinity`, ... (every type policy of the
//!   CLI), `pgarrow.batch_rows`, `pgarrow.batch_bytes`, `pgarrow.partitions`,
//!   `pgarrow.partition_by`, `pgarrow.hold_timeout`, `pgarrow.linger`; the official driver's
//!   `adbc.postgresql.batch_size_hint_bytes` and `adbc.postgresql.use_copy` as aliases.
//!   A result set left unread is drained (not cancelled: a transaction goes on) by the
//!   session's next statement or commit; an error met while it is read keeps its status and
//!   SQLSTATE through the C API's `ErrorFromArrayStream`.
#![warn(missing_docs)]

mod error;
mod ffi;
mod info;
mod objects;
mod params;
mod partitions;
mod reader;
mod session;
mod settings;
mod statement;
mod statistics;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use adbc_core::error::Status;
use adbc_core::options::{InfoCode, ObjectDepth, OptionConnection, OptionDatabase, OptionValue};
use adbc_core::{CancelHandle, Optionable};
use arrow_array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow_schema::Schema;
use pgarrow::Source;
use pgarrow::names::TableName;
use pgarrow::protocol::{CancelToken, Config, TransactionStatus, quote_ident};

pub use error::Result;
use error::{OrAdbc, bad_option, error, unknown_option};
pub use info::{ADBC_VERSION, DRIVER_NAME};
use session::{Session, State};
use settings::{value_bool, value_text};
pub use statement::Statement;

/// The connection option (the official driver's) that tells where the session stands.
pub const TRANSACTION_STATUS: &str = "adbc.postgresql.transaction_status";

/// The driver's entry point, for driver managers that take one by name.
pub const ENTRYPOINT: &str = "PgarrowAdbcDriverInit";

/// The driver: makes [`Database`]s.
#[derive(Debug, Default)]
pub struct Driver;

impl adbc_core::Driver for Driver {
    type DatabaseType = Database;

    fn new_database(&mut self) -> Result<Database> {
        Ok(Database::default())
    }

    fn new_database_with_opts(
        &mut self,
        opts: impl IntoIterator<Item = (OptionDatabase, OptionValue)>,
    ) -> Result<Database> {
        let mut db = Database::default();
        for (key, value) in opts {
            db.set_option(key, value)?;
        }
        // As the official driver does: a database that cannot be reached, or refuses these
        // credentials, fails here, not at its first connection.
        drop(Session::open(db.config()?, db.use_copy)?);
        Ok(db)
    }
}

/// Where to connect: a URL or `key=value` string, and the user and password to override its;
/// whether queries run through COPY unless a statement says otherwise.
#[derive(Clone)]
pub struct Database {
    uri: Option<String>,
    username: Option<String>,
    password: Option<String>,
    use_copy: bool,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            uri: None,
            username: None,
            password: None,
            use_copy: true,
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("uri", &self.uri.as_deref().map(pgarrow::protocol::redact))
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// The connection settings: the URI, then `username` and `password` over it; the `PG*`
    /// environment and the service file for what they leave out.
    fn config(&self) -> Result<Config> {
        let mut overrides = Vec::new();
        if let Some(user) = &self.username {
            overrides.push(("user", user.as_str()));
        }
        if let Some(password) = &self.password {
            overrides.push(("password", password.as_str()));
        }
        // A malformed URI is an OperationalError in DB-API's terms ("the data source name
        // is not found"), as a connection that fails: IO, as the official driver has it.
        Config::parse_with_overrides(self.uri.as_deref(), &overrides).map_err(|e| {
            error(
                Status::IO,
                format!("pgarrow: cannot connect: {}", pgarrow::Error::from(e)),
            )
        })
    }
}

impl Optionable for Database {
    type Option = OptionDatabase;

    fn set_option(&mut self, key: OptionDatabase, value: OptionValue) -> Result<()> {
        let name = key.as_ref().to_owned();
        let text = value_text(&name, &value)?;
        match key {
            OptionDatabase::Uri => self.uri = Some(text),
            OptionDatabase::Username => self.username = Some(text),
            OptionDatabase::Password => self.password = Some(text),
            // The official driver's name: the default of every statement's use_copy.
            OptionDatabase::Other(key) if key == settings::USE_COPY => {
                self.use_copy = value_bool(&name, &value)?;
            }
            _ => return Err(unknown_option(&name)),
        }
        Ok(())
    }

    fn get_option_string(&self, key: OptionDatabase) -> Result<String> {
        let not_set = || {
            error(
                Status::NotFound,
                format!("pgarrow: {} is not set", key.as_ref()),
            )
        };
        match &key {
            OptionDatabase::Uri => self
                .uri
                .as_deref()
                .map(pgarrow::protocol::redact)
                .ok_or_else(not_set),
            OptionDatabase::Username => self.username.clone().ok_or_else(not_set),
            // Never handed out.
            OptionDatabase::Password => Err(not_set()),
            OptionDatabase::Other(k) if k == settings::USE_COPY => Ok(self.use_copy.to_string()),
            _ => Err(unknown_option(key.as_ref())),
        }
    }

    fn get_option_bytes(&self, key: OptionDatabase) -> Result<Vec<u8>> {
        Err(unknown_option(key.as_ref()))
    }

    fn get_option_int(&self, key: OptionDatabase) -> Result<i64> {
        Err(unknown_option(key.as_ref()))
    }

    fn get_option_double(&self, key: OptionDatabase) -> Result<f64> {
        Err(unknown_option(key.as_ref()))
    }
}

impl adbc_core::Database for Database {
    type ConnectionType = Connection;

    fn new_connection(&self) -> Result<Connection> {
        self.new_connection_with_opts([])
    }

    fn new_connection_with_opts(
        &self,
        opts: impl IntoIterator<Item = (OptionConnection, OptionValue)>,
    ) -> Result<Connection> {
        let mut conn = Connection {
            session: Session::open(self.config()?, self.use_copy)?,
        };
        for (key, value) in opts {
            conn.set_option(key, value)?;
        }
        Ok(conn)
    }
}

/// Cancels the session's running statement: sets its [`Stop`](pgarrow::Stop) (an ingest
/// sends CopyFail and rolls back; an open result set's next fetch fails, whatever the server
/// had sent before) and sends a CancelRequest to its backend (a query or statement still
/// running on the server ends).
struct SessionCancel(CancelToken, Arc<Mutex<pgarrow::Stop>>);

impl SessionCancel {
    fn of(session: &Session) -> SessionCancel {
        let (token, flag) = session.canceller();
        SessionCancel(token, flag)
    }
}

impl CancelHandle for SessionCancel {
    fn try_cancel(&self) -> Result<()> {
        self.1.lock().unwrap_or_else(|e| e.into_inner()).stop();
        // A runtime of its own: the session's is busy running the statement to cancel.
        let runtime = pgarrow::blocking::runtime().or_adbc()?;
        runtime
            .block_on(self.0.cancel())
            .map_err(pgarrow::Error::from)
            .or_adbc()
    }
}

/// An ADBC connection: one PostgreSQL session.
#[derive(Debug)]
pub struct Connection {
    session: Arc<Session>,
}

/// The isolation levels PostgreSQL has, by ADBC's option values.
fn isolation_level(value: &str) -> Option<&'static str> {
    let level = value.strip_prefix("adbc.connection.transaction.isolation.")?;
    Some(match level {
        "default" => "DEFAULT",
        "read_uncommitted" => "'read uncommitted'",
        "read_committed" => "'read committed'",
        // PostgreSQL's repeatable read is snapshot isolation.
        "repeatable_read" | "snapshot" => "'repeatable read'",
        "serializable" => "'serializable'",
        _ => return None,
    })
}

impl Optionable for Connection {
    type Option = OptionConnection;

    fn set_option(&mut self, key: OptionConnection, value: OptionValue) -> Result<()> {
        let name = key.as_ref().to_owned();
        match key {
            OptionConnection::AutoCommit => {
                let on = value_bool(&name, &value)?;
                // Switching autocommit on commits the open transaction, as ADBC says.
                if on && self.session.state() != State::Idle {
                    self.end_transaction("COMMIT", true)?;
                }
                self.session.set_autocommit(on);
            }
            OptionConnection::ReadOnly => {
                let on = value_bool(&name, &value)?;
                self.session
                    .execute(&format!("SET default_transaction_read_only TO {on}"), false)?;
            }
            OptionConnection::IsolationLevel => {
                let text = value_text(&name, &value)?;
                let level = isolation_level(&text).ok_or_else(|| bad_option(&name, &text))?;
                self.session.execute(
                    &format!("SET default_transaction_isolation TO {level}"),
                    false,
                )?;
            }
            OptionConnection::CurrentCatalog => {
                let text = value_text(&name, &value)?;
                let current = self.current_catalog()?;
                if text != current {
                    return Err(error(
                        Status::NotImplemented,
                        format!(
                            "pgarrow: a PostgreSQL session cannot switch databases (this one \
                             is {current:?}); connect to {text:?} instead"
                        ),
                    ));
                }
            }
            OptionConnection::CurrentSchema => {
                let text = value_text(&name, &value)?;
                self.session
                    .execute(&format!("SET search_path TO {}", quote_ident(&text)), false)?;
            }
            _ => return Err(unknown_option(&name)),
        }
        Ok(())
    }

    fn get_option_string(&self, key: OptionConnection) -> Result<String> {
        let setting = |sql: &str| -> Result<String> {
            Ok(self.session.query_value(sql)?.unwrap_or_default())
        };
        match key {
            OptionConnection::AutoCommit => Ok(self.session.autocommit().to_string()),
            OptionConnection::ReadOnly => {
                Ok((setting("SHOW default_transaction_read_only")? == "on").to_string())
            }
            OptionConnection::IsolationLevel => {
                let level = setting("SHOW default_transaction_isolation")?;
                Ok(format!(
                    "adbc.connection.transaction.isolation.{}",
                    level.replace(' ', "_")
                ))
            }
            OptionConnection::CurrentCatalog => self.current_catalog(),
            OptionConnection::CurrentSchema => setting("SELECT pg_catalog.current_schema()"),
            // The official driver's name: idle, active (a statement runs or a result set is
            // open), intrans, inerror or unknown.
            OptionConnection::Other(key) if key == TRANSACTION_STATUS => {
                Ok(self.session.state().name().to_owned())
            }
            other => Err(unknown_option(other.as_ref())),
        }
    }

    fn get_option_bytes(&self, key: OptionConnection) -> Result<Vec<u8>> {
        Err(unknown_option(key.as_ref()))
    }

    fn get_option_int(&self, key: OptionConnection) -> Result<i64> {
        Err(unknown_option(key.as_ref()))
    }

    fn get_option_double(&self, key: OptionConnection) -> Result<f64> {
        Err(unknown_option(key.as_ref()))
    }
}

impl Connection {
    fn current_catalog(&self) -> Result<String> {
        Ok(self
            .session
            .query_value("SELECT pg_catalog.current_database()")?
            .unwrap_or_default())
    }

    /// Ends the open transaction with `sql` (COMMIT or ROLLBACK), after a result set left
    /// open: drained before a commit, cancelled before a rollback (see [`Session`]). A
    /// transaction that failed is not committed: the server would roll it back and answer
    /// COMMIT without an error, so that work the caller believes committed is lost; the
    /// commit fails instead, and the transaction waits for the caller's rollback.
    fn end_transaction(&mut self, sql: &str, even_autocommit: bool) -> Result<()> {
        if self.session.autocommit() && !even_autocommit {
            return Err(error(
                Status::InvalidState,
                "pgarrow: autocommit is on: there is no transaction to end",
            ));
        }
        let rollback = sql == "ROLLBACK";
        let mut client = self.session.take_settling(false, rollback)?;
        let status = client.connection().transaction_status();
        let ended = match status {
            TransactionStatus::Idle => Ok(()),
            TransactionStatus::Failed if !rollback => Err(error(
                Status::InvalidState,
                "pgarrow: the transaction failed earlier and cannot be committed: roll it \
                 back (its changes are lost)",
            )),
            _ => {
                let ran = self
                    .session
                    .runtime()
                    .block_on(client.connection().simple_query(sql));
                ran.map(drop).map_err(pgarrow::Error::from).or_adbc()
            }
        };
        let why = match &ended {
            Err(e) => e.message.clone(),
            Ok(()) => "the connection broke".to_owned(),
        };
        self.session.give_back(Some(client), &why);
        ended
    }
}

/// A reader over batches already made.
fn batches(batch: RecordBatch) -> Box<dyn RecordBatchReader + Send + 'static> {
    let schema = batch.schema();
    Box::new(RecordBatchIterator::new(vec![Ok(batch)], schema))
}

impl adbc_core::Connection for Connection {
    type StatementType = Statement;

    fn new_statement(&mut self) -> Result<Statement> {
        Ok(Statement::new(Arc::clone(&self.session)))
    }

    fn get_cancel_handle(&self) -> Box<dyn CancelHandle> {
        Box::new(SessionCancel::of(&self.session))
    }

    fn get_info(
        &self,
        codes: Option<HashSet<InfoCode>>,
    ) -> Result<Box<dyn RecordBatchReader + Send + 'static>> {
        let version = self
            .session
            .query_value("SHOW server_version")?
            .unwrap_or_default();
        Ok(batches(info::info_batch(codes, &version)?))
    }

    fn get_objects(
        &self,
        depth: ObjectDepth,
        catalog: Option<&str>,
        db_schema: Option<&str>,
        table_name: Option<&str>,
        table_type: Option<Vec<&str>>,
        column_name: Option<&str>,
    ) -> Result<Box<dyn RecordBatchReader + Send + 'static>> {
        let filter = objects::ObjectFilter {
            catalog: catalog.map(str::to_owned),
            db_schema: db_schema.map(str::to_owned),
            table_name: table_name.map(str::to_owned),
            table_type: table_type.map(|t| t.into_iter().map(str::to_owned).collect()),
            column_name: column_name.map(str::to_owned),
        };
        let queries = objects::queries(depth, &filter);
        let results = self.session.simple_queries(queries)?;
        Ok(batches(objects::build(depth, results)?))
    }

    fn get_table_schema(
        &self,
        catalog: Option<&str>,
        db_schema: Option<&str>,
        table_name: &str,
    ) -> Result<Schema> {
        if let Some(catalog) = catalog {
            let current = self.current_catalog()?;
            if catalog != current {
                return Err(error(
                    Status::NotFound,
                    format!("pgarrow: catalog {catalog:?} is not this connection's ({current:?})"),
                ));
            }
        }
        let source = Source::Table(TableName::new(db_schema, table_name));
        self.session.run(false, |mut client| async move {
            let plan = client.describe(&source).await;
            (client, plan.map(|p| p.schema.as_ref().clone()).or_adbc())
        })
    }

    fn get_table_types(&self) -> Result<Box<dyn RecordBatchReader + Send + 'static>> {
        Ok(batches(info::table_types_batch()?))
    }

    fn get_statistic_names(&self) -> Result<Box<dyn RecordBatchReader + Send + 'static>> {
        Ok(batches(statistics::names_batch()))
    }

    fn get_statistics(
        &self,
        catalog: Option<&str>,
        db_schema: Option<&str>,
        table_name: Option<&str>,
        approximate: bool,
    ) -> Result<Box<dyn RecordBatchReader + Send + 'static>> {
        let batch = statistics::get(&self.session, catalog, db_schema, table_name, approximate)?;
        Ok(batches(batch))
    }

    fn commit(&mut self) -> Result<()> {
        self.end_transaction("COMMIT", false)
    }

    fn rollback(&mut self) -> Result<()> {
        self.end_transaction("ROLLBACK", false)
    }

    fn read_partition(
        &self,
        partition: impl AsRef<[u8]>,
    ) -> Result<Box<dyn RecordBatchReader + Send + 'static>> {
        let reader = partitions::read(self.session.config(), partition.as_ref())?;
        Ok(Box::new(reader))
    }
}
