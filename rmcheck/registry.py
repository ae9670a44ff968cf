"""A named registry, open to users through a decorator and an entry-point group."""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; entry points in ``group`` are loaded on first lookup."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._items: dict[str, T] = {}
        self._entry_points_loaded = False

    def register(self, name: str, obj: T, *, replace: bool = False) -> T:
        if name in self._items and not replace and self._items[name] is not obj:
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
        return self._items.get(name)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
