//! Nested values in the layouts of PostgreSQL's `*_recv` functions: arrays, composites,
//! ranges, multiranges, `hstore` and pgvector `vector`, each written from what its
//! [`Encoder`] (parsed by [`Shape::encoder`](crate::shape::Shape::encoder)) says the input
//! holds: which list levels, which struct fields, which scalar input.

use arrow_array::cast::AsArray;
use arrow_array::types::{ArrowPrimitiveType, Float16Type};
use arrow_array::{Array, BooleanArray};

use crate::error::{
    EncodeError, ErrorKind, Holder, Inexact, NestedFault, OutOfRange, Step, TargetKind,
};
use crate::read::{Floats, Getter, Strs, changed, null_at};
use crate::scalar::Writer;
use crate::shape::{AttrEncoder, Encoder, ListKind, MAX_DIMS, RangeEncoder, SparseEncoder};
use crate::temporal::WriteCx;

/// Range flags (`rangetypes.h`).
const RANGE_EMPTY: u8 = 0x01;
const RANGE_LB_INC: u8 = 0x02;
const RANGE_UB_INC: u8 = 0x04;
const RANGE_LB_INF: u8 = 0x08;
const RANGE_UB_INF: u8 = 0x10;

impl Encoder {
    /// The writer of `array`'s values, an array of the type this encoder was parsed from.
    ///
    /// # Errors
    /// `array` (or a child of it) is of another type.
    pub(crate) fn writer<'a>(
        &'a self,
        array: &'a dyn Array,
        cx: &'a WriteCx,
    ) -> Result<Writer<'a>, EncodeError> {
        match self {
            // Never called: `null_at` is true at every row of a null array.
            Encoder::Null => Ok(Box::new(|_, _| {
                Err(EncodeError::from(ErrorKind::Unsupported {
                    input: arrow_schema::DataType::Null,
                    target: TargetKind::Scalar,
                }))
            })),
            Encoder::Scalar(scalar) => scalar.writer(array, cx),
            Encoder::Array {
                element_oid,
                outer,
                inner,
                element,
            } => array_writer(*element_oid, *outer, inner, element, array, cx),
            Encoder::Composite(attrs) => composite_writer(attrs, array, cx),
            Encoder::Range(range) => range_writer(range, array, cx),
            Encoder::Multirange { list, range } => {
                let list = ListLevel::new(*list, array)?;
                let ranges = list.values;
                let write = range_writer(range, ranges, cx)?;
                Ok(Box::new(move |i, out| {
                    let (start, end) = (list.range)(i);
                    out.extend_from_slice(&count(end - start)?.to_be_bytes());
                    for j in start..end {
                        if ranges.is_null(j) {
                            return Err(EncodeError::from(NestedFault::Null(Holder::Multirange))
                                .at(Step::Range(j - start + 1)));
                        }
                        field(out, |out| write(j, out))
                            .map_err(|e| e.at(Step::Range(j - start + 1)))?;
                    }
                    Ok(())
                }))
            }
            Encoder::Hstore { keys, values } => hstore_writer(keys, values, array),
            Encoder::Vector { list, floats, half } => vector_writer(*list, *floats, *half, array),
            Encoder::SparseVec(sparse) => sparse_writer(sparse, array),
        }
    }
}

/// Writes a value behind its i32 length, as every nested value and field is sent.
pub(crate) fn field(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out)?;
    let size = out.len() - at - 4;
    let len = i32::try_from(size).map_err(|_| OutOfRange::Size(size))?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn count(n: usize) -> Result<i32, EncodeError> {
    i32::try_from(n).map_err(|_| OutOfRange::Items(n).into())
}

/// The item range (start, end) of a list's row.
type Range<'a> = Box<dyn Fn(usize) -> (usize, usize) + 'a>;

/// One list level: the item range of each of its rows, and its items.
struct ListLevel<'a> {
    array: &'a dyn Array,
    range: Range<'a>,
    values: &'a dyn Array,
}

