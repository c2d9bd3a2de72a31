//! Integration tests of nested and extension types and of the conversion policies, end to end
//! against a real server: arrays (any number of dimensions), composites, enums, ranges,
//! multiranges, hstore, citext/ltree/xml/"char", PostGIS, pgvector, types without a decoder,
//! special values, numeric targets, text layouts and invalid UTF-8.
//!
//! Expected values always come from the server's own rendering of the stored values, extracted
//! element by element (`generate_subscripts`, `(p).x`, `lower(r)`, `unnest(mr)`, `each(h)`),
//! never from our own output. Each test has its own database on the shared cluster; without
//! PostgreSQL it fails, or returns early (the cluster prints SKIPPED) when the run allows skipping
//! (`PGARROW_ALLOW_SKIP=1`). PostGIS and pgvector are skipped loudly when not installed, unless
//! `PGARROW_REQUIRE_POSTGIS=1` / `PGARROW_REQUIRE_PGVECTOR=1`.
//!
//! Long on purpose: some fifty tests, one or two per type family or policy, each a table of cases;
//! kept in one binary because each test binary links arrow, parquet and the server harness again,
//! and CI builds them all.

mod common;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int32Type, IntervalMonthDayNanoType,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_schema::{DataType, TimeUnit};
use common::{
    Db, Exported, ValueError, child, decode_copy, decode_value_error, f64_bits, hex, item_type,
    leaf, list_at, list_leaves, list_of, our_leaves, pg_bool, server_leaves, struct_names, under,
    unhex, value_error,
};
use pgarrow::mapping::TypeMapping;
use pgarrow::policy::{
    ArrayBounds, ArrayShape, EnumLayout, Infinity, InvalidUtf8, LossKind, NumericTarget, Overflow,
    Policies, SpecialValues, TextLayout,
};

const META_DIMS: &str = "pgarrow.array_dims";
const META_INFINITY: &str = "pgarrow.infinity";
const INFINITY_ENCODING: &str = "+infinity=max,-infinity=-max";
const META_PG_TYPE: &str = "pgarrow.pg_type";
const META_CAST: &str = "pgarrow.cast";
const META_EXT: &str = "ARROW:extension:name";

fn policies() -> Policies {
    Policies::default()
}

/// The default policies, but lower bounds other than 1 dropped (and counted).
fn dropping_bounds() -> Policies {
    policies().with_array_bounds(ArrayBounds::Drop)
}

/// `sql` exported under `policies` whole, and in batches of `rows`.
async fn export_both_under(db: &Db, sql: &str, policies: Policies, rows: usize) -> [Exported; 2] {
    [
        db.export_under(sql, policies).await,
        db.export_batched(sql, policies, rows).await,
    ]
}

fn ts_us() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

fn ts_utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Asserts two row lists are equal, naming the first difference.
fn assert_same<T: std::fmt::Debug + PartialEq>(what: &str, ours: &[T], server: &[T]) {
    for (i, (a, b)) in ours.iter().zip(server).enumerate() {
        assert_eq!(a, b, "{what}: item {i} differs (ours left, server right)");
    }
    assert_eq!(
        ours.len(),
        server.len(),
        "{what}: {} items exported, the server has {}\nours: {ours:?}\nserver: {server:?}",
        ours.len(),
        server.len()
    );
}

/// A value of a column walked by field names: `#null` as the last step renders whether the
/// value there (or any value above it) is NULL.
fn at_path(a: &dyn Array, i: usize, path: &[&str]) -> Option<String> {
    if path == ["#null"] {
        return Some(if a.is_null(i) { "t" } else { "f" }.to_owned());
    }
    match path.split_first() {
        None => leaf(a, i),
        Some((name, rest)) => {
            if a.is_null(i) {
                return (path.last() == Some(&"#null")).then(|| "t".to_owned());
            }
            at_path(child(a, name).as_ref(), i, rest)
        }
    }
}

/// Compares `(column, path)` values of our export with server expressions over `from`
/// (which must give an `id`).
fn compare_paths(db: &Db, out: &Exported, from: &str, checks: &[(&str, &[&str], &str)]) {
    let exprs: Vec<&str> = checks.iter().map(|c| c.2).collect();
    let server = db.by_id(&format!("SELECT id, {} FROM {from}", exprs.join(", ")));
    assert!(!server.is_empty(), "{from}: no rows to compare");
    let mut ours: Vec<(i32, Vec<Option<String>>)> = Vec::new();
    let columns: Vec<Vec<(i32, arrow_array::ArrayRef)>> =
        checks.iter().map(|c| out.rows(c.0)).collect();
    for r in 0..out.num_rows() {
        let id = columns[0][r].0;
        let values = checks
            .iter()
            .zip(&columns)
            .map(|((_, path, _), col)| at_path(col[r].1.as_ref(), 0, path))
            .collect();
        ours.push((id, values));
    }
    ours.sort_by_key(|(id, _)| *id);
    for ((id, o), (sid, s)) in ours.iter().zip(&server) {
        assert_eq!(id, sid, "row ids differ");
        for (k, (a, b)) in o.iter().zip(s).enumerate() {
            assert_eq!(
                a, b,
                "id {id}: {}.{:?} (server: {}) differs (ours left)",
                checks[k].0, checks[k].1, checks[k].2
            );
        }
    }
    assert_eq!(ours.len(), server.len(), "row counts differ");
}

/// The shape of each row of a `depth`-deep list column: `None` for NULL, else the length of
/// every level (0 below an empty level). Asserts that each level is rectangular.
fn our_shapes(out: &Exported, column: &str, depth: usize) -> Vec<(i32, Option<Vec<i64>>)> {
    out.rows(column)
        .into_iter()
        .map(|(id, a)| {
            if a.is_null(0) {
                return (id, None);
            }
            let mut lens = Vec::new();
            let mut level: Vec<arrow_array::ArrayRef> = vec![a];
            for _ in 0..depth {
                let mut next = Vec::new();
                let mut len: Option<usize> = None;
                for arr in &level {
                    let l = arr.as_list::<i32>();
                    for i in 0..l.len() {
                        let v = l.value(i);
                        assert!(
                            len.is_none_or(|n| n == v.len()),
                            "id {id}: ragged level in {column}"
                        );
                        len = Some(v.len());
                        next.push(v);
                    }
                }
                lens.push(len.unwrap_or(0) as i64);
                level = next;
            }
            (id, Some(lens))
        })
        .collect()
}

/// Checks a `depth`-dimensional array column of `table` element by element against the
/// server: NULL-ness and lengths per dimension, then every element (`elem` renders the element
/// expression `{e}` as the server's text, to be compared with [`leaf`]).
fn check_array_column(
    db: &Db,
    out: &Exported,
    table: &str,
    column: &str,
    depth: usize,
    elem: &str,
) {
    check_array_shapes(db, out, table, column, depth);
    let subs: Vec<String> = (1..=depth)
        .map(|k| format!("generate_subscripts({column}, {k}) AS s{k}"))
        .collect();
    let offsets: Vec<String> = (1..=depth)
        .map(|k| format!("s{k} - array_lower({column}, {k})"))
        .collect();
    let index: String = (1..=depth).map(|k| format!("[s{k}]")).collect();
    let value = elem.replace("{e}", &format!("{column}{index}"));
    let server = server_leaves(db.by_id(&format!(
        "SELECT id, {}, {value} FROM {table}, {}",
        offsets.join(", "),
        subs.join(", ")
    )));
    assert!(
        server.iter().any(|(_, _, v)| v.is_some()),
        "{table}.{column}: the test data should have non-NULL elements"
    );
    assert_same(
        &format!("{table}.{column} elements"),
        &our_leaves(out, column, depth),
        &server,
    );
}

/// Checks NULL-ness and the length of every dimension of each row of an array column.
fn check_array_shapes(db: &Db, out: &Exported, table: &str, column: &str, depth: usize) {
    let lens: Vec<String> = (1..=depth)
        .map(|k| format!("coalesce(array_length({column}, {k}), 0)"))
        .collect();
    let server_shapes: Vec<(i32, Option<Vec<i64>>)> = db
        .by_id(&format!(
            "SELECT id, {column} IS NULL, {} FROM {table}",
            lens.join(", ")
        ))
        .into_iter()
        .map(|(id, r)| {
            let shape = (!pg_bool(&r[0])).then(|| {
                r[1..]
                    .iter()
                    .map(|v| v.as_deref().unwrap_or("0").parse().unwrap_or(-1))
                    .collect()
            });
            (id, shape)
        })
        .collect();
    let mut ours = our_shapes(out, column, depth);
    ours.sort_by_key(|(id, _)| *id);
    assert_same(&format!("{table}.{column} shapes"), &ours, &server_shapes);
}

/// Server count of rows whose array has a lower bound other than 1 in any dimension.
fn lower_bound_rows(db: &Db, table: &str, column: &str, depth: usize) -> u64 {
    let conds: Vec<String> = (1..=depth)
        .map(|k| format!("array_lower({column}, {k}) <> 1"))
        .collect();
    db.value(&format!(
        "SELECT count(*) FROM {table} WHERE {}",
        conds.join(" OR ")
    ))
    .and_then(|s| s.parse().ok())
    .expect("a count")
}

// ---------------------------------------------------------------------------------------------
// Arrays
// ---------------------------------------------------------------------------------------------

const ARRAYS_1D: &str = r#"
CREATE TABLE a1 (id int PRIMARY KEY, v int4[], s text[], n numeric(6,2)[], d date[], b bool[]);
INSERT INTO a1 VALUES
 (1, '{1,2,3}', '{a,b}', '{1.5,-2.25}', '{2020-01-01,1999-12-31}', '{t,f}'),
 (2, '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}'),
 (3, '{}', '{}', '{}', '{}', '{}'),
 (4, NULL, NULL, NULL, NULL, NULL),
 (5, '{1,NULL,3}', '{"",NULL,"a b","é😀","x,y","{}","\"q\"","back\\slash"}', '{0,9999.99}',
     '{1970-01-01,NULL}', '{NULL,t}'),
 (6, '{-2147483648,2147483647}', '{"NULL"}', '{-9999.99}', '{0001-01-01}', '{f}'),
 (7, '[0:2]={7,8,9}', '[5:6]={x,y}', '[-3:-3]={1}', '[2:2]={2000-01-01}', '{t}'),
 (8, '[5:5]={42}', '{z}', '{1}', '{4714-11-24 BC}', '[0:0]={f}');
"#;

#[tokio::test(flavor = "current_thread")]
async fn arrays_one_dimension_elements_nulls_empty_lower_bounds() {
    let Some(db) = Db::with("nested_arrays_1d", ARRAYS_1D) else {
        return;
    };
    let sql = "SELECT id, v, s, n, d, b FROM a1 ORDER BY id";
    let [one, batched] = export_both_under(&db, sql, dropping_bounds(), 3).await;
    for out in [&one, &batched] {
        assert_eq!(out.data_type("v"), &list_of(DataType::Int32));
        assert_eq!(out.data_type("s"), &list_of(DataType::Utf8));
        assert_eq!(out.data_type("n"), &list_of(DataType::Decimal128(6, 2)));
        assert_eq!(out.data_type("d"), &list_of(DataType::Date32));
        assert_eq!(out.data_type("b"), &list_of(DataType::Boolean));
        for c in ["v", "s", "n", "d", "b"] {
            assert_eq!(out.field_meta(c, META_DIMS), Some("1"), "{c}");
        }
        assert_eq!(out.field_meta("n", META_PG_TYPE), Some("numeric(6,2)[]"));
        check_array_column(&db, out, "a1", "v", 1, "{e}::text");
        check_array_column(&db, out, "a1", "s", 1, "{e}");
        check_array_column(&db, out, "a1", "n", 1, "{e}::text");
        check_array_column(&db, out, "a1", "d", 1, "({e} - date '1970-01-01')::text");
        check_array_column(&db, out, "a1", "b", 1, "{e}");
        // Under --array-bounds drop, lower bounds other than 1 are dropped (values kept in
        // order) and counted per array.
        for c in ["v", "s", "n", "d", "b"] {
            assert_eq!(
                out.loss(c, LossKind::ArrayLowerBoundDropped),
                lower_bound_rows(&db, "a1", c, 1),
                "{c}: ArrayLowerBoundDropped"
            );
        }
        assert_eq!(out.losses.total(), 6, "losses: {}", out.losses);
    }
    // '{}' is an empty list and NULL a null list: distinct.
    let v = one.rows("v");
    assert!(!v[2].1.is_null(0) && list_at(v[2].1.as_ref(), 0).unwrap().is_empty());
    assert!(v[3].1.is_null(0));
}

const ARRAYS_ND: &str = r#"
CREATE TABLE a2 (id int PRIMARY KEY, m int4[][], t text[][], c int4[][][], one int4[]);
INSERT INTO a2 VALUES
 (1, '{{1,NULL},{3,4}}', '{{a,b},{NULL,"d e"}}', '{{{1,2},{3,4}},{{5,6},{7,8}}}', '{1}'),
 (2, '{}', '{}', '{}', '{}'),
 (3, NULL, NULL, NULL, NULL),
 (4, '{{1,2,3}}', '{{x},{y},{z}}', '{{{1}}}', '{2}'),
 (5, '[0:1][5:6]={{1,2},{3,4}}', '{{NULL}}', '[2:2][1:1][0:1]={{{9,10}}}', '{3}'),
 (6, '{{NULL,NULL},{NULL,NULL}}', '{{"",""}}', '{{{NULL}},{{NULL}}}', '{NULL}');
"#;

#[tokio::test(flavor = "current_thread")]
async fn arrays_declared_dimensions_become_nested_lists() {
    let Some(db) = Db::with("nested_arrays_nd", ARRAYS_ND) else {
        return;
    };
    let sql = "SELECT id, m, t, c, one FROM a2 ORDER BY id";
    let plan = db.describe(sql, &policies()).await;
    let dims: Vec<Option<usize>> = plan
        .columns
        .iter()
        .map(|c| match &c.kind {
            TypeMapping::List { dims, .. } => Some(*dims),
            _ => None,
        })
        .collect();
    assert_eq!(dims, [None, Some(2), Some(2), Some(3), Some(1)]);
    assert!(plan.columns.iter().all(|c| c.cast.is_none()));

    let [one, batched] = export_both_under(&db, sql, dropping_bounds(), 4).await;
    for out in [&one, &batched] {
        assert_eq!(out.data_type("m"), &list_of(list_of(DataType::Int32)));
        assert_eq!(out.data_type("t"), &list_of(list_of(DataType::Utf8)));
        assert_eq!(
            out.data_type("c"),
            &list_of(list_of(list_of(DataType::Int32)))
        );
        assert_eq!(out.data_type("one"), &list_of(DataType::Int32));
        for (c, d) in [("m", "2"), ("t", "2"), ("c", "3"), ("one", "1")] {
            assert_eq!(out.field_meta(c, META_DIMS), Some(d), "{c}");
        }
        check_array_column(&db, out, "a2", "m", 2, "{e}::text");
        check_array_column(&db, out, "a2", "t", 2, "{e}");
        check_array_column(&db, out, "a2", "c", 3, "{e}::text");
        check_array_column(&db, out, "a2", "one", 1, "{e}::text");
        assert_eq!(
            out.loss("m", LossKind::ArrayLowerBoundDropped),
            lower_bound_rows(&db, "a2", "m", 2)
        );
        assert_eq!(
            out.loss("c", LossKind::ArrayLowerBoundDropped),
            lower_bound_rows(&db, "a2", "c", 3)
        );
        assert_eq!(out.losses.total(), 2, "losses: {}", out.losses);
    }
    // The same column keeps its dimensions when renamed in a query.
    let renamed = db
        .export_under(
            "SELECT id, m AS grid FROM a2 ORDER BY id",
            dropping_bounds(),
        )
        .await;
    assert_eq!(
        renamed.data_type("grid"),
        &list_of(list_of(DataType::Int32))
    );
}

