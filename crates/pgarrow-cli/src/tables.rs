//! Several tables in one command (`--table` patterns, repeated `--table`, `--schema`): the
//! terminal around [`pgarrow::TablesExport`], which reads them in one snapshot into one file
//! per table in `--output-dir` and writes the manifest last.

use anyhow::Result;
use pgarrow::TablesExport;
use pgarrow::blocking::{block_on, wait};
use pgarrow::io::{DirTarget, MANIFEST_NAME};
use pgarrow::names::TablePattern;
use pgarrow::policy::Policies;
use pgarrow::protocol::Config;

use crate::args::{OutputArgs, PartitionArgs};
use crate::output::{dir_format, export_options, layout, sink_options};
use crate::report::{group, human_bytes, plural, render_schema};
use crate::{Session, progress_hooks};

/// Exports every table `patterns` match into `dir`.
pub(crate) fn export(
    rt: &tokio::runtime::Runtime,
    session: &Session,
    config: &Config,
    patterns: &[TablePattern],
    args: &OutputArgs,
    partition: &PartitionArgs,
    policies: &Policies,
) -> Result<()> {
    let Some(dir) = partition.output_dir.as_deref() else {
        return Err(crate::usage(
            "several tables (a pattern, a repeated --table or --schema) go to --output-dir \
             DIR, one file per table",
        ));
    };
    let target = DirTarget::new(args.storage.location(dir)?, dir_format(args, dir)?)
        .with_options(sink_options(args)?)
        .with_layout(layout(args));
    let options = export_options(args, policies).with_memory_limit(partition.memory_limit);
    let stop = &session.stop;
    let mut export = block_on(rt, stop, TablesExport::begin(config, patterns, target))?;
    if args.dry_run {
        return dry_run(rt, session, &mut export, policies);
    }
    while let Some(table) = export.next_table().cloned() {
        let expected = match crate::report::progress_shown(args.quiet) {
            true => {
                let client = export.client()?;
                block_on(rt, stop, async {
                    Ok(client.estimate_rows(&table.clone().into()).await)
                })?
            }
            false => None,
        };
        let (progress, hooks) = progress_hooks(args.quiet, expected, stop);
        progress.set_prefix(format!("{table}: "));
        let done = wait(rt, stop, export.export_next(&options, hooks));
        progress.finish_and_clear();
        if let (Some((table, stats)), false) = (done?, args.quiet) {
            eprintln!(
                "{table}: {} {} to {}",
                group(stats.rows),
                plural(stats.rows, "row", "rows"),
                export.target().table_file(&table)
            );
        }
    }
    let stats = block_on(rt, stop, export.finish())?;
    if args.json {
        println!("{}", serde_json::to_string(&stats)?);
    }
    if !args.quiet {
        let tables = stats.manifest.files.len() as u64;
        eprintln!(
            "exported {tables} {} ({} {}) to {} in {:.2} s, in one snapshot; read {} from the \
             server; manifest {}",
            plural(tables, "table", "tables"),
            group(stats.manifest.rows),
            plural(stats.manifest.rows, "row", "rows"),
            stats.output_dir,
            stats.total.as_secs_f64(),
            human_bytes(stats.copy_bytes),
            stats.manifest_path
        );
    }
    Ok(())
}

/// `--dry-run`: the tables, their files and their schemas.
fn dry_run(
    rt: &tokio::runtime::Runtime,
    session: &Session,
    export: &mut TablesExport,
    policies: &Policies,
) -> Result<()> {
    let tables = export.tables().to_vec();
    let target = export.target().clone();
    println!(
        "would export {} {} into {} ({}), in one snapshot, then {MANIFEST_NAME}:",
        tables.len(),
        plural(tables.len() as u64, "table", "tables"),
        target.dir,
        target.format
    );
    let client = export.client()?;
    for table in tables {
        let source = table.clone().into();
        let plan = block_on(rt, &session.stop, client.describe_with(&source, policies))?;
        println!(
            "\n{table} -> {}\n{}\n",
            target.dir.join(&target.table_file(&table)),
            plan.copy_sql
        );
        print!("{}", render_schema(&plan));
    }
    Ok(())
}
