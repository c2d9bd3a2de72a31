//! Scalar targets: which Arrow types each accepts, and how a value is checked and written in
//! the target type's binary format (the `*_recv` functions of PostgreSQL).
//!
//! Slightly over ~600 lines: `Target::writer` is one `match` over every scalar target, kept
//! whole so that each target's accepted Arrow types and checks read side by side; its helpers
//! (numeric fitting, text limits, money) follow it.

use std::sync::Arc;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Decimal256Type};
use arrow_schema::{DataType, IntervalUnit};
use pgarrow_types::{BuiltinType, numeric_typmod};

use crate::numeric::{Decimal, NumericValue};
use crate::read::{bytes_getter, float_getter, int_getter, str_getter};
use crate::temporal::{date_writer, interval_writer, time_writer, timestamp_writer};

/// The longest `name` (`NAMEDATALEN - 1` bytes).
const NAME_MAX: usize = 63;

/// A scalar target type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// `bool`.
    Bool,
    /// `int2`.
    Int2,
    /// `int4`.
    Int4,
    /// `int8`.
    Int8,
    /// `oid` and the other unsigned 32-bit types.
    Oid,
    /// `float4`.
    Float4,
    /// `float8`.
    Float8,
    /// `numeric`, with its declared precision and scale when it has them.
    Numeric(Option<(u32, i32)>),
    /// `text`, `varchar(n)`, `char(n)`, `name`, `citext`, `xml`, with the type's length limit.
    Text(TextLimit),
    /// `"char"`: one byte, as `charout` shows it (empty for `\0`, `\ooo` for a high byte).
    Char,
    /// `bytea`.
    Bytea,
    /// `uuid`.
    Uuid,
    /// `json`.
    Json,
    /// `jsonb`.
    Jsonb,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `timestamp`.
    Timestamp,
    /// `timestamptz`.
    Timestamptz,
    /// `interval`.
    Interval,
    /// An enum, with its labels.
    Enum(Arc<[String]>),
    /// `ltree` (extension): its text.
    Ltree,
    /// PostGIS `geometry` / `geography`: (E)WKB bytes.
    Wkb,
    /// `money`, with the session's `lc_monetary` fraction digits.
    Money(i8),
}

/// The length limit of a text target, checked before sending so that the error names the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TextLimit {
    /// None (`text`, `citext`, `xml`, unconstrained `varchar` or `bpchar`).
    None,
    /// `name`: at most 63 bytes.
    Name,
    /// `varchar(n)`: at most n characters. (PostgreSQL would cut trailing spaces past n
    /// silently; we refuse, since that is a loss.)
    Varchar(usize),
    /// `char(n)`: at most n characters besides trailing spaces (which `char(n)` does not keep).
    Bpchar(usize),
}

/// Reads the value of one row.
pub(crate) type Getter<'a, T> = Box<dyn Fn(usize) -> T + 'a>;

/// Writes the value of one row (known not to be null); the error says what is wrong.
pub(crate) type Writer<'a> = Box<dyn Fn(usize, &mut Vec<u8>) -> Result<(), String> + 'a>;

impl Target {
    /// The target for a built-in scalar type (`money` needs the session's fraction digits),
    /// or `None` when it has no binary encoder here.
    pub(crate) fn for_type(type_oid: u32, typmod: i32, money_scale: Option<i8>) -> Option<Target> {
        use BuiltinType as B;
        // A length typmod is the limit plus 4 (VARHDRSZ); -1 when none.
        let length = || typmod.checked_sub(4).and_then(|n| usize::try_from(n).ok());
        Some(match BuiltinType::from_oid(type_oid)? {
            B::Bool => Target::Bool,
            B::Int2 => Target::Int2,
            B::Int4 => Target::Int4,
            B::Int8 => Target::Int8,
            B::Oid => Target::Oid,
            B::Float4 => Target::Float4,
            B::Float8 => Target::Float8,
            B::Numeric => {
                Target::Numeric(numeric_typmod(typmod).map(|(p, s)| (u32::from(p), i32::from(s))))
            }
            B::Money => Target::Money(money_scale?),
            B::Text | B::Xml => Target::Text(TextLimit::None),
            B::Name => Target::Text(TextLimit::Name),
            B::Varchar => Target::Text(length().map_or(TextLimit::None, TextLimit::Varchar)),
            B::Bpchar => Target::Text(length().map_or(TextLimit::None, TextLimit::Bpchar)),
            B::Char => Target::Char,
            B::Bytea => Target::Bytea,
            B::Uuid => Target::Uuid,
            B::Json => Target::Json,
            B::Jsonb => Target::Jsonb,
            B::Date => Target::Date,
            B::Time => Target::Time,
            B::Timestamp => Target::Timestamp,
            B::Timestamptz => Target::Timestamptz,
            B::Interval => Target::Interval,
        })
    }

