"""The input matrix of issue #32: every Arrow type the load accepts, written by pyarrow as a
Parquet file, an Arrow IPC file and an Arrow IPC stream, loaded with `pgarrow.write` (into a
table it creates, and into tables made by hand), and compared with what the server holds.

The expected values are computed here from the input, in PostgreSQL's own text form (ISO
dates, UTC, the postgres interval style) or as Python values read with psycopg; never from
pgarrow's output. A conversion that cannot be exact is refused by default, naming column, row
and value, and counted under `losses` when a policy lets it through."""

import datetime
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Optional

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import pgarrow

FORMATS = ("parquet", "arrow", "arrows")
# Types pyarrow does not write to Parquet (month_day_nano intervals, unions, run-end encoding:
# ArrowNotImplementedError; a negative decimal scale: refused by Parquet's Decimal type).
IPC_ONLY = ("arrow", "arrows")

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
EPOCH = datetime.datetime(1970, 1, 1)
US = datetime.timedelta(microseconds=1)
# Microseconds from 1970.
Y1 = -62_135_596_800_000_000  # 0001-01-01 00:00:00
Y9999 = 253_402_300_799_999_999  # 9999-12-31 23:59:59.999999
LEAP = 1_709_210_096_789_012  # 2024-02-29 12:34:56.789012
# The whole microseconds nearest the ends of Arrow's nanosecond range (1677 to 2262).
NS_FIRST, NS_LAST = -9_223_372_036_854_775, 9_223_372_036_854_775
PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}

STRINGS = [
    "",
    "plain",
    "é",
    "日本語",
    "🎉 emoji",
    'quote " and \\ backslash',
    "line\nbreak\ttab",
    "NULL",
    " spaces around ",
    "{braces},commas",
    None,
    "x" * 1000,
]
BLOBS = [b"", b"\x00", bytes(range(256)), b"\xff\xfe", None]
DATES = [
    datetime.date(1970, 1, 1),
    datetime.date(1969, 12, 31),
    datetime.date(1, 1, 1),
    datetime.date(9999, 12, 31),
    datetime.date(2000, 2, 29),
    None,
]


# --- PostgreSQL's text forms, computed here -----------------------------------------------


def texts(values, form=str):
    return [None if v is None else form(v) for v in values]


def fraction(micros: int) -> str:
    return f".{micros:06d}".rstrip("0") if micros else ""


def pg_timestamp(micros: int, zoned: bool = False) -> str:
    t = EPOCH + micros * US
    s = f"{t.year:04d}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    return s + fraction(t.microsecond) + ("+00" if zoned else "")


def pg_time(micros: int) -> str:
    s, us = divmod(micros, 1_000_000)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" + fraction(us)


def trunc_div(a: int, b: int) -> int:
    """C's division (towards zero), as PostgreSQL splits an interval."""
    q = abs(a) // b
    return q if a >= 0 else -q


def pg_interval(months: int, days: int, micros: int) -> str:
    """interval_out with IntervalStyle postgres (EncodeInterval)."""
    out, is_zero, is_before = "", True, False

    def part(value, unit):
        nonlocal out, is_zero, is_before
        if value == 0:
            return
        out += ("" if is_zero else " ") + ("+" if is_before and value > 0 else "")
        out += f"{value} {unit}" + ("" if value == 1 else "s")
        is_before, is_zero = value < 0, False

    part(trunc_div(months, 12), "year")
    part(months - 12 * trunc_div(months, 12), "mon")
    part(days, "day")
    if is_zero or micros != 0:
        hours = trunc_div(micros, 3_600_000_000)
        rest = micros - hours * 3_600_000_000
        minutes = trunc_div(rest, 60_000_000)
        rest -= minutes * 60_000_000
        seconds = trunc_div(rest, 1_000_000)
        fsec = rest - seconds * 1_000_000
        sign = "-" if micros < 0 else ("+" if is_before else "")
        out += ("" if is_zero else " ") + f"{sign}{abs(hours):02d}:{abs(minutes):02d}:{abs(seconds):02d}"
        out += fraction(abs(fsec))
    return out


def pg_bytea(b: bytes) -> str:
    return "\\x" + b.hex()


def pg_numeric(d: Decimal) -> str:
    return format(d, "f")


def pg_array(values, element=str) -> str:
    """array_out: elements quoted where the array syntax needs it."""

    def one(v):
        if v is None:
            return "NULL"
        if isinstance(v, list):
            return pg_array(v, element)
        s = element(v)
        if s == "" or s.upper() == "NULL" or any(c in s for c in '{},"\\ \t\n\r\v\f'):
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return s

    return "{" + ",".join(one(v) for v in values) + "}"


def pg_bool(b: bool) -> str:
    return "true" if b else "false"


def floats_key(v):
    """Floats by their exact value and sign (repr round-trips; NaN equals NaN)."""
    if isinstance(v, list):
        return [floats_key(x) for x in v]
    return None if v is None else repr(float(v))


# --- JSON read back: exact numbers, ISO 8601 instants parsed, not matched as text ----------


@dataclass(frozen=True)
class Float:
    """A JSON number that reads back as this float (sign included): 64 or 32 bits."""

    value: float
    bits: int = 64


@dataclass(frozen=True)
class Instant:
    """An ISO 8601 date-time string: nanoseconds from 1970 (UTC), and whether it has a zone."""

    ns: int
    zoned: bool


@dataclass(frozen=True)
class TimeOfDay:
    ns: int


@dataclass(frozen=True)
class Span:
    """An ISO 8601 duration (PTnS)."""

    ns: int


ISO_INSTANT = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?"
)
ISO_TIME = re.compile(r"(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?")
ISO_SPAN = re.compile(r"(-?)PT(\d+)(?:\.(\d{1,9}))?S")


def nanos(digits: Optional[str]) -> int:
    return int((digits or "").ljust(9, "0"))


def parse_instant(s: str) -> Optional[Instant]:
    m = ISO_INSTANT.fullmatch(s)
    if not m:
        return None
    y, mo, d, h, mi, sec = (int(x) for x in m.groups()[:6])
    days = datetime.date(y, mo, d).toordinal() - datetime.date(1970, 1, 1).toordinal()
    ns = (days * 86_400 + h * 3600 + mi * 60 + sec) * 10**9 + nanos(m.group(7))
    zone = m.group(8)
    if zone and zone != "Z":
        offset = (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * 10**9
        ns -= offset if zone[0] == "+" else -offset
    return Instant(ns, zone is not None)


def json_mismatch(got: Any, want: Any, path: str = "$") -> Optional[str]:
    """Where `got` (json.loads with Decimal floats) differs from `want`, or None."""
    if isinstance(want, Float):
        if not isinstance(got, (Decimal, int)) or isinstance(got, bool):
            return f"{path}: {got!r} is not a number"
        back = float(got) if want.bits == 64 else float(np.float32(got))
        if repr(back) != repr(want.value) or (Decimal(got).is_signed() != (math.copysign(1, want.value) < 0)):
            return f"{path}: {got} reads back as {back!r}, not {want.value!r}"
        return None
    if isinstance(want, Decimal):
        if not isinstance(got, Decimal) or got.as_tuple() != want.as_tuple():
            return f"{path}: {got!r}, expected every digit of {want}"
        return None
    if isinstance(want, Instant):
        parsed = parse_instant(got) if isinstance(got, str) else None
        return None if parsed == want else f"{path}: {got!r} is not the instant {want}"
    if isinstance(want, TimeOfDay):
        m = ISO_TIME.fullmatch(got) if isinstance(got, str) else None
        ns = m and (int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])) * 10**9 + nanos(m[4])
        return None if m and ns == want.ns else f"{path}: {got!r} is not {want.ns} ns after midnight"
    if isinstance(want, Span):
        m = ISO_SPAN.fullmatch(got) if isinstance(got, str) else None
        ns = m and (int(m[2]) * 10**9 + nanos(m[3])) * (-1 if m[1] else 1)
        return None if m and ns == want.ns else f"{path}: {got!r} is not a duration of {want.ns} ns"
    if isinstance(want, dict):
        if not isinstance(got, dict) or sorted(got) != sorted(want):
            return f"{path}: {got!r}, expected the keys {sorted(want)}"
        for k in want:
            if (m := json_mismatch(got[k], want[k], f"{path}.{k}")) is not None:
                return m
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{path}: {got!r}, expected {len(want)} items"
        for i, (g, w) in enumerate(zip(got, want)):
            if (m := json_mismatch(g, w, f"{path}[{i}]")) is not None:
                return m
        return None
    if type(got) is not type(want) or got != want:
        return f"{path}: {got!r}, expected {want!r}"
    return None


