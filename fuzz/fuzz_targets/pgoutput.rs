//! Arbitrary bytes as a replication stream: the first byte picks the parser's mode (parallel
//! streaming or not), the rest is cut into messages by one-byte lengths, each read as a
//! stream message and as a pgoutput message by one parser (so stream parts open and close),
//! every tuple's values walked. Nothing may panic; a tuple yields exactly its count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgarrow_protocol::replication::{Message, PgOutputParser, parse_stream_message};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut parser = PgOutputParser::new(mode & 1 == 1);
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (message, next) = tail.split_at(len);
        rest = next;
        let _ = parse_stream_message(message);
        let tuples = match parser.parse(message) {
            Ok(Message::Insert { new, .. }) => vec![new],
            Ok(Message::Update { old, new, .. }) => {
                old.map(|(_, t)| t).into_iter().chain([new]).collect()
            }
            Ok(Message::Delete { old: (_, t), .. }) => vec![t],
            _ => Vec::new(),
        };
        for t in tuples {
            assert_eq!(t.values().count(), t.len());
        }
    }
});
