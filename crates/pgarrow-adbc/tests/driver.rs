//! The driver through `adbc_core`'s traits (no C boundary), against a real PostgreSQL: the
//! Python suite (`crates/pgarrow-python/tests/test_adbc.py`) runs the same ground through the
//! real driver manager and the C entry points.

use std::sync::Arc;

use adbc_core::error::Status;
use adbc_core::options::{
    IngestMode, ObjectDepth, OptionConnection, OptionDatabase, OptionStatement, OptionValue,
};
use adbc_core::{Connection as _, Database as _, Driver as _, Optionable, Statement as _};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, Int32Array, Int64Array, RecordBatch, RecordBatchReader, StringArray};
use arrow_schema::{DataType, Field, Schema};
use pgarrow_adbc::{Connection, Driver, TRANSACTION_STATUS};
use pgarrow_testkit::Cluster;

/// A fresh database on the shared cluster, its script run, and a connection to it.
fn connect(prefix: &str, script: &str) -> Option<(&'static Cluster, String, Connection)> {
    let pg = Cluster::shared()?;
    let db = pg.create_database(prefix).expect("a test database");
    if !script.is_empty() {
        pg.psql(&db, script).expect("the test's script");
    }
    let conn = connection(&pg.url(&db));
    Some((pg, db, conn))
}

fn connection(uri: &str) -> Connection {
    let mut driver = Driver;
    let database = driver
        .new_database_with_opts([(OptionDatabase::Uri, OptionValue::String(uri.into()))])
        .expect("a database");
    database.new_connection().expect("a connection")
}

/// Every batch of `reader`, concatenated.
fn collect(reader: impl RecordBatchReader) -> RecordBatch {
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("a batch")).collect();
    arrow_select::concat::concat_batches(&schema, &batches).expect("concatenated")
}

fn query(conn: &mut Connection, sql: &str) -> RecordBatch {
    let mut stmt = conn.new_statement().expect("a statement");
    stmt.set_sql_query(sql).expect("sql");
    collect(stmt.execute().unwrap_or_else(|e| panic!("{sql}: {e}")))
}

fn update(conn: &mut Connection, sql: &str) -> Option<i64> {
    let mut stmt = conn.new_statement().expect("a statement");
    stmt.set_sql_query(sql).expect("sql");
    stmt.execute_update()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn count(conn: &mut Connection, table: &str) -> i64 {
    let batch = query(conn, &format!("SELECT count(*) FROM {table}"));
    batch.column(0).as_primitive::<Int64Type>().value(0)
}

const TYPES: &str = "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE TABLE t (id int PRIMARY KEY, n numeric(12,3), u uuid, ts timestamptz, j jsonb,
                    a int[], m mood, iv interval, b bytea, t text);
    INSERT INTO t VALUES
      (1, 123456789.125, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29 12:34:56.789+00',
       '{\"k\": [1, 2]}', '{{1,2},{3,NULL}}', 'happy', '1 mon 2 days 00:00:03.5', '\\x00ff', 'é'),
      (2, NULL, NULL, 'infinity', NULL, '{}', NULL, NULL, NULL, NULL);";

#[test]
fn queries_come_out_as_the_export_does() {
    let Some((pg, db, mut conn)) = connect("adbc_types", TYPES) else {
        return;
    };
    let sql = "SELECT * FROM t ORDER BY id";
    let ours = query(&mut conn, sql);
    let reader = pgarrow::blocking::export(pg.url(&db), sql, &Default::default()).unwrap();
    let export = collect(reader);
    assert_eq!(ours.num_rows(), 2);
    assert_eq!(
        ours, export,
        "the driver's result differs from the export's"
    );
    assert_eq!(
        ours.schema().field(1).data_type(),
        &DataType::Decimal128(12, 3),
        "numeric(12,3) is an exact decimal"
    );

    // The schema alone, described, not run: pgarrow's plan (`pgarrow schema`), where an array
    // column whose depth comes from the data has the one level its type declares.
    let mut stmt = conn.new_statement().unwrap();
    stmt.set_sql_query(sql).unwrap();
    let described = stmt.execute_schema().unwrap();
    let runtime = pgarrow::blocking::runtime().unwrap();
    let planned = runtime.block_on(async {
        let mut client = pgarrow::Client::connect(pg.url(&db)).await.unwrap();
        client.describe(&pgarrow::Source::query(sql)).await.unwrap()
    });
    assert_eq!(&described, planned.schema.as_ref());
    for (i, field) in described.fields().iter().enumerate() {
        if field.name() != "a" {
            assert_eq!(field.as_ref(), ours.schema().field(i));
        }
    }

    // Type policies as statement options.
    let mut stmt = conn.new_statement().unwrap();
    stmt.set_option(
        OptionStatement::Other("pgarrow.numeric".into()),
        OptionValue::String("float64".into()),
    )
    .unwrap();
    stmt.set_sql_query("SELECT 1.5::numeric AS x").unwrap();
    let batch = collect(stmt.execute().unwrap());
    assert_eq!(batch.schema().field(0).data_type(), &DataType::Float64);
    let bad = stmt
        .set_option(
            OptionStatement::Other("pgarrow.numeric".into()),
            OptionValue::String("float".into()),
        )
        .unwrap_err();
    assert_eq!(bad.status, Status::InvalidArguments);
    let unknown = stmt
        .set_option(
            OptionStatement::Other("pgarrow.no_such_option".into()),
            OptionValue::String("1".into()),
        )
        .unwrap_err();
    assert_eq!(unknown.status, Status::NotImplemented);
}

