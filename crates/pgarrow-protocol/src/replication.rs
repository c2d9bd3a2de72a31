//! Logical replication, sans-IO: the messages of a `START_REPLICATION ... LOGICAL` stream's
//! CopyData (XLogData and primary keepalives), the standby status update a client sends back,
//! and pgoutput's logical messages (protocol versions 1 to 4: transactions, relations and types,
//! row changes with their old key or old row, truncates, origins, logical messages, streamed
//! and two-phase transactions), each parsed from a byte slice without copying it.
//!
//! Layouts as PostgreSQL's documentation gives them ("Streaming Replication Protocol" and
//! "Logical Replication Message Formats"); every length is checked against the bytes there, so
//! a truncated or malformed message is an error naming what was wrong, never a panic.

use std::fmt;

use crate::{Error, Result};

/// A position in the write-ahead log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    /// As PostgreSQL writes it: `16/B374D848`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl std::str::FromStr for Lsn {
    type Err = Error;

    /// `16/B374D848`, as `pg_current_wal_lsn()` and the replication commands write it.
    fn from_str(s: &str) -> Result<Lsn> {
        let bad = || Error::protocol(format!("{s:?} is not a WAL position (expected X/X in hex)"));
        let (high, low) = s.split_once('/').ok_or_else(bad)?;
        let part = |p: &str| {
            (!p.is_empty() && p.len() <= 8)
                .then(|| u32::from_str_radix(p, 16).ok())
                .flatten()
                .ok_or_else(bad)
        };
        Ok(Lsn((u64::from(part(high)?) << 32) | u64::from(part(low)?)))
    }
}

/// Microseconds since 2000-01-01 00:00:00 UTC, PostgreSQL's own epoch for timestamps on the
/// wire.
pub type PgTime = i64;

/// A message of the replication stream, the body of one CopyData from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage<'a> {
    /// WAL data (`w`): for a logical slot, one output plugin message.
    XLogData {
        /// Where the data starts in the WAL.
        start: Lsn,
        /// The server's current end of WAL.
        wal_end: Lsn,
        /// The server's clock when it sent this.
        sent: PgTime,
        /// The plugin's message.
        data: &'a [u8],
    },
    /// A primary keepalive (`k`).
    Keepalive {
        /// The server's current end of WAL.
        wal_end: Lsn,
        /// The server's clock when it sent this.
        sent: PgTime,
        /// Whether the server asks for a status update now (else it ends the connection after
        /// `wal_sender_timeout`).
        reply: bool,
    },
}

/// Reads the body of a CopyData of the replication stream.
///
/// # Errors
/// An unknown message type, or a body shorter than its type's layout.
pub fn parse_stream_message(body: &[u8]) -> Result<StreamMessage<'_>> {
    let mut r = Reader::new(body, "a replication stream message");
    match r.u8()? {
        b'w' => Ok(StreamMessage::XLogData {
            start: r.lsn()?,
            wal_end: r.lsn()?,
            sent: r.i64()?,
            data: r.rest(),
        }),
        b'k' => {
            let m = StreamMessage::Keepalive {
                wal_end: r.lsn()?,
                sent: r.i64()?,
                reply: r.u8()? != 0,
            };
            r.end()?;
            Ok(m)
        }
        other => Err(r.unknown(other)),
    }
}

/// The standby status update (`r`) a client sends in a CopyData: the WAL positions written,
/// flushed (durable: the slot's `confirmed_flush_lsn` follows it) and applied, and the client's
/// clock; `reply` asks the server to answer with a keepalive at once.
pub fn standby_status_update(
    written: Lsn,
    flushed: Lsn,
    applied: Lsn,
    now: PgTime,
    reply: bool,
) -> [u8; 34] {
    let mut out = [0u8; 34];
    out[0] = b'r';
    out[1..9].copy_from_slice(&written.0.to_be_bytes());
    out[9..17].copy_from_slice(&flushed.0.to_be_bytes());
    out[17..25].copy_from_slice(&applied.0.to_be_bytes());
    out[25..33].copy_from_slice(&now.to_be_bytes());
    out[33] = u8::from(reply);
    out
}

