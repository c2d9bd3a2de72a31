//! A result column's plan: what the server said about it, how its bytes are decoded (or cast
//! to text by the server first), and which policies can change what comes out.

use pgarrow_types::PgColumn;

use crate::plan::{Catalog, StrLayout, TypePlan};
use crate::policy::Policies;
use crate::types::{ColumnKind, arrow_field, oid};

/// A column to decode: what the server said about it, and how to decode it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPlan {
    /// The column as described by the server (its original type, before any cast).
    pub column: PgColumn,
    /// The decoder for the bytes that will arrive.
    pub kind: TypePlan,
    /// The server-side cast applied in the projection, if the type has no decoder.
    pub cast: Option<&'static str>,
}

impl ColumnPlan {
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
    pub fn for_column(column: PgColumn) -> ColumnPlan {
        Self::plan(column, &Catalog::new(), &Policies::default(), 1)
    }

    /// Plans a column with a catalog (for arrays, composites, enums, domains, ranges and
    /// extension types) and policies; `dims` is the array dimension count to plan for.
    pub fn plan(
        column: PgColumn,
        catalog: &Catalog,
        policies: &Policies,
        dims: usize,
    ) -> ColumnPlan {
        match TypePlan::resolve(column.oid, column.typmod, catalog, policies, dims) {
            Some(kind) => ColumnPlan {
                column,
                kind,
                cast: None,
            },
            None => ColumnPlan {
                kind: TypePlan::builtin(oid::TEXT, -1, policies).unwrap_or(TypePlan::Scalar {
                    kind: ColumnKind::Text,
                    layout: StrLayout::Utf8,
                }),
                column,
                cast: Some("text"),
            },
        }
    }

    /// The Arrow field this column produces.
    pub fn field(&self) -> arrow_schema::Field {
        arrow_field(&self.column, &self.kind, self.cast)
    }
}

/// The policies that can change how values of `plan` come out.
fn policies_for(plan: &TypePlan, cast: bool, out: &mut Vec<&'static str>) {
    use {ColumnKind as K, TypePlan as P};
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
