#!/usr/bin/env python3
"""Changes end to end: `pgarrow changes` against `pg_recvlogical` (`just bench-changes`).

A scratch cluster with `wal_level = logical` (`serve --logical`) holds lineitem (`--rows`,
default 1M) with a primary key and a publication. Each round makes two slots at the same WAL
position (pgoutput for pgarrow, test_decoding for pg_recvlogical), updates every row in one
transaction, and times, interleaved: `pg_recvlogical --start --endpos LSN -f /dev/null` (the
server decoding and sending text, written nowhere: the server's own limit) and
`pgarrow changes --catch-up` writing Parquet. Prints the medians and their ratio and records
them in benches/RESULTS.md under "Changes". Standard library only.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import PGARROW, ROOT, Server, sh, write_section  # noqa: E402
from incremental import timed  # noqa: E402


class LogicalServer(Server):
    def __init__(self, rows):
        super().__init__(rows, 0)
        self.args.append("--logical")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--to", default="parquet", choices=["parquet", "arrow"])
    a = p.parse_args()
    if not os.path.exists(PGARROW):
        sys.exit(f"{PGARROW} is missing: cargo build --release -p pgarrow-cli")
    with LogicalServer(a.rows) as server, tempfile.TemporaryDirectory() as out:
        i = server.info
        recvlogical = os.path.join(os.path.dirname(i["psql"]), "pg_recvlogical")
        server.psql(
            "ALTER TABLE lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber)",
            "CREATE PUBLICATION p FOR TABLE lineitem",
        )
        dsn = f"host={i['host']} port={i['port']} user={i['user']} dbname={i['dbname']}"
        times = {"pg_recvlogical": [], "pgarrow": []}
        for r in range(a.reps):
            server.psql(
                "SELECT pg_create_logical_replication_slot('s_pg', 'test_decoding')",
                "SELECT pg_create_logical_replication_slot('s_us', 'pgoutput')",
                "UPDATE lineitem SET l_quantity = l_quantity + 1",
            )
            end = server.psql("SELECT pg_current_wal_insert_lsn()").strip()
            dest = os.path.join(out, f"round{r}")
            runs = [
                ("pg_recvlogical", [recvlogical, "-d", dsn, "--slot", "s_pg", "--start",
                                    "--no-loop", "--endpos", end, "-f", "/dev/null"]),
                ("pgarrow", [PGARROW, "changes", "--url", server.url, "--slot", "s_us",
                             "--publication", "p", "--catch-up", "--to", a.to, "-o", dest,
                             "--quiet"]),
            ]
            if r % 2:
                runs.reverse()
            for name, argv in runs:
                t, _ = timed(argv)
                times[name].append(t)
            with open(os.path.join(dest, "_changes.json")) as f:
                rows = sum(x["rows"] for x in json.load(f)["files"])
            if rows != a.rows:
                sys.exit(f"pgarrow wrote {rows} changed rows, not {a.rows}")
            print(f"[{r + 1}/{a.reps}] pg_recvlogical {times['pg_recvlogical'][-1]:.2f} s, "
                  f"pgarrow {times['pgarrow'][-1]:.2f} s ({rows:,} rows)", flush=True)
            server.psql(
                "SELECT pg_drop_replication_slot('s_pg')",
                "SELECT pg_drop_replication_slot('s_us')",
            )
    pg = statistics.median(times["pg_recvlogical"])
    us = statistics.median(times["pgarrow"])
    text = "\n".join([
        f"- Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit "
        f"{sh(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'])}, "
        f"`python3 benches/changes.py --rows {a.rows} --reps {a.reps} --to {a.to}`",
        f"- lineitem {a.rows:,} rows (primary key), every row updated in one transaction; "
        "two slots made at the same position before it; medians of the interleaved rounds.",
        "",
        "| tool | median (s) | vs pg_recvlogical |",
        "|---|---|---|",
        f"| pg_recvlogical, test_decoding, to /dev/null | {pg:.2f} | 1.00 |",
        f"| pgarrow changes, pgoutput binary, to {a.to} | {us:.2f} | {us / pg:.2f} |",
    ])
    print(text)
    write_section("changes", "## Changes\n\n" + text)


if __name__ == "__main__":
    main()