#[test]
fn updates_count_rows_and_errors_keep_the_session() {
    let Some((_pg, _db, mut conn)) = connect("adbc_update", "CREATE TABLE t (a int)") else {
        return;
    };
    assert_eq!(
        update(&mut conn, "INSERT INTO t SELECT generate_series(1, 5)"),
        Some(5)
    );
    assert_eq!(
        update(&mut conn, "UPDATE t SET a = a + 1 WHERE a > 3"),
        Some(2)
    );
    assert_eq!(update(&mut conn, "CREATE TABLE u (b int)"), None);
    // A statement that returns no rows, through execute: an empty result.
    let batch = query(&mut conn, "DELETE FROM t WHERE a = 1");
    assert_eq!(batch.num_columns(), 0);
    assert_eq!(count(&mut conn, "t"), 4);

    let mut stmt = conn.new_statement().unwrap();
    stmt.set_sql_query("SELECT * FROM no_such_table").unwrap();
    let e = stmt.execute().map(drop).unwrap_err();
    assert_eq!(e.status, Status::NotFound);
    assert_eq!(e.sqlstate.map(|c| c as u8), *b"42P01");
    let details = e.details.expect("the server's fields");
    assert!(
        details
            .iter()
            .any(|(k, v)| k == "PG_DIAG_SQLSTATE" && v == b"42P01"),
        "{details:?}"
    );
    // A failure before the first batch fails the execute, with its SQLSTATE; one after
    // rows were handed out ends the stream with the error. The session goes on.
    let sql = "SELECT 1 / (3 - g) FROM generate_series(1, 5) g";
    let mut stmt = conn.new_statement().unwrap();
    stmt.set_sql_query(sql).unwrap();
    let e = stmt.execute().map(drop).unwrap_err();
    assert_eq!(e.sqlstate.map(|c| c as u8), *b"22012", "{e}");
    assert_eq!(e.status, Status::InvalidData);
    stmt.set_option(
        OptionStatement::Other("pgarrow.batch_rows".into()),
        OptionValue::Int(1),
    )
    .unwrap();
    let results: Vec<_> = stmt.execute().unwrap().collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2);
    let err = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("an error");
    assert!(err.to_string().contains("division by zero"), "{err}");
    assert_eq!(count(&mut conn, "t"), 4);
}

#[test]
fn a_new_statement_drains_the_result_set_left_open() {
    let Some((_pg, _db, mut conn)) = connect("adbc_busy", "") else {
        return;
    };
    let mut stmt = conn.new_statement().unwrap();
    stmt.set_option(
        OptionStatement::Other("pgarrow.batch_rows".into()),
        OptionValue::Int(10),
    )
    .unwrap();
    stmt.set_sql_query("SELECT generate_series(1, 1000) AS g")
        .unwrap();
    let mut reader = stmt.execute().unwrap();
    assert_eq!(reader.next().unwrap().unwrap().num_rows(), 10);
    let status = |conn: &Connection| {
        conn.get_option_string(OptionConnection::Other(TRANSACTION_STATUS.into()))
            .unwrap()
    };
    assert_eq!(status(&conn), "active");
    // Another statement runs: the open result set is drained first, and its reader says
    // so instead of handing out another statement's rows.
    let mut other = conn.new_statement().unwrap();
    other.set_sql_query("SELECT 1 AS one").unwrap();
    let rows: Vec<_> = other.execute().unwrap().collect();
    assert_eq!(rows.len(), 1);
    let closed = reader.next().unwrap().unwrap_err().to_string();
    assert!(closed.contains("before it was read to its end"), "{closed}");
    assert!(reader.next().is_none());
    assert_eq!(status(&conn), "idle");
    // Released early: the result waits for the next statement, which drains it.
    let mut reader = stmt.execute().unwrap();
    assert_eq!(reader.next().unwrap().unwrap().num_rows(), 10);
    drop(reader);
    assert_eq!(status(&conn), "active");
    let batch = query(&mut conn, "SELECT 41 + 1 AS x");
    assert_eq!(batch.column(0).as_primitive::<Int32Type>().value(0), 42);
    assert_eq!(status(&conn), "idle");
}

