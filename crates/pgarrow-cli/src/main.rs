//! `pgarrow`: export PostgreSQL queries and tables to Parquet and Arrow.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pgarrow::policy::{
    ArrayShape, EnumLayout, Infinity, InvalidUtf8, NumericTarget, Overflow, SpecialValues,
    TextLayout, WideNumeric,
};
use pgarrow::sink::{Compression, Format, IntervalEncoding, Output, SinkOptions};
use pgarrow::{
    Client, Config, DecodeOptions, ExportOptions, ExportPlan, ExportStats, FileTarget, Hooks,
    Policies, Source,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status after Ctrl-C, as shells report SIGINT.
const EXIT_INTERRUPTED: i32 = 130;

#[derive(Parser, Debug)]
#[command(
    name = "pgarrow",
    version,
    about = "Export PostgreSQL queries and tables to Parquet and Arrow, exactly and fast",
    long_about = "Export PostgreSQL queries and tables to Parquet and Arrow, exactly and fast.\n\n\
                  Connection: --url, else DATABASE_URL, else the PG* environment variables \
                  (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE) as libpq reads them."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Export a query or table to a file (or stdout).
    Export(ExportArgs),
    /// Print the Arrow schema an export would produce, with each column's PostgreSQL type
    /// and the policies that could apply (the query is described, not run).
    Schema(SchemaArgs),
    /// Start a scratch PostgreSQL, load a 1M-row lineitem table and export it to Parquet.
    Demo(DemoArgs),
}

#[derive(Args, Debug)]
struct SourceArgs {
    /// Connection URL (postgresql://user:pass@host:port/db) or libpq key=value string.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// SQL query to export (SELECT, TABLE, VALUES, WITH ...).
    #[arg(
        long,
        short = 'q',
        value_name = "SQL",
        conflicts_with = "table",
        required_unless_present = "table"
    )]
    query: Option<String>,
    /// Table to export: name or schema.name (exact, case-sensitive; quote parts with dots).
    #[arg(long, short = 't', value_name = "NAME")]
    table: Option<String>,
    /// Server-side statement_timeout for the session: 30s, 5min, 1500ms (a bare number is
    /// milliseconds). A longer query fails with SQLSTATE 57014.
    #[arg(long, value_name = "DURATION", value_parser = statement_timeout)]
    statement_timeout: Option<Duration>,
}

fn statement_timeout(s: &str) -> Result<Duration, String> {
    pgarrow::protocol::parse_duration(s, Duration::from_millis(1))
}

/// Conversion policies: what to do where a value has no exact Arrow form. Every default
/// refuses to lose information; every other choice is counted and reported.
#[derive(Args, Debug, Clone)]
struct PolicyArgs {
    /// Unconstrained numeric columns: string (exact text), float64 (rounded),
    /// decimal128:P:S or decimal256:P:S.
    #[arg(long, default_value = "string", value_name = "TARGET", value_parser = parse_policy::<NumericTarget>)]
    numeric: NumericTarget,
    /// numeric(p, s) columns wider than 38 digits: decimal256 (exact; DuckDB reads it from
    /// Parquet as DOUBLE, polars not at all) or string (the exact text, for any reader).
    #[arg(long, default_value = "decimal256", value_name = "TARGET", value_parser = parse_policy::<WideNumeric>)]
    wide_numeric: WideNumeric,
    /// Numeric values too large or too precise for their decimal: error or null.
    #[arg(long, default_value = "error", value_name = "POLICY", value_parser = parse_policy::<Overflow>)]
    numeric_overflow: Overflow,
    /// Date and timestamp +-infinity: extreme (the Arrow type's largest/smallest value, as
    /// PostgreSQL stores them; declared in field metadata), null or error.
    #[arg(long, default_value = "extreme", value_name = "POLICY", value_parser = parse_policy::<Infinity>)]
    infinity: Infinity,
    /// Values Arrow cannot hold: numeric NaN and Infinity in decimals, time 24:00:00,
    /// timestamps after 294247 AD, intervals beyond +-2562047 hours or infinite: error, null
    /// or clamp.
    #[arg(long, visible_alias = "special-values", default_value = "error", value_name = "POLICY", value_parser = parse_policy::<SpecialValues>)]
    out_of_range: SpecialValues,
    /// Text columns as utf8, large (64-bit offsets) or view.
    #[arg(long, default_value = "utf8", value_name = "LAYOUT", value_parser = parse_policy::<TextLayout>)]
    text: TextLayout,
    /// Text that is not valid UTF-8 (SQL_ASCII databases): error, replace (U+FFFD) or binary
    /// (every text column as Binary).
    #[arg(long, default_value = "error", value_name = "POLICY", value_parser = parse_policy::<InvalidUtf8>)]
    invalid_utf8: InvalidUtf8,
    /// Array columns: data (as many nested Lists as the values have dimensions: declared, or
    /// else those of the column's first non-empty value) or flatten (a 1-D List of each
    /// array's elements in row-major order; multi-dimensional values are counted).
    #[arg(long, default_value = "data", value_name = "SHAPE", value_parser = parse_policy::<ArrayShape>)]
    array_shape: ArrayShape,
    /// Enum columns as dictionary (Dictionary(Int16, Utf8) in pg_enum order) or utf8.
    #[arg(long = "enum", default_value = "dictionary", value_name = "LAYOUT", value_parser = parse_policy::<EnumLayout>)]
    enums: EnumLayout,
}

