//! What a target column is, from the catalog ([`Shape`]: a scalar, or arrays, composites,
//! ranges, multiranges, `hstore` and pgvector `vector` around scalars), and which Arrow inputs
//! each takes: [`Shape::encoder`] parses an input type into an [`Encoder`], the list levels,
//! struct fields and scalar input that `nested` then writes from.
//!
//! The binary formats carry type OIDs where the server checks them: an array names its element
//! type (`array_recv` refuses another), a composite each attribute's (`record_recv` likewise),
//! so the shape keeps the OIDs the catalog gives (a domain's own, where the type is a domain).

use arrow_schema::DataType;
use pgarrow_types::{Catalog, CatalogKind};

use crate::error::{EncodeError, ErrorKind, Step, TargetKind};
use crate::read::{Floats, Ints, Strs};
use crate::scalar::{ScalarEncoder, Target, TextLimit};

/// Nesting deeper than this is refused (PostgreSQL types are not cyclic, but be safe).
const MAX_DEPTH: usize = 32;
/// PostgreSQL's `MAXDIM`: an array has at most 6 dimensions.
pub(crate) const MAX_DIMS: usize = 6;

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
    /// A range: the shape of its subtype.
    Range(Box<Shape>),
    /// A multirange: the subtype of its ranges.
    Multirange(Box<Shape>),
    /// `hstore`.
    Hstore,
    /// pgvector `vector` (`half`: `halfvec`).
    Vector { half: bool },
    /// pgvector `sparsevec`.
    SparseVec,
}

/// One attribute of a composite target.
#[derive(Debug, Clone)]
pub(crate) struct Attr {
    name: String,
    oid: u32,
    shape: Shape,
}

/// A target shape with the Arrow type that feeds it, as [`Shape::encoder`] parses them: the
/// list levels, struct fields and scalar inputs that each batch's writer reads, found once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Encoder {
    /// Arrow's null type: every value is NULL, whatever the target.
    Null,
    Scalar(ScalarEncoder),
    /// An array: the list levels that make its dimensions (the outermost, then the others
    /// inwards: at most `MAX_DIMS` in all), then its elements.
    Array {
        element_oid: u32,
        outer: ListKind,
        inner: Vec<ListKind>,
        element: Box<Encoder>,
    },
    /// A composite: per attribute, in order, the struct field that feeds it, if any.
    Composite(Vec<AttrEncoder>),
    Range(Box<RangeEncoder>),
    /// A multirange: a list of ranges.
    Multirange {
        list: ListKind,
        range: Box<RangeEncoder>,
    },
    /// `hstore`: a Map of text to text.
    Hstore {
        keys: Strs,
        values: Strs,
    },
    /// pgvector `vector` or (`half`) `halfvec`: a list of floats.
    Vector {
        list: ListKind,
        floats: Floats,
        half: bool,
    },
    /// pgvector `sparsevec`: a Struct{dim, indices, values}.
    SparseVec(Box<SparseEncoder>),
}

/// A `sparsevec`'s struct fields, by position, with their integer and float inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SparseEncoder {
    pub(crate) dim: (usize, Ints),
    pub(crate) indices: (usize, ListKind, Ints),
    pub(crate) values: (usize, ListKind, Floats),
}

/// One attribute of a composite, and the struct field (by position) that feeds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttrEncoder {
    pub(crate) name: String,
    pub(crate) oid: u32,
    pub(crate) field: Option<(usize, Encoder)>,
}

/// A range's struct fields, by position: the bounds with their encoders, and the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RangeEncoder {
    pub(crate) lower: (usize, Encoder),
    pub(crate) upper: (usize, Encoder),
    pub(crate) lower_inclusive: usize,
    pub(crate) upper_inclusive: usize,
    pub(crate) empty: usize,
}

/// A list-like Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListKind {
    List,
    LargeList,
    FixedSizeList,
}

impl ListKind {
    /// The kind of list `t` is, and its item type.
    pub(crate) fn of(t: &DataType) -> Option<(ListKind, &DataType)> {
        match t {
            DataType::List(f) => Some((ListKind::List, f.data_type())),
            DataType::LargeList(f) => Some((ListKind::LargeList, f.data_type())),
            DataType::FixedSizeList(f, _) => Some((ListKind::FixedSizeList, f.data_type())),
            _ => None,
        }
    }
}

