//! Scalar targets: which Arrow types each takes, and how a value is checked and written in
//! the target type's binary format (the `*_recv` functions of PostgreSQL).
//!
//! [`Target::encoder`] parses an input's Arrow type against a target into a
//! [`ScalarEncoder`], which names the target and the exact Arrow type that feeds it; each
//! batch's writer is built from that with one `match`, so nothing later has to agree with an
//! earlier check.
//!
//! Over ~600 lines: `Target::encoder` and `ScalarEncoder::writer` are each one `match` over
//! every scalar target, kept whole so that each target's accepted Arrow types and checks read
//! side by side; their helpers (numeric fitting, text limits, money) follow them.

use std::sync::Arc;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Decimal256Type};
use arrow_schema::{DataType, TimeUnit};
use pgarrow_types::{BuiltinType, numeric_typmod};

use crate::error::{EncodeError, ErrorKind, Expected, Inexact, OutOfRange, TargetKind};
use crate::numeric::{Decimal, NumericValue};
use crate::read::{Binaries, Floats, Getter, Ints, Strs, changed, primitive};
use crate::temporal::{
    Dates, Intervals, Times, WriteCx, date_writer, interval_writer, time_writer, timestamp_unit,
    timestamp_writer,
};

/// The longest `name` (`NAMEDATALEN - 1` bytes).
pub(crate) const NAME_MAX: usize = 63;

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

/// Writes the value of one row (known not to be null); the error says what is wrong.
pub(crate) type Writer<'a> = Box<dyn Fn(usize, &mut Vec<u8>) -> Result<(), EncodeError> + 'a>;

/// The integer targets, by the range they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntTarget {
    Int2,
    Int4,
    Int8,
    Oid,
}

/// The Arrow types a number (`numeric`, `money`) is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NumberInput {
    /// Decimal128, with its scale.
    Decimal128(i8),
    /// Decimal256, with its scale.
    Decimal256(i8),
    Int(Ints),
    Float(Floats),
    /// Text, parsed as `numeric_in` does.
    Text(Strs),
}

impl NumberInput {
    fn of(t: &DataType) -> Option<NumberInput> {
        Some(match t {
            DataType::Decimal128(_, scale) => NumberInput::Decimal128(*scale),
            DataType::Decimal256(_, scale) => NumberInput::Decimal256(*scale),
            t => match (Ints::of(t), Floats::of(t)) {
                (Some(ints), _) => NumberInput::Int(ints),
                (_, Some(floats)) => NumberInput::Float(floats),
                _ => NumberInput::Text(Strs::of(t)?),
            },
        })
    }
}

