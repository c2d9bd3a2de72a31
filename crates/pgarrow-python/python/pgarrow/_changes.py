"""Change data capture: a logical replication slot's changes as Arrow batches (``changes``),
into files (``changes_to``), and those files applied to tables (``apply_changes``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional, Union

from . import _pgarrow
from ._errors import UsageError
from ._typing import ApplyStats, ChangesFormat, ChangesStats, DeleteMode, Nanoseconds, Values
from ._utils import _properties, _pyarrow, _renamed

if TYPE_CHECKING:
    import pyarrow


class ChangeBatch(tuple):
    """Changed rows of one table: ``(table, batch)``, a named pair. ``table`` is the quoted,
    schema-qualified name (``"public"."orders"``); ``batch`` a ``pyarrow.RecordBatch`` of the
    table's columns, then ``_op``, ``_lsn``, ``_commit_lsn``, ``_commit_time``, ``_xid``,
    ``_unchanged`` and ``_old`` (see the book's "Change data capture", docs/src/changes.md).

    Attributes
    ----------
    table : str
        The quoted, schema-qualified name.
    batch : pyarrow.RecordBatch
        The rows and their change columns.
    """

    __slots__ = ()

    def __new__(cls, table: str, batch: pyarrow.RecordBatch) -> ChangeBatch:
        return super().__new__(cls, (table, batch))

    @property
    def table(self) -> str:
        return self[0]

    @property
    def batch(self) -> pyarrow.RecordBatch:
        return self[1]


class Changes:
    """A logical replication slot's changes, as ``ChangeBatch`` items (made by
    ``pgarrow.changes``).

    Iterating waits on the server with the GIL released. After each transaction boundary that
    ends a run of batches, ``checkpoint`` is the WAL position every change delivered so far
    reaches; call ``confirm()`` once those rows are durable wherever they went: the slot moves
    there, and a later ``pgarrow.changes`` on the slot starts after it. What was not confirmed
    comes again. ``schema_changes`` lists ``(table, lsn)`` for each table whose columns changed
    mid-stream (its next batches have the new schema). Close it (or use ``with``) to end the
    stream.

    Attributes
    ----------
    checkpoint : str or None
        The WAL position every change delivered so far reaches, after a transaction boundary.
    schema_changes : list of (str, str)
        ``(table, lsn)`` for each table whose columns changed mid-stream.

    See Also
    --------
    changes : makes one.
    """

    def __init__(self, native: Any) -> None:
        self._native = native
        self.checkpoint: Optional[str] = None
        self.schema_changes: list[tuple[str, str]] = []

    @property
    def text_reason(self) -> Optional[str]:
        """Why values come as text where binary was possible (columns without a binary
        decoder), or None."""
        return self._native.text_reason()

    def __iter__(self) -> Iterator[ChangeBatch]:
        pa = _pyarrow()
        while True:
            event = self._native.next_event()
            if event is None:
                return
            kind, name, payload = event
            if kind == "rows":
                yield ChangeBatch(name, pa.record_batch(payload))
            elif kind == "checkpoint":
                self.checkpoint = name
            elif kind == "schema" and payload is not None:
                self.schema_changes.append((name, payload))

    def confirm(self, lsn: Optional[str] = None) -> None:
        """Tells the slot that the changes up to ``lsn`` are durable: it moves there.

        Parameters
        ----------
        lsn : str, optional
            A checkpoint; by default :attr:`checkpoint` (nothing when there is none yet).

        Raises
        ------
        UsageError
            A malformed LSN, or the stream is closed.
        """
        lsn = lsn or self.checkpoint
        if lsn is not None:
            self._native.confirm(lsn)

    def close(self) -> None:
        """Ends the stream; the slot keeps the position confirmed last."""
        self._native.close()

    def __enter__(self) -> Changes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The classes say they live in `pgarrow`, where users and pickle find them.
ChangeBatch.__module__ = "pgarrow"
Changes.__module__ = "pgarrow"


def changes(
    url: Optional[str] = None,
    *,
    slot: str,
    publication: Union[str, list[str]],
    create_slot: bool = False,
    catch_up: bool = False,
    values: Values = "auto",
    start: Optional[str] = None,
    batch_rows: Optional[int] = None,
    flush_interval: float = 1.0,
    spill_dir: Union[str, os.PathLike[str], None] = None,
) -> Changes:
    """Streams a logical replication slot's changes (plugin pgoutput), as
    ``ChangeBatch(table, pyarrow.RecordBatch)`` items with the export's types.

    Parameters
    ----------
    url : str, optional
        As in :func:`read_batches`.
    slot : str
        The slot.
    publication : str or list of str
        The publications whose tables to stream.
    create_slot : bool, default False
        Make the slot when it does not exist (its changes start now).
    catch_up : bool, default False
        End the iteration once every change committed before the call was delivered (else
        it streams until closed).
    values : {"auto", "binary", "text"}, default "auto"
        Binary on PostgreSQL 14+ unless a published column has no binary decoder; binary; or
        text.
    start : str, optional
        Skip transactions committed before this WAL position (``"16/B374D848"``).
    batch_rows : int, optional
        The most rows of a batch.
    flush_interval : float, default 1.0
        Seconds rows may wait for a checkpoint.
    spill_dir : str or os.PathLike, optional
        Where a large transaction that the server streams before its commit (PostgreSQL 14+,
        past its ``logical_decoding_work_mem``) is set aside until the commit; the system's
        temporary directory by default. It is delivered whole at its commit, in commit order;
        an aborted one is never delivered.

    Returns
    -------
    Changes

    Raises
    ------
    ConnectError, QueryError, DecodeError
        Connecting or streaming failed.
    UsageError
        A missing slot or publication, a bad option.

    Examples
    --------
    ::

        with pgarrow.changes(url, slot="orders_cdc", publication="orders_pub") as stream:
            for table, batch in stream:
                sink.write(table, batch)
                stream.confirm()   # durable up to stream.checkpoint
    """
    pubs = [publication] if isinstance(publication, str) else list(publication)
    native = _pgarrow.Changes(
        url,
        slot,
        pubs,
        create_slot=create_slot,
        catch_up=catch_up,
        values=values,
        start=start,
        spill_dir=None if spill_dir is None else os.fspath(spill_dir),
        batch_rows=batch_rows,
        flush_interval=flush_interval,
    )
    return Changes(native)


@_renamed(to="format")
def changes_to(
    url: Optional[str] = None,
    output: Union[str, os.PathLike[str], None] = None,
    *,
    slot: str,
    publication: Union[str, list[str]],
    format: Optional[ChangesFormat] = None,
    create_slot: bool = False,
    catch_up: bool = False,
    values: Values = "auto",
    start: Optional[str] = None,
    roll_rows: int = 1_000_000,
    roll_bytes: int = 128 << 20,
    roll_seconds: float = 60.0,
    storage_options: Optional[dict[str, str]] = None,
    spill_dir: Union[str, os.PathLike[str], None] = None,
) -> ChangesStats:
    """Streams a slot's changes into file sets under ``output``, as ``pgarrow changes -o``.

    One directory per table, files named by LSN range, each written atomically, and
    ``_changes.json`` listing them. The slot moves only once the files are durable, and a
    later call resumes exactly where this one ended. Rolls come at the first transaction end
    after ``roll_rows`` rows or ``roll_seconds``, or once ``roll_bytes`` are buffered.

    Parameters
    ----------
    url : str, optional
        As in :func:`read_batches`.
    output : str or os.PathLike
        A directory, or an object URL such as ``s3://bucket/changes/``.
    slot, publication, create_slot, values, start, spill_dir
        As in :func:`changes`.
    format : {"parquet", "arrow"}, optional
        The files' format; Parquet by default. Its old name, ``to``, still works for a
        release, with a ``DeprecationWarning``.
    catch_up : bool, default False
        Return once every change committed before the call is written; otherwise run until
        Ctrl-C, which ends it at a transaction boundary after a last roll (then
        KeyboardInterrupt).
    roll_rows : int, default 1_000_000
    roll_bytes : int, default 128 MiB
    roll_seconds : float, default 60.0
        When files roll.
    storage_options : dict of str to str, optional
        As in :func:`export_file`.

    Returns
    -------
    dict
        ``start_lsn``, ``end_lsn``, ``rows``, ``files``, ``bytes``, ``tables``,
        ``schema_changes`` (:class:`pgarrow._typing.ChangesStats`).

    Raises
    ------
    ConnectError, QueryError, DecodeError, OutputError, UsageError
        As in :func:`changes` and :func:`export_file`.
    """
    if output is None:
        raise UsageError("changes_to needs an output directory or object URL")
    pubs = [publication] if isinstance(publication, str) else list(publication)
    return _pgarrow.changes_to(
        url,
        os.fspath(output),
        slot,
        pubs,
        format=format,
        create_slot=create_slot,
        catch_up=catch_up,
        values=values,
        start=start,
        spill_dir=None if spill_dir is None else os.fspath(spill_dir),
        roll_rows=roll_rows,
        roll_bytes=roll_bytes,
        roll_seconds=roll_seconds,
        storage_options=storage_options,
    )


def apply_changes(
    url: Optional[str] = None,
    path: Union[str, os.PathLike[str], None] = None,
    *,
    tables: Optional[dict[str, str]] = None,
    keys: Optional[dict[str, Union[str, list[str]]]] = None,
    state_table: Optional[str] = None,
    nanoseconds: Nanoseconds = "error",
    storage_options: Optional[dict[str, str]] = None,
    ducklake: Optional[str] = None,
    delta: Optional[str] = None,
    iceberg: Optional[str] = None,
    lake_table: Optional[str] = None,
    catalog_name: Optional[str] = None,
    iceberg_properties: Optional[Mapping[str, str]] = None,
    deletes: DeleteMode = "merge-on-read",
    memory_limit: Union[int, str, None] = None,
    spill_dir: Union[str, os.PathLike[str], None] = None,
) -> ApplyStats:
    """Applies a changes directory (as :func:`changes_to` and ``pgarrow changes`` write it) to
    the tables of ``url``'s database, by key, as ``pgarrow apply``: each roll in one
    transaction, each once.

    A table ``pgarrow_applied_changes`` (``state_table``) records, per slot, the checkpoint the
    target has every change up to, so a later call applies only what came since. Ctrl-C rolls
    back the roll under way (then KeyboardInterrupt); a later call goes on from there.

    Parameters
    ----------
    url : str, optional
        The target's connection, as in :func:`read_batches`.
    path : str or os.PathLike
        The changes directory, or an object URL.
    tables : dict of str to str, optional
        A source table to another target (``{"orders": "archive.orders"}``); a table not
        named goes to the table of its own name.
    keys : dict of str to str or list of str, optional
        A target's key columns (``{"archive.orders": ["order_id", "line"]}``, or
        ``"order_id,line"``); a target not named is keyed by its primary key, else its
        replica identity index.
    state_table : str, optional
        The state table; ``pgarrow_applied_changes`` by default.
    nanoseconds : {"error", "round"}, default "error"
        As in :func:`write`.
    storage_options : dict of str to str, optional
        As in :func:`export_file`.
    ducklake, delta, iceberg, lake_table, catalog_name : str, optional
        Apply to lake tables instead (``url`` is then not used), as :func:`compact_lake` names
        them; ``lake_table`` is optional for the changes of one table (its own name), and
        several tables go each into the lake table of its own schema and name (Delta:
        ``delta/schema.name``). Each table's changes of a roll are one commit recording the
        slot and the checkpoint, as a mirror's: a later call goes on from what each table
        holds. The lake table must record the slot: export it in the slot's snapshot first
        (``pgarrow export --replication-slot SLOT --create-slot --delta ...``). ``keys``
        then name source tables' keys, for files that do not (changes files record their
        replica identity's columns).
    iceberg_properties : mapping of str to str, optional
        With ``iceberg`` a REST catalog's address: its properties, as in
        :func:`export_iceberg`.
    deletes : {"merge-on-read", "copy-on-write"}, default "merge-on-read"
        How the lake tables' commits take rows out of their files, as in :func:`mirror`.
    memory_limit : int or str, optional
        With a lake: the memory the tables' bookkeeping may take (a quarter for the key index,
        a quarter for the changes of the commit under way; past that, set aside on disk), in
        bytes or as ``"256MiB"``; 512 MiB by default, as in :func:`mirror`.
    spill_dir : str or os.PathLike, optional
        With a lake: where changes past the budget are set aside until their commit; the
        system's temporary directory by default.

    Returns
    -------
    dict
        ``slot``, ``rolls``, ``rolls_skipped``, ``files``, ``changes``, ``upserted``,
        ``deleted``, ``truncates``, ``checkpoint_lsn``, ``tables``, ``total_s``
        (:class:`pgarrow._typing.ApplyStats`).

    Raises
    ------
    ConnectError, QueryError, UsageError
        Connecting or applying failed (the roll under way is rolled back), or a bad option.
    """
    if path is None:
        raise UsageError("apply_changes needs the changes directory or object URL")
    lake = any(x is not None for x in (ducklake, delta, iceberg))
    if deletes != "merge-on-read" and not lake:
        raise UsageError(
            "deletes= is how a lake table takes deletes: PostgreSQL deletes its rows itself"
        )
    if (memory_limit is not None or spill_dir is not None) and not lake:
        raise UsageError(
            "memory_limit= and spill_dir= bound a lake table's bookkeeping (ducklake=, delta=, "
            "iceberg=): into PostgreSQL, each roll is applied by the server"
        )
    key_lists = {
        table: [c.strip() for c in cols.split(",")] if isinstance(cols, str) else list(cols)
        for table, cols in (keys or {}).items()
    }
    return _pgarrow.apply_changes(
        url,
        os.fspath(path),
        tables=tables,
        keys=key_lists,
        state_table=state_table,
        nanoseconds=nanoseconds,
        storage_options=storage_options,
        ducklake=ducklake,
        delta=delta,
        iceberg=iceberg,
        lake_table=lake_table,
        catalog_name=catalog_name,
        iceberg_properties=_properties(iceberg_properties),
        deletes=deletes,
        memory_limit=None if memory_limit is None else str(memory_limit),
        spill_dir=None if spill_dir is None else os.fspath(spill_dir),
    )
