"""The types of pgarrow's public signatures (as ``polars._typing`` holds polars'): every string
choice as a ``Literal``, the options as ``TypedDict``\\ s (what ``**options`` takes), and the
results as ``TypedDict``\\ s (the statistics every call returns, as the CLI's ``--json``
prints them).

The choices are checked where they are parsed, in the engine (the same parser as the CLI's):
a wrong one is a ``pgarrow.UsageError`` (a ``ValueError``) naming the parameter and the choices.
Where the engine also takes a spelling outside the ``Literal`` (``"ipc"`` for ``"arrow"``,
``"zstd:9"``), the type names the documented ones.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Literal, Optional, TypedDict, Union

# --- string choices -------------------------------------------------------------------------

#: The format of a file: Parquet, Arrow IPC file, Arrow IPC stream.
FileFormat = Literal["parquet", "arrow", "arrow-stream"]
#: The format of a change set's files.
ChangesFormat = Literal["parquet", "arrow"]
#: What a load does with the rows already in the table.
LoadMode = Literal["append", "replace", "upsert"]
#: When a lake table exists: refuse, add the rows, or replace them.
IfExists = Literal["fail", "append", "replace"]
#: How a mirror's (and ``apply_changes``') commits take rows out of a lake table's files:
#: recorded beside them (deletion vectors, delete files), or by writing the files again.
DeleteMode = Literal["merge-on-read", "copy-on-write"]
#: What ``create=True`` makes of a nested field without pgarrow's metadata.
CreateNested = Literal["json", "typed"]
#: What ``copy(create=True)`` makes of a domain column.
Domains = Literal["define", "base"]
#: Nanoseconds that are not whole microseconds: refused, or rounded half to even.
Nanoseconds = Literal["error", "round"]
#: When an incremental run scans for rows committed late.
LateRows = Literal["auto", "always"]
#: How a change stream's values come: binary where possible, binary, or text.
Values = Literal["auto", "binary", "text"]

#: NUMERIC: text, float64, or ``"decimal128:P:S"`` / ``"decimal256:P:S"``.
Numeric = Union[Literal["string", "float64"], str]
WideNumeric = Literal["decimal256", "string"]
NumericOverflow = Literal["error", "null"]
Infinity = Literal["extreme", "null", "error"]
OutOfRange = Literal["error", "null", "clamp", "text"]
Text = Literal["utf8", "large", "view"]
InvalidUtf8 = Literal["error", "replace", "binary"]
ArrayShape = Literal["data", "flatten", "text"]
ArrayBounds = Literal["error", "drop"]
Enum = Literal["dictionary", "utf8"]
Snapshot = Literal["shared", "per-connection"]
#: Parquet compression, or ``"zstd:LEVEL"``.
Compression = Union[Literal["zstd", "snappy", "lz4", "gzip", "none"], str]
Intervals = Literal["native", "struct"]

#: Seconds, a ``timedelta``, or text such as ``"30s"``, ``"5min"``, ``"1500ms"``.
Duration = Union[float, datetime.timedelta, str]


# --- options (``**options``) -----------------------------------------------------------------


class TypeOptions(TypedDict, total=False):
    """Batch sizes, the statement timeout and the type policies: what every reader takes."""

    batch_rows: int
    batch_bytes: int
    statement_timeout: Duration
    numeric: Numeric
    wide_numeric: WideNumeric
    numeric_overflow: NumericOverflow
    infinity: Infinity
    out_of_range: OutOfRange
    text: Text
    invalid_utf8: InvalidUtf8
    array_shape: ArrayShape
    array_bounds: ArrayBounds
    enum: Enum


class ReadOptions(TypeOptions, total=False):
    """The type options, and reading over several connections in one snapshot."""

    partitions: int
    parts: int
    partition_by: str
    snapshot: Snapshot
    #: Bytes, or text such as ``"1GiB"``.
    memory_limit: Union[int, str]
    order_preserving: bool


class FilesOptions(TypedDict, total=False):
    """The files' own options: Parquet's, and how files in a directory are laid out."""

    compression: Compression
    row_group_rows: int
    row_group_bytes: int
    intervals: Intervals
    #: ``"column"`` or ``"column:0.01"`` (the false-positive rate), or a list of them.
    bloom_filters: Union[str, List[str]]
    #: ``{"column": "delta"}``, or ``"column=delta"`` strings.
    column_encodings: Union[Dict[str, str], str, List[str]]
    data_page_v2: bool
    field_ids: bool
    #: Geometry columns as Parquet's GEOMETRY and GEOGRAPHY logical types (GeoParquet 2.0).
    geo_types: bool
    #: GeoParquet's bbox covering: a ``GEOM_bbox`` struct column per geometry column.
    geo_bbox: bool
    #: ``"column"`` or ``"column:desc"``, or a list of them, most significant first.
    sorted_by: Union[str, List[str]]
    #: Into a directory only (``export_dataset``, ``export_tables``, ``export_incremental``
    #: with ``output_dir``, ``export_with_slot``): value partitions, ``"day(l_shipdate)"`` or a
    #: list, outermost first (for several tables, each table must have the columns).
    files_by: Union[str, List[str]]
    #: Into a directory only: rows per file, at most.
    max_file_rows: int
    #: Into a directory only: bytes per file, at most, or text such as ``"128MiB"``.
    max_file_size: Union[int, str]


class FileOptions(ReadOptions, FilesOptions, total=False):
    """The read options, and the files' own."""


