//! Arbitrary text through what pgarrow-io and pgarrow-types read from users and files: a
//! path or URL (`Location::parse`, without object stores), a `KEY=VALUE` storage option, a
//! manifest (`Manifest::from_json`, with a layout's partition values), a relation's name
//! (`TableName::parse`), and the layout's and Parquet's column options (`PartitionField`,
//! `BloomFilter`, `ColumnEncoding`). Never a panic; a name or a value partition read back from
//! its written form is the same, and a manifest read back from its own JSON is the same
//! manifest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgarrow_io::{BloomFilter, ColumnEncoding, Location, Manifest, PartitionField, StorageOptions};
use pgarrow_types::TableName;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(location) = Location::parse(text, &StorageOptions::new()) {
        let _ = location.to_string();
        let _ = location.join("x").file_name();
        let _ = location.join_path(text).file_name();
    }
    if let Ok(field) = text.parse::<PartitionField>() {
        let again = field.to_string().parse::<PartitionField>();
        assert_eq!(again.as_ref().ok(), Some(&field), "{text:?} -> {field}");
        let _ = field.name();
    }
    let _ = text.parse::<BloomFilter>();
    let _ = text.parse::<ColumnEncoding>();
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
