//! A running export: RecordBatches decoded straight from the COPY stream, as a `Stream`.

use std::borrow::{Borrow, BorrowMut};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use futures_core::Stream;
use pgarrow_decode::{ArrayDepths, CopyDecoder};
use pgarrow_protocol::CopyOut;

use crate::Result;
use crate::policy::LossReport;
use crate::protocol::{CancelToken, Connection};
use crate::stats::{ExportStats, peak_rss};
use crate::{DescribedSource, Error, ErrorKind, ExportOptions};

/// How long a caller that stops an export early waits for the server to take its
/// CancelRequest.
pub const CANCEL_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Asks the server to cancel `token`'s query, waiting at most [`CANCEL_REQUEST_TIMEOUT`]
/// ([`CancelToken::cancel_within`]).
pub(crate) async fn request_cancel(token: &CancelToken) {
    token.cancel_within(CANCEL_REQUEST_TIMEOUT).await;
}

/// The connection under an export: the client's, borrowed, or its own.
#[derive(Debug)]
pub(crate) enum ConnSlot<'c> {
    Borrowed(&'c mut Connection),
    Owned(Box<Connection>),
}

impl Borrow<Connection> for ConnSlot<'_> {
    fn borrow(&self) -> &Connection {
        match self {
            ConnSlot::Borrowed(c) => c,
            ConnSlot::Owned(c) => c,
        }
    }
}

impl BorrowMut<Connection> for ConnSlot<'_> {
    fn borrow_mut(&mut self) -> &mut Connection {
        match self {
            ConnSlot::Borrowed(c) => c,
            ConnSlot::Owned(c) => c,
        }
    }
}

/// A running export: RecordBatches decoded straight from the COPY stream.
///
/// It is a [`Stream`] of `Result<RecordBatch>` (use it with `futures::StreamExt`), and
/// [`next_batch`](Export::next_batch) does the same without the trait. The schema is known
/// before the first batch; [`stats`](Export::stats) says what happened so far.
///
/// Decoding happens on the task that polls the export: no thread, no channel between the
/// socket and the decoder. [`write_to`](Export::write_to) adds a writer thread behind it.
///
/// # Termination
/// The stream ends (`None`, or `Ok(None)` from `next_batch`) after the last batch, once the
/// server confirmed the end of the COPY and its row count matched the rows decoded. After an
/// error it ends too.
///
/// [`cancel`](Export::cancel) stops an unfinished export and keeps the connection usable.
/// Dropping an unfinished export instead closes the connection (it is never reused mid-COPY)
/// and, inside a tokio runtime, sends the server a CancelRequest from a spawned task, so the
/// backend stops at once even when it is computing rather than sending.
pub struct Export<'c> {
    schema: SchemaRef,
    cancel: CancelToken,
    /// The decoding state, at home between batches; `None` while `pending` holds it.
    core: Option<Box<Core<'c>>>,
    pending: Option<Pending<'c>>,
    /// What was known when the core last came home.
    stats: ExportStats,
    /// Where the export started (connecting included when the client had not been used).
    started: Instant,
    /// The wall time, once it ended.
    ended: Option<Duration>,
}

