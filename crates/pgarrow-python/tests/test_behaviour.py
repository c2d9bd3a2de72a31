"""How the package behaves: errors, streaming in bounded memory, Ctrl-C, the GIL, the
polars/pandas front doors, files, and the Arrow PyCapsule stream."""

import _thread
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pgarrow
from conftest import backends

# 100 rows of 1 kB reach the client (past the server's 8 kB send buffer), then the server
# sleeps without writing.
SLOW = (
    "SELECT g, repeat('x', 1000) AS pad, CASE WHEN g > 100 THEN pg_sleep(60) IS NULL END AS s"
    " FROM generate_series(1, 1000) g"
)


def test_errors_carry_sqlstate_and_rows(url):
    with pytest.raises(pgarrow.QueryError) as e:
        pgarrow.read_arrow(url, "SELECT * FROM no_such_table")
    assert e.value.sqlstate == "42P01"
    assert "no_such_table" in e.value.server_message
    assert e.value.rows is None

    reader = pgarrow.read_batches(url, "SELECT 1 / (3000 - g) AS x FROM generate_series(1, 5000) g", batch_rows=1000)
    got = 0
    with pytest.raises(pgarrow.QueryError) as e:
        for batch in reader:
            got += batch.num_rows
    assert e.value.sqlstate == "22012"
    assert got == 2000
    assert e.value.rows == 2000
    assert isinstance(e.value, pgarrow.Error)

    with pytest.raises(pgarrow.ConnectError):
        pgarrow.read_arrow(url.rsplit("/", 1)[0] + "/no_such_db", "SELECT 1")
    with pytest.raises(ValueError):
        pgarrow.read_arrow("postgresql://host:notaport/db", "SELECT 1")


