#!/usr/bin/env bash
# Installs the peers of the end-to-end benchmarks (`just bench-setup`; `just bench` and
# `just bench-load` run it):
# - benches/venv: a Python virtual environment with the packages of benches/requirements.txt;
# - benches/tools/bin/pg2parquet: `cargo install pg2parquet` (a long compile, done once).
# Idempotent. A peer that cannot be installed is reported here and skipped; benches/e2e.py then
# shows it as "not installed" in the results table.
set -uo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
if [ ! -x venv/bin/python ]; then
    echo "== creating benches/venv with $($python --version 2>&1)"
    if ! "$python" -m venv venv; then
        rm -rf venv
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "== python3 -m venv failed: installing python3-venv"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            "$python" -m venv venv || rm -rf venv
        fi
    fi
fi
if [ -x venv/bin/python ]; then
    venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    grep -v '^\s*\(#\|$\)' requirements.txt | while read -r req; do
        if ! venv/bin/python -m pip install -q "$req"; then
            echo "setup: could not install $req (the benchmark reports it as not installed)"
        fi
    done
    # pgarrow's own Python package, built from this checkout (rebuilt when the sources changed).
    echo "== pip install ../crates/pgarrow-python into benches/venv"
    if ! venv/bin/python -m pip install -q ../crates/pgarrow-python; then
        echo "setup: could not build the pgarrow Python package (the benchmark reports it as not installed)"
    fi
else
    echo "setup: no Python virtual environment (python3 -m venv failed): the Python peers are skipped"
fi

# Spark's JDBC source needs PostgreSQL's JDBC driver (the engines suite), from the system's
# packages.
if [ ! -f /usr/share/java/postgresql.jar ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== apt-get install libpostgresql-jdbc-java (Spark's JDBC source)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpostgresql-jdbc-java >/dev/null \
            || echo "setup: could not install libpostgresql-jdbc-java (the Spark JDBC peer cannot run)"
    else
        echo "setup: /usr/share/java/postgresql.jar is missing: apt-get install libpostgresql-jdbc-java (the Spark JDBC peer cannot run)"
    fi
fi

if [ ! -x tools/bin/pg2parquet ]; then
    echo "== cargo install pg2parquet (a few minutes, once)"
    if ! cargo install pg2parquet --version 0.2.2 --locked --root tools; then
        echo "setup: cargo install pg2parquet failed (the benchmark reports it as not installed)"
    fi
fi
exit 0
