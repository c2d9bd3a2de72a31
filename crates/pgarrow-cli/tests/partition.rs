//! `export --partitions`, `--output-dir` and the plan/part fan-out, run as a user runs them:
//! separate processes against a real server.

mod common;

use std::io::Read as _;
use std::process::{Child, Stdio};

use common::*;

const TABLE: &str = "CREATE TABLE t AS SELECT g::bigint AS id, md5(g::text) AS h, \
                     (g % 100)::bigint AS k FROM generate_series(1, 40000) g;";

fn sorted_ids(batches: &[arrow_array::RecordBatch]) -> Vec<i64> {
    let mut ids = int64s(batches, "id");
    ids.sort_unstable();
    ids
}

#[test]
fn partitions_into_one_file_or_a_directory() {
    let Some(t) = Setup::new("cli_part", TABLE) else {
        return;
    };
    let all: Vec<i64> = (1..=40000).collect();
    for (args, name) in [
        (&["--table", "t", "--partitions", "3"][..], "t.parquet"),
        (
            &[
                "--table",
                "t",
                "--partitions",
                "2",
                "--parts",
                "5",
                "--order-preserving",
            ],
            "o.arrow",
        ),
        (
            &[
                "--query",
                "SELECT * FROM t",
                "--partitions",
                "2",
                "--partition-by",
                "k",
            ],
            "q.arrows",
        ),
    ] {
        let (batches, err) = t.export_rows(args, name, 40000);
        assert_eq!(sorted_ids(&batches), all, "{args:?}");
        assert!(
            err.contains("2 connections") || err.contains("3 connections"),
            "{err}"
        );
        if args.contains(&"--order-preserving") {
            assert_eq!(int64s(&batches, "id"), all, "in table order");
        }
    }
    // One file per part, the manifest last; --stats-json says how it ran.
    let out = run(t.command(
        "export",
        &[
            "--table",
            "t",
            "--partitions",
            "2",
            "--output-dir",
            "parts",
            "--to",
            "arrow",
            "--stats-json",
            "stats.json",
        ],
    ));
    let err = assert_success(&out);
    assert!(err.contains("manifest"), "{err}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path("parts/_manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["rows"], 40000);
    assert_eq!(manifest["format"], "arrow");
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "a small table: one part per connection");
    let mut ids = Vec::new();
    for f in files {
        let batches = read_arrow_file(&t.path("parts").join(f["path"].as_str().unwrap()));
        assert_eq!(row_count(&batches), f["rows"].as_u64().unwrap());
        assert_eq!(f["range"]["kind"], "blocks");
        ids.extend(int64s(&batches, "id"));
    }
    ids.sort_unstable();
    assert_eq!(ids, all);
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["connections"], 2);
    assert_eq!(stats["parts"], 2);
    assert_eq!(stats["rows"], 40000);
}

#[test]
fn options_that_do_not_fit_are_refused() {
    let Some(t) = Setup::new("cli_part_bad", TABLE) else {
        return;
    };
    // A plan file that cannot be read: status 1.
    let out = t.export(&["--plan", "nowhere.json", "--part", "0", "--to", "null"]);
    assert_error(&out, &["cannot read the plan"]);
    // A column that cannot be split, found once the query is described: a usage error
    // (status 2), as the library's error kind says.
    let out = t.export(&[
        "--table",
        "t",
        "--partitions",
        "2",
        "--partition-by",
        "h",
        "--to",
        "null",
    ]);
    assert_usage_error(&out, &["--partition-by h", "text column cannot be split"]);
    // What the command line contradicts: a usage error, status 2.
    let cases: [(&[&str], &[&str]); 2] = [
        (
            &["--table", "t", "--output-dir", "d", "--order-preserving"],
            &["--order-preserving"],
        ),
        (
            &["--table", "t", "--output-dir", "d", "--to", "null"],
            &["--output-dir writes files"],
        ),
    ];
    for (args, needles) in cases {
        let out = t.export(args);
        assert_usage_error(&out, needles);
    }
    // A size that is not one is a usage error (status 2, as clap reports them).
    let out = t.export(&[
        "--table",
        "t",
        "--partitions",
        "2",
        "--memory-limit",
        "lots",
        "--to",
        "null",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid size \"lots\""),
        "{}",
        stderr(&out)
    );
    t.assert_holds(&[]);
}

