//! The decoders of nested values: arrays and multiranges (Lists), composites (Structs),
//! enums (Dictionaries), ranges, `hstore` (Maps) and pgvector `vector`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::types::{ArrowPrimitiveType, Float16Type, Int16Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, DictionaryArray, FixedSizeListArray, Float16Array, Float32Array,
    Int32Array, ListArray, MapArray, StringArray, StructArray,
};
use arrow_buffer::{BooleanBufferBuilder, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, FieldRef, Fields};

use crate::error::FieldError;
use crate::mapping::{
    ListShape, StrLayout, TypeMapping, VectorElement, hstore_entries, sparsevec_fields,
};
use crate::policy::{ArrayBounds, LossKind};

use crate::buffers::{Prim, Var};
use crate::column::{Column, Cx, FinishError};
use crate::wire::{FieldResult, Reader};

/// Arrays (`dims` nested Lists) and multiranges (a List of ranges).
///
/// Array layout (`array_send`): i32 ndim (0 for an empty array), i32 flags (1: has NULLs),
/// u32 element OID, ndim x (i32 length, i32 lower bound), then the elements in row-major order,
/// each an i32 length (-1 for NULL) and its bytes. Multirange layout (`multirange_send`): i32
/// range count, then each range as i32 length and its bytes.
#[derive(Debug)]
pub(crate) struct ListCol {
    /// Offsets of each nesting level, outermost (one per row) first.
    pub(crate) levels: Vec<Vec<i32>>,
    pub(crate) nulls: NullBufferBuilder,
    pub(crate) child: Column,
    /// Where the number of levels comes from (what a value of other dimensions means).
    pub(crate) shape: ListShape,
    /// The innermost level's field (with the element's extension type).
    pub(crate) item: Arc<Field>,
    pub(crate) multirange: bool,
}