impl<'a> ListLevel<'a> {
    fn new(kind: ListKind, array: &'a dyn Array) -> Result<ListLevel<'a>, EncodeError> {
        let (range, values): (Range<'a>, &'a dyn Array) = match kind {
            ListKind::List => {
                let l = array.as_list_opt::<i32>().ok_or_else(|| changed(array))?;
                let o = l.value_offsets();
                (
                    Box::new(move |i| (o[i] as usize, o[i + 1] as usize)),
                    l.values().as_ref(),
                )
            }
            ListKind::LargeList => {
                let l = array.as_list_opt::<i64>().ok_or_else(|| changed(array))?;
                let o = l.value_offsets();
                (
                    Box::new(move |i| (o[i] as usize, o[i + 1] as usize)),
                    l.values().as_ref(),
                )
            }
            ListKind::FixedSizeList => {
                let l = array
                    .as_fixed_size_list_opt()
                    .ok_or_else(|| changed(array))?;
                (
                    Box::new(move |i| {
                        let start = l.value_offset_at(i);
                        (start, start + l.value_length() as usize)
                    }),
                    l.values().as_ref(),
                )
            }
        };
        Ok(ListLevel {
            array,
            range,
            values,
        })
    }
}

/// `array_recv`'s layout: i32 ndim, i32 has-nulls flag, u32 element OID, ndim x (i32 length,
/// i32 lower bound 1), then the elements in row-major order, each as i32 length (-1 for NULL)
/// and its bytes. Nested lists are the dimensions; they must be rectangular and hold no NULL
/// sub-list, as PostgreSQL's arrays do.
fn array_writer<'a>(
    element_oid: u32,
    outer: ListKind,
    inner: &[ListKind],
    element: &'a Encoder,
    array: &'a dyn Array,
    cx: &'a WriteCx,
) -> Result<Writer<'a>, EncodeError> {
    let depth = 1 + inner.len();
    if depth > MAX_DIMS {
        return Err(ErrorKind::TooManyDimensions(array.data_type().clone()).into());
    }
    let outer = ListLevel::new(outer, array)?;
    let mut items = outer.values;
    let mut levels = Vec::with_capacity(inner.len());
    for &kind in inner {
        let level = ListLevel::new(kind, items)?;
        items = level.values;
        levels.push(level);
    }
    let write = element.writer(items, cx)?;
    Ok(Box::new(move |i, out| {
        let mut dims = [0usize; MAX_DIMS];
        let (mut start, mut end) = (outer.range)(i);
        dims[0] = end - start;
        for (k, level) in (1..).zip(&levels) {
            // The sub-lists start..end of this level: each non-NULL, all of one length.
            let mut length = None;
            let (mut next_start, mut next_end) = (0, 0);
            for j in start..end {
                if level.array.is_null(j) {
                    return Err(NestedFault::NullSubArray { depth: k + 1 }.into());
                }
                let (a, b) = (level.range)(j);
                if j == start {
                    next_start = a;
                }
                next_end = b;
                match length {
                    None => length = Some(b - a),
                    Some(l) if l != b - a => {
                        return Err(NestedFault::Ragged {
                            depth: k + 1,
                            first: l,
                            other: b - a,
                        }
                        .into());
                    }
                    Some(_) => {}
                }
            }
            dims[k] = length.unwrap_or(0);
            (start, end) = (next_start, next_end);
        }
        let dims = &dims[..depth];
        if dims.contains(&0) {
            // An empty array has no dimensions.
            out.extend_from_slice(&0i32.to_be_bytes());
            out.extend_from_slice(&0i32.to_be_bytes());
            out.extend_from_slice(&element_oid.to_be_bytes());
            return Ok(());
        }
        let has_nulls = (start..end).any(|j| null_at(items, j));
        out.extend_from_slice(&(depth as i32).to_be_bytes());
        out.extend_from_slice(&i32::from(has_nulls).to_be_bytes());
        out.extend_from_slice(&element_oid.to_be_bytes());
        for &d in dims {
            out.extend_from_slice(&count(d)?.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
        }
        for j in start..end {
            if null_at(items, j) {
                out.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
            field(out, |out| write(j, out)).map_err(|e| e.at(Step::Element(j - start + 1)))?;
        }
        Ok(())
    }))
}

/// `record_recv`'s layout: i32 attribute count, then per attribute its type OID, i32 length
/// (-1 for NULL) and bytes. Struct fields go into the attributes of the same name; an attribute
/// the struct lacks is NULL.
fn composite_writer<'a>(
    attrs: &'a [AttrEncoder],
    array: &'a dyn Array,
    cx: &'a WriteCx,
) -> Result<Writer<'a>, EncodeError> {
    let s = array.as_struct_opt().ok_or_else(|| changed(array))?;
    // Each attribute, with its struct field's values and writer when the struct has one.
    type Part<'a> = (&'a AttrEncoder, Option<(&'a dyn Array, Writer<'a>)>);
    let parts = attrs
        .iter()
        .map(|a| {
            let Some((index, encoder)) = &a.field else {
                return Ok((a, None));
            };
            let child = s.columns().get(*index).ok_or_else(|| changed(array))?;
            Ok((
                a,
                Some((child.as_ref(), encoder.writer(child.as_ref(), cx)?)),
            ))
        })
        .collect::<Result<Vec<Part<'a>>, EncodeError>>()?;
    let n = attrs.len() as i32;
    Ok(Box::new(move |i, out| {
        out.extend_from_slice(&n.to_be_bytes());
        for (a, part) in &parts {
            out.extend_from_slice(&a.oid.to_be_bytes());
            match part {
                Some((child, write)) if !null_at(*child, i) => field(out, |out| write(i, out))
                    .map_err(|e| e.at(Step::Attribute(a.name.clone())))?,
                _ => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        Ok(())
    }))
}

/// `range_recv`'s layout: u8 flags, then each bounded side as i32 length and bytes. A NULL
/// bound is unbounded (as pgarrow exports it); `empty` wins over everything else.
fn range_writer<'a>(
    range: &'a RangeEncoder,
    array: &'a dyn Array,
    cx: &'a WriteCx,
) -> Result<Writer<'a>, EncodeError> {
    let column = struct_columns(array)?;
    let flag = |k: usize| {
        let c = column(k)?;
        c.as_boolean_opt().ok_or_else(|| changed(c))
    };
    let (lower, upper) = (column(range.lower.0)?, column(range.upper.0)?);
    let (lower_inc, upper_inc, empty) = (
        flag(range.lower_inclusive)?,
        flag(range.upper_inclusive)?,
        flag(range.empty)?,
    );
    let write_lower = range.lower.1.writer(lower, cx)?;
    let write_upper = range.upper.1.writer(upper, cx)?;
    Ok(Box::new(move |i, out| {
        let set = |a: &BooleanArray| a.is_valid(i) && a.value(i);
        if set(empty) {
            out.push(RANGE_EMPTY);
            return Ok(());
        }
        let mut flags = 0;
        match lower.is_null(i) {
            true => flags |= RANGE_LB_INF,
            false if set(lower_inc) => flags |= RANGE_LB_INC,
            false => {}
        }
        match upper.is_null(i) {
            true => flags |= RANGE_UB_INF,
            false if set(upper_inc) => flags |= RANGE_UB_INC,
            false => {}
        }
        out.push(flags);
        if !lower.is_null(i) {
            field(out, |out| write_lower(i, out)).map_err(|e| e.at(Step::LowerBound))?;
        }
        if !upper.is_null(i) {
            field(out, |out| write_upper(i, out)).map_err(|e| e.at(Step::UpperBound))?;
        }
        Ok(())
    }))
}

