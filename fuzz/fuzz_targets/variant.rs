//! Arbitrary bytes as a Parquet Variant (the first byte splits the rest into metadata and
//! value): never a panic; what reads is JSON text that serde_json parses, with no U+0000
//! (which jsonb cannot hold). The same bytes read twice give the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgarrow_io::variant::to_json;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let (metadata, value) = rest.split_at(split);
    let mut out = String::new();
    match to_json(metadata, value, &mut out) {
        Ok(()) => {
            match serde_json::from_str::<serde_json::Value>(&out) {
                Ok(parsed) => assert!(!has_nul(&parsed), "U+0000 in {out}"),
                // serde_json stops at 128 levels; the decoder allows more (MAX_DEPTH).
                Err(e) if e.to_string().contains("recursion limit") => {}
                Err(e) => panic!("not JSON ({e}): {out}"),
            }
            let mut again = String::new();
            to_json(metadata, value, &mut again).expect("reads again");
            assert_eq!(again, out);
        }
        Err(e) => {
            // Its message renders.
            let _ = e.to_string();
        }
    }
});

/// Whether a string or key of `v` holds U+0000, which jsonb cannot hold.
fn has_nul(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}
