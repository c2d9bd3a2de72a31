//! The one database harness of this crate's integration tests (`types.rs`, `nested.rs`): a
//! database per test on the shared cluster, exports collected into batches (with their loss
//! report), the server's own rendering of values read back through psql, and our exports
//! walked value by value (the renderings on both sides are in `render.rs`).
//!
//! The principle: every expected value comes from PostgreSQL's own rendering of the same stored
//! value (through psql), never from constants copied from pgarrow's output, so that a decoder bug
//! cannot be mirrored in the expectation.
#![allow(dead_code)]

mod render;
pub use render::*;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, SchemaRef};
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
    /// PostgreSQL is not installed and the run allows skipping (`PGARROW_ALLOW_SKIP=1`).
    pub fn new(prefix: &str) -> Option<Db> {
        let cluster = Cluster::shared()?;
        let name = cluster
            .create_database(prefix)
            .unwrap_or_else(|e| panic!("creating a database for {prefix}: {e}"));
        Some(Db { cluster, name })
    }

    /// A new database on `cluster` (one the test started or found).
    pub fn on(cluster: &'static Cluster, prefix: &str) -> Db {
        let name = cluster
            .create_database(prefix)
            .unwrap_or_else(|e| panic!("creating a database for {prefix}: {e}"));
        Db { cluster, name }
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
    pub async fn describe(&self, sql: &str, policies: &Policies) -> pgarrow::DescribedSource {
        self.client()
            .await
            .describe_with(&Source::query(sql), policies)
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
    ExportOptions::default().with_policies(policies)
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
    plans: Vec<pgarrow::ColumnMapping>,
    policies: Policies,
    batch_rows: usize,
) -> Result<Exported, pgarrow_decode::Error> {
    let options = DecodeOptions::default().with_batch_rows(batch_rows);
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
