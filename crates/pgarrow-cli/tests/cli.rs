//! End-to-end tests of the `pgarrow` command against a scratch PostgreSQL cluster.
//!
//! Every run of the binary gets a controlled environment (no `DATABASE_URL` or `PG*` from the
//! host, stdin null) and a deadline: a run that hangs fails the test instead of blocking it.
//!
//! Long on purpose: each test runs the command a few times and checks what a user sees; kept in one
//! binary (with `psql.rs` beside it for the psql-like flags) because each test binary links arrow,
//! parquet and the server harness again, and CI builds them all.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use pgarrow_testkit::activity::poll_until;
use pgarrow_testkit::fixtures::{LINEITEM_COLUMNS, lineitem_sql};
use pgarrow_testkit::{
    Cluster, MD5_PASSWORD, MD5_USER, PLAIN_PASSWORD, PLAIN_USER, SCRAM_PASSWORD, SCRAM_USER,
};

/// Rows of the shared lineitem table.
const LINEITEM_ROWS: u64 = 200_000;

/// A database holding `lineitem` with [`LINEITEM_ROWS`] rows, loaded once per test process.
fn lineitem_db(pg: &Cluster) -> &'static str {
    static DB: OnceLock<String> = OnceLock::new();
    DB.get_or_init(|| {
        let db = pg.create_database("cli_lineitem").expect("create database");
        pg.psql(&db, &lineitem_sql("lineitem", LINEITEM_ROWS))
            .expect("load lineitem");
        db
    })
}

/// The shared lineitem database (with a directory of its own) and the server's aggregates.
fn lineitem() -> Option<(Setup, LineitemStats)> {
    let pg = Cluster::shared()?;
    let db = lineitem_db(pg);
    Some((Setup::on(pg, db), server_lineitem_stats(pg, db)))
}

/// The auth-test roles, each with its password.
const USERS: [(&str, &str); 3] = [
    (SCRAM_USER, SCRAM_PASSWORD),
    (MD5_USER, MD5_PASSWORD),
    (PLAIN_USER, PLAIN_PASSWORD),
];

/// The file formats: `--to` and a file name of that format.
const FORMATS: [(&str, &str); 3] = [
    ("parquet", "out.parquet"),
    ("arrow", "out.arrow"),
    ("arrow-stream", "out.arrows"),
];

/// Environment variables for a run.
type Env<'a> = Vec<(&'a str, String)>;

/// A query that tells who and where we are connected, with `rows` rows.
fn whoami_query(rows: u32) -> String {
    format!(
        "SELECT current_user::text AS who, current_database()::text AS db, g::bigint AS g \
         FROM generate_series(1, {rows}) AS g"
    )
}

/// Asserts a `whoami_query` export read back from Parquet.
fn assert_whoami(path: &std::path::Path, rows: u32, user: &str, db: &str) {
    let batches = read_parquet(path);
    assert_eq!(row_count(&batches), u64::from(rows));
    let who = strings(&batches, "who");
    assert!(who.iter().all(|w| w.as_deref() == Some(user)), "{who:?}");
    let dbs = strings(&batches, "db");
    assert!(dbs.iter().all(|d| d.as_deref() == Some(db)), "{dbs:?}");
    let g = int64s(&batches, "g");
    assert_eq!(g, (1..=i64::from(rows)).collect::<Vec<_>>());
}

/// A query that fails with division by zero at row 300,000 of 400,000.
const MIDWAY: &str = "SELECT g, 1/(g-300000) AS boom FROM generate_series(1, 400000) g";

