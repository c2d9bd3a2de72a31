//! `pgarrow copy`: a table or query of one PostgreSQL into a table of another, pipelined: the
//! export runs on its own thread (its own connection or connections) and hands whole batches
//! through a bounded channel to the load, which encodes and sends them on the target's
//! connection, in one transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;

use anyhow::{Context, Result, anyhow};
use arrow_array::RecordBatchReader;
use arrow_schema::ArrowError;
use pgarrow::partition::PartitionOptions;
use pgarrow::{DecodeOptions, ExportOptions, ExportStats, Source, blocking};

use crate::args::CopyArgs;
use crate::config_from;
use crate::import::{channel, load, load_options, report};
use crate::report::{group, human_bytes};

pub(crate) fn copy(rt: &tokio::runtime::Runtime, args: &CopyArgs) -> Result<()> {
    let options = load_options(&args.load.mode, args.load.key.as_deref(), args.load.create)?;
    let source = match (&args.table, &args.query) {
        (Some(t), None) => Source::table(t)?,
        (None, Some(q)) => Source::query(q.clone()),
        _ => unreachable!("clap requires exactly one of --table and --query"),
    };
    let into = args
        .into
        .clone()
        .or_else(|| args.table.clone())
        .expect("clap requires --into without --table");
    let from = config_from(args.from.as_deref()).context("the source (--from)")?;
    let to = match &args.to {
        Some(url) => config_from(Some(url)).context("the target (--to)")?,
        None => from.clone(),
    };
    let export_options = ExportOptions {
        decode: DecodeOptions::default(),
        policies: args.policies.policies(),
    };
    let partitions = args.partitions;
    let stop = Arc::new(AtomicBool::new(false));
    let (batches_tx, batches_rx) = channel();
    let (schema_tx, schema_rx) = sync_channel(1);
    let exporter = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("pgarrow-copy-export".into())
            .spawn(move || -> Option<ExportStats> {
                let mut check = || !stop.load(Ordering::Relaxed);
                let reader = match partitions {
                    1 => blocking::export_checked(from, source, &export_options, &mut check),
                    n => blocking::export_partitioned_checked(
                        from,
                        source,
                        &export_options,
                        &PartitionOptions::new(n),
                        &mut check,
                    ),
                };
                let mut reader = match reader {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = schema_tx.send(Err(e));
                        return None;
                    }
                };
                let _ = schema_tx.send(Ok(reader.schema()));
                loop {
                    match reader.next_batch_checked(&mut check) {
                        Ok(Some(batch)) => {
                            // The load ended (failed or stopped): dropping the reader cancels
                            // the source's query.
                            if batches_tx.send(Some(Ok(batch))).is_err() {
                                return None;
                            }
                        }
                        Ok(None) => {
                            let _ = batches_tx.send(None);
                            return Some(reader.stats());
                        }
                        Err(e) => {
                            let e = ArrowError::ExternalError(Box::new(SourceFailed(e)));
                            let _ = batches_tx.send(Some(Err(e)));
                            return None;
                        }
                    }
                }
            })?
    };
    let schema = match schema_rx.recv() {
        Ok(Ok(schema)) => schema,
        Ok(Err(e)) => {
            let _ = exporter.join();
            return Err(anyhow::Error::new(e).context("the source"));
        }
        Err(_) => return Err(anyhow!("the export thread ended without a word")),
    };
    let loaded = load(
        rt,
        &to,
        &into,
        &schema,
        batches_rx,
        &options,
        args.load.quiet,
    );
    if loaded.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    let exported = exporter
        .join()
        .map_err(|_| anyhow!("the export thread panicked"))?;
    let stats = loaded?;
    let from = match (&args.table, exported.as_ref()) {
        (Some(t), _) => t.clone(),
        (None, _) => "the query".to_owned(),
    };
    report(
        &stats,
        &from,
        &into,
        &args.load.mode,
        args.load.quiet,
        args.load.stats,
    );
    if let (true, Some(e)) = (args.load.stats, exported) {
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

/// The source's error, as the load's input reports it.
#[derive(Debug)]
struct SourceFailed(pgarrow::Error);

impl std::fmt::Display for SourceFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the source failed: {}", self.0)
    }
}

impl std::error::Error for SourceFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
