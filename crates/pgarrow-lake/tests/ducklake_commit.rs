//! A DuckLake export's commit against a real catalog database and local files, through the
//! crate's public API: the rows land once; a commit that loses its snapshot to another writer
//! begins again on the new state; out of tries it is a conflict that commits nothing and
//! removes the files it wrote; an export that fails midway leaves no file and no snapshot; a
//! mirror's commit that compaction overtook reads the table again.
//!
//! Another writer wins the race inside the commit itself: DuckLake's commit reads the last
//! snapshot and inserts the next in one transaction, so no callback of the export runs between
//! the two. A trigger on `ducklake_snapshot` (in the catalog database) makes another session
//! commit that next snapshot first, through `dblink`, each time the test asks it to: the
//! commit's insert then meets the other writer's snapshot, as it would in a real race.

mod support;

use pgarrow::Hooks;
use pgarrow::partition::PartitionOptions;
use pgarrow::protocol::Config;
use pgarrow_lake::{DuckLakeTarget, IfExists, LakeTarget, export_to_ducklake};
use support::{
    export_failing_midway, files_under, mirror_overtaken_by_compaction, rows_of, source_rows,
    source_table,
};

/// The rows of DuckLake table `s.name` of the catalog `catalog`, as pgarrow's reader reads it.
async fn lake_rows(catalog: &Config, name: &str) -> Vec<String> {
    let input = pgarrow_lake::ducklake::open_ducklake(
        catalog,
        "s",
        name,
        &Default::default(),
        &Default::default(),
    )
    .await
    .expect("the DuckLake table");
    rows_of(input.map(|b| b.expect("a batch")))
}

/// The one line `sql` prints in database `db`.
fn value(pg: &pgarrow_scratch::Cluster, db: &str, sql: &str) -> String {
    pg.psql(db, sql).unwrap().trim().to_owned()
}

/// The catalog's last snapshot.
fn last_snapshot(pg: &pgarrow_scratch::Cluster, lake: &str) -> i64 {
    value(pg, lake, "SELECT max(snapshot_id) FROM ducklake_snapshot")
        .parse()
        .unwrap()
}

/// Every data and delete file the catalog names, in any snapshot, as paths under the data
/// path.
fn catalog_files(pg: &pgarrow_scratch::Cluster, lake: &str) -> std::collections::BTreeSet<String> {
    pg.psql(
        lake,
        "SELECT DISTINCT s.path || t.path || f.path FROM \
         (SELECT table_id, path FROM ducklake_data_file \
          UNION ALL SELECT table_id, path FROM ducklake_delete_file) f \
         JOIN ducklake_table t USING (table_id) JOIN ducklake_schema s USING (schema_id)",
    )
    .unwrap()
    .lines()
    .filter(|l| !l.is_empty())
    .map(str::to_owned)
    .collect()
}

/// Another writer in catalog database `lake`: while `another_writer.wins_left` is above zero,
/// each commit's insert of its snapshot is preceded by another session committing that same
/// snapshot (an empty one, as a writer that changed another table's properties would), and
/// `another_writer.won` counts them.
fn another_writer(pg: &pgarrow_scratch::Cluster, lake: &str) {
    let url = pg.url(lake);
    pg.psql(
        lake,
        &format!(
            "CREATE EXTENSION IF NOT EXISTS dblink;
             CREATE TABLE another_writer (wins_left int NOT NULL, won int NOT NULL);
             INSERT INTO another_writer VALUES (0, 0);
             CREATE FUNCTION another_writer_first() RETURNS trigger LANGUAGE plpgsql AS $f$
             BEGIN
               IF (SELECT wins_left FROM another_writer) > 0 THEN
                 PERFORM dblink_exec('{url}', $w$
                   SET session_replication_role = replica;
                   UPDATE another_writer SET wins_left = wins_left - 1, won = won + 1;
                   INSERT INTO ducklake_snapshot SELECT snapshot_id + 1, now(), schema_version,
                     next_catalog_id, next_file_id FROM ducklake_snapshot
                     ORDER BY snapshot_id DESC LIMIT 1;
                   INSERT INTO ducklake_snapshot_changes
                     SELECT max(snapshot_id), '', 'another writer', NULL, NULL
                     FROM ducklake_snapshot
                 $w$);
               END IF;
               RETURN NEW;
             END $f$;
             CREATE TRIGGER another_writer_first BEFORE INSERT ON ducklake_snapshot
               FOR EACH ROW EXECUTE FUNCTION another_writer_first();"
        ),
    )
    .expect("the other writer's trigger (dblink, from PostgreSQL's contrib, is needed)");
}

