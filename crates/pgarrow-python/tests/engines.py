"""Shared material of the engine tests (Spark, Ray, Dask, polars): lineitem, a table of every
type the README maps, an order-free comparison of results, and a session that keeps moving
amounts between rows while an engine reads (the total is the invariant a snapshot keeps)."""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import importlib
import os
import random
import threading
import time
import warnings
from typing import Any

import psycopg
import pyarrow as pa

LINEITEM_ROWS = 20_000


def require(module: str) -> Any:
    """Imports an engine's module for a test file; a missing one fails the file, unless
    PGARROW_ALLOW_SKIP=1 (then it skips, loudly)."""
    import pytest

    try:
        return importlib.import_module(module)
    except ImportError as e:
        message = f"{module} is not installed (the pinned .ci/python-requirements.txt): {e}"
        if os.environ.get("PGARROW_ALLOW_SKIP") == "1":
            warnings.warn(f"SKIPPED: {message}", stacklevel=2)
            pytest.skip(f"SKIPPED (PGARROW_ALLOW_SKIP=1): {message}", allow_module_level=True)
        pytest.fail(f"{message} (`bash scripts/test-all.sh` installs every part the tests need; PGARROW_ALLOW_SKIP=1 skips these tests instead)", pytrace=False)


def lineitem_sql(name: str, rows: int) -> str:
    """The lineitem-shaped table of pgarrow's demo (crates/pgarrow-scratch/src/sample.rs):
    the same `rows` always give the same table."""
    return f"""
CREATE TABLE {name} (
    l_orderkey bigint NOT NULL, l_partkey integer NOT NULL, l_suppkey integer NOT NULL,
    l_linenumber integer NOT NULL, l_quantity numeric(15,2) NOT NULL,
    l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL,
    l_tax numeric(15,2) NOT NULL, l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL,
    l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL,
    l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL, l_comment varchar(44) NOT NULL
);
INSERT INTO {name}
SELECT g / 4 + 1, (g * 7919) % 200000 + 1, (g * 104729) % 10000 + 1, g % 4 + 1, g % 50 + 1,
       round((g % 50 + 1) * (900 + ((g * 7919) % 200000) / 100.0), 2),
       (g % 11) / 100.0, (g % 9) / 100.0,
       (ARRAY['R', 'A', 'N'])[g % 3 + 1], (ARRAY['O', 'F'])[g % 2 + 1],
       DATE '1992-01-02' + (g % 2526)::int, DATE '1992-01-31' + (g % 2466)::int,
       DATE '1992-01-03' + ((g + 17) % 2556)::int,
       (ARRAY['DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'])[g % 4 + 1],
       (ARRAY['REG AIR', 'AIR', 'RAIL', 'SHIP', 'TRUCK', 'MAIL', 'FOB'])[g % 7 + 1],
       substr(md5(g::text) || md5((g + 1)::text), 1, (10 + g % 34)::int)
FROM generate_series(0::bigint, {rows}::bigint - 1) AS g;
ANALYZE {name};
"""


