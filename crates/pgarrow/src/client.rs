//! The client: connecting, describing a source, mapping its columns (with one catalog query,
//! [`catalog`](crate::catalog)) and starting its COPY.

use std::time::{Duration, Instant};

use crate::catalog;
use crate::described::copy_statement;
use crate::export::{ConnSlot, Export};
use crate::policy::Policies;
use crate::protocol::{Config, Connection, FieldDescription};
use crate::{ColumnMapping, DescribedSource, Error, ExportOptions, Result, Source};

/// A connection to PostgreSQL that exports queries as Arrow, and loads Arrow into tables.
///
/// Its methods, by what they do (each group lives beside the code it drives):
///
/// | | methods | source |
/// |---|---|---|
/// | session | [`connect`](Client::connect), [`close`](Client::close), [`connection`](Client::connection), [`backend_pid`](Client::backend_pid), [`is_ready`](Client::is_ready) | `client.rs` |
/// | describing | [`describe`](Client::describe), [`describe_with`](Client::describe_with), [`estimate_rows`](Client::estimate_rows) | `client.rs`, `estimate.rs` |
/// | exporting | [`export`](Client::export), [`into_export`](Client::into_export), [`export_described`](Client::export_described), [`into_export_described`](Client::into_export_described), [`export_to_file`](Client::export_to_file) | `client.rs`, `pipeline.rs` |
/// | statements with parameters | [`describe_bound`](Client::describe_bound), [`run_bound`](Client::run_bound) | `bound.rs` |
/// | incremental runs | [`begin_incremental`](Client::begin_incremental), [`share_incremental_snapshot`](Client::share_incremental_snapshot), [`end_incremental`](Client::end_incremental) | `incremental.rs` |
/// | loading | [`load`](Client::load), [`load_with`](Client::load_with) | `load.rs` |
///
/// Work over several connections starts from a configuration instead: [`copy`](crate::copy),
/// [`partition`](crate::partition), [`export_tables`](crate::export_tables).
#[derive(Debug)]
pub struct Client {
    conn: Connection,
    /// How long connecting took, until the first export reports it.
    connect_time: Option<Duration>,
}

/// What [`Client::connect`] accepts: a [`Config`], or a `postgresql://` URL or libpq
/// `key=value` string (the `PG*` environment fills in what it leaves out).
pub trait IntoConfig {
    /// The configuration.
    ///
    /// # Errors
    /// A string that is neither a valid URL nor a valid `key=value` string.
    fn into_config(self) -> Result<Config>;
}

impl IntoConfig for Config {
    fn into_config(self) -> Result<Config> {
        Ok(self)
    }
}

impl IntoConfig for &Config {
    fn into_config(self) -> Result<Config> {
        Ok(self.clone())
    }
}

impl IntoConfig for &str {
    fn into_config(self) -> Result<Config> {
        Ok(Config::parse(self)?)
    }
}

impl IntoConfig for String {
    fn into_config(self) -> Result<Config> {
        self.as_str().into_config()
    }
}

impl IntoConfig for &String {
    fn into_config(self) -> Result<Config> {
        self.as_str().into_config()
    }
}

impl Client {
    /// Connects with a [`Config`], a `postgresql://` URL or a libpq `key=value` string.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), pgarrow::Error> {
    /// let client = pgarrow::Client::connect("postgresql://postgres@localhost/postgres").await?;
    /// let client = pgarrow::Client::connect("host=/var/run/postgresql dbname=app").await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// An invalid string ([`ErrorKind::Usage`](crate::ErrorKind::Usage)); any failure while
    /// connecting is [`ErrorKind::Connect`](crate::ErrorKind::Connect) (see
    /// [`Connection::connect`]).
    pub async fn connect(config: impl IntoConfig) -> Result<Client> {
        let config = config.into_config()?;
        let started = Instant::now();
        let connecting = |e| Error::from(crate::ErrorKind::Connect(e));
        let mut conn = Connection::connect(&config).await.map_err(connecting)?;
        // A SQL_ASCII database stores bytes in no particular encoding: asked for UTF8, the
        // server refuses the first non-ASCII byte (22021). Take the bytes as they are and let
        // the invalid-UTF-8 policy decide (error naming the row, replace, or binary).
        if conn.parameter("server_encoding") == Some("SQL_ASCII") {
            conn.simple_query("SET client_encoding TO 'SQL_ASCII'")
                .await
                .map_err(connecting)?;
        }
        Ok(Client {
            conn,
            connect_time: Some(started.elapsed()),
        })
    }

