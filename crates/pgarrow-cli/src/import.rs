//! `pgarrow import`: Parquet and Arrow IPC files (or an IPC stream on stdin) into a table, in
//! one transaction.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use pgarrow::protocol::Config;
use pgarrow::{Client, LoadHooks, LoadMode, LoadOptions, LoadStats};

use crate::args::ImportArgs;
use crate::report::{group, human_bytes, progress_bar, rate_message};
use crate::{Interrupted, interrupt_signal};

/// One input, opened: its schema and its batches.
type Input = (
    SchemaRef,
    Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>,
);

/// Opens `path` by its extension (`.parquet`, `.arrow`/`.feather`, `.arrows`), or stdin for `-`
/// (an IPC stream).
fn open(path: &Path, batch_rows: usize) -> Result<Input> {
    let shown = path.display();
    if path.as_os_str() == "-" {
        let reader =
            arrow_ipc::reader::StreamReader::try_new(BufReader::new(std::io::stdin()), None)
                .context("reading an Arrow IPC stream from standard input")?;
        return Ok((reader.schema(), Box::new(reader)));
    }
    let file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("parquet") => {
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .with_context(|| format!("{shown} is not a Parquet file"))?
                    .with_batch_size(batch_rows)
                    .build()
                    .with_context(|| format!("reading {shown}"))?;
            Ok((reader.schema(), Box::new(reader)))
        }
        Some("arrow" | "feather" | "ipc") => {
            let reader = arrow_ipc::reader::FileReader::try_new(BufReader::new(file), None)
                .with_context(|| format!("{shown} is not an Arrow IPC file"))?;
            Ok((reader.schema(), Box::new(reader)))
        }
        Some("arrows") => {
            let reader = arrow_ipc::reader::StreamReader::try_new(BufReader::new(file), None)
                .with_context(|| format!("{shown} is not an Arrow IPC stream"))?;
            Ok((reader.schema(), Box::new(reader)))
        }
        _ => bail!(
            "cannot tell the format of {shown}: use a .parquet, .arrow (IPC file) or .arrows \
             (IPC stream) file, or - for an IPC stream on standard input"
        ),
    }
}

/// The fields that must agree between files: names and types (metadata may differ).
fn same_columns(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// The mode, key and `--create` of `import` and `copy`.
pub(crate) fn load_options(mode: &str, key: Option<&str>, create: bool) -> Result<LoadOptions> {
    let mode = match (mode, key) {
        ("append", None) => LoadMode::Append,
        ("replace", None) => LoadMode::Replace,
        ("upsert", Some(key)) => LoadMode::Upsert {
            key: key.split(',').map(|k| k.trim().to_owned()).collect(),
        },
        ("upsert", None) => bail!("--mode upsert needs --key COLUMN[,COLUMN...]"),
        ("append" | "replace", Some(_)) => bail!("--key applies to --mode upsert only"),
        (other, _) => bail!("unknown --mode {other:?}: expected append, replace or upsert"),
    };
    Ok(LoadOptions::new(mode).with_create(create))
}

pub(crate) fn import(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    args: &ImportArgs,
) -> Result<()> {
    let options = load_options(&args.load.mode, args.load.key.as_deref(), args.load.create)?;
    if args.files.iter().filter(|f| f.as_os_str() == "-").count() > 0 && args.files.len() > 1 {
        bail!("- (standard input) cannot be combined with files");
    }
    // Every file is opened (and its schema checked) before connecting.
    let mut inputs = Vec::with_capacity(args.files.len());
    for path in &args.files {
        inputs.push((path.clone(), open(path, args.batch_rows)?));
    }
    let schema = inputs[0].1.0.clone();
    for (path, (s, _)) in &inputs[1..] {
        if !same_columns(&schema, s) {
            bail!(
                "{} does not have the columns of {}: {} against {}",
                path.display(),
                args.files[0].display(),
                columns(s),
                columns(&schema)
            );
        }
    }
    let names: Vec<PathBuf> = inputs.iter().map(|(p, _)| p.clone()).collect();
    let from = match names.len() {
        1 => names[0].display().to_string(),
        n => format!("{n} files"),
    };
    // The files are read on their own thread, so that a stalled input (a pipe) cannot keep
    // Ctrl-C from stopping the load.
    let (tx, input) = channel();
    std::thread::Builder::new()
        .name("pgarrow-import-read".into())
        .spawn(move || {
            for batch in inputs.into_iter().flat_map(|(_, (_, batches))| batches) {
                if tx.send(Some(batch)).is_err() {
                    return;
                }
            }
            let _ = tx.send(None);
        })?;
    let stats = load(
        rt,
        config,
        &args.into,
        &schema,
        input,
        &options,
        args.load.quiet,
    )?;
    report(
        &stats,
        &from,
        &args.into,
        &args.load.mode,
        args.load.quiet,
        args.load.stats,
    );
    Ok(())
}

/// Batches in flight between the reading thread and the load.
const IN_FLIGHT: usize = 2;

/// The sending side of a load's input: `Some` batch (or the input's error), then `None` at
/// the end. A sender dropped without `None` is an input that broke off (a thread that died).
pub(crate) type InputSender = SyncSender<Option<Result<RecordBatch, ArrowError>>>;

/// The receiving side, for [`load`].
pub(crate) type InputReceiver = Receiver<Option<Result<RecordBatch, ArrowError>>>;

/// A bounded channel for a load's input.
pub(crate) fn channel() -> (InputSender, InputReceiver) {
    sync_channel(IN_FLIGHT)
}

/// The load's view of its input: waits for batches, but gives up with an error when Ctrl-C
/// was pressed meanwhile (the load then fails, sending CopyFail).
struct Stoppable {
    input: InputReceiver,
    stop: Arc<AtomicBool>,
    ended: bool,
}

impl Iterator for Stoppable {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        loop {
            if self.stop.load(Ordering::Relaxed) {
                self.ended = true;
                return Some(Err(ArrowError::ExternalError("interrupted".into())));
            }
            match self.input.recv_timeout(Duration::from_millis(50)) {
                Ok(Some(batch)) => return Some(batch),
                Ok(None) => {
                    self.ended = true;
                    return None;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.ended = true;
                    return Some(Err(ArrowError::ExternalError(
                        "the input ended before its end (its reading thread stopped)".into(),
                    )));
                }
            }
        }
    }
}

