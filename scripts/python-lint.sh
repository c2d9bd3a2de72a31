#!/usr/bin/env bash
# The Python package's lint (crates/pgarrow-python/python/pgarrow, with its stubs): ruff's
# lints, ruff's format and mypy, as crates/pgarrow-python/pyproject.toml configures them; any
# finding fails. Needs no build (the native module is typed by its stub, _pgarrow.pyi). Run by
# .ci/run and `just lint`.
#
# The pinned .ci/python-lint-requirements.txt go into a venv in the home directory
# (~/.cache/pgarrow/python-lint-venv), which survives between runs as the build directory
# does, made anew when the pins change; checking then takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$HOME/.cache/pgarrow/python-lint-venv"
pins=.ci/python-lint-requirements.txt
sum=$(sha256sum "$pins" | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$sum" ]; then
    echo "scripts/python-lint.sh: installing $pins into $venv (pip)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python3" -m pip install -q --disable-pip-version-check -r "$pins"
    echo "$sum" > "$venv/.requirements.sha256"
fi
cd crates/pgarrow-python
"$venv/bin/ruff" check --no-cache python/pgarrow
"$venv/bin/ruff" format --check --no-cache python/pgarrow
# No cache: a run leaves nothing in the tree.
"$venv/bin/mypy" --no-incremental --cache-dir=/dev/null
