"""pgarrow.write: Arrow data from pyarrow, polars and generators into PostgreSQL, exactly and
in one transaction (values that do not fit, upserts, Ctrl-C)."""

import _thread
import datetime
import decimal
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pgarrow

SOURCE = """
DROP TABLE IF EXISTS w_src, w_dst, w_new;
DROP TYPE IF EXISTS w_mood;
CREATE TYPE w_mood AS ENUM ('sad', 'ok');
CREATE TABLE w_src (
    id int PRIMARY KEY, n numeric(12,2), t text, ts timestamptz, d date, ia int[], m w_mood,
    b bytea, j jsonb, ip inet, r int4range
);
INSERT INTO w_src VALUES
 (1, 1.50, 'é', '2024-01-01 00:00:00.000001+00', '2024-02-29', '{1,NULL}', 'ok', '\\x00ff',
  '{"a": 1}', '10.0.0.1/8', '[1,5)'),
 (2, NULL, NULL, 'infinity', '-infinity', '{}', NULL, NULL, NULL, NULL, 'empty'),
 (3, -0.01, '', '1999-12-31 23:59:59+00', '0001-01-01 BC', '{3,4}', 'sad', '\\x', '[]',
  '::1', '(,)');
CREATE TABLE w_dst (LIKE w_src INCLUDING ALL);
"""


def rows(conn, table):
    return conn.execute(f"SELECT t::text FROM {table} t ORDER BY id").fetchall()


def test_round_trip_from_pyarrow_and_polars(url, conn):
    conn.execute(SOURCE)
    data = pgarrow.read_arrow(url, "w_src")
    stats = pgarrow.write(url, "w_dst", data)
    assert stats["rows"] == 3 and stats["bytes"] > 0 and stats["total_s"] >= stats["connect_s"] > 0
    assert rows(conn, "w_dst") == rows(conn, "w_src")
    # polars: its own Arrow stream (string views, large lists).
    polars = pytest.importorskip("polars")
    conn.execute("TRUNCATE w_dst")
    frame = polars.from_arrow(data.drop_columns(["m", "r"]))
    pgarrow.write(url, "w_dst", frame)
    got = conn.execute("SELECT id, n, t, ia FROM w_dst ORDER BY id").fetchall()
    want = conn.execute("SELECT id, n, t, ia FROM w_src ORDER BY id").fetchall()
    assert got == want


def test_types_pyarrow_chooses_from_a_parquet_file(url, conn, tmp_path):
    conn.execute(
        "DROP TABLE IF EXISTS w_pq; CREATE TABLE w_pq (id int8, ts timestamp, tz timestamptz,"
        " s text, cat text, n numeric(10,3), l int4[], f float8)"
    )
    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "ts": pa.array([datetime.datetime(2024, 1, 1, 12, 0, 0, 1), None, datetime.datetime(1900, 1, 1)], pa.timestamp("ns")),
            "tz": pa.array([0, 1_500, None], pa.timestamp("ns", tz="Europe/Paris")),
            "s": pa.array(["large", None, ""], pa.large_string()),
            "cat": pa.array(["a", "b", "a"]).dictionary_encode(),
            "n": pa.array([decimal.Decimal("1.234"), None, decimal.Decimal("-0.001")], pa.decimal128(10, 3)),
            "l": pa.array([[1, None], [], None], pa.list_(pa.int32())),
            "f": pa.array([0.1, float("nan"), None], pa.float64()),
        }
    )
    path = tmp_path / "peer.parquet"
    pq.write_table(table, path)
    back = pq.read_table(path)
    # 1,500 ns is not whole microseconds: refused unless rounding is asked for (counted).
    with pytest.raises(pgarrow.Error, match=r'column "tz" .*row 2.*--nanoseconds round'):
        pgarrow.write(url, "w_pq", back)
    stats = pgarrow.write(url, "w_pq", back, nanoseconds="round")
    assert stats["rows"] == 3 and stats["losses"] == {"tz": {"nanoseconds_rounded": 1}}
    conn.execute("SET TimeZone = 'UTC'")
    try:
        got = conn.execute(
            "SELECT id, ts::text, tz::text, s, cat, n::text, l::text, f::text FROM w_pq ORDER BY id"
        ).fetchall()
    finally:
        conn.execute("RESET TimeZone")
    assert got == [
        (1, "2024-01-01 12:00:00.000001", "1970-01-01 00:00:00+00", "large", "a", "1.234", "{1,NULL}", "0.1"),
        # 1,500 ns rounds half to even: 2 µs.
        (2, None, "1970-01-01 00:00:00.000002+00", None, "b", None, "{}", "NaN"),
        (3, "1900-01-01 00:00:00", None, "", "a", "-0.001", None, None),
    ]


