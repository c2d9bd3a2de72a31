"""pgarrow's exceptions: the engine's (the native module's classes, by what failed) and
:class:`UsageError`, a call that asks for something impossible. Every one is a
:class:`pgarrow.Error`, and says it lives in ``pgarrow``, where users and pickle find it."""

from __future__ import annotations

from ._pgarrow import ConnectError, DataError, DecodeError, Error, OutputError, QueryError

__all__ = [
    "ConnectError",
    "DataError",
    "DecodeError",
    "Error",
    "OutputError",
    "QueryError",
    "UsageError",
]


class UsageError(Error, ValueError):
    """The call asks for something impossible: a bad option or name, connection settings that
    do not parse, a statement that returns no rows, an input file that is not what it should
    be. Nothing ran. A ValueError too.

    A wrong string choice names the parameter and the choices (``mode: unknown load mode
    "merge": expected append, replace or upsert``).
    """


# Every class says it lives in `pgarrow`, where users (and pickle, which engines use to send a
# worker's error back to the driver) find it.
for _cls in (Error, ConnectError, DataError, DecodeError, OutputError, QueryError, UsageError):
    _cls.__module__ = "pgarrow"