    /// Whether values of Arrow type `t` can go into this target; the reason when not.
    pub(crate) fn accepts(&self, t: &DataType) -> Result<(), String> {
        let ok = match self {
            Target::Bool => matches!(t, DataType::Boolean),
            Target::Int2 | Target::Int4 | Target::Int8 | Target::Oid => t.is_integer(),
            Target::Float4 => matches!(t, DataType::Float16 | DataType::Float32),
            Target::Float8 => {
                matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64)
            }
            Target::Numeric(_) => {
                t.is_integer()
                    || t.is_floating()
                    || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
                    || is_text(t)
            }
            Target::Text(_)
            | Target::Char
            | Target::Json
            | Target::Jsonb
            | Target::Enum(_)
            | Target::Ltree => is_text(t),
            Target::Money(_) => {
                t.is_integer() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
            }
            Target::Bytea | Target::Wkb => matches!(
                t,
                DataType::Binary
                    | DataType::LargeBinary
                    | DataType::BinaryView
                    | DataType::FixedSizeBinary(_)
            ),
            Target::Uuid => matches!(t, DataType::FixedSizeBinary(16)) || is_text(t),
            Target::Date => matches!(t, DataType::Date32 | DataType::Date64),
            Target::Time => matches!(t, DataType::Time32(_) | DataType::Time64(_)),
            Target::Timestamp | Target::Timestamptz => matches!(t, DataType::Timestamp(..)),
            Target::Interval => {
                matches!(
                    t,
                    DataType::Interval(IntervalUnit::MonthDayNano) | DataType::Duration(_)
                ) || is_interval_struct(t)
            }
        };
        match ok {
            true => Ok(()),
            false => Err(format!("an Arrow {t} column cannot be loaded into it")),
        }
    }

    /// The writer of `array`'s values (its type accepted by [`accepts`](Target::accepts)).
    pub(crate) fn writer<'a>(&'a self, array: &'a dyn Array) -> Writer<'a> {
        match self {
            Target::Bool => {
                let a = array.as_boolean();
                Box::new(move |i, out| {
                    out.push(u8::from(a.value(i)));
                    Ok(())
                })
            }
            Target::Int2 => int_writer(array, i16::MIN.into(), i16::MAX.into(), |v, out| {
                out.extend_from_slice(&(v as i16).to_be_bytes());
            }),
            Target::Int4 => int_writer(array, i32::MIN.into(), i32::MAX.into(), |v, out| {
                out.extend_from_slice(&(v as i32).to_be_bytes());
            }),
            Target::Int8 => int_writer(array, i64::MIN.into(), i64::MAX.into(), |v, out| {
                out.extend_from_slice(&(v as i64).to_be_bytes());
            }),
            Target::Oid => int_writer(array, 0, u32::MAX.into(), |v, out| {
                out.extend_from_slice(&(v as u32).to_be_bytes());
            }),
            Target::Float4 => {
                let get = float_getter(array);
                Box::new(move |i, out| {
                    // Only Float16 and Float32 are accepted: exact in f32.
                    out.extend_from_slice(&(get(i) as f32).to_bits().to_be_bytes());
                    Ok(())
                })
            }
            Target::Float8 => {
                let get = float_getter(array);
                Box::new(move |i, out| {
                    out.extend_from_slice(&get(i).to_bits().to_be_bytes());
                    Ok(())
                })
            }
            Target::Numeric(typmod) => {
                let typmod = *typmod;
                if let DataType::Decimal128(_, scale) = array.data_type() {
                    // The common case (a round trip, Parquet decimals): no allocation.
                    let a = array.as_primitive::<Decimal128Type>();
                    let scale = i32::from(*scale);
                    let get = numeric_getter(array);
                    return Box::new(move |i, out| {
                        let v = a.value(i);
                        if crate::numeric::write_i128(v, scale, typmod, out) {
                            return Ok(());
                        }
                        // Out of the fast path's reach, or refused: the general path says why.
                        let value = match (get(i)?, typmod) {
                            (NumericValue::Finite(d), Some((precision, scale))) => {
                                NumericValue::Finite(fit_numeric(d, precision, scale)?)
                            }
                            (value, _) => value,
                        };
                        value.write(out);
                        Ok(())
                    });
                }
                let get = numeric_getter(array);
                Box::new(move |i, out| {
                    let value = get(i)?;
                    let value = match (value, typmod) {
                        (NumericValue::Finite(d), Some((precision, scale))) => {
                            NumericValue::Finite(fit_numeric(d, precision, scale)?)
                        }
                        (value, _) => value,
                    };
                    value.write(out);
                    Ok(())
                })
            }
            Target::Text(limit) => {
                let get = str_getter(array);
                let limit = *limit;
                Box::new(move |i, out| {
                    let s = get(i);
                    check_length(s, limit)?;
                    out.extend_from_slice(s.as_bytes());
                    Ok(())
                })
            }
            Target::Char => {
                let get = str_getter(array);
                Box::new(move |i, out| {
                    let s = get(i);
                    let byte = char_byte(s).ok_or_else(|| {
                        format!(
                            "{} is not a \"char\" (one ASCII character, \\ooo, or empty)",
                            quoted(s)
                        )
                    })?;
                    out.push(byte);
                    Ok(())
                })
            }
            Target::Ltree => {
                let get = str_getter(array);
                Box::new(move |i, out| {
                    out.push(1);
                    out.extend_from_slice(get(i).as_bytes());
                    Ok(())
                })
            }
            Target::Money(scale) => money_writer(array, *scale),
            Target::Json => {
                let get = str_getter(array);
                Box::new(move |i, out| {
                    out.extend_from_slice(get(i).as_bytes());
                    Ok(())
                })
            }
            Target::Jsonb => {
                let get = str_getter(array);
                Box::new(move |i, out| {
                    out.push(1);
                    out.extend_from_slice(get(i).as_bytes());
                    Ok(())
                })
            }
            Target::Enum(labels) => {
                let get = str_getter(array);
                Box::new(move |i, out| {
                    let s = get(i);
                    if !labels.iter().any(|l| l == s) {
                        return Err(format!(
                            "{} is not a label of the enum (its labels: {})",
                            quoted(s),
                            labels.join(", ")
                        ));
                    }
                    out.extend_from_slice(s.as_bytes());
                    Ok(())
                })
            }
            Target::Bytea | Target::Wkb => {
                let get = bytes_getter(array);
                Box::new(move |i, out| {
                    out.extend_from_slice(get(i));
                    Ok(())
                })
            }
            Target::Uuid => match array.data_type() {
                DataType::FixedSizeBinary(_) => {
                    let a = array.as_fixed_size_binary();
                    Box::new(move |i, out| {
                        out.extend_from_slice(a.value(i));
                        Ok(())
                    })
                }
                _ => {
                    let get = str_getter(array);
                    Box::new(move |i, out| {
                        let s = get(i);
                        let bytes =
                            parse_uuid(s).ok_or_else(|| format!("{} is not a UUID", quoted(s)))?;
                        out.extend_from_slice(&bytes);
                        Ok(())
                    })
                }
            },
            Target::Date => date_writer(array),
            Target::Time => time_writer(array),
            Target::Timestamp | Target::Timestamptz => timestamp_writer(array),
            Target::Interval => interval_writer(array),
        }
    }
}

