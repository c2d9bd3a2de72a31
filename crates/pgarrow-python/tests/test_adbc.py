"""pgarrow's ADBC driver through the real ADBC driver manager (adbc-driver-manager from the
package index), loading the driver library by path: the DBAPI connection of
`pgarrow.adbc.connect`, the driver manager's low-level API, polars and pandas over it."""

import multiprocessing
import threading
import time

import adbc_driver_manager
import adbc_driver_manager.dbapi as dbapi
import pyarrow as pa
import pytest

import pgarrow
import pgarrow.adbc
from test_values import DIRECT, THROUGH_SERVER, types, values_query  # noqa: F401 (a fixture)


@pytest.fixture
def db(url):
    with pgarrow.adbc.connect(url, autocommit=True) as c:
        yield c


def run(db, sql, parameters=None):
    with db.cursor() as cur:
        cur.execute(sql, parameters)
        return cur.fetch_arrow_table()


def test_driver_is_this_package(url):
    assert pgarrow.adbc.driver_path() == pgarrow._pgarrow.__file__
    # The driver manager's own loading, by path and entry point, with options.
    db = adbc_driver_manager.AdbcDatabase(
        driver=pgarrow.adbc.driver_path(), entrypoint=pgarrow.adbc.ENTRYPOINT, uri=url
    )
    conn = adbc_driver_manager.AdbcConnection(db)
    handle = conn.get_info()
    rows = pa.RecordBatchReader._import_from_c(handle.address).read_all().to_pylist()
    info = {row["info_name"]: row["info_value"] for row in rows}
    assert info[0] == "PostgreSQL"
    assert info[100] == "pgarrow ADBC driver"
    conn.close()
    db.close()


def test_standalone_library(url):
    """The library other languages load (`libpgarrow_adbc.so`), through the same driver
    manager, by path, with its default entry point."""
    import os

    lib = os.environ.get("PGARROW_ADBC_LIB")
    if not lib or not os.path.exists(lib):
        pytest.fail(f"PGARROW_ADBC_LIB is not the driver library ({lib!r}): run through cargo test")
    with dbapi.connect(driver=lib, db_kwargs={"uri": url}, autocommit=True) as c:
        assert c.adbc_get_info()["driver_name"] == "pgarrow ADBC driver"
        assert run(c, "SELECT 2::numeric(3,1) AS x").column("x").to_pylist() == [
            __import__("decimal").Decimal("2.0")
        ]


def test_connect_by_url_and_by_options(url, conn):
    user, host_part = url.removeprefix("postgresql://").split("@", 1)
    no_user = f"postgresql://{host_part}"
    with pgarrow.adbc.connect(no_user, username=user) as c:
        assert run(c, "SELECT current_user AS u").column("u").to_pylist() == [user]
    host, rest = host_part.split(":", 1)
    port, dbname = rest.split("/", 1)
    kv = f"host={host} port={port} dbname={dbname} user={user}"
    with pgarrow.adbc.connect(kv) as c:
        assert run(c, "SELECT current_database() AS d").column("d").to_pylist() == [dbname]
    with pytest.raises(dbapi.OperationalError, match="127.0.0.1:1"):
        pgarrow.adbc.connect(f"postgresql://{user}@127.0.0.1:1/{dbname}?connect_timeout=2")


CASES = DIRECT + THROUGH_SERVER


@pytest.mark.parametrize("name,sql_type,literals", CASES, ids=[c[0] for c in CASES])
def test_every_type_as_the_export(url, conn, types, db, name, sql_type, literals):  # noqa: F811
    query = values_query(conn, sql_type, literals)
    ours = run(db, query)
    assert ours.equals(pgarrow.read_arrow(url, query), check_metadata=True)
    with db.cursor() as cur:
        assert cur.adbc_execute_schema(query) == pgarrow.schema(url, query)


