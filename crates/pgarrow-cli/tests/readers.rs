//! The reader matrix: a table of every type family, exported by the binary to Parquet and Arrow
//! IPC (with the default options and with the options meant for particular readers), then
//! opened column by column with pyarrow, pandas (default and Arrow-backed dtypes), polars and
//! DuckDB (`readers/read_all.py`, in the test venv, `target/venv`).
//!
//! The test pins down what the book's reader table says (`docs/src/types.md`, "What each
//! reader shows"): which reader opens which column, the logical types DuckDB reports, what
//! DuckDB reads back for ±infinity, and that each reader limit listed there is real (and has
//! the way around it that the book gives). A reader that starts or stops failing on a column
//! fails the test, so the table stays true.
//!
//! Fails when python3 lacks the readers, unless `PGARROW_ALLOW_SKIP=1` skips it (loudly).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::*;
use pgarrow_testkit::Cluster;
use serde_json::Value;

const TABLE: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE pair AS (a int, iv interval);
CREATE TABLE tm (id int, b bool, i2 int2, i4 int4, i8 int8, f4 real, f8 float8,
    n numeric(12,2), nw numeric(50,2), nu numeric, m money, t text, by bytea, u uuid, j json,
    jb jsonb, d date, tm time, ts timestamp, tz timestamptz, iv interval, e mood, ia int[],
    ia2 int[], ua uuid[], ta text[], comp pair, r int4range, tsr tstzrange, ip inet);
INSERT INTO tm VALUES
 (1, true, 1, 2, 3, 1.5, 2.5, 12.34, 123456789012345678901234567890123456789012.34, 1.5, 12.34,
  'héllo', '\x0102', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a":1}', '{"b":2}',
  '2024-02-29', '12:34:56.789', '2024-01-01 10:00', '2024-01-01 10:00+00',
  '1 mon 2 days 03:04:05.000006', 'happy', '{1,2}', '{{1,2},{3,4}}',
  '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{x,y}', ROW(1, '1 day'), '[1,5)',
  '[2020-01-01,infinity)', '10.0.0.1'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, false, -32768, -2147483648, -9223372036854775808, 'NaN', '-Infinity', -0.01, -1, 'NaN',
  -92233720368547758.08, '', '\x', '00000000-0000-0000-0000-000000000000', 'null', '[]',
  'infinity', '23:59:59.999999', '-infinity', 'infinity', '-178000000 years', 'sad', '{}',
  '{{5}}', '{}', '{NULL}', ROW(NULL, NULL), 'empty', '(,)', '::1');
"#;

/// The files: label, file name, extra export options.
const FILES: [(&str, &str, &[&str]); 4] = [
    ("parquet", "tm.parquet", &[]),
    ("arrow", "tm.arrow", &[]),
    (
        "parquet-alt",
        "tm-alt.parquet",
        &["--wide-numeric", "string"],
    ),
    (
        "arrow-alt",
        "tm-alt.arrow",
        &["--wide-numeric", "string", "--intervals", "struct"],
    ),
];

const READERS: [&str; 5] = ["pyarrow", "pandas", "pandas-arrow", "polars", "duckdb"];

/// What each reader refuses, as (reader, file label, column). Everything else must open.
///
/// * polars has no Decimal256 (`nw`), and it refuses a whole IPC file holding a MonthDayNano
///   interval anywhere: `--intervals struct` (arrow-alt) and `--wide-numeric string` fix both.
/// * DuckDB imports no Decimal256 through Arrow: `--wide-numeric string`.
/// * pandas' default conversion makes Python `date`/`datetime` objects, which cannot hold the
///   ±infinity extremes (`d`, and `tsr`'s infinite bound), and has no converter for a list of
///   `arrow.uuid` (`ua`): Arrow-backed dtypes (pandas-arrow) read all three.
fn expected_refusals() -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let mut add = |r: &str, f: &str, c: &str| {
        out.insert((r.to_owned(), f.to_owned(), c.to_owned()));
    };
    add("polars", "parquet", "nw");
    for c in COLUMNS {
        add("polars", "arrow", c);
    }
    add("duckdb", "arrow", "nw");
    for (f, _, _) in FILES {
        for c in ["d", "tsr", "ua"] {
            add("pandas", f, c);
        }
    }
    out
}

