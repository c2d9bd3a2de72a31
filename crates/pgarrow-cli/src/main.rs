//! `pgarrow`: export PostgreSQL queries and tables to Parquet and Arrow.

mod args;
mod changes;
mod conn;
mod copy;
mod errors;
mod import;
mod incremental;
mod lake;
mod output;
mod partition;
mod report;
mod slot;
mod tables;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use clap::FromArgMatches;
use pgarrow::blocking::{block_on, wait};
use pgarrow::io::Output;
use pgarrow::names::TablePattern;
use pgarrow::names::table_query;
use pgarrow::policy::Policies;
use pgarrow::protocol::Config;
use pgarrow::{Client, FileTarget, Hooks, Source, Stop};
use serde::Serialize;

use args::{Cli, Command, DemoArgs, OutputArgs, PartitionArgs, SourceArgs, command};
pub(crate) use conn::config_from;
pub(crate) use errors::{Session, usage};
pub(crate) use output::{export_options, file_target, sink_options};
use report::{Summary, advance, group, progress_bar, render_schema, stats_table, summary_line};

// The system allocator (glibc's malloc), not mimalloc: measured in one run, five interleaved
// rounds each (2M lineitem rows, 500k `wide` rows), it was as fast or faster and used 30-65%
// less memory: to null 32 vs 65 MiB, to Parquet 100 vs 159 MiB, with two connections to
// Parquet 159 vs 232 MiB (1.68 vs 1.95 s, 1.42 vs 1.94 s of CPU); mimalloc's per-thread pages
// and purges cost system time and memory once several threads allocate.

fn main() {
    bound_malloc();
    // A malformed file's reader panic is caught and reported as one error line.
    pgarrow::io::panic::quiet_caught_reader_panics();
    // The library's warnings (and, under PGARROW_DEBUG, its debug lines) on stderr.
    pgarrow::logging::to_stderr();
    let matches = command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let mut session = match Session::on_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pgarrow: error: cannot watch for Ctrl-C and SIGTERM: {e}");
            std::process::exit(1);
        }
    };
    let code = match run(cli, &mut session) {
        Ok(()) => 0,
        Err(e) => session.report(&e),
    };
    std::process::exit(code);
}

/// glibc's malloc set for a run whose memory is bounded by `--memory-limit`: at most two
/// arenas (each thread that allocates may otherwise get its own, up to eight per core, and
/// memory freed in one is never reused by another), and blocks of 1 MiB and more mapped on
/// their own and returned when freed (by default the threshold rises to the largest block
/// freed, up to 32 MiB, and such blocks then stay in the heap). Measured in one run, a mirror
/// commit of one transaction updating 8 million rows of 32 million under `--memory-limit
/// 256MiB`: peak RSS 329 MiB by default, 242 MiB with two arenas, 210 MiB with both; its time
/// the same. Left alone when the user sets `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn bound_malloc() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        return;
    }
    // SAFETY: `mallopt` only sets parameters of glibc's allocator, which it reads under its
    // own lock; it is called first thing in `main`, before any other thread, with parameters
    // and values glibc documents. Every test that runs the binary runs it.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_malloc() {}

/// Exits as clap does for a usage error (status 2, with the subcommand's usage): for rules the
/// parser cannot say, such as a source that may also come from `--plan`.
fn usage_error(command: &str, message: &str) -> ! {
    let mut cli = self::command();
    cli.build();
    let sub = cli
        .find_subcommand_mut(command)
        .expect("a subcommand of Cli");
    sub.error(clap::error::ErrorKind::MissingRequiredArgument, message)
        .exit()
}

