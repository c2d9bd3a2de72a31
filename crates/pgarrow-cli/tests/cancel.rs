//! Stopping the `pgarrow` command: SIGINT (Ctrl-C) and SIGTERM during an export send a
//! CancelRequest, remove the temporary output and exit with status 130 within a couple of
//! seconds, and the server's backend is gone from pg_stat_activity within 2 seconds (polled
//! with a deadline). Also `--statement-timeout`, one-line error messages for failures a
//! scripted server produces, and passwords kept out of every error.

mod common;

#[path = "../../pgarrow-protocol/tests/support/fault_server.rs"]
mod fault_server;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use fault_server::{End, FaultServer, Script, Wait, msg};
use pgarrow_testkit::Cluster;

fn setup(prefix: &str) -> Option<(&'static Cluster, String)> {
    let pg = Cluster::shared()?;
    let db = pg.create_database(prefix).expect("create database");
    pg.psql(
        &db,
        "CREATE FUNCTION slow(g bigint) RETURNS bigint LANGUAGE plpgsql AS
         $$ BEGIN PERFORM pg_sleep(0.001); RETURN g; END $$;",
    )
    .unwrap();
    Some((pg, db))
}

/// The pid of the one backend of `db` running a COPY, once there is one (polled, no sleep).
fn copy_backend(pg: &Cluster, db: &str) -> i32 {
    let start = Instant::now();
    loop {
        let out = pg
            .psql(
                "postgres",
                &format!(
                    "SELECT pid FROM pg_stat_activity WHERE datname = '{db}' \
                     AND application_name = 'pgarrow' AND query LIKE 'COPY %' \
                     AND state = 'active'"
                ),
            )
            .unwrap();
        if let Ok(pid) = out.trim().parse() {
            return pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the COPY never started"
        );
    }
}

/// Polls pg_stat_activity until backend `pid` is gone; fails after `limit`.
fn assert_backend_gone_within(pg: &Cluster, pid: i32, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let out = pg
            .psql(
                "postgres",
                &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"),
            )
            .unwrap();
        if out.trim() == "0" {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "backend {pid} still in pg_stat_activity after {limit:?}"
        );
    }
}

