"""Exports committed into Delta Lake tables (`pgarrow export --delta LOCATION`, Python
`export_delta`), read back by readers nobody here wrote: the `deltalake` package (delta-rs),
polars' `scan_delta`, and DuckDB 1.5.5's delta extension (delta-kernel-rs). Every type of the
mapping as the server has it, statistics readers prune by, create / append / replace /
refuse, one version per export however many connections, checkpoints readers start from,
tables deltalake wrote appended to by pgarrow and the other way round, concurrent appends,
an object store as the location, and exports that fail, are cancelled or killed leaving the
table as it was."""

import datetime
import json
import shutil
import signal
import subprocess
import uuid
from decimal import Decimal

import deltalake
import pytest

from test_ducklake import export, normalized, pgarrow_bin, wait_for_backend
from test_object_stores import fresh_bucket, store, stores  # noqa: F401 (fixtures)

TYPES = """
CREATE TABLE {name} (
    id int PRIMARY KEY, small smallint, big bigint, amount numeric(12,2), ratio float8,
    flag boolean, label text, code varchar(8), day date, stamp timestamp, stamp_tz timestamptz,
    raw bytea, doc jsonb, tags int[]
);
INSERT INTO {name} VALUES
 (1, -32768, 9223372036854775807, -1234567890.12, 1.5, true, 'héllo', 'ab',
  '2026-11-26', '2026-11-26 10:11:12.345678', '2026-11-26 10:11:12+02', '\\x00ff',
  '{{"a": [1, 2]}}', '{{1,2,NULL}}'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, 7, -1, 0.05, -0.25, false, '', 'z', '0001-01-01', '1999-12-31 23:59:59', '1970-01-01 00:00:00+00', '\\x',
  '[]', '{{}}');
"""

COLUMNS = "id, small, big, amount, ratio, flag, label, code, day, stamp, stamp_tz, raw, doc, tags"


@pytest.fixture(scope="module")
def typed(conn):
    conn.execute("DROP TABLE IF EXISTS delta_types")
    conn.execute(TYPES.format(name="delta_types"))
    return "delta_types"


def server_rows(conn, typed):
    rows = conn.execute(
        f"SELECT id, small, big, amount, ratio, flag, label, code, day, stamp, stamp_tz, raw, doc::text, tags "
        f"FROM {typed} ORDER BY id"
    ).fetchall()
    return [normalized(r) for r in rows]


def same(got, want):
    """Rows equal, JSON compared as documents (each writer spaces it its own way)."""
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        g, w = list(normalized(g)), list(w)
        gdoc, wdoc = g.pop(12), w.pop(12)
        assert g == w, (g, w)
        assert (gdoc is None and wdoc is None) or json.loads(gdoc) == json.loads(wdoc)


def add_actions(dt) -> list[dict]:
    """The table's `add` actions, flattened (deltalake gives an arro3 table: read through
    the Arrow C stream)."""
    import pyarrow as pa

    return pa.table(dt.get_add_actions(flatten=True)).to_pylist()


def log_versions(table) -> list[int]:
    return sorted(int(p.name.split(".")[0]) for p in (table / "_delta_log").glob("*.json"))


def data_files(table) -> list[str]:
    return sorted(
        str(p.relative_to(table)) for p in table.rglob("*.parquet") if "_delta_log" not in p.parts
    )


def test_every_type_reads_back_in_three_readers_as_the_server_has_it(url, conn, tmp_path, typed, duckdb_delta):
    table = tmp_path / "types"
    report = json.loads(export(url, "-t", typed, "--delta", str(table)).stdout)
    assert report["format"] == "delta" and report["created"] and report["version"] == 0 and report["rows"] == 3
    want = server_rows(conn, typed)
    # delta-rs.
    dt = deltalake.DeltaTable(str(table))
    got = sorted(dt.to_pyarrow_table().select(COLUMNS.split(", ")).to_pylist(), key=lambda r: r["id"])
    same([tuple(r.values()) for r in got], want)
    schema = {f.name: str(f.type) for f in dt.schema().fields}
    assert schema["amount"] == 'PrimitiveType("decimal(12,2)")', schema
    assert schema["stamp"] == 'PrimitiveType("timestamp_ntz")' and schema["stamp_tz"] == 'PrimitiveType("timestamp")'
    # A timestamp without time zone asks for that feature, and nothing else.
    protocol = dt.protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (3, 7)
    assert protocol.reader_features == ["timestampNtz"]
    assert protocol.writer_features == ["timestampNtz"]
    # polars.
    import polars as pl

    frame = pl.scan_delta(str(table)).select(COLUMNS.split(", ")).sort("id").collect()
    same([tuple(r) for r in frame.rows()], want)
    # DuckDB's delta extension.
    got = duckdb_delta(f"SELECT {COLUMNS.replace('doc', 'doc::varchar')} FROM delta_scan('{table}') ORDER BY id")
    same(got, want)
    # The provenance rides in the commit.
    info = dt.history(1)[0]
    assert info["operation"] == "CREATE TABLE AS SELECT" and info["engineInfo"].startswith("pgarrow/")
    assert info["pgarrow"]["rows"] == 3 and info["pgarrow"]["wal_lsn"]
    # A table without such timestamps asks for no feature at all.
    plain = tmp_path / "plain"
    export(url, "-q", f"SELECT id, label FROM {typed}", "--delta", str(plain))
    p = deltalake.DeltaTable(str(plain)).protocol()
    assert (p.min_reader_version, p.min_writer_version, p.reader_features, p.writer_features) == (1, 2, None, None)


def test_statistics_are_exact_and_readers_prune_by_them(url, conn, tmp_path, typed, duckdb_delta):
    table = tmp_path / "stats"
    # One file per row: each file's bounds are its row's values.
    export(url, "-t", typed, "--delta", str(table), "--max-file-rows", "1", "--partitions", "1")
    dt = deltalake.DeltaTable(str(table))
    actions = add_actions(dt)
    assert len(actions) == 3
    by_id = {a["min.id"]: a for a in actions}
    one = by_id[1]
    assert one["num_records"] == 1 and one["max.id"] == 1
    assert one["min.big"] == 9223372036854775807 and one["min.amount"] == Decimal("-1234567890.12")
    assert one["min.label"] == "héllo" and one["min.day"] == datetime.date(2026, 11, 26)
    # Timestamps to the millisecond: the minimum rounded down, the maximum up.
    assert one["min.stamp_tz"] == datetime.datetime(2026, 11, 26, 8, 11, 12, tzinfo=datetime.timezone.utc)
    assert one["min.stamp"] == datetime.datetime(2026, 11, 26, 10, 11, 12, 345000)
    assert one["max.stamp"] == datetime.datetime(2026, 11, 26, 10, 11, 12, 346000)
    # The year-1 date is a bound too; floats and the nested list have none.
    assert by_id[3]["min.day"] == datetime.date(1, 1, 1)
    assert "min.ratio" not in one or one["min.ratio"] is None
    nulls = [k for k in one if k.startswith("null_count.")]
    assert by_id[2]["null_count.small"] == 1 and "null_count.label" in nulls
    # Filters read through the statistics give the rows the server gives.
    for where in ["big < 0", "day < DATE '1000-01-01'", "stamp_tz >= TIMESTAMPTZ '2026-01-01 00:00:00+00'", "label = ''"]:
        want = conn.execute(f"SELECT id FROM {typed} WHERE {where} ORDER BY id").fetchall()
        assert duckdb_delta(f"SELECT id FROM delta_scan('{table}') WHERE {where} ORDER BY id") == want, where
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    got = dt.to_pyarrow_dataset().to_table(filter=ds.field("big") < 0, columns=["id"])
    assert got["id"].to_pylist() == [3]
    assert pc.sum(dt.to_pyarrow_table(filters=[("id", ">", 1)])["id"]).as_py() == 5