#[tokio::test(flavor = "current_thread")]
async fn arrays_of_mixed_depths_fail_with_a_hint_or_flatten() {
    let Some(db) = Db::new("nested_arrays_dims_err") else {
        return;
    };
    db.psql(
        "CREATE TABLE flat (id int, v int4[]);
         INSERT INTO flat VALUES (1, '{1}'), (2, '{2,3}'), (3, '{{4,5},{6,7}}'), (4, '{8}');
         CREATE TABLE grid (id int, g int4[][]);
         INSERT INTO grid VALUES (1, '{{1}}'), (2, '{1,2}');",
    );
    // A query expression has no declared dimensions: its depth is its first non-empty value's.
    let e = db
        .export_value_error(
            "SELECT id, CASE WHEN id < 3 THEN ARRAY[id] ELSE ARRAY[[id, id], [id, id]] END AS x \
             FROM generate_series(1, 4) AS id",
            policies(),
        )
        .await;
    e.assert_at(3, 1, "x");
    e.assert_says("row 3");
    e.assert_says("\"x\"");
    assert!(
        e.display
            .contains("2 dimension(s) but the column has 1 (seen in the column's first"),
        "both depths: {}",
        e.display
    );
    assert!(
        e.display.contains("--array-shape flatten"),
        "the message should name the way through: {}",
        e.display
    );
    // PostgreSQL does not enforce declared dimensions: a stored 2-D value in an int4[] column.
    let e = db
        .export_value_error("SELECT id, v FROM flat ORDER BY id", policies())
        .await;
    e.assert_at(3, 1, "v");
    // And a 1-D value after a 2-D one in an int4[][] column is refused too (not silently
    // reshaped).
    let e = db
        .export_value_error("SELECT id, g FROM grid ORDER BY id", policies())
        .await;
    e.assert_at(2, 1, "g");
    e.assert_says("1 dimension");
    e.assert_says("first non-empty value");
    assert!(
        e.display.contains("--array-shape text"),
        "the message should name the exact way out: {}",
        e.display
    );

    // --array-shape text: every array as the server's text, whatever its depths and bounds.
    let text = policies().with_array_shape(ArrayShape::Text);
    for (table, col) in [("flat", "v"), ("grid", "g")] {
        let out = db
            .export_under(&format!("SELECT id, {col} FROM {table} ORDER BY id"), text)
            .await;
        assert_eq!(out.data_type(col), &DataType::Utf8, "{col}");
        let server: Vec<(i32, Option<String>)> = db
            .by_id(&format!("SELECT id, {col}::text FROM {table}"))
            .into_iter()
            .map(|(id, v)| (id, v[0].clone()))
            .collect();
        assert_eq!(out.cells(col), server, "{col}");
        assert!(out.losses.is_empty(), "{col}: {}", out.losses);
    }

    // --array-shape flatten: every array a 1-D list of its elements, row-major, counted.
    let flatten = policies().with_array_shape(ArrayShape::Flatten);
    for (sql, col, flattened) in [
        ("SELECT id, v FROM flat ORDER BY id", "v", 1),
        ("SELECT id, g FROM grid ORDER BY id", "g", 1),
    ] {
        let out = db.export_under(sql, flatten).await;
        assert_eq!(out.data_type(col), &list_of(DataType::Int32), "{col}");
        let rows: Vec<Vec<Option<i32>>> = out
            .rows(col)
            .iter()
            .map(|(_, a)| {
                a.as_list::<i32>()
                    .value(0)
                    .as_primitive::<Int32Type>()
                    .iter()
                    .collect()
            })
            .collect();
        let server: Vec<Vec<Option<i32>>> = db
            .by_id(&format!(
                "SELECT id, array_to_string(ARRAY(SELECT unnest({col})), ',') FROM {}",
                if col == "v" { "flat" } else { "grid" }
            ))
            .into_iter()
            .map(|(_, v)| {
                v[0].as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|n| Some(n.parse().unwrap()))
                    .collect()
            })
            .collect();
        assert_eq!(rows, server, "{col}");
        assert_eq!(out.loss(col, LossKind::ArrayFlattened), flattened, "{col}");
    }
}

/// Lower bounds other than 1 are refused by default, naming the two ways out: the exact text
/// (`--array-shape text`, bounds kept) or `--array-bounds drop` (counted). Declared dimensions
/// are advisory: an `int[][][]` column holding 2-D values exports as two nested Lists.
#[tokio::test(flavor = "current_thread")]
async fn array_bounds_are_refused_kept_as_text_or_dropped_and_declared_dims_are_advisory() {
    let Some(db) = Db::new("nested_array_bounds") else {
        return;
    };
    db.psql(
        "CREATE TABLE lb (id int, v int4[], c int4[][][]);
         INSERT INTO lb VALUES (1, '{1,2}', '{{1,2},{3,4}}'), (2, '[0:2]={7,8,9}', '{{5}}'),
                               (3, '[-2:-1]={1,2}', NULL), (4, NULL, '{}');",
    );
    let sql = "SELECT id, v FROM lb ORDER BY id";
    let e = db.export_value_error(sql, policies()).await;
    e.assert_at(2, 1, "v");
    e.assert_says("lower bound 0 in dimension 1");
    e.assert_says("--array-shape text");
    e.assert_says("--array-bounds drop");

    let text = policies().with_array_shape(ArrayShape::Text);
    let out = db.export_under(sql, text).await;
    assert_eq!(out.data_type("v"), &DataType::Utf8);
    let server: Vec<(i32, Option<String>)> = db
        .by_id("SELECT id, v::text FROM lb")
        .into_iter()
        .map(|(id, v)| (id, v[0].clone()))
        .collect();
    assert_eq!(out.cells("v"), server);
    assert_eq!(
        out.cells("v")[1].1.as_deref(),
        Some("[0:2]={7,8,9}"),
        "the bounds are in the text"
    );

    let out = db.export_under(sql, dropping_bounds()).await;
    assert_eq!(out.loss("v", LossKind::ArrayLowerBoundDropped), 2);

    // Declared int4[][][], holding 2-D values: two levels, from the data.
    let out = db.export("SELECT id, c FROM lb ORDER BY id").await;
    assert_eq!(out.data_type("c"), &list_of(list_of(DataType::Int32)));
    check_array_column(&db, &out, "lb", "c", 2, "{e}::text");
    // With no value to look at, the declared dimensions are planned.
    let out = db
        .export("SELECT id, c FROM lb WHERE c IS NULL OR c = '{}' ORDER BY id")
        .await;
    assert_eq!(
        out.data_type("c"),
        &list_of(list_of(list_of(DataType::Int32)))
    );
}

