//! Running a partitioned export: worker connections on their own threads taking parts from a
//! shared queue, and what their batches become (a merged stream, one file, one file per part).
//!
//! Each worker is an OS thread with a single-threaded runtime and one connection: it decodes
//! on its own core, and for a Parquet file it also encodes its own row groups, so decoding and
//! encoding both scale with the connections. What crosses threads is counted by the
//! [`Budget`].

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use pgarrow_sink::{EncodedRowGroup, Format, Output, RowGroupEncoders, Sink, SinkOptions};
use tokio::sync::mpsc;

use super::budget::Budget;
use super::manifest::{Manifest, ManifestFile};
use super::plan::{Coordinator, PartitionPlan, enter_snapshot, part_export_plan};
use super::{MANIFEST_NAME, PartitionOptions};
use crate::export::request_cancel;
use crate::pipeline::Destination;
use crate::policy::LossReport;
use crate::protocol::{CancelToken, Config};
use crate::stats::{ExportStats, peak_rss};
use crate::{
    Client, Error, ErrorKind, ExportOptions, ExportPlan, FileTarget, Hooks, IntoConfig, Result,
    Source,
};

/// How often progress is reported while no batch reaches the caller.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Where a partitioned export writes one file per part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirTarget {
    /// The directory (created if missing).
    pub dir: PathBuf,
    /// The files' format (not [`Format::Null`]).
    pub format: Format,
    /// The files' options.
    pub options: SinkOptions,
}

impl DirTarget {
    /// The file name of part `part`: `part-00000.parquet`.
    pub fn file_name(&self, part: usize) -> String {
        format!("part-{part:05}.{}", self.format.extension())
    }
}

/// What one part delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartResult {
    /// The part.
    pub part: usize,
    /// Its rows.
    pub rows: u64,
    /// Its COPY data, in bytes.
    pub bytes: u64,
    /// Its file, for an export into a directory, and the bytes written to it.
    pub file: Option<(PathBuf, u64)>,
}

/// What a partitioned export did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PartitionedStats {
    /// The whole export: counts summed over the parts; `connect` and `describe` are the
    /// coordinator's; `first_byte`, `read`, `decode` and `write` are summed over the
    /// connections (time spent by all of them, so more than the wall time); `total` is the
    /// wall time.
    pub export: ExportStats,
    /// Each part, in plan order.
    pub parts: Vec<PartResult>,
    /// Connections that read.
    pub connections: usize,
    /// Connections asked for (at most one per part): more than read when the memory limit
    /// leaves room for fewer (each connection writing Parquet holds an encoder of its own).
    pub connections_wanted: usize,
    /// The most bytes of batches and row groups held between the connections and the output
    /// at once (the part of the memory the limit bounds).
    pub in_flight_peak: u64,
    /// The manifest, for an export into a directory.
    pub manifest: Option<PathBuf>,
}

/// What a worker does with its batches.
enum WorkerOutput {
    /// Sends them to the caller.
    Forward,
    /// Encodes them into Parquet row groups and sends those.
    RowGroups(RowGroupEncoders),
    /// Writes each part into its own file.
    Files(DirTarget),
    /// Drops them.
    Discard,
}

enum Event {
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
        file: Option<(PathBuf, u64)>,
    },
    Failed(Error),
}

impl Event {
    fn part(&self) -> Option<usize> {
        match self {
            Event::Batch { part, .. } | Event::RowGroup { part, .. } => Some(*part),
            Event::PartDone { part, .. } => Some(*part),
            Event::Failed(_) => None,
        }
    }
}

/// What the workers share.
struct Shared {
    config: Config,
    plan: PartitionPlan,
    columns: ExportPlan,
    options: ExportOptions,
    output: WorkerOutput,
    /// The next part to take.
    next: AtomicUsize,
    /// Set when the export stops early (an error, a cancel): workers quit quietly.
    stop: AtomicBool,
    budget: Budget,
    /// Each worker's cancel token, to stop their queries.
    tokens: Mutex<Vec<CancelToken>>,
    /// Whether the output keeps the parts in order.
    ordered: bool,
    /// Rows and COPY bytes decoded so far, for progress.
    rows: AtomicU64,
    bytes: AtomicU64,
}

