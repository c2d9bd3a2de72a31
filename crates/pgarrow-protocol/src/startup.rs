//! Opening a connection: addresses, TLS negotiation (with libpq's `allow` / `prefer`
//! retries), the startup message, and authentication (cleartext, MD5, SCRAM-SHA-256 with or
//! without channel binding, passwords from the config or `.pgpass`).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::net::{TcpStream, UnixStream};

use crate::cancel::{CancelToken, Endpoint};
use crate::config::{ChannelBinding, Config, Host, SslMode};
use crate::conn::{Connection, READ_CHUNK, State, encode_err, malformed};
use crate::error::{Error, ErrorKind, Result};
use crate::pgpass;
use crate::socket::{Stream, configure_socket};
use crate::tls::{self, Negotiated, TlsSetup};

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
            on_notice: config.on_notice.clone(),
            notifications: Vec::new(),
            transaction: crate::conn::TransactionStatus::Idle,
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
        if config.replication {
            params.push(("replication", "database"));
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
                if config.read_only {
                    // A statement rather than a startup parameter: connection poolers such as
                    // pgbouncer refuse startup parameters they do not know.
                    self.simple_query("SET default_transaction_read_only = on")
                        .await?;
                }
                for (name, value) in &config.settings {
                    self.simple_query(&format!(
                        "SET {} = {}",
                        crate::quote_ident(name),
                        crate::quote_literal(value)
                    ))
                    .await?;
                }
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
        // require_auth: the method the server asks for must be one the client accepts.
        let required = |method: &str, asked: &str| match &config.require_auth {
            Some(r) if !r.allows(method) => Err(Error::auth(format!(
                "require_auth={} refuses {asked}, which the server asks for",
                if r.negated {
                    r.methods
                        .iter()
                        .map(|m| format!("!{m}"))
                        .collect::<Vec<_>>()
                        .join(",")
                } else {
                    r.methods.join(",")
                },
            ))),
            _ => Ok(()),
        };
        let mut asked = false;
        let mut pending = None;
        loop {
            let message = self.next_message(&mut pending).await?;
            match &message {
                Message::AuthenticationOk if !asked => {
                    required("none", "no authentication (the server trusts the client)")?;
                }
                Message::AuthenticationCleartextPassword => {
                    required("password", "a cleartext password")?;
                }
                Message::AuthenticationMd5Password(_) => required("md5", "an md5 password")?,
                Message::AuthenticationSasl(_) => required("scram-sha-256", "SCRAM-SHA-256")?,
                Message::AuthenticationGss | Message::AuthenticationGssContinue(_) => {
                    required("gss", "GSSAPI")?;
                }
                Message::AuthenticationSspi => required("sspi", "SSPI")?,
                _ => {}
            }
            asked = true;
            match message {
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
}
