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
/// are left out.
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
                if !skip.contains(&name.as_str()) {
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
