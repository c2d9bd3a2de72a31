//! Typed column decoders: one per result column, chosen once from its [`ColumnKind`].
//!
//! Each decoder appends one field's bytes (or a NULL) at a time into plain vectors that become
//! Arrow buffers without copying when the batch is flushed. The per-type wire functions are
//! small pure functions named after the PostgreSQL type, each documenting its layout (see the
//! `*_send` functions in PostgreSQL's `src/backend/utils/adt/`).

use std::sync::Arc;

use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, IntervalMonthDayNanoType, Time64MicrosecondType, TimestampMicrosecondType,
    UInt32Type,
};
use arrow_array::{
    ArrayRef, ArrowPrimitiveType, BinaryArray, BooleanArray, FixedSizeBinaryArray, PrimitiveArray,
    StringArray,
};
use arrow_buffer::{
    BooleanBufferBuilder, Buffer, IntervalMonthDayNano, NullBufferBuilder, OffsetBuffer,
    ScalarBuffer, i256,
};
use arrow_schema::ArrowError;

use crate::error::FieldError;
use crate::numeric::Numeric;
use crate::types::ColumnKind;

/// Microseconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01.
pub const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// Days from the Unix epoch to PostgreSQL's epoch, 2000-01-01.
pub const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds in a day; `time` 24:00:00 is this value.
pub const US_PER_DAY: i64 = 86_400_000_000;

type FieldResult<T> = Result<T, FieldError>;

fn fixed<const N: usize>(b: &[u8], type_name: &'static str) -> FieldResult<[u8; N]> {
    b.try_into().map_err(|_| {
        FieldError::new(format!(
            "{type_name} field has {} bytes, expected {N}",
            b.len()
        ))
    })
}

/// `bool`: one byte, non-zero is true.
pub fn bool_from_sql(b: &[u8]) -> FieldResult<bool> {
    Ok(fixed::<1>(b, "bool")?[0] != 0)
}

/// `int2`: big-endian i16.
pub fn int2_from_sql(b: &[u8]) -> FieldResult<i16> {
    Ok(i16::from_be_bytes(fixed(b, "int2")?))
}

/// `int4`: big-endian i32.
pub fn int4_from_sql(b: &[u8]) -> FieldResult<i32> {
    Ok(i32::from_be_bytes(fixed(b, "int4")?))
}

/// `int8`: big-endian i64.
pub fn int8_from_sql(b: &[u8]) -> FieldResult<i64> {
    Ok(i64::from_be_bytes(fixed(b, "int8")?))
}

/// `oid` (and `xid`, `cid`, `reg*`): big-endian u32.
pub fn oid_from_sql(b: &[u8]) -> FieldResult<u32> {
    Ok(u32::from_be_bytes(fixed(b, "oid")?))
}

/// `float4`: IEEE 754 bits, big-endian; -0, NaN and infinities survive.
pub fn float4_from_sql(b: &[u8]) -> FieldResult<f32> {
    Ok(f32::from_bits(u32::from_be_bytes(fixed(b, "float4")?)))
}

/// `float8`: IEEE 754 bits, big-endian; -0, NaN and infinities survive.
pub fn float8_from_sql(b: &[u8]) -> FieldResult<f64> {
    Ok(f64::from_bits(u64::from_be_bytes(fixed(b, "float8")?)))
}

/// `date`: i32 days since 2000-01-01, returned as days since 1970-01-01 (Arrow Date32).
///
/// `infinity` and `-infinity` (i32 MAX and MIN) have no Date32 value and are an error.
pub fn date_from_sql(b: &[u8]) -> FieldResult<i32> {
    let d = i32::from_be_bytes(fixed(b, "date")?);
    match d {
        i32::MAX => Err(FieldError::new("date 'infinity' has no Arrow Date32 value")),
        i32::MIN => Err(FieldError::new(
            "date '-infinity' has no Arrow Date32 value",
        )),
        d => d
            .checked_add(PG_EPOCH_DAYS)
            .ok_or_else(|| FieldError::new(format!("date {d} days from 2000-01-01 out of range"))),
    }
}

