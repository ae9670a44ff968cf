"""A bounded memo for what a backend computes per pair or per prompt and is likely to be asked for again soon."""
from __future__ import annotations

from typing import Callable, Generic, Hashable, MutableMapping, Sequence, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Items a backend keeps (pairs checked before they are scored, prompts rendered); the oldest go first.
KEPT_ITEMS = 4096


class Recent(Generic[K, V]):
    """The ``limit`` most recently added items of a mapping; adding past it drops the oldest."""

    def __init__(self, limit: int = KEPT_ITEMS) -> None:
        self.limit = limit
        self.items: dict[K, V] = {}

    def __contains__(self, key: K) -> bool:
        return key in self.items

    def get(self, key: K) -> V | None:
        return self.items.get(key)

    def add(self, key: K, value: V) -> V:
        """Keep ``value`` under ``key``, and return it."""
        self.items[key] = value
        while len(self.items) > self.limit:
            del self.items[next(iter(self.items))]
        return value

    def pop(self, key: K) -> V | None:
        return self.items.pop(key, None)

    def fill(self, keys: Sequence[K], compute: Callable[[list[K]], list[V]]) -> list[V]:
        """The value of each of ``keys``: kept ones as they are, the others computed in one call and kept."""
        found = {key: self.items.get(key) for key in dict.fromkeys(keys)}
        new = [key for key, value in found.items() if value is None]
        for key, value in zip(new, compute(new)):
            found[key] = self.add(key, value)
        return [found[key] for key in keys]  # type: ignore[misc]


def take(kept: MutableMapping[K, V] | Recent[K, V], keys: Sequence[K],
         compute: Callable[[list[K]], list[V]]) -> list[V]:
    """The value of each of ``keys``: those in ``kept`` (taken out of it), the others computed in one call."""
    distinct = list(dict.fromkeys(keys))
    found = {key: kept.pop(key) for key in distinct if key in kept}
    missing = [key for key in distinct if key not in found]
    found.update(zip(missing, compute(missing)))
    return [found[key] for key in keys]
