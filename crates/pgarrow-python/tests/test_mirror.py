"""`pgarrow mirror`: DuckLake, Delta and Iceberg tables kept equal to tables of a logical
cluster (PGARROW_TEST_LOGICAL_URL), read back by the formats' own readers: DuckDB 1.5.5's
ducklake, delta and iceberg extensions, deltalake and polars, pyiceberg, and pgarrow's import.
A workload of inserts, updates (leaving TOASTed values unchanged), deletes, key changes and a
truncate runs while the mirror follows it; each commit, read at its snapshot or version, equals
the source as of the commit's WAL position. Processes killed with SIGKILL at random moments and
connections cut by a proxy the test controls lose and double nothing; schema changes follow or
stop the mirror with what to do; an invalidated slot says so."""

import datetime
import functools
import json
import os
import pathlib
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest


def pgarrow_bin() -> str:
    path = os.environ.get("PGARROW_BIN")
    if not path:
        pytest.fail("PGARROW_BIN is not set: run the suite through `cargo test -p pgarrow-python`")
    return path


@pytest.fixture
def source(logical_url):
    """The source: the logical cluster's database."""
    return logical_url


@pytest.fixture
def lake(url, conn, tmp_path):
    """A new catalog database (on the main test server) and data path: (catalog URL, data)."""
    name = f"mlake_{uuid.uuid4().hex[:12]}"
    conn.execute(f"CREATE DATABASE {name}")
    catalog = urlunparse(urlparse(url)._replace(path=f"/{name}"))
    yield catalog, tmp_path / "lake"
    conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def slot(source):
    """A slot name of the test's own, dropped (with its publication) afterwards."""
    name = f"m_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(source, autocommit=True) as c:
        c.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                  "WHERE slot_name = %s AND NOT active", (name,))
        c.execute(f"DROP PUBLICATION IF EXISTS {name}")


def run(url, sql, params=None):
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(sql, params)


def rows_of(url, table):
    with psycopg.connect(url, autocommit=True) as c:
        return c.execute(f"SELECT id, name, big, amount FROM {table} ORDER BY id").fetchall()


def lake_flags(fmt, lake, table):
    """The flags naming `table`'s lake table of format `fmt`: in the DuckLake or Iceberg catalog
    database of `lake` (files under its data directory), or a Delta table under it."""
    catalog, data = lake
    if fmt == "delta":
        return ["--delta", str(data / "delta" / table)]
    if fmt == "iceberg":
        return ["--iceberg", catalog, "--warehouse", str(data)]
    return ["--ducklake", catalog, "--data-path", str(data)]


def mirror_args(source, lake, slot, table, *more, fmt="ducklake"):
    return [pgarrow_bin(), "mirror", "-d", source, "-t", table, "--slot", slot,
            *lake_flags(fmt, lake, table), "--json", *more]


