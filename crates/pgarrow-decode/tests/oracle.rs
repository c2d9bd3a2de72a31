//! A slow reference decoder as an oracle, as csv-core checks its NFA against its DFA.
//!
//! [`oracle`] is written from PostgreSQL's documentation of the binary COPY format (the
//! `COPY` reference page, "Binary Format") and of the types' `*_send` functions, and from
//! nothing in this crate: it walks the header, the tuples and their fields one at a time and
//! turns each field of a handful of scalar types (bool, int2/4/8, float4/8, text, bytea, date,
//! timestamp, uuid) into a plain Rust [`Value`]. It is meant to be obviously right, not fast.
//!
//! Several hundred seeded random streams (random columns and values, NULLs, special values,
//! header flags and extensions, OIDs) are decoded by `CopyDecoder` in small batches, fed in
//! random chunk sizes, and again as CopyData messages cut at random places and walked with the
//! protocol crate's framing (`tests/common/messages.rs`); every value of every batch must be
//! the oracle's. Damaged copies of the same streams must be refused by both, or decoded by both
//! to the same values.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use pgarrow_decode::{CopyDecoder, DecodeOptions, PgColumn};
use pgarrow_testkit::CopyBuilder;
use pgarrow_testkit::copy::copy_data_split;
use pgarrow_testkit::copygen::{Entropy, Gen, Shape};

#[path = "common/feed.rs"]
mod feed;
#[path = "common/messages.rs"]
mod messages;
use feed::feed;
use messages::walk_messages;

// ---------------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------------

/// The column types the oracle knows, with their OIDs from PostgreSQL's `pg_type.dat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Bytea,
    Date,
    Timestamp,
    Uuid,
}

const TYPES: [Ty; 11] = [
    Ty::Bool,
    Ty::Int2,
    Ty::Int4,
    Ty::Int8,
    Ty::Float4,
    Ty::Float8,
    Ty::Text,
    Ty::Bytea,
    Ty::Date,
    Ty::Timestamp,
    Ty::Uuid,
];

impl Ty {
    fn oid(self) -> u32 {
        match self {
            Ty::Bool => 16,
            Ty::Bytea => 17,
            Ty::Int8 => 20,
            Ty::Int2 => 21,
            Ty::Int4 => 23,
            Ty::Text => 25,
            Ty::Float4 => 700,
            Ty::Float8 => 701,
            Ty::Date => 1082,
            Ty::Timestamp => 1114,
            Ty::Uuid => 2950,
        }
    }
}

/// One decoded value. Floats are kept as their bits (NaN payloads included); dates are days
/// and timestamps microseconds since the Unix epoch, with ±infinity as the largest value and
/// its negation (pgarrow's documented encoding: `+infinity=max,-infinity=-max`, README).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Null,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Float4(u32),
    Float8(u64),
    Text(String),
    Bytea(Vec<u8>),
    Date(i32),
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// Days from 1970-01-01 to PostgreSQL's date epoch, 2000-01-01.
const EPOCH_DAYS: i32 = 10_957;
/// The same in microseconds.
const EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A cursor over the stream that refuses to read past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("{n} bytes wanted at byte {}: the end", self.pos))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }

    /// A length word and the field it announces; `None` for NULL (-1).
    fn field(&mut self) -> Result<Option<&'a [u8]>, String> {
        match self.i32()? {
            -1 => Ok(None),
            n if n < 0 => Err(format!("field length {n}")),
            n => self.take(n as usize).map(Some),
        }
    }
}

/// Exactly `N` bytes, or an error naming the type.
fn exact<const N: usize>(b: &[u8], ty: Ty) -> Result<[u8; N], String> {
    b.try_into()
        .map_err(|_| format!("{ty:?} is {N} bytes, not {}", b.len()))
}

