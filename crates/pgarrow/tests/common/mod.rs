//! The one database harness of this crate's integration tests (`types.rs`, `nested.rs`): a
//! database per test on the shared cluster, exports collected into batches (with their loss
//! report), the server's own rendering of values read back through psql, and our exports
//! walked value by value.
//!
//! The principle: every expected value comes from PostgreSQL's own rendering of the same stored
//! value (through psql), never from constants copied from pgarrow's output, so that a decoder bug
//! cannot be mirrored in the expectation.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, IntervalMonthDayNanoType, Time64MicrosecondType, TimestampMicrosecondType,
    UInt32Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, SchemaRef, TimeUnit};
use pgarrow::policy::{LossKind, LossReport, Policies};
use pgarrow::{Client, DecodeOptions, ExportOptions, Source};
use pgarrow_testkit::Cluster;

/// How psql prints NULL in [`Db::query`].
const NULL_MARK: &str = "<<NULL>>";

/// A fresh database on the shared cluster.
#[derive(Debug)]
pub struct Db {
    pub cluster: &'static Cluster,
    pub name: String,
}

impl Db {
    /// A new database, or `None` (the test should return; the cluster printed SKIPPED) when
    /// PostgreSQL is not installed.
    pub fn new(prefix: &str) -> Option<Db> {
        let cluster = Cluster::shared()?;
        let name = cluster
            .create_database(prefix)
            .unwrap_or_else(|e| panic!("creating a database for {prefix}: {e}"));
        Some(Db { cluster, name })
    }

    /// A new database with `script` run in it, or `None` as [`Db::new`].
    pub fn with(prefix: &str, script: &str) -> Option<Db> {
        let db = Db::new(prefix)?;
        db.psql(script);
        Some(db)
    }

    /// A database that already exists (created by the test itself).
    pub fn existing(cluster: &'static Cluster, name: &str) -> Db {
        Db {
            cluster,
            name: name.to_owned(),
        }
    }

    /// The server's `server_version_num`.
    pub fn version(&self) -> u32 {
        self.cluster.server_version_num()
    }

