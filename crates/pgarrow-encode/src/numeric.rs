//! `numeric` in PostgreSQL's binary format (`numeric_recv`), from decimal digits: the inverse
//! of `pgarrow_decode::numeric`.
//!
//! Layout: i16 ndigits, i16 weight, u16 sign, u16 dscale, then ndigits base-10000 digits, most
//! significant first, the value being `sum(digit[i] * 10000^(weight - i))`. Leading and
//! trailing zero groups are left out; `dscale` is the number of decimal places shown.

/// `numeric`'s sign words.
const SIGN_POS: u16 = 0x0000;
const SIGN_NEG: u16 = 0x4000;
const SIGN_NAN: u16 = 0xC000;
const SIGN_PINF: u16 = 0xD000;
const SIGN_NINF: u16 = 0xF000;

/// A decimal value as digits: `(-1)^negative * digits * 10^-scale`. `digits` are ASCII
/// `0`-`9`, possibly with leading zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decimal {
    pub(crate) negative: bool,
    pub(crate) digits: Vec<u8>,
    pub(crate) scale: i32,
}

/// A `numeric` value: a number, or one of the special values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NumericValue {
    Finite(Decimal),
    NaN,
    PosInfinity,
    NegInfinity,
}

impl Decimal {
    /// An unscaled integer's decimal digits with `scale` decimal places.
    pub(crate) fn from_unscaled(negative: bool, magnitude: &str, scale: i32) -> Decimal {
        Decimal {
            negative,
            digits: magnitude.as_bytes().to_vec(),
            scale,
        }
    }

    /// The number of decimal places that hold non-zero digits (0 for an integer); negative
    /// scales count as 0.
    pub(crate) fn significant_scale(&self) -> i32 {
        let trailing_zeros = self.digits.iter().rev().take_while(|&&d| d == b'0').count();
        (self.scale - trailing_zeros as i32).max(0)
    }

    /// The power of ten just above the value's magnitude: `n` when `10^(n-1) <= |v| < 10^n`
    /// (3 for 123.4, 0 for 0.5, -2 for 0.001); `None` for zero, which has none.
    pub(crate) fn magnitude(&self) -> Option<i32> {
        let leading = self.digits.iter().take_while(|&&d| d == b'0').count();
        (leading < self.digits.len())
            .then(|| self.digits.len() as i32 - leading as i32 - self.scale)
    }

    /// The value with at most `scale` decimal places, dropping trailing zeros only (the caller
    /// checked that nothing else is dropped).
    pub(crate) fn with_scale(mut self, scale: i32) -> Decimal {
        while self.scale > scale && self.digits.last() == Some(&b'0') {
            self.digits.pop();
            self.scale -= 1;
        }
        if self.scale < scale {
            let pad = (scale - self.scale) as usize;
            self.digits.extend(std::iter::repeat_n(b'0', pad));
            self.scale = scale;
        }
        self
    }
}