class TablesOptions(TypeOptions, FilesOptions, total=False):
    """The type options and the files' (several tables are read one after another, each
    laid out in its own directory when a layout is given)."""

    #: What each table's export holds in memory: bytes, or text such as ``"256MiB"``.
    memory_limit: Union[int, str]


# --- results ---------------------------------------------------------------------------------

#: Values a non-default policy changed: ``{column: {kind: count}}``.
Losses = Dict[str, Dict[str, int]]


class Phases(TypedDict):
    """The time of each phase of an export, in seconds."""

    connect_s: float
    describe_s: float
    catalog_s: float
    first_byte_s: float
    read_s: float
    decode_s: float
    write_s: float
    finish_s: float


class ExportStats(TypedDict):
    """What an export did: counts, peak memory, and the time of each phase in seconds."""

    rows: int
    batches: int
    #: Bytes of COPY data received.
    bytes: int
    #: Bytes written to the output (a file), else None.
    written: Optional[int]
    peak_rss: Optional[int]
    total_s: float
    phases: Phases
    losses: Losses


class _PartitionedKeys(TypedDict, total=False):
    connections: int
    connections_wanted: int
    #: The number of parts.
    parts: int
    in_flight_peak: int
    #: The manifest's path or URL (a directory).
    manifest: Optional[str]


class PartitionedStats(ExportStats, _PartitionedKeys):
    """An export's statistics; read over several connections, also ``connections``,
    ``connections_wanted``, ``parts``, ``in_flight_peak`` and ``manifest``."""


class LakeRun(TypedDict, total=False):
    """An incremental run's facts in :class:`DuckLakeStats`, :class:`DeltaStats` and
    :class:`IcebergStats` (with ``by`` only)."""

    #: The state the commit carries, which the next run reads back from the table.
    incremental: Dict[str, Any]
    #: Whether it was a first run.
    first_run: bool
    #: Whether it scanned for late rows.
    late_scan: bool


class TogetherCommit(TypedDict, total=False):
    """With several tables exported together into one DuckLake or Iceberg catalog (in
    :class:`DuckLakeStats`, :class:`IcebergStats`)."""

    #: How many tables the one commit this table's was part of made visible (a multi-table
    #: transaction); 1 when each was committed on its own.
    committed_together: int
    #: Why each table was committed on its own (an Iceberg REST catalog that cannot commit
    #: them together).
    apart: str


class DuckLakeStats(PartitionedStats, LakeRun, TogetherCommit):
    """An export committed into a DuckLake table: the export's statistics, and the commit's."""

    format: Literal["ducklake"]
    #: ``schema.name``.
    table: str
    #: The DuckLake snapshot that made the rows visible.
    snapshot: int
    table_id: int
    #: Whether the commit made the table.
    created: bool
    #: Data files added.
    files: int
    #: Commits begun again after losing a race with another writer.
    retried: int
    #: Seconds from the export's end to the commit (footers, metadata, the catalog's commit).
    commit_s: float


class IndexStats(TypedDict):
    """The tables' key indexes at the end of a mirror (in :class:`MirrorStats`), summed."""

    #: Entries held in memory, and their memory (about).
    memory_entries: int
    memory_bytes: int
    #: The index persisted with the tables (under ``_pgarrow_index``): bytes, entries, runs.
    disk_bytes: int
    disk_entries: int
    runs: int
    #: Bytes of the persisted index read to find the changed keys' rows (merges included).
    read_bytes: int
    #: Data files read for their keys (files the persisted index did not cover: the first
    #: run, or files another writer wrote), and their bytes.
    files_read: int
    files_read_bytes: int
    #: Times the entries in memory were written out past the budget; runs merged.
    spills: int
    merges: int
    #: Keys looked up.
    lookups: int


