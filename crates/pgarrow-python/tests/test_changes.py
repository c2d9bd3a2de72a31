"""pgarrow.changes against a cluster with wal_level = logical (PGARROW_TEST_LOGICAL_URL, started
by tests/pytest.rs): changed rows as pyarrow batches with the export's types, checkpoints that
move the slot only when confirmed, schema changes announced, and errors named."""

import json
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest

import pgarrow


def run(url, sql):
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(sql)


def test_changes_come_as_typed_batches_and_resume_after_the_confirmed_checkpoint(logical_url):
    run(
        logical_url,
        """DROP PUBLICATION IF EXISTS py_pub; DROP TABLE IF EXISTS py_t;
           CREATE TABLE py_t (id int PRIMARY KEY, amount numeric(12,2), at timestamptz, tags text[]);
           CREATE PUBLICATION py_pub FOR TABLE py_t;""",
    )
    # The slot first (made by the call), then the changes.
    with pgarrow.changes(logical_url, slot="py_s", publication="py_pub", create_slot=True, catch_up=True) as s:
        assert list(s) == []
    run(
        logical_url,
        """INSERT INTO py_t VALUES (1, 12.50, '2024-01-02 03:04:05+00', ARRAY['a', NULL]), (2, NULL, NULL, NULL);
           UPDATE py_t SET amount = 99.99 WHERE id = 1;
           DELETE FROM py_t WHERE id = 2;""",
    )
    with pgarrow.changes(logical_url, slot="py_s", publication=["py_pub"], catch_up=True) as s:
        items = list(s)
        assert s.checkpoint is not None
        checkpoint = s.checkpoint
        # Not confirmed: closed without it, the same changes come again.
    assert [t for t, _ in items] == ['"public"."py_t"']
    batch = pa.Table.from_batches([b for _, b in items])
    assert batch.schema.field("amount").type == pa.decimal128(12, 2)
    assert batch.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert batch.schema.field("tags").type == pa.list_(pa.utf8())
    assert batch.column("_op").to_pylist() == ["insert", "insert", "update", "delete"]
    assert batch.column("amount").to_pylist()[2] == Decimal("99.99")
    assert batch.column("tags").to_pylist()[0] == ["a", None]
    assert batch.schema.metadata[b"pgarrow.table"] == b'"public"."py_t"'

    with pgarrow.changes(logical_url, slot="py_s", publication="py_pub", catch_up=True) as s:
        again = [b for _, b in s]
        assert sum(b.num_rows for b in again) == 4, "unconfirmed changes come again"
        assert s.checkpoint == checkpoint
        s.confirm()
    with pgarrow.changes(logical_url, slot="py_s", publication="py_pub", catch_up=True) as s:
        assert list(s) == [], "confirmed changes do not"

    # A schema change mid-stream: announced, the next batch has the new column.
    run(
        logical_url,
        "INSERT INTO py_t VALUES (4, 1, NULL, NULL); ALTER TABLE py_t ADD COLUMN note text; "
        "INSERT INTO py_t VALUES (3, 1, NULL, NULL, 'n');",
    )
    with pgarrow.changes(logical_url, slot="py_s", publication="py_pub", catch_up=True) as s:
        items = list(s)
        assert [t for t, _ in s.schema_changes] == ['"public"."py_t"']
        assert "/" in s.schema_changes[0][1], "where it changed, as an LSN"
    assert "note" not in items[0].batch.schema.names
    assert items[-1].batch.column("note").to_pylist() == ["n"]
    assert items[-1].table == '"public"."py_t"'


def test_a_streamed_transaction_is_set_aside_in_spill_dir_and_delivered_whole(logical_url, tmp_path):
    """The test cluster streams transactions past 64kB before their commit: `spill_dir=` is
    where they are set aside (a directory that does not exist is named), in files that leave
    nothing behind; the transaction comes whole at its commit, an aborted one not at all."""
    run(
        logical_url,
        """DROP PUBLICATION IF EXISTS py_spub; DROP TABLE IF EXISTS py_st;
           CREATE TABLE py_st (id int PRIMARY KEY, v text);
           CREATE PUBLICATION py_spub FOR TABLE py_st;""",
    )
    with pgarrow.changes(logical_url, slot="py_ss", publication="py_spub", create_slot=True, catch_up=True) as s:
        assert list(s) == []
    with psycopg.connect(logical_url) as big, psycopg.connect(logical_url) as gone:
        big.execute("INSERT INTO py_st SELECT g, repeat('b', 100) FROM generate_series(1, 3000) g")
        gone.execute("INSERT INTO py_st SELECT g, repeat('g', 100) FROM generate_series(10001, 13000) g")
        gone.rollback()
        big.commit()
    with pytest.raises(pgarrow.Error, match="no-such-dir"):
        with pgarrow.changes(logical_url, slot="py_ss", publication="py_spub", catch_up=True,
                             spill_dir=tmp_path / "no-such-dir") as s:
            list(s)
    spill = tmp_path / "spill"
    spill.mkdir()
    with pgarrow.changes(logical_url, slot="py_ss", publication="py_spub", catch_up=True, spill_dir=spill) as s:
        ids = [i for _, b in s for i in b.column("id").to_pylist()]
        s.confirm()
    assert ids == list(range(1, 3001))
    assert list(spill.iterdir()) == []
    out = tmp_path / "files"
    run(logical_url, "INSERT INTO py_st SELECT g, repeat('c', 100) FROM generate_series(3001, 6000) g")
    stats = pgarrow.changes_to(logical_url, out, slot="py_ss", publication="py_spub", catch_up=True,
                               spill_dir=spill)
    assert stats["rows"] == 3000, stats


