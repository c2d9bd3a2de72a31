//! ADBC statements: queries through pgarrow's binary COPY path, updates, bulk ingest through
//! its load (binary COPY FROM), and partitions of one exported snapshot.

use std::sync::Arc;

use adbc_core::error::Status;
use adbc_core::options::{IngestMode, OptionStatement, OptionValue};
use adbc_core::{CancelHandle, Optionable, PartitionedResult};
use arrow_array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow_schema::{Schema, SchemaRef};
use pgarrow::names::TableName;
use pgarrow::protocol::{Described, TransactionStatus, quote_literal};
use pgarrow::{Client, Hooks, LoadMode, LoadOptions, Source, Stop};

use crate::error::{
    OrAdbc, Result, bad_option, error, from_pgarrow, unknown_option, with_sqlstate,
};
use crate::reader::ExportReader;
use crate::session::Session;
use crate::settings::{Settings, value_bool, value_text};
use crate::{SessionCancel, partitions};

/// A batch reader that can go to another thread.
type Batches = Box<dyn RecordBatchReader + Send>;

/// What an ingest writes into, and how.
#[derive(Debug, Clone)]
struct Ingest {
    table: Option<String>,
    db_schema: Option<String>,
    catalog: Option<String>,
    mode: IngestMode,
    temporary: bool,
}

impl Default for Ingest {
    fn default() -> Self {
        Ingest {
            table: None,
            db_schema: None,
            catalog: None,
            mode: IngestMode::Create,
            temporary: false,
        }
    }
}

/// An ADBC statement on a connection's session.
pub struct Statement {
    session: Arc<Session>,
    sql: Option<String>,
    /// Data bound by `bind` or `bind_stream`: an ingest's rows, or a query's parameters.
    bound: Option<Batches>,
    ingest: Ingest,
    settings: Settings,
}

impl std::fmt::Debug for Statement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statement")
            .field("sql", &self.sql)
            .field("bound", &self.bound.is_some())
            .field("ingest", &self.ingest)
            .finish_non_exhaustive()
    }
}

impl Statement {
    pub(crate) fn new(session: Arc<Session>) -> Statement {
        let settings = Settings {
            use_copy: session.use_copy(),
            ..Settings::default()
        };
        Statement {
            session,
            sql: None,
            bound: None,
            ingest: Ingest::default(),
            settings,
        }
    }

    fn sql(&self) -> Result<String> {
        self.sql.clone().ok_or_else(|| {
            error(
                Status::InvalidState,
                "pgarrow: the statement has no SQL query (set one, or an ingest target table)",
            )
        })
    }

    /// The table an ingest writes into: always qualified, so that exactly one relation is
    /// meant. A name without a schema means the session's `current_schema()` (as the official
    /// driver takes it), never a temporary table of the same name, which comes first on the
    /// search path (`pg_temp`): rows would go silently into it, and `replace` would drop it.
    /// When the search path names `pg_temp` first, `current_schema()` is the temporary schema:
    /// the first schema after it is taken instead.
    fn target(&self) -> Result<TableName> {
        let Some(table) = &self.ingest.table else {
            return Err(error(
                Status::InvalidState,
                "pgarrow: no ingest target table",
            ));
        };
        if let Some(catalog) = &self.ingest.catalog {
            let current = self
                .session
                .query_value("SELECT pg_catalog.current_database()")?;
            if current.as_deref() != Some(catalog.as_str()) {
                return Err(error(
                    Status::NotImplemented,
                    format!(
                        "pgarrow: the target catalog {catalog:?} is not this connection's \
                         database ({}); PostgreSQL writes into its own database only",
                        current.unwrap_or_default()
                    ),
                ));
            }
        }
        let schema = match (&self.ingest.db_schema, self.ingest.temporary) {
            (Some(_), true) => {
                return Err(error(
                    Status::InvalidArguments,
                    "pgarrow: a temporary table has no schema of its own: set either \
                     adbc.ingest.target_db_schema or adbc.ingest.temporary",
                ));
            }
            (_, true) => Some("pg_temp".to_owned()),
            (Some(schema), false) => Some(schema.clone()),
            (None, false) => {
                // current_schema(), unless the search path names pg_temp first: then the
                // first schema after it (a temporary table only when asked for).
                let current = self.session.query_value(
                    "SELECT s.name FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) \
                     WITH ORDINALITY AS s(name, i) JOIN pg_catalog.pg_namespace n ON \
                     n.nspname = s.name WHERE n.oid <> pg_catalog.pg_my_temp_schema() \
                     ORDER BY s.i LIMIT 1",
                )?;
                Some(current.ok_or_else(|| {
                    error(
                        Status::InvalidState,
                        "pgarrow: no schema to create or find the ingest's table in: the \
                         session's search_path names none that exists (set \
                         adbc.ingest.target_db_schema)",
                    )
                })?)
            }
        };
        Ok(TableName::new(schema, table.clone()))
    }

