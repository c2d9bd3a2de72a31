"""Fixtures: the database (PGARROW_TEST_URL, set by tests/pytest.rs from a testkit cluster)
and a psycopg connection to it, the reference reader the values are compared with; a
database with pgvector (`pgvector_url`, `pgvector_conn`); the object-store emulators
(emulators.py), each started once per session on first use: `s3`, `s3_auth` (moto enforcing
IAM), `azure` (Azurite) and `gcs` (fake-gcs-server); and DuckDB's spatial extension
(`duckdb_spatial`), a GeoParquet reader."""

import os
import pathlib
import pickle
import signal
import subprocess
import warnings

import psycopg
import pytest

from emulators import AzureEmulator, GcsEmulator, Missing, S3Emulator
from rest_catalogs import SERVERS as REST_SERVERS


@pytest.fixture(scope="session")
def url() -> str:
    url = os.environ.get("PGARROW_TEST_URL")
    if not url:
        pytest.fail("PGARROW_TEST_URL is not set: run the suite through `cargo test -p pgarrow-python`")
    return url


@pytest.fixture(scope="session")
def logical_url() -> str:
    """A database of the cluster with wal_level = logical (tests/pytest.rs starts it)."""
    url = os.environ.get("PGARROW_TEST_LOGICAL_URL")
    if not url:
        pytest.fail("PGARROW_TEST_LOGICAL_URL is not set (tests/pytest.rs sets it)")
    return url


@pytest.fixture(scope="session")
def conn(url):
    with psycopg.connect(url, autocommit=True) as c:
        yield c


@pytest.fixture(scope="session")
def pgvector_url() -> str:
    """A database whose server has pgvector (`vector`, `halfvec`, `sparsevec`):
    PGARROW_PGVECTOR_URL, which tests/pytest.rs sets from `pgarrow_testkit::pgvector_cluster`.
    pgvector is opt-in, as in the Rust tests: without it the tests that use this skip
    (loudly), unless PGARROW_REQUIRE_PGVECTOR=1 makes that a failure."""
    url = os.environ.get("PGARROW_PGVECTOR_URL")
    if not url:
        _missing_opt_in(
            "PGARROW_REQUIRE_PGVECTOR",
            "pgvector",
            "PGARROW_PGVECTOR_URL is not set: tests/pytest.rs sets it when the server of "
            "PGARROW_PGVECTOR_BIN (or the shared cluster's) has pgvector; `bash scripts/test-all.sh` "
            "installs one",
        )
    return url