/// One non-NULL field of type `ty`, as the type's `*_send` function writes it.
fn value(ty: Ty, b: &[u8]) -> Result<Value, String> {
    Ok(match ty {
        Ty::Bool => Value::Bool(exact::<1>(b, ty)?[0] != 0),
        Ty::Int2 => Value::Int2(i16::from_be_bytes(exact(b, ty)?)),
        Ty::Int4 => Value::Int4(i32::from_be_bytes(exact(b, ty)?)),
        Ty::Int8 => Value::Int8(i64::from_be_bytes(exact(b, ty)?)),
        Ty::Float4 => Value::Float4(u32::from_be_bytes(exact(b, ty)?)),
        Ty::Float8 => Value::Float8(u64::from_be_bytes(exact(b, ty)?)),
        Ty::Text => {
            let s = std::str::from_utf8(b).map_err(|e| format!("text: {e}"))?;
            Value::Text(s.to_owned())
        }
        Ty::Bytea => Value::Bytea(b.to_vec()),
        Ty::Date => Value::Date(match i32::from_be_bytes(exact(b, ty)?) {
            // DATEVAL_NOBEGIN and DATEVAL_NOEND: -infinity and infinity.
            i32::MIN => -i32::MAX,
            i32::MAX => i32::MAX,
            d => d.checked_add(EPOCH_DAYS).ok_or("date out of range")?,
        }),
        Ty::Timestamp => Value::Timestamp(match i64::from_be_bytes(exact(b, ty)?) {
            // DT_NOBEGIN and DT_NOEND: -infinity and infinity.
            i64::MIN => -i64::MAX,
            i64::MAX => i64::MAX,
            t => t
                .checked_add(EPOCH_MICROS)
                .ok_or("timestamp out of range")?,
        }),
        Ty::Uuid => Value::Uuid(exact(b, ty)?),
    })
}

