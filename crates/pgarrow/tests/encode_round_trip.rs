//! PostgreSQL -> Arrow (pgarrow's export) -> binary COPY (pgarrow-encode) -> PostgreSQL,
//! compared by the server's rendering on both sides; Arrow types other writers choose; values
//! that do not fit, named by column and row.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, Decimal128Array, DictionaryArray, Int64Array, LargeStringArray, RecordBatch,
    StringArray, TimestampNanosecondArray, types::Int8Type,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use pgarrow::{Client, ExportOptions, Source};
use pgarrow_encode::{HEADER, RowEncoder, TRAILER};
use pgarrow_testkit::Cluster;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A new database with `sql` run in it, and its URL.
fn database(prefix: &str, sql: &str) -> Option<(&'static Cluster, String, String)> {
    let pg = Cluster::shared()?;
    let db = pg.create_database(prefix).unwrap();
    pg.psql(&db, sql).unwrap();
    let url = pg.url(&db);
    Some((pg, db, url))
}

/// Loads `batches` into `table` with one binary COPY; the server's row count, or the error
/// (the encoder's, or the server's as text).
async fn load(url: &str, table: &str, batches: &[RecordBatch]) -> Result<u64, String> {
    let mut client = Client::connect(url).await.unwrap();
    let plan = client
        .describe(&Source::table(table).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let schema = batches[0].schema();
    let targets = plan.columns.iter().map(|c| &c.column);
    let encoder = RowEncoder::new(targets, &plan.catalog, &schema).map_err(|e| e.to_string())?;
    let mut out = HEADER.to_vec();
    let mut row = 0;
    for b in batches {
        encoder
            .encode(b, row, &mut out)
            .map_err(|e| e.to_string())?;
        row += b.num_rows() as u64;
    }
    out.extend_from_slice(TRAILER);
    let conn = client.connection();
    let mut copy = conn
        .copy_in(&format!("COPY {table} FROM STDIN (FORMAT binary)"))
        .await
        .map_err(|e| e.to_string())?;
    copy.write(&out).await.map_err(|e| e.to_string())?;
    copy.finish().await.map_err(|e| e.to_string())
}

/// Every row of `table` as the server renders it, in `id` order.
fn rendered(pg: &Cluster, db: &str, table: &str) -> String {
    pg.psql(
        db,
        &format!("SELECT _row::text FROM {table} _row ORDER BY id"),
    )
    .unwrap()
}

const TYPES: &str = include_str!("../../../testdata/load/types.sql");

#[test]
fn every_supported_type_comes_back_the_same() {
    let Some((pg, db, url)) = database("encode_types", TYPES) else {
        return;
    };
    // Small batches: rows cross batch boundaries, row numbers count across them.
    let mut options = ExportOptions::default();
    options.decode.batch_rows = 2;
    let reader = pgarrow::blocking::export(&url, Source::table("src").unwrap(), &options).unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert!(batches.len() >= 3);
    let rows = runtime().block_on(load(&url, "dst", &batches)).unwrap();
    assert_eq!(rows, 5);
    let (src, dst) = (rendered(pg, &db, "src"), rendered(pg, &db, "dst"));
    assert_eq!(dst, src);
    assert!(src.contains("-infinity") && src.contains("NaN"), "{src}");
}

#[test]
fn money_keeps_its_whole_range() {
    let Some((pg, db, url)) = database(
        "encode_money",
        "SET lc_monetary = 'C';
         CREATE TABLE src (id int, m money);
         INSERT INTO src VALUES (1, '-92233720368547758.08'), (2, '92233720368547758.07'),
             (3, '-0.01'), (4, NULL);
         CREATE TABLE dst (LIKE src);",
    ) else {
        return;
    };
    let reader =
        pgarrow::blocking::export(&url, Source::table("src").unwrap(), &Default::default())
            .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let rows = runtime().block_on(load(&url, "dst", &batches)).unwrap();
    assert_eq!(rows, 4);
    let (src, dst) = (rendered(pg, &db, "src"), rendered(pg, &db, "dst"));
    assert_eq!(dst, src);
    assert!(src.contains("92,233,720,368,547,758.08"), "{src}");
}

#[test]
fn arrow_types_other_writers_choose() {
    let Some((pg, db, url)) = database(
        "encode_peers",
        "CREATE TYPE mood AS ENUM ('sad', 'ok');
         CREATE TABLE dst (id int8, ts timestamp, tz timestamptz, t text, m mood, n numeric(12,2),
                           small int2);",
    ) else {
        return;
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        Field::new(
            "tz",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())),
            true,
        ),
        Field::new("t", DataType::LargeUtf8, true),
        Field::new(
            "m",
            DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)),
            true,
        ),
        Field::new("n", DataType::Decimal128(10, 3), true),
        Field::new("small", DataType::Int64, true),
    ]));
    let moods: DictionaryArray<Int8Type> = vec!["ok", "sad", "ok"].into_iter().collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3])),
        // Nanoseconds that are whole microseconds load exactly (others are refused by
        // default: see the encoder's tests and the CLI's --nanoseconds).
        Arc::new(TimestampNanosecondArray::from(vec![
            Some(1_704_067_200_000_002_000),
            None,
            Some(0),
        ])),
        Arc::new(
            TimestampNanosecondArray::from(vec![Some(1_704_067_200_000_000_000), Some(0), None])
                .with_timezone("+02:00"),
        ),
        Arc::new(LargeStringArray::from(vec![Some("large"), None, Some("")])),
        Arc::new(moods),
        Arc::new(
            Decimal128Array::from(vec![Some(12_340), Some(-5), None])
                .with_precision_and_scale(10, 3)
                .unwrap(),
        ),
        Arc::new(Int64Array::from(vec![Some(-32768), Some(32767), Some(0)])),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    // -0.005 does not fit numeric(12,2): refused, naming column, row and value.
    let e = runtime()
        .block_on(load(&url, "dst", std::slice::from_ref(&batch)))
        .unwrap_err();
    assert!(
        e.contains("column \"n\" (numeric(12,2)), row 2") && e.contains("-0.005"),
        "{e}"
    );
    let fixed: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .enumerate()
        .map(|(i, c)| match i {
            5 => Arc::new(
                Decimal128Array::from(vec![Some(12_340), Some(-50), None])
                    .with_precision_and_scale(10, 3)
                    .unwrap(),
            ) as ArrayRef,
            _ => c.clone(),
        })
        .collect();
    let batch = RecordBatch::try_new(schema, fixed).unwrap();
    assert_eq!(runtime().block_on(load(&url, "dst", &[batch])).unwrap(), 3);
    let got = pg
        .psql(
            &db,
            "SET TimeZone = 'UTC'; SELECT id, ts, tz, t, m, n, small FROM dst ORDER BY id",
        )
        .unwrap();
    assert_eq!(
        got,
        "1|2024-01-01 00:00:00.000002|2024-01-01 00:00:00+00|large|ok|12.34|-32768\n\
         2||1970-01-01 00:00:00+00||sad|-0.05|32767\n\
         3|1970-01-01 00:00:00|||ok||0\n"
    );
}

