//! Partitioned exports against a real server: every split reads exactly the rows one
//! connection reads, in one snapshot, whatever commits meanwhile; failures leave nothing.
//!
//! Over ~600 lines: every way of splitting, checked against the single-connection export, in one
//! binary because each test binary links arrow, parquet and the server harness again, and CI builds
//! them all.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use common::Db;
use pgarrow::io::{DirTarget, MANIFEST_NAME, Manifest};
use pgarrow::io::{Format, Output};
use pgarrow::partition::{
    Coordinator, Holder, PartRange, PartRead, PartitionOptions, PartitionedExport, Released,
    SnapshotMode, export_part, export_part_with, export_to_dir, export_to_file,
};
use pgarrow::{ExportOptions, FileTarget, Hooks, Source};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Each row of `batches` as text, one string per row.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let columns: Vec<ArrayFormatter<'_>> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            let fields: Vec<String> = columns.iter().map(|f| f.value(r).to_string()).collect();
            out.push(fields.join("|"));
        }
    }
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The rows of one single-connection export of `source`.
fn single(db: &Db, source: &Source) -> Vec<String> {
    let reader = pgarrow::blocking::export(db.url(), source, &ExportOptions::default()).unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    rows(&batches)
}

/// The batches of a partitioned export, with the parts they came from.
fn partitioned(
    db: &Db,
    source: &Source,
    options: &PartitionOptions,
) -> (
    Vec<(usize, RecordBatch)>,
    pgarrow::partition::PartitionedStats,
) {
    runtime().block_on(async {
        let mut export =
            PartitionedExport::start(db.url(), source, &ExportOptions::default(), options)
                .await
                .unwrap();
        let mut out = Vec::new();
        while let Some((part, batch)) = export.next_batch().await.unwrap() {
            assert_eq!(
                batch.schema(),
                export.schema(),
                "every batch has the plan's schema"
            );
            out.push((part, batch));
        }
        (out, export.stats())
    })
}

/// Asserts that a partitioned export of `source` reads the same rows as one connection, and
/// returns the plan's parts.
fn same_rows(
    db: &Db,
    source: &Source,
    options: &PartitionOptions,
) -> Vec<pgarrow::partition::Part> {
    let expected = sorted(single(db, source));
    let (batches, stats) = partitioned(db, source, options);
    let batches: Vec<RecordBatch> = batches.into_iter().map(|(_, b)| b).collect();
    let got = sorted(rows(&batches));
    assert_eq!(got.len(), expected.len(), "row count");
    assert_eq!(got, expected);
    assert_eq!(stats.export.rows, expected.len() as u64);
    assert_eq!(
        stats.parts.iter().map(|p| p.rows).sum::<u64>(),
        expected.len() as u64
    );
    runtime().block_on(async {
        let c = Coordinator::begin(db.url(), source, &ExportOptions::default(), options)
            .await
            .unwrap();
        c.plan().parts.clone()
    })
}

