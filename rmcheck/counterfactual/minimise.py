"""One search for minimal counterfactuals, for expectation tests, step tests, judge tests and ``rmcheck explain``.

A :class:`Search` is an edit set known to fail (it breaks an expectation, flips a preference or a verdict).
:func:`minimise` runs ddmin on every search in lockstep: each round, every pending search's candidates are
scored as one batch, and each search says which of its candidates still fail; every call counts against the
budget. The smallest subset found is then replayed (scored again, outside the batches that found it) before it
is reported: one that no longer fails is flaky, never a false explanation. Searches that explain one thing (one
``group``) replay only the one with the fewest edits left.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Hashable, Iterable, Literal, Mapping, Sequence, TypeVar

from .ddmin import Shrinker, Shrunk, Subset, ddmin

X = TypeVar("X")  # what the model scores: a Pair, a step Solution, a judge's Query
Scores = Mapping[Any, Any]
Status = Literal["minimal", "budget", "unshrinkable", "flaky", "as_written"]


@dataclass(frozen=True)
class Search(Generic[X]):
    """A failing edit set: ``size`` edits; ``inputs(keep)``, what the model scores to judge the edits in ``keep``;
    ``fails(keep, scores)``, whether they still fail."""

    size: int
    inputs: Callable[[Subset], Iterable[X]]
    fails: Callable[[Subset, Scores], bool]
    group: Hashable = None  # searches of one group (not None): only the one with the fewest edits left is reported


@dataclass(frozen=True)
class Found:
    """A search's result: the smallest failing subset found, its status, and the scores that confirmed it."""

    keep: Subset
    size: int
    status: Status
    scores: Scores  # the replay's (and whatever it did not score again); empty for an edit set as written

    @property
    def shown(self) -> Subset:
        """The edits to show: the minimal ones, or all of them when the minimal ones did not fail again."""
        return tuple(range(self.size)) if self.status == "flaky" else self.keep


def minimise(searches: Sequence[Search[X]], score: Callable[[list[X], int], Scores],
             replay: Callable[[list[X]], Scores], budget: int) -> dict[int, Found]:
    """Every search's minimal failing subset, by its index in ``searches`` (a search left out lost to another of
    its group). ``score(inputs, n)`` scores one round's candidates of ``n`` searches as one batch; ``replay(inputs)``
    scores the minimal subsets again. A search without edits is reported as written, unscored."""
    shrunk = _lockstep(searches, score, budget)
    best: dict[Hashable, int] = {}
    for i, small in shrunk.items():
        key = (False, i) if searches[i].group is None else (True, searches[i].group)
        if key not in best or len(small.keep) < len(shrunk[best[key]].keep):
            best[key] = i
    chosen = sorted(best.values())
    fresh = replay([x for i in chosen for x in searches[i].inputs(shrunk[i].keep)]) if chosen else {}
    found = {i: Found((), 0, "as_written", {}) for i, search in enumerate(searches) if not search.size}
    for i in chosen:
        small, search = shrunk[i], searches[i]
        status: Status = ("minimal" if small.one_minimal else "budget") if search.fails(small.keep, fresh) else "flaky"
        found[i] = Found(small.keep, search.size, status, fresh)
    return found


def _lockstep(searches: Sequence[Search[X]], score: Callable[[list[X], int], Scores], budget: int
              ) -> dict[int, Shrunk]:
    """ddmin on every search with edits, together: each round one ``score`` call serves every pending search."""
    shrinkers: dict[int, Shrinker] = {i: ddmin(s.size, budget) for i, s in enumerate(searches) if s.size}
    pending: dict[int, list[Subset]] = {}
    done: dict[int, Shrunk] = {}

    def advance(i: int, results: list[bool] | None) -> None:
        try:
            pending[i] = next(shrinkers[i]) if results is None else shrinkers[i].send(results)
        except StopIteration as stop:
            pending.pop(i, None)
            done[i] = stop.value

    for i in shrinkers:
        advance(i, None)
    while pending:
        scores = score([x for i, subsets in pending.items() for c in subsets for x in searches[i].inputs(c)],
                       len(pending))
        for i, subsets in list(pending.items()):
            advance(i, [searches[i].fails(c, scores) for c in subsets])
    return dict(sorted(done.items()))
