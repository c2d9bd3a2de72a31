"""PostgreSQL to Apache Arrow and back, exactly and fast.

One call gives a pyarrow Table, a polars or pandas DataFrame, a streaming RecordBatchReader, or
a Parquet / Arrow IPC file (or a directory of them: parts, or several tables in one snapshot);
one call loads Arrow data or files into a table, and one copies between servers::

    import pgarrow
    table = pgarrow.read_arrow("postgresql://user@host/db", "SELECT * FROM orders")
    pgarrow.write("postgresql://user@host/other", "orders", table, mode="upsert", key=["id"])
    pgarrow.export_tables("postgresql://user@host/db", "sales/", schema="sales")
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

Options (keyword arguments, as the CLI's flags, typed in ``pgarrow._typing``; every one is
checked, with a ValueError naming a bad one, before anything connects):

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
- files only (``export_file``, ``export_dataset``, ...): ``compression`` ("zstd", "zstd:LEVEL", "snappy", "lz4", "gzip",
  "none"), ``row_group_rows``, ``row_group_bytes``, ``intervals`` ("native", "struct");
  Parquet's ``bloom_filters`` ("column" or "column:FPP", or a list), ``column_encodings``
  ({"column": "plain" | "dictionary" | "delta" | "delta-length" | "delta-prefix" |
  "byte-stream-split" | "rle"}), ``data_page_v2`` (bool), ``field_ids`` (bool: Iceberg's
  numbering), ``geo_types`` (bool: Parquet's GEOMETRY and GEOGRAPHY types), ``geo_bbox``
  (bool: GeoParquet's bbox covering columns), ``sorted_by`` ("column", "column:desc", or a list, most significant first: the
  query's ORDER BY, named in every row group's ``sorting_columns``; rows out of that order fail
  the export).
- the layout of ``export_dataset``'s files: ``files_by`` (value partitions as Hive-style
  directories: "column", "year(c)", "month(c)", "day(c)", "hour(c)", "bucket(N, c)",
  "truncate(W, c)", or a list, outermost first), ``max_file_rows`` (int),
  ``max_file_size`` (bytes, or text such as "128MiB").
"""

from __future__ import annotations

import os
import re
import warnings
from typing import TYPE_CHECKING, Any, Iterator, Optional, Union

from . import _pgarrow
from ._pgarrow import ConnectError, DataError, DecodeError, Error, OutputError, QueryError


# The native classes say they live in `pgarrow`, where users (and pickle, which engines use to
# send a worker's error back to the driver) find them.
for _cls in (Error, ConnectError, DataError, DecodeError, OutputError, QueryError):
    _cls.__module__ = "pgarrow"


class UsageError(Error, ValueError):
    """The call asks for something impossible: a bad option or name, connection settings that
    do not parse, a statement that returns no rows, an input file that is not what it should
    be. Nothing ran. A ValueError too.

    A wrong string choice names the parameter and the choices (``mode: unknown load mode
    "merge": expected append, replace or upsert``).
    """

# The types of the signatures (get_type_hints resolves them here); Unpack is for type checkers.
from ._typing import (  # noqa: E402
    ApplyStats,
    ChangesFormat,
    ChangesStats,
    CopyStats,
    CreateNested,
    DeleteMode,
    DeltaStats,
    IcebergStats,
    Domains,
    DuckLakeStats,
    MirrorStats,
    CompactStats,
    ExpireStats,
    FileFormat,
    FileOptions,
    IfExists,
    IncrementalStats,
    LateRows,
    LoadMode,
    LoadStats,
    Nanoseconds,
    PartitionedStats,
    ReadOptions,
    SlotExportStats,
    TablesOptions,
    TablesStats,
    Values,
)

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow
    from typing_extensions import Unpack

__version__: str = _pgarrow.__version__

__all__ = [
    "ChangeBatch",
    "Changes",
    "ConnectError",
    "DataError",
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
    "export_dataset",
    "export_delta",
    "export_iceberg",
    "export_ducklake",
    "export_file",
    "export_incremental",
    "export_tables",
    "export_with_slot",
    "mirror",
    "compact_lake",
    "expire_lake",
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
    **options: Unpack[ReadOptions],
) -> pyarrow.RecordBatchReader:
    """Starts an export and returns its batches as a streaming ``pyarrow.RecordBatchReader``.

    Memory stays bounded by about one batch (``batch_rows``/``batch_bytes``) whatever the size
    of the result. Reading waits on the server with the GIL released. Closing the reader (or
    dropping it) before its end cancels the server query.

    Parameters
    ----------
    url : str, optional
        A ``postgresql://`` URL or a libpq ``key=value`` string; None means ``DATABASE_URL``,
        else the ``PG*`` environment variables.
    query : str, optional
        SQL, or a table name (a bare, possibly qualified name is read as a table).
    table : str, optional
        A table name, instead of ``query``.
    **options
        Batch sizes, the statement timeout, the type policies and partitioned reads
        (:class:`pgarrow._typing.ReadOptions`; see the module's documentation).

    Returns
    -------
    pyarrow.RecordBatchReader

    Raises
    ------
    ConnectError, QueryError, DecodeError
        Before or while reading (subclasses of :class:`pgarrow.Error`).
    UsageError
        A bad option or source, before anything connects (a ``ValueError``).

    Examples
    --------
    >>> reader = pgarrow.read_batches(url, "SELECT * FROM orders", batch_rows=10_000)
    >>> for batch in reader:
    ...     handle(batch)
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
    **options: Unpack[ReadOptions],
) -> pyarrow.Table:
    """Runs the query (or reads the table) into a ``pyarrow.Table``.

    The schema carries PostgreSQL's type of each column in its field metadata
    (``pgarrow.pg_type``), and counts of values changed by a non-default option in the schema
    metadata (``pgarrow.lossy_conversions``).

    Parameters
    ----------
    url, query, table, **options
        As in :func:`read_batches`.

    Returns
    -------
    pyarrow.Table

    Raises
    ------
    ConnectError, QueryError, DecodeError, UsageError
        As in :func:`read_batches`.

    Examples
    --------
    >>> table = pgarrow.read_arrow(url, "SELECT * FROM orders", numeric="float64")
    >>> table = pgarrow.read_arrow(url, table="sales.orders", partitions=4)
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
    **options: Unpack[ReadOptions],
) -> polars.DataFrame:
    """:func:`read_arrow` as a ``polars.DataFrame`` (polars must be installed).

    Parameters
    ----------
    url, query, table, **options
        As in :func:`read_batches`.

    Returns
    -------
    polars.DataFrame

    Raises
    ------
    ImportError
        polars is not installed.
    ConnectError, QueryError, DecodeError, UsageError
        As in :func:`read_batches`.
    """
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
    **options: Unpack[ReadOptions],
) -> pandas.DataFrame:
    """:func:`read_arrow` as a ``pandas.DataFrame`` (pandas must be installed).

    Parameters
    ----------
    url, query, table, **options
        As in :func:`read_batches`.
    arrow_dtypes : bool, default False
        Keep the Arrow types (``pd.ArrowDtype``): exact decimals, nanosecond-free timestamps
        past 2262, nested lists and structs.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    ImportError
        pandas is not installed.
    ConnectError, QueryError, DecodeError, UsageError
        As in :func:`read_batches`.
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


def _path(value: Union[str, os.PathLike[str]]) -> str:
    return os.fspath(value)


_SLOT_OPTIONS = ("replication_slot", "slot_plugin")


def _no_slot(options: dict[str, Any], function: str) -> None:
    """Refuses the slot's options on the functions that do not create one."""
    given = [name for name in _SLOT_OPTIONS if options.get(name) is not None]
    if given:
        raise UsageError(
            f"{function} does not create a replication slot ({', '.join(given)}=): "
            "pgarrow.export_with_slot exports in the snapshot of a new slot"
        )