    /// Runs a script with psql and returns its stdout (panics on failure).
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql).unwrap_or_else(|e| {
            let shown: String = sql.chars().take(300).collect();
            panic!("psql failed in {}: {e}\nSQL: {shown}", self.name)
        })
    }

    /// Runs a script, returning psql's failure.
    pub fn try_psql(&self, sql: &str) -> Result<String, pgarrow_testkit::Error> {
        self.cluster.psql(&self.name, sql)
    }

    /// The output lines of a script.
    pub fn lines(&self, sql: &str) -> Vec<String> {
        self.psql(sql).lines().map(str::to_owned).collect()
    }

    /// The single value a script prints.
    pub fn scalar(&self, sql: &str) -> String {
        let out = self.psql(sql);
        let out = out.strip_suffix('\n').unwrap_or(&out);
        assert!(
            !out.contains('\n'),
            "expected one line from {sql:?}, got {out:?}"
        );
        out.to_owned()
    }

    /// The rows of one query as the server renders them (`None` for NULL). Values may hold
    /// `|` and newlines: fields and records are separated by control characters.
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let out = self.psql(&format!(
            "\\pset fieldsep '\\037'\n\\pset recordsep '\\036'\n\\pset null '{NULL_MARK}'\n{sql};\n"
        ));
        let out = out.strip_suffix('\n').unwrap_or(&out);
        if out.is_empty() {
            return Vec::new();
        }
        out.split('\u{1e}')
            .map(|row| {
                row.split('\u{1f}')
                    .map(|f| (f != NULL_MARK).then(|| f.to_owned()))
                    .collect()
            })
            .collect()
    }

    /// The one value of a one-row query, `None` for NULL.
    pub fn value(&self, sql: &str) -> Option<String> {
        let rows = self.query(sql);
        assert_eq!(rows.len(), 1, "{sql}: expected one row, got {rows:?}");
        rows[0][0].clone()
    }

    /// Rows of `(id, values...)` with the id parsed, in id order (ties in server order).
    pub fn by_id(&self, sql: &str) -> Vec<(i32, Vec<Option<String>>)> {
        let mut rows: Vec<(i32, Vec<Option<String>>)> = self
            .query(sql)
            .into_iter()
            .map(|mut r| {
                let id = r
                    .remove(0)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("{sql}: first column must be a non-NULL int id"));
                (id, r)
            })
            .collect();
        rows.sort_by_key(|(id, _)| *id);
        rows
    }

    /// Creates `CREATE TABLE <table> (id int, v <ty>)` holding `values` (SQL expressions, `NULL`
    /// allowed) with ids 1, 2, ... in order.
    pub fn table(&self, table: &str, ty: &str, values: &[&str]) {
        let rows: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("({}, {v})", i + 1))
            .collect();
        self.psql(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, v {ty});\n\
             INSERT INTO {table} (id, v) VALUES {};",
            rows.join(",\n")
        ));
    }

    pub fn url(&self) -> String {
        self.cluster.url(&self.name)
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.url())
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.name))
    }

    /// Exports `sql` with `options`, collecting every batch and the loss report.
    pub async fn try_export(
        &self,
        sql: &str,
        options: &ExportOptions,
    ) -> Result<Exported, pgarrow::Error> {
        let mut client = self.client().await;
        let mut export = client.export(&Source::query(sql), options).await?;
        let schema = export.schema();
        let mut batches = Vec::new();
        while let Some(batch) = export.next_batch().await? {
            assert_eq!(
                batch.schema(),
                schema,
                "batch schema differs from export schema"
            );
            batches.push(batch);
        }
        let losses = export.losses();
        Ok(Exported {
            schema,
            batches,
            losses,
        })
    }

    /// Exports `sql` with default options.
    pub async fn export(&self, sql: &str) -> Exported {
        self.export_with(sql, &ExportOptions::default()).await
    }

    /// Exports `sql` with `options`, panicking on failure.
    pub async fn export_with(&self, sql: &str, options: &ExportOptions) -> Exported {
        self.try_export(sql, options)
            .await
            .unwrap_or_else(|e| panic!("exporting {sql:?}: {e}"))
    }

    /// Exports `sql` under `policies`, panicking on failure.
    pub async fn export_under(&self, sql: &str, policies: Policies) -> Exported {
        self.export_with(sql, &under(policies)).await
    }

    /// Exports `sql` under `policies` in batches of `rows`, which must make several batches.
    pub async fn export_batched(&self, sql: &str, policies: Policies, rows: usize) -> Exported {
        let mut options = under(policies);
        options.decode.batch_rows = rows;
        let out = self.export_with(sql, &options).await;
        assert!(out.batches.len() > 1, "{sql}: expected several batches");
        out
    }

    /// Exports `sql` under the default policies whole, and in batches of `rows` (which must
    /// make several batches).
    pub async fn export_both(&self, sql: &str, rows: usize) -> [Exported; 2] {
        let one = self.export(sql).await;
        let batched = self.export_batched(sql, Policies::default(), rows).await;
        [one, batched]
    }

    /// Exports `sql` under `policies` expecting a decode error about one value.
    pub async fn export_value_error(&self, sql: &str, policies: Policies) -> ValueError {
        match self.try_export(sql, &under(policies)).await {
            Ok(out) => panic!(
                "export of {sql:?} succeeded ({} rows, losses {}) but should fail",
                out.num_rows(),
                out.losses
            ),
            Err(e) => value_error(&e),
        }
    }

    /// Exports `sql`, expecting the export to start and then fail while reading batches.
    pub async fn export_err(&self, sql: &str, options: &ExportOptions) -> pgarrow::Error {
        let mut client = self.client().await;
        let mut export = client
            .export(&Source::query(sql), options)
            .await
            .unwrap_or_else(|e| panic!("starting the export of {sql:?}: {e}"));
        loop {
            match export.next_batch().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("exporting {sql:?} succeeded; expected an error"),
                Err(e) => return e,
            }
        }
    }

    /// Plans `sql` under `policies`.
    pub async fn plan(&self, sql: &str, policies: &Policies) -> pgarrow::ExportPlan {
        self.client()
            .await
            .plan_with(&Source::query(sql), policies)
            .await
            .unwrap_or_else(|e| panic!("plan of {sql:?} failed: {e}"))
    }

    /// The server's rendering of `expr` for every row of `table`, by `id`: runs
    /// `SELECT id, (expr)::text FROM table ORDER BY id` (with `extra_float_digits = 3`) and
    /// transports each value hex-encoded as UTF-8, so that any character survives psql.
    pub fn reference(&self, table: &str, expr: &str) -> Vec<(i64, Option<String>)> {
        let sql = format!(
            "SET extra_float_digits = 3;\n\
             SELECT id::text || ':' || CASE WHEN r IS NULL THEN 'N' \
             ELSE 'V' || encode(convert_to(r, 'UTF8'), 'hex') END \
             FROM (SELECT id, ({expr})::text AS r FROM {table}) AS s ORDER BY id;"
        );
        self.lines(&sql)
            .iter()
            .map(|line| {
                let (id, rest) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad reference line {line:?}"));
                let id: i64 = id.parse().expect("reference id");
                let value = match rest.strip_prefix('V') {
                    Some(hex) => {
                        Some(String::from_utf8(unhex(hex)).expect("reference value is valid UTF-8"))
                    }
                    None => {
                        assert_eq!(rest, "N", "bad reference line {line:?}");
                        None
                    }
                };
                (id, value)
            })
            .collect()
    }
}

