//! Running a partitioned export, on the caller's side: [`PartitionedExport`] starts the
//! workers (`worker`), takes what they send in the order the output wants it (a merged
//! stream, one file, one file per part), keeps the counts, reports progress, and stops them
//! all on the first failure, a cancel or a drop.
//!
//! Each worker is an OS thread with a single-threaded runtime and one connection: it decodes
//! on its own core, and for a Parquet file it also encodes its own row groups, so decoding and
//! encoding both scale with the connections. What crosses threads is counted by the
//! [`Budget`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use tokio::sync::mpsc;

use super::PartitionOptions;
use super::budget::Budget;
use super::budget::Shares;
use super::plan::{Coordinator, PartitionPlan};
use super::worker::{Event, Shared, WorkerOutput, worker};
use crate::export::request_cancel;
use crate::io::Location;
use crate::pipeline::{Destination, loss_metadata};
use crate::policy::LossReport;
use crate::protocol::{CancelToken, Config};
use crate::stats::{ExportStats, peak_rss};
use crate::{Error, ErrorKind, ExportOptions, Hooks, IntoConfig, Result, Source};
use pgarrow_io::Sink;
use pgarrow_io::{DirTarget, Manifest, ManifestFile};

/// How often progress is reported while no batch reaches the caller.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

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
    /// Its file, for an export into a directory, and the bytes written to it (for a
    /// laid-out export: the directory, and the bytes of all its files).
    pub file: Option<(Location, u64)>,
    /// Its files, for a laid-out export (value partitions, rolled files).
    pub files: Vec<pgarrow_io::WrittenFile>,
}

/// What a partitioned export did. Its document form (`--json`, Python) is the export's
/// statistics with `connections`, `connections_wanted`, `parts` (their number),
/// `in_flight_peak` and `manifest` added.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct PartitionedStats {
    /// The whole export: counts summed over the parts; `connect` and `describe` are the
    /// coordinator's; `first_byte`, `read`, `decode` and `write` are summed over the
    /// connections (time spent by all of them, so more than the wall time); `total` is the
    /// wall time.
    #[serde(flatten)]
    pub export: ExportStats,
    /// Each part, in plan order.
    #[serde(serialize_with = "count")]
    pub parts: Vec<PartResult>,
    /// Connections that read.
    pub connections: usize,
    /// Connections asked for (at most one per part): more than read when the memory limit
    /// leaves room for fewer (each connection writing Parquet holds an encoder of its own).
    pub connections_wanted: usize,
    /// The most bytes of batches and row groups held between the connections and the output
    /// at once (the part of the memory the limit bounds).
    pub in_flight_peak: u64,
    /// The manifest, for an export into a directory: its path or URL.
    pub manifest: Option<String>,
}

/// A list as its length.
fn count<S: serde::Serializer, T>(list: &[T], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(list.len() as u64)
}