def test_updates_count_rows(db):
    # ExecuteUpdate (the driver manager's execute_update; DBAPI's executemany). A DBAPI
    # execute() runs ExecuteQuery, whose row count adbc_ffi 0.25 always reports as -1.
    with db.cursor() as cur:
        stmt = cur.adbc_statement

        def update(sql):
            stmt.set_sql_query(sql)
            return stmt.execute_update()

        assert update("DROP TABLE IF EXISTS adbc_counts; CREATE TABLE adbc_counts (a int)") == -1
        assert update("INSERT INTO adbc_counts SELECT generate_series(1, 7)") == 7
        assert update("UPDATE adbc_counts SET a = 0 WHERE a > 4") == 3
        assert update("DELETE FROM adbc_counts") == 7


BOUND = [
    ("bool", pa.array([True, None, False])),
    ("int2", pa.array([-32768, None, 32767], pa.int16())),
    ("int4", pa.array([-(2**31), None, 2**31 - 1], pa.int32())),
    ("int8", pa.array([-(2**63), None, 2**63 - 1], pa.int64())),
    ("float4", pa.array([1.5, None, -0.0], pa.float32())),
    ("float8", pa.array([2.5, None, float("inf")], pa.float64())),
    ("numeric(12,2)", pa.array([1234, None, -1], pa.decimal128(12, 2))),
    ("text", pa.array(["héllo", None, ""])),
    ("bytea", pa.array([b"\x00\xff", None, b""])),
    ("date", pa.array([19000, None, 0], pa.date32())),
    ("time", pa.array([1, None, 86_399_999_999], pa.time64("us"))),
    ("timestamp", pa.array([1, None, -1], pa.timestamp("us"))),
    ("timestamptz", pa.array([1, None, 0], pa.timestamp("us", "UTC"))),
    ("int4[]", pa.array([[1, None], None, []], pa.list_(pa.int32()))),
]


@pytest.mark.parametrize("sql_type,values", BOUND, ids=[b[0] for b in BOUND])
def test_bound_parameters_of_every_scalar_type(db, sql_type, values):
    params = pa.table({"v": values})
    got = run(db, f"SELECT $1::{sql_type} AS v", params)
    # One execution per bound row, results in order, NULLs kept.
    assert got.column("v").combine_chunks().cast(values.type).to_pylist() == values.to_pylist()


def test_executemany_and_prepared_statements(db):
    with db.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS adbc_many; CREATE TABLE adbc_many (a int, b text)")
        cur.executemany("INSERT INTO adbc_many VALUES ($1, $2)", [(1, "x"), (2, None), (3, "z")])
        assert cur.rowcount == 3
        cur.execute("SELECT b FROM adbc_many WHERE a = $1", parameters=(2,))
        assert cur.fetchall() == [(None,)]
        with pytest.raises(dbapi.Error, match="70000"):
            cur.execute(
                "INSERT INTO adbc_many (a) VALUES ($1::int2)",
                parameters=pa.table({"a": pa.array([1, 70000], pa.int32())}),
            )
        cur.execute("SELECT count(*) AS n FROM adbc_many")
        assert cur.fetchone() == (3,)


def test_transactions(url, conn):
    conn.execute("DROP TABLE IF EXISTS adbc_tx; CREATE TABLE adbc_tx (a int)")
    count = lambda: conn.execute("SELECT count(*) FROM adbc_tx").fetchone()[0]  # noqa: E731
    with pgarrow.adbc.connect(url) as c:  # DBAPI: autocommit off
        with c.cursor() as cur:
            cur.execute("INSERT INTO adbc_tx VALUES (1)")
            assert count() == 0
            c.rollback()
            cur.execute("INSERT INTO adbc_tx VALUES (2)")
            c.commit()
            assert count() == 1
            cur.execute("INSERT INTO adbc_tx VALUES (3)")
            # Switching autocommit on commits what is open.
            c.adbc_connection.set_autocommit(True)
            assert count() == 2
            cur.execute("INSERT INTO adbc_tx VALUES (4)")
            assert count() == 3


def objects(db, depth, **filters):
    return db.adbc_get_objects(depth=depth, **filters).read_all().to_pylist()


