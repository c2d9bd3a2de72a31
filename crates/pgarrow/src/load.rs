//! Loading Arrow data into a table: binary `COPY ... FROM STDIN` in one transaction, appending,
//! replacing the table's rows, or upserting on a key.

use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, Schema};
use pgarrow_encode::{HEADER, RowEncoder, TRAILER};

use crate::create::create_table;
use crate::protocol::quote_ident;
use crate::{Client, Error, ErrorKind, Result, Source};

/// What a load does with the rows already in the table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LoadMode {
    /// Adds the rows.
    #[default]
    Append,
    /// Replaces every row (`TRUNCATE` in the same transaction).
    Replace,
    /// Inserts rows whose key is new and updates the others, through a temporary table and
    /// `INSERT ... ON CONFLICT (key) DO UPDATE`. The key must have a unique index.
    Upsert {
        /// The key columns.
        key: Vec<String>,
    },
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LoadStats {
    /// Rows loaded (as the server counted them).
    pub rows: u64,
    /// Bytes of COPY data sent.
    pub bytes: u64,
    /// Describing the table.
    pub describe: Duration,
    /// Reading the input (the batches' iterator).
    pub read: Duration,
    /// Encoding rows.
    pub encode: Duration,
    /// Sending them, and the server taking them.
    pub send: Duration,
    /// The upsert's INSERT (if any) and COMMIT.
    pub commit: Duration,
    /// Wall time.
    pub total: Duration,
}

/// How a load runs: what it does with the rows already there, and whether it may create the
/// table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Append, replace or upsert.
    pub mode: LoadMode,
    /// Create the table from the input's schema when it does not exist (in the load's
    /// transaction): each column gets the PostgreSQL type its field metadata names
    /// (`pgarrow.pg_type`, as pgarrow exports write it) where that type exists in the target
    /// database, else the type its Arrow type maps to.
    pub create: bool,
}

impl LoadOptions {
    /// Options with `mode`, not creating the table.
    pub fn new(mode: LoadMode) -> Self {
        LoadOptions {
            mode,
            create: false,
        }
    }

    /// Creates the table when it does not exist.
    pub fn with_create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }
}

impl From<&LoadMode> for LoadOptions {
    fn from(mode: &LoadMode) -> Self {
        LoadOptions::new(mode.clone())
    }
}

impl From<LoadMode> for LoadOptions {
    fn from(mode: LoadMode) -> Self {
        LoadOptions::new(mode)
    }
}

impl From<&LoadOptions> for LoadOptions {
    fn from(options: &LoadOptions) -> Self {
        options.clone()
    }
}

/// What a caller sees of a load while it runs.
#[derive(Default)]
pub struct LoadHooks<'a> {
    /// Called after each batch is encoded: input rows so far, bytes of COPY data so far.
    pub progress: Option<Box<dyn FnMut(u64, u64) + 'a>>,
    /// Checked before each batch is read and before each write to the server: `true` stops the
    /// load, which sends CopyFail, rolls back and fails with [`ErrorKind::Cancelled`].
    pub stop: Option<Box<dyn FnMut() -> bool + 'a>>,
}

impl std::fmt::Debug for LoadHooks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadHooks")
            .field("progress", &self.progress.is_some())
            .field("stop", &self.stop.is_some())
            .finish()
    }
}

impl LoadHooks<'_> {
    fn stopped(&mut self) -> bool {
        self.stop.as_mut().is_some_and(|stop| stop())
    }
}

/// Bytes of encoded rows handed to the connection at a time.
const SEND_AT: usize = 1 << 20;
/// The temporary table a staged load copies into (upserts, text columns).
const STAGE: &str = "_pgarrow_load";

impl Client {
    /// Loads `batches` (all of `schema`) into `table` (`name` or `schema.name`) in one
    /// transaction: the input's columns go into the table's columns of the same names (others
    /// get their defaults); every value is checked against its column's type (see
    /// `pgarrow_encode`). A failure of any kind (a value, the server, the input) rolls back:
    /// the table is as it was.
    ///
    /// `options` is a [`LoadMode`] or [`LoadOptions`].
    ///
    /// # Errors
    /// An input column the table does not have; one whose type cannot go into its column; a
    /// value that does not fit (column, row, value); the server's error; the input's error.
    pub async fn load(
        &mut self,
        table: &str,
        schema: &Schema,
        batches: impl IntoIterator<Item = std::result::Result<RecordBatch, ArrowError>>,
        options: impl Into<LoadOptions>,
    ) -> Result<LoadStats> {
        self.load_with(
            table,
            schema,
            batches,
            &options.into(),
            &mut LoadHooks::default(),
        )
        .await
    }

