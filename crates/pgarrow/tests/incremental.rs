//! Incremental exports against a real server: runs read exactly the row versions the previous
//! run's snapshot could not see (late commits included), never one it saw, and states that no
//! longer allow that are refused. Rows are identified by `(id, v)`, as the server stores them.

mod common;

use std::collections::BTreeSet;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use futures_util::StreamExt;
use pgarrow::Client;
use pgarrow::incremental::{IncrementalOptions, IncrementalState, LateRows};
use pgarrow::names::TableName;

use common::Db;

/// A table whose cursor is set on every insert and update from the server's clock.
const CLOCK_TABLE: &str = "
    CREATE TABLE t (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX ON t (updated_at);
    CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
    CREATE TRIGGER touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch();
";

/// One run: `(id, v)` of every exported row, and the state it leaves.
async fn run(
    db: &Db,
    options: &IncrementalOptions,
    previous: Option<&IncrementalState>,
) -> pgarrow::Result<(BTreeSet<(i64, String)>, IncrementalState, bool)> {
    let mut client = Client::connect(db.url()).await?;
    let run = client.begin_incremental(options, previous).await?;
    let mut rows = BTreeSet::new();
    let mut count = 0u64;
    {
        let mut export = client
            .export(run.source.clone(), &Default::default())
            .await?;
        while let Some(batch) = export.next().await {
            let batch = batch?;
            let id = batch.column(0);
            let v = batch.column(1).as_string::<i32>();
            for i in 0..batch.num_rows() {
                let id = match id.data_type() {
                    arrow_schema::DataType::Int32 => id.as_primitive::<Int32Type>().value(i) as i64,
                    _ => id.as_primitive::<Int64Type>().value(i),
                };
                assert!(
                    rows.insert((id, v.value(i).to_owned())),
                    "row ({id}, {}) exported twice in one run",
                    v.value(i)
                );
                count += 1;
            }
        }
    }
    client.end_incremental().await?;
    let late_scan = run.late_scan;
    Ok((rows, run.finish(count, Vec::new()), late_scan))
}

fn set(rows: &[(i64, &str)]) -> BTreeSet<(i64, String)> {
    rows.iter().map(|(i, v)| (*i, (*v).to_owned())).collect()
}

fn by(column: &str) -> IncrementalOptions {
    IncrementalOptions::new(TableName::parse("t").unwrap(), column)
}

#[tokio::test]
async fn three_runs_read_what_changed_between_them() {
    let Some(db) = Db::with("incr_runs", CLOCK_TABLE) else {
        return;
    };
    db.psql("INSERT INTO t (id, v) SELECT g, 'a' || g FROM generate_series(1, 100) g");
    let options = by("updated_at");
    let (first, s1, _) = run(&db, &options, None).await.unwrap();
    assert_eq!(first.len(), 100);
    assert_eq!((s1.run, s1.rows), (1, 100));
    assert!(s1.high_water.is_some());

    db.psql("INSERT INTO t (id, v) VALUES (101, 'new'), (102, 'new')");
    db.psql("UPDATE t SET v = 'changed' WHERE id IN (5, 6)");
    db.psql("DELETE FROM t WHERE id = 7");
    let (second, s2, _) = run(&db, &options, Some(&s1)).await.unwrap();
    assert_eq!(
        second,
        set(&[(5, "changed"), (6, "changed"), (101, "new"), (102, "new")])
    );
    assert_eq!((s2.run, s2.rows), (2, 4));

    // Nothing changed: nothing exported, the mark stays.
    let (empty, s3, _) = run(&db, &options, Some(&s2)).await.unwrap();
    assert!(empty.is_empty(), "{empty:?}");
    assert_eq!(s3.high_water, s2.high_water);

    db.psql("UPDATE t SET v = 'again' WHERE id IN (6, 101)");
    let (fourth, _, _) = run(&db, &options, Some(&s3)).await.unwrap();
    assert_eq!(fourth, set(&[(6, "again"), (101, "again")]));
}

#[tokio::test]
async fn a_late_commit_below_the_mark_is_in_the_next_run() {
    let Some(db) = Db::with("incr_late", CLOCK_TABLE) else {
        return;
    };
    db.psql("INSERT INTO t (id, v) VALUES (1, 'early')");
    // A transaction that writes before run 1 and commits after it: its row's cursor is its
    // start time, below what commits meanwhile.
    let mut late = Client::connect(db.url()).await.unwrap();
    late.connection()
        .simple_query("BEGIN; INSERT INTO t (id, v) VALUES (2, 'late with an ID')")
        .await
        .unwrap();
    // One that has no transaction ID yet at run 1 (it has only read), and writes after it.
    let mut idle = Client::connect(db.url()).await.unwrap();
    idle.connection()
        .simple_query("BEGIN; SELECT count(*) FROM t")
        .await
        .unwrap();
    db.psql("SELECT pg_sleep(0.01); INSERT INTO t (id, v) VALUES (3, 'committed')");

    let options = by("updated_at");
    let (first, s1, _) = run(&db, &options, None).await.unwrap();
    assert_eq!(first, set(&[(1, "early"), (3, "committed")]));
    assert!(s1.late_rows_possible, "two transactions were open: {s1:?}");

    idle.connection()
        .simple_query("INSERT INTO t (id, v) VALUES (4, 'late without an ID'); COMMIT")
        .await
        .unwrap();
    late.connection().simple_query("COMMIT").await.unwrap();
    // Both late rows' cursors are below the mark run 1 left.
    let below = db.scalar(&format!(
        "SELECT count(*) FROM t WHERE id IN (2, 4) AND updated_at < '{}'",
        s1.high_water.as_deref().unwrap()
    ));
    assert_eq!(below, "2");
    db.psql("INSERT INTO t (id, v) VALUES (5, 'after')");

    let (second, s2, late_scan) = run(&db, &options, Some(&s1)).await.unwrap();
    assert!(late_scan);
    assert_eq!(
        second,
        set(&[
            (2, "late with an ID"),
            (4, "late without an ID"),
            (5, "after")
        ])
    );
    // And none of them again.
    let (third, _, _) = run(&db, &options, Some(&s2)).await.unwrap();
    assert!(third.is_empty(), "{third:?}");
}

#[tokio::test]
async fn rows_at_the_mark_are_read_once() {
    let Some(db) = Db::with(
        "incr_mark",
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, version bigint);",
    ) else {
        return;
    };
    db.psql("INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 5), (3, 'c', NULL)");
    let options = by("version");
    let (first, s1, _) = run(&db, &options, None).await.unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(s1.high_water.as_deref(), Some("5"));
    // Another row at the mark, one above it; the row run 1 read at the mark is not read again.
    db.psql("INSERT INTO t VALUES (4, 'd', 5), (5, 'e', 6)");
    let (second, s2, _) = run(&db, &options, Some(&s1)).await.unwrap();
    assert_eq!(second, set(&[(4, "d"), (5, "e")]));
    assert_eq!(s2.high_water.as_deref(), Some("6"));
    // A cursor set below the mark (not from a clock or a sequence) is found by the late-row
    // scan when asked for.
    db.psql("UPDATE t SET v = 'a2', version = 2 WHERE id = 1");
    db.psql("UPDATE t SET v = 'c2' WHERE id = 3");
    let always = by("version").with_late_rows(LateRows::Always);
    let (third, s3, late_scan) = run(&db, &always, Some(&s2)).await.unwrap();
    assert!(late_scan);
    assert_eq!(third, set(&[(1, "a2"), (3, "c2")]));
    assert_eq!(s3.high_water.as_deref(), Some("6"));
}

