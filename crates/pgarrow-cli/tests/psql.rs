//! The psql-like command line of `pgarrow`: connection flags (`-h -p -U -d -W`), `-?`, scripts
//! (`-f`, `--query -`), `--columns/--where/--limit`, table name patterns and many tables in one
//! snapshot, errors that name the flag or show the position, exit statuses, pipes and terminals,
//! `--json`, `--dry-run`, completions and man pages. Run as a user runs them, against a real
//! server; every database object is prefixed `psql_` and every test has a database of its own.
//!
//! Over ~600 lines for the same reason as `cli.rs`: one binary for one surface of the command.

mod common;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrow_array::RecordBatch;
use common::*;
use pgarrow_testkit::activity::{
    CANCEL_REACHES_BACKEND, backend_gone_within, slow_database, wait_for_pid,
};

/// A URL nobody answers at: a run that tried to connect would fail with another message.
fn unreachable() -> String {
    format!("postgresql://u@127.0.0.1:{}/db", closed_port())
}

/// Asserts exit status `code`, nothing on stdout and every needle on stderr; returns stderr.
fn assert_fails(out: &Output, code: i32, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(out));
    for needle in needles {
        assert!(err.contains(needle), "no {needle:?} in: {err}");
    }
    err
}

/// Runs `cmd`, an export into `target`: asserts success and `rows` rows in the file; returns
/// the batches and stderr.
fn file_rows(cmd: Command, target: &Path, rows: u64) -> (Vec<RecordBatch>, String) {
    let err = assert_success(&run(cmd));
    let batches = read_file(target);
    assert_eq!(row_count(&batches), rows, "{}: {err}", target.display());
    (batches, err)
}

/// `pgarrow export --url URL ARGS -o NAME` in `t`'s directory, as [`file_rows`].
fn export_to(t: &Setup, args: &[&str], name: &str, rows: u64) -> (Vec<RecordBatch>, String) {
    let mut cmd = t.command("export", args);
    cmd.args(["-o", name]);
    file_rows(cmd, &t.path(name), rows)
}

/// Runs `cmd`: asserts success and returns stdout.
fn stdout_of(cmd: Command) -> String {
    let out = run(cmd);
    assert_success(&out);
    stdout(&out)
}

/// The words of `s`, for arguments without spaces.
fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

/// The column names of an export.
fn names(batches: &[RecordBatch]) -> Vec<String> {
    let schema = batches[0].schema();
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// Whether `tool` is on `$PATH`.
fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `program ARGS` run with `inner`'s environment changes and directory (stdin null).
fn wrap(inner: &Command, program: &str, args: Vec<OsString>) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    for (key, value) in inner.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    if let Some(dir) = inner.get_current_dir() {
        cmd.current_dir(dir);
    }
    cmd
}