def test_get_objects_depth_by_depth(db, conn):
    conn.execute(
        "DROP SCHEMA IF EXISTS adbc_objs CASCADE; CREATE SCHEMA adbc_objs;"
        "CREATE TABLE adbc_objs.parent (a int, b text, PRIMARY KEY (a, b));"
        'CREATE TABLE adbc_objs."Child" (id serial PRIMARY KEY, pa int NOT NULL, pb text,'
        " note text DEFAULT 'x', UNIQUE (note), FOREIGN KEY (pa, pb) REFERENCES adbc_objs.parent);"
        "CREATE VIEW adbc_objs.v AS SELECT 1 AS one;"
        "CREATE MATERIALIZED VIEW adbc_objs.mv AS SELECT 1 AS one;"
    )
    dbname = conn.execute("SELECT current_database()").fetchone()[0]
    cats = objects(db, "catalogs")
    assert cats == [{"catalog_name": dbname, "catalog_db_schemas": None}]
    assert objects(db, "catalogs", catalog_filter="no_such_%") == []

    schemas = objects(db, "db_schemas")[0]["catalog_db_schemas"]
    names = [s["db_schema_name"] for s in schemas]
    expected = [r[0] for r in conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_(toast|temp_)' ORDER BY 1"
    )]
    assert names == expected
    assert all(s["db_schema_tables"] is None for s in schemas)

    tables = objects(db, "tables", db_schema_filter="adbc_objs")[0]["catalog_db_schemas"][0]
    assert {(t["table_name"], t["table_type"]) for t in tables["db_schema_tables"]} == {
        ("parent", "table"), ("Child", "table"), ("v", "view"), ("mv", "materialized_view")
    }
    only_views = objects(db, "tables", db_schema_filter="adbc_objs", table_types_filter=["view"])
    assert [t["table_name"] for t in only_views[0]["catalog_db_schemas"][0]["db_schema_tables"]] == ["v"]

    full = objects(db, "all", db_schema_filter="adbc_objs", table_name_filter="Child")
    child = full[0]["catalog_db_schemas"][0]["db_schema_tables"][0]
    columns = {c["column_name"]: c for c in child["table_columns"]}
    catalog_columns = conn.execute(
        "SELECT attname, attnum, attnotnull FROM pg_attribute"
        " WHERE attrelid = 'adbc_objs.\"Child\"'::regclass AND attnum > 0 AND NOT attisdropped"
    ).fetchall()
    assert {(n, columns[n]["ordinal_position"], columns[n]["xdbc_nullable"] == 0) for n, _, _ in catalog_columns} == set(catalog_columns)
    assert columns["id"]["xdbc_is_autoincrement"] is True
    assert columns["note"]["xdbc_column_def"] == "'x'::text"
    constraints = {c["constraint_type"]: c for c in child["table_constraints"]}
    assert constraints["PRIMARY KEY"]["constraint_column_names"] == ["id"]
    assert constraints["UNIQUE"]["constraint_column_names"] == ["note"]
    fk = constraints["FOREIGN KEY"]
    assert fk["constraint_column_names"] == ["pa", "pb"]
    assert [(u["fk_table"], u["fk_column_name"]) for u in fk["constraint_column_usage"]] == [
        ("parent", "a"), ("parent", "b")
    ]
    one_column = objects(db, "columns", db_schema_filter="adbc_objs", table_name_filter="Child",
                         column_name_filter="p_")
    cols = one_column[0]["catalog_db_schemas"][0]["db_schema_tables"][0]["table_columns"]
    assert [c["column_name"] for c in cols] == ["pa", "pb"]

    schema = db.adbc_get_table_schema("Child", db_schema_filter="adbc_objs")
    assert schema.names == ["id", "pa", "pb", "note"]
    assert db.adbc_get_table_types() == [
        "table", "view", "materialized_view", "foreign_table", "partitioned_table"
    ]


def count_rows(db, table):
    return run(db, f'SELECT count(*) AS n FROM "{table}"').column("n")[0].as_py()


