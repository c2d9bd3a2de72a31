//! The push decoder for PostgreSQL's binary COPY format.
//!
//! BE ADVISED: the input arrives in chunks split anywhere (CopyData messages, file reads, fuzz
//! input), so every unit of the format (the header, a tuple's field count, a field's length, a
//! field's body) may straddle two calls. The fast path decodes units straight from `input`; a
//! unit that is cut off is copied into one reusable scratch buffer and completed on the next
//! call. The scratch buffer only ever grows by bytes actually received, never by a length read
//! from the stream, so a corrupt length cannot make us allocate gigabytes.
//!
//! Stream layout (PostgreSQL `doc/src/sgml/ref/copy.sgml`, "Binary Format"): the 11-byte
//! signature `PGCOPY\n\xff\r\n\0`, i32 flags, i32 header-extension length plus that many bytes;
//! then tuples of i16 field count and per field an i32 length (-1 is NULL) and the bytes; then
//! the trailer, an i16 -1.
//!
//! Over ~600 lines on purpose: the state machine of the general path and the two row loops of
//! the fast path (`decode_rows` on a plain stream, `decode_payloads` on CopyData payloads)
//! share their invariants (when the decoder is between rows, what `scratch` holds, how the
//! stream offset advances), which are easier to check side by side.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_schema::{Schema, SchemaRef};

use crate::PgColumn;
use crate::column::Cx;
use crate::column::{Column, FinishError};
use crate::column_mapping::ColumnMapping;
use crate::error::{Error, ErrorKind, FieldError, Result};
use crate::policy::{LossReport, Losses, Policies};

/// The 11-byte signature that starts every binary COPY stream.
pub const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Header flag bit 16: each tuple carries an OID field not counted in the field count.
const FLAG_HAS_OIDS: u32 = 1 << 16;
/// Header flag bits 16..31 are critical: an unknown one means we cannot read the stream.
const CRITICAL_FLAGS: u32 = 0xffff_0000;

/// Default number of rows per batch.
pub const DEFAULT_BATCH_ROWS: usize = 65_536;
/// Default number of field bytes per batch.
pub const DEFAULT_BATCH_BYTES: usize = 64 << 20;
/// The largest allowed `batch_bytes`: with PostgreSQL's 1 GiB row limit this keeps every
/// variable-width array under Arrow's 2 GiB offset limit.
pub const MAX_BATCH_BYTES: usize = 1 << 30;

/// How the decoder cuts batches: [`DecodeOptions::default`], then `with_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeOptions {
    /// A batch is ready after this many rows.
    pub batch_rows: usize,
    /// A batch is ready once its rows hold this many field bytes (clamped to
    /// [`MAX_BATCH_BYTES`]).
    pub batch_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            batch_rows: DEFAULT_BATCH_ROWS,
            batch_bytes: DEFAULT_BATCH_BYTES,
        }
    }
}

impl DecodeOptions {
    /// A batch is ready after `rows` rows.
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows;
        self
    }

    /// A batch is ready once its rows hold `bytes` field bytes.
    pub fn with_batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for signature, flags and extension length (19 bytes).
    Header,
    /// Skipping the header extension.
    HeaderExt {
        remaining: usize,
    },
    /// At a tuple boundary: a field count or the trailer comes next.
    TupleStart,
    /// Skipping the per-tuple OID field (flag bit 16): its length, then its body.
    OidLen,
    OidBody {
        remaining: usize,
    },
    /// Waiting for the length of field `col`.
    FieldLen {
        col: usize,
    },
    /// Waiting for `len` body bytes of field `col`.
    FieldBody {
        col: usize,
        len: usize,
    },
    /// The trailer was read; nothing may follow.
    Done,
}