def test_create_refuse_append_replace_each_one_version(url, conn, tmp_path, typed):
    table = tmp_path / "t"
    export(url, "-t", typed, "--delta", str(table))
    # Refused when it exists and nothing says what to do: the table as it was, no file left.
    files = data_files(table)
    out = export(url, "-t", typed, "--delta", str(table), check=False)
    assert out.returncode != 0 and "exists (version 0)" in out.stderr and "--if-exists" in out.stderr
    assert data_files(table) == files and log_versions(table) == [0]
    # Appended, over three connections: one version.
    report = json.loads(export(url, "-t", typed, "--delta", str(table), "--if-exists", "append", "--partitions", "3",
                               "--partition-by", "id").stdout)
    assert report["version"] == 1 and not report["created"] and report["files"] >= 1
    assert deltalake.DeltaTable(str(table)).to_pyarrow_table().num_rows == 6
    # Another type is refused, named; nothing committed, nothing left.
    files = data_files(table)
    out = export(url, "-q", f"SELECT id::bigint AS id, small, big, amount, ratio, flag, label, code, day, stamp, "
                 f"stamp_tz, raw, doc, tags FROM {typed}", "--delta", str(table), "--if-exists", "append", check=False)
    assert out.returncode != 0 and 'column "id" is integer in the table and long in the export' in out.stderr
    assert "typeWidening" in out.stderr
    assert data_files(table) == files and log_versions(table) == [0, 1]
    # Schema evolution: a new column is added (the earlier rows NULL in it), columns the export
    # lacks are NULL in its rows; all in the append's one version.
    report = json.loads(export(url, "-q", f"SELECT id, label, 'x'::text AS other FROM {typed} WHERE id = 1",
                               "--delta", str(table), "--if-exists", "append").stdout)
    assert report["version"] == 2
    dt = deltalake.DeltaTable(str(table))
    assert [f.name for f in dt.schema().fields][-1] == "other"
    rows = dt.to_pyarrow_table(columns=["id", "small", "other"]).to_pylist()
    assert sorted((r["id"], r["small"], r["other"]) for r in rows if r["other"]) == [(1, None, "x")]
    assert sum(1 for r in rows if r["other"] is None) == 6
    # Replaced (rows and columns) in one version; the old rows stay for time travel.
    report = json.loads(export(url, "-q", f"SELECT id, label FROM {typed} WHERE id < 3", "--delta", str(table),
                               "--if-exists", "replace").stdout)
    assert report["version"] == 3 and report["removed"] >= 3
    dt = deltalake.DeltaTable(str(table))
    assert sorted(dt.to_pyarrow_table().to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "label": "héllo"}, {"id": 2, "label": None},
    ]
    assert [f.name for f in dt.schema().fields] == ["id", "label"]
    dt.load_as_version(2)
    assert dt.to_pyarrow_table().num_rows == 7
    assert [h["operation"] for h in deltalake.DeltaTable(str(table)).history()] == [
        "CREATE OR REPLACE TABLE AS SELECT", "WRITE", "WRITE", "CREATE TABLE AS SELECT",
    ]


def test_partition_columns_written_read_and_appended_by_both(url, conn, tmp_path, duckdb_delta):
    conn.execute("DROP TABLE IF EXISTS delta_events")
    conn.execute(
        "CREATE TABLE delta_events AS SELECT i AS id, (ARRAY['eu', 'us', NULL, 'a/b c'])[i % 4 + 1] AS region, "
        "DATE '2026-01-01' + (i % 3) AS day, (i * 1.5)::numeric(10,1) AS v FROM generate_series(1, 400) i"
    )
    table = tmp_path / "events"
    report = json.loads(export(url, "-t", "delta_events", "--delta", str(table), "--files-by", "region",
                               "--files-by", "day", "--partitions", "2").stdout)
    # Each connection writes each of the 4 x 3 partitions it holds rows of.
    assert report["version"] == 0 and report["files"] in (12, 24)
    assert len({f.rsplit("/", 1)[0] for f in data_files(table)}) == 12
    dt = deltalake.DeltaTable(str(table))
    assert dt.metadata().partition_columns == ["region", "day"]
    # Hive directories, the NULL as Hive spells it, a slash escaped.
    dirs = sorted({f.split("/")[0] for f in data_files(table)})
    assert dirs == ["region=__HIVE_DEFAULT_PARTITION__", "region=a%2Fb%20c", "region=eu", "region=us"], dirs
    values = {(a["partition.region"], a["partition.day"]) for a in add_actions(dt)}
    assert (None, datetime.date(2026, 1, 1)) in values and ("a/b c", datetime.date(2026, 1, 3)) in values
    want = conn.execute("SELECT region, day, count(*), sum(v) FROM delta_events GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    sql = f"SELECT region, day, count(*), sum(v) FROM delta_scan('{table}') GROUP BY 1, 2 ORDER BY 1, 2"
    assert [(r, d, n, Decimal(str(s))) for r, d, n, s in duckdb_delta(sql)] == [
        (r, d, n, Decimal(str(s))) for r, d, n, s in want
    ]
    got = dt.to_pyarrow_table(filters=[("region", "=", "a/b c")]).num_rows
    assert got == conn.execute("SELECT count(*) FROM delta_events WHERE region = 'a/b c'").fetchone()[0]
    # deltalake appends to pgarrow's table, then pgarrow (without --files-by: the table's own).
    import pyarrow as pa

    extra = pa.table({
        "id": pa.array([1000], pa.int32()), "region": ["eu"], "day": pa.array([datetime.date(2026, 2, 1)]),
        "v": pa.array([Decimal("1.5")], pa.decimal128(10, 1)),
    })
    deltalake.write_deltalake(str(table), extra, mode="append")
    export(url, "-q", "SELECT * FROM delta_events WHERE id <= 4", "--delta", str(table), "--if-exists", "append")
    dt = deltalake.DeltaTable(str(table))
    assert dt.version() == 2 and dt.to_pyarrow_table().num_rows == 405
    # Other partitions than the table's are refused.
    out = export(url, "-t", "delta_events", "--delta", str(table), "--if-exists", "append", "--files-by", "day",
                 check=False)
    assert out.returncode != 0 and "partitioned by region, day, and the export by day" in out.stderr
    # A partition transform Delta has no form for.
    out = export(url, "-t", "delta_events", "--delta", str(tmp_path / "m"), "--files-by", "month(day)", check=False)
    assert out.returncode != 0 and "Delta partitions by column values" in out.stderr


def test_a_table_deltalake_wrote_takes_pgarrow_appends(url, conn, tmp_path):
    import pyarrow as pa

    table = tmp_path / "theirs"
    deltalake.write_deltalake(str(table), pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["a", "b"]}))
    export(url, "-q", "SELECT 3::bigint AS id, 'c' AS name", "--delta", str(table), "--if-exists", "append")
    dt = deltalake.DeltaTable(str(table))
    assert sorted(dt.to_pyarrow_table().to_pylist(), key=lambda r: r["id"])[-1] == {"id": 3, "name": "c"}
    assert dt.version() == 1
    # A column the table holds no NULL in (nullable: false) takes none.
    strict = tmp_path / "strict"
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    deltalake.write_deltalake(str(strict), pa.table({"id": [1]}, schema=schema))
    out = export(url, "-q", "SELECT NULL::bigint AS id", "--delta", str(strict), "--if-exists", "append", check=False)
    assert out.returncode != 0 and 'column "id" holds no NULL' in out.stderr
    export(url, "-q", "SELECT 2::bigint AS id", "--delta", str(strict), "--if-exists", "append")
    assert deltalake.DeltaTable(str(strict)).to_pyarrow_table().num_rows == 2


def test_incremental_runs_append_with_their_state_in_the_same_version(url, conn, tmp_path):
    """`--incremental-by COLUMN` into a Delta table: each run appends what changed since the
    run whose state the last such commit's `commitInfo` carries (no state file); another
    writer's versions in between do not hide it; a restart replaces the rows."""
    conn.execute("DROP TABLE IF EXISTS delta_inc")
    conn.execute("CREATE TABLE delta_inc (id bigint PRIMARY KEY, v text)")
    conn.execute("INSERT INTO delta_inc SELECT i, 'a' FROM generate_series(1, 100) i")
    table = tmp_path / "inc"

    def run(*extra, check=True):
        return export(url, "-t", "delta_inc", "--incremental-by", "id", "--delta", str(table), *extra, check=check)

    first = json.loads(run().stdout)
    assert first["created"] and first["first_run"] and first["rows"] == 100 and first["incremental"]["run"] == 1
    conn.execute("INSERT INTO delta_inc SELECT i, 'b' FROM generate_series(101, 130) i")
    second = json.loads(run("--partitions", "2").stdout)
    assert second["rows"] == 30 and not second["first_run"] and second["version"] == 1
    info = deltalake.DeltaTable(str(table)).history(1)[0]
    assert info["pgarrow"]["incremental"]["run"] == 2 and info["pgarrow"]["incremental"]["high_water"] == "130"
    # deltalake appends a version; the next run still finds the state beneath it.
    import pyarrow as pa

    deltalake.write_deltalake(str(table), pa.table({"id": pa.array([-1], pa.int64()), "v": ["x"]}), mode="append")
    third = json.loads(run().stdout)
    assert third["rows"] == 0 and third["incremental"]["run"] == 3 and third["version"] == 3
    ids = sorted(deltalake.DeltaTable(str(table)).to_pyarrow_table()["id"].to_pylist())
    assert ids == [-1, *range(1, 131)]
    # A restart replaces the rows with a first run.
    fourth = json.loads(run("--restart").stdout)
    assert fourth["first_run"] and fourth["rows"] == 130 and fourth["removed"] > 0
    assert deltalake.DeltaTable(str(table)).to_pyarrow_table().num_rows == 130
    # A table without a run's state is not taken over silently; a state file is not the table's.
    plain = tmp_path / "plain"
    export(url, "-t", "delta_inc", "--delta", str(plain))
    out = export(url, "-t", "delta_inc", "--incremental-by", "id", "--delta", str(plain), check=False)
    assert out.returncode != 0 and "incremental run" in out.stderr
    out = run("--state", str(tmp_path / "s.json"), check=False)
    assert out.returncode != 0 and "--state" in out.stderr
    # From Python too.
    import pgarrow

    stats = pgarrow.export_delta(url, table="delta_inc", delta=str(tmp_path / "py"), by="id")
    assert stats["first_run"] and stats["incremental"]["run"] == 1 and stats["rows"] == 130


