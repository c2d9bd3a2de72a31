//! PostgreSQL to PostgreSQL: a table or query of one server into a table of another (or the
//! same), pipelined. The export runs on a thread of its own (one connection, or several in
//! one snapshot) and hands whole batches through a bounded channel to the load, which
//! encodes and sends them on the target's connection, in one transaction.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use serde::Serialize;

use crate::blocking::{self, block_on, wait};
use crate::partition::PartitionOptions;
use crate::policy::ArrayShape;
use crate::types::{META_PG_OID, META_PG_TYPE};
use crate::{
    Client, Error, ExportOptions, ExportStats, IntoConfig, IntoTableName, LoadHooks, LoadOptions,
    LoadStats, Result, Source, Stop,
};

/// How a copy reads and loads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyOptions {
    /// How the source is read (batches, type policies). By default arrays are read as the
    /// server's text ([`ArrayShape::Text`]) and loaded through the target type's input
    /// function: their lower bounds and any mix of dimensions arrive exactly, as no Arrow
    /// List could carry them.
    pub export: ExportOptions,
    /// Read the source over several connections in one snapshot.
    pub partitions: Option<PartitionOptions>,
    /// What the load does with the target's rows, and whether it creates the table.
    pub load: LoadOptions,
}

impl Default for CopyOptions {
    fn default() -> Self {
        let mut export = ExportOptions::default();
        export.policies.array_shape = ArrayShape::Text;
        CopyOptions {
            export,
            partitions: None,
            load: LoadOptions::default(),
        }
    }
}

impl CopyOptions {
    /// Loads with `load`, reading the source on one connection with the default options.
    pub fn new(load: LoadOptions) -> CopyOptions {
        CopyOptions {
            load,
            ..CopyOptions::default()
        }
    }

    /// Reads the source with `export`'s batches and type policies (its array shape too: give
    /// [`ArrayShape::Text`] to keep the default's exact arrays).
    pub fn with_export(mut self, export: ExportOptions) -> Self {
        self.export = export;
        self
    }

    /// Reads the source over several connections in one snapshot.
    pub fn with_partitions(mut self, partitions: Option<PartitionOptions>) -> Self {
        self.partitions = partitions;
        self
    }
}

/// What a copy did: the load's statistics, and the source's under `source`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CopyStats {
    /// The load.
    #[serde(flatten)]
    pub load: LoadStats,
    /// The export of the source.
    pub source: ExportStats,
    /// The user-defined types (enums, composites, ranges, domains) created in the target
    /// for the table `create` made, as the source defines them, in the order created.
    pub created_types: Vec<String>,
}

/// Batches in flight between the export and the load.
const IN_FLIGHT: usize = 2;

type Message = Option<std::result::Result<RecordBatch, ArrowError>>;

