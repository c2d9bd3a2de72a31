//! `export --ducklake URL`, `export --delta LOCATION` and `export --iceberg URL`: the export
//! committed into a lake table; several tables, each into its own, in one snapshot (Iceberg
//! tables committed together, in one transaction of their catalog).

use anyhow::Result;
use pgarrow::Source;
use pgarrow::blocking::wait;
use pgarrow::names::TableName;
use pgarrow::partition::PartitionOptions;
use pgarrow::policy::Policies;
use pgarrow::protocol::{Config, quote_ident};
use pgarrow_lake::{
    LakeName, LakeStats, LakeTarget, SharedSnapshot, export_tables_to_lake, export_to_lake,
};

use crate::args::{
    ExportArgs, IncrementalArgs, LakeArgs, LakeCommand, LakeTableArgs, MirrorArgs, OutputArgs,
    PartitionArgs,
};
use crate::partition::partition_options;
use crate::report::{group, human_bytes};
use crate::{Selected, Session, export_options, progress_hooks, sink_options, usage};

/// One export into a lake table: its flags, and, when several tables are exported, the table
/// it reads (into a lake table of the same schema and name) and the partitions reading in
/// their shared snapshot.
struct Job<'a> {
    args: &'a OutputArgs,
    partition: &'a PartitionArgs,
    lake: &'a LakeArgs,
    incremental: &'a IncrementalArgs,
    policies: &'a Policies,
    shared: Option<(&'a TableName, PartitionOptions)>,
    /// Read in a new replication slot's snapshot (`--replication-slot`).
    in_slot: Option<PartitionOptions>,
}

impl Job<'_> {
    /// How the source is read: over `--partitions` connections, in the shared snapshot when
    /// there is one.
    fn partitions(&self) -> PartitionOptions {
        match (&self.in_slot, &self.shared) {
            (Some(p), _) | (None, Some((_, p))) => p.clone(),
            (None, None) => partition_options(self.partition),
        }
    }
}

/// `--incremental-by` into a lake table: the run's options (the state is the table's).
fn run_options(
    source: &Source,
    incremental: &IncrementalArgs,
) -> Result<Option<pgarrow::incremental::IncrementalOptions>> {
    let Some(column) = &incremental.incremental_by else {
        return Ok(None);
    };
    if incremental.state.is_some() {
        return Err(usage(
            "a lake table keeps each run's state in its commit: leave --state out",
        ));
    }
    let Some(t) = source.as_table() else {
        return Err(usage(
            "--incremental-by reads one --table (without --columns, --where or --limit)",
        ));
    };
    let mut options = pgarrow::incremental::IncrementalOptions::new(t.clone(), column.clone())
        .with_late_rows(incremental.late_rows)
        .with_restart(incremental.restart);
    if let Some(since) = &incremental.since {
        options = options.with_since(since.clone());
    }
    Ok(Some(options))
}