/// A scalar target with the Arrow type that feeds it, as [`Target::encoder`] parses them: what
/// builds each batch's writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScalarEncoder {
    Bool,
    Int(IntTarget, Ints),
    /// `float4` from Float16 or Float32 (exact in f32).
    Float4(Floats),
    Float8(Floats),
    /// `numeric`, with its declared precision and scale when it has them.
    Numeric(Option<(u32, i32)>, NumberInput),
    /// `money` from integers or decimals, with the session's fraction digits.
    Money(i8, NumberInput),
    Text(TextLimit, Strs),
    Char(Strs),
    Ltree(Strs),
    Json(Strs),
    Jsonb(Strs),
    /// A nested value (Struct, Map, List) as JSON text, for `json`, `jsonb` (with its version
    /// byte when `jsonb`) and `text`.
    AsJson {
        jsonb: bool,
    },
    Enum(Arc<[String]>, Strs),
    /// `bytea`: the bytes as they are.
    Bytes(Binaries),
    /// PostGIS `geometry`/`geography` from WKB (ISO or EWKB: PostGIS reads both), with the
    /// SRID put into each value's header when the input's field names a CRS (`EPSG:<srid>`,
    /// GeoArrow's authority code), as they are when it names none (0).
    Wkb(Binaries, i32),
    /// `uuid` from FixedSizeBinary(16).
    UuidBytes,
    /// `uuid` from its text.
    UuidText(Strs),
    Date(Dates),
    Time(Times),
    /// `timestamp`/`timestamptz` from a Timestamp of this unit.
    Timestamp(TimeUnit),
    Interval(Intervals),
}

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
            // Loaded through its input function, from text.
            B::Timetz => return None,
            B::Timestamp => Target::Timestamp,
            B::Timestamptz => Target::Timestamptz,
            B::Interval => Target::Interval,
        })
    }

    /// The encoder of Arrow type `t`'s values into this target; why not, when they cannot go
    /// into it.
    pub(crate) fn encoder(&self, t: &DataType) -> Result<ScalarEncoder, EncodeError> {
        use ScalarEncoder as E;
        let int = |target| Ints::of(t).map(|ints| E::Int(target, ints));
        let encoder = match self {
            Target::Bool => matches!(t, DataType::Boolean).then_some(E::Bool),
            Target::Int2 => int(IntTarget::Int2),
            Target::Int4 => int(IntTarget::Int4),
            Target::Int8 => int(IntTarget::Int8),
            Target::Oid => int(IntTarget::Oid),
            Target::Float4 => match Floats::of(t) {
                Some(Floats::Float64) | None => None,
                Some(floats) => Some(E::Float4(floats)),
            },
            Target::Float8 => Floats::of(t).map(E::Float8),
            Target::Numeric(typmod) => NumberInput::of(t).map(|n| E::Numeric(*typmod, n)),
            Target::Money(scale) => match NumberInput::of(t) {
                Some(NumberInput::Float(_) | NumberInput::Text(_)) | None => None,
                Some(n) => Some(E::Money(*scale, n)),
            },
            Target::Text(limit) => Strs::of(t).map(|s| E::Text(*limit, s)),
            Target::Char => Strs::of(t).map(E::Char),
            Target::Json => Strs::of(t).map(E::Json),
            Target::Jsonb => Strs::of(t).map(E::Jsonb),
            Target::Enum(labels) => Strs::of(t).map(|s| E::Enum(labels.clone(), s)),
            Target::Ltree => Strs::of(t).map(E::Ltree),
            Target::Bytea => Binaries::of(t).map(E::Bytes),
            // The SRID, from the input field's CRS, is set by the row encoder.
            Target::Wkb => Binaries::of(t).map(|b| E::Wkb(b, 0)),
            Target::Uuid => match t {
                DataType::FixedSizeBinary(16) => Some(E::UuidBytes),
                t => Strs::of(t).map(E::UuidText),
            },
            Target::Date => Dates::of(t).map(E::Date),
            Target::Time => Times::of(t).map(E::Time),
            Target::Timestamp | Target::Timestamptz => timestamp_unit(t).map(E::Timestamp),
            Target::Interval => Intervals::of(t).map(E::Interval),
        };
        // Nested values from any writer go into json, jsonb and text as JSON.
        let as_json = |jsonb| {
            (crate::json::is_nested(t) && crate::json::supported(t)).then_some(E::AsJson { jsonb })
        };
        let encoder = encoder.or_else(|| match self {
            Target::Json | Target::Text(TextLimit::None) => as_json(false),
            Target::Jsonb => as_json(true),
            _ => None,
        });
        encoder.ok_or_else(|| {
            ErrorKind::Unsupported {
                input: t.clone(),
                target: TargetKind::Scalar,
            }
            .into()
        })
    }
}

