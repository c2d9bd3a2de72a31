//! One connection to a PostgreSQL server: its state, its buffers, reading and writing
//! messages, and what ends it. Opening one is in `startup`, statements in `query`, COPY in
//! `copy`, the socket in `socket`.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cancel::CancelToken;
use crate::error::{DbError, Error, ErrorKind, Result};
use crate::framing::{HEADER_LEN, Header, MAX_MESSAGE_LEN, header};
use crate::socket::Stream;

/// How much free space the read buffer keeps before each socket read.
pub(crate) const READ_CHUNK: usize = 256 << 10;
/// The socket's receive low-water mark during a COPY: one wake-up per 64 KiB instead of per
/// 8 KiB (what the server sends at a time), an eighth of the system calls.
pub(crate) const COPY_LOWAT: usize = 64 << 10;

/// Where the connection stands in the protocol. Only `Idle` accepts a new statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    /// ReadyForQuery received.
    Idle,
    /// A statement was sent and its replies are being read (or an error interrupted that).
    Busy,
    /// COPY data is flowing.
    InCopy,
    /// Unusable, for this reason.
    Broken(String),
}

/// An authenticated connection.
///
/// Every method leaves the connection ready for the next statement, or unusable (a later call
/// then fails with [`ErrorKind::Broken`]): a connection is never reused mid-message or
/// mid-COPY.
#[derive(Debug)]
pub struct Connection {
    pub(crate) stream: Stream,
    pub(crate) read_buf: BytesMut,
    pub(crate) write_buf: BytesMut,
    pub(crate) params: HashMap<String, String>,
    pub(crate) state: State,
    /// The socket failed or the server closed it: a cancel request could not help.
    pub(crate) closed: bool,
    /// Authentication finished (AuthenticationOk).
    pub(crate) authenticated: bool,
    /// Startup finished: the server knows this session's cancel key.
    pub(crate) started: bool,
    /// SCRAM-SHA-256-PLUS bound the authentication to the TLS channel.
    pub(crate) channel_bound: bool,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) cancel: CancelToken,
    pub(crate) notices: Vec<DbError>,
    pub(crate) on_notice: Option<crate::config::NoticeHandler>,
    pub(crate) notifications: Vec<Notification>,
    /// The transaction status of the last ReadyForQuery.
    pub(crate) transaction: TransactionStatus,
}

/// Where the session stands in a transaction, as its last ReadyForQuery said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// Not in a transaction block.
    Idle,
    /// In a transaction block (after `BEGIN`).
    InBlock,
    /// In a failed transaction block: statements are refused until it ends.
    Failed,
}

/// Notices kept per connection; older ones are dropped.
const MAX_NOTICES: usize = 100;

/// Notifications kept per connection until taken; older ones are dropped.
const MAX_NOTIFICATIONS: usize = 10_000;

/// A NOTIFY this session received on a channel it LISTENs on (delivered between its
/// statements, and taken with [`Connection::take_notifications`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The notifying backend's process id.
    pub process_id: i32,
    /// The channel.
    pub channel: String,
    /// The payload (empty when none was given).
    pub payload: String,
}

pub(crate) fn encode_err(e: io::Error) -> Error {
    Error::protocol(format!("cannot encode the message: {e}"))
}

pub(crate) fn malformed(e: io::Error) -> Error {
    Error::protocol(format!("malformed message: {e}"))
}

pub(crate) fn parse_error(body: &ErrorResponseBody) -> Result<DbError> {
    DbError::parse(&mut body.fields())
}

impl Connection {
    /// A server parameter reported by ParameterStatus (`server_version`, `server_encoding`,
    /// `TimeZone`, ...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The server's `server_version_num`-style number derived from `server_version`
    /// (e.g. 150018), or 0 if unknown.
    pub fn server_version_num(&self) -> u32 {
        let v = self.parameter("server_version").unwrap_or("");
        // The leading dotted number only: `18beta1` is 18 (180000, as the server's own
        // server_version_num), `17.2 (Debian 17.2-1)` is 17.2.
        let end = v
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(v.len());
        let mut parts = v[..end].split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        if major >= 10 {
            major * 10_000 + minor
        } else {
            major * 10_000 + minor * 100 + parts.next().unwrap_or(0)
        }
    }

    /// The backend's process ID (for `pg_cancel_backend` and CancelRequest).
    pub fn backend_pid(&self) -> i32 {
        self.cancel.process_id
    }

