//! Failures during an export, each checked for its exact error class, the rows delivered
//! before it, and that no file is left at the target path (nor any temporary file):
//!
//! - a scripted fake server for what a real server cannot be made to do on demand: errors
//!   before the COPY header, between rows and after the trailer, frames cut short, the
//!   connection closed at every byte of a whole export, unknown messages, absurd lengths, a
//!   wrong row count, a server that goes silent;
//! - a real server: division by zero at row N, statement_timeout mid-COPY,
//!   pg_terminate_backend mid-COPY, invalid UTF-8 from a SQL_ASCII database, and the server
//!   restarted mid-export.

#[path = "../../pgarrow-protocol/tests/support/fault_server.rs"]
mod fault_server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fault_server::{End, ErrorAt, FaultServer, Script, Wait, msg};
use pgarrow::protocol::ErrorKind as WireKind;
use pgarrow::{Client, ErrorKind, Export, ExportOptions, Source};
use pgarrow_io::{Format, Output, Sink, SinkOptions};
use pgarrow_testkit::Cluster;
use pgarrow_testkit::activity::slow_database;

/// An export into a Parquet file, written the way the CLI writes one (a temporary file,
/// renamed by `finish`).
struct FileExport<'c> {
    export: Export<'c>,
    sink: Sink,
}

impl<'c> FileExport<'c> {
    /// Plans `source`, creates the file's sink at `target` and starts the COPY, `batch_rows`
    /// rows per batch.
    async fn start(
        client: &'c mut Client,
        source: &Source,
        batch_rows: usize,
        target: &Path,
    ) -> pgarrow::Result<FileExport<'c>> {
        let plan = client.describe(source).await?;
        let sink = Sink::create(
            Format::Parquet,
            Output::File(target.to_path_buf()),
            &plan.schema,
            &SinkOptions::default(),
        )
        .expect("sink");
        let mut options = ExportOptions::default();
        options.decode.batch_rows = batch_rows;
        let export = client.export_described(plan, &options).await?;
        Ok(FileExport { export, sink })
    }

    /// As [`FileExport::start`] with a query, once the first batch is written.
    async fn first_batch_written(
        client: &'c mut Client,
        sql: &str,
        batch_rows: usize,
        target: &Path,
    ) -> FileExport<'c> {
        let source = Source::query(sql);
        let mut export = FileExport::start(client, &source, batch_rows, target)
            .await
            .unwrap();
        assert!(export.write_next().await.unwrap(), "{sql}: no first batch");
        export
    }

    /// Writes the next batch; `false` at the end.
    async fn write_next(&mut self) -> pgarrow::Result<bool> {
        let Some(batch) = self.export.next_batch().await? else {
            return Ok(false);
        };
        self.sink.write(&batch).expect("write");
        Ok(true)
    }

    /// Writes every batch and finishes the file: the rows written.
    async fn finish(mut self) -> pgarrow::Result<u64> {
        while self.write_next().await? {}
        let rows = self.export.rows();
        self.sink.finish().expect("finish");
        Ok(rows)
    }

    /// Writes batches until the export fails, which it must; the file is left unfinished (and
    /// the sink dropped), the export given back.
    async fn until_error(mut self) -> (pgarrow::Error, Export<'c>) {
        loop {
            match self.write_next().await {
                Ok(true) => {}
                Ok(false) => panic!("the export should fail"),
                Err(e) => return (e, self.export),
            }
        }
    }
}

/// Exports `source` into a Parquet file at `target` (see [`FileExport`]), `batch_rows` rows per
/// batch. Returns the rows written.
async fn export_to_file(
    url: &str,
    source: &Source,
    batch_rows: usize,
    target: &Path,
) -> pgarrow::Result<u64> {
    let mut client = Client::connect(url).await?;
    FileExport::start(&mut client, source, batch_rows, target)
        .await?
        .finish()
        .await
}

/// A directory for one export's output, and the case it is for.
struct Out {
    dir: tempfile::TempDir,
    case: String,
}

impl Out {
    fn new(case: impl Into<String>) -> Out {
        Out {
            dir: tempfile::Builder::new()
                .prefix("pgarrow-faults")
                .tempdir()
                .unwrap(),
            case: case.into(),
        }
    }