/// `time`: i64 microseconds since midnight (Arrow Time64(us)).
///
/// PostgreSQL accepts `24:00:00`, which is outside Arrow's range for a time of day: an error.
pub fn time_from_sql(b: &[u8]) -> FieldResult<i64> {
    let t = i64::from_be_bytes(fixed(b, "time")?);
    if t == US_PER_DAY {
        return Err(FieldError::new(
            "time 24:00:00 is outside Arrow Time64's range (00:00:00 to 23:59:59.999999)",
        ));
    }
    if !(0..US_PER_DAY).contains(&t) {
        return Err(FieldError::new(format!("time {t} us is not within a day")));
    }
    Ok(t)
}

/// `timestamp` and `timestamptz`: i64 microseconds since 2000-01-01 (UTC for timestamptz),
/// returned as microseconds since the Unix epoch.
///
/// `infinity` and `-infinity` (i64 MAX and MIN) are an error.
pub fn timestamp_from_sql(b: &[u8]) -> FieldResult<i64> {
    let t = i64::from_be_bytes(fixed(b, "timestamp")?);
    match t {
        i64::MAX => Err(FieldError::new(
            "timestamp 'infinity' has no Arrow Timestamp value",
        )),
        i64::MIN => Err(FieldError::new(
            "timestamp '-infinity' has no Arrow Timestamp value",
        )),
        t => t.checked_add(PG_EPOCH_US).ok_or_else(|| {
            FieldError::new(
                "timestamp is past Arrow Timestamp(us)'s last instant, \
                 294247-01-10 04:00:54.775807 (PostgreSQL's range goes on to 294276 AD)",
            )
        }),
    }
}

/// `interval`: i64 microseconds, i32 days, i32 months (in that order), returned as Arrow's
/// MonthDayNano. Months and days stay separate from the time part, as in PostgreSQL.
///
/// A time part beyond +-2562047 hours overflows nanoseconds, and PostgreSQL 17's infinite
/// intervals have no Arrow value: both are errors.
pub fn interval_from_sql(b: &[u8]) -> FieldResult<IntervalMonthDayNano> {
    let b: [u8; 16] = fixed(b, "interval")?;
    let us = i64::from_be_bytes(b[0..8].try_into().unwrap_or_default());
    let days = i32::from_be_bytes(b[8..12].try_into().unwrap_or_default());
    let months = i32::from_be_bytes(b[12..16].try_into().unwrap_or_default());
    if (us, days, months) == (i64::MAX, i32::MAX, i32::MAX) {
        return Err(FieldError::new("interval 'infinity' has no Arrow value"));
    }
    if (us, days, months) == (i64::MIN, i32::MIN, i32::MIN) {
        return Err(FieldError::new("interval '-infinity' has no Arrow value"));
    }
    let nanos = us.checked_mul(1000).ok_or_else(|| {
        FieldError::new(format!(
            "interval time part of {us} us exceeds Arrow's nanosecond range (+-2562047 hours)"
        ))
    })?;
    Ok(IntervalMonthDayNano::new(months, days, nanos))
}

/// `uuid`: 16 bytes.
pub fn uuid_from_sql(b: &[u8]) -> FieldResult<[u8; 16]> {
    fixed(b, "uuid")
}

/// `jsonb`: a version byte (1) and the document's text.
pub fn jsonb_from_sql(b: &[u8]) -> FieldResult<&[u8]> {
    match b.split_first() {
        Some((1, text)) => Ok(text),
        Some((v, _)) => Err(FieldError::new(format!("unsupported jsonb version {v}"))),
        None => Err(FieldError::new("empty jsonb field")),
    }
}

/// Fixed-width values and their validity.
#[derive(Debug)]
pub(crate) struct Prim<T> {
    values: Vec<T>,
    nulls: NullBufferBuilder,
}

impl<T: Default + Copy + arrow_buffer::ArrowNativeType> Prim<T> {
    fn with_capacity(rows: usize) -> Self {
        Prim {
            values: Vec::with_capacity(rows),
            nulls: NullBufferBuilder::new(rows),
        }
    }

    #[inline]
    fn push(&mut self, v: T) {
        self.values.push(v);
        self.nulls.append_non_null();
    }

    #[inline]
    fn push_null(&mut self) {
        self.values.push(T::default());
        self.nulls.append_null();
    }

    fn finish<A>(&mut self, rows_hint: usize) -> PrimitiveArray<A>
    where
        A: ArrowPrimitiveType<Native = T>,
    {
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(rows_hint));
        let nulls = self.nulls.finish();
        PrimitiveArray::<A>::new(ScalarBuffer::from(values), nulls)
    }
}