def export_file(
    url: Optional[str],
    query: Optional[str] = None,
    path: Union[str, os.PathLike[str], None] = None,
    *,
    table: Optional[str] = None,
    format: Optional[FileFormat] = None,
    storage_options: Optional[dict[str, str]] = None,
    **options: Unpack[FileOptions],
) -> PartitionedStats:
    """Exports a query or table into one Parquet or Arrow IPC file, written atomically (as
    pyarrow's ``write_table``).

    With ``partitions=N`` it is read over N connections in one snapshot. On any failure,
    Ctrl-C included, nothing is left: the temporary file is removed.

    Parameters
    ----------
    url : str, optional
        The connection, as in :func:`read_batches`.
    query : str, optional
        SQL, or a table name (a bare, possibly qualified name is read as a table).
    path : str or os.PathLike
        The file, or an object URL (``s3://bucket/key.parquet``, ``gs://...``,
        ``az://container/...``, ``abfss://...``): the object appears only when the export
        succeeded (a multipart upload completed at the end, aborted on failure or Ctrl-C).
    table : str, optional
        A table name, instead of ``query``.
    format : {"parquet", "arrow", "arrow-stream"}, optional
        By default from the extension (.parquet, .arrow, .arrows).
    storage_options : dict of str to str, optional
        Object store settings by the ``object_store`` crate's keys, as delta-rs and polars
        name them (``{"aws_endpoint": "http://localhost:9000", "aws_allow_http": "true"}``),
        over each cloud's environment variables; see the book's "Object stores".
    **options
        The read options of :func:`read_batches`, and the files' own: ``compression``,
        ``row_group_rows``, ``row_group_bytes``, ``intervals``
        (:class:`pgarrow._typing.FileOptions`).

    Returns
    -------
    dict
        The statistics (:class:`pgarrow._typing.PartitionedStats`): rows, batches, bytes (of
        COPY data), written (file bytes), the time of each phase in seconds, peak RSS, the
        values changed by non-default options; read over several connections, also the
        parts' (connections, parts, ...).

    Raises
    ------
    ConnectError, QueryError, DecodeError
        Connecting or reading failed.
    OutputError
        Writing the file failed; nothing was left behind.
    UsageError
        A bad option, format or path, before anything connects.

    See Also
    --------
    export_dataset : one file per part, and a manifest.
    export_with_slot : an export handed off to a new replication slot.

    Examples
    --------
    >>> pgarrow.export_file(url, "orders", "orders.parquet", compression="zstd:9")
    >>> pgarrow.export_file(url, "SELECT * FROM orders", "s3://bucket/orders.parquet")
    """
    _no_slot(options, "pgarrow.export_file")
    if path is None:
        raise UsageError("give a path to write (export_dataset writes a directory)")
    text, is_table = _source(query, table)
    return _pgarrow.export_file(
        url,
        text,
        is_table,
        _path(path),
        format=format,
        options=options,
        storage_options=storage_options,
    )


def export_dataset(
    url: Optional[str],
    query: Optional[str] = None,
    output_dir: Union[str, os.PathLike[str], None] = None,
    *,
    table: Optional[str] = None,
    format: Optional[FileFormat] = None,
    storage_options: Optional[dict[str, str]] = None,
    **options: Unpack[FileOptions],
) -> PartitionedStats:
    """Exports a query or table into a directory: one file per part, read over ``partitions``
    connections in one snapshot, then ``_manifest.json`` (as ``pgarrow export --output-dir``
    and pyarrow's ``write_dataset``).

    On any failure, Ctrl-C included, nothing is left: no manifest, and the files of the run
    are removed.

    Parameters
    ----------
    url, query, table
        As in :func:`export_file`.
    output_dir : str or os.PathLike
        The directory, or an object URL prefix (``s3://bucket/orders/``).
    format : {"parquet", "arrow", "arrow-stream"}, optional
        Of every file; Parquet by default.
    storage_options : dict of str to str, optional
        As in :func:`export_file`.
    **options
        As in :func:`export_file`; ``partitions``, ``parts`` and ``partition_by`` say how the
        source is cut; ``files_by``, ``max_file_rows`` and ``max_file_size`` how the files are
        laid out (value partitions as ``column_day=2026-11-25/`` directories, files rolled by
        rows or size; listed in the manifest with their values).

    Returns
    -------
    dict
        The statistics (:class:`pgarrow._typing.PartitionedStats`), with ``manifest``.

    Raises
    ------
    ConnectError, QueryError, DecodeError, OutputError, UsageError
        As in :func:`export_file`.

    Examples
    --------
    >>> pgarrow.export_dataset(url, "orders", "orders/", partitions=4)
    >>> pgarrow.export_dataset(url, table="lineitem", output_dir="li/",
    ...                        files_by="month(l_shipdate)", max_file_size="128MiB")
    """
    _no_slot(options, "pgarrow.export_dataset")
    if output_dir is None:
        raise UsageError("give output_dir=, the directory to write")
    text, is_table = _source(query, table)
    return _pgarrow.export_dir(
        url,
        text,
        is_table,
        _path(output_dir),
        format=format,
        options=options,
        storage_options=storage_options,
    )


def _lake(
    format: str,
    url: Optional[str],
    query: Optional[str],
    table: Union[str, list[str], None],
    schema: Union[str, list[str], None],
    options: dict[str, Any],
    **args: Any,
) -> Any:
    """The three lake exports' common path: one table or query, or, with a list of ``table``
    patterns or ``schema`` patterns, several tables into lake tables of their own."""
    several = isinstance(table, list) or schema is not None
    if several:
        if query is not None:
            raise UsageError("a query goes into one lake table: give table= patterns or a query")
        text, is_table, patterns, schemas = "", True, _patterns(table), _patterns(schema)
        if not (patterns or schemas):
            raise UsageError("give table= or schema= patterns")
    else:
        text, is_table = _source(query, table)
        patterns, schemas = [], []
    every = dict(catalog=None, lake_table=None, data_path=None, catalog_name=None, warehouse=None,
                 location=None, checkpoint_interval=None)
    every.update(args)
    return _pgarrow.export_lake(url, format, text, is_table, patterns, schemas, options=options, **every)


def export_ducklake(
    url: Optional[str],
    query: Optional[str] = None,
    *,
    catalog: str,
    table: Union[str, list[str], None] = None,
    schema: Union[str, list[str], None] = None,
    lake_table: Optional[str] = None,
    data_path: Optional[str] = None,
    if_exists: IfExists = "fail",
    incremental_by: Optional[str] = None,
    since: Optional[str] = None,
    late_rows: Literal["auto", "always"] = "auto",
    restart: bool = False,
    storage_options: Optional[dict[str, str]] = None,
    **options: Unpack[FileOptions],
) -> Union[DuckLakeStats, list[DuckLakeStats]]:
    """Exports a query or table into a DuckLake table, committed in one snapshot (as
    ``pgarrow export --ducklake``): the Parquet files are written under the lake's data path
    (over ``partitions`` connections in one snapshot), then one transaction in the catalog
    database adds them. Readers (DuckDB's ``ducklake`` extension) see the table before or
    after, never between; on any failure, Ctrl-C included, the table is as it was and the
    files are removed. See the book's "Lake tables" (docs/src/lake.md).

    Parameters
    ----------
    url, query
        As in :func:`export_file`.
    table, schema : str or list of str, optional
        One ``table`` (as in :func:`export_file`); or several tables, every one read in one
        snapshot, each into a lake table of its own schema and name (a DuckLake schema of the source
        schema's name): a list of ``table``
        patterns, or ``schema`` patterns (as :func:`export_tables` reads them). Each table is
        its own commit; the statistics are then a list, one per table.
    catalog : str
        The PostgreSQL database of the DuckLake catalog (a URL or ``key=value`` string); one
        without a catalog gets one (DuckLake 1.0), with ``data_path``.
    lake_table : str, optional
        ``"[schema.]name"``; by default the exported table's name, in schema ``main``.
    data_path : str, optional
        Where a new catalog keeps its files: a directory or an object URL.
    if_exists : {"fail", "append", "replace"}
        When the table exists: refuse (the default), add the rows, or replace them.
    incremental_by : str, optional
        An incremental run of ``table`` by this cursor column (as :func:`export_incremental`):
        what changed since the run whose state the table's last such snapshot carries,
        appended with this run's state in the same snapshot (no state file). ``since``,
        ``late_rows`` and ``restart`` (which replaces the table's rows with a first run) as
        there.
    storage_options : dict of str to str, optional
        As in :func:`export_file`, for an object-store data path.
    **options
        As in :func:`export_file`; ``partitions``, ``parts`` and ``partition_by`` say how the
        source is cut, ``max_file_rows`` and ``max_file_size`` where files roll over.

    Returns
    -------
    dict
        The statistics (:class:`pgarrow._typing.DuckLakeStats`): the export's, with the
        snapshot, the table and whether it was made, the files added.

    Raises
    ------
    UsageError
        The table exists and ``if_exists="fail"``; its columns are not the export's; a column
        of a type DuckLake cannot hold (named).
    ConnectError, QueryError, DecodeError, OutputError
        As in :func:`export_file`.

    Examples
    --------
    >>> pgarrow.export_ducklake(url, table="orders", catalog="postgresql://catalog/lake",
    ...                         data_path="s3://bucket/lake/", partitions=4)
    """
    return _lake(
        "ducklake",
        url,
        query,
        table,
        schema,
        options,
        catalog=catalog,
        lake_table=lake_table,
        data_path=data_path,
        if_exists=if_exists,
        incremental_by=incremental_by,
        since=since,
        late_rows=late_rows,
        restart=restart,
        storage_options=storage_options,
    )