/// Decodes a binary COPY stream into Arrow [`RecordBatch`]es.
///
/// Call [`decode`](CopyDecoder::decode) with bytes as they arrive; when
/// [`has_batch`](CopyDecoder::has_batch) is true (it stopped early to let you), or whenever you
/// like, call [`flush`](CopyDecoder::flush); at the end call [`finish`](CopyDecoder::finish).
///
/// ```
/// use pgarrow_decode::{CopyDecoder, DecodeOptions, PgColumn, types::oid};
///
/// // COPY (SELECT 7::int4 AS n) TO STDOUT (FORMAT binary)
/// let mut bytes = b"PGCOPY\n\xff\r\n\0".to_vec();
/// bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // flags, extension length
/// bytes.extend_from_slice(&[0, 1, 0, 0, 0, 4, 0, 0, 0, 7]); // 1 field, 4 bytes: 7
/// bytes.extend_from_slice(&[0xff, 0xff]); // trailer
///
/// let columns = vec![PgColumn::new("n", oid::INT4, -1)];
/// let mut decoder = CopyDecoder::new(columns, DecodeOptions::default())?;
/// let mut input = &bytes[..];
/// while !input.is_empty() {
///     let used = decoder.decode(input)?;
///     input = &input[used..];
/// }
/// let batch = decoder.finish()?.expect("one row");
/// assert_eq!(batch.num_rows(), 1);
/// # Ok::<(), pgarrow_decode::Error>(())
/// ```
#[derive(Debug)]
pub struct CopyDecoder {
    schema: SchemaRef,
    plans: Vec<ColumnMapping>,
    columns: Vec<Column>,
    options: DecodeOptions,
    policies: Policies,
    losses: Vec<Losses>,
    state: State,
    scratch: Vec<u8>,
    has_oids: bool,
    /// Rows completed since the last flush.
    batch_rows: usize,
    /// Field bytes in complete rows since the last flush.
    batch_bytes: usize,
    /// Field bytes of the row being decoded: they count toward the batch when it completes,
    /// so a batch is never "full" in the middle of a row.
    row_bytes: usize,
    /// Rows completed before the current batch.
    rows_flushed: u64,
    /// Bytes consumed before the current `decode` call.
    offset: u64,
}

impl CopyDecoder {
    /// A decoder for a stream whose columns the server described as `columns`, each decoded by
    /// its own decoder or, for types without one, as text (the caller must then have cast it).
    pub fn new(columns: Vec<PgColumn>, options: DecodeOptions) -> Result<Self> {
        Self::with_plans(
            columns.into_iter().map(ColumnMapping::for_column).collect(),
            options,
        )
    }

    /// A decoder for explicitly planned columns, with the default policies.
    pub fn with_plans(plans: Vec<ColumnMapping>, options: DecodeOptions) -> Result<Self> {
        Self::with_policies(plans, options, Policies::default())
    }

    /// A decoder for planned columns and the policies they were planned with.
    pub fn with_policies(
        plans: Vec<ColumnMapping>,
        options: DecodeOptions,
        policies: Policies,
    ) -> Result<Self> {
        let options = DecodeOptions {
            batch_rows: options.batch_rows.max(1),
            batch_bytes: options.batch_bytes.clamp(1, MAX_BATCH_BYTES),
        };
        let schema = Arc::new(Schema::new(
            plans.iter().map(ColumnMapping::field).collect::<Vec<_>>(),
        ));
        let first = options.batch_rows.min(1024);
        let columns = plans.iter().map(|p| Column::new(&p.kind, first)).collect();
        let losses = vec![Losses::default(); plans.len()];
        Ok(CopyDecoder {
            schema,
            plans,
            columns,
            options,
            policies,
            losses,
            state: State::Header,
            scratch: Vec::new(),
            has_oids: false,
            batch_rows: 0,
            batch_bytes: 0,
            row_bytes: 0,
            rows_flushed: 0,
            offset: 0,
        })
    }

    /// The Arrow schema of the batches this decoder produces.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The column plans, in order.
    pub fn plans(&self) -> &[ColumnMapping] {
        &self.plans
    }

    /// Rows fully decoded so far, flushed or not.
    pub fn rows_decoded(&self) -> u64 {
        self.rows_flushed + self.batch_rows as u64
    }

    /// Bytes of COPY stream consumed so far.
    pub fn bytes_consumed(&self) -> u64 {
        self.offset
    }