/// Variable-width values (Utf8 / Binary layout) and their validity.
#[derive(Debug)]
pub(crate) struct Var {
    offsets: Vec<i32>,
    values: Vec<u8>,
    nulls: NullBufferBuilder,
}

impl Var {
    fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Var {
            offsets,
            values: Vec::with_capacity(bytes),
            nulls: NullBufferBuilder::new(rows),
        }
    }

    #[inline]
    fn end(&mut self) -> FieldResult<()> {
        let end = i32::try_from(self.values.len())
            .map_err(|_| FieldError::new("column data exceeds 2 GiB in one batch"))?;
        self.offsets.push(end);
        self.nulls.append_non_null();
        Ok(())
    }

    #[inline]
    fn push(&mut self, b: &[u8]) -> FieldResult<()> {
        self.values.extend_from_slice(b);
        self.end()
    }

    #[inline]
    fn push_null(&mut self) {
        let end = *self.offsets.last().unwrap_or(&0);
        self.offsets.push(end);
        self.nulls.append_null();
    }

    fn take(
        &mut self,
        rows_hint: usize,
    ) -> (OffsetBuffer<i32>, Buffer, Option<arrow_buffer::NullBuffer>) {
        let bytes_hint = self.values.len();
        let mut fresh_offsets = Vec::with_capacity(rows_hint + 1);
        fresh_offsets.push(0);
        let offsets = std::mem::replace(&mut self.offsets, fresh_offsets);
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(bytes_hint));
        let nulls = self.nulls.finish();
        // Offsets start at 0 and never decrease: `end` appends the growing length.
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        (offsets, Buffer::from_vec(values), nulls)
    }

    /// Builds a StringArray, naming the first row that is not valid UTF-8.
    fn finish_utf8(&mut self, rows_hint: usize) -> Result<StringArray, FinishError> {
        let (offsets, values, nulls) = self.take(rows_hint);
        match StringArray::try_new(offsets.clone(), values.clone(), nulls) {
            Ok(a) => Ok(a),
            Err(e) => {
                let row = offsets.windows(2).position(|w| {
                    std::str::from_utf8(&values[w[0] as usize..w[1] as usize]).is_err()
                });
                match row {
                    Some(row) => Err(FinishError::Field {
                        index: row,
                        error: FieldError::new(
                            "invalid UTF-8 in a text value (is the database SQL_ASCII?)",
                        ),
                    }),
                    None => Err(FinishError::Arrow(e)),
                }
            }
        }
    }
}

/// Why a column could not be turned into an array.
#[derive(Debug)]
pub(crate) enum FinishError {
    /// The value at `index` within the batch is bad.
    Field { index: usize, error: FieldError },
    /// Arrow refused the array.
    Arrow(ArrowError),
}

impl From<ArrowError> for FinishError {
    fn from(e: ArrowError) -> Self {
        FinishError::Arrow(e)
    }
}

/// One column's decoder and the values it has buffered for the current batch.
#[derive(Debug)]
pub(crate) enum Column {
    Bool(BooleanBufferBuilder, NullBufferBuilder),
    Int2(Prim<i16>),
    Int4(Prim<i32>),
    Int8(Prim<i64>),
    Oid(Prim<u32>),
    Float4(Prim<f32>),
    Float8(Prim<f64>),
    Decimal128(Prim<i128>, u8, i8),
    Decimal256(Prim<i256>, u8, i8),
    NumericText(Var),
    Text(Var),
    Json(Var),
    Jsonb(Var),
    Bytea(Var),
    Uuid(Vec<u8>, NullBufferBuilder),
    Date(Prim<i32>),
    Time(Prim<i64>),
    Timestamp(Prim<i64>, Option<Arc<str>>),
    Interval(Prim<IntervalMonthDayNano>),
}