    /// A client over a connection that is ready for statements.
    pub(crate) fn from_connection(conn: Connection) -> Client {
        Client {
            conn,
            connect_time: None,
        }
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// How long connecting took, the first time it is asked.
    pub(crate) fn take_connect_time(&mut self) -> Option<Duration> {
        self.connect_time.take()
    }

    pub(crate) fn into_connection(self) -> Connection {
        self.conn
    }

    /// The server process serving this connection (`pg_backend_pid()`).
    pub fn backend_pid(&self) -> i32 {
        self.conn.backend_pid()
    }

    /// Whether the connection takes a next statement (it is not broken, not mid-COPY).
    pub fn is_ready(&self) -> bool {
        self.conn.is_ready()
    }

    /// The underlying connection, for other statements.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Describes `source` without running it: its columns, their Arrow types and decoders,
    /// and the COPY statement an export runs.
    ///
    /// # Errors
    /// The server's error for a query that does not parse (a missing table, a syntax error),
    /// a statement that returns no rows, or a query with `$n` parameters.
    pub async fn describe(&mut self, source: &Source) -> Result<DescribedSource> {
        self.describe_with(source, &Policies::default()).await
    }

    /// [`describe`](Client::describe) under `policies`.
    ///
    /// # Errors
    /// As [`Client::describe`].
    pub async fn describe_with(
        &mut self,
        source: &Source,
        policies: &Policies,
    ) -> Result<DescribedSource> {
        let started = Instant::now();
        let sql = source.sql();
        let described = self
            .conn
            .describe(&sql)
            .await
            .map_err(|e| Error::from(e).in_query())?;
        if !described.params.is_empty() {
            return Err(Error::usage(format!(
                "the query uses {} parameter(s) ($1...); pgarrow exports queries without \
                 parameters",
                described.params.len()
            )));
        }
        let Some(fields) = described.columns else {
            return Err(Error::usage(
                "the statement returns no rows; export a SELECT, TABLE, VALUES or a table name",
            ));
        };
        let table = match source {
            Source::Table(t) => Some(t),
            Source::Query(_) => None,
        };
        self.plan_fields(&sql, &fields, policies, started, table, false)
            .await
    }

    /// The described source of a statement's result columns `fields` (`sql` is the statement;
    /// `started` when describing began; `table` the table it reads whole, whose constraints
    /// the plan carries). A statement without parameters is also asked for the SRID of its
    /// geometry columns that declare none ([`crate::geo::find_srids`]).
    pub(crate) async fn plan_fields(
        &mut self,
        sql: &str,
        fields: &[FieldDescription],
        policies: &Policies,
        started: Instant,
        table: Option<&crate::names::TableName>,
        sql_has_parameters: bool,
    ) -> Result<DescribedSource> {
        let catalog_started = Instant::now();
        let (mut columns, types) =
            catalog::plan_columns(&mut self.conn, fields, table, policies).await?;
        if !sql_has_parameters {
            crate::geo::find_srids(&mut self.conn, sql, &mut columns).await?;
        }
        let catalog_time = catalog_started.elapsed();
        let copy_sql = copy_statement(sql, &columns);
        let schema = std::sync::Arc::new(arrow_schema::Schema::new(
            columns.iter().map(ColumnMapping::field).collect::<Vec<_>>(),
        ));
        Ok(DescribedSource {
            columns,
            schema,
            copy_sql,
            catalog: types,
            describe_time: started.elapsed(),
            catalog_time,
        })
    }

    /// Starts exporting `source` (SQL text, or a [`Source`]): describes it, then runs its COPY.
    /// The export borrows the client until it is dropped.
    ///
    /// # Errors
    /// See [`Client::describe`]; the server's error if the COPY fails to start.
    pub async fn export(
        &mut self,
        source: impl Into<Source>,
        options: &ExportOptions,
    ) -> Result<Export<'_>> {
        let plan = self
            .describe_with(&source.into(), &options.policies)
            .await?;
        self.export_described(plan, options).await
    }

    /// As [`Client::export`], for an export that owns its connection: it can be moved to
    /// another task or kept in a struct (`Export<'static>`). The connection is closed when the
    /// export is dropped.
    ///
    /// # Errors
    /// As [`Client::export`].
    pub async fn into_export(
        mut self,
        source: impl Into<Source>,
        options: &ExportOptions,
    ) -> Result<Export<'static>> {
        let plan = self
            .describe_with(&source.into(), &options.policies)
            .await?;
        let connect = self.connect_time.take();
        Export::start(ConnSlot::Owned(Box::new(self.conn)), plan, options, connect).await
    }

    /// As [`Client::into_export`], for a source already described ([`Client::describe_with`]), and
    /// keeping the session: when the COPY fails to start, the client comes back with the
    /// error (`None` when its connection broke); [`Export::into_client`] gives it back after
    /// the export. What a front door that keeps one session for many statements (the ADBC
    /// driver) runs.
    ///
    /// # Errors
    /// As [`Client::export_described`], with the client when it is still usable.
    pub async fn into_export_described(
        self,
        plan: DescribedSource,
        options: &ExportOptions,
    ) -> std::result::Result<Export<'static>, (Error, Option<Client>)> {
        let connect = self.connect_time;
        Export::start_keeping(ConnSlot::Owned(Box::new(self.conn)), plan, options, connect)
            .await
            .map_err(|(e, conn)| {
                let client = conn.and_then(|c| match c {
                    ConnSlot::Owned(c) => Some(Client::from_connection(*c)),
                    ConnSlot::Borrowed(_) => None,
                });
                (e, client)
            })
    }

    /// Runs the COPY of a source already described.
    ///
    /// # Errors
    /// The server's error if the COPY fails to start.
    pub async fn export_described(
        &mut self,
        plan: DescribedSource,
        options: &ExportOptions,
    ) -> Result<Export<'_>> {
        let connect = self.connect_time.take();
        Export::start(ConnSlot::Borrowed(&mut self.conn), plan, options, connect).await
    }

    /// Closes the connection politely (Terminate).
    ///
    /// # Errors
    /// Socket errors while closing.
    pub async fn close(self) -> Result<()> {
        Ok(self.conn.close().await?)
    }
}