/// The other writer wins the next `n` commits.
fn let_win(pg: &pgarrow_scratch::Cluster, lake: &str, n: u32) {
    pg.psql(
        lake,
        &format!("UPDATE another_writer SET wins_left = {n}, won = 0"),
    )
    .unwrap();
}

fn won(pg: &pgarrow_scratch::Cluster, lake: &str) -> u32 {
    value(pg, lake, "SELECT won FROM another_writer")
        .parse()
        .unwrap()
}

/// A source database with `t` of 3,000 rows, a catalog database, a data path, and table `s.t`
/// made by an export of the rows up to 2,000 (before the other writer's trigger, as the catalog
/// is made by that first export).
struct Lake {
    pg: &'static pgarrow_testkit::Cluster,
    src: String,
    lake: String,
    catalog: Config,
    data: tempfile::TempDir,
    target: DuckLakeTarget,
}

impl Lake {
    async fn new(prefix: &str) -> Option<Lake> {
        let pg = pgarrow_testkit::Cluster::shared()?;
        let src = source_table(pg, &format!("{prefix}_src"), 3000);
        let lake = pg.create_database(&format!("{prefix}_lake")).unwrap();
        let catalog = Config::parse(&pg.url(&lake)).unwrap();
        let data = tempfile::tempdir().unwrap();
        let target = DuckLakeTarget::new(catalog.clone(), "s", "t")
            .with_data_path(data.path().to_str().unwrap());
        let stats = export_to_ducklake(
            pg.url(&src),
            "SELECT id, v FROM t WHERE id <= 2000",
            &Default::default(),
            &PartitionOptions::new(1),
            &target,
            Hooks::new(),
        )
        .await
        .unwrap();
        assert!(stats.created && stats.rows == 2000, "{stats:?}");
        another_writer(pg, &lake);
        Some(Lake {
            pg,
            src,
            lake,
            catalog,
            data,
            target: target.with_if_exists(IfExists::Append),
        })
    }

    fn source(&self, filter: &str) -> Vec<String> {
        source_rows(
            self.pg,
            &self.src,
            &format!("SELECT id, v FROM t WHERE {filter}"),
        )
    }

