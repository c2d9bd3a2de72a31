//! Dates, times, timestamps and intervals: Arrow's units and epoch to PostgreSQL's
//! (microseconds from 2000-01-01), with ±infinity as pgarrow's export writes it and the
//! types' ranges checked.

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, DurationMicrosecondType, DurationMillisecondType,
    DurationNanosecondType, DurationSecondType, Int32Type, Int64Type, IntervalDayTimeType,
    IntervalMonthDayNanoType, IntervalYearMonthType, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_schema::{DataType, IntervalUnit, TimeUnit};
use pgarrow_types::{DATE_INFINITY, TIMESTAMP_INFINITY};

use crate::error::{EncodeError, ErrorKind, Inexact, OutOfRange, Temporal};
use crate::read::{Getter, changed, primitive};
use crate::scalar::Writer;

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const EPOCH_DAYS: i64 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const EPOCH_MICROS: i64 = EPOCH_DAYS * 86_400_000_000;
/// `date`'s finite range, in days from 2000-01-01: 4713-11-24 BC to 5874897-12-31.
const DATE_RANGE: std::ops::RangeInclusive<i64> = -2_451_545..=2_145_031_948;
/// `timestamp`'s finite range, in microseconds from 2000-01-01: 4713-11-24 BC to 294276 AD.
const TIMESTAMP_RANGE: std::ops::Range<i64> = -211_813_488_000_000_000..9_223_371_331_200_000_000;
/// `time`'s range in microseconds, 24:00:00 included.
const TIME_MAX: i64 = 86_400_000_000;

/// A date Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dates {
    /// Days from 1970-01-01.
    Date32,
    /// Milliseconds from 1970-01-01, whole days only.
    Date64,
}

impl Dates {
    pub(crate) fn of(t: &DataType) -> Option<Dates> {
        match t {
            DataType::Date32 => Some(Dates::Date32),
            DataType::Date64 => Some(Dates::Date64),
            _ => None,
        }
    }
}

pub(crate) fn date_writer(dates: Dates, array: &dyn Array) -> Result<Writer<'_>, EncodeError> {
    let days: Getter<'_, Result<i64, EncodeError>> = match dates {
        Dates::Date32 => {
            let a = primitive::<Date32Type>(array)?;
            Box::new(move |i| Ok(i64::from(a.value(i))))
        }
        Dates::Date64 => {
            let a = primitive::<Date64Type>(array)?;
            Box::new(move |i| {
                let ms = a.value(i);
                match ms % 86_400_000 {
                    0 => Ok(ms / 86_400_000),
                    _ => Err(Inexact::PartialDay { ms }.into()),
                }
            })
        }
    };
    Ok(Box::new(move |i, out| {
        let d = days(i)?;
        let pg = if d == i64::from(DATE_INFINITY.1) {
            i32::MAX
        } else if d == i64::from(DATE_INFINITY.0) {
            i32::MIN
        } else {
            let pg = d - EPOCH_DAYS;
            if !DATE_RANGE.contains(&pg) {
                return Err(OutOfRange::Date { days: d }.into());
            }
            pg as i32
        };
        out.extend_from_slice(&pg.to_be_bytes());
        Ok(())
    }))
}

/// What the writers of one batch do with values their target cannot hold exactly, and what
/// they counted (a batch is written on one thread: the counts are cells, summed into the
/// encoder's totals after the batch).
#[derive(Debug, Default)]
pub(crate) struct WriteCx {
    /// Round nanoseconds to microseconds (half to even) instead of refusing them.
    pub(crate) round_nanos: bool,
    /// Values whose nanoseconds were rounded.
    pub(crate) rounded: std::cell::Cell<u64>,
}

impl WriteCx {
    pub(crate) fn new(round_nanos: bool) -> WriteCx {
        WriteCx {
            round_nanos,
            rounded: std::cell::Cell::new(0),
        }
    }

    /// Microseconds from `v` in `unit` (`None` on overflow): exact, or (nanoseconds that are
    /// not whole microseconds) rounded half to even and counted when the policy says so, else
    /// refused.
    fn micros(&self, v: i64, unit: TimeUnit, what: Temporal) -> Result<Option<i64>, EncodeError> {
        if unit == TimeUnit::Nanosecond && v % 1_000 != 0 {
            if !self.round_nanos {
                return Err(ErrorKind::Nanoseconds { what, nanos: v }.into());
            }
            self.rounded.set(self.rounded.get() + 1);
        }
        Ok(to_micros(v, unit))
    }
}

