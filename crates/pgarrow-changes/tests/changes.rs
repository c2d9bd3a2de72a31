//! Changes as Arrow against a real server with `wal_level = logical`: every change of a table of
//! many types, replayed onto nothing, equals the table as the export reads it; replica
//! identities, unchanged TOASTed values, truncates, a schema change mid-stream, a large
//! transaction; files that resume exactly after a roll cut short at every point; an export in a
//! slot's snapshot plus the slot's changes equal the final table under a concurrent writer.

#![allow(clippy::needless_range_loop)] // rows are walked by index across several columns

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use pgarrow::protocol::replication::Lsn;
use pgarrow::{Client, ExportOptions, Source, Stop};
use pgarrow_changes::{
    ChangeEvent, ChangeOptions, ChangeStream, ChangeTarget, ChangesProgress, ValueFormat,
};

/// One cluster for the binary, with `wal_level = logical` and the least decoding memory (64kB:
/// the server streams every larger transaction before its commit).
fn cluster() -> Option<&'static pgarrow_scratch::Cluster> {
    static CLUSTER: OnceLock<Option<pgarrow_scratch::Cluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            pgarrow_testkit::logical_cluster(&[
                "logical_decoding_work_mem = '64kB'",
                "max_replication_slots = 20",
                "max_wal_senders = 20",
            ])
        })
        .as_ref()
}

struct Db {
    pg: &'static pgarrow_scratch::Cluster,
    name: String,
}

impl Db {
    fn new(prefix: &str, script: &str) -> Option<Db> {
        let pg = cluster()?;
        let name = pg.create_database(prefix).unwrap();
        let db = Db { pg, name };
        db.psql(script);
        Some(db)
    }

    fn psql(&self, sql: &str) -> String {
        self.pg
            .psql(&self.name, sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn url(&self) -> String {
        self.pg.url(&self.name)
    }

    /// The table as the export reads it, one row per id.
    async fn export(&self, table: &str) -> (arrow_schema::SchemaRef, Vec<RecordBatch>) {
        let mut client = Client::connect(&self.url()).await.unwrap();
        let mut export = client
            .export(
                Source::query(format!("SELECT * FROM {table} ORDER BY id")),
                &ExportOptions::default(),
            )
            .await
            .unwrap();
        let schema = export.schema();
        let mut batches = Vec::new();
        while let Some(b) = export.next_batch().await.unwrap() {
            batches.push(b);
        }
        (schema, batches)
    }
}

/// Every event of a stream that ends once caught up.
/// The stream's hooks hear each position confirmed, once, in order.
async fn stream_all(db: &Db, options: ChangeOptions) -> Vec<ChangeEvent> {
    let confirmed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let heard = std::sync::Arc::clone(&confirmed);
    let hooks =
        pgarrow::Hooks::new().on_progress(move |lsn: &Lsn| heard.lock().unwrap().push(*lsn));
    let mut stream = ChangeStream::start_with(db.url(), options, hooks)
        .await
        .unwrap();
    let mut events = Vec::new();
    let mut checkpoints = Vec::new();
    let started = stream.confirmed();
    while let Some(e) = stream.next_event().await.unwrap() {
        if let ChangeEvent::Checkpoint(lsn) = &e {
            stream.confirm(*lsn).await.unwrap();
            if checkpoints.last().is_none_or(|last| last < lsn) {
                checkpoints.push(*lsn);
            }
        }
        events.push(e);
    }
    stream.close().await.unwrap();
    let confirmed = confirmed.lock().unwrap().clone();
    // Each position confirmed past the start is heard once, in order, and the last is the
    // last checkpoint's.
    assert!(confirmed.windows(2).all(|w| w[0] < w[1]), "{confirmed:?}");
    assert!(
        confirmed.iter().all(|c| checkpoints.contains(c)),
        "{confirmed:?}"
    );
    let past_start: Vec<Lsn> = checkpoints.into_iter().filter(|c| *c > started).collect();
    assert_eq!(confirmed.last(), past_start.last(), "{confirmed:?}");
    events
}

fn catch_up(slot: &str) -> ChangeOptions {
    let mut o = ChangeOptions::new(slot, &["p"]);
    o.catch_up = true;
    o
}

/// The rows of `table` in `events`.
fn rows_of<'a>(events: &'a [ChangeEvent], table: &str) -> Vec<&'a RecordBatch> {
    events
        .iter()
        .filter_map(|e| match e {
            ChangeEvent::Rows(b) if b.table.name == table => Some(&b.batch),
            _ => None,
        })
        .collect()
}

fn strs(a: &dyn Array) -> Vec<Option<String>> {
    let f = arrow_cast::display::ArrayFormatter::try_new(a, &Default::default()).unwrap();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| f.value(i).to_string()))
        .collect()
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

/// Replays changes in commit order onto an empty table keyed by `id`: the last image of each live
/// row, as (batch, index).
fn replay(batches: &[&RecordBatch]) -> BTreeMap<i32, (usize, usize)> {
    let mut live = BTreeMap::new();
    let mut last_lsn = (0, 0);
    for (bi, b) in batches.iter().enumerate() {
        let ops = column(b, "_op").as_string::<i32>();
        let lsns = column(b, "_lsn").as_primitive::<UInt64Type>();
        let commits = column(b, "_commit_lsn").as_primitive::<UInt64Type>();
        let ids = column(b, "id").as_primitive::<Int32Type>();
        let old = column(b, "_old").as_struct();
        let old_ids = old
            .column_by_name("id")
            .unwrap()
            .as_primitive::<Int32Type>();
        for i in 0..b.num_rows() {
            // Transactions in commit order, each one's changes in LSN order (a transaction
            // that began before another and committed after it has the lower LSNs).
            let at = (commits.value(i), lsns.value(i));
            assert!(at >= last_lsn, "changes in commit order, then LSN order");
            last_lsn = at;
            if old.is_valid(i) {
                live.remove(&old_ids.value(i));
            }
            match ops.value(i) {
                "insert" | "update" => {
                    live.insert(ids.value(i), (bi, i));
                }
                "delete" => {
                    live.remove(&ids.value(i));
                }
                "truncate" => live.clear(),
                other => panic!("op {other}"),
            }
        }
    }
    live
}

