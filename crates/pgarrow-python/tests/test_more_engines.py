"""Delta and Iceberg tables pgarrow writes, read by engines built apart from the readers of
the other files (DuckDB, pyiceberg, deltalake, polars): chDB (ClickHouse embedded: its
`deltaLakeLocal` and `icebergLocal` table functions), Daft (its own `read_deltalake` and
`read_iceberg` scans) and Sail (a Spark-compatible Rust engine, through the Spark Connect
client: `spark.read.format("delta" | "iceberg")`). Each reads three kinds of table per
format: an export of columns of many types with NULLs; a mirror whose source rows were
updated and deleted, which Delta records as deletion vectors and Iceberg as position delete
files (merge-on-read); and the same mirror with `--deletes copy-on-write`, whose commits
write again each file that loses rows. What each engine reads must be the source's rows,
compared exactly (order-free); where an engine gives a value in another form, the form it
gives is written down here (DIFFERENCES) and asserted, so that the test fails when the
engine changes. Where an engine cannot read a kind (Daft and deletion vectors), the test
asserts its exact refusal, and the copy-on-write kind is the one it reads.

None of them reads the SQL catalog: Daft reads an Iceberg table from the metadata file the
catalog names (pyiceberg's StaticTable), chDB from that file too (icebergLocal's
iceberg_metadata_file_path), Sail from the table's directory (the newest metadata file there).
bytea and time are left out of the columns: chDB's Arrow output declares a binary column (a
ClickHouse String) as UTF-8 text, which bytes that are not UTF-8 break, and it reads an
Iceberg time as whole seconds (an Int64, the fraction lost).

The engines live in a venv of their own, target/engines-venv (`bash scripts/test-all.sh`
installs the pinned .ci/engines-requirements.txt there: Daft pins a pyarrow older than the
readers' one), or the interpreter PGARROW_ENGINES_PYTHON names; each read runs in a process of
that interpreter and hands its rows back as JSON.

DuckLake is not read here: its catalog (tables in the catalog database) is read by DuckDB's
ducklake extension alone, and none of these engines has a DuckLake reader (test_ducklake.py
and test_mirror.py read it with DuckDB)."""

import contextlib
import datetime
import inspect
import json
import os
import pathlib
import subprocess
import uuid
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest

from conftest import _missing
from test_ducklake import export, pgarrow_bin

ENGINES = ["chdb", "daft", "sail"]
FORMATS = ["delta", "iceberg"]

COLUMNS = """id int PRIMARY KEY, small smallint, big bigint, amount numeric(12,2), wide numeric(38,6),
    ratio float8, flag boolean, label text, day date, stamp timestamp, stamp_tz timestamptz, uid uuid,
    tags int[]"""

ROWS = """
 (1, -32768, 9223372036854775807, -1234567890.12, 12345678901234567890.123456, 1e308, true, 'héllo',
  '2024-02-29', '2024-01-01 10:00:00.123456', '2024-01-01 10:00:00.654321+02',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{1,2,NULL}'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, 32767, -1, 0.05, -0.000001, -2.5, false, '', '0001-01-01', '1970-01-01 00:00:00',
  '1999-12-31 23:59:59.999999+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', '{}')"""


def plain(v):
    """A value as JSON with its kind: what an engine read (in its interpreter) and what
    PostgreSQL has (here) compare in this form. Timestamps with a time zone in UTC."""
    import datetime
    import decimal
    import uuid

    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, decimal.Decimal):
        return ["numeric", str(v)]
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            return ["timestamp", v.isoformat()]
        return ["timestamptz", v.astimezone(datetime.timezone.utc).isoformat()]
    if isinstance(v, datetime.date):
        return ["date", v.isoformat()]
    if isinstance(v, uuid.UUID):
        return ["uuid", str(v)]
    if isinstance(v, (bytes, bytearray, memoryview)):
        return ["bytes", bytes(v).hex()]
    if isinstance(v, (list, tuple)):
        return ["list", [plain(x) for x in v]]
    return [f"unknown {type(v).__name__}", repr(v)]


