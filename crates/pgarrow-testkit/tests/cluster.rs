//! Integration tests of the ephemeral clusters (they fail without PostgreSQL
//! binaries, unless `PGARROW_ALLOW_SKIP=1` skips them loudly).

#[path = "../../pgarrow-scratch/tests/support/psql.rs"]
mod psql;

use std::process::{Command, Stdio};

use pgarrow_testkit::{
    Cluster, MD5_PASSWORD, MD5_USER, PLAIN_PASSWORD, PLAIN_USER, SCRAM_PASSWORD, SCRAM_USER,
};
use psql::{host_auth_methods, psql_url, stdout, superuser};

#[test]
fn shared_cluster_basics() {
    let Some(pg) = Cluster::shared() else { return };
    assert!(pg.port() > 0);
    assert!(
        pg.server_version_num() >= 90_000,
        "{}",
        pg.server_version_num()
    );
    assert!(pg.bin_dir().join("pg_ctl").is_file());
    assert!(
        pg.socket_dir()
            .join(format!(".s.PGSQL.{}", pg.port()))
            .exists()
    );
    // The same cluster every time.
    assert!(std::ptr::eq(pg, Cluster::shared().unwrap()));

    assert_eq!(pg.psql("postgres", "SELECT 1+1").unwrap(), "2\n");
    assert_eq!(
        pg.psql("postgres", "SELECT 1; SELECT 'a', NULL::text, 'b'")
            .unwrap(),
        "1\na||b\n"
    );
    let version = pg.psql("postgres", "SHOW server_version_num").unwrap();
    assert_eq!(
        version.trim().parse::<u32>().unwrap(),
        pg.server_version_num()
    );
}

/// The pgvector tests' cluster (opt-in: skipped loudly without pgvector, unless
/// `PGARROW_REQUIRE_PGVECTOR=1`) has the three types of pgvector 0.7 and later.
#[test]
fn pgvector_cluster_has_vector_halfvec_and_sparsevec() {
    let Some(pg) = pgarrow_testkit::pgvector_cluster() else {
        return;
    };
    assert!(std::ptr::eq(
        pg,
        pgarrow_testkit::pgvector_cluster().unwrap()
    ));
    let db = pg.create_database("pgvector").unwrap();
    let out = pg
        .psql(
            &db,
            "CREATE EXTENSION vector; \
             SELECT '[1,2]'::vector, '[1,2]'::halfvec, '{1:1}/3'::sparsevec",
        )
        .unwrap();
    assert_eq!(out, "[1,2]|[1,2]|{1:1}/3\n");
}

#[test]
fn psql_errors_include_stderr() {
    let Some(pg) = Cluster::shared() else { return };
    let script = "SELECT 1;\nSELECT * FROM no_such_table;\nSELECT 2";
    let err = pg.psql("postgres", script).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("no_such_table"), "{message}");
    // Nothing after the failing statement ran (ON_ERROR_STOP).
    let db = pg.create_database("on_error_stop").unwrap();
    pg.psql(
        &db,
        "SELECT * FROM no_such_table; CREATE TABLE after_error (x int);",
    )
    .unwrap_err();
    let tables = pg.psql(
        &db,
        "SELECT count(*) FROM pg_class WHERE relname = 'after_error'",
    );
    assert_eq!(tables.unwrap(), "0\n");
    let err = pg.psql("no_such_database_xyz", "SELECT 1").unwrap_err();
    assert!(err.to_string().contains("no_such_database_xyz"), "{err}");
}

#[test]
fn create_database_makes_unique_databases() {
    let Some(pg) = Cluster::shared() else { return };
    let a = pg.create_database("Same Prefix!").unwrap();
    let b = pg.create_database("Same Prefix!").unwrap();
    assert_ne!(a, b);
    for name in [&a, &b] {
        assert!(name.starts_with("same_prefix__"), "{name}");
        assert!(
            name.ends_with(&format!("_{}", std::process::id())),
            "{name}"
        );
        assert!(
            name.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        );
    }
    let names = superuser(pg, "SELECT datname FROM pg_database");
    let names: Vec<&str> = names.lines().collect();
    assert!(names.contains(&a.as_str()), "{names:?}");
    assert!(names.contains(&b.as_str()), "{names:?}");
    pg.psql(&a, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);")
        .unwrap();
    assert_eq!(pg.psql(&a, "SELECT sum(x) FROM t").unwrap(), "3\n");
}

#[test]
fn create_database_from_many_threads() {
    let Some(pg) = Cluster::shared() else { return };
    let names: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| pg.create_database("threads").unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
}

#[test]
fn copy_binary_has_signature_and_trailer() {
    let Some(pg) = Cluster::shared() else { return };
    let bytes = pg.copy_binary("postgres", "SELECT 1::int4").unwrap();
    assert!(bytes.starts_with(b"PGCOPY\n\xff\r\n\0"), "{bytes:?}");
    assert!(bytes.ends_with(&[0xff, 0xff]), "{bytes:?}");
    // Exactly: header, one tuple with one 4-byte field, trailer.
    let expected = pgarrow_testkit::CopyBuilder::new()
        .row(&[Some(&1i32.to_be_bytes())])
        .trailer()
        .finish();
    assert_eq!(bytes, expected);
}

#[test]
fn urls_connect() {
    let Some(pg) = Cluster::shared() else { return };
    let out = psql_url(
        pg,
        &pg.url("postgres"),
        "SELECT current_user, inet_server_port()",
    );
    assert_eq!(stdout(&out), format!("postgres|{}", pg.port()));
    let out = psql_url(
        pg,
        &pg.socket_url("postgres"),
        "SELECT current_user, inet_server_port()",
    );
    // Over a Unix socket inet_server_port() is NULL.
    assert_eq!(stdout(&out), "postgres|");
}

