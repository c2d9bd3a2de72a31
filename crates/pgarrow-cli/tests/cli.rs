//! End-to-end tests of the `pgarrow` command against a scratch PostgreSQL cluster.
//!
//! Every run of the binary gets a controlled environment (no `DATABASE_URL` or `PG*` from the
//! host, stdin null) and a deadline: a run that hangs fails the test instead of blocking it.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use pgarrow_testkit::Cluster;
use pgarrow_testkit::fixtures::{LINEITEM_COLUMNS, lineitem_sql};

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

/// A fresh, empty database.
fn fresh_db(pg: &Cluster, prefix: &str) -> String {
    pg.create_database(prefix).expect("create database")
}

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

// ---------------------------------------------------------------------------------------------
// 1. Authentication failures
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_password_fails_cleanly_without_leaking_it() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_wrong_password");
    let wrong = "Not-The-Password-7391";
    let users = [
        (pgarrow_testkit::SCRAM_USER, pgarrow_testkit::SCRAM_PASSWORD),
        (pgarrow_testkit::MD5_USER, pgarrow_testkit::MD5_PASSWORD),
        (pgarrow_testkit::PLAIN_USER, pgarrow_testkit::PLAIN_PASSWORD),
    ];
    for (user, right) in users {
        let dir = tempdir();
        let target = dir.path().join("out.parquet");
        let url = pg.url_for(user, wrong, &db);
        let out = run(pgarrow([
            "export",
            "--url",
            &url,
            "--query",
            "SELECT 1 AS one",
            "-o",
            path_str(&target),
        ]));
        let err = assert_error(&out, &["password authentication failed", "28P01", user]);
        for secret in [wrong, right, "scram%20secret", "scram secret"] {
            assert!(
                !err.contains(secret),
                "stderr leaks a password ({secret:?}): {err:?}"
            );
        }
        assert!(!target.exists());
        assert_dir_holds(dir.path(), &[]);
    }
}

#[test]
fn missing_password_is_explained() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_no_password");
    let dir = tempdir();
    let target = dir.path().join("out.parquet");
    let url = format!(
        "postgresql://{}@127.0.0.1:{}/{db}",
        pgarrow_testkit::SCRAM_USER,
        pg.port()
    );
    let out = run(pgarrow([
        "export",
        "--url",
        &url,
        "--query",
        "SELECT 1 AS one",
        "-o",
        path_str(&target),
    ]));
    assert_error(
        &out,
        &["password", pgarrow_testkit::SCRAM_USER, "PGPASSWORD"],
    );
    assert_dir_holds(dir.path(), &[]);
}

// ---------------------------------------------------------------------------------------------
// 2. Correct passwords
// ---------------------------------------------------------------------------------------------

#[test]
fn correct_passwords_work_for_every_auth_method() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_passwords");
    let users = [
        (pgarrow_testkit::SCRAM_USER, pgarrow_testkit::SCRAM_PASSWORD),
        (pgarrow_testkit::MD5_USER, pgarrow_testkit::MD5_PASSWORD),
        (pgarrow_testkit::PLAIN_USER, pgarrow_testkit::PLAIN_PASSWORD),
    ];
    let dir = tempdir();
    for (user, password) in users {
        let target = dir.path().join(format!("{user}.parquet"));
        let out = run(pgarrow([
            "export",
            "--url",
            &pg.url_for(user, password, &db),
            "--query",
            &whoami_query(7),
            "-o",
            path_str(&target),
        ]));
        let err = assert_success(&out);
        assert!(err.contains("exported 7 rows"), "{err}");
        assert!(!err.contains(password), "stderr leaks the password: {err}");
        assert_whoami(&target, 7, user, &db);
    }
    assert_dir_holds(
        dir.path(),
        &[
            "pgarrow_md5.parquet",
            "pgarrow_plain.parquet",
            "pgarrow_scram.parquet",
        ],
    );
}

