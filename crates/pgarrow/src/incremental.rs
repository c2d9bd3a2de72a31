//! Incremental exports: the second run and after read only what changed since the previous
//! run's snapshot, and miss no late commit.
//!
//! A run reads its table in one `REPEATABLE READ` snapshot and records, in a small JSON state
//! ([`IncrementalState`]), that snapshot (`pg_current_snapshot()`: its `xmin`, `xmax` and the
//! transactions in progress) and the high-water mark of the cursor column (its largest value
//! in the snapshot). The next run exports the row versions that run's snapshot could not see:
//!
//! * **Rows at or above the mark** (`column >= mark`, an index range scan when the column is
//!   indexed), minus those the previous snapshot saw (the row version's `xmin` is tested
//!   against it): what a cursor finds, without the rows equal to the mark exported twice.
//! * **Late rows**: row versions below the mark (or with a NULL cursor) whose `xmin` the
//!   previous snapshot could not see: a transaction that was open when the previous run read,
//!   wrote a cursor value below its mark (a `DEFAULT now()` timestamp is the transaction's
//!   start) and committed after it. Finding them takes a scan of the table, so a run only
//!   does it when the previous run's snapshot may have missed one: when any other
//!   transaction of its database, or any transaction holding an ID, was open as it was taken
//!   ([`IncrementalState::late_rows_possible`]). [`LateRows::Always`] scans every time.
//!
//! The guarantee, as implemented: every row version visible to run N+1's snapshot and not to
//! run N's is in run N+1; no row version visible to run N's snapshot is. The late-row scan is
//! skipped only when nothing but committed work preceded run N's snapshot; the rows written
//! after it are then found by the mark alone, which holds when the column is set on every
//! insert and update to a value no lower than those committed before the writing transaction
//! began (a `now()` default and trigger, a sequence). Deletes are not seen (a cursor sees
//! rows, not their absence). Row versions are compared by their 32-bit `xmin`, so a run more
//! than 2^31 transactions after the previous one is refused (start over), and a row frozen
//! more than 2^32 transactions ago whose stored `xmin` falls in the window between two runs
//! may be exported again (never lost).

use serde::{Deserialize, Serialize};

use crate::io::{DirTarget, Location};
use crate::names::TableName;
use crate::partition::{PartitionOptions, PartitionedStats, export_to_dir, export_to_file};
use crate::protocol::{Connection, quote_ident, quote_literal};
use crate::{
    Client, Error, ExportOptions, ExportStats, FileTarget, Hooks, IntoConfig, Result, Source,
};

/// The version of the state's JSON form ([`IncrementalState::pgarrow_incremental`]).
pub const STATE_VERSION: u32 = 1;

/// How many transactions may separate two runs: `xmin` is 32 bits, compared within half its
/// range, with a margin for the transactions a run takes.
const MAX_XID_DISTANCE: u64 = (1 << 31) - (1 << 24);

/// The cursor column's types: integers, numeric, date, timestamp, timestamptz (by OID, a
/// domain over one of them counts as the type).
const CURSOR_TYPES: [(u32, &str); 7] = [
    (21, "smallint"),
    (23, "integer"),
    (20, "bigint"),
    (1700, "numeric"),
    (1082, "date"),
    (1114, "timestamp without time zone"),
    (1184, "timestamp with time zone"),
];

/// When a run scans for late rows (see the [module](self) documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LateRows {
    /// When the previous run's snapshot may have missed a late commit.
    #[default]
    Auto,
    /// Every run: for a cursor column that is not set from the server's clock or a sequence.
    Always,
}

impl std::str::FromStr for LateRows {
    type Err = Error;

    /// `auto` or `always`: the CLI's `--late-rows` and Python's `late_rows=`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(LateRows::Auto),
            "always" => Ok(LateRows::Always),
            other => Err(
                pgarrow_types::ChoiceError::new("late-row scan", other, "auto or always").into(),
            ),
        }
    }
}

impl std::fmt::Display for LateRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LateRows::Auto => "auto",
            LateRows::Always => "always",
        })
    }
}

