"""Iceberg tables behind real REST catalog servers (issue #68): SeaweedFS (OAuth2 client
credentials, data in its own S3) and Rustberg (an API key, a local warehouse), each test run
once per server. pgarrow exports, imports and mirrors through the catalog (`--iceberg
http://... --iceberg-property KEY=VALUE`); pyiceberg's RestCatalog and DuckDB 1.5.5's iceberg
extension read what it committed. The network faults (an answer lost after the server applied
a commit, a commit held back while another writer commits) come from a proxy the test runs in
front of the real server: the only fake here."""

import http.client
import json
import os
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import psycopg
import pyarrow as pa
import pytest

from rest_catalogs import flags
from test_delta import same
from test_ducklake import export, normalized, pgarrow_bin
from test_iceberg import COLUMNS, TYPES, server_rows


def run(*args, check=True):
    out = subprocess.run([pgarrow_bin(), *args], capture_output=True, text=True, timeout=300)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def drop_slot(conn, slot):
    """Drops replication slot `slot` if it is there."""
    conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                 "WHERE slot_name = %s", (slot,))


def new_name(prefix="t"):
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def duckdb_rows(duckdb_iceberg, server, sql):
    return duckdb_iceberg(f"{server.duckdb_attach()};\n{sql}")


def pyiceberg_rows(server, name, columns):
    table = server.pyiceberg().load_table(name)
    got = table.scan().to_arrow().sort_by("id").select(columns)
    return [normalized(tuple(r.values())) for r in got.to_pylist()]


def test_every_type_goes_out_and_back_read_by_pyiceberg_and_duckdb(url, conn, rest_catalog, duckdb_iceberg):
    server, src, lake = rest_catalog, new_name("types"), f"rest_types.{new_name()}"
    conn.execute(TYPES.format(name=src))
    report = json.loads(export(url, "-t", src, *flags(server, lake)).stdout)
    assert report["format"] == "iceberg" and report["created"] and report["rows"] == 3, report
    table = server.pyiceberg().load_table(lake)
    # The server placed the table and holds its metadata; pgarrow's report names that file.
    assert report["metadata_location"] == table.metadata_location
    assert table.current_snapshot().summary["pgarrow"], table.current_snapshot().summary
    want = server_rows(conn, src)
    got = table.scan().to_arrow().sort_by("id")
    same([tuple(r.values()) for r in got.select(COLUMNS.split(", ")).to_pylist()], want)
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert types["amount"] == "decimal(12, 2)" and types["stamp_tz"] == "timestamptz" and types["uid"] == "uuid"
    # DuckDB, through the catalog.
    ns, name = lake.split(".")
    rows = duckdb_rows(duckdb_iceberg, server, f"SELECT id, amount, label, day FROM w.{ns}.{name} ORDER BY id")
    assert [tuple(r) for r in rows] == [(w[0], w[3], w[6], w[8]) for w in want], rows
    # And back into PostgreSQL by pgarrow's import: the same rows.
    back = new_name("back")
    conn.execute(f"CREATE TABLE {back} (LIKE {src})")
    run("import", "-d", url, *flags(server, lake), "--into", back, "--quiet")
    assert server_rows(conn, back) == want


def test_partitioned_appends_and_incremental_runs(url, conn, rest_catalog):
    server, src = rest_catalog, new_name("inc")
    conn.execute(f"CREATE TABLE {src} (id int PRIMARY KEY, region text, day date)")
    conn.execute(f"INSERT INTO {src} SELECT g, (ARRAY['eu','us','ap'])[g % 3 + 1], DATE '2026-01-01' + g % 40 "
                 "FROM generate_series(1, 100) g")
    lake = f"rest_parts.{new_name()}"
    export(url, "-t", src, *flags(server, lake), "--files-by", "region", "--files-by", "month(day)",
           "--partitions", "2")
    export(url, "-t", src, *flags(server, lake), "--if-exists", "append")
    table = server.pyiceberg().load_table(lake)
    assert [f.name for f in table.spec().fields] == ["region", "day_month"]
    assert table.scan().to_arrow().num_rows == 200 and len(table.metadata.snapshots) == 2
    # An incremental run: each run appends what changed since the last, its state in the commit.
    inc = f"rest_parts.{new_name()}"
    first = json.loads(export(url, "-t", src, "--incremental-by", "id", *flags(server, inc)).stdout)
    conn.execute(f"INSERT INTO {src} SELECT g, 'eu', DATE '2026-03-01' FROM generate_series(101, 130) g")
    second = json.loads(export(url, "-t", src, "--incremental-by", "id", *flags(server, inc)).stdout)
    assert first["rows"] == 100 and second["rows"] == 30 and second["incremental"]["run"] == 2, second
    ids = server.pyiceberg().load_table(inc).scan().to_arrow()["id"].to_pylist()
    assert sorted(ids) == list(range(1, 131))