const MIXED: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE t (
    id bigint, label text, amount numeric(12,2), at timestamp, grid int[], m mood
);
INSERT INTO t SELECT g, 'row ' || g, g * 1.25, '2024-01-01'::timestamp + g * interval '1 minute',
    CASE WHEN g % 7 = 0 THEN NULL ELSE ARRAY[[g, g + 1], [g + 2, g + 3]] END,
    (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::mood
FROM generate_series(1, 20000) g;
";

#[test]
fn a_plain_table_in_block_ranges() {
    let Some(db) = Db::with("part_plain", MIXED) else {
        return;
    };
    let parts = same_rows(
        &db,
        &Source::table("t").unwrap(),
        &PartitionOptions::new(3).with_parts(7),
    );
    assert!(parts.len() >= 5, "{parts:?}");
    assert!(
        parts
            .iter()
            .all(|p| matches!(p.range, PartRange::Blocks { .. }))
    );
    // The last range is open, so that nothing past the size read is missed.
    assert!(matches!(
        parts.last().unwrap().range,
        PartRange::Blocks { end: None, .. }
    ));
    // 2-D arrays: the depth the plan fixed from the data.
    let (batches, _) = partitioned(&db, &Source::table("t").unwrap(), &PartitionOptions::new(2));
    let grid = batches[0]
        .1
        .schema()
        .field_with_name("grid")
        .unwrap()
        .clone();
    assert!(
        matches!(grid.data_type(), arrow_schema::DataType::List(inner) if matches!(inner.data_type(), arrow_schema::DataType::List(_))),
        "{grid:?}"
    );
}

#[test]
fn partitioned_and_inherited_tables_are_read_leaf_by_leaf() {
    let script = "
CREATE TABLE p (id int, region text, v text) PARTITION BY LIST (region);
CREATE TABLE p_eu PARTITION OF p FOR VALUES IN ('eu');
CREATE TABLE p_us (v text, region text, id int);
ALTER TABLE p ATTACH PARTITION p_us FOR VALUES IN ('us');
CREATE TABLE p_rest PARTITION OF p DEFAULT PARTITION BY RANGE (id);
CREATE TABLE p_rest_lo PARTITION OF p_rest FOR VALUES FROM (MINVALUE) TO (5000);
CREATE TABLE p_rest_hi PARTITION OF p_rest FOR VALUES FROM (5000) TO (MAXVALUE);
INSERT INTO p SELECT g, (ARRAY['eu', 'us', 'asia', 'af'])[1 + g % 4], 'v' || g
FROM generate_series(1, 12000) g;
CREATE TABLE parent (id int, name text);
CREATE TABLE child (extra text) INHERITS (parent);
CREATE TABLE grandchild () INHERITS (child);
INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 3000) g;
INSERT INTO child SELECT g, 'c' || g, 'x' FROM generate_series(1, 3000) g;
INSERT INTO grandchild SELECT g, 'g' || g, 'y' FROM generate_series(1, 100) g;
";
    let Some(db) = Db::with("part_tree", script) else {
        return;
    };
    let parts = same_rows(&db, &Source::table("p").unwrap(), &PartitionOptions::new(2));
    let relations: std::collections::BTreeSet<String> =
        parts.iter().filter_map(|p| p.relation.clone()).collect();
    assert_eq!(
        relations.into_iter().collect::<Vec<_>>(),
        [
            "\"public\".\"p_eu\"",
            "\"public\".\"p_rest_hi\"",
            "\"public\".\"p_rest_lo\"",
            "\"public\".\"p_us\""
        ]
    );
    let parts = same_rows(
        &db,
        &Source::table("parent").unwrap(),
        &PartitionOptions::new(3),
    );
    assert!(
        parts
            .iter()
            .any(|p| p.relation.as_deref() == Some("\"public\".\"grandchild\""))
    );
}

#[test]
fn dead_tuples_free_space_and_empty_tables() {
    let script = "
CREATE TABLE churn (id int PRIMARY KEY, v text) WITH (fillfactor = 70, autovacuum_enabled = off);
INSERT INTO churn SELECT g, repeat('x', 50) FROM generate_series(1, 30000) g;
UPDATE churn SET v = 'updated' WHERE id % 3 = 0;
DELETE FROM churn WHERE id % 5 = 0;
UPDATE churn SET v = v || '!' WHERE id % 7 = 0;
CREATE TABLE nothing (a int, b text);
CREATE TABLE emptied (a int);
INSERT INTO emptied SELECT generate_series(1, 5000);
DELETE FROM emptied;
";
    let Some(db) = Db::with("part_churn", script) else {
        return;
    };
    same_rows(
        &db,
        &Source::table("churn").unwrap(),
        &PartitionOptions::new(4).with_parts(9),
    );
    for t in ["nothing", "emptied"] {
        let (batches, stats) =
            partitioned(&db, &Source::table(t).unwrap(), &PartitionOptions::new(2));
        assert!(batches.iter().all(|(_, b)| b.num_rows() == 0), "{t}");
        assert_eq!(stats.export.rows, 0, "{t}");
    }
}

