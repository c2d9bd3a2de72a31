//! A Delta export's commit against local files, through the crate's public API: the rows land
//! once; a commit whose version another writer took (a version written from the export's
//! progress callback, while the export's query waits at a gate, so that it lands between the
//! export's read of the table and its commit every time) tries the next version; with no retry
//! left it is a conflict that commits nothing and removes the files it wrote; an export that
//! fails midway leaves no file and no version; a mirror's commit that compaction overtook
//! reads the table again.

mod support;

use std::collections::BTreeSet;

use pgarrow::Hooks;
use pgarrow::partition::PartitionOptions;
use pgarrow_lake::{DeltaTarget, IfExists, LakeTarget, export_to_delta};
use support::{
    Gate, export_failing_midway, files_under, mirror_overtaken_by_compaction, rows_of, source_rows,
    source_table,
};

/// The rows of the Delta table at `path`, as pgarrow's reader reads it (deletion vectors
/// applied).
fn delta_rows(path: &str) -> Vec<String> {
    let input = pgarrow_lake::delta::open_delta(path, &Default::default(), &Default::default())
        .expect("the Delta table");
    rows_of(input.map(|b| b.expect("a batch")))
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

fn last_version(path: &str) -> u64 {
    *versions(path).last().unwrap()
}

/// Another writer's version: the next one, holding only its commitInfo.
fn foreign_commit(path: &str) {
    let next = last_version(path) + 1;
    std::fs::write(
        format!("{path}/_delta_log/{next:020}.json"),
        "{\"commitInfo\":{\"timestamp\":1,\"operation\":\"WRITE\",\"engineInfo\":\"another\"}}\n",
    )
    .unwrap();
}

/// The data files under the table's root (the log left out).
fn data_files(path: &str) -> BTreeSet<String> {
    files_under(std::path::Path::new(path), &["_delta_log"])
}

/// The files any version of the log adds: data files, and the files of their deletion vectors
/// (named by their UUID, in Z85 after an optional directory prefix).
fn named_files(path: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for v in versions(path) {
        let text = std::fs::read_to_string(format!("{path}/_delta_log/{v:020}.json")).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(p) = action.pointer("/add/path").and_then(|p| p.as_str()) {
                out.insert(p.to_owned());
            }
            let Some(dv) = action.pointer("/add/deletionVector") else {
                continue;
            };
            if dv["storageType"] == "u" {
                let text = dv["pathOrInlineDv"].as_str().unwrap();
                let (prefix, id) = text.split_at(text.len() - 20);
                let id = uuid::Uuid::from_slice(&z85::decode(id).unwrap()).unwrap();
                let dir = match prefix {
                    "" => String::new(),
                    p => format!("{p}/"),
                };
                out.insert(format!("{dir}deletion_vector_{id}.bin"));
            }
        }
    }
    out
}

/// A source database with `t` of 3,000 rows, and a Delta table made by an export of the rows
/// up to 2,000.
struct Table {
    pg: &'static pgarrow_testkit::Cluster,
    src: String,
    _dir: tempfile::TempDir,
    path: String,
    target: DeltaTarget,
}