#[tokio::test]
async fn since_starts_the_first_run_and_stays() {
    let Some(db) = Db::with(
        "incr_since",
        "CREATE TABLE t (id int PRIMARY KEY, v text, day date);",
    ) else {
        return;
    };
    db.psql("INSERT INTO t VALUES (1, 'old', '2020-01-01'), (2, 'new', '2026-01-01')");
    let options = by("day").with_since("2025-01-01");
    let (first, s1, _) = run(&db, &options, None).await.unwrap();
    assert_eq!(first, set(&[(2, "new")]));
    assert_eq!(s1.since.as_deref(), Some("2025-01-01"));
    db.psql("UPDATE t SET v = 'old2' WHERE id = 1; INSERT INTO t VALUES (3, 'x', '2026-02-01')");
    let (second, _, _) = run(&db, &by("day").with_late_rows(LateRows::Always), Some(&s1))
        .await
        .unwrap();
    assert_eq!(second, set(&[(3, "x")]));
}

#[tokio::test]
async fn states_that_cannot_hold_the_guarantee_are_refused() {
    let Some(db) = Db::with(
        "incr_refuse",
        "CREATE TABLE t (id int PRIMARY KEY, v text, n bigint, m bigint, f float8);
         CREATE TABLE u (id int PRIMARY KEY, v text, n bigint);
         CREATE VIEW w AS SELECT * FROM t;",
    ) else {
        return;
    };
    db.psql("INSERT INTO t VALUES (1, 'a', 1, 1, 1)");
    let (_, s1, _) = run(&db, &by("n"), None).await.unwrap();
    let refused = |e: pgarrow::Error| e.to_string();

    // Another column, another table.
    let e = refused(run(&db, &by("m"), Some(&s1)).await.unwrap_err());
    assert!(e.contains("follows column \"n\""), "{e}");
    let other = IncrementalOptions::new(TableName::parse("u").unwrap(), "n");
    let e = refused(run(&db, &other, Some(&s1)).await.unwrap_err());
    assert!(e.contains("is of table public.t, not public.u"), "{e}");
    // What cannot be a cursor.
    let e = refused(run(&db, &by("f"), None).await.unwrap_err());
    assert!(
        e.contains("double precision") && e.contains("cursor"),
        "{e}"
    );
    let e = refused(run(&db, &by("nope"), None).await.unwrap_err());
    assert!(e.contains("no column \"nope\""), "{e}");
    let view = IncrementalOptions::new(TableName::parse("w").unwrap(), "n");
    let e = refused(run(&db, &view, None).await.unwrap_err());
    assert!(e.contains("is not a table"), "{e}");
    // The table dropped and created again.
    db.psql(
        "DROP VIEW w; DROP TABLE t; CREATE TABLE t (id int, v text, n bigint);
         INSERT INTO t VALUES (9, 'z', 1)",
    );
    let e = refused(run(&db, &by("n"), Some(&s1)).await.unwrap_err());
    assert!(e.contains("dropped and created again"), "{e}");
    // Unless asked to start over: the whole table, the run counter going on.
    let (all, s2, _) = run(&db, &by("n").with_restart(true), Some(&s1))
        .await
        .unwrap();
    assert_eq!(all, set(&[(9, "z")]));
    assert_eq!(s2.run, 2);
}

#[test]
fn a_state_round_trips_through_its_file_and_a_bad_one_is_named() {
    let dir = std::env::temp_dir().join(format!("pgarrow-incr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    assert_eq!(IncrementalState::load(&path).unwrap(), None);
    std::fs::write(&path, "{\"pgarrow_incremental\": 1}").unwrap();
    let e = IncrementalState::load(&path).unwrap_err().to_string();
    assert!(e.contains("is not an incremental state"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
