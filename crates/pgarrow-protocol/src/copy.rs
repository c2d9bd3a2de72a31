//! `COPY ... TO STDOUT`: starting it, and reading its data in place ([`CopyOut`]).

use std::borrow::{Borrow, BorrowMut};
use std::time::Duration;

use bytes::Buf;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use crate::cancel::CancelToken;
use crate::conn::{COPY_LOWAT, Connection, State, malformed, parse_error};
use crate::error::{DbError, Error, Result};
use crate::framing::{CopyDataWalk, HEADER_LEN, Header, Walked, header, tag};

/// How long a COPY read waits for the low-water mark before taking what has arrived.
const LOWAT_WAIT: Duration = Duration::from_millis(2);
/// How long [`CopyOut::cancel`] waits for the server to stop after the cancel request.
const CANCEL_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

impl Connection {
    /// Starts `COPY ... TO STDOUT` (sent as a simple query) and returns the stream of its data.
    ///
    /// The statement must be a COPY TO STDOUT; its format is reported by
    /// [`CopyOut::is_binary`].
    ///
    /// # Errors
    /// The server's error before the copy starts (with the connection ready again), or a
    /// statement that is not a COPY TO STDOUT.
    pub async fn copy_out(&mut self, sql: &str) -> Result<CopyOut<&mut Connection>> {
        CopyOut::start(self, sql).await
    }

    /// Sends `sql` and waits for CopyOutResponse; returns whether the format is binary and
    /// whether the socket's low-water mark was raised.
    pub(crate) async fn start_copy_out(&mut self, sql: &str) -> Result<(bool, bool)> {
        self.check_idle()?;
        self.encode(|buf| frontend::query(sql, buf))?;
        self.state = State::Busy;
        self.flush().await?;
        let mut error = None;
        loop {
            match self.next_message(&mut error).await? {
                Message::CopyOutResponse(body) => {
                    self.state = State::InCopy;
                    // Wake up for 64 KiB at a time instead of each 8 KiB the server sends;
                    // with a read_timeout the plain path keeps its exact semantics.
                    let lowat = self.read_timeout.is_none() && self.set_recv_lowat(COPY_LOWAT);
                    return Ok((body.format() == 1, lowat));
                }
                Message::ReadyForQuery(_) => {
                    self.state = State::Idle;
                    return Err(match error {
                        Some(e) => Error::db(e),
                        None => Error::protocol("the statement did not start a COPY TO STDOUT"),
                    });
                }
                // A non-COPY statement: let it finish, then refuse.
                Message::RowDescription(_)
                | Message::DataRow(_)
                | Message::CommandComplete(_)
                | Message::EmptyQueryResponse => {}
                Message::CopyInResponse(_) => {
                    self.encode(|buf| {
                        frontend::copy_fail("pgarrow reads COPY TO STDOUT only", buf)
                    })?;
                    self.flush().await?;
                }
                other => return Err(self.unexpected(&other, "starting COPY")),
            }
        }
    }
}

/// The data of a running `COPY ... TO STDOUT`, read like a `BufRead`.
///
/// BE ADVISED: this is the hot loop. CopyData frames are walked in place in the connection's
/// one read buffer: [`fill`](CopyOut::fill) returns the part of the current frame that has
/// arrived (possibly a fraction of a frame, possibly ending mid-row) and
/// [`consume`](CopyOut::consume) advances past what the caller used. No message object and no
/// allocation per frame; a frame larger than the buffer simply arrives in several pieces, and
/// a frame claiming gigabytes allocates nothing before its bytes arrive.
///
/// # Termination
/// `fill` returns an empty slice once the server has sent CopyDone, CommandComplete and
/// ReadyForQuery. If the server reports an error instead, `fill` returns it after
/// ReadyForQuery, and the connection is usable again (a FATAL error, such as
/// `pg_terminate_backend`, is returned at once and ends the connection).
///
/// [`cancel`](CopyOut::cancel) stops the query and drains the connection back to
/// ReadyForQuery. Dropping a `CopyOut` before the end never hands the connection back
/// mid-COPY: the connection becomes unusable, its socket is shut down (so the server's next
/// write fails and the backend ends), and if a tokio runtime is running, a CancelRequest is
/// sent from a spawned task (for a query still computing its first rows).
#[derive(Debug)]
pub struct CopyOut<C: BorrowMut<Connection>> {
    /// `None` only once [`CopyOut::into_connection`] took it.
    conn: Option<C>,
    binary: bool,
    /// Bytes of the current CopyData frame not yet handed out.
    remaining: usize,
    rows: Option<u64>,
    error: Option<DbError>,
    done: bool,
    bytes: u64,
    /// Whether the socket's low-water mark is raised to [`COPY_LOWAT`] (reset when the COPY
    /// ends; a COPY dropped before its end leaves the connection unusable anyway).
    lowat: bool,
}

