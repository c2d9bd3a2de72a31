"""pgarrow.write and pgarrow.copy never write into a temporary table the caller did not name.

A table without its schema resolves through the search path, where the session's temporary
schema (pg_temp) comes first. write and copy load on sessions of their own, so a temporary
table of the caller's session cannot shadow the table; but a search path that starts with
pg_temp (the URL's ``options``, PGOPTIONS, a role's setting) made a table created from a bare
name a temporary one: the rows were loaded, counted, and gone with the session. A table
without its schema is the first schema of the search path (less pg_temp) that has it, else it
is created in the first; ``pg_temp.name`` means the temporary table."""

import pyarrow as pa
import pytest

import pgarrow


def pg_temp_first(url: str) -> str:
    """``url`` with a search path that starts with pg_temp."""
    return url + ("&" if "?" in url else "?") + "options=-csearch_path%3Dpg_temp%2Cpublic"


def data(ids, v):
    return pa.table({"id": pa.array(ids, pa.int64()), "v": pa.array(v, pa.string())})


def persistence(conn, table):
    """The relpersistence of ``public.table`` and its row count, or None when it is not there."""
    row = conn.execute(
        "SELECT relpersistence::text FROM pg_class WHERE oid = to_regclass(%s)", (f"public.{table}",)
    ).fetchone()
    if row is None:
        return None
    return row[0], conn.execute(f"SELECT count(*) FROM public.{table}").fetchone()[0]


@pytest.fixture
def tables(conn):
    conn.execute(
        "DROP TABLE IF EXISTS ws_t, ws_made, ws_made_upsert, ws_copied, ws_src;"
        " CREATE TABLE ws_t (id int8 PRIMARY KEY, v text); INSERT INTO ws_t VALUES (1, 'one');"
        " CREATE TABLE ws_src AS SELECT g::int8 AS id, g::text AS v FROM generate_series(1, 3) g;"
        " ALTER TABLE ws_src ADD PRIMARY KEY (id)"
    )
    yield
    conn.execute("DROP TABLE IF EXISTS ws_t, ws_made, ws_made_upsert, ws_copied, ws_src")


def rows(conn, sql):
    return conn.execute(sql).fetchall()


def test_a_temporary_table_of_the_callers_session_cannot_shadow_the_table(url, conn, tables):
    # The caller's session has a temporary ws_t: write's own session does not see it.
    conn.execute("CREATE TEMP TABLE ws_t (id int8 PRIMARY KEY, v text); INSERT INTO ws_t VALUES (99, 'temp')")
    try:
        assert pgarrow.write(url, "ws_t", data([2], ["two"]))["rows"] == 1
        assert pgarrow.write(url, "ws_t", data([2, 3], ["TWO", "three"]), "upsert", key="id")["rows"] == 2
        assert rows(conn, "SELECT id, v FROM public.ws_t ORDER BY id") == [(1, "one"), (2, "TWO"), (3, "three")]
        assert pgarrow.write(url, "ws_t", data([5], ["five"]), "replace")["rows"] == 1
        assert rows(conn, "SELECT id, v FROM public.ws_t ORDER BY id") == [(5, "five")]
        assert rows(conn, "SELECT id, v FROM pg_temp.ws_t") == [(99, "temp")]
    finally:
        conn.execute("DROP TABLE pg_temp.ws_t")


def test_pg_temp_first_on_the_search_path_never_makes_the_table_temporary(url, conn, tables):
    temp_first = pg_temp_first(url)
    # Created from a bare name: a permanent table in public, with the rows.
    assert pgarrow.write(temp_first, "ws_made", data([1, 2], ["a", "b"]), create=True)["rows"] == 2
    assert persistence(conn, "ws_made") == ("p", 2)
    keyed = pgarrow.read_arrow(url, "ws_src")
    stats = pgarrow.write(temp_first, "ws_made_upsert", keyed, "upsert", key="id", create=True)
    assert stats["rows"] == 3
    assert persistence(conn, "ws_made_upsert") == ("p", 3)
    # An existing table is found past pg_temp, in every mode.
    pgarrow.write(temp_first, "ws_t", data([2], ["two"]))
    pgarrow.write(temp_first, "ws_t", data([2, 3], ["TWO", "three"]), "upsert", key="id")
    assert rows(conn, "SELECT id, v FROM public.ws_t ORDER BY id") == [(1, "one"), (2, "TWO"), (3, "three")]
    pgarrow.write(temp_first, "ws_t", data([5], ["five"]), "replace")
    assert rows(conn, "SELECT id, v FROM public.ws_t ORDER BY id") == [(5, "five")]
    # copy's target likewise.
    assert pgarrow.copy(url, "ws_src", to=temp_first, into="ws_copied", create=True)["rows"] == 3
    assert persistence(conn, "ws_copied") == ("p", 3)
    assert pgarrow.copy(url, "ws_src", to=temp_first, into="ws_t", mode="replace")["rows"] == 3
    assert rows(conn, "SELECT id, v FROM public.ws_t ORDER BY id") == [(1, "1"), (2, "2"), (3, "3")]


def test_pg_temp_named_is_the_temporary_table(url, conn, tables):
    # Asked for by name, the temporary table is written (and goes with write's session);
    # the permanent table of that name is untouched.
    assert pgarrow.write(url, "pg_temp.ws_t", data([7], ["seven"]), create=True)["rows"] == 1
    assert rows(conn, "SELECT id, v FROM public.ws_t") == [(1, "one")]
