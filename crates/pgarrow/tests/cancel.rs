//! Cancelling exports in the library: `Export::cancel`, a `CancelToken` used from another
//! task, and dropping an export mid-COPY (the connection is closed, never reused, and the
//! query cancelled). The server's view is checked in `pg_stat_activity`, polled with a
//! deadline.

use std::time::{Duration, Instant};

use pgarrow::io::{Format, Output};
use pgarrow::protocol::ErrorKind as WireKind;
use pgarrow::{Client, Export, ExportOptions, FileTarget, Hooks, Source};
use pgarrow_testkit::Cluster;
use pgarrow_testkit::activity::{CANCEL_REACHES_BACKEND, backend_gone_within, slow_database};

/// A client of a new database holding `slow()`, and its backend's pid.
async fn connect(prefix: &str) -> Option<(&'static Cluster, Client, i32)> {
    let (pg, db) = slow_database(prefix, "0.001")?;
    let client = Client::connect(&pg.url(&db)).await.unwrap();
    let pid = client.backend_pid();
    Some((pg, client, pid))
}

/// The backend's `state` in pg_stat_activity, or `None` once it is gone. Runs psql on the
/// blocking pool, so that the runtime keeps running spawned tasks meanwhile.
async fn backend_state(pg: &'static Cluster, pid: i32) -> Option<String> {
    let out = tokio::task::spawn_blocking(move || {
        pg.psql(
            "postgres",
            &format!("SELECT coalesce(state, '?') FROM pg_stat_activity WHERE pid = {pid}"),
        )
        .unwrap()
    })
    .await
    .unwrap();
    let state = out.trim();
    (!state.is_empty()).then(|| state.to_owned())
}

/// Polls until the backend's state is `state` (`None`: gone), failing after `limit`; returns
/// how long it took.
async fn wait_for(
    pg: &'static Cluster,
    pid: i32,
    limit: Duration,
    state: Option<&str>,
) -> Duration {
    let start = Instant::now();
    loop {
        let now = backend_state(pg, pid).await;
        if now.as_deref() == state {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "backend {pid} not {state:?} within {limit:?} (state {now:?})"
        );
    }
}

/// Waits (30 s at most) until the backend runs a query.
async fn wait_active(pg: &'static Cluster, pid: i32) {
    wait_for(pg, pid, Duration::from_secs(30), Some("active")).await;
}

/// Waits until the backend is gone, within [`CANCEL_REACHES_BACKEND`]; returns how long it
/// took.
async fn wait_gone(pg: &'static Cluster, pid: i32) -> Duration {
    wait_for(pg, pid, CANCEL_REACHES_BACKEND, None).await
}

/// Rows one by one, slowly, forever (a set-returning function in the select list streams; one
/// in FROM would be materialized first).
const STREAMING: &str = "SELECT slow(generate_series(1, 100000000)) AS g";

fn options(batch_rows: usize) -> ExportOptions {
    let mut o = ExportOptions::default();
    o.decode.batch_rows = batch_rows;
    o
}

/// An export of [`STREAMING`] in batches of 100, its first batch read.
async fn streaming(client: &mut Client) -> Export<'_> {
    let mut export = client
        .export(&Source::query(STREAMING), &options(100))
        .await
        .unwrap();
    export.next_batch().await.unwrap().unwrap();
    export
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_an_export_ends_the_backend_within_two_seconds() {
    let Some((pg, mut client, pid)) = connect("dropcancel").await else {
        return;
    };
    let export = streaming(&mut client).await;
    wait_active(pg, pid).await;
    drop(export);
    let took = wait_gone(pg, pid).await;
    eprintln!("streaming query: backend gone {took:?} after the drop");
    // The connection is never handed back mid-COPY.
    let err = client
        .connection()
        .simple_query("SELECT 1")
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), WireKind::Broken(m) if m.contains("abandoned")),
        "{err}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_a_client_mid_query_cancels_a_query_that_computes() {
    let Some((pg, mut client, pid)) = connect("dropcompute").await else {
        return;
    };
    // The server sends nothing (not even CopyOutResponse, which waits in its send buffer)
    // while it sleeps, and does not notice a closed socket then: only a CancelRequest stops
    // it.
    {
        let source = Source::query("SELECT 1 AS x FROM pg_sleep(60)");
        let opts = options(1);
        let export = client.export(&source, &opts);
        let mut export = std::pin::pin!(export);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            tokio::select! {
                r = &mut export => panic!("the export should still be running: {:?}", r.err()),
                state = backend_state(pg, pid) => {
                    if state.as_deref() == Some("active") {
                        break;
                    }
                    assert!(Instant::now() < deadline, "the query never ran");
                }
            }
        }
    }
    // The export's future is gone mid-statement; dropping the client closes the socket and
    // cancels the query.
    drop(client);
    let took = wait_gone(pg, pid).await;
    eprintln!("computing query: backend gone {took:?} after the drop");
}