@pytest.fixture
def source(logical_url):
    """A connection to the database of the mirror tests (wal_level = logical)."""
    with psycopg.connect(logical_url, autocommit=True) as c:
        yield c


def test_a_mirror_follows_changes_and_a_schema_change(logical_url, source, rest_catalog, duckdb_iceberg):
    server, src, conn = rest_catalog, new_name("m"), source
    conn.execute(f"CREATE TABLE {src} (id bigint PRIMARY KEY, name text, amount numeric(12,2))")
    conn.execute(f"INSERT INTO {src} SELECT g, 'n' || g, g * 1.25 FROM generate_series(1, 300) g")
    lake, slot = f"rest_mirror.{src}", new_name("slot")

    def mirror():
        out = run("mirror", "-d", logical_url, "-t", src, "--slot", slot, *flags(server, lake), "--catch-up",
                  "--json")
        return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]

    def check(columns):
        want = [normalized(r) for r in conn.execute(f"SELECT {', '.join(columns)} FROM {src} ORDER BY id")]
        assert pyiceberg_rows(server, lake, columns) == want
        ns, name = lake.split(".")
        got = duckdb_rows(duckdb_iceberg, server, f"SELECT {', '.join(columns)} FROM w.{ns}.{name} ORDER BY id")
        assert [normalized(tuple(r)) for r in got] == want

    try:
        assert mirror()[-1]["stats"]["exported"]
        check(["id", "name", "amount"])
        conn.execute(f"UPDATE {src} SET name = 'u' || id WHERE id <= 40")
        conn.execute(f"DELETE FROM {src} WHERE id BETWEEN 100 AND 150")
        conn.execute(f"INSERT INTO {src} SELECT g, 'new', 1 FROM generate_series(1000, 1020) g")
        done = mirror()[-1]["stats"]
        assert done["commits"] >= 1 and done["deleted"] >= 51, done
        check(["id", "name", "amount"])
        conn.execute(f"ALTER TABLE {src} ADD COLUMN note text")
        conn.execute(f"UPDATE {src} SET note = 'noted' WHERE id % 7 = 0")
        mirror()
        check(["id", "name", "amount", "note"])
    finally:
        drop_slot(conn, slot)


class Proxy:
    """A proxy in front of a real catalog: forwards every request, and lets a test act on a
    commit (a POST to a table, or a multi-table transaction) before or after the server has it:
    `hold` (an event the commit waits on before it is forwarded), `lose_answer` (the server
    applies it; the client gets a 500 instead of its answer). `committed` lists each commit's
    path."""

    def __init__(self, upstream: str):
        self.upstream = urlparse(upstream)
        self.hold: threading.Event | None = None
        self.held = threading.Event()
        self.lose_answer = 0
        # Commits answered `200` with an error body, not forwarded (as some servers answer).
        self.error_200 = 0
        # Vended credentials in a table's load answer told to expire a second later
        # (`short_vended`), and how many such answers went by (`vended`).
        self.short_vended = False
        self.vended = 0
        self.commits = 0
        self.committed: list[str] = []
        # Tokens: `tokens` = "short" gives each a lifetime of one second in the token answer,
        # "silent" gives none; with `one_use`, a token is refused (401) after its first request,
        # as an expired one is.
        self.tokens: str | None = None
        self.one_use = False
        self.issued = 0
        self.used: set[str] = set()
        self.aliases: dict[str, str] = {}
        self.refused = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, data, headers=()):
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                commit = (self.command == "POST" and b'"updates"' in body
                          and ("/tables/" in self.path or self.path.endswith("/transactions/commit")))
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                if proxy.one_use and token and not self.path.endswith("/oauth/tokens"):
                    if token in proxy.used:
                        proxy.refused += 1
                        return self.answer(401, b'{"error": {"message": "token expired", '
                                                b'"type": "NotAuthorizedException", "code": 401}}')
                    proxy.used.add(token)
                real = proxy.aliases.get(token)
                if commit:
                    proxy.commits += 1
                    proxy.committed.append(self.path)
                    if proxy.error_200 > 0:
                        proxy.error_200 -= 1
                        return self.answer(200, b'{"error": {"message": "the backend refused it", '
                                                b'"type": "CommitFailedException", "code": 500}}')
                    if proxy.hold is not None:
                        proxy.held.set()
                        proxy.hold.wait(60)
                c = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                if real is not None:
                    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                    headers["Authorization"] = f"Bearer {real}"
                c.request(self.command, self.path, body=body or None, headers=headers)
                r = c.getresponse()
                data = r.read()
                if commit and proxy.lose_answer > 0:
                    proxy.lose_answer -= 1
                    status, data = 500, b'{"error": {"message": "proxy lost the answer", "type": "X", "code": 500}}'
                else:
                    status = r.status
                if proxy.short_vended and self.command == "GET" and "/tables/" in self.path and status == 200:
                    loaded = json.loads(data)
                    configs = [loaded.get("config") or {}] + [
                        c.get("config") or {} for c in loaded.get("storage-credentials") or []]
                    soon = str(int(time.time() * 1000) + 1000)
                    for config in configs:
                        if "s3.session-token-expires-at-ms" in config:
                            config["s3.session-token-expires-at-ms"] = soon
                    if any("s3.session-token" in c for c in configs):
                        proxy.vended += 1
                    data = json.dumps(loaded).encode()
                if self.path.endswith("/oauth/tokens") and status == 200 and proxy.tokens:
                    proxy.issued += 1
                    grant = json.loads(data)
                    # A token of its own each time (the server's are the same within a second).
                    alias = f"alias-{proxy.issued}"
                    proxy.aliases[alias] = grant["access_token"]
                    grant["access_token"] = alias
                    if proxy.tokens == "short":
                        grant["expires_in"] = 1
                    else:
                        grant.pop("expires_in", None)
                    data = json.dumps(grant).encode()
                self.answer(status, data, r.getheaders())

            do_GET = do_POST = do_HEAD = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def proxy(rest_catalog):
    p = Proxy(rest_catalog.uri)
    yield p
    p.close()