/// PostgreSQL does not enforce declared dimensions, and views and CREATE TABLE AS declare none:
/// an `int[]` column holding 2-D or 3-D values becomes that many nested Lists, from a table, a
/// view or CTAS alike, NULLs and empty arrays before the first value notwithstanding.
#[tokio::test(flavor = "current_thread")]
async fn arrays_take_their_depth_from_the_data() {
    let Some(db) = Db::new("nested_arrays_from_data") else {
        return;
    };
    db.psql(
        "CREATE TABLE m (id int, x int[], y int[], z int[]);
         INSERT INTO m VALUES (1, NULL, '{}', '{1}'),
                              (2, '{{1,2},{3,NULL}}', '{{{1}},{{2}}}', '{2,3}'),
                              (3, '{}', NULL, NULL),
                              (4, '[0:0][2:3]={{5,6}}', '{{{7,8}}}', '{}');
         CREATE VIEW mv AS SELECT * FROM m;
         CREATE TABLE mc AS SELECT * FROM m;",
    );
    for table in ["m", "mv", "mc"] {
        let sql = format!("SELECT id, x, y, z FROM {table} ORDER BY id");
        let plan = db.describe(&sql, &policies()).await;
        for c in &plan.columns[1..] {
            assert!(c.kind.list_depth_from_data(), "{table}.{}", c.column.name);
        }
        let out = db.export_under(&sql, dropping_bounds()).await;
        assert_eq!(
            out.data_type("x"),
            &list_of(list_of(DataType::Int32)),
            "{table}"
        );
        assert_eq!(
            out.data_type("y"),
            &list_of(list_of(list_of(DataType::Int32))),
            "{table}"
        );
        assert_eq!(out.data_type("z"), &list_of(DataType::Int32), "{table}");
        assert_eq!(out.field_meta("y", META_DIMS), Some("3"), "{table}");
        check_array_column(&db, &out, table, "x", 2, "{e}::text");
        check_array_column(&db, &out, table, "y", 3, "{e}::text");
        check_array_column(&db, &out, table, "z", 1, "{e}::text");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn domain_over_multidimensional_array_keeps_its_dimensions() {
    let Some(db) = Db::new("nested_domain_nd") else {
        return;
    };
    db.psql(
        "CREATE DOMAIN grid AS int4[][];
         CREATE TABLE dg (id int, g grid);
         INSERT INTO dg VALUES (1, '{{1,2},{3,4}}'), (2, NULL), (3, '{}');",
    );
    let out = db.export("SELECT id, g FROM dg ORDER BY id").await;
    assert_eq!(out.data_type("g"), &list_of(list_of(DataType::Int32)));
    check_array_column(&db, &out, "dg", "g", 2, "{e}::text");
}

#[tokio::test(flavor = "current_thread")]
async fn composite_attribute_with_declared_dimensions() {
    let Some(db) = Db::new("nested_comp_nd") else {
        return;
    };
    db.psql(
        "CREATE TYPE mat AS (name text, cells int4[][]);
         CREATE TABLE cm (id int, m mat);
         INSERT INTO cm VALUES (1, ROW('a', '{{1,2},{3,4}}')), (2, ROW('b', NULL)), (3, NULL);",
    );
    let out = db.export("SELECT id, m FROM cm ORDER BY id").await;
    let DataType::Struct(fields) = out.data_type("m") else {
        panic!("m is not a struct")
    };
    assert_eq!(
        fields[1].data_type(),
        &list_of(list_of(DataType::Int32)),
        "cells"
    );
}

// ---------------------------------------------------------------------------------------------
// Composites
// ---------------------------------------------------------------------------------------------

const COMPOSITES: &str = r#"
CREATE TYPE pt AS (x int, label text, amount numeric(8,3));
CREATE TYPE dropme AS (a int, gone text, c text);
ALTER TYPE dropme DROP ATTRIBUTE gone;
CREATE TYPE seg AS (p pt, q pt, tags text[], d dropme);
CREATE DOMAIN pos_pt AS pt CHECK ((VALUE).x IS NULL OR (VALUE).x > 0);
CREATE DOMAIN small_ints AS int[] CHECK (cardinality(VALUE) < 10);
CREATE TABLE holder (id int, gone text, keep text);
ALTER TABLE holder DROP COLUMN gone;
INSERT INTO holder VALUES (1, 'k1'), (2, NULL), (3, 'k3'), (4, 'k4'), (5, 'k5');
CREATE TABLE comp (id int, p pt, s seg, ps pt[], dp pos_pt, di small_ints, dd dropme);
INSERT INTO comp VALUES
 (1, ROW(1, 'one', 1.5), ROW(ROW(1, 'a', 0), ROW(2, 'b', NULL), '{x,NULL}', ROW(7, 'seven')),
     ARRAY[ROW(1, 'a', 1)::pt, NULL, ROW(NULL, NULL, NULL)::pt], ROW(5, 'five', 5), '{1,2}',
     ROW(1, 'c')),
 (2, ROW(NULL, NULL, NULL), ROW(NULL, NULL, NULL, NULL), '{}', ROW(NULL, NULL, NULL), '{}',
     ROW(NULL, NULL)),
 (3, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, ROW(-2147483648, '', -99999.999), ROW(NULL, ROW(3, 'x|y', 2.5), NULL, NULL),
     ARRAY[ROW(2, 'b,c "q" (x)', 2.125)::pt], ROW(1, NULL, NULL), '{NULL}', ROW(NULL, 'only c')),
 (5, ROW(3, 'é😀', 0.001), ROW(ROW(1, NULL, NULL), NULL, '{}', ROW(1, NULL)), '{NULL}', NULL,
     '{3}', NULL);
"#;

const COMPOSITES_SQL: &str = "SELECT c.id, c.p, c.s, c.ps, c.dp, c.di, c.dd, h AS whole \
                              FROM comp c JOIN holder h ON h.id = c.id ORDER BY c.id";

#[tokio::test(flavor = "current_thread")]
async fn composites_nested_dropped_attributes_domains_and_arrays() {
    let Some(db) = Db::with("nested_composites", COMPOSITES) else {
        return;
    };
    let [one, batched] = db.export_both(COMPOSITES_SQL, 2).await;
    for out in [&one, &batched] {
        // Types: live attributes only, in order, each with its PostgreSQL type.
        assert_eq!(struct_names(out.data_type("p")), ["x", "label", "amount"]);
        let DataType::Struct(pf) = out.data_type("p") else {
            unreachable!()
        };
        let types: Vec<(&DataType, Option<&str>)> = pf
            .iter()
            .map(|f| {
                (
                    f.data_type(),
                    f.metadata().get(META_PG_TYPE).map(String::as_str),
                )
            })
            .collect();
        assert_eq!(
            types,
            [
                (&DataType::Int32, Some("integer")),
                (&DataType::Utf8, Some("text")),
                (&DataType::Decimal128(8, 3), Some("numeric(8,3)")),
            ]
        );
        assert_eq!(struct_names(out.data_type("s")), ["p", "q", "tags", "d"]);
        assert_eq!(struct_names(out.data_type("dd")), ["a", "c"]);
        assert_eq!(struct_names(out.data_type("whole")), ["id", "keep"]);
        assert_eq!(struct_names(out.data_type("dp")), ["x", "label", "amount"]);
        assert_eq!(out.data_type("di"), &list_of(DataType::Int32));
        assert_eq!(
            struct_names(item_type(out.data_type("ps"))),
            ["x", "label", "amount"]
        );
        let DataType::Struct(sf) = out.data_type("s") else {
            unreachable!()
        };
        assert_eq!(sf[2].data_type(), &list_of(DataType::Utf8));
        assert_eq!(struct_names(sf[3].data_type()), ["a", "c"]);

        // Values, field by field, against the server's extraction.
        compare_paths(
            &db,
            out,
            "(SELECT c.*, h FROM comp c JOIN holder h ON h.id = c.id) AS q",
            &[
                ("p", &["#null"], "p::text IS NULL"),
                ("p", &["x"], "(p).x::text"),
                ("p", &["label"], "(p).label"),
                ("p", &["amount"], "(p).amount::text"),
                ("s", &["#null"], "s::text IS NULL"),
                ("s", &["p", "#null"], "(s).p::text IS NULL"),
                ("s", &["p", "x"], "((s).p).x::text"),
                ("s", &["p", "label"], "((s).p).label"),
                ("s", &["p", "amount"], "((s).p).amount::text"),
                ("s", &["q", "#null"], "(s).q::text IS NULL"),
                ("s", &["q", "x"], "((s).q).x::text"),
                ("s", &["q", "label"], "((s).q).label"),
                ("s", &["q", "amount"], "((s).q).amount::text"),
                ("s", &["tags", "#null"], "(s).tags IS NULL"),
                ("s", &["d", "#null"], "(s).d::text IS NULL"),
                ("s", &["d", "a"], "((s).d).a::text"),
                ("s", &["d", "c"], "((s).d).c"),
                ("dp", &["#null"], "dp::text IS NULL"),
                ("dp", &["x"], "(dp).x::text"),
                ("dp", &["label"], "(dp).label"),
                ("dp", &["amount"], "(dp).amount::text"),
                ("dd", &["#null"], "dd::text IS NULL"),
                ("dd", &["a"], "(dd).a::text"),
                ("dd", &["c"], "(dd).c"),
                ("whole", &["#null"], "h::text IS NULL"),
                ("whole", &["id"], "(h).id::text"),
                ("whole", &["keep"], "(h).keep"),
            ],
        );

        // An array inside a composite.
        let mut ours: Vec<(i32, Vec<i64>, Option<String>)> = Vec::new();
        for (id, s) in out.rows("s") {
            if s.is_null(0) {
                continue;
            }
            for (p, v) in list_leaves(child(s.as_ref(), "tags").as_ref(), 0, 1) {
                ours.push((id, p, v));
            }
        }
        ours.sort();
        let server = server_leaves(db.by_id(
            "SELECT id, i - 1, ((s).tags)[i] FROM comp, generate_subscripts((s).tags, 1) AS i",
        ));
        assert_same("(s).tags elements", &ours, &server);

        // Composites inside an array, and a domain over an array.
        check_array_column(&db, out, "comp", "di", 1, "{e}::text");
        let mut ours: Vec<(i32, Vec<i64>, Option<String>)> = Vec::new();
        for (id, a) in out.rows("ps") {
            let Some(elems) = list_at(a.as_ref(), 0) else {
                continue;
            };
            for k in 0..elems.len() {
                for (f, path) in [
                    (0, &["#null"][..]),
                    (1, &["x"]),
                    (2, &["label"]),
                    (3, &["amount"]),
                ] {
                    ours.push((id, vec![k as i64, f], at_path(elems.as_ref(), k, path)));
                }
            }
        }
        ours.sort();
        let mut server = Vec::new();
        for (f, expr) in [
            (0, "ps[i]::text IS NULL"),
            (1, "(ps[i]).x::text"),
            (2, "(ps[i]).label"),
            (3, "(ps[i]).amount::text"),
        ] {
            server.extend(server_leaves(db.by_id(&format!(
                "SELECT id, i - 1, {f}, {expr} FROM comp, generate_subscripts(ps, 1) AS i"
            ))));
        }
        server.sort();
        assert_same("ps elements", &ours, &server);
        let ps_shapes = our_shapes(out, "ps", 1);
        let server_shapes: Vec<(i32, Option<Vec<i64>>)> = db
            .by_id("SELECT id, ps IS NULL, coalesce(cardinality(ps), 0) FROM comp")
            .into_iter()
            .map(|(id, r)| {
                (
                    id,
                    (!pg_bool(&r[0])).then(|| vec![r[1].as_deref().unwrap().parse().unwrap()]),
                )
            })
            .collect();
        assert_same("ps shapes", &ps_shapes, &server_shapes);
        assert!(out.losses.is_empty(), "{}", out.losses);
    }

    // Arrays of composites holding composites and arrays: List<Struct<Struct, List>>.
    db.psql(
        "CREATE TABLE deep (id int, segs seg[]);
         INSERT INTO deep VALUES
          (1, ARRAY[ROW(ROW(1, 'a', 1), NULL, '{x,NULL,y}', ROW(1, 'c'))::seg,
                    ROW(NULL, ROW(2, 'b', 2), '{}', NULL)::seg, NULL]),
          (2, '{}'), (3, NULL),
          (4, ARRAY[ROW(ROW(4, 'd', 4), ROW(5, 'e', 5), NULL, ROW(NULL, 'f'))::seg]);",
    );
    let sql = "SELECT id, segs FROM deep ORDER BY id";
    for out in [
        db.export(sql).await,
        db.export_batched(sql, policies(), 2).await,
    ] {
        assert_eq!(
            struct_names(item_type(out.data_type("segs"))),
            ["p", "q", "tags", "d"]
        );
        check_array_shapes(&db, &out, "deep", "segs", 1);
        let paths: [(&[&str], &str); 7] = [
            (&["#null"], "segs[i]::text IS NULL"),
            (&["p", "x"], "((segs[i]).p).x::text"),
            (&["q", "#null"], "(segs[i]).q::text IS NULL"),
            (&["q", "label"], "((segs[i]).q).label"),
            (&["tags", "#null"], "(segs[i]).tags IS NULL"),
            (&["d", "a"], "((segs[i]).d).a::text"),
            (&["d", "c"], "((segs[i]).d).c"),
        ];
        let mut ours = Vec::new();
        let mut tags = Vec::new();
        for (id, a) in out.rows("segs") {
            let Some(elems) = list_at(a.as_ref(), 0) else {
                continue;
            };
            for k in 0..elems.len() {
                for (f, (path, _)) in paths.iter().enumerate() {
                    ours.push((
                        id,
                        vec![k as i64, f as i64],
                        at_path(elems.as_ref(), k, path),
                    ));
                }
                if !elems.is_null(k) {
                    let t = child(elems.as_ref(), "tags");
                    for (p, v) in list_leaves(t.as_ref(), k, 1) {
                        tags.push((id, vec![k as i64, p[0]], v));
                    }
                }
            }
        }
        ours.sort();
        tags.sort();
        let mut server = Vec::new();
        for (f, (_, expr)) in paths.iter().enumerate() {
            server.extend(server_leaves(db.by_id(&format!(
                "SELECT id, i - 1, {f}, {expr} FROM deep, generate_subscripts(segs, 1) AS i"
            ))));
        }
        server.sort();
        assert_same("segs fields", &ours, &server);
        let server_tags = server_leaves(db.by_id(
            "SELECT id, i - 1, j - 1, ((segs[i]).tags)[j] FROM deep, \
             generate_subscripts(segs, 1) AS i, generate_subscripts((segs[i]).tags, 1) AS j",
        ));
        assert_eq!(server_tags.len(), 3);
        assert_same("segs tags", &tags, &server_tags);
    }
}

const NO_ATTRIBUTES: &str = "
CREATE TYPE nothing AS ();
CREATE TYPE all_gone AS (a int, b text);
ALTER TYPE all_gone DROP ATTRIBUTE a;
ALTER TYPE all_gone DROP ATTRIBUTE b;
CREATE TABLE zp (id int, n nothing, g all_gone);
INSERT INTO zp VALUES (1, ROW(), ROW()), (2, NULL, NULL), (3, ROW(), ROW());
";

/// Checks a Struct column without fields: its type, length and NULLs against the server.
fn check_fieldless(db: &Db, out: &Exported, where_: &str) {
    let server: Vec<(i32, Vec<Option<String>>)> = db.by_id(&format!(
        "SELECT id, n::text IS NULL, g::text IS NULL FROM zp {where_}"
    ));
    assert_eq!(out.num_rows(), server.len());
    for c in ["n", "g"] {
        assert_eq!(
            out.data_type(c),
            &DataType::Struct(Default::default()),
            "{c}"
        );
        for b in &out.batches {
            assert_eq!(
                b.column_by_name(c).unwrap().len(),
                b.num_rows(),
                "{c} length"
            );
        }
    }
    compare_paths(
        db,
        out,
        &format!("zp {where_}"),
        &[
            ("n", &["#null"], "n::text IS NULL"),
            ("g", &["#null"], "g::text IS NULL"),
        ],
    );
}

#[tokio::test(flavor = "current_thread")]
async fn composites_without_live_attributes_with_nulls() {
    let Some(db) = Db::with("nested_no_attributes", NO_ATTRIBUTES) else {
        return;
    };
    let out = db.export("SELECT id, n, g FROM zp ORDER BY id").await;
    check_fieldless(&db, &out, "");
}

#[tokio::test(flavor = "current_thread")]
async fn composites_without_live_attributes_never_null() {
    let Some(db) = Db::with("nested_no_attributes_nn", NO_ATTRIBUTES) else {
        return;
    };
    let out = db
        .export("SELECT id, n, g FROM zp WHERE id <> 2 ORDER BY id")
        .await;
    check_fieldless(&db, &out, "WHERE id <> 2");
}

// ---------------------------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------------------------

const ENUMS: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok';
ALTER TYPE mood ADD VALUE 'angry' BEFORE 'sad';
ALTER TYPE mood ADD VALUE 'joyful' AFTER 'happy';
ALTER TYPE mood ADD VALUE 'so-so' BEFORE 'meh';
ALTER TYPE mood ADD VALUE 'with space, "quotes" & é';
CREATE TYPE feeling AS (who text, m mood);
CREATE TABLE en (id int, m mood, ms mood[], f feeling);
INSERT INTO en VALUES
 (1, 'happy', '{sad,NULL,happy}', ROW('a', 'ok')),
 (2, 'meh', '{}', ROW('b', NULL)),
 (3, NULL, NULL, NULL),
 (4, 'angry', '{"with space, \"quotes\" & é"}', ROW(NULL, 'so-so')),
 (5, 'with space, "quotes" & é', '{so-so,meh}', ROW('c', 'angry')),
 (6, 'sad', '{NULL}', ROW('d', 'sad'));
"#;

#[tokio::test(flavor = "current_thread")]
async fn enums_are_dictionaries_of_every_label_in_pg_enum_order() {
    let Some(db) = Db::with("nested_enums", ENUMS) else {
        return;
    };
    // Squeeze many labels between two neighbours: fractional sort orders (and, once float4
    // runs out of room, PostgreSQL's renumbering).
    let squeeze: String = (1..=30)
        .map(|i| format!("ALTER TYPE mood ADD VALUE 'b{i}' BEFORE 'ok';\n"))
        .collect();
    db.psql(&squeeze);
    let labels: Vec<String> = db
        .query("SELECT enumlabel FROM pg_enum WHERE enumtypid = 'mood'::regtype ORDER BY enumsortorder")
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    // The BEFORE additions really are out of OID order (the point of sorting by enumsortorder).
    assert_eq!(labels.first().map(String::as_str), Some("angry"));
    let dict = DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8));
    let sql = "SELECT id, m, ms, f FROM en ORDER BY id";
    let [one, batched] = db.export_both(sql, 4).await;
    for out in [&one, &batched] {
        assert_eq!(out.data_type("m"), &dict);
        assert_eq!(out.data_type("ms"), &list_of(dict.clone()));
        assert_eq!(struct_names(out.data_type("f")), ["who", "m"]);
        // Every batch's dictionary holds all labels in pg_enum order, used or not.
        for b in &out.batches {
            let m = b.column_by_name("m").unwrap();
            let d = m.as_dictionary::<arrow_array::types::Int16Type>();
            let values: Vec<&str> = d.values().as_string::<i32>().iter().flatten().collect();
            assert_eq!(values, labels, "dictionary of m");
            let f = b.column_by_name("f").unwrap();
            let fm = child(f.as_ref(), "m").as_dictionary::<arrow_array::types::Int16Type>();
            let values: Vec<&str> = fm.values().as_string::<i32>().iter().flatten().collect();
            assert_eq!(values, labels, "dictionary of (f).m");
        }
        compare_paths(
            &db,
            out,
            "en",
            &[
                ("m", &[], "m::text"),
                ("f", &["#null"], "f::text IS NULL"),
                ("f", &["who"], "(f).who"),
                ("f", &["m"], "(f).m::text"),
            ],
        );
        check_array_column(&db, out, "en", "ms", 1, "{e}::text");
        // The order is also in the fields' metadata, for formats that rebuild dictionaries.
        let DataType::Struct(ff) = out.data_type("f") else {
            panic!("f is not a struct")
        };
        for field in [out.field("m"), out.field("ms"), ff[1].as_ref()] {
            let json = field
                .metadata()
                .get("pgarrow.enum_labels")
                .unwrap_or_else(|| panic!("{}: {:?}", field.name(), field.metadata()));
            let listed: Vec<String> = serde_json::from_str(json).unwrap();
            assert_eq!(listed, labels, "{}", field.name());
        }
    }

    // The Utf8 layout: plain labels, also inside arrays and composites.
    let utf8 = policies().with_enums(EnumLayout::Utf8);
    let out = db.export_under(sql, utf8).await;
    assert_eq!(out.data_type("m"), &DataType::Utf8);
    assert_eq!(out.data_type("ms"), &list_of(DataType::Utf8));
    let DataType::Struct(ff) = out.data_type("f") else {
        panic!("f is not a struct")
    };
    assert_eq!(ff[1].data_type(), &DataType::Utf8);
    compare_paths(
        &db,
        &out,
        "en",
        &[("m", &[], "m::text"), ("f", &["m"], "(f).m::text")],
    );
    check_array_column(&db, &out, "en", "ms", 1, "{e}::text");
}

#[tokio::test(flavor = "current_thread")]
async fn enums_with_more_labels_than_int16_keys_fall_back_to_utf8() {
    let Some(db) = Db::new("nested_enum_sizes") else {
        return;
    };
    // 32767 labels fit Int16 keys; 32768 do not.
    db.psql(
        "DO $$ BEGIN
           EXECUTE (SELECT 'CREATE TYPE fits AS ENUM (' ||
                    string_agg(quote_literal('l' || g), ',' ORDER BY g) || ')'
                    FROM generate_series(1, 32767) AS g);
           EXECUTE (SELECT 'CREATE TYPE too_many AS ENUM (' ||
                    string_agg(quote_literal('l' || g), ',' ORDER BY g) || ')'
                    FROM generate_series(1, 32768) AS g);
         END $$;
         CREATE TABLE es (id int, f fits, t too_many);
         INSERT INTO es VALUES (1, 'l1', 'l1'), (2, 'l32767', 'l32768'), (3, NULL, NULL);",
    );
    let out = db.export("SELECT id, f, t FROM es ORDER BY id").await;
    assert_eq!(
        out.data_type("f"),
        &DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8))
    );
    assert_eq!(out.data_type("t"), &DataType::Utf8);
    let f = out.batches[0].column_by_name("f").unwrap();
    assert_eq!(
        f.as_dictionary::<arrow_array::types::Int16Type>()
            .values()
            .len(),
        32767
    );
    compare_paths(
        &db,
        &out,
        "es",
        &[("f", &[], "f::text"), ("t", &[], "t::text")],
    );
}

// ---------------------------------------------------------------------------------------------
// Ranges and multiranges
// ---------------------------------------------------------------------------------------------