#[test]
fn password_from_pgpassword_with_url_without_password() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_pgpassword");
    let dir = tempdir();
    let target = dir.path().join("out.parquet");
    let url = format!(
        "postgresql://{}@127.0.0.1:{}/{db}",
        pgarrow_testkit::SCRAM_USER,
        pg.port()
    );
    let mut cmd = pgarrow([
        "export",
        "--url",
        &url,
        "--query",
        &whoami_query(3),
        "-o",
        path_str(&target),
    ]);
    cmd.env("PGPASSWORD", pgarrow_testkit::SCRAM_PASSWORD);
    let err = assert_success(&run(cmd));
    assert!(!err.contains(pgarrow_testkit::SCRAM_PASSWORD), "{err}");
    assert_whoami(&target, 3, pgarrow_testkit::SCRAM_USER, &db);
    assert_dir_holds(dir.path(), &["out.parquet"]);
}

// ---------------------------------------------------------------------------------------------
// 3. Unreachable servers
// ---------------------------------------------------------------------------------------------

#[test]
fn closed_port_cannot_connect() {
    let port = closed_port();
    let dir = tempdir();
    let target = dir.path().join("out.parquet");
    let url = format!("postgresql://postgres@127.0.0.1:{port}/postgres");
    let out = run_within(
        pgarrow([
            "export",
            "--url",
            &url,
            "--query",
            "SELECT 1 AS one",
            "-o",
            path_str(&target),
        ]),
        Duration::from_secs(60),
    );
    assert_error(&out, &["could not connect", &format!("127.0.0.1:{port}")]);
    assert_dir_holds(dir.path(), &[]);
}

#[test]
fn unresolvable_host_fails_naming_the_host() {
    let dir = tempdir();
    let target = dir.path().join("out.parquet");
    // No connect_timeout: name resolution of the reserved .invalid TLD must fail on its own
    // (the deadline below turns a hang into a failure).
    let url = "postgresql://postgres@nonexistent.invalid:5432/postgres";
    let out = run_within(
        pgarrow([
            "export",
            "--url",
            url,
            "--query",
            "SELECT 1 AS one",
            "-o",
            path_str(&target),
        ]),
        Duration::from_secs(60),
    );
    assert_error(&out, &["could not connect", "nonexistent.invalid"]);
    assert_dir_holds(dir.path(), &[]);
}

// ---------------------------------------------------------------------------------------------
// 4. Missing table
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_table_is_42p01_and_writes_nothing() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_missing_table");
    let dir = tempdir();
    let target = dir.path().join("out.parquet");
    let out = run(pgarrow([
        "export",
        "--url",
        &pg.url(&db),
        "--table",
        "no_such_table",
        "-o",
        path_str(&target),
    ]));
    assert_error(&out, &["42P01", "no_such_table"]);
    assert!(!target.exists());
    assert_dir_holds(dir.path(), &[]);

    // The schema command fails the same way.
    let out = run(pgarrow([
        "schema",
        "--url",
        &pg.url(&db),
        "--table",
        "no_such_table",
    ]));
    assert_error(&out, &["42P01", "no_such_table"]);
}

// ---------------------------------------------------------------------------------------------
// 5. A query that fails midway
// ---------------------------------------------------------------------------------------------

#[test]
fn query_failing_midway_leaves_no_file() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_midway");
    let query = "SELECT g, 1/(g-300000) AS boom FROM generate_series(1, 400000) g";
    for (to, name) in [
        ("parquet", "out.parquet"),
        ("arrow", "out.arrow"),
        ("arrow-stream", "out.arrows"),
    ] {
        let dir = tempdir();
        let target = dir.path().join(name);
        let out = run(pgarrow([
            "export",
            "--url",
            &pg.url(&db),
            "--query",
            query,
            "--to",
            to,
            "-o",
            path_str(&target),
        ]));
        let err = assert_error(&out, &["division by zero", "22012", "after "]);
        let rows = rows_after(&err).unwrap_or_else(|| panic!("no row count in {err:?}"));
        assert!(rows < 300_000, "{to}: {rows} rows before the error: {err}");
        assert!(!target.exists(), "{to}: {} exists", target.display());
        // No `.out.parquet.*.pgarrow-tmp` (or anything else) left behind.
        assert_dir_holds(dir.path(), &[]);
    }
}

