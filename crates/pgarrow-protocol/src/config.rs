//! Connection configuration: URLs, libpq `key=value` strings and the `PG*` environment.
//!
//! As in libpq, the environment supplies defaults for what the connection string leaves out:
//! `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGAPPNAME`, `PGOPTIONS`,
//! `PGCONNECT_TIMEOUT`, `PGSSLMODE`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

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

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Plain first, TLS if the server insists.
    Allow,
    /// TLS if the server offers it (libpq's default).
    Prefer,
    /// TLS or fail, no certificate checks.
    Require,
    /// TLS with the server certificate checked against a CA.
    VerifyCa,
    /// TLS with the certificate checked and the host name matched.
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
}

/// Everything needed to open a connection.
///
/// `Debug` and [`Config::display_target`] never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Server host or Unix socket directory.
    pub host: Host,
    /// Server port (also names the Unix socket file).
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password, if any.
    pub password: Option<String>,
    /// Database name.
    pub dbname: String,
    /// `application_name` reported to the server.
    pub application_name: String,
    /// Command-line options sent to the server at startup (`-c name=value ...`).
    pub options: Option<String>,
    /// How long to wait for the connection and authentication.
    pub connect_timeout: Option<Duration>,
    /// TLS mode. TLS itself is not implemented yet: modes that require it are refused when
    /// connecting, the others connect without TLS.
    pub ssl_mode: SslMode,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("application_name", &self.application_name)
            .field("options", &self.options)
            .field("connect_timeout", &self.connect_timeout)
            .field("ssl_mode", &self.ssl_mode)
            .finish()
    }
}

const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

impl Config {
    /// The configuration from the `PG*` environment variables alone, with libpq's defaults.
    pub fn from_env() -> Result<Config> {
        Self::build(Vec::new(), &|k| std::env::var(k).ok())
    }

    /// Parses a `postgresql://` URL or a libpq `key=value` string, with the `PG*` environment
    /// supplying whatever it leaves out.
    ///
    /// # Errors
    /// Malformed strings, unknown parameters and invalid values, naming the offending part
    /// (never the password).
    pub fn parse(s: &str) -> Result<Config> {
        Self::parse_with_env(s, &|k| std::env::var(k).ok())
    }