#[test]
fn values_that_do_not_fit_are_named_and_load_nothing() {
    let Some((pg, db, url)) = database(
        "encode_refusals",
        "CREATE TYPE mood AS ENUM ('sad', 'ok');
         CREATE TABLE dst (id int8, small int2, m mood, nm name, ts timestamp, n text NOT NULL);
         INSERT INTO dst VALUES (0, 0, 'ok', 'x', NULL, 'before');",
    ) else {
        return;
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("small", DataType::Int64, true),
        Field::new("m", DataType::Utf8, true),
        Field::new("nm", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new("n", DataType::Utf8, true),
    ]));
    let good = || -> Vec<ArrayRef> {
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["sad", "ok"])),
            Arc::new(StringArray::from(vec!["a", "b"])),
            Arc::new(arrow_array::TimestampSecondArray::from(vec![0, 1])),
            Arc::new(StringArray::from(vec![Some("x"), Some("y")])),
        ]
    };
    let cases: Vec<(usize, ArrayRef, &[&str])> = vec![
        (
            1,
            Arc::new(Int64Array::from(vec![1, 40_000])),
            &[
                "column \"small\" (smallint), row 2",
                "40000 is out of its range",
            ],
        ),
        (
            2,
            Arc::new(StringArray::from(vec!["sad", "glad"])),
            &["column \"m\" (mood), row 2", "\"glad\" is not a label"],
        ),
        (
            3,
            Arc::new(StringArray::from(vec!["a".repeat(64), "b".into()])),
            &[
                "column \"nm\" (name), row 1",
                "longer than a name's 63 bytes",
            ],
        ),
        (
            4,
            Arc::new(arrow_array::TimestampSecondArray::from(vec![
                0,
                9_300_000_000_000,
            ])),
            &[
                "column \"ts\" (timestamp without time zone), row 2",
                "outside timestamp's range",
            ],
        ),
        // The server's own check (its COPY line number is the row's, from 1).
        (
            5,
            Arc::new(StringArray::from(vec![Some("x"), None])),
            &["null value in column \"n\"", "23502"],
        ),
    ];
    for (column, array, needles) in cases {
        let mut columns = good();
        columns[column] = array;
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let e = runtime().block_on(load(&url, "dst", &[batch])).unwrap_err();
        for n in needles {
            assert!(e.contains(n), "{n:?} in {e}");
        }
        assert_eq!(
            pg.psql(&db, "SELECT count(*) FROM dst").unwrap().trim(),
            "1"
        );
    }
    // A column whose Arrow type cannot go into its target is refused before any row.
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("small", DataType::Int64, true),
        Field::new("m", DataType::Utf8, true),
        Field::new("nm", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new("n", DataType::Utf8, true),
    ]));
    let mut columns = good();
    columns[0] = Arc::new(StringArray::from(vec!["1", "2"]));
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    let e = runtime().block_on(load(&url, "dst", &[batch])).unwrap_err();
    assert!(
        e.contains("column \"id\" (bigint): an Arrow Utf8 column cannot be loaded into it"),
        "{e}"
    );
    let _ = db;
}