def test_streaming_keeps_memory_bounded(url):
    # A child process, so that its peak RSS is this read's alone: ~380 MB of Arrow data in
    # 20k-row batches.
    script = textwrap.dedent(
        f"""
        import resource, pgarrow
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        total = rows = 0
        for b in pgarrow.read_batches({url!r},
                "SELECT g, repeat('x', 180) AS pad FROM generate_series(1, 2000000) g",
                batch_rows=20000):
            total += b.nbytes
            rows += b.num_rows
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(rows, total, (peak - base) * 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    rows, total, grown = map(int, out.stdout.split())
    assert rows == 2_000_000
    assert total > 350_000_000
    assert grown < total / 4, f"peak RSS grew by {grown} bytes reading {total} bytes"


def test_keyboard_interrupt_cancels_the_query(url, conn, python_sigint):
    marker = "kbint_marker"

    def interrupt_when_running():
        while backends(conn, marker) == 0:
            time.sleep(0.01)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        pgarrow.read_arrow(url, f"SELECT /* {marker} */ pg_sleep(60)")
    assert time.monotonic() - start < 10
    deadline = time.monotonic() + 2
    while backends(conn, marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backends(conn, marker) == 0, "the server query is still running"


def test_keyboard_interrupt_while_streaming(url, conn, python_sigint):
    marker = "kbint_stream"
    reader = pgarrow.read_batches(url, SLOW.replace("SELECT", f"SELECT /* {marker} */"), batch_rows=20)
    assert reader.read_next_batch().num_rows == 20
    threading.Timer(0.3, _thread.interrupt_main).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        for _ in reader:
            pass
    assert time.monotonic() - start < 10
    deadline = time.monotonic() + 2
    while backends(conn, marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backends(conn, marker) == 0


def test_gil_is_released(url):
    ticks = 0
    done = threading.Event()

    def count():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    try:
        # One half-second sleep (an InitPlan, run once), then the rows.
        table = pgarrow.read_arrow(url, "SELECT (SELECT pg_sleep(0.5)) IS NULL AS s, g FROM generate_series(1, 1000) g")
    finally:
        done.set()
        t.join()
    assert table.num_rows == 1000
    # Half a second in the server: with the GIL held the thread could not have ticked.
    assert ticks > 50, ticks


def test_polars_and_pandas_give_the_same_values(url):
    query = "SELECT g AS id, g * 1.5 AS f, 'r' || g AS s, DATE '2024-01-01' + g AS d FROM generate_series(1, 1000) g"
    table = pgarrow.read_arrow(url, query)
    df = pgarrow.read_polars(url, query)
    assert df.shape == (1000, 4)
    assert df["id"].to_list() == table.column("id").to_pylist()
    assert df["s"].to_list() == table.column("s").to_pylist()
    assert df["d"].to_list() == table.column("d").to_pylist()
    pdf = pgarrow.read_pandas(url, query)
    assert pdf["id"].tolist() == table.column("id").to_pylist()
    assert pdf["s"].tolist() == table.column("s").to_pylist()
    adf = pgarrow.read_pandas(url, query, arrow_dtypes=True)
    # numeric without a typmod is its exact text by default; Arrow dtypes keep it as such.
    assert pa.types.is_string(adf["f"].dtype.pyarrow_dtype)
    assert adf["id"].tolist() == table.column("id").to_pylist()


def test_missing_polars_is_a_clear_import_error(url, monkeypatch):
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(ImportError, match="pip install polars"):
        pgarrow.read_polars(url, "SELECT 1")


def test_export_files(url, conn, tmp_path):
    conn.execute("DROP TABLE IF EXISTS exported; CREATE TABLE exported AS SELECT g AS id, 'v' || g AS v FROM generate_series(1, 5000) g")
    path = tmp_path / "e.parquet"
    stats = pgarrow.export_file(url, "exported", path, compression="snappy", row_group_rows=1000)
    assert stats["rows"] == 5000
    assert stats["written"] == os.path.getsize(path)
    back = pq.read_table(path)
    assert back.num_rows == 5000
    assert sum(back.column("id").to_pylist()) == 5000 * 5001 // 2
    assert pq.ParquetFile(path).metadata.num_row_groups == 5

    arrow_path = tmp_path / "e.arrow"
    pgarrow.export_file(url, "SELECT id FROM exported WHERE id <= 10", arrow_path)
    assert pa.ipc.open_file(arrow_path).read_all().num_rows == 10

    bad = tmp_path / "bad.parquet"
    with pytest.raises(pgarrow.QueryError):
        pgarrow.export_file(url, "SELECT 1 / (id - 4000) FROM exported", bad)
    assert not bad.exists()
    assert sorted(os.listdir(tmp_path)) == ["e.arrow", "e.parquet"], "a temporary file is left"
    with pytest.raises(ValueError, match="format"):
        pgarrow.export_file(url, "exported", tmp_path / "e.csv")


def test_arrow_c_stream_for_any_consumer(url):
    from pgarrow import _pgarrow

    export = _pgarrow.Export(url, "SELECT g FROM generate_series(1, 300000) g", False, {"batch_rows": 100000})
    reader = pa.RecordBatchReader.from_stream(export)
    assert sum(b.num_rows for b in reader) == 300000
    # Handed out whole, the export's statistics stay where they were then.
    assert export.stats()["rows"] == 0
    with pytest.raises(pgarrow.Error, match="already consumed"):
        export.__arrow_c_stream__()


def test_keyboard_interrupt_during_a_file_export_leaves_nothing(url, conn, tmp_path, python_sigint):
    marker = "kbint_file"
    threading.Timer(0.5, _thread.interrupt_main).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        pgarrow.export_file(url, SLOW.replace("SELECT", f"SELECT /* {marker} */"), tmp_path / "x.parquet", batch_rows=20)
    assert time.monotonic() - start < 10
    assert os.listdir(tmp_path) == [], "a file or temporary file is left"
    deadline = time.monotonic() + 2
    while backends(conn, marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backends(conn, marker) == 0


def test_partitions_read_one_snapshot_over_several_connections(url, conn, tmp_path):
    conn.execute("DROP TABLE IF EXISTS parted")
    conn.execute(
        "CREATE TABLE parted AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 30000) g"
    )
    one = pgarrow.read_arrow(url, "parted").sort_by("id")
    for options in ({"partitions": 3, "parts": 7}, {"partitions": 2, "partition_by": "id"}):
        got = pgarrow.read_arrow(url, "parted", **options)
        assert got.sort_by("id").equals(one), options
    ordered = pgarrow.read_arrow(url, "parted", partitions=2, parts=5, order_preserving=True)
    assert ordered.column("id").to_pylist() == one.column("id").to_pylist()
    total = sum(b.num_rows for b in pgarrow.read_batches(url, table="parted", partitions=2, parts=4))
    assert total == 30000
    stats = pgarrow.export_file(url, "parted", tmp_path / "p.parquet", partitions=2, memory_limit="64MiB")
    assert stats["rows"] == 30000
    assert pq.read_table(tmp_path / "p.parquet").sort_by("id").equals(one)
    # A query is split on a column; one that cannot be split is refused, naming it.
    with pytest.raises(pgarrow.UsageError, match="--partition-by h"):
        pgarrow.read_arrow(url, "SELECT * FROM parted", partitions=2, partition_by="h")
    for bad in ({"partitions": 0}, {"snapshot": "none"}, {"memory_limit": "lots"}, {"order_preserving": "yes"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            pgarrow.read_arrow(url, "parted", **bad)