def create_lineitem(conn: psycopg.Connection, name: str = "lineitem", rows: int = LINEITEM_ROWS) -> None:
    """Creates lineitem `name` of `rows` rows, unless it exists with that many rows already
    (the engine test files share it)."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]
    if exists and conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0] == rows:
        return
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(lineitem_sql(name, rows))


# (column, SQL type, values as SQL literals): one column per type family of the README's
# mapping; rows beyond a column's values are NULL.
ALL_TYPES: list[tuple[str, str, list[str]]] = [
    ("c_bool", "bool", ["true", "false"]),
    ("c_int2", "int2", ["-32768", "32767", "0"]),
    ("c_int4", "int4", ["-2147483648", "2147483647"]),
    ("c_int8", "int8", ["-9223372036854775808", "9223372036854775807"]),
    ("c_float4", "float4", ["1.5", "'-0'", "3.4e38"]),
    ("c_float8", "float8", ["2.5", "1e308", "'-1e-300'"]),
    ("c_numeric", "numeric", ["12.34", "-9999999999.99", "0.01"]),
    ("c_numeric_scaled", "numeric(12,2)", ["12.34", "-9999999999.99", "0.01"]),
    ("c_numeric_wide", "numeric(50,3)", ["'12345678901234567890123456789012345678901234567.891'"]),
    ("c_money", "money", ["'12.34'", "'-92233720368547758.07'"]),
    ("c_oid", "oid", ["0", "4294967295"]),
    ("c_char", "char(4)", ["'ab'", "'abcd'"]),
    ("c_varchar", "varchar(5)", ["'abc'"]),
    ("c_text", "text", ["'héllo'", "''", "'it''s'"]),
    ("c_name", "name", ["'pg_class'"]),
    ("c_qchar", '"char"', ["'a'"]),
    ("c_bytea", "bytea", ["'\\x0001ff'::bytea", "''::bytea"]),
    ("c_uuid", "uuid", ["'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"]),
    ("c_date", "date", ["'2024-02-29'", "'0001-01-01'", "'9999-12-31'"]),
    ("c_time", "time", ["'12:34:56.789012'", "'00:00:00'"]),
    ("c_timetz", "timetz", ["'12:34:56+02'"]),
    ("c_timestamp", "timestamp", ["'2024-01-01 10:00:00.123456'", "'1900-01-01'"]),
    ("c_timestamptz", "timestamptz", ["'2024-01-01 10:00:00+02'"]),
    ("c_interval", "interval", ["'1 year 2 months 3 days 04:05:06.789'", "'-1 day'"]),
    ("c_json", "json", ["'{\"a\": [1, 2]}'"]),
    ("c_jsonb", "jsonb", ["'{\"b\": null}'"]),
    ("c_xml", "xml", ["'<a>1</a>'"]),
    ("c_inet", "inet", ["'192.168.0.1/24'", "'::1'"]),
    ("c_cidr", "cidr", ["'10.0.0.0/8'"]),
    ("c_macaddr", "macaddr", ["'08:00:2b:01:02:03'"]),
    ("c_bit", "bit(4)", ["B'1010'"]),
    ("c_varbit", "varbit", ["B'101'"]),
    ("c_int4range", "int4range", ["'[1,5)'", "'empty'"]),
    ("c_tstzrange", "tstzrange", ["'[2024-01-01,2024-02-01)'"]),
    ("c_enum", "engine_mood", ["'happy'", "'sad'"]),
    ("c_composite", "engine_pair", ["ROW(1, 'x')"]),
    ("c_int_array", "int4[]", ["'{1,2,NULL}'", "'{}'"]),
    ("c_text_array", "text[]", ["'{a,\"b c\"}'"]),
    ("c_int_array_2d", "int4[]", ["'{{1,2},{3,4}}'"]),
]

ALL_TYPES_COLUMNS: list[tuple[str, str]] = [(c, t) for c, t, _ in ALL_TYPES]
ALL_TYPES_ROWS = 4


def create_all_types(conn: psycopg.Connection, name: str = "engine_types") -> None:
    """Creates `name`: `id int` (1 to ALL_TYPES_ROWS) and one column per ALL_TYPES entry.

    c_int_array_2d holds 2-D arrays only (pgarrow fixes an array column's depth from its
    data), so its rows differ from c_int_array's."""
    conn.execute(
        "DO $$ BEGIN CREATE TYPE engine_mood AS ENUM ('sad', 'ok', 'happy'); "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    conn.execute(
        "DO $$ BEGIN CREATE TYPE engine_pair AS (a int, b text); "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    columns = ", ".join(f"{c} {t}" for c, t, _ in ALL_TYPES)
    conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, {columns})")
    for row in range(ALL_TYPES_ROWS):
        values = [lits[row] if row < len(lits) else "NULL" for _, _, lits in ALL_TYPES]
        conn.execute(f"INSERT INTO {name} VALUES ({row + 1}, {', '.join(values)})")
    conn.execute(f"ANALYZE {name}")


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, (dt.datetime, dt.date, dt.time, dt.timedelta, decimal.Decimal)):
        return value
    return value


