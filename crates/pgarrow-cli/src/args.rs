//! The command line: subcommands and their options (clap).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pgarrow::partition::{SnapshotMode, parse_size};
use pgarrow::policy::{
    ArrayShape, EnumLayout, Infinity, InvalidUtf8, NumericTarget, Overflow, Policies,
    SpecialValues, TextLayout, WideNumeric,
};
use pgarrow::sink::IntervalEncoding;

#[derive(Parser, Debug)]
#[command(
    name = "pgarrow",
    version,
    about = "Export PostgreSQL queries and tables to Parquet and Arrow, exactly and fast",
    long_about = "Export PostgreSQL queries and tables to Parquet and Arrow, exactly and fast.\n\n\
                  Connection: --url, else DATABASE_URL, else the PG* environment variables \
                  (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE) as libpq reads them."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Export a query or table to a file (or stdout).
    Export(ExportArgs),
    /// Print the Arrow schema an export would produce, with each column's PostgreSQL type
    /// and the policies that could apply (the query is described, not run).
    Schema(SchemaArgs),
    /// Plan a partitioned export for an external scheduler: print the parts (ranges), the
    /// snapshot and the schema as JSON; with --hold, keep the snapshot open while the parts
    /// run elsewhere (`pgarrow export --plan FILE --part K`).
    Plan(PlanArgs),
    /// Load Parquet or Arrow IPC files (or an IPC stream on stdin) into a table, in one
    /// transaction: append, replace or upsert.
    Import(ImportArgs),
    /// Copy a table or query from one PostgreSQL into a table of another (or the same), in
    /// one transaction on the target: binary COPY out, Arrow, binary COPY in, pipelined.
    Copy(CopyArgs),
    /// Start a scratch PostgreSQL, load a 1M-row lineitem table and export it to Parquet.
    Demo(DemoArgs),
}

#[derive(Args, Debug)]
pub(crate) struct SourceArgs {
    /// Connection URL (postgresql://user:pass@host:port/db) or libpq key=value string.
    #[arg(long, value_name = "URL")]
    pub(crate) url: Option<String>,
    /// SQL query to export (SELECT, TABLE, VALUES, WITH ...).
    #[arg(long, short = 'q', value_name = "SQL", conflicts_with = "table")]
    pub(crate) query: Option<String>,
    /// Table to export: name or schema.name (exact, case-sensitive; quote parts with dots).
    #[arg(long, short = 't', value_name = "NAME")]
    pub(crate) table: Option<String>,
    /// Server-side statement_timeout for the session: 30s, 5min, 1500ms (a bare number is
    /// milliseconds). A longer query fails with SQLSTATE 57014.
    #[arg(long, value_name = "DURATION", value_parser = statement_timeout)]
    pub(crate) statement_timeout: Option<Duration>,
}

pub(crate) fn statement_timeout(s: &str) -> Result<Duration, String> {
    pgarrow::protocol::parse_duration(s, Duration::from_millis(1))
}

