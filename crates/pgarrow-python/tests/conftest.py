"""Fixtures: the database (PGARROW_TEST_URL, set by tests/pytest.rs from a testkit cluster)
and a psycopg connection to it, the reference reader the values are compared with."""

import os

import psycopg
import pytest


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


def backends(conn, marker: str) -> int:
    """Backends running a query that contains `marker` (other than this one)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
        (f"%{marker}%",),
    ).fetchone()
    return row[0]
