//! `pgarrow import` and the loading half of `copy`: the terminal around
//! [`pgarrow::io::Input`] and [`pgarrow::blocking::load_with`] (Parquet and Arrow IPC files, a
//! directory with a manifest, a Delta or Iceberg table, or an IPC stream on stdin, into a table in one
//! transaction).

use std::time::Instant;

use anyhow::Result;
use pgarrow::io::{Input, InputOptions};
use pgarrow::protocol::Config;
use pgarrow::{Hooks, LoadMode, LoadOptions, LoadProgress, LoadStats, Stop};
use pgarrow_lake::LakeName;

use crate::args::{ImportArgs, LoadArgs};
use crate::report::{group, human_bytes, progress_bar, rate_message};

/// The mode, key and `--create` of `import` and `copy`.
pub(crate) fn load_options(args: &LoadArgs) -> Result<LoadOptions> {
    let key = args
        .key
        .as_deref()
        .map(|k| k.split(',').map(|c| c.trim().to_owned()).collect());
    let mut policies = pgarrow::EncodePolicies::default();
    policies.nanoseconds = args.nanoseconds;
    Ok(LoadOptions::new(LoadMode::parse(args.mode.as_str(), key)?)
        .with_create(args.create)
        .with_create_nested(args.create_nested)
        .with_policies(policies))
}

pub(crate) fn import(stop: &Stop, config: &Config, args: &ImportArgs) -> Result<()> {
    let options = load_options(&args.load)?;
    let input_options = InputOptions::default().with_batch_rows(args.batch_rows);
    // Every file is opened (and its schema checked) before connecting.
    let lake = crate::lake::lake_name(
        args.ducklake.as_deref(),
        args.delta.as_deref(),
        args.iceberg.as_deref(),
        args.lake_table.as_deref(),
        &args.catalog_name,
        &args.iceberg_property,
    )?;
    let input = if lake != LakeName::default() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let storage = args.storage.options()?;
        let open = pgarrow_lake::open_lake(&lake, &storage, &input_options);
        pgarrow::blocking::wait(&rt, stop, open)?
    } else {
        let inputs = args
            .files
            .iter()
            .map(|f| args.storage.location(f))
            .collect::<pgarrow::Result<Vec<_>>>()?;
        Input::open(&inputs, &input_options)?
    };
    let from = input.name().to_owned();
    let (bar, hooks) = load_hooks(args.load.quiet, stop);
    let stats = pgarrow::blocking::load(config, &args.into, input, &options, hooks);
    bar.finish_and_clear();
    report(&stats?, &from, &args.into, &options.mode, &args.load);
    Ok(())
}

/// The progress line of a load (on a terminal), and hooks that update it and stop with
/// `stop`.
pub(crate) fn load_hooks(
    quiet: bool,
    stop: &Stop,
) -> (indicatif::ProgressBar, Hooks<'static, LoadProgress>) {
    let bar = progress_bar(quiet, None);
    bar.set_message("connecting...");
    let started = Instant::now();
    let shown = bar.clone();
    let hooks = Hooks::new()
        .with_stop(stop.clone())
        .on_progress(move |p: &LoadProgress| {
            shown.set_message(rate_message(p.rows, p.bytes, "sent", started.elapsed()));
        });
    (bar, hooks)
}

/// The summary line and, with `--stats`, where the time went.
pub(crate) fn report(stats: &LoadStats, from: &str, table: &str, mode: &LoadMode, args: &LoadArgs) {
    if !args.quiet {
        let secs = stats.total.as_secs_f64().max(1e-9);
        eprintln!(
            "loaded {} {} from {from} into {table} ({}) in {secs:.2} s: {} rows/s, {} of \
             COPY data",
            group(stats.rows),
            if stats.rows == 1 { "row" } else { "rows" },
            mode.name(),
            group((stats.rows as f64 / secs) as u64),
            human_bytes(stats.bytes)
        );
        lossy_line("loading", &stats.losses);
        if !stats.skipped_generated.is_empty() {
            eprintln!(
                "left out the input's values for generated columns (the server computes \
                 them): {}",
                stats.skipped_generated.join(", ")
            );
        }
    }
    if args.stats {
        eprintln!(
            "connect {:.3} s, describe {:.3} s, read {:.3} s, encode {:.3} s, send {:.3} s, \
             commit {:.3} s, total {:.3} s (reading and encoding overlap sending)",
            stats.connect.as_secs_f64(),
            stats.describe.as_secs_f64(),
            stats.read.as_secs_f64(),
            stats.encode.as_secs_f64(),
            stats.send.as_secs_f64(),
            stats.commit.as_secs_f64(),
            stats.total.as_secs_f64()
        );
    }
}

/// The lossy conversions a policy made, if any, on one line of stderr.
pub(crate) fn lossy_line(during: &str, losses: &pgarrow::policy::LossReport) {
    if !losses.is_empty() {
        eprintln!(
            "lossy conversions {during} (counted; see the policy flags): {} values: {losses}",
            group(losses.total())
        );
    }
}
