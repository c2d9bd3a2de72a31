//! TLS against a real TLS-enabled server: every sslmode, root certificates, host name checks,
//! libpq's allow/prefer second attempts, SCRAM channel binding, client certificates,
//! sslnegotiation=direct, and COPY + cancel over TLS.

use std::path::Path;
use std::time::{Duration, Instant};

use pgarrow_protocol::{Config, Connection, Error, ErrorKind};
use pgarrow_testkit::tls::{CERT_USER, NO_TLS_USER, SERVER_NAME, TLS_ONLY_USER, TlsCluster};
use pgarrow_testkit::{Cluster, MD5_PASSWORD, MD5_USER, SCRAM_PASSWORD, SCRAM_USER};

/// Parses `url` with an environment that has only `HOME` (an empty directory: no
/// `~/.postgresql/root.crt`, no `.pgpass`), so the host's settings cannot leak in.
fn config(url: &str) -> Config {
    let home = std::env::temp_dir().join("pgarrow-tls-test-empty-home");
    std::fs::create_dir_all(&home).unwrap();
    let home = home.to_string_lossy().into_owned();
    Config::parse_with_env(url, &move |k| (k == "HOME").then(|| home.clone()))
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

async fn try_connect(url: &str) -> Result<Connection, Error> {
    Connection::connect(&config(url)).await
}

async fn connect(url: &str) -> Connection {
    try_connect(url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

fn assert_tls_error(err: &Error, needle: &str) {
    assert!(
        matches!(err.kind(), ErrorKind::Tls { .. }),
        "expected a TLS error, got {:?}: {err}",
        err.kind()
    );
    assert!(err.to_string().contains(needle), "{err}");
}

async fn current_user(conn: &mut Connection) -> String {
    conn.simple_query("SELECT current_user").await.unwrap()[0][0]
        .clone()
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn every_sslmode_and_root_certificate_rule() {
    let Some(pg) = TlsCluster::shared() else {
        return;
    };
    let ca = path(&pg.certs().ca_cert());
    let other_ca = path(&pg.certs().other_ca_cert());
    let url = |params: &str| pg.url_for(SCRAM_USER, SCRAM_PASSWORD, "postgres", params);

    // No verification: TLS, whatever the certificate.
    for mode in ["prefer", "require"] {
        let conn = connect(&url(&format!("sslmode={mode}"))).await;
        assert!(conn.is_tls(), "{mode}");
    }
    // allow and disable start in plain text; the server accepts that.
    for mode in ["allow", "disable"] {
        let conn = connect(&url(&format!("sslmode={mode}"))).await;
        assert!(!conn.is_tls(), "{mode}");
    }

    // verify-full: the chain and the host name.
    let full =
        format!("sslmode=verify-full&sslrootcert={ca}&host={SERVER_NAME}&hostaddr=127.0.0.1");
    let mut conn = connect(&url(&full)).await;
    assert!(conn.is_tls());
    assert_eq!(current_user(&mut conn).await, SCRAM_USER);
    // The certificate names pgarrow.test and localhost, not 127.0.0.1.
    let err = try_connect(&url(&format!("sslmode=verify-full&sslrootcert={ca}")))
        .await
        .unwrap_err();
    assert_tls_error(&err, "does not name the host");
    // verify-ca does not look at the name.
    let conn = connect(&url(&format!("sslmode=verify-ca&sslrootcert={ca}"))).await;
    assert!(conn.is_tls());
    // A root that did not sign the server certificate.
    for mode in ["verify-ca", "verify-full"] {
        let err = try_connect(&url(&format!(
            "sslmode={mode}&sslrootcert={other_ca}&host={SERVER_NAME}&hostaddr=127.0.0.1"
        )))
        .await
        .unwrap_err();
        assert_tls_error(&err, "not signed by a trusted root");
    }
    // libpq's rule: require with a root certificate verifies like verify-ca.
    let err = try_connect(&url(&format!("sslmode=require&sslrootcert={other_ca}")))
        .await
        .unwrap_err();
    assert_tls_error(&err, "not signed by a trusted root");
    // verify-* without any root certificate cannot work.
    let err = try_connect(&url("sslmode=verify-ca")).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Config(_)), "{err}");
    assert!(err.to_string().contains("root certificates"), "{err}");
    // sslrootcert=system implies verify-full and trusts the platform's roots, which do not
    // include our test CA (or, on a machine without a CA bundle, are missing).
    let err = try_connect(&url(&format!(
        "sslrootcert=system&host={SERVER_NAME}&hostaddr=127.0.0.1"
    )))
    .await
    .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Tls { .. }), "{err}");
    assert!(
        err.to_string().contains("not signed by a trusted root")
            || err.to_string().contains("no trusted root certificate"),
        "{err}"
    );
    let err = Config::parse(&url("sslrootcert=system&sslmode=require")).unwrap_err();
    assert!(err.to_string().contains("verify-full"), "{err}");
    // Passwords never show in TLS errors.
    let err = try_connect(&url(&format!("sslmode=verify-full&sslrootcert={other_ca}")))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains(SCRAM_PASSWORD), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn allow_and_prefer_try_the_other_way_when_authentication_rejects() {
    let Some(pg) = TlsCluster::shared() else {
        return;
    };
    let url = |user: &str, mode: &str| {
        pg.url_for(user, SCRAM_PASSWORD, "postgres", &format!("sslmode={mode}"))
    };
    // allow: plain first; pg_hba rejects plain for this user; the second attempt uses TLS.
    let mut conn = connect(&url(TLS_ONLY_USER, "allow")).await;
    assert!(conn.is_tls());
    assert_eq!(current_user(&mut conn).await, TLS_ONLY_USER);
    // prefer: TLS first; pg_hba rejects TLS for this user; the second attempt is plain.
    let mut conn = connect(&url(NO_TLS_USER, "prefer")).await;
    assert!(!conn.is_tls());
    assert_eq!(current_user(&mut conn).await, NO_TLS_USER);
    // Without a second chance, the server's rejection (28000) is the error.
    for (user, mode) in [(NO_TLS_USER, "require"), (TLS_ONLY_USER, "disable")] {
        let err = try_connect(&url(user, mode)).await.unwrap_err();
        assert_eq!(err.code(), Some("28000"), "{user} {mode}: {err}");
        assert!(err.to_string().contains("pg_hba.conf"), "{err}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn require_fails_closed_against_a_server_without_tls() {
    let Some(pg) = Cluster::shared() else {
        return;
    };
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = format!(
            "{}?sslmode={mode}&sslrootcert=/nonexistent",
            pg.url("postgres")
        );
        let err = try_connect(&url).await;
        let err = err.unwrap_err();
        // verify-* check their root file first; require asks the server.
        if mode == "require" {
            assert_tls_error(&err, "the server does not support TLS, but sslmode=require");
        } else {
            assert!(matches!(err.kind(), ErrorKind::Tls { .. }), "{mode}: {err}");
        }
    }
    // prefer falls back to plain text.
    let conn = connect(&format!("{}?sslmode=prefer", pg.url("postgres"))).await;
    assert!(!conn.is_tls());
}

#[tokio::test(flavor = "current_thread")]
async fn channel_binding() {
    let Some(pg) = TlsCluster::shared() else {
        return;
    };
    let url =
        |user: &str, password: &str, params: &str| pg.url_for(user, password, "postgres", params);
    // Bound by default (prefer) and on request.
    for cb in ["prefer", "require"] {
        let mut conn = connect(&url(
            SCRAM_USER,
            SCRAM_PASSWORD,
            &format!("sslmode=require&channel_binding={cb}"),
        ))
        .await;
        assert!(conn.is_channel_bound(), "{cb}");
        assert_eq!(current_user(&mut conn).await, SCRAM_USER);
    }
    let conn = connect(&url(
        SCRAM_USER,
        SCRAM_PASSWORD,
        "sslmode=require&channel_binding=disable",
    ))
    .await;
    assert!(conn.is_tls() && !conn.is_channel_bound());
    // Plain text: SCRAM without binding.
    let conn = connect(&url(SCRAM_USER, SCRAM_PASSWORD, "sslmode=disable")).await;
    assert!(!conn.is_channel_bound());

    // require refuses every way of authenticating that does not bind.
    let cases = [
        (MD5_USER, MD5_PASSWORD, "sslmode=require", "md5 password"),
        (
            pgarrow_testkit::PLAIN_USER,
            pgarrow_testkit::PLAIN_PASSWORD,
            "sslmode=require",
            "cleartext password",
        ),
        ("postgres", "", "sslmode=require", "without channel binding"),
        (
            SCRAM_USER,
            SCRAM_PASSWORD,
            "sslmode=prefer&sslnegotiation=postgres",
            "",
        ),
    ];
    for (user, password, params, needle) in cases {
        let params = format!("{params}&channel_binding=require");
        if needle.is_empty() {
            // prefer + require over TLS works.
            assert!(
                connect(&url(user, password, &params))
                    .await
                    .is_channel_bound()
            );
            continue;
        }
        let err = try_connect(&url(user, password, &params))
            .await
            .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Auth(_)), "{user}: {err}");
        assert!(err.to_string().contains(needle), "{user}: {err}");
    }
    let certs = pg.certs();
    let err = try_connect(&url(
        CERT_USER,
        "",
        &format!(
            "sslmode=require&channel_binding=require&sslcert={}&sslkey={}",
            path(&certs.client_cert()),
            path(&certs.client_key())
        ),
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("without channel binding"), "{err}");
    // No TLS at all.
    let Some(plain) = Cluster::shared() else {
        return;
    };
    let err = try_connect(&format!(
        "{}?channel_binding=require",
        plain.url_for(SCRAM_USER, SCRAM_PASSWORD, "postgres")
    ))
    .await
    .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Auth(_)), "{err}");
    assert!(err.to_string().contains("does not use TLS"), "{err}");
    let err = Config::parse("host=h sslmode=disable channel_binding=require").unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Config(_)), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn client_certificates() {
    let Some(pg) = TlsCluster::shared() else {
        return;
    };
    let certs = pg.certs();
    let ca = path(&certs.ca_cert());
    let cert = path(&certs.client_cert());
    let key = path(&certs.client_key());
    let url = |params: &str| pg.url_for(CERT_USER, "", "postgres", params);
    let mut conn = connect(&url(&format!(
        "sslmode=verify-full&sslrootcert={ca}&host={SERVER_NAME}&hostaddr=127.0.0.1&sslcert={cert}&sslkey={key}"
    )))
    .await;
    assert_eq!(current_user(&mut conn).await, CERT_USER);
    // Without a certificate the server refuses (28000, pg_hba's cert method).
    let err = try_connect(&url("sslmode=require")).await.unwrap_err();
    assert_eq!(err.code(), Some("28000"), "{err}");
    // A key file others may read is refused, as libpq does.
    let dir = tempfile::tempdir().unwrap();
    let loose = dir.path().join("loose.key");
    std::fs::copy(&key, &loose).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let err = try_connect(&url(&format!(
        "sslmode=require&sslcert={cert}&sslkey={}",
        path(&loose)
    )))
    .await
    .unwrap_err();
    assert_tls_error(&err, "group or world access");
    // The server's key does not belong to the client certificate.
    let wrong = dir.path().join("wrong.key");
    std::fs::copy(certs.server_key(), &wrong).unwrap();
    let err = try_connect(&url(&format!(
        "sslmode=require&sslcert={cert}&sslkey={}",
        path(&wrong)
    )))
    .await
    .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Tls { .. } | ErrorKind::Db(_)),
        "{err}"
    );
    let err = try_connect(&url(&format!("sslmode=require&sslcert={cert}")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("without a key"), "{err}");
    let err = try_connect(&url(
        "sslmode=require&sslcert=/nonexistent.crt&sslkey=/nonexistent.key",
    ))
    .await
    .unwrap_err();
    assert_tls_error(&err, "/nonexistent.crt");
}