/// A partitioned export in progress: worker connections reading parts of one snapshot.
///
/// [`next_batch`](PartitionedExport::next_batch) gives the batches of all parts as they come
/// (each with its part), in no particular order unless
/// [`PartitionOptions::order_preserving`]. [`export_to_file`] and [`export_to_dir`] write them
/// instead.
///
/// Dropping it before the end stops the workers: their queries are cancelled and their
/// connections closed.
pub struct PartitionedExport {
    coordinator: Option<Coordinator>,
    schema: SchemaRef,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Event>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// How many workers were started, and how many were asked for.
    connections: usize,
    connections_wanted: usize,
    /// Events in the order the caller gets them.
    ready: VecDeque<Event>,
    order: Option<Reorder>,
    parts: Vec<Option<PartResult>>,
    totals: ExportStats,
    connect: Duration,
    describe: Duration,
    started: Instant,
    ended: Option<Duration>,
}

impl std::fmt::Debug for PartitionedExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionedExport")
            .field("parts", &self.parts.len())
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

/// Holds back the events of parts after the one written next, for order-preserving output.
struct Reorder {
    head: usize,
    waiting: BTreeMap<usize, Vec<Event>>,
}

impl PartitionedExport {
    /// Plans `source` (see [`Coordinator::begin`]) and starts reading its parts over
    /// `partitions.connections` connections; the batches come from
    /// [`next_batch`](PartitionedExport::next_batch).
    ///
    /// # Errors
    /// As [`Coordinator::begin`].
    pub async fn start(
        config: impl IntoConfig,
        source: impl Into<Source>,
        options: &ExportOptions,
        partitions: &PartitionOptions,
    ) -> Result<PartitionedExport> {
        let config = config.into_config()?;
        let coordinator = Coordinator::begin(&config, source, options, partitions).await?;
        let shares = Shares::new(partitions, coordinator.plan(), options, None);
        Self::spawn(
            config,
            coordinator,
            options,
            partitions,
            WorkerOutput::Forward,
            shares,
        )
    }

