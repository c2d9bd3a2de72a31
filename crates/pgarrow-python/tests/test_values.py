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
    ("numeric_scaled", "numeric(12,2)", ["12.34", "'-9999999999.99'", "0.01"]),
    ("numeric_wide", "numeric(50,3)", ["'12345678901234567890123456789012345678901234567.891'"]),
    ("oid", "oid", ["0", "4294967295"]),
    ("char_n", "char(4)", ["'ab'", "'abcd'"]),
    ("name", "name", ["'pg_class'"]),
    ("bpchar_1", '"char"', ["'a'"]),
    ("xml", "xml", ["'<a>1</a>'"]),
    ("domain", "posint", ["1", "2147483647"]),
    ("int_array_2d", "int4[]", ["'{{1,2},{3,4}}'", "'{{5,6},{7,8}}'"]),
    ("ltree", "ltree", ["'a.b.c'", "''"]),
    ("citext", "citext", ["'MiXeD'"]),
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


_tables = iter(range(1_000_000))


def values_query(conn, sql_type: str, literals: list[str]) -> str:
    """A table of one column of `sql_type` (a table, so that typmods such as numeric(12,2)
    reach the export), holding `literals` and a NULL; the query that reads it in order."""
    name = f"vals_{next(_tables)}"
    conn.execute(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (i int, v {sql_type})")
    rows = ", ".join(f"({i}, {lit})" for i, lit in enumerate(literals + ["NULL"]))
    conn.execute(f"INSERT INTO {name} VALUES {rows}")
    return f"SELECT i, v FROM {name} ORDER BY i"


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


@pytest.fixture(scope="module")
def types(conn):
    conn.execute("CREATE EXTENSION IF NOT EXISTS ltree")
    conn.execute("CREATE EXTENSION IF NOT EXISTS citext")
    conn.execute("CREATE EXTENSION IF NOT EXISTS hstore")
    conn.execute("DROP DOMAIN IF EXISTS posint CASCADE; CREATE DOMAIN posint AS int CHECK (VALUE > 0)")
    conn.execute("DROP TYPE IF EXISTS pair CASCADE; DROP TYPE IF EXISTS mood CASCADE")
    conn.execute("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
    conn.execute("CREATE TYPE pair AS (a int, iv interval)")


@pytest.mark.parametrize("name,sql_type,literals", DIRECT, ids=[c[0] for c in DIRECT])
def test_values_equal_psycopg(url, conn, types, name, sql_type, literals):
    query = values_query(conn, sql_type, literals)
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
    ("regclass", "regclass", ["'pg_class'", "'pg_type'"]),
    ("multirange", "int4multirange", ["'{[1,3), [5,7)}'", "'{}'"]),
    ("hstore", "hstore", ["'a=>1, b=>NULL'", "''"]),
    ("enum_array", "mood[]", ["'{happy,sad}'", "'{}'"]),
    ("cidr", "cidr", ["'10.0.0.0/8'"]),
    ("macaddr", "macaddr", ["'08:00:2b:01:02:03'"]),
    ("bit", "bit varying", ["B'1011'"]),
    ("tsvector", "tsvector", ["'a fat cat'"]),
    ("point", "point", ["'(1.5,2)'"]),
]


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
    if name in ("inet", "cidr", "macaddr", "bit", "tsvector", "point"):
        return q(f"SELECT format('%s', {v})")  # the type's output function, as psql shows it
    if name == "regclass":
        return q(f"SELECT {v}::oid::int8")
    if name == "multirange":
        return q(
            f"SELECT coalesce(array_agg(lower(r) || ',' || upper(r) ORDER BY lower(r)), '{{}}')"
            f" FROM unnest({v}) AS r"
        )
    if name == "hstore":
        return q(
            f"SELECT coalesce(array_agg(key || '=' || coalesce(value, 'NULL') ORDER BY key), '{{}}')"
            f" FROM each({v})"
        )
    if name == "enum_array":
        return q(f"SELECT array_to_json({v}::text[])::text")
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
    if name == "multirange":
        return [f"{r['lower']},{r['upper']}" for r in value]
    if name == "hstore":
        return sorted(f"{k}={'NULL' if v is None else v}" for k, v in value)
    if name == "enum_array":
        import json

        return json.dumps(value, separators=(",", ":"))
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
    table = pgarrow.read_arrow(url, values_query(conn, sql_type, literals))
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
        pgarrow.read_arrow(url, table='"Mixed Case"', numeric="decimal128:20:1")
    assert e.value.sqlstate is None
    with pytest.raises(ValueError, match="unknown option"):
        pgarrow.read_arrow(url, "SELECT 1", batch_row=5)
    with pytest.raises(ValueError, match="batch_rows"):
        pgarrow.read_arrow(url, "SELECT 1", batch_rows=0)
    with pytest.raises(ValueError, match="files only"):
        pgarrow.read_arrow(url, "SELECT 1", compression="zstd")


def extension(conn, name: str, require_env: str) -> None:
    """Creates an extension, or skips (fails under `require_env`=1) when it is not installed."""
    import os

    try:
        conn.execute(f"CREATE EXTENSION IF NOT EXISTS {name}")
    except Exception as e:  # the extension's files are not installed
        if os.environ.get(require_env) == "1":
            raise
        pytest.skip(f"extension {name} is not installed: {e}")


def test_postgis_geometry_is_iso_wkb(url, conn):
    extension(conn, "postgis", "PGARROW_REQUIRE_POSTGIS")
    literals = ["'SRID=4326;POINT(1 2)'", "'SRID=4326;LINESTRING(0 0, 1 1)'"]
    query = values_query(conn, "geometry", literals)
    got = pgarrow.read_arrow(url, query).column("v").to_pylist()
    want = [r[0] for r in conn.execute(query.replace("SELECT i, v", "SELECT ST_AsBinary(v, 'NDR')")).fetchall()]
    assert got == [None if w is None else bytes(w) for w in want]


def test_pgvector_is_float32_lists(pgvector_url, pgvector_conn):
    query = values_query(pgvector_conn, "vector(3)", ["'[1,2.5,-3]'"])
    got = pgarrow.read_arrow(pgvector_url, query).column("v").to_pylist()
    want = pgvector_conn.execute(query.replace("SELECT i, v", "SELECT v::real[]")).fetchall()
    assert got == [None if w is None else w for (w,) in want]


def test_documented_option_values_are_accepted(url):
    """Every value the module's docstring lists for an option is accepted."""
    import re

    doc = pgarrow.__doc__
    for option, values in re.findall(r"``(\w+)`` \(((?:\"[^\"]+\"(?:, )?)+)\)", doc):
        for value in re.findall(r'"([^"]+)"', values):
            if option in ("compression", "intervals"):
                continue  # files only: checked by test_export_files
            value = value.replace("P:S", "20:2").replace("LEVEL", "5")
            assert pgarrow.schema(url, "SELECT 1 AS x", **{option: value}).names == ["x"], (option, value)