/// One column of a [`Message::Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn<'a> {
    /// Part of the replica identity (the key updates and deletes name).
    pub key: bool,
    /// The column's name.
    pub name: &'a str,
    /// Its type.
    pub type_oid: u32,
    /// Its type modifier.
    pub type_modifier: i32,
}

/// How an update or delete names its old row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldRow {
    /// `K`: the replica identity's columns only (the others are NULL in the tuple).
    Key,
    /// `O`: the whole old row (`REPLICA IDENTITY FULL`).
    Full,
}

/// One value of a [`Tuple`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// NULL.
    Null,
    /// A TOASTed value the change left as it was: not sent (it is not NULL).
    UnchangedToast,
    /// The type's text output.
    Text(&'a [u8]),
    /// The type's binary send output (`binary 'true'`).
    Binary(&'a [u8]),
}

/// A row's values as pgoutput sends them (`TupleData`), checked when parsed and read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple<'a> {
    columns: u16,
    bytes: &'a [u8],
}

impl<'a> Tuple<'a> {
    /// The number of values.
    pub fn len(&self) -> usize {
        usize::from(self.columns)
    }

    /// Whether it has no values.
    pub fn is_empty(&self) -> bool {
        self.columns == 0
    }

    /// The values, in column order.
    pub fn values(&self) -> impl Iterator<Item = Value<'a>> + 'a {
        let mut r = Reader::new(self.bytes, "a tuple");
        // Checked when parsed: every read succeeds.
        (0..self.columns).map_while(move |_| read_value(&mut r).ok())
    }

    /// Reads a tuple at `r`, checking each value's length.
    fn parse(r: &mut Reader<'a>) -> Result<Tuple<'a>> {
        let columns = r.u16()?;
        let start = r.at;
        for _ in 0..columns {
            read_value(r)?;
        }
        Ok(Tuple {
            columns,
            bytes: &r.bytes[start..r.at],
        })
    }
}

fn read_value<'a>(r: &mut Reader<'a>) -> Result<Value<'a>> {
    Ok(match r.u8()? {
        b'n' => Value::Null,
        b'u' => Value::UnchangedToast,
        kind @ (b't' | b'b') => {
            let len = r.i32()?;
            let len = usize::try_from(len)
                .map_err(|_| Error::protocol(format!("a tuple value of length {len}")))?;
            let bytes = r.take(len)?;
            match kind {
                b't' => Value::Text(bytes),
                _ => Value::Binary(bytes),
            }
        }
        other => {
            return Err(Error::protocol(format!(
                "a tuple value of unknown kind {:?}",
                char::from(other)
            )));
        }
    })
}

