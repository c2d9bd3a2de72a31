//! Connection configuration: URLs, libpq `key=value` strings, service files and the `PG*`
//! environment.
//!
//! As in libpq, settings come from (highest first) the connection string, the service named
//! by `service=` / `PGSERVICE` (`pg_service.conf`), the environment (`PGHOST`, `PGPORT`,
//! `PGUSER`, `PGPASSWORD`, `PGPASSFILE`, `PGDATABASE`, `PGAPPNAME`, `PGOPTIONS`,
//! `PGCONNECT_TIMEOUT`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`,
//! `PGSSLNEGOTIATION`, `PGCHANNELBINDING`, `PGSERVICEFILE`, `PGSYSCONFDIR`), then defaults.
//! A password missing from all of them is looked up in the password file (`.pgpass`) when the
//! server asks for one.
//!
//! Beyond libpq, two pgarrow settings are accepted: `read_timeout` (seconds the server may stay
//! silent while a reply is awaited; off by default, since a query may legitimately compute for
//! hours before its first row) and `statement_timeout` (sent to the server at startup;
//! milliseconds, or a number with a unit: `30s`, `5min`).
//!
//! Over ~600 lines on purpose: the settings and libpq's precedence between their sources live
//! in one place; a third of the file is their tests. The syntaxes of a connection string are
//! in `conninfo`, service files in `service`, the password file in `pgpass`.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::conninfo::{parse_key_values, parse_url};
use crate::error::{Error, Result};
use crate::service::service_params;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A host name or IP address, reached over TCP.
    Tcp(String),
    /// A directory holding the server's Unix socket `.s.PGSQL.<port>`.
    Unix(PathBuf),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Tcp(h) => f.write_str(h),
            Host::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// libpq's `sslmode`. TLS is never used over a Unix socket, whatever the mode (as in libpq:
/// the kernel is the transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Plain first; TLS if the server rejects the plain connection during authentication.
    Allow,
    /// TLS if the server offers it, no certificate checks; plain if it refuses TLS or rejects
    /// the TLS connection during authentication (libpq's default).
    Prefer,
    /// TLS or fail. No certificate checks, unless a root certificate is given or
    /// `~/.postgresql/root.crt` exists: then as `VerifyCa`.
    Require,
    /// TLS with the server certificate checked against the root certificates.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(Error::config(format!("invalid sslmode \"{other}\""))),
        })
    }

    /// The name libpq uses (`verify-full`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a TCP connection must use TLS (`require`, `verify-ca`, `verify-full`).
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where trusted root certificates come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SslRootCert {
    /// A PEM file of one or more certificates.
    File(PathBuf),
    /// The platform's trusted roots (`sslrootcert=system`); implies `sslmode=verify-full`.
    System,
}

/// libpq's `sslnegotiation` (PostgreSQL 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslNegotiation {
    /// Ask with an SSLRequest packet first, then start TLS if the server agrees (every server).
    Postgres,
    /// Start the TLS handshake at once, with ALPN `postgresql`: one round trip less, but only
    /// PostgreSQL 17 and later understand it. Needs `sslmode` `require` or stricter.
    Direct,
}

/// libpq's `channel_binding`: whether SCRAM binds the authentication to the TLS channel
/// (SCRAM-SHA-256-PLUS, `tls-server-end-point`), which defeats a man in the middle holding a
/// certificate the client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBinding {
    /// Never bind.
    Disable,
    /// Bind when TLS is in use and the server offers SCRAM-SHA-256-PLUS (the default).
    Prefer,
    /// Refuse to authenticate without channel binding: no plain connections, no password or
    /// md5 or trust authentication, no server that does not offer SCRAM-SHA-256-PLUS.
    Require,
}

/// TCP keepalive settings (`keepalives`, `keepalives_idle`, `keepalives_interval`,
/// `keepalives_count`).
///
/// Unlike libpq, which leaves the idle time to the system (two hours on Linux), pgarrow
/// defaults to 60 s idle, 10 s interval, 6 probes: a dead server or network path is noticed
/// in about two minutes during a long export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalives {
    /// Whether keepalives are on (`keepalives=1`, the default).
    pub enabled: bool,
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped.
    pub count: u32,
}

impl Default for Keepalives {
    fn default() -> Self {
        Keepalives {
            enabled: true,
            idle: Duration::from_secs(60),
            interval: Duration::from_secs(10),
            count: 6,
        }
    }
}

/// What a session does with each NOTICE, WARNING or INFO the server sends, besides keeping
/// the last ones ([`Connection::take_notices`](crate::Connection::take_notices)): a shared
/// callback, called on the task that reads the connection, as the message arrives. Two
/// handlers are equal when they are the same callback.
#[derive(Clone)]
pub struct NoticeHandler(std::sync::Arc<dyn Fn(&crate::DbError) + Send + Sync>);

