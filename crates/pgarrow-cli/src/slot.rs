//! `export --replication-slot NAME --create-slot`: the export read in the snapshot of a new
//! logical replication slot, so that streaming from the slot continues exactly after it.

use anyhow::Result;
use pgarrow::Source;
use pgarrow::blocking::wait;
use pgarrow::io::Output;
use pgarrow::policy::Policies;
use pgarrow::protocol::Config;
use pgarrow_changes::slot::{SlotInfo, export_in_new_slot};
use serde::Serialize;

use crate::args::{OutputArgs, PartitionArgs, SlotArgs};
use crate::errors::usage;
use crate::output::{export_options, run_target};
use crate::partition::{describe, partition_options};
use crate::{Session, progress_hooks, report};

/// `--json`'s document: the export's statistics and the slot.
#[derive(Serialize)]
struct SlotReport<'a, S: Serialize> {
    #[serde(flatten)]
    stats: &'a S,
    replication_slot: &'a SlotInfo,
}

/// Creates the slot, exports in its snapshot (one connection or several), then closes the
/// slot's connection (the slot stays).
#[allow(clippy::too_many_arguments)]
pub(crate) fn export(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    source: &Source,
    args: &OutputArgs,
    partition: &PartitionArgs,
    slot_args: &SlotArgs,
    policies: &Policies,
) -> Result<()> {
    let Some(name) = &slot_args.replication_slot else {
        return Err(usage("--create-slot needs --replication-slot NAME"));
    };
    if args.dry_run {
        return Err(usage("--dry-run creates no replication slot"));
    }
    let dir = partition.output_dir.as_ref().map(|d| d.to_string_lossy());
    let (target, shown) = run_target(args, dir.as_deref(), args.output.clone())?;
    session.to_stdout = shown.output == Output::Stdout;
    let stop = session.stop.clone();
    let (options, partitions) = (export_options(args, policies), partition_options(partition));
    let (progress, hooks) = progress_hooks(args.quiet, None, &stop);
    let run = export_in_new_slot(
        config,
        name,
        &slot_args.slot_plugin,
        source.clone(),
        &options,
        &partitions,
        &target,
        hooks,
    );
    let result = wait(rt, &stop, run);
    progress.finish_and_clear();
    let (stats, info) = result?;
    if !args.quiet {
        eprintln!(
            "created replication slot {} ({}); its changes start at {}",
            info.slot_name, info.output_plugin, info.consistent_point
        );
    }
    let words = format!(
        "{}; replication slot {} continues from {}",
        describe(&stats),
        info.slot_name,
        info.consistent_point
    );
    let document = SlotReport {
        stats: &stats,
        replication_slot: &info,
    };
    report(args, &document, &stats.export, &shown, Some(words))
}