impl PolicyArgs {
    fn policies(&self) -> Policies {
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

fn parse_policy<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, String> {
    s.parse()
}

#[derive(Args, Debug)]
struct SchemaArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    policies: PolicyArgs,
}

#[derive(Args, Debug, Clone)]
struct OutputArgs {
    /// Output format: parquet, arrow (IPC file), arrow-stream (IPC stream) or null (decode
    /// and discard). Default: from the output file's extension.
    #[arg(long, value_name = "FORMAT")]
    to: Option<String>,
    /// Output file, or - for standard output.
    #[arg(long, short = 'o', value_name = "PATH")]
    output: Option<String>,
    /// Parquet compression: zstd[:LEVEL], snappy, lz4, gzip, none.
    #[arg(long, default_value = "zstd", value_name = "CODEC")]
    compression: String,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = 1 << 20, value_name = "N", value_parser = at_least_one)]
    row_group_rows: usize,
    /// A Parquet row group also ends once its encoded data held in memory reaches this many
    /// bytes: the bound on the writer's memory for wide rows.
    #[arg(long, default_value_t = pgarrow::sink::DEFAULT_ROW_GROUP_BYTES, value_name = "BYTES", value_parser = at_least_one)]
    row_group_bytes: usize,
    /// Intervals in Arrow IPC files: native (Arrow's MonthDayNano interval) or struct
    /// (months, days, microseconds: as Parquet files hold them, for readers without
    /// MonthDayNano such as polars).
    #[arg(long, default_value = "native", value_name = "ENCODING", value_parser = parse_policy::<IntervalEncoding>)]
    intervals: IntervalEncoding,
    /// Rows per Arrow batch.
    #[arg(long, default_value_t = pgarrow::DEFAULT_BATCH_ROWS, value_name = "N", value_parser = at_least_one)]
    batch_rows: usize,
    /// Bytes of field data per Arrow batch, at most (a batch is cut at whichever limit comes
    /// first).
    #[arg(long, default_value_t = pgarrow::DEFAULT_BATCH_BYTES, value_name = "BYTES", value_parser = at_least_one)]
    batch_bytes: usize,
    /// No progress bar and no summary.
    #[arg(long)]
    quiet: bool,
    /// After the export, print where the time went (connect, describe, first byte, read,
    /// decode, write, finish) and the counts, as a table on stderr.
    #[arg(long)]
    stats: bool,
    /// Write the same statistics as one JSON object to FILE.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ExportArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    policies: PolicyArgs,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Rows in the sample lineitem table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    policies: PolicyArgs,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `mi_option_purge_delay` in mimalloc.h (the Rust bindings have no name for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc hand freed memory back to the OS after 100 ms instead of its current 1 s.
