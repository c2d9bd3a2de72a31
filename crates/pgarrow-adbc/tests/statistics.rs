//! `GetStatistics` and `GetStatisticNames` through `adbc_core`'s traits, against a real
//! PostgreSQL: small tables that `ANALYZE` samples whole, so its estimates are the exact
//! counts.

use adbc_core::constants::{
    ADBC_STATISTIC_AVERAGE_BYTE_WIDTH_KEY as WIDTH, ADBC_STATISTIC_DISTINCT_COUNT_KEY as DISTINCT,
    ADBC_STATISTIC_NULL_COUNT_KEY as NULLS, ADBC_STATISTIC_ROW_COUNT_KEY as ROWS,
};
use adbc_core::error::Status;
use adbc_core::options::{OptionDatabase, OptionValue};
use adbc_core::schemas::{GET_STATISTIC_NAMES_SCHEMA, GET_STATISTICS_SCHEMA};
use adbc_core::{Connection as _, Database as _, Driver as _};
use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, RecordBatch, RecordBatchReader};
use pgarrow_adbc::{Connection, Driver};
use pgarrow_testkit::Cluster;

/// 99 people (`note` NULL for every third, `grp` one of 4 values), a materialized view of
/// them, a partitioned table, a table with an inheritance child, a table never analyzed, a
/// view, and a table in another schema; all but `fresh` and `child` analyzed.
const SCRIPT: &str = "
    CREATE SCHEMA app;
    CREATE TABLE app.people (id int, name text, grp int, note text, j json);
    INSERT INTO app.people
      SELECT i, 'name' || lpad(i::text, 4, '0'), i % 4,
             CASE WHEN i % 3 = 0 THEN NULL ELSE 'x' END, '{}'
      FROM generate_series(1, 99) i;
    CREATE MATERIALIZED VIEW app.mv AS SELECT grp FROM app.people;
    CREATE VIEW app.v AS SELECT * FROM app.people;
    CREATE TABLE app.parted (k int) PARTITION BY RANGE (k);
    CREATE TABLE app.parted_low PARTITION OF app.parted FOR VALUES FROM (0) TO (50);
    CREATE TABLE app.parted_high PARTITION OF app.parted FOR VALUES FROM (50) TO (100);
    INSERT INTO app.parted SELECT i FROM generate_series(0, 99) i;
    CREATE TABLE app.parent (a int);
    CREATE TABLE app.child () INHERITS (app.parent);
    INSERT INTO app.parent SELECT i FROM generate_series(1, 10) i;
    INSERT INTO app.child SELECT i FROM generate_series(11, 30) i;
    CREATE TABLE app.fresh (a int);
    CREATE SCHEMA other;
    CREATE TABLE other.t (a int);
    INSERT INTO other.t SELECT 1 FROM generate_series(1, 10);
    ANALYZE app.people, app.mv, app.parted, app.parent, other.t, pg_catalog.pg_class;";

/// One statistic of a GetStatistics result, flattened.
#[derive(Debug, Clone, PartialEq)]
struct Stat {
    catalog: Option<String>,
    schema: Option<String>,
    table: String,
    column: Option<String>,
    key: i16,
    value: f64,
}

/// A fresh database with `SCRIPT` run, and a connection to it.
fn connect() -> Option<(String, Connection)> {
    let pg = Cluster::shared()?;
    let db = pg.create_database("adbc_stats").expect("a test database");
    pg.psql(&db, SCRIPT).expect("the test's script");
    let mut driver = Driver;
    let database = driver
        .new_database_with_opts([(OptionDatabase::Uri, OptionValue::String(pg.url(&db)))])
        .expect("a database");
    Some((db, database.new_connection().expect("a connection")))
}

/// Every batch of `reader`, concatenated.
fn collect(reader: impl RecordBatchReader) -> RecordBatch {
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("a batch")).collect();
    arrow_select::concat::concat_batches(&schema, &batches).expect("concatenated")
}

