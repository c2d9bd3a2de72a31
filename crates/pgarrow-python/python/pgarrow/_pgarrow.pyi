"""Type stubs for the native module (pgarrow._pgarrow); users call the functions of `pgarrow`.

Native functions take their essentials positionally and the rest by keyword: the Python
wrappers pass every keyword (the defaults are theirs), and results come as dicts (typed in
`pgarrow._typing`), built in Rust without JSON text.
"""

from typing import Any, Mapping, Optional, Union

from ._typing import (
    ApplyStats,
    ChangesStats,
    CompactStats,
    CopyStats,
    DeltaStats,
    DuckLakeStats,
    ExpireStats,
    ExportStats,
    IcebergStats,
    IncrementalStats,
    LakePoint,
    LoadStats,
    MirrorStats,
    MirrorStatus,
    PartitionedStats,
    SlotExportStats,
    TablesStats,
)

__version__: str
ADBC_ENTRYPOINT: str

class Error(Exception):
    sqlstate: Optional[str]
    server_message: Optional[str]
    detail: Optional[str]
    hint: Optional[str]
    rows: Optional[int]

class ConnectError(Error): ...
class QueryError(Error): ...
class DecodeError(Error): ...
class OutputError(Error): ...
class DataError(Error): ...

class Batch:
    def __arrow_c_array__(
        self, requested_schema: Optional[object] = None
    ) -> tuple[object, object]: ...

class Changes:
    def __init__(
        self,
        conninfo: Optional[str],
        slot: str,
        publications: list[str],
        *,
        create_slot: bool,
        catch_up: bool,
        values: str,
        start: Optional[str],
        spill_dir: Optional[str],
        batch_rows: Optional[int],
        flush_interval: float,
    ) -> None: ...
    def next_event(self) -> Optional[tuple[str, str, Any]]: ...
    def confirm(self, lsn: str) -> None: ...
    def text_reason(self) -> Optional[str]: ...
    def close(self) -> None: ...

def changes_to(
    conninfo: Optional[str],
    output: str,
    slot: str,
    publications: list[str],
    *,
    format: Optional[str],
    create_slot: bool,
    catch_up: bool,
    values: str,
    start: Optional[str],
    spill_dir: Optional[str],
    roll_rows: int,
    roll_bytes: int,
    roll_seconds: float,
    storage_options: Optional[dict[str, str]],
) -> ChangesStats: ...
def apply_changes(
    conninfo: Optional[str],
    path: str,
    *,
    tables: Optional[dict[str, str]],
    keys: Optional[dict[str, list[str]]],
    state_table: Optional[str],
    nanoseconds: str,
    storage_options: Optional[dict[str, str]],
    ducklake: Optional[str],
    delta: Optional[str],
    iceberg: Optional[str],
    lake_table: Optional[str],
    catalog_name: Optional[str],
    iceberg_properties: Optional[dict[str, str]],
    deletes: str,
    memory_limit: Optional[str],
    spill_dir: Optional[str],
) -> ApplyStats: ...

class Export:
    def __init__(
        self,
        conninfo: Optional[str],
        source: str,
        is_table: bool = False,
        options: Optional[Mapping[str, Any]] = None,
    ) -> None: ...
    @staticmethod
    def part(
        conninfo: Optional[str],
        plan_json: str,
        index: int,
        *,
        options: Optional[Mapping[str, Any]],
        columns: Optional[list[str]],
        filter: Optional[str],
        limit: Optional[int],
    ) -> "Export": ...
    def __arrow_c_schema__(self) -> object: ...
    def __arrow_c_stream__(self, requested_schema: Optional[object] = None) -> object: ...
    def next_batch(self) -> Optional[Batch]: ...
    def stats(self) -> ExportStats: ...
    def close(self) -> None: ...

class Plan:
    def __init__(
        self,
        conninfo: Optional[str],
        source: str,
        is_table: bool = False,
        options: Optional[Mapping[str, Any]] = None,
    ) -> None: ...
    def plan_json(self) -> str: ...
    def held(self) -> bool: ...
    def close(self) -> None: ...

class Holder:
    def __init__(
        self,
        conninfo: Optional[str],
        source: str,
        is_table: bool = False,
        options: Optional[Mapping[str, Any]] = None,
    ) -> None: ...
    def plan_json(self) -> str: ...
    def wait(self, idle: float, linger: float) -> str: ...