// ---------------------------------------------------------------------------------------------
// 1. Authentication failures
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_or_missing_passwords_fail_cleanly_without_leaking_them() {
    let Some(t) = Setup::new("cli_wrong_password", "") else {
        return;
    };
    let wrong = "Not-The-Password-7391";
    let mut cases: Vec<(String, String, Vec<&str>)> = USERS
        .iter()
        .map(|&(user, _)| {
            let needles = vec!["password authentication failed", "28P01", user];
            (
                format!("{user}, wrong"),
                t.pg.url_for(user, wrong, &t.db),
                needles,
            )
        })
        .collect();
    let no_password = format!(
        "postgresql://{SCRAM_USER}@127.0.0.1:{}/{}",
        t.pg.port(),
        t.db
    );
    let needles = vec!["password", SCRAM_USER, "PGPASSWORD"];
    cases.push(("no password".into(), no_password, needles));
    for (case, url, needles) in cases {
        let err = export_connection_error(
            &url,
            &["--query", "SELECT 1 AS one"],
            "out.parquet",
            &needles,
        );
        let secrets = [wrong, "scram secret", "scram%20secret"];
        for secret in secrets.into_iter().chain(USERS.map(|u| u.1)) {
            assert!(
                !err.contains(secret),
                "{case}: stderr leaks a password ({secret:?}): {err:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Correct passwords, and connection settings from the environment
// ---------------------------------------------------------------------------------------------

#[test]
fn connection_settings_from_the_url_and_the_environment() {
    let Some(t) = Setup::new("cli_connection_settings", "") else {
        return;
    };
    let port = t.pg.port().to_string();
    let pg_env = |user: &str| {
        vec![
            ("PGHOST", "127.0.0.1".to_owned()),
            ("PGPORT", port.clone()),
            ("PGUSER", user.to_owned()),
            ("PGDATABASE", t.db.clone()),
        ]
    };
    let mut pg_env_scram = pg_env(SCRAM_USER);
    pg_env_scram.push(("PGPASSWORD", SCRAM_PASSWORD.to_owned()));
    let nowhere = format!("postgresql://postgres@127.0.0.1:{}/nowhere", closed_port());
    let bare_scram = format!("postgresql://{SCRAM_USER}@127.0.0.1:{port}/{}", t.db);
    // (file, --url, environment, the user connected, rows)
    let mut cases: Vec<(String, Option<String>, Env<'_>, &str, u32)> = USERS
        .iter()
        .map(|&(user, password)| {
            let url = t.pg.url_for(user, password, &t.db);
            (format!("{user}.parquet"), Some(url), Vec::new(), user, 7)
        })
        .collect();
    cases.extend([
        (
            "pgpassword.parquet".into(),
            Some(bare_scram),
            vec![("PGPASSWORD", SCRAM_PASSWORD.to_owned())],
            SCRAM_USER,
            3,
        ),
        (
            "database_url.parquet".into(),
            None,
            vec![("DATABASE_URL", t.url.clone())],
            "postgres",
            4,
        ),
        // --url wins over DATABASE_URL (which points nowhere here).
        (
            "url_wins.parquet".into(),
            Some(t.url.clone()),
            vec![("DATABASE_URL", nowhere)],
            "postgres",
            2,
        ),
        (
            "pg_env.parquet".into(),
            None,
            pg_env("postgres"),
            "postgres",
            5,
        ),
        (
            "pg_env_scram.parquet".into(),
            None,
            pg_env_scram,
            SCRAM_USER,
            1,
        ),
    ]);
    for (name, url, env, user, rows) in &cases {
        let target = t.path(name);
        let query = whoami_query(*rows);
        let mut args = vec!["--query", &query, "-o", path_str(&target)];
        if let Some(url) = url {
            args.extend(["--url", url]);
        }
        let err = assert_success(&t.export_env(&args, env));
        assert!(err.contains(&exported(u64::from(*rows))), "{name}: {err}");
        for (_, password) in USERS {
            assert!(
                !err.contains(password),
                "{name}: stderr leaks a password: {err}"
            );
        }
        assert_whoami(&target, *rows, user, &t.db);
    }
    let mut names: Vec<&str> = cases.iter().map(|c| c.0.as_str()).collect();
    names.sort();
    t.assert_holds(&names);

    // The schema command reads the same settings.
    let mut cmd = pgarrow(["schema", "--query", "SELECT 1::int2 AS small"]);
    cmd.envs(pg_env("postgres"));
    let out = run(cmd);
    assert_success(&out);
    assert_eq!(
        schema_rows(&stdout(&out))[1],
        ["small", "smallint", "Int16"]
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Unreachable servers
// ---------------------------------------------------------------------------------------------

#[test]
fn unreachable_servers_fail_naming_the_address() {
    let port = closed_port();
    let cases = [
        (
            format!("postgresql://postgres@127.0.0.1:{port}/postgres"),
            format!("127.0.0.1:{port}"),
        ),
        // No connect_timeout: name resolution of the reserved .invalid TLD must fail on its
        // own (the deadline turns a hang into a failure).
        (
            "postgresql://postgres@nonexistent.invalid:5432/postgres".to_owned(),
            "nonexistent.invalid".to_owned(),
        ),
    ];
    for (url, address) in cases {
        let needles = ["could not connect", &address];
        export_connection_error(
            &url,
            &["--query", "SELECT 1 AS one"],
            "out.parquet",
            &needles,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Missing table
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_table_is_42p01_and_writes_nothing() {
    let Some(t) = Setup::new("cli_missing_table", "") else {
        return;
    };
    let needles = ["42P01", "no_such_table"];
    export_error(
        &t.url,
        &["--table", "no_such_table"],
        "out.parquet",
        &needles,
    );
    // The schema command fails the same way.
    let out = run(t.command("schema", &["--table", "no_such_table"]));
    assert_error(&out, &needles);
}

// ---------------------------------------------------------------------------------------------
// 5. A query that fails midway
// ---------------------------------------------------------------------------------------------

#[test]
fn query_failing_midway_leaves_no_file() {
    let Some(t) = Setup::new("cli_midway", "") else {
        return;
    };
    for (to, name) in FORMATS {
        // No `.out.parquet.*.pgarrow-tmp` (or anything else) left behind.
        let needles = ["division by zero", "22012", "after "];
        let err = export_error(&t.url, &["--query", MIDWAY, "--to", to], name, &needles);
        let rows = rows_after(&err).unwrap_or_else(|| panic!("no row count in {err:?}"));
        assert!(rows < 300_000, "{to}: {rows} rows before the error: {err}");
    }
}

#[test]
fn failed_export_keeps_an_existing_target_intact() {
    let Some(t) = Setup::new("cli_keep_target", "") else {
        return;
    };
    let target = t.path("out.parquet");
    std::fs::write(&target, b"previous contents").expect("write");
    let out = t.export(&["--query", MIDWAY, "-o", path_str(&target)]);
    assert_error(&out, &["22012"]);
    assert_eq!(std::fs::read(&target).expect("read"), b"previous contents");
    t.assert_holds(&["out.parquet"]);
}

// ---------------------------------------------------------------------------------------------
// 6. Exporting the lineitem table
// ---------------------------------------------------------------------------------------------

#[test]
fn lineitem_round_trips_through_every_file_format() {
    let Some((t, expected)) = lineitem() else {
        return;
    };
    assert_eq!(expected.rows, LINEITEM_ROWS);
    let cases: [(&str, Option<&str>, &str); 3] = [
        ("x.parquet", None, "parquet"),
        ("x.arrow", None, "arrow"),
        ("x.arrows", Some("arrow-stream"), "arrow-stream"),
    ];
    for (name, to, format) in cases {
        let target = t.path(name);
        let mut args = vec!["--table", "lineitem"];
        if let Some(to) = to {
            args.extend(["--to", to]);
        }
        args.extend(["-o", path_str(&target)]);
        let out = t.export(&args);
        let err = assert_success(&out);
        assert!(
            out.stdout.is_empty(),
            "{format}: file exports write nothing to stdout"
        );
        let summary = err
            .lines()
            .find(|l| l.starts_with("exported "))
            .unwrap_or_else(|| panic!("no summary line: {err:?}"));
        assert!(
            summary.starts_with("exported 200,000 rows"),
            "{format}: {summary}"
        );
        assert!(
            summary.contains(&format!("to {} ({format}, ", target.display())),
            "{format}: {summary}"
        );
        let batches = read_back(format, &target);
        assert_eq!(lineitem_stats(&batches), expected, "{format}");
    }
    t.assert_holds(&["x.arrow", "x.arrows", "x.parquet"]);
}

#[test]
fn lineitem_to_stdout_and_to_null() {
    let Some((t, expected)) = lineitem() else {
        return;
    };
    let out = t.export(&["--table", "lineitem", "--to", "arrow-stream", "-o", "-"]);
    let err = assert_success(&out);
    assert!(
        err.contains("exported 200,000 rows") && err.contains("to standard output (arrow-stream, "),
        "{err}"
    );
    let batches = read_arrow_stream_bytes(out.stdout);
    assert_eq!(lineitem_stats(&batches), expected);

    let out = t.export(&["--table", "lineitem", "--to", "null"]);
    let err = assert_success(&out);
    assert!(out.stdout.is_empty());
    assert!(err.contains("200,000 rows"), "{err}");
    assert!(err.contains("nowhere (--to null)"), "{err}");
    t.assert_holds(&[]);
}

#[test]
fn lineitem_with_writer_options() {
    let Some((t, expected)) = lineitem() else {
        return;
    };
    let quiet = |args: &[&str]| {
        let out = t.export(&[args, &["--quiet"]].concat());
        assert_success(&out);
        assert!(out.stderr.is_empty(), "--quiet: {}", stderr(&out));
    };

    // Parquet: codec and row-group size are honoured.
    let target = t.path("y.parquet");
    let path = path_str(&target);
    quiet(&[
        "--table",
        "lineitem",
        "--compression",
        "snappy",
        "--row-group-rows",
        "50000",
        "-o",
        path,
    ]);
    let file = std::fs::File::open(&target).expect("open");
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).expect("meta");
    let meta = builder.metadata();
    assert_eq!(meta.num_row_groups(), 4);
    for rg in meta.row_groups() {
        assert_eq!(rg.num_rows(), 50_000);
        for col in rg.columns() {
            assert_eq!(col.compression(), parquet::basic::Compression::SNAPPY);
        }
    }
    let batches = builder
        .build()
        .expect("reader")
        .collect::<Result<Vec<_>, _>>()
        .expect("batches");
    assert_eq!(lineitem_stats(&batches), expected);

    // Arrow: batches are cut at --batch-rows.
    let target = t.path("y.arrow");
    quiet(&[
        "--query",
        "TABLE lineitem;",
        "--batch-rows",
        "30000",
        "-o",
        path_str(&target),
    ]);
    let batches = read_arrow_file(&target);
    assert!(batches.iter().all(|b| b.num_rows() <= 30_000));
    assert!(batches.len() >= 7, "{} batches", batches.len());
    assert_eq!(lineitem_stats(&batches), expected);

    // An invalid codec is refused before anything is written.
    let target = t.path("z.parquet");
    let args = ["--table", "lineitem", "--compression", "brotli", "-o"];
    let out = t.export(&[&args[..], &[path_str(&target)]].concat());
    assert_usage_error(
        &out,
        &["invalid value 'brotli'", "unknown compression \"brotli\""],
    );
    t.assert_holds(&["y.arrow", "y.parquet"]);
}

// ---------------------------------------------------------------------------------------------
// 7. The schema command
// ---------------------------------------------------------------------------------------------

/// The rows of `pgarrow schema` output: cells split on runs of two or more spaces.
fn schema_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn schema_lists_postgres_and_arrow_types() {
    let Some((t, _)) = lineitem() else {
        return;
    };
    let (text, err) = t.schema(&["--table", "lineitem"]);
    assert!(err.is_empty(), "{err}");
    let rows = schema_rows(&text);
    assert_eq!(
        rows[0],
        ["column", "postgres type", "arrow type", "note"],
        "{text}"
    );
    let numeric = "policies: --numeric-overflow --out-of-range";
    let text_policies = "policies: --text --invalid-utf8";
    let date = "policies: --infinity";
    let expected: [(&str, &str, &str, &str); 16] = [
        ("l_orderkey", "bigint", "Int64", ""),
        ("l_partkey", "integer", "Int32", ""),
        ("l_suppkey", "integer", "Int32", ""),
        ("l_linenumber", "integer", "Int32", ""),
        ("l_quantity", "numeric(15,2)", "Decimal128(15, 2)", numeric),
        (
            "l_extendedprice",
            "numeric(15,2)",
            "Decimal128(15, 2)",
            numeric,
        ),
        ("l_discount", "numeric(15,2)", "Decimal128(15, 2)", numeric),
        ("l_tax", "numeric(15,2)", "Decimal128(15, 2)", numeric),
        ("l_returnflag", "character(1)", "Utf8", text_policies),
        ("l_linestatus", "character(1)", "Utf8", text_policies),
        ("l_shipdate", "date", "Date32", date),
        ("l_commitdate", "date", "Date32", date),
        ("l_receiptdate", "date", "Date32", date),
        ("l_shipinstruct", "character(25)", "Utf8", text_policies),
        ("l_shipmode", "character(10)", "Utf8", text_policies),
        ("l_comment", "character varying(44)", "Utf8", text_policies),
    ];
    assert_eq!(rows.len(), 1 + LINEITEM_COLUMNS.len(), "{text}");
    for ((row, name), (col, pg_type, arrow_type, note)) in
        rows[1..].iter().zip(LINEITEM_COLUMNS).zip(expected)
    {
        assert_eq!(col, name);
        let mut want = vec![col.to_owned(), pg_type.to_owned(), arrow_type.to_owned()];
        if !note.is_empty() {
            want.push(note.to_owned());
        }
        assert_eq!(row, &want, "{text}");
    }
}

/// A sequence `s` that has given one value: a query that would advance it must not run.
const SEQUENCE: &str = "CREATE SEQUENCE s; SELECT nextval('s');";

#[test]
fn schema_notes_text_casts_and_does_not_run_the_query() {
    let Some(t) = Setup::new("cli_schema_notes", SEQUENCE) else {
        return;
    };
    let (text, _) = t.schema(&[
        "--query",
        "SELECT '10.1.2.3/24'::inet AS addr, nextval('s') AS n, '{}'::jsonb AS doc",
    ]);
    let rows = schema_rows(&text);
    assert_eq!(rows.len(), 4, "{text}");
    assert_eq!(rows[1][..3], ["addr", "inet", "Utf8"], "{text}");
    let note = rows[1].get(3).map(String::as_str).unwrap_or("");
    assert!(
        note.contains("text"),
        "inet note should mention text: {text}"
    );
    assert_eq!(rows[2], ["n", "bigint", "Int64"], "{text}");
    assert_eq!(rows[3][..3], ["doc", "jsonb", "Utf8"], "{text}");
    // Described, not run: the sequence did not advance.
    assert_eq!(t.psql("SELECT last_value FROM s"), "1");
}

// ---------------------------------------------------------------------------------------------
// 8. --table quoting
// ---------------------------------------------------------------------------------------------

#[test]
fn table_names_are_quoted_not_interpolated() {
    let setup = format!(
        "{}\
         CREATE SCHEMA \"Odd.Schema\";\n\
         CREATE TABLE \"Odd.Schema\".\"Mixed Case\"\"Quote\" (id bigint, label text);\n\
         INSERT INTO \"Odd.Schema\".\"Mixed Case\"\"Quote\" \
         SELECT g, 'row ' || g FROM generate_series(1, 5) g;\n",
        lineitem_sql("lineitem", 10)
    );
    let Some(t) = Setup::new("cli_table_quoting", &setup) else {
        return;
    };
    let target = t.path("odd.parquet");
    let odd = r#""Odd.Schema"."Mixed Case""Quote""#;
    let err = assert_success(&t.export(&["--table", odd, "-o", path_str(&target)]));
    assert!(err.contains("exported 5 rows"), "{err}");
    let batches = read_parquet(&target);
    assert_eq!(int64s(&batches, "id"), [1, 2, 3, 4, 5]);
    assert_eq!(
        strings(&batches, "label"),
        (1..=5)
            .map(|g| Some(format!("row {g}")))
            .collect::<Vec<_>>()
    );

    let evil = "x; drop table lineitem";
    export_error(&t.url, &["--table", evil], "evil.parquet", &["42P01", evil]);
    assert_eq!(t.psql("SELECT count(*) FROM lineitem"), "10");

    // Names follow SQL: unquoted upper case folds to lower case. Malformed names are refused
    // before connecting.
    let err = assert_success(&t.export(&["--table", "LINEITEM", "--to", "null"]));
    assert!(err.contains("exported 10 rows"), "{err}");
    let out = t.export(&["--table", "a.b.c", "--to", "null"]);
    assert_usage_error(&out, &["expected name or schema.name", "a.b.c"]);
    t.assert_holds(&["odd.parquet"]);
}

// ---------------------------------------------------------------------------------------------
// 10. Bad arguments
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_output_arguments_fail_before_connecting() {
    // The URL points at a closed port: a run that tried to connect would fail with "could
    // not connect" instead of the message checked here.
    let url = format!("postgresql://postgres@127.0.0.1:{}/postgres", closed_port());
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &["--to", "csv", "-o", "out.parquet"],
            &["unknown format \"csv\"", "parquet", "arrow-stream"],
        ),
        (
            &["-o", "out.csv"],
            &["cannot tell the format", "out.csv", ".parquet", "--to"],
        ),
        (&["-o", "-"], &["standard output", "needs --to"]),
        (&[], &["-o PATH", "--to null"]),
        (&["--to", "null", "-o", "out.parquet"], &["drop -o"]),
        (
            &["--compression", "brotli", "-o", "out.parquet"],
            &["unknown compression \"brotli\"", "zstd"],
        ),
    ];
    let export = ["export", "--url", &url, "--query", "SELECT 1 AS one"];
    assert_usage_errors_before_connecting(&export, &cases);
}

/// Each case's arguments after `command` fail as usage errors naming its needles, without
/// connecting (the URL's port is closed) and without writing a file.
fn assert_usage_errors_before_connecting(command: &[&str], cases: &[(&[&str], &[&str])]) {
    let dir = tempdir();
    for (extra, needles) in cases {
        let mut args = command.to_vec();
        args.extend_from_slice(extra);
        let mut cmd = pgarrow(&args);
        cmd.current_dir(dir.path());
        let out = run(cmd);
        let err = assert_usage_error(&out, needles);
        assert!(!err.contains("could not connect"), "{args:?}: {err}");
        assert_dir_holds(dir.path(), &[]);
    }
}

#[test]
fn changes_formats_are_read_by_the_library_and_checked_before_connecting() {
    let url = format!("postgresql://postgres@127.0.0.1:{}/postgres", closed_port());
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &["--values", "hex"],
            &["unknown value format \"hex\"", "auto, binary or text"],
        ),
        (&["--to", "csv"], &["unknown format \"csv\""]),
        (&["--to", "arrow-stream"], &["parquet or arrow files"]),
    ];
    let changes = [
        "changes",
        "--url",
        &url,
        "--slot",
        "s",
        "--publication",
        "p",
        "-o",
        "out",
    ];
    assert_usage_errors_before_connecting(&changes, &cases);
}

#[test]
fn usage_errors_are_reported_by_the_parser() {
    let dir = tempdir();
    let cases: [(&[&str], &str); 4] = [
        (&["export", "-o", "x.parquet"], "--query"),
        (
            &[
                "export",
                "--query",
                "SELECT 1",
                "--table",
                "t",
                "-o",
                "x.parquet",
            ],
            "cannot be used with",
        ),
        (
            &["export", "--query", "SELECT 1", "--frobnicate"],
            "--frobnicate",
        ),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, needle) in cases {
        let err = refused_by_the_parser(&dir, args, needle);
        assert!(err.contains("Usage"), "{args:?}: {err}");
    }
}

/// Runs `args` in `dir`: refused before anything ran (exit 2, nothing written), the message
/// holding `needle`. The message.
fn refused_by_the_parser(dir: &tempfile::TempDir, args: &[&str], needle: &str) -> String {
    let mut cmd = pgarrow(args);
    cmd.current_dir(dir.path());
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert_dir_holds(dir.path(), &[]);
    err
}

#[test]
fn the_choices_parse_through_their_types_naming_what_they_take() {
    let dir = tempdir();
    let cases: [(&[&str], &str); 2] = [
        (
            &["import", "x.parquet", "--into", "t", "--mode", "merge"],
            "unknown load mode \"merge\" (possible values: append, replace, upsert)",
        ),
        (
            &[
                "export",
                "--query",
                "SELECT 1",
                "--delta",
                "lake",
                "--if-exists",
                "sometimes",
            ],
            "if-exists \"sometimes\" (possible values: fail, append, replace)",
        ),
    ];
    for (args, needle) in cases {
        refused_by_the_parser(&dir, args, needle);
    }
}

#[test]
fn output_into_a_missing_directory_fails_before_the_query_runs() {
    let Some(t) = Setup::new("cli_missing_dir", SEQUENCE) else {
        return;
    };
    // The query would advance the sequence if it ran.
    let target = t.path("missing").join("out.parquet");
    let out = t.export(&[
        "--query",
        "SELECT nextval('s') AS n",
        "-o",
        path_str(&target),
    ]);
    assert_error(&out, &["missing"]);
    t.assert_holds(&[]);
    assert_eq!(t.psql("SELECT last_value FROM s"), "1");
}

// ---------------------------------------------------------------------------------------------
// 11. The demo
// ---------------------------------------------------------------------------------------------

#[test]
fn demo_exports_a_sample_table() {
    // The demo starts its own cluster; skip where the shared one cannot start either.
    if Cluster::shared().is_none() {
        return;
    }
    let dir = tempdir();
    let target = dir.path().join("demo.parquet");
    let out = run(pgarrow([
        "demo",
        "--rows",
        "20000",
        "-o",
        path_str(&target),
    ]));
    let err = assert_success(&out);
    assert!(out.stdout.is_empty());
    assert!(err.contains("exported 20,000 rows"), "{err}");
    let canonical = std::fs::canonicalize(&target).expect("canonicalize");
    assert!(
        err.lines()
            .any(|l| l == format!("wrote {}", canonical.display())),
        "stderr should say where the file is: {err}"
    );
    let batches = read_parquet(&target);
    assert_eq!(row_count(&batches), 20_000);
    let names: Vec<String> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, LINEITEM_COLUMNS);
    assert_dir_holds(dir.path(), &["demo.parquet"]);
}

// ---------------------------------------------------------------------------------------------
// More: Ctrl-C, file permissions, odd result shapes
// ---------------------------------------------------------------------------------------------

#[test]
fn ctrl_c_stops_the_export_and_removes_the_temporary_file() {
    let Some(t) = Setup::new("cli_ctrl_c", "") else {
        return;
    };
    // Number of active COPY statements in the database (other than psql's own query).
    let active_copies = || {
        t.pg.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' \
                 AND state = 'active' AND query LIKE 'COPY %'",
                t.db
            ),
        )
        .expect("pg_stat_activity")
        .trim()
        .to_owned()
    };
    // An endless stream of rows (a set-returning function in the select list streams; one in
    // FROM would be materialized first).
    let target = t.path("out.parquet");
    let child = spawn(t.command(
        "export",
        &[
            "--query",
            "SELECT generate_series(1::bigint, 9000000000000) AS g",
            "-o",
            path_str(&target),
        ],
    ));
    // Ready when the server runs the COPY: the output's temporary file exists by then.
    poll_until(Duration::from_secs(60), "the COPY runs", || {
        active_copies() == "1"
    });
    let entries = dir_entries(t.dir.path());
    assert!(
        entries.len() == 1
            && entries[0].starts_with(".out.parquet.")
            && entries[0].ends_with(".pgarrow-tmp"),
        "expected only the temporary file while exporting: {entries:?}"
    );
    let (out, _) = interrupt(child, "INT", Duration::from_secs(60));
    assert_interrupted(&out, "INT");
    t.assert_holds(&[]);
    // The server notices the closed connection and ends the query.
    poll_until(Duration::from_secs(60), "the COPY ends", || {
        active_copies() == "0"
    });
}

#[test]
fn output_files_get_the_permissions_of_any_new_file() {
    let Some(t) = Setup::new("cli_permissions", "") else {
        return;
    };
    let plain = t.path("plain");
    std::fs::File::create(&plain).expect("create");
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o7777
    };
    for name in ["p.parquet", "a.arrow", "s.arrows"] {
        let target = t.path(name);
        let out = t.export(&[
            "--query",
            "SELECT 1 AS one",
            "-o",
            path_str(&target),
            "--quiet",
        ]);
        assert_success(&out);
        assert_eq!(mode(&target), mode(&plain), "{name}");
    }
}

#[test]
fn empty_results_and_duplicate_column_names() {
    let Some(t) = Setup::new("cli_shapes", "") else {
        return;
    };
    for name in ["e.parquet", "e.arrow", "e.arrows"] {
        t.export_rows(&["--query", "SELECT 1::bigint AS g WHERE false"], name, 0);
    }
    let (batches, _) = t.export_rows(
        &["--query", "SELECT 1::bigint AS a, 2::bigint AS a"],
        "dup.arrow",
        1,
    );
    assert_eq!(batches[0].num_columns(), 2);

    // Statements that return no rows, or take parameters, are refused with a reason, as
    // usage errors (status 2).
    for (query, needle) in [
        ("CREATE TABLE t (a int)", "returns no rows"),
        ("SELECT $1::int AS p", "parameter"),
    ] {
        let out = t.export(&["--query", query, "--to", "null"]);
        assert_usage_error(&out, &[needle]);
    }
    assert_eq!(
        t.psql("SELECT count(*) FROM pg_class WHERE relname = 't'"),
        "0",
        "the CREATE TABLE must not have run"
    );
    t.assert_holds(&["dup.arrow", "e.arrow", "e.arrows", "e.parquet"]);
}

// ---------------------------------------------------------------------------------------------
// Regressions: bugs these tests found, now fixed
// ---------------------------------------------------------------------------------------------

#[test]
fn batch_bytes_reached_mid_row_does_not_truncate_the_export() {
    let Some(t) = Setup::new("cli_bug_mid_row", "") else {
        return;
    };
    // Field `a` alone exceeds --batch-bytes; field `b` (8 MiB) cannot arrive in the same read.
    // With the default --batch-bytes (64 MiB) the same happens for a row of two 65 MiB fields.
    let sql = "SELECT g::bigint AS g, repeat('x', 2000) AS a, repeat('y', 8 * 1024 * 1024) AS b \
               FROM generate_series(1, 3) AS g";
    let (batches, _) = t.export_rows(&["--query", sql, "--batch-bytes", "1000"], "wide.arrow", 3);
    assert_eq!(int64s(&batches, "g"), [1, 2, 3]);
    for v in strings(&batches, "b") {
        assert_eq!(v.map(|s| s.len()), Some(8 * 1024 * 1024));
    }

    // Row 1 (614 bytes) stays under --batch-bytes 1000; row 2's `g` and `a` cross it before
    // its 8 MB `b` has arrived.
    let sql = "SELECT g, repeat('x', 600) AS a, \
               repeat('y', CASE WHEN g = 1 THEN 10 ELSE 8000000 END) AS b \
               FROM generate_series(1, 2) AS g";
    let (batches, _) = t.export_rows(&["--query", sql, "--batch-bytes", "1000"], "wide2.arrow", 2);
    let lens: Vec<Option<usize>> = strings(&batches, "b")
        .into_iter()
        .map(|v| v.map(|s| s.len()))
        .collect();
    assert_eq!(lens, [Some(10), Some(8_000_000)]);
}

#[test]
fn zero_column_rows_are_counted_once() {
    let Some(t) = Setup::new("cli_bug_zero_columns", "") else {
        return;
    };
    let sql = "SELECT FROM generate_series(1, 5)";
    let (batches, _) = t.export_rows(&["--query", sql], "empty.arrow", 5);
    assert!(batches.iter().all(|b| b.num_columns() == 0));
}

/// `--stats` prints every phase on stderr; `--stats-json` writes the same as JSON whose counts
/// match the file written.
#[test]
fn stats_table_and_json() {
    let Some((t, _)) = lineitem() else {
        return;
    };
    let target = t.path("l.parquet");
    let json_path = t.path("stats.json");
    let out = t.export(&[
        "--table",
        "lineitem",
        "-o",
        path_str(&target),
        "--batch-rows",
        "50000",
        "--stats",
        "--stats-json",
        path_str(&json_path),
    ]);
    let err = assert_success(&out);
    for phase in [
        "connect",
        "describe",
        "catalog",
        "first byte",
        "read",
        "decode",
        "write",
        "finish",
        "total",
    ] {
        assert!(
            err.lines().any(|l| l.starts_with(phase)),
            "no {phase} line in:\n{err}"
        );
    }
    assert!(err.contains("200,000 rows, 4 batches"), "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(json["rows"], LINEITEM_ROWS);
    assert_eq!(json["batches"], 4);
    let written = std::fs::metadata(&target).unwrap().len();
    assert_eq!(json["written"], written);
    assert!(json["bytes"].as_u64().unwrap() > LINEITEM_ROWS * 100);
    assert!(json["peak_rss"].as_u64().unwrap() > 1 << 20);
    let phases = json["phases"].as_object().unwrap();
    assert_eq!(phases.len(), 8, "{phases:?}");
    for (name, seconds) in phases {
        assert!(seconds.as_f64().unwrap() >= 0.0, "{name}");
    }
    assert!(phases["decode_s"].as_f64().unwrap() > 0.0);
    assert!(phases["write_s"].as_f64().unwrap() > 0.0);
    assert!(json["total_s"].as_f64().unwrap() >= phases["connect_s"].as_f64().unwrap());
    assert_eq!(json["losses"], serde_json::json!({}));
    assert_eq!(row_count(&read_parquet(&target)), LINEITEM_ROWS);
}

/// A result with no columns, or with a composite of no attributes: Arrow IPC keeps them with
/// their row count; Parquet cannot, and says so naming the column before writing anything.
#[test]
fn zero_columns_and_empty_composites() {
    let Some(t) = Setup::new(
        "cli_zero_columns",
        "CREATE TYPE nothing AS (); \
         CREATE TABLE t (id int, n nothing); \
         INSERT INTO t VALUES (1, ROW()), (2, NULL), (3, ROW());",
    ) else {
        return;
    };
    for (query, column_note) in [
        ("SELECT FROM t", "no columns"),
        ("SELECT id, n FROM t", "column \"n\""),
    ] {
        let needles = [column_note, "--to arrow"];
        export_usage_error(&t.url, &["--query", query], "x.parquet", &needles);
        t.export_rows(&["--query", query], "x.arrow", 3);
        std::fs::remove_file(t.path("x.arrow")).unwrap();
    }
}

/// Intervals inside arrays and composites reach Parquet in their exact struct form.
#[test]
fn nested_intervals_to_parquet() {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type};
    let Some(t) = Setup::new(
        "cli_nested_intervals",
        "CREATE TYPE span AS (d interval, n int)",
    ) else {
        return;
    };
    let sql = "SELECT ARRAY['1 mon -2 days 00:00:00.000003'::interval, NULL] AS ivs, \
               ROW('-3 years 4 hours'::interval, 1)::span AS r";
    let (batches, _) = t.export_rows(&["--query", sql], "iv.parquet", 1);
    let ivs = batches[0].column(0).as_list::<i32>();
    let inner = ivs.values().as_struct();
    assert_eq!(inner.len(), 2);
    assert!(inner.is_valid(0) && inner.is_null(1));
    assert_eq!(inner.column(0).as_primitive::<Int32Type>().value(0), 1);
    assert_eq!(inner.column(1).as_primitive::<Int32Type>().value(0), -2);
    assert_eq!(inner.column(2).as_primitive::<Int64Type>().value(0), 3);
    let r = batches[0].column(1).as_struct();
    let iv = r.column(0).as_struct();
    assert_eq!(iv.column(0).as_primitive::<Int32Type>().value(0), -36);
    assert_eq!(
        iv.column(2).as_primitive::<Int64Type>().value(0),
        4 * 3_600_000_000
    );
}

/// An `int[]` column holding 2-D values (through CREATE TABLE AS, which declares no dimensions)
/// reaches the file as nested lists; `schema` says the depth comes from the data.
#[test]
fn array_depth_from_the_data_to_a_file() {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    let Some(t) = Setup::new(
        "cli_array_depth",
        "CREATE TABLE grid AS SELECT 1 AS id, '{{1,2},{3,4}}'::int[] AS g \
         UNION ALL SELECT 2, NULL;",
    ) else {
        return;
    };
    let (out, err) = t.schema(&["--table", "grid"]);
    let text = format!("{err}{out}");
    assert!(text.contains("array depth from the data"), "{text}");
    let (batches, _) = t.export_rows(&["--table", "grid"], "g.parquet", 2);
    let g = batches[0].column(1).as_list::<i32>();
    let first = g.value(0);
    let rows = first.as_list::<i32>();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows.value(1)
            .as_primitive::<arrow_array::types::Int32Type>()
            .values(),
        &[3, 4]
    );
    assert!(g.is_null(1));
}
