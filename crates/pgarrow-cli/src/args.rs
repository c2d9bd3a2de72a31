//! The command line: subcommands and their options (clap).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, Args, CommandFactory, Parser, Subcommand};
use pgarrow::incremental::LateRows;
use pgarrow::io::{
    BloomFilter, ColumnEncoding, Compression, Format, IntervalEncoding, PartitionField, SortKey,
};
use pgarrow::partition::{SnapshotMode, parse_size};
use pgarrow::policy::{
    ArrayBounds, ArrayShape, EnumLayout, Infinity, InvalidUtf8, NumericTarget, Overflow, Policies,
    SpecialValues, TextLayout, WideNumeric,
};
use pgarrow_lake::IfExists;

#[derive(Parser, Debug)]
#[command(
    name = "pgarrow",
    version,
    about = "Export PostgreSQL queries and tables to Parquet and Arrow, exactly and fast",
    long_about = "Export PostgreSQL queries and tables to Parquet and Arrow, exactly and fast; \
                  load them back; copy between servers.",
    after_help = CONNECTION_HELP,
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The command line: help is `--help` and `-?` as in psql, since `-h` is the host. What
/// `main` parses, and what the documentation's examples are checked against
/// (`tests/docs.rs` includes this file).
pub(crate) fn command() -> clap::Command {
    let help = || {
        Arg::new("help")
            .short('?')
            .long("help")
            .action(ArgAction::Help)
            .help("Print help")
            .help_heading(None::<&str>)
    };
    // Every command at every depth (`pgarrow lake compact --help` too).
    fn with_help(c: clap::Command, help: &dyn Fn() -> Arg) -> clap::Command {
        c.mut_subcommands(|s| with_help(s.disable_help_flag(true).arg(help()), help))
    }
    with_help(
        Cli::command()
            .disable_help_flag(true)
            .arg(help().short('h').short_alias('?')),
        &help,
    )
}

/// How the connection settings combine, shown under every command that connects.
pub(crate) const CONNECTION_HELP: &str = "\
Connection settings, strongest first: -h/-p/-U and a -d that is a database name; then --url \
or a -d that is a URL or key=value string; else DATABASE_URL (only when no -h/-p/-U/-d is \
given); then the service file \
(service=, PGSERVICE) and the PG* variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, \
PGSSLMODE, ...) as libpq reads them; the password last from ~/.pgpass (PGPASSFILE), or a \
prompt with -W.

