"""Loads never write a value other than the input's without saying so (issue #32): files
written by other writers (INT96 timestamps as Spark writes them, page checksums, nanosecond
units), sentinels, and malformed files."""

import datetime
import struct

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import pgarrow

# Microseconds from 1970 of instants outside Arrow's nanosecond range (1677 to 2262).
Y9999 = 253_402_300_799_999_999  # 9999-12-31 23:59:59.999999
Y290000 = 9_089_380_454_400_000_000  # about 290000 AD
Y1 = -62_135_596_800_000_000  # 0001-01-01 00:00:00


def server_instant(conn, micros):
    # Whole days, then the microseconds left (an interval times a large number is rounded
    # through a double).
    return conn.execute(
        "SELECT (timestamp '1970-01-01' + (%(m)s::int8 / 86400000000) * interval '1 day'"
        " + (%(m)s::int8 %% 86400000000) * interval '1 microsecond')::text",
        {"m": micros},
    ).fetchone()[0]


def test_int96_outside_the_nanosecond_range_loads_exactly(url, conn, tmp_path):
    # As Spark writes them: INT96, and no Arrow schema in the file to hint a unit.
    micros = [Y9999, Y1, 1_704_067_200_000_001, None]
    table = pa.table({"id": [1, 2, 3, 4], "ts": pa.array(micros, pa.timestamp("us"))})
    path = tmp_path / "spark.parquet"
    pq.write_table(table, path, use_deprecated_int96_timestamps=True, store_schema=False)
    assert pq.ParquetFile(path).schema.column(1).physical_type == "INT96"
    conn.execute("DROP TABLE IF EXISTS x_int96; CREATE TABLE x_int96 (id int, ts timestamp)")
    assert pgarrow.write(url, "x_int96", str(path))["rows"] == 4
    got = conn.execute("SELECT ts::text FROM x_int96 ORDER BY id").fetchall()
    assert got == [(server_instant(conn, m),) if m is not None else (None,) for m in micros]
    assert got[0] == ("9999-12-31 23:59:59.999999",)

    # Year 290000: still microseconds (PostgreSQL goes on to 294276).
    path = tmp_path / "far.parquet"
    far = pa.table({"id": [1], "ts": pa.array([Y290000], pa.timestamp("us"))})
    pq.write_table(far, path, use_deprecated_int96_timestamps=True, store_schema=False)
    conn.execute("TRUNCATE x_int96")
    pgarrow.write(url, "x_int96", str(path))
    assert conn.execute("SELECT ts::text FROM x_int96").fetchall() == [(server_instant(conn, Y290000),)]


def test_int96_with_nanoseconds_follows_the_nanosecond_policy(url, conn, tmp_path):
    table = pa.table({"ts": pa.array([1_704_067_200_000_000_500, 0], pa.timestamp("ns"))})
    path = tmp_path / "impala.parquet"
    pq.write_table(table, path, use_deprecated_int96_timestamps=True, store_schema=False)
    conn.execute("DROP TABLE IF EXISTS x_ns96; CREATE TABLE x_ns96 (ts timestamp)")
    with pytest.raises(pgarrow.Error, match=r'column "ts" .*row 1.*--nanoseconds round'):
        pgarrow.write(url, "x_ns96", str(path))
    stats = pgarrow.write(url, "x_ns96", str(path), nanoseconds="round")
    assert stats["losses"] == {"ts": {"nanoseconds_rounded": 1}}
    # 500 ns rounds half to even: down.
    assert conn.execute("SELECT ts::text FROM x_ns96 ORDER BY ts").fetchall() == [
        ("1970-01-01 00:00:00",),
        ("2024-01-01 00:00:00",),
    ]