/// Decodes a whole binary COPY stream of columns `types` into rows, or says why it cannot.
fn oracle(stream: &[u8], types: &[Ty]) -> Result<Vec<Vec<Value>>, String> {
    let mut r = Reader {
        bytes: stream,
        pos: 0,
    };
    // Header: the signature, a flags word, the extension area's length and the area.
    if r.take(11)? != b"PGCOPY\n\xff\r\n\0" {
        return Err("bad signature".into());
    }
    let flags = r.i32()? as u32;
    // Bit 16: OIDs included. Bits 17-31 are critical: a reader must stop on any it does not
    // know. Bits 0-15 may be ignored.
    let oids = flags & (1 << 16) != 0;
    if flags >> 17 != 0 {
        return Err(format!("critical flags {flags:#x}"));
    }
    let extension = r.i32()?;
    if extension < 0 {
        return Err(format!("header extension length {extension}"));
    }
    r.take(extension as usize)?;
    // Tuples, up to the trailer: a field count of -1.
    let mut rows = Vec::new();
    loop {
        let count = r.i16()?;
        if count == -1 {
            break;
        }
        if count as usize != types.len() || count < 0 {
            return Err(format!("row {}: {count} fields", rows.len() + 1));
        }
        if oids {
            // The OID: a field that the count does not include.
            r.field()?;
        }
        let mut row = Vec::with_capacity(types.len());
        for &ty in types {
            row.push(match r.field()? {
                None => Value::Null,
                Some(b) => value(ty, b).map_err(|e| format!("row {}: {e}", rows.len() + 1))?,
            });
        }
        rows.push(row);
    }
    if r.pos != stream.len() {
        return Err(format!("{} bytes after the trailer", stream.len() - r.pos));
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// The fast decoder's batches, value by value
// ---------------------------------------------------------------------------------------------

/// Row `i` of column `a` as a [`Value`], checking the Arrow type the column must have.
fn arrow_value(ty: Ty, a: &dyn Array, i: usize) -> Value {
    let expected = match ty {
        Ty::Bool => DataType::Boolean,
        Ty::Int2 => DataType::Int16,
        Ty::Int4 => DataType::Int32,
        Ty::Int8 => DataType::Int64,
        Ty::Float4 => DataType::Float32,
        Ty::Float8 => DataType::Float64,
        Ty::Text => DataType::Utf8,
        Ty::Bytea => DataType::Binary,
        Ty::Date => DataType::Date32,
        Ty::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        Ty::Uuid => DataType::FixedSizeBinary(16),
    };
    assert_eq!(a.data_type(), &expected, "{ty:?}");
    if a.is_null(i) {
        return Value::Null;
    }
    match ty {
        Ty::Bool => Value::Bool(a.as_boolean().value(i)),
        Ty::Int2 => Value::Int2(a.as_primitive::<Int16Type>().value(i)),
        Ty::Int4 => Value::Int4(a.as_primitive::<Int32Type>().value(i)),
        Ty::Int8 => Value::Int8(a.as_primitive::<Int64Type>().value(i)),
        Ty::Float4 => Value::Float4(a.as_primitive::<Float32Type>().value(i).to_bits()),
        Ty::Float8 => Value::Float8(a.as_primitive::<Float64Type>().value(i).to_bits()),
        Ty::Text => Value::Text(a.as_string::<i32>().value(i).to_owned()),
        Ty::Bytea => Value::Bytea(a.as_binary::<i32>().value(i).to_vec()),
        Ty::Date => Value::Date(a.as_primitive::<Date32Type>().value(i)),
        Ty::Timestamp => Value::Timestamp(a.as_primitive::<TimestampMicrosecondType>().value(i)),
        Ty::Uuid => Value::Uuid(a.as_fixed_size_binary().value(i).try_into().unwrap()),
    }
}

/// The rows of `batches`, each batch holding at most `batch_rows` rows.
fn rows_of(batches: &[RecordBatch], types: &[Ty], batch_rows: usize) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for b in batches {
        assert!(
            b.num_rows() <= batch_rows,
            "{} rows in a batch",
            b.num_rows()
        );
        assert_eq!(b.num_columns(), types.len());
        for i in 0..b.num_rows() {
            let row = types
                .iter()
                .zip(b.columns())
                .map(|(&ty, a)| arrow_value(ty, a.as_ref(), i));
            rows.push(row.collect());
        }
    }
    rows
}

fn decoder(types: &[Ty], options: DecodeOptions) -> CopyDecoder {
    let columns = types
        .iter()
        .enumerate()
        .map(|(i, ty)| PgColumn::new(format!("c{i}"), ty.oid(), -1))
        .collect();
    CopyDecoder::new(columns, options).expect("the decoder takes these columns")
}

/// Decodes `stream` fed in chunks of the given sizes (cycled), flushing every full batch.
fn decode_chunks(
    types: &[Ty],
    options: DecodeOptions,
    stream: &[u8],
    sizes: &[usize],
) -> Result<Vec<RecordBatch>, pgarrow_decode::Error> {
    let mut rest = stream;
    let chunks = sizes.iter().cycle().map_while(|&size| {
        let (chunk, tail) = rest.split_at(size.max(1).min(rest.len()));
        rest = tail;
        (!chunk.is_empty()).then_some(chunk)
    });
    feed(&mut decoder(types, options), chunks)
}

/// Decodes `framed` (CopyData messages) as the client walks them, `read` bytes arriving at a
/// time.
fn decode_messages(
    types: &[Ty],
    options: DecodeOptions,
    framed: &[u8],
    read: usize,
) -> Result<Vec<RecordBatch>, pgarrow_decode::Error> {
    let mut d = decoder(types, options);
    let mut batches = Vec::new();
    walk_messages(&mut d, framed, read, |b| batches.push(b))?;
    Ok(batches)
}

// ---------------------------------------------------------------------------------------------
// Generated streams
// ---------------------------------------------------------------------------------------------

/// A (never NULL) value of `shape` from copygen's generator.
fn copygen_value(g: &mut Gen<'_>, shape: &Shape) -> Vec<u8> {
    let mut out = Vec::new();
    g.value(shape, &mut out, 0);
    out
}

/// A value of `ty` as the server sends it: mostly random, often a special value.
fn generate(ty: Ty, g: &mut Gen<'_>) -> Option<Vec<u8>> {
    if g.entropy.chance(12) {
        return None;
    }
    let e = &mut g.entropy;
    let special = e.chance(15);
    Some(match ty {
        Ty::Bool => vec![u8::from(e.chance(50))],
        Ty::Int2 => (e.next_u64() as i16).to_be_bytes().to_vec(),
        // copygen's own int4 and date values.
        Ty::Int4 => copygen_value(g, &Shape::Int4),
        Ty::Int8 => (e.next_u64() as i64).to_be_bytes().to_vec(),
        Ty::Float4 if special => {
            let bits: [u32; 5] = [
                0x7fc0_0000,
                0x7f80_0001,
                0x7f80_0000,
                0xff80_0000,
                0x8000_0000,
            ];
            bits[e.below(5) as usize].to_be_bytes().to_vec()
        }
        Ty::Float4 => (e.next_u64() as u32).to_be_bytes().to_vec(),
        Ty::Float8 if special => {
            let specials = [
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                -0.0,
                f64::MIN_POSITIVE,
            ];
            specials[e.below(5) as usize].to_be_bytes().to_vec()
        }
        Ty::Float8 => e.next_u64().to_be_bytes().to_vec(),
        Ty::Text => {
            let pieces = ["", "a", "é", "日本", "😀", "\0", "\n", "z", "\"", "ß"];
            let n = e.below(8);
            let mut s = String::new();
            for _ in 0..n {
                s.push_str(pieces[e.below(pieces.len() as u64) as usize]);
            }
            s.into_bytes()
        }
        Ty::Bytea => (0..e.below(20)).map(|_| e.next_u64() as u8).collect(),
        Ty::Date if special => [i32::MIN, i32::MAX][e.below(2) as usize]
            .to_be_bytes()
            .to_vec(),
        Ty::Date if e.chance(50) => copygen_value(g, &Shape::Date),
        // From 4714-11-24 BC (Julian day 0) to the last day of 5874897 AD.
        Ty::Date => ((e.below(2_147_483_494) as i64 - 2_451_545) as i32)
            .to_be_bytes()
            .to_vec(),
        Ty::Timestamp if special => [i64::MIN, i64::MAX][e.below(2) as usize]
            .to_be_bytes()
            .to_vec(),
        // From 4714-11-24 BC to 294246 AD: all within Arrow's microseconds since 1970.
        Ty::Timestamp => {
            let span = 9_200_000_000_000_000_000u64 + 211_813_488_000_000_000;
            ((e.below(span) as i128 - 211_813_488_000_000_000) as i64)
                .to_be_bytes()
                .to_vec()
        }
        Ty::Uuid => (0..16).map(|_| e.next_u64() as u8).collect(),
    })
}

/// A random stream: its columns and bytes. The header has, now and then, ignorable flag
/// bits, an extension area, or the OIDs flag (and then an OID before every tuple's fields).
fn stream(g: &mut Gen<'_>) -> (Vec<Ty>, Vec<u8>) {
    let types: Vec<Ty> = (0..1 + g.entropy.below(8))
        .map(|_| TYPES[g.entropy.below(TYPES.len() as u64) as usize])
        .collect();
    let oids = g.entropy.chance(15);
    let flags = if oids { 1 << 16 } else { 0 } | if g.entropy.chance(15) { 0x5 } else { 0 };
    let extension: Vec<u8> = (0..[0, 0, 0, 3, 40][g.entropy.below(5) as usize])
        .map(|i| i as u8)
        .collect();
    let mut b = CopyBuilder::with_header(flags, &extension);
    for _ in 0..g.entropy.below(40) {
        let fields: Vec<Option<Vec<u8>>> = types.iter().map(|&ty| generate(ty, g)).collect();
        let refs: Vec<Option<&[u8]>> = fields.iter().map(Option::as_deref).collect();
        let row = CopyBuilder::empty().row(&refs).finish();
        if oids {
            // The OID, a 4-byte field, goes between the field count and the fields.
            let oid = g.entropy.next_u64() as u32;
            b.raw(&row[..2])
                .raw(&4i32.to_be_bytes())
                .raw(&oid.to_be_bytes());
            b.raw(&row[2..]);
        } else {
            b.raw(&row);
        }
    }
    (types, b.trailer().finish())
}

/// Chunk sizes for feeding a stream: single bytes, small and large pieces.
fn chunk_sizes(e: &mut Entropy<'_>) -> Vec<usize> {
    let max = [1, 3, 17, 200, 5000][e.below(5) as usize];
    (0..1 + e.below(6))
        .map(|_| 1 + e.below(max) as usize)
        .collect()
}

/// Random cuts for CopyData messages: from a message per few bytes to a few per stream.
fn cuts(e: &mut Entropy<'_>, len: usize) -> Vec<usize> {
    let gap = [2, 9, 60, 1000][e.below(4) as usize];
    let mut cuts = Vec::new();
    let mut at = 0;
    loop {
        at += 1 + e.below(gap) as usize;
        if at >= len {
            return cuts;
        }
        cuts.push(at);
    }
}

fn options(e: &mut Entropy<'_>) -> DecodeOptions {
    DecodeOptions::default()
        .with_batch_rows(1 + e.below(8) as usize)
        .with_batch_bytes([64, 1000, DecodeOptions::default().batch_bytes][e.below(3) as usize])
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

const STREAMS: u64 = 600;

#[test]
fn generated_streams_decode_to_the_oracles_values() {
    let mut rows_seen = 0;
    for seed in 1..=STREAMS {
        let mut g = Gen {
            entropy: Entropy::Seeded(seed),
        };
        let (types, bytes) = stream(&mut g);
        let expected =
            oracle(&bytes, &types).unwrap_or_else(|e| panic!("seed {seed}: oracle: {e}"));
        rows_seen += expected.len();
        let options = options(&mut g.entropy);
        let chunks = chunk_sizes(&mut g.entropy);
        let batches = decode_chunks(&types, options, &bytes, &chunks)
            .unwrap_or_else(|e| panic!("seed {seed} {types:?}, chunks {chunks:?}: {e}"));
        assert_rows(
            seed,
            "chunks",
            &types,
            &rows_of(&batches, &types, options.batch_rows),
            &expected,
        );

        let framed = copy_data_split(&bytes, &cuts(&mut g.entropy, bytes.len()));
        let read = [1, 7, 100, framed.len()][g.entropy.below(4) as usize];
        let batches = decode_messages(&types, options, &framed, read).unwrap_or_else(|e| {
            panic!("seed {seed} {types:?}, messages read {read} at a time: {e}")
        });
        assert_rows(
            seed,
            "messages",
            &types,
            &rows_of(&batches, &types, options.batch_rows),
            &expected,
        );
    }
    eprintln!("{STREAMS} streams, {rows_seen} rows");
    assert!(rows_seen > 10 * STREAMS as usize, "{rows_seen} rows in all");
}

/// Asserts that the decoder's rows are the oracle's, naming the first difference.
fn assert_rows(seed: u64, how: &str, types: &[Ty], ours: &[Vec<Value>], oracle: &[Vec<Value>]) {
    for (r, (a, b)) in ours.iter().zip(oracle).enumerate() {
        for (c, ty) in types.iter().enumerate() {
            assert_eq!(
                a[c],
                b[c],
                "seed {seed}, {how}: row {}, column {c} ({ty:?}): decoder left, oracle right",
                r + 1
            );
        }
    }
    assert_eq!(ours.len(), oracle.len(), "seed {seed}, {how}: row count");
}

/// Damaged streams: whatever the decoder makes of one, the oracle makes of it too: the same
/// rows, or a refusal.
#[test]
fn damaged_streams_are_refused_by_both_or_decoded_alike() {
    let (mut refused, mut decoded) = (0, 0);
    for seed in 1..=STREAMS {
        let mut g = Gen {
            entropy: Entropy::Seeded(seed),
        };
        let (types, mut bytes) = stream(&mut g);
        g.corrupt(&mut bytes);
        let options = options(&mut g.entropy);
        let chunks = chunk_sizes(&mut g.entropy);
        let ours = decode_chunks(&types, options, &bytes, &chunks);
        match (ours, oracle(&bytes, &types)) {
            (Ok(batches), Ok(expected)) => {
                decoded += 1;
                let rows = rows_of(&batches, &types, options.batch_rows);
                assert_rows(seed, "damaged", &types, &rows, &expected);
            }
            (Err(_), Err(_)) => refused += 1,
            (Ok(_), Err(e)) => {
                panic!("seed {seed} {types:?}: the decoder took what the oracle refused: {e}")
            }
            (Err(e), Ok(_)) => {
                panic!("seed {seed} {types:?}: the decoder refused what the oracle took: {e}")
            }
        }
    }
    eprintln!("damaged streams: {refused} refused by both, {decoded} decoded alike");
    assert!(
        refused > STREAMS / 4 && decoded > 0,
        "{refused} refused, {decoded} decoded"
    );
}

/// The oracle itself on a stream written by hand, so that a bug it shares with the generator
/// cannot go unseen.
#[test]
fn the_oracle_reads_a_stream_written_by_hand() {
    let types = [
        Ty::Bool,
        Ty::Int2,
        Ty::Text,
        Ty::Date,
        Ty::Timestamp,
        Ty::Uuid,
    ];
    let mut b = CopyBuilder::new();
    b.row(&[
        Some(&[1]),
        Some(&(-2i16).to_be_bytes()),
        Some("héllo".as_bytes()),
        // 2000-01-02 and 2000-01-01 00:00:01.
        Some(&1i32.to_be_bytes()),
        Some(&1_000_000i64.to_be_bytes()),
        Some(&[7; 16]),
    ]);
    b.row(&[
        None,
        None,
        Some(b""),
        Some(&i32::MAX.to_be_bytes()),
        Some(&i64::MIN.to_be_bytes()),
        None,
    ]);
    let rows = oracle(&b.trailer().finish(), &types).unwrap();
    assert_eq!(
        rows,
        [
            vec![
                Value::Bool(true),
                Value::Int2(-2),
                Value::Text("héllo".into()),
                Value::Date(10_958),
                Value::Timestamp(946_684_801_000_000),
                Value::Uuid([7; 16]),
            ],
            vec![
                Value::Null,
                Value::Null,
                Value::Text(String::new()),
                Value::Date(i32::MAX),
                Value::Timestamp(-i64::MAX),
                Value::Null,
            ],
        ]
    );
    // A stream that stops short, or goes on after its trailer, is refused.
    let whole = CopyBuilder::new().row(&[Some(&[0])]).trailer().finish();
    assert!(oracle(&whole[..whole.len() - 1], &[Ty::Bool]).is_err());
    assert!(oracle(&[&whole[..], &[0]].concat(), &[Ty::Bool]).is_err());
}