def test_ingest_in_every_mode(db):
    data = pa.table({"id": pa.array([1, 2], pa.int32()), "name": ["a", None]})
    with db.cursor() as cur:
        cur.execute('DROP TABLE IF EXISTS "Ingest"')
        assert cur.adbc_ingest("Ingest", data, mode="create") == 2
        with pytest.raises(dbapi.ProgrammingError, match="already exists"):
            cur.adbc_ingest("Ingest", data, mode="create")
        assert cur.adbc_ingest("Ingest", data, mode="append") == 2
        assert count_rows(db, "Ingest") == 4
        with pytest.raises(dbapi.ProgrammingError, match="does not exist"):
            cur.adbc_ingest("no_such_table", data, mode="append")
        assert cur.adbc_ingest("Ingest", data.slice(0, 1), mode="replace") == 1
        assert count_rows(db, "Ingest") == 1
        assert cur.adbc_ingest("Ingest", data, mode="create_append") == 2
        assert count_rows(db, "Ingest") == 3
        # A failing ingest leaves the table as it was.
        cur.execute('DELETE FROM "Ingest" WHERE id = 1; ALTER TABLE "Ingest" ADD UNIQUE (id)')
        with pytest.raises(dbapi.IntegrityError):
            cur.adbc_ingest("Ingest", pa.table({"id": pa.array([9, 9], pa.int32())}), mode="append")
        assert count_rows(db, "Ingest") == 1
        with pytest.raises(dbapi.Error, match="id"):
            cur.adbc_ingest("Ingest", pa.table({"id": ["not a number"]}), mode="append")
        assert count_rows(db, "Ingest") == 1
        # Temporary tables and a stream of batches.
        stream = pa.RecordBatchReader.from_batches(data.schema, data.to_batches() * 3)
        assert cur.adbc_ingest("tmp_ingest", stream, mode="create", temporary=True) == 6
        kind = run(db, "SELECT relpersistence::text AS p FROM pg_class WHERE relname = 'tmp_ingest'")
        assert kind.column("p").to_pylist() == ["t"]


def test_ingest_names_exactly_one_table_never_a_temporary_one_of_the_same_name(db):
    """Without a schema, an ingest means current_schema()'s table: a temporary table of the same
    name (first on the search path) is neither written to nor dropped by any mode."""
    data = pa.table({"id": pa.array([1, 2], pa.int32())})
    with db.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS shadowed")
        cur.execute("CREATE TEMP TABLE shadowed (id int, note text)")
        cur.execute("INSERT INTO shadowed VALUES (7, 'temp')")
        assert cur.adbc_ingest("shadowed", data, mode="create") == 2
        assert cur.adbc_ingest("shadowed", data, mode="append") == 2
        assert cur.adbc_ingest("shadowed", data, mode="create_append") == 2
        counts = run(db, "SELECT (SELECT count(*) FROM public.shadowed) AS perm, (SELECT count(*) FROM pg_temp.shadowed) AS tmp")
        assert counts.to_pylist() == [{"perm": 6, "tmp": 1}]
        assert cur.adbc_ingest("shadowed", data.slice(0, 1), mode="replace") == 1
        counts = run(db, "SELECT (SELECT count(*) FROM public.shadowed) AS perm, (SELECT count(*) FROM pg_temp.shadowed) AS tmp")
        assert counts.to_pylist() == [{"perm": 1, "tmp": 1}]
        # A schema named by the option, the same.
        assert cur.adbc_ingest("shadowed", data, mode="append", db_schema_name="public") == 2
        assert run(db, "SELECT count(*) AS n FROM pg_temp.shadowed").column("n").to_pylist() == [1]
    # pg_temp named first on the search path: current_schema() is the temporary schema, and
    # still the permanent table is written.
    with db.cursor() as cur:
        cur.execute("SET search_path TO pg_temp, public")
        assert cur.adbc_ingest("shadowed", data, mode="append") == 2
        cur.execute("RESET search_path")
    counts = run(db, "SELECT (SELECT count(*) FROM public.shadowed) AS perm, (SELECT count(*) FROM pg_temp.shadowed) AS tmp")
    assert counts.to_pylist() == [{"perm": 5, "tmp": 1}]
    # Asked for, the temporary table is the one written (a new cursor: the schema option
    # stays set on the old one's statement).
    with db.cursor() as cur:
        assert cur.adbc_ingest("shadowed", data, mode="append", temporary=True) == 2
        assert run(db, "SELECT count(*) AS n FROM pg_temp.shadowed").column("n").to_pylist() == [3]
        cur.execute("DROP TABLE pg_temp.shadowed; DROP TABLE public.shadowed")


