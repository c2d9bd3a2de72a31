#!/usr/bin/env python3
"""Applying changes: `pgarrow changes` + `pgarrow apply` against PostgreSQL's own logical
replication (`just bench-apply`).

A scratch cluster with `wal_level = logical` (`serve --logical`) holds lineitem (`--rows`,
default 1M) with a primary key and a publication, and two more databases with a copy of it
(`pgarrow copy --create`): one kept in step by pgarrow, one by a subscription. Each round makes
two pgoutput slots at the same WAL position, updates every row in one transaction, then times,
interleaved:

- pgarrow: `pgarrow changes --catch-up` to Parquet, then `pgarrow apply` of that directory
  into its database (the two times, and their sum);
- PostgreSQL: `CREATE SUBSCRIPTION ... WITH (slot_name = ..., create_slot = false,
  copy_data = false)` in the other database, until its apply worker has committed the
  transaction (`pg_replication_origin_status.remote_lsn` moves; polled every 10 ms).

Both read the same transaction from the same server, so the server's decoding is in both.
After each round both copies are checked against the source (row count and the sum of the
updated column). Prints the medians and ratios and records them in benches/RESULTS.md under
"Applying changes". Standard library only.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from changes import LogicalServer  # noqa: E402
from e2e import PGARROW, ROOT, sh, write_section  # noqa: E402
from incremental import timed  # noqa: E402

CHECK = "SELECT count(*) || ' rows, quantity ' || sum(l_quantity) FROM lineitem"


def subscribe(server, db, dsn):
    """Seconds from CREATE SUBSCRIPTION until its worker committed the round's transaction."""
    start = time.perf_counter()
    server.psql_in(
        db,
        f"CREATE SUBSCRIPTION sub CONNECTION '{dsn}' PUBLICATION p WITH (slot_name = 's_sub', "
        "create_slot = false, copy_data = false)",
    )
    deadline = start + 3600
    while server.psql_in(db, "SELECT count(*) FROM pg_replication_origin_status "
                             "WHERE remote_lsn <> '0/0'") != "1":
        if time.perf_counter() > deadline:
            sys.exit("the subscription applied nothing in an hour")
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    # The slot is the round's: detach it before dropping the subscription (a subscription on
    # the same cluster cannot drop its own slot while the walsender holds it).
    server.psql_in(db, "ALTER SUBSCRIPTION sub DISABLE",
                   "ALTER SUBSCRIPTION sub SET (slot_name = NONE)", "DROP SUBSCRIPTION sub")
    return elapsed


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    if not os.path.exists(PGARROW):
        sys.exit(f"{PGARROW} is missing: cargo build --release -p pgarrow-cli")
    with LogicalServer(a.rows) as server, tempfile.TemporaryDirectory() as out:
        i = server.info
        dsn = f"host={i['host']} port={i['port']} user={i['user']} dbname={i['dbname']}"
        server.psql(
            "ALTER TABLE lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber)",
            "CREATE PUBLICATION p FOR TABLE lineitem",
            "CREATE DATABASE dst_us",
            "CREATE DATABASE dst_pg",
        )
        for db in ("dst_us", "dst_pg"):
            timed([PGARROW, "copy", "--from", server.url, "--to", server.url_of(db), "--table",
                   "lineitem", "--create", "--quiet"])
        times = {"changes": [], "apply": [], "subscription": []}
        for r in range(a.reps):
            server.psql(
                "SELECT pg_create_logical_replication_slot('s_us', 'pgoutput')",
                "SELECT pg_create_logical_replication_slot('s_sub', 'pgoutput')",
                "UPDATE lineitem SET l_quantity = l_quantity + 1",
            )
            dest = os.path.join(out, f"round{r}")

            def ours():
                t, _ = timed([PGARROW, "changes", "--url", server.url, "--slot", "s_us",
                              "--publication", "p", "--catch-up", "-o", dest, "--quiet"])
                times["changes"].append(t)
                t, _ = timed([PGARROW, "apply", dest, "--url", server.url_of("dst_us"),
                              "--quiet"])
                times["apply"].append(t)

            def theirs():
                times["subscription"].append(subscribe(server, "dst_pg", dsn))

            for run in ((ours, theirs) if r % 2 == 0 else (theirs, ours)):
                run()
            server.psql("SELECT pg_drop_replication_slot('s_us')",
                        "SELECT pg_drop_replication_slot('s_sub')")
            want = server.psql(CHECK)
            for db in ("dst_us", "dst_pg"):
                got = server.psql_in(db, CHECK)
                if got != want:
                    sys.exit(f"round {r + 1}: {db} has {got}, the source {want}")
            print(f"[{r + 1}/{a.reps}] pgarrow changes {times['changes'][-1]:.2f} s + apply "
                  f"{times['apply'][-1]:.2f} s, subscription {times['subscription'][-1]:.2f} s "
                  f"({want})", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    sub = med["subscription"]
    both = statistics.median([c + ap for c, ap in zip(times["changes"], times["apply"])])
    text = "\n".join([
        f"- Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit "
        f"{sh(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'])}, "
        f"`python3 benches/apply.py --rows {a.rows} --reps {a.reps}`",
        f"- lineitem {a.rows:,} rows (primary key), every row updated in one transaction, "
        "applied to a copy of the table in another database of the same cluster; two pgoutput "
        "slots made at the same position; medians of the interleaved rounds; both copies "
        "checked equal to the source after each round.",
        "",
        "| tool | median (s) | vs the subscription |",
        "|---|---|---|",
        f"| PostgreSQL subscription (its apply worker) | {sub:.2f} | 1.00 |",
        f"| pgarrow changes (to Parquet) + pgarrow apply | {both:.2f} | {both / sub:.2f} |",
        f"| of which pgarrow changes | {med['changes']:.2f} | {med['changes'] / sub:.2f} |",
        f"| of which pgarrow apply | {med['apply']:.2f} | {med['apply'] / sub:.2f} |",
    ])
    print(text)
    write_section("apply", "## Applying changes\n\n" + text)


if __name__ == "__main__":
    main()
