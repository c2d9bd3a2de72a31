//! Type mapping: from a column's type OID, the catalog and the policies to a decoder and its Arrow
//! type.
//!
//! Built-in scalar types are known by OID. Everything else is looked up in a [`Catalog`] made
//! from one catalog query per export: arrays (any element type, any number of dimensions),
//! composites (their live attributes in order), enums (labels in `pg_enum` order), domains
//! (their base type), ranges and multiranges, and extension types by name (`citext`, `ltree`,
//! `hstore`, `vector`, PostGIS `geometry`/`geography`), since extension OIDs differ between
//! databases. A type with nothing to decode it anywhere inside resolves to `None`, and the
//! caller casts the whole column to `text`.
//!
//! A column's type is described once per stage, one enum each: [`ColumnKind`] is a scalar
//! (its wire format and Arrow type, picked from the OID and the policies); [`TypeMapping`] is the
//! tree of scalars, arrays, composites, enums, ranges and maps that a column is, with
//! [`StrLayout`] the Arrow layout its text takes; the decoder built from a plan (the crate's
//! private `Column`, whose tag is the row loop's jump table) holds a batch's buffers. Nothing
//! else describes a type.
//!
//! Over ~600 lines because of its tests (a sixth of the file); the planning itself is one
//! recursive function and the Arrow types it produces.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields};

/// The catalog model and the ±infinity values, from `pgarrow-types` (the encoder reads them
/// too).
pub use pgarrow_types::{
    Attribute, Catalog, CatalogKind, CatalogType, DATE_INFINITY, TIMESTAMP_INFINITY,
};

use crate::policy::{
    ArrayShape, EnumLayout, InvalidUtf8, NumericTarget, Policies, TextLayout, WideNumeric,
};
use crate::types::{
    ColumnKind, Geo, META_EXTENSION_METADATA, META_EXTENSION_NAME, META_PG_OID, META_PG_TYPE,
    META_PG_TYPMOD,
};

/// Field metadata key on list columns: the number of dimensions planned.
pub const META_ARRAY_DIMS: &str = "pgarrow.array_dims";
/// Field metadata on a field holding dates or timestamps (at any depth): how ±infinity is
/// written under the default infinity policy ([`INFINITY_ENCODING`]).
pub const META_INFINITY: &str = "pgarrow.infinity";
/// The value of [`META_INFINITY`]: `infinity` is the Arrow type's largest value and
/// `-infinity` its negation (`±i32::MAX` days, `±i64::MAX` microseconds: [`DATE_INFINITY`],
/// [`TIMESTAMP_INFINITY`]), as DuckDB stores them,
/// so that DuckDB reads them back as ±infinity. (PostgreSQL keeps `-infinity` one lower, at the
/// type's minimum, which DuckDB's casts refuse.) No finite PostgreSQL date or timestamp comes
/// near either.
pub const INFINITY_ENCODING: &str = "+infinity=max,-infinity=-max";
/// Field metadata on an enum field, or an array of enums (at any depth): its labels in
/// `pg_enum` order, as a JSON array. The dictionary of each batch holds them in that order
/// too, but a format that rebuilds dictionaries (Parquet: in order of first appearance) loses
/// it.
pub const META_ENUM_LABELS: &str = "pgarrow.enum_labels";

/// How text-like values are laid out in Arrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrLayout {
    /// Utf8.
    Utf8,
    /// LargeUtf8.
    Large,
    /// Utf8View.
    View,
    /// Binary: the bytes as the server sent them (invalid-UTF-8 policy `binary`).
    Binary,
}

impl StrLayout {
    fn from_policies(p: &Policies) -> StrLayout {
        match (p.invalid_utf8, p.text) {
            (InvalidUtf8::Binary, _) => StrLayout::Binary,
            (_, TextLayout::Utf8) => StrLayout::Utf8,
            (_, TextLayout::Large) => StrLayout::Large,
            (_, TextLayout::View) => StrLayout::View,
        }
    }

    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            StrLayout::Utf8 => DataType::Utf8,
            StrLayout::Large => DataType::LargeUtf8,
            StrLayout::View => DataType::Utf8View,
            StrLayout::Binary => DataType::Binary,
        }
    }
}

/// A field of a planned composite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructField {
    /// The attribute.
    pub attribute: Attribute,
    /// How it is decoded.
    pub plan: TypeMapping,
}

