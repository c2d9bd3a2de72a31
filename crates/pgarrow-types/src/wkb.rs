//! Well-known binary geometries: PostGIS's extended form (EWKB: dimension and SRID flags in the
//! type word, the SRID after it), which `geometry_send` writes, and the ISO form (dimensions as
//! type codes 1000 apart, no SRID) that GeoArrow's `geoarrow.wkb` and GeoParquet require.
//!
//! [`ewkb_to_iso`] rewrites one value, walking every nested geometry (each has its own header);
//! [`summarize`] walks one the same way and notes what it saw in a [`GeoSummary`]: the geometry
//! types and the bounding box.
//! [`with_srid`] goes back: an ISO or EWKB value with the SRID put in its outer header, as
//! `geometry_recv` takes it.

use std::collections::BTreeSet;
use std::fmt;

/// EWKB's type-word flags.
const EWKB_Z: u32 = 0x8000_0000;
const EWKB_M: u32 = 0x4000_0000;
const EWKB_SRID: u32 = 0x2000_0000;

/// How deep collections may nest (PostGIS nests far less; a bound keeps a hostile value from
/// exhausting the stack).
const MAX_DEPTH: usize = 64;

/// Why a value is not well-known binary this module takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WkbError {
    /// The value ends inside a geometry.
    Truncated,
    /// A byte-order mark other than 0 or 1.
    ByteOrder(u8),
    /// A type code that is not a geometry type.
    Type(u32),
    /// Coordinates with M (measures): GeoParquet and GeoArrow's WKB here carry X, Y and Z.
    Measures(&'static str),
    /// Bytes after the geometry.
    Trailing(usize),
    /// Collections nested deeper than 64 levels.
    TooDeep,
}

impl fmt::Display for WkbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WkbError::Truncated => f.write_str("the WKB value ends inside a geometry"),
            WkbError::ByteOrder(b) => write!(f, "WKB byte order {b} (0 or 1 expected)"),
            WkbError::Type(t) => write!(f, "WKB geometry type {t:#x} is not one pgarrow knows"),
            WkbError::Measures(name) => write!(
                f,
                "a {name} with M values: GeoParquet and GeoArrow describe X, Y and Z only \
                 (drop M in the query: ST_Force2D, or ST_Force3DZ to keep Z)"
            ),
            WkbError::Trailing(n) => write!(f, "{n} bytes after the WKB geometry"),
            WkbError::TooDeep => write!(f, "WKB collections nested over {MAX_DEPTH} deep"),
        }
    }
}

impl std::error::Error for WkbError {}

/// What a column's values held: their geometry types (ISO codes: 1 to 17, plus 1000 with Z)
/// and their bounding box in X and Y.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeoSummary {
    /// ISO type codes of the outermost geometries.
    pub types: BTreeSet<u32>,
    /// `[xmin, ymin, xmax, ymax]` of every coordinate (NaN ones, which make `POINT EMPTY`,
    /// left out); `None` before any.
    pub bbox: Option<[f64; 4]>,
}

impl GeoSummary {
    /// Takes `other` in.
    pub fn merge(&mut self, other: &GeoSummary) {
        self.types.extend(other.types.iter().copied());
        if let Some([x0, y0, x1, y1]) = other.bbox {
            self.cover(x0, y0);
            self.cover(x1, y1);
        }
    }

    fn cover(&mut self, x: f64, y: f64) {
        if x.is_nan() || y.is_nan() {
            return;
        }
        let b = self.bbox.get_or_insert([x, y, x, y]);
        b[0] = b[0].min(x);
        b[1] = b[1].min(y);
        b[2] = b[2].max(x);
        b[3] = b[3].max(y);
    }

    /// GeoParquet's names of the types (`"Point"`, `"Polygon Z"`...), or `None` when one has no
    /// GeoParquet name (a curve, a surface, a TIN): GeoParquet then lists none, meaning any.
    pub fn geoparquet_types(&self) -> Option<Vec<String>> {
        self.types
            .iter()
            .map(|code| {
                let name = match code % 1000 {
                    1 => "Point",
                    2 => "LineString",
                    3 => "Polygon",
                    4 => "MultiPoint",
                    5 => "MultiLineString",
                    6 => "MultiPolygon",
                    7 => "GeometryCollection",
                    _ => return None,
                };
                Some(if code / 1000 == 1 {
                    format!("{name} Z")
                } else {
                    name.to_owned()
                })
            })
            .collect()
    }
}

