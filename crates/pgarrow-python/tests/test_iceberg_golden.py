"""Iceberg tables other writers (Spark, pyiceberg) wrote, imported as Iceberg readers are tested:
duckdb-iceberg's test tables (testdata/iceberg-golden/, see its README.md). Their metadata,
manifest lists and manifests name files by repository-relative paths (`data/persistent/...`,
as duckdb-iceberg reads them with `allow_moved_paths`); each table is copied into a temporary
directory, every such path rewritten to a `file://` URI there (the JSON metadata as JSON, the
Avro files record by record, through their own writer schema, by the small Avro codec below),
the metadata file registered in a fresh SQL catalog in PostgreSQL, then
`pgarrow import --iceberg ... --create`ed, and the rows PostgreSQL holds compared, as a
multiset, with the rows pyiceberg 0.12 reads from the same catalog (or, where pyiceberg cannot
read the table, DuckDB's iceberg extension). Only representation is normalised."""

import io
import json
import shutil
import subprocess
import zlib
from pathlib import Path

import pyarrow as pa
import pytest

from test_delta_golden import canon, loaded_rows, same_rows
from test_ducklake import pgarrow_bin
from test_iceberg import catalog, pyiceberg  # noqa: F401 (catalog: a fixture)

GOLDEN = Path(__file__).resolve().parents[3] / "testdata" / "iceberg-golden"
PREFIX = "data/persistent/"  # how duckdb-iceberg's tables name their files


# ---- a generic Avro object-container codec (spec 1.11), enough to rewrite strings ------------


def _read_long(b: io.BytesIO) -> int:
    shift = n = 0
    while True:
        c = b.read(1)[0]
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return (n >> 1) ^ -(n & 1)


def _write_long(out: bytearray, n: int):
    n = (n << 1) ^ (n >> 63)
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


class Avro:
    """Decodes and encodes the values of one writer schema (named types resolved)."""

    def __init__(self, schema):
        self.names = {}
        self._collect(schema, None)
        self.schema = schema

    def _collect(self, s, ns):
        if isinstance(s, list):
            for x in s:
                self._collect(x, ns)
        elif isinstance(s, dict):
            t = s["type"]
            if t in ("record", "error", "enum", "fixed"):
                ns = s.get("namespace", ns)
                name = s["name"]
                self.names[name] = s
                self.names[name.rsplit(".", 1)[-1]] = s
                if ns and "." not in name:
                    self.names[f"{ns}.{name}"] = s
            if t in ("record", "error"):
                for f in s["fields"]:
                    self._collect(f["type"], ns)
            elif t == "array":
                self._collect(s["items"], ns)
            elif t == "map":
                self._collect(s["values"], ns)
            elif isinstance(t, (dict, list)):
                self._collect(t, ns)

    def _resolve(self, s):
        while True:
            if isinstance(s, str) and s in self.names:
                s = self.names[s]
            elif isinstance(s, dict) and isinstance(s["type"], (dict, list)) or (
                isinstance(s, dict) and isinstance(s["type"], str) and s["type"] in self.names
            ):
                s = s["type"]
            else:
                return s

    def read(self, s, b: io.BytesIO):
        s = self._resolve(s)
        if isinstance(s, list):
            return (i := _read_long(b), self.read(s[i], b))
        t = s if isinstance(s, str) else s["type"]
        if t == "null":
            return None
        if t == "boolean":
            return b.read(1) == b"\x01"
        if t in ("int", "long"):
            return _read_long(b)
        if t == "float":
            return b.read(4)
        if t == "double":
            return b.read(8)
        if t == "bytes":
            return bytes(b.read(_read_long(b)))
        if t == "string":
            return b.read(_read_long(b)).decode()
        if t == "fixed":
            return b.read(s["size"])
        if t == "enum":
            return _read_long(b)
        if t in ("record", "error"):
            return [self.read(f["type"], b) for f in s["fields"]]
        if t in ("array", "map"):
            items = []
            while n := _read_long(b):
                if n < 0:
                    n = -n
                    _read_long(b)
                for _ in range(n):
                    if t == "map":
                        items.append((b.read(_read_long(b)).decode(), self.read(s["values"], b)))
                    else:
                        items.append(self.read(s["items"], b))
            return items
        raise AssertionError(f"Avro type {s!r}")

    def write(self, s, v, out: bytearray):
        s = self._resolve(s)
        if isinstance(s, list):
            i, x = v
            _write_long(out, i)
            return self.write(s[i], x, out)
        t = s if isinstance(s, str) else s["type"]
        if t == "null":
            return
        if t == "boolean":
            out += b"\x01" if v else b"\x00"
        elif t in ("int", "long", "enum"):
            _write_long(out, v)
        elif t in ("float", "double", "fixed"):
            out += v
        elif t in ("bytes", "string"):
            raw = v.encode() if t == "string" else v
            _write_long(out, len(raw))
            out += raw
        elif t in ("record", "error"):
            for f, x in zip(s["fields"], v, strict=True):
                self.write(f["type"], x, out)
        elif t in ("array", "map"):
            if v:
                _write_long(out, len(v))
                for x in v:
                    if t == "map":
                        k = x[0].encode()
                        _write_long(out, len(k))
                        out += k
                        self.write(s["values"], x[1], out)
                    else:
                        self.write(s["items"], x, out)
            _write_long(out, 0)
        else:
            raise AssertionError(f"Avro type {s!r}")

    def map_strings(self, s, v, fn):
        """`v` with every string `fn` applied (map keys too)."""
        s = self._resolve(s)
        if isinstance(s, list):
            return (v[0], self.map_strings(s[v[0]], v[1], fn))
        t = s if isinstance(s, str) else s["type"]
        if t == "string":
            return fn(v)
        if t in ("record", "error"):
            return [self.map_strings(f["type"], x, fn) for f, x in zip(s["fields"], v, strict=True)]
        if t == "array":
            return [self.map_strings(s["items"], x, fn) for x in v]
        if t == "map":
            return [(fn(k), self.map_strings(s["values"], x, fn)) for k, x in v]
        return v