/// Copies `source` (on `from`) into `table` (on `to`) in one transaction of the target; any
/// failure (the source's, a value's, the target's) or `hooks.stop` rolls the target back and
/// cancels the source's query.
///
/// With `create` and a missing table, the enums, composite types, ranges and domains its
/// columns need and the target lacks are created first, in the same transaction, as the
/// source defines them ([`CopyStats::created_types`]); a type of an extension is refused,
/// naming the extension to create.
///
/// # Errors
/// The source's error (in the context "the source"), the load's, or
/// [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled).
pub fn copy(
    from: impl IntoConfig,
    source: impl Into<Source>,
    to: impl IntoConfig,
    table: impl IntoTableName,
    options: &CopyOptions,
    hooks: LoadHooks<'_>,
) -> Result<CopyStats> {
    let mut from = from.into_config()?;
    // The source is only read; what it renders as text (arrays, `--out-of-range text`) is
    // read back by the target's input functions, so dates are written as ISO, which any
    // DateStyle reads the same.
    from.read_only = true;
    from.settings
        .push(("DateStyle".to_owned(), "ISO".to_owned()));
    let to = to.into_config()?;
    // For the types the target may lack, read apart from the export's connection.
    let types_from = from.clone();
    let table = table.into_table_name()?;
    let source = source.into();
    let mut hooks = hooks;
    let stop = hooks.stop.clone();
    // The target first: a target that cannot be reached (or refuses the login) fails the
    // copy before the source runs a query.
    let runtime = blocking::runtime()?;
    let started = std::time::Instant::now();
    let mut client =
        block_on(&runtime, &stop, Client::connect(to)).map_err(|e| e.context("the target"))?;
    let connect = started.elapsed();
    // A table the load does not create must be there (the columns are checked against the
    // source's when its schema is known, still before any row is read).
    if !options.load.create {
        let probe = Source::query(format!("SELECT * FROM {} LIMIT 0", table.quoted()));
        block_on(&runtime, &stop, client.plan(&probe)).map_err(|e| e.context("the target"))?;
    }
    // The export's own stop: the caller's (read from its flag: a polled stop's check runs on
    // this thread only), or the load's end.
    let outer = stop.clone();
    let export_stop = Stop::polled(move || outer.is_stopped());
    let (batches_tx, batches_rx) = sync_channel::<Message>(IN_FLIGHT);
    let (schema_tx, schema_rx) = sync_channel::<Result<SchemaRef>>(1);
    // The export reads its first row only when the load asks for it: after the load has
    // checked the target (its table, columns and types), so a target that cannot take the
    // rows fails the copy before the source is read.
    let (go_tx, go_rx) = sync_channel::<()>(1);
    let exporter = {
        let stop = export_stop.clone();
        let export = options.export.clone();
        let partitions = options.partitions.clone();
        std::thread::Builder::new()
            .name("pgarrow-copy-export".into())
            .spawn(move || {
                export_thread(
                    from, source, &export, partitions, &stop, schema_tx, go_rx, batches_tx,
                )
            })
            .map_err(|e| Error::internal(format!("cannot start the export thread: {e}")))?
    };
    let stopped = |e: Error| {
        export_stop.stop();
        e
    };
    let schema = match schema_rx.recv() {
        Ok(Ok(schema)) => schema,
        Ok(Err(e)) => {
            let _ = exporter.join();
            return Err(match e.is_cancelled() {
                true => e,
                false => e.context("the source"),
            });
        }
        Err(_) => return Err(Error::internal("the export thread ended without a word")),
    };
    let input = ChannelInput {
        schema: schema.clone(),
        batches: batches_rx,
        go: Some(go_tx),
        ended: false,
    };
    // The types a created table needs, made in the target in the load's transaction (the
    // load runs as a savepoint of it): a failed copy leaves neither table nor types.
    let mut created_types = Vec::new();
    let mut in_block = false;
    if options.load.create {
        let types = block_on(&runtime, &stop, async {
            let mut types = Vec::new();
            if !table_exists(client.connection(), &table).await? {
                let (names, oids) = named_types(&schema);
                if !names.is_empty() {
                    let mut source = Client::connect(types_from)
                        .await
                        .map_err(|e| e.context("the source"))?;
                    let read = crate::typedefs::read(source.connection(), &names, &oids).await;
                    let _ = source.close().await;
                    types = read.map_err(|e| e.context("reading the source's types"))?;
                }
            }
            Ok::<_, Error>(types)
        });
        let made = match types {
            Ok(types) if types.is_empty() => Ok(Vec::new()),
            Ok(types) => {
                in_block = true;
                block_on(&runtime, &stop, async {
                    client.connection().simple_query("BEGIN").await?;
                    crate::typedefs::create_missing(client.connection(), &types).await
                })
            }
            Err(e) => Err(e),
        };
        match made {
            Ok(made) => created_types = made,
            Err(e) => {
                if in_block {
                    let _ = runtime.block_on(client.connection().simple_query("ROLLBACK"));
                }
                let _ = runtime.block_on(client.close());
                export_stop.stop();
                drop(input);
                let _ = exporter.join();
                return Err(e.context("the target"));
            }
        }
    }
    let loaded = {
        let load = client.load_with(table, &schema, input, &options.load, &mut hooks);
        // The load watches its stop itself (CopyFail, rollback): polled, never cut off.
        wait(&runtime, &stop, load).map(|mut stats| {
            stats.connect = connect;
            stats.total += connect;
            stats
        })
    };
    let loaded = match (in_block, loaded) {
        (false, loaded) => loaded,
        (true, Ok(stats)) => block_on(&runtime, &stop, async {
            client.connection().simple_query("COMMIT").await?;
            Ok(stats)
        }),
        (true, Err(e)) => {
            let _ = runtime.block_on(client.connection().simple_query("ROLLBACK"));
            Err(e)
        }
    };
    let _ = runtime.block_on(client.close());
    let loaded = loaded.map_err(stopped);
    let exported = exporter
        .join()
        .map_err(|_| Error::internal("the export thread panicked"))?;
    Ok(CopyStats {
        load: loaded?,
        source: exported,
        created_types,
    })
}