def rows_multiset(table: Any) -> collections.Counter:
    """The rows of `table` (anything pyarrow.table() takes) as a multiset of tuples, in the
    order of its columns, values as Python objects (lists and structs made hashable)."""
    table = pa.table(table)
    columns = [col.to_pylist() for col in table.columns]
    return collections.Counter(
        tuple(_hashable(col[i]) for col in columns) for i in range(table.num_rows)
    )


class Mover:
    """A table `name` (id int PRIMARY KEY, amount bigint) of `rows` rows, and a thread that
    keeps moving amounts between two random rows, each move one committed transaction, until
    the block ends. Every snapshot sees `total` as the sum of amount; a reader that mixes
    instants does not (while `moves` goes up)."""

    def __init__(self, url: str, name: str = "accounts", rows: int = 1000) -> None:
        self.url, self.name, self.rows = url, name, rows
        self.total = rows * 1000
        self.moves = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Mover":
        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute(f"DROP TABLE IF EXISTS {self.name}")
            c.execute(f"CREATE TABLE {self.name} (id int PRIMARY KEY, amount bigint NOT NULL)")
            c.execute(
                f"INSERT INTO {self.name} SELECT g, 1000 FROM generate_series(1, %s) AS g",
                (self.rows,),
            )
            c.execute(f"ANALYZE {self.name}")
        self._thread = threading.Thread(target=self._run, name=f"mover {self.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        rng = random.Random(29)
        try:
            with psycopg.connect(self.url) as c:
                while not self._stop.is_set():
                    a, b = rng.sample(range(1, self.rows + 1), 2)
                    amount = rng.randint(1, 100)
                    with c.transaction():
                        c.execute(
                            f"UPDATE {self.name} SET amount = amount - %s WHERE id = %s", (amount, a)
                        )
                        c.execute(
                            f"UPDATE {self.name} SET amount = amount + %s WHERE id = %s", (amount, b)
                        )
                    self.moves += 1
        except BaseException as e:  # reported by __exit__
            self.error = e

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.error is not None and exc[0] is None:
            raise AssertionError(f"the mover failed: {self.error!r}") from self.error


def slow_part_query(conn, name: str) -> str:
    """A table `name` of ids 1 to 1000, and a query over it whose part holding id 900 sleeps
    for a minute, only in its COPY (not while a plan describes or splits it)."""
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(f"CREATE TABLE {name} AS SELECT g AS id FROM generate_series(1, 1000) g")
    return (
        "SELECT id, CASE WHEN id = 900 AND pg_catalog.current_query() LIKE 'COPY%' "
        f"THEN pg_catalog.pg_sleep(60)::text END AS s FROM {name}"
    )


def fail_the_slow_part(url: str, job) -> BaseException | None:
    """Runs `job` (an engine's action over slow_part_query) on a thread, terminates the
    backend of the slow part as soon as it runs (an active COPY: a part that finished keeps its
    COPY as the last query of an idle connection, and ending that fails nothing), and returns the exception the job raised
    (None if it did not fail)."""
    failure: dict[str, BaseException] = {}

    def run() -> None:
        try:
            job()
        except BaseException as e:  # the job's failure, returned
            failure["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    terminated = False
    deadline = time.monotonic() + 120
    with psycopg.connect(url, autocommit=True) as c:
        while not terminated and time.monotonic() < deadline and thread.is_alive():
            terminated = c.execute(
                "SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity "
                "WHERE state = 'active' AND query LIKE 'COPY%pg_sleep(60)%' "
                "AND pid <> pg_backend_pid()"
            ).fetchone()[0]
            if not terminated:
                thread.join(0.1)
    thread.join(180)
    assert terminated, "the slow part never started"
    return failure.get("error")