impl Column {
    /// A decoder for `kind`, sized for `rows` rows.
    pub(crate) fn new(kind: ColumnKind, rows: usize) -> Column {
        let var = || Var::with_capacity(rows, rows * 16);
        match kind {
            ColumnKind::Bool => Column::Bool(
                BooleanBufferBuilder::new(rows),
                NullBufferBuilder::new(rows),
            ),
            ColumnKind::Int2 => Column::Int2(Prim::with_capacity(rows)),
            ColumnKind::Int4 => Column::Int4(Prim::with_capacity(rows)),
            ColumnKind::Int8 => Column::Int8(Prim::with_capacity(rows)),
            ColumnKind::Oid => Column::Oid(Prim::with_capacity(rows)),
            ColumnKind::Float4 => Column::Float4(Prim::with_capacity(rows)),
            ColumnKind::Float8 => Column::Float8(Prim::with_capacity(rows)),
            ColumnKind::Decimal128 { precision, scale } => {
                Column::Decimal128(Prim::with_capacity(rows), precision, scale)
            }
            ColumnKind::Decimal256 { precision, scale } => {
                Column::Decimal256(Prim::with_capacity(rows), precision, scale)
            }
            ColumnKind::NumericText => Column::NumericText(var()),
            ColumnKind::Text => Column::Text(var()),
            ColumnKind::Json => Column::Json(var()),
            ColumnKind::Jsonb => Column::Jsonb(var()),
            ColumnKind::Bytea => Column::Bytea(var()),
            ColumnKind::Uuid => {
                Column::Uuid(Vec::with_capacity(rows * 16), NullBufferBuilder::new(rows))
            }
            ColumnKind::Date => Column::Date(Prim::with_capacity(rows)),
            ColumnKind::Time => Column::Time(Prim::with_capacity(rows)),
            ColumnKind::Timestamp => Column::Timestamp(Prim::with_capacity(rows), None),
            ColumnKind::Timestamptz => {
                Column::Timestamp(Prim::with_capacity(rows), Some(Arc::from("UTC")))
            }
            ColumnKind::Interval => Column::Interval(Prim::with_capacity(rows)),
        }
    }

    /// Appends one non-NULL field.
    ///
    /// On error nothing is appended, so the column stays consistent with the others.
    #[inline]
    pub(crate) fn push(&mut self, b: &[u8]) -> FieldResult<()> {
        match self {
            Column::Bool(values, nulls) => {
                values.append(bool_from_sql(b)?);
                nulls.append_non_null();
            }
            Column::Int2(p) => p.push(int2_from_sql(b)?),
            Column::Int4(p) => p.push(int4_from_sql(b)?),
            Column::Int8(p) => p.push(int8_from_sql(b)?),
            Column::Oid(p) => p.push(oid_from_sql(b)?),
            Column::Float4(p) => p.push(float4_from_sql(b)?),
            Column::Float8(p) => p.push(float8_from_sql(b)?),
            Column::Decimal128(p, precision, scale) => {
                let n = Numeric::parse(b)?.map_err(|s| FieldError::new(s.message()))?;
                p.push(n.to_i128(*precision, *scale)?);
            }
            Column::Decimal256(p, precision, scale) => {
                let n = Numeric::parse(b)?.map_err(|s| FieldError::new(s.message()))?;
                p.push(n.to_i256(*precision, *scale)?);
            }
            Column::NumericText(v) => {
                let n = Numeric::parse(b)?.map_err(|s| FieldError::new(s.message()))?;
                n.write_text_bytes(&mut v.values);
                v.end()?;
            }
            Column::Text(v) | Column::Json(v) | Column::Bytea(v) => v.push(b)?,
            Column::Jsonb(v) => v.push(jsonb_from_sql(b)?)?,
            Column::Uuid(values, nulls) => {
                values.extend_from_slice(&uuid_from_sql(b)?);
                nulls.append_non_null();
            }
            Column::Date(p) => p.push(date_from_sql(b)?),
            Column::Time(p) => p.push(time_from_sql(b)?),
            Column::Timestamp(p, _) => p.push(timestamp_from_sql(b)?),
            Column::Interval(p) => p.push(interval_from_sql(b)?),
        }
        Ok(())
    }

    /// Appends a NULL.
    #[inline]
    pub(crate) fn push_null(&mut self) {
        match self {
            Column::Bool(values, nulls) => {
                values.append(false);
                nulls.append_null();
            }
            Column::Int2(p) => p.push_null(),
            Column::Int4(p) => p.push_null(),
            Column::Int8(p) => p.push_null(),
            Column::Oid(p) => p.push_null(),
            Column::Float4(p) => p.push_null(),
            Column::Float8(p) => p.push_null(),
            Column::Decimal128(p, ..) => p.push_null(),
            Column::Decimal256(p, ..) => p.push_null(),
            Column::NumericText(v)
            | Column::Text(v)
            | Column::Json(v)
            | Column::Jsonb(v)
            | Column::Bytea(v) => v.push_null(),
            Column::Uuid(values, nulls) => {
                values.extend_from_slice(&[0; 16]);
                nulls.append_null();
            }
            Column::Date(p) => p.push_null(),
            Column::Time(p) => p.push_null(),
            Column::Timestamp(p, _) => p.push_null(),
            Column::Interval(p) => p.push_null(),
        }
    }

