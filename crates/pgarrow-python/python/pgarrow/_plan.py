"""Plans: one exported snapshot, cut into parts that any process or machine can read.

``pgarrow.plan(url, "orders", partitions=8)`` opens a ``REPEATABLE READ`` transaction, exports
its snapshot and plans the parts (block ranges of a table, key ranges of ``partition_by``, or
the whole of a query). Each :class:`Part` is a small picklable object: send it to a worker
(Spark, Ray, Dask, multiprocessing, another machine), and ``part.read()`` there reads exactly
that part, as Arrow, in the plan's snapshot. All the parts together are the source as of one
instant, whatever commits meanwhile.

The snapshot lives as long as the transaction that exported it:

- ``pgarrow.plan(...)`` holds it in this process, until ``plan.close()``, the end of a ``with``
  block, or the object's garbage collection.
- ``pgarrow.plan(..., detached=True)`` holds it in a small background process (this Python,
  ``-m pgarrow._hold``) while parts are being read: every part's reader tells it when it
  starts and when it has read its part to the end. The process ends ``linger`` seconds (30)
  after every part was read and none started or finished since; or ``hold_timeout`` seconds
  (600) after the last part started or finished, if some part was never read; or at
  ``plan.close()``. This is for engines that plan in one process and read later in others
  (Spark's planner is a short-lived worker). A part whose read fails does not count as read,
  so a retried task still finds the snapshot; an engine that reads its input twice (Spark's
  sort samples it first) reads the second time within the linger time.

A part read after its snapshot is gone fails with a :class:`pgarrow.QueryError` that says so.

Credentials: a part carries the connection string exactly as the caller gave it (a password
only if the caller put one there). With ``url=None``, or a URL without a password, each
worker finds them as the CLI does: ``DATABASE_URL``, the ``PG*`` environment variables,
``~/.pgpass``, the service file.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional, Sequence

from . import _pgarrow

if TYPE_CHECKING:
    import pyarrow
    from typing_extensions import Unpack

    from ._typing import TypeOptions

# Options a part's reader takes from the plan: the type policies must be the plan's (its schema
# depends on them); the batch sizes and timeout are the worker's business.
_READ_OPTIONS = (
    "batch_rows",
    "batch_bytes",
    "statement_timeout",
    "numeric",
    "wide_numeric",
    "numeric_overflow",
    "infinity",
    "out_of_range",
    "special_values",
    "text",
    "invalid_utf8",
    "array_shape",
    "array_bounds",
    "enum",
    "enums",
)
_PLAN_OPTIONS = ("partitions", "parts", "partition_by", "snapshot")


def _plain(value: Any) -> Any:
    """An option value as JSON can carry it (a timedelta as seconds)."""
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    return value


def _split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    read: dict[str, Any] = {}
    plan: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if key in _READ_OPTIONS:
            read[key] = _plain(value)
        elif key in _PLAN_OPTIONS:
            plan[key] = value
        else:
            # The native check names every option there is.
            from . import UsageError

            raise UsageError(
                f"unknown option {key!r} for a plan; the options are "
                f"{', '.join(_PLAN_OPTIONS + _READ_OPTIONS)}"
            )
    return read, plan


class Part:
    """One part of a :class:`Plan`: picklable, readable in any process while the plan's
    snapshot is held. ``index`` is its number in the plan; ``estimated_rows`` and
    ``estimated_bytes`` guide a scheduler (from the statistics and the size on disk; not
    counts, and None for key ranges and queries).

    Attributes
    ----------
    index : int
        Its number in the plan.
    sql : str
        The query that reads it.
    estimated_rows, estimated_bytes : int or None
        Estimates for a scheduler.
    """

    __slots__ = ("index", "sql", "estimated_bytes", "estimated_rows", "_url", "_plan", "_options")

    def __init__(
        self,
        url: Optional[str],
        plan_json: str,
        index: int,
        sql: str,
        estimated_bytes: Optional[int],
        estimated_rows: Optional[int],
        options: dict[str, Any],
    ) -> None:
        self._url = url
        self._plan = plan_json
        self.index = index
        self.sql = sql
        self.estimated_bytes = estimated_bytes
        self.estimated_rows = estimated_rows
        self._options = options

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        # Deterministic: the same part of the same plan (Dask names its tasks by it).
        return ("pgarrow.Part", self._url, self._plan, self.index, sorted(self._options.items()))

    def __repr__(self) -> str:
        rows = f", ~{self.estimated_rows} rows" if self.estimated_rows is not None else ""
        return f"<pgarrow.Part {self.index}{rows}: {self.sql[:80]}>"

    @property
    def schema(self) -> pyarrow.Schema:
        """The Arrow schema of the whole part (every column)."""
        import pyarrow as pa

        return pa.Schema._import_from_c_capsule(_pgarrow.plan_schema(self._plan))

    def _export(
        self,
        columns: Optional[Sequence[str]],
        where: Optional[str],
        limit: Optional[int],
        batch_rows: Optional[int],
        batch_bytes: Optional[int],
    ) -> Any:
        options = dict(self._options)
        if batch_rows is not None:
            options["batch_rows"] = batch_rows
        if batch_bytes is not None:
            options["batch_bytes"] = batch_bytes
        if isinstance(columns, str):
            raise TypeError("columns must be a sequence of names, not a str")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative int, got {limit!r}")
        return _pgarrow.Export.part(
            self._url,
            self._plan,
            self.index,
            options=options,
            columns=list(columns) if columns is not None else None,
            filter=where,
            limit=limit,
        )

    def read(
        self,
        columns: Optional[Sequence[str]] = None,
        where: Optional[str] = None,
        limit: Optional[int] = None,
        *,
        batch_rows: Optional[int] = None,
        batch_bytes: Optional[int] = None,
    ) -> pyarrow.RecordBatchReader:
        """Reads this part on a new connection, in the plan's snapshot, as a streaming
        ``pyarrow.RecordBatchReader``: ``columns`` (names of the plan's schema, in that order),
        the rows where ``where`` (a SQL boolean expression over the result columns) holds, at
        most ``limit`` rows: ``SELECT columns FROM (part) WHERE ... LIMIT n``.

        Parameters
        ----------
        columns : sequence of str, optional
            Names of the plan's schema, in that order; all by default.
        where : str, optional
            A SQL boolean expression over the result columns.
        limit : int, optional
            At most this many rows.
        batch_rows, batch_bytes : int, optional
            Where batches are cut (this worker's choice; the types are the plan's).

        Returns
        -------
        pyarrow.RecordBatchReader

        Raises
        ------
        QueryError
            The plan's snapshot is no longer held.
        """
        import pyarrow as pa

        from ._read import _batches

        export = self._export(columns, where, limit, batch_rows, batch_bytes)
        return pa.RecordBatchReader.from_batches(pa.schema(export), _batches(export))

    def read_arrow(
        self,
        columns: Optional[Sequence[str]] = None,
        where: Optional[str] = None,
        limit: Optional[int] = None,
        *,
        batch_rows: Optional[int] = None,
        batch_bytes: Optional[int] = None,
    ) -> pyarrow.Table:
        """:meth:`read` into a ``pyarrow.Table``.

        Parameters
        ----------
        columns, where, limit, batch_rows, batch_bytes
            As :meth:`read`.

        Returns
        -------
        pyarrow.Table

        Raises
        ------
        QueryError
            The plan's snapshot is no longer held.
        """
        import pyarrow as pa

        from ._read import _batches

        export = self._export(columns, where, limit, batch_rows, batch_bytes)
        schema = pa.schema(export)
        return pa.Table.from_batches(list(_batches(export)), schema=schema)


class Plan:
    """A plan of one snapshot and its parts; see :func:`pgarrow.plan`. A context manager:
    the snapshot is released at the end of the ``with`` block.

    Attributes
    ----------
    parts : list of Part
        The parts, in plan order.
    snapshot : str or None
        The exported snapshot.
    wal_lsn : str or None
        The WAL position of the snapshot.
    source : str
        The query or table planned.
    detached : bool
        Whether a background process holds the snapshot.
    """

    def __init__(
        self,
        url: Optional[str],
        plan_json: str,
        read_options: dict[str, Any],
        native: Any = None,
        holder: Optional[subprocess.Popen] = None,
    ) -> None:
        self._native = native
        self._holder = holder
        self._json = plan_json
        doc = json.loads(plan_json)
        self.snapshot: Optional[str] = doc.get("snapshot")
        self.wal_lsn: Optional[str] = doc.get("wal_lsn")
        self.source: str = doc["source"]
        self.detached = holder is not None
        self.parts: list[Part] = []
        for p in doc["parts"]:
            # Each part carries a plan of itself only: small to pickle, whatever the count.
            own = dict(doc, parts=[p])
            self.parts.append(
                Part(
                    url,
                    json.dumps(own),
                    p["part"],
                    p["sql"],
                    p.get("estimated_bytes"),
                    p.get("estimated_rows"),
                    read_options,
                )
            )

    @property
    def schema(self) -> pyarrow.Schema:
        """The Arrow schema of every part's batches."""
        import pyarrow as pa

        return pa.Schema._import_from_c_capsule(_pgarrow.plan_schema(self._json))

    @property
    def held(self) -> bool:
        """Whether the snapshot is still held: by this object, or by its detached holder
        (which ends by itself once every part was read, or after its hold_timeout)."""
        if self._native is not None:
            return bool(self._native.held())
        if self._holder is not None:
            return self._holder.poll() is None
        return False

    def to_json(self) -> str:
        """The plan as JSON (as ``pgarrow plan`` prints it).

        Returns
        -------
        str
            What ``pgarrow export --plan FILE --part K`` reads.
        """
        return self._json

    def close(self) -> None:
        """Releases the snapshot (ends its transaction). Parts not yet started can no longer
        be read. Idempotent.

        Returns
        -------
        None
        """
        if self._native is not None:
            self._native.close()
        if self._holder is not None and self._holder.poll() is None:
            self._holder.terminate()
            self._holder.wait()

    def __enter__(self) -> "Plan":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[Part]:
        return iter(self.parts)

    def __len__(self) -> int:
        return len(self.parts)

    def __repr__(self) -> str:
        how = "detached" if self.detached else "held here"
        state = "held" if self.held else "released"
        return f"<pgarrow.Plan {len(self.parts)} parts, snapshot {self.snapshot} ({how}, {state})>"


def _start_holder(
    url: Optional[str],
    text: str,
    is_table: bool,
    options: dict[str, Any],
    hold_timeout: float,
    linger: float,
) -> tuple[str, subprocess.Popen]:
    """Starts `python -m pgarrow._hold` in its own session, hands it the request on stdin
    and reads the plan (or the error) from its stdout."""
    request = json.dumps(
        {
            "url": url,
            "source": text,
            "is_table": is_table,
            "options": options,
            "hold_timeout": hold_timeout,
            "linger": linger,
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgarrow._hold"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=os.environ.copy(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(request.encode())
    proc.stdin.close()
    line = proc.stdout.readline()
    proc.stdout.close()
    if not line:
        code = proc.wait()
        from . import Error

        raise Error(
            f"the snapshot holder (python -m pgarrow._hold) ended without a plan (exit {code})"
        )
    answer = json.loads(line)
    if "error" in answer:
        proc.wait()
        from . import UsageError
        from . import _pgarrow as native

        classes = {
            "UsageError": UsageError,
            "ConnectError": native.ConnectError,
            "QueryError": native.QueryError,
            "DecodeError": native.DecodeError,
        }
        error = classes.get(answer.get("class"), native.Error)(answer["error"])
        for attr in ("sqlstate", "server_message", "detail", "hint"):
            setattr(error, attr, answer.get(attr))
        raise error
    return answer["plan"], proc


def plan(
    url: Optional[str] = None,
    query: Optional[str] = None,
    *,
    table: Optional[str] = None,
    partitions: int = 2,
    parts: Optional[int] = None,
    partition_by: Optional[str] = None,
    detached: bool = False,
    hold_timeout: float = 600.0,
    linger: float = 30.0,
    **options: Unpack[TypeOptions],
) -> Plan:
    """Plans ``partitions`` parts of the query or table in one exported snapshot; see the
    module's documentation (``help(pgarrow._plan)``) and the book's "Engines" (docs/src/engines.md).

    Parameters
    ----------
    url, query, table
        As in :func:`pgarrow.read_batches`.
    partitions : int, default 2
        How many parts: block ranges of a table, by its size on disk; key ranges of
        ``partition_by``, an integer, date or timestamp column, from its statistics; a query
        without ``partition_by`` is one part.
    parts : int, optional
        Overrides the count.
    partition_by : str, optional
        The column to split on.
    detached : bool, default False
        Hold the snapshot in a background process while parts are read, instead of in this
        object: it ends ``linger`` seconds after every part was read to its end and none
        started or finished since, or ``hold_timeout`` seconds after the last part started or
        finished (or after planning, if none did).
    hold_timeout : float, default 600.0
    linger : float, default 30.0
        Seconds, as ``detached`` says.
    **options
        The type policies and batch sizes of :func:`pgarrow.read_arrow`, which every part's
        reader uses (:class:`pgarrow._typing.TypeOptions`).

    Returns
    -------
    Plan
        Its parts, picklable; a context manager that releases the snapshot.

    Raises
    ------
    ConnectError, QueryError
        Connecting or planning failed.
    UsageError
        A bad option, or a query that cannot be split on ``partition_by``.

    Examples
    --------
    >>> with pgarrow.plan(url, "orders", partitions=8) as plan:
    ...     tables = [part.read_arrow() for part in plan.parts]
    """
    from ._utils import _source

    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise ValueError(f"partitions must be a positive int, got {partitions!r}")
    for name, value in (("hold_timeout", hold_timeout), ("linger", linger)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be positive seconds, got {value!r}")
    text, is_table = _source(query, table)
    read_options, plan_options = _split_options(options)
    native_options = dict(read_options, **plan_options)
    native_options["partitions"] = partitions
    native_options["parts"] = parts if parts is not None else partitions
    if partition_by is not None:
        native_options["partition_by"] = partition_by
    if detached:
        plan_json, proc = _start_holder(
            url, text, is_table, native_options, float(hold_timeout), float(linger)
        )
        return Plan(url, plan_json, read_options, holder=proc)
    native = _pgarrow.Plan(url, text, is_table, native_options)
    return Plan(url, native.plan_json(), read_options, native=native)
