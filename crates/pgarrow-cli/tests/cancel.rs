//! Stopping the `pgarrow` command: SIGINT (Ctrl-C) and SIGTERM during an export send a
//! CancelRequest, remove the temporary output and exit with status 130 within a couple of
//! seconds, and the server's backend is gone from pg_stat_activity within 2 seconds (polled
//! with a deadline). Also `--statement-timeout`, one-line error messages for failures a
//! scripted server produces, and passwords kept out of every error.

mod common;

#[path = "../../pgarrow-protocol/tests/support/fault_server.rs"]
mod fault_server;

use std::time::Duration;

use common::*;
use fault_server::{End, FaultServer, Script, msg};
use pgarrow_testkit::activity::{
    CANCEL_REACHES_BACKEND, backend_gone_within, slow_database, wait_for_pid,
};

/// A new database holding `slow()`, with a directory of its own.
fn setup(prefix: &str) -> Option<Setup> {
    let (pg, db) = slow_database(prefix, "0.001")?;
    Some(Setup::on(pg, &db))
}

/// Starts an export of `query` into `out.parquet`, interrupts it with `signal` once the
/// server runs the COPY, and checks everything that must follow.
fn interrupt_export(t: &Setup, query: &str, signal_name: &str) {
    let target = t.path("out.parquet");
    let child = spawn(t.command("export", &["--query", query, "-o", path_str(&target)]));
    // The one backend of the database running pgarrow's COPY.
    let find = format!(
        "SELECT pid FROM pg_stat_activity WHERE datname = '{}' \
         AND application_name = 'pgarrow' AND query LIKE 'COPY %' AND state = 'active'",
        t.db
    );
    let backend = wait_for_pid(t.pg, &find, Duration::from_secs(60));
    let (out, took) = interrupt(child, signal_name, Duration::from_secs(30));
    assert_interrupted(&out, signal_name);
    assert!(
        took < Duration::from_secs(3),
        "{signal_name}: exited {took:?} after the signal"
    );
    t.assert_holds(&[]);
    let gone = backend_gone_within(t.pg, backend, CANCEL_REACHES_BACKEND);
    eprintln!("{signal_name} on {query:?}: exit after {took:?}, backend gone {gone:?} later");
}

#[test]
fn sigint_and_sigterm_cancel_a_streaming_export() {
    let Some(t) = setup("cli_sigint") else {
        return;
    };
    // Rows one by one, slowly, forever (a set-returning function in the select list streams).
    let query = "SELECT slow(generate_series(1, 1000000000)) AS g";
    interrupt_export(&t, query, "INT");
    interrupt_export(&t, query, "TERM");
}

#[test]
fn sigint_cancels_a_query_that_computes_before_its_first_row() {
    let Some(t) = setup("cli_sigint_compute") else {
        return;
    };
    // Nothing reaches the client while the server sleeps, and the server would not notice
    // a closed socket: only the CancelRequest stops it within the deadline.
    interrupt_export(&t, "SELECT 1 AS x FROM pg_sleep(600)", "INT");
}

#[test]
fn statement_timeout_reaches_the_server() {
    let Some(t) = setup("cli_statement_timeout") else {
        return;
    };
    let needles = ["canceling statement due to statement timeout", "57014"];
    let args = [
        "--statement-timeout",
        "300ms",
        "--query",
        "SELECT 1 AS x FROM pg_sleep(30)",
    ];
    export_error(&t.url, &args, "out.parquet", &needles);
    for bad in ["soon", "1.5s", "3 weeks"] {
        let out = t.export(&[
            "--statement-timeout",
            bad,
            "--query",
            "SELECT 1",
            "--to",
            "null",
        ]);
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
    let multi_line = msg::error("ERROR", "P0001", "first line\nsecond line\n\tthird line");
    let cases: Vec<(Vec<u8>, End, &[&str])> = vec![
        (
            msg::copy_row_1_then(&[multi_line, msg::ready()]),
            End::Idle,
            &["ERROR: first line second line third line (SQLSTATE P0001)"],
        ),
        (
            msg::copy_row_1_then(&[]),
            End::Close,
            &["the server closed the connection unexpectedly"],
        ),
        (
            msg::copy_row_1_then(&[msg::raw(b'!', b"")]),
            End::Hang,
            &["protocol error", "unknown message tag"],
        ),
        (
            msg::copy_row_1_then(&[]),
            End::Hang,
            &["timed out", "read_timeout"],
        ),
    ];
    for (copy, end, needles) in cases {
        let port = fault_server(Script::read_only_export(copy, end));
        let url = format!(
            "postgresql://fault:hunter2-secret@127.0.0.1:{port}/fault?sslmode=disable&\
             read_timeout=300ms"
        );
        let args = ["--query", "SELECT g FROM t", "--batch-rows", "1"];
        let line = export_error(&url, &args, "out.arrow", needles);
        assert!(!line.contains("hunter2"), "{line}");
    }
}

#[test]
fn passwords_stay_out_of_every_error() {
    let Some(t) = setup("cli_redaction") else {
        return;
    };
    let (db, secret) = (&t.db, "hunter2-s3cret");
    let port = t.pg.port();
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
        let mut cmd = pgarrow(["export", "--url", &url]);
        cmd.args(["--query", "SELECT 1", "--to", "null"]);
        let line = assert_connection_error(&run(cmd), &[]);
        assert!(!line.contains(secret) && !line.contains("s3cret"), "{line}");
    }
}
