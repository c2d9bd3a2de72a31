"""Exports into lake tables (DuckLake, Delta Lake, Apache Iceberg), each one commit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

from .. import _pgarrow
from .._errors import UsageError
from .._typing import DeltaStats, DuckLakeStats, FileOptions, IcebergStats, IfExists, LateRows
from .._utils import _patterns, _properties, _renamed, _source

if TYPE_CHECKING:
    from typing_extensions import Unpack


def _export_lake(
    url: Optional[str],
    query: Optional[str],
    table: Union[str, list[str], None],
    schema: Union[str, list[str], None],
    by: Optional[str],
    since: Optional[str],
    restart: bool,
    options: Mapping[str, Any],
    **args: Any,
) -> Any:
    """The three lake exports' common path: one table or query, or, with a list of ``table``
    patterns or ``schema`` patterns, several tables into lake tables of their own; with ``by``,
    an incremental run of each. The native function takes the public keywords (``ducklake``,
    ``delta`` or ``iceberg``, ``by``); the old ones are mapped by ``_renamed``."""
    if isinstance(table, list) or schema is not None:
        if query is not None:
            raise UsageError("a query goes into one lake table: give table= patterns or a query")
        text, is_table, patterns, schemas = "", True, _patterns(table), _patterns(schema)
        if not (patterns or schemas):
            raise UsageError("give table= or schema= patterns")
    else:
        text, is_table = _source(query, table)
        patterns, schemas = [], []
    if by is None and (since is not None or restart):
        raise UsageError("since= and restart= are options of by= (an incremental run)")
    if by is not None and not is_table:
        raise UsageError("by= (an incremental run) reads one table (table=...), not a query")
    every: dict[str, Any] = dict(
        ducklake=None,
        delta=None,
        iceberg=None,
        iceberg_properties=None,
        lake_table=None,
        catalog_name=None,
        data_path=None,
        warehouse=None,
        checkpoint_interval=None,
    )
    every.update(args)
    return _pgarrow.export_lake(
        url,
        text,
        is_table,
        patterns,
        schemas,
        by=by,
        since=since,
        restart=restart,
        options=options,
        **every,
    )


@_renamed(catalog="ducklake", incremental_by="by")
def export_ducklake(
    url: Optional[str],
    query: Optional[str] = None,
    *,
    ducklake: str,
    table: Union[str, list[str], None] = None,
    schema: Union[str, list[str], None] = None,
    lake_table: Optional[str] = None,
    data_path: Optional[str] = None,
    if_exists: IfExists = "fail",
    by: Optional[str] = None,
    since: Optional[str] = None,
    late_rows: LateRows = "auto",
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
        patterns, or ``schema`` patterns (as :func:`export_tables` reads them). All of them
        are committed in one snapshot of the lake (each statistics' ``committed_together``
        says how many), or none; the statistics are then a list, one per table.
    ducklake : str
        The PostgreSQL database of the DuckLake catalog (a URL or ``key=value`` string), as
        ``pgarrow export --ducklake`` and :func:`mirror` name it; one without a catalog gets
        one (DuckLake 1.0), with ``data_path``. Its old name, ``catalog``, still works for a
        release, with a ``DeprecationWarning``.
    lake_table : str, optional
        ``"[schema.]name"``; by default the exported table's name, in schema ``main``.
    data_path : str, optional
        Where a new catalog keeps its files: a directory or an object URL.
    if_exists : {"fail", "append", "replace"}
        When the table exists: refuse (the default), add the rows, or replace them.
    by : str, optional
        An incremental run of ``table`` by this cursor column (as :func:`export_incremental`'s
        ``by``): what changed since the run whose state the table's last such snapshot
        carries, appended with this run's state in the same snapshot (no state file).
        ``since``, ``late_rows`` and ``restart`` (which replaces the table's rows with a first
        run) as there. Its old name, ``incremental_by``, still works for a release, with a
        ``DeprecationWarning``.
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
        of a type DuckLake cannot hold (named); ``since`` or ``restart`` without ``by``;
        a keyword given with its old name too.
    ConnectError, QueryError, DecodeError, OutputError
        As in :func:`export_file`.

    Examples
    --------
    >>> pgarrow.export_ducklake(url, table="orders", ducklake="postgresql://catalog/lake",
    ...                         data_path="s3://bucket/lake/", partitions=4)
    """
    return _export_lake(
        url,
        query,
        table,
        schema,
        by,
        since,
        restart,
        options,
        ducklake=ducklake,
        lake_table=lake_table,
        data_path=data_path,
        if_exists=if_exists,
        late_rows=late_rows,
        storage_options=storage_options,
    )