    /// Hands out the buffered values as an array and starts a new batch sized like this one.
    pub(crate) fn finish(&mut self, rows: usize) -> Result<ArrayRef, FinishError> {
        Ok(match self {
            Column::Bool(values, nulls) => {
                let v = values.finish();
                *values = BooleanBufferBuilder::new(rows);
                Arc::new(BooleanArray::new(v, nulls.finish()))
            }
            Column::Int2(p) => Arc::new(p.finish::<Int16Type>(rows)),
            Column::Int4(p) => Arc::new(p.finish::<Int32Type>(rows)),
            Column::Int8(p) => Arc::new(p.finish::<Int64Type>(rows)),
            Column::Oid(p) => Arc::new(p.finish::<UInt32Type>(rows)),
            Column::Float4(p) => Arc::new(p.finish::<Float32Type>(rows)),
            Column::Float8(p) => Arc::new(p.finish::<Float64Type>(rows)),
            Column::Decimal128(p, precision, scale) => Arc::new(
                p.finish::<Decimal128Type>(rows)
                    .with_precision_and_scale(*precision, *scale)?,
            ),
            Column::Decimal256(p, precision, scale) => Arc::new(
                p.finish::<Decimal256Type>(rows)
                    .with_precision_and_scale(*precision, *scale)?,
            ),
            Column::NumericText(v) | Column::Text(v) | Column::Json(v) | Column::Jsonb(v) => {
                Arc::new(v.finish_utf8(rows)?)
            }
            Column::Bytea(v) => {
                let (offsets, values, nulls) = v.take(rows);
                Arc::new(BinaryArray::try_new(offsets, values, nulls)?)
            }
            Column::Uuid(values, nulls) => {
                let len = values.len();
                let v = std::mem::replace(values, Vec::with_capacity(len));
                Arc::new(FixedSizeBinaryArray::try_new(
                    16,
                    Buffer::from_vec(v),
                    nulls.finish(),
                )?)
            }
            Column::Date(p) => Arc::new(p.finish::<Date32Type>(rows)),
            Column::Time(p) => Arc::new(p.finish::<Time64MicrosecondType>(rows)),
            Column::Timestamp(p, tz) => Arc::new(
                p.finish::<TimestampMicrosecondType>(rows)
                    .with_timezone_opt(tz.clone()),
            ),
            Column::Interval(p) => Arc::new(p.finish::<IntervalMonthDayNanoType>(rows)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_edges() {
        assert_eq!(date_from_sql(&0i32.to_be_bytes()), Ok(PG_EPOCH_DAYS));
        assert!(date_from_sql(&i32::MAX.to_be_bytes()).is_err());
        assert!(date_from_sql(&i32::MIN.to_be_bytes()).is_err());
        assert!(time_from_sql(&US_PER_DAY.to_be_bytes()).is_err());
        assert_eq!(
            time_from_sql(&(US_PER_DAY - 1).to_be_bytes()),
            Ok(US_PER_DAY - 1)
        );
        assert_eq!(timestamp_from_sql(&0i64.to_be_bytes()), Ok(PG_EPOCH_US));
        assert!(timestamp_from_sql(&i64::MAX.to_be_bytes()).is_err());
        assert!(timestamp_from_sql(&[0; 7]).is_err());
        // 294276-12-31 23:59:59.999999, PostgreSQL's last timestamp, is past Arrow's range.
        assert!(timestamp_from_sql(&9_223_371_331_199_999_999i64.to_be_bytes()).is_err());
    }

    #[test]
    fn interval_keeps_parts() {
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
    fn jsonb_version() {
        assert_eq!(jsonb_from_sql(b"\x01{}"), Ok(&b"{}"[..]));
        assert!(jsonb_from_sql(b"\x02{}").is_err());
        assert!(jsonb_from_sql(b"").is_err());
    }

    #[test]
    fn floats_keep_bits() {
        let neg_zero = float8_from_sql(&(-0.0f64).to_bits().to_be_bytes()).unwrap();
        assert!(neg_zero.is_sign_negative() && neg_zero == 0.0);
        assert!(
            float4_from_sql(&f32::NAN.to_bits().to_be_bytes())
                .unwrap()
                .is_nan()
        );
    }
}
