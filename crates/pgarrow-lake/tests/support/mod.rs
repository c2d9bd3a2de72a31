//! What the commit tests of each format share: a gate that holds an export's source query until
//! the test's progress callback has acted (so that what a test does "during the export" happens
//! during it every time, with no sleeping), the files under a directory, and rows as text to
//! compare a lake table with its source.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};

/// The advisory lock key of [`Gate`].
const GATE_KEY: i64 = 67;

/// A gate in an export's source query: `gate()`, called in the query, waits until
/// [`Opener::open`]. While the query waits, the export's progress callback is called (the export
/// reports progress while no batch arrives), and so is the test's: that callback acts, then
/// opens the gate, and the export goes on. A test thus acts between the export's start (a lake
/// export's read of the table) and its commit, every time.
pub struct Gate {
    /// The session holding the lock `gate()` waits for.
    _holder: pgarrow::Client,
    pid: i32,
}

impl Gate {
    /// Makes `gate()` in database `db` and closes the gate.
    pub async fn closed(pg: &pgarrow_scratch::Cluster, db: &str) -> Gate {
        pg.psql(
            db,
            &format!(
                "CREATE OR REPLACE FUNCTION gate() RETURNS boolean LANGUAGE plpgsql VOLATILE AS \
                 $$ BEGIN PERFORM pg_advisory_xact_lock_shared({GATE_KEY}); RETURN true; END $$"
            ),
        )
        .unwrap();
        let mut holder = pgarrow::Client::connect(pg.url(db)).await.unwrap();
        holder
            .connection()
            .simple_query(&format!("SELECT pg_advisory_lock({GATE_KEY})"))
            .await
            .unwrap();
        Gate {
            pid: holder.backend_pid(),
            _holder: holder,
        }
    }

    /// What opens the gate, for a progress callback to hold.
    pub fn opener(&self) -> Opener {
        Opener { pid: self.pid }
    }
}

/// Opens a [`Gate`].
#[derive(Debug, Clone, Copy)]
pub struct Opener {
    pid: i32,
}

impl Opener {
    /// Opens the gate: ends the session that holds the lock (from a progress callback, which
    /// cannot wait for an async call; psql runs synchronously).
    pub fn open(&self, pg: &pgarrow_scratch::Cluster) {
        let ended = pg
            .psql(
                "postgres",
                &format!("SELECT pg_terminate_backend({})", self.pid),
            )
            .unwrap();
        assert_eq!(ended.trim(), "t", "the gate's session {} is gone", self.pid);
    }
}

/// The files under `dir` (recursively), as paths relative to it; directories named in `skip`
/// are left out, and the mirror's key index (`_pgarrow_index`: not the table's files).
pub fn files_under(dir: &Path, skip: &[&str]) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, skip: &[&str], out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let e = e.unwrap();
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                if !skip.contains(&name.as_str()) && name != "_pgarrow_index" {
                    walk(root, &path, skip, out);
                }
            } else {
                out.insert(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, skip, &mut out);
    out
}

/// The rows of `batches`, each as its values' text joined by `|` (NULL as nothing), as
/// psql's unaligned output prints a row; sorted.
pub fn rows_of(batches: impl IntoIterator<Item = RecordBatch>) -> Vec<String> {
    let options = FormatOptions::default().with_null("");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter<'_>> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..batch.num_rows() {
            let values: Vec<String> = formatters.iter().map(|f| f.value(r).to_string()).collect();
            rows.push(values.join("|"));
        }
    }
    rows.sort();
    rows
}

/// The rows `sql` selects in database `db`, as [`rows_of`] gives a table's; sorted.
pub fn source_rows(pg: &pgarrow_scratch::Cluster, db: &str, sql: &str) -> Vec<String> {
    let mut rows: Vec<String> = pg
        .psql(db, sql)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    rows.sort();
    rows
}

/// A source table `t (id int PRIMARY KEY, v text)` with the rows `1..=rows` in a new database
/// on `pg`; the database's name.
pub fn source_table(pg: &pgarrow_scratch::Cluster, prefix: &str, rows: u32) -> String {
    let db = pg.create_database(prefix).unwrap();
    pg.psql(
        &db,
        &format!(
            "CREATE TABLE t (id int PRIMARY KEY, v text); \
             INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, {rows}) g"
        ),
    )
    .unwrap();
    db
}

