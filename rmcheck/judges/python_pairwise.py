"""``python:MODULE:FN`` with ``FN.rmcheck_interface = "pairwise"``: a Python function as a pairwise judge.

``FN(prompts, first, second) -> list[float]`` gives P(first is better) in [0, 1] per pair (0.5 is a tie).
Every sample of a ``repeat:`` test is a separate call, so a stochastic function is sampled afresh each time.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..backends.base import Pair, Scores
from ..backends.python_callable import PythonRewardModel
from ..errors import BackendError
from .interface import Query, Verdict, probability

FIX = "Return a list with one probability P(first is better) in [0, 1] per pair"


class PythonPairwise(PythonRewardModel):
    """Calls ``fn(prompts, first, second)`` once per sample; conversation prompts arrive as ``Role: content`` text."""

    size = 2
    reads_labels = False

    def describe(self) -> str:
        return super().describe().replace("python callable", "pairwise python callable", 1)

    def score(self, pairs: Sequence[Pair]) -> list[Scores]:
        raise BackendError(f"model {self.spec} is a pairwise judge (rmcheck_interface = 'pairwise'): it compares two "
                           "responses and scores none alone",
                           fix="Run it on pairwise tests (expect: consistent, kind: best_of_n), e.g. "
                               "suites/judge-consistency.rmcheck.yaml, or give a scalar reward model")

    def judge(self, queries: Sequence[Query]) -> list[Verdict]:
        out: dict[int, Verdict] = {}
        for sample in sorted({q.sample for q in queries}):
            batch = [(i, q) for i, q in enumerate(queries) if q.sample == sample]
            for (i, q), p in zip(batch, self._compare([q for _, q in batch])):
                out[i] = Verdict((p, 1.0 - p))
        return [out[i] for i in range(len(queries))]

    def _compare(self, queries: Sequence[Query]) -> list[float]:
        if any(len(q.responses) != 2 for q in queries):
            raise BackendError(f"model {self.spec} compares two responses at a time", fix="Give it pair cases")
        prompts = [Pair(q.prompt, "").prompt_text for q in queries]
        try:
            raw: Any = self.fn(prompts, [q.responses[0] for q in queries], [q.responses[1] for q in queries])
        except (Exception, SystemExit) as exc:  # the user's function failing is a user error
            raise BackendError(f"{type(exc).__name__} in {self.spec}: {exc}",
                               fix="Fix the judge (it is called with lists of prompts, first and second responses)") from exc
        if isinstance(raw, (str, bytes, dict)) or not hasattr(raw, "__len__"):
            raise BackendError(f"model {self.spec} returned {type(raw).__name__}, not a list of probabilities", fix=FIX)
        if len(raw) != len(queries):
            raise BackendError(f"model {self.spec} returned {len(raw)} probabilities for {len(queries)} pairs", fix=FIX)
        return [probability(value, self.spec, f"pair {i} (prompt {prompts[i][:40]!r})") for i, value in enumerate(raw)]


def build_python(spec: str, fn: Any) -> PythonPairwise:
    """The ``python:`` backend's builder for callables of the ``pairwise`` interface."""
    return PythonPairwise(spec, fn)