/// Default options but for `policies`.
pub fn under(policies: Policies) -> ExportOptions {
    ExportOptions {
        policies,
        ..ExportOptions::default()
    }
}

/// Every batch of one export (or one decoded stream), and its loss report.
#[derive(Debug)]
pub struct Exported {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub losses: LossReport,
}

impl Exported {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Column `col` of every row, through `f` (called for non-NULL values only).
    pub fn column<T>(&self, col: usize, f: impl Fn(&dyn Array, usize) -> T) -> Vec<Option<T>> {
        let mut out = Vec::with_capacity(self.num_rows());
        for batch in &self.batches {
            let array = batch.column(col).as_ref();
            for i in 0..array.len() {
                out.push(array.is_valid(i).then(|| f(array, i)));
            }
        }
        out
    }

    /// Column `col` of every row in the canonical text of [`render`].
    pub fn rendered(&self, col: usize) -> Vec<Option<String>> {
        self.column(col, render)
    }

    /// The `id` column (column 0, int4), which must have no NULLs.
    pub fn ids(&self) -> Vec<i64> {
        self.column(0, |a, i| i64::from(a.as_primitive::<Int32Type>().value(i)))
            .into_iter()
            .map(|v| v.expect("id is never NULL"))
            .collect()
    }

    /// (id, rendered value of `col`) for every row.
    pub fn by_id(&self, col: usize) -> Vec<(i64, Option<String>)> {
        self.ids().into_iter().zip(self.rendered(col)).collect()
    }

    /// Field metadata value.
    pub fn meta(&self, col: usize, key: &str) -> Option<String> {
        self.schema.field(col).metadata().get(key).cloned()
    }

    pub fn field(&self, name: &str) -> &Field {
        self.schema
            .field_with_name(name)
            .unwrap_or_else(|_| panic!("no column {name} in {:?}", self.schema))
    }

    pub fn data_type(&self, name: &str) -> &DataType {
        self.field(name).data_type()
    }

    /// Field metadata value of column `name`.
    pub fn field_meta(&self, name: &str, key: &str) -> Option<&str> {
        self.field(name).metadata().get(key).map(String::as_str)
    }

    /// The column names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect()
    }

    /// (id, [`render_json`] of `col`) for every row.
    pub fn json_by_id(&self, col: usize) -> Vec<(i64, Option<String>)> {
        self.ids()
            .into_iter()
            .zip(self.column(col, render_json))
            .collect()
    }

    /// `(id, one-row slice of column `name`)` for every row, ids from the Int32 column `id`.
    pub fn rows(&self, name: &str) -> Vec<(i32, ArrayRef)> {
        let mut out = Vec::new();
        for b in &self.batches {
            let ids = b
                .column_by_name("id")
                .expect("export has an id column")
                .as_primitive::<Int32Type>();
            let col = b
                .column_by_name(name)
                .unwrap_or_else(|| panic!("no column {name}"));
            for i in 0..b.num_rows() {
                out.push((ids.value(i), col.slice(i, 1)));
            }
        }
        out
    }

    /// `(id, leaf value rendered)` of a scalar column.
    pub fn cells(&self, name: &str) -> Vec<(i32, Option<String>)> {
        self.rows(name)
            .into_iter()
            .map(|(id, a)| (id, leaf(&a, 0)))
            .collect()
    }

    /// Losses of `kind` in column `name`.
    pub fn loss(&self, name: &str, kind: LossKind) -> u64 {
        self.losses
            .columns
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, l)| l.get(kind))
            .sum()
    }
}