const COLUMNS: [&str; 30] = [
    "id", "b", "i2", "i4", "i8", "f4", "f8", "n", "nw", "nu", "m", "t", "by", "u", "j", "jb", "d",
    "tm", "ts", "tz", "iv", "e", "ia", "ia2", "ua", "ta", "comp", "r", "tsr", "ip",
];

fn readers_available() -> bool {
    let probe = pgarrow_testkit::python()
        .args(["-c", "import duckdb, pandas, polars, pyarrow"])
        .output();
    let ok = probe.as_ref().is_ok_and(|o| o.status.success());
    if !ok {
        pgarrow_testkit::missing(
            "the readers (duckdb, pandas, polars, pyarrow)",
            &format!(
                "{}: {probe:?}",
                pgarrow_testkit::python::how_to_get_python_parts()
            ),
        );
    }
    ok
}

struct Matrix {
    cells: BTreeMap<String, Value>,
}

impl Matrix {
    fn cell(&self, reader: &str, file: &str, column: &str) -> &Value {
        let key = format!("{reader}|{file}|{column}");
        self.cells
            .get(&key)
            .unwrap_or_else(|| panic!("no cell {key}"))
    }

    fn ty(&self, reader: &str, file: &str, column: &str) -> &str {
        let cell = self.cell(reader, file, column);
        cell["type"]
            .as_str()
            .unwrap_or_else(|| panic!("{reader} cannot read {file}.{column}: {cell}"))
    }

    fn values(&self, reader: &str, file: &str, column: &str) -> Vec<Option<String>> {
        let cell = self.cell(reader, file, column);
        let values = cell["values"]
            .as_array()
            .unwrap_or_else(|| panic!("{reader}: no values for {file}.{column}: {cell}"));
        values
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect()
    }
}