/// `export` into a lake table: one table or query; or several tables (`--table` patterns,
/// `--schema`), each into a lake table of its own schema and name (a Delta table at
/// LOCATION/SCHEMA.NAME), all read in one snapshot; Iceberg tables committed together (one
/// transaction of their catalog), the others each by its own commit.
pub(crate) fn export(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    selected: Selected,
    args: &ExportArgs,
    policies: &Policies,
) -> Result<()> {
    check_flags(&args.output, &args.partition)?;
    let one = Job {
        args: &args.output,
        partition: &args.partition,
        lake: &args.lake,
        incremental: &args.incremental,
        policies,
        shared: None,
        in_slot: None,
    };
    let patterns = match selected {
        Selected::One(source) if args.slot.replication_slot.is_some() => {
            return export_in_slot(rt, session, config, &source, &args.slot, one);
        }
        Selected::One(source) => return export_one(rt, session, config, &source, &one),
        Selected::Tables(_) if args.slot.replication_slot.is_some() => {
            return Err(usage(
                "--replication-slot hands one table off to replication, not several tables \
                 (`pgarrow mirror` follows several)",
            ));
        }
        Selected::Tables(patterns) => patterns,
    };
    if args.lake.lake_table.is_some() {
        return Err(usage(
            "--lake-table names one lake table: several tables go into tables of their own \
             schemas and names",
        ));
    }
    let stop = session.stop.clone();
    let shared = wait(rt, &stop, SharedSnapshot::begin(config, &patterns))?;
    let partitions = shared.partitions(&partition_options(&args.partition));
    let mut jobs = Vec::new();
    for table in shared.tables().to_vec() {
        let job = Job {
            shared: Some((&table, partitions.clone())),
            in_slot: None,
            ..one
        };
        let source = Source::from(table.clone());
        let target = target(&source, &job)?;
        jobs.push((source, target));
    }
    let options = export_options(&args.output, policies);
    // One bar, each table's export in turn.
    let progress = crate::report::progress_bar(args.output.quiet, None);
    let hooks = |_| {
        let bar = progress.clone();
        pgarrow::Hooks::new()
            .on_progress(move |s: &pgarrow::ExportStats| {
                crate::report::advance(&bar, s.rows, s.bytes, s.total)
            })
            .with_stop(stop.clone())
    };
    let run = export_tables_to_lake(config.clone(), jobs, &options, &partitions, hooks);
    let done = wait(rt, &stop, run);
    progress.finish_and_clear();
    let done = done?;
    wait(rt, &stop, shared.end())?;
    for stats in &done {
        finish(&args.output, stats)?;
    }
    if !args.output.quiet
        && let Some(first) = done.first()
    {
        match (&first.apart, first.committed_together) {
            (Some(why), _) => eprintln!(
                "the {} tables were committed each on its own: {why}",
                done.len()
            ),
            (None, Some(n)) if n > 1 => {
                eprintln!("the {n} tables were committed together, in one transaction")
            }
            _ => {}
        }
    }
    Ok(())
}

/// The flags of file exports a lake table has no use for.
fn check_flags(args: &OutputArgs, partition: &PartitionArgs) -> Result<()> {
    let files_only = [
        ("--output-dir", partition.output_dir.is_some()),
        ("--to", args.to.is_some()),
        ("--order-preserving", partition.order_preserving),
        ("--dry-run", args.dry_run),
    ];
    if let Some((flag, _)) = files_only.iter().find(|(_, given)| *given) {
        return Err(usage(&format!(
            "{flag} does not apply to a lake table: its files go under the table's own path"
        )));
    }
    crate::output::check_format(
        pgarrow::io::Format::Parquet,
        &pgarrow::io::Output::Discard,
        args,
    )?;
    Ok(())
}

/// Creates the replication slot, exports into the lake table in its snapshot (the commit
/// records the slot and its consistent point: where `pgarrow apply` of the slot's changes and
/// `pgarrow mirror --slot` go on from), then closes the slot's connection (the slot stays; a
/// failed export drops it).
fn export_in_slot(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    source: &Source,
    slot: &crate::args::SlotArgs,
    job: Job<'_>,
) -> Result<()> {
    use pgarrow_changes::slot::ReplicationSlot;
    let name = slot.replication_slot.clone().unwrap_or_default();
    let stop = session.stop.clone();
    let created = wait(
        rt,
        &stop,
        ReplicationSlot::create_with(config, &name, &slot.slot_plugin, false),
    )?;
    let info = created.info().clone();
    let job = Job {
        in_slot: Some(job.partitions().with_import_snapshot_at(
            &info.snapshot_name,
            &info.slot_name,
            &info.consistent_point,
        )),
        ..job
    };
    let done = export_one(rt, session, config, source, &job);
    let released = wait(rt, &stop, created.release());
    if let Err(e) = done {
        let drop = format!(
            "SELECT pg_drop_replication_slot({})",
            pgarrow::protocol::quote_literal(&name)
        );
        let _ = wait(rt, &stop, async {
            let mut conn = pgarrow::protocol::Connection::connect(config).await?;
            conn.simple_query(&drop).await?;
            conn.close().await
        });
        return Err(e);
    }
    released?;
    if !job.args.quiet {
        eprintln!(
            "created replication slot {} ({}); its changes start at {}, where the lake table's \
             commit says it is",
            info.slot_name, info.output_plugin, info.consistent_point
        );
    }
    Ok(())
}

fn export_one(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    source: &Source,
    job: &Job<'_>,
) -> Result<()> {
    let target = target(source, job)?;
    let args = job.args;
    let options = export_options(args, job.policies);
    let popts = job.partitions();
    let stop = session.stop.clone();
    let (progress, hooks) = progress_hooks(args.quiet, None, &stop);
    let run = export_to_lake(config, source.clone(), &options, &popts, &target, hooks);
    let result = wait(rt, &stop, run);
    progress.finish_and_clear();
    finish(args, &result?)
}

