//! The wire formats: one parser per PostgreSQL type's binary form (its `*_send` function in
//! PostgreSQL's `src/backend/utils/adt/`), and a reader for the parts of composite values
//! (arrays, records, ranges, maps). Pure functions over bytes; the column decoders call them.

use arrow_buffer::IntervalMonthDayNano;

use crate::error::{FieldError, Special, Unrepresentable, WireType};

/// Microseconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01.
pub const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// Days from the Unix epoch to PostgreSQL's epoch, 2000-01-01.
pub const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds in a day; `time` 24:00:00 is this value.
pub const US_PER_DAY: i64 = 86_400_000_000;

/// A field's value, or why it has none.
pub type FieldResult<T> = Result<T, FieldError>;

#[inline(always)]
fn fixed<const N: usize>(b: &[u8], ty: WireType) -> FieldResult<[u8; N]> {
    b.try_into().map_err(|_| size_error(ty, N, b))
}

#[inline(always)]
fn size_error(ty: WireType, expected: usize, b: &[u8]) -> FieldError {
    FieldError::Size {
        ty,
        expected: u8::try_from(expected).unwrap_or(u8::MAX),
        // A field is at most i32::MAX bytes.
        got: u32::try_from(b.len()).unwrap_or(u32::MAX),
    }
}

// The wire parsers: one per type, each documenting its layout (PostgreSQL's `*_send`). Both
// the row loop's fast path (`Column::push_fast`, which declines a value on any error) and the
// general path (`Column::push`, which applies the policies) call them; their errors are typed
// and allocate nothing. Inlined into the fast path they still cost about 2.7% more
// instructions per row than the hand-written arms they replaced (callgrind, see
// benches/RESULTS.md). Not the width of the error: narrowed from 40 to 16 bytes, the count
// did not move; a `#[cold]` error constructor made it 1.5% worse. The rest is register
// allocation in the row loop.

/// `bool`: one byte, non-zero is true.
#[inline(always)]
pub fn bool_from_sql(b: &[u8]) -> FieldResult<bool> {
    Ok(fixed::<1>(b, WireType::Bool)?[0] != 0)
}

/// `int2`: big-endian i16.
#[inline(always)]
pub fn int2_from_sql(b: &[u8]) -> FieldResult<i16> {
    Ok(i16::from_be_bytes(fixed(b, WireType::Int2)?))
}

/// `int4`: big-endian i32.
#[inline(always)]
pub fn int4_from_sql(b: &[u8]) -> FieldResult<i32> {
    Ok(i32::from_be_bytes(fixed(b, WireType::Int4)?))
}

/// `int8`: big-endian i64.
#[inline(always)]
pub fn int8_from_sql(b: &[u8]) -> FieldResult<i64> {
    Ok(i64::from_be_bytes(fixed(b, WireType::Int8)?))
}

/// `oid` (and `xid`, `cid`, `reg*`): big-endian u32.
#[inline(always)]
pub fn oid_from_sql(b: &[u8]) -> FieldResult<u32> {
    Ok(u32::from_be_bytes(fixed(b, WireType::Oid)?))
}

/// `float4`: IEEE 754 bits, big-endian; -0, NaN and infinities survive.
#[inline(always)]
pub fn float4_from_sql(b: &[u8]) -> FieldResult<f32> {
    Ok(f32::from_bits(u32::from_be_bytes(fixed(
        b,
        WireType::Float4,
    )?)))
}

/// `float8`: IEEE 754 bits, big-endian; -0, NaN and infinities survive.
#[inline(always)]
pub fn float8_from_sql(b: &[u8]) -> FieldResult<f64> {
    Ok(f64::from_bits(u64::from_be_bytes(fixed(
        b,
        WireType::Float8,
    )?)))
}

/// `date`: i32 days since 2000-01-01, returned as days since 1970-01-01 (Arrow Date32).
///
/// `infinity` and `-infinity` (i32 MAX and MIN) are reported as such, for the infinity policy
/// (which writes them back as the extremes by default).
#[inline(always)]
pub fn date_from_sql(b: &[u8]) -> FieldResult<i32> {
    let unrepresentable = |u| Err(FieldError::Unrepresentable(u));
    match i32::from_be_bytes(fixed(b, WireType::Date)?) {
        i32::MAX => unrepresentable(Unrepresentable::DateInfinity(Special::PosInfinity)),
        i32::MIN => unrepresentable(Unrepresentable::DateInfinity(Special::NegInfinity)),
        d => match d.checked_add(PG_EPOCH_DAYS) {
            Some(d) => Ok(d),
            None => unrepresentable(Unrepresentable::DateRange(d)),
        },
    }
}