    /// Loads the bound data into the target table; the rows loaded.
    fn ingest(&mut self) -> Result<i64> {
        let input = self.bound.take().ok_or_else(|| {
            error(
                Status::InvalidState,
                "pgarrow: bind the data to ingest (bind or bind_stream) before executing",
            )
        })?;
        let table = self.target()?;
        let mode = self.ingest.mode;
        let encode = self.settings.encode;
        let nested = self.settings.create_nested;
        let session = Arc::clone(&self.session);
        let rows = self.session.run(true, |mut client| async move {
            // Taken after the statement started: a cancel from now on stops this ingest.
            let stop = session.stop();
            let loaded = ingest_into(&mut client, &table, mode, input, encode, nested, stop).await;
            (client, loaded)
        })?;
        Ok(i64::try_from(rows).unwrap_or(i64::MAX))
    }

    /// Runs a statement that returns no rows; its row count.
    fn update(&mut self) -> Result<Option<i64>> {
        let sql = self.sql()?;
        let count = self.session.execute(&sql, true)?;
        Ok(count.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
    }
}

/// Loads `input` into `table` as ADBC's `mode` says, in one transaction (a savepoint of the
/// session's, when one is open): a failure leaves the table as it was.
async fn ingest_into(
    client: &mut Client,
    table: &TableName,
    mode: IngestMode,
    input: Batches,
    encode: pgarrow::EncodePolicies,
    nested: pgarrow::CreateNested,
    stop: Stop,
) -> Result<u64> {
    let schema = input.schema();
    let outer = client.connection().transaction_status() == TransactionStatus::Idle;
    let (begin, end, undo) = match outer {
        true => ("BEGIN", "COMMIT", "ROLLBACK"),
        false => (
            "SAVEPOINT _pgarrow_ingest",
            "RELEASE SAVEPOINT _pgarrow_ingest",
            "ROLLBACK TO SAVEPOINT _pgarrow_ingest; RELEASE SAVEPOINT _pgarrow_ingest",
        ),
    };
    let conn = client.connection();
    conn.simple_query(begin)
        .await
        .map_err(pgarrow::Error::from)
        .or_adbc()?;
    let loaded = async {
        let exists_sql = format!(
            "SELECT pg_catalog.to_regclass({}) IS NOT NULL",
            quote_literal(&table.quoted())
        );
        let rows = client.connection().simple_query(&exists_sql).await;
        let rows = rows.map_err(pgarrow::Error::from).or_adbc()?;
        let exists = rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .is_some_and(|v| v == "t");
        let create = match (mode, exists) {
            // Worded as the server words them, with its SQLSTATEs.
            (IngestMode::Create, true) => {
                return Err(with_sqlstate(
                    error(
                        Status::AlreadyExists,
                        format!(
                            "pgarrow: relation \"{}\" already exists in schema \"{}\" (ingest \
                             mode create)",
                            table.name,
                            table.schema.as_deref().unwrap_or_default()
                        ),
                    ),
                    "42P07",
                ));
            }
            (IngestMode::Append, false) => {
                return Err(with_sqlstate(
                    error(
                        Status::NotFound,
                        format!(
                            "pgarrow: relation \"{}.{}\" does not exist (ingest mode append)",
                            table.schema.as_deref().unwrap_or_default(),
                            table.name
                        ),
                    ),
                    "42P01",
                ));
            }
            (IngestMode::Replace, true) => {
                let drop = format!("DROP TABLE {}", table.quoted());
                let dropped = client.connection().simple_query(&drop).await;
                dropped.map_err(pgarrow::Error::from).or_adbc()?;
                true
            }
            (IngestMode::Append, true) | (IngestMode::CreateAppend, true) => false,
            (IngestMode::Create | IngestMode::Replace | IngestMode::CreateAppend, false) => true,
        };
        let options = LoadOptions::new(LoadMode::Append)
            .with_create(create)
            .with_create_nested(nested)
            .with_policies(encode);
        client
            .load_with(
                table,
                &schema,
                input,
                &options,
                Hooks::new().with_stop(stop),
            )
            .await
            .or_adbc()
    }
    .await;
    let conn = client.connection();
    match loaded {
        Ok(stats) => {
            let ended = conn.simple_query(end).await;
            ended.map_err(pgarrow::Error::from).or_adbc()?;
            Ok(stats.rows)
        }
        Err(e) => {
            if conn.is_ready() {
                let _ = conn.simple_query(undo).await;
            }
            Err(e)
        }
    }
}

impl Optionable for Statement {
    type Option = OptionStatement;

