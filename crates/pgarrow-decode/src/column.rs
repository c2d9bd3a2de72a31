//! Typed column decoders: one per result column, chosen once from its [`TypePlan`], nested
//! for arrays, composites, ranges and maps.
//!
//! Each decoder appends one field's bytes (or a NULL) at a time into plain vectors that become
//! Arrow buffers without copying when the batch is flushed. The per-type wire functions are
//! small pure functions named after the PostgreSQL type, each documenting its layout (see the
//! `*_send` functions in PostgreSQL's `src/backend/utils/adt/`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, IntervalMonthDayNanoType, Time64MicrosecondType, TimestampMicrosecondType,
    UInt32Type,
};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, BinaryArray, BooleanArray, DictionaryArray,
    FixedSizeBinaryArray, FixedSizeListArray, Float32Array, LargeStringArray, ListArray, MapArray,
    PrimitiveArray, StringArray, StringViewArray, StructArray,
};
use arrow_buffer::{
    BooleanBufferBuilder, Buffer, IntervalMonthDayNano, NullBuffer, NullBufferBuilder,
    OffsetBuffer, ScalarBuffer, i256,
};
use arrow_schema::{ArrowError, DataType, Field, Fields};

use crate::error::{FieldError, Special, Unrepresentable};
use crate::numeric::Numeric;
use crate::plan::{
    DATE_INFINITY, ListShape, StrLayout, TIMESTAMP_INFINITY, TypePlan, hstore_entries,
    range_fields, struct_fields,
};
use crate::policy::{Infinity, InvalidUtf8, LossKind, Losses, Overflow, Policies, SpecialValues};
use crate::recycle::Recycler;
use crate::types::ColumnKind;

/// Microseconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01.
pub const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// Days from the Unix epoch to PostgreSQL's epoch, 2000-01-01.
pub const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds in a day; `time` 24:00:00 is this value.
pub const US_PER_DAY: i64 = 86_400_000_000;

type FieldResult<T> = Result<T, FieldError>;

#[inline(always)]
fn fixed<const N: usize>(b: &[u8], type_name: &'static str) -> FieldResult<[u8; N]> {
    b.try_into().map_err(|_| FieldError::Size {
        type_name,
        expected: N,
        got: b.len(),
    })
}

// The wire parsers: one per type, each documenting its layout (PostgreSQL's `*_send`). Both
// the row loop's fast path (`Column::push_fast`, which declines a value on any error) and the
// general path (`Column::push`, which applies the policies) call them; their errors are typed
// and allocate nothing, so inlined they cost the fast path nothing.

/// `bool`: one byte, non-zero is true.
#[inline(always)]
pub fn bool_from_sql(b: &[u8]) -> FieldResult<bool> {
    Ok(fixed::<1>(b, "bool")?[0] != 0)
}

/// `int2`: big-endian i16.
#[inline(always)]
pub fn int2_from_sql(b: &[u8]) -> FieldResult<i16> {
    Ok(i16::from_be_bytes(fixed(b, "int2")?))
}

/// `int4`: big-endian i32.
#[inline(always)]
pub fn int4_from_sql(b: &[u8]) -> FieldResult<i32> {
    Ok(i32::from_be_bytes(fixed(b, "int4")?))
}

/// `int8`: big-endian i64.
#[inline(always)]
pub fn int8_from_sql(b: &[u8]) -> FieldResult<i64> {
    Ok(i64::from_be_bytes(fixed(b, "int8")?))
}

/// `oid` (and `xid`, `cid`, `reg*`): big-endian u32.
#[inline(always)]
pub fn oid_from_sql(b: &[u8]) -> FieldResult<u32> {
    Ok(u32::from_be_bytes(fixed(b, "oid")?))
}

/// `float4`: IEEE 754 bits, big-endian; -0, NaN and infinities survive.
#[inline(always)]
pub fn float4_from_sql(b: &[u8]) -> FieldResult<f32> {
    Ok(f32::from_bits(u32::from_be_bytes(fixed(b, "float4")?)))
}

/// `float8`: IEEE 754 bits, big-endian; -0, NaN and infinities survive.
#[inline(always)]
pub fn float8_from_sql(b: &[u8]) -> FieldResult<f64> {
    Ok(f64::from_bits(u64::from_be_bytes(fixed(b, "float8")?)))
}

