"""The copy-on-write delete mode (`--deletes copy-on-write`, `deletes="copy-on-write"`): a
mirror's and `apply`'s commits write each data file that loses rows again without them, in
the same commit, instead of recording deletion vectors or delete files. Asserted per format:
every read equals the source, the table holds data files only (no Delta deletion vector nor
the `deletionVectors` feature, no Iceberg delete file, no DuckLake delete file), the files
that lost rows are no longer the table's, and the mirror's index follows the rewritten files
(an update of a row that was rewritten finds it, its unsent TOASTed value included)."""

from __future__ import annotations

import json
import subprocess

import pytest

from test_mirror import (
    FORMATS,
    Workload,
    events,
    files_held,
    iceberg_table,
    import_back,
    lake,  # noqa: F401 (a fixture)
    make_table,
    mirror,
    pgarrow_bin,
    read_columns,
    rows_at,
    rows_of,
    rows_sql,
    run,
    slot,  # noqa: F401 (a fixture)
    source,  # noqa: F401 (a fixture)
)

COW = ("--deletes", "copy-on-write")


def data_files_only(fmt, lake, table, duckdb_lake):
    """The lake table's files, asserting it records no deleted position anywhere."""
    held, _, with_deletes = files_held(fmt, lake, table, duckdb_lake)
    assert with_deletes == 0, (fmt, held)
    if fmt == "delta":
        log = lake[1] / "delta" / table / "_delta_log"
        actions = [json.loads(line) for f in sorted(log.glob("*.json")) for line in f.read_text().splitlines()]
        assert not any(a.get("add", {}).get("deletionVector") for a in actions)
        protocol = [a["protocol"] for a in actions if "protocol" in a][-1]
        assert "deletionVectors" not in protocol.get("readerFeatures", []), protocol
        assert not list((lake[1] / "delta" / table).glob("deletion_vector_*.bin"))
    if fmt == "iceberg":
        summary = iceberg_table(lake, table).current_snapshot().summary
        assert summary["total-delete-files"] == "0" and summary["total-position-deletes"] == "0", summary
    return held


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_copy_on_write_mirror_holds_data_files_only_and_equals_the_source(
        source, lake, slot, fmt, duckdb_lake, duckdb_delta, duckdb_iceberg):
    """Rounds of random transactions (inserts, updates of small columns leaving the TOASTed
    one unsent, updates of it, deletes, key changes), each caught up in copy-on-write: after
    each, the table equals the source and holds no deletes; the files that lost rows left the
    table; the format's other readers and pgarrow's import read the same rows."""
    table = f"cow_orders_{fmt}"
    make_table(source, table, rows=2000)
    mirror(source, lake, slot, table, *COW, "--max-file-rows", "500", fmt=fmt)
    before = data_files_only(fmt, lake, table, duckdb_lake)
    work = Workload(source, table, seed=11)
    deleted = 0
    for _ in range(4):
        for _ in range(5):
            work.step()
        out = mirror(source, lake, slot, table, *COW, "--max-file-rows", "500", fmt=fmt)
        commits = [e for e in events(out.stdout) if e["event"] == "committed"]
        deleted += sum(c["deleted"] for c in commits)
        want = [tuple(r) for r in rows_of(source, table)]
        assert rows_at(fmt, lake, table, duckdb_lake=duckdb_lake) == want
        held = data_files_only(fmt, lake, table, duckdb_lake)
    assert deleted > 0
    # Files that lost rows were replaced: some of the first export's files are gone.
    assert before - held, (before, held)
    if fmt == "delta":
        path = lake[1] / "delta" / table
        got = duckdb_delta(f"SELECT id, name, big, amount FROM delta_scan('{path}') ORDER BY id")
        assert [tuple(r) for r in got] == want
        import polars as pl

        assert pl.read_delta(str(path)).sort("id").select("id", "name", "big", "amount").rows() == want
        # deltalake's pyarrow readers refuse a table with the deletionVectors feature (the
        # merge-on-read mirror's); this one they read.
        import deltalake

        got = deltalake.DeltaTable(str(path)).to_pyarrow_table().sort_by("id")
        assert list(zip(*[got[c].to_pylist() for c in ("id", "name", "big", "amount")])) == want
    if fmt == "iceberg":
        loaded = iceberg_table(lake, table)
        assert loaded.current_snapshot().summary.operation.value == "overwrite", loaded.current_snapshot()
        got = duckdb_iceberg(f"SELECT id, name, big, amount FROM iceberg_scan('{loaded.metadata_location}') ORDER BY id")
        assert [tuple(r) for r in got] == want
    import_back(fmt, lake, source, table)
    work.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_copy_on_write_after_merge_on_read_leaves_out_the_older_deletes(source, lake, slot, fmt, duckdb_lake):
    """A table mirrored with deletes recorded, then in copy-on-write: a file rewritten leaves
    out the rows its older deletes took too, and the files it does not touch keep theirs."""
    table = f"cow_mixed_{fmt}"
    make_table(source, table, rows=1000)
    mirror(source, lake, slot, table, "--max-file-rows", "250", fmt=fmt)
    run(source, f"DELETE FROM {table} WHERE id % 10 = 3")
    mirror(source, lake, slot, table, "--max-file-rows", "250", fmt=fmt)
    _, _, with_deletes = files_held(fmt, lake, table, duckdb_lake)
    assert with_deletes > 0
    if fmt == "delta":
        # What copy-on-write is for: deltalake's pyarrow reader refuses deletion vectors.
        import deltalake

        with pytest.raises(Exception, match="deletionVectors"):
            deltalake.DeltaTable(str(lake[1] / "delta" / table)).to_pyarrow_table()
    # Only the rows of the first file change: its older deletes must stay left out.
    run(source, f"UPDATE {table} SET name = 'cow' WHERE id BETWEEN 1 AND 40; DELETE FROM {table} WHERE id = 5")
    out = mirror(source, lake, slot, table, *COW, "--max-file-rows", "250", fmt=fmt)
    commits = [e for e in events(out.stdout) if e["event"] == "committed"]
    # 36 rows left of ids 1 to 40 (3, 13, 23, 33 went before) lose their old row; id 5 goes.
    assert len(commits) == 1 and commits[0]["deleted"] == 36 and commits[0]["inserted"] == 35, commits
    assert rows_at(fmt, lake, table, duckdb_lake=duckdb_lake) == [tuple(r) for r in rows_of(source, table)]
    _, _, still = files_held(fmt, lake, table, duckdb_lake)
    assert 0 < still <= with_deletes
    import_back(fmt, lake, source, table)


