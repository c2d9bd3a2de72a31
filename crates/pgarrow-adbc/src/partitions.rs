//! `ExecutePartitions` and `ReadPartition`: parts of one exported snapshot, read on any
//! connection in any process while the snapshot is held.
//!
//! Executing plans the parts with pgarrow's [`Coordinator`] (one `REPEATABLE READ` transaction
//! whose snapshot is exported) and hands it to a [`Holder`] on a thread of its own, which keeps
//! the snapshot until every part was read (and `pgarrow.linger` seconds more) or no part was
//! read for `pgarrow.hold_timeout` seconds. Each partition's descriptor is a small JSON
//! document: the plan trimmed to that part, and the statement's `pgarrow.*` options, so that
//! any connection reads it with the same types. It names no password: the reading connection
//! brings its own credentials.

use adbc_core::PartitionedResult;
use adbc_core::error::Status;
use pgarrow::partition::{Coordinator, Holder, PartRead, PartitionOptions, PartitionPlan};
use pgarrow::protocol::Config;
use pgarrow::{Source, partition};
use serde::{Deserialize, Serialize};

use crate::error::{OrAdbc, Result, error};
use crate::reader::ExportReader;
use crate::session::Session;
use crate::settings::Settings;

/// The version of the descriptor's format.
const DESCRIPTOR_VERSION: u32 = 1;

/// One partition, as `ExecutePartitions` hands it out.
#[derive(Debug, Serialize, Deserialize)]
struct Descriptor {
    /// [`DESCRIPTOR_VERSION`].
    pgarrow_partition: u32,
    /// The statement's `pgarrow.*` options that shape batches and types (without the
    /// prefix).
    options: Vec<(String, String)>,
    /// The plan, with this part alone.
    plan: PartitionPlan,
}

/// Plans `sql`'s parts in one snapshot, held on a thread of its own.
pub(crate) fn execute(
    session: &Session,
    sql: &str,
    settings: &Settings,
) -> Result<PartitionedResult> {
    if settings.partitions > 1 && settings.partition_by.is_none() {
        // A query has no blocks of its own to split: it would be one partition, which is not
        // what was asked for.
        return Err(error(
            Status::InvalidArguments,
            format!(
                "pgarrow: a query splits into partitions by a column of its result: set \
                 pgarrow.partition_by to an integer, date or timestamp column (its range is \
                 divided among the {} partitions pgarrow.partitions asks for), or set \
                 pgarrow.partitions to 1 for one partition",
                settings.partitions
            ),
        ));
    }
    let runtime = pgarrow::blocking::runtime().or_adbc()?;
    let config: Config = session.config().clone();
    let mut options = PartitionOptions::new(settings.partitions).with_parts(settings.partitions);
    if let Some(column) = &settings.partition_by {
        options = options.with_by(column.clone());
    }
    let source = Source::query(sql);
    let holder = runtime
        .block_on(async {
            let coordinator =
                Coordinator::begin(config.clone(), source, &settings.export, &options).await?;
            Holder::start(coordinator, config).await
        })
        .or_adbc()?;
    let plan = holder.plan().clone();
    let (idle, linger) = (settings.hold_timeout, settings.linger);
    std::thread::Builder::new()
        .name("pgarrow-adbc-hold".into())
        .spawn(move || {
            // Its end (every part read, or the idle time) releases the snapshot; an error
            // there (the coordinating backend terminated) shows in the readers' errors.
            let _ = runtime.block_on(holder.wait(idle, linger));
        })
        .map_err(|e| {
            error(
                Status::Internal,
                format!("pgarrow: cannot start the thread that holds the snapshot: {e}"),
            )
        })?;
    let partitions = plan
        .parts
        .iter()
        .map(|part| {
            let mut one = plan.clone();
            one.parts.retain(|p| p.part == part.part);
            let descriptor = Descriptor {
                pgarrow_partition: DESCRIPTOR_VERSION,
                options: settings.given.clone(),
                plan: one,
            };
            serde_json::to_vec(&descriptor).map_err(|e| {
                error(
                    Status::Internal,
                    format!("pgarrow: cannot write a partition descriptor: {e}"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(PartitionedResult {
        partitions,
        schema: plan.schema.clone(),
        rows_affected: -1,
    })
}

/// Reads the partition `descriptor` describes, on a new connection made with `config`.
pub(crate) fn read(config: &Config, descriptor: &[u8]) -> Result<ExportReader> {
    let descriptor: Descriptor = serde_json::from_slice(descriptor).map_err(|e| {
        error(
            Status::InvalidArguments,
            format!("pgarrow: not a pgarrow partition descriptor: {e}"),
        )
    })?;
    if descriptor.pgarrow_partition != DESCRIPTOR_VERSION {
        return Err(error(
            Status::InvalidArguments,
            format!(
                "pgarrow: partition descriptor version {} (this driver reads version \
                 {DESCRIPTOR_VERSION})",
                descriptor.pgarrow_partition
            ),
        ));
    }
    let mut settings = Settings::default();
    for (name, value) in &descriptor.options {
        settings.set_text(name, value).map_err(|why| {
            error(
                Status::InvalidArguments,
                format!("pgarrow: the partition descriptor's option {name}: {why}"),
            )
        })?;
    }
    let plan = descriptor.plan;
    let Some(index) = plan.parts.first().map(|p| p.part) else {
        return Err(error(
            Status::InvalidArguments,
            "pgarrow: the partition descriptor names no part",
        ));
    };
    let runtime = pgarrow::blocking::runtime().or_adbc()?;
    let export = runtime
        .block_on(partition::export_part_with(
            config.clone(),
            &plan,
            index,
            &settings.export,
            &PartRead::new(),
        ))
        .or_adbc()?;
    ExportReader::owned(export, runtime).prefetched()
}