MAGIC = b"Obj\x01"
META = {"type": "map", "values": "bytes"}


def rewrite_avro(path: Path, fn) -> int:
    """Rewrites the Avro object container at `path` with `fn` applied to every string of every
    record (its header kept, each block re-encoded with its codec); how many strings changed."""
    b = io.BytesIO(path.read_bytes())
    assert b.read(4) == MAGIC, path
    meta_codec = Avro(META)
    meta = dict(meta_codec.read(META, b))
    sync = b.read(16)
    codec = meta.get("avro.codec", b"null").decode()
    assert codec in ("null", "deflate"), (path, codec)
    schema = json.loads(meta["avro.schema"])
    avro = Avro(schema)
    changed = 0

    def counting(s):
        nonlocal changed
        new = fn(s)
        changed += new != s
        return new

    out = bytearray(MAGIC)
    meta_codec.write(META, list(meta.items()), out)
    out += sync
    while b.tell() < len(b.getbuffer()):
        count = _read_long(b)
        data = b.read(_read_long(b))
        assert b.read(16) == sync, path
        if codec == "deflate":
            data = zlib.decompress(data, -15)
        block = io.BytesIO(data)
        records = bytearray()
        for _ in range(count):
            avro.write(schema, avro.map_strings(schema, avro.read(schema, block), counting), records)
        assert block.tell() == len(data), (path, "trailing bytes in a block")
        if codec == "deflate":
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            records = c.compress(bytes(records)) + c.flush()
        _write_long(out, count)
        _write_long(out, len(records))
        out += records
        out += sync
    path.write_bytes(bytes(out))
    return changed


