//! `pgarrow import`: files written by `pgarrow export` (and an IPC stream on stdin) back into
//! tables, with each mode, and what it refuses.

mod common;

use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

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
    // Usage errors (exit status 2) are found before anything connects; the missing table
    // is the server's error (1).
    let cases: [(&[&str], i32, &[&str]); 6] = [
        (
            &["a.parquet", "b.parquet", "--into", "dst"],
            2,
            &["b.parquet does not have the columns of a.parquet"],
        ),
        (
            &["a.parquet", "c.arrow", "--into", "dst"],
            2,
            &["c.arrow does not have the columns of a.parquet"],
        ),
        (
            &["a.parquet", "--into", "dst", "--mode", "upsert"],
            2,
            &["mode upsert needs a key"],
        ),
        (
            &["a.parquet", "--into", "dst", "--mode", "merge"],
            2,
            &["invalid value 'merge'", "append, replace, upsert"],
        ),
        (
            &["a.csv", "--into", "dst"],
            2,
            &["cannot tell the format of a.csv"],
        ),
        (
            &["a.parquet", "--into", "nowhere"],
            1,
            &["nowhere", "42P01"],
        ),
    ];
    for (args, status, needles) in cases {
        let out = run(t.command("import", args));
        match status {
            2 => assert_usage_error(&out, needles),
            _ => assert_error(&out, needles),
        };
    }
    assert_eq!(t.psql("SELECT count(*) FROM dst"), "0");
    // A file on which the parquet reader panics (found by the fuzz target: definition levels
    // past their page): one error line naming the file, no panic message, nothing loaded.
    let bad = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/reader_panics.parquet"
    );
    let out = run(t.command("import", &[bad, "--into", "from_bad", "--create"]));
    let stderr = assert_error(&out, &["reader_panics.parquet", "malformed data"]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(t.psql("SELECT to_regclass('from_bad') IS NULL"), "t");
}

#[test]
fn copy_between_databases_creating_the_table() {
    let Some(t) = Setup::new("cli_copy", TABLES) else {
        return;
    };
    // The target database has the enum (created by name) but not the table.
    let target = t.pg.create_database("cli_copy_target").unwrap();
    t.pg.psql(&target, "CREATE TYPE mood AS ENUM ('sad', 'ok')")
        .unwrap();
    let target_url = t.pg.url(&target);
    let render = |db: &str, table: &str| {
        t.pg.psql(db, &format!("SELECT _r::text FROM {table} _r ORDER BY id"))
            .unwrap()
    };
    let copy = |args: &[&str]| {
        let mut cmd = pgarrow(["copy", "--from", &t.url, "--to", &target_url]);
        cmd.args(args);
        run(cmd)
    };
    // Without --create, a missing table is the server's error, and nothing is made.
    assert_error(&copy(&["--table", "src"]), &["src", "42P01"]);
    let err = assert_success(&copy(&[
        "--table",
        "src",
        "--create",
        "--partitions",
        "2",
        "--stats",
    ]));
    assert!(
        err.contains("loaded 3,000 rows from src into src (append)") && err.contains("source:"),
        "{err}"
    );
    assert_eq!(render(&target, "src"), render(&t.db, "src"));
    let types =
        t.pg.psql(
            &target,
            "SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum) FROM \
             pg_attribute WHERE attrelid = 'src'::regclass AND attnum > 0",
        )
        .unwrap();
    assert_eq!(types.trim(), "bigint,numeric,text,mood,interval,date");
    // A query upserted into a table with a key: changed rows updated, none added.
    t.pg.psql(&target, "ALTER TABLE src ADD PRIMARY KEY (id)")
        .unwrap();
    t.psql("UPDATE src SET h = 'changed' WHERE id % 3 = 0");
    let err = assert_success(&copy(&[
        "--query",
        "SELECT id, h FROM src WHERE id % 3 = 0",
        "--into",
        "src",
        "--mode",
        "upsert",
        "--key",
        "id",
    ]));
    assert!(err.contains("loaded 1,000 rows from the query"), "{err}");
    assert_eq!(render(&target, "src"), render(&t.db, "src"));
    // A failure in the source mid-way (a division by zero at row 2,000) loads nothing.
    let err = assert_error(
        &copy(&[
            "--query",
            "SELECT id + 100000 AS id, 1 / (id - 2000) AS n FROM src",
            "--into",
            "src",
        ]),
        &["division by zero", "22012"],
    );
    assert!(err.contains("the source"), "{err}");
    assert_eq!(
        t.pg.psql(&target, "SELECT count(*) FROM src")
            .unwrap()
            .trim(),
        "3000"
    );
}