def test_nanosecond_units_are_refused_or_rounded_and_counted(url, conn):
    conn.execute(
        "DROP TABLE IF EXISTS x_nanos;"
        " CREATE TABLE x_nanos (id int, ts timestamptz, t time, d interval)"
    )
    ns_per_day = 86_400_000_000_000
    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int32()),
            "ts": pa.array([1, 2_000, 2**63 - 1], pa.timestamp("ns", tz="UTC")),
            "t": pa.array([ns_per_day - 1, 1_000, 0], pa.time64("ns")),
            "d": pa.array([500, 1_500, 3_000], pa.duration("ns")),
        }
    )
    # By default the first inexact value is refused, naming column and row; nothing loads.
    with pytest.raises(pgarrow.Error) as e:
        pgarrow.write(url, "x_nanos", table)
    assert 'column "ts" (timestamp with time zone), row 1' in str(e.value)
    assert "--nanoseconds round" in str(e.value)
    assert conn.execute("SELECT count(*) FROM x_nanos").fetchone() == (0,)
    with pytest.raises(pgarrow.UsageError, match="error or round"):
        pgarrow.write(url, "x_nanos", table, nanoseconds="truncate")
    stats = pgarrow.write(url, "x_nanos", table, nanoseconds="round")
    assert stats["losses"] == {
        "ts": {"nanoseconds_rounded": 2},
        "t": {"nanoseconds_rounded": 1},
        "d": {"nanoseconds_rounded": 2},
    }
    conn.execute("SET TimeZone = 'UTC'")
    try:
        got = conn.execute("SELECT ts::text, t::text, d::text FROM x_nanos ORDER BY id").fetchall()
    finally:
        conn.execute("RESET TimeZone")
    assert got == [
        ("1970-01-01 00:00:00+00", "24:00:00", "00:00:00"),
        ("1970-01-01 00:00:00.000002+00", "00:00:00.000001", "00:00:00.000002"),
        # i64::MAX ns is pandas' Timestamp.max, a finite instant: never infinity.
        ("2262-04-11 23:47:16.854776+00", "00:00:00", "00:00:00.000003"),
    ]


def test_only_microseconds_hold_the_infinity_sentinel(url, conn):
    conn.execute("DROP TABLE IF EXISTS x_inf; CREATE TABLE x_inf (id int, ts timestamp)")
    us = pa.table({"id": [1, 2], "ts": pa.array([2**63 - 1, -(2**63 - 1)], pa.timestamp("us"))})
    pgarrow.write(url, "x_inf", us)
    assert conn.execute("SELECT ts::text FROM x_inf ORDER BY id").fetchall() == [
        ("infinity",),
        ("-infinity",),
    ]
    # In milliseconds the same number is past the range, not infinity.
    ms = pa.table({"id": [3], "ts": pa.array([2**63 - 1], pa.timestamp("ms"))})
    with pytest.raises(pgarrow.Error, match="outside timestamp's range"):
        pgarrow.write(url, "x_inf", ms)


def test_a_finite_timestamp_on_the_sentinel_is_not_exported_as_infinity(url, conn):
    conn.execute(
        "DROP TABLE IF EXISTS x_edge; CREATE TABLE x_edge (id int, ts timestamp);"
        " INSERT INTO x_edge VALUES (1, '294247-01-10 04:00:54.775807')"
    )
    with pytest.raises(pgarrow.Error, match="out-of-range|past Arrow"):
        pgarrow.read_arrow(url, "x_edge")
    # The out-of-range policy decides: NULL, counted.
    table = pgarrow.read_arrow(url, "x_edge", out_of_range="null")
    assert table.column("ts").null_count == 1


def test_a_date64_with_a_time_of_day_is_refused(url, conn, tmp_path):
    conn.execute("DROP TABLE IF EXISTS x_d64; CREATE TABLE x_d64 (d date)")
    day = 86_400_000
    table = pa.table({"d": pa.array([19_000 * day, 19_000 * day + 3_600_000], pa.date64())})
    path = tmp_path / "d64.arrow"
    with ipc.new_file(path, table.schema) as w:
        w.write_table(table)
    with pytest.raises(pgarrow.Error, match=r'column "d" \(date\), row 2.*not a whole day'):
        pgarrow.write(url, "x_d64", str(path))
    assert conn.execute("SELECT count(*) FROM x_d64").fetchone() == (0,)