/// Microseconds from a value in `unit`, rounding nanoseconds half to even as PostgreSQL rounds
/// its input; `None` on overflow.
fn to_micros(v: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Second => v.checked_mul(1_000_000),
        TimeUnit::Millisecond => v.checked_mul(1_000),
        TimeUnit::Microsecond => Some(v),
        TimeUnit::Nanosecond => {
            let (q, r) = (v.div_euclid(1_000), v.rem_euclid(1_000));
            Some(match r.cmp(&500) {
                std::cmp::Ordering::Less => q,
                std::cmp::Ordering::Greater => q + 1,
                std::cmp::Ordering::Equal => q + (q & 1),
            })
        }
    }
}

/// The unit of a Timestamp Arrow type (any time zone: the instant is what is written).
pub(crate) fn timestamp_unit(t: &DataType) -> Option<TimeUnit> {
    match t {
        DataType::Timestamp(unit, _) => Some(*unit),
        _ => None,
    }
}

pub(crate) fn timestamp_writer<'a>(
    unit: TimeUnit,
    array: &'a dyn Array,
    cx: &'a WriteCx,
) -> Result<Writer<'a>, EncodeError> {
    let get: Getter<'_, i64> = match unit {
        TimeUnit::Second => {
            let a = primitive::<TimestampSecondType>(array)?;
            Box::new(move |i| a.value(i))
        }
        TimeUnit::Millisecond => {
            let a = primitive::<TimestampMillisecondType>(array)?;
            Box::new(move |i| a.value(i))
        }
        TimeUnit::Microsecond => {
            let a = primitive::<TimestampMicrosecondType>(array)?;
            Box::new(move |i| a.value(i))
        }
        TimeUnit::Nanosecond => {
            let a = primitive::<TimestampNanosecondType>(array)?;
            Box::new(move |i| a.value(i))
        }
    };
    // ±i64::MAX means ±infinity in microseconds only (as pgarrow and DuckDB write them); in
    // nanoseconds it is a finite instant (pandas' Timestamp.max), in seconds and milliseconds
    // one past PostgreSQL's range.
    let infinity = match unit {
        TimeUnit::Microsecond => TIMESTAMP_INFINITY,
        _ => (i64::MIN, i64::MIN),
    };
    Ok(Box::new(move |i, out| {
        let v = get(i);
        let pg = if v == infinity.1 {
            i64::MAX
        } else if v == infinity.0 {
            i64::MIN
        } else {
            let pg = cx
                .micros(v, unit, Temporal::Timestamp)?
                .and_then(|us| us.checked_sub(EPOCH_MICROS))
                .filter(|pg| TIMESTAMP_RANGE.contains(pg));
            pg.ok_or(OutOfRange::Timestamp { value: v, unit })?
        };
        out.extend_from_slice(&pg.to_be_bytes());
        Ok(())
    }))
}

/// A time-of-day Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Times {
    /// Time32(s).
    Seconds,
    /// Time32(ms).
    Millis,
    /// Time64(µs).
    Micros,
    /// Time64(ns).
    Nanos,
    /// Utf8 holding PostgreSQL's text of a time, `HH:MM:SS[.ffffff]` (a lake format's form
    /// of a `time`, at any depth).
    Text,
}

impl Times {
    pub(crate) fn of(t: &DataType) -> Option<Times> {
        match t {
            DataType::Time32(TimeUnit::Second) => Some(Times::Seconds),
            DataType::Time32(TimeUnit::Millisecond) => Some(Times::Millis),
            DataType::Time64(TimeUnit::Microsecond) => Some(Times::Micros),
            DataType::Time64(TimeUnit::Nanosecond) => Some(Times::Nanos),
            DataType::Utf8 => Some(Times::Text),
            _ => None,
        }
    }
}

