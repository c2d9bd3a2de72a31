//! A PostgreSQL cluster that speaks TLS, with a throw-away certificate authority.
//!
//! [`Certs::generate`] makes, with the `openssl` command, a self-signed CA, a server
//! certificate for [`SERVER_NAME`] and `localhost` (no IP address: connecting to `127.0.0.1`
//! with `verify-full` must fail), a client certificate for [`CERT_USER`], and a second,
//! unrelated CA (a root that must not verify the server). Keys are ECDSA P-256; certificates
//! are signed with ecdsa-with-SHA256, so `tls-server-end-point` channel binding hashes with
//! SHA-256.
//!
//! [`TlsCluster::start`] starts its own [`Cluster`] (never the shared one: it rewrites
//! `pg_hba.conf`), installs the server certificate, turns `ssl` on and reloads, then waits
//! (polling the server, no sleeping) until the new settings are live. Its `pg_hba.conf`:
//!
//! | user | over TLS | without TLS |
//! |---|---|---|
//! | `postgres` | trust | trust |
//! | [`CERT_USER`] | `cert` (client certificate, CN = user) | rejected |
//! | [`TLS_ONLY_USER`] | scram-sha-256 | rejected |
//! | [`NO_TLS_USER`] | rejected | scram-sha-256 |
//! | [`MD5_USER`] | md5 | md5 |
//! | [`PLAIN_USER`] | password | password |
//! | everyone else, [`SCRAM_USER`](crate::SCRAM_USER) | scram-sha-256 | scram-sha-256 |
//!
//! [`TLS_ONLY_USER`] and [`NO_TLS_USER`] have the password [`SCRAM_PASSWORD`].
//!
//! ```no_run
//! use pgarrow_testkit::tls::{SERVER_NAME, TlsCluster};
//! let Some(pg) = TlsCluster::shared() else { return };
//! let url = pg.url_for(
//!     pgarrow_testkit::SCRAM_USER,
//!     pgarrow_testkit::SCRAM_PASSWORD,
//!     "postgres",
//!     &format!("sslmode=verify-full&host={SERVER_NAME}&hostaddr=127.0.0.1"),
//! );
//! # let _ = url;
//! ```

use std::fs;
use std::ops::Deref;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{
    Cluster, Error, ErrorKind, MD5_USER, PLAIN_USER, Result, SCRAM_PASSWORD, SUPERUSER,
    quote_literal,
};

/// The DNS name in the server certificate (with `localhost`).
pub const SERVER_NAME: &str = "pgarrow.test";
/// Role that logs in with a client certificate only (`cert` method, over TLS).
pub const CERT_USER: &str = "pgarrow_cert";
/// Role that may log in over TLS only (SCRAM, password [`SCRAM_PASSWORD`]).
pub const TLS_ONLY_USER: &str = "pgarrow_tls_only";
/// Role that may log in without TLS only (SCRAM, password [`SCRAM_PASSWORD`]).
pub const NO_TLS_USER: &str = "pgarrow_no_tls";

/// How long the server may take to pick up the TLS settings.
const RELOAD_DEADLINE: Duration = Duration::from_secs(60);