/// The lake table the flags name (with several tables, the job's table's), and how it is
/// written.
fn target(source: &Source, job: &Job<'_>) -> Result<LakeTarget> {
    let (args, lake) = (job.args, job.lake);
    let mut named = lake_name(
        lake.ducklake.as_deref(),
        lake.delta.as_deref(),
        lake.iceberg.as_deref(),
        lake.lake_table.as_deref(),
        &lake.catalog_name,
        &lake.iceberg_property,
    )?;
    named.data_path = lake.data_path.clone();
    named.warehouse = lake.warehouse.clone();
    named.checkpoint_interval = lake.delta.as_ref().map(|_| lake.checkpoint_interval);
    let target = match (&job.shared, source.as_table()) {
        // Several tables: each its own lake table, a Delta table at LOCATION/SCHEMA.NAME.
        (Some((table, _)), _) => {
            let default = match (&named.ducklake, &named.iceberg) {
                (Some(_), _) => "main",
                (_, Some(_)) => "default",
                _ => "public",
            };
            named.target(None)?.for_table(table, default)
        }
        // A catalog's table: --lake-table, else the source table's own name (its case kept).
        (None, Some(table)) if named.lake_table.is_none() => {
            named.target(Some(&quote_ident(&table.name)))?
        }
        (None, None) if named.lake_table.is_none() && named.delta.is_none() => {
            if named.ducklake.is_some() || named.iceberg.is_some() {
                return Err(usage(
                    "a query has no table name: give the lake table's (--lake-table \
                     [SCHEMA.]NAME)",
                ));
            }
            named.target(None)?
        }
        _ => named.target(None)?,
    };
    let if_exists = lake.if_exists;
    let mut target = target
        .with_if_exists(if_exists)
        .with_storage(args.storage.options()?)
        .with_options(sink_options(args)?)
        .with_layout(crate::output::layout(args));
    if let Some(run) = run_options(source, job.incremental)? {
        target = target.with_incremental(run);
    }
    Ok(target)
}

