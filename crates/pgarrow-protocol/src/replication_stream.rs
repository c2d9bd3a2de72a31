//! A logical replication stream on a replication connection: `START_REPLICATION` (CopyBoth),
//! the server's CopyData read one message at a time, standby status updates sent back, and the
//! stream ended with CopyDone. The messages' contents are [`crate::replication`]'s to parse.

use std::borrow::BorrowMut;

use bytes::{Buf, Bytes};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use crate::conn::{Connection, READ_CHUNK, State, malformed, parse_error};
use crate::error::{DbError, Error, Result};
use crate::framing::{HEADER_LEN, Header, header};
use crate::replication::{Lsn, PgTime, standby_status_update};

/// CopyBothResponse: a replication stream starts (not a message `postgres-protocol` parses).
const COPY_BOTH_RESPONSE: u8 = b'W';

/// When the last read of the socket took less than the buffer's room, the server's messages
/// are arriving one by one and the next read waits a little first. The walsender sends each
/// change as soon as it is decoded, in its own `send`; a reader that takes each at once is
/// woken once per change, and the server pays for each wake-up. Measured on 300,000 updated
/// rows read live: the walsender's CPU time was 2.45 s reading at once, 1.92 s waiting 1 ms,
/// 1.36 s waiting 5 ms (the stream after the commit 1.7x faster). A read that fills the
/// buffer (the server is ahead) is followed by the next at once, so the wait never limits
/// throughput.
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_millis(5);
/// The room a gathered read has (what 200 MB/s brings in [`GATHER_WAIT`]).
const GATHER_ROOM: usize = 4 * READ_CHUNK;

impl Connection {
    /// Runs `command` (`START_REPLICATION SLOT ... LOGICAL ...`, on a connection made with
    /// [`Config::replication`](crate::Config::replication)) and returns the stream it starts.
    ///
    /// # Errors
    /// The server's error (a missing slot, one in use, a bad option), with the connection
    /// ready again; a command that does not start a stream.
    pub async fn start_replication(
        &mut self,
        command: &str,
    ) -> Result<ReplicationStream<&mut Connection>> {
        ReplicationStream::start(self, command).await
    }
}

impl<C: BorrowMut<Connection>> ReplicationStream<C> {
    /// As [`Connection::start_replication`], on a connection the stream owns or borrows.
    ///
    /// # Errors
    /// As [`Connection::start_replication`].
    pub async fn start(mut conn: C, command: &str) -> Result<ReplicationStream<C>> {
        let this = conn.borrow_mut();
        this.start_command(command).await?;
        Ok(ReplicationStream {
            conn,
            done: false,
            last_filled: false,
            gather_until: None,
        })
    }

    /// The connection (idle again once the stream ended).
    pub fn connection(&mut self) -> &mut Connection {
        self.conn.borrow_mut().borrow_mut()
    }
}

impl Connection {
    /// Sends `command` and reads up to its CopyBothResponse.
    async fn start_command(&mut self, command: &str) -> Result<()> {
        self.check_idle()?;
        self.encode(|buf| frontend::query(command, buf))?;
        self.state = State::Busy;
        self.flush().await?;
        let mut error: Option<DbError> = None;
        loop {
            if !self.message_ready()? {
                self.read_more().await?;
                continue;
            }
            if self.read_buf[0] == COPY_BOTH_RESPONSE {
                let Header::Message { body, .. } = header(&self.read_buf) else {
                    return Err(self.broken_protocol("CopyBothResponse with a bad length"));
                };
                self.read_buf.advance(HEADER_LEN + body);
                self.state = State::InCopy;
                return Ok(());
            }
            match self.read_message().await? {
                Message::ErrorResponse(body) => {
                    let e = parse_error(&body)?;
                    if e.is_fatal() {
                        return Err(self.fatal(e));
                    }
                    error = Some(e);
                }
                Message::NoticeResponse(body) => {
                    let n = DbError::parse(&mut body.fields())?;
                    self.notice(n);
                }
                Message::ParameterStatus(p) => self.set_param(&p)?,
                Message::ReadyForQuery(_) => {
                    self.state = State::Idle;
                    return Err(match error {
                        Some(e) => Error::db(e),
                        None => Error::protocol("the command did not start a replication stream"),
                    });
                }
                Message::RowDescription(_)
                | Message::DataRow(_)
                | Message::CommandComplete(_)
                | Message::EmptyQueryResponse => {}
                other => return Err(self.unexpected(&other, "starting replication")),
            }
        }
    }
}