# --- the cases -------------------------------------------------------------------------------


@dataclass
class Case:
    """One Arrow type: its values, the column `create=True` makes, the server's values."""

    name: str
    array: pa.Array
    created: str
    expected: list
    # What is read back (`v` the column) and how both sides are compared.
    read: str = "v::text"
    key: Callable[[Any], Any] = field(default=lambda v: v)
    formats: tuple = FORMATS
    # A known defect, exactly described: the case is expected to fail its assertion.
    defect: Optional[str] = None
    # Compared as JSON (json_mismatch), not as equal values.
    json: bool = False


def ints_case(name, arrow_type, values, created):
    return Case(name, pa.array(values, arrow_type), created, texts(values))


def float16_array(values):
    data = np.array([0.0 if v is None else v for v in values], np.float16)
    return pa.array(data, mask=np.array([v is None for v in values]))


def float_case(name, arrow_type, values, created, width):
    if arrow_type == pa.float16():
        array = float16_array(values)
    else:
        array = pa.array([None if v is None else float(width(v)) for v in values], arrow_type)
    want = [None if v is None else float(width(v)) for v in values]
    # real widens to double precision exactly: the float32 value itself, not its text.
    return Case(name, array, created, [floats_key(v) for v in want], read="v::float8", key=floats_key)


