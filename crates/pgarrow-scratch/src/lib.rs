//! Scratch PostgreSQL clusters: a throw-away server started from the
//! system's PostgreSQL server binaries, for pgarrow's `demo` command and
//! tests. No Docker, no download.
//!
//! [`Cluster::start`] runs `initdb` and `pg_ctl start` from the system's
//! PostgreSQL server binaries (found by [`find_bin_dir`]: `$PG_BIN`, then
//! `$PATH`, then the newest `/usr/lib/postgresql/*/bin`) in a fresh temporary
//! directory under `/tmp`, on a free TCP port of `127.0.0.1` and on a Unix
//! socket. Tuning favours speed over durability (`fsync = off`, ...): the
//! data is meant to be thrown away.
//!
//! * The superuser `postgres` connects without a password (trust), over TCP
//!   ([`Cluster::url`]) and over the Unix socket ([`Cluster::socket_url`]).
//!   While the cluster runs, so can any local user of the machine: use it for
//!   sample data, not for secrets.
//! * Every other role must authenticate with SCRAM-SHA-256 over TCP; no such
//!   role exists until you create one (see [`Cluster::url_for`]). More
//!   `pg_hba.conf` lines come from [`Builder::with_hba_lines`].
//! * When the process runs as root (PostgreSQL refuses to), the server runs
//!   as the `postgres` system user, or as a `pgarrow` system user created on
//!   demand with `useradd`.
//! * A cluster never outlives its process: dropping a [`Cluster`] stops the
//!   server and removes its directory, and a small watchdog process does the
//!   same when the process ends without dropping it (statics are never
//!   dropped; the process may be killed).
//!
//! ```no_run
//! use pgarrow_scratch::{Cluster, sample};
//! let pg = Cluster::start()?;
//! let db = pg.create_database("demo")?;
//! pg.psql(&db, &sample::lineitem_sql("lineitem", 1_000))?;
//! assert_eq!(pg.psql(&db, "SELECT count(*) FROM lineitem")?.trim(), "1000");
//! let _url = pg.url(&db); // postgresql://postgres@127.0.0.1:PORT/DB
//! let _socket_url = pg.socket_url(&db); // postgresql://postgres@/DB?host=%2Ftmp%2F...&port=PORT
//! drop(pg); // stops the server and removes its files
//! # Ok::<(), pgarrow_scratch::Error>(())
//! ```
//!
//! Everything here is synchronous (`std::process::Command`): SQL goes through
//! `psql` ([`Cluster::psql`]); connect with a real client to the URLs.
//!
//! Slightly over ~600 lines: [`Cluster`]'s life (initdb, start, psql, stop) reads best in one
//! place; what it needs from the system is in `system`.
#![warn(missing_docs)]

mod error;
pub mod sample;
mod system;

pub use error::{Error, ErrorKind, Result};
pub use system::find_bin_dir;

use system::*;

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// The superuser every cluster is initialised with (trust authentication).
pub const SUPERUSER: &str = "postgres";

/// Environment variable naming the directory that holds `initdb`, `pg_ctl`
/// and `postgres`.
pub const PG_BIN_ENV: &str = "PG_BIN";

pub(crate) const SERVER_BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
const START_ATTEMPTS: usize = 5;
const LOG_TAIL_LINES: usize = 40;

/// A scratch PostgreSQL cluster (a running server in a temporary
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
    /// `postgresql.conf` lines added by [`Builder::with_settings`].
    settings: Vec<String>,
}

static DB_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How to start a [`Cluster`]: which server binaries, which extra
/// `pg_hba.conf` lines. [`Builder::start`] starts it.
///
/// ```no_run
/// let pg = pgarrow_scratch::Cluster::builder()
///     .with_bin_dir("/usr/lib/postgresql/17/bin")
///     .with_hba_lines(["host all app_md5 127.0.0.1/32 md5"])
///     .start()?;
/// pg.psql("postgres", "SET password_encryption = 'md5'; \
///                      CREATE ROLE app_md5 LOGIN PASSWORD 'secret'")?;
/// let _url = pg.url_for("app_md5", "secret", "postgres");
/// # Ok::<(), pgarrow_scratch::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    bin_dir: Option<PathBuf>,
    hba_lines: Vec<String>,
    settings: Vec<String>,
    preload: Vec<String>,
}

impl Builder {
    /// The defaults: binaries from [`find_bin_dir`], and this `pg_hba.conf`:
    ///
    /// ```text
    /// local all all trust
    /// local replication all trust
    /// host all postgres 127.0.0.1/32 trust
    /// host all all 127.0.0.1/32 scram-sha-256
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Uses the server binaries (`initdb`, `pg_ctl`, `postgres`, and `psql`
    /// when there is one) of `dir` instead of looking for them with
    /// [`find_bin_dir`].
    pub fn with_bin_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.bin_dir = Some(dir.into());
        self
    }

