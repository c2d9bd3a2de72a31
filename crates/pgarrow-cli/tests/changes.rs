//! `pgarrow changes`: a slot's changes into file sets under a concurrent writer, the process
//! killed (SIGKILL) at arbitrary moments and started again: the files the manifest lists hold
//! every change exactly once. SIGTERM ends a run at a transaction boundary, cleanly.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, UInt64Type};
use common::*;

/// Each (id, _op, _lsn) of the files `dir`'s manifest lists, with how often it is there; and
/// that nothing is left pending.
fn listed(dir: &std::path::Path) -> BTreeMap<(i32, String, u64), usize> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("_changes.json")).unwrap()).unwrap();
    assert_eq!(manifest["pending"], serde_json::json!([]), "{manifest}");
    let mut seen = BTreeMap::new();
    for f in manifest["files"].as_array().unwrap() {
        for b in read_parquet(&dir.join(f["path"].as_str().unwrap())) {
            let ids = b.column_by_name("id").unwrap().as_primitive::<Int32Type>();
            let ops = b.column_by_name("_op").unwrap().as_string::<i32>();
            let lsns = b
                .column_by_name("_lsn")
                .unwrap()
                .as_primitive::<UInt64Type>();
            for i in 0..b.num_rows() {
                let key = (ids.value(i), ops.value(i).to_owned(), lsns.value(i));
                *seen.entry(key).or_insert(0) += 1;
            }
        }
    }
    seen
}

#[test]
fn killed_and_restarted_under_a_writer_every_change_is_written_once() {
    let Some(pg) = pgarrow_testkit::logical_cluster(&[]) else {
        return;
    };
    let db = pg.create_database("changes").unwrap();
    pg.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
         CREATE PUBLICATION p FOR TABLE t;
         CREATE PROCEDURE write(n int) LANGUAGE plpgsql AS $$
         BEGIN
           FOR i IN 1..n LOOP
             INSERT INTO t VALUES (i, 0);
             UPDATE t SET v = v + 1 WHERE id = i / 2;
             COMMIT;
             PERFORM pg_sleep(0.001);
           END LOOP;
         END $$;",
    )
    .unwrap();
    let url = pg.url(&db);
    let dir = tempdir();
    let out_dir = dir.path().join("changes");
    let args = |extra: &[&str]| {
        let base = [
            "changes",
            "--url",
            &url,
            "--slot",
            "s",
            "--create-slot",
            "--publication",
            "p",
            "-o",
            path_str(&out_dir),
            "--roll-rows",
            "40",
        ];
        pgarrow([&base[..], extra].concat())
    };
    // The slot first: the writer's changes all come after it.
    assert_success(&run(args(&["--catch-up"])));
    const N: i32 = 1500;
    let writer = {
        let (psql, url) = (pg.psql_path().to_owned(), url.clone());
        std::thread::spawn(move || {
            let out = std::process::Command::new(psql)
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &url, "-c"])
                .arg(format!("CALL write({N})"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        })
    };
    // Killed at moments the test does not choose: between rolls, inside one, between a
    // file's write and the slot's confirmation.
    let mut kills = 0;
    for pause in [150, 400, 250, 600, 350] {
        let child = spawn(args(&[]));
        std::thread::sleep(Duration::from_millis(pause));
        assert!(signal(child.id(), "KILL"));
        let _ = wait_within(child, Duration::from_secs(30));
        kills += 1;
    }
    writer.join().unwrap();
    // SIGTERM: the run ends at a transaction boundary with its last roll written, status 0.
    let child = spawn(args(&[]));
    std::thread::sleep(Duration::from_millis(300));
    let (out, _) = interrupt(child, "TERM", Duration::from_secs(30));
    let err = assert_success(&out);
    assert!(err.contains("stopped at a transaction boundary"), "{err}");
    // The rest, to the end.
    let err = assert_success(&run(args(&["--catch-up"])));
    assert!(err.contains("caught up"), "{err}");

    let seen = listed(&out_dir);
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "written twice after {kills} kills: {repeated:?}"
    );
    let inserts: Vec<i32> = seen
        .keys()
        .filter(|(_, op, _)| op == "insert")
        .map(|(id, _, _)| *id)
        .collect();
    assert_eq!(inserts, (1..=N).collect::<Vec<_>>(), "every insert, once");
    let updates = seen.keys().filter(|(_, op, _)| op == "update").count();
    let expected: i64 = pg
        .psql(&db, "SELECT sum(v) FROM t")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(updates as i64, expected, "every update, once");
}