impl ScalarEncoder {
    /// The writer of `array`'s values, an array of the type this encoder was parsed from.
    ///
    /// # Errors
    /// `array` is of another type.
    pub(crate) fn writer<'a>(
        &'a self,
        array: &'a dyn Array,
        cx: &'a WriteCx,
    ) -> Result<Writer<'a>, EncodeError> {
        Ok(match self {
            ScalarEncoder::Bool => {
                let a = array.as_boolean_opt().ok_or_else(|| changed(array))?;
                Box::new(move |i, out| {
                    out.push(u8::from(a.value(i)));
                    Ok(())
                })
            }
            ScalarEncoder::Int(target, ints) => {
                let get = ints.getter(array)?;
                match target {
                    IntTarget::Int2 => {
                        int_writer(get, i16::MIN.into(), i16::MAX.into(), |v, out| {
                            out.extend_from_slice(&(v as i16).to_be_bytes());
                        })
                    }
                    IntTarget::Int4 => {
                        int_writer(get, i32::MIN.into(), i32::MAX.into(), |v, out| {
                            out.extend_from_slice(&(v as i32).to_be_bytes());
                        })
                    }
                    IntTarget::Int8 => {
                        int_writer(get, i64::MIN.into(), i64::MAX.into(), |v, out| {
                            out.extend_from_slice(&(v as i64).to_be_bytes());
                        })
                    }
                    IntTarget::Oid => int_writer(get, 0, u32::MAX.into(), |v, out| {
                        out.extend_from_slice(&(v as u32).to_be_bytes());
                    }),
                }
            }
            ScalarEncoder::Float4(floats) => {
                let get = floats.getter(array)?;
                Box::new(move |i, out| {
                    // Only Float16 and Float32 are parsed: exact in f32.
                    out.extend_from_slice(&(get(i) as f32).to_bits().to_be_bytes());
                    Ok(())
                })
            }
            ScalarEncoder::Float8(floats) => {
                let get = floats.getter(array)?;
                Box::new(move |i, out| {
                    out.extend_from_slice(&get(i).to_bits().to_be_bytes());
                    Ok(())
                })
            }
            ScalarEncoder::Numeric(typmod, input) => {
                let typmod = *typmod;
                let get = numeric_getter(input, array)?;
                if let NumberInput::Decimal128(scale) = input {
                    // The common case (a round trip, Parquet decimals): no allocation.
                    let a = primitive::<Decimal128Type>(array)?;
                    let scale = i32::from(*scale);
                    return Ok(Box::new(move |i, out| {
                        let v = a.value(i);
                        if crate::numeric::write_i128(v, scale, typmod, out) {
                            return Ok(());
                        }
                        // Out of the fast path's reach, or refused: the general path says why.
                        fit_typmod(get(i)?, typmod)?.write(out);
                        Ok(())
                    }));
                }
                Box::new(move |i, out| {
                    fit_typmod(get(i)?, typmod)?.write(out);
                    Ok(())
                })
            }
            ScalarEncoder::Text(limit, strs) => {
                let get = strs.getter(array)?;
                let limit = *limit;
                Box::new(move |i, out| {
                    let s = get(i);
                    check_length(s, limit)?;
                    out.extend_from_slice(s.as_bytes());
                    Ok(())
                })
            }
            ScalarEncoder::Char(strs) => {
                let get = strs.getter(array)?;
                Box::new(move |i, out| {
                    let s = get(i);
                    let byte = char_byte(s).ok_or_else(|| ErrorKind::Invalid {
                        value: s.to_owned(),
                        expected: Expected::Char,
                    })?;
                    out.push(byte);
                    Ok(())
                })
            }
            ScalarEncoder::Ltree(strs) | ScalarEncoder::Jsonb(strs) => {
                // A version byte (1), then the text.
                let get = strs.getter(array)?;
                Box::new(move |i, out| {
                    out.push(1);
                    out.extend_from_slice(get(i).as_bytes());
                    Ok(())
                })
            }
            ScalarEncoder::Money(scale, input) => {
                money_writer(numeric_getter(input, array)?, *scale)
            }
            ScalarEncoder::AsJson { jsonb } => {
                let write = crate::json::writer(array)?;
                let jsonb = *jsonb;
                Box::new(move |i, out| {
                    let mut text = String::new();
                    write(i, &mut text)?;
                    if jsonb {
                        out.push(1);
                    }
                    out.extend_from_slice(text.as_bytes());
                    Ok(())
                })
            }
            ScalarEncoder::Json(strs) => {
                let get = strs.getter(array)?;
                Box::new(move |i, out| {
                    out.extend_from_slice(get(i).as_bytes());
                    Ok(())
                })
            }
            ScalarEncoder::Enum(labels, strs) => {
                let get = strs.getter(array)?;
                Box::new(move |i, out| {
                    let s = get(i);
                    if !labels.iter().any(|l| l == s) {
                        return Err(ErrorKind::NotALabel {
                            value: s.to_owned(),
                            labels: labels.to_vec(),
                        }
                        .into());
                    }
                    out.extend_from_slice(s.as_bytes());
                    Ok(())
                })
            }
            ScalarEncoder::Bytes(binaries) => {
                let get = binaries.getter(array)?;
                Box::new(move |i, out| {
                    out.extend_from_slice(get(i));
                    Ok(())
                })
            }
            ScalarEncoder::Wkb(binaries, 0) => {
                let get = binaries.getter(array)?;
                Box::new(move |i, out| {
                    out.extend_from_slice(get(i));
                    Ok(())
                })
            }
            ScalarEncoder::Wkb(binaries, srid) => {
                let get = binaries.getter(array)?;
                let srid = *srid;
                Box::new(move |i, out| {
                    pgarrow_types::wkb::with_srid(get(i), srid, out)
                        .map_err(|e| ErrorKind::Wkb(e).into())
                })
            }
            ScalarEncoder::UuidBytes => {
                let a = array
                    .as_fixed_size_binary_opt()
                    .ok_or_else(|| changed(array))?;
                Box::new(move |i, out| {
                    out.extend_from_slice(a.value(i));
                    Ok(())
                })
            }
            ScalarEncoder::UuidText(strs) => {
                let get = strs.getter(array)?;
                Box::new(move |i, out| {
                    let s = get(i);
                    let bytes = parse_uuid(s).ok_or_else(|| ErrorKind::Invalid {
                        value: s.to_owned(),
                        expected: Expected::Uuid,
                    })?;
                    out.extend_from_slice(&bytes);
                    Ok(())
                })
            }
            ScalarEncoder::Date(dates) => date_writer(*dates, array)?,
            ScalarEncoder::Time(times) => time_writer(*times, array, cx)?,
            ScalarEncoder::Timestamp(unit) => timestamp_writer(*unit, array, cx)?,
            ScalarEncoder::Interval(intervals) => interval_writer(*intervals, array, cx)?,
        })
    }
}

