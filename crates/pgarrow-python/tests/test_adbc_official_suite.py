"""The official ADBC PostgreSQL driver's own Python tests, run against pgarrow's ADBC driver.

The tests ship in the adbc-driver-postgresql sdist (the version of .ci/adbc-suite-version), which
`bash scripts/test-all.sh --setup-only` downloads into ~/.cache/pgarrow/adbc-suite. The sdist is
extracted into a temporary directory, pgarrow's driver (the extension module of the installed
package, `pgarrow.adbc.driver_path()`: the release build users load, which exports the same entry
points as `libpgarrow_adbc.so`; the suite ingests 3.3 GB, minutes in a debug build) is copied in as
the library its package loads (`adbc_driver_postgresql/libadbc_driver_postgresql.so`;
the driver manager then finds our `AdbcDriverInit`), and its `tests/` run in a pytest of their
own, with that directory first on PYTHONPATH. The project supplies only a conftest.py: the
`postgres_uri` fixture (a database of its own on the server of `PGARROW_TEST_URL`) and the
`polars` marker. Every test must pass but those of EXPECTED_FAILURES, which check the official
driver's name or its exact wording, and each of those must still fail.

Alone, with the package installed from the working tree (`bash scripts/test-all.sh --setup-only`):
`PYTEST_ADDOPTS="-k official_suite -s" cargo test -p pgarrow-python --test pytest`.
"""

import ast
import importlib.util
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET

import adbc_driver_manager
import pytest

import pgarrow.adbc

# Test id (as pytest names it, relative to the sdist) -> why pgarrow's driver fails it on purpose.
# Each must fail, and on its name or wording check (WORDING_OR_NAME), not on anything else.
EXPECTED_FAILURES = {
    "tests/test_dbapi.py::test_conn_get_info": (
        "checks the driver's name: 'ADBC PostgreSQL Driver' (ours: 'pgarrow ADBC driver')"
    ),
    "tests/test_dbapi.py::test_query_invalid": (
        "checks the official driver's exact wording: 'Failed to prepare query'"
    ),
    "tests/test_lowlevel.py::test_failed_connection": (
        "checks the official driver's exact wording: '.*libpq.*Failed to connect.*' (no libpq here)"
    ),
}
# How a test fails on a name or a wording: pytest.raises(match=...) or the get_info name assert.
WORDING_OR_NAME = ("Regex pattern did not match", "== 'ADBC PostgreSQL Driver'")

ROOT = pathlib.Path(__file__).resolve().parents[3]
VERSION_FILE = ROOT / ".ci" / "adbc-suite-version"
SETUP_HINT = "`bash scripts/test-all.sh --setup-only` downloads it"
# The whole run at most (a hung driver call must not hang `cargo test`); pytest-timeout, when
# installed, also limits each test, and pytest's faulthandler dumps the stacks of a slow one.
RUN_TIMEOUT_S = 1200
TEST_TIMEOUT_S = 300

# The project's only part of the run: the suite ships no conftest.py.
CONFTEST = '''\
"""Supplied by pgarrow (crates/pgarrow-python/tests/test_adbc_official_suite.py)."""

import os
import urllib.parse
import uuid

import psycopg
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "polars: integration tests with polars")


@pytest.fixture(scope="session")
def postgres_uri():
    """A fresh database on the server of PGARROW_TEST_URL, dropped after the suite."""
    base = os.environ["PGARROW_TEST_URL"]
    name = f"adbc_official_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urllib.parse.urlsplit(base)._replace(path="/" + name).geturl()
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
'''


def pinned_version() -> str:
    lines = [line.strip() for line in VERSION_FILE.read_text().splitlines()]
    (version,) = [line for line in lines if line and not line.startswith("#")]
    return version