    fn files(&self) -> std::collections::BTreeSet<String> {
        files_under(self.data.path(), &[])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_commits_exactly_the_source_rows_and_the_files_it_names() {
    let Some(lake) = Lake::new("dl_commit").await else {
        return;
    };
    let (pg, db) = (lake.pg, &lake.lake);
    assert_eq!(
        lake_rows(&lake.catalog, "t").await,
        lake.source("id <= 2000")
    );
    assert_eq!(lake.files(), catalog_files(pg, db));
    // An append: one snapshot more, its rows added once, every file on disk named.
    let before = last_snapshot(pg, db);
    let stats = export_to_ducklake(
        pg.url(&lake.src),
        "SELECT id, v FROM t WHERE id > 2000",
        &Default::default(),
        &PartitionOptions::new(1),
        &lake.target,
        Hooks::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (stats.created, stats.rows, stats.retried, stats.snapshot),
        (false, 1000, 0, before + 1),
        "{stats:?}"
    );
    assert_eq!(lake_rows(&lake.catalog, "t").await, lake.source("true"));
    assert_eq!(lake.files(), catalog_files(pg, db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_loses_its_snapshot_to_another_writer_begins_again_and_lands_once() {
    let Some(lake) = Lake::new("dl_race").await else {
        return;
    };
    let (pg, db) = (lake.pg, &lake.lake);
    let before = last_snapshot(pg, db);
    let_win(pg, db, 1);
    let stats = export_to_ducklake(
        pg.url(&lake.src),
        "SELECT id, v FROM t WHERE id > 2000",
        &Default::default(),
        &PartitionOptions::new(1),
        &lake.target,
        Hooks::new(),
    )
    .await
    .unwrap();
    assert_eq!(won(pg, db), 1, "the other writer committed first");
    assert_eq!(stats.retried, 1, "{stats:?}");
    // The other writer's snapshot stands, and the export's follows it.
    assert_eq!(stats.snapshot, before + 2, "{stats:?}");
    assert_eq!(
        value(
            pg,
            db,
            &format!(
                "SELECT author FROM ducklake_snapshot_changes WHERE snapshot_id = {}",
                before + 1
            )
        ),
        "another writer"
    );
    assert_eq!(lake_rows(&lake.catalog, "t").await, lake.source("true"));
    assert_eq!(lake.files(), catalog_files(pg, db), "no file left unnamed");

    // A new table too begins again when the other writer left it alone.
    let_win(pg, db, 1);
    let mut u = lake.target.clone();
    u.table = "u".into();
    let stats = export_to_ducklake(
        pg.url(&lake.src),
        "SELECT id, v FROM t WHERE id <= 10",
        &Default::default(),
        &PartitionOptions::new(1),
        &u,
        Hooks::new(),
    )
    .await
    .unwrap();
    assert!(stats.created && stats.retried == 1, "{stats:?}");
    assert_eq!(won(pg, db), 1);
    assert_eq!(lake_rows(&lake.catalog, "u").await, lake.source("id <= 10"));
    assert_eq!(lake.files(), catalog_files(pg, db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_tries_a_lost_race_is_a_conflict_that_commits_nothing_and_removes_its_files() {
    let Some(lake) = Lake::new("dl_spent").await else {
        return;
    };
    let (pg, db) = (lake.pg, &lake.lake);
    let rows = lake_rows(&lake.catalog, "t").await;
    let files = lake.files();
    let before = last_snapshot(pg, db);
    // Snapshots after `before` that are not the other writer's.
    let ours = |pg: &pgarrow_scratch::Cluster| {
        value(
            pg,
            db,
            &format!(
                "SELECT count(*) FROM ducklake_snapshot s LEFT JOIN ducklake_snapshot_changes c \
                 USING (snapshot_id) WHERE s.snapshot_id > {before} \
                 AND c.author IS DISTINCT FROM 'another writer'"
            ),
        )
    };
    // A writer that wins every time, and two retries: three tries, three losses.
    let_win(pg, db, 100);
    let mut target = lake.target.clone();
    target.retries = 2;
    let e = export_to_ducklake(
        pg.url(&lake.src),
        "SELECT id, v FROM t WHERE id > 2000",
        &Default::default(),
        &PartitionOptions::new(1),
        &target,
        Hooks::new(),
    )
    .await
    .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert_eq!(won(pg, db), 3, "each try lost its snapshot");
    let_win(pg, db, 0);
    assert_eq!(ours(pg), "0", "no snapshot but the other writer's");
    assert_eq!(lake_rows(&lake.catalog, "t").await, rows);
    assert_eq!(lake.files(), files, "the failed export's files are removed");

    // No retry at all: the first loss is the conflict.
    let_win(pg, db, 1);
    target.retries = 0;
    let e = export_to_ducklake(
        pg.url(&lake.src),
        "SELECT id, v FROM t WHERE id > 2000",
        &Default::default(),
        &PartitionOptions::new(1),
        &target,
        Hooks::new(),
    )
    .await
    .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert_eq!(won(pg, db), 1);
    assert_eq!(ours(pg), "0", "no snapshot but the other writer's");
    assert_eq!(lake_rows(&lake.catalog, "t").await, rows);
    assert_eq!(lake.files(), files, "the failed export's files are removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_source_fails_midway_leaves_no_file_and_no_snapshot() {
    let Some(lake) = Lake::new("dl_midway").await else {
        return;
    };
    let (pg, db) = (lake.pg, &lake.lake);
    let rows = lake_rows(&lake.catalog, "t").await;
    let files = lake.files();
    let before = last_snapshot(pg, db);
    export_failing_midway(
        pg,
        &lake.src,
        &LakeTarget::from(lake.target.clone()),
        files.len(),
        || lake.files().len(),
    )
    .await;
    assert_eq!(lake.files(), files, "the export's files are removed");
    assert_eq!(last_snapshot(pg, db), before, "no snapshot");
    assert_eq!(lake_rows(&lake.catalog, "t").await, rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_commit_that_compaction_overtook_reads_the_table_again() {
    let Some(pg) = pgarrow_testkit::logical_cluster(&[]) else {
        return;
    };
    let src = source_table(&pg, "dl_mirror_src", 300);
    let lake = pg.create_database("dl_mirror_lake").unwrap();
    let catalog = Config::parse(&pg.url(&lake)).unwrap();
    let data = tempfile::tempdir().unwrap();
    let target = LakeTarget::from(
        DuckLakeTarget::new(catalog.clone(), "s", "t")
            .with_data_path(data.path().to_str().unwrap()),
    );
    mirror_overtaken_by_compaction(&pg, &src, &target, "dl_mirror").await;
    assert_eq!(
        lake_rows(&catalog, "t").await,
        source_rows(&pg, &src, "SELECT id, v FROM t")
    );
    assert_ne!(
        value(&pg, &lake, "SELECT count(*) FROM ducklake_delete_file"),
        "0",
        "the mirror deleted by position"
    );
    assert_eq!(
        files_under(data.path(), &[]),
        catalog_files(&pg, &lake),
        "the lost try's files are removed"
    );
}