#[test]
fn key_ranges_from_histograms_or_bounds_for_queries_and_tables() {
    let script = "
CREATE TABLE ev (id int, at timestamp, day date, note text);
INSERT INTO ev SELECT g, '2024-01-01'::timestamp + g * interval '37 minutes',
    '2024-01-01'::date + g / 50, CASE WHEN g % 11 = 0 THEN NULL ELSE 'n' || g END
FROM generate_series(1, 10000) g;
INSERT INTO ev VALUES (NULL, NULL, 'infinity', 'null keys'), (NULL, 'infinity', '-infinity', 'inf');
";
    let Some(db) = Db::with("part_keys", script) else {
        return;
    };
    let query = Source::query("SELECT id, at, day, note FROM ev WHERE note IS NOT NULL");
    // Not analyzed: bounds between MIN and MAX.
    for column in ["id", "at", "day"] {
        let parts = same_rows(&db, &query, &PartitionOptions::new(2).with_by(column));
        assert_eq!(parts.len(), 8, "{column}: {parts:?}");
        assert!(matches!(
            &parts[0].range,
            PartRange::Keys {
                nulls: true,
                from: None,
                ..
            }
        ));
    }
    db.psql("ANALYZE ev;");
    let parts = same_rows(
        &db,
        &Source::table("ev").unwrap(),
        &PartitionOptions::new(3).with_by("at"),
    );
    assert!(parts.len() > 3, "{parts:?}");
    // A query's column that comes from a table uses the table's histogram too.
    same_rows(&db, &query, &PartitionOptions::new(2).with_by("id"));
    // A query with no key is one part.
    let parts = same_rows(&db, &query, &PartitionOptions::new(3));
    assert_eq!(parts.len(), 1);
    // Columns that cannot be split are refused, naming them.
    let rt = runtime();
    for (by, says) in [
        ("note", "a text column cannot be split"),
        ("nope", "no column of that name"),
    ] {
        let e = rt
            .block_on(PartitionedExport::start(
                db.url(),
                &query,
                &ExportOptions::default(),
                &PartitionOptions::new(2).with_by(by),
            ))
            .unwrap_err()
            .to_string();
        assert!(e.contains(says) && e.contains(by), "{e}");
    }
}