/// Checks that `d` fits `numeric(precision, scale)` without rounding, and gives it that scale.
fn fit_numeric(d: Decimal, precision: u32, scale: i32) -> Result<Decimal, String> {
    if d.significant_scale() > scale.max(0) || (scale < 0 && !ends_in_zeros(&d, -scale)) {
        return Err(format!(
            "{} has more decimal places than numeric({precision},{scale}) keeps (it would be \
             rounded)",
            decimal_text(&d)
        ));
    }
    if i64::from(d.integer_digits()) > i64::from(precision) - i64::from(scale) {
        return Err(format!(
            "{} does not fit numeric({precision},{scale}): at most {} digits before the point",
            decimal_text(&d),
            i64::from(precision) - i64::from(scale)
        ));
    }
    Ok(d.with_scale(scale.max(0)))
}

/// Whether the integer part of `d` ends in `n` zeros (a negative scale rounds to tens,
/// hundreds, ...).
fn ends_in_zeros(d: &Decimal, n: i32) -> bool {
    let int_len = (d.digits.len() as i32 - d.scale).max(0) as usize;
    let int = &d.digits[..int_len.min(d.digits.len())];
    d.significant_scale() == 0
        && (int.iter().all(|&c| c == b'0') || int.iter().rev().take(n as usize).all(|&c| c == b'0'))
}

