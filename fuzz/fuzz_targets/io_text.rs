//! Arbitrary text through what pgarrow-io and pgarrow-types read from users and files: a
//! path or URL (`Location::parse`, without object stores), a `KEY=VALUE` storage option, a
//! manifest (`Manifest::from_json`) and a relation's name (`TableName::parse`). Never a panic;
//! a name read back from either of its written forms is the same name, and a manifest read
//! back from its own JSON is the same manifest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgarrow_io::{Location, Manifest, StorageOptions};
use pgarrow_types::TableName;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(location) = Location::parse(text, &StorageOptions::new()) {
        let _ = location.to_string();
        let _ = location.join("x").file_name();
    }
    let _ = StorageOptions::parse_pair(text);
    if let Ok(manifest) = Manifest::from_json(text) {
        let again = Manifest::from_json(&manifest.to_json()).expect("a manifest's own JSON");
        assert_eq!(again, manifest);
    }
    if let Ok(name) = TableName::parse(text) {
        assert_eq!(
            TableName::parse(&name.quoted()).as_ref(),
            Ok(&name),
            "{text:?}"
        );
        assert_eq!(
            TableName::parse(&name.to_string()).as_ref(),
            Ok(&name),
            "{text:?}"
        );
    }
});