/// The replayed rows equal the exported table, column by column, and the columns' types are
/// the export's.
fn assert_replay_equals(
    batches: &[&RecordBatch],
    schema: &arrow_schema::SchemaRef,
    table: &[RecordBatch],
) {
    let live = replay(batches);
    let first = batches.first().expect("changes");
    for field in schema.fields() {
        let ours = first
            .schema()
            .field_with_name(field.name())
            .unwrap()
            .clone();
        assert_eq!(
            ours.data_type(),
            field.data_type(),
            "column {}: the change's type is the export's",
            field.name()
        );
    }
    let mut exported_ids = Vec::new();
    for b in table {
        let ids = column(b, "id").as_primitive::<Int32Type>();
        for i in 0..b.num_rows() {
            let id = ids.value(i);
            exported_ids.push(id);
            let (bi, ci) = live[&id];
            for field in schema.fields() {
                let want = column(b, field.name()).slice(i, 1);
                let got = column(batches[bi], field.name()).slice(ci, 1);
                assert!(
                    want.as_ref() == got.as_ref(),
                    "row {id}, column {}: exported {:?}, changes {:?}",
                    field.name(),
                    strs(&want),
                    strs(&got)
                );
            }
        }
    }
    assert_eq!(
        live.keys().copied().collect::<Vec<_>>(),
        exported_ids,
        "the same rows"
    );
}

const TYPES: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE t (
    id int PRIMARY KEY, i2 int2, i8 int8, f4 float4, f8 float8, n numeric(20,5), nu numeric,
    b bool, tx text, vc varchar(10), bp char(3), by bytea, d date, tm time, ts timestamp,
    tstz timestamptz, iv interval, u uuid, js json, jb jsonb, ia int4[], ta text[], m mood,
    p pair, dom posint, r int4range, mon money, o oid, ch \"char\", nm name, x xml,
    ia2 int8[][]
);
CREATE PUBLICATION p FOR TABLE t;
SELECT pg_create_logical_replication_slot('s_types', 'pgoutput');
";

const TYPE_CHANGES: &str = "
INSERT INTO t SELECT g, g::int2, g * 1000000000000, g / 3.0, g / 7.0, g * 1.23456, g ^ 30 / 7,
    g % 2 = 0, 'text ' || g || ' é', 'v' || g, 'c' || (g % 10), decode(md5(g::text), 'hex'),
    date '2000-01-01' + g, time '00:00:01' * g, timestamp '1999-12-31 23:59:59.5' + g * interval '1 hour',
    timestamptz '2024-03-10 01:30:00+00' + g * interval '37 minutes', make_interval(g, g, 0, g, g, g, g / 10.0),
    md5(g::text)::uuid, json_build_object('g', g, 'a', ARRAY[g, NULL]), jsonb_build_object('k', g, 'n', NULL),
    ARRAY[g, NULL, -g], ARRAY['a' || g, NULL, ''], (ARRAY['sad', 'ok', 'happy'])[g % 3 + 1]::mood,
    ROW(g, 'p' || g)::pair, g, int4range(g, g * 2), (g * 1.25)::numeric::money, g::oid, chr(65 + g % 26)::\"char\",
    'name' || g, ('<a>' || g || '</a>')::xml, ARRAY[[g, g + 1], [NULL, 3]]
  FROM generate_series(1, 60) g;
INSERT INTO t (id) VALUES (100);
INSERT INTO t (id, f4, f8, d, ts, n) VALUES (101, 'NaN', '-Infinity', '0001-01-01', '4713-11-24 00:00:00 BC', -0.00001);
UPDATE t SET tx = 'updated ' || id, jb = jb || '{\"u\": true}', ia = ia || 7 WHERE id % 5 = 0;
UPDATE t SET m = NULL, p = NULL, r = 'empty' WHERE id % 7 = 0;
DELETE FROM t WHERE id % 11 = 0;
UPDATE t SET id = id + 1000 WHERE id % 13 = 0;
BEGIN; UPDATE t SET i2 = -1 WHERE id = 1; DELETE FROM t WHERE id = 2; INSERT INTO t (id, tx) VALUES (2, 'again'); COMMIT;
";

#[tokio::test]
async fn every_type_through_inserts_updates_and_deletes_replays_to_the_exported_table() {
    let Some(db) = Db::new("changes_types", TYPES) else {
        return;
    };
    db.psql(TYPE_CHANGES);
    let events = stream_all(&db, catch_up("s_types")).await;
    let (schema, table) = db.export("t").await;
    let rows = rows_of(&events, "t");
    let total: usize = rows.iter().map(|b| b.num_rows()).sum();
    // 63 inserts, 12 + 8 updates, 5 deletes, 4 key changes, 4 in the last transaction.
    assert!(total > 80, "{total} changes");
    assert_replay_equals(&rows, &schema, &table);
    // Metadata: commit LSN and time are the transaction's, the same within it.
    let last = rows.last().unwrap();
    let n = last.num_rows();
    let commit = column(last, "_commit_lsn").as_primitive::<UInt64Type>();
    let xid = column(last, "_xid").as_primitive::<arrow_array::types::UInt32Type>();
    assert_eq!(commit.value(n - 1), commit.value(n - 3));
    assert_eq!(xid.value(n - 1), xid.value(n - 3));
    assert_eq!(
        strs(column(last, "_op").as_ref())[n - 3..],
        [
            Some("update".into()),
            Some("delete".into()),
            Some("insert".into())
        ]
    );
    // The slot was told: a new stream has nothing more.
    let again = stream_all(&db, catch_up("s_types")).await;
    assert!(
        rows_of(&again, "t").is_empty(),
        "nothing is delivered twice"
    );
    // ... up to the last transaction delivered (the WAL is the cluster's: other tests move the
    // current position, so it is no measure).
    let last_commit = commit.value(n - 1);
    let confirmed = db.psql(&format!(
        "SELECT confirmed_flush_lsn >= '{:X}/{:X}' FROM pg_replication_slots WHERE slot_name = \
         's_types'",
        last_commit >> 32,
        last_commit & 0xFFFF_FFFF
    ));
    assert_eq!(confirmed.trim(), "t");
}