pub(crate) fn time_writer<'a>(
    times: Times,
    array: &'a dyn Array,
    cx: &'a WriteCx,
) -> Result<Writer<'a>, EncodeError> {
    let get: Getter<'_, Result<Option<i64>, EncodeError>> = match times {
        Times::Seconds => {
            let a = primitive::<Time32SecondType>(array)?;
            Box::new(move |i| cx.micros(i64::from(a.value(i)), TimeUnit::Second, Temporal::Time))
        }
        Times::Millis => {
            let a = primitive::<Time32MillisecondType>(array)?;
            Box::new(move |i| {
                cx.micros(i64::from(a.value(i)), TimeUnit::Millisecond, Temporal::Time)
            })
        }
        Times::Nanos => {
            let a = primitive::<Time64NanosecondType>(array)?;
            Box::new(move |i| cx.micros(a.value(i), TimeUnit::Nanosecond, Temporal::Time))
        }
        Times::Micros => {
            let a = primitive::<Time64MicrosecondType>(array)?;
            Box::new(move |i| Ok(Some(a.value(i))))
        }
        Times::Text => {
            let a = array.as_string_opt::<i32>().ok_or_else(|| changed(array))?;
            // Text that is no time of day is out of its range, named with its row.
            Box::new(move |i| Ok(time_from_text(a.value(i))))
        }
    };
    Ok(Box::new(move |i, out| {
        let us = get(i)?
            .filter(|us| (0..=TIME_MAX).contains(us))
            .ok_or(OutOfRange::Time)?;
        out.extend_from_slice(&us.to_be_bytes());
        Ok(())
    }))
}

/// Microseconds since midnight of `HH:MM:SS[.f]` (one to six fraction digits), as
/// PostgreSQL prints a `time`; `None` for any other text.
fn time_from_text(s: &str) -> Option<i64> {
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let b = hms.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' || frac.len() > 6 {
        return None;
    }
    let two = |i: usize| -> Option<i64> {
        let (h, l) = (b[i].checked_sub(b'0')?, b[i + 1].checked_sub(b'0')?);
        (h < 10 && l < 10).then(|| i64::from(h * 10 + l))
    };
    let (h, m, sec) = (two(0)?, two(3)?, two(6)?);
    if m > 59 || sec > 59 {
        return None;
    }
    let mut us = 0i64;
    for (k, c) in frac.bytes().enumerate() {
        let d = c.checked_sub(b'0').filter(|d| *d < 10)?;
        us += i64::from(d) * 10i64.pow(5 - k as u32);
    }
    if s.contains('.') && frac.is_empty() {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1_000_000 + us)
}

/// An Arrow type that holds intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intervals {
    /// Interval(MonthDayNano).
    MonthDayNano,
    /// Interval(YearMonth): months only.
    YearMonth,
    /// Interval(DayTime): days and milliseconds.
    DayTime,
    /// Duration, in any unit: a time part only (no months or days).
    Duration(TimeUnit),
    /// `Struct{months: Int32, days: Int32, microseconds: Int64}`: how pgarrow writes intervals
    /// into Parquet.
    Struct,
}

impl Intervals {
    pub(crate) fn of(t: &DataType) -> Option<Intervals> {
        match t {
            DataType::Interval(IntervalUnit::MonthDayNano) => Some(Intervals::MonthDayNano),
            DataType::Interval(IntervalUnit::YearMonth) => Some(Intervals::YearMonth),
            DataType::Interval(IntervalUnit::DayTime) => Some(Intervals::DayTime),
            DataType::Duration(unit) => Some(Intervals::Duration(*unit)),
            DataType::Struct(fields) => {
                let parts: Vec<(&str, &DataType)> = fields
                    .iter()
                    .map(|f| (f.name().as_str(), f.data_type()))
                    .collect();
                let expected = [
                    ("months", &DataType::Int32),
                    ("days", &DataType::Int32),
                    ("microseconds", &DataType::Int64),
                ];
                (parts == expected).then_some(Intervals::Struct)
            }
            _ => None,
        }
    }
}

fn duration_getter(unit: TimeUnit, array: &dyn Array) -> Result<Getter<'_, i64>, EncodeError> {
    Ok(match unit {
        TimeUnit::Second => {
            let a = primitive::<DurationSecondType>(array)?;
            Box::new(move |i| a.value(i))
        }
        TimeUnit::Millisecond => {
            let a = primitive::<DurationMillisecondType>(array)?;
            Box::new(move |i| a.value(i))
        }
        TimeUnit::Microsecond => {
            let a = primitive::<DurationMicrosecondType>(array)?;
            Box::new(move |i| a.value(i))
        }
        TimeUnit::Nanosecond => {
            let a = primitive::<DurationNanosecondType>(array)?;
            Box::new(move |i| a.value(i))
        }
    })
}