const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = pgarrow test
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:pgarrow.test,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// Certificates and keys in PEM files of a temporary directory (removed on drop).
#[derive(Debug)]
pub struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    /// Generates everything with `openssl` (see the module docs).
    ///
    /// # Errors
    /// `openssl` is missing or fails.
    pub fn generate() -> Result<Certs> {
        let dir = tempfile::Builder::new()
            .prefix("pgat-certs")
            .tempdir()
            .map_err(|e| Error::io("cannot create a temporary directory", e))?;
        let certs = Certs { dir };
        let cnf = certs.path("openssl.cnf");
        fs::write(&cnf, OPENSSL_CONFIG)
            .map_err(|e| Error::io(format!("cannot write {}", cnf.display()), e))?;
        for (name, cn) in [("ca", "pgarrow test CA"), ("other-ca", "pgarrow other CA")] {
            certs.openssl(&[
                "req",
                "-x509",
                "-new",
                "-config",
                "openssl.cnf",
                "-extensions",
                "ca_ext",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-sha256",
                "-days",
                "3650",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
            ])?;
        }
        for (name, cn, ext, serial) in [
            ("server", SERVER_NAME, "server_ext", "2"),
            ("client", CERT_USER, "client_ext", "3"),
        ] {
            certs.openssl(&[
                "req",
                "-new",
                "-config",
                "openssl.cnf",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ])?;
            certs.openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                serial,
                "-days",
                "3650",
                "-sha256",
                "-extfile",
                "openssl.cnf",
                "-extensions",
                ext,
                "-out",
                &format!("{name}.crt"),
            ])?;
        }
        for key in ["ca.key", "other-ca.key", "server.key", "client.key"] {
            let path = certs.path(key);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io(format!("cannot chmod {}", path.display()), e))?;
        }
        Ok(certs)
    }

    fn openssl(&self, args: &[&str]) -> Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                Error::io(
                    "cannot run openssl (install it: apt-get install openssl)",
                    e,
                )
            })?;
        if !out.status.success() {
            return Err(Error::new(
                ErrorKind::Command,
                format!(
                    "openssl {} failed ({}): {}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        Ok(())
    }

    /// A file of the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate that signed the server and client certificates.
    pub fn ca_cert(&self) -> PathBuf {
        self.path("ca.crt")
    }

    /// A CA certificate that signed nothing here.
    pub fn other_ca_cert(&self) -> PathBuf {
        self.path("other-ca.crt")
    }

    /// The server certificate (for [`SERVER_NAME`] and `localhost`).
    pub fn server_cert(&self) -> PathBuf {
        self.path("server.crt")
    }

    /// The server's private key (PKCS #8, mode 0600).
    pub fn server_key(&self) -> PathBuf {
        self.path("server.key")
    }

    /// The client certificate for [`CERT_USER`].
    pub fn client_cert(&self) -> PathBuf {
        self.path("client.crt")
    }

    /// The client's private key (PKCS #8, mode 0600).
    pub fn client_key(&self) -> PathBuf {
        self.path("client.key")
    }
}

/// A running cluster with TLS on (see the module docs). Derefs to its [`Cluster`].
#[derive(Debug)]
pub struct TlsCluster {
    cluster: Cluster,
    certs: Certs,
}

/// The TLS cluster, what it misses (and how to get it), or why it did not start.
static SHARED: OnceLock<std::result::Result<std::result::Result<TlsCluster, Missing>, String>> =
    OnceLock::new();

/// A part the TLS cluster needs and does not have, and how to get it.
type Missing = (&'static str, &'static str);

impl Deref for TlsCluster {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl TlsCluster {
    /// Generates certificates, starts a new cluster and turns TLS on.
    ///
    /// # Errors
    /// No server binaries, no `openssl`, or the server refusing the settings (the message
    /// then ends with the server log).
    pub fn start() -> Result<TlsCluster> {
        let certs = Certs::generate()?;
        let cluster = Cluster::start()?;
        let tls = TlsCluster { cluster, certs };
        tls.enable()?;
        Ok(tls)
    }

    /// One TLS cluster per process, like [`Cluster::shared`]: without PostgreSQL or the
    /// `openssl` command it fails the test, unless the run allows skipping
    /// (`PGARROW_ALLOW_SKIP=1`): then it returns `None` after a `SKIPPED` line (see
    /// [`missing`](crate::missing)).
    ///
    /// # Panics
    /// When something is missing and the run does not allow skipping, and when starting
    /// fails.
    #[track_caller]
    pub fn shared() -> Option<&'static TlsCluster> {
        let state = SHARED.get_or_init(|| {
            let openssl = Command::new("openssl")
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if crate::find_bin_dir().is_none() {
                return Ok(Err((
                    "PostgreSQL",
                    "no server binaries found (apt-get install postgresql, or set PG_BIN)",
                )));
            }
            if !openssl {
                return Ok(Err((
                    "the openssl command",
                    "it makes the TLS cluster's certificates (apt-get install openssl)",
                )));
            }
            TlsCluster::start().map(Ok).map_err(|e| e.to_string())
        });
        match state {
            Ok(Ok(c)) => Some(c),
            Ok(Err((what, how))) => {
                crate::missing(what, how);
                None
            }
            Err(message) => panic!("cannot start the TLS PostgreSQL cluster: {message}"),
        }
    }

    /// The underlying cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The certificates in use.
    pub fn certs(&self) -> &Certs {
        &self.certs
    }

    /// `postgresql://USER:PASSWORD@127.0.0.1:PORT/DB?PARAMS` (user, password and database
    /// percent-encoded; `params` as given, `&`-separated). An empty password gives no
    /// `:PASSWORD` part.
    pub fn url_for(&self, user: &str, password: &str, db: &str, params: &str) -> String {
        let url = self.cluster.url_for(user, password, db);
        if params.is_empty() {
            url
        } else {
            format!("{url}?{params}")
        }
    }

    fn enable(&self) -> Result<()> {
        let data = self.cluster.data_dir();
        let owner = fs::metadata(data)
            .map_err(|e| Error::io(format!("cannot stat {}", data.display()), e))?;
        for (from, to) in [
            (self.certs.server_cert(), "server.crt"),
            (self.certs.server_key(), "server.key"),
            (self.certs.ca_cert(), "root.crt"),
        ] {
            let dest = data.join(to);
            fs::copy(&from, &dest)
                .map_err(|e| Error::io(format!("cannot copy {}", from.display()), e))?;
            std::os::unix::fs::chown(&dest, Some(owner.uid()), Some(owner.gid()))
                .map_err(|e| Error::io(format!("cannot chown {}", dest.display()), e))?;
            fs::set_permissions(&dest, fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io(format!("cannot chmod {}", dest.display()), e))?;
        }
        // Rewriting in place keeps the file's owner.
        let hba = format!(
            "local all all trust\n\
             host all {SUPERUSER} 127.0.0.1/32 trust\n\
             hostssl all {CERT_USER} 127.0.0.1/32 cert\n\
             hostnossl all {CERT_USER} 127.0.0.1/32 reject\n\
             hostnossl all {TLS_ONLY_USER} 127.0.0.1/32 reject\n\
             hostssl all {NO_TLS_USER} 127.0.0.1/32 reject\n\
             host all {MD5_USER} 127.0.0.1/32 md5\n\
             host all {PLAIN_USER} 127.0.0.1/32 password\n\
             host all all 127.0.0.1/32 scram-sha-256\n"
        );
        let hba_path = data.join("pg_hba.conf");
        fs::write(&hba_path, hba)
            .map_err(|e| Error::io(format!("cannot write {}", hba_path.display()), e))?;
        let password = quote_literal(SCRAM_PASSWORD);
        self.cluster.psql(
            "postgres",
            &format!(
                "CREATE ROLE {CERT_USER} LOGIN;\n\
                 CREATE ROLE {TLS_ONLY_USER} LOGIN PASSWORD {password};\n\
                 CREATE ROLE {NO_TLS_USER} LOGIN PASSWORD {password};\n\
                 ALTER SYSTEM SET ssl_cert_file = 'server.crt';\n\
                 ALTER SYSTEM SET ssl_key_file = 'server.key';\n\
                 ALTER SYSTEM SET ssl_ca_file = 'root.crt';\n\
                 ALTER SYSTEM SET ssl = on;\n\
                 SELECT pg_reload_conf();\n"
            ),
        )?;
        // A new session sees the postmaster's settings: once it reports ssl = on, the
        // postmaster has finished the reload (pg_hba.conf included).
        let start = Instant::now();
        loop {
            let ssl = self.cluster.psql("postgres", "SHOW ssl")?;
            if ssl.trim() == "on" {
                return Ok(());
            }
            if start.elapsed() > RELOAD_DEADLINE {
                let log = fs::read_to_string(self.cluster.log_path()).unwrap_or_default();
                return Err(Error::new(
                    ErrorKind::Command,
                    format!(
                        "the server did not turn ssl on within {RELOAD_DEADLINE:?}; server log:\n{}",
                        crate::tail_lines(&log, 20)
                    ),
                ));
            }
        }
    }
}

/// Restarts `cluster`'s server (`pg_ctl restart -m fast`), as the user owning its data
/// directory: every session is terminated (FATAL 57P01) and the server comes back on the
/// same port. For tests of a server restarted mid-export.
///
/// # Errors
/// `pg_ctl` fails.
pub fn restart(cluster: &pgarrow_scratch::Cluster) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let data = cluster.data_dir();
    let owner =
        fs::metadata(data).map_err(|e| Error::io(format!("cannot stat {}", data.display()), e))?;
    let root = data.parent().unwrap_or(Path::new("/tmp"));
    let out = Command::new(cluster.bin_dir().join("pg_ctl"))
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(cluster.log_path())
        .args(["-m", "fast", "-w", "-t", "60", "restart"])
        .env("HOME", root)
        .env("LC_ALL", "C")
        .current_dir(root)
        .uid(owner.uid())
        .gid(owner.gid())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::io("cannot run pg_ctl restart", e))?;
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::Command,
            format!(
                "pg_ctl restart failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}