/// A decode error about one value: where, and what the user sees.
#[derive(Debug)]
pub struct ValueError {
    /// 1-based row.
    pub row: u64,
    /// 0-based column.
    pub column: usize,
    /// Column name.
    pub name: String,
    /// The whole message as displayed.
    pub display: String,
}

impl ValueError {
    /// Asserts that the error is about row `row` (1-based) of column `column` (0-based) named
    /// `name`.
    #[track_caller]
    pub fn assert_at(&self, row: u64, column: usize, name: &str) {
        assert_eq!(
            (self.row, self.column, self.name.as_str()),
            (row, column, name),
            "{}",
            self.display
        );
    }

    /// Asserts that the message holds `needle`.
    #[track_caller]
    pub fn assert_says(&self, needle: &str) {
        assert!(
            self.display.contains(needle),
            "{needle:?} in: {}",
            self.display
        );
    }
}

/// The row/column of a decode error about a value; panics on any other error.
pub fn value_error(e: &pgarrow::Error) -> ValueError {
    let display = e.to_string();
    let pgarrow::ErrorKind::Decode(d) = e.kind() else {
        panic!("expected a decode error, got {display}");
    };
    ValueError {
        display,
        ..decode_value_error(d)
    }
}

/// The row/column of a decoder error about a value; panics on any other error.
pub fn decode_value_error(d: &pgarrow_decode::Error) -> ValueError {
    let display = d.to_string();
    match d.kind() {
        pgarrow_decode::ErrorKind::Value {
            row, column, name, ..
        } => ValueError {
            row: *row,
            column: *column,
            name: name.clone(),
            display,
        },
        _ => panic!("expected an error about a value, got {display}"),
    }
}

/// Decodes a whole binary COPY stream (`bytes`) with `plans` and `policies` in batches of
/// `batch_rows`, as [`Db::try_export`] would decode it from the connection.
pub fn decode_copy(
    bytes: &[u8],
    plans: Vec<pgarrow::ColumnPlan>,
    policies: Policies,
    batch_rows: usize,
) -> Result<Exported, pgarrow_decode::Error> {
    let options = DecodeOptions {
        batch_rows,
        ..DecodeOptions::default()
    };
    let mut decoder = pgarrow_decode::CopyDecoder::with_policies(plans, options, policies)?;
    let mut batches = Vec::new();
    let mut input = bytes;
    while !input.is_empty() {
        let used = decoder.decode(input)?;
        input = &input[used..];
        if decoder.has_batch()
            && let Some(b) = decoder.flush()?
        {
            batches.push(b);
        }
    }
    if let Some(b) = decoder.finish()? {
        batches.push(b);
    }
    Ok(Exported {
        schema: decoder.schema(),
        batches,
        losses: decoder.losses(),
    })
}

/// Asserts that our (id, value) pairs equal the server's, row by row.
#[track_caller]
pub fn assert_rows_eq(
    what: &str,
    ours: &[(i64, Option<String>)],
    theirs: &[(i64, Option<String>)],
) {
    assert_eq!(
        ours.len(),
        theirs.len(),
        "{what}: {} rows exported, the server has {}",
        ours.len(),
        theirs.len()
    );
    for (o, t) in ours.iter().zip(theirs) {
        assert_eq!(o.0, t.0, "{what}: row order differs");
        assert!(
            o.1 == t.1,
            "{what}: id {} differs\n  ours:   {}\n  server: {}",
            o.0,
            shorten(o.1.as_deref()),
            shorten(t.1.as_deref())
        );
    }
}

fn shorten(v: Option<&str>) -> String {
    match v {
        None => "NULL".to_owned(),
        Some(s) if s.chars().count() > 200 => {
            let head: String = s.chars().take(100).collect();
            let tail: String = s.chars().skip(s.chars().count() - 100).collect();
            format!("{head:?}...{tail:?} ({} bytes)", s.len())
        }
        Some(s) => format!("{s:?}"),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(s, "{b:02x}").expect("writing to a String");
    }
    s
}

pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// `digits` (an integer's decimal text, maybe with a leading '-') divided by 10^scale, rendered
/// like PostgreSQL's `numeric_out` renders a value with exactly `scale` fractional digits.
pub fn scaled_decimal(digits: &str, scale: i8) -> String {
    let (neg, abs) = match digits.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, digits),
    };
    let sign = if neg { "-" } else { "" };
    if scale <= 0 {
        let zeros = "0".repeat(usize::from(scale.unsigned_abs()));
        if abs == "0" {
            return "0".to_owned();
        }
        return format!("{sign}{abs}{zeros}");
    }
    let scale = scale as usize;
    let padded = format!("{abs:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// Canonical text of a float32 for comparisons: its bit pattern, or `NaN`.
pub fn f32_key(v: f32) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else {
        format!("f32:{:08x}", v.to_bits())
    }
}

/// Canonical text of a float64 for comparisons: its bit pattern, or `NaN`.
pub fn f64_key(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else {
        format!("f64:{:016x}", v.to_bits())
    }
}

/// Parses float text as PostgreSQL's `float8out` prints it.
pub fn parse_pg_f64(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        _ => s
            .parse()
            .unwrap_or_else(|e| panic!("server float {s:?}: {e}")),
    }
}

/// Parses float text as PostgreSQL's `float4out` prints it.
pub fn parse_pg_f32(s: &str) -> f32 {
    match s {
        "NaN" => f32::NAN,
        "Infinity" => f32::INFINITY,
        "-Infinity" => f32::NEG_INFINITY,
        _ => s
            .parse()
            .unwrap_or_else(|e| panic!("server float {s:?}: {e}")),
    }
}