@pytest.fixture(scope="session")
def pgvector_conn(pgvector_url):
    """A psycopg connection to `pgvector_url`, after `CREATE EXTENSION IF NOT EXISTS vector`."""
    with psycopg.connect(pgvector_url, autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")
        yield c


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler for the test: `_thread.interrupt_main()`, how the Ctrl-C
    tests press Ctrl-C, does nothing unless SIGINT has a Python handler, and a library an
    earlier test loaded in this process may have left its own. A user's Ctrl-C meets the
    default handler; the test does too."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if previous is not None:
        signal.signal(signal.SIGINT, previous)


def backends(conn, marker: str) -> int:
    """Backends running a query that contains `marker` (other than this one)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
        (f"%{marker}%",),
    ).fetchone()
    return row[0]


def _missing(what) -> None:
    """A part the calling fixture needs is missing (`what` says how to get it): fails the tests
    that need it, unless PGARROW_ALLOW_SKIP=1 (then they skip, loudly)."""
    if os.environ.get("PGARROW_ALLOW_SKIP") == "1":
        # A warning, so that the run's summary names what was skipped.
        warnings.warn(f"SKIPPED: {what}", stacklevel=1)
        pytest.skip(f"SKIPPED (PGARROW_ALLOW_SKIP=1): {what}")
    pytest.fail(f"{what} (`bash scripts/test-all.sh` installs every part the tests need; PGARROW_ALLOW_SKIP=1 skips these tests instead)", pytrace=False)


def _missing_opt_in(require_env: str, what: str, how_to_get_it: str) -> None:
    """An opt-in part (pgvector) is missing: skips the tests that need it, loudly, unless
    `require_env`=1 makes that a failure (pgarrow_testkit::missing_opt_in's rule)."""
    missing = f"{what} is missing: {how_to_get_it}"
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{require_env}=1 but {missing}", pytrace=False)
    warnings.warn(f"SKIPPED: {missing}", stacklevel=1)
    pytest.skip(f"SKIPPED: {missing} ({require_env}=1 makes this a failure)")


def _emulator(make):
    """Starts an emulator for the session and stops it at the end. A missing one fails the
    tests that need it, unless PGARROW_ALLOW_SKIP=1 (then they skip, loudly)."""
    emulator = make()
    try:
        emulator.start()
    except Missing as e:
        _missing(e)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def s3():
    """moto's S3 server, no authentication (any keys)."""
    yield from _emulator(S3Emulator)


@pytest.fixture(scope="session")
def s3_auth():
    """A second moto server enforcing IAM, with `bucket`, `admin_options`, `readonly_options`
    and `bad_options`."""
    yield from _emulator(lambda: S3Emulator(auth=True))


@pytest.fixture(scope="session")
def azure():
    """Azurite's blob service with the development account."""
    yield from _emulator(AzureEmulator)


@pytest.fixture(scope="session")
def _rest_servers():
    """The REST catalog servers started so far in the session (each once), stopped at its end."""
    started: dict = {}
    yield started
    for server in started.values():
        server.stop()
        server.cleanup()


def _rest_server(started: dict, name: str):
    if name not in started:
        server = REST_SERVERS[name]()
        try:
            server.start()
        except Missing as e:
            server.cleanup()
            _missing(e)
        started[name] = server
    return started[name]


@pytest.fixture(scope="session", params=sorted(REST_SERVERS))
def rest_catalog(request, _rest_servers):
    """A real Iceberg REST catalog server (rest_catalogs.py), each test once per server:
    SeaweedFS and Rustberg."""
    return _rest_server(_rest_servers, request.param)


@pytest.fixture(scope="session")
def seaweedfs(_rest_servers):
    """The SeaweedFS REST catalog (OAuth2 client credentials), for the tests of tokens."""
    return _rest_server(_rest_servers, "seaweedfs")


@pytest.fixture(scope="session")
def gcs():
    """fake-gcs-server (reads through object_store work; its XML upload API does not exist)."""
    yield from _emulator(GcsEmulator)


# Runs in the interpreter of `duckdb_spatial`: the SQL on stdin, in a new in-memory database
# with the spatial extension loaded from its PyPI package (DuckDB downloads no extension
# here); the rows, as DuckDB's fetchall gives them, pickled on stdout.
_DUCKDB_SPATIAL = """
import pathlib, pickle, sys
import duckdb, duckdb_extension_spatial
ext = pathlib.Path(duckdb_extension_spatial.__file__).parent / "extensions" / f"v{duckdb.__version__}" / "spatial.duckdb_extension"
con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false"})
con.execute(f"LOAD '{ext}'")
rows = con.execute(sys.stdin.read()).fetchall()
pickle.dump(rows, sys.stdout.buffer)
"""


@pytest.fixture(scope="session")
def duckdb_spatial():
    """DuckDB with its spatial extension, a GeoParquet reader: `run(sql) -> list[tuple]` runs
    `sql` (statements separated by `;`, the rows of the last one returned as DuckDB's fetchall
    gives them) in a new in-memory database, e.g.
    `run(f"SELECT ST_AsText(geom) FROM read_parquet('{path}')")`. DuckDB runs in a process of
    its own, in the interpreter of PGARROW_DUCKDB_EXT_PYTHON, else target/duckdb-venv (where
    `bash scripts/test-all.sh` installs duckdb and duckdb-extension-spatial, whose DuckDB is
    not the readers' one). A missing one fails the tests that need it, unless
    PGARROW_ALLOW_SKIP=1 (then they skip, loudly); a failing query raises
    subprocess.CalledProcessError with DuckDB's error in its `stderr`."""
    python = os.environ.get("PGARROW_DUCKDB_EXT_PYTHON") or str(
        pathlib.Path(__file__).resolve().parents[3] / "target" / "duckdb-venv" / "bin" / "python3"
    )

    def run(sql: str) -> list[tuple]:
        out = subprocess.run(
            [python, "-c", _DUCKDB_SPATIAL], input=sql.encode(), capture_output=True, check=True, timeout=300
        )
        return pickle.loads(out.stdout)

    problem = None
    try:
        if (point := run("SELECT ST_AsText(ST_GeomFromText('POINT(1 2)'))")) != [("POINT (1 2)",)]:
            problem = f"it read POINT(1 2) as {point}"
    except OSError as e:
        problem = str(e)
    except subprocess.CalledProcessError as e:
        problem = e.stderr.decode(errors="replace").strip()
    if problem is not None:
        _missing(
            f"DuckDB's spatial extension in {python} ({problem}): pip install duckdb==1.5.5 "
            "duckdb-extension-spatial==1.5.5 into target/duckdb-venv, or name another "
            "interpreter in PGARROW_DUCKDB_EXT_PYTHON"
        )
    return run


_DUCKDB_LAKE = """
import pathlib, pickle, shutil, sys, tempfile
import duckdb, duckdb_extension_ducklake, duckdb_extension_httpfs, duckdb_extension_postgres
version = f"v{duckdb.__version__}"
con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false"})
# The postgres extension loads under the name DuckDB knows it by.
# A copy of 40 MB per call: removed once loaded (the loaded library needs no file).
scanner = pathlib.Path(tempfile.mkdtemp()) / "postgres_scanner.duckdb_extension"
try:
    shutil.copy(pathlib.Path(duckdb_extension_postgres.__file__).parent / "extensions" / version / "postgres.duckdb_extension", scanner)
    con.execute(f"LOAD '{scanner}'")
finally:
    shutil.rmtree(scanner.parent, ignore_errors=True)
con.execute(f"LOAD '{pathlib.Path(duckdb_extension_ducklake.__file__).parent / 'extensions' / version / 'ducklake.duckdb_extension'}'")
con.execute(f"LOAD '{pathlib.Path(duckdb_extension_httpfs.__file__).parent / 'extensions' / version / 'httpfs.duckdb_extension'}'")
con.execute("SET TimeZone = 'UTC'")
catalog, options, before, sql = sys.stdin.read().split("\\n", 3)
if before:
    con.execute(before)
con.execute(f"ATTACH 'ducklake:postgres:{catalog}' AS lake {options}")
import datetime
def plain(v):
    # Time zones as the standard library's UTC (DuckDB's are pytz's, which the reader lacks).
    if isinstance(v, datetime.datetime) and v.tzinfo is not None:
        return v.astimezone(datetime.timezone.utc)
    if isinstance(v, (list, tuple)):
        return type(v)(plain(x) for x in v)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v
rows = [plain(r) for r in con.execute(sql).fetchall()]
pickle.dump(rows, sys.stdout.buffer)
"""


@pytest.fixture(scope="session")
def duckdb_lake():
    """DuckDB with its ducklake and postgres extensions, a DuckLake reader and writer:
    `run(catalog_url, sql, data_path=None, s3=None) -> list[tuple]` attaches the DuckLake
    catalog in the PostgreSQL database `catalog_url` as `lake` (made there with `data_path`
    when given and missing; reading objects from the `s3` emulator when given), then runs `sql` (statements separated by `;`, the rows
    of the last returned). In its own process, in the interpreter of
    PGARROW_DUCKDB_EXT_PYTHON or target/duckdb-venv, as `duckdb_spatial`."""
    from urllib.parse import urlparse

    python = os.environ.get("PGARROW_DUCKDB_EXT_PYTHON") or str(
        pathlib.Path(__file__).resolve().parents[3] / "target" / "duckdb-venv" / "bin" / "python3"
    )

    def run(catalog_url: str, sql: str, data_path=None, s3=None) -> list[tuple]:
        u = urlparse(catalog_url)
        libpq = f"dbname={u.path.lstrip('/')} host={u.hostname} port={u.port} user={u.username}"
        options = f"(DATA_PATH '{data_path}/')" if data_path else ""
        before = ""
        if s3 is not None:
            o = s3.storage_options
            before = (
                f"CREATE SECRET (TYPE s3, KEY_ID '{o['aws_access_key_id']}', SECRET '{o['aws_secret_access_key']}', "
                f"REGION '{o['aws_region']}', ENDPOINT '{urlparse(o['aws_endpoint']).netloc}', URL_STYLE 'path', "
                "USE_SSL false)"
            )
        out = subprocess.run(
            [python, "-c", _DUCKDB_LAKE], input=f"{libpq}\n{options}\n{before}\n{sql}".encode(),
            capture_output=True, timeout=300,
        )
        if out.returncode != 0:
            raise RuntimeError(f"DuckDB failed: {out.stderr.decode(errors='replace').strip()}")
        return pickle.loads(out.stdout)

    try:
        subprocess.run(
            [python, "-c", "import duckdb_extension_ducklake, duckdb_extension_httpfs, duckdb_extension_postgres, pytz"],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as e:
        _missing(
            f"DuckDB's ducklake and postgres extensions in {python} ({e}): pip install "
            "duckdb==1.5.5 duckdb-extension-ducklake==1.5.5 duckdb-extension-httpfs==1.5.5 "
            "duckdb-extension-postgres==1.5.5 pytz "
            "into target/duckdb-venv, or name another interpreter in PGARROW_DUCKDB_EXT_PYTHON"
        )
    return run


# Runs in the interpreter of `duckdb_delta`: the SQL after the first line on stdin, in a new
# in-memory database with the delta (and httpfs) extensions loaded from their PyPI packages;
# the first line, when not empty, runs first (an S3 secret). The rows pickled on stdout.
_DUCKDB_DELTA = """
import datetime, pathlib, pickle, sys
import duckdb, duckdb_extension_delta, duckdb_extension_httpfs
version = f"v{duckdb.__version__}"
con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false"})
con.execute(f"LOAD '{pathlib.Path(duckdb_extension_httpfs.__file__).parent / 'extensions' / version / 'httpfs.duckdb_extension'}'")
con.execute(f"LOAD '{pathlib.Path(duckdb_extension_delta.__file__).parent / 'extensions' / version / 'delta.duckdb_extension'}'")
con.execute("SET TimeZone = 'UTC'")
before, sql = sys.stdin.read().split("\\n", 1)
if before:
    con.execute(before)
def plain(v):
    if isinstance(v, datetime.datetime) and v.tzinfo is not None:
        return v.astimezone(datetime.timezone.utc)
    if isinstance(v, (list, tuple)):
        return type(v)(plain(x) for x in v)
    return v
rows = [plain(r) for r in con.execute(sql).fetchall()]
pickle.dump(rows, sys.stdout.buffer)
"""


def _duckdb_reader(script: str, extensions: list[str]):
    """`run(sql, s3=None) -> list[tuple]`: `script` run with `sql` (statements separated by
    `;`, the rows of the last returned), reading objects from the `s3` emulator when given, in
    its own process, in the interpreter of PGARROW_DUCKDB_EXT_PYTHON or target/duckdb-venv,
    which must have DuckDB 1.5.5's `extensions` (and httpfs) from PyPI."""
    from urllib.parse import urlparse

    python = os.environ.get("PGARROW_DUCKDB_EXT_PYTHON") or str(
        pathlib.Path(__file__).resolve().parents[3] / "target" / "duckdb-venv" / "bin" / "python3"
    )

    def run(sql: str, s3=None) -> list[tuple]:
        before = ""
        if s3 is not None:
            o = s3.storage_options
            before = (
                f"CREATE SECRET (TYPE s3, KEY_ID '{o['aws_access_key_id']}', SECRET '{o['aws_secret_access_key']}', "
                f"REGION '{o['aws_region']}', ENDPOINT '{urlparse(o['aws_endpoint']).netloc}', URL_STYLE 'path', "
                "USE_SSL false)"
            )
        out = subprocess.run(
            [python, "-c", script], input=f"{before}\n{sql}".encode(), capture_output=True, timeout=300
        )
        if out.returncode != 0:
            raise RuntimeError(f"DuckDB failed: {out.stderr.decode(errors='replace').strip()}")
        return pickle.loads(out.stdout)

    modules = [f"duckdb_extension_{e}" for e in [*extensions, "httpfs"]]
    try:
        subprocess.run([python, "-c", f"import {', '.join(modules)}, pytz"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        packages = " ".join(f"duckdb-extension-{e}==1.5.5" for e in [*extensions, "httpfs"])
        _missing(
            f"DuckDB's {' and '.join(extensions)} extensions in {python} ({e}): pip install duckdb==1.5.5 "
            f"{packages} pytz into target/duckdb-venv, or name another interpreter in PGARROW_DUCKDB_EXT_PYTHON"
        )
    return run


@pytest.fixture(scope="session")
def duckdb_delta():
    """DuckDB 1.5.5 with its delta extension, a Delta reader: `run(sql, s3=None) -> list[tuple]`
    (read a table with `delta_scan('path')`), as `_duckdb_reader`."""
    return _duckdb_reader(_DUCKDB_DELTA, ["delta"])


# Runs in the interpreter of `duckdb_iceberg`: as `_DUCKDB_DELTA`, with the avro and iceberg
# extensions (iceberg needs avro loaded first).
_DUCKDB_ICEBERG = _DUCKDB_DELTA.replace(
    "import duckdb, duckdb_extension_delta, duckdb_extension_httpfs",
    "import duckdb, duckdb_extension_avro, duckdb_extension_iceberg, duckdb_extension_httpfs",
).replace(
    "con.execute(f\"LOAD '{pathlib.Path(duckdb_extension_delta.__file__).parent / 'extensions' / version / 'delta.duckdb_extension'}'\")",
    "con.execute(f\"LOAD '{pathlib.Path(duckdb_extension_avro.__file__).parent / 'extensions' / version / 'avro.duckdb_extension'}'\")\n"
    "con.execute(f\"LOAD '{pathlib.Path(duckdb_extension_iceberg.__file__).parent / 'extensions' / version / 'iceberg.duckdb_extension'}'\")",
)


@pytest.fixture(scope="session")
def duckdb_iceberg():
    """DuckDB 1.5.5 with its iceberg extension, an Iceberg reader: `run(sql, s3=None) ->
    list[tuple]` (read a table with `iceberg_scan('<metadata file>')`), as `_duckdb_reader`."""
    assert "iceberg.duckdb_extension" in _DUCKDB_ICEBERG
    return _duckdb_reader(_DUCKDB_ICEBERG, ["avro", "iceberg"])
