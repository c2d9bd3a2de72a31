//! The built-in scalar types pgarrow reads and writes in their binary formats, and how
//! `format_type` names built-in types.

use crate::oid;

/// A built-in scalar type with a binary format that pgarrow reads (`*_send`) and writes
/// (`*_recv`), known by its OID. Types that share one binary format and one meaning share a
/// variant (`oid`, `xid`, `cid` and the `reg*` types); types that differ in what they accept
/// (`text`, `varchar`, `bpchar`, `name`, `xml`) do not.
///
/// Each direction decides what a type becomes: the decoder its Arrow type, the encoder the
/// Arrow types it takes. Not `non_exhaustive`: a type added here is a compile error in both
/// until each decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinType {
    /// `bool`.
    Bool,
    /// `int2`.
    Int2,
    /// `int4`.
    Int4,
    /// `int8`.
    Int8,
    /// `oid`, `xid`, `cid` and the `reg*` types (`regclass`, `regtype`, ...): an unsigned
    /// 32-bit number.
    Oid,
    /// `float4`.
    Float4,
    /// `float8`.
    Float8,
    /// `numeric`, constrained by its typmod ([`numeric_typmod`]) or not.
    Numeric,
    /// `money`: an int8 count of the currency's minor unit, whose scale is the session's
    /// (`lc_monetary`, [`Catalog::money_scale`](crate::Catalog::money_scale)).
    Money,
    /// `text`.
    Text,
    /// `varchar(n)`: at most n characters (typmod n + 4), or unconstrained (-1).
    Varchar,
    /// `char(n)` (`bpchar`): n characters, blank-padded (typmod n + 4), or unconstrained.
    Bpchar,
    /// `name`: at most 63 bytes.
    Name,
    /// `xml`: text.
    Xml,
    /// `"char"`: one byte.
    Char,
    /// `bytea`.
    Bytea,
    /// `uuid`.
    Uuid,
    /// `json`: text.
    Json,
    /// `jsonb`: a version byte (1), then text.
    Jsonb,
    /// `date`: days from 2000-01-01.
    Date,
    /// `time`: microseconds from midnight.
    Time,
    /// `timetz`: microseconds from midnight, then the zone's offset in seconds west of UTC.
    Timetz,
    /// `timestamp`: microseconds from 2000-01-01.
    Timestamp,
    /// `timestamptz`: microseconds from 2000-01-01 UTC.
    Timestamptz,
    /// `interval`: microseconds, days and months.
    Interval,
}

impl BuiltinType {
    /// The built-in type with OID `type_oid`, or `None` for any other type (arrays, domains,
    /// composites, extension types, and built-in types with no binary format here).
    pub fn from_oid(type_oid: u32) -> Option<BuiltinType> {
        use oid::*;
        Some(match type_oid {
            BOOL => BuiltinType::Bool,
            INT2 => BuiltinType::Int2,
            INT4 => BuiltinType::Int4,
            INT8 => BuiltinType::Int8,
            OID | XID | CID | REGPROC | REGPROCEDURE | REGOPER | REGOPERATOR | REGCLASS
            | REGTYPE | REGCONFIG | REGDICTIONARY | REGNAMESPACE | REGROLE | REGCOLLATION => {
                BuiltinType::Oid
            }
            FLOAT4 => BuiltinType::Float4,
            FLOAT8 => BuiltinType::Float8,
            NUMERIC => BuiltinType::Numeric,
            MONEY => BuiltinType::Money,
            TEXT => BuiltinType::Text,
            VARCHAR => BuiltinType::Varchar,
            BPCHAR => BuiltinType::Bpchar,
            NAME => BuiltinType::Name,
            XML => BuiltinType::Xml,
            CHAR => BuiltinType::Char,
            BYTEA => BuiltinType::Bytea,
            UUID => BuiltinType::Uuid,
            JSON => BuiltinType::Json,
            JSONB => BuiltinType::Jsonb,
            DATE => BuiltinType::Date,
            TIME => BuiltinType::Time,
            TIMETZ => BuiltinType::Timetz,
            TIMESTAMP => BuiltinType::Timestamp,
            TIMESTAMPTZ => BuiltinType::Timestamptz,
            INTERVAL => BuiltinType::Interval,
            _ => return None,
        })
    }
}

