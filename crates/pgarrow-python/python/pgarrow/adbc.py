"""pgarrow as an ADBC driver: a DBAPI 2.0 connection (with ADBC's Arrow extensions) whose
queries run through pgarrow's binary COPY path::

    import pgarrow.adbc

    with pgarrow.adbc.connect("postgresql://user@host/db") as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM orders WHERE day = $1", parameters=(day,))
            table = cur.fetch_arrow_table()
            cur.adbc_ingest("orders_copy", table, mode="create")
        conn.commit()

    polars.read_database("SELECT * FROM orders", connection=conn)
    pandas.read_sql("SELECT * FROM orders", conn)

Needs the ADBC driver manager (``pip install adbc-driver-manager``). The driver is the native
module of this package: :func:`driver_path` and :data:`ENTRYPOINT` give it to any driver
manager in this process. Other languages load the stand-alone library that
``cargo build --release -p pgarrow-adbc`` builds (``libpgarrow_adbc.so``, same entry point).

Options: ``db_kwargs`` (``uri``, ``username``, ``password``), ``conn_kwargs``
(``adbc.connection.autocommit``, ``adbc.connection.readonly``, ...) and statement options
through ``cursor.adbc_statement.set_options(**{"pgarrow.numeric": "float64"})``: every type
policy of the CLI as ``pgarrow.<name>`` (``pgarrow.numeric``, ``pgarrow.infinity``, ...),
``pgarrow.batch_rows``, ``pgarrow.batch_bytes``, and for ``cursor.adbc_execute_partitions``
``pgarrow.partitions``, ``pgarrow.partition_by``, ``pgarrow.hold_timeout`` and
``pgarrow.linger`` (seconds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from . import _pgarrow

if TYPE_CHECKING:
    import adbc_driver_manager.dbapi

__all__ = ["ENTRYPOINT", "connect", "driver_path"]

#: The driver's entry point in :func:`driver_path`'s library.
ENTRYPOINT: str = _pgarrow.ADBC_ENTRYPOINT


def driver_path() -> str:
    """The path of the driver library: this package's native module, which exports
    :data:`ENTRYPOINT` (for a driver manager in this Python process)."""
    path = _pgarrow.__file__
    if path is None:
        raise RuntimeError("pgarrow's native module has no file to load as a driver")
    return path


def connect(
    url: Optional[str] = None,
    *,
    username: Optional[str] = None,
    password: Optional[str] = None,
    autocommit: bool = False,
    db_kwargs: Optional[dict[str, str]] = None,
    conn_kwargs: Optional[dict[str, str]] = None,
    **kwargs: Any,
) -> "adbc_driver_manager.dbapi.Connection":
    """A DBAPI 2.0 connection through the ADBC driver manager with pgarrow's driver.

    ``url`` is a ``postgresql://`` URL or a libpq ``key=value`` string; ``None`` takes the
    ``PG*`` environment, the service file and ``~/.pgpass``, as libpq does. ``username`` and
    ``password`` override the URL's. ``autocommit`` is off by default, as DBAPI asks: call
    ``commit()``. Other keyword arguments go to ``adbc_driver_manager.dbapi.connect``.
    """
    try:
        import adbc_driver_manager.dbapi as dbapi
    except ImportError as e:
        raise ImportError(
            "pgarrow.adbc needs the ADBC driver manager: pip install adbc-driver-manager"
        ) from e
    options = dict(db_kwargs or {})
    if url is not None:
        options["uri"] = url
    if username is not None:
        options["username"] = username
    if password is not None:
        options["password"] = password
    return dbapi.connect(
        driver=driver_path(),
        entrypoint=ENTRYPOINT,
        db_kwargs=options,
        conn_kwargs=conn_kwargs,
        autocommit=autocommit,
        **kwargs,
    )