# Runs in the engines' interpreter: `engine format location metadata` as arguments (the
# Delta table's directory, or the Iceberg table's directory and the metadata file its catalog
# names), the working directory the tables are under (chDB reads files only below it). On
# stdout, JSON: {"columns", "types" (Arrow's), "rows"} with each value `plain`, or {"error"}
# with the engine's exception.
_READ = inspect.getsource(plain) + '''
import json, sys


def read(engine, fmt, location, metadata):
    if engine == "chdb":
        import chdb

        if fmt == "delta":
            source = f"deltaLakeLocal('{location}')"
        else:
            source = f"icebergLocal('{location}', SETTINGS iceberg_metadata_file_path = '{metadata}')"
        return chdb.query(f"SELECT * FROM {source} SETTINGS session_timezone = 'UTC'", "ArrowTable")
    if engine == "daft":
        import daft

        if fmt == "delta":
            return daft.read_deltalake(location).to_arrow()
        from pyiceberg.table import StaticTable

        return daft.read_iceberg(StaticTable.from_metadata(metadata)).to_arrow()
    if engine == "sail":
        from pysail.spark import SparkConnectServer
        from pyspark.sql import SparkSession

        server = SparkConnectServer(ip="127.0.0.1", port=0)
        server.start(background=True)
        try:
            spark = SparkSession.builder.remote(f"sc://127.0.0.1:{server.listening_address[1]}").getOrCreate()
            try:
                spark.conf.set("spark.sql.session.timeZone", "UTC")
                return spark.read.format(fmt).load(location).toArrow()
            finally:
                # Before the server: a client left open retries it at exit, for minutes.
                spark.stop()
        finally:
            server.stop()
    raise SystemExit(f"no engine {engine}")


try:
    table = read(*sys.argv[1:5])
except Exception as e:
    json.dump({"error": f"{type(e).__name__}: {e}"}, sys.stdout)
else:
    json.dump({
        "columns": table.column_names,
        "types": {f.name: str(f.type) for f in table.schema},
        "rows": [[plain(v) for v in row.values()] for row in table.to_pylist()],
    }, sys.stdout)
'''

# The modules the reads import: a missing one fails the tests before any read.
_MODULES = "import chdb, daft, deltalake, pyiceberg, pysail; from pyspark.sql import SparkSession"


@pytest.fixture(scope="module")
def engine_read(tmp_path_factory):
    """`read(engine, fmt, table) -> dict`: `engine` reads the lake table `table` (a Delta
    table's directory, or the metadata file an Iceberg catalog names) in a process of the
    engines' interpreter: PGARROW_ENGINES_PYTHON, else target/engines-venv. A missing
    interpreter or engine fails the tests, unless PGARROW_ALLOW_SKIP=1 (then they skip,
    loudly)."""
    python = os.environ.get("PGARROW_ENGINES_PYTHON") or str(
        pathlib.Path(__file__).resolve().parents[3] / "target" / "engines-venv" / "bin" / "python3"
    )
    try:
        subprocess.run([python, "-c", _MODULES], check=True, capture_output=True, timeout=120)
    except (OSError, subprocess.CalledProcessError) as e:
        detail = e.stderr.decode(errors="replace").strip() if isinstance(e, subprocess.CalledProcessError) else e
        _missing(
            f"the engines chdb, daft and pysail in {python} ({detail}): pip install -r "
            ".ci/engines-requirements.txt into target/engines-venv, or name another interpreter "
            "in PGARROW_ENGINES_PYTHON"
        )

    # A file, not `python -c`: the Spark client takes a main module without a file for its
    # own doctests, and then looks for a Spark installation.
    script = tmp_path_factory.mktemp("engines") / "read.py"
    script.write_text(_READ)

    def read(engine: str, fmt: str, table: pathlib.Path) -> dict:
        if fmt == "delta":
            location, metadata, cwd = table, "", table.parent
        else:
            location, metadata = table.parent.parent, table
            cwd = location.parent
        out = subprocess.run(
            [python, str(script), engine, fmt, str(location), str(metadata)],
            capture_output=True, text=True, timeout=300, cwd=cwd,
        )
        assert out.returncode == 0, f"{engine} failed: {out.stderr}"
        return json.loads(out.stdout)

    return read


