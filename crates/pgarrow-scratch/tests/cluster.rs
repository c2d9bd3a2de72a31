//! Scratch clusters against the real server binaries (they fail when there
//! are none, unless `PGARROW_ALLOW_SKIP=1` skips them loudly).

#[path = "support/psql.rs"]
mod psql;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use pgarrow_scratch::{Cluster, ErrorKind, find_bin_dir, sample};
use psql::{host_auth_methods, psql_url, stdout, superuser};

/// The server binaries, or `None` after a `SKIPPED` line where the run allows
/// skipping (see `pgarrow_testkit::missing`).
fn bin_dir() -> Option<PathBuf> {
    let dir = find_bin_dir();
    if dir.is_none() {
        pgarrow_testkit::missing(
            "PostgreSQL",
            "no server binaries found (apt-get install postgresql, or set PG_BIN)",
        );
    }
    dir
}

#[test]
fn default_cluster() {
    let Some(bin) = bin_dir() else { return };
    let pg = Cluster::builder().with_bin_dir(&bin).start().unwrap();
    assert_eq!(pg.bin_dir(), bin);
    assert!(
        pg.server_version_num() >= 90_000,
        "{}",
        pg.server_version_num()
    );
    let root = pg.socket_dir().to_path_buf();
    assert!(root.starts_with("/tmp"), "{}", root.display());
    assert!(pg.data_dir().join("PG_VERSION").is_file());
    assert!(pg.log_path().starts_with(&root));
    assert!(root.join(format!(".s.PGSQL.{}", pg.port())).exists());

    // psql over the Unix socket.
    assert_eq!(pg.psql("postgres", "SELECT 1+1").unwrap(), "2\n");
    let err = pg
        .psql("postgres", "SELECT * FROM no_such_table")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Command);
    assert!(err.to_string().contains("no_such_table"), "{err}");
    let db = pg.create_database("Scratch Test").unwrap();
    assert!(db.starts_with("scratch_test_"), "{db}");
    pg.psql(&db, &sample::lineitem_sql("lineitem", 1_000))
        .unwrap();
    let columns = pg
        .psql(
            &db,
            "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute \
             WHERE attrelid = 'lineitem'::regclass AND attnum > 0",
        )
        .unwrap();
    assert_eq!(columns.trim(), sample::LINEITEM_COLUMNS.join(","));
    let stats = pg
        .psql(
            &db,
            "SELECT count(*), count(DISTINCT l_orderkey) FROM lineitem",
        )
        .unwrap();
    assert_eq!(stats, "1000|250\n");
    let copy = pg.copy_binary(&db, "SELECT 1::int4").unwrap();
    assert!(copy.starts_with(b"PGCOPY\n\xff\r\n\0"), "{copy:?}");

    // The TCP URL is TCP to 127.0.0.1 on the port, as postgres.
    let url = pg.url(&db);
    assert_eq!(
        url,
        format!("postgresql://postgres@127.0.0.1:{}/{db}", pg.port())
    );
    let out = psql_url(
        &pg,
        &url,
        "SELECT current_user, current_database(), inet_server_addr(), inet_server_port()",
    );
    assert_eq!(
        stdout(&out),
        format!("postgres|{db}|127.0.0.1|{}", pg.port())
    );

    // The socket URL names the socket directory; no inet address over a socket.
    let socket_url = pg.socket_url(&db);
    let encoded_dir = root.to_str().unwrap().replace('/', "%2F");
    assert_eq!(
        socket_url,
        format!(
            "postgresql://postgres@/{db}?host={encoded_dir}&port={}",
            pg.port()
        )
    );
    let out = psql_url(
        &pg,
        &socket_url,
        "SELECT current_user, current_database(), inet_server_addr() IS NULL, \
         current_setting('port')",
    );
    assert_eq!(stdout(&out), format!("postgres|{db}|t|{}", pg.port()));

    // Other roles need a SCRAM password over TCP.
    superuser(
        &pg,
        "CREATE ROLE app LOGIN PASSWORD 'app secret'; CREATE ROLE nopass LOGIN;",
    );
    let no_password = format!("postgresql://app@127.0.0.1:{}/postgres", pg.port());
    let out = psql_url(&pg, &no_password, "SELECT 1");
    assert!(!out.status.success(), "password-less TCP login accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The server asked for a password (libpq had none to send).
    assert!(stderr.contains("no password supplied"), "{stderr}");
    let out = psql_url(&pg, &pg.url_for("app", "wrong", "postgres"), "SELECT 1");
    assert!(!out.status.success(), "wrong password accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    let out = psql_url(&pg, &pg.url_for("nopass", "", "postgres"), "SELECT 1");
    assert!(!out.status.success(), "role without a password logged in");
    let out = psql_url(
        &pg,
        &pg.url_for("app", "app secret", "postgres"),
        "SELECT current_user",
    );
    assert_eq!(stdout(&out), "app");
    let stored = "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'app'";
    assert_eq!(superuser(&pg, stored), "SCRAM-SHA-256$\n");
    // No other login roles than the superuser and ours.
    let roles = "SELECT rolname FROM pg_roles WHERE rolcanlogin ORDER BY rolname";
    assert_eq!(superuser(&pg, roles), "app\nnopass\npostgres\n");
    if pg.server_version_num() >= 100_000 {
        let rules = superuser(
            &pg,
            // The second local line is for replication (`pg_basebackup`, a standby).
            "SELECT type, user_name[1], auth_method FROM pg_hba_file_rules ORDER BY line_number",
        );
        assert_eq!(
            rules,
            "local|all|trust\nlocal|all|trust\nhost|postgres|trust\nhost|all|scram-sha-256\n"
        );
    }

    // Dropping stops the server and removes everything.
    let port = pg.port();
    drop(pg);
    assert!(!root.exists(), "{} still exists", root.display());
    let out = Command::new("psql")
        .args(["-X", "-w", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-c", "SELECT 1"])
        .stdin(Stdio::null())
        .output();
    if let Ok(out) = out {
        assert!(!out.status.success(), "a dropped cluster still answers");
    }
}

#[test]
fn extra_hba_lines_come_before_scram() {
    let Some(bin) = bin_dir() else { return };
    let pg = Cluster::builder()
        .with_hba_lines(["host all app_md5 127.0.0.1/32 md5"])
        .with_hba_lines(vec![String::from(
            "host all app_plain 127.0.0.1/32 password",
        )])
        .with_bin_dir(bin)
        .start()
        .unwrap();
    superuser(
        &pg,
        "SET password_encryption = 'md5';\n\
         CREATE ROLE app_md5 LOGIN PASSWORD 'md5 secret';\n\
         RESET password_encryption;\n\
         CREATE ROLE app_plain LOGIN PASSWORD 'plain:secret@';\n",
    );
    for (user, password) in [("app_md5", "md5 secret"), ("app_plain", "plain:secret@")] {
        let out = psql_url(
            &pg,
            &pg.url_for(user, password, "postgres"),
            "SELECT current_user",
        );
        assert_eq!(stdout(&out), user);
        let out = psql_url(&pg, &pg.url_for(user, "wrong", "postgres"), "SELECT 1");
        assert!(!out.status.success(), "{user} accepted a wrong password");
    }
    if pg.server_version_num() >= 100_000 {
        assert_eq!(
            host_auth_methods(&pg),
            "postgres|trust\napp_md5|md5\napp_plain|password\nall|scram-sha-256\n"
        );
    }
}

#[test]
fn missing_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let err = Cluster::start_in(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoServerBinaries);
    assert!(err.to_string().contains("has no initdb"), "{err}");
}