/// A number checked against a `numeric(p,s)` typmod and given its scale; as it is when
/// unconstrained or not finite.
fn fit_typmod(
    value: NumericValue,
    typmod: Option<(u32, i32)>,
) -> Result<NumericValue, EncodeError> {
    Ok(match (value, typmod) {
        (NumericValue::Finite(d), Some((precision, scale))) => {
            NumericValue::Finite(fit_numeric(d, precision, scale)?)
        }
        (value, _) => value,
    })
}

/// Checks that `d` fits `numeric(precision, scale)` without rounding, and gives it that scale.
fn fit_numeric(d: Decimal, precision: u32, scale: i32) -> Result<Decimal, EncodeError> {
    if d.significant_scale() > scale.max(0) || (scale < 0 && !ends_in_zeros(&d, -scale)) {
        return Err(Inexact::NumericScale {
            value: decimal_text(&d),
            precision,
            scale,
        }
        .into());
    }
    // PostgreSQL's rule: |v| < 10^(precision - scale). With a scale above the precision
    // (numeric(3,6)) that bound is below 1, and zero always fits.
    let room = i64::from(precision) - i64::from(scale);
    if d.magnitude().is_some_and(|m| i64::from(m) > room) {
        return Err(OutOfRange::Numeric {
            value: decimal_text(&d),
            precision,
            scale,
        }
        .into());
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
fn check_length(s: &str, limit: TextLimit) -> Result<(), EncodeError> {
    let (max, kept) = match limit {
        TextLimit::None => return Ok(()),
        TextLimit::Name if s.len() > NAME_MAX => {
            return Err(ErrorKind::TooLong {
                value: s.to_owned(),
                limit,
                chars: s.len(),
            }
            .into());
        }
        TextLimit::Name => return Ok(()),
        // Bytes bound characters from above: most values need no count.
        TextLimit::Varchar(n) if s.len() > n => (n, s),
        TextLimit::Bpchar(n) if s.len() > n => (n, s.trim_end_matches(' ')),
        TextLimit::Varchar(_) | TextLimit::Bpchar(_) => return Ok(()),
    };
    let chars = kept.chars().count();
    if chars > max {
        return Err(ErrorKind::TooLong {
            value: s.to_owned(),
            limit,
            chars,
        }
        .into());
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
fn money_writer(get: Getter<'_, Result<NumericValue, EncodeError>>, scale: i8) -> Writer<'_> {
    Box::new(move |i, out| {
        let value = match get(i)? {
            NumericValue::Finite(d) => d,
            _ => return Err(ErrorKind::MoneyNotFinite.into()),
        };
        if value.significant_scale() > i32::from(scale) {
            return Err(Inexact::MoneyScale {
                value: decimal_text(&value),
                scale,
            }
            .into());
        }
        let d = value.with_scale(i32::from(scale));
        // The magnitude is parsed wider than i64: the minimum's (2^63 units) is one more than
        // the maximum's, and only fits once negated.
        let units = std::str::from_utf8(&d.digits)
            .ok()
            .and_then(|t| t.parse::<i128>().ok())
            .map(|u| if d.negative { -u } else { u })
            .and_then(|u| i64::try_from(u).ok())
            .ok_or_else(|| OutOfRange::Money {
                value: decimal_text(&d),
            })?;
        out.extend_from_slice(&units.to_be_bytes());
        Ok(())
    })
}

fn int_writer<'a>(
    get: Getter<'a, i128>,
    min: i128,
    max: i128,
    write: impl Fn(i128, &mut Vec<u8>) + 'a,
) -> Writer<'a> {
    Box::new(move |i, out| {
        let v = get(i);
        if !(min..=max).contains(&v) {
            return Err(OutOfRange::Integer { value: v, min, max }.into());
        }
        write(v, out);
        Ok(())
    })
}

/// The values of a number array (decimals, integers, floats or text) as `numeric` values.
fn numeric_getter<'a>(
    input: &NumberInput,
    array: &'a dyn Array,
) -> Result<Getter<'a, Result<NumericValue, EncodeError>>, EncodeError> {
    Ok(match input {
        NumberInput::Decimal128(scale) => {
            let a = primitive::<Decimal128Type>(array)?;
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
        NumberInput::Decimal256(scale) => {
            let a = primitive::<Decimal256Type>(array)?;
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
        NumberInput::Float(floats) => {
            let get = floats.getter(array)?;
            Box::new(move |i| {
                let v = get(i);
                if v.is_nan() {
                    Ok(NumericValue::NaN)
                } else if v.is_infinite() {
                    Ok(match v > 0.0 {
                        true => NumericValue::PosInfinity,
                        false => NumericValue::NegInfinity,
                    })
                } else {
                    // Rust prints the shortest decimal that reads back as the same double,
                    // with no exponent: always a number `numeric_in` reads.
                    NumericValue::parse(&v.to_string())
                        .ok_or_else(|| ErrorKind::NoDecimalForm(v).into())
                }
            })
        }
        NumberInput::Int(ints) => {
            let get = ints.getter(array)?;
            Box::new(move |i| {
                let v = get(i);
                Ok(NumericValue::Finite(Decimal::from_unscaled(
                    v < 0,
                    &v.unsigned_abs().to_string(),
                    0,
                )))
            })
        }
        NumberInput::Text(strs) => {
            let get = strs.getter(array)?;
            Box::new(move |i| {
                let s = get(i);
                NumericValue::parse(s).ok_or_else(|| {
                    ErrorKind::Invalid {
                        value: s.to_owned(),
                        expected: Expected::Number,
                    }
                    .into()
                })
            })
        }
    })
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
        assert_eq!(
            *e.kind(),
            ErrorKind::Inexact(Inexact::NumericScale {
                value: "123.456".into(),
                precision: 6,
                scale: 2
            })
        );
        let e = e.to_string();
        assert!(e.contains("123.456") && e.contains("rounded"), "{e}");
        let e = fit_numeric(d("1234.5"), 5, 2).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::OutOfRange(OutOfRange::Numeric { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("at most 3 digits"), "{e}");
        assert!(fit_numeric(d("12300"), 5, -2).is_ok());
        assert!(fit_numeric(d("12345"), 5, -2).is_err());
        assert!(fit_numeric(d("1234500"), 5, -2).is_ok());
        assert!(fit_numeric(d("12345600"), 5, -2).is_err());
        // A scale above the precision, as PostgreSQL allows: |v| < 10^(p - s).
        for fits in ["0.000000", "0", "0.000999", "-0.000999", "0.0005"] {
            let v = fit_numeric(d(fits), 3, 6).unwrap_or_else(|e| panic!("{fits}: {e}"));
            assert_eq!(v.scale, 6, "{fits}");
        }
        let e = fit_numeric(d("0.001"), 3, 6).unwrap_err().to_string();
        assert!(
            e.contains("numeric(3,6)") && e.contains("below 0.001"),
            "{e}"
        );
        assert!(fit_numeric(d("1"), 3, 6).is_err());
        assert!(fit_numeric(d("0.99"), 2, 2).is_ok());
        let e = fit_numeric(d("1.00"), 2, 2).unwrap_err().to_string();
        assert!(e.contains("below 1"), "{e}");
    }

    #[test]
    fn text_past_its_limit_is_refused_with_its_length() {
        let e = check_length("abcd", TextLimit::Varchar(3)).unwrap_err();
        assert_eq!(
            *e.kind(),
            ErrorKind::TooLong {
                value: "abcd".into(),
                limit: TextLimit::Varchar(3),
                chars: 4
            }
        );
        assert_eq!(
            e.to_string(),
            "\"abcd\" has 4 characters, more than character varying(3) holds"
        );
        // Trailing spaces past char(n) are not kept by char(n): accepted.
        assert!(check_length("ab  ", TextLimit::Bpchar(2)).is_ok());
        // A long value is shown cut short.
        let e = check_length(&"n".repeat(64), TextLimit::Name).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("n\"... is longer than a name's 63 bytes"),
            "{e}"
        );
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