    /// Plans and starts the workers on an already-made plan.
    fn spawn(
        config: Config,
        coordinator: Coordinator,
        options: &ExportOptions,
        partitions: &PartitionOptions,
        output: WorkerOutput,
        shares: Shares,
    ) -> Result<PartitionedExport> {
        let started = Instant::now();
        let plan = coordinator.plan().clone();
        let n = shares.connections;
        let mut options = options.clone();
        options.decode.batch_bytes = shares.batch_bytes;
        let ordered = partitions.order_preserving && !matches!(output, WorkerOutput::Files(_));
        let output = match output {
            WorkerOutput::Files(mut dir) => {
                dir.options.row_group_bytes = shares.row_group_bytes;
                WorkerOutput::Files(dir)
            }
            other => other,
        };
        let schema = Arc::new(plan.schema.clone());
        let connect = Duration::ZERO;
        let parts = plan.parts.len();
        let shared = Arc::new(Shared {
            config,
            columns: coordinator.columns().clone(),
            plan,
            options,
            output,
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            budget: Budget::new(shares.in_flight),
            ordered,
            tokens: Mutex::new(Vec::new()),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        });
        let order = ordered.then(|| {
            shared.budget.set_head(0);
            Reorder {
                head: 0,
                waiting: BTreeMap::new(),
            }
        });
        let (tx, rx) = mpsc::channel(4 * n);
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let mine = shared.clone();
            let tx = tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("pgarrow-part-{i}"))
                .spawn(move || worker(&mine, &tx))
                .map_err(|e| ErrorKind::Internal(format!("cannot start a worker thread: {e}")));
            match handle {
                Ok(h) => workers.push(h),
                Err(e) => {
                    shared.stop.store(true, Ordering::SeqCst);
                    shared.budget.stop();
                    return Err(e.into());
                }
            }
        }
        let (connect_time, describe) = coordinator.timings();
        Ok(PartitionedExport {
            coordinator: Some(coordinator),
            schema,
            shared,
            rx,
            connections: workers.len(),
            connections_wanted: shares.wanted,
            workers,
            ready: VecDeque::new(),
            order,
            parts: vec![None; parts],
            totals: ExportStats::default(),
            connect: connect_time.max(connect),
            describe,
            started,
            ended: None,
        })
    }

    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The plan being run.
    pub fn plan(&self) -> &PartitionPlan {
        &self.shared.plan
    }

    /// The next batch of any part, with the part it belongs to, or `None` once every part was
    /// read in full.
    ///
    /// # Errors
    /// The first failure of any part (the others are then stopped), naming the part.
    pub async fn next_batch(&mut self) -> Result<Option<(usize, RecordBatch)>> {
        while let Some(event) = self.next_event().await? {
            if let Event::Batch { part, batch, held } = event {
                self.shared.budget.release(held);
                return Ok(Some((part, batch)));
            }
        }
        Ok(None)
    }

    /// What the export did so far.
    pub fn stats(&self) -> PartitionedStats {
        let mut export = self.totals.clone();
        export.connect = self.connect;
        export.describe = self.describe;
        export.total = self.ended.unwrap_or_else(|| self.started.elapsed()) + self.describe;
        export.peak_rss = peak_rss();
        if self.ended.is_none() {
            export.rows = self.shared.rows.load(Ordering::Relaxed);
            export.bytes = self.shared.bytes.load(Ordering::Relaxed);
        }
        PartitionedStats {
            export,
            parts: self.parts.iter().flatten().cloned().collect(),
            connections: self.connections,
            connections_wanted: self.connections_wanted,
            in_flight_peak: self.shared.budget.peak() as u64,
            manifest: None,
        }
    }

    /// The next event for the caller, in order; `None` at the end. Part completions are
    /// recorded here.
    async fn next_event(&mut self) -> Result<Option<Event>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                if let Event::PartDone { part, stats, file } = &event {
                    self.record(*part, stats, file.clone());
                }
                return Ok(Some(event));
            }
            if self.ended.is_some() {
                return Ok(None);
            }
            match self.rx.recv().await {
                Some(Event::Failed(e)) => {
                    self.stop().await;
                    return Err(e);
                }
                Some(event) => self.arrange(event),
                None => return self.end().await.map(|()| None),
            }
        }
    }

    /// Puts `event` in line: now, or after the parts before its own (order-preserving).
    fn arrange(&mut self, event: Event) {
        let Some(order) = self.order.as_mut() else {
            self.ready.push_back(event);
            return;
        };
        let part = event.part().unwrap_or(order.head);
        if part != order.head {
            order.waiting.entry(part).or_default().push(event);
            return;
        }
        let done = matches!(event, Event::PartDone { .. });
        self.ready.push_back(event);
        if !done {
            return;
        }
        // The head part is complete: the next ones follow, as far as they are complete.
        loop {
            order.head += 1;
            self.shared.budget.set_head(order.head);
            let Some(events) = order.waiting.remove(&order.head) else {
                break;
            };
            let complete = matches!(events.last(), Some(Event::PartDone { .. }));
            self.ready.extend(events);
            if !complete {
                break;
            }
        }
    }

    fn record(&mut self, part: usize, stats: &ExportStats, file: Option<(PathBuf, u64)>) {
        let t = &mut self.totals;
        t.rows += stats.rows;
        t.batches += stats.batches;
        t.bytes += stats.bytes;
        t.first_byte += stats.first_byte;
        t.read += stats.read;
        t.decode += stats.decode;
        t.write += stats.write;
        if let Some((_, written)) = &file {
            *t.written.get_or_insert(0) += written;
        }
        merge_losses(&mut t.losses, &stats.losses);
        if let Some(slot) = self.parts.get_mut(part) {
            *slot = Some(PartResult {
                part,
                rows: stats.rows,
                bytes: stats.bytes,
                file,
            });
        }
    }

    /// Every worker has ended: check that every part was read, end the snapshot.
    async fn end(&mut self) -> Result<()> {
        let panicked = self.join();
        self.ended = Some(self.started.elapsed());
        if panicked {
            return Err(ErrorKind::Internal("a worker thread panicked".into()).into());
        }
        if let Some(missing) = self.parts.iter().position(Option::is_none) {
            return Err(ErrorKind::Internal(format!(
                "the workers ended before part {missing} was read"
            ))
            .into());
        }
        if let Some(c) = self.coordinator.take() {
            c.close().await?;
        }
        Ok(())
    }

    /// Stops every worker: no new parts, no more waiting, their queries cancelled, their
    /// connections closed.
    async fn stop(&mut self) {
        let tokens = self.halt();
        for t in &tokens {
            request_cancel(t).await;
        }
        // Wake workers blocked on a full channel.
        while self.rx.recv().await.is_some() {}
        self.join();
        self.ended = Some(self.started.elapsed());
        self.coordinator = None;
    }

    /// Tells the workers to stop (no new part, no more waiting for memory, no more sending)
    /// and returns their cancel tokens, for their queries.
    fn halt(&mut self) -> Vec<CancelToken> {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.budget.stop();
        self.rx.close();
        self.shared
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits for the worker threads; whether one panicked.
    fn join(&mut self) -> bool {
        let mut panicked = false;
        for h in self.workers.drain(..) {
            panicked |= h.join().is_err();
        }
        panicked
    }

    fn progress(&self, hooks: &mut Hooks<'_>) {
        if let Some(p) = hooks.progress.as_mut() {
            p(&self.stats().export);
        }
    }

    /// Runs the export into a file (or stdout, or nowhere): a Parquet file's row groups are
    /// encoded by the connections' threads and appended here; Arrow IPC batches are written
    /// here. Atomic as [`Client::export_to_file`] is.
    async fn write_file(
        mut self,
        mut out: FileOut,
        hooks: &mut Hooks<'_>,
    ) -> Result<PartitionedStats> {
        let result = self.pump(hooks, |event| out.take(event)).await;
        let written = match result {
            Ok(()) => {
                let finishing = Instant::now();
                let written = out.finish(&self.totals)?;
                self.totals.finish = finishing.elapsed();
                written
            }
            Err(e) => {
                drop(out);
                return Err(e);
            }
        };
        let mut stats = self.stats();
        stats.export.written = written;
        Ok(stats)
    }

    /// Drives the export to its end, handing every event to `take`, reporting progress and
    /// honouring the hooks' cancel signal.
    async fn pump(
        &mut self,
        hooks: &mut Hooks<'_>,
        mut take: impl FnMut(Event) -> Result<Option<usize>>,
    ) -> Result<()> {
        let mut last_progress = Instant::now();
        loop {
            let next = {
                let tick = tokio::time::sleep(PROGRESS_EVERY);
                let next = async {
                    tokio::select! {
                        e = self.next_event() => Some(e),
                        () = tick => None,
                    }
                };
                hooks.or_cancelled(next).await
            };
            let event = match next {
                None => {
                    self.stop().await;
                    return Err(ErrorKind::Cancelled.into());
                }
                Some(None) => {
                    self.progress(hooks);
                    continue;
                }
                Some(Some(event)) => event,
            };
            match event {
                Err(e) => return Err(e),
                Ok(None) => return Ok(()),
                Ok(Some(event)) => {
                    let started = Instant::now();
                    match take(event) {
                        Ok(Some(held)) => self.shared.budget.release(held),
                        Ok(None) => {}
                        Err(e) => {
                            self.stop().await;
                            return Err(e);
                        }
                    }
                    self.totals.write += started.elapsed();
                    if last_progress.elapsed() >= PROGRESS_EVERY {
                        last_progress = Instant::now();
                        self.progress(hooks);
                    }
                }
            }
        }
    }

    /// Runs the export, one file per part in `target.dir`, then writes `_manifest.json`. A
    /// failure leaves no manifest and removes the files of this run.
    async fn write_dir(
        mut self,
        target: &DirTarget,
        hooks: &mut Hooks<'_>,
    ) -> Result<PartitionedStats> {
        let result = self.pump(hooks, |_| Ok(None)).await;
        let manifest = match result {
            Ok(()) => {
                let finishing = Instant::now();
                let entries = self
                    .shared
                    .plan
                    .parts
                    .iter()
                    .zip(&self.parts)
                    .map(|(part, done)| {
                        let done = done.as_ref().expect("every part was read");
                        ManifestFile {
                            path: target.file_name(part.part),
                            part: part.part,
                            relation: part.relation.clone(),
                            range: part.range.clone(),
                            rows: done.rows,
                            bytes: done.file.as_ref().map_or(0, |(_, b)| *b),
                        }
                    })
                    .collect();
                let manifest =
                    Manifest::new(&self.shared.plan, &target.format.to_string(), entries);
                let written = manifest.write(&target.dir);
                self.totals.finish = finishing.elapsed();
                written
            }
            Err(e) => Err(e),
        };
        match manifest {
            Ok(path) => {
                let mut stats = self.stats();
                stats.manifest = Some(path);
                Ok(stats)
            }
            Err(e) => {
                // Once every worker stopped, so that none renames a file in after this.
                self.stop().await;
                for part in &self.shared.plan.parts {
                    let _ = std::fs::remove_file(target.dir.join(target.file_name(part.part)));
                }
                Err(e)
            }
        }
    }
}