Exit status: 0 done; 1 the export or load failed; 2 a usage error or no connection (bad \
settings, server unreachable, authentication refused); 3 an input holds what it must not or \
what pgarrow does not read (a malformed file, a lake table's feature: named); 130 after \
Ctrl-C, 143 after SIGTERM (nothing written, nothing loaded).";

const EXPORT_EXAMPLES: &str = "\
Examples:
  pgarrow export -h db1 -U app -d shop -t orders -o orders.parquet
  pgarrow export -d postgresql://app@db1/shop -q 'select * from orders limit 10' -o ten.parquet
  pgarrow export -t orders --columns id,total --where 'total > 100' --limit 1000 -o big.parquet
  pgarrow export -f report.sql --to arrow-stream -o - | python consume.py
  pgarrow export --schema sales --output-dir sales/       # every table, one snapshot
  pgarrow export -t 'sales.order_*' -t customers --output-dir out/
  pgarrow export -t events --partitions 4 -o events.parquet
  pgarrow export -t orders -o orders.parquet --dry-run    # the plan, without running it";

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Export a query or table to a file (or stdout), or several tables to a directory.
    #[command(after_help = [EXPORT_EXAMPLES, "\n\n", CONNECTION_HELP].concat())]
    Export(Box<ExportArgs>),
    /// Print the Arrow schema an export would produce, with each column's PostgreSQL type
    /// and the policies that could apply (the query is described, not run).
    #[command(after_help = CONNECTION_HELP)]
    Schema(SchemaArgs),
    /// Plan a partitioned export for an external scheduler: print the parts (ranges), the
    /// snapshot and the schema as JSON; with --hold, keep the snapshot open while the parts
    /// run elsewhere (`pgarrow export --plan FILE --part K`).
    #[command(after_help = CONNECTION_HELP)]
    Plan(PlanArgs),
    /// Load Parquet or Arrow IPC files (or an IPC stream on stdin) into a table, in one
    /// transaction: append, replace or upsert.
    #[command(after_help = CONNECTION_HELP)]
    Import(ImportArgs),
    /// Copy a table or query from one PostgreSQL into a table of another (or the same), in
    /// one transaction on the target: binary COPY out, Arrow, binary COPY in, pipelined.
    Copy(CopyArgs),
    /// Stream a logical replication slot's changes (pgoutput) into Parquet or Arrow IPC files,
    /// one file set per table named by LSN range, with a manifest; or to stdout as Arrow IPC.
    /// The slot advances only once the files are durable; a rerun resumes exactly.
    #[command(after_help = [CHANGES_EXAMPLES, "\n\n", CONNECTION_HELP].concat())]
    Changes(ChangesArgs),
    /// Apply a changes directory (as `pgarrow changes` writes it) to the tables of another
    /// PostgreSQL, by key: each roll in one transaction, each once (a state table records how
    /// far the target is).
    #[command(after_help = [APPLY_EXAMPLES, "\n\n", CONNECTION_HELP].concat())]
    Apply(ApplyArgs),
    /// Keep lake tables equal to PostgreSQL tables: export them into DuckLake, Delta or Iceberg
    /// tables in the snapshot of a new replication slot, then commit the slot's changes (inserts,
    /// updates, deletes, truncates) at transaction boundaries, each commit recording the WAL
    /// position it reaches, exactly once across restarts.
    #[command(after_help = [MIRROR_EXAMPLES, "\n\n", CONNECTION_HELP].concat())]
    Mirror(Box<MirrorArgs>),
    /// Upkeep of a lake table, safe beside a mirror committing to it: `compact` rewrites small
    /// files and files with deletes into files of a target size; `expire` drops snapshots
    /// older than a retention and the files only they held.
    #[command(subcommand)]
    Lake(LakeCommand),
    /// Start a scratch PostgreSQL, load a 1M-row lineitem table and export it to Parquet.
    Demo(DemoArgs),
    /// Print a completion script for a shell: bash, zsh, fish, elvish or powershell
    /// (e.g. `pgarrow completions bash > /etc/bash_completion.d/pgarrow`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on standard output, or write one page per command into
    /// a directory (`man ./pgarrow.1` reads it).
    Man {
        /// Write pgarrow.1 and pgarrow-COMMAND.1 into DIR.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Where to connect, spelled as psql and pg_dump spell it.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Connection")]
pub(crate) struct ConnArgs {
    /// Server host name or Unix socket directory.
    #[arg(short = 'h', long, value_name = "HOST")]
    pub(crate) host: Option<String>,
    /// Server port.
    #[arg(short = 'p', long, value_name = "PORT")]
    pub(crate) port: Option<String>,
    /// User name.
    #[arg(short = 'U', long, value_name = "USER")]
    pub(crate) username: Option<String>,
    /// Database name, or a whole connection string (postgresql://... URL or key=value
    /// pairs), as psql takes it.
    #[arg(short = 'd', long, value_name = "DBNAME")]
    pub(crate) dbname: Option<String>,
    /// Prompt for the password on the terminal.
    #[arg(short = 'W', long = "password")]
    pub(crate) password_prompt: bool,
    /// Connection URL (postgresql://user:pass@host:port/db) or libpq key=value string.
    #[arg(long, value_name = "URL")]
    pub(crate) url: Option<String>,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Source")]
pub(crate) struct SourceArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// SQL query to export (SELECT, TABLE, VALUES, WITH ...); - reads it from standard
    /// input. A trailing ; and comments are fine.
    #[arg(long, short = 'q', value_name = "SQL", help_heading = "Source", conflicts_with_all = ["table", "file", "schema"])]
    pub(crate) query: Option<String>,
    /// Read the query from FILE.
    #[arg(long, short = 'f', value_name = "FILE", help_heading = "Source", conflicts_with_all = ["table", "schema"])]
    pub(crate) file: Option<PathBuf>,
    /// Table to export, as SQL names it: unquoted names fold to lower case, "Quoted" parts
    /// keep theirs; schema.name; pg_dump patterns (* and ?) select several. Repeatable.
    #[arg(long, short = 't', value_name = "PATTERN", help_heading = "Source")]
    pub(crate) table: Vec<String>,
    /// Export every table, view and materialized view of the schemas matching PATTERN.
    /// Repeatable.
    #[arg(long, short = 'n', value_name = "PATTERN", help_heading = "Source")]
    pub(crate) schema: Vec<String>,
    /// Only these columns of the --table, in this order: a,b,"Mixed Case".
    #[arg(long, value_name = "COLUMNS", help_heading = "Source")]
    pub(crate) columns: Option<String>,
    /// Only the --table's rows for which this SQL condition holds.
    #[arg(long = "where", value_name = "CONDITION", help_heading = "Source")]
    pub(crate) where_: Option<String>,
    /// At most N rows of the --table.
    #[arg(long, value_name = "N", help_heading = "Source")]
    pub(crate) limit: Option<u64>,
    /// Server-side statement_timeout for the session: 30s, 5min, 1500ms (a bare number is
    /// milliseconds). A longer query fails with SQLSTATE 57014.
    #[arg(long, value_name = "DURATION", value_parser = statement_timeout, help_heading = "Connection")]
    pub(crate) statement_timeout: Option<Duration>,
}

pub(crate) fn statement_timeout(s: &str) -> Result<Duration, pgarrow::protocol::InvalidDuration> {
    pgarrow::protocol::parse_duration(s, Duration::from_millis(1))
}

/// Conversion policies: what to do where a value has no exact Arrow form. Every default
/// refuses to lose information; every other choice is counted and reported.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Type policies")]
pub(crate) struct PolicyArgs {
    /// Unconstrained numeric columns: string (exact text), float64 (rounded),
    /// decimal128:P:S or decimal256:P:S.
    #[arg(long, default_value = "string", value_name = "TARGET", value_parser = parse_with::<NumericTarget>)]
    pub(crate) numeric: NumericTarget,
    /// numeric(p, s) columns wider than 38 digits: decimal256 (exact; DuckDB reads it from
    /// Parquet as DOUBLE, polars not at all) or string (the exact text, for any reader).
    #[arg(long, default_value = "decimal256", value_name = "TARGET", value_parser = parse_with::<WideNumeric>)]
    pub(crate) wide_numeric: WideNumeric,
    /// Numeric values too large or too precise for their decimal: error or null.
    #[arg(long, default_value = "error", value_name = "POLICY", value_parser = parse_with::<Overflow>)]
    pub(crate) numeric_overflow: Overflow,
    /// Date and timestamp +-infinity: extreme (the Arrow type's largest/smallest value, as
    /// PostgreSQL stores them; declared in field metadata), null or error.
    #[arg(long, default_value = "extreme", value_name = "POLICY", value_parser = parse_with::<Infinity>)]
    pub(crate) infinity: Infinity,
    /// Values Arrow cannot hold: numeric NaN and Infinity in decimals, time 24:00:00,
    /// timestamps after 294247 AD, intervals beyond +-2562047 hours or infinite: error, null,
    /// clamp, or text (columns of such types as the server's exact text).
    #[arg(long, visible_alias = "special-values", default_value = "error", value_name = "POLICY", value_parser = parse_with::<SpecialValues>)]
    pub(crate) out_of_range: SpecialValues,
    /// Text columns as utf8, large (64-bit offsets) or view.
    #[arg(long, default_value = "utf8", value_name = "LAYOUT", value_parser = parse_with::<TextLayout>)]
    pub(crate) text: TextLayout,
    /// Text that is not valid UTF-8 (SQL_ASCII databases): error, replace (U+FFFD) or binary
    /// (every text column as Binary).
    #[arg(long, default_value = "error", value_name = "POLICY", value_parser = parse_with::<InvalidUtf8>)]
    pub(crate) invalid_utf8: InvalidUtf8,
    /// Array columns: data (as many nested Lists as the column's first non-empty value has
    /// dimensions), flatten (a 1-D List of each array's elements in row-major order;
    /// multi-dimensional values are counted) or text (the server's exact text: bounds and any
    /// mix of dimensions kept).
    #[arg(long, value_name = "SHAPE", value_parser = parse_with::<ArrayShape>)]
    pub(crate) array_shape: Option<ArrayShape>,
    /// Array lower bounds other than 1 ('[0:2]={7,8,9}'): error, or drop (the elements kept
    /// in order; counted).
    #[arg(long, default_value = "error", value_name = "POLICY", value_parser = parse_with::<ArrayBounds>)]
    pub(crate) array_bounds: ArrayBounds,
    /// Enum columns as dictionary (Dictionary(Int16, Utf8) in pg_enum order) or utf8.
    #[arg(long = "enum", default_value = "dictionary", value_name = "LAYOUT", value_parser = parse_with::<EnumLayout>)]
    pub(crate) enums: EnumLayout,
}

impl PolicyArgs {
    pub(crate) fn policies(&self) -> Policies {
        Policies::default()
            .with_numeric(self.numeric)
            .with_wide_numeric(self.wide_numeric)
            .with_numeric_overflow(self.numeric_overflow)
            .with_infinity(self.infinity)
            .with_special(self.out_of_range)
            .with_text(self.text)
            .with_invalid_utf8(self.invalid_utf8)
            .with_enums(self.enums)
            .with_array_shape(self.array_shape.unwrap_or_default())
            .with_array_bounds(self.array_bounds)
    }
}

/// A choice read by the library's own `FromStr`: the words and the message of every door
/// (the CLI, Python, the ADBC driver) are the same, and clap shows the library's error.
pub(crate) fn parse_with<T>(s: &str) -> Result<T, T::Err>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    s.parse()
}

/// `--metrics-listen`'s address.
fn metrics_address(s: &str) -> Result<std::net::SocketAddr, String> {
    pgarrow_lake::mirror::metrics_address(s).map_err(|e| e.to_string())
}

/// Object-store settings, for commands that read or write files.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Object stores")]
pub(crate) struct StorageArgs {
    /// An object-store setting, KEY=VALUE (repeatable): aws_endpoint=http://localhost:9000,
    /// aws_allow_http=true, aws_virtual_hosted_style_request=false, aws_profile=NAME,
    /// azure_storage_account_name=..., google_service_account=FILE, part_size=64MiB, ...
    /// (see the book's "Object stores", docs/src/object-stores.md). The clouds' environment
    /// variables are read first.
    #[arg(long = "storage-option", value_name = "KEY=VALUE")]
    pub(crate) storage_options: Vec<String>,
}

impl std::fmt::Debug for StorageArgs {
    /// The keys only: values may be secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(
                self.storage_options
                    .iter()
                    .map(|o| o.split_once('=').map_or("?", |(k, _)| k)),
            )
            .finish()
    }
}

