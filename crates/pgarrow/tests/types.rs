//! Integration tests: every type family's edge values, exported by pgarrow and compared with the
//! server's own rendering of the same stored values; stream-level shapes; a Parquet round trip;
//! a cross-check with another reader (pyarrow).
//!
//! Each test uses its own database on the shared cluster; without PostgreSQL it fails, or returns
//! early (printing SKIPPED) when the run allows skipping (`PGARROW_ALLOW_SKIP=1`).
//!
//! Long on purpose: some forty tests, one per type family, each a table of edge values; kept in one
//! binary because each test binary links arrow, parquet and the server harness again, and CI builds
//! them all.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, IntervalMonthDayNanoType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, IntervalUnit, TimeUnit};
use common::{
    Db, Exported, assert_rows_eq, batch_rows, f32_key, f64_key, interval_parts_sql, output_of,
    parse_pg_f32, parse_pg_f64, render, render_json, ts_micros_sql,
};
use pgarrow::policy::{Infinity, WideNumeric};
use pgarrow::{DecodeOptions, ExportOptions, Source};

const META_PG_TYPE: &str = "pgarrow.pg_type";
const META_PG_OID: &str = "pgarrow.pg_oid";
const META_PG_TYPMOD: &str = "pgarrow.pg_typmod";
const META_CAST: &str = "pgarrow.cast";
const META_EXT: &str = "ARROW:extension:name";

fn ts_type(tz: Option<&str>) -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, tz.map(Arc::from))
}

/// Creates `table (id, v ty)` with `values`, exports `SELECT id, v FROM table ORDER BY id`,
/// checks the Arrow type of `v`, and compares every value with the server's `reference`
/// expression over the same table (rendered as [`render`] renders ours).
async fn check_type(
    db: &Db,
    table: &str,
    ty: &str,
    values: &[&str],
    expected: &DataType,
    reference: &str,
) -> Exported {
    assert!(
        values.contains(&"NULL"),
        "{table}: the edge values must include NULL"
    );
    db.table(table, ty, values);
    let out = db
        .export(&format!("SELECT id, v FROM {table} ORDER BY id"))
        .await;
    assert_eq!(out.schema.field(1).data_type(), expected, "{table} ({ty})");
    assert_eq!(out.num_rows(), values.len(), "{table}: row count");
    let ours = out.by_id(1);
    assert!(
        ours.iter().any(|(_, v)| v.is_none()),
        "{table}: NULL was not exported as null"
    );
    assert_rows_eq(
        &format!("{table} ({ty})"),
        &ours,
        &db.reference(table, reference),
    );
    out
}

/// The server's `format_type` of `table.column`.
fn format_type(db: &Db, table: &str, column: &str) -> String {
    db.scalar(&format!(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = '{table}'::regclass AND attname = '{column}'"
    ))
}