#[tokio::test(flavor = "current_thread")]
async fn direct_negotiation() {
    let Some(pg) = TlsCluster::shared() else {
        return;
    };
    let url = pg.url_for(
        SCRAM_USER,
        SCRAM_PASSWORD,
        "postgres",
        "sslmode=require&sslnegotiation=direct",
    );
    let result = try_connect(&url).await;
    if pg.server_version_num() >= 170_000 {
        let conn = result.unwrap();
        assert!(conn.is_tls());
    } else {
        // PostgreSQL before 17 reads the ClientHello as a startup packet and hangs up.
        let err = result.unwrap_err();
        assert_tls_error(&err, "sslnegotiation=direct needs PostgreSQL 17 or later");
    }
    // Direct TLS without requiring TLS is refused up front, as in libpq.
    let err = Config::parse(&pg.url_for(SCRAM_USER, "", "postgres", "sslnegotiation=direct"))
        .unwrap_err();
    assert!(err.to_string().contains("sslnegotiation=direct"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn copy_and_cancel_over_tls() {
    let Some(pg) = TlsCluster::shared() else {
        return;
    };
    let db = pg.create_database("tlscopy").unwrap();
    pg.psql(
        &db,
        "CREATE FUNCTION slow(g int) RETURNS int LANGUAGE plpgsql AS $$
         BEGIN IF g > 2000 THEN PERFORM pg_sleep(0.05); END IF; RETURN g; END $$;",
    )
    .unwrap();
    let url = pg.url_for(SCRAM_USER, SCRAM_PASSWORD, &db, "sslmode=require");
    let mut conn = connect(&url).await;
    let expected = pg
        .copy_binary(
            &db,
            "SELECT g, repeat('x', g % 100) FROM generate_series(1, 20000) g",
        )
        .unwrap();
    let mut copy = conn
        .copy_out(
            "COPY (SELECT g, repeat('x', g % 100) FROM generate_series(1, 20000) g) TO STDOUT \
             (FORMAT binary)",
        )
        .await
        .unwrap();
    let mut data = Vec::new();
    loop {
        let chunk = copy.fill().await.unwrap();
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        data.extend_from_slice(chunk);
        copy.consume(n);
    }
    assert_eq!(copy.rows(), Some(20000));
    drop(copy);
    assert_eq!(data, expected, "COPY over TLS equals psql's bytes");

    // A slow COPY, cancelled over TLS: the connection comes back usable.
    let token = conn.cancel_token();
    assert!(token.uses_tls());
    let mut copy = conn
        .copy_out(
            "COPY (SELECT slow(g) FROM generate_series(1, 100000) g) TO STDOUT (FORMAT binary)",
        )
        .await
        .unwrap();
    let n = copy.fill().await.unwrap().len();
    copy.consume(n);
    let start = Instant::now();
    copy.cancel().await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        conn.simple_query("SELECT 'usable'").await.unwrap(),
        vec![vec![Some("usable".to_owned())]]
    );
    conn.close().await.unwrap();
}