impl StorageArgs {
    /// The settings.
    /// Parsed here rather than by clap, whose message would echo a value typed without its
    /// key (a secret).
    pub(crate) fn options(&self) -> pgarrow::Result<pgarrow::io::StorageOptions> {
        self.storage_options
            .iter()
            .map(|o| pgarrow::io::StorageOptions::parse_pair(o))
            .collect::<Result<_, _>>()
            .map_err(pgarrow::Error::from)
    }

    /// A path or URL given on the command line.
    pub(crate) fn location(
        &self,
        path: &std::path::Path,
    ) -> pgarrow::Result<pgarrow::io::Location> {
        match path.to_str() {
            Some(text) => Ok(pgarrow::io::Location::parse(text, &self.options()?)?),
            None => Ok(pgarrow::io::Location::Local(path.to_owned())),
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct SchemaArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    #[command(flatten)]
    pub(crate) policies: PolicyArgs,
}

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Output")]
pub(crate) struct OutputArgs {
    /// Output format: parquet, arrow (IPC file), arrow-stream (IPC stream) or null (decode
    /// and discard). Default: from the output file's extension (.parquet, .arrow, .arrows).
    #[arg(long, value_name = "FORMAT", value_parser = parse_with::<Format>)]
    pub(crate) to: Option<Format>,
    /// Output file, or an object URL (s3://bucket/key.parquet, gs://..., az://...,
    /// abfss://...), or - for standard output (not a terminal).
    #[arg(long, short = 'o', value_name = "PATH")]
    pub(crate) output: Option<String>,
    /// No progress bar and no summary.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Print the summary and statistics as one JSON object on standard output.
    #[arg(long)]
    pub(crate) json: bool,
    /// Print the plan (source, COPY statement, output, policies, schema) without running
    /// the export.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// After the export, print where the time went (connect, describe, first byte, read,
    /// decode, write, finish) and the counts, as a table on stderr.
    #[arg(long)]
    pub(crate) stats: bool,
    /// Write the same statistics as one JSON object to FILE (a path or an object URL).
    #[arg(long, value_name = "FILE")]
    pub(crate) stats_json: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// Parquet compression: zstd[:LEVEL], snappy, lz4, gzip, none [default: zstd].
    #[arg(long, value_name = "CODEC", value_parser = parse_with::<Compression>, help_heading = "Parquet")]
    pub(crate) compression: Option<Compression>,
    /// Rows per Parquet row group [default: 1048576].
    #[arg(long, value_name = "N", value_parser = at_least_one, help_heading = "Parquet")]
    pub(crate) row_group_rows: Option<usize>,
    /// A Parquet row group also ends once its encoded data held in memory reaches this many
    /// bytes: the bound on the writer's memory for wide rows [default: 33554432 (32 MiB)].
    #[arg(long, value_name = "BYTES", value_parser = at_least_one, help_heading = "Parquet")]
    pub(crate) row_group_bytes: Option<usize>,
    /// A Parquet bloom filter on COLUMN (every leaf under it), sized for a false-positive rate
    /// FPP [default: 0.05]: readers skip row groups that cannot hold a value looked up.
    /// Repeatable.
    #[arg(long = "bloom-filter", value_name = "COLUMN[:FPP]", value_parser = parse_with::<BloomFilter>, help_heading = "Parquet")]
    pub(crate) bloom_filters: Vec<BloomFilter>,
    /// A Parquet encoding for COLUMN: plain, dictionary, delta (integers), delta-length,
    /// delta-prefix (text, bytes), byte-stream-split (floats), rle (booleans). Repeatable.
    #[arg(long = "column-encoding", value_name = "COLUMN=ENCODING", value_parser = parse_with::<ColumnEncoding>, help_heading = "Parquet")]
    pub(crate) encodings: Vec<ColumnEncoding>,
    /// Parquet data pages of version 2.
    #[arg(long, help_heading = "Parquet")]
    pub(crate) data_page_v2: bool,
    /// Parquet field IDs, numbered as Iceberg numbers a new table's columns (top-level
    /// columns 1..n, then nested fields).
    #[arg(long, help_heading = "Parquet")]
    pub(crate) field_ids: bool,
    /// PostGIS geometry and geography columns as Parquet's own GEOMETRY and GEOGRAPHY
    /// logical types (GeoParquet 2.0: the CRS in the type, bounding boxes in the statistics),
    /// besides GeoParquet 1.1's `geo` metadata, which is written either way.
    #[arg(long, help_heading = "Parquet")]
    pub(crate) geo_types: bool,
    /// GeoParquet's bbox covering: a column GEOM_bbox (xmin, ymin, xmax, ymax) after the
    /// others for each geometry column, named in the `geo` metadata, so that readers skip row
    /// groups by its statistics.
    #[arg(long, help_heading = "Parquet")]
    pub(crate) geo_bbox: bool,
    /// The rows are ordered by COLUMN (the query's ORDER BY: asc with NULLs last, desc with
    /// NULLs first): Parquet's sorting_columns say so in every row group, for readers to skip
    /// and merge by. Checked as the rows are written; rows out of that order fail the export.
    /// Repeatable, most significant first.
    #[arg(long = "sorted-by", value_name = "COLUMN[:asc|desc]", value_parser = parse_with::<SortKey>, help_heading = "Parquet")]
    pub(crate) sorted_by: Vec<SortKey>,
    /// With --output-dir: value partitions, as Hive-style directories
    /// (l_shipdate_day=2026-11-25/): COLUMN (left out of the files: its directories hold
    /// it), or year(C), month(C), day(C), hour(C), bucket(N, C), truncate(W, C). Repeatable,
    /// outermost first. Not --partition-by, which splits the read.
    #[arg(long = "files-by", value_name = "EXPR", value_parser = parse_with::<PartitionField>, help_heading = "Layout")]
    pub(crate) files_by: Vec<PartitionField>,
    /// With --output-dir: a file ends after N rows and the next begins.
    #[arg(long, value_name = "N", value_parser = at_least_one_u64, help_heading = "Layout")]
    pub(crate) max_file_rows: Option<u64>,
    /// With --output-dir: a file ends before it would pass SIZE (128MiB, 1GiB, ...).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "Layout")]
    pub(crate) max_file_size: Option<usize>,
    /// Intervals in Arrow IPC files: native (Arrow's MonthDayNano interval) or struct
    /// (months, days, microseconds: as Parquet files hold them, for readers without
    /// MonthDayNano such as polars) [default: native].
    #[arg(long, value_name = "ENCODING", value_parser = parse_with::<IntervalEncoding>, help_heading = "Arrow IPC")]
    pub(crate) intervals: Option<IntervalEncoding>,
    /// Rows per Arrow batch.
    #[arg(long, default_value_t = pgarrow::DEFAULT_BATCH_ROWS, value_name = "N", value_parser = at_least_one, help_heading = "Batches")]
    pub(crate) batch_rows: usize,
    /// Bytes of field data per Arrow batch, at most (a batch is cut at whichever limit comes
    /// first).
    #[arg(long, default_value_t = pgarrow::DEFAULT_BATCH_BYTES, value_name = "SIZE", value_parser = parse_size, help_heading = "Batches")]
    pub(crate) batch_bytes: usize,
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
    #[arg(long, value_name = "FILE", requires = "part", conflicts_with_all = ["query", "file", "table", "schema"], help_heading = "Parallel reads")]
    pub(crate) plan: Option<PathBuf>,
    /// The part of --plan to export (0-based).
    #[arg(
        long,
        value_name = "K",
        requires = "plan",
        help_heading = "Parallel reads"
    )]
    pub(crate) part: Option<usize>,
    #[command(flatten)]
    pub(crate) incremental: IncrementalArgs,
    #[command(flatten)]
    pub(crate) slot: SlotArgs,
    #[command(flatten)]
    pub(crate) lake: LakeArgs,
    #[command(flatten)]
    pub(crate) policies: PolicyArgs,
}