    fn target(&self) -> PathBuf {
        self.dir.path().join("out.parquet")
    }

    /// Exports `sql` from `url` into [`Out::target`], `batch_rows` rows per batch.
    async fn export(&self, url: &str, sql: &str, batch_rows: usize) -> pgarrow::Result<u64> {
        export_to_file(url, &Source::query(sql), batch_rows, &self.target()).await
    }

    /// As [`Out::export`], which must fail: its error.
    async fn export_err(&self, url: &str, sql: &str, batch_rows: usize) -> pgarrow::Error {
        self.export(url, sql, batch_rows)
            .await
            .expect_err(&self.case)
    }

    /// Nothing at all: no target, no temporary file.
    fn assert_empty(&self) {
        let entries: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(entries.is_empty(), "{}: left behind {entries:?}", self.case);
    }
}

/// The wire protocol's error under `e`: raised while connecting or while working.
fn wire_kind(e: &pgarrow::Error) -> &WireKind {
    match e.kind() {
        ErrorKind::Protocol(p) | ErrorKind::Connect(p) => p.kind(),
        other => panic!("expected a protocol error, got {other:?}: {e}"),
    }
}

/// What the scripted server's export is of (see `Script::export`).
const SQL: &str = "SELECT g FROM t";

#[tokio::test(flavor = "current_thread")]
async fn scripted_server_faults() {
    let half_tuple = [1i16.to_be_bytes().as_slice(), &4i32.to_be_bytes(), &[0, 0]].concat();
    let cut_frame = msg::copy_data(&[msg::copy_header(), half_tuple].concat());
    type Check = fn(&pgarrow::Error) -> bool;
    let db_22012: Check = |e| e.code() == Some("22012");
    let cases: Vec<(&str, Vec<u8>, End, Check, u64)> = vec![
        (
            "error before the COPY header",
            msg::copy_failing(ErrorAt::Header),
            End::Idle,
            db_22012,
            0,
        ),
        (
            "error between rows",
            msg::copy_failing(ErrorAt::BetweenRows),
            End::Idle,
            db_22012,
            2,
        ),
        (
            "error after the trailer",
            msg::copy_failing(ErrorAt::Trailer),
            End::Idle,
            db_22012,
            1,
        ),
        (
            "FATAL mid-COPY (pg_terminate_backend)",
            msg::copy_row_1_then(&[msg::error(
                "FATAL",
                "57P01",
                "terminating connection due to administrator command",
            )]),
            End::Close,
            |e| e.code() == Some("57P01"),
            1,
        ),
        (
            "frame cut mid-field, then the COPY ends",
            [
                msg::copy_out_response(1),
                cut_frame.clone(),
                msg::copy_done(),
                msg::complete("COPY 1"),
                msg::ready(),
            ]
            .concat(),
            End::Idle,
            |e| matches!(e.kind(), ErrorKind::Decode(_)),
            0,
        ),
        (
            "frame cut mid-field, then the connection closes",
            [msg::copy_out_response(1), cut_frame[..30].to_vec()].concat(),
            End::Close,
            |e| matches!(wire_kind(e), WireKind::Closed),
            0,
        ),
        (
            "unknown message type",
            msg::copy_row_1_then(&[msg::raw(b'!', b"?")]),
            End::Hang,
            |e| matches!(wire_kind(e), WireKind::Protocol(m) if m.contains("unknown message tag")),
            1,
        ),
        (
            "length prefix claiming 2 GiB",
            msg::copy_row_1_then(&[vec![b'N', 0x7f, 0xff, 0xff, 0xff]]),
            End::Hang,
            |e| matches!(wire_kind(e), WireKind::Protocol(m) if m.contains("over the")),
            1,
        ),
        (
            "row count mismatch",
            msg::copy_row_1_then(&[
                msg::copy_data(&msg::copy_trailer()),
                msg::copy_done(),
                msg::complete("COPY 5"),
                msg::ready(),
            ]),
            End::Idle,
            |e| {
                matches!(
                    e.kind(),
                    ErrorKind::RowCount {
                        server: 5,
                        decoded: 1
                    }
                )
            },
            1,
        ),
        (
            "server stops answering mid-COPY (read_timeout)",
            msg::copy_row_1_then(&[]),
            End::Hang,
            |e| matches!(wire_kind(e), WireKind::Timeout(_)),
            1,
        ),
    ];
    for (case, copy, end, check, rows) in cases {
        let server = FaultServer::start(Script::export(copy, end)).await;
        let out = Out::new(case);
        let err = out
            .export_err(&server.url("read_timeout=300ms"), SQL, 1)
            .await;
        assert!(check(&err), "{case}: {:?}: {err}", err.kind());
        assert_eq!(err.rows_delivered(), Some(rows), "{case}: {err}");
        let line = err.to_string();
        assert!(!line.contains('\n'), "{case}: one line: {line:?}");
        out.assert_empty();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_connection_closed_at_every_byte_of_an_export() {
    let script = Script::export(msg::int4_copy(20), End::Idle);
    let total = script.total_len();
    for cut in 0..=total {
        let mut s = script.clone();
        s.cut_at = Some(cut);
        let server = FaultServer::start(s).await;
        let out = Out::new(format!("cut at {cut}"));
        match out.export(&server.url(""), SQL, 7).await {
            Ok(rows) => {
                assert_eq!(cut, total, "only the whole conversation succeeds");
                assert_eq!(rows, 20);
                assert!(out.target().is_file());
            }
            Err(e) => {
                assert!(cut < total, "{e}");
                assert!(
                    matches!(wire_kind(&e), WireKind::Closed),
                    "cut at {cut}: {e}"
                );
                assert!(e.rows_delivered().is_none_or(|r| r <= 20));
                out.assert_empty();
            }
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_silent_server_times_out_while_connecting() {
    let server = FaultServer::start(Script {
        turns: vec![(Wait::Startup, Vec::new())],
        cut_at: None,
        end: End::Hang,
    })
    .await;
    let out = Out::new("connect timeout");
    let start = Instant::now();
    let err = out
        .export_err(&server.url("connect_timeout=2"), SQL, 1)
        .await;
    assert!(matches!(wire_kind(&err), WireKind::Timeout(_)), "{err}");
    assert_eq!(err.rows_delivered(), None);
    assert!(start.elapsed() < Duration::from_secs(6));
    out.assert_empty();
}

#[tokio::test(flavor = "current_thread")]
async fn division_by_zero_at_row_n() {
    let Some(pg) = Cluster::shared() else { return };
    let db = pg.create_database("faults").unwrap();
    let out = Out::new("division by zero");
    let err = out
        .export_err(
            &pg.url(&db),
            "SELECT g, 1 / (g - 5000) AS x FROM generate_series(1, 10000) g",
            1000,
        )
        .await;
    assert_eq!(err.code(), Some("22012"), "{err}");
    // Rows 1..=4999 arrived; four whole batches were handed out before the error.
    assert_eq!(err.rows_delivered(), Some(4000), "{err}");
    assert_eq!(
        err.to_string(),
        "ERROR: division by zero (SQLSTATE 22012) [after 4000 rows]"
    );
    out.assert_empty();
}

#[tokio::test(flavor = "current_thread")]
async fn statement_timeout_mid_copy() {
    let Some((pg, db)) = slow_database("faults", "0.005") else {
        return;
    };
    let out = Out::new("statement_timeout");
    let err = out
        .export_err(
            &format!("{}?statement_timeout=1s", pg.url(&db)),
            "SELECT slow(g) AS g, repeat('x', 4000) AS pad FROM generate_series(1, 100000) g",
            1,
        )
        .await;
    assert_eq!(err.code(), Some("57014"), "{err}");
    assert!(
        err.to_string()
            .contains("canceling statement due to statement timeout"),
        "{err}"
    );
    assert!(err.rows_delivered().unwrap() > 0, "{err}");
    out.assert_empty();
}

#[tokio::test(flavor = "current_thread")]
async fn pg_terminate_backend_mid_copy() {
    // Rows arrive slowly, so the backend is not blocked on a full socket when the signal
    // comes: it then reports FATAL 57P01 before hanging up. (Blocked in a write, it exits
    // without a word, and the error is "the server closed the connection".)
    let Some((pg, db)) = slow_database("faults", "0.0005") else {
        return;
    };
    let mut client = Client::connect(&pg.url(&db)).await.unwrap();
    let pid = client.connection().backend_pid();
    let out = Out::new("pg_terminate_backend");
    let sql = "SELECT slow(generate_series(1, 100000000)) AS g, repeat('x', 100) AS pad";
    let export = FileExport::first_batch_written(&mut client, sql, 100, &out.target()).await;
    let killed = pg
        .psql("postgres", &format!("SELECT pg_terminate_backend({pid})"))
        .unwrap();
    assert_eq!(killed.trim(), "t");
    let (err, export) = export.until_error().await;
    assert_eq!(err.code(), Some("57P01"), "{err}");
    assert!(
        err.to_string()
            .contains("terminating connection due to administrator command"),
        "{err}"
    );
    assert!(err.rows_delivered().unwrap() >= 100, "{err}");
    drop(export);
    let again = client
        .connection()
        .simple_query("SELECT 1")
        .await
        .unwrap_err();
    assert!(matches!(again.kind(), WireKind::Broken(_)), "{again}");
    out.assert_empty();
}

#[tokio::test(flavor = "current_thread")]
async fn invalid_utf8_from_a_sql_ascii_database() {
    let Some(pg) = Cluster::shared() else { return };
    let db = format!("{}_ascii", pg.create_database("faults").unwrap());
    pg.psql(
        "postgres",
        &format!(
            "CREATE DATABASE {db} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' \
             LC_CTYPE 'C'"
        ),
    )
    .unwrap();
    pg.psql(
        &db,
        "CREATE TABLE t (id int, s text);
         INSERT INTO t SELECT g, 'ok' FROM generate_series(1, 10) g;
         INSERT INTO t VALUES (11, E'caf\\xe9');",
    )
    .unwrap();
    let out = Out::new("invalid UTF-8");
    let err = out
        .export_err(&pg.url(&db), "SELECT id, s FROM t ORDER BY id", 4)
        .await;
    // The library reads a SQL_ASCII database's bytes as they are, and the decoder refuses
    // the invalid text, naming row and column. (A session left at client_encoding UTF8
    // would get the server's own refusal instead: 22021 at the same row.)
    let text = err.to_string();
    match err.kind() {
        ErrorKind::Decode(_) => {
            assert!(text.contains("row 11") && text.contains("\"s\""), "{text}");
            assert!(text.contains("invalid UTF-8"), "{text}");
        }
        _ => assert_eq!(err.code(), Some("22021"), "{text}"),
    }
    // Two whole batches of four rows were handed out before row 11.
    assert_eq!(err.rows_delivered(), Some(8), "{err}");
    out.assert_empty();
}

#[tokio::test(flavor = "current_thread")]
async fn the_server_restarted_mid_export() {
    // A cluster of its own: restarting the shared one would break the other tests.
    if pgarrow_testkit::find_bin_dir().is_none() {
        pgarrow_testkit::missing(
            "PostgreSQL",
            "no server binaries found (apt-get install postgresql, or set PG_BIN)",
        );
        return;
    }
    let pg = Cluster::start().unwrap();
    let url = pg.url("postgres");
    let out = Out::new("restart");
    let mut client = Client::connect(&url).await.unwrap();
    let sql = "SELECT generate_series(1, 100000000) AS g, repeat('x', 100) AS pad";
    let export = FileExport::first_batch_written(&mut client, sql, 10_000, &out.target()).await;
    pgarrow_testkit::tls::restart(&pg).unwrap();
    let (err, export) = export.until_error().await;
    let ok = err.code() == Some("57P01") || matches!(wire_kind(&err), WireKind::Closed);
    assert!(ok, "{:?}: {err}", err.kind());
    assert!(err.rows_delivered().unwrap() >= 10_000);
    out.assert_empty();
    drop(export);
    // The server is back: a new connection works.
    let mut again = Client::connect(&url).await.unwrap();
    again.connection().simple_query("SELECT 1").await.unwrap();
}
