"""PostgreSQL to Apache Arrow and back, exactly and fast.

One call gives a pyarrow Table, a polars or pandas DataFrame, a streaming RecordBatchReader, or
a Parquet / Arrow IPC file (or a directory of them: parts, or several tables in one snapshot);
one call loads Arrow data or files into a table, and one copies between servers::

    import pgarrow
    table = pgarrow.read_arrow("postgresql://user@host/db", "SELECT * FROM orders")
    pgarrow.write("postgresql://user@host/other", "orders", table, mode="upsert", key=["id"])
    pgarrow.export("postgresql://user@host/db", schema="sales", output_dir="sales/")
    pgarrow.write("postgresql://user@host/other", "orders", "orders/")  # a manifest directory
    pgarrow.copy("postgresql://user@host/db", "orders", "postgresql://user@host/other")

Every call is the same engine call as the ``pgarrow`` command's, with keyword arguments named
as its flags.

The data crosses from Rust through the Arrow C data interface, without copying the buffers.
Every wait on the server runs with the GIL released; Ctrl-C cancels the server query and
raises KeyboardInterrupt.

Connections: ``url`` is a ``postgresql://`` URL or a libpq ``key=value`` string; ``None``
means ``DATABASE_URL``, else the ``PG*`` environment variables (PGHOST, PGPORT, PGUSER,
PGPASSWORD, PGDATABASE, ...), ``~/.pgpass`` and the service file, as libpq reads them.

Sources: ``query`` is SQL (SELECT, TABLE, VALUES, WITH ...) or a table name (``orders``,
``sales.orders``, ``"Mixed Case"``): a bare, possibly qualified name is read as a table.

Options (keyword arguments, as the CLI's flags; every one is checked, with a ValueError naming
a bad one, before anything connects):

- ``batch_rows`` (int, default 65536), ``batch_bytes`` (int, default 64 MiB): where batches
  are cut.
- ``statement_timeout``: seconds, a ``timedelta``, or text such as ``"30s"``.
- type policies: ``numeric`` ("string", "float64", "decimal128:P:S", "decimal256:P:S"),
  ``wide_numeric`` ("decimal256", "string"), ``numeric_overflow`` ("error", "null"),
  ``infinity`` ("extreme", "null", "error"), ``out_of_range`` ("error", "null", "clamp", "text"),
  ``text`` ("utf8", "large", "view"), ``invalid_utf8`` ("error", "replace", "binary"),
  ``array_shape`` ("data", "flatten", "text"), ``array_bounds`` ("error", "drop"),
  ``enum`` ("dictionary", "utf8"). ``copy`` reads arrays as text unless ``array_shape`` is
  given (their bounds and depths then arrive exactly).
- several connections, one snapshot (see the book: docs/src/partitions.md): ``partitions`` (int: connections),
  ``parts`` (int), ``partition_by`` (a column: the way to split a query), ``snapshot``
  ("shared", "per-connection"), ``memory_limit`` (bytes, or text such as ``"1GiB"``),
  ``order_preserving`` (bool). Batches then come from every part as they are read.
- files only (``export``): ``compression`` ("zstd", "zstd:LEVEL", "snappy", "lz4", "gzip",
  "none"), ``row_group_rows``, ``row_group_bytes``, ``intervals`` ("native", "struct").
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Iterator, Literal, Optional, Union

from . import _pgarrow
from ._pgarrow import ConnectError, DecodeError, Error, OutputError, QueryError


# The native classes say they live in `pgarrow`, where users (and pickle, which engines use to
# send a worker's error back to the driver) find them.
for _cls in (Error, ConnectError, DecodeError, OutputError, QueryError):
    _cls.__module__ = "pgarrow"


class UsageError(Error, ValueError):
    """The call asks for something impossible: a bad option or name, connection settings that
    do not parse, a statement that returns no rows, an input file that is not what it should
    be. Nothing ran. A ValueError too."""

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow

__version__: str = _pgarrow.__version__

__all__ = [
    "ChangeBatch",
    "Changes",
    "ConnectError",
    "DecodeError",
    "Error",
    "OutputError",
    "QueryError",
    "UsageError",
    "apply_changes",
    "changes",
    "changes_to",
    "copy",
    "Part",
    "Plan",
    "export",
    "plan",
    "read_arrow",
    "read_batches",
    "read_pandas",
    "read_polars",
    "scan_polars",
    "schema",
    "write",
]

# A table name: one or two parts, each a plain identifier or a double-quoted one.
_PART = r'(?:[A-Za-z_\x80-\uffff][A-Za-z0-9_$\x80-\uffff]*|"(?:[^"]|"")+")'
_TABLE = re.compile(rf"\s*{_PART}(?:\s*\.\s*{_PART})?\s*")


def _source(query: Optional[str], table: Optional[str]) -> tuple[str, bool]:
    """The source text and whether it is a table."""
    if (query is None) == (table is None):
        raise ValueError("give either a query or table=")
    if table is not None:
        return table, True
    assert query is not None
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, not {type(query).__name__}")
    return query, _TABLE.fullmatch(query) is not None


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as e:  # pragma: no cover - pyarrow is a dependency
        raise ImportError("pgarrow needs pyarrow: pip install pyarrow") from e
    return pyarrow


from ._plan import Part, Plan, plan  # noqa: E402  (after UsageError, which it raises)
from ._polars_scan import scan_polars  # noqa: E402


def _batches(export: Any) -> Iterator[pyarrow.RecordBatch]:
    pa = _pyarrow()
    try:
        while True:
            batch = export.next_batch()
            if batch is None:
                return
            yield pa.record_batch(batch)
    finally:
        # Stopped early (an exception, or the reader dropped): cancel the server query now.
        export.close()


def read_batches(
    url: Optional[str] = None,
    query: Optional[str] = None,
    *,
    table: Optional[str] = None,
    **options: Any,
) -> pyarrow.RecordBatchReader:
    """Starts an export and returns its batches as a streaming ``pyarrow.RecordBatchReader``.

    Memory stays bounded by about one batch (``batch_rows``/``batch_bytes``) whatever the size
    of the result. Reading waits on the server with the GIL released. Closing the reader (or
    dropping it) before its end cancels the server query.

    Raises ConnectError, QueryError, DecodeError (subclasses of pgarrow.Error) or ValueError
    for bad options, before or while reading.
    """
    pa = _pyarrow()
    text, is_table = _source(query, table)
    export = _pgarrow.Export(url, text, is_table, options)
    schema = pa.schema(export)
    return pa.RecordBatchReader.from_batches(schema, _batches(export))


def read_arrow(
    url: Optional[str] = None,
    query: Optional[str] = None,
    *,
    table: Optional[str] = None,
    **options: Any,
) -> pyarrow.Table:
    """Runs the query (or reads the table) into a ``pyarrow.Table``.

    The schema carries PostgreSQL's type of each column in its field metadata
    (``pgarrow.pg_type``), and counts of values changed by a non-default option in the schema
    metadata (``pgarrow.lossy_conversions``).
    """
    pa = _pyarrow()
    text, is_table = _source(query, table)
    export = _pgarrow.Export(url, text, is_table, options)
    schema = pa.schema(export)
    batches = list(_batches(export))
    return pa.Table.from_batches(batches, schema=schema)


def read_polars(
    url: Optional[str] = None,
    query: Optional[str] = None,
    *,
    table: Optional[str] = None,
    **options: Any,
) -> polars.DataFrame:
    """``read_arrow`` as a ``polars.DataFrame`` (polars must be installed)."""
    try:
        import polars
    except ImportError as e:
        raise ImportError(
            "pgarrow.read_polars needs polars, which is not installed: pip install polars"
        ) from e
    return polars.from_arrow(read_arrow(url, query, table=table, **options))


def read_pandas(
    url: Optional[str] = None,
    query: Optional[str] = None,
    *,
    table: Optional[str] = None,
    arrow_dtypes: bool = False,
    **options: Any,
) -> pandas.DataFrame:
    """``read_arrow`` as a ``pandas.DataFrame`` (pandas must be installed).

    With ``arrow_dtypes=True`` the columns keep their Arrow types (``pd.ArrowDtype``): exact
    decimals, nanosecond-free timestamps past 2262, nested lists and structs.
    """
    try:
        import pandas
    except ImportError as e:
        raise ImportError(
            "pgarrow.read_pandas needs pandas, which is not installed: pip install pandas"
        ) from e
    table_ = read_arrow(url, query, table=table, **options)
    if arrow_dtypes:
        return table_.to_pandas(types_mapper=pandas.ArrowDtype)
    return table_.to_pandas()


def _patterns(value: Union[str, list[str], None]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def export(
    url: Optional[str],
    query_or_table: Optional[str] = None,
    path: Union[str, os.PathLike[str], None] = None,
    format: Optional[str] = None,
    *,
    table: Union[str, list[str], None] = None,
    schema: Union[str, list[str], None] = None,
    output_dir: Union[str, os.PathLike[str], None] = None,
    storage_options: Optional[dict[str, str]] = None,
    incremental_by: Optional[str] = None,
    state: Union[str, os.PathLike[str], None] = None,
    since: Optional[str] = None,
    restart: bool = False,
    late_rows: str = "auto",
    **options: Any,
) -> dict[str, Any]:
    """Exports to a Parquet or Arrow IPC file, or to a directory, written atomically.

    ``path`` and ``output_dir`` may be object URLs: ``s3://bucket/key.parquet``,
    ``gs://...``, ``az://container/...``, ``abfss://...``. The object appears only when the
    export succeeded (a multipart upload completed at the end, aborted on failure or
    Ctrl-C). Credentials come from each cloud's environment variables (and AWS profiles);
    ``storage_options`` adds or overrides settings by the ``object_store`` crate's keys, as
    delta-rs and polars name them (``{"aws_endpoint": "http://localhost:9000",
    "aws_allow_http": "true"}``); see the book's "Object stores" (docs/src/object-stores.md).

    - ``export(url, "orders", "orders.parquet")``: a query or table into one file. With
      ``partitions=N`` it is read over N connections in one snapshot.
    - ``export(url, "orders", output_dir="orders/", partitions=4)``: one file per part, then
      ``_manifest.json`` (as ``pgarrow export --output-dir``).
    - ``export(url, table=["sales.order_*", "customers"], schema="crm", output_dir="out/")``:
      every relation the patterns match (``--table`` and ``--schema`` as the CLI reads them:
      unquoted names fold to lower case, ``*`` and ``?`` are wildcards), one file per table
      named ``schema.table.parquet``, all read in one snapshot, then ``_manifest.json``.

    ``format`` is "parquet", "arrow" (IPC file) or "arrow-stream"; by default it comes from
    the file's extension (.parquet, .arrow, .arrows), and is Parquet for a directory. On any
    failure, including Ctrl-C, nothing is left: no file, and no manifest (the files of the
    run are removed).

    - ``export(url, "orders", "orders.parquet", incremental_by="updated_at",
      state="orders.state.json")``: one incremental run (as ``pgarrow export
      --incremental-by``): the first exports the table (from ``since`` when given), each
      later one the rows changed since the previous run's snapshot, late commits included,
      into ``orders.run-000002.parquet``, ... (``output_dir=``: ``run-000002/`` there, with
      its manifest; ``partitions=N`` reads over N connections in the run's snapshot); then
      the state is replaced. ``restart=True`` starts over; ``late_rows="always"`` scans for
      late rows every run. The result adds ``run``, ``first``, ``late_scan`` and ``state``.

    - ``export(url, "orders", output_dir="orders/", replication_slot="orders_cdc",
      partitions=4)``: creates logical replication slot ``orders_cdc`` (``slot_plugin=``,
      default ``pgoutput``; the role needs REPLICATION, the server ``wal_level = logical``)
      and exports in the snapshot it exported: streaming from the slot gives exactly the
      changes after this export. The result adds ``replication_slot`` (its name,
      ``consistent_point``, snapshot and plugin); the manifest records the slot and LSN.

    Returns the statistics: rows, batches, bytes (of COPY data), written (file bytes), the
    time of each phase in seconds, peak RSS, and the values changed by non-default options;
    for a directory, the manifest's fields (files, snapshot, wal_lsn, ...) or the parts'
    (connections, parts, manifest).
    """
    if incremental_by is not None or state is not None:
        if incremental_by is None or state is None:
            raise UsageError("incremental_by= and state= go together")
        if query_or_table is None:
            raise UsageError("an incremental run reads a table: give its name")
        if table is not None or schema is not None:
            raise UsageError("an incremental run reads one table, not table= / schema= patterns")
        if options.get("replication_slot") is not None or options.get("slot_plugin") is not None:
            raise UsageError(
                "replication_slot= hands a whole export off to replication; an incremental run "
                "follows a cursor: one or the other"
            )
        return _pgarrow.export_incremental(
            url,
            query_or_table,
            incremental_by,
            os.fspath(state),
            path=None if path is None else os.fspath(path),
            output_dir=None if output_dir is None else os.fspath(output_dir),
            since=since,
            restart=restart,
            late_rows=late_rows,
            format=format,
            options=options,
            storage_options=storage_options,
        )
    if since is not None or restart or late_rows != "auto":
        raise UsageError("since=, restart= and late_rows= are options of incremental_by=")

    patterns, schemas = _patterns(table), _patterns(schema)
    if patterns or schemas:
        if query_or_table is not None or path is not None:
            raise UsageError("table= and schema= patterns go to output_dir=, without a query or path")
        if output_dir is None:
            raise UsageError("several tables (table= or schema= patterns) go to output_dir=")
        return _pgarrow.export_tables(
            url,
            patterns,
            schemas,
            os.fspath(output_dir),
            format=format,
            options=options,
            storage_options=storage_options,
        )
    if query_or_table is None:
        raise UsageError("give a query or table, or table= / schema= patterns")
    text, is_table = _source(query_or_table, None)
    if output_dir is not None:
        if path is not None:
            raise UsageError("give a path or output_dir=, not both")
        return _pgarrow.export_dir(
            url,
            text,
            is_table,
            os.fspath(output_dir),
            format=format,
            options=options,
            storage_options=storage_options,
        )
    if path is None:
        raise UsageError("give a path to write, or output_dir=")
    return _pgarrow.export_file(
        url,
        text,
        is_table,
        os.fspath(path),
        format=format,
        options=options,
        storage_options=storage_options,
    )


def schema(
    url: Optional[str] = None,
    query: Optional[str] = None,
    *,
    table: Optional[str] = None,
    **options: Any,
) -> pyarrow.Schema:
    """The Arrow schema an export would produce, without running the query (it is described,
    and the catalog read for its column types). The type policies apply."""
    pa = _pyarrow()
    text, is_table = _source(query, table)
    capsule = _pgarrow.schema(url, text, is_table, options)
    return pa.Schema._import_from_c_capsule(capsule)


def write(
    url: Optional[str],
    table: str,
    data: Any,
    mode: str = "append",
    *,
    key: Union[str, list[str], None] = None,
    create: bool = False,
    create_nested: str = "json",
    batch_rows: Optional[int] = None,
    storage_options: Optional[dict[str, str]] = None,
    nanoseconds: str = "error",
) -> dict[str, Any]:
    """Loads ``data`` into ``table`` (``name`` or ``schema.name``, read as SQL reads it:
    unquoted names fold to lower case, ``'"Orders"'`` keeps its case) with binary COPY, in
    one transaction: any failure, Ctrl-C included, leaves the table as it was. A name without
    its schema is never a temporary table: it means the first schema of the search path (less
    ``pg_temp``) that has the table, and ``create=True`` makes it in the first; ``pg_temp.name``
    names the temporary table.

    ``data`` is anything with ``__arrow_c_stream__`` (a pyarrow Table or RecordBatchReader, a
    polars DataFrame, a DuckDB result, ...), or files: a path or a list of paths (Parquet,
    Arrow IPC file or stream, by extension, as ``pgarrow import`` reads them), or one directory
    written by an export (exactly the files its ``_manifest.json`` lists, each checked against
    its row count). Paths may be object URLs (``s3://bucket/orders.parquet``, a pattern such as
    ``s3://bucket/orders/*.parquet``, or a prefix with a manifest), read in place by ranges,
    with ``storage_options`` as for :func:`export`. Its columns go into the table's columns of the same names (the others get
    their defaults); every value is converted exactly or refused with its column, its row and
    the value (see the book's "Loading into PostgreSQL", docs/src/loading.md).

    ``mode`` is "append", "replace" (TRUNCATE in the same transaction) or "upsert" (insert new
    keys, update the others; ``key`` names the columns of a unique index). ``create=True``
    creates a missing table from the schema, with the PostgreSQL types pgarrow's field
    metadata names where they exist. A nested field without that metadata (a Struct, a Map, a
    list of them, as Spark or DuckDB write them) becomes ``jsonb``, or with
    ``create_nested="typed"`` a composite type made for each Struct (``<table>_<column>``),
    ``hstore`` for a Map of text to text (the extension must be installed). ``batch_rows`` sets the rows per batch read from Parquet.
    ``nanoseconds`` says what to do with nanoseconds that are not whole microseconds
    (PostgreSQL keeps microseconds): "error" (the default: refused, naming row and column) or
    "round" (half to even, as PostgreSQL rounds its input; counted under ``losses``).

    Returns the statistics: rows, bytes (of COPY data), seconds (total_s, connect_s,
    describe_s, read_s, encode_s, send_s, commit_s; reading and encoding overlap sending), and
    ``losses``: the values a policy converted, per column and kind.
    """
    if isinstance(key, str):
        key = [k.strip() for k in key.split(",")]
    return _pgarrow.write(
        url,
        table,
        data,
        mode=mode,
        key=key,
        create=create,
        create_nested=create_nested,
        batch_rows=batch_rows,
        storage_options=storage_options,
        nanoseconds=nanoseconds,
    )


def copy(
    url: Optional[str],
    query_or_table: str,
    to: Optional[str] = None,
    into: Optional[str] = None,
    mode: str = "append",
    *,
    key: Union[str, list[str], None] = None,
    create: bool = False,
    create_nested: str = "json",
    domains: Literal["define", "base"] = "define",
    **options: Any,
) -> dict[str, Any]:
    """Copies a query or table of one PostgreSQL (``url``) into a table of another (``to``;
    by default the same server), as ``pgarrow copy``: the source is read with binary COPY
    (over ``partitions=N`` connections in one snapshot, if given) while the target loads it,
    in one transaction of the target; any failure leaves the target as it was and cancels the
    source's query.

    ``into`` is the target table (by default the source table's name; required for a query).
    ``mode``, ``key``, ``create`` and ``create_nested`` are as in ``write``; with ``create``,
    the enums, composite types, ranges and domains the columns need and the target lacks are
    created there as the source defines them (listed under ``created_types``). A domain's
    DEFAULT and CHECKs come with it, after the functions and sequences they name
    (``domains="define"``); ``domains="base"`` gives such columns the domain's base type
    instead, listed under ``domains_as_base``. The type policies and partitioned reads take
    the options of ``read_arrow``.

    Returns the load's statistics, with the source's export statistics under ``source``.
    """
    text, is_table = _source(query_or_table, None)
    if into is None:
        if not is_table:
            raise UsageError("copying a query needs into=: the target table")
        into = text
    if isinstance(key, str):
        key = [k.strip() for k in key.split(",")]
    return _pgarrow.copy(
        url,
        text,
        to,
        into,
        is_table=is_table,
        mode=mode,
        key=key,
        create=create,
        create_nested=create_nested,
        domains=domains,
        options=options,
    )


class ChangeBatch(tuple):
    """Changed rows of one table: ``(table, batch)``, a named pair. ``table`` is the quoted,
    schema-qualified name (``"public"."orders"``); ``batch`` a ``pyarrow.RecordBatch`` of the
    table's columns, then ``_op``, ``_lsn``, ``_commit_lsn``, ``_commit_time``, ``_xid``,
    ``_unchanged`` and ``_old`` (see the book's "Change data capture", docs/src/changes.md)."""

    __slots__ = ()

    def __new__(cls, table: str, batch: pyarrow.RecordBatch) -> ChangeBatch:
        return super().__new__(cls, (table, batch))

    @property
    def table(self) -> str:
        return self[0]

    @property
    def batch(self) -> pyarrow.RecordBatch:
        return self[1]


class Changes:
    """A logical replication slot's changes, as ``ChangeBatch`` items (made by
    ``pgarrow.changes``).

    Iterating waits on the server with the GIL released. After each transaction boundary that
    ends a run of batches, ``checkpoint`` is the WAL position every change delivered so far
    reaches; call ``confirm()`` once those rows are durable wherever they went: the slot moves
    there, and a later ``pgarrow.changes`` on the slot starts after it. What was not confirmed
    comes again. ``schema_changes`` lists ``(table, lsn)`` for each table whose columns changed
    mid-stream (its next batches have the new schema). Close it (or use ``with``) to end the
    stream.
    """

    def __init__(self, native: Any) -> None:
        self._native = native
        self.checkpoint: Optional[str] = None
        self.schema_changes: list[tuple[str, str]] = []

    @property
    def text_reason(self) -> Optional[str]:
        """Why values come as text where binary was possible (columns without a binary
        decoder), or None."""
        return self._native.text_reason()

    def __iter__(self) -> Iterator[ChangeBatch]:
        pa = _pyarrow()
        while True:
            event = self._native.next_event()
            if event is None:
                return
            kind, name, payload = event
            if kind == "rows":
                yield ChangeBatch(name, pa.record_batch(payload))
            elif kind == "checkpoint":
                self.checkpoint = name
            elif kind == "schema" and payload is not None:
                self.schema_changes.append((name, payload))

    def confirm(self, lsn: Optional[str] = None) -> None:
        """Tells the slot that the changes up to ``lsn`` (default: ``checkpoint``) are durable."""
        lsn = lsn or self.checkpoint
        if lsn is not None:
            self._native.confirm(lsn)

    def close(self) -> None:
        """Ends the stream; the slot keeps the position confirmed last."""
        self._native.close()

    def __enter__(self) -> Changes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def changes(
    url: Optional[str] = None,
    *,
    slot: str,
    publication: Union[str, list[str]],
    create_slot: bool = False,
    catch_up: bool = False,
    values: str = "auto",
    start: Optional[str] = None,
    batch_rows: Optional[int] = None,
    flush_interval: float = 1.0,
) -> Changes:
    """Streams logical replication slot ``slot``'s changes (plugin pgoutput) for the tables of
    ``publication`` (a name or a list), as ``ChangeBatch(table, pyarrow.RecordBatch)`` items
    with the export's types.

    ``create_slot`` makes the slot when it does not exist (its changes start now);
    ``catch_up`` ends the iteration once every change committed before the call was delivered
    (else it streams until closed); ``values`` is "auto" (binary on PostgreSQL 14+ unless a
    published column has no binary decoder), "binary" or "text"; ``start`` skips transactions
    committed before that WAL position (``"16/B374D848"``); ``flush_interval`` (seconds) is how
    long rows may wait for a checkpoint. Raises ConnectError, QueryError, DecodeError or
    UsageError (a missing slot or publication, a bad option).

    ::

        with pgarrow.changes(url, slot="orders_cdc", publication="orders_pub") as stream:
            for table, batch in stream:
                sink.write(table, batch)
                stream.confirm()   # durable up to stream.checkpoint
    """
    pubs = [publication] if isinstance(publication, str) else list(publication)
    native = _pgarrow.Changes(
        url,
        slot,
        pubs,
        create_slot=create_slot,
        catch_up=catch_up,
        values=values,
        start=start,
        batch_rows=batch_rows,
        flush_interval=flush_interval,
    )
    return Changes(native)


def changes_to(
    url: Optional[str] = None,
    output: Union[str, os.PathLike[str], None] = None,
    *,
    slot: str,
    publication: Union[str, list[str]],
    to: Optional[str] = None,
    create_slot: bool = False,
    catch_up: bool = False,
    values: str = "auto",
    start: Optional[str] = None,
    roll_rows: int = 1_000_000,
    roll_bytes: int = 128 << 20,
    roll_seconds: float = 60.0,
    storage_options: Optional[dict[str, str]] = None,
) -> dict[str, Any]:
    """Streams slot ``slot``'s changes into file sets under ``output`` (a directory, or an
    object URL such as ``s3://bucket/changes/``), as ``pgarrow changes -o`` does: one
    directory per table, files named by LSN range (``to``: "parquet", the default, or
    "arrow"), each written atomically, and ``_changes.json`` listing them. The slot moves only
    once the files are durable, and a later call resumes exactly where this one ended.

    Rolls come at the first transaction end after ``roll_rows`` rows or ``roll_seconds``, or
    once ``roll_bytes`` are buffered. With ``catch_up`` it returns once every change committed
    before the call is written; otherwise it runs until Ctrl-C, which ends it at a
    transaction boundary after a last roll (then KeyboardInterrupt). Returns the statistics:
    ``start_lsn``, ``end_lsn``, ``rows``, ``files``, ``bytes``, ``tables``,
    ``schema_changes``.
    """
    if output is None:
        raise UsageError("changes_to needs an output directory or object URL")
    pubs = [publication] if isinstance(publication, str) else list(publication)
    return _pgarrow.changes_to(
        url,
        os.fspath(output),
        slot,
        pubs,
        format=to,
        create_slot=create_slot,
        catch_up=catch_up,
        values=values,
        start=start,
        roll_rows=roll_rows,
        roll_bytes=roll_bytes,
        roll_seconds=roll_seconds,
        storage_options=storage_options,
    )


def apply_changes(
    url: Optional[str] = None,
    path: Union[str, os.PathLike[str], None] = None,
    *,
    tables: Optional[dict[str, str]] = None,
    keys: Optional[dict[str, Union[str, list[str]]]] = None,
    state_table: Optional[str] = None,
    nanoseconds: str = "error",
    storage_options: Optional[dict[str, str]] = None,
) -> dict[str, Any]:
    """Applies the changes directory ``path`` (as ``changes_to`` and ``pgarrow changes`` write
    it; a directory or an object URL) to the tables of ``url``'s database, by key, as
    ``pgarrow apply`` does: each roll in one transaction, each once. A table
    ``pgarrow_applied_changes`` (``state_table``) records, per slot, the checkpoint the target
    has every change up to, so a later call applies only what came since.

    ``tables`` maps a source table to another target (``{"orders": "archive.orders"}``); a
    table not named goes to the table of its own name. ``keys`` gives a target's key columns
    (``{"archive.orders": ["order_id", "line"]}``, or ``"order_id,line"``); a target not named
    is keyed by its primary key, else its replica identity index. Returns the statistics:
    ``slot``, ``rolls``, ``rolls_skipped``, ``files``, ``changes``, ``upserted``, ``deleted``,
    ``truncates``, ``checkpoint_lsn``, ``tables``, ``total_s``. Ctrl-C rolls back the roll
    under way (then KeyboardInterrupt); a later call goes on from there.
    """
    if path is None:
        raise UsageError("apply_changes needs the changes directory or object URL")
    key_lists = {
        table: [c.strip() for c in cols.split(",")] if isinstance(cols, str) else list(cols)
        for table, cols in (keys or {}).items()
    }
    return _pgarrow.apply_changes(
        url,
        os.fspath(path),
        tables=tables,
        keys=key_lists,
        state_table=state_table,
        nanoseconds=nanoseconds,
        storage_options=storage_options,
    )
