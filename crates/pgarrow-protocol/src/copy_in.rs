//! `COPY ... FROM STDIN`: starting it, sending its data in CopyData messages of about 1 MiB, and
//! ending it with CopyDone or CopyFail ([`CopyIn`]).

use std::borrow::{Borrow, BorrowMut};

use bytes::BufMut;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use crate::cancel::CancelToken;
use crate::conn::{Connection, State, malformed, parse_error};
use crate::error::{DbError, Error, Result};
use crate::framing::{HEADER_LEN, tag};

/// The size of the CopyData messages sent, and of the write buffer between flushes.
pub const COPY_IN_MESSAGE: usize = 1 << 20;

impl Connection {
    /// Starts `COPY ... FROM STDIN` (sent as a simple query) and returns where its data goes.
    ///
    /// # Errors
    /// The server's error before the copy starts (with the connection ready again), or a
    /// statement that is not a COPY FROM STDIN.
    pub async fn copy_in(&mut self, sql: &str) -> Result<CopyIn<&mut Connection>> {
        CopyIn::start(self, sql).await
    }
}

/// A running `COPY ... FROM STDIN`: [`write`](CopyIn::write) its data (any pieces: they are
/// framed into CopyData messages of about [`COPY_IN_MESSAGE`] bytes), then
/// [`finish`](CopyIn::finish) it (CopyDone: the server commits the rows and says how many) or
/// [`fail`](CopyIn::fail) it (CopyFail: the server discards them).
///
/// A server error during the copy (a constraint, a bad value) is noticed while writing when it
/// has already arrived, and otherwise at the end; either way the copy ends with it and the
/// connection is usable again. Dropping a `CopyIn` before its end leaves the connection
/// unusable (never reused mid-COPY), which the server takes as a failed copy.
#[derive(Debug)]
pub struct CopyIn<C: BorrowMut<Connection>> {
    conn: C,
    binary: bool,
    done: bool,
    /// COPY data bytes written so far.
    bytes: u64,
    /// The server's error, once it arrived (the copy is then only waiting for its end).
    error: Option<DbError>,
}

impl<C: BorrowMut<Connection>> CopyIn<C> {
    /// Runs `sql`, a `COPY ... FROM STDIN`, on `conn`, which the copy then holds.
    ///
    /// # Errors
    /// As [`Connection::copy_in`].
    pub async fn start(mut conn: C, sql: &str) -> Result<CopyIn<C>> {
        let c = conn.borrow_mut();
        c.check_idle()?;
        c.encode(|buf| frontend::query(sql, buf))?;
        c.state = State::Busy;
        c.flush().await?;
        let mut error = None;
        loop {
            match c.next_message(&mut error).await? {
                Message::CopyInResponse(body) => {
                    c.state = State::InCopy;
                    return Ok(CopyIn {
                        binary: body.format() == 1,
                        conn,
                        done: false,
                        bytes: 0,
                        error: None,
                    });
                }
                Message::ReadyForQuery(_) => {
                    c.state = State::Idle;
                    return Err(match error {
                        Some(e) => Error::db(e),
                        None => Error::protocol("the statement did not start a COPY FROM STDIN"),
                    });
                }
                Message::RowDescription(_)
                | Message::DataRow(_)
                | Message::CommandComplete(_)
                | Message::EmptyQueryResponse => {}
                Message::CopyOutResponse(_) => {
                    c.state = State::Broken("copy_in was given a COPY TO".into());
                    return Err(Error::protocol(
                        "copy_in runs COPY FROM STDIN; this statement started a COPY TO",
                    ));
                }
                other => return Err(c.unexpected(&other, "starting COPY FROM")),
            }
        }
    }

    fn conn_mut(&mut self) -> &mut Connection {
        BorrowMut::<Connection>::borrow_mut(&mut self.conn)
    }

    /// Whether the server expects the binary format.
    pub fn is_binary(&self) -> bool {
        self.binary
    }

    /// COPY data bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// What is needed to cancel this COPY from elsewhere.
    pub fn cancel_token(&self) -> CancelToken {
        Borrow::<Connection>::borrow(&self.conn).cancel_token()
    }

    /// Appends `data` to the copy, framed into CopyData messages; sends them once about
    /// [`COPY_IN_MESSAGE`] bytes are waiting.
    ///
    /// # Errors
    /// The server already reported an error (the copy then ends: call nothing else but
    /// dropping it, [`finish`](CopyIn::finish) or [`fail`](CopyIn::fail), which report the
    /// same error), or the connection failed.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<()> {
        if let Some(e) = &self.error {
            return Err(Error::db(e.clone()));
        }
        while !data.is_empty() {
            let buf = &mut self.conn_mut().write_buf;
            // Continue the open message at the end of the buffer, up to the message size.
            let open = open_message(buf);
            let room = COPY_IN_MESSAGE - open.map_or(0, |start| buf.len() - start - HEADER_LEN);
            let take = room.min(data.len());
            let start = match open {
                Some(start) => start,
                None => {
                    let start = buf.len();
                    buf.put_u8(tag::COPY_DATA);
                    buf.put_i32(4);
                    start
                }
            };
            buf.extend_from_slice(&data[..take]);
            let len = i32::try_from(buf.len() - start - 1).expect("at most 1 MiB");
            buf[start + 1..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
            data = &data[take..];
            let full = buf.len() >= COPY_IN_MESSAGE;
            self.bytes += take as u64;
            if full {
                self.send().await?;
            }
        }
        Ok(())
    }