    fn set_option(&mut self, key: OptionStatement, value: OptionValue) -> Result<()> {
        let name = key.as_ref().to_owned();
        match key {
            OptionStatement::IngestMode => self.ingest.mode = IngestMode::try_from(&value)?,
            OptionStatement::TargetTable => {
                self.ingest.table = Some(value_text(&name, &value)?);
                self.sql = None;
            }
            OptionStatement::TargetDbSchema => {
                self.ingest.db_schema = Some(value_text(&name, &value)?);
            }
            OptionStatement::TargetCatalog => {
                self.ingest.catalog = Some(value_text(&name, &value)?);
            }
            OptionStatement::Temporary => self.ingest.temporary = value_bool(&name, &value)?,
            OptionStatement::Incremental => {
                if value_bool(&name, &value)? {
                    return Err(error(
                        Status::NotImplemented,
                        "pgarrow: incremental execution is not supported",
                    ));
                }
            }
            OptionStatement::Other(key) => self.settings.set(&key, &value)?,
            _ => return Err(unknown_option(&name)),
        }
        Ok(())
    }

    fn get_option_string(&self, key: OptionStatement) -> Result<String> {
        let not_set = |what: &str| error(Status::NotFound, format!("pgarrow: {what} is not set"));
        match key {
            OptionStatement::IngestMode => Ok(String::from(self.ingest.mode)),
            OptionStatement::TargetTable => self.ingest.table.clone().ok_or(not_set("table")),
            OptionStatement::TargetDbSchema => {
                self.ingest.db_schema.clone().ok_or(not_set("schema"))
            }
            OptionStatement::TargetCatalog => self.ingest.catalog.clone().ok_or(not_set("catalog")),
            OptionStatement::Temporary => Ok(self.ingest.temporary.to_string()),
            OptionStatement::Other(key) => self.settings.get(&key),
            other => Err(unknown_option(other.as_ref())),
        }
    }

    fn get_option_bytes(&self, key: OptionStatement) -> Result<Vec<u8>> {
        Err(unknown_option(key.as_ref()))
    }

    fn get_option_int(&self, key: OptionStatement) -> Result<i64> {
        let text = self.get_option_string(key.clone())?;
        text.parse()
            .map_err(|_| bad_option(key.as_ref(), "not an integer"))
    }

    fn get_option_double(&self, key: OptionStatement) -> Result<f64> {
        let text = self.get_option_string(key.clone())?;
        text.parse()
            .map_err(|_| bad_option(key.as_ref(), "not a number"))
    }
}

impl adbc_core::Statement for Statement {
    fn bind(&mut self, batch: RecordBatch) -> Result<()> {
        let schema = batch.schema();
        self.bound = Some(Box::new(RecordBatchIterator::new(vec![Ok(batch)], schema)));
        Ok(())
    }

    fn bind_stream(&mut self, reader: Box<dyn RecordBatchReader + Send>) -> Result<()> {
        self.bound = Some(reader);
        Ok(())
    }

    fn execute(&mut self) -> Result<Box<dyn RecordBatchReader + Send + 'static>> {
        if self.ingest.table.is_some() {
            let rows = self.ingest()?;
            crate::ffi::note_rows_affected(rows);
            return Ok(empty(Arc::new(Schema::empty())));
        }
        let sql = self.sql()?;
        let params = match self.bound.take() {
            Some(params) => Some(params),
            // Without COPY: a plain statement, run as one with no parameters.
            None if !self.settings.use_copy || !copy_runs(&sql) => Some(no_parameters()),
            None => None,
        };
        if let Some(params) = params {
            let (schema, batches, rows) = crate::params::query(
                &self.session,
                &sql,
                params,
                &self.settings.export,
                self.settings.encode,
            )?;
            if let Some(rows) = rows {
                crate::ffi::note_rows_affected(i64::try_from(rows).unwrap_or(i64::MAX));
            }
            let batches: Vec<_> = batches.into_iter().map(Ok).collect();
            return Ok(Box::new(RecordBatchIterator::new(batches, schema)));
        }
        let options = self.settings.export.clone();
        let session = Arc::clone(&self.session);
        let mut client = session.take(true)?;
        let described = session
            .runtime()
            .block_on(describe_script(&mut client, &sql));
        let returns_rows = match described {
            Ok(d) => d.is_some_and(|d| d.columns.is_some()),
            Err(e) => {
                session.give_back(Some(client), &e.to_string());
                return Err(from_pgarrow(&e));
            }
        };
        if !returns_rows {
            let ran = session
                .runtime()
                .block_on(client.connection().execute(&sql))
                .map_err(pgarrow::Error::from);
            session.give_back(Some(client), "the connection broke");
            if let Some(rows) = ran.or_adbc()? {
                crate::ffi::note_rows_affected(i64::try_from(rows).unwrap_or(i64::MAX));
            }
            return Ok(empty(Arc::new(Schema::empty())));
        }
        let source = Source::query(sql);
        let planned = session
            .runtime()
            .block_on(client.describe_with(&source, &options.policies));
        let plan = match planned {
            Ok(plan) => plan,
            Err(e) => {
                session.give_back(Some(client), &e.to_string());
                return Err(from_pgarrow(&e));
            }
        };
        match session
            .runtime()
            .block_on(client.into_export_described(plan, &options))
        {
            // The first batch is read here, so that a query that fails or is cancelled
            // before its first rows fails here, with its status and SQLSTATE (an error while
            // the stream is read reaches the caller as the stream's error message only).
            Ok(export) => Ok(Box::new(
                ExportReader::on_session(export, session).prefetched()?,
            )),
            Err((e, client)) => {
                session.give_back(client, &e.to_string());
                Err(from_pgarrow(&e))
            }
        }
    }