    /// [`load`](Client::load) with progress and a stop check.
    ///
    /// Columns whose type has no binary encoder (`inet`, `bit`, `tsvector`, ...) and take
    /// text are copied into a temporary table as text and cast into the table
    /// ([`RowEncoder::text_columns`]): the server's input function reads them, and its error
    /// for a bad value names the value but not the row.
    ///
    /// # Errors
    /// As [`load`](Client::load), and [`ErrorKind::Cancelled`] when `hooks.stop` said so.
    pub async fn load_with(
        &mut self,
        table: &str,
        schema: &Schema,
        batches: impl IntoIterator<Item = std::result::Result<RecordBatch, ArrowError>>,
        options: &LoadOptions,
        hooks: &mut LoadHooks<'_>,
    ) -> Result<LoadStats> {
        let started = Instant::now();
        let mut stats = LoadStats::default();
        let Source::Table { schema: ns, name } = Source::table(table)? else {
            unreachable!("Source::table makes a table");
        };
        let qualified = match &ns {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&name)),
            None => quote_ident(&name),
        };
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let list = columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        if let LoadMode::Upsert { key } = &options.mode {
            upsert_sql(&qualified, &columns, &list, key)?;
        }
        let conn = self.connection();
        conn.simple_query("BEGIN").await?;
        let result = async {
            if options.create {
                create_table(self.connection(), &qualified, schema).await?;
            }
            // The target's types, in the input's order (a missing column is the server's
            // error, naming it).
            let plan = self
                .plan(&Source::query(format!("SELECT {list} FROM {qualified}")))
                .await
                .map_err(|e| e.context(format!("the columns of {table}")))?;
            let encoder = RowEncoder::new(&plan.columns, &plan.catalog, schema)
                .map_err(|e| Error::from(ErrorKind::Encode(e)))?;
            let text_columns = encoder.text_columns();
            stats.describe = started.elapsed();
            let conn = self.connection();
            if options.mode == LoadMode::Replace {
                conn.simple_query(&format!("TRUNCATE {qualified}")).await?;
            }
            let staged =
                !text_columns.is_empty() || matches!(options.mode, LoadMode::Upsert { .. });
            let into = match staged {
                false => qualified.clone(),
                true => {
                    // The input's columns with their types, text where the values are text.
                    let select = columns
                        .iter()
                        .enumerate()
                        .map(|(i, c)| match text_columns.contains(&i) {
                            true => format!("CAST({0} AS text) AS {0}", quote_ident(c)),
                            false => quote_ident(c),
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    conn.simple_query(&format!(
                        "CREATE TEMPORARY TABLE {STAGE} ON COMMIT DROP AS SELECT {select} FROM \
                         {qualified} WITH NO DATA"
                    ))
                    .await?;
                    STAGE.to_owned()
                }
            };
            let sql = format!("COPY {into} ({list}) FROM STDIN (FORMAT binary)");
            let mut copy = conn.copy_in(&sql).await?;
            let mut buf = Vec::with_capacity(SEND_AT + (64 << 10));
            buf.extend_from_slice(HEADER);
            let mut row = 0u64;
            let mut read_started = Instant::now();
            let sent: Result<()> = async {
                for batch in batches {
                    let batch = batch.map_err(|e| Error::from(ErrorKind::Input(e)))?;
                    stats.read += read_started.elapsed();
                    if hooks.stopped() {
                        return Err(ErrorKind::Cancelled.into());
                    }
                    let t = Instant::now();
                    encoder
                        .encode(&batch, row, &mut buf)
                        .map_err(|e| Error::from(ErrorKind::Encode(e)))?;
                    stats.encode += t.elapsed();
                    row += batch.num_rows() as u64;
                    if buf.len() >= SEND_AT {
                        if hooks.stopped() {
                            return Err(ErrorKind::Cancelled.into());
                        }
                        let t = Instant::now();
                        copy.write(&buf).await?;
                        stats.send += t.elapsed();
                        buf.clear();
                    }
                    if let Some(progress) = hooks.progress.as_mut() {
                        progress(row, copy.bytes() + buf.len() as u64);
                    }
                    read_started = Instant::now();
                }
                if hooks.stopped() {
                    return Err(ErrorKind::Cancelled.into());
                }
                buf.extend_from_slice(TRAILER);
                let t = Instant::now();
                copy.write(&buf).await?;
                stats.send += t.elapsed();
                Ok(())
            }
            .await;
            stats.bytes = copy.bytes();
            if let Err(e) = sent.map_err(at_input_row) {
                // The server discards what it took; its own error, if it has one, is the
                // same as ours or follows from it.
                let _ = copy.fail(&format!("pgarrow: {e}")).await;
                return Err(e);
            }
            let t = Instant::now();
            stats.rows = copy.finish().await.map_err(|e| at_input_row(e.into()))?;
            stats.send += t.elapsed();
            let t = Instant::now();
            if staged {
                let values = columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| match text_columns.contains(&i) {
                        true => format!(
                            "CAST({} AS {})",
                            quote_ident(c),
                            plan.columns[i].column.type_name
                        ),
                        false => quote_ident(c),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let insert = match &options.mode {
                    LoadMode::Upsert { key } => upsert_sql(&qualified, &columns, &values, key)?,
                    _ => format!("INSERT INTO {qualified} ({list}) SELECT {values} FROM {STAGE}"),
                };
                conn.simple_query(&insert)
                    .await
                    .map_err(|e| match text_columns.is_empty() {
                        true => Error::from(e),
                        false => Error::from(e).context(format!(
                            "casting the text columns ({}) into their types",
                            text_columns
                                .iter()
                                .map(|&i| columns[i].as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    })?;
            }
            conn.simple_query("COMMIT").await?;
            stats.commit = t.elapsed();
            Ok::<(), Error>(())
        }
        .await;
        if let Err(e) = result {
            let conn = self.connection();
            if conn.is_ready() {
                let _ = conn.simple_query("ROLLBACK").await;
            }
            return Err(e);
        }
        stats.total = started.elapsed();
        Ok(stats)
    }
}

/// A server error raised by the COPY names its line (`COPY t, line 3, column v: ...`): the
/// input row is that line less one (rows count from 0 here, lines from 1).
fn at_input_row(e: Error) -> Error {
    let Some(context) = e.as_db_error().and_then(|d| d.where_.clone()) else {
        return e;
    };
    let Some(rest) = context.strip_prefix("COPY ") else {
        return e;
    };
    let mut parts = rest.split(", ");
    let _table = parts.next();
    let Some(line) = parts
        .next()
        .and_then(|l| l.strip_prefix("line "))
        .and_then(|l| l.parse::<u64>().ok())
    else {
        return e;
    };
    let column = parts
        .next()
        .and_then(|c| c.strip_prefix("column "))
        .map(|c| format!("column \"{}\", ", c.split(':').next().unwrap_or(c)))
        .unwrap_or_default();
    e.context(format!(
        "{column}row {} of the input",
        line.saturating_sub(1)
    ))
}

/// `INSERT ... SELECT values ... ON CONFLICT (key) DO UPDATE` from the load's temporary table.
fn upsert_sql(table: &str, columns: &[String], values: &str, key: &[String]) -> Result<String> {
    if key.is_empty() {
        return Err(Error::query(
            "an upsert needs a key: the columns of a unique index",
        ));
    }
    if let Some(k) = key.iter().find(|k| !columns.contains(k)) {
        return Err(Error::query(format!(
            "the upsert key {k:?} is not among the input's columns ({})",
            columns.join(", ")
        )));
    }
    let list = |cols: &mut dyn Iterator<Item = &String>| {
        cols.map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ")
    };
    let all = list(&mut columns.iter());
    let keys = list(&mut key.iter());
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
        .collect();
    let action = match updates.is_empty() {
        true => "NOTHING".to_owned(),
        false => format!("UPDATE SET {}", updates.join(", ")),
    };
    Ok(format!(
        "INSERT INTO {table} ({all}) SELECT {values} FROM {STAGE} ON CONFLICT ({keys}) DO {action}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upserts() {
        let cols = ["id".to_owned(), "v".to_owned(), "w x".to_owned()];
        assert_eq!(
            upsert_sql("\"t\"", &cols, "\"id\", \"v\", \"w x\"", &["id".to_owned()]).unwrap(),
            "INSERT INTO \"t\" (\"id\", \"v\", \"w x\") SELECT \"id\", \"v\", \"w x\" FROM \
             _pgarrow_load ON CONFLICT (\"id\") DO UPDATE SET \"v\" = EXCLUDED.\"v\", \
             \"w x\" = EXCLUDED.\"w x\""
        );
        assert!(
            upsert_sql("t", &cols[..1], "id", &["id".to_owned()])
                .unwrap()
                .ends_with("DO NOTHING")
        );
        assert!(upsert_sql("t", &cols, "", &[]).is_err());
        assert!(
            upsert_sql("t", &cols, "", &["nope".to_owned()])
                .unwrap_err()
                .to_string()
                .contains("nope")
        );
    }
}
