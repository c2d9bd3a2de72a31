"""Lake tables (DuckLake, Delta Lake, Apache Iceberg): exports into them, mirrors, and their
upkeep, as ``pgarrow export --ducklake/--delta/--iceberg``, ``pgarrow mirror`` and ``pgarrow
lake`` do. Re-exported by ``pgarrow``."""

from .export import export_delta, export_ducklake, export_iceberg
from .maintain import compact_lake, expire_lake
from .mirror import mirror, mirror_at, mirror_status

__all__ = [
    "compact_lake",
    "expire_lake",
    "export_delta",
    "export_ducklake",
    "export_iceberg",
    "mirror",
    "mirror_at",
    "mirror_status",
]