def test_the_avro_codec_reencodes_a_manifest_byte_for_byte(tmp_path):
    """The codec's own check: a manifest and a manifest list rewritten with nothing changed are
    the bytes they were (deflate aside, whose output is compared decompressed), so a rewrite
    changes only the strings it means to."""
    for rel in ["equality_deletes/warehouse/mydb/mytable/metadata/61648895-78fc-44d6-bf55-298a7614c4f8-m0.avro",
                "equality_deletes/warehouse/mydb/mytable/metadata/"
                "snap-1916084761853986166-1-61648895-78fc-44d6-bf55-298a7614c4f8.avro"]:
        copy = tmp_path / Path(rel).name
        shutil.copy(GOLDEN / rel, copy)
        assert rewrite_avro(copy, lambda s: s) == 0
        assert blocks(copy) == blocks(GOLDEN / rel)
        changed = rewrite_avro(copy, lambda s: s.replace(PREFIX, "file:///elsewhere/", 1) if s.startswith(PREFIX) else s)
        assert changed >= 1
        assert b"file:///elsewhere/equality_deletes/" in b"".join(blocks(copy))


def blocks(path: Path) -> list[bytes]:
    b = io.BytesIO(path.read_bytes())
    assert b.read(4) == MAGIC
    meta = dict(Avro(META).read(META, b))
    sync = b.read(16)
    got = []
    while b.tell() < len(b.getbuffer()):
        _read_long(b)
        data = b.read(_read_long(b))
        assert b.read(16) == sync
        got.append(zlib.decompress(data, -15) if meta.get("avro.codec") == b"deflate" else data)
    return got


# ---- moving a table -------------------------------------------------------------------------


def moved(rel_table: str, into: Path) -> str:
    """Copies the table directory `rel_table` under `into`, its paths rewritten; the root URI
    the rewritten paths start with."""
    top = rel_table.split("/", 1)[0]
    shutil.copytree(GOLDEN / top, into / top)
    root = f"file://{into}/"

    def fn(s: str) -> str:
        # Bare (`data/persistent/...`) or as a relative `file:` URI (`file://data/...`).
        bare = s.removeprefix("file://")
        return root + bare[len(PREFIX):] if bare.startswith(PREFIX) else s

    def walk(v):
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return fn(v) if isinstance(v, str) else v

    for f in (into / rel_table / "metadata").iterdir():
        if f.name.endswith(".metadata.json"):
            f.write_text(json.dumps(walk(json.loads(f.read_text()))))
        elif f.suffix == ".avro":
            rewrite_avro(f, fn)
    return root


def register(cat_url: str, rel_table: str, metadata: str, into: Path, ident: str):
    root = moved(rel_table, into)
    location = f"{root}{rel_table}/metadata/{metadata}"
    meta = json.loads(Path(location.removeprefix("file://")).read_text())
    assert meta["location"] == f"{root}{rel_table}", meta["location"]
    cat = pyiceberg(cat_url)
    cat.create_namespace(ident.split(".")[0])
    return cat.register_table(ident, location)


# ---- normalising representation --------------------------------------------------------------


def arrow_rows(table: pa.Table) -> list[tuple]:
    return sorted((tuple(canon(r[f.name], f.type) for f in table.schema) for r in table.to_pylist()), key=repr)


def pg_import(url, cat_url, ident, into) -> subprocess.CompletedProcess:
    return subprocess.run(
        [pgarrow_bin(), "import", "-d", url, "--quiet", "--iceberg", cat_url, "--lake-table", ident,
         "--into", into, "--create"],
        capture_output=True, text=True, timeout=120,
    )


# ---- the tables -----------------------------------------------------------------------------