def test_bad_values_name_column_and_row_and_load_nothing(url, conn):
    conn.execute("DROP TABLE IF EXISTS w_bad; CREATE TABLE w_bad (id int2 NOT NULL, v varchar(3));"
                 " INSERT INTO w_bad VALUES (0, 'old')")
    bad = pa.table({"id": pa.array([1, 70000], pa.int64()), "v": ["a", "b"]})
    with pytest.raises(pgarrow.Error) as e:
        pgarrow.write(url, "w_bad", bad)
    assert 'column "id" (smallint), row 2' in str(e.value) and "70000" in str(e.value)
    too_long = pa.table({"id": pa.array([1, 2], pa.int16()), "v": ["abc", "abcd"]})
    with pytest.raises(pgarrow.Error, match=r'column "v" \(character varying\(3\)\), row 2'):
        pgarrow.write(url, "w_bad", too_long)
    nulls = pa.table({"id": pa.array([1, None], pa.int16()), "v": ["a", "b"]})
    with pytest.raises(pgarrow.QueryError) as e:
        pgarrow.write(url, "w_bad", nulls)
    assert e.value.sqlstate == "23502" and 'column "id", row 2 of the input' in str(e.value)
    assert conn.execute("SELECT id, v FROM w_bad").fetchall() == [(0, "old")]
    with pytest.raises(TypeError, match="__arrow_c_stream__"):
        pgarrow.write(url, "w_bad", [1, 2])
    with pytest.raises(ValueError, match="key"):
        pgarrow.write(url, "w_bad", nulls, mode="upsert")


def test_upsert_replace_and_create(url, conn):
    conn.execute("DROP TABLE IF EXISTS w_up, w_new; CREATE TABLE w_up (id int PRIMARY KEY, v text);"
                 " INSERT INTO w_up VALUES (1, 'one'), (2, 'two')")
    data = pa.table({"id": pa.array([2, 3], pa.int32()), "v": ["TWO", "three"]})
    pgarrow.write(url, "w_up", data, mode="upsert", key="id")
    assert conn.execute("SELECT * FROM w_up ORDER BY id").fetchall() == [(1, "one"), (2, "TWO"), (3, "three")]
    pgarrow.write(url, "w_up", data, mode="replace")
    assert conn.execute("SELECT count(*) FROM w_up").fetchone() == (2,)
    # create=True: the types pgarrow's metadata names (numeric(12,2), the enum), else Arrow's.
    conn.execute(SOURCE)
    pgarrow.write(url, "w_new", pgarrow.read_arrow(url, "w_src"), create=True)
    types = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'w_new'::regclass AND attnum > 0 ORDER BY attnum"
    ).fetchall()
    assert ("n", "numeric(12,2)") in types and ("m", "w_mood") in types and ("ip", "inet") in types
    assert rows(conn, "w_new") == rows(conn, "w_src")


def test_keyboard_interrupt_sends_copy_fail_and_leaves_the_table(url, conn, python_sigint):
    conn.execute("DROP TABLE IF EXISTS w_int; CREATE TABLE w_int (id int8)")
    schema = pa.schema([("id", pa.int64())])

    def slow():
        for i in range(1000):
            time.sleep(0.05)
            yield pa.record_batch([pa.array(range(i * 1000, (i + 1) * 1000))], schema=schema)

    reader = pa.RecordBatchReader.from_batches(schema, slow())
    threading.Timer(0.5, _thread.interrupt_main).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        pgarrow.write(url, "w_int", reader)
    assert time.monotonic() - start < 10
    assert conn.execute("SELECT count(*) FROM w_int").fetchone() == (0,)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        left = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %\"w_int\"%'"
        ).fetchone()[0]
        if left == 0:
            break
        time.sleep(0.01)
    assert left == 0


def test_table_names_fold_as_sql_reads_them(url, conn):
    conn.execute(
        'DROP TABLE IF EXISTS w_fold, "W_Fold"; CREATE TABLE w_fold (v int); CREATE TABLE "W_Fold" (v int)'
    )
    data = pa.table({"v": pa.array([1], pa.int32())})
    pgarrow.write(url, "W_Fold", data)
    pgarrow.write(url, '"W_Fold"', pa.table({"v": pa.array([2], pa.int32())}))
    assert conn.execute("SELECT v FROM w_fold").fetchall() == [(1,)]
    assert conn.execute('SELECT v FROM "W_Fold"').fetchall() == [(2,)]
    # Reading folds the same way.
    assert pgarrow.read_arrow(url, table="W_FOLD").column("v").to_pylist() == [1]
    assert pgarrow.read_arrow(url, table='"W_Fold"').column("v").to_pylist() == [2]