#[tokio::test]
async fn text_values_give_every_column_as_the_servers_text() {
    let Some(db) = Db::new(
        "changes_text",
        "CREATE TABLE t (id int PRIMARY KEY, ip inet, tz timetz, bits varbit, n numeric);
         CREATE PUBLICATION p FOR TABLE t;
         SELECT pg_create_logical_replication_slot('s_text', 'pgoutput');
         SELECT pg_create_logical_replication_slot('s_text_bin', 'pgoutput');",
    ) else {
        return;
    };
    db.psql(
        "INSERT INTO t VALUES (1, '10.0.0.1/8', '12:34:56+05:30', B'1011', 1.50), (2, NULL, NULL, NULL, 'NaN');",
    );
    // Asked for binary, the column without a binary decoder is refused by name.
    let mut options = catch_up("s_text_bin");
    options.values = ValueFormat::Binary;
    let mut stream = ChangeStream::start(db.url(), options).await.unwrap();
    let e = loop {
        match stream.next_event().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the inet column was taken as binary"),
            Err(e) => break e,
        }
    };
    assert!(
        e.to_string().contains("\"ip\"") && e.to_string().contains("text values"),
        "{e}"
    );
    // Auto (binary where the server has it) takes text for the whole stream, and says why.
    let auto = ChangeStream::start(db.url(), catch_up("s_text"))
        .await
        .unwrap();
    assert!(auto.text_values());
    if db.pg.server_version_num() >= 140_000 {
        let reason = auto.text_reason().unwrap().to_owned();
        assert!(
            reason.contains("\"public\".\"t\".\"ip\" (inet)"),
            "{reason}"
        );
        assert!(!reason.contains("\"n\""), "{reason}");
    }
    auto.close().await.unwrap();
    let mut options = catch_up("s_text");
    options.values = ValueFormat::Text;
    let events = stream_all(&db, options).await;
    let rows = rows_of(&events, "t");
    assert_eq!(rows.len(), 1);
    let b = rows[0];
    for name in ["id", "ip", "tz", "bits", "n"] {
        let ours = strs(column(b, name).as_ref());
        let server: Vec<Option<String>> = db
            .psql(&format!(
                "SELECT coalesce({name}::text, '<null>') FROM t ORDER BY id"
            ))
            .lines()
            .map(|l| (l != "<null>").then(|| l.to_owned()))
            .collect();
        assert_eq!(ours, server, "column {name}");
        assert_eq!(
            column(b, name).data_type(),
            &arrow_schema::DataType::Utf8,
            "{name} is text"
        );
    }
}

#[tokio::test]
async fn identities_unchanged_toast_and_truncate_are_marked() {
    let Some(db) = Db::new(
        "changes_identity",
        "CREATE TABLE d (id int PRIMARY KEY, v text, big text);
         CREATE TABLE f (id int, v text);
         ALTER TABLE f REPLICA IDENTITY FULL;
         CREATE TABLE i (id int NOT NULL, k int NOT NULL, v text);
         CREATE UNIQUE INDEX i_k ON i (k);
         ALTER TABLE i REPLICA IDENTITY USING INDEX i_k;
         CREATE PUBLICATION p FOR TABLE d, f, i;
         SELECT pg_create_logical_replication_slot('s_ident', 'pgoutput');",
    ) else {
        return;
    };
    db.psql(
        "INSERT INTO d VALUES (1, 'a', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 4000) g));
         UPDATE d SET v = 'b' WHERE id = 1;
         UPDATE d SET id = 2 WHERE id = 1;
         DELETE FROM d WHERE id = 2;
         INSERT INTO f VALUES (1, 'x');
         UPDATE f SET v = 'y';
         DELETE FROM f;
         INSERT INTO i VALUES (1, 10, 'a');
         UPDATE i SET k = 11, v = 'b';
         DELETE FROM i;
         TRUNCATE d, f;",
    );
    let events = stream_all(&db, catch_up("s_ident")).await;
    let one = |t: &str| {
        let rows = rows_of(&events, t);
        arrow_select_concat(&rows)
    };
    let d = one("d");
    assert_eq!(
        strs(column(&d, "_op").as_ref()),
        ["insert", "update", "update", "delete", "truncate"].map(|s| Some(s.to_owned()))
    );
    // The value update: `big` unchanged and TOASTed, so absent, and named.
    let big = strs(column(&d, "big").as_ref());
    assert_eq!(big[0].as_ref().map(String::len), Some(128_000));
    assert_eq!(big[1], None);
    let unchanged = column(&d, "_unchanged").as_list::<i32>();
    assert!(unchanged.is_null(0));
    assert_eq!(strs(unchanged.value(1).as_ref()), [Some("big".to_owned())]);
    assert_eq!(strs(unchanged.value(2).as_ref()), [Some("big".to_owned())]);
    // The key update carries the old key, and only the key.
    let old = column(&d, "_old").as_struct();
    assert!(old.is_null(0) && old.is_null(1) && old.is_valid(2));
    assert_eq!(strs(old.column_by_name("id").unwrap())[2], Some("1".into()));
    assert_eq!(strs(old.column_by_name("v").unwrap())[2], None);
    // The delete by default identity: the key, the rest NULL.
    assert_eq!(strs(column(&d, "id").as_ref())[3], Some("2".into()));
    assert_eq!(strs(column(&d, "v").as_ref())[3], None);
    assert_eq!(d.schema().metadata()["pgarrow.replica_identity"], "default");

    // FULL: the whole old row on update, the whole row on delete.
    let f = one("f");
    let old = column(&f, "_old").as_struct();
    assert!(old.is_valid(1));
    assert_eq!(strs(old.column_by_name("v").unwrap())[1], Some("x".into()));
    assert_eq!(strs(column(&f, "v").as_ref())[2], Some("y".into()));
    assert_eq!(f.schema().metadata()["pgarrow.replica_identity"], "full");

    // USING INDEX: the index's columns.
    let i = one("i");
    let old = column(&i, "_old").as_struct();
    assert!(old.is_valid(1));
    assert_eq!(strs(old.column_by_name("k").unwrap())[1], Some("10".into()));
    assert_eq!(strs(old.column_by_name("id").unwrap())[1], None);
    assert_eq!(strs(column(&i, "k").as_ref())[2], Some("11".into()));
    assert_eq!(strs(column(&i, "id").as_ref())[2], None);
}

fn arrow_select_concat(batches: &[&RecordBatch]) -> RecordBatch {
    let schema = batches[0].schema();
    arrow_select::concat::concat_batches(&schema, batches.iter().copied()).unwrap()
}