/// A geometry's header, as read.
#[derive(Debug, Clone, Copy)]
struct Header {
    little: bool,
    /// The base type, 1 to 17.
    base: u32,
    z: bool,
    m: bool,
    srid: Option<i32>,
}

fn type_name(base: u32) -> &'static str {
    match base {
        1 => "POINT",
        2 => "LINESTRING",
        3 => "POLYGON",
        4 => "MULTIPOINT",
        5 => "MULTILINESTRING",
        6 => "MULTIPOLYGON",
        7 => "GEOMETRYCOLLECTION",
        8 => "CIRCULARSTRING",
        9 => "COMPOUNDCURVE",
        10 => "CURVEPOLYGON",
        11 => "MULTICURVE",
        12 => "MULTISURFACE",
        15 => "POLYHEDRALSURFACE",
        16 => "TIN",
        17 => "TRIANGLE",
        _ => "geometry",
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WkbError> {
        let end = self.at.checked_add(n).ok_or(WkbError::Truncated)?;
        let s = self.b.get(self.at..end).ok_or(WkbError::Truncated)?;
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self, little: bool) -> Result<u32, WkbError> {
        let s: [u8; 4] = self.take(4)?.try_into().expect("four bytes");
        Ok(if little {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    }

    fn f64(&mut self, little: bool) -> Result<f64, WkbError> {
        let s: [u8; 8] = self.take(8)?.try_into().expect("eight bytes");
        Ok(if little {
            f64::from_le_bytes(s)
        } else {
            f64::from_be_bytes(s)
        })
    }

    fn header(&mut self) -> Result<Header, WkbError> {
        let little = match self.take(1)?[0] {
            0 => false,
            1 => true,
            b => return Err(WkbError::ByteOrder(b)),
        };
        let word = self.u32(little)?;
        let flags = word & (EWKB_Z | EWKB_M | EWKB_SRID);
        let code = word & !(EWKB_Z | EWKB_M | EWKB_SRID);
        let (base, iso_dims) = (code % 1000, code / 1000);
        if !(1..=17).contains(&base) || iso_dims > 3 || (iso_dims > 0 && flags & !EWKB_SRID != 0) {
            return Err(WkbError::Type(word));
        }
        let z = flags & EWKB_Z != 0 || iso_dims == 1 || iso_dims == 3;
        let m = flags & EWKB_M != 0 || iso_dims == 2 || iso_dims == 3;
        let srid = if flags & EWKB_SRID != 0 {
            Some(self.u32(little)? as i32)
        } else {
            None
        };
        Ok(Header {
            little,
            base,
            z,
            m,
            srid,
        })
    }
}

/// Rewrites the EWKB (or ISO WKB) value `ewkb` as little-endian ISO WKB onto `out`, and returns
/// the SRID of its outer header, if it has one. On error `out` may hold part of the value (the
/// caller truncates).
pub fn ewkb_to_iso(ewkb: &[u8], out: &mut Vec<u8>) -> Result<Option<i32>, WkbError> {
    walk(
        ewkb,
        &mut Walk {
            out: Some(out),
            summary: None,
        },
    )
}

/// Notes the type and coordinates of the (E)WKB value `wkb` in `summary`, checking it as
/// [`ewkb_to_iso`] does without writing it anywhere; the SRID of its outer header, if any.
pub fn summarize(wkb: &[u8], summary: &mut GeoSummary) -> Result<Option<i32>, WkbError> {
    walk(
        wkb,
        &mut Walk {
            out: None,
            summary: Some(summary),
        },
    )
}

/// Where a walk puts what it reads: the ISO bytes, the summary, or both.
struct Walk<'a> {
    out: Option<&'a mut Vec<u8>>,
    summary: Option<&'a mut GeoSummary>,
}

impl Walk<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(out) = self.out.as_deref_mut() {
            out.extend_from_slice(bytes);
        }
    }

    fn cover(&mut self, x: f64, y: f64) {
        if let Some(summary) = self.summary.as_deref_mut() {
            summary.cover(x, y);
        }
    }
}

