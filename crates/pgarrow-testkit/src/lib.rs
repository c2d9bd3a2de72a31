//! Test support for pgarrow: ephemeral PostgreSQL clusters and binary COPY
//! byte builders.
//!
//! # Clusters
//!
//! [`Cluster::start`] runs `initdb` and `pg_ctl start` from the system's
//! PostgreSQL server binaries (found by [`find_bin_dir`]: `$PG_BIN`, then
//! `$PATH`, then the newest `/usr/lib/postgresql/*/bin`) in a fresh temporary
//! directory under `/tmp`, on a free TCP port of `127.0.0.1` and on a Unix
//! socket. Tuning favours speed over durability (`fsync = off`, ...).
//!
//! * The superuser `postgres` connects without a password (trust), over TCP
//!   ([`Cluster::url`]) and over the Unix socket ([`Cluster::socket_url`]).
//! * Three more roles exist for authentication tests over TCP:
//!   [`SCRAM_USER`] (SCRAM-SHA-256), [`MD5_USER`] (md5) and [`PLAIN_USER`]
//!   (cleartext `password` method); see [`Cluster::url_for`].
//! * When the process runs as root (PostgreSQL refuses to), the server runs
//!   as the `postgres` system user, or as a `pgarrow` system user created on
//!   demand with `useradd`.
//! * A cluster never outlives its process: dropping a [`Cluster`] stops the
//!   server and removes its directory, and a small watchdog process does the
//!   same when the process ends without dropping it (statics are never
//!   dropped; the process may be killed).
//!
//! [`Cluster::shared`] gives one cluster per process for tests, or `None`
//! (with a loud `SKIPPED` line on stderr) when no PostgreSQL binaries exist,
//! unless `PGARROW_REQUIRE_PG=1` is set, which turns that into a panic:
//!
//! ```no_run
//! let Some(pg) = pgarrow_testkit::Cluster::shared() else { return };
//! let db = pg.create_database("my_test").unwrap();
//! pg.psql(&db, "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2);").unwrap();
//! assert_eq!(pg.psql(&db, "SELECT sum(a) FROM t").unwrap().trim(), "3");
//! let _url = pg.url(&db); // postgresql://postgres@127.0.0.1:PORT/DB
//! ```
//!
//! Everything here is synchronous (`std::process::Command`).
//!
//! # COPY bytes
//!
//! [`copy::CopyBuilder`] writes binary COPY streams byte by byte for decoder
//! unit tests, and [`Cluster::copy_binary`] gets real ones from the server.
#![warn(missing_docs)]

pub mod copy;
pub mod copygen;
pub mod fixtures;
pub mod tls;

pub use copy::CopyBuilder;

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Login role whose password is stored as a SCRAM-SHA-256 verifier and that
/// must authenticate with SCRAM over TCP.
pub const SCRAM_USER: &str = "pgarrow_scram";
/// Password of [`SCRAM_USER`] (contains characters that need percent-encoding
/// in URLs).
pub const SCRAM_PASSWORD: &str = "scram secret:@/";
/// Login role whose password is stored as an md5 hash and that must
/// authenticate with the `md5` method over TCP.
pub const MD5_USER: &str = "pgarrow_md5";
/// Password of [`MD5_USER`].
pub const MD5_PASSWORD: &str = "md5-secret";
/// Login role that must authenticate with the cleartext `password` method over
/// TCP.
pub const PLAIN_USER: &str = "pgarrow_plain";
/// Password of [`PLAIN_USER`].
pub const PLAIN_PASSWORD: &str = "plain-secret";

/// The superuser every cluster is initialised with (trust authentication).
pub const SUPERUSER: &str = "postgres";

/// Environment variable naming the directory that holds `initdb`, `pg_ctl`
/// and `postgres`.
pub const PG_BIN_ENV: &str = "PG_BIN";
/// Environment variable that, when set to `1`, makes [`Cluster::shared`]
/// panic instead of skipping when no PostgreSQL binaries are found.
pub const REQUIRE_PG_ENV: &str = "PGARROW_REQUIRE_PG";

const SERVER_BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
const START_ATTEMPTS: usize = 5;
const LOG_TAIL_LINES: usize = 40;

/// What went wrong, as a message that names the failed step (and, when the
/// server failed to start, ends with the tail of the server log).
#[derive(Debug)]
pub struct Error {
    message: String,
    source: Option<io::Error>,
}

