"""pgarrow.scan_polars: projection, predicates and head(n) pushed into the SQL the server runs
(read back from pg_stat_statements), and every result equal to eager filtering in polars."""

import datetime as dt
import decimal

import polars as pl
import pytest

import pgarrow
from pgarrow._polars_scan import predicate_sql


@pytest.fixture(scope="module")
def scan_table(conn):
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    conn.execute("DROP TABLE IF EXISTS scan_src")
    conn.execute(
        "CREATE TABLE scan_src (id int, name text, born date, seen timestamp, "
        "seen_tz timestamptz, price numeric(10,2), score float8, ok bool)"
    )
    conn.execute(
        """INSERT INTO scan_src
           SELECT g,
                  CASE WHEN g % 7 = 0 THEN NULL WHEN g % 5 = 0 THEN 'it''s ' || g ELSE 'n' || g END,
                  DATE '2020-01-01' + g,
                  TIMESTAMP '2020-01-01 00:00:00' + g * INTERVAL '1 hour',
                  TIMESTAMPTZ '2020-01-01 00:00:00+00' + g * INTERVAL '1 hour',
                  CASE WHEN g % 11 = 0 THEN NULL ELSE g * 1.25 END,
                  g / 3.0,
                  g % 2 = 0
           FROM generate_series(1, 2000) g"""
    )
    conn.execute("ANALYZE scan_src")
    return "scan_src"


def statements(conn, marker="scan_src"):
    """The COPY statements pg_stat_statements saw that read `marker` (the parts' reads:
    the plan's own statements are SELECTs)."""
    rows = conn.execute(
        "SELECT query FROM pg_stat_statements WHERE query LIKE 'COPY%%' AND query LIKE %s",
        (f"%{marker}%",),
    ).fetchall()
    return [r[0] for r in rows]


def eager(url, table):
    return pl.from_arrow(pgarrow.read_arrow(url, table=table))


CASES = [
    # (predicate, SQL fragments the server must have run, whether all of it is pushed)
    (pl.col("id") > 1500, ['"id" >'], True),
    ((pl.col("id") >= 10) & (pl.col("id") < 20), ['"id" >=', '"id" <'], True),
    (pl.col("name") == "it's 10", ['"name" ='], True),
    (pl.col("name").is_in(["n1", "n2", "it's 5"]), ['"name" IN ('], True),
    (pl.col("name").is_null(), ['"name" IS NULL'], True),
    (pl.col("price").is_not_null() & (pl.col("price") > 100), ['"price" IS NOT NULL', '"price" >'], True),
    (pl.col("born") < dt.date(2020, 2, 1), ['"born" <'], True),
    (pl.col("seen") >= dt.datetime(2020, 3, 1, 12), ['"seen" >='], True),
    (pl.col("seen_tz") < dt.datetime(2020, 1, 2, tzinfo=dt.timezone.utc), ['"seen_tz" <'], True),
    ((pl.col("id") < 5) | (pl.col("id") > 1995), ['"id" <', 'OR', '"id" >'], True),
    (~(pl.col("ok") == True), ['NOT', '"ok"'], True),  # noqa: E712
    (pl.col("score").is_between(10, 20), ['"score" >=', '"score" <='], True),
    (pl.col("price") == decimal.Decimal("12.50"), ['"price" ='], True),
    # Not pushed: text ordering (collations), an expression of a column; polars filters.
    (pl.col("name") > "n5", [], False),
    ((pl.col("id") * 2 > 100) & (pl.col("id") < 100), ['"id" <'], False),
]


@pytest.mark.parametrize("predicate, fragments, complete", CASES, ids=[str(c[0]) for c in CASES])
def test_pushed_predicates_reach_the_server_and_results_equal_eager(
    url, conn, scan_table, predicate, fragments, complete
):
    expected = eager(url, scan_table).filter(predicate).select(["id", "name", "price"])
    conn.execute("SELECT pg_stat_statements_reset()")
    lf = pgarrow.scan_polars(url, scan_table)
    got = lf.filter(predicate).select(["id", "name", "price"]).collect()
    assert got.sort("id").equals(expected.sort("id"))
    sent = statements(conn)
    assert len(sent) == 1, sent
    sql = sent[0]
    for fragment in fragments:
        assert fragment in sql, (fragment, sql)
    # Projection: the columns the query needs (the filter's included), and no others.
    select = sql.split("FROM", 1)[0]
    assert '"born"' not in select or "born" in str(predicate)
    assert '"score"' not in select or "score" in str(predicate)
    where, whole = predicate_sql(predicate, pgarrow.schema(url, table=scan_table))
    assert whole == complete
    assert (where is None) == (not fragments)


def test_head_is_a_limit_and_projection_alone(url, conn, scan_table):
    conn.execute("SELECT pg_stat_statements_reset()")
    got = pgarrow.scan_polars(url, scan_table).select(["id", "born"]).head(7).collect()
    assert got.columns == ["id", "born"] and got.height == 7
    sql = statements(conn)[0]
    assert "LIMIT" in sql
    assert sql.split("FROM", 1)[0].count('"') == 4  # "id", "born"
    # A filter that is not all pushed cannot take the limit: polars cuts after filtering.
    conn.execute("SELECT pg_stat_statements_reset()")
    odd = pgarrow.scan_polars(url, scan_table).filter(pl.col("id") % 2 == 1).head(3).collect()
    assert odd["id"].to_list() == sorted(odd["id"].to_list()) and odd.height == 3
    assert all(i % 2 == 1 for i in odd["id"].to_list())
    assert "LIMIT" not in statements(conn)[0]


def test_partitions_read_concurrently_with_the_same_result(url, conn, scan_table):
    predicate = (pl.col("id") > 100) & pl.col("name").is_not_null()
    got = (
        pgarrow.scan_polars(url, scan_table, partitions=2, partition_by="id")
        .filter(predicate)
        .collect()
    )
    expected = eager(url, scan_table).filter(predicate)
    assert got.sort("id").equals(expected.sort("id"))
    whole = pgarrow.scan_polars(url, scan_table, partitions=3).collect()
    assert whole.height == 2000


def test_literals_cannot_inject_sql(url, conn, scan_table):
    nasty = "x' OR '1'='1"
    got = pgarrow.scan_polars(url, scan_table).filter(pl.col("name") == nasty).collect()
    assert got.height == 0
    backslash = "a\\' OR true --"
    where, complete = predicate_sql(pl.col("name") == backslash, pgarrow.schema(url, table=scan_table))
    assert where is None and not complete
    assert pgarrow.scan_polars(url, scan_table).filter(pl.col("name") == backslash).collect().height == 0


def test_the_schema_is_described_without_running(url, scan_table):
    lf = pgarrow.scan_polars(url, scan_table)
    schema = lf.collect_schema()
    assert schema["price"] == pl.Decimal(10, 2)
    assert schema["seen_tz"] == pl.Datetime("us", "UTC")
    with pytest.raises(ValueError, match="partitions"):
        pgarrow.scan_polars(url, scan_table, partitions=0)

