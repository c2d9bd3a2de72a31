//! PostGIS `geometry` and `geography`: the server's EWKB rewritten as ISO WKB, the form
//! `geoarrow.wkb` and GeoParquet name, with each value's SRID checked against the column's.

use arrow_array::ArrayRef;
use pgarrow_types::wkb::ewkb_to_iso;

use crate::buffers::Var;
use crate::column::FinishError;
use crate::error::FieldError;
use crate::types::Geo;
use crate::wire::FieldResult;

/// A geometry column: ISO WKB values, and the SRID they must have.
#[derive(Debug)]
pub(crate) struct WkbCol {
    pub(crate) values: Var,
    pub(crate) geo: Geo,
}

impl WkbCol {
    pub(crate) fn new(values: Var, geo: Geo) -> WkbCol {
        WkbCol { values, geo }
    }

    pub(crate) fn push(&mut self, b: &[u8]) -> FieldResult<()> {
        let start = self.values.values.len();
        let srid = match ewkb_to_iso(b, &mut self.values.values) {
            Ok(srid) => srid.unwrap_or(0),
            Err(e) => {
                self.values.values.truncate(start);
                return Err(FieldError::new(e.to_string()));
            }
        };
        if self.geo.srid == Geo::UNKNOWN {
            self.geo.srid = srid;
        } else if srid != self.geo.srid {
            self.values.values.truncate(start);
            return Err(FieldError::new(srid_mismatch(srid, self.geo)));
        }
        self.values.end()
    }

    pub(crate) fn push_null(&mut self) {
        self.values.push_null();
    }

    pub(crate) fn finish(&mut self) -> Result<ArrayRef, FinishError> {
        self.values.finish_binary()
    }
}

#[cold]
fn srid_mismatch(srid: i32, geo: Geo) -> String {
    let what = if geo.geography {
        "geography"
    } else {
        "geometry"
    };
    match geo.srid {
        0 => format!(
            "a {what} with SRID {srid} in a column whose values have none: a column holds one \
             CRS (ST_SetSRID the others in the query, or export them apart)"
        ),
        column => format!(
            "a {what} with SRID {srid} in a column of SRID {column}: a column holds one CRS, \
             found before the export from its declared type or first value (ST_Transform the \
             values to one SRID in the query, or export them apart)"
        ),
    }
}
