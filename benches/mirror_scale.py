#!/usr/bin/env python3
"""What a mirror's run costs as its table grows (`just bench-mirror-scale`): time and peak memory
of `pgarrow mirror --catch-up` runs into a Delta table of N rows, for N in `--sizes`, each run a
whole process under `--memory-limit`.

A scratch cluster with `wal_level = logical` (`serve --logical`) holds, per size, a table of N
rows (a bigint key and five columns; with `--keys`, also a uuid key, a two-column key and no key
under REPLICA IDENTITY FULL at the middle size). Per table, one after another: the first run
(the export, and the key index built and persisted), a run with no change, a run after 0.1% of
the rows were updated (picked by a hash of a column: spread over the index's order, whatever
the key's encoding), a run after 10,000 rows so picked were updated (the commit's time from its
event), and a run
after one transaction updated 25% of the rows. Each run's time, peak RSS (the process's, from
wait4) and what its key index read (from `--json`'s statistics) go to benches/RESULTS.md under
"Mirror scale", with the ratios of the largest size to the smallest. Standard library only.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import Server, write_section  # noqa: E402
from e2e import PGARROW  # noqa: E402


class LogicalServer(Server):
    def __init__(self):
        super().__init__(0, 0)
        self.args.append("--logical")


def measured(argv):
    """Runs `argv` in a child that reports its own child's peak RSS (MiB)."""
    code = (
        "import os, resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "e = time.perf_counter() - t\n"
        "r = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'s': e, 'rss': r, 'rc': p.returncode, 'out': p.stdout, 'err': p.stderr}))\n"
    )
    p = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    r = json.loads(p.stdout)
    if r["rc"] != 0:
        sys.exit(f"{' '.join(argv)} failed: {r['err'].strip()}")
    stats, commits = {}, []
    for line in r["out"].splitlines():
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if v.get("event") == "committed":
            commits.append(v)
        elif v.get("event") == "done":
            stats = v["stats"]
    return r["s"], r["rss"], stats, commits


KEYS = {
    "bigint": ("id bigint PRIMARY KEY", "g::bigint", "id"),
    "uuid": ("id uuid PRIMARY KEY", "md5(g::text)::uuid", "id"),
    "pair": ("k1 int, k2 int, PRIMARY KEY (k1, k2)", "g / 1000, g % 1000", "k1"),
    # No key: rows told apart by all their values (the index holds their digests).
    "full": ("id bigint", "g::bigint", "id"),
}


