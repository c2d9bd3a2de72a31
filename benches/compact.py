#!/usr/bin/env python3
"""Compaction of a mirrored Delta table (`just bench-compact`): `pgarrow lake compact` against
deltalake's `optimize.compact()` on copies of the same table.

A scratch cluster with `wal_level = logical` holds lineitem (`--rows`, default 1M) with its
primary key. `pgarrow mirror` exports it into a Delta table, then `--rounds` times updates a
slice of its rows (`--changed`, default 2%) and catches the mirror up: the table gathers a
small file and a deletion vector on the export's file per round. Each rep copies that table
twice and times, interleaved, `pgarrow lake compact` on one copy and deltalake's
`DeltaTable.optimize.compact()` (in benches/venv) on the other; both results are read back by
deltalake and must hold the same rows. Records the medians and the ratio in
benches/RESULTS.md under "Compaction". Standard library only (deltalake runs in the venv).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import PGARROW, ROOT, VENV_PY, sh, write_section  # noqa: E402
from mirror import LogicalServer  # noqa: E402

DELTALAKE = """
import json, sys, time, deltalake, pyarrow as pa
t = deltalake.DeltaTable(sys.argv[1])
if sys.argv[2] == "compact":
    start = time.perf_counter()
    m = t.optimize.compact()
    print(json.dumps({"s": time.perf_counter() - start, "metrics": m}))
else:
    rows = pa.table(t.scan())
    files = len(t.file_uris())
    print(json.dumps({"rows": rows.num_rows,
                      "sum": str(sum(rows.column("l_quantity").to_pylist())),
                      "files": files}))
"""


def deltalake(path, what):
    out = subprocess.run([VENV_PY, "-c", DELTALAKE, path, what], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"deltalake {what} of {path} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--changed", type=float, default=0.02, help="fraction updated per round")
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    for path in (PGARROW, VENV_PY):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: just bench-build, and benches/setup.sh for the venv")
    with LogicalServer(a.rows) as server, tempfile.TemporaryDirectory() as out:
        server.psql("ALTER TABLE lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber)")
        table = os.path.join(out, "delta")
        mirror = [PGARROW, "mirror", "--url", server.url, "-t", "lineitem", "--slot", "mc",
                  "--delta", table, "--catch-up", "--quiet"]
        top = int(server.psql("SELECT max(l_orderkey) FROM lineitem"))
        step = max(1, int(top * a.changed))
        for r in range(a.rounds + 1):
            if r > 0:
                lo = (r - 1) * step % top
                server.psql("UPDATE lineitem SET l_quantity = l_quantity + 1 "
                            f"WHERE l_orderkey >= {lo} AND l_orderkey < {lo + step}")
            done = subprocess.run(mirror, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"the mirror failed: {done.stderr.strip()}")
        before = deltalake(table, "read")
        times = {"pgarrow": [], "deltalake": []}
        files = {}
        for r in range(a.reps):
            copies = {}
            for name in times:
                copies[name] = os.path.join(out, f"{name}{r}")
                shutil.copytree(table, copies[name])
            order = list(times) if r % 2 == 0 else list(reversed(times))
            for name in order:
                if name == "pgarrow":
                    start = time.perf_counter()
                    done = subprocess.run([PGARROW, "lake", "compact", "--delta", copies[name],
                                           "--json", "--quiet"], capture_output=True, text=True)
                    times[name].append(time.perf_counter() - start)
                    if done.returncode != 0:
                        sys.exit(f"pgarrow lake compact failed: {done.stderr.strip()}")
                else:
                    times[name].append(deltalake(copies[name], "compact")["s"])
                after = deltalake(copies[name], "read")
                if (after["rows"], after["sum"]) != (before["rows"], before["sum"]):
                    sys.exit(f"{name}'s compaction changed the rows: {before} -> {after}")
                files[name] = after["files"]
                shutil.rmtree(copies[name])
            print(f"[{r + 1}/{a.reps}] " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                  flush=True)
    pg, dl = statistics.median(times["pgarrow"]), statistics.median(times["deltalake"])
    text = "\n".join([
        f"- Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit "
        f"{sh(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'])}, "
        f"`python3 benches/compact.py --rows {a.rows} --rounds {a.rounds} --changed {a.changed} "
        f"--reps {a.reps}`",
        f"- A Delta table `pgarrow mirror` keeps of lineitem ({a.rows:,} rows): the export's "
        f"file and {a.rounds} rounds each updating {a.changed:.0%} of the rows (a small file and "
        f"a deletion vector each); {before['files']} files before. Each rep compacts a copy "
        "with each tool, interleaved; both read back by deltalake hold the same rows.",
        "",
        "| tool | median (s) | files after | vs pgarrow |",
        "|---|---|---|---|",
        f"| pgarrow lake compact | {pg:.2f} | {files['pgarrow']} | 1.00 |",
        f"| deltalake optimize.compact() | {dl:.2f} | {files['deltalake']} | {dl / pg:.2f} |",
    ])
    print(text)
    write_section("compact", "## Compaction\n\n" + text)


if __name__ == "__main__":
    main()