def test_ingest_creates_nested_types_when_asked(db):
    """`pgarrow.create_nested` = typed: the created table gets a composite type per Struct."""
    data = pa.table({"id": [1], "pt": pa.array([{"x": 1.5, "y": None}], pa.struct([("x", pa.float64()), ("y", pa.int32())]))})
    with db.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS ingest_nested; DROP TYPE IF EXISTS ingest_nested_pt")
        cur.adbc_statement.set_options(**{"pgarrow.create_nested": "typed"})
        assert cur.adbc_statement.get_option("pgarrow.create_nested") == "typed"
        assert cur.adbc_ingest("ingest_nested", data, mode="create") == 1
        got = run(db, "SELECT format_type(atttypid, atttypmod) AS t, (SELECT (pt).x FROM ingest_nested) AS x"
                  " FROM pg_attribute WHERE attrelid = 'ingest_nested'::regclass AND attname = 'pt'")
        assert got.to_pylist() == [{"t": "ingest_nested_pt", "x": 1.5}]
        with pytest.raises(dbapi.Error, match="create_nested"):
            cur.adbc_statement.set_options(**{"pgarrow.create_nested": "composite"})
        cur.execute("DROP TABLE ingest_nested; DROP TYPE ingest_nested_pt")


def read_partition_elsewhere(url, descriptor, queue):
    """Runs in a spawned process: reads one partition on a connection of its own."""
    import pgarrow.adbc

    with pgarrow.adbc.connect(url, autocommit=True) as c, c.cursor() as cur:
        cur.adbc_read_partition(descriptor)
        table = cur.fetch_arrow_table()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    queue.put(sink.getvalue().to_pybytes())


def test_partitions_in_other_processes_under_a_writer(url, conn, db):
    conn.execute(
        "DROP TABLE IF EXISTS adbc_parts; CREATE TABLE adbc_parts (id int PRIMARY KEY, v int);"
        "INSERT INTO adbc_parts SELECT g, g FROM generate_series(1, 20000) g"
    )
    with db.cursor() as cur:
        cur.adbc_statement.set_options(**{"pgarrow.partitions": "4", "pgarrow.partition_by": "id"})
        descriptors, schema = cur.adbc_execute_partitions("SELECT * FROM adbc_parts")
    assert len(descriptors) == 4
    before = run(db, "SELECT * FROM adbc_parts ORDER BY id")

    stop = threading.Event()

    def writer():
        import psycopg

        with psycopg.connect(url, autocommit=True) as w:
            step = 0
            while not stop.is_set() and step < 2000:
                step += 1
                w.execute("UPDATE adbc_parts SET v = v + 1 WHERE id %% 97 = %s", (step % 97,))
                w.execute("INSERT INTO adbc_parts VALUES (%s, 0)", (100000 + step,))

    t = threading.Thread(target=writer)
    t.start()
    try:
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        procs = [ctx.Process(target=read_partition_elsewhere, args=(url, d, queue)) for d in descriptors]
        for p in procs:
            p.start()
        tables = [pa.ipc.open_stream(queue.get(timeout=120)).read_all() for _ in procs]
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
    finally:
        stop.set()
        t.join()
    union = pa.concat_tables(tables).sort_by("id")
    assert union.schema == schema
    assert union.equals(before)
    assert run(db, "SELECT count(*) AS n FROM adbc_parts").column("n")[0].as_py() > 20000


