//! Typed column decoders: one per result column, chosen once from its [`TypeMapping`], nested
//! for arrays, composites, ranges and maps.
//!
//! Each decoder appends one field's bytes (or a NULL) at a time into plain vectors that become
//! Arrow buffers without copying when the batch is flushed (`buffers`). The wire formats are
//! parsed by the functions of `wire`, nested values by the decoders of `nested`.
//!
//! Over ~600 lines because of its tests of the policies; the dispatch itself is one `match` per
//! operation over [`Column`], kept together so that every variant is handled in each.

use std::sync::Arc;

use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, IntervalMonthDayNanoType, Time64MicrosecondType, TimestampMicrosecondType,
    UInt32Type,
};
use arrow_array::{ArrayRef, BooleanArray, FixedSizeBinaryArray};
use arrow_buffer::{BooleanBufferBuilder, IntervalMonthDayNano, NullBufferBuilder, i256};
use arrow_schema::ArrowError;

use crate::error::{FieldError, Refusal, Special};
use crate::mapping::{
    DATE_INFINITY, ListShape, StrLayout, TIMESTAMP_INFINITY, TypeMapping, range_fields,
    struct_fields,
};
use crate::numeric::Numeric;
use crate::policy::{LossKind, Losses, Overflow, Policies, SpecialValues};
use crate::recycle::Recycler;
use crate::types::ColumnKind;

use crate::buffers::{Prim, Var};
use crate::geo::WkbCol;
use crate::nested::{
    EnumCol, HstoreCol, ListCol, RangeCol, SparseVecCol, StructCol, VectorCol, VectorValues,
};
use crate::wire::*;

/// The policies of an export and the loss counts of the column being decoded.
#[derive(Debug)]
pub(crate) struct Cx<'a> {
    pub(crate) policies: &'a Policies,
    pub(crate) losses: &'a mut Losses,
}

impl Cx<'_> {
    /// Applies the policies to a value that failed: `Ok(Some(v))` to write `v`, `Ok(None)` to
    /// write NULL, or the error back.
    pub(crate) fn apply<T>(
        &mut self,
        e: FieldError,
        clamp: impl FnOnce(Special) -> Option<T>,
    ) -> FieldResult<Option<T>> {
        let Some(special) = e.special() else {
            return Err(e);
        };
        if special == Special::Overflow {
            return match self.policies.numeric_overflow {
                Overflow::Error => Err(refused(
                    e,
                    "the numeric overflow policy is error (--numeric-overflow null writes NULL; \
                     a wider --numeric decimal or --numeric string keeps the value)",
                )),
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
            // Under `text` the column is read as text: only a value nested where the plan
            // could not see it reaches here.
            SpecialValues::Error | SpecialValues::Text => Err(refused(
                e,
                "the out-of-range policy is error (--out-of-range text exports the column as \
                 the server's exact text, null writes NULL, clamp the nearest value Arrow \
                 holds)",
            )),
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

/// `e`, refused by a policy that `policy` names with the options that would accept it.
#[cold]
fn refused(error: FieldError, policy: &'static str) -> FieldError {
    FieldError::Refused(Box::new(Refusal { error, policy }))
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
    Timetz,
    TimetzArray,
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
    SparseVec(Box<SparseVecCol>),
    Wkb(Box<WkbCol>),
}

impl Column {
    /// A decoder for `plan`, sized for `rows` rows.
    pub(crate) fn new(plan: &TypeMapping, rows: usize) -> Column {
        let var = || Var::with_capacity(rows, rows * 16);
        let kind = match plan {
            TypeMapping::Scalar { kind, layout } => (*kind, *layout),
            TypeMapping::List {
                element,
                dims,
                shape,
            } => {
                return Column::List(Box::new(ListCol::new(element, *dims, *shape, false, rows)));
            }
            TypeMapping::Multirange(range) => {
                return Column::List(Box::new(ListCol::new(
                    range,
                    1,
                    ListShape::Declared,
                    true,
                    rows,
                )));
            }
            TypeMapping::Struct(fields) => {
                return Column::Struct(Box::new(StructCol {
                    children: fields.iter().map(|f| Column::new(&f.plan, rows)).collect(),
                    fields: struct_fields(fields),
                    nulls: NullBufferBuilder::new(rows),
                    len: 0,
                }));
            }
            TypeMapping::Enum(labels) => return Column::Enum(Box::new(EnumCol::new(labels, rows))),
            TypeMapping::Range(sub) => {
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
            TypeMapping::Hstore => {
                return Column::Hstore(Box::new(HstoreCol {
                    offsets: vec![0],
                    keys: var(),
                    values: var(),
                    nulls: NullBufferBuilder::new(rows),
                }));
            }
            TypeMapping::SparseVec => {
                return Column::SparseVec(Box::new(SparseVecCol::new(rows)));
            }
            TypeMapping::Vector { element, dim } => {
                return Column::Vector(Box::new(VectorCol {
                    dim: *dim,
                    values: VectorValues::new(*element),
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
            (ColumnKind::Timetz, layout) => Column::Str(var(), StrWire::Timetz, layout),
            (ColumnKind::TimetzArray, layout) => Column::Str(var(), StrWire::TimetzArray, layout),
            (ColumnKind::Bytea, _) => Column::Bytes(var()),
            (ColumnKind::Wkb(geo), _) => Column::Wkb(Box::new(WkbCol::new(var(), geo))),
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
        // The same wire parsers as `push` (see `wire` for their cost here); any error (a bad
        // size, a special value) declines the value for `push` to decide.
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
            | Column::Vector(_)
            | Column::SparseVec(_)
            | Column::Wkb(_) => return false,
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
                    StrWire::Timetz => timetz_from_sql(b, &mut v.values)?,
                    StrWire::TimetzArray => timetz_array_from_sql(b, &mut v.values)?,
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
            Column::SparseVec(v) => v.push(b)?,
            Column::Wkb(v) => v.push(b)?,
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
            Column::SparseVec(v) => v.push_null(),
            Column::Wkb(v) => v.push_null(),
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
            Column::SparseVec(v) => v.finish()?,
            Column::Wkb(v) => v.finish()?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Infinity;
    use arrow_array::Array;

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
        let plan = TypeMapping::builtin(crate::types::oid::DATE, -1, &clamp).unwrap();
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
            let plan = TypeMapping::builtin(crate::types::oid::TIMESTAMPTZ, -1, &policies).unwrap();
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
        let plan = TypeMapping::builtin(crate::types::oid::TIME, -1, &null).unwrap();
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