/// How a value is decoded, recursively, and the Arrow type it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypeMapping {
    /// A scalar; text-like kinds use `layout`.
    Scalar {
        /// The decoder.
        kind: ColumnKind,
        /// Layout of text-like values.
        layout: StrLayout,
    },
    /// An array with `dims` dimensions: `dims` nested Lists of the element.
    List {
        /// The element.
        element: Box<TypeMapping>,
        /// Dimensions (1 or more).
        dims: usize,
        /// Where `dims` comes from, and what a value of other dimensions does.
        shape: ListShape,
    },
    /// A composite: a Struct.
    Struct(Vec<StructField>),
    /// An enum as Dictionary(Int16, Utf8) in `pg_enum` order.
    Enum(Arc<[String]>),
    /// A range: Struct{lower, upper, lower_inclusive, upper_inclusive, empty}.
    Range(Box<TypeMapping>),
    /// A multirange: List of ranges.
    Multirange(Box<TypeMapping>),
    /// `hstore`: Map<Utf8, Utf8>.
    Hstore,
    /// pgvector `vector` (Float32 items) or `halfvec` (Float16 items): a `FixedSizeList` when
    /// the typmod gives the dimension, else a `List`.
    Vector {
        /// Float32 for `vector`, Float16 for `halfvec`.
        element: VectorElement,
        /// The dimension the typmod declares.
        dim: Option<i32>,
    },
    /// pgvector `sparsevec`: `Struct{dim: Int32, indices: List<Int32>, values: List<Float32>}`,
    /// the indices 0-based as in the binary format (the text form counts from 1).
    SparseVec,
}

/// The element of a pgvector dense vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorElement {
    /// `vector`: float4.
    Float32,
    /// `halfvec`: IEEE half precision.
    Float16,
}

impl VectorElement {
    /// The Arrow type of one element.
    pub fn data_type(self) -> DataType {
        match self {
            VectorElement::Float32 => DataType::Float32,
            VectorElement::Float16 => DataType::Float16,
        }
    }
}

/// The fields of a `sparsevec` struct.
pub fn sparsevec_fields() -> Fields {
    let list = |t| DataType::List(Arc::new(Field::new("item", t, false)));
    Fields::from(vec![
        Field::new("dim", DataType::Int32, false),
        Field::new("indices", list(DataType::Int32), false),
        Field::new("values", list(DataType::Float32), false),
    ])
}

/// Where an array plan's dimensions come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListShape {
    /// Declared by a composite's attribute; a value of other dimensions is an error.
    Declared,
    /// A column's (declared or not: PostgreSQL does not enforce declared dimensions): to be
    /// taken from the data ([`TypeMapping::with_list_depth`]); until then the declared
    /// dimensions (one when none) are planned.
    FromData,
    /// Taken from the data: the first non-empty value had `dims` dimensions.
    Seen,
    /// `--array-shape flatten`: one List of every value's elements in row-major order.
    Flatten,
}

/// Nesting deeper than this is refused (PostgreSQL types cannot be cyclic, but a catalog given
/// by a caller could be).
const MAX_DEPTH: usize = 32;

impl TypeMapping {
    /// Resolves a type; `None` when something in it has no decoder (cast the column to text).
    ///
    /// `dims` is the number of dimensions to plan for an array (from `pg_attribute.attndims`
    /// when known, else 1).
    pub fn resolve(
        oid: u32,
        typmod: i32,
        catalog: &Catalog,
        policies: &Policies,
        dims: usize,
    ) -> Option<TypeMapping> {
        Self::resolve_depth(oid, typmod, catalog, policies, dims.max(1), 0, true)
    }

