//! `pgarrow`: export PostgreSQL queries and tables to Parquet and Arrow.

mod args;
mod copy;
mod import;
mod partition;
mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use pgarrow::policy::Policies;
use pgarrow::protocol::Config;
use pgarrow::sink::{Compression, Format, Output, SinkOptions};
use pgarrow::{Client, DecodeOptions, ExportOptions, FileTarget, Hooks, Source};

use args::{Cli, Command, DemoArgs, OutputArgs, PartitionArgs, SourceArgs};
use report::{
    Summary, group, progress_bar, progress_message, render_schema, stats_table, summary_line,
};

// The system allocator (glibc's malloc), not mimalloc: measured in one run, five interleaved
// rounds each (2M lineitem rows, 500k `wide` rows), it was as fast or faster and used 30-65%
// less memory: to null 32 vs 65 MiB, to Parquet 100 vs 159 MiB, with two connections to
// Parquet 159 vs 232 MiB (1.68 vs 1.95 s, 1.42 vs 1.94 s of CPU); mimalloc's per-thread pages
// and purges cost system time and memory once several threads allocate.

/// Exit status after Ctrl-C, as shells report SIGINT.
const EXIT_INTERRUPTED: i32 = 130;

fn main() {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) if e.is::<Interrupted>() => {
            let what = e.downcast_ref::<Interrupted>().map_or("", |i| i.0);
            eprintln!("pgarrow: interrupted; {what}");
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

/// Exits as clap does for a usage error (status 2, with the subcommand's usage): for rules the
/// parser cannot say, such as a source that may also come from `--plan`.
fn usage_error(command: &str, message: &str) -> ! {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    cli.build();
    let sub = cli
        .find_subcommand_mut(command)
        .expect("a subcommand of Cli");
    sub.error(clap::error::ErrorKind::MissingRequiredArgument, message)
        .exit()
}

/// Ctrl-C was pressed; what that left.
#[derive(Debug)]
pub(crate) struct Interrupted(&'static str);

impl Interrupted {
    /// An export stopped by Ctrl-C.
    fn nothing_written() -> Interrupted {
        Interrupted("no output was written")
    }

    /// A load stopped by Ctrl-C.
    pub(crate) fn nothing_loaded() -> Interrupted {
        Interrupted("nothing was loaded (the transaction was rolled back)")
    }
}

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
            let policies = args.policies.policies();
            if let (Some(plan), Some(part)) = (&args.plan, args.part) {
                let config = connection_config(&args.source)?;
                return partition::export_part(&rt, &config, plan, part, &args.output, &policies);
            }
            let source = source("export", &args.source)?;
            let config = connection_config(&args.source)?;
            export(
                &rt,
                &config,
                &source,
                &args.output,
                &args.partition,
                &policies,
            )
        }
        Command::Plan(args) => {
            let source = source("plan", &args.source)?;
            let config = connection_config(&args.source)?;
            partition::plan(&rt, &config, &source, &args)
        }
        Command::Schema(args) => {
            let source = source("schema", &args.source)?;
            let config = connection_config(&args.source)?;
            schema(&rt, &config, &source, &args.policies.policies())
        }
        Command::Import(args) => {
            let config = config_from(args.url.as_deref(), None)?;
            import::import(&rt, &config, &args)
        }
        Command::Copy(args) => copy::copy(&rt, &args),
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
            _ = interrupt_signal() => Err(Interrupted::nothing_written().into()),
        }
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn interrupt_signal() {
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
    config_from(args.url.as_deref(), args.statement_timeout)
}

/// `--url`, else `DATABASE_URL`, else the `PG*` environment.
pub(crate) fn config_from(
    url: Option<&str>,
    statement_timeout: Option<std::time::Duration>,
) -> Result<Config> {
    let url = url
        .map(str::to_owned)
        .or_else(|| std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()));
    let mut config = match url {
        Some(u) => Config::parse(&u)?,
        None => Config::from_env()?,
    };
    if statement_timeout.is_some() {
        config.statement_timeout = statement_timeout;
    }
    Ok(config)
}

