"""The Spark 4 data source, on a local[2] Spark (Java from the system) against real PostgreSQL:
the same rows as one export, Spark's types for every type of the mapping, one snapshot per
action while another session commits, and a failing part failing the job with pgarrow's
message."""

import os
import sys

import pyarrow as pa
import pytest

from engines import ALL_TYPES_ROWS, Mover, create_all_types, create_lineitem, rows_multiset, fail_the_slow_part, require, slow_part_query

require("pyspark")

import pgarrow

from pyspark.sql import SparkSession
from pyspark.sql import types as T

import pgarrow.spark


@pytest.fixture(scope="module")
def spark():
    # The workers run this interpreter, which has pgarrow.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("pgarrow-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    pgarrow.spark.register(session)
    yield session
    session.stop()


def load(spark, url, **options):
    reader = spark.read.format("pgarrow").option("url", url)
    for key, value in options.items():
        reader = reader.option(key, value)
    return reader.load()


def test_lineitem_equals_one_export(spark, url, conn):
    create_lineitem(conn)
    df = load(spark, url, table="lineitem", partitions=3)
    assert df.rdd.getNumPartitions() == 3
    expected = pgarrow.read_arrow(url, table="lineitem")
    got = df.toArrow()
    assert got.num_rows == expected.num_rows
    assert rows_multiset(got) == rows_multiset(expected)


def _as_spark_gives(name, value):
    """pgarrow's Python value of column `name` as Spark's documented fallback gives it."""
    if value is None:
        return None
    if name == "c_uuid":
        return str(value)
    if name == "c_interval":
        return {"months": value.months, "days": value.days, "microseconds": value.nanoseconds // 1000}
    if name == "c_numeric_wide":
        return str(value)
    return value


def test_every_type_maps_to_spark(spark, url, conn):
    create_all_types(conn)
    df = load(spark, url, table="engine_types", partitions=2)
    fields = {f.name: f.dataType for f in df.schema.fields}
    assert fields["c_int8"] == T.LongType()
    assert fields["c_oid"] == T.LongType()
    assert fields["c_numeric_scaled"] == T.DecimalType(12, 2)
    assert fields["c_money"] == T.DecimalType(19, 2)
    assert fields["c_numeric_wide"] == T.StringType()
    assert fields["c_numeric"] == T.StringType()
    assert fields["c_uuid"] == T.StringType()
    assert fields["c_timestamp"] == T.TimestampNTZType()
    assert fields["c_timestamptz"] == T.TimestampType()
    assert fields["c_time"] == T.TimeType(6)
    assert fields["c_enum"] == T.StringType()
    assert fields["c_interval"].simpleString() == "struct<months:int,days:int,microseconds:bigint>"
    assert fields["c_int4range"].simpleString().startswith("struct<lower:int,upper:int")
    assert fields["c_int_array_2d"] == T.ArrayType(T.ArrayType(T.IntegerType()))
    got = df.toArrow()
    assert got.num_rows == ALL_TYPES_ROWS
    source = pgarrow.read_arrow(url, table="engine_types")
    got_rows = {r["id"]: r for r in got.to_pylist()}
    for row in source.to_pylist():
        spark_row = got_rows[row["id"]]
        for name, value in row.items():
            assert spark_row[name] == _as_spark_gives(name, value), (name, spark_row[name], value)


def test_one_action_reads_one_snapshot_while_others_commit(spark, url):
    with Mover(url, name="spark_accounts", rows=2000) as mover:
        df = load(spark, url, table="spark_accounts", partitions=4)
        totals = []
        for _ in range(3):
            before = mover.moves
            totals.append(df.agg({"amount": "sum"}).collect()[0][0])
            assert mover.moves > before or mover.moves > 0
        # Sorting makes Spark read its input twice (a sample, then the rows): both passes
        # in the one snapshot.
        ordered = df.orderBy("id").toArrow()
    assert totals == [mover.total] * 3
    assert pa.compute.sum(ordered.column("amount")).as_py() == mover.total
    assert ordered.column("id").to_pylist() == list(range(1, 2001))


def test_a_failing_part_fails_the_job_with_pgarrows_message(spark, url, conn):
    query = slow_part_query(conn, "spark_slow")
    df = load(spark, url, query=query, partitions=2, partition_by="id", hold_timeout=60)
    error = fail_the_slow_part(url, df.collect)
    assert error is not None, "the job did not fail"
    assert "terminating connection due to administrator command" in str(error)


def test_bad_options_are_clear(spark, url):
    with pytest.raises(Exception, match="give either"):
        spark.read.format("pgarrow").option("url", url).load().schema
    with pytest.raises(Exception, match="unknown option.*colour"):
        load(spark, url, table="lineitem", colour="red").schema
    with pytest.raises(Exception, match="partitions must be a positive integer"):
        load(spark, url, table="lineitem", partitions="many").schema
    with pytest.raises(Exception, match="does not exist"):
        load(spark, url, table="no_such_table").schema


def test_schema_mapping_of_fallbacks():
    schema = pa.schema(
        [
            ("wide", pa.decimal256(50, 3)),
            ("neg", pa.decimal128(10, -2)),
            ("u", pa.uint32()),
            ("t", pa.time64("us")),
            ("iv", pa.month_day_nano_interval()),
            ("e", pa.dictionary(pa.int16(), pa.string())),
            ("l", pa.list_(pa.list_(pa.int32()))),
        ]
    )
    s = pgarrow.spark.spark_schema(schema)
    assert [f.dataType.simpleString() for f in s.fields] == [
        "string",
        "string",
        "bigint",
        "time(6)",
        "struct<months:int,days:int,microseconds:bigint>",
        "string",
        "array<array<int>>",
    ]
    with pytest.raises(pgarrow.UsageError, match="no Spark type"):
        pgarrow.spark.spark_schema(pa.schema([("x", pa.large_list_view(pa.int8()))]))
    # The conversions give exactly what Spark's Arrow layout expects.
    iv = pa.array([pa.scalar((14, 3, 5_000), pa.month_day_nano_interval()), None])
    target = pa.struct(
        [("months", pa.int32()), ("days", pa.int32()), ("microseconds", pa.int64())]
    )
    out = pgarrow.spark._convert(iv, target)
    assert out.to_pylist() == [{"months": 14, "days": 3, "microseconds": 5}, None]