impl Table {
    async fn new(prefix: &str) -> Option<Table> {
        let pg = pgarrow_testkit::Cluster::shared()?;
        let src = source_table(pg, prefix, 3000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t").to_str().unwrap().to_owned();
        let target = DeltaTarget::new(&path);
        let stats = export_to_delta(
            pg.url(&src),
            "SELECT id, v FROM t WHERE id <= 2000",
            &Default::default(),
            &PartitionOptions::new(1),
            &target,
            Hooks::new(),
        )
        .await
        .unwrap();
        assert!(
            stats.created && stats.version == 0 && stats.rows == 2000,
            "{stats:?}"
        );
        Some(Table {
            pg,
            src,
            _dir: dir,
            path,
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_commits_exactly_the_source_rows_and_the_files_it_names() {
    let Some(t) = Table::new("delta_commit").await else {
        return;
    };
    assert_eq!(delta_rows(&t.path), t.source("id <= 2000"));
    assert_eq!(data_files(&t.path), named_files(&t.path));
    let stats = export_to_delta(
        t.pg.url(&t.src),
        "SELECT id, v FROM t WHERE id > 2000",
        &Default::default(),
        &PartitionOptions::new(1),
        &t.target,
        Hooks::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (stats.created, stats.rows, stats.retried, stats.version),
        (false, 1000, 0, 1),
        "{stats:?}"
    );
    assert_eq!(versions(&t.path), [0, 1]);
    assert_eq!(delta_rows(&t.path), t.source("true"));
    assert_eq!(data_files(&t.path), named_files(&t.path));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_version_another_writer_took_tries_the_next_and_lands_once() {
    let Some(t) = Table::new("delta_race").await else {
        return;
    };
    let gate = Gate::closed(t.pg, &t.src).await;
    let opener = gate.opener();
    let (pg, path) = (t.pg, t.path.as_str());
    let mut raced = false;
    let hooks = Hooks::new().on_progress(|_: &pgarrow::ExportStats| {
        if !raced {
            raced = true;
            foreign_commit(path);
            opener.open(pg);
        }
    });
    let stats = export_to_delta(
        t.pg.url(&t.src),
        "SELECT id, v FROM t WHERE id > 2000 AND gate()",
        &Default::default(),
        &PartitionOptions::new(1),
        &t.target,
        hooks,
    )
    .await
    .unwrap();
    drop(gate);
    assert!(raced);
    assert_eq!(stats.retried, 1, "{stats:?}");
    // The other writer's version 1 stands, and the export's follows it.
    assert_eq!(stats.version, 2, "{stats:?}");
    assert_eq!(versions(path), [0, 1, 2]);
    let theirs = std::fs::read_to_string(format!("{path}/_delta_log/{:020}.json", 1)).unwrap();
    assert!(theirs.contains("another"), "{theirs}");
    assert_eq!(delta_rows(path), t.source("true"));
    assert_eq!(data_files(path), named_files(path), "no file left unnamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_retry_left_a_lost_version_is_a_conflict_that_commits_nothing_and_removes_its_files()
 {
    let Some(t) = Table::new("delta_spent").await else {
        return;
    };
    let (pg, path) = (t.pg, t.path.as_str());
    let rows = delta_rows(path);
    let files = data_files(path);
    let gate = Gate::closed(pg, &t.src).await;
    let opener = gate.opener();
    let mut raced = false;
    let hooks = Hooks::new().on_progress(|_: &pgarrow::ExportStats| {
        if !raced {
            raced = true;
            foreign_commit(path);
            opener.open(pg);
        }
    });
    let mut target = t.target.clone();
    target.retries = 0;
    let e = export_to_delta(
        pg.url(&t.src),
        "SELECT id, v FROM t WHERE id > 2000 AND gate()",
        &Default::default(),
        &PartitionOptions::new(1),
        &target,
        hooks,
    )
    .await
    .unwrap_err();
    drop(gate);
    assert!(raced);
    assert!(e.is_conflict(), "{e}");
    assert_eq!(versions(path), [0, 1], "only the other writer's version");
    let theirs = std::fs::read_to_string(format!("{path}/_delta_log/{:020}.json", 1)).unwrap();
    assert!(theirs.contains("another"), "{theirs}");
    assert_eq!(delta_rows(path), rows);
    assert_eq!(
        data_files(path),
        files,
        "the failed export's files are removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_source_fails_midway_leaves_no_file_and_no_version() {
    let Some(t) = Table::new("delta_midway").await else {
        return;
    };
    let (pg, path) = (t.pg, t.path.as_str());
    let rows = delta_rows(path);
    let files = data_files(path);
    export_failing_midway(
        pg,
        &t.src,
        &LakeTarget::from(t.target.clone()),
        files.len(),
        || data_files(path).len(),
    )
    .await;
    assert_eq!(data_files(path), files, "the export's files are removed");
    assert_eq!(versions(path), [0], "no version");
    assert_eq!(delta_rows(path), rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_commit_that_compaction_overtook_reads_the_table_again() {
    let Some(pg) = pgarrow_testkit::logical_cluster(&[]) else {
        return;
    };
    let src = source_table(&pg, "delta_mirror", 300);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t").to_str().unwrap().to_owned();
    let target = LakeTarget::from(DeltaTarget::new(&path));
    mirror_overtaken_by_compaction(&pg, &src, &target, "delta_mirror").await;
    assert_eq!(
        delta_rows(&path),
        source_rows(&pg, &src, "SELECT id, v FROM t")
    );
    let files = data_files(&path);
    assert!(files.iter().any(|f| f.ends_with(".bin")), "{files:?}");
    assert_eq!(
        files,
        named_files(&path),
        "the lost try's files are removed"
    );
}
