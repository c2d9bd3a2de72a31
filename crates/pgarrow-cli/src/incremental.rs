//! `export --incremental-by COLUMN --state PATH`: one run of an incremental export, into
//! files of its own, the state replaced once they are written.

use anyhow::{Context, Result};
use pgarrow::Source;
use pgarrow::blocking::wait;
use pgarrow::incremental::{IncrementalOptions, IncrementalState, export_run, next_run, run_name};
use pgarrow::io::Output;
use pgarrow::policy::Policies;
use pgarrow::protocol::Config;

use crate::args::{IncrementalArgs, OutputArgs, PartitionArgs};
use crate::errors::usage;
use crate::output::{export_options, run_target};
use crate::partition::{describe, partition_options};
use crate::{Session, progress_hooks, report};

/// One run, by `args.incremental_by`, of the table `source` names.
#[allow(clippy::too_many_arguments)]
pub(crate) fn export(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    source: &Source,
    args: &OutputArgs,
    partition: &PartitionArgs,
    incremental: &IncrementalArgs,
    policies: &Policies,
) -> Result<()> {
    let (Some(column), Some(state_path)) = (&incremental.incremental_by, &incremental.state) else {
        return Err(usage("--incremental-by needs --state PATH"));
    };
    let Some(table) = source.as_table() else {
        return Err(usage(
            "--incremental-by reads one --table (without --columns, --where or --limit): it \
             follows the table's row versions",
        ));
    };
    if args.dry_run {
        return Err(usage(
            "--dry-run shows an export, not an incremental run: a run depends on the state",
        ));
    }
    // A path or an object URL, as -o takes.
    let state_at = args.storage.location(state_path)?;
    let previous = IncrementalState::load(&state_at)?;
    let run = next_run(previous.as_ref());
    // The run's own output, checked before connecting: a bad one fails first.
    let dir = partition
        .output_dir
        .as_ref()
        .map(|d| run_name(&d.to_string_lossy(), run, true));
    let file = args.output.as_deref().map(|o| run_name(o, run, false));
    let (target, shown) = run_target(args, dir.as_deref(), file)?;
    session.to_stdout = shown.output == Output::Stdout;
    let mut options = IncrementalOptions::new(table.clone(), column.clone())
        .with_late_rows(incremental.late_rows)
        .with_restart(incremental.restart);
    if let Some(since) = &incremental.since {
        options = options.with_since(since.clone());
    }
    let partitions = partition
        .partitioned()
        .then(|| partition_options(partition));
    let export_options = export_options(args, policies);
    let stop = session.stop.clone();
    let (progress, hooks) = progress_hooks(args.quiet, None, &stop);
    let result = wait(
        rt,
        &stop,
        export_run(
            config,
            &options,
            previous.as_ref(),
            &export_options,
            partitions.as_ref(),
            &target,
            hooks,
        ),
    );
    progress.finish_and_clear();
    let done = result.with_context(|| format!("incremental state {state_at}"))?;
    done.state
        .save(&state_at)
        .context("the run's output is written, but its state is not: rerun it")?;
    let mut what = match (done.first, done.late_scan) {
        (true, _) => format!("run {run}: the first"),
        (false, false) => format!("run {run}: changes since run {}", run - 1),
        (false, true) => format!(
            "run {run}: changes since run {}, late commits scanned for",
            run - 1
        ),
    };
    if let Some(parts) = &done.parts {
        what.push_str(&format!("; {}", describe(parts)));
    }
    report(args, &done.stats, &done.stats, &shown, Some(what))
}