#[tokio::test]
async fn a_schema_change_mid_stream_starts_a_new_schema_announced() {
    let Some(db) = Db::new(
        "changes_ddl",
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE PUBLICATION p FOR TABLE t;
         SELECT pg_create_logical_replication_slot('s_ddl', 'pgoutput');",
    ) else {
        return;
    };
    db.psql(
        "INSERT INTO t VALUES (1, 'a');
         ALTER TABLE t ADD COLUMN n numeric(10,2);
         INSERT INTO t VALUES (2, 'b', 1.5);
         ALTER TABLE t ALTER COLUMN v TYPE int USING length(v);
         INSERT INTO t VALUES (3, 7, 2.25);",
    );
    let events = stream_all(&db, catch_up("s_ddl")).await;
    let schemas: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ChangeEvent::Schema(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(schemas.len(), 3, "{schemas:?}");
    assert!(!schemas[0].changed && schemas[1].changed && schemas[2].changed);
    let rows = rows_of(&events, "t");
    assert_eq!(rows.len(), 3, "one batch per schema");
    assert!(rows[0].schema().field_with_name("n").is_err());
    assert_eq!(
        rows[1].schema().field_with_name("n").unwrap().data_type(),
        &arrow_schema::DataType::Decimal128(10, 2)
    );
    assert_eq!(
        rows[2].schema().field_with_name("v").unwrap().data_type(),
        &arrow_schema::DataType::Int32
    );
    assert_eq!(strs(column(rows[2], "v").as_ref()), [Some("7".to_owned())]);
}

#[tokio::test]
async fn a_large_transaction_comes_in_bounded_batches_then_one_checkpoint() {
    let Some(db) = Db::new(
        "changes_large",
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE PUBLICATION p FOR TABLE t;
         SELECT pg_create_logical_replication_slot('s_large', 'pgoutput');",
    ) else {
        return;
    };
    db.psql("INSERT INTO t SELECT g, repeat('x', 50) FROM generate_series(1, 200000) g;");
    let mut options = catch_up("s_large");
    options.decode.batch_rows = 30_000;
    let events = stream_all(&db, options).await;
    let mut rows = 0;
    let mut checkpoints = 0;
    for e in &events {
        match e {
            ChangeEvent::Rows(b) => {
                assert!(b.batch.num_rows() <= 30_000);
                assert_eq!(checkpoints, 0, "rows after the checkpoint");
                rows += b.batch.num_rows();
            }
            ChangeEvent::Checkpoint(_) => checkpoints += 1,
            ChangeEvent::Schema(_) => {}
        }
    }
    assert_eq!(rows, 200_000);
    assert_eq!(checkpoints, 1);
}

async fn run(c: &mut pgarrow::protocol::Connection, sql: &str) {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// On PostgreSQL 14+ a transaction past `logical_decoding_work_mem` (64kB here) comes in parts
/// before its commit, between other transactions: what is delivered is still each committed
/// transaction whole, in commit order, without the rows of a subtransaction rolled back, and
/// nothing of a transaction aborted.
#[tokio::test]
async fn streamed_transactions_are_delivered_whole_at_their_commit_and_aborted_ones_not_at_all() {
    let Some(db) = Db::new(
        "changes_streamed",
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE PUBLICATION p FOR TABLE t;
         SELECT pg_create_logical_replication_slot('s_streamed', 'pgoutput');",
    ) else {
        return;
    };
    let version: u32 = db.psql("SHOW server_version_num").trim().parse().unwrap();
    let config = pgarrow::IntoConfig::into_config(db.url().as_str()).unwrap();
    let mut big = pgarrow::protocol::Connection::connect(&config)
        .await
        .unwrap();
    let mut aborted = pgarrow::protocol::Connection::connect(&config)
        .await
        .unwrap();
    // The large one starts first, a savepoint of it is rolled back, another rolled back later
    // nests one released inside it; a small one and an aborted large one come between.
    run(
        &mut big,
        "BEGIN; INSERT INTO t SELECT g, repeat('a', 40) FROM generate_series(1, 4000) g",
    )
    .await;
    run(
        &mut aborted,
        "BEGIN; INSERT INTO t SELECT g, 'gone' FROM generate_series(100001, 104000) g",
    )
    .await;
    db.psql("INSERT INTO t VALUES (50000, 'small, committed first')");
    run(&mut big, "SAVEPOINT a; INSERT INTO t SELECT g, 'rolled back' FROM generate_series(20001, 23000) g; ROLLBACK TO a").await;
    run(
        &mut big,
        "SAVEPOINT b; UPDATE t SET v = 'kept' WHERE id <= 2000; SAVEPOINT c; \
         DELETE FROM t WHERE id > 3000; RELEASE c; ROLLBACK TO b",
    )
    .await;
    run(
        &mut big,
        "SAVEPOINT d; UPDATE t SET v = 'updated' WHERE id % 2 = 0; RELEASE d",
    )
    .await;
    run(&mut aborted, "ROLLBACK").await;
    run(&mut big, "COMMIT").await;
    db.psql("DELETE FROM t WHERE id = 50000");

    let mut stream = ChangeStream::start(db.url(), catch_up("s_streamed"))
        .await
        .unwrap();
    assert_eq!(stream.streaming(), version >= 140_000);
    let mut rows: Vec<RecordBatch> = Vec::new();
    while let Some(e) = stream.next_event().await.unwrap() {
        match e {
            ChangeEvent::Rows(b) => rows.push(b.batch),
            ChangeEvent::Checkpoint(lsn) => stream.confirm(lsn).await.unwrap(),
            ChangeEvent::Schema(_) => {}
        }
    }
    let streamed = stream.streamed();
    stream.close().await.unwrap();
    let rows: Vec<&RecordBatch> = rows.iter().collect();
    // The replay equals the table, row by row.
    let (schema, table) = db.export("t").await;
    assert_replay_equals(&rows, &schema, &table);
    let ids: Vec<i32> = rows
        .iter()
        .flat_map(|b| {
            column(b, "id")
                .as_primitive::<Int32Type>()
                .values()
                .to_vec()
        })
        .collect();
    let ops: Vec<Option<String>> = rows
        .iter()
        .flat_map(|b| strs(column(b, "_op").as_ref()))
        .collect();
    // Commit order: the small insert, the large transaction (4,000 inserts then 2,001
    // updates, the small row's among them; nothing of its rolled-back savepoints), the small
    // delete.
    let mut counts = BTreeMap::new();
    for o in &ops {
        *counts.entry(o.clone()).or_insert(0) += 1;
    }
    assert_eq!(
        ids.len(),
        1 + 4000 + 2001 + 1,
        "{counts:?} {:?}",
        &ids[ids.len() - 5..]
    );
    assert_eq!((ids[0], ops[0].as_deref()), (50000, Some("insert")));
    assert_eq!(*ids.last().unwrap(), 50000);
    assert!(ids[1..4001].iter().copied().eq(1..=4000));
    assert!(
        ops[4001..6002]
            .iter()
            .all(|o| o.as_deref() == Some("update"))
    );
    assert!(
        !ids.iter().any(|id| *id > 20000 && *id != 50000),
        "rows rolled back delivered"
    );
    if version >= 140_000 {
        assert_eq!(
            (streamed.committed, streamed.aborted),
            (1, 1),
            "{streamed:?}"
        );
        assert!(streamed.rolled_back >= 1, "{streamed:?}");
        assert!(
            streamed.parts >= 2 && streamed.bytes > 64 * 1024,
            "{streamed:?}"
        );
        let server = db.psql(
            "SELECT stream_txns > 0 FROM pg_stat_replication_slots WHERE slot_name = 's_streamed'",
        );
        assert_eq!(server.trim(), "t", "the server streamed");
    }
}

#[tokio::test]
async fn a_missing_slot_or_publication_is_named() {
    let Some(db) = Db::new(
        "changes_missing",
        "CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t;",
    ) else {
        return;
    };
    let e = ChangeStream::start(db.url(), catch_up("nope"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("\"nope\" does not exist"), "{e}");
    let mut o = catch_up("nope");
    o.publications = vec!["q".into()];
    let e = ChangeStream::start(db.url(), o).await.unwrap_err();
    assert!(e.to_string().contains("no publication [\"q\"]"), "{e}");
    // Asked for, the slot is made, and the changes after it come.
    let mut o = catch_up("made");
    o.create_slot = true;
    assert!(stream_all(&db, o.clone()).await.is_empty());
    db.psql("INSERT INTO t VALUES (1)");
    let events = stream_all(&db, catch_up("made")).await;
    assert_eq!(rows_of(&events, "t").len(), 1);
}

/// Every (table, id, _op, _lsn) in the files the manifest lists, counting repeats.
fn files_changes(dir: &std::path::Path) -> BTreeMap<(String, String, String, u64), usize> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("_changes.json")).unwrap()).unwrap();
    assert!(manifest["pending"].as_array().unwrap().is_empty());
    let mut seen = BTreeMap::new();
    for f in manifest["files"].as_array().unwrap() {
        let path = dir.join(f["path"].as_str().unwrap());
        let file = std::fs::File::open(&path).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024).unwrap();
        for b in reader {
            let b = b.unwrap();
            let ids = strs(column(&b, "id").as_ref());
            let ops = strs(column(&b, "_op").as_ref());
            let lsns = column(&b, "_lsn").as_primitive::<UInt64Type>();
            for i in 0..b.num_rows() {
                *seen
                    .entry((
                        f["table"].as_str().unwrap().to_owned(),
                        ids[i].clone().unwrap_or_default(),
                        ops[i].clone().unwrap(),
                        lsns.value(i),
                    ))
                    .or_insert(0) += 1;
            }
        }
    }
    seen
}

