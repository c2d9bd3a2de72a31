"""Files laid out the way readers query them: value partitions as Hive-style directories,
files rolled by rows and size, and the Parquet options readers use (bloom filters, the page
index, field IDs), each read back by readers nobody here wrote: pyarrow's datasets, DuckDB,
polars."""

import json
import os
import subprocess
from datetime import date
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import pgarrow

# Odd partition values: a separator, the key's `=`, spaces, unicode, a percent sign, a dot
# pair, the empty string and NULL; each must come back as itself.
ODD = ["a/b", "x=y", "with space", "ünï😀", "%41", "..", "", None, "plain"]


def pgarrow_bin() -> str:
    path = os.environ.get("PGARROW_BIN")
    if not path:
        pytest.fail("PGARROW_BIN is not set: run the suite through `cargo test -p pgarrow-python`")
    return path


def cli(url: str, *args: str) -> dict:
    out = subprocess.run(
        [pgarrow_bin(), "export", "-d", url, "--quiet", "--json", *args],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def events(url):
    """3,000 events over 40 days, a text key with odd values, and an amount."""
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS layout_events")
        c.execute(
            "CREATE TABLE layout_events (id bigint PRIMARY KEY, day date, at timestamptz,"
            " k text, amount numeric(12,2), note text)"
        )
        with c.cursor() as cur:
            cur.executemany(
                "INSERT INTO layout_events VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (
                        i,
                        date.fromordinal(date(2026, 10, 1).toordinal() + i % 40),
                        "2026-10-01 00:00:00+00",
                        ODD[i % len(ODD)],
                        f"{i}.{i % 100:02d}",
                        f"note {i * 7919 % 1000}",
                    )
                    for i in range(3000)
                ],
            )
        c.execute("UPDATE layout_events SET at = at + (id || ' hours')::interval")
        yield "layout_events"
        c.execute("DROP TABLE IF EXISTS layout_events")


def source_rows(conn, order="id"):
    return conn.execute(f"SELECT id, day, k, note FROM layout_events ORDER BY {order}").fetchall()


def manifest(path: Path) -> dict:
    return json.loads((path / "_manifest.json").read_text())


