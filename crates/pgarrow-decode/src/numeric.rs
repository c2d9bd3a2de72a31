//! `numeric`: base-10000 digits to exact Arrow decimals or decimal text.
//!
//! Wire layout (`numeric_send` in `src/backend/utils/adt/numeric.c`): i16 ndigits, i16 weight,
//! u16 sign, u16 dscale, then ndigits x i16 base-10000 digits, most significant first. The value
//! is `sum(digit[i] * 10000^(weight - i))`. Trailing zero groups are dropped, so 1000000 is one
//! digit (100) with weight 1. Special values (NaN, +-Infinity since PostgreSQL 14) have no
//! digits, and their weight and dscale mean nothing.
//!
//! Over ~600 lines because of its tests (a third of the file, checking every conversion against
//! PostgreSQL's own rendering rules).

use arrow_buffer::i256;

use crate::error::{FieldError, Special, Unrepresentable};

const SIGN_POS: u16 = 0x0000;
const SIGN_NEG: u16 = 0x4000;
const SIGN_NAN: u16 = 0xC000;
const SIGN_PINF: u16 = 0xD000;
const SIGN_NINF: u16 = 0xF000;

/// A parsed `numeric` value borrowing its digits from the wire.
#[derive(Debug, Clone, Copy)]
pub struct Numeric<'a> {
    /// Whether the value is negative.
    pub negative: bool,
    /// Weight of the first digit group, in powers of 10000.
    pub weight: i16,
    /// Number of decimal digits after the point to display.
    pub dscale: u16,
    digits: &'a [u8],
}

/// A `numeric` that is not a finite number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericSpecial {
    /// `NaN`.
    NaN,
    /// `Infinity`.
    PosInfinity,
    /// `-Infinity`.
    NegInfinity,
}

impl NumericSpecial {
    /// The error for a special value that the target type cannot hold.
    pub fn error(self) -> FieldError {
        let special = match self {
            NumericSpecial::NaN => Special::NaN,
            NumericSpecial::PosInfinity => Special::PosInfinity,
            NumericSpecial::NegInfinity => Special::NegInfinity,
        };
        FieldError::Unrepresentable(Unrepresentable::Numeric(
            special,
            Box::new(self.message().into()),
        ))
    }

    /// The text PostgreSQL renders for it.
    pub fn text(self) -> &'static str {
        match self {
            NumericSpecial::NaN => "NaN",
            NumericSpecial::PosInfinity => "Infinity",
            NumericSpecial::NegInfinity => "-Infinity",
        }
    }

    /// The message for a special value that the target type cannot hold.
    pub fn message(self) -> &'static str {
        match self {
            NumericSpecial::NaN => "numeric NaN has no exact Arrow decimal representation",
            NumericSpecial::PosInfinity => {
                "numeric Infinity has no exact Arrow decimal representation"
            }
            NumericSpecial::NegInfinity => {
                "numeric -Infinity has no exact Arrow decimal representation"
            }
        }
    }
}

