//! `pgarrow export --replication-slot NAME --create-slot`: under a concurrent writer, the
//! exported rows with the slot's changes applied (read back with `test_decoding`) are the
//! table's final content: none lost, none twice. And what it refuses, said plainly.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::*;

/// Each `(id, v)` of the Parquet files of `dir`.
fn dir_rows(dir: &std::path::Path) -> BTreeMap<i32, i32> {
    let mut rows = BTreeMap::new();
    for name in dir_entries(dir).iter().filter(|n| n.ends_with(".parquet")) {
        for batch in read_parquet(&dir.join(name)) {
            use arrow_array::cast::AsArray;
            use arrow_array::types::Int32Type;
            let id = batch.column(0).as_primitive::<Int32Type>();
            let v = batch.column(1).as_primitive::<Int32Type>();
            for i in 0..batch.num_rows() {
                assert!(
                    rows.insert(id.value(i), v.value(i)).is_none(),
                    "row {} exported twice",
                    id.value(i)
                );
            }
        }
    }
    rows
}

/// `name[type]:value` of a test_decoding line, as an integer.
fn field(line: &str, name: &str) -> i32 {
    let start = line
        .find(&format!("{name}[integer]:"))
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    let rest = &line[start + name.len() + "[integer]:".len()..];
    let end = rest.find(' ').unwrap_or(rest.len());
    rest[..end].parse().unwrap()
}

#[test]
fn export_then_the_slots_changes_is_the_final_table() {
    let Some(pg) = pgarrow_testkit::logical_cluster(&[]) else {
        return;
    };
    let db = pg.create_database("slot").unwrap();
    pg.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
         CREATE SEQUENCE ids START 1000001;
         INSERT INTO t SELECT g, 0 FROM generate_series(1, 300000) g;",
    )
    .unwrap();
    let url = pg.url(&db);
    // A writer updating, inserting and deleting before, during and after the export.
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, commits) = (stop.clone(), commits.clone());
        let psql = pg.psql_path().to_owned();
        let url = url.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let out = std::process::Command::new(&psql)
                    .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &url, "-c"])
                    .arg(
                        "BEGIN; UPDATE t SET v = v + 1 WHERE id = 1 + (random() * 299999)::int; \
                         INSERT INTO t SELECT nextval('ids'), 7; \
                         DELETE FROM t WHERE id = (SELECT min(id) FROM t); COMMIT;",
                    )
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                commits.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while commits.load(Ordering::SeqCst) < 3 {
        std::thread::yield_now();
    }
    let dir = tempdir();
    // `export --table t --replication-slot SLOT --create-slot EXTRA...` on `url`.
    let hand_off = |url: &str, slot: &str, extra: &[&str]| {
        let base = ["export", "--url", url, "--table", "t"];
        let slot = ["--replication-slot", slot, "--create-slot"];
        run(pgarrow([&base[..], &slot, extra].concat()))
    };
    let out = hand_off(
        &url,
        "handoff",
        &[
            "--slot-plugin",
            "test_decoding",
            "--partitions",
            "2",
            "--output-dir",
            path_str(&dir.path().join("out")),
            "--json",
        ],
    );
    let err = assert_success(&out);
    let during = commits.load(Ordering::SeqCst);
    // A few more commits after the export, then the writer stops.
    while commits.load(Ordering::SeqCst) < during + 3 {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(
        err.contains("created replication slot handoff (test_decoding)"),
        "{err}"
    );

    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let lsn = report["replication_slot"]["consistent_point"]
        .as_str()
        .unwrap()
        .to_owned();
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/_manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["replication_slot"], "handoff");
    assert_eq!(manifest["wal_lsn"].as_str(), Some(lsn.as_str()));

    // The exported rows, then every change the slot has, in commit order.
    let mut rows = dir_rows(&dir.path().join("out"));
    // Decoding reads the WAL the server has flushed (the scratch cluster commits without
    // waiting for the flush): flush it all first.
    pg.psql(&db, "CHECKPOINT").unwrap();
    let changes = pg
        .psql(
            &db,
            "SELECT data FROM pg_logical_slot_get_changes('handoff', NULL, NULL)",
        )
        .unwrap();
    let mut applied = 0;
    for line in changes
        .lines()
        .filter(|l| l.starts_with("table public.t: "))
    {
        let id = field(line, "id");
        if line.contains(": INSERT: ") {
            assert!(
                rows.insert(id, field(line, "v")).is_none(),
                "{line}: already exported"
            );
        } else if line.contains(": UPDATE: ") {
            assert!(
                rows.insert(id, field(line, "v")).is_some(),
                "{line}: never exported"
            );
        } else if line.contains(": DELETE: ") {
            assert!(rows.remove(&id).is_some(), "{line}: never exported");
        } else {
            panic!("unexpected change {line}");
        }
        applied += 1;
    }
    assert!(
        applied > 0,
        "no change after the export: the writer ran after it"
    );
    let final_rows: BTreeMap<i32, i32> = pg
        .psql(&db, "SELECT id || ' ' || v FROM t")
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (id, v) = l.trim().split_once(' ').unwrap();
            (id.parse().unwrap(), v.parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), final_rows.len());
    let differ: Vec<_> = final_rows
        .iter()
        .filter(|(id, v)| rows.get(id) != Some(v))
        .map(|(id, v)| (*id, *v, rows.get(id).copied()))
        .take(10)
        .collect();
    assert!(
        differ.is_empty(),
        "the export and the slot's changes differ from the table (id, table's v, ours): \
         {differ:?}; slot at {lsn}; changes:\n{}",
        changes.lines().take(40).collect::<Vec<_>>().join("\n")
    );

    // The slot exists now; a role without REPLICATION.
    let out = hand_off(
        &url,
        "handoff",
        &["-o", path_str(&dir.path().join("x.parquet"))],
    );
    assert_error(&out, &["replication slot \"handoff\" exists"]);
    pg.psql(&db, "CREATE ROLE plain LOGIN PASSWORD 'pw'")
        .unwrap();
    let plain = pg.url_for("plain", "pw", &db);
    let out = hand_off(
        &plain,
        "other",
        &["-o", path_str(&dir.path().join("y.parquet"))],
    );
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("REPLICATION attribute"),
        "{err}"
    );
    assert!(!dir.path().join("x.parquet").exists() && !dir.path().join("y.parquet").exists());
}

#[test]
fn a_server_without_logical_wal_is_named() {
    if pgarrow_testkit::Cluster::shared().is_none() {
        return;
    }
    let pg = pgarrow_scratch::Cluster::builder()
        .with_hba_lines(["host replication postgres 127.0.0.1/32 trust"])
        .with_settings(["wal_level = replica"])
        .start()
        .expect("a cluster");
    let db = pg.create_database("slot_wal").unwrap();
    pg.psql(&db, "CREATE TABLE t (id int)").unwrap();
    let dir = tempdir();
    let out_file = dir.path().join("t.parquet");
    let url = pg.url(&db);
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "--url", &url, "--table", "t"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-o", path_str(&out_file)]);
        run(pgarrow(args))
    };
    let out = export(&["--replication-slot", "s", "--create-slot"]);
    assert_error(&out, &["the server's wal_level must be logical"]);
    assert!(!out_file.exists());
    // --create-slot alone, and a name PostgreSQL refuses.
    let out = export(&["--create-slot"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = export(&["--replication-slot", "Bad-Name", "--create-slot"]);
    assert_usage_error(&out, &["lower-case letters"]);
}