def test_value_partitions_are_read_back_by_pyarrow_duckdb_and_polars(url, conn, events, tmp_path):
    import duckdb  # in CI's requirements: missing is a failure, not a skip
    import polars as pl

    out = tmp_path / "events"
    stats = cli(url, "-t", events, "--output-dir", str(out), "--files-by", "day(day)", "--files-by", "k")
    assert stats["rows"] == 3000
    m = manifest(out)
    assert m["layout"]["partitions"] == [
        {"column": "day", "transform": "day"},
        {"column": "k", "transform": "identity"},
    ]
    assert sum(f["rows"] for f in m["files"]) == 3000
    # 40 days times 9 values: one file each (one connection, one part).
    assert len(m["files"]) == 40 * len(ODD)
    for f in m["files"]:
        assert f["path"].startswith(f"day_day={f['values'][0]['value']}/k=")
        assert (out / f["path"]).is_file()
    # The identity column lives in the directories only.
    one = pq.read_schema(out / m["files"][0]["path"])
    assert "k" not in one.names and "day" in one.names

    expected = source_rows(conn)
    schema = pa.schema([("day_day", pa.string()), ("k", pa.string())])

    def check(rows):
        rows = sorted(rows, key=lambda r: r[0])
        assert [(r[0], r[1], r[3]) for r in rows] == [(e[0], e[1], e[3]) for e in expected]
        for (_, _, k, _), e in zip(rows, expected):
            assert k == e[2], (k, e)

    # pyarrow: hive partitioning, with its default segment decoding (URIs).
    table = ds.dataset(out, format="parquet", partitioning=ds.partitioning(schema, flavor="hive")).to_table()
    check(zip(table["id"].to_pylist(), table["day"].to_pylist(), table["k"].to_pylist(), table["note"].to_pylist()))
    inferred = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    assert inferred.num_rows == 3000
    assert set(inferred["k"].to_pylist()) == set(ODD)

    # DuckDB: partition values typed from the directories (the day as a DATE).
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT id, day, k, note, day_day FROM read_parquet('{out}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    check([r[:4] for r in rows])
    assert all(r[4] == r[1] for r in rows)
    assert con.execute(
        f"SELECT typeof(day_day) FROM read_parquet('{out}/**/*.parquet', hive_partitioning=true) LIMIT 1"
    ).fetchone()[0] == "DATE"
    # A filter on the partition reads its directory only.
    n = con.execute(
        f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet', hive_partitioning=true)"
        " WHERE day_day = DATE '2026-10-05'"
    ).fetchone()[0]
    assert n == conn.execute("SELECT count(*) FROM layout_events WHERE day = '2026-10-05'").fetchone()[0]

    # polars.
    frame = pl.scan_parquet(f"{out}/**/*.parquet", hive_partitioning=True).collect()
    check(zip(frame["id"].to_list(), frame["day"].to_list(), frame["k"].to_list(), frame["note"].to_list()))


def test_transforms_name_directories_as_iceberg_does(url, conn, events, tmp_path):
    out = tmp_path / "t"
    cli(
        url, "-q", f"SELECT id, at, amount, note FROM {events}", "--output-dir", str(out),
        "--files-by", "month(at)", "--files-by", "bucket(4, id)", "--files-by", "truncate(100, amount)",
    )
    m = manifest(out)
    names = {tuple(v["name"] for v in f["values"]) for f in m["files"]}
    assert names == {("at_month", "id_bucket", "amount_trunc")}
    months = {f["values"][0]["value"] for f in m["files"]}
    assert months == {"2026-10", "2026-11", "2026-12", "2027-01", "2027-02"}
    buckets = {int(f["values"][1]["value"]) for f in m["files"]}
    assert buckets <= {0, 1, 2, 3} and len(buckets) == 4
    for f in m["files"]:
        t = pq.read_table(out / f["path"])
        # Every row is in its directory: amounts truncated to a multiple of 100 (cents are
        # the scale: 1.00).
        low = float(f["values"][2]["value"])
        assert all(low <= float(a) < low + 1 for a in t["amount"].to_pylist())
        assert all(a.strftime("%Y-%m") == f["values"][0]["value"] for a in t["at"].to_pylist())
        assert len(t) == f["rows"]


def test_laid_out_files_load_back_with_their_partition_columns(url, conn, events, tmp_path):
    out = tmp_path / "back"
    pgarrow.export_dataset(url, table=events, output_dir=out, files_by=["k", "day(day)"], max_file_rows=100)
    conn.execute("DROP TABLE IF EXISTS layout_back")
    conn.execute("CREATE TABLE layout_back (LIKE layout_events)")
    stats = pgarrow.write(url, "layout_back", out)
    assert stats["rows"] == 3000
    diff = conn.execute(
        "SELECT count(*) FROM ((TABLE layout_events EXCEPT ALL TABLE layout_back)"
        " UNION ALL (TABLE layout_back EXCEPT ALL TABLE layout_events)) d"
    ).fetchone()[0]
    assert diff == 0
    conn.execute("DROP TABLE layout_back")


def test_files_roll_at_rows_and_size(url, conn, events, tmp_path):
    by_rows = tmp_path / "rows"
    cli(url, "-t", events, "--output-dir", str(by_rows), "--max-file-rows", "700")
    files = manifest(by_rows)["files"]
    assert [f["rows"] for f in files] == [700, 700, 700, 700, 200]
    for f in files:
        assert pq.ParquetFile(by_rows / f["path"]).metadata.num_rows == f["rows"]

    conn.execute("DROP TABLE IF EXISTS layout_wide")
    conn.execute(
        "CREATE TABLE layout_wide AS SELECT i, md5(i::text) || md5((i * 7)::text) AS h"
        " FROM generate_series(1, 60000) i"
    )
    by_size = tmp_path / "size"
    cli(url, "-t", "layout_wide", "--output-dir", str(by_size), "--max-file-size", "256KiB", "--compression", "none")
    files = manifest(by_size)["files"]
    assert len(files) >= 8
    for f in files:
        size = (by_size / f["path"]).stat().st_size
        assert size == f["bytes"] and size <= 256 * 1024, f
    # Near the limit, not a fraction of it.
    assert all(f["bytes"] > 128 * 1024 for f in files[:-1])
    assert sum(f["rows"] for f in files) == 60000
    conn.execute("DROP TABLE layout_wide")


def test_many_partitions_stay_within_the_memory_limit(url, conn, tmp_path):
    conn.execute("DROP TABLE IF EXISTS layout_many")
    conn.execute(
        "CREATE TABLE layout_many AS SELECT i, repeat(md5(i::text), 16) AS pad"
        " FROM generate_series(1, 200000) i"
    )
    out = tmp_path / "many"
    stats = cli(
        url, "-t", "layout_many", "--output-dir", str(out), "--files-by", "bucket(2000, i)",
        "--memory-limit", "64MiB",
    )
    # 200,000 rows of 512 bytes: 100 MiB of text, more than the limit.
    assert stats["rows"] == 200000
    # The process's own baseline (code, runtime, connection) is about 30 MiB; before pending
    # rows were counted by the batches they keep alive, this export peaked at 156 MiB.
    assert stats["peak_rss"] < (64 + 64) * 1024 * 1024, stats["peak_rss"]
    files = manifest(out)["files"]
    assert len({f["values"][0]["value"] for f in files}) == 2000
    # Spilled to disk and written out partition by partition: one file each.
    assert len(files) == 2000
    assert sum(f["rows"] for f in files) == 200000
    conn.execute("DROP TABLE layout_many")


def test_parquet_options_readers_use(url, conn, events, tmp_path):
    import duckdb

    path = tmp_path / "opts.parquet"
    cli(
        url, "-t", events, "-o", str(path), "--bloom-filter", "note:0.01", "--field-ids",
        "--column-encoding", "id=delta", "--data-page-v2",
    )
    f = pq.ParquetFile(path)
    group = f.metadata.row_group(0)
    names = [group.column(i).path_in_schema for i in range(group.num_columns)]
    note = group.column(names.index("note"))
    assert note.bloom_filter_offset is not None and note.bloom_filter_offset > 0
    assert group.column(names.index("k")).bloom_filter_offset in (None, 0, -1)
    assert all(group.column(i).has_column_index and group.column(i).has_offset_index for i in range(group.num_columns))
    assert "DELTA_BINARY_PACKED" in group.column(names.index("id")).encodings
    ids = {field.name: int(field.metadata[b"PARQUET:field_id"]) for field in f.schema_arrow}
    assert ids == {"id": 1, "day": 2, "at": 3, "k": 4, "amount": 5, "note": 6}
    # DuckDB uses the filter: a value no row has excludes the row group, one it has does not.
    probe = lambda v: duckdb.execute(  # noqa: E731
        f"SELECT bloom_filter_excludes FROM parquet_bloom_probe('{path}', 'note', '{v}')"
    ).fetchall()
    assert probe("no such note") == [(True,)]
    assert probe("note 7") == [(False,)]
    # Importing such a file keeps working.
    conn.execute("DROP TABLE IF EXISTS layout_opts")
    conn.execute("CREATE TABLE layout_opts (LIKE layout_events)")
    assert pgarrow.write(url, "layout_opts", path)["rows"] == 3000
    conn.execute("DROP TABLE layout_opts")


def test_sorted_by_names_the_order_in_every_row_group_and_refuses_a_false_one(url, events, tmp_path):
    """`sorted_by`: every row group's `sorting_columns` name the query's ORDER BY (read by
    pyarrow), for one file, laid-out files and several connections; rows out of that order
    fail the export, by row and column, and leave no file behind."""
    # Text in byte order (COLLATE "C"), as Parquet compares it.
    query = f'SELECT * FROM {events} ORDER BY k COLLATE "C" DESC, id'

    path = tmp_path / "sorted.parquet"
    pgarrow.export_file(url, query, path=path, sorted_by=["k:desc", "id"], row_group_rows=500)
    f = pq.ParquetFile(path)
    names = f.schema_arrow.names
    want = (
        pq.SortingColumn(names.index("k"), descending=True, nulls_first=True),
        pq.SortingColumn(names.index("id"), descending=False, nulls_first=False),
    )
    assert f.metadata.num_row_groups == 6
    for g in range(f.metadata.num_row_groups):
        assert f.metadata.row_group(g).sorting_columns == want
    # The claim is true: pyarrow's own sort changes nothing.
    table = f.read()
    order = pc.sort_indices(table, sort_keys=[("k", "descending"), ("id", "ascending")], null_placement="at_start")
    assert order.to_pylist() == list(range(table.num_rows))
    # Each laid-out file of a partition has it too.
    out = tmp_path / "sorted_dir"
    pgarrow.export_dataset(url, f"SELECT * FROM {events} ORDER BY id", output_dir=out, files_by="k", sorted_by="id")
    files = sorted(out.rglob("*.parquet"))
    assert files and all(
        pq.ParquetFile(p).metadata.row_group(0).sorting_columns[0].descending is False for p in files
    )
    # A false claim fails, the row named, and no file is left.
    bad = tmp_path / "unsorted.parquet"
    with pytest.raises(pgarrow.Error) as e:
        pgarrow.export_file(url, f"SELECT * FROM {events} ORDER BY id DESC", path=bad, sorted_by="id")
    assert "not sorted by id:asc: row 2 of the file" in str(e.value), e.value
    assert not bad.exists()
    with pytest.raises(pgarrow.Error, match="no such column"):
        pgarrow.export_file(url, query, path=tmp_path / "x.parquet", sorted_by="nope")


def test_layout_mistakes_are_named(url, events, tmp_path):
    def fails(*args):
        out = subprocess.run([pgarrow_bin(), "export", "-d", url, "--quiet", *args], capture_output=True, text=True)
        assert out.returncode == 2, out
        return out.stderr

    assert "give --output-dir" in fails("-t", events, "-o", str(tmp_path / "x.parquet"), "--files-by", "k")
    assert "no column \"nope\"" in fails("-t", events, "--output-dir", str(tmp_path / "d"), "--files-by", "nope")
    assert "takes a date or a timestamp" in fails("-t", events, "--output-dir", str(tmp_path / "d"), "--files-by", "day(k)")
    assert "unknown transform" in fails("-t", events, "--output-dir", str(tmp_path / "d"), "--files-by", "week(day)")
    assert not (tmp_path / "d" / "_manifest.json").exists()
    with pytest.raises(pgarrow.UsageError, match="export_dataset"):
        pgarrow.export_file(url, table=events, path=tmp_path / "y.parquet", files_by="k")
    with pytest.raises(pgarrow.UsageError, match="files_by"):
        pgarrow.export_dataset(url, table=events, output_dir=tmp_path / "z", files_by="bucket(0, id)")


@pytest.fixture
def two_tables(conn):
    """A schema of two tables that share a `day` column: several tables laid out at once."""
    conn.execute("DROP SCHEMA IF EXISTS layout_s CASCADE")
    conn.execute("CREATE SCHEMA layout_s")
    conn.execute(
        "CREATE TABLE layout_s.a AS SELECT i AS id, date '2026-11-01' + i % 5 AS day,"
        " 'a' || i AS v FROM generate_series(1, 1000) i"
    )
    conn.execute(
        "CREATE TABLE layout_s.b AS SELECT i AS id, date '2026-11-03' + i % 4 AS day,"
        " i * 1.5 AS x FROM generate_series(1, 600) i"
    )
    yield "layout_s"
    conn.execute("DROP SCHEMA layout_s CASCADE")


def check_tables_laid_out(conn, out: Path) -> dict:
    """Each table's files in its own directory, Hive-partitioned by day, rows equal to the
    table's; returns the manifest."""
    m = manifest(out)
    assert m["layout"]["partitions"] == [{"column": "day", "transform": "identity"}]
    for name, days in (("a", 5), ("b", 4)):
        files = [f for f in m["files"] if f["table"] == {"schema": "layout_s", "name": name}]
        assert {f["values"][0]["value"] for f in files} == {
            str(d) for (d,) in conn.execute(f"SELECT DISTINCT day FROM layout_s.{name}").fetchall()
        }
        assert len({f["values"][0]["value"] for f in files}) == days
        for f in files:
            assert f["path"].startswith(f"layout_s.{name}/day=")
            assert pq.ParquetFile(out / f["path"]).metadata.num_rows == f["rows"] <= 150
        # Read back by pyarrow as a Hive dataset: the day comes from the directories.
        t = ds.dataset(out / f"layout_s.{name}", format="parquet", partitioning="hive").to_table()
        got = sorted(zip(t["id"].to_pylist(), [str(d) for d in t["day"].to_pylist()]))
        want = [(i, str(d)) for i, d in conn.execute(f"SELECT id, day FROM layout_s.{name} ORDER BY id")]
        assert got == want
    return m


def test_several_tables_are_laid_out_each_in_its_directory(url, conn, two_tables, tmp_path):
    out = tmp_path / "cli"
    stats = cli(url, "--schema", two_tables, "--output-dir", str(out), "--files-by", "day", "--max-file-rows", "150")
    assert stats["rows"] == 1600
    m = check_tables_laid_out(conn, out)
    assert m["snapshot"] and len(m["files"]) > 9

    py = tmp_path / "py"
    stats = pgarrow.export_tables(url, py, schema=two_tables, files_by="day", max_file_rows=150, memory_limit="64MiB")
    assert stats["rows"] == 1600
    check_tables_laid_out(conn, py)


def test_a_table_without_the_partition_column_fails_and_leaves_nothing(url, conn, two_tables, tmp_path):
    conn.execute("CREATE TABLE layout_s.c (id int, other date)")
    conn.execute("INSERT INTO layout_s.c VALUES (1, '2026-11-01')")
    out = tmp_path / "out"
    run = subprocess.run(
        [pgarrow_bin(), "export", "-d", url, "--quiet", "--schema", two_tables, "--output-dir", str(out), "--files-by", "day"],
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert "layout_s.c" in run.stderr and "no column \"day\"" in run.stderr, run.stderr
    # The tables before it were written, then removed with the run: no file, no manifest.
    assert not (out / "_manifest.json").exists()
    assert list(out.rglob("*")) == []


def test_incremental_runs_are_laid_out(url, conn, tmp_path):
    conn.execute("DROP TABLE IF EXISTS layout_inc")
    conn.execute(
        "CREATE TABLE layout_inc AS SELECT i AS id, date '2026-11-01' + i % 3 AS day"
        " FROM generate_series(1, 300) i"
    )
    out, state = tmp_path / "runs", tmp_path / "state.json"
    args = ("-t", "layout_inc", "--incremental-by", "id", "--state", str(state), "--output-dir", str(out), "--files-by", "day")
    assert cli(url, *args)["rows"] == 300
    conn.execute("INSERT INTO layout_inc SELECT i, date '2026-11-05' FROM generate_series(301, 340) i")
    assert cli(url, *args)["rows"] == 40
    first, second = manifest(out / "run-000001"), manifest(out / "run-000002")
    assert {f["values"][0]["value"] for f in first["files"]} == {"2026-11-01", "2026-11-02", "2026-11-03"}
    assert [f["values"][0]["value"] for f in second["files"]] == ["2026-11-05"]
    assert second["files"][0]["path"].startswith("day=2026-11-05/")
    # Python's runs too, into their own directories.
    py_state = tmp_path / "py.json"
    r = pgarrow.export_incremental(url, "layout_inc", by="id", state=py_state, output_dir=tmp_path / "py", files_by="day")
    assert r["rows"] == 340
    t = ds.dataset(tmp_path / "py" / "run-000001", format="parquet", partitioning="hive").to_table()
    assert sorted(t["id"].to_pylist()) == list(range(1, 341))
    with pytest.raises(pgarrow.UsageError, match="output_dir"):
        pgarrow.export_incremental(url, "layout_inc", by="id", state=tmp_path / "f.json", path=tmp_path / "f.parquet", files_by="day")
    conn.execute("DROP TABLE layout_inc")


def test_lossy_conversions_of_laid_out_files_are_in_the_manifest(url, conn, tmp_path):
    conn.execute("DROP TABLE IF EXISTS layout_loss")
    conn.execute(
        "CREATE TABLE layout_loss AS SELECT i AS id, i % 2 AS k,"
        " CASE WHEN i % 10 = 0 THEN 'infinity'::timestamp ELSE timestamp '2026-01-01' END AS at"
        " FROM generate_series(1, 100) i"
    )
    out = tmp_path / "loss"
    cli(url, "-t", "layout_loss", "--output-dir", str(out), "--files-by", "k", "--infinity", "null")
    assert manifest(out)["lossy_conversions"] == "at: 10 infinity written as NULL"
    conn.execute("DROP TABLE layout_loss")