    /// Whether a batch is full: `decode` consumes nothing more until it is flushed.
    ///
    /// Only ever true between rows, so [`flush`](CopyDecoder::flush) then returns a batch.
    pub fn has_batch(&self) -> bool {
        self.batch_rows >= self.options.batch_rows || self.batch_bytes >= self.options.batch_bytes
    }

    /// Lossy conversions made so far under the policies, per column.
    pub fn losses(&self) -> LossReport {
        LossReport {
            columns: self
                .plans
                .iter()
                .zip(&self.losses)
                .filter(|(_, l)| !l.is_empty())
                .map(|(p, l)| (p.column.name.clone(), *l))
                .collect(),
        }
    }

    /// Whether the trailer has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes bytes from `input` and returns how many were used.
    ///
    /// It uses all of `input` unless a batch fills up first (see
    /// [`has_batch`](CopyDecoder::has_batch)); a unit cut off at the end of `input` is kept and
    /// completed by the next call.
    ///
    /// # Errors
    /// Malformed stream structure is [`ErrorKind::Protocol`]; a value that cannot be represented
    /// is [`ErrorKind::Value`] with its row and column. After an error the decoder must not be
    /// used again.
    pub fn decode(&mut self, input: &[u8]) -> Result<usize> {
        let mut pos = 0;
        let ncols = self.columns.len();
        'units: loop {
            match self.state {
                State::Header => {
                    let Some(h) = take(&mut self.scratch, input, &mut pos, 19) else {
                        break;
                    };
                    if &h[..11] != SIGNATURE {
                        return Err(self.protocol_err(0, "missing PGCOPY signature"));
                    }
                    let flags = u32::from_be_bytes([h[11], h[12], h[13], h[14]]);
                    let ext = i32::from_be_bytes([h[15], h[16], h[17], h[18]]);
                    self.scratch.clear();
                    if flags & CRITICAL_FLAGS & !FLAG_HAS_OIDS != 0 {
                        return Err(self.protocol_err(
                            11,
                            format!("unknown critical header flags 0x{flags:08x}"),
                        ));
                    }
                    self.has_oids = flags & FLAG_HAS_OIDS != 0;
                    let Ok(ext) = usize::try_from(ext) else {
                        return Err(self.protocol_err(15, "negative header extension length"));
                    };
                    self.state = State::HeaderExt { remaining: ext };
                }
                State::HeaderExt { remaining } => {
                    let n = remaining.min(input.len() - pos);
                    pos += n;
                    if n < remaining {
                        self.state = State::HeaderExt {
                            remaining: remaining - n,
                        };
                        break;
                    }
                    self.state = State::TupleStart;
                }
                State::TupleStart => {
                    if self.scratch.is_empty() && !self.has_oids {
                        self.decode_rows(input, &mut pos)?;
                        if self.state != State::TupleStart {
                            continue;
                        }
                        // All used: the common end of a call, as the client hands over one
                        // CopyData message (one row) at a time.
                        if pos == input.len() {
                            break;
                        }
                    }
                    if self.has_batch() {
                        break;
                    }
                    let at = pos;
                    let Some(b) = take(&mut self.scratch, input, &mut pos, 2) else {
                        break;
                    };
                    let count = i16::from_be_bytes([b[0], b[1]]);
                    self.scratch.clear();
                    if count == -1 {
                        self.state = State::Done;
                        continue;
                    }
                    if count as usize != ncols || count < 0 {
                        return Err(self.protocol_err(
                            at,
                            format!("tuple has {count} fields, expected {ncols}"),
                        ));
                    }
                    // With zero columns, FieldLen { col: 0 } ends the row at once.
                    self.state = if self.has_oids {
                        State::OidLen
                    } else {
                        State::FieldLen { col: 0 }
                    };
                }
                State::OidLen => {
                    let at = pos;
                    let Some(b) = take(&mut self.scratch, input, &mut pos, 4) else {
                        break;
                    };
                    let len = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                    self.scratch.clear();
                    self.state = State::OidBody {
                        remaining: usize::try_from(len.max(0)).unwrap_or(0),
                    };
                    if len < -1 {
                        return Err(self.protocol_err(at, format!("bad OID field length {len}")));
                    }
                }
                State::OidBody { remaining } => {
                    let n = remaining.min(input.len() - pos);
                    pos += n;
                    if n < remaining {
                        self.state = State::OidBody {
                            remaining: remaining - n,
                        };
                        break;
                    }
                    self.state = State::FieldLen { col: 0 };
                }
                State::FieldLen { mut col } => {
                    // Fast path: whole fields straight from `input`.
                    while col < ncols {
                        if !self.scratch.is_empty() || input.len() - pos < 4 {
                            let at = pos;
                            let Some(b) = take(&mut self.scratch, input, &mut pos, 4) else {
                                self.state = State::FieldLen { col };
                                break 'units;
                            };
                            let len = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                            self.scratch.clear();
                            if len == -1 {
                                self.columns[col].push_null();
                                col += 1;
                                continue;
                            }
                            let len = self.field_len(at, len)?;
                            self.state = State::FieldBody { col, len };
                            continue 'units;
                        }
                        let at = pos;
                        let len = i32::from_be_bytes([
                            input[pos],
                            input[pos + 1],
                            input[pos + 2],
                            input[pos + 3],
                        ]);
                        pos += 4;
                        if len == -1 {
                            self.columns[col].push_null();
                            col += 1;
                            continue;
                        }
                        let len = self.field_len(at, len)?;
                        if input.len() - pos < len {
                            self.state = State::FieldBody { col, len };
                            continue 'units;
                        }
                        let body = &input[pos..pos + len];
                        pos += len;
                        let mut cx = Cx {
                            policies: &self.policies,
                            losses: &mut self.losses[col],
                        };
                        if let Err(e) = self.columns[col].push(body, &mut cx) {
                            let offset = self.offset + (pos - len) as u64;
                            return Err(self.value_err(col, offset, e));
                        }
                        self.row_bytes += len;
                        col += 1;
                    }
                    self.end_row();
                    self.state = State::TupleStart;
                }
                State::FieldBody { col, len } => {
                    let Some(body) = take(&mut self.scratch, input, &mut pos, len) else {
                        break;
                    };
                    let mut cx = Cx {
                        policies: &self.policies,
                        losses: &mut self.losses[col],
                    };
                    let res = self.columns[col].push(body, &mut cx);
                    self.scratch.clear();
                    if let Err(e) = res {
                        // The body ends at `pos` of this input (it may have begun in an
                        // earlier one).
                        let offset = (self.offset + pos as u64).saturating_sub(len as u64);
                        return Err(self.value_err(col, offset, e));
                    }
                    self.row_bytes += len;
                    if col + 1 == ncols {
                        self.end_row();
                        self.state = State::TupleStart;
                    } else {
                        self.state = State::FieldLen { col: col + 1 };
                    }
                }
                State::Done => {
                    if pos < input.len() {
                        return Err(self.protocol_err(pos, "data after the COPY trailer"));
                    }
                    break;
                }
            }
        }
        self.offset += pos as u64;
        Ok(pos)
    }

    /// Builds a RecordBatch from the rows buffered since the last flush, if there are any.
    ///
    /// Returns `None` when no row is complete, or when called in the middle of a row (the
    /// buffered values stay for the next flush): call it when [`decode`](CopyDecoder::decode)
    /// stopped with [`has_batch`](CopyDecoder::has_batch), or whenever you like between rows.
    ///
    /// # Errors
    /// A text value that is not valid UTF-8 is reported here, with its row and column.
    pub fn flush(&mut self) -> Result<Option<RecordBatch>> {
        // Mid-row, some columns hold one value more than others: keep everything buffered.
        let between_rows = matches!(
            self.state,
            State::Header | State::HeaderExt { .. } | State::TupleStart | State::Done
        );
        if self.batch_rows == 0 || !between_rows {
            return Ok(None);
        }
        let rows = self.batch_rows;
        let mut arrays = Vec::with_capacity(self.columns.len());
        for (col, column) in self.columns.iter_mut().enumerate() {
            let mut cx = Cx {
                policies: &self.policies,
                losses: &mut self.losses[col],
            };
            match column.finish(rows.min(self.options.batch_rows), &mut cx) {
                Ok(a) => arrays.push(a),
                Err(FinishError::Field { index, error }) => {
                    let row = self.rows_flushed + index as u64 + 1;
                    return Err(value_error(&self.plans[col], col, row, None, error));
                }
                Err(FinishError::Arrow(e)) => return Err(e.into()),
            }
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)?;
        self.rows_flushed += rows as u64;
        self.batch_rows = 0;
        self.batch_bytes = 0;
        Ok(Some(batch))
    }

    /// Ends the stream: fails if it stopped before the trailer, else flushes the last rows.
    ///
    /// # Errors
    /// A stream that ended in the header, mid-tuple or without the trailer.
    pub fn finish(&mut self) -> Result<Option<RecordBatch>> {
        match self.state {
            State::Done => self.flush(),
            State::Header | State::HeaderExt { .. } => {
                Err(self.protocol_err(0, "stream ended inside the COPY header"))
            }
            State::TupleStart => Err(self.protocol_err(0, "stream ended without the COPY trailer")),
            _ => Err(self.protocol_err(0, "stream ended in the middle of a row")),
        }
    }

    /// The fast path: whole rows straight from `input`, each field going to its column's
    /// inlined [`Column::push_fast`], until a batch is full or a row is cut off or unusual.
    ///
    /// It returns in state `TupleStart` when the next tuple's field count is not all there or
    /// is not an ordinary row (the trailer, a wrong count: the general path deals with it),
    /// or in `FieldLen` when a row is cut off mid-way (or has a bad length) at a field the
    /// general path takes over from. Only called at a tuple boundary with nothing pending.
    #[inline]
    fn decode_rows(&mut self, input: &[u8], pos: &mut usize) -> Result<()> {
        debug_assert!(self.scratch.is_empty() && self.state == State::TupleStart);
        let Some(count) = self.wire_count() else {
            return Ok(());
        };
        while !self.has_batch() {
            if input.get(*pos..*pos + 2) != Some(&count[..]) {
                break;
            }
            // `self.offset` is the stream offset of `input[0]` until the call returns.
            let row = self.row::<false>(input, *pos + 2, input.len(), pos);
            if !row.map_err(|e| e.rebased(self.offset))? {
                break;
            }
        }
        Ok(())
    }

    /// Decodes the payloads of CopyData messages lying in `buf`, as they arrived from the
    /// server: `payloads` yields each one's range of `buf`, in order (the protocol crate's
    /// `framing::CopyDataWalk` walks a read buffer so). PostgreSQL sends one row per message:
    /// such a payload is decoded in place by the fast path, and a row's last text value may be
    /// copied as a block that runs on into the next message, since the buffer goes on; any
    /// other payload (the header, the trailer, a row split across messages, several rows in
    /// one) goes through [`decode`](CopyDecoder::decode). The decoder never sees a message
    /// header.
    ///
    /// It takes payloads until a batch is full ([`has_batch`](CopyDecoder::has_batch)) or
    /// there are no more. Each payload taken is used whole, except when a batch fills inside
    /// one: then it returns `Some(at)`, the index in `buf` of the first byte not used (in the
    /// last payload taken), whose rest is for `decode` once the batch is flushed. `None` means
    /// every payload taken was used whole.
    ///
    /// # Errors
    /// As [`decode`](CopyDecoder::decode).
    pub fn decode_payloads(
        &mut self,
        buf: &[u8],
        payloads: &mut impl Iterator<Item = Range<usize>>,
    ) -> Result<Option<usize>> {
        loop {
            // The hot loop: one whole row per payload, as PostgreSQL sends them, decoded in
            // place while the decoder stays between rows; what it declines (the header, the
            // trailer, a row over several messages) comes back here as `rest`.
            let rest = match self.fast_payloads(buf, payloads) {
                Ok(Some(rest)) => rest,
                Ok(None) => return Ok(None),
                Err(e) => return Err(e),
            };
            let at = rest.start + self.decode(&buf[rest.clone()])?;
            if at < rest.end {
                return Ok(Some(at));
            }
            if self.has_batch() {
                return Ok(None);
            }
        }
    }

    /// The payloads that each hold one whole row, until a batch is full (`None`) or one that
    /// does not (returned, less what was used of it, for the general path).
    ///
    /// A function of its own, with the row loop inlined into it: inlined into
    /// `decode_payloads`, or with the row out of line, the row loop lost registers
    /// (callgrind: 2-4% more instructions per row).
    #[inline(never)]
    fn fast_payloads(
        &mut self,
        buf: &[u8],
        payloads: &mut impl Iterator<Item = Range<usize>>,
    ) -> Result<Option<Range<usize>>> {
        let fast = self.state == State::TupleStart && self.scratch.is_empty() && !self.has_oids;
        let count = self.wire_count().filter(|_| fast);
        let mut data = 0;
        let mut out = Ok(None);
        while !self.has_batch() {
            let Some(Range { start, end }) = payloads.next() else {
                break;
            };
            // (`end <= buf.len()` also tells the compiler what the walk knows, which spares
            // the row loop bounds checks.)
            let Some(count) = count
                .filter(|c| end <= buf.len() && end >= start + 2 && buf[start..start + 2] == c[..])
            else {
                out = Ok(Some(start..end));
                break;
            };
            let mut at = start;
            let row = self.row::<true>(buf, start + 2, end, &mut at);
            let _ = count;
            match row {
                Ok(true) if at == end => data += end - start,
                // The row ended before its message did, or was cut off at its end: the rest
                // of the message goes to `decode`.
                Ok(_) => {
                    data += at - start;
                    out = Ok(Some(at..end));
                    break;
                }
                Err(e) => {
                    // The payload starts at stream offset `self.offset + data`.
                    let base = (self.offset + data as u64).wrapping_sub(start as u64);
                    data += at - start;
                    out = Err(e.rebased(base));
                    break;
                }
            }
        }
        self.offset += data as u64;
        out
    }

    /// One row's fields from `input[p..end]`, the field count already read (a value error's
    /// offset is an index into `input`, for the caller to rebase); `*pos` is set to
    /// where the row ended (returns `true`) or where it was cut off, to be taken up by the
    /// general path in state `FieldLen` (returns `false`). A value may be copied from `input`
    /// past `end` as part of a fixed-size block (see [`Column::push_fast`]); only `FRAMED`
    /// callers pass an `end` short of the input's.
    #[inline(always)]
    fn row<const FRAMED: bool>(
        &mut self,
        input: &[u8],
        mut p: usize,
        end: usize,
        pos: &mut usize,
    ) -> Result<bool> {
        let ncols = self.columns.len();
        let frame = if FRAMED { &input[..end] } else { input };
        let fields = p;
        // The column index is only needed off the fast path: it is worked out from what is
        // left of the iterator there, so the loop does not carry it (nor a byte count: a
        // row's field bytes are its length less the 4-byte field lengths). Both cost
        // registers, and the loop already spills.
        let mut columns = self.columns.iter_mut();
        while let Some(column) = columns.next() {
            let Some(&len) = frame.get(p..p + 4).and_then(|b| b.first_chunk::<4>()) else {
                let left = columns.len();
                return Ok(self.cut_row(pos, p, fields, left));
            };
            let len = i32::from_be_bytes(len);
            if len == -1 {
                push_null_outlined(column);
                p += 4;
                continue;
            }
            // A negative length other than -1 is refused by the general path. Read as a u32,
            // it is longer than any message (at most i32::MAX bytes): only a plain input, which
            // may be longer, needs its sign checked.
            let len = if FRAMED {
                len as u32 as usize
            } else if let Ok(len) = usize::try_from(len) {
                len
            } else {
                let left = columns.len();
                return Ok(self.cut_row(pos, p, fields, left));
            };
            let Some(body) = frame[p + 4..].get(..len) else {
                let left = columns.len();
                return Ok(self.cut_row(pos, p, fields, left));
            };
            let rest = &input[p + 4..];
            p += 4 + len;
            if !column.push_fast(body, rest) {
                let col = ncols - 1 - columns.len();
                let mut cx = Cx {
                    policies: &self.policies,
                    losses: &mut self.losses[col],
                };
                if let Err(e) = push_outlined(column, body, &mut cx) {
                    let offset = (p - len) as u64;
                    *pos = p;
                    return Err(self.value_err(col, offset, e));
                }
            }
        }
        self.batch_rows += 1;
        self.batch_bytes += p - fields - 4 * ncols;
        *pos = p;
        Ok(true)
    }

    /// A tuple's field count as it appears on the wire when it equals the column count; `None`
    /// for more columns than an i16 counts (the general path then refuses every tuple).
    #[inline]
    fn wire_count(&self) -> Option<[u8; 2]> {
        i16::try_from(self.columns.len()).ok().map(i16::to_be_bytes)
    }

    /// Hands a row cut off at `p` to the general path: its fields started at `fields`, and
    /// `left` columns follow the one it was cut before. Each field before that one took its
    /// 4-byte length and its bytes, so the row's field bytes so far are the rest.
    #[cold]
    fn cut_row(&mut self, pos: &mut usize, p: usize, fields: usize, left: usize) -> bool {
        let col = self.columns.len() - 1 - left;
        *pos = p;
        self.row_bytes = p - fields - 4 * col;
        self.state = State::FieldLen { col };
        false
    }

    #[inline]
    fn end_row(&mut self) {
        self.batch_rows += 1;
        self.batch_bytes += std::mem::take(&mut self.row_bytes);
    }

    fn field_len(&self, at: usize, len: i32) -> Result<usize> {
        usize::try_from(len).map_err(|_| self.protocol_err(at, format!("bad field length {len}")))
    }

    fn protocol_err(&self, at: usize, message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
        let row = match self.state {
            State::Header | State::HeaderExt { .. } => 0,
            _ => self.rows_decoded() + 1,
        };
        Error::protocol(self.offset + at as u64, row, message)
    }

    /// The error for a value of column `col`, whose bytes start at byte `offset` of the
    /// stream.
    #[cold]
    fn value_err(&self, col: usize, offset: u64, e: FieldError) -> Error {
        value_error(
            &self.plans[col],
            col,
            self.rows_decoded() + 1,
            Some(offset),
            e,
        )
    }
}