def timestamp_case(unit, tz):
    micros = [0, -1, LEAP, None] + ([NS_FIRST, NS_LAST] if unit == "ns" else [Y1, Y9999])
    if unit == "ns":
        values = [None if m is None else m * 1_000 for m in micros]
        back = micros
    else:
        values = [None if m is None else m // PER_UNIT[unit] for m in micros]
        back = [None if v is None else v * PER_UNIT[unit] for v in values]
    zoned = tz is not None
    name = f"ts_{unit}" + ("" if tz is None else "_" + tz.split("/")[-1].lower().replace(":", ""))
    created = "timestamp with time zone" if zoned else "timestamp without time zone"
    expected = texts(back, lambda m: pg_timestamp(m, zoned))
    return Case(name, pa.array(values, pa.timestamp(unit, tz=tz)), created, expected)


def time_case(arrow_type, unit):
    micros = [0, 1, 45_296_789_012, 86_399_999_999, None]
    if unit == "ns":
        values, back = [None if m is None else m * 1_000 for m in micros], micros
    else:
        values = [None if m is None else m // PER_UNIT[unit] for m in micros]
        back = [None if v is None else v * PER_UNIT[unit] for v in values]
    return Case(f"time_{unit}", pa.array(values, arrow_type), "time without time zone", texts(back, pg_time))


def duration_case(unit):
    micros = [0, 1, -1, 90_061_000_001, -90_061_000_001, I64_MAX, -I64_MAX, None]
    if unit == "ns":
        micros = [m for m in micros if m is None or abs(m) <= NS_LAST] + [NS_FIRST]
        values, back = [None if m is None else m * 1_000 for m in micros], micros
    else:
        values = [None if m is None else trunc_div(m, PER_UNIT[unit]) for m in micros]
        back = [None if v is None else v * PER_UNIT[unit] for v in values]
    return Case(
        f"duration_{unit}", pa.array(values, pa.duration(unit)), "interval", texts(back, lambda m: pg_interval(0, 0, m))
    )


def list_case(name, arrow_type, values, created, element=str):
    return Case(name, pa.array(values, arrow_type), created, texts(values, lambda v: pg_array(v, element)))


def json_case(name, array, expected, formats=FORMATS):
    return Case(
        name,
        array,
        "jsonb",
        expected,
        key=lambda v: None if v is None else json.loads(v, parse_float=Decimal),
        formats=formats,
        json=True,
    )


UUIDS = [uuid.UUID(int=0), uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), uuid.UUID(int=2**128 - 1), None]
DECIMALS = [Decimal("1.234"), Decimal("-0.001"), Decimal("0.000"), Decimal("9999999.999"), None]
# (Negated as text: Decimal arithmetic would round to the context's 28 digits.)
BIG, NEG_BIG = Decimal("9" * 38), Decimal("-" + "9" * 38)
BIG256, NEG_BIG256 = Decimal("9" * 66 + "." + "9" * 10), Decimal("-" + "9" * 66 + "." + "9" * 10)
INTERVALS = [
    (0, 0, 0),
    (1, 2, 3_000),
    (-14, -3, -1_000_000_000),
    (12, 0, 0),
    (1, -1, 1_000),
    (0, 0, -90_061_000_001_000),
    (I32_MAX, I32_MIN, NS_LAST * 1_000),
    None,
]

PERSON = pa.struct(
    [
        ("name", pa.string()),
        ("age", pa.int64()),
        ("u", pa.uint64()),
        ("score", pa.float64()),
        ("ratio", pa.float32()),
        ("ok", pa.bool_()),
        ("tags", pa.list_(pa.string())),
        ("inner", pa.struct([("x", pa.int8())])),
        ("n", pa.decimal128(38, 10)),
        ("blob", pa.binary()),
        ("cat", pa.dictionary(pa.int8(), pa.string())),
    ]
)
PEOPLE = [
    {
        "name": 'Ann "q" é',
        "age": I64_MIN,
        "u": 2**64 - 1,
        "score": 0.1,
        "ratio": 1.5,
        "ok": True,
        "tags": ["a", None, ""],
        "inner": {"x": -128},
        "n": Decimal("1234567890123456789012345678.0123456789"),
        "blob": b"\x00\xff",
        "cat": "x",
    },
    {
        "name": None,
        "age": I64_MAX,
        "u": 0,
        "score": 1e300,
        "ratio": 0.1,
        "ok": False,
        "tags": [],
        "inner": None,
        "n": Decimal("-0.0000000001"),
        "blob": b"",
        "cat": None,
    },
    {
        "name": "",
        "age": None,
        "u": None,
        "score": 5e-324,
        "ratio": None,
        "ok": None,
        "tags": None,
        "inner": {"x": None},
        "n": None,
        "blob": None,
        "cat": "y",
    },
    None,
]


def person_json(p):
    if p is None:
        return None
    want = dict(p)
    want["score"] = Float(p["score"])
    want["ratio"] = None if p["ratio"] is None else Float(float(np.float32(p["ratio"])), bits=32)
    want["blob"] = None if p["blob"] is None else pg_bytea(p["blob"])
    return want


TEMPORAL = pa.struct(
    [
        ("d", pa.date32()),
        ("ts", pa.timestamp("s")),
        ("tz", pa.timestamp("us", tz="Asia/Kolkata")),
        ("ns", pa.timestamp("ns", tz="UTC")),
        ("t", pa.time64("ns")),
        ("t32", pa.time32("ms")),
        ("dur", pa.duration("us")),
        ("dns", pa.duration("ns")),
    ]
)
TEMPORALS = [
    {"d": datetime.date(1, 1, 1), "ts": Y1 // 10**6, "tz": Y9999, "ns": -1, "t": 86_399_999_999_999,
     "t32": 1, "dur": 90_061_000_001, "dns": -1},
    {"d": datetime.date(9999, 12, 31), "ts": 0, "tz": LEAP, "ns": 1_500, "t": 0, "t32": 86_399_999,
     "dur": 0, "dns": 1},
    {k: None for k in TEMPORAL.names},
]


def temporal_json(r):
    if r["d"] is None:
        return dict(r)
    return {
        "d": r["d"].isoformat(),
        "ts": Instant(r["ts"] * 10**9, False),
        "tz": Instant(r["tz"] * 1_000, True),
        "ns": Instant(r["ns"], True),
        "t": TimeOfDay(r["t"]),
        "t32": TimeOfDay(r["t32"] * 10**6),
        "dur": Span(r["dur"] * 1_000),
        "dns": Span(r["dns"]),
    }



CASES = [
    # Integers: every width, both ends.
    ints_case("int8", pa.int8(), [-128, 0, 127, None, -1], "smallint"),
    ints_case("int16", pa.int16(), [-32768, 0, 32767, None], "smallint"),
    ints_case("int32", pa.int32(), [I32_MIN, 0, I32_MAX, None], "integer"),
    ints_case("int64", pa.int64(), [I64_MIN, 0, I64_MAX, None, -1], "bigint"),
    ints_case("uint8", pa.uint8(), [0, 255, None], "smallint"),
    ints_case("uint16", pa.uint16(), [0, 65535, None], "integer"),
    ints_case("uint32", pa.uint32(), [0, 2**32 - 1, None], "bigint"),
    ints_case("uint64", pa.uint64(), [0, 2**63, 2**64 - 1, None], "numeric(20,0)"),
    Case("bool", pa.array([True, False, None]), "boolean", texts([True, False, None], pg_bool)),
    # Floats: NaN, infinities, negative zero, the extremes and the smallest subnormal.
    float_case(
        "float16", pa.float16(),
        [math.nan, math.inf, -math.inf, -0.0, 65504.0, 2.0**-24, 0.1, None], "real", np.float16,
    ),
    float_case(
        "float32", pa.float32(),
        [math.nan, math.inf, -math.inf, -0.0, float(np.finfo(np.float32).max), 1e-45, 0.1, None],
        "real", np.float32,
    ),
    float_case(
        "float64", pa.float64(),
        [math.nan, math.inf, -math.inf, -0.0, 1.7976931348623157e308, 5e-324, 0.1, None],
        "double precision", float,
    ),
    # Decimals at full precision.
    Case("dec128", pa.array(DECIMALS, pa.decimal128(10, 3)), "numeric(10,3)", texts(DECIMALS, pg_numeric)),
    Case(
        "dec128_38_0", pa.array([BIG, NEG_BIG, Decimal(0), None], pa.decimal128(38, 0)), "numeric(38,0)",
        texts([BIG, NEG_BIG, Decimal(0), None], pg_numeric),
    ),
    Case(
        "dec128_38_38",
        pa.array([Decimal("0." + "9" * 38), Decimal("-0." + "0" * 37 + "1"), None], pa.decimal128(38, 38)),
        "numeric(38,38)",
        ["0." + "9" * 38, "-0." + "0" * 37 + "1", None],
    ),
    Case(
        "dec256", pa.array([BIG256, NEG_BIG256, Decimal("0E-10"), None], pa.decimal256(76, 10)), "numeric(76,10)",
        texts([BIG256, NEG_BIG256, Decimal("0E-10"), None], pg_numeric),
    ),
    Case(
        "dec_neg_scale", pa.array([Decimal("1.23E+4"), Decimal("-9.99E+4"), None], pa.decimal128(5, -2)),
        "numeric", ["12300", "-99900", None], formats=IPC_ONLY,
    ),
    # Text, in every layout.
    Case("utf8", pa.array(STRINGS, pa.string()), "text", STRINGS),
    Case("large_utf8", pa.array(STRINGS, pa.large_string()), "text", STRINGS),
    Case("utf8_view", pa.array(STRINGS, pa.string_view()), "text", STRINGS),
    Case(
        "dict_utf8", pa.array(STRINGS).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string())), "text",
        STRINGS,
    ),
    Case(
        "dict_large_utf8",
        pa.array(STRINGS, pa.large_string()).dictionary_encode().cast(pa.dictionary(pa.int64(), pa.large_string())),
        "text", STRINGS,
    ),
    # A dictionary replaced between batches (an IPC file allows one dictionary per column).
    Case(
        "dict_replaced",
        pa.chunked_array([pa.array(["a", "b", "a"]).dictionary_encode(), pa.array(["c", None, "a"]).dictionary_encode()]),
        "text", ["a", "b", "a", "c", None, "a"], formats=("parquet", "arrows"),
    ),
    Case(
        "json_ext", pa.array(['{"a": 1}', "[1, 2.50, null]", "null", '"é"', None], pa.json_()), "jsonb",
        ['{"a": 1}', "[1, 2.50, null]", "null", '"é"', None],
    ),
    Case(
        "uuid_ext", pa.array([None if u is None else u.bytes for u in UUIDS], pa.uuid()), "uuid", texts(UUIDS),
    ),
    # Binary.
    Case("binary", pa.array(BLOBS, pa.binary()), "bytea", texts(BLOBS, pg_bytea)),
    Case("large_binary", pa.array(BLOBS, pa.large_binary()), "bytea", texts(BLOBS, pg_bytea)),
    Case("binary_view", pa.array(BLOBS, pa.binary_view()), "bytea", texts(BLOBS, pg_bytea)),
    Case(
        "fixed_binary", pa.array([b"\x00\x01\x02", b"abc", b"\xff" * 3, None], pa.binary(3)), "bytea",
        texts([b"\x00\x01\x02", b"abc", b"\xff" * 3, None], pg_bytea),
    ),
    # Dates, around the epoch and at years 1 and 9999.
    Case("date32", pa.array(DATES, pa.date32()), "date", texts(DATES, datetime.date.isoformat)),
    Case(
        "date64",
        pa.array([None if d is None else (d - datetime.date(1970, 1, 1)).days * 86_400_000 for d in DATES], pa.date64()),
        "date", texts(DATES, datetime.date.isoformat),
    ),
    # Timestamps: every unit, without and with a zone (the instant is what loads).
    *[timestamp_case(unit, tz) for unit in ("s", "ms", "us", "ns") for tz in (None, "UTC", "Asia/Kolkata")],
    timestamp_case("ms", "-03:30"),
    # Times and durations.
    time_case(pa.time32("s"), "s"),
    time_case(pa.time32("ms"), "ms"),
    time_case(pa.time64("us"), "us"),
    time_case(pa.time64("ns"), "ns"),
    *[duration_case(unit) for unit in ("s", "ms", "us", "ns")],
    Case(
        "month_day_nano", pa.array(INTERVALS, pa.month_day_nano_interval()), "interval",
        texts(INTERVALS, lambda i: pg_interval(i[0], i[1], i[2] // 1_000)), formats=IPC_ONLY,
    ),
    Case(
        "interval_struct",
        pa.array(
            [None if i is None else {"months": i[0], "days": i[1], "microseconds": i[2] // 1_000} for i in INTERVALS],
            pa.struct([("months", pa.int32()), ("days", pa.int32()), ("microseconds", pa.int64())]),
        ),
        "interval", texts(INTERVALS, lambda i: pg_interval(i[0], i[1], i[2] // 1_000)),
    ),
    # Arrow's null type.
    Case("null", pa.nulls(3), "text", [None, None, None]),
    # Lists into arrays.
    list_case("list_int32", pa.list_(pa.int32()), [[1, None, 3], [], None, [I32_MIN, I32_MAX]], "integer[]"),
    list_case("large_list_int64", pa.large_list(pa.int64()), [[I64_MIN, I64_MAX], [None], [], None], "bigint[]"),
    list_case("fixed_list_int16", pa.list_(pa.int16(), 2), [[1, 2], None, [None, -32768]], "smallint[]"),
    list_case("list_list_int32", pa.list_(pa.list_(pa.int32())), [[[1, 2], [3, None]], [], None, [[7]]], "integer[]"),
    list_case("list_utf8", pa.list_(pa.string()), [STRINGS, [], None, [None]], "text[]"),
    list_case("large_list_large_utf8", pa.large_list(pa.large_string()), [STRINGS, [], None], "text[]"),
    list_case("list_utf8_view", pa.list_(pa.string_view()), [STRINGS, [""], None], "text[]"),
    list_case(
        "list_dict_utf8", pa.list_(pa.dictionary(pa.int32(), pa.string())), [["a", "b", "a", None], [], None], "text[]",
    ),
    list_case("fixed_list_utf8", pa.list_(pa.string(), 2), [["a b", ""], [None, "NULL"], None], "text[]"),
    Case(
        "list_list_utf8", pa.array([[["a", "b"], ["c", None]], [], None], pa.list_(pa.list_(pa.string()))),
        "text[]", ["{{a,b},{c,NULL}}", "{}", None],
    ),
    list_case("list_bool", pa.list_(pa.bool_()), [[True, False, None], [], None], "boolean[]", lambda b: "t" if b else "f"),
    Case(
        "list_float64", pa.array([[1.5, math.nan, -math.inf, -0.0, 5e-324, None], [], None], pa.list_(pa.float64())),
        "double precision[]", floats_key([[1.5, math.nan, -math.inf, -0.0, 5e-324, None], [], None]), read="v",
        key=floats_key,
    ),
    list_case(
        "list_decimal", pa.list_(pa.decimal128(5, 2)), [[Decimal("1.50"), Decimal("-0.01"), None], None],
        "numeric(5,2)[]", pg_numeric,
    ),
    list_case("list_date32", pa.list_(pa.date32()), [DATES, [], None], "date[]", datetime.date.isoformat),
    Case(
        "list_ts_us", pa.array([[0, Y1, Y9999, None], None], pa.list_(pa.timestamp("us"))), "timestamp without time zone[]",
        [pg_array([0, Y1, Y9999, None], pg_timestamp), None],
    ),
    Case(
        "list_ts_ms_tz", pa.array([[1, -1, None], []], pa.list_(pa.timestamp("ms", tz="Asia/Kolkata"))),
        "timestamp with time zone[]", [pg_array([1_000, -1_000, None], lambda m: pg_timestamp(m, True)), "{}"],
    ),
    Case(
        "list_time64_us", pa.array([[0, 86_399_999_999, None]], pa.list_(pa.time64("us"))), "time without time zone[]",
        [pg_array([0, 86_399_999_999, None], pg_time)],
    ),
    Case(
        "list_duration_ms", pa.array([[1, -90_061_001, None]], pa.list_(pa.duration("ms"))), "interval[]",
        [pg_array([1_000, -90_061_001_000, None], lambda m: pg_interval(0, 0, m))],
    ),
    list_case("list_binary", pa.list_(pa.binary()), [BLOBS, [], None], "bytea[]", pg_bytea),
    list_case("list_null", pa.list_(pa.null()), [[None, None], [], None], "text[]"),
    # Structs, Maps and Lists of them (no pgarrow metadata, as any writer leaves them): jsonb.
    json_case("struct", pa.array(PEOPLE, PERSON), [person_json(p) for p in PEOPLE]),
    json_case("struct_temporal", pa.array(TEMPORALS, TEMPORAL), [temporal_json(r) for r in TEMPORALS]),
    json_case(
        "struct_mdn",
        pa.array([{"i": (1, -2, 3)}, {"i": None}], pa.struct([("i", pa.month_day_nano_interval())])),
        [{"i": {"months": 1, "days": -2, "nanoseconds": 3}}, {"i": None}],
        formats=IPC_ONLY,
    ),
    json_case(
        "map_utf8_int32",
        pa.array([[("k", 1), ("z", None), ("é", I32_MIN)], [], None], pa.map_(pa.string(), pa.int32())),
        [{"k": 1, "z": None, "é": I32_MIN}, {}, None],
    ),
    json_case(
        "map_int64_utf8",
        pa.array([[(I64_MIN, "one"), (2, None)], [], None], pa.map_(pa.int64(), pa.string())),
        [[{"key": I64_MIN, "value": "one"}, {"key": 2, "value": None}], [], None],
    ),
    json_case(
        "list_struct",
        pa.array(
            [[{"a": 1, "b": [1.5]}, None], [], None],
            pa.list_(pa.struct([("a", pa.int8()), ("b", pa.list_(pa.float64()))])),
        ),
        [[{"a": 1, "b": [Float(1.5)]}, None], [], None],
    ),
    json_case(
        "large_list_map",
        pa.array([[[("a", "b")], None]], pa.large_list(pa.map_(pa.string(), pa.string()))),
        [[{"a": "b"}, None]],
    ),
]


def xfail(reason: str):
    """A known defect: the assertion fails (anything else, a refusal included, is an error)."""
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)


def params(cases):
    out = []
    for case in cases:
        for fmt in case.formats:
            marks = [xfail(case.defect)] if case.defect else []
            out.append(pytest.param(case, fmt, id=f"{case.name}-{fmt}", marks=marks))
    return out


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def db(url):
    """A connection whose text forms are fixed: UTC, ISO dates, the postgres interval style."""
    options = "-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=1"
    with psycopg.connect(url, autocommit=True, options=options) as c:
        c.execute(
            "CREATE EXTENSION IF NOT EXISTS hstore; CREATE EXTENSION IF NOT EXISTS citext;"
            " DROP TYPE IF EXISTS matrix_mood, matrix_pair CASCADE;"
            " CREATE TYPE matrix_mood AS ENUM ('sad', 'ok', 'happy');"
            " CREATE TYPE matrix_pair AS (a int, b text)"
        )
        try:
            yield c
        finally:
            c.execute("DROP TYPE IF EXISTS matrix_mood, matrix_pair CASCADE")


@pytest.fixture
def table(db, request):
    """A fresh table name for this test (dropped before and after)."""
    name = "matrix_" + re.sub(r"[^a-z0-9]+", "_", request.node.callspec.id.lower())[:50]
    db.execute(f"DROP TABLE IF EXISTS {name}")
    yield name
    db.execute(f"DROP TABLE IF EXISTS {name}")


# Rows per row group or record batch: most inputs span several, as real files do.
CHUNK = 3


def write_input(data: pa.Table, path, fmt: str) -> str:
    """`data` as pyarrow writes it: Parquet, an Arrow IPC file or an IPC stream."""
    if fmt == "parquet":
        pq.write_table(data, path, row_group_size=CHUNK)
    elif fmt == "arrow":
        with ipc.new_file(path, data.schema) as w:
            w.write_table(data, max_chunksize=CHUNK)
    else:
        with ipc.new_stream(path, data.schema) as w:
            w.write_table(data, max_chunksize=CHUNK)
    return str(path)


def input_file(array, tmp_path, fmt: str) -> str:
    """A table of `id` (1, 2, ...) and `v` (`array`, an Array or a ChunkedArray), written."""
    data = pa.table({"id": pa.array(range(1, len(array) + 1), pa.int32()), "v": array})
    return write_input(data, tmp_path / f"input.{fmt}", fmt)


def column_type(db, table: str) -> str:
    return db.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'v'",
        (table,),
    ).fetchone()[0]


def values(db, table: str, read: str = "v::text") -> list:
    return [r[0] for r in db.execute(f"SELECT {read} FROM {table} ORDER BY id").fetchall()]


def exists(db, table: str) -> bool:
    return db.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


# --- the matrix: create=True ---------------------------------------------------------------------


@pytest.mark.parametrize("case, fmt", params(CASES))
def test_every_type_loads_exactly_into_the_table_create_makes(url, db, table, tmp_path, case, fmt):
    path = input_file(case.array, tmp_path, fmt)
    stats = pgarrow.write(url, table, path, create=True)
    assert stats["rows"] == len(case.array), f"{case.name} from {fmt}: rows"
    assert stats["losses"] == {}, f"{case.name} from {fmt}: an exact input counted a conversion"
    assert column_type(db, table) == case.created, f"{case.name} from {fmt}: the type create made"
    got = [case.key(v) for v in values(db, table, case.read)]
    if case.json:
        assert len(got) == len(case.expected), f"{case.name} from {fmt}: rows read back"
        for row, (g, w) in enumerate(zip(got, case.expected), start=1):
            assert (m := json_mismatch(g, w)) is None, f"{case.name} from {fmt}, row {row}: {m}"
    else:
        assert got == case.expected, f"{case.name} from {fmt}: the server's values"


# --- into tables made by hand: the other targets each Arrow type feeds -------------------------


def pg_record(fields) -> str:
    """record_out: fields quoted where the record syntax needs it, NULL as nothing."""

    def one(v):
        if v is None:
            return ""
        s = str(v)
        if s == "" or any(c in s for c in '"\\(),') or any(c.isspace() for c in s):
            return '"' + s.replace("\\", "\\\\").replace('"', '""') + '"'
        return s

    return "(" + ",".join(one(v) for v in fields) + ")"


def float_numeric(v: float) -> str:
    """A float into numeric: the shortest decimal that reads back as the same double."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return pg_numeric(Decimal(repr(v)))


@dataclass
class Target:
    """An Arrow type into a column made by hand (`ddl`), and the server's values."""

    name: str
    array: pa.Array
    ddl: str
    expected: list
    read: str = "v::text"
    key: Callable[[Any], Any] = field(default=lambda v: v)
    formats: tuple = FORMATS


SHORT = [s for s in STRINGS if s is None or len(s) < 100]
NO_TRAILING_SPACE = [s for s in STRINGS if s is None or not s.endswith(" ")]
FLOATS64 = [0.1, 1e300, 5e-324, -2.5, math.nan, math.inf, -math.inf, None]
TEXT_JSON = ['{"b":1, "a" : [1, 2.50]}', "[]", "null", None]
TEXT_UUIDS = ["A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "00000000-0000-0000-0000-000000000000", None]
PAIRS = [{"a": 1, "b": "x y"}, {"a": None, "b": 'q"(u),'}, {"a": I32_MIN, "b": ""}, None]
HSTORE = [[("k", "v"), ("n", None), ("a b", '"q"')], [], None]
def json_key(v):
    return None if v is None else json.loads(v, parse_float=Decimal)


TARGETS = [
    Target("int8_int2", pa.array([-128, 127, None], pa.int8()), "int2", ["-128", "127", None]),
    Target("int8_int4", pa.array([-128, 127, None], pa.int8()), "int4", ["-128", "127", None]),
    Target("int16_int8", pa.array([-32768, 32767, None], pa.int16()), "int8", ["-32768", "32767", None]),
    Target("uint16_int4", pa.array([0, 65535, None], pa.uint16()), "int4", ["0", "65535", None]),
    Target("int64_numeric", pa.array([I64_MIN, I64_MAX, None], pa.int64()), "numeric(19,0)", texts([I64_MIN, I64_MAX, None])),
    Target("uint64_numeric", pa.array([2**64 - 1, 0], pa.uint64()), "numeric", texts([2**64 - 1, 0])),
    Target("uint32_oid", pa.array([0, 2**32 - 1, None], pa.uint32()), "oid", texts([0, 2**32 - 1, None])),
    Target("int64_oid", pa.array([0, 2**32 - 1], pa.int64()), "oid", texts([0, 2**32 - 1])),
    Target(
        "float32_float8", pa.array([0.1, math.nan, -0.0, float(np.finfo(np.float32).max), None], pa.float32()),
        "float8", floats_key([float(np.float32(0.1)), math.nan, -0.0, float(np.finfo(np.float32).max), None]),
        read="v", key=floats_key,
    ),
    Target(
        "float16_float4", float16_array([0.1, 65504.0, None]), "float4",
        floats_key([float(np.float16(0.1)), 65504.0, None]), read="v::float8", key=floats_key,
    ),
    Target("float64_numeric", pa.array(FLOATS64, pa.float64()), "numeric", texts(FLOATS64, float_numeric)),
    Target(
        "float32_numeric", pa.array([0.1, 1.5, None], pa.float32()), "numeric",
        texts([float(np.float32(0.1)), 1.5, None], float_numeric),
    ),
    Target(
        "dec_wider_numeric", pa.array(DECIMALS, pa.decimal128(10, 3)), "numeric(12,4)",
        texts(DECIMALS, lambda d: pg_numeric(d.quantize(Decimal("0.0001")))),
    ),
    Target("dec_numeric", pa.array(DECIMALS, pa.decimal128(10, 3)), "numeric", texts(DECIMALS, pg_numeric)),
    Target(
        "dec256_numeric", pa.array([BIG256, NEG_BIG256, None], pa.decimal256(76, 10)), "numeric",
        texts([BIG256, NEG_BIG256, None], pg_numeric),
    ),
    Target("utf8_varchar", pa.array(SHORT), "varchar(23)", SHORT),
    Target("utf8_char_n", pa.array(NO_TRAILING_SPACE), "char(1000)", NO_TRAILING_SPACE),
    Target("utf8_name", pa.array(["x" * 63, "é", "", None]), "name", ["x" * 63, "é", "", None]),
    Target("utf8_char", pa.array(["a", "Z", None]), '"char"', ["a", "Z", None]),
    Target("utf8_citext", pa.array(STRINGS, pa.large_string()), "citext", STRINGS),
    Target("utf8_xml", pa.array(["<a>x</a>", "<b/>", None]), "xml", ["<a>x</a>", "<b/>", None]),
    Target("utf8_json", pa.array(TEXT_JSON), "json", TEXT_JSON),
    Target("utf8_jsonb", pa.array(TEXT_JSON, pa.string_view()), "jsonb", texts(TEXT_JSON, json_key), key=json_key),
    Target("utf8_uuid", pa.array(TEXT_UUIDS), "uuid", texts(TEXT_UUIDS, lambda s: str(uuid.UUID(s)))),
    Target(
        "fixed16_uuid", pa.array([u.bytes for u in UUIDS[:-1]] + [None], pa.binary(16)), "uuid", texts(UUIDS),
    ),
    Target("utf8_enum", pa.array(["sad", "happy", None]), "matrix_mood", ["sad", "happy", None]),
    Target(
        "dict_enum", pa.array(["ok", "sad", "ok", None]).dictionary_encode(), "matrix_mood", ["ok", "sad", "ok", None],
    ),
    # A type loaded from its text (through a cast on the server).
    Target(
        "utf8_inet", pa.array(["10.0.0.1/8", "::1", "192.168.0.1", None]), "inet",
        ["10.0.0.1/8", "::1", "192.168.0.1", None], read="abbrev(v)",
    ),
    Target("null_inet", pa.nulls(2), "inet", [None, None]),
    Target("null_int4", pa.nulls(2), "int4", [None, None]),
    Target(
        "ts_s_timestamptz", pa.array([0, Y1 // 10**6, None], pa.timestamp("s")), "timestamptz",
        texts([0, Y1, None], lambda m: pg_timestamp(m, True)),
    ),
    Target(
        "ts_ms_zoned_timestamp", pa.array([0, -1, None], pa.timestamp("ms", tz="Asia/Kolkata")), "timestamp",
        texts([0, -1_000, None], pg_timestamp),
    ),
    Target(
        "struct_composite", pa.array(PAIRS, pa.struct([("a", pa.int32()), ("b", pa.string())])), "matrix_pair",
        texts(PAIRS, lambda p: pg_record([p["a"], p["b"]])),
    ),
    Target(
        "struct_missing_field_composite", pa.array([{"b": "only"}, None], pa.struct([("b", pa.string())])),
        "matrix_pair", [pg_record([None, "only"]), None],
    ),
    Target(
        "struct_json", pa.array(PAIRS, pa.struct([("a", pa.int32()), ("b", pa.string())])), "json",
        PAIRS, key=json_key,
    ),
    Target(
        "struct_text", pa.array(PAIRS, pa.struct([("a", pa.int32()), ("b", pa.string())])), "text",
        PAIRS, key=json_key,
    ),
    Target(
        "map_hstore", pa.array(HSTORE, pa.map_(pa.string(), pa.string())), "hstore",
        [None if m is None else dict(m) for m in HSTORE], read="hstore_to_json(v)::text", key=json_key,
    ),
    Target(
        "list_int32_int8_array", pa.array([[1, None, I32_MIN], [], None], pa.list_(pa.int32())), "int8[]",
        ["{1,NULL,-2147483648}", "{}", None],
    ),
    Target(
        "list_int8_numeric_array", pa.array([[-128, 127]], pa.list_(pa.int8())), "numeric[]", ["{-128,127}"],
    ),
    Target(
        "list_list_utf8_varchar_array", pa.array([[["a", "b"], ["c", None]], None], pa.list_(pa.list_(pa.string()))),
        "varchar(5)[]", ["{{a,b},{c,NULL}}", None],
    ),
    Target(
        "list_utf8_enum_array", pa.array([["sad", None, "ok"], []], pa.list_(pa.string())), "matrix_mood[]",
        ["{sad,NULL,ok}", "{}"],
    ),
    Target(
        "fixed_list_float64_array", pa.array([[0.5, -2.25], None], pa.list_(pa.float64(), 2)), "float8[]",
        ["{0.5,-2.25}", None],
    ),
]


def target_params(targets):
    out = []
    for t in targets:
        for fmt in t.formats:
            out.append(pytest.param(t, fmt, id=f"{t.name}-{fmt}"))
    return out


@pytest.mark.parametrize("target, fmt", target_params(TARGETS))
def test_every_type_loads_exactly_into_a_table_made_by_hand(url, db, table, tmp_path, target, fmt):
    db.execute(f"CREATE TABLE {table} (id int, v {target.ddl})")
    path = input_file(target.array, tmp_path, fmt)
    stats = pgarrow.write(url, table, path)
    assert stats["rows"] == len(target.array) and stats["losses"] == {}, f"{target.name} from {fmt}: {stats}"
    got = [target.key(v) for v in values(db, table, target.read)]
    assert got == target.expected, f"{target.name} from {fmt}: the server's values in {target.ddl}"


# --- values that do not fit, and types the load does not take: refused, nothing loaded -----------


@dataclass
class Refusal:
    name: str
    array: pa.Array
    ddl: Optional[str]  # None: create=True
    message: str  # a regular expression the error matches
    error: type = pgarrow.Error
    formats: tuple = FORMATS


REFUSALS = [
    Refusal(
        "int64_int4", pa.array([1, 2**31], pa.int64()), "int4",
        r'column "v" \(integer\), row 2: 2147483648 is out of its range',
    ),
    # Rows are counted over every batch and row group.
    Refusal(
        "int64_int4_row_7", pa.array([1, 2, 3, 4, 5, 6, -(2**31) - 1], pa.int64()), "int4",
        r'column "v" \(integer\), row 7: -2147483649 is out of its range',
    ),
    Refusal("uint16_int2", pa.array([2**15], pa.uint16()), "int2", r'column "v" \(smallint\), row 1: 32768 is out of its range'),
    Refusal("uint64_int8", pa.array([0, 2**63], pa.uint64()), "int8", r'column "v" \(bigint\), row 2: 9223372036854775808 is out'),
    Refusal("int32_oid", pa.array([5, -1], pa.int32()), "oid", r'column "v" \(oid\), row 2: -1 is out of its range'),
    Refusal(
        "dec_scale", pa.array([Decimal("1.20"), Decimal("1.234")], pa.decimal128(10, 3)), "numeric(10,2)",
        r'column "v" \(numeric\(10,2\)\), row 2: 1.234 has more decimal places than numeric\(10,2\) keeps',
    ),
    Refusal(
        "dec_digits", pa.array([Decimal("123456789.12")], pa.decimal128(12, 2)), "numeric(10,2)",
        r'column "v" \(numeric\(10,2\)\), row 1: 123456789.12 does not fit numeric\(10,2\)',
    ),
    Refusal("float64_real", pa.array([1.0], pa.float64()), "real", r'column "v" \(real\): an Arrow Float64 column cannot be loaded'),
    Refusal("utf8_varchar", pa.array(["abc", "abcd"]), "varchar(3)", r'column "v" \(character varying\(3\)\), row 2'),
    Refusal("binary_text", pa.array([b"a"]), "text", r'column "v" \(text\): an Arrow Binary column cannot be loaded'),
    Refusal("utf8_uuid", pa.array(["nope"]), "uuid", r'column "v" \(uuid\), row 1: "nope" is not a UUID'),
    Refusal("utf8_enum", pa.array(["sad", "meh"]), "matrix_mood", r'column "v" \(matrix_mood\), row 2: "meh" is not a label'),
    Refusal(
        "utf8_nul", pa.array(["ok", "a\x00b"]), "text", r'column "v", row 2 of the input: .*invalid byte sequence',
        error=pgarrow.QueryError,
    ),
    # (Parquet holds whole days: pyarrow's writer drops the time of day itself.)
    Refusal(
        "date64_time_of_day", pa.array([86_400_000, 86_400_001], pa.date64()), "date",
        r'column "v" \(date\), row 2: 86400001 ms is not a whole day', formats=IPC_ONLY,
    ),
    Refusal(
        "date32_range", pa.array([0, I32_MIN], pa.date32()), "date", r'column "v" \(date\), row 2: .*outside date\'s range',
    ),
    Refusal(
        "ts_ms_range", pa.array([I64_MAX], pa.timestamp("ms")), "timestamp",
        r"row 1: 9223372036854775807 \(Millisecond .*outside timestamp's range",
    ),
    Refusal("time_negative", pa.array([-1], pa.time64("us")), "time", r"row 1: the time is outside 00:00:00 to 24:00:00"),
    Refusal("duration_s_overflow", pa.array([1, 2**62], pa.duration("s")), "interval", r"row 2: the interval's time part overflows"),
    Refusal(
        "ragged_lists", pa.array([[[1, 2], [3]]], pa.list_(pa.list_(pa.int32()))), None,
        r'column "v" \(integer\[\]\), row 1: lists of 2 and 1 items .*rectangular',
    ),
    Refusal(
        "struct_nan", pa.array([{"x": 1.0}, {"x": math.nan}], pa.struct([("x", pa.float64())])), None,
        r'column "v" \(jsonb\), row 2: .*NaN has no JSON form',
    ),
    Refusal(
        "struct_inf", pa.array([{"x": -math.inf}], pa.struct([("x", pa.float32())])), "json",
        r'column "v" \(json\), row 1: .*inf has no JSON form',
    ),
    # Arrow types the load does not take.
    Refusal(
        "decimal32", pa.array([Decimal("1.23")], pa.decimal32(5, 2)), None,
        r'cannot create column "v" of .*: no PostgreSQL type for Arrow Decimal32\(5, 2\)', error=pgarrow.UsageError,
    ),
    Refusal(
        "decimal32_numeric", pa.array([Decimal("1.23")], pa.decimal32(5, 2)), "numeric",
        r'column "v" \(numeric\): an Arrow Decimal32\(5, 2\) column cannot be loaded into it',
    ),
    Refusal(
        "decimal64", pa.array([Decimal("1.23")], pa.decimal64(15, 2)), None,
        r'cannot create column "v" of .*: no PostgreSQL type for Arrow Decimal64\(15, 2\)', error=pgarrow.UsageError,
    ),
    Refusal(
        "decimal64_numeric", pa.array([Decimal("1.23")], pa.decimal64(15, 2)), "numeric",
        r'column "v" \(numeric\): an Arrow Decimal64\(15, 2\) column cannot be loaded into it',
    ),
    Refusal(
        "list_view", pa.array([[1]], pa.list_view(pa.int32())), None,
        r'cannot create column "v" of .*: no PostgreSQL type for Arrow ListView\(Int32', error=pgarrow.UsageError,
    ),
    Refusal(
        "large_list_view", pa.array([[1]], pa.large_list_view(pa.int32())), None,
        r'cannot create column "v" of .*: no PostgreSQL type for Arrow LargeListView\(Int32',
        error=pgarrow.UsageError,
    ),
    Refusal(
        "run_end_encoded", pa.RunEndEncodedArray.from_arrays([2], [7]), None,
        r'cannot create column "v" of .*: no PostgreSQL type for Arrow RunEndEncoded', error=pgarrow.UsageError,
        formats=IPC_ONLY,
    ),
    Refusal(
        "sparse_union", pa.UnionArray.from_sparse(pa.array([0], pa.int8()), [pa.array([1])]), None,
        r'cannot create column "v" of .*: no PostgreSQL type for Arrow Union\(Sparse', error=pgarrow.UsageError,
        formats=IPC_ONLY,
    ),
    Refusal(
        "dense_union", pa.UnionArray.from_dense(pa.array([0], pa.int8()), pa.array([0], pa.int32()), [pa.array([1])]),
        None, r'cannot create column "v" of .*: no PostgreSQL type for Arrow Union\(Dense', error=pgarrow.UsageError,
        formats=IPC_ONLY,
    ),
    # create=True makes bigint for it (the dictionary's values), and the load then refuses it.
    Refusal(
        "dict_int64", pa.array([1, 2, 1]).dictionary_encode(), None,
        r'column "v" \(bigint\): an Arrow Dictionary\(Int32, Int64\) column cannot be loaded into it',
    ),
]


@pytest.mark.parametrize(
    "refusal, fmt", [pytest.param(r, f, id=f"{r.name}-{f}") for r in REFUSALS for f in r.formats]
)
def test_values_and_types_the_load_cannot_take_are_refused(url, db, table, tmp_path, refusal, fmt):
    if refusal.ddl is not None:
        db.execute(f"CREATE TABLE {table} (id int, v {refusal.ddl})")
    path = input_file(refusal.array, tmp_path, fmt)
    with pytest.raises(refusal.error, match=refusal.message):
        pgarrow.write(url, table, path, create=refusal.ddl is None)
    if refusal.ddl is None:
        # The table create made goes with the failed load's transaction.
        assert not exists(db, table), f"{refusal.name} from {fmt}: the created table was left"
    else:
        assert values(db, table) == [], f"{refusal.name} from {fmt}: rows loaded"


# --- what some targets cannot hold: a negative zero, a repeated Map key ---------------------------

STRUCT_X = pa.struct([("x", pa.float64())])


def refused_naming_row_one(e: pgarrow.Error) -> None:
    assert 'column "v"' in str(e) and "row 1" in str(e), f"a refusal that names neither column nor row: {e}"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "arrow_type, ddl, signed",
    [
        pytest.param(pa.float64(), "float8", True, id="float64-float8"),
        pytest.param(pa.float32(), "real", True, id="float32-real"),
        pytest.param(STRUCT_X, "json", True, id="struct-json"),
        pytest.param(STRUCT_X, "text", True, id="struct-text"),
        # numeric (and jsonb's numbers) have one zero: -0.0 equals 0.0 and loads as 0, as
        # PostgreSQL's own float8-to-numeric cast gives it; not a different value.
        pytest.param(pa.float64(), "numeric", False, id="float64-numeric"),
        pytest.param(STRUCT_X, "jsonb", False, id="struct-jsonb"),
    ],
)
def test_negative_zero_keeps_its_sign_where_the_type_has_one(
    url, db, table, tmp_path, arrow_type, ddl, signed, fmt
):
    nested = arrow_type == STRUCT_X
    db.execute(f"CREATE TABLE {table} (id int, v {ddl})")
    path = input_file(pa.array([{"x": -0.0} if nested else -0.0], arrow_type), tmp_path, fmt)
    result = pgarrow.write(url, table, path)
    assert result["losses"] == {}, result
    (text,) = values(db, table)
    if nested:
        number = json.loads(text, parse_float=Decimal, parse_int=Decimal)["x"]
    else:
        number = Decimal(text)
    assert number == 0, f"-0.0 from {fmt} loaded into {ddl} as {text}"
    assert number.is_signed() == signed, f"-0.0 from {fmt} loaded into {ddl} as {text}"
    if not signed:
        # What the server itself makes of -0.0 in that type.
        cast = "'-0'::float8::numeric::text" if ddl == "numeric" else "'{\"x\": -0}'::jsonb::text"
        (server,) = db.execute(f"SELECT {cast}").fetchone()
        assert text == server, f"{text} (loaded) against {server} (the server's own cast)"


def map_entries(loaded) -> list:
    """The entries of a Map read back as JSON with object_pairs_hook=list: an object (a list
    of pairs) or a list of {"key", "value"} objects."""
    if all(isinstance(e, tuple) for e in loaded):
        return list(loaded)
    return [(dict(o)["key"], dict(o)["value"]) for o in loaded]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "ddl",
    [
        pytest.param("json"),
        pytest.param("text"),
        pytest.param("jsonb"),
        pytest.param("hstore"),
    ],
)
def test_a_repeated_map_key_keeps_both_entries_or_is_refused(url, db, table, tmp_path, ddl, fmt):
    entries = [("k", "v"), ("k", "w")]
    db.execute(f"CREATE TABLE {table} (id int, v {ddl})")
    path = input_file(pa.array([entries], pa.map_(pa.string(), pa.string())), tmp_path, fmt)
    try:
        pgarrow.write(url, table, path)
    except pgarrow.Error as e:
        refused_naming_row_one(e)
        return
    if ddl == "hstore":
        flat = values(db, table, "hstore_to_array(v)")[0]
        got = list(zip(flat[::2], flat[1::2]))
    else:
        got = map_entries(json.loads(values(db, table)[0], object_pairs_hook=list))
    assert sorted(got) == sorted(entries), f"from {fmt} into {ddl}"


# --- nanoseconds: refused by default, rounded half to even and counted on request ----------------


def round_half_even(ns: int) -> int:
    q, r = divmod(ns, 1_000)
    return q + (r > 500 or (r == 500 and q % 2 == 1))


NANOS = [0, 1_500, 2_500, -1_500, 3_000, 1_000_000_000_499, None]
TIME_NANOS = [0, 1_500, 2_500, 86_399_999_999_999, 3_000, 86_399_999_999_500, None]


@dataclass
class Lossy:
    name: str
    array: pa.Array
    pg_type: str  # as the error names it
    expected: list  # from the rounded microseconds
    rounded: int  # values rounded
    first: int  # first inexact row
    value: int  # and its value, in ns
    formats: tuple = FORMATS


def inexact(values):
    return sum(1 for v in values if v is not None and v % 1_000)


LOSSY = [
    Lossy(
        "ts_ns", pa.array(NANOS, pa.timestamp("ns")), "timestamp without time zone",
        texts(NANOS, lambda n: pg_timestamp(round_half_even(n))), inexact(NANOS), 2, 1_500,
    ),
    Lossy(
        "ts_ns_utc", pa.array(NANOS, pa.timestamp("ns", tz="UTC")), "timestamp with time zone",
        texts(NANOS, lambda n: pg_timestamp(round_half_even(n), True)), inexact(NANOS), 2, 1_500,
    ),
    Lossy(
        "time_ns", pa.array(TIME_NANOS, pa.time64("ns")), "time without time zone",
        # 23:59:59.999999999 rounds to 24:00:00, as PostgreSQL's own input does.
        texts(TIME_NANOS, lambda n: pg_time(round_half_even(n))), inexact(TIME_NANOS), 2, 1_500,
    ),
    Lossy(
        "duration_ns", pa.array(NANOS, pa.duration("ns")), "interval",
        texts(NANOS, lambda n: pg_interval(0, 0, round_half_even(n))), inexact(NANOS), 2, 1_500,
    ),
    Lossy(
        "month_day_nano",
        pa.array([None if n is None else (1, -1, n) for n in NANOS], pa.month_day_nano_interval()), "interval",
        texts(NANOS, lambda n: pg_interval(1, -1, round_half_even(n))), inexact(NANOS), 2, 1_500, formats=IPC_ONLY,
    ),
    Lossy(
        "list_ts_ns", pa.array([[0, 1_000], [2_500, None, 3_500], None], pa.list_(pa.timestamp("ns"))),
        "timestamp without time zone[]",
        [pg_array([0, 1], pg_timestamp), pg_array([2, None, 4], pg_timestamp), None], 2, 2, 2_500,
    ),
]


@pytest.mark.parametrize("lossy, fmt", [pytest.param(c, f, id=f"{c.name}-{f}") for c in LOSSY for f in c.formats])
def test_nanoseconds_are_refused_by_default_and_counted_when_rounded(url, db, table, tmp_path, lossy, fmt):
    path = input_file(lossy.array, tmp_path, fmt)
    with pytest.raises(pgarrow.Error) as e:
        pgarrow.write(url, table, path, create=True)
    message = str(e.value)
    assert f'column "v" ({lossy.pg_type}), row {lossy.first}' in message, message
    assert f"{lossy.value} ns is not a whole number of microseconds" in message, message
    assert "--nanoseconds round" in message, message
    assert not exists(db, table), f"{lossy.name} from {fmt}: the refused load left its table"

    stats = pgarrow.write(url, table, path, create=True, nanoseconds="round")
    assert stats["rows"] == len(lossy.array)
    assert stats["losses"] == {"v": {"nanoseconds_rounded": lossy.rounded}}, f"{lossy.name} from {fmt}"
    assert values(db, table) == lossy.expected, f"{lossy.name} from {fmt}: rounded half to even"


# --- create_nested="typed": a composite type per Struct, hstore for a Map of text to text ------


def nested_input() -> pa.Table:
    tags = pa.map_(pa.string(), pa.string())
    inner = pa.struct([("n", pa.int64()), ("s", pa.string())])
    point = pa.struct([("x", pa.float64()), ("tags", tags), ("inner", inner)])
    return pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int32()),
            "geo": pa.array(
                [
                    {"x": 1.5, "tags": [("a", "b")], "inner": {"n": 2**40, "s": "it's"}},
                    {"x": None, "tags": None, "inner": None},
                    None,
                ],
                point,
            ),
            "pts": pa.array([[{"x": 2.0, "tags": [], "inner": {"n": 1, "s": None}}], [], None], pa.list_(point)),
            "m": pa.array([[("k", "v")], None, []], tags),
            "mi": pa.array([[(1, "one")], [], None], pa.map_(pa.int32(), pa.string())),
        }
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_create_nested_typed_makes_a_composite_per_struct_and_hstore_for_text_maps(url, db, tmp_path, fmt):
    table = f"nested_typed_{fmt}"
    types = [f"{table}_geo", f"{table}_geo_inner", f"{table}_pts", f"{table}_pts_inner"]
    db.execute(f"DROP TABLE IF EXISTS {table}; DROP TYPE IF EXISTS {', '.join(types)} CASCADE")
    path = write_input(nested_input(), tmp_path / f"input.{fmt}", fmt)
    pgarrow.write(url, table, path, create=True, create_nested="typed")
    columns = db.execute(
        "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)"
        " FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
        (table,),
    ).fetchone()[0]
    assert columns == (
        f"id integer, geo {table}_geo, pts {table}_pts[], m hstore, mi jsonb"
    ), columns
    made = db.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = (SELECT typrelid FROM pg_type WHERE typname = %s) AND attnum > 0 ORDER BY attnum",
        (f"{table}_geo",),
    ).fetchall()
    assert [r[0] for r in made] == ["double precision", "hstore", f"{table}_geo_inner"]
    rows = db.execute(
        f"SELECT (geo).x, hstore_to_array((geo).tags), ((geo).inner).n, ((geo).inner).s, geo::text IS NULL,"
        f" (pts[1]).x, cardinality(pts), hstore_to_array(m), mi::text FROM {table} ORDER BY id"
    ).fetchall()
    assert rows == [
        # A Map whose keys are not text is a list of its entries (keys keep their types).
        (1.5, ["a", "b"], 2**40, "it's", False, 2.0, 1, ["k", "v"], '[{"key": 1, "value": "one"}]'),
        (None, None, None, None, False, None, 0, None, "[]"),
        (None, None, None, None, True, None, None, [], None),
    ]
    # Loading again into the types now there (the table dropped) uses them.
    db.execute(f"DROP TABLE {table}")
    pgarrow.write(url, table, path, create=True, create_nested="typed")
    assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 3
    db.execute(f"DROP TABLE IF EXISTS {table}; DROP TYPE IF EXISTS {', '.join(types)} CASCADE")
    # By default each nested field is one jsonb.
    pgarrow.write(url, table, path, create=True)
    kinds = db.execute(
        "SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum)"
        " FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
        (table,),
    ).fetchone()[0]
    assert kinds == "integer,jsonb,jsonb,jsonb,jsonb"
    db.execute(f"DROP TABLE {table}")
    with pytest.raises(pgarrow.UsageError, match="create_nested"):
        pgarrow.write(url, table, path, create=True, create_nested="composite")


def test_create_nested_typed_needs_hstore_in_the_target(url, db, tmp_path):
    name = "matrix_without_hstore"
    db.execute(f"DROP DATABASE IF EXISTS {name}")
    db.execute(f"CREATE DATABASE {name}")
    try:
        other = psycopg.conninfo.make_conninfo(url, dbname=name)
        path = write_input(nested_input(), tmp_path / "input.parquet", "parquet")
        with pytest.raises(pgarrow.Error, match="CREATE EXTENSION hstore") as e:
            pgarrow.write(other, "t", path, create=True, create_nested="typed")
        assert "Map of text to text" in str(e.value)
        with psycopg.connect(other) as c:
            left = c.execute(
                "SELECT count(*) FROM pg_type WHERE typname IN ('t_geo', 't_geo_inner', 't_pts', 't_pts_inner')"
            ).fetchone()
            assert left == (0,), "nothing made"
    finally:
        db.execute(f"DROP DATABASE IF EXISTS {name}")


# --- files other writers make: DuckDB's and polars' Parquet, polars' IPC -----------------------


DUCKDB_ROWS = """(1, 1::INT, 2::BIGINT, -1::TINYINT, 300::UINTEGER, 1.5::DECIMAL(10,2),
  123456789012345678901234567.123::DECIMAL(38,3), 'x', DATE '2020-01-02',
  TIMESTAMP '2020-01-02 03:04:05.123456', TIMESTAMPTZ '2020-01-02 03:04:05.5+00', TIME '01:02:03.5',
  '5f0e1c2a-0000-4000-8000-000000000001'::UUID, [1,2,NULL]::INT[], {'a': 1, 'b': 'x'}, MAP {'k': 'v'},
  'blob'::BLOB, true, 1.25::DOUBLE, 0.1::FLOAT, INTERVAL '1 month 2 days 3.004 seconds',
  'ok'::ENUM('ok','no'), [{'x': 1}], TIMESTAMP_NS '2020-01-02 03:04:05.123456'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, INTERVAL '14 months 3 days 1 hour', NULL, NULL, NULL),
 (3, -2147483648, -9223372036854775808, 127, 4294967295, -99999999.99, -1, '', DATE '0001-01-01',
  TIMESTAMP '1970-01-01', TIMESTAMPTZ '1900-06-30 23:59:59.999999+00', TIME '23:59:59.999999', NULL, [],
  {'a': NULL, 'b': NULL}, MAP {}, ''::BLOB, false, -0.0::DOUBLE, 'inf'::FLOAT, NULL, 'no', [], NULL)"""

DUCKDB_COLUMNS = "id, i, b, ti, ui, d, d38, s, dt, ts, tz, t, u, l, st, m, bl, bo, f, r, iv, e, ls, tns"

# What PostgreSQL shows for each column --create makes, and its three values.
DUCKDB_EXPECTED = {
    "i": ("integer", ["1", None, "-2147483648"]),
    "b": ("bigint", ["2", None, "-9223372036854775808"]),
    "ti": ("smallint", ["-1", None, "127"]),
    "ui": ("bigint", ["300", None, "4294967295"]),
    "d": ("numeric(10,2)", ["1.50", None, "-99999999.99"]),
    "d38": ("numeric(38,3)", ["123456789012345678901234567.123", None, "-1.000"]),
    "s": ("text", ["x", None, ""]),
    "dt": ("date", ["2020-01-02", None, "0001-01-01"]),
    "ts": ("timestamp without time zone", ["2020-01-02 03:04:05.123456", None, "1970-01-01 00:00:00"]),
    "tz": ("timestamp with time zone", ["2020-01-02 03:04:05.5+00", None, "1900-06-30 23:59:59.999999+00"]),
    "t": ("time without time zone", ["01:02:03.5", None, "23:59:59.999999"]),
    "u": ("uuid", ["5f0e1c2a-0000-4000-8000-000000000001", None, None]),
    "l": ("integer[]", ["{1,2,NULL}", None, "{}"]),
    "st": ("jsonb", ['{"a": 1, "b": "x"}', None, '{"a": null, "b": null}']),
    "m": ("jsonb", ['{"k": "v"}', None, "{}"]),
    "bl": ("bytea", ["\\x626c6f62", None, "\\x"]),
    "bo": ("boolean", ["true", None, "false"]),
    "f": ("double precision", ["1.25", None, "-0"]),
    "r": ("real", ["0.1", None, "Infinity"]),
    # Parquet's INTERVAL keeps months, days and milliseconds: all three arrive.
    "iv": ("interval", ["1 mon 2 days 00:00:03.004", "1 year 2 mons 3 days 01:00:00", None]),
    "e": ("text", ["ok", None, "no"]),
    "ls": ("jsonb", ['[{"x": 1}]', None, "[]"]),
    "tns": ("timestamp without time zone", ["2020-01-02 03:04:05.123456", None, None]),
}


def created_columns(db, table: str) -> dict:
    rows = db.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 ORDER BY attnum",
        (table,),
    ).fetchall()
    return dict(rows)