# (table directory, metadata file registered): what it exercises.
TABLES = {
    ("equality_deletes/warehouse/mydb/mytable", "v7.metadata.json"):
        "Spark: v2 equality deletes over seven snapshots",
    ("equality_deletes/warehouse/mydb/mytable_partitioned", "v6.metadata.json"):
        "Spark: v2 equality deletes in a partitioned table",
    ("equality_delete_extra_column/warehouse/ns/t", "vfinal.metadata.json"):
        "equality deletes whose files carry a column beyond the equality ids",
    ("equality_delete_cross_partition/warehouse/ns/t", "vfinal.metadata.json"):
        "an unpartitioned equality delete applied across partitions",
    ("hive_partitioned_table", "v4.metadata.json"): "partition spec evolution (identity date, then date and string)",
    ("partition_bigint", "v2.metadata.json"): "identity partition on bigint",
    ("partition_binary", "v2.metadata.json"): "identity partition on binary",
    ("partition_bool", "v2.metadata.json"): "identity partition on boolean",
    ("partition_decimal_bigint", "v2.metadata.json"): "identity partition on decimal(18,x)",
    ("partition_decimal_hugeint", "v2.metadata.json"): "identity partition on decimal(38,x)",
    ("partition_decimal_integer", "v2.metadata.json"): "identity partition on decimal(9,x)",
    ("partition_decimal_smallint", "v2.metadata.json"): "identity partition on decimal(4,x)",
    ("partition_double", "v2.metadata.json"): "identity partition on double",
    ("partition_float", "v2.metadata.json"): "identity partition on float",
    ("partition_integer", "v2.metadata.json"): "identity partition on int",
    ("uuid", "00001-43fda1f4-1c96-4376-ad16-91beb71d0759.metadata.json"): "a uuid column",
    ("is_null_is_not_null", "00001-43ceeb9a-cd0d-4556-b1e2-513b5bf88ff8.metadata.json"): "NULLs, null counts",
    ("expression_filter", "00001-19739cda-f528-4429-84cc-377ffdd24c75.metadata.json"): "bounds of many types",
    ("iceberg_v1_repro/repro/merch_v1", "00003-8d01e4aa-d143-49c9-898e-b5e477577b70.metadata.json"):
        "format version 1, several snapshots",
    ("iceberg_v1_repro/repro/merch_v1", "00004-v3-upgraded-v1-null-counts.metadata.json"):
        "a v1 table upgraded to format version 3 (no row lineage in its old manifests)",
    ("null_stats/default/test_nulls", "00003-9d6a621e-8a72-4190-a880-f6ca02e32b86.metadata.json"):
        "NULL-only columns and their statistics over three snapshots",
    ("name_mapping/warehouse_1/mydb/t1", "v7.metadata.json"):
        "format version 1, data files without field ids read through schema.name-mapping.default",
    ("legacy_bare_deletion_vector/warehouse/default/legacy_bare_deletion_vector", "00002-legacy-bare-dv.metadata.json"):
        "format version 3: a deletion vector an older DuckDB wrote as a bare blob (no Puffin container)",
    ("add_columns_with_defaults/default.db/add_columns_with_defaults",
     "00003-3f1801a5-7dfb-4072-b14a-39cd12f9279b.metadata.json"):
        "columns of many types added with an initial-default after the first files",
    ("add_columns_with_defaults_in_struct/default.db/add_columns_with_defaults_in_struct",
     "00003-21a957f9-c2ee-431a-9d18-bf257b561198.metadata.json"):
        "struct fields of many types added with an initial-default after the first files",
    ("case_sensitive_names/default.db/case_sensitive_names",
     "00001-a7a3a44c-4aac-4619-bebd-11be37b27351.metadata.json"):
        "column names that differ only by case",
    ("column_mapping/warehouse/default.db/my_table", "00001-75643dae-a7a7-46ae-ab30-ea80d3793f3f.metadata.json"):
        "columns renamed and reordered after the first files (read by field ID)",
    ("map_stats/default.db/map_stats", "00002-0e059d4b-e5e8-41af-a763-76cbf3a3d0bc.metadata.json"):
        "map columns and their statistics",
    ("partition_time/default.db/partition_time", "00001-44546aa6-1ee5-48c5-9e3b-bc6c0bc0a60c.metadata.json"):
        "identity partition on time",
    ("partition_timestamp/default.db/partition_timestamp",
     "00001-0c9938a5-103e-4185-b46d-331368ae4db7.metadata.json"):
        "identity partition on timestamp",
    ("partition_timestamptz/default.db/partition_timestamptz",
     "00001-ffeadb58-2a9e-46ba-8b4f-f363f05de68c.metadata.json"):
        "identity partition on timestamptz",
}