impl NoticeHandler {
    /// A handler calling `f`.
    pub fn new(f: impl Fn(&crate::DbError) + Send + Sync + 'static) -> NoticeHandler {
        NoticeHandler(std::sync::Arc::new(f))
    }

    pub(crate) fn call(&self, notice: &crate::DbError) {
        (self.0)(notice);
    }
}

impl PartialEq for NoticeHandler {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for NoticeHandler {}

impl fmt::Debug for NoticeHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoticeHandler")
    }
}

/// Everything needed to open a connection.
///
/// `Debug` and [`Config::display_target`] never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Server host or Unix socket directory. The host name is what `verify-full` checks.
    pub host: Host,
    /// An IP address to connect to instead of resolving `host` (libpq's `hostaddr`).
    pub hostaddr: Option<IpAddr>,
    /// Server port (also names the Unix socket file).
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password, if any.
    pub password: Option<String>,
    /// Password file consulted when no password is given: `passfile`, else `PGPASSFILE`,
    /// else `~/.pgpass`.
    pub passfile: Option<PathBuf>,
    /// Database name.
    pub dbname: String,
    /// `application_name` reported to the server (`pgarrow` unless set).
    pub application_name: String,
    /// Command-line options sent to the server at startup (`-c name=value ...`).
    pub options: Option<String>,
    /// How long to wait for the connection, TLS and authentication.
    pub connect_timeout: Option<Duration>,
    /// How long the server may stay silent while a reply or COPY data is awaited (pgarrow's
    /// own setting; off by default). When it passes, the call fails with
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) and the connection is unusable.
    pub read_timeout: Option<Duration>,
    /// `statement_timeout` set for the session at startup (pgarrow's own setting).
    pub statement_timeout: Option<Duration>,
    /// TCP keepalives.
    pub keepalives: Keepalives,
    /// `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged (libpq's
    /// `tcp_user_timeout`, in milliseconds there). `None` keeps the system's.
    pub tcp_user_timeout: Option<Duration>,
    /// TLS mode.
    pub ssl_mode: SslMode,
    /// Trusted root certificates: `sslrootcert`, else `~/.postgresql/root.crt` if it exists.
    pub ssl_root_cert: Option<SslRootCert>,
    /// Client certificate (PEM): `sslcert`, else `~/.postgresql/postgresql.crt` if it exists.
    pub ssl_cert: Option<PathBuf>,
    /// Client private key (PEM): `sslkey`, else `~/.postgresql/postgresql.key` if it exists.
    pub ssl_key: Option<PathBuf>,
    /// How TLS is started.
    pub ssl_negotiation: SslNegotiation,
    /// SCRAM channel binding.
    pub channel_binding: ChannelBinding,
    /// The authentication methods the server may use (`require_auth`); `None` accepts any
    /// pgarrow supports.
    pub require_auth: Option<RequireAuth>,
    /// Make the session read-only (`SET default_transaction_read_only = on` once connected),
    /// so that a statement that writes fails and changes nothing: what an export wants (off
    /// unless set).
    pub read_only: bool,
    /// Settings applied with `SET name = 'value'` once connected (statements rather than
    /// startup parameters, which connection poolers refuse): what a caller needs the session
    /// to render as it expects (`DateStyle`, say).
    pub settings: Vec<(String, String)>,
    /// Open a replication connection in database mode (`replication=database` at startup):
    /// replication commands such as `CREATE_REPLICATION_SLOT` beside SQL; the role needs the
    /// REPLICATION attribute (off unless set).
    pub replication: bool,
    /// Called with each notice the server sends (none unless set: notices are kept only).
    pub on_notice: Option<NoticeHandler>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("hostaddr", &self.hostaddr)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("passfile", &self.passfile)
            .field("dbname", &self.dbname)
            .field("application_name", &self.application_name)
            .field("options", &self.options)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("keepalives", &self.keepalives)
            .field("tcp_user_timeout", &self.tcp_user_timeout)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("ssl_cert", &self.ssl_cert)
            .field("ssl_key", &self.ssl_key)
            .field("ssl_negotiation", &self.ssl_negotiation)
            .field("channel_binding", &self.channel_binding)
            .field("require_auth", &self.require_auth)
            .field("read_only", &self.read_only)
            .field("settings", &self.settings)
            .field("replication", &self.replication)
            .field("on_notice", &self.on_notice)
            .finish()
    }
}

/// The parameters of a `postgresql://` URL or a `key=value` string.
fn parse_string(s: &str) -> Result<Vec<(String, String)>> {
    let s = s.trim();
    if s.starts_with("postgresql://") || s.starts_with("postgres://") {
        parse_url(s)
    } else {
        parse_key_values(s)
    }
}