/// Conversion policies: what to do where a value has no exact Arrow form. Every default
/// refuses to lose information; every other choice is counted and reported.
#[derive(Args, Debug, Clone)]
pub(crate) struct PolicyArgs {
    /// Unconstrained numeric columns: string (exact text), float64 (rounded),
    /// decimal128:P:S or decimal256:P:S.
    #[arg(long, default_value = "string", value_name = "TARGET", value_parser = parse_policy::<NumericTarget>)]
    pub(crate) numeric: NumericTarget,
    /// numeric(p, s) columns wider than 38 digits: decimal256 (exact; DuckDB reads it from
    /// Parquet as DOUBLE, polars not at all) or string (the exact text, for any reader).
    #[arg(long, default_value = "decimal256", value_name = "TARGET", value_parser = parse_policy::<WideNumeric>)]
    pub(crate) wide_numeric: WideNumeric,
    /// Numeric values too large or too precise for their decimal: error or null.
    #[arg(long, default_value = "error", value_name = "POLICY", value_parser = parse_policy::<Overflow>)]
    pub(crate) numeric_overflow: Overflow,
    /// Date and timestamp +-infinity: extreme (the Arrow type's largest/smallest value, as
    /// PostgreSQL stores them; declared in field metadata), null or error.
    #[arg(long, default_value = "extreme", value_name = "POLICY", value_parser = parse_policy::<Infinity>)]
    pub(crate) infinity: Infinity,
    /// Values Arrow cannot hold: numeric NaN and Infinity in decimals, time 24:00:00,
    /// timestamps after 294247 AD, intervals beyond +-2562047 hours or infinite: error, null
    /// or clamp.
    #[arg(long, visible_alias = "special-values", default_value = "error", value_name = "POLICY", value_parser = parse_policy::<SpecialValues>)]
    pub(crate) out_of_range: SpecialValues,
    /// Text columns as utf8, large (64-bit offsets) or view.
    #[arg(long, default_value = "utf8", value_name = "LAYOUT", value_parser = parse_policy::<TextLayout>)]
    pub(crate) text: TextLayout,
    /// Text that is not valid UTF-8 (SQL_ASCII databases): error, replace (U+FFFD) or binary
    /// (every text column as Binary).
    #[arg(long, default_value = "error", value_name = "POLICY", value_parser = parse_policy::<InvalidUtf8>)]
    pub(crate) invalid_utf8: InvalidUtf8,
    /// Array columns: data (as many nested Lists as the values have dimensions: declared, or
    /// else those of the column's first non-empty value) or flatten (a 1-D List of each
    /// array's elements in row-major order; multi-dimensional values are counted).
    #[arg(long, default_value = "data", value_name = "SHAPE", value_parser = parse_policy::<ArrayShape>)]
    pub(crate) array_shape: ArrayShape,
    /// Enum columns as dictionary (Dictionary(Int16, Utf8) in pg_enum order) or utf8.
    #[arg(long = "enum", default_value = "dictionary", value_name = "LAYOUT", value_parser = parse_policy::<EnumLayout>)]
    pub(crate) enums: EnumLayout,
}

impl PolicyArgs {
    pub(crate) fn policies(&self) -> Policies {
        Policies {
            numeric: self.numeric,
            wide_numeric: self.wide_numeric,
            numeric_overflow: self.numeric_overflow,
            infinity: self.infinity,
            special: self.out_of_range,
            text: self.text,
            invalid_utf8: self.invalid_utf8,
            enums: self.enums,
            array_shape: self.array_shape,
        }
    }
}

pub(crate) fn parse_policy<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, String> {
    s.parse()
}

