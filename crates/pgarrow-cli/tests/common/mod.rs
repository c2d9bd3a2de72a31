//! Helpers for the end-to-end tests of the `pgarrow` binary.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Cursor, Read};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Decimal128Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pgarrow_testkit::Cluster;

/// Connection-related environment variables that must not leak in from the host.
const CONNECTION_ENV: [&str; 11] = [
    "DATABASE_URL",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLMODE",
    "PGCONNECT_TIMEOUT",
    "PGOPTIONS",
    "PGAPPNAME",
];

/// How long one run of the binary may take before the test fails (and kills it).
pub const DEADLINE: Duration = Duration::from_secs(180);

/// A `pgarrow` command with no connection settings from the host environment and stdin null.
pub fn pgarrow<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgarrow"));
    for var in CONNECTION_ENV {
        cmd.env_remove(var);
    }
    cmd.args(args).stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion, capturing stdout and stderr. Fails the test (after killing the
/// process) if it has not finished within `deadline`: a hang is a failure, not a stuck test.
pub fn run_within(mut cmd: Command, deadline: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("cannot start the pgarrow binary");
    wait_within(child, deadline)
}

/// Waits for `child` (its piped output collected), killing it and failing the test if it
/// has not finished within `deadline`.
pub fn wait_within(child: Child, deadline: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(out) => out.expect("waiting for pgarrow"),
        Err(_) => {
            // The child is not reaped yet (the waiting thread still holds it): its pid is ours.
            let _ = signal(pid, "KILL");
            panic!("pgarrow (pid {pid}) did not finish within {deadline:?}");
        }
    }
}