impl Drop for PartitionedExport {
    /// Stops the workers and waits for them: their queries are cancelled (from a thread of
    /// its own, since there may be no runtime here) and their connections closed.
    fn drop(&mut self) {
        if self.workers.is_empty() {
            return;
        }
        let tokens = self.halt();
        let cancel = std::thread::Builder::new()
            .name("pgarrow-cancel".into())
            .spawn(move || {
                if let Ok(rt) = crate::blocking::runtime() {
                    rt.block_on(async {
                        for t in &tokens {
                            request_cancel(t).await;
                        }
                    });
                }
            });
        if let Ok(cancel) = cancel {
            let _ = cancel.join();
        }
        // Events still queued are dropped with the channel; a worker blocked sending sees it
        // closed.
        while self.rx.try_recv().is_ok() {}
        self.join();
    }
}

/// The single output of [`PartitionedExport::write_file`].
enum FileOut {
    RowGroups(pgarrow_sink::RowGroupFile),
    Batches(Sink),
    Nothing,
}

impl FileOut {
    /// Writes what `event` carries; the bytes it held, to release.
    fn take(&mut self, event: Event) -> Result<Option<usize>> {
        match (self, event) {
            (FileOut::RowGroups(file), Event::RowGroup { group, held, .. }) => {
                file.append(group)?;
                Ok(Some(held))
            }
            (FileOut::Batches(sink), Event::Batch { batch, held, .. }) => {
                Destination::write(sink, &batch)?;
                Ok(Some(held))
            }
            (_, Event::Batch { held, .. } | Event::RowGroup { held, .. }) => Ok(Some(held)),
            _ => Ok(None),
        }
    }

