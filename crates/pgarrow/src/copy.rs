//! PostgreSQL to PostgreSQL: a table or query of one server into a table of another (or the
//! same), pipelined. The export runs on a thread of its own (one connection, or several in
//! one snapshot) and hands whole batches through a bounded channel to the load, which
//! encodes and sends them on the target's connection, in one transaction.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use serde::Serialize;

use crate::blocking::{self, block_on, wait};
use crate::names::write_target;
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
    /// What a created table's columns of a domain type get, when the target lacks the domain.
    pub domains: Domains,
}

/// What `create` makes of a source column whose type is a domain the target lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Domains {
    /// The domain as the source defines it (base type, collation, DEFAULT, NOT NULL, every
    /// CHECK), after the functions (in SQL or PL/pgSQL) and sequences its DEFAULT and CHECKs
    /// name, each created when the target lacks it; a sequence continues from the source's
    /// last value. A function pgarrow cannot make (in C) is refused by name.
    #[default]
    Define,
    /// The column gets the domain's base type (`varchar(5)`, `numeric(8,2)`, an enum), and the
    /// domain's DEFAULT and CHECKs stay behind: listed in [`CopyStats::domains_as_base`].
    /// An array of a domain keeps its domain.
    Base,
}

impl std::str::FromStr for Domains {
    type Err = Error;

    /// `define` or `base`: how the command line's `--domains` and Python's `domains=` read.
    fn from_str(name: &str) -> Result<Domains> {
        match name {
            "define" => Ok(Domains::Define),
            "base" => Ok(Domains::Base),
            other => {
                Err(pgarrow_types::ChoiceError::new("domains", other, "define or base").into())
            }
        }
    }
}

impl std::fmt::Display for Domains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Domains::Define => "define",
            Domains::Base => "base",
        })
    }
}

impl Default for CopyOptions {
    fn default() -> Self {
        let mut export = ExportOptions::default();
        export.policies.array_shape = ArrayShape::Text;
        CopyOptions {
            export,
            partitions: None,
            load: LoadOptions::default(),
            domains: Domains::Define,
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

    /// What a created table's columns of a domain type the target lacks get.
    pub fn with_domains(mut self, domains: Domains) -> Self {
        self.domains = domains;
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
    /// for the table `create` made, as the source defines them, in the order created; with
    /// them the functions and sequences their domains need (`function public.f(text)`,
    /// `sequence public.codes`).
    pub created_types: Vec<String>,
    /// With [`Domains::Base`]: each column created with its domain's base type instead,
    /// as `column: domain as base` (`code: public.code as character varying(5)`).
    pub domains_as_base: Vec<String>,
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
    // The target named exactly, once, for the probe, the types and the load: a bare name
    // never means a temporary table (see `write_target`).
    let table = block_on(&runtime, &stop, write_target(client.connection(), &table))
        .map_err(|e| e.context("the target"))?;
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
    let mut domains_as_base = Vec::new();
    let mut load_schema = schema.clone();
    let mut in_block = false;
    if options.load.create {
        let types = block_on(&runtime, &stop, async {
            let mut types = Vec::new();
            if !table_exists(client.connection(), &table).await? {
                let (names, _) = named_types(&schema);
                if !names.is_empty() {
                    let mut source = Client::connect(types_from)
                        .await
                        .map_err(|e| e.context("the source"))?;
                    let read = async {
                        if options.domains == Domains::Base {
                            let (schema, noted) =
                                domains_as_base_types(source.connection(), &schema).await?;
                            load_schema = schema;
                            domains_as_base = noted;
                        }
                        let (names, oids) = named_types(&load_schema);
                        crate::typedefs::read(source.connection(), &names, &oids).await
                    }
                    .await;
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
        let load = client.load_with(table, &load_schema, input, &options.load, &mut hooks);
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
        domains_as_base,
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

/// `schema` with each column whose type is a domain (`pgarrow.pg_type`) given the domain's
/// base type instead (through domains over domains), and a note per column changed.
async fn domains_as_base_types(
    conn: &mut crate::protocol::Connection,
    schema: &SchemaRef,
) -> Result<(SchemaRef, Vec<String>)> {
    let named: Vec<(usize, &String)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.metadata().get(META_PG_TYPE).map(|n| (i, n)))
        .collect();
    if named.is_empty() {
        return Ok((schema.clone(), Vec::new()));
    }
    let lookups: Vec<String> = named
        .iter()
        .map(|(_, name)| {
            format!(
                "(WITH RECURSIVE chain(base, typmod, depth) AS (
    SELECT t.typbasetype, t.typtypmod, 0 FROM pg_catalog.pg_type t
    WHERE t.oid = pg_catalog.to_regtype({}) AND t.typtype = 'd'
  UNION ALL
    SELECT t.typbasetype, t.typtypmod, chain.depth + 1 FROM chain
    JOIN pg_catalog.pg_type t ON t.oid = chain.base AND t.typtype = 'd')
  SELECT pg_catalog.format_type(base, typmod) FROM chain ORDER BY depth DESC LIMIT 1)",
                crate::protocol::quote_literal(name)
            )
        })
        .collect();
    let rows = conn
        .simple_query(&format!("SELECT {}", lookups.join(", ")))
        .await?;
    let bases = rows
        .first()
        .filter(|r| r.len() == named.len())
        .ok_or_else(|| {
            Error::unexpected("unexpected answer to the query for domains' base types")
        })?;
    let mut fields: Vec<arrow_schema::Field> =
        schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut noted = Vec::new();
    for ((i, name), base) in named.iter().zip(bases) {
        let Some(base) = base else { continue };
        let mut metadata = fields[*i].metadata().clone();
        metadata.insert(META_PG_TYPE.to_owned(), base.clone());
        noted.push(format!("{}: {name} as {base}", fields[*i].name()));
        fields[*i] = fields[*i].clone().with_metadata(metadata);
    }
    let schema = arrow_schema::Schema::new_with_metadata(fields, schema.metadata().clone());
    Ok((std::sync::Arc::new(schema), noted))
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
