//! Rebuilds `testdata/copy/<case>.bin` and `<case>.columns` from `<case>.sql` with a scratch
//! cluster: `cargo run -p pgarrow-testkit --example regen_fixtures` (or `just regen-fixtures`).
//!
//! A case file holds setup SQL, then a line `-- query:` and the query whose binary COPY output
//! is captured. A line `-- lineitem: N` in the setup loads the lineitem-shaped table with N
//! rows. `<case>.columns` lists each result column as `name<TAB>type oid<TAB>typmod`.

use std::error::Error;
use std::fs;
use std::path::Path;

use pgarrow_testkit::Cluster;
use pgarrow_testkit::fixtures::lineitem_sql;

fn main() -> Result<(), Box<dyn Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/copy");
    let cluster = Cluster::start()?;
    let mut cases: Vec<_> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    cases.sort();
    for case in cases {
        let text = fs::read_to_string(&case)?;
        let (setup, query) = text
            .split_once("-- query:")
            .ok_or_else(|| format!("{}: no `-- query:` line", case.display()))?;
        let query = query.trim().trim_end_matches(';');
        let name = case.file_stem().and_then(|s| s.to_str()).unwrap_or("case");
        let db = cluster.create_database(name)?;
        let mut sql = setup.to_owned();
        for line in setup.lines() {
            if let Some(n) = line.strip_prefix("-- lineitem:") {
                sql.push_str(&lineitem_sql("lineitem", n.trim().parse()?));
            }
        }
        cluster.psql(&db, &sql)?;
        let bin = cluster.copy_binary(&db, query)?;
        fs::write(dir.join(format!("{name}.bin")), &bin)?;
        let columns = cluster.psql(
            &db,
            &format!(
                "CREATE TEMP TABLE pgarrow_fixture_shape AS {query} LIMIT 0;\n\
                 SELECT attname || E'\\t' || atttypid || E'\\t' || atttypmod FROM pg_attribute \
                 WHERE attrelid = 'pgarrow_fixture_shape'::regclass AND attnum > 0 ORDER BY attnum;"
            ),
        )?;
        fs::write(dir.join(format!("{name}.columns")), columns)?;
        eprintln!("{name}: {} bytes", bin.len());
    }
    Ok(())
}