def export_delta(
    url: Optional[str],
    query: Optional[str] = None,
    *,
    location: str,
    table: Union[str, list[str], None] = None,
    schema: Union[str, list[str], None] = None,
    if_exists: IfExists = "fail",
    checkpoint_interval: Optional[int] = None,
    incremental_by: Optional[str] = None,
    since: Optional[str] = None,
    late_rows: Literal["auto", "always"] = "auto",
    restart: bool = False,
    storage_options: Optional[dict[str, str]] = None,
    **options: Unpack[FileOptions],
) -> Union[DeltaStats, list[DeltaStats]]:
    """Exports a query or table into a Delta Lake table, committed in one version (as
    ``pgarrow export --delta``): the Parquet files are written under the table's location
    (over ``partitions`` connections in one snapshot), then one commit in its ``_delta_log``
    adds them, created only if no other writer took that version. Readers (deltalake, DuckDB's
    ``delta`` extension, polars, Spark) see the table before or after, never between; on any
    failure, Ctrl-C included, the table is as it was and the files are removed. See the book's
    "Lake tables" (docs/src/lake.md).

    Parameters
    ----------
    url, query
        As in :func:`export_file`.
    table, schema : str or list of str, optional
        One ``table`` (as in :func:`export_file`); or several tables, every one read in one
        snapshot, each into a lake table of its own at ``location/SCHEMA.NAME``: a list of ``table``
        patterns, or ``schema`` patterns (as :func:`export_tables` reads them). Each table is
        its own commit; the statistics are then a list, one per table.
    location : str
        The table's root: a directory or an object URL (``s3://``, ``gs://``, ``az://``);
        made when there is no table there.
    if_exists : {"fail", "append", "replace"}
        When the table exists: refuse (the default), add the rows, or replace them (and the
        columns) in one version.
    checkpoint_interval : int, optional
        A checkpoint every this many versions (default 10; 0: none), unless the table's
        ``delta.checkpointInterval`` says otherwise.
    incremental_by : str, optional
        An incremental run of ``table`` by this cursor column (as :func:`export_incremental`):
        what changed since the run whose state the table's last such commit carries (in its
        ``commitInfo``), appended with this run's state in the same version (no state file).
        ``since``, ``late_rows`` and ``restart`` (which replaces the table's rows with a first
        run) as there.
    storage_options : dict of str to str, optional
        As in :func:`export_file`, for an object-store location.
    **options
        As in :func:`export_file`; ``partition_by`` (columns only: Delta partitions by
        values) gives a new table's partition columns, ``max_file_rows`` and
        ``max_file_size`` where files roll over.

    Returns
    -------
    dict
        The statistics (:class:`pgarrow._typing.DeltaStats`): the export's, with the version,
        whether the table was made, the files added and removed.

    Raises
    ------
    UsageError
        The table exists and ``if_exists="fail"``; its columns are not the export's; a column
        of a type Delta cannot hold (named); a table feature pgarrow does not write (named).
    ConnectError, QueryError, DecodeError, OutputError
        As in :func:`export_file`.

    Examples
    --------
    >>> pgarrow.export_delta(url, table="orders", location="s3://bucket/lake/orders",
    ...                      partition_by=["region"], partitions=4)
    """
    return _lake(
        "delta",
        url,
        query,
        table,
        schema,
        options,
        location=location,
        if_exists=if_exists,
        checkpoint_interval=checkpoint_interval,
        incremental_by=incremental_by,
        since=since,
        late_rows=late_rows,
        restart=restart,
        storage_options=storage_options,
    )


def export_iceberg(
    url: Optional[str],
    query: Optional[str] = None,
    *,
    catalog: str,
    table: Union[str, list[str], None] = None,
    schema: Union[str, list[str], None] = None,
    lake_table: Optional[str] = None,
    warehouse: Optional[str] = None,
    catalog_name: Optional[str] = None,
    if_exists: IfExists = "fail",
    incremental_by: Optional[str] = None,
    since: Optional[str] = None,
    late_rows: Literal["auto", "always"] = "auto",
    restart: bool = False,
    storage_options: Optional[dict[str, str]] = None,
    **options: Unpack[FileOptions],
) -> Union[IcebergStats, list[IcebergStats]]:
    """Exports a query or table into an Apache Iceberg table (format version 2) of the SQL
    catalog in a PostgreSQL database, committed in one snapshot (as ``pgarrow export
    --iceberg``): the Parquet files are written under the table's location (over
    ``partitions`` connections in one snapshot), then a manifest, a manifest list and a new
    metadata file, and one swap of the table's metadata location in the catalog commits them,
    only if no other writer swapped it first. Readers (pyiceberg, DuckDB's ``iceberg``
    extension, polars, Spark, Trino) see the table before or after, never between; on any
    failure, Ctrl-C included, the table is as it was and the files are removed. See the book's
    "Lake tables" (docs/src/lake.md).

    Parameters
    ----------
    url, query
        As in :func:`export_file`.
    table, schema : str or list of str, optional
        One ``table`` (as in :func:`export_file`); or several tables, every one read in one
        snapshot, each into a lake table of its own namespace (the source schema's name) and name: a list of ``table``
        patterns, or ``schema`` patterns (as :func:`export_tables` reads them). Each table is
        its own commit; the statistics are then a list, one per table.
    catalog : str
        The catalog database's URL (``postgresql://...``): the ``iceberg_tables`` layout of
        pyiceberg's ``SqlCatalog`` and Iceberg's JDBC catalog, made when it has none.
    lake_table : str, optional
        The Iceberg table, ``namespace.name`` (default: the exported table's name, in namespace
        ``default``); a missing namespace is made.
    warehouse : str, optional
        Where a new table goes (``<warehouse>/<namespace>.db/<name>``): a directory or an
        object URL. An existing table keeps its own location.
    catalog_name : str, optional
        The catalog's name in the database (default ``"default"``, pyiceberg's
        ``load_catalog()`` name).
    if_exists : {"fail", "append", "replace"}
        When the table exists: refuse (the default), add the rows, or replace them in one
        snapshot (as the export's columns; an append adds new columns and widens types as
        Iceberg allows).
    incremental_by : str, optional
        An incremental run of ``table`` by this cursor column (as :func:`export_incremental`):
        what changed since the run whose state the table's last commit carries, appended with
        this run's state in the same snapshot (no state file); the first run takes the whole
        table (or from ``since``). ``late_rows`` and ``restart`` (which replaces the table's
        rows with a first run) as there.
    storage_options : dict of str to str, optional
        As in :func:`export_file`, for an object-store warehouse.
    **options
        As in :func:`export_file`; ``partition_by`` gives a new table's partition spec
        (``"day(col)"``, ``"bucket(16, col)"``, ... Iceberg's transforms), ``max_file_rows``
        and ``max_file_size`` where files roll over.

    Returns
    -------
    dict
        The statistics (:class:`pgarrow._typing.IcebergStats`): the export's, with the
        snapshot, the new metadata file, whether the table was made, the files added.

    Raises
    ------
    UsageError
        The table exists and ``if_exists="fail"``; a new table without ``warehouse``; its
        columns are not the export's (named); a column of a type Iceberg cannot hold (named);
        a table of another format version.
    ConnectError, QueryError, DecodeError, OutputError
        As in :func:`export_file`.

    Examples
    --------
    >>> pgarrow.export_iceberg(url, table="orders", catalog="postgresql://localhost/lake",
    ...                        lake_table="sales.orders", warehouse="s3://bucket/warehouse",
    ...                        partition_by=["day(ordered_at)"], partitions=4)
    """
    return _lake(
        "iceberg",
        url,
        query,
        table,
        schema,
        options,
        catalog=catalog,
        catalog_name=catalog_name,
        lake_table=lake_table,
        warehouse=warehouse,
        if_exists=if_exists,
        incremental_by=incremental_by,
        since=since,
        late_rows=late_rows,
        restart=restart,
        storage_options=storage_options,
    )