#[test]
fn one_snapshot_while_others_commit() {
    let script = "
CREATE TABLE acct (id int PRIMARY KEY, amount bigint, pad text) WITH (fillfactor = 90);
INSERT INTO acct SELECT g, 1000, repeat('p', 100) FROM generate_series(1, 60000) g;
";
    let Some(db) = Db::with("part_consistent", script) else {
        return;
    };
    let total: i64 = 60000 * 1000;
    let stop = Arc::new(AtomicBool::new(false));
    let moved = Arc::new(AtomicU64::new(0));
    // Another session keeps moving amounts between rows (and so moving row versions between
    // blocks) in committed transactions: the total never changes.
    let writer = {
        let (url, stop, moved) = (db.url(), stop.clone(), moved.clone());
        std::thread::spawn(move || {
            runtime().block_on(async {
                let mut c = pgarrow::Client::connect(url).await.unwrap();
                let mut i: u64 = 0;
                while !stop.load(Ordering::SeqCst) {
                    let a = 1 + (i * 7919) % 60000;
                    let b = 1 + (i * 104_729 + 13) % 60000;
                    c.connection()
                        .simple_query(&format!(
                            "BEGIN; UPDATE acct SET amount = amount - 7 WHERE id = {a}; \
                             UPDATE acct SET amount = amount + 7 WHERE id = {b}; COMMIT"
                        ))
                        .await
                        .unwrap();
                    moved.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
            })
        })
    };
    let source = Source::query("SELECT id, amount FROM acct");
    let table = Source::table("acct").unwrap();
    let before = moved.load(Ordering::SeqCst);
    for run in 0..6 {
        let (source, options) = match run % 2 {
            0 => (&table, PartitionOptions::new(3).with_parts(12)),
            _ => (&source, PartitionOptions::new(3).with_by("id")),
        };
        let (batches, _) = partitioned(&db, source, &options);
        let (mut sum, mut n) = (0i64, 0usize);
        for (_, b) in &batches {
            let amount = b
                .column_by_name("amount")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap();
            sum += amount.iter().map(Option::unwrap).sum::<i64>();
            n += amount.len();
        }
        assert_eq!(n, 60000, "run {run}: every row once");
        assert_eq!(sum, total, "run {run}: the invariant total");
    }
    let during = moved.load(Ordering::SeqCst) - before;
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(during > 0, "the writer committed while the exports ran");
}

#[test]
fn a_failed_part_fails_the_whole_export_and_leaves_nothing() {
    let Some(db) = Db::with(
        "part_fail",
        "CREATE TABLE t AS SELECT g AS id, 'v' || g AS v FROM generate_series(1, 20000) g; \
         ANALYZE t;",
    ) else {
        return;
    };
    // (Analyzed, so that planning takes the key's bounds from the statistics instead of
    // running the query.) One part's backend is terminated in the middle of its COPY.
    let source = Source::query(
        "SELECT id, v FROM t WHERE CASE WHEN id = 15000 \
         THEN pg_terminate_backend(pg_backend_pid()) ELSE true END",
    );
    let options = PartitionOptions::new(2).with_by("id");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.parquet");
    let target = FileTarget::new(Format::Parquet, Output::File(file.clone()));
    let e = to_file(&db, &source, &options, &target).unwrap_err();
    assert!(e.to_string().contains("part "), "{e}");
    let out = dir.path().join("parts");
    let dir_target = DirTarget::new(out.clone(), Format::Parquet);
    let e = to_dir(&db, &source, &options, &dir_target).unwrap_err();
    assert!(e.to_string().contains("part "), "{e}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["parts"], "no file");
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "no part file, no manifest"
    );
    // The server is fine afterwards, and no worker connection is left behind.
    assert_eq!(db.scalar("SELECT count(*) FROM t"), "20000");
}

#[test]
fn files_and_directories_hold_the_same_rows() {
    let Some(db) = Db::with("part_files", MIXED) else {
        return;
    };
    let source = Source::table("t").unwrap();
    let expected = single(&db, &source);
    let dir = tempfile::tempdir().unwrap();
    let options = PartitionOptions::new(3).with_parts(6);
    // One Parquet file, in table order: row groups encoded by the connections' threads.
    let path = dir.path().join("t.parquet");
    let target = FileTarget::new(Format::Parquet, Output::File(path.clone()));
    let stats = to_file(
        &db,
        &source,
        &options
            .clone()
            .with_order_preserving(true)
            .with_memory_limit(4 << 20),
        &target,
    )
    .unwrap();
    assert_eq!(stats.export.rows, 20000);
    assert!(
        stats.in_flight_peak > 0 && stats.in_flight_peak <= 4 << 20,
        "{stats:?}"
    );
    let got = read_parquet(&path);
    assert_eq!(got, expected, "order-preserving: the table's order");
    // In any order, a connection's row group goes on from one part into the next: one row
    // group per connection here, not one per part.
    let path = dir.path().join("any.parquet");
    let target = FileTarget::new(Format::Parquet, Output::File(path.clone()));
    to_file(&db, &source, &options, &target).unwrap();
    assert_eq!(sorted(read_parquet(&path)), sorted(expected.clone()));
    let file = std::fs::File::open(&path).unwrap();
    let groups = parquet::file::reader::FileReader::metadata(
        &parquet::file::serialized_reader::SerializedFileReader::new(file).unwrap(),
    )
    .num_row_groups();
    assert!(
        (1..=3).contains(&groups),
        "{groups} row groups for 6 parts on 3 connections"
    );
    // Arrow IPC, in any order.
    let path = dir.path().join("t.arrow");
    let target = FileTarget::new(Format::ArrowFile, Output::File(path.clone()));
    to_file(&db, &source, &options, &target).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let batches: Vec<RecordBatch> = arrow_ipc::reader::FileReader::try_new(file, None)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(sorted(rows(&batches)), sorted(expected.clone()));
    // One file per part, and the manifest.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join(MANIFEST_NAME), "stale").unwrap();
    let target = DirTarget::new(out.clone(), Format::Parquet);
    let stats = to_dir(&db, &source, &options, &target).unwrap();
    assert_eq!(
        stats.manifest.as_deref(),
        Some(out.join(MANIFEST_NAME).display().to_string().as_str())
    );
    let manifest = Manifest::read(&out).unwrap();
    assert_eq!(manifest.rows, 20000);
    assert!(manifest.snapshot.is_some() && manifest.wal_lsn.is_some());
    assert_eq!(manifest.format, "parquet");
    assert_eq!(manifest.schema.as_ref().unwrap().fields().len(), 6);
    assert_eq!(manifest.pgarrow_manifest, pgarrow::io::MANIFEST_VERSION);
    assert!(
        manifest
            .files
            .iter()
            .all(|f| f.part.is_some() && f.table.is_none())
    );
    let mut all = Vec::new();
    for f in &manifest.files {
        let rows = read_parquet(&out.join(&f.path));
        assert_eq!(rows.len() as u64, f.rows, "{f:?}");
        assert_eq!(std::fs::metadata(out.join(&f.path)).unwrap().len(), f.bytes);
        all.extend(rows);
    }
    assert_eq!(sorted(all), sorted(expected));
}

#[test]
fn a_small_memory_limit_means_fewer_parquet_encoders() {
    let Some(db) = Db::with("part_memory", MIXED) else {
        return;
    };
    let source = Source::table("t").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Six leaf columns: each Parquet encoder holds about 12 MiB whatever its row groups, so a
    // 48 MiB limit (36 MiB for the connections) leaves room for one; decoding to nowhere, four.
    let options = PartitionOptions::new(4)
        .with_parts(6)
        .with_memory_limit(48 << 20);
    for (format, connections) in [(Format::Parquet, 1), (Format::Null, 4)] {
        let output = match format {
            Format::Null => Output::Discard,
            _ => Output::File(dir.path().join("t.parquet")),
        };
        let stats = to_file(&db, &source, &options, &FileTarget::new(format, output)).unwrap();
        assert_eq!(stats.export.rows, 20000);
        assert_eq!(
            (stats.connections, stats.connections_wanted),
            (connections, 4),
            "{format}"
        );
        assert!(stats.in_flight_peak <= 12 << 20, "{stats:?}");
    }
}

/// A partitioned export of `source` into one file.
fn to_file(
    db: &Db,
    source: &Source,
    options: &PartitionOptions,
    target: &FileTarget,
) -> pgarrow::Result<pgarrow::partition::PartitionedStats> {
    runtime().block_on(export_to_file(
        db.url(),
        source,
        &ExportOptions::default(),
        options,
        target,
        Hooks::new(),
    ))
}

/// A partitioned export of `source` into a directory.
fn to_dir(
    db: &Db,
    source: &Source,
    options: &PartitionOptions,
    target: &DirTarget,
) -> pgarrow::Result<pgarrow::partition::PartitionedStats> {
    runtime().block_on(export_to_dir(
        db.url(),
        source,
        &ExportOptions::default(),
        options,
        target,
        Hooks::new(),
    ))
}

fn read_parquet(path: &std::path::Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    rows(&batches)
}

#[test]
fn parts_run_elsewhere_while_the_coordinator_holds_the_snapshot() {
    let Some(db) = Db::with(
        "part_fanout",
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 30000) g;",
    ) else {
        return;
    };
    let source = Source::table("t").unwrap();
    let expected = sorted(single(&db, &source));
    let rt = runtime();
    let coordinator = rt
        .block_on(Coordinator::begin(
            db.url(),
            &source,
            &ExportOptions::default(),
            &PartitionOptions::new(4),
        ))
        .unwrap();
    // The plan survives JSON, as a scheduler would pass it on.
    let plan = pgarrow::partition::PartitionPlan::from_json(&coordinator.plan().to_json()).unwrap();
    // Rows committed after the plan are not in its snapshot.
    db.psql("INSERT INTO t SELECT g, 'late' FROM generate_series(1, 500) g; DELETE FROM t WHERE id <= 100;");
    let mut got = Vec::new();
    for part in 0..plan.parts.len() {
        let batches: Vec<RecordBatch> = rt.block_on(async {
            let mut export = export_part(db.url(), &plan, part, &ExportOptions::default())
                .await
                .unwrap();
            let mut out = Vec::new();
            while let Some(b) = export.next_batch().await.unwrap() {
                out.push(b);
            }
            out
        });
        got.extend(rows(&batches));
    }
    assert_eq!(sorted(got), expected);
    // Once the coordinator is gone, so is the snapshot: a part says what to do.
    rt.block_on(coordinator.close()).unwrap();
    let e = rt
        .block_on(export_part(db.url(), &plan, 0, &ExportOptions::default()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("pgarrow plan --hold"), "{e}");
    assert!(
        rt.block_on(export_part(db.url(), &plan, 99, &ExportOptions::default()))
            .unwrap_err()
            .to_string()
            .contains("no part 99")
    );
}

/// Reads part `part` of `plan` to its end (or only its first batch), with `read`.
fn read_part(
    rt: &tokio::runtime::Runtime,
    db: &Db,
    plan: &pgarrow::partition::PartitionPlan,
    part: usize,
    read: &PartRead,
    to_end: bool,
) -> pgarrow::Result<Vec<RecordBatch>> {
    rt.block_on(async {
        let mut export =
            export_part_with(db.url(), plan, part, &ExportOptions::default(), read).await?;
        let mut out = Vec::new();
        while let Some(b) = export.next_batch().await? {
            out.push(b);
            if !to_end {
                break;
            }
        }
        Ok(out)
    })
}

#[test]
fn a_holder_keeps_the_snapshot_until_every_part_was_read() {
    let Some(db) = Db::with(
        "part_holder",
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 30000) g;
         ANALYZE t;",
    ) else {
        return;
    };
    let source = Source::table("t").unwrap();
    let expected = sorted(single(&db, &source));
    let rt = runtime();
    // The holder runs on its own thread and runtime (its connections are that runtime's), as
    // it would in its own process; it hands the plan back, then waits.
    let (tx, rx) = std::sync::mpsc::channel();
    let url = db.url();
    let waiter = std::thread::spawn(move || {
        runtime().block_on(async {
            let c = Coordinator::begin(
                url.as_str(),
                Source::table("t").unwrap(),
                &ExportOptions::default(),
                &PartitionOptions::new(3).with_parts(3),
            )
            .await?;
            let holder = Holder::start(c, pgarrow::protocol::Config::parse(&url)?).await?;
            tx.send(holder.plan().clone()).unwrap();
            holder
                .wait(
                    std::time::Duration::from_secs(60),
                    std::time::Duration::from_millis(500),
                )
                .await
        })
    });
    let plan = rx.recv().unwrap();
    assert_eq!(
        plan.notify.as_deref(),
        Some(pgarrow::partition::NOTIFY_CHANNEL)
    );
    assert_eq!(plan.parts.len(), 3);
    let estimated: u64 = plan.parts.iter().map(|p| p.estimated_rows.unwrap()).sum();
    assert!((29_000..=31_000).contains(&estimated), "{estimated}");
    db.psql("DELETE FROM t WHERE id <= 100;");
    // A part stopped after its first batch does not count as read: its transaction rolls back.
    read_part(&rt, &db, &plan, 0, &PartRead::new(), false).unwrap();
    // Some columns, a condition, a limit.
    let narrow = PartRead::new()
        .with_columns(["h", "id"])
        .with_filter("id % 2 = 0")
        .with_limit(7);
    let some = read_part(&rt, &db, &plan, 1, &narrow, false).unwrap();
    assert_eq!(some[0].schema().field(0).name(), "h");
    assert_eq!(some.iter().map(RecordBatch::num_rows).sum::<usize>(), 7);
    let e = read_part(
        &rt,
        &db,
        &plan,
        1,
        &PartRead::new().with_columns(["nope"]),
        true,
    )
    .unwrap_err();
    assert!(e.to_string().contains("no column \"nope\""), "{e}");
    let mut got = Vec::new();
    for part in 0..plan.parts.len() {
        assert!(
            !waiter.is_finished(),
            "released before part {part} was read"
        );
        got.extend(rows(
            &read_part(&rt, &db, &plan, part, &PartRead::new(), true).unwrap(),
        ));
    }
    assert_eq!(sorted(got), expected);
    let released = waiter.join().unwrap().unwrap();
    assert_eq!(released, Released::AllRead);
    let e = read_part(&rt, &db, &plan, 0, &PartRead::new(), true).unwrap_err();
    assert!(e.to_string().contains("no longer held"), "{e}");
}

