//! Structure-aware generation of binary COPY streams, for fuzzing and robustness tests.
//!
//! A [`Shape`] describes a column's type (scalars, arrays, records, ranges, multiranges,
//! hstore, enums). [`Gen`] draws its choices from an [`Entropy`] source (a fuzzer's bytes or a
//! seeded generator) and writes mostly valid encodings of values of that shape, as the
//! server's `*_send` functions lay them out; [`Gen::stream`] wraps rows into a whole stream and
//! can then truncate or corrupt it. The decoder must turn every such stream into either batches
//! or an error: never a panic, never an allocation the input does not justify.

/// A source of choices: fuzzer bytes (then zeros) or a seeded xorshift generator.
#[derive(Debug, Clone)]
pub enum Entropy<'a> {
    /// Bytes from a fuzzer, consumed in order; zeros once exhausted.
    Bytes(&'a [u8]),
    /// A deterministic generator.
    Seeded(u64),
}

impl Entropy<'_> {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        match self {
            Entropy::Bytes(b) => {
                let n = b.len().min(8);
                let mut buf = [0u8; 8];
                buf[..n].copy_from_slice(&b[..n]);
                *b = &b[n..];
                u64::from_le_bytes(buf)
            }
            Entropy::Seeded(s) => {
                // xorshift64*: fine for test data, never for anything secret.
                let mut x = (*s).max(1);
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                *s = x;
                x.wrapping_mul(0x2545_f491_4f6c_dd1d)
            }
        }
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `percent`%.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The type of a generated column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// `int4`.
    Int4,
    /// `text`.
    Text,
    /// `numeric(p, s)`: precision, scale.
    Numeric(u8, u8),
    /// `date`.
    Date,
    /// An array of the element with this many dimensions.
    Array(Box<Shape>, usize),
    /// A record of these fields.
    Record(Vec<Shape>),
    /// A range over the subtype.
    Range(Box<Shape>),
    /// A multirange over the subtype.
    Multirange(Box<Shape>),
    /// `hstore`.
    Hstore,
    /// An enum with these labels.
    Enum(Vec<String>),
}

/// Writes values and streams of a [`Shape`].
#[derive(Debug)]
pub struct Gen<'a> {
    /// Where the choices come from.
    pub entropy: Entropy<'a>,
}