fn walk(wkb: &[u8], w: &mut Walk<'_>) -> Result<Option<i32>, WkbError> {
    let mut r = Reader { b: wkb, at: 0 };
    let header = r.header()?;
    if let Some(summary) = w.summary.as_deref_mut() {
        summary
            .types
            .insert(header.base + if header.z { 1000 } else { 0 });
    }
    geometry(&mut r, header, w, 0)?;
    if r.at != wkb.len() {
        return Err(WkbError::Trailing(wkb.len() - r.at));
    }
    Ok(header.srid)
}

/// One geometry after its header: writes its ISO header and body.
fn geometry(r: &mut Reader<'_>, h: Header, w: &mut Walk<'_>, depth: usize) -> Result<(), WkbError> {
    if h.m {
        return Err(WkbError::Measures(type_name(h.base)));
    }
    if depth > MAX_DEPTH {
        return Err(WkbError::TooDeep);
    }
    w.put(&[1]);
    w.put(&(h.base + if h.z { 1000 } else { 0 }).to_le_bytes());
    let dims = if h.z { 3 } else { 2 };
    let points = |r: &mut Reader<'_>, w: &mut Walk<'_>, n: u32| -> Result<(), WkbError> {
        // Each point is `dims` doubles: at least 16 bytes, so a count the value cannot hold
        // is caught before the loop runs long.
        if (n as usize).saturating_mul(8 * dims) > r.b.len() - r.at {
            return Err(WkbError::Truncated);
        }
        for _ in 0..n {
            let x = r.f64(h.little)?;
            let y = r.f64(h.little)?;
            w.cover(x, y);
            w.put(&x.to_le_bytes());
            w.put(&y.to_le_bytes());
            if h.z {
                w.put(&r.f64(h.little)?.to_le_bytes());
            }
        }
        Ok(())
    };
    match h.base {
        // Point: one coordinate, no count.
        1 => points(r, w, 1),
        // LineString, CircularString, Triangle's ring is a polygon's: a count of points.
        2 | 8 => {
            let n = r.u32(h.little)?;
            w.put(&n.to_le_bytes());
            points(r, w, n)
        }
        // Polygon, Triangle: rings of points.
        3 | 17 => {
            let rings = r.u32(h.little)?;
            w.put(&rings.to_le_bytes());
            for _ in 0..rings {
                let n = r.u32(h.little)?;
                w.put(&n.to_le_bytes());
                points(r, w, n)?;
            }
            Ok(())
        }
        // The collections: a count of geometries, each with its own header.
        _ => {
            let n = r.u32(h.little)?;
            if (n as usize).saturating_mul(5) > r.b.len() - r.at {
                return Err(WkbError::Truncated);
            }
            w.put(&n.to_le_bytes());
            for _ in 0..n {
                let inner = r.header()?;
                geometry(r, inner, w, depth + 1)?;
            }
            Ok(())
        }
    }
}