    /// Adds `pg_hba.conf` lines, after the two trust lines and before the
    /// catch-all `host all all 127.0.0.1/32 scram-sha-256`, so that they
    /// decide for the roles and databases they name (the first matching line
    /// wins). Each call adds to the lines of earlier calls.
    pub fn with_hba_lines<I>(mut self, lines: I) -> Builder
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.hba_lines.extend(lines.into_iter().map(Into::into));
        self
    }

    /// Adds `postgresql.conf` lines (`name = value`), after pgarrow-scratch's own.
    pub fn with_settings<I>(mut self, lines: I) -> Builder
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.settings.extend(lines.into_iter().map(Into::into));
        self
    }

    /// Loads these server libraries at start (`shared_preload_libraries`), each only when the
    /// server's library directory has it (`pg_stat_statements`, say, which a server built
    /// without its contrib modules lacks).
    pub fn with_preload_if_available<I>(mut self, libraries: I) -> Builder
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.preload.extend(libraries.into_iter().map(Into::into));
        self
    }

    /// Initialises and starts a new cluster.
    ///
    /// Picks a free TCP port and retries with another one when the server
    /// lost it to someone else meanwhile; waits for the server with
    /// `pg_ctl -w` (no sleeping).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NoServerBinaries`] when no binaries are found (or the
    /// directory given lacks one); otherwise the failing step (`initdb`,
    /// `pg_ctl start` with the tail of the server log, ...). Whatever was
    /// set up is removed again.
    pub fn start(self) -> Result<Cluster> {
        let bin_dir = match self.bin_dir {
            Some(dir) => dir,
            None => find_bin_dir().ok_or_else(|| {
                Error::new(ErrorKind::NoServerBinaries, missing_binaries_message())
            })?,
        };
        let mut settings = self.settings;
        let preload: Vec<String> = self
            .preload
            .into_iter()
            .filter(|name| library_available(&bin_dir, name))
            .collect();
        if !preload.is_empty() {
            settings.push(format!(
                "shared_preload_libraries = '{}'",
                preload.join(",")
            ));
        }
        Cluster::launch(&bin_dir, &self.hba_lines, settings)
    }
}

/// Whether the server of `bin_dir` has the loadable library `name` (in its `lib` or
/// `lib/postgresql` directory beside `bin`, following symbolic links).
fn library_available(bin_dir: &Path, name: &str) -> bool {
    let Ok(postgres) = fs::canonicalize(bin_dir.join("postgres")) else {
        return false;
    };
    let Some(prefix) = postgres.parent().and_then(Path::parent) else {
        return false;
    };
    let file = format!("{name}.so");
    [prefix.join("lib"), prefix.join("lib").join("postgresql")]
        .iter()
        .any(|dir| dir.join(&file).is_file())
}

impl Cluster {
    /// Finds the server binaries with [`find_bin_dir`], then initialises and
    /// starts a new cluster with the default settings (see [`Builder::new`]).
    /// Each call makes a new cluster.
    ///
    /// # Errors
    ///
    /// As [`Builder::start`].
    pub fn start() -> Result<Cluster> {
        Builder::new().start()
    }

    /// Like [`Cluster::start`] with the server binaries of `bin_dir`.
    ///
    /// # Errors
    ///
    /// As [`Builder::start`].
    pub fn start_in(bin_dir: &Path) -> Result<Cluster> {
        Builder::new().with_bin_dir(bin_dir).start()
    }

    /// A [`Builder`] for a cluster with other settings.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A hot standby of this cluster: a new cluster made with `pg_basebackup -R` from this
    /// one (all its databases as they are now), streaming its changes from then on, read-only.
    ///
    /// # Errors
    ///
    /// `pg_basebackup` or the server start failed.
    pub fn start_standby(&self) -> Result<Cluster> {
        let from = (self.socket_dir.clone(), self.port);
        Cluster::launch_with(&self.bin_dir, Vec::new(), |cluster| {
            let mut cmd = cluster.server_command(cluster.bin_dir.join("pg_basebackup"));
            cmd.arg("-h")
                .arg(&from.0)
                .arg("-p")
                .arg(from.1.to_string())
                .args([
                    "-U",
                    SUPERUSER,
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "--no-sync",
                    "-D",
                ])
                .arg(&cluster.data_dir);
            cluster.run_server_command(cmd, "pg_basebackup")?;
            Ok(())
        })
    }

    fn launch(bin_dir: &Path, hba_lines: &[String], settings: Vec<String>) -> Result<Cluster> {
        Cluster::launch_with(bin_dir, settings, |cluster| cluster.initdb(hba_lines))
    }