/// [`Column::push`] kept out of the row loop: with it inlined there (as it may be wherever the
/// generic payload loop is instantiated) the loop was four times larger and 10-25% slower with
/// the same work, its hot path spread over more of the instruction cache.
#[inline(never)]
fn push_outlined(column: &mut Column, b: &[u8], cx: &mut Cx<'_>) -> crate::wire::FieldResult<()> {
    column.push(b, cx)
}

/// [`Column::push_null`] kept out of the row loop, as [`push_outlined`].
#[inline(never)]
fn push_null_outlined(column: &mut Column) {
    column.push_null();
}

#[cold]
fn value_error(
    plan: &ColumnMapping,
    column: usize,
    row: u64,
    offset: Option<u64>,
    cause: FieldError,
) -> Error {
    Error::new(ErrorKind::Value {
        row,
        column,
        name: plan.column.name.clone(),
        pg_type: plan.column.type_name.clone(),
        offset,
        cause,
    })
}

/// Returns the next `n` bytes of the stream, from `input` directly when they are all there and
/// nothing is pending, else through `scratch`; `None` when fewer than `n` are available yet (the
/// available ones are then kept in `scratch`). The caller clears `scratch` after using a unit.
#[inline]
fn take<'a>(
    scratch: &'a mut Vec<u8>,
    input: &'a [u8],
    pos: &mut usize,
    n: usize,
) -> Option<&'a [u8]> {
    let avail = input.len() - *pos;
    if scratch.is_empty() && avail >= n {
        let unit = &input[*pos..*pos + n];
        *pos += n;
        return Some(unit);
    }
    let want = n - scratch.len();
    let got = want.min(avail);
    scratch.extend_from_slice(&input[*pos..*pos + got]);
    *pos += got;
    if got == want {
        Some(&scratch[..])
    } else {
        None
    }
}