impl Gen<'_> {
    /// A NULL (None) 10% of the time, else a value of `shape`.
    pub fn field(&mut self, shape: &Shape) -> Option<Vec<u8>> {
        if self.entropy.chance(10) {
            return None;
        }
        let mut out = Vec::new();
        self.value(shape, &mut out, 0);
        Some(out)
    }

    /// Appends the encoding of a value of `shape` (never NULL at the top).
    pub fn value(&mut self, shape: &Shape, out: &mut Vec<u8>, depth: usize) {
        let e = &mut self.entropy;
        match shape {
            Shape::Int4 => out.extend_from_slice(&(e.next_u64() as i32).to_be_bytes()),
            Shape::Text => {
                let n = e.below(12) as usize;
                for _ in 0..n {
                    out.push(b'a' + e.below(26) as u8);
                }
            }
            Shape::Numeric(p, s) => {
                // A value with at most p digits of which s fractional: v * 10^-s.
                let digits = u32::from(*p).min(18);
                let max = 10u64.pow(digits);
                let v = e.below(max);
                let neg = e.chance(30);
                numeric(v, *s, neg, out);
            }
            Shape::Date => {
                out.extend_from_slice(&((e.next_u64() % 200_000) as i32 - 100_000).to_be_bytes())
            }
            Shape::Array(element, dims) => {
                if e.chance(10) {
                    out.extend_from_slice(&0i32.to_be_bytes()); // empty
                    out.extend_from_slice(&0i32.to_be_bytes());
                    out.extend_from_slice(&0u32.to_be_bytes());
                    return;
                }
                let lens: Vec<i32> = (0..*dims).map(|_| 1 + e.below(3) as i32).collect();
                out.extend_from_slice(&(*dims as i32).to_be_bytes());
                out.extend_from_slice(&1i32.to_be_bytes());
                out.extend_from_slice(&0u32.to_be_bytes());
                for &n in &lens {
                    out.extend_from_slice(&n.to_be_bytes());
                    let lower: i32 = if e.chance(10) { 5 } else { 1 };
                    out.extend_from_slice(&lower.to_be_bytes());
                }
                let total: i32 = lens.iter().product();
                for _ in 0..total {
                    self.nested(element, out, depth);
                }
            }
            Shape::Record(fields) => {
                out.extend_from_slice(&(fields.len() as i32).to_be_bytes());
                for f in fields {
                    out.extend_from_slice(&0u32.to_be_bytes());
                    self.nested(f, out, depth);
                }
            }
            Shape::Range(sub) => {
                let flags: u8 = match e.below(5) {
                    0 => 0x01,
                    1 => 0x08 | 0x10,
                    2 => 0x02,
                    3 => 0x02 | 0x10,
                    _ => 0x04 | 0x08,
                };
                out.push(flags);
                if flags & 0x01 == 0 {
                    for unbounded in [0x08, 0x10] {
                        if flags & unbounded == 0 {
                            let mut v = Vec::new();
                            self.value(sub, &mut v, depth + 1);
                            out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                            out.extend_from_slice(&v);
                        }
                    }
                }
            }
            Shape::Multirange(sub) => {
                let n = e.below(3) as i32;
                out.extend_from_slice(&n.to_be_bytes());
                let range = Shape::Range(sub.clone());
                for _ in 0..n {
                    let mut v = Vec::new();
                    self.value(&range, &mut v, depth + 1);
                    out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    out.extend_from_slice(&v);
                }
            }
            Shape::Hstore => {
                let n = e.below(4) as i32;
                out.extend_from_slice(&n.to_be_bytes());
                for i in 0..n {
                    let key = format!("k{i}");
                    out.extend_from_slice(&(key.len() as i32).to_be_bytes());
                    out.extend_from_slice(key.as_bytes());
                    if self.entropy.chance(20) {
                        out.extend_from_slice(&(-1i32).to_be_bytes());
                    } else {
                        out.extend_from_slice(&1i32.to_be_bytes());
                        out.push(b'v');
                    }
                }
            }
            Shape::Enum(labels) => {
                let i = e.below(labels.len() as u64) as usize;
                out.extend_from_slice(labels[i].as_bytes());
            }
        }
    }

    /// An element or attribute: a length-prefixed value, or -1 for NULL.
    fn nested(&mut self, shape: &Shape, out: &mut Vec<u8>, depth: usize) {
        if depth > 4 || self.entropy.chance(10) {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            return;
        }
        let mut v = Vec::new();
        self.value(shape, &mut v, depth + 1);
        out.extend_from_slice(&(v.len() as i32).to_be_bytes());
        out.extend_from_slice(&v);
    }

    /// A whole stream of `rows` rows of `shapes`, returned valid.
    pub fn stream(&mut self, shapes: &[Shape], rows: usize) -> Vec<u8> {
        let mut b = crate::CopyBuilder::new();
        for _ in 0..rows {
            let fields: Vec<Option<Vec<u8>>> = shapes.iter().map(|s| self.field(s)).collect();
            let refs: Vec<Option<&[u8]>> = fields.iter().map(|f| f.as_deref()).collect();
            b.row(&refs);
        }
        b.trailer().finish()
    }

    /// Damages a stream: flips bytes, cuts it short, duplicates or deletes a span, or writes a
    /// huge length somewhere.
    pub fn corrupt(&mut self, stream: &mut Vec<u8>) {
        if stream.len() < 22 {
            return;
        }
        let e = &mut self.entropy;
        let at = |e: &mut Entropy<'_>, len: usize| 19 + e.below((len - 19) as u64) as usize;
        match e.below(5) {
            0 => {
                for _ in 0..1 + e.below(4) {
                    let i = at(e, stream.len());
                    stream[i] = e.next_u64() as u8;
                }
            }
            1 => {
                let i = at(e, stream.len());
                stream.truncate(i);
            }
            2 => {
                let i = at(e, stream.len());
                let j = (i + 1 + e.below(16) as usize).min(stream.len());
                let span = stream[i..j].to_vec();
                stream.splice(i..i, span);
            }
            3 => {
                let i = at(e, stream.len());
                let j = (i + 1 + e.below(16) as usize).min(stream.len());
                stream.drain(i..j);
            }
            _ => {
                let i = at(e, stream.len()).min(stream.len() - 4);
                let huge = [0x7f, 0xff, 0xff, 0xf0];
                stream[i..i + 4].copy_from_slice(&huge);
            }
        }
    }
}

/// Encodes `v * 10^-scale` as a binary `numeric`.
fn numeric(v: u64, scale: u8, negative: bool, out: &mut Vec<u8>) {
    // Base-10000 digits of v * 10^(pad) so the point falls on a group boundary.
    let pad = (4 - u32::from(scale) % 4) % 4;
    let mut n = u128::from(v) * 10u128.pow(pad);
    let frac_groups = (u32::from(scale) + pad) / 4;
    let mut groups = Vec::new();
    while n > 0 {
        groups.push((n % 10_000) as u16);
        n /= 10_000;
    }
    groups.reverse();
    let weight = groups.len() as i16 - 1 - frac_groups as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&(if groups.is_empty() { 0 } else { weight }).to_be_bytes());
    out.extend_from_slice(
        &(if negative && !groups.is_empty() {
            0x4000u16
        } else {
            0
        })
        .to_be_bytes(),
    );
    out.extend_from_slice(&u16::from(scale).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_encoding() {
        let mut out = Vec::new();
        numeric(12345, 2, true, &mut out); // -123.45
        assert_eq!(out, [0, 2, 0, 0, 0x40, 0, 0, 2, 0, 123, 0x11, 0x94]);
        out.clear();
        numeric(0, 3, false, &mut out);
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 3]);
    }

    #[test]
    fn seeded_is_deterministic() {
        let shapes = [Shape::Array(Box::new(Shape::Int4), 2), Shape::Hstore];
        let a = Gen {
            entropy: Entropy::Seeded(3),
        }
        .stream(&shapes, 5);
        let b = Gen {
            entropy: Entropy::Seeded(3),
        }
        .stream(&shapes, 5);
        assert_eq!(a, b);
        let c = Gen {
            entropy: Entropy::Seeded(4),
        }
        .stream(&shapes, 5);
        assert_ne!(a, c);
    }
}