def export_tables(
    url: Optional[str],
    output_dir: Union[str, os.PathLike[str], None] = None,
    *,
    table: Union[str, list[str], None] = None,
    schema: Union[str, list[str], None] = None,
    format: Optional[FileFormat] = None,
    storage_options: Optional[dict[str, str]] = None,
    **options: Unpack[TablesOptions],
) -> TablesStats:
    """Exports every relation the ``table`` and ``schema`` patterns match into ``output_dir``,
    one file per table named ``schema.table.parquet`` (laid out with ``files_by``,
    ``max_file_rows`` or ``max_file_size``: a directory ``schema.table/`` of files per table),
    all read in one snapshot, then ``_manifest.json``.

    Parameters
    ----------
    url : str, optional
        As in :func:`export_file`.
    output_dir : str or os.PathLike
        The directory, or an object URL prefix.
    table : str or list of str, optional
        Table patterns, as the CLI's ``--table`` reads them: unquoted names fold to lower
        case, ``*`` and ``?`` are wildcards (``"sales.order_*"``).
    schema : str or list of str, optional
        Schema patterns (``--schema``): every relation of the schemas they match.
    format : {"parquet", "arrow", "arrow-stream"}, optional
        Of every file; Parquet by default.
    storage_options : dict of str to str, optional
        As in :func:`export_file`.
    **options
        The type options and the files' (:class:`pgarrow._typing.TablesOptions`); the tables
        are read one after another, so not the options of partitioned reads.

    Returns
    -------
    dict
        The manifest's fields (files, snapshot, wal_lsn, ...), ``output_dir``, ``manifest``,
        ``copy_bytes`` and ``total_s`` (:class:`pgarrow._typing.TablesStats`).

    Raises
    ------
    ConnectError, QueryError, DecodeError, OutputError, UsageError
        As in :func:`export_file`; UsageError also when no pattern is given.

    Examples
    --------
    >>> pgarrow.export_tables(url, "out/", table=["sales.order_*", "customers"], schema="crm")
    """
    _no_slot(options, "pgarrow.export_tables")
    if output_dir is None:
        raise UsageError("several tables (table= or schema= patterns) go to output_dir=")
    patterns, schemas = _patterns(table), _patterns(schema)
    if not (patterns or schemas):
        raise UsageError("give table= or schema= patterns")
    return _pgarrow.export_tables(
        url,
        patterns,
        schemas,
        _path(output_dir),
        format=format,
        options=options,
        storage_options=storage_options,
    )


def export_incremental(
    url: Optional[str],
    table: str,
    *,
    by: str,
    state: Union[str, os.PathLike[str]],
    path: Union[str, os.PathLike[str], None] = None,
    output_dir: Union[str, os.PathLike[str], None] = None,
    since: Optional[str] = None,
    restart: bool = False,
    late_rows: LateRows = "auto",
    format: Optional[FileFormat] = None,
    storage_options: Optional[dict[str, str]] = None,
    **options: Unpack[FileOptions],
) -> IncrementalStats:
    """One incremental run of ``table`` by the cursor column ``by`` (as ``pgarrow export
    --incremental-by``), then its state saved at ``state``.

    The first run exports the table (from ``since`` when given), each later one the rows
    changed since the previous run's snapshot, late commits included, into
    ``orders.run-000002.parquet``, ... (with ``output_dir``: ``run-000002/`` there, with its
    manifest, its files laid out by ``files_by``, ``max_file_rows`` and ``max_file_size`` when
    given; ``partitions=N`` reads over N connections in the run's snapshot).

    Parameters
    ----------
    url : str, optional
        As in :func:`export_file`.
    table : str
        The table.
    by : str
        The cursor column (a timestamp, date or integer that grows with each change).
    state : str or os.PathLike
        The state file (or object URL), replaced after each run.
    path : str or os.PathLike, optional
        The run's file, named for the run; or
    output_dir : str or os.PathLike, optional
        the directory its run's directory goes into (one of them).
    since : str, optional
        Where the first run starts (inclusive).
    restart : bool, default False
        Start over, as a first run.
    late_rows : {"auto", "always"}, default "auto"
        When to scan for rows committed late: when the run needs it, or every run.
    format : {"parquet", "arrow", "arrow-stream"}, optional
        By default from the extension (a file) or Parquet (a directory).
    storage_options : dict of str to str, optional
        As in :func:`export_file`.
    **options
        As in :func:`export_file`.

    Returns
    -------
    dict
        The export's statistics, with ``run``, ``first``, ``late_scan`` and ``state``
        (:class:`pgarrow._typing.IncrementalStats`).

    Raises
    ------
    ConnectError, QueryError, DecodeError, OutputError, UsageError
        As in :func:`export_file`.

    Examples
    --------
    >>> pgarrow.export_incremental(
    ...     url, "orders", by="updated_at", state="orders.state.json", path="orders.parquet"
    ... )
    """
    _no_slot(options, "pgarrow.export_incremental")
    if not isinstance(table, str):
        raise UsageError("an incremental run reads a table: give its name")
    return _pgarrow.export_incremental(
        url,
        table,
        by,
        _path(state),
        path=None if path is None else _path(path),
        output_dir=None if output_dir is None else _path(output_dir),
        since=since,
        restart=restart,
        late_rows=late_rows,
        format=format,
        options=options,
        storage_options=storage_options,
    )


def export_with_slot(
    url: Optional[str],
    query: Optional[str] = None,
    path: Union[str, os.PathLike[str], None] = None,
    *,
    slot: str,
    slot_plugin: str = "pgoutput",
    table: Optional[str] = None,
    output_dir: Union[str, os.PathLike[str], None] = None,
    format: Optional[FileFormat] = None,
    storage_options: Optional[dict[str, str]] = None,
    **options: Unpack[FileOptions],
) -> SlotExportStats:
    """Creates logical replication slot ``slot`` and exports in the snapshot it exported:
    streaming from the slot (:func:`changes`) then gives exactly the changes after this
    export.

    The role needs REPLICATION, the server ``wal_level = logical``. The manifest (with
    ``output_dir``) records the slot and its LSN.

    Parameters
    ----------
    url, query, table
        As in :func:`export_file`.
    path : str or os.PathLike, optional
        One file, as :func:`export_file` writes it; or
    output_dir : str or os.PathLike, optional
        a directory, as :func:`export_dataset` writes it (one of them).
    slot : str
        The slot to create.
    slot_plugin : str, default "pgoutput"
        Its output plugin.
    format, storage_options, **options
        As in :func:`export_file`.

    Returns
    -------
    dict
        The export's statistics, with ``replication_slot``: its name, ``consistent_point``,
        snapshot and plugin (:class:`pgarrow._typing.SlotExportStats`).

    Raises
    ------
    ConnectError, QueryError, DecodeError, OutputError, UsageError
        As in :func:`export_file`; QueryError also when the slot exists.

    Examples
    --------
    >>> pgarrow.export_with_slot(url, "orders", output_dir="orders/", slot="orders_cdc")
    """
    _no_slot(options, "pgarrow.export_with_slot (slot= names the slot)")
    if (path is None) == (output_dir is None):
        raise UsageError("give a path or output_dir= (one of them)")
    text, is_table = _source(query, table)
    native_options = dict(options, replication_slot=slot, slot_plugin=slot_plugin)
    if path is not None:
        return _pgarrow.export_file(
            url,
            text,
            is_table,
            _path(path),
            format=format,
            options=native_options,
            storage_options=storage_options,
        )
    assert output_dir is not None
    return _pgarrow.export_dir(
        url,
        text,
        is_table,
        _path(output_dir),
        format=format,
        options=native_options,
        storage_options=storage_options,
    )


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"{old} is deprecated and goes in the next release: call {new} instead",
        DeprecationWarning,
        stacklevel=3,
    )