def make_table(server, name, rows, key):
    cols, values, _ = KEYS[key]
    server.psql(
        f"DROP TABLE IF EXISTS {name}",
        f"CREATE TABLE {name} ({cols}, n bigint NOT NULL, a int, b text, c float8, "
        f"d timestamptz)",
        f"INSERT INTO {name} SELECT {values}, g, g % 1000, 'row ' || g, g * 0.5, "
        f"'2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, {rows}) g",
        f"CREATE INDEX ON {name} (n)",
        *([f"ALTER TABLE {name} REPLICA IDENTITY FULL"] if key == "full" else []),
        f"VACUUM ANALYZE {name}",
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 8_000_000, 32_000_000])
    p.add_argument("--keys", nargs="*", default=["uuid", "pair", "full"],
                   help="other key types, at the middle size")
    p.add_argument("--memory-limit", default="256MiB")
    p.add_argument("--pgarrow", default=PGARROW)
    a = p.parse_args()
    if not os.path.exists(a.pgarrow):
        sys.exit(f"{a.pgarrow} is missing: cargo build --release -p pgarrow-cli")
    sizes = sorted(a.sizes)
    cases = [(n, "bigint") for n in sizes]
    middle = sizes[len(sizes) // 2]
    cases += [(middle, k) for k in a.keys]
    rows_out = []
    with LogicalServer() as server, tempfile.TemporaryDirectory() as out:
        for n, key in cases:
            name = f"scale_{key}_{n}"
            print(f"== {name}: making the table", flush=True)
            make_table(server, name, n, key)
            path = os.path.join(out, name)
            base = [a.pgarrow, "mirror", "--url", server.url, "-t", name, "--delta", path,
                    "--slot", name, "--catch-up", "--json", "--memory-limit", a.memory_limit,
                    "--commit-changes", "100000000", "--commit-interval", "3600"]
            runs = {}

            def step(label, *sql):
                if sql:
                    server.psql(*sql)
                s, rss, stats, commits = measured(base)
                idx = stats.get("index", {})
                runs[label] = {
                    "s": s, "rss": rss,
                    "read": idx.get("read_bytes", 0) + idx.get("files_read_bytes", 0),
                    "disk": idx.get("disk_bytes", 0),
                    "commit_s": sum(c.get("commit_s", 0) for c in commits),
                    # The commits' phases: fold (lookups included), files, log, index.
                    "phases": {k: sum(c.get(k, 0) for c in commits)
                               for k in ("fold_s", "write_s", "publish_s", "index_s")},
                }
                phases = " ".join(f"{k} {v:.3f}" for k, v in runs[label]["phases"].items())
                print(f"   {label}: {s:.2f} s, {rss:.0f} MiB, index read "
                      f"{runs[label]['read'] / 2**20:.1f} MiB, index on disk "
                      f"{runs[label]['disk'] / 2**20:.1f} MiB; commits {phases}", flush=True)

            step("first run")
            step("no change")
            # Rows picked by a hash: `n % k` would pick keys that share their low bytes, which
            # sit together in the index's order of little-endian integers.
            # Each a different remainder: no row of one step is one of another's.
            picked = "abs(hashint8(n)) % {} = {}"
            step("0.1% changed", f"UPDATE {name} SET a = a + 1 WHERE {picked.format(1000, 0)}")
            step("10,000 changed",
                 f"UPDATE {name} SET a = a + 1 WHERE {picked.format(n // 10_000, 1)}")
            step("25% in one transaction",
                 f"UPDATE {name} SET a = a + 1 WHERE {picked.format(4, 2)}")
            server.psql(f"SELECT pg_drop_replication_slot('{name}')", f"DROP TABLE {name}")
            rows_out.append((n, key, runs))
    lines = [
        f"`pgarrow mirror --catch-up --memory-limit {a.memory_limit}` into a Delta table, each "
        "run a whole process (time, peak RSS, bytes its key index read: runs and data files "
        "read for keys).",
        "",
        "| rows | key | run | time | peak RSS | index read | index on disk |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, key, runs in rows_out:
        for label, r in runs.items():
            lines.append(
                f"| {n:,} | {key} | {label} | {r['s']:.2f} s | {r['rss']:.0f} MiB | "
                f"{r['read'] / 2**20:.1f} MiB | {r['disk'] / 2**20:.1f} MiB |"
            )
    big = [r for r in rows_out if r[1] == "bigint"]
    if len(big) >= 2:
        (n0, _, small), (n1, _, large) = big[0], big[-1]
        lines += ["", f"Ratios, {n1:,} rows to {n0:,} (one run):", ""]
        for label in small:
            lines.append(
                f"- {label}: time {large[label]['s'] / small[label]['s']:.2f}x, peak RSS "
                f"{large[label]['rss'] / small[label]['rss']:.2f}x"
            )
        c0, c1 = small["10,000 changed"]["commit_s"], large["10,000 changed"]["commit_s"]
        if c0 > 0:
            lines.append(f"- the commit of 10,000 changed rows: {c1 / c0:.2f}x")
            p0, p1 = small["10,000 changed"]["phases"], large["10,000 changed"]["phases"]
            lines.append("  (" + ", ".join(f"{k} {p0[k]:.3f} s → {p1[k]:.3f} s" for k in p0) + ")")
    text = "\n".join(lines)
    print(text)
    write_section("mirror-scale", "## Mirror scale\n\n" + text)


if __name__ == "__main__":
    main()