# How an engine gives a value in another form than PostgreSQL's, by (engine, format) and
# column: each turns PostgreSQL's value into the form the engine gives, and the comparison
# stays exact. An engine that starts giving PostgreSQL's form fails the test: then the entry
# goes.
def _as_utc_instant(v):
    """ClickHouse has no timestamp without time zone: DateTime64 is an instant, so chDB reads
    a timestamp without time zone as that wall-clock time in UTC (the session's time zone)."""
    return None if v is None else v.replace(tzinfo=datetime.timezone.utc)


def _null_array_as_empty(v):
    """ClickHouse arrays cannot be NULL: chDB reads a NULL array as an empty one."""
    return [] if v is None else v


def _uuid_as_16_bytes(v):
    """Spark has no uuid type: Sail reads an Iceberg uuid as its 16 bytes (binary)."""
    return None if v is None else v.bytes


DIFFERENCES = {
    ("chdb", "delta"): {"stamp": _as_utc_instant, "tags": _null_array_as_empty},
    ("chdb", "iceberg"): {"stamp": _as_utc_instant, "tags": _null_array_as_empty},
    ("sail", "iceberg"): {"uid": _uuid_as_16_bytes},
}

# An engine that refuses a kind of table, by (engine, format, how deletes are written): the
# first line of its error, exactly. Daft refuses a Delta table whose configuration says
# delta.enableDeletionVectors = true (which the merge-on-read mirror's first deletion vector
# sets), before it looks at any file.
REFUSALS = {
    ("daft", "delta", "merge-on-read"): (
        "NotImplementedError: Delta Lake deletion vectors are not yet supported; please let the Daft "
        "team know if you'd like to see this feature!"
    ),
}


def source_rows(url: str, table: str, fmt: str) -> tuple[list[str], list[tuple]]:
    """`table`'s rows as PostgreSQL has them, by column: (column names, rows). A uuid is text
    in Delta (the format has no uuid type; pgarrow writes its text form)."""
    with psycopg.connect(url, autocommit=True) as c:
        cur = c.execute(f"SELECT * FROM {table}")
        columns = [d.name for d in cur.description]
        rows = cur.fetchall()
    if fmt == "delta":
        at = columns.index("uid")
        rows = [(*r[:at], None if r[at] is None else str(r[at]), *r[at + 1:]) for r in rows]
    return columns, rows


def assert_reads_exactly(got: dict, want: tuple[list[str], list[tuple]], engine: str, fmt: str) -> None:
    """The engine's read (`got`) has PostgreSQL's columns, in order, and rows (`want`),
    order-free, each value in the form DIFFERENCES says the engine gives."""
    assert "error" not in got, f"{engine} could not read the {fmt} table: {got['error']}"
    columns, rows = want
    assert got["columns"] == columns, got["types"]
    changed = DIFFERENCES.get((engine, fmt), {})
    as_given = [changed.get(c, lambda v: v) for c in columns]
    expected = sorted(json.dumps([plain(f(v)) for f, v in zip(as_given, r, strict=True)]) for r in rows)
    actual = sorted(json.dumps(r) for r in got["rows"])
    assert actual == expected, f"{engine} read the {fmt} table otherwise ({got['types']})"


@contextlib.contextmanager
def new_catalog(url, conn):
    """A new, empty database on the server of `url` for an Iceberg catalog: its URL, for the
    block; dropped after it."""
    name = f"more_{uuid.uuid4().hex[:12]}"
    conn.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunparse(urlparse(url)._replace(path=f"/{name}"))
    finally:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def local_path(location: str) -> pathlib.Path:
    """A file's path from a location Iceberg metadata holds: a path or a `file:` URI."""
    u = urlparse(location)
    return pathlib.Path(u.path if u.scheme == "file" else location)