#[derive(Args, Debug)]
pub(crate) struct SchemaArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    #[command(flatten)]
    pub(crate) policies: PolicyArgs,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct OutputArgs {
    /// Output format: parquet, arrow (IPC file), arrow-stream (IPC stream) or null (decode
    /// and discard). Default: from the output file's extension.
    #[arg(long, value_name = "FORMAT")]
    pub(crate) to: Option<String>,
    /// Output file, or - for standard output.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub(crate) output: Option<String>,
    /// Parquet compression: zstd[:LEVEL], snappy, lz4, gzip, none.
    #[arg(long, default_value = "zstd", value_name = "CODEC")]
    pub(crate) compression: String,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = 1 << 20, value_name = "N", value_parser = at_least_one)]
    pub(crate) row_group_rows: usize,
    /// A Parquet row group also ends once its encoded data held in memory reaches this many
    /// bytes: the bound on the writer's memory for wide rows.
    #[arg(long, default_value_t = pgarrow::sink::DEFAULT_ROW_GROUP_BYTES, value_name = "BYTES", value_parser = at_least_one)]
    pub(crate) row_group_bytes: usize,
    /// Intervals in Arrow IPC files: native (Arrow's MonthDayNano interval) or struct
    /// (months, days, microseconds: as Parquet files hold them, for readers without
    /// MonthDayNano such as polars).
    #[arg(long, default_value = "native", value_name = "ENCODING", value_parser = parse_policy::<IntervalEncoding>)]
    pub(crate) intervals: IntervalEncoding,
    /// Rows per Arrow batch.
    #[arg(long, default_value_t = pgarrow::DEFAULT_BATCH_ROWS, value_name = "N", value_parser = at_least_one)]
    pub(crate) batch_rows: usize,
    /// Bytes of field data per Arrow batch, at most (a batch is cut at whichever limit comes
    /// first).
    #[arg(long, default_value_t = pgarrow::DEFAULT_BATCH_BYTES, value_name = "BYTES", value_parser = at_least_one)]
    pub(crate) batch_bytes: usize,
    /// No progress bar and no summary.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// After the export, print where the time went (connect, describe, first byte, read,
    /// decode, write, finish) and the counts, as a table on stderr.
    #[arg(long)]
    pub(crate) stats: bool,
    /// Write the same statistics as one JSON object to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) stats_json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    #[command(flatten)]
    pub(crate) partition: PartitionArgs,
    /// Export one part of a plan made by `pgarrow plan` (with --part), in the plan's
    /// snapshot; the source comes from the plan. Give the same type policy flags as the plan.
    #[arg(long, value_name = "FILE", requires = "part", conflicts_with_all = ["query", "table"])]
    pub(crate) plan: Option<PathBuf>,
    /// The part of --plan to export (0-based).
    #[arg(long, value_name = "K", requires = "plan")]
    pub(crate) part: Option<usize>,
    #[command(flatten)]
    pub(crate) policies: PolicyArgs,
}

/// Reading over several connections, in one snapshot.
#[derive(Args, Debug, Clone)]
pub(crate) struct PartitionArgs {
    /// Read over N connections at once, all in one snapshot: a --table in block ranges of its
    /// (leaf) relations, or any source in key ranges with --partition-by.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = at_least_one)]
    pub(crate) partitions: usize,
    /// Parts to split the source into (default: 4 per connection; a connection that finishes
    /// a part takes the next, so faster ones take more).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub(crate) parts: Option<usize>,
    /// Split on this integer, date or timestamp result column instead (bounds from the
    /// pg_stats histogram, else between its MIN and MAX); the way to split a --query.
    #[arg(long, value_name = "COLUMN")]
    pub(crate) partition_by: Option<String>,
    /// One file per part in DIR (part-00000.parquet, ...), each written atomically, then
    /// DIR/_manifest.json (snapshot, WAL position, schema, each file's range and rows).
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub(crate) output_dir: Option<PathBuf>,
    /// With --partitions into one file: write it in the source's order (parts that finish
    /// early wait in memory, within --memory-limit).
    #[arg(long)]
    pub(crate) order_preserving: bool,
    /// shared (one exported snapshot: the parts are the source as of one instant) or
    /// per-connection (for servers that cannot export one; rows that change during the
    /// export may be duplicated or missed).
    #[arg(long, default_value = "shared", value_name = "MODE", value_parser = parse_policy::<SnapshotMode>)]
    pub(crate) snapshot: SnapshotMode,
    /// Memory for what is in flight between the connections and the output (batches,
    /// encoded row groups, parts waiting for their turn): 512MiB, 2GiB, ...
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub(crate) memory_limit: usize,
}

impl PartitionArgs {
    /// Whether the export runs partitioned.
    pub(crate) fn partitioned(&self) -> bool {
        self.partitions > 1 || self.output_dir.is_some() || self.partition_by.is_some()
    }
}