/// A source query whose rows after the 5,000th raise an error (division by zero, computed per
/// row so that the planner cannot fold it early), the 5,001st waiting at the gate first: the
/// rows before it are exported (into files, when files are small) before the query fails.
pub const FAILS_MIDWAY: &str = "SELECT g AS id, CASE WHEN g > 5000 AND gate() \
                                THEN (g / (g - g))::text ELSE 'v' || g END AS v \
                                FROM generate_series(1, 10000) g";

/// Mirrors table `t` of database `src` into `target` under `slot` (its first run: the export),
/// changes the source, and mirrors again, compaction rewriting the lake table from the
/// mirror's first commit of that run, before its next: the mirror's next commit loses its
/// race and reads the table again. Asserts that compaction committed once and that the mirror
/// committed at least twice, one retried.
pub async fn mirror_overtaken_by_compaction(
    pg: &pgarrow_scratch::Cluster,
    src: &str,
    target: &pgarrow_lake::LakeTarget,
    slot: &str,
) -> pgarrow_lake::mirror::MirrorStats {
    use pgarrow::Hooks;
    use pgarrow_lake::maintain::{CompactOptions, compact_lake};
    use pgarrow_lake::mirror::{MirrorOptions, MirrorProgress, mirror_to_lake};
    let tables = [pgarrow::names::TableName::new(Some("public"), "t")];
    // A commit per source transaction: several in one run.
    let mirror = MirrorOptions::new(slot)
        .with_catch_up(true)
        .with_commit_changes(1);
    mirror_to_lake(pg.url(src), &tables, target, &mirror, Hooks::new())
        .await
        .unwrap();
    pg.psql(
        src,
        "UPDATE t SET v = v || '+' WHERE id % 7 = 0; DELETE FROM t WHERE id % 11 = 0",
    )
    .unwrap();
    pg.psql(
        src,
        "UPDATE t SET v = v || '*' WHERE id % 5 = 0; \
         INSERT INTO t SELECT g, 'n' FROM generate_series(1000, 1020) g",
    )
    .unwrap();
    let mut compacted = None;
    let hooks = Hooks::new().on_progress(|e: &MirrorProgress| {
        if matches!(e, MirrorProgress::Committed { .. }) && compacted.is_none() {
            compacted = Some(
                std::thread::scope(|s| {
                    s.spawn(|| {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .unwrap()
                            .block_on(compact_lake(target, &CompactOptions::new(), Hooks::new()))
                    })
                    .join()
                })
                .unwrap()
                .unwrap(),
            );
        }
    });
    let stats = mirror_to_lake(pg.url(src), &tables, target, &mirror, hooks)
        .await
        .unwrap();
    let compacted = compacted.expect("the mirror committed");
    assert_eq!(compacted.commits, 1, "{compacted:?}");
    assert!(stats.commits >= 2 && stats.retried >= 1, "{stats:?}");
    stats
}

/// Exports [`FAILS_MIDWAY`] of database `db` into `target` in small batches and files, the
/// gate in its query opened once `files()` counts more files than `before` (or, should none
/// come, after a minute, and the assertion fails): the export fails after writing files.
/// Asserts that it did, and that its error is the source's, not a conflict.
pub async fn export_failing_midway(
    pg: &pgarrow_scratch::Cluster,
    db: &str,
    target: &pgarrow_lake::LakeTarget,
    before: usize,
    files: impl Fn() -> usize + Send + Sync,
) {
    use std::time::{Duration, Instant};
    let gate = Gate::closed(pg, db).await;
    let opener = gate.opener();
    let target = target
        .clone()
        .with_layout(pgarrow::io::Layout::default().with_max_file_rows(Some(500)));
    let options = pgarrow::ExportOptions::default()
        .with_decode(pgarrow::DecodeOptions::default().with_batch_rows(100));
    let mut written_before_failure = None;
    let started = Instant::now();
    let hooks = pgarrow::Hooks::new().on_progress(|_: &pgarrow::ExportStats| {
        if written_before_failure.is_some() {
            return;
        }
        let now = files().saturating_sub(before);
        if now > 0 || started.elapsed() > Duration::from_secs(60) {
            written_before_failure = Some(now);
            opener.open(pg);
        }
    });
    let e = pgarrow_lake::export_to_lake(
        pg.url(db),
        FAILS_MIDWAY,
        &options,
        &pgarrow::partition::PartitionOptions::new(1),
        &target,
        hooks,
    )
    .await
    .unwrap_err();
    drop(gate);
    assert!(
        written_before_failure.is_some_and(|n| n > 0),
        "files were written before the failure: {written_before_failure:?}"
    );
    assert!(!e.is_conflict(), "{e}");
    assert!(e.to_string().contains("division by zero"), "{e}");
}