def export(
    url: Optional[str],
    query_or_table: Optional[str] = None,
    path: Union[str, os.PathLike[str], None] = None,
    format: Optional[FileFormat] = None,
    *,
    table: Union[str, list[str], None] = None,
    schema: Union[str, list[str], None] = None,
    output_dir: Union[str, os.PathLike[str], None] = None,
    storage_options: Optional[dict[str, str]] = None,
    incremental_by: Optional[str] = None,
    state: Union[str, os.PathLike[str], None] = None,
    since: Optional[str] = None,
    restart: bool = False,
    late_rows: LateRows = "auto",
    **options: Any,
) -> dict[str, Any]:
    """Deprecated: one function per kind of export replaces it.

    .. deprecated::
        Call :func:`export_file` (a path), :func:`export_dataset` (``output_dir=``),
        :func:`export_tables` (``table=`` / ``schema=`` patterns), :func:`export_incremental`
        (``incremental_by=``, now ``by=``) or :func:`export_with_slot`
        (``replication_slot=``, now ``slot=``). Each call warns (``DeprecationWarning``),
        naming the function to call, and goes to it; the results are the same.

    Parameters
    ----------
    url, query_or_table, path, format, table, schema, output_dir, storage_options
        As the new functions take them.
    incremental_by, state, since, restart, late_rows
        As :func:`export_incremental` takes them (``incremental_by`` is its ``by``).
    **options
        As :func:`export_file` takes them, with ``replication_slot`` and ``slot_plugin``
        (:func:`export_with_slot`'s ``slot`` and ``slot_plugin``).

    Returns
    -------
    dict
        The new function's statistics.

    Raises
    ------
    UsageError
        Arguments of different kinds of export mixed.
    """
    slot = options.pop("replication_slot", None)
    slot_plugin = options.pop("slot_plugin", None)
    if incremental_by is not None or state is not None:
        if incremental_by is None or state is None:
            raise UsageError("incremental_by= and state= go together")
        if query_or_table is None:
            raise UsageError("an incremental run reads a table: give its name")
        if table is not None or schema is not None:
            raise UsageError("an incremental run reads one table, not table= / schema= patterns")
        if slot is not None or slot_plugin is not None:
            raise UsageError(
                "replication_slot= hands a whole export off to replication; an incremental run "
                "follows a cursor: one or the other"
            )
        _deprecated(
            "pgarrow.export(incremental_by=...)",
            "pgarrow.export_incremental(url, table, by=..., state=...)",
        )
        return export_incremental(
            url,
            query_or_table,
            by=incremental_by,
            state=state,
            path=path,
            output_dir=output_dir,
            since=since,
            restart=restart,
            late_rows=late_rows,
            format=format,
            storage_options=storage_options,
            **options,
        )
    if since is not None or restart or late_rows != "auto":
        raise UsageError("since=, restart= and late_rows= are options of incremental_by=")

    if table is not None or schema is not None:
        if query_or_table is not None or path is not None:
            raise UsageError("table= and schema= patterns go to output_dir=, without a query or path")
        if output_dir is None:
            raise UsageError("several tables (table= or schema= patterns) go to output_dir=")
        # (A slot given with patterns was never created: the tables' export has no slot.)
        _deprecated(
            "pgarrow.export(table=/schema= patterns)",
            "pgarrow.export_tables(url, output_dir, table=..., schema=...)",
        )
        return export_tables(
            url,
            output_dir,
            table=table,
            schema=schema,
            format=format,
            storage_options=storage_options,
            **options,
        )
    if query_or_table is None:
        raise UsageError("give a query or table, or table= / schema= patterns")
    if output_dir is not None and path is not None:
        raise UsageError("give a path or output_dir=, not both")
    if output_dir is None and path is None:
        raise UsageError("give a path to write, or output_dir=")
    if slot is not None or slot_plugin is not None:
        if slot is None:
            raise UsageError("slot_plugin goes with replication_slot (the slot to create)")
        _deprecated(
            "pgarrow.export(replication_slot=...)",
            "pgarrow.export_with_slot(url, query, path, slot=...)",
        )
        return export_with_slot(
            url,
            query_or_table,
            path,
            slot=slot,
            slot_plugin=slot_plugin or "pgoutput",
            output_dir=output_dir,
            format=format,
            storage_options=storage_options,
            **options,
        )
    if output_dir is not None:
        _deprecated(
            "pgarrow.export(output_dir=...)",
            "pgarrow.export_dataset(url, query, output_dir)",
        )
        return export_dataset(
            url,
            query_or_table,
            output_dir,
            format=format,
            storage_options=storage_options,
            **options,
        )
    _deprecated("pgarrow.export(url, query, path)", "pgarrow.export_file(url, query, path)")
    return export_file(
        url, query_or_table, path, format=format, storage_options=storage_options, **options
    )


def schema(
    url: Optional[str] = None,
    query: Optional[str] = None,
    *,
    table: Optional[str] = None,
    **options: Unpack[ReadOptions],
) -> pyarrow.Schema:
    """The Arrow schema an export would produce, without running the query.

    The query is described, and the catalog read for its column types; the type policies
    apply.

    Parameters
    ----------
    url, query, table, **options
        As in :func:`read_batches`.

    Returns
    -------
    pyarrow.Schema

    Raises
    ------
    ConnectError, QueryError, UsageError
        As in :func:`read_batches`.
    """
    pa = _pyarrow()
    text, is_table = _source(query, table)
    capsule = _pgarrow.schema(url, text, is_table, options)
    return pa.Schema._import_from_c_capsule(capsule)


def _key(key: Union[str, list[str], None]) -> Optional[list[str]]:
    if isinstance(key, str):
        return [k.strip() for k in key.split(",")]
    return key


