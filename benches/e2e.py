#!/usr/bin/env python3
"""The end-to-end benchmark: pgarrow against the raw COPY read and its peers (issue #4).

Run it through `just bench` (or `just bench-memory`), which builds what it needs first:
`benches/setup.sh` (Python venv with the peers, pg2parquet), the release `pgarrow` binary and
the testkit's `serve` example. Standard library only; run it with any Python 3.9+.

What it does:
1. starts a scratch PostgreSQL cluster with `target/release/examples/serve`, which loads the
   deterministic tables `lineitem` (TPC-H shaped, --rows) and `wide` (21 mixed-type columns,
   about 10% NULLs, --wide-rows);
2. reads each table once with psql into a pipe to count the bytes of its COPY stream (and to
   warm the caches);
3. runs every tool on every table --reps times, interleaved (tool A, B, C, A, B, C, ...),
   each as its own process, and records the wall time, the client's CPU time (user + system,
   all threads, from wait4's rusage) and its peak RSS (maxrss);
4. prints the table of medians and writes it into benches/RESULTS.md (between the markers of
   its section; the rest of that file is kept), and redraws that section's chart,
   benches/charts/<section>.svg (benches/chart.py).

Every tool exports `SELECT * FROM <table>` over TCP to 127.0.0.1 as the superuser. The limit is
psql running `COPY (SELECT * FROM <table>) TO STDOUT (FORMAT binary)` into /dev/null: one
backend producing the stream, nothing decoding it. The Python peers (benches/peers.py) time
themselves from connecting to the last row, without the interpreter's start and imports; their
whole-process time is in the "process s" column.

--memory instead exports lineitem repeated (UNION ALL of the table) at 2 or 3 sizes up to
--memory-rows to Parquet and to null, reporting peak RSS at each size.

--load measures the other direction (issue #17): loading lineitem (--rows, 2,000,000 unless
given) from a Parquet file into an empty table `lineitem_load (LIKE lineitem)`. Once per run,
`pgarrow export` writes the table to benches/data/lineitem.parquet and the server writes its
own binary COPY file into its data directory. Before every run the target table is dropped
and created again and a CHECKPOINT is taken (not timed); after it its rows are counted (and on
a tool's first run compared with lineitem's, EXCEPT ALL). The limit is psql running `COPY
lineitem_load FROM '<the server's file>' (FORMAT binary)`: the server reading its own file, no
client work. Then the same file sent by psql through COPY FROM STDIN (the socket path, nothing
to encode), `pgarrow import`, the ADBC driver's adbc_ingest and pgpq + psycopg (which
read the Parquet file themselves, timed), and, PostgreSQL -> PostgreSQL, `pgarrow copy` (when
the binary has that subcommand) and a psql-to-psql pipe of the binary COPY.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHES = os.path.join(ROOT, "benches")
DATA = os.path.join(BENCHES, "data")
# Where `just bench-build` put the binaries: cargo's target directory (CARGO_TARGET_DIR when set).
TARGET = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"))
PGARROW = os.path.join(TARGET, "release", "pgarrow")
SERVE = os.path.join(TARGET, "release", "examples", "serve")
VENV_PY = os.path.join(BENCHES, "venv", "bin", "python")
PEERS = os.path.join(BENCHES, "peers.py")
PG2PARQUET = os.path.join(BENCHES, "tools", "bin", "pg2parquet")
RESULTS = os.path.join(BENCHES, "RESULTS.md")


# --- processes -----------------------------------------------------------------------------


def run_measured(argv, stdout_path=None, env=None):
    """Runs argv to completion; returns its wall seconds, CPU seconds (user + system, all
    threads, from wait4's rusage), peak RSS in KiB (maxrss), exit code, and its stdout (unless
    `stdout_path` is os.devnull) and stderr text."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if stdout_path == os.devnull else out,
            stderr=err,
            env=env,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {
            "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime,
            "maxrss_kib": usage.ru_maxrss,
            "rc": proc.returncode,
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
        }


def last_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    # Python tracebacks end with the exception; Rust errors with the message.
    return lines[-1].strip() if lines else "(no output)"


