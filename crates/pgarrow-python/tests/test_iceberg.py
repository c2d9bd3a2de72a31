"""Exports committed into Apache Iceberg tables of the SQL catalog in PostgreSQL
(`pgarrow export --iceberg URL`, Python `export_iceberg`), read back by readers nobody here
wrote: pyiceberg's `SqlCatalog` on the same database, polars' `scan_iceberg`, and DuckDB
1.5.5's iceberg extension. Every type of the mapping as the server has it, bounds readers
prune by, partition transforms, create / append / replace / refuse, one snapshot per export
however many connections, tables pyiceberg wrote appended to by pgarrow and the other way
round, concurrent appends, an object store as the warehouse, exports that fail, are
cancelled or killed leaving the table as it was, and tables imported back."""

import json
import os
import signal
import subprocess
import uuid
from urllib.parse import urlparse, urlunparse

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from test_delta import same
from test_ducklake import export, lake, normalized, pgarrow_bin, wait_for_backend  # noqa: F401 (lake: a fixture)

TYPES = """
CREATE TABLE {name} (
    id int PRIMARY KEY, small smallint, big bigint, amount numeric(12,2), ratio float8,
    flag boolean, label text, code varchar(8), day date, stamp timestamp, stamp_tz timestamptz,
    raw bytea, doc jsonb, tags int[], uid uuid, at time
);
INSERT INTO {name} VALUES
 (1, -32768, 9223372036854775807, -1234567890.12, 1.5, true, 'héllo', 'ab',
  '2026-11-26', '2026-11-26 10:11:12.345678', '2026-11-26 10:11:12+02', '\\x00ff',
  '{{"a": [1, 2]}}', '{{1,2,NULL}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10:11:12.5'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, 7, -1, 0.05, -0.25, false, '', 'z', '0001-01-01', '1999-12-31 23:59:59', '1970-01-01 00:00:00+00', '\\x',
  '[]', '{{}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', '00:00:00');
"""

COLUMNS = "id, small, big, amount, ratio, flag, label, code, day, stamp, stamp_tz, raw, doc, tags"


@pytest.fixture(scope="module")
def typed(conn):
    conn.execute("DROP TABLE IF EXISTS iceberg_types")
    conn.execute(TYPES.format(name="iceberg_types"))
    return "iceberg_types"


@pytest.fixture
def catalog(url, conn, tmp_path):
    """A new, empty catalog database and warehouse: (catalog URL, warehouse path)."""
    name = f"ice_{uuid.uuid4().hex[:12]}"
    conn.execute(f"CREATE DATABASE {name}")
    u = urlparse(url)
    yield urlunparse(u._replace(path=f"/{name}")), tmp_path / "warehouse"
    conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def pyiceberg(catalog_url: str, warehouse=None, **props) -> SqlCatalog:
    uri = catalog_url.replace("postgresql://", "postgresql+psycopg://", 1)
    if warehouse is not None:
        props["warehouse"] = str(warehouse)
    return SqlCatalog("default", uri=uri, **props)


def server_rows(conn, name, columns=COLUMNS):
    rows = conn.execute(f"SELECT {columns.replace('doc', 'doc::text')} FROM {name} ORDER BY id").fetchall()
    return [normalized(r) for r in rows]


