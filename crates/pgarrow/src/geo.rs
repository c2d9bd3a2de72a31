//! The CRS of a PostGIS column that declares none (`geometry`, not `geometry(Point, 4326)`):
//! the SRID of its first value, asked of the server before the export, so that the schema
//! (GeoArrow's field metadata, GeoParquet's `geo`) can name it from the start. The decoder then
//! holds every value to it: a column mixing SRIDs is refused, row and column named.

use pgarrow_decode::ColumnMapping;
use pgarrow_decode::mapping::TypeMapping;
use pgarrow_decode::types::{ColumnKind, Geo};

use crate::protocol::Connection;
use crate::{Error, Result};

/// Sets the SRID of each geometry or geography column of `columns` (the result of `sql`) that
/// declares none to its first non-NULL value's, by one short query per such column (a table
/// scan stops at that value; a column NULL throughout is read to its end). A column whose
/// values are all NULL keeps [`Geo::UNKNOWN`].
///
/// # Errors
/// The server's error for the query; a value that is not hex EWKB.
pub(crate) async fn find_srids(
    conn: &mut Connection,
    sql: &str,
    columns: &mut [ColumnMapping],
) -> Result<()> {
    let aliases: Vec<String> = (1..=columns.len()).map(|k| format!("c{k}")).collect();
    for (column, alias) in columns.iter_mut().zip(&aliases) {
        if column.cast.is_some() || unknown_srid(&mut column.kind).is_none() {
            continue;
        }
        let query = format!(
            "SELECT {alias} FROM ({sql}\n) AS _pgarrow({}) WHERE {alias} IS NOT NULL LIMIT 1",
            aliases.join(", "),
        );
        let rows = conn.simple_query(&query).await?;
        let Some(Some(hex)) = rows.first().and_then(|r| r.first()) else {
            continue;
        };
        let srid = hex_ewkb_srid(hex).ok_or_else(|| {
            Error::usage(format!(
                "column {:?}: the server's text for a {} is not hex EWKB: {:.40}",
                column.column.name, column.column.type_name, hex
            ))
        })?;
        if let Some(unknown) = unknown_srid(&mut column.kind) {
            *unknown = srid;
        }
    }
    Ok(())
}

/// The SRID of a geometry column that neither declares nor has found one.
fn unknown_srid(kind: &mut TypeMapping) -> Option<&mut i32> {
    match kind {
        TypeMapping::Scalar {
            kind: ColumnKind::Wkb(geo),
            ..
        } if geo.srid == Geo::UNKNOWN => Some(&mut geo.srid),
        _ => None,
    }
}

/// The SRID in the header of a hex EWKB value (`geometry_out`'s text), 0 when it has none.
fn hex_ewkb_srid(hex: &str) -> Option<i32> {
    let byte = |k: usize| u8::from_str_radix(hex.get(2 * k..2 * k + 2)?, 16).ok();
    let little = match byte(0)? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let word = |at: usize| -> Option<u32> {
        let b = [byte(at)?, byte(at + 1)?, byte(at + 2)?, byte(at + 3)?];
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    if word(1)? & 0x2000_0000 == 0 {
        return Some(0);
    }
    Some(word(5)? as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_srid_of_hex_ewkb() {
        assert_eq!(
            hex_ewkb_srid("0101000020E6100000000000000000F03F0000000000000040"),
            Some(4326)
        );
        assert_eq!(hex_ewkb_srid("00200000010000110F3FF0"), Some(4367));
        assert_eq!(
            hex_ewkb_srid("0101000000000000000000F03F0000000000000040"),
            Some(0)
        );
        assert_eq!(hex_ewkb_srid("0201"), None);
        assert_eq!(hex_ewkb_srid("0101000020E6"), None);
    }
}
