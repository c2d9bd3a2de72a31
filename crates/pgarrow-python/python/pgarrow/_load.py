"""Loading into PostgreSQL: Arrow data, files or a lake table into a table (``write``), and a
query or table of one server into a table of another (``copy``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

from . import _pgarrow
from ._errors import UsageError
from ._typing import CopyStats, CreateNested, Domains, LoadMode, LoadStats, Nanoseconds, ReadOptions
from ._utils import _properties, _source

if TYPE_CHECKING:
    from typing_extensions import Unpack


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
    iceberg_properties: Optional[Mapping[str, str]] = None,
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
        ``catalog_name``, default ``"default"``), or of the REST catalog at ``iceberg``
        (``http(s)://...``, with ``iceberg_properties``), its current snapshot, whoever wrote
        it (as ``pgarrow import --iceberg``; a snapshot with delete files is refused).
    iceberg_properties : mapping of str to str, optional
        The REST catalog's properties, as in :func:`export_iceberg`.
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
        iceberg_properties=_properties(iceberg_properties),
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
