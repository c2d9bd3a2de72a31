//! Several tables in one command (`--table` patterns, repeated `--table`, `--schema`): one
//! file per table in `--output-dir`, all read in one snapshot (one `REPEATABLE READ, READ
//! ONLY` transaction on one connection), then `_manifest.json` naming the snapshot, the WAL
//! position and each file's table and rows.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use pgarrow::policy::Policies;
use pgarrow::protocol::Config;
use pgarrow::sink::{Format, Output};
use pgarrow::{Client, ExportStats, FileTarget};
use serde_json::json;

use crate::args::OutputArgs;
use crate::errors::Interrupted;
use crate::names::{TableName, TablePattern, resolve};
use crate::output::{dir_format, export_options, sink_options};
use crate::partition::write_atomically;
use crate::report::{group, human_bytes, plural, render_schema};
use crate::{block_on_interruptible, estimate_rows, progress_hooks};

/// The manifest's file name, as partitioned exports name theirs.
const MANIFEST: &str = pgarrow::partition::MANIFEST_NAME;

/// One exported table.
struct Written {
    table: TableName,
    file: String,
    stats: ExportStats,
}

/// Exports every table `patterns` match into `dir`.
pub(crate) fn export(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    patterns: &[TablePattern],
    dir: &Path,
    args: &OutputArgs,
    policies: &Policies,
) -> Result<()> {
    let format = dir_format(args, dir)?;
    let options = sink_options(args)?;
    options.validate()?;
    let export_options = export_options(args, policies);
    let started = Instant::now();

    let (mut client, snapshot, lsn, tables) = block_on_interruptible(rt, async {
        let mut client = crate::connect(config).await?;
        let conn = client.connection();
        let begin = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
        conn.simple_query(begin).await?;
        // The snapshot's name is for the manifest only (one connection reads every table): a
        // server that cannot export one (a standby before PostgreSQL 10) still exports, in a
        // transaction begun again.
        let snapshot = match conn
            .simple_query("SELECT pg_catalog.pg_export_snapshot()")
            .await
        {
            Ok(rows) => first_value(&rows),
            Err(_) => {
                conn.simple_query("ROLLBACK").await?;
                conn.simple_query(begin).await?;
                None
            }
        };
        let lsn = conn
            .simple_query(
                "SELECT (CASE WHEN pg_catalog.pg_is_in_recovery() THEN \
                 pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_lsn() \
                 END)::text",
            )
            .await?;
        let tables = resolve(conn, patterns).await?;
        Ok((client, snapshot, first_value(&lsn), tables))
    })?;

    check_file_names(&tables, format)?;
    if args.dry_run {
        return dry_run(rt, &mut client, &tables, dir, format, policies);
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    // An old manifest would vouch for files this run replaces: it goes first, and the new
    // one comes last.
    let manifest = dir.join(MANIFEST);
    match std::fs::remove_file(&manifest) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove {}", manifest.display()));
        }
        _ => {}
    }

    let mut written: Vec<Written> = Vec::new();
    for table in &tables {
        let file = file_name(table, format);
        let target = FileTarget {
            format,
            output: Output::File(dir.join(&file)),
            options: options.clone(),
        };
        let expected = match crate::report::progress_shown(args.quiet) {
            true => rt.block_on(estimate_rows(&mut client, &table.source())),
            false => None,
        };
        let (progress, hooks) = progress_hooks(args.quiet, expected);
        progress.set_prefix(format!("{}: ", table.display()));
        let result =
            rt.block_on(client.export_to_file(table.source(), &export_options, &target, hooks));
        progress.finish_and_clear();
        match result {
            Ok(stats) => {
                if !args.quiet {
                    eprintln!(
                        "{}: {} {} to {file}",
                        table.display(),
                        group(stats.rows),
                        plural(stats.rows, "row", "rows")
                    );
                }
                written.push(Written {
                    table: table.clone(),
                    file,
                    stats,
                });
            }
            Err(e) => {
                for w in &written {
                    let _ = std::fs::remove_file(dir.join(&w.file));
                }
                if e.is_cancelled() {
                    return Err(Interrupted::nothing_written().into());
                }
                return Err(anyhow::Error::new(e).context(format!(
                    "exporting {} (the files of this run were removed)",
                    table.display()
                )));
            }
        }
    }
    let _ = rt.block_on(client.close());

    let rows: u64 = written.iter().map(|w| w.stats.rows).sum();
    let value = json!({
        "pgarrow_manifest": 1,
        "pgarrow_version": env!("CARGO_PKG_VERSION"),
        "snapshot": snapshot,
        "wal_lsn": lsn,
        "format": format.to_string(),
        "rows": rows,
        "tables": written.iter().map(|w| json!({
            "table": w.table.display(),
            "schema": w.table.schema,
            "name": w.table.name,
            "file": w.file,
            "rows": w.stats.rows,
            "bytes": w.stats.written,
        })).collect::<Vec<_>>(),
    });
    write_atomically(&manifest, &(serde_json::to_string_pretty(&value)? + "\n"))?;

    let elapsed = started.elapsed().as_secs_f64();
    let copy_bytes: u64 = written.iter().map(|w| w.stats.bytes).sum();
    if args.json {
        let mut summary = value;
        summary["output_dir"] = json!(dir.display().to_string());
        summary["manifest"] = json!(manifest.display().to_string());
        summary["seconds"] = json!(elapsed);
        summary["copy_bytes"] = json!(copy_bytes);
        println!("{summary}");
    }
    if !args.quiet {
        eprintln!(
            "exported {} {} ({} {}) to {} in {elapsed:.2} s, in one snapshot; read {} from the \
             server; manifest {}",
            written.len(),
            plural(written.len() as u64, "table", "tables"),
            group(rows),
            plural(rows, "row", "rows"),
            dir.display(),
            human_bytes(copy_bytes),
            manifest.display()
        );
    }
    Ok(())
}

