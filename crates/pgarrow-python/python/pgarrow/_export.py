"""Exports into files: one file, a directory of parts, several tables in one snapshot, an
incremental run, an export handed off to a new replication slot; and the deprecated
``export`` that did all of them by its arguments."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union, cast

from . import _pgarrow
from ._errors import UsageError
from ._typing import (
    FileFormat,
    FileOptions,
    IncrementalStats,
    LateRows,
    PartitionedStats,
    SlotExportStats,
    TablesOptions,
    TablesStats,
)
from ._utils import _deprecated, _path, _patterns, _source

if TYPE_CHECKING:
    from typing_extensions import Unpack


_SLOT_OPTIONS = ("replication_slot", "slot_plugin")


def _no_slot(options: Mapping[str, Any], function: str) -> None:
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
        stats = _pgarrow.export_file(
            url,
            text,
            is_table,
            _path(path),
            format=format,
            options=native_options,
            storage_options=storage_options,
        )
    else:
        assert output_dir is not None
        stats = _pgarrow.export_dir(
            url,
            text,
            is_table,
            _path(output_dir),
            format=format,
            options=native_options,
            storage_options=storage_options,
        )
    # With a slot, the statistics carry it.
    return cast(SlotExportStats, stats)


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
) -> Union[PartitionedStats, TablesStats, IncrementalStats, SlotExportStats]:
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
            raise UsageError(
                "table= and schema= patterns go to output_dir=, without a query or path"
            )
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