def test_duckdbs_parquet_loads_exactly_into_the_table_create_makes(url, db, tmp_path):
    import duckdb  # in CI's requirements: missing is a failure, not a skip
    path = str(tmp_path / "duck.parquet")
    duckdb.connect().execute(
        f"COPY (SELECT * FROM (VALUES {DUCKDB_ROWS}) AS v({DUCKDB_COLUMNS})) TO '{path}'"
    )
    db.execute("DROP TABLE IF EXISTS from_duckdb")
    assert pgarrow.write(url, "from_duckdb", path, create=True)["rows"] == 3
    types = created_columns(db, "from_duckdb")
    for column, (pg_type, expected) in DUCKDB_EXPECTED.items():
        assert types[column] == pg_type, column
        got = [r[0] for r in db.execute(f"SELECT {column}::text FROM from_duckdb ORDER BY id").fetchall()]
        assert got == expected, column
    # An INTERVAL inside a Struct would lose its months to the Parquet reader: refused by name.
    nested = str(tmp_path / "nested_interval.parquet")
    duckdb.connect().execute(f"COPY (SELECT {{'iv': INTERVAL '1 month'}} AS s) TO '{nested}'")
    with pytest.raises(pgarrow.Error, match=r'column "s\.iv": a Parquet INTERVAL inside a nested column'):
        pgarrow.write(url, "from_duckdb_nested", nested, create=True)
    db.execute("DROP TABLE IF EXISTS from_duckdb")