def write(
    url: Optional[str],
    table: str,
    data: Any = None,
    mode: LoadMode = "append",
    *,
    delta: Optional[str] = None,
    iceberg: Optional[str] = None,
    ducklake: Optional[str] = None,
    lake_table: Optional[str] = None,
    catalog_name: Optional[str] = None,
    key: Union[str, list[str], None] = None,
    create: bool = False,
    create_nested: CreateNested = "json",
    batch_rows: Optional[int] = None,
    storage_options: Optional[dict[str, str]] = None,
    nanoseconds: Nanoseconds = "error",
) -> LoadStats:
    """Loads ``data`` into ``table`` with binary COPY, in one transaction: any failure, Ctrl-C
    included, leaves the table as it was.

    ``table`` is ``name`` or ``schema.name``, read as SQL reads it: unquoted names fold to
    lower case, ``'"Orders"'`` keeps its case. A name without its schema is never a temporary
    table: it means the first schema of the search path (less ``pg_temp``) that has the
    table, and ``create=True`` makes it in the first; ``pg_temp.name`` names the temporary
    table. The data's columns go into the table's columns of the same names (the others get
    their defaults); every value is converted exactly or refused with its column, its row and
    the value (see the book's "Loading into PostgreSQL", docs/src/loading.md).

    Parameters
    ----------
    url : str, optional
        As in :func:`read_batches`.
    table : str
        The target table.
    data : Arrow data, str, os.PathLike or list of them
        Anything with ``__arrow_c_stream__`` (a pyarrow Table or RecordBatchReader, a polars
        DataFrame, a DuckDB result, ...), or files: a path or a list of paths (Parquet, Arrow
        IPC file or stream, by extension, as ``pgarrow import`` reads them), or one directory
        written by an export (exactly the files its ``_manifest.json`` lists, each checked
        against its row count). Paths may be object URLs (``s3://bucket/orders.parquet``, a
        pattern such as ``s3://bucket/orders/*.parquet``, or a prefix with a manifest), read
        in place by ranges. ``None`` with ``delta``.
    mode : {"append", "replace", "upsert"}, default "append"
        Add the rows; TRUNCATE first, in the same transaction; or insert new keys and update
        the others.
    key : str or list of str, optional
        The upsert's key: the columns of a unique index (``"id"``, ``"a,b"``, ``["a", "b"]``).
    delta : str, optional
        Instead of ``data``: the Delta Lake table at this location (a directory or an object
        URL), its current version, whoever wrote it, with its partition values as columns (as
        ``pgarrow import --delta``; its deletion vectors applied).
    iceberg, lake_table, catalog_name : str, optional
        Instead of ``data``: the Apache Iceberg table ``lake_table`` (``namespace.name``) of
        the SQL catalog in the PostgreSQL database at ``iceberg`` (its name in it
        ``catalog_name``, default ``"default"``), its current snapshot, whoever wrote it (as
        ``pgarrow import --iceberg``; a snapshot with delete files is refused).
    ducklake : str, optional
        Instead of ``data``: the DuckLake table ``lake_table`` (``schema.name``, schema
        ``main`` by default) whose catalog is the PostgreSQL database at ``ducklake``, its
        current snapshot, whoever wrote it (as ``pgarrow import --ducklake``): its files
        with their deletes applied, read as the table's current columns, and the rows DuckDB
        inlined into the catalog (of a list, struct or map column: refused, flush them to
        files first).
    create : bool, default False
        Create a missing table from the schema, with the PostgreSQL types pgarrow's field
        metadata names where they exist.
    create_nested : {"json", "typed"}, default "json"
        What ``create`` makes of a nested field without that metadata (a Struct, a Map, a
        list of them, as Spark or DuckDB write them): ``jsonb``, or a composite type made for
        each Struct (``<table>_<column>``) and ``hstore`` for a Map of text to text (the
        extension must be installed).
    batch_rows : int, optional
        The rows per batch read from Parquet.
    storage_options : dict of str to str, optional
        As in :func:`export_file`.
    nanoseconds : {"error", "round"}, default "error"
        Nanoseconds that are not whole microseconds (PostgreSQL keeps microseconds): refused,
        naming row and column; or rounded half to even, as PostgreSQL rounds its input
        (counted under ``losses``).

    Returns
    -------
    dict
        The statistics (:class:`pgarrow._typing.LoadStats`): rows, bytes (of COPY data),
        seconds (total_s, connect_s, describe_s, read_s, encode_s, send_s, commit_s; reading
        and encoding overlap sending), and ``losses``: the values a policy converted, per
        column and kind.

    Raises
    ------
    ConnectError, QueryError
        Connecting or loading failed (the table is as it was).
    UsageError
        A bad mode, key, choice or input, before anything is loaded.
    TypeError
        ``data`` is neither Arrow data nor paths.

    Examples
    --------
    >>> pgarrow.write(url, "orders", table, mode="upsert", key=["id"])
    >>> pgarrow.write(url, "orders", "orders/")  # a directory an export wrote
    >>> pgarrow.write(url, "orders", delta="s3://bucket/lake/orders", create=True)
    """
    return _pgarrow.write(
        url,
        table,
        data,
        mode=mode,
        key=_key(key),
        create=create,
        create_nested=create_nested,
        batch_rows=batch_rows,
        storage_options=storage_options,
        nanoseconds=nanoseconds,
        delta=delta,
        iceberg=iceberg,
        ducklake=ducklake,
        lake_table=lake_table,
        catalog_name=catalog_name,
    )


def copy(
    url: Optional[str],
    query_or_table: str,
    to: Optional[str] = None,
    into: Optional[str] = None,
    mode: LoadMode = "append",
    *,
    key: Union[str, list[str], None] = None,
    create: bool = False,
    create_nested: CreateNested = "json",
    domains: Domains = "define",
    **options: Unpack[ReadOptions],
) -> CopyStats:
    """Copies a query or table of one PostgreSQL into a table of another, as ``pgarrow copy``.

    The source is read with binary COPY (over ``partitions=N`` connections in one snapshot,
    if given) while the target loads it, in one transaction of the target; any failure
    leaves the target as it was and cancels the source's query.

    Parameters
    ----------
    url : str, optional
        The source's connection, as in :func:`read_batches`.
    query_or_table : str
        SQL, or a table name.
    to : str, optional
        The target's connection; by default the source's server.
    into : str, optional
        The target table; by default the source table's name (required for a query).
    mode, key, create, create_nested
        As in :func:`write`. With ``create``, the enums, composite types, ranges and domains
        the columns need and the target lacks are created there as the source defines them
        (listed under ``created_types``).
    domains : {"define", "base"}, default "define"
        A domain comes with its DEFAULT and CHECKs, after the functions and sequences they
        name; or such columns get the domain's base type instead (listed under
        ``domains_as_base``).
    **options
        The read options of :func:`read_batches`. Arrays come as the server's text unless
        ``array_shape`` is given (their bounds and depths then arrive exactly).

    Returns
    -------
    dict
        The load's statistics, with the source's export statistics under ``source``
        (:class:`pgarrow._typing.CopyStats`).

    Raises
    ------
    ConnectError, QueryError, DecodeError, UsageError
        As in :func:`read_batches` and :func:`write`.

    Examples
    --------
    >>> pgarrow.copy(url, "orders", "postgresql://user@host/other", create=True)
    """
    text, is_table = _source(query_or_table, None)
    if into is None:
        if not is_table:
            raise UsageError("copying a query needs into=: the target table")
        into = text
    return _pgarrow.copy(
        url,
        text,
        to,
        into,
        is_table=is_table,
        mode=mode,
        key=_key(key),
        create=create,
        create_nested=create_nested,
        domains=domains,
        options=options,
    )