def mirror(source, lake, slot, table, *more, check=True, fmt="ducklake"):
    out = subprocess.run(mirror_args(source, lake, slot, table, "--catch-up", *more, fmt=fmt),
                         capture_output=True, text=True, timeout=300)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def events(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def lake_rows(duckdb_lake, lake, table, versions=None):
    """The lake table's rows (by id), now or at each snapshot of `versions`: {version: rows}."""
    catalog, data = lake
    if versions is None:
        got = duckdb_lake(catalog, f"SELECT id, name, big, amount FROM lake.main.{table} ORDER BY id")
        return [tuple(r) for r in got]
    union = " UNION ALL ".join(
        f"SELECT {v} AS v, id, name, big, amount FROM lake.main.{table} AT (VERSION => {v})"
        for v in versions
    )
    got = duckdb_lake(catalog, f"SELECT * FROM ({union}) ORDER BY v, id")
    out = {v: [] for v in versions}
    for r in got:
        out[r[0]].append(tuple(r[1:]))
    return out


def make_table(source, table, rows=300):
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (id bigint PRIMARY KEY, name text, big text, amount numeric(12,2));
        ALTER TABLE {table} ALTER COLUMN big SET STORAGE EXTERNAL;
        INSERT INTO {table} SELECT g, 'n' || g, repeat(md5(g::text), 200), g * 1.25
          FROM generate_series(1, {rows}) g;
        INSERT INTO {table} VALUES (0, 'clock', 'clock', 0)""")


class Workload:
    """Source transactions one after another, each a random mix that ends by setting the
    clock row (id 0) to its number, recording the table's rows after each: a lake table read at
    any commit says by its clock which transaction it is at, and so what it must hold."""

    def __init__(self, source, table, seed):
        self.c = psycopg.connect(source, autocommit=True)
        self.table = table
        self.random = random.Random(seed)
        self.next_id = 100_000
        self.history = [rows_of_conn(self.c, table)]

    def lsn(self):
        return int_lsn(self.c.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0])

    def step(self, truncate=False):
        t, r = self.table, self.random
        with self.c.transaction():
            if truncate:
                self.c.execute(f"TRUNCATE {t}")
                self.c.execute(f"INSERT INTO {t} SELECT g, 't' || g, repeat('t', 3000) || g, g "
                               "FROM generate_series(0, 40) g")
            for _ in range(r.randint(1, 6)):
                kind = r.choice(["insert", "update_small", "update_big", "delete", "key", "reinsert"])
                if kind == "insert":
                    n = r.randint(1, 20)
                    self.c.execute(f"INSERT INTO {t} SELECT g, 'i' || g, repeat('b', 2500) || g, g / 7.0 "
                                   "FROM generate_series(%s, %s) g", (self.next_id, self.next_id + n - 1))
                    self.next_id += n
                elif kind == "update_small":
                    # big is TOASTed and unchanged: the change does not carry it.
                    self.c.execute(f"UPDATE {t} SET name = name || '+', amount = amount + 1 "
                                   f"WHERE id %% %s = %s", (r.randint(3, 9), r.randint(0, 2)))
                elif kind == "update_big":
                    self.c.execute(f"UPDATE {t} SET big = repeat(md5(random()::text), 150) "
                                   f"WHERE id %% 13 = %s", (r.randint(0, 12),))
                elif kind == "delete":
                    self.c.execute(f"DELETE FROM {t} WHERE id %% %s = %s AND id <> 0",
                                   (r.randint(5, 17), r.randint(0, 4)))
                elif kind == "key":
                    self.c.execute(f"UPDATE {t} SET id = id + 1000000 WHERE id IN "
                                   f"(SELECT id FROM {t} WHERE id > 0 AND id < 1000000 ORDER BY id LIMIT 3)")
                else:
                    self.c.execute(f"DELETE FROM {t} WHERE id = (SELECT min(id) FROM {t} WHERE id > 0)")
                    self.c.execute(f"INSERT INTO {t} VALUES (%s, 'back', 'short', 1)", (self.next_id,))
                    self.next_id += 1
            self.c.execute(f"UPDATE {t} SET amount = %s WHERE id = 0", (len(self.history),))
            # Before the commit record: a checkpoint past it is the end of this transaction or
            # of one after it.
            self.inside = self.lsn()
        self.history.append(rows_of_conn(self.c, t))

    def check(self, rows, what):
        """`rows` (a lake table's, by id) are the source's after the transaction its clock
        names."""
        clock = [r for r in rows if r[0] == 0]
        assert len(clock) == 1, f"{what}: no clock row"
        n = int(clock[0][3])
        assert rows == [tuple(r) for r in self.history[n]], f"{what}: not the source after transaction {n}"
        return n

    def close(self):
        self.c.close()


def rows_of_conn(c, table):
    return c.execute(f"SELECT id, name, big, amount FROM {table} ORDER BY id").fetchall()


def int_lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


FORMATS = ["ducklake", "delta", "iceberg"]


def rows_at(fmt, lake, table, at=None, duckdb_lake=None, columns=("id", "name", "big", "amount")):
    """The lake table's rows (by id) at snapshot or version `at` (now when None), as a reader of
    the format reads them: DuckDB's ducklake extension, deltalake's `scan()`, pyiceberg."""
    if fmt == "delta":
        return delta_rows(lake[1] / "delta" / table, at, columns)
    if fmt == "iceberg":
        return iceberg_rows(lake, table, at, columns)
    assert columns == ("id", "name", "big", "amount")
    return lake_rows(duckdb_lake, lake, table) if at is None else lake_rows(duckdb_lake, lake, table, [at])[at]


def import_back(fmt, lake, source, table):
    """Loads the lake table back into PostgreSQL as `<table>_back` with `pgarrow import` (its
    deletes applied)."""
    named = {
        "ducklake": ["--ducklake", lake[0], "--lake-table", f"main.{table}"],
        "delta": ["--delta", str(lake[1] / "delta" / table)],
        "iceberg": ["--iceberg", lake[0], "--lake-table", f"default.{table}"],
    }[fmt]
    back = subprocess.run(
        [pgarrow_bin(), "import", "-d", source, "--quiet", *named, "--into", f"{table}_back",
         "--create", "--mode", "replace"],
        capture_output=True, text=True)
    assert back.returncode == 0, back.stderr
    assert rows_of(source, f"{table}_back") == rows_of(source, table)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_commit_equals_the_source_at_its_position(source, lake, slot, fmt, duckdb_lake,
                                                       duckdb_delta, duckdb_iceberg):
    table = f"mirror_orders_{fmt}"
    make_table(source, table)
    proc = subprocess.Popen(mirror_args(source, lake, slot, table, "--commit-interval", "0.05", fmt=fmt),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        exported = json.loads(proc.stdout.readline())
        assert exported["event"] == "exported" and exported["rows"] == 301, exported
        work = Workload(source, table, seed=7)
        for i in range(40):
            work.step(truncate=(i == 25))
        target = work.inside
        # Until a checkpoint reaches the end of the workload.
        while True:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            e = json.loads(line)
            seen.append(e)
            if e["event"] == "checkpoint" and int_lsn(e["lsn"]) > target:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        seen += events(out)
    finally:
        if proc.poll() is None:
            proc.kill()
    commits = [e for e in seen if e["event"] == "committed"]
    assert len(commits) >= 2, seen
    assert any(c["truncated"] for c in commits)
    assert sum(c["deleted"] for c in commits) > 0
    # Every commit, read at its snapshot or version, is the source after the transaction its
    # clock names; commits move forward, and the last reaches the last transaction.
    reached = [work.check(rows_at(fmt, lake, table, c["snapshot"], duckdb_lake), f"{fmt} {c['snapshot']}")
               for c in commits]
    assert reached == sorted(reached) and reached[-1] == 40, reached
    want = [tuple(r) for r in rows_of(source, table)]
    assert rows_at(fmt, lake, table, duckdb_lake=duckdb_lake) == want
    # The format's other readers read the same rows, and so does pgarrow's import.
    if fmt == "delta":
        delta_readers_agree(lake[1] / "delta" / table, commits, want, duckdb_delta)
    if fmt == "iceberg":
        loaded = iceberg_table(lake, table)
        summary = loaded.current_snapshot().summary
        assert int(summary["total-position-deletes"]) > 0, summary
        got = duckdb_iceberg(f"SELECT id, name, big, amount FROM iceberg_scan('{loaded.metadata_location}') ORDER BY id")
        assert [tuple(r) for r in got] == want
    import_back(fmt, lake, source, table)
    work.close()


def killed_at_random(argv, rng):
    """Runs `argv` and kills it with SIGKILL after a random number of its output lines
    (commits and checkpoints), or before it said anything; returns what it printed."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed = []
    for _ in range(rng.randint(0, 3)):
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            break
        printed.append(line)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    return "".join(printed) + out


@pytest.mark.parametrize("fmt", FORMATS)
def test_kill_9_at_random_moments_loses_and_doubles_nothing(source, lake, slot, fmt, duckdb_lake):
    table = f"mirror_killed_{fmt}"
    make_table(source, table)
    mirror(source, lake, slot, table, fmt=fmt)
    work = Workload(source, table, seed=11)
    rng = random.Random(3)
    kills = 0
    for round_ in range(24):
        for _ in range(3):
            work.step(truncate=(round_ == 9))
        killed_at_random(mirror_args(source, lake, slot, table, "--commit-changes",
                                     str(rng.randint(5, 80)), "--commit-interval", "0", fmt=fmt),
                         rng)
        kills += 1
    assert kills >= 20
    done = mirror(source, lake, slot, table, fmt=fmt)
    assert work.check(rows_at(fmt, lake, table, duckdb_lake=duckdb_lake), "the end") == len(work.history) - 1
    # Read back into PostgreSQL (its deletes applied), it is the source.
    import_back(fmt, lake, source, table)
    # A run with nothing new commits nothing.
    again = events(mirror(source, lake, slot, table, fmt=fmt).stdout)
    assert not [e for e in again if e["event"] == "committed"], again
    assert done.returncode == 0
    work.close()


class Proxy:
    """A TCP proxy to the source the test controls: `cut()` closes every connection through
    it, in the middle of whatever they carry; while `down`, it closes each new one at once."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.lock = threading.Lock()
        self.open = []
        self.cuts = 0
        self.down = False
        self.refused = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.down:
                self.refused += 1
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            for s in self.open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.cuts += bool(self.open)
            self.open = []

    def close(self):
        self.server.close()
        self.cut()


def test_a_cut_connection_leaves_the_table_at_its_position_and_the_next_run_goes_on(
        source, lake, slot, duckdb_lake):
    table = "mirror_cut"
    make_table(source, table)
    u = urlparse(source)
    proxy = Proxy(u.hostname, u.port)
    through = urlunparse(u._replace(netloc=f"{u.username}@127.0.0.1:{proxy.port}"))
    try:
        mirror(through, lake, slot, table)
        work = Workload(source, table, seed=5)
        failures = 0
        for _ in range(6):
            for _ in range(4):
                work.step()
            # Told not to try again: the cut ends the run.
            proc = subprocess.Popen(mirror_args(through, lake, slot, table, "--commit-changes", "20",
                                                "--commit-interval", "0", "--retry-for", "0"),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # Cut once it said something (a commit), or straight away.
            select.select([proc.stdout], [], [], 30)
            proxy.cut()
            out, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                failures += 1
                assert "connection" in err.lower() or "closed" in err.lower(), err
            # The table is as a commit left it: equal to the source at its position.
            committed = [e for e in events(out) if e["event"] == "committed"]
            if committed:
                last = committed[-1]["snapshot"]
                work.check(lake_rows(duckdb_lake, lake, table, [last])[last], f"snapshot {last}")
        assert proxy.cuts >= 6 and failures >= 1
        mirror(through, lake, slot, table)
        assert lake_rows(duckdb_lake, lake, table) == [tuple(r) for r in rows_of(source, table)]
        work.close()
    finally:
        proxy.close()


def test_a_mirror_tries_again_through_cut_connections_without_exiting_and_ends_equal(
        source, lake, slot, duckdb_lake):
    """--retry-for (on by default): each cut is reported and tried through with a backoff; the
    run starts again from the table's commit and the slot, every change exactly once."""
    table = "mirror_rides"
    make_table(source, table)
    u = urlparse(source)
    proxy = Proxy(u.hostname, u.port)
    through = urlunparse(u._replace(netloc=f"{u.username}@127.0.0.1:{proxy.port}"))
    # The DuckLake catalog through a proxy of its own.
    c = urlparse(lake[0])
    catalog_proxy = Proxy(c.hostname, c.port)
    lake = (urlunparse(c._replace(netloc=f"{c.username}@127.0.0.1:{catalog_proxy.port}")), lake[1])
    proc = None
    try:
        mirror(through, lake, slot, table)
        work = Workload(source, table, seed=11)
        proc = subprocess.Popen(mirror_args(through, lake, slot, table, "--commit-changes", "20",
                                            "--commit-interval", "0", "--retry-for", "120",
                                            "--metrics-listen", "0"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = Lines(proc)
        served = lines.next()
        assert served["event"] == "metrics", served
        cuts = 5

        def steps():
            """Four transactions; then waits for the mirror to have committed the last."""
            for _ in range(3):
                work.step()
            before = work.lsn()
            work.step()
            lines.checkpoint_past(before)

        for _ in range(cuts):
            # Cut once the mirror committed the round: its connections are open.
            steps()
            proxy.cut()
            while (e := lines.next())["event"] != "retrying":
                pass
            assert e["attempt"] >= 1 and 0 < e["wait_s"] <= 30 and e["error"], e
            assert proc.poll() is None, "the mirror exited at a cut"
        # The catalog down while changes come: each commit fails to reach it and is tried
        # again, until it is back.
        catalog_proxy.down = True
        catalog_proxy.cut()
        for _ in range(3):
            work.step()
        while (e := lines.next())["event"] != "retrying":
            pass
        assert proc.poll() is None and catalog_proxy.refused >= 1
        catalog_proxy.down = False
        # The changes after the outages come through the connections made again.
        steps()
        assert proc.poll() is None
        assert metric(scrape(served["address"]), "pgarrow_mirror_retries_total") >= cuts + 1
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        assert proc.returncode == 0, proc.stderr.read()
        while (e := lines.next())["event"] != "done":
            pass
        assert e["stats"]["restarts"] >= cuts + 1, e["stats"]
        assert proxy.cuts >= cuts
        # Every transaction once: the table equals the source, and each snapshot the run
        # committed is one of the source's states.
        assert lake_rows(duckdb_lake, lake, table) == [tuple(r) for r in rows_of(source, table)]
        snapshots = [x["snapshot"] for x in lines.seen if x["event"] == "committed"]
        for snap, rows in lake_rows(duckdb_lake, lake, table, snapshots[-3:]).items():
            work.check(rows, f"snapshot {snap}")
        work.close()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        proxy.close()
        catalog_proxy.close()


def test_a_mirror_tries_through_an_object_store_that_does_not_answer_and_ends_equal(
        source, lake, slot, duckdb_lake, s3):
    """The lake's data path on an object store behind a proxy the test runs: while it refuses
    every connection, each commit's upload fails (the store's own retries cut short) and the
    mirror reports it and tries again, not exiting; once it answers, the changes held come
    through, each once."""
    table = "mirror_store_down"
    make_table(source, table, rows=50)
    bucket = "pgarrow-store-down"
    s3.client().create_bucket(Bucket=bucket)
    e = urlparse(s3.storage_options["aws_endpoint"])
    proxy = Proxy(e.hostname, e.port)
    options = dict(s3.storage_options, aws_endpoint=f"http://127.0.0.1:{proxy.port}",
                   max_retries="1", retry_timeout="2")
    storage = [a for k, v in options.items() for a in ("--storage-option", f"{k}={v}")]
    catalog = lake[0]
    args = [pgarrow_bin(), "mirror", "-d", source, "-t", table, "--slot", slot, "--ducklake", catalog,
            "--data-path", f"s3://{bucket}/lake", *storage, "--json"]
    proc = None
    try:
        ran(args + ["--catch-up"])
        work = Workload(source, table, seed=13)
        proc = subprocess.Popen(args + ["--commit-changes", "20", "--commit-interval", "0",
                                        "--retry-for", "120"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = Lines(proc)

        def steps():
            for _ in range(3):
                work.step()
            before = work.lsn()
            work.step()
            lines.checkpoint_past(before)

        steps()
        proxy.down = True
        proxy.cut()
        for _ in range(3):
            work.step()
        while (e := lines.next())["event"] != "retrying":
            pass
        assert e["error"] and proc.poll() is None and proxy.refused >= 1, e
        proxy.down = False
        steps()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        assert proc.returncode == 0, proc.stderr.read()
        got = duckdb_lake(catalog, f"SELECT id, name, big, amount FROM lake.main.{table} ORDER BY id", s3=s3)
        assert [tuple(r) for r in got] == [tuple(r) for r in rows_of(source, table)]
        work.close()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        proxy.close()


def scrape(address):
    """A mirror's metrics endpoint, read as Prometheus reads it: {sample with labels: value}."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            sample, value = line.rsplit(" ", 1)
            out[sample] = float(value)
    return out


def metric(samples, name, **labels):
    """The one sample of `name` with `labels` (and any slot)."""
    found = [v for k, v in samples.items()
             if k.split("{")[0] == name and all(f'{l}="{v}"' in k for l, v in labels.items())]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def test_the_metrics_endpoint_shows_the_lag_falling_to_zero_once_the_writer_stops(
        source, lake, slot, duckdb_lake):
    table = "mirror_metrics"
    make_table(source, table)
    mirror(source, lake, slot, table)
    proc = subprocess.Popen(mirror_args(source, lake, slot, table, "--commit-interval", "0",
                                        "--metrics-listen", "0"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc)
    try:
        served = lines.next()
        assert served["event"] == "metrics" and served["address"].startswith("127.0.0.1:"), served
        work = Workload(source, table, seed=3)
        for _ in range(12):
            work.step()
        before = work.lsn()
        work.step()
        lines.checkpoint_past(before)
        # While it runs: what it committed, per table too.
        m = scrape(served["address"])
        committed = [e for e in lines.seen if e["event"] == "committed"]
        assert metric(m, "pgarrow_mirror_commits_total") >= len(committed) > 0
        assert metric(m, "pgarrow_mirror_changes_total") >= sum(e["changes"] for e in committed)
        # Labelled as people write the name, not quoted for SQL.
        assert committed[-1]["table"] == f'"public"."{table}"'
        name = f"public.{table}"
        assert metric(m, "pgarrow_mirror_table_lsn", table=name) >= int_lsn(committed[-1]["lsn"])
        assert metric(m, "pgarrow_mirror_table_snapshot", table=name) == committed[-1]["snapshot"]
        assert metric(m, "pgarrow_mirror_source_lsn") >= metric(m, "pgarrow_mirror_confirmed_lsn") >= before
        # The writer stopped: the slot is confirmed up to the server's position, and the lag
        # reads zero, in bytes and seconds.
        deadline = time.monotonic() + 60
        while True:
            m = scrape(served["address"])
            if metric(m, "pgarrow_mirror_lag_bytes") == 0:
                break
            assert time.monotonic() < deadline, m
            time.sleep(0.2)
        assert metric(m, "pgarrow_mirror_lag_seconds") == 0
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        assert proc.returncode == 0, proc.stderr.read()
        work.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lake_rows(duckdb_lake, lake, table) == [tuple(r) for r in rows_of(source, table)]


@pytest.mark.parametrize("fmt", ["ducklake", "delta", "iceberg"])
def test_status_says_where_the_slot_and_each_table_are_without_running_the_mirror(
        source, lake, slot, fmt):
    table = f"mirror_status_{fmt}"
    make_table(source, table, rows=50)

    def status():
        out = subprocess.run(mirror_args(source, lake, slot, table, "--status", fmt=fmt),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    # Nothing yet: no slot, no lake table.
    s = status()
    assert not s["slot_exists"] and s["lag_bytes"] is None, s
    assert [(t["exists"], t["lsn"]) for t in s["tables"]] == [(False, None)], s
    mirror(source, lake, slot, table, fmt=fmt)
    s = status()
    assert s["slot_exists"] and not s["active"], s
    (t,) = s["tables"]
    assert t["exists"] and t["lsn"] is not None and t["snapshot"] is not None, t
    assert t["table"] == table and t["behind_bytes"] >= 0, t
    at = int_lsn(t["lsn"])
    # Changes the mirror has not taken: the slot and the table are behind the server, the
    # table's position and snapshot unchanged; a run brings them level again.
    run(source, f"UPDATE {table} SET amount = amount + 1 WHERE id < 10")
    behind = status()
    assert behind["lag_bytes"] > 0 and behind["tables"][0]["behind_bytes"] > 0, behind
    assert behind["tables"][0]["lsn"] == t["lsn"] and behind["tables"][0]["snapshot"] == t["snapshot"]
    mirror(source, lake, slot, table, fmt=fmt)
    after = status()
    (t2,) = after["tables"]
    assert int_lsn(t2["lsn"]) > at and t2["snapshot"] != t["snapshot"], (t, t2)
    assert int_lsn(after["confirmed_lsn"]) >= int_lsn(t2["lsn"]), after
    # Python: the same, read the same way.
    import pgarrow

    flags = lake_flags(fmt, lake, table)
    kw = {"ducklake": flags[1]} if fmt == "ducklake" else (
        {"delta": flags[1]} if fmt == "delta" else {"iceberg": flags[1]})
    py = pgarrow.mirror_status(source, table=table, slot=slot, **kw)
    assert py["tables"][0]["lsn"] == t2["lsn"] and py["slot_exists"], py
    assert py["tables"][0]["snapshot"] == t2["snapshot"], py


def test_columns_added_dropped_and_widened_follow_the_source(source, lake, slot, duckdb_lake):
    table = "mirror_schema"
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (id int PRIMARY KEY, name text, n int, big text);
        ALTER TABLE {table} ALTER COLUMN big SET STORAGE EXTERNAL;
        INSERT INTO {table} SELECT g, 'n' || g, g, repeat(md5(g::text), 100) FROM generate_series(1, 20) g""")
    mirror(source, lake, slot, table)
    catalog = lake[0]

    def both(columns):
        want = rows_sql(source, f"SELECT {columns} FROM {table} ORDER BY id")
        got = duckdb_lake(catalog, f"SELECT {columns} FROM lake.main.{table} ORDER BY id")
        assert [tuple(r) for r in got] == want

    # Changes before and after each ALTER, in one run: the rows before a new column read NULL
    # there; a dropped column goes; int widens to bigint (the key too); a TOASTed value left
    # unchanged after the ALTERs comes from the files written before them.
    run(source, f"UPDATE {table} SET name = 'before' WHERE id <= 3")
    run(source, f"ALTER TABLE {table} ADD COLUMN note text")
    run(source, f"INSERT INTO {table} VALUES (100, 'new', 100, 'b', 'noted'); "
                f"UPDATE {table} SET note = 'later' WHERE id = 4")
    run(source, f"ALTER TABLE {table} DROP COLUMN name")
    run(source, f"ALTER TABLE {table} ALTER COLUMN n TYPE bigint, ALTER COLUMN id TYPE bigint")
    run(source, f"UPDATE {table} SET n = n + 5000000000 WHERE id IN (5, 6); DELETE FROM {table} WHERE id = 7")
    out = mirror(source, lake, slot, table)
    changed = [e for e in events(out.stdout) if e["event"] == "schema_changed"]
    assert changed and changed[0]["added"] == ["note"], changed
    kinds = dict(duckdb_lake(catalog, f"SELECT column_name, column_type FROM (DESCRIBE lake.main.{table})"))
    assert "name" not in kinds and kinds["note"] == "VARCHAR" and kinds["n"] == "BIGINT", kinds
    both("id, n, big, note")
    # And on, after a restart.
    run(source, f"UPDATE {table} SET note = 'again' WHERE id < 10")
    mirror(source, lake, slot, table)
    both("id, n, big, note")


def test_changes_a_mirror_cannot_follow_stop_it_with_nothing_committed_past_them(
        source, lake, slot, duckdb_lake):
    table = "mirror_refused"
    make_table(source, table, rows=20)
    mirror(source, lake, slot, table)
    run(source, f"UPDATE {table} SET name = 'before' WHERE id = 1")
    mirror(source, lake, slot, table)
    # A default gives the rows before it a value no change carries: with --no-reexport, the
    # mirror stops there.
    run(source, f"ALTER TABLE {table} ADD COLUMN five int DEFAULT 5; "
                f"INSERT INTO {table} VALUES (999, 'after', 'x', 1, 5)")
    out = mirror(source, lake, slot, table, "--no-reexport", check=False)
    assert out.returncode != 0
    assert "columns of" in out.stderr and "added with a default" in out.stderr, out.stderr
    assert "--no-reexport" in out.stderr and "--start-over" in out.stderr
    got = lake_rows(duckdb_lake, lake, table)
    assert [r for r in got if r[0] == 999] == []
    assert [r[1] for r in got if r[0] == 1] == ["before"]
    # Python's reexport=False the same.
    import pgarrow

    with pytest.raises(pgarrow.UsageError, match="added with a default"):
        pgarrow.mirror(source, table=table, ducklake=lake[0], slot=slot, catch_up=True, reexport=False)
    # By default the table is exported again, in a transaction's snapshot of its own.
    stats = pgarrow.mirror(source, table=table, ducklake=lake[0], slot=slot, catch_up=True)
    assert stats["reexported"] == 1, stats
    assert lake_rows(duckdb_lake, lake, table) == [tuple(r) for r in rows_of(source, table)]
    # The key's column gone: the table has no key, and no mirror follows it.
    run(source, f"ALTER TABLE {table} DROP COLUMN id; INSERT INTO {table} (name) VALUES ('t')")
    out = mirror(source, lake, slot, table, check=False)
    assert out.returncode != 0 and "no primary key" in out.stderr, out.stderr
    assert [r[1] for r in lake_rows(duckdb_lake, lake, table) if r[0] == 1] == ["before"]


def read_columns(fmt, lake, table, columns, duckdb_lake):
    """The lake table's `columns` (the first an id), sorted, as the format's reader reads them."""
    if fmt == "delta":
        return delta_rows(lake[1] / "delta" / table, columns=columns)
    if fmt == "iceberg":
        return iceberg_rows(lake, table, columns=columns)
    got = duckdb_lake(lake[0], f"SELECT {', '.join(columns)} FROM lake.main.{table} ORDER BY 1")
    return [tuple(r) for r in got]


def lake_columns(fmt, lake, table, duckdb_lake):
    """The lake table's columns, in order."""
    if fmt == "delta":
        import deltalake

        return [f.name for f in deltalake.DeltaTable(str(lake[1] / "delta" / table)).schema().fields]
    if fmt == "iceberg":
        return [f.name for f in iceberg_table(lake, table).schema().fields]
    got = duckdb_lake(lake[0], f"SELECT column_name FROM (DESCRIBE lake.main.{table})")
    return [r[0] for r in got]


@pytest.mark.parametrize("fmt", FORMATS)
def test_schema_changes_the_lake_cannot_take_in_place_export_the_table_again(
        source, lake, slot, fmt, duckdb_lake):
    """Columns added with a default (a constant, a volatile one, an identity: PostgreSQL gives
    the rows before them values with no change in the WAL), a rename, and (Delta) a widened
    type and a drop: the
    running mirror exports the table again in a new snapshot and goes on, leaving out the
    changes before it and applying those after, none lost or doubled."""
    table = f"mirror_again_{fmt}"
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (id int PRIMARY KEY, name text, big text, n int);
        ALTER TABLE {table} ALTER COLUMN big SET STORAGE EXTERNAL;
        INSERT INTO {table} SELECT g, 'n' || g, repeat(md5(g::text), 100), g FROM generate_series(1, 50) g""")
    proc = subprocess.Popen(mirror_args(source, lake, slot, table, "--commit-interval", "0", fmt=fmt),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc)
    c = psycopg.connect(source, autocommit=True)

    def committed(sql):
        """Runs `sql` and waits for a checkpoint or a new snapshot past it."""
        before = int_lsn(c.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0])
        c.execute(sql)
        while True:
            e = lines.next()
            if e["event"] in ("checkpoint", "reexported") and int_lsn(e["lsn"]) > before:
                return

    def until(event):
        while (e := lines.next())["event"] != event:
            pass
        return e

    def equal(columns):
        want = [tuple(r) for r in c.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY id")]
        assert read_columns(fmt, lake, table, columns, duckdb_lake) == want
        assert lake_columns(fmt, lake, table, duckdb_lake) == [
            r[0] for r in c.execute(f"SELECT attname::text FROM pg_attribute WHERE attrelid = '{table}'::regclass "
                                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum")]

    try:
        assert lines.next()["event"] == "exported"
        committed(f"UPDATE {table} SET name = 'before' WHERE id <= 3")
        # Three columns the rows before them take values of, with no change in the WAL (the
        # second and third rewrite the table); changes around them.
        c.execute(f"ALTER TABLE {table} ADD COLUMN five int DEFAULT 5")
        c.execute(f"ALTER TABLE {table} ADD COLUMN r int DEFAULT (random() * 1000000)::int")
        c.execute(f"ALTER TABLE {table} ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY")
        c.execute(f"INSERT INTO {table} (id, name, big, n, five, r) VALUES (100, 'new', 'b', 100, 6, 7)")
        c.execute(f"UPDATE {table} SET n = -n WHERE id IN (4, 5)")
        again = until("reexported")
        assert "added with a default" in again["why"], again
        # After the new snapshot: a TOASTed value left unchanged comes from its files.
        c.execute(f"UPDATE {table} SET n = 0, five = 50 WHERE id IN (6, 7); DELETE FROM {table} WHERE id = 8")
        committed(f"INSERT INTO {table} (id, name, big, n) VALUES (101, 'newer', 'c', 101)")
        equal(["id", "name", "big", "n", "five", "r", "seq"])
        # A rename, in the middle of the table (Iceberg keeps its field ID: a column added
        # goes last, so one in a dropped column's place is that column renamed).
        if fmt == "iceberg":
            ids = {f.name: f.field_id for f in iceberg_table(lake, table).schema().fields}
        c.execute(f"ALTER TABLE {table} RENAME COLUMN name TO title")
        c.execute(f"UPDATE {table} SET title = 'renamed' WHERE id IN (9, 10)")
        again = until("reexported")
        assert "renamed" in again["why"], again
        committed(f"UPDATE {table} SET title = 'after' WHERE id = 11")
        equal(["id", "title", "big", "n", "five", "r", "seq"])
        if fmt == "iceberg":
            now = {f.name: f.field_id for f in iceberg_table(lake, table).schema().fields}
            assert now["title"] == ids["name"] and now["id"] == ids["id"], (ids, now)
        # A type widened: in place, except in a Delta table (pgarrow does not write Delta's
        # typeWidening feature).
        c.execute(f"ALTER TABLE {table} ALTER COLUMN five TYPE bigint")
        committed(f"UPDATE {table} SET five = 5000000000 WHERE id = 14")
        equal(["id", "title", "big", "n", "five", "r", "seq"])
        # A drop: in place, except in a Delta table (whose files keep the values).
        c.execute(f"ALTER TABLE {table} DROP COLUMN n")
        committed(f"UPDATE {table} SET five = 55 WHERE id = 12")
        committed(f"DELETE FROM {table} WHERE id = 13")
        equal(["id", "title", "big", "five", "r", "seq"])
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        assert proc.returncode == 0, proc.stderr.read()
        done = until("done")["stats"]
    finally:
        if proc.poll() is None:
            proc.kill()
        c.close()
    kinds = [e["event"] for e in lines.seen]
    assert done["reexported"] == (4 if fmt == "delta" else 2), (done, kinds)
    assert ("schema_changed" in kinds) == (fmt != "delta"), kinds
    # The next run goes on from the table's position.
    run(source, f"UPDATE {table} SET five = 500 WHERE id <= 20")
    out = mirror(source, lake, slot, table, fmt=fmt)
    assert not [e for e in events(out.stdout) if e["event"] == "reexported"], out.stdout
    want = rows_sql(source, f"SELECT id, title, big, five, r, seq FROM {table} ORDER BY id")
    assert read_columns(fmt, lake, table, ("id", "title", "big", "five", "r", "seq"), duckdb_lake) == want


def test_a_stream_replayed_from_before_a_schema_change_keeps_the_newer_columns(
        source, lake, slot, duckdb_lake):
    """A table ahead of the slot (a run stopped between its commit and the slot's
    confirmation; a table behind it, with nothing to commit, holds the stream back) gets the
    Relation messages of transactions it holds again: older columns, not a drop."""
    run(source, "DROP SCHEMA IF EXISTS mreplay CASCADE; CREATE SCHEMA mreplay")
    for t in ("mreplay.idle", "mreplay.busy"):
        make_table(source, t, rows=20)
    catalog, data = lake
    args = [pgarrow_bin(), "mirror", "-d", source, "--schema", "mreplay", "--slot", slot,
            "--ducklake", catalog, "--data-path", str(data), "--json", "--catch-up"]

    def mirror_both():
        out = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return out

    mirror_both()
    run(source, f"SELECT pg_copy_logical_replication_slot('{slot}', '{slot}_old')")
    try:
        # Under the old columns, then the new ones: the busy table takes both.
        run(source, "UPDATE mreplay.busy SET name = 'b' WHERE id = 2")
        run(source, "ALTER TABLE mreplay.busy ADD COLUMN note text")
        run(source, "UPDATE mreplay.busy SET note = 'noted' WHERE id <= 5")
        mirror_both()
        # The slot goes back to before them (as if that run had been killed before confirming
        # it); the busy table stays after them, the idle one at its export.
        run(source, f"SELECT pg_drop_replication_slot('{slot}')")
        run(source, f"SELECT pg_copy_logical_replication_slot('{slot}_old', '{slot}')")
    finally:
        run(source, f"SELECT pg_drop_replication_slot('{slot}_old')")
    run(source, "UPDATE mreplay.busy SET note = 'later' WHERE id = 6")
    out = mirror_both()
    assert not [e for e in events(out.stdout) if e["event"] in ("schema_changed", "reexported")], out.stdout
    got = duckdb_lake(catalog, "SELECT id, name, big, amount, note FROM lake.mreplay.busy ORDER BY id")
    assert [tuple(r) for r in got] == rows_sql(
        source, "SELECT id, name, big, amount, note FROM mreplay.busy ORDER BY id")


def rows_sql(url, sql):
    with psycopg.connect(url, autocommit=True) as c:
        return [tuple(r) for r in c.execute(sql).fetchall()]


def test_tables_without_a_usable_key_are_refused(source, lake, slot):
    run(source, "DROP TABLE IF EXISTS mirror_nokey; CREATE TABLE mirror_nokey (a int, b text)")
    out = mirror(source, lake, slot, "mirror_nokey", check=False)
    assert out.returncode != 0 and "no primary key" in out.stderr, out.stderr
    run(source, "ALTER TABLE mirror_nokey REPLICA IDENTITY NOTHING")
    out = mirror(source, lake, slot, "mirror_nokey", check=False)
    assert out.returncode != 0 and "REPLICA IDENTITY NOTHING" in out.stderr, out.stderr
    # Nothing was made for it.
    with psycopg.connect(source, autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                         (slot,)).fetchone()[0] == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_table_without_a_key_under_replica_identity_full_is_told_apart_by_whole_rows(
        source, lake, slot, fmt, duckdb_lake):
    """No key, REPLICA IDENTITY FULL: identical rows are counted, an update or delete of one
    of them takes one, an update's unsent TOASTed value comes from its old row; the lake
    table holds the source's rows as a multiset after each run, and takes new columns by
    being exported again."""
    table = f"mirror_full_{fmt}"
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (a int, b text, big text, arr int[]);
        ALTER TABLE {table} REPLICA IDENTITY FULL;
        ALTER TABLE {table} ALTER COLUMN big SET STORAGE EXTERNAL;
        INSERT INTO {table} SELECT g % 5, 'b' || (g % 3), repeat(md5((g % 5)::text), 200), ARRAY[g % 2, NULL]
          FROM generate_series(1, 60) g""")
    columns = ("a", "b", "big", "arr")

    def same():
        want = sorted(tuple(r) for r in rows_sql(source, f"SELECT {', '.join(columns)} FROM {table}"))
        got = sorted(tuple(list(v) if isinstance(v, tuple) else v for v in r)
                     for r in read_columns(fmt, lake, table, columns, duckdb_lake))
        assert got == want

    mirror(source, lake, slot, table, fmt=fmt)
    same()
    one_of = f"ctid IN (SELECT ctid FROM {table} WHERE a = %s AND b = %s LIMIT %s)"
    for sql, params in [
        # One or two of identical rows, the TOASTed value left unchanged.
        (f"UPDATE {table} SET b = 'one' WHERE {one_of}", (1, "b1", 1)),
        (f"UPDATE {table} SET a = a + 100 WHERE {one_of}", (2, "b2", 2)),
        (f"DELETE FROM {table} WHERE {one_of}", (3, "b0", 1)),
        # Identical rows in, one out, one changed and changed back.
        (f"INSERT INTO {table} VALUES (9, 'n', 'x', '{{1,2}}'), (9, 'n', 'x', '{{1,2}}'), "
         "(9, 'n', 'x', '{1,2}')", None),
        (f"DELETE FROM {table} WHERE {one_of}", (9, "n", 1)),
        (f"UPDATE {table} SET b = 'm' WHERE {one_of}", (9, "n", 1)),
        (f"UPDATE {table} SET b = 'n' WHERE {one_of}", (9, "m", 1)),
        (f"UPDATE {table} SET big = 'short' WHERE {one_of}", (4, "b1", 1)),
    ]:
        run(source, sql, params)
    mirror(source, lake, slot, table, fmt=fmt)
    same()
    # A truncate and rows after it, in one transaction.
    run(source, f"BEGIN; DELETE FROM {table} WHERE a = 0; TRUNCATE {table}; "
                f"INSERT INTO {table} VALUES (1, 'x', 'y', NULL), (1, 'x', 'y', NULL); "
                f"DELETE FROM {table} WHERE {one_of.replace('%s', '1', 1).replace('%s', chr(39) + 'x' + chr(39), 1).replace('%s', '1')}; "
                f"INSERT INTO {table} SELECT 7, 'z', repeat('q', 5000), ARRAY[g] FROM generate_series(1, 5) g; COMMIT")
    mirror(source, lake, slot, table, fmt=fmt)
    same()
    # New columns: the table is exported again (its index is of the old ones).
    run(source, f"ALTER TABLE {table} ADD COLUMN c int; UPDATE {table} SET c = a WHERE a = 7")
    out = mirror(source, lake, slot, table, fmt=fmt)
    again = [e for e in events(out.stdout) if e["event"] == "reexported"]
    assert len(again) == 1 and "whole rows" in again[0]["why"], out.stdout
    columns = ("a", "b", "big", "arr", "c")
    run(source, f"UPDATE {table} SET c = 0 WHERE {one_of}", (7, "z", 2))
    mirror(source, lake, slot, table, fmt=fmt)
    same()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_table_told_apart_by_whole_rows_keeps_its_index_with_the_table_within_the_budget(
        source, lake, slot, fmt, duckdb_lake):
    """REPLICA IDENTITY FULL without a key goes the bounded path a keyed table does: its index
    of row digests spills under a small memory limit and is persisted with the table (an idle
    run reads no data file and looks nothing up; a few changes to some of many identical rows
    look up a few digests); one transaction far over the limit (updates, deletes and inserts of
    identical rows) is folded in buckets; runs killed at random, a compaction beside the mirror
    and the index removed each leave the lake table holding the source's rows as a multiset."""
    table = f"mirror_full_index_{fmt}"
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (a int, b text, n int[]);
        ALTER TABLE {table} REPLICA IDENTITY FULL;
        INSERT INTO {table} SELECT g % 700, 'b' || (g % 3), ARRAY[g % 2, NULL]
          FROM generate_series(1, 6000) g""")
    columns = ("a", "b", "n")
    limit = ["--memory-limit", "64KiB"]

    def same(what):
        want = sorted(tuple(r) for r in rows_sql(source, f"SELECT {', '.join(columns)} FROM {table}"))
        got = sorted(tuple(list(v) if isinstance(v, tuple) else v for v in r)
                     for r in read_columns(fmt, lake, table, columns, duckdb_lake))
        assert got == want, what

    first = index_stats(mirror(source, lake, slot, table, *limit, fmt=fmt))
    assert first["disk_entries"] == 6000, first
    assert first["memory_entries"] == 0 and first["runs"] >= 1, first
    idle = index_stats(mirror(source, lake, slot, table, *limit, fmt=fmt))
    assert idle["files_read"] == 0 and idle["lookups"] == 0, idle
    some = f"ctid IN (SELECT ctid FROM {table} WHERE a = %s LIMIT %s)"
    run(source, f"DELETE FROM {table} WHERE {some}", (5, 3))
    run(source, f"UPDATE {table} SET b = 'z' WHERE {some}", (6, 2))
    # (Without the limit: under it the changes are set aside, and the rows written read back.)
    few = index_stats(mirror(source, lake, slot, table, fmt=fmt))
    assert few["files_read"] == 0 and few["lookups"] > 0 and few["read_bytes"] > 0, few
    assert few["read_bytes"] < first["disk_bytes"] / 2, (few, first)
    same("a few changes")
    # One transaction far over the limit: folded in buckets, committed whole.
    with psycopg.connect(source) as c:
        c.execute(f"UPDATE {table} SET b = b || '+' WHERE a % 2 = 0")
        c.execute(f"DELETE FROM {table} WHERE a % 5 = 0")
        c.execute(f"INSERT INTO {table} SELECT g % 50, 'new', NULL FROM generate_series(1, 3000) g")
        c.execute(f"UPDATE {table} SET n = ARRAY[7] WHERE {some}", (1, 4))
    out = mirror(source, lake, slot, table, *limit, "--commit-changes", "1000000", fmt=fmt)
    done = [e for e in events(out.stdout) if e["event"] == "done"][0]["stats"]
    assert done["folded_in_buckets"] == 1 and done["set_aside_bytes"] > 64 * 1024, done
    # The rows it wrote took more than the index's share of memory: written out as they came.
    assert done["index"]["spills"] >= 1, done
    assert len([e for e in events(out.stdout) if e["event"] == "committed"]) == 1, out.stdout
    same("a transaction folded in buckets")
    rng = random.Random(13)
    for i in range(4):
        run(source, f"DELETE FROM {table} WHERE {some}", (rng.randint(0, 49), rng.randint(1, 5)))
        run(source, f"INSERT INTO {table} SELECT g % 9, 'k{i}', NULL FROM generate_series(1, 500) g")
        run(source, f"UPDATE {table} SET b = b || '!' WHERE {some}", (rng.randint(0, 8), 40))
        killed_at_random(mirror_args(source, lake, slot, table, *limit, "--commit-changes",
                                     str(rng.randint(100, 900)), "--commit-interval", "0",
                                     fmt=fmt),
                         rng)
    mirror(source, lake, slot, table, *limit, fmt=fmt)
    same("killed at random")
    # Compacted beside the mirror: the next run reads the keys of the files it wrote only.
    compacted = upkeep(fmt, lake, table, "compact")
    assert compacted["files_written"] >= 1, compacted
    run(source, f"DELETE FROM {table} WHERE {some}", (3, 2))
    after = index_stats(mirror(source, lake, slot, table, *limit, fmt=fmt))
    assert 1 <= after["files_read"] <= compacted["files_written"], (after, compacted)
    same("compacted")
    # Removed, the index is built again from the table's files.
    import shutil
    homes = [p for p in lake[1].rglob("_pgarrow_index") if p.is_dir() and table in str(p)]
    assert len(homes) == 1, homes
    shutil.rmtree(homes[0])
    run(source, f"DELETE FROM {table} WHERE {some}", (7, 1))
    rebuilt = index_stats(mirror(source, lake, slot, table, *limit, fmt=fmt))
    assert rebuilt["files_read"] >= 1 and rebuilt["runs"] >= 1, rebuilt
    same("the index built again")


def test_the_lake_table_has_the_columns_the_publication_publishes(source, lake, slot, duckdb_lake):
    """A stored generated column (not published before PostgreSQL 18) and a column a
    publication's column list leaves out are left out of the lake table too: its export
    reads the columns the changes carry, so that no change looks like a dropped column."""
    table = "mirror_published"
    # A column list names a generated column only from PostgreSQL 18 on (which publishes it).
    version = int(rows_sql(source, "SHOW server_version_num")[0][0])
    want_columns = ["id", "a", "g"] if version >= 180000 else ["id", "a"]
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (id int PRIMARY KEY, a int, g int GENERATED ALWAYS AS (a * 2) STORED, secret text);
        INSERT INTO {table} (id, a, secret) SELECT g, g, 's' FROM generate_series(1, 10) g;
        CREATE PUBLICATION {slot} FOR TABLE {table} ({', '.join(want_columns)})""")
    out = mirror(source, lake, slot, table)
    run(source, f"UPDATE {table} SET a = 100 WHERE id = 1; DELETE FROM {table} WHERE id = 2")
    out = mirror(source, lake, slot, table)
    assert not [e for e in events(out.stdout) if e["event"] in ("reexported", "schema_changed")], out.stdout
    assert lake_columns("ducklake", lake, table, duckdb_lake) == want_columns
    assert read_columns("ducklake", lake, table, want_columns, duckdb_lake) == rows_sql(
        source, f"SELECT {', '.join(want_columns)} FROM {table} ORDER BY id")
    # The mirror's own publication (no column list): every column but a generated one (before
    # PostgreSQL 18).
    other, plain = slot + "_g", table + "_g"
    want_columns = ["id", "a", "g"] if version >= 180000 else ["id", "a"]
    run(source, f"""DROP TABLE IF EXISTS {plain};
        CREATE TABLE {plain} (id int PRIMARY KEY, a int, g int GENERATED ALWAYS AS (a * 2) STORED);
        INSERT INTO {plain} (id, a) SELECT g, g FROM generate_series(1, 5) g""")
    try:
        mirror(source, lake, other, plain)
        run(source, f"UPDATE {plain} SET a = 50 WHERE id = 5")
        out = mirror(source, lake, other, plain)
        assert not [e for e in events(out.stdout) if e["event"] in ("reexported", "schema_changed")], out.stdout
        assert lake_columns("ducklake", lake, plain, duckdb_lake) == want_columns
        assert read_columns("ducklake", lake, plain, want_columns, duckdb_lake) == rows_sql(
            source, f"SELECT {', '.join(want_columns)} FROM {plain} ORDER BY id")
    finally:
        run(source, f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    f"WHERE slot_name = '{other}'; DROP PUBLICATION IF EXISTS {other}")


def test_an_invalidated_slot_says_so_and_a_start_over_mirrors_again(source, lake, slot, duckdb_lake):
    table = "mirror_lost"
    make_table(source, table, rows=50)
    mirror(source, lake, slot, table)
    run(source, f"UPDATE {table} SET name = 'lost' WHERE id < 10")
    with psycopg.connect(source, autocommit=True) as c:
        c.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
        c.execute("SELECT pg_reload_conf()")
        try:
            for _ in range(50):
                c.execute("CREATE TEMP TABLE IF NOT EXISTS filler (x text)")
                c.execute("INSERT INTO filler SELECT repeat('w', 1000) FROM generate_series(1, 3000)")
                c.execute("SELECT pg_switch_wal()")
                c.execute("CHECKPOINT")
                status = c.execute("SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s",
                                   (slot,)).fetchone()[0]
                if status == "lost":
                    break
            assert status == "lost"
        finally:
            c.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
            c.execute("SELECT pg_reload_conf()")
    out = mirror(source, lake, slot, table, check=False)
    assert out.returncode != 0
    assert "invalidated" in out.stderr and "--start-over" in out.stderr, out.stderr
    mirror(source, lake, slot, table, "--start-over")
    assert lake_rows(duckdb_lake, lake, table) == [tuple(r) for r in rows_of(source, table)]


def test_several_tables_each_into_their_own_lake_table(source, lake, slot, duckdb_lake):
    run(source, "DROP SCHEMA IF EXISTS msales CASCADE; CREATE SCHEMA msales")
    for t in ("msales.a", "msales.b"):
        make_table(source, t, rows=30)
    catalog, data = lake
    args = [pgarrow_bin(), "mirror", "-d", source, "--schema", "msales", "--slot", slot,
            "--ducklake", catalog, "--data-path", str(data), "--json", "--catch-up"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    run(source, "UPDATE msales.a SET name = 'x' WHERE id < 5; DELETE FROM msales.b WHERE id > 20")
    second = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    tables = {e["table"] for e in events(second.stdout) if e["event"] == "committed"}
    assert tables == {'"msales"."a"', '"msales"."b"'}
    for t in ("a", "b"):
        got = duckdb_lake(catalog, f"SELECT id, name, big, amount FROM lake.msales.{t} ORDER BY id")
        assert [tuple(r) for r in got] == [tuple(r) for r in rows_of(source, f"msales.{t}")]


def test_iceberg_tables_of_a_round_commit_together_in_the_sql_catalog(source, lake, slot):
    """Two tables changed by one transaction: the round commits both Iceberg tables in one
    transaction of the SQL catalog's database (each `committed` event says `together: 2`)."""
    from pyiceberg.catalog.sql import SqlCatalog

    run(source, "DROP SCHEMA IF EXISTS mice CASCADE; CREATE SCHEMA mice")
    for t in ("mice.a", "mice.b"):
        make_table(source, t, rows=30)
    catalog, data = lake
    args = [pgarrow_bin(), "mirror", "-d", source, "--schema", "mice", "--slot", slot,
            "--iceberg", catalog, "--warehouse", str(data), "--json", "--catch-up"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    run(source, "BEGIN; UPDATE mice.a SET name = 'x' WHERE id < 5; DELETE FROM mice.b WHERE id > 20; COMMIT")
    second = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    committed = [e for e in events(second.stdout) if e["event"] == "committed"]
    assert sorted((e["table"], e["together"]) for e in committed) == [('"mice"."a"', 2), ('"mice"."b"', 2)]
    assert events(second.stdout)[-1]["stats"]["together"] == 1
    # Without --json, the summary says it.
    run(source, "BEGIN; UPDATE mice.a SET name = 'y' WHERE id < 3; UPDATE mice.b SET name = 'y' WHERE id < 3; COMMIT")
    third = subprocess.run([a for a in args if a != "--json"], capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert "1 commit round(s) committed several tables at once" in third.stderr, third.stderr
    cat = SqlCatalog("default", uri=catalog.replace("postgresql://", "postgresql+psycopg://", 1))
    for t in ("a", "b"):
        got = cat.load_table(f"mice.{t}").scan().to_arrow()
        rows = sorted(zip(*[got[c].to_pylist() for c in ("id", "name", "big", "amount")]))
        assert rows == [tuple(r) for r in rows_of(source, f"mice.{t}")]


def fk_make(source, schema):
    """Orders and their lines in `schema`: each order's total and count kept equal to its
    lines' by every transaction of `fk_work`."""
    run(source, f"""DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
        CREATE TABLE {schema}.orders (id int PRIMARY KEY, total bigint NOT NULL, n int NOT NULL);
        CREATE TABLE {schema}.lines (id int PRIMARY KEY, order_id int NOT NULL, amount int NOT NULL);
        INSERT INTO {schema}.orders SELECT g, 0, 0 FROM generate_series(1, 20) g""")


def fk_work(source, schema, steps, seed, line_ids):
    """`steps` transactions on orders and lines together: a line added, its order's lines
    updated, or the order and its lines deleted; each order's total and count follow."""
    r = random.Random(seed)
    with psycopg.connect(source, autocommit=True) as c:
        for _ in range(steps):
            o = r.randint(1, 60)
            with c.transaction():
                c.execute(f"INSERT INTO {schema}.orders VALUES (%s, 0, 0) ON CONFLICT DO NOTHING", (o,))
                what = r.random()
                if what < 0.6:
                    c.execute(f"INSERT INTO {schema}.lines VALUES (%s, %s, %s)",
                              (next(line_ids), o, r.randint(1, 99)))
                elif what < 0.85:
                    c.execute(f"UPDATE {schema}.lines SET amount = amount + 1 WHERE order_id = %s", (o,))
                else:
                    c.execute(f"DELETE FROM {schema}.lines WHERE order_id = %s", (o,))
                    c.execute(f"DELETE FROM {schema}.orders WHERE id = %s", (o,))
                    continue
                c.execute(f"UPDATE {schema}.orders o SET total = coalesce(s.t, 0), n = coalesce(s.n, 0) "
                          f"FROM (SELECT sum(amount) AS t, count(*) AS n FROM {schema}.lines "
                          f"WHERE order_id = %s) s WHERE o.id = %s", (o, o))


def fk_broken(orders, lines):
    """What breaks the orders' rule in rows `orders` (id, total, n) and `lines` (id, order_id,
    amount): lines without their order, orders whose total or count is not their lines'."""
    ids = {o[0] for o in orders}
    sums = {}
    for _, order, amount in lines:
        t, n = sums.get(order, (0, 0))
        sums[order] = (t + amount, n + 1)
    broken = [f"line {li[0]} without order {li[1]}" for li in lines if li[1] not in ids]
    broken += [f"order {o[0]}: {o[1:]} but lines {sums.get(o[0], (0, 0))}"
               for o in orders if tuple(o[1:]) != sums.get(o[0], (0, 0))]
    return broken


def fk_broken_at(duckdb_lake, catalog, schema, versions):
    """The snapshots among `versions` at which the DuckLake tables `schema.orders` and
    `schema.lines` disagree: a line without its order, or an order whose total and count are
    not its lines' (the source keeps them equal in every transaction). One DuckDB process,
    every snapshot read by time travel."""
    parts = []
    for v in versions:
        o = f"(SELECT * FROM lake.{schema}.orders AT (VERSION => {v}))"
        li = f"(SELECT * FROM lake.{schema}.lines AT (VERSION => {v}))"
        parts.append(
            f"SELECT {v} AS v FROM {o} o LEFT JOIN (SELECT order_id, sum(amount) AS s, count(*) AS n "
            f"FROM {li} GROUP BY order_id) l ON l.order_id = o.id "
            f"WHERE o.total <> coalesce(l.s, 0) OR o.n <> coalesce(l.n, 0) "
            f"UNION ALL SELECT {v} FROM {li} l WHERE l.order_id NOT IN (SELECT id FROM {o})")
    rows = duckdb_lake(catalog, "SELECT DISTINCT v FROM (" + " UNION ALL ".join(parts) + ") ORDER BY v")
    return [r[0] for r in rows]


def test_ducklake_tables_of_a_round_commit_in_one_snapshot_and_every_snapshot_is_consistent(
        source, lake, slot, duckdb_lake):
    """Orders and their lines written together in single transactions (inserted, updated,
    deleted together; each order's total and count kept equal to its lines'), mirrored into
    one DuckLake catalog with runs killed at random: each round commits both tables in one
    catalog transaction (one snapshot, `together: 2`), so that at every snapshot of the lake
    since both tables exist (read by DuckDB's time travel) every line has its order and every
    order's total is its lines'; the end equals the source. A control commits the same
    workload's tables one at a time (into another schema, each table its own slot) and finds
    snapshots where they disagree: the check can fail."""
    catalog, data = lake
    rng = random.Random(70)
    make = functools.partial(fk_make, source)
    line_ids = iter(range(1, 10**9))

    def work(schema, steps, seed):
        fk_work(source, schema, steps, seed, line_ids)

    def versions(schema):
        with psycopg.connect(catalog, autocommit=True) as c:
            since = c.execute(
                "SELECT max(t.begin_snapshot) FROM ducklake_table t JOIN ducklake_schema s USING (schema_id) "
                "WHERE s.schema_name = %s AND t.table_name IN ('orders', 'lines') AND t.end_snapshot IS NULL",
                (schema,)).fetchone()[0]
            return [r[0] for r in c.execute(
                "SELECT snapshot_id FROM ducklake_snapshot WHERE snapshot_id >= %s ORDER BY 1",
                (since,)).fetchall()]

    make("fk")
    args = [pgarrow_bin(), "mirror", "-d", source, "--schema", "fk", "--slot", slot,
            "--ducklake", catalog, "--data-path", str(data), "--json", "--catch-up"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    work("fk", 40, 1)
    second = subprocess.run(args + ["--commit-interval", "0"], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    committed = [e for e in events(second.stdout) if e["event"] == "committed"]
    # A round whose changes touched both tables commits them in one snapshot (a round that
    # changed one table commits it alone).
    by_lsn = {}
    for e in committed:
        by_lsn.setdefault(e["lsn"], []).append(e["together"])
    assert any(len(t) == 2 for t in by_lsn.values()), committed
    assert all(t == [len(t)] * len(t) for t in by_lsn.values()), committed
    assert events(second.stdout)[-1]["stats"]["together"] >= 1
    # One snapshot for both: its changes name both tables.
    with psycopg.connect(catalog, autocommit=True) as c:
        made = c.execute("SELECT changes_made, commit_message FROM ducklake_snapshot_changes "
                         "ORDER BY snapshot_id DESC LIMIT 1").fetchone()
    assert made[0].count("table:") >= 2 and "fk.orders" in made[1] and "fk.lines" in made[1], made
    for i in range(8):
        work("fk", rng.randint(5, 30), 100 + i)
        killed_at_random(args + ["--commit-changes", str(rng.randint(2, 20)), "--commit-interval", "0"], rng)
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = versions("fk")
    assert len(seen) > 10, seen
    assert fk_broken_at(duckdb_lake, catalog, "fk", seen) == []
    for t in ("orders", "lines"):
        got = duckdb_lake(catalog, f"SELECT * FROM lake.fk.{t} ORDER BY id")
        assert [tuple(r) for r in got] == rows_sql(source, f"SELECT * FROM fk.{t} ORDER BY id")
    # The control: the same workload, each table mirrored on its own (two slots, two runs).
    make("fk_apart")
    apart = [[pgarrow_bin(), "mirror", "-d", source, "-t", f"fk_apart.{t}", "--slot", f"{slot}_{t}",
              "--ducklake", catalog, "--data-path", str(data), "--lake-table", f"fk_apart.{t}",
              "--json", "--catch-up", "--commit-interval", "0"] for t in ("orders", "lines")]
    try:
        for a in apart:
            assert subprocess.run(a, capture_output=True, text=True, timeout=300).returncode == 0
        for i in range(3):
            work("fk_apart", 10, 200 + i)
            for a in apart:
                out = subprocess.run(a, capture_output=True, text=True, timeout=300)
                assert out.returncode == 0, out.stderr
        assert fk_broken_at(duckdb_lake, catalog, "fk_apart", versions("fk_apart")) != []
    finally:
        for t in ("orders", "lines"):
            run(source, f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                        f"WHERE slot_name = '{slot}_{t}'; DROP PUBLICATION IF EXISTS {slot}_{t}")


def fk_flags(fmt, lake):
    """The flags naming a schema's lake tables of format `fmt` (each table its own)."""
    catalog, data = lake
    return {
        "ducklake": ["--ducklake", catalog, "--data-path", str(data)],
        "delta": ["--delta", str(data / "delta")],
        "iceberg": ["--iceberg", catalog, "--warehouse", str(data)],
    }[fmt]


def ran(argv):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def read_at(fmt, lake, point, duckdb_lake):
    """The rows of each table of `point` (a `mirror --at --json` answer), read through the
    statements it gives: DuckDB's time travel (DuckLake), deltalake (Delta), pyiceberg
    (Iceberg). {source table: sorted rows}."""
    out = {}
    for t in point["tables"]:
        statement = t["read"][{"ducklake": "duckdb", "delta": "deltalake", "iceberg": "pyiceberg"}[fmt]]
        if fmt == "ducklake":
            rows = [tuple(r) for r in duckdb_lake(lake[0], statement)]
        else:
            import deltalake
            import pyarrow
            from pyiceberg.catalog.sql import SqlCatalog

            catalog = SqlCatalog("default", uri=lake[0].replace("postgresql://", "postgresql+psycopg://", 1))
            got = eval(statement, {"deltalake": deltalake, "pyarrow": pyarrow, "catalog": catalog})
            rows = list(zip(*[got[c].to_pylist() for c in got.column_names]))
            if fmt == "delta":
                import polars

                assert sorted(eval(t["read"]["polars"], {"polars": polars}).rows()) == sorted(rows)
        out[t["table"].split(".")[-1]] = sorted(rows)
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_lake_at_every_recorded_point_has_each_line_with_its_order_through_20_kills(
        source, lake, slot, fmt, duckdb_lake):
    """Orders and their lines written together in single transactions, mirrored with runs
    killed at 20 random moments: for every position a commit recorded, `pgarrow mirror --at`
    names each table's snapshot or version, and read there through the statements it gives
    (DuckDB's time travel, deltalake, pyiceberg) every line has its order and every order's
    total and count are its lines'. DuckLake and Iceberg commit a round's tables in one
    catalog operation; Delta's are committed one by one, and a run killed between them is
    completed first by the next. Asked by the source time of a point, it names the same
    snapshots; the end equals the source."""
    schema = f"fk_{fmt}"
    fk_make(source, schema)
    line_ids = iter(range(1, 10**9))
    args = [pgarrow_bin(), "mirror", "-d", source, "--schema", schema, "--slot", slot,
            *fk_flags(fmt, lake), "--json", "--catch-up"]
    printed = [ran(args)]
    rng = random.Random(71)
    for i in range(20):
        fk_work(source, schema, rng.randint(3, 15), 300 + i, line_ids)
        printed.append(killed_at_random(
            args + ["--commit-changes", str(rng.randint(2, 20)), "--commit-interval", "0"], rng))
    printed.append(ran(args))
    points = sorted({e["lsn"] for out in printed for e in events(out) if e["event"] in ("exported", "committed")},
                    key=int_lsn)
    assert len(points) >= 10, points
    # The first export's tables, read in the slot's snapshot, are committed at its point together:
    # DuckLake's in one snapshot of the lake.
    exported = {e["lsn"] for e in events(printed[0]) if e["event"] == "exported"}
    assert len(exported) == 1 and exported <= set(points), printed[0]
    first = json.loads(ran(args + ["--at", exported.pop()]))
    assert {t["recorded_lsn"] for t in first["tables"]} == {first["lsn"]}, first
    if fmt == "ducklake":
        assert len({t["snapshot"] for t in first["tables"]}) == 1, first
    for p in points:
        at = json.loads(ran(args + ["--at", p]))
        assert at["lsn"] == p and at["asked"] == p, at
        assert all(int_lsn(t["recorded_lsn"]) <= int_lsn(p) for t in at["tables"]), at
        assert p in {t["recorded_lsn"] for t in at["tables"]}, at
        rows = read_at(fmt, lake, at, duckdb_lake)
        assert fk_broken(rows["orders"], rows["lines"]) == [], (p, at)
    # The latest point is what the slot confirmed: the source now.
    latest = json.loads(ran(args + ["--at", "latest"]))
    assert latest["lsn"] == latest["confirmed_lsn"] == points[-1], latest
    rows = read_at(fmt, lake, latest, duckdb_lake)
    for t in ("orders", "lines"):
        assert rows[t] == sorted(rows_sql(source, f"SELECT * FROM {schema}.{t}")), t
    # By the source's commit time of a point: the same snapshots.
    middle = json.loads(ran(args + ["--at", points[len(points) // 2]]))
    assert middle["time_us"] is not None, middle
    when = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
        microseconds=middle["time_us"])
    by_time = json.loads(ran(args + ["--at", when.isoformat()]))
    assert by_time["lsn"] == middle["lsn"] and by_time["tables"] == middle["tables"], (by_time, middle)
    # Before the first commit that records a time: said so.
    early = subprocess.run(args + ["--at", "2000-01-01 00:00+00"], capture_output=True, text=True)
    assert early.returncode == 2 and "records a source transaction committed at or before" in early.stderr, \
        early.stderr


def test_a_delta_table_a_failed_round_left_behind_is_brought_to_the_others_position_first(
        source, lake, slot):
    """Delta commits a round's tables one by one: when the second's commit fails (its next log
    entry taken by a directory here), the first is at the round's position and the second
    behind. The next run commits the second up to exactly that position before anything past
    it, so that the position reads whole, then goes on."""
    schema = "fk_behind"
    fk_make(source, schema)
    line_ids = iter(range(1, 10**9))
    args = [pgarrow_bin(), "mirror", "-d", source, "--schema", schema, "--slot", slot,
            *fk_flags("delta", lake), "--json", "--catch-up", "--retry-for", "0"]
    ran(args)
    fk_work(source, schema, 10, 1, line_ids)
    order = [e["table"] for e in events(ran(args)) if e["event"] == "committed"]
    assert len(order) == 2, order
    fk_work(source, schema, 10, 2, line_ids)
    status = json.loads(ran(args + ["--status"]))
    second = next(t for t in status["tables"] if f'"{schema}"."{t["table"].split(".")[-1]}"' == order[1])
    blocker = pathlib.Path(second["lake_table"]) / "_delta_log" / f"{second['snapshot'] + 1:020}.json"
    blocker.mkdir()
    failed = subprocess.run(args, capture_output=True, text=True, timeout=300)
    blocker.rmdir()
    assert failed.returncode != 0, failed.stdout
    landed = [e for e in events(failed.stdout) if e["event"] == "committed"]
    assert [e["table"] for e in landed] == order[:1], failed.stdout
    point = landed[0]["lsn"]
    behind = json.loads(ran(args + ["--status"]))
    assert {t["table"]: t["lsn"] for t in behind["tables"]}[second["table"]] != point
    fk_work(source, schema, 10, 3, line_ids)
    ran(args)
    at = json.loads(ran(args + ["--at", point]))
    assert at["lsn"] == point and {t["recorded_lsn"] for t in at["tables"]} == {point}, at
    rows = read_at("delta", lake, at, None)
    assert fk_broken(rows["orders"], rows["lines"]) == []
    now = read_at("delta", lake, json.loads(ran(args + ["--at", "latest"])), None)
    for t in ("orders", "lines"):
        assert now[t] == sorted(rows_sql(source, f"SELECT * FROM {schema}.{t}")), t


def test_python_mirror_at_names_the_snapshots_the_command_names(source, lake, slot):
    """`pgarrow.mirror_at` gives what `pgarrow mirror --at` gives, for `latest` and for a
    `datetime`; text that is no point says so."""
    import pgarrow

    schema = "fk_python_at"
    fk_make(source, schema)
    catalog, data = lake
    named = dict(schema=schema, ducklake=catalog, slot=slot)
    pgarrow.mirror(source, **named, data_path=str(data), catch_up=True)
    fk_work(source, schema, 10, 5, iter(range(1, 10**9)))
    pgarrow.mirror(source, **named, data_path=str(data), catch_up=True, commit_changes=5)
    latest = pgarrow.mirror_at(source, **named)
    args = [pgarrow_bin(), "mirror", "-d", source, "--schema", schema, "--slot", slot,
            *fk_flags("ducklake", lake), "--json"]
    assert latest == json.loads(ran(args + ["--at", "latest"]))
    assert latest["lsn"] == latest["confirmed_lsn"] and len(latest["tables"]) == 2, latest
    when = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
        microseconds=latest["time_us"])
    assert pgarrow.mirror_at(source, **named, at=when)["tables"] == latest["tables"]
    with pytest.raises(pgarrow.UsageError, match="neither `latest`"):
        pgarrow.mirror_at(source, **named, at="not a point")


def test_tables_join_a_running_mirror_and_leave_it_with_no_change_lost_or_doubled(
        source, lake, slot, duckdb_lake):
    """A mirror of `--schema grow` running while a writer changes its tables all along: a
    table made in the schema (written to during its export too) joins it, exported in a
    snapshot of its own and then followed; one of another schema added to the mirror's
    publication joins it; a dropped table leaves it, its lake table kept, and so does one taken
    out of the publication; a table made while nothing else changes joins too. Afterwards each
    followed lake table equals the source, and the next run goes on with the tables there are
    now, exporting again the one taken out (its changes meanwhile are in no slot)."""
    run(source, "DROP SCHEMA IF EXISTS grow CASCADE; DROP SCHEMA IF EXISTS grow_other CASCADE; "
                "CREATE SCHEMA grow; CREATE SCHEMA grow_other")
    for t in ("grow.a", "grow.b", "grow.d", "grow_other.c"):
        make_table(source, t, rows=30)
    catalog, data = lake
    args = [pgarrow_bin(), "mirror", "-d", source, "--schema", "grow", "--slot", slot,
            "--ducklake", catalog, "--data-path", str(data), "--json"]
    ran(args + ["--catch-up"])
    proc = subprocess.Popen(args + ["--commit-interval", "0.2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = Lines(proc)
    stop = threading.Event()
    wrote = {"new": 0, "c": 0}

    def writer():
        with psycopg.connect(source, autocommit=True) as c:
            i = 100000
            while not stop.is_set():
                i += 1
                c.execute("INSERT INTO grow.a VALUES (%s, 'w', 'w', 1)", (i,))
                for t in ("new", "c"):
                    name = {"new": "grow.new", "c": "grow_other.c"}[t]
                    try:
                        with c.transaction():
                            c.execute(f"INSERT INTO {name} VALUES (%s, 'w', 'w', 1)", (i,))
                            c.execute(f"UPDATE {name} SET amount = amount + 1 WHERE id = 1")
                            c.execute(f"DELETE FROM {name} WHERE id = %s", (i - 3,))
                        wrote[t] += 1
                    except psycopg.errors.UndefinedTable:
                        pass
                time.sleep(0.005)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    seen = []

    def until(event, table):
        while True:
            e = lines.next()
            seen.append(e)
            if e["event"] == event and e["table"] == table:
                return e
    try:
        make_table(source, "grow.new", rows=20000)
        joined = until("joined", '"grow"."new"')
        assert joined["rows"] >= 20000 and joined["lake_table"] == "grow.new", joined
        run(source, f"ALTER PUBLICATION {slot} ADD TABLE grow_other.c")
        until("joined", '"grow_other"."c"')
        run(source, "DROP TABLE grow.b")
        left = until("left", '"grow"."b"')
        assert "publication" in left["why"], left
        run(source, f"ALTER PUBLICATION {slot} DROP TABLE grow.d")
        until("left", '"grow"."d"')
        # Changes while it is out of the publication are not in the slot.
        run(source, "UPDATE grow.d SET name = 'while out' WHERE id < 10")
        assert proc.poll() is None
        stop.set()
        thread.join()
        assert wrote["new"] > 0 and wrote["c"] > 0, wrote
        # On a source with nothing else going on, a table made in the schema joins all the same.
        make_table(source, "grow.late", rows=10)
        until("joined", '"grow"."late"')
        with psycopg.connect(source, autocommit=True) as c:
            end = int_lsn(c.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])
        lines.checkpoint_past(end - 1)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        assert proc.returncode == 0, proc.stderr.read()
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()

    def equal():
        for lake_table, table in (("grow.a", "grow.a"), ("grow.new", "grow.new"),
                                  ("grow_other.c", "grow_other.c"), ("grow.late", "grow.late")):
            got = duckdb_lake(catalog, f"SELECT id, name, big, amount FROM lake.{lake_table} ORDER BY id")
            assert [tuple(r) for r in got] == [tuple(r) for r in rows_of(source, table)], lake_table

    equal()
    # The dropped table's lake table is kept as its last commit left it.
    assert len(duckdb_lake(catalog, "SELECT * FROM lake.grow.b")) == 31
    # The next run follows the tables there are now (grow_other.c stays in the publication);
    # grow.d, which the patterns match, is put back in it and exported again, its changes while
    # out of it being in no slot.
    run(source, "UPDATE grow.new SET name = 'after' WHERE id < 100; UPDATE grow_other.c SET name = 'after'")
    after = ran(args + ["--catch-up"])
    moved = [(e["event"], e["table"]) for e in events(after) if e["event"] in ("joined", "left", "exported")]
    assert moved == [("joined", '"grow"."d"')], after
    done = [e for e in events(after) if e["event"] == "done"][0]["stats"]
    assert (done["joined"], done["left"]) == (1, 0), done
    equal()
    got = duckdb_lake(catalog, "SELECT id, name, big, amount FROM lake.grow.d ORDER BY id")
    assert [tuple(r) for r in got] == [tuple(r) for r in rows_of(source, "grow.d")]


def test_python_mirror_goes_on_from_the_tables_position(source, lake, slot, duckdb_lake):
    import pgarrow

    table = "mirror_py"
    make_table(source, table, rows=40)
    catalog, data = lake
    first = pgarrow.mirror(source, table=table, ducklake=catalog, data_path=str(data), slot=slot,
                           catch_up=True)
    assert first["exported"] and first["exported_rows"] == 41 and first["commits"] == 0
    run(source, f"UPDATE {table} SET name = 'py' WHERE id < 10; DELETE FROM {table} WHERE id > 30")
    second = pgarrow.mirror(source, table=table, ducklake=catalog, slot=slot, catch_up=True,
                            commit_interval=0)
    assert not second["exported"] and second["commits"] >= 1 and second["deleted"] >= 10
    assert lake_rows(duckdb_lake, lake, table) == [tuple(r) for r in rows_of(source, table)]
    with pytest.raises(pgarrow.UsageError, match="no primary key"):
        run(source, "DROP TABLE IF EXISTS mirror_py_nokey; CREATE TABLE mirror_py_nokey (a int)")
        pgarrow.mirror(source, table="mirror_py_nokey", ducklake=catalog, slot=slot + "x", catch_up=True)


class Lines:
    """A running mirror's JSON lines, read by a thread (a pipe's buffered lines are not seen by
    select): `next()` waits up to two minutes for one."""

    def __init__(self, proc):
        import queue

        self.queue = queue.Queue()
        self.proc = proc
        self.seen = []

        def read():
            for line in proc.stdout:
                self.queue.put(line)
            self.queue.put(None)

        threading.Thread(target=read, daemon=True).start()

    def next(self):
        import queue

        try:
            line = self.queue.get(timeout=120)
        except queue.Empty:
            raise AssertionError("the mirror said nothing for two minutes") from None
        assert line is not None, self.proc.stderr.read()
        event = json.loads(line)
        self.seen.append(event)
        return event

    def checkpoint_past(self, lsn):
        while True:
            e = self.next()
            if e["event"] == "checkpoint" and int_lsn(e["lsn"]) > lsn:
                return


def test_duckdb_maintenance_beside_a_running_mirror(source, lake, slot, duckdb_lake):
    table = "mirror_maint"
    make_table(source, table, rows=200)
    catalog = lake[0]
    proc = subprocess.Popen(mirror_args(source, lake, slot, table, "--commit-interval", "0"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc)
    try:
        assert lines.next()["event"] == "exported"
        work = Workload(source, table, seed=21)
        for _ in range(3):
            work.step()
            lines.checkpoint_past(work.inside)
        # DuckDB folds the delete files into new data files and merges them, ending the files
        # the running mirror indexed; its next deletes find them gone and it reads the table
        # again.
        duckdb_lake(catalog, "CALL ducklake_rewrite_data_files('lake', delete_threshold => 0); "
                             "CALL ducklake_merge_adjacent_files('lake'); SELECT 1")
        for _ in range(3):
            work.step()
            lines.checkpoint_past(work.inside)
        duckdb_lake(catalog, "CALL ducklake_expire_snapshots('lake', older_than => now()); "
                             "CALL ducklake_cleanup_old_files('lake', cleanup_all => true); SELECT 1")
        work.step()
        lines.checkpoint_past(work.inside)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        assert proc.returncode == 0, proc.stderr.read()
        while (e := lines.next())["event"] != "done":
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
    done = [e for e in lines.seen if e["event"] == "done"]
    assert done and done[0]["stats"]["retried"] >= 1, done
    assert work.check(lake_rows(duckdb_lake, lake, table), "the end") == len(work.history) - 1
    work.close()


# Delta tables: the same guarantees, deletes as deletion vectors. deltalake reads them in
# `DeltaTable.scan()` (at any version), DuckDB's delta extension in `delta_scan`.


def delta_rows(path, version=None, columns=("id", "name", "big", "amount")):
    """The Delta table's rows (by id) as deltalake reads them, deletion vectors applied."""
    import deltalake
    import pyarrow as pa

    got = pa.table(deltalake.DeltaTable(str(path), version=version).scan())
    return sorted(zip(*[got[c].to_pylist() for c in columns]))


def delta_readers_agree(path, commits, want, duckdb_delta):
    """The Delta mirror's table is what the protocol says (deletion vectors in files of the
    table, the feature in its protocol, a checkpoint past ten versions), and polars and DuckDB
    read `want` from it."""
    log = path / "_delta_log"
    actions = [json.loads(line) for f in sorted(log.glob("*.json")) for line in f.read_text().splitlines()]
    assert any(a.get("add", {}).get("deletionVector") for a in actions)
    protocol = [a["protocol"] for a in actions if "protocol" in a][-1]
    assert "deletionVectors" in protocol["readerFeatures"] and "deletionVectors" in protocol["writerFeatures"]
    assert list(path.glob("deletion_vector_*.bin"))
    if max(c["snapshot"] for c in commits) >= 10:
        assert list(log.glob("*.checkpoint.parquet"))
    # polars reads the same rows (its own Delta reader applies deletion vectors).
    import polars as pl

    got = pl.read_delta(str(path)).sort("id").select("id", "name", "big", "amount").rows()
    assert got == want
    got = duckdb_delta(f"SELECT id, name, big, amount FROM delta_scan('{path}') ORDER BY id")
    assert [tuple(r) for r in got] == want


def test_delta_columns_added_follow_and_a_drop_exports_the_table_again(source, lake, slot):
    table = "mirror_delta_schema"
    path = lake[1] / "delta" / table
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (id int PRIMARY KEY, name text, big text);
        ALTER TABLE {table} ALTER COLUMN big SET STORAGE EXTERNAL;
        INSERT INTO {table} SELECT g, 'n' || g, repeat(md5(g::text), 100) FROM generate_series(1, 20) g""")
    mirror(source, lake, slot, table, fmt="delta")
    run(source, f"UPDATE {table} SET name = 'before' WHERE id <= 3")
    run(source, f"ALTER TABLE {table} ADD COLUMN note text")
    run(source, f"INSERT INTO {table} VALUES (100, 'new', 'b', 'noted'); "
                f"UPDATE {table} SET note = 'later' WHERE id = 4")
    out = mirror(source, lake, slot, table, fmt="delta")
    changed = [e for e in events(out.stdout) if e["event"] == "schema_changed"]
    assert changed and changed[0]["added"] == ["note"], changed
    columns = ("id", "name", "big", "note")
    assert delta_rows(path, columns=columns) == rows_sql(source, f"SELECT {', '.join(columns)} FROM {table} ORDER BY id")
    # A dropped column: with --no-reexport the table stays at the commit before it, and the
    # mirror says why.
    run(source, f"UPDATE {table} SET name = 'last' WHERE id = 5")
    run(source, f"ALTER TABLE {table} DROP COLUMN name")
    run(source, f"UPDATE {table} SET note = 'after' WHERE id = 6")
    out = mirror(source, lake, slot, table, "--no-reexport", check=False, fmt="delta")
    assert out.returncode != 0 and "dropped" in out.stderr and "--start-over" in out.stderr, out.stderr
    assert dict((r[0], r[1]) for r in delta_rows(path, columns=("id", "name")))[5] == "last"
    # By default the table is exported again: its files no longer hold the column.
    out = mirror(source, lake, slot, table, fmt="delta")
    again = [e for e in events(out.stdout) if e["event"] == "reexported"]
    assert len(again) == 1 and "dropped" in again[0]["why"], out.stdout
    import deltalake

    assert "name" not in [f.name for f in deltalake.DeltaTable(str(path)).schema().fields]
    # Python goes on from there.
    import pgarrow

    run(source, f"UPDATE {table} SET note = 'python' WHERE id < 8; DELETE FROM {table} WHERE id = 9")
    stats = pgarrow.mirror(source, table=table, delta=str(path), slot=slot, catch_up=True)
    assert stats["commits"] == 1 and stats["deleted"] >= 8, stats
    columns = ("id", "big", "note")
    assert delta_rows(path, columns=columns) == rows_sql(source, f"SELECT {', '.join(columns)} FROM {table} ORDER BY id")


# Iceberg tables (format version 2): deletes as position delete files. pyiceberg reads them at
# any snapshot, DuckDB's iceberg extension at the current one, pgarrow's import applies them.


def iceberg_table(lake, table):
    from pyiceberg.catalog.sql import SqlCatalog

    uri = lake[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return SqlCatalog("default", uri=uri).load_table(f"default.{table}")


def iceberg_rows(lake, table, snapshot=None, columns=("id", "name", "big", "amount")):
    """The Iceberg table's rows (by id) as pyiceberg reads them, position deletes applied."""
    got = iceberg_table(lake, table).scan(snapshot_id=snapshot).to_arrow()
    return sorted(zip(*[got[c].to_pylist() for c in columns]))


def test_iceberg_columns_added_dropped_and_widened_keep_their_field_ids(source, lake, slot):
    table = "mirror_iceberg_schema"
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (id int PRIMARY KEY, name text, n int, big text);
        ALTER TABLE {table} ALTER COLUMN big SET STORAGE EXTERNAL;
        INSERT INTO {table} SELECT g, 'n' || g, g, repeat(md5(g::text), 100) FROM generate_series(1, 20) g""")
    mirror(source, lake, slot, table, fmt="iceberg")
    ids = {f.name: f.field_id for f in iceberg_table(lake, table).schema().fields}
    run(source, f"UPDATE {table} SET name = 'before' WHERE id <= 3")
    run(source, f"ALTER TABLE {table} ADD COLUMN note text")
    run(source, f"INSERT INTO {table} VALUES (100, 'new', 100, 'b', 'noted'); "
                f"UPDATE {table} SET note = 'later' WHERE id = 4")
    run(source, f"ALTER TABLE {table} DROP COLUMN name")
    run(source, f"ALTER TABLE {table} ALTER COLUMN n TYPE bigint")
    run(source, f"UPDATE {table} SET n = n + 5000000000 WHERE id IN (5, 6); DELETE FROM {table} WHERE id = 7")
    mirror(source, lake, slot, table, fmt="iceberg")
    schema = iceberg_table(lake, table).schema()
    now = {f.name: f.field_id for f in schema.fields}
    assert "name" not in now and str(schema.find_field("n").field_type) == "long", schema
    assert all(now[c] == ids[c] for c in ("id", "n", "big")) and now["note"] > max(ids.values())
    columns = ("id", "n", "big", "note")
    assert iceberg_rows(lake, table, columns=columns) == rows_sql(
        source, f"SELECT {', '.join(columns)} FROM {table} ORDER BY id")
    # Python goes on from the table's position.
    import pgarrow

    run(source, f"UPDATE {table} SET note = 'python' WHERE id < 8; DELETE FROM {table} WHERE id = 9")
    stats = pgarrow.mirror(source, table=table, iceberg=lake[0], slot=slot, catch_up=True)
    assert stats["commits"] == 1 and stats["deleted"] >= 6, stats
    assert iceberg_rows(lake, table, columns=columns) == rows_sql(
        source, f"SELECT {', '.join(columns)} FROM {table} ORDER BY id")
    with pytest.raises(pgarrow.UsageError, match="name the lake table"):
        pgarrow.mirror(source, table=table, iceberg=lake[0], delta="/tmp/x", slot=slot)


def test_iceberg_manifests_are_merged_and_every_snapshot_reads_the_same(source, lake, slot, duckdb_iceberg):
    """A commit a transaction: the manifest list would grow by two a commit; past 64 manifests
    a commit merges them (their entries kept, sequence numbers explicit), and every snapshot,
    before and after the merge, still reads as the source at its position."""
    table = "mirror_iceberg_merged"
    make_table(source, table, rows=50)
    mirror(source, lake, slot, table, fmt="iceberg")
    work = Workload(source, table, seed=23)
    for _ in range(45):
        work.step()
    out = mirror(source, lake, slot, table, "--commit-changes", "1", "--commit-interval", "0", fmt="iceberg")
    commits = [e for e in events(out.stdout) if e["event"] == "committed"]
    assert len(commits) >= 35, len(commits)
    for c in commits:
        work.check(iceberg_rows(lake, table, c["snapshot"]), f"snapshot {c['snapshot']}")
    loaded = iceberg_table(lake, table)
    manifests = loaded.current_snapshot().manifests(loaded.io)
    assert len(manifests) < 64, len(manifests)
    assert any("m-merged" in m.manifest_path for m in manifests), [m.manifest_path for m in manifests]
    assert work.check(iceberg_rows(lake, table), "the end") == len(work.history) - 1
    # DuckDB reads the merged manifests the same.
    got = duckdb_iceberg(f"SELECT id, name, big, amount FROM iceberg_scan('{loaded.metadata_location}') ORDER BY id")
    assert [tuple(r) for r in got] == [tuple(r) for r in rows_of(source, table)]
    work.close()


def test_a_partitioned_iceberg_mirror_deletes_in_each_partition(source, lake, slot, duckdb_iceberg):
    """An Iceberg table partitioned by a bucket of the key and a column's value: rows go into
    their partitions' files, each commit's position deletes into one delete file per partition
    it deletes from (a delete file applies to its own partition's data files); every snapshot
    reads as the source at its transaction, in pyiceberg, DuckDB and pgarrow's import, and
    compaction keeps the partitions."""
    table = "mirror_parts_iceberg"
    make_table(source, table)
    work = Workload(source, table, seed=17)
    mirror(source, lake, slot, table, "--files-by", "bucket(4, id)", "--files-by", "truncate(2, name)",
           fmt="iceberg")
    commits = []
    for round_ in range(6):
        for _ in range(3):
            work.step(truncate=(round_ == 4))
        out = mirror(source, lake, slot, table, fmt="iceberg")
        commits += [e for e in events(out.stdout) if e["event"] == "committed"]
    loaded = iceberg_table(lake, table)
    assert [f.transform.__class__.__name__ for f in loaded.spec().fields] == ["BucketTransform", "TruncateTransform"]
    # Deletes in several partitions: several delete files in one commit.
    deletes = [t for t in loaded.scan().plan_files() if t.delete_files]
    assert deletes, "no data file with deletes"
    per_commit = max(int(loaded.snapshot_by_id(c["snapshot"]).summary.get("added-delete-files", 0))
                     for c in commits)
    assert per_commit >= 2, [loaded.snapshot_by_id(c["snapshot"]).summary for c in commits]
    tasks = list(loaded.scan().plan_files())
    assert all(None not in tuple(t.file.partition) for t in tasks), [t.file.partition for t in tasks]
    assert len({tuple(t.file.partition)[0] for t in tasks}) == 4
    for t in deletes:
        for d in t.delete_files:
            assert d.partition == t.file.partition, (d.partition, t.file.partition)
    reached = [work.check(iceberg_rows(lake, table, c["snapshot"]), f"snapshot {c['snapshot']}")
               for c in commits]
    assert reached == sorted(reached) and reached[-1] == len(work.history) - 1, reached
    want = [tuple(r) for r in rows_of(source, table)]
    got = duckdb_iceberg(f"SELECT id, name, big, amount FROM iceberg_scan('{loaded.metadata_location}') ORDER BY id")
    assert [tuple(r) for r in got] == want
    import_back("iceberg", lake, source, table)
    # Compaction folds the deletes and keeps each file in one partition.
    upkeep("iceberg", lake, table, "compact")
    loaded = iceberg_table(lake, table)
    assert not [t for t in loaded.scan().plan_files() if t.delete_files]
    assert iceberg_rows(lake, table) == want
    work.step()
    mirror(source, lake, slot, table, fmt="iceberg")
    assert work.check(iceberg_rows(lake, table), "after compaction") == len(work.history) - 1
    work.close()


def test_a_partitioned_delta_mirror_reads_its_partition_values_back(source, lake, slot, duckdb_delta):
    """A Delta table partitioned by a column (its files leave the column out, the log holds
    each file's value): keys, unsent values and compaction's rows read the value back from the
    log; rows that move between partitions, key changes, deletes and a truncate come out equal
    in deltalake, polars, DuckDB and pgarrow's import."""
    table = "mirror_parts_delta"
    path = lake[1] / "delta" / table
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (region text NOT NULL, id int, name text, big text, PRIMARY KEY (region, id));
        ALTER TABLE {table} ALTER COLUMN big SET STORAGE EXTERNAL;
        INSERT INTO {table} SELECT (ARRAY['eu', 'us', 'ap'])[1 + g % 3], g, 'n' || g, repeat(md5(g::text), 100)
          FROM generate_series(1, 90) g""")
    columns = ("region", "id", "name", "big")

    def same():
        want = rows_sql(source, f"SELECT {', '.join(columns)} FROM {table} ORDER BY region, id")
        assert delta_rows(path, columns=columns) == sorted(want)
        return want

    mirror(source, lake, slot, table, "--files-by", "region", fmt="delta")
    import deltalake

    assert deltalake.DeltaTable(str(path)).metadata().partition_columns == ["region"]
    same()
    for sql in [
        # The TOASTed value unchanged, in a row that stays and in rows that move (the key's
        # partition column changes: a delete in one partition, an insert in another).
        f"UPDATE {table} SET name = 'stay' WHERE id % 10 = 1",
        f"UPDATE {table} SET region = 'sa' WHERE id % 10 = 2",
        f"DELETE FROM {table} WHERE id % 10 = 3",
        f"INSERT INTO {table} VALUES ('af', 1000, 'new', 'b'), ('eu', 1001, 'new', 'c')",
        f"UPDATE {table} SET id = id + 5000 WHERE id % 10 = 4",
    ]:
        run(source, sql)
    out = mirror(source, lake, slot, table, fmt="delta")
    assert [e for e in events(out.stdout) if e["event"] == "committed"], out.stdout
    same()
    run(source, f"BEGIN; TRUNCATE {table}; INSERT INTO {table} SELECT 'x' || (g % 2), g, 'after', repeat('t', 3000) "
                f"FROM generate_series(1, 20) g; COMMIT")
    run(source, f"UPDATE {table} SET name = 'toast kept' WHERE id < 5")
    mirror(source, lake, slot, table, fmt="delta")
    want = same()
    import polars as pl

    assert sorted(pl.read_delta(str(path)).select(*columns).rows()) == sorted(want)
    got = duckdb_delta(f"SELECT {', '.join(columns)} FROM delta_scan('{path}') ORDER BY region, id")
    assert [tuple(r) for r in got] == want
    # Compaction reads each file's rows with its partition value, and writes them back into
    # their partitions.
    run(source, f"DELETE FROM {table} WHERE id % 3 = 0")
    mirror(source, lake, slot, table, fmt="delta")
    upkeep("delta", lake, table, "compact")
    adds = [a["add"] for f in sorted((path / "_delta_log").glob("*.json"))
            for a in map(json.loads, f.read_text().splitlines()) if "add" in a]
    assert all(a["partitionValues"].get("region") for a in adds), adds
    run(source, f"UPDATE {table} SET name = 'after compaction' WHERE id = 1")
    mirror(source, lake, slot, table, fmt="delta")
    same()


def test_delta_mirror_goes_on_after_deltalake_compacts_the_table(source, lake, slot):
    """deltalake's OPTIMIZE (`optimize.compact()`) rewrites the mirrored table's files, its
    deletion vectors applied, between two runs: the next run reads the new files and goes on."""
    import deltalake

    table = "mirror_delta_compacted"
    path = lake[1] / "delta" / table
    make_table(source, table, rows=200)
    mirror(source, lake, slot, table, fmt="delta")
    work = Workload(source, table, seed=29)
    for _ in range(5):
        work.step()
    mirror(source, lake, slot, table, fmt="delta")
    before = deltalake.DeltaTable(str(path)).version()
    metrics = deltalake.DeltaTable(str(path)).optimize.compact()
    assert metrics["numFilesRemoved"] >= 2, metrics
    assert work.check(delta_rows(path), "compacted") == len(work.history) - 1
    for _ in range(5):
        work.step()
    out = mirror(source, lake, slot, table, fmt="delta")
    commits = [e for e in events(out.stdout) if e["event"] == "committed"]
    assert commits and all(c["snapshot"] > before + 1 for c in commits), commits
    assert work.check(delta_rows(path), "the end") == len(work.history) - 1
    work.close()


# Upkeep beside a running mirror: `pgarrow lake compact` and `pgarrow lake expire`.


def upkeep_flags(fmt, lake, table):
    """The flags naming `table`'s lake table for `pgarrow lake`."""
    return {
        "ducklake": ["--ducklake", lake[0], "--lake-table", f"main.{table}"],
        "delta": ["--delta", str(lake[1] / "delta" / table)],
        "iceberg": ["--iceberg", lake[0], "--lake-table", f"default.{table}"],
    }[fmt]


def upkeep(fmt, lake, table, *command):
    out = subprocess.run([pgarrow_bin(), "lake", *command, *upkeep_flags(fmt, lake, table), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def files_held(fmt, lake, table, duckdb_lake):
    """The files the lake table holds now (data files, and delete files or deletion vectors),
    by name, as the format's reader lists them; and the files of those kinds on disk."""
    catalog, data = lake
    if fmt == "delta":
        import deltalake

        path = data / "delta" / table
        import pyarrow as pa

        loaded = deltalake.DeltaTable(str(path))
        adds = loaded.get_add_actions(flatten=True)
        held = {os.path.basename(p) for p in adds.column("path").to_pylist()}
        # The files whose deletion vector drops a row (get_add_actions does not show vectors).
        vectors = pa.table(loaded.deletion_vectors()).column("selection_vector").to_pylist()
        dvs = [v for v in vectors if not all(v)]
        on_disk = {f.name for f in path.iterdir() if f.is_file()}
        return held, on_disk, len(dvs)
    if fmt == "iceberg":
        t = iceberg_table(lake, table)
        tasks = list(t.scan().plan_files())
        held = {os.path.basename(task.file.file_path) for task in tasks}
        deletes = {os.path.basename(d.file_path) for task in tasks for d in task.delete_files}
        on_disk = {f.name for f in (data / "default.db" / table / "data").iterdir()}
        return held | deletes, on_disk, len(deletes)
    rows = duckdb_lake(catalog, f"SELECT data_file, delete_file FROM ducklake_list_files('lake', '{table}')")
    held = {os.path.basename(r[0]) for r in rows} | {os.path.basename(r[1]) for r in rows if r[1]}
    on_disk = {f.name for f in (data / "main" / table).iterdir()}
    return held, on_disk, sum(1 for r in rows if r[1])


@pytest.mark.parametrize("fmt", FORMATS)
def test_compaction_and_expiry_beside_a_running_mirror(source, lake, slot, fmt, duckdb_lake):
    """While the source changes and the mirror commits, `pgarrow lake compact` rewrites the
    table's files (folding its deletes) and `pgarrow lake expire --older-than 0s` drops every
    snapshot but the newest and the files only they held. The mirror, finding its files
    rewritten, reads the table again; every read equals the source at a transaction; at the
    end a last compaction leaves no deletes and expiry leaves on disk only the files the
    table holds."""
    table = f"mirror_upkeep_{fmt}"
    make_table(source, table, rows=300)
    proc = subprocess.Popen(mirror_args(source, lake, slot, table, "--commit-interval", "0", fmt=fmt),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc)
    compacted, expired = [], []
    try:
        assert lines.next()["event"] == "exported"
        work = Workload(source, table, seed=37)
        for round in range(4):
            for _ in range(2):
                work.step()
                lines.checkpoint_past(work.inside)
            # Compaction runs while the source changes and the mirror commits.
            running = subprocess.Popen(
                [pgarrow_bin(), "lake", "compact", *upkeep_flags(fmt, lake, table), "--json",
                 "--retries", "100"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2):
                work.step()
                lines.checkpoint_past(work.inside)
            out, err = running.communicate(timeout=300)
            assert running.returncode == 0, err
            compacted.append(json.loads(out))
            if round == 0:
                # Within the retention: nothing goes.
                kept = upkeep(fmt, lake, table, "expire", "--older-than", "1h")
                assert kept["snapshots"] == 0 and kept["files"] == 0, kept
            expired.append(upkeep(fmt, lake, table, "expire", "--older-than", "0s"))
            work.check(rows_at(fmt, lake, table, duckdb_lake=duckdb_lake), f"round {round}")
        work.step()
        lines.checkpoint_past(work.inside)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        assert proc.returncode == 0, proc.stderr.read()
        while (e := lines.next())["event"] != "done":
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sum(c["commits"] for c in compacted) >= 2, compacted
    assert sum(c["deletes_folded"] for c in compacted) > 0, compacted
    assert not any(c["stepped_aside"] for c in compacted), compacted
    assert sum(e["snapshots"] for e in expired) > 0 and sum(e["files"] for e in expired) > 0, expired
    done = [e for e in lines.seen if e["event"] == "done"]
    assert done and done[0]["stats"]["retried"] >= 1, done
    assert work.check(rows_at(fmt, lake, table, duckdb_lake=duckdb_lake), "the end") == len(work.history) - 1
    # The mirror stopped: one last compaction folds every delete, and expiry leaves on disk
    # exactly the files the table holds.
    last = upkeep(fmt, lake, table, "compact")
    assert last["files_written"] == 1 and last["stepped_aside"] is False, last
    upkeep(fmt, lake, table, "expire", "--older-than", "0s")
    held, on_disk, deletes = files_held(fmt, lake, table, duckdb_lake)
    assert deletes == 0 and len(held) == 1, held
    assert {f for f in on_disk if f.endswith((".parquet", ".bin"))} == held, (on_disk, held)
    assert work.check(rows_at(fmt, lake, table, duckdb_lake=duckdb_lake), "compacted") == len(work.history) - 1
    import_back(fmt, lake, source, table)
    # And the mirror goes on from the compacted table.
    work.step()
    mirror(source, lake, slot, table, fmt=fmt)
    assert work.check(rows_at(fmt, lake, table, duckdb_lake=duckdb_lake), "after") == len(work.history) - 1
    work.close()


def test_python_compact_and_expire_lake(source, lake, slot, duckdb_lake):
    """`pgarrow.compact_lake` and `pgarrow.expire_lake`: a dry run changes nothing; the
    arguments are checked."""
    import pgarrow

    table = "mirror_py_upkeep"
    path = str(lake[1] / "delta" / table)
    make_table(source, table, rows=100)
    mirror(source, lake, slot, table, fmt="delta")
    work = Workload(source, table, seed=41)
    for _ in range(3):
        work.step()
    mirror(source, lake, slot, table, fmt="delta")
    stats = pgarrow.compact_lake(delta=path, target_file_bytes=64 << 20)
    assert stats["format"] == "delta" and stats["commits"] == 1 and stats["files_written"] == 1, stats
    assert stats["deletes_folded"] > 0, stats
    before = sorted(os.listdir(path))
    dry = pgarrow.expire_lake(delta=path, older_than=0, dry_run=True)
    assert dry["dry_run"] and dry["files"] > 0, dry
    assert sorted(os.listdir(path)) == before
    wet = pgarrow.expire_lake(delta=path, older_than=0)
    assert wet["files"] == dry["files"], (dry, wet)
    assert len(os.listdir(path)) < len(before)
    assert work.check(delta_rows(path), "expired") == len(work.history) - 1
    with pytest.raises(pgarrow.UsageError, match="name the lake table"):
        pgarrow.compact_lake(delta=path, ducklake=lake[0])
    with pytest.raises(pgarrow.UsageError, match="no Delta table|there is no"):
        pgarrow.expire_lake(delta=str(lake[1] / "nowhere"))
    work.close()


# `pgarrow apply` into lake tables: a changes directory `pgarrow changes` wrote, applied later.


@pytest.mark.parametrize("fmt", FORMATS)
def test_apply_changes_into_a_lake_table_once_each_through_kill_9(source, lake, slot, fmt,
                                                                duckdb_lake, tmp_path):
    """The table exported into a lake table in a new slot's snapshot (`export --replication-slot
    --create-slot --delta ...`), its changes written by `pgarrow changes` in several rolls,
    then applied by `pgarrow apply DIR --delta ...`, killed with SIGKILL after a random number
    of rolls six times: every read equals the source at a transaction, the end equals the
    source, and a rerun applies nothing."""
    table = f"apply_lake_{fmt}"
    make_table(source, table, rows=200)
    run(source, f"CREATE PUBLICATION {slot} FOR TABLE {table}")
    out = subprocess.run([pgarrow_bin(), "export", "-d", source, "-t", table, "--replication-slot",
                          slot, "--create-slot", *lake_flags(fmt, lake, table), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    work = Workload(source, table, seed=43)
    changes = tmp_path / "changes"
    for round_ in range(5):
        for _ in range(3):
            work.step(truncate=(round_ == 3))
        out = subprocess.run([pgarrow_bin(), "changes", "-d", source, "--slot", slot, "--publication",
                              slot, "-o", str(changes), "--catch-up", "--quiet"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
    with open(changes / "_changes.json") as f:
        rolls = len({f["checkpoint_lsn"] for f in json.load(f)["files"]})
    assert rolls >= 5, rolls
    apply = [pgarrow_bin(), "apply", str(changes), *upkeep_flags(fmt, lake, table)]
    rng = random.Random(7)
    for kill in range(6):
        proc = subprocess.Popen(apply, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Killed after a random number of its rolls (a line each, the ones applied before
        # too), or before it said anything.
        for _ in range(rng.randint(0, rolls + 1)):
            ready, _, _ = select.select([proc.stderr], [], [], 30)
            if not ready or not proc.stderr.readline():
                break
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        work.check(rows_at(fmt, lake, table, duckdb_lake=duckdb_lake), f"killed {kill}")
    done = subprocess.run([*apply, "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert work.check(rows_at(fmt, lake, table, duckdb_lake=duckdb_lake), "the end") == len(work.history) - 1
    import_back(fmt, lake, source, table)
    again = subprocess.run([*apply, "--json"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    stats = json.loads(again.stdout)
    assert stats["rolls"] == 0 and stats["rolls_skipped"] == rolls, stats
    # A mirror of the same slot goes on from where the applies left the table.
    work.step()
    mirror(source, lake, slot, table, fmt=fmt)
    assert work.check(rows_at(fmt, lake, table, duckdb_lake=duckdb_lake), "mirrored") == len(work.history) - 1
    work.close()


def test_apply_into_a_lake_table_of_a_table_without_a_key_under_replica_identity_full(
        source, lake, slot, duckdb_lake, tmp_path):
    """The changes of a table without a key under REPLICA IDENTITY FULL (their files say so)
    are applied by whole rows, identical rows counted."""
    table = "apply_full"
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (a int, b text);
        ALTER TABLE {table} REPLICA IDENTITY FULL;
        INSERT INTO {table} SELECT g % 4, 'b' || (g % 2) FROM generate_series(1, 40) g;
        CREATE PUBLICATION {slot} FOR TABLE {table}""")
    out = subprocess.run([pgarrow_bin(), "export", "-d", source, "-t", table, "--replication-slot",
                          slot, "--create-slot", *lake_flags("ducklake", lake, table), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    run(source, f"UPDATE {table} SET b = 'u' WHERE ctid IN (SELECT ctid FROM {table} WHERE a = 1 LIMIT 3); "
                f"DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} WHERE a = 2 LIMIT 4); "
                f"INSERT INTO {table} VALUES (5, 'n'), (5, 'n')")
    changes = tmp_path / "changes"
    out = subprocess.run([pgarrow_bin(), "changes", "-d", source, "--slot", slot, "--publication",
                          slot, "-o", str(changes), "--catch-up", "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([pgarrow_bin(), "apply", str(changes), *upkeep_flags("ducklake", lake, table)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    want = sorted(rows_sql(source, f"SELECT a, b FROM {table}"))
    assert sorted(read_columns("ducklake", lake, table, ("a", "b"), duckdb_lake)) == want


def test_apply_into_a_lake_table_says_what_is_missing(source, lake, slot, tmp_path):
    """A lake table that does not exist, or does not record the slot, is refused with how to
    make it; Python's `apply_changes(..., delta=...)` applies as the command line does."""
    import pgarrow

    table = "apply_lake_refused"
    make_table(source, table, rows=50)
    run(source, f"CREATE PUBLICATION {slot} FOR TABLE {table}")
    path = lake[1] / "delta" / table
    out = subprocess.run([pgarrow_bin(), "export", "-d", source, "-t", table, "--replication-slot",
                          slot, "--create-slot", "--delta", str(path), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    work = Workload(source, table, seed=47)
    for _ in range(3):
        work.step()
    changes = tmp_path / "changes"
    out = subprocess.run([pgarrow_bin(), "changes", "-d", source, "--slot", slot, "--publication",
                          slot, "-o", str(changes), "--catch-up", "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    nowhere = subprocess.run([pgarrow_bin(), "apply", str(changes), "--delta", str(lake[1] / "nowhere")],
                             capture_output=True, text=True)
    assert nowhere.returncode != 0 and "export the table into it" in nowhere.stderr, nowhere.stderr
    # A table exported outside the slot's snapshot records no slot.
    other = lake[1] / "delta" / "other"
    out = subprocess.run([pgarrow_bin(), "export", "-d", source, "-t", table, "--delta", str(other), "--quiet"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    unrecorded = subprocess.run([pgarrow_bin(), "apply", str(changes), "--delta", str(other)],
                                capture_output=True, text=True)
    assert unrecorded.returncode != 0 and "records no replication slot" in unrecorded.stderr, unrecorded.stderr
    # The bookkeeping's budget and spill directory reach the lake apply: changes past a
    # quarter of 4KiB are set aside there (a directory that does not exist is named).
    with pytest.raises(pgarrow.Error, match="no-such-spill-dir"):
        pgarrow.apply_changes(None, str(changes), delta=str(path), memory_limit="4KiB",
                              spill_dir=tmp_path / "no-such-spill-dir")
    spill = tmp_path / "apply-spill"
    spill.mkdir()
    stats = pgarrow.apply_changes(None, str(changes), delta=str(path), memory_limit=4096,
                                  spill_dir=spill)
    assert stats["rolls"] >= 1 and stats["tables"] == [str(path)], stats
    assert list(spill.iterdir()) == []
    for refused in (dict(memory_limit="1GiB"), dict(spill_dir=spill)):
        with pytest.raises(pgarrow.UsageError, match="lake table's bookkeeping"):
            pgarrow.apply_changes(source, str(changes), **refused)
    into_pg = subprocess.run([pgarrow_bin(), "apply", str(changes), "-d", source, "--spill-dir",
                              str(spill)], capture_output=True, text=True)
    assert into_pg.returncode == 2 and "lake table's bookkeeping" in into_pg.stderr, into_pg.stderr
    assert work.check(delta_rows(path), "applied") == len(work.history) - 1
    assert pgarrow.apply_changes(None, str(changes), delta=str(path))["rolls"] == 0
    with pytest.raises(pgarrow.UsageError, match="PostgreSQL's"):
        pgarrow.apply_changes(None, str(changes), delta=str(path), state_table="x")
    work.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_object_store_refusing_writes_stops_the_mirror_with_nothing_committed(
        source, lake, slot, fmt, s3_auth):
    """The lake table on an object store (moto enforcing IAM): a run whose credentials may
    only read fails at its first write, naming it, with nothing committed (the table, read
    back, is the source at its last commit); the next run, allowed to write, goes on and loses
    and doubles nothing."""
    table = f"mirror_s3_{fmt}"
    prefix = f"s3://{s3_auth.bucket}/{slot}"
    named = {
        "ducklake": (["--ducklake", lake[0], "--data-path", f"{prefix}/"],
                     ["--ducklake", lake[0], "--lake-table", f"main.{table}"]),
        "delta": (["--delta", f"{prefix}/delta"], ["--delta", f"{prefix}/delta"]),
        "iceberg": (["--iceberg", lake[0], "--warehouse", prefix],
                    ["--iceberg", lake[0], "--lake-table", f"default.{table}"]),
    }[fmt]

    def storage(options):
        return [a for k, v in options.items() for a in ("--storage-option", f"{k}={v}")]

    def run_mirror(options):
        return subprocess.run(
            [pgarrow_bin(), "mirror", "-d", source, "-t", table, "--slot", slot, *named[0],
             *storage(options), "--catch-up", "--json"],
            capture_output=True, text=True, timeout=300)

    def read_back():
        back = subprocess.run(
            [pgarrow_bin(), "import", "-d", source, "--quiet", *named[1], *storage(s3_auth.admin_options),
             "--into", f"{table}_back", "--create", "--mode", "replace"],
            capture_output=True, text=True, timeout=300)
        assert back.returncode == 0, back.stderr
        return [tuple(r) for r in rows_of(source, f"{table}_back")]

    make_table(source, table, rows=100)
    first = run_mirror(s3_auth.admin_options)
    assert first.returncode == 0, first.stderr
    work = Workload(source, table, seed=53)
    for _ in range(3):
        work.step()
    refused = run_mirror(s3_auth.readonly_options)
    assert refused.returncode != 0, refused.stdout
    assert "403" in refused.stderr or "denied" in refused.stderr.lower(), refused.stderr
    assert not [e for e in events(refused.stdout) if e["event"] == "committed"], refused.stdout
    assert work.check(read_back(), "refused") == 0
    done = run_mirror(s3_auth.admin_options)
    assert done.returncode == 0, done.stderr
    assert work.check(read_back(), "the end") == len(work.history) - 1
    work.close()


def index_stats(out):
    """The key index's statistics of a finished `--json` run."""
    done = [e for e in events(out.stdout) if e["event"] == "done"]
    assert done, out.stdout
    return done[0]["stats"]["index"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_run_reads_only_what_its_changes_need_of_the_key_index(source, lake, slot, fmt,
                                                                 duckdb_lake):
    """The key index is persisted with the table: a run with nothing to do reads none of it
    and no data file; a run after a few updates reads a few of its blocks, not the table's
    keys; a compaction between runs makes the next one read the compacted files' keys only;
    the table equals the source after each."""
    table = f"mirror_index_{fmt}"
    make_table(source, table, rows=6_000)
    first = index_stats(mirror(source, lake, slot, table, fmt=fmt))
    assert first["files_read"] >= 1 and first["disk_entries"] == 6_001, first
    assert first["memory_entries"] == 0 and first["runs"] >= 1, first
    key_bytes = 8 * 6_001
    idle = index_stats(mirror(source, lake, slot, table, fmt=fmt))
    assert idle["files_read"] == 0 and idle["read_bytes"] == 0 and idle["lookups"] == 0, idle
    assert idle["read_bytes"] + idle["files_read_bytes"] < key_bytes / 100, idle
    said = subprocess.run([pgarrow_bin(), "mirror", "-d", source, "-t", table, "--slot", slot,
                           *lake_flags(fmt, lake, table), "--catch-up", "--stats"],
                          capture_output=True, text=True, timeout=300)
    assert said.returncode == 0, said.stderr
    assert "key index: 6,001 entries on disk" in said.stderr and "0 keys looked up" in said.stderr, said.stderr
    work = Workload(source, table, seed=71)
    work.step()
    few_run = mirror(source, lake, slot, table, fmt=fmt)
    few = index_stats(few_run)
    assert few["files_read"] == 0 and few["lookups"] > 0, few
    # Each commit's phases, within its time.
    for c in [e for e in events(few_run.stdout) if e["event"] == "committed"]:
        phases = [c[k] for k in ("fold_s", "write_s", "publish_s", "index_s")]
        assert all(p >= 0 for p in phases) and c["write_s"] > 0, c
        assert sum(phases) <= c["commit_s"] * 1.01 + 0.001, c
    assert 0 < few["read_bytes"] < first["disk_bytes"] / 2, (few, first)
    work.check(rows_at(fmt, lake, table, duckdb_lake=duckdb_lake), "a few changes")
    # Compacted beside the mirror: the next run reads the keys of the files it wrote.
    compacted = upkeep(fmt, lake, table, "compact")
    assert compacted["files_written"] >= 1, compacted
    work.step()
    after = index_stats(mirror(source, lake, slot, table, fmt=fmt))
    assert 1 <= after["files_read"] <= compacted["files_written"], (after, compacted)
    assert work.check(rows_at(fmt, lake, table, duckdb_lake=duckdb_lake), "compacted") == len(work.history) - 1
    # The index directory is the table's own, beside its files; removed, it is built again.
    homes = [p for p in lake[1].rglob("_pgarrow_index") if p.is_dir()]
    assert len(homes) == 1, homes
    import shutil
    shutil.rmtree(homes[0])
    work.step()
    rebuilt = index_stats(mirror(source, lake, slot, table, fmt=fmt))
    assert rebuilt["files_read"] >= 1 and rebuilt["runs"] >= 1, rebuilt
    assert work.check(rows_at(fmt, lake, table, duckdb_lake=duckdb_lake), "rebuilt") == len(work.history) - 1
    work.close()


def test_an_idle_run_reads_from_the_object_store_under_one_percent_of_the_key_column(
        source, slot, s3):
    """Measured by the storage, not by pgarrow's own counters: moto's recorder logs every
    request of a `--catch-up` run with nothing to do on a Delta table of 300,000 rows in S3.
    The bytes its GETs of data files and of the key index ask for (each range's length, an
    object's size when whole) are under 1% of the key column's bytes in the data files. With
    the index removed, the same measure sees the run read the key column again: it is one
    that can fail."""
    import io
    import pyarrow.parquet as pq

    table = "mirror_idle_s3"
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (id bigint PRIMARY KEY, n int NOT NULL);
        INSERT INTO {table} SELECT g, g % 1000 FROM generate_series(1, 300000) g""")
    client = s3.client()
    bucket = "pgarrow-idle"
    client.create_bucket(Bucket=bucket)
    root = f"s3://{bucket}/{table}"
    storage = [a for k, v in s3.storage_options.items() for a in ("--storage-option", f"{k}={v}")]

    def run_mirror():
        out = subprocess.run([pgarrow_bin(), "mirror", "-d", source, "-t", table, "--slot", slot,
                              "--delta", root, *storage, "--catch-up", "--json"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return out

    def objects():
        got = client.list_objects_v2(Bucket=bucket, Prefix=f"{table}/")
        return {o["Key"]: o["Size"] for o in got.get("Contents", [])}

    def bytes_read(requests, sizes):
        """Bytes the GETs asked for, of data files and index files, and of all objects."""
        data_and_index, every = 0, 0
        for r in requests:
            path = urlparse(r["url"]).path.lstrip("/")
            key = path.removeprefix(f"{bucket}/")
            if r["method"] != "GET" or key not in sizes:
                continue  # a list, a HEAD, a PUT
            ranged = {k.lower(): v for k, v in r["headers"].items()}.get("range")
            if ranged:
                start, _, end = ranged.removeprefix("bytes=").partition("-")
                n = (int(end) if end else sizes[key] - 1) - int(start) + 1
            else:
                n = sizes[key]
            every += n
            if "/_delta_log/" not in key:
                data_and_index += n
        return data_and_index, every

    first = run_mirror()
    assert [e for e in events(first.stdout) if e["event"] == "exported"], first.stdout
    sizes = objects()
    data_files = [k for k in sizes if k.endswith(".parquet") and "/_delta_log/" not in k
                  and "/_pgarrow_index/" not in k]
    assert data_files, sizes
    key_bytes = 0
    for k in data_files:
        meta = pq.ParquetFile(io.BytesIO(client.get_object(Bucket=bucket, Key=k)["Body"].read())).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                if meta.row_group(g).column(c).path_in_schema == "id":
                    key_bytes += meta.row_group(g).column(c).total_compressed_size
    assert key_bytes > 100_000, key_bytes

    with s3.recorded() as requests:
        idle = run_mirror()
    assert requests, "moto recorded no request of the run"
    read, total = bytes_read(requests, sizes)
    stats = [e for e in events(idle.stdout) if e["event"] == "done"][0]["stats"]
    assert stats["changes"] == 0, stats
    assert read < key_bytes / 100, (read, total, key_bytes)
    print(f"idle run: {read:,} bytes of data and index files read ({total:,} with the log), "
          f"key column {key_bytes:,} bytes")

    # The control: without its index the run reads the key column's chunks again.
    for k in [k for k in sizes if "/_pgarrow_index/" in k]:
        client.delete_object(Bucket=bucket, Key=k)
    sizes = objects()
    with s3.recorded() as requests:
        run_mirror()
    rebuilt, _ = bytes_read(requests, sizes)
    assert rebuilt >= key_bytes, (rebuilt, key_bytes)


@pytest.mark.parametrize("fmt", ["delta", "ducklake"])
def test_kill_9_while_the_index_spills_and_merges_loses_and_doubles_nothing(source, lake, slot,
                                                                           fmt, duckdb_lake):
    """Under a memory limit that holds about a thousand of the index's entries, a commit of
    thousands of new rows writes its entries out in runs and merges them; killed with SIGKILL
    at random moments (in a spill, a merge, between a commit and its index), each next run
    finds the table right, and the end equals the source, read back into PostgreSQL."""
    table = f"mirror_spilled_{fmt}"
    make_table(source, table, rows=3_000)
    limit = ["--memory-limit", "64KiB"]
    mirror(source, lake, slot, table, fmt=fmt)
    rng = random.Random(9)
    start = 200_000

    def inserted(n):
        nonlocal start
        run(source, f"INSERT INTO {table} SELECT g, 'x' || g, 'b', 1 FROM "
                    f"generate_series({start}, {start + n - 1}) g")
        run(source, f"UPDATE {table} SET name = name || '!' WHERE id % 7 = {rng.randint(0, 6)}")
        start += n

    inserted(3_000)
    spilled = index_stats(mirror(source, lake, slot, table, *limit, fmt=fmt))
    # Spilled in runs, which the commit's index then keeps apart or merges.
    assert spilled["spills"] >= 1 and (spilled["runs"] >= 2 or spilled["merges"] >= 1), spilled
    for _ in range(12):
        inserted(rng.randint(500, 3_000))
        killed_at_random(mirror_args(source, lake, slot, table, *limit, "--commit-changes",
                                     str(rng.randint(300, 3_000)), "--commit-interval", "0",
                                     fmt=fmt),
                         rng)
    last = index_stats(mirror(source, lake, slot, table, *limit, fmt=fmt))
    # Runs merged as they came: a few, not one per spill.
    assert last["memory_entries"] == 0 and 1 <= last["runs"] <= 12, last
    # Read back into PostgreSQL (its deletes applied), it is the source.
    import_back(fmt, lake, source, table)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_transaction_larger_than_the_budget_is_set_aside_and_committed_whole(
        source, lake, slot, fmt, duckdb_lake):
    """Under a memory limit far below one transaction's changes, they are set aside on disk
    and folded bucket by bucket: updates that leave the TOASTed column unchanged (taken from
    the lake table's rows), deletes and inserts in one transaction, then a truncate followed by
    new rows in another; an update that changes keys folds whole. Each run commits its
    transactions whole, and the table read back into PostgreSQL is the source."""
    table = f"mirror_large_{fmt}"
    make_table(source, table, rows=3_000)
    mirror(source, lake, slot, table, fmt=fmt)
    limit = ["--memory-limit", "256KiB", "--commit-changes", "1000000"]
    with psycopg.connect(source) as c:
        c.execute(f"UPDATE {table} SET name = name || '+' WHERE id > 0")
        c.execute(f"DELETE FROM {table} WHERE id % 5 = 0 AND id > 0")
        c.execute(f"INSERT INTO {table} SELECT g, 'new' || g, 'b', 2 FROM generate_series(5000, 7999) g")
        c.execute(f"UPDATE {table} SET amount = amount + 1 WHERE id % 3 = 0")
    out = mirror(source, lake, slot, table, *limit, fmt=fmt)
    done = [e for e in events(out.stdout) if e["event"] == "done"][0]["stats"]
    committed = [e for e in events(out.stdout) if e["event"] == "committed"]
    assert len(committed) == 1, committed
    assert done["set_aside_bytes"] > 256 * 1024 and done["folded_in_buckets"] == 1, done
    assert committed[0]["changes"] == done["changes"] > 8_000, (committed, done)
    import_back(fmt, lake, source, table)
    # A truncate in the middle of a transaction: what came before it goes.
    with psycopg.connect(source) as c:
        c.execute(f"UPDATE {table} SET name = name || '-'")
        c.execute(f"TRUNCATE {table}")
        c.execute(f"INSERT INTO {table} SELECT g, 't' || g, repeat('x', 3000), g FROM generate_series(1, 4000) g")
        c.execute(f"UPDATE {table} SET name = name || '!' WHERE id % 2 = 0")
    done = [e for e in events(mirror(source, lake, slot, table, *limit, fmt=fmt).stdout)
            if e["event"] == "done"][0]["stats"]
    assert done["truncates"] == 1 and done["folded_in_buckets"] == 1, done
    import_back(fmt, lake, source, table)
    # Keys changed: folded whole, still right.
    with psycopg.connect(source) as c:
        c.execute(f"UPDATE {table} SET name = name || '*'")
        c.execute(f"UPDATE {table} SET id = id + 100000 WHERE id <= 50")
    done = [e for e in events(mirror(source, lake, slot, table, *limit, fmt=fmt).stdout)
            if e["event"] == "done"][0]["stats"]
    assert done["set_aside_bytes"] > 0 and done["folded_in_buckets"] == 0, done
    import_back(fmt, lake, source, table)


def server_streamed(source, slot):
    """Transactions the server streamed to `slot` before their commit (PostgreSQL 14+)."""
    with psycopg.connect(source) as c:
        row = c.execute("SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = %s",
                        (slot,)).fetchone()
    return row[0] if row else 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_streamed_transaction_is_committed_whole_and_an_aborted_one_leaves_nothing(
        source, lake, slot, fmt):
    """The test cluster streams every transaction past 64kB (`logical_decoding_work_mem`)
    before its commit. One that commits, with a savepoint rolled back inside it, lands whole
    after a small one that committed while it ran; one aborted after being streamed leaves
    nothing; the run's statistics and the server's say so, and the table read back into
    PostgreSQL is the source."""
    table = f"mirror_streamed_{fmt}"
    make_table(source, table, rows=2_000)
    mirror(source, lake, slot, table, fmt=fmt)
    with psycopg.connect(source) as big, psycopg.connect(source) as gone:
        big.execute(f"UPDATE {table} SET name = name || '+' WHERE id <= 1500")
        gone.execute(f"INSERT INTO {table} SELECT g, 'gone', repeat('g', 500), 0 "
                     "FROM generate_series(100000, 103000) g")
        run(source, f"UPDATE {table} SET amount = -1 WHERE id = 1900")
        big.execute("SAVEPOINT a")
        big.execute(f"DELETE FROM {table} WHERE id <= 1500")
        big.execute(f"INSERT INTO {table} SELECT g, 'rolled back', repeat('r', 500), 0 "
                    "FROM generate_series(200000, 203000) g")
        big.execute("ROLLBACK TO a")
        big.execute(f"INSERT INTO {table} SELECT g, 'kept', repeat('k', 200), g "
                    "FROM generate_series(5000, 7999) g")
        gone.rollback()
        big.commit()
    run(source, f"DELETE FROM {table} WHERE id = 1901")
    done = [e for e in events(mirror(source, lake, slot, table, fmt=fmt).stdout)
            if e["event"] == "done"][0]["stats"]
    streamed = done["streamed"]
    assert streamed["committed"] >= 1 and streamed["aborted"] == 1, streamed
    assert streamed["rolled_back"] >= 1 and streamed["bytes"] > 64 * 1024, streamed
    assert server_streamed(source, slot) >= 2
    import_back(fmt, lake, source, table)
    with psycopg.connect(source) as c:
        assert c.execute(f"SELECT count(*) FROM {table}_back WHERE id >= 100000").fetchone()[0] == 0


def test_one_transaction_updating_five_million_rows_under_a_256mib_limit(source, lake, slot,
                                                                         tmp_path, duckdb_delta):
    """The issue's test: a table of 5,000,000 rows mirrored, then one transaction updating
    every row, mirrored under `memory_limit="256MiB"` (the release engine, through Python). The
    transaction is streamed by the server, set aside on disk, folded in buckets and committed
    whole in one commit; the process's peak memory (the kernel's high-water mark, less what the
    interpreter held once pgarrow was imported) stays near the limit, and the Delta table, read
    by DuckDB, holds the source's rows."""
    table = "mirror_five_million"
    n = 5_000_000
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (id bigint PRIMARY KEY, n bigint NOT NULL, v text NOT NULL);
        INSERT INTO {table} SELECT g, g, 'v' FROM generate_series(1, {n}) g""")
    path = lake[1] / "delta" / table
    spill = tmp_path / "spill"
    spill.mkdir()
    # The high-water mark of the process's own memory (/proc: ru_maxrss would count the
    # pytest process it was forked from).
    script = (
        "import json, sys, pgarrow\n"
        "def mem(field):\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith(field + ':'):\n"
        "            return int(line.split()[1]) * 1024\n"
        "base = mem('VmRSS')\n"
        "url, table, path, slot, spill = sys.argv[1:]\n"
        "stats = pgarrow.mirror(url, table=table, delta=path, slot=slot, catch_up=True,\n"
        "                       memory_limit='256MiB', spill_dir=spill, commit_changes=10**9)\n"
        "print(json.dumps({'stats': stats, 'base': base, 'peak': mem('VmHWM')}))\n"
    )

    def measured():
        out = subprocess.run([sys.executable, "-c", script, source, table, str(path), slot,
                              str(spill)], capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout)
        return got["stats"], got["peak"] - got["base"]

    first, first_peak = measured()
    assert first["exported_rows"] == n, first
    run(source, f"UPDATE {table} SET n = n + 1, v = 'w'")
    stats, peak = measured()
    assert stats["commits"] == 1 and stats["changes"] == n, stats
    assert stats["folded_in_buckets"] == 1 and stats["set_aside_bytes"] > 256 << 20, stats
    assert stats["streamed"]["committed"] == 1 and stats["streamed"]["bytes"] > 256 << 20, stats
    assert list(spill.iterdir()) == []
    limit = 256 << 20
    print(f"peak memory past the interpreter's: the first run {first_peak >> 20} MiB, the "
          f"5M-row transaction {peak >> 20} MiB (limit {limit >> 20} MiB)")
    assert first_peak <= 1.25 * limit and peak <= 1.6 * limit, (first_peak, peak)
    with psycopg.connect(source) as c:
        want = c.execute(f"SELECT count(*), sum(id), sum(n), sum(id * n), "
                         f"count(*) FILTER (WHERE v = 'w') FROM {table}").fetchone()
    got = duckdb_delta(f"SELECT count(*), sum(id), sum(n), sum(id * n::hugeint), "
                       f"count(*) FILTER (WHERE v = 'w') FROM delta_scan('{path}')")[0]
    assert tuple(int(x) for x in got) == tuple(int(x) for x in want), (got, want)
    run(source, f"DROP TABLE {table}")


def test_python_mirror_sets_a_large_transaction_aside_in_its_spill_dir(source, lake, slot, tmp_path,
                                                                       duckdb_lake):
    """`pgarrow.mirror(memory_limit=..., spill_dir=...)`: a transaction past the budget is set
    aside in the spill directory, folded in buckets and committed whole; nothing is left in
    the directory afterwards; the statistics say what the index holds."""
    import pgarrow

    table = "mirror_py_large"
    make_table(source, table, rows=2_000)
    catalog, data = lake
    pgarrow.mirror(source, table=table, ducklake=catalog, data_path=str(data), slot=slot,
                   catch_up=True)
    run(source, f"UPDATE {table} SET name = name || '+'; DELETE FROM {table} WHERE id % 4 = 0")
    spill = tmp_path / "spill"
    spill.mkdir()
    stats = pgarrow.mirror(source, table=table, ducklake=catalog, slot=slot, catch_up=True,
                           memory_limit="256KiB", spill_dir=spill, commit_changes=10**9)
    assert stats["set_aside_bytes"] > 0 and stats["folded_in_buckets"] == 1, stats
    assert stats["index"]["disk_entries"] >= 1_500 and stats["index"]["lookups"] > 0, stats
    assert list(spill.iterdir()) == []
    assert lake_rows(duckdb_lake, lake, table) == [tuple(r) for r in rows_of(source, table)]
    with pytest.raises(pgarrow.UsageError, match="memory_limit"):
        pgarrow.mirror(source, table=table, ducklake=catalog, slot=slot, catch_up=True,
                       memory_limit="lots")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("key", ["uuid", "text", "composite"])
def test_keys_of_every_kind_go_through_the_persisted_index_and_the_buckets(source, lake, slot, fmt,
                                                                          key):
    """A uuid key, a text key and a two-column key: the index is persisted and read only for
    the changed keys (nothing on an idle run), a transaction past the budget folds in buckets,
    and the table read back into PostgreSQL is the source, row for row."""
    table = f"mirror_key_{key}_{fmt}"
    columns, pk, values = {
        "uuid": ("id uuid", "id", "md5(g::text)::uuid"),
        "text": ("id text", "id", "'k' || g::text"),
        "composite": ("a int, b text", "a, b", "g % 97, 'b' || (g / 97)::text"),
    }[key]
    run(source, f"""DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} ({columns}, n int, v text, PRIMARY KEY ({pk}));
        INSERT INTO {table} SELECT {values}, g, 'v' || g FROM generate_series(1, 4000) g""")
    mirror(source, lake, slot, table, fmt=fmt)
    idle = index_stats(mirror(source, lake, slot, table, fmt=fmt))
    assert idle["read_bytes"] == 0 and idle["files_read"] == 0 and idle["disk_entries"] == 4000, idle
    run(source, f"UPDATE {table} SET v = v || '+' WHERE n % 3 = 0; DELETE FROM {table} WHERE n % 7 = 0; "
                f"INSERT INTO {table} SELECT {values}, g, 'new' FROM generate_series(4001, 6000) g")
    out = mirror(source, lake, slot, table, "--memory-limit", "256KiB", fmt=fmt)
    done = [e for e in events(out.stdout) if e["event"] == "done"][0]["stats"]
    # Only the files the commit wrote are read for their keys (its rows came from disk).
    assert done["folded_in_buckets"] == 1 and done["index"]["files_read"] <= done["files"], done
    catalog, data = lake
    named = {
        "ducklake": ["--ducklake", catalog, "--lake-table", f"main.{table}"],
        "delta": ["--delta", str(data / "delta" / table)],
        "iceberg": ["--iceberg", catalog, "--lake-table", f"default.{table}"],
    }[fmt]
    back = subprocess.run(
        [pgarrow_bin(), "import", "-d", source, "--quiet", *named, "--into", f"{table}_back",
         "--create", "--mode", "replace"], capture_output=True, text=True)
    assert back.returncode == 0, back.stderr
    cast = {"uuid": "id::text", "text": "id", "composite": "a, b"}[key]
    with psycopg.connect(source, autocommit=True) as c:
        differ = c.execute(
            f"SELECT count(*) FROM ((SELECT {cast}, n, v FROM {table} EXCEPT ALL "
            f"SELECT {cast}, n, v FROM {table}_back) UNION ALL (SELECT {cast}, n, v FROM "
            f"{table}_back EXCEPT ALL SELECT {cast}, n, v FROM {table})) d").fetchone()[0]
        assert differ == 0
        assert c.execute(f"SELECT count(*) FROM {table}_back").fetchone()[0] == 4000 - 571 + 2000


def test_views_a_schema_holds_are_left_out_of_its_mirror_and_one_named_is_refused(source, lake, slot, duckdb_lake,
                                                                                    capfd):
    """`--schema` matching a view and a materialized view beside a table: the table is
    mirrored, the others left out, each named as such; a view named by `--table` is refused by
    name; a schema of views alone is refused, naming them."""
    run(source, """DROP SCHEMA IF EXISTS with_views CASCADE; CREATE SCHEMA with_views;
        CREATE TABLE with_views.t (id int PRIMARY KEY, x int); INSERT INTO with_views.t VALUES (1, 1), (2, 2);
        CREATE VIEW with_views.v AS SELECT * FROM with_views.t;
        CREATE MATERIALIZED VIEW with_views.m AS SELECT * FROM with_views.t;
        DROP SCHEMA IF EXISTS only_views CASCADE; CREATE SCHEMA only_views;
        CREATE VIEW only_views.v AS SELECT 1 AS one""")
    base = [pgarrow_bin(), "mirror", "-d", source, *fk_flags("ducklake", lake), "--catch-up"]
    args = base + ["--slot", slot]
    out = subprocess.run(args + ["--schema", "with_views"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert 'warning: "with_views"."v" (a view) publishes no changes: not mirrored' in out.stderr, out.stderr
    assert '"with_views"."m" (a materialized view) publishes no changes: not mirrored' in out.stderr, out.stderr
    run(source, "INSERT INTO with_views.t VALUES (3, 3)")
    ran(args + ["--schema", "with_views"])
    assert duckdb_lake(lake[0], "SELECT count(*) FROM lake.with_views.t") == [(3,)]
    # From Python: the same tables, the same warning.
    import pgarrow

    capfd.readouterr()
    run(source, "INSERT INTO with_views.t VALUES (4, 4)")
    stats = pgarrow.mirror(source, schema="with_views", ducklake=lake[0], slot=slot, catch_up=True)
    assert stats["tables"] == ['"with_views"."t"'], stats
    assert '"with_views"."v" (a view) publishes no changes: not mirrored' in capfd.readouterr().err
    assert duckdb_lake(lake[0], "SELECT count(*) FROM lake.with_views.t") == [(4,)]
    assert duckdb_lake(lake[0], "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake'") == [(1,)]
    named = subprocess.run(base + ["--slot", f"{slot}_v", "-t", "with_views.v", "-t", "with_views.t"],
                           capture_output=True, text=True, timeout=300)
    assert named.returncode == 2 and '"with_views"."v" is not a table' in named.stderr, named.stderr
    alone = subprocess.run(base + ["--slot", f"{slot}_o", "--schema", "only_views"], capture_output=True,
                           text=True, timeout=300)
    assert alone.returncode == 2 and 'no table to mirror: the patterns match only "only_views"."v" (a view)' \
        in alone.stderr, alone.stderr