/// The JSON report (`--json`) and the summary line.
fn finish(args: &OutputArgs, stats: &LakeStats) -> Result<()> {
    if args.json {
        println!("{}", serde_json::to_string(stats)?);
    }
    if let Some(path) = &args.stats_json {
        let location = args.storage.location(path)?;
        location
            .write_atomically((serde_json::to_string(stats)? + "\n").as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot write the statistics to {location}: {e}"))?;
    }
    if !args.quiet {
        let export = &stats.export.export;
        let kind = match stats.format {
            "delta" => "Delta",
            "iceberg" => "Iceberg",
            _ => "DuckLake",
        };
        let plural = |n: usize| if n == 1 { "file" } else { "files" };
        eprintln!(
            "exported {} rows into {kind} table {}{} in {:.1} s: {}, {} {}, {}{}",
            group(stats.rows),
            stats.table,
            if stats.created { " (created)" } else { "" },
            export.total.as_secs_f64(),
            stats.point(),
            group(stats.files as u64),
            plural(stats.files),
            human_bytes(export.written.unwrap_or(0)),
            match stats.removed {
                None | Some(0) => String::new(),
                Some(n) => format!(", {} replaced {}", group(n as u64), plural(n)),
            },
        );
        if !export.losses.is_empty() {
            eprintln!(
                "lossy conversions (counted; see the policy flags): {} values: {}",
                group(export.losses.total()),
                export.losses
            );
        }
    }
    if args.stats {
        eprint!("{}", crate::report::stats_table(&stats.export.export));
        eprintln!(
            "commit       {:>7.3}  footers read, metadata written, the commit ({})",
            stats.commit.as_secs_f64(),
            stats.point()
        );
    }
    Ok(())
}

/// `pgarrow mirror`: the tables the flags select, into lake tables named as an export's, kept
/// equal to them through the slot; a line per commit and checkpoint (a JSON line each with
/// `--json`), and a summary.
pub(crate) fn mirror(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    selected: Selected,
    args: &MirrorArgs,
    policies: &Policies,
) -> Result<()> {
    use pgarrow_lake::mirror::{MirrorOptions, MirrorProgress, mirror_to_lake};
    let export = &args.export;
    check_flags(&export.output, &export.partition)?;
    let not_here = [
        (
            "--incremental-by",
            export.incremental.incremental_by.is_some(),
        ),
        ("--replication-slot", export.slot.replication_slot.is_some()),
        ("--plan", export.plan.is_some()),
        ("--stats-json", export.output.stats_json.is_some()),
    ];
    if let Some((flag, _)) = not_here.iter().find(|(_, given)| *given) {
        return Err(usage(&format!("{flag} does not apply to a mirror")));
    }
    if !export.lake.is_lake() {
        return Err(usage(
            "a mirror keeps a lake table: name it (--ducklake URL, with --data-path for a new \
             catalog; --delta PATH; or --iceberg URL, with --warehouse for a new table)",
        ));
    }
    let flags = &args.mirror;
    if !(flags.commit_interval.is_finite() && flags.commit_interval >= 0.0) {
        return Err(usage(
            "--commit-interval takes a number of seconds, 0 or more",
        ));
    }
    if !(flags.retry_for.is_finite() && flags.retry_for >= 0.0) {
        return Err(usage("--retry-for takes a number of seconds, 0 or more"));
    }
    let stop = session.stop.clone();
    let mut patterns = Vec::new();
    let tables = match selected {
        Selected::One(Source::Table(t)) => vec![t],
        Selected::One(_) => {
            return Err(usage(
                "a mirror follows tables (--table, --schema), not a query",
            ));
        }
        Selected::Tables(found) => {
            if export.lake.lake_table.is_some() {
                return Err(usage(
                    "--lake-table names one lake table: several tables go into tables of their \
                     own schemas and names",
                ));
            }
            let resolved = pgarrow_lake::mirror::resolve_tables(config.clone(), &found);
            let tables = wait(rt, &stop, resolved)?;
            patterns = found;
            tables
        }
    };
    let one = Job {
        args: &export.output,
        partition: &export.partition,
        lake: &export.lake,
        incremental: &export.incremental,
        policies,
        shared: None,
        in_slot: None,
    };
    let target = target(&Source::Table(tables[0].clone()), &one)?;
    if flags.status {
        let status = wait(
            rt,
            &stop,
            pgarrow_lake::mirror::mirror_status(config.clone(), &tables, &target, &flags.slot),
        )?;
        print_status(&status, export.output.json)?;
        return Ok(());
    }
    if let Some(at) = &flags.at {
        let point = wait(
            rt,
            &stop,
            pgarrow_lake::mirror::mirror_at_text(config.clone(), &tables, &target, &flags.slot, at),
        )?;
        print_point(&point, export.output.json)?;
        return Ok(());
    }
    let options = MirrorOptions::new(flags.slot.clone())
        .with_patterns(patterns)
        .with_publication(flags.publication.clone())
        .with_commit_interval(std::time::Duration::from_secs_f64(flags.commit_interval))
        .with_commit_changes(flags.commit_changes)
        .with_catch_up(flags.catch_up)
        .with_start_over(flags.start_over)
        .with_failover(flags.failover)
        .with_reexport(!flags.no_reexport)
        .with_deletes(flags.deletes)
        .with_memory_limit(
            export
                .partition
                .memory_limit
                .map_or(pgarrow_lake::mirror::DEFAULT_MEMORY_LIMIT, |m| m as u64),
        )
        .with_spill_dir(flags.spill_dir.clone())
        .with_retry_for(std::time::Duration::from_secs_f64(flags.retry_for))
        .with_metrics_listen(flags.metrics_listen)
        .with_export(export_options(&export.output, policies))
        .with_partitions(partition_options(&export.partition));
    let (quiet, json) = (export.output.quiet, export.output.json);
    let hooks =
        pgarrow::Hooks::new()
            .with_stop(stop.clone())
            .on_progress(move |event: &MirrorProgress| {
                if json {
                    if let Ok(line) = serde_json::to_string(event) {
                        println!("{line}");
                    }
                } else if !quiet {
                    eprintln!("{event}");
                }
            });
    let stats = wait(
        rt,
        &stop,
        mirror_to_lake(config.clone(), &tables, &target, &options, hooks),
    )?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({"event": "done", "stats": stats}))?
        );
    } else if !quiet {
        let why = if stop.is_stopped() {
            "stopped at a transaction boundary"
        } else if flags.catch_up {
            "caught up"
        } else {
            "the server ended the stream"
        };
        eprintln!(
            "mirror of {} table(s) through slot {:?}: {}{} commit(s), {} changes ({} rows written, \
             {} deleted); every table is at {}; {why}",
            stats.tables.len(),
            stats.slot,
            match (stats.exported, stats.reexported) {
                (false, 0) => String::new(),
                (true, 0) => format!(
                    "exported {} rows in a new snapshot, then ",
                    group(stats.exported_rows)
                ),
                (_, again) => format!(
                    "exported {} rows ({again} table(s) again, at a schema change), ",
                    group(stats.exported_rows)
                ),
            },
            group(stats.commits),
            group(stats.changes),
            group(stats.inserted),
            group(stats.deleted),
            stats.end_lsn,
        );
        if stats.joined > 0 || stats.left > 0 {
            eprintln!(
                "{} table(s) joined the mirror as it ran, {} left it",
                stats.joined, stats.left
            );
        }
        if stats.together > 0 {
            eprintln!(
                "{} commit round(s) committed several tables at once, in one transaction of \
                 their catalog",
                group(stats.together)
            );
        }
        if let Some(why) = &stats.apart {
            eprintln!("rounds of several tables were committed table by table: {why}");
        }
        if stats.restarts > 0 {
            eprintln!(
                "started again {} time(s) after failures that passed (each reported above)",
                group(stats.restarts)
            );
        }
        if export.output.stats {
            let i = &stats.index;
            eprintln!(
                "key index: {} entries on disk in {} run(s), {} bytes; {} in memory, about {} \
                 bytes; {} keys looked up, {} bytes of it read; {} data file(s) read for their \
                 keys ({} bytes); {} spill(s), {} merge(s)",
                group(i.disk_entries),
                i.runs,
                group(i.disk_bytes),
                group(i.memory_entries),
                group(i.memory_bytes),
                group(i.lookups),
                group(i.read_bytes),
                group(i.files_read),
                group(i.files_read_bytes),
                i.spills,
                i.merges,
            );
        }
        let s = &stats.streamed;
        if s.parts > 0 {
            eprintln!(
                "large source transactions streamed before their commit: {} committed, {} \
                 aborted, {} savepoint(s) rolled back; {} bytes set aside (at most {} at once)",
                group(s.committed),
                group(s.aborted),
                group(s.rolled_back),
                group(s.bytes),
                group(s.peak_bytes),
            );
        }
    }
    Ok(())
}