#[test]
fn failed_export_keeps_an_existing_target_intact() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_keep_target");
    let dir = tempdir();
    let target = dir.path().join("out.parquet");
    std::fs::write(&target, b"previous contents").expect("write");
    let out = run(pgarrow([
        "export",
        "--url",
        &pg.url(&db),
        "--query",
        "SELECT g, 1/(g-300000) AS boom FROM generate_series(1, 400000) g",
        "-o",
        path_str(&target),
    ]));
    assert_error(&out, &["22012"]);
    assert_eq!(std::fs::read(&target).expect("read"), b"previous contents");
    assert_dir_holds(dir.path(), &["out.parquet"]);
}

// ---------------------------------------------------------------------------------------------
// 6. Exporting the lineitem table
// ---------------------------------------------------------------------------------------------

#[test]
fn lineitem_round_trips_through_every_file_format() {
    let Some(pg) = Cluster::shared() else { return };
    let db = lineitem_db(pg);
    let expected = server_lineitem_stats(pg, db);
    assert_eq!(expected.rows, LINEITEM_ROWS);
    let dir = tempdir();
    let url = pg.url(db);
    let cases: [(&str, Option<&str>, &str); 3] = [
        ("x.parquet", None, "parquet"),
        ("x.arrow", None, "arrow"),
        ("x.arrows", Some("arrow-stream"), "arrow-stream"),
    ];
    for (name, to, format) in cases {
        let target = dir.path().join(name);
        let mut args = vec!["export", "--url", &url, "--table", "lineitem"];
        if let Some(to) = to {
            args.extend(["--to", to]);
        }
        args.extend(["-o", path_str(&target)]);
        let out = run(pgarrow(args));
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
    assert_dir_holds(dir.path(), &["x.arrow", "x.arrows", "x.parquet"]);
}

#[test]
fn lineitem_to_stdout_and_to_null() {
    let Some(pg) = Cluster::shared() else { return };
    let db = lineitem_db(pg);
    let expected = server_lineitem_stats(pg, db);
    let url = pg.url(db);
    let dir = tempdir();

    let mut cmd = pgarrow([
        "export",
        "--url",
        &url,
        "--table",
        "lineitem",
        "--to",
        "arrow-stream",
        "-o",
        "-",
    ]);
    cmd.current_dir(dir.path());
    let out = run(cmd);
    let err = assert_success(&out);
    assert!(
        err.contains("exported 200,000 rows") && err.contains("to stdout (arrow-stream, "),
        "{err}"
    );
    let batches = read_arrow_stream_bytes(out.stdout);
    assert_eq!(lineitem_stats(&batches), expected);

    let mut cmd = pgarrow([
        "export", "--url", &url, "--table", "lineitem", "--to", "null",
    ]);
    cmd.current_dir(dir.path());
    let out = run(cmd);
    let err = assert_success(&out);
    assert!(out.stdout.is_empty());
    assert!(err.contains("200,000 rows"), "{err}");
    assert!(err.contains("nowhere (--to null)"), "{err}");
    assert_dir_holds(dir.path(), &[]);
}

#[test]
fn lineitem_with_writer_options() {
    let Some(pg) = Cluster::shared() else { return };
    let db = lineitem_db(pg);
    let expected = server_lineitem_stats(pg, db);
    let url = pg.url(db);
    let dir = tempdir();

    // Parquet: codec and row-group size are honoured.
    let target = dir.path().join("y.parquet");
    let out = run(pgarrow([
        "export",
        "--url",
        &url,
        "--table",
        "lineitem",
        "--compression",
        "snappy",
        "--row-group-rows",
        "50000",
        "-o",
        path_str(&target),
        "--quiet",
    ]));
    assert_success(&out);
    assert!(out.stderr.is_empty(), "--quiet: {}", stderr(&out));
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
    let target = dir.path().join("y.arrow");
    let out = run(pgarrow([
        "export",
        "--url",
        &url,
        "--query",
        "TABLE lineitem;",
        "--batch-rows",
        "30000",
        "-o",
        path_str(&target),
        "--quiet",
    ]));
    assert_success(&out);
    assert!(out.stderr.is_empty(), "--quiet: {}", stderr(&out));
    let batches = read_arrow_file(&target);
    assert!(batches.iter().all(|b| b.num_rows() <= 30_000));
    assert!(batches.len() >= 7, "{} batches", batches.len());
    assert_eq!(lineitem_stats(&batches), expected);

    // An invalid codec is refused before anything is written.
    let target = dir.path().join("z.parquet");
    let out = run(pgarrow([
        "export",
        "--url",
        &url,
        "--table",
        "lineitem",
        "--compression",
        "brotli",
        "-o",
        path_str(&target),
    ]));
    assert_error(&out, &["unknown compression \"brotli\""]);
    assert_dir_holds(dir.path(), &["y.arrow", "y.parquet"]);
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
    let Some(pg) = Cluster::shared() else { return };
    let db = lineitem_db(pg);
    let out = run(pgarrow([
        "schema",
        "--url",
        &pg.url(db),
        "--table",
        "lineitem",
    ]));
    let err = assert_success(&out);
    assert!(err.is_empty(), "{err}");
    let text = stdout(&out);
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

#[test]
fn schema_notes_text_casts_and_does_not_run_the_query() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_schema_notes");
    pg.psql(&db, "CREATE SEQUENCE s; SELECT nextval('s');")
        .expect("sequence");
    let out = run(pgarrow([
        "schema",
        "--url",
        &pg.url(&db),
        "--query",
        "SELECT '10.1.2.3/24'::inet AS addr, nextval('s') AS n, '{}'::jsonb AS doc",
    ]));
    assert_success(&out);
    let text = stdout(&out);
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
    let last = pg
        .psql(&db, "SELECT last_value FROM s")
        .expect("last_value");
    assert_eq!(last.trim(), "1");
}

// ---------------------------------------------------------------------------------------------
// 8. --table quoting
// ---------------------------------------------------------------------------------------------

#[test]
fn table_names_are_quoted_not_interpolated() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_table_quoting");
    pg.psql(
        &db,
        &format!(
            "{}\
             CREATE SCHEMA \"Odd.Schema\";\n\
             CREATE TABLE \"Odd.Schema\".\"Mixed Case\"\"Quote\" (id bigint, label text);\n\
             INSERT INTO \"Odd.Schema\".\"Mixed Case\"\"Quote\" \
             SELECT g, 'row ' || g FROM generate_series(1, 5) g;\n",
            lineitem_sql("lineitem", 10)
        ),
    )
    .expect("setup");
    let url = pg.url(&db);
    let dir = tempdir();

    let target = dir.path().join("odd.parquet");
    let out = run(pgarrow([
        "export",
        "--url",
        &url,
        "--table",
        r#""Odd.Schema"."Mixed Case""Quote""#,
        "-o",
        path_str(&target),
    ]));
    let err = assert_success(&out);
    assert!(err.contains("exported 5 rows"), "{err}");
    let batches = read_parquet(&target);
    assert_eq!(int64s(&batches, "id"), [1, 2, 3, 4, 5]);
    assert_eq!(
        strings(&batches, "label"),
        (1..=5)
            .map(|g| Some(format!("row {g}")))
            .collect::<Vec<_>>()
    );

    let target = dir.path().join("evil.parquet");
    let out = run(pgarrow([
        "export",
        "--url",
        &url,
        "--table",
        "x; DROP TABLE lineitem",
        "-o",
        path_str(&target),
    ]));
    assert_error(&out, &["42P01", "x; DROP TABLE lineitem"]);
    assert!(!target.exists());
    let count = pg
        .psql(&db, "SELECT count(*) FROM lineitem")
        .expect("lineitem must still exist");
    assert_eq!(count.trim(), "10");

    // Names are exact: unquoted upper case is not folded.
    let out = run(pgarrow([
        "export", "--url", &url, "--table", "LINEITEM", "--to", "null",
    ]));
    assert_error(&out, &["42P01", "LINEITEM"]);

    // Malformed names are refused before connecting.
    let out = run(pgarrow([
        "export", "--url", &url, "--table", "a.b.c", "--to", "null",
    ]));
    assert_error(&out, &["invalid table name", "a.b.c"]);
    assert_dir_holds(dir.path(), &["odd.parquet"]);
}