fn source(command: &str, args: &SourceArgs) -> Result<Source> {
    match (&args.query, &args.table) {
        (Some(q), None) => Ok(Source::query(q.clone())),
        (None, Some(t)) => Ok(Source::table(t)?),
        (None, None) => usage_error(
            command,
            "the following required arguments were not provided:\n  --query <SQL> or --table <NAME>",
        ),
        _ => bail!("give either --query or --table, not both"),
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

/// The output of an export, from `--to`, `-o` and the Parquet options.
fn file_target(args: &OutputArgs) -> Result<FileTarget> {
    let (format, output) = resolve_output(args)?;
    let target = FileTarget {
        format,
        output,
        options: sink_options(args)?,
    };
    // Every option is checked before connecting.
    if format != Format::Null {
        target.options.validate()?;
    }
    Ok(target)
}

fn sink_options(args: &OutputArgs) -> Result<SinkOptions> {
    Ok(SinkOptions {
        compression: args.compression.parse::<Compression>()?,
        row_group_rows: args.row_group_rows,
        row_group_bytes: args.row_group_bytes,
        metadata: Vec::new(),
        intervals: args.intervals,
    })
}

fn export_options(args: &OutputArgs, policies: &Policies) -> ExportOptions {
    ExportOptions {
        decode: DecodeOptions {
            batch_rows: args.batch_rows,
            batch_bytes: args.batch_bytes,
        },
        policies: *policies,
    }
}

fn export(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    source: &Source,
    args: &OutputArgs,
    partition: &PartitionArgs,
    policies: &Policies,
) -> Result<()> {
    if partition.partitioned() {
        return partition::export(rt, config, source, args, partition, policies);
    }
    let target = file_target(args)?;
    let options = export_options(args, policies);
    let mut client = block_on_interruptible(rt, connect(config))?;
    let (progress, hooks) = progress_hooks(args.quiet);
    let result = rt.block_on(client.export_to_file(source.clone(), &options, &target, hooks));
    progress.finish_and_clear();
    drop(client);
    let stats = match result {
        Err(e) if e.is_cancelled() => return Err(Interrupted::nothing_written().into()),
        other => other?,
    };
    report(args, &stats, &target, None)
}

/// The progress bar (hidden when quiet or not on a terminal), and hooks that update it after
/// each batch and cancel the export on Ctrl-C or SIGTERM.
fn progress_hooks(quiet: bool) -> (indicatif::ProgressBar, Hooks<'static>) {
    let progress = progress_bar(quiet);
    let bar = progress.clone();
    let hooks = Hooks::new()
        .on_progress(move |s| bar.set_message(progress_message(s.rows, s.bytes, s.total)))
        .cancel_on(interrupt_signal());
    (progress, hooks)
}

/// The summary line, the lossy conversions, `--stats` and `--stats-json`; `extra` adds fields
/// to the JSON object and a line to the table (partitioned exports).
fn report(
    args: &OutputArgs,
    stats: &pgarrow::ExportStats,
    target: &FileTarget,
    extra: Option<(&str, String)>,
) -> Result<()> {
    if let Some(path) = &args.stats_json {
        let mut json = stats.to_json();
        if let Some((fields, _)) = &extra {
            json.pop();
            json.push(',');
            json.push_str(fields);
            json.push('}');
        }
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write the statistics to {}", path.display()))?;
    }
    if !args.quiet {
        let summary = Summary {
            rows: stats.rows,
            copy_bytes: stats.bytes,
            written: stats.written.unwrap_or(0),
            elapsed: stats.total,
        };
        let mut line = summary_line(&summary, target.format, &target.output);
        if let Some((_, more)) = &extra {
            line.push_str(&format!(" ({more})"));
        }
        eprintln!("{line}");
        if !stats.losses.is_empty() {
            eprintln!(
                "lossy conversions (counted; see the policy flags): {} values: {}",
                group(stats.losses.total()),
                stats.losses
            );
        }
    }
    if args.stats {
        eprint!("{}", stats_table(stats));
        if let Some((_, more)) = &extra {
            eprintln!("{more}");
        }
    }
    Ok(())
}

fn demo(rt: &tokio::runtime::Runtime, mut args: DemoArgs) -> Result<()> {
    if args.output.output.is_none()
        && args.output.to.as_deref() != Some("null")
        && args.partition.output_dir.is_none()
    {
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
        &args.partition,
        &args.policies.policies(),
    )?;
    if let Some(dir) = &args.partition.output_dir {
        let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        eprintln!("wrote {}", abs.display());
    } else if let Some(path) = args.output.output.as_deref().filter(|p| *p != "-") {
        let abs = std::fs::canonicalize(Path::new(path)).unwrap_or_else(|_| PathBuf::from(path));
        eprintln!("wrote {}", abs.display());
    }
    drop(cluster);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::human_bytes;
    use pgarrow::sink::IntervalEncoding;

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
