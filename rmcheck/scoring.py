"""The scheduler between tests and a model: deduplicate, sort by length, batch, memoise."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from .backends.base import Pair, RewardModel, Scores, normalise_scores

ProgressCallback = Callable[[int, int], None]

DEFAULT_BATCH_SIZE = 32


@dataclass
class ScoringStats:
    """What a :class:`Scorer` has done: counts tests assert on, and the benchmark prints."""

    requested: int = 0
    forward_pairs: int = 0
    batches: int = 0
    memo_hits: int = 0


class Scorer:
    """Scores pairs for one model; a pair is never sent to the model twice in a session."""

    def __init__(self, model: RewardModel, *, batch_size: int | None = None) -> None:
        self.model = model
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE
        self.memo: dict[Pair, Scores] = {}
        self.stats = ScoringStats()

    def score(self, pairs: Iterable[Pair], progress: ProgressCallback | None = None) -> dict[Pair, Scores]:
        """Scores for every pair asked for; only pairs not seen before reach the model."""
        wanted = list(dict.fromkeys(pairs))
        self.stats.requested += len(wanted)
        todo = [p for p in wanted if p not in self.memo]
        self.stats.memo_hits += len(wanted) - len(todo)
        todo.sort(key=_length)
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            self.memo.update(zip(batch, self._forward(batch)))
            if progress:
                progress(min(start + self.batch_size, len(todo)), len(todo))
        return {p: self.memo[p] for p in wanted}

    def replay(self, pairs: Sequence[Pair]) -> list[Scores]:
        """Score again from the model itself, bypassing the memo (to confirm a counterfactual)."""
        return self._forward(list(pairs))

    def _forward(self, batch: list[Pair]) -> list[Scores]:
        self.stats.forward_pairs += len(batch)
        self.stats.batches += 1
        return normalise_scores(self.model.score(batch), len(batch), self.model.spec)


def _length(pair: Pair) -> int:
    return len(pair.prompt_text) + len(pair.response)