/// libpq's default Unix socket directory on Debian-family systems.
pub(crate) const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
/// libpq's compiled-in `sysconfdir` on Debian-family systems (for `pg_service.conf`).
pub(crate) const DEFAULT_SYSCONFDIR: &str = "/etc/postgresql-common";

/// Every parameter a connection string may hold.
pub(crate) const KNOWN_PARAMS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "passfile",
    "dbname",
    "application_name",
    "fallback_application_name",
    "options",
    "connect_timeout",
    "read_timeout",
    "statement_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslnegotiation",
    "channel_binding",
    "client_encoding",
    "service",
    "require_auth",
    "load_balance_hosts",
    "min_protocol_version",
    "max_protocol_version",
];

/// An authentication method the server may ask for, as libpq's `require_auth` names them.
const AUTH_METHODS: &[&str] = &[
    "password",
    "md5",
    "gss",
    "sspi",
    "scram-sha-256",
    "oauth",
    "none",
];

/// libpq's `require_auth`: the authentication methods the client accepts from the server
/// (`scram-sha-256`, `md5,password`), or the ones it refuses (`!password`); `none` stands for
/// a server that asks for none (`trust`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequireAuth {
    /// The methods named, each one of `password`, `md5`, `gss`, `sspi`, `scram-sha-256`,
    /// `oauth`, `none`.
    pub methods: Vec<String>,
    /// The list names the methods refused (`!md5,!password`), not the ones accepted.
    pub negated: bool,
}

impl RequireAuth {
    /// Reads libpq's syntax: methods separated by commas, all of them negated with `!` or
    /// none.
    ///
    /// # Errors
    /// An unknown method, a list mixing negated and plain methods, or an empty list.
    pub fn parse(text: &str) -> Result<RequireAuth> {
        let bad = |why: String| Error::config(format!("invalid require_auth \"{text}\": {why}"));
        let mut methods = Vec::new();
        let mut negated = None;
        for part in text.split(',').map(str::trim) {
            let (neg, method) = match part.strip_prefix('!') {
                Some(m) => (true, m),
                None => (false, part),
            };
            if !AUTH_METHODS.contains(&method) {
                return Err(bad(format!(
                    "unknown method \"{method}\" (use password, md5, gss, sspi, scram-sha-256, \
                     oauth or none, or their negations with !)"
                )));
            }
            if *negated.get_or_insert(neg) != neg {
                return Err(bad("negated and plain methods cannot be mixed".to_owned()));
            }
            methods.push(method.to_owned());
        }
        Ok(RequireAuth {
            methods,
            negated: negated.unwrap_or(false),
        })
    }

    /// Whether the server may authenticate the client with `method` (`none`: no request).
    pub fn allows(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method) != self.negated
    }
}

/// The settings given explicitly, last one wins.
#[derive(Default)]
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn take(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_owned)
    }
}

impl Config {
    /// The configuration from the `PG*` environment variables alone, with libpq's defaults.
    ///
    /// # Errors
    /// Invalid values in the environment, or a service file problem.
    pub fn from_env() -> Result<Config> {
        Self::build(Vec::new(), &|k| std::env::var(k).ok())
    }

    /// Parses a `postgresql://` URL or a libpq `key=value` string, with the service file and
    /// the `PG*` environment supplying whatever it leaves out.
    ///
    /// # Errors
    /// Malformed strings, unknown parameters and invalid values, naming the offending part
    /// (never the password).
    pub fn parse(s: &str) -> Result<Config> {
        Self::parse_with_env(s, &|k| std::env::var(k).ok())
    }