fn decimal_text(d: &Decimal) -> String {
    let digits = String::from_utf8_lossy(&d.digits).into_owned();
    let sign = if d.negative { "-" } else { "" };
    if d.scale <= 0 {
        return format!(
            "{sign}{digits}{}",
            "0".repeat(d.scale.unsigned_abs() as usize)
        );
    }
    let scale = d.scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// Checks a text value against its target's length limit.
fn check_length(s: &str, limit: TextLimit) -> Result<(), String> {
    let (max, kept) = match limit {
        TextLimit::None => return Ok(()),
        TextLimit::Name if s.len() > NAME_MAX => {
            return Err(format!(
                "{} is longer than a name's {NAME_MAX} bytes",
                quoted(s)
            ));
        }
        TextLimit::Name => return Ok(()),
        // Bytes bound characters from above: most values need no count.
        TextLimit::Varchar(n) if s.len() > n => (n, s),
        TextLimit::Bpchar(n) if s.len() > n => (n, s.trim_end_matches(' ')),
        TextLimit::Varchar(_) | TextLimit::Bpchar(_) => return Ok(()),
    };
    let chars = kept.chars().count();
    if chars > max {
        let t = match limit {
            TextLimit::Bpchar(_) => "character",
            _ => "character varying",
        };
        return Err(format!(
            "{} has {chars} characters, more than {t}({max}) holds",
            quoted(s)
        ));
    }
    Ok(())
}

/// The byte of a `"char"` from its text (as `charout` writes it; empty is `\0`): `None` if it
/// is not one. (`charrecv` takes exactly one byte.)
fn char_byte(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [] => Some(0),
        [c] if c.is_ascii() => Some(*c),
        [b'\\', o @ ..] if o.len() == 3 && o.iter().all(|c| (b'0'..=b'7').contains(c)) => {
            let v = o.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
            u8::try_from(v).ok()
        }
        _ => None,
    }
}

/// `money` from decimals (their scale brought to the session's fraction digits, never rounded)
/// or integers (whole units); sent as `cash_recv` takes it, an int8 of minor units.
fn money_writer(array: &dyn Array, scale: i8) -> Writer<'_> {
    let get = numeric_getter(array);
    Box::new(move |i, out| {
        let value = match get(i)? {
            NumericValue::Finite(d) => d,
            _ => return Err("money has no NaN or infinity".to_owned()),
        };
        let text = decimal_text(&value);
        if value.significant_scale() > i32::from(scale) {
            return Err(format!(
                "{text} has more decimal places than money's {scale} (it would be rounded)"
            ));
        }
        let d = value.with_scale(i32::from(scale));
        let units = std::str::from_utf8(&d.digits)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
            .map(|u| if d.negative { -u } else { u })
            .ok_or_else(|| format!("{text} is outside money's range"))?;
        out.extend_from_slice(&units.to_be_bytes());
        Ok(())
    })
}

pub(crate) fn quoted(s: &str) -> String {
    let shown: String = s.chars().take(60).collect();
    let more = if s.chars().count() > 60 { "..." } else { "" };
    format!("{shown:?}{more}")
}

pub(crate) fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(k, v) => k.is_integer() && is_text(v),
        _ => false,
    }
}

/// `Struct{months: Int32, days: Int32, microseconds: Int64}`: how pgarrow writes intervals
/// into Parquet.
fn is_interval_struct(t: &DataType) -> bool {
    match t {
        DataType::Struct(fields) => {
            let names: Vec<(&str, &DataType)> = fields
                .iter()
                .map(|f| (f.name().as_str(), f.data_type()))
                .collect();
            names
                == [
                    ("months", &DataType::Int32),
                    ("days", &DataType::Int32),
                    ("microseconds", &DataType::Int64),
                ]
        }
        _ => false,
    }
}

fn int_writer<'a>(
    array: &'a dyn Array,
    min: i128,
    max: i128,
    write: impl Fn(i128, &mut Vec<u8>) + 'a,
) -> Writer<'a> {
    let get = int_getter(array);
    Box::new(move |i, out| {
        let v = get(i);
        if !(min..=max).contains(&v) {
            return Err(format!("{v} is out of its range ({min} to {max})"));
        }
        write(v, out);
        Ok(())
    })
}

