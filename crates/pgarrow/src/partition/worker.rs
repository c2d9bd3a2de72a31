//! The worker connections of a partitioned export: each an OS thread with a single-threaded
//! runtime and one connection in the plan's snapshot, taking parts from the shared queue until
//! none is left, and sending on (or writing) what it reads.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use pgarrow_io::{EncodedRowGroup, LayoutWriter, RowGroupEncoders, Sink};
use tokio::sync::mpsc;

use super::budget::Budget;
use super::plan::{PartitionPlan, enter_snapshot, part_export_plan};
use crate::pipeline::{Laid, WriterThread};
use crate::protocol::{CancelToken, Config};
use crate::stats::ExportStats;
use crate::{Client, DescribedSource, Error, Export, ExportOptions, Result};
use pgarrow_io::DirTarget;

/// What a worker does with its batches.
pub(super) enum WorkerOutput {
    /// Sends them to the caller.
    Forward,
    /// Encodes them into Parquet row groups and sends those.
    RowGroups(RowGroupEncoders),
    /// Writes each part into its own file.
    Files(DirTarget),
    /// Drops them.
    Discard,
}

pub(super) enum Event {
    Batch {
        part: usize,
        batch: RecordBatch,
        held: usize,
    },
    RowGroup {
        part: usize,
        group: EncodedRowGroup,
        held: usize,
    },
    PartDone {
        part: usize,
        stats: Box<ExportStats>,
        file: Option<(crate::io::Location, u64)>,
        files: Vec<pgarrow_io::WrittenFile>,
    },
    Failed(Error),
}

impl Event {
    pub(super) fn part(&self) -> Option<usize> {
        match self {
            Event::Batch { part, .. } | Event::RowGroup { part, .. } => Some(*part),
            Event::PartDone { part, .. } => Some(*part),
            Event::Failed(_) => None,
        }
    }
}

/// What the workers share.
pub(super) struct Shared {
    pub(super) config: Config,
    pub(super) plan: PartitionPlan,
    pub(super) columns: DescribedSource,
    pub(super) options: ExportOptions,
    pub(super) output: WorkerOutput,
    /// The next part to take.
    pub(super) next: AtomicUsize,
    /// Set when the export stops early (an error, a cancel): workers quit quietly.
    pub(super) stop: AtomicBool,
    pub(super) budget: Budget,
    /// What each worker's laid-out files may hold in memory.
    pub(super) layout_bytes: usize,
    /// Each worker's cancel token, to stop their queries.
    pub(super) tokens: Mutex<Vec<CancelToken>>,
    /// Whether the output keeps the parts in order.
    pub(super) ordered: bool,
    /// Rows and COPY bytes decoded so far, for progress.
    pub(super) rows: AtomicU64,
    pub(super) bytes: AtomicU64,
}

/// One worker thread: a connection in the plan's snapshot, taking parts until none is left.
pub(super) fn worker(shared: &Shared, tx: &mpsc::Sender<Event>) {
    let runtime = match crate::blocking::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = tx.blocking_send(Event::Failed(e));
            return;
        }
    };
    if let Err(e) = runtime.block_on(work(shared, tx))
        && !shared.stop.load(Ordering::SeqCst)
    {
        // The first failure stops the others; theirs (cancelled queries) are not news.
        shared.stop.store(true, Ordering::SeqCst);
        let _ = tx.blocking_send(Event::Failed(e));
    }
}

async fn work(shared: &Shared, tx: &mpsc::Sender<Event>) -> Result<()> {
    let mut client = Client::connect(&shared.config).await?;
    shared
        .tokens
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(client.conn().cancel_token());
    enter_snapshot(client.connection(), shared.plan.snapshot.as_deref()).await?;
    let mut encoder = match &shared.output {
        WorkerOutput::RowGroups(e) => Some(e.encoder()),
        _ => None,
    };
    let stopped = || shared.stop.load(Ordering::SeqCst);
    while !stopped() {
        let index = shared.next.fetch_add(1, Ordering::SeqCst);
        let Some(part) = shared.plan.parts.get(index) else {
            break;
        };
        let what = || match &part.relation {
            Some(r) => format!("part {index} ({r})"),
            None => format!("part {index}"),
        };
        let result = read_part(
            shared,
            tx,
            &mut client,
            &mut encoder,
            index,
            part_export_plan(&shared.columns, part),
        )
        .await;
        match result {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => return Err(e.context(what())),
        }
    }
    if stopped() {
        return Ok(());
    }
    if let Some(encoder) = encoder.as_mut()
        && let Some(group) = encoder.finish()?
    {
        let held = group.bytes();
        // Its part is the last this worker read; the order does not matter here.
        let part = shared.plan.parts.len();
        if !shared.budget.acquire(part, held)
            || tx
                .send(Event::RowGroup { part, group, held })
                .await
                .is_err()
        {
            return Ok(());
        }
    }
    client.connection().simple_query("COMMIT").await?;
    client.close().await
}

