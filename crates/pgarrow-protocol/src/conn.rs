//! One connection to a PostgreSQL server: startup, authentication, queries, COPY OUT.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::{Message, RowDescriptionBody};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::config::{Config, Host, SslMode};
use crate::error::{DbError, Error, ErrorKind, Result};

/// Largest non-CopyData message accepted (RowDescription of 1600 columns, error texts, catalog
/// rows). CopyData is never buffered whole, so it has no such cap.
pub const MAX_MESSAGE_LEN: usize = 64 << 20;
/// How much free space the read buffer keeps before each socket read.
const READ_CHUNK: usize = 256 << 10;

/// The socket under a connection.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A column of a described statement, from its RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDescription {
    /// Column name.
    pub name: String,
    /// OID of the table the column comes from, or 0.
    pub table_oid: u32,
    /// Attribute number in that table, or 0.
    pub column_id: i16,
    /// Type OID (a domain's base type: the server resolves domains here).
    pub type_oid: u32,
    /// Type modifier.
    pub type_modifier: i32,
    /// Type size (negative for variable width).
    pub type_size: i16,
}

/// What the server said about a statement it parsed but did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// Types of the `$n` parameters the statement uses.
    pub params: Vec<u32>,
    /// Result columns; `None` when the statement returns no rows (`NoData`).
    pub columns: Option<Vec<FieldDescription>>,
}

/// Rows of a simple query, as text.
pub type TextRow = Vec<Option<String>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    InCopy,
    Broken,
}

/// An authenticated connection.
///
/// Every method leaves the connection ready for the next query, or marks it broken (a later
/// call then fails with [`ErrorKind::Broken`]): a connection is never reused mid-message.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    read_buf: BytesMut,
    write_buf: BytesMut,
    params: HashMap<String, String>,
    backend_pid: i32,
    secret_key: i32,
    state: State,
    notices: Vec<DbError>,
}

/// Notices kept per connection; older ones are dropped.
const MAX_NOTICES: usize = 100;

