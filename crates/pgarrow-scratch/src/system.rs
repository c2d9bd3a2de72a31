//! What a scratch cluster needs from the system: the server binaries, an unprivileged account
//! to run the server as when we are root, a free port, and small text helpers.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::{Error, PG_BIN_ENV, Result, SERVER_BINARIES, SUPERUSER};

/// The unprivileged account the server runs as when we are root.
#[derive(Debug, Clone)]
pub(crate) struct ServerUser {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Finds the directory holding `initdb`, `pg_ctl` and `postgres`:
///
/// 1. `$PG_BIN` if set and non-empty (exclusively: if it lacks the binaries,
///    the result is `None` rather than some other installation);
/// 2. else the first directory of `$PATH` holding all three (when they are
///    symlinks into a directory that also holds all three, such as
///    `/usr/local/bin/pg_ctl -> /usr/lib/postgresql/15/bin/pg_ctl`, that
///    directory, so the matching `psql` is found too);
/// 3. else the highest-version `/usr/lib/postgresql/*/bin`.
pub fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(PG_BIN_ENV).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        return has_server_binaries(&dir).then_some(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.as_os_str().is_empty() || !has_server_binaries(&dir) {
                continue;
            }
            let resolved = fs::canonicalize(dir.join("pg_ctl"))
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .filter(|p| has_server_binaries(p));
            return Some(resolved.unwrap_or(dir));
        }
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

pub(crate) fn has_server_binaries(dir: &Path) -> bool {
    SERVER_BINARIES.iter().all(|name| dir.join(name).is_file())
}

pub(crate) fn missing_binaries_message() -> String {
    match std::env::var_os(PG_BIN_ENV).filter(|v| !v.is_empty()) {
        Some(dir) => format!(
            "no PostgreSQL server binaries found: {PG_BIN_ENV}={} has no initdb, pg_ctl and postgres",
            Path::new(&dir).display()
        ),
        None => format!(
            "no PostgreSQL server binaries found (initdb, pg_ctl and postgres: none in \
             {PG_BIN_ENV}, on PATH or under /usr/lib/postgresql/*/bin). {}, then run this again; \
             or set {PG_BIN_ENV} to the directory that holds them",
            install_hint(Platform::detect())
        ),
    }
}

/// Which package manager's words to use in [`install_hint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Platform {
    Debian,
    Fedora,
    Arch,
    Alpine,
    MacOs,
    Other,
}

impl Platform {
    fn detect() -> Platform {
        let exists = |p: &str| Path::new(p).exists();
        if cfg!(target_os = "macos") {
            Platform::MacOs
        } else if exists("/etc/debian_version") {
            Platform::Debian
        } else if exists("/etc/fedora-release") || exists("/etc/redhat-release") {
            Platform::Fedora
        } else if exists("/etc/arch-release") {
            Platform::Arch
        } else if exists("/etc/alpine-release") {
            Platform::Alpine
        } else {
            Platform::Other
        }
    }
}

/// The one line that installs the server binaries on `platform`.
pub(crate) fn install_hint(platform: Platform) -> &'static str {
    match platform {
        Platform::Debian => "Install them with `sudo apt-get install postgresql`",
        Platform::Fedora => "Install them with `sudo dnf install postgresql-server`",
        Platform::Arch => "Install them with `sudo pacman -S postgresql`",
        Platform::Alpine => "Install them with `sudo apk add postgresql`",
        Platform::MacOs => "Install them with `brew install postgresql@17`",
        Platform::Other => {
            "Install your system's PostgreSQL server package (`apt-get install postgresql`, \
             `dnf install postgresql-server`, `brew install postgresql@17`, ...)"
        }
    }
}

/// Whether the effective user id is 0.
pub(crate) fn is_root() -> bool {
    if let Ok(status) = fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|l| l.starts_with("Uid:"))
        && let Some(euid) = line.split_whitespace().nth(2)
    {
        return euid == "0";
    }
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub(crate) fn lookup_user(name: &str) -> Option<ServerUser> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id")
            .arg(flag)
            .arg(name)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some(ServerUser {
        name: name.to_owned(),
        uid: id("-u")?,
        gid: id("-g")?,
    })
}

/// The unprivileged user to run the server as when we are root: `postgres`,
/// else `pgarrow` (created if needed).
pub(crate) fn server_user() -> Result<ServerUser> {
    if let Some(user) = lookup_user("postgres") {
        return Ok(user);
    }
    if let Some(user) = lookup_user("pgarrow") {
        return Ok(user);
    }
    let args = [
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        "pgarrow",
    ];
    let output = Command::new("useradd")
        .args(args)
        .output()
        .or_else(|_| Command::new("/usr/sbin/useradd").args(args).output());
    // Another process may have created it meanwhile: look it up either way.
    lookup_user("pgarrow").ok_or_else(|| {
        let detail = match output {
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim_end().to_owned(),
            Err(e) => e.to_string(),
        };
        Error::command(format!(
            "running as root, PostgreSQL needs an unprivileged user, but there is no user \
             `postgres` and `useradd ... pgarrow` failed: {detail}"
        ))
    })
}

pub(crate) fn chown(path: &Path, user: &ServerUser) -> Result<()> {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).map_err(|e| {
        Error::io(
            format!("cannot chown {} to user {}", path.display(), user.name),
            e,
        )
    })
}

/// The `pg_hba.conf` text: trust over the Unix socket and for the superuser
/// over TCP, then `extra` lines, then SCRAM for everyone else over TCP.
pub(crate) fn hba_conf(extra: &[String]) -> String {
    let mut text = format!(
        "local all all trust\n\
         local replication all trust\n\
         host all {SUPERUSER} 127.0.0.1/32 trust\n"
    );
    for line in extra {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text.push_str("host all all 127.0.0.1/32 scram-sha-256\n");
    text
}

pub(crate) fn write_file(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::io("cannot bind a TCP port on 127.0.0.1", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the bound TCP port", e))?
        .port();
    Ok(port)
}

/// The major version from `initdb --version` output such as
/// `initdb (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`.
pub(crate) fn parse_major_version(text: &str) -> Option<u32> {
    let after = text.split_once(')').map_or(text, |(_, rest)| rest);
    let version = after.split_whitespace().next()?;
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A command's stderr and stdout, trimmed, one after the other.
pub(crate) fn output_text(output: &Output) -> String {
    [&output.stderr, &output.stdout]
        .into_iter()
        .map(|bytes| String::from_utf8_lossy(bytes).trim().to_owned())
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub(crate) fn database_name(prefix: &str, counter: u64, pid: u32) -> String {
    let suffix = format!("_{counter}_{pid}");
    let mut base: String = prefix
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if base.is_empty() {
        base.push_str("db");
    }
    base.truncate(63 - suffix.len());
    base + &suffix
}

pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