def test_checkpoints_are_written_and_read(url, conn, tmp_path, duckdb_delta):
    table = tmp_path / "cp"
    for k in range(5):
        report = json.loads(export(url, "-q", f"SELECT {k} AS id, 'r{k}' AS name", "--delta", str(table),
                                   "--if-exists", "append", "--checkpoint-interval", "2").stdout)
        assert report["version"] == k and report["checkpointed"] == (k in (2, 4))
    log = table / "_delta_log"
    assert sorted(p.name for p in log.glob("*.checkpoint.parquet")) == [
        "00000000000000000002.checkpoint.parquet", "00000000000000000004.checkpoint.parquet",
    ]
    assert json.loads((log / "_last_checkpoint").read_text())["version"] == 4
    # Without the commits before it, readers (and pgarrow itself) start from the checkpoint.
    for v in range(4):
        (log / f"{v:020}.json").unlink()
    dt = deltalake.DeltaTable(str(table))
    assert dt.version() == 4 and sorted(dt.to_pyarrow_table()["id"].to_pylist()) == [0, 1, 2, 3, 4]
    assert duckdb_delta(f"SELECT count(*), sum(id) FROM delta_scan('{table}')") == [(5, 10)]
    export(url, "-q", "SELECT 5 AS id, 'r5' AS name", "--delta", str(table), "--if-exists", "append")
    assert sorted(deltalake.DeltaTable(str(table)).to_pyarrow_table()["id"].to_pylist()) == [0, 1, 2, 3, 4, 5]
    # deltalake's own checkpoint is read by pgarrow too.
    dt = deltalake.DeltaTable(str(table))
    dt.create_checkpoint()
    for p in log.glob("0000000000000000000[45].json"):
        p.unlink()
    report = json.loads(export(url, "-q", "SELECT 6 AS id, 'r6' AS name", "--delta", str(table),
                               "--if-exists", "append").stdout)
    assert report["version"] == 6
    assert sorted(deltalake.DeltaTable(str(table)).to_pyarrow_table()["id"].to_pylist()) == list(range(7))