/// Whether `table` exists in the target.
async fn table_exists(
    conn: &mut crate::protocol::Connection,
    table: &crate::TableName,
) -> Result<bool> {
    let rows = conn
        .simple_query(&format!(
            "SELECT pg_catalog.to_regclass({}) IS NOT NULL",
            crate::protocol::quote_literal(&table.quoted())
        ))
        .await?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .cloned()
        .flatten()
        .as_deref()
        == Some("t"))
}

/// The types the source's columns name (`pgarrow.pg_type`: a domain by its own name) and
/// their OIDs, for the definitions of those the source defines.
fn named_types(schema: &arrow_schema::Schema) -> (Vec<String>, Vec<u32>) {
    let mut names = Vec::new();
    let mut oids = Vec::new();
    for f in schema.fields() {
        let meta = f.metadata();
        if let Some(oid) = meta.get(META_PG_OID).and_then(|o| o.parse().ok()) {
            oids.push(oid);
        }
        if let Some(name) = meta.get(META_PG_TYPE) {
            names.push(name.clone());
        }
    }
    (names, oids)
}

/// The export's thread: the schema first, then (once `go` says so) every batch, then `None`;
/// an error ends it. Returns the export's statistics.
#[allow(clippy::too_many_arguments)]
fn export_thread(
    from: crate::protocol::Config,
    source: Source,
    options: &ExportOptions,
    partitions: Option<PartitionOptions>,
    stop: &Stop,
    schema_tx: SyncSender<Result<SchemaRef>>,
    go: Receiver<()>,
    batches: SyncSender<Message>,
) -> ExportStats {
    let reader = match &partitions {
        Some(p) => blocking::export_partitioned(from, source, options, p, stop),
        None => blocking::export_with(from, source, options, stop),
    };
    let mut reader = match reader {
        Ok(r) => r,
        Err(e) => {
            let _ = schema_tx.send(Err(e));
            return ExportStats::default();
        }
    };
    let _ = schema_tx.send(Ok(reader.schema()));
    // The load went away without asking for a row: dropping the reader cancels the query.
    if go.recv().is_err() {
        return reader.stats();
    }
    loop {
        match reader.next_batch() {
            // The load ended (failed or stopped): dropping the reader cancels the query.
            Ok(Some(batch)) => {
                if batches.send(Some(Ok(batch))).is_err() {
                    return reader.stats();
                }
            }
            Ok(None) => {
                let _ = batches.send(None);
                return reader.stats();
            }
            Err(e) => {
                let e = ArrowError::from(e.context("the source"));
                let _ = batches.send(Some(Err(e)));
                return reader.stats();
            }
        }
    }
}

/// The load's view of the export: its batches, then the end; an export that went away
/// without saying so is an error.
struct ChannelInput {
    schema: SchemaRef,
    batches: Receiver<Message>,
    /// Tells the export to start reading, at the first batch asked for.
    go: Option<SyncSender<()>>,
    ended: bool,
}

impl Iterator for ChannelInput {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        if let Some(go) = self.go.take() {
            let _ = go.send(());
        }
        match self.batches.recv() {
            Ok(Some(batch)) => Some(batch),
            Ok(None) => {
                self.ended = true;
                None
            }
            Err(_) => {
                self.ended = true;
                Some(Err(ArrowError::from(Error::from(
                    crate::ErrorKind::Cancelled,
                ))))
            }
        }
    }
}

impl RecordBatchReader for ChannelInput {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