/// `inner`'s program and arguments as one `sh` command line.
fn shell_line(inner: &Command) -> String {
    std::iter::once(inner.get_program())
        .chain(inner.get_args())
        .map(|s| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `inner` run on a terminal of its own (a pty from util-linux `script`, which makes the
/// run's stdin, stdout and stderr that terminal). Without `script` the test fails, or gets
/// `None` and is skipped, saying so, when the run allows skipping (`PGARROW_ALLOW_SKIP=1`).
fn on_a_terminal(inner: &Command) -> Option<Command> {
    if !have("script") {
        pgarrow_testkit::missing(
            "the `script` command",
            "it gives the run a terminal (util-linux; apt-get install bsdutils)",
        );
        return None;
    }
    let args: Vec<OsString> = vec!["-qec".into(), shell_line(inner).into(), "/dev/null".into()];
    Some(wrap(inner, "script", args))
}

/// `let Some(t) = Setup::new(prefix, sql) else { return };`: a test's database, or the test
/// returns (the cluster printed SKIPPED) without PostgreSQL.
macro_rules! setup {
    ($t:ident, $prefix:expr, $sql:expr) => {
        let Some($t) = Setup::new($prefix, $sql) else {
            return;
        };
    };
}

const CURRENT_DB: &str = "select current_database()::text as db";

#[test]
fn psql_connection_flags_connect() {
    let setup = "CREATE TABLE psql_t AS SELECT g::bigint AS id FROM generate_series(1, 10000) g;";
    setup!(t, "psql_conn_flags", setup);
    let port = t.pg.port().to_string();
    let socket = path_str(t.pg.socket_dir()).to_owned();
    let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname={}", t.db);
    let tcp = format!("-h 127.0.0.1 -p {port} -U postgres -d {}", t.db);
    let tcp = words(&tcp);
    let socket = format!("-h {socket} -p {port} -U postgres -d {}", t.db);
    let long = format!(
        "--host 127.0.0.1 --port {port} --username postgres --dbname {}",
        t.db
    );
    let cases: [(&str, Vec<&str>); 5] = [
        ("socket.parquet", words(&socket)),
        ("tcp.parquet", tcp.clone()),
        ("long.parquet", words(&long)),
        ("url.parquet", vec!["-d", &t.url]),
        ("conninfo.parquet", vec!["-d", &conninfo]),
    ];
    for (name, flags) in cases {
        let mut cmd = pgarrow(["export"]);
        cmd.args(&flags)
            .args(["-q", CURRENT_DB, "-o", name])
            .current_dir(t.dir.path());
        let (batches, _) = file_rows(cmd, &t.path(name), 1);
        assert_eq!(strings(&batches, "db"), [Some(t.db.clone())], "{name}");
    }
    // schema, plan and import take the same flags.
    let mut cmd = pgarrow(["schema"]);
    cmd.args(&tcp).args(["-q", "select 1::int4 as a"]);
    let text = stdout_of(cmd);
    assert!(text.contains("Int32"), "{text}");
    let mut cmd = pgarrow(["plan"]);
    cmd.args(&tcp).current_dir(t.dir.path());
    cmd.args(words(
        "-t psql_t --partitions 2 --snapshot per-connection -o plan.json",
    ));
    assert_success(&run(cmd));
    let plan = std::fs::read_to_string(t.path("plan.json")).expect("plan.json");
    serde_json::from_str::<serde_json::Value>(&plan).expect("the plan is JSON");
    let mut cmd = pgarrow(["import"]);
    cmd.args(&tcp).current_dir(t.dir.path());
    cmd.args(words("tcp.parquet --into psql_imported --create"));
    assert_success(&run(cmd));
    assert_eq!(t.psql("SELECT db FROM psql_imported"), t.db);

    // -h is the host, so it needs a value (it is not --help).
    let dir = tempdir();
    let mut cmd = pgarrow(["export", "-q", "select 1 as a", "-o", "x.parquet", "-h"]);
    cmd.current_dir(dir.path());
    assert_fails(&run_within(cmd, FAILURE_DEADLINE), 2, &[]);
    assert_dir_holds(dir.path(), &[]);
}

#[test]
fn psql_connection_flags_take_precedence_over_urls_and_the_environment() {
    setup!(t, "psql_conn_precedence", "");
    let port = t.pg.port().to_string();
    let closed = closed_port().to_string();
    let nowhere = format!("postgresql://postgres@127.0.0.1:{closed}/nowhere");
    let db_nowhere = vec![("DATABASE_URL", nowhere.clone())];
    let pg_nowhere = vec![
        ("PGHOST", "127.0.0.1".to_owned()),
        ("PGPORT", closed.clone()),
        ("PGUSER", "postgres".to_owned()),
        ("PGDATABASE", "nowhere".to_owned()),
    ];
    let flags = format!("-h 127.0.0.1 -p {port} -U postgres -d {}", t.db);
    let port_db = format!("-p {port} -d {}", t.db);
    let over_url = format!("--url {nowhere} {port_db}");
    let (d_url, url) = (format!("-d {}", t.url), format!("--url {}", t.url));
    type Env<'a> = &'a [(&'a str, String)];
    let cases: [(&str, &str, Env<'_>); 5] = [
        // -p and -d replace the port and the database of --url.
        ("over_url", &over_url, &[]),
        ("over_database_url", &flags, &db_nowhere),
        ("d_url_over_database_url", &d_url, &db_nowhere),
        ("over_pg_env", &port_db, &pg_nowhere),
        ("url_over_pg_env", &url, &pg_nowhere),
    ];
    for (case, flags, env) in cases {
        let name = format!("{case}.parquet");
        let args = [words(flags), vec!["-q", CURRENT_DB, "-o", &name]].concat();
        assert_success(&t.export_env(&args, env));
        let batches = read_parquet(&t.path(&name));
        assert_eq!(strings(&batches, "db"), [Some(t.db.clone())], "{case}");
    }
}

#[test]
fn psql_question_mark_and_help_print_usage() {
    for command in ["export", "schema", "plan", "import"] {
        for flag in ["-?", "--help"] {
            let text = stdout_of(pgarrow([command, flag]));
            assert!(text.contains("Usage"), "{command} {flag}: {text}");
            for option in ["--host", "--port", "--username", "--dbname", "--password"] {
                assert!(text.contains(option), "{command} {flag}: {text}");
            }
        }
    }
    // Nested commands too (tests/docs.rs walks the whole tree through the parser).
    for command in [["lake", "compact"], ["lake", "expire"]] {
        for flag in ["-?", "--help"] {
            let text = stdout_of(pgarrow([command[0], command[1], flag]));
            assert!(
                text.contains("Usage: pgarrow lake"),
                "{command:?} {flag}: {text}"
            );
        }
    }
}

#[test]
fn psql_password_prompt_without_a_terminal_is_a_usage_error() {
    let dir = tempdir();
    let port = closed_port().to_string();
    let flags = format!("export -W -h 127.0.0.1 -p {port} -U u -d db -o x.parquet");
    let mut inner = pgarrow(words(&flags));
    inner.args(["-q", "select 1 as a"]).current_dir(dir.path());
    // In a session of its own, the run has no controlling terminal either: it cannot prompt.
    let cmd = if have("setsid") {
        let mut args: Vec<OsString> = vec!["-w".into(), inner.get_program().to_owned()];
        args.extend(inner.get_args().map(ToOwned::to_owned));
        wrap(&inner, "setsid", args)
    } else {
        inner
    };
    assert_fails(&run_within(cmd, FAILURE_DEADLINE), 2, &["-W", "terminal"]);
    assert_dir_holds(dir.path(), &[]);
}

#[test]
fn psql_password_prompt_reads_the_terminal() {
    setup!(t, "psql_prompt", "");
    let port = t.pg.port().to_string();
    let target = t.path("prompted.parquet");
    let user = pgarrow_testkit::SCRAM_USER;
    let args = [
        "export",
        "-W",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        user,
        "-d",
        &t.db,
    ];
    let mut inner = pgarrow(args);
    inner.args(["-q", CURRENT_DB, "-o", path_str(&target)]);
    let Some(mut cmd) = on_a_terminal(&inner) else {
        return;
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("script");
    // Typed on the terminal (script's stdin), kept open until the run ends.
    let mut keys = child.stdin.take().expect("stdin");
    keys.write_all(format!("{}\n", pgarrow_testkit::SCRAM_PASSWORD).as_bytes())
        .expect("typing the password");
    let out = wait_within(child, DEADLINE);
    drop(keys);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Password:"), "{text}");
    let batches = read_parquet(&target);
    assert_eq!(strings(&batches, "db"), [Some(t.db.clone())]);
}

#[test]
fn psql_contradictory_output_flags_fail_before_connecting() {
    let url = unreachable();
    let dir = tempdir();
    let cases: [(&str, &[&str]); 4] = [
        ("-o x.parquet --to arrow", &["--to arrow", "x.parquet"]),
        (
            "--to arrow --compression snappy -o x.arrow",
            &["--compression", "parquet"],
        ),
        ("-o x.arrow --row-group-rows 10", &["--row-group-rows"]),
        (
            "--to parquet --intervals struct -o x.parquet",
            &["--intervals"],
        ),
    ];
    for (extra, needles) in cases {
        let mut cmd = pgarrow(["export", "--url", &url, "-q", "select 1 as a"]);
        cmd.args(words(extra)).current_dir(dir.path());
        let err = assert_fails(&run_within(cmd, FAILURE_DEADLINE), 2, needles);
        assert!(!err.contains("could not connect"), "{extra:?}: {err}");
        assert_dir_holds(dir.path(), &[]);
    }
}

#[test]
fn psql_output_errors_name_the_users_path() {
    setup!(t, "psql_output_path", "");
    assert!(!Path::new("/nonexistent-dir").exists());
    for path in words("/nonexistent-dir/x.parquet missing/x.parquet missing/x.arrow") {
        let out = t.export(&["-q", "select 1 as a", "-o", path]);
        let err = assert_fails(&out, 1, &[path]);
        assert!(!err.contains("pgarrow-tmp"), "{err}");
    }
    t.assert_holds(&[]);
}

/// Asserts psql's picture of an error position in `err`: `LINE n: ` and the user's line, then
/// a line with a caret under `token`.
fn assert_caret(err: &str, line_no: usize, user_line: &str, token: &str) {
    let prefix = format!("LINE {line_no}: ");
    let lines: Vec<&str> = err.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}: {err}"));
    assert_eq!(lines[at][prefix.len()..].trim_end(), user_line, "{err}");
    let column = prefix.len() + user_line.rfind(token).expect("the token is in the line");
    let caret = lines.get(at + 1).copied().unwrap_or_default();
    let want = format!("{}^", " ".repeat(column));
    assert_eq!(caret.trim_end(), want, "a caret under {token:?}: {err}");
}

#[test]
fn psql_syntax_errors_show_the_line_and_a_caret() {
    setup!(t, "psql_caret", "");
    // (query, line of the error, that line, the token the server reports)
    let cases = [
        ("select 1 as a,\n  2 frm t", 2, "  2 frm t", "t"),
        ("   select 1 as a frm t", 1, "   select 1 as a frm t", "frm"),
        ("\n\n  select 1 as a,\n  2 frm t", 4, "  2 frm t", "t"),
    ];
    for (query, line_no, line, token) in cases {
        let out = t.export(&["-q", query, "-o", "x.parquet"]);
        let err = assert_fails(&out, 1, &["syntax error", &format!("\"{token}\"")]);
        assert_caret(&err, line_no, line, token);
    }
    t.assert_holds(&[]);
}

#[test]
fn psql_trailing_semicolons_and_comments_are_accepted() {
    setup!(t, "psql_trailing", "");
    let queries = [
        "select 1 as a; -- the end",
        "select 1 as a /* c */ ;\n-- x\n",
    ];
    for (i, query) in queries.into_iter().enumerate() {
        export_to(&t, &["-q", query], &format!("q{i}.parquet"), 1);
    }
}

#[test]
fn psql_exports_run_read_only() {
    setup!(t, "psql_read_only", "CREATE TABLE psql_ro (a int);");
    for query in [
        "insert into psql_ro(a) values (1) returning a",
        "with i as (insert into psql_ro(a) values (1) returning a) select a from i",
    ] {
        let out = t.export(&["-q", query, "-o", "x.parquet"]);
        assert_fails(&out, 1, &["read-only"]);
    }
    assert_eq!(t.psql("SELECT count(*) FROM psql_ro"), "0");
    t.assert_holds(&[]);
}

#[test]
fn psql_policy_errors_name_the_flag() {
    setup!(t, "psql_policy_flags", "");
    // (query, flags, the flag the error names)
    let cases = [
        ("select 'NaN'::numeric(10,2) as n", "", "--out-of-range"),
        (
            "select 'infinity'::date as d",
            "--infinity error",
            "--infinity",
        ),
        (
            "select 12345.678::numeric as n",
            "--numeric decimal128:5:2",
            "--numeric-overflow",
        ),
    ];
    for (query, flags, flag) in cases {
        let args = [vec!["-q", query, "-o", "x.parquet"], words(flags)].concat();
        let out = t.export(&args);
        assert_fails(&out, 1, &[flag]);
        t.assert_holds(&[]);
    }
}

const THREE_ROWS: &str = "-- three rows\nselect g::bigint as g from generate_series(1, 3) g;\n";

#[test]
fn psql_query_from_a_file_or_from_stdin() {
    setup!(t, "psql_scripts", "");
    std::fs::write(t.path("rows.sql"), THREE_ROWS).expect("write rows.sql");
    let (batches, _) = export_to(&t, &["-f", "rows.sql"], "file.parquet", 3);
    assert_eq!(int64s(&batches, "g"), [1, 2, 3]);

    let mut cmd = t.command("export", &["--query", "-", "-o", "stdin.parquet"]);
    cmd.stdin(Stdio::piped());
    let mut child = spawn(cmd);
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(THREE_ROWS.as_bytes()).expect("write stdin");
    drop(input);
    assert_success(&wait_within(child, DEADLINE));
    let batches = read_parquet(&t.path("stdin.parquet"));
    assert_eq!(int64s(&batches, "g"), [1, 2, 3]);
}

#[test]
fn psql_table_columns_where_and_limit() {
    let setup = "CREATE TABLE psql_cols (a bigint, b text, c int, \"Mixed Case\" bigint); \
                 INSERT INTO psql_cols SELECT g, 'b' || g, 0, g * 10 FROM generate_series(1, 4) g;";
    setup!(t, "psql_columns", setup);
    let args = [
        words("--table psql_cols --columns b,a --limit 2"),
        vec!["--where", "a > 1"],
    ];
    let (batches, _) = export_to(&t, &args.concat(), "cols.parquet", 2);
    assert_eq!(names(&batches), ["b", "a"]);
    let (ids, labels) = (int64s(&batches, "a"), strings(&batches, "b"));
    for (id, label) in ids.iter().zip(&labels) {
        assert!(*id > 1, "{id} does not satisfy a > 1");
        assert_eq!(label.as_deref(), Some(format!("b{id}").as_str()));
    }
    let args = ["--table", "psql_cols", "--columns", "\"Mixed Case\""];
    let (batches, _) = export_to(&t, &args, "mixed.parquet", 4);
    assert_eq!(names(&batches), ["Mixed Case"]);
    let mut values = int64s(&batches, "Mixed Case");
    values.sort_unstable();
    assert_eq!(values, [10, 20, 30, 40]);
    // --where filters a --table: with --query it is a usage error.
    let out = t.export(&["-q", "select 1 as a", "--where", "a > 1", "-o", "w.parquet"]);
    assert_fails(&out, 2, &["--where"]);
    t.assert_holds(&["cols.parquet", "mixed.parquet"]);
}

#[test]
fn psql_a_reader_closing_the_pipe_early_is_not_an_error() {
    setup!(t, "psql_pipe", "");
    let query = "select g, repeat('x', 100) as x from generate_series(1, 200000) g";
    let mut child = spawn(t.command("export", &["-q", query, "--to", "arrow-stream", "-o", "-"]));
    let mut head = [0u8; 10];
    let mut pipe = child.stdout.take().expect("stdout");
    pipe.read_exact(&mut head).expect("the first 10 bytes");
    drop(pipe);
    // An IPC stream starts with the continuation marker.
    assert_eq!(head[..4], [0xff; 4]);
    let out = wait_within(child, DEADLINE);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.to_lowercase().contains("error"), "{err}");
}

#[test]
fn psql_arrow_to_a_terminal_is_refused() {
    setup!(t, "psql_terminal", "");
    let args = [vec!["-q", "select 1 as a"], words("--to arrow -o -")].concat();
    let Some(cmd) = on_a_terminal(&t.command("export", &args)) else {
        return;
    };
    let out = run_within(cmd, FAILURE_DEADLINE);
    // Under script, the run's stdout and stderr are both the terminal: script's stdout.
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("terminal"), "{text}");
    t.assert_holds(&[]);
}

#[test]
fn psql_json_prints_one_object_on_stdout() {
    setup!(t, "psql_json", "");
    let target = t.path("j.parquet");
    let query = "select g from generate_series(1, 3) g";
    let text = stdout_of(t.command("export", &["--json", "-q", query, "-o", path_str(&target)]));
    let json: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {text}"));
    assert!(json.is_object(), "{json}");
    assert_eq!(json["rows"], 3, "{json}");
    assert_eq!(json["output"], path_str(&target), "{json}");
    assert_eq!(json["format"], "parquet", "{json}");
    assert_eq!(row_count(&read_parquet(&target)), 3);
}

#[test]
fn psql_dry_run_prints_the_plan_and_runs_nothing() {
    let setup = "CREATE SEQUENCE psql_seq; SELECT nextval('psql_seq'); \
                 CREATE TABLE psql_dry (id int); INSERT INTO psql_dry VALUES (1), (2);";
    setup!(t, "psql_dry_run", setup);
    let query = "select 1::int4 as alpha, now() as beta";
    let text = stdout_of(t.command("export", &["--dry-run", "-q", query, "-o", "x.parquet"]));
    for needle in ["alpha", "beta", "Int32", "COPY"] {
        assert!(text.contains(needle), "no {needle:?} in {text}");
    }
    let query = "select nextval('psql_seq') as n";
    assert_success(&t.export(&["--dry-run", "-q", query, "-o", "n.parquet"]));
    assert_eq!(t.psql("SELECT last_value FROM psql_seq"), "1", "not run");
    let text = stdout_of(t.command("export", &words("--dry-run -t psql_dry -o d.parquet")));
    assert!(text.contains("COPY") && text.contains("psql_dry"), "{text}");
    assert_eq!(t.psql("SELECT count(*) FROM psql_dry"), "2");
    t.assert_holds(&[]);
}

#[test]
fn psql_exit_statuses_tell_failures_apart() {
    let dir = tempdir();
    let mut cmd = pgarrow(["export", "--url", &unreachable(), "-q", "select 1 as a"]);
    cmd.args(["-o", "x.parquet"]).current_dir(dir.path());
    assert_fails(&run_within(cmd, FAILURE_DEADLINE), 2, &[]);
    let mut cmd = pgarrow(["export", "-q", "select 1 as a", "--frobnicate"]);
    cmd.current_dir(dir.path());
    assert_fails(&run(cmd), 2, &["--frobnicate"]);
    assert_dir_holds(dir.path(), &[]);
    setup!(t, "psql_exit_status", "");
    let out = t.export(&["--table", "psql_no_such_table", "-o", "x.parquet"]);
    assert_fails(&out, 1, &["psql_no_such_table"]);
    t.assert_holds(&[]);
}

#[test]
fn psql_sigterm_exits_143_and_sigint_130() {
    let Some((pg, db)) = slow_database("psql_signals", "0.001") else {
        return;
    };
    let t = Setup::on(pg, &db);
    let find = format!(
        "SELECT pid FROM pg_stat_activity WHERE datname = '{db}' \
         AND application_name = 'pgarrow' AND query LIKE 'COPY %' AND state = 'active'"
    );
    for (signal_name, code) in [("TERM", 143), ("INT", 130)] {
        let query = "SELECT slow(generate_series(1, 1000000000)) AS g";
        let child = spawn(t.command("export", &["-q", query, "-o", "out.parquet"]));
        // Interrupted while the server streams rows.
        let backend = wait_for_pid(t.pg, &find, Duration::from_secs(60));
        let (out, _) = interrupt(child, signal_name, Duration::from_secs(30));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{signal_name}: {err}");
        t.assert_holds(&[]);
        backend_gone_within(t.pg, backend, CANCEL_REACHES_BACKEND);
    }
}

#[test]
fn psql_completions_and_man_pages() {
    for shell in ["bash", "zsh", "fish"] {
        let text = stdout_of(pgarrow(["completions", shell]));
        assert!(text.contains("pgarrow"), "{shell}: {text}");
    }
    assert_fails(&run(pgarrow(["completions", "nosuch"])), 2, &["nosuch"]);
    let text = stdout_of(pgarrow(["man"]));
    assert!(text.contains(".TH"), "{text}");
    let dir = tempdir();
    assert_success(&run(pgarrow(["man", "--dir", path_str(dir.path())])));
    for page in ["pgarrow.1", "pgarrow-export.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).expect(page);
        assert!(text.contains(".TH"), "{page}: {text}");
    }
}

#[test]
fn psql_summary_says_row_or_rows() {
    setup!(t, "psql_summary", "");
    let (_, err) = export_to(&t, &["-q", "select 1 as a"], "one.parquet", 1);
    assert!(
        err.contains("exported 1 row ") && !err.contains("exported 1 rows"),
        "{err}"
    );
    assert!(err.contains("from the server"), "{err}");
    let query = "select 1 as a union all select 2";
    let (_, err) = export_to(&t, &["-q", query], "two.parquet", 2);
    assert!(err.contains("exported 2 rows"), "{err}");
    assert!(err.contains("from the server"), "{err}");
}

#[test]
fn psql_table_names_fold_case_unless_quoted() {
    let setup = "CREATE TABLE psql_Bars (id bigint); INSERT INTO psql_Bars VALUES (1), (2); \
                 CREATE TABLE \"psql_Quoted\" (id bigint); \
                 INSERT INTO \"psql_Quoted\" VALUES (1), (2), (3);";
    setup!(t, "psql_names", setup);
    export_to(&t, &["--table", "PSQL_BARS"], "bars.parquet", 2);
    export_to(&t, &["--table", "\"psql_Quoted\""], "quoted.parquet", 3);
    let out = t.export(&["--table", "psql_Quoted", "-o", "folded.parquet"]);
    let err = assert_fails(&out, 1, &[]);
    // The server's error, and how to name a table with capitals.
    assert!(err.contains("\"psql_quoted\" does not exist"), "{err}");
    assert!(err.contains("--table '\"psql_Quoted\"'"), "{err}");
    t.assert_holds(&["bars.parquet", "quoted.parquet"]);
}

const MANY: &str = "CREATE SCHEMA psql_many; CREATE SCHEMA psql_other; \
    CREATE TABLE psql_many.a (x int); INSERT INTO psql_many.a VALUES (1); \
    CREATE TABLE psql_many.b (x int); INSERT INTO psql_many.b VALUES (1), (2); \
    CREATE TABLE psql_many.c (x int); INSERT INTO psql_many.c SELECT generate_series(1, 3); \
    CREATE TABLE psql_other.a (x int); INSERT INTO psql_other.a VALUES (9);";

/// The entries of `dir/_manifest.json`, `(table, file, rows)` sorted, each file checked to
/// hold its rows; and the manifest's snapshot and WAL position checked to be strings.
fn manifest(dir: &Path) -> Vec<(String, String, u64)> {
    let text = std::fs::read_to_string(dir.join("_manifest.json")).expect("_manifest.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("the manifest is JSON");
    assert!(
        json["snapshot"].is_string() && json["wal_lsn"].is_string(),
        "{json}"
    );
    assert_eq!(json["pgarrow_manifest"], 2, "{json}");
    let files = json["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no files: {json}"));
    let mut entries: Vec<(String, String, u64)> = files
        .iter()
        .map(|e| {
            let (schema, name) = (&e["table"]["schema"], &e["table"]["name"]);
            let table = format!(
                "{}.{}",
                schema.as_str().expect("schema"),
                name.as_str().expect("name")
            );
            let file = e["path"].as_str().expect("path").to_owned();
            let rows = e["rows"].as_u64().expect("rows");
            assert_eq!(row_count(&read_parquet(&dir.join(&file))), rows, "{file}");
            (table, file, rows)
        })
        .collect();
    entries.sort();
    entries
}

/// Exports `args` into `t`'s directory `dir`: asserts that it holds one file per table of
/// `psql_many` named in `tables` (with their rows) and the manifest, nothing else.
fn assert_many(t: &Setup, args: &[&str], dir: &str, tables: &[(&str, u64)]) {
    assert_success(&t.export(&[args, &["--output-dir", dir]].concat()));
    let expected: Vec<(String, String, u64)> = tables
        .iter()
        .map(|&(n, rows)| {
            (
                format!("psql_many.{n}"),
                format!("psql_many.{n}.parquet"),
                rows,
            )
        })
        .collect();
    assert_eq!(manifest(&t.path(dir)), expected, "{args:?}");
    let mut files: Vec<&str> = expected.iter().map(|e| e.1.as_str()).collect();
    files.push("_manifest.json");
    assert_dir_holds(&t.path(dir), &files);
}

#[test]
fn psql_schema_exports_every_table_with_a_manifest() {
    setup!(t, "psql_many_schema", MANY);
    let tables = [("a", 1), ("b", 2), ("c", 3)];
    assert_many(&t, &["--schema", "psql_many"], "d", &tables);
}

#[test]
fn psql_table_patterns_select_tables() {
    let setup = format!("{MANY} CREATE TABLE psql_many.dd (x int);");
    setup!(t, "psql_many_patterns", &setup);
    let all = [("a", 1), ("b", 2), ("c", 3), ("dd", 0)];
    assert_many(&t, &["--table", "psql_many.*"], "star", &all);
    assert_many(&t, &["--table", "psql_many.?"], "one", &all[..3]);
    let two = words("--table psql_many.a --table psql_many.b");
    assert_many(&t, &two, "two", &all[..2]);
    // A pattern that names nothing is a usage error (status 2).
    let out = t.export(&["--table", "psql_many.zz*", "--output-dir", "none"]);
    assert_fails(&out, 2, &["psql_many.zz*"]);
    assert!(!t.path("none").join("_manifest.json").exists());
}

#[test]
fn psql_patterns_leave_out_system_catalogs_and_partitions() {
    let setup = "CREATE TABLE psql_p (k int) PARTITION BY RANGE (k); \
                 CREATE TABLE psql_p_1 PARTITION OF psql_p FOR VALUES FROM (0) TO (10) \
                 PARTITION BY RANGE (k); \
                 CREATE TABLE psql_p_1a PARTITION OF psql_p_1 FOR VALUES FROM (0) TO (5); \
                 CREATE TABLE psql_p_1b PARTITION OF psql_p_1 FOR VALUES FROM (5) TO (10); \
                 INSERT INTO psql_p SELECT g FROM generate_series(0, 9) g;";
    setup!(t, "psql_system", setup);
    let entry = |table: &str| {
        let file = format!("public.{table}.parquet");
        (format!("public.{table}"), file, 10)
    };
    // `*` follows the search path without pg_catalog; the partitions are in their table.
    assert_success(&t.export(&["--table", "*", "--output-dir", "all"]));
    assert_eq!(manifest(&t.path("all")), [entry("psql_p")]);
    // A partition that is itself partitioned holds its sub-partitions' rows.
    assert_success(&t.export(&["--table", "psql_p_1*", "--output-dir", "sub"]));
    assert_eq!(manifest(&t.path("sub")), [entry("psql_p_1")]);
}

#[test]
fn psql_several_tables_need_an_output_dir() {
    setup!(t, "psql_many_usage", MANY);
    for args in [
        "--schema psql_many",
        "--table psql_many.*",
        "--table psql_many.a --table psql_many.b",
    ] {
        let out = t.export(&[words(args), vec!["-o", "x.parquet"]].concat());
        assert_fails(&out, 2, &["--output-dir"]);
    }
    t.assert_holds(&[]);
}

/// Rows in `psql_bank.acct_a` at the start (all of them: `acct_b` starts empty).
const BANK_ROWS: u64 = 200_000;

const MOVE_ROWS: &str = "WITH m AS (DELETE FROM psql_bank.acct_a WHERE ctid IN \
    (SELECT ctid FROM psql_bank.acct_a LIMIT 100) RETURNING v) \
    INSERT INTO psql_bank.acct_b SELECT v FROM m";

#[test]
fn psql_tables_of_one_export_share_one_snapshot() {
    let setup = format!(
        "CREATE SCHEMA psql_bank; CREATE TABLE psql_bank.acct_a (v int); \
         CREATE TABLE psql_bank.acct_b (v int); \
         INSERT INTO psql_bank.acct_a SELECT 1 FROM generate_series(1, {BANK_ROWS});"
    );
    setup!(t, "psql_bank", &setup);
    let done = AtomicBool::new(false);
    let (out, moves) = std::thread::scope(|s| {
        // Moves rows from acct_a to acct_b, 100 per transaction, until the export ends.
        let writer = s.spawn(|| {
            let mut moves = 0u32;
            loop {
                t.psql(MOVE_ROWS);
                moves += 1;
                if done.load(Ordering::Relaxed) || moves >= 1000 {
                    break moves;
                }
            }
        });
        let out = t.export(&["--schema", "psql_bank", "--output-dir", "bank"]);
        done.store(true, Ordering::Relaxed);
        (out, writer.join().expect("the writer thread"))
    });
    assert_success(&out);
    let entries = manifest(&t.path("bank"));
    let tables: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(tables, ["psql_bank.acct_a", "psql_bank.acct_b"]);
    let total: u64 = entries.iter().map(|e| e.2).sum();
    // Both tables as of one instant: every move is wholly in or wholly out.
    assert_eq!(total, BANK_ROWS, "{entries:?}");
    // The writer did move rows (before, during or after the export).
    assert!(moves >= 1);
    let count = |table: &str| -> u64 {
        let n = t.psql(&format!("SELECT count(*) FROM psql_bank.{table}"));
        n.parse().expect("a count")
    };
    let moved = count("acct_b");
    assert!(moved >= 100, "{moved} rows moved");
    assert_eq!(count("acct_a") + moved, BANK_ROWS);
}
