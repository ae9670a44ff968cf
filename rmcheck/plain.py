"""Plain JSON values: what a run document may hold.

A run document crosses process boundaries (pytest-xdist's execnet), is written as JSON and read back as YAML by
some users, so it holds only ``str``, ``int``, ``float``, ``bool``, ``None`` and lists and string-keyed dicts of
them. Libraries hand out look-alikes that are not: ``torch.__version__`` is a ``TorchVersion`` (a ``str``
subclass execnet refuses), numpy scalars, ``Path`` objects, tuples. :func:`plain` converts them all, once, where a
document is built.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Plain = str | int | float | bool | None | list["Plain"] | dict[str, "Plain"]


def plain(value: Any) -> Plain:
    """``value`` as plain JSON values: subclasses of the plain types become the types themselves, numpy scalars
    their Python numbers, tuples and sets lists, mapping keys strings, and anything else its ``str``."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [plain(item) for item in items]
    number = _number(value)
    return str(value) if number is None else number


def _number(value: Any) -> bool | int | float | None:
    """A bool, int or float for boolean, integer and real scalars (Python subclasses, numpy scalars, 0-d tensors), else None."""
    if isinstance(value, (int, float)):
        return int(value) if isinstance(value, int) else float(value)
    item = getattr(value, "item", None)
    if not callable(item) or getattr(value, "shape", None) != ():
        return None
    result = item()
    return result if isinstance(result, (bool, int, float)) else None


def non_plain(value: Any, where: str = "$") -> list[str]:
    """Paths (``$.models[0].provenance.torch``) of every value in ``value`` that is not a plain JSON value."""
    if value is None or type(value) in (str, int, float, bool):
        return []
    if type(value) is dict:
        bad = [f"{where} (key {key!r})" for key in value if type(key) is not str]
        return bad + [path for key, item in value.items() for path in non_plain(item, f"{where}.{key}")]
    if type(value) is list:
        return [path for index, item in enumerate(value) for path in non_plain(item, f"{where}[{index}]")]
    return [f"{where} ({type(value).__module__}.{type(value).__qualname__})"]