/// Loads `batches` with `Client::load` (which stages text columns), or the error's text.
fn client_load(url: &str, table: &str, batches: Vec<RecordBatch>) -> Result<u64, String> {
    let schema = batches[0].schema();
    runtime().block_on(async {
        let mut client = Client::connect(url).await.unwrap();
        client
            .load(
                table,
                &schema,
                batches.into_iter().map(Ok),
                &pgarrow::LoadMode::Append,
            )
            .await
            .map(|s| s.rows)
            .map_err(|e| e.to_string())
    })
}

const NESTED: &str = include_str!("../../../testdata/load/nested.sql");

#[test]
fn arrays_composites_ranges_and_text_columns_come_back_the_same() {
    let Some((pg, db, url)) = database("encode_nested", NESTED) else {
        return;
    };
    let mut options = ExportOptions::default();
    options.decode.batch_rows = 2;
    let reader = pgarrow::blocking::export(&url, Source::table("src").unwrap(), &options).unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(client_load(&url, "dst", batches).unwrap(), 3);
    let (src, dst) = (rendered(pg, &db, "src"), rendered(pg, &db, "dst"));
    assert_eq!(dst, src);
    assert!(
        src.contains("{{1,2,3},{4,5,6}}") && src.contains("08:00:2b"),
        "{src}"
    );
}

