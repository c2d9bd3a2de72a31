//! pgoutput as a real server writes it (`pg_logical_slot_get_binary_changes`, the same bytes a
//! replication stream's XLogData carries), read by [`PgOutputParser`]: transactions, relations,
//! inserts, updates with an unchanged TOASTed value and with a changed key, deletes by key and
//! by the full old row, truncates, logical messages, binary and text values, and a large
//! transaction streamed in parts.

use pgarrow_protocol::replication::{
    Lsn, Message, OldRow, PgOutputParser, StreamMessage, Tuple, Value, parse_stream_message,
};
use pgarrow_protocol::{Config, Connection};

/// A cluster of its own with `wal_level = logical`; a small decoding memory, so that a
/// transaction of a few thousand rows is streamed; commits flushed at once (the SQL functions
/// decode up to the flushed WAL, and scratch clusters commit asynchronously).
fn logical_cluster() -> Option<pgarrow_scratch::Cluster> {
    pgarrow_testkit::logical_cluster(&[
        "logical_decoding_work_mem = '64kB'",
        "synchronous_commit = on",
    ])
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The slot's pending messages, consumed, under `options` (pairs of pgoutput options).
async fn changes(conn: &mut Connection, options: &[(&str, &str)]) -> Vec<Vec<u8>> {
    let options: Vec<String> = options
        .iter()
        .map(|(k, v)| format!("'{k}', '{v}'"))
        .collect();
    let rows = conn
        .simple_query(&format!(
            "SELECT encode(data, 'hex') FROM pg_logical_slot_get_binary_changes('s', NULL, NULL, {})",
            options.join(", ")
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| unhex(r[0].as_deref().unwrap()))
        .collect()
}

fn int4(v: i32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

#[tokio::test]
async fn pgoutput_of_a_real_server_reads_message_by_message() {
    let Some(pg) = logical_cluster() else {
        return;
    };
    let db = pg.create_database("pgoutput").unwrap();
    pg.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text, big text);
         CREATE TABLE f (id int, note text);
         ALTER TABLE f REPLICA IDENTITY FULL;
         CREATE PUBLICATION p FOR TABLE t, f;
         SELECT pg_create_logical_replication_slot('s', 'pgoutput');",
    )
    .unwrap();
    // Each statement its own transaction. `big` is TOASTed out of line (incompressible).
    pg.psql(
        &db,
        "INSERT INTO t VALUES (1, 'a', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 4000) g));
         UPDATE t SET v = 'b' WHERE id = 1;
         UPDATE t SET id = 2 WHERE id = 1;
         DELETE FROM t WHERE id = 2;
         INSERT INTO f VALUES (1, 'n');
         DELETE FROM f;
         TRUNCATE f;
         SELECT pg_logical_emit_message(true, 'pfx', 'hello');",
    )
    .unwrap();
    let mut conn = Connection::connect(&Config::parse(&pg.url(&db)).unwrap())
        .await
        .unwrap();
    let f_oid: u32 = conn
        .simple_query("SELECT 'f'::regclass::oid")
        .await
        .unwrap()[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let data = changes(
        &mut conn,
        &[
            ("proto_version", "1"),
            ("publication_names", "p"),
            ("binary", "true"),
            ("messages", "true"),
        ],
    )
    .await;

    let mut parser = PgOutputParser::new(false);
    let messages: Vec<Message<'_>> = data.iter().map(|d| parser.parse(d).unwrap()).collect();
    // Every transaction: Begin ... Commit at the Begin's final LSN.
    let mut open: Option<Lsn> = None;
    let mut changes_seen = Vec::new();
    for m in &messages {
        match m {
            Message::Begin { final_lsn, .. } => {
                assert!(open.is_none(), "a Begin inside a transaction");
                open = Some(*final_lsn);
            }
            Message::Commit {
                commit_lsn,
                end_lsn,
                ..
            } => {
                assert_eq!(open.take(), Some(*commit_lsn));
                assert!(end_lsn > commit_lsn);
            }
            Message::Relation {
                name,
                replica_identity,
                columns,
                ..
            } => {
                let keys: Vec<(&str, bool)> = columns.iter().map(|c| (c.name, c.key)).collect();
                match *name {
                    "t" => {
                        assert_eq!(*replica_identity, b'd');
                        assert_eq!(keys, [("id", true), ("v", false), ("big", false)]);
                    }
                    _ => {
                        assert_eq!(*replica_identity, b'f');
                        assert_eq!(keys, [("id", true), ("note", true)]);
                    }
                }
            }
            other => changes_seen.push(other.clone()),
        }
    }
    assert!(open.is_none());
    let [
        Message::Insert { new: inserted, .. },
        Message::Update {
            old: None,
            new: updated,
            ..
        },
        Message::Update {
            old: Some((OldRow::Key, old_key)),
            new: rekeyed,
            ..
        },
        Message::Delete {
            old: (OldRow::Key, deleted),
            ..
        },
        Message::Insert { .. },
        Message::Delete {
            old: (OldRow::Full, deleted_full),
            ..
        },
        Message::Truncate { relations, .. },
        Message::LogicalMessage {
            transactional: true,
            prefix: "pfx",
            content: b"hello",
            ..
        },
    ] = changes_seen.as_slice()
    else {
        panic!("unexpected changes: {changes_seen:#?}");
    };
    fn values<'a>(t: &Tuple<'a>) -> Vec<Value<'a>> {
        t.values().collect()
    }
    let one = int4(1);
    let Value::Binary(big) = values(inserted)[2] else {
        panic!("big in binary");
    };
    assert_eq!(big.len(), 128_000);
    assert_eq!(
        values(inserted)[..2],
        [Value::Binary(&one), Value::Binary(b"a")]
    );
    // The TOASTed value the update did not touch is not sent, and is not NULL.
    assert_eq!(
        values(updated),
        [
            Value::Binary(&one),
            Value::Binary(b"b"),
            Value::UnchangedToast
        ]
    );
    assert_eq!(
        values(old_key),
        [Value::Binary(&one), Value::Null, Value::Null]
    );
    assert_eq!(values(rekeyed)[0], Value::Binary(&int4(2)));
    assert_eq!(
        values(deleted),
        [Value::Binary(&int4(2)), Value::Null, Value::Null]
    );
    assert_eq!(
        values(deleted_full),
        [Value::Binary(&one), Value::Binary(b"n")]
    );
    assert_eq!(relations, &[f_oid]);

    // Without `binary`, values are the types' text.
    pg.psql(&db, "INSERT INTO t VALUES (7, 'seven', NULL)")
        .unwrap();
    let data = changes(
        &mut conn,
        &[("proto_version", "1"), ("publication_names", "p")],
    )
    .await;
    let mut parser = PgOutputParser::new(false);
    let inserted: Vec<Vec<Value<'_>>> = data
        .iter()
        .filter_map(|d| match parser.parse(d).unwrap() {
            Message::Insert { new, .. } => Some(new.values().collect()),
            _ => None,
        })
        .collect();
    assert_eq!(
        inserted,
        [[Value::Text(b"7"), Value::Text(b"seven"), Value::Null]]
    );

    // A transaction larger than logical_decoding_work_mem, streamed in parts (protocol 2):
    // every change carries the transaction's id, and its commit comes as a StreamCommit.
    pg.psql(
        &db,
        "INSERT INTO t SELECT g, md5(g::text), NULL FROM generate_series(10, 5009) g",
    )
    .unwrap();
    let data = changes(
        &mut conn,
        &[
            ("proto_version", "2"),
            ("publication_names", "p"),
            ("binary", "true"),
            ("streaming", "on"),
        ],
    )
    .await;
    let mut parser = PgOutputParser::new(false);
    let (mut parts, mut inserts, mut committed) = (0, 0, None);
    let mut stream_xid = None;
    for d in &data {
        match parser.parse(d).unwrap() {
            Message::StreamStart { xid, first_segment } => {
                assert_eq!(first_segment, parts == 0);
                assert!(stream_xid.is_none_or(|x| x == xid));
                stream_xid = Some(xid);
                parts += 1;
            }
            Message::Insert { xid, .. } => {
                assert_eq!(xid, stream_xid, "a streamed change names its transaction");
                inserts += 1;
            }
            Message::StreamCommit { xid, .. } => committed = Some(xid),
            _ => {}
        }
    }
    assert!(parts > 1, "streamed in {parts} parts");
    assert_eq!(inserts, 5000);
    assert_eq!(committed, stream_xid);
}