/// Puts `srid` into the outer header of the WKB value `wkb` (ISO or EWKB, either byte order)
/// as EWKB, onto `out`: what PostGIS's `geometry_recv` reads to keep the SRID. The body,
/// nested headers included, is copied as it is (PostGIS reads ISO and EWKB headers alike).
pub fn with_srid(wkb: &[u8], srid: i32, out: &mut Vec<u8>) -> Result<(), WkbError> {
    let mut r = Reader { b: wkb, at: 0 };
    let h = r.header()?;
    let mut word = h.base | EWKB_SRID;
    if h.z {
        word |= EWKB_Z;
    }
    if h.m {
        word |= EWKB_M;
    }
    out.push(u8::from(h.little));
    if h.little {
        out.extend_from_slice(&word.to_le_bytes());
        out.extend_from_slice(&srid.to_le_bytes());
    } else {
        out.extend_from_slice(&word.to_be_bytes());
        out.extend_from_slice(&srid.to_be_bytes());
    }
    out.extend_from_slice(&wkb[r.at..]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn iso(ewkb: &str) -> (Vec<u8>, Option<i32>, GeoSummary) {
        let mut out = Vec::new();
        let srid = ewkb_to_iso(&hex(ewkb), &mut out).unwrap();
        let mut summary = GeoSummary::default();
        assert_eq!(summarize(&hex(ewkb), &mut summary).unwrap(), srid);
        (out, srid, summary)
    }

    #[test]
    fn a_point_with_an_srid_loses_it() {
        // ST_AsEWKB('SRID=4326;POINT(1 2)')
        let (out, srid, s) = iso("0101000020E6100000000000000000F03F0000000000000040");
        assert_eq!(out, hex("0101000000000000000000F03F0000000000000040"));
        assert_eq!(srid, Some(4326));
        assert_eq!(s.bbox, Some([1.0, 2.0, 1.0, 2.0]));
        assert_eq!(s.geoparquet_types(), Some(vec!["Point".to_owned()]));
    }

    #[test]
    fn z_becomes_the_iso_code_and_big_endian_little() {
        // ST_AsEWKB('POINT Z (1 2 3)', 'XDR'): type 0x80000001 big-endian.
        let (out, srid, s) = iso(
            "0080000001 3FF0000000000000 4000000000000000 4008000000000000"
                .replace(' ', "")
                .as_str(),
        );
        let mut want = vec![1u8];
        want.extend_from_slice(&1001u32.to_le_bytes());
        for v in [1.0f64, 2.0, 3.0] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(out, want);
        assert_eq!(srid, None);
        assert_eq!(s.geoparquet_types(), Some(vec!["Point Z".to_owned()]));
    }

    #[test]
    fn nested_headers_are_rewritten() {
        // ST_AsEWKB('SRID=3857;MULTIPOINT Z ((1 2 3),(4 5 6))')
        let (out, srid, s) = iso("01040000A0110F00000200000001010000800000000000\
             00F03F000000000000004000000000000008400101000080000000000000104000000000000014400000000000001840");
        assert_eq!(srid, Some(3857));
        assert_eq!(&out[1..5], &1004u32.to_le_bytes());
        assert_eq!(&out[9..14], &[1, 0xe9, 0x03, 0, 0]);
        assert_eq!(s.bbox, Some([1.0, 2.0, 4.0, 5.0]));
        assert_eq!(s.geoparquet_types(), Some(vec!["MultiPoint Z".to_owned()]));
        // Back with the SRID: PostGIS's own EWKB header, the ISO body after it.
        let mut back = Vec::new();
        with_srid(&out, 3857, &mut back).unwrap();
        assert_eq!(&back[..9], &hex("01040000A0110F0000")[..]);
        assert_eq!(&back[9..], &out[5..]);
    }

    #[test]
    fn empty_points_are_nan_and_stay_out_of_the_box() {
        // ST_AsEWKB('POINT EMPTY')
        let (_, _, s) = iso("0101000000000000000000F87F000000000000F87F");
        assert_eq!(s.bbox, None);
        assert_eq!(s.types.len(), 1);
    }

    #[test]
    fn measures_truncation_and_garbage_are_errors() {
        let mut out = Vec::new();
        let mut e = |h: &str| ewkb_to_iso(&hex(h), &mut out).unwrap_err();
        // POINT M (1 2 3)
        assert_eq!(
            e("0101000040000000000000F03F00000000000000400000000000000840"),
            WkbError::Measures("POINT")
        );
        assert_eq!(e("0101000000000000000000F03F"), WkbError::Truncated);
        assert_eq!(e("02"), WkbError::ByteOrder(2));
        assert_eq!(e("0163000000"), WkbError::Type(0x63));
        // A line claiming 2^32-1 points in a few bytes.
        assert_eq!(e("0102000000FFFFFFFF00"), WkbError::Truncated);
        assert_eq!(
            e("0101000000000000000000F03F000000000000004000"),
            WkbError::Trailing(1)
        );
    }

    #[test]
    fn curves_have_no_geoparquet_name() {
        // ST_AsEWKB('CIRCULARSTRING(0 0, 1 1, 2 0)')
        let (_, _, s) = iso(
            "01080000000300000000000000000000000000000000000000000000000000F03F000000000000F03F00000000000000400000000000000000",
        );
        assert_eq!(s.geoparquet_types(), None);
        assert_eq!(s.bbox, Some([0.0, 0.0, 2.0, 1.0]));
    }
}
