//! One connection to a PostgreSQL server: TLS, startup, authentication, queries, COPY OUT,
//! cancellation.

use std::borrow::{Borrow, BorrowMut};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::{ErrorResponseBody, Message, RowDescriptionBody};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;

use crate::cancel::{CancelToken, Endpoint};
use crate::config::{ChannelBinding, Config, Host, SslMode};
use crate::error::{DbError, Error, ErrorKind, Result};
use crate::pgpass;
use crate::tls::{self, Negotiated, TlsSetup};

/// Largest non-CopyData message accepted (RowDescription of 1600 columns, error texts, catalog
/// rows). The length prefix is checked before any buffer grows, so a server claiming
/// gigabytes costs nothing. CopyData is never buffered whole, so it has no such cap.
pub const MAX_MESSAGE_LEN: usize = 64 << 20;
/// How much free space the read buffer keeps before each socket read.
const READ_CHUNK: usize = 256 << 10;
/// The socket's receive low-water mark during a COPY: one wake-up per 64 KiB instead of per
/// 8 KiB (what the server sends at a time), an eighth of the system calls.
const COPY_LOWAT: usize = 64 << 10;
/// How long a COPY read waits for the low-water mark before taking what has arrived.
const LOWAT_WAIT: Duration = Duration::from_millis(2);
/// How long [`CopyOut::cancel`] waits for the server to stop after the cancel request.
const CANCEL_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket under a connection.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Shuts the socket down at once, without waiting (usable from `Drop`): the server's
    /// next write fails, which ends a COPY it is sending.
    fn shutdown_now(&self) {
        let sock = match self {
            Stream::Tcp(s) => socket2::SockRef::from(s),
            Stream::Unix(s) => socket2::SockRef::from(s),
            Stream::Tls(s) => socket2::SockRef::from(s.get_ref().0),
        };
        let _ = sock.shutdown(std::net::Shutdown::Both);
    }
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
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
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
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
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

/// Where the connection stands in the protocol. Only `Idle` accepts a new statement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// ReadyForQuery received.
    Idle,
    /// A statement was sent and its replies are being read (or an error interrupted that).
    Busy,
    /// COPY data is flowing.
    InCopy,
    /// Unusable, for this reason.
    Broken(String),
}

/// How TLS is tried on one TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsTry {
    Off,
    /// Ask; continue in plain text if the server says no.
    Preferred,
    /// Ask; fail if the server says no.
    Required,
}

/// A failed connection attempt, and whether libpq's `allow` / `prefer` rule says to try
/// again the other way (with TLS, without TLS).
struct Failed {
    error: Error,
    retry: bool,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed {
            error,
            retry: false,
        }
    }
}

/// An authenticated connection.
///
/// Every method leaves the connection ready for the next statement, or unusable (a later call
/// then fails with [`ErrorKind::Broken`]): a connection is never reused mid-message or
/// mid-COPY.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    read_buf: BytesMut,
    write_buf: BytesMut,
    params: HashMap<String, String>,
    state: State,
    /// The socket failed or the server closed it: a cancel request could not help.
    closed: bool,
    /// Authentication finished (AuthenticationOk).
    authenticated: bool,
    /// Startup finished: the server knows this session's cancel key.
    started: bool,
    /// SCRAM-SHA-256-PLUS bound the authentication to the TLS channel.
    channel_bound: bool,
    read_timeout: Option<Duration>,
    cancel: CancelToken,
    notices: Vec<DbError>,
}

/// Notices kept per connection; older ones are dropped.
const MAX_NOTICES: usize = 100;

fn encode_err(e: io::Error) -> Error {
    Error::protocol(format!("cannot encode the message: {e}"))
}

fn malformed(e: io::Error) -> Error {
    Error::protocol(format!("malformed message: {e}"))
}

fn parse_error(body: &ErrorResponseBody) -> Result<DbError> {
    DbError::parse(&mut body.fields())
}