# Tables pgarrow reads wrongly or refuses though pyiceberg/DuckDB read them (strict: the test
# fails once fixed, and the mark must go).
BUGS: dict[tuple[str, str], str] = {}

# Tables pyiceberg 0.12 itself cannot read (what it says, asserted): DuckDB's iceberg
# extension is the reference, or the rows duckdb-iceberg's own test asserts.
PYICEBERG_EQ = "equality deletes"  # pyiceberg 0.12 refuses them (apache/iceberg#6568)
DUCKDB_REFERENCE: dict[tuple[str, str], str] = {key: PYICEBERG_EQ for key in TABLES if key[0].startswith("equality")}
LEGACY_DV = ("legacy_bare_deletion_vector/warehouse/default/legacy_bare_deletion_vector",
             "00002-legacy-bare-dv.metadata.json")
DUCKDB_REFERENCE[LEGACY_DV] = "Incorrect magic bytes"  # pyiceberg wants the Puffin container
# Identity partitions whose files lack the column (the value is in each file's partition
# tuple): pyiceberg 0.12 reads only from the files.
for key in TABLES:
    if key[0].startswith("partition_time"):
        DUCKDB_REFERENCE[key] = "could not be found in the file"


# Rows duckdb-iceberg's own test asserts, where the DuckDB 1.5.5 extension here predates it:
# test/sql/local/equality_delete_cross_partition.test (an equality delete in partition part=0
# must not remove part=1's row of the same key; DuckDB 1.5.5 removes it).
TEST_EXPECTS = {
    ("equality_delete_cross_partition/warehouse/ns/t", "vfinal.metadata.json"):
        [(0, 999, "p0-k999"), (1, 100, "p1-k100"), (1, 888, "p1-k888")],
    # test/sql/local/legacy_bare_deletion_vector.test: DuckDB refuses the bare blob unless
    # `iceberg_unsafe_skip_puffin_verification`, then reads these rows. pgarrow reads the blob
    # at the manifest's offset and checks it (length, magic number, CRC-32, count), not the
    # container around it.
    LEGACY_DV: [(1, "legacy"), (3, "legacy")],
}


def params():
    for key, what in TABLES.items():
        marks = [pytest.mark.xfail(strict=True, reason=BUGS[key])] if key in BUGS else []
        yield pytest.param(key, id=f"{key[0].split('/')[-1]}@{key[1].split('.')[0][:12]}", marks=marks)


@pytest.mark.parametrize("key", list(params()))
def test_table_other_writers_wrote_imports_the_rows_pyiceberg_reads(url, conn, catalog, tmp_path, key, duckdb_iceberg):
    rel, metadata = key
    cat_url, _ = catalog
    ident = "golden.t"
    table = register(cat_url, rel, metadata, tmp_path / "lake", ident)
    if key in DUCKDB_REFERENCE:
        with pytest.raises(Exception, match=DUCKDB_REFERENCE[key]):  # why pyiceberg is not the reference
            table.scan().to_arrow()
        schema = table.schema().as_arrow()
        got = TEST_EXPECTS.get(key) or duckdb_iceberg(f"SELECT * FROM iceberg_scan('{table.metadata_location}')")
        want = sorted((tuple(canon(v, f.type) for v, f in zip(r, schema, strict=True)) for r in got), key=repr)
    else:
        arrow = table.scan().to_arrow()
        schema = arrow.schema
        want = arrow_rows(arrow)
    assert want, "a table without rows compares nothing"
    into = "ice_golden"
    conn.execute(f'DROP TABLE IF EXISTS "{into}"')
    out = pg_import(url, cat_url, ident, into)
    assert out.returncode == 0, out.stderr
    same_rows(loaded_rows(conn, into, schema), want, schema.names)
