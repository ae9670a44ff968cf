"""Process reward models: one score per step of a solution (the ``StepScores`` capability).

A ``python:MODULE:FN`` whose ``FN.rmcheck_interface = "process"`` is called as
``FN(prompts: list[str], steps: list[list[str]]) -> list[list[float]]``; ``hf:MODEL?prm=...`` loads one with
transformers (:mod:`.hf`). Step tests and ``kind: processbench`` need
this capability: against a model without it their cases are not applicable. Step scores are deduplicated and kept
for the run by :class:`StepScorer`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from ..backends.base import MAX_SCORE, OVERALL, Pair, Prompt, Scores, prompt_to_text
from ..backends.capabilities import StepScores
from ..backends.python_callable import PythonRewardModel
from ..errors import BackendError, ScoreError
from ..results import CaseResult, TestResult
from .cases import join_steps, split_steps

if TYPE_CHECKING:
    from ..engine import Engine, Request

#: The value of ``FN.rmcheck_interface`` that makes a ``python:`` callable a process model.
INTERFACE = "process"


@dataclass(frozen=True)
class Solution:
    """A prompt and the steps of its solution: what a process model scores. Hashable."""

    prompt: Prompt
    steps: tuple[str, ...]

    @property
    def response(self) -> str:
        return join_steps(self.steps)


class PythonProcessModel(PythonRewardModel):
    """``python:MODULE:FN`` with ``FN.rmcheck_interface = "process"``: ``FN(prompts, steps)``, one score per step.

    As a scalar RM (ordinary suites, an ``sd`` tolerance) it scores a response split into steps at blank lines,
    and the response's score is the lowest step score (``aggregate: min``)."""

    def describe(self) -> str:
        return super().describe().replace("python callable", "process model (one score per step)", 1)

    def score_steps(self, solutions: Sequence[Solution]) -> list[list[float]]:
        prompts = [prompt_to_text(s.prompt) for s in solutions]
        try:
            raw = self.fn(prompts, [list(s.steps) for s in solutions])
        except (Exception, SystemExit) as exc:  # the user's function failing is a user error
            raise BackendError(f"{type(exc).__name__} in {self.spec}: {exc}",
                               fix="Fix the process model (it is called with lists of prompts and of step lists)"
                               ) from exc
        return checked_steps(raw, solutions, self.spec)

    def score(self, pairs: Sequence[Pair]) -> list[Scores]:
        return lowest_step_scores(self, pairs)


def lowest_step_scores(model: StepScores, pairs: Sequence[Pair]) -> list[Scores]:
    """A process model's scalar scores: each response split into steps at blank lines, its lowest step score."""
    scores = model.score_steps([Solution(p.prompt, split_steps(p.response)) for p in pairs])
    return [{OVERALL: min(values)} for values in scores]


def build_python(spec: str, fn: Callable[..., Any]) -> PythonProcessModel:
    """The ``python:`` backend's builder for callables of the ``process`` interface."""
    return PythonProcessModel(spec, fn)


def checked_steps(raw: Any, solutions: Sequence[Solution], spec: str) -> list[list[float]]:
    """A process model's answer, checked: one list per solution, one finite float per step; else one
    :class:`ScoreError` naming the model and the solution."""
    fix = "Return a list with one list of floats per solution, one float per step"
    if isinstance(raw, (str, bytes, dict)) or not isinstance(raw, Iterable):
        raise ScoreError(f"process model {spec} returned {type(raw).__name__}, not a list of step-score lists", fix=fix)
    rows = list(raw)
    if len(rows) != len(solutions):
        raise ScoreError(f"process model {spec} returned {len(rows)} step-score lists for {len(solutions)} "
                         "solutions", fix=fix)
    out = []
    for index, (row, solution) in enumerate(zip(rows, solutions)):
        name = f"solution {index} (prompt {prompt_to_text(solution.prompt)[:40]!r})"
        if isinstance(row, (str, bytes, dict)) or not isinstance(row, Iterable):
            raise ScoreError(f"process model {spec} returned {type(row).__name__} for {name}, not a list", fix=fix)
        values = list(row)
        if len(values) != len(solution.steps):
            raise ScoreError(f"process model {spec} returned {len(values)} scores for the {len(solution.steps)} "
                             f"steps of {name}", fix=fix)
        out.append([_finite(v, spec, f"step {k} of {name}") for k, v in enumerate(values)])
    return out


def _finite(value: Any, spec: str, name: str) -> float:
    try:
        number = float(value) if not isinstance(value, (str, bytes, bool)) else math.nan
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if isinstance(value, (str, bytes, bool)) or not math.isfinite(number) or abs(number) > MAX_SCORE:
        raise ScoreError(f"process model {spec} returned {value!r:.40} for {name}, not a finite number",
                         fix="Return finite floats; rmcheck never treats NaN or infinity as a score")
    return number


class StepScorer:
    """Step scores of one model for a run: each distinct solution scored once, in batches."""

    def __init__(self, model: StepScores, batch_size: int) -> None:
        self.model, self.batch_size = model, batch_size
        self.memo: dict[Solution, tuple[float, ...]] = {}

    def score(self, solutions: Iterable[Solution], *, fresh: bool = False) -> dict[Solution, tuple[float, ...]]:
        """Step scores of every solution; ``fresh`` asks the model again (to replay a finding), memo untouched."""
        wanted = list(dict.fromkeys(solutions))
        todo = wanted if fresh else [s for s in wanted if s not in self.memo]
        found: dict[Solution, tuple[float, ...]] = {}
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            found.update(zip(batch, map(tuple, self.model.score_steps(batch))))
        if fresh:
            return {s: found[s] for s in wanted}
        self.memo.update(found)
        return {s: self.memo[s] for s in wanted}


def step_scorer(engine: "Engine", spec: str) -> StepScorer | None:
    """The run's step scorer for ``spec``, or None when the model gives no step scores."""
    scorers = engine.scratch("process")
    if spec not in scorers:
        model = engine.model(spec)
        scorers[spec] = StepScorer(model, engine.options.batch_size or 32) if isinstance(model, StepScores) else None
    return scorers[spec]


def unscored(request: "Request", spec: str, result: TestResult) -> TestResult:
    """``result`` with every case of the suite not applicable, since ``spec`` gives no step scores."""
    reason = (f"{spec} gives no step scores: this test needs a process model (python:MODULE:FN with "
              f'FN.rmcheck_interface = "{INTERFACE}", hf:MODEL?prm=shepherd|qwen, or a served PRM: URL?steps=on)')
    result.cases = [CaseResult(c.id, "not_applicable", source=c.source, reason=reason) for c in request.suite.cases]
    return result