impl<C: BorrowMut<Connection>> CopyOut<C> {
    /// Runs `sql`, a `COPY ... TO STDOUT`, on `conn`, which the copy then holds: a borrowed
    /// `&mut Connection` ([`Connection::copy_out`]) or an owned `Connection` or
    /// `Box<Connection>`, for a copy that must outlive the scope that made it (a stream
    /// handed to another task, a reader kept in a struct).
    ///
    /// # Errors
    /// As [`Connection::copy_out`].
    pub async fn start(conn: C, sql: &str) -> Result<CopyOut<C>> {
        Self::try_start(conn, sql).await.map_err(|(e, _)| e)
    }

    /// As [`CopyOut::start`], handing `conn` back when the COPY did not start (the server
    /// refused it: a permission, a failing function at plan time), ready for the next
    /// statement when [`Connection::is_ready`] says so.
    ///
    /// # Errors
    /// As [`Connection::copy_out`], with the connection.
    pub async fn try_start(mut conn: C, sql: &str) -> std::result::Result<CopyOut<C>, (Error, C)> {
        let (binary, lowat) = match conn.borrow_mut().start_copy_out(sql).await {
            Ok(started) => started,
            Err(e) => return Err((e, conn)),
        };
        Ok(CopyOut {
            conn: Some(conn),
            binary,
            remaining: 0,
            rows: None,
            error: None,
            done: false,
            bytes: 0,
            lowat,
        })
    }

    #[inline]
    fn conn(&self) -> &Connection {
        Borrow::<Connection>::borrow(self.conn.as_ref().expect(TAKEN))
    }

    #[inline]
    fn conn_mut(&mut self) -> &mut Connection {
        BorrowMut::<Connection>::borrow_mut(self.conn.as_mut().expect(TAKEN))
    }

    fn reset_lowat(&mut self) {
        if std::mem::take(&mut self.lowat) {
            self.conn_mut().set_recv_lowat(1);
        }
    }

    /// The connection, once the COPY ended (its CommandComplete and ReadyForQuery read):
    /// ready for the next statement of the same transaction, such as its COMMIT.
    pub fn ended_connection(&mut self) -> Option<&mut Connection> {
        if self.done && self.conn().is_ready() {
            Some(self.conn_mut())
        } else {
            None
        }
    }

    /// Whether the server announced the binary format.
    pub fn is_binary(&self) -> bool {
        self.binary
    }

    /// The row count from CommandComplete, once it arrived.
    pub fn rows(&self) -> Option<u64> {
        self.rows
    }

    /// COPY data bytes handed out so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// What is needed to cancel this COPY from elsewhere.
    pub fn cancel_token(&self) -> CancelToken {
        self.conn().cancel_token()
    }

    /// Returns the next bytes of COPY data if they are already buffered: the synchronous part
    /// of [`fill`](CopyOut::fill), without a trip through the async machinery per frame.
    ///
    /// PostgreSQL sends one CopyData message per row, so a caller that drains `buffered`
    /// before awaiting `fill` handles a whole socket read (hundreds of rows) per await.
    /// `None` means "call `fill`": nothing is buffered, or the next message is not CopyData.
    #[inline]
    pub fn buffered(&mut self) -> Option<&[u8]> {
        if self.remaining == 0 {
            let buf = &self.conn_mut().read_buf;
            // A bad length is for `fill` to report.
            let Header::Message {
                tag: tag::COPY_DATA,
                body,
            } = header(buf)
            else {
                return None;
            };
            self.conn_mut().read_buf.advance(HEADER_LEN);
            self.remaining = body;
        }
        let n = self.remaining.min(self.conn_mut().read_buf.len());
        (n > 0).then(|| &self.conn_mut().read_buf[..n])
    }