impl NumericValue {
    /// Parses PostgreSQL's numeric input syntax: `[+-]digits[.digits][e[+-]digits]`, `NaN`,
    /// `Infinity`, `-Infinity`, `inf` (case-insensitive, surrounding spaces allowed).
    pub(crate) fn parse(text: &str) -> Option<NumericValue> {
        let t = text.trim();
        let lower = t.to_ascii_lowercase();
        match lower.as_str() {
            "nan" => return Some(NumericValue::NaN),
            "infinity" | "+infinity" | "inf" | "+inf" => return Some(NumericValue::PosInfinity),
            "-infinity" | "-inf" => return Some(NumericValue::NegInfinity),
            _ => {}
        }
        let (negative, rest) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
            None => (rest, 0),
        };
        let (int, frac) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut digits = Vec::with_capacity(int.len() + frac.len());
        digits.extend_from_slice(int.as_bytes());
        digits.extend_from_slice(frac.as_bytes());
        let scale = (frac.len() as i32).checked_sub(exponent)?;
        Some(NumericValue::Finite(Decimal {
            negative,
            digits,
            scale,
        }))
    }

    /// Appends the binary form.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let d = match self {
            NumericValue::NaN => return header(out, 0, 0, SIGN_NAN, 0),
            NumericValue::PosInfinity => return header(out, 0, 0, SIGN_PINF, 0),
            NumericValue::NegInfinity => return header(out, 0, 0, SIGN_NINF, 0),
            NumericValue::Finite(d) => d,
        };
        // Bring a negative scale to 0 by appending zeros: the value is digits * 10^-scale.
        let mut digits: Vec<u8> = d.digits.iter().map(|b| b - b'0').collect();
        let mut scale = d.scale;
        if scale < 0 {
            digits.extend(std::iter::repeat_n(0, scale.unsigned_abs() as usize));
            scale = 0;
        }
        let scale = scale as usize;
        // Split at the decimal point (the fraction may be longer than the digits).
        let (int, frac): (Vec<u8>, Vec<u8>) = if scale >= digits.len() {
            let mut f = vec![0; scale - digits.len()];
            f.extend_from_slice(&digits);
            (Vec::new(), f)
        } else {
            let split = digits.len() - scale;
            (digits[..split].to_vec(), digits[split..].to_vec())
        };
        // Align both sides to groups of four digits around the point.
        let int_pad = (4 - int.len() % 4) % 4;
        let frac_pad = (4 - frac.len() % 4) % 4;
        let mut all = vec![0u8; int_pad];
        all.extend_from_slice(&int);
        all.extend_from_slice(&frac);
        all.extend(std::iter::repeat_n(0, frac_pad));
        let mut groups: Vec<u16> = all
            .chunks(4)
            .map(|c| c.iter().fold(0u16, |acc, &d| acc * 10 + u16::from(d)))
            .collect();
        let mut weight = ((int_pad + int.len()) / 4) as i32 - 1;
        let leading = groups.iter().take_while(|&&g| g == 0).count();
        groups.drain(..leading);
        weight -= leading as i32;
        while groups.last() == Some(&0) {
            groups.pop();
        }
        let dscale = u16::try_from(scale).unwrap_or(u16::MAX);
        if groups.is_empty() {
            return header(out, 0, 0, SIGN_POS, dscale);
        }
        let sign = if d.negative { SIGN_NEG } else { SIGN_POS };
        header(out, groups.len() as i16, weight as i16, sign, dscale);
        for g in groups {
            out.extend_from_slice(&g.to_be_bytes());
        }
    }
}

/// Writes `v * 10^-scale` in the binary form without allocating, with `dscale` the target's
/// scale when `typmod` gives one (`numeric(p,s)`), else `scale`. Returns `false`, writing
/// nothing, when the value does not fit the typmod (the caller reports it) or when the fast
/// path cannot take it (a negative or very large scale, a magnitude that would overflow).
pub(crate) fn write_i128(
    v: i128,
    scale: i32,
    typmod: Option<(u32, i32)>,
    out: &mut Vec<u8>,
) -> bool {
    if !(0..=38).contains(&scale) {
        return false;
    }
    let magnitude = v.unsigned_abs();
    let dscale = match typmod {
        Some((precision, target)) => {
            if target < 0 {
                return false;
            }
            // No non-zero digit beyond the target's scale, and room before the point.
            let mut m = magnitude;
            let mut trailing = 0;
            while m != 0 && m.is_multiple_of(10) && trailing < scale {
                m /= 10;
                trailing += 1;
            }
            let significant = if magnitude == 0 { 0 } else { scale - trailing };
            if significant > target {
                return false;
            }
            let digits = if magnitude == 0 {
                0
            } else {
                magnitude.ilog10() as i32 + 1
            };
            if i64::from(digits - scale) > i64::from(precision) - i64::from(target) {
                return false;
            }
            target
        }
        None => scale,
    };
    // Align the fraction to whole groups of four digits.
    let pad = (4 - scale % 4) % 4;
    let Some(mut m) = magnitude.checked_mul(10u128.pow(pad as u32)) else {
        return false;
    };
    let frac_groups = (scale + pad) / 4;
    // At most 10 groups for 39 digits (+3 of padding).
    let mut groups = [0u16; 11];
    let mut n = 0;
    while m != 0 {
        groups[n] = (m % 10_000) as u16;
        m /= 10_000;
        n += 1;
    }
    let dscale = dscale as u16;
    if n == 0 {
        header(out, 0, 0, SIGN_POS, dscale);
        return true;
    }
    // groups[0..n] hold the value least significant first; the first (most significant) has
    // weight n - frac_groups - 1. Trailing zero groups (the least significant) are left out.
    let weight = n as i32 - frac_groups - 1;
    let skip = groups[..n].iter().take_while(|&&g| g == 0).count();
    let sign = if v < 0 { SIGN_NEG } else { SIGN_POS };
    header(out, (n - skip) as i16, weight as i16, sign, dscale);
    for g in groups[skip..n].iter().rev() {
        out.extend_from_slice(&g.to_be_bytes());
    }
    true
}