fn numeric_getter<'a>(
    array: &'a dyn Array,
) -> Box<dyn Fn(usize) -> Result<NumericValue, String> + 'a> {
    match array.data_type() {
        DataType::Decimal128(_, scale) => {
            let a = array.as_primitive::<Decimal128Type>();
            let scale = i32::from(*scale);
            Box::new(move |i| {
                let v = a.value(i);
                Ok(NumericValue::Finite(Decimal::from_unscaled(
                    v < 0,
                    &v.unsigned_abs().to_string(),
                    scale,
                )))
            })
        }
        DataType::Decimal256(_, scale) => {
            let a = array.as_primitive::<Decimal256Type>();
            let scale = i32::from(*scale);
            Box::new(move |i| {
                let text = a.value(i).to_string();
                let (negative, magnitude) = match text.strip_prefix('-') {
                    Some(m) => (true, m.to_owned()),
                    None => (false, text),
                };
                Ok(NumericValue::Finite(Decimal::from_unscaled(
                    negative, &magnitude, scale,
                )))
            })
        }
        t if t.is_floating() => {
            let get = float_getter(array);
            Box::new(move |i| {
                let v = get(i);
                Ok(if v.is_nan() {
                    NumericValue::NaN
                } else if v.is_infinite() {
                    if v > 0.0 {
                        NumericValue::PosInfinity
                    } else {
                        NumericValue::NegInfinity
                    }
                } else {
                    // Rust prints the shortest decimal that reads back as the same double.
                    NumericValue::parse(&v.to_string()).expect("a finite float's text")
                })
            })
        }
        t if t.is_integer() => {
            let get = int_getter(array);
            Box::new(move |i| {
                let v = get(i);
                Ok(NumericValue::Finite(Decimal::from_unscaled(
                    v < 0,
                    &v.unsigned_abs().to_string(),
                    0,
                )))
            })
        }
        _ => {
            let get = str_getter(array);
            Box::new(move |i| {
                let s = get(i);
                NumericValue::parse(s).ok_or_else(|| format!("{} is not a number", quoted(s)))
            })
        }
    }
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .bytes()
        .filter(|&b| b != b'-')
        .collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typmods_and_fits() {
        // numeric(5,-2), PostgreSQL 15.
        assert_eq!(
            Target::for_type(
                pgarrow_types::oid::NUMERIC,
                ((5 << 16) | (2048 - 2)) + 4,
                None
            ),
            Some(Target::Numeric(Some((5, -2))))
        );
        assert_eq!(
            Target::for_type(pgarrow_types::oid::NUMERIC, -1, None),
            Some(Target::Numeric(None))
        );
        let d = |t: &str| match NumericValue::parse(t).unwrap() {
            NumericValue::Finite(d) => d,
            _ => unreachable!(),
        };
        assert!(fit_numeric(d("123.45"), 5, 2).is_ok());
        assert!(fit_numeric(d("123.450"), 5, 2).is_ok());
        let e = fit_numeric(d("123.456"), 6, 2).unwrap_err();
        assert!(e.contains("123.456") && e.contains("rounded"), "{e}");
        let e = fit_numeric(d("1234.5"), 5, 2).unwrap_err();
        assert!(e.contains("at most 3 digits"), "{e}");
        assert!(fit_numeric(d("12300"), 5, -2).is_ok());
        assert!(fit_numeric(d("12345"), 5, -2).is_err());
    }

    #[test]
    fn chars_as_charout_writes_them() {
        assert_eq!(char_byte(""), Some(0));
        assert_eq!(char_byte("x"), Some(b'x'));
        assert_eq!(char_byte("\\351"), Some(0o351));
        assert_eq!(char_byte("\\777"), None);
        assert_eq!(char_byte("xy"), None);
        assert_eq!(char_byte("é"), None);
    }

    #[test]
    fn uuids_from_text() {
        let u = parse_uuid("{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}").unwrap();
        assert_eq!(u[0], 0xa0);
        assert_eq!(u[15], 0x11);
        assert!(parse_uuid("a0eebc999c0b4ef8bb6d6bb9bd380a1").is_none());
        assert!(parse_uuid("zz").is_none());
    }
}
