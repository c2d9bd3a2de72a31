//! PostgreSQL types and the Arrow types they map to.
//!
//! The mapping is chosen once per column, from the type OID and typmod the server reports in
//! its RowDescription. Columns whose type has no binary decoder here are cast to `text` in the
//! query's projection by the caller (see [`ColumnKind::for_type`] returning `None`), so an
//! export never fails on a type.

use std::sync::Arc;

use arrow_schema::{DataType, Field, TimeUnit};

/// Type OIDs of the built-in types (from `pg_type.dat`), from `pgarrow-types`.
pub use pgarrow_types::oid;
/// PostgreSQL's own descriptions of built-in types, from `pgarrow-types`.
pub use pgarrow_types::{BuiltinType, builtin_type_name, numeric_typmod};

/// Field metadata key: the PostgreSQL type name (`format_type` output, e.g. `numeric(12,2)`).
pub const META_PG_TYPE: &str = "pgarrow.pg_type";
/// Field metadata key: the PostgreSQL type OID.
pub const META_PG_OID: &str = "pgarrow.pg_oid";
/// Field metadata key: the PostgreSQL typmod (-1 when none).
pub const META_PG_TYPMOD: &str = "pgarrow.pg_typmod";
/// Field metadata key, present when the column was cast to `text` on the server because it
/// has no binary decoder; its value is the cast applied.
pub const META_PG_CAST: &str = "pgarrow.cast";
/// Field metadata: `true` when the source table declares the column NOT NULL.
pub const META_NOT_NULL: &str = "pgarrow.not_null";
/// Field metadata: the column's place (from 1) in the source table's primary key.
pub const META_PRIMARY_KEY: &str = "pgarrow.primary_key";
/// Arrow's extension type name key.
pub const META_EXTENSION_NAME: &str = "ARROW:extension:name";
/// Arrow's extension type metadata key.
pub const META_EXTENSION_METADATA: &str = "ARROW:extension:metadata";

/// How one column's binary fields are decoded, and into which Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ColumnKind {
    /// `bool` -> Boolean.
    Bool,
    /// `int2` -> Int16.
    Int2,
    /// `int4` -> Int32.
    Int4,
    /// `int8` -> Int64.
    Int8,
    /// `oid`, `xid`, `cid`, `reg*` -> UInt32.
    Oid,
    /// `float4` -> Float32.
    Float4,
    /// `float8` -> Float64.
    Float8,
    /// `numeric(p,s)` with an Arrow precision up to 38 -> Decimal128.
    Decimal128 {
        /// Arrow precision.
        precision: u8,
        /// Arrow scale.
        scale: i8,
    },
    /// `numeric(p,s)` with an Arrow precision from 39 to 76 -> Decimal256.
    Decimal256 {
        /// Arrow precision.
        precision: u8,
        /// Arrow scale.
        scale: i8,
    },
    /// Unconstrained `numeric` -> Utf8 holding the exact decimal text.
    NumericText,
    /// `text`, `varchar`, `bpchar`, `name`, and anything cast to text -> Utf8.
    Text,
    /// `bytea` -> Binary.
    Bytea,
    /// `uuid` -> FixedSizeBinary(16), extension `arrow.uuid`.
    Uuid,
    /// `json` -> Utf8, extension `arrow.json`.
    Json,
    /// `jsonb` -> Utf8, extension `arrow.json` (version byte checked and stripped).
    Jsonb,
    /// `date` -> Date32.
    Date,
    /// `time` -> Time64(us).
    Time,
    /// `timetz` -> Utf8, rendered as `timetz_out` does (`12:34:56.5+05:30`): Arrow has no
    /// time of day with a zone, and the text keeps both exactly.
    Timetz,
    /// `timetz[]` -> Utf8, the whole array as `array_out` renders it (`{12:00:00+05:30,NULL}`):
    /// the text the server gives for the array cast to `text`, which is how an export holds
    /// it, from the binary form a replication stream sends.
    TimetzArray,
    /// `timestamp` -> Timestamp(us, None).
    Timestamp,
    /// `timestamptz` -> Timestamp(us, "UTC").
    Timestamptz,
    /// `interval` -> Interval(MonthDayNano).
    Interval,
    /// `"char"` -> Utf8, rendered as `charout` does (`\\0` is empty, high bytes `\\ooo`).
    Char,
    /// `ltree` (extension) -> Utf8 (version byte checked and stripped).
    Ltree,
    /// PostGIS `geometry` / `geography` -> Binary ISO WKB (the server's EWKB with the SRID
    /// taken out into the column's CRS), extension `geoarrow.wkb`.
    Wkb(Geo),
    /// `numeric` under the `float64` policy -> Float64 (rounded, counted).
    NumericFloat64,
    /// `money` -> Decimal128(19, scale): its int8 count of the currency's minor unit, with the
    /// session's `lc_monetary` fraction digits as the scale (exact; planned only when the
    /// catalog gives the scale, see [`Catalog::set_money_scale`](crate::mapping::Catalog::set_money_scale)).
    Money {
        /// Fraction digits of `lc_monetary` (0 to 10).
        scale: i8,
    },
}

