"""The engine calls every door shares, from Python: several tables into a directory in one
snapshot, a partitioned export into a directory, loading files and manifest directories, copying
between databases, and errors sorted by what the caller can do."""

import json
import os

import pyarrow.parquet as pq
import pytest

import pgarrow

TABLES = """
DROP SCHEMA IF EXISTS d_sales CASCADE;
CREATE SCHEMA d_sales;
CREATE TABLE d_sales.orders AS SELECT g AS id, g * 2 AS amount FROM generate_series(1, 2500) g;
CREATE TABLE d_sales."Lines" AS SELECT g AS id FROM generate_series(1, 4) g;
"""


def test_several_tables_go_to_a_directory_with_a_manifest(url, conn, tmp_path):
    conn.execute(TABLES)
    out = tmp_path / "out"
    stats = pgarrow.export_tables(url, out, schema="d_sales")
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["pgarrow_manifest"] == 2
    assert stats["files"] == manifest["files"]
    assert stats["rows"] == manifest["rows"] == 2504
    assert stats["manifest"] == os.fspath(out / "_manifest.json")
    tables = [(f["table"]["schema"], f["table"]["name"]) for f in manifest["files"]]
    assert tables == [("d_sales", "Lines"), ("d_sales", "orders")]
    for f in manifest["files"]:
        assert pq.read_metadata(out / f["path"]).num_rows == f["rows"]

    # Patterns as the CLI reads them; the table list and the patterns combine.
    stats = pgarrow.export_tables(url, tmp_path / "one", table=["d_sales.ord*"], format="arrow")
    assert [f["path"] for f in stats["files"]] == ["d_sales.orders.arrow"]

    with pytest.raises(pgarrow.UsageError, match="nothing_here"):
        pgarrow.export_tables(url, tmp_path / "none", table="nothing_here")
    assert not (tmp_path / "none" / "_manifest.json").exists()
    with pytest.raises(pgarrow.UsageError, match="output_dir"):
        pgarrow.export_tables(url, schema="d_sales")
    with pytest.raises(pgarrow.UsageError, match="patterns"):
        pgarrow.export_tables(url, tmp_path / "p")
    with pytest.raises(ValueError, match="one table or query"):
        pgarrow.export_tables(url, tmp_path / "p", schema="d_sales", partitions=2)