#[test]
fn transactions_follow_autocommit() {
    let Some((pg, db, mut conn)) = connect("adbc_tx", "CREATE TABLE t (a int)") else {
        return;
    };
    let autocommit = |conn: &mut Connection, on: &str| {
        conn.set_option(OptionConnection::AutoCommit, OptionValue::String(on.into()))
            .unwrap();
    };
    // Autocommit on: commit and rollback have nothing to end.
    assert_eq!(conn.commit().unwrap_err().status, Status::InvalidState);
    autocommit(&mut conn, "false");
    update(&mut conn, "INSERT INTO t VALUES (1)");
    let seen = || {
        pg.psql(&db, "SELECT count(*) FROM t")
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(seen(), "0", "not committed yet");
    conn.rollback().unwrap();
    assert_eq!(count(&mut conn, "t"), 0);
    update(&mut conn, "INSERT INTO t VALUES (2)");
    conn.commit().unwrap();
    assert_eq!(seen(), "1");
    update(&mut conn, "INSERT INTO t VALUES (3)");
    // Switching autocommit on commits the open transaction.
    autocommit(&mut conn, "true");
    assert_eq!(seen(), "2");
    assert_eq!(
        conn.get_option_string(OptionConnection::AutoCommit)
            .unwrap(),
        "true"
    );

    conn.set_option(
        OptionConnection::ReadOnly,
        OptionValue::String("true".into()),
    )
    .unwrap();
    let mut stmt = conn.new_statement().unwrap();
    stmt.set_sql_query("INSERT INTO t VALUES (4)").unwrap();
    assert_eq!(
        stmt.execute_update().unwrap_err().sqlstate.map(|c| c as u8),
        *b"25006"
    );
    conn.set_option(
        OptionConnection::ReadOnly,
        OptionValue::String("false".into()),
    )
    .unwrap();
    assert_eq!(update(&mut conn, "INSERT INTO t VALUES (4)"), Some(1));

    assert_eq!(
        conn.get_option_string(OptionConnection::CurrentCatalog)
            .unwrap(),
        db
    );
    update(&mut conn, "CREATE SCHEMA other");
    conn.set_option(
        OptionConnection::CurrentSchema,
        OptionValue::String("other".into()),
    )
    .unwrap();
    assert_eq!(
        conn.get_option_string(OptionConnection::CurrentSchema)
            .unwrap(),
        "other"
    );
}

fn ingest(
    conn: &mut Connection,
    table: &str,
    mode: IngestMode,
    batch: RecordBatch,
) -> adbc_core::error::Result<Option<i64>> {
    let mut stmt = conn.new_statement()?;
    stmt.set_option(
        OptionStatement::TargetTable,
        OptionValue::String(table.into()),
    )?;
    stmt.set_option(OptionStatement::IngestMode, mode.into())?;
    stmt.bind(batch)?;
    stmt.execute_update()
}

fn sample(ids: &[i32], names: &[Option<&str>]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .unwrap()
}

#[test]
fn ingest_in_every_mode() {
    let Some((_pg, _db, mut conn)) = connect("adbc_ingest", "") else {
        return;
    };
    let two = sample(&[1, 2], &[Some("a"), None]);
    assert_eq!(
        ingest(&mut conn, "Odd Name", IngestMode::Create, two.clone()).unwrap(),
        Some(2)
    );
    let again = ingest(&mut conn, "Odd Name", IngestMode::Create, two.clone()).unwrap_err();
    assert_eq!(again.status, Status::AlreadyExists);
    assert_eq!(
        ingest(&mut conn, "Odd Name", IngestMode::Append, two.clone()).unwrap(),
        Some(2)
    );
    assert_eq!(count(&mut conn, "\"Odd Name\""), 4);
    let missing = ingest(&mut conn, "missing", IngestMode::Append, two.clone()).unwrap_err();
    assert_eq!(missing.status, Status::NotFound);
    assert_eq!(
        ingest(
            &mut conn,
            "Odd Name",
            IngestMode::Replace,
            sample(&[7], &[Some("z")])
        )
        .unwrap(),
        Some(1)
    );
    assert_eq!(count(&mut conn, "\"Odd Name\""), 1);
    assert_eq!(
        ingest(&mut conn, "fresh", IngestMode::CreateAppend, two.clone()).unwrap(),
        Some(2)
    );
    assert_eq!(
        ingest(&mut conn, "fresh", IngestMode::CreateAppend, two.clone()).unwrap(),
        Some(2)
    );
    assert_eq!(count(&mut conn, "fresh"), 4);

    // A failure leaves the table as it was: a primary key the rows break.
    update(
        &mut conn,
        "ALTER TABLE fresh ADD COLUMN k serial PRIMARY KEY",
    );
    update(
        &mut conn,
        "CREATE TABLE keyed (id int PRIMARY KEY, name text)",
    );
    assert_eq!(
        ingest(&mut conn, "keyed", IngestMode::Append, two.clone()).unwrap(),
        Some(2)
    );
    let dup = ingest(
        &mut conn,
        "keyed",
        IngestMode::Append,
        sample(&[3, 1], &[None, None]),
    )
    .unwrap_err();
    assert_eq!(dup.status, Status::Integrity, "{dup}");
    assert_eq!(count(&mut conn, "keyed"), 2);

    // Inside an open transaction, the ingest is part of it.
    conn.set_option(
        OptionConnection::AutoCommit,
        OptionValue::String("false".into()),
    )
    .unwrap();
    assert_eq!(
        ingest(
            &mut conn,
            "keyed",
            IngestMode::Append,
            sample(&[5], &[None])
        )
        .unwrap(),
        Some(1)
    );
    let dup = ingest(
        &mut conn,
        "keyed",
        IngestMode::Append,
        sample(&[5], &[None]),
    )
    .unwrap_err();
    assert_eq!(dup.status, Status::Integrity);
    // The failed ingest undid itself alone: the transaction goes on.
    assert_eq!(count(&mut conn, "keyed"), 3);
    conn.rollback().unwrap();
    assert_eq!(count(&mut conn, "keyed"), 2);

    // A temporary table.
    let mut stmt = conn.new_statement().unwrap();
    stmt.set_option(
        OptionStatement::TargetTable,
        OptionValue::String("scratch".into()),
    )
    .unwrap();
    stmt.set_option(
        OptionStatement::Temporary,
        OptionValue::String("true".into()),
    )
    .unwrap();
    stmt.bind(two).unwrap();
    assert_eq!(stmt.execute_update().unwrap(), Some(2));
    let kind = query(
        &mut conn,
        "SELECT relpersistence::text FROM pg_class WHERE relname = 'scratch'",
    );
    assert_eq!(kind.column(0).as_string::<i32>().value(0), "t");
}

#[test]
fn bound_parameters() {
    let Some((_pg, _db, mut conn)) = connect("adbc_params", "CREATE TABLE t (a int, b text)")
    else {
        return;
    };
    let mut stmt = conn.new_statement().unwrap();
    stmt.set_sql_query("INSERT INTO t VALUES ($1, $2)").unwrap();
    stmt.prepare().unwrap();
    let params = stmt.get_parameter_schema().unwrap();
    assert_eq!(params.fields().len(), 2);
    assert_eq!(params.field(0).data_type(), &DataType::Int32);
    stmt.bind(sample(&[1, 2, 3], &[Some("x"), None, Some("z")]))
        .unwrap();
    assert_eq!(stmt.execute_update().unwrap(), Some(3));

    let mut stmt = conn.new_statement().unwrap();
    stmt.set_sql_query("SELECT a * 10 AS a10, b FROM t WHERE a >= $1 ORDER BY a")
        .unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("min", DataType::Int64, true)]));
    let min = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![2, 3]))]).unwrap();
    stmt.bind(min).unwrap();
    let batch = collect(stmt.execute().unwrap());
    // One result per parameter row, in order: a >= 2 (2, 3), then a >= 3 (3).
    let a10 = batch.column(0).as_primitive::<Int32Type>();
    assert_eq!(a10.values().to_vec(), vec![20, 30, 30]);
    let b = batch.column(1).as_string::<i32>();
    assert!(b.is_null(0));
    assert_eq!(b.value(1), "z");

    // A value that does not fit its parameter: named, nothing written.
    let mut stmt = conn.new_statement().unwrap();
    stmt.set_sql_query("INSERT INTO t (a) VALUES ($1::int2)")
        .unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, true)]));
    let big =
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![1, 70000]))]).unwrap();
    stmt.bind(big).unwrap();
    let e = stmt.execute_update().unwrap_err();
    assert!(e.message.contains("70000"), "{}", e.message);
    assert_eq!(count(&mut conn, "t"), 3);
}