class Server:
    """`serve`: a scratch cluster with the tables loaded, stopped when we close its stdin."""

    def __init__(self, lineitem_rows, wide_rows):
        self.args = [SERVE, "--lineitem", str(lineitem_rows), "--wide", str(wide_rows)]

    def __enter__(self):
        print(f"== starting the cluster: {shlex.join(self.args)}", flush=True)
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.info = {}
        for line in self.proc.stdout:
            line = line.strip()
            if line == "ready":
                break
            key, _, value = line.partition("=")
            self.info[key] = value
        else:
            self.proc.wait()
            sys.exit(f"serve exited ({self.proc.returncode}) before it was ready")
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        self.proc.wait(timeout=120)

    @property
    def url(self):
        return self.info["url"]

    def url_of(self, db):
        """The URL of another database of the cluster."""
        return self.url.rsplit("/", 1)[0] + "/" + db

    def psql_args(self, db=None):
        i = self.info
        return [i["psql"], "-X", "-q", "-h", i["host"], "-p", i["port"], "-U", i["user"], "-d",
                db or i["dbname"]]

    def psql(self, *sql):
        """Runs each statement of `sql` as its own query (own transaction); the output."""
        return self.psql_in(None, *sql)

    def psql_in(self, db, *sql):
        """`psql` in the database `db` of the cluster (None: the tables' database)."""
        out = subprocess.run(
            self.psql_args(db) + ["-A", "-t", "-v", "ON_ERROR_STOP=1",
                                  *[a for q in sql for a in ("-c", q)]],
            check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()


# --- the tools ------------------------------------------------------------------------------


class Tool:
    """One way to export a table: `argv(server, query, table, out)` builds the command (for the
    load tools of LOAD_TOOLS: `argv(server, inputs, target)`)."""

    def __init__(self, name, output, kind, argv, needs=None, env=None):
        self.name, self.output, self.kind, self.argv, self.needs = name, output, kind, argv, needs
        self.env = dict(os.environ, **env) if env else None
        self.missing = None  # why it cannot run here, if it cannot

    def out_path(self, dataset):
        if self.output != "parquet":
            return os.devnull
        return os.path.join(DATA, f"{re.sub(r'[^a-z0-9]+', '-', self.name.lower())}-{dataset}.parquet")


def pgarrow_argv(extra, binary=None):
    return lambda s, q, t, out: [binary or PGARROW, "export", "--url", s.url, "--query", q, *extra(out)]


def baseline_tools(binary):
    """The pgarrow tools again, run with another build of pgarrow (`--baseline`), labelled."""
    extras = {
        "pgarrow --to null": lambda out: ["--to", "null"],
        "pgarrow --to arrow-stream -o - > /dev/null": lambda out: ["--to", "arrow-stream", "-o", "-"],
        "pgarrow --to parquet (zstd 3)": lambda out: ["--to", "parquet", "-o", out],
    }
    tools = [Tool(f"{name} [baseline]", "parquet" if "parquet" in name else "null", "pgarrow",
                  pgarrow_argv(extra, binary)) for name, extra in extras.items()]
    for fmt in ("null", "parquet"):
        tools.append(Tool(
            f"pgarrow --partitions 2 --to {fmt} [baseline]", fmt, "pgarrow",
            (lambda fmt: lambda s, q, t, out: [binary, "export", "--url", s.url, "--table", t,
                                               "--partitions", "2", "--to", fmt,
                                               *(["-o", out] if fmt == "parquet" else [])])(fmt)))
    return tools


def baseline_load_tools(binary):
    """`pgarrow import` and `pgarrow copy` again with another build (`--baseline --load`)."""
    return [
        Tool("pgarrow import [baseline]", "Parquet", "pgarrow",
             lambda s, inputs, target: [binary, "import", inputs["parquet"], "--into", target,
                                        "--url", s.url]),
        Tool("pgarrow copy [baseline]", "table lineitem", "pgarrow-copy",
             lambda s, inputs, target: [binary, "copy", "--from", s.url, "--to", s.url,
                                        "--table", "lineitem", "--into", target]),
    ]


def peer_argv(tool):
    return lambda s, q, t, out: [VENV_PY, PEERS, tool, s.url, t, out]


TOOLS = [
    Tool("psql COPY binary > /dev/null (the limit)", "null", "limit",
         lambda s, q, t, out: s.psql_args() + ["-c", f"COPY ({q}) TO STDOUT (FORMAT binary)"]),
    Tool("pgarrow --to null", "null", "pgarrow", pgarrow_argv(lambda out: ["--to", "null"])),
    Tool("pgarrow --to arrow-stream -o - > /dev/null", "null", "pgarrow",
         pgarrow_argv(lambda out: ["--to", "arrow-stream", "-o", "-"])),
    Tool("pgarrow --to parquet (zstd 3)", "parquet", "pgarrow",
         pgarrow_argv(lambda out: ["--to", "parquet", "-o", out])),
    *[Tool(f"pgarrow --partitions {n} --to {fmt}", fmt if fmt == "parquet" else "null", "pgarrow",
           (lambda n, fmt: lambda s, q, t, out: [PGARROW, "export", "--url", s.url, "--table", t,
                                                 "--partitions", str(n), "--to", fmt,
                                                 *(["-o", out] if fmt == "parquet" else [])])(n, fmt))
      for fmt in ("null", "parquet") for n in (2, 4)],
    Tool("psycopg 3 binary COPY read, no decoding", "null", "python", peer_argv("psycopg-copy"),
         needs="psycopg-copy"),
    Tool("pgarrow Python read_arrow -> Arrow table", "null", "python", peer_argv("pgarrow-arrow"),
         needs="pgarrow-arrow"),
    Tool("pgarrow Python read_batches -> Arrow batches", "null", "python",
         peer_argv("pgarrow-batches"), needs="pgarrow-batches"),
    Tool("ConnectorX read_sql -> Arrow table", "null", "python", peer_argv("connectorx-arrow"),
         needs="connectorx-arrow"),
    Tool("ADBC PostgreSQL -> Arrow batches", "null", "python", peer_argv("adbc-arrow"),
         needs="adbc-arrow"),
    Tool("pgarrow ADBC driver (driver manager) -> Arrow batches", "null", "python",
         peer_argv("pgarrow-adbc-arrow"), needs="pgarrow-adbc-arrow"),
    Tool("ADBC PostgreSQL + pyarrow -> Parquet (zstd 3)", "parquet", "python",
         peer_argv("adbc-parquet"), needs="adbc-parquet"),
    Tool("DuckDB postgres ext -> Arrow batches", "null", "python", peer_argv("duckdb-arrow"),
         needs="duckdb-arrow"),
    Tool("DuckDB postgres ext -> Parquet (zstd 3)", "parquet", "python",
         peer_argv("duckdb-parquet"), needs="duckdb-parquet"),
    Tool("pg2parquet (zstd 3)", "parquet", "pg2parquet",
         lambda s, q, t, out: [PG2PARQUET, "export", "--quiet", "-c", s.url, "-q", q, "-o", out],
         # Without a password it asks for one on the terminal (trust ignores this one).
         env={"PGPASSWORD": "unused"}),
]


# --- the load tools (--load) ---------------------------------------------------------------

LOAD_TARGET = "lineitem_load"


def load_peer_argv(tool):
    return lambda s, inputs, target: [VENV_PY, PEERS, tool, s.url, target, inputs["parquet"]]


def pgarrow_copy_argv(s, inputs, target):
    url = s.url if s else "URL"
    return [PGARROW, "copy", "--from", url, "--to", url, "--table", "lineitem", "--into", target]


LOAD_TOOLS = [
    Tool("psql COPY FROM the server's own binary file (the limit)", "server's COPY file", "limit",
         lambda s, inputs, target: s.psql_args() + [
             "-c", f"COPY {target} FROM '{inputs['server_file']}' (FORMAT binary)"]),
    # The same file streamed by psql over the connection: the socket path with nothing to
    # encode, what a client can hope for at best.
    Tool("psql COPY FROM STDIN < that file (the socket path, nothing to encode)",
         "server's COPY file", "psql-stdin",
         lambda s, inputs, target: ["bash", "-c", "{} < {}".format(
             shlex.join(s.psql_args() + ["-c", f"COPY {target} FROM STDIN (FORMAT binary)"]),
             shlex.quote(inputs["server_file"]))]),
    Tool("pgarrow import", "Parquet", "pgarrow",
         lambda s, inputs, target: [PGARROW, "import", inputs["parquet"], "--into", target,
                                    "--url", s.url]),
    Tool("ADBC PostgreSQL adbc_ingest (pyarrow reads the file)", "Parquet", "python",
         load_peer_argv("adbc-ingest"), needs="adbc-ingest"),
    Tool("pgarrow ADBC driver adbc_ingest (pyarrow reads the file)", "Parquet", "python",
         load_peer_argv("pgarrow-adbc-ingest"), needs="pgarrow-adbc-ingest"),
    Tool("pgpq + psycopg 3 COPY FROM STDIN (pyarrow reads the file)", "Parquet", "python",
         load_peer_argv("pgpq-psycopg"), needs="pgpq-psycopg"),
    # PostgreSQL -> PostgreSQL (the same server, lineitem into lineitem_load).
    Tool("pgarrow copy", "table lineitem", "pgarrow-copy", pgarrow_copy_argv),
    Tool("psql COPY TO STDOUT piped into psql COPY FROM STDIN (binary)", "table lineitem", "pipe",
         lambda s, inputs, target: ["bash", "-c", "set -o pipefail; {} | {}".format(
             shlex.join(s.psql_args() + ["-c", "COPY lineitem TO STDOUT (FORMAT binary)"]),
             shlex.join(s.psql_args() + ["-c", f"COPY {target} FROM STDIN (FORMAT binary)"]))]),
]


def check_tools(tools):
    """Marks tools that cannot run here, with the reason."""
    for tool in tools:
        if tool.kind in ("pgarrow", "pgarrow-copy") and not os.path.exists(PGARROW):
            tool.missing = f"{PGARROW} not built (cargo build --release -p pgarrow-cli)"
        elif tool.kind == "pgarrow-copy":
            r = subprocess.run([PGARROW, "copy", "--help"], capture_output=True, text=True)
            if r.returncode != 0:
                first = next((l.strip() for l in (r.stderr or r.stdout).splitlines() if l.strip()),
                             f"exit {r.returncode}")
                argv = ["pgarrow", *pgarrow_copy_argv(None, {}, LOAD_TARGET)[1:]]
                tool.missing = (
                    f"not built: this pgarrow has no `copy` subcommand (`pgarrow copy --help`: "
                    f"{first}); would run `{shlex.join(argv)}`")
        elif tool.kind == "pg2parquet" and not os.path.exists(PG2PARQUET):
            tool.missing = (
                "not installed: no benches/tools/bin/pg2parquet "
                "(`cargo install pg2parquet --root benches/tools` failed or was not run)"
            )
        elif tool.kind == "python":
            if not os.path.exists(VENV_PY):
                tool.missing = "not installed: no benches/venv (run benches/setup.sh)"
                continue
            # The same imports the peer makes.
            code = (
                "import sys; sys.path.insert(0, %r); import peers\n"
                "for m in peers.IMPORTS[%r]: __import__(m)" % (BENCHES, tool.needs)
            )
            r = subprocess.run([VENV_PY, "-c", code], capture_output=True, text=True)
            if r.returncode != 0:
                tool.missing = "not installed: " + last_line(r.stderr)


def parquet_rows(path):
    if not os.path.exists(VENV_PY):
        return None
    code = "import sys, pyarrow.parquet as pq; print(pq.ParquetFile(sys.argv[1]).metadata.num_rows)"
    r = subprocess.run([VENV_PY, "-c", code, path], capture_output=True, text=True)
    return int(r.stdout) if r.returncode == 0 else None


def measure(tool, argv):
    """Runs `tool`'s argv once: the run, its measurements (with "error" if it failed), and the
    rows a Python peer reported (None for the others). A Python peer's own wall and CPU time
    (from connecting to the end) replace the whole process's, which stay as process_*."""
    r = run_measured(argv, stdout_path=None if tool.kind == "python" else os.devnull, env=tool.env)
    res = {"wall": r["wall"], "cpu": r["cpu"], "maxrss_kib": r["maxrss_kib"],
           "process_wall": r["wall"], "process_cpu": r["cpu"]}
    if r["rc"] != 0:
        res["error"] = f"exit {r['rc']}: {last_line(r['stderr'] or r['stdout'])}"
        return r, res, None
    rows = None
    if tool.kind == "python":
        try:
            inner = json.loads(last_line(r["stdout"]))
        except ValueError:
            res["error"] = "no result line: " + last_line(r["stdout"] + r["stderr"])
            return r, res, None
        res["wall"], res["cpu"], rows = inner["seconds"], inner["cpu"], inner["rows"]
    return r, res, rows


def run_tool(tool, server, dataset, table, query, expected_rows):
    """One run of `tool`: a dict of measurements, or with "error"."""
    out = tool.out_path(dataset)
    r, res, rows = measure(tool, tool.argv(server, query, table, out))
    if "error" in res:
        return res
    if tool.kind == "pgarrow":
        m = re.search(r"exported ([\d,]+) rows", r["stderr"])
        rows = int(m.group(1).replace(",", "")) if m else None
    elif tool.kind == "limit":
        rows = expected_rows  # psql -q prints no row count for COPY TO STDOUT
    if tool.output == "parquet":
        res["output_bytes"] = os.path.getsize(out) if os.path.exists(out) else None
        file_rows = parquet_rows(out) if os.path.exists(out) else None
        rows = file_rows if rows is None else rows
        if file_rows is not None and file_rows != rows:
            res["error"] = f"reported {rows} rows but the file has {file_rows}"
        if os.path.exists(out):
            os.remove(out)
    if rows != expected_rows and "error" not in res:
        res["error"] = f"{rows} rows, expected {expected_rows}"
    res["rows"] = rows
    return res


def copy_stream_bytes(server, query):
    """Bytes of the binary COPY stream of `query` (read once through a pipe)."""
    proc = subprocess.Popen(
        server.psql_args() + ["-c", f"COPY ({query}) TO STDOUT (FORMAT binary)"],
        stdout=subprocess.PIPE,
    )
    n = 0
    while chunk := proc.stdout.read(1 << 20):
        n += len(chunk)
    if proc.wait() != 0:
        sys.exit(f"psql COPY of {query!r} failed")
    return n


# --- reporting ------------------------------------------------------------------------------


def interleaved(tools, reps, run):
    """Runs `run(tool, first)` for every tool that is there, `reps` rounds of all of them in
    turn (A, B, C, A, B, C, ...), printing each result; `first` is set on a tool's first run.
    Returns each tool's runs by name."""
    runs = {t.name: [] for t in tools if not t.missing}
    for rep in range(reps):
        for tool in tools:
            if tool.missing:
                continue
            # A tool that failed its first run fails the same way again: run it once.
            if rep > 0 and runs[tool.name] and all("error" in r for r in runs[tool.name]):
                continue
            r = run(tool, not runs[tool.name])
            runs[tool.name].append(r)
            status = r.get("error") or (
                f"{r['wall']:.2f} s, CPU {r['cpu']:.2f} s, RSS {r['maxrss_kib'] / 1024:.0f} MiB")
            print(f"   [{rep + 1}/{reps}] {tool.name}: {status}", flush=True)
    return runs


def summarize(runs):
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[0]["error"] if runs else "not run"}
    med = lambda k: statistics.median(r[k] for r in ok)
    return {
        "n": len(ok),
        "wall": med("wall"),
        "wall_min": min(r["wall"] for r in ok),
        "wall_max": max(r["wall"] for r in ok),
        "cpu": med("cpu"),
        "process_wall": med("process_wall"),
        "maxrss_mib": max(r["maxrss_kib"] for r in ok) / 1024,
        "output_bytes": ok[-1].get("output_bytes"),
        "failed_runs": len(runs) - len(ok),
    }