#[test]
fn per_connection_snapshots_when_asked() {
    let Some(db) = Db::with(
        "part_unsync",
        "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 5000) g;",
    ) else {
        return;
    };
    let source = Source::table("t").unwrap();
    let options = PartitionOptions::new(2).with_snapshot(SnapshotMode::PerConnection);
    same_rows(&db, &source, &options);
    let plan = runtime()
        .block_on(Coordinator::begin(
            db.url(),
            &source,
            &ExportOptions::default(),
            &options,
        ))
        .unwrap();
    assert_eq!(plan.plan().snapshot, None);
    assert!(plan.plan().wal_lsn.is_some());
}

#[test]
fn dropping_an_export_midway_stops_its_connections() {
    let Some(db) = Db::with(
        "part_drop",
        "CREATE TABLE t AS SELECT g AS id, repeat('x', 200) AS v FROM generate_series(1, 100000) g;",
    ) else {
        return;
    };
    let rt = runtime();
    rt.block_on(async {
        let mut export = PartitionedExport::start(
            db.url(),
            Source::table("t").unwrap(),
            &ExportOptions::default(),
            &PartitionOptions::new(3).with_memory_limit(1 << 20),
        )
        .await
        .unwrap();
        let first = export.next_batch().await.unwrap();
        assert!(first.is_some());
        drop(export);
    });
    // Dropping waited for the workers, which closed their connections; the server notices
    // a closed connection on its own time.
    let others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                  AND pid <> pg_backend_pid()";
    pgarrow_testkit::activity::poll_until(
        std::time::Duration::from_secs(10),
        "the worker backends are gone",
        || db.scalar(others) == "0",
    );
}

