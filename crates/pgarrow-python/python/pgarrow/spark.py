"""pgarrow as a Spark 4 data source: every task reads one part of one snapshot, as Arrow.

::

    import pgarrow.spark
    pgarrow.spark.register(spark)                       # once per SparkSession
    df = (spark.read.format("pgarrow")
          .option("url", "postgresql://app@db/shop")
          .option("table", "orders")                    # or .option("query", "SELECT ...")
          .option("partitions", 8)
          .load())

One action on the DataFrame plans once: the parts of one exported snapshot, held by pgarrow's
detached holder (see :func:`pgarrow.plan`) while the tasks read them: until ``linger``
seconds (default 30) after every part was read with no part starting or finishing since, or
``hold_timeout`` seconds (default 600) without a part starting or finishing. Each task reads
its part with pgarrow's COPY decoder and hands Spark Arrow record batches of the Spark types
below. A second action plans again, in a new snapshot.

Options: ``url`` (else the workers' ``DATABASE_URL`` / ``PG*`` environment), ``table`` or
``query``, ``partitions`` (default 4), ``partition_by`` (a column: how a query, or a table by
key ranges, is split), ``hold_timeout`` and ``linger`` (seconds), ``batch_rows``, ``batch_bytes``,
``statement_timeout``, and the type policies of :func:`pgarrow.read_arrow` (``numeric``,
``wide_numeric``, ``numeric_overflow``, ``infinity``, ``out_of_range``, ``text``,
``invalid_utf8``, ``array_shape``, ``array_bounds``, ``enum``).

Types (pgarrow's Arrow type, then Spark's): booleans, integers, floats, ``date``, binary as
themselves; ``oid`` (uint32) LongType; decimals of precision up to 38 DecimalType, wider ones
(and negative scales) StringType with the exact digits; ``timestamp`` TimestampNTZType,
``timestamptz`` TimestampType; ``time`` TimeType(6); ``interval`` a struct ``(months int, days
int, microseconds long)``, exact; ``uuid`` StringType (canonical text); ``json``/``jsonb``
StringType; enums (dictionaries) StringType; composite types and ranges StructType; arrays
ArrayType (nested for several dimensions); everything pgarrow exports as text stays
StringType.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import pyarrow as pa
from pyspark.sql import types as T
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.pandas.types import to_arrow_schema

import pgarrow
from pgarrow._plan import _READ_OPTIONS

__all__ = ["PgarrowDataSource", "register", "spark_schema"]

DEFAULT_PARTITIONS = 4

# The options every part's reader takes: type policies, batch sizes, the statement timeout.
_POLICIES = _READ_OPTIONS
_OPTIONS = (
    "url",
    "table",
    "query",
    "partitions",
    "partition_by",
    "hold_timeout",
    "linger",
    *_POLICIES,
)
_INTEGER_OPTIONS = ("batch_rows", "batch_bytes")


def register(spark: Any) -> None:
    """Registers the ``pgarrow`` format with ``spark``.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        The session whose ``spark.read.format("pgarrow")`` reads PostgreSQL.
    """
    spark.dataSource.register(PgarrowDataSource)


# --- types -------------------------------------------------------------------------------


def _time_type() -> Optional[T.DataType]:
    return T.TimeType(6) if hasattr(T, "TimeType") else None


def _spark_type(t: pa.DataType) -> T.DataType:
    """Spark's type for pgarrow's Arrow type `t` (see the module's table)."""
    if isinstance(t, pa.BaseExtensionType):
        if t.extension_name in ("arrow.uuid", "arrow.json"):
            return T.StringType()
        return _spark_type(t.storage_type)
    if pa.types.is_boolean(t):
        return T.BooleanType()
    if pa.types.is_int8(t):
        return T.ByteType()
    if pa.types.is_int16(t) or pa.types.is_uint8(t):
        return T.ShortType()
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return T.IntegerType()
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return T.LongType()
    if pa.types.is_uint64(t):
        return T.DecimalType(20, 0)
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return T.FloatType()
    if pa.types.is_float64(t):
        return T.DoubleType()
    if pa.types.is_decimal(t):
        if t.precision <= 38 and 0 <= t.scale <= t.precision:
            return T.DecimalType(t.precision, t.scale)
        return T.StringType()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return T.StringType()
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return T.BinaryType()
    if pa.types.is_date(t):
        return T.DateType()
    if pa.types.is_timestamp(t):
        return T.TimestampType() if t.tz is not None else T.TimestampNTZType()
    if pa.types.is_time(t):
        return _time_type() or T.StringType()
    if pa.types.is_duration(t):
        return T.DayTimeIntervalType()
    if t == pa.month_day_nano_interval():
        return T.StructType(
            [
                T.StructField("months", T.IntegerType()),
                T.StructField("days", T.IntegerType()),
                T.StructField("microseconds", T.LongType()),
            ]
        )
    if pa.types.is_dictionary(t):
        return _spark_type(t.value_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return T.ArrayType(_spark_type(t.value_type), t.value_field.nullable)
    if pa.types.is_map(t):
        return T.MapType(_spark_type(t.key_type), _spark_type(t.item_type), t.item_field.nullable)
    if pa.types.is_struct(t):
        # Fields nullable: Spark's Arrow conversions refuse a NULL struct whose fields are
        # declared NOT NULL (a range's flags, say).
        return T.StructType([T.StructField(f.name, _spark_type(f.type)) for f in t])
    if pa.types.is_null(t):
        return T.NullType()
    raise pgarrow.UsageError(f"pgarrow.spark has no Spark type for Arrow type {t}")


def spark_schema(schema: pa.Schema) -> T.StructType:
    """The Spark schema of a pgarrow Arrow schema (as the data source declares it).

    Parameters
    ----------
    schema : pyarrow.Schema
        A schema pgarrow made (:func:`pgarrow.schema`, :attr:`pgarrow.Plan.schema`).

    Returns
    -------
    pyspark.sql.types.StructType
        Each field's Spark type, as the module's table gives it.
    """
    return T.StructType([T.StructField(f.name, _spark_type(f.type), f.nullable) for f in schema])


def _uuid_text(storage: pa.Array) -> pa.Array:
    """16-byte UUIDs as their canonical text (8-4-4-4-12 lower-case hex), vectorized."""
    import numpy as np

    n = len(storage)
    if n == 0:
        return pa.array([], pa.string())
    data = storage.buffers()[1]
    raw = np.frombuffer(data, dtype=np.uint8, count=(storage.offset + n) * 16)
    raw = raw[storage.offset * 16 :].reshape(n, 16)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    at = (0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34)
    for i, p in enumerate(at):
        out[:, p] = digits[raw[:, i] >> 4]
        out[:, p + 1] = digits[raw[:, i] & 15]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    text = pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(out.tobytes())
    )
    if storage.null_count:
        text = pa.compute.if_else(storage.is_valid(), text, pa.scalar(None, pa.string()))
    return text


def _interval_struct(arr: pa.Array, target: pa.DataType) -> pa.Array:
    """month_day_nano intervals as (months, days, microseconds)."""
    import numpy as np

    n = len(arr)
    layout = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanos", "<i8")])
    raw = np.frombuffer(arr.buffers()[1], dtype=layout, count=arr.offset + n)[arr.offset :]
    children = [
        pa.array(raw["months"], pa.int32()),
        pa.array(raw["days"], pa.int32()),
        pa.array(raw["nanos"] // 1000, pa.int64()),
    ]
    mask = arr.is_null() if arr.null_count else None
    return pa.StructArray.from_arrays(children, fields=list(target), mask=mask)


def _convert(arr: pa.Array, target: pa.DataType) -> pa.Array:
    """`arr` as Spark's Arrow type `target` (to_arrow_schema's), exactly."""
    t = arr.type
    if isinstance(t, pa.BaseExtensionType):
        if t.extension_name == "arrow.uuid":
            return _uuid_text(arr.storage)
        return _convert(arr.storage, target)
    if t == target:
        return arr
    if t == pa.month_day_nano_interval():
        return _interval_struct(arr, target)
    if pa.types.is_dictionary(t):
        return _convert(arr.dictionary_decode(), target)
    if pa.types.is_struct(t) and pa.types.is_struct(target):
        children = [_convert(arr.field(i), target.field(i).type) for i in range(t.num_fields)]
        mask = arr.is_null() if arr.null_count else None
        return pa.StructArray.from_arrays(children, fields=list(target), mask=mask)
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_list(target):
        values = _convert(arr.values, target.value_type)
        offsets = arr.offsets.cast(pa.int32())
        mask = arr.is_null() if arr.null_count else None
        return pa.ListArray.from_arrays(offsets, values, type=target, mask=mask)
    if pa.types.is_fixed_size_list(t) and pa.types.is_list(target):
        return _convert(arr.cast(pa.list_(t.value_field)), target)
    return arr.cast(target)


# --- the data source -------------------------------------------------------------------------


class _Options:
    """The data source's options, checked (Spark hands them over as strings)."""

    def __init__(self, options: Any) -> None:
        given = {str(k).lower(): v for k, v in dict(options).items()}
        unknown = sorted(k for k in given if k not in _OPTIONS and k != "path")
        if unknown:
            raise pgarrow.UsageError(
                f"pgarrow data source: unknown option(s) {', '.join(unknown)}; "
                f"the options are {', '.join(_OPTIONS)}"
            )
        self.url: Optional[str] = given.get("url")
        self.table: Optional[str] = given.get("table") or given.get("path")
        self.query: Optional[str] = given.get("query")
        if (self.table is None) == (self.query is None):
            raise pgarrow.UsageError(
                'pgarrow data source: give either .option("table", ...) or .option("query", ...)'
            )
        self.partitions = self._int(given, "partitions", DEFAULT_PARTITIONS)
        self.partition_by: Optional[str] = given.get("partition_by")
        self.hold_timeout = self._number(given, "hold_timeout", 600.0)
        self.linger = self._number(given, "linger", 30.0)
        self.policies: dict[str, Any] = {}
        for key in _POLICIES:
            if key in given:
                value = given[key]
                self.policies[key] = int(value) if key in _INTEGER_OPTIONS else value

    @staticmethod
    def _int(given: dict[str, Any], key: str, default: int) -> int:
        value = given.get(key, default)
        try:
            n = int(value)
        except (TypeError, ValueError):
            n = 0
        if n < 1:
            raise pgarrow.UsageError(
                f"pgarrow data source: {key} must be a positive integer, got {value!r}"
            )
        return n

    @staticmethod
    def _number(given: dict[str, Any], key: str, default: float) -> float:
        value = given.get(key, default)
        try:
            x = float(value)
        except (TypeError, ValueError):
            x = 0.0
        if x <= 0:
            raise pgarrow.UsageError(
                f"pgarrow data source: {key} must be positive seconds, got {value!r}"
            )
        return x

    def source(self) -> dict[str, Any]:
        if self.table is not None:
            return {"table": self.table}
        return {"query": self.query}


class PgarrowPartition(InputPartition):
    """One part of the plan (a picklable :class:`pgarrow.Part`)."""

    def __init__(self, part: pgarrow.Part) -> None:
        super().__init__(part.index)
        self.part = part


class PgarrowDataSource(DataSource):
    """The ``pgarrow`` format; see the module's documentation."""

    @classmethod
    def name(cls) -> str:
        return "pgarrow"

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self._options = _Options(options)

    def schema(self) -> T.StructType:
        o = self._options
        src = o.source()
        # A plan rather than pgarrow.schema(): the depth of an array column comes from its
        # first values, which the plan reads (and only then), as every action's plan will.
        with pgarrow.plan(
            o.url, src.get("query"), table=src.get("table"), partitions=1, **o.policies
        ) as plan:
            return spark_schema(plan.schema)

    def reader(self, schema: T.StructType) -> "PgarrowReader":
        return PgarrowReader(self._options, schema)


class PgarrowReader(DataSourceReader):
    """Plans on the driver side (one snapshot per action) and reads one part per task."""

    def __init__(self, options: _Options, schema: T.StructType) -> None:
        self._options = options
        self._schema = schema

    def partitions(self) -> list[PgarrowPartition]:
        o = self._options
        src = o.source()
        plan = pgarrow.plan(
            o.url,
            src.get("query"),
            table=src.get("table"),
            partitions=o.partitions,
            partition_by=o.partition_by,
            detached=True,
            hold_timeout=o.hold_timeout,
            linger=o.linger,
            **o.policies,
        )
        declared = spark_schema(plan.schema)
        if declared != self._schema:
            plan.close()
            raise pgarrow.UsageError(
                "pgarrow data source: the source's columns changed since the DataFrame was "
                f"made: it had {self._schema.simpleString()}, the server now describes "
                f"{declared.simpleString()}; load it again"
            )
        return [PgarrowPartition(part) for part in plan.parts]

    def read(self, partition: PgarrowPartition) -> Iterator[pa.RecordBatch]:
        target = to_arrow_schema(self._schema, timezone="UTC")
        batch_options = {k: v for k, v in self._options.policies.items() if k in _INTEGER_OPTIONS}
        reader = partition.part.read(**batch_options)
        for batch in reader:
            columns = [
                _convert(batch.column(i), target.field(i).type) for i in range(batch.num_columns)
            ]
            yield pa.RecordBatch.from_arrays(columns, schema=target)
