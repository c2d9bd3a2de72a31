//! The client: connecting, describing a source, planning its columns (with one catalog query,
//! [`catalog`](crate::catalog)) and starting its COPY.

use std::time::{Duration, Instant};

use crate::catalog;
use crate::described::copy_statement;
use crate::export::{ConnSlot, Export};
use crate::policy::Policies;
use crate::protocol::{Config, Connection, FieldDescription};
use crate::{ColumnPlan, Error, ExportOptions, ExportPlan, Result, Source};

/// A connection to PostgreSQL that exports queries as Arrow.
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

    /// Describes `source` without running it and plans the export.
    ///
    /// # Errors
    /// The server's error for a query that does not parse (a missing table, a syntax error),
    /// a statement that returns no rows, or a query with `$n` parameters.
    pub async fn plan(&mut self, source: &Source) -> Result<ExportPlan> {
        self.plan_with(source, &Policies::default()).await
    }

    /// Describes `source` and plans the export under `policies`.
    ///
    /// # Errors
    /// As [`Client::plan`].
    pub async fn plan_with(&mut self, source: &Source, policies: &Policies) -> Result<ExportPlan> {
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
        self.plan_fields(&sql, &fields, policies, started, table)
            .await
    }

    /// The plan of a described statement's result columns `fields` (`sql` is the statement;
    /// `started` when describing began; `table` the table it reads whole, whose constraints
    /// the plan carries).
    pub(crate) async fn plan_fields(
        &mut self,
        sql: &str,
        fields: &[FieldDescription],
        policies: &Policies,
        started: Instant,
        table: Option<&crate::TableName>,
    ) -> Result<ExportPlan> {
        let catalog_started = Instant::now();
        let (columns, types) =
            catalog::plan_columns(&mut self.conn, fields, table, policies).await?;
        let catalog_time = catalog_started.elapsed();
        let copy_sql = copy_statement(sql, &columns);
        let schema = std::sync::Arc::new(arrow_schema::Schema::new(
            columns.iter().map(ColumnPlan::field).collect::<Vec<_>>(),
        ));
        Ok(ExportPlan {
            columns,
            schema,
            copy_sql,
            catalog: types,
            describe_time: started.elapsed(),
            catalog_time,
        })
    }

    /// Starts exporting `source` (SQL text, or a [`Source`]): plans it, then runs its COPY.
    /// The export borrows the client until it is dropped.
    ///
    /// # Errors
    /// See [`Client::plan`]; the server's error if the COPY fails to start.
    pub async fn export(
        &mut self,
        source: impl Into<Source>,
        options: &ExportOptions,
    ) -> Result<Export<'_>> {
        let plan = self.plan_with(&source.into(), &options.policies).await?;
        self.export_plan(plan, options).await
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
        let plan = self.plan_with(&source.into(), &options.policies).await?;
        let connect = self.connect_time.take();
        Export::start(ConnSlot::Owned(Box::new(self.conn)), plan, options, connect).await
    }

    /// As [`Client::into_export`], for a plan already made ([`Client::plan_with`]), and
    /// keeping the session: when the COPY fails to start, the client comes back with the
    /// error (`None` when its connection broke); [`Export::into_client`] gives it back after
    /// the export. What a front door that keeps one session for many statements (the ADBC
    /// driver) runs.
    ///
    /// # Errors
    /// As [`Client::export_plan`], with the client when it is still usable.
    pub async fn into_export_plan(
        self,
        plan: ExportPlan,
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

    /// Runs the COPY of an already made plan.
    ///
    /// # Errors
    /// The server's error if the COPY fails to start.
    pub async fn export_plan(
        &mut self,
        plan: ExportPlan,
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