/// `START_REPLICATION` on a replication connection: the changes arrive as XLogData, keepalives
/// asking for a reply get one, the position confirmed as flushed becomes the slot's, and the
/// stream ends with the connection ready for the next command.
#[tokio::test]
async fn a_replication_stream_delivers_changes_and_confirms_what_was_flushed() {
    let Some(pg) = logical_cluster() else {
        return;
    };
    let db = pg.create_database("pgoutput_stream").unwrap();
    pg.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE PUBLICATION p FOR TABLE t;
         SELECT pg_create_logical_replication_slot('s', 'pgoutput');
         INSERT INTO t VALUES (1, 'a'), (2, 'b');",
    )
    .unwrap();
    let mut config = Config::parse(&pg.url(&db)).unwrap();
    config.replication = true;
    let mut conn = Connection::connect(&config).await.unwrap();
    // A slot that does not exist: the server's error, and the connection still usable.
    let e = conn
        .start_replication(
            "START_REPLICATION SLOT nope LOGICAL 0/0 (proto_version '1', publication_names 'p')",
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("42704"), "{e}");
    assert!(conn.is_ready());
    let mut stream = conn
        .start_replication(
            "START_REPLICATION SLOT s LOGICAL 0/0 \
             (proto_version '1', publication_names 'p', binary 'true')",
        )
        .await
        .unwrap();
    let mut parser = PgOutputParser::new(false);
    let mut ids = Vec::new();
    let end = loop {
        let body = stream.next().await.unwrap().expect("the stream goes on");
        match parse_stream_message(&body).unwrap() {
            StreamMessage::XLogData { data, .. } => match parser.parse(data).unwrap() {
                Message::Insert { new, .. } => {
                    let Some(Value::Binary(id)) = new.values().next() else {
                        panic!("a binary id");
                    };
                    ids.push(i32::from_be_bytes(id.try_into().unwrap()));
                }
                Message::Commit { end_lsn, .. } => break end_lsn,
                _ => {}
            },
            StreamMessage::Keepalive {
                reply: true,
                wal_end,
                ..
            } => stream
                .send_status(wal_end, Lsn(0), Lsn(0), 0, false)
                .await
                .unwrap(),
            StreamMessage::Keepalive { .. } => {}
        }
    };
    assert_eq!(ids, [1, 2]);
    // Confirm the transaction as flushed, asking for a reply: the keepalive that answers
    // comes after the server took the update.
    stream.send_status(end, end, end, 0, true).await.unwrap();
    loop {
        let body = stream.next().await.unwrap().expect("the stream goes on");
        if let StreamMessage::Keepalive { .. } = parse_stream_message(&body).unwrap() {
            break;
        }
    }
    stream.finish().await.unwrap();
    assert!(conn.is_ready());
    let confirmed = conn
        .simple_query("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 's'")
        .await
        .unwrap();
    let confirmed: Lsn = confirmed[0][0].as_deref().unwrap().parse().unwrap();
    assert_eq!(confirmed, end);
    // A second stream from the slot (a new connection, as a restart makes) starts after what
    // was confirmed: the next change only.
    conn.close().await.unwrap();
    pg.psql(&db, "INSERT INTO t VALUES (3, 'c')").unwrap();
    let mut conn = Connection::connect(&config).await.unwrap();
    let mut stream = conn
        .start_replication(
            "START_REPLICATION SLOT s LOGICAL 0/0 (proto_version '1', publication_names 'p')",
        )
        .await
        .unwrap();
    let mut parser = PgOutputParser::new(false);
    let first = loop {
        let body = stream.next().await.unwrap().expect("the stream goes on");
        if let StreamMessage::XLogData { data, .. } = parse_stream_message(&body).unwrap()
            && let Message::Insert { new, .. } = parser.parse(data).unwrap()
        {
            break format!("{:?}", new.values().next());
        }
    };
    assert_eq!(first, format!("{:?}", Some(Value::Text(b"3"))));
    stream.finish().await.unwrap();
    assert!(conn.is_ready());
}