/// A pgoutput message (the `data` of an [`StreamMessage::XLogData`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// `B`: a transaction begins.
    Begin {
        /// The LSN of its commit record.
        final_lsn: Lsn,
        /// When it committed.
        commit_time: PgTime,
        /// Its transaction id.
        xid: u32,
    },
    /// `C`: a transaction commits.
    Commit {
        /// Unused flags.
        flags: u8,
        /// The LSN of the commit record.
        commit_lsn: Lsn,
        /// The end of the transaction's WAL: the position to confirm once its changes are
        /// durable.
        end_lsn: Lsn,
        /// When it committed.
        commit_time: PgTime,
    },
    /// `O`: the changes that follow came from another node.
    Origin {
        /// The commit LSN on the origin.
        lsn: Lsn,
        /// The origin's name.
        name: &'a str,
    },
    /// `R`: a relation's columns, before the first change to it (and again after it changed).
    Relation {
        /// The streamed transaction it belongs to.
        xid: Option<u32>,
        /// The relation's OID.
        oid: u32,
        /// Its schema (empty for `pg_catalog`).
        namespace: &'a str,
        /// Its name.
        name: &'a str,
        /// `REPLICA IDENTITY`: `d` default, `n` nothing, `f` full, `i` index.
        replica_identity: u8,
        /// Its columns (generated columns excepted, unless published).
        columns: Vec<RelationColumn<'a>>,
    },
    /// `Y`: a type's name, before the first change holding a value of it (user types).
    Type {
        /// The streamed transaction it belongs to.
        xid: Option<u32>,
        /// The type's OID.
        oid: u32,
        /// Its schema.
        namespace: &'a str,
        /// Its name.
        name: &'a str,
    },
    /// `I`: a row inserted.
    Insert {
        /// The streamed transaction it belongs to.
        xid: Option<u32>,
        /// The relation.
        relation: u32,
        /// The new row.
        new: Tuple<'a>,
    },
    /// `U`: a row updated.
    Update {
        /// The streamed transaction it belongs to.
        xid: Option<u32>,
        /// The relation.
        relation: u32,
        /// The old key or row, when the key changed or the identity is FULL.
        old: Option<(OldRow, Tuple<'a>)>,
        /// The new row (unchanged TOASTed values as [`Value::UnchangedToast`]).
        new: Tuple<'a>,
    },
    /// `D`: a row deleted.
    Delete {
        /// The streamed transaction it belongs to.
        xid: Option<u32>,
        /// The relation.
        relation: u32,
        /// The old key or row.
        old: (OldRow, Tuple<'a>),
    },
    /// `T`: relations truncated.
    Truncate {
        /// The streamed transaction it belongs to.
        xid: Option<u32>,
        /// 1: CASCADE, 2: RESTART IDENTITY.
        options: u8,
        /// The relations.
        relations: Vec<u32>,
    },
    /// `M`: a message from `pg_logical_emit_message`.
    LogicalMessage {
        /// The streamed transaction it belongs to.
        xid: Option<u32>,
        /// Part of a transaction (else sent at once).
        transactional: bool,
        /// Its LSN.
        lsn: Lsn,
        /// Its prefix.
        prefix: &'a str,
        /// Its content.
        content: &'a [u8],
    },
    /// `S`: a part of a large transaction in progress follows (`streaming`).
    StreamStart {
        /// The transaction.
        xid: u32,
        /// Its first part.
        first_segment: bool,
    },
    /// `E`: the part ends.
    StreamStop,
    /// `c`: a streamed transaction commits.
    StreamCommit {
        /// The transaction.
        xid: u32,
        /// Unused flags.
        flags: u8,
        /// The LSN of the commit record.
        commit_lsn: Lsn,
        /// The end of its WAL.
        end_lsn: Lsn,
        /// When it committed.
        commit_time: PgTime,
    },
    /// `A`: a streamed transaction (or a subtransaction of it) aborts.
    StreamAbort {
        /// The transaction.
        xid: u32,
        /// The subtransaction (equal to `xid` for the whole transaction).
        subxid: u32,
        /// The abort's LSN and time (protocol 4 with parallel streaming).
        abort: Option<(Lsn, PgTime)>,
    },
    /// `b`, `P`, `K`, `r`, `p`: two-phase commit (protocol 3, `two_phase`).
    TwoPhase {
        /// The message's type byte.
        kind: u8,
        /// The transaction.
        xid: u32,
        /// The global transaction id.
        gid: &'a str,
        /// The LSNs the message carries, in its order.
        lsns: Vec<Lsn>,
    },
}

/// Reads pgoutput messages in order: inside a streamed transaction's part (between
/// [`Message::StreamStart`] and [`Message::StreamStop`]) changes carry their transaction id,
/// so the parser keeps that one fact.
#[derive(Debug, Clone, Default)]
pub struct PgOutputParser {
    in_stream: bool,
    /// Whether `StreamAbort` carries its LSN and time (protocol 4 with parallel streaming).
    abort_info: bool,
}

impl PgOutputParser {
    /// A parser for a stream started with `proto_version` (`streaming 'parallel'` adds the
    /// abort's LSN and time from version 4).
    pub fn new(parallel_streaming: bool) -> PgOutputParser {
        PgOutputParser {
            in_stream: false,
            abort_info: parallel_streaming,
        }
    }

    /// A parser already inside a streamed transaction's part: for reading again the messages
    /// of such a part, set aside until the transaction's commit.
    pub fn in_stream_part(parallel_streaming: bool) -> PgOutputParser {
        PgOutputParser {
            in_stream: true,
            abort_info: parallel_streaming,
        }
    }

    /// Reads one message.
    ///
    /// # Errors
    /// An unknown message type, a message shorter than its layout or with bytes left over, a
    /// stream part opened twice or closed unopened.
    pub fn parse<'a>(&mut self, data: &'a [u8]) -> Result<Message<'a>> {
        let mut r = Reader::new(data, "a pgoutput message");
        let kind = r.u8()?;
        let xid = |r: &mut Reader<'a>, in_stream: bool| -> Result<Option<u32>> {
            match in_stream {
                true => r.u32().map(Some),
                false => Ok(None),
            }
        };
        let message = match kind {
            b'B' => Message::Begin {
                final_lsn: r.lsn()?,
                commit_time: r.i64()?,
                xid: r.u32()?,
            },
            b'C' => Message::Commit {
                flags: r.u8()?,
                commit_lsn: r.lsn()?,
                end_lsn: r.lsn()?,
                commit_time: r.i64()?,
            },
            b'O' => Message::Origin {
                lsn: r.lsn()?,
                name: r.cstr()?,
            },
            b'R' => {
                let xid = xid(&mut r, self.in_stream)?;
                let oid = r.u32()?;
                let namespace = r.cstr()?;
                let name = r.cstr()?;
                let replica_identity = r.u8()?;
                let n = r.u16()?;
                let mut columns = Vec::with_capacity(usize::from(n).min(r.left()));
                for _ in 0..n {
                    columns.push(RelationColumn {
                        key: r.u8()? & 1 != 0,
                        name: r.cstr()?,
                        type_oid: r.u32()?,
                        type_modifier: r.i32()?,
                    });
                }
                Message::Relation {
                    xid,
                    oid,
                    namespace,
                    name,
                    replica_identity,
                    columns,
                }
            }
            b'Y' => Message::Type {
                xid: xid(&mut r, self.in_stream)?,
                oid: r.u32()?,
                namespace: r.cstr()?,
                name: r.cstr()?,
            },
            b'I' => {
                let xid = xid(&mut r, self.in_stream)?;
                let relation = r.u32()?;
                r.expect(b'N', "an insert's new row")?;
                Message::Insert {
                    xid,
                    relation,
                    new: Tuple::parse(&mut r)?,
                }
            }
            b'U' => {
                let xid = xid(&mut r, self.in_stream)?;
                let relation = r.u32()?;
                let old = match r.u8()? {
                    b'N' => None,
                    tag @ (b'K' | b'O') => {
                        let old = (old_row(tag), Tuple::parse(&mut r)?);
                        r.expect(b'N', "an update's new row")?;
                        Some(old)
                    }
                    other => return Err(r.unknown(other)),
                };
                Message::Update {
                    xid,
                    relation,
                    old,
                    new: Tuple::parse(&mut r)?,
                }
            }
            b'D' => {
                let xid = xid(&mut r, self.in_stream)?;
                let relation = r.u32()?;
                let tag = match r.u8()? {
                    tag @ (b'K' | b'O') => tag,
                    other => return Err(r.unknown(other)),
                };
                Message::Delete {
                    xid,
                    relation,
                    old: (old_row(tag), Tuple::parse(&mut r)?),
                }
            }
            b'T' => {
                let xid = xid(&mut r, self.in_stream)?;
                let n = r.u32()?;
                let options = r.u8()?;
                let count = usize::try_from(n).unwrap_or(usize::MAX);
                if count > r.left() / 4 {
                    return Err(Error::protocol(format!(
                        "a truncate of {n} relations in {} bytes",
                        r.left()
                    )));
                }
                let relations = (0..count).map(|_| r.u32()).collect::<Result<Vec<_>>>()?;
                Message::Truncate {
                    xid,
                    options,
                    relations,
                }
            }
            b'M' => {
                let xid = xid(&mut r, self.in_stream)?;
                let transactional = r.u8()? & 1 != 0;
                let lsn = r.lsn()?;
                let prefix = r.cstr()?;
                let len = r.i32()?;
                let len = usize::try_from(len)
                    .map_err(|_| Error::protocol(format!("a logical message of length {len}")))?;
                Message::LogicalMessage {
                    xid,
                    transactional,
                    lsn,
                    prefix,
                    content: r.take(len)?,
                }
            }
            b'S' => {
                if self.in_stream {
                    return Err(Error::protocol(
                        "a streamed transaction's part starts inside another",
                    ));
                }
                self.in_stream = true;
                Message::StreamStart {
                    xid: r.u32()?,
                    first_segment: r.u8()? != 0,
                }
            }
            b'E' => {
                if !self.in_stream {
                    return Err(Error::protocol(
                        "a streamed transaction's part ends without having started",
                    ));
                }
                self.in_stream = false;
                Message::StreamStop
            }
            b'c' => Message::StreamCommit {
                xid: r.u32()?,
                flags: r.u8()?,
                commit_lsn: r.lsn()?,
                end_lsn: r.lsn()?,
                commit_time: r.i64()?,
            },
            b'A' => {
                let xid = r.u32()?;
                let subxid = r.u32()?;
                let abort = match self.abort_info {
                    true => Some((r.lsn()?, r.i64()?)),
                    false => None,
                };
                Message::StreamAbort { xid, subxid, abort }
            }
            // Two-phase: Begin Prepare (prepare LSN, end LSN, time, xid, gid), Prepare and
            // Stream Prepare (flags, prepare LSN, end LSN, time, xid, gid), Commit Prepared
            // (flags, commit LSN, end LSN, time, xid, gid), Rollback Prepared (flags, prepare
            // end LSN, rollback end LSN, prepare time, rollback time, xid, gid).
            b'b' | b'P' | b'p' | b'K' | b'r' => {
                if kind != b'b' {
                    r.u8()?;
                }
                let lsns = vec![r.lsn()?, r.lsn()?];
                r.i64()?;
                if kind == b'r' {
                    r.i64()?;
                }
                Message::TwoPhase {
                    kind,
                    xid: r.u32()?,
                    gid: r.cstr()?,
                    lsns,
                }
            }
            other => return Err(r.unknown(other)),
        };
        r.end()?;
        Ok(message)
    }
}