/// `pgarrow mirror`: an export's flags (the tables, the lake table, its files), and how the
/// mirror follows the slot.
#[derive(Args, Debug)]
pub(crate) struct MirrorArgs {
    #[command(flatten)]
    pub(crate) export: ExportArgs,
    #[command(flatten)]
    pub(crate) mirror: MirrorFlags,
}

/// How a mirror follows its slot.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Mirror")]
pub(crate) struct MirrorFlags {
    /// The logical replication slot the mirror follows (made, with its snapshot, by the first
    /// run; its position is kept in the lake tables' commits).
    #[arg(long, value_name = "NAME")]
    pub(crate) slot: String,
    /// The publication the changes are read through (default: one named as the slot, made
    /// for the tables when missing).
    #[arg(long, value_name = "NAME")]
    pub(crate) publication: Option<String>,
    /// Commit at the first transaction boundary this many seconds after the last commit.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub(crate) commit_interval: f64,
    /// ... or once this many changes arrived, whichever comes first.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = at_least_one_u64)]
    pub(crate) commit_changes: u64,
    /// Commit what was committed up to now, then exit (a scheduled job), instead of following
    /// until stopped.
    #[arg(long)]
    pub(crate) catch_up: bool,
    /// Start over: drop the slot if it exists, make it again and export every table anew in
    /// its snapshot, replacing the lake tables' rows.
    #[arg(long)]
    pub(crate) start_over: bool,
    /// Make the slot a failover slot (PostgreSQL 17): the server synchronizes it to standbys
    /// with sync_replication_slots, so that the mirror goes on after a failover to one.
    #[arg(long)]
    pub(crate) failover: bool,
    /// Stop at a schema change a lake table cannot take in place (a column added with a
    /// default, a renamed column, a column dropped from a Delta table), instead of exporting
    /// that table again in a new snapshot and going on.
    #[arg(long)]
    pub(crate) no_reexport: bool,
    /// How commits take rows out of the lake table's files: merge-on-read (deletion vectors,
    /// delete files: a commit writes little) or copy-on-write (each file that loses rows is
    /// written again without them: data files only, for readers of neither).
    #[arg(long, value_name = "MODE", default_value = "merge-on-read", value_parser = parse_with::<pgarrow_lake::mirror::DeleteMode>)]
    pub(crate) deletes: pgarrow_lake::mirror::DeleteMode,
    /// Where a table's changes past a quarter of --memory-limit, and large source transactions
    /// the server streams before their commit, are set aside until it (files removed after it)
    /// [default: the system's temporary directory].
    #[arg(long, value_name = "DIR")]
    pub(crate) spill_dir: Option<PathBuf>,
    /// How many seconds to try through failures that may pass (a connection to the source or
    /// the catalog cut, an object store or catalog that does not answer), each retry reported,
    /// before giving up; counted from the first failure since the last commit. 0: give up at
    /// the first.
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    pub(crate) retry_for: f64,
    /// Serve the mirror's figures for Prometheus on GET /metrics while it runs: the source's
    /// WAL position, each table's, the lag in bytes and seconds, commits, rows, retries,
    /// spills. PORT listens on 127.0.0.1 only; HOST:PORT where told (port 0: any, said in the
    /// first line).
    #[arg(long, value_name = "[HOST:]PORT", value_parser = metrics_address)]
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
    /// Say where the mirror is and exit, without running it: the slot on the source (active
    /// or not, what it confirmed, how far the server's WAL is past it) and each lake table's
    /// recorded position and snapshot (with --json, one JSON object).
    #[arg(long)]
    pub(crate) status: bool,
    /// Say which snapshot or version of each lake table holds the source as it was at POINT,
    /// and how to read it there, and exit, without running the mirror: `latest` (the latest
    /// point every table holds whole: what the slot confirmed), a WAL position (16/B374D848),
    /// or a time the source reads as a timestamptz ('2026-11-29 10:00+01'; the newest
    /// position whose transaction committed by then). With --json, one JSON object.
    #[arg(long, value_name = "POINT", conflicts_with = "status")]
    pub(crate) at: Option<String>,
}

/// Lake tables: the export committed into a table of a lake format.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Lake tables")]
#[command(group(clap::ArgGroup::new("lake_format").args(["ducklake", "delta", "iceberg"]).multiple(false)))]
#[command(group(clap::ArgGroup::new("lake_catalog").args(["ducklake", "iceberg"]).multiple(false)))]
pub(crate) struct LakeArgs {
    /// Export into a DuckLake table whose catalog is the PostgreSQL database at URL (made
    /// there, with --data-path, when the database has none): the files go under the lake's
    /// data path, and one catalog transaction commits them.
    #[arg(long, value_name = "URL", conflicts_with_all = ["output", "plan"])]
    pub(crate) ducklake: Option<String>,
    /// Export into the Delta Lake table at LOCATION (a directory or an object store URL; made
    /// when there is none): the files go under it, and one commit in its _delta_log adds them.
    #[arg(long, value_name = "LOCATION", conflicts_with_all = ["output", "plan"])]
    pub(crate) delta: Option<String>,
    /// Export into an Apache Iceberg table of the catalog at URL: a REST catalog's
    /// http[s]:// address (with --iceberg-property), or the SQL catalog in the PostgreSQL
    /// database at URL (pyiceberg's SqlCatalog and Iceberg's JDBC catalog; its tables made
    /// when the database has none). The files go under the table's location, and one commit
    /// of the catalog adds them.
    #[arg(long, value_name = "URL", conflicts_with_all = ["output", "plan"])]
    pub(crate) iceberg: Option<String>,
    /// Where a new Iceberg table goes: WAREHOUSE/NAMESPACE.db/TABLE (a directory or an
    /// object store URL); an existing table keeps its own location. With a REST catalog: the
    /// catalog's warehouse (its warehouse property), which places new tables itself.
    #[arg(long, value_name = "PATH", requires = "iceberg")]
    pub(crate) warehouse: Option<String>,
    /// The Iceberg catalog's name: an SQL catalog's in its database (pyiceberg's load_catalog
    /// name); a REST catalog's entry in ~/.pyiceberg.yaml and PYICEBERG_CATALOG__NAME__*.
    #[arg(long, value_name = "NAME", default_value = pgarrow_lake::iceberg::DEFAULT_CATALOG_NAME, requires = "iceberg")]
    pub(crate) catalog_name: String,
    /// A property of the Iceberg REST catalog (--iceberg http[s]://...), as pyiceberg spells
    /// them: credential=ID:SECRET, token=..., scope=..., oauth2-server-uri=..., prefix=...,
    /// header.NAME=..., ssl.cabundle=FILE, s3.endpoint=..., s3.access-key-id=...,
    /// s3.path-style-access=true, ... (repeat for each; over ~/.pyiceberg.yaml and the
    /// PYICEBERG_CATALOG__NAME__KEY variables of --catalog-name's catalog).
    #[arg(
        long = "iceberg-property",
        value_name = "KEY=VALUE",
        requires = "iceberg"
    )]
    pub(crate) iceberg_property: Vec<String>,
    /// A Delta checkpoint every N versions, unless the table's delta.checkpointInterval says
    /// otherwise (0: none).
    #[arg(long, value_name = "N", default_value_t = pgarrow_lake::delta::DEFAULT_CHECKPOINT_INTERVAL, requires = "delta")]
    pub(crate) checkpoint_interval: u64,
    /// The lake table, [SCHEMA.]NAME: a DuckLake schema or an Iceberg namespace (default:
    /// the exported table's name, in schema main for DuckLake, namespace default for Iceberg).
    #[arg(long, value_name = "NAME", requires = "lake_catalog")]
    pub(crate) lake_table: Option<String>,
    /// Where a new DuckLake catalog keeps its files: a directory or an object store URL.
    #[arg(long, value_name = "PATH", requires = "ducklake")]
    pub(crate) data_path: Option<String>,
    /// When the lake table exists: fail (the default), append, or replace its rows (one
    /// snapshot or version; the old rows stay for time travel).
    #[arg(long, value_name = "WHAT", default_value = "fail", value_parser = parse_with::<IfExists>, requires = "lake_format")]
    pub(crate) if_exists: IfExists,
}