/// A caller that races `next()` against a timer shorter than the stream's wait for more of
/// the server's messages (a change stream whose checkpoint is due mid-transaction) still gets
/// every message: the wait goes on from where the dropped `next()` left it, instead of
/// beginning again each time and never ending.
#[tokio::test]
async fn a_stream_read_against_a_short_timer_still_delivers() {
    let Some(pg) = logical_cluster() else {
        return;
    };
    let db = pg.create_database("pgoutput_race").unwrap();
    pg.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY);
         CREATE PUBLICATION p FOR TABLE t;
         SELECT pg_create_logical_replication_slot('s', 'pgoutput');
         INSERT INTO t SELECT generate_series(1, 50);",
    )
    .unwrap();
    let mut config = Config::parse(&pg.url(&db)).unwrap();
    config.replication = true;
    let mut conn = Connection::connect(&config).await.unwrap();
    let mut stream = conn
        .start_replication(
            "START_REPLICATION SLOT s LOGICAL 0/0 (proto_version '1', publication_names 'p')",
        )
        .await
        .unwrap();
    let mut parser = PgOutputParser::new(false);
    let mut inserts = 0;
    let mut timers = 0u64;
    let read = async {
        loop {
            let body = tokio::select! {
                m = stream.next() => m.unwrap().expect("the stream goes on"),
                () = tokio::time::sleep(std::time::Duration::from_millis(1)) => {
                    timers += 1;
                    continue;
                }
            };
            if let StreamMessage::XLogData { data, .. } = parse_stream_message(&body).unwrap() {
                match parser.parse(data).unwrap() {
                    Message::Insert { .. } => inserts += 1,
                    Message::Commit { .. } => break,
                    _ => {}
                }
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), read)
        .await
        .expect("the transaction arrives though every read races a 1 ms timer");
    assert_eq!(inserts, 50);
    assert!(timers > 0, "the timer never won: the race was not run");
    stream.finish().await.unwrap();
}