/// The slot's changes caught up into Parquet file sets in `dir`, rolled every 7 rows.
async fn to_dir(db: &Db, slot: &str, dir: &std::path::Path) -> pgarrow_changes::ChangesStats {
    to_dir_with(db, catch_up(slot), dir, 7).await
}

async fn to_dir_with(
    db: &Db,
    options: ChangeOptions,
    dir: &std::path::Path,
    roll_rows: u64,
) -> pgarrow_changes::ChangesStats {
    let mut target = ChangeTarget::dir(dir.to_path_buf(), pgarrow::io::Format::Parquet);
    target.roll_rows = roll_rows;
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let heard = std::sync::Arc::clone(&events);
    let hooks = pgarrow::Hooks::new().on_progress(move |e: &ChangesProgress| {
        heard.lock().unwrap().push(e.clone());
    });
    let stats = pgarrow_changes::changes_to(db.url(), options, &target, hooks)
        .await
        .unwrap();
    // The progress events tell what the statistics sum up: each roll's files and rows, the
    // last position, each schema change.
    let events = events.lock().unwrap();
    let (mut files, mut rows, mut last, mut schemas) = (0, 0, None, 0);
    for event in events.iter() {
        match event {
            ChangesProgress::Rolled {
                files: f,
                rows: r,
                lsn,
            } => {
                assert!(*f > 0, "{event}");
                (files, rows, last) = (files + *f as u64, rows + r, Some(lsn.to_string()));
            }
            ChangesProgress::SchemaChanged { .. } => schemas += 1,
            _ => {}
        }
    }
    assert_eq!((files, rows), (stats.files, stats.rows), "{events:?}");
    assert_eq!(schemas, stats.schema_changes.len(), "{events:?}");
    if let Some(last) = last {
        assert_eq!(last, stats.end_lsn);
    }
    stats
}