/// `time`: i64 microseconds since midnight (Arrow Time64(us)).
///
/// PostgreSQL accepts `24:00:00`, which is outside Arrow's range for a time of day.
#[inline(always)]
pub fn time_from_sql(b: &[u8]) -> FieldResult<i64> {
    match i64::from_be_bytes(fixed(b, WireType::Time)?) {
        t @ 0..US_PER_DAY => Ok(t),
        US_PER_DAY => Err(FieldError::Unrepresentable(Unrepresentable::Time2400)),
        t => Err(FieldError::TimeOfDay(t)),
    }
}

/// `timestamp` and `timestamptz`: i64 microseconds since 2000-01-01 (UTC for timestamptz),
/// returned as microseconds since the Unix epoch.
///
/// `infinity` and `-infinity` (i64 MAX and MIN) are reported as such, for the infinity policy.
#[inline(always)]
pub fn timestamp_from_sql(b: &[u8]) -> FieldResult<i64> {
    let unrepresentable = |u| Err(FieldError::Unrepresentable(u));
    match i64::from_be_bytes(fixed(b, WireType::Timestamp)?) {
        i64::MAX => unrepresentable(Unrepresentable::TimestampInfinity(Special::PosInfinity)),
        i64::MIN => unrepresentable(Unrepresentable::TimestampInfinity(Special::NegInfinity)),
        // i64::MAX microseconds from 1970 is a finite instant (294247-01-10
        // 04:00:54.775807), but it is the value that means `infinity` in Arrow
        // (`TIMESTAMP_INFINITY`): past the range, so the out-of-range policy decides.
        t => match t.checked_add(PG_EPOCH_US) {
            Some(t) if t != i64::MAX => Ok(t),
            _ => unrepresentable(Unrepresentable::TimestampRange),
        },
    }
}

/// `interval`: i64 microseconds, i32 days, i32 months (in that order), returned as Arrow's
/// MonthDayNano. Months and days stay separate from the time part, as in PostgreSQL.
///
/// A time part beyond +-2562047 hours overflows nanoseconds, and PostgreSQL 17's infinite
/// intervals have no Arrow value.
#[inline(always)]
pub fn interval_from_sql(b: &[u8]) -> FieldResult<IntervalMonthDayNano> {
    let b: [u8; 16] = fixed(b, WireType::Interval)?;
    let [
        u0,
        u1,
        u2,
        u3,
        u4,
        u5,
        u6,
        u7,
        d0,
        d1,
        d2,
        d3,
        m0,
        m1,
        m2,
        m3,
    ] = b;
    let us = i64::from_be_bytes([u0, u1, u2, u3, u4, u5, u6, u7]);
    let days = i32::from_be_bytes([d0, d1, d2, d3]);
    let months = i32::from_be_bytes([m0, m1, m2, m3]);
    match us.checked_mul(1000) {
        Some(nanos) => Ok(IntervalMonthDayNano::new(months, days, nanos)),
        // Infinite intervals are MAX or MIN throughout; their time part alone already
        // overflows.
        None => Err(FieldError::Unrepresentable(match (us, days, months) {
            (i64::MAX, i32::MAX, i32::MAX) => {
                Unrepresentable::IntervalInfinity(Special::PosInfinity)
            }
            (i64::MIN, i32::MIN, i32::MIN) => {
                Unrepresentable::IntervalInfinity(Special::NegInfinity)
            }
            _ => Unrepresentable::IntervalRange(us),
        })),
    }
}

/// `uuid`: 16 bytes.
#[inline(always)]
pub fn uuid_from_sql(b: &[u8]) -> FieldResult<&[u8; 16]> {
    b.try_into().map_err(|_| size_error(WireType::Uuid, 16, b))
}

/// `jsonb`: a version byte (1) and the document's text.
#[inline(always)]
pub fn jsonb_from_sql(b: &[u8]) -> FieldResult<&[u8]> {
    versioned(b, WireType::Jsonb)
}

/// `ltree`: a version byte (1) and the label path as text.
#[inline(always)]
pub fn ltree_from_sql(b: &[u8]) -> FieldResult<&[u8]> {
    versioned(b, WireType::Ltree)
}

#[inline(always)]
fn versioned(b: &[u8], ty: WireType) -> FieldResult<&[u8]> {
    match b.split_first() {
        Some((1, text)) => Ok(text),
        Some((v, _)) => Err(FieldError::Version {
            ty,
            version: Some(*v),
        }),
        None => Err(FieldError::Version { ty, version: None }),
    }
}