/// `hstore_recv`'s layout: i32 pair count, then each key (i32 length and bytes) and value
/// (i32 length, -1 for NULL, and bytes).
fn hstore_writer<'a>(
    keys: &Strs,
    values: &Strs,
    array: &'a dyn Array,
) -> Result<Writer<'a>, EncodeError> {
    let map = array.as_map_opt().ok_or_else(|| changed(array))?;
    let (key_array, value_array) = (map.keys().as_ref(), map.values().as_ref());
    let key: Getter<'a, &'a str> = keys.getter(key_array)?;
    let value: Getter<'a, &'a str> = values.getter(value_array)?;
    let offsets = map.value_offsets();
    Ok(Box::new(move |i, out| {
        let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
        // hstore keeps one value per key (the first): a repeated key would lose an entry.
        if end - start > 1 {
            let mut seen = std::collections::HashSet::new();
            for j in start..end {
                if !key_array.is_null(j) && !seen.insert(key(j)) {
                    return Err(NestedFault::DuplicateKey {
                        key: key(j).to_owned(),
                        into: Holder::Hstore,
                    }
                    .into());
                }
            }
        }
        out.extend_from_slice(&count(end - start)?.to_be_bytes());
        for j in start..end {
            if key_array.is_null(j) {
                return Err(NestedFault::NullKey.into());
            }
            field(out, |out| {
                out.extend_from_slice(key(j).as_bytes());
                Ok(())
            })?;
            if value_array.is_null(j) {
                out.extend_from_slice(&(-1i32).to_be_bytes());
            } else {
                field(out, |out| {
                    out.extend_from_slice(value(j).as_bytes());
                    Ok(())
                })?;
            }
        }
        Ok(())
    }))
}

/// pgvector's `vector_recv` layout: i16 dimensions, i16 unused (0), then each float4; or,
/// for `halfvec` (`half`), each IEEE half as its 16 bits. A value must be exact in the
/// element's type (float8 into float4, float4 into half).
fn vector_writer(
    list: ListKind,
    floats: Floats,
    half: bool,
    array: &dyn Array,
) -> Result<Writer<'_>, EncodeError> {
    let list = ListLevel::new(list, array)?;
    let values = list.values;
    let get = floats.getter(values)?;
    let holder = if half {
        Holder::HalfVec
    } else {
        Holder::Vector
    };
    Ok(Box::new(move |i, out| {
        let (start, end) = (list.range)(i);
        let dims =
            i16::try_from(end - start).map_err(|_| OutOfRange::VectorDimensions(end - start))?;
        out.extend_from_slice(&dims.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        for j in start..end {
            let at = Step::Element(j - start + 1);
            if values.is_null(j) {
                return Err(EncodeError::from(NestedFault::Null(holder)).at(at));
            }
            let v = get(j);
            if half {
                out.extend_from_slice(&half_bits(v).map_err(|e| e.at(at))?.to_be_bytes());
            } else {
                out.extend_from_slice(&float4(v).map_err(|e| e.at(at))?.to_bits().to_be_bytes());
            }
        }
        Ok(())
    }))
}