def test_a_commit_whose_answer_is_lost_after_it_landed_is_applied_once(url, conn, rest_catalog, proxy):
    server, src, lake = rest_catalog, new_name("lost"), f"rest_faults.{new_name()}"
    conn.execute(f"CREATE TABLE {src} AS SELECT g AS id FROM generate_series(1, 50) g")
    export(url, "-t", src, *flags(server, lake))
    # The append's commit reaches the server, which applies it; pgarrow gets a 500.
    proxy.lose_answer = 1
    out = export(url, "-t", src, *flags(server, lake, uri=proxy.uri), "--if-exists", "append")
    report = json.loads(out.stdout)
    table = server.pyiceberg().load_table(lake)
    assert table.current_snapshot().snapshot_id == report["snapshot"]
    assert len(table.metadata.snapshots) == 2, "the commit landed once"
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == sorted(list(range(1, 51)) * 2)


def held_append(url, conn, server, proxy, prefix, rows):
    """A new table of ids 1..rows exported into a new lake table, then an append of it started
    through the proxy, which holds its commit: (source table, lake table, the append's process)."""
    src, lake = new_name(prefix), f"rest_faults.{new_name()}"
    conn.execute(f"CREATE TABLE {src} AS SELECT g::bigint AS id FROM generate_series(1, {rows}) g")
    export(url, "-t", src, *flags(server, lake))
    proxy.hold = threading.Event()
    p = subprocess.Popen([pgarrow_bin(), "export", "-d", url, "--quiet", "--json", "-t", src,
                          *flags(server, lake, uri=proxy.uri), "--if-exists", "append"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return src, lake, p


def test_a_success_answer_carrying_an_error_fails_naming_it_and_leaves_nothing(url, conn, rest_catalog, proxy):
    """A server that answers `200` with an error body (the commit not applied): the export
    fails in the server's words, the table keeps its one snapshot, and the append's data file
    is removed; the same for a transaction of two tables."""
    server, src, lake = rest_catalog, new_name("err200"), f"rest_faults.{new_name()}"
    conn.execute(f"CREATE TABLE {src} AS SELECT g::bigint AS id FROM generate_series(1, 12) g")
    export(url, "-t", src, *flags(server, lake))
    table = server.pyiceberg().load_table(lake)
    before = data_files(server, table.location())
    proxy.error_200 = 1
    out = export(url, "-t", src, *flags(server, lake, uri=proxy.uri), "--if-exists", "append", check=False)
    assert out.returncode != 0
    assert "with success and an error" in out.stderr and "the backend refused it" in out.stderr, out.stderr
    assert len(server.pyiceberg().load_table(lake).metadata.snapshots) == 1
    assert data_files(server, table.location()) == before
    schema = new_name("err200s")
    conn.execute(f"CREATE SCHEMA {schema}")
    for t in "ab":
        conn.execute(f"CREATE TABLE {schema}.{t} AS SELECT g::bigint AS id FROM generate_series(1, 5) g")
    export(url, "--schema", schema, *flags(server, None))
    proxy.error_200 = 1
    out = export(url, "--schema", schema, *flags(server, None, uri=proxy.uri), "--if-exists", "append", check=False)
    assert out.returncode != 0 and "the backend refused it" in out.stderr, out.stderr
    assert [p.rsplit("/", 2)[-2:] for p in proxy.committed][-1] == ["transactions", "commit"]
    cat = server.pyiceberg()
    assert [len(cat.load_table(f"{schema}.{t}").metadata.snapshots) for t in "ab"] == [1, 1]


def killed_while_held(server, proxy, p):
    """Kills `server` while the proxy holds the commit of `p` (a pgarrow process), lets the
    commit go on to the dead server, waits for `p` and starts the server again: `p`'s stderr."""
    try:
        assert proxy.held.wait(120), p.communicate()
        server.stop(kill=True)
    finally:
        proxy.hold.set()
        _, stderr = p.communicate(timeout=300)
        server.start()
    return stderr


def test_a_commit_overtaken_by_pyiceberg_is_redone_on_top_of_it(url, conn, rest_catalog, proxy):
    """pgarrow's commit is held at the proxy while pyiceberg appends: the server answers 409,
    and pgarrow reads the table again and commits on top. Every row once."""
    server = rest_catalog
    src, lake, p = held_append(url, conn, server, proxy, "race", 20)
    try:
        assert proxy.held.wait(120), p.communicate()
        theirs = server.pyiceberg().load_table(lake)
        theirs.append(pa.table({"id": pa.array(range(1000, 1005), pa.int64())}))
    finally:
        proxy.hold.set()
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    assert json.loads(stdout)["retried"] >= 1
    ids = sorted(server.pyiceberg().load_table(lake).scan().to_arrow()["id"].to_pylist())
    assert ids == sorted(list(range(1, 21)) * 2 + list(range(1000, 1005)))


def test_a_server_killed_and_started_again_loses_and_doubles_nothing(logical_url, source, rest_catalog):
    server, src, conn = rest_catalog, new_name("restart"), source
    conn.execute(f"CREATE TABLE {src} (id bigint PRIMARY KEY, v int)")
    conn.execute(f"INSERT INTO {src} SELECT g, 0 FROM generate_series(1, 100) g")
    lake, slot = f"rest_restart.{src}", new_name("slot")
    args = ["mirror", "-d", logical_url, "-t", src, "--slot", slot, *flags(server, lake), "--catch-up", "--json"]
    try:
        run(*args)
        conn.execute(f"UPDATE {src} SET v = v + 1 WHERE id <= 30")
        server.stop(kill=True)
        # Told not to try through it, the run gives up on the catalog that does not answer.
        failed = run(*args, "--retry-for", "0", check=False)
        assert failed.returncode != 0 and "REST catalog" in failed.stderr, failed.stderr
        server.start()
        run(*args)
        want = [normalized(r) for r in conn.execute(f"SELECT id, v FROM {src} ORDER BY id")]
        assert pyiceberg_rows(server, lake, ["id", "v"]) == want
    finally:
        drop_slot(conn, slot)


def test_compaction_and_expiry_through_the_catalog(url, conn, rest_catalog):
    server, src, lake = rest_catalog, new_name("maint"), f"rest_maint.{new_name()}"
    conn.execute(f"CREATE TABLE {src} AS SELECT g::bigint AS id FROM generate_series(1, 40) g")
    for k in range(4):
        export(url, "-t", src, *flags(server, lake), *(["--if-exists", "append"] if k else []))
    compacted = json.loads(run("lake", "compact", *flags(server, lake), "--json").stdout)
    assert compacted["files_rewritten"] >= 4 and compacted["files_written"] == 1, compacted
    expired = json.loads(run("lake", "expire", *flags(server, lake), "--older-than", "0s", "--json").stdout)
    assert expired["snapshots"] >= 4, expired
    table = server.pyiceberg().load_table(lake)
    assert len(table.metadata.snapshots) == 1
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == sorted(list(range(1, 41)) * 4)


def test_refused_credentials_name_the_server_answer_and_never_the_secret(url, conn, rest_catalog):
    server, src = rest_catalog, new_name("auth")
    conn.execute(f"CREATE TABLE {src} AS SELECT 1 AS id")
    wrong = {"credential": "pgarrowtestkey:not-the-secret-xyz"} if server.name == "seaweedfs" else {
        "token": "rb_not-the-secret-xyz"}
    out = export(url, "-t", src, *flags(server, f"rest_auth.{src}", **wrong), check=False)
    assert out.returncode != 0
    assert "not-the-secret-xyz" not in out.stderr + out.stdout
    assert "HTTP 401" in out.stderr or "HTTP 403" in out.stderr, out.stderr


def test_requests_signed_with_aws_sigv4_are_taken_and_a_wrong_key_is_refused(url, conn, seaweedfs):
    """SeaweedFS's catalog verifies AWS SigV4 signatures (as AWS Glue's and S3 Tables' do):
    pgarrow signs every request with `rest.sigv4-enabled` and the `client.*` keys, exports,
    appends and imports; a wrong secret is refused by the server, and never shown."""
    server, src = seaweedfs, new_name("sigv4")
    conn.execute(f"CREATE TABLE {src} AS SELECT g::bigint AS id, 'v' || g AS v FROM generate_series(1, 25) g")
    lake = f"rest_sigv4.{src}"

    def signed(**over):
        props = {k: v for k, v in server.properties.items() if k not in ("credential", "oauth2-server-uri")}
        props.update({"rest.sigv4-enabled": "true", "rest.signing-region": "us-east-1",
                      "rest.signing-name": "s3tables", "client.access-key-id": server.key_id,
                      "client.secret-access-key": server.secret})
        props.update(over)
        out = ["--iceberg", props.pop("uri"), "--lake-table", lake]
        for k, v in props.items():
            if v is not None:
                out += ["--iceberg-property", f"{k}={v}"]
        return out

    # No AWS_* variables of another test's emulator: the keys are the properties' only.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}

    def pgarrow(*args):
        return subprocess.run([pgarrow_bin(), *args], capture_output=True, text=True, env=env)

    for more in ([], ["--if-exists", "append"]):
        out = pgarrow("export", "-d", url, "--quiet", "-t", src, *signed(), *more)
        assert out.returncode == 0, out.stderr
    table = server.pyiceberg().load_table(lake)
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == sorted(list(range(1, 26)) * 2)
    back = new_name("back")
    conn.execute(f"CREATE TABLE {back} (LIKE {src})")
    out = pgarrow("import", "-d", url, *signed(), "--into", back, "--quiet")
    assert out.returncode == 0, out.stderr
    assert conn.execute(f"SELECT count(*), sum(id) FROM {back}").fetchone() == (50, 650)
    out = pgarrow("export", "-d", url, "-t", src, *signed(**{"client.secret-access-key": "not-it-xyz"}),
                  "--if-exists", "append")
    assert out.returncode != 0 and "HTTP 403" in out.stderr and "signature" in out.stderr, out.stderr
    assert "not-it-xyz" not in out.stderr + out.stdout
    # Without keys: named before any request is sent.
    out = pgarrow("export", "-d", url, "-t", src, *signed(**{"client.access-key-id": None,
                                                               "client.secret-access-key": None}))
    assert out.returncode != 0 and "client.access-key-id" in out.stderr, out.stderr
    assert len(server.pyiceberg().load_table(lake).metadata.snapshots) == 2


def test_vended_credentials_are_the_only_storage_keys_a_run_needs(url, conn, logical_url, source, seaweedfs):
    """A SeaweedFS that vends each table's credentials (an STS session narrowed to the table's
    path, in the load answer's `config` and `storage-credentials`): pgarrow, given no S3 keys
    of its own, asks for them and exports, appends, mirrors and imports with them. The same
    run against a server that vends nothing fails: no other keys were at hand."""
    from rest_catalogs import SeaweedFS

    src, lake = new_name("vend"), f"rest_vend.{new_name()}"
    conn.execute(f"CREATE TABLE {src} (id bigint PRIMARY KEY, v int)")
    conn.execute(f"INSERT INTO {src} SELECT g, 0 FROM generate_series(1, 40) g")
    # No AWS_* variables of another test's emulator: the vended keys are the only ones.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}

    def pgarrow(server, *args):
        keyless = {k: v for k, v in server.properties.items()
                   if k not in ("s3.access-key-id", "s3.secret-access-key")}
        props = {**keyless}
        via = ["--iceberg", props.pop("uri"), "--lake-table", lake]
        for k, v in props.items():
            via += ["--iceberg-property", f"{k}={v}"]
        return subprocess.run([pgarrow_bin(), *args[:1], *via, *args[1:]], capture_output=True, text=True,
                              env=env, timeout=300)

    refused = pgarrow(seaweedfs, "export", "-d", url, "-t", src, "--quiet")
    assert refused.returncode != 0, "a server that vends nothing leaves the run without keys"
    server = SeaweedFS(vend=True).start()
    slot = new_name("slot")
    try:
        for more in ([], ["--if-exists", "append"]):
            out = pgarrow(server, "export", "-d", url, "-t", src, "--quiet", *more)
            assert out.returncode == 0, out.stderr
        ids = server.pyiceberg().load_table(lake).scan().to_arrow()["id"].to_pylist()
        assert sorted(ids) == sorted(list(range(1, 41)) * 2)
        back = new_name("back")
        conn.execute(f"CREATE TABLE {back} (LIKE {src})")
        out = pgarrow(server, "import", "-d", url, "--into", back, "--quiet")
        assert out.returncode == 0, out.stderr
        assert conn.execute(f"SELECT count(*) FROM {back}").fetchone() == (80,)
        # A mirror into a table of its own, its changes written with the vended keys.
        lake = f"rest_vend.{new_name()}"
        source.execute(f"CREATE TABLE {src}_m (id bigint PRIMARY KEY, v int)")
        source.execute(f"INSERT INTO {src}_m SELECT g, 0 FROM generate_series(1, 40) g")
        args = ["-d", logical_url, "-t", f"{src}_m", "--slot", slot, "--catch-up", "--json"]
        out = pgarrow(server, "mirror", *args)
        assert out.returncode == 0, out.stderr
        source.execute(f"UPDATE {src}_m SET v = id % 5 WHERE id <= 25")
        source.execute(f"DELETE FROM {src}_m WHERE id > 35")
        out = pgarrow(server, "mirror", *args)
        assert out.returncode == 0, out.stderr
        want = [normalized(r) for r in source.execute(f"SELECT id, v FROM {src}_m ORDER BY id")]
        assert pyiceberg_rows(server, lake, ["id", "v"]) == want
    finally:
        drop_slot(source, slot)
        server.stop()
        server.cleanup()


def test_a_mirror_renews_vended_credentials_before_they_expire(logical_url, source):
    """The vending SeaweedFS's credentials, told by the proxy to expire a second after each
    load: before each commit the mirror loads the table again for new ones (it renews those
    due within five minutes), and goes on with no keys of its own."""
    from rest_catalogs import SeaweedFS

    server = SeaweedFS(vend=True).start()
    proxy = Proxy(server.uri)
    proxy.short_vended = True
    src, slot = new_name("renew"), new_name("slot")
    lake = f"rest_vend.{src}"
    source.execute(f"CREATE TABLE {src} (id bigint PRIMARY KEY, v int)")
    source.execute(f"INSERT INTO {src} SELECT g, 0 FROM generate_series(1, 30) g")
    keyless = {k: v for k, v in server.properties.items() if k not in ("s3.access-key-id", "s3.secret-access-key")}
    keyless.pop("uri")
    via = ["--iceberg", proxy.uri, "--lake-table", lake]
    for k, v in {**keyless, "oauth2-server-uri": f"{proxy.uri}/v1/oauth/tokens"}.items():
        via += ["--iceberg-property", f"{k}={v}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    args = [pgarrow_bin(), "mirror", "-d", logical_url, "-t", src, "--slot", slot, *via, "--catch-up", "--json"]
    try:
        out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        for k in range(4):
            source.execute(f"UPDATE {src} SET v = {k + 1} WHERE id % 4 = {k}")
        loads = proxy.vended
        out = subprocess.run([*args, "--commit-changes", "1"], capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        commits = json.loads(out.stdout.splitlines()[-1])["stats"]["commits"]
        assert commits >= 2, out.stdout
        # One load to open the table, then one more before each commit.
        assert proxy.vended - loads >= commits + 1, (proxy.vended - loads, commits)
        want = [normalized(r) for r in source.execute(f"SELECT id, v FROM {src} ORDER BY id")]
        assert pyiceberg_rows(server, lake, ["id", "v"]) == want
    finally:
        drop_slot(source, slot)
        proxy.close()
        server.stop()
        server.cleanup()


@pytest.mark.parametrize("tokens", ["short", "silent"])
def test_a_mirror_goes_on_as_its_tokens_expire(logical_url, source, seaweedfs, tokens):
    """Tokens good for one request: told to expire in a second, pgarrow renews each before it
    is due and none is refused; told nothing, each is refused once it expired (401), and
    pgarrow fetches a new one and sends the request again. The mirror goes on either way."""
    proxy = Proxy(seaweedfs.uri)
    proxy.tokens, proxy.one_use = tokens, True
    server, src, conn = seaweedfs, new_name("tok"), source
    conn.execute(f"CREATE TABLE {src} (id bigint PRIMARY KEY, v int)")
    conn.execute(f"INSERT INTO {src} SELECT g, 0 FROM generate_series(1, 50) g")
    lake, slot = f"rest_tokens.{src}", new_name("slot")
    via = flags(server, lake, uri=proxy.uri, **{"oauth2-server-uri": f"{proxy.uri}/v1/oauth/tokens"})
    args = ["mirror", "-d", logical_url, "-t", src, "--slot", slot, *via, "--catch-up", "--json"]
    try:
        run(*args)
        for k in range(3):
            conn.execute(f"UPDATE {src} SET v = {k + 1} WHERE id % 3 = {k}")
        run(*args, "--commit-changes", "1")
        want = [normalized(r) for r in conn.execute(f"SELECT id, v FROM {src} ORDER BY id")]
        assert pyiceberg_rows(server, lake, ["id", "v"]) == want
        assert proxy.issued >= 4, proxy.issued
        if tokens == "short":
            assert proxy.refused == 0, "a token renewed before it is due is never refused"
        else:
            assert proxy.refused >= 2, proxy.refused
    finally:
        proxy.close()
        drop_slot(conn, slot)


def data_files(server, location):
    """The names of the Parquet files under the table's `data/`, as the store has them."""
    if location.startswith("file://"):
        root = location.removeprefix("file://") + "/data"
        return {f for _, _, files in os.walk(root) for f in files if f.endswith(".parquet")}
    import boto3

    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3", endpoint_url=server.s3_endpoint, aws_access_key_id=server.key_id,
                      aws_secret_access_key=server.secret, region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/data/")
    return {o["Key"].rsplit("/", 1)[-1] for page in pages for o in page.get("Contents", [])
            if o["Key"].endswith(".parquet")}


def test_a_server_killed_during_a_commit_keeps_the_files_and_the_table_whole(url, conn, rest_catalog, proxy):
    """The commit is on its way (held at the proxy) when the server is killed: pgarrow cannot
    learn whether it landed, says so, and keeps its files (removing them could break a table
    that holds them). Started again, the server holds the table as it was, and an append
    lands once."""
    server = rest_catalog
    src, lake, p = held_append(url, conn, server, proxy, "killed", 30)
    stderr = killed_while_held(server, proxy, p)
    assert p.returncode != 0
    assert "did not say whether the commit landed" in stderr and "files are kept" in stderr, stderr
    table = server.pyiceberg().load_table(lake)
    assert len(table.metadata.snapshots) == 1
    # The failed append's data file is still there, beside the one the table holds.
    held = {t.file.file_path.rsplit("/", 1)[-1] for t in table.scan().plan_files()}
    stored = data_files(server, table.location())
    assert held < stored and len(stored - held) == 1, (held, stored)
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == list(range(1, 31))
    export(url, "-t", src, *flags(server, lake), "--if-exists", "append")
    ids = sorted(server.pyiceberg().load_table(lake).scan().to_arrow()["id"].to_pylist())
    assert ids == sorted(list(range(1, 31)) * 2)


def test_several_tables_land_in_one_transaction_all_or_none(url, conn, rest_catalog, proxy):
    """Tables exported together are committed in one multi-table transaction: a first export
    makes them in it where the server makes tables inside one (Rustberg; SeaweedFS makes each
    by a commit of its own, and the output says so); an append of both is one transaction. Held
    at the proxy while the server is killed, it leaves both tables as they were (or both
    appended), never one; started again, an append lands once on each."""
    server, schema = rest_catalog, new_name("several")
    conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute(f"CREATE TABLE {schema}.a AS SELECT g::bigint AS id FROM generate_series(1, 10) g")
    conn.execute(f"CREATE TABLE {schema}.b AS SELECT g::bigint AS id, 'x' || g AS v FROM generate_series(1, 20) g")
    via = flags(server, None, uri=proxy.uri)
    reports = [json.loads(line) for line in export(url, "--schema", schema, *via).stdout.splitlines()]
    assert [(r["table"], r["rows"], r["created"]) for r in reports] == [
        (f"{schema}.a", 10, True), (f"{schema}.b", 20, True)]
    if server.name == "rustberg":
        assert [r["committed_together"] for r in reports] == [2, 2] and "apart" not in reports[0]
        assert [p.rsplit("/", 2)[-2:] for p in proxy.committed] == [["transactions", "commit"]]
    else:
        assert "makes no new table inside a multi-table transaction" in reports[0]["apart"]
        assert [r["committed_together"] for r in reports] == [1, 1]
        # The transaction tried first, then a commit of each table.
        assert [p.rsplit("/", 2)[-2:] for p in proxy.committed] == [
            ["transactions", "commit"], ["tables", "a"], ["tables", "b"]]

    def counts():
        cat = server.pyiceberg()
        return [len(cat.load_table(f"{schema}.{t}").scan().to_arrow()) for t in "ab"]

    assert counts() == [10, 20]
    # An append of both: one transaction, on either server.
    proxy.committed.clear()
    out = export(url, "--schema", schema, *via, "--if-exists", "append")
    assert [p.rsplit("/", 2)[-2:] for p in proxy.committed] == [["transactions", "commit"]]
    assert counts() == [20, 40]
    assert [json.loads(line)["committed_together"] for line in out.stdout.splitlines()] == [2, 2]
    # Held at the proxy, then the server killed: the transaction is lost or whole.
    proxy.hold = threading.Event()
    p = subprocess.Popen([pgarrow_bin(), "export", "-d", url, "--quiet", "--json", "--schema", schema,
                          *via, "--if-exists", "append"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr = killed_while_held(server, proxy, p)
    assert p.returncode != 0
    assert "did not say whether the commit landed" in stderr and "files are kept" in stderr, stderr
    assert counts() in ([20, 40], [30, 60]), counts()
    before = counts()
    proxy.hold = None
    export(url, "--schema", schema, *via, "--if-exists", "append")
    assert counts() == [before[0] + 10, before[1] + 20]


def test_a_mirror_commits_its_tables_together_all_or_none(logical_url, source, rest_catalog, proxy):
    """A transaction that writes orders and their lines reaches the lake in one multi-table
    transaction: a reader never sees lines without their order. Held at the proxy while the
    server is killed, the round leaves both tables as they were; the next run brings both."""
    server, conn, schema = rest_catalog, source, new_name("fk")
    conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute(f"CREATE TABLE {schema}.orders (id bigint PRIMARY KEY, total bigint)")
    conn.execute(f"CREATE TABLE {schema}.lines (id bigint PRIMARY KEY, order_id bigint, amount bigint)")
    conn.execute(f"INSERT INTO {schema}.orders SELECT g, 0 FROM generate_series(1, 20) g")
    slot = new_name("slot")
    args = ["mirror", "-d", logical_url, "--schema", schema, "--slot", slot, *flags(server, None, uri=proxy.uri),
            "--catch-up", "--json"]

    def write(k):
        with conn.transaction():
            conn.execute(f"INSERT INTO {schema}.lines SELECT 100 * {k} + g, g, {k} FROM generate_series(1, 20) g")
            conn.execute(f"UPDATE {schema}.orders SET total = total + {k}")

    def lake():
        cat = server.pyiceberg()
        orders = cat.load_table(f"{schema}.orders").scan().to_arrow()
        lines = cat.load_table(f"{schema}.lines").scan().to_arrow()
        return sum(orders["total"].to_pylist()), sum(lines["amount"].to_pylist())

    def source_sums():
        return tuple(conn.execute(f"SELECT (SELECT sum(total) FROM {schema}.orders)::bigint, "
                                  f"(SELECT coalesce(sum(amount), 0) FROM {schema}.lines)::bigint").fetchone())

    try:
        run(*args)
        write(1)
        proxy.committed.clear()
        out = run(*args)
        committed = [e for e in map(json.loads, (x for x in out.stdout.splitlines() if x.startswith("{")))
                     if e.get("event") == "committed"]
        assert sorted(e["table"] for e in committed) == [f'"{schema}"."lines"', f'"{schema}"."orders"']
        assert [e["together"] for e in committed] == [2, 2], committed
        assert [p.rsplit("/", 2)[-2:] for p in proxy.committed] == [["transactions", "commit"]]
        assert json.loads(out.stdout.splitlines()[-1])["stats"]["together"] == 1
        assert lake() == source_sums() == (20, 20)
        # The round's transaction held, then the server killed under it.
        write(2)
        proxy.hold = threading.Event()
        p = subprocess.Popen([pgarrow_bin(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stderr = killed_while_held(server, proxy, p)
        assert p.returncode != 0
        assert "did not say whether the commit landed" in stderr, stderr
        assert lake() == (20, 20), "neither table took the round"
        proxy.hold = None
        run(*args)
        assert lake() == source_sums() == (60, 60)
    finally:
        drop_slot(conn, slot)


def test_compaction_and_expiry_beside_a_running_mirror(logical_url, rest_catalog):
    """While the source changes and the mirror commits through the REST catalog, `pgarrow lake
    compact` rewrites the table's files and `pgarrow lake expire --older-than 0s` drops the old
    snapshots; every read equals the source at a transaction, and the mirror goes on."""
    import signal

    from test_mirror import Lines, Workload, make_table

    server, table = rest_catalog, new_name("upkeep")
    lake, slot = f"rest_upkeep.{table}", new_name("slot")
    make_table(logical_url, table, rows=300)
    proc = subprocess.Popen([pgarrow_bin(), "mirror", "-d", logical_url, "-t", table, "--slot", slot,
                             *flags(server, lake), "--json", "--commit-interval", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, work = Lines(proc), None
    compacted, expired = [], []

    def lake_rows():
        return pyiceberg_rows(server, lake, ["id", "name", "big", "amount"])

    try:
        assert lines.next()["event"] == "exported"
        work = Workload(logical_url, table, seed=41)
        for round in range(3):
            for _ in range(2):
                work.step()
                lines.checkpoint_past(work.inside)
            running = subprocess.Popen([pgarrow_bin(), "lake", "compact", *flags(server, lake), "--json",
                                        "--retries", "100"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
            for _ in range(2):
                work.step()
                lines.checkpoint_past(work.inside)
            out, err = running.communicate(timeout=300)
            assert running.returncode == 0, err
            compacted.append(json.loads(out))
            expired.append(json.loads(run("lake", "expire", *flags(server, lake), "--older-than", "0s",
                                          "--json").stdout))
            work.check(lake_rows(), f"round {round}")
        work.step()
        lines.checkpoint_past(work.inside)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        assert proc.returncode == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        with psycopg.connect(logical_url, autocommit=True) as c:
            c.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                      "WHERE slot_name = %s AND NOT active", (slot,))
            c.execute(f"DROP PUBLICATION IF EXISTS {slot}")
    assert sum(c["commits"] for c in compacted) >= 1, compacted
    assert sum(e["snapshots"] for e in expired) > 0, expired
    assert work.check(lake_rows(), "the end") == len(work.history) - 1
    work.close()