/// The fields of the one-row range Struct `r` as the server's range functions render them:
/// `isempty`, `lower_inc`, `upper_inc`, `lower`, `upper`.
fn range_fields(r: &dyn Array) -> Vec<Option<String>> {
    [
        "empty",
        "lower_inclusive",
        "upper_inclusive",
        "lower",
        "upper",
    ]
    .iter()
    .map(|f| leaf(child(r, f).as_ref(), 0))
    .collect()
}

/// Compares a range column with the server: NULL-ness, flags and bounds (`render` turns a
/// bound expression `{b}` into the server text [`leaf`] renders ours as).
fn check_range_column(db: &Db, out: &Exported, table: &str, column: &str, render: &str) {
    let lower = render.replace("{b}", &format!("lower({column})"));
    let upper = render.replace("{b}", &format!("upper({column})"));
    let server = db.by_id(&format!(
        "SELECT id, {column} IS NULL, isempty({column}), lower_inc({column}), \
         upper_inc({column}), {lower}, {upper}, lower_inf({column}), upper_inf({column}) \
         FROM {table}"
    ));
    let mut ours: Vec<(i32, Vec<Option<String>>)> = out
        .rows(column)
        .into_iter()
        .map(|(id, a)| {
            let r = a.as_ref();
            let v = if r.is_null(0) {
                vec![Some("t".to_owned()), None, None, None, None, None]
            } else {
                vec![
                    Some("f".to_owned()),
                    leaf(child(r, "empty").as_ref(), 0),
                    leaf(child(r, "lower_inclusive").as_ref(), 0),
                    leaf(child(r, "upper_inclusive").as_ref(), 0),
                    leaf(child(r, "lower").as_ref(), 0),
                    leaf(child(r, "upper").as_ref(), 0),
                ]
            };
            (id, v)
        })
        .collect();
    ours.sort_by_key(|(id, _)| *id);
    let expected: Vec<(i32, Vec<Option<String>>)> = server
        .iter()
        .map(|(id, r)| (*id, r[..6].to_vec()))
        .collect();
    assert_same(&format!("{table}.{column}"), &ours, &expected);
    // Unbounded sides are NULL bounds, never values.
    for ((_, o), (id, s)) in ours.iter().zip(&server) {
        if s[6].as_deref() == Some("t") {
            assert_eq!(o[4], None, "id {id}: unbounded lower of {column}");
        }
        if s[7].as_deref() == Some("t") {
            assert_eq!(o[5], None, "id {id}: unbounded upper of {column}");
        }
    }
}

fn range_type(sub: DataType) -> Vec<(String, DataType, bool)> {
    vec![
        ("lower".into(), sub.clone(), true),
        ("upper".into(), sub, true),
        ("lower_inclusive".into(), DataType::Boolean, false),
        ("upper_inclusive".into(), DataType::Boolean, false),
        ("empty".into(), DataType::Boolean, false),
    ]
}

fn fields_of(t: &DataType) -> Vec<(String, DataType, bool)> {
    match t {
        DataType::Struct(f) => f
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
            .collect(),
        other => panic!("expected a Struct, got {other}"),
    }
}

const EPOCH_US: &str = "(extract(epoch from {b}) * 1000000)::bigint::text";
const EPOCH_DAYS: &str = "({b} - date '1970-01-01')::text";

const RANGES: &str = r#"
CREATE TYPE floatrange AS RANGE (subtype = float8);
CREATE TABLE rg (id int, i4 int4range, i8 int8range, nr numrange, dr daterange, tr tsrange,
                 tz tstzrange, fr floatrange, ra int4range[]);
