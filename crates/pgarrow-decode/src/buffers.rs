//! The buffers a column decoder fills: fixed-width values ([`Prim`]) and variable-width
//! ones ([`Var`]), each with its validity, handed to Arrow without a copy at each flush.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, ArrowPrimitiveType, BinaryArray, LargeStringArray, PrimitiveArray, StringArray,
    StringViewArray,
};
use arrow_buffer::{Buffer, NullBuffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::ArrowError;

use crate::error::{FieldError, Refusal, Special};
use crate::mapping::StrLayout;
use crate::policy::{Infinity, InvalidUtf8, LossKind};
use crate::recycle::Recycler;

use crate::column::{Cx, FinishError};
use crate::wire::FieldResult;

/// Fixed-width values and their validity.
#[derive(Debug)]
pub(crate) struct Prim<T> {
    pub(crate) values: Vec<T>,
    pub(crate) nulls: NullBufferBuilder,
    pub(crate) spare: Recycler<T>,
}

impl<T: Default + Copy + arrow_buffer::ArrowNativeType + std::panic::RefUnwindSafe> Prim<T> {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        Prim {
            values: Vec::with_capacity(rows),
            nulls: NullBufferBuilder::new(rows),
            spare: Recycler::new(),
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, v: T) {
        self.values.push(v);
        self.nulls.append_non_null();
    }

    #[inline]
    pub(crate) fn push_null(&mut self) {
        self.values.push(T::default());
        self.nulls.append_null();
    }

    /// Pushes a decoded value, or applies the policies to its error.
    #[inline]
    pub(crate) fn push_or(
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
    pub(crate) fn push_temporal(
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
                return r.map(drop).map_err(|error| {
                    FieldError::Refused(Box::new(Refusal {
                        error,
                        policy: "the infinity policy is error (--infinity extreme writes the \
                                 type's extreme value, as PostgreSQL stores it; --infinity null, \
                                 NULL)",
                    }))
                });
            }
        }
        Ok(())
    }

    pub(crate) fn finish<A>(&mut self, rows_hint: usize) -> PrimitiveArray<A>
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
    pub(crate) offsets: Vec<i32>,
    pub(crate) values: Vec<u8>,
    pub(crate) nulls: NullBufferBuilder,
    pub(crate) spare_offsets: Recycler<i32>,
    pub(crate) spare_values: Recycler<u8>,
}

impl Var {
    pub(crate) fn with_capacity(rows: usize, bytes: usize) -> Self {
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

    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    #[inline]
    pub(crate) fn end(&mut self) -> FieldResult<()> {
        let end = i32::try_from(self.values.len())
            .map_err(|_| FieldError::new("column data exceeds 2 GiB in one batch"))?;
        self.offsets.push(end);
        self.nulls.append_non_null();
        Ok(())
    }

    #[inline]
    pub(crate) fn push(&mut self, b: &[u8]) -> FieldResult<()> {
        self.values.extend_from_slice(b);
        self.end()
    }

    /// Appends `b` unless the batch's data would pass 2 GiB; false (nothing changed) then.
    ///
    /// `rest` is the input from `b`'s first byte on: a short value is copied as a whole
    /// 16- or 64-byte block from it (see [`Var::push_block`]).
    #[inline(always)]
    pub(crate) fn try_push(&mut self, b: &[u8], rest: &[u8]) -> bool {
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
    pub(crate) fn push_long(&mut self, b: &[u8]) {
        self.values.extend_from_slice(b);
    }

    /// Appends the first `len` bytes of `block` by copying all `N` and cutting the rest off
    /// again: a fixed-size copy the compiler turns into a few vector moves, where
    /// `extend_from_slice(&b[..len])` calls `memcpy` for every short value.
    #[inline(always)]
    pub(crate) fn push_block<const N: usize>(&mut self, block: &[u8; N], len: usize) {
        let end = self.values.len() + len;
        self.values.extend_from_slice(block);
        self.values.truncate(end);
    }

    #[inline]
    pub(crate) fn push_null(&mut self) {
        let end = *self.offsets.last().unwrap_or(&0);
        self.offsets.push(end);
        self.nulls.append_null();
    }

    pub(crate) fn take(&mut self) -> (OffsetBuffer<i32>, Buffer, Option<NullBuffer>) {
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

    pub(crate) fn finish_binary(&mut self) -> Result<ArrayRef, FinishError> {
        let (offsets, values, nulls) = self.take();
        Ok(Arc::new(BinaryArray::try_new(offsets, values, nulls)?))
    }

    /// Builds a text array in `layout`, validating UTF-8: invalid values are replaced or named
    /// as the invalid-UTF-8 policy says.
    pub(crate) fn finish_text(
        &mut self,
        layout: StrLayout,
        cx: &mut Cx<'_>,
    ) -> Result<ArrayRef, FinishError> {
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
                                     --invalid-utf8 replace writes U+FFFD for it, \
                                     --invalid-utf8 binary keeps the bytes)",
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
pub(crate) fn ascii_strings(
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
pub(crate) fn all_ascii(b: &[u8]) -> bool {
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
pub(crate) fn var_offsets(buffer: Buffer, len: usize) -> OffsetBuffer<i32> {
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
pub(crate) fn finish_nulls(nulls: &mut NullBufferBuilder, rows: usize) -> Option<NullBuffer> {
    std::mem::replace(nulls, NullBufferBuilder::new(rows)).finish()
}
