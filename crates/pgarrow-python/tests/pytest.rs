//! Runs the Python package's pytest suite (`tests/test_*.py`) with the `python3` on PATH,
//! against a database of the shared testkit cluster (`PGARROW_TEST_URL`), and one of the
//! cluster of `pgarrow_testkit::pgvector_cluster` (`PGARROW_PGVECTOR_URL`) when there is one.
//!
//! The package must be installed in that interpreter (`pip install ./crates/pgarrow-python`,
//! as `.ci/run` does): the suite tests the package as users get it. Fails when `pgarrow`,
//! pytest, psycopg or pyarrow cannot be imported, unless `PGARROW_ALLOW_SKIP=1` skips it
//! (loudly).

use std::path::Path;

use pgarrow_testkit::Cluster;

/// The `pgarrow` binary of this build (cargo builds the workspace's binaries before its
/// tests run): `target/<profile>/pgarrow`, beside `deps/` where this test runs from.
fn pgarrow_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    profile_dir.join("pgarrow")
}

/// The stand-alone ADBC driver library of this build (pgarrow-adbc's cdylib, which cargo
/// builds beside this test for the driver's own tests): `target/<profile>/deps/`.
fn adbc_library() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let deps = exe
        .parent()
        .expect("the test runs from target/<profile>/deps");
    deps.join(format!(
        "{}pgarrow_adbc{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

#[test]
fn pytest_suite() {
    let probe = pgarrow_testkit::python()
        .args(["-c", "import pgarrow, pytest, psycopg, pyarrow"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        pgarrow_testkit::missing(
            "the pgarrow Python package, pytest, psycopg or pyarrow",
            &format!(
                "{}: {probe:?}",
                pgarrow_testkit::python::how_to_get_python_parts()
            ),
        );
        return;
    }
    let Some(pg) = Cluster::shared() else {
        return;
    };
    let db = pg.create_database("pytest").expect("a database for pytest");
    // Changes need wal_level = logical and replication connections: a cluster of their own.
    // Its decoding memory is the least there is, so that every transaction past 64kB is
    // streamed before its commit: the mirror and change tests all go through that path.
    let logical = pgarrow_testkit::logical_cluster(&["logical_decoding_work_mem = '64kB'"])
        .expect("the shared cluster started");
    let logical_db = logical
        .create_database("pytest_changes")
        .expect("a database for the changes tests");
    // Without pgvector (a SKIPPED line) the fixtures of the pgvector tests skip them too.
    let pgvector_url = pgarrow_testkit::pgvector_cluster().map(|pgv| {
        let db = pgv
            .create_database("pytest_pgvector")
            .expect("a database for the pgvector tests");
        pgv.url(&db)
    });
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut pytest = pgarrow_testkit::python();
    pytest
        // Every test file runs to its end: one line of results per file, a failure does not
        // hide the failures after it (no -x), and the summary lists every failure, error and
        // skip with its reason (-rfEs).
        .args(["-m", "pytest", "-p", "no:cacheprovider", "-rfEs"])
        .arg(&tests)
        .env("PGARROW_TEST_URL", pg.url(&db))
        .env("PGARROW_TEST_LOGICAL_URL", logical.url(&logical_db))
        .env("PGARROW_BIN", pgarrow_bin())
        .env("PGARROW_ADBC_LIB", adbc_library());
    match &pgvector_url {
        Some(url) => pytest.env("PGARROW_PGVECTOR_URL", url),
        None => pytest.env_remove("PGARROW_PGVECTOR_URL"),
    };
    let status = pytest.status().expect("running pytest");
    assert!(status.success(), "pytest failed: {status}");
}
