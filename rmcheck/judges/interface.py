"""The judge interface: models that compare responses instead of scoring each one alone.

A :class:`Judge` answers :class:`Query` objects (a prompt and k responses in the order and under the labels they
are shown) with :class:`Verdict` objects: P(each shown response is the best), or no probabilities where an LLM's
answer did not parse (its raw text is kept either way). Pairwise judges take k = 2; a listwise judge takes its own
k. Any scalar reward model is a judge through :class:`ScalarJudge`: P(first is better) = sigmoid(s1 - s2) (a
softmax over the k scores), so every judge suite runs on scalar RMs too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from ..backends.base import OVERALL, Pair, Prompt
from ..backends.capabilities import Judge
from ..errors import BackendError

if TYPE_CHECKING:
    from ..engine import Engine

#: A pairwise LLM judge's verdict for a tie (``[[C]]``); a relabelled pair may not use it as a label.
TIE_LABEL = "C"


@dataclass(frozen=True)
class Query:
    """What a judge is shown: the prompt, the responses in their shown order with their labels, and which
    sample this is (a stochastic judge answers sample 0, 1, ... independently)."""

    prompt: Prompt
    responses: tuple[str, ...]
    labels: tuple[str, ...]
    sample: int = 0


@dataclass(frozen=True)
class Verdict:
    """P(each shown response is the best), None for an answer that did not parse; ``raw`` is an LLM's answer."""

    probs: tuple[float, ...] | None
    raw: str | None = None

    @property
    def parsed(self) -> bool:
        return self.probs is not None

    @property
    def best(self) -> int | None:
        """The shown position of the best response; None for a tie at the top (or no parse)."""
        if self.probs is None:
            return None
        top = max(self.probs)
        winners = [i for i, p in enumerate(self.probs) if p == top]
        return winners[0] if len(winners) == 1 else None


def is_judge(model: object) -> bool:
    """True for a model that compares responses (a :class:`Judge`), False for a scalar reward model."""
    return isinstance(model, Judge)


def judge_of(engine: "Engine", spec: str) -> Judge:
    """The model ``spec`` names as a judge: itself, or a scalar RM through :class:`ScalarJudge`."""
    model = engine.model(spec)
    return model if isinstance(model, Judge) else ScalarJudge(engine, spec)


class ScalarJudge:
    """A scalar reward model as a judge: P(each response is best) = softmax of the scores, which for a pair is
    sigmoid(s1 - s2). Scores go through the engine (deduplicated, cached); labels and samples change nothing."""

    size: int | None = None
    reads_labels = False

    def __init__(self, engine: "Engine", spec: str) -> None:
        self.engine, self.spec = engine, spec

    def describe(self) -> str:
        return f"{self.spec} as a judge: P(first better) = sigmoid(s1 - s2)"

    def judge(self, queries: Sequence[Query]) -> list[Verdict]:
        scores = self.engine.score(self.spec, (Pair(q.prompt, r) for q in queries for r in q.responses))
        return [Verdict(softmax([scores[Pair(q.prompt, r)][OVERALL] for r in q.responses])) for q in queries]


def softmax(values: Sequence[float]) -> tuple[float, ...]:
    """Softmax, exact for ties (equal values give equal probabilities)."""
    top = max(values)
    weights = [math.exp(v - top) for v in values]
    total = sum(weights)
    return tuple(w / total for w in weights)


def probability(value: object, spec: str, name: str) -> float:
    """``value`` as P(first is better), or one :class:`BackendError` naming the model and the pair."""
    fix = "Return one probability P(first is better) in [0, 1] per pair (0.5 is a tie)"
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise BackendError(f"model {spec} returned {type(value).__name__} {value!r:.40} for {name}, not a number",
                           fix=fix)
    number = float(value)  # type: ignore[arg-type]
    if not 0.0 <= number <= 1.0:  # NaN fails this too
        raise BackendError(f"model {spec} returned {number} for {name}, outside [0, 1]", fix=fix)
    return number