impl Shape {
    /// An array, composite, range or multirange: a type whose text is a literal of parts.
    pub(crate) fn is_nested(&self) -> bool {
        matches!(
            self,
            Shape::Array { .. } | Shape::Composite(_) | Shape::Range(_) | Shape::Multirange(_)
        )
    }

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
                Shape::Range(subtype) => Some(Shape::Multirange(subtype)),
                _ => None,
            },
            CatalogKind::Base => match t.name.as_str() {
                "citext" => Some(Shape::Scalar(Target::Text(TextLimit::None))),
                "ltree" => Some(Shape::Scalar(Target::Ltree)),
                "geometry" | "geography" => Some(Shape::Scalar(Target::Wkb)),
                "hstore" => Some(Shape::Hstore),
                "vector" => Some(Shape::Vector { half: false }),
                "halfvec" => Some(Shape::Vector { half: true }),
                "sparsevec" => Some(Shape::SparseVec),
                _ => None,
            },
            CatalogKind::Other => None,
        }
    }

    /// The encoder of Arrow type `t`'s values into this target; why not, when they cannot go
    /// into it.
    pub(crate) fn encoder(&self, t: &DataType) -> Result<Encoder, EncodeError> {
        if *t == DataType::Null {
            return Ok(Encoder::Null);
        }
        match self {
            Shape::Scalar(target) => target.encoder(t).map(Encoder::Scalar),
            Shape::Array {
                element_oid,
                element,
            } => array_encoder(*element_oid, element, t),
            Shape::Composite(attrs) => composite_encoder(attrs, t),
            Shape::Range(subtype) => range_encoder(subtype, t).map(|r| Encoder::Range(Box::new(r))),
            Shape::Multirange(subtype) => match ListKind::of(t) {
                Some((list, child)) => Ok(Encoder::Multirange {
                    list,
                    range: Box::new(range_encoder(subtype, child)?),
                }),
                None => Err(unsupported(t, TargetKind::Multirange)),
            },
            Shape::Hstore => {
                let DataType::Map(entries, _) = t else {
                    return Err(unsupported(t, TargetKind::Hstore));
                };
                match entries.data_type() {
                    DataType::Struct(kv) if kv.len() == 2 => {
                        match (Strs::of(kv[0].data_type()), Strs::of(kv[1].data_type())) {
                            (Some(keys), Some(values)) => Ok(Encoder::Hstore { keys, values }),
                            _ => Err(unsupported(t, TargetKind::Hstore)),
                        }
                    }
                    _ => Err(unsupported(t, TargetKind::Hstore)),
                }
            }
            Shape::Vector { half } => {
                match ListKind::of(t).and_then(|(l, child)| Some((l, Floats::of(child)?))) {
                    Some((list, floats)) => Ok(Encoder::Vector {
                        list,
                        floats,
                        half: *half,
                    }),
                    None => Err(unsupported(t, TargetKind::Vector)),
                }
            }
            Shape::SparseVec => sparse_encoder(t)
                .map(|s| Encoder::SparseVec(Box::new(s)))
                .ok_or_else(|| unsupported(t, TargetKind::SparseVec)),
        }
    }
}

/// The error of an Arrow type `t` that `target` does not take.
fn unsupported(t: &DataType, target: TargetKind) -> EncodeError {
    ErrorKind::Unsupported {
        input: t.clone(),
        target,
    }
    .into()
}

/// An array's encoder: the list levels of `t` that make the array's dimensions, down to the
/// first whose items the element takes.
fn array_encoder(element_oid: u32, element: &Shape, t: &DataType) -> Result<Encoder, EncodeError> {
    let Some((outer, mut child)) = ListKind::of(t) else {
        return Err(unsupported(t, TargetKind::Array));
    };
    let mut inner = Vec::new();
    loop {
        // Lists within lists are the array's dimensions first: a text, json or jsonb element
        // would also take a list (as its JSON), but `[["a","b"],["c"]]` into `text[]` is
        // a 2-D array, not a list of JSON texts. Elements whose values are lists (pgvector,
        // multiranges, an array of a domain over an array) take them.
        if !matches!(
            element,
            Shape::Vector { .. } | Shape::Multirange(_) | Shape::Array { .. }
        ) && let Some((list, items)) = ListKind::of(child)
        {
            inner.push(list);
            child = items;
            if 1 + inner.len() > MAX_DIMS {
                return Err(ErrorKind::TooManyDimensions(t.clone()).into());
            }
            continue;
        }
        match element.encoder(child) {
            Ok(element) => {
                return Ok(Encoder::Array {
                    element_oid,
                    outer,
                    inner,
                    element: Box::new(element),
                });
            }
            Err(e) => match ListKind::of(child) {
                // Items that are not lists either: the element's reason.
                None => return Err(e.at(Step::Elements)),
                Some((list, items)) => {
                    inner.push(list);
                    child = items;
                }
            },
        }
        if 1 + inner.len() > MAX_DIMS {
            return Err(ErrorKind::TooManyDimensions(t.clone()).into());
        }
    }
}