def test_parts_and_files_load_back_through_their_manifest(url, conn, tmp_path):
    conn.execute(TABLES)
    parts = tmp_path / "parts"
    stats = pgarrow.export_dataset(url, "d_sales.orders", parts, partitions=2)
    assert stats["rows"] == 2500 and stats["connections"] >= 1
    manifest = json.loads((parts / "_manifest.json").read_text())
    assert all(f["part"] is not None for f in manifest["files"])

    conn.execute("DROP TABLE IF EXISTS d_sales.back; CREATE TABLE d_sales.back (id int, amount int)")
    loaded = pgarrow.write(url, "d_sales.back", parts)
    assert loaded["rows"] == 2500
    assert conn.execute("SELECT sum(amount) FROM d_sales.back").fetchone()[0] == 2500 * 2501

    # Files, as a list of paths.
    files = [parts / f["path"] for f in manifest["files"]]
    loaded = pgarrow.write(url, "d_sales.back", files, mode="replace")
    assert loaded["rows"] == 2500
    assert conn.execute("SELECT count(*) FROM d_sales.back").fetchone()[0] == 2500

    # A manifest whose counts are wrong loads nothing.
    manifest["files"][0]["rows"] += 1
    (parts / "_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(pgarrow.UsageError, match="its manifest says"):
        pgarrow.write(url, "d_sales.back", parts, mode="replace")
    assert conn.execute("SELECT count(*) FROM d_sales.back").fetchone()[0] == 2500
    with pytest.raises(pgarrow.UsageError, match="cannot tell the format"):
        pgarrow.write(url, "d_sales.back", tmp_path / "x.csv")


def test_copy_between_databases(url, conn):
    conn.execute(TABLES)
    conn.execute("DROP TABLE IF EXISTS d_sales.copied")
    stats = pgarrow.copy(url, "d_sales.orders", into="d_sales.copied", create=True, partitions=2)
    assert stats["rows"] == 2500 and stats["source"]["rows"] == 2500
    assert conn.execute("SELECT sum(amount) FROM d_sales.copied").fetchone()[0] == 2500 * 2501
    conn.execute("ALTER TABLE d_sales.copied ADD PRIMARY KEY (id)")
    stats = pgarrow.copy(
        url, "SELECT id, amount + 1 AS amount FROM d_sales.orders", into="d_sales.copied",
        mode="upsert", key="id",
    )
    assert stats["rows"] == 2500
    assert conn.execute("SELECT sum(amount) FROM d_sales.copied").fetchone()[0] == 2500 * 2501 + 2500
    with pytest.raises(pgarrow.UsageError, match="into="):
        pgarrow.copy(url, "SELECT 1")
    with pytest.raises(pgarrow.QueryError) as e:
        pgarrow.copy(url, "SELECT 1 / (g - 10) AS x FROM generate_series(1, 20) g", into="d_sales.nope", create=True)
    assert e.value.sqlstate == "22012"
    assert conn.execute("SELECT to_regclass('d_sales.nope') IS NULL").fetchone()[0]


def test_errors_are_classed_by_what_the_caller_can_do(url):
    with pytest.raises(pgarrow.UsageError) as e:
        pgarrow.read_arrow(url, "CREATE TABLE d_never (a int)")
    assert isinstance(e.value, ValueError) and isinstance(e.value, pgarrow.Error)
    with pytest.raises(pgarrow.UsageError, match="mode"):
        pgarrow.write(url, "t", [], mode="merge")


def test_incremental_runs_from_python(url, conn, tmp_path):
    conn.execute(
        """
        DROP TABLE IF EXISTS d_incr;
        CREATE TABLE d_incr (id int PRIMARY KEY, v text, version bigint NOT NULL);
        INSERT INTO d_incr SELECT g, 'a', g FROM generate_series(1, 100) g;
        """
    )
    state = tmp_path / "d_incr.json"
    path = tmp_path / "d_incr.parquet"
    first = pgarrow.export_incremental(url, "d_incr", by="version", state=state, path=path)
    assert (first["run"], first["first"], first["rows"]) == (1, True, 100)
    assert first["state"]["high_water"] == "100"
    assert json.loads(state.read_text())["files"] == [os.fspath(tmp_path / "d_incr.run-000001.parquet")]

    conn.execute("UPDATE d_incr SET v = 'b', version = 101 WHERE id = 7; INSERT INTO d_incr VALUES (101, 'c', 102)")
    second = pgarrow.export_incremental(url, "d_incr", by="version", state=state, path=path)
    assert (second["run"], second["first"], second["rows"]) == (2, False, 2)
    rows = pq.read_table(tmp_path / "d_incr.run-000002.parquet").sort_by("id").to_pylist()
    assert [(r["id"], r["v"]) for r in rows] == [(7, "b"), (101, "c")]

    # Over two connections, into the run's directory; a cursor set below the mark, found by
    # the late-row scan when asked for.
    conn.execute("UPDATE d_incr SET v = 'd', version = 1 WHERE id = 50")
    third = pgarrow.export_incremental(
        url, "d_incr", by="version", state=state, output_dir=tmp_path / "runs",
        partitions=2, late_rows="always",
    )
    assert (third["run"], third["late_scan"], third["rows"]) == (3, True, 1)
    table = pq.read_table(tmp_path / "runs" / "run-000003")
    assert table.column("id").to_pylist() == [50]

    with pytest.raises(pgarrow.UsageError, match="follows column"):
        pgarrow.export_incremental(url, "d_incr", by="id", state=state, path=path)
    with pytest.raises(pgarrow.UsageError, match="one of them"):
        pgarrow.export_incremental(url, "d_incr", by="version", state=state)
    with pytest.raises(pgarrow.UsageError, match="export_with_slot"):
        pgarrow.export_incremental(url, "d_incr", by="version", state=state, path=path, replication_slot="s")
    with pytest.raises(pgarrow.UsageError, match="late_rows.*auto or always"):
        pgarrow.export_incremental(url, "d_incr", by="version", state=state, path=path, late_rows="sometimes")


def test_a_replication_slot_hand_off_reaches_the_server(url, conn, tmp_path):
    # The test cluster has wal_level = replica and admits no replication connection over
    # TCP: the hand-off (tested whole in the CLI's tests/slot.rs, same library call) fails
    # saying which, and writes nothing.
    conn.execute("DROP TABLE IF EXISTS d_slot; CREATE TABLE d_slot (id int)")
    path = tmp_path / "d_slot.parquet"
    with pytest.raises(pgarrow.Error, match="wal_level must be logical|REPLICATION attribute"):
        pgarrow.export_with_slot(url, "d_slot", path, slot="d_slot_s", slot_plugin="test_decoding")
    assert not path.exists()
    with pytest.raises(pgarrow.UsageError, match="one of them"):
        pgarrow.export_with_slot(url, "d_slot", slot="d_slot_s")
    with pytest.raises(pgarrow.UsageError, match="export_with_slot"):
        pgarrow.export_file(url, "d_slot", path, replication_slot="d_slot_s")
    with pytest.raises(ValueError, match="applies to exports into files"):
        pgarrow.read_arrow(url, "d_slot", replication_slot="x")
