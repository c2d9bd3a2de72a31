//! `export --ducklake URL`: the export committed into a lake table.

use anyhow::Result;
use pgarrow::Source;
use pgarrow::blocking::wait;
use pgarrow::policy::Policies;
use pgarrow::protocol::Config;
use pgarrow_lake::{DuckLakeStats, DuckLakeTarget, IfExists, export_to_ducklake};

use crate::args::{LakeArgs, OutputArgs, PartitionArgs};
use crate::partition::partition_options;
use crate::report::{group, human_bytes};
use crate::{Session, export_options, progress_hooks, sink_options, usage};

/// `--lake-table`, or the exported table's name (in schema `main`).
fn lake_name(source: &Source, lake: &LakeArgs) -> Result<(String, String)> {
    if let Some(name) = &lake.lake_table {
        let parsed = pgarrow::names::TableName::parse(name)?;
        return Ok((
            parsed.schema.unwrap_or_else(|| "main".to_owned()),
            parsed.name,
        ));
    }
    match source.as_table() {
        Some(table) => Ok(("main".to_owned(), table.name.clone())),
        None => Err(usage(
            "a query has no table name: give the lake table's (--lake-table [SCHEMA.]NAME)",
        )),
    }
}

#[derive(serde::Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    stats: &'a pgarrow::partition::PartitionedStats,
    format: &'static str,
    table: String,
    snapshot: i64,
    created: bool,
    files: usize,
    retried: usize,
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
    policies: &Policies,
) -> Result<()> {
    let Some(url) = &lake.ducklake else {
        return Err(usage("a lake table needs its catalog (--ducklake URL)"));
    };
    let files_only = [
        ("--output-dir", partition.output_dir.is_some()),
        ("--to", args.to.is_some()),
        ("--order-preserving", partition.order_preserving),
        ("--dry-run", args.dry_run),
    ];
    if let Some((flag, _)) = files_only.iter().find(|(_, given)| *given) {
        return Err(usage(&format!(
            "{flag} does not apply to a lake table: its files go under the lake's data path"
        )));
    }
    crate::output::check_format(
        pgarrow::io::Format::Parquet,
        &pgarrow::io::Output::Discard,
        args,
    )?;
    let (schema, table) = lake_name(source, lake)?;
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
    let options = export_options(args, policies);
    let popts = partition_options(partition);
    let stop = session.stop.clone();
    let (progress, hooks) = progress_hooks(args.quiet, None, &stop);
    let run = export_to_ducklake(config, source.clone(), &options, &popts, &target, hooks);
    let result = wait(rt, &stop, run);
    progress.finish_and_clear();
    let stats: DuckLakeStats = result?;
    let name = format!("{schema}.{table}");
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&JsonReport {
                stats: &stats.export,
                format: "ducklake",
                table: name.clone(),
                snapshot: stats.snapshot,
                created: stats.created,
                files: stats.files,
                retried: stats.retried,
            })?
        );
    }
    if !args.quiet {
        let export = &stats.export.export;
        eprintln!(
            "exported {} rows into DuckLake table {name}{} in {:.1} s: snapshot {}, {} {}, {}",
            group(stats.rows),
            if stats.created { " (created)" } else { "" },
            export.total.as_secs_f64(),
            stats.snapshot,
            group(stats.files as u64),
            if stats.files == 1 { "file" } else { "files" },
            human_bytes(export.written.unwrap_or(0)),
        );
        if !export.losses.is_empty() {
            eprintln!(
                "lossy conversions (counted; see the policy flags): {} values: {}",
                group(export.losses.total()),
                export.losses
            );
        }
    }
    Ok(())
}