/// The precision and scale of a `numeric` typmod, or `None` when unconstrained.
///
/// The scale may be negative or larger than the precision (PostgreSQL 15+).
pub fn numeric_typmod(typmod: i32) -> Option<(u16, i16)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = ((t >> 16) & 0xffff) as u16;
    // The scale is an 11-bit two's complement number.
    let scale = (((t & 0x7ff) ^ 1024) - 1024) as i16;
    Some((precision, scale))
}

/// The built-in name of a type, rendered like `format_type(oid, typmod)` for the types this
/// crate knows; `oid N` otherwise. Callers that can ask the server should prefer its answer.
pub fn builtin_type_name(type_oid: u32, typmod: i32) -> String {
    use oid::*;
    let base = match type_oid {
        BOOL => "boolean",
        BYTEA => "bytea",
        CHAR => "\"char\"",
        XML => "xml",
        NAME => "name",
        INT8 => "bigint",
        INT2 => "smallint",
        INT4 => "integer",
        REGPROC => "regproc",
        TEXT => "text",
        OID => "oid",
        XID => "xid",
        CID => "cid",
        JSON => "json",
        FLOAT4 => "real",
        FLOAT8 => "double precision",
        BPCHAR => "character",
        VARCHAR => "character varying",
        DATE => "date",
        TIME => "time without time zone",
        TIMETZ => "time with time zone",
        TIMESTAMP => "timestamp without time zone",
        TIMESTAMPTZ => "timestamp with time zone",
        INTERVAL => "interval",
        MONEY => "money",
        NUMERIC => "numeric",
        REGCLASS => "regclass",
        REGTYPE => "regtype",
        UUID => "uuid",
        JSONB => "jsonb",
        _ => return format!("oid {type_oid}"),
    };
    match type_oid {
        NUMERIC => match numeric_typmod(typmod) {
            Some((p, s)) => format!("numeric({p},{s})"),
            None => base.to_owned(),
        },
        BPCHAR | VARCHAR if typmod >= 4 => format!("{base}({})", typmod - 4),
        _ => base.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_mod(p: i32, s: i32) -> i32 {
        ((p << 16) | (s & 0x7ff)) + 4
    }

    #[test]
    fn numeric_typmods() {
        assert_eq!(numeric_typmod(-1), None);
        assert_eq!(numeric_typmod(numeric_mod(12, 2)), Some((12, 2)));
        assert_eq!(numeric_typmod(numeric_mod(5, -2)), Some((5, -2)));
        assert_eq!(numeric_typmod(numeric_mod(1000, 1000)), Some((1000, 1000)));
    }

    #[test]
    fn builtin_types_by_oid() {
        assert_eq!(BuiltinType::from_oid(oid::INT4), Some(BuiltinType::Int4));
        assert_eq!(BuiltinType::from_oid(oid::REGROLE), Some(BuiltinType::Oid));
        assert_eq!(BuiltinType::from_oid(oid::MONEY), Some(BuiltinType::Money));
        // No binary format here: inet, and anything the catalog must describe (int4[]).
        assert_eq!(BuiltinType::from_oid(oid::INET), None);
        assert_eq!(BuiltinType::from_oid(1007), None);
    }

    #[test]
    fn builtin_names() {
        assert_eq!(builtin_type_name(869, -1), "oid 869");
        assert_eq!(builtin_type_name(oid::VARCHAR, 24), "character varying(20)");
        assert_eq!(builtin_type_name(oid::BPCHAR, -1), "character");
        assert_eq!(
            builtin_type_name(oid::NUMERIC, numeric_mod(12, 2)),
            "numeric(12,2)"
        );
    }
}