impl Connection {
    /// Connects, sets up TLS as `sslmode` says, authenticates and waits until the server is
    /// ready for queries.
    ///
    /// A host name is resolved and its addresses tried in turn; a Unix socket never uses TLS
    /// (as in libpq). `sslmode=allow` retries with TLS, and `prefer` without, when the server
    /// rejects the first attempt during authentication (libpq's rules).
    ///
    /// # Errors
    /// Unreachable server ([`ErrorKind::Connect`]), TLS refused or failed ([`ErrorKind::Tls`]),
    /// refused authentication (the server's error, or [`ErrorKind::Auth`] for what pgarrow
    /// refuses: no password, channel binding required but not possible, ...), a server error
    /// at startup (unknown database, too many connections), or the connect timeout.
    pub async fn connect(config: &Config) -> Result<Connection> {
        let fut = Self::connect_any(config);
        match config.connect_timeout {
            Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| {
                Error::timeout(format!(
                    "connecting to {} took longer than {} s (connect_timeout)",
                    config.display_target(),
                    t.as_secs()
                ))
            })?,
            None => fut.await,
        }
    }

    async fn connect_any(config: &Config) -> Result<Connection> {
        let connect_err = |source| {
            Error::new(ErrorKind::Connect {
                target: config.display_target(),
                source,
            })
        };
        match &config.host {
            Host::Unix(dir) => {
                let path = dir.join(format!(".s.PGSQL.{}", config.port));
                let s = UnixStream::connect(&path).await.map_err(connect_err)?;
                Self::start(Stream::Unix(s), config, Endpoint::Unix(path), None)
                    .await
                    .map_err(|f| f.error)
            }
            Host::Tcp(host) => {
                let addrs: Vec<SocketAddr> = match config.hostaddr {
                    Some(ip) => vec![SocketAddr::new(ip, config.port)],
                    None => tokio::net::lookup_host((host.as_str(), config.port))
                        .await
                        .map_err(connect_err)?
                        .collect(),
                };
                let mut last = None;
                for addr in addrs {
                    match Self::connect_addr(config, addr).await {
                        Ok(c) => return Ok(c),
                        Err(e) if matches!(e.kind(), ErrorKind::Connect { .. }) => last = Some(e),
                        Err(e) => return Err(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    connect_err(io::Error::new(
                        io::ErrorKind::NotFound,
                        "the host name has no address",
                    ))
                }))
            }
        }
    }

    /// One address, with libpq's second attempt for `allow` and `prefer`.
    async fn connect_addr(config: &Config, addr: SocketAddr) -> Result<Connection> {
        let first = match config.ssl_mode {
            SslMode::Disable | SslMode::Allow => TlsTry::Off,
            SslMode::Prefer => TlsTry::Preferred,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => TlsTry::Required,
        };
        match Self::attempt(config, addr, first).await {
            Ok(c) => Ok(c),
            Err(f) if f.retry => {
                let second = if first == TlsTry::Off {
                    TlsTry::Required
                } else {
                    TlsTry::Off
                };
                match Self::attempt(config, addr, second).await {
                    Ok(c) => Ok(c),
                    // allow: the server cannot do TLS either; its first answer says more.
                    Err(again) if matches!(again.error.kind(), ErrorKind::Tls { .. }) => {
                        Err(f.error)
                    }
                    Err(again) => Err(again.error),
                }
            }
            Err(f) => Err(f.error),
        }
    }

    async fn attempt(
        config: &Config,
        addr: SocketAddr,
        how: TlsTry,
    ) -> std::result::Result<Connection, Failed> {
        let tcp = TcpStream::connect(addr).await.map_err(|source| {
            Error::new(ErrorKind::Connect {
                target: config.display_target(),
                source,
            })
        })?;
        configure_socket(&tcp, config).map_err(|source| {
            Error::new(ErrorKind::Connect {
                target: config.display_target(),
                source,
            })
        })?;
        let (stream, setup) = match how {
            TlsTry::Off => (Stream::Tcp(tcp), None),
            TlsTry::Preferred | TlsTry::Required => {
                let setup = tls::setup(config, addr.ip())?;
                match tls::negotiate(tcp, &setup).await {
                    Ok(Negotiated::Tls(s)) => (Stream::Tls(s), Some(setup)),
                    Ok(Negotiated::Refused(tcp)) if how == TlsTry::Preferred => {
                        (Stream::Tcp(tcp), None)
                    }
                    Ok(Negotiated::Refused(_)) => {
                        return Err(Error::tls(if config.ssl_mode.requires_tls() {
                            format!(
                                "the server does not support TLS, but sslmode={} requires it",
                                config.ssl_mode
                            )
                        } else {
                            "the server rejected the connection without TLS, and does not \
                             support TLS (sslmode=allow)"
                                .to_owned()
                        })
                        .into());
                    }
                    Err(error) => {
                        // prefer: a failed handshake falls back to plain text, as in libpq.
                        let retry = how == TlsTry::Preferred
                            && matches!(error.kind(), ErrorKind::Tls { .. });
                        return Err(Failed { error, retry });
                    }
                }
            }
        };
        let used_tls = setup.is_some();
        Self::start(stream, config, Endpoint::Tcp(addr), setup)
            .await
            .map_err(|mut f| {
                f.retry &= matches!(
                    (config.ssl_mode, used_tls),
                    (SslMode::Allow, false) | (SslMode::Prefer, true)
                );
                f
            })
    }

    /// Startup on an open socket. A server error before AuthenticationOk may be retried.
    async fn start(
        stream: Stream,
        config: &Config,
        endpoint: Endpoint,
        tls: Option<TlsSetup>,
    ) -> std::result::Result<Connection, Failed> {
        let mut conn = Connection {
            stream,
            read_buf: BytesMut::with_capacity(READ_CHUNK * 4),
            write_buf: BytesMut::with_capacity(1024),
            params: HashMap::new(),
            state: State::Busy,
            closed: false,
            authenticated: false,
            started: false,
            channel_bound: false,
            read_timeout: config.read_timeout,
            cancel: CancelToken {
                endpoint,
                tls,
                process_id: 0,
                secret_key: 0,
                timeout: config.connect_timeout,
                target: config.display_target(),
            },
            notices: Vec::new(),
        };
        match conn.startup(config).await {
            Ok(()) => Ok(conn),
            Err(error) => {
                let retry = !conn.authenticated && error.as_db_error().is_some();
                Err(Failed { error, retry })
            }
        }
    }

    async fn startup(&mut self, config: &Config) -> Result<()> {
        let statement_timeout = config
            .statement_timeout
            .map(|t| format!("{}ms", t.as_millis()));
        let mut params: Vec<(&str, &str)> = vec![
            ("user", &config.user),
            ("database", &config.dbname),
            ("application_name", &config.application_name),
            ("client_encoding", "UTF8"),
        ];
        if let Some(o) = &config.options {
            params.push(("options", o));
        }
        if let Some(t) = &statement_timeout {
            params.push(("statement_timeout", t));
        }
        frontend::startup_message(params.iter().copied(), &mut self.write_buf)
            .map_err(|_| Error::config("connection settings cannot contain NUL characters"))?;
        self.flush().await?;
        self.authenticate(config).await?;
        let mut pending = None;
        loop {
            match self.next_message(&mut pending).await? {
                Message::BackendKeyData(k) => {
                    self.cancel.process_id = k.process_id();
                    self.cancel.secret_key = k.secret_key();
                }
                Message::ReadyForQuery(_) => break,
                other => return Err(self.unexpected(&other, "startup")),
            }
        }
        if let Some(e) = pending {
            self.state = State::Broken("startup failed".into());
            return Err(Error::db(e));
        }
        match self.params.get("client_encoding").map(String::as_str) {
            Some("UTF8") => {
                self.state = State::Idle;
                self.started = true;
                Ok(())
            }
            other => Err(Error::protocol(format!(
                "server did not accept client_encoding UTF8 (it reports {other:?})"
            ))),
        }
    }

    /// The password to send: the configured one, else the password file's.
    fn password(&self, config: &Config) -> Result<String> {
        if let Some(p) = config.password.as_ref().filter(|p| !p.is_empty()) {
            return Ok(p.clone());
        }
        let mut why = String::new();
        if let Some(file) = &config.passfile {
            match pgpass::lookup(
                file,
                &config.passfile_host(),
                config.port,
                &config.dbname,
                &config.user,
            ) {
                pgpass::Lookup::Found(p) => return Ok(p),
                pgpass::Lookup::NotFound => {}
                pgpass::Lookup::Ignored(reason) => why = format!(" ({reason}, so it was ignored)"),
            }
        }
        Err(Error::auth(format!(
            "the server asks a password for user \"{}\" but none was given (put it in the URL, \
             set PGPASSWORD, or add it to the password file){why}",
            config.user
        )))
    }

    async fn authenticate(&mut self, config: &Config) -> Result<()> {
        let require = config.channel_binding == ChannelBinding::Require;
        let refuse = |what: &str| {
            Error::auth(format!(
                "channel_binding=require, but the server asks for {what}, which cannot bind \
                 the channel"
            ))
        };
        let mut pending = None;
        loop {
            match self.next_message(&mut pending).await? {
                Message::AuthenticationOk => {
                    if require && !self.channel_bound {
                        return Err(Error::auth(
                            "channel_binding=require, but the server authenticated the client \
                             without channel binding",
                        ));
                    }
                    self.authenticated = true;
                    return Ok(());
                }
                Message::AuthenticationCleartextPassword => {
                    if require {
                        return Err(refuse("a cleartext password"));
                    }
                    let password = self.password(config)?;
                    frontend::password_message(password.as_bytes(), &mut self.write_buf)
                        .map_err(encode_err)?;
                    self.flush().await?;
                }
                Message::AuthenticationMd5Password(body) => {
                    if require {
                        return Err(refuse("an md5 password"));
                    }
                    let password = self.password(config)?;
                    let hash = md5_hash(config.user.as_bytes(), password.as_bytes(), body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.write_buf)
                        .map_err(encode_err)?;
                    self.flush().await?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let (mut plain, mut plus) = (false, false);
                    while let Some(m) = mechanisms.next().map_err(malformed)? {
                        plain |= m == sasl::SCRAM_SHA_256;
                        plus |= m == sasl::SCRAM_SHA_256_PLUS;
                    }
                    let (mechanism, binding) = self.choose_scram(config, plain, plus)?;
                    let password = self.password(config)?;
                    self.scram(&password, mechanism, binding).await?;
                    self.channel_bound = mechanism == sasl::SCRAM_SHA_256_PLUS;
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

    /// The SASL mechanism and channel binding flag to use, per `channel_binding`.
    fn choose_scram(
        &self,
        config: &Config,
        plain: bool,
        plus: bool,
    ) -> Result<(&'static str, sasl::ChannelBinding)> {
        // The tls-server-end-point data, when the connection uses TLS.
        let end_point = match &self.stream {
            Stream::Tls(s) => Some(
                s.get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .ok_or_else(|| "the server sent no certificate".to_owned())
                    .and_then(|c| tls::tls_server_end_point(c)),
            ),
            _ => None,
        };
        match config.channel_binding {
            ChannelBinding::Require => {
                let Some(end_point) = end_point else {
                    return Err(Error::auth(
                        "channel_binding=require, but the connection does not use TLS",
                    ));
                };
                if !plus {
                    return Err(Error::auth(
                        "channel_binding=require, but the server does not offer \
                         SCRAM-SHA-256-PLUS",
                    ));
                }
                let data = end_point
                    .map_err(|e| Error::auth(format!("channel_binding=require, but {e}")))?;
                Ok((
                    sasl::SCRAM_SHA_256_PLUS,
                    sasl::ChannelBinding::tls_server_end_point(data),
                ))
            }
            ChannelBinding::Prefer => match end_point {
                Some(Ok(data)) if plus => Ok((
                    sasl::SCRAM_SHA_256_PLUS,
                    sasl::ChannelBinding::tls_server_end_point(data),
                )),
                // "y": the client could bind, but the server did not offer it.
                Some(Ok(_)) if plain => {
                    Ok((sasl::SCRAM_SHA_256, sasl::ChannelBinding::unrequested()))
                }
                _ if plain => Ok((sasl::SCRAM_SHA_256, sasl::ChannelBinding::unsupported())),
                _ => Err(Error::auth(
                    "the server offers only SCRAM-SHA-256-PLUS, and this connection cannot \
                     bind its channel",
                )),
            },
            ChannelBinding::Disable if plain => {
                Ok((sasl::SCRAM_SHA_256, sasl::ChannelBinding::unsupported()))
            }
            ChannelBinding::Disable => Err(Error::auth(
                "channel_binding=disable, but the server offers only SCRAM-SHA-256-PLUS",
            )),
        }
    }

    /// SCRAM-SHA-256[-PLUS] (RFC 7677, RFC 5802): client-first, server-first, client-final,
    /// server-final; the server's signature is verified before continuing. With `-PLUS` the
    /// proof covers the server certificate's hash, so a man in the middle cannot relay it.
    async fn scram(
        &mut self,
        password: &str,
        mechanism: &str,
        binding: sasl::ChannelBinding,
    ) -> Result<()> {
        let mut scram = sasl::ScramSha256::new(password.as_bytes(), binding);
        frontend::sasl_initial_response(mechanism, scram.message(), &mut self.write_buf)
            .map_err(encode_err)?;
        self.flush().await?;
        let mut pending = None;
        match self.next_message(&mut pending).await? {
            Message::AuthenticationSaslContinue(body) => scram
                .update(body.data())
                .map_err(|e| Error::auth(format!("bad SCRAM server-first message: {e}")))?,
            other => return Err(self.unexpected(&other, "SCRAM exchange")),
        }
        frontend::sasl_response(scram.message(), &mut self.write_buf).map_err(encode_err)?;
        self.flush().await?;
        match self.next_message(&mut pending).await? {
            Message::AuthenticationSaslFinal(body) => scram
                .finish(body.data())
                .map_err(|e| Error::auth(format!("the server's SCRAM proof is invalid: {e}"))),
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

    /// Notices received so far (the last 100), oldest first; clears the list.
    pub fn take_notices(&mut self) -> Vec<DbError> {
        std::mem::take(&mut self.notices)
    }

    /// Encodes a message into the write buffer; nothing of it stays there on failure.
    fn encode(&mut self, f: impl FnOnce(&mut BytesMut) -> io::Result<()>) -> Result<()> {
        let start = self.write_buf.len();
        f(&mut self.write_buf).map_err(|e| {
            self.write_buf.truncate(start);
            encode_err(e)
        })
    }

    /// Runs SQL with the simple query protocol and returns the rows of its last result, as
    /// text.
    ///
    /// # Errors
    /// The server's error (after which the connection is ready again), or a broken connection.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<TextRow>> {
        self.check_idle()?;
        self.encode(|buf| frontend::query(sql, buf))?;
        self.state = State::Busy;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.next_message(&mut error).await? {
                Message::RowDescription(_) => rows.clear(),
                Message::DataRow(row) => {
                    let buf = row.buffer();
                    let mut ranges = row.ranges();
                    let mut values = Vec::new();
                    while let Some(r) = ranges.next().map_err(malformed)? {
                        let v = r
                            .map(|r| {
                                buf.get(r)
                                    .map(|b| String::from_utf8_lossy(b).into_owned())
                                    .ok_or_else(|| Error::protocol("DataRow value out of bounds"))
                            })
                            .transpose()?;
                        values.push(v);
                    }
                    rows.push(values);
                }
                Message::CommandComplete(_) | Message::EmptyQueryResponse => {}
                Message::ReadyForQuery(_) => break,
                Message::CopyInResponse(_) => {
                    // Not ours to feed: refuse it, the server then reports an error.
                    self.encode(|buf| {
                        frontend::copy_fail("pgarrow's simple_query does not run COPY", buf)
                    })?;
                    self.flush().await?;
                }
                Message::CopyOutResponse(_) => {
                    self.state = State::Broken("simple_query was given a COPY TO".into());
                    return Err(Error::protocol(
                        "simple_query does not run COPY TO; use copy_out",
                    ));
                }
                other => return Err(self.unexpected(&other, "simple query")),
            }
        }
        self.state = State::Idle;
        match error {
            Some(e) => Err(Error::db(e)),
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
        self.encode(|buf| {
            frontend::parse("", sql, std::iter::empty(), buf)?;
            frontend::describe(b'S', "", buf)?;
            frontend::sync(buf);
            Ok(())
        })?;
        self.state = State::Busy;
        self.flush().await?;
        let mut params = Vec::new();
        let mut columns = None;
        let mut error = None;
        loop {
            match self.next_message(&mut error).await? {
                Message::ParseComplete => {}
                Message::ParameterDescription(p) => {
                    let mut it = p.parameters();
                    while let Some(oid) = it.next().map_err(malformed)? {
                        params.push(oid);
                    }
                }
                Message::RowDescription(body) => columns = Some(row_description(&body)?),
                Message::NoData => columns = None,
                Message::ReadyForQuery(_) => break,
                other => return Err(self.unexpected(&other, "describe")),
            }
        }
        self.state = State::Idle;
        match error {
            Some(e) => Err(Error::db(e)),
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
    pub async fn copy_out(&mut self, sql: &str) -> Result<CopyOut<&mut Connection>> {
        CopyOut::start(self, sql).await
    }

    /// Sends `sql` and waits for CopyOutResponse; returns whether the format is binary and
    /// whether the socket's low-water mark was raised.
    async fn start_copy_out(&mut self, sql: &str) -> Result<(bool, bool)> {
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

    fn check_idle(&self) -> Result<()> {
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
    fn abandon(&mut self) {
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
    fn spawn_cancel(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let token = self.cancel.clone();
            runtime.spawn(async move {
                let _ = token.cancel().await;
            });
        }
    }

    fn set_param(
        &mut self,
        p: &postgres_protocol::message::backend::ParameterStatusBody,
    ) -> Result<()> {
        let name = p.name().map_err(malformed)?.to_owned();
        let value = p.value().map_err(malformed)?.to_owned();
        self.params.insert(name, value);
        Ok(())
    }

    fn notice(&mut self, n: DbError) {
        if self.notices.len() == MAX_NOTICES {
            self.notices.remove(0);
        }
        self.notices.push(n);
    }

    fn unexpected(&mut self, m: &Message, during: &str) -> Error {
        self.broken_protocol(format!(
            "unexpected message {} during {during}",
            message_name(m)
        ))
    }

    fn broken_protocol(&mut self, msg: impl Into<String>) -> Error {
        let msg = msg.into();
        self.state = State::Broken(format!("the server broke the protocol: {msg}"));
        Error::protocol(msg)
    }

    /// A FATAL or PANIC error ends the session: no ReadyForQuery follows.
    fn fatal(&mut self, e: DbError) -> Error {
        self.state = State::Broken(format!("the server ended the session: {}", e.message));
        self.closed = true;
        Error::db(e)
    }

    async fn flush(&mut self) -> Result<()> {
        let mut res = self.stream.write_all(&self.write_buf).await;
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
    async fn read_more(&mut self) -> Result<()> {
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
    fn read_result(&mut self, read: std::io::Result<usize>) -> Result<()> {
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
    fn try_read_more(&mut self) -> Option<Result<()>> {
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
    fn set_recv_lowat(&self, bytes: usize) -> bool {
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
    fn message_ready(&mut self) -> Result<bool> {
        let Some(len) = self.peek_len()? else {
            return Ok(false);
        };
        if len > MAX_MESSAGE_LEN {
            let tag = self.read_buf[0].escape_ascii().to_string();
            return Err(self.broken_protocol(format!(
                "message '{tag}' claims {len} bytes, over the {MAX_MESSAGE_LEN}-byte limit"
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
            let tag = self.read_buf[0].escape_ascii().to_string();
            return Err(self.broken_protocol(format!("message '{tag}' has invalid length {len}")));
        }
        Ok(Some(len as usize))
    }

    async fn read_message(&mut self) -> Result<Message> {
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
    async fn next_message(&mut self, pending: &mut Option<DbError>) -> Result<Message> {
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
                Message::NotificationResponse(_) => {}
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

/// TCP_NODELAY, keepalives and TCP_USER_TIMEOUT, as configured.
fn configure_socket(tcp: &TcpStream, config: &Config) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    let sock = socket2::SockRef::from(tcp);
    let k = &config.keepalives;
    if k.enabled {
        let params = socket2::TcpKeepalive::new()
            .with_time(k.idle)
            .with_interval(k.interval);
        #[cfg(any(
            target_os = "linux",
            target_os = "android",
            target_os = "macos",
            target_os = "freebsd"
        ))]
        let params = params.with_retries(k.count);
        sock.set_tcp_keepalive(&params)?;
    } else {
        sock.set_keepalive(false)?;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(t) = config.tcp_user_timeout {
        sock.set_tcp_user_timeout(Some(t))?;
    }
    Ok(())
}

fn row_description(body: &RowDescriptionBody) -> Result<Vec<FieldDescription>> {
    let mut fields = body.fields();
    let mut out = Vec::new();
    while let Some(f) = fields.next().map_err(malformed)? {
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
    conn: C,
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
    pub async fn start(mut conn: C, sql: &str) -> Result<CopyOut<C>> {
        let (binary, lowat) = conn.borrow_mut().start_copy_out(sql).await?;
        Ok(CopyOut {
            conn,
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
        Borrow::<Connection>::borrow(&self.conn)
    }

    #[inline]
    fn conn_mut(&mut self) -> &mut Connection {
        BorrowMut::<Connection>::borrow_mut(&mut self.conn)
    }

    fn reset_lowat(&mut self) {
        if std::mem::take(&mut self.lowat) {
            self.conn_mut().set_recv_lowat(1);
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
            if buf.len() < 5 || buf[0] != b'd' {
                return None;
            }
            let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
            // A bad length is for `fill` to report.
            let payload = usize::try_from(len).ok()?.checked_sub(4)?;
            self.conn_mut().read_buf.advance(5);
            self.remaining = payload;
        }
        let n = self.remaining.min(self.conn_mut().read_buf.len());
        (n > 0).then(|| &self.conn_mut().read_buf[..n])
    }

    /// Everything buffered, when it starts at a message boundary: the protocol messages as
    /// they arrived, the last one possibly cut off. For a decoder that walks CopyData messages
    /// itself ([`consume_messages`](CopyOut::consume_messages) then says what it used); it is
    /// read-only, and anything the decoder declines is left for [`buffered`](CopyOut::buffered)
    /// and [`fill`](CopyOut::fill), which check every message. `None` in the middle of a
    /// message, or when nothing is buffered.
    #[inline]
    pub fn messages(&self) -> Option<&[u8]> {
        let buf = &self.conn().read_buf;
        (self.remaining == 0 && !buf.is_empty()).then_some(&buf[..])
    }

    /// Advances past `bytes` of what [`messages`](CopyOut::messages) returned: whole CopyData
    /// messages carrying `data` bytes of COPY data in all, except that the last may have been
    /// left part-way, with `left` bytes of its payload still to come (through `buffered` or
    /// `fill`).
    ///
    /// # Panics
    /// If called in the middle of a message, or with more bytes than are buffered.
    #[inline]
    pub fn consume_messages(&mut self, bytes: usize, data: usize, left: usize) {
        assert!(
            self.remaining == 0 && bytes <= self.conn_mut().read_buf.len(),
            "consumed messages that were not handed out"
        );
        debug_assert!(data <= bytes && (bytes == 0 || self.conn_mut().read_buf[0] == b'd'));
        self.conn_mut().read_buf.advance(bytes);
        self.remaining = left;
        self.bytes += data as u64;
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
            let buf = &self.conn_mut().read_buf;
            if buf.len() >= 5 && buf[0] == b'd' {
                let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
                if len < 4 {
                    return Err(self
                        .conn_mut()
                        .broken_protocol(format!("CopyData with invalid length {len}")));
                }
                self.conn_mut().read_buf.advance(5);
                self.remaining = len as usize - 4;
                continue;
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

impl<C: BorrowMut<Connection>> Drop for CopyOut<C> {
    fn drop(&mut self) {
        if !self.done {
            self.conn_mut().abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn sockets_get_keepalives_and_user_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let config = Config::parse_with_env(
            "host=h keepalives_idle=31 keepalives_interval=7 keepalives_count=4 \
             tcp_user_timeout=12000",
            &|_| None,
        )
        .unwrap();
        configure_socket(&tcp, &config).unwrap();
        let sock = socket2::SockRef::from(&tcp);
        assert!(sock.tcp_nodelay().unwrap());
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(31));
        #[cfg(target_os = "linux")]
        {
            assert_eq!(
                sock.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(7)
            );
            assert_eq!(sock.tcp_keepalive_retries().unwrap(), 4);
            assert_eq!(
                sock.tcp_user_timeout().unwrap(),
                Some(Duration::from_secs(12))
            );
        }
        let tcp = TcpStream::connect(addr).await.unwrap();
        let off = Config::parse_with_env("host=h keepalives=0", &|_| None).unwrap();
        configure_socket(&tcp, &off).unwrap();
        assert!(!socket2::SockRef::from(&tcp).keepalive().unwrap());
    }
}