@pytest.mark.parametrize("fmt", ["parquet", "ipc"])
def test_polars_files_load_exactly(url, db, tmp_path, fmt):
    import polars  # in CI's requirements: missing is a failure, not a skip
    frame = polars.DataFrame(
        {
            "id": [1, 2, 3],
            "n": polars.Series([1, None, -(2**63)], dtype=polars.Int64),
            "s": ["é", None, ""],
            "ts": polars.Series(
                [datetime.datetime(2020, 1, 2, 3, 4, 5, 123456), None, datetime.datetime(1, 1, 1)],
                dtype=polars.Datetime("us", "UTC"),
            ),
            "dec": polars.Series([Decimal("1.25"), None, Decimal("-0.01")], dtype=polars.Decimal(10, 2)),
            "l": [[1, 2], None, []],
            "st": [{"a": 1, "b": "x"}, None, {"a": None, "b": None}],
        }
    )
    path = str(tmp_path / f"polars.{fmt}")
    if fmt == "parquet":
        frame.write_parquet(path)
    else:
        frame.write_ipc(path)
    table = f"from_polars_{fmt}"
    db.execute(f"DROP TABLE IF EXISTS {table}")
    pgarrow.write(url, table, path, create=True)
    assert created_columns(db, table) == {
        "id": "bigint",
        "n": "bigint",
        "s": "text",
        "ts": "timestamp with time zone",
        "dec": "numeric(10,2)",
        "l": "bigint[]",
        "st": "jsonb",
    }
    got = db.execute(f"SELECT n::text, s, ts::text, dec::text, l::text, st::text FROM {table} ORDER BY id").fetchall()
    assert got == [
        ("1", "é", "2020-01-02 03:04:05.123456+00", "1.25", "{1,2}", '{"a": 1, "b": "x"}'),
        (None, None, None, None, None, None),
        ("-9223372036854775808", "", "0001-01-01 00:00:00+00", "-0.01", "{}", '{"a": null, "b": null}'),
    ]
    db.execute(f"DROP TABLE {table}")
