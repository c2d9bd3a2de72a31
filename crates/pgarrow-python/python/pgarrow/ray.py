"""pgarrow as Ray Data's PostgreSQL reader: one read task per part of one snapshot.

::

    import pgarrow.ray
    ds = pgarrow.ray.read_postgres("postgresql://app@db/shop", "orders", partitions=8)
    ds.write_parquet("s3://bucket/orders/")

The plan is made when Ray first needs the read tasks (to show the schema, to count, or to
execute), held by pgarrow's detached holder (see :func:`pgarrow.plan`), and reused by the
Dataset's executions while it is held; once it was released (every part read, then
``linger`` seconds without reads; or ``hold_timeout`` seconds without any), the next
execution plans again, in a new snapshot. Pass ``plan=`` (a plan you hold, with
``with pgarrow.plan(...)``) to make several executions read one snapshot.

Each read task yields the part's record batches as Arrow tables (pgarrow's types, exact).
The tasks' metadata carry the part's size on disk (``size_bytes``) but no row count: Ray
takes ``num_rows`` as exact (``Dataset.count()`` would return it without reading), and a
part's row count is an estimate (``pgarrow.Part.estimated_rows``).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Iterator, Optional

import pyarrow as pa
import ray.data
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

import pgarrow

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._typing import TypeOptions

__all__ = ["PostgresDatasource", "read_postgres"]


def _read(part: pgarrow.Part, limit: Optional[int]) -> Iterator[pa.Table]:
    for batch in part.read(limit=limit):
        yield pa.Table.from_batches([batch])


class PostgresDatasource(Datasource):
    """A query or table of PostgreSQL, read in parts of one snapshot by pgarrow."""

    def __init__(
        self,
        url: Optional[str],
        query: Optional[str] = None,
        *,
        table: Optional[str] = None,
        partitions: int = 4,
        partition_by: Optional[str] = None,
        plan: Optional[pgarrow.Plan] = None,
        hold_timeout: float = 600.0,
        linger: float = 30.0,
        **options: Unpack[TypeOptions],
    ) -> None:
        super().__init__()
        if plan is None and (query is None) == (table is None):
            raise pgarrow.UsageError("give a query, table=, or plan=")
        self._url, self._query, self._table = url, query, table
        self._partitions, self._by = partitions, partition_by
        self._hold_timeout, self._linger = hold_timeout, linger
        self._options = options
        self._user_plan = plan
        self._plan: Optional[pgarrow.Plan] = plan

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to Ray's workers with the plan's parts in the tasks; not the holder.
        state = dict(self.__dict__)
        state["_plan"] = None
        return state

    def get_name(self) -> str:
        return "Postgres"

    def plan(self) -> pgarrow.Plan:
        """The plan the next read tasks come from: the current one while it is held, else a
        new one (a new snapshot)."""
        if self._user_plan is not None:
            return self._user_plan
        if self._plan is None or not self._plan.held:
            self._plan = pgarrow.plan(
                self._url,
                self._query,
                table=self._table,
                partitions=self._partitions,
                partition_by=self._by,
                detached=True,
                hold_timeout=self._hold_timeout,
                linger=self._linger,
                **self._options,
            )
        return self._plan

    def estimate_inmemory_data_size(self) -> Optional[int]:
        sizes = [p.estimated_bytes for p in self.plan().parts]
        known = [s for s in sizes if s is not None]
        return sum(known) if len(known) == len(sizes) else None

    def get_read_tasks(
        self,
        parallelism: int,
        per_task_row_limit: Optional[int] = None,
        data_context: Any = None,
    ) -> list[ReadTask]:
        plan = self.plan()
        schema = plan.schema
        tasks = []
        for part in plan.parts:
            metadata = BlockMetadata(
                num_rows=None,
                size_bytes=part.estimated_bytes,
                input_files=None,
                exec_stats=None,
            )
            tasks.append(
                ReadTask(
                    functools.partial(_read, part, per_task_row_limit),
                    metadata,
                    schema=schema,
                    per_task_row_limit=per_task_row_limit,
                )
            )
        return tasks


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
    ray_remote_args: Optional[dict[str, Any]] = None,
    **options: Unpack[TypeOptions],
) -> ray.data.Dataset:
    """A ``ray.data.Dataset`` of the query or table (a bare name is a table, as everywhere in
    pgarrow): ``partitions`` read tasks, one per part of one snapshot (block ranges of a
    table, key ranges of ``partition_by``). ``options`` are the type policies and batch sizes
    of :func:`pgarrow.read_arrow`. With ``plan=``, the parts of that (held) plan.
    ``ray_remote_args`` go to the read tasks (``{"runtime_env": {"env_vars": {"PGPASSWORD":
    ...}}}`` gives workers a password that the URL, and so the tasks, do not carry).

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
    ray_remote_args : dict, optional
        Arguments of the read tasks (``num_cpus``, ``runtime_env``, ...).
    **options
        The type policies and batch sizes of :func:`pgarrow.read_arrow`.

    Returns
    -------
    ray.data.Dataset
        One read task per part.

    Raises
    ------
    UsageError
        A query without ``partition_by``, an unknown option.
    QueryError
        The server refused the query or the snapshot.
    """
    if query is not None and table is None:
        from ._utils import _source

        query, is_table = _source(query, None)
        if is_table:
            query, table = None, query
    source = PostgresDatasource(
        url,
        query,
        table=table,
        partitions=partitions,
        partition_by=partition_by,
        plan=plan,
        hold_timeout=hold_timeout,
        linger=linger,
        **options,
    )
    return ray.data.read_datasource(source, ray_remote_args=ray_remote_args)
