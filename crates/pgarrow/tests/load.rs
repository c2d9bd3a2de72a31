//! Loading Arrow data into PostgreSQL: append, replace and upsert in one transaction, a round
//! trip through Parquet, and failures (a value, the server, a killed backend) that leave the
//! table as it was.

mod common;

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use common::Db;
use pgarrow::io::{Format, Output};
use pgarrow::names::TableName;
use pgarrow::{Client, ExportOptions, FileTarget, Hooks, LoadMode, LoadOptions, Source, Stop};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Utf8, true),
    ]))
}

fn batch(ids: &[i64], v: &[Option<&str>]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(StringArray::from(v.to_vec())),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

/// Loads `batches` into `table` with `mode`: the rows loaded, or the error's text.
fn load(db: &Db, table: &str, batches: Vec<RecordBatch>, mode: &LoadMode) -> Result<u64, String> {
    runtime().block_on(async {
        let mut client = Client::connect(db.url()).await.unwrap();
        client
            .load(table, &schema(), batches.into_iter().map(Ok), mode)
            .await
            .map(|s| s.rows)
            .map_err(|e| e.to_string())
    })
}

const TABLE: &str = "CREATE TABLE t (id int8 PRIMARY KEY, v varchar(5), d text DEFAULT 'dflt');
                     INSERT INTO t (id, v) VALUES (1, 'one'), (2, 'two');";

#[test]
fn append_replace_and_upsert() {
    let Some(db) = Db::with("load_modes", TABLE) else {
        return;
    };
    let rows = load(
        &db,
        "t",
        vec![
            batch(&[3, 4], &[Some("three"), None]),
            batch(&[5], &[Some("five")]),
        ],
        &LoadMode::Append,
    )
    .unwrap();
    assert_eq!(rows, 3);
    assert_eq!(
        db.psql("SELECT id, v, d FROM t ORDER BY id"),
        "1|one|dflt\n2|two|dflt\n3|three|dflt\n4||dflt\n5|five|dflt\n"
    );
    let upsert = LoadMode::Upsert {
        key: vec!["id".into()],
    };
    load(
        &db,
        "t",
        vec![batch(&[2, 6], &[Some("TWO"), Some("six")])],
        &upsert,
    )
    .unwrap();
    assert_eq!(
        db.psql("SELECT id, v FROM t ORDER BY id"),
        "1|one\n2|TWO\n3|three\n4|\n5|five\n6|six\n"
    );
    load(
        &db,
        "t",
        vec![batch(&[9], &[Some("nine")])],
        &LoadMode::Replace,
    )
    .unwrap();
    assert_eq!(db.psql("SELECT id, v FROM t ORDER BY id"), "9|nine\n");
}

#[test]
fn failures_leave_the_table_as_it_was() {
    let Some(db) = Db::with("load_failures", TABLE) else {
        return;
    };
    let before = db.psql("SELECT id, v, d FROM t ORDER BY id");
    let good = || batch(&[10, 11], &[Some("a"), Some("b")]);
    for (mode, batches, needles) in [
        // varchar(5), checked before sending, in the second batch: rows count across batches.
        (
            LoadMode::Replace,
            vec![good(), batch(&[12], &[Some("too long")])],
            &["column \"v\" (character varying(5)), row 3", "8 characters"][..],
        ),
        // A duplicate key, in append mode.
        (
            LoadMode::Append,
            vec![batch(&[1], &[Some("x")])],
            &["23505"][..],
        ),
        // The upsert's key without a unique index.
        (
            LoadMode::Upsert {
                key: vec!["v".into()],
            },
            vec![good()],
            &["ON CONFLICT"][..],
        ),
    ] {
        let e = load(&db, "t", batches, &mode).unwrap_err();
        for n in needles {
            assert!(e.contains(n), "{mode:?}: {n:?} in {e}");
        }
        assert_eq!(
            db.psql("SELECT id, v, d FROM t ORDER BY id"),
            before,
            "{mode:?}"
        );
    }
    // An input that fails while being read.
    let e = runtime().block_on(async {
        let mut client = Client::connect(db.url()).await.unwrap();
        let input = vec![
            Ok(good()),
            Err(ArrowError::ParseError("the file is cut short".into())),
        ];
        client
            .load("t", &schema(), input, &LoadMode::Replace)
            .await
            .unwrap_err()
            .to_string()
    });
    assert!(e.contains("the file is cut short"), "{e}");
    // A column the table does not have.
    let other = Arc::new(Schema::new(vec![Field::new("nope", DataType::Int64, true)]));
    let e = runtime().block_on(async {
        let mut client = Client::connect(db.url()).await.unwrap();
        let b = RecordBatch::try_new(
            other.clone(),
            vec![Arc::new(Int64Array::from(vec![1])) as ArrayRef],
        )
        .unwrap();
        client
            .load("t", &other, vec![Ok(b)], &LoadMode::Append)
            .await
            .unwrap_err()
            .to_string()
    });
    assert!(e.contains("nope") && e.contains("42703"), "{e}");
    assert_eq!(db.psql("SELECT id, v, d FROM t ORDER BY id"), before);
}

#[test]
fn a_backend_killed_midway_loads_nothing() {
    let Some(db) = Db::with("load_killed", TABLE) else {
        return;
    };
    let before = db.psql("SELECT id, v FROM t ORDER BY id");
    let e = runtime().block_on(async {
        let mut client = Client::connect(db.url()).await.unwrap();
        let pid = client.backend_pid();
        // The second batch is read after the first went out: the backend is killed then.
        // (The input is read on the load's own thread: it owns what it uses.)
        let killer = Db::existing(db.cluster, &db.name);
        let mut n = 0;
        let input = std::iter::from_fn(move || {
            n += 1;
            match n {
                1 => Some(Ok(batch(
                    &(100..20_100).collect::<Vec<_>>(),
                    &vec![Some("x"); 20_000],
                ))),
                2 => {
                    killer.psql(&format!("SELECT pg_terminate_backend({pid})"));
                    Some(Ok(batch(
                        &(20_100..40_100).collect::<Vec<_>>(),
                        &vec![Some("y"); 20_000],
                    )))
                }
                _ => None,
            }
        });
        client
            .load("t", &schema(), input, &LoadMode::Replace)
            .await
            .unwrap_err()
            .to_string()
    });
    assert!(
        e.contains("57P01") || e.contains("terminat") || e.contains("closed"),
        "{e}"
    );
    assert_eq!(db.psql("SELECT id, v FROM t ORDER BY id"), before);
}

#[test]
fn a_round_trip_through_parquet() {
    let Some(db) = Db::with(
        "load_parquet",
        "CREATE TYPE mood AS ENUM ('sad', 'ok');
         CREATE TABLE src AS SELECT g::int8 AS id, g * 1.25 AS n, ('2024-01-01'::timestamptz
             + g * interval '1 hour 1 second') AS at, (g || ' days 3 hours')::interval AS iv,
             ARRAY['sad', 'ok']::mood[] IS NULL AS flag, (ARRAY['sad', 'ok'])[1 + g % 2]::mood AS m,
             CASE WHEN g % 5 = 0 THEN NULL ELSE md5(g::text) END AS h,
             CASE WHEN g = 1 THEN 'infinity'::date ELSE '2000-01-01'::date + g END AS d
         FROM generate_series(1, 5000) g;
         CREATE TABLE dst (LIKE src);",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.parquet");
    let target = FileTarget::new(Format::Parquet, Output::File(path.clone()));
    runtime().block_on(async {
        let mut client = Client::connect(db.url()).await.unwrap();
        client
            .export_to_file(
                Source::table("src").unwrap(),
                &ExportOptions::default(),
                &target,
                Hooks::new(),
            )
            .await
            .unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&path).unwrap(),
        )
        .unwrap()
        .with_batch_size(1000)
        .build()
        .unwrap();
        let schema = arrow_array::RecordBatchReader::schema(&reader);
        let stats = client
            .load("dst", &schema, reader, &LoadMode::Append)
            .await
            .unwrap();
        assert_eq!(stats.rows, 5000);
    });
    assert_eq!(
        db.psql("SELECT _r::text FROM dst _r ORDER BY id"),
        db.psql("SELECT _r::text FROM src _r ORDER BY id")
    );
}