/// What an incremental run reads: [`IncrementalOptions::new`], then `with_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IncrementalOptions {
    /// The table.
    pub table: TableName,
    /// Its cursor column (integer, numeric, date, timestamp or timestamptz).
    pub column: String,
    /// The first run starts from this cursor value (inclusive) instead of the whole table;
    /// later runs keep it.
    pub since: Option<String>,
    /// When to scan for late rows.
    pub late_rows: LateRows,
    /// Ignore the previous state and run as a first run (the run counter goes on).
    pub restart: bool,
}

impl IncrementalOptions {
    /// Runs over `table`, by `column`.
    pub fn new(table: TableName, column: impl Into<String>) -> IncrementalOptions {
        IncrementalOptions {
            table,
            column: column.into(),
            since: None,
            late_rows: LateRows::Auto,
            restart: false,
        }
    }

    /// The first run starts at `value`.
    pub fn with_since(mut self, value: impl Into<String>) -> Self {
        self.since = Some(value.into());
        self
    }

    /// When to scan for late rows.
    pub fn with_late_rows(mut self, late_rows: LateRows) -> Self {
        self.late_rows = late_rows;
        self
    }

    /// Start over, whatever the previous state says.
    pub fn with_restart(mut self, restart: bool) -> Self {
        self.restart = restart;
        self
    }
}

/// The state an incremental run leaves for the next: a small JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IncrementalState {
    /// The version of this format (1).
    pub pgarrow_incremental: u32,
    /// The database (`current_database()`).
    pub database: String,
    /// The table, as the server resolved it (`schema.name`, quoted where needed).
    pub table: String,
    /// The table's OID: a table dropped and created again is another table.
    pub table_oid: u32,
    /// The cursor column.
    pub column: String,
    /// Its type (`format_type`).
    pub column_type: String,
    /// Where the first run started (inclusive), as text.
    pub since: Option<String>,
    /// The largest finite cursor value visible to the run's snapshot, as the server prints it
    /// (ISO dates, UTC); `None` while the table has none.
    pub high_water: Option<String>,
    /// The run's snapshot, `pg_current_snapshot()` (`xmin:xmax:xip,...`).
    pub snapshot: String,
    /// Whether a transaction that the snapshot could not see may have written a cursor value
    /// below [`high_water`](Self::high_water): the next run then scans for late rows.
    pub late_rows_possible: bool,
    /// The run's number (1 for the first).
    pub run: u64,
    /// The rows the run exported.
    pub rows: u64,
    /// The files the run wrote.
    pub files: Vec<String>,
    /// When the run's snapshot was taken (the server's clock, UTC).
    pub taken_at: String,
}

impl IncrementalState {
    /// The state saved at `location` (a path, or an object URL parsed into a
    /// [`Location`]), or `None` when there is nothing there yet.
    ///
    /// # Errors
    /// A file or object that cannot be read or is not a state of this version.
    pub fn load(location: impl Into<Location>) -> Result<Option<IncrementalState>> {
        let location = location.into();
        if !location.exists()? {
            return Ok(None);
        }
        let bytes = location.read()?;
        let state: IncrementalState = serde_json::from_slice(&bytes).map_err(|e| {
            Error::usage(format!(
                "{location} is not an incremental state of pgarrow: {e}"
            ))
        })?;
        if state.pgarrow_incremental != STATE_VERSION {
            return Err(Error::usage(format!(
                "{location} is an incremental state of version {}; this pgarrow reads version {}",
                state.pgarrow_incremental, STATE_VERSION
            )));
        }
        Ok(Some(state))
    }

    /// Replaces the state at `location` atomically (a local file: a temporary file, synced,
    /// renamed over it; an object: one PUT).
    ///
    /// # Errors
    /// The file or object cannot be written.
    pub fn save(&self, location: impl Into<Location>) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::internal(format!("the incremental state as JSON: {e}")))?;
        location
            .into()
            .write_atomically(format!("{text}\n").as_bytes())?;
        Ok(())
    }
}

