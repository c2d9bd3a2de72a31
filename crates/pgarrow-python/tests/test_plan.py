"""Plans in Python: one snapshot, parts read in other processes, the snapshot held here or by
the detached holder until every part was read."""

import multiprocessing
import os
import pickle
import subprocess
import sys

import psycopg
import pyarrow as pa
import pytest

import pgarrow
from engines import Mover, create_lineitem, rows_multiset


@pytest.fixture(scope="module")
def lineitem(conn):
    create_lineitem(conn)
    return "lineitem"


def _read_in_child(part):
    """Runs in a spawned process: what a worker of an engine does."""
    return part.read_arrow()


def _wait_released(plan, seconds=30.0):
    """Waits for the detached holder process to end by itself; whether it did."""
    try:
        plan._holder.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return not plan.held


def test_parts_read_in_other_processes_equal_one_export(url, lineitem):
    whole = pgarrow.read_arrow(url, table=lineitem)
    with pgarrow.plan(url, table=lineitem, partitions=3) as plan:
        assert len(plan.parts) == 3 and plan.held
        assert plan.schema == whole.schema
        estimated = sum(p.estimated_rows for p in plan.parts)
        assert 0.9 * whole.num_rows <= estimated <= 1.1 * whole.num_rows
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(2) as pool:
            tables = pool.map(_read_in_child, plan.parts)
    assert not plan.held
    assert rows_multiset(pa.concat_tables(tables)) == rows_multiset(whole)


def test_a_part_reads_columns_rows_and_a_limit(url, lineitem):
    with pgarrow.plan(url, table=lineitem, partitions=2) as plan:
        part = plan.parts[0]
        t = part.read_arrow(columns=["l_comment", "l_orderkey"], where="l_linenumber = 2", limit=10)
        assert t.column_names == ["l_comment", "l_orderkey"]
        assert t.num_rows == 10
        full = part.read_arrow(where="l_linenumber = 2")
        assert full.num_rows > 10
        assert set(full.column("l_linenumber").to_pylist()) == {2}
        with pytest.raises(pgarrow.UsageError, match='no column "nope"'):
            part.read_arrow(columns=["nope"])
        with pytest.raises(pgarrow.QueryError, match="syntax"):
            part.read_arrow(where="l_linenumber = = 2")


def test_every_part_sees_one_instant_while_others_commit(url):
    with Mover(url, name="plan_accounts", rows=500) as mover:
        for _ in range(3):
            before = mover.moves
            with pgarrow.plan(url, table="plan_accounts", partitions=2, parts=4) as plan:
                # Parts read one after another, while the mover commits between them.
                total = 0
                for part in plan.parts:
                    total += pa.compute.sum(part.read_arrow().column("amount")).as_py() or 0
            assert total == mover.total
        assert mover.moves > before


def test_a_pickled_part_holds_no_password_unless_the_url_has_one(url, conn, tmp_path):
    conn.execute(
        "DO $$ BEGIN CREATE ROLE plan_secret; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    conn.execute("ALTER ROLE plan_secret LOGIN PASSWORD 'Sup3rSecretPw'")
    conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO plan_secret")
    info = psycopg.conninfo.conninfo_to_dict(url)
    bare = f"postgresql://plan_secret@{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info['dbname']}"
    os.environ["PGPASSWORD"] = "Sup3rSecretPw"
    try:
        with pgarrow.plan(bare, "SELECT 1 AS one") as plan:
            blob = pickle.dumps(plan.parts[0])
            assert b"Sup3rSecretPw" not in blob
            # A worker finds the password where the CLI would: here PGPASSWORD.
            assert pickle.loads(blob).read_arrow().column("one").to_pylist() == [1]
    finally:
        del os.environ["PGPASSWORD"]
    with_password = bare.replace("plan_secret@", "plan_secret:Sup3rSecretPw@")
    with pgarrow.plan(with_password, "SELECT 1 AS one") as plan:
        assert b"Sup3rSecretPw" in pickle.dumps(plan.parts[0])


def test_a_part_after_its_snapshot_says_what_to_do(url, lineitem):
    plan = pgarrow.plan(url, table=lineitem)
    part = plan.parts[0]
    plan.close()
    plan.close()  # idempotent
    with pytest.raises(pgarrow.QueryError, match="no longer held.*Make a new plan") as e:
        part.read_arrow()
    assert e.value.sqlstate == "22023"


def test_detached_holder_ends_after_every_part_was_read_and_its_linger(url, lineitem):
    whole = pgarrow.read_arrow(url, table=lineitem)
    plan = pgarrow.plan(
        url, table=lineitem, partitions=2, detached=True, hold_timeout=120, linger=1
    )
    try:
        assert plan.detached and plan.held
        # Stopped after its first batch, a part does not count: the snapshot stays.
        reader = plan.parts[0].read(batch_rows=100)
        reader.read_next_batch()
        reader.close()
        tables = [plan.parts[0].read_arrow()]
        assert plan.held
        tables.append(plan.parts[1].read_arrow())
        # Read again within the linger time (an engine reading its input twice): still held.
        assert plan.parts[1].read_arrow().num_rows == tables[1].num_rows
        assert _wait_released(plan)
        assert plan._holder.returncode == 0
        assert rows_multiset(pa.concat_tables(tables)) == rows_multiset(whole)
        with pytest.raises(pgarrow.QueryError, match="no longer held"):
            plan.parts[0].read_arrow()
    finally:
        plan.close()


def test_detached_holder_ends_after_its_hold_timeout_and_on_close(url, lineitem):
    plan = pgarrow.plan(url, table=lineitem, partitions=2, detached=True, hold_timeout=1)
    # Only one part read: the holder waits for the other until hold_timeout passes.
    plan.parts[0].read_arrow()
    assert _wait_released(plan, 30)
    with pytest.raises(pgarrow.QueryError, match="no longer held"):
        plan.parts[0].read_arrow()
    plan = pgarrow.plan(url, table=lineitem, partitions=2, detached=True)
    assert plan.held
    plan.close()
    assert not plan.held
    with pytest.raises(pgarrow.QueryError, match="no longer held"):
        plan.parts[1].read_arrow()


def test_detached_errors_come_back_as_pgarrow_errors(url):
    with pytest.raises(pgarrow.QueryError, match="does not exist") as e:
        pgarrow.plan(url, table="no_such_table", detached=True)
    assert e.value.sqlstate == "42P01"
    with pytest.raises(pgarrow.UsageError, match="no column of that name"):
        pgarrow.plan(url, "SELECT 1 AS a", partition_by="b", detached=True)
    with pytest.raises(ValueError, match="partitions"):
        pgarrow.plan(url, table="x", partitions=0)
    with pytest.raises(pgarrow.UsageError, match="unknown option 'compression'"):
        pgarrow.plan(url, table="x", compression="zstd")


def test_the_holder_is_a_separate_process_that_outlives_its_parent(url, lineitem):
    """What Spark does: the planner process makes the plan and exits; workers read later."""
    script = (
        "import pickle, sys, pgarrow\n"
        f"p = pgarrow.plan({url!r}, table={lineitem!r}, partitions=2, detached=True, linger=1)\n"
        "sys.stdout.buffer.write(pickle.dumps(p.parts))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    parts = pickle.loads(out.stdout)
    total = sum(p.read_arrow().num_rows for p in parts)
    assert total == pgarrow.read_arrow(url, f"SELECT count(*) AS n FROM {lineitem}").column("n")[0].as_py()
