//! Helpers of `tests/nested.rs`: a database on the shared cluster, the server's own rendering of
//! values read back through psql, and our exports walked value by value.
//!
//! Nothing here computes an expected value: expected values always come from the server.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, SchemaRef, TimeUnit};
use pgarrow::{DecodeOptions, ExportOptions, LossKind, LossReport, Policies, Source};
use pgarrow_testkit::Cluster;

/// How psql prints NULL in [`Db::query`].
const NULL_MARK: &str = "<<NULL>>";

/// One test's own database on the shared cluster.
#[derive(Debug)]
pub struct Db {
    pub pg: &'static Cluster,
    pub name: String,
}

impl Db {
    /// A fresh database, or `None` (the cluster printed SKIPPED) without PostgreSQL.
    pub fn new(prefix: &str) -> Option<Db> {
        let pg = Cluster::shared()?;
        let name = pg
            .create_database(prefix)
            .unwrap_or_else(|e| panic!("create database {prefix}: {e}"));
        Some(Db { pg, name })
    }

    /// A database that already exists (created by the test itself).
    pub fn existing(pg: &'static Cluster, name: &str) -> Db {
        Db {
            pg,
            name: name.to_owned(),
        }
    }

    /// Runs a script; panics with psql's message on failure.
    pub fn exec(&self, sql: &str) {
        if let Err(e) = self.pg.psql(&self.name, sql) {
            panic!("psql failed in {}: {e}\n--- script ---\n{sql}", self.name);
        }
    }

    /// Runs a script, returning psql's failure.
    pub fn try_exec(&self, sql: &str) -> Result<String, pgarrow_testkit::Error> {
        self.pg.psql(&self.name, sql)
    }

    /// The rows of one query as the server renders them (`None` for NULL). Values may hold
    /// `|` and newlines: fields and records are separated by control characters.
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let script = format!(
            "\\pset fieldsep '\\037'\n\\pset recordsep '\\036'\n\\pset null '{NULL_MARK}'\n{sql};\n"
        );
        let out = self
            .pg
            .psql(&self.name, &script)
            .unwrap_or_else(|e| panic!("query failed in {}: {e}\n{sql}", self.name));
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

    /// One value.
    pub fn scalar(&self, sql: &str) -> Option<String> {
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

    pub fn url(&self) -> String {
        self.pg.url(&self.name)
    }

    /// Exports `sql` with `policies` (and batch options), collecting every batch.
    pub async fn try_export_with(
        &self,
        sql: &str,
        policies: Policies,
        decode: DecodeOptions,
    ) -> Result<Out, pgarrow::Error> {
        let mut client = pgarrow::Client::connect(&self.url())
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.name));
        let options = ExportOptions { decode, policies };
        let mut export = client.export(&Source::query(sql), &options).await?;
        let schema = export.schema();
        let mut batches = Vec::new();
        while let Some(b) = export.next_batch().await? {
            assert_eq!(b.schema(), schema, "batch schema differs from the export's");
            batches.push(b);
        }
        let losses = export.losses();
        Ok(Out {
            schema,
            batches,
            losses,
        })
    }

    pub async fn try_export(&self, sql: &str, policies: Policies) -> Result<Out, pgarrow::Error> {
        self.try_export_with(sql, policies, DecodeOptions::default())
            .await
    }

    /// Exports `sql`, panicking on failure.
    pub async fn export(&self, sql: &str, policies: Policies) -> Out {
        self.try_export(sql, policies)
            .await
            .unwrap_or_else(|e| panic!("export of {sql:?} failed: {e}"))
    }

    /// Exports `sql` with small batches, panicking on failure.
    pub async fn export_batched(&self, sql: &str, policies: Policies, rows: usize) -> Out {
        let decode = DecodeOptions {
            batch_rows: rows,
            ..DecodeOptions::default()
        };
        let out = self
            .try_export_with(sql, policies, decode)
            .await
            .unwrap_or_else(|e| panic!("export of {sql:?} in batches of {rows} failed: {e}"));
        assert!(out.batches.len() > 1, "{sql}: expected several batches");
        out
    }

    /// Exports `sql` expecting a decode error about one value.
    pub async fn export_value_error(&self, sql: &str, policies: Policies) -> ValueError {
        match self.try_export(sql, policies).await {
            Ok(out) => panic!(
                "export of {sql:?} succeeded ({} rows, losses {}) but should fail",
                out.num_rows(),
                out.losses
            ),
            Err(e) => value_error(&e),
        }
    }

    /// Plans `sql` under `policies`.
    pub async fn plan(&self, sql: &str, policies: &Policies) -> pgarrow::ExportPlan {
        let mut client = pgarrow::Client::connect(&self.url())
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.name));
        client
            .plan_with(&Source::query(sql), policies)
            .await
            .unwrap_or_else(|e| panic!("plan of {sql:?} failed: {e}"))
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
) -> Result<Out, pgarrow_decode::Error> {
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
    Ok(Out {
        schema: decoder.schema(),
        batches,
        losses: decoder.losses(),
    })
}

