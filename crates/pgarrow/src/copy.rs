//! PostgreSQL to PostgreSQL: a table or query of one server into a table of another (or the
//! same), pipelined. The export runs on a thread of its own (one connection, or several in
//! one snapshot) and hands whole batches through a bounded channel to the load, which
//! encodes and sends them on the target's connection, in one transaction.

use std::future::Future;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::names::IntoTableName;
use crate::names::write_target;
use crate::partition::PartitionOptions;
use crate::policy::ArrayShape;
use crate::running::Running;
use crate::types::{META_PG_OID, META_PG_TYPE};
use crate::{
    Client, Error, ExportOptions, ExportStats, Hooks, IntoConfig, LoadOptions, LoadProgress,
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
/// failure (the source's, a value's, the target's) or the hooks' stop rolls the target back
/// and cancels the source's query. The hooks' progress hears the load's [`LoadProgress`].
///
/// The source is read on a thread of its own (one connection, or a partitioned export's
/// threads), whole batches crossing to the load through a bounded hand-off, so that reading
/// and decoding overlap the load's encoding and sending whatever runtime this runs on.
///
/// With `create` and a missing table, the enums, composite types, ranges and domains its
/// columns need and the target lacks are created first, in the same transaction, as the
/// source defines them ([`CopyStats::created_types`]); a type of an extension is refused,
/// naming the extension to create.
///
/// ```no_run
/// # async fn run() -> Result<(), pgarrow::Error> {
/// use pgarrow::{CopyOptions, Hooks, LoadMode, LoadOptions, Source};
///
/// let options = CopyOptions::new(LoadOptions::new(LoadMode::Append).with_create(true));
/// let stats = pgarrow::copy(
///     "postgresql://postgres@source/db",
///     Source::table("orders")?,
///     "postgresql://postgres@target/db",
///     "public.orders",
///     &options,
///     Hooks::new(),
/// )
/// .await?;
/// println!("{} rows", stats.load.rows);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// The source's error (in the context "the source"), the load's, or
/// [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled).
pub async fn copy(
    from: impl IntoConfig,
    source: impl Into<Source>,
    to: impl IntoConfig,
    table: impl IntoTableName,
    options: &CopyOptions,
    hooks: Hooks<'_, LoadProgress>,
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
    let stop = hooks.stop.clone();
    // The target first: a target that cannot be reached (or refuses the login) fails the
    // copy before the source runs a query.
    let started = std::time::Instant::now();
    let mut client = unless_stopped(&stop, Client::connect(to))
        .await
        .map_err(|e| e.context("the target"))?;
    let connect = started.elapsed();
    // The target named exactly, once, for the probe, the types and the load: a bare name
    // never means a temporary table (see `write_target`).
    let table = unless_stopped(&stop, write_target(client.connection(), &table))
        .await
        .map_err(|e| e.context("the target"))?;
    // A table the load does not create must be there (the columns are checked against the
    // source's when its schema is known, still before any row is read).
    if !options.load.create {
        let probe = Source::query(format!("SELECT * FROM {} LIMIT 0", table.quoted()));
        unless_stopped(&stop, client.describe(&probe))
            .await
            .map_err(|e| e.context("the target"))?;
    }
    // The export's own stop: set when the caller's is, or when the load ends first.
    let export_stop = Stop::new();
    let (batches_tx, batches_rx) = sync_channel::<Message>(IN_FLIGHT);
    let (schema_tx, schema_rx) = oneshot::channel::<Result<SchemaRef>>();
    let (stats_tx, stats_rx) = oneshot::channel::<ExportStats>();
    // The export reads its first row only when the load asks for it: after the load has
    // checked the target (its table, columns and types), so a target that cannot take the
    // rows fails the copy before the source is read.
    let (go_tx, go_rx) = sync_channel::<()>(1);
    {
        let stops = [stop.clone(), export_stop.clone()];
        let export = options.export.clone();
        let partitions = options.partitions.clone();
        let ends = ExportEnds {
            schema: schema_tx,
            go: go_rx,
            batches: batches_tx,
        };
        std::thread::Builder::new()
            .name("pgarrow-copy-export".into())
            .spawn(move || {
                let stats = export_thread(from, source, &export, partitions, stops, ends);
                let _ = stats_tx.send(stats);
            })
            .map_err(|e| Error::internal(format!("cannot start the export thread: {e}")))?;
    }
    let schema = match schema_rx.await {
        Ok(Ok(schema)) => schema,
        Ok(Err(e)) => {
            let _ = stats_rx.await;
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
        let types = unless_stopped(&stop, async {
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
        })
        .await;
        let made = match types {
            Ok(types) if types.is_empty() => Ok(Vec::new()),
            Ok(types) => {
                in_block = true;
                unless_stopped(&stop, async {
                    client.connection().simple_query("BEGIN").await?;
                    crate::typedefs::create_missing(client.connection(), &types).await
                })
                .await
            }
            Err(e) => Err(e),
        };
        match made {
            Ok(made) => created_types = made,
            Err(e) => {
                if in_block {
                    let _ = client.connection().simple_query("ROLLBACK").await;
                }
                let _ = client.close().await;
                export_stop.stop();
                drop(input);
                let _ = stats_rx.await;
                return Err(e.context("the target"));
            }
        }
    }
    // The load watches its stop itself (CopyFail, rollback): never cut off.
    let loaded = client
        .load_with(table, &load_schema, input, &options.load, hooks)
        .await
        .map(|mut stats| {
            stats.connect = connect;
            stats.total += connect;
            stats
        });
    let loaded = match (in_block, loaded) {
        (false, loaded) => loaded,
        (true, Ok(stats)) => {
            unless_stopped(&stop, async {
                client.connection().simple_query("COMMIT").await?;
                Ok(stats)
            })
            .await
        }
        (true, Err(e)) => {
            let _ = client.connection().simple_query("ROLLBACK").await;
            Err(e)
        }
    };
    let _ = client.close().await;
    if loaded.is_err() {
        export_stop.stop();
    }
    let exported = stats_rx
        .await
        .map_err(|_| Error::internal("the export thread panicked"))?;
    Ok(CopyStats {
        load: loaded?,
        source: exported,
        created_types,
        domains_as_base,
    })
}

/// `fut`'s result, unless `stop` comes first: then `fut` is dropped unfinished (closing
/// whatever it holds) and the result is [`ErrorKind::Cancelled`](crate::ErrorKind).
async fn unless_stopped<T>(stop: &Stop, fut: impl Future<Output = Result<T>>) -> Result<T> {
    stop.run(fut).await?
}

/// Whether `table` exists in the target.
async fn table_exists(
    conn: &mut crate::protocol::Connection,
    table: &crate::names::TableName,
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

/// The export thread's ends of the hand-off: the schema goes first, then (once `go` says
/// so) every batch, then `None`; an error ends it.
struct ExportEnds {
    schema: oneshot::Sender<Result<SchemaRef>>,
    go: Receiver<()>,
    batches: SyncSender<Message>,
}

/// The export's thread: runs the export of `source` on a runtime of its own until its end,
/// an error, the load's going away or either of `stops`. Returns the export's statistics.
fn export_thread(
    from: crate::protocol::Config,
    source: Source,
    options: &ExportOptions,
    partitions: Option<PartitionOptions>,
    stops: [Stop; 2],
    ends: ExportEnds,
) -> ExportStats {
    let runtime = match crate::running::runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ends.schema.send(Err(e));
            return ExportStats::default();
        }
    };
    // Either stop stops the export: a stop of its own, set when either is (watched by a
    // task of this runtime, dropped with it).
    let stop = Stop::new();
    {
        let stop = stop.clone();
        let [caller, load] = stops;
        runtime.spawn(async move {
            tokio::select! {
                () = caller.stopped() => {}
                () = load.stopped() => {}
            }
            stop.stop();
        });
    }
    runtime.block_on(export(
        from,
        source,
        options,
        partitions.as_ref(),
        &stop,
        ends,
    ))
}

/// What the export thread runs (see [`export_thread`]).
async fn export(
    from: crate::protocol::Config,
    source: Source,
    options: &ExportOptions,
    partitions: Option<&PartitionOptions>,
    stop: &Stop,
    ends: ExportEnds,
) -> ExportStats {
    let mut running = match Running::start(from, source, options, partitions, stop).await {
        Ok(r) => r,
        Err(e) => {
            let _ = ends.schema.send(Err(e));
            return ExportStats::default();
        }
    };
    let _ = ends.schema.send(Ok(running.schema()));
    // The load went away without asking for a row: the query is cancelled. (Blocking here
    // holds up nothing: this runtime runs this export alone, and a partitioned export's
    // connections have threads of their own.)
    if ends.go.recv().is_err() {
        let stats = running.stats();
        let _ = running.cancel().await;
        return stats;
    }
    loop {
        match stop.run(running.next_batch()).await {
            Ok(Ok(Some(batch))) => {
                // The load ended (failed or stopped): the query is cancelled.
                if ends.batches.send(Some(Ok(batch))).is_err() {
                    break;
                }
            }
            Ok(Ok(None)) => {
                let _ = ends.batches.send(None);
                return running.stats();
            }
            Ok(Err(e)) => {
                let e = ArrowError::from(e.context("the source"));
                let _ = ends.batches.send(Some(Err(e)));
                return running.stats();
            }
            // Stopped: the load is told by the channel's end.
            Err(_) => break,
        }
    }
    let stats = running.stats();
    let _ = running.cancel().await;
    stats
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