// ---------------------------------------------------------------------------------------------
// 9. Connection settings from the environment
// ---------------------------------------------------------------------------------------------

#[test]
fn connection_from_database_url() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_database_url");
    let dir = tempdir();
    let target = dir.path().join("env.parquet");
    let mut cmd = pgarrow([
        "export",
        "--query",
        &whoami_query(4),
        "-o",
        path_str(&target),
    ]);
    cmd.env("DATABASE_URL", pg.url(&db));
    assert_success(&run(cmd));
    assert_whoami(&target, 4, "postgres", &db);

    // --url wins over DATABASE_URL (which points nowhere here).
    let target = dir.path().join("url.parquet");
    let mut cmd = pgarrow([
        "export",
        "--url",
        &pg.url(&db),
        "--query",
        &whoami_query(2),
        "-o",
        path_str(&target),
    ]);
    cmd.env(
        "DATABASE_URL",
        format!("postgresql://postgres@127.0.0.1:{}/nowhere", closed_port()),
    );
    assert_success(&run(cmd));
    assert_whoami(&target, 2, "postgres", &db);
    assert_dir_holds(dir.path(), &["env.parquet", "url.parquet"]);
}

#[test]
fn connection_from_pg_environment_variables() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_pg_env");
    let dir = tempdir();
    let target = dir.path().join("env.parquet");
    let mut cmd = pgarrow([
        "export",
        "--query",
        &whoami_query(5),
        "-o",
        path_str(&target),
    ]);
    cmd.env("PGHOST", "127.0.0.1")
        .env("PGPORT", pg.port().to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", &db);
    assert_success(&run(cmd));
    assert_whoami(&target, 5, "postgres", &db);

    // The PG* variables with a password, for a SCRAM user.
    let target = dir.path().join("scram.parquet");
    let mut cmd = pgarrow([
        "export",
        "--query",
        &whoami_query(1),
        "-o",
        path_str(&target),
    ]);
    cmd.env("PGHOST", "127.0.0.1")
        .env("PGPORT", pg.port().to_string())
        .env("PGUSER", pgarrow_testkit::SCRAM_USER)
        .env("PGPASSWORD", pgarrow_testkit::SCRAM_PASSWORD)
        .env("PGDATABASE", &db);
    assert_success(&run(cmd));
    assert_whoami(&target, 1, pgarrow_testkit::SCRAM_USER, &db);

    // The schema command reads the same settings.
    let mut cmd = pgarrow(["schema", "--query", "SELECT 1::int2 AS small"]);
    cmd.env("PGHOST", "127.0.0.1")
        .env("PGPORT", pg.port().to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", &db);
    let out = run(cmd);
    assert_success(&out);
    assert_eq!(
        schema_rows(&stdout(&out))[1],
        ["small", "smallint", "Int16"]
    );
    assert_dir_holds(dir.path(), &["env.parquet", "scram.parquet"]);
}

// ---------------------------------------------------------------------------------------------
// 10. Bad arguments
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_output_arguments_fail_before_connecting() {
    // The URL points at a closed port: a run that tried to connect would fail with "could
    // not connect" instead of the message checked here.
    let url = format!("postgresql://postgres@127.0.0.1:{}/postgres", closed_port());
    let dir = tempdir();
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &["--to", "csv", "-o", "out.parquet"],
            &["unknown format \"csv\"", "parquet", "arrow-stream"],
        ),
        (
            &["-o", "out.csv"],
            &["cannot tell the format", "out.csv", ".parquet", "--to"],
        ),
        (&["-o", "-"], &["stdout", "needs --to"]),
        (&[], &["-o PATH", "--to null"]),
        (&["--to", "null", "-o", "out.parquet"], &["drop -o"]),
        (
            &["--compression", "brotli", "-o", "out.parquet"],
            &["unknown compression \"brotli\"", "zstd"],
        ),
    ];
    for (extra, needles) in cases {
        let mut args = vec!["export", "--url", &url, "--query", "SELECT 1 AS one"];
        args.extend_from_slice(extra);
        let mut cmd = pgarrow(&args);
        cmd.current_dir(dir.path());
        let out = run(cmd);
        let err = assert_error(&out, needles);
        assert!(!err.contains("could not connect"), "{args:?}: {err}");
        assert_dir_holds(dir.path(), &[]);
    }
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
        let mut cmd = pgarrow(args);
        cmd.current_dir(dir.path());
        let out = run(cmd);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(err.contains("Usage"), "{args:?}: {err}");
        assert_dir_holds(dir.path(), &[]);
    }
}