/// A finished export.
#[derive(Debug)]
pub struct Out {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub losses: LossReport,
}

impl Out {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    pub fn field(&self, name: &str) -> &Field {
        self.schema
            .field_with_name(name)
            .unwrap_or_else(|_| panic!("no column {name} in {:?}", self.schema))
    }

    pub fn data_type(&self, name: &str) -> &DataType {
        self.field(name).data_type()
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

/// Renders a scalar Arrow value the way the test's server queries render it: integers and
/// text as themselves, bool as t/f, Date32 as days since 1970, Time64/Timestamp as their
/// microseconds, decimals with their scale, binary as lower-case hex, enum dictionary values as
/// their label. Floats as Rust prints them (compare floats with [`f64_bits`]).
pub fn leaf(a: &dyn Array, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Boolean => if a.as_boolean().value(i) { "t" } else { "f" }.to_owned(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).to_string(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::Float32 => a.as_primitive::<Float32Type>().value(i).to_string(),
        DataType::Float64 => a.as_primitive::<Float64Type>().value(i).to_string(),
        DataType::Utf8 => a.as_string::<i32>().value(i).to_owned(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(i).to_owned(),
        DataType::Utf8View => a.as_string_view().value(i).to_owned(),
        DataType::Binary => hex(a.as_binary::<i32>().value(i)),
        DataType::Date32 => a.as_primitive::<Date32Type>().value(i).to_string(),
        DataType::Time64(TimeUnit::Microsecond) => a
            .as_primitive::<Time64MicrosecondType>()
            .value(i)
            .to_string(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => a
            .as_primitive::<TimestampMicrosecondType>()
            .value(i)
            .to_string(),
        DataType::Decimal128(..) => a.as_primitive::<Decimal128Type>().value_as_string(i),
        DataType::Decimal256(..) => a.as_primitive::<Decimal256Type>().value_as_string(i),
        DataType::Dictionary(k, v) if **k == DataType::Int16 && **v == DataType::Utf8 => {
            let d = a.as_dictionary::<Int16Type>();
            let key = d.keys().value(i);
            let key = usize::try_from(key).expect("non-negative dictionary key");
            d.values().as_string::<i32>().value(key).to_owned()
        }
        other => panic!("no rendering for {other}"),
    })
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The bits of a float the server printed (`NaN`, `Infinity`, shortest round-trip digits).
pub fn f64_bits(s: &str) -> u64 {
    let v: f64 = match s {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        s => s
            .parse()
            .unwrap_or_else(|_| panic!("server float {s:?} does not parse")),
    };
    v.to_bits()
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
pub fn our_leaves(out: &Out, column: &str, depth: usize) -> Vec<(i32, Vec<i64>, Option<String>)> {
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