/// `pgarrow lake compact|expire`: the table the flags name, kept up beside whatever writes to
/// it; a summary line, or a JSON object with `--json`.
pub(crate) fn maintain(
    rt: &tokio::runtime::Runtime,
    session: &Session,
    command: &LakeCommand,
) -> Result<()> {
    let stop = session.stop.clone();
    use pgarrow_lake::maintain::{
        CompactOptions, CompactProgress, ExpireOptions, compact_lake, expire_lake,
    };
    match command {
        LakeCommand::Compact(args) => {
            let target = maintained(&args.table)?;
            let options = CompactOptions::new()
                .with_target_file_bytes(args.target_file_size as u64)
                .with_retries(args.retries);
            let quiet = args.table.quiet;
            let hooks = pgarrow::Hooks::new().with_stop(stop.clone()).on_progress(
                move |e: &CompactProgress| {
                    if !quiet {
                        eprintln!("{e}");
                    }
                },
            );
            let stats = wait(rt, &stop, compact_lake(&target, &options, hooks))?;
            if args.table.json {
                println!("{}", serde_json::to_string(&stats)?);
            }
            if !args.table.quiet {
                match stats.commits {
                    0 if !stats.stepped_aside => {
                        eprintln!("{} table {}: nothing to compact", stats.format, stats.table)
                    }
                    _ => eprintln!(
                        "compacted {} table {}: {} files into {} ({} rows, {} deleted rows \
                         folded) in {} commit(s){}{}",
                        stats.format,
                        stats.table,
                        group(stats.files_rewritten),
                        group(stats.files_written),
                        group(stats.rows),
                        group(stats.deletes_folded),
                        stats.commits,
                        match stats.retried {
                            0 => String::new(),
                            n => format!(", {n} retried after another writer committed"),
                        },
                        match stats.stepped_aside {
                            true => "; stepped aside for the other writer (run again later)",
                            false => "",
                        },
                    ),
                }
            }
        }
        LakeCommand::Expire(args) => {
            let target = maintained(&args.table)?;
            let options = ExpireOptions::new(args.older_than).with_dry_run(args.dry_run);
            let stats = wait(rt, &stop, expire_lake(&target, &options))?;
            if args.table.json {
                println!("{}", serde_json::to_string(&stats)?);
            }
            if !args.table.quiet {
                eprintln!(
                    "{} {} table {}: {} snapshot(s) and {} file(s) ({}){}",
                    if stats.dry_run {
                        "would expire"
                    } else {
                        "expired"
                    },
                    stats.format,
                    stats.table,
                    group(stats.snapshots),
                    group(stats.files),
                    human_bytes(stats.bytes),
                    if stats.dry_run {
                        ", nothing changed"
                    } else {
                        ""
                    },
                );
            }
        }
    }
    Ok(())
}