def test_a_flipped_bit_is_caught_by_the_page_checksum(url, conn, tmp_path):
    marker = 0x1122334455667788
    table = pa.table({"v": pa.array([1, marker, 3], pa.int64())})
    path = tmp_path / "crc.parquet"
    pq.write_table(
        table,
        path,
        write_page_checksum=True,
        compression="NONE",
        use_dictionary=False,
        write_statistics=False,
    )
    data = bytearray(path.read_bytes())
    at = data.index(struct.pack("<q", marker))
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    conn.execute("DROP TABLE IF EXISTS x_crc; CREATE TABLE x_crc (v int8)")
    with pytest.raises(pgarrow.Error, match="(?i)checksum"):
        pgarrow.write(url, "x_crc", str(path))
    assert conn.execute("SELECT count(*) FROM x_crc").fetchone() == (0,)


def test_malformed_files_are_errors_never_crashes(url, conn, tmp_path):
    table = pa.table(
        {
            "id": pa.array(range(200), pa.int64()),
            "s": pa.array([f"v{i}" for i in range(200)]),
            "l": pa.array([[i, None] for i in range(200)], pa.list_(pa.int32())),
        }
    )
    good = tmp_path / "good.parquet"
    pq.write_table(table, good, row_group_size=50)
    conn.execute("DROP TABLE IF EXISTS x_bad; CREATE TABLE x_bad (id int8, s text, l int4[])")
    original = good.read_bytes()
    refused = 0
    # Every 7th byte set to 0xff in turn: each load either loads the file's 200 rows or fails
    # with pgarrow's error; the process never dies and nothing half-loads.
    for at in range(0, len(original), 7):
        data = bytearray(original)
        data[at] = 0xFF
        bad = tmp_path / "bad.parquet"
        bad.write_bytes(bytes(data))
        try:
            stats = pgarrow.write(url, "x_bad", str(bad), mode="replace")
            assert stats["rows"] == 200
        except pgarrow.Error:
            refused += 1
        assert conn.execute("SELECT count(*) IN (0, 200) FROM x_bad").fetchone() == (True,)
    assert refused > 0


def test_generated_and_identity_columns_and_the_null_type(url, conn):
    conn.execute(
        "DROP TABLE IF EXISTS x_gen, x_gen2, x_null;"
        " CREATE TABLE x_gen (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a int,"
        "  twice int GENERATED ALWAYS AS (a * 2) STORED);"
        " INSERT INTO x_gen (a) VALUES (1), (2);"
        " CREATE TABLE x_gen2 (LIKE x_gen INCLUDING ALL)"
    )
    data = pgarrow.read_arrow(url, "x_gen")
    assert data.column_names == ["id", "a", "twice"]
    # The generated column's values are left out (the server computes them, and says so);
    # the identity column takes the input's values, appended or upserted.
    stats = pgarrow.write(url, "x_gen2", data)
    assert stats["skipped_generated"] == ["twice"]
    changed = data.set_column(1, "a", pa.array([10, 20], pa.int32()))
    pgarrow.write(url, "x_gen2", changed, mode="upsert", key="id")
    assert conn.execute("SELECT id, a, twice FROM x_gen2 ORDER BY id").fetchall() == [
        (1, 10, 20),
        (2, 20, 40),
    ]
    # A column of Arrow's null type: a text column with create=True, NULL in any column.
    nulls = pa.table({"id": pa.array([1, 2], pa.int32()), "n": pa.nulls(2), "l": pa.array([[None], None], pa.list_(pa.null()))})
    pgarrow.write(url, "x_null", nulls, create=True)
    types = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'x_null'::regclass AND attnum > 0 ORDER BY attnum"
    ).fetchall()
    assert types == [("id", "integer"), ("n", "text"), ("l", "text[]")]
    assert conn.execute("SELECT id, n, l::text FROM x_null ORDER BY id").fetchall() == [
        (1, None, "{NULL}"),
        (2, None, None),
    ]
    conn.execute("ALTER TABLE x_null ADD COLUMN ip inet")
    pgarrow.write(url, "x_null", pa.table({"id": pa.array([3], pa.int32()), "ip": pa.nulls(1)}))
    assert conn.execute("SELECT count(*) FROM x_null WHERE id = 3 AND ip IS NULL").fetchone() == (1,)


