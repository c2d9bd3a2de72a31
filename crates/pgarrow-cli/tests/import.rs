//! `pgarrow import`: files written by `pgarrow export` (and an IPC stream on stdin) back into
//! tables, with each mode, and what it refuses.

mod common;

use std::io::Write as _;
use std::process::Stdio;

use common::*;

const TABLES: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE TABLE src AS SELECT g::int8 AS id, g * 1.5 AS n, md5(g::text) AS h,
    (ARRAY['sad', 'ok'])[1 + g % 2]::mood AS m, (g || ' hours')::interval AS iv,
    '2024-01-01'::date + g AS d
FROM generate_series(1, 3000) g;
CREATE TABLE dst (LIKE src);
ALTER TABLE dst ADD PRIMARY KEY (id);
";

fn rows(t: &Setup, table: &str) -> String {
    t.psql(&format!("SELECT _r::text FROM {table} _r ORDER BY id"))
}

#[test]
fn files_go_back_into_tables() {
    let Some(t) = Setup::new("cli_import", TABLES) else {
        return;
    };
    for name in ["a.parquet", "a2.parquet", "b.arrow"] {
        assert_success(&t.export(&["--table", "src", "-o", name]));
    }
    // Two files in one load, one transaction: dst has a primary key, the second file's rows
    // collide with the first's, and nothing is loaded.
    let out = run(t.command(
        "import",
        &[
            "a.parquet",
            "a2.parquet",
            "--into",
            "dst",
            "--mode",
            "replace",
        ],
    ));
    assert_error(&out, &["duplicate key", "23505"]);
    assert_eq!(t.psql("SELECT count(*) FROM dst"), "0");
    // Into a table without the key, both files' rows.
    t.psql("CREATE TABLE twice (LIKE src)");
    let out = run(t.command("import", &["a.parquet", "a2.parquet", "--into", "twice"]));
    let err = assert_success(&out);
    assert!(
        err.contains("loaded 6,000 rows from 2 files into twice (append)"),
        "{err}"
    );
    let out = run(t.command("import", &["a.parquet", "--into", "dst"]));
    let err = assert_success(&out);
    assert!(
        err.contains("loaded 3,000 rows from a.parquet into dst (append)"),
        "{err}"
    );
    assert_eq!(rows(&t, "dst"), rows(&t, "src"));
    // An IPC file (intervals as Arrow's MonthDayNano, not Parquet's struct).
    let out = run(t.command("import", &["b.arrow", "--into", "dst", "--mode", "replace"]));
    assert_success(&out);
    assert_eq!(rows(&t, "dst"), rows(&t, "src"));
    // Upsert from an IPC stream on stdin: every row updated in place.
    t.psql("UPDATE src SET h = 'changed' WHERE id % 2 = 0");
    let out = t.export(&["--table", "src", "--to", "arrow-stream", "-o", "d.arrows"]);
    assert_success(&out);
    let mut cmd = t.command(
        "import",
        &[
            "-", "--into", "dst", "--mode", "upsert", "--key", "id", "--stats",
        ],
    );
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let bytes = std::fs::read(t.path("d.arrows")).unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = wait_within(child, DEADLINE);
    let err = assert_success(&out);
    assert!(err.contains("encode") && err.contains("commit"), "{err}");
    assert_eq!(rows(&t, "dst"), rows(&t, "src"));
    assert_eq!(
        t.psql("SELECT count(*) FROM dst WHERE h = 'changed'"),
        "1500"
    );
}

#[test]
fn what_import_refuses() {
    let Some(t) = Setup::new("cli_import_bad", TABLES) else {
        return;
    };
    assert_success(&t.export(&["--table", "src", "-o", "a.parquet"]));
    assert_success(&t.export(&["--query", "SELECT id, h FROM src", "-o", "b.parquet"]));
    assert_success(&t.export(&["--table", "src", "-o", "c.arrow"]));
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &["a.parquet", "b.parquet", "--into", "dst"],
            &["b.parquet does not have the columns of a.parquet"],
        ),
        (
            &["a.parquet", "c.arrow", "--into", "dst"],
            &["c.arrow does not have the columns of a.parquet"],
        ),
        (
            &["a.parquet", "--into", "dst", "--mode", "upsert"],
            &["--mode upsert needs --key"],
        ),
        (
            &["a.parquet", "--into", "dst", "--mode", "merge"],
            &["unknown --mode \"merge\""],
        ),
        (&["a.csv", "--into", "dst"], &["cannot open a.csv"]),
        (&["a.parquet", "--into", "nowhere"], &["nowhere", "42P01"]),
    ];
    for (args, needles) in cases {
        let out = run(t.command("import", args));
        assert_error(&out, needles);
    }
    assert_eq!(t.psql("SELECT count(*) FROM dst"), "0");
}