@pytest.fixture(scope="module")
def exported(url, conn, tmp_path_factory):
    """The table of COLUMNS and ROWS exported once to a Delta table and to an Iceberg table
    of a catalog database of its own: {format: (table, the source's rows)}."""
    conn.execute("DROP TABLE IF EXISTS more_engines_types")
    conn.execute(f"CREATE TABLE more_engines_types ({COLUMNS}); INSERT INTO more_engines_types VALUES {ROWS}")
    root = tmp_path_factory.mktemp("exported")
    export(url, "-t", "more_engines_types", "--delta", str(root / "delta"))
    with new_catalog(url, conn) as catalog:
        report = json.loads(export(url, "-t", "more_engines_types", "--iceberg", catalog, "--warehouse",
                                   str(root / "warehouse"), "--lake-table", "more.types").stdout)
        yield {
            "delta": (root / "delta", source_rows(url, "more_engines_types", "delta")),
            "iceberg": (local_path(report["metadata_location"]),
                        source_rows(url, "more_engines_types", "iceberg")),
        }


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("engine", ENGINES)
def test_an_export_of_many_types_reads_exactly(engine_read, engine, fmt, exported):
    """Integers of each width and their extremes, numerics of two scales (one past 64 bits),
    a float, booleans, text with a non-ASCII letter and an empty one, dates from year 1,
    timestamps with and without a time zone to the microsecond, uuids, an integer array with
    a NULL element and an empty one, and a row of NULLs: each engine reads them as
    PostgreSQL has them."""
    table, want = exported[fmt]
    assert_reads_exactly(engine_read(engine, fmt, table), want, engine, fmt)


def run_mirror(logical_url, table, fmt, slot, where, deletes):
    """`pgarrow mirror --catch-up` of `table` into its `fmt` lake table (`where`: the Delta
    directory, or (catalog URL, warehouse)), deletes written as `deletes` says (merge-on-read
    is the default, and the flag is left out for it)."""
    lake = ["--delta", str(where)] if fmt == "delta" else ["--iceberg", where[0], "--warehouse", str(where[1])]
    mode = [] if deletes == "merge-on-read" else ["--deletes", deletes]
    out = subprocess.run(
        [pgarrow_bin(), "mirror", "-d", logical_url, "-t", table, "--slot", slot, *lake, "--json",
         "--catch-up", *mode],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr


# Two rounds of changes after the first export: updates (some to NULLs), deletes and inserts,
# the second round touching rows of the file the first one wrote as well as the export's.
CHANGES = [
    """UPDATE {t} SET label = label || '+', amount = amount + 1 WHERE id % 7 = 0;
       UPDATE {t} SET stamp_tz = NULL, tags = NULL, uid = NULL WHERE id % 11 = 0;
       DELETE FROM {t} WHERE id % 5 = 1;
       INSERT INTO {t} SELECT g, g % 100, g * 1000, g / 8.0, g / 3.0, g / 4.0, g % 2 = 0, 'new ' || g,
         DATE '2026-01-01' + g, TIMESTAMP '2026-01-01' + g * INTERVAL '1 second',
         TIMESTAMPTZ '2026-01-01 00:00+00' + g * INTERVAL '1 minute', md5(g::text)::uuid, ARRAY[g]
         FROM generate_series(1001, 1040) g""",
    """UPDATE {t} SET label = 'again', flag = NULL WHERE id % 3 = 0;
       DELETE FROM {t} WHERE id BETWEEN 1010 AND 1019 OR id % 13 = 2""",
]


@pytest.fixture(scope="module")
def mirrored(url, conn, logical_url, tmp_path_factory):
    """`mirrored(fmt, deletes) -> (table, the source's rows)`: a source table of 201 rows
    mirrored into a lake table of `fmt` with `--deletes deletes`, then CHANGES, each round
    caught up by the mirror. Made on first use, once per module; slots, publications and
    catalog databases dropped at the end."""
    made, slots, catalogs = {}, [], contextlib.ExitStack()
    root = tmp_path_factory.mktemp("mirrored")

    def make(fmt: str, deletes: str):
        if (fmt, deletes) in made:
            return made[fmt, deletes]
        table = f"more_engines_{fmt}_{deletes.replace('-', '_')}"
        slot = f"more_{uuid.uuid4().hex[:10]}"
        slots.append(slot)
        if fmt == "delta":
            where = root / table
            lake_table = where
        else:
            where = (catalogs.enter_context(new_catalog(url, conn)), root / f"{table}_warehouse")
        with psycopg.connect(logical_url, autocommit=True) as c:
            c.execute(f"DROP TABLE IF EXISTS {table}")
            c.execute(f"CREATE TABLE {table} ({COLUMNS})")
            c.execute(f"INSERT INTO {table} VALUES {ROWS}")
            c.execute(
                f"INSERT INTO {table} SELECT g, g % 100, g * 1000, g / 8.0, g / 3.0, g / 4.0, g % 2 = 0, 'row ' || g, "
                "DATE '2024-01-01' + g, TIMESTAMP '2024-01-01 00:00:00.5' + g * INTERVAL '1 hour', "
                "TIMESTAMPTZ '2024-01-01 00:00+02' + g * INTERVAL '1 day', md5(g::text)::uuid, ARRAY[g, NULL] "
                "FROM generate_series(4, 201) g"
            )
        run_mirror(logical_url, table, fmt, slot, where, deletes)
        for change in CHANGES:
            with psycopg.connect(logical_url, autocommit=True) as c:
                c.execute(change.format(t=table))
            run_mirror(logical_url, table, fmt, slot, where, deletes)
        if fmt == "iceberg":
            with psycopg.connect(where[0], autocommit=True) as c:
                lake_table = local_path(c.execute(
                    "SELECT metadata_location FROM iceberg_tables WHERE table_name = %s", (table,)).fetchone()[0])
        made[fmt, deletes] = (lake_table, source_rows(logical_url, table, fmt))
        return made[fmt, deletes]

    with catalogs:
        yield make
        with psycopg.connect(logical_url, autocommit=True) as c:
            for slot in slots:
                c.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                          "WHERE slot_name = %s AND NOT active", (slot,))
                c.execute(f"DROP PUBLICATION IF EXISTS {slot}")