def test_structs_and_maps_from_any_writer_load_as_json(url, conn, tmp_path):
    import decimal
    import json

    people = pa.array(
        [{"name": "Ann", "age": 41, "tags": ["a", None]}, None, {"name": 'q"uote', "age": None, "tags": []}],
        pa.struct([("name", pa.string()), ("age", pa.int64()), ("tags", pa.list_(pa.string()))]),
    )
    attrs = pa.array([[("k", 1), ("z", None)], [], None], pa.map_(pa.string(), pa.int32()))
    by_id = pa.array([[(1, "one")], None, []], pa.map_(pa.int64(), pa.string()))
    points = pa.array([[{"x": 1.5, "y": decimal.Decimal("12345678901234567890.123")}], [], None],
                      pa.list_(pa.struct([("x", pa.float64()), ("y", pa.decimal128(38, 3))])))
    table = pa.table({"id": [1, 2, 3], "person": people, "attrs": attrs, "by_id": by_id, "points": points})
    # As Spark and other writers leave them: no pgarrow metadata.
    path = tmp_path / "nested.parquet"
    pq.write_table(table, path)
    conn.execute("DROP TABLE IF EXISTS x_json, x_json2")
    pgarrow.write(url, "x_json", str(path), create=True)
    types = conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'x_json'::regclass AND attnum > 1 ORDER BY attnum"
    ).fetchall()
    assert types == [("jsonb",)] * 4
    got = conn.execute("SELECT person, attrs, by_id, points::text FROM x_json ORDER BY id").fetchall()
    assert got[0][0] == {"name": "Ann", "age": 41, "tags": ["a", None]}
    assert got[0][1] == {"k": 1, "z": None}
    assert got[0][2] == [{"key": 1, "value": "one"}]
    # Every digit of the decimal, as a JSON number.
    assert got[0][3] == '[{"x": 1.5, "y": 12345678901234567890.123}]'
    assert got[1] == (None, {}, None, "[]")
    assert got[2][0] == {"name": 'q"uote', "age": None, "tags": []}
    # Into json and text columns made by hand: the same JSON text.
    conn.execute("CREATE TABLE x_json2 (id int, person json, attrs text, by_id jsonb, points text)")
    pgarrow.write(url, "x_json2", table)
    row = conn.execute("SELECT person::text, attrs FROM x_json2 WHERE id = 1").fetchone()
    assert json.loads(row[0]) == {"name": "Ann", "age": 41, "tags": ["a", None]}
    assert json.loads(row[1]) == {"k": 1, "z": None}
    # A float JSON cannot hold is refused, naming the row.
    bad = pa.table({"id": [9], "points": pa.array([[{"x": float("nan"), "y": None}]], points.type)})
    with pytest.raises(pgarrow.Error, match=r'column "points" \(text\), row 1.*NaN has no JSON form'):
        pgarrow.write(url, "x_json2", bad)


def variant(metadata_keys, value: bytes):
    """A Parquet Variant's two binaries: metadata (version 1, one-byte offsets) and value."""
    metadata = bytes([0x01, len(metadata_keys), 0])
    end = 0
    for k in metadata_keys:
        end += len(k)
        metadata += bytes([end])
    metadata += b"".join(k.encode() for k in metadata_keys)
    return {"metadata": metadata, "value": value}


