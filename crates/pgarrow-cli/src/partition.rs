//! Partitioned exports on the command line: `export --partitions N` (one file, or one file per
//! part with `--output-dir`), `plan` (with `--hold`) and `export --plan FILE --part K`.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use pgarrow::blocking::{block_on, wait};
use pgarrow::io::DirTarget;
use pgarrow::io::Output;
use pgarrow::partition::{
    Coordinator, PartitionOptions, PartitionPlan, PartitionedStats, export_part_to_file,
    export_to_dir, export_to_file,
};
use pgarrow::policy::Policies;
use pgarrow::protocol::Config;
use pgarrow::{FileTarget, Source};

use crate::args::{OutputArgs, PartitionArgs, PlanArgs};
use crate::report::{group, human_bytes};
use crate::{Session, export_options, file_target, progress_hooks, report, sink_options};

pub(crate) fn partition_options(p: &PartitionArgs) -> PartitionOptions {
    let mut o = PartitionOptions::new(p.partitions)
        .with_snapshot(p.snapshot)
        .with_memory_limit(
            p.memory_limit
                .unwrap_or(pgarrow::partition::DEFAULT_MEMORY_LIMIT),
        )
        .with_order_preserving(p.order_preserving);
    if let Some(n) = p.parts {
        o = o.with_parts(n);
    }
    if let Some(by) = &p.partition_by {
        o = o.with_by(by.clone());
    }
    o
}

/// `export --partitions N`: into one file (or stdout, or nowhere), or one file per part.
pub(crate) fn export(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    source: &Source,
    args: &OutputArgs,
    partition: &PartitionArgs,
    policies: &Policies,
) -> Result<()> {
    let options = export_options(args, policies);
    let popts = partition_options(partition);
    let stop = session.stop.clone();
    let (progress, hooks) = progress_hooks(args.quiet, None, &stop);
    let (result, target) = match &partition.output_dir {
        Some(dir) => {
            if partition.order_preserving {
                return Err(crate::usage(
                    "--order-preserving orders one output file; with --output-dir each part \
                     has its own file (the manifest lists them in order)",
                ));
            }
            let format = crate::output::dir_format(args, dir)?;
            let location = args.storage.location(dir)?;
            let layout = crate::output::layout(args);
            let target = DirTarget::new(location.clone(), format)
                .with_options(sink_options(args)?)
                .with_layout(layout);
            target.options.validate()?;
            // Watching the stop itself, the export removes its files before it returns.
            let run = export_to_dir(config, source.clone(), &options, &popts, &target, hooks);
            let shown = FileTarget::new(format, location.output());
            (wait(rt, &stop, run), shown)
        }
        None => {
            let target = file_target(args)?;
            session.to_stdout = target.output == Output::Stdout;
            let run = export_to_file(config, source.clone(), &options, &popts, &target, hooks);
            (wait(rt, &stop, run), target)
        }
    };
    progress.finish_and_clear();
    let stats = result?;
    report(args, &stats, &stats.export, &target, Some(describe(&stats)))
}

/// The words a partitioned export adds to the report.
pub(crate) fn describe(stats: &PartitionedStats) -> String {
    let manifest = stats
        .manifest
        .as_ref()
        .map(|m| format!(", manifest {m}"))
        .unwrap_or_default();
    let capped = match stats.connections < stats.connections_wanted {
        true => format!(
            " (of {} asked: --memory-limit leaves room for {} Parquet encoders)",
            stats.connections_wanted, stats.connections
        ),
        false => String::new(),
    };
    format!(
        "{} connection{}{capped}, {} parts, at most {} in flight{manifest}",
        stats.connections,
        if stats.connections == 1 { "" } else { "s" },
        group(stats.parts.len() as u64),
        human_bytes(stats.in_flight_peak)
    )
}

/// `--json`'s object for one part of a plan: its statistics and its number.
#[derive(serde::Serialize)]
struct PartReport<'a> {
    #[serde(flatten)]
    stats: &'a pgarrow::ExportStats,
    part: usize,
}

/// `export --plan FILE --part K`.
pub(crate) fn export_part(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    plan_path: &Path,
    part: usize,
    args: &OutputArgs,
    policies: &Policies,
) -> Result<()> {
    let location = args.storage.location(plan_path)?;
    let bytes = location
        .read()
        .with_context(|| format!("cannot read the plan {location}"))?;
    let plan = PartitionPlan::from_json(&String::from_utf8_lossy(&bytes))
        .with_context(|| format!("in {location}"))?;
    plan.part(part)?;
    let target = file_target(args)?;
    session.to_stdout = target.output == Output::Stdout;
    let options = export_options(args, policies);
    let (progress, hooks) = progress_hooks(args.quiet, None, &session.stop);
    let run = export_part_to_file(config, &plan, part, &options, &target, hooks);
    let result = wait(rt, &session.stop, run);
    progress.finish_and_clear();
    let stats = result?;
    let document = PartReport {
        stats: &stats,
        part,
    };
    let words = format!("part {part} of {}", plan.parts.len());
    report(args, &document, &stats, &target, Some(words))
}