    /// `top`: the type is a result column's (through domains), where an array's dimensions can
    /// come from the data ([`ListShape::FromData`]); nested arrays keep what is declared.
    fn resolve_depth(
        type_oid: u32,
        typmod: i32,
        catalog: &Catalog,
        policies: &Policies,
        dims: usize,
        depth: usize,
        top: bool,
    ) -> Option<TypeMapping> {
        if depth > MAX_DEPTH {
            return None;
        }
        let layout = StrLayout::from_policies(policies);
        let scalar = |kind| Some(TypeMapping::Scalar { kind, layout });
        if type_oid == crate::types::oid::MONEY {
            return scalar(ColumnKind::Money {
                scale: catalog.money_scale()?,
            });
        }
        if let Some(kind) = ColumnKind::for_type(type_oid, typmod) {
            return match kind {
                // Decoded into its text as a column's value only: in an array or a composite
                // the whole value is the server's text (cast in the projection), which a load
                // gives back to the type's input function, as before there was a decoder.
                ColumnKind::Timetz if !top => None,
                ColumnKind::NumericText => match policies.numeric {
                    NumericTarget::String => scalar(kind),
                    NumericTarget::Float64 => scalar(ColumnKind::NumericFloat64),
                    NumericTarget::Decimal128(precision, scale) => {
                        scalar(ColumnKind::Decimal128 { precision, scale })
                    }
                    NumericTarget::Decimal256(precision, scale) => {
                        scalar(ColumnKind::Decimal256 { precision, scale })
                    }
                },
                ColumnKind::Decimal256 { .. } if policies.wide_numeric == WideNumeric::String => {
                    scalar(ColumnKind::NumericText)
                }
                _ => scalar(kind),
            };
        }
        let t = catalog.get(type_oid)?;
        let nested = |oid, typmod, dims| {
            Self::resolve_depth(oid, typmod, catalog, policies, dims, depth + 1, false)
        };
        match &t.kind {
            // A domain declared over `int[][]` knows its dimensions even where the column does
            // not (`attndims` is 0 for views and CREATE TABLE AS).
            CatalogKind::Domain {
                base,
                typmod,
                dims: declared,
            } => Self::resolve_depth(
                *base,
                *typmod,
                catalog,
                policies,
                if *declared > 0 { *declared } else { dims },
                depth + 1,
                top,
            ),
            CatalogKind::Array { element } => Some(TypeMapping::List {
                // An array's typmod applies to its elements (varchar(10)[]).
                element: Box::new(nested(*element, typmod, 1)?),
                dims: match policies.array_shape {
                    ArrayShape::Flatten => 1,
                    ArrayShape::Data | ArrayShape::Text => dims,
                },
                // Declared dimensions are advisory, as they are to PostgreSQL: a column's
                // depth comes from its data (the declared one planned until then). Arrays in
                // composites keep their attribute's, which nothing can look ahead at.
                shape: match policies.array_shape {
                    ArrayShape::Flatten => ListShape::Flatten,
                    ArrayShape::Data | ArrayShape::Text if !top => ListShape::Declared,
                    ArrayShape::Data | ArrayShape::Text => ListShape::FromData,
                },
            }),
            CatalogKind::Composite { fields } => {
                let fields = fields
                    .iter()
                    .map(|a| {
                        Some(StructField {
                            attribute: a.clone(),
                            plan: nested(a.oid, a.typmod, a.dims.max(1))?,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(TypeMapping::Struct(fields))
            }
            CatalogKind::Enum { labels } => match policies.enums {
                EnumLayout::Dictionary if labels.len() <= i16::MAX as usize => {
                    Some(TypeMapping::Enum(labels.clone().into()))
                }
                _ => scalar(ColumnKind::Text),
            },
            CatalogKind::Range { subtype } => {
                Some(TypeMapping::Range(Box::new(nested(*subtype, -1, 1)?)))
            }
            CatalogKind::Multirange { range } => {
                Some(TypeMapping::Multirange(Box::new(nested(*range, -1, 1)?)))
            }
            CatalogKind::Base => match t.name.as_str() {
                "citext" => scalar(ColumnKind::Text),
                "ltree" => scalar(ColumnKind::Ltree),
                "hstore" => Some(TypeMapping::Hstore),
                "vector" | "halfvec" => Some(TypeMapping::Vector {
                    element: if t.name == "vector" {
                        VectorElement::Float32
                    } else {
                        VectorElement::Float16
                    },
                    dim: (typmod > 0).then_some(typmod),
                }),
                "sparsevec" => Some(TypeMapping::SparseVec),
                "geometry" | "geography" => scalar(ColumnKind::Wkb(Geo::from_typmod(
                    typmod,
                    t.name == "geography",
                ))),
                _ => None,
            },
            CatalogKind::Other => None,
        }
    }

    /// The plan of a scalar built-in type, without a catalog.
    pub fn builtin(oid: u32, typmod: i32, policies: &Policies) -> Option<TypeMapping> {
        Self::resolve(oid, typmod, &Catalog::new(), policies, 1)
    }

    /// The Arrow type.
    pub fn data_type(&self) -> DataType {
        match self {
            TypeMapping::Scalar { kind, layout } => kind.data_type_with(*layout),
            TypeMapping::List { element, dims, .. } => {
                let mut t = DataType::List(Arc::new(element.item_field()));
                for _ in 1..*dims {
                    t = DataType::List(Arc::new(Field::new("item", t, true)));
                }
                t
            }
            TypeMapping::Struct(fields) => DataType::Struct(struct_fields(fields)),
            TypeMapping::Enum(_) => {
                DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8))
            }
            TypeMapping::Range(sub) => DataType::Struct(range_fields(sub)),
            TypeMapping::Multirange(range) => {
                DataType::List(Arc::new(Field::new("item", range.data_type(), true)))
            }
            TypeMapping::Hstore => DataType::Map(Arc::new(hstore_entries()), false),
            TypeMapping::Vector { element, dim } => {
                let item = Arc::new(Field::new("item", element.data_type(), true));
                match dim {
                    Some(dim) => DataType::FixedSizeList(item, *dim),
                    None => DataType::List(item),
                }
            }
            TypeMapping::SparseVec => DataType::Struct(sparsevec_fields()),
        }
    }

    /// The Arrow extension type's metadata (`ARROW:extension:metadata`): a geometry's CRS and
    /// edges, else empty.
    pub fn extension_metadata(&self) -> String {
        match self {
            TypeMapping::Scalar {
                kind: ColumnKind::Wkb(geo),
                ..
            } => geo.extension_metadata(),
            _ => String::new(),
        }
    }

    /// The innermost `item` field of a list of these values: it carries the values' extension
    /// type (`uuid[]` is a list of `arrow.uuid`), so that Parquet writes their logical type.
    pub fn item_field(&self) -> Field {
        let field = Field::new("item", self.data_type(), true);
        match self.extension_name() {
            Some(ext) => field.with_metadata(HashMap::from([
                (META_EXTENSION_NAME.to_owned(), ext.to_owned()),
                (
                    META_EXTENSION_METADATA.to_owned(),
                    self.extension_metadata(),
                ),
            ])),
            None => field,
        }
    }

    /// Whether this is an array whose dimensions are to be taken from the data (at the top:
    /// nested arrays keep what their attribute declares).
    pub fn list_depth_from_data(&self) -> bool {
        matches!(
            self,
            TypeMapping::List {
                shape: ListShape::FromData,
                ..
            }
        )
    }

    /// This array plan with `dims` dimensions, seen in the data (fixed from now on: a value of
    /// other dimensions is an error naming both).
    pub fn with_list_depth(&self, dims: usize) -> TypeMapping {
        match self {
            TypeMapping::List { element, .. } => TypeMapping::List {
                element: element.clone(),
                dims,
                shape: ListShape::Seen,
            },
            other => other.clone(),
        }
    }

    /// Whether dates or timestamps are among the values, at any depth.
    pub fn has_temporal(&self) -> bool {
        match self {
            TypeMapping::Scalar { kind, .. } => matches!(
                kind,
                ColumnKind::Date | ColumnKind::Timestamp | ColumnKind::Timestamptz
            ),
            TypeMapping::List { element, .. } => element.has_temporal(),
            TypeMapping::Struct(fields) => fields.iter().any(|f| f.plan.has_temporal()),
            TypeMapping::Range(sub) | TypeMapping::Multirange(sub) => sub.has_temporal(),
            TypeMapping::Enum(_)
            | TypeMapping::Hstore
            | TypeMapping::Vector { .. }
            | TypeMapping::SparseVec => false,
        }
    }

    /// The Arrow extension type name of the values, if any.
    pub fn extension_name(&self) -> Option<&'static str> {
        match self {
            TypeMapping::Scalar { kind, .. } => kind.extension_name(),
            _ => None,
        }
    }
}

/// The fields of a planned composite, each with its PostgreSQL type in the metadata.
pub fn struct_fields(fields: &[StructField]) -> Fields {
    fields
        .iter()
        .map(|f| {
            let meta = type_metadata(
                &f.attribute.display,
                f.attribute.oid,
                f.attribute.typmod,
                &f.plan,
            );
            Field::new(&f.attribute.name, f.plan.data_type(), true).with_metadata(meta)
        })
        .collect()
}

/// The fields of a range's struct.
pub fn range_fields(subtype: &TypeMapping) -> Fields {
    let t = subtype.data_type();
    let bound = |name: &str| {
        let field = Field::new(name, t.clone(), true);
        if subtype.has_temporal() {
            field.with_metadata(HashMap::from([(
                META_INFINITY.to_owned(),
                INFINITY_ENCODING.to_owned(),
            )]))
        } else {
            field
        }
    };
    Fields::from(vec![
        bound("lower"),
        bound("upper"),
        Field::new("lower_inclusive", DataType::Boolean, false),
        Field::new("upper_inclusive", DataType::Boolean, false),
        Field::new("empty", DataType::Boolean, false),
    ])
}

/// The entries field of an hstore map.
pub fn hstore_entries() -> Field {
    Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, true),
        ])),
        false,
    )
}