    fn execute_update(&mut self) -> Result<Option<i64>> {
        if self.ingest.table.is_some() {
            return self.ingest().map(Some);
        }
        if let Some(params) = self.bound.take() {
            let sql = self.sql()?;
            let count = crate::params::update(&self.session, &sql, params, self.settings.encode)?;
            return Ok(count.map(|n| i64::try_from(n).unwrap_or(i64::MAX)));
        }
        self.update()
    }

    fn execute_schema(&mut self) -> Result<Schema> {
        let sql = self.sql()?;
        let policies = self.settings.export.policies;
        self.session.run(true, |mut client| async move {
            let described = client.connection().describe(&sql).await;
            let schema = match described.map_err(pgarrow::Error::from) {
                Ok(d) if d.columns.is_none() => Ok(Schema::empty()),
                Ok(_) => crate::params::schema(&mut client, &sql, &policies).await,
                Err(e) => Err(e),
            };
            (client, schema.or_adbc())
        })
    }

    fn execute_partitions(&mut self) -> Result<PartitionedResult> {
        let sql = self.sql()?;
        partitions::execute(&self.session, &sql, &self.settings)
    }

    fn get_parameter_schema(&self) -> Result<Schema> {
        let sql = self.sql()?;
        crate::params::parameter_schema(&self.session, &sql)
    }

    fn prepare(&mut self) -> Result<()> {
        // Checked now (a syntax error, a missing table), run later: the server plans the
        // statement anew each time, as it does an unnamed statement. In the session's
        // transaction, as the statement is: with autocommit off, a failure fails it.
        let sql = self.sql()?;
        self.session.run(true, |mut client| async move {
            let described = describe_script(&mut client, &sql).await;
            (client, described.map(drop).or_adbc())
        })
    }

    fn set_sql_query(&mut self, query: impl AsRef<str>) -> Result<()> {
        self.sql = Some(query.as_ref().to_owned());
        self.ingest.table = None;
        Ok(())
    }

    fn set_substrait_plan(&mut self, _plan: impl AsRef<[u8]>) -> Result<()> {
        Err(error(
            Status::NotImplemented,
            "pgarrow: PostgreSQL takes SQL, not Substrait plans",
        ))
    }

    fn get_cancel_handle(&self) -> Box<dyn CancelHandle> {
        Box::new(SessionCancel::of(&self.session))
    }
}

/// Describes `sql`; `None` for a script of several statements, which cannot be described
/// (or take parameters) and runs as it is.
async fn describe_script(client: &mut Client, sql: &str) -> pgarrow::Result<Option<Described>> {
    match client.connection().describe(sql).await {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.code() == Some("42601") && sql.contains(';') && client.is_ready() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether COPY can run `sql`: not the statements that return rows but are not queries
/// (`SHOW`, `EXPLAIN`, `FETCH`), which run as plain statements instead.
fn copy_runs(sql: &str) -> bool {
    let word: String = sql
        .trim_start()
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    !["show", "explain", "fetch"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

/// The parameters of a statement that takes none, run once.
fn no_parameters() -> Batches {
    let schema = Arc::new(Schema::empty());
    let row = RecordBatch::try_new_with_options(
        Arc::clone(&schema),
        Vec::new(),
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(1)),
    );
    Box::new(RecordBatchIterator::new(vec![row], schema))
}

/// A reader of no batches.
fn empty(schema: SchemaRef) -> Box<dyn RecordBatchReader + Send + 'static> {
    Box::new(RecordBatchIterator::new(Vec::new(), schema))
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_runs_queries_but_not_show_explain_or_fetch() {
        for sql in [
            "SELECT 1",
            "  with x as (select 1) table x",
            "VALUES (1)",
            "TABLE t",
        ] {
            assert!(super::copy_runs(sql), "{sql}");
        }
        for sql in ["SHOW search_path", "\n explain select 1", "FETCH 10 FROM c"] {
            assert!(!super::copy_runs(sql), "{sql}");
        }
    }
}