impl Shared {
    /// Adds what `export` decoded since `counted` (its rows and bytes when last counted) to
    /// the progress totals, and moves `counted` on.
    fn count(&self, export: &Export<'_>, counted: &mut (u64, u64)) {
        let now = (export.rows(), export.bytes());
        self.rows.fetch_add(now.0 - counted.0, Ordering::Relaxed);
        self.bytes.fetch_add(now.1 - counted.1, Ordering::Relaxed);
        *counted = now;
    }
}

/// Reads one part; `false` when the export stopped meanwhile.
async fn read_part(
    shared: &Shared,
    tx: &mpsc::Sender<Event>,
    client: &mut Client,
    encoder: &mut Option<pgarrow_io::RowGroupEncoder>,
    index: usize,
    plan: DescribedSource,
) -> Result<bool> {
    let stopped = || shared.stop.load(Ordering::SeqCst);
    let send = |event: Event, held: usize| async move {
        if !shared.budget.acquire(index, held) {
            return false;
        }
        tx.send(event).await.is_ok()
    };
    let send_group = |group: EncodedRowGroup| {
        let held = group.bytes();
        send(
            Event::RowGroup {
                part: index,
                group,
                held,
            },
            held,
        )
    };
    let schema = plan.schema.clone();
    // A part's files are written on a thread of their own, while this one decodes.
    let laid_files = Arc::new(Mutex::new(Vec::new()));
    let mut file = match &shared.output {
        WorkerOutput::Files(dir) if dir.layout.is_plain() => {
            let path = dir.dir.join(&dir.part_file(index));
            let sink = Sink::create(dir.format, path.output(), &schema, &dir.options)?;
            Some((WriterThread::spawn(sink)?, path))
        }
        WorkerOutput::Files(dir) => {
            let writer = LayoutWriter::new(
                dir.dir.clone(),
                dir.format,
                &dir.options,
                &schema,
                &dir.layout,
                &dir.part_prefix(index),
                shared.layout_bytes,
            )?;
            let laid = Laid {
                writer,
                files: laid_files.clone(),
            };
            Some((WriterThread::spawn(laid)?, dir.dir.clone()))
        }
        _ => None,
    };
    let mut export = client.export_described(plan, &shared.options).await?;
    let mut writing = Duration::ZERO;
    let mut counted = (0, 0);
    while let Some(batch) = export.next_batch().await? {
        if stopped() {
            return Ok(false);
        }
        shared.count(&export, &mut counted);
        let started = Instant::now();
        match (&shared.output, encoder.as_mut(), file.as_mut()) {
            (WorkerOutput::Forward, _, _) => {
                let held = batch.get_array_memory_size();
                if !send(
                    Event::Batch {
                        part: index,
                        batch,
                        held,
                    },
                    held,
                )
                .await
                {
                    return Ok(false);
                }
            }
            (WorkerOutput::RowGroups(_), Some(encoder), _) => {
                for group in encoder.write(&batch)? {
                    if !send_group(group).await {
                        return Ok(false);
                    }
                }
            }
            (WorkerOutput::Files(_), _, Some((writer, _))) => writer.write(batch).await?,
            _ => {}
        }
        writing += started.elapsed();
    }
    shared.count(&export, &mut counted);
    let mut stats = export.stats();
    drop(export);
    let started = Instant::now();
    // In an order-preserving file a part's row groups end with it; otherwise a row group
    // goes on into the next part, so that it has its full size (row groups cut at every part
    // compress worse and cost more to encode), and the last one ends with the worker.
    if shared.ordered
        && let Some(encoder) = encoder.as_mut()
        && let Some(group) = encoder.finish()?
        && !send_group(group).await
    {
        return Ok(false);
    }
    let (file, files) = match file {
        // Finished as every file of every export is (the loss counts in a part file's footer);
        // the time is the writer thread's own, as a single export counts it.
        Some((writer, location)) => {
            let (written, time) = writer.finish(&stats).await?;
            stats.write = time;
            let files =
                std::mem::take(&mut *laid_files.lock().unwrap_or_else(PoisonError::into_inner));
            (Some((location, written.unwrap_or(0))), files)
        }
        None => {
            stats.write = writing + started.elapsed();
            (None, Vec::new())
        }
    };
    let done = Event::PartDone {
        part: index,
        stats: Box::new(stats),
        file,
        files,
    };
    Ok(tx.send(done).await.is_ok())
}