/// One incremental run, begun: its transaction is open on the client that began it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IncrementalRun {
    /// What to export, in the run's transaction, on the client that began it.
    pub source: Source,
    /// The state this run leaves once its output is safe ([`IncrementalRun::finish`]).
    pub state: IncrementalState,
    /// Whether this is a first run (the whole table, or from `since`).
    pub first: bool,
    /// Whether the run scans for late rows.
    pub late_scan: bool,
}

impl IncrementalRun {
    /// The state to save once the run's `rows` are safe in `files`.
    pub fn finish(mut self, rows: u64, files: Vec<String>) -> IncrementalState {
        self.state.rows = rows;
        self.state.files = files;
        self.state
    }
}

/// A `pg_current_snapshot()`: 64-bit transaction IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    xmin: u64,
    xmax: u64,
    xip: Vec<u64>,
}

impl Snapshot {
    fn parse(text: &str) -> Option<Snapshot> {
        let mut fields = text.trim().split(':');
        let xmin = fields.next()?.parse().ok()?;
        let xmax = fields.next()?.parse().ok()?;
        let xip = match fields.next()? {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(|x| x.parse().ok())
                .collect::<Option<Vec<u64>>>()?,
        };
        (fields.next().is_none() && xmin <= xmax).then_some(Snapshot { xmin, xmax, xip })
    }

    /// SQL that is true for a row version (of the FROM item) this snapshot could not see,
    /// from its 32-bit `xmin`: written at or after the snapshot's `xmax`, or by a transaction
    /// then in progress. `age(xid)` is the distance back from one reference ID, fixed for
    /// the reading transaction (its own, or the next to be assigned when it has none), so
    /// comparing the row's age with the age of `xmax` compares the IDs, whatever the reading
    /// transaction; a negative age is a row more than 2^31 transactions old (the runs are
    /// refused when further apart), and frozen or bootstrap IDs are `INT_MAX` old. One C
    /// function call a row: the late-row scan runs at the server's scan speed.
    fn unseen_sql(&self) -> String {
        const WRAP: u64 = 1 << 32;
        let mut sql = format!(
            "(pg_catalog.age(xmin) BETWEEN 0 AND pg_catalog.age('{}'::xid)",
            self.xmax % WRAP
        );
        if !self.xip.is_empty() {
            let xip: Vec<String> = self.xip.iter().map(|x| (x % WRAP).to_string()).collect();
            sql.push_str(&format!(" OR xmin = ANY('{{{}}}'::xid[])", xip.join(",")));
        }
        sql.push(')');
        sql
    }
}

/// The table's facts in the run's snapshot.
struct Facts {
    snapshot: Snapshot,
    snapshot_text: String,
    database: String,
    table_oid: u32,
    /// The table's name as the server resolved it (`schema.name`, quoted where needed).
    table_name: String,
    column_type: String,
    high_water: Option<String>,
    taken_at: String,
}