class ChangeBatch(tuple):
    """Changed rows of one table: ``(table, batch)``, a named pair. ``table`` is the quoted,
    schema-qualified name (``"public"."orders"``); ``batch`` a ``pyarrow.RecordBatch`` of the
    table's columns, then ``_op``, ``_lsn``, ``_commit_lsn``, ``_commit_time``, ``_xid``,
    ``_unchanged`` and ``_old`` (see the book's "Change data capture", docs/src/changes.md).

    Attributes
    ----------
    table : str
        The quoted, schema-qualified name.
    batch : pyarrow.RecordBatch
        The rows and their change columns.
    """

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

    Attributes
    ----------
    checkpoint : str or None
        The WAL position every change delivered so far reaches, after a transaction boundary.
    schema_changes : list of (str, str)
        ``(table, lsn)`` for each table whose columns changed mid-stream.

    See Also
    --------
    changes : makes one.
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
        """Tells the slot that the changes up to ``lsn`` are durable: it moves there.

        Parameters
        ----------
        lsn : str, optional
            A checkpoint; by default :attr:`checkpoint` (nothing when there is none yet).

        Raises
        ------
        UsageError
            A malformed LSN, or the stream is closed.
        """
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
    values: Values = "auto",
    start: Optional[str] = None,
    batch_rows: Optional[int] = None,
    flush_interval: float = 1.0,
) -> Changes:
    """Streams a logical replication slot's changes (plugin pgoutput), as
    ``ChangeBatch(table, pyarrow.RecordBatch)`` items with the export's types.

    Parameters
    ----------
    url : str, optional
        As in :func:`read_batches`.
    slot : str
        The slot.
    publication : str or list of str
        The publications whose tables to stream.
    create_slot : bool, default False
        Make the slot when it does not exist (its changes start now).
    catch_up : bool, default False
        End the iteration once every change committed before the call was delivered (else
        it streams until closed).
    values : {"auto", "binary", "text"}, default "auto"
        Binary on PostgreSQL 14+ unless a published column has no binary decoder; binary; or
        text.
    start : str, optional
        Skip transactions committed before this WAL position (``"16/B374D848"``).
    batch_rows : int, optional
        The most rows of a batch.
    flush_interval : float, default 1.0
        Seconds rows may wait for a checkpoint.

    Returns
    -------
    Changes

    Raises
    ------
    ConnectError, QueryError, DecodeError
        Connecting or streaming failed.
    UsageError
        A missing slot or publication, a bad option.

    Examples
    --------
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
    format: Optional[ChangesFormat] = None,
    create_slot: bool = False,
    catch_up: bool = False,
    values: Values = "auto",
    start: Optional[str] = None,
    roll_rows: int = 1_000_000,
    roll_bytes: int = 128 << 20,
    roll_seconds: float = 60.0,
    storage_options: Optional[dict[str, str]] = None,
    to: Optional[ChangesFormat] = None,
) -> ChangesStats:
    """Streams a slot's changes into file sets under ``output``, as ``pgarrow changes -o``.

    One directory per table, files named by LSN range, each written atomically, and
    ``_changes.json`` listing them. The slot moves only once the files are durable, and a
    later call resumes exactly where this one ended. Rolls come at the first transaction end
    after ``roll_rows`` rows or ``roll_seconds``, or once ``roll_bytes`` are buffered.

    Parameters
    ----------
    url : str, optional
        As in :func:`read_batches`.
    output : str or os.PathLike
        A directory, or an object URL such as ``s3://bucket/changes/``.
    slot, publication, create_slot, values, start
        As in :func:`changes`.
    format : {"parquet", "arrow"}, optional
        The files' format; Parquet by default.
    catch_up : bool, default False
        Return once every change committed before the call is written; otherwise run until
        Ctrl-C, which ends it at a transaction boundary after a last roll (then
        KeyboardInterrupt).
    roll_rows : int, default 1_000_000
    roll_bytes : int, default 128 MiB
    roll_seconds : float, default 60.0
        When files roll.
    storage_options : dict of str to str, optional
        As in :func:`export_file`.
    to : {"parquet", "arrow"}, optional
        Deprecated: ``format``.

    Returns
    -------
    dict
        ``start_lsn``, ``end_lsn``, ``rows``, ``files``, ``bytes``, ``tables``,
        ``schema_changes`` (:class:`pgarrow._typing.ChangesStats`).

    Raises
    ------
    ConnectError, QueryError, DecodeError, OutputError, UsageError
        As in :func:`changes` and :func:`export_file`.
    """
    if output is None:
        raise UsageError("changes_to needs an output directory or object URL")
    if to is not None:
        if format is not None:
            raise UsageError("give format= (to= is its old name), not both")
        _deprecated("pgarrow.changes_to(to=...)", "pgarrow.changes_to(format=...)")
        format = to
    pubs = [publication] if isinstance(publication, str) else list(publication)
    return _pgarrow.changes_to(
        url,
        os.fspath(output),
        slot,
        pubs,
        format=format,
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
    nanoseconds: Nanoseconds = "error",
    storage_options: Optional[dict[str, str]] = None,
    ducklake: Optional[str] = None,
    delta: Optional[str] = None,
    iceberg: Optional[str] = None,
    lake_table: Optional[str] = None,
    catalog_name: Optional[str] = None,
    deletes: DeleteMode = "merge-on-read",
) -> ApplyStats:
    """Applies a changes directory (as :func:`changes_to` and ``pgarrow changes`` write it) to
    the tables of ``url``'s database, by key, as ``pgarrow apply``: each roll in one
    transaction, each once.

    A table ``pgarrow_applied_changes`` (``state_table``) records, per slot, the checkpoint the
    target has every change up to, so a later call applies only what came since. Ctrl-C rolls
    back the roll under way (then KeyboardInterrupt); a later call goes on from there.

    Parameters
    ----------
    url : str, optional
        The target's connection, as in :func:`read_batches`.
    path : str or os.PathLike
        The changes directory, or an object URL.
    tables : dict of str to str, optional
        A source table to another target (``{"orders": "archive.orders"}``); a table not
        named goes to the table of its own name.
    keys : dict of str to str or list of str, optional
        A target's key columns (``{"archive.orders": ["order_id", "line"]}``, or
        ``"order_id,line"``); a target not named is keyed by its primary key, else its
        replica identity index.
    state_table : str, optional
        The state table; ``pgarrow_applied_changes`` by default.
    nanoseconds : {"error", "round"}, default "error"
        As in :func:`write`.
    storage_options : dict of str to str, optional
        As in :func:`export_file`.
    ducklake, delta, iceberg, lake_table, catalog_name : str, optional
        Apply to lake tables instead (``url`` is then not used), as :func:`compact_lake` names
        them; ``lake_table`` is optional for the changes of one table (its own name), and
        several tables go each into the lake table of its own schema and name (Delta:
        ``delta/schema.name``). Each table's changes of a roll are one commit recording the
        slot and the checkpoint, as a mirror's: a later call goes on from what each table
        holds. The lake table must record the slot: export it in the slot's snapshot first
        (``pgarrow export --replication-slot SLOT --create-slot --delta ...``). ``keys``
        then name source tables' keys, for files that do not (changes files record their
        replica identity's columns).
    deletes : {"merge-on-read", "copy-on-write"}, default "merge-on-read"
        How the lake tables' commits take rows out of their files, as in :func:`mirror`.

    Returns
    -------
    dict
        ``slot``, ``rolls``, ``rolls_skipped``, ``files``, ``changes``, ``upserted``,
        ``deleted``, ``truncates``, ``checkpoint_lsn``, ``tables``, ``total_s``
        (:class:`pgarrow._typing.ApplyStats`).

    Raises
    ------
    ConnectError, QueryError, UsageError
        Connecting or applying failed (the roll under way is rolled back), or a bad option.
    """
    if path is None:
        raise UsageError("apply_changes needs the changes directory or object URL")
    lake = any(x is not None for x in (ducklake, delta, iceberg))
    if deletes != "merge-on-read" and not lake:
        raise UsageError("deletes= is how a lake table takes deletes: PostgreSQL deletes its rows itself")
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
        ducklake=ducklake,
        delta=delta,
        iceberg=iceberg,
        lake_table=lake_table,
        catalog_name=catalog_name,
        deletes=deletes,
    )


def mirror(
    url: Optional[str] = None,
    *,
    table: Union[str, list[str], None] = None,
    schema: Union[str, list[str], None] = None,
    ducklake: Optional[str] = None,
    delta: Optional[str] = None,
    iceberg: Optional[str] = None,
    slot: str,
    data_path: Optional[str] = None,
    lake_table: Optional[str] = None,
    warehouse: Optional[str] = None,
    catalog_name: Optional[str] = None,
    publication: Optional[str] = None,
    commit_interval: float = 10.0,
    commit_changes: int = 100_000,
    catch_up: bool = False,
    start_over: bool = False,
    failover: bool = False,
    reexport: bool = True,
    deletes: DeleteMode = "merge-on-read",
    storage_options: Optional[dict[str, str]] = None,
    **options: Unpack[FileOptions],
) -> MirrorStats:
    """Keeps DuckLake, Delta or Iceberg tables equal to PostgreSQL tables, as ``pgarrow mirror``: the
    first call makes replication slot ``slot`` (and a publication of its name, unless
    ``publication`` names one) and exports the tables into lake tables in its snapshot; then
    every call commits the slot's changes at transaction boundaries, every ``commit_interval``
    seconds or ``commit_changes`` changes, each commit recording the WAL position it reaches,
    until caught up (``catch_up=True``, for a scheduled job) or interrupted (Ctrl-C: after a
    last commit at a transaction boundary). A later call goes on from the position the tables
    record: no change is lost or applied twice, whenever a call was stopped or killed.

    Updates and deletes are written as DuckLake delete files, Delta deletion vectors or Iceberg
    position delete files (or, with ``deletes="copy-on-write"``, by writing each file that
    loses rows again without them), by the table's primary key (or replica identity index; under
    ``REPLICA IDENTITY FULL`` without a key, by all the row's values); a value an update left
    unchanged (a TOASTed one) is taken from the lake table's row. A schema change the lake
    table cannot take in place (a column added with a default, a rename) exports that table
    again in a new snapshot (``reexport``). See the book's "Mirrors" (docs/src/mirror.md).

    Parameters
    ----------
    url : str, optional
        The source, as in :func:`read_batches` (a role with the REPLICATION attribute, on a
        server with ``wal_level = logical``, PostgreSQL 14 or later).
    table, schema : str or list of str
        The tables: ``table`` patterns and ``schema`` patterns, as :func:`export_tables`
        reads them. Several tables go into lake tables of their own schema and name.
    ducklake : str, optional
        The PostgreSQL database of the DuckLake catalog (one without a catalog gets one, with
        ``data_path``).
    delta : str, optional
        Instead of ``ducklake``: the Delta table's location, a directory or an object URL
        (several tables: each at ``schema.name`` under it).
    iceberg : str, optional
        Instead of ``ducklake``: the PostgreSQL database of the Iceberg SQL catalog
        (``catalog_name``, default ``"default"``); a new table goes under ``warehouse``, in
        namespace ``default`` unless ``lake_table`` names one.
    slot : str
        The logical replication slot.
    data_path : str, optional
        Where a new catalog keeps its files: a directory or an object URL.
    lake_table : str, optional
        One table's lake table, ``"[schema.]name"`` (default: its own name in schema
        ``main``).
    publication : str, optional
        The publication to read; by default one named as the slot, made when missing.
    commit_interval, commit_changes
        A commit at the first transaction boundary after this many seconds, or this many
        changes.
    catch_up : bool, default False
        Return once every change committed before the call is in the tables.
    start_over : bool, default False
        Drop the slot if it exists and export every table anew in a new one's snapshot (after
        the slot was invalidated, say).
    failover : bool, default False
        Make the slot a failover slot (PostgreSQL 17).
    reexport : bool, default True
        At a schema change a lake table cannot take in place (a column added with a default,
        a renamed column, a column dropped from a Delta table), export that table again in a
        new snapshot, replacing its rows in one commit, and go on; ``False`` stops instead.
    deletes : {"merge-on-read", "copy-on-write"}, default "merge-on-read"
        How commits take rows out of the lake tables' files: ``"merge-on-read"`` records the
        deleted positions beside the files (a commit writes little); ``"copy-on-write"``
        writes each file that loses rows again without them, in the same commit, so that the
        tables hold data files only, for readers that read neither deletion vectors nor
        delete files (a commit then costs the rewritten files' size).
    storage_options : dict of str to str, optional
        As in :func:`export_file`, for an object-store data path.
    **options
        As in :func:`export_file`, for the first export and the types of the changes.

    Returns
    -------
    dict
        The statistics (:class:`pgarrow._typing.MirrorStats`).

    Raises
    ------
    ConnectError, QueryError, UsageError
        A table without a key (nor ``REPLICA IDENTITY FULL``), a slot that was invalidated or
        dropped, a schema change no export again can take (the key's columns dropped; any with
        ``reexport=False``): each said so, with what to do. The tables are as their last commit
        left them.
    """
    patterns, schemas = _patterns(table), _patterns(schema)
    if not (patterns or schemas):
        raise UsageError("give table= or schema= patterns")
    if sum(x is not None for x in (ducklake, delta, iceberg)) != 1:
        raise UsageError("name the lake table: ducklake= (a catalog), delta= (a location) or iceberg= (a catalog)")
    return _pgarrow.mirror(
        url,
        patterns,
        schemas,
        catalog=ducklake,
        delta=delta,
        iceberg=iceberg,
        warehouse=warehouse,
        catalog_name=catalog_name,
        data_path=data_path,
        lake_table=lake_table,
        slot=slot,
        publication=publication,
        commit_interval=float(commit_interval),
        commit_changes=int(commit_changes),
        catch_up=catch_up,
        start_over=start_over,
        failover=failover,
        reexport=reexport,
        deletes=deletes,
        options=options,
        storage_options=storage_options,
    )




def compact_lake(
    *,
    ducklake: Optional[str] = None,
    delta: Optional[str] = None,
    iceberg: Optional[str] = None,
    lake_table: Optional[str] = None,
    catalog_name: Optional[str] = None,
    target_file_bytes: int = 128 << 20,
    retries: int = 10,
    storage_options: Optional[dict[str, str]] = None,
) -> CompactStats:
    """Compacts a lake table, as ``pgarrow lake compact``: its files with deleted rows, and its
    files under three quarters of ``target_file_bytes``, are rewritten into files of that size,
    in one commit that ends the old files and their delete files (the rows read a file at a
    time as the new files are written). Readers see the
    same rows before and after; a mirror's position is carried on. Safe beside a running
    mirror: when it commits first, compaction reads the table again and tries anew
    (``retries``), then steps aside (``stepped_aside`` in the result).

    Parameters
    ----------
    ducklake, iceberg : str, optional
        The PostgreSQL database of the DuckLake catalog, or of the Iceberg SQL catalog
        (``catalog_name``), with ``lake_table`` (``"[schema.]name"``; schema ``main``,
        namespace ``default`` by default).
    delta : str, optional
        Instead: the Delta table's location, a directory or an object URL.
    target_file_bytes : int, default 128 MiB
        The files' size.
    retries : int, default 10
        Commits begun again after another writer committed first.
    storage_options : dict of str to str, optional
        As in :func:`export_file`.

    Returns
    -------
    dict
        The statistics (:class:`pgarrow._typing.CompactStats`).
    """
    return _pgarrow.compact_lake(
        ducklake=ducklake,
        delta=delta,
        iceberg=iceberg,
        lake_table=lake_table,
        catalog_name=catalog_name,
        target_file_bytes=int(target_file_bytes),
        retries=int(retries),
        older_than=None,
        dry_run=None,
        storage_options=storage_options,
    )


def expire_lake(
    *,
    ducklake: Optional[str] = None,
    delta: Optional[str] = None,
    iceberg: Optional[str] = None,
    lake_table: Optional[str] = None,
    catalog_name: Optional[str] = None,
    older_than: float = 7 * 86400.0,
    dry_run: bool = False,
    storage_options: Optional[dict[str, str]] = None,
) -> ExpireStats:
    """Expires a lake table's old snapshots, as ``pgarrow lake expire``: the snapshots older
    than ``older_than`` seconds go (never the newest, nor the commit holding a mirror's
    position), and the files no snapshot left holds are removed. Iceberg: its snapshots and
    the manifests, data and delete files only they reached. Delta: its log versions before
    the newest checkpoint (written first when the newest version has none), and the files its
    removes tombstoned (VACUUM). DuckLake: the catalog's snapshots (they are the whole
    lake's) and the files only they held. Safe beside a running mirror.

    Parameters
    ----------
    ducklake, delta, iceberg, lake_table, catalog_name, storage_options
        The lake table, as in :func:`compact_lake`.
    older_than : float, default 7 days
        The retention, in seconds (0: every snapshot but the newest).
    dry_run : bool, default False
        Report what would go, and change nothing.

    Returns
    -------
    dict
        The statistics (:class:`pgarrow._typing.ExpireStats`).
    """
    return _pgarrow.expire_lake(
        ducklake=ducklake,
        delta=delta,
        iceberg=iceberg,
        lake_table=lake_table,
        catalog_name=catalog_name,
        target_file_bytes=None,
        retries=None,
        older_than=float(older_than),
        dry_run=dry_run,
        storage_options=storage_options,
    )