pub(crate) fn interval_writer<'a>(
    intervals: Intervals,
    array: &'a dyn Array,
    cx: &'a WriteCx,
) -> Result<Writer<'a>, EncodeError> {
    // (months, days, microseconds); `None` when the time part overflows.
    type Parts = Result<Option<(i32, i32, i64)>, EncodeError>;
    let get: Getter<'_, Parts> = match intervals {
        Intervals::MonthDayNano => {
            let a = primitive::<IntervalMonthDayNanoType>(array)?;
            Box::new(move |i| {
                let v = a.value(i);
                let us = cx.micros(v.nanoseconds, TimeUnit::Nanosecond, Temporal::IntervalTime)?;
                Ok(us.map(|us| (v.months, v.days, us)))
            })
        }
        Intervals::YearMonth => {
            let a = primitive::<IntervalYearMonthType>(array)?;
            Box::new(move |i| Ok(Some((a.value(i), 0, 0))))
        }
        // Milliseconds as microseconds: at most 2^31 * 1000, far inside i64.
        Intervals::DayTime => {
            let a = primitive::<IntervalDayTimeType>(array)?;
            Box::new(move |i| {
                let v = a.value(i);
                Ok(Some((0, v.days, i64::from(v.milliseconds) * 1_000)))
            })
        }
        Intervals::Duration(unit) => {
            let get = duration_getter(unit, array)?;
            Box::new(move |i| {
                Ok(cx
                    .micros(get(i), unit, Temporal::Duration)?
                    .map(|us| (0, 0, us)))
            })
        }
        Intervals::Struct => {
            let s = array.as_struct_opt().ok_or_else(|| changed(array))?;
            let part = |k: usize| s.columns().get(k).ok_or_else(|| changed(array));
            let months = primitive::<Int32Type>(part(0)?)?;
            let days = primitive::<Int32Type>(part(1)?)?;
            let micros = primitive::<Int64Type>(part(2)?)?;
            Box::new(move |i| Ok(Some((months.value(i), days.value(i), micros.value(i)))))
        }
    };
    Ok(Box::new(move |i, out| {
        let (months, days, micros) = get(i)?.ok_or(OutOfRange::IntervalTime)?;
        out.extend_from_slice(&micros.to_be_bytes());
        out.extend_from_slice(&days.to_be_bytes());
        out.extend_from_slice(&months.to_be_bytes());
        Ok(())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_text_parses_as_postgresql_prints_it() {
        assert_eq!(time_from_text("00:00:00"), Some(0));
        assert_eq!(time_from_text("12:34:56.5"), Some(45_296_500_000));
        assert_eq!(time_from_text("23:59:59.999999"), Some(86_399_999_999));
        assert_eq!(time_from_text("24:00:00"), Some(86_400_000_000));
        assert_eq!(time_from_text("00:00:00.000001"), Some(1));
        for bad in [
            "",
            "1:00:00",
            "12:60:00",
            "12:00:00.",
            "12:00:00.1234567",
            "ab:cd:ef",
            "12:00",
        ] {
            assert_eq!(time_from_text(bad), None, "{bad}");
        }
    }

    #[test]
    fn micros_round_half_to_even() {
        assert_eq!(to_micros(1_500, TimeUnit::Nanosecond), Some(2));
        assert_eq!(to_micros(2_500, TimeUnit::Nanosecond), Some(2));
        assert_eq!(to_micros(2_501, TimeUnit::Nanosecond), Some(3));
        assert_eq!(to_micros(-1_500, TimeUnit::Nanosecond), Some(-2));
        assert_eq!(to_micros(i64::MAX, TimeUnit::Second), None);
    }

    #[test]
    fn temporal_types_parse() {
        assert_eq!(Dates::of(&DataType::Date64), Some(Dates::Date64));
        assert_eq!(
            Times::of(&DataType::Time64(TimeUnit::Nanosecond)),
            Some(Times::Nanos)
        );
        // Not a valid Arrow type (Time32 holds seconds or milliseconds): refused up front.
        assert_eq!(Times::of(&DataType::Time32(TimeUnit::Microsecond)), None);
        assert_eq!(
            Intervals::of(&DataType::Interval(IntervalUnit::DayTime)),
            Some(Intervals::DayTime)
        );
        assert_eq!(
            timestamp_unit(&DataType::Timestamp(
                TimeUnit::Millisecond,
                Some("UTC".into())
            )),
            Some(TimeUnit::Millisecond)
        );
    }
}