/// The Arrow precision of `money`: every int8 has at most 19 digits.
pub const MONEY_PRECISION: u8 = 19;

impl ColumnKind {
    /// The decoder for a type, or `None` when it has no binary decoder and the caller must cast
    /// the column to `text` in the projection.
    pub fn for_type(oid: u32, typmod: i32) -> Option<ColumnKind> {
        use BuiltinType as B;
        Some(match BuiltinType::from_oid(oid)? {
            B::Bool => ColumnKind::Bool,
            B::Int2 => ColumnKind::Int2,
            B::Int4 => ColumnKind::Int4,
            B::Int8 => ColumnKind::Int8,
            B::Oid => ColumnKind::Oid,
            B::Float4 => ColumnKind::Float4,
            B::Float8 => ColumnKind::Float8,
            B::Numeric => numeric_kind(typmod),
            B::Text | B::Varchar | B::Bpchar | B::Name | B::Xml => ColumnKind::Text,
            B::Char => ColumnKind::Char,
            B::Bytea => ColumnKind::Bytea,
            B::Uuid => ColumnKind::Uuid,
            B::Json => ColumnKind::Json,
            B::Jsonb => ColumnKind::Jsonb,
            B::Date => ColumnKind::Date,
            B::Time => ColumnKind::Time,
            B::Timetz => ColumnKind::Timetz,
            B::Timestamp => ColumnKind::Timestamp,
            B::Timestamptz => ColumnKind::Timestamptz,
            B::Interval => ColumnKind::Interval,
            // Its scale is the session's: planned with the catalog (`TypeMapping::resolve`).
            B::Money => return None,
        })
    }

    /// The Arrow type this kind produces with text as Utf8.
    pub fn data_type(&self) -> DataType {
        self.data_type_with(crate::mapping::StrLayout::Utf8)
    }

    /// The Arrow type this kind produces, text-like kinds laid out as `layout`.
    pub fn data_type_with(&self, layout: crate::mapping::StrLayout) -> DataType {
        use crate::mapping::StrLayout;
        match *self {
            ColumnKind::NumericText if layout == StrLayout::Binary => DataType::Utf8,
            ColumnKind::NumericText
            | ColumnKind::Text
            | ColumnKind::Json
            | ColumnKind::Jsonb
            | ColumnKind::Char
            | ColumnKind::Ltree
            | ColumnKind::Timetz
            | ColumnKind::TimetzArray => layout.data_type(),
            ColumnKind::Wkb(_) => DataType::Binary,
            ColumnKind::NumericFloat64 => DataType::Float64,
            ColumnKind::Bool => DataType::Boolean,
            ColumnKind::Int2 => DataType::Int16,
            ColumnKind::Int4 => DataType::Int32,
            ColumnKind::Int8 => DataType::Int64,
            ColumnKind::Oid => DataType::UInt32,
            ColumnKind::Float4 => DataType::Float32,
            ColumnKind::Float8 => DataType::Float64,
            ColumnKind::Decimal128 { precision, scale } => DataType::Decimal128(precision, scale),
            ColumnKind::Decimal256 { precision, scale } => DataType::Decimal256(precision, scale),
            ColumnKind::Money { scale } => DataType::Decimal128(MONEY_PRECISION, scale),
            ColumnKind::Bytea => DataType::Binary,
            ColumnKind::Uuid => DataType::FixedSizeBinary(16),
            ColumnKind::Date => DataType::Date32,
            ColumnKind::Time => DataType::Time64(TimeUnit::Microsecond),
            ColumnKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnKind::Timestamptz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
            }
            ColumnKind::Interval => DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano),
        }
    }

    /// The Arrow extension type name this kind carries, if any.
    pub fn extension_name(&self) -> Option<&'static str> {
        match self {
            ColumnKind::Uuid => Some("arrow.uuid"),
            ColumnKind::Json | ColumnKind::Jsonb => Some("arrow.json"),
            ColumnKind::Wkb(_) => Some("geoarrow.wkb"),
            _ => None,
        }
    }
}

/// A PostGIS column's place on the earth: the SRID of its values, and whether it is a
/// `geography` (edges on the sphere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geo {
    /// The SRID every value has: the column's declared one (`geometry(Point, 4326)`), or the
    /// one its first value has, found before the export (the engine's plan does); 0 for none
    /// (every value has none). [`Geo::UNKNOWN`] when neither could be known before the
    /// values came: the first value's is then every value's, and the schema names no CRS.
    pub srid: i32,
    /// A `geography`: edges are great-circle arcs.
    pub geography: bool,
}

