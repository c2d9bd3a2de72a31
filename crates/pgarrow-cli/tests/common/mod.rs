//! Helpers for the end-to-end tests of the `pgarrow` binary.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Cursor, Read};
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Decimal128Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

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
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit code 1, got {}; stderr: {err}",
        out.status
    );
    assert!(
        out.stdout.is_empty(),
        "nothing should be written to stdout on error, got {} bytes",
        out.stdout.len()
    );
    assert!(
        err.starts_with("pgarrow: error: "),
        "stderr should start with `pgarrow: error: `: {err:?}"
    );
    assert_eq!(
        err.lines().count(),
        1,
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

/// All values of a Utf8 column, in order (nulls as `None`).
pub fn strings(batches: &[RecordBatch], column: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for b in batches {
        let col = b
            .column_by_name(column)
            .unwrap_or_else(|| panic!("no column {column}"));
        assert_eq!(col.data_type(), &DataType::Utf8, "{column}");
        let a = col.as_string::<i32>();
        out.extend((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i).to_owned())));
    }
    out
}

/// All values of an Int64 column, in order.
pub fn int64s(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for b in batches {
        let col = b
            .column_by_name(column)
            .unwrap_or_else(|| panic!("no column {column}"));
        assert_eq!(col.data_type(), &DataType::Int64, "{column}");
        assert_eq!(col.null_count(), 0, "{column}");
        out.extend(col.as_primitive::<Int64Type>().values().iter().copied());
    }
    out
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
    let mut orderkey: i128 = 0;
    let mut price: i128 = 0;
    let mut days: i64 = 0;
    let mut chars: u64 = 0;
    for b in batches {
        let names: Vec<&str> = b
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, pgarrow_testkit::fixtures::LINEITEM_COLUMNS);

        let c = b.column_by_name("l_orderkey").expect("l_orderkey");
        assert_eq!(c.data_type(), &DataType::Int64);
        assert_eq!(c.null_count(), 0);
        orderkey += c
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|&v| i128::from(v))
            .sum::<i128>();

        let c = b
            .column_by_name("l_extendedprice")
            .expect("l_extendedprice");
        assert_eq!(c.data_type(), &DataType::Decimal128(15, 2));
        assert_eq!(c.null_count(), 0);
        price += c
            .as_primitive::<Decimal128Type>()
            .values()
            .iter()
            .sum::<i128>();

        let c = b.column_by_name("l_shipdate").expect("l_shipdate");
        assert_eq!(c.data_type(), &DataType::Date32);
        assert_eq!(c.null_count(), 0);
        days += c
            .as_primitive::<Date32Type>()
            .values()
            .iter()
            .map(|&d| i64::from(d))
            .sum::<i64>();

        let c = b.column_by_name("l_comment").expect("l_comment");
        assert_eq!(c.data_type(), &DataType::Utf8);
        assert_eq!(c.null_count(), 0);
        let s = c.as_string::<i32>();
        chars += (0..s.len())
            .map(|i| s.value(i).chars().count() as u64)
            .sum::<u64>();
    }
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