class StreamedStats(TypedDict):
    """Large source transactions streamed before their commit (in :class:`MirrorStats`)."""

    #: Streamed transactions committed (delivered whole at their commit) and aborted (nothing
    #: of them delivered); savepoints rolled back after some of their changes came.
    committed: int
    aborted: int
    rolled_back: int
    #: Parts received, bytes set aside on disk over the run, and the most at one moment.
    parts: int
    bytes: int
    peak_bytes: int


class MirrorApart(TypedDict, total=False):
    """In :class:`MirrorStats` when rounds of several tables are committed table by table."""

    #: Why: the catalog cannot commit them together (the run's later rounds do not try).
    apart: str


class TableStatus(TypedDict):
    """A mirrored table's lake table, as :func:`pgarrow.mirror_status` reads it."""

    #: The source table and the lake table.
    table: str
    lake_table: str
    #: Whether the lake table exists.
    exists: bool
    #: The position its newest commit recorded for the slot (``None``: none).
    lsn: Optional[str]
    #: Its snapshot or version now (DuckLake snapshot, Delta version, Iceberg snapshot ID).
    snapshot: Optional[int]
    #: How far the source's WAL is past the table's position, in bytes.
    behind_bytes: Optional[int]


class MirrorStatus(TypedDict):
    """Where a mirror is, as :func:`pgarrow.mirror_status` reads it without running it."""

    slot: str
    #: Whether the source has the slot, and whether a session (a mirror) is reading it now.
    slot_exists: bool
    active: bool
    #: The slot's ``wal_status`` (PostgreSQL 13+).
    wal_status: Optional[str]
    #: What the slot confirmed: every table holds the changes before it.
    confirmed_lsn: Optional[str]
    #: The source's WAL position now, and how far it is past ``confirmed_lsn``, in bytes.
    server_lsn: str
    lag_bytes: Optional[int]
    tables: list[TableStatus]


class TableAt(TypedDict):
    """One lake table at a source point, as :func:`pgarrow.mirror_at` finds it."""

    #: The source table and the lake table.
    table: str
    lake_table: str
    #: ``ducklake``, ``delta`` or ``iceberg``.
    format: str
    #: Its snapshot at the point: a DuckLake snapshot, a Delta version, an Iceberg snapshot ID
    #: (``None``: the table did not exist yet there).
    snapshot: Optional[int]
    #: The position that snapshot's commit recorded (at or before the point).
    recorded_lsn: Optional[str]
    #: Statements that read the table at that snapshot, by reader (``duckdb``, ``spark``,
    #: ``pyiceberg``, ``deltalake``, ``polars``).
    read: dict[str, str]


class LakePoint(TypedDict):
    """The lake at a source point, as :func:`pgarrow.mirror_at` finds it."""

    slot: str
    #: The point asked for, as text.
    asked: str
    #: The source position the tables are read at: each table's snapshot holds the source as
    #: it was there.
    lsn: str
    #: When the source committed the transaction at the newest position recorded at or before
    #: ``lsn`` (microseconds since 1970-01-01 UTC), when a commit recorded it.
    time_us: Optional[int]
    #: What the slot confirmed: every point up to it is whole in every format.
    confirmed_lsn: Optional[str]
    tables: list[TableAt]


class MirrorStats(MirrorApart):
    """What :func:`pgarrow.mirror` did."""

    slot: str
    publication: str
    #: The source tables, quoted.
    tables: List[str]
    #: Whether this call made the slot and exported the tables in its snapshot; rows exported
    #: (the tables exported again at a schema change included).
    exported: bool
    exported_rows: int
    #: Where the call started streaming, and where every table is now (WAL positions).
    start_lsn: str
    end_lsn: str
    #: Commits made (one per table with changes, per checkpoint), and their data files.
    commits: int
    files: int
    #: Changes folded into them; rows written, rows deleted by position, truncates.
    changes: int
    inserted: int
    deleted: int
    truncates: int
    #: Commits begun again after the table's files changed beside the mirror.
    retried: int
    #: Tables exported again at a schema change they could not take in place.
    reexported: int
    #: Tables that joined the running mirror (exported in a snapshot of their own, then
    #: followed), and tables that left it (out of its publication, dropped, not followable).
    joined: int
    left: int
    #: Times the run failed for a reason that may pass (a connection cut, a catalog or object
    #: store that did not answer) and started again within ``retry_for``.
    restarts: int
    #: Commit rounds that committed several tables at once, in one operation of their catalog
    #: (DuckLake's one catalog transaction and snapshot, Iceberg's multi-table transactions).
    together: int
    #: Bytes of changes set aside on disk past the budget until their commit, and the commits
    #: that folded such changes in buckets.
    set_aside_bytes: int
    folded_in_buckets: int
    #: The tables' key indexes: memory, disk, what finding rows read.
    index: IndexStats
    #: Large source transactions the server streamed before their commit, set aside on disk.
    streamed: StreamedStats