#[test]
fn output_into_a_missing_directory_fails_before_the_query_runs() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_missing_dir");
    pg.psql(&db, "CREATE SEQUENCE s; SELECT nextval('s');")
        .expect("sequence");
    let dir = tempdir();
    let target = dir.path().join("missing").join("out.parquet");
    // The query would advance the sequence if it ran.
    let out = run(pgarrow([
        "export",
        "--url",
        &pg.url(&db),
        "--query",
        "SELECT nextval('s') AS n",
        "-o",
        path_str(&target),
    ]));
    assert_error(&out, &["missing"]);
    assert_dir_holds(dir.path(), &[]);
    let last = pg
        .psql(&db, "SELECT last_value FROM s")
        .expect("last_value");
    assert_eq!(last.trim(), "1");
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

/// Number of active COPY statements in `db` (other than psql's own query).
fn active_copies(pg: &Cluster, db: &str) -> u32 {
    pg.psql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' \
             AND state = 'active' AND query LIKE 'COPY %'"
        ),
    )
    .expect("pg_stat_activity")
    .trim()
    .parse()
    .expect("count")
}

/// Polls `cond` (each poll is a psql round trip, no sleeping) until it holds or `limit` passes.
fn poll_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting until {what}");
    }
}

#[test]
fn ctrl_c_stops_the_export_and_removes_the_temporary_file() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_ctrl_c");
    let dir = tempdir();
    let target = dir.path().join("out.parquet");
    // An endless stream of rows (a set-returning function in the select list streams; one in
    // FROM would be materialized first).
    let mut cmd = pgarrow([
        "export",
        "--url",
        &pg.url(&db),
        "--query",
        "SELECT generate_series(1::bigint, 9000000000000) AS g",
        "-o",
        path_str(&target),
    ]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spawn pgarrow");
    let pid = child.id();
    // Ready when the server runs the COPY: the output's temporary file exists by then.
    poll_until(Duration::from_secs(60), "the COPY runs", || {
        active_copies(pg, &db) == 1
    });
    let entries = dir_entries(dir.path());
    assert!(
        entries.len() == 1
            && entries[0].starts_with(".out.parquet.")
            && entries[0].ends_with(".pgarrow-tmp"),
        "expected only the temporary file while exporting: {entries:?}"
    );
    assert!(signal(pid, "INT"), "kill -INT {pid}");
    let out = wait_within(child, Duration::from_secs(60));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert_eq!(err, "pgarrow: interrupted; no output was written\n");
    assert!(out.stdout.is_empty());
    assert_dir_holds(dir.path(), &[]);
    // The server notices the closed connection and ends the query.
    poll_until(Duration::from_secs(60), "the COPY ends", || {
        active_copies(pg, &db) == 0
    });
}

