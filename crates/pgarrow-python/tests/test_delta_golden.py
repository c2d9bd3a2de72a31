"""Delta tables Spark wrote, imported as Delta's own readers are tested: delta-kernel-rs's golden
tables (testdata/delta-golden/, see its README.md), each `pgarrow import --delta ... --create`d
and its rows read back from PostgreSQL compared, as a multiset, with the rows the table must
give: the archive's `expected/` Parquet files (written by Spark beside the table), or, for the
tables kernel-rs keeps in `kernel/tests/data/` without them, the rows its own test asserts
(cited at each). Only representation is normalised (a struct or map in `jsonb` back to a dict
or pairs, a float4 as the float32 it holds, a timestamp as an instant); values never are.
A table kernel-rs's suite expects a reader to refuse (`negative_test!`) must be refused by
name, exit status 3 (2 where there is no table), nothing created."""

import datetime
import json
import struct
import subprocess
import tarfile
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from test_ducklake import pgarrow_bin

GOLDEN = Path(__file__).resolve().parents[3] / "testdata" / "delta-golden"

UTC = datetime.timezone.utc


def extract(name: str, into: Path) -> Path:
    """The archive's one top directory, unpacked under `into`."""
    with open(GOLDEN / f"{name}.tar.zst", "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as z:
        with tarfile.open(fileobj=z, mode="r|") as tar:
            tar.extractall(into, filter="data")
    return into / name


# ---- normalising representation --------------------------------------------------------------


def float32(x) -> float:
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def canon(v, t: pa.DataType):
    """`v` (a pyarrow value, a PostgreSQL value or a JSON value) as one comparable form of a
    value of Arrow type `t`."""
    if v is None:
        return None
    if isinstance(t, pa.BaseExtensionType) or (pa.types.is_fixed_size_binary(t) and t.byte_width == 16
                                               and isinstance(v, str) and not v.startswith("\\x")):
        # A uuid: pyarrow's extension, or a struct's `jsonb` text of one (or its `\\x` hex).
        if isinstance(v, str):
            v = bytes.fromhex(v[2:]) if v.startswith("\\x") else uuid.UUID(v)
        return v.bytes if isinstance(v, uuid.UUID) else canon(v, t.storage_type)
    if pa.types.is_struct(t):
        assert isinstance(v, dict), v
        assert set(v) == {f.name for f in t}, (sorted(v), [f.name for f in t])
        return tuple((f.name, canon(v[f.name], f.type)) for f in t)
    if pa.types.is_map(t):
        if isinstance(v, dict):  # a JSON object: its keys are text
            pairs = list(v.items())
        elif v and isinstance(v[0], dict):  # [{"key": k, "value": v}, ...]
            assert all(set(e) == {"key", "value"} for e in v), v
            pairs = [(e["key"], e["value"]) for e in v]
        else:  # pyarrow's [(k, v), ...]
            pairs = list(v)
        key = t.key_type
        if pa.types.is_integer(key) or pa.types.is_floating(key) or pa.types.is_decimal(key):
            # a JSON object's text keys, as the numbers they name
            pairs = [(Decimal(k) if isinstance(k, str) else k, x) for k, x in pairs]
        return ("map", tuple(sorted(((canon(k, key), canon(x, t.item_type)) for k, x in pairs), key=repr)))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        assert isinstance(v, list), v
        return tuple(canon(e, t.value_type) for e in v)
    if pa.types.is_boolean(t):
        assert isinstance(v, bool), v
        return v
    if pa.types.is_integer(t):
        assert isinstance(v, (int, Decimal)) and not isinstance(v, bool) and v == int(v), v
        return int(v)
    if pa.types.is_float32(t):
        return float32(v)
    if pa.types.is_floating(t):
        return float(v)
    if pa.types.is_decimal(t):
        d = Decimal(v) if not isinstance(v, float) else Decimal(repr(v))
        return d.normalize() if d else Decimal(0)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        assert isinstance(v, str), v
        return v
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        if isinstance(v, str):  # JSON: `\x` hex text
            assert v.startswith("\\x"), v
            return bytes.fromhex(v[2:])
        return v.bytes if isinstance(v, uuid.UUID) else bytes(v)
    if pa.types.is_date(t):
        return datetime.date.fromisoformat(v) if isinstance(v, str) else v
    if pa.types.is_time(t):
        return datetime.time.fromisoformat(v) if isinstance(v, str) else v
    if pa.types.is_timestamp(t):
        if isinstance(v, str):
            v = datetime.datetime.fromisoformat(v)
        if t.tz is not None:
            assert v.tzinfo is not None, f"{v!r} has no zone for a {t}"
            return v.astimezone(UTC)
        assert v.tzinfo is None, f"{v!r} has a zone for a {t}"
        return v
    raise AssertionError(f"no comparison for {t}")


def expected_rows(table: pa.Table) -> list[tuple]:
    rows = [tuple(canon(r[f.name], f.type) for f in table.schema) for r in table.to_pylist()]
    return sorted(rows, key=repr)


def read_expected(root: Path) -> pa.Table:
    files = sorted((root / "expected").rglob("*.parquet"))
    assert files, f"no expected rows under {root}"
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables).replace_schema_metadata(None)


