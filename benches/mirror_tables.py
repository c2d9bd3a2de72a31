#!/usr/bin/env python3
"""Ten tables at one source point (`just bench-mirror-tables`, run by `just bench-mirror` too):
a mirror of several tables written by one transaction stream, each commit round bringing every
table to the same source transaction in one operation of the catalog, against per-table commits.

A scratch cluster with `wal_level = logical` holds `--tables` tables (default 10) of `--rows`
rows each (id bigint primary key, a counter, a text), in schema `ten`. Each round mirrors the
schema into a new DuckLake catalog and a new Iceberg SQL catalog (the first export, not timed)
with this build and, with `--baseline BIN`, with that other build (labelled [baseline]: give it
a build from before rounds were committed together, whose rounds commit table by table); every
slot is made before the load, at the same position. The load: `--transactions` transactions,
each updating `--per` rows of every table (no row twice). Then, interleaved, each mirror
`--catch-up --commit-interval 3600 --commit-changes N` (N: `--round-transactions` transactions'
changes, so that the backlog is committed in many rounds); timed as a whole process, its
rounds counted from its `committed` events (and how many tables each commit made visible).

Then the freshness with this build: a writer runs `--rate` transactions a second, each updating
one row of every table, while `pgarrow mirror` follows with `--commit-interval`; for each
checkpoint, the time from the newest source commit it holds to the commit being visible.
Records the medians and ratios in benches/RESULTS.md under "Mirror: ten tables at one point".
Standard library only.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import ROOT, sh, write_section  # noqa: E402
from e2e import PGARROW as BUILT  # noqa: E402
from incremental import timed  # noqa: E402
from mirror import FORMATS, LogicalServer, follow_fresh, int_lsn, lake_args  # noqa: E402


def make_tables(server, tables, rows):
    server.psql("DROP SCHEMA IF EXISTS ten CASCADE", "CREATE SCHEMA ten", *[
        s for t in range(tables) for s in (
            f"CREATE TABLE ten.t{t} (id bigint PRIMARY KEY, n bigint NOT NULL, pad text)",
            f"INSERT INTO ten.t{t} SELECT i, i * {t + 1}, md5(i::text) FROM generate_series(1, {rows}) i",
        )
    ], "ANALYZE")


def load(server, a, first_row):
    """The transaction stream: each transaction updates `per` rows of every table, from
    `first_row` on (no row twice)."""
    body = []
    for i in range(a.transactions):
        lo = first_row + i * a.per
        body.append("BEGIN;")
        body += [f"UPDATE ten.t{t} SET n = n + 1 WHERE id >= {lo} AND id < {lo + a.per};"
                 for t in range(a.tables)]
        body.append("COMMIT;")
    subprocess.run(server.psql_args() + ["-v", "ON_ERROR_STOP=1"], input="\n".join(body),
                   check=True, capture_output=True, text=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", type=int, default=10)
    p.add_argument("--rows", type=int, default=100_000, help="rows of each table")
    p.add_argument("--transactions", type=int, default=400)
    p.add_argument("--per", type=int, default=10, help="rows of each table a transaction updates")
    p.add_argument("--round-transactions", type=int, default=10,
                   help="transactions of one commit round while catching up")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--formats", nargs="+", default=["ducklake", "iceberg"])
    p.add_argument("--rate", type=int, default=20, help="transactions a second, for the freshness")
    p.add_argument("--seconds", type=int, default=30)
    p.add_argument("--commit-interval", type=float, default=1.0)
    p.add_argument("--pgarrow", metavar="BIN", default=BUILT)
    p.add_argument("--baseline", metavar="BIN",
                   help="another pgarrow build whose mirror commits each table on its own")
    a = p.parse_args()
    if a.transactions * a.per * (a.reps + 1) > a.rows:
        sys.exit("--rows is too small: every round updates rows no round updated before")
    builds = [("", os.path.abspath(a.pgarrow), "")]
    if a.baseline:
        builds.append((" [baseline]", os.path.abspath(a.baseline), "_b"))
    for _, binary, _ in builds:
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: cargo build --release -p pgarrow-cli")
    changes = a.transactions * a.per * a.tables
    round_changes = a.round_transactions * a.per * a.tables
    with LogicalServer(1000) as server, tempfile.TemporaryDirectory() as out:
        make_tables(server, a.tables, a.rows)
        modes = [(f"{f}{label}", f, binary, side) for f in a.formats for label, binary, side in builds]
        times = {m[0]: [] for m in modes}
        rounds = {m[0]: [] for m in modes}
        together = {m[0]: [] for m in modes}
        for r in range(a.reps):
            runs = {}
            for m, f, binary, side in modes:
                slot = f"t{r}{f}{side}"
                argv = [binary, "mirror", "--url", server.url, "--schema", "ten", "--slot", slot,
                        *lake_args(server, out, f, slot, one=False), "--json", "--catch-up"]
                timed(argv)
                # Rounds cut by their changes alone.
                runs[m] = argv + ["--commit-interval", "3600", "--commit-changes", str(round_changes)]
            load(server, a, 1 + r * a.transactions * a.per)
            order = list(runs.items())
            order = order[r % len(order):] + order[:r % len(order)]
            for m, argv in order:
                start = time.perf_counter()
                done = subprocess.run(argv, capture_output=True, text=True)
                times[m].append(time.perf_counter() - start)
                if done.returncode != 0:
                    sys.exit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
                events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
                committed = [e for e in events if e.get("event") == "committed"]
                rounds[m].append(len({e["lsn"] for e in committed}))
                together[m].append(max((e.get("together", 1) for e in committed), default=0))
                stats = events[-1]["stats"]
                if stats.get("inserted") != changes or stats.get("deleted") != changes:
                    sys.exit(f"the {m} mirror wrote {stats.get('inserted')} rows and deleted "
                             f"{stats.get('deleted')}, not {changes} each")
            print(f"[{r + 1}/{a.reps}] " + ", ".join(
                f"{m} {times[m][-1]:.2f} s ({rounds[m][-1]} rounds)" for m in times), flush=True)
            for m, f, binary, side in modes:
                slot = f"t{r}{f}{side}"
                server.psql(f"SELECT pg_drop_replication_slot('{slot}')", f"DROP PUBLICATION {slot}")
        fresh = {f: freshness(server, out, a, f) for f in a.formats if a.seconds > 0}
    rows = []
    for f in a.formats:
        name = FORMATS[f].split(" ")[0]
        base = statistics.median(times[f + " [baseline]"]) if a.baseline else None
        for label, what in [("", "this build"), (" [baseline]", "[baseline]")][:2 if a.baseline else 1]:
            m = f + label
            t = statistics.median(times[m])
            n = statistics.median(rounds[m])
            vs = f"{t / base:.2f}" if base else "-"
            rows.append(f"| pgarrow mirror into {name}, {what} | {t:.2f} | {n:.0f} | {1000 * t / n:.0f} | "
                        f"{max(together[m])} | {vs} |")
    head = "| tool | median (s) | rounds | per round (ms) | tables per commit | vs [baseline] |"
    rule = "|---|---|---|---|---|---|"
    lines = []
    for f, fr in fresh.items():
        fr = sorted(fr)
        p95 = fr[max(int(len(fr) * 0.95) - 1, 0)]
        lines.append(f"- {FORMATS[f].split(' ')[0]}: median {statistics.median(fr):.2f} s, p95 {p95:.2f} s "
                     f"({len(fr)} commits; the bound: {a.commit_interval + 1:.1f} s).")
    text = "\n".join([
        f"- Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit "
        f"{sh(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'])}, "
        f"`python3 benches/mirror_tables.py --tables {a.tables} --rows {a.rows} --transactions "
        f"{a.transactions} --per {a.per} --round-transactions {a.round_transactions} --reps {a.reps} "
        f"--rate {a.rate} --seconds {a.seconds} --commit-interval {a.commit_interval}"
        f"{' --baseline BIN' if a.baseline else ''}`{f'; [baseline]: {a.baseline}' if a.baseline else ''}",
        f"- {a.tables} tables of {a.rows:,} rows; {a.transactions} transactions, each updating {a.per} rows "
        f"of every table ({changes:,} changes), caught up in rounds of {a.round_transactions} transactions; "
        "every slot made at the same position before the load; medians of the interleaved rounds.",
        "",
        head,
        rule,
        *rows,
        *(["",
           f"Freshness at a steady {a.rate} transactions/s, each updating one row of every table, for "
           f"{a.seconds} s, `--commit-interval {a.commit_interval}`: from the source's commit to the "
           "lake commit that holds it.",
           "",
           *lines] if lines else []),
    ])
    print(text)
    write_section("mirror-tables", "## Mirror: ten tables at one point\n\n" + text)


def freshness(server, out, a, fmt):
    """Seconds from each checkpoint's newest source commit to the checkpoint, under a steady
    stream of transactions that each update every table."""
    slot = f"tf{fmt}"
    argv = [BUILT, "mirror", "--url", server.url, "--schema", "ten", "--slot", slot,
            *lake_args(server, out, fmt, f"fresh{slot}", one=False), "--json",
            "--commit-interval", str(a.commit_interval)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    commits = {}
    stop = threading.Event()

    def write():
        conn = subprocess.Popen(server.psql_args() + ["-A", "-t"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        key = 1
        while not stop.is_set():
            started = time.time()
            body = "".join(f"UPDATE ten.t{t} SET n = n + 1 WHERE id = {key};" for t in range(a.tables))
            conn.stdin.write(f"BEGIN;{body}COMMIT; SELECT pg_current_wal_insert_lsn(), "
                             "extract(epoch from clock_timestamp());\n")
            conn.stdin.flush()
            lsn, at = conn.stdout.readline().strip().split("|")
            commits[int_lsn(lsn)] = float(at)
            key = key % a.rows + 1
            time.sleep(max(0.0, 1 / a.rate - (time.time() - started)))
        conn.stdin.close()
        conn.wait()

    exported = []

    def ready(e):
        exported.extend([e] if e["event"] == "exported" else [])
        return len(exported) == a.tables

    fresh = follow_fresh(proc, commits, stop, write, a.seconds, ready)
    server.psql(f"SELECT pg_drop_replication_slot('{slot}')", f"DROP PUBLICATION {slot}")
    if not fresh:
        sys.exit("the mirror made no commit under the load")
    return fresh


if __name__ == "__main__":
    main()