/// A partitioned export in progress: worker connections reading parts of one snapshot.
///
/// [`next_batch`](PartitionedExport::next_batch) gives the batches of all parts as they come
/// (each with its part), in no particular order unless
/// [`PartitionOptions::order_preserving`]. [`export_to_file`](super::export_to_file) and [`export_to_dir`](super::export_to_dir) write them
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
    pub(super) fn spawn(
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
            layout_bytes: shares.layout_bytes,
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
            if let Some(mut event) = self.ready.pop_front() {
                if let Event::PartDone {
                    part,
                    stats,
                    file,
                    files,
                } = &mut event
                {
                    let files = std::mem::take(files);
                    self.record(*part, stats, file.clone(), files);
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

    fn record(
        &mut self,
        part: usize,
        stats: &ExportStats,
        file: Option<(Location, u64)>,
        files: Vec<pgarrow_io::WrittenFile>,
    ) {
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
                files,
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
    pub(super) async fn write_file(
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
    pub(super) async fn write_dir(
        mut self,
        target: &DirTarget,
        hooks: &mut Hooks<'_>,
    ) -> Result<(PartitionedStats, Manifest)> {
        let result = self.pump(hooks, |_| Ok(None)).await;
        let committed = match result {
            Ok(()) => {
                let finishing = Instant::now();
                let manifest = self.manifest(target);
                // The manifest is the commit of a plain export; a lake table's caller commits.
                let written = match target.manifest {
                    true => manifest
                        .write(&target.dir)
                        .map(|path| Some(path.to_string()))
                        .map_err(Error::from),
                    false => Ok(None),
                };
                self.totals.finish = finishing.elapsed();
                written.map(|path| (manifest, path))
            }
            Err(e) => Err(e),
        };
        match committed {
            Ok((manifest, path)) => {
                let mut stats = self.stats();
                stats.manifest = path;
                Ok((stats, manifest))
            }
            Err(e) => {
                // Once every worker stopped, so that none renames a file in after this.
                self.stop().await;
                for part in &self.shared.plan.parts {
                    let _ = target.dir.join(&target.part_file(part.part)).remove();
                }
                for done in self.parts.iter().flatten() {
                    for f in &done.files {
                        let _ = target.dir.join_path(&f.path).remove();
                    }
                }
                Err(e)
            }
        }
    }

    /// What the parts wrote, as the manifest describes it.
    fn manifest(&self, target: &DirTarget) -> Manifest {
        let mut entries = Vec::new();
        for (part, done) in self.shared.plan.parts.iter().zip(&self.parts) {
            let done = done.as_ref().expect("every part was read");
            let entry = |path: String, rows: u64, bytes: u64| {
                let mut file = ManifestFile::new(path, rows, bytes);
                file.part = Some(part.part);
                file.relation = part.relation.clone();
                file.range = Some(part.range.clone());
                file
            };
            match target.layout.is_plain() {
                true => entries.push(entry(
                    target.part_file(part.part),
                    done.rows,
                    done.file.as_ref().map_or(0, |(_, b)| *b),
                )),
                false => entries.extend(done.files.iter().map(|f| {
                    let mut file = entry(f.path.clone(), f.rows, f.bytes);
                    file.values = f.values.clone();
                    file
                })),
            }
        }
        let plan = &self.shared.plan;
        let mut manifest = Manifest::new(
            target.format,
            plan.snapshot.clone(),
            plan.wal_lsn.clone(),
            Some(plan.server_version),
            entries,
        );
        manifest.source = Some(plan.source.clone());
        manifest.replication_slot = plan.replication_slot.clone();
        manifest.schema = Some(plan.schema.clone());
        manifest.layout = (!target.layout.is_plain()).then(|| target.layout.clone());
        let losses = &self.totals.losses;
        manifest.lossy_conversions = (!losses.is_empty()).then(|| losses.to_string());
        manifest
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

fn merge_losses(into: &mut LossReport, from: &LossReport) {
    for (name, losses) in &from.columns {
        match into.columns.iter_mut().find(|(n, _)| n == name) {
            Some((_, l)) => l.merge(losses),
            None => into.columns.push((name.clone(), *losses)),
        }
    }
}

/// The single output of [`PartitionedExport::write_file`].
pub(super) enum FileOut {
    RowGroups(pgarrow_io::RowGroupFile),
    Batches(Sink),
    Nothing,
}

impl FileOut {
    /// Writes what `event` carries; the bytes it held, to release.
    pub(super) fn take(&mut self, event: Event) -> Result<Option<usize>> {
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

    pub(super) fn finish(self, totals: &ExportStats) -> Result<Option<u64>> {
        let metadata = loss_metadata(&totals.losses);
        match self {
            FileOut::RowGroups(file) => Ok(Some(file.finish_with_metadata(&metadata)?)),
            FileOut::Batches(sink) => Destination::finish(sink, totals),
            FileOut::Nothing => Ok(None),
        }
    }
}