def loaded_rows(conn, into: str, schema: pa.Schema) -> list[tuple]:
    """The rows PostgreSQL holds, each column in the form of the expected column of its name:
    `json`/`jsonb` read as text and parsed keeping every digit."""
    cols = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (into,),
    ).fetchall()
    assert [c for c, _ in cols] == schema.names, (cols, schema.names)
    select = ", ".join(
        f'"{c}"::text' if ty in ("json", "jsonb") else f'"{c}"' for c, ty in cols
    )
    with conn.cursor(binary=True) as cur:
        raw = cur.execute(f'SELECT {select} FROM "{into}"').fetchall()
    json_cols = {i for i, (_, ty) in enumerate(cols) if ty in ("json", "jsonb")}
    rows = []
    for r in raw:
        vals = []
        for i, (v, f) in enumerate(zip(r, schema, strict=True)):
            if i in json_cols and v is not None:
                v = json.loads(v, parse_float=Decimal)
            vals.append(canon(v, f.type))
        rows.append(tuple(vals))
    return sorted(rows, key=repr)


def pg_import(url, table: Path, into: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [pgarrow_bin(), "import", "-d", url, "--quiet", "--delta", str(table), "--into", into, "--create"],
        capture_output=True,
        text=True,
    )


def same_rows(got: list[tuple], want: list[tuple], names: list[str]):
    assert len(got) == len(want), f"{len(got)} rows loaded, {len(want)} expected"
    diff = [(g, w) for g, w in zip(got, want, strict=True) if g != w]
    assert not diff, "rows differ (loaded, expected), first of {}: {}\ncolumns {}".format(
        len(diff), diff[:3], names
    )


# ---- the tables ---------------------------------------------------------------------------------