#[test]
fn partitions_read_anywhere_in_one_snapshot() {
    let Some((pg, db, mut conn)) = connect(
        "adbc_parts",
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10000) g;",
    ) else {
        return;
    };
    let mut stmt = conn.new_statement().unwrap();
    stmt.set_sql_query("SELECT * FROM t").unwrap();
    for (k, v) in [("pgarrow.partitions", "3"), ("pgarrow.partition_by", "id")] {
        stmt.set_option(
            OptionStatement::Other(k.into()),
            OptionValue::String(v.into()),
        )
        .unwrap();
    }
    let planned = stmt.execute_partitions().unwrap();
    assert_eq!(planned.partitions.len(), 3);
    // Rows change after the snapshot: the partitions do not see it.
    pg.psql(
        &db,
        "DELETE FROM t WHERE id <= 5000; INSERT INTO t VALUES (20000, 'late')",
    )
    .unwrap();
    let other = connection(&pg.url(&db));
    let mut ids = Vec::new();
    for descriptor in &planned.partitions {
        let text = String::from_utf8_lossy(descriptor);
        assert!(!text.contains("password"), "{text}");
        let batch = collect(other.read_partition(descriptor).unwrap());
        assert_eq!(batch.schema().as_ref(), &planned.schema);
        ids.extend(
            batch
                .column(0)
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .copied(),
        );
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=10000).collect::<Vec<i32>>());
    let garbage = other.read_partition(b"{}").map(drop).unwrap_err();
    assert_eq!(garbage.status, Status::InvalidArguments);

    // Once every partition was read and the linger time passed, the snapshot is released:
    // a partition read after that fails, saying so.
    let mut stmt = conn.new_statement().unwrap();
    stmt.set_sql_query("SELECT * FROM t").unwrap();
    for (k, v) in [("pgarrow.linger", "0"), ("pgarrow.partitions", "1")] {
        stmt.set_option(
            OptionStatement::Other(k.into()),
            OptionValue::String(v.into()),
        )
        .unwrap();
    }
    let planned = stmt.execute_partitions().unwrap();
    let descriptor = &planned.partitions[0];
    collect(other.read_partition(descriptor).unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let gone = loop {
        match other.read_partition(descriptor) {
            Err(e) => break e,
            Ok(reader) => drop(collect(reader)),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the snapshot was never released"
        );
    };
    assert!(gone.message.contains("no longer held"), "{}", gone.message);
}