#[test]
fn odd_names_and_text_columns_upsert() {
    let Some(db) = Db::with(
        "load_odd_names",
        r#"CREATE SCHEMA "My ""Schema"".x";
           CREATE TABLE "My ""Schema"".x"."Tab le" ("Id" int8 PRIMARY KEY, "a.b c" text,
               "we""ird" inet, n int DEFAULT 7);
           INSERT INTO "My ""Schema"".x"."Tab le" VALUES (1, 'one', '10.0.0.1', 1);
           CREATE TABLE _pgarrow_load (id int8 PRIMARY KEY, v text);"#,
    ) else {
        return;
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("Id", DataType::Int64, false),
        Field::new("a.b c", DataType::Utf8, true),
        Field::new("we\"ird", DataType::Utf8, true),
    ]));
    let batch = |ids: Vec<i64>, a: Vec<&str>, inet: Vec<&str>| {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(a)),
            Arc::new(StringArray::from(inet)),
        ];
        RecordBatch::try_new(schema.clone(), columns).unwrap()
    };
    let table = TableName::new(Some("My \"Schema\".x"), "Tab le");
    let upsert = LoadMode::Upsert {
        key: vec!["Id".into()],
    };
    let run = |table: &TableName, schema: &Schema, b: RecordBatch, mode: &LoadMode| {
        runtime().block_on(async {
            let mut client = Client::connect(db.url()).await.unwrap();
            client.load(table, schema, vec![Ok(b)], mode).await
        })
    };
    // inet has no binary encoder: it is staged as text and cast by the upsert.
    let b = batch(vec![1, 2], vec!["uno", "two"], vec!["10.0.0.2", "::1"]);
    assert_eq!(run(&table, &schema, b, &upsert).unwrap().rows, 2);
    let select = r#"SELECT "Id", "a.b c", "we""ird", n FROM "My ""Schema"".x"."Tab le" ORDER BY 1"#;
    assert_eq!(db.psql(select), "1|uno|10.0.0.2|1\n2|two|::1|7\n");
    // A value the cast refuses: the text column is named, and nothing changed.
    let b = batch(vec![3], vec!["three"], vec!["not an address"]);
    let e = run(&table, &schema, b, &LoadMode::Append).unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains(r#"casting the text columns ("we""ird")"#) && e.code() == Some("22P02"),
        "{message}"
    );
    assert_eq!(db.psql(select), "1|uno|10.0.0.2|1\n2|two|::1|7\n");
    // A table named as the load's temporary table, given with its schema, is not confused
    // with it.
    let stage_named = TableName::new(Some("public"), "_pgarrow_load");
    let two = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Utf8, true),
    ]));
    let b = RecordBatch::try_new(
        two.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            Arc::new(StringArray::from(vec!["a", "b"])),
        ],
    )
    .unwrap();
    let key = LoadMode::Upsert {
        key: vec!["id".into()],
    };
    assert_eq!(run(&stage_named, &two, b, &key).unwrap().rows, 2);
    assert_eq!(
        db.psql("SELECT id, v FROM public._pgarrow_load ORDER BY id"),
        "1|a\n2|b\n"
    );
}