/// Metadata naming a value's PostgreSQL type, plus its extension type if any.
pub fn type_metadata(
    display: &str,
    oid: u32,
    typmod: i32,
    plan: &TypeMapping,
) -> HashMap<String, String> {
    let mut meta = HashMap::new();
    meta.insert(META_PG_TYPE.to_owned(), display.to_owned());
    meta.insert(META_PG_OID.to_owned(), oid.to_string());
    meta.insert(META_PG_TYPMOD.to_owned(), typmod.to_string());
    if let Some(ext) = plan.extension_name() {
        meta.insert(META_EXTENSION_NAME.to_owned(), ext.to_owned());
        meta.insert(
            META_EXTENSION_METADATA.to_owned(),
            plan.extension_metadata(),
        );
    }
    if let TypeMapping::List { dims, .. } = plan {
        meta.insert(META_ARRAY_DIMS.to_owned(), dims.to_string());
    }
    if plan.has_temporal() {
        meta.insert(META_INFINITY.to_owned(), INFINITY_ENCODING.to_owned());
    }
    // An enum's, or an array of enums' (whose element fields carry no metadata).
    let mut leaf = plan;
    while let TypeMapping::List { element, .. } = leaf {
        leaf = element;
    }
    if let TypeMapping::Enum(labels) = leaf {
        let mut json = String::from("[");
        for (i, label) in labels.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            crate::types::push_json_string(&mut json, label);
        }
        json.push(']');
        meta.insert(META_ENUM_LABELS.to_owned(), json);
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::oid;

    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        let mut add = |oid, name: &str, kind| {
            c.insert(CatalogType {
                oid,
                schema: "public".into(),
                name: name.into(),
                display: name.into(),
                kind,
            })
        };
        add(1007, "_int4", CatalogKind::Array { element: oid::INT4 });
        add(
            90000,
            "mood",
            CatalogKind::Enum {
                labels: vec!["sad".into(), "ok".into()],
            },
        );
        add(
            90001,
            "pair",
            CatalogKind::Composite {
                fields: vec![
                    Attribute {
                        name: "a".into(),
                        oid: oid::INT4,
                        typmod: -1,
                        display: "integer".into(),
                        dims: 0,
                    },
                    Attribute {
                        name: "m".into(),
                        oid: 90000,
                        typmod: -1,
                        display: "mood".into(),
                        dims: 0,
                    },
                ],
            },
        );
        add(
            90002,
            "posint",
            CatalogKind::Domain {
                base: 1007,
                typmod: -1,
                dims: 0,
            },
        );
        add(3904, "int4range", CatalogKind::Range { subtype: oid::INT4 });
        add(90003, "weird", CatalogKind::Base);
        add(90004, "_weird", CatalogKind::Array { element: 90003 });
        c
    }

    #[test]
    fn resolves_nested_types() {
        let c = catalog();
        let p = Policies::default();
        let arr = TypeMapping::resolve(90002, -1, &c, &p, 2).unwrap();
        assert_eq!(arr.data_type().to_string(), "List(List(Int32))");
        let pair = TypeMapping::resolve(90001, -1, &c, &p, 1).unwrap();
        assert!(matches!(&pair, TypeMapping::Struct(f) if f.len() == 2));
        assert!(matches!(
            TypeMapping::resolve(90000, -1, &c, &p, 1).unwrap(),
            TypeMapping::Enum(_)
        ));
        let utf8_enums = Policies {
            enums: EnumLayout::Utf8,
            ..p
        };
        assert_eq!(
            TypeMapping::resolve(90000, -1, &c, &utf8_enums, 1)
                .unwrap()
                .data_type(),
            DataType::Utf8
        );
        assert!(TypeMapping::resolve(3904, -1, &c, &p, 1).is_some());
        // Nothing decodes `weird`, so neither it nor its array resolves.
        assert_eq!(TypeMapping::resolve(90003, -1, &c, &p, 1), None);
        assert_eq!(TypeMapping::resolve(90004, -1, &c, &p, 1), None);
    }

    #[test]
    fn policies_shape_types() {
        let p = Policies {
            numeric: NumericTarget::Float64,
            text: TextLayout::Large,
            ..Policies::default()
        };
        assert_eq!(
            TypeMapping::builtin(oid::NUMERIC, -1, &p)
                .unwrap()
                .data_type(),
            DataType::Float64
        );
        assert_eq!(
            TypeMapping::builtin(oid::TEXT, -1, &p).unwrap().data_type(),
            DataType::LargeUtf8
        );
        let b = Policies {
            invalid_utf8: InvalidUtf8::Binary,
            ..p
        };
        assert_eq!(
            TypeMapping::builtin(oid::TEXT, -1, &b).unwrap().data_type(),
            DataType::Binary
        );
    }
}