impl Connection {
    /// Connects, authenticates and waits until the server is ready for queries.
    ///
    /// # Errors
    /// Unreachable server, refused authentication, a server error at startup (unknown database,
    /// too many connections), the connect timeout, or a TLS mode that requires TLS (not
    /// implemented yet).
    pub async fn connect(config: &Config) -> Result<Connection> {
        if matches!(
            config.ssl_mode,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        ) {
            return Err(Error::config(format!(
                "sslmode={:?} requires TLS, which this build does not support yet; use \
                 sslmode=disable or prefer",
                config.ssl_mode
            )));
        }
        let fut = Self::connect_inner(config);
        match config.connect_timeout {
            Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| {
                Error::new(ErrorKind::Timeout(format!(
                    "connecting to {} took longer than {} s",
                    config.display_target(),
                    t.as_secs()
                )))
            })?,
            None => fut.await,
        }
    }

    async fn connect_inner(config: &Config) -> Result<Connection> {
        let connect_err = |source| {
            Error::new(ErrorKind::Connect {
                target: config.display_target(),
                source,
            })
        };
        let stream = match &config.host {
            Host::Tcp(host) => {
                let s = TcpStream::connect((host.as_str(), config.port))
                    .await
                    .map_err(connect_err)?;
                s.set_nodelay(true).map_err(connect_err)?;
                Stream::Tcp(s)
            }
            Host::Unix(dir) => {
                let path = dir.join(format!(".s.PGSQL.{}", config.port));
                Stream::Unix(UnixStream::connect(&path).await.map_err(connect_err)?)
            }
        };
        let mut conn = Connection {
            stream,
            read_buf: BytesMut::with_capacity(READ_CHUNK * 4),
            write_buf: BytesMut::with_capacity(1024),
            params: HashMap::new(),
            backend_pid: 0,
            secret_key: 0,
            state: State::Idle,
            notices: Vec::new(),
        };
        conn.startup(config).await?;
        Ok(conn)
    }

    async fn startup(&mut self, config: &Config) -> Result<()> {
        let mut params: Vec<(&str, &str)> = vec![
            ("user", &config.user),
            ("database", &config.dbname),
            ("application_name", &config.application_name),
            ("client_encoding", "UTF8"),
        ];
        if let Some(o) = &config.options {
            params.push(("options", o));
        }
        frontend::startup_message(params.iter().copied(), &mut self.write_buf)?;
        self.flush().await?;
        self.authenticate(config).await?;
        loop {
            match self.read_message().await? {
                Message::BackendKeyData(k) => {
                    self.backend_pid = k.process_id();
                    self.secret_key = k.secret_key();
                }
                Message::ParameterStatus(p) => self.set_param(&p)?,
                Message::NoticeResponse(n) => self.notice(DbError::parse(&mut n.fields())?),
                Message::ReadyForQuery(_) => break,
                Message::ErrorResponse(e) => {
                    self.state = State::Broken;
                    return Err(Error::new(ErrorKind::Db(Box::new(DbError::parse(
                        &mut e.fields(),
                    )?))));
                }
                other => return Err(self.unexpected(&other, "startup")),
            }
        }
        match self.params.get("client_encoding").map(String::as_str) {
            Some("UTF8") => Ok(()),
            other => Err(Error::protocol(format!(
                "server did not accept client_encoding UTF8 (it reports {other:?})"
            ))),
        }
    }

    async fn authenticate(&mut self, config: &Config) -> Result<()> {
        let password = || {
            config.password.as_deref().ok_or_else(|| {
                Error::auth(format!(
                    "the server asks a password for user \"{}\" but none was given (put it in \
                     the URL, or set PGPASSWORD)",
                    config.user
                ))
            })
        };
        loop {
            match self.read_message().await? {
                Message::AuthenticationOk => return Ok(()),
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password()?.as_bytes(), &mut self.write_buf)?;
                    self.flush().await?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash =
                        md5_hash(config.user.as_bytes(), password()?.as_bytes(), body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.write_buf)?;
                    self.flush().await?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut scram = false;
                    while let Some(m) = mechanisms.next()? {
                        scram |= m == sasl::SCRAM_SHA_256;
                    }
                    if !scram {
                        return Err(Error::auth(
                            "the server offers no SASL mechanism pgarrow supports (SCRAM-SHA-256)",
                        ));
                    }
                    self.scram(password()?).await?;
                }
                Message::ErrorResponse(e) => {
                    self.state = State::Broken;
                    return Err(Error::new(ErrorKind::Db(Box::new(DbError::parse(
                        &mut e.fields(),
                    )?))));
                }
                Message::AuthenticationKerberosV5
                | Message::AuthenticationScmCredential
                | Message::AuthenticationGss
                | Message::AuthenticationSspi
                | Message::AuthenticationGssContinue(_) => {
                    return Err(Error::auth(
                        "the server asks for an authentication method pgarrow does not support \
                         (Kerberos/GSSAPI/SSPI)",
                    ));
                }
                other => return Err(self.unexpected(&other, "authentication")),
            }
        }
    }

    /// SCRAM-SHA-256 (RFC 7677), without channel binding: client-first, server-first,
    /// client-final, server-final; the server's signature is verified before continuing.
    async fn scram(&mut self, password: &str) -> Result<()> {
        let mut scram =
            sasl::ScramSha256::new(password.as_bytes(), sasl::ChannelBinding::unsupported());
        frontend::sasl_initial_response(sasl::SCRAM_SHA_256, scram.message(), &mut self.write_buf)?;
        self.flush().await?;
        match self.read_message().await? {
            Message::AuthenticationSaslContinue(body) => scram
                .update(body.data())
                .map_err(|e| Error::auth(format!("bad SCRAM server-first message: {e}")))?,
            Message::ErrorResponse(e) => {
                return Err(Error::new(ErrorKind::Db(Box::new(DbError::parse(
                    &mut e.fields(),
                )?))));
            }
            other => return Err(self.unexpected(&other, "SCRAM exchange")),
        }
        frontend::sasl_response(scram.message(), &mut self.write_buf)?;
        self.flush().await?;
        match self.read_message().await? {
            Message::AuthenticationSaslFinal(body) => scram
                .finish(body.data())
                .map_err(|e| Error::auth(format!("the server's SCRAM proof is invalid: {e}"))),
            Message::ErrorResponse(e) => Err(Error::new(ErrorKind::Db(Box::new(DbError::parse(
                &mut e.fields(),
            )?)))),
            other => Err(self.unexpected(&other, "SCRAM exchange")),
        }
    }

    /// A server parameter reported by ParameterStatus (`server_version`, `server_encoding`,
    /// `TimeZone`, ...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The server's `server_version_num`-style number derived from `server_version`
    /// (e.g. 150018), or 0 if unknown.
    pub fn server_version_num(&self) -> u32 {
        let v = self.parameter("server_version").unwrap_or("");
        let mut parts = v
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().unwrap_or(0));
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
        self.backend_pid
    }

    /// Notices received so far (the last 100), oldest first; clears the list.
    pub fn take_notices(&mut self) -> Vec<DbError> {
        std::mem::take(&mut self.notices)
    }

    /// Runs SQL with the simple query protocol and returns the rows of its last result, as
    /// text.
    ///
    /// # Errors
    /// The server's error (after which the connection is ready again), or a broken connection.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<TextRow>> {
        self.check_idle()?;
        frontend::query(sql, &mut self.write_buf)?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.read_message().await? {
                Message::RowDescription(_) => rows.clear(),
                Message::DataRow(row) => {
                    let buf = row.buffer();
                    let mut ranges = row.ranges();
                    let mut values = Vec::new();
                    while let Some(r) = ranges.next()? {
                        values.push(r.map(|r| String::from_utf8_lossy(&buf[r]).into_owned()));
                    }
                    rows.push(values);
                }
                Message::CommandComplete(_) | Message::EmptyQueryResponse => {}
                Message::ErrorResponse(e) => error = Some(DbError::parse(&mut e.fields())?),
                Message::NoticeResponse(n) => self.notice(DbError::parse(&mut n.fields())?),
                Message::ParameterStatus(p) => self.set_param(&p)?,
                Message::ReadyForQuery(_) => break,
                Message::CopyInResponse(_) | Message::CopyOutResponse(_) => {
                    self.state = State::Broken;
                    return Err(Error::protocol(
                        "simple_query does not run COPY; use copy_out",
                    ));
                }
                other => return Err(self.unexpected(&other, "simple query")),
            }
        }
        match error {
            Some(e) => Err(Error::new(ErrorKind::Db(Box::new(e)))),
            None => Ok(rows),
        }
    }

    /// Parses `sql` as an unnamed statement and describes it, without running it
    /// (Parse + Describe + Sync).
    ///
    /// # Errors
    /// The server's error for a statement that does not parse or plan (missing table, syntax).
    pub async fn describe(&mut self, sql: &str) -> Result<Described> {
        self.check_idle()?;
        frontend::parse("", sql, std::iter::empty(), &mut self.write_buf)?;
        frontend::describe(b'S', "", &mut self.write_buf)?;
        frontend::sync(&mut self.write_buf);
        self.flush().await?;
        let mut params = Vec::new();
        let mut columns = None;
        let mut error = None;
        loop {
            match self.read_message().await? {
                Message::ParseComplete => {}
                Message::ParameterDescription(p) => {
                    let mut it = p.parameters();
                    while let Some(oid) = it.next()? {
                        params.push(oid);
                    }
                }
                Message::RowDescription(body) => columns = Some(row_description(&body)?),
                Message::NoData => columns = None,
                Message::ErrorResponse(e) => error = Some(DbError::parse(&mut e.fields())?),
                Message::NoticeResponse(n) => self.notice(DbError::parse(&mut n.fields())?),
                Message::ParameterStatus(p) => self.set_param(&p)?,
                Message::ReadyForQuery(_) => break,
                other => return Err(self.unexpected(&other, "describe")),
            }
        }
        match error {
            Some(e) => Err(Error::new(ErrorKind::Db(Box::new(e)))),
            None => Ok(Described { params, columns }),
        }
    }

    /// Starts `COPY ... TO STDOUT` (sent as a simple query) and returns the stream of its data.
    ///
    /// The statement must be a COPY TO STDOUT; its format is reported by
    /// [`CopyOut::is_binary`].
    ///
    /// # Errors
    /// The server's error before the copy starts (with the connection ready again), or a
    /// statement that is not a COPY TO STDOUT.
    pub async fn copy_out(&mut self, sql: &str) -> Result<CopyOut<'_>> {
        self.check_idle()?;
        frontend::query(sql, &mut self.write_buf)?;
        self.flush().await?;
        let mut error = None;
        loop {
            match self.read_message().await? {
                Message::CopyOutResponse(body) => {
                    self.state = State::InCopy;
                    return Ok(CopyOut {
                        binary: body.format() == 1,
                        conn: self,
                        remaining: 0,
                        rows: None,
                        error: None,
                        done: false,
                        bytes: 0,
                    });
                }
                Message::ErrorResponse(e) => error = Some(DbError::parse(&mut e.fields())?),
                Message::NoticeResponse(n) => self.notice(DbError::parse(&mut n.fields())?),
                Message::ParameterStatus(p) => self.set_param(&p)?,
                Message::ReadyForQuery(_) => {
                    return Err(match error {
                        Some(e) => Error::new(ErrorKind::Db(Box::new(e))),
                        None => Error::protocol("the statement did not start a COPY TO STDOUT"),
                    });
                }
                // A non-COPY statement: let it finish, then refuse.
                Message::RowDescription(_)
                | Message::DataRow(_)
                | Message::CommandComplete(_)
                | Message::EmptyQueryResponse => {}
                other => return Err(self.unexpected(&other, "starting COPY")),
            }
        }
    }

    /// Sends Terminate and closes the socket.
    ///
    /// # Errors
    /// Only socket errors while saying goodbye.
    pub async fn close(mut self) -> Result<()> {
        frontend::terminate(&mut self.write_buf);
        self.flush().await?;
        self.stream.shutdown().await?;
        Ok(())
    }

    fn check_idle(&self) -> Result<()> {
        match self.state {
            State::Idle => Ok(()),
            State::InCopy => Err(Error::new(ErrorKind::Broken(
                "a COPY on this connection was abandoned before it finished".into(),
            ))),
            State::Broken => Err(Error::new(ErrorKind::Broken(
                "an earlier error left the connection in an unknown state".into(),
            ))),
        }
    }

    fn set_param(
        &mut self,
        p: &postgres_protocol::message::backend::ParameterStatusBody,
    ) -> Result<()> {
        self.params
            .insert(p.name()?.to_owned(), p.value()?.to_owned());
        Ok(())
    }

    fn notice(&mut self, n: DbError) {
        if self.notices.len() == MAX_NOTICES {
            self.notices.remove(0);
        }
        self.notices.push(n);
    }

    fn unexpected(&mut self, m: &Message, during: &str) -> Error {
        self.state = State::Broken;
        Error::protocol(format!(
            "unexpected message {} during {during}",
            message_name(m)
        ))
    }

    async fn flush(&mut self) -> Result<()> {
        let res = self.stream.write_all(&self.write_buf).await;
        self.write_buf.clear();
        if let Err(e) = res {
            self.state = State::Broken;
            return Err(e.into());
        }
        Ok(())
    }

    /// Reads more bytes from the socket into the read buffer.
    async fn read_more(&mut self) -> Result<()> {
        self.read_buf.reserve(READ_CHUNK);
        match self.stream.read_buf(&mut self.read_buf).await {
            Ok(0) => {
                self.state = State::Broken;
                Err(Error::new(ErrorKind::Closed))
            }
            Ok(_) => Ok(()),
            Err(e) => {
                self.state = State::Broken;
                Err(e.into())
            }
        }
    }

    /// Whether a whole message sits at the front of the read buffer; checks its length.
    fn message_ready(&mut self) -> Result<bool> {
        let Some(len) = self.peek_len()? else {
            return Ok(false);
        };
        if len > MAX_MESSAGE_LEN {
            self.state = State::Broken;
            return Err(Error::protocol(format!(
                "message of {len} bytes ('{}') exceeds the {MAX_MESSAGE_LEN}-byte limit",
                self.read_buf[0].escape_ascii()
            )));
        }
        Ok(self.read_buf.len() > len)
    }

    /// The declared length of the message at the front of the buffer (without the tag).
    fn peek_len(&mut self) -> Result<Option<usize>> {
        if self.read_buf.len() < 5 {
            return Ok(None);
        }
        let len = i32::from_be_bytes([
            self.read_buf[1],
            self.read_buf[2],
            self.read_buf[3],
            self.read_buf[4],
        ]);
        if len < 4 {
            self.state = State::Broken;
            return Err(Error::protocol(format!(
                "message '{}' has invalid length {len}",
                self.read_buf[0].escape_ascii()
            )));
        }
        Ok(Some(len as usize))
    }

    async fn read_message(&mut self) -> Result<Message> {
        loop {
            if self.message_ready()? {
                return match Message::parse(&mut self.read_buf) {
                    Ok(Some(m)) => Ok(m),
                    Ok(None) => Err(Error::protocol("incomplete message after length check")),
                    Err(e) => {
                        self.state = State::Broken;
                        Err(Error::protocol(format!("malformed message: {e}")))
                    }
                };
            }
            self.read_more().await?;
        }
    }
}

