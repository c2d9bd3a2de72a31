"""A lake table's upkeep: compaction of its files, expiry of its old snapshots."""

from __future__ import annotations

from typing import Mapping, Optional

from .. import _pgarrow
from .._typing import CompactStats, ExpireStats
from .._utils import _properties


def compact_lake(
    *,
    ducklake: Optional[str] = None,
    delta: Optional[str] = None,
    iceberg: Optional[str] = None,
    lake_table: Optional[str] = None,
    catalog_name: Optional[str] = None,
    iceberg_properties: Optional[Mapping[str, str]] = None,
    target_file_bytes: int = 128 << 20,
    retries: int = 10,
    storage_options: Optional[dict[str, str]] = None,
) -> CompactStats:
    """Compacts a lake table, as ``pgarrow lake compact``: its files with deleted rows, and its
    files under three quarters of ``target_file_bytes``, are rewritten into files of that size,
    in one commit that ends the old files and their delete files (the rows read a file at a
    time as the new files are written). Readers see the
    same rows before and after; a mirror's position is carried on. Safe beside a running
    mirror: when it commits first, compaction reads the table again and tries anew
    (``retries``), then steps aside (``stepped_aside`` in the result).

    Parameters
    ----------
    ducklake, iceberg : str, optional
        The PostgreSQL database of the DuckLake catalog, or of the Iceberg SQL catalog
        (``catalog_name``), or an Iceberg REST catalog's address (``http(s)://...``, with
        ``iceberg_properties``), with ``lake_table`` (``"[schema.]name"``; schema ``main``,
        namespace ``default`` by default).
    iceberg_properties : mapping of str to str, optional
        The REST catalog's properties, as in :func:`export_iceberg`.
    delta : str, optional
        Instead: the Delta table's location, a directory or an object URL.
    target_file_bytes : int, default 128 MiB
        The files' size.
    retries : int, default 10
        Commits begun again after another writer committed first.
    storage_options : dict of str to str, optional
        As in :func:`export_file`.

    Returns
    -------
    dict
        The statistics (:class:`pgarrow._typing.CompactStats`).
    """
    return _pgarrow.compact_lake(
        ducklake=ducklake,
        delta=delta,
        iceberg=iceberg,
        iceberg_properties=_properties(iceberg_properties),
        lake_table=lake_table,
        catalog_name=catalog_name,
        target_file_bytes=int(target_file_bytes),
        retries=int(retries),
        older_than=None,
        dry_run=None,
        storage_options=storage_options,
    )


def expire_lake(
    *,
    ducklake: Optional[str] = None,
    delta: Optional[str] = None,
    iceberg: Optional[str] = None,
    lake_table: Optional[str] = None,
    catalog_name: Optional[str] = None,
    iceberg_properties: Optional[Mapping[str, str]] = None,
    older_than: float = 7 * 86400.0,
    dry_run: bool = False,
    storage_options: Optional[dict[str, str]] = None,
) -> ExpireStats:
    """Expires a lake table's old snapshots, as ``pgarrow lake expire``: the snapshots older
    than ``older_than`` seconds go (never the newest, nor the commit holding a mirror's
    position), and the files no snapshot left holds are removed. Iceberg: its snapshots and
    the manifests, data and delete files only they reached. Delta: its log versions before
    the newest checkpoint (written first when the newest version has none), and the files its
    removes tombstoned (VACUUM). DuckLake: the catalog's snapshots (they are the whole
    lake's) and the files only they held. Safe beside a running mirror.

    Parameters
    ----------
    ducklake, delta, iceberg, lake_table, catalog_name, iceberg_properties, storage_options
        The lake table, as in :func:`compact_lake`.
    older_than : float, default 7 days
        The retention, in seconds (0: every snapshot but the newest).
    dry_run : bool, default False
        Report what would go, and change nothing.

    Returns
    -------
    dict
        The statistics (:class:`pgarrow._typing.ExpireStats`).
    """
    return _pgarrow.expire_lake(
        ducklake=ducklake,
        delta=delta,
        iceberg=iceberg,
        iceberg_properties=_properties(iceberg_properties),
        lake_table=lake_table,
        catalog_name=catalog_name,
        target_file_bytes=None,
        retries=None,
        older_than=float(older_than),
        dry_run=dry_run,
        storage_options=storage_options,
    )
