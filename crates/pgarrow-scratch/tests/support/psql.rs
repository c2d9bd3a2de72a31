//! psql runs for the cluster tests of `pgarrow-scratch` and `pgarrow-testkit` (which includes
//! this file by path).

#![allow(dead_code)]

use std::process::{Command, Output, Stdio};

use pgarrow_scratch::Cluster;

/// psql against a connection URL with `-w` (never prompt) and no password file, so the URL
/// alone decides.
pub fn psql_url(cluster: &Cluster, url: &str, sql: &str) -> Output {
    Command::new(cluster.psql_path())
        .args(["-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(["-d", url, "-c", sql])
        .env("PGPASSFILE", "/dev/null")
        .env_remove("PGPASSWORD")
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .expect("run psql")
}

/// The trimmed stdout of a psql run, which must have succeeded.
pub fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .trim()
        .to_owned()
}

/// The output of `sql` run by the superuser in database `postgres` (panics on failure).
pub fn superuser(cluster: &Cluster, sql: &str) -> String {
    cluster
        .psql("postgres", sql)
        .unwrap_or_else(|e| panic!("psql failed: {e}\nSQL: {sql}"))
}

/// The user and auth method of each `host` line of `pg_hba.conf`, in order, one
/// `user|method` line each (PostgreSQL 10 and later).
pub fn host_auth_methods(cluster: &Cluster) -> String {
    superuser(
        cluster,
        "SELECT user_name[1], auth_method FROM pg_hba_file_rules \
         WHERE type = 'host' ORDER BY line_number",
    )
}