def fmt_table(dataset, rows, copy_bytes, results, tools):
    limit = results.get(tools[0].name, {})
    limit_wall = limit.get("wall")
    limit_cpu = limit.get("cpu")
    head = (
        "| tool | output | s (median) | min-max s | x limit | client CPU s | CPU x psql "
        "| rows/s | MB/s of COPY | peak RSS MiB | process s | runs |\n"
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
    )
    lines = []
    for tool in tools:
        s = results.get(tool.name)
        if tool.missing or s is None:
            why = tool.missing or "not run"
            lines.append(f"| {tool.name} | {tool.output} | {why} |" + " |" * 9)
            continue
        if "error" in s:
            lines.append(f"| {tool.name} | {tool.output} | failed: {s['error']} |" + " |" * 9)
            continue
        ratio = f"{s['wall'] / limit_wall:.2f}" if limit_wall else "-"
        cpu_ratio = f"{s['cpu'] / limit_cpu:.2f}" if limit_cpu else "-"
        size = ""
        if s.get("output_bytes"):
            size = f" ({s['output_bytes'] / 2**20:.0f} MiB)"
        lines.append(
            f"| {tool.name} | {tool.output}{size} | {s['wall']:.2f} | {s['wall_min']:.2f}-{s['wall_max']:.2f} "
            f"| **{ratio}** | {s['cpu']:.2f} | {cpu_ratio} | {rows / s['wall']:,.0f} "
            f"| {copy_bytes / s['wall'] / 1e6:,.0f} | {s['maxrss_mib']:,.0f} | {s['process_wall']:.2f} "
            f"| {s['n']}{' (+%d failed)' % s['failed_runs'] if s['failed_runs'] else ''} |"
        )
    title = f"### {dataset}: {rows:,} rows, {copy_bytes / 1e6:,.1f} MB of binary COPY ({copy_bytes / rows:.0f} bytes/row)\n\n"
    return title + head + "\n".join(lines) + "\n"


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, shell=isinstance(cmd, str)).stdout.strip()
    except OSError:
        return ""