/// A running replication stream (CopyBoth). Dropping it before [`finish`](Self::finish)
/// leaves the connection unusable (the server is still streaming).
#[derive(Debug)]
pub struct ReplicationStream<C: BorrowMut<Connection>> {
    conn: C,
    done: bool,
    /// The last read of the socket filled the buffer: more may be waiting ([`GATHER_WAIT`]).
    last_filled: bool,
    /// When the gather wait under way ends: kept across a [`next`](Self::next) dropped
    /// before it (a caller's `select!` with a shorter timer), so that the wait is not begun
    /// again, and again, and never ends.
    gather_until: Option<tokio::time::Instant>,
}

impl<C: BorrowMut<Connection>> ReplicationStream<C> {
    /// The next CopyData body from the server (parse it with
    /// [`parse_stream_message`](crate::replication::parse_stream_message)); `None` once the
    /// server ended the stream (its CopyDone, answered, and ReadyForQuery read).
    ///
    /// # Errors
    /// The server's error (the connection is usable again after it), a closed connection, a
    /// protocol violation, or the `read_timeout`.
    pub async fn next(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        loop {
            let message = match self.gather().await {
                Ok(()) => self.read().await,
                Err(e) => Err(e),
            };
            match message {
                Ok(Some(Message::CopyData(body))) => return Ok(Some(body.into_bytes())),
                // The server ends the stream (a shutdown, the end of a timeline): answer
                // CopyDone, then read to ReadyForQuery.
                Ok(Some(Message::CopyDone)) => {
                    self.conn.borrow_mut().encode(|buf| {
                        frontend::copy_done(buf);
                        Ok(())
                    })?;
                    self.conn.borrow_mut().flush().await?;
                    self.drain().await?;
                    return Ok(None);
                }
                // The server left copy mode without a CopyDone (a walsender reused after an
                // earlier stream on the same connection may do so): the stream is over.
                Ok(Some(Message::CommandComplete(_))) => {
                    self.drain().await?;
                    return Ok(None);
                }
                Ok(Some(other)) => {
                    return Err(self
                        .conn
                        .borrow_mut()
                        .unexpected(&other, "replication streaming"));
                }
                Ok(None) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a standby status update: WAL written and flushed (durable on this side: the
    /// slot's `confirmed_flush_lsn` follows it, and the server may recycle WAL before it) and
    /// applied; `reply` asks for a keepalive at once.
    ///
    /// # Errors
    /// A closed connection.
    pub async fn send_status(
        &mut self,
        written: Lsn,
        flushed: Lsn,
        applied: Lsn,
        now: PgTime,
        reply: bool,
    ) -> Result<()> {
        let update = standby_status_update(written, flushed, applied, now, reply);
        self.conn
            .borrow_mut()
            .encode(|buf| frontend::CopyData::new(&update[..]).map(|data| data.write(buf)))?;
        self.conn.borrow_mut().flush().await
    }

    /// Ends the stream from this side: CopyDone, then the server's remaining messages up to
    /// ReadyForQuery (CopyData still in flight is dropped); the connection is ready again.
    ///
    /// # Errors
    /// The server's error, a closed connection.
    pub async fn finish(mut self) -> Result<()> {
        if self.done {
            return Ok(());
        }
        self.conn.borrow_mut().encode(|buf| {
            frontend::copy_done(buf);
            Ok(())
        })?;
        self.conn.borrow_mut().flush().await?;
        loop {
            match self.read().await? {
                Some(Message::CopyData(_)) | None => {}
                Some(Message::CopyDone | Message::CommandComplete(_)) => return self.drain().await,
                Some(other) => {
                    return Err(self
                        .conn
                        .borrow_mut()
                        .unexpected(&other, "ending replication"));
                }
            }
        }
    }

    /// When no whole message is buffered: reads the socket, after [`GATHER_WAIT`] unless the
    /// last read filled its room.
    async fn gather(&mut self) -> Result<()> {
        let conn = self.conn.borrow_mut();
        if conn.message_ready()? {
            return Ok(());
        }
        if !self.last_filled {
            let until = *self
                .gather_until
                .get_or_insert_with(|| tokio::time::Instant::now() + GATHER_WAIT);
            tokio::time::sleep_until(until).await;
        }
        self.gather_until = None;
        conn.read_buf.reserve(GATHER_ROOM);
        let room = conn.read_buf.capacity();
        conn.read_more().await?;
        self.last_filled = conn.read_buf.len() == room;
        Ok(())
    }

    /// The next message, notices and parameter reports handled (`None` for those); the
    /// server's error read through to ReadyForQuery and returned.
    async fn read(&mut self) -> Result<Option<Message>> {
        let result = self.conn.borrow_mut().read_message().await;
        let message = match result {
            Ok(m) => m,
            Err(e) => {
                if self.conn.borrow_mut().state == State::InCopy {
                    self.conn.borrow_mut().state =
                        State::Broken(format!("a replication stream failed: {e}"));
                }
                return Err(e);
            }
        };
        Ok(match message {
            Message::NoticeResponse(body) => {
                let n = DbError::parse(&mut body.fields())?;
                self.conn.borrow_mut().notice(n);
                None
            }
            Message::ParameterStatus(p) => {
                self.conn.borrow_mut().set_param(&p)?;
                None
            }
            Message::ErrorResponse(body) => {
                let e = parse_error(&body)?;
                if e.is_fatal() {
                    return Err(self.conn.borrow_mut().fatal(e));
                }
                self.conn.borrow_mut().state = State::Busy;
                let mut pending = Some(e);
                loop {
                    if let Message::ReadyForQuery(_) =
                        self.conn.borrow_mut().next_message(&mut pending).await?
                    {
                        break;
                    }
                }
                self.conn.borrow_mut().state = State::Idle;
                self.done = true;
                return Err(pending
                    .map(Error::db)
                    .unwrap_or_else(|| Error::protocol("a replication stream failed")));
            }
            other => Some(other),
        })
    }

    /// After both CopyDones: CommandComplete (of the command, if any) and ReadyForQuery.
    async fn drain(&mut self) -> Result<()> {
        self.conn.borrow_mut().state = State::Busy;
        let mut pending = None;
        loop {
            match self.conn.borrow_mut().next_message(&mut pending).await? {
                Message::ReadyForQuery(_) => break,
                Message::CommandComplete(c) => {
                    c.tag().map_err(malformed)?;
                }
                Message::DataRow(_) | Message::RowDescription(_) | Message::CopyData(_) => {}
                other => {
                    return Err(self
                        .conn
                        .borrow_mut()
                        .unexpected(&other, "ending replication"));
                }
            }
        }
        self.conn.borrow_mut().state = State::Idle;
        self.done = true;
        match pending {
            Some(e) => Err(Error::db(e)),
            None => Ok(()),
        }
    }
}

/// A stream dropped before its end leaves the server streaming: the connection is unusable.
impl<C: BorrowMut<Connection>> Drop for ReplicationStream<C> {
    fn drop(&mut self) {
        if !self.done && self.conn.borrow_mut().state == State::InCopy {
            self.conn.borrow_mut().state =
                State::Broken("a replication stream was dropped before its end".into());
        }
    }
}