#[test]
fn catalog_calls() {
    let Some((_pg, db, conn)) = connect(
        "adbc_catalog",
        "CREATE SCHEMA s; CREATE TABLE s.\"T\" (id bigint PRIMARY KEY, n numeric(5,2));
         CREATE VIEW s.v AS SELECT id FROM s.\"T\";",
    ) else {
        return;
    };
    let schema = conn.get_table_schema(None, Some("s"), "T").unwrap();
    assert_eq!(schema.field(0).name(), "id");
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(schema.field(1).data_type(), &DataType::Decimal128(5, 2));
    let missing = conn.get_table_schema(None, Some("s"), "t").unwrap_err();
    assert_eq!(missing.status, Status::NotFound);
    let other_db = conn
        .get_table_schema(Some("elsewhere"), Some("s"), "T")
        .unwrap_err();
    assert_eq!(other_db.status, Status::NotFound);

    let types = collect(conn.get_table_types().unwrap());
    let types: Vec<&str> = types
        .column(0)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert!(
        types.contains(&"table") && types.contains(&"view"),
        "{types:?}"
    );

    let info = collect(conn.get_info(None).unwrap());
    assert!(info.num_rows() >= 6);

    let objects = collect(
        conn.get_objects(ObjectDepth::Tables, None, Some("s"), None, None, None)
            .unwrap(),
    );
    assert_eq!(objects.num_rows(), 1);
    let catalog = objects.column(0).as_string::<i32>().value(0);
    assert_eq!(catalog, db);
}
