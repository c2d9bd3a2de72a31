//! Starts a scratch PostgreSQL cluster, loads the benchmark tables, prints how to connect, and
//! keeps the server running until standard input closes (then stops it and removes its files).
//!
//! ```text
//! cargo run --release -p pgarrow-testkit --example serve -- --lineitem 6000000 --wide 2000000
//! ```
//!
//! - `--lineitem N`: table `lineitem` with N rows (`pgarrow_testkit::fixtures::lineitem_sql`);
//! - `--wide N`: table `wide` with N rows, the mixed-type table of `testdata/copy/wide.sql`
//!   (about 10% NULLs in each nullable column) at another size;
//! - `--db NAME`: the database name prefix (default `bench`);
//! - `--logical`: `wal_level = logical` and replication connections of the superuser over TCP
//!   (for `benches/changes.py`).
//!
//! Both tables are deterministic, and are vacuumed (frozen) and analysed after loading, so the
//! first read sets no hint bits. Standard output gets one `key=value` line each for `url`
//! (TCP), `socket_url`, `host`, `port`, `socket_dir`, `user`, `dbname`, `psql`,
//! `server_version_num`, `data_dir`, `lineitem_rows` and `wide_rows`, then a line `ready`.
//! Progress goes to standard error. The benchmark driver `benches/e2e.py` runs this.

use std::error::Error;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use pgarrow_testkit::Cluster;
use pgarrow_testkit::fixtures::lineitem_sql;

/// The text of `testdata/copy/wide.sql` that sets its row count.
const WIDE_ROWS_TEXT: &str = "generate_series(1::bigint, 20000)";

fn main() -> Result<(), Box<dyn Error>> {
    let mut lineitem: u64 = 0;
    let mut wide: u64 = 0;
    let mut db_prefix = "bench".to_owned();
    let mut logical = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--lineitem" => lineitem = value()?.replace('_', "").parse()?,
            "--wide" => wide = value()?.replace('_', "").parse()?,
            "--db" => db_prefix = value()?,
            "--logical" => logical = true,
            "-h" | "--help" => {
                eprintln!("usage: serve [--lineitem ROWS] [--wide ROWS] [--db NAME] [--logical]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (see --help)").into()),
        }
    }

    let started = Instant::now();
    let (plain, replicating);
    let cluster: &pgarrow_scratch::Cluster = if logical {
        replicating = pgarrow_scratch::Cluster::builder()
            .with_hba_lines(["host replication postgres 127.0.0.1/32 trust"])
            .with_settings(["wal_level = logical"])
            .start()?;
        &replicating
    } else {
        plain = Cluster::start()?;
        &plain
    };
    let db = cluster.create_database(&db_prefix)?;
    eprintln!(
        "serve: cluster up on port {} in {:.1} s (database {db})",
        cluster.port(),
        started.elapsed().as_secs_f64()
    );

    let mut loads = Vec::new();
    if lineitem > 0 {
        loads.push(("lineitem", lineitem, lineitem_sql("lineitem", lineitem)));
    }
    if wide > 0 {
        loads.push(("wide", wide, wide_sql(wide)?));
    }
    // One psql per table, side by side.
    std::thread::scope(|s| -> Result<(), String> {
        let handles: Vec<_> = loads
            .iter()
            .map(|(name, rows, sql)| {
                let (cluster, db) = (cluster, &db);
                s.spawn(move || {
                    let t = Instant::now();
                    cluster
                        .psql(db, sql)
                        .and_then(|_| cluster.psql(db, &format!("VACUUM (FREEZE, ANALYZE) {name}")))
                        .map(|_| {
                            eprintln!(
                                "serve: loaded {rows} rows into {name} in {:.1} s",
                                t.elapsed().as_secs_f64()
                            )
                        })
                        .map_err(|e| format!("loading {name}: {e}"))
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| "a loading thread panicked".to_owned())??;
        }
        Ok(())
    })?;

    println!("url={}", cluster.url(&db));
    println!("socket_url={}", cluster.socket_url(&db));
    println!("host=127.0.0.1");
    println!("port={}", cluster.port());
    println!("socket_dir={}", cluster.socket_dir().display());
    println!("user={}", pgarrow_testkit::SUPERUSER);
    println!("dbname={db}");
    println!("psql={}", cluster.psql_path().display());
    println!("server_version_num={}", cluster.server_version_num());
    println!("data_dir={}", cluster.data_dir().display());
    println!("lineitem_rows={lineitem}");
    println!("wide_rows={wide}");
    println!("ready");

    // Serve until whoever started us closes our stdin (or exits).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    eprintln!("serve: stdin closed, stopping the cluster");
    // The cluster stops as its owner (`plain` or `replicating`) goes out of scope.
    Ok(())
}

/// The setup SQL of `testdata/copy/wide.sql` with `rows` rows instead of 20,000.
fn wide_sql(rows: u64) -> Result<String, Box<dyn Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/copy/wide.sql");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (setup, _query) = text
        .split_once("-- query:")
        .ok_or_else(|| format!("{}: no `-- query:` line", path.display()))?;
    if !setup.contains(WIDE_ROWS_TEXT) {
        return Err(format!("{}: no `{WIDE_ROWS_TEXT}` to resize", path.display()).into());
    }
    Ok(setup.replace(
        WIDE_ROWS_TEXT,
        &format!("generate_series(1::bigint, {rows})"),
    ))
}