    /// As [`Config::parse`], with the environment given by `env` (for tests). `HOME` is read
    /// through `env` too.
    ///
    /// # Errors
    /// As [`Config::parse`].
    pub fn parse_with_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        Self::build(parse_string(s)?, env)
    }

    /// As [`Config::parse`] (or [`Config::from_env`] without a string), with `overrides`
    /// (`("host", "db1")`, ...) taking precedence over the string, the service file and the
    /// environment: what psql's `-h`, `-p`, `-U` and `-d` flags do to its connection string.
    ///
    /// # Errors
    /// As [`Config::parse`]; an unknown parameter name in `overrides` too.
    pub fn parse_with_overrides(s: Option<&str>, overrides: &[(&str, &str)]) -> Result<Config> {
        let mut params = match s {
            Some(s) => parse_string(s)?,
            None => Vec::new(),
        };
        params.extend(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Self::build(params, &|k| std::env::var(k).ok())
    }

    fn build(
        params: Vec<(String, String)>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        for (k, _) in &params {
            if !KNOWN_PARAMS.contains(&k.as_str()) {
                return Err(Error::config(format!(
                    "unknown connection parameter \"{k}\""
                )));
            }
        }
        let mut params = Params(params);
        // The service file fills in what the string left out, before the environment does.
        let service = params
            .take("service")
            .or_else(|| nonempty(env("PGSERVICE")));
        if let Some(name) = service {
            let from_service = service_params(&name, env)?;
            let mut merged: Vec<(String, String)> = from_service
                .into_iter()
                .filter(|(k, _)| params.get(k).is_none())
                .collect();
            merged.append(&mut params.0);
            params = Params(merged);
        }
        let home = nonempty(env("HOME")).map(PathBuf::from);
        let get = |key: &str, var: Option<&str>| -> Option<String> {
            params
                .take(key)
                .or_else(|| var.and_then(|v| nonempty(env(v))))
        };

        if let Some(enc) = params.get("client_encoding")
            && !enc.eq_ignore_ascii_case("utf8")
        {
            return Err(Error::config(
                "client_encoding must be UTF8: pgarrow forces it so that text is valid UTF-8",
            ));
        }

        let hostaddr = match get("hostaddr", Some("PGHOSTADDR")) {
            Some(a) => Some(a.parse::<IpAddr>().map_err(|_| {
                Error::config(format!("invalid hostaddr \"{a}\": not an IP address"))
            })?),
            None => None,
        };
        let host = get("host", Some("PGHOST")).filter(|h| !h.is_empty());
        if host.as_deref().is_some_and(|h| h.contains(',')) {
            return Err(Error::config("multiple hosts are not supported"));
        }
        let host = match (host, hostaddr) {
            (Some(h), _) if h.starts_with('/') => Host::Unix(PathBuf::from(h)),
            (Some(h), _) => Host::Tcp(h),
            (None, Some(a)) => Host::Tcp(a.to_string()),
            (None, None) if Path::new(DEFAULT_SOCKET_DIR).is_dir() => {
                Host::Unix(PathBuf::from(DEFAULT_SOCKET_DIR))
            }
            (None, None) => Host::Tcp("localhost".to_owned()),
        };
        let port = match get("port", Some("PGPORT")) {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| Error::config(format!("invalid port \"{p}\"")))?,
            None => 5432,
        };
        let user = get("user", Some("PGUSER"))
            .or_else(|| nonempty(env("USER")))
            .unwrap_or_else(|| "postgres".to_owned());
        let password = params.take("password").or_else(|| env("PGPASSWORD"));
        let passfile = get("passfile", Some("PGPASSFILE"))
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".pgpass")));
        let dbname = get("dbname", Some("PGDATABASE")).unwrap_or_else(|| user.clone());
        let application_name = get("application_name", Some("PGAPPNAME"))
            .or_else(|| params.take("fallback_application_name"))
            .unwrap_or_else(|| "pgarrow".to_owned());
        let options = get("options", Some("PGOPTIONS"));

        // libpq: zero or negative waits forever; values below 2 s mean 2 s.
        let connect_timeout = match get("connect_timeout", Some("PGCONNECT_TIMEOUT")) {
            Some(t) => {
                let secs: i64 = t
                    .trim()
                    .parse()
                    .map_err(|_| Error::config(format!("invalid connect_timeout \"{t}\"")))?;
                (secs > 0).then(|| Duration::from_secs(secs.max(2) as u64))
            }
            None => None,
        };
        let read_timeout = match get("read_timeout", None) {
            Some(t) => Some(
                parse_duration(&t, Duration::from_secs(1))
                    .map_err(|e| Error::config(format!("invalid read_timeout \"{t}\": {e}")))?,
            )
            .filter(|d| !d.is_zero()),
            None => None,
        };
        let statement_timeout =
            match get("statement_timeout", None) {
                Some(t) => Some(parse_duration(&t, Duration::from_millis(1)).map_err(|e| {
                    Error::config(format!("invalid statement_timeout \"{t}\": {e}"))
                })?),
                None => None,
            };

        let mut keepalives = Keepalives::default();
        if let Some(k) = get("keepalives", None) {
            keepalives.enabled = match k.trim() {
                "1" => true,
                "0" => false,
                _ => return Err(Error::config(format!("invalid keepalives \"{k}\""))),
            };
        }
        let secs = |key: &str| -> Result<Option<u64>> {
            match get(key, None) {
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| Error::config(format!("invalid {key} \"{v}\""))),
                None => Ok(None),
            }
        };
        // libpq: 0 means "the system default"; pgarrow's default then applies.
        if let Some(s) = secs("keepalives_idle")?.filter(|&s| s > 0) {
            keepalives.idle = Duration::from_secs(s);
        }
        if let Some(s) = secs("keepalives_interval")?.filter(|&s| s > 0) {
            keepalives.interval = Duration::from_secs(s);
        }
        if let Some(n) = secs("keepalives_count")?.filter(|&n| n > 0) {
            keepalives.count = u32::try_from(n)
                .map_err(|_| Error::config(format!("invalid keepalives_count \"{n}\"")))?;
        }
        let tcp_user_timeout = secs("tcp_user_timeout")?
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);

        let sslmode_given = get("sslmode", Some("PGSSLMODE"));
        let ssl_root_cert = match get("sslrootcert", Some("PGSSLROOTCERT")) {
            Some(r) if r == "system" => Some(SslRootCert::System),
            Some(r) => Some(SslRootCert::File(PathBuf::from(r))),
            None => home
                .as_ref()
                .map(|h| h.join(".postgresql/root.crt"))
                .filter(|p| p.is_file())
                .map(SslRootCert::File),
        };
        let ssl_mode = match sslmode_given {
            Some(m) => SslMode::parse(&m)?,
            // libpq 16: sslrootcert=system defaults to verify-full.
            None if ssl_root_cert == Some(SslRootCert::System) => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if ssl_root_cert == Some(SslRootCert::System) && ssl_mode != SslMode::VerifyFull {
            return Err(Error::config(format!(
                "weak sslmode \"{ssl_mode}\" may not be used with sslrootcert=system (use \
                 \"verify-full\")"
            )));
        }
        let default_file = |name: &str| {
            home.as_ref()
                .map(|h| h.join(".postgresql").join(name))
                .filter(|p| p.is_file())
        };
        let ssl_cert = get("sslcert", Some("PGSSLCERT"))
            .map(PathBuf::from)
            .or_else(|| default_file("postgresql.crt"));
        let ssl_key = get("sslkey", Some("PGSSLKEY"))
            .map(PathBuf::from)
            .or_else(|| default_file("postgresql.key"));
        let ssl_negotiation = match get("sslnegotiation", Some("PGSSLNEGOTIATION")).as_deref() {
            None | Some("postgres") => SslNegotiation::Postgres,
            Some("direct") => SslNegotiation::Direct,
            Some(other) => {
                return Err(Error::config(format!(
                    "invalid sslnegotiation \"{other}\" (use \"postgres\" or \"direct\")"
                )));
            }
        };
        if ssl_negotiation == SslNegotiation::Direct && !ssl_mode.requires_tls() {
            return Err(Error::config(format!(
                "weak sslmode \"{ssl_mode}\" may not be used with sslnegotiation=direct (use \
                 \"require\", \"verify-ca\", or \"verify-full\")"
            )));
        }
        let channel_binding = match get("channel_binding", Some("PGCHANNELBINDING")).as_deref() {
            None | Some("prefer") => ChannelBinding::Prefer,
            Some("disable") => ChannelBinding::Disable,
            Some("require") => ChannelBinding::Require,
            Some(other) => {
                return Err(Error::config(format!(
                    "invalid channel_binding \"{other}\" (use \"disable\", \"prefer\" or \
                     \"require\")"
                )));
            }
        };
        if channel_binding == ChannelBinding::Require && ssl_mode == SslMode::Disable {
            return Err(Error::config(
                "channel_binding=require needs TLS, but sslmode is \"disable\"",
            ));
        }
        let require_auth = match get("require_auth", Some("PGREQUIREAUTH")) {
            Some(text) => Some(RequireAuth::parse(&text)?),
            None => None,
        };
        // One host: `random` has nothing to choose among (several hosts are refused above).
        match get("load_balance_hosts", Some("PGLOADBALANCEHOSTS")).as_deref() {
            None | Some("disable" | "random") => {}
            Some(other) => {
                return Err(Error::config(format!(
                    "invalid load_balance_hosts \"{other}\" (use \"disable\" or \"random\")"
                )));
            }
        }
        // pgarrow speaks protocol 3.0, which every server since 7.4 speaks.
        let version = |key: &str, var: &str| -> Result<Option<String>> {
            match get(key, Some(var)) {
                None => Ok(None),
                Some(v) if matches!(v.as_str(), "3.0" | "3.2" | "latest") => Ok(Some(v)),
                Some(other) => Err(Error::config(format!(
                    "invalid {key} \"{other}\" (use \"3.0\", \"3.2\" or \"latest\")"
                ))),
            }
        };
        let min_version = version("min_protocol_version", "PGMINPROTOCOLVERSION")?;
        version("max_protocol_version", "PGMAXPROTOCOLVERSION")?;
        if let Some(min) = min_version.filter(|v| v != "3.0") {
            return Err(Error::config(format!(
                "min_protocol_version={min}: pgarrow speaks protocol version 3.0 only"
            )));
        }
        Ok(Config {
            host,
            hostaddr,
            port,
            user,
            password,
            passfile,
            dbname,
            application_name,
            options,
            connect_timeout,
            read_timeout,
            statement_timeout,
            keepalives,
            tcp_user_timeout,
            ssl_mode,
            ssl_root_cert,
            ssl_cert,
            ssl_key,
            ssl_negotiation,
            channel_binding,
            require_auth,
            read_only: false,
            settings: Vec::new(),
            replication: false,
            on_notice: None,
        })
    }

    /// `user@host:port/dbname`, for messages: never includes the password.
    pub fn display_target(&self) -> String {
        match &self.host {
            Host::Tcp(h) if h.contains(':') => {
                format!("{}@[{h}]:{}/{}", self.user, self.port, self.dbname)
            }
            Host::Tcp(h) => format!("{}@{h}:{}/{}", self.user, self.port, self.dbname),
            Host::Unix(dir) => format!(
                "{}@{}/.s.PGSQL.{}/{}",
                self.user,
                dir.display(),
                self.port,
                self.dbname
            ),
        }
    }

    /// The host name a `.pgpass` line must match: the host as given, `localhost` for the
    /// default socket directory (libpq's `passwordFromFile`).
    pub(crate) fn passfile_host(&self) -> String {
        match &self.host {
            Host::Tcp(h) => h.clone(),
            Host::Unix(dir) if dir == Path::new(DEFAULT_SOCKET_DIR) => "localhost".to_owned(),
            Host::Unix(dir) => dir.display().to_string(),
        }
    }
}