/// The decoder's column buffers come back to it for reuse (`pgarrow-decode`'s recycler), but
/// the Parquet writer's own buffers are freed and allocated again all the time; for a second
/// of exporting the freed ones pile up. Measured to Parquet, 2M lineitem rows and 500k `wide`
/// rows (peak RSS, minor page faults): at 1 s 149-158 MiB and 16k faults, 210-236 MiB and 10k;
/// at 100 ms 128-141 MiB and 42k, 194-207 MiB and 21k; at 10 ms 123-147 MiB and 80k,
/// 179-191 MiB and 39k, the faults costing a tenth of the client's CPU.
#[allow(unsafe_code)]
fn tune_allocator() {
    // SAFETY: mi_option_set only stores an integer in mimalloc's option table (an atomic
    // store, any thread, any time) and 15 is the purge delay's index in every mimalloc 2 and
    // 3 release; the value is in milliseconds. The CLI tests run every command through it.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 100) }
}

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) if e.is::<Interrupted>() => {
            eprintln!("pgarrow: interrupted; no output was written");
            EXIT_INTERRUPTED
        }
        Err(e) => {
            eprintln!("pgarrow: error: {}", error_line(&e));
            1
        }
    };
    std::process::exit(code);
}

/// An error and its causes on one line (a server message or DETAIL may hold line breaks):
/// each cause follows after ": " unless the text so far already says it (errors that wrap
/// another often print it too).
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text: Vec<&str> = text.split(['\n', '\r']).map(str::trim).collect();
        let text = text.join(" ");
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line
}

/// Ctrl-C was pressed.
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

fn run(cli: Cli) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Export(args) => {
            let config = connection_config(&args.source)?;
            let source = source(&args.source)?;
            export(
                &rt,
                &config,
                &source,
                &args.output,
                &args.policies.policies(),
            )
        }
        Command::Schema(args) => {
            let config = connection_config(&args.source)?;
            let source = source(&args.source)?;
            schema(&rt, &config, &source, &args.policies.policies())
        }
        Command::Demo(args) => demo(&rt, args),
    }
}

/// Runs `fut`, or fails with [`Interrupted`] on Ctrl-C or SIGTERM (dropping `fut`, which
/// closes the connection).
fn block_on_interruptible<T>(
    rt: &tokio::runtime::Runtime,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    rt.block_on(async {
        tokio::select! {
            r = fut => r,
            _ = interrupt_signal() => Err(Interrupted.into()),
        }
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn interrupt_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let terminate = async {
        match term.as_mut() {
            Some(t) => drop(t.recv().await),
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

fn connection_config(args: &SourceArgs) -> Result<Config> {
    let url = args
        .url
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()));
    let mut config = match url {
        Some(u) => Config::parse(&u)?,
        None => Config::from_env()?,
    };
    if args.statement_timeout.is_some() {
        config.statement_timeout = args.statement_timeout;
    }
    Ok(config)
}

fn source(args: &SourceArgs) -> Result<Source> {
    match (&args.query, &args.table) {
        (Some(q), None) => Ok(Source::query(q.clone())),
        (None, Some(t)) => Ok(Source::table(t)?),
        _ => bail!("give either --query or --table"),
    }
}

async fn connect(config: &Config) -> Result<Client> {
    Ok(Client::connect(config).await?)
}

fn schema(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    source: &Source,
    policies: &Policies,
) -> Result<()> {
    let plan = block_on_interruptible(rt, async {
        let mut client = connect(config).await?;
        let plan = client.plan_with(source, policies).await?;
        let _ = client.close().await;
        Ok(plan)
    })?;
    print!("{}", render_schema(&plan));
    Ok(())
}

fn render_schema(plan: &ExportPlan) -> String {
    let rows: Vec<[String; 4]> = plan
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let arrow = short_type(plan.schema.field(i).data_type());
            let mut notes = Vec::new();
            match (c.cast, c.kind.extension_name()) {
                (Some(cast), _) => notes.push(format!("no binary decoder: sent as {cast}")),
                (None, Some(ext)) => notes.push(format!("extension {ext}")),
                (None, None) => {}
            }
            if c.kind.list_depth_from_data() {
                notes.push("array depth from the data".to_owned());
            }
            let flags: Vec<String> = c
                .applicable_policies()
                .iter()
                .map(|p| format!("--{}", p.replace('_', "-")))
                .collect();
            if !flags.is_empty() {
                notes.push(format!("policies: {}", flags.join(" ")));
            }
            let note = notes.join("; ");
            [
                c.column.name.clone(),
                c.column.type_name.clone(),
                arrow,
                note,
            ]
        })
        .collect();
    let headers = ["column", "postgres type", "arrow type", "note"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([headers[i].len()])
            .max()
            .unwrap_or(0)
    };
    let w = [width(0), width(1), width(2)];
    let mut out = String::new();
    let line = |out: &mut String, r: [&str; 4]| {
        let s = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2]
        );
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut out, headers);
    for r in &rows {
        line(&mut out, [&r[0], &r[1], &r[2], &r[3]]);
    }
    out
}