impl LakeArgs {
    /// Whether the export goes into a lake table.
    pub(crate) fn is_lake(&self) -> bool {
        self.ducklake.is_some() || self.delta.is_some() || self.iceberg.is_some()
    }
}

/// The hand-off to logical replication.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Hand-off to logical replication")]
pub(crate) struct SlotArgs {
    /// With --create-slot: create logical replication slot NAME first (on a replication
    /// connection, as the same role: it needs the REPLICATION attribute, and wal_level =
    /// logical), and export in the snapshot it exports: a consumer streaming from the slot
    /// gets exactly the changes after this export. The slot and its consistent point (LSN)
    /// are printed, in --json and in the manifest (into a lake table: in its commit, where
    /// `pgarrow apply` and `pgarrow mirror` of the slot go on from).
    #[arg(long, value_name = "NAME", requires = "create_slot", conflicts_with_all = ["incremental_by", "plan"])]
    pub(crate) replication_slot: Option<String>,
    /// Create the --replication-slot (an existing slot has no snapshot to export in).
    #[arg(long, requires = "replication_slot")]
    pub(crate) create_slot: bool,
    /// The slot's output plugin.
    #[arg(
        long,
        value_name = "PLUGIN",
        default_value = "pgoutput",
        requires = "replication_slot"
    )]
    pub(crate) slot_plugin: String,
}

/// Incremental runs: each exports what changed since the previous one.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Incremental runs")]
pub(crate) struct IncrementalArgs {
    /// Export only what changed since the previous run recorded in --state, by this cursor
    /// column of the --table (integer, numeric, date, timestamp, timestamptz), late commits
    /// included; the first run exports everything. Each run writes new files: -o
    /// orders.parquet gives orders.run-000001.parquet, orders.run-000002.parquet, ...
    /// Into a lake table (--ducklake, --delta, --iceberg), the state rides in each run's
    /// commit instead of --state: the next run reads it back from the table.
    #[arg(long, value_name = "COLUMN")]
    pub(crate) incremental_by: Option<String>,
    /// The state file the runs share (JSON: the column, the high-water mark, the run's
    /// snapshot and files, the run counter), replaced atomically after each run's output is
    /// written; a path or an object URL (s3://bucket/orders.state.json, ...).
    #[arg(long, value_name = "PATH", requires = "incremental_by")]
    pub(crate) state: Option<PathBuf>,
    /// The first run starts from this cursor value (inclusive) instead of the whole table.
    #[arg(long, value_name = "VALUE", requires = "incremental_by")]
    pub(crate) since: Option<String>,
    /// Start over: export the whole table (or from --since) whatever the state says, and
    /// replace the state.
    #[arg(long, requires = "incremental_by")]
    pub(crate) restart: bool,
    /// When to scan the table for late rows (written below the previous run's mark by a
    /// transaction it could not see): auto (when a transaction was open as the previous run
    /// read) or always (for a cursor not set from the server's clock or a sequence).
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = parse_with::<LateRows>, requires = "incremental_by")]
    pub(crate) late_rows: LateRows,
}

