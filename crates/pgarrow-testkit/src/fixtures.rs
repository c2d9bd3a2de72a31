//! Deterministic sample data sets, generated on the server with `generate_series`, and
//! binary COPY streams captured from a real server.

pub use pgarrow_scratch::sample::{LINEITEM_COLUMNS, lineitem_sql};

/// A binary COPY stream captured from a real server (`testdata/copy/<name>.bin`, rebuilt by
/// `just regen-fixtures`) and its result columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedCopy {
    /// `(name, type OID, typmod)` of each column, from `<name>.columns`.
    pub columns: Vec<(String, u32, i32)>,
    /// The stream's bytes.
    pub bytes: Vec<u8>,
}

/// Loads `testdata/copy/<name>.bin` and `<name>.columns`.
///
/// # Panics
/// When the files are missing or malformed: fixtures are part of the repository.
pub fn captured_copy(name: &str) -> CapturedCopy {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/copy");
    let read = |ext: &str| {
        let path = dir.join(format!("{name}.{ext}"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
    };
    let bytes = read("bin");
    let columns = String::from_utf8(read("columns"))
        .expect("fixture .columns is UTF-8")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let parts: Vec<&str> = l.split('\t').collect();
            assert_eq!(parts.len(), 3, "fixture {name}.columns line {l:?}");
            (
                parts[0].to_owned(),
                parts[1].parse().expect("type OID"),
                parts[2].parse().expect("typmod"),
            )
        })
        .collect();
    CapturedCopy { columns, bytes }
}
