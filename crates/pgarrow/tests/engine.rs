//! The engine calls that every door shares, against a real server: several tables in one
//! snapshot into a directory with a manifest, loading exactly what a manifest lists, copying
//! between databases, and one `Stop` for each of them.

use pgarrow::blocking::{self, CopyOptions};
use pgarrow::partition::{PartitionOptions, export_to_dir};
use pgarrow::sink::Format;
use pgarrow::{
    DirTarget, ExportOptions, Hooks, Input, InputOptions, LoadHooks, LoadMode, LoadOptions,
    MANIFEST_NAME, Manifest, Source, Stop, TableName, TablePattern, TablesExport,
};
use pgarrow_testkit::Cluster;

/// A new database with two tables in schema `s` and one in `other`; its URL and cluster.
fn setup(prefix: &str) -> Option<(&'static Cluster, String, String)> {
    let pg = Cluster::shared()?;
    let db = pg.create_database(prefix).unwrap();
    pg.psql(
        &db,
        "CREATE SCHEMA s; CREATE SCHEMA other;
         CREATE TABLE s.a AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 3000) g;
         CREATE TABLE s.\"B\" AS SELECT g AS id FROM generate_series(1, 7) g;
         CREATE TABLE other.c AS SELECT 1 AS one;",
    )
    .unwrap();
    Some((pg, pg.url(&db), db))
}

