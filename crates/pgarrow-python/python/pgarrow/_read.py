"""Reading a query or table into Arrow: batches as they come, a pyarrow Table, a polars or
pandas DataFrame, or only the schema an export would produce."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Optional

from . import _pgarrow
from ._typing import ReadOptions
from ._utils import _pyarrow, _source

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow
    from typing_extensions import Unpack


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