# Golden tables (each archive holds `delta/` and `expected/`), by what they exercise.
GOLDEN_TABLES = {
    # checkpoints
    "basic-with-inserts-deletes-checkpoint": "classic checkpoint, deletes after it",
    "basic-with-inserts-overwrite-restore": "checkpoint, overwrite then RESTORE",
    "corrupted-last-checkpoint-kernel": "a _last_checkpoint naming a checkpoint that is not there",
    "multi-part-checkpoint": "multi-part checkpoint",
    "only-checkpoint-files": "checkpoints without the commits before them",
    "v2-checkpoint-json": "V2 checkpoint (classic name, JSON)",
    "v2-checkpoint-parquet": "V2 checkpoint (classic name, Parquet)",
    "data-skipping-basic-stats-all-types-checkpoint": "a checkpoint per commit, every primitive",
    # column mapping
    "table-with-columnmapping-mode-name": "column mapping name, nested types",
    "table-with-columnmapping-mode-id": "column mapping id, nested types",
    "data-skipping-basic-stats-all-types-columnmapping-name": "column mapping name, primitives",
    "data-skipping-basic-stats-all-types-columnmapping-id": "column mapping id, primitives",
    # deletion vectors
    "dv-partitioned-with-checkpoint": "deletion vectors, partitioned, checkpoint",
    "dv-with-columnmapping": "deletion vectors with column mapping",
    "log-replay-dv-key-cases": "one file's deletion vector replaced over versions",
    # timestamps and partition values
    "data-reader-timestamp_ntz": "timestamp_ntz columns and partitions, NULL partitions",
    "data-reader-timestamp_ntz-name-mode": "timestamp_ntz with column mapping name",
    "data-reader-timestamp_ntz-id-mode": "timestamp_ntz with column mapping id",
    "data-reader-partition-values": "partition values of twelve types, NULLs, 'null' text",
    "data-reader-escaped-chars": "partition values needing escapes in paths",
    "kernel-timestamp-int96": "INT96 timestamps, timestamp partitions",
    "kernel-timestamp-pst": "timestamps written in a PST session, timestamp partitions",
    "kernel-timestamp-timestamp_micros": "TIMESTAMP_MICROS, timestamp partitions",
    "kernel-timestamp-timestamp_millis": "TIMESTAMP_MILLIS, timestamp partitions",
    "data-reader-date-types-America": "timestamp and date, an America time zone session",
    "data-reader-date-types-Asia": "timestamp and date, an Asia time zone session",
    "data-reader-date-types-Etc": "timestamp and date, an Etc time zone session",
    "data-reader-date-types-Iceland": "timestamp and date, an Iceland session",
    "data-reader-date-types-Jst": "timestamp and date, JST session",
    "data-reader-date-types-Pst": "timestamp and date, PST session",
    "data-reader-date-types-utc": "timestamp and date, UTC session",
    # nested and primitive types
    "data-reader-primitives": "every primitive, NULLs",
    "data-skipping-basic-stats-all-types": "every primitive with statistics",
    "data-reader-array-primitives": "arrays of every primitive",
    "data-reader-array-complex-objects": "arrays of arrays (3-D, 4-D), of maps, of structs",
    "data-reader-map": "maps of many key and value types, map of arrays of structs",
    "data-reader-nested-struct": "struct in struct",
    "data-reader-nullable-field-invalid-schema-key": "array of NULL strings",
    "parquet-all-types": "every type, timestamp_ntz, nested",
    "parquet-all-types-legacy-format": "every type in Parquet's legacy list/map layout",
    # decimals
    "decimal-various-scale-precision": "29 decimals, precision 4 to 38",
    "basic-decimal-table": "decimal partition values",
    "basic-decimal-table-legacy": "decimals in the legacy (fixed-length) layout, partitioned",
    "124-decimal-decode-bug": "decimal(10,0)",
    # schema evolution and log replay
    "time-travel-schema-changes-b": "a column added: older files NULL in it",
    "time-travel-partition-changes-b": "repartitioned by overwrite",
    "log-replay-latest-metadata-protocol": "newest metaData and protocol win",
    "log-replay-special-characters": "add and remove of a path with special characters",
    "basic-with-inserts-merge": "MERGE",
    "basic-with-inserts-updates": "UPDATE",
    "basic-with-vacuum-protocol-check-feature": "reader feature vacuumProtocolCheck",
    "snapshot-data2-deleted": "DELETE of whole files",
    "snapshot-data3": "appends over versions",
    "snapshot-repartitioned": "repartition (files rewritten)",
    "snapshot-vacuumed": "VACUUMed table",
    "125-iterator-bug": "several commits of one row",
    "time-travel-start-start20-start40": "overwrites over versions",
    "deltalog-getChanges": "every row deleted: an empty table",
    "data-skipping-change-stats-collected-across-versions": "statistics off then on",
    "data-skipping-partition-and-data-column": "column named part, not partitioned",
}


def with_kernel_rs_timestamp_partitions(name: str, table: pa.Table) -> pa.Table:
    """kernel-rs skips `data-reader-partition-values` ("Golden data needs to have
    2021-09-08T11:11:11+00:00 as expected value for as_timestamp col"): Spark wrote the partition
    value `2021-09-08 11:11:11` in a session 7 hours behind UTC and its expected rows hold that
    session's reading, 18:11:11 UTC; the protocol reads a timestamp partition value without a
    zone as UTC, as delta-kernel-rs (and pgarrow, docs/src/lake.md) do. The expected column is
    the log's value read that way; every other value is Spark's."""
    if name != "data-reader-partition-values":
        return table
    i = table.schema.get_field_index("as_timestamp")
    col = table.column(i).to_pylist()
    fixed = [None if v is None else datetime.datetime(2021, 9, 8, 11, 11, 11, tzinfo=UTC) for v in col]
    assert all(v is None or v == datetime.datetime(2021, 9, 8, 18, 11, 11, tzinfo=UTC) for v in col), col
    return table.set_column(i, table.schema.field(i), pa.array(fixed, table.schema.field(i).type))


# Tables pgarrow reads wrongly or refuses though Delta's own readers read them: bugs, kept
# visible (strict: the test fails once they are fixed, and the mark must go).
BUGS: dict[str, str] = {}


