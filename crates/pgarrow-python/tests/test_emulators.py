"""The object-store emulators themselves (emulators.py): each starts, stores and lists what it
is given, and refuses what its credentials do not allow, so that a pgarrow test failing against
one of them fails because of pgarrow."""

import json
import urllib.error
import urllib.request
import uuid

import pytest


def name(prefix: str) -> str:
    """A bucket or container name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def test_s3_stores_lists_and_reads(s3):
    assert s3.endpoint.startswith("http://127.0.0.1:")
    assert s3.storage_options["aws_endpoint"] == s3.endpoint
    assert s3.env["AWS_ENDPOINT_URL"] == s3.endpoint and s3.env["AWS_ALLOW_HTTP"] == "true"
    bucket = name("s3")
    s3.create_bucket(bucket)
    assert s3.keys(bucket) == []
    s3.put(bucket, "dir/b.parquet", b"second")
    s3.put(bucket, "dir/a=1/a.parquet", b"first")
    s3.put(bucket, "other.txt", b"x")
    assert s3.keys(bucket) == ["dir/a=1/a.parquet", "dir/b.parquet", "other.txt"]
    assert s3.keys(bucket, "dir/") == ["dir/a=1/a.parquet", "dir/b.parquet"]
    assert s3.get(bucket, "dir/a=1/a.parquet") == b"first"


def test_s3_lists_pending_multipart_uploads(s3):
    bucket = name("mpu")
    s3.create_bucket(bucket)
    assert s3.pending_uploads(bucket) == []
    upload = s3.client().create_multipart_upload(Bucket=bucket, Key="big.parquet")
    pending = s3.pending_uploads(bucket)
    assert [(u["Key"], u["UploadId"]) for u in pending] == [("big.parquet", upload["UploadId"])]
    s3.client().abort_multipart_upload(Bucket=bucket, Key="big.parquet", UploadId=upload["UploadId"])
    assert s3.pending_uploads(bucket) == []
    assert s3.keys(bucket) == []


def _s3_error(call) -> str:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


def test_s3_auth_read_only_keys_read_and_list_but_cannot_write(s3_auth):
    bucket = s3_auth.bucket
    s3_auth.put(bucket, "seen.txt", b"by the reader")  # with the admin's keys
    reader = s3_auth.client(options=s3_auth.readonly_options)
    listed = reader.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == ["seen.txt"]
    assert reader.get_object(Bucket=bucket, Key="seen.txt")["Body"].read() == b"by the reader"
    assert reader.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert _s3_error(lambda: reader.put_object(Bucket=bucket, Key="nope.txt", Body=b"x")) == "AccessDenied"
    assert _s3_error(lambda: reader.create_multipart_upload(Bucket=bucket, Key="nope.txt")) == "AccessDenied"
    assert s3_auth.keys(bucket) == ["seen.txt"]


def test_s3_auth_refuses_unknown_keys(s3_auth):
    for options in (s3_auth.bad_options, s3_auth.options("testing", "testing")):
        client = s3_auth.client(options=options)
        assert _s3_error(lambda: client.list_objects_v2(Bucket=s3_auth.bucket)) == "InvalidAccessKeyId"
        assert _s3_error(lambda: client.put_object(Bucket=s3_auth.bucket, Key="x", Body=b"x")) == "InvalidAccessKeyId"


def test_azure_stores_lists_and_reads(azure):
    assert azure.endpoint.startswith("http://127.0.0.1:") and azure.endpoint.endswith("/devstoreaccount1")
    assert azure.storage_options["azure_storage_endpoint"] == azure.endpoint
    assert azure.env["AZURE_STORAGE_ACCOUNT_KEY"] == azure.KEY
    container = name("az")
    azure.create_container(container)
    assert azure.keys(container) == []
    azure.put(container, "dir/b.parquet", b"second")
    azure.put(container, "dir/a=1/a.parquet", b"first")
    azure.put(container, "other.txt", b"x")
    assert azure.keys(container) == ["dir/a=1/a.parquet", "dir/b.parquet", "other.txt"]
    assert azure.keys(container, "dir/") == ["dir/a=1/a.parquet", "dir/b.parquet"]
    assert azure.get(container, "dir/a=1/a.parquet") == b"first"


def test_azure_lists_uncommitted_blobs(azure):
    container = name("blocks")
    azure.create_container(container)
    blob = azure.container(container).get_blob_client("big.parquet")
    blob.stage_block("YmxvY2stMDAwMDE=", b"a staged block")
    assert azure.uncommitted_blobs(container) == ["big.parquet"]
    assert azure.keys(container) == []
    blob.commit_block_list(["YmxvY2stMDAwMDE="])
    assert azure.uncommitted_blobs(container) == []
    assert azure.get(container, "big.parquet") == b"a staged block"


def test_azure_read_only_sas_reads_and_lists_but_cannot_write(azure):
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import ContainerClient

    container = name("sas")
    azure.create_container(container)
    azure.put(container, "seen.txt", b"by the reader")
    options = azure.readonly_options(container)
    assert "azure_storage_account_key" not in options
    reader = ContainerClient(azure.endpoint, container, credential=options["azure_storage_sas_key"])
    assert [b.name for b in reader.list_blobs()] == ["seen.txt"]
    assert reader.download_blob("seen.txt").readall() == b"by the reader"
    with pytest.raises(HttpResponseError) as e:
        reader.upload_blob("nope.txt", b"x")
    assert e.value.status_code == 403
    with pytest.raises(HttpResponseError) as e:
        reader.get_blob_client("nope.txt").stage_block("YmxvY2stMDAwMDE=", b"x")
    assert e.value.status_code == 403
    assert azure.keys(container) == ["seen.txt"]


def test_azure_refuses_a_wrong_account_key(azure):
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import ContainerClient

    container = name("badkey")
    azure.create_container(container)
    options = azure.bad_options
    client = ContainerClient(
        azure.endpoint,
        container,
        credential={"account_name": options["azure_storage_account_name"], "account_key": options["azure_storage_account_key"]},
    )
    with pytest.raises(HttpResponseError) as e:
        list(client.list_blobs())
    assert e.value.status_code == 403


def test_gcs_stores_lists_and_reads(gcs):
    assert gcs.endpoint.startswith("http://127.0.0.1:")
    with open(gcs.storage_options["google_service_account"]) as f:
        assert json.load(f) == {
            "gcs_base_url": gcs.endpoint,
            "disable_oauth": True,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        }
    assert gcs.env == {"GOOGLE_SERVICE_ACCOUNT": gcs.service_account_path}
    bucket = name("gcs")
    gcs.create_bucket(bucket)
    assert gcs.keys(bucket) == []
    gcs.put(bucket, "dir/b.parquet", b"second")
    gcs.put(bucket, "dir/a=1/a.parquet", b"first")
    gcs.put(bucket, "other.txt", b"x")
    assert gcs.keys(bucket) == ["dir/a=1/a.parquet", "dir/b.parquet", "other.txt"]
    assert gcs.keys(bucket, "dir/") == ["dir/a=1/a.parquet", "dir/b.parquet"]
    assert gcs.get(bucket, "dir/a=1/a.parquet") == b"first"


def _http(method: str, url: str, data: bytes | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_gcs_xml_api_reads_but_takes_no_uploads(gcs):
    """object_store's GCS client speaks the XML API: fake-gcs-server (started with
    -public-host 127.0.0.1:PORT) answers its reads (GET, HEAD, list, DELETE) but has no XML
    upload: a plain PUT of an object and a multipart upload (POST ?uploads) are refused. When
    this fails, fake-gcs-server has learnt them and GCS writes can be tested through pgarrow."""
    bucket = name("xml")
    gcs.create_bucket(bucket)
    gcs.put(bucket, "dir/a.parquet", b"first")
    base = f"{gcs.endpoint}/{bucket}"
    assert _http("GET", f"{base}/dir%2Fa.parquet") == 200
    assert _http("HEAD", f"{base}/dir%2Fa.parquet") == 200
    assert _http("GET", f"{base}?list-type=2&prefix=dir%2F") == 200
    assert _http("PUT", f"{base}/new.parquet", b"x") == 400
    assert _http("POST", f"{base}/big.parquet?uploads", b"") == 400
    assert _http("DELETE", f"{base}/dir%2Fa.parquet") in (200, 204)
    assert gcs.keys(bucket) == []