impl ListCol {
    pub(crate) fn new(
        element: &TypeMapping,
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

    pub(crate) fn push(&mut self, b: &[u8], cx: &mut Cx<'_>) -> FieldResult<()> {
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
                 --array-shape text exports the arrays as the server's exact text, \
                 --array-shape flatten as 1-D lists of their elements"
            )));
        }
        let mut lengths = [0usize; 6];
        let mut total: usize = 1;
        let mut lower_bound_dropped = false;
        for (dim, len) in lengths.iter_mut().take(ndim).enumerate() {
            let n = r.i32()?;
            let lower = r.i32()?;
            if n < 0 {
                return Err(FieldError::new(format!("array dimension of length {n}")));
            }
            if lower != 1 && cx.policies.array_bounds == ArrayBounds::Error {
                return Err(FieldError::new(format!(
                    "array has lower bound {lower} in dimension {} (an Arrow list has no \
                     place for it); --array-shape text exports the arrays as the server's exact \
                     text, --array-bounds drop keeps the elements and drops the bounds (counted)",
                    dim + 1
                )));
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

    pub(crate) fn push_null(&mut self) {
        let last = *self.levels[0].last().unwrap_or(&0);
        self.levels[0].push(last);
        self.nulls.append_null();
    }

    pub(crate) fn finish(&mut self, rows: usize, cx: &mut Cx<'_>) -> Result<ArrayRef, FinishError> {
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

pub(crate) fn push_offset(level: &mut Vec<i32>, n: usize) -> FieldResult<()> {
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
    pub(crate) children: Vec<Column>,
    pub(crate) fields: Fields,
    pub(crate) nulls: NullBufferBuilder,
    /// Rows buffered: a composite without live attributes has no child to count them.
    pub(crate) len: usize,
}

impl StructCol {
    pub(crate) fn push(&mut self, b: &[u8], cx: &mut Cx<'_>) -> FieldResult<()> {
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

    pub(crate) fn push_null(&mut self) {
        for c in &mut self.children {
            c.push_null();
        }
        self.nulls.append_null();
        self.len += 1;
    }

    pub(crate) fn finish(&mut self, rows: usize, cx: &mut Cx<'_>) -> Result<ArrayRef, FinishError> {
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
    pub(crate) keys: Prim<i16>,
    pub(crate) index: HashMap<Box<[u8]>, i16>,
    pub(crate) labels: ArrayRef,
}

impl EnumCol {
    pub(crate) fn new(labels: &[String], rows: usize) -> Self {
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

    pub(crate) fn push(&mut self, b: &[u8]) -> FieldResult<()> {
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

    pub(crate) fn finish(&mut self, rows: usize) -> Result<ArrayRef, FinishError> {
        let keys = self.keys.finish::<Int16Type>(rows);
        Ok(Arc::new(DictionaryArray::<Int16Type>::try_new(
            keys,
            self.labels.clone(),
        )?))
    }
}

pub(crate) const RANGE_EMPTY: u8 = 0x01;
pub(crate) const RANGE_LB_INC: u8 = 0x02;
pub(crate) const RANGE_UB_INC: u8 = 0x04;
pub(crate) const RANGE_LB_INF: u8 = 0x08;
pub(crate) const RANGE_UB_INF: u8 = 0x10;

/// Ranges as Struct{lower, upper, lower_inclusive, upper_inclusive, empty}. An unbounded side
/// is a NULL bound; an `infinity` bound is a value (and meets the special-value policy).
/// Layout (`range_send`): u8 flags (0x01 empty, 0x02/0x04 lower/upper inclusive, 0x08/0x10
/// lower/upper unbounded), then each bounded bound as an i32 length and its bytes.
#[derive(Debug)]
pub(crate) struct RangeCol {
    pub(crate) lower: Column,
    pub(crate) upper: Column,
    pub(crate) lower_inclusive: BooleanBufferBuilder,
    pub(crate) upper_inclusive: BooleanBufferBuilder,
    pub(crate) empty: BooleanBufferBuilder,
    pub(crate) nulls: NullBufferBuilder,
    pub(crate) fields: Fields,
}

impl RangeCol {
    pub(crate) fn push(&mut self, b: &[u8], cx: &mut Cx<'_>) -> FieldResult<()> {
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

    pub(crate) fn push_null(&mut self) {
        self.lower.push_null();
        self.upper.push_null();
        self.lower_inclusive.append(false);
        self.upper_inclusive.append(false);
        self.empty.append(false);
        self.nulls.append_null();
    }

    pub(crate) fn finish(&mut self, rows: usize, cx: &mut Cx<'_>) -> Result<ArrayRef, FinishError> {
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
    pub(crate) offsets: Vec<i32>,
    pub(crate) keys: Var,
    pub(crate) values: Var,
    pub(crate) nulls: NullBufferBuilder,
}

impl HstoreCol {
    pub(crate) fn push(&mut self, b: &[u8]) -> FieldResult<()> {
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

    pub(crate) fn push_null(&mut self) {
        let last = *self.offsets.last().unwrap_or(&0);
        self.offsets.push(last);
        self.nulls.append_null();
    }

    pub(crate) fn finish(&mut self, cx: &mut Cx<'_>) -> Result<ArrayRef, FinishError> {
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

/// pgvector `vector` and `halfvec`. Layout (`vector_send`, `halfvec_send`): i16 dimension,
/// i16 unused, then that many float4 (`vector`) or IEEE half (`halfvec`, sent as its 16 bits)
/// values.
#[derive(Debug)]
pub(crate) struct VectorCol {
    pub(crate) dim: Option<i32>,
    pub(crate) values: VectorValues,
    pub(crate) offsets: Vec<i32>,
    pub(crate) nulls: NullBufferBuilder,
}

/// Arrow's half-precision float (the `half` crate's, which arrow does not re-export).
type F16 = <Float16Type as ArrowPrimitiveType>::Native;

/// The elements of a [`VectorCol`], as Arrow will hold them.
#[derive(Debug)]
pub(crate) enum VectorValues {
    Float32(Vec<f32>),
    Float16(Vec<F16>),
}

impl VectorValues {
    pub(crate) fn new(element: VectorElement) -> VectorValues {
        match element {
            VectorElement::Float32 => VectorValues::Float32(Vec::new()),
            VectorElement::Float16 => VectorValues::Float16(Vec::new()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            VectorValues::Float32(_) => "vector",
            VectorValues::Float16(_) => "halfvec",
        }
    }
}

impl VectorCol {
    pub(crate) fn push(&mut self, b: &[u8]) -> FieldResult<()> {
        let name = self.values.name();
        let mut r = Reader::new(b, name);
        let n = r.i16()?;
        let _unused = r.i16()?;
        let width = match self.values {
            VectorValues::Float32(_) => 4,
            VectorValues::Float16(_) => 2,
        };
        if n < 0 || r.remaining() != width * n as usize {
            return Err(FieldError::new(format!(
                "{name} of dimension {n} has {} bytes of values",
                r.remaining()
            )));
        }
        if let Some(dim) = self.dim
            && i32::from(n) != dim
        {
            return Err(FieldError::new(format!(
                "{name} has dimension {n}, the column {dim}"
            )));
        }
        let bytes = r.take(width * n as usize)?;
        match &mut self.values {
            VectorValues::Float32(values) => values.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])),
            ),
            VectorValues::Float16(values) => values.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| F16::from_bits(u16::from_be_bytes([c[0], c[1]]))),
            ),
        }
        if self.dim.is_none() {
            push_offset(&mut self.offsets, n as usize)?;
        }
        self.nulls.append_non_null();
        Ok(())
    }

    pub(crate) fn push_null(&mut self) {
        match self.dim {
            Some(dim) => match &mut self.values {
                VectorValues::Float32(v) => v.extend(std::iter::repeat_n(0.0, dim as usize)),
                VectorValues::Float16(v) => v.extend(std::iter::repeat_n(F16::ZERO, dim as usize)),
            },
            None => {
                let last = *self.offsets.last().unwrap_or(&0);
                self.offsets.push(last);
            }
        }
        self.nulls.append_null();
    }

    pub(crate) fn finish(&mut self) -> Result<ArrayRef, FinishError> {
        let (values, element): (ArrayRef, _) = match &mut self.values {
            VectorValues::Float32(v) => (
                Arc::new(Float32Array::from(std::mem::take(v))),
                DataType::Float32,
            ),
            VectorValues::Float16(v) => (
                Arc::new(Float16Array::from(std::mem::take(v))),
                DataType::Float16,
            ),
        };
        let item = Arc::new(Field::new("item", element, true));
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

/// pgvector `sparsevec`. Layout (`sparsevec_send`): i32 dimension, i32 count of non-zero
/// elements, i32 unused, then that many i32 indices (0-based, increasing) and as many float4
/// values.
#[derive(Debug)]
pub(crate) struct SparseVecCol {
    pub(crate) dims: Vec<i32>,
    pub(crate) offsets: Vec<i32>,
    pub(crate) indices: Vec<i32>,
    pub(crate) values: Vec<f32>,
    pub(crate) nulls: NullBufferBuilder,
}

impl SparseVecCol {
    pub(crate) fn new(rows: usize) -> SparseVecCol {
        SparseVecCol {
            dims: Vec::with_capacity(rows),
            offsets: vec![0],
            indices: Vec::new(),
            values: Vec::new(),
            nulls: NullBufferBuilder::new(rows),
        }
    }

    pub(crate) fn push(&mut self, b: &[u8]) -> FieldResult<()> {
        let mut r = Reader::new(b, "sparsevec");
        let dim = r.i32()?;
        let nnz = r.i32()?;
        let _unused = r.i32()?;
        if dim < 0 || nnz < 0 || r.remaining() != 8 * nnz as usize {
            return Err(FieldError::new(format!(
                "sparsevec of dimension {dim} with {nnz} elements has {} bytes of them",
                r.remaining()
            )));
        }
        let n = nnz as usize;
        let mut last = -1;
        for c in r.take(4 * n)?.chunks_exact(4) {
            let index = i32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            if index <= last || index >= dim {
                return Err(FieldError::new(format!(
                    "sparsevec of dimension {dim} has index {index} after {last}"
                )));
            }
            last = index;
            self.indices.push(index);
        }
        for c in r.take(4 * n)?.chunks_exact(4) {
            self.values
                .push(f32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        }
        self.dims.push(dim);
        push_offset(&mut self.offsets, n)?;
        self.nulls.append_non_null();
        Ok(())
    }

    pub(crate) fn push_null(&mut self) {
        self.dims.push(0);
        let last = *self.offsets.last().unwrap_or(&0);
        self.offsets.push(last);
        self.nulls.append_null();
    }

    pub(crate) fn finish(&mut self) -> Result<ArrayRef, FinishError> {
        let fields = sparsevec_fields();
        let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(
            &mut self.offsets,
            vec![0],
        )));
        let list = |field: &FieldRef, values: ArrayRef| -> Result<ArrayRef, FinishError> {
            let DataType::List(item) = field.data_type() else {
                unreachable!("sparsevec_fields makes lists")
            };
            Ok(Arc::new(ListArray::try_new(
                item.clone(),
                offsets.clone(),
                values,
                None,
            )?))
        };
        let indices = list(
            &fields[1],
            Arc::new(Int32Array::from(std::mem::take(&mut self.indices))),
        )?;
        let values = list(
            &fields[2],
            Arc::new(Float32Array::from(std::mem::take(&mut self.values))),
        )?;
        let dims = Arc::new(Int32Array::from(std::mem::take(&mut self.dims)));
        Ok(Arc::new(StructArray::try_new(
            fields,
            vec![dims, indices, values],
            self.nulls.finish(),
        )?))
    }
}
