"""``pgarrow.scan_polars``: a polars LazyFrame over a PostgreSQL query or table, through
polars' IO plugins. The columns a query needs, the filters PostgreSQL evaluates the same way
polars does, and ``head(n)`` go into the SQL; polars applies the whole filter again to what
arrives, so anything not pushed is still exact.

What is pushed (anything else is left to polars):

- comparisons ``== != < <= > >=`` of a column with a literal: integers, decimals, dates,
  timestamps (the literal's time zone agreeing with the column's), booleans, float64 columns
  with float or integer literals; text columns only with ``==``, ``!=`` and ``is_in`` (ordering
  depends on the database's collation);
- ``is_in`` with a list of such literals, ``is_null``, ``is_not_null``, ``is_between``;
- ``&`` (each side pushed on its own), ``|`` and ``~`` (when every side is pushed);
- ``head(n)`` / ``limit(n)``, when the whole filter was pushed.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Iterator, Optional

import pyarrow as pa

import pgarrow

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._typing import TypeOptions

_EPOCH = _dt.datetime(1970, 1, 1)
_COMPARE = {"Eq": "=", "NotEq": "<>", "Lt": "<", "LtEq": "<=", "Gt": ">", "GtEq": ">="}
_FLIP = {"Eq": "Eq", "NotEq": "NotEq", "Lt": "Gt", "LtEq": "GtEq", "Gt": "Lt", "GtEq": "LtEq"}
_INTS = ("Int8", "Int16", "Int32", "Int64", "Int128", "UInt8", "UInt16", "UInt32", "UInt64")


class _NotPushed(Exception):
    """A part of the predicate that stays with polars."""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(value: str) -> str:
    # A backslash means something else under standard_conforming_strings = off, and NUL is no
    # text in PostgreSQL: such literals stay with polars.
    if "\\" in value or "\x00" in value:
        raise _NotPushed
    return "'" + value.replace("'", "''") + "'"


class _Literal:
    """A literal of the predicate: its kind ("int", "float", "decimal", "str", "bool",
    "date", "datetime", "null") and its SQL."""

    def __init__(self, kind: str, sql: str, tz: Optional[str] = None) -> None:
        self.kind, self.sql, self.tz = kind, sql, tz


def _literal(node: Any) -> _Literal:
    if not isinstance(node, dict) or "Literal" not in node:
        raise _NotPushed
    lit = node["Literal"]
    if "Dyn" in lit:
        ((kind, value),) = lit["Dyn"].items()
        if kind == "Int" and isinstance(value, int):
            return _Literal("int", str(value))
        if (
            kind == "Float"
            and isinstance(value, float)
            and value == value
            and abs(value) != float("inf")
        ):
            return _Literal("float", repr(value))
        raise _NotPushed
    scalar = lit.get("Scalar")
    if not isinstance(scalar, dict) or len(scalar) != 1:
        raise _NotPushed
    ((kind, value),) = scalar.items()
    if kind in _INTS and isinstance(value, int):
        return _Literal("int", str(value))
    if kind in ("Float32", "Float64") and isinstance(value, float):
        if value != value or abs(value) == float("inf"):
            raise _NotPushed
        return _Literal("float", repr(value))
    if kind == "String" and isinstance(value, str):
        return _Literal("str", _text(value))
    if kind == "Boolean" and isinstance(value, bool):
        return _Literal("bool", "true" if value else "false")
    if kind == "Null":
        return _Literal("null", "NULL")
    if kind == "Date" and isinstance(value, int):
        try:
            day = _dt.date(1970, 1, 1) + _dt.timedelta(days=value)
        except OverflowError:
            raise _NotPushed from None
        return _Literal("date", f"DATE '{day.isoformat()}'")
    if kind == "Datetime" and isinstance(value, list) and len(value) == 3:
        amount, unit, tz = value
        per_us = {"Microseconds": 1, "Milliseconds": 1000}
        if unit == "Nanoseconds":
            if amount % 1000:
                raise _NotPushed  # finer than PostgreSQL's microseconds
            micros = amount // 1000
        elif unit in per_us:
            micros = amount * per_us[unit]
        else:
            raise _NotPushed
        try:
            instant = _EPOCH + _dt.timedelta(microseconds=micros)
        except OverflowError:
            raise _NotPushed from None
        if tz is None:
            return _Literal("datetime", f"TIMESTAMP '{instant.isoformat(sep=' ')}'")
        return _Literal("datetime", f"TIMESTAMPTZ '{instant.isoformat(sep=' ')}+00'", tz=str(tz))
    if kind == "Decimal" and isinstance(value, list) and len(value) == 3:
        # [unscaled, precision, scale] as polars writes a Decimal scalar.
        unscaled, _, scale = value
        if isinstance(unscaled, int) and isinstance(scale, int):
            return _Literal("decimal", str(decimal.Decimal(unscaled).scaleb(-scale)))
    raise _NotPushed


def _column(node: Any) -> str:
    if isinstance(node, dict) and isinstance(node.get("Column"), str):
        return node["Column"]
    raise _NotPushed


def _comparable(column_type: pa.DataType, lit: _Literal, op: str) -> bool:
    """Whether PostgreSQL compares the column with the literal as polars does."""
    t = column_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if lit.kind == "null":
        return True
    if pa.types.is_integer(t) or pa.types.is_decimal(t):
        return lit.kind in ("int", "decimal")
    if pa.types.is_float64(t):
        return lit.kind in ("int", "float")
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return lit.kind == "str" and op in ("Eq", "NotEq")
    if pa.types.is_boolean(t):
        return lit.kind == "bool" and op in ("Eq", "NotEq")
    if pa.types.is_date32(t):
        return lit.kind == "date"
    if pa.types.is_timestamp(t):
        return lit.kind == "datetime" and (lit.tz is None) == (t.tz is None)
    return False


class _Translator:
    def __init__(self, schema: pa.Schema) -> None:
        self.types = {f.name: f.type for f in schema}

    def type_of(self, name: str) -> pa.DataType:
        if name not in self.types:
            raise _NotPushed
        return self.types[name]

    def compare(self, left: Any, op: str, right: Any) -> str:
        try:
            name, lit = _column(left), _literal(right)
        except _NotPushed:
            name, lit, op = _column(right), _literal(left), _FLIP[op]
        if not _comparable(self.type_of(name), lit, op):
            raise _NotPushed
        return f"{_ident(name)} {_COMPARE[op]} {lit.sql}"

    def node(self, node: Any) -> str:
        if not isinstance(node, dict) or len(node) != 1:
            raise _NotPushed
        ((kind, body),) = node.items()
        if kind == "Column":
            # A boolean column as a condition (polars simplifies `col == True` to it).
            if not pa.types.is_boolean(self.type_of(body)):
                raise _NotPushed
            return _ident(body)
        if kind == "BinaryExpr":
            op = body.get("op")
            if op in ("And", "LogicalAnd"):
                return f"({self.node(body['left'])} AND {self.node(body['right'])})"
            if op in ("Or", "LogicalOr"):
                return f"({self.node(body['left'])} OR {self.node(body['right'])})"
            if op in _COMPARE:
                return self.compare(body["left"], op, body["right"])
            raise _NotPushed
        if kind == "Function":
            function, inputs = body.get("function"), body.get("input", [])
            boolean = function.get("Boolean") if isinstance(function, dict) else None
            if boolean == "Not" and len(inputs) == 1:
                return f"(NOT {self.node(inputs[0])})"
            if boolean == "IsNull" and len(inputs) == 1:
                return f"({_ident(self.name(inputs[0]))} IS NULL)"
            if boolean == "IsNotNull" and len(inputs) == 1:
                return f"({_ident(self.name(inputs[0]))} IS NOT NULL)"
            if isinstance(boolean, dict) and "IsBetween" in boolean and len(inputs) == 3:
                closed = boolean["IsBetween"].get("closed")
                ops = {
                    "Both": ("GtEq", "LtEq"),
                    "Left": ("GtEq", "Lt"),
                    "Right": ("Gt", "LtEq"),
                    "None": ("Gt", "Lt"),
                }.get(closed)
                if ops is None:
                    raise _NotPushed
                low_op, high_op = ops
                low = self.compare(inputs[0], low_op, inputs[1])
                high = self.compare(inputs[0], high_op, inputs[2])
                return f"({low} AND {high})"
            if isinstance(boolean, dict) and "IsIn" in boolean and len(inputs) == 2:
                return self.is_in(inputs[0], inputs[1], boolean["IsIn"])
        raise _NotPushed

    def name(self, node: Any) -> str:
        name = _column(node)
        self.type_of(name)
        return name

    def is_in(self, column: Any, values: Any, options: Any) -> str:
        name = self.name(column)
        scalar = values.get("Literal", {}).get("Scalar", {}) if isinstance(values, dict) else {}
        raw = scalar.get("List") if isinstance(scalar, dict) else None
        if not isinstance(raw, list):
            raise _NotPushed
        try:
            table = pa.ipc.open_stream(bytes(raw)).read_all()
        except Exception:
            raise _NotPushed from None
        if table.num_columns != 1:
            raise _NotPushed
        column = table.column(0)
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            # One row holding the list.
            if table.num_rows != 1:
                raise _NotPushed
            items = column[0].as_py()
        else:
            # The values themselves, one per row (as polars 2.1 writes them).
            items = column.to_pylist()
        if not isinstance(items, list) or not items:
            raise _NotPushed
        if isinstance(options, dict) and options.get("nulls_equal") and None in items:
            raise _NotPushed
        t = self.type_of(name)
        rendered = []
        for item in items:
            if item is None:
                continue  # x IN (..., NULL) is never true for NULL in either
            lit = _python_literal(item)
            if not _comparable(t, lit, "Eq"):
                raise _NotPushed
            rendered.append(lit.sql)
        if not rendered:
            return "false"
        return f"({_ident(name)} IN ({', '.join(rendered)}))"


def _python_literal(value: Any) -> _Literal:
    if isinstance(value, bool):
        return _Literal("bool", "true" if value else "false")
    if isinstance(value, int):
        return _Literal("int", str(value))
    if isinstance(value, float):
        if value != value or abs(value) == float("inf"):
            raise _NotPushed
        return _Literal("float", repr(value))
    if isinstance(value, decimal.Decimal):
        return _Literal("decimal", str(value))
    if isinstance(value, str):
        return _Literal("str", _text(value))
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            return _Literal("datetime", f"TIMESTAMP '{value.isoformat(sep=' ')}'")
        return _Literal(
            "datetime", f"TIMESTAMPTZ '{value.isoformat(sep=' ')}'", tz=str(value.tzinfo)
        )
    if isinstance(value, _dt.date):
        return _Literal("date", f"DATE '{value.isoformat()}'")
    raise _NotPushed


def _conjuncts(node: Any) -> list[Any]:
    if isinstance(node, dict) and "BinaryExpr" in node:
        body = node["BinaryExpr"]
        if body.get("op") in ("And", "LogicalAnd"):
            return _conjuncts(body["left"]) + _conjuncts(body["right"])
    return [node]


def predicate_sql(predicate: Any, schema: pa.Schema) -> tuple[Optional[str], bool]:
    """The SQL condition for what of the polars `predicate` PostgreSQL evaluates as polars
    does, and whether that is all of it."""
    tree = json.loads(predicate.meta.serialize(format="json"))
    translator = _Translator(schema)
    pushed, complete = [], True
    for conjunct in _conjuncts(tree):
        try:
            pushed.append(translator.node(conjunct))
        except (_NotPushed, KeyError, TypeError, ValueError):
            complete = False
    return (" AND ".join(pushed) if pushed else None), complete


def scan_polars(
    url: Optional[str] = None,
    query: Optional[str] = None,
    *,
    table: Optional[str] = None,
    partitions: Optional[int] = None,
    partition_by: Optional[str] = None,
    **options: Unpack[TypeOptions],
) -> Any:
    """A ``polars.LazyFrame`` of the query or table (a bare name is a table), read when
    collected: the columns the query needs, the filters PostgreSQL evaluates as polars does
    and ``head(n)`` go into the SQL (see the module's documentation for what is pushed), in
    one snapshot. With ``partitions=N`` the parts (block ranges of a table, or key ranges of
    ``partition_by``) are read concurrently. ``options`` are the type policies and batch sizes
    of :func:`pgarrow.read_arrow`. The schema is described when this is called, without
    running the query.

    Parameters
    ----------
    url : str, optional
        The connection URL or ``key=value`` string; by default libpq's environment.
    query : str, optional
        A query, or a table's name (a bare name is a table).
    table : str, optional
        A table's name, read as SQL reads it.
    partitions : int, optional
        Read over this many connections in one snapshot.
    partition_by : str, optional
        A column (integer, date or timestamp) cut into key ranges; required for a query.
    **options
        The type policies and batch sizes of :func:`pgarrow.read_arrow`.

    Returns
    -------
    polars.LazyFrame

    Raises
    ------
    UsageError
        An unknown option, a query partitioned without ``partition_by``.
    QueryError
        The server refused to describe the query.
    """
    import polars as pl
    from polars.io.plugins import register_io_source

    if partitions is not None and (
        isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1
    ):
        raise ValueError(f"partitions must be a positive int, got {partitions!r}")
    arrow_schema = pgarrow.schema(url, query, table=table, **options)
    polars_schema = pl.from_arrow(arrow_schema.empty_table()).schema

    def source(
        with_columns: Optional[list[str]],
        predicate: Optional[Any],
        n_rows: Optional[int],
        batch_size: Optional[int],
    ) -> Iterator[Any]:
        where, complete = (None, True)
        if predicate is not None:
            where, complete = predicate_sql(predicate, arrow_schema)
        columns = None
        if with_columns is not None:
            columns = list(with_columns)
            if predicate is not None:
                # The filter polars applies again needs its columns too.
                for name in predicate.meta.root_names():
                    if name not in columns:
                        columns.append(name)
        limit = n_rows if complete else None
        read_options: dict[str, Any] = dict(options)
        if batch_size is not None and "batch_rows" not in read_options:
            read_options["batch_rows"] = max(1, batch_size)
        with pgarrow.plan(
            url,
            query,
            table=table,
            partitions=partitions or 1,
            partition_by=partition_by,
            **read_options,
        ) as plan:
            yield from _read_parts(plan, columns, where, limit, predicate, with_columns, n_rows)

    return register_io_source(
        source,
        schema=polars_schema,
        explain_name="pgarrow",
        explain_detail=f"{'table ' + table if table else query}",
    )


def _read_parts(
    plan: pgarrow.Plan,
    columns: Optional[list[str]],
    where: Optional[str],
    limit: Optional[int],
    predicate: Optional[Any],
    with_columns: Optional[list[str]],
    n_rows: Optional[int],
) -> Iterator[Any]:
    import polars as pl

    def frames(reader: pa.RecordBatchReader) -> Iterator[Any]:
        for batch in reader:
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            if predicate is not None:
                frame = frame.filter(predicate)
            if with_columns is not None:
                frame = frame.select(with_columns)
            yield frame

    left = n_rows
    parts = plan.parts
    if len(parts) == 1:
        readers = iter([parts[0].read(columns=columns, where=where, limit=limit)])
    else:
        # Every part connects and starts at once (the reads release the GIL); their batches
        # are taken part after part.
        pool = ThreadPoolExecutor(max_workers=len(parts))
        futures = [pool.submit(p.read_arrow, columns, where, limit) for p in parts]
        readers = (f.result().to_reader() for f in futures)
        pool.shutdown(wait=False)
    for reader in readers:
        for frame in frames(reader):
            if left is not None:
                frame = frame.head(left)
                left -= frame.height
            yield frame
            if left is not None and left <= 0:
                return
