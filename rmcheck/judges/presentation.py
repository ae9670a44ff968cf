"""Presentation operators: how the same responses are shown to a judge (order, labels, sample), not what they say.

A :class:`Presentation` shows a case's k responses in an order (``order[i]`` is the response at position i),
under labels, as sample number ``sample`` of a stochastic judge. An operator gives the presentations to compare
with the original one (responses in the case's order, labelled A, B, ..., sample 0):

- ``swap_order``: the responses in the other order;
- ``relabel``: labels ``1, 2, ...`` instead of ``A, B, ...`` (``labels: [...]`` gives others);
- ``shuffle``: ``n`` seeded permutations of the k responses (listwise cases; a pair's only one is the swap);
- ``repeat``: the original presentation sampled ``n`` times in all.

Every operator also takes ``repeat: N``: each presentation, the original included, is sampled N times.
A change between two presentations is a list of hunks (adjacent swaps, one label, the sample) that the shrinker
removes one by one, so a failure names the smallest presentation change that flips the verdict.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..registry import Registry
from .interface import TIE_LABEL

#: One presentation change: ("swap", i) swaps positions i and i + 1; ("label", i, L) labels position i L;
#: ("sample", s) asks for sample s.
Hunk = tuple[Any, ...]


@dataclass(frozen=True)
class Presentation:
    order: tuple[int, ...]
    labels: tuple[str, ...]
    sample: int = 0

    def position(self, response: int) -> int:
        """Where response number ``response`` is shown."""
        return self.order.index(response)

    def describe(self, roles: Sequence[str]) -> str:
        """``A: chosen, B: rejected`` (with ``, sample 2`` past the first sample)."""
        shown = ", ".join(f"{label}: {roles[i]}" for label, i in zip(self.labels, self.order))
        return shown + (f", sample {self.sample}" if self.sample else "")


def original(k: int) -> Presentation:
    """The case's responses in its order, labelled A, B, ..., sample 0."""
    return Presentation(tuple(range(k)), default_labels(k))


def default_labels(k: int) -> tuple[str, ...]:
    return tuple(string.ascii_uppercase[:k])


def hunks(start: Presentation, end: Presentation) -> list[Hunk]:
    """The changes that turn ``start`` into ``end``: adjacent swaps (a bubble sort), then labels, then the sample."""
    order, swaps = list(start.order), []
    for target, response in enumerate(end.order):
        at = order.index(response)
        for i in range(at - 1, target - 1, -1):
            order[i], order[i + 1] = order[i + 1], order[i]
            swaps.append(("swap", i))
    labels = [("label", i, b) for i, (a, b) in enumerate(zip(start.labels, end.labels)) if a != b]
    return [*swaps, *labels, *([("sample", end.sample)] if end.sample != start.sample else [])]


def apply(start: Presentation, changes: Iterable[Hunk]) -> Presentation:
    """``start`` with ``changes`` applied in order."""
    order, labels, sample = list(start.order), list(start.labels), start.sample
    for hunk in changes:
        if hunk[0] == "swap":
            order[hunk[1]], order[hunk[1] + 1] = order[hunk[1] + 1], order[hunk[1]]
        elif hunk[0] == "label":
            labels[hunk[1]] = hunk[2]
        else:
            sample = hunk[1]
    return Presentation(tuple(order), tuple(labels), sample)


def describe_hunks(changes: Sequence[Hunk], roles: Sequence[str], start: Presentation) -> str:
    """The change in words: ``swap positions 1-2; label of position 2: B -> 2; sample 3 instead of 0``."""
    words = []
    for hunk in changes:
        if hunk[0] == "swap":
            words.append(f"swap positions {hunk[1] + 1}-{hunk[1] + 2}")
        elif hunk[0] == "label":
            words.append(f"label of position {hunk[1] + 1}: {start.labels[hunk[1]]} -> {hunk[2]}")
        else:
            words.append(f"sample {hunk[1]} instead of {start.sample}")
    return "; ".join(words) or "none"


@dataclass(frozen=True)
class Presenter:
    """A presentation operator: ``variants(k, args, seed)`` gives the presentations to compare with the original;
    ``arguments`` names what it takes besides ``repeat``; ``check(args)`` returns a problem, or None."""

    name: str
    variants: Callable[[int, Mapping[str, Any], str], list[Presentation]]
    arguments: tuple[str, ...] = ()
    check: Callable[[Mapping[str, Any]], str | None] = lambda args: None
    changes_order: bool = False
    changes_labels: bool = False


def _swap_order(k: int, args: Mapping[str, Any], seed: str) -> list[Presentation]:
    return [Presentation(tuple(reversed(range(k))), default_labels(k))]


def _relabel(k: int, args: Mapping[str, Any], seed: str) -> list[Presentation]:
    labels = tuple(str(label) for label in args.get("labels", range(1, k + 1)))
    return [Presentation(tuple(range(k)), labels[:k])] if len(labels) >= k else []


def _check_labels(args: Mapping[str, Any]) -> str | None:
    labels = args.get("labels")
    if labels is None:
        return None
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, (str, int)) for x in labels):
        return "labels: must be a list of at least two labels, e.g. labels: ['1', '2']"
    texts = [str(x) for x in labels]
    if len(set(texts)) < len(texts) or any(not t.strip() or "[" in t or "]" in t for t in texts):
        return "labels: must be distinct, not blank, and without brackets"
    if TIE_LABEL in texts[:2]:
        return f"labels: {TIE_LABEL!r} is a pairwise judge's tie verdict ([[{TIE_LABEL}]]), so it cannot label a response"
    return None


def _shuffle(k: int, args: Mapping[str, Any], seed: str) -> list[Presentation]:
    """Up to ``n`` distinct seeded permutations other than the original order (fewer when k! - 1 < n)."""
    rng, found = random.Random(f"shuffle\x1f{seed}"), []
    for _ in range(50 * _count(args)):
        order = tuple(rng.sample(range(k), k))
        if order != tuple(range(k)) and order not in found:
            found.append(order)
        if len(found) == _count(args):
            break
    return [Presentation(order, default_labels(k)) for order in found]


def _repeat(k: int, args: Mapping[str, Any], seed: str) -> list[Presentation]:
    return [replace(original(k), sample=s) for s in range(1, _count(args))]


def _count(args: Mapping[str, Any]) -> int:
    return int(args.get("n", 3))


def _check_count(args: Mapping[str, Any]) -> str | None:
    n = args.get("n", 3)
    return None if isinstance(n, int) and not isinstance(n, bool) and n >= 2 else "n: must be a whole number >= 2"


#: The presentation operators, by name.
PRESENTERS: Registry[Presenter] = Registry("presentation operator", "rmcheck.presentations")
for _presenter in (Presenter("swap_order", _swap_order, changes_order=True),
                   Presenter("relabel", _relabel, ("labels",), _check_labels, changes_labels=True),
                   Presenter("shuffle", _shuffle, ("n",), _check_count, changes_order=True),
                   Presenter("repeat", _repeat, ("n",), _check_count)):
    PRESENTERS.register(_presenter.name, _presenter)


def repeat_count(value: Any) -> str | None:
    """The problem with a ``repeat:`` value, or None."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        return "repeat: must be a whole number >= 1 (the samples per presentation)"
    return None