#[test]
fn output_files_get_the_permissions_of_any_new_file() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_permissions");
    let dir = tempdir();
    let plain = dir.path().join("plain");
    std::fs::File::create(&plain).expect("create");
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o7777
    };
    for name in ["p.parquet", "a.arrow", "s.arrows"] {
        let target = dir.path().join(name);
        let out = run(pgarrow([
            "export",
            "--url",
            &pg.url(&db),
            "--query",
            "SELECT 1 AS one",
            "-o",
            path_str(&target),
            "--quiet",
        ]));
        assert_success(&out);
        assert_eq!(mode(&target), mode(&plain), "{name}");
    }
}

#[test]
fn empty_results_and_duplicate_column_names() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_shapes");
    let dir = tempdir();
    for (to, name) in [
        ("parquet", "e.parquet"),
        ("arrow", "e.arrow"),
        ("arrow-stream", "e.arrows"),
    ] {
        let target = dir.path().join(name);
        let out = run(pgarrow([
            "export",
            "--url",
            &pg.url(&db),
            "--query",
            "SELECT 1::bigint AS g WHERE false",
            "-o",
            path_str(&target),
        ]));
        let err = assert_success(&out);
        assert!(err.contains("exported 0 rows"), "{err}");
        let batches = read_back(to, &target);
        assert_eq!(row_count(&batches), 0, "{to}");
    }
    let target = dir.path().join("dup.arrow");
    let out = run(pgarrow([
        "export",
        "--url",
        &pg.url(&db),
        "--query",
        "SELECT 1::bigint AS a, 2::bigint AS a",
        "-o",
        path_str(&target),
    ]));
    assert_success(&out);
    let batches = read_arrow_file(&target);
    assert_eq!(row_count(&batches), 1);
    assert_eq!(batches[0].num_columns(), 2);

    // Statements that return no rows, or take parameters, are refused with a reason.
    for (query, needle) in [
        ("CREATE TABLE t (a int)", "returns no rows"),
        ("SELECT $1::int AS p", "parameter"),
    ] {
        let out = run(pgarrow([
            "export",
            "--url",
            &pg.url(&db),
            "--query",
            query,
            "--to",
            "null",
        ]));
        assert_error(&out, &[needle]);
    }
    let tables = pg
        .psql(&db, "SELECT count(*) FROM pg_class WHERE relname = 't'")
        .expect("pg_class");
    assert_eq!(tables.trim(), "0", "the CREATE TABLE must not have run");
    assert_dir_holds(
        dir.path(),
        &["dup.arrow", "e.arrow", "e.arrows", "e.parquet"],
    );
}