    fn finish(self, totals: &ExportStats) -> Result<Option<u64>> {
        let metadata = loss_metadata(&totals.losses);
        match self {
            FileOut::RowGroups(file) => Ok(Some(file.finish_with_metadata(&metadata)?)),
            FileOut::Batches(sink) => Destination::finish(sink, totals),
            FileOut::Nothing => Ok(None),
        }
    }
}

fn loss_metadata(losses: &LossReport) -> Vec<(String, String)> {
    match losses.is_empty() {
        true => Vec::new(),
        false => vec![("pgarrow.lossy_conversions".to_owned(), losses.to_string())],
    }
}

fn merge_losses(into: &mut LossReport, from: &LossReport) {
    for (name, losses) in &from.columns {
        match into.columns.iter_mut().find(|(n, _)| n == name) {
            Some((_, l)) => l.merge(losses),
            None => into.columns.push((name.clone(), *losses)),
        }
    }
}

/// One worker thread: a connection in the plan's snapshot, taking parts until none is left.
fn worker(shared: &Shared, tx: &mpsc::Sender<Event>) {
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

/// Reads one part; `false` when the export stopped meanwhile.
async fn read_part(
    shared: &Shared,
    tx: &mpsc::Sender<Event>,
    client: &mut Client,
    encoder: &mut Option<pgarrow_sink::RowGroupEncoder>,
    index: usize,
    plan: ExportPlan,
) -> Result<bool> {
    let stopped = || shared.stop.load(Ordering::SeqCst);
    let send = |event: Event, held: usize| async move {
        if !shared.budget.acquire(index, held) {
            return false;
        }
        tx.send(event).await.is_ok()
    };
    let schema = plan.schema.clone();
    let mut file = match &shared.output {
        WorkerOutput::Files(dir) => {
            let path = dir.dir.join(dir.file_name(index));
            let sink = Sink::create(
                dir.format,
                Output::File(path.clone()),
                &schema,
                &dir.options,
            )?;
            Some((sink, path))
        }
        _ => None,
    };
    let mut export = client.export_plan(plan, &shared.options).await?;
    let mut writing = Duration::ZERO;
    let (mut rows, mut bytes) = (0, 0);
    while let Some(batch) = export.next_batch().await? {
        if stopped() {
            return Ok(false);
        }
        shared
            .rows
            .fetch_add(export.rows() - rows, Ordering::Relaxed);
        shared
            .bytes
            .fetch_add(export.bytes() - bytes, Ordering::Relaxed);
        (rows, bytes) = (export.rows(), export.bytes());
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
                    let held = group.bytes();
                    let event = Event::RowGroup {
                        part: index,
                        group,
                        held,
                    };
                    if !send(event, held).await {
                        return Ok(false);
                    }
                }
            }
            (WorkerOutput::Files(_), _, Some((sink, _))) => sink.write(&batch)?,
            _ => {}
        }
        writing += started.elapsed();
    }
    shared
        .rows
        .fetch_add(export.rows() - rows, Ordering::Relaxed);
    shared
        .bytes
        .fetch_add(export.bytes() - bytes, Ordering::Relaxed);
    let mut stats = export.stats();
    drop(export);
    let started = Instant::now();
    // In an order-preserving file a part's row groups end with it; otherwise a row group
    // goes on into the next part, so that it has its full size (row groups cut at every part
    // compress worse and cost more to encode), and the last one ends with the worker.
    if shared.ordered
        && let Some(encoder) = encoder.as_mut()
        && let Some(group) = encoder.finish()?
    {
        let held = group.bytes();
        let event = Event::RowGroup {
            part: index,
            group,
            held,
        };
        if !send(event, held).await {
            return Ok(false);
        }
    }
    let file = match file {
        Some((sink, path)) => {
            let written = sink.finish_with_metadata(&loss_metadata(&stats.losses))?;
            Some((path, written))
        }
        None => None,
    };
    stats.write = writing + started.elapsed();
    let done = Event::PartDone {
        part: index,
        stats: Box::new(stats),
        file,
    };
    Ok(tx.send(done).await.is_ok())
}