fn old_row(tag: u8) -> OldRow {
    match tag {
        b'K' => OldRow::Key,
        _ => OldRow::Full,
    }
}

/// Big-endian reads over a message, each checked against the bytes left.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { bytes, at: 0, what }
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// Everything left.
    fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.at..];
        self.at = self.bytes.len();
        out
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.left() {
            return Err(Error::protocol(format!(
                "{} ends after {} bytes, inside a field of {n} at byte {}",
                self.what,
                self.bytes.len(),
                self.at
            )));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32> {
        self.array().map(i32::from_be_bytes)
    }

    fn i64(&mut self) -> Result<i64> {
        self.array().map(i64::from_be_bytes)
    }

    fn lsn(&mut self) -> Result<Lsn> {
        self.array().map(|b| Lsn(u64::from_be_bytes(b)))
    }

    /// A NUL-terminated UTF-8 string (names are in the server encoding, which pgarrow's
    /// connections set to UTF8).
    fn cstr(&mut self) -> Result<&'a str> {
        let rest = &self.bytes[self.at..];
        let end = rest.iter().position(|&b| b == 0).ok_or_else(|| {
            Error::protocol(format!(
                "{} ends inside a string at byte {}",
                self.what, self.at
            ))
        })?;
        let s = std::str::from_utf8(&rest[..end]).map_err(|_| {
            Error::protocol(format!("{} holds a name that is not UTF-8", self.what))
        })?;
        self.at += end + 1;
        Ok(s)
    }

    fn expect(&mut self, tag: u8, what: &str) -> Result<()> {
        match self.u8()? {
            t if t == tag => Ok(()),
            t => Err(Error::protocol(format!(
                "{what} starts with {:?}, not {:?}",
                char::from(t),
                char::from(tag)
            ))),
        }
    }

    /// The message must end here.
    fn end(&self) -> Result<()> {
        match self.left() {
            0 => Ok(()),
            n => Err(Error::protocol(format!(
                "{} has {n} bytes past its end",
                self.what
            ))),
        }
    }

    fn unknown(&self, tag: u8) -> Error {
        Error::protocol(format!(
            "{} of unknown type {:?} at byte {}",
            self.what,
            char::from(tag),
            self.at.saturating_sub(1)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message built field by field, big-endian.
    #[derive(Default)]
    struct Build(Vec<u8>);

    impl Build {
        fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        fn u16(mut self, v: u16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(mut self, v: i32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn s(mut self, v: &str) -> Self {
            self.0.extend_from_slice(v.as_bytes());
            self.0.push(0);
            self
        }
        fn bytes(mut self, v: &[u8]) -> Self {
            self.0.extend_from_slice(v);
            self
        }
    }

    #[test]
    fn lsns_read_and_print_as_postgresql_writes_them() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn, Lsn(0x16_B374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(Lsn(0).to_string(), "0/0");
        for bad in ["", "16", "/1", "1/", "x/1", "1/123456789", "1/2/3"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn stream_messages_and_the_status_update() {
        let w = Build::default()
            .u8(b'w')
            .u64(10)
            .u64(20)
            .u64(30)
            .bytes(b"data")
            .0;
        assert_eq!(
            parse_stream_message(&w).unwrap(),
            StreamMessage::XLogData {
                start: Lsn(10),
                wal_end: Lsn(20),
                sent: 30,
                data: b"data"
            }
        );
        let k = Build::default().u8(b'k').u64(7).u64(8).u8(1).0;
        assert_eq!(
            parse_stream_message(&k).unwrap(),
            StreamMessage::Keepalive {
                wal_end: Lsn(7),
                sent: 8,
                reply: true
            }
        );
        assert!(parse_stream_message(&k[..10]).is_err());
        assert!(
            parse_stream_message(&[b'k'; 19]).is_err(),
            "a byte past the end"
        );
        assert!(parse_stream_message(b"z").is_err());
        let r = standby_status_update(Lsn(1), Lsn(2), Lsn(3), 4, true);
        assert_eq!(
            r.to_vec(),
            Build::default()
                .u8(b'r')
                .u64(1)
                .u64(2)
                .u64(3)
                .u64(4)
                .u8(1)
                .0
        );
    }

    #[test]
    fn pgoutput_messages_of_a_transaction() {
        let mut p = PgOutputParser::new(false);
        let begin = Build::default().u8(b'B').u64(100).u64(5).u32(742).0;
        assert_eq!(
            p.parse(&begin).unwrap(),
            Message::Begin {
                final_lsn: Lsn(100),
                commit_time: 5,
                xid: 742
            }
        );
        let relation = Build::default()
            .u8(b'R')
            .u32(16_384)
            .s("public")
            .s("t")
            .u8(b'd')
            .u16(2)
            .u8(1)
            .s("id")
            .u32(23)
            .i32(-1)
            .u8(0)
            .s("v")
            .u32(25)
            .i32(-1)
            .0;
        let Message::Relation { columns, .. } = p.parse(&relation).unwrap() else {
            panic!("a relation");
        };
        assert_eq!(
            columns,
            [
                RelationColumn {
                    key: true,
                    name: "id",
                    type_oid: 23,
                    type_modifier: -1
                },
                RelationColumn {
                    key: false,
                    name: "v",
                    type_oid: 25,
                    type_modifier: -1
                }
            ]
        );
        // An update with the old key: binary id, unchanged TOASTed v in the new row.
        let update = Build::default()
            .u8(b'U')
            .u32(16_384)
            .u8(b'K')
            .u16(2)
            .u8(b'b')
            .i32(4)
            .bytes(&7i32.to_be_bytes())
            .u8(b'n')
            .u8(b'N')
            .u16(2)
            .u8(b'b')
            .i32(4)
            .bytes(&8i32.to_be_bytes())
            .u8(b'u')
            .0;
        let Message::Update {
            xid: None,
            relation: 16_384,
            old: Some((OldRow::Key, old)),
            new,
        } = p.parse(&update).unwrap()
        else {
            panic!("an update with its old key");
        };
        let values: Vec<Value<'_>> = old.values().collect();
        assert_eq!(values, [Value::Binary(&[0, 0, 0, 7]), Value::Null]);
        let values: Vec<Value<'_>> = new.values().collect();
        assert_eq!(
            values,
            [Value::Binary(&[0, 0, 0, 8]), Value::UnchangedToast]
        );
        let delete = Build::default()
            .u8(b'D')
            .u32(16_384)
            .u8(b'O')
            .u16(1)
            .u8(b't')
            .i32(2)
            .bytes(b"hi")
            .0;
        let Message::Delete {
            old: (OldRow::Full, old),
            ..
        } = p.parse(&delete).unwrap()
        else {
            panic!("a delete with its old row");
        };
        assert_eq!(old.values().collect::<Vec<_>>(), [Value::Text(b"hi")]);
        let truncate = Build::default().u8(b'T').u32(2).u8(3).u32(1).u32(2).0;
        assert_eq!(
            p.parse(&truncate).unwrap(),
            Message::Truncate {
                xid: None,
                options: 3,
                relations: vec![1, 2]
            }
        );
        let commit = Build::default().u8(b'C').u8(0).u64(100).u64(120).u64(5).0;
        assert_eq!(
            p.parse(&commit).unwrap(),
            Message::Commit {
                flags: 0,
                commit_lsn: Lsn(100),
                end_lsn: Lsn(120),
                commit_time: 5
            }
        );
    }

    #[test]
    fn streamed_transactions_carry_their_xid() {
        let mut p = PgOutputParser::new(true);
        let insert = |xid: Option<u32>| {
            let b = Build::default().u8(b'I');
            let b = match xid {
                Some(x) => b.u32(x),
                None => b,
            };
            b.u32(9).u8(b'N').u16(1).u8(b'n').0
        };
        assert!(
            p.parse(&Build::default().u8(b'E').0).is_err(),
            "stop unopened"
        );
        let start = Build::default().u8(b'S').u32(77).u8(1).0;
        assert_eq!(
            p.parse(&start).unwrap(),
            Message::StreamStart {
                xid: 77,
                first_segment: true
            }
        );
        assert!(p.clone().parse(&start).is_err(), "start inside a part");
        let Message::Insert { xid: Some(77), .. } = p.parse(&insert(Some(77))).unwrap() else {
            panic!("a streamed insert");
        };
        assert_eq!(
            p.parse(&Build::default().u8(b'E').0).unwrap(),
            Message::StreamStop
        );
        let Message::Insert { xid: None, .. } = p.parse(&insert(None)).unwrap() else {
            panic!("an insert outside a part");
        };
        let abort = Build::default().u8(b'A').u32(77).u32(78).u64(5).u64(6).0;
        assert_eq!(
            p.parse(&abort).unwrap(),
            Message::StreamAbort {
                xid: 77,
                subxid: 78,
                abort: Some((Lsn(5), 6))
            }
        );
    }

    #[test]
    fn malformed_messages_are_errors_never_panics() {
        // Every cut of valid messages, and bytes from a small generator.
        let messages = [
            Build::default().u8(b'B').u64(1).u64(2).u32(3).0,
            Build::default()
                .u8(b'M')
                .u8(1)
                .u64(1)
                .s("p")
                .i32(3)
                .bytes(b"abc")
                .0,
            Build::default()
                .u8(b'I')
                .u32(9)
                .u8(b'N')
                .u16(1)
                .u8(b't')
                .i32(1)
                .bytes(b"x")
                .0,
        ];
        for m in &messages {
            assert!(PgOutputParser::default().parse(m).is_ok());
            for cut in 0..m.len() {
                assert!(PgOutputParser::default().parse(&m[..cut]).is_err());
            }
        }
        let huge = Build::default()
            .u8(b'I')
            .u32(9)
            .u8(b'N')
            .u16(1)
            .u8(b't')
            .i32(i32::MAX)
            .0;
        assert!(PgOutputParser::default().parse(&huge).is_err());
        let negative = Build::default()
            .u8(b'I')
            .u32(9)
            .u8(b'N')
            .u16(1)
            .u8(b't')
            .i32(-5)
            .0;
        assert!(PgOutputParser::default().parse(&negative).is_err());
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..50_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| (state.rotate_left(i as u32 * 7) & 0xff) as u8)
                .collect();
            let mut p = PgOutputParser::new(state & 1 == 0);
            if let Ok(Message::Insert { new, .. } | Message::Update { new, .. }) = p.parse(&bytes) {
                assert_eq!(new.values().count(), new.len());
            }
            let _ = parse_stream_message(&bytes);
        }
    }
}