type Pending<'c> =
    Pin<Box<dyn Future<Output = (Box<Core<'c>>, Result<Option<RecordBatch>>)> + Send + 'c>>;

impl std::fmt::Debug for Export<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("schema", &self.schema)
            .field("stats", &self.stats)
            .field("pending", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

/// The COPY, its decoder, and the clocks of the phases they run.
struct Core<'c> {
    copy: CopyOut<ConnSlot<'c>>,
    /// COPY data read ahead to settle array depths, decoded before the rest.
    prefix: Vec<u8>,
    prefix_used: usize,
    decoder: CopyDecoder,
    finished: bool,
    rows: u64,
    batches: u64,
    /// When the COPY was sent.
    copy_sent: Instant,
    first_byte: Option<Duration>,
    read: Duration,
    decode: Duration,
    /// A statement run on the connection once the COPY ended well (a part's COMMIT, which
    /// delivers the notification that it was read).
    finish: Option<&'static str>,
}

impl<'c> Export<'c> {
    /// Sends the plan's COPY on `conn`.
    pub(crate) async fn start(
        conn: ConnSlot<'c>,
        plan: DescribedSource,
        options: &ExportOptions,
        connect: Option<Duration>,
    ) -> Result<Export<'c>> {
        Self::start_keeping(conn, plan, options, connect)
            .await
            .map_err(|(e, _)| e)
    }

    /// As [`Export::start`], handing the connection back, ready for the next statement, when
    /// the export failed to start and the connection is still usable.
    pub(crate) async fn start_keeping(
        conn: ConnSlot<'c>,
        plan: DescribedSource,
        options: &ExportOptions,
        connect: Option<Duration>,
    ) -> std::result::Result<Export<'c>, (Error, Option<ConnSlot<'c>>)> {
        let options = &options.limited();
        let (describe, catalog) = (plan.describe_time, plan.catalog_time);
        let now = Instant::now();
        let started = now
            .checked_sub(describe + connect.unwrap_or_default())
            .unwrap_or(now);
        let mut columns = plan.columns;
        let copy_sent = Instant::now();
        let mut copy = match CopyOut::try_start(conn, &plan.copy_sql).await {
            Ok(copy) => copy,
            Err((e, mut conn)) => {
                let usable = BorrowMut::<Connection>::borrow_mut(&mut conn).is_ready();
                return Err((e.into(), usable.then_some(conn)));
            }
        };
        let begun = async {
            if !copy.is_binary() {
                return Err(Error::unexpected(
                    "the server started a text COPY instead of binary",
                ));
            }
            let (prefix, _) = settle_array_depths(&mut copy, &mut columns, options).await?;
            let decoder = CopyDecoder::with_policies(columns, options.decode, options.policies)?;
            Ok((prefix, decoder))
        }
        .await;
        let (prefix, decoder) = match begun {
            Ok(begun) => begun,
            Err(e) => return Err((e, copy.into_connection().await.ok())),
        };
        let cancel = copy.cancel_token();
        let stats = ExportStats {
            connect: connect.unwrap_or_default(),
            describe,
            catalog,
            ..ExportStats::default()
        };
        Ok(Export {
            schema: decoder.schema(),
            cancel,
            core: Some(Box::new(Core {
                copy,
                prefix,
                prefix_used: 0,
                decoder,
                finished: false,
                rows: 0,
                batches: 0,
                copy_sent,
                first_byte: None,
                read: Duration::ZERO,
                decode: Duration::ZERO,
                finish: None,
            })),
            pending: None,
            stats,
            started,
            ended: None,
        })
    }

    /// Runs `sql` on the connection once the COPY has ended and every row was decoded; the
    /// export fails if it fails.
    pub(crate) fn finish_with(&mut self, sql: &'static str) {
        if let Some(core) = self.core.as_mut() {
            core.finish = Some(sql);
        }
    }

    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows handed out so far.
    pub fn rows(&self) -> u64 {
        self.stats.rows
    }

    /// Bytes of COPY data received so far (as of the last batch).
    pub fn bytes(&self) -> u64 {
        self.stats.bytes
    }

    /// What is needed to cancel this export's query from elsewhere (a signal handler).
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Lossy conversions the policies made so far (empty under the default policies).
    pub fn losses(&self) -> LossReport {
        self.stats.losses.clone()
    }

    /// What the export did so far: counts and time per phase, as of the last batch handed out
    /// (the `total` and `peak_rss` are read now).
    pub fn stats(&self) -> ExportStats {
        let mut stats = self.stats.clone();
        stats.total = self.ended.unwrap_or_else(|| self.started.elapsed());
        stats.peak_rss = peak_rss();
        stats
    }

    /// Stops the export: cancels the query on the server and drains the connection back to
    /// ReadyForQuery, so that the client can run further queries.
    ///
    /// # Errors
    /// See [`pgarrow_protocol::CopyOut::cancel`].
    pub async fn cancel(mut self) -> Result<()> {
        if let Some(pending) = self.pending.take() {
            // A batch was being read: ask the server to stop, then let the read see it.
            let _ = self.cancel.cancel().await;
            let (core, _) = pending.await;
            self.core = Some(core);
        }
        match self.core.take() {
            // After a decode error too: the COPY is drained and the connection usable again.
            Some(core) => Ok(core.copy.cancel().await?),
            None => Ok(()),
        }
    }

    /// Ends the export (cancelling its query when it has not ended) and hands back the
    /// client whose connection it owned ([`Client::into_export`](crate::Client::into_export)),
    /// ready for the next statement of the same session: a transaction goes on. `None` for an
    /// export that borrows its client, which has it back once the export is dropped.
    ///
    /// # Errors
    /// As [`Export::cancel`]: the connection could not be brought back; it is closed.
    pub async fn into_client(mut self) -> Result<Option<crate::Client>> {
        if let Some(pending) = self.pending.take() {
            let _ = self.cancel.cancel().await;
            let (core, _) = pending.await;
            self.core = Some(core);
        }
        let Some(core) = self.core.take() else {
            return Ok(None);
        };
        match core.copy.into_connection().await? {
            ConnSlot::Owned(conn) => Ok(Some(crate::Client::from_connection(*conn))),
            ConnSlot::Borrowed(_) => Ok(None),
        }
    }

    /// The next batch, or `None` at the end.
    ///
    /// # Errors
    /// The server's error (SQLSTATE and message), a value that cannot be decoded (row,
    /// column, type), a broken connection, or a row-count mismatch; each carries the rows
    /// delivered before it.
    pub async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        std::future::poll_fn(|cx| self.poll_batch(cx)).await
    }

    fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<RecordBatch>>> {
        if self.pending.is_none() {
            let Some(mut core) = self.core.take() else {
                return Poll::Ready(Ok(None));
            };
            if core.finished {
                self.core = Some(core);
                return Poll::Ready(Ok(None));
            }
            self.pending = Some(Box::pin(async move {
                let result = core.next_batch().await;
                (core, result)
            }));
        }
        let pending = self.pending.as_mut().expect("set above");
        let (core, result) = ready!(pending.as_mut().poll(cx));
        self.pending = None;
        self.stats.rows = core.rows;
        self.stats.batches = core.batches;
        self.stats.bytes = core.copy.bytes();
        self.stats.first_byte = core.first_byte.unwrap_or_default();
        self.stats.read = core.read;
        self.stats.decode = core.decode;
        self.stats.losses = core.decoder.losses();
        if core.finished {
            self.ended = Some(self.started.elapsed());
        }
        self.core = Some(core);
        Poll::Ready(result)
    }
}

