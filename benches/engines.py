#!/usr/bin/env python3
"""The engines benchmark (issue #29, `just bench-engines`): pgarrow's readers inside Spark, Ray
and Dask against each engine's own PostgreSQL reader, in one run, on lineitem (--rows, 2M).

For each engine, two partitions each, two actions:
- "scan": every column of every row reaches the engine (Spark: count and a sum of hash(*)
  over all columns, so that no reader can skip columns; Ray: rows counted inside the tasks of
  a map_batches; Dask: map_partitions(len).sum());
- "parquet": the result written as Parquet into a fresh local directory.

The readers:
- Spark 4 (local[2]): `format("pgarrow")` vs Spark's JDBC source with the PostgreSQL JDBC
  driver from the system's packages (/usr/share/java/postgresql.jar), numPartitions=2 on
  l_orderkey between its MIN and MAX, fetchsize 10000.
- Ray (ray.init(num_cpus=2)): `pgarrow.ray.read_postgres` vs `ray.data.read_sql` with a
  psycopg connection factory, shard_keys=["l_orderkey"], override_num_blocks=2.
- Dask (distributed.LocalCluster: two worker processes, one thread each):
  `pgarrow.dask.read_postgres` vs `dd.read_sql_table("lineitem", index_col="l_orderkey",
  npartitions=2)` through SQLAlchemy and psycopg.

Every (engine, reader, action) runs in its own process (`--worker`), --reps rounds
interleaved, median reported. The engine starts (JVM, Ray, the Dask cluster) before the clock;
the time is from the read to the end of the action (Spark's Python workers, which its Python
data sources run in, are started before the clock for both readers). Memory is the peak of the summed RSS of
the worker's whole process tree (driver, JVM, Python workers, raylet, dask workers), sampled
every 50 ms. The server is the scratch cluster of e2e.py (`serve`). Results go into
benches/RESULTS.md (section "engines").
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  (the server, the results file)

JDBC_JAR = "/usr/share/java/postgresql.jar"
CASES = [
    ("Spark", "pgarrow"),
    ("Spark", "JDBC source"),
    ("Ray", "pgarrow"),
    ("Ray", "read_sql"),
    ("Dask", "pgarrow"),
    ("Dask", "read_sql_table"),
]
ACTIONS = ("scan", "parquet")


# --- the worker: one engine, one reader, one action, timed ------------------------------------


def worker(engine, reader, action, url, out_dir):
    """Runs in its own process; prints {"seconds": ..., "rows": ...}."""
    if engine == "Spark":
        result = spark_case(reader, action, url, out_dir)
    elif engine == "Ray":
        result = ray_case(reader, action, url, out_dir)
    else:
        result = dask_case(reader, action, url, out_dir)
    print(json.dumps(result), flush=True)


def timed(fn):
    start = time.perf_counter()
    rows = fn()
    return {"seconds": time.perf_counter() - start, "rows": rows}


def jdbc_parts(url):
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(url)
    with psycopg.connect(url) as c:
        low, high = c.execute("SELECT min(l_orderkey), max(l_orderkey) FROM lineitem").fetchone()
    jdbc = f"jdbc:postgresql://{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info['dbname']}"
    return jdbc, info, low, high


def spark_case(reader, action, url, out_dir):
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
    )
    if reader == "JDBC source":
        builder = builder.config("spark.jars", JDBC_JAR)
    spark = builder.getOrCreate()
    # The JVM and Spark's Python workers (which a Python data source runs in) up before the
    # clock, for both readers: they are the engine's start, paid once per session.
    spark.range(4, numPartitions=2).mapInArrow(lambda batches: batches, "id long").count()
    if reader == "pgarrow":
        import pgarrow.spark

        pgarrow.spark.register(spark)

        def load():
            return (spark.read.format("pgarrow").option("url", url).option("table", "lineitem")
                    .option("partitions", 2).load())
    else:
        jdbc, info, low, high = jdbc_parts(url)

        def load():
            return spark.read.jdbc(
                jdbc, "lineitem", column="l_orderkey", lowerBound=low, upperBound=high + 1,
                numPartitions=2,
                properties={"user": info.get("user", "postgres"), "password": info.get("password", ""),
                            "driver": "org.postgresql.Driver", "fetchsize": "10000"})

    def run():
        df = load()
        if action == "scan":
            row = df.agg(F.count(F.lit(1)), F.sum(F.hash(*df.columns))).collect()[0]
            return row[0]
        df.write.mode("overwrite").parquet(os.path.join(out_dir, "spark"))
        return spark.read.parquet(os.path.join(out_dir, "spark")).count()

    try:
        return timed(run)
    finally:
        spark.stop()


def ray_case(reader, action, url, out_dir):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.data.range(2, override_num_blocks=2).materialize()  # workers up before the clock

    def load():
        if reader == "pgarrow":
            import pgarrow.ray

            return pgarrow.ray.read_postgres(url, table="lineitem", partitions=2)
        import psycopg

        try:
            return ray.data.read_sql("SELECT * FROM lineitem", lambda: psycopg.connect(url),
                                     shard_keys=["l_orderkey"], override_num_blocks=2)
        except ValueError as e:
            # Its sharding probe (MOD(ABS(MD5(key)), n)) fails on PostgreSQL: Ray's own advice
            # is one block. Reported in the results.
            print(f"read_sql: {e}: one block", file=sys.stderr)
            return ray.data.read_sql("SELECT * FROM lineitem", lambda: psycopg.connect(url),
                                     override_num_blocks=1)

    def run():
        ds = load()
        if action == "scan":
            counts = ds.map_batches(lambda t: {"n": [t.num_rows]}, batch_format="pyarrow",
                                    batch_size=None)
            return counts.sum("n")
        ds.write_parquet(os.path.join(out_dir, "ray"))
        import pyarrow.parquet as pq

        return pq.read_table(os.path.join(out_dir, "ray"), columns=[]).num_rows

    try:
        return timed(run)
    finally:
        ray.shutdown()


def dask_case(reader, action, url, out_dir):
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    client.submit(sum, [1, 2]).result()  # workers up before the clock

    def load():
        if reader == "pgarrow":
            import pgarrow.dask

            return pgarrow.dask.read_postgres(url, "lineitem", partitions=2)
        sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        return dd.read_sql_table("lineitem", sa_url, index_col="l_orderkey", npartitions=2)

    def run():
        df = load()
        if action == "scan":
            return int(df.map_partitions(len).sum().compute())
        df.to_parquet(os.path.join(out_dir, "dask"))
        import pyarrow.parquet as pq

        return pq.read_table(os.path.join(out_dir, "dask"), columns=[]).num_rows

    try:
        return timed(run)
    finally:
        client.close()
        cluster.close()


# --- the driver: rounds, the process tree's memory, the table ---------------------------------


def tree_rss(root):
    """The summed RSS (bytes) of `root` and every process below it."""
    children = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(pid))
        except (OSError, IndexError):
            continue
    total, stack, page = 0, [root], os.sysconf("SC_PAGE_SIZE")
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page
        except OSError:
            pass
        stack.extend(children.get(pid, []))
    return total


def measure(python, engine, reader, action, url):
    with tempfile.TemporaryDirectory(prefix="pgarrow-engines-") as out_dir:
        argv = [python, os.path.abspath(__file__), "--worker", engine, reader, action, url, out_dir]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], tree_rss(proc.pid))
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, err = proc.communicate()
        done.set()
        sampler.join()
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": e2e.last_line(err or out)}
    result = json.loads(lines[-1])
    result["peak_mib"] = peak[0] / 2**20
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=2_000_000, help="lineitem rows (default 2,000,000)")
    p.add_argument("--reps", type=int, default=3, help="rounds (default 3; the median is reported)")
    p.add_argument("--python", default=e2e.VENV_PY,
                   help="the Python with pgarrow and the engines (default benches/venv)")
    p.add_argument("--engines", nargs="*", help="only these engines (Spark, Ray, Dask)")
    p.add_argument("--results", default=e2e.RESULTS, help="the Markdown file to update")
    p.add_argument("--worker", nargs=5, metavar=("ENGINE", "READER", "ACTION", "URL", "DIR"),
                   help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    e2e.RESULTS = os.path.abspath(args.results)
    if not os.path.exists(e2e.SERVE):
        sys.exit(f"{e2e.SERVE} is missing: run `just bench-engines` (it builds it)")
    cases = [c for c in CASES if not args.engines or c[0].lower() in [e.lower() for e in args.engines]]
    if any(r == "JDBC source" for _, r in cases) and not os.path.exists(JDBC_JAR):
        sys.exit(f"{JDBC_JAR} is missing: apt-get install libpostgresql-jdbc-java (benches/setup.sh)")
    runs = {(e, r, a): [] for e, r in cases for a in ACTIONS}
    with e2e.Server(args.rows, 0) as server:
        copy_bytes = e2e.copy_stream_bytes(server, "SELECT * FROM lineitem")
        raw = []
        for rep in range(args.reps):
            raw.append(e2e.run_measured(server.psql_args() + [
                "-c", "COPY (SELECT * FROM lineitem) TO STDOUT (FORMAT binary)"], os.devnull)["wall"])
            for e, r in cases:
                for a in ACTIONS:
                    result = measure(args.python, e, r, a, server.url)
                    runs[(e, r, a)].append(result)
                    shown = f"{result['seconds']:.2f} s, {result['peak_mib']:.0f} MiB" if "seconds" in result else result["error"]
                    print(f"   round {rep + 1}: {e} {r} {a}: {shown}", flush=True)
    text = table(args, runs, cases, statistics.median(raw), copy_bytes)
    print(text)
    e2e.write_section("engines", text)


def table(args, runs, cases, raw, copy_bytes):
    def med(key, field):
        ok = [x[field] for x in runs[key] if field in x]
        return statistics.median(ok) if ok else None

    lines = [
        f"### Engines: lineitem, {args.rows:,} rows, two partitions, median of {args.reps}",
        "",
        f"`python benches/engines.py {shlex.join(sys.argv[1:])}`; raw binary COPY of the whole "
        f"table by one psql (the server's limit for one backend): {raw:.2f} s, "
        f"{copy_bytes / 2**20:.0f} MiB.",
        "",
        "| engine | reader | scan s | parquet s | peak MiB (scan) | peak MiB (parquet) | rows | peer / pgarrow (scan, parquet) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for e, r in cases:
        scan, parquet = med((e, r, "scan"), "seconds"), med((e, r, "parquet"), "seconds")
        ratio = ""
        if r != "pgarrow":
            ours = (med((e, "pgarrow", "scan"), "seconds"), med((e, "pgarrow", "parquet"), "seconds"))
            if None not in (scan, parquet) and None not in ours:
                ratio = f"{scan / ours[0]:.2f}x, {parquet / ours[1]:.2f}x"
        errors = {x["error"] for a in ACTIONS for x in runs[(e, r, a)] if "error" in x}
        rows = {x.get("rows") for a in ACTIONS for x in runs[(e, r, a)] if "rows" in x}

        def fmt(v, spec):
            return "failed" if v is None else format(v, spec)

        lines.append(
            f"| {e} | {r} | {fmt(scan, '.2f')} | {fmt(parquet, '.2f')} | "
            f"{fmt(med((e, r, 'scan'), 'peak_mib'), '.0f')} | {fmt(med((e, r, 'parquet'), 'peak_mib'), '.0f')} | "
            f"{', '.join(str(x) for x in sorted(rows)) or '-'} | {ratio}"
            + (f" (errors: {'; '.join(sorted(errors))})" if errors else "") + " |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