    /// Sets up a cluster's directory, makes its data directory with `make`, and starts it.
    fn launch_with(
        bin_dir: &Path,
        settings: Vec<String>,
        make: impl FnOnce(&Cluster) -> Result<()>,
    ) -> Result<Cluster> {
        for name in SERVER_BINARIES {
            if !bin_dir.join(name).is_file() {
                return Err(Error::new(
                    ErrorKind::NoServerBinaries,
                    format!("{} has no {name}", bin_dir.display()),
                ));
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
            settings,
        };
        // From here on, dropping `cluster` (also on error) cleans up.
        cluster.watchdog = Some(cluster.spawn_watchdog()?);
        make(&cluster)?;
        cluster.start_server()?;
        let version = cluster.psql("postgres", "SHOW server_version_num")?;
        cluster.server_version_num = version.trim().parse().map_err(|_| {
            Error::command(format!(
                "unexpected server_version_num {:?}",
                version.trim()
            ))
        })?;
        Ok(cluster)
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
    /// `postgresql://USER:PASSWORD@127.0.0.1:PORT/DB`; an empty password gives no
    /// `:PASSWORD` part.
    pub fn url_for(&self, user: &str, password: &str, db: &str) -> String {
        let password = if password.is_empty() {
            String::new()
        } else {
            format!(":{}", percent_encode(password))
        };
        format!(
            "postgresql://{}{password}@127.0.0.1:{}/{}",
            percent_encode(user),
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
    ///
    /// # Errors
    ///
    /// `CREATE DATABASE` fails (see [`Cluster::psql`]).
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
    /// # Errors
    ///
    /// [`ErrorKind::Command`], with psql's stderr in the message, when any
    /// statement fails (psql stops at the first failure); [`ErrorKind::Io`]
    /// when psql cannot run.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let out = self.run_psql(
            db,
            &[OsStr::new("-f"), OsStr::new("-")],
            Some(sql.as_bytes()),
        )?;
        String::from_utf8(out).map_err(|_| Error::command("psql printed invalid UTF-8"))
    }

    /// The raw bytes of `COPY (<query>) TO STDOUT (FORMAT binary)` run in `db`
    /// by psql (for decoder fixtures).
    ///
    /// # Errors
    ///
    /// As [`Cluster::psql`].
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
            .env("PGAPPNAME", "pgarrow-scratch");
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
            return Err(Error::command(format!(
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
            return Err(Error::command(format!(
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
            .arg("pgarrow-scratch-watchdog")
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

    fn initdb(&self, hba_lines: &[String]) -> Result<()> {
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
        let hba_text = hba_conf(hba_lines);
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
                "\n# pgarrow-scratch\n\
                 fsync = off\n\
                 synchronous_commit = off\n\
                 full_page_writes = off\n\
                 listen_addresses = '127.0.0.1'\n\
                 port = {}\n\
                 unix_socket_directories = '{}'\n\
                 max_connections = 100\n\
                 log_min_messages = warning\n\
                 password_encryption = 'scram-sha-256'\n{}",
                self.port,
                self.socket_dir.display().to_string().replace('\'', "''"),
                self.settings
                    .iter()
                    .map(|line| format!("{line}\n"))
                    .collect::<String>(),
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
            return Err(Error::command(format!(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_server_says_how_to_install_one() {
        use crate::system::{Platform, install_hint, missing_binaries_message};
        assert!(install_hint(Platform::Debian).contains("apt-get install postgresql"));
        assert!(install_hint(Platform::MacOs).contains("brew install"));
        assert!(install_hint(Platform::Other).contains("apt-get install postgresql"));
        let message = missing_binaries_message();
        assert!(message.contains("initdb, pg_ctl and postgres"), "{message}");
        if std::env::var_os(PG_BIN_ENV).is_none_or(|v| v.is_empty()) {
            assert!(message.contains("Install"), "{message}");
            assert!(message.contains("set PG_BIN"), "{message}");
        }
    }

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
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn hba_lines_go_before_the_catch_all() {
        assert_eq!(
            hba_conf(&[]),
            "local all all trust\n\
             local replication all trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n"
        );
        let extra = [
            "host all a 127.0.0.1/32 md5\n".to_owned(),
            "host all b 127.0.0.1/32 password".to_owned(),
        ];
        assert_eq!(
            hba_conf(&extra),
            "local all all trust\n\
             local replication all trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host all a 127.0.0.1/32 md5\n\
             host all b 127.0.0.1/32 password\n\
             host all all 127.0.0.1/32 scram-sha-256\n"
        );
    }

    #[test]
    fn tail() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
    }
}