def delta_actions(table: pathlib.Path) -> list[dict]:
    """Every action of the Delta table's log, in order."""
    return [json.loads(line) for f in sorted((table / "_delta_log").glob("*.json"))
            for line in f.read_text().splitlines()]


def iceberg_summary(metadata: pathlib.Path) -> dict:
    """The summary of the current snapshot of the Iceberg metadata file."""
    m = json.loads(metadata.read_text())
    return next(s["summary"] for s in m["snapshots"] if s["snapshot-id"] == m["current-snapshot-id"])


def assert_deletes_written_as(fmt: str, table: pathlib.Path, deletes: str) -> None:
    """The lake table took rows out as `deletes` says: merge-on-read leaves deletion vectors
    (Delta) or position delete files (Iceberg) that readers apply; copy-on-write leaves
    neither, its commits having removed the files that lost rows."""
    if fmt == "delta":
        actions = delta_actions(table)
        with_dvs = [a["add"]["path"] for a in actions if a.get("add", {}).get("deletionVector")]
        removed = [a for a in actions if "remove" in a]
        if deletes == "merge-on-read":
            assert with_dvs, "no deletion vector: the mirror deleted nothing"
        else:
            assert not with_dvs and removed, (with_dvs, len(removed))
    else:
        summary = iceberg_summary(table)
        if deletes == "merge-on-read":
            assert int(summary["total-position-deletes"]) > 0, summary
        else:
            assert int(summary.get("total-delete-files", 0)) == 0, summary
            assert int(summary.get("total-position-deletes", 0)) == 0, summary


@pytest.mark.parametrize("deletes", ["merge-on-read", "copy-on-write"])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("engine", ENGINES)
def test_a_mirror_with_updates_and_deletes_reads_exactly(engine_read, engine, fmt, deletes, mirrored):
    """After two rounds of updates, deletes and inserts, each engine reads the mirror's lake
    table as the source has it, deletes applied: written as deletion vectors or position
    delete files (merge-on-read, the default), or as files written again without the rows
    (copy-on-write). An engine that refuses the merge-on-read table (REFUSALS) says exactly
    why, and reads the copy-on-write one."""
    table, want = mirrored(fmt, deletes)
    assert_deletes_written_as(fmt, table, deletes)
    got = engine_read(engine, fmt, table)
    refusal = REFUSALS.get((engine, fmt, deletes))
    if refusal is not None:
        assert got.get("error", "").split("\n")[0] == refusal, got.get("error") or "it read the table"
        return
    assert_reads_exactly(got, want, engine, fmt)