/// GetStatistics (approximate) with the filters, its batch checked against ADBC's schema.
fn statistics(
    conn: &Connection,
    catalog: Option<&str>,
    db_schema: Option<&str>,
    table_name: Option<&str>,
) -> RecordBatch {
    let batch = collect(
        conn.get_statistics(catalog, db_schema, table_name, true)
            .expect("statistics"),
    );
    assert_eq!(batch.schema(), *GET_STATISTICS_SCHEMA);
    batch
}

/// The statistics of `batch`, flattened; every one approximate and a float64.
fn flatten(batch: &RecordBatch) -> Vec<Stat> {
    let text = |array: &dyn Array, i: usize| {
        let strings = array.as_string::<i32>();
        strings.is_valid(i).then(|| strings.value(i).to_owned())
    };
    let mut out = Vec::new();
    for c in 0..batch.num_rows() {
        let catalog = text(batch.column(0), c);
        let schemas = batch.column(1).as_list::<i32>().value(c);
        let schemas = schemas.as_struct();
        for s in 0..schemas.len() {
            let schema = text(schemas.column(0), s);
            let stats = schemas.column(1).as_list::<i32>().value(s);
            let stats = stats.as_struct();
            let keys = stats
                .column(2)
                .as_primitive::<arrow_array::types::Int16Type>();
            let values = stats.column(3).as_union();
            let approximate = stats.column(4).as_boolean();
            for i in 0..stats.len() {
                assert_eq!(values.type_id(i), 2, "float64 is the union's member 2");
                let floats = values.child(2).as_primitive::<Float64Type>();
                assert!(
                    approximate.value(i),
                    "PostgreSQL's statistics are estimates"
                );
                out.push(Stat {
                    catalog: catalog.clone(),
                    schema: schema.clone(),
                    table: text(stats.column(0), i).expect("a table name"),
                    column: text(stats.column(1), i),
                    key: keys.value(i),
                    value: floats.value(values.value_offset(i)),
                });
            }
        }
    }
    out
}

/// The value of `key` for `table` (and `column`, `None` for the table) in `stats`, if
/// reported (exactly once).
fn value(stats: &[Stat], table: &str, column: Option<&str>, key: i16) -> Option<f64> {
    let found: Vec<f64> = stats
        .iter()
        .filter(|s| s.table == table && s.column.as_deref() == column && s.key == key)
        .map(|s| s.value)
        .collect();
    assert!(found.len() <= 1, "{table}.{column:?} key {key}: {found:?}");
    found.first().copied()
}

/// The tables in `stats`, in order, once each.
fn tables(stats: &[Stat]) -> Vec<String> {
    let mut tables: Vec<String> = stats.iter().map(|s| s.table.clone()).collect();
    tables.dedup();
    tables
}

#[test]
fn estimates_of_small_analyzed_tables_are_the_counts() {
    let Some((db, conn)) = connect() else {
        return;
    };
    let stats = flatten(&statistics(&conn, None, Some("app"), None));
    assert!(
        stats
            .iter()
            .all(|s| s.catalog.as_deref() == Some(db.as_str()))
    );
    assert!(stats.iter().all(|s| s.schema.as_deref() == Some("app")));
    // Tables, materialized views and partitioned tables (each partition too); not the view,
    // not the tables never analyzed (`ANALYZE app.parent` samples `child` only for the
    // parent's inherited statistics).
    assert_eq!(
        tables(&stats),
        [
            "mv",
            "parent",
            "parted",
            "parted_high",
            "parted_low",
            "people"
        ]
    );

    let people = |column: Option<&str>, key: i16| value(&stats, "people", column, key);
    assert_eq!(people(None, ROWS), Some(99.0));
    assert_eq!(people(Some("id"), NULLS), Some(0.0));
    assert_eq!(
        people(Some("id"), DISTINCT),
        Some(99.0),
        "unique: n_distinct -1"
    );
    assert_eq!(people(Some("id"), WIDTH), Some(4.0));
    // 'name0001': 8 bytes and a 1-byte varlena header.
    assert_eq!(people(Some("name"), WIDTH), Some(9.0));
    assert_eq!(people(Some("grp"), DISTINCT), Some(4.0), "a fixed set");
    // null_frac 0.33333334 (a float4) times 99, rounded.
    assert_eq!(people(Some("note"), NULLS), Some(33.0));
    assert_eq!(people(Some("note"), DISTINCT), Some(1.0));
    // json has no equality operator: n_distinct 0, unknown.
    assert_eq!(people(Some("j"), DISTINCT), None);
    assert_eq!(people(Some("j"), NULLS), Some(0.0));
    // Columns in table order, the table's row count first.
    let people_columns: Vec<Option<&str>> = stats
        .iter()
        .filter(|s| s.table == "people")
        .map(|s| s.column.as_deref())
        .collect();
    assert_eq!(people_columns[0], None);
    let mut order = people_columns.clone();
    order.dedup();
    assert_eq!(
        order,
        [
            None,
            Some("id"),
            Some("name"),
            Some("grp"),
            Some("note"),
            Some("j")
        ]
    );

    assert_eq!(value(&stats, "mv", None, ROWS), Some(99.0));
    assert_eq!(value(&stats, "mv", Some("grp"), DISTINCT), Some(4.0));
    // A partitioned table's statistics are its partitions'.
    assert_eq!(value(&stats, "parted", Some("k"), DISTINCT), Some(100.0));
    assert_eq!(value(&stats, "parted_low", None, ROWS), Some(50.0));
    // A table with an inheritance child: its own rows only, once (`value` checks).
    assert_eq!(value(&stats, "parent", None, ROWS), Some(10.0));
    assert_eq!(value(&stats, "parent", Some("a"), DISTINCT), Some(10.0));
}

