"""Exports committed into DuckLake tables (`pgarrow export --ducklake URL`), the catalog in a
PostgreSQL database of the test server, read back by DuckDB 1.5.5's own ducklake extension:
every type of the mapping as the server has it, create / append / replace / refuse, one
snapshot per export (however many connections), tables DuckDB wrote appended to by pgarrow
and the other way round, and exports that fail, are cancelled or killed leaving the table as
it was."""

import datetime
import json
import os
import signal
import subprocess
import uuid
from decimal import Decimal
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest


def pgarrow_bin() -> str:
    path = os.environ.get("PGARROW_BIN")
    if not path:
        pytest.fail("PGARROW_BIN is not set: run the suite through `cargo test -p pgarrow-python`")
    return path


def export(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [pgarrow_bin(), "export", "-d", url, "--quiet", "--json", *args], capture_output=True, text=True
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


@pytest.fixture
def lake(url, conn, tmp_path):
    """A new, empty catalog database and data path: (catalog URL, data path)."""
    name = f"lake_{uuid.uuid4().hex[:12]}"
    conn.execute(f"CREATE DATABASE {name}")
    u = urlparse(url)
    catalog = urlunparse(u._replace(path=f"/{name}"))
    data = tmp_path / "lake"
    yield catalog, data
    conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def catalog_rows(catalog: str, sql: str) -> list[tuple]:
    with psycopg.connect(catalog, autocommit=True) as c:
        return c.execute(sql).fetchall()


def lake_files(data) -> list[str]:
    return sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file())


TYPES = """
CREATE TABLE {name} (
    id int PRIMARY KEY, small smallint, big bigint, amount numeric(12,2), ratio float8,
    flag boolean, label text, code varchar(8), day date, stamp timestamp, stamp_tz timestamptz,
    raw bytea, uid uuid, doc jsonb, tags int[]
);
INSERT INTO {name} VALUES
 (1, -32768, 9223372036854775807, -1234567890.12, 1.5, true, 'héllo', 'ab',
  '2026-11-26', '2026-11-26 10:11:12.345678', '2026-11-26 10:11:12+02', '\\x00ff', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{{"a": [1, 2]}}', '{{1,2,NULL}}'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, 7, -1, 0.05, -0.25, false, '', 'z', '0001-01-01', '1999-12-31 23:59:59', '1970-01-01 00:00:00+00', '\\x', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12',
  '[]', '{{}}');
"""


@pytest.fixture(scope="module")
def typed(conn):
    conn.execute("DROP TABLE IF EXISTS lake_types")
    conn.execute(TYPES.format(name="lake_types"))
    return "lake_types"


def normalized(row):
    out = []
    for v in row:
        if isinstance(v, datetime.datetime) and v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc)
        if isinstance(v, memoryview):
            v = bytes(v)
        if isinstance(v, uuid.UUID):
            v = str(v)
        out.append(v)
    return tuple(out)


def test_every_type_reads_back_in_duckdb_as_the_server_has_it(url, conn, lake, typed, duckdb_lake):
    catalog, data = lake
    report = json.loads(export(url, "-t", typed, "--ducklake", catalog, "--data-path", str(data)).stdout)
    assert report["format"] == "ducklake" and report["created"] and report["rows"] == 3
    assert 0 <= report["commit_s"] < report["total_s"] + 60
    # --stats: where the export's time went, then the commit's.
    out = subprocess.run(
        [pgarrow_bin(), "export", "-d", url, "-t", typed, "--ducklake", catalog, "--lake-table", "stats_only",
         "--stats"], capture_output=True, text=True,
    )
    assert out.returncode == 0 and "decode" in out.stderr and "commit " in out.stderr, out.stderr
    cols = "id, small, big, amount, ratio, flag, label, code, day, stamp, stamp_tz, raw, uid::varchar, doc::varchar, tags"
    got = duckdb_lake(catalog, f"SELECT {cols} FROM lake.main.{typed} ORDER BY id")
    want = conn.execute(
        f"SELECT id, small, big, amount, ratio, flag, label, code, day, stamp, stamp_tz, raw, uid::text, doc::text, tags "
        f"FROM {typed} ORDER BY id"
    ).fetchall()
    got = [normalized(r) for r in got]
    want = [normalized(r) for r in want]
    for g, w in zip(got, want, strict=True):
        # JSON as documents (DuckDB and PostgreSQL space them differently).
        assert g[:13] == w[:13], (g, w)
        assert (g[13] is None and w[13] is None) or json.loads(g[13]) == json.loads(w[13])
        assert g[14] == w[14]
    # DuckDB's own names for the types.
    kinds = dict(duckdb_lake(catalog, f"SELECT column_name, column_type FROM (DESCRIBE lake.main.{typed})"))
    assert kinds["amount"] == "DECIMAL(12,2)" and kinds["stamp_tz"] == "TIMESTAMP WITH TIME ZONE"
    assert kinds["uid"] == "UUID" and kinds["doc"] == "JSON" and kinds["tags"] == "INTEGER[]"
    # Bounds in the catalog, in DuckDB's rendering; the year-1 date is a bound too.
    stats = dict(
        (r[0], (r[1], r[2]))
        for r in catalog_rows(
            catalog,
            "SELECT c.column_name, s.min_value, s.max_value FROM ducklake_file_column_stats s "
            "JOIN ducklake_column c USING (table_id, column_id)",
        )
    )
    assert stats["day"] == ("0001-01-01", "2026-11-26")
    assert stats["stamp_tz"] == ("1970-01-01 00:00:00+00", "2026-11-26 08:11:12+00")
    assert stats["amount"] == ("-1234567890.12", "0.05")
    # DuckDB prunes by them: no file holds a day after 2027.
    assert duckdb_lake(catalog, f"SELECT count(*) FROM lake.main.{typed} WHERE day > DATE '2027-01-01'") == [(0,)]