/// Exports `source` over `partitions.connections` connections into one file (or stdout,
/// or nowhere with [`Format::Null`]), all reading one snapshot. For Parquet, each
/// connection's thread encodes its own row groups, which are appended to the file here.
/// Atomic as [`Client::export_to_file`]: a failure of any part leaves no file.
///
/// # Errors
/// As [`Coordinator::begin`]; the first failure of any part, naming it; the output's.
pub async fn export_to_file(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    target: &FileTarget,
    hooks: Hooks<'_>,
) -> Result<PartitionedStats> {
    let mut hooks = hooks;
    let config = config.into_config()?;
    let mut sink_options = file_options(&target.options);
    if target.format != Format::Null {
        sink_options.validate()?;
    }
    let coordinator = begin(&mut hooks, &config, source, options, partitions).await?;
    let parquet = (target.format == Format::Parquet).then_some(&sink_options);
    let shares = Shares::new(partitions, coordinator.plan(), options, parquet);
    sink_options.row_group_bytes = shares.row_group_bytes;
    let schema = Arc::new(coordinator.plan().schema.clone());
    let sink = Sink::create(target.format, target.output.clone(), &schema, &sink_options)?;
    let (out, output) = match target.format {
        Format::Null => (FileOut::Nothing, WorkerOutput::Discard),
        Format::Parquet => match sink.into_row_groups(&sink_options)? {
            Ok((file, encoders)) => (FileOut::RowGroups(file), WorkerOutput::RowGroups(encoders)),
            Err(sink) => (FileOut::Batches(sink), WorkerOutput::Forward),
        },
        _ => (FileOut::Batches(sink), WorkerOutput::Forward),
    };
    let export =
        PartitionedExport::spawn(config, coordinator, options, partitions, output, shares)?;
    export.write_file(out, &mut hooks).await
}