/// `"char"`: one byte, rendered as `charout` renders it: `\0` as the empty string, a byte
/// with the high bit set as a backslash and three octal digits, others as themselves.
pub fn char_from_sql(b: &[u8], out: &mut Vec<u8>) -> FieldResult<()> {
    match fixed::<1>(b, WireType::Char)?[0] {
        0 => {}
        c if c >= 0x80 => out.extend_from_slice(&[
            b'\\',
            b'0' + (c >> 6),
            b'0' + ((c >> 3) & 7),
            b'0' + (c & 7),
        ]),
        c => out.push(c),
    }
    Ok(())
}

/// A `timetz[]` (of any dimensions) in the array binary format, rendered as `array_out`
/// renders it: `{...}` nested by dimension, `NULL` for a null element, each element as
/// [`timetz_from_sql`] (whose text never needs quotes), and the dimensions' bounds first
/// (`[0:1]={...}`) where one does not start at 1. The same text the server gives for the
/// array cast to `text`, which is what an export holds for it.
pub fn timetz_array_from_sql(b: &[u8], out: &mut Vec<u8>) -> FieldResult<()> {
    use std::io::Write;
    let bad = |why: &str| FieldError::new(format!("a timetz[] value {why}"));
    let int = |at: usize| -> FieldResult<i32> {
        b.get(at..at + 4)
            .map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
            .ok_or_else(|| bad("ends early"))
    };
    let ndim = usize::try_from(int(0)?).map_err(|_| bad("has a negative dimension count"))?;
    if ndim > 6 {
        return Err(bad("has more than 6 dimensions"));
    }
    let mut dims = Vec::with_capacity(ndim);
    for d in 0..ndim {
        let (len, lower) = (int(12 + 8 * d)?, int(16 + 8 * d)?);
        let len = usize::try_from(len).map_err(|_| bad("has a negative dimension"))?;
        dims.push((len, lower));
    }
    let mut at = 12 + 8 * ndim;
    if ndim == 0 {
        out.extend_from_slice(b"{}");
        return if at == b.len() {
            Ok(())
        } else {
            Err(bad("has bytes past its end"))
        };
    }
    if dims.iter().any(|&(_, lower)| lower != 1) {
        for &(len, lower) in &dims {
            let upper = i64::from(lower) + len as i64 - 1;
            let _ = write!(out, "[{lower}:{upper}]");
        }
        out.push(b'=');
    }
    let total = dims
        .iter()
        .try_fold(1usize, |n, &(len, _)| n.checked_mul(len));
    let total = total
        .filter(|&n| n > 0 && n <= b.len())
        .ok_or_else(|| bad("claims more elements than its bytes hold, or none"))?;
    // Row-major: element `k` opens a brace for each dimension (from the innermost out) whose
    // run it starts, and closes one for each whose run it ends.
    let runs: Vec<usize> = dims
        .iter()
        .rev()
        .scan(1usize, |run, &(len, _)| {
            *run *= len.max(1);
            Some(*run)
        })
        .collect();
    for k in 0..total {
        if k > 0 {
            out.push(b',');
        }
        let opens = runs.iter().take_while(|&&run| k % run == 0).count();
        out.extend(std::iter::repeat_n(b'{', opens));
        let len = int(at)?;
        at += 4;
        if len < 0 {
            out.extend_from_slice(b"NULL");
        } else {
            let end = at.saturating_add(len as usize);
            let value = b
                .get(at..end)
                .ok_or_else(|| bad("ends inside an element"))?;
            timetz_from_sql(value, out)?;
            at = end;
        }
        let closes = runs.iter().take_while(|&&run| (k + 1) % run == 0).count();
        out.extend(std::iter::repeat_n(b'}', closes));
    }
    if at != b.len() {
        return Err(bad("has bytes past its end"));
    }
    Ok(())
}