def plan_schema(plan_json: str) -> object: ...
def schema(
    conninfo: Optional[str],
    source: str,
    is_table: bool = False,
    options: Optional[Mapping[str, Any]] = None,
) -> object: ...
def export_file(
    conninfo: Optional[str],
    source: str,
    is_table: bool,
    path: str,
    *,
    format: Optional[str],
    options: Optional[Mapping[str, Any]],
    storage_options: Optional[dict[str, str]],
) -> PartitionedStats | SlotExportStats: ...
def export_dir(
    conninfo: Optional[str],
    source: str,
    is_table: bool,
    output_dir: str,
    *,
    format: Optional[str],
    options: Optional[Mapping[str, Any]],
    storage_options: Optional[dict[str, str]],
) -> PartitionedStats | SlotExportStats: ...
def export_lake(
    conninfo: Optional[str],
    source: str,
    is_table: bool,
    patterns: list[str],
    schemas: list[str],
    *,
    ducklake: Optional[str],
    delta: Optional[str],
    iceberg: Optional[str],
    lake_table: Optional[str],
    catalog_name: Optional[str],
    iceberg_properties: Optional[dict[str, str]],
    data_path: Optional[str],
    warehouse: Optional[str],
    checkpoint_interval: Optional[int],
    if_exists: str,
    by: Optional[str],
    since: Optional[str],
    late_rows: str,
    restart: bool,
    options: Optional[Mapping[str, Any]],
    storage_options: Optional[dict[str, str]],
) -> Union[DuckLakeStats, DeltaStats, IcebergStats, list[Any]]: ...
def mirror(
    conninfo: Optional[str],
    patterns: list[str],
    schemas: list[str],
    *,
    ducklake: Optional[str],
    delta: Optional[str],
    iceberg: Optional[str],
    warehouse: Optional[str],
    catalog_name: Optional[str],
    iceberg_properties: Optional[dict[str, str]],
    data_path: Optional[str],
    lake_table: Optional[str],
    slot: str,
    publication: Optional[str],
    commit_interval: float,
    commit_changes: int,
    catch_up: bool,
    start_over: bool,
    failover: bool,
    reexport: bool,
    deletes: str,
    spill_dir: Optional[str],
    retry_for: float,
    metrics_listen: Optional[str],
    status: bool,
    at: Optional[str],
    options: Optional[Mapping[str, Any]],
    storage_options: Optional[dict[str, str]],
) -> Union[MirrorStats, MirrorStatus, LakePoint]: ...
def compact_lake(
    *,
    ducklake: Optional[str],
    delta: Optional[str],
    iceberg: Optional[str],
    lake_table: Optional[str],
    catalog_name: Optional[str],
    iceberg_properties: Optional[dict[str, str]],
    target_file_bytes: int,
    retries: int,
    older_than: None,
    dry_run: None,
    storage_options: Optional[dict[str, str]],
) -> CompactStats: ...
def expire_lake(
    *,
    ducklake: Optional[str],
    delta: Optional[str],
    iceberg: Optional[str],
    lake_table: Optional[str],
    catalog_name: Optional[str],
    iceberg_properties: Optional[dict[str, str]],
    target_file_bytes: None,
    retries: None,
    older_than: float,
    dry_run: bool,
    storage_options: Optional[dict[str, str]],
) -> ExpireStats: ...
def export_incremental(
    conninfo: Optional[str],
    table: str,
    column: str,
    state: str,
    *,
    path: Optional[str],
    output_dir: Optional[str],
    since: Optional[str],
    restart: bool,
    late_rows: str,
    format: Optional[str],
    options: Optional[Mapping[str, Any]],
    storage_options: Optional[dict[str, str]],
) -> IncrementalStats: ...
def export_tables(
    conninfo: Optional[str],
    tables: list[str],
    schemas: list[str],
    output_dir: str,
    *,
    format: Optional[str],
    options: Optional[Mapping[str, Any]],
    storage_options: Optional[dict[str, str]],
) -> TablesStats: ...
def write(
    conninfo: Optional[str],
    table: str,
    data: Any,
    *,
    mode: str,
    key: Optional[list[str]],
    create: bool,
    create_nested: str,
    batch_rows: Optional[int],
    storage_options: Optional[dict[str, str]],
    nanoseconds: str,
    delta: Optional[str],
    iceberg: Optional[str],
    ducklake: Optional[str],
    lake_table: Optional[str],
    catalog_name: Optional[str],
    iceberg_properties: Optional[dict[str, str]],
) -> LoadStats: ...
def copy(
    from_conninfo: Optional[str],
    source: str,
    to_conninfo: Optional[str],
    table: str,
    *,
    is_table: bool,
    mode: str,
    key: Optional[list[str]],
    create: bool,
    create_nested: str,
    domains: str,
    options: Optional[Mapping[str, Any]],
) -> CopyStats: ...
