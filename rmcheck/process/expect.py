"""The step expectations, judged by ``kind: steps`` on a solution's step scores before (s) and after (s') an edit.

k is the first edited step: the first index where the edited steps differ from the original ones.

- ``step_lower``: s'[k] - s[k] < -t (the edited step's score drops);
- ``earlier_unchanged``: max |s'[j] - s[j]| <= t over j < k (a causal PRM: later text never moves earlier scores);
- ``solution_lower``: agg(s') - agg(s) < -t, with ``aggregate: min`` (the default), ``last`` or ``product``.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

from ..expect import Expectation

KIND = "steps"
AGGREGATES: dict[str, Callable[[Sequence[float]], float]] = {
    "min": min, "last": lambda scores: scores[-1], "product": math.prod}
DEFAULT_AGGREGATE = "min"

step_lower = Expectation("step_lower", "single", lambda m, t: m < -t, "s'[k] - s[k] < -t at the first edited step k",
                         judged_by=KIND)
earlier_unchanged = Expectation("earlier_unchanged", "single", lambda m, t: m <= t,
                                "max |s'[j] - s[j]| <= t over the steps j before the first edited step",
                                judged_by=KIND)
solution_lower = Expectation("solution_lower", "single", lambda m, t: m < -t, "agg(s') - agg(s) < -t",
                             judged_by=KIND)


def first_edited(before: Sequence[str], after: Sequence[str]) -> int:
    """The first index where two step lists differ (the shorter one's length when one is the other's start)."""
    return next((k for k, (a, b) in enumerate(zip(before, after)) if a != b), min(len(before), len(after)))


def margin(name: str, before: Sequence[float], after: Sequence[float], first: int,
           aggregate: str = DEFAULT_AGGREGATE) -> tuple[float | None, str]:
    """The margin m an expectation compares with t, or None with the reason it does not apply."""
    if name == "step_lower":
        if first >= len(after):
            return None, f"the edit leaves no step {first} to score (it removed the last step)"
        if first >= len(before):
            return None, "the edit only adds steps after the last one"
        return after[first] - before[first], ""
    if name == "earlier_unchanged":
        if first == 0:
            return None, "the edit is at the first step: no earlier step to compare"
        return max(abs(after[j] - before[j]) for j in range(first)), ""
    return AGGREGATES[aggregate](after) - AGGREGATES[aggregate](before), ""