#[test]
fn changes_to_stdout_are_arrow_ipc_streams_and_bad_arguments_are_named() {
    let Some(pg) = pgarrow_testkit::logical_cluster(&[]) else {
        return;
    };
    let db = pg.create_database("changes_stdout").unwrap();
    pg.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE PUBLICATION p FOR TABLE t;
         SELECT pg_create_logical_replication_slot('s', 'pgoutput');
         INSERT INTO t VALUES (1, 'a'), (2, 'b');
         UPDATE t SET v = 'c' WHERE id = 2;",
    )
    .unwrap();
    let url = pg.url(&db);
    let base = [
        "changes",
        "--url",
        &url,
        "--slot",
        "s",
        "--publication",
        "p",
    ];
    let out = run(pgarrow(
        [&base[..], &["-o", "-", "--catch-up", "--quiet"]].concat(),
    ));
    assert_success(&out);
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(out.stdout), None).unwrap();
    assert_eq!(
        reader.schema().metadata()["pgarrow.table"],
        "\"public\".\"t\""
    );
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 3);
    let out = run(pgarrow(
        [
            &base[..3],
            &["--slot", "nope", "--publication", "p", "-o", "-"],
        ]
        .concat(),
    ));
    assert_usage_error(&out, &["\"nope\" does not exist", "--create-slot"]);
    let out = run(pgarrow(
        [&base[..], &["-o", "-", "--start", "16-B3"]].concat(),
    ));
    assert_usage_error(&out, &["--start \"16-B3\"", "not a WAL position"]);
    let out = run(pgarrow(
        [
            &base[..],
            &[
                "-o",
                path_str(&tempdir().path().join("x")),
                "--values",
                "binary",
                "--catch-up",
            ],
        ]
        .concat(),
    ));
    assert_success(&out);
}

#[test]
fn apply_replays_a_changes_directory_into_another_database_once() {
    let Some(pg) = pgarrow_testkit::logical_cluster(&[]) else {
        return;
    };
    let tables = "CREATE TABLE t (id int PRIMARY KEY, v text, n numeric);
                  CREATE TABLE u (k text NOT NULL, v int);";
    let source = pg.create_database("apply_src").unwrap();
    pg.psql(
        &source,
        &format!(
            "{tables}
             ALTER TABLE u REPLICA IDENTITY FULL;
             CREATE PUBLICATION p FOR TABLE t, u;
             SELECT pg_create_logical_replication_slot('s', 'pgoutput');
             INSERT INTO t SELECT g, 'v' || g, g / 7.0 FROM generate_series(1, 500) g;
             INSERT INTO u VALUES ('a', 1), ('b', 2);
             UPDATE t SET v = 'even' WHERE id % 2 = 0;
             UPDATE t SET id = -id WHERE id % 50 = 0;
             DELETE FROM t WHERE id % 3 = 0;
             UPDATE u SET v = 20 WHERE k = 'b';"
        ),
    )
    .unwrap();
    let target = pg.create_database("apply_dst").unwrap();
    pg.psql(&target, &format!("{tables} CREATE SCHEMA archive; ALTER TABLE u SET SCHEMA archive; ALTER TABLE archive.u ADD PRIMARY KEY (k);")).unwrap();
    let dir = tempdir();
    let out_dir = dir.path().join("changes");
    let url = pg.url(&source);
    assert_success(&run(pgarrow([
        "changes",
        "--url",
        &url,
        "--slot",
        "s",
        "--publication",
        "p",
        "-o",
        path_str(&out_dir),
        "--roll-rows",
        "100",
        "--catch-up",
        "--quiet",
    ])));
    let target_url = pg.url(&target);
    let apply = |extra: &[&str]| {
        let base = [
            "apply",
            path_str(&out_dir),
            "--url",
            &target_url,
            "--table",
            "u=archive.u",
        ];
        run(pgarrow([&base[..], extra].concat()))
    };
    let out = apply(&["--json"]);
    // The server's notices are printed (no --quiet): apply's own statements make none.
    let err = assert_success(&out);
    assert!(!err.contains("NOTICE"), "{err}");
    let stats: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(stats["slot"], "s", "{stats}");
    assert!(stats["rolls"].as_u64().unwrap() >= 2, "{stats}");
    assert_eq!(stats["rolls_skipped"], 0, "{stats}");
    let same = |sql_source: &str, sql_target: &str| {
        assert_eq!(
            pg.psql(&target, sql_target).unwrap(),
            pg.psql(&source, sql_source).unwrap()
        );
    };
    same("SELECT * FROM t ORDER BY id", "SELECT * FROM t ORDER BY id");
    same(
        "SELECT * FROM u ORDER BY k",
        "SELECT * FROM archive.u ORDER BY k",
    );

    // A rerun finds every roll applied, and says so.
    let err = assert_success(&apply(&[]));
    assert!(
        err.contains("applied 0 roll(s)") && err.contains("applied before"),
        "{err}"
    );
    assert!(!err.contains("NOTICE"), "{err}");

    // Usage errors are named, with status 2.
    assert_usage_error(&apply(&["--key", "t"]), &["--key \"t\"", "TABLE=COLUMN"]);
    assert_usage_error(
        &apply(&["--table", "t"]),
        &["--table \"t\"", "SOURCE=TARGET"],
    );
    let elsewhere = pg.create_database("apply_none").unwrap();
    let out = run(pgarrow([
        "apply",
        path_str(&out_dir),
        "--url",
        &pg.url(&elsewhere),
    ]));
    assert_usage_error(&out, &["the target table", "does not exist"]);
}