def test_concurrent_appends_all_land_and_a_replace_never_drops_unseen_rows(url, conn, tmp_path, typed):
    table = tmp_path / "race"
    procs = [
        subprocess.Popen(
            [pgarrow_bin(), "export", "-d", url, "--quiet", "--json", "-t", typed, "--delta", str(table),
             "--if-exists", "append", "--partitions", "2", "--partition-by", "id"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(4)
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    assert sorted(r["version"] for r in reports) == [0, 1, 2, 3]
    assert sum(r["created"] for r in reports) == 1
    dt = deltalake.DeltaTable(str(table))
    assert dt.to_pyarrow_table().num_rows == 12 and dt.version() == 3


def test_failed_cancelled_and_killed_exports_commit_nothing(url, conn, tmp_path, typed, duckdb_delta):
    table = tmp_path / "t"
    export(url, "-t", typed, "--delta", str(table))
    files = data_files(table)
    # A value error at row 500 of the server's query.
    out = export(url, "-q", "SELECT i AS id, 1 / (i - 500) AS v FROM generate_series(1, 1000) i", "--delta",
                 str(tmp_path / "div"), check=False)
    assert out.returncode != 0 and "division by zero" in out.stderr
    assert not (tmp_path / "div" / "_delta_log").exists() and data_files(tmp_path / "div") == []
    # Ctrl-C in the middle of a long export: nothing committed, its files removed.
    marker = f"delta_cancel_{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [pgarrow_bin(), "export", "-d", url, "--quiet", "-q",
         f"SELECT i AS id, pg_sleep(0.01)::text AS {marker} FROM generate_series(1, 100000) i",
         "--delta", str(table), "--if-exists", "replace"],
        stderr=subprocess.PIPE, text=True,
    )
    wait_for_backend(conn, marker)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, err
    assert log_versions(table) == [0] and data_files(table) == files
    # Nor a temporary file of the one it was writing.
    assert not list(table.rglob("*.pgarrow-tmp"))
    # kill -9: nothing committed (its files, named by no version, may stay for VACUUM).
    proc = subprocess.Popen(
        [pgarrow_bin(), "export", "-d", url, "--quiet", "-q",
         f"SELECT i AS id, pg_sleep(0.01)::text AS {marker}_k FROM generate_series(1, 100000) i",
         "--delta", str(table), "--if-exists", "replace"],
        stderr=subprocess.PIPE, text=True,
    )
    wait_for_backend(conn, f"{marker}_k")
    proc.kill()
    proc.communicate(timeout=60)
    assert log_versions(table) == [0]
    assert duckdb_delta(f"SELECT count(*) FROM delta_scan('{table}')") == [(3,)]


def test_python_export_into_a_table_on_an_object_store(url, conn, typed, s3, duckdb_delta):
    import typing

    import pgarrow
    from pgarrow import _typing

    bucket = f"delta-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(bucket)
    location = f"s3://{bucket}/lake/t"
    stats = pgarrow.export_delta(
        url, table=typed, delta=location, storage_options=s3.storage_options, partitions=2,
        partition_by="id", max_file_rows=1,
    )
    assert set(typing.get_type_hints(_typing.DeltaStats)) - set(typing.get_type_hints(_typing.LakeRun)) <= set(stats)
    assert stats["created"] and stats["version"] == 0 and stats["rows"] == 3 and stats["files"] == 3
    keys = sorted(o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"])
    assert keys[0] == "lake/t/_delta_log/00000000000000000000.json" and len(keys) == 4, keys
    o = s3.storage_options
    options = {
        "AWS_ACCESS_KEY_ID": o["aws_access_key_id"], "AWS_SECRET_ACCESS_KEY": o["aws_secret_access_key"],
        "AWS_REGION": o["aws_region"], "AWS_ENDPOINT_URL": o["aws_endpoint"], "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }
    assert deltalake.DeltaTable(location, storage_options=options).to_pyarrow_table().num_rows == 3
    assert duckdb_delta(f"SELECT count(*), sum(id) FROM delta_scan('{location}')", s3=s3) == [(3, 6)]
    # Two appends at once on the object store: the conditional put lets one take each version.
    import threading

    errors = []

    def append():
        try:
            pgarrow.export_delta(url, f"SELECT * FROM {typed} WHERE id = 1", delta=location, if_exists="append",
                                 storage_options=s3.storage_options)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=append) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    dt = deltalake.DeltaTable(location, storage_options=options)
    assert dt.version() == 3 and dt.to_pyarrow_table().num_rows == 6
    with pytest.raises(pgarrow.UsageError, match="exists"):
        pgarrow.export_delta(url, table=typed, delta=location, storage_options=s3.storage_options)
    with pytest.raises(pgarrow.UsageError, match="Delta partitions by column values"):
        pgarrow.export_delta(url, table=typed, delta=location, if_exists="append",
                             storage_options=s3.storage_options, files_by="bucket(4, id)")


def test_every_object_store_takes_each_version_once(url, conn, typed, store):
    """The commit's put-if-absent on S3 (moto), Azure (Azurite) and GCS (fake-gcs-server):
    writers racing for versions each get one, and the log is listed and read back."""
    bucket = fresh_bucket(store)
    location = store.url(bucket, "lake/t")
    export(url, "-q", f"SELECT id, label FROM {typed}", "--delta", location, *store.flags())
    procs = [
        subprocess.Popen(
            [pgarrow_bin(), "export", "-d", url, "--quiet", "--json", "-q", f"SELECT id, label FROM {typed}",
             "--delta", location, "--if-exists", "append", *store.flags()],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(3)
    ]
    versions = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        versions.append(json.loads(out)["version"])
    assert sorted(versions) == [1, 2, 3]
    report = json.loads(export(url, "-q", f"SELECT id, label FROM {typed}", "--delta", location, "--if-exists",
                               "append", "--checkpoint-interval", "4", *store.flags()).stdout)
    assert report["version"] == 4 and report["checkpointed"]
    keys = store.keys(bucket, "lake/t/_delta_log/")
    assert [k.rsplit("/", 1)[1] for k in keys] == [
        *(f"{v:020}.json" for v in range(4)), "00000000000000000004.checkpoint.parquet",
        "00000000000000000004.json", "_last_checkpoint",
    ], keys
    assert len([k for k in store.keys(bucket, "lake/t/") if k.endswith(".parquet") and "_delta_log" not in k]) == 5
    # Replaced from the checkpoint on: pgarrow reads its own checkpoint from the store.
    report = json.loads(export(url, "-q", f"SELECT id, label FROM {typed}", "--delta", location, "--if-exists",
                               "replace", *store.flags()).stdout)
    assert report["version"] == 5 and report["removed"] == 5


def test_tables_of_every_writer_import_back_into_postgresql_exactly(url, conn, tmp_path, typed):
    """`pgarrow import --delta`: the table's current version (pgarrow's, deltalake's, both
    mixed; partitioned or not) loaded into PostgreSQL as it is; deletion vectors refused."""
    import pyarrow as pa

    def pg_import(location, into, *extra, check=True):
        out = subprocess.run(
            [pgarrow_bin(), "import", "-d", url, "--quiet", "--delta", str(location), "--into", into, "--create",
             *extra],
            capture_output=True, text=True,
        )
        if check:
            assert out.returncode == 0, out.stderr
        return out

    # pgarrow's, every type: the same rows as the source, replaced rows left out.
    table = tmp_path / "types"
    export(url, "-t", typed, "--delta", str(table))
    export(url, "-t", typed, "--delta", str(table), "--if-exists", "replace")
    conn.execute("DROP TABLE IF EXISTS delta_back")
    pg_import(table, "delta_back")
    cols = "id, small, big, amount, ratio, flag, label, code, day, stamp, stamp_tz, raw, doc::text, tags"
    want = conn.execute(f"SELECT {cols} FROM {typed} ORDER BY id").fetchall()
    got = conn.execute(f"SELECT {cols} FROM delta_back ORDER BY id").fetchall()
    assert got == want
    # deltalake's, partitioned by a string and a date, with a NULL partition value.
    theirs = tmp_path / "theirs"
    data = pa.table({
        "id": pa.array([1, 2, 3, 4], pa.int64()),
        "region": ["eu", "us", None, "a/b c"],
        "day": pa.array([datetime.date(2026, 1, 1), datetime.date(2026, 1, 2)] * 2),
        "v": pa.array([1.5, None, -2.25, 0.0]),
    })
    deltalake.write_deltalake(str(theirs), data, partition_by=["region", "day"])
    deltalake.write_deltalake(str(theirs), data.slice(0, 1), mode="append")
    conn.execute("DROP TABLE IF EXISTS delta_theirs")
    pg_import(theirs, "delta_theirs")
    got = conn.execute("SELECT id, region, day, v FROM delta_theirs ORDER BY id, region NULLS FIRST").fetchall()
    assert got == [
        (1, "eu", datetime.date(2026, 1, 1), 1.5), (1, "eu", datetime.date(2026, 1, 1), 1.5),
        (2, "us", datetime.date(2026, 1, 2), None), (3, None, datetime.date(2026, 1, 1), -2.25),
        (4, "a/b c", datetime.date(2026, 1, 2), 0.0),
    ]
    # Both writers in one table: pgarrow's partitioned export, then deltalake's append.
    conn.execute("DROP TABLE IF EXISTS delta_mixed_src")
    conn.execute("CREATE TABLE delta_mixed_src AS SELECT i::bigint AS id, (ARRAY['eu', 'us'])[i % 2 + 1] AS region "
                 "FROM generate_series(1, 50) i")
    mixed = tmp_path / "mixed"
    export(url, "-t", "delta_mixed_src", "--delta", str(mixed), "--files-by", "region")
    deltalake.write_deltalake(str(mixed), pa.table({"id": pa.array([99], pa.int64()), "region": ["xx"]}),
                              mode="append")
    conn.execute("DROP TABLE IF EXISTS delta_mixed")
    pg_import(mixed, "delta_mixed")
    assert conn.execute("SELECT count(*), sum(id), count(DISTINCT region) FROM delta_mixed").fetchone() == (51, 1374, 3)
    # An evolved table: each writer's files hold the columns of their time (pgarrow's append
    # added one, deltalake's merge another): a column a file lacks reads as NULL.
    evolved = tmp_path / "evolved"
    deltalake.write_deltalake(str(evolved), pa.table({"id": pa.array([1], pa.int64())}))
    export(url, "-q", "SELECT 2::bigint AS id, 'pg'::text AS note", "--delta", str(evolved), "--if-exists", "append")
    deltalake.write_deltalake(str(evolved), pa.table({"id": pa.array([3], pa.int64()), "x": pa.array([1.5])}),
                              mode="append", schema_mode="merge")
    conn.execute("DROP TABLE IF EXISTS delta_evolved")
    pg_import(evolved, "delta_evolved")
    assert conn.execute("SELECT id, note, x FROM delta_evolved ORDER BY id").fetchall() == [
        (1, None, None), (2, "pg", None), (3, None, 1.5)
    ]
    # From Python too, the same rows.
    import pgarrow

    conn.execute("DROP TABLE IF EXISTS delta_theirs_py")
    stats = pgarrow.write(url, "delta_theirs_py", delta=str(theirs), create=True)
    assert stats["rows"] == 5
    assert conn.execute("SELECT id, region, day, v FROM delta_theirs_py ORDER BY id, region NULLS FIRST").fetchall() == got
    with pytest.raises(pgarrow.UsageError, match="two inputs"):
        pgarrow.write(url, "delta_theirs_py", str(theirs), delta=str(theirs))
    # Not a table.
    out = pg_import(tmp_path / "nothing", "delta_none", check=False)
    assert out.returncode != 0 and "no table there" in out.stderr


Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"


def z85(data: bytes) -> str:
    """Z85 text (ZeroMQ RFC 32) of `data`, zero-padded to whole 4-byte groups."""
    data += b"\0" * (-len(data) % 4)
    out = []
    for i in range(0, len(data), 4):
        n, digits = int.from_bytes(data[i:i + 4], "big"), []
        for _ in range(5):
            n, d = divmod(n, 85)
            digits.append(Z85[d])
        out.append("".join(reversed(digits)))
    return "".join(out)


def deletion_bitmap(rows: list[int]) -> bytes:
    """A deletion vector's bitmap as PROTOCOL.md specifies it: the magic number, then a 64-bit
    roaring bitmap in the portable format (one bucket; one array container of rows < 65536)."""
    import struct

    body = struct.pack("<IIHHI", 12346, 1, 0, len(rows) - 1, 16) + b"".join(struct.pack("<H", r) for r in sorted(rows))
    return struct.pack("<IQI", 1681511377, 1, 0) + body


def test_deletion_vectors_are_applied_on_import(url, conn, tmp_path, duckdb_delta):
    """A table whose files carry deletion vectors (inline in the log, and in a file of the
    table by UUID), as the protocol lays them out; DuckDB and deltalake read it without those
    rows, and so does pgarrow's import."""
    import struct
    import zlib

    import pyarrow as pa

    table = tmp_path / "dv"
    deltalake.write_deltalake(str(table), pa.table({"id": pa.array(range(10), pa.int64())}))
    deltalake.write_deltalake(str(table), pa.table({"id": pa.array(range(10, 20), pa.int64())}), mode="append")
    log = table / "_delta_log"
    adds = [json.loads(line)["add"] for v in (0, 1) for line in (log / f"{v:020}.json").read_text().splitlines()
            if '"add"' in line]
    # Rows 0, 3 and 9 of the first file, inline; rows 1 and 2 of the second, in a file.
    inline = deletion_bitmap([0, 3, 9])
    first = {"storageType": "i", "pathOrInlineDv": z85(inline), "sizeInBytes": len(inline), "cardinality": 3}
    stored = deletion_bitmap([1, 2])
    dv_id = uuid.uuid4()
    (table / "ab").mkdir()
    (table / "ab" / f"deletion_vector_{dv_id}.bin").write_bytes(
        b"\x01" + struct.pack(">I", len(stored)) + stored + struct.pack(">I", zlib.crc32(stored)))
    second = {"storageType": "u", "pathOrInlineDv": "ab" + z85(dv_id.bytes), "offset": 1,
              "sizeInBytes": len(stored), "cardinality": 2}
    actions = [{"protocol": {"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["deletionVectors"],
                             "writerFeatures": ["deletionVectors"]}}]
    for add, dv in zip(adds, (first, second), strict=True):
        actions.append({"remove": {"path": add["path"], "dataChange": True, "deletionTimestamp": 1,
                                   "extendedFileMetadata": True, "partitionValues": {}, "size": add["size"]}})
        actions.append({"add": {**add, "deletionVector": dv}})
    (log / f"{2:020}.json").write_text("".join(json.dumps(a) + "\n" for a in actions))
    want = [i for i in range(20) if i not in (0, 3, 9, 11, 12)]
    # The readers nobody here wrote agree the rows are gone.
    assert [r[0] for r in duckdb_delta(f"SELECT id FROM delta_scan('{table}') ORDER BY id")] == want
    dt = deltalake.DeltaTable(str(table))
    assert sorted(pa.table(dt.scan())["id"].to_pylist()) == want  # deltalake applies them in scan()
    # pgarrow's import, from the command line and from Python.
    conn.execute("DROP TABLE IF EXISTS delta_dv, delta_dv_py")
    out = subprocess.run(
        [pgarrow_bin(), "import", "-d", url, "--quiet", "--delta", str(table), "--into", "delta_dv", "--create"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    assert [r[0] for r in conn.execute("SELECT id FROM delta_dv ORDER BY id").fetchall()] == want
    import pgarrow

    assert pgarrow.write(url, "delta_dv_py", delta=str(table), create=True)["rows"] == len(want)
    # A deletion vector that is not what the log says (its cardinality): refused, named,
    # nothing loaded.
    second["cardinality"] = 3
    actions[-1]["add"]["deletionVector"] = second
    (log / f"{3:020}.json").write_text(json.dumps(actions[-1]) + "\n")
    out = subprocess.run(
        [pgarrow_bin(), "import", "-d", url, "--quiet", "--delta", str(table), "--into", "delta_dv_bad", "--create"],
        capture_output=True, text=True,
    )
    # A data error (exit status 3, Python's DataError), not the command line's.
    assert out.returncode == 3 and "deletion vector" in out.stderr and "2 positions" in out.stderr, out.stderr
    assert conn.execute("SELECT to_regclass('delta_dv_bad')").fetchone() == (None,)
    with pytest.raises(pgarrow.DataError, match="2 positions"):
        pgarrow.write(url, "delta_dv_bad", delta=str(table), create=True)
    # A reader feature pgarrow does not know: refused by name, a data error too.
    (log / f"{4:020}.json").write_text(json.dumps({"protocol": {
        "minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["deletionVectors", "someFutureFeature"],
        "writerFeatures": ["deletionVectors", "someFutureFeature"]}}) + "\n")
    out = subprocess.run(
        [pgarrow_bin(), "import", "-d", url, "--quiet", "--delta", str(table), "--into", "delta_dv_bad", "--create"],
        capture_output=True, text=True,
    )
    assert out.returncode == 3 and "someFutureFeature" in out.stderr, out.stderr
    with pytest.raises(pgarrow.DataError, match="someFutureFeature"):
        pgarrow.write(url, "delta_dv_bad", delta=str(table), create=True)
    # A table that is not there is the call's error (exit status 2).
    out = subprocess.run(
        [pgarrow_bin(), "import", "-d", url, "--quiet", "--delta", str(tmp_path / "none"), "--into", "x", "--create"],
        capture_output=True, text=True,
    )
    assert out.returncode == 2 and "no table there" in out.stderr, out.stderr


def test_timestamp_partition_values_of_another_writer_import_exactly(url, conn, tmp_path):
    """deltalake partitions by a `timestamp` (UTC) and a `timestamp_ntz` column: their values live
    only in the log's partition values (`2026-11-26 10:00:00.000001`), which load as the
    instants and times they name, NULL partitions as NULL."""
    import pyarrow as pa

    utc = datetime.timezone.utc
    rows = pa.table({
        "id": [1, 2, 3],
        "at": pa.array([datetime.datetime(2026, 11, 26, 10, 0, 0, 1, tzinfo=utc),
                        datetime.datetime(1970, 1, 1, tzinfo=utc), None], pa.timestamp("us", tz="UTC")),
        "day": pa.array([datetime.datetime(2026, 11, 26, 10, 0, 0), None,
                         datetime.datetime(1999, 12, 31, 23, 59, 59, 999999)], pa.timestamp("us")),
    })
    table = tmp_path / "by_time"
    deltalake.write_deltalake(str(table), rows, partition_by=["at", "day"])
    conn.execute("DROP TABLE IF EXISTS delta_by_time")
    out = subprocess.run([pgarrow_bin(), "import", "-d", url, "--quiet", "--delta", str(table), "--into",
                          "delta_by_time", "--create"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = conn.execute("SELECT id, (at AT TIME ZONE 'UTC')::text, day::text, format_type(pg_typeof(at), NULL), "
                       "format_type(pg_typeof(day), NULL) FROM delta_by_time ORDER BY id").fetchall()
    assert got == [
        (1, "2026-11-26 10:00:00.000001", "2026-11-26 10:00:00", "timestamp with time zone",
         "timestamp without time zone"),
        (2, "1970-01-01 00:00:00", None, "timestamp with time zone", "timestamp without time zone"),
        (3, None, "1999-12-31 23:59:59.999999", "timestamp with time zone", "timestamp without time zone"),
    ], got


@pytest.mark.parametrize("mode", ["name", "id"])
def test_column_mapped_tables_of_another_writer_import_exactly(url, conn, tmp_path, mode, duckdb_delta):
    """Column mapping (`delta.columnMapping.mode` name and id, as deltalake writes it): the
    files hold every column, and every field of a struct, a list's struct and a map's value,
    under a physical name (`col-<uuid>`, with its ID as the Parquet field ID); the partition
    values are keyed by the partition column's physical name. The import finds each by it and
    loads the table's own names and values: columns whose names need quoting, NULLs, a
    partition column, a column added after the first files (NULL in them). It used to refuse
    such tables."""
    import pyarrow as pa

    point = pa.struct([("x", pa.int64()), ("Label Y", pa.string())])
    rows = pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "Name With Space": ["a", None, "ü"],
        "Part": ["p1", "p2", None],
        "s": pa.array([{"x": 1, "Label Y": "q"}, None, {"x": 3, "Label Y": None}], point),
        "l": pa.array([[{"x": 7, "Label Y": "r"}], [], None], pa.list_(point)),
        "m": pa.array([[("k", 1)], None, [("a", 2), ("b", None)]], pa.map_(pa.string(), pa.int64())),
    })
    table = tmp_path / f"mapped_{mode}"
    deltalake.write_deltalake(str(table), rows, partition_by=["Part"],
                              configuration={"delta.columnMapping.mode": mode})
    # A column added (deltalake 1.6 does not add columns to a mapped table: the metaData
    # action Spark's ALTER TABLE ADD COLUMNS commits, the next ID and a physical name of its own).
    log0 = [json.loads(line) for line in (table / "_delta_log" / f"{0:020}.json").read_text().splitlines()]
    meta = next(a["metaData"] for a in log0 if "metaData" in a)
    schema = json.loads(meta["schemaString"])
    next_id = int(meta["configuration"]["delta.columnMapping.maxColumnId"]) + 1
    schema["fields"].append({"name": "added", "type": "integer", "nullable": True, "metadata": {
        "delta.columnMapping.id": next_id, "delta.columnMapping.physicalName": f"col-added-{next_id}"}})
    meta["schemaString"] = json.dumps(schema)
    meta["configuration"]["delta.columnMapping.maxColumnId"] = str(next_id)
    (table / "_delta_log" / f"{1:020}.json").write_text(json.dumps({"metaData": meta}) + "\n")
    dt = deltalake.DeltaTable(str(table))
    more = pa.table({
        "id": pa.array([4], pa.int64()), "Name With Space": ["d"], "Part": ["p1"],
        "s": pa.array([None], point), "l": pa.array([None], pa.list_(point)),
        "m": pa.array([None], pa.map_(pa.string(), pa.int64())), "added": pa.array([40], pa.int32()),
    })
    deltalake.write_deltalake(str(table), more, mode="append")
    log = [json.loads(line) for f in sorted((table / "_delta_log").glob("*.json")) for line in f.read_text().splitlines()]
    physical = [a["add"] for a in log if "add" in a]
    # What makes the table one a reader must map: physical names in the files and the log.
    assert all(k.startswith("col-") for a in physical for k in a["partitionValues"]), physical
    name = f"delta_mapped_{mode}"
    conn.execute(f"DROP TABLE IF EXISTS {name}, {name}_py")
    out = subprocess.run([pgarrow_bin(), "import", "-d", url, "--quiet", "--delta", str(table), "--into", name,
                          "--create"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = conn.execute(
        f'SELECT id, "Name With Space", "Part", s::text, l::text, m::text, added FROM {name} ORDER BY id').fetchall()
    want = [
        (1, "a", "p1", '{"x": 1, "Label Y": "q"}', '[{"x": 7, "Label Y": "r"}]', '{"k": 1}', None),
        (2, None, "p2", None, "[]", None, None),
        (3, "ü", None, '{"x": 3, "Label Y": null}', None, '{"a": 2, "b": null}', None),
        (4, "d", "p1", None, None, None, 40),
    ]
    assert got == want, got
    columns = [r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 ORDER BY attnum",
        (name,)).fetchall()]
    assert columns == ["id", "Name With Space", "Part", "s", "l", "m", "added"], columns
    # DuckDB's delta extension (delta-kernel) reads the same rows (but for the partition
    # column, which DuckDB 1.5.5 reads as NULL in every row of a mapped table).
    theirs = duckdb_delta(f'SELECT id, "Name With Space", added FROM delta_scan(\'{table}\') ORDER BY id')
    assert [tuple(r) for r in theirs] == [(r[0], r[1], r[6]) for r in want]
    import pgarrow

    assert pgarrow.write(url, f"{name}_py", delta=str(table), create=True)["rows"] == 4
    assert conn.execute(f'SELECT s::text, "Part", added FROM {name}_py WHERE id = 1').fetchone() == (
        '{"x": 1, "Label Y": "q"}', "p1", None)
    # Writing into it is refused by name (pgarrow does not write column-mapped tables): a data
    # error, nothing written.
    out = subprocess.run([pgarrow_bin(), "export", "-d", url, "--quiet", "-q", "SELECT 5::bigint AS id",
                          "--delta", str(table), "--if-exists", "append"], capture_output=True, text=True)
    assert out.returncode == 3 and "columnMapping" in out.stderr, out.stderr
    assert deltalake.DeltaTable(str(table)).version() == dt.version() + 1


def test_a_classic_named_checkpoint_with_sidecars_loads_every_file(url, conn, tmp_path):
    """A V2 checkpoint under the classic name (`N.checkpoint.parquet`) keeps the files' `add`
    actions in sidecar files (`_delta_log/_sidecars/`) and a `sidecar` action pointing at
    each: the import reads them (it used to load 0 rows from such a table with exit 0)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = tmp_path / "sidecars"
    for k in range(3):
        export(url, "-q", f"SELECT g + {k * 10} AS id FROM generate_series(1, 10) g", "--delta", str(table),
               "--if-exists", "append", "--checkpoint-interval", "2")
    log = table / "_delta_log"
    checkpoint = log / "00000000000000000002.checkpoint.parquet"
    whole = pq.read_table(checkpoint)
    adds = whole.filter(pc.is_valid(whole["add"]))
    assert adds.num_rows == 3
    (log / "_sidecars").mkdir()
    sidecar = log / "_sidecars" / f"{uuid.uuid4()}.parquet"
    pq.write_table(adds.select(["add"]), sidecar)
    rest = whole.filter(pc.invert(pc.is_valid(whole["add"])))
    side_type = pa.struct([("path", pa.string()), ("sizeInBytes", pa.int64()), ("modificationTime", pa.int64())])
    rows = [dict(r, sidecar=None) for r in rest.to_pylist()]
    rows.append({**{name: None for name in whole.schema.names},
                 "sidecar": {"path": sidecar.name, "sizeInBytes": sidecar.stat().st_size, "modificationTime": 0}})
    schema = whole.schema.append(pa.field("sidecar", side_type))
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), checkpoint)
    # Only the checkpoint knows the files of versions 0 to 2.
    for v in range(3):
        (log / f"{v:020}.json").unlink()
    conn.execute("DROP TABLE IF EXISTS delta_sidecars_back")
    out = subprocess.run([pgarrow_bin(), "import", "-d", url, "--quiet", "--delta", str(table), "--into",
                          "delta_sidecars_back", "--create"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = [r[0] for r in conn.execute("SELECT id FROM delta_sidecars_back ORDER BY id").fetchall()]
    assert got == list(range(1, 31))



def pg_import_delta(url, table, into, *extra):
    """`pgarrow import --delta table --into into --create`, its process's result."""
    return subprocess.run([pgarrow_bin(), "import", "-d", url, "--quiet", "--delta", str(table), "--into", into,
                           "--create", *extra], capture_output=True, text=True, timeout=120)


def commit_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def v2_checkpointed(url, table, form: str, pointer: bool) -> list[int]:
    """A table whose state up to version 3 is only in a UUID-named V2 checkpoint
    (`3.checkpoint.<uuid>.json` or `.parquet`), laid out by PROTOCOL.md: its
    `checkpointMetadata`, the protocol (reader 3, `v2Checkpoint`), the metadata, and two
    `sidecar` actions naming Parquet files in `_delta_log/_sidecars/` that hold the three
    files' `add` actions; commits 0 to 2 and pgarrow's classic checkpoint gone; then commit 4
    removes the second file. `_last_checkpoint` names it (`v2Checkpoint.path`, as delta-spark
    writes it) or is gone (found by listing). The ids the table holds."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for k in range(3):
        export(url, "-q", f"SELECT g + {k * 10} AS id FROM generate_series(1, 10) g", "--delta", str(table),
               "--if-exists", "append", "--checkpoint-interval", "2")
    log = table / "_delta_log"
    actions = [a for v in range(3) for a in commit_lines(log / f"{v:020}.json")]
    metadata = next(a["metaData"] for a in actions if "metaData" in a)
    adds = [a["add"] for a in actions if "add" in a]
    assert len(adds) == 3
    protocol = {"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["v2Checkpoint"],
                "writerFeatures": ["v2Checkpoint"]}
    (log / f"{3:020}.json").write_text(json.dumps({"protocol": protocol}) + "\n")
    # The sidecars: pgarrow's classic checkpoint's `add` rows, one file, then two.
    classic = log / f"{2:020}.checkpoint.parquet"
    whole = pq.read_table(classic)
    rows = whole.filter(pc.is_valid(whole["add"])).select(["add"])
    (log / "_sidecars").mkdir()
    sidecars = []
    for part in (rows.slice(0, 1), rows.slice(1)):
        path = log / "_sidecars" / f"{uuid.uuid4()}.parquet"
        pq.write_table(part, path)
        sidecars.append({"path": path.name, "sizeInBytes": path.stat().st_size, "modificationTime": 0})
    name = f"{3:020}.checkpoint.{uuid.uuid4()}.{form}"
    if form == "json":
        lines = [{"checkpointMetadata": {"version": 3, "tags": {}}}, {"protocol": protocol},
                 {"metaData": metadata}] + [{"sidecar": s} for s in sidecars]
        (log / name).write_text("".join(json.dumps(line) + "\n" for line in lines))
    else:
        rest = whole.filter(pc.invert(pc.is_valid(whole["add"])))
        side_type = pa.struct([("path", pa.string()), ("sizeInBytes", pa.int64()), ("modificationTime", pa.int64())])
        meta_type = pa.struct([("version", pa.int64()), ("tags", pa.map_(pa.string(), pa.string()))])
        schema = whole.schema.append(pa.field("checkpointMetadata", meta_type)).append(pa.field("sidecar", side_type))
        empty = {n: None for n in schema.names}
        kept = [dict(r, checkpointMetadata=None, sidecar=None) for r in rest.to_pylist()]
        for r in kept:
            if r["protocol"] is not None:
                r["protocol"] = protocol
        kept.append({**empty, "checkpointMetadata": {"version": 3, "tags": []}})
        kept.extend({**empty, "sidecar": s} for s in sidecars)
        pq.write_table(pa.Table.from_pylist(kept, schema=schema), log / name)
    for v in range(3):
        (log / f"{v:020}.json").unlink()
    classic.unlink()
    (log / "_last_checkpoint").unlink()
    if pointer:
        (log / "_last_checkpoint").write_text(json.dumps({"version": 3, "size": 5, "v2Checkpoint": {
            "path": name, "sizeInBytes": (log / name).stat().st_size, "modificationTime": 0}}))
    second = adds[1]
    (log / f"{4:020}.json").write_text(json.dumps({"remove": {
        "path": second["path"], "dataChange": True, "deletionTimestamp": 1, "extendedFileMetadata": True,
        "partitionValues": {}, "size": second["size"]}}) + "\n")
    return [i for i in range(1, 31) if not 11 <= i <= 20]


@pytest.mark.parametrize("form", ["json", "parquet"])
@pytest.mark.parametrize("pointer", [True, False], ids=["last_checkpoint", "listed"])
def test_uuid_named_v2_checkpoints_with_sidecars_load_every_file(url, conn, tmp_path, form, pointer,
                                                                 duckdb_delta):
    """A UUID-named V2 checkpoint (`n.checkpoint.<uuid>.json` and `.parquet`), its file actions
    in sidecars, found through `_last_checkpoint` or by listing, then a commit after it: the
    import loads what DuckDB's delta extension (delta-kernel) reads (pgarrow used to pass such
    checkpoints over and, the commits before them gone, refuse the table). deltalake 1.6.6
    refuses the `v2Checkpoint` reader feature."""
    table = tmp_path / f"v2_{form}_{pointer}"
    want = v2_checkpointed(url, table, form, pointer)
    with pytest.raises(deltalake.exceptions.DeltaProtocolError, match="v2Checkpoint"):
        deltalake.DeltaTable(str(table)).to_pyarrow_table()
    assert [r[0] for r in duckdb_delta(f"SELECT id FROM delta_scan('{table}') ORDER BY id")] == want
    into = f"delta_v2_{form}_{int(pointer)}"
    conn.execute(f"DROP TABLE IF EXISTS {into}")
    out = pg_import_delta(url, table, into)
    assert out.returncode == 0, out.stderr
    assert [r[0] for r in conn.execute(f"SELECT id FROM {into} ORDER BY id").fetchall()] == want


def test_v2_checkpoints_pgarrow_cannot_read_are_refused_by_name(url, conn, tmp_path):
    """A classic checkpoint of the same version beside a UUID-named one: the protocol lets a
    reader take either, and pgarrow takes the UUID-named one (the classic one here holds only
    the files, so reading it would fail for want of a protocol). A sidecar missing, a UUID-named checkpoint
    without its `checkpointMetadata`, or with another version's: refused, named, a data error
    (exit status 3), nothing loaded; never read as a table without those files."""
    import pyarrow.parquet as pq

    table = tmp_path / "v2_bad"
    want = v2_checkpointed(url, table, "json", False)
    log = table / "_delta_log"
    (checkpoint,) = log.glob("*.checkpoint.*.json")
    lines = commit_lines(checkpoint)
    # The same checkpoint as a classic V2 one (a Parquet file of the same actions).
    import pyarrow as pa

    sidecars = sorted(log.glob("_sidecars/*.parquet"))
    adds = pa.concat_tables([pq.read_table(s) for s in sidecars])
    classic = log / f"{3:020}.checkpoint.parquet"
    pq.write_table(adds, classic)  # the files only: a classic checkpoint missing its metadata
    conn.execute("DROP TABLE IF EXISTS delta_v2_both")
    out = pg_import_delta(url, table, "delta_v2_both")
    # The UUID-named one is read (the classic one here lacks the protocol and metadata).
    assert out.returncode == 0, out.stderr
    assert [r[0] for r in conn.execute("SELECT id FROM delta_v2_both ORDER BY id").fetchall()] == want
    classic.unlink()

    def refused(text, into):
        conn.execute(f"DROP TABLE IF EXISTS {into}")
        checkpoint.write_text(text)
        out = pg_import_delta(url, table, into)
        assert conn.execute(f"SELECT to_regclass('{into}')").fetchone() == (None,)
        return out

    good = "".join(json.dumps(line) + "\n" for line in lines)
    without = "".join(json.dumps(line) + "\n" for line in lines if "checkpointMetadata" not in line)
    out = refused(without, "delta_v2_nometa")
    assert out.returncode == 3 and checkpoint.name in out.stderr and "checkpointMetadata" in out.stderr, out.stderr
    other = good.replace('"version": 3', '"version": 2', 1)
    assert other != good
    out = refused(other, "delta_v2_other")
    assert out.returncode == 3 and "of version 2" in out.stderr, out.stderr
    sidecars[0].unlink()
    out = refused(good, "delta_v2_noside")
    assert out.returncode == 3 and sidecars[0].name in out.stderr, out.stderr


def hand_table(table, schema: dict, files: list, *, partition_columns=(), protocol=None, configuration=None):
    """A Delta table laid out by PROTOCOL.md in commit 0: `protocol`, a `metaData` of `schema`
    (a `struct` type), and an `add` per `(pyarrow table, partition values)` of `files`, each
    written as a Parquet file of the table. The actions, for more commits."""
    import pyarrow.parquet as pq

    table.mkdir(parents=True)
    (table / "_delta_log").mkdir()
    protocol = protocol or {"minReaderVersion": 1, "minWriterVersion": 2}
    metadata = {"id": str(uuid.uuid4()), "format": {"provider": "parquet", "options": {}},
                "schemaString": json.dumps(schema), "partitionColumns": list(partition_columns),
                "configuration": configuration or {}, "createdTime": 0}
    actions = [{"protocol": protocol}, {"metaData": metadata}]
    actions.extend({"add": add} for add in data_adds(table, files))
    (table / "_delta_log" / f"{0:020}.json").write_text("".join(json.dumps(a) + "\n" for a in actions))
    return actions


def data_adds(table, files: list) -> list[dict]:
    """`add` actions of `files` (`(pyarrow table, partition values)`), written into `table`."""
    import pyarrow.parquet as pq

    adds = []
    for rows, values in files:
        name = f"part-{uuid.uuid4()}.parquet"
        pq.write_table(rows, table / name)
        adds.append({"path": name, "partitionValues": values, "size": (table / name).stat().st_size,
                     "modificationTime": 0, "dataChange": True,
                     "stats": json.dumps({"numRecords": rows.num_rows})})
    return adds


def test_void_columns_load_as_nulls_typed_text(url, conn, tmp_path, duckdb_delta):
    """A `void` column (Spark's NullType) is in no data file (PROTOCOL.md "Void Type"): it
    loads as NULL in every row, a `text` column in a table the import creates, as deltalake
    and polars read it (a column of nulls); DuckDB's delta extension (delta-kernel) refuses the
    type. A `void` inside a struct, list or map is refused by name."""
    import polars as pl
    import pyarrow as pa

    schema = {"type": "struct", "fields": [
        {"name": "id", "type": "long", "nullable": True, "metadata": {}},
        {"name": "nothing", "type": "void", "nullable": True, "metadata": {}},
        {"name": "label", "type": "string", "nullable": True, "metadata": {}},
    ]}
    table = tmp_path / "void"
    hand_table(table, schema, [(pa.table({"id": pa.array([1, 2], pa.int64()), "label": ["a", None]}), {}),
                               (pa.table({"id": pa.array([3], pa.int64()), "label": ["c"]}), {})])
    want = [(1, None, "a"), (2, None, None), (3, None, "c")]
    theirs = deltalake.DeltaTable(str(table)).to_pyarrow_table().sort_by("id")
    assert theirs.schema.field("nothing").type == pa.null()
    assert [(r["id"], r["nothing"], r["label"]) for r in theirs.to_pylist()] == want
    assert pl.read_delta(str(table)).sort("id").rows() == want
    with pytest.raises(RuntimeError, match="Unsupported Delta table type: 'void'"):
        duckdb_delta(f"SELECT * FROM delta_scan('{table}')")
    conn.execute("DROP TABLE IF EXISTS delta_void")
    out = pg_import_delta(url, table, "delta_void")
    assert out.returncode == 0, out.stderr
    assert conn.execute("SELECT id, nothing, label FROM delta_void ORDER BY id").fetchall() == want
    assert conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                        "'delta_void'::regclass AND attname = 'nothing'").fetchone() == ("text",)
    # Into a table that exists, the column of any type takes the NULLs.
    conn.execute("DROP TABLE IF EXISTS delta_void_into")
    conn.execute("CREATE TABLE delta_void_into (id bigint, nothing int, label text)")
    out = subprocess.run([pgarrow_bin(), "import", "-d", url, "--quiet", "--delta", str(table), "--into",
                          "delta_void_into"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert conn.execute("SELECT id, nothing, label FROM delta_void_into ORDER BY id").fetchall() == want
    # A struct's void field (the files' struct lacks it) is NULL in each row, as deltalake reads it.
    nested = {"type": "struct", "fields": [
        {"name": "id", "type": "long", "nullable": True, "metadata": {}},
        {"name": "s", "type": {"type": "struct", "fields": [
            {"name": "a", "type": "long", "nullable": True, "metadata": {}},
            {"name": "v", "type": "void", "nullable": True, "metadata": {}}]}, "nullable": True, "metadata": {}},
    ]}
    inner = tmp_path / "void_field"
    hand_table(inner, nested, [(pa.table({"id": pa.array([1, 2], pa.int64()),
                                          "s": pa.array([{"a": 1}, None], pa.struct([("a", pa.int64())]))}), {})])
    theirs = deltalake.DeltaTable(str(inner)).to_pyarrow_table().sort_by("id").to_pylist()
    assert theirs == [{"id": 1, "s": {"a": 1, "v": None}}, {"id": 2, "s": None}], theirs
    conn.execute("DROP TABLE IF EXISTS delta_void_field")
    out = pg_import_delta(url, inner, "delta_void_field")
    assert out.returncode == 0, out.stderr
    assert conn.execute("SELECT id, s FROM delta_void_field ORDER BY id").fetchall() == [
        (r["id"], r["s"]) for r in theirs]
    # A list of void (which no writer may write into a file): refused by name, a data error,
    # nothing loaded.
    nested["fields"][1] = {"name": "s", "type": {"type": "array", "elementType": "void", "containsNull": True},
                           "nullable": True, "metadata": {}}
    items = tmp_path / "void_items"
    hand_table(items, nested, [(pa.table({"id": pa.array([1], pa.int64())}), {})])
    conn.execute("DROP TABLE IF EXISTS delta_void_items")
    out = pg_import_delta(url, items, "delta_void_items")
    assert out.returncode == 3 and '"s" has void items' in out.stderr, out.stderr
    assert conn.execute("SELECT to_regclass('delta_void_items')").fetchone() == (None,)


def test_widened_columns_and_partition_values_read_as_the_tables_types(url, conn, tmp_path, duckdb_delta):
    """Type widening (`typeWidening`, PROTOCOL.md "Type Widening"), laid out as the protocol
    says: a file written before each column was widened (integer to long, short to integer,
    float to double, date to timestamp_ntz, decimal(6,2) to decimal(10,4), integer to
    decimal(12,2) and to double, a struct's field and a list's items integer to long) is read
    as the table's type now, and so are the log's partition values of a widened partition
    column (an integer's read as a long, a date's as a timestamp_ntz); first with no file of
    the new types, then with one. A change the protocol does not allow is refused by name."""
    import pyarrow as pa

    def field(name, ty, changes=None):
        return {"name": name, "type": ty, "nullable": True,
                "metadata": {"delta.typeChanges": changes} if changes else {}}

    def change(a, b, path=None):
        return {"fromType": a, "toType": b, **({"fieldPath": path} if path else {})}

    before = {"type": "struct", "fields": [
        field("id", "long"), field("i", "integer"), field("s", "short"), field("f", "float"), field("d", "date"),
        field("m", "decimal(6,2)"), field("n", "integer"), field("x", "integer"),
        field("st", {"type": "struct", "fields": [field("a", "integer")]}),
        field("l", {"type": "array", "elementType": "short", "containsNull": True}),
        field("p", "integer"), field("pd", "date"),
    ]}
    after = {"type": "struct", "fields": [
        field("id", "long"), field("i", "long", [change("integer", "long")]),
        field("s", "integer", [change("short", "integer")]), field("f", "double", [change("float", "double")]),
        field("d", "timestamp_ntz", [change("date", "timestamp_ntz")]),
        field("m", "decimal(10,4)", [change("decimal(6,2)", "decimal(10,4)")]),
        field("n", "decimal(12,2)", [change("integer", "decimal(12,2)")]),
        field("x", "double", [change("integer", "double")]),
        field("st", {"type": "struct", "fields": [field("a", "long", [change("integer", "long")])]}),
        field("l", {"type": "array", "elementType": "integer", "containsNull": True},
              [change("short", "integer", "element")]),
        field("p", "long", [change("integer", "long")]), field("pd", "timestamp_ntz", [change("date", "timestamp_ntz")]),
    ]}
    old = pa.table({
        "id": pa.array([1, 2], pa.int64()), "i": pa.array([2147483647, None], pa.int32()),
        "s": pa.array([-32768, 1], pa.int16()), "f": pa.array([1.5, None], pa.float32()),
        "d": pa.array([datetime.date(2026, 1, 1), None]), "m": pa.array([Decimal("1234.56"), None], pa.decimal128(6, 2)),
        "n": pa.array([-5, None], pa.int32()), "x": pa.array([7, None], pa.int32()),
        "st": pa.array([{"a": 1}, None], pa.struct([("a", pa.int32())])),
        "l": pa.array([[1, 2], None], pa.list_(pa.int16())),
    })
    features = ["typeWidening", "timestampNtz"]
    table = tmp_path / "widened"
    actions = hand_table(table, before, [(old, {"p": "7", "pd": "2026-01-02"})],
                         partition_columns=["p", "pd"],
                         protocol={"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": features,
                                   "writerFeatures": features},
                         configuration={"delta.enableTypeWidening": "true"})
    metadata = next(a["metaData"] for a in actions if "metaData" in a)
    log = table / "_delta_log"
    (log / f"{1:020}.json").write_text(json.dumps({"metaData": {**metadata, "schemaString": json.dumps(after)}}) + "\n")
    query = ("SELECT id, i, s, f, d::text, m::text, n::text, x, st::text, l::text, p, pd::text FROM {} ORDER BY id")
    want = [
        (1, 2147483647, -32768, 1.5, "2026-01-01 00:00:00", "1234.5600", "-5.00", 7.0, '{"a": 1}', "{1,2}", 7,
         "2026-01-02 00:00:00"),
        (2, None, 1, None, None, None, None, None, None, None, 7, "2026-01-02 00:00:00"),
    ]
    conn.execute("DROP TABLE IF EXISTS delta_widened_old, delta_widened")
    out = pg_import_delta(url, table, "delta_widened_old")
    assert out.returncode == 0, out.stderr
    assert conn.execute(query.format("delta_widened_old")).fetchall() == want
    types = conn.execute("SELECT string_agg(format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute "
                         "WHERE attrelid = 'delta_widened_old'::regclass AND attnum > 0").fetchone()[0]
    assert types == ("bigint, bigint, integer, double precision, timestamp without time zone, numeric(10,4), "
                     "numeric(12,2), double precision, jsonb, integer[], bigint, timestamp without time zone"), types
    new = pa.table({
        "id": pa.array([3], pa.int64()), "i": pa.array([9000000000], pa.int64()),
        "s": pa.array([100000], pa.int32()), "f": pa.array([0.1], pa.float64()),
        "d": pa.array([datetime.datetime(2026, 1, 3, 4, 5, 6)], pa.timestamp("us")),
        "m": pa.array([Decimal("123456.7891")], pa.decimal128(10, 4)),
        "n": pa.array([Decimal("10.25")], pa.decimal128(12, 2)), "x": pa.array([2.5], pa.float64()),
        "st": pa.array([{"a": 5000000000}], pa.struct([("a", pa.int64())])),
        "l": pa.array([[70000]], pa.list_(pa.int32())),
    })
    adds = data_adds(table, [(new, {"p": "9000000000", "pd": "2026-01-03 04:05:06"})])
    (log / f"{2:020}.json").write_text(json.dumps({"add": adds[0]}) + "\n")
    want.append((3, 9000000000, 100000, 0.1, "2026-01-03 04:05:06", "123456.7891", "10.25", 2.5, '{"a": 5000000000}',
                 "{70000}", 9000000000, "2026-01-03 04:05:06"))
    out = pg_import_delta(url, table, "delta_widened")
    assert out.returncode == 0, out.stderr
    assert conn.execute(query.format("delta_widened")).fetchall() == want
    # deltalake 1.6.6 does not read the feature. DuckDB's delta extension (delta-kernel) reads
    # the same rows, once the partition value written as a date is spelled as a timestamp_ntz:
    # it refuses to parse `2026-01-02` as one (pgarrow casts the text to the type, midnight).
    with pytest.raises(Exception, match="(?i)typeWidening|2026-01-02"):
        deltalake.DeltaTable(str(table)).to_pyarrow_table()
    with pytest.raises(RuntimeError, match="Failed to parse value '2026-01-02' as 'timestamp_ntz'"):
        duckdb_delta(f"SELECT * FROM delta_scan('{table}')")
    spelled = tmp_path / "widened_spelled"
    shutil.copytree(table, spelled)
    first = spelled / "_delta_log" / f"{0:020}.json"
    first.write_text(first.read_text().replace('"pd": "2026-01-02"', '"pd": "2026-01-02 00:00:00"'))
    theirs = duckdb_delta(f"SELECT id, i, s, f, d, m, n, x, st, l, p, pd FROM delta_scan('{spelled}') ORDER BY id")
    ours = conn.execute("SELECT id, i, s, f, d, m, n, x, st, l, p, pd FROM delta_widened ORDER BY id").fetchall()
    assert [tuple(r) for r in theirs] == ours
    # A change type widening does not make (a string to a long): refused by name, nothing loaded.
    after["fields"][0] = field("id", "long", [change("string", "long")])
    (log / f"{3:020}.json").write_text(json.dumps({"metaData": {**metadata, "schemaString": json.dumps(after)}}) + "\n")
    conn.execute("DROP TABLE IF EXISTS delta_widened_bad")
    out = pg_import_delta(url, table, "delta_widened_bad")
    assert out.returncode == 3 and '"id" was changed from string to long' in out.stderr, out.stderr
    assert conn.execute("SELECT to_regclass('delta_widened_bad')").fetchone() == (None,)


def test_log_compaction_files_are_neither_commits_nor_checkpoints(url, conn, tmp_path, duckdb_delta):
    """A log compaction file (`x.y.compacted.json`, the commits x to y reconciled, which a
    reader may read in their place) beside the commits it sums up: the import reads the
    commits (the protocol leaves the choice to the reader) and loads what deltalake and
    DuckDB's delta extension read; the listing takes it for no commit and no checkpoint."""
    import pyarrow as pa

    table = tmp_path / "compacted"
    deltalake.write_deltalake(str(table), pa.table({"id": pa.array([1, 2], pa.int64())}))
    deltalake.write_deltalake(str(table), pa.table({"id": pa.array([3], pa.int64())}), mode="append")
    deltalake.DeltaTable(str(table)).delete("id = 1")
    log = table / "_delta_log"
    # Commits 0 to 2 reconciled as PROTOCOL.md says: the last protocol and metadata, each
    # file's newest action, no commitInfo.
    live, protocol, metadata = {}, None, None
    for v in range(3):
        for action in commit_lines(log / f"{v:020}.json"):
            if "protocol" in action:
                protocol = action
            elif "metaData" in action:
                metadata = action
            elif "add" in action or "remove" in action:
                live[(action.get("add") or action.get("remove"))["path"]] = action
    lines = [protocol, metadata, *live.values()]
    (log / f"{0:020}.{2:020}.compacted.json").write_text("".join(json.dumps(a) + "\n" for a in lines))
    assert sum("remove" in a for a in lines) == 1 and sum("add" in a for a in lines) == 2
    want = [2, 3]
    assert sorted(deltalake.DeltaTable(str(table)).to_pyarrow_table()["id"].to_pylist()) == want
    assert [r[0] for r in duckdb_delta(f"SELECT id FROM delta_scan('{table}') ORDER BY id")] == want
    conn.execute("DROP TABLE IF EXISTS delta_compacted")
    out = pg_import_delta(url, table, "delta_compacted")
    assert out.returncode == 0, out.stderr
    assert [r[0] for r in conn.execute("SELECT id FROM delta_compacted ORDER BY id").fetchall()] == want
