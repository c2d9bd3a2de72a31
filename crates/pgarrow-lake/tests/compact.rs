//! Compaction gives way to a writer that commits first: a Delta version another writer takes
//! between compaction's read and its commit (made here from compaction's progress callback,
//! so that the race happens every time) sends it back to read the table again, or, out of
//! retries, aside with nothing committed; the table's rows stay the same throughout, and a
//! mirror goes on from the compacted table.

use pgarrow::Hooks;
use pgarrow::names::TableName;
use pgarrow_lake::maintain::{CompactOptions, CompactProgress, compact_lake};
use pgarrow_lake::mirror::{MirrorOptions, mirror_to_lake};
use pgarrow_lake::{DeltaTarget, LakeTarget};

/// The ids of the Delta table at `path`, sorted, as pgarrow's import reads it (deletion
/// vectors applied).
fn delta_ids(path: &str) -> Vec<i32> {
    let input = pgarrow_lake::delta::open_delta(path, &Default::default(), &Default::default())
        .expect("the Delta table");
    let mut ids = Vec::new();
    for batch in input {
        let batch = batch.expect("a batch");
        let column = batch.column_by_name("id").expect("an id column");
        let column = column
            .as_any()
            .downcast_ref::<arrow_array::Int32Array>()
            .expect("int ids");
        ids.extend(column.values().iter().copied());
    }
    ids.sort_unstable();
    ids
}

/// The versions in the log at `path`.
fn versions(path: &str) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(format!("{path}/_delta_log"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    v.sort_unstable();
    v
}

/// Another writer's version: the next one, holding only its commitInfo.
fn foreign_commit(path: &str) {
    let next = versions(path).last().map_or(0, |v| v + 1);
    std::fs::write(
        format!("{path}/_delta_log/{next:020}.json"),
        "{\"commitInfo\":{\"timestamp\":1,\"operation\":\"WRITE\",\"engineInfo\":\"another\"}}\n",
    )
    .unwrap();
}

fn data_files(path: &str) -> usize {
    std::fs::read_dir(path)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".parquet")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_reads_the_table_again_or_steps_aside_when_another_writer_commits_first() {
    pgarrow_testkit::Cluster::shared();
    let pg = pgarrow_scratch::Cluster::builder()
        .with_hba_lines(["host replication postgres 127.0.0.1/32 trust"])
        .with_settings(["wal_level = logical"])
        .start()
        .expect("a cluster with wal_level = logical");
    let db = pg.create_database("compact").unwrap();
    pg.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text); \
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 300) g",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t").to_str().unwrap().to_owned();
    let target = LakeTarget::Delta(DeltaTarget::new(&path));
    let tables = [TableName::new(Some("public"), "t")];
    let mirror = MirrorOptions::new("compact_slot").with_catch_up(true);
    mirror_to_lake(pg.url(&db), &tables, &target, &mirror, Default::default())
        .await
        .unwrap();
    // Small files, and deletion vectors on them.
    for round in 0..3 {
        pg.psql(
            &db,
            &format!(
                "UPDATE t SET v = v || '+' WHERE id % 7 = {round}; \
                 DELETE FROM t WHERE id % 11 = {round}; \
                 INSERT INTO t SELECT g, 'n' FROM generate_series({0}, {0} + 20) g",
                1000 + round * 100
            ),
        )
        .unwrap();
        mirror_to_lake(pg.url(&db), &tables, &target, &mirror, Default::default())
            .await
            .unwrap();
    }
    let source = |pg: &pgarrow_scratch::Cluster| -> Vec<i32> {
        pg.psql(&db, "SELECT id FROM t ORDER BY id")
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    let want = source(&pg);
    assert_eq!(delta_ids(&path), want);
    let files_before = data_files(&path);
    assert!(files_before >= 4, "{files_before} files");

    // Out of retries: the other writer's version stays the last, nothing of compaction is
    // committed.
    let mut raced = false;
    let hooks = Hooks::new().on_progress(|e: &CompactProgress| {
        if matches!(e, CompactProgress::Rewriting { .. }) && !raced {
            raced = true;
            foreign_commit(&path);
        }
    });
    let options = CompactOptions::new().with_retries(0);
    let stats = compact_lake(&target, &options, hooks).await.unwrap();
    assert!(stats.stepped_aside && stats.commits == 0, "{stats:?}");
    let last = *versions(&path).last().unwrap();
    let text = std::fs::read_to_string(format!("{path}/_delta_log/{last:020}.json")).unwrap();
    assert!(text.contains("another"), "{text}");
    assert_eq!(delta_ids(&path), want);
    assert_eq!(
        data_files(&path),
        files_before,
        "the files it wrote are removed"
    );

    // With retries: it reads the table again and commits.
    let mut raced = false;
    let mut events = Vec::new();
    let hooks = Hooks::new().on_progress(|e: &CompactProgress| {
        if matches!(e, CompactProgress::Rewriting { .. }) && !raced {
            raced = true;
            foreign_commit(&path);
        }
        events.push(e.to_string());
    });
    let stats = compact_lake(&target, &CompactOptions::new(), hooks)
        .await
        .unwrap();
    assert!(
        !stats.stepped_aside && stats.retried == 1 && stats.commits == 1,
        "{stats:?}"
    );
    assert!(
        stats.deletes_folded > 0 && stats.files_written == 1,
        "{stats:?}"
    );
    assert!(
        events.iter().any(|e| e.contains("reading the table again")),
        "{events:?}"
    );
    assert_eq!(delta_ids(&path), want);
    // Nothing left to compact.
    let again = compact_lake(&target, &CompactOptions::new(), Hooks::new())
        .await
        .unwrap();
    assert_eq!(again.commits, 0, "{again:?}");

    // The mirror goes on from the compacted table.
    pg.psql(
        &db,
        "UPDATE t SET v = 'after' WHERE id % 5 = 0; DELETE FROM t WHERE id % 9 = 0",
    )
    .unwrap();
    mirror_to_lake(pg.url(&db), &tables, &target, &mirror, Default::default())
        .await
        .unwrap();
    assert_eq!(delta_ids(&path), source(&pg));
}