fn run(cli: Cli, session: &mut Session) -> Result<()> {
    let rt = pgarrow::blocking::runtime()?;
    conn::quiet_notices(match &cli.command {
        Command::Export(args) => args.output.quiet,
        Command::Import(args) => args.load.quiet,
        Command::Copy(args) => args.load.quiet,
        Command::Plan(args) => args.quiet,
        Command::Demo(args) => args.output.quiet,
        Command::Changes(args) => args.quiet,
        Command::Apply(args) => args.quiet,
        _ => false,
    });
    match cli.command {
        Command::Export(args) => {
            let policies = args.policies.policies();
            // The statistics' URL and the storage options are checked before any work.
            if let Some(path) = &args.output.stats_json {
                args.output.storage.location(path)?;
            }
            if let (Some(plan), Some(part)) = (&args.plan, args.part) {
                let config = read_only_config(&args.source)?;
                return partition::export_part(
                    &rt,
                    session,
                    &config,
                    plan,
                    part,
                    &args.output,
                    &policies,
                );
            }
            let incremental = args.incremental.incremental_by.is_some();
            if incremental && args.plan.is_some() {
                return Err(usage("--incremental-by reads a --table, not a --plan"));
            }
            match select("export", &args.source, session)? {
                Selected::One(source) if incremental && !args.lake.is_lake() => {
                    let config = read_only_config(&args.source)?;
                    incremental::export(
                        &rt,
                        session,
                        &config,
                        &source,
                        &args.output,
                        &args.partition,
                        &args.incremental,
                        &policies,
                    )
                }
                Selected::Tables(_) if incremental && !args.lake.is_lake() => Err(usage(
                    "--incremental-by reads one --table, not a pattern or several tables (into \
                     lake tables, each table's runs keep their state in its own commits)",
                )),
                selected if args.lake.is_lake() => {
                    let config = read_only_config(&args.source)?;
                    lake::export(&rt, session, &config, selected, &args, &policies)
                }
                Selected::One(source) if args.slot.replication_slot.is_some() => {
                    let config = read_only_config(&args.source)?;
                    slot::export(
                        &rt,
                        session,
                        &config,
                        &source,
                        &args.output,
                        &args.partition,
                        &args.slot,
                        &policies,
                    )
                }
                Selected::Tables(_) if args.slot.replication_slot.is_some() => Err(usage(
                    "--replication-slot hands one table or query off to replication, not \
                     several tables",
                )),
                Selected::One(source) => {
                    let config = read_only_config(&args.source)?;
                    export(
                        &rt,
                        session,
                        &config,
                        &source,
                        &args.output,
                        &args.partition,
                        &policies,
                    )
                }
                Selected::Tables(patterns) => {
                    let p = &args.partition;
                    let split = [
                        ("--partitions", p.partitions > 1),
                        ("--partition-by", p.partition_by.is_some()),
                        ("--parts", p.parts.is_some()),
                        ("--order-preserving", p.order_preserving),
                        (
                            "--snapshot",
                            p.snapshot != pgarrow::partition::SnapshotMode::Shared,
                        ),
                        ("--stats", args.output.stats),
                        ("--stats-json", args.output.stats_json.is_some()),
                    ];
                    if let Some((flag, _)) = split.iter().find(|(_, given)| *given) {
                        return Err(usage(&format!(
                            "{flag} applies to one table or query; several tables are read one \
                             after another in one snapshot (--json gives each one's rows)"
                        )));
                    }
                    let config = read_only_config(&args.source)?;
                    tables::export(
                        &rt,
                        session,
                        &config,
                        &patterns,
                        &args.output,
                        &args.partition,
                        &policies,
                    )
                }
            }
        }
        Command::Plan(args) => {
            let source = one_source("plan", &args.source, session)?;
            let config = read_only_config(&args.source)?;
            partition::plan(&rt, session, &config, &source, &args)
        }
        Command::Schema(args) => {
            let source = one_source("schema", &args.source, session)?;
            let config = read_only_config(&args.source)?;
            schema(
                &rt,
                &session.stop,
                &config,
                &source,
                &args.policies.policies(),
            )
        }
        Command::Import(args) => {
            session.interrupted = errors::NOTHING_LOADED;
            let config = conn::config(&args.conn, None)?;
            import::import(&session.stop, &config, &args)
        }
        Command::Copy(args) => {
            session.interrupted = errors::NOTHING_LOADED;
            copy::copy(&session.stop, &args)
        }
        Command::Changes(args) => {
            let config = conn::config(&args.conn, None)?;
            changes::changes(&rt, session, &config, &args)
        }
        Command::Apply(args)
            if args.ducklake.is_some() || args.delta.is_some() || args.iceberg.is_some() =>
        {
            lake::apply(&rt, session, &args)
        }
        Command::Apply(args) => {
            session.interrupted = errors::ROLL_UNDONE;
            let config = conn::config(&args.conn, None)?;
            changes::apply(&rt, session, &config, &args)
        }
        Command::Mirror(args) => {
            let selected = select("mirror", &args.export.source, session)?;
            let config = conn::config(&args.export.source.conn, None)?;
            let policies = args.export.policies.policies();
            lake::mirror(&rt, session, &config, selected, &args, &policies)
        }
        Command::Lake(command) => lake::maintain(&rt, session, &command),
        Command::Demo(args) => demo(&rt, session, args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "pgarrow", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => man(dir.as_deref()),
    }
}

/// `pgarrow man`: the pages, generated from the same definitions as the parser.
fn man(dir: Option<&Path>) -> Result<()> {
    match dir {
        None => clap_mangen::Man::new(command())
            .render(&mut std::io::stdout())
            .context("writing the manual page"),
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command(), dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))
        }
    }
}