/// Exports `source` over `partitions.connections` connections into one file per part in
/// `target.dir` (each written atomically, by the connection that read it), then writes
/// `_manifest.json` ([`Manifest`]) last. A failure of any part leaves no manifest and
/// removes the files this run wrote.
///
/// # Errors
/// As [`export_to_file`]; the directory cannot be made.
pub async fn export_to_dir(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    target: &DirTarget,
    hooks: Hooks<'_>,
) -> Result<PartitionedStats> {
    let mut hooks = hooks;
    let config = config.into_config()?;
    if target.format == Format::Null {
        return Err(Error::query(
            "an export into a directory writes files: choose parquet, arrow or arrow-stream",
        ));
    }
    let mut target = target.clone();
    target.options = file_options(&target.options);
    target.options.validate()?;
    prepare_dir(&target.dir)?;
    let coordinator = begin(&mut hooks, &config, source, options, partitions).await?;
    let parquet = (target.format == Format::Parquet).then_some(&target.options);
    let shares = Shares::new(partitions, coordinator.plan(), options, parquet);
    let export = PartitionedExport::spawn(
        config,
        coordinator,
        options,
        partitions,
        WorkerOutput::Files(target.clone()),
        shares,
    )?;
    export.write_dir(&target, &mut hooks).await
}

/// Exports part `index` of `plan` into a file, in the plan's snapshot (see [`export_part`](super::export_part)):
/// the output is created first (so that a bad path fails before connecting), written on a
/// worker thread, and renamed over the target at the end, as [`Client::export_to_file`] does.
///
/// # Errors
/// As [`export_part`](super::export_part), the output's errors, and [`ErrorKind::Cancelled`].
pub async fn export_part_to_file(
    config: impl IntoConfig,
    plan: &PartitionPlan,
    index: usize,
    options: &ExportOptions,
    target: &FileTarget,
    hooks: Hooks<'_>,
) -> Result<ExportStats> {
    let mut hooks = hooks;
    plan.part(index)?;
    let sink_options = file_options(&target.options);
    if target.format != Format::Null {
        sink_options.validate()?;
    }
    let schema = Arc::new(plan.schema.clone());
    let sink = Sink::create(target.format, target.output.clone(), &schema, &sink_options)?;
    let Some(export) = hooks
        .or_cancelled(super::export_part(config, plan, index, options))
        .await
    else {
        return Err(ErrorKind::Cancelled.into());
    };
    crate::pipeline::pump(export?, sink, &mut hooks).await
}

/// [`Coordinator::begin`], unless the hooks cancel first.
async fn begin(
    hooks: &mut Hooks<'_>,
    config: &Config,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
) -> Result<Coordinator> {
    hooks
        .or_cancelled(Coordinator::begin(config, source, options, partitions))
        .await
        .ok_or(ErrorKind::Cancelled)?
}

