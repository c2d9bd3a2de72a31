//! A result column's mapping: what the server said about it, how its bytes are decoded (or cast
//! to text by the server first), and which policies can change what comes out.

use pgarrow_types::PgColumn;

use crate::mapping::{Catalog, StrLayout, TypeMapping};
use crate::policy::{ArrayShape, Policies, SpecialValues};
use crate::types::{ColumnKind, META_NOT_NULL, META_PRIMARY_KEY, arrow_field, oid};

/// A column to decode: what the server said about it, and how to decode it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMapping {
    /// The column as described by the server (its original type, before any cast).
    pub column: PgColumn,
    /// The decoder for the bytes that will arrive.
    pub kind: TypeMapping,
    /// The server-side cast applied in the projection, if the type has no decoder.
    pub cast: Option<&'static str>,
    /// What the source table declares about the column (set for a table's export): NOT
    /// NULL, and its place (from 1) in the primary key. Carried in the field's metadata
    /// ([`META_NOT_NULL`](crate::types::META_NOT_NULL),
    /// [`META_PRIMARY_KEY`](crate::types::META_PRIMARY_KEY)), so that a load that creates the
    /// table declares them too.
    pub constraints: Constraints,
}

/// A table column's constraints, as its export carries them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Constraints {
    /// `NOT NULL`.
    pub not_null: bool,
    /// The column's place in the table's primary key, from 1.
    pub key_position: Option<u16>,
}

impl Constraints {
    /// The constraints a field's metadata carries (as [`ColumnMapping::field`] writes them).
    pub fn of_field(field: &arrow_schema::Field) -> Constraints {
        let meta = field.metadata();
        Constraints {
            not_null: meta.get(META_NOT_NULL).is_some_and(|v| v == "true"),
            key_position: meta.get(META_PRIMARY_KEY).and_then(|k| k.parse().ok()),
        }
    }
}

impl ColumnMapping {
    /// The policies that can change how this column's values come out, by the names of
    /// [`Policies`]' options as the CLI spells them (`numeric`, `wide_numeric`, `numeric_overflow`,
    /// `infinity`, `out_of_range`, `text`, `invalid_utf8`, `enum`, `array_shape`), nested types
    /// included.
    pub fn applicable_policies(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        policies_for(&self.kind, self.cast.is_some(), &mut out);
        out
    }

    /// Plans a built-in column with the default policies: its own decoder when there is one,
    /// else a cast to `text`.
    pub fn for_column(column: PgColumn) -> ColumnMapping {
        Self::resolve(column, &Catalog::new(), &Policies::default(), 1)
    }

    /// Plans a column with a catalog (for arrays, composites, enums, domains, ranges and
    /// extension types) and policies; `dims` is the array dimension count to map for.
    pub fn resolve(
        column: PgColumn,
        catalog: &Catalog,
        policies: &Policies,
        dims: usize,
    ) -> ColumnMapping {
        match TypeMapping::resolve(column.oid, column.typmod, catalog, policies, dims) {
            Some(kind) if !as_text(&kind, policies) => ColumnMapping {
                column,
                kind,
                cast: None,
                constraints: Constraints::default(),
            },
            // No decoder, or a policy that asks for the server's text.
            _ => ColumnMapping::text(column, policies),
        }
    }

    /// A column whose values arrive as the server's text (cast to `text` in the projection,
    /// or sent as text by a replication stream), laid out as `policies` say.
    pub fn text(column: PgColumn, policies: &Policies) -> ColumnMapping {
        ColumnMapping {
            kind: TypeMapping::builtin(oid::TEXT, -1, policies).unwrap_or(TypeMapping::Scalar {
                kind: ColumnKind::Text,
                layout: StrLayout::Utf8,
            }),
            column,
            cast: Some("text"),
            constraints: Constraints::default(),
        }
    }