/// `8-4-4-4-12` lowercase text of a UUID's 16 bytes.
pub fn uuid_text(b: &[u8]) -> String {
    assert_eq!(b.len(), 16);
    let h = hex(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// One value in a canonical text form that a server expression can also produce:
/// - integers: decimal (`v::text`);
/// - floats: [`f32_key`] / [`f64_key`] (the reference side parses `v::text`);
/// - decimals: `numeric_out` text with exactly `scale` fractional digits (`v::text`);
/// - Utf8: the string itself; Binary: lowercase hex (`encode(v, 'hex')`);
/// - FixedSizeBinary(16): UUID text (`v::text`); Boolean: `true`/`false` (`v::text`);
/// - Date32: days since 1970-01-01 (`v - DATE '1970-01-01'`);
/// - Time64(us), Timestamp(us): microseconds since midnight / since the Unix epoch;
/// - Interval(MonthDayNano): `months|days|microseconds` (nanoseconds must be whole us).
pub fn render(a: &dyn Array, i: usize) -> String {
    match a.data_type() {
        DataType::Boolean => a.as_boolean().value(i).to_string(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).to_string(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::UInt32 => a.as_primitive::<UInt32Type>().value(i).to_string(),
        DataType::Float32 => f32_key(a.as_primitive::<Float32Type>().value(i)),
        DataType::Float64 => f64_key(a.as_primitive::<Float64Type>().value(i)),
        DataType::Decimal128(_, s) => {
            scaled_decimal(&a.as_primitive::<Decimal128Type>().value(i).to_string(), *s)
        }
        DataType::Decimal256(_, s) => {
            scaled_decimal(&a.as_primitive::<Decimal256Type>().value(i).to_string(), *s)
        }
        DataType::Utf8 => a.as_string::<i32>().value(i).to_owned(),
        DataType::Binary => hex(a.as_binary::<i32>().value(i)),
        DataType::FixedSizeBinary(16) => uuid_text(a.as_fixed_size_binary().value(i)),
        DataType::Date32 => a.as_primitive::<Date32Type>().value(i).to_string(),
        DataType::Time64(TimeUnit::Microsecond) => a
            .as_primitive::<Time64MicrosecondType>()
            .value(i)
            .to_string(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => a
            .as_primitive::<TimestampMicrosecondType>()
            .value(i)
            .to_string(),
        DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano) => {
            let v = a.as_primitive::<IntervalMonthDayNanoType>().value(i);
            assert_eq!(
                v.nanoseconds % 1000,
                0,
                "interval nanoseconds {} are not whole microseconds",
                v.nanoseconds
            );
            format!("{}|{}|{}", v.months, v.days, v.nanoseconds / 1000)
        }
        other => panic!("no canonical rendering for {other}"),
    }
}

/// Server expression: microseconds since the Unix epoch of the `timestamp` expression `v`,
/// exact over the whole range (`extract(epoch ...)` rounds near the top of the range).
pub fn ts_micros_sql(v: &str) -> String {
    format!(
        "(({v})::date - DATE '1970-01-01')::int8 * 86400000000 \
         + (extract(epoch FROM ({v})::time) * 1000000)::int8"
    )
}

/// Server expression: `months|days|microseconds` of the interval expression `v`.
pub fn interval_parts_sql(v: &str) -> String {
    format!(
        "CASE WHEN {v} IS NULL THEN NULL ELSE \
         concat_ws('|', extract(year FROM {v}) * 12 + extract(month FROM {v}), \
         extract(day FROM {v}), \
         extract(hour FROM {v}) * 3600000000 + extract(minute FROM {v}) * 60000000 \
         + extract(microseconds FROM {v})) END"
    )
}

/// Options that cut batches every `rows` rows.
pub fn batch_rows(rows: usize) -> ExportOptions {
    ExportOptions {
        decode: DecodeOptions {
            batch_rows: rows,
            batch_bytes: pgarrow::DEFAULT_BATCH_BYTES,
        },
        ..ExportOptions::default()
    }
}

/// JSON text of a string, escaped like PostgreSQL's `escape_json`.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                write!(out, "\\u{:04x}", u32::from(c)).expect("writing to a String");
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Nested values as compact JSON, the way `array_to_json` / `row_to_json` print them: lists as
/// arrays, structs as objects with their field names, strings and enum labels quoted, integers
/// and booleans bare, NULL as `null`.
pub fn render_json(a: &dyn Array, i: usize) -> String {
    if a.is_null(i) {
        return "null".to_owned();
    }
    match a.data_type() {
        DataType::List(_) => {
            let items = a.as_list::<i32>().value(i);
            let parts: Vec<String> = (0..items.len())
                .map(|j| render_json(items.as_ref(), j))
                .collect();
            format!("[{}]", parts.join(","))
        }
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let parts: Vec<String> = fields
                .iter()
                .zip(s.columns())
                .map(|(f, c)| format!("{}:{}", json_string(f.name()), render_json(c.as_ref(), i)))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        DataType::Dictionary(_, _) => {
            let d = a.as_dictionary::<Int16Type>();
            let key = usize::try_from(d.keys().value(i)).expect("non-negative key");
            render_json(d.values().as_ref(), key)
        }
        DataType::Utf8 => json_string(a.as_string::<i32>().value(i)),
        DataType::Boolean
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Decimal128(..) => render(a, i),
        other => panic!("no JSON rendering for {other}"),
    }
}

/// SQL for `expr` as its type's output function prints it, as psql shows it (NULL stays NULL;
/// the test is on the text, as a composite of NULLs `IS NULL`):
/// `format('%s')` calls the output function, which a cast to text does not always do
/// (`'1.2.3.4'::inet::text` is `1.2.3.4/32`, its output `1.2.3.4`).
pub fn output_of(expr: &str) -> String {
    format!("CASE WHEN ({expr})::text IS NOT NULL THEN format('%s', {expr}) END")
}

/// Renders a scalar Arrow value the way the server queries of `nested.rs` render it: bool as
/// t/f, floats as Rust prints them (compare floats with [`f64_bits`]), decimals with their
/// scale, enum dictionary values as their label, and everything else as [`render`] does
/// (integers and text as themselves, binary as lower-case hex, Date32 as days since 1970,
/// Time64/Timestamp as their microseconds).
pub fn leaf(a: &dyn Array, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Boolean => if a.as_boolean().value(i) { "t" } else { "f" }.to_owned(),
        DataType::Float32 => a.as_primitive::<Float32Type>().value(i).to_string(),
        DataType::Float64 => a.as_primitive::<Float64Type>().value(i).to_string(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(i).to_owned(),
        DataType::Utf8View => a.as_string_view().value(i).to_owned(),
        DataType::Decimal128(..) => a.as_primitive::<Decimal128Type>().value_as_string(i),
        DataType::Decimal256(..) => a.as_primitive::<Decimal256Type>().value_as_string(i),
        DataType::Dictionary(k, v) if **k == DataType::Int16 && **v == DataType::Utf8 => {
            let d = a.as_dictionary::<Int16Type>();
            let key = usize::try_from(d.keys().value(i)).expect("non-negative dictionary key");
            d.values().as_string::<i32>().value(key).to_owned()
        }
        _ => render(a, i),
    })
}

/// The bits of a float the server printed (`NaN`, `Infinity`, shortest round-trip digits).
pub fn f64_bits(s: &str) -> u64 {
    parse_pg_f64(s).to_bits()
}

/// The element array of a List value at `i`, `None` when the list is NULL.
pub fn list_at(a: &dyn Array, i: usize) -> Option<ArrayRef> {
    let l = a.as_list::<i32>();
    (!l.is_null(i)).then(|| l.value(i))
}

/// Every leaf of a `depth`-deep List value at `i`, with its 0-based path, in order. Inner lists
/// are never NULL (a PostgreSQL array is rectangular).
pub fn list_leaves(a: &dyn Array, i: usize, depth: usize) -> Vec<(Vec<i64>, Option<String>)> {
    fn walk(
        a: &dyn Array,
        i: usize,
        depth: usize,
        path: &mut Vec<i64>,
        out: &mut Vec<(Vec<i64>, Option<String>)>,
    ) {
        if depth == 0 {
            out.push((path.clone(), leaf(a, i)));
            return;
        }
        let l = a.as_list::<i32>();
        assert!(!l.is_null(i), "inner list at {path:?} is NULL");
        let v = l.value(i);
        for k in 0..v.len() {
            path.push(k as i64);
            walk(&v, k, depth - 1, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    if !a.is_null(i) {
        walk(a, i, depth, &mut Vec::new(), &mut out);
    }
    out
}

/// A child of a Struct array by name.
pub fn child<'a>(a: &'a dyn Array, name: &str) -> &'a ArrayRef {
    a.as_struct()
        .column_by_name(name)
        .unwrap_or_else(|| panic!("struct has no field {name}: {:?}", a.data_type()))
}

/// The names of a Struct type's fields.
pub fn struct_names(t: &DataType) -> Vec<String> {
    match t {
        DataType::Struct(f) => f.iter().map(|f| f.name().clone()).collect(),
        other => panic!("expected a Struct, got {other}"),
    }
}

/// `List(item)` with a nullable `item` field, as pgarrow builds lists.
pub fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", t, true)))
}

/// The element type of a List.
pub fn item_type(t: &DataType) -> &DataType {
    match t {
        DataType::List(f) => f.data_type(),
        other => panic!("expected a List, got {other}"),
    }
}

/// Parses `(id, path..., value)` server rows into `(id, path, value)`.
pub fn server_leaves(
    rows: Vec<(i32, Vec<Option<String>>)>,
) -> Vec<(i32, Vec<i64>, Option<String>)> {
    let mut out: Vec<(i32, Vec<i64>, Option<String>)> = rows
        .into_iter()
        .map(|(id, mut r)| {
            let value = r.pop().expect("a value column");
            let path = r
                .into_iter()
                .map(|p| p.expect("subscript").parse().expect("integer subscript"))
                .collect();
            (id, path, value)
        })
        .collect();
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out
}

/// Our leaves of a `depth`-deep list column as `(id, path, value)`, sorted like
/// [`server_leaves`].
pub fn our_leaves(
    out: &Exported,
    column: &str,
    depth: usize,
) -> Vec<(i32, Vec<i64>, Option<String>)> {
    let mut v: Vec<(i32, Vec<i64>, Option<String>)> = out
        .rows(column)
        .into_iter()
        .flat_map(|(id, a)| {
            list_leaves(&a, 0, depth)
                .into_iter()
                .map(move |(p, v)| (id, p, v))
        })
        .collect();
    v.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    v
}

/// Whether an environment switch is `1`.
pub fn required(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| v == "1")
}

/// A server boolean.
pub fn pg_bool(v: &Option<String>) -> bool {
    match v.as_deref() {
        Some("t") => true,
        Some("f") => false,
        other => panic!("not a boolean: {other:?}"),
    }
}