/// Settles the depth of the array columns whose dimensions come from the data
/// ([`TypeMapping::list_depth_from_data`](crate::TypeMapping::list_depth_from_data)): reads the COPY
/// ahead until each has a non-empty value, a batch's worth of rows or bytes went by, or the COPY
/// ended, and plans each with the depth it saw (a column with no value keeps the dimensions it
/// declares, one when none). Returns the bytes read, for the decoder to take first, and each
/// such column's depth when one was seen.
///
/// The one place depths are settled: a single export does it on its own COPY, and a
/// partitioned export's plan on a COPY of the source's first rows ([`probe_array_depths`]).
async fn settle_array_depths(
    copy: &mut CopyOut<ConnSlot<'_>>,
    columns: &mut [crate::ColumnMapping],
    options: &ExportOptions,
) -> Result<(Vec<u8>, Vec<(usize, Option<usize>)>)> {
    let targets: Vec<usize> = (0..columns.len())
        .filter(|&i| columns[i].kind.list_depth_from_data())
        .collect();
    let mut prefix = Vec::new();
    if targets.is_empty() {
        return Ok((prefix, Vec::new()));
    }
    let mut depths = ArrayDepths::new(targets.clone());
    while !depths.scan(&prefix)
        && prefix.len() < options.decode.batch_bytes
        && depths.rows() < options.decode.batch_rows as u64
    {
        let chunk = copy.fill().await?;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        prefix.extend_from_slice(chunk);
        copy.consume(n);
    }
    let mut settled = Vec::with_capacity(targets.len());
    for i in targets {
        let dims = depths.depth(i);
        if let Some(dims) = dims {
            columns[i].kind = columns[i].kind.with_list_depth(dims);
        }
        settled.push((i, dims));
    }
    Ok((prefix, settled))
}