def test_create_refuse_append_replace_each_one_snapshot(url, conn, lake, typed, duckdb_lake):
    catalog, data = lake
    export(url, "-t", typed, "--ducklake", catalog, "--data-path", str(data), "--lake-table", "sales.t")
    # Exists: refused by default, nothing changes.
    out = export(url, "-t", typed, "--ducklake", catalog, "--lake-table", "sales.t", check=False)
    assert out.returncode != 0 and "sales.t exists" in out.stderr and "--if-exists append" in out.stderr
    # Appended over 3 connections: one snapshot, every part's file in it.
    report = json.loads(
        export(
            url, "-t", typed, "--ducklake", catalog, "--lake-table", "sales.t", "--if-exists", "append",
            "--partitions", "3", "--partition-by", "id",
        ).stdout
    )
    assert report["files"] == 3 and not report["created"]
    assert duckdb_lake(catalog, "SELECT count(*), count(DISTINCT id) FROM lake.sales.t") == [(6, 3)]
    # Replaced by a query's rows: one more snapshot; the old rows still there by time travel.
    export(
        url, "-q", f"SELECT * FROM {typed} WHERE id = 3", "--ducklake", catalog, "--lake-table", "sales.t",
        "--if-exists", "replace",
    )
    assert duckdb_lake(catalog, "SELECT id FROM lake.sales.t") == [(3,)]
    assert duckdb_lake(catalog, "SELECT count(*) FROM lake.sales.t AT (VERSION => 2)") == [(6,)]
    assert duckdb_lake(catalog, "SELECT count(*) FROM lake.sales.t AT (VERSION => 1)") == [(3,)]
    # One snapshot each: the schema, the table and its rows at once; then the append; then
    # the replace.
    changes = duckdb_lake(catalog, "SELECT snapshot_id, changes FROM ducklake_snapshots('lake') ORDER BY 1")
    assert [c[0] for c in changes] == [0, 1, 2, 3]
    assert changes[1][1]["schemas_created"] == ["sales"]
    assert changes[1][1]["tables_created"] == ["sales.t"]
    (table_id,) = catalog_rows(catalog, "SELECT table_id FROM ducklake_table WHERE table_name = 't'")[0]
    assert changes[3][1] == {"tables_deleted_from": [str(table_id)], "tables_inserted_into": [str(table_id)]}
    # The snapshot names the PostgreSQL snapshot it reflects.
    extra = catalog_rows(catalog, "SELECT commit_extra_info FROM ducklake_snapshot_changes WHERE snapshot_id = 3")
    info = json.loads(extra[0][0])
    assert info["source"] and info["snapshot"] and info["rows"] == 1


def test_appends_go_on_past_the_tenth_snapshot(url, conn, lake, typed, duckdb_lake):
    # Snapshot IDs compared as numbers, not as text ("9" > "10"): the twelfth export lands
    # as snapshot 12, and an incremental run reads the newest state, not the tenth's.
    catalog, data = lake
    export(url, "-t", typed, "--ducklake", catalog, "--data-path", str(data), "--lake-table", "many")
    for _ in range(11):
        export(url, "-t", typed, "--ducklake", catalog, "--lake-table", "many", "--if-exists", "append")
    assert duckdb_lake(catalog, "SELECT count(*) FROM lake.main.many") == [(36,)]
    assert catalog_rows(catalog, "SELECT max(snapshot_id) FROM ducklake_snapshot") == [(12,)]


def test_tables_of_duckdb_and_of_pgarrow_append_to_each_other(url, conn, lake, duckdb_lake):
    catalog, data = lake
    # DuckDB makes the catalog and a table, with one row inlined into the catalog and a file.
    duckdb_lake(
        catalog,
        "CREATE TABLE lake.main.people (id INTEGER, name VARCHAR); "
        "INSERT INTO lake.main.people VALUES (1, 'duck'); "
        "INSERT INTO lake.main.people SELECT i, 'bulk' || i FROM range(100, 400) r(i); "
        "SELECT count(*) FROM lake.main.people",
        data_path=data,
    )
    export(
        url, "-q", "SELECT i AS id, 'pg' || i AS name FROM generate_series(2, 5) i", "--ducklake", catalog,
        "--lake-table", "people", "--if-exists", "append",
    )
    # DuckDB appends to it again, then reads all three writes.
    rows = duckdb_lake(
        catalog,
        "INSERT INTO lake.main.people VALUES (6, 'duck again'); "
        "SELECT count(*), min(id), max(id), count(*) FILTER (name LIKE 'pg%') FROM lake.main.people",
    )
    assert rows == [(306, 1, 399, 4)]
    # pgarrow's own table, appended to by DuckDB.
    export(url, "-q", "SELECT 1::int AS n", "--ducklake", catalog, "--lake-table", "mine")
    assert duckdb_lake(catalog, "INSERT INTO lake.main.mine VALUES (2); SELECT sum(n) FROM lake.main.mine") == [(3,)]
    # Replace ends DuckDB's inlined rows and files too.
    export(url, "-q", "SELECT 9 AS id, 'only' AS name", "--ducklake", catalog, "--lake-table", "people", "--if-exists", "replace")
    assert duckdb_lake(catalog, "SELECT * FROM lake.main.people") == [(9, "only")]
    # A type DuckLake does not widen to is refused by column, nothing committed.
    before = catalog_rows(catalog, "SELECT max(snapshot_id) FROM ducklake_snapshot")
    out = export(
        url, "-q", "SELECT 'x'::text AS id, 'x' AS name", "--ducklake", catalog, "--lake-table", "people",
        "--if-exists", "append", check=False,
    )
    assert out.returncode != 0 and '"id"' in out.stderr and "varchar" in out.stderr, out.stderr
    assert catalog_rows(catalog, "SELECT max(snapshot_id) FROM ducklake_snapshot") == before