impl Error {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    fn io(message: impl Into<String>, source: io::Error) -> Self {
        Self {
            message: message.into(),
            source: Some(source),
        }
    }

    /// The message, without the underlying I/O error (if any).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// The unprivileged account the server runs as when we are root.
#[derive(Debug, Clone)]
struct ServerUser {
    name: String,
    uid: u32,
    gid: u32,
}

/// An ephemeral PostgreSQL cluster (a running server in a temporary
/// directory). Dropping it stops the server and removes the directory.
#[derive(Debug)]
pub struct Cluster {
    bin_dir: PathBuf,
    root: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    psql_path: PathBuf,
    port: u16,
    server_version_num: u32,
    user: Option<ServerUser>,
    tempdir: Option<tempfile::TempDir>,
    watchdog: Option<Child>,
}

static SHARED: OnceLock<std::result::Result<Option<Cluster>, String>> = OnceLock::new();
static DB_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Cluster {
    /// Finds the server binaries with [`find_bin_dir`], then initialises and
    /// starts a new cluster. Each call makes a new cluster.
    pub fn start() -> Result<Cluster> {
        let bin_dir = find_bin_dir().ok_or_else(|| Error::new(missing_binaries_message()))?;
        Self::start_in(&bin_dir)
    }

    /// Like [`Cluster::start`] with the server binaries of `bin_dir`.
    pub fn start_in(bin_dir: &Path) -> Result<Cluster> {
        for name in SERVER_BINARIES {
            if !bin_dir.join(name).is_file() {
                return Err(Error::new(format!("{} has no {name}", bin_dir.display())));
            }
        }
        let user = if is_root() {
            Some(server_user()?)
        } else {
            None
        };
        let tempdir = tempfile::Builder::new()
            .prefix("pgat")
            .tempdir_in("/tmp")
            .map_err(|e| Error::io("cannot create a temporary directory in /tmp", e))?;
        let root = tempdir.path().to_path_buf();
        if let Some(u) = &user {
            chown(&root, u)?;
        }
        let psql_path = match bin_dir.join("psql") {
            p if p.is_file() => p,
            _ => PathBuf::from("psql"),
        };
        let mut cluster = Cluster {
            bin_dir: bin_dir.to_path_buf(),
            data_dir: root.join("data"),
            socket_dir: root.clone(),
            log_path: root.join("server.log"),
            root,
            psql_path,
            port: 0,
            server_version_num: 0,
            user,
            tempdir: Some(tempdir),
            watchdog: None,
        };
        // From here on, dropping `cluster` (also on error) cleans up.
        cluster.watchdog = Some(cluster.spawn_watchdog()?);
        cluster.initdb()?;
        cluster.start_server()?;
        cluster.create_roles()?;
        let version = cluster.psql("postgres", "SHOW server_version_num")?;
        cluster.server_version_num = version.trim().parse().map_err(|_| {
            Error::new(format!(
                "unexpected server_version_num {:?}",
                version.trim()
            ))
        })?;
        Ok(cluster)
    }

    /// One cluster per process, started on first use and shared by all
    /// threads (it is never dropped; its watchdog removes it when the process
    /// ends).
    ///
    /// Returns `None`, after printing a `SKIPPED: ...` line to stderr, when no
    /// PostgreSQL server binaries are found.
    ///
    /// # Panics
    ///
    /// When the binaries are missing and the environment variable
    /// `PGARROW_REQUIRE_PG` is `1`, and whenever starting the cluster fails
    /// (on every call, not only the first).
    pub fn shared() -> Option<&'static Cluster> {
        let state = SHARED.get_or_init(|| match find_bin_dir() {
            None => Ok(None),
            Some(dir) => Cluster::start_in(&dir).map(Some).map_err(|e| e.to_string()),
        });
        match state {
            Ok(Some(cluster)) => Some(cluster),
            Ok(None) => {
                let message = missing_binaries_message();
                if std::env::var_os(REQUIRE_PG_ENV).is_some_and(|v| v == "1") {
                    panic!("{REQUIRE_PG_ENV}=1 but {message}");
                }
                eprintln!("SKIPPED: {message}");
                None
            }
            Err(message) => panic!("cannot start the shared PostgreSQL cluster: {message}"),
        }
    }

    /// The directory holding the server binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The directory holding the Unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The `psql` used by [`Cluster::psql`]: the one in [`Cluster::bin_dir`]
    /// if any, else `psql` from `$PATH`.
    pub fn psql_path(&self) -> &Path {
        &self.psql_path
    }

