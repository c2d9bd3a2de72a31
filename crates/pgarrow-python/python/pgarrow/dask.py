"""pgarrow as Dask's PostgreSQL reader: one partition per part of one snapshot, pyarrow-backed.

::

    import pgarrow.dask
    df = pgarrow.dask.read_postgres("postgresql://app@db/shop", "orders", partitions=8)
    df[["customer", "total"]].groupby("customer").sum().compute()   # reads only those columns

The plan is made by ``read_postgres`` (Dask needs the partitions to build its graph) and held
by pgarrow's detached holder (see :func:`pgarrow.plan`) while the partitions are read: until
``linger`` seconds after every part was read with none read since, or ``hold_timeout``
seconds without any part starting or finishing. A computation after that fails with a
``pgarrow.QueryError`` saying the snapshot is gone: call ``read_postgres`` again (a new
snapshot), or pass ``plan=`` a plan you hold (``with pgarrow.plan(...) as plan:``) for as
long as you compute.

Columns are pyarrow-backed (``pd.ArrowDtype``: exact decimals, timestamps past 2262, lists
and structs as they are). The columns a computation uses are pushed into each part's query
(``SELECT a, b FROM (part)``), through ``dask.dataframe.from_map``'s column projection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import dask.dataframe as dd
import pandas as pd
import pyarrow as pa

import pgarrow

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._typing import TypeOptions

__all__ = ["read_postgres"]


def _frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=pd.ArrowDtype)


class _ReadPart:
    """Reads one part (the callable of ``from_map``; ``columns`` is Dask's projection)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("pgarrow.dask._ReadPart", self.schema.to_string(show_schema_metadata=True))

    def __call__(self, part: pgarrow.Part, columns: Optional[Sequence[str]] = None) -> pd.DataFrame:
        names = None if columns is None else list(columns)
        if names is not None and not names:
            # Only the number of rows is needed (len(df)): read one narrow column.
            table = part.read_arrow(columns=[self.schema.field(0).name])
            return _frame(table).iloc[:, 0:0]
        return _frame(part.read_arrow(columns=names))


def read_postgres(
    url: Optional[str] = None,
    query: Optional[str] = None,
    *,
    table: Optional[str] = None,
    partitions: int = 4,
    partition_by: Optional[str] = None,
    plan: Optional[pgarrow.Plan] = None,
    hold_timeout: float = 600.0,
    linger: float = 30.0,
    **options: Unpack[TypeOptions],
) -> dd.DataFrame:
    """A dask DataFrame of the query or table (a bare name is a table): one partition per
    part of one snapshot (``partitions`` block ranges of a table, or key ranges of
    ``partition_by``), pyarrow-backed dtypes, the columns a computation needs pushed into
    each part's query. ``options`` are the type policies and batch sizes of
    :func:`pgarrow.read_arrow`. With ``plan=``, the parts of that (held) plan; see the
    module's documentation for how long a plan made here is held.

    Parameters
    ----------
    url : str, optional
        The connection URL or ``key=value`` string; by default libpq's environment
        (``PGHOST``, ``PGDATABASE``, ...).
    query : str, optional
        A query, or a table's name (a bare name is a table).
    table : str, optional
        A table's name, read as SQL reads it.
    partitions : int
        How many parts the snapshot is cut into.
    partition_by : str, optional
        A column (integer, date or timestamp) cut into key ranges; required for a query.
    plan : pgarrow.Plan, optional
        The parts of this (held) plan, instead of a plan made here.
    hold_timeout : float
        Seconds a plan made here holds its snapshot at most.
    linger : float
        Seconds the snapshot is held after the last part was read.
    **options
        The type policies and batch sizes of :func:`pgarrow.read_arrow`.

    Returns
    -------
    dask.dataframe.DataFrame
        One partition per part, pyarrow-backed dtypes.

    Raises
    ------
    UsageError
        A query without ``partition_by``, an unknown option.
    QueryError
        The server refused the query or the snapshot.
    """
    if plan is None:
        plan = pgarrow.plan(
            url,
            query,
            table=table,
            partitions=partitions,
            partition_by=partition_by,
            detached=True,
            hold_timeout=hold_timeout,
            linger=linger,
            **options,
        )
    schema = plan.schema
    meta = _frame(schema.empty_table())
    return dd.from_map(
        _ReadPart(schema),
        plan.parts,
        meta=meta,
        label="read-postgres",
        enforce_metadata=False,
    )