def machine_info(server):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(l for l in f if l.startswith("MemTotal")).split()[1])
            mem = f"{kib / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        pass
    peers = {}
    if os.path.exists(VENV_PY):
        try:
            peers = json.loads(sh([VENV_PY, PEERS, "--versions"]) or "{}")
        except ValueError:
            peers = {}
    git = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = " (with uncommitted changes)" if sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"]) else ""
    return {
        "started": datetime.datetime.now(datetime.timezone.utc),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "postgres": f"{sh([server.info['psql'], '--version'])} (server_version_num {server.info.get('server_version_num')})",
        "pgarrow": f"{sh([PGARROW, '--version'])}, commit {git}{dirty}",
        "rustc": sh(["rustc", "--version"]),
        "python": sh([VENV_PY, "--version"]) if os.path.exists(VENV_PY) else "no venv",
        "pg2parquet": sh([PG2PARQUET, "--version"]) if os.path.exists(PG2PARQUET) else "not installed",
        "peers": peers,
    }


def describe_machine(info, command):
    peers = ", ".join(f"{k} {v or 'not installed'}" for k, v in info["peers"].items()) or "no venv"
    return (
        f"- Run: {info['started']:%Y-%m-%d %H:%M} UTC, command: `{command}`\n"
        f"- Machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['memory']} memory, "
        f"Linux {info['kernel']}; load average at the start: {info['loadavg']}\n"
        f"- {info['postgres']}; the scratch cluster of pgarrow-testkit (fsync off), same machine, TCP 127.0.0.1\n"
        f"- {info['pgarrow']}; {info['rustc']}\n"
        f"- Peers: {info['pg2parquet']}; {info['python']}: {peers}\n"
    )


def section_heading(args, text):
    """`text` under `--heading` when given (a partial run written to a section of its own)."""
    if not args.heading:
        return text
    return f"## {args.heading}\n" + text.split("\n", 1)[1]