def test_changes_name_what_is_missing(logical_url):
    run(logical_url, "DROP PUBLICATION IF EXISTS py_pub2; CREATE PUBLICATION py_pub2")
    with pytest.raises(pgarrow.UsageError, match='"nope" does not exist'):
        pgarrow.changes(logical_url, slot="nope", publication="py_pub2")
    with pytest.raises(pgarrow.UsageError, match="no publication"):
        pgarrow.changes(logical_url, slot="nope", publication="not_there")
    with pytest.raises(pgarrow.UsageError, match="auto, binary or text"):
        pgarrow.changes(logical_url, slot="nope", publication="py_pub2", values="hex")


def test_changes_to_writes_file_sets_and_resumes(logical_url, tmp_path):
    run(
        logical_url,
        """DROP PUBLICATION IF EXISTS py_files; DROP TABLE IF EXISTS py_f;
           CREATE TABLE py_f (id int PRIMARY KEY, v text);
           CREATE PUBLICATION py_files FOR TABLE py_f;""",
    )
    run(logical_url, "SELECT pg_create_logical_replication_slot('py_files_s', 'pgoutput')")
    run(logical_url, "INSERT INTO py_f SELECT g, 'v' || g FROM generate_series(1, 25) g")
    out = tmp_path / "changes"
    stats = pgarrow.changes_to(
        logical_url, out, slot="py_files_s", publication="py_files", catch_up=True, format="arrow"
    )
    assert stats["rows"] == 25 and stats["files"] == 1, stats
    assert stats["tables"] == ['"public"."py_f"']
    run(logical_url, "INSERT INTO py_f VALUES (26, 'v26')")
    again = pgarrow.changes_to(logical_url, out, slot="py_files_s", publication="py_files", catch_up=True, to="arrow")
    assert again["rows"] == 1, again
    manifest = json.loads((out / "_changes.json").read_text())
    ids = []
    for f in manifest["files"]:
        with pa.ipc.open_file(out / f["path"]) as reader:
            ids += reader.read_all().column("id").to_pylist()
    assert sorted(ids) == list(range(1, 27))
    with pytest.raises(pgarrow.UsageError, match="holds arrow files, not parquet"):
        pgarrow.changes_to(logical_url, out, slot="py_files_s", publication="py_files", catch_up=True)


def test_apply_changes_replays_the_files_into_other_tables_once(logical_url, tmp_path):
    run(
        logical_url,
        """DROP PUBLICATION IF EXISTS py_apply_pub; DROP TABLE IF EXISTS py_a, py_b;
           DROP SCHEMA IF EXISTS py_apply CASCADE; CREATE SCHEMA py_apply;
           CREATE TABLE py_a (id int PRIMARY KEY, amount numeric(12,2), tags text[]);
           CREATE TABLE py_b (k text NOT NULL, v int);
           ALTER TABLE py_b REPLICA IDENTITY FULL;
           CREATE TABLE py_apply.a (id int PRIMARY KEY, amount numeric(12,2), tags text[]);
           CREATE TABLE py_apply.b (k text NOT NULL, v int);
           CREATE PUBLICATION py_apply_pub FOR TABLE py_a, py_b;""",
    )
    run(logical_url, "SELECT pg_create_logical_replication_slot('py_apply_s', 'pgoutput')")
    # One transaction each (psycopg runs a string of statements as one), so several rolls.
    for sql in [
        "INSERT INTO py_a SELECT g, g / 3.0, ARRAY[g::text] FROM generate_series(1, 40) g",
        "INSERT INTO py_b VALUES ('x', 1), ('y', 2)",
        "UPDATE py_a SET amount = -amount WHERE id % 4 = 0",
        "UPDATE py_a SET id = id + 100 WHERE id = 5",
        "DELETE FROM py_a WHERE id % 10 = 0",
        "UPDATE py_b SET v = 20 WHERE k = 'y'",
        "DELETE FROM py_b WHERE k = 'x'",
    ]:
        run(logical_url, sql)
    out = tmp_path / "changes"
    pgarrow.changes_to(
        logical_url, out, slot="py_apply_s", publication="py_apply_pub", catch_up=True, roll_rows=10
    )
    tables = {"py_a": "py_apply.a", "public.py_b": "py_apply.b"}
    stats = pgarrow.apply_changes(logical_url, out, tables=tables, keys={"py_apply.b": "k"})
    assert stats["rolls"] >= 2 and stats["rolls_skipped"] == 0, stats
    assert stats["slot"] == "py_apply_s"
    assert sorted(stats["tables"]) == ['"py_apply"."a"', '"py_apply"."b"']

    def rows(sql):
        with psycopg.connect(logical_url) as c:
            return c.execute(sql).fetchall()

    assert rows("SELECT * FROM py_apply.a ORDER BY id") == rows("SELECT * FROM py_a ORDER BY id")
    assert rows("SELECT * FROM py_apply.b ORDER BY k") == [("y", 20)]
    again = pgarrow.apply_changes(logical_url, out, tables=tables, keys={"py_apply.b": ["k"]})
    assert again["rolls"] == 0 and again["rolls_skipped"] == stats["rolls"], again
    # py_apply.b has no primary key: without its key, the apply says so.
    run(logical_url, "DELETE FROM pgarrow_applied_changes WHERE slot = 'py_apply_s'")
    with pytest.raises(pgarrow.UsageError, match="no primary key"):
        pgarrow.apply_changes(logical_url, out, tables=tables)
