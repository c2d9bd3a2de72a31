//! The connection against a real server: authentication methods, describe, simple queries,
//! COPY OUT with notices and errors, and the connection's state afterwards.

use std::os::unix::fs::PermissionsExt;

use pgarrow_protocol::{Config, Connection, ErrorKind};
use pgarrow_testkit::{
    Cluster, MD5_PASSWORD, MD5_USER, PLAIN_PASSWORD, PLAIN_USER, SCRAM_PASSWORD, SCRAM_USER,
};

fn setup(prefix: &str) -> Option<(&'static Cluster, String)> {
    let pg = Cluster::shared()?;
    let db = pg.create_database(prefix).expect("create database");
    Some((pg, db))
}

/// A new database with `sql` run in it, and a connection to it.
async fn connected(prefix: &str, sql: &str) -> Option<(&'static Cluster, String, Connection)> {
    let (pg, db) = setup(prefix)?;
    pg.psql(&db, sql).expect("setup script");
    let conn = connect(&pg.url(&db)).await;
    Some((pg, db, conn))
}

async fn connect(url: &str) -> Connection {
    Connection::connect(&Config::parse(url).unwrap())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Reads a whole COPY and returns its bytes and the server's row count.
///
/// It drains what is buffered before each `fill`, as pgarrow's export loop does: whole
/// CopyData messages through a `walk` (every other time stopping half-way into the last one
/// taken, as a decoder does at a full batch), and through `buffered` what is left (taking
/// every other piece in two halves).
async fn read_copy(
    conn: &mut Connection,
    sql: &str,
) -> Result<(Vec<u8>, Option<u64>), pgarrow_protocol::Error> {
    let mut copy = conn.copy_out(sql).await?;
    let mut data = Vec::new();
    let mut split = false;
    loop {
        loop {
            if let Some(mut walk) = copy.walk() {
                let buf = walk.buf();
                let mut last = None;
                for payload in walk.by_ref() {
                    data.extend_from_slice(&buf[payload.clone()]);
                    last = Some(payload);
                }
                // Give back the second half of the last payload taken, every other time.
                let stopped = match last {
                    Some(p) if split => {
                        let half = p.start + (p.end - p.start).div_ceil(2);
                        data.truncate(data.len() - (p.end - half));
                        Some(half)
                    }
                    _ => None,
                };
                split = !split;
                copy.consume_walk(walk.finish(stopped));
            }
            let Some(chunk) = copy.buffered() else {
                break;
            };
            assert!(!chunk.is_empty(), "buffered hands out data or None");
            let n = if split {
                chunk.len().div_ceil(2)
            } else {
                chunk.len()
            };
            split = !split;
            data.extend_from_slice(&chunk[..n]);
            copy.consume(n);
        }
        match copy.fill().await? {
            [] => break,
            chunk => {
                let n = chunk.len();
                data.extend_from_slice(chunk);
                copy.consume(n);
            }
        }
    }
    assert_eq!(copy.bytes(), data.len() as u64);
    Ok((data, copy.rows()))
}

/// [`read_copy`] of `COPY (select) TO STDOUT (FORMAT binary)`.
async fn copy_query(
    conn: &mut Connection,
    select: &str,
) -> Result<(Vec<u8>, Option<u64>), pgarrow_protocol::Error> {
    read_copy(conn, &format!("COPY ({select}) TO STDOUT (FORMAT binary)")).await
}

#[tokio::test(flavor = "current_thread")]
async fn every_password_method_and_the_socket() {
    let Some((pg, db)) = setup("auth") else {
        return;
    };
    for (user, password) in [
        (SCRAM_USER, SCRAM_PASSWORD),
        (MD5_USER, MD5_PASSWORD),
        (PLAIN_USER, PLAIN_PASSWORD),
    ] {
        let mut conn = connect(&pg.url_for(user, password, &db)).await;
        let rows = conn.simple_query("SELECT current_user").await.unwrap();
        assert_eq!(rows, vec![vec![Some(user.to_owned())]]);
        assert_eq!(conn.parameter("client_encoding"), Some("UTF8"));
        assert_eq!(conn.parameter("application_name"), Some("pgarrow"));
        conn.close().await.unwrap();

        let wrong = Config::parse(&pg.url_for(user, "not the password", &db)).unwrap();
        let err = Connection::connect(&wrong).await.unwrap_err();
        assert_eq!(err.code(), Some("28P01"), "{user}: {err}");
        // sslmode=allow tries TLS next, which this server refuses: the server's first answer
        // is the one reported.
        let allow = format!(
            "{}?sslmode=allow",
            pg.url_for(user, "not the password", &db)
        );
        let err = Connection::connect(&Config::parse(&allow).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("28P01"), "{user}: {err}");
        assert!(!err.to_string().contains("not the password"));

        let mut none = Config::parse(&pg.url(&db)).unwrap();
        none.user = user.to_owned();
        let err = Connection::connect(&none).await.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Auth(_)),
            "{user} without a password: {err}"
        );
    }
    let mut conn = connect(&pg.socket_url(&db)).await;
    assert!(conn.backend_pid() > 0);
    assert!(!conn.is_tls());
    // As in libpq, a Unix socket never uses TLS, whatever sslmode says.
    let local = connect(&format!("{}&sslmode=require", pg.socket_url(&db))).await;
    assert!(!local.is_tls());
    assert!(conn.server_version_num() >= 100_000);
    assert_eq!(conn.simple_query("SELECT 1").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn require_auth_refuses_the_methods_it_does_not_name() {
    let Some((pg, db)) = setup("require_auth") else {
        return;
    };
    let with = |user: &str, password: &str, require: &str| {
        let url = format!("{}?require_auth={require}", pg.url_for(user, password, &db));
        Config::parse(&url).unwrap()
    };
    // Accepted: the method named, or one not refused.
    for (user, password, require) in [
        (SCRAM_USER, SCRAM_PASSWORD, "scram-sha-256"),
        (MD5_USER, MD5_PASSWORD, "md5,password"),
        (PLAIN_USER, PLAIN_PASSWORD, "!md5"),
    ] {
        let conn = Connection::connect(&with(user, password, require))
            .await
            .unwrap_or_else(|e| panic!("{user} with require_auth={require}: {e}"));
        conn.close().await.unwrap();
    }
    // Refused before any password is sent.
    for (user, password, require, asked) in [
        (
            PLAIN_USER,
            PLAIN_PASSWORD,
            "scram-sha-256",
            "a cleartext password",
        ),
        (MD5_USER, MD5_PASSWORD, "!md5", "an md5 password"),
        (SCRAM_USER, SCRAM_PASSWORD, "password", "SCRAM-SHA-256"),
    ] {
        let err = Connection::connect(&with(user, password, require))
            .await
            .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Auth(_)), "{user}: {err}");
        assert!(
            err.to_string()
                .contains(&format!("require_auth={require} refuses {asked}")),
            "{user}: {err}"
        );
    }
    // The test cluster trusts its local socket: "none" must be allowed for that.
    let trusting = format!("{}&require_auth=scram-sha-256", pg.socket_url(&db));
    let err = Connection::connect(&Config::parse(&trusting).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no authentication"), "{err}");
    let trusting = format!("{}&require_auth=none", pg.socket_url(&db));
    Connection::connect(&Config::parse(&trusting).unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn startup_errors_are_the_servers() {
    let Some((pg, _)) = setup("startup") else {
        return;
    };
    let err = Connection::connect(&Config::parse(&pg.url("no_such_db")).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("3D000"), "{err}");
    let refused = Config::parse("host=127.0.0.1 port=1 user=x dbname=x").unwrap();
    let err = Connection::connect(&refused).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Connect { .. }), "{err}");
    assert!(err.to_string().contains("x@127.0.0.1:1/x"), "{err}");
    let tls = Config::parse(&format!("{}?sslmode=require", pg.url("postgres"))).unwrap();
    let err = Connection::connect(&tls).await.unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn describe_without_running() {
    let tables =
        "CREATE TABLE t (a int, b numeric(12,2), c varchar(7)); CREATE TABLE side (n int);";
    let Some((_, _, mut conn)) = connected("describe", tables).await else {
        return;
    };
    let d = conn
        .describe("INSERT INTO side VALUES (1) RETURNING n")
        .await
        .unwrap();
    assert_eq!(d.columns.unwrap()[0].name, "n");
    // Described, not run.
    assert_eq!(
        conn.simple_query("SELECT count(*) FROM side")
            .await
            .unwrap(),
        vec![vec![Some("0".to_owned())]]
    );
    let d = conn
        .describe("SELECT a, b, c, a AS a FROM t")
        .await
        .unwrap();
    let cols = d.columns.unwrap();
    let shape: Vec<(&str, u32, i32)> = cols
        .iter()
        .map(|c| (c.name.as_str(), c.type_oid, c.type_modifier))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("a", 23, -1),
            ("b", 1700, (12 << 16 | 2) + 4),
            ("c", 1043, 7 + 4),
            ("a", 23, -1)
        ]
    );
    assert_eq!(
        conn.describe("SELECT $1::int").await.unwrap().params,
        vec![23]
    );
    assert_eq!(
        conn.describe("CREATE TABLE x (a int)")
            .await
            .unwrap()
            .columns,
        None
    );
    let err = conn.describe("SELECT * FROM missing").await.unwrap_err();
    assert_eq!(err.code(), Some("42P01"));
    let db_err = err.as_db_error().unwrap();
    assert!(db_err.message.contains("missing"));
    assert_eq!(db_err.position, Some(15));
    // Still usable after an error.
    assert_eq!(conn.simple_query("SELECT 2").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn copy_out_with_notices_and_counts() {
    let noisy = "CREATE FUNCTION noisy(g int) RETURNS int LANGUAGE plpgsql AS $$
         BEGIN IF g % 1000 = 0 THEN RAISE NOTICE 'at %', g; END IF; RETURN g; END $$;";
    let Some((pg, db, mut conn)) = connected("copy", noisy).await else {
        return;
    };
    let sql = "SELECT noisy(g) FROM generate_series(1, 5000) g";
    let expected = pg.copy_binary(&db, sql).unwrap();
    let (data, rows) = copy_query(&mut conn, sql).await.unwrap();
    assert_eq!(rows, Some(5000));
    assert_eq!(data, expected, "COPY bytes equal psql's");
    let notices = conn.take_notices();
    assert_eq!(notices.len(), 5);
    assert_eq!(notices[4].message, "at 5000");
    // Zero rows: header and trailer only.
    let (data, rows) = copy_query(&mut conn, "SELECT 1 WHERE false").await.unwrap();
    assert_eq!(rows, Some(0));
    assert_eq!(data.len(), 19 + 2);
    // A text COPY is reported as such.
    let copy = conn.copy_out("COPY (SELECT 1) TO STDOUT").await.unwrap();
    assert!(!copy.is_binary());
}

/// A COPY whose rows trickle in (the server pauses between them) arrives whole: each pause
/// leaves less than the raised receive low-water mark in the socket, which only the timed
/// read without waiting picks up. The same after a fast COPY, on the same connection.
#[tokio::test(flavor = "current_thread")]
async fn slow_and_fast_copies_arrive_whole() {
    let Some((pg, db)) = setup("trickle") else {
        return;
    };
    let mut conn = connect(&pg.url(&db)).await;
    let slow = "SELECT g, repeat('x', g * 1000) FROM generate_series(1, 6) g, \
                LATERAL (SELECT pg_sleep(0.03)) s";
    let fast = "SELECT g, repeat('y', g % 100) FROM generate_series(1, 300000) g";
    for sql in [slow, fast, slow] {
        let expected = pg.copy_binary(&db, sql).unwrap();
        // Not a speed limit: a lost wake-up hangs for ever, this turns it into a failure.
        let copy = copy_query(&mut conn, sql);
        let (data, _) = tokio::time::timeout(std::time::Duration::from_secs(120), copy)
            .await
            .expect("the COPY hung")
            .unwrap();
        assert_eq!(data, expected, "{sql}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn errors_before_and_during_copy_leave_the_connection_usable() {
    let Some((pg, db)) = setup("copyerr") else {
        return;
    };
    let mut conn = connect(&pg.url(&db)).await;
    let err = copy_query(&mut conn, "SELECT * FROM missing")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("42P01"));
    assert_eq!(conn.simple_query("SELECT 1").await.unwrap().len(), 1);

    let mut copy = conn
        .copy_out("COPY (SELECT g, 1/(g - 30000) FROM generate_series(1, 40000) g) TO STDOUT (FORMAT binary)")
        .await
        .unwrap();
    let mut bytes = 0;
    let err = loop {
        match copy.fill().await {
            Ok([]) => panic!("the copy should fail"),
            Ok(chunk) => {
                let n = chunk.len();
                bytes += n;
                copy.consume(n);
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), Some("22012"), "{err}");
    assert!(bytes > 0, "rows before the error arrived");
    drop(copy);
    assert_eq!(
        conn.simple_query("SELECT 'still here'").await.unwrap(),
        vec![vec![Some("still here".to_owned())]]
    );

    // A statement that is not a COPY is refused, and the connection stays usable.
    let err = conn.copy_out("SELECT 1").await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Protocol(_)), "{err}");
    assert_eq!(conn.simple_query("SELECT 1").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn an_abandoned_copy_poisons_the_connection() {
    let Some((pg, db)) = setup("abandon") else {
        return;
    };
    let mut conn = connect(&pg.url(&db)).await;
    let mut copy = conn
        .copy_out("COPY (SELECT g FROM generate_series(1, 100000) g) TO STDOUT (FORMAT binary)")
        .await
        .unwrap();
    let n = copy.fill().await.unwrap().len();
    copy.consume(n);
    drop(copy);
    let err = conn.simple_query("SELECT 1").await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Broken(_)), "{err}");
}

/// Writes `text` to a new file of `dir` with mode `mode`.
fn write_file(dir: &std::path::Path, name: &str, text: &str, mode: u32) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "current_thread")]
async fn passwords_from_the_password_file_and_services() {
    let Some((pg, db)) = setup("pgpass") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = pg.port();
    // The SCRAM password has a ':' that the file must escape; the md5 user matches a
    // wildcard line after a line for another database.
    let escaped = SCRAM_PASSWORD.replace('\\', "\\\\").replace(':', "\\:");
    let passfile = write_file(
        dir.path(),
        "pgpass",
        &format!(
            "# comment\n127.0.0.1:{port}:{db}:{SCRAM_USER}:{escaped}\n\
             127.0.0.1:{port}:otherdb:{MD5_USER}:wrong\n\
             *:*:*:{MD5_USER}:{MD5_PASSWORD}\n"
        ),
        0o600,
    );
    for user in [SCRAM_USER, MD5_USER] {
        let url = format!(
            "postgresql://{user}@127.0.0.1:{port}/{db}?passfile={passfile}&sslmode=disable"
        );
        let mut conn = connect(&url).await;
        let rows = conn.simple_query("SELECT current_user").await.unwrap();
        assert_eq!(rows, vec![vec![Some(user.to_owned())]]);
    }
    // A password given explicitly wins over the file.
    let url = format!("postgresql://{SCRAM_USER}:nope@127.0.0.1:{port}/{db}?passfile={passfile}");
    let err = Connection::connect(&Config::parse(&url).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("28P01"));
    // A file others may read is ignored, and the error says why.
    let loose = write_file(dir.path(), "loose", &format!("*:*:*:*:{escaped}\n"), 0o644);
    let url = format!("postgresql://{SCRAM_USER}@127.0.0.1:{port}/{db}?passfile={loose}");
    let err = Connection::connect(&Config::parse(&url).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Auth(_)), "{err}");
    assert!(err.to_string().contains("group or world access"), "{err}");

    // A service file supplies host, port, database and user; the password file the password.
    let services = write_file(
        dir.path(),
        "services",
        &format!(
            "[pgarrow_test]\nhost=127.0.0.1\nport={port}\ndbname={db}\nuser={MD5_USER}\n\
             passfile={passfile}\nstatement_timeout=1500\napplication_name=from-service\n"
        ),
        0o600,
    );
    let env = move |k: &str| match k {
        "PGSERVICEFILE" => Some(services.clone()),
        "PGSERVICE" => Some("pgarrow_test".to_owned()),
        _ => None,
    };
    let config = Config::parse_with_env("", &env).unwrap();
    let mut conn = Connection::connect(&config).await.unwrap();
    let rows = conn
        .simple_query(
            "SELECT current_user, current_setting('statement_timeout'), \
             current_setting('application_name')",
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![vec![
            Some(MD5_USER.to_owned()),
            Some("1500ms".to_owned()),
            Some("from-service".to_owned())
        ]]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn pgarrow_is_the_application_name_and_statement_timeout_applies() {
    let Some((pg, db)) = setup("appname") else {
        return;
    };
    let mut conn = connect(&format!("{}?statement_timeout=200ms", pg.url(&db))).await;
    let pid = conn.backend_pid();
    let seen = pg
        .psql(
            "postgres",
            &format!("SELECT application_name FROM pg_stat_activity WHERE pid = {pid}"),
        )
        .unwrap();
    assert_eq!(seen.trim(), "pgarrow");
    let err = copy_query(&mut conn, "SELECT pg_sleep(5)")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("57014"), "{err}");
    assert!(err.to_string().contains("statement timeout"), "{err}");
    assert!(conn.is_ready());
}
