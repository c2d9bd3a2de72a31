"""Fixtures: the database (PGARROW_TEST_URL, set by tests/pytest.rs from a testkit cluster)
and a psycopg connection to it, the reference reader the values are compared with; and the
object-store emulators (emulators.py), each started once per session on first use: `s3`,
`s3_auth` (moto enforcing IAM), `azure` (Azurite) and `gcs` (fake-gcs-server)."""

import os
import signal
import warnings

import psycopg
import pytest

from emulators import AzureEmulator, GcsEmulator, Missing, S3Emulator


@pytest.fixture(scope="session")
def url() -> str:
    url = os.environ.get("PGARROW_TEST_URL")
    if not url:
        pytest.fail("PGARROW_TEST_URL is not set: run the suite through `cargo test -p pgarrow-python`")
    return url


@pytest.fixture(scope="session")
def conn(url):
    with psycopg.connect(url, autocommit=True) as c:
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


def _emulator(make):
    """Starts an emulator for the session and stops it at the end. A missing one fails the
    tests that need it, unless PGARROW_ALLOW_SKIP=1 (then they skip, loudly)."""
    emulator = make()
    try:
        emulator.start()
    except Missing as e:
        if os.environ.get("PGARROW_ALLOW_SKIP") == "1":
            # A warning, so that the run's summary names what was skipped.
            warnings.warn(f"SKIPPED: {e}", stacklevel=1)
            pytest.skip(f"SKIPPED (PGARROW_ALLOW_SKIP=1): {e}")
        pytest.fail(f"{e} (`bash scripts/test-all.sh` installs every part the tests need; PGARROW_ALLOW_SKIP=1 skips these tests instead)", pytrace=False)
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
def gcs():
    """fake-gcs-server (reads through object_store work; its XML upload API does not exist)."""
    yield from _emulator(GcsEmulator)
