//! The `pgarrow` command over TLS, against a TLS-enabled scratch cluster: verify-full with a
//! root certificate, refused certificates and channel binding as one-line errors, client
//! certificates, and Ctrl-C cancelling a query over TLS.

mod common;

use std::time::Duration;

use common::*;
use pgarrow_testkit::activity::{CANCEL_REACHES_BACKEND, backend_gone_within, wait_for_pid};
use pgarrow_testkit::tls::{CERT_USER, SERVER_NAME, TlsCluster};
use pgarrow_testkit::{MD5_PASSWORD, MD5_USER, SCRAM_PASSWORD, SCRAM_USER};

fn path(p: &std::path::Path) -> String {
    p.to_str().unwrap().to_owned()
}

#[test]
fn verify_full_export_and_refusals() {
    let Some(pg) = TlsCluster::shared() else {
        return;
    };
    let ca = path(&pg.certs().ca_cert());
    let verify_full =
        format!("sslmode=verify-full&sslrootcert={ca}&host={SERVER_NAME}&hostaddr=127.0.0.1");
    let dir = tempdir();
    let target = dir.path().join("out.parquet");
    let out = run(pgarrow([
        "export",
        "--url",
        &pg.url_for(SCRAM_USER, SCRAM_PASSWORD, "postgres", &verify_full),
        "--query",
        "SELECT g::bigint AS g, ssl FROM generate_series(1, 1000) g, \
         pg_stat_ssl WHERE pid = pg_backend_pid()",
        "-o",
        path_str(&target),
    ]));
    let summary = assert_success(&out);
    // The password is nowhere: not in the summary, not in the file (metadata included).
    let bytes = std::fs::read(&target).unwrap();
    let secret = SCRAM_PASSWORD.as_bytes();
    assert!(!bytes.windows(secret.len()).any(|w| w == secret));
    assert!(!summary.contains(SCRAM_PASSWORD), "{summary}");
    let batches = read_parquet(&target);
    assert_eq!(row_count(&batches), 1000);
    use arrow_array::cast::AsArray;
    let ssl = batches[0].column_by_name("ssl").unwrap().as_boolean();
    assert!(ssl.value(0), "the session used TLS");
    assert_dir_holds(dir.path(), &["out.parquet"]);

    let other_ca = path(&pg.certs().other_ca_cert());
    let cases = [
        (
            pg.url_for(
                SCRAM_USER,
                SCRAM_PASSWORD,
                "postgres",
                &format!("sslmode=verify-full&sslrootcert={other_ca}&host={SERVER_NAME}&hostaddr=127.0.0.1"),
            ),
            vec!["TLS error", "not signed by a trusted root"],
        ),
        (
            pg.url_for(
                SCRAM_USER,
                SCRAM_PASSWORD,
                "postgres",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
            vec!["TLS error", "does not name the host"],
        ),
        (
            pg.url_for(
                MD5_USER,
                MD5_PASSWORD,
                "postgres",
                "sslmode=require&channel_binding=require",
            ),
            vec!["authentication failed", "channel_binding=require", "md5"],
        ),
    ];
    for (url, needles) in cases {
        let line = export_connection_error(&url, &["--query", "SELECT 1"], "x.parquet", &needles);
        assert!(
            !line.contains(SCRAM_PASSWORD) && !line.contains(MD5_PASSWORD),
            "{line}"
        );
    }
}

#[test]
fn client_certificate_login() {
    let Some(pg) = TlsCluster::shared() else {
        return;
    };
    let certs = pg.certs();
    let url = pg.url_for(
        CERT_USER,
        "",
        "postgres",
        &format!(
            "sslmode=verify-full&sslrootcert={}&host={SERVER_NAME}&hostaddr=127.0.0.1&\
             sslcert={}&sslkey={}",
            path(&certs.ca_cert()),
            path(&certs.client_cert()),
            path(&certs.client_key())
        ),
    );
    let out = run(pgarrow([
        "schema",
        "--url",
        &url,
        "--query",
        "SELECT current_user AS who",
    ]));
    let stdout = stdout(&out);
    assert_success(&out);
    assert!(stdout.contains("who"), "{stdout}");
}

#[test]
fn ctrl_c_cancels_over_tls() {
    let Some(pg) = TlsCluster::shared() else {
        return;
    };
    let dir = tempdir();
    let target = dir.path().join("out.parquet");
    let url = pg.url_for(SCRAM_USER, SCRAM_PASSWORD, "postgres", "sslmode=require");
    let mut cmd = pgarrow(["export", "--url", &url, "-o", path_str(&target)]);
    cmd.args(["--query", "SELECT 1 AS x FROM pg_sleep(600)"]);
    let child = spawn(cmd);
    // The session's backend, running the COPY over TLS.
    let find = "SELECT a.pid FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                WHERE a.application_name = 'pgarrow' AND a.state = 'active' AND s.ssl";
    let backend = wait_for_pid(pg.cluster(), find, Duration::from_secs(60));
    let (out, _) = interrupt(child, "INT", Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert_dir_holds(dir.path(), &[]);
    // Only the cancel request stops a sleeping backend so fast.
    backend_gone_within(pg.cluster(), backend, CANCEL_REACHES_BACKEND);
}