    /// What is needed to cancel this connection's running query from elsewhere (another
    /// task, a signal handler).
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Whether the connection uses TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Whether authentication was bound to the TLS channel (SCRAM-SHA-256-PLUS).
    pub fn is_channel_bound(&self) -> bool {
        self.channel_bound
    }

    /// Whether the connection accepts a new statement (it is not broken, not mid-COPY).
    pub fn is_ready(&self) -> bool {
        self.state == State::Idle
    }

    /// Where the session stands in a transaction, as of the last statement.
    pub fn transaction_status(&self) -> TransactionStatus {
        self.transaction
    }

    /// Notices received so far (the last 100), oldest first; clears the list.
    pub fn take_notices(&mut self) -> Vec<DbError> {
        std::mem::take(&mut self.notices)
    }

    /// Notifications received so far on the channels this session LISTENs on (the last
    /// 10,000), oldest first; clears the list. The server sends them while the session is
    /// idle, so they arrive with the next statement's replies (`SELECT 1` fetches them).
    pub fn take_notifications(&mut self) -> Vec<Notification> {
        std::mem::take(&mut self.notifications)
    }

    /// Encodes a message into the write buffer; nothing of it stays there on failure.
    pub(crate) fn encode(&mut self, f: impl FnOnce(&mut BytesMut) -> io::Result<()>) -> Result<()> {
        let start = self.write_buf.len();
        f(&mut self.write_buf).map_err(|e| {
            self.write_buf.truncate(start);
            encode_err(e)
        })
    }

    /// Sends Terminate and closes the socket (with a TLS close_notify under TLS).
    ///
    /// # Errors
    /// Only socket errors while saying goodbye.
    pub async fn close(mut self) -> Result<()> {
        frontend::terminate(&mut self.write_buf);
        self.flush().await?;
        self.stream.shutdown().await?;
        Ok(())
    }

    pub(crate) fn check_idle(&self) -> Result<()> {
        match &self.state {
            State::Idle => Ok(()),
            State::Busy => Err(Error::new(ErrorKind::Broken(
                "an earlier error left the connection in the middle of an exchange".into(),
            ))),
            State::InCopy => Err(Error::new(ErrorKind::Broken(
                "a COPY on this connection was abandoned before it finished".into(),
            ))),
            State::Broken(reason) => Err(Error::new(ErrorKind::Broken(reason.clone()))),
        }
    }

    /// Gives up on a COPY (or any exchange) in progress: the connection becomes unusable, its
    /// socket is shut down (the server's next write fails), and, when a tokio runtime is
    /// there and the server may still be running the query, a CancelRequest is sent from a
    /// spawned task (for a query that computes without writing).
    pub(crate) fn abandon(&mut self) {
        if self.state == State::Idle {
            return;
        }
        let may_run = self.started && !self.closed;
        if !matches!(self.state, State::Broken(_)) {
            self.state = State::Broken(
                "a COPY on this connection was abandoned before it finished; the connection \
                 was closed and its query cancelled"
                    .into(),
            );
        }
        self.stream.shutdown_now();
        self.closed = true;
        if may_run {
            self.spawn_cancel();
        }
    }