/// `date`: i32 days since 2000-01-01, returned as days since 1970-01-01 (Arrow Date32).
///
/// `infinity` and `-infinity` (i32 MAX and MIN) are reported as such, for the infinity policy
/// (which writes them back as the extremes by default).
#[inline(always)]
pub fn date_from_sql(b: &[u8]) -> FieldResult<i32> {
    let unrepresentable = |u| Err(FieldError::Unrepresentable(u));
    match i32::from_be_bytes(fixed(b, "date")?) {
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
    match i64::from_be_bytes(fixed(b, "time")?) {
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
    match i64::from_be_bytes(fixed(b, "timestamp")?) {
        i64::MAX => unrepresentable(Unrepresentable::TimestampInfinity(Special::PosInfinity)),
        i64::MIN => unrepresentable(Unrepresentable::TimestampInfinity(Special::NegInfinity)),
        t => match t.checked_add(PG_EPOCH_US) {
            Some(t) => Ok(t),
            None => unrepresentable(Unrepresentable::TimestampRange),
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
    let b: [u8; 16] = fixed(b, "interval")?;
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
    b.try_into().map_err(|_| FieldError::Size {
        type_name: "uuid",
        expected: 16,
        got: b.len(),
    })
}

/// `jsonb`: a version byte (1) and the document's text.
#[inline(always)]
pub fn jsonb_from_sql(b: &[u8]) -> FieldResult<&[u8]> {
    versioned(b, "jsonb")
}

/// `ltree`: a version byte (1) and the label path as text.
#[inline(always)]
pub fn ltree_from_sql(b: &[u8]) -> FieldResult<&[u8]> {
    versioned(b, "ltree")
}

#[inline(always)]
fn versioned<'b>(b: &'b [u8], type_name: &'static str) -> FieldResult<&'b [u8]> {
    match b.split_first() {
        Some((1, text)) => Ok(text),
        Some((v, _)) => Err(FieldError::Version {
            type_name,
            version: Some(*v),
        }),
        None => Err(FieldError::Version {
            type_name,
            version: None,
        }),
    }
}

/// `"char"`: one byte, rendered as `charout` renders it: `\0` as the empty string, a byte
/// with the high bit set as a backslash and three octal digits, others as themselves.
pub fn char_from_sql(b: &[u8], out: &mut Vec<u8>) -> FieldResult<()> {
    match fixed::<1>(b, "\"char\"")?[0] {
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

/// Reads the parts of a composite wire value (arrays, records, ranges, maps).
struct Reader<'a> {
    b: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8], what: &'static str) -> Self {
        Reader { b, what }
    }

    fn take(&mut self, n: usize) -> FieldResult<&'a [u8]> {
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

    fn u8(&mut self) -> FieldResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> FieldResult<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> FieldResult<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length-prefixed part: `None` for length -1 (NULL).
    fn field(&mut self) -> FieldResult<Option<&'a [u8]>> {
        match self.i32()? {
            -1 => Ok(None),
            n if n < 0 => Err(FieldError::new(format!(
                "{} has a bad length {n}",
                self.what
            ))),
            n => self.take(n as usize).map(Some),
        }
    }

    fn remaining(&self) -> usize {
        self.b.len()
    }

    fn end(&self) -> FieldResult<()> {
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

/// The policies of an export and the loss counts of the column being decoded.
#[derive(Debug)]
pub(crate) struct Cx<'a> {
    pub(crate) policies: &'a Policies,
    pub(crate) losses: &'a mut Losses,
}

impl Cx<'_> {
    /// Applies the policies to a value that failed: `Ok(Some(v))` to write `v`, `Ok(None)` to
    /// write NULL, or the error back.
    fn apply<T>(
        &mut self,
        e: FieldError,
        clamp: impl FnOnce(Special) -> Option<T>,
    ) -> FieldResult<Option<T>> {
        let Some(special) = e.special() else {
            return Err(e);
        };
        if special == Special::Overflow {
            return match self.policies.numeric_overflow {
                Overflow::Error => Err(e),
                Overflow::Null => {
                    self.losses.count(LossKind::NumericOverflowToNull);
                    Ok(None)
                }
            };
        }
        let to_null = match special {
            Special::PosInfinity | Special::NegInfinity => LossKind::InfinityToNull,
            Special::NaN => LossKind::NanToNull,
            Special::Time2400 => LossKind::Time2400ToNull,
            _ => LossKind::OutOfRangeToNull,
        };
        match self.policies.special {
            SpecialValues::Error => Err(e),
            SpecialValues::Null => {
                self.losses.count(to_null);
                Ok(None)
            }
            SpecialValues::Clamp => match clamp(special) {
                Some(v) => {
                    self.losses.count(match special {
                        Special::PosInfinity | Special::NegInfinity => LossKind::InfinityClamped,
                        Special::Time2400 => LossKind::Time2400Clamped,
                        _ => LossKind::OutOfRangeClamped,
                    });
                    Ok(Some(v))
                }
                None => {
                    self.losses.count(to_null);
                    Ok(None)
                }
            },
        }
    }
}

/// Fixed-width values and their validity.
#[derive(Debug)]
pub(crate) struct Prim<T> {
    values: Vec<T>,
    nulls: NullBufferBuilder,
    spare: Recycler<T>,
}

impl<T: Default + Copy + arrow_buffer::ArrowNativeType + std::panic::RefUnwindSafe> Prim<T> {
    fn with_capacity(rows: usize) -> Self {
        Prim {
            values: Vec::with_capacity(rows),
            nulls: NullBufferBuilder::new(rows),
            spare: Recycler::new(),
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

    /// Pushes a decoded value, or applies the policies to its error.
    #[inline]
    fn push_or(
        &mut self,
        r: FieldResult<T>,
        cx: &mut Cx<'_>,
        clamp: impl FnOnce(Special) -> Option<T>,
    ) -> FieldResult<()> {
        match r {
            Ok(v) => self.push(v),
            Err(e) => match cx.apply(e, clamp)? {
                Some(v) => self.push(v),
                None => self.push_null(),
            },
        }
        Ok(())
    }

    /// As [`push_or`](Prim::push_or), for a date or a timestamp: its ±infinity is the
    /// infinity policy's, written as `min`/`max` (how PostgreSQL stores it) by default.
    fn push_temporal(
        &mut self,
        r: FieldResult<T>,
        cx: &mut Cx<'_>,
        (min, max): (T, T),
        clamp: impl FnOnce(Special) -> Option<T>,
    ) -> FieldResult<()> {
        let infinite = match &r {
            Err(e) => match e.special() {
                Some(Special::PosInfinity) => Some(max),
                Some(Special::NegInfinity) => Some(min),
                _ => None,
            },
            Ok(_) => None,
        };
        let Some(extreme) = infinite else {
            return self.push_or(r, cx, clamp);
        };
        match cx.policies.infinity {
            Infinity::Extreme => {
                cx.losses.count(LossKind::InfinityAsExtreme);
                self.push(extreme);
            }
            Infinity::Null => {
                cx.losses.count(LossKind::InfinityToNull);
                self.push_null();
            }
            Infinity::Error => {
                return r.map(drop).map_err(|e| FieldError::Refused {
                    error: Box::new(e),
                    policy: "the infinity policy is error (--infinity extreme writes the type's \
                             extreme value, as PostgreSQL stores it; --infinity null, NULL)",
                });
            }
        }
        Ok(())
    }

    fn finish<A>(&mut self, rows_hint: usize) -> PrimitiveArray<A>
    where
        A: ArrowPrimitiveType<Native = T>,
    {
        let values = std::mem::replace(&mut self.values, self.spare.take(rows_hint));
        let len = values.len();
        let nulls = finish_nulls(&mut self.nulls, rows_hint);
        PrimitiveArray::<A>::new(ScalarBuffer::new(self.spare.buffer(values), 0, len), nulls)
    }
}

/// Variable-width values (Utf8 / Binary layout) and their validity.
#[derive(Debug)]
pub(crate) struct Var {
    offsets: Vec<i32>,
    values: Vec<u8>,
    nulls: NullBufferBuilder,
    spare_offsets: Recycler<i32>,
    spare_values: Recycler<u8>,
}

impl Var {
    fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Var {
            offsets,
            values: Vec::with_capacity(bytes),
            nulls: NullBufferBuilder::new(rows),
            spare_offsets: Recycler::new(),
            spare_values: Recycler::new(),
        }
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
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

    /// Appends `b` unless the batch's data would pass 2 GiB; false (nothing changed) then.
    ///
    /// `rest` is the input from `b`'s first byte on: a short value is copied as a whole
    /// 16- or 64-byte block from it (see [`Var::push_block`]).
    #[inline(always)]
    fn try_push(&mut self, b: &[u8], rest: &[u8]) -> bool {
        let Ok(end) = i32::try_from(self.values.len() + b.len()) else {
            return false;
        };
        if b.len() <= 16
            && let Some(block) = rest.first_chunk::<16>()
        {
            self.push_block(block, b.len());
        } else if b.len() <= 64
            && let Some(block) = rest.first_chunk::<64>()
        {
            self.push_block(block, b.len());
        } else {
            self.push_long(b);
        }
        self.offsets.push(end);
        self.nulls.append_non_null();
        true
    }

    /// The `memcpy` call for a long value, kept out of the row loop: a call there made the
    /// compiler keep the loop's position in memory for every field (callgrind: 5% more
    /// instructions on lineitem, which has no value this long).
    #[inline(never)]
    fn push_long(&mut self, b: &[u8]) {
        self.values.extend_from_slice(b);
    }

    /// Appends the first `len` bytes of `block` by copying all `N` and cutting the rest off
    /// again: a fixed-size copy the compiler turns into a few vector moves, where
    /// `extend_from_slice(&b[..len])` calls `memcpy` for every short value.
    #[inline(always)]
    fn push_block<const N: usize>(&mut self, block: &[u8; N], len: usize) {
        let end = self.values.len() + len;
        self.values.extend_from_slice(block);
        self.values.truncate(end);
    }

    #[inline]
    fn push_null(&mut self) {
        let end = *self.offsets.last().unwrap_or(&0);
        self.offsets.push(end);
        self.nulls.append_null();
    }

    fn take(&mut self) -> (OffsetBuffer<i32>, Buffer, Option<NullBuffer>) {
        let rows = self.len();
        // Room for a batch a little larger than this one, and for `try_push`'s block copies.
        let bytes_hint = self.values.len() + self.values.len() / 16 + 64;
        let mut fresh_offsets = self.spare_offsets.take(rows + 1);
        fresh_offsets.push(0);
        let offsets = std::mem::replace(&mut self.offsets, fresh_offsets);
        let values = std::mem::replace(&mut self.values, self.spare_values.take(bytes_hint));
        let nulls = finish_nulls(&mut self.nulls, rows);
        let offsets = var_offsets(self.spare_offsets.buffer(offsets), rows + 1);
        (offsets, self.spare_values.buffer(values), nulls)
    }

    fn finish_binary(&mut self) -> Result<ArrayRef, FinishError> {
        let (offsets, values, nulls) = self.take();
        Ok(Arc::new(BinaryArray::try_new(offsets, values, nulls)?))
    }

    /// Builds a text array in `layout`, validating UTF-8: invalid values are replaced or named
    /// as the invalid-UTF-8 policy says.
    fn finish_text(&mut self, layout: StrLayout, cx: &mut Cx<'_>) -> Result<ArrayRef, FinishError> {
        if layout == StrLayout::Binary {
            return self.finish_binary();
        }
        let (offsets, values, nulls) = self.take();
        let checked = match ascii_strings(offsets.clone(), values.clone(), nulls.clone()) {
            Some(strings) => Ok(strings),
            None => StringArray::try_new(offsets.clone(), values.clone(), nulls.clone()),
        };
        let strings = match checked {
            Ok(a) => a,
            Err(e) => {
                let bad =
                    |w: &[i32]| std::str::from_utf8(&values[w[0] as usize..w[1] as usize]).is_err();
                match cx.policies.invalid_utf8 {
                    InvalidUtf8::Replace => {
                        let mut fixed: Vec<u8> = Vec::with_capacity(values.len());
                        let mut new_offsets = Vec::with_capacity(offsets.len());
                        new_offsets.push(0i32);
                        for w in offsets.windows(2) {
                            let v = &values[w[0] as usize..w[1] as usize];
                            if bad(w) {
                                cx.losses.count(LossKind::InvalidUtf8Replaced);
                                fixed.extend_from_slice(String::from_utf8_lossy(v).as_bytes());
                            } else {
                                fixed.extend_from_slice(v);
                            }
                            let end = i32::try_from(fixed.len()).map_err(|_| {
                                FinishError::Arrow(ArrowError::InvalidArgumentError(
                                    "text exceeds 2 GiB in one batch".into(),
                                ))
                            })?;
                            new_offsets.push(end);
                        }
                        StringArray::try_new(
                            OffsetBuffer::new(ScalarBuffer::from(new_offsets)),
                            Buffer::from_vec(fixed),
                            nulls,
                        )?
                    }
                    _ => {
                        return Err(match offsets.windows(2).position(bad) {
                            Some(index) => FinishError::Field {
                                index,
                                error: FieldError::new(
                                    "invalid UTF-8 in a text value (is the database SQL_ASCII? \
                                     see the invalid-UTF-8 policy)",
                                ),
                            },
                            None => FinishError::Arrow(e),
                        });
                    }
                }
            }
        };
        Ok(match layout {
            StrLayout::Utf8 | StrLayout::Binary => Arc::new(strings),
            StrLayout::View => Arc::new(StringViewArray::from(&strings)),
            StrLayout::Large => {
                let (offsets, values, nulls) = strings.into_parts();
                let wide: Vec<i64> = offsets.iter().map(|&o| i64::from(o)).collect();
                Arc::new(LargeStringArray::try_new(
                    OffsetBuffer::new(ScalarBuffer::from(wide)),
                    values,
                    nulls,
                )?)
            }
        })
    }
}

/// A string array over `values` if they are all ASCII, without Arrow's per-offset checks;
/// `None` when some byte is not ASCII.
///
/// `StringArray::try_new` checks that every offset falls on a character boundary, which
/// costs as much as decoding the column; when the whole buffer is ASCII every byte is a
/// boundary and every slice is valid UTF-8, so one vectorised scan proves it all.
#[allow(unsafe_code)]
fn ascii_strings(
    offsets: OffsetBuffer<i32>,
    values: Buffer,
    nulls: Option<NullBuffer>,
) -> Option<StringArray> {
    if !all_ascii(&values) {
        return None;
    }
    let last = usize::try_from(offsets.last()).unwrap_or(usize::MAX);
    assert!(last <= values.len(), "offsets past the values");
    assert!(
        nulls.as_ref().is_none_or(|n| n.len() == offsets.len() - 1),
        "validity of another length"
    );
    // SAFETY: `OffsetBuffer` guarantees the offsets are non-negative and non-decreasing; the
    // last one is within `values` and the validity has one bit per value (both asserted
    // above); every slice of an all-ASCII buffer (checked above) is valid UTF-8. These are
    // all of `new_unchecked`'s requirements.
    Some(unsafe { StringArray::new_unchecked(offsets, values, nulls) })
}

/// Whether every byte of `b` is ASCII. It ORs 32-byte blocks together, which the compiler
/// keeps in vector registers, and looks at the high bits once at the end; `<[u8]>::is_ascii`
/// tests every 8-byte word on its own (half an instruction per byte, against a tenth here).
fn all_ascii(b: &[u8]) -> bool {
    let (blocks, tail) = b.as_chunks::<32>();
    let mut acc = [0u8; 32];
    for block in blocks {
        for (a, x) in acc.iter_mut().zip(block) {
            *a |= x;
        }
    }
    acc.iter().fold(0, |a, x| a | x) < 0x80 && tail.is_ascii()
}

/// A [`Var`]'s offsets (`len` of them, in `buffer`) as an `OffsetBuffer`, without Arrow's
/// check of every pair (8 instructions a value at every flush).
///
/// A `Var` starts each batch's offsets with 0 and every offset it appends is its values'
/// length at that moment; the values only grow within a batch (`push_block` cuts back only
/// the padding it has just added). So the offsets never decrease, which is all that
/// `OffsetBuffer` requires. Debug builds, which run the tests, check it anyway.
#[allow(unsafe_code)]
fn var_offsets(buffer: Buffer, len: usize) -> OffsetBuffer<i32> {
    let offsets = ScalarBuffer::<i32>::new(buffer, 0, len);
    debug_assert!(
        offsets.first() == Some(&0) && offsets.windows(2).all(|w| w[0] <= w[1]),
        "Var offsets must start at 0 and never decrease"
    );
    // SAFETY: `offsets` is not empty (`ScalarBuffer::new` checked `len` values are there and
    // a `Var` always holds the leading 0), starts at 0 and never decreases, as explained
    // above: `new_unchecked`'s requirements.
    unsafe { OffsetBuffer::new_unchecked(offsets) }
}

/// The validity of the batch, leaving a builder that will size its bitmap (if a NULL comes)
/// for `rows` rows at once: `NullBufferBuilder::finish` keeps the first batch's small
/// capacity, and a nullable column then regrew its bitmap in every batch.
fn finish_nulls(nulls: &mut NullBufferBuilder, rows: usize) -> Option<NullBuffer> {
    std::mem::replace(nulls, NullBufferBuilder::new(rows)).finish()
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

/// How the bytes of a text-like value become text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrWire {
    Plain,
    Jsonb,
    Ltree,
    Char,
    Numeric,
}

/// One column's decoder and the values it has buffered for the current batch.
///
/// `repr(u8)` gives the enum a plain tag byte, so the row loop's `match` is one jump through a
/// table; the default layout hides the tag in a niche of the largest variant and takes a dozen
/// instructions per field to find it.
#[derive(Debug)]
#[repr(u8)]
pub(crate) enum Column {
    Bool(BooleanBufferBuilder, NullBufferBuilder),
    Int2(Prim<i16>),
    Int4(Prim<i32>),
    Int8(Prim<i64>),
    Oid(Prim<u32>),
    Float4(Prim<f32>),
    Float8(Prim<f64>),
    /// Values, precision, scale, and the bound for [`Numeric::scaled_i64`].
    Decimal128(Prim<i128>, u8, i8, i64),
    Decimal256(Prim<i256>, u8, i8),
    /// `money`: its int8 count of minor units, and the scale.
    Money(Prim<i128>, i8),
    NumericFloat64(Prim<f64>),
    Str(Var, StrWire, StrLayout),
    Bytes(Var),
    Uuid(Vec<u8>, NullBufferBuilder, Recycler<u8>),
    Date(Prim<i32>),
    Time(Prim<i64>),
    Timestamp(Prim<i64>, Option<Arc<str>>),
    Interval(Prim<IntervalMonthDayNano>),
    List(Box<ListCol>),
    Struct(Box<StructCol>),
    Enum(Box<EnumCol>),
    Range(Box<RangeCol>),
    Hstore(Box<HstoreCol>),
    Vector(Box<VectorCol>),
}

impl Column {
    /// A decoder for `plan`, sized for `rows` rows.
    pub(crate) fn new(plan: &TypePlan, rows: usize) -> Column {
        let var = || Var::with_capacity(rows, rows * 16);
        let kind = match plan {
            TypePlan::Scalar { kind, layout } => (*kind, *layout),
            TypePlan::List {
                element,
                dims,
                shape,
            } => {
                return Column::List(Box::new(ListCol::new(element, *dims, *shape, false, rows)));
            }
            TypePlan::Multirange(range) => {
                return Column::List(Box::new(ListCol::new(
                    range,
                    1,
                    ListShape::Declared,
                    true,
                    rows,
                )));
            }
            TypePlan::Struct(fields) => {
                return Column::Struct(Box::new(StructCol {
                    children: fields.iter().map(|f| Column::new(&f.plan, rows)).collect(),
                    fields: struct_fields(fields),
                    nulls: NullBufferBuilder::new(rows),
                    len: 0,
                }));
            }
            TypePlan::Enum(labels) => return Column::Enum(Box::new(EnumCol::new(labels, rows))),
            TypePlan::Range(sub) => {
                return Column::Range(Box::new(RangeCol {
                    lower: Column::new(sub, rows),
                    upper: Column::new(sub, rows),
                    lower_inclusive: BooleanBufferBuilder::new(rows),
                    upper_inclusive: BooleanBufferBuilder::new(rows),
                    empty: BooleanBufferBuilder::new(rows),
                    nulls: NullBufferBuilder::new(rows),
                    fields: range_fields(sub),
                }));
            }
            TypePlan::Hstore => {
                return Column::Hstore(Box::new(HstoreCol {
                    offsets: vec![0],
                    keys: var(),
                    values: var(),
                    nulls: NullBufferBuilder::new(rows),
                }));
            }
            TypePlan::Vector(dim) => {
                return Column::Vector(Box::new(VectorCol {
                    dim: *dim,
                    values: Vec::new(),
                    offsets: vec![0],
                    nulls: NullBufferBuilder::new(rows),
                }));
            }
        };
        match kind {
            (ColumnKind::Bool, _) => Column::Bool(
                BooleanBufferBuilder::new(rows),
                NullBufferBuilder::new(rows),
            ),
            (ColumnKind::Int2, _) => Column::Int2(Prim::with_capacity(rows)),
            (ColumnKind::Int4, _) => Column::Int4(Prim::with_capacity(rows)),
            (ColumnKind::Int8, _) => Column::Int8(Prim::with_capacity(rows)),
            (ColumnKind::Oid, _) => Column::Oid(Prim::with_capacity(rows)),
            (ColumnKind::Float4, _) => Column::Float4(Prim::with_capacity(rows)),
            (ColumnKind::Float8, _) => Column::Float8(Prim::with_capacity(rows)),
            (ColumnKind::Decimal128 { precision, scale }, _) => Column::Decimal128(
                Prim::with_capacity(rows),
                precision,
                scale,
                crate::numeric::i64_limit(precision),
            ),
            (ColumnKind::Decimal256 { precision, scale }, _) => {
                Column::Decimal256(Prim::with_capacity(rows), precision, scale)
            }
            (ColumnKind::NumericFloat64, _) => Column::NumericFloat64(Prim::with_capacity(rows)),
            (ColumnKind::Money { scale }, _) => Column::Money(Prim::with_capacity(rows), scale),
            (ColumnKind::NumericText, layout) => {
                let layout = if layout == StrLayout::Binary {
                    StrLayout::Utf8
                } else {
                    layout
                };
                Column::Str(var(), StrWire::Numeric, layout)
            }
            (ColumnKind::Text | ColumnKind::Json, layout) => {
                Column::Str(var(), StrWire::Plain, layout)
            }
            (ColumnKind::Jsonb, layout) => Column::Str(var(), StrWire::Jsonb, layout),
            (ColumnKind::Ltree, layout) => Column::Str(var(), StrWire::Ltree, layout),
            (ColumnKind::Char, layout) => Column::Str(var(), StrWire::Char, layout),
            (ColumnKind::Bytea | ColumnKind::Wkb, _) => Column::Bytes(var()),
            (ColumnKind::Uuid, _) => Column::Uuid(
                Vec::with_capacity(rows * 16),
                NullBufferBuilder::new(rows),
                Recycler::new(),
            ),
            (ColumnKind::Date, _) => Column::Date(Prim::with_capacity(rows)),
            (ColumnKind::Time, _) => Column::Time(Prim::with_capacity(rows)),
            (ColumnKind::Timestamp, _) => Column::Timestamp(Prim::with_capacity(rows), None),
            (ColumnKind::Timestamptz, _) => {
                Column::Timestamp(Prim::with_capacity(rows), Some(Arc::from("UTC")))
            }
            (ColumnKind::Interval, _) => Column::Interval(Prim::with_capacity(rows)),
        }
    }

    /// Appends one non-NULL field of a common type whose value needs no policy: the row
    /// loop's fast path, inlined into it. Returns false, having changed nothing, for anything
    /// else (other types, special values, malformed fields), which then goes to
    /// [`push`](Column::push).
    #[inline(always)]
    pub(crate) fn push_fast(&mut self, b: &[u8], rest: &[u8]) -> bool {
        // The same wire parsers as `push`: inlined, their typed errors cost nothing here, and
        // any error (a bad size, a special value) declines the value for `push` to decide.
        match self {
            Column::Int8(p) => match int8_from_sql(b) {
                Ok(v) => p.push(v),
                Err(_) => return false,
            },
            Column::Int4(p) => match int4_from_sql(b) {
                Ok(v) => p.push(v),
                Err(_) => return false,
            },
            Column::Int2(p) => match int2_from_sql(b) {
                Ok(v) => p.push(v),
                Err(_) => return false,
            },
            Column::Float8(p) => match float8_from_sql(b) {
                Ok(v) => p.push(v),
                Err(_) => return false,
            },
            Column::Float4(p) => match float4_from_sql(b) {
                Ok(v) => p.push(v),
                Err(_) => return false,
            },
            Column::Decimal128(p, _, scale, limit) => {
                match Numeric::scaled_i64(b, *scale, *limit) {
                    Some(v) => p.push(i128::from(v)),
                    None => return false,
                }
            }
            Column::Str(v, StrWire::Plain, _) | Column::Bytes(v) => return v.try_push(b, rest),
            Column::Date(p) => match date_from_sql(b) {
                Ok(v) => p.push(v),
                Err(_) => return false,
            },
            Column::Timestamp(p, _) => match timestamp_from_sql(b) {
                Ok(v) => p.push(v),
                Err(_) => return false,
            },
            Column::Bool(values, nulls) => match bool_from_sql(b) {
                Ok(v) => {
                    values.append(v);
                    nulls.append_non_null();
                }
                Err(_) => return false,
            },
            Column::Uuid(values, nulls, _) => match uuid_from_sql(b) {
                Ok(v) => {
                    values.extend_from_slice(v);
                    nulls.append_non_null();
                }
                Err(_) => return false,
            },
            Column::Time(p) => match time_from_sql(b) {
                Ok(v) => p.push(v),
                Err(_) => return false,
            },
            Column::Interval(p) => match interval_from_sql(b) {
                Ok(v) => p.push(v),
                Err(_) => return false,
            },
            Column::Str(v, StrWire::Jsonb, _) => match jsonb_from_sql(b) {
                Ok(text) => return v.try_push(text, &rest[1..]),
                Err(_) => return false,
            },
            // Listed rather than `_`, so that the jump table covers every tag and the row loop
            // does not check the tag's range first (two instructions a field).
            Column::Oid(_)
            | Column::Decimal256(..)
            | Column::Money(..)
            | Column::NumericFloat64(_)
            | Column::Str(..)
            | Column::List(_)
            | Column::Struct(_)
            | Column::Enum(_)
            | Column::Range(_)
            | Column::Hstore(_)
            | Column::Vector(_) => return false,
        }
        true
    }

    /// Appends one non-NULL field.
    ///
    /// On a scalar's error nothing is appended; an error inside a nested value may leave the
    /// column torn, but decoding errors end the export.
    #[inline]
    pub(crate) fn push(&mut self, b: &[u8], cx: &mut Cx<'_>) -> FieldResult<()> {
        match self {
            Column::Bool(values, nulls) => {
                values.append(bool_from_sql(b)?);
                nulls.append_non_null();
            }
            Column::Int2(p) => p.push(int2_from_sql(b)?),
            Column::Int4(p) => p.push(int4_from_sql(b)?),
            Column::Int8(p) => p.push(int8_from_sql(b)?),
            Column::Money(p, _) => p.push(i128::from(int8_from_sql(b)?)),
            Column::Oid(p) => p.push(oid_from_sql(b)?),
            Column::Float4(p) => p.push(float4_from_sql(b)?),
            Column::Float8(p) => p.push(float8_from_sql(b)?),
            Column::Decimal128(p, precision, scale, _) => {
                let r = Numeric::parse(b)?
                    .map_err(|s| s.error())
                    .and_then(|n| n.to_i128(*precision, *scale));
                // Only a special value (rare) needs the type's largest value.
                let precision = u32::from(*precision);
                let max = move || 10i128.checked_pow(precision).map_or(i128::MAX, |m| m - 1);
                p.push_or(r, cx, |s| match s {
                    Special::PosInfinity => Some(max()),
                    Special::NegInfinity => Some(-max()),
                    _ => None,
                })?;
            }
            Column::Decimal256(p, precision, scale) => {
                let r = Numeric::parse(b)?
                    .map_err(|s| s.error())
                    .and_then(|n| n.to_i256(*precision, *scale));
                let precision = u32::from(*precision);
                let max = move || {
                    i256::from_i128(10)
                        .checked_pow(precision)
                        .map_or(i256::MAX, |m| m.wrapping_sub(i256::ONE))
                };
                p.push_or(r, cx, |s| match s {
                    Special::PosInfinity => Some(max()),
                    Special::NegInfinity => Some(max().wrapping_neg()),
                    _ => None,
                })?;
            }
            Column::NumericFloat64(p) => match Numeric::parse(b)? {
                Ok(n) => {
                    let mut text = String::with_capacity(n.text_len_hint());
                    n.write_text(&mut text);
                    let v: f64 = text.parse().map_err(|_| {
                        FieldError::new(format!("numeric {text} does not parse as float64"))
                    })?;
                    cx.losses.count(LossKind::NumericToFloat64);
                    p.push(v);
                }
                Err(crate::numeric::NumericSpecial::NaN) => p.push(f64::NAN),
                Err(crate::numeric::NumericSpecial::PosInfinity) => p.push(f64::INFINITY),
                Err(crate::numeric::NumericSpecial::NegInfinity) => p.push(f64::NEG_INFINITY),
            },
            Column::Str(v, wire, _) => {
                match wire {
                    StrWire::Plain => v.values.extend_from_slice(b),
                    StrWire::Jsonb => v.values.extend_from_slice(jsonb_from_sql(b)?),
                    StrWire::Ltree => v.values.extend_from_slice(ltree_from_sql(b)?),
                    StrWire::Char => char_from_sql(b, &mut v.values)?,
                    StrWire::Numeric => match Numeric::parse(b)? {
                        Ok(n) => n.write_text_bytes(&mut v.values),
                        // Exact as text, as PostgreSQL prints them.
                        Err(special) => v.values.extend_from_slice(special.text().as_bytes()),
                    },
                }
                v.end()?;
            }
            Column::Bytes(v) => v.push(b)?,
            Column::Uuid(values, nulls, _) => {
                values.extend_from_slice(uuid_from_sql(b)?);
                nulls.append_non_null();
            }
            Column::Date(p) => {
                p.push_temporal(date_from_sql(b), cx, DATE_INFINITY, |s| match s {
                    // Finite, past Date32 (not reachable from PostgreSQL's range): the last
                    // finite days, the extremes stand for ±infinity.
                    Special::BelowRange => Some(DATE_INFINITY.0 + 1),
                    _ => Some(DATE_INFINITY.1 - 1),
                })?
            }
            Column::Time(p) => p.push_or(time_from_sql(b), cx, |_| Some(US_PER_DAY - 1))?,
            Column::Timestamp(p, _) => {
                p.push_temporal(timestamp_from_sql(b), cx, TIMESTAMP_INFINITY, |s| match s {
                    // Arrow's last finite instants: the extremes stand for ±infinity.
                    Special::BelowRange => Some(TIMESTAMP_INFINITY.0 + 1),
                    _ => Some(TIMESTAMP_INFINITY.1 - 1),
                })?
            }
            Column::Interval(p) => {
                let parts = interval_parts(b);
                p.push_or(interval_from_sql(b), cx, |s| match (s, parts) {
                    (Special::PosInfinity, _) => Some(IntervalMonthDayNano::MAX),
                    (Special::NegInfinity, _) => Some(IntervalMonthDayNano::MIN),
                    (Special::AboveRange, Some((m, d))) => {
                        Some(IntervalMonthDayNano::new(m, d, i64::MAX))
                    }
                    (Special::BelowRange, Some((m, d))) => {
                        Some(IntervalMonthDayNano::new(m, d, i64::MIN))
                    }
                    _ => None,
                })?
            }
            Column::List(l) => l.push(b, cx)?,
            Column::Struct(s) => s.push(b, cx)?,
            Column::Enum(e) => e.push(b)?,
            Column::Range(r) => r.push(b, cx)?,
            Column::Hstore(h) => h.push(b)?,
            Column::Vector(v) => v.push(b)?,
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
            Column::Money(p, _) => p.push_null(),
            Column::NumericFloat64(p) => p.push_null(),
            Column::Str(v, ..) | Column::Bytes(v) => v.push_null(),
            Column::Uuid(values, nulls, _) => {
                values.extend_from_slice(&[0; 16]);
                nulls.append_null();
            }
            Column::Date(p) => p.push_null(),
            Column::Time(p) => p.push_null(),
            Column::Timestamp(p, _) => p.push_null(),
            Column::Interval(p) => p.push_null(),
            Column::List(l) => l.push_null(),
            Column::Struct(s) => s.push_null(),
            Column::Enum(e) => e.keys.push_null(),
            Column::Range(r) => r.push_null(),
            Column::Hstore(h) => h.push_null(),
            Column::Vector(v) => v.push_null(),
        }
    }

    /// Hands out the buffered values as an array and starts a new batch sized like this one.
    pub(crate) fn finish(&mut self, rows: usize, cx: &mut Cx<'_>) -> Result<ArrayRef, FinishError> {
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
            Column::Float8(p) | Column::NumericFloat64(p) => {
                Arc::new(p.finish::<Float64Type>(rows))
            }
            Column::Decimal128(p, precision, scale, _) => Arc::new(
                p.finish::<Decimal128Type>(rows)
                    .with_precision_and_scale(*precision, *scale)?,
            ),
            Column::Decimal256(p, precision, scale) => Arc::new(
                p.finish::<Decimal256Type>(rows)
                    .with_precision_and_scale(*precision, *scale)?,
            ),
            Column::Money(p, scale) => Arc::new(
                p.finish::<Decimal128Type>(rows)
                    .with_precision_and_scale(crate::types::MONEY_PRECISION, *scale)?,
            ),
            Column::Str(v, _, layout) => v.finish_text(*layout, cx)?,
            Column::Bytes(v) => v.finish_binary()?,
            Column::Uuid(values, nulls, spare) => {
                let len = values.len();
                let v = std::mem::replace(values, spare.take(len));
                Arc::new(FixedSizeBinaryArray::try_new(
                    16,
                    spare.buffer(v),
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
            Column::List(l) => l.finish(rows, cx)?,
            Column::Struct(s) => s.finish(rows, cx)?,
            Column::Enum(e) => e.finish(rows)?,
            Column::Range(r) => r.finish(rows, cx)?,
            Column::Hstore(h) => h.finish(cx)?,
            Column::Vector(v) => v.finish()?,
        })
    }
}

/// Months and days of an interval's wire value, for clamping its time part.
fn interval_parts(b: &[u8]) -> Option<(i32, i32)> {
    let b: &[u8; 16] = b.try_into().ok()?;
    let days = i32::from_be_bytes([b[8], b[9], b[10], b[11]]);
    let months = i32::from_be_bytes([b[12], b[13], b[14], b[15]]);
    Some((months, days))
}

/// Arrays (`dims` nested Lists) and multiranges (a List of ranges).
///
/// Array layout (`array_send`): i32 ndim (0 for an empty array), i32 flags (1: has NULLs),
/// u32 element OID, ndim x (i32 length, i32 lower bound), then the elements in row-major order,
/// each an i32 length (-1 for NULL) and its bytes. Multirange layout (`multirange_send`): i32
/// range count, then each range as i32 length and its bytes.
#[derive(Debug)]
pub(crate) struct ListCol {
    /// Offsets of each nesting level, outermost (one per row) first.
    levels: Vec<Vec<i32>>,
    nulls: NullBufferBuilder,
    child: Column,
    /// Where the number of levels comes from (what a value of other dimensions means).
    shape: ListShape,
    /// The innermost level's field (with the element's extension type).
    item: Arc<Field>,
    multirange: bool,
}

impl ListCol {
    fn new(
        element: &TypePlan,
        dims: usize,
        shape: ListShape,
        multirange: bool,
        rows: usize,
    ) -> Self {
        let mut levels = vec![Vec::with_capacity(rows + 1); dims.max(1)];
        for l in &mut levels {
            l.push(0);
        }
        ListCol {
            levels,
            nulls: NullBufferBuilder::new(rows),
            child: Column::new(element, rows),
            shape,
            item: Arc::new(element.item_field()),
            multirange,
        }
    }

    fn push(&mut self, b: &[u8], cx: &mut Cx<'_>) -> FieldResult<()> {
        if self.multirange {
            let mut r = Reader::new(b, "multirange");
            let n = r.i32()?;
            if n < 0 || n as usize > r.remaining() / 4 {
                return Err(FieldError::new(format!("multirange claims {n} ranges")));
            }
            for _ in 0..n {
                let range = r
                    .field()?
                    .ok_or_else(|| FieldError::new("NULL range in a multirange"))?;
                self.child.push(range, cx)?;
            }
            r.end()?;
            push_offset(&mut self.levels[0], n as usize)?;
            self.nulls.append_non_null();
            return Ok(());
        }
        let mut r = Reader::new(b, "array");
        let ndim = r.i32()?;
        let flags = r.i32()?;
        let _element_oid = r.i32()?;
        if flags & !1 != 0 {
            return Err(FieldError::new(format!("array has unknown flags {flags}")));
        }
        let dims = self.levels.len();
        if ndim == 0 {
            push_offset(&mut self.levels[0], 0)?;
            self.nulls.append_non_null();
            return r.end();
        }
        if !(1..=6).contains(&ndim) {
            return Err(FieldError::new(format!("array has {ndim} dimensions")));
        }
        let ndim = ndim as usize;
        if ndim != dims && self.shape != ListShape::Flatten {
            let from = match self.shape {
                ListShape::Declared => "declared for the column",
                ListShape::Seen => "seen in the column's first non-empty value",
                _ => "planned: the column's values before the first batch were all NULL or empty",
            };
            return Err(FieldError::new(format!(
                "array has {ndim} dimension(s) but the column has {dims} ({from}); \
                 --array-shape flatten exports every array as a 1-D list of its elements"
            )));
        }
        let mut lengths = [0usize; 6];
        let mut total: usize = 1;
        let mut lower_bound_dropped = false;
        for len in lengths.iter_mut().take(ndim) {
            let n = r.i32()?;
            let lower = r.i32()?;
            if n < 0 {
                return Err(FieldError::new(format!("array dimension of length {n}")));
            }
            lower_bound_dropped |= lower != 1;
            *len = n as usize;
            total = total
                .checked_mul(n as usize)
                .ok_or_else(|| FieldError::new("array dimensions overflow"))?;
        }
        // Each element needs at least its 4-byte length: refuse claims the bytes cannot hold.
        if total > r.remaining() / 4 {
            return Err(FieldError::new(format!(
                "array claims {total} elements in {} bytes",
                r.remaining()
            )));
        }
        if self.shape == ListShape::Flatten {
            push_offset(&mut self.levels[0], total)?;
            if ndim > 1 {
                cx.losses.count(LossKind::ArrayFlattened);
            }
        } else {
            let mut lists = 1usize;
            for (level, &len) in self.levels.iter_mut().zip(&lengths[..dims]) {
                for _ in 0..lists {
                    push_offset(level, len)?;
                }
                lists *= len;
            }
        }
        for _ in 0..total {
            match r.field()? {
                Some(e) => self.child.push(e, cx)?,
                None => self.child.push_null(),
            }
        }
        r.end()?;
        if lower_bound_dropped {
            cx.losses.count(LossKind::ArrayLowerBoundDropped);
        }
        self.nulls.append_non_null();
        Ok(())
    }

    fn push_null(&mut self) {
        let last = *self.levels[0].last().unwrap_or(&0);
        self.levels[0].push(last);
        self.nulls.append_null();
    }

    fn finish(&mut self, rows: usize, cx: &mut Cx<'_>) -> Result<ArrayRef, FinishError> {
        let child_rows = *self.levels.last().and_then(|l| l.last()).unwrap_or(&0) as usize;
        let mut array = match self.child.finish(child_rows, cx) {
            Ok(a) => a,
            Err(FinishError::Field { index, error }) => {
                // Map an element's index back to its row through every level.
                let mut index = index;
                for level in self.levels.iter().rev() {
                    index = level
                        .partition_point(|&o| o as usize <= index)
                        .saturating_sub(1);
                }
                return Err(FinishError::Field { index, error });
            }
            Err(e) => return Err(e),
        };
        let depth = self.levels.len();
        for (i, level) in self.levels.iter_mut().enumerate().rev() {
            let mut fresh = Vec::with_capacity(if i == 0 { rows + 1 } else { level.len() });
            fresh.push(0);
            let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(level, fresh)));
            let field = if i + 1 == depth {
                self.item.clone()
            } else {
                Arc::new(Field::new("item", array.data_type().clone(), true))
            };
            let nulls = if i == 0 { self.nulls.finish() } else { None };
            array = Arc::new(ListArray::try_new(field, offsets, array, nulls)?);
        }
        debug_assert!(depth >= 1);
        Ok(array)
    }
}

fn push_offset(level: &mut Vec<i32>, n: usize) -> FieldResult<()> {
    let last = *level.last().unwrap_or(&0);
    let next = i32::try_from(n)
        .ok()
        .and_then(|n| last.checked_add(n))
        .ok_or_else(|| FieldError::new("more than 2^31 array elements in one batch"))?;
    level.push(next);
    Ok(())
}

/// Composites as Structs. Layout (`record_send`): i32 count of live attributes, then for each
/// a u32 type OID, an i32 length (-1 for NULL) and the bytes.
#[derive(Debug)]
pub(crate) struct StructCol {
    children: Vec<Column>,
    fields: Fields,
    nulls: NullBufferBuilder,
    /// Rows buffered: a composite without live attributes has no child to count them.
    len: usize,
}

impl StructCol {
    fn push(&mut self, b: &[u8], cx: &mut Cx<'_>) -> FieldResult<()> {
        let mut r = Reader::new(b, "record");
        let n = r.i32()?;
        if n < 0 || n as usize != self.children.len() {
            return Err(FieldError::new(format!(
                "record has {n} fields, the type has {} (was it altered during the export?)",
                self.children.len()
            )));
        }
        for child in &mut self.children {
            let _oid = r.i32()?;
            match r.field()? {
                Some(v) => child.push(v, cx)?,
                None => child.push_null(),
            }
        }
        r.end()?;
        self.nulls.append_non_null();
        self.len += 1;
        Ok(())
    }

    fn push_null(&mut self) {
        for c in &mut self.children {
            c.push_null();
        }
        self.nulls.append_null();
        self.len += 1;
    }

    fn finish(&mut self, rows: usize, cx: &mut Cx<'_>) -> Result<ArrayRef, FinishError> {
        let arrays = self
            .children
            .iter_mut()
            .map(|c| c.finish(rows, cx))
            .collect::<Result<Vec<_>, _>>()?;
        let nulls = self.nulls.finish();
        let len = std::mem::take(&mut self.len);
        if self.fields.is_empty() {
            return Ok(Arc::new(StructArray::new_empty_fields(len, nulls)));
        }
        Ok(Arc::new(StructArray::try_new(
            self.fields.clone(),
            arrays,
            nulls,
        )?))
    }
}

/// Enums as Dictionary(Int16, Utf8): the dictionary is every label in `pg_enum` order, each value
/// the index of its label. Layout: the label's text.
#[derive(Debug)]
pub(crate) struct EnumCol {
    keys: Prim<i16>,
    index: HashMap<Box<[u8]>, i16>,
    labels: ArrayRef,
}

impl EnumCol {
    fn new(labels: &[String], rows: usize) -> Self {
        let index = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_bytes().into(), i as i16))
            .collect();
        EnumCol {
            keys: Prim::with_capacity(rows),
            index,
            labels: Arc::new(StringArray::from_iter_values(labels)),
        }
    }

    fn push(&mut self, b: &[u8]) -> FieldResult<()> {
        match self.index.get(b) {
            Some(&k) => {
                self.keys.push(k);
                Ok(())
            }
            None => Err(FieldError::new(format!(
                "enum label \"{}\" was not among the labels when the export started",
                String::from_utf8_lossy(b)
            ))),
        }
    }

    fn finish(&mut self, rows: usize) -> Result<ArrayRef, FinishError> {
        let keys = self.keys.finish::<Int16Type>(rows);
        Ok(Arc::new(DictionaryArray::<Int16Type>::try_new(
            keys,
            self.labels.clone(),
        )?))
    }
}

const RANGE_EMPTY: u8 = 0x01;
const RANGE_LB_INC: u8 = 0x02;
const RANGE_UB_INC: u8 = 0x04;
const RANGE_LB_INF: u8 = 0x08;
const RANGE_UB_INF: u8 = 0x10;

/// Ranges as Struct{lower, upper, lower_inclusive, upper_inclusive, empty}. An unbounded side
/// is a NULL bound; an `infinity` bound is a value (and meets the special-value policy).
/// Layout (`range_send`): u8 flags (0x01 empty, 0x02/0x04 lower/upper inclusive, 0x08/0x10
/// lower/upper unbounded), then each bounded bound as an i32 length and its bytes.
#[derive(Debug)]
pub(crate) struct RangeCol {
    lower: Column,
    upper: Column,
    lower_inclusive: BooleanBufferBuilder,
    upper_inclusive: BooleanBufferBuilder,
    empty: BooleanBufferBuilder,
    nulls: NullBufferBuilder,
    fields: Fields,
}

impl RangeCol {
    fn push(&mut self, b: &[u8], cx: &mut Cx<'_>) -> FieldResult<()> {
        let mut r = Reader::new(b, "range");
        let flags = r.u8()?;
        if flags & RANGE_EMPTY != 0 {
            self.lower.push_null();
            self.upper.push_null();
        } else {
            for (bound, unbounded) in [
                (&mut self.lower, RANGE_LB_INF),
                (&mut self.upper, RANGE_UB_INF),
            ] {
                if flags & unbounded != 0 {
                    bound.push_null();
                } else {
                    let v = r
                        .field()?
                        .ok_or_else(|| FieldError::new("NULL range bound"))?;
                    bound.push(v, cx)?;
                }
            }
        }
        r.end()?;
        self.lower_inclusive.append(flags & RANGE_LB_INC != 0);
        self.upper_inclusive.append(flags & RANGE_UB_INC != 0);
        self.empty.append(flags & RANGE_EMPTY != 0);
        self.nulls.append_non_null();
        Ok(())
    }

    fn push_null(&mut self) {
        self.lower.push_null();
        self.upper.push_null();
        self.lower_inclusive.append(false);
        self.upper_inclusive.append(false);
        self.empty.append(false);
        self.nulls.append_null();
    }

    fn finish(&mut self, rows: usize, cx: &mut Cx<'_>) -> Result<ArrayRef, FinishError> {
        let flag = |b: &mut BooleanBufferBuilder| -> ArrayRef {
            Arc::new(BooleanArray::new(b.finish(), None))
        };
        let arrays = vec![
            self.lower.finish(rows, cx)?,
            self.upper.finish(rows, cx)?,
            flag(&mut self.lower_inclusive),
            flag(&mut self.upper_inclusive),
            flag(&mut self.empty),
        ];
        Ok(Arc::new(StructArray::try_new(
            self.fields.clone(),
            arrays,
            self.nulls.finish(),
        )?))
    }
}

/// `hstore` as Map<Utf8, Utf8>. Layout (`hstore_send`): i32 pair count, then each pair as an i32
/// key length and key, an i32 value length (-1 for NULL) and value.
#[derive(Debug)]
pub(crate) struct HstoreCol {
    offsets: Vec<i32>,
    keys: Var,
    values: Var,
    nulls: NullBufferBuilder,
}

impl HstoreCol {
    fn push(&mut self, b: &[u8]) -> FieldResult<()> {
        let mut r = Reader::new(b, "hstore");
        let n = r.i32()?;
        if n < 0 || n as usize > r.remaining() / 8 {
            return Err(FieldError::new(format!("hstore claims {n} pairs")));
        }
        for _ in 0..n {
            let key = r
                .field()?
                .ok_or_else(|| FieldError::new("NULL hstore key"))?;
            self.keys.push(key)?;
            match r.field()? {
                Some(v) => self.values.push(v)?,
                None => self.values.push_null(),
            }
        }
        r.end()?;
        push_offset(&mut self.offsets, n as usize)?;
        self.nulls.append_non_null();
        Ok(())
    }

    fn push_null(&mut self) {
        let last = *self.offsets.last().unwrap_or(&0);
        self.offsets.push(last);
        self.nulls.append_null();
    }

    fn finish(&mut self, cx: &mut Cx<'_>) -> Result<ArrayRef, FinishError> {
        // An error names a pair: report the row holding it.
        let offsets = &self.offsets;
        let to_row = |e: FinishError| match e {
            FinishError::Field { index, error } => FinishError::Field {
                index: offsets
                    .partition_point(|&o| o as usize <= index)
                    .saturating_sub(1),
                error,
            },
            e => e,
        };
        let keys = self.keys.finish_text(StrLayout::Utf8, cx).map_err(to_row)?;
        let values = self
            .values
            .finish_text(StrLayout::Utf8, cx)
            .map_err(to_row)?;
        let DataType::Struct(entry_fields) = hstore_entries().data_type().clone() else {
            unreachable!("hstore entries are a struct")
        };
        let entries = StructArray::try_new(entry_fields, vec![keys, values], None)?;
        let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(
            &mut self.offsets,
            vec![0],
        )));
        Ok(Arc::new(MapArray::try_new(
            Arc::new(hstore_entries()),
            offsets,
            entries,
            self.nulls.finish(),
            false,
        )?))
    }
}