/// `v` as float4, when float4 holds it exactly (NaN passes, for the server to refuse).
fn float4(v: f64) -> Result<f32, EncodeError> {
    let f = v as f32;
    if f64::from(f) != v && !v.is_nan() {
        return Err(Inexact::Float4 {
            value: v,
            rounded: f,
        }
        .into());
    }
    Ok(f)
}

/// The bits of `v` as an IEEE half, when a half holds it exactly (NaN passes, for the server to
/// refuse).
fn half_bits(v: f64) -> Result<u16, EncodeError> {
    let h = F16::from_f64(v);
    if h.to_f64() != v && !v.is_nan() {
        return Err(Inexact::Half {
            value: v,
            rounded: h.to_f64(),
        }
        .into());
    }
    Ok(h.to_bits())
}

/// Arrow's half-precision float (the `half` crate's, which arrow does not re-export).
type F16 = <Float16Type as ArrowPrimitiveType>::Native;

/// The fields of a Struct `array`, by position (a missing one is a changed batch type).
fn struct_columns<'a>(
    array: &'a dyn Array,
) -> Result<impl Fn(usize) -> Result<&'a dyn Array, EncodeError> + 'a, EncodeError> {
    let s = array.as_struct_opt().ok_or_else(|| changed(array))?;
    Ok(move |k: usize| {
        s.columns()
            .get(k)
            .map(|c| c.as_ref())
            .ok_or_else(|| changed(array))
    })
}

/// pgvector's `sparsevec_recv` layout: i32 dimension, i32 count, i32 unused (0), then the
/// 0-based indices as i32 and the values as float4. The indices must increase and stay below
/// the dimension; there must be as many values as indices.
fn sparse_writer<'a>(
    sparse: &'a SparseEncoder,
    array: &'a dyn Array,
) -> Result<Writer<'a>, EncodeError> {
    let column = struct_columns(array)?;
    let dims = column(sparse.dim.0)?;
    let get_dim = sparse.dim.1.getter(dims)?;
    let indices = ListLevel::new(sparse.indices.1, column(sparse.indices.0)?)?;
    let get_index = sparse.indices.2.getter(indices.values)?;
    let values = ListLevel::new(sparse.values.1, column(sparse.values.0)?)?;
    let get_value = sparse.values.2.getter(values.values)?;
    let null = |step: Step| EncodeError::from(NestedFault::Null(Holder::SparseVec)).at(step);
    Ok(Box::new(move |i, out| {
        if dims.is_null(i) {
            return Err(null(Step::Field("dim".into())));
        }
        let dim = get_dim(i);
        let dim32 = i32::try_from(dim)
            .ok()
            .filter(|d| *d > 0)
            .ok_or(OutOfRange::SparseDimension(dim))?;
        let (istart, iend) = if indices.array.is_null(i) {
            (0, 0)
        } else {
            (indices.range)(i)
        };
        let (vstart, vend) = if values.array.is_null(i) {
            (0, 0)
        } else {
            (values.range)(i)
        };
        if iend - istart != vend - vstart {
            return Err(NestedFault::SparseLengths {
                indices: iend - istart,
                values: vend - vstart,
            }
            .into());
        }
        out.extend_from_slice(&dim32.to_be_bytes());
        out.extend_from_slice(&count(iend - istart)?.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        let mut previous = None;
        for j in istart..iend {
            let at = Step::Element(j - istart + 1);
            if indices.values.is_null(j) {
                return Err(null(at));
            }
            let index = get_index(j);
            if index < 0 || index >= dim || previous.is_some_and(|p| index <= p) {
                return Err(EncodeError::from(NestedFault::SparseIndex {
                    index,
                    previous,
                    dim,
                })
                .at(at));
            }
            previous = Some(index);
            out.extend_from_slice(&(index as i32).to_be_bytes());
        }
        for j in vstart..vend {
            let at = Step::Element(j - vstart + 1);
            if values.values.is_null(j) {
                return Err(null(at));
            }
            let v = float4(get_value(j)).map_err(|e| e.at(at))?;
            out.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        Ok(())
    }))
}
