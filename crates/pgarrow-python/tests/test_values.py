"""Values: every type family of the README's mapping, read by pgarrow and by psycopg from the
same query, must be equal. Where the Python forms differ by design (intervals, ranges,
composites, hstore, inet, money, enums), both are compared through the server's text
rendering of the same value, or through parts the server computes."""

import datetime as dt
import decimal
import uuid

import pyarrow as pa
import pytest

import pgarrow

# (name, SQL type, values as SQL literals); each case also gets a NULL.
DIRECT = [
    ("bool", "bool", ["true", "false"]),
    ("int2", "int2", ["'-32768'", "32767", "0"]),
    ("int4", "int4", ["'-2147483648'", "2147483647"]),
    ("int8", "int8", ["'-9223372036854775808'", "9223372036854775807"]),
    ("float4", "float4", ["1.5", "'-0'", "3.4e38"]),
    ("float8", "float8", ["2.5", "1e308", "'-1e-300'"]),
    ("numeric", "numeric", ["12.34", "'-9999999999.99'", "0.01", "'NaN'"]),
    ("text", "text", ["'héllo'", "''", "'a\tb'"]),
    ("varchar", "varchar(5)", ["'abc'"]),
    ("bytea", "bytea", ["'\\x0001ff'::bytea", "''::bytea"]),
    ("uuid", "uuid", ["'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"]),
    ("date", "date", ["'2024-02-29'", "'0001-01-01'", "'9999-12-31'"]),
    ("time", "time", ["'12:34:56.789012'", "'00:00:00'"]),
    ("timestamp", "timestamp", ["'2024-01-01 10:00:00.123456'", "'1900-01-01'"]),
    ("timestamptz", "timestamptz", ["'2024-01-01 10:00:00+02'"]),
    ("int_array", "int4[]", ["'{1,2,NULL}'", "'{}'"]),
    ("text_array", "text[]", ["'{a,\"b c\"}'"]),
    ("json", "json", ["'{\"a\": [1, 2]}'"]),
    ("jsonb", "jsonb", ["'{\"b\": null}'"]),
]


def values_query(sql_type: str, literals: list[str]) -> str:
    rows = ", ".join(f"({i}, {lit}::{sql_type})" for i, lit in enumerate(literals))
    return f"SELECT i, v FROM (VALUES {rows}, ({len(literals)}, NULL::{sql_type})) AS t(i, v) ORDER BY i"