/// The connection settings of a command that only reads: its session is read-only, so a
/// statement that writes fails and changes nothing.
fn read_only_config(args: &SourceArgs) -> Result<Config> {
    let mut config = conn::config(&args.conn, args.statement_timeout)?;
    config.read_only = true;
    Ok(config)
}

/// What the source options select.
pub(crate) enum Selected {
    /// A query, or one table (perhaps narrowed by --columns, --where, --limit).
    One(Source),
    /// Several tables: patterns, a repeated --table, --schema.
    Tables(Vec<TablePattern>),
}

fn select(command: &str, args: &SourceArgs, session: &mut Session) -> Result<Selected> {
    let query = match (&args.query, &args.file) {
        (Some(q), _) if q == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the query from standard input (--query -)")?;
            Some(text)
        }
        (Some(q), _) => Some(q.clone()),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the query from {}", f.display()))?,
        ),
        (None, None) => None,
    };
    let narrowed = args.columns.is_some() || args.where_.is_some() || args.limit.is_some();
    if let Some(text) = query {
        if narrowed {
            return Err(usage(
                "--columns, --where and --limit narrow a --table; write them into the query",
            ));
        }
        let source = Source::query(text.clone());
        if source.sql().trim().is_empty() {
            return Err(usage("the query is empty (only white space or comments)"));
        }
        session.query = Some(text);
        return Ok(Selected::One(source));
    }
    let mut patterns = Vec::new();
    for t in &args.table {
        patterns.push(TablePattern::parse(t)?);
    }
    if patterns.is_empty() && args.schema.is_empty() {
        usage_error(
            command,
            "the following required arguments were not provided:\n  --query <SQL>, --file \
             <FILE>, --table <PATTERN> or --schema <PATTERN>",
        );
    }
    if let ([one], true) = (patterns.as_slice(), args.schema.is_empty())
        && let Some(table) = one.exact()
    {
        session.remember_table(&one.text);
        if !narrowed {
            return Ok(Selected::One(Source::Table(table)));
        }
        let source = table_query(
            &table,
            args.columns.as_deref(),
            args.where_.as_deref(),
            args.limit,
        )?;
        // The condition stands on lines of its own: an error in it points there.
        session.query = Some(source.sql());
        return Ok(Selected::One(source));
    }
    if narrowed {
        return Err(usage(
            "--columns, --where and --limit narrow one table, not a pattern or several",
        ));
    }
    for s in &args.schema {
        patterns.push(TablePattern::schema(s)?);
    }
    Ok(Selected::Tables(patterns))
}

/// The one source of a command that takes one (`schema`, `plan`).
fn one_source(command: &str, args: &SourceArgs, session: &mut Session) -> Result<Source> {
    match select(command, args, session)? {
        Selected::One(source) => Ok(source),
        Selected::Tables(_) => Err(usage(&format!(
            "pgarrow {command} takes one table or query; `export --output-dir` exports several"
        ))),
    }
}

fn schema(
    rt: &tokio::runtime::Runtime,
    stop: &Stop,
    config: &Config,
    source: &Source,
    policies: &Policies,
) -> Result<()> {
    let plan = block_on(rt, stop, async {
        let mut client = Client::connect(config).await?;
        let plan = client.describe_with(source, policies).await?;
        let _ = client.close().await;
        Ok(plan)
    })?;
    print!("{}", render_schema(&plan));
    Ok(())
}

fn export(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    source: &Source,
    args: &OutputArgs,
    partition: &PartitionArgs,
    policies: &Policies,
) -> Result<()> {
    if partition.partitioned() && !args.dry_run {
        return partition::export(rt, session, config, source, args, partition, policies);
    }
    let target = match &partition.output_dir {
        Some(dir) => FileTarget::new(
            output::dir_format(args, dir)?,
            args.storage.location(dir)?.output(),
        ),
        None => file_target(args)?,
    };
    session.to_stdout = target.output == Output::Stdout;
    // One connection holds at most three batches (one decoded, one waiting, one written)
    // and a row group: the library gives each its share of the limit.
    let options = export_options(args, policies).with_memory_limit(partition.memory_limit);
    let stop = session.stop.clone();
    let mut client = block_on(rt, &stop, Client::connect(config))?;
    if args.dry_run {
        return dry_run(rt, &stop, &mut client, source, &target, partition, policies);
    }
    let expected = match report::progress_shown(args.quiet) {
        true => block_on(rt, &stop, async { Ok(client.estimate_rows(source).await) })?,
        false => None,
    };
    let (progress, hooks) = progress_hooks(args.quiet, expected, &stop);
    // The export watches the stop itself: stopped, it cancels the query and removes its
    // temporary file before it returns.
    let result = wait(
        rt,
        &stop,
        client.export_to_file(source.clone(), &options, &target, hooks),
    );
    progress.finish_and_clear();
    drop(client);
    let stats = result?;
    report(args, &stats, &stats, &target, None)
}