/// Reading over several connections, in one snapshot.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Parallel reads")]
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
    /// Write into DIR, each file atomically, then DIR/_manifest.json: one file per table
    /// (schema.table.parquet) for several tables (patterns, repeated --table, --schema), all
    /// read in one snapshot; else one file per part (part-00000.parquet, ...).
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "output",
        help_heading = "Output"
    )]
    pub(crate) output_dir: Option<PathBuf>,
    /// With --partitions into one file: write it in the source's order (parts that finish
    /// early wait in memory, within --memory-limit).
    #[arg(long)]
    pub(crate) order_preserving: bool,
    /// shared (one exported snapshot: the parts are the source as of one instant) or
    /// per-connection (for servers that cannot export one; rows that change during the
    /// export may be duplicated or missed).
    #[arg(long, default_value = "shared", value_name = "MODE", value_parser = parse_with::<SnapshotMode>)]
    pub(crate) snapshot: SnapshotMode,
    /// Memory for what is in flight between the connections and the output (batches,
    /// encoded row groups, parts waiting for their turn, laid-out files' pending rows):
    /// 512MiB, 2GiB, ... [default: 1GiB]. On one connection into one file it bounds the
    /// batches and the row group too.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) memory_limit: Option<usize>,
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
    #[arg(long, default_value = "shared", value_name = "MODE", value_parser = parse_with::<SnapshotMode>)]
    pub(crate) snapshot: SnapshotMode,
    /// Write the plan to FILE (atomically; a path or an object URL) instead of standard
    /// output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
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
#[command(group(clap::ArgGroup::new("import_catalog").args(["ducklake", "iceberg"]).multiple(false)))]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// Files to load: .parquet, .arrow (IPC file) or .arrows (IPC stream), all with the same
    /// columns; a directory (or prefix) with the manifest of the export that wrote it;
    /// object URLs (s3://bucket/orders.parquet, or a pattern: s3://bucket/orders/*.parquet);
    /// - reads an IPC stream from standard input.
    #[arg(required_unless_present_any = ["delta", "iceberg", "ducklake"], value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Load the current version of the Delta Lake table at LOCATION (a directory or an object
    /// store URL), whoever wrote it: its live files, with their partition values as columns.
    #[arg(long, value_name = "LOCATION", conflicts_with_all = ["files", "iceberg"])]
    pub(crate) delta: Option<String>,
    /// Load the current snapshot of an Apache Iceberg table (--lake-table NAMESPACE.NAME) of
    /// the catalog at URL (a REST catalog's http[s]:// address, or the PostgreSQL database of
    /// an SQL catalog), whoever wrote it.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "files",
        requires = "lake_table"
    )]
    pub(crate) iceberg: Option<String>,
    /// Load the current snapshot of a DuckLake table (--lake-table SCHEMA.NAME) whose catalog
    /// is the PostgreSQL database at URL, whoever wrote it: its files with their deletes
    /// applied, and the rows DuckDB inlined into the catalog.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with_all = ["files", "delta"],
        requires = "lake_table"
    )]
    pub(crate) ducklake: Option<String>,
    /// The lake table to load: NAMESPACE.NAME of --iceberg (namespace default: default),
    /// SCHEMA.NAME of --ducklake (schema default: main).
    #[arg(long, value_name = "NAME", requires = "import_catalog")]
    pub(crate) lake_table: Option<String>,
    /// The Iceberg catalog's name: an SQL catalog's in its database; a REST catalog's entry in
    /// ~/.pyiceberg.yaml and PYICEBERG_CATALOG__NAME__*.
    #[arg(long, value_name = "NAME", default_value = pgarrow_lake::iceberg::DEFAULT_CATALOG_NAME, requires = "iceberg")]
    pub(crate) catalog_name: String,
    /// A property of the Iceberg REST catalog (--iceberg http[s]://...), as pyiceberg spells
    /// them: credential=ID:SECRET, token=..., scope=..., oauth2-server-uri=..., prefix=...,
    /// header.NAME=..., ssl.cabundle=FILE, s3.endpoint=..., s3.access-key-id=...,
    /// s3.path-style-access=true, ... (repeat for each; over ~/.pyiceberg.yaml and the
    /// PYICEBERG_CATALOG__NAME__KEY variables of --catalog-name's catalog).
    #[arg(
        long = "iceberg-property",
        value_name = "KEY=VALUE",
        requires = "iceberg"
    )]
    pub(crate) iceberg_property: Vec<String>,
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// The table (name or schema.name, read as SQL reads it: unquoted names fold to lower
    /// case, "Quoted" ones keep their case): the input's columns go into its columns of the
    /// same names; the others get their defaults.
    #[arg(long, value_name = "TABLE")]
    pub(crate) into: String,
    /// Rows per batch read from Parquet files.
    #[arg(long, default_value_t = pgarrow::DEFAULT_BATCH_ROWS, value_name = "N", value_parser = at_least_one)]
    pub(crate) batch_rows: usize,
    #[command(flatten)]
    pub(crate) load: LoadArgs,
}

/// A load's mode as `--mode` names it; with `--key` it makes the [`pgarrow::LoadMode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModeName {
    /// Add the rows.
    Append,
    /// TRUNCATE first.
    Replace,
    /// Insert new keys, update the others.
    Upsert,
}

impl ModeName {
    /// Its name, as `--mode` takes it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ModeName::Append => "append",
            ModeName::Replace => "replace",
            ModeName::Upsert => "upsert",
        }
    }
}

impl std::str::FromStr for ModeName {
    type Err = pgarrow::Error;

    fn from_str(s: &str) -> Result<ModeName, pgarrow::Error> {
        match s {
            "append" => Ok(ModeName::Append),
            "replace" => Ok(ModeName::Replace),
            "upsert" => Ok(ModeName::Upsert),
            other => Err(pgarrow::Error::usage(format!(
                "unknown load mode {other:?} (possible values: append, replace, upsert)"
            ))),
        }
    }
}

/// How `import` and `copy` load.
#[derive(Args, Debug)]
pub(crate) struct LoadArgs {
    /// append (add the rows), replace (TRUNCATE first) or upsert (insert new keys, update the
    /// others: needs --key). All in one transaction: a failure leaves the table as it was.
    #[arg(long, default_value = "append", value_name = "MODE", value_parser = parse_with::<ModeName>)]
    pub(crate) mode: ModeName,
    /// The upsert's key: columns of a unique index, comma-separated.
    #[arg(long, value_name = "COLUMNS")]
    pub(crate) key: Option<String>,
    /// Create the table when it does not exist, with the PostgreSQL types the input's field
    /// metadata names (as pgarrow exports write them) where they exist here, else the types
    /// the Arrow types map to.
    #[arg(long)]
    pub(crate) create: bool,
    /// With --create, the column type of a nested field without pgarrow's metadata (a Struct,
    /// a Map, a list of them, as Spark or DuckDB write them): json (jsonb), or typed (a
    /// composite type made per Struct, named <table>_<column>; hstore for a Map of text to
    /// text, jsonb for other Maps).
    #[arg(long, default_value = "json", value_name = "KIND", requires = "create", value_parser = parse_with::<pgarrow::CreateNested>)]
    pub(crate) create_nested: pgarrow::CreateNested,
    /// Nanoseconds that are not whole microseconds (timestamps, times, durations, intervals;
    /// PostgreSQL keeps microseconds): error, or round (half to even, as PostgreSQL rounds
    /// its input; counted).
    #[arg(long, default_value = "error", value_name = "POLICY", value_parser = parse_with::<pgarrow::Nanoseconds>)]
    pub(crate) nanoseconds: pgarrow::Nanoseconds,
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
    /// Table to copy: name or schema.name (unquoted names fold to lower case, as in SQL).
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
    /// With --create, what a column whose type is a domain the target lacks gets: define (the
    /// domain as the source defines it, with the functions and sequences its DEFAULT and
    /// CHECKs name), or base (the domain's base type; its DEFAULT and CHECKs stay behind, as
    /// the output notes).
    #[arg(long, default_value = "define", value_name = "HOW", requires = "create", value_parser = parse_with::<pgarrow::Domains>)]
    pub(crate) domains: pgarrow::Domains,
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

/// `pgarrow lake`'s commands.
#[derive(Subcommand, Debug)]
pub(crate) enum LakeCommand {
    /// Rewrite the table's files with deleted rows, and its files under three quarters of the
    /// target size, into files of the target size, in one commit that ends the old files (and
    /// their delete files); the rows are read a file at a time as the new files are written.
    /// Readers see the same rows before and after; a mirror's position is carried on. When a mirror commits first, compaction reads
    /// the table again and tries anew (--retries), then steps aside.
    #[command(after_help = LAKE_EXAMPLES)]
    Compact(CompactArgs),
    /// Drop the table's snapshots older than --older-than (never the newest, nor the commit
    /// holding a mirror's position) and remove the files no snapshot left holds: Iceberg's
    /// snapshots and manifests, Delta's log versions before its newest checkpoint and the
    /// files its removes tombstoned (VACUUM), a DuckLake catalog's snapshots (the whole
    /// lake's).
    #[command(after_help = LAKE_EXAMPLES)]
    Expire(ExpireArgs),
}

/// The lake table `pgarrow lake` works on.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("lake_table_format").args(["ducklake", "delta", "iceberg"]).required(true)))]
#[command(group(clap::ArgGroup::new("lake_table_catalog").args(["ducklake", "iceberg"]).multiple(false)))]
pub(crate) struct LakeTableArgs {
    /// A DuckLake table (--lake-table SCHEMA.NAME) whose catalog is the PostgreSQL database at
    /// URL.
    #[arg(long, value_name = "URL", requires = "lake_table")]
    pub(crate) ducklake: Option<String>,
    /// The Delta Lake table at LOCATION (a directory or an object store URL).
    #[arg(long, value_name = "LOCATION", conflicts_with = "lake_table_catalog")]
    pub(crate) delta: Option<String>,
    /// An Apache Iceberg table (--lake-table NAMESPACE.NAME) of the catalog at URL (a REST
    /// catalog's http[s]:// address, or the PostgreSQL database of an SQL catalog).
    #[arg(long, value_name = "URL", requires = "lake_table")]
    pub(crate) iceberg: Option<String>,
    /// The table: SCHEMA.NAME of --ducklake (schema default: main), NAMESPACE.NAME of
    /// --iceberg (namespace default: default).
    #[arg(long, value_name = "NAME", requires = "lake_table_catalog")]
    pub(crate) lake_table: Option<String>,
    /// The Iceberg catalog's name: an SQL catalog's in its database; a REST catalog's entry in
    /// ~/.pyiceberg.yaml and PYICEBERG_CATALOG__NAME__*.
    #[arg(long, value_name = "NAME", default_value = pgarrow_lake::iceberg::DEFAULT_CATALOG_NAME, requires = "iceberg")]
    pub(crate) catalog_name: String,
    /// A property of the Iceberg REST catalog (--iceberg http[s]://...), as pyiceberg spells
    /// them: credential=ID:SECRET, token=..., scope=..., oauth2-server-uri=..., prefix=...,
    /// header.NAME=..., ssl.cabundle=FILE, s3.endpoint=..., s3.access-key-id=...,
    /// s3.path-style-access=true, ... (repeat for each; over ~/.pyiceberg.yaml and the
    /// PYICEBERG_CATALOG__NAME__KEY variables of --catalog-name's catalog).
    #[arg(
        long = "iceberg-property",
        value_name = "KEY=VALUE",
        requires = "iceberg"
    )]
    pub(crate) iceberg_property: Vec<String>,
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// Print what was done as one JSON object on standard output.
    #[arg(long)]
    pub(crate) json: bool,
    /// No summary line on standard error.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

