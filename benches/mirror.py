#!/usr/bin/env python3
"""The mirror end to end (`just bench-mirror`): `pgarrow mirror` into a DuckLake, a Delta and an
Iceberg table against `pgarrow changes` to Parquet of the same changes, and the freshness of a
mirror into each under a steady load.

A scratch cluster with `wal_level = logical` (`serve --logical`) holds lineitem (`--rows`,
default 1M) with its primary key. Each round mirrors lineitem into a new table of each format
(the first export, not timed), makes one more slot for `pgarrow changes` at the same position,
updates every row in one transaction, and times, interleaved, `pgarrow changes --catch-up` to
Parquet and each `pgarrow mirror --catch-up` (the updates folded by key, written as data files
and the format's deletes, committed). Then the freshness: a writer updates `--rate` rows a
second in transactions of a tenth of that, each stamping its commit time, while `pgarrow
mirror` follows with `--commit-interval`; for each commit, the time from the last source commit
it holds to the commit being visible to readers. Records the medians and ratios in
benches/RESULTS.md under "Mirror". Standard library only.

With `--dlt SOURCES` (the directory holding dlt's `pg_replication` verified source: `dlt init
pg_replication filesystem` writes it), each round also runs dlt's Postgres replication into a
Delta table of the filesystem destination, merged by key, in benches/venv's Python
(benches/dlt_mirror.py): its slot and initial load before the updates (not timed), then the
timed run that loads the slot's changes.

`--pgarrow BIN` measures another pgarrow binary than target/release/pgarrow; with `--baseline
BIN`, `pgarrow changes` and each mirror run again with that other build, right after its own in
the same rounds (labelled [baseline], its freshness too): a change's cost in one run.
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
from e2e import ROOT, Server, sh, write_section  # noqa: E402
from e2e import PGARROW as BUILT  # noqa: E402
from incremental import timed  # noqa: E402


class LogicalServer(Server):
    def __init__(self, rows):
        super().__init__(rows, 0)
        self.args.append("--logical")


def int_lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


FORMATS = {
    "ducklake": "DuckLake (updates as delete files)",
    "delta": "Delta (updates as deletion vectors)",
    "iceberg": "Iceberg (updates as position delete files)",
    "iceberg_rest": "Iceberg-REST (Rustberg on this machine, its warehouse on the same disk; "
                    "updates as position delete files)",
}

# The REST catalog of `iceberg-rest`, started by main() when asked for (the tests' own server
# class; `cargo install rustberg --version 0.3.0 --locked --no-default-features --features cli`).
REST = None


def lake_args(server, out, fmt, name, one=True):
    """The flags naming a new lake table of `fmt` called `name` (its catalog database made;
    a REST catalog's tables, of several source tables (`one` false), each named after its own)."""
    path = os.path.join(out, name)
    if fmt == "delta":
        return ["--delta", path]
    if fmt == "iceberg_rest":
        return ["--iceberg", REST.uri, "--iceberg-property", f"token={REST.key}",
                *(["--lake-table", f"bench.{name}"] if one else [])]
    server.psql_in("postgres", f"CREATE DATABASE {name}")
    if fmt == "iceberg":
        return ["--iceberg", server.url_of(name), "--warehouse", path]
    return ["--ducklake", server.url_of(name), "--data-path", path]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--rate", type=int, default=10_000, help="changes a second, for the freshness")
    p.add_argument("--seconds", type=int, default=30, help="how long the steady load runs")
    p.add_argument("--commit-interval", type=float, default=1.0)
    p.add_argument("--formats", nargs="+", default=[f for f in FORMATS if f != "iceberg_rest"],
                   choices=list(FORMATS))
    p.add_argument("--every", type=int, default=1,
                   help="update the rows whose l_orderkey %% N = 0 (1: every row)")
    p.add_argument("--copy-on-write", action="store_true",
                   help="also mirror each format with --deletes copy-on-write (the files that lose "
                        "rows written again), in the same rounds")
    p.add_argument("--dlt", metavar="SOURCES",
                   help="dlt's verified sources directory (holding pg_replication): measure it too")
    p.add_argument("--pgarrow", metavar="BIN", default=BUILT,
                   help="the pgarrow binary to measure (default target/release/pgarrow)")
    p.add_argument("--baseline", metavar="BIN",
                   help="also run changes and each mirror with this other pgarrow binary, "
                        "interleaved in the same rounds (labelled [baseline])")
    a = p.parse_args()
    a.pgarrow = os.path.abspath(a.pgarrow)
    # (label, binary, the suffix of its slots and tables)
    builds = [("", a.pgarrow, "")]
    if a.baseline:
        builds.append((" [baseline]", os.path.abspath(a.baseline), "_b"))
    venv_python = os.path.join(ROOT, "benches", "venv", "bin", "python")
    if a.dlt and not os.path.isdir(os.path.join(a.dlt, "pg_replication")):
        sys.exit(f"{a.dlt} has no pg_replication: `dlt init pg_replication filesystem` writes it")
    for _, binary, _ in builds:
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: cargo build --release -p pgarrow-cli")
    if "iceberg_rest" in a.formats:
        global REST
        sys.path.insert(0, os.path.join(ROOT, "crates", "pgarrow-python", "tests"))
        from rest_catalogs import Rustberg
        REST = Rustberg().start()
    with LogicalServer(a.rows) as server, tempfile.TemporaryDirectory() as out:
        server.psql("ALTER TABLE lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber)")
        # (name, format, copy-on-write, binary, slot, label): each build's right after the other's.
        modes = [(f"{f}{cow}{label}", f, bool(cow), binary, f"{f}{cow.replace('-', '_')}{side}", label)
                 for cow in ["", *(["-cow"] if a.copy_on_write else [])] for f in a.formats
                 for label, binary, side in builds]
        times = {**{f"changes{label}": [] for label, _, _ in builds}, **{m[0]: [] for m in modes},
                 **({"dlt": []} if a.dlt else {})}
        updated = int(server.psql(f"SELECT count(*) FROM lineitem WHERE l_orderkey % {a.every} = 0"))
        for r in range(a.reps):
            mirrors = {}
            if a.dlt:
                # First: its initial load copies lineitem into a table of the source (WAL no
                # slot made after it decodes), and its slot then moves past that copy, so that
                # every slot decodes the same WAL, the updates'.
                dlt_out = os.path.join(out, f"dlt{r}")
                step = [venv_python, os.path.join(ROOT, "benches", "dlt_mirror.py")]
                where = [a.dlt, server.url, f"dlt{r}", "lineitem", dlt_out]
                init = subprocess.run([*step, "init", *where], capture_output=True, text=True)
                if init.returncode != 0:
                    sys.exit(f"dlt's initial load failed: {init.stderr.strip()[-2000:]}")
                loaded = int(init.stdout.strip().splitlines()[-1])
                if loaded != a.rows:
                    sys.exit(f"dlt's initial load loaded {loaded} rows, not {a.rows}")
                server.psql(f"SELECT pg_replication_slot_advance('dlt{r}', pg_current_wal_lsn())")
                mirrors["dlt"] = [*step, "changes", *where]
            for m, f, cow, binary, name, _ in modes:
                slot = f"m{r}{name}"
                mirrors[m] = [binary, "mirror", "--url", server.url, "-t", "lineitem",
                              "--slot", slot, *lake_args(server, out, f, slot),
                              "--catch-up", "--json",
                              *(["--deletes", "copy-on-write"] if cow else [])]
                timed(mirrors[m])
            server.psql(
                *[f"SELECT pg_create_logical_replication_slot('s_us{side}', 'pgoutput')"
                  for _, _, side in builds],
                "CREATE PUBLICATION p FOR TABLE lineitem",
                f"UPDATE lineitem SET l_quantity = l_quantity + 1 WHERE l_orderkey % {a.every} = 0",
            )
            runs = [(f"changes{label}",
                     [binary, "changes", "--url", server.url, "--slot", f"s_us{side}",
                      "--publication", "p", "--catch-up", "-o",
                      os.path.join(out, f"changes{r}{side}"), "--quiet"])
                    for label, binary, side in builds]
            runs += list(mirrors.items())
            # Each round in another order.
            runs = runs[r % len(runs):] + runs[:r % len(runs)]
            for name, argv in runs:
                start = time.perf_counter()
                done = subprocess.run(argv, capture_output=True, text=True)
                times[name].append(time.perf_counter() - start)
                if done.returncode != 0:
                    sys.exit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
                if name == "dlt":
                    loaded = int(done.stdout.strip().splitlines()[-1])
                    if loaded != updated:
                        sys.exit(f"dlt loaded {loaded} changed rows, not {updated}")
                elif not name.startswith("changes"):
                    stats = json.loads(done.stdout.strip().splitlines()[-1])["stats"]
                    if stats.get("inserted") != updated or stats.get("deleted") != updated:
                        sys.exit(f"the {name} mirror wrote {stats.get('inserted')} rows and "
                                 f"deleted {stats.get('deleted')}, not {updated} each")
            print(f"[{r + 1}/{a.reps}] " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                  flush=True)
            server.psql(*[f"SELECT pg_drop_replication_slot('s_us{side}')" for _, _, side in builds],
                        "DROP PUBLICATION p",
                        *[f"SELECT pg_drop_replication_slot('m{r}{m[4]}')" for m in modes],
                        *[f"DROP PUBLICATION m{r}{m[4]}" for m in modes],
                        *([f"SELECT pg_drop_replication_slot('dlt{r}')", f"DROP PUBLICATION dlt{r}"]
                          if a.dlt else []))
        # --seconds 0: the timed rounds alone.
        fresh = {(f, label): freshness(server, out, a, f, binary, side)
                 for f in a.formats if a.seconds > 0 for label, binary, side in builds}
    ch = statistics.median(times["changes"])
    rows = [f"| pgarrow changes, to Parquet files{label} | {statistics.median(times[f'changes{label}']):.2f} "
            f"| {statistics.median(times[f'changes{label}']) / ch:.2f} |" for label, _, _ in builds]
    for m, f, cow, _, _, label in modes:
        mi = statistics.median(times[m])
        into = FORMATS[f] if not cow else f"{FORMATS[f].split(' ')[0]} (--deletes copy-on-write: files rewritten)"
        vs = f" ({mi / statistics.median(times[f + label]):.2f} of merge-on-read)" if cow else ""
        rows.append(f"| pgarrow mirror, into {into}{label} | {mi:.2f} | {mi / ch:.2f}{vs} |")
    if a.dlt:
        dl = statistics.median(times["dlt"])
        rows.append(f"| dlt pg_replication, merged into Delta (filesystem destination) | {dl:.2f} "
                    f"| {dl / ch:.2f} |")
    lines = []
    for (f, label), fr in fresh.items():
        fr = sorted(fr)
        p95 = fr[max(int(len(fr) * 0.95) - 1, 0)]
        lines.append(f"- {FORMATS[f].split(' ')[0]}{label}: median {statistics.median(fr):.2f} s, "
                     f"p95 {p95:.2f} s ({len(fr)} commits).")
    text = "\n".join([
        f"- Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit "
        f"{sh(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'])}, "
        f"`python3 benches/mirror.py --rows {a.rows} --reps {a.reps} --rate {a.rate} "
        f"--seconds {a.seconds} --commit-interval {a.commit_interval}"
        f"{f' --every {a.every}' if a.every != 1 else ''}{' --copy-on-write' if a.copy_on_write else ''}"
        f"{' --dlt SOURCES' if a.dlt else ''}{' --baseline BIN' if a.baseline else ''}`"
        f"{f'; [baseline]: {a.baseline}' if a.baseline else ''}",
        f"- lineitem {a.rows:,} rows (primary key), "
        f"{'every row' if a.every == 1 else f'{updated:,} rows (l_orderkey % {a.every} = 0)'} "
        "updated in one transaction; every "
        "slot made at the same position before it; medians of the interleaved rounds. The "
        "mirror commits at transaction boundaries: the one transaction is one lake commit.",
        *(["- dlt: its verified source `pg_replication` (dlt "
           f"{sh([venv_python, '-c', 'import dlt; print(dlt.__version__)'])}), its slot and "
           "initial load made before the updates (not timed); the timed run reads the slot's "
           "changes (decoded in Python) and merges them into the Delta table by key."]
          if a.dlt else []),
        "",
        "| tool | median (s) | vs pgarrow changes |",
        "|---|---|---|",
        *rows,
        *(["",
           f"Freshness at a steady {a.rate:,} changes/s for {a.seconds} s, "
           f"`--commit-interval {a.commit_interval}`: from the source's commit to the lake commit "
           "that holds it.",
           "",
           *lines] if lines else []),
    ])
    print(text)
    if a.formats == ["iceberg", "iceberg_rest"]:
        # Iceberg's two catalogs side by side (`just bench-mirror-rest`): a section of its own.
        write_section("mirror-rest", "## Mirror: Iceberg through a REST catalog\n\n" + text)
    elif a.copy_on_write or a.every != 1:
        # The delete modes side by side: a section of their own, beside the default run's.
        write_section("mirror-deletes", "## Mirror: the delete modes\n\n" + text)
    else:
        write_section("mirror", "## Mirror\n\n" + text)


def freshness(server, out, a, fmt, binary, side):
    """Seconds from each lake commit's newest source commit to the lake commit, under load
    (`binary` mirroring; `side` the suffix of its slot and table)."""
    server.psql("DROP TABLE IF EXISTS stamp", "CREATE TABLE stamp (id int PRIMARY KEY, at timestamptz)",
                "INSERT INTO stamp VALUES (1, now())")
    argv = [binary, "mirror", "--url", server.url, "-t", "lineitem", "-t", "stamp",
            "--slot", f"mf{fmt}{side}", *lake_args(server, out, fmt, f"fresh{fmt}{side}", one=False), "--json",
            "--commit-interval", str(a.commit_interval),
            "--commit-changes", str(max(a.rate * 10, 100_000))]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    commits = {}  # end LSN of a source transaction -> its commit time
    stop = threading.Event()

    def load():
        per = max(a.rate // 10, 1)
        top = int(server.psql("SELECT max(l_orderkey) FROM lineitem"))
        # A range of order keys holding about `per` rows, through the primary key's index.
        step = max(1, per * top // a.rows)
        conn = subprocess.Popen(server.psql_args() + ["-A", "-t"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        key = 0
        while not stop.is_set():
            started = time.time()
            lo = key
            key = (key + step) % top
            conn.stdin.write(
                "BEGIN;"
                f"UPDATE lineitem SET l_quantity = l_quantity + 1 WHERE l_orderkey >= {lo} "
                f"AND l_orderkey < {lo + step};"
                "UPDATE stamp SET at = clock_timestamp() WHERE id = 1;"
                "COMMIT; SELECT pg_current_wal_insert_lsn(), extract(epoch from clock_timestamp());\n")
            conn.stdin.flush()
            lsn, at = conn.stdout.readline().strip().split("|")
            commits[int_lsn(lsn)] = float(at)
            time.sleep(max(0.0, 0.1 - (time.time() - started)))
        conn.stdin.close()
        conn.wait()

    fresh = follow_fresh(proc, commits, stop, load, a.seconds,
                         lambda e: e["event"] == "exported" and e["table"].endswith('"stamp"'))
    server.psql(f"SELECT pg_drop_replication_slot('mf{fmt}{side}')", f"DROP PUBLICATION mf{fmt}{side}")
    if not fresh:
        sys.exit("the mirror made no commit under the load")
    return fresh


def follow_fresh(proc, commits, stop, load, seconds, ready):
    """Reads the JSON lines of the mirror `proc`: from the event `ready` takes, runs `load` on a
    thread for `seconds` (it records each source commit's end LSN and time in `commits` until
    `stop` is set); for each checkpoint, the seconds since the newest source commit it holds.
    Then stops the load and the mirror."""
    fresh, writer, deadline = [], None, None
    for line in proc.stdout:
        e = json.loads(line)
        now = time.time()
        if writer is None and ready(e):
            writer = threading.Thread(target=load, daemon=True)
            writer.start()
            deadline = now + seconds
        if e["event"] == "checkpoint" and writer is not None:
            held = [t for end, t in list(commits.items()) if end <= int_lsn(e["lsn"])]
            if held:
                fresh.append(now - max(held))
        if deadline is not None and now > deadline:
            break
    stop.set()
    if writer is not None:
        writer.join()
    proc.send_signal(2)
    proc.communicate(timeout=120)
    return fresh


if __name__ == "__main__":
    main()