#[test]
fn nested_values_that_do_not_fit_are_named() {
    use arrow_array::builder::{Int32Builder, ListBuilder};
    let Some((pg, db, url)) = database(
        "encode_nested_refusals",
        "CREATE TYPE pair AS (a int, b text);
         CREATE TABLE dst (id int, m2 int[], p pair, v varchar(3), c char(2));
         INSERT INTO dst (id) VALUES (0);",
    ) else {
        return;
    };
    let list2 = |rows: &[Option<Vec<Option<Vec<i32>>>>]| {
        let mut b = ListBuilder::new(ListBuilder::new(Int32Builder::new()));
        for row in rows {
            match row {
                None => b.append(false),
                Some(inner) => {
                    for sub in inner {
                        match sub {
                            Some(values) => {
                                b.values().values().append_slice(values);
                                b.values().append(true);
                            }
                            None => b.values().append(false),
                        }
                    }
                    b.append(true);
                }
            }
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let batch = |m2: ArrayRef, v: &str, c: &str| {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("m2", m2.data_type().clone(), true),
            Field::new("v", DataType::Utf8, true),
            Field::new("c", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(arrow_array::Int32Array::from(vec![1, 2])),
            m2,
            Arc::new(StringArray::from(vec!["ok", v])),
            Arc::new(StringArray::from(vec!["ok", c])),
        ];
        RecordBatch::try_new(schema, columns).unwrap()
    };
    let good = || list2(&[Some(vec![Some(vec![1, 2]), Some(vec![3, 4])]), None]);
    let cases: Vec<(RecordBatch, &[&str])> = vec![
        (
            batch(
                list2(&[None, Some(vec![Some(vec![1, 2]), Some(vec![3])])]),
                "a",
                "b",
            ),
            &[
                "column \"m2\" (integer[]), row 2",
                "lists of 2 and 1 items at depth 2",
            ],
        ),
        (
            batch(list2(&[Some(vec![Some(vec![1]), None]), None]), "a", "b"),
            &["row 1", "a NULL list at depth 2"],
        ),
        (
            batch(good(), "abcd", "b"),
            &[
                "column \"v\" (character varying(3)), row 2",
                "\"abcd\" has 4 characters",
            ],
        ),
        (
            batch(good(), "a", "abc"),
            &[
                "column \"c\" (character(2)), row 2",
                "more than character(2) holds",
            ],
        ),
    ];
    for (b, needles) in cases {
        let e = client_load(&url, "dst", vec![b]).unwrap_err();
        for n in needles {
            assert!(e.contains(n), "{n:?} in {e}");
        }
        assert_eq!(
            pg.psql(&db, "SELECT count(*) FROM dst").unwrap().trim(),
            "1"
        );
    }
    // Trailing spaces past char(n) are not kept by char(n) anyway: accepted.
    assert_eq!(
        client_load(&url, "dst", vec![batch(good(), "abc", "ab   ")]).unwrap(),
        2
    );
    assert_eq!(
        pg.psql(&db, "SELECT m2, v, c FROM dst WHERE id = 1")
            .unwrap(),
        "{{1,2},{3,4}}|ok|ok\n"
    );
    // A struct field that is not an attribute is refused before loading.
    let schema = Arc::new(Schema::new(vec![Field::new(
        "p",
        DataType::Struct(vec![Field::new("zz", DataType::Int32, true)].into()),
        true,
    )]));
    let p = arrow_array::StructArray::from(vec![(
        Arc::new(Field::new("zz", DataType::Int32, true)),
        Arc::new(arrow_array::Int32Array::from(vec![1])) as ArrayRef,
    )]);
    let e = client_load(
        &url,
        "dst",
        vec![RecordBatch::try_new(schema, vec![Arc::new(p)]).unwrap()],
    )
    .unwrap_err();
    assert!(
        e.contains("the struct field \"zz\" is not an attribute"),
        "{e}"
    );
}

/// Parquet's Variant, as readers give it (a Struct of binary `metadata` and `value`), loads
/// into `jsonb`, `json` and `text` as its JSON: equal to the server's own reading of that JSON.
#[test]
fn variants_load_as_their_json() {
    use arrow_array::{BinaryArray, StructArray};
    let Some((pg, db, url)) = database(
        "encode_variant",
        "CREATE TABLE vj (id int8, b jsonb, j json, t text);",
    ) else {
        return;
    };
    // Metadata: the keys "a" and "b" (version 1, one-byte offsets).
    let metadata: &[u8] = &[0x01, 2, 0, 1, 2, b'a', b'b'];
    // {"b": 1, "a": [true, "x"]}
    let array: &[u8] = &[0x03, 2, 0, 1, 3, 0x04, (1 << 2) | 1, b'x'];
    let mut object = vec![0x02, 2, 1, 0, 0, 2, (2 + array.len()) as u8, 3 << 2, 1];
    object.extend_from_slice(array);
    // 12345678901234567890.123 (decimal16, scale 3), and a date.
    let mut decimal = vec![10 << 2, 3];
    decimal.extend_from_slice(&12_345_678_901_234_567_890_123i128.to_le_bytes());
    let mut day = vec![11 << 2];
    day.extend_from_slice(&19_000i32.to_le_bytes());
    let values: Vec<&[u8]> = vec![&object, &decimal, &day, &[0x00]];
    let expected = [
        r#"{"b":1,"a":[true,"x"]}"#,
        "12345678901234567890.123",
        r#""2022-01-08""#,
        "null",
    ];
    let n = values.len();
    let variant = StructArray::from(vec![
        (
            Arc::new(Field::new("metadata", DataType::Binary, false)),
            Arc::new(BinaryArray::from(vec![metadata; n])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("value", DataType::Binary, false)),
            Arc::new(BinaryArray::from(values)) as ArrayRef,
        ),
    ]);
    let variant: ArrayRef = Arc::new(variant);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("b", variant.data_type().clone(), true),
        Field::new("j", variant.data_type().clone(), true),
        Field::new("t", variant.data_type().clone(), true),
    ]));
    let ids: ArrayRef = Arc::new(Int64Array::from((1..=n as i64).collect::<Vec<_>>()));
    let batch =
        RecordBatch::try_new(schema, vec![ids, variant.clone(), variant.clone(), variant]).unwrap();
    runtime().block_on(load(&url, "vj", &[batch])).unwrap();
    for (k, want) in expected.iter().enumerate() {
        let id = k + 1;
        let got = pg
            .psql(
                &db,
                &format!(
                    "SELECT b::text = '{want}'::jsonb::text, j::text, t FROM vj WHERE id = {id}"
                ),
            )
            .unwrap();
        assert_eq!(got.trim(), format!("t|{want}|{want}"), "row {id}");
    }
}
