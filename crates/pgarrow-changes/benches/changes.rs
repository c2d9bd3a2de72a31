//! Change decoding alone, on a pgoutput stream captured from a real server at start-up: a
//! scratch cluster with `wal_level = logical`, a 100,000-row `lineitem` updated whole, its
//! changes read twice through `pg_logical_slot_get_binary_changes` (binary values, then text).
//! The loop parses each message ([`PgOutputParser`]) and decodes its tuple into Arrow
//! ([`RelationDecoder`]), as `ChangeStream` does between the socket and its events.
//!
//! `cargo bench -p pgarrow --bench changes`. Throughput is in bytes of pgoutput messages; the
//! message count and bytes of each stream are printed first.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pgarrow::names::TableName;
use pgarrow::policy::Policies;
use pgarrow::protocol::replication::{Lsn, Message, PgOutputParser};
use pgarrow::{ColumnMapping, DecodeOptions, PgColumn};
use pgarrow_changes::{ChangeAt, Op, RelationDecoder};

const ROWS: u64 = 100_000;

/// The pgoutput messages of the captured update, binary values or text.
fn capture() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let pg = pgarrow_testkit::logical_cluster(&["synchronous_commit = on"])
        .expect("PostgreSQL for the capture");
    let db = pg.create_database("bench_changes").unwrap();
    pg.psql(
        &db,
        &pgarrow_scratch::sample::lineitem_sql("lineitem", ROWS),
    )
    .unwrap();
    pg.psql(
        &db,
        "ALTER TABLE lineitem REPLICA IDENTITY FULL;
         CREATE PUBLICATION p FOR TABLE lineitem;
         SELECT pg_create_logical_replication_slot('b', 'pgoutput');
         SELECT pg_create_logical_replication_slot('t', 'pgoutput');
         UPDATE lineitem SET l_quantity = l_quantity + 1;",
    )
    .unwrap();
    let read = |slot: &str, binary: &str| -> Vec<Vec<u8>> {
        let copy = pg
            .copy_binary(
                &db,
                &format!(
                    "SELECT data FROM pg_logical_slot_get_binary_changes('{slot}', NULL, NULL, \
                     'proto_version', '1', 'publication_names', 'p', 'binary', '{binary}')"
                ),
            )
            .unwrap();
        copy_rows(&copy)
    };
    (read("b", "true"), read("t", "false"))
}

/// The single bytea field of each row of a binary COPY stream.
fn copy_rows(copy: &[u8]) -> Vec<Vec<u8>> {
    let ext = u32::from_be_bytes(copy[15..19].try_into().unwrap()) as usize;
    let mut at = 19 + ext;
    let mut out = Vec::new();
    loop {
        let count = i16::from_be_bytes([copy[at], copy[at + 1]]);
        at += 2;
        if count == -1 {
            return out;
        }
        let len = i32::from_be_bytes(copy[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        out.push(copy[at..at + len].to_vec());
        at += len;
    }
}

/// Parses and decodes every message; returns the rows decoded.
fn decode(messages: &[Vec<u8>], text: bool) -> usize {
    let mut parser = PgOutputParser::new(false);
    let mut decoder: Option<RelationDecoder> = None;
    let mut rows = 0;
    let mut at = ChangeAt {
        lsn: Lsn(1),
        commit_lsn: Lsn(1),
        commit_time: 0,
        xid: 0,
    };
    for m in messages {
        match parser.parse(m).unwrap() {
            Message::Begin {
                final_lsn,
                commit_time,
                xid,
            } => {
                at.commit_lsn = final_lsn;
                at.commit_time = commit_time;
                at.xid = xid;
            }
            Message::Relation { name, columns, .. } => {
                let plans = columns
                    .iter()
                    .map(|c| {
                        let column = PgColumn::new(c.name, c.type_oid, c.type_modifier);
                        match text {
                            false => ColumnMapping::for_column(column),
                            true => ColumnMapping::text(column, &Policies::default()),
                        }
                    })
                    .collect();
                decoder = Some(
                    RelationDecoder::new(
                        TableName::new(Some("public"), name),
                        plans,
                        text,
                        Vec::new(),
                        DecodeOptions::default(),
                        Policies::default(),
                    )
                    .unwrap(),
                );
            }
            Message::Update { old, new, .. } => {
                let d = decoder.as_mut().unwrap();
                d.push(
                    Op::Update,
                    &at,
                    Some(&new),
                    old.as_ref().map(|(k, t)| (*k, t)),
                )
                .unwrap();
                if d.is_full() {
                    rows += black_box(d.flush().unwrap().unwrap()).num_rows();
                }
            }
            _ => {}
        }
    }
    if let Some(d) = decoder.as_mut()
        && let Some(b) = d.flush().unwrap()
    {
        rows += black_box(b).num_rows();
    }
    rows
}

fn bench(c: &mut Criterion) {
    let (binary, text) = capture();
    let mut group = c.benchmark_group("changes");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (name, messages, is_text) in [("binary", &binary, false), ("text", &text, true)] {
        let bytes: usize = messages.iter().map(Vec::len).sum();
        println!("{name}: {} messages, {bytes} bytes", messages.len());
        assert_eq!(decode(messages, is_text), ROWS as usize);
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(format!("update_full/{name}"), |b| {
            b.iter(|| decode(messages, is_text))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