pub(crate) fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|v| !v.is_empty())
}

/// Parses a duration as PostgreSQL reads time settings: a non-negative integer with an
/// optional unit (`us`, `ms`, `s`, `min`, `h`, `d`); a bare number counts `unit`s.
///
/// ```
/// use std::time::Duration;
/// use pgarrow_protocol::parse_duration;
/// assert_eq!(parse_duration("1500", Duration::from_millis(1)), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("2min", Duration::from_millis(1)), Ok(Duration::from_secs(120)));
/// assert!(parse_duration("soon", Duration::from_secs(1)).is_err());
/// ```
///
/// # Errors
/// Anything else ([`InvalidDuration`] says what).
pub fn parse_duration(s: &str, unit: Duration) -> std::result::Result<Duration, InvalidDuration> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, suffix) = s.split_at(digits);
    let n: u64 = n.parse().map_err(|_| InvalidDuration::NotANumber)?;
    let unit = match suffix.trim() {
        "" => unit,
        "us" => Duration::from_micros(1),
        "ms" => Duration::from_millis(1),
        "s" => Duration::from_secs(1),
        "min" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" => Duration::from_secs(86400),
        other => return Err(InvalidDuration::UnknownUnit(other.to_owned())),
    };
    u32::try_from(n)
        .ok()
        .and_then(|n| unit.checked_mul(n))
        .ok_or(InvalidDuration::TooLarge)
}