def sdist_path(version: str) -> pathlib.Path:
    """Where scripts/test-all.sh puts the sdist (its `$cache/adbc-suite`)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(cache, "pgarrow", "adbc-suite", f"adbc_driver_postgresql-{version}.tar.gz")


def parametrize_count(decorator: ast.expr, where: str) -> int:
    """How many cases a `@pytest.mark.parametrize(names, [values...])` decorator makes; 1 for
    any other decorator. Fails on values that are not a literal list or tuple."""
    if not (
        isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr == "parametrize"
    ):
        return 1
    values = decorator.args[1] if len(decorator.args) > 1 else None
    if not isinstance(values, (ast.List, ast.Tuple)):
        pytest.fail(f"cannot count the cases of {where}: its parametrize values are not a literal")
    return len(values.elts)


def suite_tests(tests_dir: pathlib.Path) -> dict[str, int]:
    """{test id without parameters: number of cases} of the suite, read from its source (not
    from pytest's collection, which this checks)."""
    found = {}
    for path in sorted(tests_dir.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                test_id = f"tests/{path.name}::{node.name}"
                found[test_id] = math.prod(parametrize_count(d, test_id) for d in node.decorator_list)
    return found


def junit_results(xml_path: pathlib.Path) -> dict[str, tuple[str, str]]:
    """{test id: (passed|failed|error|skipped, message)} from pytest's junit XML."""
    results = {}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        test_id = f"{module}.py::{case.get('name')}" if module else case.get("name", "")
        status, message = "passed", ""
        for outcome in ("error", "failure", "skipped"):
            element = case.find(outcome)
            if element is not None:
                status = {"failure": "failed"}.get(outcome, outcome)
                message = element.get("message") or (element.text or "").strip()
                break
        results[test_id] = (status, message)
    return results


def test_official_suite(url, tmp_path):
    version = pinned_version()
    assert adbc_driver_manager.__version__ == version, (
        f".ci/adbc-suite-version ({version}) is not the pinned adbc-driver-manager "
        f"({adbc_driver_manager.__version__}): keep them equal"
    )
    sdist = sdist_path(version)
    if not sdist.is_file():
        pytest.fail(f"the official ADBC PostgreSQL driver's tests ({sdist}) are missing: {SETUP_HINT}")
    lib = pgarrow.adbc.driver_path()

    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    suite = tmp_path / f"adbc_driver_postgresql-{version}"
    shutil.copy(lib, suite / "adbc_driver_postgresql" / "libadbc_driver_postgresql.so")
    (suite / "tests" / "conftest.py").write_text(CONFTEST)
    expected = suite_tests(suite / "tests")

    junit = tmp_path / "junit.xml"
    log = tmp_path / "pytest.log"
    args = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    args += ["-o", f"faulthandler_timeout={TEST_TIMEOUT_S}", "tests"]
    if importlib.util.find_spec("pytest_timeout") is not None:
        args.append(f"--timeout={TEST_TIMEOUT_S}")
    # PYTEST_ADDOPTS (say `-k official_suite`, to run this test alone) is for this run, not that one.
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PGARROW_TEST_URL"] = url
    env["PYTHONPATH"] = os.pathsep.join([str(suite), *filter(None, [env.get("PYTHONPATH")])])
    with open(log, "w") as out:
        try:
            run = subprocess.run(args, cwd=suite, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the official suite ran past {RUN_TIMEOUT_S} s; its log ends:\n{log.read_text()[-4000:]}")
    output = log.read_text()
    assert run.returncode in (0, 1) and junit.is_file(), f"pytest exited {run.returncode}:\n{output[-4000:]}"

    results = junit_results(junit)
    # Every test of the suite collected and run: the same tests, and as many cases.
    ran = {test_id.split("[")[0] for test_id in results}
    assert ran == set(expected), (
        f"{output[-4000:]}\n\nnot run: {sorted(set(expected) - ran)}; not in the source: {sorted(ran - set(expected))}"
    )
    assert len(results) == sum(expected.values()), f"{len(results)} cases ran of {sum(expected.values())}"

    # Nothing skipped, every test passed but the expected failures, and those failed on their
    # name or wording check: one report of everything else.
    problems = [f"{t}: in EXPECTED_FAILURES, but no such test" for t in EXPECTED_FAILURES if t not in results]
    for test_id, (status, message) in sorted(results.items()):
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        why = " | ".join(lines[:3])[:400]
        if test_id not in EXPECTED_FAILURES:
            if status != "passed":
                problems.append(f"{test_id}: {status}: {why}")
        elif status != "failed":
            problems.append(f"{test_id}: {status}, but in EXPECTED_FAILURES: drop it from there")
        elif not any(signature in message for signature in WORDING_OR_NAME):
            problems.append(f"{test_id}: an expected failure, but not on its name or wording: {why}")
    report = "\n  ".join(problems)
    # Its log's end (the last failures in full), then the list.
    assert not problems, f"{output[-8000:]}\n\nthe official suite with pgarrow's driver:\n  {report}"

    passed = sum(1 for s, _ in results.values() if s == "passed")
    print(f"official suite: {passed} passed, {len(EXPECTED_FAILURES)} expected failures")