def normalize(value):
    """psycopg's and pyarrow's Python forms, made comparable where they differ only in form."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc)
    if isinstance(value, float) and value == 0:
        return (0.0, str(value))  # -0 stays -0
    if isinstance(value, decimal.Decimal):
        return str(value)  # pgarrow's default for numeric without a typmod: its exact text
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


@pytest.mark.parametrize("name,sql_type,literals", DIRECT, ids=[c[0] for c in DIRECT])
def test_values_equal_psycopg(url, conn, name, sql_type, literals):
    query = values_query(sql_type, literals)
    table = pgarrow.read_arrow(url, query)
    ours = [normalize(v) for v in table.column("v").to_pylist()]
    theirs = []
    for (v,) in conn.execute(query.replace("SELECT i, v", "SELECT v")).fetchall():
        if name == "float4" and v is not None:
            v = float(pa.scalar(v, pa.float32()).as_py())
        if name in ("json", "jsonb") and v is not None:
            # pgarrow keeps JSON as its text (tagged as the arrow.json extension type).
            import json

            v = json.dumps(v, separators=(",", ":"))
        theirs.append(normalize(v))
    if name in ("json", "jsonb"):
        import json

        ours = [None if v is None else json.dumps(json.loads(v), separators=(",", ":")) for v in ours]
    assert ours == theirs


# (name, SQL type, values): compared through what the server says about the same value.
THROUGH_SERVER = [
    ("interval", "interval", ["'1 mon 2 days 03:04:05.000006'", "'-178000000 years'"]),
    ("money", "money", ["12.34", "'-92233720368547758.08'"]),
    ("inet", "inet", ["'10.0.0.1'", "'::1/128'", "'192.168.0.0/16'"]),
    ("int4range", "int4range", ["'[1,5)'", "'empty'", "'(,3]'"]),
    ("enum", "mood", ["'happy'", "'sad'"]),
    ("composite", "pair", ["ROW(1, '1 day')", "ROW(NULL, NULL)"]),
]


@pytest.fixture(scope="module")
def types(conn):
    conn.execute("DROP TYPE IF EXISTS pair; DROP TYPE IF EXISTS mood")
    conn.execute("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
    conn.execute("CREATE TYPE pair AS (a int, iv interval)")


def server_parts(conn, name, sql_type, literal):
    """What the server computes about one value, in the form pyarrow gives it."""
    q = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    v = f"({literal})::{sql_type}"
    if name == "interval":
        months = q(f"SELECT (extract(year FROM {v}) * 12 + extract(month FROM {v}))::int")
        days = q(f"SELECT extract(day FROM {v})::int")
        micros = q(
            f"SELECT (extract(hour FROM {v}) * 3600 + extract(minute FROM {v}) * 60"
            f" + extract(second FROM {v})) * 1000000"
        )
        return (months, days, int(micros) * 1000)
    if name == "money":
        return q(f"SELECT {v}::numeric")
    if name == "inet":
        return q(f"SELECT format('%s', {v})")  # inet's output function, as COPY renders it
    if name == "int4range":
        return q(
            f"SELECT CASE WHEN isempty({v}) THEN 'empty' ELSE"
            f" coalesce(lower({v})::text, '-inf') || ',' || coalesce(upper({v})::text, 'inf') END"
        )
    if name == "enum":
        return q(f"SELECT {v}::text")
    if name == "composite":
        return q(f"SELECT (({v}).a, extract(epoch FROM ({v}).iv)::bigint)::text")
    raise AssertionError(name)


def arrow_parts(name, value):
    if name == "interval":
        return (value.months, value.days, value.nanoseconds)
    if name == "money":
        return decimal.Decimal(value)
    if name == "int4range":
        if value["empty"]:
            return "empty"
        lower = "-inf" if value["lower"] is None else str(value["lower"])
        upper = "inf" if value["upper"] is None else str(value["upper"])
        return f"{lower},{upper}"
    if name == "composite":
        a = "" if value["a"] is None else str(value["a"])
        iv = value["iv"]
        secs = "" if iv is None else str(int(iv.days * 86400 + iv.nanoseconds // 1_000_000_000))
        return f"({a},{secs})"
    return value


@pytest.mark.parametrize("name,sql_type,literals", THROUGH_SERVER, ids=[c[0] for c in THROUGH_SERVER])
def test_values_through_server(url, conn, types, name, sql_type, literals):
    table = pgarrow.read_arrow(url, values_query(sql_type, literals))
    got = table.column("v").to_pylist()
    assert got[-1] is None
    for literal, value in zip(literals, got):
        assert arrow_parts(name, value) == server_parts(conn, name, sql_type, literal), literal


def test_schema_without_running(url, conn):
    conn.execute("DROP TABLE IF EXISTS never_written; CREATE TABLE never_written (a int)")
    s = pgarrow.schema(url, "INSERT INTO never_written VALUES (1) RETURNING a")
    assert s.names == ["a"]
    assert s.field("a").type == pa.int32()
    assert s.field("a").metadata[b"pgarrow.pg_type"] == b"integer"
    assert conn.execute("SELECT count(*) FROM never_written").fetchone()[0] == 0
    assert pgarrow.schema(url, "SELECT 1.5::numeric AS n", numeric="float64").field("n").type == pa.float64()


def test_table_names_and_options(url, conn):
    conn.execute("DROP TABLE IF EXISTS \"Mixed Case\"; CREATE TABLE \"Mixed Case\" (x numeric)")
    conn.execute("INSERT INTO \"Mixed Case\" SELECT round(g / 3.0, 2) FROM generate_series(1, 10) g")
    t = pgarrow.read_arrow(url, '"Mixed Case"', numeric="decimal128:20:4", numeric_overflow="error")
    assert t.num_rows == 10
    assert t.schema.field("x").type == pa.decimal128(20, 4)
    assert t.column("x").to_pylist()[0] == decimal.Decimal("0.3300")
    # The values need two fractional digits: refused, naming the value.
    with pytest.raises(pgarrow.DecodeError, match="numeric value 0.33") as e:
        pgarrow.read_arrow(url, table="Mixed Case", numeric="decimal128:20:1")
    assert e.value.sqlstate is None
    with pytest.raises(ValueError, match="unknown option"):
        pgarrow.read_arrow(url, "SELECT 1", batch_row=5)
    with pytest.raises(ValueError, match="batch_rows"):
        pgarrow.read_arrow(url, "SELECT 1", batch_rows=0)
    with pytest.raises(ValueError, match="files only"):
        pgarrow.read_arrow(url, "SELECT 1", compression="zstd")