#[test]
fn a_stopped_load_rolls_back_and_leaves_the_connection_usable() {
    let Some(db) = Db::with("load_stopped", TABLE) else {
        return;
    };
    let before = db.psql("SELECT id, v, d FROM t ORDER BY id");
    let stop = Stop::new();
    let stopper = stop.clone();
    // The input stops the load while it is being read, after the first chunks went out.
    let mut n = 0;
    let input = std::iter::from_fn(move || {
        n += 1;
        if n == 3 {
            stopper.stop();
        }
        let first = 100 + n * 20_000;
        (n <= 5).then(|| {
            Ok(batch(
                &(first..first + 20_000).collect::<Vec<_>>(),
                &vec![Some("x"); 20_000],
            ))
        })
    });
    runtime().block_on(async {
        let mut client = Client::connect(db.url()).await.unwrap();
        let hooks = Hooks::new().with_stop(stop.clone());
        let options = LoadOptions::new(LoadMode::Replace);
        let e = client
            .load_with("t", &schema(), input, &options, hooks)
            .await
            .unwrap_err();
        assert!(e.is_cancelled(), "{e}");
        // CopyFail and ROLLBACK left the session ready for more.
        let rows = client.connection().simple_query("SELECT 1").await.unwrap();
        assert_eq!(rows.len(), 1);
    });
    assert_eq!(db.psql("SELECT id, v, d FROM t ORDER BY id"), before);
}
