//! Arbitrary bytes as a relation's changes, through the decoder `pgarrow changes` uses: the
//! first byte picks text or binary values and the column count, the next bytes each column's
//! type (from built-in types with their own binary decoders), the rest is cut into pgoutput
//! messages by one-byte lengths; each insert, update or delete goes to a `RelationDecoder`.
//! Nothing may panic, and every change taken is a row of the batches (a change refused leaves
//! no row behind).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgarrow::names::TableName;
use pgarrow::policy::Policies;
use pgarrow::protocol::replication::{Lsn, Message, PgOutputParser};
use pgarrow::types::oid;
use pgarrow::{ColumnMapping, DecodeOptions, PgColumn};
use pgarrow_changes::{ChangeAt, Op, RelationDecoder};

const TYPES: [(u32, i32); 12] = [
    (oid::INT4, -1),
    (oid::INT8, -1),
    (oid::TEXT, -1),
    (oid::NUMERIC, -1),
    (oid::NUMERIC, ((12 << 16) | 2) + 4),
    (oid::TIMESTAMPTZ, -1),
    (oid::BOOL, -1),
    (oid::BYTEA, -1),
    (oid::FLOAT8, -1),
    (oid::DATE, -1),
    (oid::UUID, -1),
    (oid::INTERVAL, -1),
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = mode & 0x80 != 0;
    let ncols = usize::from(mode & 7) + 1;
    if rest.len() < ncols {
        return;
    }
    let (types, mut rest) = rest.split_at(ncols);
    let plans = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (ty, typmod) = TYPES[usize::from(*t) % TYPES.len()];
            let column = PgColumn::new(format!("c{i}"), ty, typmod);
            match text {
                false => ColumnMapping::for_column(column),
                true => ColumnMapping::text(column, &Policies::default()),
            }
        })
        .collect();
    let options = DecodeOptions::default().with_batch_rows(7);
    let mut decoder = RelationDecoder::new(
        TableName::new(Some("public"), "t"),
        plans,
        text,
        Vec::new(),
        options,
        Policies::default(),
    )
    .unwrap();
    let at = ChangeAt {
        lsn: Lsn(1),
        commit_lsn: Lsn(2),
        commit_time: 0,
        xid: 3,
    };
    let mut parser = PgOutputParser::new(false);
    let (mut taken, mut rows) = (0usize, 0usize);
    let flush = |d: &mut RelationDecoder, rows: &mut usize| match d.flush() {
        Ok(Some(b)) => *rows += b.num_rows(),
        Ok(None) => {}
        // Found only at the end (text that is not UTF-8): the batch's rows are gone.
        Err(_) => *rows = usize::MAX,
    };
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (message, next) = tail.split_at(len);
        rest = next;
        let pushed = match parser.parse(message) {
            Ok(Message::Insert { new, .. }) => decoder.push(Op::Insert, &at, Some(&new), None),
            Ok(Message::Update { old, new, .. }) => decoder.push(
                Op::Update,
                &at,
                Some(&new),
                old.as_ref().map(|(k, t)| (*k, t)),
            ),
            Ok(Message::Delete { old, .. }) => decoder.push(Op::Delete, &at, Some(&old.1), None),
            Ok(Message::Truncate { .. }) => decoder.push(Op::Truncate, &at, None, None),
            _ => continue,
        };
        match pushed {
            Ok(()) => taken += 1,
            // A refused change leaves the decoder unusable (as the COPY decoder after an
            // error): the stream ends there.
            Err(_) => return,
        }
        if decoder.is_full() {
            flush(&mut decoder, &mut rows);
            if rows == usize::MAX {
                return;
            }
        }
    }
    flush(&mut decoder, &mut rows);
    if rows != usize::MAX {
        assert_eq!(rows, taken);
    }
});