/// pgvector `vector`. Layout (`vector_send`): i16 dimension, i16 unused, then that many
/// float4 values.
#[derive(Debug)]
pub(crate) struct VectorCol {
    dim: Option<i32>,
    values: Vec<f32>,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

impl VectorCol {
    fn push(&mut self, b: &[u8]) -> FieldResult<()> {
        let mut r = Reader::new(b, "vector");
        let n = r.i16()?;
        let _unused = r.i16()?;
        if n < 0 || r.remaining() != 4 * n as usize {
            return Err(FieldError::new(format!(
                "vector of dimension {n} has {} bytes of values",
                r.remaining()
            )));
        }
        if let Some(dim) = self.dim
            && i32::from(n) != dim
        {
            return Err(FieldError::new(format!(
                "vector has dimension {n}, the column {dim}"
            )));
        }
        for c in r.take(4 * n as usize)?.chunks_exact(4) {
            self.values
                .push(f32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        }
        if self.dim.is_none() {
            push_offset(&mut self.offsets, n as usize)?;
        }
        self.nulls.append_non_null();
        Ok(())
    }

    fn push_null(&mut self) {
        match self.dim {
            Some(dim) => self.values.extend(std::iter::repeat_n(0.0, dim as usize)),
            None => {
                let last = *self.offsets.last().unwrap_or(&0);
                self.offsets.push(last);
            }
        }
        self.nulls.append_null();
    }

    fn finish(&mut self) -> Result<ArrayRef, FinishError> {
        let values = Arc::new(Float32Array::from(std::mem::take(&mut self.values)));
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let nulls = self.nulls.finish();
        Ok(match self.dim {
            Some(dim) => Arc::new(FixedSizeListArray::try_new(item, dim, values, nulls)?),
            None => {
                let offsets = std::mem::replace(&mut self.offsets, vec![0]);
                Arc::new(ListArray::try_new(
                    item,
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    values,
                    nulls,
                )?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_edges() {
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
        // 294276-12-31 23:59:59.999999, PostgreSQL's last timestamp, is past Arrow's range.
        assert_eq!(
            timestamp_from_sql(&9_223_371_331_199_999_999i64.to_be_bytes())
                .unwrap_err()
                .special(),
            Some(Special::AboveRange)
        );
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
    fn jsonb_ltree_char() {
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
    fn floats_keep_bits() {
        let neg_zero = float8_from_sql(&(-0.0f64).to_bits().to_be_bytes()).unwrap();
        assert!(neg_zero.is_sign_negative() && neg_zero == 0.0);
        assert!(
            float4_from_sql(&f32::NAN.to_bits().to_be_bytes())
                .unwrap()
                .is_nan()
        );
    }

    #[test]
    fn policies_null_and_clamp() {
        let mut losses = Losses::default();
        let clamp = Policies {
            special: SpecialValues::Clamp,
            ..Policies::default()
        };
        let mut cx = Cx {
            policies: &clamp,
            losses: &mut losses,
        };
        let plan = TypePlan::builtin(crate::types::oid::DATE, -1, &clamp).unwrap();
        let mut col = Column::new(&plan, 4);
        col.push(&i32::MAX.to_be_bytes(), &mut cx).unwrap();
        col.push(&i32::MIN.to_be_bytes(), &mut cx).unwrap();
        let a = col.finish(4, &mut cx).unwrap();
        let d = a
            .as_any()
            .downcast_ref::<arrow_array::Date32Array>()
            .unwrap();
        assert_eq!((d.value(0), d.value(1)), (i32::MAX, -i32::MAX));
        // Date infinities follow the infinity policy (extreme by default), not `special`.
        assert_eq!(losses.get(LossKind::InfinityAsExtreme), 2);
        assert_eq!(losses.get(LossKind::InfinityClamped), 0);

        for (infinity, kind, null) in [
            (Infinity::Null, LossKind::InfinityToNull, true),
            (Infinity::Extreme, LossKind::InfinityAsExtreme, false),
        ] {
            let mut losses = Losses::default();
            let policies = Policies {
                infinity,
                ..Policies::default()
            };
            let mut cx = Cx {
                policies: &policies,
                losses: &mut losses,
            };
            let plan = TypePlan::builtin(crate::types::oid::TIMESTAMPTZ, -1, &policies).unwrap();
            let mut col = Column::new(&plan, 4);
            col.push(&i64::MIN.to_be_bytes(), &mut cx).unwrap();
            let a = col.finish(4, &mut cx).unwrap();
            assert_eq!(a.is_null(0), null, "{infinity:?}");
            if !null {
                use arrow_array::cast::AsArray;
                let ts = a.as_primitive::<arrow_array::types::TimestampMicrosecondType>();
                assert_eq!(ts.value(0), -i64::MAX);
            }
            assert_eq!(losses.get(kind), 1, "{infinity:?}");
        }
        let error = Policies {
            infinity: Infinity::Error,
            special: SpecialValues::Clamp,
            ..Policies::default()
        };
        let mut losses = Losses::default();
        let mut cx = Cx {
            policies: &error,
            losses: &mut losses,
        };
        let mut col = Column::new(&plan, 4);
        let e = col.push(&i32::MAX.to_be_bytes(), &mut cx).unwrap_err();
        assert!(e.to_string().contains("infinity"), "{e}");

        let mut losses = Losses::default();
        let null = Policies {
            special: SpecialValues::Null,
            ..Policies::default()
        };
        let mut cx = Cx {
            policies: &null,
            losses: &mut losses,
        };
        let plan = TypePlan::builtin(crate::types::oid::TIME, -1, &null).unwrap();
        let mut col = Column::new(&plan, 4);
        col.push(&US_PER_DAY.to_be_bytes(), &mut cx).unwrap();
        assert!(col.finish(4, &mut cx).unwrap().is_null(0));
        assert_eq!(losses.get(LossKind::Time2400ToNull), 1);

        let mut losses = Losses::default();
        let strict = Policies::default();
        let mut cx = Cx {
            policies: &strict,
            losses: &mut losses,
        };
        let mut col = Column::new(&plan, 4);
        assert!(col.push(&US_PER_DAY.to_be_bytes(), &mut cx).is_err());
    }
}