    /// As [`Config::parse`], with the environment given by `env` (for tests).
    pub fn parse_with_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let s = s.trim();
        let params = if s.starts_with("postgresql://") || s.starts_with("postgres://") {
            parse_url(s)?
        } else {
            parse_key_values(s)?
        };
        Self::build(params, env)
    }

    fn build(
        params: Vec<(String, String)>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let mut host = None;
        let mut port = None;
        let mut user = None;
        let mut password = None;
        let mut dbname = None;
        let mut application_name = None;
        let mut options = None;
        let mut connect_timeout = None;
        let mut sslmode = None;
        for (k, v) in params {
            match k.as_str() {
                "host" | "hostaddr" => host = Some(v),
                "port" => port = Some(v),
                "user" => user = Some(v),
                "password" => password = Some(v),
                "dbname" => dbname = Some(v),
                "application_name" | "fallback_application_name" => application_name = Some(v),
                "options" => options = Some(v),
                "connect_timeout" => connect_timeout = Some(v),
                "sslmode" => sslmode = Some(v),
                "client_encoding" if v.eq_ignore_ascii_case("utf8") => {}
                "client_encoding" => {
                    return Err(Error::config(
                        "client_encoding must be UTF8: pgarrow forces it so that text is valid UTF-8",
                    ));
                }
                other => {
                    return Err(Error::config(format!(
                        "unknown connection parameter \"{other}\""
                    )));
                }
            }
        }
        let host = host.or_else(|| env("PGHOST")).filter(|h| !h.is_empty());
        if host.as_deref().is_some_and(|h| h.contains(',')) {
            return Err(Error::config("multiple hosts are not supported"));
        }
        let host = match host {
            Some(h) if h.starts_with('/') => Host::Unix(PathBuf::from(h)),
            Some(h) => Host::Tcp(h),
            None if std::path::Path::new(DEFAULT_SOCKET_DIR).is_dir() => {
                Host::Unix(PathBuf::from(DEFAULT_SOCKET_DIR))
            }
            None => Host::Tcp("localhost".to_owned()),
        };
        let port = match port.or_else(|| env("PGPORT")).filter(|p| !p.is_empty()) {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| Error::config(format!("invalid port \"{p}\"")))?,
            None => 5432,
        };
        let user = user
            .or_else(|| env("PGUSER"))
            .or_else(|| env("USER"))
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres".to_owned());
        let password = password.or_else(|| env("PGPASSWORD"));
        let dbname = dbname
            .or_else(|| env("PGDATABASE"))
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| user.clone());
        let application_name = application_name
            .or_else(|| env("PGAPPNAME"))
            .unwrap_or_else(|| "pgarrow".to_owned());
        let options = options
            .or_else(|| env("PGOPTIONS"))
            .filter(|o| !o.is_empty());
        let connect_timeout = match connect_timeout
            .or_else(|| env("PGCONNECT_TIMEOUT"))
            .filter(|t| !t.is_empty())
        {
            Some(t) => {
                let secs: i64 = t
                    .parse()
                    .map_err(|_| Error::config(format!("invalid connect_timeout \"{t}\"")))?;
                // libpq: zero or negative waits forever; values below 2 s mean 2 s.
                (secs > 0).then(|| Duration::from_secs(secs.max(2) as u64))
            }
            None => None,
        };
        let ssl_mode = match sslmode
            .or_else(|| env("PGSSLMODE"))
            .filter(|m| !m.is_empty())
        {
            Some(m) => SslMode::parse(&m)?,
            None => SslMode::Prefer,
        };
        Ok(Config {
            host,
            port,
            user,
            password,
            dbname,
            application_name,
            options,
            connect_timeout,
            ssl_mode,
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
}

/// Removes the password from a connection string, for showing it to people.
///
/// URLs lose the `:password` of their user info and any `password=` query parameter;
/// key=value strings lose their `password=` pair's value.
pub fn redact(s: &str) -> String {
    let t = s.trim();
    if let Some(rest) = t
        .strip_prefix("postgresql://")
        .map(|r| ("postgresql://", r))
        .or_else(|| t.strip_prefix("postgres://").map(|r| ("postgres://", r)))
    {
        let (scheme, rest) = rest;
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let authority = match authority.rfind('@') {
            Some(at) => {
                let (userinfo, hosts) = authority.split_at(at);
                match userinfo.split_once(':') {
                    Some((u, _)) => format!("{u}:***{hosts}"),
                    None => authority.to_owned(),
                }
            }
            None => authority.to_owned(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let q: Vec<String> = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some(("password", _)) => "password=***".to_owned(),
                        _ => kv.to_owned(),
                    })
                    .collect();
                format!("{path}?{}", q.join("&"))
            }
            None => tail.to_owned(),
        };
        return format!("{scheme}{authority}{tail}");
    }
    match parse_key_values(t) {
        Ok(pairs) => pairs
            .into_iter()
            .map(|(k, v)| {
                if k == "password" {
                    "password=***".to_owned()
                } else {
                    format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => "<unparseable connection string>".to_owned(),
    }
}

fn percent_decode(s: &str, what: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    Error::config(format!("invalid percent-encoding in the URL's {what}"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::config(format!("the URL's {what} is not valid UTF-8 once decoded")))
}

/// `postgresql://[user[:password]@][host][:port][/dbname][?param=value&...]`
fn parse_url(s: &str) -> Result<Vec<(String, String)>> {
    let rest = s
        .strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
        .unwrap_or(s);
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    let mut params = Vec::new();
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                params.push(("user".to_owned(), percent_decode(user, "user")?));
            }
            if let Some(p) = password {
                params.push(("password".to_owned(), percent_decode(p, "password")?));
            }
            hostport
        }
        None => authority,
    };
    if !hostport.is_empty() {
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| Error::config("unterminated [ in the URL's host"))?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (percent_decode(h, "host")?, Some(p)),
                None => (percent_decode(hostport, "host")?, None),
            }
        };
        if !host.is_empty() {
            params.push(("host".to_owned(), host));
        }
        if let Some(port) = port.filter(|p| !p.is_empty()) {
            params.push(("port".to_owned(), port.to_owned()));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        params.push(("dbname".to_owned(), percent_decode(db, "database name")?));
    }
    if let Some(query) = query {
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| Error::config(format!("URL parameter \"{kv}\" has no value")))?;
            params.push((
                percent_decode(k, "parameters")?,
                percent_decode(v, "parameters")?,
            ));
        }
    }
    Ok(params)
}

/// libpq's `key = value ...`, values optionally single-quoted with `\'` and `\\` escapes.
fn parse_key_values(s: &str) -> Result<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(Error::config(format!(
                "missing \"=\" after \"{key}\" in the connection string"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(Error::config("unterminated quoted value")),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(Error::config("unterminated quoted value")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        params.push((key, value));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
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
    fn redaction() {
        assert_eq!(
            redact("postgresql://u:secret@h:5/db?password=x&sslmode=require"),
            "postgresql://u:***@h:5/db?password=***&sslmode=require"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        let r = redact("host=h password='se cret' user=u");
        assert!(!r.contains("se cret") && r.contains("password=***"), "{r}");
    }
}