/// What a Parquet encoder holds per leaf column whatever the row group's size, about: its
/// zstd context, its dictionary (up to the 1 MiB dictionary page limit) and the dictionary
/// page kept until the row group ends. Measured with massif on the `wide` table: 40-45 MiB
/// for 24 leaves.
const PARQUET_LEAF_STATE: usize = 2 << 20;

/// The least a connection gets for its batches (one being built, one being written) and its
/// row group.
const MIN_CONNECTION: usize = 8 << 20;

/// How the memory limit is shared: a quarter for what is in flight between threads, the rest
/// between the connections, each holding the batch it builds, the batch it writes and, for
/// Parquet, its row group and its encoder's fixed state. Fewer connections read than asked
/// when that many would not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shares {
    pub(crate) connections: usize,
    pub(crate) batch_bytes: usize,
    pub(crate) row_group_bytes: usize,
    pub(crate) in_flight: usize,
    /// Connections asked for (at most one per part).
    pub(crate) wanted: usize,
}

impl Shares {
    /// The shares for `plan` read under `partitions`; `parquet`: the Parquet options, when
    /// each connection encodes Parquet.
    pub(crate) fn new(
        partitions: &PartitionOptions,
        plan: &PartitionPlan,
        options: &ExportOptions,
        parquet: Option<&SinkOptions>,
    ) -> Shares {
        let limit = partitions.memory_limit.max(1);
        let in_flight = (limit / 4).max(1);
        let for_connections = limit - in_flight;
        let fixed = match parquet {
            Some(_) => {
                let schema =
                    pgarrow_sink::parquet_compatible_schema(&Arc::new(plan.schema.clone()));
                let leaves: usize = schema.fields().iter().map(|f| leaves(f.data_type())).sum();
                leaves.max(1) * PARQUET_LEAF_STATE
            }
            None => 0,
        };
        let wanted = partitions.connections.min(plan.parts.len()).max(1);
        let fit = (for_connections / (fixed + MIN_CONNECTION)).max(1);
        let connections = wanted.min(fit);
        let own = (for_connections / connections)
            .saturating_sub(fixed)
            .max(MIN_CONNECTION);
        let row_group = parquet.map_or(0, |o| o.row_group_bytes);
        Shares {
            connections,
            batch_bytes: options.decode.batch_bytes.min(own / 4).max(64 << 10),
            row_group_bytes: row_group.min(own / 2).max(64 << 10),
            in_flight,
            wanted,
        }
    }
}

/// The primitive leaves of a type, as Parquet stores them (one column chunk each).
fn leaves(t: &arrow_schema::DataType) -> usize {
    use arrow_schema::DataType as T;
    match t {
        T::Struct(fields) => fields.iter().map(|f| leaves(f.data_type())).sum(),
        T::List(f) | T::LargeList(f) | T::FixedSizeList(f, _) | T::ListView(f) | T::Map(f, _) => {
            leaves(f.data_type())
        }
        T::Dictionary(_, v) => leaves(v),
        _ => 1,
    }
}

/// The file options with `pgarrow.version` in the metadata, as single exports have it.
fn file_options(options: &SinkOptions) -> SinkOptions {
    let mut options = options.clone();
    if !options.metadata.iter().any(|(k, _)| k == "pgarrow.version") {
        options.metadata.push((
            "pgarrow.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ));
    }
    options
}

/// Makes the output directory, and removes a manifest left there by an earlier export, so
/// that a manifest is only ever this run's, complete.
fn prepare_dir(dir: &Path) -> Result<()> {
    let io = |what: &'static str, path: &Path, e: std::io::Error| -> Error {
        ErrorKind::Sink(pgarrow_sink::Error::Io {
            what,
            path: path.to_owned(),
            source: e,
        })
        .into()
    };
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create the directory", dir, e))?;
    let manifest = dir.join(MANIFEST_NAME);
    match std::fs::remove_file(&manifest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("cannot remove the old manifest", &manifest, e)),
    }
}
