//! The PostgreSQL side of pgarrow: what both directions, binary COPY to Arrow
//! (`pgarrow-decode`) and Arrow to binary COPY (`pgarrow-encode`), know about PostgreSQL's
//! types, with no Arrow, no sockets and no I/O.
//!
//! * [`oid`]: the OIDs of the built-in types, and [`BuiltinType`], the built-in scalar types
//!   with a binary format pgarrow reads and writes, by OID;
//! * [`PgColumn`]: a result column as the server describes it (name, type OID, typmod, type
//!   name), and [`builtin_type_name`], how `format_type` names a built-in type;
//! * [`Catalog`]: the types a set of columns needs, from one catalog query: arrays,
//!   composites ([`Attribute`]s), enums, domains, ranges, multiranges and extension types
//!   ([`CatalogType`], [`CatalogKind`]), and the session's `money` scale;
//! * [`TableName`]: a relation's name held exactly, read as SQL reads it, and quoted for SQL
//!   ([`quote_ident`], [`quote_literal`]); [`PartRange`]: what one part of a partitioned read
//!   holds;
//! * [`ChoiceError`]: a word that names none of an option's choices;
//! * [`numeric_typmod`]: a `numeric(p,s)` typmod's precision and scale;
//! * [`DATE_INFINITY`] and [`TIMESTAMP_INFINITY`]: the values pgarrow gives ±infinity in
//!   Arrow's dates and timestamps, which the decoder writes and the encoder reads back;
//!   [`civil_from_days`]: the calendar date of a day count; [`write_time`]: a time of day as
//!   PostgreSQL prints it.
//!
//! How these types become Arrow types is the decoder's business (its `plan` module); how Arrow
//! values are written in their binary formats is the encoder's.
//!
//! ```
//! use pgarrow_types::{BuiltinType, Catalog, CatalogKind, CatalogType, PgColumn, oid};
//!
//! // numeric(12,2): the typmod the server reports in a RowDescription.
//! let price = PgColumn::new("price", oid::NUMERIC, ((12 << 16) | 2) + 4);
//! assert_eq!(price.type_name, "numeric(12,2)");
//! assert_eq!(BuiltinType::from_oid(price.oid), Some(BuiltinType::Numeric));
//!
//! // `integer[]` is not a scalar: the catalog says what it is.
//! let mut catalog = Catalog::new();
//! catalog.insert(CatalogType {
//!     oid: 1007,
//!     schema: "pg_catalog".into(),
//!     name: "_int4".into(),
//!     display: "integer[]".into(),
//!     kind: CatalogKind::Array { element: oid::INT4 },
//! });
//! assert_eq!(BuiltinType::from_oid(1007), None);
//! assert_eq!(catalog.get(1007).unwrap().kind, CatalogKind::Array { element: oid::INT4 });
//! ```
#![warn(missing_docs)]

mod builtin;
mod catalog;
mod choice;
mod column;
mod name;
pub mod oid;
mod part;
pub mod wkb;

pub use builtin::{BuiltinType, builtin_type_name, numeric_typmod};
pub use catalog::{Attribute, Catalog, CatalogKind, CatalogType};
pub use choice::ChoiceError;
pub use column::PgColumn;
pub use name::{InvalidName, TableName, plain_ident, quote_ident, quote_literal};
pub use part::PartRange;

/// Appends `v` to `out` as a JSON string literal: the escapes JSON requires, every other
/// character as it is.
pub fn push_json_string(out: &mut String, v: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `date` `-infinity` and `infinity` as pgarrow writes them in Arrow's Date32 (days since
/// 1970): `∓i32::MAX`. The one place that says so, for both directions: the decoder writes
/// them, the encoder reads them back as ±infinity.
///
/// They are the Arrow type's largest value and its negation, as DuckDB stores them, so that
/// DuckDB reads them back as ±infinity. (PostgreSQL keeps `-infinity` one lower, at the type's
/// minimum, which DuckDB's casts refuse.) No finite PostgreSQL date comes near either.
pub const DATE_INFINITY: (i32, i32) = (-i32::MAX, i32::MAX);

/// `(year, month 1-12, day 1-31)` of `days` since 1970-01-01 in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`), over any day count a Date32 or a timestamp
/// can hold; years before 1 are 0, -1, ...: ISO 8601's astronomical numbering.
///
/// ```
/// assert_eq!(pgarrow_types::civil_from_days(0), (1970, 1, 1));
/// assert_eq!(pgarrow_types::civil_from_days(-1), (1969, 12, 31));
/// assert_eq!(pgarrow_types::civil_from_days(i64::from(i32::MAX)), (5_881_580, 7, 11));
/// ```
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `timestamp`/`timestamptz` `-infinity` and `infinity` as pgarrow writes them in Arrow's
/// Timestamp(µs) (microseconds since 1970): `∓i64::MAX`, as [`DATE_INFINITY`] is for dates.
pub const TIMESTAMP_INFINITY: (i64, i64) = (-i64::MAX, i64::MAX);

/// Appends `micros` since midnight as PostgreSQL's `time_out` prints a time of day:
/// `HH:MM:SS`, then the microseconds without their trailing zeros (none when whole). 24:00:00,
/// which PostgreSQL allows, prints as its hours; a negative value as midnight.
///
/// ```
/// let mut out = Vec::new();
/// pgarrow_types::write_time(45_296_500_000, &mut out);
/// assert_eq!(out, b"12:34:56.5");
/// ```
pub fn write_time(micros: i64, out: &mut Vec<u8>) {
    let micros = micros.max(0);
    let (secs, frac) = (micros / 1_000_000, micros % 1_000_000);
    let two = |n: i64, out: &mut Vec<u8>| {
        out.push(b'0' + (n / 10 % 10) as u8);
        out.push(b'0' + (n % 10) as u8);
    };
    let hours = secs / 3600;
    if hours >= 100 {
        out.extend_from_slice(hours.to_string().as_bytes());
    } else {
        two(hours, out);
    }
    out.push(b':');
    two(secs / 60 % 60, out);
    out.push(b':');
    two(secs % 60, out);
    if frac != 0 {
        let mut digits = [b'0'; 6];
        let mut f = frac;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (f % 10) as u8;
            f /= 10;
        }
        let len = digits.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1);
        out.push(b'.');
        out.extend_from_slice(&digits[..len]);
    }
}