fn row_description(body: &RowDescriptionBody) -> Result<Vec<FieldDescription>> {
    let mut fields = body.fields();
    let mut out = Vec::new();
    while let Some(f) = fields.next()? {
        out.push(FieldDescription {
            name: f.name().to_owned(),
            table_oid: f.table_oid(),
            column_id: f.column_id(),
            type_oid: f.type_oid(),
            type_modifier: f.type_modifier(),
            type_size: f.type_size(),
        });
    }
    Ok(out)
}

fn message_name(m: &Message) -> &'static str {
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

/// The data of a running `COPY ... TO STDOUT`, read like a `BufRead`.
///
/// BE ADVISED: this is the hot loop. CopyData frames are walked in place in the connection's
/// one read buffer: [`fill`](CopyOut::fill) returns the part of the current frame that has
/// arrived (possibly a fraction of a frame, possibly ending mid-row) and
/// [`consume`](CopyOut::consume) advances past what the caller used. No message object and no
/// allocation per frame; a frame larger than the buffer simply arrives in several pieces.
///
/// # Termination
/// `fill` returns an empty slice once the server has sent CopyDone, CommandComplete and
/// ReadyForQuery. If the server reports an error instead, `fill` returns it after
/// ReadyForQuery, and the connection is usable again. Dropping a `CopyOut` before the end
/// leaves the connection unusable (later calls fail with [`ErrorKind::Broken`]).
#[derive(Debug)]
pub struct CopyOut<'c> {
    conn: &'c mut Connection,
    binary: bool,
    /// Bytes of the current CopyData frame not yet handed out.
    remaining: usize,
    rows: Option<u64>,
    error: Option<DbError>,
    done: bool,
    bytes: u64,
}