fn read_all(dir: &Path) -> Matrix {
    let files: serde_json::Map<String, Value> = FILES
        .iter()
        .map(|(label, name, _)| {
            (
                (*label).to_owned(),
                Value::String(path_str(&dir.join(name)).to_owned()),
            )
        })
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/read_all.py");
    let mut cmd = pgarrow_testkit::python();
    cmd.arg(&script).arg(Value::Object(files).to_string());
    // polars prints a Rust backtrace for the panics it turns into Python exceptions.
    cmd.env("RUST_BACKTRACE", "0");
    let out = run(cmd);
    assert!(out.status.success(), "read_all.py failed: {}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("read_all.py prints JSON");
    eprintln!("readers: {}", json["versions"]);
    let cells = json["cells"]
        .as_object()
        .expect("cells")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Matrix { cells }
}

#[test]
fn every_reader_opens_every_type_or_the_readme_says_why() {
    if Cluster::shared().is_none() || !readers_available() {
        return;
    }
    let t = Setup::new("cli_readers", TABLE).expect("the shared cluster");
    for (label, name, extra) in FILES {
        let target = t.path(name);
        let args = ["-t", "tm", "--quiet", "-o", path_str(&target)];
        assert_success(&t.export(&[&args[..], extra].concat()));
        assert!(target.exists(), "{label}");
    }
    let m = read_all(t.dir.path());

    // Who opens what: exactly the refusals the book lists.
    let mut refused = BTreeSet::new();
    for (file, _, _) in FILES {
        for c in COLUMNS {
            for r in READERS {
                if m.cell(r, file, c).get("error").is_some() {
                    refused.insert((r.to_owned(), file.to_owned(), c.to_owned()));
                }
            }
        }
    }
    let expected = expected_refusals();
    let unexpected: Vec<_> = refused.difference(&expected).collect();
    let fixed: Vec<_> = expected.difference(&refused).collect();
    let errors: Vec<String> = unexpected
        .iter()
        .map(|(r, f, c)| format!("{r} {f}.{c}: {}", m.cell(r, f, c)["error"]))
        .collect();
    assert!(
        unexpected.is_empty() && fixed.is_empty(),
        "the reader matrix changed (update the reader table of docs/src/types.md):\n  refused now: {errors:#?}\n  \
         no longer refused: {fixed:?}"
    );

    // DuckDB sees the logical types: UUID and JSON from Parquet as from IPC, money as a
    // decimal, intervals as Parquet's struct or IPC's INTERVAL.
    for file in ["parquet", "arrow", "parquet-alt", "arrow-alt"] {
        assert_eq!(m.ty("duckdb", file, "u"), "UUID", "{file}");
        assert_eq!(m.ty("duckdb", file, "ua"), "UUID[]", "{file}");
        assert_eq!(m.ty("duckdb", file, "j"), "JSON", "{file}");
        assert_eq!(m.ty("duckdb", file, "jb"), "JSON", "{file}");
        assert_eq!(m.ty("duckdb", file, "m"), "DECIMAL(19,2)", "{file}");
        assert_eq!(m.ty("duckdb", file, "ia2"), "INTEGER[][]", "{file}");
        // ±infinity, plain and as a range bound, come back as DuckDB's ±infinity.
        assert_eq!(
            m.values("duckdb", file, "d")[2].as_deref(),
            Some("infinity")
        );
        assert_eq!(
            m.values("duckdb", file, "ts")[2].as_deref(),
            Some("-infinity")
        );
        assert_eq!(
            m.values("duckdb", file, "tz")[2].as_deref(),
            Some("infinity")
        );
        let tsr = m.values("duckdb", file, "tsr")[0].clone().unwrap();
        assert!(tsr.contains("'upper': infinity"), "{file}: {tsr}");
        assert_eq!(
            m.values("duckdb", file, "u")[0].as_deref(),
            Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        );
        assert_eq!(
            m.values("duckdb", file, "m"),
            [
                Some("12.34".into()),
                None,
                Some("-92233720368547758.08".into())
            ]
        );
    }
    assert_eq!(
        m.ty("duckdb", "parquet", "iv"),
        r#"STRUCT("months" INTEGER, "days" INTEGER, "microseconds" BIGINT)"#
    );
    assert_eq!(m.ty("duckdb", "arrow", "iv"), "INTERVAL");
    assert_eq!(
        m.values("duckdb", "arrow", "iv")[0].as_deref(),
        Some("1 month 2 days 03:04:05.000006")
    );
    // Decimal256 in Parquet: DuckDB reads DOUBLE (rounded, silently); the alternative is exact.
    assert_eq!(m.ty("duckdb", "parquet", "nw"), "DOUBLE");
    assert_eq!(m.ty("duckdb", "parquet-alt", "nw"), "VARCHAR");
    assert_eq!(
        m.values("duckdb", "parquet-alt", "nw")[0].as_deref(),
        Some("123456789012345678901234567890123456789012.34")
    );

    // polars reads every column of the alternative files, exactly.
    assert_eq!(m.ty("polars", "arrow-alt", "nw"), "String");
    assert_eq!(
        m.ty("polars", "arrow-alt", "iv"),
        "Struct({'months': Int32, 'days': Int32, 'microseconds': Int64})"
    );
    assert_eq!(
        m.ty("polars", "parquet", "m"),
        "Decimal(precision=19, scale=2)"
    );

    // pandas: an enum's categories are its labels in pg_enum order from IPC (the dictionary
    // as written); Parquet rebuilds dictionaries in order of appearance (the order is in the
    // field's pgarrow.enum_labels).
    assert_eq!(
        m.ty("pandas", "arrow", "e"),
        r#"category["sad", "ok", "happy"]"#
    );
    assert!(m.ty("pandas", "parquet", "e").starts_with("category"));

    // pyarrow and pandas find the file's metadata in the schema, counts of conversions too.
    let meta = m.values("pyarrow", "parquet", "(schema metadata)");
    for key in ["pgarrow.version", "pgarrow.lossy_conversions"] {
        assert!(meta.contains(&Some(key.to_owned())), "{key} in {meta:?}");
    }

    // The matrix as the book's table shows it.
    let mut table = String::from("| column | file |");
    for r in READERS {
        table.push_str(&format!(" {r} |"));
    }
    for (file, _, _) in FILES {
        for c in COLUMNS {
            table.push_str(&format!("\n| {c} | {file} |"));
            for r in READERS {
                let cell = m.cell(r, file, c);
                match cell["type"].as_str() {
                    Some(t) => table.push_str(&format!(" {t} |")),
                    None => table.push_str(" refused |"),
                }
            }
        }
    }
    eprintln!("{table}");
}
