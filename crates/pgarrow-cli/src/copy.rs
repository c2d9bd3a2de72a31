//! `pgarrow copy`: the terminal around [`pgarrow::blocking::copy`] (a table or query of one
//! PostgreSQL into a table of another, pipelined, in one transaction of the target).

use anyhow::{Context, Result};
use pgarrow::partition::PartitionOptions;
use pgarrow::{CopyOptions, ExportOptions, Source, Stop};

use crate::args::CopyArgs;
use crate::config_from;
use crate::import::{load_hooks, load_options, lossy_line, report};
use crate::report::{group, human_bytes};

pub(crate) fn copy(stop: &Stop, args: &CopyArgs) -> Result<()> {
    let load = load_options(&args.load)?;
    let (source, into) = match (&args.table, &args.query, &args.into) {
        (Some(t), None, into) => (Source::table(t)?, into.clone().unwrap_or_else(|| t.clone())),
        (None, Some(q), Some(into)) => (Source::query(q.clone()), into.clone()),
        _ => return Err(crate::usage("give --table, or --query with --into")),
    };
    let from = config_from(args.from.as_deref()).context("the source (--from)")?;
    let to = match &args.to {
        Some(url) => config_from(Some(url)).context("the target (--to)")?,
        None => from.clone(),
    };
    let options = CopyOptions::new(load)
        .with_export(ExportOptions::default().with_policies(copy_policies(&args.policies)))
        .with_partitions((args.partitions > 1).then(|| PartitionOptions::new(args.partitions)))
        .with_domains(args.domains);
    let (bar, hooks) = load_hooks(args.load.quiet, stop);
    let stats = pgarrow::blocking::copy(from, source, to, &into, &options, hooks);
    bar.finish_and_clear();
    let stats = stats?;
    let from = args.table.as_deref().unwrap_or("the query");
    if !args.load.quiet {
        lossy_line("reading the source", &stats.source.losses);
        if !stats.created_types.is_empty() {
            eprintln!(
                "created in the target, as the source defines them: {}",
                stats.created_types.join(", ")
            );
        }
        for column in &stats.domains_as_base {
            eprintln!(
                "created with its domain's base type (--domains base; the domain's DEFAULT and \
                 CHECKs are not copied): {column}"
            );
        }
    }
    report(&stats.load, from, &into, &options.load.mode, &args.load);
    if args.load.stats {
        let e = &stats.source;
        eprintln!(
            "source: {} rows, {} of COPY data read in {:.3} s (decoding {:.3} s)",
            group(e.rows),
            human_bytes(e.bytes),
            e.total.as_secs_f64(),
            e.decode.as_secs_f64()
        );
    }
    Ok(())
}

/// The policies of the copy's source: arrays as the server's text unless `--array-shape`
/// says otherwise (their bounds and depths then arrive exactly).
fn copy_policies(args: &crate::args::PolicyArgs) -> pgarrow::policy::Policies {
    let mut policies = args.policies();
    if args.array_shape.is_none() {
        policies.array_shape = pgarrow::policy::ArrayShape::Text;
    }
    policies
}