/// A composite's encoder: every struct field must be an attribute that takes its type; an
/// attribute the struct lacks is NULL.
fn composite_encoder(attrs: &[Attr], t: &DataType) -> Result<Encoder, EncodeError> {
    let DataType::Struct(fields) = t else {
        return Err(unsupported(t, TargetKind::Composite));
    };
    let mut inputs: Vec<Option<(usize, Encoder)>> = attrs.iter().map(|_| None).collect();
    for (index, f) in fields.iter().enumerate() {
        let Some(k) = attrs.iter().position(|a| a.name == *f.name()) else {
            return Err(ErrorKind::NotAnAttribute {
                field: f.name().clone(),
                attributes: attrs.iter().map(|a| a.name.clone()).collect(),
            }
            .into());
        };
        let encoder = attrs[k]
            .shape
            .encoder(f.data_type())
            .map_err(|e| e.at(Step::Attribute(attrs[k].name.clone())))?;
        // Of two fields with one name, the first is written (both are checked).
        if inputs[k].is_none() {
            inputs[k] = Some((index, encoder));
        }
    }
    Ok(Encoder::Composite(
        attrs
            .iter()
            .zip(inputs)
            .map(|(a, field)| AttrEncoder {
                name: a.name.clone(),
                oid: a.oid,
                field,
            })
            .collect(),
    ))
}

/// A `sparsevec`'s encoder: a Struct{dim, indices, values} (any other fields are refused),
/// as pgarrow exports sparsevec.
fn sparse_encoder(t: &DataType) -> Option<SparseEncoder> {
    let DataType::Struct(fields) = t else {
        return None;
    };
    let position = |name: &str| fields.iter().position(|f| f.name() == name);
    let (dim, indices, values) = (position("dim")?, position("indices")?, position("values")?);
    if fields.len() != 3 {
        return None;
    }
    let (index_list, index_items) = ListKind::of(fields[indices].data_type())?;
    let (value_list, value_items) = ListKind::of(fields[values].data_type())?;
    Some(SparseEncoder {
        dim: (dim, Ints::of(fields[dim].data_type())?),
        indices: (indices, index_list, Ints::of(index_items)?),
        values: (values, value_list, Floats::of(value_items)?),
    })
}

/// A range's encoder: a Struct{lower, upper, lower_inclusive, upper_inclusive, empty}, as
/// pgarrow exports ranges, whose bounds the subtype takes.
fn range_encoder(subtype: &Shape, t: &DataType) -> Result<RangeEncoder, EncodeError> {
    let shape_error = || unsupported(t, TargetKind::Range);
    let DataType::Struct(fields) = t else {
        return Err(shape_error());
    };
    let position = |name: &str| fields.iter().position(|f| f.name() == name);
    let flag = |name: &str| match position(name) {
        Some(k) if *fields[k].data_type() == DataType::Boolean => Ok(k),
        _ => Err(shape_error()),
    };
    let (lower_inclusive, upper_inclusive, empty) = (
        flag("lower_inclusive")?,
        flag("upper_inclusive")?,
        flag("empty")?,
    );
    let bound = |name: &str, step: Step| {
        let k = position(name).ok_or_else(shape_error)?;
        let encoder = subtype
            .encoder(fields[k].data_type())
            .map_err(|e| e.at(step))?;
        Ok::<_, EncodeError>((k, encoder))
    };
    let (lower, upper) = (
        bound("lower", Step::LowerBound)?,
        bound("upper", Step::UpperBound)?,
    );
    if fields.len() != 5 {
        return Err(shape_error());
    }
    Ok(RangeEncoder {
        lower,
        upper,
        lower_inclusive,
        upper_inclusive,
        empty,
    })
}