#[test]
fn import_creates_a_table_with_the_exported_types() {
    let Some(t) = Setup::new(
        "cli_import_create",
        "CREATE TABLE src (id int PRIMARY KEY, n numeric(12,2), v varchar(10), a int[],
                           ts timestamptz, ip inet);
         INSERT INTO src SELECT g, g / 4.0, 'v' || g, ARRAY[g, -g], '2024-01-01'::timestamptz,
                                ('10.0.0.' || (g % 250) || '/32')::inet FROM generate_series(1, 500) g;",
    ) else {
        return;
    };
    assert_success(&t.export(&["--table", "src", "-o", "s.parquet"]));
    let err = assert_success(&run(
        t.command("import", &["s.parquet", "--into", "made", "--create"])
    ));
    assert!(err.contains("loaded 500 rows"), "{err}");
    assert_eq!(
        t.psql(
            "SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum) FROM \
             pg_attribute WHERE attrelid = 'made'::regclass AND attnum > 0"
        ),
        "integer,numeric(12,2),character varying(10),integer[],timestamp with time zone,inet"
    );
    assert_eq!(rows(&t, "made"), rows(&t, "src"));
    // --create on a table that exists appends to it.
    assert_success(&run(t.command(
        "import",
        &[
            "s.parquet",
            "--into",
            "src",
            "--create",
            "--mode",
            "replace",
        ],
    )));
    assert_eq!(t.psql("SELECT count(*) FROM src"), "500");
}