#[tokio::test]
async fn files_resume_exactly_after_a_roll_cut_short_at_each_point() {
    let Some(db) = Db::new(
        "changes_resume",
        "CREATE TABLE t (id int PRIMARY KEY, v int);
         CREATE TABLE u (id int PRIMARY KEY);
         CREATE PUBLICATION p FOR TABLE t, u;
         SELECT pg_create_logical_replication_slot('r_a', 'pgoutput');
         SELECT pg_create_logical_replication_slot('r_b', 'pgoutput');
         SELECT pg_create_logical_replication_slot('r_c', 'pgoutput');",
    ) else {
        return;
    };
    // Slots a, b and c start at the same place: b and c are the slot of a run that died after
    // writing and before confirming (c: before even listing its files).
    for round in 0..5 {
        db.psql(&format!(
            "INSERT INTO t SELECT g, 0 FROM generate_series({0} * 10 + 1, {0} * 10 + 10) g;
             UPDATE t SET v = v + 1 WHERE id % 3 = 0;
             INSERT INTO u VALUES ({0});
             DELETE FROM t WHERE id = {0} * 10 + 5;",
            round
        ));
    }
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("a");
    let stats = to_dir(&db, "r_a", &full).await;
    let expected = files_changes(&full);
    assert_eq!(expected.values().max(), Some(&1));
    assert_eq!(stats.rows as usize, expected.len());
    assert!(stats.files > 4, "rolled: {stats:?}");
    assert!(expected.len() > 70);

    // Died after the manifest listed the files, before the slot heard: resume skips them.
    let after_manifest = tmp.path().join("b");
    copy_dir(&full, &after_manifest, "r_b");
    db.psql("INSERT INTO t VALUES (1000, 1)");
    let stats = to_dir(&db, "r_b", &after_manifest).await;
    assert_eq!(stats.rows, 1, "only the new change: {stats:?}");
    let mut want = expected.clone();
    let new: Vec<_> = files_changes(&after_manifest)
        .into_iter()
        .filter(|(k, _)| !expected.contains_key(k))
        .collect();
    assert_eq!(new.len(), 1);
    want.extend(new);
    assert_eq!(files_changes(&after_manifest), want);

    // Died after writing files still pending: they are removed and written again, once.
    let pending = tmp.path().join("c");
    copy_dir(&full, &pending, "r_c");
    let m_path = pending.join("_changes.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&m_path).unwrap()).unwrap();
    let files = m["files"].as_array_mut().unwrap();
    // The rolls, in order: cut after the first half of them.
    let mut rolls: Vec<String> = files
        .iter()
        .map(|f| f["checkpoint_lsn"].as_str().unwrap().to_owned())
        .collect();
    rolls.dedup();
    assert!(rolls.len() >= 4, "{rolls:?}");
    let keep = rolls.len() / 2;
    let cut = files
        .iter()
        .position(|f| f["checkpoint_lsn"] == rolls[keep].as_str())
        .unwrap();
    let moved: Vec<serde_json::Value> = files.drain(cut..).collect();
    m["pending"] = moved.iter().map(|f| f["path"].clone()).collect();
    m["end_lsn"] = serde_json::Value::String(rolls[keep - 1].clone());
    std::fs::write(&m_path, serde_json::to_vec(&m).unwrap()).unwrap();
    to_dir(&db, "r_c", &pending).await;
    assert_eq!(files_changes(&pending), want, "each change once");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path, slot: &str) {
    for entry in walk(from) {
        let rel = entry.strip_prefix(from).unwrap();
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &dest).unwrap();
    }
    let m = to.join("_changes.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    v["slot"] = serde_json::Value::String(slot.to_owned());
    std::fs::write(&m, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn an_export_in_the_slots_snapshot_plus_its_changes_equal_the_final_table() {
    let Some(db) = Db::new(
        "changes_handoff",
        "CREATE TABLE t (id int PRIMARY KEY, v int, note text);
         INSERT INTO t SELECT g, 0, 'start' FROM generate_series(1, 2000) g;
         CREATE PUBLICATION p FOR TABLE t;",
    ) else {
        return;
    };
    // A writer runs before, during and after the export.
    let stop_writer = Stop::new();
    let writer = {
        let url = db.url();
        let stop = stop_writer.clone();
        tokio::spawn(async move {
            let config = pgarrow::IntoConfig::into_config(url.as_str()).unwrap();
            let mut c = pgarrow::protocol::Connection::connect(&config)
                .await
                .unwrap();
            let mut n = 0;
            while !stop.is_stopped() {
                n += 1;
                c.simple_query(&format!(
                    "BEGIN; UPDATE t SET v = v + 1, note = 'w{n}' WHERE id % 97 = {m};
                     INSERT INTO t VALUES (10000 + {n}, {n}, 'new');
                     DELETE FROM t WHERE id = {d}; COMMIT;",
                    m = n % 97,
                    d = n * 7 % 2000 + 1
                ))
                .await
                .unwrap();
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("t.parquet");
    let (_, slot) = pgarrow_changes::slot::export_in_new_slot(
        db.url(),
        "hand",
        "pgoutput",
        Source::table("t").unwrap(),
        &ExportOptions::default(),
        &pgarrow::partition::PartitionOptions::new(1),
        &pgarrow::incremental::RunTarget::File(pgarrow::FileTarget::new(
            pgarrow::io::Format::Parquet,
            pgarrow::io::Output::File(file.clone()),
        )),
        pgarrow::Hooks::new(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_writer.stop();
    let writes = writer.await.unwrap();
    assert!(writes > 3, "the writer ran: {writes}");
    assert!(!slot.consistent_point.is_empty());

    let events = stream_all(&db, catch_up("hand")).await;
    let changes = rows_of(&events, "t");
    // The export's rows, as inserts before every change.
    let f = std::fs::File::open(&file).unwrap();
    let exported: Vec<RecordBatch> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(f, 4096)
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let mut live: BTreeMap<i32, (i32, String)> = BTreeMap::new();
    for b in &exported {
        let ids = column(b, "id").as_primitive::<Int32Type>();
        let vs = column(b, "v").as_primitive::<Int32Type>();
        let notes = strs(column(b, "note").as_ref());
        for i in 0..b.num_rows() {
            live.insert(ids.value(i), (vs.value(i), notes[i].clone().unwrap()));
        }
    }
    for b in &changes {
        let ids = column(b, "id").as_primitive::<Int32Type>();
        let vs = column(b, "v").as_primitive::<Int32Type>();
        let notes = strs(column(b, "note").as_ref());
        let ops = strs(column(b, "_op").as_ref());
        for i in 0..b.num_rows() {
            match ops[i].as_deref() {
                Some("delete") => {
                    assert!(
                        live.remove(&ids.value(i)).is_some(),
                        "deleted {}",
                        ids.value(i)
                    );
                }
                Some("insert") => {
                    let prev = live.insert(ids.value(i), (vs.value(i), notes[i].clone().unwrap()));
                    assert!(prev.is_none(), "inserted twice: {}", ids.value(i));
                }
                _ => {
                    let prev = live.insert(ids.value(i), (vs.value(i), notes[i].clone().unwrap()));
                    assert!(prev.is_some(), "updated a row not there: {}", ids.value(i));
                }
            }
        }
    }
    let table: BTreeMap<i32, (i32, String)> = db
        .psql("SELECT id || '|' || v || '|' || note FROM t")
        .lines()
        .map(|l| {
            let mut p = l.split('|');
            let id = p.next().unwrap().parse().unwrap();
            let v = p.next().unwrap().parse().unwrap();
            (id, (v, p.next().unwrap().to_owned()))
        })
        .collect();
    assert_eq!(live.len(), table.len());
    assert!(live == table, "export + changes == the final table");
}

/// The tables of the apply tests: default identity with a TOASTed column and several types, a
/// FULL identity table without a primary key (keyed on the target), a composite key.
const APPLY_TABLES: &str = "
    CREATE TABLE d (id int PRIMARY KEY, v text, big text, n numeric, ts timestamptz, tags text[],
                    j jsonb);
    CREATE TABLE f (id int NOT NULL, v text);
    ALTER TABLE f REPLICA IDENTITY FULL;
    CREATE TABLE x (a int, b text, c float8, PRIMARY KEY (a, b));";

const APPLY_START: &str = "
    INSERT INTO d SELECT g, 'v' || g, CASE WHEN g % 3 = 0 THEN
        (SELECT string_agg(md5(g::text || s::text), '') FROM generate_series(1, 2000) s) END,
        g * 1.5, '2024-01-01'::timestamptz + g * interval '1 hour', ARRAY['a', g::text],
        jsonb_build_object('g', g) FROM generate_series(1, 30) g;
    INSERT INTO f SELECT g, 'f' || g FROM generate_series(1, 10) g;
    INSERT INTO x SELECT g, 'b' || g, g / 4.0 FROM generate_series(1, 10) g;";

/// Changes of every kind, over several transactions (so several rolls at seven rows each).
const APPLY_WORK: &str = "
    INSERT INTO d VALUES (100, 'new', repeat('z', 100000), 1e-20, now(), '{}', 'null');
    UPDATE d SET v = 'changed' WHERE id % 3 = 0;
    UPDATE d SET v = 'again', n = n + 1 WHERE id = 3;
    UPDATE d SET id = id + 1000 WHERE id IN (6, 9);
    UPDATE d SET v = 'after the key change' WHERE id = 1006;
    DELETE FROM d WHERE id IN (1, 2, 100);
    INSERT INTO d VALUES (1, 'back', NULL, NULL, NULL, NULL, NULL);
    BEGIN; UPDATE d SET big = 'small now' WHERE id = 12; UPDATE d SET v = 'v after big' WHERE id = 12; COMMIT;
    BEGIN; DELETE FROM d WHERE id = 15; INSERT INTO d VALUES (15, 'reborn', 'b', 0, NULL, NULL, NULL); COMMIT;
    UPDATE f SET v = 'full ' || id WHERE id < 4;
    UPDATE f SET id = id + 100 WHERE id = 5;
    DELETE FROM f WHERE id = 7;
    UPDATE x SET b = b || 'x' WHERE a < 3;
    UPDATE x SET c = -c WHERE a > 8;
    DELETE FROM x WHERE a = 5;
    TRUNCATE x;
    INSERT INTO x VALUES (1, 'after truncate', 1e300), (2, 'nan', 'NaN');";

/// A source database with the apply tests' tables and rows, published as `p`, with the slot
/// `slot` made before any change.
fn apply_source(prefix: &str, slot: &str) -> Option<Db> {
    Db::new(
        prefix,
        &format!(
            "{APPLY_TABLES} {APPLY_START}
             CREATE PUBLICATION p FOR TABLE d, f, x;
             SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput');"
        ),
    )
}

/// `table` as psql prints it, ordered by its first columns (`d`'s big values as their length
/// and digest).
fn table_text(db: &Db, table: &str, order: &str) -> String {
    let columns = match table {
        "d" => "id, v, length(big), md5(big), n, ts, tags, j",
        _ => "*",
    };
    db.psql(&format!("SELECT {columns} FROM {table} ORDER BY {order}"))
}

fn apply_options() -> pgarrow_changes::ApplyOptions {
    let mut options = pgarrow_changes::ApplyOptions::default();
    // f has no primary key: its key is given.
    options.keys.push((
        pgarrow::names::TableName::parse("f").unwrap(),
        vec!["id".to_owned()],
    ));
    options
}

async fn apply(target: &Db, dir: &std::path::Path) -> pgarrow::Result<pgarrow_changes::ApplyStats> {
    pgarrow_changes::apply_changes(
        target.url(),
        &pgarrow::io::Location::from(dir.to_path_buf()),
        &apply_options(),
        pgarrow::Hooks::new(),
    )
    .await
}

fn assert_same_tables(source: &Db, target: &Db) {
    for (table, order) in [("d", "id"), ("f", "id"), ("x", "a, b")] {
        assert_eq!(
            table_text(target, table, order),
            table_text(source, table, order),
            "{table} on the target"
        );
    }
}

#[tokio::test]
async fn changes_applied_to_another_database_equal_the_source_and_apply_once() {
    for values in [ValueFormat::Binary, ValueFormat::Text] {
        let slot = format!("s_apply_{values:?}").to_lowercase();
        let Some(source) = apply_source("changes_apply_src", &slot) else {
            return;
        };
        let target = Db::new(
            "changes_apply_dst",
            &format!(
                "{APPLY_TABLES} {APPLY_START}
            ALTER TABLE f ADD PRIMARY KEY (id);"
            ),
        )
        .unwrap();
        source.psql(APPLY_WORK);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("changes");
        let mut options = catch_up(&slot);
        options.values = values;
        to_dir_with(&source, options.clone(), &dir, 7).await;

        let stats = apply(&target, &dir).await.unwrap();
        assert!(stats.rolls > 2, "{stats:?}");
        assert_eq!(stats.rolls_skipped, 0);
        assert_eq!(stats.truncates, 1);
        assert!(stats.deleted >= 4 && stats.upserted > 10, "{stats:?}");
        assert_same_tables(&source, &target);
        // The unsent TOASTed values came from the target's rows: the big values are there.
        assert_eq!(
            target
                .psql("SELECT count(*) FROM d WHERE length(big) = 64000")
                .trim(),
            source
                .psql("SELECT count(*) FROM d WHERE length(big) = 64000")
                .trim()
        );

        // Again: every roll is known as applied.
        let again = apply(&target, &dir).await.unwrap();
        assert_eq!((again.rolls, again.changes), (0, 0), "{again:?}");
        assert_eq!(again.rolls_skipped, stats.rolls);
        assert_eq!(again.checkpoint_lsn, stats.checkpoint_lsn);

        // More changes, a second run of the stream into the same directory: only those apply.
        source.psql(
            "UPDATE d SET v = 'third run' WHERE id > 20;
             DELETE FROM f WHERE id > 8;
             INSERT INTO x VALUES (3, 'three', 3);",
        );
        to_dir_with(&source, options, &dir, 7).await;
        let third = apply(&target, &dir).await.unwrap();
        assert_eq!(third.rolls_skipped, stats.rolls);
        assert!(third.rolls >= 1 && third.changes > 0, "{third:?}");
        assert_same_tables(&source, &target);
        assert_eq!(
            target
                .psql(&format!(
                    "SELECT checkpoint_lsn FROM pgarrow_applied_changes WHERE slot = '{slot}'"
                ))
                .trim(),
            third.checkpoint_lsn
        );
    }
}

#[tokio::test]
async fn an_apply_that_cannot_be_done_says_why_and_changes_nothing() {
    let Some(source) = apply_source("changes_apply_bad", "s_apply_bad") else {
        return;
    };
    source.psql(APPLY_WORK);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("changes");
    // One roll: every change in one transaction of the target.
    to_dir_with(&source, catch_up("s_apply_bad"), &dir, 1_000_000).await;

    // A target table missing: named.
    let missing = Db::new("changes_apply_missing", "CREATE TABLE unrelated (id int);").unwrap();
    let e = apply(&missing, &dir).await.unwrap_err();
    assert!(
        e.to_string().contains("the target table") && e.to_string().contains("does not exist"),
        "{e}"
    );

    // A target whose rows are not the source's: the update that did not send `big` has no row
    // to take it from. Nothing is applied.
    let behind = Db::new(
        "changes_apply_behind",
        &format!(
            "{APPLY_TABLES} ALTER TABLE f ADD PRIMARY KEY (id); INSERT INTO d VALUES (42, 'keep');"
        ),
    )
    .unwrap();
    let e = apply(&behind, &dir).await.unwrap_err();
    assert!(e.to_string().contains("not in step with the source"), "{e}");
    assert_eq!(
        e.category(),
        pgarrow::Category::Value,
        "a target out of step is a data fault, not a usage error: {e}"
    );
    assert_eq!(behind.psql("SELECT id, v FROM d").trim(), "42|keep");
    assert_eq!(
        behind
            .psql("SELECT count(*) FROM pgarrow_applied_changes")
            .trim(),
        "0"
    );

    // A directory that is not a changes directory.
    let e = apply(&behind, tmp.path()).await.unwrap_err();
    assert!(e.to_string().contains("_changes.json"), "{e}");
    assert!(e.is_usage(), "the wrong directory given: {e}");
}

#[tokio::test]
async fn a_stopped_apply_undoes_the_roll_under_way_and_a_rerun_goes_on_from_there() {
    let Some(source) = apply_source("changes_apply_stop", "s_apply_stop") else {
        return;
    };
    let target = Db::new(
        "changes_apply_stop_dst",
        &format!("{APPLY_TABLES} {APPLY_START} ALTER TABLE f ADD PRIMARY KEY (id);"),
    )
    .unwrap();
    source.psql(APPLY_WORK);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("changes");
    to_dir(&source, "s_apply_stop", &dir).await;
    let x_before = table_text(&target, "x", "a, b");

    // x is locked on the target: the first roll with x's changes waits for it (after rolls of d
    // and f only), and is stopped while it waits.
    let mut locker = Client::connect(&target.url()).await.unwrap();
    locker
        .connection()
        .simple_query("BEGIN; LOCK TABLE x IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let stop = Stop::new();
    let mut applied = Vec::new();
    let dir_at = pgarrow::io::Location::from(dir.clone());
    let options = apply_options();
    let hooks = pgarrow::Hooks::new()
        .with_stop(stop.clone())
        .on_progress(|s: &pgarrow_changes::ApplyStats| applied.push(s.checkpoint_lsn.clone()));
    let run = pgarrow_changes::apply_changes(target.url(), &dir_at, &options, hooks);
    let stop_when_waiting = async {
        let mut watcher = Client::connect(&target.url()).await.unwrap();
        // Bounded: 60 s of polls, then the test fails.
        for _ in 0..6000 {
            let rows = watcher
                .connection()
                .simple_query(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND wait_event_type = 'Lock'",
                )
                .await
                .unwrap();
            if rows[0][0].as_deref() != Some("0") {
                stop.stop();
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the apply never waited for the lock on x");
    };
    let (result, ()) = tokio::join!(run, stop_when_waiting);
    let e = result.unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    locker.connection().simple_query("ROLLBACK").await.unwrap();

    // The rolls before it stay, recorded; nothing of the stopped one is in the target.
    assert!(!applied.is_empty(), "rolls of d and f come before x's");
    assert_eq!(
        target
            .psql("SELECT checkpoint_lsn FROM pgarrow_applied_changes WHERE slot = 's_apply_stop'")
            .trim(),
        applied.last().unwrap()
    );
    assert_eq!(table_text(&target, "x", "a, b"), x_before);

    // A rerun skips those rolls and applies the rest: the target equals the source.
    let rest = apply(&target, &dir).await.unwrap();
    assert_eq!(rest.rolls_skipped, applied.len() as u64, "{rest:?}");
    assert!(rest.rolls >= 1, "{rest:?}");
    assert_same_tables(&source, &target);
}

#[tokio::test]
async fn a_given_key_without_a_unique_index_still_inserts_the_rows_it_lacks() {
    let Some(source) = Db::new(
        "changes_apply_dup",
        "CREATE TABLE g (id int NOT NULL, v text);
         ALTER TABLE g REPLICA IDENTITY FULL;
         INSERT INTO g VALUES (1, 'a');
         CREATE PUBLICATION p FOR TABLE g;
         SELECT pg_create_logical_replication_slot('s_apply_dup', 'pgoutput');",
    ) else {
        return;
    };
    // One transaction: an update of key 1 and an insert of key 2, one run of two rows. Key 1
    // is twice in the target, so the update counts two rows: as many as were staged, though
    // key 2 matched none. Only a unique key makes that count mean "every row matched".
    source
        .psql("BEGIN; UPDATE g SET v = 'x' WHERE id = 1; INSERT INTO g VALUES (2, 'new'); COMMIT;");
    let target = Db::new(
        "changes_apply_dup_dst",
        "CREATE TABLE g (id int NOT NULL, v text); INSERT INTO g VALUES (1, 'a'), (1, 'b');",
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("changes");
    to_dir(&source, "s_apply_dup", &dir).await;
    let options = pgarrow_changes::ApplyOptions::default()
        .try_with_key("g", ["id"])
        .unwrap();
    let stats = pgarrow_changes::apply_changes(
        target.url(),
        &pgarrow::io::Location::from(dir),
        &options,
        pgarrow::Hooks::new(),
    )
    .await
    .unwrap();
    assert_eq!((stats.changes, stats.upserted), (2, 2), "{stats:?}");
    assert_eq!(
        target.psql("SELECT id, v FROM g ORDER BY id, v").trim(),
        "1|x\n1|x\n2|new"
    );
}

#[tokio::test]
async fn an_apply_never_keeps_its_state_in_a_temporary_table() {
    let Some(source) = Db::new(
        "changes_apply_temp",
        "CREATE TABLE g (id int PRIMARY KEY, v text);
         CREATE PUBLICATION p FOR TABLE g;
         SELECT pg_create_logical_replication_slot('s_apply_temp', 'pgoutput');
         INSERT INTO g VALUES (1, 'a'), (2, 'b');",
    ) else {
        return;
    };
    let target = Db::new(
        "changes_apply_temp_dst",
        "CREATE TABLE g (id int PRIMARY KEY, v text);",
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("changes");
    to_dir(&source, "s_apply_temp", &dir).await;
    // The target's search path starts with pg_temp (a role's setting or PGOPTIONS would do
    // it): a bare CREATE TABLE there makes a temporary table, and the state would go with
    // the session. The state table and the target are named in public.
    let url = format!("{}?options=-csearch_path%3Dpg_temp%2Cpublic", target.url());
    let run = || async {
        pgarrow_changes::apply_changes(
            url.as_str(),
            &pgarrow::io::Location::from(dir.clone()),
            &pgarrow_changes::ApplyOptions::default(),
            pgarrow::Hooks::new(),
        )
        .await
        .unwrap()
    };
    let stats = run().await;
    assert_eq!(stats.upserted, 2, "{stats:?}");
    assert_eq!(
        target
            .psql(
                "SELECT c.relpersistence, s.slot FROM public.pgarrow_applied_changes s, \
                 pg_class c WHERE c.oid = 'public.pgarrow_applied_changes'::regclass"
            )
            .trim(),
        "p|s_apply_temp"
    );
    // The next run finds the state: nothing is applied twice.
    let again = run().await;
    assert_eq!(
        (again.rolls, again.rolls_skipped),
        (0, stats.rolls),
        "{again:?}"
    );
    assert_eq!(
        target.psql("SELECT id, v FROM g ORDER BY id").trim(),
        "1|a\n2|b"
    );
}