    /// Sends a CancelRequest from a task of the current tokio runtime, if there is one.
    pub(crate) fn spawn_cancel(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let token = self.cancel.clone();
            runtime.spawn(async move {
                let _ = token.cancel().await;
            });
        }
    }

    pub(crate) fn set_param(
        &mut self,
        p: &postgres_protocol::message::backend::ParameterStatusBody,
    ) -> Result<()> {
        let name = p.name().map_err(malformed)?.to_owned();
        let value = p.value().map_err(malformed)?.to_owned();
        self.params.insert(name, value);
        Ok(())
    }

    pub(crate) fn notice(&mut self, n: DbError) {
        if let Some(handler) = &self.on_notice {
            handler.call(&n);
        }
        if self.notices.len() == MAX_NOTICES {
            self.notices.remove(0);
        }
        self.notices.push(n);
    }

    pub(crate) fn unexpected(&mut self, m: &Message, during: &str) -> Error {
        self.broken_protocol(format!(
            "unexpected message {} during {during}",
            message_name(m)
        ))
    }

    pub(crate) fn broken_protocol(&mut self, msg: impl Into<String>) -> Error {
        let msg = msg.into();
        self.state = State::Broken(format!("the server broke the protocol: {msg}"));
        Error::protocol(msg)
    }

    /// A FATAL or PANIC error ends the session: no ReadyForQuery follows.
    pub(crate) fn fatal(&mut self, e: DbError) -> Error {
        self.state = State::Broken(format!("the server ended the session: {}", e.message));
        self.closed = true;
        Error::db(e)
    }

    pub(crate) async fn flush(&mut self) -> Result<()> {
        // The buffer is advanced by what was written, so that a flush cut off (a stopped
        // load's write, dropped mid-way) leaves exactly the unsent bytes for the next one:
        // resending the whole buffer would repeat the part the server already has.
        let mut res = self.stream.write_all_buf(&mut self.write_buf).await;
        if res.is_ok() {
            res = self.stream.flush().await;
        }
        self.write_buf.clear();
        if let Err(e) = res {
            self.closed = true;
            self.state = State::Broken(format!("writing to the server failed: {e}"));
            return Err(e.into());
        }
        Ok(())
    }

    /// Reads more bytes from the socket into the read buffer, within `read_timeout`.
    pub(crate) async fn read_more(&mut self) -> Result<()> {
        if let State::Broken(_) = self.state {
            return Err(self
                .check_idle()
                .err()
                .unwrap_or_else(|| Error::new(ErrorKind::Closed)));
        }
        self.read_buf.reserve(READ_CHUNK);
        let read = match self.read_timeout {
            None => self.stream.read_buf(&mut self.read_buf).await,
            Some(limit) => {
                match tokio::time::timeout(limit, self.stream.read_buf(&mut self.read_buf)).await {
                    Ok(r) => r,
                    Err(_) => {
                        let secs = limit.as_secs_f64();
                        self.state = State::Broken(format!(
                            "the server sent nothing for {secs} s (read_timeout)"
                        ));
                        return Err(Error::timeout(format!(
                            "the server sent nothing for {secs} s (read_timeout)"
                        )));
                    }
                }
            }
        };
        self.read_result(read)
    }

    /// What a read from the socket means for the connection.
    pub(crate) fn read_result(&mut self, read: std::io::Result<usize>) -> Result<()> {
        match read {
            Ok(0) => {
                self.closed = true;
                self.state = State::Broken("the server closed the connection".into());
                Err(Error::new(ErrorKind::Closed))
            }
            Ok(_) => Ok(()),
            Err(e) => {
                self.closed = true;
                self.state = State::Broken(format!("reading from the server failed: {e}"));
                Err(e.into())
            }
        }
    }

    /// Reads whatever the socket holds without waiting, whatever its low-water mark:
    /// `None` when it holds nothing (or the stream is not plain TCP).
    pub(crate) fn try_read_more(&mut self) -> Option<Result<()>> {
        use std::io::Read;
        let Stream::Tcp(tcp) = &self.stream else {
            return None;
        };
        // Straight from the socket (non-blocking, as tokio set it up): tokio's own try_read
        // trusts its readiness flag, which the raised low-water mark keeps clear, and so would
        // not even look. A rare path: the end of a COPY, or a server that paused.
        let start = self.read_buf.len();
        self.read_buf.resize(start + COPY_LOWAT, 0);
        let read = (&*socket2::SockRef::from(tcp)).read(&mut self.read_buf[start..]);
        self.read_buf.truncate(start + *read.as_ref().unwrap_or(&0));
        match read {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => None,
            read => Some(self.read_result(read)),
        }
    }

    /// Sets the socket's receive low-water mark (`SO_RCVLOWAT`): the socket is reported
    /// readable only once this many bytes are queued (or on end of file or error). Plain TCP
    /// only; returns whether it was set.
    #[allow(unsafe_code)]
    pub(crate) fn set_recv_lowat(&self, bytes: usize) -> bool {
        use std::os::fd::AsRawFd;
        let Stream::Tcp(tcp) = &self.stream else {
            return false;
        };
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: the descriptor belongs to `tcp`, which is open for the duration of the call
        // (borrowed from `self`); the option value is a live c_int whose exact size we pass,
        // which is what setsockopt(SOL_SOCKET, SO_RCVLOWAT) reads. A failure only means the
        // option is not set, and is reported as false.
        let rc = unsafe {
            libc::setsockopt(
                tcp.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_ref(&value).cast::<libc::c_void>(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        rc == 0
    }

    /// Whether a whole message sits at the front of the read buffer; checks its length.
    pub(crate) fn message_ready(&mut self) -> Result<bool> {
        match header(&self.read_buf) {
            Header::Incomplete => Ok(false),
            Header::Message { tag, body } if body > MAX_MESSAGE_LEN => {
                Err(self.broken_protocol(format!(
                    "message '{}' claims {} bytes, over the {MAX_MESSAGE_LEN}-byte limit",
                    tag.escape_ascii(),
                    body + 4
                )))
            }
            Header::Message { body, .. } => Ok(self.read_buf.len() >= HEADER_LEN + body),
            Header::BadLength { tag, len } => Err(self.broken_protocol(format!(
                "message '{}' has invalid length {len}",
                tag.escape_ascii()
            ))),
        }
    }

    pub(crate) async fn read_message(&mut self) -> Result<Message> {
        loop {
            if self.message_ready()? {
                let tag = self.read_buf[0];
                return match Message::parse(&mut self.read_buf) {
                    Ok(Some(m)) => Ok(m),
                    Ok(None) => Err(self.broken_protocol("incomplete message after length check")),
                    Err(e) => Err(self.broken_protocol(format!(
                        "malformed message '{}': {e}",
                        tag.escape_ascii()
                    ))),
                };
            }
            self.read_more().await?;
        }
    }

    /// The next message that is not a notice, a parameter report, a notification or an
    /// error. A non-fatal error is kept in `pending` (ReadyForQuery follows it); a fatal one
    /// is returned at once. If the connection fails while an error is pending, that error is
    /// the one returned: it says why.
    pub(crate) async fn next_message(&mut self, pending: &mut Option<DbError>) -> Result<Message> {
        loop {
            let msg = match self.read_message().await {
                Ok(m) => m,
                Err(e) => return Err(pending.take().map(Error::db).unwrap_or(e)),
            };
            match msg {
                Message::ErrorResponse(body) => {
                    let e = parse_error(&body)?;
                    if e.is_fatal() {
                        return Err(self.fatal(e));
                    }
                    *pending = Some(e);
                }
                Message::NoticeResponse(body) => {
                    let n = DbError::parse(&mut body.fields())?;
                    self.notice(n);
                }
                Message::ParameterStatus(p) => self.set_param(&p)?,
                Message::NotificationResponse(n) => {
                    if self.notifications.len() == MAX_NOTIFICATIONS {
                        self.notifications.remove(0);
                    }
                    self.notifications.push(Notification {
                        process_id: n.process_id(),
                        channel: n.channel().map_err(malformed)?.to_owned(),
                        payload: n.message().map_err(malformed)?.to_owned(),
                    });
                }
                Message::ReadyForQuery(ref body) => {
                    self.transaction = match body.status() {
                        b'T' => TransactionStatus::InBlock,
                        b'E' => TransactionStatus::Failed,
                        _ => TransactionStatus::Idle,
                    };
                    return Ok(msg);
                }
                other => return Ok(other),
            }
        }
    }
}

/// A connection dropped in the middle of a statement (its future was dropped, say by a
/// timeout or a `select!`) may leave the server running the query: the socket closes, which
/// the server notices only when it next writes, so a CancelRequest goes too (from a spawned
/// task, when a tokio runtime is there).
impl Drop for Connection {
    fn drop(&mut self) {
        if self.started && !self.closed && self.state != State::Idle {
            self.spawn_cancel();
        }
    }
}

pub(crate) fn message_name(m: &Message) -> &'static str {
    match m {
        Message::AuthenticationOk => "AuthenticationOk",
        Message::BackendKeyData(_) => "BackendKeyData",
        Message::BindComplete => "BindComplete",
        Message::CloseComplete => "CloseComplete",
        Message::CommandComplete(_) => "CommandComplete",
        Message::CopyData(_) => "CopyData",
        Message::CopyDone => "CopyDone",
        Message::CopyInResponse(_) => "CopyInResponse",
        Message::CopyOutResponse(_) => "CopyOutResponse",
        Message::DataRow(_) => "DataRow",
        Message::EmptyQueryResponse => "EmptyQueryResponse",
        Message::ErrorResponse(_) => "ErrorResponse",
        Message::NoData => "NoData",
        Message::NoticeResponse(_) => "NoticeResponse",
        Message::NotificationResponse(_) => "NotificationResponse",
        Message::ParameterDescription(_) => "ParameterDescription",
        Message::ParameterStatus(_) => "ParameterStatus",
        Message::ParseComplete => "ParseComplete",
        Message::PortalSuspended => "PortalSuspended",
        Message::ReadyForQuery(_) => "ReadyForQuery",
        Message::RowDescription(_) => "RowDescription",
        _ => "an authentication request",
    }
}
