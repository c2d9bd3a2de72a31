"""Ray Data: pgarrow.ray.read_postgres on a local Ray (ray.init(num_cpus=2)) against real
PostgreSQL: the same rows as one export, one snapshot per execution while another session
commits, a failing part failing the job with pgarrow's message, no password in the tasks."""

import os
import pickle

import psycopg
import pyarrow as pa
import pytest

from engines import Mover, create_all_types, create_lineitem, rows_multiset, fail_the_slow_part, require, slow_part_query

require("ray")
import ray  # noqa: E402

import pgarrow
import pgarrow.ray


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def arrow_of(ds):
    return pa.concat_tables(ray.get(ds.to_arrow_refs()))


def test_lineitem_and_every_type_equal_one_export(ray_cluster, url, conn):
    create_lineitem(conn)
    create_all_types(conn)
    for table, partitions in (("lineitem", 3), ("engine_types", 2)):
        ds = pgarrow.ray.read_postgres(url, table, partitions=partitions)
        got = arrow_of(ds)
        expected = pgarrow.read_arrow(url, table=table)
        assert got.num_rows == expected.num_rows
        assert got.schema.remove_metadata() == expected.schema.remove_metadata()
        assert rows_multiset(got) == rows_multiset(expected)


def test_read_tasks_carry_the_schema_and_sizes(ray_cluster, url, conn):
    create_lineitem(conn)
    source = pgarrow.ray.PostgresDatasource(url, table="lineitem", partitions=3)
    tasks = source.get_read_tasks(2)
    assert len(tasks) == 3
    assert tasks[0].schema == source.plan().schema
    assert all(t.metadata.size_bytes and t.metadata.size_bytes > 0 for t in tasks)
    # Row counts are estimates, so not Ray's num_rows (which Ray takes as exact).
    assert all(t.metadata.num_rows is None for t in tasks)
    assert sum(p.estimated_rows for p in source.plan().parts) > 15_000
    source.plan().close()


def test_each_execution_reads_one_snapshot_while_others_commit(ray_cluster, url):
    with Mover(url, name="ray_accounts", rows=2000) as mover:
        for _ in range(3):
            ds = pgarrow.ray.read_postgres(url, table="ray_accounts", partitions=4)
            assert ds.sum("amount") == mover.total
        assert mover.moves > 0


def test_a_failing_part_fails_the_job_with_pgarrows_message(ray_cluster, url, conn):
    query = slow_part_query(conn, "ray_slow")
    ds = pgarrow.ray.read_postgres(url, query, partitions=2, partition_by="id", hold_timeout=60)
    error = fail_the_slow_part(url, lambda: arrow_of(ds.materialize()))
    assert error is not None, "the job did not fail"
    assert "terminating connection due to administrator command" in str(error)


def test_tasks_carry_no_password_from_the_environment(ray_cluster, url, conn):
    create_lineitem(conn)
    conn.execute(
        "DO $$ BEGIN CREATE ROLE engine_secret; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    conn.execute("ALTER ROLE engine_secret LOGIN PASSWORD 'RaySecretPw29'")
    conn.execute("GRANT SELECT ON lineitem TO engine_secret")
    info = psycopg.conninfo.conninfo_to_dict(url)
    bare = f"postgresql://engine_secret@{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info['dbname']}"
    os.environ["PGPASSWORD"] = "RaySecretPw29"
    try:
        source = pgarrow.ray.PostgresDatasource(bare, table="lineitem", partitions=2)
        tasks = source.get_read_tasks(2)
        blob = ray.cloudpickle.dumps(tasks) + pickle.dumps(source)
        assert b"RaySecretPw29" not in blob
        # The workers started before PGPASSWORD was set here: it reaches them through the
        # tasks' runtime environment, not through the tasks.
        env = {"runtime_env": {"env_vars": {"PGPASSWORD": "RaySecretPw29"}}}
        ds = pgarrow.ray.read_postgres(bare, table="lineitem", partitions=2, ray_remote_args=env)
        assert ds.count() == conn.execute("SELECT count(*) FROM lineitem").fetchone()[0]
        source.plan().close()
    finally:
        del os.environ["PGPASSWORD"]
