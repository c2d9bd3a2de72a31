"""Iceberg REST catalogs from Python (issue #68): every function that takes `iceberg=` takes a
REST catalog's address there, with `iceberg_properties=`, pyiceberg's catalog properties as a
dict (the command line's --iceberg-property KEY=VALUE: test_iceberg_rest.py). Each test that
needs a catalog runs once per real server (SeaweedFS, Rustberg: conftest.py's `rest_catalog`);
pyiceberg's RestCatalog reads what pgarrow committed."""

import psycopg
import pyarrow as pa
import pytest

import pgarrow
from test_delta import same
from test_ducklake import normalized
from test_iceberg import COLUMNS, TYPES, server_rows
from test_iceberg_rest import new_name, pyiceberg_rows

SECRET = "not-the-secret-xyz"


def keywords(server, lake_table: str, **more: str) -> dict:
    """The keywords naming `lake_table` of `server`: iceberg= its address, iceberg_properties=
    its other properties (`more` over the server's own), as a pyiceberg user writes them."""
    properties = {**server.properties, **more}
    return {"iceberg": properties.pop("uri"), "iceberg_properties": properties, "lake_table": lake_table}


def test_every_type_goes_out_and_back_through_the_catalog(url, conn, rest_catalog):
    server, src, lake = rest_catalog, new_name("pytypes"), f"rest_py.{new_name()}"
    conn.execute(TYPES.format(name=src))
    stats = pgarrow.export_iceberg(url, table=src, **keywords(server, lake))
    assert stats["format"] == "iceberg" and stats["created"] and stats["rows"] == 3, stats
    table = server.pyiceberg().load_table(lake)
    # The server holds the metadata pgarrow committed, and pyiceberg reads the rows as they are.
    assert stats["metadata_location"] == table.metadata_location
    assert table.current_snapshot().snapshot_id == stats["snapshot"]
    want = server_rows(conn, src)
    got = table.scan().to_arrow().sort_by("id")
    same([tuple(r.values()) for r in got.select(COLUMNS.split(", ")).to_pylist()], want)
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert types["amount"] == "decimal(12, 2)" and types["stamp_tz"] == "timestamptz" and types["uid"] == "uuid"
    # An append through the same keywords: a second snapshot, every row twice.
    again = pgarrow.export_iceberg(url, table=src, if_exists="append", **keywords(server, lake))
    assert not again["created"] and again["rows"] == 3, again
    table = server.pyiceberg().load_table(lake)
    assert len(table.metadata.snapshots) == 2
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == [1, 1, 2, 2, 3, 3]

    # Back into PostgreSQL by write(): the properties exactly as pyiceberg takes them, "uri"
    # included (it is iceberg=).
    back = new_name("back")
    conn.execute(f"CREATE TABLE {back} (LIKE {src})")
    loaded = pgarrow.write(url, back, iceberg=server.uri, iceberg_properties=server.properties,
                           lake_table=lake)
    assert loaded["rows"] == 6, loaded
    assert server_rows(conn, back) == sorted(want * 2, key=lambda r: r[0])


def test_several_tables_from_python_are_committed_together(url, conn, rest_catalog):
    """`schema=` into a REST catalog: one statistics dict per table, each saying how many
    tables its commit made visible at once; an append of both is one transaction on either
    server (a first export of new tables is one on Rustberg, which makes tables inside one)."""
    server, schema = rest_catalog, new_name("pymany")
    conn.execute(f"CREATE SCHEMA {schema}")
    for t, n in (("a", 4), ("b", 6)):
        conn.execute(f"CREATE TABLE {schema}.{t} AS SELECT g::bigint AS id FROM generate_series(1, {n}) g")
    kw = keywords(server, None)
    kw.pop("lake_table")
    first = pgarrow.export_iceberg(url, schema=schema, **kw)
    assert [(s["table"], s["rows"]) for s in first] == [(f"{schema}.a", 4), (f"{schema}.b", 6)]
    assert [s["committed_together"] for s in first] == ([2, 2] if server.name == "rustberg" else [1, 1])
    again = pgarrow.export_iceberg(url, schema=schema, if_exists="append", **kw)
    assert [s["committed_together"] for s in again] == [2, 2] and "apart" not in again[0], again
    cat = server.pyiceberg()
    assert [len(cat.load_table(f"{schema}.{t}").scan().to_arrow()) for t in "ab"] == [8, 12]


@pytest.fixture
def source(logical_url):
    """A connection to the database of the mirror tests (wal_level = logical)."""
    with psycopg.connect(logical_url, autocommit=True) as c:
        yield c


def test_a_mirror_catches_up_through_the_catalog(logical_url, source, rest_catalog):
    server, src, conn = rest_catalog, new_name("pym"), source
    conn.execute(f"CREATE TABLE {src} (id bigint PRIMARY KEY, name text, amount numeric(12,2))")
    conn.execute(f"INSERT INTO {src} SELECT g, 'n' || g, g * 1.25 FROM generate_series(1, 200) g")
    lake, slot = f"rest_pymirror.{src}", new_name("slot")
    columns = ["id", "name", "amount"]

    def mirror(**more):
        return pgarrow.mirror(logical_url, table=src, slot=slot, catch_up=True, **keywords(server, lake), **more)

    def want():
        return [normalized(r) for r in conn.execute(f"SELECT {', '.join(columns)} FROM {src} ORDER BY id")]

    try:
        first = mirror()
        assert first["exported"] and first["exported_rows"] == 200 and first["commits"] == 0, first
        assert pyiceberg_rows(server, lake, columns) == want()
        conn.execute(f"UPDATE {src} SET name = 'u' || id WHERE id <= 30")
        conn.execute(f"DELETE FROM {src} WHERE id BETWEEN 100 AND 139")
        conn.execute(f"INSERT INTO {src} SELECT g, 'new', 1 FROM generate_series(1000, 1009) g")
        second = mirror(commit_interval=0)
        assert not second["exported"] and second["commits"] >= 1 and second["deleted"] >= 40, second
        assert pyiceberg_rows(server, lake, columns) == want()
        # Caught up: a later call finds no change, and goes on from the position the table
        # records (no export again).
        third = mirror()
        assert not third["exported"] and third["changes"] == 0, third
        assert pyiceberg_rows(server, lake, columns) == want()
    finally:
        conn.execute(f"SELECT pg_drop_replication_slot('{slot}') WHERE EXISTS "
                     f"(SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}')")
        conn.execute(f'DROP PUBLICATION IF EXISTS "{slot}"')