impl Client {
    /// Begins an incremental run of `options.table`: opens a `REPEATABLE READ, READ ONLY`
    /// transaction on this client, checks the table, its column and `previous` (the state
    /// the last run left), and returns what to export in it. Export
    /// [`IncrementalRun::source`] on this client, end the transaction with
    /// [`Client::end_incremental`], make the output safe, then save
    /// [`IncrementalRun::finish`]'s state.
    ///
    /// # Errors
    /// A table or column that cannot be a cursor ([`ErrorKind::Usage`](crate::ErrorKind)),
    /// a `previous` state of another table, column or database, of a table dropped and
    /// created again, or too far in the past for the guarantee (unless
    /// [`IncrementalOptions::restart`]), and the server's errors.
    pub async fn begin_incremental(
        &mut self,
        options: &IncrementalOptions,
        previous: Option<&IncrementalState>,
    ) -> Result<IncrementalRun> {
        let table = options.table.quoted();
        let column = quote_ident(&options.column);
        // Whether a transaction other than this one was open before the snapshot: in this
        // database (the others cannot write the table), or holding a transaction ID anywhere
        // (IDs are the cluster's), or prepared.
        let before = self
            .connection()
            .simple_query(
                "SELECT pg_catalog.pg_current_snapshot()::text, \
                 (SELECT count(*) FROM pg_catalog.pg_locks l \
                  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
                  WHERE l.locktype = 'virtualxid' AND l.pid <> pg_catalog.pg_backend_pid() \
                  AND (a.datid IS NULL OR a.datid = (SELECT oid FROM pg_catalog.pg_database \
                  WHERE datname = pg_catalog.current_database())) \
                  AND coalesce(a.backend_type, '') NOT IN ('autovacuum worker', \
                  'autovacuum launcher')) \
                 + (SELECT count(*) FROM pg_catalog.pg_prepared_xacts)",
            )
            .await?;
        let (live, others) = match before.first().map(|r| r.as_slice()) {
            Some([Some(snap), Some(count)]) => (
                Snapshot::parse(snap).ok_or_else(|| bad_snapshot(snap))?,
                count.parse::<u64>().unwrap_or(1),
            ),
            _ => return Err(Error::unexpected("the server's open transactions")),
        };
        let conn = self.connection();
        conn.simple_query(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL TimeZone = 'UTC'; \
             SET LOCAL IntervalStyle = 'postgres'",
        )
        .await?;
        let facts = match facts(conn, &options.table, &options.column).await {
            Ok(facts) => facts,
            Err(e) => {
                rollback(conn).await;
                return Err(e);
            }
        };
        let quiet = others == 0
            && live.xip.is_empty()
            && facts.snapshot.xip.is_empty()
            && facts.snapshot.xmax == live.xmax;
        let run = previous.map_or(1, |s| s.run + 1);
        let previous = previous.filter(|_| !options.restart);
        let checked = match previous {
            Some(state) => check_previous(state, options, &facts),
            None => Ok(()),
        };
        if let Err(e) = checked {
            rollback(self.connection()).await;
            return Err(e);
        }
        let since = match previous {
            Some(state) => state.since.clone(),
            None => options.since.clone(),
        };
        let cast = |value: &str| format!("{}::{}", quote_literal(value), facts.column_type);
        let from = format!("SELECT * FROM {table}");
        let since_sql = since.as_deref().map(|v| format!("{column} >= {}", cast(v)));
        let (sql, late_scan, high_water) = match previous {
            None => {
                let sql = since_sql.map(|cond| format!("{from} WHERE {cond}"));
                (sql, false, facts.high_water.clone())
            }
            Some(state) => {
                let last = Snapshot::parse(&state.snapshot)
                    .ok_or_else(|| bad_snapshot(&state.snapshot))?;
                let unseen = last.unseen_sql();
                let late_scan = state.late_rows_possible || options.late_rows == LateRows::Always;
                let and_since = since_sql
                    .as_deref()
                    .map(|c| format!(" AND {c}"))
                    .unwrap_or_default();
                let sql = match &state.high_water {
                    // No cursor value yet: every row version the last run could not see.
                    None => Some(format!("{from} WHERE {unseen}{and_since}")),
                    Some(mark) => {
                        let mark = cast(mark);
                        let above =
                            format!("{from} WHERE {column} >= {mark} AND {unseen}{and_since}");
                        Some(match late_scan {
                            false => above,
                            true => format!(
                                "{above}\nUNION ALL\n{from} WHERE ({column} < {mark} OR \
                                 {column} IS NULL) AND {unseen}{and_since}"
                            ),
                        })
                    }
                };
                let high_water = max_text(
                    state.high_water.as_deref(),
                    facts.high_water.as_deref(),
                    &facts.column_type,
                    self.connection(),
                )
                .await;
                let high_water = match high_water {
                    Ok(h) => h,
                    Err(e) => {
                        rollback(self.connection()).await;
                        return Err(e);
                    }
                };
                (sql, late_scan, high_water)
            }
        };
        Ok(IncrementalRun {
            // A whole first run is the table itself: split in block ranges when partitioned.
            source: sql.map_or_else(|| Source::Table(options.table.clone()), Source::query),
            first: previous.is_none(),
            late_scan,
            state: IncrementalState {
                pgarrow_incremental: STATE_VERSION,
                database: facts.database,
                table: facts.table_name,
                table_oid: facts.table_oid,
                column: options.column.clone(),
                column_type: facts.column_type,
                since,
                high_water,
                snapshot: facts.snapshot_text,
                late_rows_possible: !quiet,
                run,
                rows: 0,
                files: Vec::new(),
                taken_at: facts.taken_at,
            },
        })
    }

    /// Exports the run's snapshot (`pg_export_snapshot()`) for other connections to read in,
    /// while this client's transaction stays open: what a partitioned run reads its parts in
    /// ([`PartitionOptions::import_snapshot`](crate::partition::PartitionOptions::import_snapshot)).
    ///
    /// # Errors
    /// The server's (a standby before PostgreSQL 10 cannot export snapshots).
    pub async fn share_incremental_snapshot(&mut self) -> Result<String> {
        let rows = self
            .connection()
            .simple_query("SELECT pg_catalog.pg_export_snapshot()")
            .await?;
        rows.first()
            .and_then(|r| r.first().cloned().flatten())
            .ok_or_else(|| Error::unexpected("pg_export_snapshot() returned no snapshot"))
    }

    /// Ends the transaction of [`Client::begin_incremental`] (it only read).
    ///
    /// # Errors
    /// The server's.
    pub async fn end_incremental(&mut self) -> Result<()> {
        self.connection().simple_query("COMMIT").await?;
        Ok(())
    }
}