/// Settles the array depths of `sql`'s columns (see [`settle_array_depths`]) from a COPY of
/// its first `batch_rows` rows on `conn`, before any part of a partitioned export runs (its
/// parts must agree on one schema); a column with no value there keeps the dimensions it
/// declares (one when none). The
/// connection is idle again after it. Returns each such column's depth.
pub(crate) async fn probe_array_depths(
    conn: &mut Connection,
    sql: &str,
    columns: &mut [crate::ColumnMapping],
    options: &ExportOptions,
) -> Result<Vec<(usize, usize)>> {
    if !columns.iter().any(|c| c.kind.list_depth_from_data()) {
        return Ok(Vec::new());
    }
    let first_rows = format!(
        "SELECT * FROM ({sql}\n) AS _pgarrow_probe LIMIT {}",
        options.decode.batch_rows
    );
    let copy_sql = crate::described::copy_statement(&first_rows, columns);
    let mut copy = CopyOut::start(ConnSlot::Borrowed(conn), &copy_sql).await?;
    let (_, seen) = settle_array_depths(&mut copy, columns, options).await?;
    let settled: Vec<(usize, usize)> = seen
        .into_iter()
        .map(|(i, dims)| {
            // No value seen: the dimensions planned (declared, else one).
            let planned = match &columns[i].kind {
                crate::mapping::TypeMapping::List { dims, .. } => *dims,
                _ => 1,
            };
            let dims = dims.unwrap_or(planned);
            columns[i].kind = columns[i].kind.with_list_depth(dims);
            (i, dims)
        })
        .collect();
    // The rest of those rows (a batch at most) is read, to leave the connection idle.
    loop {
        let n = copy.fill().await?.len();
        if n == 0 {
            break;
        }
        copy.consume(n);
    }
    Ok(settled)
}

impl Stream for Export<'_> {
    type Item = Result<RecordBatch>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_batch(cx).map(Result::transpose)
    }
}

impl Core<'_> {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        match self.next_inner().await {
            Ok(Some(batch)) => {
                self.rows += batch.num_rows() as u64;
                self.batches += 1;
                Ok(Some(batch))
            }
            Ok(None) => {
                self.finished = true;
                Ok(None)
            }
            Err(e) => {
                self.finished = true;
                Err(e.with_rows(self.rows))
            }
        }
    }

    async fn next_inner(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            let started = Instant::now();
            let batch = self.drain();
            self.decode += started.elapsed();
            if let Some(batch) = batch? {
                return Ok(Some(batch));
            }
            let started = Instant::now();
            let n = self.copy.fill().await?.len();
            match self.first_byte {
                None if n > 0 => self.first_byte = Some(self.copy_sent.elapsed()),
                _ => self.read += started.elapsed(),
            }
            if n == 0 {
                let started = Instant::now();
                let last = self.decoder.finish();
                self.decode += started.elapsed();
                let last = last?;
                let decoded = self.decoder.rows_decoded();
                if let Some(server) = self.copy.rows()
                    && server != decoded
                {
                    return Err(ErrorKind::RowCount { server, decoded }.into());
                }
                if let Some(sql) = self.finish.take() {
                    let conn = self.copy.ended_connection().ok_or_else(|| {
                        Error::unexpected("the connection is not idle after the COPY")
                    })?;
                    conn.simple_query(sql).await?;
                }
                return Ok(last);
            }
        }
    }

    /// Decodes everything already read, without awaiting the socket, until a batch is ready:
    /// the whole CopyData messages in the read buffer, walked by the protocol's framing and
    /// decoded in place, then through `buffered` what is left (a message cut off at the end of
    /// the read, the rest of one a full batch stopped in).
    fn drain(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.decoder.has_batch()
                && let Some(batch) = self.decoder.flush()?
            {
                return Ok(Some(batch));
            }
            loop {
                if self.prefix_used < self.prefix.len() {
                    self.prefix_used += self.decoder.decode(&self.prefix[self.prefix_used..])?;
                    if self.prefix_used == self.prefix.len() {
                        self.prefix = Vec::new();
                        self.prefix_used = 0;
                    }
                    if self.decoder.has_batch() {
                        break;
                    }
                    continue;
                }
                if let Some(mut walk) = self.copy.walk() {
                    let stopped = self.decoder.decode_payloads(walk.buf(), &mut walk)?;
                    let walked = walk.finish(stopped);
                    self.copy.consume_walk(walked);
                    if self.decoder.has_batch() {
                        break;
                    }
                }
                let Some(chunk) = self.copy.buffered() else {
                    break;
                };
                let used = self.decoder.decode(chunk)?;
                self.copy.consume(used);
                if self.decoder.has_batch() {
                    break;
                }
            }
            if !self.decoder.has_batch() {
                return Ok(None);
            }
        }
    }
}