// ---------------------------------------------------------------------------------------------
// Regressions: bugs these tests found, now fixed
// ---------------------------------------------------------------------------------------------

#[test]
fn batch_bytes_reached_mid_row_does_not_truncate_the_export() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_bug_mid_row");
    let dir = tempdir();
    let target = dir.path().join("wide.arrow");
    // Field `a` alone exceeds --batch-bytes; field `b` (8 MiB) cannot arrive in the same read.
    // With the default --batch-bytes (64 MiB) the same happens for a row of two 65 MiB fields.
    let out = run(pgarrow([
        "export",
        "--url",
        &pg.url(&db),
        "--query",
        "SELECT g::bigint AS g, repeat('x', 2000) AS a, repeat('y', 8 * 1024 * 1024) AS b \
         FROM generate_series(1, 3) AS g",
        "--batch-bytes",
        "1000",
        "-o",
        path_str(&target),
    ]));
    let err = assert_success(&out);
    assert!(err.contains("exported 3 rows"), "{err}");
    let batches = read_arrow_file(&target);
    assert_eq!(row_count(&batches), 3);
    assert_eq!(int64s(&batches, "g"), [1, 2, 3]);
    for v in strings(&batches, "b") {
        assert_eq!(v.map(|s| s.len()), Some(8 * 1024 * 1024));
    }
}

#[test]
fn batch_bytes_reached_mid_row_after_complete_rows_exports_every_row() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_bug_mid_row2");
    let dir = tempdir();
    let target = dir.path().join("wide.arrow");
    // Row 1 (614 bytes) stays under --batch-bytes 1000; row 2's `g` and `a` cross it before
    // its 8 MB `b` has arrived.
    let out = run(pgarrow([
        "export",
        "--url",
        &pg.url(&db),
        "--query",
        "SELECT g, repeat('x', 600) AS a, \
         repeat('y', CASE WHEN g = 1 THEN 10 ELSE 8000000 END) AS b \
         FROM generate_series(1, 2) AS g",
        "--batch-bytes",
        "1000",
        "-o",
        path_str(&target),
    ]));
    let err = assert_success(&out);
    assert!(err.contains("exported 2 rows"), "{err}");
    let batches = read_arrow_file(&target);
    assert_eq!(row_count(&batches), 2);
    let lens: Vec<Option<usize>> = strings(&batches, "b")
        .into_iter()
        .map(|v| v.map(|s| s.len()))
        .collect();
    assert_eq!(lens, [Some(10), Some(8_000_000)]);
}