/// Where a run writes: one file, or a directory of files with their manifest (partitioned).
#[derive(Debug, Clone)]
pub enum RunTarget {
    /// One file (or standard output), as [`Client::export_to_file`] writes it.
    File(FileTarget),
    /// One file per part and `_manifest.json`, as [`export_to_dir`] writes them.
    Dir(DirTarget),
}

/// What a run did.
#[derive(Debug)]
#[non_exhaustive]
pub struct RunResult {
    /// The export's statistics.
    pub stats: ExportStats,
    /// A partitioned run's own (parts, connections, manifest).
    pub parts: Option<PartitionedStats>,
    /// The state to save now that the output is written.
    pub state: IncrementalState,
    /// Whether it was a first run.
    pub first: bool,
    /// Whether it scanned for late rows.
    pub late_scan: bool,
}

/// The run number the next run after `previous` has.
pub fn next_run(previous: Option<&IncrementalState>) -> u64 {
    previous.map_or(1, |s| s.run + 1)
}

/// The name of run `run`'s output, from the name the runs share: `orders.parquet` →
/// `orders.run-000003.parquet` (the extension kept last), a directory `out/orders` →
/// `out/orders/run-000003` (with `dir`), `-` (standard output) as it is. Works on paths and
/// object URLs alike.
pub fn run_name(output: &str, run: u64, dir: bool) -> String {
    let tag = format!("run-{run:06}");
    if output == "-" {
        return output.to_owned();
    }
    if dir {
        return format!("{}/{tag}", output.trim_end_matches('/'));
    }
    let (parent, name) = match output.rfind('/') {
        Some(i) => output.split_at(i + 1),
        None => ("", output),
    };
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{parent}{}.{tag}{}", &name[..i], &name[i..]),
        _ => format!("{parent}{name}.{tag}"),
    }
}

