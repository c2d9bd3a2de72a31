"""Exports committed into Apache Iceberg tables of the SQL catalog in PostgreSQL
(`pgarrow export --iceberg URL`, Python `export_iceberg`), read back by readers nobody here
wrote: pyiceberg's `SqlCatalog` on the same database, polars' `scan_iceberg`, and DuckDB
1.5.5's iceberg extension. Every type of the mapping as the server has it, bounds readers
prune by, partition transforms, create / append / replace / refuse, one snapshot per export
however many connections, tables pyiceberg wrote appended to by pgarrow and the other way
round, concurrent appends, an object store as the warehouse, exports that fail, are
cancelled or killed leaving the table as it was, and tables imported back."""

import json
import signal
import subprocess
import uuid
from urllib.parse import urlparse, urlunparse

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from test_delta import same
from test_ducklake import export, normalized, pgarrow_bin, wait_for_backend
from test_object_stores import fresh_bucket, store, stores  # noqa: F401 (fixtures)

TYPES = """
CREATE TABLE {name} (
    id int PRIMARY KEY, small smallint, big bigint, amount numeric(12,2), ratio float8,
    flag boolean, label text, code varchar(8), day date, stamp timestamp, stamp_tz timestamptz,
    raw bytea, doc jsonb, tags int[], uid uuid, at time
);
INSERT INTO {name} VALUES
 (1, -32768, 9223372036854775807, -1234567890.12, 1.5, true, 'héllo', 'ab',
  '2026-11-26', '2026-11-26 10:11:12.345678', '2026-11-26 10:11:12+02', '\\x00ff',
  '{{"a": [1, 2]}}', '{{1,2,NULL}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10:11:12.5'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, 7, -1, 0.05, -0.25, false, '', 'z', '0001-01-01', '1999-12-31 23:59:59', '1970-01-01 00:00:00+00', '\\x',
  '[]', '{{}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', '00:00:00');
"""

COLUMNS = "id, small, big, amount, ratio, flag, label, code, day, stamp, stamp_tz, raw, doc, tags"


@pytest.fixture(scope="module")
def typed(conn):
    conn.execute("DROP TABLE IF EXISTS iceberg_types")
    conn.execute(TYPES.format(name="iceberg_types"))
    return "iceberg_types"


@pytest.fixture
def catalog(url, conn, tmp_path):
    """A new, empty catalog database and warehouse: (catalog URL, warehouse path)."""
    name = f"ice_{uuid.uuid4().hex[:12]}"
    conn.execute(f"CREATE DATABASE {name}")
    u = urlparse(url)
    yield urlunparse(u._replace(path=f"/{name}")), tmp_path / "warehouse"
    conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def pyiceberg(catalog_url: str, warehouse=None, **props) -> SqlCatalog:
    uri = catalog_url.replace("postgresql://", "postgresql+psycopg://", 1)
    if warehouse is not None:
        props["warehouse"] = str(warehouse)
    return SqlCatalog("default", uri=uri, **props)


def server_rows(conn, name, columns=COLUMNS):
    rows = conn.execute(f"SELECT {columns.replace('doc', 'doc::text')} FROM {name} ORDER BY id").fetchall()
    return [normalized(r) for r in rows]


def test_every_type_reads_back_in_three_readers_as_the_server_has_it(url, conn, catalog, typed, duckdb_iceberg):
    cat_url, warehouse = catalog
    report = json.loads(
        export(url, "-t", typed, "--iceberg", cat_url, "--warehouse", str(warehouse), "--lake-table", "sales.types").stdout
    )
    assert report["format"] == "iceberg" and report["created"] and report["rows"] == 3, report
    want = server_rows(conn, typed)
    # pyiceberg, through the same catalog.
    table = pyiceberg(cat_url).load_table("sales.types")
    assert table.metadata.format_version == 2
    assert table.location() == f"{warehouse}/sales.db/types"
    assert report["metadata_location"] == table.metadata_location
    got = table.scan().to_arrow().sort_by("id")
    same([tuple(r.values()) for r in got.select(COLUMNS.split(", ")).to_pylist()], want)
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert types["amount"] == "decimal(12, 2)" and types["small"] == "int" and types["big"] == "long"
    assert types["stamp"] == "timestamp" and types["stamp_tz"] == "timestamptz" and types["uid"] == "uuid"
    assert types["at"] == "time" and types["tags"] == "list<int>", types
    uids = sorted(str(uuid.UUID(bytes=u)) if isinstance(u, bytes) else str(u) for u in got["uid"].to_pylist() if u)
    assert uids == ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12"]
    # polars.
    import polars as pl

    frame = pl.scan_iceberg(table).select(COLUMNS.split(", ")).sort("id").collect()
    same([tuple(r) for r in frame.rows()], want)
    # DuckDB's iceberg extension, from the metadata file the catalog names.
    got = duckdb_iceberg(
        f"SELECT {COLUMNS.replace('doc', 'doc::varchar')} FROM iceberg_scan('{table.metadata_location}') ORDER BY id"
    )
    same(got, want)
    # The provenance rides in the snapshot's summary.
    summary = table.current_snapshot().summary
    assert summary.operation.value == "append"
    assert summary["added-records"] == "3" and summary["total-records"] == "3"
    provenance = json.loads(summary["pgarrow"])
    assert provenance["rows"] == 3 and provenance["wal_lsn"] and provenance["snapshot"]
