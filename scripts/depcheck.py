#!/usr/bin/env python3
"""The workspace's guard rails, from `cargo metadata`: no crate depends on one above it, and
every crate inherits the workspace's lints. Run by CI (`.ci/run`) and `just lint`; tested by
crates/pgarrow-testkit/tests/depcheck.rs. Python's standard library only, so that it needs no
build and nothing installed (apache/datafusion's `dev/depcheck` is the model, as a Rust binary).

    python3 scripts/depcheck.py                     # the workspace this script is in
    python3 scripts/depcheck.py --metadata m.json   # the output of `cargo metadata --no-deps`

It prints one line per violation (which crate, which dependency, which rule) and exits 1 when
there is one; else one line saying what it checked, and exits 0.

The layers are the rooms of the design (DESIGN.md, "Workspace"), lowest first. A crate may
depend on crates of lower layers. Within a layer crates are independent, except that tests may
use a sibling (a dev-dependency: the decoder's tests read CopyData with the protocol's framing).
Dev-dependencies count like the others otherwise: a crate whose tests need the engine makes the
engine a part of testing it (and builds itself twice in one test binary); such a test belongs
to the crate above.

Test tooling (the scratch clusters, the test kit) sits beside the layers: it depends on no
library crate, so that every crate can test with it without a cycle, and library crates take
it as a dev-dependency only; the doors may run a scratch cluster (`pgarrow demo`).
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

# Lowest first: (layer, its crates). Crates the design plans and the workspace does not have
# yet are placed already.
LAYERS = [
    ("types", ["pgarrow-types"]),
    (
        "parts",
        ["pgarrow-protocol", "pgarrow-decode", "pgarrow-encode", "pgarrow-io"],
    ),
    ("engine", ["pgarrow"]),
    ("over the engine", ["pgarrow-changes", "pgarrow-lake"]),
    ("doors", ["pgarrow-cli", "pgarrow-python", "pgarrow-adbc"]),
]

# Test tooling, beside the layers, lowest first: a tool may depend on the ones before it.
TOOLING = ["pgarrow-scratch", "pgarrow-testkit"]

# Tooling that the doors may depend on (not only their tests).
DOOR_TOOLING = {"pgarrow-scratch": "the CLI's `pgarrow demo` runs a scratch cluster"}

# Dependencies between siblings of one layer that the design allows.
SIBLINGS = {
    ("pgarrow-python", "pgarrow-adbc"): "the Python package embeds the ADBC driver",
    ("pgarrow-lake", "pgarrow-changes"): "a lake table's mirror follows the change stream",
}

# Upward dependencies that exist today and are to go: (crate, dependency, kind) -> why it is
# still there. Each is printed on every run; one that no longer exists is reported, to delete.
KNOWN: dict = {}


# What a crate must not depend on outside the workspace (normal and build dependencies): the
# "must not depend on" column of the design's rooms. (crate, predicate on the name, rule).
def is_arrow(dep):
    return dep.startswith("arrow") or dep == "parquet"


def is_socket(dep):
    return dep in ("tokio", "socket2", "mio", "tokio-rustls")


def is_postgres(dep):
    return dep.startswith("postgres") or dep.startswith("tokio-postgres")


def anything_but_serde(dep):
    return dep != "serde"


FORBIDDEN = [
    ("pgarrow-types", anything_but_serde, "the type model depends on nothing but serde"),
    ("pgarrow-protocol", is_arrow, "the protocol knows no Arrow"),
    ("pgarrow-decode", is_socket, "the decoder knows no sockets"),
    ("pgarrow-encode", is_socket, "the encoder knows no sockets"),
    ("pgarrow-io", is_postgres, "the files know no PostgreSQL"),
]

# Crates outside the workspace (a workspace of their own) that keep a copy of the workspace's
# `[workspace.lints]`, which must stay equal to it.
LINT_COPIES = ["fuzz/Cargo.toml"]

KIND = {"normal": "dependency", "dev": "dev-dependency", "build": "build-dependency"}


def metadata(args):
    if args.metadata:
        with open(args.metadata, encoding="utf-8") as f:
            return json.load(f)
    manifest = Path(__file__).resolve().parent.parent / "Cargo.toml"
    cargo = os.environ.get("CARGO", "cargo")
    out = subprocess.run(
        [cargo, "metadata", "--no-deps", "--format-version=1", f"--manifest-path={manifest}"],
        check=True,
        stdout=subprocess.PIPE,
    )
    return json.loads(out.stdout)


def layering(meta, problems, notes):
    """Every dependency between workspace crates against the layer rules."""
    layer_of = {c: (i, name) for i, (name, crates) in enumerate(LAYERS) for c in crates}
    tool_rank = {c: i for i, c in enumerate(TOOLING)}
    members = set(meta["workspace_members"])
    packages = [p for p in meta["packages"] if p["id"] in members]
    names = {p["name"] for p in packages}
    for p in sorted(names):
        if p not in layer_of and p not in tool_rank:
            problems.append(
                f"{p}: in no layer: place it in LAYERS or TOOLING of scripts/depcheck.py"
            )

    edges = set()
    for p in packages:
        for d in p["dependencies"]:
            kind = d.get("kind") or "normal"
            if d["name"] in names and d["name"] != p["name"]:
                edges.add((p["name"], d["name"], kind))
            elif d["name"] not in names and kind != "dev":
                for crate, forbidden, rule in FORBIDDEN:
                    if crate == p["name"] and forbidden(d["name"]):
                        problems.append(f"{p['name']} -> {d['name']} ({KIND[kind]}): {rule}")

    used = set()
    for a, b, kind in sorted(edges):
        what = f"{a} -> {b} ({KIND[kind]})"
        if (a, b, kind) in KNOWN:
            used.add((a, b, kind))
            notes.append(f"{what}: allowed for now: {KNOWN[(a, b, kind)]}")
            continue
        if not all(c in layer_of or c in tool_rank for c in (a, b)):
            continue  # reported above
        if b in tool_rank:
            if a in tool_rank:
                if tool_rank[b] > tool_rank[a] and kind != "dev":
                    problems.append(
                        f"{what}: {a} comes before {b} in TOOLING: "
                        "a tool depends only on those before it"
                    )
            elif kind != "dev" and not (layer_of[a][1] == "doors" and b in DOOR_TOOLING):
                problems.append(
                    f"{what}: {b} is test tooling: "
                    "a library crate takes it as a dev-dependency only"
                )
            continue
        if a in tool_rank:
            if kind != "dev":
                problems.append(
                    f"{what}: test tooling depends on no library crate (layer "
                    f'"{layer_of[b][1]}"), so that every crate can test with it without a cycle'
                )
            continue
        (ra, la), (rb, lb) = layer_of[a], layer_of[b]
        if rb > ra:
            problems.append(
                f'{what}: {a} is in layer "{la}", {b} in layer "{lb}" above it: '
                "no crate depends on one above it"
            )
        elif rb == ra and kind != "dev" and (a, b) not in SIBLINGS:
            problems.append(
                f'{what}: both are in layer "{la}", whose crates are independent '
                "(only tests may use a sibling, as a dev-dependency)"
            )
    for a, b, kind in sorted(set(KNOWN) - used):
        notes.append(
            f"{a} -> {b} ({KIND[kind]}) is gone: delete it from KNOWN in scripts/depcheck.py"
        )
    return len(edges)


def inherits_lints(text):
    """Whether a manifest has `[lints] workspace = true` (or `lints.workspace = true`)."""
    if re.search(r"^\s*lints\s*\.\s*workspace\s*=\s*true\b", text, re.M):
        return True
    if re.search(r"^\s*lints\s*=\s*\{\s*workspace\s*=\s*true\s*\}", text, re.M):
        return True
    table = re.search(r"^\s*\[lints\]\s*$(.*?)(?=^\s*\[|\Z)", text, re.M | re.S)
    return bool(table and re.search(r"^\s*workspace\s*=\s*true\b", table.group(1), re.M))


def workspace_lints(text):
    """The `[workspace.lints.*]` tables of a manifest: {table: [its lines]}, comments and blank
    lines left out."""
    tables, current = {}, None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("["):
            current = line if line.startswith("[workspace.lints") else None
            if current:
                tables[current] = []
        elif current and line:
            tables[current].append(re.sub(r"\s+", " ", line))
    return tables


def lints(meta, problems):
    """Every member inherits the workspace's lints; the copies outside it are equal to them."""
    members = set(meta["workspace_members"])
    root = Path(meta["workspace_root"])
    packages = sorted((p for p in meta["packages"] if p["id"] in members), key=lambda p: p["name"])
    for p in packages:
        manifest = Path(p["manifest_path"])
        if not inherits_lints(manifest.read_text(encoding="utf-8")):
            shown = manifest.relative_to(root) if manifest.is_relative_to(root) else manifest
            problems.append(
                f"{p['name']}: does not inherit the workspace's lints: add `[lints]` with "
                f"`workspace = true` to {shown}"
            )
    ours = workspace_lints((root / "Cargo.toml").read_text(encoding="utf-8"))
    for copy in LINT_COPIES:
        path = root / copy
        if not path.is_file():
            problems.append(f"{copy}: missing (listed in LINT_COPIES of scripts/depcheck.py)")
            continue
        text = path.read_text(encoding="utf-8")
        if workspace_lints(text) != ours:
            problems.append(
                f"{copy}: its [workspace.lints] tables differ from the workspace's Cargo.toml: "
                "it is a workspace of its own and keeps a copy, which must be equal"
            )
        if not inherits_lints(text):
            problems.append(
                f"{copy}: does not inherit its [workspace.lints]: "
                "add `[lints]` with `workspace = true`"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--metadata", help="a file with `cargo metadata --no-deps --format-version 1`'s output"
    )
    args = parser.parse_args()
    meta = metadata(args)
    problems, notes = [], []
    edges = layering(meta, problems, notes)
    lints(meta, problems)
    for note in notes:
        print(f"depcheck: note: {note}")
    for problem in problems:
        print(f"depcheck: FAIL {problem}")
    if problems:
        print(
            f"depcheck: {len(problems)} violation(s) of the layering and lint rules "
            "in scripts/depcheck.py"
        )
        return 1
    crates = len(set(meta["workspace_members"]))
    print(
        f"depcheck: {crates} crates, {edges} dependencies between them: no crate depends on one "
        "above it, and every crate inherits the workspace's lints"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