def write_section(name, text):
    """Replaces the section `name` of RESULTS (between its markers), keeping the rest."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    old = ""
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            old = f.read()
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end) + 1 :]
    elif old:
        new = old.rstrip() + "\n\n" + block
    else:
        new = "# Benchmark results\n\nWritten by `benches/e2e.py` (`just bench`, `just bench-memory`, `just bench-load`); see benches/README.md.\n\n" + block
    with open(RESULTS, "w") as f:
        f.write(new)
    draw_chart(name)


def draw_chart(name):
    """Redraws the section's chart, charts/NAME.svg beside RESULTS (benches/chart.py); a chart
    that cannot be drawn is a warning, never a lost run."""
    try:
        if BENCHES not in sys.path:
            sys.path.insert(0, BENCHES)
        import chart

        for path in chart.draw(RESULTS, names=[name]):
            print(f"chart: {path}", flush=True)
    except Exception as e:  # noqa: BLE001
        print(f"warning: the chart of section {name} was not drawn: {e}", file=sys.stderr, flush=True)


# --- the suites -----------------------------------------------------------------------------


def chosen_tools(args, all_tools):
    """The tools `--tools` names (all by default), the limit (the first) always among them,
    checked; says which are missing."""
    tools = [t for t in all_tools if not args.tools or any(k in t.name.lower() for k in args.tools)]
    if tools[0] is not all_tools[0]:
        tools.insert(0, all_tools[0])  # the limit is always measured
    check_tools(tools)
    for t in tools:
        if t.missing:
            print(f"   {t.name}: {t.missing}", flush=True)
    return tools


def suite(args, command):
    tools = chosen_tools(args, TOOLS)
    datasets = [("lineitem", args.rows), ("wide", args.wide_rows)]
    datasets = [(d, n) for d, n in datasets if n > 0 and (not args.datasets or d in args.datasets)]
    sizes = dict(datasets)
    tables = []
    with Server(sizes.get("lineitem", 0), sizes.get("wide", 0)) as server:
        info = machine_info(server)
        for dataset, rows in datasets:
            query = f'SELECT * FROM "{dataset}"'
            copy_bytes = copy_stream_bytes(server, query)
            print(f"== {dataset}: {rows:,} rows, {copy_bytes:,} bytes of COPY; "
                  f"{args.reps} rounds of {len(tools)} tools", flush=True)
            runs = interleaved(tools, args.reps, lambda tool, _: run_tool(
                tool, server, dataset, dataset, query, rows))
            results = {name: summarize(rs) for name, rs in runs.items()}
            tables.append(fmt_table(dataset, rows, copy_bytes, results, tools))
            with open(os.path.join(DATA, f"e2e-{dataset}.json"), "w") as f:
                json.dump({"rows": rows, "copy_bytes": copy_bytes, "runs": runs}, f, indent=1)
    text = "## End-to-end (`just bench`)\n\n" + describe_machine(info, command) + (
        "- Medians of the runs; tools interleaved in each round. `x limit`: wall time over the "
        "limit's (psql reading the same COPY into /dev/null). `client CPU s`: user+system CPU of "
        "the client process, all threads (wait4 rusage; for the Python peers, measured in-process "
        "from connecting to the last row, like their `s`). `peak RSS`: maxrss of the client "
        "process (the largest run). `process s`: wall time of the whole client process, including "
        "the Python interpreter's start and imports for the Python peers.\n\n"
    ) + "\n".join(tables)
    print()
    print(text)
    write_section(args.section or "e2e", section_heading(args, text))


def memory_suite(args, command):
    base = args.rows
    top = max(args.memory_rows, base)
    factors = sorted({1, max(1, round(top / base / 5)), max(1, round(top / base))})
    free = shutil.disk_usage(DATA).free
    # About 35 bytes of zstd Parquet per lineitem row.
    if free < top * 35 * 2:
        print(f"warning: {free / 2**30:.1f} GiB free in {DATA}; the largest file needs about "
              f"{top * 35 / 2**30:.1f} GiB", flush=True)
    tools = [TOOLS[0]] + [t for t in TOOLS if t.kind == "pgarrow" and t.output in ("parquet",)] + [TOOLS[1]]
    check_tools(tools)
    lines = []
    with Server(base, 0) as server:
        info = machine_info(server)
        for k in factors:
            rows = base * k
            query = " UNION ALL ".join(["SELECT * FROM lineitem"] * k)
            copy_bytes = base and copy_stream_bytes(server, "SELECT * FROM lineitem") * k
            results = {}
            for tool in tools:
                if tool.missing:
                    continue
                runs = [run_tool(tool, server, f"memory{k}", "lineitem", query, rows) for _ in range(args.reps)]
                results[tool.name] = summarize(runs)
                s = results[tool.name]
                status = s.get("error") or f"{s['wall']:.2f} s, RSS {s['maxrss_mib']:.0f} MiB"
                print(f"   {rows:,} rows: {tool.name}: {status}", flush=True)
            limit = results[tools[0].name].get("wall")
            for tool in tools:
                s = results.get(tool.name, {"error": tool.missing})
                if "error" in s:
                    lines.append(f"| {rows:,} | {tool.name} | failed: {s['error']} | | | | |")
                    continue
                size = f"{s['output_bytes'] / 2**20:,.0f} MiB" if s.get("output_bytes") else ""
                lines.append(
                    f"| {rows:,} | {tool.name} | {s['wall']:.1f} | {s['wall'] / limit:.2f} | {s['cpu']:.1f} "
                    f"| **{s['maxrss_mib']:,.0f}** | {size} |")
            print(f"== {rows:,} rows, {copy_bytes / 1e9:.1f} GB of COPY", flush=True)
    text = (
        "## Memory (`just bench-memory`)\n\n" + describe_machine(info, command)
        + f"- lineitem ({base:,} rows) exported as `SELECT * FROM lineitem UNION ALL ...` "
        "repeated to each size: the same shape and types, no extra disk; "
        f"{args.reps} run(s) each, medians, RSS the largest.\n\n"
        "| rows | tool | s | x limit | client CPU s | peak RSS MiB | output |\n"
        "|--:|---|--:|--:|--:|--:|--:|\n" + "\n".join(lines) + "\n"
    )
    print()
    print(text)
    write_section("memory", text)


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def run_lineitem_tool(tool, server, rows, prefix):
    """One run of `tool` exporting lineitem into DATA/PREFIX<tool>: its measures, the rows it
    reported (an error unless `rows`), and the files and bytes it left there (removed after)."""
    out = os.path.join(DATA, prefix + re.sub(r"[^a-z0-9]+", "-", tool.name.lower()).strip("-"))
    for p in (out, out + ".parquet"):
        shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else (os.path.exists(p) and os.remove(p))
    r, res, reported = measure(tool, tool.argv(server, "SELECT * FROM lineitem", "lineitem", out))
    if "error" in res:
        return res
    if tool.kind == "pgarrow":
        m = re.search(r"exported ([\d,]+) rows", r["stderr"])
        reported = int(m.group(1).replace(",", "")) if m else None
    res["rows"] = reported
    if reported != rows:
        res["error"] = f"{reported} rows, expected {rows}"
    if os.path.isdir(out):
        res["files"] = sum(len([f for f in fs if f.endswith(".parquet")]) for _, _, fs in os.walk(out))
        res["output_bytes"] = dir_bytes(out)
        shutil.rmtree(out)
    elif os.path.exists(out + ".parquet"):
        res["files"], res["output_bytes"] = 1, os.path.getsize(out + ".parquet")
        os.remove(out + ".parquet")
    return res


def lake_suite(args, command):
    """lineitem into a DuckLake table (its catalog a database of the same cluster), a Delta
    table and an Iceberg table (its SQL catalog a database of the same cluster), against the
    same export to a plain Parquet file, DuckDB's postgres extension writing the same DuckLake
    table through its ducklake extension, dlt writing the Delta and Iceberg tables (through
    deltalake and pyiceberg), and pyiceberg overwriting a table the ADBC driver read, in the
    same rounds. Each round replaces the
    table's rows (one snapshot), so every run commits the same work."""
    rows = args.rows
    # Rustberg, the REST catalog of the REST row (the tests' own server class; `cargo install
    # rustberg --version 0.3.0 --locked --no-default-features --features cli`).
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "crates", "pgarrow-python", "tests"))
    from rest_catalogs import Rustberg
    rest = Rustberg()
    lake_dir = os.path.join(DATA, "lake")
    duck_dir = os.path.join(DATA, "lake-duckdb")
    delta_dir = os.path.join(DATA, "lake-delta")
    dlt_dir = os.path.join(DATA, "lake-dlt")
    ice_dir = os.path.join(DATA, "lake-iceberg")
    pyice_dir = os.path.join(DATA, "lake-pyiceberg")
    dlt_ice_dir = os.path.join(DATA, "lake-dlt-iceberg")

    def pgarrow_tools(binary, label="", side=""):
        """The pgarrow cases run by `binary`, named with `label`; their tables in catalog
        databases and directories of their own (`side`), so that two builds never replace each
        other's tables."""
        def pg(extra):
            return lambda s, q, t, out: [binary, "export", "--url", s.url, "--table", t, *extra(s, out)]

        lake_db, ice_db = "bench_lake" + side, "bench_iceberg" + side
        lake, delta, ice = lake_dir + side, delta_dir + side, ice_dir + side
        return {
            "file": [Tool("pgarrow --to parquet (one file)" + label, "dataset", "pgarrow",
                          pg(lambda s, out: ["-o", out + ".parquet"]))],
            "ducklake": [
                Tool("pgarrow --ducklake (replace)" + label, "dataset", "pgarrow",
                     pg(lambda s, out: ["--ducklake", s.url_of(lake_db), "--data-path", lake,
                                        "--if-exists", "replace"])),
                Tool("pgarrow --ducklake --partitions 2 (replace)" + label, "dataset", "pgarrow",
                     pg(lambda s, out: ["--ducklake", s.url_of(lake_db), "--data-path", lake,
                                        "--if-exists", "replace", "--partitions", "2"])),
            ],
            "delta": [
                Tool("pgarrow --delta (replace)" + label, "dataset", "pgarrow",
                     pg(lambda s, out: ["--delta", delta, "--if-exists", "replace"])),
                Tool("pgarrow --delta --partitions 2 (replace)" + label, "dataset", "pgarrow",
                     pg(lambda s, out: ["--delta", delta, "--if-exists", "replace",
                                        "--partitions", "2"])),
            ],
            "iceberg": [
                Tool("pgarrow --iceberg (replace)" + label, "dataset", "pgarrow",
                     pg(lambda s, out: ["--iceberg", s.url_of(ice_db), "--warehouse", ice,
                                        "--lake-table", "bench.lineitem", "--if-exists", "replace"])),
                # The same export through a REST catalog (Rustberg, its warehouse on the same
                # disk): what the catalog's HTTP round trips cost beside the SQL catalog's.
                Tool("pgarrow --iceberg REST catalog (Rustberg) (replace)" + label, "dataset", "pgarrow",
                     pg(lambda s, out: ["--iceberg", rest.uri, "--iceberg-property", f"token={rest.key}",
                                        "--lake-table", f"bench{side}.lineitem", "--if-exists", "replace"])),
                Tool("pgarrow --iceberg --partitions 2 (replace)" + label, "dataset", "pgarrow",
                     pg(lambda s, out: ["--iceberg", s.url_of(ice_db), "--warehouse", ice,
                                        "--lake-table", "bench.lineitem", "--if-exists", "replace",
                                        "--partitions", "2"])),
            ],
        }

    ours = pgarrow_tools(PGARROW)
    sides = [""]
    if args.baseline:
        # Each pgarrow case again with the other build, right after its own.
        sides.append("_baseline")
        theirs = pgarrow_tools(os.path.abspath(args.baseline), " [baseline]", sides[-1])
        ours = {k: [t for pair in zip(v, theirs[k]) for t in pair] for k, v in ours.items()}
    tools = [
        *ours["file"],
        *ours["ducklake"],
        Tool("DuckDB postgres ext -> ducklake CREATE OR REPLACE TABLE", "dataset", "python",
             lambda s, q, t, out: [VENV_PY, PEERS, "duckdb-ducklake", s.url, t,
                                   s.url_of("bench_lake_duckdb") + "|" + duck_dir],
             needs="duckdb-ducklake"),
        *ours["delta"],
        Tool("dlt sql_table (pyarrow) -> filesystem delta (replace)", "dataset", "python",
             lambda s, q, t, out: [VENV_PY, PEERS, "dlt-delta", s.url, t, dlt_dir],
             needs="dlt-delta"),
        *ours["iceberg"],
        Tool("ADBC driver -> pyiceberg overwrite (SQL catalog)", "dataset", "python",
             lambda s, q, t, out: [VENV_PY, PEERS, "pyiceberg-adbc", s.url, t,
                                   s.url_of("bench_iceberg") + "|" + pyice_dir],
             needs="pyiceberg-adbc"),
        Tool("dlt sql_table (pyarrow) -> filesystem iceberg (replace)", "dataset", "python",
             lambda s, q, t, out: [VENV_PY, PEERS, "dlt-iceberg", s.url, t, dlt_ice_dir],
             needs="dlt-iceberg"),
    ]
    if args.tools:
        tools = [t for t in tools if t == tools[0] or any(w in t.name for w in args.tools)]
    check_tools(tools)
    dirs = [duck_dir, dlt_dir, pyice_dir, dlt_ice_dir,
            *[d + side for d in (lake_dir, delta_dir, ice_dir) for side in sides]]

    def run(tool, _):
        # A new REST table's first round is a create, like the SQL catalog's first round.
        return run_lineitem_tool(tool, server, rows, "lake-")

    rest.start()
    with Server(rows, 0) as server:
        info = machine_info(server)
        for db in ("bench_lake_duckdb", *[d + side for d in ("bench_lake", "bench_iceberg")
                                          for side in sides]):
            server.psql(f"DROP DATABASE IF EXISTS {db}", f"CREATE DATABASE {db}")
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
        runs = interleaved(tools, args.reps, run)
    results = {name: summarize(rs) for name, rs in runs.items()}
    base = results[tools[0].name].get("wall")
    lines = []
    for tool in tools:
        s = results.get(tool.name, {"error": tool.missing})
        if "error" in s:
            lines.append(f"| {tool.name} | failed: {s['error']} | | | |")
            continue
        lines.append(f"| {tool.name} | {s['wall']:.2f} | {s['wall'] / base:.2f} | {s['cpu']:.1f} "
                     f"| {s['maxrss_mib']:,.0f} |")
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    rest.stop()
    rest.cleanup()
    text = (
        "## Lake tables (`just bench-lake`)\n\n" + describe_machine(info, command)
        + f"- lineitem ({rows:,} rows) into a DuckLake table whose catalog is a database of the "
        "same cluster, a Delta table on the local disk, and an Iceberg table of the SQL catalog "
        "in a database of the same cluster (and of a REST catalog, Rustberg on this machine, its "
        "warehouse on the same disk), replacing its rows each round "
        f"(one snapshot, one version); medians of {args.reps} "
        "interleaved rounds. `x one file`: wall time over the plain one-file export's.\n\n"
        "| tool | s | x one file | client CPU s | peak RSS MiB |\n"
        "|---|--:|--:|--:|--:|\n" + "\n".join(lines) + "\n"
    )
    print()
    print(text)
    write_section("lake", text)


