"""Expectations, tolerance units, and the expectation registry."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Literal

from .errors import SuiteError
from .registry import Registry, refs

_TOLERANCE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(sd|bt)?\s*$")


@dataclass(frozen=True)
class Tolerance:
    """A tolerance as written: raw score units, standard deviations (``sd``) or a BT margin (``bt``)."""

    value: float = 0.0
    unit: Literal["raw", "sd", "bt"] = "raw"

    @classmethod
    def parse(cls, raw: float | int | str | None, *, where: str | None = None) -> "Tolerance":
        if raw is None:
            return cls()
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return cls(float(raw))
        match = _TOLERANCE.match(str(raw))
        if not match:
            raise SuiteError(f"tolerance {raw!r} is not understood", where=where,
                             fix="Write a number (raw score units), '0.1 sd' or '0.05 bt'")
        return cls(float(match.group(1)), match.group(2) or "raw")  # type: ignore[arg-type]

    def resolve(self, sd: float) -> "Threshold":
        """The threshold in the units margins are measured in (raw scores, or BT probability)."""
        if self.unit == "sd":
            return Threshold(self.value * sd, bt=False)
        return Threshold(self.value, bt=self.unit == "bt")

    def __str__(self) -> str:
        return f"{self.value:g}" if self.unit == "raw" else f"{self.value:g} {self.unit}"


@dataclass(frozen=True)
class Threshold:
    """A resolved tolerance ``t``; ``measure`` maps a raw score delta to the compared margin."""

    value: float
    bt: bool = False

    def measure(self, delta: float) -> float:
        return 1.0 / (1.0 + math.exp(-delta)) - 0.5 if self.bt else delta

    def __str__(self) -> str:
        return f"{self.value:.4g} (BT probability)" if self.bt else f"{self.value:.4g}"


@dataclass(frozen=True)
class Expectation:
    """How a margin ``m`` must relate to the threshold ``t`` for a case to pass.

    ``kind="single"``: m measures score(perturbed) - score(original) of one response.
    ``kind="pair"``: m measures score(chosen) - score(rejected), after the perturbation if any.
    ``judged_by`` names the test kind that judges it, when that is not the default kind (the step
    expectations are judged by kind ``steps``, which measures m on step scores).
    """

    name: str
    kind: Literal["single", "pair"]
    holds: Callable[[float, float], bool]
    rule: str
    needs_perturbation: bool = True
    judged_by: str | None = None


EXPECTATIONS: Registry[Expectation] = Registry("expectation", "rmcheck.expectations", refs(
    "rmcheck.process.expect", "step_lower", "earlier_unchanged", "solution_lower") | refs("rmcheck.judges.kind", "consistent"))


def register_expectation(name: str, kind: Literal["single", "pair"], holds: Callable[[float, float], bool],
                         rule: str, *, needs_perturbation: bool = True) -> Expectation:
    """Add an expectation usable as ``expect: NAME`` (``rule`` is shown in failures, e.g. ``d > t``)."""
    return EXPECTATIONS.register(name, Expectation(name, kind, holds, rule, needs_perturbation))


register_expectation("higher", "single", lambda d, t: d > t, "d > t")
register_expectation("lower", "single", lambda d, t: d < -t, "d < -t")
register_expectation("not_lower", "single", lambda d, t: d >= -t, "d >= -t")
register_expectation("not_higher", "single", lambda d, t: d <= t, "d <= t")
register_expectation("invariant", "single", lambda d, t: abs(d) <= t, "|d| <= t")
register_expectation("prefers_chosen", "pair", lambda d, t: d > t, "chosen - rejected > t",
                     needs_perturbation=False)
register_expectation("preference_kept", "pair", lambda d, t: d > t, "chosen' - rejected' > t")


def get_expectation(name: str, *, where: str | None = None) -> Expectation:
    found = EXPECTATIONS.get(name)
    if found is None:
        raise SuiteError(f"unknown expectation {name!r}", where=where,
                         fix=f"Use one of: {', '.join(EXPECTATIONS.names())}")
    return found