    /// Sends what is buffered, then looks (without waiting) whether the server already
    /// reported an error.
    async fn send(&mut self) -> Result<()> {
        let conn = self.conn_mut();
        if let Err(e) = conn.flush().await {
            conn.state = State::Broken(format!("a COPY FROM failed: {e}"));
            return Err(e);
        }
        if let Some(read) = conn.try_read_more() {
            read?;
        }
        while self.conn_mut().message_ready()? {
            let tag = self.conn_mut().read_buf[0];
            let msg = Message::parse(&mut self.conn_mut().read_buf)
                .map_err(malformed)?
                .ok_or_else(|| Error::protocol("incomplete message after length check"))?;
            match msg {
                Message::ErrorResponse(body) => {
                    let e = parse_error(&body)?;
                    if e.is_fatal() {
                        return Err(self.conn_mut().fatal(e));
                    }
                    self.error = Some(e.clone());
                    return Err(Error::db(e));
                }
                Message::NoticeResponse(n) => {
                    let n = DbError::parse(&mut n.fields())?;
                    self.conn_mut().notice(n);
                }
                Message::ParameterStatus(p) => self.conn_mut().set_param(&p)?,
                Message::NotificationResponse(_) => {}
                other => {
                    return Err(self.conn_mut().broken_protocol(format!(
                        "unexpected message '{}' ({}) during COPY FROM",
                        tag.escape_ascii(),
                        crate::conn::message_name(&other)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Ends the copy with CopyDone and waits for the server to take the rows: returns the row
    /// count it reports.
    ///
    /// # Errors
    /// The server's error (a constraint, a value it refused; the rows are not loaded and the
    /// connection is usable again), or the connection failed.
    pub async fn finish(mut self) -> Result<u64> {
        if self.error.is_none() {
            self.conn_mut().encode(|buf| {
                frontend::copy_done(buf);
                Ok(())
            })?;
        }
        let ended = self.end().await;
        let rows = ended?;
        rows.ok_or_else(|| Error::protocol("COPY FROM ended without its row count"))
    }

    /// Ends the copy with CopyFail (`message` is what the server's error then says): nothing
    /// is loaded, and the connection is usable again.
    ///
    /// # Errors
    /// The connection failed, or the server reported another error than the copy's failure.
    pub async fn fail(mut self, message: &str) -> Result<()> {
        if self.error.is_none() {
            self.conn_mut()
                .encode(|buf| frontend::copy_fail(message, buf))?;
        }
        match self.end().await {
            // The server reports the failure as an error (57014, query_canceled).
            Err(e) if e.code() == Some("57014") => Ok(()),
            Err(e) if self.error.is_some() && e.as_db_error().is_some() => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        }
    }

    /// Sends the end of the copy and reads up to ReadyForQuery: the row count, or the error.
    async fn end(&mut self) -> Result<Option<u64>> {
        let pending = self.error.take();
        if pending.is_some() {
            // The server waits for CopyDone or CopyFail after its error.
            self.conn_mut().encode(|buf| {
                frontend::copy_done(buf);
                Ok(())
            })?;
        }
        let conn = self.conn_mut();
        let flushed = conn.flush().await;
        self.done = true;
        let conn = self.conn_mut();
        if let Err(e) = flushed {
            conn.state = State::Broken(format!("a COPY FROM failed: {e}"));
            return Err(pending.map(Error::db).unwrap_or(e));
        }
        conn.state = State::Busy;
        let mut error = pending;
        let mut rows = None;
        loop {
            match conn.next_message(&mut error).await? {
                Message::CommandComplete(c) => {
                    let tag = c.tag().map_err(malformed)?;
                    rows = tag
                        .strip_prefix("COPY ")
                        .and_then(|n| n.trim().parse().ok());
                }
                Message::ReadyForQuery(_) => {
                    conn.state = State::Idle;
                    return match error {
                        Some(e) => Err(Error::db(e)),
                        None => Ok(rows),
                    };
                }
                other => return Err(conn.unexpected(&other, "ending COPY FROM")),
            }
        }
    }
}

/// Whether `buf` holds one CopyData message with room left, to be continued. During a COPY FROM
/// the write buffer holds nothing else: it is sent (and emptied) once a message is full.
fn open_message(buf: &[u8]) -> Option<usize> {
    if buf.len() >= HEADER_LEN && buf[0] == tag::COPY_DATA {
        let len = i32::from_be_bytes(buf[1..HEADER_LEN].try_into().ok()?);
        let body = usize::try_from(len).ok()?.checked_sub(4)?;
        if HEADER_LEN + body == buf.len() && body < COPY_IN_MESSAGE {
            return Some(0);
        }
    }
    None
}

impl<C: BorrowMut<Connection>> Drop for CopyIn<C> {
    fn drop(&mut self) {
        if !self.done {
            self.conn_mut().abandon();
        }
    }
}