impl CopyOut<'_> {
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

    /// Returns the next bytes of COPY data, reading from the socket when none are buffered; an
    /// empty slice at the end of the copy.
    ///
    /// # Errors
    /// The server's error (SQLSTATE and all fields), a closed connection, or a protocol
    /// violation.
    pub async fn fill(&mut self) -> Result<&[u8]> {
        loop {
            if self.remaining > 0 {
                if !self.conn.read_buf.is_empty() {
                    let n = self.remaining.min(self.conn.read_buf.len());
                    return Ok(&self.conn.read_buf[..n]);
                }
                self.conn.read_more().await?;
                continue;
            }
            if self.done {
                return Ok(&[]);
            }
            let buf = &self.conn.read_buf;
            if buf.len() >= 5 && buf[0] == b'd' {
                let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
                if len < 4 {
                    self.conn.state = State::Broken;
                    return Err(Error::protocol(format!(
                        "CopyData with invalid length {len}"
                    )));
                }
                self.conn.read_buf.advance(5);
                self.remaining = len as usize - 4;
                continue;
            }
            if !self.conn.message_ready()? {
                self.conn.read_more().await?;
                continue;
            }
            let msg = match Message::parse(&mut self.conn.read_buf) {
                Ok(Some(m)) => m,
                Ok(None) => return Err(Error::protocol("incomplete message after length check")),
                Err(e) => {
                    self.conn.state = State::Broken;
                    return Err(Error::protocol(format!(
                        "malformed message during COPY: {e}"
                    )));
                }
            };
            match msg {
                Message::CopyDone => {}
                Message::CommandComplete(c) => {
                    let tag = c.tag()?;
                    self.rows = tag
                        .strip_prefix("COPY ")
                        .and_then(|n| n.trim().parse().ok());
                }
                Message::ErrorResponse(e) => self.error = Some(DbError::parse(&mut e.fields())?),
                Message::NoticeResponse(n) => {
                    let n = DbError::parse(&mut n.fields())?;
                    self.conn.notice(n);
                }
                Message::ParameterStatus(p) => self.conn.set_param(&p)?,
                Message::NotificationResponse(_) => {}
                Message::ReadyForQuery(_) => {
                    self.done = true;
                    self.conn.state = State::Idle;
                    if let Some(e) = self.error.take() {
                        return Err(Error::new(ErrorKind::Db(Box::new(e))));
                    }
                }
                other => return Err(self.conn.unexpected(&other, "COPY OUT")),
            }
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
        self.conn.read_buf.advance(n);
        self.remaining -= n;
        self.bytes += n as u64;
    }
}