def test_variants_load_as_their_json(url, conn, tmp_path):
    """Parquet's Variant type, as readers give it (a Struct of binary metadata and value),
    decoded into JSON: objects by their keys, every digit of a decimal, ISO dates."""
    # {"b": -1, "a": "hi"}: ids 1, 0; offsets 0, 2, 5; int8 -1; short string "hi".
    obj = bytes([0x02, 2, 1, 0, 0, 2, 5, 3 << 2, 0xFF, (2 << 2) | 1]) + b"hi"
    dec = bytes([10 << 2, 2]) + (-123456789012345678901234567890).to_bytes(16, "little", signed=True)
    day = bytes([11 << 2]) + (-719528).to_bytes(4, "little", signed=True)
    kind = pa.struct([("metadata", pa.binary()), ("value", pa.binary())])
    values = pa.array([variant(["a", "b"], obj), variant([], dec), variant([], day), None], kind)
    path = tmp_path / "variant.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3, 4], "v": values}), path)
    conn.execute("DROP TABLE IF EXISTS x_variant")
    pgarrow.write(url, "x_variant", str(path), create=True)
    assert conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'x_variant'::regclass AND attname = 'v'"
    ).fetchone() == ("jsonb",)
    got = conn.execute("SELECT v::text FROM x_variant ORDER BY id").fetchall()
    assert got == [('{"a": "hi", "b": -1}',), ("-1234567890123456789012345678.90",), ('"0000-01-01"',), (None,)]
    # A value that is not a Variant's encoding is refused, naming the row.
    bad = pa.array([variant([], bytes([0x02, 200]))], kind)
    with pytest.raises(pgarrow.Error, match=r'column "v" \(jsonb\), row 1.*Variant value: an object of 200 fields'):
        pgarrow.write(url, "x_variant", pa.table({"id": [9], "v": bad}))


