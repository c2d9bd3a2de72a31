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
- several connections, one snapshot (see the book: docs/src/partitions.md): ``partitions``
  (int: connections), ``parts`` (int), ``partition_by`` (a column: the way to split a query),
  ``snapshot`` ("shared", "per-connection"), ``memory_limit`` (bytes, or text such as
  ``"1GiB"``), ``order_preserving`` (bool). Batches then come from every part as they are
  read.
- files only (``export_file``, ``export_dataset``, ...): ``compression`` ("zstd",
  "zstd:LEVEL", "snappy", "lz4", "gzip", "none"), ``row_group_rows``, ``row_group_bytes``,
  ``intervals`` ("native", "struct");
  Parquet's ``bloom_filters`` ("column" or "column:FPP", or a list), ``column_encodings``
  ({"column": "plain" | "dictionary" | "delta" | "delta-length" | "delta-prefix" |
  "byte-stream-split" | "rle"}), ``data_page_v2`` (bool), ``field_ids`` (bool: Iceberg's
  numbering), ``geo_types`` (bool: Parquet's GEOMETRY and GEOGRAPHY types), ``geo_bbox``
  (bool: GeoParquet's bbox covering columns), ``sorted_by`` ("column", "column:desc", or a
  list, most significant first: the query's ORDER BY, named in every row group's
  ``sorting_columns``; rows out of that order fail
  the export).
- the layout of ``export_dataset``'s files: ``files_by`` (value partitions as Hive-style
  directories: "column", "year(c)", "month(c)", "day(c)", "hour(c)", "bucket(N, c)",
  "truncate(W, c)", or a list, outermost first), ``max_file_rows`` (int),
  ``max_file_size`` (bytes, or text such as "128MiB").
"""

from __future__ import annotations

from . import _pgarrow
from ._changes import ChangeBatch, Changes, apply_changes, changes, changes_to
from ._errors import (
    ConnectError,
    DataError,
    DecodeError,
    Error,
    OutputError,
    QueryError,
    UsageError,
)

# Deprecated (one function per kind of export replaces it): importable as `pgarrow.export`
# until it goes, but not in __all__.
from ._export import export as export
from ._export import (
    export_dataset,
    export_file,
    export_incremental,
    export_tables,
    export_with_slot,
)
from ._lake import (
    compact_lake,
    expire_lake,
    export_delta,
    export_ducklake,
    export_iceberg,
    mirror,
    mirror_at,
    mirror_status,
)
from ._load import copy, write
from ._plan import Part, Plan, plan
from ._polars_scan import scan_polars
from ._read import read_arrow, read_batches, read_pandas, read_polars, schema

# The types of the signatures, importable from `pgarrow` as they were before the functions
# moved into modules by concern; their home is `pgarrow._typing`.
from ._typing import (  # noqa: F401
    ApplyStats,
    ChangesFormat,
    ChangesStats,
    CompactStats,
    CopyStats,
    CreateNested,
    DeleteMode,
    DeltaStats,
    Domains,
    DuckLakeStats,
    ExpireStats,
    FileFormat,
    FileOptions,
    IcebergStats,
    IfExists,
    IncrementalStats,
    LateRows,
    LoadMode,
    LoadStats,
    MirrorStats,
    Nanoseconds,
    PartitionedStats,
    ReadOptions,
    SlotExportStats,
    TablesOptions,
    TablesStats,
    Values,
)

__version__: str = _pgarrow.__version__

# The public names. `export` (deprecated: one function per kind of export replaces it) stays
# importable as `pgarrow.export` until it goes, but is not listed.
__all__ = [
    "ChangeBatch",
    "Changes",
    "ConnectError",
    "DataError",
    "DecodeError",
    "Error",
    "OutputError",
    "Part",
    "Plan",
    "QueryError",
    "UsageError",
    "apply_changes",
    "changes",
    "changes_to",
    "compact_lake",
    "copy",
    "expire_lake",
    "export_dataset",
    "export_delta",
    "export_ducklake",
    "export_file",
    "export_iceberg",
    "export_incremental",
    "export_tables",
    "export_with_slot",
    "mirror",
    "mirror_at",
    "mirror_status",
    "plan",
    "read_arrow",
    "read_batches",
    "read_pandas",
    "read_polars",
    "scan_polars",
    "schema",
    "write",
]