    /// The TCP port on `127.0.0.1`; the Unix socket uses the same number.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's `server_version_num`, e.g. `150018`.
    pub fn server_version_num(&self) -> u32 {
        self.server_version_num
    }

    /// URL over TCP for the superuser `postgres` (no password needed):
    /// `postgresql://postgres@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}@127.0.0.1:{}/{}",
            self.port,
            percent_encode(db)
        )
    }

    /// URL over TCP for `user` with `password` (both percent-encoded):
    /// `postgresql://USER:PASSWORD@127.0.0.1:PORT/DB`.
    pub fn url_for(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgresql://{}:{}@127.0.0.1:{}/{}",
            percent_encode(user),
            percent_encode(password),
            self.port,
            percent_encode(db)
        )
    }

    /// URL over the Unix socket for the superuser `postgres`:
    /// `postgresql://postgres@/DB?host=<percent-encoded socket dir>&port=PORT`.
    pub fn socket_url(&self, db: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}@/{}?host={}&port={}",
            percent_encode(db),
            percent_encode(&self.socket_dir.to_string_lossy()),
            self.port
        )
    }

    /// Creates a new, empty database and returns its name: `prefix`
    /// lower-cased with everything outside `[a-z0-9_]` replaced by `_`
    /// (shortened to fit the 63-byte limit), then a process-wide counter and
    /// the process id. Thread-safe.
    pub fn create_database(&self, prefix: &str) -> Result<String> {
        let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = database_name(prefix, n, std::process::id());
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {}", quote_ident(&name)),
        )?;
        Ok(name)
    }

    /// Runs the SQL script `sql` (passed on stdin, so several statements are
    /// fine) with `psql -X -q -A -t -v ON_ERROR_STOP=1` over the Unix socket
    /// as `postgres` in database `db`, and returns its stdout (unaligned,
    /// tuples only: one line per row, columns separated by `|`).
    ///
    /// Fails, with psql's stderr in the message, when any statement fails.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let out = self.run_psql(
            db,
            &[OsStr::new("-f"), OsStr::new("-")],
            Some(sql.as_bytes()),
        )?;
        String::from_utf8(out).map_err(|_| Error::new("psql printed invalid UTF-8"))
    }

    /// The raw bytes of `COPY (<query>) TO STDOUT (FORMAT binary)` run in `db`
    /// by psql (for decoder fixtures).
    pub fn copy_binary(&self, db: &str, query: &str) -> Result<Vec<u8>> {
        let sql = format!("COPY ({query}) TO STDOUT (FORMAT binary)");
        self.run_psql(db, &[OsStr::new("-c"), OsStr::new(&sql)], None)
    }

    /// A `psql` command preset to connect as `postgres` over the Unix socket
    /// to `db` with `-X -q -A -t -v ON_ERROR_STOP=1`; add arguments (`-c SQL`,
    /// ...) and run it.
    pub fn psql_command(&self, db: &str) -> Command {
        let mut cmd = Command::new(&self.psql_path);
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER, "-d", db])
            .env("PGCONNECT_TIMEOUT", "30")
            .env("PGAPPNAME", "pgarrow-testkit");
        cmd
    }

    fn run_psql(&self, db: &str, args: &[&OsStr], stdin: Option<&[u8]>) -> Result<Vec<u8>> {
        let mut cmd = self.psql_command(db);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("cannot run {}", self.psql_path.display()), e))?;
        let output = match (stdin, child.stdin.take()) {
            (Some(input), Some(mut pipe)) => std::thread::scope(|s| {
                // Feed stdin from another thread so a large output cannot deadlock.
                let writer = s.spawn(move || pipe.write_all(input));
                let output = child.wait_with_output();
                // A write error (psql quit early) shows up in its exit status.
                let _ = writer.join();
                output
            }),
            _ => child.wait_with_output(),
        }
        .map_err(|e| Error::io("cannot wait for psql", e))?;
        if !output.status.success() {
            return Err(Error::new(format!(
                "psql in database {db:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            )));
        }
        Ok(output.stdout)
    }

    /// A command for a server binary, run as the server user when we are root.
    fn server_command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("HOME", &self.root)
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .current_dir(&self.root)
            .stdin(Stdio::null());
        if let Some(u) = &self.user {
            cmd.uid(u.uid).gid(u.gid);
        }
        cmd
    }

    fn run_server_command(&self, mut cmd: Command, what: &str) -> Result<Output> {
        let output = cmd
            .output()
            .map_err(|e| Error::io(format!("cannot run {what}"), e))?;
        if !output.status.success() {
            return Err(Error::new(format!(
                "{what} failed ({}){}: {}",
                output.status,
                self.user
                    .as_ref()
                    .map(|u| format!(" running as user {}", u.name))
                    .unwrap_or_default(),
                output_text(&output),
            )));
        }
        Ok(output)
    }

    /// `sh` waiting for EOF on stdin (our end of the pipe closes when we drop
    /// it or when the process dies), then stopping the server and removing
    /// the directory. Runs as the server user, who owns the whole directory.
    fn spawn_watchdog(&self) -> Result<Child> {
        const SCRIPT: &str = r#"trap '' HUP INT QUIT TERM PIPE
cat >/dev/null
if [ -f "$2/postmaster.pid" ]; then "$1" -D "$2" -m immediate -w stop; fi
rm -rf "$3"
exit 0"#;
        let mut cmd = self.server_command("/bin/sh");
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg("pgarrow-testkit-watchdog")
            .arg(self.bin_dir.join("pg_ctl"))
            .arg(&self.data_dir)
            .arg(&self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Keep terminal signals (Ctrl-C) for our process group away from it.
            .process_group(0);
        cmd.spawn()
            .map_err(|e| Error::io("cannot start the watchdog /bin/sh", e))
    }

    fn initdb(&self) -> Result<()> {
        let initdb = self.bin_dir.join("initdb");
        let mut version = self.server_command(&initdb);
        version.arg("--version");
        let version = self.run_server_command(version, "initdb --version")?;
        let major = parse_major_version(&String::from_utf8_lossy(&version.stdout));
        let mut cmd = self.server_command(&initdb);
        cmd.arg("-D").arg(&self.data_dir).args([
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        if major.is_some_and(|m| m >= 14) {
            cmd.arg("--no-instructions");
        }
        self.run_server_command(cmd, "initdb")?;
        let hba = self.data_dir.join("pg_hba.conf");
        let hba_text = format!(
            "local all all trust\n\
             host all {SUPERUSER} 127.0.0.1/32 trust\n\
             host all {MD5_USER} 127.0.0.1/32 md5\n\
             host all {PLAIN_USER} 127.0.0.1/32 password\n\
             host all all 127.0.0.1/32 scram-sha-256\n"
        );
        write_file(&hba, &hba_text)?;
        if let Some(u) = &self.user {
            chown(&hba, u)?;
        }
        Ok(())
    }

    fn start_server(&mut self) -> Result<()> {
        let conf = self.data_dir.join("postgresql.conf");
        let base_conf = fs::read_to_string(&conf)
            .map_err(|e| Error::io(format!("cannot read {}", conf.display()), e))?;
        for attempt in 1..=START_ATTEMPTS {
            self.port = free_port()?;
            let settings = format!(
                "\n# pgarrow-testkit\n\
                 fsync = off\n\
                 synchronous_commit = off\n\
                 full_page_writes = off\n\
                 listen_addresses = '127.0.0.1'\n\
                 port = {}\n\
                 unix_socket_directories = '{}'\n\
                 max_connections = 100\n\
                 log_min_messages = warning\n\
                 password_encryption = 'scram-sha-256'\n",
                self.port,
                self.socket_dir.display().to_string().replace('\'', "''"),
            );
            write_file(&conf, &format!("{base_conf}{settings}"))?;
            let log_start = fs::metadata(&self.log_path).map(|m| m.len()).unwrap_or(0);
            let mut cmd = self.server_command(self.bin_dir.join("pg_ctl"));
            cmd.arg("-D")
                .arg(&self.data_dir)
                .arg("-l")
                .arg(&self.log_path)
                .args(["-w", "-t", "60", "start"]);
            let output = cmd
                .output()
                .map_err(|e| Error::io("cannot run pg_ctl start", e))?;
            if output.status.success() {
                return Ok(());
            }
            let log = fs::read(&self.log_path).unwrap_or_default();
            let new_log =
                String::from_utf8_lossy(log.get(log_start as usize..).unwrap_or_default());
            let port_taken =
                new_log.contains("could not bind") || new_log.contains("Address already in use");
            if port_taken && attempt < START_ATTEMPTS {
                continue;
            }
            return Err(Error::new(format!(
                "pg_ctl start failed ({}, port {}, attempt {attempt}/{START_ATTEMPTS}): {}\n\
                 --- last lines of {} ---\n{}",
                output.status,
                self.port,
                output_text(&output),
                self.log_path.display(),
                tail_lines(&new_log, LOG_TAIL_LINES),
            )));
        }
        unreachable!("the last attempt returns")
    }

    fn create_roles(&self) -> Result<()> {
        let mut sql = format!(
            "CREATE ROLE {SCRAM_USER} LOGIN PASSWORD {};\n\
             SET password_encryption = 'md5';\n\
             CREATE ROLE {MD5_USER} LOGIN PASSWORD {};\n\
             RESET password_encryption;\n\
             CREATE ROLE {PLAIN_USER} LOGIN PASSWORD {};\n",
            quote_literal(SCRAM_PASSWORD),
            quote_literal(MD5_PASSWORD),
            quote_literal(PLAIN_PASSWORD),
        );
        // Let the auth-test roles read whatever the tests create (PG 14+).
        sql.push_str(&format!(
            "DO $$ BEGIN IF current_setting('server_version_num')::int >= 140000 THEN \
             EXECUTE 'GRANT pg_read_all_data TO {SCRAM_USER}, {MD5_USER}, {PLAIN_USER}'; \
             END IF; END $$;\n"
        ));
        self.psql("postgres", &sql).map(drop)
    }

    fn stop_server(&self) {
        if self.data_dir.join("postmaster.pid").exists() {
            let mut cmd = self.server_command(self.bin_dir.join("pg_ctl"));
            cmd.arg("-D")
                .arg(&self.data_dir)
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = cmd.status();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_server();
        if let Some(dir) = self.tempdir.take() {
            let _ = dir.close();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            // EOF on its stdin: it finds no server and no directory left.
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
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

fn has_server_binaries(dir: &Path) -> bool {
    SERVER_BINARIES.iter().all(|name| dir.join(name).is_file())
}

fn missing_binaries_message() -> String {
    match std::env::var_os(PG_BIN_ENV).filter(|v| !v.is_empty()) {
        Some(dir) => format!(
            "no PostgreSQL server binaries found: {PG_BIN_ENV}={} has no initdb, pg_ctl and postgres",
            Path::new(&dir).display()
        ),
        None => format!(
            "no PostgreSQL server binaries found (set {PG_BIN_ENV} to the directory holding \
             initdb, pg_ctl and postgres, or put them on PATH)"
        ),
    }
}

/// Whether the effective user id is 0.
fn is_root() -> bool {
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

fn lookup_user(name: &str) -> Option<ServerUser> {
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
fn server_user() -> Result<ServerUser> {
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
        Error::new(format!(
            "running as root, PostgreSQL needs an unprivileged user, but there is no user \
             `postgres` and `useradd ... pgarrow` failed: {detail}"
        ))
    })
}

fn chown(path: &Path, user: &ServerUser) -> Result<()> {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).map_err(|e| {
        Error::io(
            format!("cannot chown {} to user {}", path.display(), user.name),
            e,
        )
    })
}

fn write_file(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

fn free_port() -> Result<u16> {
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
fn parse_major_version(text: &str) -> Option<u32> {
    let after = text.split_once(')').map_or(text, |(_, rest)| rest);
    let version = after.split_whitespace().next()?;
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A command's stderr and stdout, trimmed, one after the other.
fn output_text(output: &Output) -> String {
    [&output.stderr, &output.stdout]
        .into_iter()
        .map(|bytes| String::from_utf8_lossy(bytes).trim().to_owned())
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn database_name(prefix: &str, counter: u64, pid: u32) -> String {
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

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("scram secret:@/"), "scram%20secret%3A%40%2F");
        assert_eq!(percent_encode("/tmp/pgatAb1"), "%2Ftmp%2FpgatAb1");
        assert_eq!(percent_encode("a-b_c.d~"), "a-b_c.d~");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn database_names() {
        assert_eq!(database_name("My Test-1", 3, 42), "my_test_1_3_42");
        assert_eq!(database_name("", 0, 1), "db_0_1");
        let long = database_name(&"x".repeat(100), 12, 123456);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("_12_123456"));
        assert_eq!(database_name("Ünï", 0, 1), "_n__0_1");
    }

    #[test]
    fn major_versions() {
        assert_eq!(
            parse_major_version("initdb (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major_version("initdb (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major_version("initdb (PostgreSQL) 17devel"), Some(17));
        assert_eq!(parse_major_version("garbage"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn tail() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
    }
}