def layout_suite(args, command):
    """lineitem written laid out for readers: Hive-style partitions by day (thousands of
    values) against the one-file export, DuckDB's own partitioned COPY in the same rounds, and
    the cost of bloom filters; each tool's output a directory (or a file), removed after it."""
    rows = args.rows
    day = ["--files-by", "day(l_shipdate)"]

    def pg(*extra, one_file=False):
        return lambda s, q, t, out: [PGARROW, "export", "--url", s.url, "--table", t, *extra,
                                     *(["-o", out + ".parquet"] if one_file else ["--output-dir", out])]

    tools = [
        Tool("pgarrow --to parquet (one file)", "dataset", "pgarrow", pg(one_file=True)),
        Tool("pgarrow --files-by day(l_shipdate)", "dataset", "pgarrow", pg(*day)),
        Tool("pgarrow --files-by day(l_shipdate) --memory-limit 256MiB", "dataset", "pgarrow",
             pg(*day, "--memory-limit", "256MiB")),
        Tool("pgarrow --files-by month(l_shipdate)", "dataset", "pgarrow",
             pg("--files-by", "month(l_shipdate)")),
        Tool("pgarrow --max-file-size 16MiB", "dataset", "pgarrow", pg("--max-file-size", "16MiB")),
        Tool("pgarrow --to parquet --bloom-filter l_orderkey --bloom-filter l_comment", "dataset",
             "pgarrow", pg("--bloom-filter", "l_orderkey", "--bloom-filter", "l_comment", one_file=True)),
        Tool("DuckDB postgres ext COPY ... PARTITION_BY (day)", "dataset", "python",
             peer_argv("duckdb-partitioned"), needs="duckdb-partitioned"),
    ]
    if args.tools:
        tools = [t for t in tools if t == tools[0] or any(w in t.name for w in args.tools)]
    check_tools(tools)

    def run(tool, _):
        return run_lineitem_tool(tool, server, rows, "layout-")

    with Server(rows, 0) as server:
        info = machine_info(server)
        runs = interleaved(tools, args.reps, run)
    results = {name: summarize(rs) for name, rs in runs.items()}
    base = results[tools[0].name].get("wall")
    lines = []
    for tool in tools:
        s = results.get(tool.name, {"error": tool.missing})
        if "error" in s:
            lines.append(f"| {tool.name} | failed: {s['error']} | | | | | |")
            continue
        files = runs[tool.name][0].get("files")
        files = f"{files:,}" if isinstance(files, int) else ""
        size = f"{s['output_bytes'] / 2**20:,.0f}" if s.get("output_bytes") else ""
        lines.append(f"| {tool.name} | {s['wall']:.2f} | {s['wall'] / base:.2f} | {s['cpu']:.1f} "
                     f"| {s['maxrss_mib']:,.0f} | {files} | {size} |")
    text = (
        "## Layout (`just bench-layout`)\n\n" + describe_machine(info, command)
        + f"- lineitem ({rows:,} rows, about 2,500 distinct `l_shipdate` days); medians of "
        f"{args.reps} interleaved rounds. `x one file`: wall time over the one-file export's.\n\n"
        "| tool | s | x one file | client CPU s | peak RSS MiB | files | MiB written |\n"
        "|---|--:|--:|--:|--:|--:|--:|\n" + "\n".join(lines) + "\n"
    )
    print()
    print(text)
    write_section("layout", text)


def run_load_tool(tool, server, inputs, expected_rows, compare):
    """One load by `tool` into a fresh, empty LOAD_TARGET: a dict of measurements, or with
    "error". `compare`: also check the loaded rows against lineitem's (EXCEPT ALL)."""
    # Not timed: a new empty table, and no checkpoint left over from the previous run.
    server.psql(f"DROP TABLE IF EXISTS {LOAD_TARGET}",
                f"CREATE TABLE {LOAD_TARGET} (LIKE lineitem)", "CHECKPOINT")
    r, res, reported = measure(tool, tool.argv(server, inputs, LOAD_TARGET))
    if "error" in res:
        return res
    if tool.kind in ("pgarrow", "pgarrow-copy"):
        res["stderr"] = r["stderr"].strip()
        m = re.search(r"(?:loaded|copied) ([\d,]+) rows", r["stderr"])
        reported = int(m.group(1).replace(",", "")) if m else None
    rows = int(server.psql(f"SELECT count(*) FROM {LOAD_TARGET}"))
    res["rows"] = rows
    if rows != expected_rows:
        res["error"] = f"{rows} rows in {LOAD_TARGET}, expected {expected_rows}"
    elif reported is not None and reported != rows:
        res["error"] = f"reported {reported} rows but {LOAD_TARGET} has {rows}"
    elif compare:
        differ = int(server.psql(
            f"SELECT count(*) FROM (SELECT * FROM lineitem EXCEPT ALL SELECT * FROM {LOAD_TARGET}) d"))
        if differ:
            res["error"] = f"{differ:,} rows of lineitem missing or different in {LOAD_TARGET}"
    return res


