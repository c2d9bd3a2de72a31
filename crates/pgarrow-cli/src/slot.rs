//! `export --replication-slot NAME --create-slot`: the export read in the snapshot of a new
//! logical replication slot, so that streaming from the slot continues exactly after it.

use anyhow::Result;
use pgarrow::Source;
use pgarrow::blocking::block_on;
use pgarrow::policy::Policies;
use pgarrow::protocol::Config;
use pgarrow::slot::{ReplicationSlot, SlotInfo};
use serde::Serialize;

use crate::args::{OutputArgs, PartitionArgs, SlotArgs};
use crate::errors::usage;
use crate::partition::describe;
use crate::{Session, report};

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
    let stop = session.stop.clone();
    let slot = block_on(
        rt,
        &stop,
        ReplicationSlot::create(config, name, &slot_args.slot_plugin),
    )?;
    let info = slot.info().clone();
    if !args.quiet {
        eprintln!(
            "created replication slot {} ({}); its changes start at {}",
            info.slot_name, info.output_plugin, info.consistent_point
        );
    }
    // The slot's connection stays open and idle while the parts read in its snapshot.
    let exported = crate::partition::run(
        rt,
        session,
        config,
        source,
        args,
        partition,
        policies,
        Some(&info),
    );
    let released = block_on(rt, &stop, slot.release());
    let (stats, target) = exported?;
    released?;
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
    report(args, &document, &stats.export, &target, Some(words))
}
