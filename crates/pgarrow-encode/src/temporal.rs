//! Dates, times, timestamps and intervals: Arrow's units and epoch to PostgreSQL's
//! (microseconds from 2000-01-01), with ±infinity as pgarrow's export writes it and the
//! types' ranges checked.

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, DurationMicrosecondType, DurationMillisecondType,
    DurationNanosecondType, DurationSecondType, Int32Type, Int64Type, IntervalMonthDayNanoType,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_schema::{DataType, TimeUnit};
use pgarrow_types::{DATE_INFINITY, TIMESTAMP_INFINITY};

use crate::scalar::{Getter, Writer};

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

pub(crate) fn date_writer<'a>(array: &'a dyn Array) -> Writer<'a> {
    let days: Box<dyn Fn(usize) -> Result<i64, String> + 'a> = match array.data_type() {
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            Box::new(move |i| Ok(i64::from(a.value(i))))
        }
        _ => {
            let a = array.as_primitive::<Date64Type>();
            Box::new(move |i| {
                let ms = a.value(i);
                match ms % 86_400_000 {
                    0 => Ok(ms / 86_400_000),
                    _ => Err(format!("{ms} ms is not a whole day")),
                }
            })
        }
    };
    Box::new(move |i, out| {
        let d = days(i)?;
        let pg = if d == i64::from(DATE_INFINITY.1) {
            i32::MAX
        } else if d == i64::from(DATE_INFINITY.0) {
            i32::MIN
        } else {
            let pg = d - EPOCH_DAYS;
            if !DATE_RANGE.contains(&pg) {
                return Err(format!(
                    "{d} days from 1970-01-01 is outside date's range (4713 BC to 5874897 AD)"
                ));
            }
            pg as i32
        };
        out.extend_from_slice(&pg.to_be_bytes());
        Ok(())
    })
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

pub(crate) fn timestamp_writer<'a>(array: &'a dyn Array) -> Writer<'a> {
    let DataType::Timestamp(unit, _) = array.data_type() else {
        unreachable!("accepts() admits only timestamps");
    };
    let unit = *unit;
    let get: Box<dyn Fn(usize) -> i64 + 'a> = match unit {
        TimeUnit::Second => {
            let a = array.as_primitive::<TimestampSecondType>();
            Box::new(move |i| a.value(i))
        }
        TimeUnit::Millisecond => {
            let a = array.as_primitive::<TimestampMillisecondType>();
            Box::new(move |i| a.value(i))
        }
        TimeUnit::Microsecond => {
            let a = array.as_primitive::<TimestampMicrosecondType>();
            Box::new(move |i| a.value(i))
        }
        TimeUnit::Nanosecond => {
            let a = array.as_primitive::<TimestampNanosecondType>();
            Box::new(move |i| a.value(i))
        }
    };
    Box::new(move |i, out| {
        let v = get(i);
        let pg = if v == TIMESTAMP_INFINITY.1 {
            i64::MAX
        } else if v == TIMESTAMP_INFINITY.0 {
            i64::MIN
        } else {
            let pg = to_micros(v, unit)
                .and_then(|us| us.checked_sub(EPOCH_MICROS))
                .filter(|pg| TIMESTAMP_RANGE.contains(pg));
            pg.ok_or_else(|| {
                format!(
                    "{v} ({unit:?} from 1970) is outside timestamp's range (4713 BC to 294276 AD)"
                )
            })?
        };
        out.extend_from_slice(&pg.to_be_bytes());
        Ok(())
    })
}

pub(crate) fn time_writer<'a>(array: &'a dyn Array) -> Writer<'a> {
    let get: Box<dyn Fn(usize) -> Option<i64> + 'a> = match array.data_type() {
        DataType::Time32(TimeUnit::Second) => {
            let a = array.as_primitive::<Time32SecondType>();
            Box::new(move |i| to_micros(i64::from(a.value(i)), TimeUnit::Second))
        }
        DataType::Time32(_) => {
            let a = array.as_primitive::<Time32MillisecondType>();
            Box::new(move |i| to_micros(i64::from(a.value(i)), TimeUnit::Millisecond))
        }
        DataType::Time64(TimeUnit::Nanosecond) => {
            let a = array.as_primitive::<Time64NanosecondType>();
            Box::new(move |i| to_micros(a.value(i), TimeUnit::Nanosecond))
        }
        _ => {
            let a = array.as_primitive::<Time64MicrosecondType>();
            Box::new(move |i| Some(a.value(i)))
        }
    };
    Box::new(move |i, out| {
        let us = get(i)
            .filter(|us| (0..=TIME_MAX).contains(us))
            .ok_or_else(|| "the time is outside 00:00:00 to 24:00:00".to_owned())?;
        out.extend_from_slice(&us.to_be_bytes());
        Ok(())
    })
}

pub(crate) fn interval_writer<'a>(array: &'a dyn Array) -> Writer<'a> {
    // (months, days, microseconds)
    let get: Getter<'a, Option<(i32, i32, i64)>> = match array.data_type() {
        DataType::Interval(_) => {
            let a = array.as_primitive::<IntervalMonthDayNanoType>();
            Box::new(move |i| {
                let v = a.value(i);
                Some((
                    v.months,
                    v.days,
                    to_micros(v.nanoseconds, TimeUnit::Nanosecond)?,
                ))
            })
        }
        DataType::Duration(unit) => {
            let unit = *unit;
            let get: Box<dyn Fn(usize) -> i64 + 'a> = match unit {
                TimeUnit::Second => {
                    let a = array.as_primitive::<DurationSecondType>();
                    Box::new(move |i| a.value(i))
                }
                TimeUnit::Millisecond => {
                    let a = array.as_primitive::<DurationMillisecondType>();
                    Box::new(move |i| a.value(i))
                }
                TimeUnit::Microsecond => {
                    let a = array.as_primitive::<DurationMicrosecondType>();
                    Box::new(move |i| a.value(i))
                }
                TimeUnit::Nanosecond => {
                    let a = array.as_primitive::<DurationNanosecondType>();
                    Box::new(move |i| a.value(i))
                }
            };
            Box::new(move |i| Some((0, 0, to_micros(get(i), unit)?)))
        }
        _ => {
            let s = array.as_struct();
            let months = s.column(0).as_primitive::<Int32Type>();
            let days = s.column(1).as_primitive::<Int32Type>();
            let micros = s.column(2).as_primitive::<Int64Type>();
            Box::new(move |i| Some((months.value(i), days.value(i), micros.value(i))))
        }
    };
    Box::new(move |i, out| {
        let (months, days, micros) =
            get(i).ok_or_else(|| "the interval's time part overflows".to_owned())?;
        out.extend_from_slice(&micros.to_be_bytes());
        out.extend_from_slice(&days.to_be_bytes());
        out.extend_from_slice(&months.to_be_bytes());
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_half_to_even() {
        assert_eq!(to_micros(1_500, TimeUnit::Nanosecond), Some(2));
        assert_eq!(to_micros(2_500, TimeUnit::Nanosecond), Some(2));
        assert_eq!(to_micros(2_501, TimeUnit::Nanosecond), Some(3));
        assert_eq!(to_micros(-1_500, TimeUnit::Nanosecond), Some(-2));
        assert_eq!(to_micros(i64::MAX, TimeUnit::Second), None);
    }
}