impl Geo {
    /// [`Geo::srid`] before anything said it.
    pub const UNKNOWN: i32 = -1;

    /// The column's SRID as its PostGIS typmod declares it (`geometry(Point, 4326)`), else
    /// [`Geo::UNKNOWN`].
    pub fn from_typmod(typmod: i32, geography: bool) -> Geo {
        // gserialized_typmod.h: TYPMOD_GET_SRID, a signed 21-bit field.
        let srid = if typmod < 0 {
            0
        } else {
            ((typmod & 0x0FFF_FF00) - (typmod & 0x1000_0000)) >> 8
        };
        Geo {
            srid: if srid == 0 { Geo::UNKNOWN } else { srid },
            geography,
        }
    }

    /// GeoArrow's `ARROW:extension:metadata` for `geoarrow.wkb`: the CRS as an authority code
    /// (`EPSG:<srid>`; PostGIS's SRIDs are EPSG's codes), and `spherical` edges for a
    /// geography.
    pub fn extension_metadata(&self) -> String {
        let mut parts = Vec::new();
        if self.srid > 0 {
            parts.push(format!(
                "\"crs\":\"EPSG:{}\",\"crs_type\":\"authority_code\"",
                self.srid
            ));
        }
        if self.geography {
            parts.push("\"edges\":\"spherical\"".to_owned());
        }
        format!("{{{}}}", parts.join(","))
    }
}

/// Arrow decimal for a `numeric` typmod.
///
/// A negative scale `s` (values are multiples of 10^-s) becomes scale 0 with `p - s` digits, and
/// a scale beyond the precision becomes `Decimal(s, s)`, so every value of the column fits and
/// the type stays one that Parquet and other readers accept.
fn numeric_kind(typmod: i32) -> ColumnKind {
    let Some((p, s)) = numeric_typmod(typmod) else {
        return ColumnKind::NumericText;
    };
    let (p, s) = if s < 0 {
        (i32::from(p) - i32::from(s), 0)
    } else if i32::from(s) > i32::from(p) {
        (i32::from(s), s)
    } else {
        (i32::from(p), s)
    };
    match p {
        1..=38 => ColumnKind::Decimal128 {
            precision: p as u8,
            scale: s as i8,
        },
        39..=76 => ColumnKind::Decimal256 {
            precision: p as u8,
            scale: s as i8,
        },
        _ => ColumnKind::NumericText,
    }
}

/// Appends `v` to `out` as a JSON string literal (for metadata values and reports).
pub use pgarrow_types::push_json_string;

/// The Arrow field for a column decoded by `plan`, carrying the PostgreSQL type in its metadata.
///
/// `cast` names the server-side cast applied to the column, if any (`"text"`).
pub fn arrow_field(
    column: &crate::PgColumn,
    plan: &crate::mapping::TypeMapping,
    cast: Option<&str>,
) -> Field {
    let mut meta =
        crate::mapping::type_metadata(&column.type_name, column.oid, column.typmod, plan);
    if let Some(cast) = cast {
        meta.insert(META_PG_CAST.to_owned(), cast.to_owned());
    }
    Field::new(&column.name, plan.data_type(), true).with_metadata(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_mod(p: i32, s: i32) -> i32 {
        ((p << 16) | (s & 0x7ff)) + 4
    }

    #[test]
    fn numeric_kinds() {
        let k = |p, s| ColumnKind::for_type(oid::NUMERIC, numeric_mod(p, s)).unwrap();
        assert_eq!(
            k(12, 2),
            ColumnKind::Decimal128 {
                precision: 12,
                scale: 2
            }
        );
        assert_eq!(
            k(38, 0),
            ColumnKind::Decimal128 {
                precision: 38,
                scale: 0
            }
        );
        assert_eq!(
            k(39, 5),
            ColumnKind::Decimal256 {
                precision: 39,
                scale: 5
            }
        );
        assert_eq!(
            k(5, -2),
            ColumnKind::Decimal128 {
                precision: 7,
                scale: 0
            }
        );
        assert_eq!(
            k(2, 5),
            ColumnKind::Decimal128 {
                precision: 5,
                scale: 5
            }
        );
        assert_eq!(k(77, 0), ColumnKind::NumericText);
        assert_eq!(
            ColumnKind::for_type(oid::NUMERIC, -1),
            Some(ColumnKind::NumericText)
        );
    }

    #[test]
    fn unknown_types_need_a_cast() {
        assert_eq!(ColumnKind::for_type(oid::INET, -1), None);
        // money's scale is the session's: planned with the catalog.
        assert_eq!(ColumnKind::for_type(oid::MONEY, -1), None);
    }
}
