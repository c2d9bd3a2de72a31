"""Mirrors: lake tables kept equal to PostgreSQL tables by a logical replication slot."""

from __future__ import annotations

import datetime
import os
from typing import TYPE_CHECKING, Mapping, Optional, Union, cast

from .. import _pgarrow
from .._errors import UsageError
from .._typing import DeleteMode, FileOptions, LakePoint, MirrorStats, MirrorStatus
from .._utils import _patterns, _properties

if TYPE_CHECKING:
    from typing_extensions import Unpack


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
    iceberg_properties: Optional[Mapping[str, str]] = None,
    publication: Optional[str] = None,
    commit_interval: float = 10.0,
    commit_changes: int = 100_000,
    catch_up: bool = False,
    start_over: bool = False,
    failover: bool = False,
    reexport: bool = True,
    deletes: DeleteMode = "merge-on-read",
    spill_dir: Union[str, os.PathLike[str], None] = None,
    retry_for: float = 300.0,
    metrics_listen: Union[str, int, None] = None,
    storage_options: Optional[dict[str, str]] = None,
    **options: Unpack[FileOptions],
) -> MirrorStats:
    """Keeps DuckLake, Delta or Iceberg tables equal to PostgreSQL tables, as ``pgarrow
    mirror``: the first call makes replication slot ``slot`` (and a publication of its name,
    unless ``publication`` names one) and exports the tables into lake tables in its snapshot;
    then every call commits the slot's changes at transaction boundaries, every ``commit_interval``
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
        (``catalog_name``, default ``"default"``), a new table under ``warehouse``; or a REST
        catalog's address (``http(s)://...``), with ``iceberg_properties`` (``warehouse``: the
        catalog's warehouse). A new table goes in namespace ``default`` unless ``lake_table``
        names one.
    iceberg_properties : mapping of str to str, optional
        The REST catalog's properties, as in :func:`export_iceberg`.
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
    spill_dir : str or path, optional
        Where a table's changes past a quarter of ``memory_limit`` are set aside until their
        commit (Arrow IPC files, removed after it); the system's temporary directory by
        default.
    retry_for : float, default 300.0
        Seconds to try through failures that may pass (a connection to the source or the
        catalog cut, an object store or catalog that does not answer) before giving up,
        counted from the first failure since the last commit: the mirror waits a jittered
        backoff and starts again from the tables' commits, every change still exactly once
        (``MirrorStats["restarts"]`` counts them). ``0`` gives up at the first.
    metrics_listen : str or int, optional
        Serve the mirror's figures for Prometheus on ``GET /metrics`` while it runs (the
        source's WAL position, the slot's, each table's last commit, the lag in bytes and
        seconds, commits, rows, retries, spills): a port (on 127.0.0.1 only) or
        ``"HOST:PORT"``.
    storage_options : dict of str to str, optional
        As in :func:`export_file`, for an object-store data path.
    **options
        As in :func:`export_file`, for the first export and the types of the changes;
        ``memory_limit`` (default ``"512MiB"`` for a mirror) also bounds the mirror's
        bookkeeping: its key index in memory and the changes held for a commit (see the
        book's "Memory, disk, and what a run reads").

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
    patterns, schemas = _named(table, schema, ducklake, delta, iceberg)
    done = _pgarrow.mirror(
        url,
        patterns,
        schemas,
        ducklake=ducklake,
        delta=delta,
        iceberg=iceberg,
        iceberg_properties=_properties(iceberg_properties),
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
        spill_dir=None if spill_dir is None else os.fspath(spill_dir),
        retry_for=float(retry_for),
        metrics_listen=None if metrics_listen is None else str(metrics_listen),
        status=False,
        at=None,
        options=options,
        storage_options=storage_options,
    )
    return cast(MirrorStats, done)


def mirror_status(
    url: Optional[str] = None,
    *,
    table: Union[str, list[str], None] = None,
    schema: Union[str, list[str], None] = None,
    ducklake: Optional[str] = None,
    delta: Optional[str] = None,
    iceberg: Optional[str] = None,
    slot: str,
    lake_table: Optional[str] = None,
    catalog_name: Optional[str] = None,
    iceberg_properties: Optional[Mapping[str, str]] = None,
    storage_options: Optional[dict[str, str]] = None,
) -> MirrorStatus:
    """Where the mirror of these tables through ``slot`` is, read without running it, as
    ``pgarrow mirror --status``: the slot on the source (whether a mirror is reading it, what
    it confirmed, how far the server's WAL is past it) and each lake table's recorded position
    and snapshot or version. The arguments name the tables and lake tables as :func:`mirror`'s
    do.

    Returns
    -------
    dict
        :class:`pgarrow._typing.MirrorStatus`.
    """
    done = _read_only(
        url,
        table,
        schema,
        ducklake,
        delta,
        iceberg,
        slot,
        lake_table,
        catalog_name,
        iceberg_properties,
        storage_options,
        status=True,
        at=None,
    )
    return cast(MirrorStatus, done)


def mirror_at(
    url: Optional[str] = None,
    *,
    table: Union[str, list[str], None] = None,
    schema: Union[str, list[str], None] = None,
    ducklake: Optional[str] = None,
    delta: Optional[str] = None,
    iceberg: Optional[str] = None,
    slot: str,
    at: Union[str, datetime.datetime] = "latest",
    lake_table: Optional[str] = None,
    catalog_name: Optional[str] = None,
    iceberg_properties: Optional[Mapping[str, str]] = None,
    storage_options: Optional[dict[str, str]] = None,
) -> LakePoint:
    """The snapshot or version of each lake table of the mirror through ``slot`` that holds the
    source as it was at one point, and the statements that read it there, as
    ``pgarrow mirror --at``, without running the mirror. The arguments name the tables and
    lake tables as :func:`mirror`'s do.

    Parameters
    ----------
    at : str or datetime, default "latest"
        ``"latest"`` (the latest point every table holds whole: what the slot confirmed), a
        WAL position (``"16/B374D848"``), or a time: a ``datetime`` (a naive one is taken in
        the source's time zone) or text the source reads as a ``timestamptz``; the tables are
        then read at the newest position whose transaction committed by then.

    Returns
    -------
    dict
        :class:`pgarrow._typing.LakePoint`: the position read (``lsn``) and, for each table,
        its ``snapshot`` (DuckLake snapshot, Delta version, Iceberg snapshot ID) and ``read``,
        statements by reader (``duckdb``, ``spark``, ``pyiceberg``, ``deltalake``,
        ``polars``).
    """
    text = at.isoformat(sep=" ") if isinstance(at, datetime.datetime) else str(at)
    done = _read_only(
        url,
        table,
        schema,
        ducklake,
        delta,
        iceberg,
        slot,
        lake_table,
        catalog_name,
        iceberg_properties,
        storage_options,
        status=False,
        at=text,
    )
    return cast(LakePoint, done)


def _read_only(
    url: Optional[str],
    table: Union[str, list[str], None],
    schema: Union[str, list[str], None],
    ducklake: Optional[str],
    delta: Optional[str],
    iceberg: Optional[str],
    slot: str,
    lake_table: Optional[str],
    catalog_name: Optional[str],
    iceberg_properties: Optional[Mapping[str, str]],
    storage_options: Optional[dict[str, str]],
    *,
    status: bool,
    at: Optional[str],
) -> Union[MirrorStats, MirrorStatus, LakePoint]:
    """A call of the native ``mirror`` that reads where the mirror is and runs nothing."""
    patterns, schemas = _named(table, schema, ducklake, delta, iceberg)
    return _pgarrow.mirror(
        url,
        patterns,
        schemas,
        ducklake=ducklake,
        delta=delta,
        iceberg=iceberg,
        iceberg_properties=_properties(iceberg_properties),
        warehouse=None,
        catalog_name=catalog_name,
        data_path=None,
        lake_table=lake_table,
        slot=slot,
        publication=None,
        commit_interval=10.0,
        commit_changes=100_000,
        catch_up=False,
        start_over=False,
        failover=False,
        reexport=True,
        deletes="merge-on-read",
        spill_dir=None,
        retry_for=0.0,
        metrics_listen=None,
        status=status,
        at=at,
        options=None,
        storage_options=storage_options,
    )


def _named(
    table: Union[str, list[str], None],
    schema: Union[str, list[str], None],
    ducklake: Optional[str],
    delta: Optional[str],
    iceberg: Optional[str],
) -> tuple[list[str], list[str]]:
    """The table and schema patterns, once the tables and the one lake format are named."""
    patterns, schemas = _patterns(table), _patterns(schema)
    if not (patterns or schemas):
        raise UsageError("give table= or schema= patterns")
    if sum(x is not None for x in (ducklake, delta, iceberg)) != 1:
        raise UsageError(
            "name the lake table: ducklake= (a catalog), delta= (a location) "
            "or iceberg= (a catalog)"
        )
    return patterns, schemas