impl<'a> Numeric<'a> {
    /// Parses the binary `numeric` layout.
    ///
    /// # Errors
    /// A length that does not match the digit count, a digit outside 0..9999 or an unknown
    /// sign word is a [`FieldError`]; a NaN or infinity is `Ok(Err(special))`.
    pub fn parse(b: &'a [u8]) -> Result<Result<Numeric<'a>, NumericSpecial>, FieldError> {
        if b.len() < 8 {
            return Err(FieldError::new(
                "numeric field shorter than its 8-byte header",
            ));
        }
        // numeric_recv reads the digit count as unsigned: the largest numerics have more
        // than 32767 groups.
        let ndigits = u16::from_be_bytes([b[0], b[1]]);
        let weight = i16::from_be_bytes([b[2], b[3]]);
        let sign = u16::from_be_bytes([b[4], b[5]]);
        let dscale = u16::from_be_bytes([b[6], b[7]]);
        let negative = match sign {
            SIGN_POS => false,
            SIGN_NEG => true,
            SIGN_NAN => return Ok(Err(NumericSpecial::NaN)),
            SIGN_PINF => return Ok(Err(NumericSpecial::PosInfinity)),
            SIGN_NINF => return Ok(Err(NumericSpecial::NegInfinity)),
            _ => {
                return Err(FieldError::new(format!(
                    "numeric has unknown sign 0x{sign:04x}"
                )));
            }
        };
        if b.len() != 8 + 2 * usize::from(ndigits) {
            return Err(FieldError::new(format!(
                "numeric claims {ndigits} digits but has {} bytes",
                b.len()
            )));
        }
        if dscale > 0x3fff {
            return Err(FieldError::new(format!(
                "numeric dscale {dscale} out of range"
            )));
        }
        let digits = &b[8..];
        if digits
            .chunks_exact(2)
            .any(|d| u16::from_be_bytes([d[0], d[1]]) > 9999)
        {
            return Err(FieldError::new("numeric digit outside 0..9999"));
        }
        Ok(Ok(Numeric {
            negative,
            weight,
            dscale,
            digits,
        }))
    }

    /// Number of base-10000 digit groups.
    pub fn ndigits(&self) -> usize {
        self.digits.len() / 2
    }

    /// The `i`th base-10000 digit group; 0 past the end.
    #[inline]
    pub fn digit(&self, i: usize) -> u16 {
        match self.digits.get(2 * i..2 * i + 2) {
            Some(d) => u16::from_be_bytes([d[0], d[1]]),
            None => 0,
        }
    }

    /// The power of ten of group `i` once the value is scaled by `10^scale`.
    #[inline]
    fn group_exponent(&self, i: usize, scale: i8) -> i32 {
        4 * (i32::from(self.weight) - i as i32) + i32::from(scale)
    }

    /// The value as an integer scaled by `10^scale`, if it fits in `precision` decimal digits
    /// and needs no rounding.
    ///
    /// Each digit group is added at its own power of ten, so the zero padding of the last
    /// group never overflows, and a group below the scale must be zero where it falls.
    pub fn to_i128(&self, precision: u8, scale: i8) -> Result<i128, FieldError> {
        let mut acc: i128 = 0;
        for i in 0..self.ndigits() {
            let d = i128::from(self.digit(i));
            if d == 0 {
                continue;
            }
            let e = self.group_exponent(i, scale);
            let term = if e >= 0 {
                pow10_i128(e)
                    .and_then(|p| d.checked_mul(p))
                    .ok_or_else(|| self.overflow(precision, scale))?
            } else {
                i128::from(self.fraction_group(i, -e, scale)?)
            };
            acc = acc
                .checked_add(term)
                .ok_or_else(|| self.overflow(precision, scale))?;
        }
        if pow10_i128(i32::from(precision)).is_some_and(|limit| acc >= limit) {
            return Err(self.overflow(precision, scale));
        }
        Ok(if self.negative { -acc } else { acc })
    }

    /// The value as a 256-bit integer scaled by `10^scale`, if it fits in `precision` digits
    /// and needs no rounding (see [`Numeric::to_i128`]).
    pub fn to_i256(&self, precision: u8, scale: i8) -> Result<i256, FieldError> {
        let ten = i256::from_i128(10);
        let mut acc = i256::ZERO;
        for i in 0..self.ndigits() {
            let d = i128::from(self.digit(i));
            if d == 0 {
                continue;
            }
            let e = self.group_exponent(i, scale);
            let term = if e >= 0 {
                u32::try_from(e)
                    .ok()
                    .and_then(|e| ten.checked_pow(e))
                    .and_then(|p| i256::from_i128(d).checked_mul(p))
                    .ok_or_else(|| self.overflow(precision, scale))?
            } else {
                i256::from_i128(i128::from(self.fraction_group(i, -e, scale)?))
            };
            acc = acc
                .checked_add(term)
                .ok_or_else(|| self.overflow(precision, scale))?;
        }
        let limit = ten.checked_pow(u32::from(precision)).unwrap_or(i256::MAX);
        if acc >= limit {
            return Err(self.overflow(precision, scale));
        }
        Ok(if self.negative {
            acc.wrapping_neg()
        } else {
            acc
        })
    }

    /// The common case of [`Numeric::to_i128`] straight from the wire, in 64-bit arithmetic:
    /// a finite value of at most five digit groups whose value scaled by `10^scale` is below
    /// `limit` (at most 10^18).
    ///
    /// `None` means "take the general path", which also reports every error: for any input
    /// this returns either `None` or exactly what `parse` and `to_i128` would give.
    #[inline(always)]
    pub fn scaled_i64(b: &[u8], scale: i8, limit: i64) -> Option<i64> {
        let (head, digits) = b.split_first_chunk::<8>()?;
        let ndigits = usize::from(u16::from_be_bytes([head[0], head[1]]));
        let weight = i32::from(i16::from_be_bytes([head[2], head[3]]));
        let sign = u16::from_be_bytes([head[4], head[5]]);
        let dscale = u16::from_be_bytes([head[6], head[7]]);
        if ndigits > 5 || digits.len() != 2 * ndigits || dscale > 0x3fff {
            return None;
        }
        let negative = match sign {
            SIGN_POS => false,
            SIGN_NEG => true,
            _ => return None,
        };
        // All groups but the last (below 10^16), then the last on its own: a fractional last
        // group is divided by a power of ten, which needs only its four digits. Unsigned, so
        // that nothing here can overflow: a fractional last group makes the value below
        // 10^19, and an integral one is scaled in 128 bits (below 10^38).
        let Some((head, last)) = digits.split_last_chunk::<2>() else {
            // No digits: zero, whatever the weight.
            return Some(0);
        };
        let mut acc: u64 = 0;
        for d in head.chunks_exact(2) {
            let d = u16::from_be_bytes([d[0], d[1]]);
            if d > 9999 {
                return None;
            }
            acc = acc * 10_000 + u64::from(d);
        }
        let last = u16::from_be_bytes(*last);
        if last > 9999 {
            return None;
        }
        // The last group's power of ten once scaled.
        let e = 4 * (weight + 1 - ndigits as i32) + i32::from(scale);
        let acc = if e >= 0 {
            let pow = u128::from(*POW10_U64.get(e as usize)?);
            let v = (u128::from(acc) * 10_000 + u128::from(last)) * pow;
            u64::try_from(v).ok()?
        } else if e >= -4 {
            let k = (-e) as usize;
            let (q, r) = div_pow10(last, k);
            if r != 0 {
                return None;
            }
            acc * POW10_U64[4 - k] + u64::from(q)
        } else {
            // Two or more groups below the scale: only zeros would fit; rare.
            return None;
        };
        // `limit` is at most 10^18, so what passes fits an i64.
        if acc >= limit as u64 {
            return None;
        }
        let acc = acc as i64;
        Some(if negative { -acc } else { acc })
    }

    /// Group `i` (not zero) divided by `10^k` (k > 0), where it falls below the scale: only
    /// exact if the digits cut off are zeros, which needs k < 4. In 16-bit arithmetic: an i128
    /// division is a library call.
    fn fraction_group(&self, i: usize, k: i32, scale: i8) -> Result<u16, FieldError> {
        match usize::try_from(k) {
            Ok(k @ 1..=3) => match div_pow10(self.digit(i), k) {
                (q, 0) => Ok(q),
                _ => Err(self.rounding(scale)),
            },
            _ => Err(self.rounding(scale)),
        }
    }

    fn overflow(&self, precision: u8, scale: i8) -> FieldError {
        let mut text = String::new();
        self.write_text(&mut text);
        FieldError::Unrepresentable(Unrepresentable::Numeric(
            Special::Overflow,
            Box::new(
                format!("numeric value {text} does not fit Decimal({precision},{scale})").into(),
            ),
        ))
    }

    fn rounding(&self, scale: i8) -> FieldError {
        let mut text = String::new();
        self.write_text(&mut text);
        FieldError::Unrepresentable(Unrepresentable::Numeric(
            Special::Overflow,
            Box::new(
                format!(
                    "numeric value {text} has more than {scale} fractional digits; it would be rounded"
                )
                .into(),
            ),
        ))
    }

    /// Appends the value's exact text, as PostgreSQL's `numeric_out` renders it (`dscale`
    /// fractional digits, no exponent).
    pub fn write_text(&self, out: &mut String) {
        let mut buf = Vec::with_capacity(self.text_len_hint());
        self.write_text_bytes(&mut buf);
        // Only ASCII digits, '-' and '.' were written.
        out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
    }

    /// An upper bound on the text length, for reserving.
    pub fn text_len_hint(&self) -> usize {
        let int_digits = if self.weight >= 0 {
            4 * (self.weight as usize + 1)
        } else {
            1
        };
        2 + int_digits + self.dscale as usize
    }

    /// Appends the value's exact text as bytes (see [`Numeric::write_text`]).
    ///
    /// Every digit group goes out as one 4-byte store (from a table of digit pairs), the
    /// first group's leading zeros and the digits past `dscale` then cut off by shifting and
    /// truncating, not by copies of varying length (a `memcpy` call each).
    pub fn write_text_bytes(&self, out: &mut Vec<u8>) {
        out.reserve(self.text_len_hint() + 4);
        if self.negative {
            out.push(b'-');
        }
        // Integer part. PostgreSQL sends no leading zero groups, but a stream might.
        let weight = usize::try_from(self.weight).ok();
        let lead = weight.and_then(|w| (0..=w).find(|&d| self.digit(d) != 0));
        if let (Some(weight), Some(lead)) = (weight, lead) {
            let first = self.digit(lead);
            let len = out.len();
            let n = match first {
                1000.. => 4,
                100.. => 3,
                10.. => 2,
                _ => 1,
            };
            // Little-endian: shifting right drops the leading digits.
            let shifted = u32::from_le_bytes(group_ascii(first)) >> (8 * (4 - n));
            out.extend_from_slice(&shifted.to_le_bytes());
            out.truncate(len + n);
            for d in lead + 1..=weight {
                out.extend_from_slice(&group_ascii(self.digit(d)));
            }
        } else {
            out.push(b'0');
        }
        // Fractional part: dscale digits, groups after the point start at weight + 1.
        if self.dscale > 0 {
            out.push(b'.');
            let end = out.len() + usize::from(self.dscale);
            let mut d = i32::from(self.weight) + 1;
            while out.len() < end {
                let g = usize::try_from(d).map_or(0, |d| self.digit(d));
                out.extend_from_slice(&group_ascii(g));
                d += 1;
            }
            out.truncate(end);
        }
    }
}

/// The four ASCII digits of a digit group (at most 9999), most significant first.
#[inline]
fn group_ascii(g: u16) -> [u8; 4] {
    let (hi, lo) = (usize::from(g / 100) % 100, usize::from(g % 100));
    let (hi, lo) = (DIGIT_PAIRS[hi], DIGIT_PAIRS[lo]);
    [hi[0], hi[1], lo[0], lo[1]]
}

/// "00" ..= "99".
const DIGIT_PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// 10^0 ..= 10^38, the powers of ten an i128 holds.
const POW10: [i128; 39] = {
    let mut t = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// `x / 10^k` and `x % 10^k` for a digit group `x <= 9999` and `k` in 1..=4, by multiplying
/// with a reciprocal: a `match` of plain divisions by constants is merged by LLVM into a
/// table of divisors and a real division, the slowest instruction on the row path.
#[inline(always)]
fn div_pow10(x: u16, k: usize) -> (u16, u16) {
    let x32 = u32::from(x);
    // Each multiplier is ceil(2^shift / 10^k); exact for every x <= 9999 (tested).
    let q = match k {
        1 => (x32 * 52_429) >> 19,
        2 => (x32 * 5_243) >> 19,
        3 => (x32 * 8_389) >> 23,
        _ => 0,
    } as u16;
    (q, x - q * POW10_U16[k])
}

const POW10_U16: [u16; 5] = [1, 10, 100, 1000, 10_000];

/// 10^0 ..= 10^18, the powers of ten an i64 holds.
const POW10_U64: [u64; 19] = {
    let mut t = [1u64; 19];
    let mut i = 1;
    while i < 19 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// The exclusive bound of a scaled Decimal of `precision` digits that
/// [`Numeric::scaled_i64`] may produce: 10^precision, at most 10^18.
pub fn i64_limit(precision: u8) -> i64 {
    POW10_U64[usize::from(precision.min(18))] as i64
}

#[inline]
fn pow10_i128(exp: i32) -> Option<i128> {
    usize::try_from(exp)
        .ok()
        .and_then(|e| POW10.get(e).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(negative: bool, weight: i16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(digits.len() as u16).to_be_bytes());
        b.extend_from_slice(&weight.to_be_bytes());
        b.extend_from_slice(&(if negative { SIGN_NEG } else { SIGN_POS }).to_be_bytes());
        b.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    fn text(b: &[u8]) -> String {
        let mut s = String::new();
        Numeric::parse(b).unwrap().unwrap().write_text(&mut s);
        s
    }

    #[test]
    fn renders_like_numeric_out() {
        assert_eq!(text(&enc(false, 0, 0, &[])), "0");
        assert_eq!(text(&enc(false, 0, 3, &[])), "0.000");
        assert_eq!(text(&enc(false, 1, 0, &[100])), "1000000");
        assert_eq!(text(&enc(false, -2, 8, &[1234])), "0.00001234");
        assert_eq!(text(&enc(false, 0, 4, &[1])), "1.0000");
        assert_eq!(text(&enc(true, 0, 3, &[123, 4560])), "-123.456");
        assert_eq!(text(&enc(false, -250, 1000, &[1])).len(), 1002);
        assert_eq!(text(&enc(false, 2, 0, &[12, 3456, 7890])), "1234567890");
    }

    /// Random layouts against a plain rendering: groups as `{:04}`, leading zeros trimmed,
    /// the fraction cut to `dscale` digits.
    #[test]
    fn renders_random_values() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..20_000 {
            let n = rng.random_range(0..=8usize);
            let digits: Vec<u16> = (0..n).map(|_| rng.random_range(0..10_000)).collect();
            let weight: i16 = rng.random_range(-5..8);
            let dscale: u16 = rng.random_range(0..20);
            let negative = rng.random_bool(0.3);
            let group = |i: i32| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| digits.get(i))
                    .map_or_else(|| "0000".to_owned(), |g| format!("{g:04}"))
            };
            let int: String = (0..=i32::from(weight)).map(group).collect();
            let int = int.trim_start_matches('0');
            let mut expected = format!(
                "{}{}",
                if negative { "-" } else { "" },
                if int.is_empty() { "0" } else { int }
            );
            if dscale > 0 {
                let frac: String = (i32::from(weight) + 1..)
                    .take(5 + usize::from(dscale) / 4)
                    .map(group)
                    .collect();
                expected.push('.');
                expected.push_str(&frac[..usize::from(dscale)]);
            }
            assert_eq!(
                text(&enc(negative, weight, dscale, &digits)),
                expected,
                "{weight} {dscale} {digits:?}"
            );
        }
    }

    #[test]
    fn decimal128_exact_or_error() {
        let v = enc(true, 0, 3, &[123, 4560]);
        let n = Numeric::parse(&v).unwrap().unwrap();
        assert_eq!(n.to_i128(10, 3).unwrap(), -123_456);
        assert_eq!(n.to_i128(10, 5).unwrap(), -12_345_600);
        assert!(n.to_i128(10, 2).is_err(), "would round");
        assert!(n.to_i128(4, 3).is_err(), "does not fit precision 4");
        let big = enc(false, 1, 0, &[100]);
        let n = Numeric::parse(&big).unwrap().unwrap();
        assert_eq!(n.to_i128(7, 0).unwrap(), 1_000_000);
        assert_eq!(n.to_i128(7, -2).unwrap(), 10_000);
        assert_eq!(n.to_i256(40, 2).unwrap(), i256::from_i128(100_000_000));
        let zero = enc(false, 0, 3, &[]);
        assert_eq!(
            Numeric::parse(&zero)
                .unwrap()
                .unwrap()
                .to_i128(5, 3)
                .unwrap(),
            0
        );
    }

    #[test]
    fn full_precision_and_high_scales() {
        // 9999999999999999999999999999.9999999999 as numeric(38,10): the last group is 9900.
        let mut digits = vec![9999u16; 7];
        digits.extend([9999, 9999, 9900]);
        let v = enc(false, 6, 10, &digits);
        let n = Numeric::parse(&v).unwrap().unwrap();
        assert_eq!(n.to_i128(38, 10).unwrap(), 10i128.pow(38) - 1);
        assert_eq!(
            n.to_i256(76, 10).unwrap(),
            i256::from_i128(10i128.pow(38) - 1)
        );
        // Zero at a scale where 10^(4 + scale) overflows.
        let zero = enc(false, 0, 38, &[]);
        let n = Numeric::parse(&zero).unwrap().unwrap();
        assert_eq!(n.to_i128(38, 38).unwrap(), 0);
        assert_eq!(n.to_i256(76, 76).unwrap(), i256::ZERO);
        // More than 32767 digit groups.
        let big = enc(false, 32_767, 0, &vec![9999; 32_768]);
        let n = Numeric::parse(&big).unwrap().unwrap();
        assert_eq!(n.ndigits(), 32_768);
        assert!(n.to_i128(38, 0).is_err());
    }

    #[test]
    fn div_pow10_is_exact() {
        for x in 0..=9999u16 {
            for k in 1..=4 {
                let p = 10u16.pow(k as u32);
                assert_eq!(div_pow10(x, k), (x / p, x % p), "{x} / 10^{k}");
            }
        }
    }

    /// The 64-bit fast path gives the general path's answer or steps aside, never another.
    #[test]
    fn scaled_i64_agrees_with_to_i128() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut taken = 0;
        for _ in 0..200_000 {
            let n = rng.random_range(0..=6usize);
            let digits: Vec<u16> = (0..n)
                .map(|_| match rng.random_range(0..10) {
                    0 => 0,
                    1 => 9999,
                    2 => 10_000 + rng.random_range(0..10),
                    _ => rng.random_range(0..10_000),
                })
                .collect();
            let mut b = enc(
                rng.random_bool(0.5),
                rng.random_range(-6..6),
                rng.random_range(0..12),
                &digits,
            );
            match rng.random_range(0..40) {
                0 => b[4..6].copy_from_slice(&SIGN_NAN.to_be_bytes()),
                1 => b[4..6].copy_from_slice(&0x1234u16.to_be_bytes()),
                2 => {
                    b.pop();
                }
                3 => b[6..8].copy_from_slice(&0x4000u16.to_be_bytes()),
                _ => {}
            }
            let precision: u8 = rng.random_range(1..=38);
            let scale: i8 = rng.random_range(-4..=precision.min(20) as i8);
            let general = match Numeric::parse(&b) {
                Ok(Ok(n)) => n.to_i128(precision, scale).ok(),
                _ => None,
            };
            if let Some(fast) = Numeric::scaled_i64(&b, scale, i64_limit(precision)) {
                taken += 1;
                assert_eq!(
                    Some(i128::from(fast)),
                    general,
                    "{b:?} ({precision},{scale})"
                );
            }
        }
        assert!(taken > 20_000, "the fast path took only {taken} values");
    }

    #[test]
    fn rejects_bad_layouts() {
        assert!(Numeric::parse(&[0, 1]).is_err());
        let mut v = enc(false, 0, 0, &[1]);
        v.pop();
        assert!(Numeric::parse(&v).is_err());
        assert!(Numeric::parse(&enc(false, 0, 0, &[10_000])).is_err());
        let mut nan = enc(false, 0, 0, &[]);
        nan[4..6].copy_from_slice(&SIGN_NAN.to_be_bytes());
        assert_eq!(
            Numeric::parse(&nan).unwrap().unwrap_err(),
            NumericSpecial::NaN
        );
    }
}