#[test]
fn a_blocking_reader_over_parts() {
    let Some(db) = Db::with("part_blocking", MIXED) else {
        return;
    };
    let source = Source::table("t").unwrap();
    let reader = pgarrow::blocking::export_partitioned(
        db.url(),
        &source,
        &ExportOptions::default(),
        &PartitionOptions::new(2).with_parts(5),
        pgarrow::Hooks::new(),
    )
    .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(sorted(rows(&batches)), sorted(single(&db, &source)));
}

#[test]
fn a_hot_standby_exports_its_snapshot_too() {
    // Since PostgreSQL 10 a standby exports snapshots; the plan's WAL position is its replay
    // position.
    let Some(shared) = pgarrow_testkit::Cluster::shared() else {
        return;
    };
    let primary = pgarrow_scratch::Cluster::start_in(shared.scratch().bin_dir()).unwrap();
    primary
        .psql(
            "postgres",
            "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 20000) g;",
        )
        .unwrap();
    let standby = primary.start_standby().unwrap();
    assert_eq!(
        standby
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .unwrap()
            .trim(),
        "t"
    );
    let source = Source::table("t").unwrap();
    let url = standby.url("postgres");
    let rt = runtime();
    let coordinator = rt
        .block_on(Coordinator::begin(
            &url,
            &source,
            &ExportOptions::default(),
            &PartitionOptions::new(2).with_parts(4),
        ))
        .unwrap();
    assert!(coordinator.plan().snapshot.is_some());
    assert!(coordinator.plan().wal_lsn.is_some());
    drop(coordinator);
    let expected = {
        let reader =
            pgarrow::blocking::export(primary.url("postgres"), &source, &ExportOptions::default())
                .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        sorted(rows(&batches))
    };
    let got = rt.block_on(async {
        let mut export = PartitionedExport::start(
            &url,
            &source,
            &ExportOptions::default(),
            &PartitionOptions::new(2).with_parts(4),
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        while let Some((_, b)) = export.next_batch().await.unwrap() {
            out.push(b);
        }
        out
    });
    assert_eq!(sorted(rows(&got)), expected);
}