def blocked_at_commit(cat_url, table, *procs_args):
    """Starts each of `procs_args` (pgarrow export arguments) while holding the catalog row of
    `table` locked, one after the other once the previous is waiting on that lock at its
    commit, then lets them commit in that order; their completed processes."""
    import psycopg

    db = urlparse(cat_url).path.lstrip("/")
    with psycopg.connect(cat_url) as lock:
        lock.execute("SELECT 1 FROM iceberg_tables WHERE table_name = %s FOR UPDATE", (table,))
        procs = []
        for k, args in enumerate(procs_args, 1):
            procs.append(subprocess.Popen([pgarrow_bin(), "export", "--quiet", "--json", *args],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            with psycopg.connect(cat_url, autocommit=True) as watch:
                for _ in range(30000):
                    waiting = watch.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
                        (db,)).fetchone()[0]
                    if waiting >= k:
                        break
                    assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
                    watch.execute("SELECT pg_sleep(0.01)")
                else:
                    pytest.fail("the exports never reached their commit")
        lock.commit()
    return [(p.wait(timeout=120), *p.communicate()) for p in procs]


def test_every_type_reads_back_in_three_readers_as_the_server_has_it(url, conn, catalog, typed, duckdb_iceberg):
    cat_url, warehouse = catalog
    report = json.loads(
        export(url, "-t", typed, "--iceberg", cat_url, "--warehouse", str(warehouse), "--lake-table", "sales.types").stdout
    )
    assert report["format"] == "iceberg" and report["created"] and report["rows"] == 3, report
    want = server_rows(conn, typed)
    # pyiceberg, through the same catalog.
    table = pyiceberg(cat_url).load_table("sales.types")
    assert table.metadata.format_version == 2
    # Local paths as file: URIs, as Iceberg's own writers name them (iceberg-rust's readers
    # refuse a bare path): the table, its metadata file in the catalog, its data files.
    assert table.location() == f"file://{warehouse}/sales.db/types"
    assert report["metadata_location"] == table.metadata_location
    assert table.metadata_location.startswith(f"file://{warehouse}/sales.db/types/metadata/")
    assert all(t.file.file_path.startswith(f"file://{warehouse}/") for t in table.scan().plan_files())
    got = table.scan().to_arrow().sort_by("id")
    same([tuple(r.values()) for r in got.select(COLUMNS.split(", ")).to_pylist()], want)
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert types["amount"] == "decimal(12, 2)" and types["small"] == "int" and types["big"] == "long"
    assert types["stamp"] == "timestamp" and types["stamp_tz"] == "timestamptz" and types["uid"] == "uuid"
    assert types["at"] == "time" and types["tags"] == "list<int>", types
    uids = sorted(str(uuid.UUID(bytes=u)) if isinstance(u, bytes) else str(u) for u in got["uid"].to_pylist() if u)
    assert uids == ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12"]
    # polars.
    import polars as pl

    frame = pl.scan_iceberg(table).select(COLUMNS.split(", ")).sort("id").collect()
    same([tuple(r) for r in frame.rows()], want)
    # DuckDB's iceberg extension, from the metadata file the catalog names.
    got = duckdb_iceberg(
        f"SELECT {COLUMNS.replace('doc', 'doc::varchar')} FROM iceberg_scan('{table.metadata_location}') ORDER BY id"
    )
    same(got, want)
    # The provenance rides in the snapshot's summary.
    summary = table.current_snapshot().summary
    assert summary.operation.value == "append"
    assert summary["added-records"] == "3" and summary["total-records"] == "3"
    provenance = json.loads(summary["pgarrow"])
    assert provenance["rows"] == 3 and provenance["wal_lsn"] and provenance["snapshot"]


def ice(url, cat_url, *args, check=True, warehouse=None):
    extra = ["--warehouse", str(warehouse)] if warehouse is not None else []
    return export(url, "--iceberg", cat_url, *extra, *args, check=check)


@pytest.fixture(scope="module")
def events(conn):
    conn.execute("DROP TABLE IF EXISTS iceberg_events")
    conn.execute(
        "CREATE TABLE iceberg_events AS SELECT i AS id, "
        "(ARRAY['eu', 'us', 'a/b c', NULL])[i % 4 + 1] AS region, "
        "date '2026-01-01' + (i % 90) AS day, timestamptz '2026-01-01 00:00+00' + i * interval '1 hour' AS at, "
        "(i * 1.25)::numeric(10,2) AS amount FROM generate_series(1, 2000) i"
    )
    return "iceberg_events"


def test_partition_transforms_and_bounds_prune_files_in_every_reader(url, conn, catalog, events, duckdb_iceberg):
    cat_url, warehouse = catalog
    report = json.loads(ice(
        url, cat_url, "-t", events, "--lake-table", "ev.parts", "--files-by", "region", "--files-by", "month(day)",
        "--files-by", "bucket(4, id)", "--files-by", "truncate(100, amount)", warehouse=warehouse,
    ).stdout)
    table = pyiceberg(cat_url).load_table("ev.parts")
    spec = [(f.name, str(f.transform)) for f in table.spec().fields]
    assert spec == [("region", "identity"), ("day_month", "month"), ("id_bucket", "bucket[4]"),
                    ("amount_trunc", "truncate[100]")], spec
    files = table.inspect.files().to_pylist()
    assert len(files) == report["files"] > 20
    want_all = server_rows(conn, events, "id, region, day, at, amount")
    got = table.scan().to_arrow().sort_by("id")
    assert [normalized(tuple(r.values())) for r in got.to_pylist()] == want_all
    # pyiceberg's own partition values for a region equal ours: it finds the files by them.
    for region in ["eu", "a/b c"]:
        scan = table.scan(row_filter=f"region == '{region}'")
        planned = list(scan.plan_files())
        assert 0 < len(planned) < len(files)
        assert all(p.file.partition[0] == region for p in planned)
        assert scan.to_arrow().num_rows == conn.execute(
            "SELECT count(*) FROM iceberg_events WHERE region = %s", (region,)).fetchone()[0]
    nulls = table.scan(row_filter="region is null")
    assert nulls.to_arrow().num_rows == 500 and all(p.file.partition[0] is None for p in nulls.plan_files())
    # Month, bucket and truncate values as Iceberg computes them: pyiceberg prunes by them.
    by_month = table.scan(row_filter="day >= '2026-03-01'")
    assert 0 < len(list(by_month.plan_files())) < len(files)
    assert by_month.to_arrow().num_rows == conn.execute(
        "SELECT count(*) FROM iceberg_events WHERE day >= '2026-03-01'").fetchone()[0]
    by_id = table.scan(row_filter="id == 77")
    assert len(list(by_id.plan_files())) < len(files) / 3 and by_id.to_arrow()["id"].to_pylist() == [77]
    # Bounds: a file's lower and upper bounds are its rows' minimum and maximum.
    for f in files[:5]:
        metrics = f["readable_metrics"]
        assert metrics["id"]["lower_bound"] <= metrics["id"]["upper_bound"]
        assert metrics["id"]["null_value_count"] == 0 and metrics["id"]["value_count"] == f["record_count"]
    # DuckDB and polars read every partition's rows.
    got = duckdb_iceberg(
        f"SELECT region, count(*) FROM iceberg_scan('{table.metadata_location}') GROUP BY region ORDER BY region NULLS FIRST"
    )
    assert got == conn.execute(
        "SELECT region, count(*) FROM iceberg_events GROUP BY region ORDER BY region NULLS FIRST").fetchall()
    import polars as pl

    assert pl.scan_iceberg(table).filter(pl.col("region") == "us").collect().height == 500


def test_an_export_with_its_own_partitions_evolves_the_spec(url, conn, catalog, events, duckdb_iceberg):
    """An append with --files-by into a table partitioned otherwise adds a partition spec (as
    pyiceberg's update_spec does): earlier files keep theirs, every reader reads both."""
    cat_url, warehouse = catalog
    src = f"SELECT id, region, day FROM {events} WHERE id <= 400"
    ice(url, cat_url, "-q", src, "--lake-table", "ev.evo", "--files-by", "region", warehouse=warehouse)
    ice(url, cat_url, "-q", src, "--lake-table", "ev.evo", "--if-exists", "append", "--files-by", "month(day)",
        "--files-by", "region")
    # Without --files-by an append writes the table's new spec; back to an earlier spec reuses it.
    ice(url, cat_url, "-q", src, "--lake-table", "ev.evo", "--if-exists", "append")
    ice(url, cat_url, "-q", src, "--lake-table", "ev.evo", "--if-exists", "append", "--files-by", "region")
    table = pyiceberg(cat_url).load_table("ev.evo")
    specs = {s.spec_id: [(f.field_id, f.name, str(f.transform)) for f in s.fields] for s in table.specs().values()}
    assert specs == {0: [(1000, "region", "identity")],
                     1: [(1001, "day_month", "month"), (1000, "region", "identity")]}, specs
    assert table.spec().spec_id == 0 and table.metadata.last_partition_id == 1001
    files = table.inspect.files().to_pylist()
    assert sorted({f["spec_id"] for f in files}) == [0, 1]
    assert sum(f["spec_id"] == 1 for f in files) >= 2 * 4  # months x regions, twice
    want = conn.execute(f"SELECT count(*), sum(id) FROM {events} WHERE id <= 400").fetchone()
    assert table.scan().to_arrow().num_rows == 4 * want[0]
    # pyiceberg prunes each spec's files by its own fields.
    scan = table.scan(row_filter="region == 'eu'")
    assert all(p.file.partition[-1] == "eu" or p.file.partition[0] == "eu" for p in scan.plan_files())
    assert scan.to_arrow().num_rows == 4 * conn.execute(
        f"SELECT count(*) FROM {events} WHERE id <= 400 AND region = 'eu'").fetchone()[0]
    got = duckdb_iceberg(f"SELECT count(*), sum(id) FROM iceberg_scan('{table.metadata_location}')")
    assert got == [(4 * want[0], 4 * want[1])]
    import polars as pl

    assert pl.scan_iceberg(table).select(pl.len()).collect().item() == 4 * want[0]
    # And back into PostgreSQL.
    conn.execute("DROP TABLE IF EXISTS iceberg_evo")
    out = subprocess.run(
        [pgarrow_bin(), "import", "-d", url, "--quiet", "--iceberg", cat_url, "--lake-table", "ev.evo",
         "--into", "iceberg_evo", "--create"], capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    assert conn.execute("SELECT count(*), sum(id) FROM iceberg_evo").fetchone() == (4 * want[0], 4 * want[1])


def test_create_refuse_append_replace_each_one_snapshot(url, conn, catalog, typed):
    cat_url, warehouse = catalog
    args = ("-t", typed, "--lake-table", "t")
    first = json.loads(ice(url, cat_url, *args, warehouse=warehouse).stdout)
    cat = pyiceberg(cat_url)
    assert cat.load_table("default.t").metadata_location == first["metadata_location"]
    # Refused by default, naming the table; nothing changes.
    out = ice(url, cat_url, *args, check=False)
    assert out.returncode != 0 and "default.t exists" in out.stderr and "--if-exists append" in out.stderr
    # Append: one snapshot on top, its parent the first.
    second = json.loads(ice(url, cat_url, *args, "--if-exists", "append", "--partitions", "2",
                            "--partition-by", "id").stdout)
    assert not second["created"] and second["sequence_number"] == 2
    table = cat.load_table("default.t")
    assert table.current_snapshot().parent_snapshot_id == first["snapshot"]
    assert table.scan().to_arrow().num_rows == 6
    assert table.current_snapshot().summary["total-records"] == "6"
    # Columns the table does not have, or of another type: refused naming the column.
    for sql, column in [("SELECT 'x' AS id", '"id"'), ("SELECT 1 AS id, 1::smallint AS label", '"label"')]:
        out = ice(url, cat_url, "-q", sql, "--lake-table", "t", "--if-exists", "append", check=False)
        assert out.returncode != 0 and column in out.stderr, out.stderr
    assert cat.load_table("default.t").metadata_location == second["metadata_location"]
    # Replace: one overwrite snapshot with only the new rows; the old ones by time travel.
    third = json.loads(ice(url, cat_url, "-q", f"SELECT * FROM {typed} WHERE id = 1", "--lake-table", "t",
                           "--if-exists", "replace").stdout)
    table = cat.load_table("default.t")
    snap = table.current_snapshot()
    assert snap.snapshot_id == third["snapshot"] and snap.summary.operation.value == "overwrite"
    assert table.scan().to_arrow()["id"].to_pylist() == [1]
    assert snap.summary["deleted-records"] == "6" and snap.summary["total-records"] == "1"
    assert table.scan(snapshot_id=second["snapshot"]).to_arrow().num_rows == 6
    assert [e.metadata_file for e in table.metadata.metadata_log] == [
        first["metadata_location"], second["metadata_location"]]
    # A new table needs a warehouse.
    out = ice(url, cat_url, "-t", typed, "--lake-table", "other", check=False)
    assert out.returncode != 0 and "--warehouse" in out.stderr


def test_tables_pyiceberg_wrote_take_pgarrow_appends_and_the_other_way_round(url, conn, catalog, events):
    cat_url, warehouse = catalog
    cat = pyiceberg(cat_url, warehouse)
    # pyiceberg makes and fills a table with the export's columns; pgarrow appends to it.
    rows = pa.table({"id": pa.array([-1, -2], pa.int32()), "region": ["pyiceberg", None]})
    cat.create_namespace("py")
    theirs = cat.create_table("py.theirs", schema=rows.schema)
    theirs.append(rows)
    report = json.loads(ice(url, cat_url, "-q", f"SELECT id, region FROM {events} WHERE id <= 10",
                            "--lake-table", "py.theirs", "--if-exists", "append").stdout)
    assert not report["created"]
    theirs = cat.load_table("py.theirs")
    # pyiceberg, given a bare warehouse path, names its files by bare paths (as pgarrow did
    # before it wrote file: URIs): such a table still takes appends and reads.
    assert theirs.location().startswith(str(warehouse)) and len(theirs.history()) == 2
    assert all(t.file.file_path.startswith("/") for t in theirs.scan().plan_files())
    assert sorted(theirs.scan().to_arrow()["id"].to_pylist()) == [-2, -1, *range(1, 11)]
    # pgarrow's table, partitioned; pyiceberg appends to it and reads both.
    ice(url, cat_url, "-q", f"SELECT id, region, day FROM {events}", "--lake-table", "py.ours",
        "--files-by", "day(day)", warehouse=warehouse)
    ours = cat.load_table("py.ours")
    ours.append(pa.table({"id": pa.array([-5], pa.int32()), "region": ["x"],
                          "day": pa.array([__import__("datetime").date(2030, 1, 1)])}))
    ours = cat.load_table("py.ours")
    assert ours.scan().to_arrow().num_rows == 2001
    assert ours.scan(row_filter="day == '2030-01-01'").to_arrow()["id"].to_pylist() == [-5]
    # And pgarrow appends on top of pyiceberg's snapshot, keeping its manifests.
    ice(url, cat_url, "-q", f"SELECT id, region, day FROM {events} WHERE id = 1", "--lake-table", "py.ours",
        "--if-exists", "append")
    ours = cat.load_table("py.ours")
    assert ours.scan().to_arrow().num_rows == 2002 and len(ours.history()) == 3


def test_schema_evolution_on_append_and_replace(url, conn, catalog, duckdb_iceberg):
    """An append adds the export's new columns and promotes int to long, float to double and
    decimals to more digits; another type is refused by column with nothing committed; a
    table pyiceberg evolved (a column dropped, one added) takes appends by its field IDs; a
    replace takes the export's columns."""
    cat_url, warehouse = catalog
    ice(url, cat_url, "-q", "SELECT 1::int AS id, 'a'::text AS label, 1.5::real AS r, 1.25::numeric(5,2) AS d",
        "--lake-table", "evo", warehouse=warehouse)
    first = pyiceberg(cat_url).load_table("default.evo")
    out = ice(url, cat_url, "-q", "SELECT 2::bigint AS id, 'b'::text AS label, 2.5::float8 AS r, "
              "123456.789::numeric(12,3) AS d", "--lake-table", "evo", "--if-exists", "append", check=False)
    # A decimal of another scale is another type: refused, naming the column.
    assert out.returncode != 0 and '"d"' in out.stderr and "nothing was committed" in out.stderr, out.stderr
    assert pyiceberg(cat_url).load_table("default.evo").metadata_location == first.metadata_location
    ice(url, cat_url, "-q", "SELECT 2::bigint AS id, 'b'::text AS label, 2.5::float8 AS r, 12345.67::numeric(9,2) AS d, "
        "ARRAY[1, 2] AS extra", "--lake-table", "evo", "--if-exists", "append")
    table = pyiceberg(cat_url).load_table("default.evo")
    types = {f.name: (f.field_id, str(f.field_type)) for f in table.schema().fields}
    assert types == {"id": (1, "long"), "label": (2, "string"), "r": (3, "double"), "d": (4, "decimal(9, 2)"),
                     "extra": (5, "list<int>")}, types
    assert table.schema().schema_id == 1 and len(table.schemas()) == 2
    rows = sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
    assert [(r["id"], r["r"], str(r["d"]), r["extra"]) for r in rows] == [
        (1, 1.5, "1.25", None), (2, 2.5, "12345.67", [1, 2])]
    got = duckdb_iceberg(f"SELECT id, r, d::varchar, extra FROM iceberg_scan('{table.metadata_location}') ORDER BY id")
    assert got == [(1, 1.5, "1.25", None), (2, 2.5, "12345.67", [1, 2])]
    # Narrower than the table: taken as it is (int files in a long column).
    ice(url, cat_url, "-q", "SELECT 3::int AS id, 'c'::text AS label", "--lake-table", "evo", "--if-exists", "append")
    table = pyiceberg(cat_url).load_table("default.evo")
    assert table.schema().schema_id == 1
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == [1, 2, 3]
    assert table.scan(row_filter="id == 3").to_arrow()["label"].to_pylist() == ["c"]
    # pyiceberg drops one column and adds one: pgarrow's append follows its IDs.
    with table.update_schema() as update:
        update.delete_column("label")
        update.add_column("note", __import__("pyiceberg.types", fromlist=["StringType"]).StringType())
    ice(url, cat_url, "-q", "SELECT 4::bigint AS id, 'n'::text AS note, 'again'::text AS label", "--lake-table", "evo",
        "--if-exists", "append")
    table = pyiceberg(cat_url).load_table("default.evo")
    types = {f.name: f.field_id for f in table.schema().fields}
    assert types["note"] == 7 and types["label"] == 8, types  # 6: extra's element
    rows = {r["id"]: r for r in table.scan().to_arrow().to_pylist()}
    assert rows[4]["note"] == "n" and rows[4]["label"] == "again" and rows[1]["label"] is None
    # A replace takes the export's columns, keeping the IDs of those it shares.
    ice(url, cat_url, "-q", "SELECT 9::bigint AS id, now()::date AS day", "--lake-table", "evo", "--if-exists", "replace")
    table = pyiceberg(cat_url).load_table("default.evo")
    assert {f.name: f.field_id for f in table.schema().fields} == {"id": 1, "day": 9}
    assert table.scan().to_arrow()["id"].to_pylist() == [9]


def test_incremental_runs_append_with_their_state_in_the_same_commit(url, conn, catalog):
    """`--incremental-by COLUMN` into an Iceberg table: each run appends what changed since
    the run whose state the table's last commit carries (no state file), over one connection
    or several in the run's snapshot; a run that commits nothing leaves the state as it was;
    a restart replaces the rows."""
    cat_url, warehouse = catalog
    conn.execute("DROP TABLE IF EXISTS iceberg_inc")
    conn.execute("CREATE TABLE iceberg_inc (id bigint PRIMARY KEY, v text, at timestamptz DEFAULT now())")
    conn.execute("INSERT INTO iceberg_inc (id, v) SELECT i, 'a' FROM generate_series(1, 100) i")

    def run(*extra, check=True):
        return ice(url, cat_url, "-t", "iceberg_inc", "--incremental-by", "id", "--lake-table", "inc.t", *extra,
                   check=check, warehouse=warehouse)

    first = json.loads(run().stdout)
    assert first["created"] and first["first_run"] and first["rows"] == 100
    assert first["incremental"]["run"] == 1 and first["incremental"]["high_water"] == "100"
    table = pyiceberg(cat_url).load_table("inc.t")
    state = json.loads(table.current_snapshot().summary["pgarrow.incremental"])
    assert state["high_water"] == "100" and state["files"], state
    # New rows, and a row updated below the mark: the second run takes the new ones.
    conn.execute("INSERT INTO iceberg_inc (id, v) SELECT i, 'b' FROM generate_series(101, 150) i")
    second = json.loads(run("--partitions", "2").stdout)
    assert not second["first_run"] and second["rows"] == 50 and second["incremental"]["run"] == 2
    table = pyiceberg(cat_url).load_table("inc.t")
    ids = table.scan().to_arrow()["id"].to_pylist()
    assert sorted(ids) == list(range(1, 151))
    # Nothing new: a run of no rows, its state committed (the run counter goes on).
    third = json.loads(run().stdout)
    assert third["rows"] == 0 and third["incremental"]["run"] == 3
    assert pyiceberg(cat_url).load_table("inc.t").scan().to_arrow().num_rows == 150
    # Another writer's append on top: the next run still finds the state beneath it.
    ice(url, cat_url, "-q", "SELECT -1::bigint AS id, 'x'::text AS v, now() AS at", "--lake-table", "inc.t",
        "--if-exists", "append")
    conn.execute("INSERT INTO iceberg_inc (id, v) VALUES (151, 'c')")
    fourth = json.loads(run().stdout)
    assert fourth["rows"] == 1 and fourth["incremental"]["run"] == 4
    # Two runs at once: the later to commit finds the other's state and commits nothing.
    conn.execute("INSERT INTO iceberg_inc (id, v) VALUES (152, 'd')")
    args = ["-d", url, "-t", "iceberg_inc", "--incremental-by", "id", "--iceberg", cat_url, "--lake-table", "inc.t"]
    (rc1, out1, err1), (rc2, _, err2) = blocked_at_commit(cat_url, "t", args, args)
    assert rc1 == 0 and json.loads(out1)["rows"] == 1, err1
    assert rc2 != 0 and "another incremental run" in err2 and "(run 5)" in err2, err2
    # A state file is not the table's: refused.
    out = run("--state", str(warehouse / "s.json"), check=False)
    assert out.returncode != 0 and "--state" in out.stderr
    # A restart replaces the rows with a first run.
    fifth = json.loads(run("--restart").stdout)
    assert fifth["first_run"] and fifth["rows"] == 152
    table = pyiceberg(cat_url).load_table("inc.t")
    assert table.current_snapshot().summary.operation.value == "overwrite"
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == list(range(1, 153))
    # A table without a run's state is not taken over silently.
    ice(url, cat_url, "-t", "iceberg_inc", "--lake-table", "inc.plain", warehouse=warehouse)
    out = ice(url, cat_url, "-t", "iceberg_inc", "--incremental-by", "id", "--lake-table", "inc.plain", check=False)
    assert out.returncode != 0 and "incremental run" in out.stderr


def test_several_tables_go_into_lake_tables_of_their_own_in_one_snapshot(url, conn, catalog, lake, tmp_path,
                                                                         duckdb_lake):
    """`--table PATTERN` / `--schema` with a lake target: each table into a lake table of its
    own schema and name (Delta: LOCATION/SCHEMA.NAME), every one read in one snapshot (the
    commits' provenance names the same one); Iceberg's committed together, in one transaction
    of the catalog database (a table that cannot take its rows leaves the others as they were),
    the other formats' each by its own commit."""
    cat_url, warehouse = catalog
    conn.execute("DROP SCHEMA IF EXISTS lake_many CASCADE")
    conn.execute("CREATE SCHEMA lake_many")
    conn.execute("CREATE TABLE lake_many.a AS SELECT i AS id FROM generate_series(1, 10) i")
    conn.execute("CREATE TABLE lake_many.b AS SELECT i AS id, 'x' || i AS v FROM generate_series(1, 5) i")
    out = ice(url, cat_url, "--schema", "lake_many", warehouse=warehouse)
    reports = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["table"], r["rows"]) for r in reports] == [("lake_many.a", 10), ("lake_many.b", 5)]
    cat = pyiceberg(cat_url)
    snapshots = {json.loads(cat.load_table(f"lake_many.{t}").current_snapshot().summary["pgarrow"])["snapshot"]
                 for t in "ab"}
    assert len(snapshots) == 1 and None not in snapshots, snapshots
    assert cat.load_table("lake_many.b").scan().to_arrow().num_rows == 5
    assert [r["committed_together"] for r in reports] == [2, 2]
    out = subprocess.run([pgarrow_bin(), "export", "-d", url, "--iceberg", cat_url, "--warehouse", str(warehouse),
                          "--schema", "lake_many", "--if-exists", "append"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "the 2 tables were committed together, in one transaction" in out.stderr, out.stderr
    assert [cat.load_table(f"lake_many.{t}").scan().to_arrow().num_rows for t in "ab"] == [20, 10]
    # b's id turned text, which its lake table's long cannot take: a is not appended either.
    conn.execute("ALTER TABLE lake_many.b ALTER COLUMN id TYPE text")
    out = ice(url, cat_url, "--schema", "lake_many", "--if-exists", "append", warehouse=warehouse, check=False)
    assert out.returncode != 0 and "lake_many.b" in out.stderr, out.stderr
    conn.execute("ALTER TABLE lake_many.b ALTER COLUMN id TYPE int USING id::int")
    assert [cat.load_table(f"lake_many.{t}").scan().to_arrow().num_rows for t in "ab"] == [20, 10]
    assert len(cat.load_table("lake_many.a").metadata.snapshots) == 2
    # Delta: a table per source table under the location.
    delta_root = tmp_path / "delta"
    out = export(url, "-t", "lake_many.*", "--delta", str(delta_root), "--partitions", "2")
    assert [json.loads(line)["table"] for line in out.stdout.splitlines()] == [
        str(delta_root / "lake_many.a"), str(delta_root / "lake_many.b")]
    import deltalake

    infos = [deltalake.DeltaTable(str(delta_root / f"lake_many.{t}")).history(1)[0]["pgarrow"] for t in "ab"]
    assert infos[0]["snapshot"] == infos[1]["snapshot"] and infos[0]["rows"] == 10
    # DuckLake: a table per source table in schema lake_many.
    lake_url, data = lake
    export(url, "--schema", "lake_many", "--ducklake", lake_url, "--data-path", str(data))
    assert duckdb_lake(lake_url, "SELECT count(*) FROM lake.lake_many.a") == [(10,)]
    assert duckdb_lake(lake_url, "SELECT string_agg(v, ',' ORDER BY id) FROM lake.lake_many.b") == [("x1,x2,x3,x4,x5",)]
    # One lake table cannot take several.
    out = ice(url, cat_url, "--schema", "lake_many", "--lake-table", "x", check=False)
    assert out.returncode != 0 and "--lake-table" in out.stderr
    # Incremental runs of several tables, each table's state in its own lake table's commits;
    # into files (one state file) they stay refused, named.
    runs = [
        [json.loads(line) for line in export(url, "--schema", "lake_many", "--delta", str(tmp_path / "inc_cli"),
                                             "--incremental-by", "id").stdout.splitlines()]
        for _ in range(2)
    ]
    assert [[(r["rows"], r["first_run"]) for r in run] for run in runs] == [[(10, True), (5, True)],
                                                                             [(0, False), (0, False)]]
    out = export(url, "--schema", "lake_many", "-o", str(tmp_path / "x.parquet"), "--incremental-by", "id",
                 check=False)
    assert out.returncode != 0 and "--incremental-by reads one --table" in out.stderr, out.stderr
    # From Python: each format's export takes a list of table patterns or schema patterns, and
    # returns a list of statistics, one per table.
    import pgarrow

    many = pgarrow.export_iceberg(url, schema="lake_many", iceberg=cat_url, if_exists="replace")
    assert [(r["table"], r["rows"], r["format"], r["created"]) for r in many] == [
        ("lake_many.a", 10, "iceberg", False), ("lake_many.b", 5, "iceberg", False)]
    snapshots = {json.loads(cat.load_table(f"lake_many.{t}").current_snapshot().summary["pgarrow"])["snapshot"]
                 for t in "ab"}
    assert len(snapshots) == 1 and None not in snapshots, snapshots
    py_delta = tmp_path / "delta_py"
    many = pgarrow.export_delta(url, table=["lake_many.a", "lake_many.b"], delta=str(py_delta), partitions=2)
    assert [(r["table"], r["version"]) for r in many] == [
        (str(py_delta / "lake_many.a"), 0), (str(py_delta / "lake_many.b"), 0)]
    infos = [deltalake.DeltaTable(str(py_delta / f"lake_many.{t}")).history(1)[0]["pgarrow"] for t in "ab"]
    assert infos[0]["snapshot"] == infos[1]["snapshot"] and infos[1]["rows"] == 5
    many = pgarrow.export_ducklake(url, table=["lake_many.*"], ducklake=lake_url, if_exists="append")
    assert [(r["table"], r["rows"]) for r in many] == [("lake_many.a", 10), ("lake_many.b", 5)]
    assert duckdb_lake(lake_url, "SELECT count(*) FROM lake.lake_many.a") == [(20,)]
    # Incremental runs of each table, their states in their own tables' commits.
    runs = [pgarrow.export_delta(url, schema="lake_many", delta=str(tmp_path / "inc"), by="id")
            for _ in range(2)]
    assert [[(r["rows"], r["first_run"]) for r in run] for run in runs] == [[(10, True), (5, True)],
                                                                             [(0, False), (0, False)]]
    with pytest.raises(pgarrow.UsageError, match="lake_table"):
        pgarrow.export_iceberg(url, schema="lake_many", iceberg=cat_url, lake_table="x")
    with pytest.raises(pgarrow.UsageError, match="patterns"):
        pgarrow.export_delta(url, "SELECT 1", table=["lake_many.a"], delta=str(py_delta))


def test_concurrent_appends_all_land_and_a_racing_replace_commits_nothing(url, conn, catalog, typed):
    cat_url, warehouse = catalog
    procs = [
        subprocess.Popen(
            [pgarrow_bin(), "export", "-d", url, "--quiet", "--json", "-t", typed, "--iceberg", cat_url,
             "--warehouse", str(warehouse), "--lake-table", "race", "--if-exists", "append"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(4)
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    assert sorted(r["sequence_number"] for r in reports) == [1, 2, 3, 4]
    assert sum(r["created"] for r in reports) == 1
    table = pyiceberg(cat_url).load_table("default.race")
    assert table.scan().to_arrow().num_rows == 12 and len(table.history()) == 4
    # An append and a replace meeting at the commit: the append lands, the replace (which
    # would drop rows it never saw) commits nothing.
    base = ["-d", url, "-t", typed, "--iceberg", cat_url, "--lake-table", "race"]
    (a_rc, a_out, a_err), (r_rc, _, r_err) = blocked_at_commit(
        cat_url, "race", [*base, "--if-exists", "append"], [*base, "--if-exists", "replace"])
    assert a_rc == 0 and json.loads(a_out)["retried"] == 0, a_err
    assert r_rc != 0 and "while it was being replaced" in r_err and "nothing was committed" in r_err, r_err
    table = pyiceberg(cat_url).load_table("default.race")
    assert table.scan().to_arrow().num_rows == 15 and len(table.history()) == 5
    # Every manifest list and metadata file of a lost attempt was removed.
    metadata = sorted(p.name for p in (warehouse / "default.db" / "race" / "metadata").iterdir())
    assert len([m for m in metadata if m.endswith(".metadata.json")]) == 5, metadata
    assert len([m for m in metadata if m.startswith("snap-")]) == 5, metadata


def test_failed_cancelled_and_killed_exports_commit_nothing(url, conn, catalog, typed):
    cat_url, warehouse = catalog
    ice(url, cat_url, "-t", typed, "--lake-table", "t", warehouse=warehouse)
    root = warehouse / "default.db" / "t"
    before = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    location = pyiceberg(cat_url).load_table("default.t").metadata_location
    # A value error at row 500 of the server's query.
    out = ice(url, cat_url, "-q", f"SELECT *, 1 / (id - 2) AS v FROM {typed}", "--lake-table", "div",
              check=False, warehouse=warehouse)
    assert out.returncode != 0 and "division by zero" in out.stderr
    assert not (warehouse / "default.db" / "div").exists() or not list((warehouse / "default.db" / "div").rglob("*.*"))
    # Ctrl-C in the middle of a long export: nothing committed, its files removed.
    marker = f"ice_cancel_{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [pgarrow_bin(), "export", "-d", url, "--quiet", "-q",
         f"SELECT *, pg_sleep(0.01)::text AS {marker} FROM {typed}, generate_series(1, 30000)",
         "--iceberg", cat_url, "--lake-table", "t2", "--warehouse", str(warehouse)],
        stderr=subprocess.PIPE, text=True,
    )
    wait_for_backend(conn, marker)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, err
    assert not list((warehouse / "default.db").glob("t2/**/*.*"))
    # kill -9 during an append: the table as it was (files no snapshot names may stay).
    proc = subprocess.Popen(
        [pgarrow_bin(), "export", "-d", url, "--quiet", "-q",
         f"SELECT t.* FROM {typed} t, generate_series(1, 30000) g WHERE pg_sleep(0.0001) IS NOT NULL AND '{marker}_k' <> ''",
         "--iceberg", cat_url, "--lake-table", "t", "--if-exists", "append"],
        stderr=subprocess.PIPE, text=True,
    )
    wait_for_backend(conn, f"{marker}_k")
    proc.kill()
    proc.communicate(timeout=60)
    table = pyiceberg(cat_url).load_table("default.t")
    assert table.metadata_location == location and table.scan().to_arrow().num_rows == 3
    after = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and "metadata" in p.parts)
    assert after == [p for p in before if "metadata" in p.parts]


def test_python_export_into_a_table_on_an_object_store(url, conn, catalog, typed, s3, duckdb_iceberg):
    import pgarrow

    cat_url, _ = catalog
    bucket = f"ice-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(bucket)
    stats = pgarrow.export_iceberg(
        url, table=typed, iceberg=cat_url, lake_table="s3ns.types", warehouse=f"s3://{bucket}/wh",
        storage_options=s3.storage_options, partitions=2,
    )
    import typing

    from pgarrow import _typing

    # Every key but an incremental run's and a several-table export's.
    optional = set(typing.get_type_hints(_typing.LakeRun)) | set(typing.get_type_hints(_typing.TogetherCommit))
    assert set(typing.get_type_hints(_typing.IcebergStats)) - optional <= set(stats)
    assert "incremental" not in stats
    assert stats["format"] == "iceberg" and stats["created"] and stats["rows"] == 3
    assert stats["metadata_location"].startswith(f"s3://{bucket}/wh/s3ns.db/types/metadata/00000-")
    o = s3.storage_options
    cat = pyiceberg(cat_url, **{"s3.endpoint": o["aws_endpoint"], "s3.access-key-id": o["aws_access_key_id"],
                                "s3.secret-access-key": o["aws_secret_access_key"], "s3.region": o["aws_region"]})
    table = cat.load_table("s3ns.types")
    want = server_rows(conn, typed)
    got = table.scan().to_arrow().sort_by("id").select(COLUMNS.split(", ")).to_pylist()
    same([tuple(r.values()) for r in got], want)
    got = duckdb_iceberg(
        f"SELECT {COLUMNS.replace('doc', 'doc::varchar')} FROM iceberg_scan('{stats['metadata_location']}') ORDER BY id",
        s3=s3,
    )
    same(got, want)
    again = pgarrow.export_iceberg(url, table=typed, iceberg=cat_url, lake_table="s3ns.types", if_exists="append",
                                   storage_options=s3.storage_options)
    assert again["sequence_number"] == 2 and cat.load_table("s3ns.types").scan().to_arrow().num_rows == 6
    with pytest.raises(pgarrow.UsageError, match="s3ns.types exists"):
        pgarrow.export_iceberg(url, table=typed, iceberg=cat_url, lake_table="s3ns.types",
                               storage_options=s3.storage_options)
    # Incremental runs from Python, their state in the table's commits.
    runs = [
        pgarrow.export_iceberg(url, table=typed, iceberg=cat_url, lake_table="s3ns.inc", by="id",
                               warehouse=f"s3://{bucket}/wh", storage_options=s3.storage_options)
        for _ in range(2)
    ]
    assert set(typing.get_type_hints(_typing.IcebergStats)) - set(typing.get_type_hints(_typing.TogetherCommit)) <= set(
        runs[0])
    assert [(r["rows"], r["first_run"], r["incremental"]["run"]) for r in runs] == [(3, True, 1), (0, False, 2)]
    with pytest.raises(pgarrow.UsageError, match="table="):
        pgarrow.export_iceberg(url, "SELECT 1 AS id", iceberg=cat_url, lake_table="s3ns.q", by="id",
                               warehouse=f"s3://{bucket}/wh", storage_options=s3.storage_options)


def test_tables_of_every_writer_import_back_into_postgresql_exactly(url, conn, catalog, typed, events):
    cat_url, warehouse = catalog

    def pg_import(name, into):
        out = subprocess.run(
            [pgarrow_bin(), "import", "-d", url, "--quiet", "--iceberg", cat_url, "--lake-table", name,
             "--into", into, "--create"],
            capture_output=True, text=True,
        )
        assert out.returncode == 0, out.stderr

    # pgarrow's, every type, replaced once: the current snapshot's rows only.
    ice(url, cat_url, "-t", typed, "--lake-table", "back.types", warehouse=warehouse)
    ice(url, cat_url, "-t", typed, "--lake-table", "back.types", "--if-exists", "replace")
    conn.execute("DROP TABLE IF EXISTS iceberg_back")
    pg_import("back.types", "iceberg_back")
    cols = "id, small, big, amount, ratio, flag, label, code, day, stamp, stamp_tz, raw, doc::text, tags, uid, at"
    want = conn.execute(f"SELECT {cols} FROM {typed} ORDER BY id").fetchall()
    assert conn.execute(f"SELECT {cols} FROM iceberg_back ORDER BY id").fetchall() == want
    # pyiceberg's, partitioned, with pgarrow's append in it too.
    cat = pyiceberg(cat_url, warehouse)
    data = pa.table({"id": pa.array([1, 2, 3], pa.int32()), "region": ["eu", None, "a/b c"]})
    theirs = cat.create_table("back.theirs", schema=data.schema)
    with theirs.update_spec() as spec:
        spec.add_identity("region")
    theirs.append(data)
    theirs.append(data.slice(0, 1))
    ice(url, cat_url, "-q", f"SELECT id, region FROM {events} WHERE id <= 4", "--lake-table", "back.theirs",
        "--if-exists", "append")
    conn.execute("DROP TABLE IF EXISTS iceberg_theirs")
    pg_import("back.theirs", "iceberg_theirs")
    got = conn.execute("SELECT id, region FROM iceberg_theirs ORDER BY id, region NULLS FIRST").fetchall()
    want = sorted([(1, "eu"), (2, None), (3, "a/b c"), (1, "eu")] + conn.execute(
        f"SELECT id, region FROM {events} WHERE id <= 4").fetchall(), key=lambda r: (r[0], r[1] is not None, r[1] or ""))
    assert got == want
    # pyiceberg's evolved table: a column dropped, one added, one promoted from int to long
    # after its first file; then pgarrow's append. Each file reads as the table's columns now.
    from pyiceberg.types import LongType, StringType

    evolved = cat.create_table("back.evolved", schema=pa.schema([("id", pa.int32()), ("gone", pa.string())]))
    evolved.append(pa.table({"id": pa.array([1], pa.int32()), "gone": ["x"]}))
    with evolved.update_schema() as update:
        update.add_column("note", StringType())
        update.update_column("id", LongType())
        update.delete_column("gone")
    evolved.append(pa.table({"id": pa.array([2], pa.int64()), "note": ["two"]}))
    ice(url, cat_url, "-q", "SELECT 3::bigint AS id, 'pg'::text AS note", "--lake-table", "back.evolved",
        "--if-exists", "append")
    conn.execute("DROP TABLE IF EXISTS iceberg_evolved")
    pg_import("back.evolved", "iceberg_evolved")
    assert conn.execute("SELECT * FROM iceberg_evolved ORDER BY id").fetchall() == [(1, None), (2, "two"), (3, "pg")]
    # From Python: pgarrow.write reads the same snapshot.
    import pgarrow

    conn.execute("DROP TABLE IF EXISTS iceberg_theirs_py")
    stats = pgarrow.write(url, "iceberg_theirs_py", iceberg=cat_url, lake_table="back.theirs", create=True)
    assert stats["rows"] == len(want)
    assert conn.execute("SELECT id, region FROM iceberg_theirs_py ORDER BY id, region NULLS FIRST").fetchall() == want
    with pytest.raises(pgarrow.UsageError, match="lake_table"):
        pgarrow.write(url, "x", iceberg=cat_url)
    # A table the catalog does not have: named.
    out = subprocess.run(
        [pgarrow_bin(), "import", "-d", url, "--quiet", "--iceberg", cat_url, "--lake-table", "back.none",
         "--into", "x", "--create"], capture_output=True, text=True,
    )
    assert out.returncode != 0 and "back.none" in out.stderr


def test_columns_files_leave_out_load_from_the_partition_tuple_and_the_initial_default(url, conn, catalog, events):
    """Some writers leave identity partition columns out of the data files (the value is in
    each file's partition tuple), and files written before a column was added hold nothing
    for it (the column's `initial-default` is their value): the import loads those values,
    never NULL in their place."""
    import pyarrow.parquet as pq

    cat_url, warehouse = catalog
    ice(url, cat_url, "-q", f"SELECT id, region, day, at FROM {events}", "--lake-table", "ev.tuple",
        "--files-by", "region", "--files-by", "day", warehouse=warehouse)
    t = pyiceberg(cat_url).load_table("ev.tuple")
    files = [task.file.file_path for task in t.scan().plan_files()]
    assert len(files) > 10
    # The files rewritten without their identity partition columns.
    for path in files:
        local = path.removeprefix("file://")
        table = pq.read_table(local)
        pq.write_table(table.drop_columns(["region", "day"]), local)
        assert pq.read_schema(local).names == ["id", "at"]
    # A column added with an initial default (the specification's form; written by hand, as
    # Spark and pyiceberg write it for format version 3).
    import psycopg

    with psycopg.connect(cat_url, autocommit=True) as c:
        (location,) = c.execute("SELECT metadata_location FROM iceberg_tables WHERE table_name = 'tuple'").fetchone()
        meta = json.loads(open(location.removeprefix("file://")).read())
        schema = next(s for s in meta["schemas"] if s["schema-id"] == meta["current-schema-id"])
        new_id = meta["last-column-id"] + 1
        schema = dict(schema, **{"schema-id": schema["schema-id"] + 1, "fields": schema["fields"] + [
            {"id": new_id, "name": "note", "required": False, "type": "string",
             "initial-default": "before", "write-default": "before"},
            {"id": new_id + 1, "name": "blob", "required": False, "type": "binary",
             "initial-default": "00ff"}]})
        meta["schemas"].append(schema)
        meta["current-schema-id"] = schema["schema-id"]
        meta["last-column-id"] = new_id + 1
        evolved = location.replace(".metadata.json", "-evolved.metadata.json")
        with open(evolved.removeprefix("file://"), "w") as f:
            json.dump(meta, f)
        c.execute("UPDATE iceberg_tables SET metadata_location = %s, previous_metadata_location = %s "
                  "WHERE table_name = 'tuple'", (evolved, location))
    conn.execute("DROP TABLE IF EXISTS iceberg_tuple_back")
    out = subprocess.run([pgarrow_bin(), "import", "-d", url, "--quiet", "--iceberg", cat_url, "--lake-table",
                          "ev.tuple", "--into", "iceberg_tuple_back", "--create"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    want = conn.execute(f"SELECT id, region, day, at, 'before', '\\x00ff'::bytea FROM {events} ORDER BY id").fetchall()
    got = conn.execute("SELECT id, region, day, at, note, blob FROM iceberg_tuple_back ORDER BY id").fetchall()
    assert got == want
    # Decimal and boolean identity partitions: the tuple holds a decimal as its unscaled
    # big-endian bytes, read as the column's decimal (negative values and NULL included).
    ice(url, cat_url, "-q", f"SELECT id, ((id % 4) - 1.5 + 0.25)::numeric(10,2) AS price, "
        f"CASE WHEN id % 5 = 0 THEN NULL ELSE id % 2 = 0 END AS flag FROM {events}",
        "--lake-table", "ev.dec", "--files-by", "price", "--files-by", "flag", warehouse=warehouse)
    for task in pyiceberg(cat_url).load_table("ev.dec").scan().plan_files():
        local = task.file.file_path.removeprefix("file://")
        pq.write_table(pq.read_table(local).drop_columns(["price", "flag"]), local)
    conn.execute("DROP TABLE IF EXISTS iceberg_dec_back")
    out = subprocess.run([pgarrow_bin(), "import", "-d", url, "--quiet", "--iceberg", cat_url, "--lake-table",
                          "ev.dec", "--into", "iceberg_dec_back", "--create"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert conn.execute("SELECT id, price, flag FROM iceberg_dec_back ORDER BY id").fetchall() == conn.execute(
        f"SELECT id, ((id % 4) - 1.5 + 0.25)::numeric(10,2), CASE WHEN id % 5 = 0 THEN NULL ELSE id % 2 = 0 END "
        f"FROM {events} ORDER BY id").fetchall()


def test_gzipped_metadata_unsigned_snapshot_ids_and_empty_tables_import(url, conn, catalog, events):
    """Metadata files other writers make: gzip-compressed (`write.metadata.compression-codec`),
    snapshot IDs printed as unsigned numbers past 2^63-1, and a table with no snapshot yet (an
    empty table of its columns)."""
    import gzip

    import psycopg

    cat_url, warehouse = catalog
    ice(url, cat_url, "-q", f"SELECT id, region FROM {events} WHERE id <= 50", "--lake-table", "ev.odd",
        warehouse=warehouse)

    def repoint(edit, gz):
        with psycopg.connect(cat_url, autocommit=True) as c:
            (location,) = c.execute(
                "SELECT metadata_location FROM iceberg_tables WHERE table_name = 'odd'").fetchone()
            local = location.removeprefix("file://")
            raw = open(local, "rb").read()
            meta = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
            edit(meta)
            body = json.dumps(meta).encode()
            new = local.replace(".metadata.json", "-x.gz.metadata.json" if gz else "-x.metadata.json")
            with open(new, "wb") as f:
                f.write(gzip.compress(body) if gz else body)
            c.execute("UPDATE iceberg_tables SET metadata_location = %s WHERE table_name = 'odd'", (new,))

    def load():
        conn.execute("DROP TABLE IF EXISTS iceberg_odd_back")
        out = subprocess.run([pgarrow_bin(), "import", "-d", url, "--quiet", "--iceberg", cat_url, "--lake-table",
                              "ev.odd", "--into", "iceberg_odd_back", "--create"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return conn.execute("SELECT id, region FROM iceberg_odd_back ORDER BY id").fetchall()

    want = conn.execute(f"SELECT id, region FROM {events} WHERE id <= 50 ORDER BY id").fetchall()
    repoint(lambda meta: None, gz=True)
    assert load() == want

    def unsigned(meta):
        old = meta["current-snapshot-id"]
        big = 2**63 + 5
        meta["current-snapshot-id"] = big
        for s in meta["snapshots"]:
            if s["snapshot-id"] == old:
                s["snapshot-id"] = big
        for ref in meta.get("refs", {}).values():
            if ref["snapshot-id"] == old:
                ref["snapshot-id"] = big

    repoint(unsigned, gz=False)
    assert load() == want
    # An append reads them as its parent's too: no earlier snapshot's files are lost.
    ice(url, cat_url, "-q", f"SELECT id, region FROM {events} WHERE id > 50 AND id <= 60", "--lake-table",
        "ev.odd", "--if-exists", "append")
    assert load() == conn.execute(f"SELECT id, region FROM {events} WHERE id <= 60 ORDER BY id").fetchall()
    # A table with no snapshot: its columns, no rows.
    pyiceberg(cat_url, warehouse).create_table("ev.empty", schema=pa.schema([
        ("id", pa.int64()), ("name", pa.string()), ("point", pa.struct([("x", pa.int32()), ("tags", pa.list_(pa.string()))])),
        ("attrs", pa.map_(pa.string(), pa.int64()))]))
    conn.execute("DROP TABLE IF EXISTS iceberg_empty_back")
    out = subprocess.run([pgarrow_bin(), "import", "-d", url, "--quiet", "--iceberg", cat_url, "--lake-table",
                          "ev.empty", "--into", "iceberg_empty_back", "--create"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert conn.execute("SELECT count(*) FROM iceberg_empty_back").fetchone() == (0,)
    cols = conn.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                        "'iceberg_empty_back'::regclass AND attnum > 0 ORDER BY attnum").fetchall()
    # Nested columns too, made as any import makes them (jsonb by default).
    assert cols == [("id", "bigint"), ("name", "text"), ("point", "jsonb"), ("attrs", "jsonb")], cols


def _commit_snapshot(cat_url, table, meta, at, snapshot, suffix):
    """Commits `snapshot` (a dict of the specification's snapshot fields) on top of the table
    metadata `meta` read from `at`, as a writer does: the next metadata file (`at` with
    `suffix`), the snapshot current on `main`, and the catalog's pointer swapped to it; the new
    metadata file's location."""
    import time

    import psycopg

    now = int(time.time() * 1000)
    snapshot = {"timestamp-ms": now, **snapshot}
    meta["snapshots"].append(snapshot)
    meta["current-snapshot-id"] = snapshot["snapshot-id"]
    meta["last-sequence-number"] = snapshot["sequence-number"]
    meta["last-updated-ms"] = now
    meta["refs"] = {"main": {"snapshot-id": snapshot["snapshot-id"], "type": "branch"}}
    meta.setdefault("snapshot-log", []).append({"snapshot-id": snapshot["snapshot-id"], "timestamp-ms": now})
    new = at.replace(".metadata.json", f"-{suffix}.metadata.json")
    with open(new.removeprefix("file://"), "w") as f:
        json.dump(meta, f)
    with psycopg.connect(cat_url, autocommit=True) as c:
        c.execute("UPDATE iceberg_tables SET metadata_location = %s, previous_metadata_location = %s "
                  "WHERE table_name = %s", (new, at, table))
    return new


def test_equality_deletes_of_another_writer_are_applied(url, conn, catalog, events, duckdb_iceberg):
    """Equality deletes (rows deleted by value, as Flink's and other streaming sinks write
    them): a snapshot adds an equality delete file on `region` holding 'eu' and NULL. The rows
    of the data files written before it whose region equals one of those (a NULL equal to a
    NULL) are left out; rows appended after it stay. The delete file, its manifest and the
    snapshot are laid out as the specification says (no writer here writes equality deletes:
    pyiceberg 0.12 does not); pyiceberg's own manifest writer writes the manifest."""
    import psycopg
    import pyarrow.parquet as pq
    from pyiceberg.manifest import (DataFile, DataFileContent, FileFormat, ManifestContent, ManifestEntry,
                                    ManifestEntryStatus, ManifestWriterV2, write_manifest_list)
    from pyiceberg.typedef import Record

    cat_url, warehouse = catalog
    ice(url, cat_url, "-q", f"SELECT id, region FROM {events} WHERE id <= 100", "--lake-table", "ev.eq",
        "--max-file-rows", "40", warehouse=warehouse)
    t = pyiceberg(cat_url).load_table("ev.eq")
    region_id = next(f.field_id for f in t.schema().fields if f.name == "region")
    location = t.location()
    # The delete file: the values of its equality column, under the column's field ID.
    deletes = pa.table({"region": pa.array(["eu", None], pa.string())}).cast(pa.schema([
        pa.field("region", pa.string(), metadata={"PARQUET:field_id": str(region_id)})]))
    delete_path = f"{location}/data/eq-deletes-1.parquet"
    pq.write_table(deletes, delete_path.removeprefix("file://"))
    size = os.path.getsize(delete_path.removeprefix("file://"))

    class DeleteManifestWriter(ManifestWriterV2):
        def content(self):
            return ManifestContent.DELETES

        @property
        def _meta(self):
            return {**super()._meta, "content": "deletes"}

    snapshot_id, parent = 7_000_000_001, t.current_snapshot()
    sequence = t.metadata.last_sequence_number + 1
    manifest_path = f"{location}/metadata/eq-deletes-m0.avro"
    with DeleteManifestWriter(t.spec(), t.schema(), t.io.new_output(manifest_path), snapshot_id, "null") as w:
        w.add(ManifestEntry.from_args(
            status=ManifestEntryStatus.ADDED, snapshot_id=snapshot_id,
            data_file=DataFile.from_args(
                content=DataFileContent.EQUALITY_DELETES, file_path=delete_path, file_format=FileFormat.PARQUET,
                partition=Record(), record_count=2, file_size_in_bytes=size, equality_ids=[region_id])))
    manifests = [*parent.manifests(t.io), w.to_manifest_file()]
    list_path = f"{location}/metadata/snap-{snapshot_id}-eq.avro"
    with write_manifest_list(format_version=2, output_file=t.io.new_output(list_path), snapshot_id=snapshot_id,
                             parent_snapshot_id=parent.snapshot_id, sequence_number=sequence,
                             avro_compression="null") as lw:
        lw.add_manifests(manifests)
    with psycopg.connect(cat_url, autocommit=True) as c:
        (at,) = c.execute("SELECT metadata_location FROM iceberg_tables WHERE table_name = 'eq'").fetchone()
    meta = json.loads(open(at.removeprefix("file://")).read())
    _commit_snapshot(cat_url, "eq", meta, at, {
        "snapshot-id": snapshot_id, "parent-snapshot-id": parent.snapshot_id, "sequence-number": sequence,
        "manifest-list": list_path, "schema-id": meta["current-schema-id"],
        "summary": {"operation": "delete", "added-delete-files": "1", "added-equality-deletes": "2"}}, "eq")
    # Rows appended after the delete are not deleted by it, 'eu' and NULL included.
    ice(url, cat_url, "-q", f"SELECT id, region FROM {events} WHERE id > 100 AND id <= 120", "--lake-table",
        "ev.eq", "--if-exists", "append")

    def load(into):
        conn.execute(f"DROP TABLE IF EXISTS {into}")
        out = subprocess.run([pgarrow_bin(), "import", "-d", url, "--quiet", "--iceberg", cat_url, "--lake-table",
                              "ev.eq", "--into", into, "--create"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return conn.execute(f"SELECT id, region FROM {into} ORDER BY id").fetchall()

    want = conn.execute(f"SELECT id, region FROM {events} WHERE (id <= 100 AND region IS DISTINCT FROM 'eu' "
                        f"AND region IS NOT NULL) OR (id > 100 AND id <= 120) ORDER BY id").fetchall()
    assert len(want) == 50 + 20
    assert load("iceberg_eq_back") == want
    # DuckDB's iceberg extension applies them the same way.
    metadata = pyiceberg(cat_url).load_table("ev.eq").metadata_location
    got = duckdb_iceberg(f"SELECT id, region FROM iceberg_scan('{metadata}') ORDER BY id")
    assert [tuple(r) for r in got] == want


def test_files_without_field_ids_read_through_the_tables_name_mapping(url, conn, catalog):
    """Files added to a table as they are (pyiceberg's `add_files`, Spark's `add_files` and
    migrations write no field IDs) are read through the table's name mapping
    (`schema.name-mapping.default`): each column, struct field, list element and map key and
    value by the names the mapping gives its field ID, so a column renamed since still reads
    its values (by its old name in the mapping), never NULL in their place. pyiceberg reads
    the same rows."""
    import pyarrow.parquet as pq
    from pyiceberg.types import StringType

    cat_url, warehouse = catalog
    cat = pyiceberg(cat_url, warehouse)
    point = pa.struct([("x", pa.int64()), ("label", pa.string())])
    data = pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "name": ["a", None, "c"],
        "point": pa.array([{"x": 1, "label": "p"}, None, {"x": 3, "label": None}], point),
        "tags": pa.array([["t1", None], [], None], pa.list_(pa.string())),
        "attrs": pa.array([[("k", 1), ("j", 2)], None, []], pa.map_(pa.string(), pa.int64())),
    })
    cat.create_namespace("nm")
    t = cat.create_table("nm.added", schema=data.schema)
    path = warehouse / "added-1.parquet"
    pq.write_table(data, path)
    t.add_files([str(path)])
    assert "schema.name-mapping.default" in t.properties
    # Renamed since: the mapping keeps the names the files use.
    with t.update_schema() as update:
        update.rename_column("name", "title")
        update.rename_column("point.label", "tag")
        update.add_column("later", StringType())
    t = cat.load_table("nm.added")
    want = t.scan().to_arrow().to_pylist()
    assert [r["title"] for r in want] == ["a", None, "c"]

    conn.execute("DROP TABLE IF EXISTS iceberg_nm")
    out = subprocess.run([pgarrow_bin(), "import", "-d", url, "--quiet", "--iceberg", cat_url, "--lake-table",
                          "nm.added", "--into", "iceberg_nm", "--create"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = conn.execute("SELECT id, title, point::text, tags, attrs::text, later FROM iceberg_nm ORDER BY id").fetchall()
    assert [r[0] for r in got] == [1, 2, 3]
    assert [r[1] for r in got] == [r["title"] for r in want]
    assert [json.loads(r[2]) if r[2] else None for r in got] == [r["point"] for r in want]
    assert [r[3] for r in got] == [r["tags"] for r in want]
    assert [dict(json.loads(r[4])) if r[4] else None for r in got] == [dict(r["attrs"]) if r["attrs"] is not None else None for r in want]
    assert [r[5] for r in got] == [None, None, None]


def test_a_structs_fields_are_read_by_field_id_never_by_place(url, conn, catalog):
    """A struct's field dropped and another added in its place (same count, other name): the
    older files' values of the dropped field are not read as the new one's (which is NULL in
    them), and a renamed field keeps its values. pyiceberg reads the same rows."""
    from pyiceberg.types import StringType

    cat_url, warehouse = catalog
    cat = pyiceberg(cat_url, warehouse)
    point = pa.struct([("x", pa.int64()), ("gone", pa.string())])
    cat.create_namespace("nest")
    t = cat.create_table("nest.points", schema=pa.schema([("id", pa.int64()), ("p", point)]))
    t.append(pa.table({"id": pa.array([1, 2], pa.int64()),
                       "p": pa.array([{"x": 1, "gone": "old"}, None], point)}))
    with t.update_schema() as update:
        update.delete_column(("p", "gone"))
        update.add_column(("p", "fresh"), StringType())
        update.rename_column("p.x", "xx")
    t = cat.load_table("nest.points")
    new = pa.struct([("xx", pa.int64()), ("fresh", pa.string())])
    t.append(pa.table({"id": pa.array([3], pa.int64()), "p": pa.array([{"xx": 3, "fresh": "new"}], new)}))
    want = sorted(cat.load_table("nest.points").scan().to_arrow().to_pylist(), key=lambda r: r["id"])
    assert want[0]["p"] == {"xx": 1, "fresh": None}
    conn.execute("DROP TABLE IF EXISTS iceberg_nest")
    out = subprocess.run([pgarrow_bin(), "import", "-d", url, "--quiet", "--iceberg", cat_url, "--lake-table",
                          "nest.points", "--into", "iceberg_nest", "--create"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    got = conn.execute("SELECT id, p::text FROM iceberg_nest ORDER BY id").fetchall()
    assert [(i, json.loads(p) if p else None) for i, p in got] == [(r["id"], r["p"]) for r in want]


def _puffin_deletion_vector(positions, data_file, snapshot_id, sequence):
    """A Puffin file of one `deletion-vector-v1` blob deleting `positions` of `data_file`, laid
    out as the Puffin specification says (the blob: its length, big-endian, the magic number
    D1 D3 39 64, a portable 64-bit roaring bitmap (pyroaring's), the CRC-32 of both,
    big-endian); (bytes, blob offset, blob length)."""
    import zlib

    from pyroaring import BitMap64

    body = bytes([0xD1, 0xD3, 0x39, 0x64]) + BitMap64(positions).serialize()
    blob = len(body).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    footer = json.dumps({"blobs": [{
        "type": "deletion-vector-v1", "fields": [2147483645], "snapshot-id": snapshot_id,
        "sequence-number": sequence, "offset": 4, "length": len(blob),
        "properties": {"referenced-data-file": data_file, "cardinality": str(len(positions))}}]}).encode()
    out = b"PFA1" + blob + b"PFA1" + footer + len(footer).to_bytes(4, "little") + bytes(4) + b"PFA1"
    return out, 4, len(blob)


def test_a_format_version_3_table_reads_its_deletion_vectors_defaults_and_nanoseconds(url, conn, catalog,
                                                                                       duckdb_iceberg):
    """Format version 3: a data file's rows deleted by a deletion vector (a blob of a Puffin
    file, as Spark 4 and Iceberg 1.8+ write them), a struct field added with an
    `initial-default` (the older file's rows read it), and a `timestamp_ns` column (whole
    microseconds load; a value that is not is refused, naming the column, unless
    `--nanoseconds round`). No writer here writes version 3 (pyiceberg 0.12 refuses to): the
    metadata, the manifests (pyiceberg's writer, at version 3) and the Puffin file are laid out
    as the specification says, and pyiceberg's and DuckDB's readers read the same rows."""
    import psycopg
    import pyarrow.parquet as pq
    from pyiceberg.manifest import (DataFile, DataFileContent, FileFormat, ManifestContent, ManifestEntry,
                                    ManifestEntryStatus, ManifestWriterV2, write_manifest_list)
    from pyiceberg.typedef import Record

    cat_url, warehouse = catalog
    cat = pyiceberg(cat_url, warehouse)
    cat.create_namespace("v3")
    point = pa.struct([("x", pa.int64())])
    t = cat.create_table("v3.t", schema=pa.schema([("id", pa.int64()), ("note", pa.string()), ("p", point)]))
    t.append(pa.table({"id": pa.array(range(10), pa.int64()), "note": [f"n{i}" for i in range(10)],
                       "p": pa.array([{"x": i * 10} for i in range(10)], point)}))
    t = cat.load_table("v3.t")
    (first,) = [task.file.file_path for task in t.scan().plan_files()]
    location = t.location()
    local = lambda p: p.removeprefix("file://")  # noqa: E731

    class V3Writer(ManifestWriterV2):
        kind = "data"

        def content(self):
            return ManifestContent.DELETES if self.kind == "deletes" else ManifestContent.DATA

        @property
        def version(self):
            return 3

        @property
        def _meta(self):
            return {**super()._meta, "format-version": "3", "content": self.kind}

        def new_writer(self):
            from pyiceberg.avro.file import AvroOutputFile

            return AvroOutputFile[ManifestEntry](
                output_file=self._output_file, file_schema=self._with_partition(3),
                record_schema=self._with_partition(3), schema_name="manifest_entry", metadata=self._meta)

    with psycopg.connect(cat_url, autocommit=True) as c:
        (at,) = c.execute("SELECT metadata_location FROM iceberg_tables WHERE table_name = 't'").fetchone()
    meta = json.loads(open(local(at)).read())
    # The schema evolves: p.y (a long whose initial default is 42) and tns (timestamp_ns).
    schema = json.loads(json.dumps(meta["schemas"][-1]))
    last = meta["last-column-id"]
    y_id, tns_id = last + 1, last + 2
    for f in schema["fields"]:
        if f["name"] == "p":
            f["type"]["fields"].append({"id": y_id, "name": "y", "required": False, "type": "long",
                                        "initial-default": 42, "write-default": 42})
    schema["fields"].append({"id": tns_id, "name": "tns", "required": False, "type": "timestamp_ns"})
    g_id = tns_id + 1
    schema["fields"].append({"id": g_id, "name": "g", "required": False, "type": "geometry('srid:4326')"})
    # A variant column (pyiceberg 0.12 reads no table that has one: it joins the schema once
    # they have read the table; the file holds it from the start).
    v_id = g_id + 1
    schema["schema-id"] = meta["current-schema-id"] + 1
    ids = {f["name"]: f["id"] for f in schema["fields"]}
    x_id = next(f for f in schema["fields"] if f["name"] == "p")["type"]["fields"][0]["id"]
    fid = lambda n, ty, i: pa.field(n, ty, metadata={"PARQUET:field_id": str(i)})  # noqa: E731
    # A second data file, written under the new schema.
    second_schema = pa.schema([
        fid("id", pa.int64(), ids["id"]), fid("note", pa.string(), ids["note"]),
        fid("p", pa.struct([fid("x", pa.int64(), x_id), fid("y", pa.int64(), y_id)]), ids["p"]),
        fid("tns", pa.timestamp("ns"), tns_id), fid("g", pa.binary(), g_id),
        # (the group's fields numbered too, past the table's: pyiceberg reads no file with a
        # field without an ID)
        fid("v", pa.struct([fid("metadata", pa.binary(), v_id + 100), fid("value", pa.binary(), v_id + 101)]),
            v_id)])
    second = pa.table({"id": pa.array([10, 11], pa.int64()), "note": ["ten", None],
                       "p": [{"x": 100, "y": 1}, {"x": None, "y": None}],
                       "tns": pa.array([1_795_687_200_123_456_000, None], pa.timestamp("ns")),
                       # POINT(1 2) as WKB.
                       "g": [bytes.fromhex("0101000000000000000000f03f0000000000000040"), None],
                       # Variants (the Parquet Variant encoding): the int8 42; the short string "hi".
                       "v": [{"metadata": b"\x01\x00\x00", "value": b"\x0c\x2a"},
                             {"metadata": b"\x01\x00\x00", "value": b"\x09hi"}]}).cast(second_schema)
    second_path = f"{location}/data/v3-second.parquet"
    pq.write_table(second, local(second_path))
    parent = t.current_snapshot()
    snapshot_id, sequence = 7_000_000_003, meta["last-sequence-number"] + 1
    # The deletion vector of the first file: positions 1, 3 and 7.
    puffin, offset, length = _puffin_deletion_vector([1, 3, 7], first, snapshot_id, sequence)
    puffin_path = f"{location}/data/v3-dv.puffin"
    open(local(puffin_path), "wb").write(puffin)
    data_manifest = f"{location}/metadata/v3-data-m0.avro"
    dataw = V3Writer(t.spec(), t.schema(), t.io.new_output(data_manifest), snapshot_id, "null")
    with dataw as w:
        w.add(ManifestEntry.from_args(
            status=ManifestEntryStatus.ADDED, snapshot_id=snapshot_id,
            data_file=DataFile.from_args(
                _table_format_version=3, content=DataFileContent.DATA, file_path=second_path, file_format=FileFormat.PARQUET,
                partition=Record(), record_count=2, file_size_in_bytes=os.path.getsize(local(second_path)))))
    delete_manifest = f"{location}/metadata/v3-dv-m0.avro"
    dw = V3Writer(t.spec(), t.schema(), t.io.new_output(delete_manifest), snapshot_id, "null")
    dw.kind = "deletes"
    with dw as w:
        w.add(ManifestEntry.from_args(
            status=ManifestEntryStatus.ADDED, snapshot_id=snapshot_id,
            data_file=DataFile.from_args(
                _table_format_version=3, content=DataFileContent.POSITION_DELETES, file_path=puffin_path, file_format=FileFormat.PUFFIN,
                partition=Record(), record_count=3, file_size_in_bytes=len(puffin), referenced_data_file=first,
                content_offset=offset, content_size_in_bytes=length)))
    list_path = f"{location}/metadata/snap-{snapshot_id}-v3.avro"
    with write_manifest_list(format_version=2, output_file=t.io.new_output(list_path), snapshot_id=snapshot_id,
                             parent_snapshot_id=parent.snapshot_id, sequence_number=sequence,
                             avro_compression="null") as lw:
        lw.add_manifests([*parent.manifests(t.io), dataw.to_manifest_file(), dw.to_manifest_file()])
    meta["format-version"] = 3
    meta["next-row-id"] = 12
    meta["schemas"].append(schema)
    meta["current-schema-id"] = schema["schema-id"]
    meta["last-column-id"] = v_id
    for s in meta["snapshots"]:
        s.setdefault("first-row-id", 0)
        s.setdefault("added-rows", 10)
    new = _commit_snapshot(cat_url, "t", meta, at, {
        "snapshot-id": snapshot_id, "parent-snapshot-id": parent.snapshot_id, "sequence-number": sequence,
        "manifest-list": list_path, "schema-id": schema["schema-id"], "first-row-id": 10, "added-rows": 2,
        "summary": {"operation": "overwrite", "added-data-files": "1", "added-delete-files": "1"}}, "v3")

    def load(into, *more):
        conn.execute(f"DROP TABLE IF EXISTS {into}")
        return subprocess.run([pgarrow_bin(), "import", "-d", url, "--quiet", "--iceberg", cat_url, "--lake-table",
                               "v3.t", "--into", into, "--create", *more], capture_output=True, text=True, timeout=120)

    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    out = load("iceberg_v3")
    assert out.returncode == 0, out.stderr
    got = [(i, n, json.loads(p) if p else None, ts) for i, n, p, ts in conn.execute(
        "SELECT id, note, p::text, tns FROM iceberg_v3 ORDER BY id").fetchall()]
    import datetime as dt

    stamp = dt.datetime(2026, 11, 26, 10, 0, 0, 123456)
    want = [(i, f"n{i}", {"x": i * 10, "y": 42}, None) for i in range(10) if i not in (1, 3, 7)]
    want += [(10, "ten", {"x": 100, "y": 1}, stamp), (11, None, {"x": None, "y": None}, None)]
    assert got == want
    # The geometry column: PostGIS's, with the type's SRID.
    assert conn.execute("SELECT id, ST_AsText(g), ST_SRID(g) FROM iceberg_v3 WHERE g IS NOT NULL").fetchall() == [
        (10, "POINT(1 2)", 4326)]
    # pyiceberg and DuckDB read the same rows.
    theirs = cat.load_table("v3.t").scan(selected_fields=("id", "note", "p")).to_arrow().to_pylist()
    theirs = sorted(theirs, key=lambda r: r["id"])
    assert [(r["id"], r["note"], r["p"]) for r in theirs] == [(i, n, p) for i, n, p, _ in want]
    ducks = duckdb_iceberg(f"SELECT id, note, p.x, p.y FROM iceberg_scan('{new}') ORDER BY id")
    assert [tuple(r) for r in ducks] == [(i, n, p["x"], p["y"]) for i, n, p, _ in want]
    # The variant column joins the schema: jsonb, the older file's rows NULL.
    with_variant = json.loads(json.dumps(schema))
    with_variant["schema-id"] += 1
    with_variant["fields"].append({"id": v_id, "name": "v", "required": False, "type": "variant"})
    meta["schemas"].append(with_variant)
    meta["current-schema-id"] = with_variant["schema-id"]
    newer = new.replace("-v3.metadata.json", "-v3-variant.metadata.json")
    with open(local(newer), "w") as f:
        json.dump(meta, f)
    with psycopg.connect(cat_url, autocommit=True) as c:
        c.execute("UPDATE iceberg_tables SET metadata_location = %s, previous_metadata_location = %s "
                  "WHERE table_name = 't'", (newer, new))
    out = load("iceberg_v3_variant")
    assert out.returncode == 0, out.stderr
    assert conn.execute("SELECT id, v FROM iceberg_v3_variant WHERE id IN (0, 10, 11) ORDER BY id").fetchall() == [
        (0, None), (10, 42), (11, "hi")]
    assert conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                        "'iceberg_v3_variant'::regclass AND attname = 'v'").fetchone() == ("jsonb",)
    # A nanosecond value that is not whole microseconds: refused, naming the column, unless
    # rounded (the second file written again so, its rows the same).
    pq.write_table(second.set_column(3, second_schema.field("tns"), pa.array(
        [1_795_687_200_123_456_001, None], pa.timestamp("ns"))), local(second_path))
    out = load("iceberg_v3_ns")
    assert out.returncode == 1 and "\"tns\"" in out.stderr and "--nanoseconds round" in out.stderr, out.stderr
    out = load("iceberg_v3_ns", "--nanoseconds", "round")
    assert out.returncode == 0, out.stderr
    assert conn.execute("SELECT tns FROM iceberg_v3_ns WHERE id = 10").fetchone() == (stamp,)