INSERT INTO rg VALUES
 (1, '[1,5)', '[1,5)', '[1.5,2.25]', '[2020-01-01,2020-02-01)',
     '[2020-01-01 10:00,2020-01-01 11:00:00.000001]', '[2020-01-01 10:00+00,2020-01-01 11:00-02)',
     '[1.5,2.5]', '{"[1,2)","(,3]",empty,NULL}'),
 (2, 'empty', 'empty', 'empty', 'empty', 'empty', 'empty', 'empty', '{}'),
 (3, '(,)', '(,)', '(,)', '(,)', '(,)', '(,)', '(,)', NULL),
 (4, '(,5]', '(,-9223372036854775807]', '(,5]', '(,2020-01-01]', '(,2020-01-01 00:00]',
     '(,2020-01-01 00:00+00]', '(,-0.5]', '{"[3,)"}'),
 (5, '[3,)', '[9223372036854775806,)', '(0.001,)', '[1999-12-31,)', '(1970-01-01 00:00,)',
     '(1970-01-01 00:00+00,)', '(-1e300,)', '{"(1,2]"}'),
 (6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{NULL}'),
 (7, '(1,2]', '(-5,5)', '(-1.000,1.0)', '(2020-01-01,2020-01-03]',
     '(1900-01-01 00:00,1900-01-01 00:00:01)', '[4713-01-01 00:00+00 BC,2000-01-01 00:00+00]',
     '(0,0.1)', '{}');
"#;

#[tokio::test(flavor = "current_thread")]
async fn ranges_bounds_flags_empty_and_unbounded() {
    let Some(db) = Db::with("nested_ranges", RANGES) else {
        return;
    };
    let sql = "SELECT id, i4, i8, nr, dr, tr, tz, fr, ra FROM rg ORDER BY id";
    let [one, batched] = db.export_both(sql, 3).await;
    for out in [&one, &batched] {
        for (c, sub) in [
            ("i4", DataType::Int32),
            ("i8", DataType::Int64),
            ("nr", DataType::Utf8),
            ("dr", DataType::Date32),
            ("tr", ts_us()),
            ("tz", ts_utc()),
            ("fr", DataType::Float64),
        ] {
            assert_eq!(fields_of(out.data_type(c)), range_type(sub), "{c}");
        }
        assert_eq!(
            fields_of(item_type(out.data_type("ra"))),
            range_type(DataType::Int32)
        );
        check_range_column(&db, out, "rg", "i4", "{b}::text");
        check_range_column(&db, out, "rg", "i8", "{b}::text");
        check_range_column(&db, out, "rg", "nr", "{b}::text");
        check_range_column(&db, out, "rg", "dr", EPOCH_DAYS);
        check_range_column(&db, out, "rg", "tr", EPOCH_US);
        check_range_column(&db, out, "rg", "tz", EPOCH_US);
        // Float bounds: compare bits.
        let server = db.by_id("SELECT id, lower(fr)::text, upper(fr)::text FROM rg");
        for ((id, a), (sid, s)) in out.rows("fr").iter().zip(&server) {
            assert_eq!(id, sid);
            for (k, side) in ["lower", "upper"].into_iter().enumerate() {
                let ours = (!a.is_null(0))
                    .then(|| child(a.as_ref(), side).as_primitive::<Float64Type>())
                    .filter(|p| !p.is_null(0))
                    .map(|p| p.value(0).to_bits());
                assert_eq!(ours, s[k].as_deref().map(f64_bits), "id {id} fr {side}");
            }
        }
        // Arrays of ranges.
        let mut ours = Vec::new();
        for (id, a) in out.rows("ra") {
            let Some(elems) = list_at(a.as_ref(), 0) else {
                continue;
            };
            for k in 0..elems.len() {
                let r = elems.slice(k, 1);
                let v = if r.is_null(0) {
                    vec![None; 5]
                } else {
                    range_fields(r.as_ref())
                };
                ours.push((id, k as i64, v));
            }
        }
        let server: Vec<(i32, i64, Vec<Option<String>>)> = db
            .by_id(
                "SELECT id, i - 1, isempty(ra[i]), lower_inc(ra[i]), \
                 upper_inc(ra[i]), lower(ra[i])::text, upper(ra[i])::text \
                 FROM rg, generate_subscripts(ra, 1) AS i ORDER BY id, i",
            )
            .into_iter()
            .map(|(id, mut r)| {
                let k = r.remove(0).unwrap().parse().unwrap();
                (id, k, r)
            })
            .collect();
        assert_same("ra elements", &ours, &server);
        check_array_shapes(&db, out, "rg", "ra", 1);
        assert!(out.losses.is_empty(), "{}", out.losses);
    }
}

const RANGE_INFINITY: &str = r#"
CREATE TABLE ri (id int, dr daterange, tr tsrange);
INSERT INTO ri VALUES
 (1, '[2020-01-01,infinity)', '[-infinity,2020-01-01 00:00)'),
 (2, '[2020-01-01,)', '(,2020-01-01 00:00)'),
 (3, '[-infinity,infinity]', '[-infinity,infinity]'),
 (4, NULL, 'empty');
"#;

#[tokio::test(flavor = "current_thread")]
async fn range_infinity_bounds_are_values_under_the_infinity_policy() {
    let Some(db) = Db::with("nested_range_inf", RANGE_INFINITY) else {
        return;
    };
    let sql = "SELECT id, dr, tr FROM ri ORDER BY id";
    // Error: an infinity bound is an error naming row and column.
    let strict = policies().with_infinity(Infinity::Error);
    let e = db
        .export_value_error("SELECT id, dr FROM ri ORDER BY id", strict)
        .await;
    assert_eq!((e.row, e.name.as_str()), (1, "dr"), "{}", e.display);
    e.assert_says("infinity");
    let e = db
        .export_value_error("SELECT id, tr FROM ri WHERE id > 1 ORDER BY id", strict)
        .await;
    assert_eq!((e.row, e.name.as_str()), (2, "tr"), "{}", e.display);

    // Null: the bound becomes NULL (indistinguishable from unbounded in the data, told apart
    // only by the InfinityToNull count); the inclusivity flags stay the server's.
    let null = policies().with_infinity(Infinity::Null);
    let out = db.export_under(sql, null).await;
    let infinite_bounds = |c: &str| -> u64 {
        db.value(&format!(
            "SELECT count(*) FILTER (WHERE NOT lower_inf({c}) AND NOT isfinite(lower({c}))) + \
             count(*) FILTER (WHERE NOT upper_inf({c}) AND NOT isfinite(upper({c}))) FROM ri"
        ))
        .unwrap()
        .parse()
        .unwrap()
    };
    assert_eq!(
        out.loss("dr", LossKind::InfinityToNull),
        infinite_bounds("dr")
    );
    assert_eq!(
        out.loss("tr", LossKind::InfinityToNull),
        infinite_bounds("tr")
    );
    assert_eq!(infinite_bounds("dr") + infinite_bounds("tr"), 6);
    let finite = |f: &str| format!("CASE WHEN isfinite({{b}}) THEN {f} END");
    check_range_column(&db, &out, "ri", "dr", &finite(EPOCH_DAYS));
    check_range_column(&db, &out, "ri", "tr", &finite(EPOCH_US));
    // Row 1's upper (infinity) and row 2's upper (unbounded) look the same.
    let dr = out.rows("dr");
    let upper = |r: usize| child(dr[r].1.as_ref(), "upper").is_null(0);
    assert!(upper(0) && upper(1));

    // The default: the bound is the type's extreme value, as PostgreSQL stores it, counted
    // and declared on the bound's field.
    let out = db.export(sql).await;
    assert_eq!(
        out.loss("dr", LossKind::InfinityAsExtreme),
        infinite_bounds("dr")
    );
    assert_eq!(
        out.loss("tr", LossKind::InfinityAsExtreme),
        infinite_bounds("tr")
    );
    let DataType::Struct(bounds) = out.data_type("dr") else {
        panic!("{:?}", out.data_type("dr"));
    };
    for side in ["lower", "upper"] {
        let (_, f) = bounds.find(side).unwrap();
        assert_eq!(
            f.metadata().get(META_INFINITY).map(String::as_str),
            Some(INFINITY_ENCODING),
            "{side}"
        );
    }
    let dr = out.rows("dr");
    let tr = out.rows("tr");
    let date = |r: usize, side: &str| {
        let c = child(dr[r].1.as_ref(), side).as_primitive::<Date32Type>();
        (!c.is_null(0)).then(|| c.value(0))
    };
    let ts = |r: usize, side: &str| {
        let c = child(tr[r].1.as_ref(), side).as_primitive::<TimestampMicrosecondType>();
        (!c.is_null(0)).then(|| c.value(0))
    };
    assert_eq!(date(0, "upper"), Some(i32::MAX));
    assert_eq!(date(1, "upper"), None, "unbounded stays NULL");
    assert_eq!(
        (date(2, "lower"), date(2, "upper")),
        (Some(-i32::MAX), Some(i32::MAX))
    );
    assert_eq!(ts(0, "lower"), Some(-i64::MAX));
    assert_eq!(ts(1, "lower"), None);
    assert_eq!(
        (ts(2, "lower"), ts(2, "upper")),
        (Some(-i64::MAX), Some(i64::MAX))
    );
    // Flags are the server's in every case.
    let flags = db.by_id("SELECT id, lower_inc(tr), upper_inc(tr) FROM ri");
    for ((_, a), (id, s)) in tr.iter().zip(&flags) {
        assert_eq!(
            leaf(child(a.as_ref(), "lower_inclusive").as_ref(), 0),
            s[0],
            "id {id}"
        );
        assert_eq!(
            leaf(child(a.as_ref(), "upper_inclusive").as_ref(), 0),
            s[1],
            "id {id}"
        );
    }
}

const MULTIRANGES: &str = r#"
CREATE TABLE mr (id int, im int4multirange, dm datemultirange, nm nummultirange);
INSERT INTO mr VALUES
 (1, '{}', '{}', '{}'),
 (2, '{[1,3),[5,7)}', '{[2020-01-01,2020-01-05),[2020-02-01,2020-03-01)}', '{[1.5,2.5]}'),
 (3, '{(,2),[10,)}', '{(,2000-01-01],[2001-01-01,)}', '{(,)}'),
 (4, NULL, NULL, NULL),
 (5, '{[1,2],[2,3)}', '{[2020-01-01,2020-01-01]}', '{(0.1,0.2),(0.3,0.4],[0.5,0.6)}');
"#;

#[tokio::test(flavor = "current_thread")]
async fn multiranges_are_lists_of_range_structs() {
    let Some(db) = Db::new("nested_multiranges") else {
        return;
    };
    if db.cluster.server_version_num() < 140_000 {
        eprintln!("SKIPPED multiranges: server older than 14");
        return;
    }
    db.psql(MULTIRANGES);
    let sql = "SELECT id, im, dm, nm FROM mr ORDER BY id";
    let [one, batched] = db.export_both(sql, 2).await;
    for out in [&one, &batched] {
        for (c, sub, render) in [
            ("im", DataType::Int32, "{b}::text"),
            ("dm", DataType::Date32, EPOCH_DAYS),
            ("nm", DataType::Utf8, "{b}::text"),
        ] {
            assert_eq!(
                fields_of(item_type(out.data_type(c))),
                range_type(sub),
                "{c}"
            );
            // NULL vs empty, and the number of ranges.
            let mut shapes = our_shapes(out, c, 1);
            shapes.sort();
            let server: Vec<(i32, Option<Vec<i64>>)> = db
                .by_id(&format!(
                    "SELECT id, {c} IS NULL, (SELECT count(*) FROM unnest({c})) FROM mr"
                ))
                .into_iter()
                .map(|(id, r)| {
                    (
                        id,
                        (!pg_bool(&r[0])).then(|| vec![r[1].as_deref().unwrap().parse().unwrap()]),
                    )
                })
                .collect();
            assert_same(&format!("{c} shapes"), &shapes, &server);
            // Each range, in the server's order.
            let mut ours = Vec::new();
            for (id, a) in out.rows(c) {
                let Some(ranges) = list_at(a.as_ref(), 0) else {
                    continue;
                };
                for k in 0..ranges.len() {
                    let r = ranges.slice(k, 1);
                    assert!(!r.is_null(0), "a range inside a multirange is never NULL");
                    ours.push((id, k as i64, range_fields(r.as_ref())));
                }
            }
            let lower = render.replace("{b}", "lower(r)");
            let upper = render.replace("{b}", "upper(r)");
            let server: Vec<(i32, i64, Vec<Option<String>>)> = db
                .by_id(&format!(
                    "SELECT id, ord - 1, isempty(r), lower_inc(r), upper_inc(r), \
                     {lower}, {upper} FROM mr, unnest({c}) WITH ORDINALITY AS u(r, ord) \
                     ORDER BY id, ord"
                ))
                .into_iter()
                .map(|(id, mut r)| {
                    let k = r.remove(0).unwrap().parse().unwrap();
                    (id, k, r)
                })
                .collect();
            assert_same(&format!("{c} ranges"), &ours, &server);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Extension and text-like types
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn hstore_is_a_map_of_utf8_with_null_values() {
    let Some(db) = Db::new("nested_hstore") else {
        return;
    };
    db.psql(
        r#"CREATE EXTENSION hstore;
        CREATE TABLE hs (id int, h hstore);
        INSERT INTO hs VALUES
         (1, ''),
         (2, 'a=>1, b=>NULL'),
         (3, '"k y"=>"v,=>\"q\"", ""=>""'),
         (4, NULL),
         (5, 'é=>😀, z=>"NULL", n=>NULL, x=>"|"');"#,
    );
    let sql = "SELECT id, h FROM hs ORDER BY id";
    let [one, batched] = db.export_both(sql, 2).await;
    for out in [&one, &batched] {
        let DataType::Map(entries, sorted) = out.data_type("h") else {
            panic!("h is {}", out.data_type("h"))
        };
        assert!(!sorted);
        assert_eq!(
            fields_of(entries.data_type()),
            vec![
                ("key".to_owned(), DataType::Utf8, false),
                ("value".to_owned(), DataType::Utf8, true),
            ]
        );
        let mut ours = Vec::new();
        let mut nulls = Vec::new();
        for (id, a) in out.rows("h") {
            nulls.push((id, a.is_null(0)));
            if a.is_null(0) {
                continue;
            }
            let m = a.as_map();
            let e = m.value(0);
            for k in 0..e.len() {
                ours.push((
                    id,
                    leaf(e.column(0).as_ref(), k),
                    leaf(e.column(1).as_ref(), k),
                ));
            }
        }
        ours.sort();
        let mut server: Vec<(i32, Option<String>, Option<String>)> = db
            .by_id("SELECT id, key, value FROM hs, each(h)")
            .into_iter()
            .map(|(id, r)| (id, r[0].clone(), r[1].clone()))
            .collect();
        server.sort();
        assert_same("hstore pairs", &ours, &server);
        let server_nulls: Vec<(i32, bool)> = db
            .by_id("SELECT id, h IS NULL FROM hs")
            .into_iter()
            .map(|(id, r)| (id, pg_bool(&r[0])))
            .collect();
        assert_same("hstore NULLs", &nulls, &server_nulls);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn citext_ltree_xml_and_char_are_utf8() {
    let Some(db) = Db::new("nested_textlike") else {
        return;
    };
    db.psql(
        r#"CREATE EXTENSION citext;
        CREATE EXTENSION ltree;
        CREATE TABLE tl (id int, c citext, l ltree, x xml, ch "char", ca citext[], la ltree[]);
        INSERT INTO tl VALUES
         (1, 'MiXeD Case', 'Top.Science.Astronomy', '<a b="1">text &amp; more</a>', 'a',
             '{A,b}', '{a.b,c}'),
         (2, '', '', '', '', '{""}', '{""}'),
         (3, NULL, NULL, NULL, NULL, NULL, NULL),
         (4, 'é😀', 'a', 'plain text content', (-23)::"char", '{NULL}', '{NULL}'),
         (5, 'x|y', 'a_b.C1', '<?xml version="1.0"?><r/>', '\', '{}', '{}'),
         (6, 'z', 'z', '<r/>', (127)::"char", '{z}', '{z}'),
         (7, 'q', 'q', '<r/>', (-128)::"char", '{q}', '{q}');"#,
    );
    let out = db
        .export("SELECT id, c, l, x, ch, ca, la FROM tl ORDER BY id")
        .await;
    for c in ["c", "l", "x", "ch"] {
        assert_eq!(out.data_type(c), &DataType::Utf8, "{c}");
        assert_eq!(
            out.field_meta(c, META_CAST),
            None,
            "{c} is decoded, not cast"
        );
    }
    assert_eq!(out.data_type("ca"), &list_of(DataType::Utf8));
    assert_eq!(out.data_type("la"), &list_of(DataType::Utf8));
    compare_paths(
        &db,
        &out,
        "tl",
        &[
            ("c", &[], "c::text"),
            ("l", &[], "l::text"),
            // xml as the server's output function renders it (`x::text` would keep a declaration
            // that xml_out and xml_send drop).
            ("x", &[], "x"),
            ("ch", &[], "ch::text"),
        ],
    );
    // psql's rendering of "char": NUL is '', a high-bit byte is \ooo.
    let ch: Vec<Option<String>> = out.cells("ch").into_iter().map(|(_, v)| v).collect();
    assert_eq!(ch[1].as_deref(), Some(""));
    assert_eq!(ch[3].as_deref(), Some("\\351"));
    check_array_column(&db, &out, "tl", "ca", 1, "{e}::text");
    check_array_column(&db, &out, "tl", "la", 1, "{e}::text");
}

/// A new database with the extension `name`, or `None` (SKIPPED) when it is not installed,
/// unless the environment switch `require` is `1` (see `pgarrow_testkit::missing_opt_in`).
fn with_extension(prefix: &str, name: &str, require: &str) -> Option<Db> {
    let db = Db::new(prefix)?;
    if let Err(e) = db.try_psql(&format!("CREATE EXTENSION {name}")) {
        pgarrow_testkit::missing_opt_in(
            require,
            &format!("the {name} extension ({prefix})"),
            &format!("CREATE EXTENSION {name} failed: {e}"),
        );
        return None;
    }
    Some(db)
}

#[tokio::test(flavor = "current_thread")]
async fn postgis_geometry_and_geography_are_iso_wkb_with_their_crs() {
    let Some(db) = with_extension("nested_postgis", "postgis", "PGARROW_REQUIRE_POSTGIS") else {
        return;
    };
    // g declares no SRID: its values' (4326, the first one's) is found before the export.
    // g0's values have none; gp declares 4326, gz 3857 with Z; gg is a geography.
    db.psql(
        "CREATE TABLE geo (id int, g geometry, g0 geometry, gp geometry(Point, 4326),
                           gz geometry(GeometryZ, 3857), gg geography, ga geometry[]);
         INSERT INTO geo VALUES
          (1, NULL, 'POINT(1 2)', 'SRID=4326;POINT(1 2)', 'SRID=3857;POINT Z (1 2 3)',
              'POINT(1 2)', ARRAY['POINT(0 0)'::geometry, NULL]),
          (2, 'SRID=4326;LINESTRING EMPTY', 'LINESTRING EMPTY', NULL,
              'SRID=3857;MULTIPOLYGON Z (((0 0 1,1 0 1,1 1 1,0 0 1)),((5 5 0,6 5 0,6 6 0,5 5 0)))',
              'LINESTRING(0 0, 1 1)', '{}'),
          (3, NULL, NULL, NULL, NULL, NULL, NULL),
          (4, 'SRID=4326;POLYGON((0 0,1 0,1 1,0 0),(0.1 0.1,0.2 0.1,0.2 0.2,0.1 0.1))', NULL,
              'SRID=4326;POINT(-180 90)', NULL, 'SRID=4326;POLYGON((0 0,1 0,1 1,0 0))',
              ARRAY['POINT Z (1 2 3)'::geometry]),
          (5, 'SRID=4326;CIRCULARSTRING(0 0, 1 1, 2 0)', 'POINT EMPTY', 'SRID=4326;POINT EMPTY',
              NULL, 'POINT(-0.5 0.25)', NULL),
          (6, 'SRID=4326;GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 2 2))', NULL, NULL,
              NULL, NULL, NULL);",
    );
    let out = db
        .export("SELECT id, g, g0, gp, gz, gg, ga FROM geo ORDER BY id")
        .await;
    let crs = |srid: &str| format!(r#"{{"crs":"EPSG:{srid}","crs_type":"authority_code"}}"#);
    for (c, meta) in [
        ("g", crs("4326")),
        ("g0", "{}".to_owned()),
        ("gp", crs("4326")),
        ("gz", crs("3857")),
        (
            "gg",
            r#"{"crs":"EPSG:4326","crs_type":"authority_code","edges":"spherical"}"#.to_owned(),
        ),
    ] {
        assert_eq!(out.data_type(c), &DataType::Binary, "{c}");
        assert_eq!(out.field_meta(c, META_EXT), Some("geoarrow.wkb"), "{c}");
        assert_eq!(
            out.field_meta(c, "ARROW:extension:metadata"),
            Some(meta.as_str()),
            "{c}"
        );
        assert_eq!(out.field_meta(c, META_CAST), None, "{c}");
    }
    // The elements of geometry[] carry the extension type too.
    let DataType::List(item) = out.data_type("ga") else {
        panic!("{:?}", out.data_type("ga"));
    };
    assert_eq!(item.data_type(), &DataType::Binary);
    assert_eq!(
        item.metadata().get(META_EXT).map(String::as_str),
        Some("geoarrow.wkb")
    );
    // ISO WKB, little-endian: PostGIS's own ST_AsBinary.
    compare_paths(
        &db,
        &out,
        "geo",
        &[
            ("g", &[], "encode(ST_AsBinary(g, 'NDR'), 'hex')"),
            ("g0", &[], "encode(ST_AsBinary(g0, 'NDR'), 'hex')"),
            ("gp", &[], "encode(ST_AsBinary(gp, 'NDR'), 'hex')"),
            ("gz", &[], "encode(ST_AsBinary(gz, 'NDR'), 'hex')"),
            ("gg", &[], "encode(ST_AsBinary(gg::geometry, 'NDR'), 'hex')"),
        ],
    );
    check_array_column(
        &db,
        &out,
        "geo",
        "ga",
        1,
        "encode(ST_AsBinary({e}, 'NDR'), 'hex')",
    );
}

#[tokio::test(flavor = "current_thread")]
async fn postgis_mixed_srids_and_measures_are_refused_by_name() {
    let Some(db) = with_extension("nested_postgis_bad", "postgis", "PGARROW_REQUIRE_POSTGIS")
    else {
        return;
    };
    db.psql(
        "CREATE TABLE mixed (id int, g geometry);
         INSERT INTO mixed VALUES (1, 'SRID=4326;POINT(1 2)'), (2, 'SRID=3857;POINT(1 2)');
         CREATE TABLE measured (id int, g geometry);
         INSERT INTO measured VALUES (1, 'POINT(1 2)'), (2, 'POINT M (1 2 3)');",
    );
    let e = db
        .export_value_error("SELECT id, g FROM mixed ORDER BY id", Policies::default())
        .await;
    e.assert_at(2, 1, "g");
    e.assert_says("SRID 3857 in a column of SRID 4326");
    let e = db
        .export_value_error(
            "SELECT id, g FROM measured ORDER BY id",
            Policies::default(),
        )
        .await;
    e.assert_at(2, 1, "g");
    e.assert_says("M values");
    e.assert_says("ST_Force2D");
}

/// A new database with pgvector, on the cluster that has it (`PGARROW_PGVECTOR_BIN`), or
/// `None` (SKIPPED) as [`with_extension`].
fn with_pgvector(prefix: &str) -> Option<Db> {
    let db = Db::on(pgarrow_testkit::pgvector_cluster()?, prefix);
    db.psql("CREATE EXTENSION vector");
    Some(db)
}

#[tokio::test(flavor = "current_thread")]
async fn pgvector_vectors_are_float32_lists() {
    let Some(db) = with_pgvector("nested_pgvector") else {
        return;
    };
    db.psql(
        "CREATE TABLE vec (id int, v3 vector(3), v vector);
         INSERT INTO vec VALUES
          (1, '[1,2,3]', '[0.5]'),
          (2, '[-1.5,0,1e-7]', '[1,2,3,4,5]'),
          (3, NULL, NULL),
          (4, '[3.4028235e38,-0,1]', '[-0.0000001,7]');",
    );
    let out = db.export("SELECT id, v3, v FROM vec ORDER BY id").await;
    match out.data_type("v3") {
        DataType::FixedSizeList(f, 3) => assert_eq!(f.data_type(), &DataType::Float32),
        other => panic!("v3 is {other}"),
    }
    assert_eq!(out.data_type("v"), &list_of(DataType::Float32));
    for c in ["v3", "v"] {
        check_vector_elements(&db, &out, "vec", c, "real[]");
    }
}

/// Each element of the pgvector column `c` of `table` against the server's own widening of
/// it to float4 (`cast`, to a `real[]`): bit for bit, NULL rows left out.
fn check_vector_elements(db: &Db, out: &Exported, table: &str, c: &str, cast: &str) {
    let server = db.by_id(&format!(
        "SELECT id, i - 1, ({c}::{cast})[i]::text FROM {table}, \
         generate_subscripts({c}::{cast}, 1) AS i ORDER BY id, i"
    ));
    let mut ours: Vec<(i32, i64, u32)> = Vec::new();
    for (id, a) in out.rows(c) {
        if a.is_null(0) {
            continue;
        }
        let values = match a.data_type() {
            DataType::FixedSizeList(..) => a.as_fixed_size_list().value(0),
            _ => a.as_list::<i32>().value(0),
        };
        for k in 0..values.len() {
            let bits = match values.data_type() {
                DataType::Float16 => values
                    .as_primitive::<arrow_array::types::Float16Type>()
                    .value(k)
                    .to_f32()
                    .to_bits(),
                _ => values
                    .as_primitive::<arrow_array::types::Float32Type>()
                    .value(k)
                    .to_bits(),
            };
            ours.push((id, k as i64, bits));
        }
    }
    let server: Vec<(i32, i64, u32)> = server
        .into_iter()
        .map(|(id, r)| {
            let s = r[1].clone().unwrap();
            let v: f32 = s.parse().unwrap_or_else(|_| panic!("{s}"));
            (id, r[0].as_deref().unwrap().parse().unwrap(), v.to_bits())
        })
        .collect();
    assert_same(c, &ours, &server);
}

#[tokio::test(flavor = "current_thread")]
async fn pgvector_halfvec_is_float16_lists_and_sparsevec_a_struct() {
    let Some(db) = with_pgvector("nested_halfvec") else {
        return;
    };
    db.psql(
        "CREATE TABLE hv (id int, h3 halfvec(3), h halfvec, s5 sparsevec(5), s sparsevec);
         INSERT INTO hv VALUES
          (1, '[1,2,3]', '[0.5]', '{1:1.5,5:-2}/5', '{1:1}/1'),
          (2, '[-1.5,0,0.1]', '[65504,-65504,6e-8,1e-4,-0]', '{}/5', '{3:7,1000:0.25}/100000'),
          (3, NULL, NULL, NULL, NULL),
          (4, '[3,-0,1]', '[7]', '{2:3.4028235e38}/5', '{}/3');",
    );
    let out = db
        .export("SELECT id, h3, h, s5, s FROM hv ORDER BY id")
        .await;
    match out.data_type("h3") {
        DataType::FixedSizeList(f, 3) => assert_eq!(f.data_type(), &DataType::Float16),
        other => panic!("h3 is {other}"),
    }
    assert_eq!(out.data_type("h"), &list_of(DataType::Float16));
    // Each element as the server widens it (halfvec -> vector -> real[] is exact).
    for c in ["h3", "h"] {
        check_vector_elements(&db, &out, "hv", c, "vector::real[]");
    }
    // A sparsevec is {dim, indices (0-based), values}: densified, it is the server's own
    // sparsevec -> vector cast.
    for c in ["s5", "s"] {
        let DataType::Struct(fields) = out.data_type(c) else {
            panic!("{c} is {}", out.data_type(c));
        };
        let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["dim", "indices", "values"], "{c}");
        let server = db.by_id(&format!(
            "SELECT id, vector_dims({c}::vector), array_to_string(({c}::vector)::real[], ',') \
             FROM (SELECT id, {c} FROM hv WHERE {c}::text NOT LIKE '%/100000' OFFSET 0) AS t \
             WHERE {c} IS NOT NULL ORDER BY id"
        ));
        let mut ours = Vec::new();
        for (id, a) in out.rows(c) {
            if a.is_null(0) {
                continue;
            }
            let s = a.as_struct();
            let dim = s.column(0).as_primitive::<Int32Type>().value(0);
            let indices = s.column(1).as_list::<i32>().value(0);
            let values = s.column(2).as_list::<i32>().value(0);
            let indices = indices.as_primitive::<Int32Type>();
            let values = values.as_primitive::<arrow_array::types::Float32Type>();
            if dim >= 10 {
                // Too wide to densify in a test: the one such value, checked by hand.
                assert_eq!((id, dim), (2, 100_000), "{c}");
                assert_eq!(indices.values().as_ref(), [2, 999], "{c}");
                assert_eq!(values.values().as_ref(), [7.0, 0.25], "{c}");
                continue;
            }
            let mut dense = vec![0f32; dim as usize];
            for (k, v) in indices.values().iter().zip(values.values().iter()) {
                dense[*k as usize] = *v;
            }
            let dense: Vec<String> = dense.iter().map(|v| format!("{v:e}")).collect();
            ours.push((id, vec![Some(dim.to_string()), Some(dense.join(","))]));
        }
        let server: Vec<(i32, Vec<Option<String>>)> = server
            .into_iter()
            .map(|(id, r)| {
                let dense: Vec<String> = r[1]
                    .as_deref()
                    .unwrap()
                    .split(',')
                    .map(|v| format!("{:e}", v.parse::<f32>().unwrap()))
                    .collect();
                (id, vec![r[0].clone(), Some(dense.join(","))])
            })
            .collect();
        assert_eq!(ours, server, "{c}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn types_without_a_decoder_are_cast_to_text_whole() {
    let Some(db) = Db::new("nested_cast_text") else {
        return;
    };
    db.psql(
        r#"CREATE TYPE with_inet AS (a int, addr inet);
        CREATE TYPE inetrange AS RANGE (subtype = inet);
        CREATE DOMAIN host AS inet;
        CREATE TABLE nd (id int, ip inet, net cidr, pt point, tv tsvector, b bit(5),
                         vb varbit, mac macaddr, ips inet[], wi with_inet, wis with_inet[],
                         ir inetrange, h host, bx box);
        INSERT INTO nd VALUES
         (1, '192.168.0.1/24', '10.0.0.0/8', '(1,2)', 'a fat cat', B'10101', B'',
             '08:00:2b:01:02:03', '{::1/128,NULL,::ffff:1.2.3.4}', ROW(1, '1.2.3.4'),
             ARRAY[ROW(2, '::1')::with_inet, NULL], '[1.0.0.0,2.0.0.0)', '127.0.0.1', '((0,0),(1,1))'),
         (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
         (3, '::1', '::/0', '(-0.5,1e300)', '', B'00000', B'1', '00:00:00:00:00:00', '{}',
             ROW(NULL, NULL), '{}', 'empty', '::ffff:10.0.0.1', '((1,1),(1,1))');"#,
    );
    let sql = "SELECT id, ip, net, pt, tv, b, vb, mac, ips, wi, wis, ir, h, bx FROM nd ORDER BY id";
    let cols = [
        "ip", "net", "pt", "tv", "b", "vb", "mac", "ips", "wi", "wis", "ir", "h", "bx",
    ];
    let plan = db.describe(sql, &policies()).await;
    assert_eq!(plan.columns[0].cast, None, "id");
    for (c, p) in cols.iter().zip(&plan.columns[1..]) {
        assert_eq!(p.cast, Some("text"), "{c} is cast");
        assert_eq!(p.column.name, *c);
    }
    let out = db.export(sql).await;
    let mut checks: Vec<(&str, &[&str], String)> = Vec::new();
    for c in cols {
        assert_eq!(out.data_type(c), &DataType::Utf8, "{c}");
        let meta = out.field(c).metadata();
        assert_eq!(meta.get(META_CAST).map(String::as_str), Some("text"), "{c}");
        assert!(
            meta.contains_key(META_PG_TYPE),
            "{c} keeps its PostgreSQL type name"
        );
        // The type's output function, as psql shows it (`format('%s')` calls it; `::text`
        // is not always it: `'1.2.3.4'::inet::text` is `1.2.3.4/32`).
        checks.push((
            c,
            &[],
            format!("CASE WHEN {c}::text IS NOT NULL THEN format('%s', {c}) END"),
        ));
    }
    assert_eq!(out.field_meta("ips", META_PG_TYPE), Some("inet[]"));
    let checks: Vec<(&str, &[&str], &str)> = checks
        .iter()
        .map(|(c, p, e)| (*c, *p, e.as_str()))
        .collect();
    compare_paths(&db, &out, "nd", &checks);

    // Anonymous records (pseudo-type record) and arrays of them have no decoder either.
    let sql = "SELECT id, ROW(id, 'a b', NULL::int) AS r, ARRAY[ROW(id, '{x}')] AS ra \
               FROM generate_series(1, 3) AS id";
    let plan = db.describe(sql, &policies()).await;
    let casts: Vec<Option<&str>> = plan.columns.iter().map(|c| c.cast).collect();
    assert_eq!(casts, [None, Some("text"), Some("text")]);
    let out = db.export(sql).await;
    compare_paths(
        &db,
        &out,
        "(SELECT id, ROW(id, 'a b', NULL::int) AS r, ARRAY[ROW(id, '{x}')] AS ra \
          FROM generate_series(1, 3) AS id) AS q",
        &[("r", &[], "r::text"), ("ra", &[], "ra::text")],
    );
}

// ---------------------------------------------------------------------------------------------
// Special values
// ---------------------------------------------------------------------------------------------

const SPECIALS: &str = r#"
CREATE TABLE sv (id int, d date, ts timestamp, tz timestamptz, t time, n numeric(10,2),
                 iv interval);
INSERT INTO sv VALUES
 (1, '2020-01-02', '2020-01-02 03:04:05.123456', '2020-01-02 03:04:05.123456+00', '12:34:56.789',
     12.34, '1 day 02:00:00.5'),
 (2, 'infinity', 'infinity', 'infinity', '24:00', 'NaN', '2562048 hours'),
 (3, '-infinity', '-infinity', '-infinity', '23:59:59.999999', -99999999.99, '-2562048 hours'),
 (4, NULL, NULL, NULL, NULL, NULL, NULL),
 (5, '5874897-12-31', '294276-12-31 23:59:59.999999', '294276-12-31 23:59:59.999999+00', '00:00',
     99999999.99, '2562047 hours'),
 (6, '4714-11-24 BC', '4713-01-01 00:00 BC', '4713-01-01 00:00+00 BC', '00:00:00.000001', -0.01,
     '1 mon -1 day -00:00:00.000001');
"#;

/// The server's rendering of each special-values column, NULL where Arrow has no value.
fn special_reference(db: &Db) -> Vec<(i32, Vec<Option<String>>)> {
    db.by_id(
        "SELECT id,
           CASE WHEN isfinite(d) THEN (d - date '1970-01-01')::text END,
           CASE WHEN isfinite(ts) AND extract(epoch FROM ts) * 1000000 <= 9223372036854775807
                THEN (extract(epoch FROM ts) * 1000000)::bigint::text END,
           CASE WHEN isfinite(tz) AND extract(epoch FROM tz) * 1000000 <= 9223372036854775807
                THEN (extract(epoch FROM tz) * 1000000)::bigint::text END,
           CASE WHEN t < '24:00' THEN (extract(epoch FROM t) * 1000000)::bigint::text END,
           CASE WHEN n <> 'NaN' THEN n::text END,
           CASE WHEN abs(extract(epoch FROM iv - date_trunc('day', iv))) < 9223372036.854775807
                THEN (extract(year FROM iv) * 12 + extract(month FROM iv))::text || ' ' ||
                     extract(day FROM iv)::text || ' ' ||
                     (extract(epoch FROM iv - date_trunc('day', iv)) * 1000000000)::bigint::text
           END
         FROM sv",
    )
}

fn special_ours(out: &Exported) -> Vec<(i32, Vec<Option<String>>)> {
    let cols = ["d", "ts", "tz", "t", "n"].map(|c| out.cells(c));
    let iv: Vec<Option<String>> = out
        .rows("iv")
        .into_iter()
        .map(|(_, a)| {
            let p = a.as_primitive::<IntervalMonthDayNanoType>();
            (!p.is_null(0)).then(|| {
                let v = p.value(0);
                format!("{} {} {}", v.months, v.days, v.nanoseconds)
            })
        })
        .collect();
    (0..out.num_rows())
        .map(|r| {
            let mut v: Vec<Option<String>> = cols.iter().map(|c| c[r].1.clone()).collect();
            v.push(iv[r].clone());
            (cols[0][r].0, v)
        })
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn special_values_are_errors_by_default() {
    let Some(db) = Db::with("nested_special_error", SPECIALS) else {
        return;
    };
    // Date and timestamp infinities are errors only when asked (by default they are the
    // extremes, see `infinity_is_the_extreme_value_by_default`).
    let strict = policies().with_infinity(Infinity::Error);
    for (c, what, policies) in [
        ("d", "infinity", strict),
        ("ts", "infinity", strict),
        ("tz", "infinity", strict),
        ("t", "24:00", policies()),
        ("n", "NaN", policies()),
        ("iv", "interval", policies()),
    ] {
        let e = db
            .export_value_error(&format!("SELECT id, {c} FROM sv ORDER BY id"), policies)
            .await;
        e.assert_at(2, 1, c);
        e.assert_says("row 2");
        e.assert_says(&format!("\"{c}\""));
        assert!(e.display.contains(what), "{c}: {}", e.display);
    }
    // Past Arrow's range without being infinite: 294276 AD (row 5 is the 3rd row here).
    for c in ["ts", "tz"] {
        let e = db
            .export_value_error(
                &format!("SELECT id, {c} FROM sv WHERE id NOT IN (2, 3) ORDER BY id"),
                policies(),
            )
            .await;
        assert_eq!((e.row, e.name.as_str()), (3, c), "{}", e.display);
    }
    // -infinity on its own row.
    let e = db
        .export_value_error("SELECT id, d FROM sv WHERE id <> 2 ORDER BY id", strict)
        .await;
    assert_eq!((e.row, e.name.as_str()), (2, "d"), "{}", e.display);
    e.assert_says("-infinity");
    // Everything else exports exactly.
    let out = db
        .export("SELECT * FROM sv WHERE id IN (1, 4, 6) ORDER BY id")
        .await;
    assert_eq!(out.data_type("d"), &DataType::Date32);
    assert_eq!(out.data_type("ts"), &ts_us());
    assert_eq!(out.data_type("tz"), &ts_utc());
    assert_eq!(out.data_type("t"), &DataType::Time64(TimeUnit::Microsecond));
    assert_eq!(out.data_type("n"), &DataType::Decimal128(10, 2));
    let expected: Vec<(i32, Vec<Option<String>>)> = special_reference(&db)
        .into_iter()
        .filter(|(id, _)| [1, 4, 6].contains(id))
        .collect();
    assert_same("sv exact rows", &special_ours(&out), &expected);
    assert!(out.losses.is_empty());
}

/// By default, date and timestamp ±infinity (plain, in arrays, in composites) are the Arrow
/// type's extreme values, as PostgreSQL stores them: counted, and declared on the field.
#[tokio::test(flavor = "current_thread")]
async fn infinity_is_the_extreme_value_by_default() {
    let Some(db) = Db::with("nested_infinity_extreme", SPECIALS) else {
        return;
    };
    db.psql(
        "CREATE TYPE stay AS (since date, until timestamptz);
         CREATE TABLE st (id int, ds date[], s stay);
         INSERT INTO st VALUES (1, '{2020-01-01,infinity,-infinity,NULL}',
                                   ROW('-infinity', 'infinity')),
                               (2, '{}', ROW('2020-01-01', '2020-01-01 00:00+00'));",
    );
    let out = db
        .export("SELECT id, d, ts, tz FROM sv WHERE id <> 5 ORDER BY id")
        .await;
    let d = out.rows("d");
    let date = |r: usize| d[r].1.as_primitive::<Date32Type>().value(0);
    assert_eq!((date(1), date(2)), (i32::MAX, -i32::MAX));
    for c in ["ts", "tz"] {
        let ts = out.rows(c);
        let v = |r: usize| ts[r].1.as_primitive::<TimestampMicrosecondType>().value(0);
        assert_eq!((v(1), v(2)), (i64::MAX, -i64::MAX), "{c}");
    }
    for c in ["d", "ts", "tz"] {
        assert_eq!(out.loss(c, LossKind::InfinityAsExtreme), 2, "{c}");
        assert_eq!(
            out.field_meta(c, META_INFINITY),
            Some(INFINITY_ENCODING),
            "{c}"
        );
    }
    assert_eq!(out.losses.total(), 6, "{}", out.losses);
    // Finite rows are exact.
    let finite = db
        .export("SELECT id, d, ts, tz FROM sv WHERE id IN (1, 6) ORDER BY id")
        .await;
    assert!(finite.losses.is_empty());

    let out = db.export("SELECT id, ds, s FROM st ORDER BY id").await;
    let ds = out.rows("ds");
    let days: Vec<Option<i32>> = ds[0]
        .1
        .as_list::<i32>()
        .value(0)
        .as_primitive::<Date32Type>()
        .iter()
        .collect();
    assert_eq!(days, [Some(18262), Some(i32::MAX), Some(-i32::MAX), None]);
    let s = out.rows("s");
    let since = child(s[0].1.as_ref(), "since");
    let until = child(s[0].1.as_ref(), "until");
    assert_eq!(since.as_primitive::<Date32Type>().value(0), -i32::MAX);
    assert_eq!(
        until.as_primitive::<TimestampMicrosecondType>().value(0),
        i64::MAX
    );
    assert_eq!(out.loss("ds", LossKind::InfinityAsExtreme), 2);
    assert_eq!(out.loss("s", LossKind::InfinityAsExtreme), 2);
    for c in ["ds", "s"] {
        assert_eq!(
            out.field_meta(c, META_INFINITY),
            Some(INFINITY_ENCODING),
            "{c}"
        );
    }
    // A column without dates or timestamps says nothing about infinity.
    assert!(!out.field("id").metadata().contains_key(META_INFINITY));
}

#[tokio::test(flavor = "current_thread")]
async fn special_values_become_null_and_are_counted() {
    let Some(db) = Db::with("nested_special_null", SPECIALS) else {
        return;
    };
    let null = policies()
        .with_infinity(Infinity::Null)
        .with_special(SpecialValues::Null);
    let out = db.export_under("SELECT * FROM sv ORDER BY id", null).await;
    assert_same(
        "sv under null",
        &special_ours(&out),
        &special_reference(&db),
    );
    let count = |sql: &str| -> u64 { db.value(sql).unwrap().parse().unwrap() };
    let expected = [
        (
            "d",
            LossKind::InfinityToNull,
            count("SELECT count(*) FROM sv WHERE NOT isfinite(d)"),
        ),
        (
            "ts",
            LossKind::InfinityToNull,
            count("SELECT count(*) FROM sv WHERE NOT isfinite(ts)"),
        ),
        (
            "ts",
            LossKind::OutOfRangeToNull,
            count("SELECT count(*) FROM sv WHERE isfinite(ts) AND ts > '294247-01-01'"),
        ),
        (
            "tz",
            LossKind::InfinityToNull,
            count("SELECT count(*) FROM sv WHERE NOT isfinite(tz)"),
        ),
        (
            "tz",
            LossKind::OutOfRangeToNull,
            count("SELECT count(*) FROM sv WHERE isfinite(tz) AND tz > '294247-01-01+00'"),
        ),
        (
            "t",
            LossKind::Time2400ToNull,
            count("SELECT count(*) FROM sv WHERE t = '24:00'"),
        ),
        (
            "n",
            LossKind::NanToNull,
            count("SELECT count(*) FROM sv WHERE n = 'NaN'"),
        ),
        (
            "iv",
            LossKind::OutOfRangeToNull,
            count(
                "SELECT count(*) FROM sv WHERE abs(extract(epoch FROM iv)) > 9223372036.854775807",
            ),
        ),
    ];
    let mut total = 0;
    for (c, kind, n) in expected {
        assert!(n > 0, "{c} {kind:?}: the table has such values");
        assert_eq!(out.loss(c, kind), n, "{c} {kind:?} ({})", out.losses);
        total += n;
    }
    assert_eq!(out.losses.total(), total, "no other losses: {}", out.losses);
}

/// `--out-of-range text`, the exact way out: every column whose type can hold a value Arrow
/// cannot (numeric(p,s) NaN, time 24:00, timestamps past Arrow's range, huge intervals)
/// comes out as the server's text of each value; other columns keep their types; nothing is
/// counted, nothing refused. Arrays and composites of such types are text too.
#[tokio::test(flavor = "current_thread")]
async fn special_values_as_the_servers_exact_text() {
    let Some(db) = Db::with("nested_special_text", SPECIALS) else {
        return;
    };
    db.psql(
        "CREATE TYPE stamped AS (at timestamp, n int);
         CREATE TABLE sa (id int, ts timestamp[], st stamped, plain int[]);
         INSERT INTO sa VALUES (1, '{infinity,\"294276-12-31 23:59:59\"}', ROW('294276-01-01', 1),
                                '{1}'),
                               (2, NULL, NULL, NULL);",
    );
    let text = policies().with_special(SpecialValues::Text);
    // The default refusal names the way out.
    let e = db
        .export_value_error("SELECT id, n FROM sv ORDER BY id", policies())
        .await;
    e.assert_says("--out-of-range text");
    let out = db.export_under("SELECT * FROM sv ORDER BY id", text).await;
    assert_eq!(
        out.data_type("d"),
        &DataType::Date32,
        "date has no such value"
    );
    for c in ["ts", "tz", "t", "n", "iv"] {
        assert_eq!(out.data_type(c), &DataType::Utf8, "{c}");
        let server: Vec<(i32, Option<String>)> = db
            .by_id(&format!("SELECT id, {c}::text FROM sv"))
            .into_iter()
            .map(|(id, v)| (id, v[0].clone()))
            .collect();
        assert_eq!(out.cells(c), server, "{c}");
    }
    assert_eq!(out.cells("n")[1].1.as_deref(), Some("NaN"));
    assert_eq!(out.cells("t")[1].1.as_deref(), Some("24:00:00"));
    // Only the date's infinities are counted (as the extremes, the infinity policy's).
    assert_eq!(
        out.losses.total(),
        out.loss("d", LossKind::InfinityAsExtreme)
    );

    let out = db.export_under("SELECT * FROM sa ORDER BY id", text).await;
    for c in ["ts", "st"] {
        assert_eq!(out.data_type(c), &DataType::Utf8, "{c}");
        let server: Vec<(i32, Option<String>)> = db
            .by_id(&format!("SELECT id, {c}::text FROM sa"))
            .into_iter()
            .map(|(id, v)| (id, v[0].clone()))
            .collect();
        assert_eq!(out.cells(c), server, "{c}");
    }
    assert_eq!(out.data_type("plain"), &list_of(DataType::Int32));
}

#[tokio::test(flavor = "current_thread")]
async fn special_values_clamp_to_the_extremes() {
    let Some(db) = Db::with("nested_special_clamp", SPECIALS) else {
        return;
    };
    db.psql(
        "CREATE TABLE un (id int, v numeric);
         INSERT INTO un VALUES (1, 'Infinity'), (2, '-Infinity'), (3, 'NaN'), (4, 1.5), (5, NULL);",
    );
    let clamp = policies().with_special(SpecialValues::Clamp);
    let out = db.export_under("SELECT * FROM sv ORDER BY id", clamp).await;
    let d = out.rows("d");
    let date = |r: usize| d[r].1.as_primitive::<Date32Type>().value(0);
    // Infinities are the extremes (the infinity policy's default), and a finite value past
    // Arrow's range clamps one short of them, so that the extremes still mean infinity.
    assert_eq!((date(1), date(2)), (i32::MAX, -i32::MAX));
    for c in ["ts", "tz"] {
        let ts = out.rows(c);
        let v = |r: usize| ts[r].1.as_primitive::<TimestampMicrosecondType>().value(0);
        assert_eq!(
            (v(1), v(2), v(4)),
            (i64::MAX, -i64::MAX, i64::MAX - 1),
            "{c}"
        );
        assert_eq!(out.loss(c, LossKind::InfinityAsExtreme), 2, "{c}");
        assert_eq!(out.loss(c, LossKind::OutOfRangeClamped), 1, "{c}");
    }
    let t = out.rows("t");
    assert_eq!(
        t[1].1.as_primitive::<Time64MicrosecondType>().value(0),
        86_399_999_999
    );
    let iv = out.rows("iv");
    let i = |r: usize| iv[r].1.as_primitive::<IntervalMonthDayNanoType>().value(0);
    assert_eq!((i(1).months, i(1).days, i(1).nanoseconds), (0, 0, i64::MAX));
    assert_eq!((i(2).months, i(2).days, i(2).nanoseconds), (0, 0, i64::MIN));
    // NaN has no nearest value: NULL.
    assert!(out.rows("n")[1].1.is_null(0));
    assert_eq!(out.loss("d", LossKind::InfinityAsExtreme), 2);
    assert_eq!(out.loss("t", LossKind::Time2400Clamped), 1);
    assert_eq!(out.loss("n", LossKind::NanToNull), 1);
    assert_eq!(out.loss("iv", LossKind::OutOfRangeClamped), 2);
    assert_eq!(out.losses.total(), 2 + 3 + 3 + 1 + 1 + 2, "{}", out.losses);
    // Rows without special values are exact.
    let expected: Vec<(i32, Vec<Option<String>>)> = special_reference(&db)
        .into_iter()
        .filter(|(id, _)| [1, 4, 6].contains(id))
        .collect();
    let ours: Vec<(i32, Vec<Option<String>>)> = special_ours(&out)
        .into_iter()
        .filter(|(id, _)| [1, 4, 6].contains(id))
        .collect();
    assert_same("sv exact rows under clamp", &ours, &expected);

    // Decimal: ±Infinity clamp to ±(10^p - 1) at the scale, NaN becomes NULL.
    let dec = clamp.with_numeric(NumericTarget::Decimal128(10, 2));
    let out = db
        .export_under("SELECT id, v FROM un ORDER BY id", dec)
        .await;
    assert_eq!(out.data_type("v"), &DataType::Decimal128(10, 2));
    let raw: Vec<Option<i128>> = out
        .rows("v")
        .iter()
        .map(|(_, a)| {
            let p = a.as_primitive::<Decimal128Type>();
            (!p.is_null(0)).then(|| p.value(0))
        })
        .collect();
    assert_eq!(
        raw,
        [
            Some(9_999_999_999),
            Some(-9_999_999_999),
            None,
            Some(150),
            None
        ]
    );
    assert_eq!(out.loss("v", LossKind::InfinityClamped), 2);
    assert_eq!(out.loss("v", LossKind::NanToNull), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn special_values_inside_nested_types() {
    let Some(db) = Db::new("nested_special_nested") else {
        return;
    };
    db.psql(
        "CREATE TYPE shift AS (day date, starts time);
         CREATE TABLE sn (id int, ds date[], s shift, ss shift[]);
         INSERT INTO sn VALUES
          (1, '{2020-01-01,NULL}', ROW('2020-01-01', '08:00'), '{}'),
          (2, '{2020-01-02}', ROW('2020-01-02', '09:00'), NULL),
          (3, '{2020-01-03,infinity,-infinity}', ROW('infinity', '24:00'),
              ARRAY[ROW('2020-01-01', '24:00')::shift, ROW('-infinity', '00:00')::shift]),
          (4, NULL, NULL, '{NULL}');",
    );
    // Errors name the row of the containing value (`ds` holds only infinities, an error
    // when the infinity policy says so).
    let strict = policies().with_infinity(Infinity::Error);
    for (c, row) in [("ds", 3), ("s", 3), ("ss", 3)] {
        let e = db
            .export_value_error(&format!("SELECT id, {c} FROM sn ORDER BY id"), strict)
            .await;
        assert_eq!((e.row, e.name.as_str()), (row, c), "{}", e.display);
    }
    let null = policies()
        .with_infinity(Infinity::Null)
        .with_special(SpecialValues::Null);
    let sql = "SELECT id, ds, s, ss FROM sn ORDER BY id";
    for out in [
        db.export_under(sql, null).await,
        db.export_batched(sql, null, 2).await,
    ] {
        check_array_column(
            &db,
            &out,
            "sn",
            "ds",
            1,
            "CASE WHEN isfinite({e}) THEN ({e} - date '1970-01-01')::text END",
        );
        compare_paths(
            &db,
            &out,
            "sn",
            &[
                ("s", &["#null"], "s::text IS NULL"),
                (
                    "s",
                    &["day"],
                    "CASE WHEN isfinite((s).day) THEN ((s).day - date '1970-01-01')::text END",
                ),
                (
                    "s",
                    &["starts"],
                    "CASE WHEN (s).starts < '24:00' \
                     THEN (extract(epoch FROM (s).starts) * 1000000)::bigint::text END",
                ),
            ],
        );
        assert_eq!(out.loss("ds", LossKind::InfinityToNull), 2);
        assert_eq!(out.loss("s", LossKind::InfinityToNull), 1);
        assert_eq!(out.loss("s", LossKind::Time2400ToNull), 1);
        assert_eq!(out.loss("ss", LossKind::InfinityToNull), 1);
        assert_eq!(out.loss("ss", LossKind::Time2400ToNull), 1);
        assert_eq!(out.losses.total(), 6, "{}", out.losses);
    }
}

// ---------------------------------------------------------------------------------------------
// Numeric targets
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn unconstrained_numeric_targets() {
    let Some(db) = Db::new("nested_numeric_targets") else {
        return;
    };
    db.psql(
        "CREATE TABLE nu (id int, v numeric);
         INSERT INTO nu VALUES (1, 1.5), (2, -123.456), (3, 0.00001234), (4, 12345678901234.5678),
           (5, 'NaN'), (6, 'Infinity'), (7, '-Infinity'), (8, NULL), (9, 0.000), (10, 1000000),
           (11, 0.1), (12, 1e300), (13, -1e-300), (14, 1.0000);
         CREATE TABLE nd (id int, v numeric);
         INSERT INTO nd VALUES (1, 1.5), (2, -123.456), (3, 0.0001), (4, 9999999999999999.9999),
           (5, NULL), (6, -9999999999999999.9999), (7, 0.000);
         CREATE TABLE nbad (id int, v numeric);
         INSERT INTO nbad VALUES (1, 1.5), (2, 1.23456), (3, 10000000000000000), (4, 2),
           (5, 'NaN');",
    );
    // Default: exact text, specials as PostgreSQL prints them.
    let out = db.export("SELECT id, v FROM nu ORDER BY id").await;
    assert_eq!(out.data_type("v"), &DataType::Utf8);
    compare_paths(&db, &out, "nu", &[("v", &[], "v::text")]);
    let text: Vec<Option<String>> = out.cells("v").into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        (text[4].as_deref(), text[5].as_deref(), text[6].as_deref()),
        (Some("NaN"), Some("Infinity"), Some("-Infinity"))
    );
    assert!(out.losses.is_empty());

    // Float64: the server's own float8 conversion, bit for bit; each finite value counted.
    let float = policies().with_numeric(NumericTarget::Float64);
    let out = db
        .export_under("SELECT id, v FROM nu ORDER BY id", float)
        .await;
    assert_eq!(out.data_type("v"), &DataType::Float64);
    let server = db.by_id("SELECT id, v::float8::text FROM nu");
    let ours: Vec<(i32, Option<u64>)> = out
        .rows("v")
        .iter()
        .map(|(id, a)| {
            let p = a.as_primitive::<Float64Type>();
            (*id, (!p.is_null(0)).then(|| p.value(0).to_bits()))
        })
        .collect();
    let server: Vec<(i32, Option<u64>)> = server
        .iter()
        .map(|(id, r)| (*id, r[0].as_deref().map(f64_bits)))
        .collect();
    assert_same("numeric as float64", &ours, &server);
    let finite: u64 = db
        .value("SELECT count(*) FROM nu WHERE v NOT IN ('NaN', 'Infinity', '-Infinity')")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(out.loss("v", LossKind::NumericToFloat64), finite);
    assert_eq!(out.losses.total(), finite);

    // Decimal128(20,4): exact values at the scale.
    let dec = policies().with_numeric(NumericTarget::Decimal128(20, 4));
    let out = db
        .export_under("SELECT id, v FROM nd ORDER BY id", dec)
        .await;
    assert_eq!(out.data_type("v"), &DataType::Decimal128(20, 4));
    compare_paths(&db, &out, "nd", &[("v", &[], "v::numeric(20,4)::text")]);
    assert!(out.losses.is_empty());
    // Too many fractional digits (row 2) or integer digits: an error by default...
    let e = db
        .export_value_error("SELECT id, v FROM nbad ORDER BY id", dec)
        .await;
    e.assert_at(2, 1, "v");
    e.assert_says("1.23456");
    let e = db
        .export_value_error("SELECT id, v FROM nbad WHERE id <> 2 ORDER BY id", dec)
        .await;
    assert_eq!((e.row, e.name.as_str()), (2, "v"), "{}", e.display);
    // ... NULL under Overflow::Null (NaN follows the special-value policy).
    let overflow_null = dec
        .with_numeric_overflow(Overflow::Null)
        .with_special(SpecialValues::Null);
    let out = db
        .export_under("SELECT id, v FROM nbad ORDER BY id", overflow_null)
        .await;
    let raw: Vec<Option<String>> = out.cells("v").into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        raw,
        [
            Some("1.5000".to_owned()),
            None,
            None,
            Some("2.0000".to_owned()),
            None
        ]
    );
    assert_eq!(out.loss("v", LossKind::NumericOverflowToNull), 2);
    assert_eq!(out.loss("v", LossKind::NanToNull), 1);
    assert_eq!(out.losses.total(), 3);
    // NaN alone is still an error when only the overflow policy is relaxed.
    let only_overflow = dec.with_numeric_overflow(Overflow::Null);
    let e = db
        .export_value_error("SELECT id, v FROM nbad ORDER BY id", only_overflow)
        .await;
    assert_eq!(e.row, 5, "{}", e.display);

    // Decimal256(40,5): exact, and ±Infinity clamp to ±(10^40 - 1) at scale 5.
    let wide = policies()
        .with_numeric(NumericTarget::Decimal256(40, 5))
        .with_special(SpecialValues::Clamp);
    let out = db
        .export_under("SELECT id, v FROM nd ORDER BY id", wide)
        .await;
    assert_eq!(out.data_type("v"), &DataType::Decimal256(40, 5));
    compare_paths(&db, &out, "nd", &[("v", &[], "v::numeric(40,5)::text")]);
    let out = db
        .export_under(
            "SELECT id, v FROM nu WHERE v IN ('Infinity', '-Infinity') ORDER BY id",
            wide,
        )
        .await;
    let clamped: Vec<Option<String>> = out.cells("v").into_iter().map(|(_, v)| v).collect();
    let max = format!("{}.{}", "9".repeat(35), "9".repeat(5));
    assert_eq!(clamped, [Some(max.clone()), Some(format!("-{max}"))]);
    assert_eq!(out.loss("v", LossKind::InfinityClamped), 2);
}

// ---------------------------------------------------------------------------------------------
// Text layouts and invalid UTF-8
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn text_layouts_large_and_view_keep_values() {
    let Some(db) = Db::new("nested_text_layouts") else {
        return;
    };
    db.psql(
        r#"CREATE TABLE tx (id int, t text, vc varchar(5), ta text[], n numeric, j jsonb, c "char");
        INSERT INTO tx VALUES
         (1, 'plain', 'abc', '{a,NULL,""}', 1.5, '{"a": [1, 2]}', 'x'),
         (2, '', '', '{}', 'NaN', '"é"', ''),
         (3, NULL, NULL, NULL, NULL, NULL, NULL),
         (4, repeat('long text é😀 ', 200), 'é😀', '{"x y","z"}', -0.000, 'null', 'é');"#,
    );
    let sql = "SELECT id, t, vc, ta, n, j, c FROM tx ORDER BY id";
    let baseline = db.export(sql).await;
    for (layout, dt) in [
        (TextLayout::Large, DataType::LargeUtf8),
        (TextLayout::View, DataType::Utf8View),
    ] {
        let p = policies().with_text(layout);
        for out in [
            db.export_under(sql, p).await,
            db.export_batched(sql, p, 3).await,
        ] {
            for c in ["t", "vc", "n", "j", "c"] {
                assert_eq!(out.data_type(c), &dt, "{c} under {layout:?}");
                assert_eq!(out.cells(c), baseline.cells(c), "{c} under {layout:?}");
            }
            assert_eq!(out.data_type("ta"), &list_of(dt.clone()));
            check_array_column(&db, &out, "tx", "ta", 1, "{e}");
            compare_paths(
                &db,
                &out,
                "tx",
                &[
                    ("t", &[], "t"),
                    ("vc", &[], "vc::text"),
                    ("n", &[], "n::text"),
                    ("j", &[], "j::text"),
                    ("c", &[], "c::text"),
                ],
            );
        }
    }
}

/// A new `SQL_ASCII` database: its text is whatever bytes were stored.
fn sql_ascii_db(prefix: &str) -> Option<Db> {
    let pg = pgarrow_testkit::Cluster::shared()?;
    let name = format!("{prefix}_{}", std::process::id());
    pg.psql(
        "postgres",
        &format!(
            "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name} ENCODING 'SQL_ASCII' \
             TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
        ),
    )
    .unwrap_or_else(|e| panic!("create SQL_ASCII database {name}: {e}"));
    Some(Db::existing(pg, &name))
}

const INVALID_UTF8: &str = r#"
CREATE TYPE labelled AS (n int, label text);
CREATE TABLE bad (id int, t text, ta text[], lc labelled, tm text[][]);
INSERT INTO bad VALUES
 (1, 'ok', '{a,b}', ROW(1, 'fine'), '{{a},{b}}'),
 (2, E'caf\xc3\xa9', '{c,d}', ROW(2, E'\xc3\xa9'), '{{c,d,e}}'),
 (3, convert_from('\xff41'::bytea, 'SQL_ASCII'), ARRAY['e', E'x\xfey', NULL], ROW(3, E'\xff'),
     ARRAY[ARRAY['f', 'g'], ARRAY['h', E'\xff']]),
 (4, NULL, NULL, NULL, NULL),
 (5, E'\xe9t\xe9', '{}', ROW(5, NULL), '{}');
"#;

const INVALID_UTF8_SQL: &str = "SELECT id, t, ta, lc FROM bad ORDER BY id";

/// The stored bytes of `expr` per row, as hex, from the server.
fn raw_hex(db: &Db, expr: &str) -> Vec<(i32, Option<String>)> {
    db.by_id(&format!(
        "SELECT id, encode(convert_to({expr}, 'SQL_ASCII'), 'hex') FROM bad"
    ))
    .into_iter()
    .map(|(id, mut r)| (id, r.remove(0)))
    .collect()
}

/// Checks exports of [`INVALID_UTF8_SQL`] under each invalid-UTF-8 policy; `export` runs one.
async fn check_invalid_utf8<F, Fut>(db: &Db, export: F)
where
    F: Fn(Policies) -> Fut,
    Fut: std::future::Future<Output = Result<Exported, ValueError>>,
{
    let t_hex = raw_hex(db, "t");
    let invalid_rows: Vec<i32> = t_hex
        .iter()
        .filter(|(_, h)| {
            h.as_ref()
                .is_some_and(|h| std::str::from_utf8(&unhex(h)).is_err())
        })
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(invalid_rows, [3, 5], "the table holds invalid UTF-8");

    // Error (default): row and column, and a hint at SQL_ASCII; inside an array or a
    // composite, the row of the containing value.
    let e = export(policies())
        .await
        .expect_err("invalid UTF-8 is an error by default");
    e.assert_at(3, 1, "t");
    e.assert_says("SQL_ASCII");

    // Replace: U+FFFD for each bad sequence, counted per value.
    let replace = policies().with_invalid_utf8(InvalidUtf8::Replace);
    let out = export(replace)
        .await
        .unwrap_or_else(|e| panic!("replace: {}", e.display));
    assert_eq!(out.data_type("t"), &DataType::Utf8);
    let t = out.cells("t");
    let replaced: Vec<(i32, Option<String>)> = t_hex
        .iter()
        .map(|(id, h)| {
            (
                *id,
                h.as_ref()
                    .map(|h| String::from_utf8_lossy(&unhex(h)).into_owned()),
            )
        })
        .collect();
    assert_same("replaced text", &t, &replaced);
    assert_eq!(t[2].1.as_deref(), Some("\u{fffd}A"));
    assert_eq!(t[4].1.as_deref(), Some("\u{fffd}t\u{fffd}"));
    assert_eq!(out.loss("t", LossKind::InvalidUtf8Replaced), 2);
    assert_eq!(out.loss("ta", LossKind::InvalidUtf8Replaced), 1);
    assert_eq!(out.loss("lc", LossKind::InvalidUtf8Replaced), 1);
    assert_eq!(out.losses.total(), 4, "{}", out.losses);
    let ta3 = list_leaves(out.rows("ta")[2].1.as_ref(), 0, 1);
    assert_eq!(ta3[1].1.as_deref(), Some("x\u{fffd}y"));
    assert_eq!(
        at_path(out.rows("lc")[2].1.as_ref(), 0, &["label"]).as_deref(),
        Some("\u{fffd}")
    );
    assert_eq!(
        at_path(out.rows("lc")[1].1.as_ref(), 0, &["label"]).as_deref(),
        Some("é")
    );

    // Binary: every text column as the raw bytes.
    let binary = policies().with_invalid_utf8(InvalidUtf8::Binary);
    let out = export(binary)
        .await
        .unwrap_or_else(|e| panic!("binary: {}", e.display));
    assert_eq!(out.data_type("t"), &DataType::Binary);
    assert_eq!(out.data_type("ta"), &list_of(DataType::Binary));
    let DataType::Struct(lf) = out.data_type("lc") else {
        panic!("lc is not a struct")
    };
    assert_eq!(lf[1].data_type(), &DataType::Binary);
    assert_same("raw text bytes", &out.cells("t"), &t_hex);
    assert_eq!(out.cells("t")[2].1.as_deref(), Some(hex(b"\xffA").as_str()));
    assert!(out.losses.is_empty(), "{}", out.losses);
    check_array_column(
        db,
        &out,
        "bad",
        "ta",
        1,
        "encode(convert_to({e}, 'SQL_ASCII'), 'hex')",
    );
    compare_paths(
        db,
        &out,
        "bad",
        &[
            ("lc", &["n"], "(lc).n::text"),
            (
                "lc",
                &["label"],
                "encode(convert_to((lc).label, 'SQL_ASCII'), 'hex')",
            ),
        ],
    );
}

/// The COPY bytes of `sql` as a `SQL_ASCII` client receives them (psql's client encoding
/// follows the database's when it is not a terminal): the stored bytes, unconverted.
fn sql_ascii_copy(db: &Db, sql: &str) -> Vec<u8> {
    db.cluster
        .copy_binary(&db.name, sql)
        .unwrap_or_else(|e| panic!("COPY of {sql}: {e}"))
}

#[tokio::test(flavor = "current_thread")]
async fn invalid_utf8_policies_decode_sql_ascii_bytes() {
    // The policies where they can act: on the bytes a SQL_ASCII database stores (here planned
    // by the client, the COPY bytes fetched by psql in the database's encoding).
    let Some(db) = sql_ascii_db("nested_sql_ascii_decode") else {
        return;
    };
    db.psql(INVALID_UTF8);
    let bytes = sql_ascii_copy(&db, INVALID_UTF8_SQL);
    assert!(
        bytes.windows(2).any(|w| w == b"\xffA"),
        "psql should fetch the raw bytes"
    );
    for batch_rows in [1000, 2] {
        check_invalid_utf8(&db, |p: Policies| {
            let bytes = &bytes;
            let db = &db;
            async move {
                let plan = db.describe(INVALID_UTF8_SQL, &p).await;
                decode_copy(bytes, plan.columns, p, batch_rows).map_err(|e| decode_value_error(&e))
            }
        })
        .await;
        // Errors inside nested values name the row of the containing value.
        for c in ["ta", "lc", "tm"] {
            let sql = format!("SELECT id, {c} FROM bad ORDER BY id");
            let plan = db.describe(&sql, &policies()).await;
            let e = decode_copy(
                &sql_ascii_copy(&db, &sql),
                plan.columns,
                policies(),
                batch_rows,
            )
            .map(|o| o.num_rows())
            .map_err(|e| decode_value_error(&e))
            .expect_err("invalid UTF-8 inside a nested value is an error by default");
            assert_eq!((e.row, e.name.as_str()), (3, c), "{}", e.display);
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn invalid_utf8_policies_through_the_client() {
    let Some(db) = sql_ascii_db("nested_sql_ascii_client") else {
        return;
    };
    db.psql(INVALID_UTF8);
    check_invalid_utf8(&db, |p: Policies| {
        let db = &db;
        async move {
            db.try_export(INVALID_UTF8_SQL, &under(p))
                .await
                .map_err(|e| value_error(&e))
        }
    })
    .await;
}

const HSTORE_INVALID: &str = r#"
CREATE EXTENSION hstore;
CREATE TABLE hb (id int, h hstore);
INSERT INTO hb VALUES
 (1, 'a=>1, b=>2, c=>3, d=>4'),
 (2, 'e=>5'),
 (3, hstore('k', E'\xff')),
 (4, 'f=>6');
"#;

#[tokio::test(flavor = "current_thread")]
async fn invalid_utf8_in_hstore_is_replaced_and_counted() {
    let Some(db) = sql_ascii_db("nested_sql_ascii_hstore_replace") else {
        return;
    };
    db.psql(HSTORE_INVALID);
    let sql = "SELECT id, h FROM hb ORDER BY id";
    let replace = policies().with_invalid_utf8(InvalidUtf8::Replace);
    let plan = db.describe(sql, &replace).await;
    let out = decode_copy(&sql_ascii_copy(&db, sql), plan.columns, replace, 1000)
        .unwrap_or_else(|e| panic!("replace: {e}"));
    assert_eq!(out.loss("h", LossKind::InvalidUtf8Replaced), 1);
    let m = out.rows("h")[2].1.as_map().value(0);
    assert_eq!(leaf(m.column(0).as_ref(), 0).as_deref(), Some("k"));
    assert_eq!(leaf(m.column(1).as_ref(), 0).as_deref(), Some("\u{fffd}"));
}

#[tokio::test(flavor = "current_thread")]
async fn invalid_utf8_in_hstore_error_names_the_row() {
    let Some(db) = sql_ascii_db("nested_sql_ascii_hstore_error") else {
        return;
    };
    db.psql(HSTORE_INVALID);
    let sql = "SELECT id, h FROM hb ORDER BY id";
    let plan = db.describe(sql, &policies()).await;
    let e = decode_copy(&sql_ascii_copy(&db, sql), plan.columns, policies(), 1000)
        .map(|o| o.num_rows())
        .map_err(|e| decode_value_error(&e))
        .expect_err("invalid UTF-8 in an hstore is an error by default");
    assert_eq!((e.row, e.name.as_str()), (3, "h"), "{}", e.display);
}