fn header(out: &mut Vec<u8>, ndigits: i16, weight: i16, sign: u16, dscale: u16) {
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgarrow_decode::numeric::Numeric;

    /// Encodes `text`, decodes it with the decoder's parser and renders it as PostgreSQL does.
    fn round_trip(text: &str) -> String {
        let mut out = Vec::new();
        NumericValue::parse(text).unwrap().write(&mut out);
        match Numeric::parse(&out).unwrap() {
            Ok(n) => {
                let mut s = String::new();
                n.write_text(&mut s);
                s
            }
            Err(special) => special.text().to_owned(),
        }
    }

    #[test]
    fn values_come_back_as_postgresql_prints_them() {
        for (input, shown) in [
            ("0", "0"),
            ("0.00", "0.00"),
            ("1", "1"),
            ("-1", "-1"),
            ("10000", "10000"),
            ("1000000", "1000000"),
            ("12345.6789", "12345.6789"),
            ("-0.0001", "-0.0001"),
            ("0.00001", "0.00001"),
            (
                "123456789012345678901234567890.123456789",
                "123456789012345678901234567890.123456789",
            ),
            ("1e5", "100000"),
            ("1.5e-3", "0.0015"),
            ("+7.10", "7.10"),
            ("NaN", "NaN"),
            ("infinity", "Infinity"),
            ("-Infinity", "-Infinity"),
            (" 42 ", "42"),
            (".5", "0.5"),
            ("5.", "5"),
        ] {
            assert_eq!(round_trip(input), shown, "{input}");
        }
        for bad in ["", "abc", "1.2.3", "--1", "1e", "e5", "1x"] {
            assert!(NumericValue::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_fast_path_writes_what_the_general_one_does() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        type Case = (i128, i32, Option<(u32, i32)>);
        let mut cases: Vec<Case> = vec![
            (0, 0, None),
            (0, 2, Some((12, 2))),
            (1, 0, None),
            (-1, 5, None),
            (10_000, 0, None),
            (123_456_789, 4, Some((15, 4))),
            (12_340, 3, Some((12, 2))),
            (i128::MAX / 1000, 38, None),
            (-99_999_999_999_999, 2, Some((15, 2))),
        ];
        for _ in 0..20_000 {
            let digits = (next() % 30) as u32;
            let v =
                (next() as i128 % 10i128.pow(digits.max(1))) * if next() % 2 == 0 { 1 } else { -1 };
            let scale = (next() % 12) as i32;
            let typmod = match next() % 3 {
                0 => None,
                _ => Some((38, scale + (next() % 3) as i32)),
            };
            cases.push((v, scale, typmod));
        }
        for (v, scale, typmod) in cases {
            let mut fast = Vec::new();
            let took = write_i128(v, scale, typmod, &mut fast);
            let d = Decimal::from_unscaled(v < 0, &v.unsigned_abs().to_string(), scale);
            let d = match typmod {
                Some((_, t)) if d.significant_scale() <= t => d.with_scale(t),
                Some(_) => {
                    assert!(!took, "{v} at scale {scale} into {typmod:?}");
                    continue;
                }
                None => d,
            };
            let mut slow = Vec::new();
            NumericValue::Finite(d).write(&mut slow);
            if took {
                assert_eq!(fast, slow, "{v} at scale {scale} into {typmod:?}");
            }
        }
    }

    #[test]
    fn unscaled_integers_and_scales() {
        let d = Decimal::from_unscaled(true, "1234500", 4);
        assert_eq!(d.significant_scale(), 2);
        assert_eq!(d.magnitude(), Some(3));
        assert_eq!(Decimal::from_unscaled(false, "1", 3).magnitude(), Some(-2));
        assert_eq!(Decimal::from_unscaled(false, "5", 1).magnitude(), Some(0));
        assert_eq!(Decimal::from_unscaled(false, "000", 2).magnitude(), None);
        let mut out = Vec::new();
        NumericValue::Finite(d.clone().with_scale(2)).write(&mut out);
        let n = Numeric::parse(&out).unwrap().unwrap();
        let mut s = String::new();
        n.write_text(&mut s);
        assert_eq!(s, "-123.45");
        // A negative scale: 12 * 10^3.
        let mut out = Vec::new();
        NumericValue::Finite(Decimal::from_unscaled(false, "12", -3)).write(&mut out);
        let n = Numeric::parse(&out).unwrap().unwrap();
        let mut s = String::new();
        n.write_text(&mut s);
        assert_eq!(s, "12000");
    }
}