#[derive(Args, Debug)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// Parts to plan (one per task of the scheduler).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub(crate) partitions: usize,
    /// Split on this integer, date or timestamp result column (see `export --partition-by`).
    #[arg(long, value_name = "COLUMN")]
    pub(crate) partition_by: Option<String>,
    /// shared or per-connection (see `export --snapshot`).
    #[arg(long, default_value = "shared", value_name = "MODE", value_parser = parse_policy::<SnapshotMode>)]
    pub(crate) snapshot: SnapshotMode,
    /// Write the plan to FILE (atomically) instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// After writing the plan, keep its snapshot open (standard output is closed, so a reader
    /// sees the plan end) until SIGTERM or Ctrl-C, the end of standard input when it is a
    /// pipe, or the exit of the parent process.
    #[arg(long)]
    pub(crate) hold: bool,
    /// Nothing on stderr but errors.
    #[arg(long)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) policies: PolicyArgs,
}

#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    /// Connection URL (postgresql://user:pass@host:port/db) or libpq key=value string.
    #[arg(long, value_name = "URL")]
    pub(crate) url: Option<String>,
    /// Files to load: .parquet, .arrow (IPC file) or .arrows (IPC stream), all with the same
    /// columns; - reads an IPC stream from standard input.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// The table (name or schema.name, exact): the input's columns go into its columns of the
    /// same names; the others get their defaults.
    #[arg(long, value_name = "TABLE")]
    pub(crate) into: String,
    /// Rows per batch read from Parquet files.
    #[arg(long, default_value_t = pgarrow::DEFAULT_BATCH_ROWS, value_name = "N", value_parser = at_least_one)]
    pub(crate) batch_rows: usize,
    #[command(flatten)]
    pub(crate) load: LoadArgs,
}

/// How `import` and `copy` load.
#[derive(Args, Debug)]
pub(crate) struct LoadArgs {
    /// append (add the rows), replace (TRUNCATE first) or upsert (insert new keys, update the
    /// others: needs --key). All in one transaction: a failure leaves the table as it was.
    #[arg(long, default_value = "append", value_name = "MODE")]
    pub(crate) mode: String,
    /// The upsert's key: columns of a unique index, comma-separated.
    #[arg(long, value_name = "COLUMNS")]
    pub(crate) key: Option<String>,
    /// Create the table when it does not exist, with the PostgreSQL types the input's field
    /// metadata names (as pgarrow exports write them) where they exist here, else the types
    /// the Arrow types map to.
    #[arg(long)]
    pub(crate) create: bool,
    /// No progress and no summary.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// After the load, where the time went (connect, describe, read, encode, send, commit).
    #[arg(long)]
    pub(crate) stats: bool,
}

#[derive(Args, Debug)]
pub(crate) struct CopyArgs {
    /// The source: URL or key=value string (default: DATABASE_URL, else the PG* variables).
    #[arg(long, value_name = "URL")]
    pub(crate) from: Option<String>,
    /// The target: URL or key=value string (default: the source's).
    #[arg(long, value_name = "URL")]
    pub(crate) to: Option<String>,
    /// SQL query to copy (SELECT, TABLE, VALUES, WITH ...); needs --into.
    #[arg(long, short = 'q', value_name = "SQL", conflicts_with = "table")]
    pub(crate) query: Option<String>,
    /// Table to copy: name or schema.name (exact).
    #[arg(
        long,
        short = 't',
        value_name = "NAME",
        required_unless_present = "query"
    )]
    pub(crate) table: Option<String>,
    /// The target table (default: the --table name).
    #[arg(long, value_name = "TABLE", required_unless_present = "table")]
    pub(crate) into: Option<String>,
    /// Read over N connections at once in one snapshot (a --table in block ranges).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = at_least_one)]
    pub(crate) partitions: usize,
    #[command(flatten)]
    pub(crate) load: LoadArgs,
    #[command(flatten)]
    pub(crate) policies: PolicyArgs,
}

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Rows in the sample lineitem table.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) rows: u64,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    #[command(flatten)]
    pub(crate) partition: PartitionArgs,
    #[command(flatten)]
    pub(crate) policies: PolicyArgs,
}

pub(crate) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}