def fmt_load_table(title, results, tools, limit_wall, copy_bytes, rows):
    head = (
        "| tool | input | s (median) | min-max s | x limit | client CPU s | rows/s "
        "| MB/s of COPY | peak RSS MiB | process s | runs |\n"
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
    )
    lines = []
    for tool in tools:
        s = results.get(tool.name)
        if tool.missing or s is None:
            lines.append(f"| {tool.name} | {tool.output} | {tool.missing or 'not run'} |" + " |" * 8)
            continue
        if "error" in s:
            lines.append(f"| {tool.name} | {tool.output} | failed: {s['error']} |" + " |" * 8)
            continue
        ratio = f"{s['wall'] / limit_wall:.2f}" if limit_wall else "-"
        lines.append(
            f"| {tool.name} | {tool.output} | {s['wall']:.2f} | {s['wall_min']:.2f}-{s['wall_max']:.2f} "
            f"| **{ratio}** | {s['cpu']:.2f} | {rows / s['wall']:,.0f} "
            f"| {copy_bytes / s['wall'] / 1e6:,.0f} | {s['maxrss_mib']:,.0f} | {s['process_wall']:.2f} "
            f"| {s['n']}{' (+%d failed)' % s['failed_runs'] if s['failed_runs'] else ''} |"
        )
    return f"### {title}\n\n" + head + "\n".join(lines) + "\n"


def load_suite(args, command):
    tools = chosen_tools(args, LOAD_TOOLS)
    rows = args.rows
    parquet = os.path.join(DATA, "lineitem.parquet")
    with Server(rows, 0) as server:
        info = machine_info(server)
        server_file = os.path.join(server.info["data_dir"], "pgarrow-bench-lineitem.bin")
        inputs = {"parquet": parquet, "server_file": server_file}
        # Prepared once, not timed: the Parquet file (pgarrow's defaults: zstd) and the server's
        # own binary COPY file, written and read back by the server (the superuser may).
        export = [PGARROW, "export", "--url", server.url, "--table", "lineitem", "-o", parquet]
        print(f"== {shlex.join(export)}", flush=True)
        r = run_measured(export, stdout_path=os.devnull)
        if r["rc"] != 0:
            sys.exit(f"pgarrow export failed: {last_line(r['stderr'])}")
        file_rows = parquet_rows(parquet)
        if file_rows not in (None, rows):
            sys.exit(f"{parquet} has {file_rows} rows, expected {rows}")
        server.psql(f"COPY lineitem TO '{server_file}' (FORMAT binary)")
        copy_bytes = os.path.getsize(server_file)
        parquet_bytes = os.path.getsize(parquet)
        print(f"== lineitem: {rows:,} rows, {copy_bytes:,} bytes of binary COPY ({server_file}), "
              f"{parquet_bytes:,} bytes of Parquet; {args.reps} rounds of {len(tools)} tools", flush=True)
        runs = interleaved(tools, args.reps, lambda tool, first: run_load_tool(
            tool, server, inputs, rows, compare=first))
        # One more run of each pgarrow tool with --stats (where its time goes), not in the table.
        stats = []
        for tool in tools:
            if tool.kind not in ("pgarrow", "pgarrow-copy") or tool.missing:
                continue
            with_stats = Tool(tool.name, tool.output, tool.kind,
                              lambda s, inputs, target, t=tool: t.argv(s, inputs, target) + ["--stats"])
            r = run_load_tool(with_stats, server, inputs, rows, compare=False)
            out = r.get("error") or r.get("stderr") or "(no output)"
            stats.append((tool.name, f"{r['wall']:.2f}", out))
            print(f"   {tool.name} --stats ({r['wall']:.2f} s): {out}", flush=True)
        server.psql(f"DROP TABLE IF EXISTS {LOAD_TARGET}")
        if os.path.exists(server_file):
            os.remove(server_file)
    results = {name: summarize(rs) for name, rs in runs.items()}
    limit_wall = results.get(tools[0].name, {}).get("wall")
    from_file = [t for t in tools if t.kind != "pgarrow-copy" and t.kind != "pipe"]
    pg_to_pg = [tools[0]] + [t for t in tools if t.kind in ("pgarrow-copy", "pipe")]
    tables = [fmt_load_table(
        f"Parquet -> PostgreSQL: lineitem, {rows:,} rows, Parquet file {parquet_bytes / 2**20:,.1f} MiB, "
        f"{copy_bytes / 1e6:,.1f} MB of binary COPY ({copy_bytes / rows:.0f} bytes/row)",
        results, from_file, limit_wall, copy_bytes, rows)]
    if len(pg_to_pg) > 1:
        tables.append(fmt_load_table(
            "PostgreSQL -> PostgreSQL: lineitem into lineitem_load on the same server",
            results, pg_to_pg, limit_wall, copy_bytes, rows))
    with open(os.path.join(DATA, "e2e-load.json"), "w") as f:
        json.dump({"rows": rows, "copy_bytes": copy_bytes, "parquet_bytes": parquet_bytes,
                   "runs": runs}, f, indent=1)
    text = "## Loading (`just bench-load`)\n\n" + describe_machine(info, command) + (
        f"- Each run loads all {rows:,} rows into a new empty `{LOAD_TARGET} (LIKE lineitem)` "
        "(no indexes; dropped, created and CHECKPOINTed before the run, not timed), in one "
        "transaction, and its rows are counted after it (and compared with lineitem's on each "
        "tool's first run). Medians of the runs; tools interleaved in each round. `x limit`: wall "
        "time over the limit's (the server reading the binary COPY file it wrote itself, no client "
        "work). The Parquet file was written by `pgarrow export --table lineitem` (zstd); the "
        "Python peers read it with pyarrow inside their timed part, as `pgarrow import` does. "
        "`client CPU s`: user+system CPU of the client process, all threads (for the Python peers, "
        "in-process from opening the file to the commit); the server's work is not in it. `MB/s of "
        "COPY`: the binary COPY size of the table over the wall time. `peak RSS`: maxrss of the "
        "client process (the largest run). `process s`: the whole client process, including the "
        "Python interpreter's start and imports.\n\n"
    ) + "\n".join(tables)
    for name, wall, out in stats:
        text += (f"\nOne more `{name}` run with `--stats` (after the rounds, not in the table; "
                 f"{wall} s):\n\n" + "\n".join("    " + l for l in out.splitlines()) + "\n")
    print()
    print(text)
    write_section(args.section or "load", section_heading(args, text))


