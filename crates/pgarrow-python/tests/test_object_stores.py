"""Object stores (issue #28), against real emulators started once per session (conftest.py):
moto's S3 server, Azurite and fake-gcs-server. Every door: the CLI (the `pgarrow` binary next
to this test build, or PGARROW_BIN), and Python; the Rust library underneath both.

Each store is checked the same way: exports (one file, --partitions into one object,
--output-dir parts, several tables) read back equal to the local export; imports from one
object, a pattern and a manifest prefix; failures mid-upload (a value error in a late row,
Ctrl-C) leave no object and no pending upload; an unusable destination fails before the
query, with exit status 2 and no secret in the message."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psycopg
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import pgarrow


def pgarrow_bin() -> str:
    path = os.environ.get("PGARROW_BIN")
    if not path:
        pytest.fail("PGARROW_BIN is not set: run the suite through `cargo test -p pgarrow-python`")
    if not Path(path).is_file():
        pytest.fail(f"{path} is not built: cargo build -p pgarrow-cli")
    return path


@dataclass
class Store:
    """One emulator seen the same way whatever the cloud."""

    name: str
    scheme: str
    options: dict[str, str]
    make_bucket: Callable[[str], None]
    keys: Callable[[str, str], list[str]]
    get: Callable[[str, str], bytes]
    # Uploads started and neither completed nor aborted, as the emulator lists them.
    pending: Callable[[str], list[Any]]

    def url(self, bucket: str, key: str = "") -> str:
        return f"{self.scheme}://{bucket}/{key}"

    def flags(self) -> list[str]:
        return [f for k, v in self.options.items() for f in ("--storage-option", f"{k}={v}")]


@pytest.fixture(scope="session")
def stores(s3, azure, gcs) -> dict[str, Store]:
    return {
        "s3": Store(
            "s3",
            "s3",
            s3.storage_options,
            s3.create_bucket,
            s3.keys,
            s3.get,
            s3.pending_uploads,
        ),
        "azure": Store(
            "azure",
            "az",
            azure.storage_options,
            azure.create_container,
            azure.keys,
            azure.get,
            azure.uncommitted_blobs,
        ),
        "gcs": Store(
            "gcs",
            "gs",
            gcs.storage_options,
            gcs.create_bucket,
            gcs.keys,
            gcs.get,
            lambda bucket: [],
        ),
    }


@pytest.fixture(params=["s3", "azure", "gcs"])
def store(request, stores) -> Store:
    return stores[request.param]


def fresh_bucket(store: Store) -> str:
    name = f"pgarrow-{uuid.uuid4().hex[:12]}"
    store.make_bucket(name)
    return name


def run(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    done = subprocess.run([pgarrow_bin(), *args], capture_output=True, text=True, env=full_env, timeout=300)
    if check and done.returncode != 0:
        pytest.fail(f"pgarrow {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done


@pytest.fixture(scope="module")
def tables(conn) -> str:
    """Two tables of a few hundred thousand rows (several MiB of Parquet, so that uploads have
    several 5 MiB parts), and their local Parquet export to compare with."""
    conn.execute("DROP SCHEMA IF EXISTS objst CASCADE")
    conn.execute("CREATE SCHEMA objst")
    conn.execute(
        "CREATE TABLE objst.orders AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS note, "
        "(g % 1000)::numeric(10,2) AS amount, DATE '2020-01-01' + (g % 2000) AS day "
        "FROM generate_series(1, 400000) g"
    )
    conn.execute("CREATE TABLE objst.small AS SELECT g AS id, g::text AS t FROM generate_series(1, 100) g")
    return "objst.orders"


def local_table(url: str, tmp_path: Path, source: str) -> pa.Table:
    path = tmp_path / f"local-{uuid.uuid4().hex[:6]}.parquet"
    pgarrow.export_file(url, source, str(path))
    return pq.read_table(path)


def same_rows(a: pa.Table, b: pa.Table) -> bool:
    return a.sort_by("id").to_pylist() == b.sort_by("id").to_pylist()


def read_object(store: Store, bucket: str, key: str) -> pa.Table:
    data = store.get(bucket, key)
    if key.endswith(".arrow"):
        return ipc.open_file(io.BytesIO(data)).read_all()
    return pq.read_table(io.BytesIO(data))


def test_exports_read_back_equal_to_the_local_export(url, tables, store, tmp_path):
    bucket = fresh_bucket(store)
    expected = local_table(url, tmp_path, tables)
    opts = ["--storage-option", "part_size=5MiB", *store.flags()]

    run("export", "--url", url, "-t", tables, "-o", store.url(bucket, "one/orders.parquet"), "--quiet", *opts)
    assert same_rows(read_object(store, bucket, "one/orders.parquet"), expected)

    run(
        "export", "--url", url, "-t", tables, "--partitions", "2",
        "-o", store.url(bucket, "merged/orders.arrow"), "--quiet", *opts,
    )
    assert same_rows(read_object(store, bucket, "merged/orders.arrow").cast(expected.schema), expected)

    run(
        "export", "--url", url, "-t", tables, "--partitions", "2",
        "--output-dir", store.url(bucket, "parts"), "--quiet", *opts,
    )
    keys = store.keys(bucket, "parts/")
    manifest = json.loads(store.get(bucket, "parts/_manifest.json"))
    listed = [f"parts/{f['path']}" for f in manifest["files"]]
    assert keys == ["parts/_manifest.json", *listed], keys
    parts = pa.concat_tables([read_object(store, bucket, k) for k in listed])
    assert same_rows(parts, expected)

    done = run(
        "export", "--url", url, "-t", "objst.orders", "-t", "objst.small",
        "--output-dir", store.url(bucket, "tables/"), "--json", "--quiet", *opts,
    )
    assert '"manifest"' in done.stdout
    assert store.keys(bucket, "tables/") == [
        "tables/_manifest.json", "tables/objst.orders.parquet", "tables/objst.small.parquet",
    ]
    assert same_rows(read_object(store, bucket, "tables/objst.orders.parquet"), expected)
    assert store.pending(bucket) == []


def test_imports_from_one_object_a_pattern_and_a_manifest_prefix(url, conn, tables, store):
    bucket = fresh_bucket(store)
    opts = store.flags()
    run(
        "export", "--url", url, "-t", tables, "--partitions", "3",
        "--output-dir", store.url(bucket, "orders"), "--quiet", *opts,
    )
    run("export", "--url", url, "-t", tables, "-o", store.url(bucket, "orders.parquet"), "--quiet", *opts)
    want = conn.execute(f"SELECT count(*), sum(id), md5(string_agg(note, '' ORDER BY id)) FROM {tables}").fetchone()
    for inputs in (
        [store.url(bucket, "orders.parquet")],
        [store.url(bucket, "orders/part-*.parquet")],
        [store.url(bucket, "orders")],
    ):
        conn.execute("DROP TABLE IF EXISTS objst.loaded")
        conn.execute(f"CREATE TABLE objst.loaded (LIKE {tables})")
        run("import", "--url", url, "--into", "objst.loaded", "--quiet", *inputs, *opts)
        got = conn.execute("SELECT count(*), sum(id), md5(string_agg(note, '' ORDER BY id)) FROM objst.loaded").fetchone()
        assert got == want, inputs
    nothing = run("import", "--url", url, "--into", "objst.loaded", store.url(bucket, "none/*.parquet"), *opts, check=False)
    assert nothing.returncode == 2 and "no object matches" in nothing.stderr, nothing.stderr


def test_python_exports_and_writes_with_storage_options(url, conn, tables, store, tmp_path):
    bucket = fresh_bucket(store)
    stats = pgarrow.export_file(url, tables, store.url(bucket, "py/orders.parquet"), storage_options=store.options)
    assert stats["rows"] == 400000
    assert same_rows(read_object(store, bucket, "py/orders.parquet"), local_table(url, tmp_path, tables))
    stats = pgarrow.export_dataset(url, tables, store.url(bucket, "py/parts"), partitions=2, storage_options=store.options)
    assert stats["manifest"] == store.url(bucket, "py/parts/_manifest.json")
    conn.execute("DROP TABLE IF EXISTS objst.pyloaded")
    conn.execute(f"CREATE TABLE objst.pyloaded (LIKE {tables})")
    stats = pgarrow.write(url, "objst.pyloaded", store.url(bucket, "py/parts"), storage_options=store.options)
    assert stats["rows"] == 400000
    with pytest.raises(pgarrow.UsageError, match="unknown storage option"):
        pgarrow.export_file(url, tables, store.url(bucket, "x.parquet"), storage_options={"no_such_key": "1"})


def test_a_value_error_late_in_the_export_leaves_no_object_and_no_pending_upload(url, tables, store):
    bucket = fresh_bucket(store)
    # 'infinity' in the last row, refused under --infinity error: by then several 5 MiB
    # parts went out.
    query = (
        f"SELECT id, note, CASE WHEN id = 400000 THEN 'infinity'::date ELSE day END AS day "
        f"FROM {tables} ORDER BY id"
    )
    done = run(
        "export", "--url", url, "-q", query, "--infinity", "error", "--compression", "none",
        "-o", store.url(bucket, "bad.parquet"), "--storage-option", "part_size=5MiB", *store.flags(),
        check=False,
    )
    assert done.returncode != 0 and "infinity" in done.stderr, done.stderr
    assert store.keys(bucket, "") == []
    assert store.pending(bucket) == []


def test_ctrl_c_mid_upload_leaves_no_object_and_no_pending_upload(url, conn, tables, store):
    bucket = fresh_bucket(store)
    marker = f"stopme_{uuid.uuid4().hex[:8]}"
    # Rows come slowly after the first megabytes, so the export is still running once its
    # first parts have gone out.
    query = (
        f"SELECT id, note, CASE WHEN id > 300000 THEN pg_sleep(0.001)::text ELSE '' END AS {marker} "
        f"FROM {tables} ORDER BY id"
    )
    args = [
        pgarrow_bin(), "export", "--url", url, "-q", query, "--compression", "none", "--quiet",
        "--row-group-rows", "20000", "-o", store.url(bucket, "stopped.parquet"),
        "--storage-option", "part_size=5MiB", *store.flags(),
    ]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120

        def slow_tail_reached() -> bool:
            # The query is in its slow tail once it waits in pg_sleep: by then 300,000 rows
            # (over 20 MiB) went to the writer, and parts were uploaded.
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND wait_event = 'PgSleep' "
                "AND pid <> pg_backend_pid()",
                (f"%{marker}%",),
            ).fetchone()
            return row[0] > 0

        while proc.poll() is None and time.monotonic() < deadline:
            if slow_tail_reached() and (store.name == "gcs" or store.pending(bucket)):
                break
            time.sleep(0.05)  # between polls of the server and the emulator
        assert proc.poll() is None, f"the export ended before it could be stopped: {proc.stderr.read()}"
        if store.name != "gcs":
            assert store.pending(bucket), "an upload was under way"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, err
    assert store.keys(bucket, "") == [], err
    assert store.pending(bucket) == [], err


def test_the_store_dying_mid_upload_fails_the_export_clearly(url, conn, tables):
    """The emulator killed while parts go out: the export stops with an error naming the
    object, promptly (no retries here), and writes nothing anywhere else. What the store kept
    of the upload cannot be cleaned by a client that cannot reach it: S3's lifecycle rule
    AbortIncompleteMultipartUpload is the way (see the README)."""
    from emulators import S3Emulator

    s3 = S3Emulator().start()
    try:
        s3.create_bucket("pgarrow-dying")
        # Over 100 MB of rows, read at full speed: parts keep going out after the kill.
        query = " UNION ALL ".join([f"SELECT id, note, note AS again FROM {tables}"] * 3)
        flags = [f for k, v in s3.storage_options.items() for f in ("--storage-option", f"{k}={v}")]
        args = [
            pgarrow_bin(), "export", "--url", url, "-q", query, "--compression", "none", "--quiet",
            "--row-group-rows", "20000", "-o", "s3://pgarrow-dying/x.parquet",
            "--storage-option", "part_size=5MiB", "--storage-option", "max_retries=0", *flags,
        ]
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and not s3.pending_uploads("pgarrow-dying"):
            time.sleep(0.01)  # between polls of the emulator
        assert proc.poll() is None and s3.pending_uploads("pgarrow-dying"), "an upload under way"
    finally:
        s3.stop()
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, None), err
    assert "s3://pgarrow-dying/x.parquet" in err, err
    assert "Traceback" not in err and "panicked" not in err, err


def test_unusable_destinations_fail_before_the_query(url, s3_auth, azure, gcs, tmp_path):
    # The query fails when it runs (division by zero): an error about the destination proves
    # the check came first.
    query = "SELECT 1 / (random() * 0)::int AS x"
    secret = s3_auth.bad_options["aws_secret_access_key"]
    cases = [
        ("s3 bad keys", f"s3://{s3_auth.bucket}/x.parquet", s3_auth.bad_options, secret),
        ("s3 no bucket", "s3://pgarrow-no-such-bucket/x.parquet", s3_auth.admin_options, None),
        ("s3 read-only", f"s3://{s3_auth.bucket}/x.parquet", s3_auth.readonly_options, s3_auth.readonly_options["aws_secret_access_key"]),
        ("azure bad key", "az://pgarrow-auth/x.parquet", azure.bad_options, azure.bad_options.get("azure_storage_account_key")),
        ("azure no container", "az://pgarrow-no-such-container/x.parquet", azure.storage_options, None),
        ("azure read-only", "az://pgarrow-auth/x.parquet", azure.readonly_options("pgarrow-auth"), None),
        ("gcs no bucket", "gs://pgarrow-no-such-bucket/x.parquet", gcs.storage_options, None),
    ]
    azure.create_container("pgarrow-auth")
    for name, target, options, hidden in cases:
        flags = [f for k, v in options.items() for f in ("--storage-option", f"{k}={v}")]
        for where in (["-o", target], ["--output-dir", target.rsplit("/", 1)[0] + "/dir"]):
            done = run("export", "--url", url, "-q", query, *where, *flags, "--storage-option", "max_retries=0", check=False)
            assert done.returncode == 2, (name, where, done.stderr)
            assert "division by zero" not in done.stderr, (name, done.stderr)
            assert target.split("/")[2] in done.stderr, (name, done.stderr)
            if hidden:
                assert hidden not in done.stderr, (name, "a secret in the message")
            sig = [o for o in options.values() if "sig=" in o]
            for sas in sig:
                assert sas.split("sig=")[1].split("&")[0] not in done.stderr, (name, "a SAS signature in the message")
    # A GCS key file that is not one: refused before the query too.
    bad = tmp_path / "not-a-key.json"
    bad.write_text("{}")
    done = run(
        "export", "--url", url, "-q", query, "-o", "gs://pgarrow-x/x.parquet",
        "--storage-option", f"google_service_account={bad}", check=False,
    )
    assert done.returncode == 2 and "division by zero" not in done.stderr, done.stderr


def test_aws_profile_from_a_credentials_file(url, s3_auth, tables, tmp_path):
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    admin = s3_auth.admin_options
    (home / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = AKIAWRONGDEFAULT0000\naws_secret_access_key = wrong\n\n"
        f"[pgarrow-test]\naws_access_key_id = {admin['aws_access_key_id']}\n"
        f"aws_secret_access_key = {admin['aws_secret_access_key']}\n"
    )
    (home / ".aws" / "config").write_text(
        f"[profile pgarrow-test]\nregion = {admin['aws_region']}\nendpoint_url = {admin['aws_endpoint']}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"HOME": str(home), "AWS_PROFILE": "pgarrow-test", "AWS_ALLOW_HTTP": "true"})
    # A bucket of its own: the harness's checks list the shared one.
    s3_auth.client().create_bucket(Bucket="pgarrow-profile")
    target = "s3://pgarrow-profile/profile/orders.parquet"
    done = subprocess.run(
        [pgarrow_bin(), "export", "--url", url, "-t", "objst.small", "-o", target, "--quiet"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert pq.read_table(io.BytesIO(s3_auth.get("pgarrow-profile", "profile/orders.parquet"))).num_rows == 100
    # The default profile's keys are refused by the emulator: the named one was used.
    env["AWS_PROFILE"] = "default"
    done = subprocess.run(
        [pgarrow_bin(), "export", "--url", url, "-t", "objst.small", "-o", target, "--quiet",
         "--storage-option", f"aws_endpoint={admin['aws_endpoint']}", "--storage-option", "max_retries=0"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 2 and "wrong" not in done.stderr, done.stderr
    env["AWS_PROFILE"] = "no-such-profile"
    done = subprocess.run(
        [pgarrow_bin(), "export", "--url", url, "-t", "objst.small", "-o", target],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 2 and "no-such-profile" in done.stderr, done.stderr


def test_changes_go_to_an_object_store_and_resume_from_its_manifest(store):
    # The changes' own cluster (wal_level = logical), started by tests/pytest.rs.
    logical = os.environ.get("PGARROW_TEST_LOGICAL_URL")
    if not logical:
        pytest.fail("PGARROW_TEST_LOGICAL_URL is not set (tests/pytest.rs sets it)")
    slot = f"objst_{store.name}"
    with psycopg.connect(logical, autocommit=True) as c:
        c.execute(f"DROP TABLE IF EXISTS oc_{store.name}")
        c.execute(f"CREATE TABLE oc_{store.name} (id int PRIMARY KEY, v text)")
        c.execute(f"DROP PUBLICATION IF EXISTS ocp_{store.name}")
        c.execute(f"CREATE PUBLICATION ocp_{store.name} FOR TABLE oc_{store.name}")
        c.execute(f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")
        for start in (1, 11, 21):
            c.execute(f"INSERT INTO oc_{store.name} SELECT g, 'v' || g FROM generate_series({start}, {start + 9}) g")
    bucket = fresh_bucket(store)
    prefix = store.url(bucket, "changes/")
    args = ["changes", "--url", logical, "--slot", slot, "--publication", f"ocp_{store.name}",
            "--catch-up", "--roll-rows", "10", "-o", prefix, *store.flags()]

    def listed() -> tuple[dict, list[int]]:
        manifest = json.loads(store.get(bucket, "changes/_changes.json"))
        assert manifest["pending"] == []
        ids = []
        for f in manifest["files"]:
            ids += read_object(store, bucket, "changes/" + f["path"]).column("id").to_pylist()
        return manifest, sorted(ids)

    run(*args)
    manifest, ids = listed()
    assert ids == list(range(1, 31))
    assert len(manifest["files"]) == 3, manifest
    assert all(f["path"].startswith(f"public.oc_{store.name}/") for f in manifest["files"])

    # Run again: it starts where the manifest in the store ends; the new change comes once.
    with psycopg.connect(logical, autocommit=True) as c:
        c.execute(f"INSERT INTO oc_{store.name} VALUES (31, 'v31')")
    run(*args)
    manifest, ids = listed()
    assert ids == list(range(1, 32)), "each change once"
    assert len(manifest["files"]) == 4, manifest