/// `pgarrow plan`: the plan as JSON; with `--hold`, the snapshot kept open after it.
pub(crate) fn plan(
    rt: &tokio::runtime::Runtime,
    session: &Session,
    config: &Config,
    source: &Source,
    args: &PlanArgs,
) -> Result<()> {
    let mut popts = PartitionOptions::new(args.partitions)
        .with_parts(args.partitions)
        .with_snapshot(args.snapshot);
    if let Some(by) = &args.partition_by {
        popts = popts.with_by(by.clone());
    }
    let options = pgarrow::ExportOptions::default().with_policies(args.policies.policies());
    let stop = &session.stop;
    let mut coordinator = block_on(
        rt,
        stop,
        Coordinator::begin(config, source.clone(), &options, &popts),
    )?;
    let json = coordinator.plan().to_json() + "\n";
    match &args.output {
        Some(path) => args
            .storage
            .location(path)?
            .write_atomically(json.as_bytes())?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(json.as_bytes())
                .and_then(|()| out.flush())
                .context("writing the plan to standard output")?;
        }
    }
    if !args.hold {
        rt.block_on(coordinator.close())?;
        return Ok(());
    }
    if args.output.is_none() {
        // Whoever reads the plan from a pipe sees it end here.
        close_stdout()?;
    }
    if !args.quiet {
        let snapshot = coordinator.plan().snapshot.as_deref().unwrap_or("(none)");
        eprintln!(
            "pgarrow: holding snapshot {snapshot} for {} parts; stop with SIGTERM or Ctrl-C{}",
            coordinator.plan().parts.len(),
            if stdin_is_pipe() {
                ", or by closing standard input"
            } else {
                ""
            }
        );
    }
    let held: pgarrow::Result<()> = rt.block_on(async {
        let parent = std::os::unix::process::parent_id();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut checks = 0u32;
        let stdin_closed = stdin_eof();
        let interrupted = stop.stopped();
        tokio::pin!(stdin_closed, interrupted);
        loop {
            tokio::select! {
                () = &mut interrupted => return Ok(()),
                () = &mut stdin_closed => return Ok(()),
                _ = tick.tick() => {
                    if std::os::unix::process::parent_id() != parent {
                        return Ok(());
                    }
                    checks += 1;
                    // The snapshot lives as long as the connection: say so when it is lost.
                    if checks.is_multiple_of(10) {
                        coordinator.check().await?;
                    }
                }
            }
        }
    });
    if let Err(e) = held {
        return Err(anyhow::Error::new(e).context(
            "the coordinating connection was lost: the plan's snapshot is gone, and parts \
             not yet exported cannot be",
        ));
    }
    rt.block_on(coordinator.close())?;
    Ok(())
}

/// Whether standard input is a pipe or a socket, whose end means "stop holding" (a terminal,
/// `/dev/null` or a file says nothing).
fn stdin_is_pipe() -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata("/dev/stdin")
        .map(|m| m.file_type().is_fifo() || m.file_type().is_socket())
        .unwrap_or(false)
}

/// Resolves when standard input, a pipe, reaches its end; never otherwise.
async fn stdin_eof() {
    if !stdin_is_pipe() {
        return std::future::pending().await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("pgarrow-stdin".into())
        .spawn(move || {
            use std::io::Read as _;
            let mut buf = [0u8; 512];
            let mut stdin = std::io::stdin().lock();
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
    match spawned {
        Ok(_) => {
            let _ = rx.await;
        }
        Err(_) => std::future::pending().await,
    }
}

/// Points standard output at `/dev/null`, closing the original (a pipe's reader then sees its
/// end while this process lives on).
#[allow(unsafe_code)]
fn close_stdout() -> Result<()> {
    use std::os::fd::AsRawFd as _;
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .context("cannot open /dev/null")?;
    // SAFETY: dup2 with two valid descriptors: `null` is open for the whole call, and 1 is
    // standard output, which Rust's stdout handle keeps using afterwards (now /dev/null).
    // Nothing else holds descriptor 1 as an owned handle that this could invalidate. The
    // `plan --hold` test in tests/cli.rs reads the plan through a pipe to its end this way.
    let rc = unsafe { libc::dup2(null.as_raw_fd(), 1) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).context("cannot close standard output");
    }
    Ok(())
}
