//! `pgarrow changes`: the terminal around [`pgarrow::changes::changes_to`] (a slot's changes
//! into file sets with a manifest, or Arrow IPC on standard output).

use std::time::Duration;

use anyhow::Result;
use pgarrow::changes::{ChangeOptions, ChangeTarget, ValueFormat};
use pgarrow::protocol::Config;
use pgarrow::sink::Format;

use crate::args::ChangesArgs;
use crate::errors::{Session, usage};
use crate::report::{group, human_bytes};

pub(crate) fn changes(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    config: &Config,
    args: &ChangesArgs,
) -> Result<()> {
    let mut options = ChangeOptions::new(
        &args.slot,
        &args
            .publication
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    options.create_slot = args.create_slot;
    if let Some(start) = &args.start {
        options.start = Some(
            start
                .parse()
                .map_err(|e| usage(&format!("--start {start:?}: {e}")))?,
        );
    }
    options.catch_up = args.catch_up;
    options.values = match args.values.as_str() {
        "binary" => ValueFormat::Binary,
        "text" => ValueFormat::Text,
        _ => ValueFormat::Auto,
    };
    if !(args.roll_seconds.is_finite() && args.roll_seconds >= 0.0) {
        return Err(usage("--roll-seconds takes a number of seconds, 0 or more"));
    }
    let format = match args.format.as_str() {
        "arrow" => Format::ArrowFile,
        _ => Format::Parquet,
    };
    let mut target = if args.output == "-" {
        session.to_stdout = true;
        ChangeTarget::stdout()
    } else {
        ChangeTarget::dir(
            args.storage.location(std::path::Path::new(&args.output))?,
            format,
        )
    };
    target.roll_rows = args.roll_rows.max(1);
    target.roll_bytes = args.roll_bytes;
    target.roll_interval = Duration::from_secs_f64(args.roll_seconds);
    let quiet = args.quiet;
    let mut notify = move |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let stop = session.stop.clone();
    let stats = rt.block_on(pgarrow::changes::changes_to(
        config.clone(),
        options,
        &target,
        stop.clone(),
        &mut notify,
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