def golden_params():
    for name in GOLDEN_TABLES:
        marks = [pytest.mark.xfail(strict=True, reason=BUGS[name])] if name in BUGS else []
        yield pytest.param(name, id=name, marks=marks)


def into_name(name: str) -> str:
    return "golden_" + name.replace("-", "_").lower()


@pytest.mark.parametrize("name", list(golden_params()))
def test_golden_table_imports_the_rows_spark_expects(url, conn, tmp_path, name):
    root = extract(name, tmp_path)
    want = with_kernel_rs_timestamp_partitions(name, read_expected(root))
    into = into_name(name)
    conn.execute(f'DROP TABLE IF EXISTS "{into}"')
    out = pg_import(url, root / "delta", into)
    assert out.returncode == 0, out.stderr
    same_rows(loaded_rows(conn, into, want.schema), expected_rows(want), want.schema.names)


# Tables of kernel/tests/data (no expected/ beside them): the rows kernel-rs's test asserts.
def ids(*ranges) -> pa.Table:
    return pa.table({"id": pa.array([i for r in ranges for i in r], pa.int64())})


def ts(s: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(s)


DATA_TABLES = {
    # kernel/tests/integration/log/v2_checkpoints.rs, generate_sidecar_expected_data()
    "v2-checkpoints-json-with-sidecars": lambda: ids([0] * 3, range(30), range(100), range(100), range(1000)),
    "v2-checkpoints-parquet-with-sidecars": lambda: ids([0] * 3, range(30), range(100), range(100), range(1000)),
    # get_classic_checkpoint_table(): a V2 table's checkpoint under the classic name
    "v2-classic-checkpoint-parquet": lambda: ids(range(20)),
    # get_simple_id_table(): UUID-named V2 checkpoint found through _last_checkpoint
    "v2-checkpoints-json-with-last-checkpoint": lambda: ids(range(10)),
    # kernel/tests/integration/read/mod.rs, compacted_log_files_table()
    "compacted-log-files-table": lambda: pa.table(
        {
            "id": pa.array([0, 1, 2, 10, 12], pa.int32()),
            "comment": ["new", "after-large-delete", "", "merge1-insert", "merge2-insert"],
        }
    ),
    # timestamp_partitioned_table(): an ISO 8601 timestamp partition value
    "timestamp-partitioned-table": lambda: pa.table(
        {
            "id": pa.array([1], pa.int64()),
            "x": [0.5],
            "s": [""],
            "time": pa.array([ts("1971-07-22T03:06:40+00:00")], pa.timestamp("us", "UTC")),
        }
    ),
    # short_dv(): a deletion vector in a file beside the data (3 of 5 rows deleted)
    "with-short-dv": lambda: pa.table(
        {
            "id": pa.array(range(3, 10), pa.int64()),
            "value": [str(i) for i in range(3, 10)],
            "timestamp": pa.array([ts("2023-05-31T18:58:33.633+00:00")] * 7, pa.timestamp("us", "UTC")),
            "rand": [0.7918174793484931, 0.9281049271981882, 0.27796520310701633, 0.15263801464228832,
                     0.1981143710215575, 0.3069439236599195, 0.5175919190815845],
        }
    ),
    # type_widening_basic() and type_widening_decimal(): one file written before the widening,
    # one after (their rows paired by which could be written before it)
    "type-widening": lambda: pa.table(
        {
            "byte_long": pa.array([1, 9223372036854775807], pa.int64()),
            "int_long": pa.array([2, 9223372036854775807], pa.int64()),
            "float_double": [3.4000000953674316, 1.234567890123],
            "byte_double": [5.0, 1.234567890123],
            "short_double": [6.0, 1.234567890123],
            "int_double": [7.0, 1.234567890123],
            "decimal_decimal_same_scale": pa.array([Decimal("123.45"), Decimal("12345678901234.56")], pa.decimal128(20, 2)),
            "decimal_decimal_greater_scale": pa.array([Decimal("67.89000"), Decimal("12345678901.23456")], pa.decimal128(20, 5)),
            "byte_decimal": pa.array([Decimal("1.0"), Decimal("123.4")], pa.decimal128(4, 1)),
            "short_decimal": pa.array([Decimal("2.0"), Decimal("12345.6")], pa.decimal128(6, 1)),
            "int_decimal": pa.array([Decimal("3.0"), Decimal("1234567890.1")], pa.decimal128(11, 1)),
            "long_decimal": pa.array([Decimal("4.0"), Decimal("123456789012345678.9")], pa.decimal128(21, 1)),
            "date_timestamp_ntz": pa.array([ts("2024-09-09T00:00:00"), ts("2024-09-09T12:34:56.123456")], pa.timestamp("us")),
        }
    ),
}


def data_params():
    for name in DATA_TABLES:
        marks = [pytest.mark.xfail(strict=True, reason=BUGS[name])] if name in BUGS else []
        yield pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("name", list(data_params()))
def test_kernel_rs_test_table_imports_the_rows_its_test_asserts(url, conn, tmp_path, name):
    root = extract(name, tmp_path)
    want = DATA_TABLES[name]()
    into = into_name(name)
    conn.execute(f'DROP TABLE IF EXISTS "{into}"')
    out = pg_import(url, root, into)
    assert out.returncode == 0, out.stderr
    same_rows(loaded_rows(conn, into, want.schema), expected_rows(want), want.schema.names)


# kernel-rs's negative_test!s: a reader must refuse these tables (kernel-rs checks only that it
# fails). (table, exit status, what the refusal must name): a location without a table is the
# call's error (status 2, as anywhere), a table pgarrow cannot read a data error (status 3).
# These tables were written by hand for delta-standalone's tests: every metaData in them lacks
# its schemaString, so where a table has that defect before the one its name says (a checkpoint
# without protocol, commits 0 and 2 without 1), the refusal names that first one; the gap is
# tested alone below.
REFUSED = {
    "deltalog-invalid-protocol-version": (3, "reader version 99"),
    "deltalog-state-reconstruction-from-checkpoint-missing-metadata": (3, "has no metaData"),
    "deltalog-state-reconstruction-from-checkpoint-missing-protocol": (3, "metadata without a schema"),
    "deltalog-state-reconstruction-without-metadata": (3, "has no metaData"),
    "deltalog-state-reconstruction-without-protocol": (3, "has no protocol"),
    "no-delta-log-folder": (2, "no table there"),
    "versions-not-contiguous": (3, "missing field `schemaString`"),
}


def refused_params():
    for name, (status, names) in REFUSED.items():
        marks = [pytest.mark.xfail(strict=True, reason=BUGS[name])] if name in BUGS else []
        yield pytest.param(name, status, names, id=name, marks=marks)


@pytest.mark.parametrize(("name", "status", "names"), list(refused_params()))
def test_tables_a_reader_must_refuse_are_refused_by_name(url, conn, tmp_path, name, status, names):
    root = extract(name, tmp_path)
    into = into_name(name)
    conn.execute(f'DROP TABLE IF EXISTS "{into}"')
    out = pg_import(url, root / "delta", into)
    said = out.stderr.replace(str(root), "<table>")  # the table's name must not be what matches
    assert out.returncode == status and names in said, (out.returncode, said)
    assert conn.execute("SELECT to_regclass(%s)", (f'"{into}"',)).fetchone() == (None,)


def test_a_gap_in_the_versions_is_refused_by_name(url, conn, tmp_path):
    """`versions-not-contiguous` (commits 0 and 2, no 1) is refused above for its first defect,
    commit 0's metaData without a schemaString; given one, the missing version must be what the
    refusal names, never a table read from commits 0 and 2."""
    root = extract("versions-not-contiguous", tmp_path)
    first = root / "delta" / "_delta_log" / f"{0:020}.json"
    lines = [json.loads(line) for line in first.read_text().splitlines()]
    schema = {"type": "struct", "fields": [{"name": "id", "type": "integer", "nullable": True, "metadata": {}}]}
    for line in lines:
        if "metaData" in line:
            line["metaData"]["schemaString"] = json.dumps(schema)
    first.write_text("".join(json.dumps(line) + "\n" for line in lines))
    conn.execute('DROP TABLE IF EXISTS "golden_versions_gap"')
    out = pg_import(url, root / "delta", "golden_versions_gap")
    said = out.stderr.replace(str(root), "<table>")
    assert out.returncode == 3 and "commit 1 is missing" in said, (out.returncode, said)
    assert conn.execute("SELECT to_regclass('golden_versions_gap')").fetchone() == (None,)


def test_every_archive_is_tested():
    archives = {p.name.removesuffix(".tar.zst") for p in GOLDEN.glob("*.tar.zst")}
    assert archives == set(GOLDEN_TABLES) | set(DATA_TABLES) | set(REFUSED)
