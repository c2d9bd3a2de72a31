//! `export --incremental-by COLUMN --state PATH`: one run of an incremental export, into
//! files of its own, the state replaced once they are written.

use anyhow::{Context, Result};
use pgarrow::blocking::{block_on, wait};
use pgarrow::incremental::{IncrementalOptions, IncrementalState};
use pgarrow::policy::Policies;
use pgarrow::protocol::Config;
use pgarrow::sink::Output;
use pgarrow::{Client, Source};

use crate::args::{IncrementalArgs, OutputArgs, PartitionArgs};
use crate::errors::usage;
use crate::output::{export_options, file_target};
use crate::{Session, output_name, progress_hooks, report};

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
    let previous = IncrementalState::load(state_path)?;
    let run = previous.as_ref().map_or(1, |s| s.run + 1);
    let mut run_args = args.clone();
    run_args.output = args.output.as_deref().map(|o| run_file(o, run));
    // Checked before connecting: a bad output fails first.
    let target = match partition.output_dir {
        None => Some(file_target(&run_args)?),
        Some(_) => None,
    };
    session.to_stdout = target.as_ref().is_some_and(|t| t.output == Output::Stdout);
    let mut options = IncrementalOptions::new(table.clone(), column.clone())
        .late_rows(incremental.late_rows)
        .restart(incremental.restart);
    if let Some(since) = &incremental.since {
        options = options.since(since.clone());
    }
    let export_options = export_options(args, policies);
    let stop = session.stop.clone();
    let mut client = block_on(rt, &stop, Client::connect(config))?;
    let begun = block_on(
        rt,
        &stop,
        client.begin_incremental(&options, previous.as_ref()),
    )
    .with_context(|| format!("the incremental state {}", state_path.display()))?;
    let (stats, target, more) = match partition.partitioned() {
        false => {
            let target = target.context("an output (checked above)")?;
            let (progress, hooks) = progress_hooks(args.quiet, None, &stop);
            let result = wait(
                rt,
                &stop,
                client.export_to_file(begun.source.clone(), &export_options, &target, hooks),
            );
            progress.finish_and_clear();
            (result?, target, None)
        }
        true => {
            // The parts read in this run's snapshot, shared while its transaction stays open;
            // the changes since the last run are a query, split on the cursor's values.
            let id = block_on(rt, &stop, client.share_incremental_snapshot())?;
            let mut split = partition.clone();
            if matches!(begun.source, Source::Query(_)) && split.partition_by.is_none() {
                split.partition_by = Some(column.clone());
            }
            if let Some(dir) = &split.output_dir {
                split.output_dir = Some(dir.join(format!("run-{run:06}")));
            }
            let (stats, target) = crate::partition::run(
                rt,
                session,
                config,
                &begun.source,
                &run_args,
                &split,
                policies,
                Some(id),
            )?;
            (
                stats.export.clone(),
                target,
                Some(crate::partition::describe(&stats)),
            )
        }
    };
    block_on(rt, &stop, client.end_incremental())?;
    drop(client);
    let files = match &target.output {
        Output::File(_) | Output::Remote(_) => vec![output_name(&target.output)],
        Output::Stdout | Output::Discard => Vec::new(),
    };
    let what = match (begun.first, begun.late_scan) {
        (true, _) => format!("run {run}: the first"),
        (false, false) => format!("run {run}: changes since run {}", run - 1),
        (false, true) => format!(
            "run {run}: changes since run {}, late commits scanned for",
            run - 1
        ),
    };
    let state = begun.finish(stats.rows, files);
    state
        .save(state_path)
        .with_context(|| "the run's files are written, but its state is not: rerun it")?;
    let what = match more {
        Some(more) => format!("{what}; {more}"),
        None => what,
    };
    report(args, &stats, &stats, &target, Some(what))
}

/// `orders.parquet` → `orders.run-000003.parquet` (the extension kept last); `-` stays.
fn run_file(output: &str, run: u64) -> String {
    if output == "-" {
        return output.to_owned();
    }
    let (dir, name) = match output.rfind('/') {
        Some(i) => output.split_at(i + 1),
        None => ("", output),
    };
    let tag = format!("run-{run:06}");
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{dir}{}.{tag}{}", &name[..i], &name[i..]),
        _ => format!("{dir}{name}.{tag}"),
    }
}

#[cfg(test)]
mod tests {
    use super::run_file;

    #[test]
    fn each_run_has_its_own_file() {
        assert_eq!(run_file("orders.parquet", 3), "orders.run-000003.parquet");
        assert_eq!(
            run_file("s3://b/x.y/orders.arrow", 12),
            "s3://b/x.y/orders.run-000012.arrow"
        );
        assert_eq!(run_file("out/orders", 1), "out/orders.run-000001");
        assert_eq!(run_file(".hidden", 1), ".hidden.run-000001");
        assert_eq!(run_file("-", 1), "-");
    }
}