/// Why [`parse_duration`] refused its text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidDuration {
    /// No non-negative whole number first.
    NotANumber,
    /// A unit other than `us`, `ms`, `s`, `min`, `h` or `d`.
    UnknownUnit(String),
    /// More than `u32::MAX` units, or past what a `Duration` holds.
    TooLarge,
}

impl std::fmt::Display for InvalidDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvalidDuration::NotANumber => {
                f.write_str("expected a non-negative whole number, optionally with a unit")
            }
            InvalidDuration::UnknownUnit(unit) => {
                write!(f, "unknown unit \"{unit}\" (use us, ms, s, min, h or d)")
            }
            InvalidDuration::TooLarge => f.write_str("too large"),
        }
    }
}

impl std::error::Error for InvalidDuration {}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn recent_libpq_parameters() {
        let env = |_: &str| None;
        let c =
            Config::parse_with_env("host=h user=u require_auth=scram-sha-256,md5", &env).unwrap();
        let r = c.require_auth.unwrap();
        assert!(r.allows("md5") && r.allows("scram-sha-256") && !r.allows("password"));
        assert!(!r.allows("none"));
        let c = Config::parse_with_env("host=h user=u require_auth=!password,!none", &env).unwrap();
        let r = c.require_auth.unwrap();
        assert!(r.allows("scram-sha-256") && !r.allows("password") && !r.allows("none"));
        for (bad, why) in [
            ("require_auth=md5,!password", "cannot be mixed"),
            ("require_auth=kerberos", "unknown method \"kerberos\""),
            (
                "load_balance_hosts=sometimes",
                "use \"disable\" or \"random\"",
            ),
            ("min_protocol_version=3.2", "3.0 only"),
            ("max_protocol_version=4", "invalid max_protocol_version"),
        ] {
            let e = Config::parse_with_env(&format!("host=h user=u {bad}"), &env).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        for ok in [
            "load_balance_hosts=random",
            "min_protocol_version=3.0 max_protocol_version=latest",
            "sslnegotiation=postgres",
        ] {
            Config::parse_with_env(&format!("host=h user=u {ok}"), &env)
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let from_env = |k: &str| (k == "PGREQUIREAUTH").then(|| "none".to_owned());
        let c = Config::parse_with_env("host=h user=u", &from_env).unwrap();
        assert!(c.require_auth.unwrap().allows("none"));
    }

    #[test]
    fn url_with_everything() {
        let c = Config::parse_with_env(
            "postgresql://al%40ice:p%3Ass@db.example.com:6543/my%20db?application_name=x&connect_timeout=5&sslmode=disable",
            &no_env,
        )
        .unwrap();
        assert_eq!(c.user, "al@ice");
        assert_eq!(c.password.as_deref(), Some("p:ss"));
        assert_eq!(c.host, Host::Tcp("db.example.com".into()));
        assert_eq!(c.port, 6543);
        assert_eq!(c.dbname, "my db");
        assert_eq!(c.application_name, "x");
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(c.ssl_mode, SslMode::Disable);
        assert!(!format!("{c:?}").contains("p:ss"));
    }

    #[test]
    fn url_unix_socket_and_ipv6() {
        let c = Config::parse_with_env("postgres://u@%2Ftmp%2Fsock:5433/d", &no_env).unwrap();
        assert_eq!(c.host, Host::Unix("/tmp/sock".into()));
        assert_eq!(c.port, 5433);
        let c = Config::parse_with_env("postgresql:///d?host=/run/pg&port=7", &no_env).unwrap();
        assert_eq!(c.host, Host::Unix("/run/pg".into()));
        assert_eq!(c.port, 7);
        let c = Config::parse_with_env("postgresql://[::1]:5000/d", &no_env).unwrap();
        assert_eq!(c.host, Host::Tcp("::1".into()));
        assert_eq!(c.display_target(), format!("{}@[::1]:5000/d", c.user));
    }

    #[test]
    fn key_values_and_env_defaults() {
        let env = |k: &str| match k {
            "PGPORT" => Some("7777".to_owned()),
            "PGUSER" => Some("envuser".to_owned()),
            "PGPASSWORD" => Some("envpw".to_owned()),
            _ => None,
        };
        let c =
            Config::parse_with_env("host=localhost dbname = 'my \\'db' user=bob", &env).unwrap();
        assert_eq!(c.dbname, "my 'db");
        assert_eq!(c.user, "bob");
        assert_eq!(c.port, 7777);
        assert_eq!(c.password.as_deref(), Some("envpw"));
        assert!(Config::parse_with_env("bogus=1", &no_env).is_err());
        assert!(Config::parse_with_env("host", &no_env).is_err());
        assert!(Config::parse_with_env("port=99999", &no_env).is_err());
        assert!(Config::parse_with_env("client_encoding=latin1", &no_env).is_err());
    }

    #[test]
    fn tls_and_auth_settings() {
        let c = Config::parse_with_env("host=h", &no_env).unwrap();
        assert_eq!(c.ssl_mode, SslMode::Prefer);
        assert_eq!(c.channel_binding, ChannelBinding::Prefer);
        assert_eq!(c.ssl_negotiation, SslNegotiation::Postgres);
        assert_eq!(c.ssl_root_cert, None);
        assert_eq!(c.keepalives, Keepalives::default());
        assert!(c.keepalives.enabled);
        assert_eq!(c.application_name, "pgarrow");
        assert_eq!(c.passfile, None);
        let c = Config::parse_with_env(
            "host=db.example hostaddr=10.1.2.3 sslmode=verify-full sslrootcert=/ca.pem \
             sslcert=/c.crt sslkey=/c.key sslnegotiation=direct channel_binding=require \
             keepalives_idle=30 keepalives_interval=5 keepalives_count=3 tcp_user_timeout=9000 \
             read_timeout=15 statement_timeout=2min fallback_application_name=fb",
            &no_env,
        )
        .unwrap();
        assert_eq!(c.host, Host::Tcp("db.example".into()));
        assert_eq!(c.hostaddr, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(c.ssl_root_cert, Some(SslRootCert::File("/ca.pem".into())));
        assert_eq!(c.ssl_cert, Some(PathBuf::from("/c.crt")));
        assert_eq!(c.ssl_key, Some(PathBuf::from("/c.key")));
        assert_eq!(c.ssl_negotiation, SslNegotiation::Direct);
        assert_eq!(c.channel_binding, ChannelBinding::Require);
        assert_eq!(
            c.keepalives,
            Keepalives {
                enabled: true,
                idle: Duration::from_secs(30),
                interval: Duration::from_secs(5),
                count: 3
            }
        );
        assert_eq!(c.tcp_user_timeout, Some(Duration::from_millis(9000)));
        assert_eq!(c.read_timeout, Some(Duration::from_secs(15)));
        assert_eq!(c.statement_timeout, Some(Duration::from_secs(120)));
        assert_eq!(c.application_name, "fb");
        // application_name and PGAPPNAME outrank fallback_application_name.
        let env = |k: &str| (k == "PGAPPNAME").then(|| "from-env".to_owned());
        let c = Config::parse_with_env("fallback_application_name=fb", &env).unwrap();
        assert_eq!(c.application_name, "from-env");
        // hostaddr alone is the host.
        let c = Config::parse_with_env("hostaddr=::1", &no_env).unwrap();
        assert_eq!(c.host, Host::Tcp("::1".into()));
        // sslrootcert=system means verify-full, and refuses weaker modes.
        let c = Config::parse_with_env("host=h sslrootcert=system", &no_env).unwrap();
        assert_eq!(c.ssl_mode, SslMode::VerifyFull);
        assert_eq!(c.ssl_root_cert, Some(SslRootCert::System));
        for bad in [
            "sslrootcert=system sslmode=require",
            "sslnegotiation=direct",
            "sslnegotiation=direct sslmode=prefer",
            "sslnegotiation=sideways",
            "channel_binding=maybe",
            "channel_binding=require sslmode=disable",
            "keepalives=2",
            "keepalives_count=x",
            "hostaddr=not-an-ip",
            "read_timeout=soon",
            "statement_timeout=5 fortnights",
            "sslmode=verify",
        ] {
            assert!(Config::parse_with_env(bad, &no_env).is_err(), "{bad}");
        }
        // The environment supplies TLS settings too.
        let env = |k: &str| {
            Some(
                match k {
                    "PGSSLMODE" => "verify-ca",
                    "PGSSLROOTCERT" => "/env-ca.pem",
                    "PGCHANNELBINDING" => "disable",
                    "PGSSLNEGOTIATION" => "direct",
                    "PGPASSFILE" => "/env/pgpass",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let c = Config::parse_with_env("host=h", &env).unwrap();
        assert_eq!(c.ssl_mode, SslMode::VerifyCa);
        assert_eq!(
            c.ssl_root_cert,
            Some(SslRootCert::File("/env-ca.pem".into()))
        );
        assert_eq!(c.channel_binding, ChannelBinding::Disable);
        assert_eq!(c.ssl_negotiation, SslNegotiation::Direct);
        assert_eq!(c.passfile, Some(PathBuf::from("/env/pgpass")));
    }

    #[test]
    fn home_defaults() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path().to_string_lossy().into_owned();
        let env = move |k: &str| (k == "HOME").then(|| h.clone());
        let c = Config::parse_with_env("host=h sslmode=require", &env).unwrap();
        assert_eq!(c.passfile, Some(home.path().join(".pgpass")));
        // Absent default files are not used.
        assert_eq!(c.ssl_root_cert, None);
        assert_eq!(c.ssl_cert, None);
        std::fs::create_dir(home.path().join(".postgresql")).unwrap();
        for f in ["root.crt", "postgresql.crt", "postgresql.key"] {
            std::fs::write(home.path().join(".postgresql").join(f), "").unwrap();
        }
        let c = Config::parse_with_env("host=h sslmode=require", &env).unwrap();
        let dir = home.path().join(".postgresql");
        assert_eq!(
            c.ssl_root_cert,
            Some(SslRootCert::File(dir.join("root.crt")))
        );
        assert_eq!(c.ssl_cert, Some(dir.join("postgresql.crt")));
        assert_eq!(c.ssl_key, Some(dir.join("postgresql.key")));
    }

    #[test]
    fn durations() {
        let ms = Duration::from_millis(1);
        assert_eq!(parse_duration("0", ms), Ok(Duration::ZERO));
        assert_eq!(parse_duration("250", ms), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 30s ", ms), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5 min", ms), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h", ms), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d", ms), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("10us", ms), Ok(Duration::from_micros(10)));
        for bad in ["", "-1", "1.5s", "s", "3 weeks", "99999999999999"] {
            assert!(parse_duration(bad, ms).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("x", ms), Err(InvalidDuration::NotANumber));
        assert_eq!(
            parse_duration("3 weeks", ms),
            Err(InvalidDuration::UnknownUnit("weeks".into()))
        );
        assert_eq!(
            parse_duration("99999999999", ms),
            Err(InvalidDuration::TooLarge)
        );
        assert_eq!(
            InvalidDuration::UnknownUnit("weeks".into()).to_string(),
            "unknown unit \"weeks\" (use us, ms, s, min, h or d)"
        );
    }

    #[test]
    fn errors_never_echo_the_password() {
        let err = Config::parse_with_env("host=h password=hunter2 secret", &no_env).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        let err =
            Config::parse_with_env("postgresql://u:hunter2@h:notaport/d", &no_env).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let c = Config::parse_with_env("postgresql://u:hunter2@h/d", &no_env).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.display_target().contains("hunter2"));
    }
}