@pytest.mark.parametrize("fmt", ["ducklake", "delta"])
def test_copy_on_write_without_a_key_counts_identical_rows(source, lake, slot, fmt, duckdb_lake):
    """REPLICA IDENTITY FULL without a key: the index counts identical rows; rewriting a file
    that holds some of them numbers them again, so that later deletes of identical rows take
    one each."""
    table = f"cow_full_{fmt}"
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (a int, b text);
        ALTER TABLE {table} REPLICA IDENTITY FULL;
        INSERT INTO {table} SELECT g % 7, 'b' || (g % 3) FROM generate_series(1, 400) g""")
    columns = ("a", "b")

    def same():
        want = sorted(tuple(r) for r in rows_sql(source, f"SELECT a, b FROM {table}"))
        assert sorted(tuple(r) for r in read_columns(fmt, lake, table, columns, duckdb_lake)) == want

    mirror(source, lake, slot, table, *COW, "--max-file-rows", "100", fmt=fmt)
    one_of = f"ctid IN (SELECT ctid FROM {table} WHERE a = %s AND b = %s LIMIT %s)"
    for a, b, n in [(1, "b1", 3), (2, "b2", 1), (3, "b0", 5)]:
        run(source, f"DELETE FROM {table} WHERE {one_of}", (a, b, n))
    mirror(source, lake, slot, table, *COW, "--max-file-rows", "100", fmt=fmt)
    same()
    for a, b, n in [(1, "b1", 2), (4, "b1", 1)]:
        run(source, f"UPDATE {table} SET b = 'x' WHERE {one_of}", (a, b, n))
    run(source, f"DELETE FROM {table} WHERE {one_of}", (3, "b0", 2))
    mirror(source, lake, slot, table, *COW, "--max-file-rows", "100", fmt=fmt)
    same()
    data_files_only(fmt, lake, table, duckdb_lake)


def test_apply_in_copy_on_write_and_the_python_doors(source, lake, slot, tmp_path, duckdb_lake):
    """`pgarrow apply --deletes copy-on-write` into a Delta table leaves no deletion vector;
    Python's `mirror(deletes=...)` and `apply_changes(deletes=...)` take the mode, and a mode
    that does not exist (or one given for PostgreSQL targets) is a usage error naming both."""
    import pgarrow

    table = "cow_apply"
    path = lake[1] / "delta" / table
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (id int PRIMARY KEY, v text);
        INSERT INTO {table} SELECT g, 'v' || g FROM generate_series(1, 300) g""")
    run(source, f"CREATE PUBLICATION {slot} FOR TABLE {table}")
    exported = subprocess.run(
        [pgarrow_bin(), "export", "-d", source, "-t", table, "--quiet", "--delta", str(path),
         "--replication-slot", slot, "--create-slot"],
        capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr
    run(source, f"UPDATE {table} SET v = 'u' WHERE id % 4 = 0; DELETE FROM {table} WHERE id % 9 = 0")
    changes = tmp_path / "changes"
    got = subprocess.run(
        [pgarrow_bin(), "changes", "-d", source, "--slot", slot, "--publication", slot,
         "--quiet", "--catch-up", "-o", str(changes)],
        capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr
    applied = subprocess.run(
        [pgarrow_bin(), "apply", str(changes), "--delta", str(path), "--deletes", "copy-on-write", "--json"],
        capture_output=True, text=True, timeout=300)
    assert applied.returncode == 0, applied.stderr
    want = rows_sql(source, f"SELECT id, v FROM {table} ORDER BY id")
    assert sorted(tuple(r) for r in read_columns("delta", lake, table, ("id", "v"), duckdb_lake)) == want
    data_files_only("delta", lake, table, duckdb_lake)
    # The doors refuse what is not a mode, naming the two.
    bad = subprocess.run(
        [pgarrow_bin(), "apply", str(changes), "--delta", str(path), "--deletes", "rewrite"],
        capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "merge-on-read" in bad.stderr and "copy-on-write" in bad.stderr, bad.stderr
    with pytest.raises(pgarrow.UsageError, match="copy-on-write"):
        pgarrow.mirror(source, table=table, delta=str(path), slot=slot, catch_up=True, deletes="rewrite")
    with pytest.raises(pgarrow.UsageError, match="PostgreSQL deletes its rows itself"):
        pgarrow.apply_changes(source, changes, deletes="copy-on-write")
    # Python's apply in copy-on-write: nothing new to apply, and still no vector.
    stats = pgarrow.apply_changes(path=changes, delta=str(path), deletes="copy-on-write")
    assert stats["rolls_skipped"] >= 1, stats
    data_files_only("delta", lake, table, duckdb_lake)