/// Sends signal `name` (`INT`, `KILL`, ...) to the process `pid`, which must be a child of
/// this test that has not been reaped yet. Returns whether `kill` succeeded.
#[must_use]
pub fn signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd` with the default deadline.
pub fn run(cmd: Command) -> Output {
    run_within(cmd, DEADLINE)
}

/// Starts `cmd` with stdout and stderr piped, to be stopped with [`interrupt`].
pub fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().expect("cannot start the pgarrow binary")
}

/// Sends signal `name` to `child` and waits for it to exit, within `limit`: its output, and
/// how long after the signal it exited.
pub fn interrupt(child: Child, name: &str, limit: Duration) -> (Output, Duration) {
    let pid = child.id();
    let sent = Instant::now();
    assert!(signal(pid, name), "kill -{name} {pid}");
    let out = wait_within(child, limit);
    (out, sent.elapsed())
}

/// Asserts the documented shape of an interrupted run: exit status 130, one line on stderr,
/// nothing on stdout.
/// An export stopped by `signal` (`INT` or `TERM`): exit status 128 + its number, as shells
/// report it, and one line saying nothing was written.
pub fn assert_interrupted(out: &Output, signal: &str) {
    let err = stderr(out);
    let (code, name) = match signal {
        "TERM" => (143, "SIGTERM"),
        _ => (130, "Ctrl-C"),
    };
    assert_eq!(out.status.code(), Some(code), "{signal}: {err}");
    assert_eq!(
        err,
        format!("pgarrow: interrupted ({name}); no output was written\n"),
        "{signal}"
    );
    assert!(out.stdout.is_empty(), "{signal}");
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts success, printing stderr otherwise; returns stderr.
pub fn assert_success(out: &Output) -> String {
    let err = stderr(out);
    assert!(
        out.status.success(),
        "pgarrow failed ({}): {err}",
        out.status
    );
    err
}

/// Asserts the documented failure shape: exit code 1, nothing on stdout, and exactly one
/// `pgarrow: error: ...` line on stderr that contains every needle. Returns that line.
pub fn assert_error(out: &Output, needles: &[&str]) -> String {
    assert_error_status(out, 1, needles)
}

/// As [`assert_error`], for a connection that could not be made or a usage error: exit
/// status 2.
pub fn assert_connection_error(out: &Output, needles: &[&str]) -> String {
    assert_error_status(out, 2, needles)
}

/// As [`assert_error`], for a command line that asks for something impossible: exit status 2.
pub fn assert_usage_error(out: &Output, needles: &[&str]) -> String {
    assert_error_status(out, 2, needles)
}

/// The summary's start for `rows` rows: `exported 1 row`, `exported 2,000 rows`.
pub fn exported(rows: u64) -> String {
    let noun = if rows == 1 { "row" } else { "rows" };
    format!("exported {} {noun}", thousands(rows))
}

fn assert_error_status(out: &Output, code: i32, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit code {code}, got {}; stderr: {err}",
        out.status
    );
    assert!(
        out.stdout.is_empty(),
        "nothing should be written to stdout on error, got {} bytes",
        out.stdout.len()
    );
    // A value the parser itself refuses gets clap's message (usage, and the valid values).
    let clap = code == 2 && err.starts_with("error: invalid value ");
    assert!(
        err.starts_with("pgarrow: error: ") || clap,
        "stderr should start with `pgarrow: error: `: {err:?}"
    );
    assert!(
        clap || err.lines().count() == 1,
        "the error should be one line: {err:?}"
    );
    for needle in needles {
        assert!(
            err.contains(needle),
            "stderr should contain {needle:?}: {err:?}"
        );
    }
    err
}

/// Names of the entries of `dir`, sorted.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Asserts that `dir` holds exactly `expected` (no temporary or partial files).
pub fn assert_dir_holds(dir: &Path, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(
        dir_entries(dir),
        expected,
        "unexpected contents of {}",
        dir.display()
    );
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    drop(listener);
    port
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pgarrow-cli-test")
        .tempdir()
        .expect("tempdir")
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet metadata")
        .build()
        .expect("parquet reader")
        .collect::<Result<Vec<_>, _>>()
        .expect("parquet batches")
}

pub fn read_arrow_file(path: &Path) -> Vec<RecordBatch> {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    arrow_ipc::reader::FileReader::try_new(file, None)
        .expect("arrow file footer")
        .collect::<Result<Vec<_>, _>>()
        .expect("arrow file batches")
}

pub fn read_arrow_stream_bytes(bytes: Vec<u8>) -> Vec<RecordBatch> {
    arrow_ipc::reader::StreamReader::try_new(Cursor::new(bytes), None)
        .expect("arrow stream schema")
        .collect::<Result<Vec<_>, _>>()
        .expect("arrow stream batches")
}

pub fn read_arrow_stream(path: &Path) -> Vec<RecordBatch> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    read_arrow_stream_bytes(bytes)
}

/// Reads `path` back with the reader for `format` (`parquet`, `arrow`, `arrow-stream`).
pub fn read_back(format: &str, path: &Path) -> Vec<RecordBatch> {
    match format {
        "parquet" => read_parquet(path),
        "arrow" => read_arrow_file(path),
        "arrow-stream" => read_arrow_stream(path),
        other => panic!("no reader for {other}"),
    }
}

pub fn row_count(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

/// Column `name` of every batch, each checked to be of type `ty`.
pub fn columns<'a>(
    batches: &'a [RecordBatch],
    name: &'a str,
    ty: &'a DataType,
) -> impl Iterator<Item = &'a ArrayRef> + 'a {
    batches.iter().map(move |b| {
        let col = b
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"));
        assert_eq!(col.data_type(), ty, "{name}");
        col
    })
}

/// As [`columns`], each also checked to hold no NULL.
pub fn non_null_columns<'a>(
    batches: &'a [RecordBatch],
    name: &'a str,
    ty: &'a DataType,
) -> impl Iterator<Item = &'a ArrayRef> + 'a {
    columns(batches, name, ty).inspect(move |col| assert_eq!(col.null_count(), 0, "{name}"))
}

/// All values of a Utf8 column, in order (nulls as `None`).
pub fn strings(batches: &[RecordBatch], column: &str) -> Vec<Option<String>> {
    columns(batches, column, &DataType::Utf8)
        .flat_map(|col| {
            let a = col.as_string::<i32>();
            (0..a.len()).map(move |i| a.is_valid(i).then(|| a.value(i).to_owned()))
        })
        .collect()
}

/// All values of an Int64 column, in order.
pub fn int64s(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    non_null_columns(batches, column, &DataType::Int64)
        .flat_map(|col| col.as_primitive::<Int64Type>().values().iter().copied())
        .collect()
}

/// Aggregates of a lineitem export, comparable with the server's.
#[derive(Debug, PartialEq, Eq)]
pub struct LineitemStats {
    pub rows: u64,
    pub sum_orderkey: String,
    pub sum_extendedprice: String,
    pub sum_shipdate_days: String,
    pub sum_comment_chars: String,
}

/// The same aggregates computed by the server (`psql` output of one row).
pub fn server_lineitem_stats(pg: &pgarrow_testkit::Cluster, db: &str) -> LineitemStats {
    let line = pg
        .psql(
            db,
            "SELECT count(*), sum(l_orderkey), sum(l_extendedprice)::text, \
             sum(l_shipdate - DATE '1970-01-01'), sum(length(l_comment)) FROM lineitem",
        )
        .expect("server aggregates");
    let parts: Vec<&str> = line.trim().split('|').collect();
    assert_eq!(parts.len(), 5, "{line:?}");
    LineitemStats {
        rows: parts[0].parse().expect("count"),
        sum_orderkey: parts[1].to_owned(),
        sum_extendedprice: parts[2].to_owned(),
        sum_shipdate_days: parts[3].to_owned(),
        sum_comment_chars: parts[4].to_owned(),
    }
}

/// `v / 10^scale` written out exactly, as PostgreSQL prints a numeric.
pub fn format_scaled(v: i128, scale: u32) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let abs = v.unsigned_abs();
    if scale == 0 {
        return format!("{sign}{abs}");
    }
    let p = 10u128.pow(scale);
    format!(
        "{sign}{}.{:0width$}",
        abs / p,
        abs % p,
        width = scale as usize
    )
}

/// The aggregates of exported lineitem batches, checking the column types on the way.
pub fn lineitem_stats(batches: &[RecordBatch]) -> LineitemStats {
    for b in batches {
        let names: Vec<&str> = b
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, pgarrow_testkit::fixtures::LINEITEM_COLUMNS);
    }
    let orderkey: i128 = non_null_columns(batches, "l_orderkey", &DataType::Int64)
        .flat_map(|c| c.as_primitive::<Int64Type>().values().iter())
        .map(|&v| i128::from(v))
        .sum();
    let price: i128 = non_null_columns(batches, "l_extendedprice", &DataType::Decimal128(15, 2))
        .flat_map(|c| c.as_primitive::<Decimal128Type>().values().iter())
        .sum();
    let days: i64 = non_null_columns(batches, "l_shipdate", &DataType::Date32)
        .flat_map(|c| c.as_primitive::<Date32Type>().values().iter())
        .map(|&d| i64::from(d))
        .sum();
    let chars: u64 = non_null_columns(batches, "l_comment", &DataType::Utf8)
        .flat_map(|c| {
            let s = c.as_string::<i32>();
            (0..s.len()).map(move |i| s.value(i).chars().count() as u64)
        })
        .sum();
    LineitemStats {
        rows: row_count(batches),
        sum_orderkey: orderkey.to_string(),
        sum_extendedprice: format_scaled(price, 2),
        sum_shipdate_days: days.to_string(),
        sum_comment_chars: chars.to_string(),
    }
}

/// The number following `after ` in an error message (`... [after 65536 rows]`).
pub fn rows_after(message: &str) -> Option<u64> {
    let (_, rest) = message.split_once("after ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// How long a run that must fail may take.
pub const FAILURE_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `pgarrow export --url URL ARGS -o DIR/NAME` in a new directory `DIR` (also its working
/// directory): asserts the one-line failure of [`assert_error`] with every needle, within
/// [`FAILURE_DEADLINE`], and that nothing was written. Returns the error line.
pub fn export_error(url: &str, args: &[&str], name: &str, needles: &[&str]) -> String {
    export_failure(url, args, name, 1, needles)
}

/// As [`export_error`], for what the chosen output cannot hold or the command line
/// contradicts: a usage error, exit status 2.
pub fn export_usage_error(url: &str, args: &[&str], name: &str, needles: &[&str]) -> String {
    export_failure(url, args, name, 2, needles)
}

/// As [`export_error`], for a connection that cannot be made: exit status 2.
pub fn export_connection_error(url: &str, args: &[&str], name: &str, needles: &[&str]) -> String {
    export_failure(url, args, name, 2, needles)
}

fn export_failure(url: &str, args: &[&str], name: &str, code: i32, needles: &[&str]) -> String {
    let dir = tempdir();
    let target = dir.path().join(name);
    let mut cmd = pgarrow(["export", "--url", url]);
    cmd.args(args)
        .args(["-o", path_str(&target)])
        .current_dir(dir.path());
    let err = assert_error_status(&run_within(cmd, FAILURE_DEADLINE), code, needles);
    assert_dir_holds(dir.path(), &[]);
    err
}

/// One test's database on the shared cluster, and a temporary directory for its files (the
/// working directory of the runs it makes).
pub struct Setup {
    pub pg: &'static Cluster,
    pub db: String,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Setup {
    /// A fresh database named after `prefix` with `sql` run in it (unless empty), or `None`
    /// (the test returns; the cluster printed SKIPPED) without PostgreSQL.
    pub fn new(prefix: &str, sql: &str) -> Option<Setup> {
        let pg = Cluster::shared()?;
        let db = pg.create_database(prefix).expect("create database");
        let setup = Setup::on(pg, &db);
        if !sql.is_empty() {
            setup.psql(sql);
        }
        Some(setup)
    }

    /// The database `db`, which exists.
    pub fn on(pg: &'static Cluster, db: &str) -> Setup {
        Setup {
            pg,
            db: db.to_owned(),
            url: pg.url(db),
            dir: tempdir(),
        }
    }

    /// The trimmed output of `sql` run in the database (panics on failure).
    pub fn psql(&self, sql: &str) -> String {
        self.pg
            .psql(&self.db, sql)
            .unwrap_or_else(|e| panic!("psql failed: {e}\nSQL: {sql}"))
            .trim()
            .to_owned()
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `pgarrow COMMAND --url URL ARGS`, to run in the directory.
    pub fn command(&self, command: &str, args: &[&str]) -> Command {
        let mut cmd = pgarrow([command, "--url", &self.url]);
        cmd.args(args).current_dir(self.dir.path());
        cmd
    }

    /// `pgarrow export ARGS` with the environment `env` (and no `--url`), run to its end.
    pub fn export_env(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        let mut cmd = pgarrow(["export"]);
        cmd.args(args).current_dir(self.dir.path());
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        run(cmd)
    }

    /// `pgarrow export --url URL ARGS`, run to its end.
    pub fn export(&self, args: &[&str]) -> Output {
        run(self.command("export", args))
    }

    /// `pgarrow schema --url URL ARGS`: asserts success and returns stdout and stderr.
    pub fn schema(&self, args: &[&str]) -> (String, String) {
        let out = run(self.command("schema", args));
        let err = assert_success(&out);
        (stdout(&out), err)
    }

    /// Exports with `args` (the source, and options) into the file `name` (its format from
    /// the extension): asserts success, `exported ROWS row(s)` in the summary and `rows` rows in
    /// the file. Returns the batches read back, and stderr.
    pub fn export_rows(&self, args: &[&str], name: &str, rows: u64) -> (Vec<RecordBatch>, String) {
        let target = self.path(name);
        let out = self.export(&[args, &["-o", path_str(&target)]].concat());
        let err = assert_success(&out);
        let summary = exported(rows);
        assert!(err.contains(&summary), "{args:?}: {summary:?} in {err}");
        let batches = read_file(&target);
        assert_eq!(row_count(&batches), rows, "{args:?}: rows in {name}");
        (batches, err)
    }

    /// Asserts that the directory holds exactly `names`.
    pub fn assert_holds(&self, names: &[&str]) {
        assert_dir_holds(self.dir.path(), names);
    }
}

/// `n` with `,` between groups of three digits, as the summary line prints counts.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Reads a file written by an export back, with the reader its extension names (`.parquet`,
/// `.arrow`, `.arrows`).
pub fn read_file(path: &Path) -> Vec<RecordBatch> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => read_parquet(path),
        Some("arrow") => read_arrow_file(path),
        Some("arrows") => read_arrow_stream(path),
        other => panic!("no reader for {other:?} files"),
    }
}