/// The lake table `pgarrow lake` names.
fn maintained(args: &LakeTableArgs) -> Result<LakeTarget> {
    let named = lake_name(
        args.ducklake.as_deref(),
        args.delta.as_deref(),
        args.iceberg.as_deref(),
        args.lake_table.as_deref(),
        &args.catalog_name,
        &args.iceberg_property,
    )?;
    Ok(named.target(None)?.with_storage(args.storage.options()?))
}

/// A lake table as `pgarrow lake`, `pgarrow apply` and `pgarrow import` name it (the catalog
/// name, which has a default, only with --iceberg; `properties`: --iceberg-property KEY=VALUE).
pub(crate) fn lake_name(
    ducklake: Option<&str>,
    delta: Option<&str>,
    iceberg: Option<&str>,
    lake_table: Option<&str>,
    catalog_name: &str,
    properties: &[String],
) -> Result<LakeName> {
    let mut name = LakeName::default();
    name.ducklake = ducklake.map(str::to_owned);
    name.delta = delta.map(str::to_owned);
    name.iceberg = iceberg.map(str::to_owned);
    name.lake_table = lake_table.map(str::to_owned);
    name.catalog_name = iceberg.map(|_| catalog_name.to_owned());
    for p in properties {
        let Some((k, v)) = p.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            // The value may be a secret: only its key is shown.
            return Err(usage(&format!(
                "--iceberg-property is KEY=VALUE (such as s3.endpoint=http://localhost:9000), \
                 not {:?}",
                p.split('=').next().unwrap_or_default()
            )));
        };
        name = name.with_iceberg_property(k.trim(), v);
    }
    Ok(name)
}

