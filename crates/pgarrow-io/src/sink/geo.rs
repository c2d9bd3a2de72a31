//! GeoParquet 1.1's `geo` file metadata, summarized from the WKB a Parquet file's geometry
//! columns (`geoarrow.wkb` fields) hold: each column's encoding, geometry types, bounding box,
//! CRS (as PROJJSON) and edges; and its optional bbox covering columns.

use arrow_array::builder::{Float64Builder, StructBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use pgarrow_types::wkb::{GeoSummary, summarize};
use serde_json::{Value, json};

use crate::{Error, Result};

/// The file metadata key GeoParquet readers look for.
pub const GEO_KEY: &str = "geo";

/// The geometry columns of a schema, and what their values held so far.
#[derive(Debug, Clone)]
pub(crate) struct GeoColumns {
    columns: Vec<GeoColumn>,
}

#[derive(Debug, Clone)]
struct GeoColumn {
    index: usize,
    name: String,
    /// The CRS as GeoParquet writes it: PROJJSON, or null (unknown).
    crs: Value,
    spherical: bool,
    summary: GeoSummary,
    /// The name of its bbox covering column, when the file has them.
    covering: Option<String>,
}

impl GeoColumns {
    /// The top-level `geoarrow.wkb` columns of `schema`, if any; `covered` when the file
    /// has their bbox covering columns ([`Covering`]).
    pub(crate) fn of(schema: &Schema, covered: bool) -> Option<GeoColumns> {
        let columns: Vec<GeoColumn> = geometry_fields(schema)
            .map(|(index, f)| {
                let ext: Value = f
                    .metadata()
                    .get("ARROW:extension:metadata")
                    .and_then(|m| serde_json::from_str(m).ok())
                    .unwrap_or(Value::Null);
                GeoColumn {
                    index,
                    name: f.name().clone(),
                    crs: crs_projjson(ext.get("crs")),
                    spherical: ext.get("edges").and_then(Value::as_str) == Some("spherical"),
                    summary: GeoSummary::default(),
                    covering: covered.then(|| Covering::name(f.name())),
                }
            })
            .collect();
        (!columns.is_empty()).then_some(GeoColumns { columns })
    }

    /// Notes the types and coordinates of `batch`'s geometries.
    ///
    /// # Errors
    /// A value that is not WKB, named by column and row.
    pub(crate) fn observe(&mut self, batch: &RecordBatch) -> Result<()> {
        for c in &mut self.columns {
            let Some(array) = batch.columns().get(c.index) else {
                continue;
            };
            let mut each = |row: usize, wkb: &[u8]| {
                summarize(wkb, &mut c.summary)
                    .map_err(|e| Error::usage(format!("column {:?}, row {}: {e}", c.name, row + 1)))
            };
            match array.data_type() {
                DataType::Binary => {
                    for (row, v) in array.as_binary::<i32>().iter().enumerate() {
                        v.map_or(Ok(None), |v| each(row, v).map(Some))?;
                    }
                }
                DataType::LargeBinary => {
                    for (row, v) in array.as_binary::<i64>().iter().enumerate() {
                        v.map_or(Ok(None), |v| each(row, v).map(Some))?;
                    }
                }
                DataType::BinaryView => {
                    for (row, v) in array.as_binary_view().iter().enumerate() {
                        v.map_or(Ok(None), |v| each(row, v).map(Some))?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Takes in what `other` (of the same schema) saw.
    pub(crate) fn merge(&mut self, other: &GeoColumns) {
        for (a, b) in self.columns.iter_mut().zip(&other.columns) {
            a.summary.merge(&b.summary);
        }
    }

    /// The `geo` metadata's value: GeoParquet 1.1, the first geometry column primary.
    pub(crate) fn metadata(&self) -> String {
        let mut columns = serde_json::Map::new();
        for c in &self.columns {
            let mut m = serde_json::Map::new();
            m.insert("encoding".into(), json!("WKB"));
            m.insert(
                "geometry_types".into(),
                json!(c.summary.geoparquet_types().unwrap_or_default()),
            );
            m.insert("crs".into(), c.crs.clone());
            if let Some(bbox) = c.summary.bbox {
                m.insert("bbox".into(), json!(bbox));
            }
            if c.spherical {
                m.insert("edges".into(), json!("spherical"));
            }
            if let Some(bbox) = &c.covering {
                let at = |k: &str| json!([bbox, k]);
                m.insert(
                    "covering".into(),
                    json!({"bbox": {
                        "xmin": at("xmin"), "ymin": at("ymin"),
                        "xmax": at("xmax"), "ymax": at("ymax"),
                    }}),
                );
            }
            columns.insert(c.name.clone(), Value::Object(m));
        }
        json!({
            "version": "1.1.0",
            "primary_column": self.columns[0].name,
            "columns": columns,
        })
        .to_string()
    }
}

/// The top-level geometry columns of `schema` (`geoarrow.wkb` fields of a binary type), with
/// their index.
fn geometry_fields(schema: &Schema) -> impl Iterator<Item = (usize, &Field)> {
    schema.fields().iter().enumerate().filter_map(|(index, f)| {
        let geo = f.metadata().get("ARROW:extension:name").map(String::as_str)
            == Some("geoarrow.wkb")
            && matches!(
                f.data_type(),
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView
            );
        geo.then_some((index, f.as_ref()))
    })
}

/// GeoParquet 1.1's bbox covering: for each geometry column `g`, a column `g_bbox` after all
/// the others, a struct of `xmin`, `ymin`, `xmax`, `ymax` (doubles, so exact) holding each
/// value's bounding box, which readers filter row groups by through its statistics. NULL for
/// a NULL or empty geometry.
#[derive(Debug, Clone)]
pub(crate) struct Covering {
    /// The geometry columns' indexes.
    columns: Vec<usize>,
    /// The schema with the covering columns appended.
    schema: SchemaRef,
}

impl Covering {
    /// The name of the covering column of geometry column `column`.
    pub(crate) fn name(column: &str) -> String {
        format!("{column}_bbox")
    }

    fn fields() -> Fields {
        ["xmin", "ymin", "xmax", "ymax"]
            .into_iter()
            .map(|n| Field::new(n, DataType::Float64, false))
            .collect()
    }

    /// The covering of `schema`'s geometry columns, `None` when it has none.
    ///
    /// # Errors
    /// A covering column's name is taken by a column of `schema`.
    pub(crate) fn of(schema: &Schema) -> Result<Option<Covering>> {
        let columns: Vec<(usize, String)> = geometry_fields(schema)
            .map(|(i, f)| (i, Covering::name(f.name())))
            .collect();
        if columns.is_empty() {
            return Ok(None);
        }
        let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
        for (_, name) in &columns {
            if schema.field_with_name(name).is_ok() {
                return Err(Error::usage(format!(
                    "the bbox covering column {name:?} would take the name of a column the \
                     output has: rename that column, or leave the bbox covering out"
                )));
            }
            fields.push(Arc::new(Field::new(
                name,
                DataType::Struct(Covering::fields()),
                true,
            )));
        }
        Ok(Some(Covering {
            columns: columns.into_iter().map(|(i, _)| i).collect(),
            schema: Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        }))
    }

    /// The schema with the covering columns.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// `batch` (of the schema the covering was made for) with its covering columns.
    ///
    /// # Errors
    /// A value that is not WKB, named by column and row.
    pub(crate) fn add(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for &index in &self.columns {
            let array = batch.column(index);
            let name = batch.schema_ref().field(index).name().clone();
            let mut boxes = StructBuilder::from_fields(Covering::fields(), array.len());
            let mut summary = GeoSummary::default();
            let mut each = |row: usize, wkb: Option<&[u8]>| -> Result<()> {
                summary.bbox = None;
                if let Some(wkb) = wkb {
                    summarize(wkb, &mut summary).map_err(|e| {
                        Error::usage(format!("column {name:?}, row {}: {e}", row + 1))
                    })?;
                }
                let bbox = summary.bbox;
                for (k, v) in bbox.unwrap_or_default().into_iter().enumerate() {
                    boxes
                        .field_builder::<Float64Builder>(k)
                        .expect("four double fields")
                        .append_value(v);
                }
                boxes.append(bbox.is_some());
                Ok(())
            };
            match array.data_type() {
                DataType::Binary => {
                    for (row, v) in array.as_binary::<i32>().iter().enumerate() {
                        each(row, v)?;
                    }
                }
                DataType::LargeBinary => {
                    for (row, v) in array.as_binary::<i64>().iter().enumerate() {
                        each(row, v)?;
                    }
                }
                _ => {
                    for (row, v) in array.as_binary_view().iter().enumerate() {
                        each(row, v)?;
                    }
                }
            }
            columns.push(Arc::new(boxes.finish()));
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// `schema` with its `geoarrow.wkb` fields' extension name taken off, so that the Parquet
/// writer gives them no GEOMETRY or GEOGRAPHY logical type (the schema itself unchanged when
/// it has none).
pub(crate) fn without_geo_types(schema: &SchemaRef) -> SchemaRef {
    let is_geo = |f: &arrow_schema::Field| {
        f.metadata().get("ARROW:extension:name").map(String::as_str) == Some("geoarrow.wkb")
    };
    if !schema.fields().iter().any(|f| is_geo(f)) {
        return schema.clone();
    }
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| match is_geo(f) {
            true => {
                let mut meta = f.metadata().clone();
                meta.remove("ARROW:extension:name");
                Arc::new(f.as_ref().clone().with_metadata(meta))
            }
            false => f.clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// A Parquet file's geometry columns as GeoArrow fields whose CRS the loader reads: the
/// columns GeoParquet's `geo` file metadata (in `schema`'s metadata, as the Parquet reader
/// puts it) lists become `geoarrow.wkb` with the column's CRS as it is (PROJJSON, or
/// `OGC:CRS84` where GeoParquet gives none: its default) and its edges, so that loading the
/// file keeps the SRID (the encoder reads the SRID of every form of CRS). Fields that are
/// GeoArrow already are left as they are. Whether any of `fields` (the file's, in order)
/// changed.
pub(crate) fn geoarrow_from_geoparquet(
    schema: &Schema,
    fields: &mut [arrow_schema::Field],
) -> bool {
    let Some(columns) = geoparquet_columns(schema) else {
        return false;
    };
    let mut changed = false;
    for field in fields.iter_mut() {
        let binary = matches!(
            field.data_type(),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        );
        if !binary || field.metadata().contains_key("ARROW:extension:name") {
            continue;
        }
        let Some(column) = columns
            .get(field.name())
            .filter(|c| c.get("encoding").and_then(Value::as_str) == Some("WKB"))
        else {
            continue;
        };
        let mut ext = serde_json::Map::new();
        match column.get("crs") {
            None => {
                ext.insert("crs".into(), json!("OGC:CRS84"));
            }
            // Null: GeoParquet's "unknown", GeoArrow's absent CRS.
            Some(Value::Null) => {}
            Some(crs) => {
                ext.insert("crs".into(), crs.clone());
            }
        }
        if column.get("edges").and_then(Value::as_str) == Some("spherical") {
            ext.insert("edges".into(), json!("spherical"));
        }
        let mut meta = field.metadata().clone();
        meta.insert("ARROW:extension:name".to_owned(), "geoarrow.wkb".to_owned());
        meta.insert(
            "ARROW:extension:metadata".to_owned(),
            Value::Object(ext).to_string(),
        );
        *field = field.clone().with_metadata(meta);
        changed = true;
    }
    changed
}

/// The `columns` object of the GeoParquet `geo` metadata in `schema`'s metadata (as the
/// Parquet reader puts it), if any.
fn geoparquet_columns(schema: &Schema) -> Option<serde_json::Map<String, Value>> {
    let geo: Value = serde_json::from_str(schema.metadata().get(GEO_KEY)?).ok()?;
    match geo.get("columns")? {
        Value::Object(columns) => Some(columns.clone()),
        _ => None,
    }
}

/// The indexes of the columns of `schema` that its GeoParquet `geo` metadata names as bbox
/// coverings of its geometry columns (top-level struct columns only).
pub(crate) fn covering_columns(schema: &Schema) -> Vec<usize> {
    let Some(columns) = geoparquet_columns(schema) else {
        return Vec::new();
    };
    let mut found: Vec<usize> = columns
        .values()
        .filter_map(|c| c.pointer("/covering/bbox/xmin/0")?.as_str())
        .filter_map(|name| schema.index_of(name).ok())
        .filter(|&i| matches!(schema.field(i).data_type(), DataType::Struct(_)))
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// GeoParquet's CRS for a GeoArrow `crs`: a PROJJSON object as it is; an `EPSG:<code>`
/// authority code as PROJJSON when pgarrow carries that code's (WGS 84, NAD83, ETRS89, Web
/// Mercator and WGS 84's UTM zones); else null, GeoParquet's "unknown" (a file's readers are
/// then told nothing rather than something wrong).
fn crs_projjson(crs: Option<&Value>) -> Value {
    match crs {
        Some(Value::Object(o)) => Value::Object(o.clone()),
        Some(Value::String(s)) => s
            .strip_prefix("EPSG:")
            .and_then(|code| code.parse().ok())
            .and_then(epsg_projjson)
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// The PROJJSON of an EPSG code pgarrow carries (PROJ's own text, its scope and area notes
/// left out), or `None`.
pub fn epsg_projjson(code: u32) -> Option<String> {
    let fixed = match code {
        4326 => {
            r#"{"$schema":"https://proj.org/schemas/v0.7/projjson.schema.json","type":"GeographicCRS","name":"WGS 84","datum_ensemble":{"name":"World Geodetic System 1984 ensemble","members":[{"name":"World Geodetic System 1984 (Transit)","id":{"authority":"EPSG","code":1166}},{"name":"World Geodetic System 1984 (G730)","id":{"authority":"EPSG","code":1152}},{"name":"World Geodetic System 1984 (G873)","id":{"authority":"EPSG","code":1153}},{"name":"World Geodetic System 1984 (G1150)","id":{"authority":"EPSG","code":1154}},{"name":"World Geodetic System 1984 (G1674)","id":{"authority":"EPSG","code":1155}},{"name":"World Geodetic System 1984 (G1762)","id":{"authority":"EPSG","code":1156}},{"name":"World Geodetic System 1984 (G2139)","id":{"authority":"EPSG","code":1309}},{"name":"World Geodetic System 1984 (G2296)","id":{"authority":"EPSG","code":1383}}],"ellipsoid":{"name":"WGS 84","semi_major_axis":6378137,"inverse_flattening":298.257223563},"accuracy":"2.0","id":{"authority":"EPSG","code":6326}},"coordinate_system":{"subtype":"ellipsoidal","axis":[{"name":"Geodetic latitude","abbreviation":"Lat","direction":"north","unit":"degree"},{"name":"Geodetic longitude","abbreviation":"Lon","direction":"east","unit":"degree"}]},"id":{"authority":"EPSG","code":4326}}"#
        }
        4269 => {
            r#"{"$schema":"https://proj.org/schemas/v0.7/projjson.schema.json","type":"GeographicCRS","name":"NAD83","datum":{"type":"GeodeticReferenceFrame","name":"North American Datum 1983","ellipsoid":{"name":"GRS 1980","semi_major_axis":6378137,"inverse_flattening":298.257222101}},"coordinate_system":{"subtype":"ellipsoidal","axis":[{"name":"Geodetic latitude","abbreviation":"Lat","direction":"north","unit":"degree"},{"name":"Geodetic longitude","abbreviation":"Lon","direction":"east","unit":"degree"}]},"id":{"authority":"EPSG","code":4269}}"#
        }
        4258 => {
            r#"{"$schema":"https://proj.org/schemas/v0.7/projjson.schema.json","type":"GeographicCRS","name":"ETRS89","datum_ensemble":{"name":"European Terrestrial Reference System 1989 ensemble","members":[{"name":"European Terrestrial Reference Frame 1989","id":{"authority":"EPSG","code":1178}},{"name":"European Terrestrial Reference Frame 1990","id":{"authority":"EPSG","code":1179}},{"name":"European Terrestrial Reference Frame 1991","id":{"authority":"EPSG","code":1180}},{"name":"European Terrestrial Reference Frame 1992","id":{"authority":"EPSG","code":1181}},{"name":"European Terrestrial Reference Frame 1993","id":{"authority":"EPSG","code":1182}},{"name":"European Terrestrial Reference Frame 1994","id":{"authority":"EPSG","code":1183}},{"name":"European Terrestrial Reference Frame 1996","id":{"authority":"EPSG","code":1184}},{"name":"European Terrestrial Reference Frame 1997","id":{"authority":"EPSG","code":1185}},{"name":"European Terrestrial Reference Frame 2000","id":{"authority":"EPSG","code":1186}},{"name":"European Terrestrial Reference Frame 2005","id":{"authority":"EPSG","code":1204}},{"name":"European Terrestrial Reference Frame 2014","id":{"authority":"EPSG","code":1206}},{"name":"European Terrestrial Reference Frame 2020","id":{"authority":"EPSG","code":1382}}],"ellipsoid":{"name":"GRS 1980","semi_major_axis":6378137,"inverse_flattening":298.257222101},"accuracy":"0.1","id":{"authority":"EPSG","code":6258}},"coordinate_system":{"subtype":"ellipsoidal","axis":[{"name":"Geodetic latitude","abbreviation":"Lat","direction":"north","unit":"degree"},{"name":"Geodetic longitude","abbreviation":"Lon","direction":"east","unit":"degree"}]},"id":{"authority":"EPSG","code":4258}}"#
        }
        3857 => {
            r#"{"$schema":"https://proj.org/schemas/v0.7/projjson.schema.json","type":"ProjectedCRS","name":"WGS 84 / Pseudo-Mercator","base_crs":{"name":"WGS 84","datum_ensemble":{"name":"World Geodetic System 1984 ensemble","members":[{"name":"World Geodetic System 1984 (Transit)","id":{"authority":"EPSG","code":1166}},{"name":"World Geodetic System 1984 (G730)","id":{"authority":"EPSG","code":1152}},{"name":"World Geodetic System 1984 (G873)","id":{"authority":"EPSG","code":1153}},{"name":"World Geodetic System 1984 (G1150)","id":{"authority":"EPSG","code":1154}},{"name":"World Geodetic System 1984 (G1674)","id":{"authority":"EPSG","code":1155}},{"name":"World Geodetic System 1984 (G1762)","id":{"authority":"EPSG","code":1156}},{"name":"World Geodetic System 1984 (G2139)","id":{"authority":"EPSG","code":1309}},{"name":"World Geodetic System 1984 (G2296)","id":{"authority":"EPSG","code":1383}}],"ellipsoid":{"name":"WGS 84","semi_major_axis":6378137,"inverse_flattening":298.257223563},"accuracy":"2.0","id":{"authority":"EPSG","code":6326}},"coordinate_system":{"subtype":"ellipsoidal","axis":[{"name":"Geodetic latitude","abbreviation":"Lat","direction":"north","unit":"degree"},{"name":"Geodetic longitude","abbreviation":"Lon","direction":"east","unit":"degree"}]},"id":{"authority":"EPSG","code":4326}},"conversion":{"name":"Popular Visualisation Pseudo-Mercator","method":{"name":"Popular Visualisation Pseudo Mercator","id":{"authority":"EPSG","code":1024}},"parameters":[{"name":"Latitude of natural origin","value":0,"unit":"degree","id":{"authority":"EPSG","code":8801}},{"name":"Longitude of natural origin","value":0,"unit":"degree","id":{"authority":"EPSG","code":8802}},{"name":"False easting","value":0,"unit":"metre","id":{"authority":"EPSG","code":8806}},{"name":"False northing","value":0,"unit":"metre","id":{"authority":"EPSG","code":8807}}]},"coordinate_system":{"subtype":"Cartesian","axis":[{"name":"Easting","abbreviation":"X","direction":"east","unit":"metre"},{"name":"Northing","abbreviation":"Y","direction":"north","unit":"metre"}]},"id":{"authority":"EPSG","code":3857}}"#
        }
        32601..=32660 | 32701..=32760 => {
            let zone = code % 100;
            let north = code < 32700;
            return Some(
                UTM.replace(
                    "@ZONE@",
                    &format!("{zone}{}", if north { 'N' } else { 'S' }),
                )
                .replace("@LON@", &(6 * i64::from(zone) - 183).to_string())
                .replace("@NORTHING@", if north { "0" } else { "10000000" })
                .replace("@CODE@", &code.to_string()),
            );
        }
        _ => return None,
    };
    Some(fixed.to_owned())
}

/// WGS 84 / UTM zone N: EPSG 32633's PROJJSON with the zone's name, central meridian, false
/// northing and code left open.
const UTM: &str = r#"{"$schema":"https://proj.org/schemas/v0.7/projjson.schema.json","type":"ProjectedCRS","name":"WGS 84 / UTM zone @ZONE@","base_crs":{"name":"WGS 84","datum_ensemble":{"name":"World Geodetic System 1984 ensemble","members":[{"name":"World Geodetic System 1984 (Transit)","id":{"authority":"EPSG","code":1166}},{"name":"World Geodetic System 1984 (G730)","id":{"authority":"EPSG","code":1152}},{"name":"World Geodetic System 1984 (G873)","id":{"authority":"EPSG","code":1153}},{"name":"World Geodetic System 1984 (G1150)","id":{"authority":"EPSG","code":1154}},{"name":"World Geodetic System 1984 (G1674)","id":{"authority":"EPSG","code":1155}},{"name":"World Geodetic System 1984 (G1762)","id":{"authority":"EPSG","code":1156}},{"name":"World Geodetic System 1984 (G2139)","id":{"authority":"EPSG","code":1309}},{"name":"World Geodetic System 1984 (G2296)","id":{"authority":"EPSG","code":1383}}],"ellipsoid":{"name":"WGS 84","semi_major_axis":6378137,"inverse_flattening":298.257223563},"accuracy":"2.0","id":{"authority":"EPSG","code":6326}},"coordinate_system":{"subtype":"ellipsoidal","axis":[{"name":"Geodetic latitude","abbreviation":"Lat","direction":"north","unit":"degree"},{"name":"Geodetic longitude","abbreviation":"Lon","direction":"east","unit":"degree"}]},"id":{"authority":"EPSG","code":4326}},"conversion":{"name":"UTM zone @ZONE@","method":{"name":"Transverse Mercator","id":{"authority":"EPSG","code":9807}},"parameters":[{"name":"Latitude of natural origin","value":0,"unit":"degree","id":{"authority":"EPSG","code":8801}},{"name":"Longitude of natural origin","value":@LON@,"unit":"degree","id":{"authority":"EPSG","code":8802}},{"name":"Scale factor at natural origin","value":0.9996,"unit":"unity","id":{"authority":"EPSG","code":8805}},{"name":"False easting","value":500000,"unit":"metre","id":{"authority":"EPSG","code":8806}},{"name":"False northing","value":@NORTHING@,"unit":"metre","id":{"authority":"EPSG","code":8807}}]},"coordinate_system":{"subtype":"Cartesian","axis":[{"name":"Easting","abbreviation":"E","direction":"east","unit":"metre"},{"name":"Northing","abbreviation":"N","direction":"north","unit":"metre"}]},"id":{"authority":"EPSG","code":@CODE@}}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carried_codes_are_projjson_and_the_rest_unknown() {
        for code in [4326, 4269, 4258, 3857, 32601, 32633, 32660, 32701, 32760] {
            let v: Value = serde_json::from_str(&epsg_projjson(code).unwrap()).unwrap();
            assert_eq!(v["id"]["code"], json!(code), "{code}");
        }
        let south: Value = serde_json::from_str(&epsg_projjson(32734).unwrap()).unwrap();
        assert_eq!(south["name"], json!("WGS 84 / UTM zone 34S"));
        assert_eq!(south["conversion"]["parameters"][1]["value"], json!(21));
        assert_eq!(
            south["conversion"]["parameters"][4]["value"],
            json!(10000000)
        );
        assert_eq!(epsg_projjson(2154), None);
        assert_eq!(crs_projjson(Some(&json!("EPSG:2154"))), Value::Null);
        assert_eq!(crs_projjson(None), Value::Null);
        let own = json!({"type": "GeographicCRS", "name": "x"});
        assert_eq!(crs_projjson(Some(&own)), own);
    }

    #[test]
    fn without_geo_types_takes_only_the_extension_name_off() {
        let meta = std::collections::HashMap::from([
            ("ARROW:extension:name".to_owned(), "geoarrow.wkb".to_owned()),
            (
                "ARROW:extension:metadata".to_owned(),
                r#"{"crs":"EPSG:3857"}"#.to_owned(),
            ),
        ]);
        let schema = Arc::new(Schema::new(vec![
            arrow_schema::Field::new("g", DataType::Binary, true).with_metadata(meta),
            arrow_schema::Field::new("n", DataType::Int32, true),
        ]));
        let plain = without_geo_types(&schema);
        assert!(
            !plain
                .field(0)
                .metadata()
                .contains_key("ARROW:extension:name")
        );
        assert_eq!(
            plain.field(0).metadata()["ARROW:extension:metadata"],
            r#"{"crs":"EPSG:3857"}"#
        );
        assert_eq!(plain.field(1), schema.field(1));
        // Nothing to take off: the very schema.
        let none = Arc::new(Schema::new(vec![schema.field(1).clone()]));
        assert!(Arc::ptr_eq(&without_geo_types(&none), &none));
    }

    #[test]
    fn geoparquet_columns_become_geoarrow_fields() {
        let geo = json!({"version": "1.1.0", "primary_column": "a", "columns": {
            "a": {"encoding": "WKB", "geometry_types": []},
            "b": {"encoding": "WKB", "geometry_types": [], "crs": null, "edges": "spherical"},
            "c": {"encoding": "WKB", "geometry_types": [],
                  "crs": serde_json::from_str::<Value>(&epsg_projjson(32633).unwrap()).unwrap()},
            "d": {"encoding": "point", "geometry_types": []},
        }});
        let schema = Schema::new(Vec::<arrow_schema::Field>::new()).with_metadata(
            std::collections::HashMap::from([(GEO_KEY.to_owned(), geo.to_string())]),
        );
        let mut fields: Vec<arrow_schema::Field> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|n| arrow_schema::Field::new(*n, DataType::Binary, true))
            .collect();
        // A GeoArrow field with a PROJJSON CRS (as GeoPandas writes them).
        let projjson = epsg_projjson(3857).unwrap();
        fields.push(
            arrow_schema::Field::new("f", DataType::Binary, true).with_metadata(
                std::collections::HashMap::from([
                    ("ARROW:extension:name".to_owned(), "geoarrow.wkb".to_owned()),
                    (
                        "ARROW:extension:metadata".to_owned(),
                        format!(r#"{{"crs":{projjson}}}"#),
                    ),
                ]),
            ),
        );
        assert!(geoarrow_from_geoparquet(&schema, &mut fields));
        let ext = |k: usize| {
            fields[k]
                .metadata()
                .get("ARROW:extension:metadata")
                .cloned()
        };
        assert_eq!(ext(0).as_deref(), Some(r#"{"crs":"OGC:CRS84"}"#));
        assert_eq!(ext(1).as_deref(), Some(r#"{"edges":"spherical"}"#));
        let c: Value = serde_json::from_str(&ext(2).unwrap()).unwrap();
        assert_eq!(c["crs"]["id"]["code"], json!(32633));
        assert_eq!(ext(3), None);
        assert_eq!(ext(4), None);
        // A GeoArrow field is left as it is: the encoder reads its PROJJSON.
        assert_eq!(
            ext(5).as_deref(),
            Some(format!(r#"{{"crs":{projjson}}}"#).as_str())
        );
    }

    #[test]
    fn covering_holds_each_values_box_and_is_named_in_the_metadata() {
        let ext = std::collections::HashMap::from([(
            "ARROW:extension:name".to_owned(),
            "geoarrow.wkb".to_owned(),
        )]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("g", DataType::Binary, true).with_metadata(ext.clone()),
        ]));
        let covering = Covering::of(&schema).unwrap().unwrap();
        assert_eq!(covering.schema().field(2).name(), "g_bbox");
        // POINT(1 2), LINESTRING(0 0, 3 -1), NULL, POINT EMPTY (NaN coordinates).
        let point = |x: f64, y: f64| {
            let mut v = vec![1u8, 1, 0, 0, 0];
            v.extend(x.to_le_bytes());
            v.extend(y.to_le_bytes());
            v
        };
        let mut line = vec![1u8, 2, 0, 0, 0, 2, 0, 0, 0];
        for c in [0.0f64, 0.0, 3.0, -1.0] {
            line.extend(c.to_le_bytes());
        }
        let empty = point(f64::NAN, f64::NAN);
        let geoms = arrow_array::BinaryArray::from(vec![
            Some(point(1.0, 2.0).as_slice()),
            Some(line.as_slice()),
            None,
            Some(empty.as_slice()),
        ]);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(arrow_array::Int32Array::from(vec![1, 2, 3, 4])),
                Arc::new(geoms),
            ],
        )
        .unwrap();
        let covered = covering.add(&batch).unwrap();
        let boxes = covered.column(2).as_struct();
        let value = |row: usize| {
            (!boxes.is_null(row)).then(|| {
                (0..4)
                    .map(|k| {
                        boxes
                            .column(k)
                            .as_primitive::<arrow_array::types::Float64Type>()
                            .value(row)
                    })
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(value(0), Some(vec![1.0, 2.0, 1.0, 2.0]));
        assert_eq!(value(1), Some(vec![0.0, -1.0, 3.0, 0.0]));
        assert_eq!(value(2), None);
        assert_eq!(value(3), None);
        // The metadata names it, and a loader finds it there.
        let geo = GeoColumns::of(&schema, true).unwrap().metadata();
        let v: Value = serde_json::from_str(&geo).unwrap();
        assert_eq!(
            v["columns"]["g"]["covering"]["bbox"]["ymax"],
            json!(["g_bbox", "ymax"])
        );
        let written = covering
            .schema()
            .as_ref()
            .clone()
            .with_metadata(std::collections::HashMap::from([(GEO_KEY.to_owned(), geo)]));
        assert_eq!(covering_columns(&written), vec![2]);
        assert_eq!(covering_columns(&schema), Vec::<usize>::new());
        // Bad WKB is named by column and row.
        let bad = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(arrow_array::Int32Array::from(vec![1])),
                Arc::new(arrow_array::BinaryArray::from(vec![Some(&[1u8, 1][..])])),
            ],
        )
        .unwrap();
        let e = covering.add(&bad).unwrap_err().to_string();
        assert!(e.contains("column \"g\", row 1"), "{e}");
        // A column with the covering's name is refused by name.
        let taken = Schema::new(vec![
            Field::new("g", DataType::Binary, true).with_metadata(ext),
            Field::new("g_bbox", DataType::Int32, true),
        ]);
        let e = Covering::of(&taken).unwrap_err().to_string();
        assert!(e.contains("\"g_bbox\""), "{e}");
    }
}
