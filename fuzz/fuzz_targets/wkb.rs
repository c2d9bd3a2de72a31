//! Arbitrary bytes as (E)WKB: never a panic; `summarize` accepts what `ewkb_to_iso` does; what
//! that accepts it rewrites into ISO WKB that it accepts again unchanged (little-endian, no
//! SRID, the same types and box), and `with_srid` puts an SRID into that the rewrite reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgarrow_types::wkb::{GeoSummary, ewkb_to_iso, summarize, with_srid};

fuzz_target!(|data: &[u8]| {
    let mut iso = Vec::new();
    let mut summary = GeoSummary::default();
    let converted = ewkb_to_iso(data, &mut iso);
    // Summarizing accepts exactly what converting does.
    assert_eq!(
        summarize(data, &mut summary).is_ok(),
        converted.is_ok(),
        "summarize and ewkb_to_iso disagree"
    );
    if converted.is_err() {
        return;
    }
    let mut again = Vec::new();
    let mut summary_again = GeoSummary::default();
    let srid = ewkb_to_iso(&iso, &mut again).expect("ISO WKB reads back");
    summarize(&iso, &mut summary_again).expect("ISO WKB summarizes");
    assert_eq!(srid, None);
    assert_eq!(again, iso, "the rewrite is a fixed point");
    assert_eq!(summary_again.types, summary.types);
    assert_eq!(
        summary_again.bbox.map(|b| b.map(f64::to_bits)),
        summary.bbox.map(|b| b.map(f64::to_bits))
    );
    let mut ewkb = Vec::new();
    with_srid(&iso, 4326, &mut ewkb).expect("ISO WKB takes an SRID");
    let mut back = Vec::new();
    let srid = ewkb_to_iso(&ewkb, &mut back).expect("EWKB reads");
    assert_eq!(srid, Some(4326));
    assert_eq!(back, iso);
});
