//! `pgarrow changes`: the terminal around [`pgarrow_changes::changes_to`] (a slot's changes
//! into file sets with a manifest, or Arrow IPC on standard output); `pgarrow apply`: around
//! [`pgarrow_changes::apply_changes`] (those files into another PostgreSQL's tables).

use std::time::Duration;

use anyhow::Result;
use pgarrow::Hooks;
use pgarrow::io::Format;
use pgarrow::protocol::Config;
use pgarrow_changes::{ApplyOptions, ApplyStats, ChangeOptions, ChangeTarget, ChangesProgress};

use crate::args::{ApplyArgs, ChangesArgs};
use crate::errors::{Session, usage};
use crate::report::{group, human_bytes};

pub(crate) fn changes(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    args: &ChangesArgs,
) -> Result<()> {
    let start = match &args.start {
        Some(start) => Some(
            start
                .parse()
                .map_err(|e| usage(&format!("--start {start:?}: {e}")))?,
        ),
        None => None,
    };
    let options = ChangeOptions::new(
        &args.slot,
        &args
            .publication
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .with_create_slot(args.create_slot)
    .with_start(start)
    .with_catch_up(args.catch_up)
    .with_values(args.values)
    .with_spill_dir(args.spill_dir.clone());
    if !(args.roll_seconds.is_finite() && args.roll_seconds >= 0.0) {
        return Err(usage("--roll-seconds takes a number of seconds, 0 or more"));
    }
    let format = args.format;
    if !matches!(format, Format::Parquet | Format::ArrowFile) {
        return Err(usage(&format!(
            "--to {format}: changes are written as parquet or arrow files (standard output, \
             -o -, is an Arrow stream)"
        )));
    }
    let target = if args.output == "-" {
        session.to_stdout = true;
        ChangeTarget::stdout()
    } else {
        ChangeTarget::dir(
            args.storage.location(std::path::Path::new(&args.output))?,
            format,
        )
    }
    .with_roll_rows(args.roll_rows.max(1))
    .with_roll_bytes(args.roll_bytes)
    .with_roll_interval(Duration::from_secs_f64(args.roll_seconds));
    let quiet = args.quiet;
    let stop = session.stop.clone();
    let hooks = Hooks::new()
        .with_stop(stop.clone())
        .on_progress(move |event: &ChangesProgress| {
            if !quiet {
                eprintln!("{event}");
            }
        });
    let stats = rt.block_on(pgarrow_changes::changes_to(
        config.clone(),
        options,
        &target,
        hooks,
    ))?;
    if !args.quiet {
        let why = if stop.is_stopped() {
            "stopped at a transaction boundary"
        } else if args.catch_up {
            "caught up"
        } else {
            "the server ended the stream"
        };
        eprintln!(
            "changes of slot {:?} from {} to {}: {} rows of {} table(s) in {} file(s), {}; {why}",
            args.slot,
            stats.start_lsn,
            stats.end_lsn,
            group(stats.rows),
            stats.tables.len(),
            stats.files,
            human_bytes(stats.bytes),
        );
    }
    Ok(())
}

/// `pgarrow apply`: a changes directory into the target's tables, a line per roll.
pub(crate) fn apply(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    args: &ApplyArgs,
) -> Result<()> {
    if args.deletes != pgarrow_lake::mirror::DeleteMode::default() {
        return Err(usage(
            "--deletes is how a lake table takes deletes: PostgreSQL deletes its rows itself",
        ));
    }
    if args.memory_limit.is_some() || args.spill_dir.is_some() {
        return Err(usage(
            "--memory-limit and --spill-dir bound a lake table's bookkeeping (--ducklake, \
             --delta, --iceberg): into PostgreSQL, each roll is applied by the server",
        ));
    }
    let mut options = ApplyOptions::default().try_with_state_table(&args.state_table)?;
    for spec in &args.table {
        let Some((source, target)) = spec.split_once('=') else {
            return Err(usage(&format!("--table {spec:?}: give SOURCE=TARGET")));
        };
        options = options.try_with_table(source.trim(), target.trim())?;
    }
    for spec in &args.key {
        let Some((table, columns)) = spec.split_once('=') else {
            return Err(usage(&format!(
                "--key {spec:?}: give TABLE=COLUMN[,COLUMN...]"
            )));
        };
        options = options.try_with_key(table.trim(), columns.split(',').map(str::trim))?;
    }
    let policies = options.policies.with_nanoseconds(args.nanoseconds);
    let options = options.with_policies(policies);
    let dir = args.storage.location(&args.dir)?;
    let quiet = args.quiet || args.json;
    let hooks = Hooks::new()
        .with_stop(session.stop.clone())
        .on_progress(move |s: &ApplyStats| {
            if !quiet {
                eprintln!(
                    "applied roll {} (checkpoint {}): {} changes so far",
                    s.rolls,
                    s.checkpoint_lsn,
                    group(s.changes)
                );
            }
        });
    let stats = rt.block_on(pgarrow_changes::apply_changes(
        config.clone(),
        &dir,
        &options,
        hooks,
    ))?;
    report_apply(args, &stats, false)
}

/// What an apply did: its statistics as JSON (`--json`), or a summary line; `lake` when it
/// went into lake tables.
pub(crate) fn report_apply(args: &ApplyArgs, stats: &ApplyStats, lake: bool) -> Result<()> {
    if args.json {
        println!("{}", serde_json::to_string(stats)?);
        return Ok(());
    }
    if args.quiet {
        return Ok(());
    }
    let (before, tables, holds) = match lake {
        true => (
            "the lake tables held already",
            "lake table(s)",
            "the tables hold",
        ),
        false => ("applied before", "table(s)", "the target has"),
    };
    let skipped = match stats.rolls_skipped {
        0 => String::new(),
        n => format!(" ({n} {before}, left alone)"),
    };
    eprintln!(
        "applied {} roll(s) of slot {:?} to {} {tables}{skipped}: {} changes, {} rows written, \
         {} deleted, {} truncate(s); {holds} every change up to {}",
        stats.rolls,
        stats.slot,
        stats.tables.len(),
        group(stats.changes),
        group(stats.upserted),
        group(stats.deleted),
        stats.truncates,
        if stats.checkpoint_lsn.is_empty() {
            "(none yet)"
        } else {
            &stats.checkpoint_lsn
        },
    );
    Ok(())
}