#[test]
fn filters_are_patterns() {
    let Some((db, conn)) = connect() else {
        return;
    };
    // Without a schema: every user schema, never the system ones.
    let all = flatten(&statistics(&conn, None, None, None));
    let mut schemas: Vec<&str> = all.iter().filter_map(|s| s.schema.as_deref()).collect();
    schemas.dedup();
    assert_eq!(schemas, ["app", "other"]);
    let everything = flatten(&statistics(&conn, None, Some("%"), None));
    assert_eq!(everything, all, "% does not name the system schemas");
    assert_eq!(value(&all, "t", None, ROWS), Some(10.0));
    assert_eq!(value(&all, "t", Some("a"), DISTINCT), Some(1.0));

    // LIKE patterns for the schema and the table; the catalog is the database.
    let people = flatten(&statistics(&conn, Some(&db), Some("a_p"), Some("peo%")));
    assert_eq!(tables(&people), ["people"]);
    let underscore = flatten(&statistics(&conn, Some("%"), None, Some("p_ople")));
    assert_eq!(underscore, people);
    let parted = flatten(&statistics(&conn, None, None, Some("parted\\_%")));
    assert_eq!(tables(&parted), ["parted_high", "parted_low"]);

    // A schema that matches nothing: the catalog, without schemas.
    let none = statistics(&conn, None, Some("nothing%"), None);
    assert_eq!(none.num_rows(), 1);
    assert!(flatten(&none).is_empty());
    // Another catalog: nothing at all.
    assert_eq!(
        statistics(&conn, Some("elsewhere"), None, None).num_rows(),
        0
    );

    // A system schema asked for by name.
    let catalog = flatten(&statistics(
        &conn,
        None,
        Some("pg_catalog"),
        Some("pg_class"),
    ));
    assert!(value(&catalog, "pg_class", None, ROWS).is_some_and(|rows| rows > 0.0));
    assert!(value(&catalog, "pg_class", Some("relname"), DISTINCT).is_some());
}

#[test]
fn exact_statistics_are_not_implemented() {
    let Some((_, conn)) = connect() else {
        return;
    };
    let error = conn
        .get_statistics(None, None, None, false)
        .err()
        .expect("exact statistics are refused");
    assert_eq!(error.status, Status::NotImplemented);
    assert!(error.message.contains("approximate"), "{}", error.message);
    // The session is still usable.
    assert!(!flatten(&statistics(&conn, None, Some("app"), Some("people"))).is_empty());
}

#[test]
fn statistic_names_are_none() {
    let Some((_, conn)) = connect() else {
        return;
    };
    let names = collect(conn.get_statistic_names().expect("statistic names"));
    assert_eq!(names.schema(), *GET_STATISTIC_NAMES_SCHEMA);
    assert_eq!(names.num_rows(), 0);
}
