"""What the functions of every concern share: the source of a call (SQL or a table name),
patterns and paths as the engine takes them, pyarrow's import, and the warning a deprecated
spelling gives (a keyword's old name: ``_renamed``)."""

from __future__ import annotations

import functools
import os
import re
import warnings
from typing import Any, Callable, Mapping, Optional, TypeVar, Union, cast

from ._errors import UsageError

_F = TypeVar("_F", bound=Callable[..., Any])

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


def _properties(value: Optional[Mapping[str, str]]) -> Optional[dict[str, str]]:
    """``iceberg_properties`` as the engine takes it: a dict of str to str (any mapping is
    copied). A key or value of another type is refused by its key: values may be secrets."""
    if value is None:
        return None
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise TypeError(f"iceberg_properties: keys are str, not {type(k).__name__}")
        if not isinstance(v, str):
            raise TypeError(
                f"iceberg_properties[{k!r}] is {type(v).__name__}: values are str, as "
                "pyiceberg's are"
            )
        out[k] = v
    return out


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"{old} is deprecated and goes in the next release: call {new} instead",
        DeprecationWarning,
        stacklevel=3,
    )


def _renamed(**renames: str) -> Callable[[_F], _F]:
    """Keeps the old names of renamed keyword arguments working for a release, as polars'
    ``deprecate_renamed_parameter`` does: ``@_renamed(catalog="ducklake")`` passes
    ``catalog=`` on as ``ducklake=``, warning (:func:`_deprecated`) which spelling to call,
    and refuses both at once. The function's signature, and so its type, has the new names
    only."""

    def decorate(function: _F) -> _F:
        name = function.__name__

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old not in kwargs:
                    continue
                value = kwargs.pop(old)
                if value is None:
                    continue
                if kwargs.get(new) is not None:
                    raise UsageError(f"give {new}= ({old}= is its old name), not both")
                _deprecated(f"pgarrow.{name}({old}=...)", f"pgarrow.{name}({new}=...)")
                kwargs[new] = value
            return function(*args, **kwargs)

        return cast(_F, wrapper)

    return decorate