class Moto:
    """moto's S3 server from benches/venv on a free port of 127.0.0.1, ready when it says it
    runs; one bucket."""

    BUCKET = "pgarrow-bench"

    def __enter__(self):
        self.proc = subprocess.Popen(
            [VENV_PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
        seen = []
        for line in self.proc.stdout:
            seen.append(line)
            m = re.search(r"Running on (http://127\.0\.0\.1:\d+)", line)
            if m:
                self.endpoint = m.group(1)
                break
        else:
            sys.exit("moto's server did not start:\n" + "".join(seen))
        # Its log is not read after this: drain it so that the server never blocks on it.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        req = urllib.request.Request(f"{self.endpoint}/{self.BUCKET}", method="PUT")
        urllib.request.urlopen(req, timeout=30).close()
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def options(self):
        opts = {"aws_endpoint": self.endpoint, "aws_allow_http": "true", "aws_region": "us-east-1",
                "aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
        return [f for k, v in opts.items() for f in ("--storage-option", f"{k}={v}")]


def object_store_suite(args, command):
    """Issue #28: lineitem to Parquet on the local disk vs to the S3 emulator, one connection
    and two, and import from each; interleaved rounds, one run."""
    rows = args.rows
    local = os.path.join(DATA, "objstore-lineitem.parquet")
    if not os.path.exists(VENV_PY):
        sys.exit("benches/venv is missing: run `just bench-setup`")
    with Server(rows, 0) as server, Moto() as s3:
        info = machine_info(server)
        url = f"s3://{Moto.BUCKET}/lineitem.parquet"
        base = [PGARROW, "export", "--url", server.url, "--table", "lineitem", "--quiet"]
        load = [PGARROW, "import", "--url", server.url, "--into", LOAD_TARGET, "--quiet"]

        def reset_target():
            server.psql(f"DROP TABLE IF EXISTS {LOAD_TARGET}; CREATE TABLE {LOAD_TARGET} (LIKE lineitem); CHECKPOINT")

        cases = [
            ("export, 1 connection, local file", base + ["-o", local], None),
            ("export, 1 connection, S3 emulator", base + ["-o", url] + s3.options(), None),
            ("export, --partitions 2, local file", base + ["--partitions", "2", "-o", local], None),
            ("export, --partitions 2, S3 emulator", base + ["--partitions", "2", "-o", url] + s3.options(), None),
            ("import, local file", load + [local], reset_target),
            ("import, S3 emulator", load + [url] + s3.options(), reset_target),
        ]
        tools = [Tool(name, "parquet", "pgarrow", lambda *_: argv) for name, argv, _ in cases]
        setup = {name: before for name, _, before in cases}
        argvs = {name: argv for name, argv, _ in cases}

        def run(tool, first):
            if setup[tool.name]:
                setup[tool.name]()
            r = run_measured(argvs[tool.name], stdout_path=os.devnull)
            if r["rc"] != 0:
                return {"error": last_line(r["stderr"]), **r}
            r["process_wall"] = r["wall"]
            return r

        print(f"== lineitem: {rows:,} rows; {args.reps} rounds of {len(tools)} cases", flush=True)
        runs = interleaved(tools, args.reps, run)
        server.psql(f"DROP TABLE IF EXISTS {LOAD_TARGET}")
    results = {name: summarize(rs) for name, rs in runs.items()}
    lines = []
    for i in range(0, len(cases), 2):
        (here, _, _), (there, _, _) = cases[i], cases[i + 1]
        a, b = results[here], results[there]
        if "error" in a or "error" in b:
            lines.append(f"| {there} | failed: {a.get('error') or b.get('error')} | | | |")
            continue
        lines.append(f"| {here} | {a['wall']:.2f} | | {a['cpu']:.2f} | {a['maxrss_mib']:,.0f} |")
        lines.append(f"| {there} | {b['wall']:.2f} | **{b['wall'] / a['wall']:.2f}** | {b['cpu']:.2f} | {b['maxrss_mib']:,.0f} |")
    if os.path.exists(local):
        os.remove(local)
    text = "## Object stores (`just bench-s3`)\n\n" + describe_machine(info, command) + (
        f"- lineitem, {rows:,} rows, to Parquet (zstd) on the local disk and to moto's S3 server "
        "on 127.0.0.1 (in-memory, HTTP), and `pgarrow import` from each into an empty table; "
        "medians of the rounds, cases interleaved. `x local`: wall time over the same case's on "
        "the local disk (the target: at most 1.15). Parts of 16 MiB, at most 4 in flight.\n\n"
        "| case | s | x local | client CPU s | peak RSS MiB |\n|---|--:|--:|--:|--:|\n"
    ) + "\n".join(lines) + "\n"
    print()
    print(text)
    write_section("object-store", text)


def main():
    global RESULTS, PGARROW
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=6_000_000,
                   help="lineitem rows (default 6,000,000; 2,000,000 with --load)")
    p.add_argument("--wide-rows", type=int, default=2_000_000, help="wide rows (default 2,000,000; 0: skip)")
    p.add_argument("--reps", type=int, default=3, help="rounds (default 3; the median is reported)")
    p.add_argument("--tools", nargs="*", help="only tools whose name contains one of these words")
    p.add_argument("--section", help="the section of RESULTS.md to write (default: the suite's)")
    p.add_argument("--heading", help="the heading of that section (default: the suite's)")
    p.add_argument("--datasets", nargs="*", help="only these tables (lineitem, wide)")
    p.add_argument("--memory", action="store_true", help="the memory suite instead")
    p.add_argument("--layout", action="store_true",
                   help="the layout suite instead: lineitem (2,000,000 rows unless --rows) in "
                        "Hive-style day partitions, rolled files and bloom filters, against the "
                        "one-file export and DuckDB's partitioned COPY")
    p.add_argument("--lake", action="store_true",
                   help="the lake suite instead: lineitem (2,000,000 rows unless --rows) into a "
                        "DuckLake table, against the one-file export and DuckDB's own write")
    p.add_argument("--load", action="store_true",
                   help="the loading suite instead: Parquet -> PostgreSQL (and PostgreSQL -> "
                        "PostgreSQL) against the server reading its own COPY file")
    p.add_argument("--object-store", action="store_true",
                   help="the object-store suite instead: lineitem (2,000,000 rows unless --rows) "
                        "to Parquet on the local disk vs to moto's S3 server, and import from each")
    p.add_argument("--memory-rows", type=int, default=50_000_000, help="largest export of --memory")
    p.add_argument("--results", default=RESULTS, help="the Markdown file to update (default benches/RESULTS.md)")
    p.add_argument("--pgarrow", metavar="BIN",
                   help="the pgarrow binary to measure (default target/release/pgarrow)")
    p.add_argument("--baseline", metavar="BIN",
                   help="also run the pgarrow cases with this other pgarrow binary, interleaved in "
                        "the same rounds (labelled [baseline]): a change's cost in one run")
    args = p.parse_args()
    if args.pgarrow:
        PGARROW = os.path.abspath(args.pgarrow)
    if args.baseline:
        TOOLS.extend(baseline_tools(os.path.abspath(args.baseline)))
        LOAD_TOOLS.extend(baseline_load_tools(os.path.abspath(args.baseline)))
    RESULTS = os.path.abspath(args.results)
    os.makedirs(DATA, exist_ok=True)
    for path in (PGARROW, SERVE):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run `just bench` (it builds it), or cargo build --release")
    command = "python benches/e2e.py " + shlex.join(sys.argv[1:])
    if args.memory:
        if args.reps == p.get_default("reps"):
            args.reps = 1
        memory_suite(args, command)
    elif args.load:
        if args.rows == p.get_default("rows"):
            args.rows = 2_000_000
        load_suite(args, command)
    elif args.layout:
        if args.rows == p.get_default("rows"):
            args.rows = 2_000_000
        layout_suite(args, command)
    elif args.lake:
        if args.rows == p.get_default("rows"):
            args.rows = 2_000_000
        lake_suite(args, command)
    elif args.object_store:
        if args.rows == p.get_default("rows"):
            args.rows = 2_000_000
        object_store_suite(args, command)
    else:
        suite(args, command)


if __name__ == "__main__":
    main()