#[test]
fn ctrl_c_during_an_import_sends_copy_fail_and_loads_nothing() {
    let Some(t) = Setup::new("cli_import_sigint", TABLES) else {
        return;
    };
    assert_success(&t.export(&["--table", "src", "--to", "arrow-stream", "-o", "s.arrows"]));
    let bytes = std::fs::read(t.path("s.arrows")).unwrap();
    let mut cmd = t.command("import", &["-", "--into", "dst"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // Part of the stream, and stdin left open: the load has begun and waits for the rest.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes[..bytes.len() / 2]).unwrap();
    stdin.flush().unwrap();
    let find = format!(
        "SELECT pid FROM pg_stat_activity WHERE datname = '{}' AND query LIKE 'COPY \"public\".\"dst\"%'",
        t.db
    );
    let backend = pgarrow_testkit::activity::wait_for_pid(t.pg, &find, DEADLINE);
    let (out, took) = interrupt(child, "INT", Duration::from_secs(30));
    drop(stdin);
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "pgarrow: interrupted (Ctrl-C); nothing was loaded (the transaction was rolled back)\n"
    );
    assert!(
        took < Duration::from_secs(3),
        "exited {took:?} after the signal"
    );
    assert_eq!(t.psql("SELECT count(*) FROM dst"), "0");
    pgarrow_testkit::activity::backend_gone_within(
        t.pg,
        backend,
        pgarrow_testkit::activity::CANCEL_REACHES_BACKEND,
    );
    // The server was told (CopyFail), not left to find a closed socket.
    let log = std::fs::read_to_string(t.pg.log_path()).unwrap_or_default();
    assert!(
        log.contains("COPY from stdin failed: pgarrow:"),
        "no CopyFail in the server log"
    );
}

#[test]
fn every_type_round_trips_through_parquet_and_between_databases() {
    for (name, sql) in [
        ("types", include_str!("../../../testdata/load/types.sql")),
        ("nested", include_str!("../../../testdata/load/nested.sql")),
    ] {
        let Some(t) = Setup::new(&format!("cli_round_trip_{name}"), sql) else {
            return;
        };
        let src = rows(&t, "src");
        // PG -> Parquet -> PG.
        assert_success(&t.export(&["--table", "src", "-o", "s.parquet"]));
        assert_success(&run(t.command("import", &["s.parquet", "--into", "dst"])));
        assert_eq!(rows(&t, "dst"), src, "{name}: through Parquet");
        // PG -> PG, into another database with the same types.
        let other =
            t.pg.create_database(&format!("cli_round_trip_{name}_to"))
                .unwrap();
        t.pg.psql(&other, sql).unwrap();
        let mut cmd = pgarrow(["copy", "--from", &t.url, "--to", &t.pg.url(&other)]);
        cmd.args(["--table", "src", "--into", "dst"]);
        assert_success(&run(cmd));
        let copied =
            t.pg.psql(&other, "SELECT _r::text FROM dst _r ORDER BY id")
                .unwrap();
        assert_eq!(copied.trim(), src, "{name}: PG -> PG");
    }
}

/// `pgarrow import DIR` loads exactly the files of the directory's manifest (not a stray file
/// beside them), and refuses a directory whose files do not hold the rows it lists.
#[test]
fn a_directory_is_read_through_its_manifest() {
    let Some(t) = Setup::new("cli_import_dir", TABLES) else {
        return;
    };
    let args = [
        "--table",
        "src",
        "--partitions",
        "2",
        "--output-dir",
        "parts",
    ];
    assert_success(&t.export(&args));
    std::fs::copy(
        t.path("parts/part-00000.parquet"),
        t.path("parts/stray.parquet"),
    )
    .unwrap();
    let out = run(t.command("import", &["parts", "--into", "dst"]));
    let err = assert_success(&out);
    assert!(
        err.contains("loaded 3,000 rows from parts into dst"),
        "{err}"
    );
    assert_eq!(rows(&t, "dst"), rows(&t, "src"));

    let manifest = t.path("parts/_manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["files"][0]["rows"] = serde_json::json!(7);
    std::fs::write(&manifest, json.to_string()).unwrap();
    let out = run(t.command("import", &["parts", "--into", "dst", "--mode", "replace"]));
    assert_usage_error(&out, &["its manifest says 7"]);
    assert_eq!(t.psql("SELECT count(*) FROM dst"), "3000");

    std::fs::remove_file(&manifest).unwrap();
    let out = run(t.command("import", &["parts", "--into", "dst"]));
    assert_usage_error(&out, &["parts has no _manifest.json"]);
}

#[test]
fn a_name_means_the_same_table_in_every_command() {
    // Two tables whose names differ only in case: unquoted names fold to lower case, as SQL
    // and `export --table` read them; quoted ones keep their case.
    let Some(t) = Setup::new(
        "cli_names",
        "CREATE SCHEMA probes;
         CREATE TABLE probes.foo (v int); INSERT INTO probes.foo VALUES (1);
         CREATE TABLE probes.\"Foo\" (v int); INSERT INTO probes.\"Foo\" VALUES (2);
         CREATE TABLE probes.bar (v int);
         CREATE TABLE probes.\"Bar\" (v int);",
    ) else {
        return;
    };
    assert_success(&t.export(&["--table", "probes.Foo", "-o", "lower.parquet"]));
    assert_success(&t.export(&["--table", "probes.\"Foo\"", "-o", "upper.parquet"]));
    for (file, into) in [
        ("lower.parquet", "probes.Bar"),
        ("upper.parquet", "probes.\"Bar\""),
    ] {
        assert_success(&run(t.command("import", &[file, "--into", into])));
    }
    assert_eq!(t.psql("SELECT v FROM probes.bar"), "1");
    assert_eq!(t.psql("SELECT v FROM probes.\"Bar\""), "2");
    // copy: --table and --into read names the same way.
    let copy = |args: &[&str]| {
        let mut cmd = pgarrow(["copy", "--from", &t.url]);
        cmd.args(args).current_dir(t.dir.path());
        assert_success(&run(cmd));
    };
    copy(&["--table", "PROBES.FOO", "--into", "Probes.Bar"]);
    copy(&["--table", "probes.\"Foo\"", "--into", "probes.\"Bar\""]);
    assert_eq!(
        t.psql("SELECT string_agg(v::text, ',' ORDER BY v) FROM probes.bar"),
        "1,1"
    );
    assert_eq!(
        t.psql("SELECT string_agg(v::text, ',' ORDER BY v) FROM probes.\"Bar\""),
        "2,2"
    );
}

/// `import` and `copy` run on sessions of their own, where no temporary table of another
/// session can shadow a table; but a search path that starts with `pg_temp` (a URL's
/// `options`, `PGOPTIONS`, a role's setting) made a bare `CREATE TABLE` a temporary one: the
/// rows were loaded, reported, and gone with the session. A table without its schema is the
/// first schema of the search path (less pg_temp) that has it, else created in the first.
#[test]
fn import_and_copy_never_write_into_a_temporary_table() {
    let Some(t) = Setup::new("cli_import_temp", TABLES) else {
        return;
    };
    // With its key, so that a table created from the file takes an upsert.
    t.psql("ALTER TABLE src ADD PRIMARY KEY (id)");
    assert_success(&t.export(&["--table", "src", "-o", "a.parquet"]));
    let url = format!("{}?options=-csearch_path%3Dpg_temp%2Cpublic", t.url);
    let persistence = |table: &str| {
        t.psql(&format!(
            "SELECT relpersistence::text || ' ' || (SELECT count(*) FROM public.{table}) FROM \
             pg_class WHERE oid = 'public.{table}'::regclass"
        ))
    };
    let import = |args: &[&str]| {
        let mut cmd = pgarrow(["import", "--url", &url, "a.parquet"]);
        cmd.args(args).current_dir(t.dir.path());
        assert_success(&run(cmd))
    };
    import(&["--into", "made", "--create"]);
    assert_eq!(persistence("made"), "p 3000");
    import(&[
        "--into",
        "made_upsert",
        "--create",
        "--mode",
        "upsert",
        "--key",
        "id",
    ]);
    assert_eq!(persistence("made_upsert"), "p 3000");
    for args in [
        &["--mode", "append"][..],
        &["--mode", "replace"],
        &["--mode", "upsert", "--key", "id"],
    ] {
        import(&[&["--into", "dst"], args].concat());
        assert_eq!(rows(&t, "public.dst"), rows(&t, "src"), "{args:?}");
    }
    let copy = |args: &[&str]| {
        let mut cmd = pgarrow(["copy", "--from", &t.url, "--to", &url, "--table", "src"]);
        cmd.args(args).current_dir(t.dir.path());
        assert_success(&run(cmd))
    };
    copy(&["--into", "copied", "--create"]);
    assert_eq!(persistence("copied"), "p 3000");
    for mode in ["replace", "upsert"] {
        let mut args = vec!["--into", "dst", "--mode", mode];
        if mode == "upsert" {
            args.extend(["--key", "id"]);
        }
        copy(&args);
        assert_eq!(rows(&t, "public.dst"), rows(&t, "src"), "{mode}");
    }
}

#[test]
fn the_servers_notices_are_shown_unless_quiet() {
    let Some(t) = Setup::new(
        "cli_notices",
        "CREATE FUNCTION warn() RETURNS int LANGUAGE plpgsql AS $$
         BEGIN RAISE WARNING 'careful: %', 42 USING HINT = 'be careful'; RETURN 1; END $$;
         CREATE TABLE loud (v int);
         CREATE FUNCTION said() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE NOTICE 'loading %', NEW.v; RETURN NEW; END $$;
         CREATE TRIGGER said BEFORE INSERT ON loud FOR EACH ROW EXECUTE FUNCTION said();",
    ) else {
        return;
    };
    let out = t.export(&["--query", "SELECT warn() AS v", "-o", "w.parquet"]);
    let err = assert_success(&out);
    assert!(
        err.contains("WARNING:  careful: 42\nHINT:  be careful"),
        "{err}"
    );
    let out = t.export(&[
        "--query",
        "SELECT warn() AS v",
        "-o",
        "w.parquet",
        "--quiet",
    ]);
    let err = assert_success(&out);
    assert!(!err.contains("careful"), "{err}");
    // A load: the trigger's notices, once per row.
    let err = assert_success(&run(t.command("import", &["w.parquet", "--into", "loud"])));
    assert!(err.contains("NOTICE:  loading 1"), "{err}");
    let out = run(t.command("import", &["w.parquet", "--into", "loud", "--quiet"]));
    assert!(!stderr(&out).contains("loading"), "{}", stderr(&out));
    assert_eq!(t.psql("SELECT count(*) FROM loud"), "2");
}

/// Files written by other implementations, vendored from the Parquet project's test corpus
/// (`testdata/parquet-testing`), load as pyarrow and DuckDB read them:
/// `repeated_no_annotation.parquet`, whose footer says 0 rows while its row group holds 6
/// (a repeated group without a LIST annotation, nested in a struct), loads all 6; and
/// `dict-page-offset-zero.parquet` (a dictionary page offset of 0, meaning none), its 39.
#[test]
fn outside_parquet_files_load_as_other_readers_read_them() {
    let Some(t) = Setup::new("cli_import_outside", "") else {
        return;
    };
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/parquet-testing");
    // Imports the file `name` into a new table `into`, which must get `rows` rows.
    let import = |name: &str, into: &str, rows: &str| {
        let file = dir.join(name).to_str().unwrap().to_owned();
        let out = run(t.command("import", &[&file, "--into", into, "--create"]));
        let err = assert_success(&out);
        assert!(
            err.contains(&format!("loaded {rows} rows")),
            "{name}: {err}"
        );
    };

    import("repeated_no_annotation.parquet", "phones", "6");
    assert_eq!(
        t.psql("SELECT id, jsonb_array_length(\"phoneNumbers\"->'phone') FROM phones ORDER BY id"),
        "1|\n2|\n3|0\n4|1\n5|1\n6|3"
    );
    assert_eq!(
        t.psql(
            "SELECT sum((e->>'number')::bigint), count(e->>'kind'), string_agg(e->>'kind', ',') \
             FROM phones, jsonb_array_elements(\"phoneNumbers\"->'phone') e"
        ),
        "13333333332|3|home,home,mobile"
    );

    import("dict-page-offset-zero.parquet", "parts", "39");
    assert_eq!(
        t.psql("SELECT count(*), count(DISTINCT l_partkey), min(l_partkey) FROM parts"),
        "39|1|1552"
    );
}