/// `pgarrow apply DIR --ducklake|--delta|--iceberg`: a changes directory into lake tables, each
/// table's changes of a roll in one commit that records the checkpoint it reaches.
pub(crate) fn apply(
    rt: &tokio::runtime::Runtime,
    session: &Session,
    args: &crate::args::ApplyArgs,
) -> Result<()> {
    use pgarrow_changes::ApplyStats;
    use pgarrow_lake::apply::{LakeApplyOptions, apply_to_lake};
    if args.state_table != pgarrow_changes::APPLIED_TABLE {
        return Err(usage(
            "--state-table is PostgreSQL's: a lake table records what it holds in its commits",
        ));
    }
    let mut options = LakeApplyOptions::default().with_deletes(args.deletes);
    options = options.with_spill_dir(args.spill_dir.clone());
    if let Some(m) = args.memory_limit {
        options = options.with_memory_limit(m as u64);
    }
    for spec in &args.key {
        let Some((table, columns)) = spec.split_once('=') else {
            return Err(usage(&format!(
                "--key {spec:?}: give TABLE=COLUMN[,COLUMN...]"
            )));
        };
        let columns: Vec<String> = columns.split(',').map(|c| c.trim().to_owned()).collect();
        if columns.iter().any(String::is_empty) {
            return Err(usage(&format!(
                "--key {spec:?}: give TABLE=COLUMN[,COLUMN...]"
            )));
        }
        options = options.with_key(TableName::parse(table.trim())?, columns);
    }
    let dir = args.storage.location(&args.dir)?;
    let manifest = pgarrow_changes::read_manifest(&dir)?;
    let mut sources: Vec<&str> = manifest.files.iter().map(|f| f.table.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    if sources.len() > 1 && args.lake_table.is_some() {
        return Err(usage(&format!(
            "--lake-table names one lake table, and the changes are of {} tables: each goes \
             into the lake table of its own schema and name",
            sources.len()
        )));
    }
    // One table's lake table: --lake-table, else its own name; several: each its own.
    let one = match sources.as_slice() {
        [one] => Some(quote_ident(&TableName::parse(one)?.name)),
        _ => None,
    };
    let named = lake_name(
        args.ducklake.as_deref(),
        args.delta.as_deref(),
        args.iceberg.as_deref(),
        args.lake_table.as_deref(),
        &args.catalog_name,
        &args.iceberg_property,
    )?;
    let target = named.target(one.as_deref())?;
    let target = target.with_storage(args.storage.options()?);
    let quiet = args.quiet || args.json;
    let stop = session.stop.clone();
    let hooks = pgarrow::Hooks::new()
        .with_stop(stop.clone())
        .on_progress(move |s: &ApplyStats| {
            if !quiet {
                eprintln!(
                    "roll {} (checkpoint {}): {} changes so far",
                    s.rolls + s.rolls_skipped,
                    s.checkpoint_lsn,
                    group(s.changes)
                );
            }
        });
    let stats = wait(rt, &stop, apply_to_lake(&dir, &target, &options, hooks))?;
    crate::changes::report_apply(args, &stats, true)
}

/// `mirror --at`: the point read, then each table's snapshot and the statements that read it
/// there (with `json`, one JSON object).
fn print_point(p: &pgarrow_lake::mirror::LakePoint, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(p)?);
        return Ok(());
    }
    let asked = match p.asked == p.lsn {
        true => String::new(),
        false => format!(" (asked: {})", p.asked),
    };
    println!(
        "the lake at source position {}{asked}; slot {:?} confirmed {}",
        p.lsn,
        p.slot,
        p.confirmed_lsn
            .as_deref()
            .unwrap_or("nothing (no such slot)")
    );
    for t in &p.tables {
        match (t.snapshot, &t.recorded_lsn) {
            (Some(s), Some(lsn)) => {
                println!(
                    "{} -> {} ({}): snapshot {s}, recorded at {lsn}",
                    t.table, t.lake_table, t.format
                );
                for (reader, statement) in &t.read {
                    println!("    {reader}: {statement}");
                }
            }
            _ => println!(
                "{} -> {} ({}): no snapshot at that point (not exported yet)",
                t.table, t.lake_table, t.format
            ),
        }
    }
    Ok(())
}

/// `mirror --status`: the slot, then a line per table (with `json`, one JSON object).
fn print_status(s: &pgarrow_lake::mirror::MirrorStatus, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(s)?);
        return Ok(());
    }
    let bytes =
        |b: Option<u64>| b.map_or_else(|| "?".to_owned(), |b| format!("{} bytes", group(b)));
    match s.slot_exists {
        true => println!(
            "slot {:?}: {}, confirmed {} ({} behind the server at {}){}",
            s.slot,
            if s.active {
                "active (a mirror is reading it)"
            } else {
                "not active"
            },
            s.confirmed_lsn.as_deref().unwrap_or("?"),
            bytes(s.lag_bytes),
            s.server_lsn,
            s.wal_status
                .as_deref()
                .map(|w| format!(", WAL {w}"))
                .unwrap_or_default(),
        ),
        false => println!(
            "slot {:?}: none on the source (the first run makes it); the server is at {}",
            s.slot, s.server_lsn
        ),
    }
    for t in &s.tables {
        match (t.exists, &t.lsn) {
            (false, _) => println!("{} -> {}: no lake table yet", t.table, t.lake_table),
            (true, None) => println!(
                "{} -> {}: snapshot {}, no position of this slot",
                t.table,
                t.lake_table,
                t.snapshot.map_or_else(|| "?".to_owned(), |v| v.to_string())
            ),
            (true, Some(lsn)) => println!(
                "{} -> {}: at {lsn}, snapshot {} ({} behind the server)",
                t.table,
                t.lake_table,
                t.snapshot.map_or_else(|| "?".to_owned(), |v| v.to_string()),
                bytes(t.behind_bytes)
            ),
        }
    }
    Ok(())
}
