//! What a target column is, from the catalog: a scalar, or arrays, composites, ranges,
//! multiranges, `hstore` and pgvector `vector` around scalars; which Arrow inputs each takes,
//! and how a value is written in the layouts of PostgreSQL's `*_recv` functions.
//!
//! The binary formats carry type OIDs where the server checks them: an array names its element
//! type (`array_recv` refuses another), a composite each attribute's (`record_recv` likewise),
//! so the shape keeps the OIDs the catalog gives (a domain's own, where the type is a domain).

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_schema::DataType;
use pgarrow_types::{Catalog, CatalogKind};

use crate::read::{float_getter, str_getter};
use crate::scalar::{Target, Writer};

/// Nesting deeper than this is refused (PostgreSQL types are not cyclic, but be safe).
const MAX_DEPTH: usize = 32;
/// PostgreSQL's `MAXDIM`: an array has at most 6 dimensions.
const MAX_DIMS: usize = 6;

/// Range flags (`rangetypes.h`).
const RANGE_EMPTY: u8 = 0x01;
const RANGE_LB_INC: u8 = 0x02;
const RANGE_UB_INC: u8 = 0x04;
const RANGE_LB_INF: u8 = 0x08;
const RANGE_UB_INF: u8 = 0x10;

/// A target type, resolved through domains.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    /// A scalar.
    Scalar(Target),
    /// An array of `element` (whose type OID the binary format carries).
    Array {
        element_oid: u32,
        element: Box<Shape>,
    },
    /// A composite: its live attributes in order.
    Composite(Vec<Attr>),
    /// A range over a subtype.
    Range(Box<Shape>),
    /// A multirange: the shape of its ranges.
    Multirange(Box<Shape>),
    /// `hstore`.
    Hstore,
    /// pgvector `vector`.
    Vector,
}

/// One attribute of a composite target.
#[derive(Debug, Clone)]
pub(crate) struct Attr {
    name: String,
    oid: u32,
    shape: Shape,
}

impl Shape {
    /// The shape of type `oid` (with `typmod`), or `None` when something in it has no binary
    /// encoder: such a column is loaded through its text form.
    pub(crate) fn resolve(oid: u32, typmod: i32, catalog: &Catalog) -> Option<Shape> {
        Self::resolve_depth(oid, typmod, catalog, 0)
    }

    fn resolve_depth(oid: u32, typmod: i32, catalog: &Catalog, depth: usize) -> Option<Shape> {
        if depth > MAX_DEPTH {
            return None;
        }
        if let Some(t) = Target::for_type(oid, typmod, catalog.money_scale()) {
            return Some(Shape::Scalar(t));
        }
        let t = catalog.get(oid)?;
        let nested = |oid, typmod| Self::resolve_depth(oid, typmod, catalog, depth + 1);
        match &t.kind {
            CatalogKind::Domain { base, typmod, .. } => nested(*base, *typmod),
            CatalogKind::Array { element } => Some(Shape::Array {
                element_oid: *element,
                // An array's typmod applies to its elements (varchar(10)[]).
                element: Box::new(nested(*element, typmod)?),
            }),
            CatalogKind::Composite { fields } => fields
                .iter()
                .map(|a| {
                    Some(Attr {
                        name: a.name.clone(),
                        oid: a.oid,
                        shape: nested(a.oid, a.typmod)?,
                    })
                })
                .collect::<Option<Vec<_>>>()
                .map(Shape::Composite),
            CatalogKind::Enum { labels } => {
                Some(Shape::Scalar(Target::Enum(labels.clone().into())))
            }
            CatalogKind::Range { subtype } => Some(Shape::Range(Box::new(nested(*subtype, -1)?))),
            CatalogKind::Multirange { range } => match nested(*range, -1)? {
                range @ Shape::Range(_) => Some(Shape::Multirange(Box::new(range))),
                _ => None,
            },
            CatalogKind::Base => match t.name.as_str() {
                "citext" => Some(Shape::Scalar(Target::Text(crate::scalar::TextLimit::None))),
                "ltree" => Some(Shape::Scalar(Target::Ltree)),
                "geometry" | "geography" => Some(Shape::Scalar(Target::Wkb)),
                "hstore" => Some(Shape::Hstore),
                "vector" => Some(Shape::Vector),
                _ => None,
            },
            CatalogKind::Other => None,
        }
    }