#[tokio::test(flavor = "current_thread")]
async fn export_cancel_keeps_the_connection_usable() {
    let Some((pg, mut client, pid)) = connect("exportcancel").await else {
        return;
    };
    let export = streaming(&mut client).await;
    let start = Instant::now();
    export.cancel().await.unwrap();
    let took = start.elapsed();
    assert!(took < CANCEL_REACHES_BACKEND, "the cancel took {took:?}");
    // Same backend, idle, and ready for the next statement.
    assert!(client.connection().is_ready());
    let rows = client
        .connection()
        .simple_query("SELECT pg_backend_pid()")
        .await
        .unwrap();
    assert_eq!(rows[0][0].as_deref(), Some(pid.to_string().as_str()));
    wait_for(pg, pid, CANCEL_REACHES_BACKEND, Some("idle")).await;
    // And it exports again.
    let mut export = client
        .export(&Source::query("SELECT 1 AS one"), &options(100))
        .await
        .unwrap();
    assert_eq!(export.next_batch().await.unwrap().unwrap().num_rows(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_cancel_token_stops_the_export_from_another_task() {
    let Some((_, mut client, _)) = connect("tokencancel").await else {
        return;
    };
    let mut export = streaming(&mut client).await;
    let token = export.cancel_token();
    let canceller = tokio::spawn(async move { token.cancel().await });
    let err = loop {
        match export.next_batch().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the export should be cancelled"),
            Err(e) => break e,
        }
    };
    canceller.await.unwrap().unwrap();
    assert_eq!(err.code(), Some("57014"), "{err}");
    assert!(
        err.to_string()
            .contains("canceling statement due to user request"),
        "{err}"
    );
    assert!(err.rows_delivered().unwrap() >= 100);
    drop(export);
    // The server ended the statement cleanly: the connection is usable.
    assert!(client.connection().is_ready());
    client.connection().simple_query("SELECT 1").await.unwrap();
}

/// Dropped while a `next()` of the stream is half-way (its read is pending inside the export):
/// the backend still ends at once.
#[tokio::test(flavor = "current_thread")]
async fn dropping_a_stream_mid_batch_ends_the_backend() {
    use futures_util::StreamExt;
    let Some((pg, mut client, pid)) = connect("streamdrop").await else {
        return;
    };
    let mut export = client.export(STREAMING, &options(1000)).await.unwrap();
    // A batch of 1000 slow rows takes a second: the timeout leaves the read pending.
    let waited = tokio::time::timeout(Duration::from_millis(50), export.next()).await;
    assert!(waited.is_err(), "the first batch came too early");
    wait_active(pg, pid).await;
    drop(export);
    let took = wait_gone(pg, pid).await;
    eprintln!("stream dropped mid-batch: backend gone {took:?} after the drop");
}

/// 100 rows of 1 kB reach the client (past the server's 8 kB send buffer), then the server
/// sleeps without writing: a closed socket goes unnoticed, only a CancelRequest stops it.
const STALLS: &str = "SELECT g, repeat('x', 1000) AS pad, \
                      CASE WHEN g > 100 THEN pg_sleep(600) IS NULL END AS s \
                      FROM generate_series(1, 1000) AS g";

/// The blocking reader, dropped before its end outside any runtime, cancels the query too.
#[test]
fn dropping_a_blocking_reader_ends_the_backend() {
    let Some((pg, db)) = slow_database("readerdrop", "0.001") else {
        return;
    };
    let mut reader = pgarrow::blocking::export(pg.url(&db), STALLS, &options(20)).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().num_rows(), 20);
    let pids = pg
        .psql(
            "postgres",
            &format!(
                "SELECT pid FROM pg_stat_activity WHERE datname = '{db}' AND state = 'active'"
            ),
        )
        .unwrap();
    let pid: i32 = pids.trim().parse().expect("one active backend");
    drop(reader);
    let took = backend_gone_within(pg, pid, CANCEL_REACHES_BACKEND);
    eprintln!("blocking reader dropped: backend gone {took:?} after the drop");
}

/// A reader with a polled stop: while it waits on a server that sends nothing, its check
/// runs every `CHECK_EVERY` on the reading thread; when the check says stop, the call fails
/// with `Cancelled`, the rows already delivered are counted, and the backend ends.
#[test]
fn a_polled_stop_cancels_a_waiting_reader() {
    let Some((pg, db)) = slow_database("readercheck", "0.001") else {
        return;
    };
    let checks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&checks);
    // Stops on the third check.
    let stop = pgarrow::Stop::polled(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 >= 3
    });
    let hooks = pgarrow::Hooks::new().with_stop(stop.clone());
    let mut reader =
        pgarrow::blocking::export_with(pg.url(&db), STALLS, &options(20), hooks).unwrap();
    let mut rows = 0;
    let err = loop {
        let next = reader.next_batch();
        match next {
            Ok(Some(batch)) => rows += batch.num_rows(),
            Ok(None) => panic!("the export ended"),
            Err(e) => break e,
        }
    };
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(checks.load(std::sync::atomic::Ordering::SeqCst), 3);
    // What reached the client before the sleep: whole batches (the server's send buffer
    // holds back the last few rows).
    assert!(rows >= 60 && rows % 20 == 0, "{rows} rows");
    assert_eq!(err.rows_delivered(), Some(rows as u64));
    assert!(reader.next_batch().unwrap().is_none());
    let gone =
        pgarrow_testkit::activity::poll_until(CANCEL_REACHES_BACKEND, "the backend ends", || {
            pg.psql(
                "postgres",
                &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'"),
            )
            .is_ok_and(|n| n.trim() == "0")
        });
    eprintln!("checked reader stopped: backend gone {gone:?} later");
}

/// Stopping through the hooks: the run fails with `Cancelled`, no file and no temporary
/// file remain, and the backend is gone.
#[tokio::test(flavor = "current_thread")]
async fn cancelled_file_export_leaves_nothing() {
    let Some((pg, mut client, pid)) = connect("cancelfile").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Stopped after the first batch.
    let stop = pgarrow::Stop::new();
    let stopper = stop.clone();
    let hooks = Hooks::new()
        .on_progress(move |_| stopper.stop())
        .with_stop(stop);
    let target = FileTarget::new(Format::ArrowFile, Output::File(dir.path().join("t.arrow")));
    let err = client
        .export_to_file(STREAMING, &options(50), &target, hooks)
        .await
        .unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let took = wait_gone(pg, pid).await;
    eprintln!("file export cancelled by its hooks: backend gone {took:?} later");
}