/// Starts an export of `query` into `dir/out.parquet`, interrupts it with `signal` once the
/// server runs the COPY, and checks everything that must follow.
fn interrupt(pg: &Cluster, db: &str, query: &str, signal_name: &str) {
    let dir = tempdir();
    let target = dir.path().join("out.parquet");
    let mut cmd = pgarrow([
        "export",
        "--url",
        &pg.url(db),
        "--query",
        query,
        "-o",
        path_str(&target),
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn pgarrow");
    let pid = child.id();
    let backend = copy_backend(pg, db);
    let sent = Instant::now();
    assert!(signal(pid, signal_name), "kill -{signal_name} {pid}");
    let out = wait_within(child, Duration::from_secs(30));
    let took = sent.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{signal_name}: {err}");
    assert!(
        took < Duration::from_secs(3),
        "{signal_name}: exited {took:?} after the signal"
    );
    assert_eq!(err, "pgarrow: interrupted; no output was written\n");
    assert!(out.stdout.is_empty());
    assert_dir_holds(dir.path(), &[]);
    let gone = assert_backend_gone_within(pg, backend, Duration::from_secs(2));
    eprintln!("{signal_name} on {query:?}: exit after {took:?}, backend gone {gone:?} later");
}

#[test]
fn sigint_and_sigterm_cancel_a_streaming_export() {
    let Some((pg, db)) = setup("cli_sigint") else {
        return;
    };
    // Rows one by one, slowly, forever (a set-returning function in the select list streams).
    let query = "SELECT slow(generate_series(1, 1000000000)) AS g";
    interrupt(pg, &db, query, "INT");
    interrupt(pg, &db, query, "TERM");
}

#[test]
fn sigint_cancels_a_query_that_computes_before_its_first_row() {
    let Some((pg, db)) = setup("cli_sigint_compute") else {
        return;
    };
    // Nothing reaches the client while the server sleeps, and the server would not notice
    // a closed socket: only the CancelRequest stops it within the deadline.
    interrupt(pg, &db, "SELECT 1 AS x FROM pg_sleep(600)", "INT");
}

#[test]
fn statement_timeout_reaches_the_server() {
    let Some((pg, db)) = setup("cli_statement_timeout") else {
        return;
    };
    let dir = tempdir();
    let target = dir.path().join("out.parquet");
    let out = run(pgarrow([
        "export",
        "--url",
        &pg.url(&db),
        "--statement-timeout",
        "300ms",
        "--query",
        "SELECT 1 AS x FROM pg_sleep(30)",
        "-o",
        path_str(&target),
    ]));
    assert_error(
        &out,
        &["canceling statement due to statement timeout", "57014"],
    );
    assert_dir_holds(dir.path(), &[]);
    for bad in ["soon", "1.5s", "3 weeks"] {
        let out = run(pgarrow([
            "export",
            "--url",
            &pg.url(&db),
            "--statement-timeout",
            bad,
            "--query",
            "SELECT 1",
            "--to",
            "null",
        ]));
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--statement-timeout"), "{bad}");
    }
}

/// Runs a fault server on a thread of its own (the test thread waits for the binary).
fn fault_server(script: Script) -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let server = FaultServer::start(script).await;
            tx.send(server.port()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

#[test]
fn failures_a_scripted_server_produces_are_one_line_and_leave_nothing() {
    let login = msg::login();
    let described = msg::described(&[("g", 23)]);
    let catalog = msg::catalog(&["integer"]);
    let rows = [msg::copy_header(), msg::int4_tuple(1)].concat();
    let multi_line = msg::error("ERROR", "P0001", "first line\nsecond line\n\tthird line");
    let cases: Vec<(Vec<u8>, End, &[&str])> = vec![
        (
            [
                msg::copy_out_response(1),
                msg::copy_data(&rows),
                multi_line,
                msg::ready(),
            ]
            .concat(),
            End::Idle,
            &["ERROR: first line second line third line (SQLSTATE P0001)"],
        ),
        (
            [msg::copy_out_response(1), msg::copy_data(&rows)].concat(),
            End::Close,
            &["the server closed the connection unexpectedly"],
        ),
        (
            [
                msg::copy_out_response(1),
                msg::copy_data(&rows),
                msg::raw(b'!', b""),
            ]
            .concat(),
            End::Hang,
            &["protocol error", "unknown message tag"],
        ),
        (
            [msg::copy_out_response(1), msg::copy_data(&rows)].concat(),
            End::Hang,
            &["timed out", "read_timeout"],
        ),
    ];
    for (copy, end, needles) in cases {
        let mut script = Script::new(vec![
            (Wait::Startup, login.clone()),
            (Wait::Sync, described.clone()),
            (Wait::Query, catalog.clone()),
            (Wait::Query, copy),
        ]);
        script.end = end;
        let port = fault_server(script);
        let dir = tempdir();
        let target = dir.path().join("out.arrow");
        let out = run(pgarrow([
            "export",
            "--url",
            &format!(
                "postgresql://fault:hunter2-secret@127.0.0.1:{port}/fault?sslmode=disable&\
                 read_timeout=300ms"
            ),
            "--query",
            "SELECT g FROM t",
            "--batch-rows",
            "1",
            "-o",
            path_str(&target),
        ]));
        let line = assert_error(&out, needles);
        assert!(!line.contains("hunter2"), "{line}");
        assert_dir_holds(dir.path(), &[]);
    }
}

#[test]
fn passwords_stay_out_of_every_error() {
    let Some((pg, db)) = setup("cli_redaction") else {
        return;
    };
    let secret = "hunter2-s3cret";
    let port = pg.port();
    let closed = closed_port();
    let urls = [
        // Wrong password.
        format!(
            "postgresql://{}:{secret}@127.0.0.1:{port}/{db}",
            pgarrow_testkit::SCRAM_USER
        ),
        // Nobody listening.
        format!("postgresql://u:{secret}@127.0.0.1:{closed}/db"),
        // TLS required, server without TLS.
        format!("postgresql://u:{secret}@127.0.0.1:{port}/{db}?sslmode=require"),
        // Invalid settings.
        format!("postgresql://u:{secret}@127.0.0.1:{port}/{db}?sslmode=sometimes"),
        format!("postgresql://u:{secret}@127.0.0.1:notaport/{db}"),
        format!("host=127.0.0.1 port={port} password={secret} bogus=1"),
        format!("host=127.0.0.1 password={secret} oops"),
    ];
    for url in urls {
        let out = run(pgarrow([
            "export", "--url", &url, "--query", "SELECT 1", "--to", "null",
        ]));
        let line = assert_error(&out, &[]);
        assert!(!line.contains(secret) && !line.contains("s3cret"), "{line}");
    }
}