/// One incremental run, whole: begins it (see [`Client::begin_incremental`]), exports what it
/// reads into `target` (over several connections in the run's snapshot with `partitions`:
/// a later run is a query, split on the cursor column unless `partitions.by` says
/// otherwise), ends its transaction, and returns the state to save. Name `target` for the run
/// with [`run_name`] and [`next_run`]; save the state only after this returns.
///
/// # Errors
/// As [`Client::begin_incremental`] and the export.
pub async fn export_run(
    config: impl IntoConfig,
    options: &IncrementalOptions,
    previous: Option<&IncrementalState>,
    export: &ExportOptions,
    partitions: Option<&PartitionOptions>,
    target: &RunTarget,
    hooks: Hooks<'_>,
) -> Result<RunResult> {
    let config = config.into_config()?;
    let mut client = Client::connect(&config).await?;
    let run = client.begin_incremental(options, previous).await?;
    let (stats, parts, files) = match (partitions, target) {
        (None, RunTarget::File(file)) => {
            let stats = client
                .export_to_file(run.source.clone(), export, file, hooks)
                .await?;
            (stats, None, file_names(&file.output))
        }
        (None, RunTarget::Dir(_)) => {
            return Err(Error::usage(
                "a run into a directory reads over several connections: give partitions",
            ));
        }
        (Some(partitions), target) => {
            let id = client.share_incremental_snapshot().await?;
            let mut split = partitions.clone().with_import_snapshot(id);
            if matches!(run.source, Source::Query(_)) && split.by.is_none() {
                split = split.with_by(options.column.clone());
            }
            let source = run.source.clone();
            let (stats, files) = match target {
                RunTarget::File(file) => (
                    export_to_file(&config, source, export, &split, file, hooks).await?,
                    file_names(&file.output),
                ),
                RunTarget::Dir(dir) => (
                    export_to_dir(&config, source, export, &split, dir, hooks).await?,
                    vec![dir.dir.to_string()],
                ),
            };
            (stats.export.clone(), Some(stats), files)
        }
    };
    client.end_incremental().await?;
    let (first, late_scan) = (run.first, run.late_scan);
    Ok(RunResult {
        state: run.finish(stats.rows, files),
        stats,
        parts,
        first,
        late_scan,
    })
}

/// The files an output names (none for standard output or nowhere).
fn file_names(output: &pgarrow_io::Output) -> Vec<String> {
    use pgarrow_io::Output;
    match output {
        Output::File(path) => vec![path.display().to_string()],
        Output::Remote(remote) => vec![remote.name().to_owned()],
        Output::Stdout | Output::Discard => Vec::new(),
    }
}

async fn rollback(conn: &mut Connection) {
    if conn.is_ready() {
        let _ = conn.simple_query("ROLLBACK").await;
    }
}

fn bad_snapshot(text: &str) -> Error {
    Error::unexpected(format!("a snapshot that is not xmin:xmax:xip ({text:?})"))
}

/// The snapshot (the transaction's first query takes it), the table and column, and the
/// largest finite cursor value.
async fn facts(conn: &mut Connection, table: &TableName, column: &str) -> Result<Facts> {
    let regclass = quote_literal(&table.quoted());
    let sql = format!(
        "SELECT pg_catalog.pg_current_snapshot()::text, pg_catalog.current_database(), \
         pg_catalog.to_regclass({regclass})::oid::text, \
         (SELECT relkind::text || ' ' || pg_catalog.quote_ident(n.nspname) || '.' || \
          pg_catalog.quote_ident(c.relname) FROM pg_catalog.pg_class c \
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.oid = pg_catalog.to_regclass({regclass})), \
         (SELECT coalesce(nullif(t.typbasetype, 0), t.oid)::text || ' ' || \
          pg_catalog.format_type(coalesce(nullif(t.typbasetype, 0), t.oid), NULL) \
          FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
          WHERE a.attrelid = pg_catalog.to_regclass({regclass}) AND a.attname = {name} \
          AND a.attnum > 0 AND NOT a.attisdropped), \
         pg_catalog.now()::text",
        name = quote_literal(column),
    );
    let rows = conn.simple_query(&sql).await?;
    let Some(
        [
            Some(snap),
            Some(database),
            oid,
            relation,
            column_type,
            Some(taken_at),
        ],
    ) = rows.first().map(|r| r.as_slice())
    else {
        return Err(Error::unexpected("the table's facts"));
    };
    let Some(oid) = oid.as_deref().and_then(|o| o.parse::<u32>().ok()) else {
        return Err(Error::usage(format!("table {table} does not exist")));
    };
    let (relkind, table_name) = relation
        .as_deref()
        .and_then(|r| r.split_once(' '))
        .unwrap_or_default();
    if !matches!(relkind, "r" | "p") {
        return Err(Error::usage(format!(
            "{table} is not a table: an incremental export reads a table's row versions \
             (their xmin)"
        )));
    }
    let Some((type_oid, type_name)) = column_type.as_deref().and_then(|t| t.split_once(' ')) else {
        return Err(Error::usage(format!(
            "table {table} has no column {column:?} to be the cursor"
        )));
    };
    let type_oid: u32 = type_oid.parse().unwrap_or(0);
    if !CURSOR_TYPES.iter().any(|(o, _)| *o == type_oid) {
        let types: Vec<&str> = CURSOR_TYPES.iter().map(|(_, n)| *n).collect();
        return Err(Error::usage(format!(
            "column {column:?} of {table} is {type_name}: a cursor column is one of {}",
            types.join(", ")
        )));
    }
    // Infinities and NaN order above every value: the mark is the largest finite one.
    let finite = match type_oid {
        1700 => format!(" WHERE {c} <> 'NaN'", c = quote_ident(column)),
        1082 | 1114 | 1184 => format!(" WHERE pg_catalog.isfinite({})", quote_ident(column)),
        _ => String::new(),
    };
    let max_sql = format!(
        "SELECT max({c})::text FROM {t}{finite}",
        c = quote_ident(column),
        t = table.quoted()
    );
    let rows = conn.simple_query(&max_sql).await?;
    let high_water = rows.first().and_then(|r| r.first().cloned().flatten());
    let snapshot = Snapshot::parse(snap).ok_or_else(|| bad_snapshot(snap))?;
    Ok(Facts {
        snapshot,
        snapshot_text: snap.clone(),
        database: database.clone(),
        table_oid: oid,
        table_name: table_name.to_owned(),
        column_type: type_name.to_owned(),
        high_water,
        taken_at: taken_at.clone(),
    })
}

