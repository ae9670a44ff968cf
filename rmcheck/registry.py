"""A named registry, open to users through a decorator and an entry-point group.

Built-ins are named lazily, as ``"module:attribute"`` references that are imported on first lookup (as
lm-eval's registry does), so importing a registry imports none of the code it names. Third-party plugins
come through the registry's entry-point group, loaded on the first lookup of a name not registered.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import Callable, Generic, Iterator, Mapping, TypeVar

T = TypeVar("T")


def refs(module: str, *attributes: str) -> dict[str, str]:
    """``{name: "module:name"}`` for attributes of one module named as they are registered."""
    return {name: f"{module}:{name}" for name in attributes}


def resolve(ref: str) -> object:
    """The object a ``"module:attribute"`` reference names (importing its module)."""
    module, _, attribute = ref.partition(":")
    return getattr(import_module(module), attribute)


@dataclass(frozen=True)
class Ref:
    """A built-in not imported yet: ``"module:attribute"``."""

    target: str


class Registry(Generic[T]):
    """Maps names to objects, in the order registered; ``builtins`` are ``"module:attribute"`` references
    resolved on first lookup; entry points in ``group`` are loaded on the first lookup of a name not registered."""

    def __init__(self, kind: str, group: str | None, builtins: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self.group = group
        self.builtins = tuple(builtins or ())
        self._items: dict[str, T | Ref] = {name: Ref(target) for name, target in (builtins or {}).items()}
        self._entry_points_loaded = group is None

    def register(self, name: str, obj: T, *, replace: bool = False) -> T:
        if name in self._items and self._items[name] is not obj and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass replace=True to override it")
        self._items[name] = obj
        return obj

    def decorator(self, name: str | None = None, *, replace: bool = False) -> Callable[[T], T]:
        def wrap(obj: T) -> T:
            return self.register(name or getattr(obj, "__name__"), obj, replace=replace)

        return wrap

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.group):
            if ep.name not in self._items:
                self._items[ep.name] = ep.load()

    def get(self, name: str) -> T | None:
        if name not in self._items:
            self._load_entry_points()
        found = self._items.get(name)
        if isinstance(found, Ref):
            found = self._items[name] = resolve(found.target)  # type: ignore[assignment]
        return found  # type: ignore[return-value]

    def names(self) -> list[str]:
        """Every registered name, built-ins included, sorted, without importing any of them."""
        return sorted(self.ordered())

    def ordered(self) -> list[str]:
        """Every registered name in the order registered: built-ins first, then plugins."""
        self._load_entry_points()
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