class CompactStats(TypedDict):
    """What :func:`pgarrow.compact_lake` did."""

    format: Literal["ducklake", "delta", "iceberg"]
    table: str
    #: Commits made: 1, or 0 (nothing to compact, or stepped aside).
    commits: int
    #: Data files rewritten (ended), and written.
    files_rewritten: int
    files_written: int
    #: Rows rewritten, and deleted rows left out (deletes folded into the files).
    rows: int
    deletes_folded: int
    #: Commits that found the table changed (a mirror committed first) and tried anew.
    retried: int
    #: Whether compaction gave way to another writer after its retries.
    stepped_aside: bool
    #: The table's snapshot (version) after the last commit.
    snapshot: Optional[int]


class ExpireStats(TypedDict):
    """What :func:`pgarrow.expire_lake` did (or, dry, would do)."""

    format: Literal["ducklake", "delta", "iceberg"]
    table: str
    #: Snapshots (Delta: log versions) dropped.
    snapshots: int
    #: Files removed (data, delete and metadata files), and their bytes where known.
    files: int
    bytes: int
    dry_run: bool


class DeltaStats(PartitionedStats, LakeRun):
    """An export committed into a Delta table: the export's statistics, and the commit's."""

    format: Literal["delta"]
    #: The table's location.
    table: str
    #: The table version that made the rows visible.
    version: int
    #: Whether the commit made the table.
    created: bool
    #: Data files added.
    files: int
    #: Data files a replace removed.
    removed: int
    #: Commits tried again at a later version after another writer took theirs.
    retried: int
    #: Whether this export wrote the version's checkpoint.
    checkpointed: bool
    #: Seconds from the export's end to the commit (footers, the log's commit, a checkpoint).
    commit_s: float


class IcebergStats(PartitionedStats, LakeRun, TogetherCommit):
    """An export committed into an Iceberg table: the export's statistics, and the commit's."""

    format: Literal["iceberg"]
    #: The table, ``namespace.name``.
    table: str
    #: The snapshot that made the rows visible.
    snapshot: int
    #: Its sequence number.
    sequence_number: int
    #: The table's new metadata file, which the catalog now names.
    metadata_location: str
    #: Whether the commit made the table.
    created: bool
    #: Data files added.
    files: int
    #: Commits made again on top of another writer's.
    retried: int
    #: Seconds from the export's end to the commit (footers, manifests, the catalog's swap).
    commit_s: float


class SlotInfo(TypedDict):
    """The replication slot an export handed off to."""

    slot_name: str
    #: The WAL position its changes start after.
    consistent_point: str
    snapshot_name: str
    output_plugin: str


class SlotExportStats(PartitionedStats):
    """An export in a new slot's snapshot, and the slot."""

    replication_slot: SlotInfo


class IncrementalStats(PartitionedStats):
    """An incremental run: the export, and the run's facts."""

    run: int
    first: bool
    late_scan: bool
    #: The state saved for the next run.
    state: Dict[str, Any]


class TablesStats(TypedDict, total=False):
    """An export of several tables: the manifest's fields, where it is, and totals."""

    pgarrow_manifest: int
    pgarrow_version: str
    snapshot: Optional[str]
    wal_lsn: Optional[str]
    #: The slot the export was handed off to, if any.
    replication_slot: str
    server_version: Optional[int]
    format: str
    rows: int
    source: Optional[str]
    schema: Any
    files: List[Dict[str, Any]]
    output_dir: str
    manifest: str
    copy_bytes: int
    total_s: float


class LoadStats(TypedDict):
    """What a load did: rows, bytes of COPY data sent, the time of each phase in seconds."""

    rows: int
    bytes: int
    total_s: float
    connect_s: float
    describe_s: float
    read_s: float
    encode_s: float
    send_s: float
    commit_s: float
    losses: Losses
    #: Input columns left out: generated columns of the table.
    skipped_generated: List[str]


class CopyStats(LoadStats):
    """A copy: the load's statistics, the source's export under ``source``."""

    source: ExportStats
    created_types: List[str]
    domains_as_base: List[str]


class ChangesStats(TypedDict):
    """What ``changes_to`` wrote."""

    start_lsn: str
    end_lsn: str
    rows: int
    files: int
    bytes: int
    tables: List[str]
    schema_changes: List[str]


class ApplyStats(TypedDict):
    """What ``apply_changes`` applied."""

    slot: str
    rolls: int
    rolls_skipped: int
    files: int
    changes: int
    upserted: int
    deleted: int
    truncates: int
    checkpoint_lsn: str
    tables: List[str]
    total_s: float
