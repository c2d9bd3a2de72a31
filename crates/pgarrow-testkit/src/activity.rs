//! Watching a cluster's backends in `pg_stat_activity`, for tests that stop queries: each poll
//! is one psql round trip (no sleeping), with a deadline that turns a hang into a failure.

use std::time::{Duration, Instant};

use crate::Cluster;

/// SQL creating `slow(g bigint) RETURNS bigint`, which sleeps `seconds` (a SQL number) and
/// returns `g`: called in a select list over `generate_series`, rows trickle out one by one (a
/// set-returning function in the select list streams; one in FROM would be materialized
/// first).
pub fn slow_function_sql(seconds: &str) -> String {
    format!(
        "CREATE FUNCTION slow(g bigint) RETURNS bigint LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep({seconds}); RETURN g; END $$;"
    )
}

/// A new database on the shared cluster holding [`slow_function_sql`]`(seconds)`, or `None`
/// when [`Cluster::shared`] has none.
///
/// # Panics
///
/// When creating the database or the function fails.
pub fn slow_database(prefix: &str, seconds: &str) -> Option<(&'static Cluster, String)> {
    let pg = Cluster::shared()?;
    let db = pg
        .create_database(prefix)
        .unwrap_or_else(|e| panic!("creating a database for {prefix}: {e}"));
    pg.psql(&db, &slow_function_sql(seconds))
        .unwrap_or_else(|e| panic!("creating slow() in {db}: {e}"));
    Some((pg, db))
}

/// Polls `cond` until it holds, failing after `limit`; returns how long it took.
///
/// # Panics
///
/// When `cond` still does not hold after `limit`: the message says what was awaited.
pub fn poll_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting until {what}"
        );
    }
    start.elapsed()
}

/// Runs `sql` (as the superuser, in database `postgres`) until it prints a backend pid, and
/// returns that pid: `sql` selects from `pg_stat_activity` the one backend awaited.
///
/// # Panics
///
/// When no pid is printed within `limit`, or psql fails.
pub fn wait_for_pid(pg: &pgarrow_scratch::Cluster, sql: &str, limit: Duration) -> i32 {
    let mut pid = None;
    poll_until(limit, &format!("a backend appears: {sql}"), || {
        pid = psql(pg, sql).parse().ok();
        pid.is_some()
    });
    pid.unwrap_or_default()
}

/// How long a cancelled backend may take to leave `pg_stat_activity`: the tests' slow queries
/// run for ten minutes or more unless a CancelRequest stops them, and a shared CI machine under
/// load can take seconds to fork the cancel's handler, signal the backend and reap it. So the
/// limit tells a cancelled query from one left running without guessing at the machine's speed.
pub const CANCEL_REACHES_BACKEND: Duration = Duration::from_secs(30);

/// Polls `pg_stat_activity` until backend `pid` is gone, failing after `limit`; returns how
/// long it took.
///
/// # Panics
///
/// When the backend is still there after `limit`, or psql fails.
pub fn backend_gone_within(pg: &pgarrow_scratch::Cluster, pid: i32, limit: Duration) -> Duration {
    let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}");
    poll_until(limit, &format!("backend {pid} is gone"), || {
        psql(pg, &sql) == "0"
    })
}

/// The trimmed output of `sql` run by the superuser in database `postgres`.
fn psql(pg: &pgarrow_scratch::Cluster, sql: &str) -> String {
    pg.psql("postgres", sql)
        .unwrap_or_else(|e| panic!("psql failed: {e}\nSQL: {sql}"))
        .trim()
        .to_owned()
}
