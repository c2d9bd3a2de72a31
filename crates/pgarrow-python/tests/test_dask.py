"""Dask: pgarrow.dask.read_postgres on a distributed.LocalCluster of two worker processes
against real PostgreSQL: the same rows as one export, pyarrow dtypes, the columns a
computation needs pushed into the parts' queries, one snapshot while another session commits,
a failing part failing the computation with pgarrow's message."""

import pickle
import time

import pandas as pd
import pyarrow as pa
import pytest

from engines import Mover, create_all_types, create_lineitem, rows_multiset, fail_the_slow_part, require, slow_part_query

require("dask.dataframe")
require("distributed")
import dask.dataframe as dd  # noqa: E402
from distributed import Client, LocalCluster

import pgarrow
import pgarrow.dask


@pytest.fixture(scope="module")
def dask_client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_lineitem_and_every_type_equal_one_export(dask_client, url, conn):
    create_lineitem(conn)
    create_all_types(conn)
    for table, partitions in (("lineitem", 3), ("engine_types", 2)):
        df = pgarrow.dask.read_postgres(url, table, partitions=partitions)
        assert df.npartitions == partitions or table == "engine_types"
        assert all(isinstance(t, pd.ArrowDtype) for t in df.dtypes)
        got = pa.Table.from_pandas(df.compute(), preserve_index=False)
        expected = pgarrow.read_arrow(url, table=table)
        assert got.num_rows == expected.num_rows
        assert rows_multiset(got) == rows_multiset(expected)


def test_only_the_columns_used_are_read(dask_client, url, conn):
    create_lineitem(conn)
    df = pgarrow.dask.read_postgres(url, "lineitem", partitions=2)
    narrow = df[["l_orderkey", "l_quantity"]]
    # The projection reaches the read: the optimized graph reads two columns.
    expr = narrow.optimize(fuse=False).expr
    reads = [e for e in expr.walk() if type(e).__name__ == "FromMapProjectable"]
    assert reads and reads[0].columns == ["l_orderkey", "l_quantity"]
    total = narrow.compute()["l_quantity"].sum()
    expected = conn.execute("SELECT sum(l_quantity) FROM lineitem").fetchone()[0]
    assert total == expected
    # And the part's query selects them only (what each task sends).
    part = pgarrow.plan(url, table="lineitem", partitions=2)
    reader = pgarrow.dask._ReadPart(part.schema)
    frame = reader(part.parts[0], columns=["l_orderkey", "l_quantity"])
    assert list(frame.columns) == ["l_orderkey", "l_quantity"]
    assert len(reader(part.parts[0], columns=[]).columns) == 0
    part.close()
    assert len(df) == conn.execute("SELECT count(*) FROM lineitem").fetchone()[0]


def test_one_snapshot_while_others_commit(dask_client, url):
    with Mover(url, name="dask_accounts", rows=2000) as mover:
        for _ in range(3):
            df = pgarrow.dask.read_postgres(url, table="dask_accounts", partitions=4)
            assert df.amount.sum().compute() == mover.total
        # A held plan serves several computations, all in its snapshot.
        with pgarrow.plan(url, table="dask_accounts", partitions=4) as plan:
            df = pgarrow.dask.read_postgres(plan=plan)
            first = df.amount.sum().compute()
            moves = mover.moves
            while mover.moves < moves + 20:
                time.sleep(0.05)
            assert df.amount.sum().compute() == first == mover.total
            assert len(pickle.dumps(plan.parts)) < 20_000


def test_a_failing_part_fails_the_computation_with_pgarrows_message(dask_client, url, conn):
    query = slow_part_query(conn, "dask_slow")
    df = pgarrow.dask.read_postgres(url, query, partitions=2, partition_by="id", hold_timeout=60)
    error = fail_the_slow_part(url, df.compute)
    assert isinstance(error, pgarrow.QueryError), error
    assert "terminating connection due to administrator command" in str(error)


def test_after_the_snapshot_is_released_a_computation_says_what_to_do(dask_client, url, conn):
    create_lineitem(conn)
    plan = pgarrow.plan(url, table="lineitem", partitions=2, detached=True)
    df = pgarrow.dask.read_postgres(plan=plan)
    plan.close()
    with pytest.raises(pgarrow.QueryError, match="no longer held.*Make a new plan"):
        df.compute()
    assert isinstance(df, dd.DataFrame)
