//! A mirror asked for a failover slot (PostgreSQL 17, from the `@embedded-postgres` packages
//! `scripts/test-all.sh` installs) makes one, and goes on through it into a Delta table; a
//! server before 17 refuses it with nothing made.

use pgarrow::names::TableName;
use pgarrow_lake::mirror::{MirrorOptions, mirror_to_lake};
use pgarrow_lake::{DeltaTarget, LakeTarget};

/// A cluster of `bin` (the system's when `None`) with `wal_level = logical`.
fn logical(bin: Option<&std::path::Path>) -> pgarrow_scratch::Cluster {
    let mut builder = pgarrow_scratch::Cluster::builder()
        .with_hba_lines(["host replication postgres 127.0.0.1/32 trust"])
        .with_settings(["wal_level = logical"]);
    if let Some(bin) = bin {
        builder = builder.with_bin_dir(bin);
    }
    builder.start().expect("a cluster with wal_level = logical")
}

/// The rows of the Delta table at `path`, as pgarrow's import reads it.
fn delta_rows(path: &str) -> usize {
    let input = pgarrow_lake::delta::open_delta(path, &Default::default(), &Default::default())
        .expect("the mirrored Delta table");
    input.map(|b| b.expect("a batch").num_rows()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_mirror_makes_a_failover_slot_and_older_servers_say_why() {
    pgarrow_testkit::Cluster::shared();
    let bin = pgarrow_testkit::version_bin_dir(17);
    if !bin.join("initdb").exists() {
        pgarrow_testkit::missing(
            "PostgreSQL 17",
            &format!("no server binaries in {}", bin.display()),
        );
        return;
    }
    let pg = logical(Some(&bin));
    let db = pg.create_database("failover").unwrap();
    pg.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text); \
         INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t").to_str().unwrap().to_owned();
    let target = LakeTarget::Delta(DeltaTarget::new(&path));
    let tables = [TableName::new(Some("public"), "t")];
    let options = MirrorOptions::new("fo")
        .with_catch_up(true)
        .with_failover(true);
    let stats = mirror_to_lake(pg.url(&db), &tables, &target, &options, Default::default())
        .await
        .unwrap();
    assert!(stats.exported && stats.exported_rows == 100, "{stats:?}");
    let slot = pg
        .psql(
            &db,
            "SELECT failover FROM pg_replication_slots WHERE slot_name = 'fo'",
        )
        .unwrap();
    assert_eq!(
        slot.trim(),
        "t",
        "the slot is not a failover slot: {slot:?}"
    );
    // The changes go through it.
    pg.psql(
        &db,
        "UPDATE t SET v = 'w' WHERE id <= 10; DELETE FROM t WHERE id > 90",
    )
    .unwrap();
    let stats = mirror_to_lake(pg.url(&db), &tables, &target, &options, Default::default())
        .await
        .unwrap();
    assert_eq!(
        (stats.commits, stats.inserted, stats.deleted),
        (1, 10, 20),
        "{stats:?}"
    );
    assert_eq!(delta_rows(&path), 90);

    // The system's server, before 17: refused, naming the version, with nothing made.
    let old = logical(None);
    let db = old.create_database("failover_old").unwrap();
    let version: u32 = old
        .psql(&db, "SHOW server_version_num")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if version >= 170_000 {
        return;
    }
    old.psql(&db, "CREATE TABLE t (id int PRIMARY KEY)")
        .unwrap();
    let path = dir.path().join("old").to_str().unwrap().to_owned();
    let target = LakeTarget::Delta(DeltaTarget::new(&path));
    let e = mirror_to_lake(old.url(&db), &tables, &target, &options, Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("PostgreSQL 17"), "{e}");
    let made = old
        .psql(
            &db,
            "SELECT (SELECT count(*) FROM pg_replication_slots) + \
             (SELECT count(*) FROM pg_publication)",
        )
        .unwrap();
    assert_eq!(made.trim(), "0");
    assert!(!std::path::Path::new(&path).exists());
}
