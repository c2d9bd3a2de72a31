//! `export --ducklake URL`, `export --delta LOCATION` and `export --iceberg URL`: the export
//! committed into a lake table; several tables, each into its own, in one snapshot.

use anyhow::Result;
use pgarrow::Source;
use pgarrow::blocking::wait;
use pgarrow::names::{TableName, TablePattern};
use pgarrow::partition::PartitionOptions;
use pgarrow::policy::Policies;
use pgarrow::protocol::Config;
use pgarrow_lake::{
    DeltaStats, DeltaTarget, DuckLakeStats, DuckLakeTarget, IcebergStats, IcebergTarget, IfExists,
    SharedSnapshot, export_to_delta, export_to_ducklake, export_to_iceberg,
};

use crate::args::{IncrementalArgs, LakeArgs, OutputArgs, PartitionArgs};
use crate::partition::partition_options;
use crate::report::{group, human_bytes};
use crate::{Session, export_options, progress_hooks, sink_options, usage};

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
}

impl Job<'_> {
    /// `--lake-table`, or the exported table's name (in schema `default_schema`); with several
    /// tables, each one's own schema and name.
    fn name(&self, source: &Source, default_schema: &str) -> Result<(String, String)> {
        if let Some((table, _)) = &self.shared {
            let schema = table
                .schema
                .clone()
                .unwrap_or_else(|| default_schema.to_owned());
            return Ok((schema, table.name.clone()));
        }
        if let Some(name) = &self.lake.lake_table {
            let parsed = TableName::parse(name)?;
            return Ok((
                parsed.schema.unwrap_or_else(|| default_schema.to_owned()),
                parsed.name,
            ));
        }
        match source.as_table() {
            Some(table) => Ok((default_schema.to_owned(), table.name.clone())),
            None => Err(usage(
                "a query has no table name: give the lake table's (--lake-table [SCHEMA.]NAME)",
            )),
        }
    }

    /// How the source is read: over `--partitions` connections, in the shared snapshot when
    /// there is one.
    fn partitions(&self) -> PartitionOptions {
        match &self.shared {
            Some((_, p)) => p.clone(),
            None => partition_options(self.partition),
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

#[derive(serde::Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    stats: &'a pgarrow::partition::PartitionedStats,
    format: &'static str,
    table: String,
    /// DuckLake's snapshot, Iceberg's snapshot ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot: Option<i64>,
    /// Iceberg's new metadata file.
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata_location: Option<String>,
    /// Iceberg's sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence_number: Option<i64>,
    /// Delta's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<i64>,
    created: bool,
    files: usize,
    /// Files a Delta replace removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    removed: Option<usize>,
    retried: usize,
    /// Whether a Delta export wrote its version's checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpointed: Option<bool>,
    /// An incremental run's state, as the commit carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    incremental: Option<pgarrow::incremental::IncrementalState>,
    /// Whether the incremental run was a first run.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_run: Option<bool>,
    /// Whether it scanned for late rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    late_scan: Option<bool>,
}

impl<'a> JsonReport<'a> {
    /// What every format reports; the rest set by the format's export.
    fn new(
        stats: &'a pgarrow::partition::PartitionedStats,
        format: &'static str,
        table: String,
        (created, files, retried): (bool, usize, usize),
    ) -> JsonReport<'a> {
        JsonReport {
            stats,
            format,
            table,
            snapshot: None,
            metadata_location: None,
            sequence_number: None,
            version: None,
            created,
            files,
            removed: None,
            retried,
            checkpointed: None,
            incremental: None,
            first_run: None,
            late_scan: None,
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn export(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    source: &Source,
    args: &OutputArgs,
    partition: &PartitionArgs,
    lake: &LakeArgs,
    incremental: &IncrementalArgs,
    policies: &Policies,
) -> Result<()> {
    check_flags(args, partition)?;
    let job = Job {
        args,
        partition,
        lake,
        incremental,
        policies,
        shared: None,
    };
    export_one(rt, session, config, source, &job)
}

/// Several tables (`--table` patterns, `--schema`), each into a lake table of its own schema
/// and name (a Delta table at LOCATION/SCHEMA.NAME), all read in one snapshot; each table is
/// its own commit.
#[allow(clippy::too_many_arguments)]
pub(crate) fn export_tables(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    patterns: &[TablePattern],
    args: &OutputArgs,
    partition: &PartitionArgs,
    lake: &LakeArgs,
    incremental: &IncrementalArgs,
    policies: &Policies,
) -> Result<()> {
    check_flags(args, partition)?;
    if lake.lake_table.is_some() {
        return Err(usage(
            "--lake-table names one lake table: several tables go into tables of their own \
             schemas and names",
        ));
    }
    let stop = session.stop.clone();
    let shared = wait(rt, &stop, SharedSnapshot::begin(config, patterns))?;
    let partitions = partition_options(partition);
    for table in shared.tables().to_vec() {
        let job = Job {
            args,
            partition,
            lake,
            incremental,
            policies,
            shared: Some((&table, shared.partitions(&partitions))),
        };
        export_one(rt, session, config, &Source::from(table.clone()), &job)?;
    }
    wait(rt, &stop, shared.end())?;
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

fn export_one(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    source: &Source,
    job: &Job<'_>,
) -> Result<()> {
    let lake = job.lake;
    if let Some(location) = &lake.delta {
        return export_delta(rt, session, config, source, job, location);
    }
    if let Some(url) = &lake.iceberg {
        return export_iceberg(rt, session, config, source, job, url);
    }
    let Some(url) = &lake.ducklake else {
        return Err(usage(
            "a lake table needs --ducklake URL, --delta LOCATION or --iceberg URL",
        ));
    };
    let args = job.args;
    let (schema, table) = job.name(source, "main")?;
    let catalog = Config::parse(url)?;
    let if_exists: IfExists = lake.if_exists.parse()?;
    let mut target = DuckLakeTarget::new(catalog, schema.clone(), table.clone())
        .with_if_exists(if_exists)
        .with_storage(args.storage.options()?)
        .with_options(sink_options(args)?)
        .with_layout(crate::output::layout(args));
    if let Some(path) = &lake.data_path {
        target = target.with_data_path(path.clone());
    }
    if let Some(run) = run_options(source, job.incremental)? {
        target = target.with_incremental(run);
    }
    let options = export_options(args, job.policies);
    let popts = job.partitions();
    let stop = session.stop.clone();
    let (progress, hooks) = progress_hooks(args.quiet, None, &stop);
    let run = export_to_ducklake(config, source.clone(), &options, &popts, &target, hooks);
    let result = wait(rt, &stop, run);
    progress.finish_and_clear();
    let stats: DuckLakeStats = result?;
    let report = JsonReport {
        snapshot: Some(stats.snapshot),
        incremental: stats.run.as_ref().map(|r| r.state.clone()),
        first_run: stats.run.as_ref().map(|r| r.first),
        late_scan: stats.run.as_ref().map(|r| r.late_scan),
        ..JsonReport::new(
            &stats.export,
            "ducklake",
            format!("{schema}.{table}"),
            (stats.created, stats.files, stats.retried),
        )
    };
    finish(
        args,
        &report,
        stats.rows,
        &format!("snapshot {}", stats.snapshot),
    )
}

/// The JSON report (`--json`) and the summary line.
fn finish(args: &OutputArgs, report: &JsonReport<'_>, rows: u64, point: &str) -> Result<()> {
    if args.json {
        println!("{}", serde_json::to_string(report)?);
    }
    if !args.quiet {
        let export = &report.stats.export;
        let kind = match report.format {
            "delta" => "Delta",
            "iceberg" => "Iceberg",
            _ => "DuckLake",
        };
        let plural = |n: usize| if n == 1 { "file" } else { "files" };
        eprintln!(
            "exported {} rows into {kind} table {}{} in {:.1} s: {point}, {} {}, {}{}",
            group(rows),
            report.table,
            if report.created { " (created)" } else { "" },
            export.total.as_secs_f64(),
            group(report.files as u64),
            plural(report.files),
            human_bytes(export.written.unwrap_or(0)),
            match report.removed {
                None | Some(0) => String::new(),
                Some(n) => format!(", {} replaced {}", group(n as u64), plural(n)),
            },
        );
        report_losses(export);
    }
    Ok(())
}

fn report_losses(export: &pgarrow::ExportStats) {
    if !export.losses.is_empty() {
        eprintln!(
            "lossy conversions (counted; see the policy flags): {} values: {}",
            group(export.losses.total()),
            export.losses
        );
    }
}

fn export_delta(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    source: &Source,
    job: &Job<'_>,
    location: &str,
) -> Result<()> {
    let (args, lake) = (job.args, job.lake);
    // Several tables: each at LOCATION/SCHEMA.NAME.
    let location = match &job.shared {
        Some(_) => {
            let (schema, name) = job.name(source, "public")?;
            format!("{}/{schema}.{name}", location.trim_end_matches('/'))
        }
        None => location.to_owned(),
    };
    let location = location.as_str();
    for (flag, given) in [
        ("--lake-table", lake.lake_table.is_some()),
        ("--data-path", lake.data_path.is_some()),
    ] {
        if given {
            return Err(usage(&format!(
                "{flag} is a catalog's: a Delta table is named by its location (--delta)"
            )));
        }
    }
    let if_exists: IfExists = lake.if_exists.parse()?;
    let mut target = DeltaTarget::new(location)
        .with_if_exists(if_exists)
        .with_storage(args.storage.options()?)
        .with_options(sink_options(args)?)
        .with_layout(crate::output::layout(args))
        .with_checkpoint_interval(lake.checkpoint_interval);
    if let Some(run) = run_options(source, job.incremental)? {
        target = target.with_incremental(run);
    }
    let options = export_options(args, job.policies);
    let popts = job.partitions();
    let stop = session.stop.clone();
    let (progress, hooks) = progress_hooks(args.quiet, None, &stop);
    let run = export_to_delta(config, source.clone(), &options, &popts, &target, hooks);
    let result = wait(rt, &stop, run);
    progress.finish_and_clear();
    let stats: DeltaStats = result?;
    let report = JsonReport {
        version: Some(stats.version),
        removed: Some(stats.removed),
        checkpointed: Some(stats.checkpointed),
        incremental: stats.run.as_ref().map(|r| r.state.clone()),
        first_run: stats.run.as_ref().map(|r| r.first),
        late_scan: stats.run.as_ref().map(|r| r.late_scan),
        ..JsonReport::new(
            &stats.export,
            "delta",
            location.to_owned(),
            (stats.created, stats.files, stats.retried),
        )
    };
    finish(
        args,
        &report,
        stats.rows,
        &format!("version {}", stats.version),
    )
}

fn export_iceberg(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    source: &Source,
    job: &Job<'_>,
    url: &str,
) -> Result<()> {
    let (args, lake) = (job.args, job.lake);
    if lake.data_path.is_some() {
        return Err(usage(
            "--data-path is DuckLake's: a new Iceberg table goes under --warehouse",
        ));
    }
    let (namespace, table) = job.name(source, "default")?;
    let catalog = Config::parse(url)?;
    let if_exists: IfExists = lake.if_exists.parse()?;
    let mut target = IcebergTarget::new(catalog, namespace.clone(), table.clone())
        .with_catalog_name(lake.catalog_name.clone())
        .with_if_exists(if_exists)
        .with_storage(args.storage.options()?)
        .with_options(sink_options(args)?)
        .with_layout(crate::output::layout(args));
    if let Some(w) = &lake.warehouse {
        target = target.with_warehouse(w.clone());
    }
    if let Some(run) = run_options(source, job.incremental)? {
        target = target.with_incremental(run);
    }
    let options = export_options(args, job.policies);
    let popts = job.partitions();
    let stop = session.stop.clone();
    let (progress, hooks) = progress_hooks(args.quiet, None, &stop);
    let run = export_to_iceberg(config, source.clone(), &options, &popts, &target, hooks);
    let result = wait(rt, &stop, run);
    progress.finish_and_clear();
    let stats: IcebergStats = result?;
    let report = JsonReport {
        snapshot: Some(stats.snapshot_id),
        metadata_location: Some(stats.metadata_location.clone()),
        sequence_number: Some(stats.sequence_number),
        incremental: stats.run.as_ref().map(|r| r.state.clone()),
        first_run: stats.run.as_ref().map(|r| r.first),
        late_scan: stats.run.as_ref().map(|r| r.late_scan),
        ..JsonReport::new(
            &stats.export,
            "iceberg",
            format!("{namespace}.{table}"),
            (stats.created, stats.files, stats.retried),
        )
    };
    finish(
        args,
        &report,
        stats.rows,
        &format!("snapshot {}", stats.snapshot_id),
    )
}