fn count(pg: &Cluster, db: &str, table: &str) -> u64 {
    pg.psql(db, &format!("SELECT count(*) FROM {table}"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    blocking::runtime().unwrap()
}

#[test]
fn several_tables_go_to_one_directory_in_one_snapshot_with_one_manifest() {
    let Some((_pg, url, _db)) = setup("engine_tables") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let patterns = [TablePattern::schema("s").unwrap()];
    let target = DirTarget::new(dir.path(), Format::Parquet);
    let rt = runtime();
    let stats = rt
        .block_on(pgarrow::export_tables(
            &url,
            &patterns,
            &ExportOptions::default(),
            target,
            Hooks::new(),
        ))
        .unwrap();
    let manifest = Manifest::read(dir.path()).unwrap();
    assert_eq!(manifest, stats.manifest);
    assert_eq!(manifest.pgarrow_manifest, pgarrow::MANIFEST_VERSION);
    assert!(manifest.snapshot.is_some() && manifest.wal_lsn.is_some());
    let tables: Vec<String> = manifest
        .files
        .iter()
        .map(|f| f.table.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(tables, ["s.\"B\"", "s.a"]);
    assert_eq!(manifest.rows, 3007);
    for f in &manifest.files {
        assert!(dir.path().join(&f.path).exists(), "{}", f.path);
        assert_eq!(f.part, None);
    }
    // The document form holds the manifest's fields and where it is.
    let json: serde_json::Value = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["rows"], 3007);
    assert_eq!(json["files"].as_array().unwrap().len(), 2);
    assert!(json["manifest"].as_str().unwrap().ends_with(MANIFEST_NAME));
}

#[test]
fn an_unfinished_export_of_several_tables_leaves_no_file_and_no_manifest() {
    let Some((_pg, url, _db)) = setup("engine_tables_drop") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let patterns = [TablePattern::parse("s.*").unwrap()];
    let target = DirTarget::new(dir.path(), Format::ArrowFile);
    let mut export = rt
        .block_on(TablesExport::begin(&url, &patterns, target))
        .unwrap();
    assert_eq!(export.tables().len(), 2);
    let first = rt
        .block_on(export.export_next(&ExportOptions::default(), Hooks::new()))
        .unwrap()
        .unwrap();
    assert_eq!(first.1.rows, 7);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // Finishing early is refused; dropping removes what was written.
    drop(export);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A stopped export: cancelled, and nothing left either.
    let stop = Stop::new();
    stop.stop();
    let target = DirTarget::new(dir.path(), Format::Parquet);
    let hooks = Hooks::new().with_stop(stop);
    let e = rt
        .block_on(pgarrow::export_tables(
            &url,
            &patterns,
            &ExportOptions::default(),
            target,
            hooks,
        ))
        .unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    assert!(!dir.path().join(MANIFEST_NAME).exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_manifest_directory_loads_exactly_its_files_and_checks_their_rows() {
    let Some((pg, url, db)) = setup("engine_import_dir") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let target = DirTarget::new(dir.path(), Format::Parquet);
    rt.block_on(export_to_dir(
        &url,
        Source::table("s.a").unwrap(),
        &ExportOptions::default(),
        &PartitionOptions::new(2).parts(3),
        &target,
        Hooks::new(),
    ))
    .unwrap();
    // A stray file the manifest does not list is not loaded.
    std::fs::copy(
        dir.path().join("part-00000.parquet"),
        dir.path().join("stray.parquet"),
    )
    .unwrap();
    pg.psql(&db, "CREATE TABLE s.copy (id int, h text)")
        .unwrap();
    let input = Input::open(&[dir.path().to_owned()], &InputOptions::default()).unwrap();
    let stats = blocking::load(
        &url,
        "s.copy",
        input,
        &LoadOptions::new(LoadMode::Append),
        &Stop::new(),
    )
    .unwrap();
    assert_eq!(stats.rows, 3000);
    assert_eq!(count(pg, &db, "s.copy"), 3000);

    // A manifest whose counts do not match its files fails the load, which loads nothing.
    let text = std::fs::read_to_string(dir.path().join(MANIFEST_NAME)).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    manifest["files"][0]["rows"] = serde_json::json!(1);
    std::fs::write(dir.path().join(MANIFEST_NAME), manifest.to_string()).unwrap();
    let input = Input::open(&[dir.path().to_owned()], &InputOptions::default()).unwrap();
    let e = blocking::load(
        &url,
        "s.copy",
        input,
        &LoadOptions::new(LoadMode::Append),
        &Stop::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("its manifest says 1"), "{e}");
    assert_eq!(count(pg, &db, "s.copy"), 3000);
}

#[test]
fn copy_moves_a_table_between_databases_in_one_transaction() {
    let Some((pg, url, _db)) = setup("engine_copy_from") else {
        return;
    };
    let target_db = pg.create_database("engine_copy_to").unwrap();
    let to = pg.url(&target_db);
    let options = CopyOptions::new(LoadOptions::new(LoadMode::Append).with_create(true))
        .with_partitions(Some(PartitionOptions::new(2)));
    let stats = blocking::copy(
        &url,
        Source::table("s.a").unwrap(),
        &to,
        TableName::new(Some("public"), "a"),
        &options,
        LoadHooks::default(),
    )
    .unwrap();
    assert_eq!(stats.load.rows, 3000);
    assert_eq!(stats.source.rows, 3000);
    assert_eq!(count(pg, &target_db, "public.a"), 3000);
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["rows"], 3000);
    assert_eq!(json["source"]["rows"], 3000);

    // A failing source: the target is as it was, and the error says it was the source.
    let e = blocking::copy(
        &url,
        Source::query("SELECT 1 / (g - 2000) AS x FROM generate_series(1, 3000) g"),
        &to,
        "x_target",
        &CopyOptions::new(LoadOptions::new(LoadMode::Append).with_create(true)),
        LoadHooks::default(),
    )
    .unwrap_err();
    assert_eq!(e.code(), Some("22012"), "{e}");
    assert!(e.to_string().contains("the source"), "{e}");
    assert!(
        pg.psql(&target_db, "SELECT to_regclass('x_target') IS NULL")
            .unwrap()
            .trim()
            == "t"
    );

    // Stopped before it starts: cancelled, nothing loaded.
    let stop = Stop::new();
    stop.stop();
    let e = blocking::copy(
        &url,
        Source::table("s.a").unwrap(),
        &to,
        "public.a",
        &CopyOptions::default(),
        LoadHooks::default().stop(&stop),
    )
    .unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    assert_eq!(count(pg, &target_db, "public.a"), 3000);
}

#[test]
fn errors_say_what_the_caller_can_do() {
    let Some((_pg, url, _db)) = setup("engine_errors") else {
        return;
    };
    let rt = runtime();
    let no_db = url.rsplit_once('/').unwrap().0.to_owned() + "/no_such_database";
    let e = rt.block_on(pgarrow::Client::connect(&no_db)).unwrap_err();
    assert!(e.is_connection(), "{e}");
    assert_eq!(e.code(), Some("3D000"));
    let e = rt
        .block_on(pgarrow::Client::connect("postgresql://x:notaport/db"))
        .unwrap_err();
    assert!(e.is_usage(), "{e}");
    let mut client = rt.block_on(pgarrow::Client::connect(&url)).unwrap();
    let e = rt
        .block_on(client.plan(&Source::query("SELECT * FROM no_such_table")))
        .unwrap_err();
    assert_eq!(e.category(), pgarrow::Category::Server, "{e}");
    let e = rt
        .block_on(client.plan(&Source::query("CREATE TABLE x (a int)")))
        .unwrap_err();
    assert!(e.is_usage(), "{e}");
    let e = pgarrow::TablePattern::parse("a.b.c").unwrap_err();
    assert!(e.is_usage(), "{e}");
}