def running(conn, marker: str, waiting: str = "") -> int:
    """Backends running (not idle after) a query that contains `marker`; with `waiting`, only
    those waiting on that event (`PgSleep`: inside pg_sleep, past the query's describe, which
    is active for a moment too)."""
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s"
        " AND pid <> pg_backend_pid() AND (%s = '' OR wait_event = %s)",
        (f"%{marker}%", waiting, waiting),
    ).fetchone()[0]


@pytest.mark.parametrize("by", ["connection", "cursor"])
def test_cancel_stops_the_backend(db, conn, by):
    marker = f"adbc_cancel_marker_{by}"
    errors = []
    cur = db.cursor()

    def long_query():
        with cur:
            try:
                cur.execute(f"SELECT pg_sleep(60) AS {marker}")
                cur.fetchall()
            except dbapi.Error as e:
                errors.append(e)

    t = threading.Thread(target=long_query)
    t.start()
    deadline = time.monotonic() + 30
    while not running(conn, marker, "PgSleep") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running(conn, marker, "PgSleep") == 1
    if by == "connection":
        db.adbc_cancel()
    else:
        cur.adbc_cancel()
    t.join(30)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], dbapi.OperationalError), errors
    assert errors[0].sqlstate == "57014"
    deadline = time.monotonic() + 5
    while running(conn, marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running(conn, marker) == 0
    # The connection goes on.
    assert run(db, "SELECT 1 AS one").column("one").to_pylist() == [1]


def test_cancel_stops_an_endless_ingest_and_rolls_it_back(db, conn):
    """A cancel sets the running statement's stop: the load sends CopyFail and rolls back
    between chunks, so even an ingest whose input never ends stops (a CancelRequest alone
    reaches a server that waits for more COPY data, while the client would go on sending)."""
    schema = pa.schema([("id", pa.int64()), ("pad", pa.string())])
    produced = threading.Event()
    sent = [0]

    def endless():
        while True:
            sent[0] += 1
            if sent[0] == 20:
                produced.set()
            yield pa.record_batch([pa.array(range(10_000)), pa.array(["x" * 50] * 10_000)],
                                  schema=schema)

    errors = []
    cur = db.cursor()

    def ingest():
        with cur:
            try:
                cur.adbc_ingest("endless_ingest", pa.RecordBatchReader.from_batches(schema, endless()),
                                mode="create")
            except dbapi.Error as e:
                errors.append(e)

    t = threading.Thread(target=ingest)
    t.start()
    assert produced.wait(60), "the ingest did not start reading its input"
    cur.adbc_cancel()
    t.join(30)
    assert not t.is_alive(), "the ingest went on after the cancel"
    assert len(errors) == 1 and isinstance(errors[0], dbapi.OperationalError), errors
    assert "cancel" in str(errors[0]).lower(), errors[0]
    # Rolled back: the table it created is gone, and the connection goes on.
    gone = conn.execute("SELECT to_regclass('endless_ingest') IS NULL").fetchone()[0]
    assert gone
    assert run(db, "SELECT 1 AS one").column("one").to_pylist() == [1]


def test_errors_carry_the_servers_fields(db):
    with db.cursor() as cur:
        with pytest.raises(dbapi.ProgrammingError) as e:
            cur.execute("SELECT * FROM no_such_table_here")
    assert e.value.sqlstate == "42P01"
    details = {k.decode(): v for k, v in e.value.details}
    assert details["PG_DIAG_SQLSTATE"] == b"42P01"
    assert b"no_such_table_here" in details["PG_DIAG_MESSAGE_PRIMARY"]


def test_polars_and_pandas_over_the_connection(db, url):
    import pandas as pd
    import polars as pl

    sql = "SELECT g AS id, g * 1.5::numeric(10,2) AS amount FROM generate_series(1, 100) g"
    expected = pgarrow.read_arrow(url, sql)
    frame = pl.read_database(sql, connection=db)
    assert frame.height == 100
    assert frame["amount"].to_list() == expected.column("amount").to_pylist()
    df = pd.read_sql(sql, db)
    assert list(df["id"]) == list(range(1, 101))


def test_an_error_after_the_first_batch_keeps_its_class_and_sqlstate(db):
    """A division by zero at row 300,000 comes while the stream is read, batches after the
    first: through ErrorFromArrayStream it is still a DataError with its SQLSTATE and the
    server's fields, for every DB-API way of reading (`fetch_record_batch` hands out pyarrow's
    own reader, by the driver manager's design: its errors are pyarrow's)."""
    sql = "SELECT g, 1 / (g - 300000) AS x FROM generate_series(1, 400000) g"
    for read in ("fetchall", "fetchmany", "fetch_arrow_table", "fetch_df"):
        with db.cursor() as cur:
            cur.execute(sql)  # the first batch is fine
            with pytest.raises(dbapi.DataError) as e:
                if read == "fetchmany":
                    while cur.fetchmany(100_000):
                        pass
                else:
                    getattr(cur, read)()
            assert e.value.sqlstate == "22012", read
            details = {k.decode(): v for k, v in e.value.details}
            assert details["PG_DIAG_MESSAGE_PRIMARY"] == b"division by zero"
    # The connection goes on.
    assert run(db, "SELECT 1 AS one").column("one").to_pylist() == [1]


def test_a_server_that_ends_the_session_mid_stream_is_an_operational_error(db, url):
    with pgarrow.adbc.connect(url, autocommit=True) as victim, victim.cursor() as cur:
        pid = run(victim, "SELECT pg_backend_pid() AS pid").column("pid")[0].as_py()
        cur.execute("SELECT g FROM generate_series(1, 2000000) g")
        cur.fetch_record_batch().read_next_batch()
        assert run(db, f"SELECT pg_terminate_backend({pid}) AS t").column("t").to_pylist() == [True]
        with pytest.raises(dbapi.OperationalError) as e:
            cur.fetchall()
        assert e.value.sqlstate in (None, "57P01"), e.value
        with pytest.raises(dbapi.OperationalError):
            cur.execute("SELECT 1")


def test_cancel_takes_effect_at_the_next_fetch(db):
    """Even when the server had sent every row (or the batch read ahead holds them)."""
    for sql in ("SELECT 1 AS one", "SELECT g FROM generate_series(1, 1000000) g"):
        with db.cursor() as cur:
            cur.execute(sql)
            cur.adbc_cancel()
            with pytest.raises(dbapi.OperationalError, match="canceling statement") as e:
                cur.fetchone()
            assert e.value.sqlstate == "57014"
        # A cancel with nothing running is forgotten by the next statement.
        with db.cursor() as cur:
            cur.adbc_cancel()
            cur.execute("SELECT 2 AS two")
            assert cur.fetchall() == [(2,)]


def status(conn):
    return conn.adbc_connection.get_option("adbc.postgresql.transaction_status")


def test_an_unread_result_is_drained_by_commit_rollback_and_the_next_statement(url, db):
    run(db, "DROP TABLE IF EXISTS adbc_unread; CREATE TABLE adbc_unread (a int)")
    count = lambda: run(db, "SELECT count(*) AS n FROM adbc_unread").column("n")[0].as_py()  # noqa: E731
    big = "SELECT g FROM generate_series(1, 300000) g"
    with pgarrow.adbc.connect(url) as c:  # autocommit off
        assert status(c) == "idle"
        with c.cursor() as cur:
            cur.execute("INSERT INTO adbc_unread VALUES (1)")
            assert status(c) == "intrans"
            cur.execute(big)
            assert cur.fetchone() == (1,)
            assert status(c) == "active"
            # Drained, not cancelled: the transaction commits with its insert.
            c.commit()
            assert status(c) == "idle"
            assert count() == 1
            cur.execute(big)
            c.rollback()
            assert status(c) == "idle"
            # The next statement, on the same cursor and on another one.
            cur.execute(big)
            cur.execute("SELECT 5 AS five")
            assert cur.fetchall() == [(5,)]
            cur.execute(big)
            assert cur.fetchone() == (1,)
            with c.cursor() as other:
                other.execute("SELECT 6 AS six")
                assert other.fetchall() == [(6,)]
            # The first cursor's result was drained: it says so, and never hands out
            # another statement's rows.
            with pytest.raises(dbapi.ProgrammingError, match="before it was read to its end"):
                cur.fetchall()
            c.commit()
    # In autocommit, a statement that writes is never undone for being left unread.
    with pgarrow.adbc.connect(url, autocommit=True) as c, c.cursor() as cur:
        cur.execute("INSERT INTO adbc_unread SELECT g FROM generate_series(1, 200000) g RETURNING a")
        cur.execute("SELECT 1")
        cur.fetchall()
    assert count() == 200001


def test_transaction_status_and_a_failed_transaction(url):
    with pgarrow.adbc.connect(url) as c, c.cursor() as cur:
        with pytest.raises(dbapi.ProgrammingError) as e:
            cur.execute("INSERT INTO no_such_table_for_status VALUES (1)")
        assert e.value.sqlstate == "42P01"
        assert status(c) == "inerror"
        # Refused before the server is asked, with the SQLSTATE it would give.
        with pytest.raises(dbapi.ProgrammingError, match="first rollback") as e:
            cur.execute("SELECT 1")
        assert e.value.sqlstate == "25P02"
        # A failed transaction is never reported committed.
        with pytest.raises(dbapi.ProgrammingError, match="cannot be committed"):
            c.commit()
        c.rollback()
        assert status(c) == "idle"
        cur.execute("SELECT 1 AS one")
        assert cur.fetchall() == [(1,)]


def test_rowcount_of_dml_through_execute(db):
    with db.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS adbc_rowcount; CREATE TABLE adbc_rowcount (a int)")
        cur.execute("INSERT INTO adbc_rowcount SELECT generate_series(1, 7)")
        assert cur.rowcount == 7
        cur.execute("UPDATE adbc_rowcount SET a = a + 1 WHERE a > 4")
        assert cur.rowcount == 3
        cur.execute("INSERT INTO adbc_rowcount VALUES ($1)", (10,))
        assert cur.rowcount == 1
        cur.execute("DELETE FROM adbc_rowcount")
        assert cur.rowcount == 8


def test_the_official_drivers_option_names(db):
    with db.cursor() as cur:
        stmt = cur.adbc_statement
        stmt.set_options(**{"adbc.postgresql.batch_size_hint_bytes": "4096"})
        assert stmt.get_option_int("adbc.postgresql.batch_size_hint_bytes") == 4096
        assert stmt.get_option("pgarrow.batch_bytes") == "4096"
        cur.execute("SELECT g::int4 AS g FROM generate_series(1, 65536) g")
        batches = cur.fetch_arrow_table().to_batches()
        assert 64 <= len(batches) <= 256, len(batches)
        # Statements COPY cannot run go without it (the official driver needs use_copy=false).
        cur.execute("SHOW search_path")
        assert cur.fetchall() == [('"$user", public',)]
        cur.execute("EXPLAIN SELECT 1")
        assert "Result" in cur.fetchall()[0][0]
        stmt.set_options(**{"adbc.postgresql.use_copy": "false"})
        assert stmt.get_option("adbc.postgresql.use_copy") == "false"
        cur.execute("SELECT 2::numeric(3,1) AS x")
        assert cur.fetchall() == [(__import__("decimal").Decimal("2.0"),)]
        with pytest.raises(dbapi.ProgrammingError, match="use_copy"):
            stmt.set_options(**{"adbc.postgresql.use_copy": "maybe"})


def test_partitions_of_a_query_without_a_column_to_split_by_say_what_is_missing(db):
    with db.cursor() as cur:
        cur.adbc_statement.set_options(**{"pgarrow.partitions": "3"})
        with pytest.raises(dbapi.ProgrammingError, match="pgarrow.partition_by"):
            cur.adbc_execute_partitions("SELECT g FROM generate_series(1, 10) g")