def test_failed_and_cancelled_exports_commit_nothing_and_leave_no_file(url, conn, lake, typed, duckdb_lake):
    catalog, data = lake
    export(url, "-t", typed, "--ducklake", catalog, "--data-path", str(data), "--lake-table", "t")
    files = lake_files(data)
    snapshots = catalog_rows(catalog, "SELECT count(*) FROM ducklake_snapshot")
    # A value error at row 500 of the server's query.
    out = export(
        url, "-q", "SELECT i AS id, 1 / (i - 500) AS v FROM generate_series(1, 1000) i", "--ducklake", catalog,
        "--lake-table", "t", "--if-exists", "append", check=False,
    )
    assert out.returncode != 0 and "division by zero" in out.stderr
    # Ctrl-C in the middle of a long export.
    marker = f"lake_cancel_{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [pgarrow_bin(), "export", "-d", url, "--quiet", "-q",
         f"SELECT i AS id, pg_sleep(0.01) AS {marker} FROM generate_series(1, 100000) i",
         "--ducklake", catalog, "--lake-table", "slow"],
        stderr=subprocess.PIPE, text=True,
    )
    wait_for_backend(conn, marker)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, err
    assert catalog_rows(catalog, "SELECT count(*) FROM ducklake_snapshot") == snapshots
    assert lake_files(data) == files
    # kill -9: nothing committed (its files, never named by a snapshot, may stay behind).
    proc = subprocess.Popen(
        [pgarrow_bin(), "export", "-d", url, "--quiet", "-q",
         f"SELECT i AS id, pg_sleep(0.01) AS {marker}_k FROM generate_series(1, 100000) i",
         "--ducklake", catalog, "--lake-table", "t", "--if-exists", "append"],
        stderr=subprocess.PIPE, text=True,
    )
    wait_for_backend(conn, f"{marker}_k")
    proc.kill()
    proc.communicate(timeout=60)
    assert catalog_rows(catalog, "SELECT count(*) FROM ducklake_snapshot") == snapshots
    assert duckdb_lake(catalog, "SELECT count(*) FROM lake.main.t") == [(3,)]


def wait_for_backend(conn, marker: str) -> None:
    """Until a backend runs the query naming `marker` (polling the server, not sleeping)."""
    for _ in range(10000):
        found = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
            (f"%{marker}%",),
        ).fetchone()[0]
        if found:
            return
        conn.execute("SELECT pg_sleep(0.01)")
    pytest.fail(f"no backend ran the query {marker}")


def test_incremental_runs_append_with_their_state_in_the_same_snapshot(url, conn, lake, duckdb_lake):
    """`--incremental-by COLUMN` into a DuckLake table: each run appends what changed since the
    run whose state the table's last such snapshot carries (no state file); DuckDB's own
    appends in between do not hide it; a restart replaces the rows; the state is checked
    again in the commit's transaction."""
    catalog, data = lake
    conn.execute("DROP TABLE IF EXISTS ducklake_inc")
    conn.execute("CREATE TABLE ducklake_inc (id bigint PRIMARY KEY, v text)")
    conn.execute("INSERT INTO ducklake_inc SELECT i, 'a' FROM generate_series(1, 100) i")

    def run(*extra, check=True):
        return export(url, "-t", "ducklake_inc", "--incremental-by", "id", "--ducklake", catalog,
                      "--data-path", str(data), *extra, check=check)

    first = json.loads(run().stdout)
    assert first["created"] and first["first_run"] and first["rows"] == 100 and first["incremental"]["run"] == 1
    conn.execute("INSERT INTO ducklake_inc SELECT i, 'b' FROM generate_series(101, 120) i")
    second = json.loads(run("--partitions", "2").stdout)
    assert second["rows"] == 20 and not second["first_run"] and second["incremental"]["run"] == 2
    extra = catalog_rows(catalog, "SELECT commit_extra_info FROM ducklake_snapshot_changes "
                                  f"WHERE snapshot_id = {second['snapshot']}")[0][0]
    assert json.loads(extra)["incremental"]["high_water"] == "120"
    # DuckDB appends a snapshot; the next run still finds the state beneath it.
    duckdb_lake(catalog, "INSERT INTO lake.main.ducklake_inc VALUES (-1, 'x')")
    third = json.loads(run().stdout)
    assert third["rows"] == 0 and third["incremental"]["run"] == 3
    assert duckdb_lake(catalog, "SELECT count(*), min(id), max(id) FROM lake.main.ducklake_inc") == [(121, -1, 120)]
    fourth = json.loads(run("--restart").stdout)
    assert fourth["first_run"] and fourth["rows"] == 120
    assert duckdb_lake(catalog, "SELECT count(*) FROM lake.main.ducklake_inc") == [(120,)]
    # A table without a run's state is not taken over silently; a state file is not the table's.
    export(url, "-t", "ducklake_inc", "--ducklake", catalog, "--lake-table", "plain")
    out = export(url, "-t", "ducklake_inc", "--incremental-by", "id", "--ducklake", catalog,
                 "--lake-table", "plain", check=False)
    assert out.returncode != 0 and "incremental run" in out.stderr
    out = run("--state", str(data / "s.json"), check=False)
    assert out.returncode != 0 and "--state" in out.stderr
    # From Python too.
    import pgarrow

    stats = pgarrow.export_ducklake(url, table="ducklake_inc", ducklake=catalog, lake_table="py", by="id")
    assert stats["first_run"] and stats["incremental"]["run"] == 1 and stats["rows"] == 120


