"""Type stubs for the native module (pgarrow._pgarrow); users call the functions of `pgarrow`."""

from typing import Any, Optional

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

class Batch:
    def __arrow_c_array__(self, requested_schema: Optional[object] = None) -> tuple[object, object]: ...

class Changes:
    def __init__(
        self,
        conninfo: Optional[str],
        slot: str,
        publications: list[str],
        create_slot: bool = False,
        catch_up: bool = False,
        values: str = "auto",
        start: Optional[str] = None,
        batch_rows: Optional[int] = None,
        flush_interval: float = 1.0,
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
    format: Optional[str] = None,
    create_slot: bool = False,
    catch_up: bool = False,
    values: str = "auto",
    start: Optional[str] = None,
    roll_rows: int = 1_000_000,
    roll_bytes: int = 134_217_728,
    roll_seconds: float = 60.0,
    storage_options: Optional[dict[str, str]] = None,
) -> str: ...

def apply_changes(
    conninfo: Optional[str],
    path: str,
    tables: Optional[dict[str, str]] = None,
    keys: Optional[dict[str, list[str]]] = None,
    state_table: Optional[str] = None,
    nanoseconds: str = "error",
    storage_options: Optional[dict[str, str]] = None,
) -> str: ...

class Export:
    def __init__(
        self,
        conninfo: Optional[str],
        source: str,
        is_table: bool = False,
        options: Optional[dict[str, Any]] = None,
    ) -> None: ...
    @staticmethod
    def part(
        conninfo: Optional[str],
        plan_json: str,
        index: int,
        options: Optional[dict[str, Any]] = None,
        columns: Optional[list[str]] = None,
        filter: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> "Export": ...
    def __arrow_c_schema__(self) -> object: ...
    def __arrow_c_stream__(self, requested_schema: Optional[object] = None) -> object: ...
    def next_batch(self) -> Optional[Batch]: ...
    def stats_json(self) -> str: ...
    def close(self) -> None: ...

class Plan:
    def __init__(
        self,
        conninfo: Optional[str],
        source: str,
        is_table: bool = False,
        options: Optional[dict[str, Any]] = None,
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
        options: Optional[dict[str, Any]] = None,
    ) -> None: ...
    def plan_json(self) -> str: ...
    def wait(self, idle: float, linger: float) -> str: ...

def plan_schema(plan_json: str) -> object: ...
def schema(
    conninfo: Optional[str],
    source: str,
    is_table: bool = False,
    options: Optional[dict[str, Any]] = None,
) -> object: ...
def export_file(
    conninfo: Optional[str],
    source: str,
    path: str,
    format: Optional[str] = None,
    is_table: bool = False,
    options: Optional[dict[str, Any]] = None,
    storage_options: Optional[dict[str, str]] = None,
) -> str: ...
def export_dir(
    conninfo: Optional[str],
    source: str,
    output_dir: str,
    format: Optional[str] = None,
    is_table: bool = False,
    options: Optional[dict[str, Any]] = None,
    storage_options: Optional[dict[str, str]] = None,
) -> str: ...
def export_incremental(
    conninfo: Optional[str],
    table: str,
    column: str,
    state: str,
    path: Optional[str] = None,
    output_dir: Optional[str] = None,
    format: Optional[str] = None,
    since: Optional[str] = None,
    restart: bool = False,
    late_rows: str = "auto",
    options: Optional[dict[str, Any]] = None,
    storage_options: Optional[dict[str, str]] = None,
) -> str: ...
def export_tables(
    conninfo: Optional[str],
    tables: list[str],
    schemas: list[str],
    output_dir: str,
    format: Optional[str] = None,
    options: Optional[dict[str, Any]] = None,
    storage_options: Optional[dict[str, str]] = None,
) -> str: ...
def write(
    conninfo: Optional[str],
    table: str,
    data: Any,
    mode: str = "append",
    key: Optional[list[str]] = None,
    create: bool = False,
    batch_rows: Optional[int] = None,
    storage_options: Optional[dict[str, str]] = None,
    nanoseconds: str = "error",
    create_nested: str = "json",
) -> str: ...
def copy(
    from_conninfo: Optional[str],
    source: str,
    to_conninfo: Optional[str],
    table: str,
    is_table: bool = False,
    mode: str = "append",
    key: Optional[list[str]] = None,
    create: bool = False,
    options: Optional[dict[str, Any]] = None,
    create_nested: str = "json",
    domains: str = "define",
) -> str: ...