@_renamed(location="delta", incremental_by="by")
def export_delta(
    url: Optional[str],
    query: Optional[str] = None,
    *,
    delta: str,
    table: Union[str, list[str], None] = None,
    schema: Union[str, list[str], None] = None,
    if_exists: IfExists = "fail",
    checkpoint_interval: Optional[int] = None,
    by: Optional[str] = None,
    since: Optional[str] = None,
    late_rows: LateRows = "auto",
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
        snapshot, each into a lake table of its own at ``delta/SCHEMA.NAME``: a list of ``table``
        patterns, or ``schema`` patterns (as :func:`export_tables` reads them). Each table is
        its own commit; the statistics are then a list, one per table.
    delta : str
        The table's location, its root: a directory or an object URL (``s3://``, ``gs://``,
        ``az://``), as ``pgarrow export --delta`` and :func:`mirror` name it; made when there
        is no table there. Its old name, ``location``, still works for a release, with a
        ``DeprecationWarning``.
    if_exists : {"fail", "append", "replace"}
        When the table exists: refuse (the default), add the rows, or replace them (and the
        columns) in one version.
    checkpoint_interval : int, optional
        A checkpoint every this many versions (default 10; 0: none), unless the table's
        ``delta.checkpointInterval`` says otherwise.
    by : str, optional
        An incremental run of ``table`` by this cursor column (as :func:`export_incremental`'s
        ``by``): what changed since the run whose state the table's last such commit carries
        (in its ``commitInfo``), appended with this run's state in the same version (no state
        file). ``since``, ``late_rows`` and ``restart`` (which replaces the table's rows with a
        first run) as there. Its old name, ``incremental_by``, still works for a release, with
        a ``DeprecationWarning``.
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
        of a type Delta cannot hold (named); a table feature pgarrow does not write (named);
        ``since`` or ``restart`` without ``by``; a keyword given with its old name too.
    ConnectError, QueryError, DecodeError, OutputError
        As in :func:`export_file`.

    Examples
    --------
    >>> pgarrow.export_delta(url, table="orders", delta="s3://bucket/lake/orders",
    ...                      partition_by=["region"], partitions=4)
    """
    return _export_lake(
        url,
        query,
        table,
        schema,
        by,
        since,
        restart,
        options,
        delta=delta,
        if_exists=if_exists,
        checkpoint_interval=checkpoint_interval,
        late_rows=late_rows,
        storage_options=storage_options,
    )


@_renamed(catalog="iceberg", incremental_by="by")
def export_iceberg(
    url: Optional[str],
    query: Optional[str] = None,
    *,
    iceberg: str,
    table: Union[str, list[str], None] = None,
    schema: Union[str, list[str], None] = None,
    lake_table: Optional[str] = None,
    warehouse: Optional[str] = None,
    catalog_name: Optional[str] = None,
    iceberg_properties: Optional[Mapping[str, str]] = None,
    if_exists: IfExists = "fail",
    by: Optional[str] = None,
    since: Optional[str] = None,
    late_rows: LateRows = "auto",
    restart: bool = False,
    storage_options: Optional[dict[str, str]] = None,
    **options: Unpack[FileOptions],
) -> Union[IcebergStats, list[IcebergStats]]:
    """Exports a query or table into an Apache Iceberg table (format version 2) of the SQL
    catalog in a PostgreSQL database, or of a REST catalog, committed in one snapshot (as
    ``pgarrow export --iceberg``): the Parquet files are written under the table's location
    (over ``partitions`` connections in one snapshot), then a manifest, a manifest list and a
    new metadata file, and one swap of the table's metadata location in the catalog commits
    them, only if no other writer swapped it first (a REST catalog: one commit the server
    checks against the table it holds). Readers (pyiceberg, DuckDB's ``iceberg``
    extension, polars, Spark, Trino) see the table before or after, never between; on any
    failure, Ctrl-C included, the table is as it was and the files are removed. See the book's
    "Lake tables" (docs/src/lake.md).

    Parameters
    ----------
    url, query
        As in :func:`export_file`.
    table, schema : str or list of str, optional
        One ``table`` (as in :func:`export_file`); or several tables, every one read in one
        snapshot, each into a lake table of its own namespace (the source schema's name) and
        name: a list of ``table`` patterns, or ``schema`` patterns (as :func:`export_tables`
        reads them). The tables are committed together, in one transaction of the catalog
        (each statistics' ``committed_together`` says how many); a REST catalog that cannot
        commits each on its own, and ``apart`` says why. The statistics are then a list, one
        per table.
    iceberg : str
        The catalog, as ``pgarrow export --iceberg`` and :func:`mirror` name it: the catalog
        database's URL (``postgresql://...``), the ``iceberg_tables`` layout of pyiceberg's
        ``SqlCatalog`` and Iceberg's JDBC catalog, made when it has none; or a REST catalog's
        address (``http://...`` or ``https://...``, pyiceberg's ``uri``), with
        ``iceberg_properties``. Its old name, ``catalog``, still works for a release, with a
        ``DeprecationWarning``.
    lake_table : str, optional
        The Iceberg table, ``namespace.name`` (default: the exported table's name, in namespace
        ``default``); a missing namespace is made.
    warehouse : str, optional
        Where a new table goes (``<warehouse>/<namespace>.db/<name>``): a directory or an
        object URL. An existing table keeps its own location. A REST catalog's: the
        warehouse the server is asked for (its ``warehouse`` property); the server says where a
        new table goes.
    catalog_name : str, optional
        The catalog's name in the database (default ``"default"``, pyiceberg's
        ``load_catalog()`` name); a REST catalog's: the name whose pyiceberg configuration
        (``~/.pyiceberg.yaml``, ``PYICEBERG_CATALOG__<NAME>__<KEY>`` variables) is read.
    iceberg_properties : mapping of str to str, optional
        A REST catalog's properties, as pyiceberg's ``load_catalog`` takes them
        (``{"credential": "ID:SECRET", "warehouse": "...", "s3.endpoint": "http://..."}``;
        ``token``, ``scope``, ``oauth2-server-uri``, ``prefix``, ``header.NAME``,
        ``ssl.cabundle``, ``s3.*``, ...), over those its pyiceberg configuration gives; a
        ``"uri"`` among them must be ``iceberg``. Only with ``iceberg``; their values are never
        shown (errors name keys).
    if_exists : {"fail", "append", "replace"}
        When the table exists: refuse (the default), add the rows, or replace them in one
        snapshot (as the export's columns; an append adds new columns and widens types as
        Iceberg allows).
    by : str, optional
        An incremental run of ``table`` by this cursor column (as :func:`export_incremental`'s
        ``by``): what changed since the run whose state the table's last commit carries,
        appended with this run's state in the same snapshot (no state file); the first run
        takes the whole table (or from ``since``). ``late_rows`` and ``restart`` (which
        replaces the table's rows with a first run) as there. Its old name,
        ``incremental_by``, still works for a release, with a ``DeprecationWarning``.
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
        The table exists and ``if_exists="fail"``; a new table of an SQL catalog without
        ``warehouse``; its columns are not the export's (named); a column of a type Iceberg
        cannot hold (named); a table of another format version; ``since`` or ``restart``
        without ``by``; ``iceberg_properties`` of an SQL catalog (named by key); a keyword
        given with its old name too.
    ConnectError, QueryError, DecodeError, OutputError
        As in :func:`export_file`.

    Examples
    --------
    >>> pgarrow.export_iceberg(url, table="orders", iceberg="postgresql://localhost/lake",
    ...                        lake_table="sales.orders", warehouse="s3://bucket/warehouse",
    ...                        partition_by=["day(ordered_at)"], partitions=4)
    """
    return _export_lake(
        url,
        query,
        table,
        schema,
        by,
        since,
        restart,
        options,
        iceberg=iceberg,
        iceberg_properties=_properties(iceberg_properties),
        catalog_name=catalog_name,
        lake_table=lake_table,
        warehouse=warehouse,
        if_exists=if_exists,
        late_rows=late_rows,
        storage_options=storage_options,
    )