/// Sets `stop` on Ctrl-C or SIGTERM, from a thread of its own (whatever the main thread is
/// blocked on).
fn stop_on_signal(stop: Arc<AtomicBool>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("pgarrow-signals".into())
        .spawn(move || {
            rt.block_on(interrupt_signal());
            stop.store(true, Ordering::Relaxed);
        })?;
    Ok(())
}

/// Loads the batches of `input` into `table` on a new connection, with a progress line on a
/// terminal. On Ctrl-C or SIGTERM the load stops at its next batch or wait: CopyFail,
/// ROLLBACK (the table is as it was), and [`Interrupted`]; a load that does not stop within a
/// few seconds (a server that does not read) is dropped with its connection, and the server
/// rolls back then too.
pub(crate) fn load(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    table: &str,
    schema: &SchemaRef,
    input: InputReceiver,
    options: &LoadOptions,
    quiet: bool,
) -> Result<LoadStats> {
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(Arc::clone(&stop))?;
    let batches = Stoppable {
        input,
        stop: Arc::clone(&stop),
        ended: false,
    };
    let bar = progress_bar(quiet, None);
    bar.set_message("connecting...");
    let started = Instant::now();
    let mut hooks = LoadHooks {
        stop: Some(Box::new(|| stop.load(Ordering::Relaxed))),
        progress: Some(Box::new(|rows, bytes| {
            bar.set_message(rate_message(rows, bytes, "sent", started.elapsed()));
        })),
    };
    let result = rt.block_on(async {
        let run = async {
            let t = Instant::now();
            let mut client = Client::connect(config).await?;
            let connect = t.elapsed();
            let mut stats = client
                .load_with(table, schema, batches, options, &mut hooks)
                .await?;
            stats.connect = connect;
            stats.total += connect;
            let _ = client.close().await;
            Ok::<_, pgarrow::Error>(stats)
        };
        tokio::select! {
            r = run => r.map_err(anyhow::Error::new),
            _ = async {
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tokio::time::sleep(STOP_GRACE).await;
            } => Err(Interrupted::nothing_loaded().into()),
        }
    });
    bar.finish_and_clear();
    match result {
        Err(_) if stop.load(Ordering::Relaxed) => Err(Interrupted::nothing_loaded().into()),
        other => other,
    }
}

/// How long a stopped load may take to send CopyFail and roll back before it is dropped.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The summary line and, with `--stats`, where the time went.
pub(crate) fn report(
    stats: &LoadStats,
    from: &str,
    table: &str,
    mode: &str,
    quiet: bool,
    phases: bool,
) {
    if !quiet {
        let secs = stats.total.as_secs_f64().max(1e-9);
        eprintln!(
            "loaded {} {} from {from} into {table} ({mode}) in {secs:.2} s: {} rows/s, {} of \
             COPY data",
            group(stats.rows),
            if stats.rows == 1 { "row" } else { "rows" },
            group((stats.rows as f64 / secs) as u64),
            human_bytes(stats.bytes)
        );
    }
    if phases {
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

fn columns(schema: &SchemaRef) -> String {
    let list: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect();
    format!("({})", list.join(", "))
}