def test_shredded_variants_load_as_their_unshredded_json(url, conn, tmp_path):
    """A shredded Variant (Parquet's Variant with `typed_value`, as Spark and Iceberg write
    it) is put back together as the shredding spec says: typed primitives, shredded object
    fields (missing ones left out, the rest of a partially shredded object from `value`, keys
    in the Variant's sorted order), shredded arrays; the JSON is what the unshredded Variant
    gives, into json (the exact text) and jsonb."""
    keys = ["a", "b", "c"]
    meta = variant(keys, b"")["metadata"]
    null = bytes([0x00])
    # {"b": true} as a Variant object (one field, id 1): the unshredded rest of row 1.
    rest_b = bytes([0x02, 1, 1, 0, 1, 1 << 2])
    # The same rows unshredded: {"a": 7, "b": true, "c": ["x", null]}, {"a": null},
    # {} and the string "s".
    full_1 = bytes([0x02, 3, 0, 1, 2, 0, 2, 3, 9]) + bytes([3 << 2, 7]) + bytes([1 << 2]) + bytes(
        [0x03, 2, 0, 2, 3, (1 << 2) | 1]
    ) + b"x" + null
    full_2 = bytes([0x02, 1, 0, 0, 1]) + null
    full_3 = bytes([0x02, 0, 0])
    full_4 = bytes([(1 << 2) | 1]) + b"s"
    field = lambda t: pa.struct([("value", pa.binary()), ("typed_value", t)])  # noqa: E731
    shredded_type = pa.struct(
        [
            ("metadata", pa.binary()),
            ("value", pa.binary()),
            (
                "typed_value",
                pa.struct(
                    [
                        pa.field("a", field(pa.int8()), nullable=False),
                        pa.field("c", field(pa.list_(pa.field("element", field(pa.string()), nullable=False))), nullable=False),
                    ]
                ),
            ),
        ]
    )
    shredded = pa.array(
        [
            {
                "metadata": meta,
                "value": rest_b,
                "typed_value": {
                    "a": {"value": None, "typed_value": 7},
                    "c": {"value": None, "typed_value": [{"value": None, "typed_value": "x"}, {"value": null, "typed_value": None}]},
                },
            },
            {
                "metadata": meta,
                "value": None,
                "typed_value": {"a": {"value": null, "typed_value": None}, "c": {"value": None, "typed_value": None}},
            },
            {
                "metadata": meta,
                "value": None,
                "typed_value": {"a": {"value": None, "typed_value": None}, "c": {"value": None, "typed_value": None}},
            },
            {"metadata": meta, "value": full_4, "typed_value": None},
            None,
        ],
        shredded_type,
    )
    plain_type = pa.struct([("metadata", pa.binary()), ("value", pa.binary())])
    plain = pa.array(
        [{"metadata": meta, "value": v} for v in (full_1, full_2, full_3, full_4)] + [None], plain_type
    )
    ids = pa.array([1, 2, 3, 4, 5], pa.int32())
    path = tmp_path / "shredded.parquet"
    pq.write_table(pa.table({"id": ids, "s": shredded, "sj": shredded, "p": plain, "pj": plain}), path)
    conn.execute(
        "DROP TABLE IF EXISTS x_shredded;"
        " CREATE TABLE x_shredded (id int, s jsonb, sj json, p jsonb, pj json)"
    )
    pgarrow.write(url, "x_shredded", str(path))
    rows = conn.execute("SELECT s::text, sj::text, p::text, pj::text FROM x_shredded ORDER BY id").fetchall()
    for s_, sj, p, pj in rows:
        assert (s_, sj) == (p, pj)
    assert [r[1] for r in rows] == ['{"a":7,"b":true,"c":["x",null]}', '{"a":null}', "{}", '"s"', None]
    # A typed value beside a value that is not an object's is refused, naming the row.
    bad = pa.array(
        [{"metadata": meta, "value": full_4, "typed_value": {"a": {"value": None, "typed_value": 1}, "c": {"value": None, "typed_value": None}}}],
        shredded_type,
    )
    with pytest.raises(pgarrow.Error, match=r'column "s" \(jsonb\), row 1.*shredded object whose value is not an object'):
        pgarrow.write(url, "x_shredded", pa.table({"id": [9], "s": bad}))


def test_a_variant_negative_zero_keeps_its_sign_in_json_and_text_not_in_jsonb(url, conn, tmp_path):
    """jsonb keeps numbers as numeric, which has no negative zero: a Variant double -0.0 loads
    into jsonb as 0 (as the docs say), and keeps its sign into json and text."""
    kind = pa.struct([("metadata", pa.binary()), ("value", pa.binary())])
    neg_zero = bytes([7 << 2]) + struct.pack("<d", -0.0)
    values = pa.array([variant([], neg_zero)], kind)
    path = tmp_path / "negzero.parquet"
    pq.write_table(pa.table({"b": values, "j": values, "t": values}), path)
    conn.execute("DROP TABLE IF EXISTS x_negzero; CREATE TABLE x_negzero (b jsonb, j json, t text)")
    pgarrow.write(url, "x_negzero", str(path))
    assert conn.execute("SELECT b::text, j::text, t FROM x_negzero").fetchone() == ("0", "-0", "-0")


def test_create_refuses_a_type_the_target_lacks_by_its_name(url, conn):
    conn.execute(
        "DROP TABLE IF EXISTS x_enum_src, x_enum_dst; DROP TYPE IF EXISTS x_feel;"
        " CREATE TYPE x_feel AS ENUM ('meh'); CREATE TABLE x_enum_src AS SELECT 'meh'::x_feel AS f"
    )
    data = pgarrow.read_arrow(url, "x_enum_src")
    conn.execute("DROP TABLE x_enum_src; DROP TYPE x_feel")
    with pytest.raises(pgarrow.UsageError, match=r'column "f" of public\.x_enum_dst: its type x_feel .*does not exist'):
        pgarrow.write(url, "x_enum_dst", data, create=True)