#[test]
fn scram_auth_rejects_wrong_password_and_accepts_right_one() {
    let Some(pg) = Cluster::shared() else { return };
    // psql with PGPASSWORD against 127.0.0.1.
    let run = |password: &str| {
        Command::new(pg.psql_path())
            .args([
                "-X",
                "-w",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port().to_string(),
            ])
            .args([
                "-U",
                SCRAM_USER,
                "-d",
                "postgres",
                "-c",
                "SELECT current_user",
            ])
            .env("PGPASSWORD", password)
            .env("PGPASSFILE", "/dev/null")
            .stdin(Stdio::null())
            .output()
            .expect("run psql")
    };
    let wrong = run("wrong password");
    assert!(!wrong.status.success(), "wrong password accepted");
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    assert_eq!(stdout(&run(SCRAM_PASSWORD)), SCRAM_USER);

    // The same through url_for, whose password needs percent-encoding.
    let out = psql_url(
        pg,
        &pg.url_for(SCRAM_USER, SCRAM_PASSWORD, "postgres"),
        "SELECT 1",
    );
    assert_eq!(stdout(&out), "1");
    let out = psql_url(pg, &pg.url_for(SCRAM_USER, "nope", "postgres"), "SELECT 1");
    assert!(!out.status.success());
}

#[test]
fn md5_and_plain_roles() {
    let Some(pg) = Cluster::shared() else { return };
    let stored = superuser(
        pg,
        "SELECT rolname, left(rolpassword, 3) FROM pg_authid \
         WHERE rolname LIKE 'pgarrow%' ORDER BY rolname",
    );
    assert_eq!(
        stored,
        "pgarrow_md5|md5\npgarrow_plain|SCR\npgarrow_scram|SCR\n"
    );
    for (user, password) in [(MD5_USER, MD5_PASSWORD), (PLAIN_USER, PLAIN_PASSWORD)] {
        let out = psql_url(
            pg,
            &pg.url_for(user, password, "postgres"),
            "SELECT current_user",
        );
        assert_eq!(stdout(&out), user);
        let out = psql_url(
            pg,
            &pg.url_for(user, "wrong", "postgres"),
            "SELECT current_user",
        );
        assert!(!out.status.success(), "{user} accepted a wrong password");
    }
    assert_eq!(
        host_auth_methods(pg),
        "postgres|trust\npgarrow_md5|md5\npgarrow_plain|password\nall|scram-sha-256\n"
    );
}

#[test]
fn second_cluster_is_independent_and_gone_after_drop() {
    let Some(shared) = Cluster::shared() else {
        return;
    };
    let second = Cluster::start().unwrap();
    assert_ne!(second.port(), shared.port());
    assert_ne!(second.socket_dir(), shared.socket_dir());
    assert_eq!(second.psql("postgres", "SELECT 40+2").unwrap(), "42\n");
    let data_dir = second.data_dir().to_path_buf();
    let socket_dir = second.socket_dir().to_path_buf();
    let port = second.port();
    let url = second.url("postgres");
    assert!(data_dir.join("PG_VERSION").is_file());
    drop(second);

    assert!(!data_dir.exists(), "{} still exists", data_dir.display());
    assert!(
        !socket_dir.exists(),
        "{} still exists",
        socket_dir.display()
    );
    let out = Command::new(shared.psql_path())
        .args(["-X", "-w", "-h"])
        .arg(&socket_dir)
        .args([
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            "SELECT 1",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "socket connection to a dropped cluster succeeded"
    );
    let out = psql_url(shared, &url, "SELECT 1");
    assert!(
        !out.status.success(),
        "TCP connection to a dropped cluster succeeded"
    );
    // The shared cluster is untouched.
    assert_eq!(shared.psql("postgres", "SELECT 1").unwrap(), "1\n");
}

#[test]
fn watchdog_cleans_up_when_the_process_dies() {
    // A child process (this test binary running `watchdog_child`) starts a
    // cluster, prints where it is and then is killed without any cleanup.
    if Cluster::shared().is_none() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "watchdog_child", "--nocapture", "--ignored"])
        .env("PGARROW_TESTKIT_WATCHDOG_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(child.stdout.as_mut().unwrap());
        loop {
            line.clear();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "child ended without a cluster"
            );
            if line.starts_with("CLUSTER ") {
                break;
            }
        }
    }
    let root = std::path::PathBuf::from(line.trim().strip_prefix("CLUSTER ").unwrap());
    assert!(root.join("data/postmaster.pid").is_file());
    child.kill().unwrap();
    child.wait().unwrap();
    // The watchdog stops the server (pg_ctl -w) and removes the directory;
    // poll for that with a generous deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while root.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} not removed",
            root.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Helper for `watchdog_cleans_up_when_the_process_dies`; does nothing when
/// run normally.
#[test]
#[ignore = "helper run by watchdog_cleans_up_when_the_process_dies"]
fn watchdog_child() {
    if std::env::var_os("PGARROW_TESTKIT_WATCHDOG_CHILD").is_none() {
        return;
    }
    let cluster = Cluster::start().unwrap();
    println!("CLUSTER {}", cluster.socket_dir().display());
    // Wait to be killed; never drop the cluster.
    std::mem::forget(cluster);
    loop {
        std::thread::park();
    }
}