// ---------------------------------------------------------------------------------------------
// Integers, oid, bool
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn integers_oid_bool() {
    let Some(db) = Db::new("integers") else {
        return;
    };
    let int8 = [
        "-9223372036854775808",
        "-1",
        "0",
        "1",
        "9223372036854775807",
        "NULL",
    ];
    let oid = [
        "0",
        "1",
        "2147483647",
        "2147483648",
        "4000000000",
        "4294967295",
        "NULL",
    ];
    // (table, type, values, Arrow type, reference): reg* types are oids on the wire.
    let cases: [(&str, &str, &[&str], DataType, &str); 6] = [
        (
            "t_int2",
            "int2",
            &["-32768", "-1", "0", "1", "32767", "NULL"],
            DataType::Int16,
            "v::text",
        ),
        (
            "t_int4",
            "int4",
            &["-2147483648", "-1", "0", "1", "2147483647", "NULL"],
            DataType::Int32,
            "v::text",
        ),
        ("t_int8", "int8", &int8, DataType::Int64, "v::text"),
        ("t_oid", "oid", &oid, DataType::UInt32, "v::text"),
        (
            "t_regclass",
            "regclass",
            &["'pg_class'", "'pg_type'", "NULL"],
            DataType::UInt32,
            "v::oid::text",
        ),
        (
            "t_bool",
            "bool",
            &["true", "false", "NULL"],
            DataType::Boolean,
            "v::text",
        ),
    ];
    for (table, ty, values, expected, reference) in cases {
        check_type(&db, table, ty, values, &expected, reference).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Floats: compare bit patterns (the sign of zero must survive), NaN by is_nan
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn floats_keep_every_bit() {
    let Some(db) = Db::new("floats") else { return };
    let cases: [(&str, &[&str], DataType); 2] = [
        (
            "float4",
            &[
                "'0'",
                "'-0'",
                "'NaN'",
                "'Infinity'",
                "'-Infinity'",
                "'1.17549435e-38'",
                "'1e-45'",
                "'-1e-45'",
                "'3.4028235e38'",
                "'-3.4028235e38'",
                "'0.1'",
                "'-1.5'",
                "NULL",
            ],
            DataType::Float32,
        ),
        (
            "float8",
            &[
                "'0'",
                "'-0'",
                "'NaN'",
                "'Infinity'",
                "'-Infinity'",
                "'2.2250738585072014e-308'",
                "'4.9e-324'",
                "'-2.5e-310'",
                "'1.7976931348623157e308'",
                "'-1.7976931348623157e308'",
                "'0.1'",
                "'-1.5'",
                "NULL",
            ],
            DataType::Float64,
        ),
    ];
    for (ty, values, expected) in cases {
        let table = format!("t_{ty}");
        db.table(&table, ty, values);
        let out = db
            .export(&format!("SELECT id, v FROM {table} ORDER BY id"))
            .await;
        assert_eq!(out.schema.field(1).data_type(), &expected, "{ty}");
        let ours = out.by_id(1);
        let theirs: Vec<(i64, Option<String>)> = db
            .reference(&table, "v::text")
            .into_iter()
            .map(|(id, v)| {
                let key = v.map(|s| match expected {
                    DataType::Float32 => f32_key(parse_pg_f32(&s)),
                    _ => f64_key(parse_pg_f64(&s)),
                });
                (id, key)
            })
            .collect();
        assert_rows_eq(ty, &ours, &theirs);
        // The data really contains a negative zero, and it kept its sign.
        let neg_zero = out.column(1, |a, i| match expected {
            DataType::Float32 => {
                let v = a.as_primitive::<arrow_array::types::Float32Type>().value(i);
                v == 0.0 && v.is_sign_negative()
            }
            _ => {
                let v = a.as_primitive::<arrow_array::types::Float64Type>().value(i);
                v == 0.0 && v.is_sign_negative()
            }
        });
        assert_eq!(
            neg_zero.iter().filter(|v| **v == Some(true)).count(),
            1,
            "{ty}: -0 must arrive with its sign bit"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// numeric
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn numeric_unconstrained_is_exact_text() {
    let Some(db) = Db::new("numeric_text") else {
        return;
    };
    let out = check_type(
        &db,
        "t",
        "numeric",
        &[
            "0",
            "'0.000'",
            "1000000",
            "0.00001234",
            "1.0000",
            "-123.456",
            "'-0.0000'",
            "9999.9999",
            "10000",
            "0.0001",
            "'1e-1000'",
            "'1e-16383'",
            // dscale 16383, the maximum
            "('0.' || repeat('1', 16383))::numeric",
            // more than 38 (and 76) significant digits
            "'12345678901234567890123456789012345678901234567890.0123456789'",
            "'-99999999999999999999999999999999999999999999999999999999999999999999999999999.9'",
            "'1e38'",
            "'-1e-38'",
            "'1e130000'",
            // 32767 base-10000 digit groups, the most an int16 digit count can say
            "repeat('9', 131068)::numeric",
            "('-' || repeat('9', 114000) || '.' || repeat('9', 16383))::numeric",
            "1 / 3::numeric",
            // special values keep their text in an unconstrained column
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "NULL",
        ],
        &DataType::Utf8,
        "v::text",
    )
    .await;
    assert_eq!(out.meta(1, META_PG_TYPE).as_deref(), Some("numeric"));
    // The reference really covers dscale 16383.
    let dscale_max = db.scalar("SELECT count(*) FROM t WHERE scale(v) = 16383");
    assert_eq!(dscale_max, "3");
}

/// `numeric_send` writes the digit-group count in 16 bits and `numeric_recv` reads it back as
/// unsigned (`(uint16) pq_getmsgint(buf, 2)`), so values with 32768 to 36864 groups (up to the
/// largest numeric, 131072 integer and 16383 fractional digits) are valid on the wire.
#[tokio::test(flavor = "current_thread")]
async fn numeric_with_more_than_32767_digit_groups() {
    let Some(db) = Db::new("numeric_huge") else {
        return;
    };
    check_type(
        &db,
        "t",
        "numeric",
        &[
            "repeat('9', 131072)::numeric",
            "(repeat('9', 131068) || '.9999')::numeric",
            // the largest and smallest numerics
            "(repeat('9', 131072) || '.' || repeat('9', 16383))::numeric",
            "('-' || repeat('9', 131072) || '.' || repeat('9', 16383))::numeric",
            "NULL",
        ],
        &DataType::Utf8,
        "v::text",
    )
    .await;
}

/// Edge values of a `numeric(p,s)` column, as SQL literals (the server rounds and checks them).
fn numeric_edge_values(p: i32, s: i32) -> Vec<String> {
    let p_us = p as usize;
    let max = if s >= p {
        format!("0.{}{}", "0".repeat((s - p) as usize), "9".repeat(p_us))
    } else if s < 0 {
        format!("{}{}", "9".repeat(p_us), "0".repeat((-s) as usize))
    } else if s == 0 {
        "9".repeat(p_us)
    } else {
        format!(
            "{}.{}",
            "9".repeat((p - s) as usize),
            "9".repeat(s as usize)
        )
    };
    let digits: String = "1234567890".chars().cycle().take(p_us).collect();
    vec![
        "0".to_owned(),
        format!("'{max}'::numeric"),
        format!("'-{max}'::numeric"),
        format!("'1e{}'::numeric", -s),
        format!("'-1e{}'::numeric", -s),
        // rounds half away from zero on input
        format!("'1.5e{}'::numeric", -s),
        format!("'-2.5e{}'::numeric", -s),
        format!("'{digits}e{}'::numeric", -s),
        format!("'-{digits}e{}'::numeric", -s),
        "NULL".to_owned(),
    ]
}

#[tokio::test(flavor = "current_thread")]
async fn numeric_constrained_is_exact_decimal() {
    let Some(db) = Db::new("numeric_decimal") else {
        return;
    };
    let d128 = DataType::Decimal128;
    let d256 = DataType::Decimal256;
    let mut cases: Vec<(i32, i32, DataType)> = vec![
        (1, 0, d128(1, 0)),
        (12, 2, d128(12, 2)),
        (18, 18, d128(18, 18)),
        (38, 0, d128(38, 0)),
        (38, 8, d128(38, 8)),
        (36, 2, d128(36, 2)),
        (38, 32, d128(38, 32)),
        (39, 5, d256(39, 5)),
        (40, 0, d256(40, 0)),
        (76, 0, d256(76, 0)),
        (76, 20, d256(76, 20)),
        (76, 72, d256(76, 72)),
        // beyond Decimal256: exact text
        (77, 2, DataType::Utf8),
        (1000, 0, DataType::Utf8),
        (1000, 500, DataType::Utf8),
    ];
    if db.version() >= 150_000 {
        cases.extend([
            (5, -2, d128(7, 0)),
            (36, -2, d128(38, 0)),
            (38, -1, d256(39, 0)),
            (75, -1, d256(76, 0)),
            (74, -3, DataType::Utf8),
            (2, 5, d128(5, 5)),
            (1, 34, d128(34, 34)),
            (3, 40, d256(40, 40)),
        ]);
    }
    check_numeric_typmods(&db, &cases).await;
    // Above precision 76 the column is text like an unconstrained one, NaN included.
    check_type(
        &db,
        "t_77_nan",
        "numeric(77,2)",
        &["'NaN'", "'-1.5'", "NULL"],
        &DataType::Utf8,
        "v::text",
    )
    .await;
}

/// `--wide-numeric string`: numeric columns wider than Decimal128 become their exact text
/// (for readers without Decimal256), in arrays too; narrower ones stay decimals.
#[tokio::test(flavor = "current_thread")]
async fn wide_numeric_as_exact_text() {
    let Some(db) = Db::new("numeric_wide") else {
        return;
    };
    let mut options = ExportOptions::default();
    options.policies.wide_numeric = WideNumeric::String;
    let values = numeric_edge_values(50, 10);
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    db.table("w", "numeric(50,10)", &values);
    db.psql(
        "ALTER TABLE w ADD COLUMN a numeric(50,2)[], ADD COLUMN n numeric(38,2);
         UPDATE w SET a = ARRAY[v::numeric(50,2), NULL], n = 1.5;",
    );
    let out = db
        .export_with("SELECT id, v, a, n FROM w ORDER BY id", &options)
        .await;
    assert_eq!(out.schema.field(1).data_type(), &DataType::Utf8);
    assert_eq!(
        out.schema.field(2).data_type(),
        &DataType::List(Arc::new(arrow_schema::Field::new(
            "item",
            DataType::Utf8,
            true
        )))
    );
    assert_eq!(
        out.schema.field(3).data_type(),
        &DataType::Decimal128(38, 2)
    );
    assert_rows_eq(
        "numeric(50,10)",
        &out.by_id(1),
        &db.reference("w", "v::text"),
    );
    assert_rows_eq(
        "numeric(50,2)[]",
        &out.ids()
            .into_iter()
            .zip(out.column(2, render_json))
            .collect::<Vec<_>>(),
        &db.reference("w", "array_to_json(a::text[])"),
    );
}

async fn check_numeric_typmods(db: &Db, cases: &[(i32, i32, DataType)]) {
    for (p, s, expected) in cases {
        let table = format!("t_{p}_{}", s.to_string().replace('-', "m"));
        let ty = format!("numeric({p},{s})");
        let values = numeric_edge_values(*p, *s);
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let out = check_type(db, &table, &ty, &values, expected, "v::text").await;
        assert_eq!(
            out.meta(1, META_PG_TYPE),
            Some(format_type(db, &table, "v")),
            "{ty}"
        );
    }
}

/// Zero in a column whose scale is close to the Arrow maximum: numeric 0 has no digit groups
/// and weight 0.
#[tokio::test(flavor = "current_thread")]
async fn numeric_zero_at_high_scale() {
    let Some(db) = Db::new("numeric_zero") else {
        return;
    };
    let d128 = DataType::Decimal128;
    let d256 = DataType::Decimal256;
    let mut cases = vec![
        (38, 35, d128(38, 35)),
        (38, 38, d128(38, 38)),
        (76, 73, d256(76, 73)),
        (76, 76, d256(76, 76)),
    ];
    if db.version() >= 150_000 {
        cases.push((1, 38, d128(38, 38)));
    }
    for (p, s, expected) in cases {
        let table = format!("z_{p}_{s}");
        let ty = format!("numeric({p},{s})");
        check_type(
            &db,
            &table,
            &ty,
            &["0", "'-0.000'", "'1e-40'", "NULL"],
            &expected,
            "v::text",
        )
        .await;
    }
}

/// Values using the whole precision of a Decimal128/256 whose scale is not a multiple of 4:
/// e.g. numeric(38,10) 9999999999999999999999999999.9999999999 is
/// 99999999999999999999999999999999999999 at scale 10, which Decimal128(38,10) holds.
#[tokio::test(flavor = "current_thread")]
async fn numeric_full_precision_with_unaligned_scale() {
    let Some(db) = Db::new("numeric_unaligned") else {
        return;
    };
    let d128 = DataType::Decimal128;
    let d256 = DataType::Decimal256;
    check_numeric_typmods(
        &db,
        &[
            (38, 10, d128(38, 10)),
            (38, 38, d128(38, 38)),
            (38, 1, d128(38, 1)),
            (37, 3, d128(37, 3)),
            (76, 1, d256(76, 1)),
            (76, 75, d256(76, 75)),
        ],
    )
    .await;
}

/// Every value of precision 4 at scales -4..=4 (-4..=-1 only on PostgreSQL 15+).
#[tokio::test(flavor = "current_thread")]
async fn numeric_precision_4_exhaustive() {
    let Some(db) = Db::new("numeric_sweep") else {
        return;
    };
    let scales: Vec<i32> = if db.version() >= 150_000 {
        (-4..=4).collect()
    } else {
        (0..=4).collect()
    };
    let name = |s: i32| format!("s{}", s.to_string().replace('-', "m"));
    let cols: Vec<String> = scales
        .iter()
        .map(|&s| format!("{} numeric(4,{s})", name(s)))
        .collect();
    let exprs: Vec<String> = scales
        .iter()
        .map(|&s| format!("g * '1e{}'::numeric", -s))
        .collect();
    db.psql(&format!(
        "CREATE TABLE t (id int, {});\n\
         INSERT INTO t SELECT g, {} FROM generate_series(-9999, 9999) g;",
        cols.join(", "),
        exprs.join(", ")
    ));
    let names: Vec<String> = scales.iter().map(|&s| name(s)).collect();
    let out = db
        .export(&format!(
            "SELECT id, {} FROM t ORDER BY id",
            names.join(", ")
        ))
        .await;
    assert_eq!(out.num_rows(), 19_999);
    let server: Vec<Vec<String>> = db
        .lines(&format!(
            "SELECT id, {} FROM t ORDER BY id",
            names
                .iter()
                .map(|n| format!("{n}::text"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .iter()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect();
    assert_eq!(server.len(), 19_999);
    let ids = out.ids();
    for (c, &s) in scales.iter().enumerate() {
        let expected = if s < 0 {
            DataType::Decimal128((4 - s) as u8, 0)
        } else {
            DataType::Decimal128(4, s as i8)
        };
        assert_eq!(out.schema.field(c + 1).data_type(), &expected, "scale {s}");
        let ours = out.rendered(c + 1);
        for (r, row) in server.iter().enumerate() {
            assert_eq!(ids[r].to_string(), row[0], "row order");
            assert_eq!(
                ours[r].as_deref(),
                Some(row[c + 1].as_str()),
                "numeric(4,{s}) for g = {}",
                row[0]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Values with no Arrow representation: errors naming row and column
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn values_without_arrow_value_fail_with_row_and_column() {
    let Some(db) = Db::new("value_errors") else {
        return;
    };
    let mut cases: Vec<(&str, &str, &str)> = vec![
        ("date", "'infinity'", "infinity"),
        ("date", "'-infinity'", "-infinity"),
        ("timestamp", "'infinity'", "infinity"),
        ("timestamp", "'-infinity'", "-infinity"),
        ("timestamptz", "'infinity'", "infinity"),
        ("timestamptz", "'-infinity'", "-infinity"),
        // Valid in PostgreSQL, but beyond i64 microseconds since the Unix epoch.
        ("timestamp", "'294247-01-10 04:00:54.775808'", ""),
        // Finite, but i64::MAX us after 1970: the value that means infinity in Arrow.
        ("timestamp", "'294247-01-10 04:00:54.775807'", ""),
        ("timestamptz", "'294247-01-10 04:00:54.775807+00'", ""),
        ("timestamp", "'294276-12-31 23:59:59.999999'", ""),
        ("timestamptz", "'294276-12-31 23:59:59.999999+00'", ""),
        ("time", "'24:00:00'", "24:00:00"),
        // rounds to 24:00:00 on input
        ("time(3)", "'23:59:59.9999'", "24:00:00"),
        ("interval", "'2562048 hours'", ""),
        ("interval", "'-2562048 hours'", ""),
        ("interval", "'2562047:47:16.854776'", ""),
        ("interval", "'-2562047:47:16.854776'", ""),
        ("numeric(5,2)", "'NaN'", "NaN"),
        ("numeric(40,2)", "'NaN'", "NaN"),
    ];
    if db.version() >= 170_000 {
        cases.push(("interval", "'infinity'", "infinity"));
        cases.push(("interval", "'-infinity'", "-infinity"));
    }
    // Date and timestamp infinities are errors when the infinity policy says so (by default
    // they are the extremes: see the nested tests).
    let mut strict = ExportOptions::default();
    strict.policies.infinity = Infinity::Error;
    for (n, (ty, bad, fragment)) in cases.into_iter().enumerate() {
        let table = format!("e{n}");
        db.table(&table, ty, &["NULL", "NULL", bad, "NULL"]);
        let pg_type = format_type(&db, &table, "v");
        let err = db
            .export_err(&format!("SELECT id, v FROM {table} ORDER BY id"), &strict)
            .await;
        let msg = err.to_string();
        let position = format!("row 3, column 2 \"v\" ({pg_type})");
        assert!(
            msg.contains(&position),
            "{ty} {bad}: {msg:?} lacks {position:?}"
        );
        assert!(
            msg.contains(fragment),
            "{ty} {bad}: {msg:?} lacks {fragment:?}"
        );
        assert_eq!(err.code(), None, "{ty} {bad}: not a server error: {msg}");
        assert_eq!(err.rows_delivered(), Some(0), "{ty} {bad}: {msg}");
    }
    // The last representable values next to those errors export fine.
    let out = check_type(
        &db,
        "ok",
        "interval",
        &[
            "'2562047:47:16.854775'",
            "'-2562047:47:16.854775'",
            "'-2562047 hours'",
            "NULL",
        ],
        &DataType::Interval(IntervalUnit::MonthDayNano),
        &interval_parts_sql("v"),
    )
    .await;
    assert_eq!(out.num_rows(), 4);
}

#[tokio::test(flavor = "current_thread")]
async fn value_error_in_a_later_batch_counts_rows() {
    let Some(db) = Db::new("late_error") else {
        return;
    };
    db.psql(
        "CREATE TABLE t (id int, d date);\n\
         INSERT INTO t SELECT g, DATE '2000-01-01' + g FROM generate_series(1, 2500) g;\n\
         INSERT INTO t VALUES (2501, 'infinity'), (2502, DATE '2000-01-01');",
    );
    let mut options = batch_rows(1000);
    options.policies.infinity = Infinity::Error;
    let err = db
        .export_err("SELECT id, d FROM t ORDER BY id", &options)
        .await;
    let msg = err.to_string();
    assert!(
        msg.contains("row 2501, column 2 \"d\" (date)"),
        "unexpected message {msg:?}"
    );
    assert!(msg.contains("infinity"), "{msg}");
    assert_eq!(err.rows_delivered(), Some(2000), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn text_types() {
    let Some(db) = Db::new("text") else { return };
    let samples = [
        "''",
        "NULL",
        "'a'",
        "'😀'",
        "'漢字かなカナ'",
        "'Привет, мир'",
        "'สวัสดีครับ'",
        "E'tab\\there|pipe\\nnewline\\r\\\\'",
        "'e' || chr(769)",
        "chr(65535) || chr(1114111)",
        "'  trailing spaces  '",
    ];
    check_type(&db, "t_text", "text", &samples, &DataType::Utf8, "v").await;
    check_type(
        &db,
        "t_varchar",
        "varchar(40)",
        &samples,
        &DataType::Utf8,
        "v",
    )
    .await;
    // bpchar is space-padded; `v::text` would strip the padding, its output function does not.
    let bpchar_ref = "CASE WHEN v IS NULL THEN NULL ELSE concat(v) END";
    check_type(
        &db,
        "t_char",
        "char(5)",
        &["'ab'", "''", "'abcde'", "'é😀'", "NULL"],
        &DataType::Utf8,
        bpchar_ref,
    )
    .await;
    let padded = db.reference("t_char", bpchar_ref);
    assert_eq!(
        padded[0].1.as_deref().map(|s| s.chars().count()),
        Some(5),
        "the reference keeps char(n) padding"
    );
    // name: 63 bytes at most; multibyte input is clipped at a character boundary.
    let out = check_type(
        &db,
        "t_name",
        "name",
        &[
            "repeat('n', 63)",
            "repeat('x', 70)",
            "repeat('é', 40)",
            "''",
            "NULL",
        ],
        &DataType::Utf8,
        "v",
    )
    .await;
    let lens: Vec<Option<usize>> = out.column(1, |a, i| a.as_string::<i32>().value(i).len());
    assert_eq!(lens[..3], [Some(63), Some(63), Some(62)]);
}

#[tokio::test(flavor = "current_thread")]
async fn text_very_large_field() {
    let Some(db) = Db::new("text_large") else {
        return;
    };
    // About 10.5 MiB of varied multibyte text between two small rows.
    db.psql(
        "CREATE TABLE t (id int, v text);\n\
         INSERT INTO t VALUES (1, 'before');\n\
         INSERT INTO t SELECT 2, string_agg(md5(i::text) || 'é€😀' || chr(1000 + i % 5000), '' \
         ORDER BY i) FROM generate_series(1, 250000) i;\n\
         INSERT INTO t VALUES (3, 'after');",
    );
    let out = db.export("SELECT id, v FROM t ORDER BY id").await;
    let values = out.column(1, |a, i| a.as_string::<i32>().value(i).to_owned());
    assert_eq!(values.len(), 3);
    let small = db.reference("(SELECT * FROM t WHERE id <> 2) AS small", "v");
    assert_eq!(small[0], (1, values[0].clone()));
    assert_eq!(small[1], (3, values[2].clone()));
    let big = values[1].as_deref().expect("row 2 is not NULL");
    let server_len: usize = db
        .scalar("SELECT octet_length(v) FROM t WHERE id = 2")
        .parse()
        .expect("length");
    assert!(server_len > 10 << 20, "the value is over 10 MiB");
    assert_eq!(big.len(), server_len, "byte length");
    let chars: usize = db
        .scalar("SELECT length(v) FROM t WHERE id = 2")
        .parse()
        .expect("length");
    assert_eq!(big.chars().count(), chars, "character length");
    assert!(!big.contains("$big$"));
    // Exact equality, decided by the server: send our value back.
    let same = db.scalar(&format!("SELECT v = $big${big}$big$ FROM t WHERE id = 2"));
    assert_eq!(same, "t", "the 10 MiB value differs from the stored one");
}

/// Creates a database with a given encoding next to `db` (the shared cluster's databases are
/// UTF8).
fn database_with_encoding(db: &Db, encoding: &str) -> Db {
    let name = format!("{}_{}", db.name, encoding.to_lowercase());
    db.cluster
        .psql(
            "postgres",
            &format!(
                "CREATE DATABASE {name} ENCODING '{encoding}' TEMPLATE template0 \
                 LC_COLLATE 'C' LC_CTYPE 'C'"
            ),
        )
        .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    Db {
        cluster: db.cluster,
        name,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn text_from_other_server_encodings() {
    let Some(db) = Db::new("encodings") else {
        return;
    };
    // LATIN1: the server converts to the client's UTF8.
    let latin1 = database_with_encoding(&db, "LATIN1");
    assert_eq!(
        latin1.scalar("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"),
        "LATIN1"
    );
    check_type(
        &latin1,
        "t",
        "text",
        &[
            "'caf' || chr(233)",
            "chr(255) || chr(160) || chr(128 + 64)",
            "(SELECT string_agg(chr(i), '' ORDER BY i) FROM generate_series(32, 255) i \
              WHERE i < 127 OR i > 159)",
            "NULL",
        ],
        &DataType::Utf8,
        "v",
    )
    .await;

    // SQL_ASCII stores raw bytes. Converting them to the client's UTF8 the server validates
    // them and fails with 22021 on the row holding invalid UTF-8: the export must surface that
    // SQLSTATE with the rows delivered before it (never invalid Utf8 arrays).
    let ascii = database_with_encoding(&db, "SQL_ASCII");
    ascii.psql(
        "CREATE TABLE t (id int, v text);\n\
         INSERT INTO t VALUES (1, 'ok'), (2, NULL), \
         (3, convert_from('\\x41ff42'::bytea, 'SQL_ASCII')), (4, 'x');",
    );
    assert_eq!(
        ascii.scalar("SELECT encode(convert_to(v, 'SQL_ASCII'), 'hex') FROM t WHERE id = 3"),
        "41ff42"
    );
    for (options, delivered) in [
        (ExportOptions::default(), 0),
        (batch_rows(2), 2),
        (batch_rows(1), 2),
    ] {
        let err = ascii
            .export_err("SELECT id, v FROM t ORDER BY id", &options)
            .await;
        let msg = err.to_string();
        match err.code() {
            Some(code) => {
                assert_eq!(code, "22021", "{msg}");
                assert_eq!(err.rows_delivered(), Some(delivered), "{msg}");
            }
            // A decoder that received the raw bytes must name the row and column.
            None => {
                assert!(msg.contains("row 3, column 2 \"v\" (text)"), "{msg}");
                assert!(msg.contains("UTF-8"), "{msg}");
            }
        }
    }
    // Valid rows of the same table still export.
    let out = ascii
        .export("SELECT id, v FROM t WHERE id <> 3 ORDER BY id")
        .await;
    assert_eq!(
        out.by_id(1),
        [
            (1, Some("ok".to_owned())),
            (2, None),
            (4, Some("x".to_owned()))
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// bytea, uuid, json
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn bytea_values() {
    let Some(db) = Db::new("bytea") else { return };
    let out = check_type(
        &db,
        "t",
        "bytea",
        &[
            "''",
            "'\\x00'",
            "'\\x00ff7f80'",
            "'abc'",
            "NULL",
            // 128 KiB of varied bytes
            "(SELECT string_agg(sha256(int4send(i)), ''::bytea ORDER BY i) \
              FROM generate_series(1, 4096) i)",
        ],
        &DataType::Binary,
        "encode(v, 'hex')",
    )
    .await;
    let lens = out.column(1, |a, i| a.as_binary::<i32>().value(i).len());
    assert_eq!(
        lens,
        [Some(0), Some(1), Some(4), Some(3), None, Some(131_072)]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn uuid_values() {
    let Some(db) = Db::new("uuid") else { return };
    let out = check_type(
        &db,
        "t",
        "uuid",
        &[
            "'00000000-0000-0000-0000-000000000000'",
            "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
            "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
            "'{01234567-89ab-cdef-0123-456789abcdef}'",
            "gen_random_uuid()",
            "NULL",
        ],
        &DataType::FixedSizeBinary(16),
        "v::text",
    )
    .await;
    assert_eq!(out.meta(1, META_EXT).as_deref(), Some("arrow.uuid"));
}

#[tokio::test(flavor = "current_thread")]
async fn json_and_jsonb_values() {
    let Some(db) = Db::new("json") else { return };
    let json = [
        "'{\"a\": 1,  \"a\": 2}'",
        "'  {\"k\" : [1, 2.50, true, null]}  '",
        "'\"\\u00e9 é 😀\"'",
        "'null'",
        "'[]'",
        "NULL",
        "(SELECT json_agg(json_build_object('i', i, 's', repeat('é', i % 7))) \
          FROM generate_series(1, 5000) i)",
    ];
    let jsonb = [
        "'{\"b\": 1, \"a\": {\"nested\": [1, {\"x\": \"é😀\"}]}, \"a\": 3}'",
        "'\"\\u00e9\"'",
        "'null'",
        "'1.50'",
        "'{}'",
        "NULL",
        "(SELECT jsonb_agg(jsonb_build_object('i', i, 's', repeat('€', i % 7))) \
          FROM generate_series(1, 5000) i)",
    ];
    // (table, type, values, the row holding JSON null)
    let cases = [
        ("t_json", "json", &json, 3),
        ("t_jsonb", "jsonb", &jsonb, 2),
    ];
    for (table, ty, values, json_null) in cases {
        let out = check_type(&db, table, ty, values, &DataType::Utf8, "v::text").await;
        assert_eq!(out.meta(1, META_EXT).as_deref(), Some("arrow.json"), "{ty}");
        // SQL NULL and JSON null stay distinct.
        assert_eq!(out.rendered(1)[json_null].as_deref(), Some("null"), "{ty}");
    }
}

// ---------------------------------------------------------------------------------------------
// Date and time
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn dates() {
    let Some(db) = Db::new("dates") else { return };
    check_type(
        &db,
        "t",
        "date",
        &[
            "'1999-12-31'",
            "'2000-01-01'",
            "'1970-01-01'",
            "'1969-12-31'",
            "'0001-01-01'",
            "'0001-12-31 BC'",
            "'4714-11-24 BC'",
            "'5874897-12-31'",
            "NULL",
        ],
        &DataType::Date32,
        "v - DATE '1970-01-01'",
    )
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn times() {
    let Some(db) = Db::new("times") else { return };
    let values = [
        "'00:00'",
        "'00:00:00.000001'",
        "'23:59:59.999999'",
        "'12:34:56.789'",
        "'12:34:56.7895'",
        "NULL",
    ];
    let reference = "(extract(epoch FROM v) * 1000000)::int8";
    let time_us = DataType::Time64(TimeUnit::Microsecond);
    check_type(&db, "t", "time", &values, &time_us, reference).await;
    // (23:59:59.999999 would round to 24:00:00 in time(3): see the error test.)
    let values3 = [
        "'00:00'",
        "'23:59:59.999'",
        "'23:59:59.9994'",
        "'12:34:56.7895'",
        "NULL",
    ];
    let t3 = check_type(&db, "t3", "time(3)", &values3, &time_us, reference).await;
    assert_eq!(
        t3.meta(1, META_PG_TYPE).as_deref(),
        Some("time(3) without time zone")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn timestamps() {
    let Some(db) = Db::new("timestamps") else {
        return;
    };
    check_type(
        &db,
        "t",
        "timestamp",
        &[
            "'1970-01-01 00:00:00'",
            "'1969-12-31 23:59:59.999999'",
            "'1900-01-01 00:00:00'",
            "'2000-01-01 00:00:00'",
            "'1999-12-31 23:59:59.999999'",
            "'2262-04-11 23:47:16.854776'",
            "'0001-01-01 00:00:00'",
            "'4713-01-01 00:00:00 BC'",
            "'4714-11-24 00:00:00 BC'",
            // the last finite instant of Arrow Timestamp(us): i64::MAX - 1 us after 1970
            // (i64::MAX itself means infinity)
            "'294247-01-10 04:00:54.775806'",
            "NULL",
        ],
        &ts_type(None),
        &ts_micros_sql("v"),
    )
    .await;

    // typmods 0..6 round differently; the server's rounding is the reference.
    let cols: Vec<String> = (0..=6).map(|p| format!("v{p} timestamp({p})")).collect();
    let literals = [
        "'1999-12-31 23:59:59.999999'",
        "'2001-02-03 04:05:06.5'",
        "'2001-02-03 04:05:06.4444445'",
        "'1969-12-31 23:59:59.5'",
        "'1969-12-31 23:59:58.5'",
        "'0001-01-01 00:00:00.05 BC'",
        "'2000-01-01 00:00:00.123456'",
        "NULL",
    ];
    let rows: Vec<String> = literals
        .iter()
        .enumerate()
        .map(|(i, l)| format!("({}, {})", i + 1, [*l; 7].join(", ")))
        .collect();
    db.psql(&format!(
        "CREATE TABLE tm (id int, {});\nINSERT INTO tm VALUES {};",
        cols.join(", "),
        rows.join(", ")
    ));
    let out = db
        .export("SELECT id, v0, v1, v2, v3, v4, v5, v6 FROM tm ORDER BY id")
        .await;
    for p in 0..=6 {
        let col = p + 1;
        assert_eq!(out.schema.field(col).data_type(), &ts_type(None));
        assert_eq!(
            out.meta(col, META_PG_TYPE),
            Some(format!("timestamp({p}) without time zone"))
        );
        assert_rows_eq(
            &format!("timestamp({p})"),
            &out.by_id(col),
            &db.reference("tm", &ts_micros_sql(&format!("v{p}"))),
        );
    }
    // The data does exercise rounding.
    assert_ne!(out.rendered(1)[0], out.rendered(7)[0]);
}

#[tokio::test(flavor = "current_thread")]
async fn timestamptz_is_utc_whatever_the_session_time_zone() {
    let Some(db) = Db::new("timestamptz") else {
        return;
    };
    db.psql(&format!(
        "ALTER DATABASE {} SET timezone TO 'America/New_York'",
        db.name
    ));
    assert_eq!(db.scalar("SHOW timezone"), "America/New_York");
    let out = check_type(
        &db,
        "t",
        "timestamptz",
        &[
            "'2000-01-01 00:00:00+00'",
            "'1970-01-01 00:00:00 UTC'",
            // local times in New York, across DST changes
            "'1969-12-31 19:00:00'",
            "'2021-03-14 01:59:59.999999'",
            "'2021-03-14 03:00:00'",
            "'2021-11-07 01:30:00-04'",
            "'2021-11-07 01:30:00-05'",
            "'2021-07-01 12:00:00+05:30'",
            // local mean time before 1883: an offset with seconds
            "'1800-01-01 00:00:00'",
            "'4714-11-24 00:00:00+00 BC'",
            "'294247-01-10 04:00:54.775806+00'",
            "NULL",
        ],
        &ts_type(Some("UTC")),
        &ts_micros_sql("v AT TIME ZONE 'UTC'"),
    )
    .await;
    // The instant of a local time depends on the session zone: the export used New York's.
    let ours = out.rendered(1);
    assert_eq!(ours[2], ours[1], "1969-12-31 19:00 New York is the epoch");
    assert_eq!(ours[1].as_deref(), Some("0"));

    let tz0 = check_type(
        &db,
        "t0",
        "timestamptz(0)",
        &["'2021-03-14 01:59:59.5'", "'1969-12-31 18:59:59.5'", "NULL"],
        &ts_type(Some("UTC")),
        &ts_micros_sql("v AT TIME ZONE 'UTC'"),
    )
    .await;
    assert_eq!(
        tz0.meta(1, META_PG_TYPE).as_deref(),
        Some("timestamp(0) with time zone")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn intervals() {
    let Some(db) = Db::new("intervals") else {
        return;
    };
    let out = check_type(
        &db,
        "t",
        "interval",
        &[
            "'1 mon -2 days 03:04:05.000006'",
            "'-1 year -3 mons +2 days -03:04:05.000006'",
            "'1 month'",
            "'30 days'",
            "'24 hours'",
            "'-0.000001 seconds'",
            "'0'",
            "'178000000 years'",
            "'-178000000 years'",
            "'2147483647 days'",
            "'-2147483648 days'",
            "'2562047 hours'",
            "'-2562047 hours'",
            "'2562047:47:16.854775'",
            "'-2562047:47:16.854775'",
            "NULL",
        ],
        &DataType::Interval(IntervalUnit::MonthDayNano),
        &interval_parts_sql("v"),
    )
    .await;
    // '1 month' and '30 days' stay distinct.
    let raw = out.column(1, |a, i| {
        a.as_primitive::<IntervalMonthDayNanoType>().value(i)
    });
    assert_ne!(raw[2], raw[3]);
    assert_eq!(raw[2].map(|v| (v.months, v.days)), Some((1, 0)));
    assert_eq!(raw[3].map(|v| (v.months, v.days)), Some((0, 30)));
    let typed = check_type(
        &db,
        "t2",
        "interval day to second(3)",
        &["'1 day 00:00:01.2345'", "NULL"],
        &DataType::Interval(IntervalUnit::MonthDayNano),
        &interval_parts_sql("v"),
    )
    .await;
    assert_eq!(
        typed.meta(1, META_PG_TYPE),
        Some(format_type(&db, "t2", "v"))
    );
}

// ---------------------------------------------------------------------------------------------
// Types without a binary decoder: cast to text on the server (and timetz, decoded into its text)
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn other_types_arrive_as_their_text() {
    let Some(db) = Db::new("fallback") else {
        return;
    };
    let columns: [(&str, &str, [&str; 3]); 10] = [
        (
            "inet",
            "inet",
            ["'1.2.3.4'", "'::1/128'", "'192.168.0.1/24'"],
        ),
        (
            "cidr",
            "cidr",
            ["'10.0.0.0/8'", "'::ffff:1.2.3.4/128'", "'2001:db8::/32'"],
        ),
        // an array of timetz: its elements have a decoder, the whole array is cast to text
        // (a load gives the array's text back to the input function)
        (
            "ttzs",
            "timetz[]",
            ["'{}'", "'{NULL,12:00:00.5+05:30}'", "'{24:00:00-08}'"],
        ),
        // an array of a type without a decoder
        (
            "inets",
            "inet[]",
            ["'{}'", "'{NULL,1.2.3.4}'", "'[0:1]={::1,10.0.0.0/8}'"],
        ),
        ("pt", "point", ["'(1.5,-2)'", "'(0,-0)'", "'(1e300,NaN)'"]),
        ("tsv", "tsvector", ["'a fat cat'", "''", "'é:1A 😀:2'"]),
        (
            "ttz",
            "timetz",
            [
                "'12:00:00.12+05:30'",
                "'23:59:59.999999-08'",
                "'24:00:00+15:59:59'",
            ],
        ),
        ("bits", "varbit", ["B''", "B'101'", "B'111111111'"]),
        (
            "mac",
            "macaddr",
            [
                "'08:00:2b:01:02:03'",
                "'ff:ff:ff:ff:ff:ff'",
                "'00:00:00:00:00:00'",
            ],
        ),
        (
            "mac8",
            "macaddr8",
            [
                "'08:00:2b:01:02:03:04:05'",
                "'ff:ff:ff:ff:ff:ff:ff:ff'",
                "'00:00:00:ff:fe:00:00:00'",
            ],
        ),
    ];
    let defs: Vec<String> = columns
        .iter()
        .map(|(n, ty, _)| format!("c_{n} {ty}"))
        .collect();
    let rows: Vec<String> = (0..4)
        .map(|r| {
            let vals: Vec<&str> = columns
                .iter()
                .map(|(_, _, v)| if r < 3 { v[r] } else { "NULL" })
                .collect();
            format!("({}, {})", r + 1, vals.join(", "))
        })
        .collect();
    db.psql(&format!(
        "CREATE TABLE t (id int, {});\nINSERT INTO t VALUES {};",
        defs.join(", "),
        rows.join(",\n")
    ));
    let names: Vec<String> = columns.iter().map(|(n, _, _)| format!("c_{n}")).collect();
    let out = db
        .export(&format!(
            "SELECT id, {} FROM t ORDER BY id",
            names.join(", ")
        ))
        .await;
    for (c, name) in names.iter().enumerate() {
        let col = c + 1;
        let field = out.schema.field(col);
        assert_eq!(field.name(), name);
        assert_eq!(field.data_type(), &DataType::Utf8, "{name}");
        // timetz is decoded from its binary form into the same text; the others are cast.
        let cast = (name != "c_ttz").then_some("text");
        assert_eq!(out.meta(col, META_CAST).as_deref(), cast, "{name}");
        assert_eq!(
            out.meta(col, META_PG_TYPE),
            Some(format_type(&db, "t", name)),
            "{name}"
        );
        let oid = db.scalar(&format!(
            "SELECT atttypid FROM pg_attribute WHERE attrelid = 't'::regclass \
             AND attname = '{name}'"
        ));
        assert_eq!(out.meta(col, META_PG_OID), Some(oid), "{name}");
        assert_rows_eq(name, &out.by_id(col), &db.reference("t", &output_of(name)));
    }
    // Duplicate and odd column names survive the positional projection.
    let out = db
        .export("SELECT c_inet AS \"x\", c_inet AS \"x\", c_pt AS \"a b\" FROM t ORDER BY id")
        .await;
    assert_eq!(out.names(), ["x", "x", "a b"]);
    assert_eq!(out.rendered(0), out.rendered(1));
}

/// `money` is an int8 count of the currency's minor unit: a Decimal128(19, s) with the
/// session's fraction digits is exact, plain, in arrays and in composites, down to the int8
/// extremes.
#[tokio::test(flavor = "current_thread")]
async fn money_is_an_exact_decimal() {
    let Some(db) = Db::new("money") else {
        return;
    };
    // The scale is lc_monetary's fraction digits, as the server computes them.
    let scale: i8 = db
        .scalar("SELECT scale('0'::money::numeric)")
        .parse()
        .unwrap();
    let out = check_type(
        &db,
        "m",
        "money",
        &[
            "'12.34'",
            "'-0.01'",
            "'0'",
            "'-92233720368547758.08'",
            "'92233720368547758.07'",
            "NULL",
        ],
        &DataType::Decimal128(19, scale),
        "v::numeric::text",
    )
    .await;
    assert_eq!(out.meta(1, META_CAST), None);
    assert_eq!(out.meta(1, META_PG_TYPE).as_deref(), Some("money"));
    db.psql(
        "CREATE TYPE price AS (amount money, note text);
         CREATE TABLE mc (id int, a money[], c price);
         INSERT INTO mc VALUES (1, '{1.5,NULL,-3}', ROW('2.25', 'x')), (2, NULL, NULL);",
    );
    let out = db.export("SELECT id, a, c FROM mc ORDER BY id").await;
    let DataType::List(item) = out.schema.field(1).data_type() else {
        panic!("money[] is {}", out.schema.field(1).data_type());
    };
    assert_eq!(item.data_type(), &DataType::Decimal128(19, scale));
    let json = |c: usize| out.json_by_id(c);
    assert_rows_eq(
        "money[]",
        &json(1),
        &db.reference("mc", "array_to_json(a::numeric[])"),
    );
    assert_rows_eq(
        "price",
        &json(2),
        &db.reference(
            "mc",
            "(SELECT row_to_json(x) FROM (SELECT (c).amount::numeric AS amount, \
             (c).note AS note) AS x WHERE c IS NOT NULL)",
        ),
    );
}

/// Server expression: a range as the JSON object pgarrow's range Struct renders to.
fn range_json_sql(x: &str) -> String {
    format!(
        "CASE WHEN {x} IS NULL THEN NULL ELSE concat('{{\"lower\":', coalesce(lower({x})::text, 'null'), \
         ',\"upper\":', coalesce(upper({x})::text, 'null'), \
         ',\"lower_inclusive\":', lower_inc({x})::text, ',\"upper_inclusive\":', upper_inc({x})::text, \
         ',\"empty\":', isempty({x})::text, '}}') END"
    )
}

/// Arrays (any dimensions), enums, composites, ranges and multiranges are decoded into nested
/// Arrow types; their values are compared with the server's JSON rendering.
#[tokio::test(flavor = "current_thread")]
async fn arrays_enums_composites_ranges_are_nested() {
    let Some(db) = Db::new("nested") else {
        return;
    };
    db.psql(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');\n\
         ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok';\n\
         CREATE TYPE pair AS (a int, b text);\n\
         CREATE TABLE t (id int, ints int4[], ints2 int4[][], texts text[], nums numeric[], \
                         m mood, p pair, r int4range, mr int4multirange);\n\
         INSERT INTO t VALUES \
         (1, '{}', '{}', '{\"\"}', '{}', 'sad', ROW(1, NULL), '(,5]', '{}'), \
         (2, '{NULL}', '{{1,NULL},{3,4}}', '{NULL}', '{1.50,NaN,NULL}', 'meh', ROW(NULL, NULL), \
             'empty', '{[1,3),[5,7)}'), \
         (3, '{1,NULL,3}', '{{5}}', '{\"a,b\",\"c\\\"d\",\"é😀\"}', '{\"-0.000\",1e-20}', 'happy', \
             ROW(-1, 'a \"b\"'), '[1,)', '{(,)}'), \
         (4, '[0:1]={1,2}', '[5:5][1:1]={{7}}', '{}', NULL, 'ok', NULL, '[-2147483648,2147483647)', NULL), \
         (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    // Row 4's lower bounds are dropped (--array-bounds drop; refused by default).
    let out = db
        .export_under(
            "SELECT id, ints, ints2, texts, nums, m, p, r, mr FROM t ORDER BY id",
            pgarrow::policy::Policies::default()
                .with_array_bounds(pgarrow::policy::ArrayBounds::Drop),
        )
        .await;
    let list_of = |t: &DataType| match t {
        DataType::List(f) => Some(f.data_type().clone()),
        _ => None,
    };
    let ty = |c: usize| out.schema.field(c).data_type().clone();
    assert_eq!(list_of(&ty(1)), Some(DataType::Int32));
    assert_eq!(
        list_of(&ty(2)).as_ref().and_then(list_of),
        Some(DataType::Int32)
    );
    assert_eq!(list_of(&ty(3)), Some(DataType::Utf8));
    assert_eq!(list_of(&ty(4)), Some(DataType::Utf8));
    assert_eq!(
        ty(5),
        DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8))
    );
    assert!(matches!(ty(6), DataType::Struct(_)), "{}", ty(6));
    assert!(matches!(ty(7), DataType::Struct(_)), "{}", ty(7));
    assert!(
        matches!(list_of(&ty(8)), Some(DataType::Struct(_))),
        "{}",
        ty(8)
    );
    for c in 1..=8 {
        assert_eq!(out.meta(c, META_CAST), None, "column {c} is not cast");
    }

    let json = |c: usize| out.json_by_id(c);
    assert_rows_eq(
        "int4[]",
        &json(1),
        &db.reference("t", "array_to_json(ints)"),
    );
    assert_rows_eq(
        "int4[][]",
        &json(2),
        &db.reference("t", "array_to_json(ints2)"),
    );
    assert_rows_eq(
        "text[]",
        &json(3),
        &db.reference("t", "array_to_json(texts)"),
    );
    assert_rows_eq(
        "numeric[]",
        &json(4),
        &db.reference("t", "array_to_json(nums::text[])"),
    );
    assert_rows_eq("enum", &json(5), &db.reference("t", "to_json(m::text)"));
    assert_rows_eq("composite", &json(6), &db.reference("t", "row_to_json(p)"));
    assert_rows_eq("range", &json(7), &db.reference("t", &range_json_sql("r")));
    assert_rows_eq(
        "multirange",
        &json(8),
        &db.reference(
            "t",
            &format!(
                "CASE WHEN mr IS NULL THEN NULL ELSE (SELECT '[' || coalesce(string_agg({}, ',' \
                 ORDER BY o), '') || ']' FROM unnest(mr) WITH ORDINALITY AS u(x, o)) END",
                range_json_sql("x")
            ),
        ),
    );
    // The enum's dictionary is its labels in pg_enum order.
    let labels = db.scalar(
        "SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum \
         WHERE enumtypid = 'mood'::regtype",
    );
    for batch in &out.batches {
        let dict = batch
            .column(5)
            .as_dictionary::<arrow_array::types::Int16Type>();
        let values = dict.values().as_string::<i32>();
        let ours: Vec<&str> = (0..values.len()).map(|i| values.value(i)).collect();
        assert_eq!(ours.join(","), labels);
    }
}

/// The server describes a domain column as its base type and typmod: its values are the
/// base type's, and a table's column is named by its domain in the metadata.
#[tokio::test(flavor = "current_thread")]
async fn domains_arrive_as_their_base_type() {
    let Some(db) = Db::new("domains") else {
        return;
    };
    db.psql(
        "CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);\n\
         CREATE DOMAIN price AS numeric(10,2);\n\
         CREATE DOMAIN addr AS inet;\n\
         CREATE TABLE t (id int, a posint, b price, c addr);\n\
         INSERT INTO t VALUES (1, 1, '-12345678.91', '1.2.3.4'), \
         (2, 2147483647, '0.015', '::1'), (3, NULL, NULL, NULL);",
    );
    let out = db.export("SELECT id, a, b, c FROM t ORDER BY id").await;
    let types: Vec<&DataType> = out.schema.fields().iter().map(|f| f.data_type()).collect();
    assert_eq!(
        types,
        [
            &DataType::Int32,
            &DataType::Int32,
            &DataType::Decimal128(10, 2),
            &DataType::Utf8
        ]
    );
    // The values are the base type's; the metadata names the domain (a table's column), so
    // that `--create` makes the same column.
    for (col, name) in [(1, "a"), (2, "b"), (3, "c")] {
        let domain = db.scalar(&format!(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 't'::regclass AND attname = '{name}'"
        ));
        assert_eq!(out.meta(col, META_PG_TYPE), Some(domain), "{name}");
        assert_rows_eq(name, &out.by_id(col), &db.reference("t", &output_of(name)));
    }
    assert_eq!(out.meta(3, META_CAST).as_deref(), Some("text"));
}

// ---------------------------------------------------------------------------------------------
// Metadata and plans
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn field_metadata_names_the_postgres_type() {
    let Some(db) = Db::new("metadata") else {
        return;
    };
    let columns: &[(&str, DataType)] = &[
        ("boolean", DataType::Boolean),
        ("smallint", DataType::Int16),
        ("integer", DataType::Int32),
        ("bigint", DataType::Int64),
        ("oid", DataType::UInt32),
        ("real", DataType::Float32),
        ("double precision", DataType::Float64),
        ("numeric(12,2)", DataType::Decimal128(12, 2)),
        ("numeric(50,3)", DataType::Decimal256(50, 3)),
        ("numeric", DataType::Utf8),
        ("text", DataType::Utf8),
        ("varchar(20)", DataType::Utf8),
        ("varchar", DataType::Utf8),
        ("char(5)", DataType::Utf8),
        ("name", DataType::Utf8),
        ("bytea", DataType::Binary),
        ("uuid", DataType::FixedSizeBinary(16)),
        ("json", DataType::Utf8),
        ("jsonb", DataType::Utf8),
        ("date", DataType::Date32),
        ("time", DataType::Time64(TimeUnit::Microsecond)),
        ("timestamp", ts_type(None)),
        ("timestamptz", ts_type(Some("UTC"))),
        ("interval", DataType::Interval(IntervalUnit::MonthDayNano)),
        ("inet", DataType::Utf8),
    ];
    let defs: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (ty, _))| format!("c{i} {ty}"))
        .collect();
    db.psql(&format!("CREATE TABLE t ({});", defs.join(", ")));
    let out = db.export("SELECT * FROM t").await;
    assert_eq!(out.num_rows(), 0);
    let catalog: Vec<Vec<String>> = db
        .lines(
            "SELECT attname, format_type(atttypid, atttypmod), atttypid, atttypmod \
             FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 ORDER BY attnum",
        )
        .iter()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect();
    assert_eq!(catalog.len(), columns.len());
    for (i, (ty, expected)) in columns.iter().enumerate() {
        let field = out.schema.field(i);
        let row = &catalog[i];
        assert_eq!(field.name(), &row[0]);
        assert_eq!(field.data_type(), expected, "{ty}");
        assert!(field.is_nullable(), "{ty}");
        assert_eq!(out.meta(i, META_PG_TYPE).as_ref(), Some(&row[1]), "{ty}");
        assert_eq!(out.meta(i, META_PG_OID).as_ref(), Some(&row[2]), "{ty}");
        assert_eq!(out.meta(i, META_PG_TYPMOD).as_ref(), Some(&row[3]), "{ty}");
        let ext = match *ty {
            "uuid" => Some("arrow.uuid"),
            "json" | "jsonb" => Some("arrow.json"),
            _ => None,
        };
        assert_eq!(out.meta(i, META_EXT).as_deref(), ext, "{ty}");
        let cast = (*ty == "inet").then_some("text");
        assert_eq!(out.meta(i, META_CAST).as_deref(), cast, "{ty}");
    }
    assert_eq!(out.meta(7, META_PG_TYPE).as_deref(), Some("numeric(12,2)"));
    assert_eq!(
        out.meta(11, META_PG_TYPE).as_deref(),
        Some("character varying(20)")
    );

    // The plan says the same, without running the query.
    let mut client = db.client().await;
    let plan = client
        .describe(&Source::query("SELECT c7, c11, c24 FROM t"))
        .await
        .expect("plan");
    assert_eq!(plan.schema.fields().len(), 3);
    assert_eq!(plan.columns[0].column.type_name, "numeric(12,2)");
    assert_eq!(plan.columns[0].cast, None);
    assert_eq!(plan.columns[1].column.type_name, "character varying(20)");
    assert_eq!(plan.columns[1].cast, None);
    assert_eq!(plan.columns[2].column.type_name, "inet");
    assert_eq!(plan.columns[2].cast, Some("text"));
    let types: Vec<&DataType> = plan.schema.fields().iter().map(|f| f.data_type()).collect();
    assert_eq!(
        types,
        [
            &DataType::Decimal128(12, 2),
            &DataType::Utf8,
            &DataType::Utf8
        ]
    );
    // inet is cast through its output function, abbrev(inet), not `::text` (which adds /32).
    assert!(
        plan.copy_sql.contains("pg_catalog.abbrev(c3)"),
        "{}",
        plan.copy_sql
    );
    // The plan's schema is the export's.
    let export = client
        .export(
            &Source::query("SELECT c7, c11, c24 FROM t"),
            &ExportOptions::default(),
        )
        .await
        .expect("export");
    assert_eq!(export.schema(), plan.schema);
}

// ---------------------------------------------------------------------------------------------
// Stream shapes
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn zero_rows_keep_the_schema() {
    let Some(db) = Db::new("zero_rows") else {
        return;
    };
    db.psql("CREATE TABLE t (id int, v text, n numeric(12,2), a inet);");
    let out = db.export("SELECT id, v, n, a FROM t WHERE id > 0").await;
    assert_eq!(out.num_rows(), 0);
    assert!(out.batches.iter().all(|b| b.num_rows() == 0));
    let types: Vec<&DataType> = out.schema.fields().iter().map(|f| f.data_type()).collect();
    assert_eq!(
        types,
        [
            &DataType::Int32,
            &DataType::Utf8,
            &DataType::Decimal128(12, 2),
            &DataType::Utf8
        ]
    );
    assert_eq!(out.names(), ["id", "v", "n", "a"]);
    // No rows and no columns.
    let out = db.export("SELECT WHERE false").await;
    assert_eq!(out.schema.fields().len(), 0);
    assert_eq!(out.num_rows(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn zero_columns_count_rows() {
    let Some(db) = Db::new("zero_columns") else {
        return;
    };
    let out = db.export("SELECT FROM generate_series(1, 5)").await;
    assert_eq!(out.schema.fields().len(), 0);
    assert_eq!(out.num_rows(), 5);
    assert!(out.batches.iter().all(|b| b.num_columns() == 0));
    let out = db
        .export_with("SELECT FROM generate_series(1, 5)", &batch_rows(2))
        .await;
    let sizes: Vec<usize> = out.batches.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(sizes, [2, 2, 1]);
}

#[tokio::test(flavor = "current_thread")]
async fn all_null_rows() {
    let Some(db) = Db::new("all_null") else {
        return;
    };
    let types = [
        "bool",
        "int2",
        "int4",
        "int8",
        "oid",
        "float4",
        "float8",
        "numeric(12,2)",
        "numeric(50,2)",
        "numeric",
        "text",
        "char(3)",
        "bytea",
        "uuid",
        "json",
        "jsonb",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "interval",
        "inet",
        "int4[]",
    ];
    let defs: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("c{i} {t}"))
        .collect();
    db.psql(&format!(
        "CREATE TABLE t (id int, {});\nINSERT INTO t (id) SELECT generate_series(1, 3);",
        defs.join(", ")
    ));
    let out = db.export("SELECT * FROM t ORDER BY id").await;
    assert_eq!(out.num_rows(), 3);
    assert_eq!(out.ids(), [1, 2, 3]);
    for (i, ty) in types.iter().enumerate() {
        let nulls: usize = out
            .batches
            .iter()
            .map(|b| b.column(i + 1).null_count())
            .sum();
        assert_eq!(nulls, 3, "{ty}");
        assert!(
            out.column(i + 1, |_, _| ()).iter().all(Option::is_none),
            "{ty}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn sixteen_hundred_columns() {
    let Some(db) = Db::new("wide") else { return };
    const N: usize = 1600;
    // Integer columns with a NULL pattern, and an inet last so that the casting projection is
    // used too.
    let mut select: Vec<String> = (0..N - 1)
        .map(|j| format!("CASE WHEN (g + {j}) % 5 = 0 THEN NULL ELSE g * 10000 + {j} END AS c{j}"))
        .collect();
    select.push(format!("('10.0.0.' || g)::inet AS c{}", N - 1));
    let sql = format!(
        "SELECT {} FROM generate_series(1, 3) g ORDER BY g",
        select.join(", ")
    );
    let out = db.export(&sql).await;
    assert_eq!(out.schema.fields().len(), N);
    assert_eq!(out.num_rows(), 3);
    for j in 0..N - 1 {
        assert_eq!(out.schema.field(j).name(), &format!("c{j}"));
        let values = out.column(j, |a, i| a.as_primitive::<Int32Type>().value(i));
        let expected: Vec<Option<i32>> = (1..=3)
            .map(|g: i32| ((g + j as i32) % 5 != 0).then_some(g * 10000 + j as i32))
            .collect();
        assert_eq!(values, expected, "column c{j}");
    }
    let server: Vec<Option<String>> = db
        .lines(
            "SELECT format('%s', ('10.0.0.' || g)::inet) FROM generate_series(1, 3) g ORDER BY g",
        )
        .into_iter()
        .map(Some)
        .collect();
    assert_eq!(out.rendered(N - 1), server);
    assert_eq!(out.meta(N - 1, META_CAST).as_deref(), Some("text"));
}

#[tokio::test(flavor = "current_thread")]
async fn batches_cut_by_rows_hold_the_same_values() {
    let Some(db) = Db::new("batch_rows") else {
        return;
    };
    db.psql(
        "CREATE TABLE t (id int, s text, n numeric(12,2), ts timestamptz, b bytea, f float8, \
                         a inet);\n\
         INSERT INTO t SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE md5(g::text) END, \
           g * 1.25, TIMESTAMPTZ '2000-01-01 00:00:00+00' + g * INTERVAL '1 minute 1.5 s', \
           CASE WHEN g % 11 = 0 THEN NULL ELSE sha256(int4send(g)) END, g / 3.0, \
           ('10.0.' || (g / 256) || '.' || (g % 256))::inet \
         FROM generate_series(1, 10500) g;",
    );
    let sql = "SELECT * FROM t ORDER BY id";
    let whole = db.export(sql).await;
    assert_eq!(whole.batches.len(), 1, "one batch by default");
    let single = &whole.batches[0];
    assert_eq!(single.num_rows(), 10_500);
    let cut = db.export_with(sql, &batch_rows(1000)).await;
    let sizes: Vec<usize> = cut.batches.iter().map(RecordBatch::num_rows).collect();
    let mut expected = vec![1000; 10];
    expected.push(500);
    assert_eq!(sizes, expected);
    let mut offset = 0;
    for batch in &cut.batches {
        for c in 0..single.num_columns() {
            let part = single.column(c).slice(offset, batch.num_rows());
            assert_eq!(
                batch.column(c).to_data(),
                part.to_data(),
                "column {c} at offset {offset}"
            );
        }
        offset += batch.num_rows();
    }
    // And the values are the server's.
    assert_rows_eq("s", &whole.by_id(1), &db.reference("t", "s"));
    assert_rows_eq("n", &whole.by_id(2), &db.reference("t", "n::text"));
    assert_rows_eq(
        "ts",
        &whole.by_id(3),
        &db.reference("t", &ts_micros_sql("ts AT TIME ZONE 'UTC'")),
    );
    assert_rows_eq("b", &whole.by_id(4), &db.reference("t", "encode(b, 'hex')"));
    assert_rows_eq("a", &whole.by_id(6), &db.reference("t", &output_of("a")));
}

#[tokio::test(flavor = "current_thread")]
async fn batches_cut_by_bytes() {
    let Some(db) = Db::new("batch_bytes") else {
        return;
    };
    let sql = "SELECT g AS id, repeat(chr(65 + g % 26), 1000) AS v FROM generate_series(1, 95) g";
    let options = ExportOptions::default().with_decode(
        DecodeOptions::default()
            .with_batch_rows(pgarrow::DEFAULT_BATCH_ROWS)
            .with_batch_bytes(10_000),
    );
    let out = db.export_with(sql, &options).await;
    assert_eq!(out.num_rows(), 95);
    let sizes: Vec<usize> = out.batches.iter().map(RecordBatch::num_rows).collect();
    let (last, full) = sizes.split_last().expect("batches");
    assert!(
        full.iter().all(|n| (10..=11).contains(n)),
        "batch sizes {sizes:?}"
    );
    assert!((1..=11).contains(last), "batch sizes {sizes:?}");
    assert!(sizes.len() >= 9, "batch sizes {sizes:?}");
    let values = out.column(1, |a, i| a.as_string::<i32>().value(i).to_owned());
    for (g, v) in (1..=95u8).zip(&values) {
        let c = char::from(65 + g % 26);
        assert_eq!(v.as_deref(), Some(c.to_string().repeat(1000).as_str()));
    }
}

// ---------------------------------------------------------------------------------------------
// Parquet round trip and a second reader
// ---------------------------------------------------------------------------------------------

const ALL_TYPES_TABLE: &str = "CREATE TABLE t (
    id int, b bool, i2 int2, i4 int4, i8 int8, o oid, f4 float4, f8 float8,
    n numeric(12,2), nb numeric(40,5), nu numeric, s text, vc varchar(10), ch char(3), nm name,
    bt bytea, u uuid, j json, jb jsonb, d date, tm time, ts timestamp, tz timestamptz,
    iv interval, ip inet);
INSERT INTO t VALUES
 (1, true, -32768, -2147483648, -9223372036854775808, 0, '-0', '-0', '-9999999999.99',
  '-12345678901234567890123456789012345.12345', '0.000', '', 'a', 'a', 'n',
  '', '00000000-0000-0000-0000-000000000000', '{\"a\": 1,  \"a\": 2}', '{}',
  '0001-01-01', '00:00', '0001-01-01 00:00:00', '0001-01-01 00:00:00+00',
  '1 mon -2 days 03:04:05.000006', '1.2.3.4'),
 (2, false, 32767, 2147483647, 9223372036854775807, 4294967295, 'NaN', 'Infinity',
  '9999999999.99', '99999999999999999999999999999999999.99999', '1e-1000', 'é😀漢', 'ab😀',
  'é', repeat('x', 63), '\\x00ff', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '\"\\u00e9\"',
  '{\"k\": [1, \"é\"]}', '9999-12-31', '23:59:59.999999', '9999-12-31 23:59:59.999999',
  '9999-12-31 23:59:59.999999+00', '-1 year -3 mons +2 days -03:04:05.000006', '::1'),
 (3, true, 0, 0, 0, 2147483648, '1e-45', '4.9e-324', '0.01',
  '-0.00001', '12345678901234567890123456789012345678901234567890.5', E'line\\nbreak|pipe',
  '', '', '', sha256('x'), gen_random_uuid(), '[]', 'null', '1969-12-31',
  '12:34:56.789', '1969-12-31 23:59:59.999999', '1969-12-31 23:59:59.999999+00', '30 days',
  '10.0.0.0/8'),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (5, false, -1, -1, -1, 1, '3.4028235e38', '-1.7976931348623157e308', '0.00', '0.00000',
  '-123.456', 'x', 'y', 'abc', 'pg_class', '\\x', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  'null', '1.50', '2000-01-01', '00:00:00.000001', '2000-01-01 00:00:00', '2000-01-01 00:00:00+00',
  '1 month', '::ffff:1.2.3.4');";

/// Exports `t` to a Parquet file with the sink (several batches) and returns the in-memory
/// single-batch export too.
async fn export_to_parquet(db: &Db, path: &std::path::Path) -> RecordBatch {
    let sql = "SELECT * FROM t ORDER BY id";
    let whole = db.export(sql).await;
    assert_eq!(whole.batches.len(), 1);
    let mut client = db.client().await;
    let mut export = client
        .export(&Source::query(sql), &batch_rows(2))
        .await
        .expect("export");
    let schema = export.schema();
    assert_eq!(schema, whole.schema);
    let mut sink = pgarrow_io::Sink::create(
        pgarrow_io::Format::Parquet,
        pgarrow_io::Output::File(path.to_path_buf()),
        &schema,
        &pgarrow_io::SinkOptions::default(),
    )
    .expect("sink");
    let mut batches = 0;
    while let Some(batch) = export.next_batch().await.expect("batch") {
        sink.write(&batch).expect("write");
        batches += 1;
    }
    assert!(batches > 1, "the file is written from several batches");
    sink.finish().expect("finish");
    whole.batches[0].clone()
}

#[tokio::test(flavor = "current_thread")]
async fn parquet_round_trip() {
    let Some(db) = Db::new("parquet") else { return };
    db.psql(ALL_TYPES_TABLE);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.parquet");
    let original = export_to_parquet(&db, &path).await;

    let file = std::fs::File::open(&path).expect("open");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet reader")
        .with_batch_size(1024)
        .build()
        .expect("build");
    let read: Vec<RecordBatch> = reader.map(|b| b.expect("read batch")).collect();
    assert_eq!(read.len(), 1);
    let read = &read[0];
    assert_eq!(read.num_rows(), original.num_rows());
    assert_eq!(read.num_columns(), original.num_columns());
    let schema = original.schema();
    let mut checked_interval = false;
    for (c, field) in schema.fields().iter().enumerate() {
        let back = read.schema().field(c).clone();
        assert_eq!(back.name(), field.name());
        for key in [META_PG_TYPE, META_PG_OID, META_PG_TYPMOD] {
            assert_eq!(
                back.metadata().get(key),
                field.metadata().get(key),
                "{} metadata {key}",
                field.name()
            );
        }
        if let DataType::Interval(IntervalUnit::MonthDayNano) = field.data_type() {
            let s = read.column(c).as_struct();
            let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(names, ["months", "days", "microseconds"]);
            let months = s.column(0).as_primitive::<Int32Type>();
            let days = s.column(1).as_primitive::<Int32Type>();
            let micros = s.column(2).as_primitive::<Int64Type>();
            let iv = original
                .column(c)
                .as_primitive::<IntervalMonthDayNanoType>();
            for r in 0..iv.len() {
                assert_eq!(s.is_null(r), iv.is_null(r), "interval row {r}");
                if iv.is_valid(r) {
                    let v = iv.value(r);
                    assert_eq!(
                        (months.value(r), days.value(r), micros.value(r) * 1000),
                        (v.months, v.days, v.nanoseconds),
                        "interval row {r}"
                    );
                }
            }
            // And against the server.
            let ours: Vec<(i64, Option<String>)> = (0..s.len())
                .map(|r| {
                    let id = i64::from(read.column(0).as_primitive::<Int32Type>().value(r));
                    let v = s.is_valid(r).then(|| {
                        format!("{}|{}|{}", months.value(r), days.value(r), micros.value(r))
                    });
                    (id, v)
                })
                .collect();
            assert_rows_eq(
                "parquet interval",
                &ours,
                &db.reference("t", &interval_parts_sql("iv")),
            );
            checked_interval = true;
            continue;
        }
        assert_eq!(back.data_type(), field.data_type(), "{}", field.name());
        assert_eq!(
            read.column(c).to_data(),
            original.column(c).to_data(),
            "column {}",
            field.name()
        );
    }
    assert!(checked_interval);
}

/// The pyarrow script: prints one line per row, fields separated by tabs, each in a canonical
/// form (strings and bytes as hex, floats as big-endian bit patterns, `N` for null).
const PYARROW_SCRIPT: &str = r#"
import datetime, decimal, struct, sys, uuid
import pyarrow.parquet as pq

table = pq.read_table(sys.argv[1])
names = table.column_names

def canon(name, v):
    if v is None:
        return "N"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "NaN" if v != v else struct.pack(">d", v).hex()
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, str):
        return v.encode("utf-8").hex()
    if isinstance(v, bytes):
        if name == "u":
            return str(uuid.UUID(bytes=v))
        return v.hex()
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return v.isoformat(sep=" ", timespec="microseconds")
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, datetime.time):
        return v.isoformat(timespec="microseconds")
    if isinstance(v, dict):
        return "%d,%d,%d" % (v["months"], v["days"], v["microseconds"])
    raise SystemExit("no canonical form for %s %r" % (name, v))

print("\t".join(names))
for row in table.to_pylist():
    print("\t".join(canon(n, row[n]) for n in names))
"#;

#[tokio::test(flavor = "current_thread")]
async fn pyarrow_reads_the_server_values() {
    let Some(db) = Db::new("pyarrow") else { return };
    let probe = pgarrow_testkit::python()
        .args(["-c", "import pyarrow.parquet"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        pgarrow_testkit::missing(
            "pyarrow",
            &format!(
                "{}: {probe:?}",
                pgarrow_testkit::python::how_to_get_python_parts()
            ),
        );
        return;
    }
    db.psql(ALL_TYPES_TABLE);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.parquet");
    export_to_parquet(&db, &path).await;
    let run = pgarrow_testkit::python()
        .arg("-c")
        .arg(PYARROW_SCRIPT)
        .arg(&path)
        .output()
        .expect("running python3");
    assert!(
        run.status.success(),
        "pyarrow script failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8(run.stdout).expect("utf-8");
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let py_rows: Vec<Vec<String>> = lines
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();

    // The server's canonical text of each column (no tabs in any of them).
    let hex = |e: &str| format!("encode(convert_to(({e})::text, 'UTF8'), 'hex')");
    let reference: HashMap<&str, String> = [
        ("id", "id::text".to_owned()),
        ("b", "b::text".to_owned()),
        ("i2", "i2::text".to_owned()),
        ("i4", "i4::text".to_owned()),
        ("i8", "i8::text".to_owned()),
        ("o", "o::text".to_owned()),
        ("f4", "f4::text".to_owned()),
        ("f8", "f8::text".to_owned()),
        ("n", "n::text".to_owned()),
        ("nb", "nb::text".to_owned()),
        ("nu", hex("nu")),
        ("s", hex("s")),
        ("vc", hex("vc")),
        ("ch", hex("textin(bpcharout(ch))")),
        ("nm", hex("nm")),
        ("bt", "encode(bt, 'hex')".to_owned()),
        ("u", "u::text".to_owned()),
        ("j", hex("j")),
        ("jb", hex("jb")),
        ("d", "to_char(d, 'YYYY-MM-DD')".to_owned()),
        (
            "tm",
            "to_char(DATE '2000-01-01' + tm, 'HH24:MI:SS.US')".to_owned(),
        ),
        ("ts", "to_char(ts, 'YYYY-MM-DD HH24:MI:SS.US')".to_owned()),
        (
            "tz",
            "to_char(tz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')".to_owned(),
        ),
        (
            "iv",
            format!("replace({}, '|', ',')", interval_parts_sql("iv")),
        ),
        // The output function, as psql shows it (`abbrev`: `::text` would add `/32`).
        ("ip", hex("abbrev(ip)")),
    ]
    .into_iter()
    .collect();
    let mut exprs = Vec::new();
    for name in &header {
        let e = reference
            .get(name)
            .unwrap_or_else(|| panic!("no reference for column {name}"));
        exprs.push(format!("coalesce(({e})::text, 'N')"));
    }
    let server_rows: Vec<Vec<String>> = db
        .lines(&format!(
            "SET extra_float_digits = 3;\n\
             SELECT concat_ws(E'\\t', {}) FROM t ORDER BY id;",
            exprs.join(", ")
        ))
        .iter()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    assert_eq!(py_rows.len(), server_rows.len());
    assert_eq!(py_rows.len(), 5);
    for (py, server) in py_rows.iter().zip(&server_rows) {
        assert_eq!(py.len(), header.len());
        assert_eq!(server.len(), header.len());
        for (c, name) in header.iter().enumerate() {
            let theirs = match (*name, server[c].as_str()) {
                (_, "N") => "N".to_owned(),
                ("f8", s) => match f64_key(parse_pg_f64(s)).strip_prefix("f64:") {
                    Some(bits) => bits.to_owned(),
                    None => "NaN".to_owned(),
                },
                ("f4", s) => {
                    // pyarrow widens float4 to a Python float (f64) exactly.
                    let v = f64::from(parse_pg_f32(s));
                    match f64_key(v).strip_prefix("f64:") {
                        Some(bits) => bits.to_owned(),
                        None => "NaN".to_owned(),
                    }
                }
                (_, s) => s.to_owned(),
            };
            assert_eq!(
                py[c], theirs,
                "pyarrow vs server: column {name}, row id {}",
                server[0]
            );
        }
    }
}

#[test]
fn helpers_render_like_numeric_out() {
    use common::scaled_decimal;
    assert_eq!(scaled_decimal("0", 2), "0.00");
    assert_eq!(scaled_decimal("-5", 3), "-0.005");
    assert_eq!(scaled_decimal("12345", 2), "123.45");
    assert_eq!(scaled_decimal("-12345", 0), "-12345");
    assert_eq!(scaled_decimal("123", -2), "12300");
    assert_eq!(scaled_decimal("0", -2), "0");
    assert_eq!(render(&arrow_array::Int32Array::from(vec![-7]), 0), "-7");
}