#[derive(Args, Debug)]
pub(crate) struct CompactArgs {
    #[command(flatten)]
    pub(crate) table: LakeTableArgs,
    /// The files' size (128MiB, 1GiB, ...): files under three quarters of it are merged.
    #[arg(long, value_name = "SIZE", default_value = "128MiB", value_parser = parse_size)]
    pub(crate) target_file_size: usize,
    /// Times a commit that found the table changed (a mirror committed first) reads the table
    /// again and tries anew, before compaction steps aside.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub(crate) retries: usize,
}

#[derive(Args, Debug)]
pub(crate) struct ExpireArgs {
    #[command(flatten)]
    pub(crate) table: LakeTableArgs,
    /// Snapshots older than this go: 7d, 12h, 30m, 90s (0: all but the newest).
    #[arg(long, value_name = "AGE", default_value = "7d", value_parser = parse_age)]
    pub(crate) older_than: Duration,
    /// Report what would go, and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// An age: a number and a unit (d, h, m, s; seconds without one).
pub(crate) fn parse_age(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (number, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an age: a number and d, h, m or s (7d, 12h, 30m)"))?;
    let seconds = match unit.trim() {
        "d" => 86_400.0,
        "h" => 3_600.0,
        "m" => 60.0,
        "s" | "" => 1.0,
        other => return Err(format!("{other:?} is not a unit of an age: d, h, m or s")),
    };
    Duration::try_from_secs_f64(n * seconds)
        .map_err(|_| format!("{s:?} is not an age of 0 or more"))
}

pub(crate) fn at_least_one_u64(s: &str) -> Result<u64, String> {
    at_least_one(s).map(|n| n as u64)
}

const CHANGES_EXAMPLES: &str = "\
Examples:
  # Once: a publication, and the table as of the slot's start (the slot is made there)
  psql -c 'CREATE PUBLICATION orders_pub FOR TABLE orders'
  pgarrow export --table orders --replication-slot orders_slot --create-slot -o orders.parquet
  # Then the changes since, into one file set per table, until Ctrl-C (at a transaction end)
  pgarrow changes --slot orders_slot --publication orders_pub -o changes/
  # Or as a daily job: what was committed up to now, then exit
  pgarrow changes --slot orders_slot --publication orders_pub --catch-up -o s3://bucket/changes/";

const LAKE_EXAMPLES: &str = "\
Examples:
  # Beside a running mirror: merge its small files and fold its deletes, nightly
  pgarrow lake compact --ducklake postgresql:///lake --lake-table main.orders
  pgarrow lake compact --delta s3://bucket/delta/orders --target-file-size 256MiB
  # Drop what is older than a week, and the files only it held
  pgarrow lake expire --iceberg postgresql:///lake --lake-table shop.orders --older-than 7d
  pgarrow lake expire --delta s3://bucket/delta/orders --older-than 30d --dry-run";

const MIRROR_EXAMPLES: &str = "\
Examples:
  # The first run makes the slot (and a publication of the same name), exports the table in
  # its snapshot, then commits the changes every 10 s until Ctrl-C; later runs go on from the
  # position the lake table records
  pgarrow mirror -d shop -t orders --slot orders_mirror \\
      --ducklake postgresql://lakehost/lake --data-path s3://bucket/lake/
  # Every table of a schema, each into a lake table of its own; as a scheduled job
  pgarrow mirror -d shop --schema sales --slot sales_mirror --ducklake postgresql:///lake \\
      --data-path /data/lake/ --catch-up
  # Into a Delta table (deletes as deletion vectors)
  pgarrow mirror -d shop -t orders --slot orders_delta --delta s3://bucket/delta/orders
  # Into an Iceberg table of a SQL catalog (deletes as position delete files)
  pgarrow mirror -d shop -t orders --slot orders_iceberg --iceberg postgresql:///lake \\
      --warehouse s3://bucket/wh";

const APPLY_EXAMPLES: &str = "Examples:
  # The changes of the source, applied to the same tables of a replica (by primary key)
  pgarrow apply changes/ --url postgresql://replica/db
  # Into other tables, one keyed by given columns; statistics as JSON
  pgarrow apply s3://bucket/changes/ --url $REPLICA --table orders=archive.orders \\
      --key archive.orders=order_id,line --json
  # Into lake tables, each commit recording the checkpoint it reaches (the lake table
  # exported first in the slot's snapshot: pgarrow export --replication-slot ... --delta ...)
  pgarrow apply s3://bucket/changes/ --delta s3://bucket/delta/orders
  pgarrow apply changes/ --ducklake postgresql:///lake --lake-table main.orders";

#[derive(Args, Debug)]
pub(crate) struct ApplyArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// The changes directory (or object-store prefix) with its _changes.json.
    #[arg(value_name = "DIR")]
    pub(crate) dir: PathBuf,
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// SOURCE=TARGET: a source table's changes go into another table (repeatable; a table not
    /// named goes to the table of its own name).
    #[arg(long, value_name = "SOURCE=TARGET", help_heading = "Apply")]
    pub(crate) table: Vec<String>,
    /// TABLE=COLUMNS: a target's key, comma-separated (repeatable; default: its primary key,
    /// else its replica identity index).
    #[arg(long, value_name = "TABLE=COLUMNS", help_heading = "Apply")]
    pub(crate) key: Vec<String>,
    /// The table recording, per slot, the checkpoint the target has every change up to
    /// (created when missing).
    #[arg(long, default_value = pgarrow_changes::APPLIED_TABLE, value_name = "TABLE", help_heading = "Apply")]
    pub(crate) state_table: String,
    /// Apply to DuckLake tables of the catalog in the PostgreSQL database at URL instead
    /// (--lake-table SCHEMA.NAME for one table; several: each its schema and name). Each
    /// commit records the slot and checkpoint it reaches: the lake table's own state.
    #[arg(long, value_name = "URL", help_heading = "Apply to lake tables", conflicts_with_all = ["delta", "iceberg", "table"])]
    pub(crate) ducklake: Option<String>,
    /// Apply to the Delta Lake table at LOCATION (several tables: LOCATION/SCHEMA.NAME each).
    #[arg(long, value_name = "LOCATION", help_heading = "Apply to lake tables", conflicts_with_all = ["iceberg", "table", "lake_table"])]
    pub(crate) delta: Option<String>,
    /// Apply to Apache Iceberg tables of the catalog at URL (a REST catalog's http[s]://
    /// address, or the PostgreSQL database of an SQL catalog).
    #[arg(
        long,
        value_name = "URL",
        help_heading = "Apply to lake tables",
        conflicts_with = "table"
    )]
    pub(crate) iceberg: Option<String>,
    /// One table's lake table: SCHEMA.NAME (DuckLake; schema main by default) or
    /// NAMESPACE.NAME (Iceberg; namespace default).
    #[arg(long, value_name = "NAME", help_heading = "Apply to lake tables")]
    pub(crate) lake_table: Option<String>,
    /// The Iceberg catalog's name: an SQL catalog's in its database; a REST catalog's entry in
    /// ~/.pyiceberg.yaml and PYICEBERG_CATALOG__NAME__*.
    #[arg(long, value_name = "NAME", default_value = pgarrow_lake::iceberg::DEFAULT_CATALOG_NAME, requires = "iceberg", help_heading = "Apply to lake tables")]
    pub(crate) catalog_name: String,
    /// A property of the Iceberg REST catalog (--iceberg http[s]://...), as pyiceberg spells
    /// them: credential=ID:SECRET, token=..., scope=..., oauth2-server-uri=..., prefix=...,
    /// header.NAME=..., ssl.cabundle=FILE, s3.endpoint=..., s3.access-key-id=...,
    /// s3.path-style-access=true, ... (repeat for each; over ~/.pyiceberg.yaml and the
    /// PYICEBERG_CATALOG__NAME__KEY variables of --catalog-name's catalog).
    #[arg(
        long = "iceberg-property",
        value_name = "KEY=VALUE",
        requires = "iceberg",
        help_heading = "Apply to lake tables"
    )]
    pub(crate) iceberg_property: Vec<String>,
    /// How commits take rows out of a lake table's files: merge-on-read (deletion vectors,
    /// delete files) or copy-on-write (each file that loses rows written again without them).
    #[arg(long, value_name = "MODE", default_value = "merge-on-read", value_parser = parse_with::<pgarrow_lake::mirror::DeleteMode>, help_heading = "Apply to lake tables")]
    pub(crate) deletes: pgarrow_lake::mirror::DeleteMode,
    /// The memory a lake table's key index holds (a quarter of it; past that, written out
    /// with the table): 256MiB, 1GiB, ... [default: 512MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "Apply to lake tables")]
    pub(crate) memory_limit: Option<usize>,
    /// Where a lake table's changes past a quarter of --memory-limit are set aside until their
    /// commit [default: the system's temporary directory].
    #[arg(long, value_name = "DIR", help_heading = "Apply to lake tables")]
    pub(crate) spill_dir: Option<PathBuf>,
    /// Nanoseconds that are not whole microseconds: error, or round (as `import`).
    #[arg(long, default_value = "error", value_name = "POLICY", value_parser = parse_with::<pgarrow::Nanoseconds>, help_heading = "Apply")]
    pub(crate) nanoseconds: pgarrow::Nanoseconds,
    /// Print the statistics as one JSON object on standard output.
    #[arg(long, help_heading = "Apply")]
    pub(crate) json: bool,
    /// No progress lines and no summary.
    #[arg(long, help_heading = "Apply")]
    pub(crate) quiet: bool,
}