def test_concurrent_appends_both_land(url, conn, lake, typed, duckdb_lake):
    catalog, data = lake
    # Writers making the catalog and one table at once: one catalog, one table, every row.
    procs = [
        subprocess.Popen(
            [pgarrow_bin(), "export", "-d", url, "--quiet", "--json", "-t", typed, "--ducklake", catalog,
             "--data-path", str(data), "--lake-table", "first", "--if-exists", "append"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert duckdb_lake(catalog, "SELECT count(*) FROM lake.main.first") == [(9,)]
    assert catalog_rows(catalog, "SELECT count(*) FROM ducklake_table") == [(1,)]
    export(url, "-t", typed, "--ducklake", catalog, "--data-path", str(data), "--lake-table", "t")
    procs = [
        subprocess.Popen(
            [pgarrow_bin(), "export", "-d", url, "--quiet", "--json", "-t", typed, "--ducklake", catalog,
             "--lake-table", "t", "--if-exists", "append", "--partitions", "2", "--partition-by", "id"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(4)
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    assert sorted(r["snapshot"] for r in reports) == [5, 6, 7, 8]
    assert duckdb_lake(catalog, "SELECT count(*), count(DISTINCT id) FROM lake.main.t") == [(15, 3)]
    # Row IDs never overlap: each file's range begins where the one before ended.
    starts = catalog_rows(
        catalog,
        "SELECT row_id_start, record_count FROM ducklake_data_file JOIN ducklake_table USING (table_id) "
        "WHERE table_name = 't' ORDER BY row_id_start",
    )
    for (a, n), (b, _) in zip(starts, starts[1:]):
        assert a + n == b, starts


def test_python_export_into_a_lake_on_an_object_store(url, conn, lake, typed, s3, duckdb_lake):
    import typing

    import pgarrow
    from pgarrow import _typing

    catalog, _ = lake
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(bucket)
    stats = pgarrow.export_ducklake(
        url, table=typed, ducklake=catalog, data_path=f"s3://{bucket}/lake/", lake_table="py.t",
        storage_options=s3.storage_options, partitions=2, partition_by="id", max_file_rows=1,
    )
    optional = set(typing.get_type_hints(_typing.LakeRun)) | set(typing.get_type_hints(_typing.TogetherCommit))
    assert set(typing.get_type_hints(_typing.DuckLakeStats)) - optional <= set(stats)
    assert stats["created"] and stats["table"] == "py.t" and stats["rows"] == 3 and stats["files"] == 3
    keys = sorted(o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"])
    assert len(keys) == 3 and all(k.startswith("lake/py/t/ducklake-") for k in keys), keys
    assert duckdb_lake(catalog, "SELECT count(*), sum(id) FROM lake.py.t", s3=s3) == [(3, 6)]
    # Appended from Python; refused when it exists and nothing says what to do.
    pgarrow.export_ducklake(
        url, f"SELECT * FROM {typed} WHERE id = 1", ducklake=catalog, lake_table="py.t", if_exists="append",
        storage_options=s3.storage_options,
    )
    assert duckdb_lake(catalog, "SELECT count(*) FROM lake.py.t", s3=s3) == [(4,)]
    with pytest.raises(pgarrow.UsageError, match="py.t exists"):
        pgarrow.export_ducklake(url, table=typed, ducklake=catalog, lake_table="py.t")
    with pytest.raises(pgarrow.UsageError, match="lake_table"):
        pgarrow.export_ducklake(url, "SELECT 1 AS x", ducklake=catalog)
    with pytest.raises(pgarrow.UsageError, match="bucket.*year, month, day"):
        pgarrow.export_ducklake(url, table=typed, ducklake=catalog, lake_table="py.u", files_by="bucket(4, id)")


def test_partitioned_tables_written_read_and_appended_by_both(url, conn, lake, duckdb_lake):
    catalog, data = lake
    conn.execute("DROP TABLE IF EXISTS lake_events")
    conn.execute(
        "CREATE TABLE lake_events AS SELECT i AS id, (ARRAY['a', 'b/c', NULL])[i % 3 + 1] AS k, "
        "DATE '2026-01-30' + i % 5 AS d FROM generate_series(1, 60) i"
    )
    out = export(
        url, "-t", "lake_events", "--ducklake", catalog, "--data-path", str(data),
        "--files-by", "k", "--files-by", "day(d)",
    )
    assert json.loads(out.stdout)["files"] == 15
    spec = catalog_rows(
        catalog, "SELECT partition_key_index, column_id, transform FROM ducklake_partition_column ORDER BY 1"
    )
    assert spec == [(0, 2, "identity"), (1, 3, "year"), (2, 3, "month"), (3, 3, "day")]
    # DuckDB reads the rows (the partition column is in the files) and the calendar parts.
    assert duckdb_lake(catalog, "SELECT count(*), count(k), count(DISTINCT d) FROM lake.main.lake_events") == [(60, 40, 5)]
    values = catalog_rows(
        catalog,
        "SELECT array_agg(partition_value ORDER BY partition_key_index) FROM ducklake_file_partition_value "
        "GROUP BY data_file_id ORDER BY 1",
    )
    assert ["b/c", "2026", "2", "3"] in [v[0] for v in values]
    assert [None, "2026", "1", "30"] in [v[0] for v in values]
    assert duckdb_lake(
        catalog, "SELECT count(*) FROM lake.main.lake_events WHERE k = 'b/c' AND d = DATE '2026-02-01'"
    ) == conn.execute("SELECT count(*) FROM lake_events WHERE k = 'b/c' AND d = DATE '2026-02-01'").fetchall()
    # DuckDB appends into it, partitioned by the table's keys; pgarrow appends without
    # --files-by, and its files take the table's keys too.
    duckdb_lake(catalog, "INSERT INTO lake.main.lake_events VALUES (100, 'a', DATE '2026-03-01')")
    export(url, "-t", "lake_events", "--ducklake", catalog, "--if-exists", "append")
    assert duckdb_lake(catalog, "SELECT count(*) FROM lake.main.lake_events") == [(121,)]
    unpartitioned = catalog_rows(catalog, "SELECT count(*) FROM ducklake_data_file WHERE partition_id IS NULL")
    assert unpartitioned == [(0,)]
    # A table DuckDB partitioned by year and month of a date: pgarrow's month(d).
    duckdb_lake(
        catalog,
        "CREATE TABLE lake.main.monthly (id INTEGER, k VARCHAR, d DATE); "
        "ALTER TABLE lake.main.monthly SET PARTITIONED BY (year(d), month(d)); SELECT 1",
    )
    export(url, "-t", "lake_events", "--ducklake", catalog, "--lake-table", "monthly", "--if-exists", "append")
    rows = duckdb_lake(catalog, "SELECT count(*), count(DISTINCT month(d)) FROM lake.main.monthly")
    assert rows == [(60, 2)]
    months = catalog_rows(
        catalog,
        "SELECT DISTINCT v.partition_value FROM ducklake_file_partition_value v JOIN ducklake_table t "
        "USING (table_id) WHERE t.table_name = 'monthly' AND v.partition_key_index = 1 ORDER BY 1",
    )
    assert months == [("1",), ("2",)]


def pg_import(url: str, catalog: str, name: str, into: str, *more: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [pgarrow_bin(), "import", "-d", url, "--quiet", "--ducklake", catalog, "--lake-table", name,
         "--into", into, "--create", *more],
        capture_output=True, text=True,
    )


def test_pgarrow_tables_import_back_into_postgresql_exactly(url, conn, lake, typed):
    catalog, data = lake
    # Every type, over two connections, partitioned, then replaced once: the current rows only.
    export(url, "-t", typed, "--ducklake", catalog, "--data-path", str(data), "--lake-table", "back",
           "--partitions", "2", "--files-by", "flag")
    export(url, "-t", typed, "--ducklake", catalog, "--lake-table", "back", "--if-exists", "replace")
    export(url, "-q", f"SELECT * FROM {typed} WHERE id = 1", "--ducklake", catalog, "--lake-table", "back",
           "--if-exists", "append")
    conn.execute("DROP TABLE IF EXISTS ducklake_back")
    out = pg_import(url, catalog, "main.back", "ducklake_back")
    assert out.returncode == 0, out.stderr
    cols = "id, small, big, amount, ratio, flag, label, code, day, stamp, stamp_tz, raw, uid, doc, tags"
    want = conn.execute(
        f"SELECT {cols} FROM {typed} UNION ALL SELECT {cols} FROM {typed} WHERE id = 1 ORDER BY id"
    ).fetchall()
    assert conn.execute(f"SELECT {cols} FROM ducklake_back ORDER BY id").fetchall() == want
    # The PostgreSQL types pgarrow's files name come back with --create.
    kinds = dict(conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'ducklake_back'::regclass AND attnum > 0"
    ).fetchall())
    assert kinds["amount"] == "numeric(12,2)" and kinds["doc"] == "jsonb" and kinds["uid"] == "uuid"
    assert kinds["tags"] == "integer[]" and kinds["stamp_tz"] == "timestamp with time zone"
    # A table the catalog does not have, and a catalog database without a catalog: named.
    out = pg_import(url, catalog, "main.none", "x")
    assert out.returncode != 0 and "main.none" in out.stderr and "no such table" in out.stderr, out.stderr
    out = pg_import(url, url, "main.back", "x")
    assert out.returncode != 0 and "no DuckLake catalog" in out.stderr and "--data-path" not in out.stderr, out.stderr


def test_duckdb_tables_import_back_with_inlined_rows_deletes_and_evolved_columns(url, conn, lake, duckdb_lake):
    import pgarrow

    catalog, data = lake
    # DuckDB writes a table the way its users do: small inserts inlined into the catalog, a
    # bulk insert into a file, a column added, a column widened, rows deleted from the file and
    # from the inlined rows (kept in the catalog), and a partitioned table with a delete file.
    duckdb_lake(
        catalog,
        "CREATE TABLE lake.main.t (a INTEGER, b VARCHAR, d DATE); "
        "INSERT INTO lake.main.t VALUES (1, 'one', DATE '2020-01-01'), (2, 'two', NULL); "
        "INSERT INTO lake.main.t SELECT i, 'bulk' || i, DATE '2021-01-01' + i::INTEGER FROM range(10, 200) r(i); "
        "ALTER TABLE lake.main.t ADD COLUMN c DOUBLE; "
        "INSERT INTO lake.main.t VALUES (3, 'three', NULL, 1.5); "
        "ALTER TABLE lake.main.t ALTER a TYPE BIGINT; "
        "INSERT INTO lake.main.t VALUES (5000000000, 'big', DATE '2024-02-29', 2.5); "
        "ALTER TABLE lake.main.t RENAME b TO label; "
        "DELETE FROM lake.main.t WHERE a IN (2, 50, 51); "
        "CREATE TABLE lake.main.p (k VARCHAR, v INTEGER); "
        "ALTER TABLE lake.main.p SET PARTITIONED BY (k); "
        "INSERT INTO lake.main.p SELECT 'k' || (i % 3), i FROM range(3000) r(i); "
        "DELETE FROM lake.main.p WHERE v % 7 = 0; "
        "SELECT 1",
        data_path=data,
    )
    layout = catalog_rows(
        catalog,
        "SELECT (SELECT count(*) FROM ducklake_inlined_data_tables), (SELECT count(*) FROM ducklake_data_file), "
        "(SELECT count(*) FROM pg_class WHERE relname LIKE 'ducklake_inlined_delete_%')",
    )[0]
    assert layout[0] >= 2 and layout[1] >= 2 and layout[2] >= 1, layout  # each kind of storage is there
    want_t = duckdb_lake(catalog, "SELECT a, label, d, c FROM lake.main.t ORDER BY a")
    want_p = duckdb_lake(catalog, "SELECT k, v FROM lake.main.p ORDER BY v")
    conn.execute("DROP TABLE IF EXISTS ducklake_duck, ducklake_duck_p")
    out = pg_import(url, catalog, "t", "ducklake_duck")
    assert out.returncode == 0, out.stderr
    assert conn.execute("SELECT a, label, d, c FROM ducklake_duck ORDER BY a").fetchall() == want_t
    kinds = dict(conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'ducklake_duck'::regclass AND attnum > 0"
    ).fetchall())
    assert kinds == {"a": "bigint", "label": "text", "d": "date", "c": "double precision"}, kinds
    # From Python, the partitioned table: its deleted rows stay deleted.
    stats = pgarrow.write(url, "ducklake_duck_p", ducklake=catalog, lake_table="main.p", create=True)
    assert stats["rows"] == len(want_p) == 3000 - 429
    assert conn.execute("SELECT k, v FROM ducklake_duck_p ORDER BY v").fetchall() == want_p
    with pytest.raises(pgarrow.UsageError, match="lake_table"):
        pgarrow.write(url, "x", ducklake=catalog)
    # Inlined rows of a nested column are text DuckDB renders its own way: refused by column,
    # and read once DuckDB has flushed them to a file.
    duckdb_lake(catalog, "CREATE TABLE lake.main.n (id INTEGER, l INTEGER[]); INSERT INTO lake.main.n VALUES (1, [1, NULL]); SELECT 1")
    out = pg_import(url, catalog, "n", "ducklake_duck_n")
    assert out.returncode != 0 and '"l" (list)' in out.stderr and "ducklake_flush_inlined_data" in out.stderr, out.stderr
    duckdb_lake(catalog, "CALL ducklake_flush_inlined_data('lake'); SELECT 1")
    conn.execute("DROP TABLE IF EXISTS ducklake_duck_n")
    out = pg_import(url, catalog, "n", "ducklake_duck_n")
    assert out.returncode == 0, out.stderr
    assert conn.execute("SELECT id, l FROM ducklake_duck_n").fetchall() == [(1, [1, None])]
    # And the flushed table t reads the same from its files alone.
    conn.execute("DROP TABLE ducklake_duck")
    assert pg_import(url, catalog, "t", "ducklake_duck").returncode == 0
    assert conn.execute("SELECT a, label, d, c FROM ducklake_duck ORDER BY a").fetchall() == want_t


def test_schema_evolution_on_append_and_replace(url, conn, lake, duckdb_lake):
    catalog, data = lake

    def put(sql, *more, check=True):
        return export(url, "-q", sql, "--ducklake", catalog, "--lake-table", "evo", *more, check=check)

    put("SELECT 1::int AS id, 'a'::text AS name, ARRAY[1, 2]::int[] AS tags", "--data-path", str(data))
    # A column added and one widened (int32 to int64) in the append's own snapshot.
    put("SELECT 2::bigint AS id, 'b'::text AS name, ARRAY[3]::int[] AS tags, 1.5::float8 AS score",
        "--if-exists", "append")
    # A narrower type and columns left out: taken as they are (NULL in the left-out columns).
    put("SELECT 3::int AS id", "--if-exists", "append")
    rows = duckdb_lake(catalog, "SELECT id, name, tags, score FROM lake.main.evo ORDER BY id")
    assert rows == [(1, "a", [1, 2], None), (2, "b", [3], 1.5), (3, None, None, None)]
    kinds = dict(duckdb_lake(catalog, "SELECT column_name, column_type FROM (DESCRIBE lake.main.evo)"))
    assert kinds == {"id": "BIGINT", "name": "VARCHAR", "tags": "INTEGER[]", "score": "DOUBLE"}, kinds
    # Each change is a schema version; the widened column keeps its ID, its old type ended.
    ids = catalog_rows(
        catalog,
        "SELECT column_name, column_type, c.end_snapshot IS NULL FROM ducklake_column c "
        "JOIN ducklake_table t USING (table_id) WHERE t.table_name = 'evo' AND column_id = 1 ORDER BY c.begin_snapshot",
    )
    assert ids == [("id", "int32", False), ("id", "int64", True)]
    # The table's statistics know its earlier rows are NULL in the new column: DuckDB finds them.
    assert duckdb_lake(catalog, "SELECT count(*) FROM lake.main.evo WHERE score IS NULL") == [(2,)]
    # DuckDB adds a column (its next ID) and appends; pgarrow appends with it, by name.
    duckdb_lake(catalog, "ALTER TABLE lake.main.evo ADD COLUMN extra VARCHAR; "
                         "INSERT INTO lake.main.evo VALUES (4, 'd', [4], 2.5, 'duck'); SELECT 1")
    put("SELECT 5::bigint AS id, 'pg'::text AS extra", "--if-exists", "append")
    assert duckdb_lake(catalog, "SELECT id, extra FROM lake.main.evo WHERE id >= 4 ORDER BY id") == [
        (4, "duck"), (5, "pg")
    ]
    # A change DuckLake cannot make: refused by column, nothing committed.
    before = catalog_rows(catalog, "SELECT (SELECT max(snapshot_id) FROM ducklake_snapshot), (SELECT count(*) FROM ducklake_column)")
    out = put("SELECT 'x'::text AS id", "--if-exists", "append", check=False)
    assert out.returncode != 0 and '"id"' in out.stderr and "int64" in out.stderr, out.stderr
    out = put("SELECT 1.5::float8 AS score, 1::numeric(5,1) AS name", "--if-exists", "append", check=False)
    assert out.returncode != 0 and '"name"' in out.stderr, out.stderr
    assert catalog_rows(catalog, "SELECT (SELECT max(snapshot_id) FROM ducklake_snapshot), (SELECT count(*) FROM ducklake_column)") == before
    # Read back into PostgreSQL as DuckDB reads it (DuckDB's inlined row of a list written to a
    # file first: pgarrow reads inlined rows of scalar columns only).
    want = duckdb_lake(catalog, "CALL ducklake_flush_inlined_data('lake'); "
                                "SELECT id, name, tags, score, extra FROM lake.main.evo ORDER BY id")
    conn.execute("DROP TABLE IF EXISTS ducklake_evo")
    out = pg_import(url, catalog, "evo", "ducklake_evo")
    assert out.returncode == 0, out.stderr
    assert conn.execute("SELECT id, name, tags, score, extra FROM ducklake_evo ORDER BY id").fetchall() == want
    # A replace takes the export's columns.
    put("SELECT 'z'::text AS id, 7::smallint AS n", "--if-exists", "replace")
    assert duckdb_lake(catalog, "SELECT * FROM lake.main.evo") == [("z", 7)]
    # A column the table holds no NULL in: an append that lacks it is refused.
    duckdb_lake(catalog, "CREATE TABLE lake.main.nn (a INTEGER NOT NULL, b INTEGER); SELECT 1")
    out = export(url, "-q", "SELECT 1 AS b", "--ducklake", catalog, "--lake-table", "nn", "--if-exists", "append",
                 check=False)
    assert out.returncode != 0 and '"a"' in out.stderr and "no NULL" in out.stderr, out.stderr


def test_an_export_with_its_own_partitions_repartitions_the_table(url, conn, lake, duckdb_lake):
    catalog, data = lake
    src = "SELECT i AS id, 'k' || (i % 2) AS k, DATE '2024-01-01' + i AS d FROM generate_series(1, 40) i"

    def put(*more):
        return export(url, "-q", src, "--ducklake", catalog, "--lake-table", "rp", *more)

    put("--data-path", str(data), "--files-by", "k")
    before = duckdb_lake(catalog, "SELECT max(snapshot_id) FROM ducklake_snapshots('lake')")
    # The append's own partitions become the table's, in its commit (as DuckDB's SET
    # PARTITIONED BY); an append without --files-by then writes as the table is partitioned now.
    put("--if-exists", "append", "--files-by", "month(d)")
    put("--if-exists", "append")
    specs = catalog_rows(
        catalog,
        "SELECT i.partition_id, i.end_snapshot IS NULL, c.transform, "
        "(SELECT count(*) FROM ducklake_data_file f WHERE f.partition_id = i.partition_id) "
        "FROM ducklake_partition_info i JOIN ducklake_partition_column c USING (partition_id, table_id) ORDER BY 1",
    )
    # (DuckLake's month of a date is its year and month, as DuckDB keys it.)
    assert [(live, transform) for _, live, transform, _ in specs] == [
        (False, "identity"), (True, "year"), (True, "month")], specs
    assert specs[0][3] == 2 and specs[1][3] >= 4, specs  # k=k0, k=k1; then months
    # DuckDB reads every file under either partitioning, and prunes by the new one.
    assert duckdb_lake(catalog, "SELECT count(*), count(DISTINCT id) FROM lake.main.rp") == [(120, 40)]
    assert duckdb_lake(catalog, "SELECT count(*) FROM lake.main.rp WHERE d < DATE '2024-02-01'") == [(90,)]
    # Time travel to before the change sees the old rows only.
    assert duckdb_lake(catalog, f"SELECT count(*) FROM lake.main.rp AT (VERSION => {before[0][0]})") == [(40,)]
    # DuckDB appends under the new partitioning too.
    duckdb_lake(catalog, "INSERT INTO lake.main.rp SELECT 99, 'k9', DATE '2030-05-05' FROM range(20); SELECT 1")
    newest = catalog_rows(catalog, "SELECT partition_id FROM ducklake_data_file ORDER BY data_file_id DESC LIMIT 1")
    assert newest == [(specs[1][0],)] or catalog_rows(
        catalog, "SELECT count(*) FROM ducklake_inlined_data_tables") != [(0,)]
    # And back into PostgreSQL as DuckDB reads it.
    want = duckdb_lake(catalog, "SELECT id, k, d FROM lake.main.rp ORDER BY id, d")
    conn.execute("DROP TABLE IF EXISTS ducklake_rp")
    out = pg_import(url, catalog, "rp", "ducklake_rp")
    assert out.returncode == 0, out.stderr
    assert conn.execute("SELECT id, k, d FROM ducklake_rp ORDER BY id, d").fetchall() == want


def test_several_tables_are_committed_in_one_snapshot_read_whole_at_it(url, conn, lake, duckdb_lake):
    """`--schema` into DuckLake: every table (and its schema) made in one snapshot, which holds
    all of the tables as the one source snapshot they were read in, and before which none is;
    incremental runs of several tables, each table's state its own in the shared snapshot;
    a column added to one table in the same snapshot as another's rows; a table that cannot
    take its rows leaves every table as it was (no snapshot, no file left). DuckDB reads each
    snapshot and writes after them."""
    catalog, data = lake
    conn.execute("DROP SCHEMA IF EXISTS dl_many CASCADE")
    conn.execute("CREATE SCHEMA dl_many")
    conn.execute("CREATE TABLE dl_many.a (id bigint PRIMARY KEY, v text)")
    conn.execute("INSERT INTO dl_many.a SELECT i, 'a' || i FROM generate_series(1, 10) i")
    conn.execute("CREATE TABLE dl_many.b (id bigint PRIMARY KEY, n numeric(8,2))")
    conn.execute("INSERT INTO dl_many.b SELECT i, i / 4.0 FROM generate_series(1, 5) i")
    conn.execute("CREATE TABLE dl_many.c (id bigint PRIMARY KEY, day date)")
    conn.execute("INSERT INTO dl_many.c SELECT i, date '2026-01-01' + i FROM generate_series(1, 3) i")

    def run(*extra, check=True):
        return export(url, "--schema", "dl_many", "--ducklake", catalog, "--data-path", str(data),
                      "--incremental-by", "id", *extra, check=check)

    def counts(version):
        return duckdb_lake(catalog, " UNION ALL ".join(
            f"SELECT '{t}', count(*) FROM lake.dl_many.{t} AT (VERSION => {version})" for t in "abc"))

    def snapshots():
        return catalog_rows(catalog, "SELECT snapshot_id, schema_version, changes_made FROM ducklake_snapshot "
                                     "JOIN ducklake_snapshot_changes USING (snapshot_id) ORDER BY snapshot_id")

    first = [json.loads(line) for line in run().stdout.splitlines()]
    assert [(r["table"], r["rows"], r["created"], r["committed_together"]) for r in first] == [
        ("dl_many.a", 10, True, 3), ("dl_many.b", 5, True, 3), ("dl_many.c", 3, True, 3)], first
    made = {r["snapshot"] for r in first}
    assert len(made) == 1, first
    made = made.pop()
    (before, _, _), (snap, version, changes) = snapshots()
    assert snap == made and [c for c in changes.split(",") if c.startswith("created_")] == [
        'created_schema:"dl_many"', 'created_table:"dl_many"."a"', 'created_table:"dl_many"."b"',
        'created_table:"dl_many"."c"'], changes
    # One schema version for the snapshot's every new schema and table.
    assert catalog_rows(catalog, "SELECT DISTINCT schema_version FROM ducklake_schema_versions "
                                 f"WHERE begin_snapshot = {made}") == [(version,)]
    assert sorted(counts(made)) == [("a", 10), ("b", 5), ("c", 3)]
    with pytest.raises(RuntimeError, match="does not exist"):
        duckdb_lake(catalog, f"SELECT count(*) FROM lake.dl_many.a AT (VERSION => {before})")
    # Incremental runs: each table goes on from its own state, all in one new snapshot.
    conn.execute("INSERT INTO dl_many.a SELECT i, 'a' || i FROM generate_series(11, 12) i")
    conn.execute("INSERT INTO dl_many.b VALUES (6, 1.5)")
    second = [json.loads(line) for line in run().stdout.splitlines()]
    assert [(r["rows"], r["first_run"], r["incremental"]["run"]) for r in second] == [
        (2, False, 2), (1, False, 2), (0, False, 2)], second
    assert len({r["snapshot"] for r in second}) == 1
    extra = json.loads(catalog_rows(catalog, "SELECT commit_extra_info FROM ducklake_snapshot_changes "
                                             f"WHERE snapshot_id = {second[0]['snapshot']}")[0][0])
    assert sorted(s["high_water"] for s in extra["incremental_by_table"].values()) == ["12", "3", "6"], extra
    # A column new to one table, in the same snapshot as another's rows.
    conn.execute("ALTER TABLE dl_many.c ADD COLUMN note text")
    conn.execute("INSERT INTO dl_many.c VALUES (4, '2027-01-01', 'new')")
    conn.execute("INSERT INTO dl_many.a VALUES (13, 'a13')")
    third = [json.loads(line) for line in run().stdout.splitlines()]
    assert [r["rows"] for r in third] == [1, 0, 1] and len({r["snapshot"] for r in third}) == 1, third
    assert sorted(counts(third[0]["snapshot"])) == [("a", 13), ("b", 6), ("c", 4)]
    assert duckdb_lake(catalog, "SELECT id, note FROM lake.dl_many.c ORDER BY id") == [
        (1, None), (2, None), (3, None), (4, "new")]
    # DuckDB writes after, in the catalog as pgarrow left it, and reads every snapshot.
    duckdb_lake(catalog, "INSERT INTO lake.dl_many.b VALUES (100, 2.25); "
                         "ALTER TABLE lake.dl_many.a ADD COLUMN w int")
    assert duckdb_lake(catalog, "SELECT count(*), max(id) FROM lake.dl_many.b") == [(7, 100)]
    for s in {r["snapshot"] for r in first + second + third}:
        assert len(counts(s)) == 3
    conn.execute("INSERT INTO dl_many.a VALUES (14, 'a14')")
    fourth = [json.loads(line) for line in run().stdout.splitlines()]
    assert [r["rows"] for r in fourth] == [1, 0, 0], fourth
    assert duckdb_lake(catalog, "SELECT id, w FROM lake.dl_many.a WHERE id >= 13 ORDER BY id") == [
        (13, None), (14, None)]
    # b's id turned text, which its lake table's bigint cannot take: a is not appended either.
    files = lake_files(data)
    kept = snapshots()
    conn.execute("INSERT INTO dl_many.a VALUES (15, 'a15')")
    conn.execute("ALTER TABLE dl_many.b ALTER COLUMN id TYPE text")
    out = export(url, "--schema", "dl_many", "--ducklake", catalog, "--if-exists", "append", check=False)
    assert out.returncode != 0 and "dl_many.b" in out.stderr, out.stderr
    assert snapshots() == kept and lake_files(data) == files
    # From Python: the tables replaced (b's id now text) in one snapshot.
    import pgarrow

    many = pgarrow.export_ducklake(url, schema="dl_many", ducklake=catalog, if_exists="replace")
    assert [(r["table"], r["rows"], r["committed_together"]) for r in many] == [
        ("dl_many.a", 15, 3), ("dl_many.b", 6, 3), ("dl_many.c", 4, 3)], many
    assert len({r["snapshot"] for r in many}) == 1
    assert duckdb_lake(catalog, "SELECT typeof(id) FROM lake.dl_many.b LIMIT 1") == [("VARCHAR",)]