    /// Whether values of Arrow type `t` can go into this target; the reason when not.
    pub(crate) fn accepts(&self, t: &DataType) -> Result<(), String> {
        match self {
            Shape::Scalar(target) => target.accepts(t),
            Shape::Array { element, .. } => list_depth(element, t).map(|_| ()),
            Shape::Composite(attrs) => {
                let DataType::Struct(fields) = t else {
                    return Err(format!(
                        "an Arrow {t} column cannot be loaded into a composite (a Struct can)"
                    ));
                };
                for f in fields {
                    let Some(a) = attrs.iter().find(|a| a.name == *f.name()) else {
                        return Err(format!(
                            "the struct field {:?} is not an attribute of the type (its \
                             attributes: {})",
                            f.name(),
                            attrs
                                .iter()
                                .map(|a| a.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    };
                    a.shape
                        .accepts(f.data_type())
                        .map_err(|e| format!("attribute {:?}: {e}", a.name))?;
                }
                Ok(())
            }
            Shape::Range(subtype) => {
                let shape_error = || {
                    format!(
                        "an Arrow {t} column cannot be loaded into a range (a Struct{{lower, \
                         upper, lower_inclusive, upper_inclusive, empty}} can, as pgarrow \
                         exports ranges)"
                    )
                };
                let DataType::Struct(fields) = t else {
                    return Err(shape_error());
                };
                let field = |name: &str| fields.iter().find(|f| f.name() == name);
                for name in ["lower_inclusive", "upper_inclusive", "empty"] {
                    match field(name) {
                        Some(f) if *f.data_type() == DataType::Boolean => {}
                        _ => return Err(shape_error()),
                    }
                }
                for name in ["lower", "upper"] {
                    let f = field(name).ok_or_else(shape_error)?;
                    subtype
                        .accepts(f.data_type())
                        .map_err(|e| format!("the {name} bound: {e}"))?;
                }
                if fields.len() != 5 {
                    return Err(shape_error());
                }
                Ok(())
            }
            Shape::Multirange(range) => match list_child(t) {
                Some(child) => range.accepts(child),
                None => Err(format!(
                    "an Arrow {t} column cannot be loaded into a multirange (a List of ranges can)"
                )),
            },
            Shape::Hstore => match t {
                DataType::Map(entries, _) => match entries.data_type() {
                    DataType::Struct(kv)
                        if kv.len() == 2
                            && crate::scalar::is_text(kv[0].data_type())
                            && crate::scalar::is_text(kv[1].data_type()) =>
                    {
                        Ok(())
                    }
                    _ => Err(format!("an hstore takes a Map of text to text, not {t}")),
                },
                _ => Err(format!(
                    "an Arrow {t} column cannot be loaded into hstore (a Map of text to text can)"
                )),
            },
            Shape::Vector => match list_child(t) {
                Some(child) if child.is_floating() => Ok(()),
                _ => Err(format!(
                    "an Arrow {t} column cannot be loaded into vector (a List or FixedSizeList of \
                     floats can)"
                )),
            },
        }
    }

    /// The writer of `array`'s values (its type accepted by [`accepts`](Shape::accepts)).
    pub(crate) fn writer<'a>(&'a self, array: &'a dyn Array) -> Writer<'a> {
        match self {
            Shape::Scalar(target) => target.writer(array),
            Shape::Array {
                element_oid,
                element,
            } => array_writer(*element_oid, element, array),
            Shape::Composite(attrs) => composite_writer(attrs, array),
            Shape::Range(subtype) => range_writer(subtype, array),
            Shape::Multirange(range) => {
                let list = ListLevel::new(array).expect("accepts() admits only lists");
                let ranges = list.values;
                let write = range.writer(ranges);
                Box::new(move |i, out| {
                    let (start, end) = (list.range)(i);
                    out.extend_from_slice(&count(end - start)?.to_be_bytes());
                    for j in start..end {
                        if ranges.is_null(j) {
                            return Err(format!(
                                "range {}: NULL (a multirange holds none)",
                                j - start + 1
                            ));
                        }
                        field(out, |out| write(j, out))
                            .map_err(|e| format!("range {}: {e}", j - start + 1))?;
                    }
                    Ok(())
                })
            }
            Shape::Hstore => hstore_writer(array),
            Shape::Vector => vector_writer(array),
        }
    }
}

/// Writes a value behind its i32 length, as every nested value and field is sent.
pub(crate) fn field(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out)?;
    let len = i32::try_from(out.len() - at - 4).map_err(|_| "value over 2 GiB".to_owned())?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn count(n: usize) -> Result<i32, String> {
    i32::try_from(n).map_err(|_| format!("{n} items are more than PostgreSQL takes"))
}

/// The item type of a list-like Arrow type.
fn list_child(t: &DataType) -> Option<&DataType> {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Some(f.data_type())
        }
        _ => None,
    }
}

/// How many list levels of `t` make the array's dimensions before its elements: the first
/// level whose items the element accepts.
fn list_depth(element: &Shape, t: &DataType) -> Result<usize, String> {
    let mut depth = 0;
    let mut current = t;
    loop {
        let Some(child) = list_child(current) else {
            return Err(match depth {
                0 => format!("an Arrow {t} column cannot be loaded into an array (a List can)"),
                _ => element.accepts(current).unwrap_err(),
            });
        };
        depth += 1;
        if depth > MAX_DIMS {
            return Err(format!(
                "{t} nests lists deeper than PostgreSQL's {MAX_DIMS} array dimensions"
            ));
        }
        if element.accepts(child).is_ok() {
            return Ok(depth);
        }
        current = child;
    }
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
    fn new(array: &'a dyn Array) -> Option<ListLevel<'a>> {
        let (range, values): (Range<'a>, &'a dyn Array) = match array.data_type() {
            DataType::List(_) => {
                let l = array.as_list::<i32>();
                let o = l.value_offsets();
                (
                    Box::new(move |i| (o[i] as usize, o[i + 1] as usize)),
                    l.values().as_ref(),
                )
            }
            DataType::LargeList(_) => {
                let l = array.as_list::<i64>();
                let o = l.value_offsets();
                (
                    Box::new(move |i| (o[i] as usize, o[i + 1] as usize)),
                    l.values().as_ref(),
                )
            }
            DataType::FixedSizeList(..) => {
                let l = array.as_fixed_size_list();
                (
                    Box::new(move |i| {
                        let start = l.value_offset_at(i);
                        (start, start + l.value_length() as usize)
                    }),
                    l.values().as_ref(),
                )
            }
            _ => return None,
        };
        Some(ListLevel {
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
fn array_writer<'a>(element_oid: u32, element: &'a Shape, array: &'a dyn Array) -> Writer<'a> {
    let depth = list_depth(element, array.data_type()).expect("accepts() admitted the type");
    let mut levels = Vec::with_capacity(depth);
    let mut items = array;
    for _ in 0..depth {
        let level = ListLevel::new(items).expect("list_depth() counted list levels");
        items = level.values;
        levels.push(level);
    }
    let write = element.writer(items);
    Box::new(move |i, out| {
        let mut dims = [0usize; MAX_DIMS];
        let (mut start, mut end) = (levels[0].range)(i);
        dims[0] = end - start;
        for (k, level) in levels.iter().enumerate().skip(1) {
            // The sub-lists start..end of this level: each non-NULL, all of one length.
            let mut length = None;
            let (mut next_start, mut next_end) = (0, 0);
            for j in start..end {
                if level.array.is_null(j) {
                    return Err(format!(
                        "a NULL list at depth {}: a PostgreSQL array has no NULL sub-arrays",
                        k + 1
                    ));
                }
                let (a, b) = (level.range)(j);
                if j == start {
                    next_start = a;
                }
                next_end = b;
                match length {
                    None => length = Some(b - a),
                    Some(l) if l != b - a => {
                        return Err(format!(
                            "lists of {l} and {} items at depth {}: a PostgreSQL array is \
                             rectangular",
                            b - a,
                            k + 1
                        ));
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
        let has_nulls = items.null_count() > 0 && (start..end).any(|j| items.is_null(j));
        out.extend_from_slice(&(depth as i32).to_be_bytes());
        out.extend_from_slice(&i32::from(has_nulls).to_be_bytes());
        out.extend_from_slice(&element_oid.to_be_bytes());
        for &d in dims {
            out.extend_from_slice(&count(d)?.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
        }
        for j in start..end {
            if items.is_null(j) {
                out.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
            field(out, |out| write(j, out))
                .map_err(|e| format!("element {}: {e}", j - start + 1))?;
        }
        Ok(())
    })
}

/// `record_recv`'s layout: i32 attribute count, then per attribute its type OID, i32 length
/// (-1 for NULL) and bytes. Struct fields go into the attributes of the same name; an attribute
/// the struct lacks is NULL.
fn composite_writer<'a>(attrs: &'a [Attr], array: &'a dyn Array) -> Writer<'a> {
    let s = array.as_struct();
    // Each attribute, with its struct field's values and writer when the struct has one.
    type Part<'a> = (&'a Attr, Option<(&'a dyn Array, Writer<'a>)>);
    let parts: Vec<Part<'a>> = attrs
        .iter()
        .map(|a| {
            let child = s.column_by_name(&a.name).map(|c| c.as_ref());
            (a, child.map(|c| (c, a.shape.writer(c))))
        })
        .collect();
    let n = attrs.len() as i32;
    Box::new(move |i, out| {
        out.extend_from_slice(&n.to_be_bytes());
        for (a, part) in &parts {
            out.extend_from_slice(&a.oid.to_be_bytes());
            match part {
                Some((child, write)) if !child.is_null(i) => field(out, |out| write(i, out))
                    .map_err(|e| format!("attribute {:?}: {e}", a.name))?,
                _ => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        Ok(())
    })
}

/// `range_recv`'s layout: u8 flags, then each bounded side as i32 length and bytes. A NULL
/// bound is unbounded (as pgarrow exports it); `empty` wins over everything else.
fn range_writer<'a>(subtype: &'a Shape, array: &'a dyn Array) -> Writer<'a> {
    let s = array.as_struct();
    let column = |name: &str| {
        s.column_by_name(name)
            .expect("accepts() checked the fields")
            .as_ref()
    };
    let (lower, upper) = (column("lower"), column("upper"));
    let flag = |name: &str| column(name).as_boolean();
    let (lower_inc, upper_inc, empty) = (
        flag("lower_inclusive"),
        flag("upper_inclusive"),
        flag("empty"),
    );
    let (write_lower, write_upper) = (subtype.writer(lower), subtype.writer(upper));
    Box::new(move |i, out| {
        let set = |a: &arrow_array::BooleanArray| a.is_valid(i) && a.value(i);
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
            field(out, |out| write_lower(i, out)).map_err(|e| format!("lower bound: {e}"))?;
        }
        if !upper.is_null(i) {
            field(out, |out| write_upper(i, out)).map_err(|e| format!("upper bound: {e}"))?;
        }
        Ok(())
    })
}

/// `hstore_recv`'s layout: i32 pair count, then each key (i32 length and bytes) and value
/// (i32 length, -1 for NULL, and bytes).
fn hstore_writer(array: &dyn Array) -> Writer<'_> {
    let map = array.as_map();
    let (keys, values) = (map.keys().as_ref(), map.values().as_ref());
    let (key, value) = (str_getter(keys), str_getter(values));
    let offsets = map.value_offsets();
    Box::new(move |i, out| {
        let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
        out.extend_from_slice(&count(end - start)?.to_be_bytes());
        for j in start..end {
            if keys.is_null(j) {
                return Err("a NULL key (hstore keys cannot be NULL)".to_owned());
            }
            field(out, |out| {
                out.extend_from_slice(key(j).as_bytes());
                Ok(())
            })?;
            if values.is_null(j) {
                out.extend_from_slice(&(-1i32).to_be_bytes());
            } else {
                field(out, |out| {
                    out.extend_from_slice(value(j).as_bytes());
                    Ok(())
                })?;
            }
        }
        Ok(())
    })
}

/// pgvector's `vector_recv` layout: i16 dimensions, i16 unused (0), then each float4. A
/// float64 element must be exact in float4.
fn vector_writer(array: &dyn Array) -> Writer<'_> {
    let list = ListLevel::new(array).expect("accepts() admits only lists");
    let values = list.values;
    let get = float_getter(values);
    Box::new(move |i, out| {
        let (start, end) = (list.range)(i);
        let dims = i16::try_from(end - start)
            .map_err(|_| format!("{} dimensions: vector holds at most 16000", end - start))?;
        out.extend_from_slice(&dims.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        for j in start..end {
            if values.is_null(j) {
                return Err(format!(
                    "element {}: NULL (a vector holds none)",
                    j - start + 1
                ));
            }
            let v = get(j);
            let f = v as f32;
            if f64::from(f) != v && !v.is_nan() {
                return Err(format!(
                    "element {}: {v} is not exact in float4 (it would be rounded to {f})",
                    j - start + 1
                ));
            }
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Ok(())
    })
}
