//! The SRID a GeoArrow or GeoParquet CRS names: PostGIS keeps a spatial reference as an SRID
//! (an EPSG code for the common ones), while files carry it as an authority code, a PROJJSON
//! object, or a bare SRID. This reads every form GeoArrow allows that names an EPSG code.
//!
//! ```
//! use pgarrow_encode::crs::{crs_srid, extension_srid};
//! use serde_json::json;
//!
//! assert_eq!(crs_srid(&json!("EPSG:3857"), None), Some(3857));
//! assert_eq!(crs_srid(&json!({"id": {"authority": "OGC", "code": "CRS84"}}), None), Some(4326));
//! assert_eq!(extension_srid(r#"{"crs": "4269", "crs_type": "srid"}"#), Some(4269));
//! assert_eq!(extension_srid(r#"{"crs": "ESRI:102003"}"#), None);
//! ```

use serde_json::Value;

/// The SRID GeoArrow's `ARROW:extension:metadata` (the JSON text of a `geoarrow.wkb`
/// field) names through its `crs` and `crs_type`; `None` when it names none, or one without
/// an EPSG code (or is not JSON).
pub fn extension_srid(metadata: &str) -> Option<i32> {
    let meta: Value = serde_json::from_str(metadata).ok()?;
    let crs = meta.get("crs")?;
    crs_srid(crs, meta.get("crs_type").and_then(Value::as_str))
}

/// The SRID a CRS value names:
/// - an authority code, `EPSG:4326` (any case);
/// - `OGC:CRS84` (and `CRS84` in an `id`), WGS 84 longitude first: PostGIS's 4326, which
///   PostGIS reads longitude first too;
/// - a PROJJSON object whose `id` (or first of `ids`) is an EPSG or OGC code;
/// - with `crs_type` `srid`, the number itself (as a number or text), and `srid:N` (as
///   Parquet's GEOMETRY and GEOGRAPHY types write one);
///
/// Anything else (WKT, other authorities, a PROJJSON object without an id) is `None`: the
/// loader writes SRID 0, PostGIS's "unknown", rather than guess.
pub fn crs_srid(crs: &Value, crs_type: Option<&str>) -> Option<i32> {
    match crs {
        Value::String(text) if crs_type == Some("srid") => text.trim().parse().ok(),
        Value::Number(n) if crs_type == Some("srid") => n.as_i64()?.try_into().ok(),
        Value::String(text) => {
            let (authority, code) = text.split_once(':')?;
            authority_code(authority, code)
        }
        Value::Object(o) => {
            let id = o
                .get("id")
                .or_else(|| o.get("ids").and_then(|ids| ids.get(0)))?;
            let authority = id.get("authority")?.as_str()?;
            match id.get("code")? {
                Value::String(code) => authority_code(authority, code),
                Value::Number(code) => authority_code(authority, &code.to_string()),
                _ => None,
            }
        }
        _ => None,
    }
}

fn authority_code(authority: &str, code: &str) -> Option<i32> {
    // `srid:N`: how Parquet's GEOMETRY and GEOGRAPHY types name a CRS by its SRID.
    if authority.eq_ignore_ascii_case("EPSG") || authority.eq_ignore_ascii_case("srid") {
        return code.trim().parse().ok().filter(|c| *c > 0);
    }
    let crs84 = authority.eq_ignore_ascii_case("OGC") && code.eq_ignore_ascii_case("CRS84");
    crs84.then_some(4326)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_form_of_an_epsg_code() {
        assert_eq!(crs_srid(&json!("epsg:32633"), None), Some(32633));
        assert_eq!(
            crs_srid(&json!("OGC:CRS84"), Some("authority_code")),
            Some(4326)
        );
        let projjson = json!({"type": "GeographicCRS", "name": "NAD83", "id": {"authority": "EPSG", "code": 4269}});
        assert_eq!(crs_srid(&projjson, Some("projjson")), Some(4269));
        let text_code = json!({"ids": [{"authority": "EPSG", "code": "3857"}]});
        assert_eq!(crs_srid(&text_code, None), Some(3857));
        assert_eq!(crs_srid(&json!(2154), Some("srid")), Some(2154));
        assert_eq!(crs_srid(&json!("srid:3035"), None), Some(3035));
        assert_eq!(crs_srid(&json!("srid:0"), None), None);
        assert_eq!(
            extension_srid(r#"{"crs":"EPSG:3857","crs_type":"authority_code"}"#),
            Some(3857)
        );
    }

    #[test]
    fn what_names_no_epsg_code_is_none() {
        assert_eq!(crs_srid(&json!("ESRI:102003"), None), None);
        assert_eq!(crs_srid(&json!("EPSG:0"), None), None);
        assert_eq!(crs_srid(&json!("EPSG:x"), None), None);
        assert_eq!(crs_srid(&json!({"name": "custom"}), None), None);
        assert_eq!(crs_srid(&json!(4326), None), None);
        assert_eq!(
            crs_srid(&json!("GEOGCRS[\"WGS 84\"]"), Some("wkt2:2019")),
            None
        );
        assert_eq!(extension_srid("{}"), None);
        assert_eq!(extension_srid("not json"), None);
    }
}