/// `timetz`: i64 microseconds from midnight (0 to 24:00:00 included), then i32 seconds *west*
/// of UTC, rendered as `timetz_out` renders it under DateStyle ISO: the time as `time_out`
/// (`HH:MM:SS`, then the fraction without its trailing zeros), the zone as a sign and its
/// hours, then `:MM` and `:SS` where they are not zero (`+05:30`, `-08`, `+00`).
pub fn timetz_from_sql(b: &[u8], out: &mut Vec<u8>) -> FieldResult<()> {
    use std::io::Write;
    let b: [u8; 12] = fixed(b, WireType::Timetz)?;
    let (t, z) = b.split_at(8);
    let time = i64::from_be_bytes(t.try_into().unwrap_or_default());
    let zone = i32::from_be_bytes(z.try_into().unwrap_or_default());
    if !(0..=US_PER_DAY).contains(&time) {
        return Err(FieldError::TimeOfDay(time));
    }
    // PostgreSQL's limit on a zone's offset (TZDISP_LIMIT): 15:59:59.
    if zone.unsigned_abs() > 15 * 3600 + 59 * 60 + 59 {
        return Err(FieldError::new(format!(
            "timetz zone offset of {zone} seconds is past PostgreSQL's 15:59:59"
        )));
    }
    pgarrow_types::write_time(time, out);
    // Seconds west: a zone east of UTC (or UTC itself) is `+`.
    out.push(if zone <= 0 { b'+' } else { b'-' });
    let abs = zone.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs / 60 % 60, abs % 60);
    let _ = match (m, s) {
        (_, s) if s != 0 => write!(out, "{h:02}:{m:02}:{s:02}"),
        (m, _) if m != 0 => write!(out, "{h:02}:{m:02}"),
        _ => write!(out, "{h:02}"),
    };
    Ok(())
}