/// `--dry-run`: the tables, their files and their schemas.
fn dry_run(
    rt: &tokio::runtime::Runtime,
    client: &mut Client,
    tables: &[TableName],
    dir: &Path,
    format: Format,
    policies: &Policies,
) -> Result<()> {
    println!(
        "would export {} {} into {} ({format}), in one snapshot, then {MANIFEST}:",
        tables.len(),
        plural(tables.len() as u64, "table", "tables"),
        dir.display()
    );
    for table in tables {
        let plan = block_on_interruptible(rt, async {
            Ok(client.plan_with(&table.source(), policies).await?)
        })?;
        println!(
            "\n{} -> {}\n{}\n",
            table.display(),
            dir.join(file_name(table, format)).display(),
            plan.copy_sql
        );
        print!("{}", render_schema(&plan));
    }
    Ok(())
}

/// The first column of the first row.
fn first_value(rows: &[pgarrow::protocol::TextRow]) -> Option<String> {
    rows.first().and_then(|r| r.first().cloned().flatten())
}

/// Refuses tables whose files would have one name (`"a.b".c` and `a."b.c"`; `"T"` and `t`
/// on a file system that ignores case), before anything is written.
fn check_file_names(tables: &[TableName], format: Format) -> Result<()> {
    let mut seen: std::collections::HashMap<String, &TableName> = Default::default();
    for table in tables {
        let name = file_name(table, format).to_lowercase();
        if let Some(other) = seen.insert(name, table) {
            anyhow::bail!(
                "{} and {} would be written to files of the same name ({}): export them \
                 separately",
                other.display(),
                table.display(),
                file_name(table, format)
            );
        }
    }
    Ok(())
}

/// `schema.table.parquet`: named after the table, with no path separator in it.
fn file_name(table: &TableName, format: Format) -> String {
    let name = format!("{}.{}.{}", table.schema, table.name, format.extension());
    name.replace(['/', '\0'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_after_their_tables() {
        let t = TableName {
            schema: "s".into(),
            name: "a/b".into(),
        };
        assert_eq!(file_name(&t, Format::Parquet), "s.a_b.parquet");
        assert_eq!(file_name(&t, Format::ArrowStream), "s.a_b.arrows");
        let table = |schema: &str, name: &str| TableName {
            schema: schema.into(),
            name: name.into(),
        };
        let clash = [table("a.b", "c"), table("a", "b.c")];
        assert!(check_file_names(&clash, Format::Parquet).is_err());
        let case = [table("s", "T"), table("s", "t")];
        assert!(check_file_names(&case, Format::Parquet).is_err());
        let fine = [table("s", "a"), table("s", "b")];
        assert!(check_file_names(&fine, Format::Parquet).is_ok());
    }
}