#[test]
fn zero_column_rows_are_counted_once() {
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_bug_zero_columns");
    let dir = tempdir();
    let target = dir.path().join("empty.arrow");
    let out = run(pgarrow([
        "export",
        "--url",
        &pg.url(&db),
        "--query",
        "SELECT FROM generate_series(1, 5)",
        "-o",
        path_str(&target),
    ]));
    let err = assert_success(&out);
    assert!(err.contains("exported 5 rows"), "{err}");
    let batches = read_arrow_file(&target);
    assert_eq!(row_count(&batches), 5);
    assert!(batches.iter().all(|b| b.num_columns() == 0));
}

/// `--stats` prints every phase on stderr; `--stats-json` writes the same as JSON whose counts
/// match the file written.
#[test]
fn stats_table_and_json() {
    let Some(pg) = Cluster::shared() else {
        return;
    };
    let db = lineitem_db(pg);
    let dir = tempdir();
    let target = dir.path().join("l.parquet");
    let json_path = dir.path().join("stats.json");
    let out = run(pgarrow([
        "export",
        "--url",
        &pg.url(db),
        "--table",
        "lineitem",
        "-o",
        path_str(&target),
        "--batch-rows",
        "50000",
        "--stats",
        "--stats-json",
        path_str(&json_path),
    ]));
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
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_zero_columns");
    pg.psql(
        &db,
        "CREATE TYPE nothing AS (); \
         CREATE TABLE t (id int, n nothing); \
         INSERT INTO t VALUES (1, ROW()), (2, NULL), (3, ROW());",
    )
    .expect("setup");
    let dir = tempdir();
    for (query, column_note) in [
        ("SELECT FROM t", "no columns"),
        ("SELECT id, n FROM t", "column \"n\""),
    ] {
        let out = run(pgarrow([
            "export",
            "--url",
            &pg.url(&db),
            "--query",
            query,
            "-o",
            path_str(&dir.path().join("x.parquet")),
        ]));
        assert_error(&out, &[column_note, "--to arrow"]);
        assert_dir_holds(dir.path(), &[]);
        let arrow = dir.path().join("x.arrow");
        let out = run(pgarrow([
            "export",
            "--url",
            &pg.url(&db),
            "--query",
            query,
            "-o",
            path_str(&arrow),
        ]));
        let err = assert_success(&out);
        assert!(err.contains("exported 3 rows"), "{err}");
        assert_eq!(row_count(&read_arrow_file(&arrow)), 3, "{query}");
        std::fs::remove_file(&arrow).unwrap();
    }
}

/// Intervals inside arrays and composites reach Parquet in their exact struct form.
#[test]
fn nested_intervals_to_parquet() {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type};
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_nested_intervals");
    pg.psql(&db, "CREATE TYPE span AS (d interval, n int)")
        .expect("setup");
    let dir = tempdir();
    let target = dir.path().join("iv.parquet");
    let out = run(pgarrow([
        "export",
        "--url",
        &pg.url(&db),
        "--query",
        "SELECT ARRAY['1 mon -2 days 00:00:00.000003'::interval, NULL] AS ivs, \
         ROW('-3 years 4 hours'::interval, 1)::span AS r",
        "-o",
        path_str(&target),
    ]));
    assert_success(&out);
    let batches = read_parquet(&target);
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
    let Some(pg) = Cluster::shared() else { return };
    let db = fresh_db(pg, "cli_array_depth");
    pg.psql(
        &db,
        "CREATE TABLE grid AS SELECT 1 AS id, '{{1,2},{3,4}}'::int[] AS g \
         UNION ALL SELECT 2, NULL;",
    )
    .expect("setup");
    let out = run(pgarrow([
        "schema",
        "--url",
        &pg.url(&db),
        "--table",
        "grid",
    ]));
    let text = assert_success(&out);
    let text = format!("{text}{}", stdout(&out));
    assert!(text.contains("array depth from the data"), "{text}");
    let dir = tempdir();
    let target = dir.path().join("g.parquet");
    let out = run(pgarrow([
        "export",
        "--url",
        &pg.url(&db),
        "--table",
        "grid",
        "-o",
        path_str(&target),
    ]));
    assert_success(&out);
    let batches = read_parquet(&target);
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