/// Reads the parts of a composite wire value (arrays, records, ranges, maps).
pub(crate) struct Reader<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(b: &'a [u8], what: &'static str) -> Self {
        Reader { b, what }
    }

    pub(crate) fn take(&mut self, n: usize) -> FieldResult<&'a [u8]> {
        if self.b.len() < n {
            return Err(FieldError::new(format!(
                "{} value truncated: needs {n} more bytes, has {}",
                self.what,
                self.b.len()
            )));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> FieldResult<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn i16(&mut self) -> FieldResult<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self) -> FieldResult<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length-prefixed part: `None` for length -1 (NULL).
    pub(crate) fn field(&mut self) -> FieldResult<Option<&'a [u8]>> {
        match self.i32()? {
            -1 => Ok(None),
            n if n < 0 => Err(FieldError::new(format!(
                "{} has a bad length {n}",
                self.what
            ))),
            n => self.take(n as usize).map(Some),
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.b.len()
    }

    pub(crate) fn end(&self) -> FieldResult<()> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(FieldError::new(format!(
                "{} value has {} bytes left over",
                self.what,
                self.b.len()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timetz_renders_as_timetz_out() {
        let wire = |us: i64, west: i32| [us.to_be_bytes().as_slice(), &west.to_be_bytes()].concat();
        for (us, west, text) in [
            (0, 0, "00:00:00+00"),
            (45_296_500_000, -19_800, "12:34:56.5+05:30"),
            (86_399_999_999, 28_800, "23:59:59.999999-08"),
            (US_PER_DAY, -57_599, "24:00:00+15:59:59"),
            (1, 57_540, "00:00:00.000001-15:59"),
            (3_600_000_120, 0, "01:00:00.00012+00"),
        ] {
            let mut out = Vec::new();
            timetz_from_sql(&wire(us, west), &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
        let mut out = Vec::new();
        assert!(timetz_from_sql(&wire(US_PER_DAY + 1, 0), &mut out).is_err());
        assert!(timetz_from_sql(&wire(0, 57_600), &mut out).is_err());
        assert!(timetz_from_sql(&[0; 8], &mut out).is_err());
    }

    #[test]
    fn timetz_arrays_render_as_array_out() {
        // An array in the binary format: dimensions (length, lower bound), then elements
        // (None: NULL).
        let array = |dims: &[(i32, i32)], elements: &[Option<(i64, i32)>]| {
            let mut b = Vec::new();
            b.extend_from_slice(&(dims.len() as i32).to_be_bytes());
            b.extend_from_slice(&i32::from(elements.contains(&None)).to_be_bytes());
            b.extend_from_slice(&1266u32.to_be_bytes());
            for (len, lower) in dims {
                b.extend_from_slice(&len.to_be_bytes());
                b.extend_from_slice(&lower.to_be_bytes());
            }
            for e in elements {
                match e {
                    None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some((us, west)) => {
                        b.extend_from_slice(&12i32.to_be_bytes());
                        b.extend_from_slice(&us.to_be_bytes());
                        b.extend_from_slice(&west.to_be_bytes());
                    }
                }
            }
            b
        };
        let text = |b: &[u8]| {
            let mut out = Vec::new();
            timetz_array_from_sql(b, &mut out).map(|()| String::from_utf8(out).unwrap())
        };
        let noon = Some((43_200_500_000, -19_800));
        let midnight = Some((US_PER_DAY, 28_800));
        assert_eq!(text(&array(&[], &[])).unwrap(), "{}");
        assert_eq!(
            text(&array(&[(3, 1)], &[noon, None, midnight])).unwrap(),
            "{12:00:00.5+05:30,NULL,24:00:00-08}"
        );
        assert_eq!(
            text(&array(&[(2, 1), (2, 1)], &[noon, None, None, midnight])).unwrap(),
            "{{12:00:00.5+05:30,NULL},{NULL,24:00:00-08}}"
        );
        assert_eq!(
            text(&array(&[(1, 0), (2, -1)], &[noon, None])).unwrap(),
            "[0:0][-1:0]={{12:00:00.5+05:30,NULL}}"
        );
        assert_eq!(
            text(&array(&[(2, 1), (1, 1), (2, 1)], &[noon, None, None, noon])).unwrap(),
            "{{{12:00:00.5+05:30,NULL}},{{NULL,12:00:00.5+05:30}}}"
        );
        // Malformed: cut short, more elements claimed than bytes, bytes past the end.
        let good = array(&[(2, 1)], &[noon, None]);
        assert!(text(&good[..good.len() - 2]).is_err());
        assert!(text(&array(&[(1_000_000, 1)], &[noon])).is_err());
        assert!(text(&[good.as_slice(), &[0]].concat()).is_err());
    }

    #[test]
    pub(crate) fn temporal_edges() {
        assert_eq!(date_from_sql(&0i32.to_be_bytes()), Ok(PG_EPOCH_DAYS));
        assert_eq!(
            date_from_sql(&i32::MAX.to_be_bytes())
                .unwrap_err()
                .special(),
            Some(Special::PosInfinity)
        );
        assert!(date_from_sql(&i32::MIN.to_be_bytes()).is_err());
        assert_eq!(
            time_from_sql(&US_PER_DAY.to_be_bytes())
                .unwrap_err()
                .special(),
            Some(Special::Time2400)
        );
        assert_eq!(
            time_from_sql(&(US_PER_DAY - 1).to_be_bytes()),
            Ok(US_PER_DAY - 1)
        );
        assert_eq!(timestamp_from_sql(&0i64.to_be_bytes()), Ok(PG_EPOCH_US));
        assert!(timestamp_from_sql(&i64::MAX.to_be_bytes()).is_err());
        assert!(timestamp_from_sql(&[0; 7]).is_err());
        // The finite instant that lands on infinity's representation is past the range.
        assert_eq!(
            timestamp_from_sql(&(i64::MAX - PG_EPOCH_US).to_be_bytes())
                .unwrap_err()
                .special(),
            Some(Special::AboveRange)
        );
        assert_eq!(
            timestamp_from_sql(&(i64::MAX - PG_EPOCH_US - 1).to_be_bytes()),
            Ok(i64::MAX - 1)
        );
        // 294276-12-31 23:59:59.999999, PostgreSQL's last timestamp, is past Arrow's range.
        assert_eq!(
            timestamp_from_sql(&9_223_371_331_199_999_999i64.to_be_bytes())
                .unwrap_err()
                .special(),
            Some(Special::AboveRange)
        );
    }

    #[test]
    pub(crate) fn interval_keeps_parts() {
        let mut b = Vec::new();
        b.extend_from_slice(&(-1_500_000i64).to_be_bytes());
        b.extend_from_slice(&30i32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            interval_from_sql(&b),
            Ok(IntervalMonthDayNano::new(-1, 30, -1_500_000_000))
        );
        let mut big = Vec::new();
        big.extend_from_slice(&(2_562_048i64 * 3_600_000_000).to_be_bytes());
        big.extend_from_slice(&[0; 8]);
        assert!(interval_from_sql(&big).is_err());
    }

    #[test]
    pub(crate) fn jsonb_ltree_char() {
        assert_eq!(jsonb_from_sql(b"\x01{}"), Ok(&b"{}"[..]));
        assert!(jsonb_from_sql(b"\x02{}").is_err());
        assert!(jsonb_from_sql(b"").is_err());
        assert_eq!(ltree_from_sql(b"\x01a.b"), Ok(&b"a.b"[..]));
        assert!(ltree_from_sql(b"\x02a").is_err());
        let text = |b: u8| {
            let mut v = Vec::new();
            char_from_sql(&[b], &mut v).unwrap();
            String::from_utf8(v).unwrap()
        };
        assert_eq!(text(0), "");
        assert_eq!(text(b'x'), "x");
        assert_eq!(text(0xe9), "\\351");
    }

    #[test]
    pub(crate) fn floats_keep_bits() {
        let neg_zero = float8_from_sql(&(-0.0f64).to_bits().to_be_bytes()).unwrap();
        assert!(neg_zero.is_sign_negative() && neg_zero == 0.0);
        assert!(
            float4_from_sql(&f32::NAN.to_bits().to_be_bytes())
                .unwrap()
                .is_nan()
        );
    }
}