def test_compaction_and_expiry_through_the_catalog(url, conn, rest_catalog):
    server, src, lake = rest_catalog, new_name("pymaint"), f"rest_pymaint.{new_name()}"
    conn.execute(f"CREATE TABLE {src} AS SELECT g::bigint AS id FROM generate_series(1, 40) g")
    for k in range(4):
        pgarrow.export_iceberg(url, table=src, if_exists="append" if k else "fail", **keywords(server, lake))
    compacted = pgarrow.compact_lake(**keywords(server, lake))
    assert compacted["format"] == "iceberg" and compacted["commits"] == 1, compacted
    assert compacted["files_rewritten"] >= 4 and compacted["files_written"] == 1, compacted
    table = server.pyiceberg().load_table(lake)
    assert table.current_snapshot().snapshot_id == compacted["snapshot"]
    assert len(table.metadata.snapshots) == 5
    # A dry run says what would go and changes nothing.
    dry = pgarrow.expire_lake(**keywords(server, lake), older_than=0, dry_run=True)
    assert dry["dry_run"] and dry["snapshots"] == 4, dry
    assert len(server.pyiceberg().load_table(lake).metadata.snapshots) == 5
    expired = pgarrow.expire_lake(**keywords(server, lake), older_than=0)
    assert expired["snapshots"] == 4 and expired["files"] >= 4, expired
    table = server.pyiceberg().load_table(lake)
    assert len(table.metadata.snapshots) == 1
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == sorted(list(range(1, 41)) * 4)


def test_refused_credentials_name_the_server_answer_and_never_the_secret(url, conn, rest_catalog):
    server, src = rest_catalog, new_name("pyauth")
    conn.execute(f"CREATE TABLE {src} AS SELECT 1 AS id")
    wrong = {"credential": f"pgarrowtestkey:{SECRET}"} if server.name == "seaweedfs" else {"token": f"rb_{SECRET}"}
    with pytest.raises(pgarrow.Error) as e:
        pgarrow.export_iceberg(url, table=src, **keywords(server, f"rest_pyauth.{src}", **wrong))
    assert SECRET not in str(e.value) and SECRET not in repr(e.value)
    assert "HTTP 401" in str(e.value) or "HTTP 403" in str(e.value), e.value


def test_iceberg_properties_are_refused_without_a_rest_catalog_naming_keys_never_values(url, conn, tmp_path):
    secret = {"credential": f"id:{SECRET}", "s3.secret-access-key": SECRET}

    def refused(call, match="iceberg_properties", error=pgarrow.UsageError):
        with pytest.raises(error, match=match) as e:
            call()
        assert SECRET not in str(e.value) and SECRET not in repr(e.value), e.value
        return str(e.value)

    conn.execute("DROP TABLE IF EXISTS rest_py_refused; CREATE TABLE rest_py_refused (id int)")
    # Without iceberg=: every function that takes the keyword refuses it, naming it.
    refused(lambda: pgarrow.compact_lake(delta=str(tmp_path / "d"), iceberg_properties=secret))
    refused(lambda: pgarrow.expire_lake(ducklake=url, lake_table="t", iceberg_properties=secret))
    refused(lambda: pgarrow.mirror(url, table="rest_py_refused", ducklake=url, slot="s",
                                   iceberg_properties=secret))
    refused(lambda: pgarrow.write(url, "rest_py_refused", pa.table({"id": [1]}), iceberg_properties=secret))
    refused(lambda: pgarrow.write(url, "rest_py_refused", delta=str(tmp_path / "d"), iceberg_properties=secret))
    refused(lambda: pgarrow.apply_changes(url, tmp_path, iceberg_properties=secret))
    refused(lambda: pgarrow.apply_changes(url, tmp_path, delta=str(tmp_path / "d"), iceberg_properties=secret))
    assert conn.execute("SELECT count(*) FROM rest_py_refused").fetchone()[0] == 0
    # An SQL catalog has no properties: the property is named by its key.
    sql = "postgresql://localhost/nowhere"
    message = refused(lambda: pgarrow.export_iceberg(url, table="rest_py_refused", iceberg=sql,
                                                     iceberg_properties={"credential": f"id:{SECRET}"}),
                      match="credential")
    assert "REST catalog" in message, message
    # The address is iceberg=: a "uri" of another is refused.
    refused(lambda: pgarrow.compact_lake(iceberg="http://127.0.0.1:9/a", lake_table="n.t",
                                         iceberg_properties={"uri": "http://127.0.0.1:9/b", "token": SECRET}),
            match="uri")
    # Values are text, as pyiceberg's are; another type is named by its key only.
    refused(lambda: pgarrow.compact_lake(iceberg="http://127.0.0.1:9", lake_table="n.t",
                                         iceberg_properties={"s3.path-style-access": True, "token": SECRET}),
            match=r"s3\.path-style-access", error=TypeError)