/// The larger of two cursor values, compared by the server in their type.
async fn max_text(
    a: Option<&str>,
    b: Option<&str>,
    column_type: &str,
    conn: &mut Connection,
) -> Result<Option<String>> {
    match (a, b) {
        (None, b) => Ok(b.map(str::to_owned)),
        (a, None) => Ok(a.map(str::to_owned)),
        (Some(a), Some(b)) => {
            let sql = format!(
                "SELECT GREATEST({}::{column_type}, {}::{column_type})::text",
                quote_literal(a),
                quote_literal(b)
            );
            let rows = conn.simple_query(&sql).await?;
            Ok(rows.first().and_then(|r| r.first().cloned().flatten()))
        }
    }
}

/// Refuses a previous state that no longer allows the guarantee, saying why.
fn check_previous(
    state: &IncrementalState,
    options: &IncrementalOptions,
    facts: &Facts,
) -> Result<()> {
    let start_over = "(start over with --restart: the next run exports the whole table)";
    let table = &facts.table_name;
    if state.database != facts.database {
        return Err(Error::usage(format!(
            "the state is of database {:?}, not {:?} {start_over}",
            state.database, facts.database
        )));
    }
    if &state.table != table {
        return Err(Error::usage(format!(
            "the state is of table {}, not {table} {start_over}",
            state.table
        )));
    }
    if state.column != options.column {
        return Err(Error::usage(format!(
            "the state follows column {:?} of {table}, not {:?} {start_over}",
            state.column, options.column
        )));
    }
    if state.table_oid != facts.table_oid {
        return Err(Error::usage(format!(
            "{table} was dropped and created again since run {} (OID {}, now {}): its rows \
             are not those the state describes {start_over}",
            state.run, state.table_oid, facts.table_oid
        )));
    }
    if state.column_type != facts.column_type {
        return Err(Error::usage(format!(
            "column {:?} of {table} was {} at run {} and is {} now {start_over}",
            options.column, state.column_type, state.run, facts.column_type
        )));
    }
    if let Some(since) = &options.since
        && state.since.as_deref() != Some(since.as_str())
    {
        return Err(Error::usage(format!(
            "--since applies to the first run; the state started from {} {start_over}",
            state.since.as_deref().unwrap_or("the whole table")
        )));
    }
    let last = Snapshot::parse(&state.snapshot).ok_or_else(|| bad_snapshot(&state.snapshot))?;
    if last.xmax > facts.snapshot.xmax {
        return Err(Error::usage(format!(
            "the state's snapshot ({}) is ahead of the server's ({}): a state of another \
             server, or of a server restored from a backup {start_over}",
            state.snapshot, facts.snapshot_text
        )));
    }
    if facts.snapshot.xmax - last.xmin > MAX_XID_DISTANCE {
        return Err(Error::usage(format!(
            "{} transactions ran since run {}: too many to compare row versions by their \
             32-bit xmin {start_over}",
            facts.snapshot.xmax - last.xmin,
            state.run
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_rows_round_trip() {
        for word in ["auto", "always"] {
            assert_eq!(word.parse::<LateRows>().unwrap().to_string(), word);
        }
        let e = "never".parse::<LateRows>().unwrap_err();
        assert!(e.is_usage(), "{e}");
        assert!(
            e.to_string()
                .contains("\"never\" (expected auto or always)"),
            "{e}"
        );
    }

    #[test]
    fn each_run_has_its_own_name() {
        assert_eq!(
            run_name("orders.parquet", 3, false),
            "orders.run-000003.parquet"
        );
        assert_eq!(
            run_name("s3://b/x.y/orders.arrow", 12, false),
            "s3://b/x.y/orders.run-000012.arrow"
        );
        assert_eq!(run_name("out/orders", 1, false), "out/orders.run-000001");
        assert_eq!(run_name(".hidden", 1, false), ".hidden.run-000001");
        assert_eq!(run_name("-", 1, false), "-");
        assert_eq!(run_name("out/orders/", 2, true), "out/orders/run-000002");
        assert_eq!(next_run(None), 1);
    }

    #[test]
    fn snapshots_parse() {
        let s = Snapshot::parse("10:20:12,15").unwrap();
        assert_eq!(
            s,
            Snapshot {
                xmin: 10,
                xmax: 20,
                xip: vec![12, 15]
            }
        );
        assert_eq!(Snapshot::parse("7:7:").unwrap().xip, Vec::<u64>::new());
        assert!(Snapshot::parse("7:6:").is_none());
        assert!(Snapshot::parse("7:x:").is_none());
        assert!(Snapshot::parse("7:8:1:2").is_none());
    }

    /// The predicate evaluated here as the server would, for raw 32-bit xmins, with `next`
    /// the reading transaction's reference ID (`age`'s).
    fn unseen(s: &Snapshot, next: u64, x: u32) -> bool {
        const WRAP: u64 = 1 << 32;
        let age = |x: u32| match x {
            0..=2 => i32::MAX,
            _ => (next as u32).wrapping_sub(x) as i32,
        };
        let xmax = (s.xmax % WRAP) as u32;
        (0..=age(xmax)).contains(&age(x)) || s.xip.iter().any(|i| (i % WRAP) as u32 == x)
    }

    #[test]
    fn unseen_follows_the_snapshot_across_the_wrap() {
        // A snapshot of epoch 1, just before the 32-bit counter wraps, read after it wrapped.
        let epoch = 1u64 << 32;
        let s = Snapshot {
            xmin: epoch + 4_294_967_000,
            xmax: epoch + 4_294_967_290,
            xip: vec![epoch + 4_294_967_100],
        };
        let next = 2 * epoch + 500;
        // Older rows and those committed before the snapshot: seen.
        assert!(!unseen(&s, next, 4_294_966_000));
        assert!(!unseen(&s, next, 4_294_967_050));
        // In progress at the snapshot, and written after it (across the wrap): unseen.
        assert!(unseen(&s, next, 4_294_967_100));
        assert!(unseen(&s, next, 4_294_967_290));
        assert!(unseen(&s, next, 5));
        assert!(unseen(&s, next, 499));
        // Frozen and bootstrap IDs, and raw IDs more than 2^31 back: seen.
        assert!(!unseen(&s, next, 2));
        assert!(!unseen(&s, next, 1));
        assert!(!unseen(&s, next, 2_000_000_000));
        let sql = s.unseen_sql();
        assert!(sql.contains("age('4294967290'::xid)"), "{sql}");
        assert!(sql.contains("ANY('{4294967100}'::xid[])"), "{sql}");
    }
}