    /// For a column that arrives as the server's text ([`text`](ColumnMapping::text)) where
    /// a binary replication stream sends its binary form: the same field, decoded from that
    /// form when pgarrow renders it as the server does (`timetz[]`: `array_out`'s text);
    /// `None` for any other.
    pub fn from_binary_as_text(&self) -> Option<ColumnMapping> {
        /// `timetz[]`'s OID.
        const TIMETZ_ARRAY: u32 = 1270;
        let TypeMapping::Scalar { layout, .. } = self.kind else {
            return None;
        };
        (self.cast == Some("text") && self.column.oid == TIMETZ_ARRAY).then(|| ColumnMapping {
            kind: TypeMapping::Scalar {
                kind: ColumnKind::TimetzArray,
                layout,
            },
            ..self.clone()
        })
    }

    /// The Arrow field this column produces.
    pub fn field(&self) -> arrow_schema::Field {
        let field = arrow_field(&self.column, &self.kind, self.cast);
        if self.constraints == Constraints::default() {
            return field;
        }
        let mut meta = field.metadata().clone();
        if self.constraints.not_null {
            meta.insert(META_NOT_NULL.to_owned(), "true".to_owned());
        }
        if let Some(k) = self.constraints.key_position {
            meta.insert(META_PRIMARY_KEY.to_owned(), k.to_string());
        }
        field.with_metadata(meta)
    }
}

/// Whether `policies` ask for `plan`'s values as the server's text: `--out-of-range text` for
/// a type that can hold a value Arrow cannot, `--array-shape text` for arrays, anywhere in it.
fn as_text(plan: &TypeMapping, policies: &Policies) -> bool {
    use {ColumnKind as K, TypeMapping as P};
    let special = policies.special == SpecialValues::Text;
    let arrays = policies.array_shape == ArrayShape::Text;
    fn any(plan: &TypeMapping, hit: &dyn Fn(&TypeMapping) -> bool) -> bool {
        hit(plan)
            || match plan {
                P::List { element, .. } => any(element, hit),
                P::Multirange(e) | P::Range(e) => any(e, hit),
                P::Struct(fields) => fields.iter().any(|f| any(&f.plan, hit)),
                _ => false,
            }
    }
    any(plan, &|p| match p {
        P::List { .. } => arrays,
        P::Scalar { kind, .. } => {
            special
                && matches!(
                    kind,
                    K::NumericFloat64
                        | K::Decimal128 { .. }
                        | K::Decimal256 { .. }
                        | K::Time
                        | K::Timestamp
                        | K::Timestamptz
                        | K::Interval
                )
        }
        _ => false,
    })
}

/// The policies that can change how values of `plan` come out.
fn policies_for(plan: &TypeMapping, cast: bool, out: &mut Vec<&'static str>) {
    use {ColumnKind as K, TypeMapping as P};
    let mut add = |flag: &'static str| {
        if !out.contains(&flag) {
            out.push(flag);
        }
    };
    match plan {
        P::Scalar { kind, .. } => match kind {
            K::NumericText | K::NumericFloat64 => {
                add("numeric");
                add("out_of_range");
            }
            K::Decimal128 { .. } => {
                add("numeric_overflow");
                add("out_of_range");
            }
            K::Decimal256 { .. } => {
                add("wide_numeric");
                add("numeric_overflow");
                add("out_of_range");
            }
            K::Date => add("infinity"),
            K::Timestamp | K::Timestamptz => {
                add("infinity");
                add("out_of_range");
            }
            K::Time | K::Interval => add("out_of_range"),
            K::Text | K::Json | K::Jsonb | K::Char | K::Ltree => {
                add("text");
                add("invalid_utf8");
            }
            _ if cast => {
                add("text");
                add("invalid_utf8");
            }
            _ => {}
        },
        P::List { element, .. } => {
            add("array_shape");
            policies_for(element, false, out);
        }
        P::Multirange(e) | P::Range(e) => policies_for(e, false, out),
        P::Struct(fields) => {
            for f in fields {
                policies_for(&f.plan, false, out);
            }
        }
        P::Enum(_) => add("enum"),
        _ => {}
    }
}
