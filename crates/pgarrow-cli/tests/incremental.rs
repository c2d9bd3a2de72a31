//! `pgarrow export --incremental-by`: runs into files of their own, the state file they share,
//! a run killed midway (the state stays, the next run is right), and what is refused.

mod common;

use std::time::{Duration, Instant};

use common::*;

const TABLE: &str = "
CREATE TABLE t (id bigint PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON t (updated_at);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE TRIGGER touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch();
INSERT INTO t (id, v) SELECT g, 'v' || g FROM generate_series(1, 1000) g;
";

/// The arguments every run of `t` shares.
const RUN: [&str; 8] = [
    "--table",
    "t",
    "--incremental-by",
    "updated_at",
    "--state",
    "t.state.json",
    "-o",
    "t.parquet",
];

fn run(t: &Setup, extra: &[&str]) -> std::process::Output {
    t.export(&[&RUN[..], extra].concat())
}

/// The ids of a run's file, sorted.
fn ids(t: &Setup, run: u32) -> Vec<i64> {
    let batches = read_parquet(&t.path(&format!("t.run-{run:06}.parquet")));
    let mut ids = int64s(&batches, "id");
    ids.sort_unstable();
    ids
}

fn state(t: &Setup) -> serde_json::Value {
    let text = std::fs::read_to_string(t.path("t.state.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn runs_write_their_own_files_and_share_the_state() {
    let Some(t) = Setup::new("cli_incr", TABLE) else {
        return;
    };
    let err = assert_success(&run(&t, &[]));
    assert!(err.contains("run 1: the first"), "{err}");
    assert_eq!(ids(&t, 1).len(), 1000);
    let s1 = state(&t);
    assert_eq!(s1["run"], 1);
    assert_eq!(s1["rows"], 1000);
    assert_eq!(s1["table"], "public.t");
    assert_eq!(s1["column"], "updated_at");
    assert_eq!(s1["files"][0], "t.run-000001.parquet");
    assert!(s1["snapshot"].as_str().unwrap().contains(':'), "{s1}");

    t.psql("UPDATE t SET v = 'x' WHERE id IN (10, 20); INSERT INTO t (id, v) VALUES (1001, 'n')");
    let err = assert_success(&run(&t, &["--stats"]));
    assert!(err.contains("run 2: changes since run 1"), "{err}");
    assert_eq!(ids(&t, 2), vec![10, 20, 1001]);
    assert_eq!(state(&t)["run"], 2);

    // Killed while run 3 writes: the state is still run 2's, and no file of run 3 is left.
    t.psql("INSERT INTO t (id, v) SELECT g, repeat('w', 200) FROM generate_series(2000, 300000) g");
    let before = std::fs::read(t.path("t.state.json")).unwrap();
    let cmd = t.command("export", &[&RUN[..], &["--quiet"]].concat());
    let child = spawn(cmd);
    let started = Instant::now();
    let temp = loop {
        let found = dir_entries(t.dir.path())
            .into_iter()
            .find(|n| n.starts_with(".t.run-000003.parquet.") && n.ends_with(".pgarrow-tmp"));
        if let Some(found) = found {
            break found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "run 3 never started writing: {:?}",
            dir_entries(t.dir.path())
        );
    };
    let (out, _) = interrupt(child, "KILL", Duration::from_secs(30));
    assert!(!out.status.success());
    assert_eq!(std::fs::read(t.path("t.state.json")).unwrap(), before);
    assert!(!t.path("t.run-000003.parquet").exists(), "{temp}");

    // The next run (3 again) has everything since run 2.
    t.psql("UPDATE t SET v = 'y' WHERE id = 30");
    assert_success(&run(&t, &["--quiet"]));
    let third = ids(&t, 3);
    assert_eq!(third.len(), 298_002, "the inserted rows and id 30");
    assert_eq!(third[0], 30);
    assert_eq!(state(&t)["run"], 3);
}

#[test]
fn what_an_incremental_run_refuses() {
    let Some(t) = Setup::new("cli_incr_refuse", TABLE) else {
        return;
    };
    assert_success(&run(&t, &[]));
    // The state of another column.
    let out = t.export(&[
        "--table",
        "t",
        "--incremental-by",
        "id",
        "--state",
        "t.state.json",
        "-o",
        "t.parquet",
    ]);
    assert_usage_error(&out, &["follows column \"updated_at\"", "--restart"]);
    // A query, several tables.
    let out = t.export(&[
        "--query",
        "SELECT * FROM t",
        "--incremental-by",
        "id",
        "--state",
        "q.json",
        "-o",
        "q.parquet",
    ]);
    assert_usage_error(&out, &["reads one --table"]);
    // --state without --incremental-by, and the reverse, are clap's usage errors.
    let out = t.export(&["--table", "t", "--state", "s.json", "-o", "x.parquet"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A corrupt state is named.
    std::fs::write(t.path("bad.json"), "{}").unwrap();
    let out = t.export(&[
        "--table",
        "t",
        "--incremental-by",
        "updated_at",
        "--state",
        "bad.json",
        "-o",
        "t.parquet",
    ]);
    assert_usage_error(&out, &["bad.json is not an incremental state"]);
}

#[test]
fn partitioned_runs_read_the_run_snapshot_into_run_directories() {
    let Some(t) = Setup::new("cli_incr_parts", TABLE) else {
        return;
    };
    let args = [
        "--table",
        "t",
        "--incremental-by",
        "updated_at",
        "--state",
        "p.json",
        "--partitions",
        "2",
        "--output-dir",
        "out",
    ];
    let dir_ids = |run: u32| {
        let dir = t.path(&format!("out/run-{run:06}"));
        assert!(dir.join("_manifest.json").exists(), "{dir:?}");
        let mut ids: Vec<i64> = dir_entries(&dir)
            .iter()
            .filter(|n| n.ends_with(".parquet"))
            .flat_map(|n| int64s(&read_parquet(&dir.join(n)), "id"))
            .collect();
        ids.sort_unstable();
        ids
    };
    let err = assert_success(&t.export(&args));
    assert!(
        err.contains("run 1: the first") && err.contains("2 connections"),
        "{err}"
    );
    assert_eq!(dir_ids(1), (1..=1000).collect::<Vec<_>>());
    // A transaction open across run 2 commits a late row after it: run 3 has it.
    let mut late = spawn({
        let mut cmd = std::process::Command::new(t.pg.psql_path());
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &t.url])
            .stdin(std::process::Stdio::piped());
        cmd
    });
    {
        use std::io::Write as _;
        let stdin = late.stdin.as_mut().unwrap();
        writeln!(stdin, "BEGIN; INSERT INTO t (id, v) VALUES (5000, 'late');").unwrap();
        stdin.flush().unwrap();
    }
    // The late row's transaction holds its ID before run 2 reads: wait until it shows.
    let started = Instant::now();
    while t.psql("SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()") == "0" {
        assert!(started.elapsed() < Duration::from_secs(30), "the late transaction never began");
    }
    t.psql("UPDATE t SET v = 'p' WHERE id BETWEEN 100 AND 104");
    assert_success(&t.export(&args));
    assert_eq!(dir_ids(2), vec![100, 101, 102, 103, 104]);
    {
        use std::io::Write as _;
        let mut stdin = late.stdin.take().unwrap();
        writeln!(stdin, "COMMIT;").unwrap();
    }
    let out = wait_within(late, Duration::from_secs(30));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_success(&t.export(&args));
    assert_eq!(dir_ids(3), vec![5000]);
}
