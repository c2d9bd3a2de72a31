//! `export --ducklake URL`, `export --delta LOCATION` and `export --iceberg URL`: the export
//! committed into a lake table.

use anyhow::Result;
use pgarrow::Source;
use pgarrow::blocking::wait;
use pgarrow::policy::Policies;
use pgarrow::protocol::Config;
use pgarrow_lake::{
    DeltaStats, DeltaTarget, DuckLakeStats, DuckLakeTarget, IcebergStats, IcebergTarget, IfExists,
    export_to_delta, export_to_ducklake, export_to_iceberg,
};

use crate::args::{IncrementalArgs, LakeArgs, OutputArgs, PartitionArgs};
use crate::partition::partition_options;
use crate::report::{group, human_bytes};
use crate::{Session, export_options, progress_hooks, sink_options, usage};

/// `--lake-table`, or the exported table's name (in schema `default_schema`).
fn lake_name(source: &Source, lake: &LakeArgs, default_schema: &str) -> Result<(String, String)> {
    if let Some(name) = &lake.lake_table {
        let parsed = pgarrow::names::TableName::parse(name)?;
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
    if let Some(location) = &lake.delta {
        return export_delta(
            rt,
            session,
            config,
            source,
            (args, partition, lake, incremental),
            location,
            policies,
        );
    }
    if let Some(url) = &lake.iceberg {
        return export_iceberg(
            rt,
            session,
            config,
            source,
            (args, partition, lake, incremental),
            url,
            policies,
        );
    }
    let Some(url) = &lake.ducklake else {
        return Err(usage(
            "a lake table needs --ducklake URL, --delta LOCATION or --iceberg URL",
        ));
    };
    let (schema, table) = lake_name(source, lake, "main")?;
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
    if let Some(run) = run_options(source, incremental)? {
        target = target.with_incremental(run);
    }
    let options = export_options(args, policies);
    let popts = partition_options(partition);
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

#[allow(clippy::too_many_arguments)]
fn export_delta(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    source: &Source,
    (args, partition, lake, incremental): (
        &OutputArgs,
        &PartitionArgs,
        &LakeArgs,
        &IncrementalArgs,
    ),
    location: &str,
    policies: &Policies,
) -> Result<()> {
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
    if let Some(run) = run_options(source, incremental)? {
        target = target.with_incremental(run);
    }
    let options = export_options(args, policies);
    let popts = partition_options(partition);
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

#[allow(clippy::too_many_arguments)]
fn export_iceberg(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    source: &Source,
    (args, partition, lake, incremental): (
        &OutputArgs,
        &PartitionArgs,
        &LakeArgs,
        &IncrementalArgs,
    ),
    url: &str,
    policies: &Policies,
) -> Result<()> {
    if lake.data_path.is_some() {
        return Err(usage(
            "--data-path is DuckLake's: a new Iceberg table goes under --warehouse",
        ));
    }
    let (namespace, table) = lake_name(source, lake, "default")?;
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
    if let Some(run) = run_options(source, incremental)? {
        target = target.with_incremental(run);
    }
    let options = export_options(args, policies);
    let popts = partition_options(partition);
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