/// An Arrow type without field metadata: `List<Struct<x: Int32, m: Dictionary<Int16, Utf8>>>`.
fn short_type(t: &arrow_schema::DataType) -> String {
    use arrow_schema::DataType as T;
    let fields = |fs: &arrow_schema::Fields| {
        fs.iter()
            .map(|f| format!("{}: {}", f.name(), short_type(f.data_type())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match t {
        T::List(f) | T::LargeList(f) => format!("List<{}>", short_type(f.data_type())),
        T::FixedSizeList(f, n) => format!("FixedSizeList<{}; {n}>", short_type(f.data_type())),
        T::Struct(fs) => format!("Struct<{}>", fields(fs)),
        T::Map(f, _) => match f.data_type() {
            T::Struct(kv) if kv.len() == 2 => format!(
                "Map<{}, {}>",
                short_type(kv[0].data_type()),
                short_type(kv[1].data_type())
            ),
            other => format!("Map<{}>", short_type(other)),
        },
        T::Dictionary(k, v) => format!("Dictionary<{}, {}>", short_type(k), short_type(v)),
        other => other.to_string(),
    }
}

/// Where an export writes, resolved from `--to` and `-o`.
fn resolve_output(args: &OutputArgs) -> Result<(Format, Output)> {
    let format = match &args.to {
        Some(f) => Some(f.parse::<Format>()?),
        None => None,
    };
    match (format, args.output.as_deref()) {
        (Some(Format::Null), None) => Ok((Format::Null, Output::Discard)),
        (Some(Format::Null), Some(_)) => bail!("--to null writes nothing: drop -o"),
        (Some(f), Some("-")) => Ok((f, Output::Stdout)),
        (None, Some("-")) => bail!("writing to stdout (-o -) needs --to FORMAT"),
        (_, Some(p)) if Path::new(p).is_dir() => {
            bail!("-o {p} is a directory: give a file name")
        }
        (Some(f), Some(p)) => Ok((f, Output::File(PathBuf::from(p)))),
        (None, Some(p)) => {
            let path = PathBuf::from(p);
            let f = Format::from_path(&path).ok_or_else(|| {
                anyhow!(
                    "cannot tell the format from \"{p}\": use a .parquet, .arrow or .arrows \
                     extension, or --to"
                )
            })?;
            Ok((f, Output::File(path)))
        }
        (_, None) => bail!("give an output file with -o PATH (or --to null)"),
    }
}

/// What an export did, for the summary line.
struct Summary {
    rows: u64,
    copy_bytes: u64,
    written: u64,
    elapsed: Duration,
}

fn export(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    source: &Source,
    args: &OutputArgs,
    policies: &Policies,
) -> Result<()> {
    let (format, output) = resolve_output(args)?;
    let target = FileTarget {
        format,
        output: output.clone(),
        options: SinkOptions {
            compression: args.compression.parse::<Compression>()?,
            row_group_rows: args.row_group_rows,
            row_group_bytes: args.row_group_bytes,
            metadata: Vec::new(),
            intervals: args.intervals,
        },
    };
    // Every option is checked before connecting.
    if format != Format::Null {
        target.options.validate()?;
    }
    let options = ExportOptions {
        decode: DecodeOptions {
            batch_rows: args.batch_rows,
            batch_bytes: args.batch_bytes,
        },
        policies: *policies,
    };
    let mut client = block_on_interruptible(rt, connect(config))?;
    let progress = progress_bar(args.quiet);
    let bar = progress.clone();
    let hooks = Hooks::new()
        .on_progress(move |s| bar.set_message(progress_message(s.rows, s.bytes, s.total)))
        .cancel_on(interrupt_signal());
    let result = rt.block_on(client.export_to_file(source.clone(), &options, &target, hooks));
    progress.finish_and_clear();
    drop(client);
    let stats = match result {
        Err(e) if e.is_cancelled() => return Err(Interrupted.into()),
        other => other?,
    };
    if let Some(path) = &args.stats_json {
        std::fs::write(path, stats.to_json() + "\n")
            .with_context(|| format!("cannot write the statistics to {}", path.display()))?;
    }
    if !args.quiet {
        let summary = Summary {
            rows: stats.rows,
            copy_bytes: stats.bytes,
            written: stats.written.unwrap_or(0),
            elapsed: stats.total,
        };
        eprintln!("{}", summary_line(&summary, format, &output));
        if !stats.losses.is_empty() {
            eprintln!(
                "lossy conversions (counted; see the policy flags): {} values: {}",
                group(stats.losses.total()),
                stats.losses
            );
        }
    }
    if args.stats {
        eprint!("{}", stats_table(&stats));
    }
    Ok(())
}

/// `--stats`: where the time went, phase by phase, and the counts.
fn stats_table(s: &ExportStats) -> String {
    let notes = |phase: &str| match phase {
        "connect" => "connecting and authenticating",
        "describe" => "Parse/Describe of the query, catalog query included",
        "catalog" => "the catalog query (part of describe)",
        "first_byte" => "from sending the COPY to its first data: the server starting the query",
        "read" => "waiting for the socket after that",
        "decode" => "COPY data into Arrow batches",
        "write" => "encoding and writing, on the writer thread (overlaps read and decode)",
        "finish" => "footer, flush, sync and rename",
        _ => "",
    };
    let mut out = String::from("phase        seconds  what\n");
    for (name, d) in s.phases() {
        out.push_str(&format!(
            "{:<11} {:>8.3}  {}\n",
            name.replace('_', " "),
            d.as_secs_f64(),
            notes(name)
        ));
    }
    out.push_str(&format!(
        "{:<11} {:>8.3}  wall time\n",
        "total",
        s.total.as_secs_f64()
    ));
    let mut counts = vec![
        format!("{} rows", group(s.rows)),
        format!("{} batches", group(s.batches)),
        format!("{} of COPY data", human_bytes(s.bytes)),
    ];
    if let Some(w) = s.written {
        counts.push(format!("{} written", human_bytes(w)));
    }
    if let Some(rss) = s.peak_rss {
        counts.push(format!("peak memory {}", human_bytes(rss)));
    }
    if !s.losses.is_empty() {
        counts.push(format!("{} lossy conversions", group(s.losses.total())));
    }
    out.push_str(&counts.join(", "));
    out.push('\n');
    out
}

fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message("running the query...");
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

fn progress_message(rows: u64, bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!(
        "{} rows, {} read, {} rows/s, {:.1} s",
        group(rows),
        human_bytes(bytes),
        group((rows as f64 / secs) as u64),
        secs
    )
}

fn summary_line(s: &Summary, format: Format, output: &Output) -> String {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let target = match output {
        Output::File(p) => format!("{} ({format}, {})", p.display(), human_bytes(s.written)),
        Output::Stdout => format!("stdout ({format}, {})", human_bytes(s.written)),
        Output::Discard => "nowhere (--to null)".to_owned(),
    };
    format!(
        "exported {} rows ({} of COPY data) to {target} in {secs:.2} s: {} rows/s, {}/s",
        group(s.rows),
        human_bytes(s.copy_bytes),
        group((s.rows as f64 / secs) as u64),
        human_bytes((s.copy_bytes as f64 / secs) as u64),
    )
}

/// 1234567 -> "1,234,567".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn demo(rt: &tokio::runtime::Runtime, mut args: DemoArgs) -> Result<()> {
    if args.output.output.is_none() && args.output.to.as_deref() != Some("null") {
        args.output.output = Some("demo.parquet".to_owned());
    }
    let bin = pgarrow_scratch::find_bin_dir().ok_or_else(|| {
        anyhow!(
            "no PostgreSQL server binaries found (initdb, pg_ctl): install them \
             (apt-get install postgresql) or point PG_BIN at their directory"
        )
    })?;
    eprintln!(
        "starting a scratch PostgreSQL cluster from {} ...",
        bin.display()
    );
    let cluster = pgarrow_scratch::Cluster::start_in(&bin)?;
    eprintln!(
        "loading {} rows into table lineitem (generate_series) ...",
        group(args.rows)
    );
    let config = Config::parse(&cluster.socket_url("postgres"))?;
    let load_started = Instant::now();
    block_on_interruptible(rt, async {
        let mut client = connect(&config).await?;
        client
            .connection()
            .simple_query(&pgarrow_scratch::sample::lineitem_sql(
                "lineitem", args.rows,
            ))
            .await?;
        Ok(())
    })?;
    eprintln!(
        "loaded in {:.1} s; exporting with `pgarrow export --table lineitem -o {}`",
        load_started.elapsed().as_secs_f64(),
        args.output.output.as_deref().unwrap_or("-")
    );
    let source = Source::table("lineitem")?;
    export(
        rt,
        &config,
        &source,
        &args.output,
        &args.policies.policies(),
    )?;
    if let Some(path) = args.output.output.as_deref().filter(|p| *p != "-") {
        let abs = std::fs::canonicalize(Path::new(path)).unwrap_or_else(|_| PathBuf::from(path));
        eprintln!("wrote {}", abs.display());
    }
    drop(cluster);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_holds_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied");
        let e = anyhow::Error::new(io).context("cannot write the statistics to /x.json");
        assert_eq!(
            error_line(&e),
            "cannot write the statistics to /x.json: Permission denied"
        );
        // A wrapper that prints its cause itself: the cause is not repeated.
        let inner = anyhow!("server said\nDETAIL: no");
        let e = inner.context("export failed: server said DETAIL: no");
        assert_eq!(error_line(&e), "export failed: server said DETAIL: no");
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(group(0), "0");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group(100), "100");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }

    fn out(to: Option<&str>, o: Option<&str>) -> OutputArgs {
        OutputArgs {
            to: to.map(str::to_owned),
            output: o.map(str::to_owned),
            compression: "zstd".into(),
            row_group_rows: 1,
            row_group_bytes: 1,
            intervals: IntervalEncoding::Native,
            batch_rows: 1,
            batch_bytes: 1,
            quiet: true,
            stats: false,
            stats_json: None,
        }
    }

    #[test]
    fn output_resolution() {
        assert_eq!(
            resolve_output(&out(None, Some("a.parquet"))).unwrap(),
            (Format::Parquet, Output::File("a.parquet".into()))
        );
        assert_eq!(
            resolve_output(&out(Some("arrow-stream"), Some("-"))).unwrap(),
            (Format::ArrowStream, Output::Stdout)
        );
        assert_eq!(
            resolve_output(&out(Some("null"), None)).unwrap(),
            (Format::Null, Output::Discard)
        );
        assert!(resolve_output(&out(None, Some("a.csv"))).is_err());
        assert!(resolve_output(&out(None, Some("-"))).is_err());
        assert!(resolve_output(&out(Some("parquet"), None)).is_err());
    }
}