#[derive(Args, Debug)]
pub(crate) struct ChangesArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// The logical replication slot (plugin pgoutput), as `pgarrow export --replication-slot
    /// NAME --create-slot` makes it.
    #[arg(long, value_name = "NAME", help_heading = "Changes")]
    pub(crate) slot: String,
    /// A publication whose tables' changes are read (repeatable).
    #[arg(long, required = true, value_name = "NAME", help_heading = "Changes")]
    pub(crate) publication: Vec<String>,
    /// Create the slot if it does not exist (changes then start now; `pgarrow export
    /// --replication-slot` also exports the table as of the slot's start).
    #[arg(long, help_heading = "Changes")]
    pub(crate) create_slot: bool,
    /// Skip the transactions committed before this WAL position (X/X, as
    /// pg_current_wal_lsn() writes it), when it is past the slot's and the manifest's.
    #[arg(long, value_name = "LSN", help_heading = "Changes")]
    pub(crate) start: Option<String>,
    /// A directory or object-store prefix for the file sets and `_changes.json`; - writes one
    /// Arrow IPC stream per run of a table's batches to standard output.
    #[arg(long, short = 'o', value_name = "DIR", help_heading = "Changes")]
    pub(crate) output: String,
    /// The files' format: parquet or arrow (IPC file).
    #[arg(long = "to", default_value = "parquet", value_name = "FORMAT", value_parser = parse_with::<Format>, help_heading = "Changes")]
    pub(crate) format: Format,
    /// End once every change committed before the start is written (a batch job), instead of
    /// streaming until Ctrl-C or SIGTERM.
    #[arg(long, help_heading = "Changes")]
    pub(crate) catch_up: bool,
    /// How values are asked of the server: auto (binary on PostgreSQL 14+, unless a published
    /// column has no binary decoder), binary, or text (every column text).
    #[arg(long, default_value = "auto", value_name = "FORMAT", value_parser = parse_with::<pgarrow_changes::ValueFormat>, help_heading = "Changes")]
    pub(crate) values: pgarrow_changes::ValueFormat,
    /// Roll the files (write them, then confirm to the slot) at the first transaction end
    /// after this many rows.
    #[arg(
        long,
        default_value_t = 1_000_000,
        value_name = "N",
        help_heading = "Changes"
    )]
    pub(crate) roll_rows: u64,
    /// ... or once this many bytes are buffered (inside a large transaction too).
    #[arg(long, default_value_t = 128 << 20, value_name = "BYTES", value_parser = at_least_one, help_heading = "Changes")]
    pub(crate) roll_bytes: usize,
    /// ... or at the first transaction end this many seconds after the last roll.
    #[arg(
        long,
        default_value_t = 60.0,
        value_name = "SECONDS",
        help_heading = "Changes"
    )]
    pub(crate) roll_seconds: f64,
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// Where large transactions the server streams before their commit (PostgreSQL 14+) are
    /// set aside until it [default: the system's temporary directory].
    #[arg(long, value_name = "DIR", help_heading = "Changes")]
    pub(crate) spill_dir: Option<PathBuf>,
    /// No progress lines and no summary.
    #[arg(long, help_heading = "Changes")]
    pub(crate) quiet: bool,
}
