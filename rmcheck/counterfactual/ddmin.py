"""Delta debugging over edits: the smallest failing subset.

:func:`ddmin` is a generator so that many searches can advance in lockstep (:func:`.minimise.minimise`):
each round it yields its candidate subsets, the driver scores every search's candidates in one batch and
sends back which of them still fail. Like Hypothesis, it skips what it has seen, counts every call
against a budget and is deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generator

Subset = tuple[int, ...]


@dataclass(frozen=True)
class Shrunk:
    """The smallest failing subset found, and whether it is proven 1-minimal."""

    keep: Subset
    one_minimal: bool
    calls: int


Shrinker = Generator[list[Subset], list[bool], Shrunk]


def ddmin(n_hunks: int, budget: int = 100) -> Shrinker:
    """Shrink ``range(n_hunks)`` (known to fail) to a 1-minimal failing subset.

    The empty subset is assumed to pass (the caller checks that first). The
    result is 1-minimal when removing any single remaining hunk was tested and
    passed; it is not when the budget ran out first.
    """
    current: Subset = tuple(range(n_hunks))
    known: dict[Subset, bool] = {current: True}
    calls, granularity = 0, 2
    while len(current) >= 2:
        chunks = _split(current, granularity)
        complements = [tuple(i for i in current if i not in set(c)) for c in chunks] if granularity > 2 else []
        candidates = list(dict.fromkeys(chunks + complements))
        fresh = [c for c in candidates if c not in known][: max(budget - calls, 0)]
        if fresh:
            calls += len(fresh)
            known.update(zip(fresh, (yield fresh)))
        tested = [c for c in candidates if c in known]
        failing = [c for c in tested if known[c]]
        if failing:
            current = min(failing, key=len)
            granularity = 2 if current in chunks else max(granularity - 1, 2)
            continue
        if len(tested) < len(candidates):
            return Shrunk(current, one_minimal=False, calls=calls)
        if granularity >= len(current):
            break
        granularity = min(granularity * 2, len(current))
    return Shrunk(current, one_minimal=True, calls=calls)


def _split(items: Subset, parts: int) -> list[Subset]:
    """``items`` cut into ``parts`` contiguous, nearly equal chunks."""
    size, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        chunks.append(items[start:end])
        start = end
    return [c for c in chunks if c]


def drive(shrinker: Shrinker, fails: Callable[[Subset], bool]) -> Shrunk:
    """Run one shrinker to the end with a plain predicate (for tests and one-off use)."""
    try:
        candidates = next(shrinker)
        while True:
            candidates = shrinker.send([fails(c) for c in candidates])
    except StopIteration as stop:
        return stop.value