/// `pgarrow plan --hold` with its standard input and output piped, as a scheduler runs it.
fn hold(t: &Setup, args: &[&str]) -> Child {
    let mut cmd = t.command("plan", args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("cannot start pgarrow plan")
}

#[test]
fn parts_exported_by_separate_processes_in_a_held_snapshot() {
    let Some(t) = Setup::new("cli_fanout", TABLE) else {
        return;
    };
    let mut holder = hold(&t, &["--table", "t", "--partitions", "4", "--hold"]);
    // The plan ends when pgarrow closes its standard output, while it keeps holding.
    let mut plan = String::new();
    holder
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut plan)
        .unwrap();
    std::fs::write(t.path("plan.json"), &plan).unwrap();
    let json: serde_json::Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(json["parts"].as_array().unwrap().len(), 4);
    assert!(json["snapshot"].is_string(), "{plan}");
    assert!(holder.try_wait().unwrap().is_none(), "still holding");
    // Changes committed now are not in the snapshot.
    t.psql("DELETE FROM t WHERE id <= 1000; INSERT INTO t VALUES (99999, 'late', 0);");
    // The parts, at once, each in its own process (as `xargs -P 4` runs them).
    let children: Vec<Child> = (0..4)
        .map(|k| {
            let part = k.to_string();
            let name = format!("part-{k}.parquet");
            spawn(t.command(
                "export",
                &[
                    "--plan",
                    "plan.json",
                    "--part",
                    &part,
                    "-o",
                    &name,
                    "--quiet",
                ],
            ))
        })
        .collect();
    let mut ids = Vec::new();
    for (k, child) in children.into_iter().enumerate() {
        let out = wait_within(child, DEADLINE);
        assert_success(&out);
        ids.extend(int64s(
            &read_parquet(&t.path(&format!("part-{k}.parquet"))),
            "id",
        ));
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=40000).collect::<Vec<i64>>());
    // Closing its standard input ends the hold, and with it the snapshot.
    drop(holder.stdin.take());
    let out = wait_within(holder, DEADLINE);
    let err = assert_success(&out);
    assert!(err.contains("holding snapshot"), "{err}");
    let out = t.export(&["--plan", "plan.json", "--part", "0", "--to", "null"]);
    assert_error(
        &out,
        &["cannot read in the plan's snapshot", "pgarrow plan --hold"],
    );
    let out = t.export(&["--plan", "plan.json", "--part", "4", "--to", "null"]);
    assert_usage_error(&out, &["no part 4"]);
}

#[test]
fn a_plan_written_to_a_file_and_a_hold_ended_by_a_signal() {
    let Some(t) = Setup::new("cli_plan_file", TABLE) else {
        return;
    };
    let out = run(t.command(
        "plan",
        &[
            "--query",
            "SELECT id, h FROM t",
            "--partitions",
            "3",
            "--partition-by",
            "id",
            "-o",
            "p.json",
        ],
    ));
    assert_success(&out);
    assert!(stdout(&out).is_empty());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path("p.json")).unwrap()).unwrap();
    let parts = json["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0]["range"]["kind"], "keys");
    assert_eq!(parts[0]["range"]["nulls"], true);
    // Without --hold the snapshot ended with the command; parts can still run in snapshots
    // of their own when the plan was made so.
    let out = run(t.command(
        "plan",
        &[
            "--table",
            "t",
            "--partitions",
            "2",
            "--snapshot",
            "per-connection",
            "-o",
            "q.json",
        ],
    ));
    assert_success(&out);
    let out = t.export(&["--plan", "q.json", "--part", "1", "-o", "q1.parquet"]);
    assert_success(&out);
    // A hold whose standard input is not a pipe ends on SIGTERM, with status 0.
    let mut cmd = t.command(
        "plan",
        &[
            "--table",
            "t",
            "--partitions",
            "2",
            "--hold",
            "-o",
            "h.json",
        ],
    );
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut line = [0u8; 1];
    // Its stderr says it holds once the plan is written.
    let mut stderr = child.stderr.take().unwrap();
    stderr.read_exact(&mut line).unwrap();
    assert!(t.path("h.json").exists());
    assert!(signal(child.id(), "TERM"));
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn ctrl_c_stops_every_connection_and_leaves_nothing() {
    use pgarrow_testkit::activity::{
        CANCEL_REACHES_BACKEND, backend_gone_within, slow_database, wait_for_pid,
    };
    use std::time::Duration;
    let Some((pg, db)) = slow_database("cli_part_sigint", "0.001") else {
        return;
    };
    let t = Setup::on(pg, &db);
    // Analyzed, so that planning takes the key's bounds from the statistics without running
    // the (slow) query.
    t.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100000) g; ANALYZE t;");
    let child = spawn(t.command(
        "export",
        &[
            "--query",
            "SELECT id, slow(id) AS s FROM t",
            "--partitions",
            "2",
            "--partition-by",
            "id",
            "-o",
            "out.parquet",
        ],
    ));
    let find = format!(
        "SELECT pid FROM pg_stat_activity WHERE datname = '{db}' \
         AND application_name = 'pgarrow' AND query LIKE 'COPY %' AND state = 'active' LIMIT 1"
    );
    let backend = wait_for_pid(t.pg, &find, Duration::from_secs(60));
    let (out, took) = interrupt(child, "INT", Duration::from_secs(30));
    assert_interrupted(&out, "INT");
    assert!(
        took < Duration::from_secs(3),
        "exited {took:?} after the signal"
    );
    t.assert_holds(&[]);
    backend_gone_within(t.pg, backend, CANCEL_REACHES_BACKEND);
    let left = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND application_name = 'pgarrow'"
    );
    pgarrow_testkit::activity::poll_until(
        CANCEL_REACHES_BACKEND,
        "every connection is gone",
        || t.pg.psql("postgres", &left).unwrap().trim() == "0",
    );
}