    /// A walk over the whole CopyData messages buffered, for a decoder that reads rows in
    /// place from their payloads; `None` in the middle of a message or when nothing is
    /// buffered. Give what it used back with [`consume_walk`](CopyOut::consume_walk); what it
    /// stops at (any other message, one not fully arrived) is left for
    /// [`buffered`](CopyOut::buffered) and [`fill`](CopyOut::fill), which check every message.
    #[inline]
    pub fn walk(&self) -> Option<CopyDataWalk<'_>> {
        let buf = &self.conn().read_buf;
        (self.remaining == 0 && !buf.is_empty()).then(|| CopyDataWalk::new(buf))
    }

    /// Advances past what a walk from [`walk`](CopyOut::walk) used: its whole messages, and
    /// the used part of the last one, whose rest then comes through `buffered` or `fill`.
    ///
    /// # Panics
    /// If called in the middle of a message, or with a walk over more than is buffered.
    #[inline]
    pub fn consume_walk(&mut self, walked: Walked) {
        assert!(
            self.remaining == 0 && walked.bytes() <= self.conn_mut().read_buf.len(),
            "consumed a walk that was not handed out"
        );
        self.conn_mut().read_buf.advance(walked.bytes());
        self.remaining = walked.left();
        self.bytes += walked.data() as u64;
    }

    /// Returns the next bytes of COPY data, reading from the socket when none are buffered; an
    /// empty slice at the end of the copy.
    ///
    /// # Errors
    /// The server's error (SQLSTATE and all fields), a closed connection, a protocol
    /// violation, or the `read_timeout`.
    pub async fn fill(&mut self) -> Result<&[u8]> {
        match self.advance().await {
            Ok(n) => Ok(&self.conn_mut().read_buf[..n]),
            Err(e) => {
                // Whatever went wrong mid-COPY, the connection is not reusable.
                if self.conn_mut().state == State::InCopy {
                    self.conn_mut().state = State::Broken(format!("a COPY failed: {e}"));
                }
                Err(e)
            }
        }
    }

    /// Reads until COPY data is buffered (returns how much of the current frame is) or the
    /// copy ended (returns 0).
    async fn advance(&mut self) -> Result<usize> {
        loop {
            if self.remaining > 0 {
                if !self.conn_mut().read_buf.is_empty() {
                    return Ok(self.remaining.min(self.conn_mut().read_buf.len()));
                }
                self.read_more().await?;
                continue;
            }
            if self.done {
                return Ok(0);
            }
            match header(&self.conn_mut().read_buf) {
                Header::Message {
                    tag: tag::COPY_DATA,
                    body,
                } => {
                    // CopyData is handed out as it arrives, never buffered whole.
                    self.conn_mut().read_buf.advance(HEADER_LEN);
                    self.remaining = body;
                    continue;
                }
                Header::BadLength {
                    tag: tag::COPY_DATA,
                    len,
                } => {
                    return Err(self
                        .conn_mut()
                        .broken_protocol(format!("CopyData with invalid length {len}")));
                }
                _ => {}
            }
            if !self.conn_mut().message_ready()? {
                self.read_more().await?;
                continue;
            }
            let tag = self.conn_mut().read_buf[0];
            let msg = match Message::parse(&mut self.conn_mut().read_buf) {
                Ok(Some(m)) => m,
                Ok(None) => {
                    return Err(self
                        .conn_mut()
                        .broken_protocol("incomplete message after length check"));
                }
                Err(e) => {
                    return Err(self.conn_mut().broken_protocol(format!(
                        "malformed message '{}' during COPY: {e}",
                        tag.escape_ascii()
                    )));
                }
            };
            match msg {
                Message::CopyDone => {}
                Message::CommandComplete(c) => {
                    let tag = c.tag().map_err(malformed)?;
                    self.rows = tag
                        .strip_prefix("COPY ")
                        .and_then(|n| n.trim().parse().ok());
                }
                Message::ErrorResponse(e) => {
                    let e = parse_error(&e)?;
                    if e.is_fatal() {
                        return Err(self.conn_mut().fatal(e));
                    }
                    self.error = Some(e);
                }
                Message::NoticeResponse(n) => {
                    let n = DbError::parse(&mut n.fields())?;
                    self.conn_mut().notice(n);
                }
                Message::ParameterStatus(p) => self.conn_mut().set_param(&p)?,
                Message::NotificationResponse(_) => {}
                Message::ReadyForQuery(_) => {
                    self.done = true;
                    self.conn_mut().state = State::Idle;
                    self.reset_lowat();
                    if let Some(e) = self.error.take() {
                        return Err(Error::db(e));
                    }
                }
                other => return Err(self.conn_mut().unexpected(&other, "COPY OUT")),
            }
        }
    }

    /// `read_more`, except that a server error already received is what gets reported when
    /// the connection then fails.
    ///
    /// With the low-water mark raised, the socket only reports 64 KiB at a time, so the end
    /// of the COPY (a few hundred bytes, then silence) would never be reported: after
    /// [`LOWAT_WAIT`] without a wake-up, whatever has arrived is read without waiting.
    async fn read_more(&mut self) -> Result<()> {
        let read = if self.lowat {
            loop {
                match tokio::time::timeout(LOWAT_WAIT, self.conn_mut().read_more()).await {
                    Ok(read) => break read,
                    Err(_) => {
                        if let Some(read) = self.conn_mut().try_read_more() {
                            break read;
                        }
                    }
                }
            }
        } else {
            self.conn_mut().read_more().await
        };
        match read {
            Ok(()) => Ok(()),
            Err(e) => Err(self.error.take().map(Error::db).unwrap_or(e)),
        }
    }

    /// Marks `n` bytes of the slice returned by [`fill`](CopyOut::fill) as used.
    ///
    /// # Panics
    /// If `n` exceeds what `fill` returned.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        assert!(
            n <= self.remaining,
            "consumed more COPY data than was handed out"
        );
        self.conn_mut().read_buf.advance(n);
        self.remaining -= n;
        self.bytes += n as u64;
    }

    /// Stops the COPY: sends a CancelRequest, then reads and discards what the server still
    /// sends, up to ReadyForQuery, so that the connection is usable again.
    ///
    /// Returns `Ok` also when the COPY ended on its own before the cancel reached it.
    ///
    /// # Errors
    /// The server does not stop within 30 s (the connection is then closed), the connection
    /// fails while draining, or the COPY ended with an error other than the cancel's
    /// (`57014`); the error says which.
    pub async fn cancel(mut self) -> Result<()> {
        self.stop().await
    }

    /// The connection back, ready for the next statement: at once when the COPY ended, else
    /// after stopping it as [`CopyOut::cancel`] does.
    ///
    /// # Errors
    /// As [`CopyOut::cancel`]; the connection is closed then.
    pub async fn into_connection(mut self) -> Result<C> {
        self.stop().await?;
        self.reset_lowat();
        Ok(self.conn.take().expect(TAKEN))
    }

    async fn stop(&mut self) -> Result<()> {
        if self.done {
            return Ok(());
        }
        if self.conn_mut().state != State::InCopy {
            // Failed earlier: say how.
            return self.conn_mut().check_idle();
        }
        let sent = self.conn_mut().cancel.clone().cancel().await;
        let drain = async {
            loop {
                let n = self.advance().await?;
                if n == 0 {
                    return Ok::<(), Error>(());
                }
                self.consume(n);
            }
        };
        match tokio::time::timeout(CANCEL_DRAIN_TIMEOUT, drain).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if self.conn_mut().state == State::Idle && e.code() == Some("57014") => {
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(match sent {
                Err(e) => e,
                Ok(()) => Error::timeout(format!(
                    "the server did not stop the COPY within {} s of the cancel request",
                    CANCEL_DRAIN_TIMEOUT.as_secs()
                )),
            }),
        }
    }
}

/// The one state without a connection: after [`CopyOut::into_connection`], which consumes it.
const TAKEN: &str = "a CopyOut's connection is taken only by into_connection, which consumes it";

impl<C: BorrowMut<Connection>> Drop for CopyOut<C> {
    fn drop(&mut self) {
        if !self.done && self.conn.is_some() {
            self.conn_mut().abandon();
        }
    }
}
