#!/usr/bin/env python3
"""Incremental runs against a full export (`just bench-incremental`).

lineitem (`--rows`, default 6M) gets a cursor column `updated_at` (timestamptz, indexed); one
first run of `pgarrow export --incremental-by updated_at` exports the table, then each round
updates 1% of the rows (`--changed`) and times, interleaved: the next incremental run (Parquet)
and a full `pgarrow export --table lineitem` (Parquet), both with the release binary against
one scratch cluster. Prints the medians and their ratio, and appends the table to
benches/RESULTS.md under "Incremental runs". Standard library only.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import PGARROW, ROOT, VENV_PY, Server, sh, write_section  # noqa: E402

DLT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dlt_incremental.py")


def timed(argv):
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {out.stderr.strip()}")
    return elapsed, out.stderr.strip()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=6_000_000)
    p.add_argument("--changed", type=float, default=0.01, help="fraction updated per round")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--dlt", nargs="*", default=["connectorx", "pyarrow"],
                   help="dlt backends to run beside (none: --dlt with no value)")
    a = p.parse_args()
    dlt = [b for b in a.dlt if os.path.exists(VENV_PY) and subprocess.run(
        [VENV_PY, "-c", "import dlt, connectorx"], capture_output=True).returncode == 0]
    if a.dlt and not dlt:
        print("dlt is not in benches/venv (pip install 'dlt[parquet,sql_database]' "
              "psycopg2-binary connectorx): running without it", flush=True)
    if not os.path.exists(PGARROW):
        sys.exit(f"{PGARROW} is missing: cargo build --release -p pgarrow-cli")
    every = round(1 / a.changed)
    with Server(a.rows, 0) as server, tempfile.TemporaryDirectory() as out:
        server.psql(
            # A volatile default rewrites the table: every row its own time, as rows written
            # over time have (one shared value would put every row at the first mark).
            "ALTER TABLE lineitem ADD COLUMN updated_at timestamptz NOT NULL "
            "DEFAULT clock_timestamp()",
            "CREATE INDEX ON lineitem (updated_at)",
            "VACUUM ANALYZE lineitem",
        )
        state = os.path.join(out, "state.json")
        incr = [PGARROW, "export", "--url", server.url, "--table", "lineitem",
                "--incremental-by", "updated_at", "--state", state,
                "-o", os.path.join(out, "incr.parquet"), "--quiet"]
        state_scan = os.path.join(out, "state-scan.json")
        scan = [PGARROW, "export", "--url", server.url, "--table", "lineitem",
                "--incremental-by", "updated_at", "--state", state_scan, "--late-rows", "always",
                "-o", os.path.join(out, "scan.parquet"), "--quiet"]
        full = [PGARROW, "export", "--url", server.url, "--table", "lineitem",
                "-o", os.path.join(out, "full.parquet"), "--quiet"]
        peers = {b: [VENV_PY, DLT, server.url, os.path.join(out, f"dlt-{b}"), b] for b in dlt}
        first, _ = timed(incr)
        timed(scan)
        for b, argv in peers.items():
            t, _ = timed(argv)
            print(f"dlt ({b}) first run: {t:.2f} s", flush=True)
        print(f"first run (the whole table): {first:.2f} s", flush=True)
        times = {"incremental": [], "full": [], "scan": []}
        times.update({f"dlt-{b}": [] for b in dlt})
        dlt_rows = {b: [] for b in dlt}
        rows = []
        scans = []
        for r in range(a.reps):
            # 1% of the rows, a different 1% each round.
            server.psql(
                f"UPDATE lineitem SET updated_at = now(), l_comment = 'round {r}' "
                f"WHERE l_orderkey % {every} = {r}",
                "VACUUM ANALYZE lineitem",
            )
            with open(state) as f:
                # Whether this run scans for late rows: the previous run saw a transaction open.
                scans.append(json.load(f)["late_rows_possible"])
            t_incr, _ = timed(incr)
            with open(state) as f:
                rows.append(json.load(f)["rows"])
            t_scan, _ = timed(scan)
            for b, argv in peers.items():
                start = time.perf_counter()
                done = subprocess.run(argv, capture_output=True, text=True)
                times[f"dlt-{b}"].append(time.perf_counter() - start)
                if done.returncode != 0:
                    sys.exit(f"dlt ({b}) failed: {done.stderr.strip()[-2000:]}")
                dlt_rows[b].append(int(done.stdout.strip().splitlines()[-1]))
                print(f"   dlt ({b}): {times[f'dlt-{b}'][-1]:.2f} s, {dlt_rows[b][-1]:,} rows",
                      flush=True)
            t_full, _ = timed(full)
            times["scan"].append(t_scan)
            times["incremental"].append(t_incr)
            times["full"].append(t_full)
            print(f"[{r + 1}/{a.reps}] incremental {t_incr:.3f} s ({rows[-1]:,} rows, late-row "
                  f"scan: {'yes' if scans[-1] else 'no'}), with the scan {t_scan:.3f} s, "
                  f"full {t_full:.2f} s", flush=True)
    inc = statistics.median(times["incremental"])
    sca = statistics.median(times["scan"])
    ful = statistics.median(times["full"])
    table = [
        f"- Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {sh(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'])}, "
        f"`python3 benches/incremental.py --rows {a.rows} --changed {a.changed} --reps {a.reps}`",
        f"- lineitem {a.rows:,} rows with `updated_at timestamptz` (indexed); each round updates "
        f"{a.changed:.0%} of the rows (a different {a.changed:.0%}), then times the next "
        "incremental run and a full export, both to Parquet (zstd), interleaved; medians.",
        "",
        "| run | s (median) | min-max s | rows | x full export |",
        "|---|--:|--:|--:|--:|",
        f"| full `export --table lineitem` | {ful:.2f} | {min(times['full']):.2f}-"
        f"{max(times['full']):.2f} | {a.rows:,} | 1.000 |",
        f"| incremental run (`--incremental-by updated_at`) | {inc:.3f} | "
        f"{min(times['incremental']):.3f}-{max(times['incremental']):.3f} | "
        f"{statistics.median(rows):,.0f} | **{inc / ful:.3f}** |",
        f"| the same with the late-row scan (`--late-rows always`: what a run pays after a "
        f"snapshot taken while a transaction was open) | {sca:.3f} | "
        f"{min(times['scan']):.3f}-{max(times['scan']):.3f} | "
        f"{statistics.median(rows):,.0f} | {sca / ful:.3f} |",
        *[
            f"| dlt `sql_table(incremental=dlt.sources.incremental('updated_at'), "
            f"backend='{b}')` to Parquet files | {statistics.median(times[f'dlt-{b}']):.3f} | "
            f"{min(times[f'dlt-{b}']):.3f}-{max(times[f'dlt-{b}']):.3f} | "
            f"{statistics.median(dlt_rows[b]):,.0f} | "
            f"{statistics.median(times[f'dlt-{b}']) / ful:.3f} "
            f"(pgarrow's run {statistics.median(times[f'dlt-{b}']) / inc:.1f}x faster) |"
            for b in dlt
        ],
        "",
        f"First run (the whole table, recording the state): {first:.2f} s. Each round: "
        + ", ".join(
            f"{t:.3f} s ({t / f:.3f}x, late-row scan {'yes' if s else 'no'})"
            for t, f, s in zip(times["incremental"], times["full"], scans)
        )
        + ". A run scans the table for late rows when a transaction was open as the previous "
        "run took its snapshot.",
    ]
    print("\n".join(table))
    write_section("incremental", "## Incremental runs (`just bench-incremental`)\n\n" + "\n".join(table))


if __name__ == "__main__":
    main()
