"""What the functions of every concern share: the source of a call (SQL or a table name),
patterns and paths as the engine takes them, pyarrow's import, and the warning a deprecated
spelling gives."""

from __future__ import annotations

import os
import re
import warnings
from typing import Any, Optional, Union

# A table name: one or two parts, each a plain identifier or a double-quoted one.
_PART = r'(?:[A-Za-z_\x80-\uffff][A-Za-z0-9_$\x80-\uffff]*|"(?:[^"]|"")+")'
_TABLE = re.compile(rf"\s*{_PART}(?:\s*\.\s*{_PART})?\s*")


def _source(query: Optional[str], table: Optional[str]) -> tuple[str, bool]:
    """The source text and whether it is a table."""
    if (query is None) == (table is None):
        raise ValueError("give either a query or table=")
    if table is not None:
        return table, True
    assert query is not None
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, not {type(query).__name__}")
    return query, _TABLE.fullmatch(query) is not None


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as e:  # pragma: no cover - pyarrow is a dependency
        raise ImportError("pgarrow needs pyarrow: pip install pyarrow") from e
    return pyarrow


def _patterns(value: Union[str, list[str], None]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _path(value: Union[str, os.PathLike[str]]) -> str:
    return os.fspath(value)


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"{old} is deprecated and goes in the next release: call {new} instead",
        DeprecationWarning,
        stacklevel=3,
    )