/// A file's path or an object's URL.
pub(crate) fn output_name(output: &Output) -> String {
    match output {
        Output::File(p) => p.display().to_string(),
        Output::Remote(r) => r.name().to_owned(),
        Output::Stdout => "standard output".to_owned(),
        Output::Discard => "nowhere".to_owned(),
    }
}

/// `--dry-run`: what the export would run and write, from the described query.
fn dry_run(
    rt: &tokio::runtime::Runtime,
    stop: &Stop,
    client: &mut Client,
    source: &Source,
    target: &FileTarget,
    partition: &PartitionArgs,
    policies: &Policies,
) -> Result<()> {
    let plan = block_on(rt, stop, client.describe_with(source, policies))?;
    let output = match &target.output {
        Output::File(_) | Output::Remote(_) if partition.output_dir.is_some() => {
            format!(
                "{} (one {} file per part, then the manifest)",
                output_name(&target.output),
                target.format
            )
        }
        Output::File(_) | Output::Remote(_) => {
            format!("{} ({})", output_name(&target.output), target.format)
        }
        Output::Stdout => format!("standard output ({})", target.format),
        Output::Discard => "nowhere (--to null)".to_owned(),
    };
    println!("source:    {}", source.sql());
    println!("statement: {}", plan.copy_sql);
    println!("output:    {output}");
    if partition.partitioned() {
        println!(
            "reading:   over {} {} in one snapshot{}",
            partition.partitions,
            report::plural(partition.partitions as u64, "connection", "connections"),
            partition
                .partition_by
                .as_deref()
                .map(|c| format!(", split on {c}"))
                .unwrap_or_default()
        );
    }
    println!();
    print!("{}", render_schema(&plan));
    println!("\n(a dry run: nothing was exported)");
    Ok(())
}

/// The progress bar (hidden when quiet or not on a terminal; with a percentage when the rows
/// to expect are known), and hooks that update it after each batch and stop with `stop`.
fn progress_hooks(
    quiet: bool,
    expected: Option<u64>,
    stop: &Stop,
) -> (indicatif::ProgressBar, Hooks<'static>) {
    let progress = progress_bar(quiet, expected);
    let bar = progress.clone();
    let hooks = Hooks::new()
        .on_progress(move |s: &pgarrow::ExportStats| advance(&bar, s.rows, s.bytes, s.total))
        .with_stop(stop.clone());
    (progress, hooks)
}

/// `--json`'s object: the statistics' own document, with the format and the output.
#[derive(Serialize)]
struct JsonReport<'a, D: Serialize> {
    #[serde(flatten)]
    stats: &'a D,
    format: String,
    output: Option<String>,
}

/// The summary line, the lossy conversions, `--stats` and `--stats-json`; `document` is
/// what `--json` and `--stats-json` write (the statistics, or a partitioned export's), and
/// `more` adds words to the summary and the table.
fn report<D: Serialize>(
    args: &OutputArgs,
    document: &D,
    stats: &pgarrow::ExportStats,
    target: &FileTarget,
    more: Option<String>,
) -> Result<()> {
    let json = || {
        let output = match &target.output {
            Output::File(_) | Output::Remote(_) => Some(output_name(&target.output)),
            Output::Stdout => Some("-".to_owned()),
            Output::Discard => None,
        };
        serde_json::to_string(&JsonReport {
            stats: document,
            format: target.format.to_string(),
            output,
        })
    };
    if args.json {
        println!("{}", json()?);
    }
    if let Some(path) = &args.stats_json {
        let location = args.storage.location(path)?;
        location
            .write_atomically((json()? + "\n").as_bytes())
            .with_context(|| format!("cannot write the statistics to {location}"))?;
    }
    if !args.quiet {
        let summary = Summary {
            rows: stats.rows,
            copy_bytes: stats.bytes,
            written: stats.written.unwrap_or(0),
            elapsed: stats.total,
        };
        let mut line = summary_line(&summary, target.format, &target.output);
        if let Some(more) = &more {
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
        if let Some(more) = &more {
            eprintln!("{more}");
        }
    }
    Ok(())
}

fn demo(rt: &tokio::runtime::Runtime, session: &mut Session, mut args: DemoArgs) -> Result<()> {
    if args.output.output.is_none()
        && args.output.to != Some(pgarrow::io::Format::Null)
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
    block_on(rt, &session.stop, async {
        let mut client = Client::connect(&config).await?;
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
        session,
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

    #[test]
    fn numbers_for_people() {
        assert_eq!(group(0), "0");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group(100), "100");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }
}
