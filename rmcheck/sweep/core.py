"""A vocabulary sweep: every candidate token scored as the whole response to one prompt.

Models that sweep token ids (:class:`~rmcheck.backends.capabilities.TokenSweep`: ``hf:``) are scored from
token ids (:mod:`rmcheck.sweep.fast`); every other backend
scores each token's decoded text (or each lexicon entry) through the session's
:class:`~rmcheck.scoring.Scorer`, in batched full passes.
"""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..backends.base import OVERALL, Pair, Prompt, RewardModel, Scores, prompt_to_text
from ..backends.capabilities import Tokenized, TokenSweep
from ..errors import BackendError
from ..scoring.scheduler import Scorer
from ..stats import percentiles
from .tokens import Selection, Token, TokenSpec, select

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Ranked:
    """A ranked token: rank 1 is the highest score; percentile 0 is the lowest."""

    token: Token
    score: float
    rank: int
    percentile: float

    def describe(self, total: int, digits: int = 4) -> str:
        """One line; ``digits`` significant digits of the score (:func:`separating_digits` picks enough)."""
        return (f"rank {self.rank:>6} of {total}  pct {self.percentile:5.1f}  score {self.score:+.{digits}g}  "
                f"{self.token.text!r}")


def separating_digits(scores: list[float], least: int = 4, most: int = 12) -> int:
    """The fewest significant digits (at least ``least``) that print neighbouring distinct scores differently."""
    for digits in range(least, most + 1):
        shown = [f"{s:+.{digits}g}" for s in scores]
        if all(a != b for a, b, x, y in zip(shown, shown[1:], scores, scores[1:]) if x != y):
            return digits
    return most


@dataclass
class Sweep:
    """Scores of every candidate of a :class:`Selection` for one prompt and model."""

    model: str
    prompt: Prompt
    selection: Selection
    scores: list[Scores]
    path: str
    seconds: float
    objective: str = OVERALL
    _ranked: list[Ranked] | None = field(default=None, repr=False)

    @property
    def tokens(self) -> list[Token]:
        return self.selection.tokens

    def ranked(self) -> list[Ranked]:
        """Distinct texts (duplicates left out), best first."""
        if self._ranked is None:
            kept = [(t, s[self.objective]) for t, s in zip(self.tokens, self.scores) if t.duplicate_of is None]
            pct = percentiles([score for _, score in kept])
            order = sorted(range(len(kept)), key=lambda i: -kept[i][1])
            self._ranked = [Ranked(kept[i][0], kept[i][1], rank, float(pct[i])) for rank, i in enumerate(order, 1)]
        return self._ranked

    def with_objective(self, objective: str | None, *, where: str | None = None) -> "Sweep":
        """The same sweep ranked by a named head of a multi-objective RM."""
        name = objective or OVERALL
        if self.scores and name not in self.scores[0]:
            heads = ", ".join(sorted(k for k in self.scores[0] if k != OVERALL)) or "none (a single score)"
            raise BackendError(f"model {self.model} has no objective {name!r}", where=where,
                               fix=f"Its objectives are: {heads}")
        return Sweep(self.model, self.prompt, self.selection, self.scores, self.path, self.seconds, name)

    def summary(self) -> list[str]:
        rate = len(self.tokens) / self.seconds if self.seconds else float("inf")
        return [f"prompt: {prompt_to_text(self.prompt)!r}",
                f"tokens ({self.selection.spec}): {self.selection.summary()}",
                f"path: {self.path}",
                f"time: {self.seconds:.2f} s ({rate:,.0f} tokens/s)"]

    def table(self, k: int) -> list[str]:
        """The top and bottom ``k`` tokens, one line each."""
        ranked, total = self.ranked(), len(self.ranked())
        head = f"by {self.objective}" if self.objective != OVERALL else "by score"
        top, bottom = ranked[:k], ranked[::-1][:k]
        digits = separating_digits([r.score for r in top] + [r.score for r in bottom][::-1])
        lines = [f"top {min(k, total)} {head}:"] + [f"  {r.describe(total, digits)}" for r in top]
        lines += [f"bottom {min(k, total)} {head}:"] + [f"  {r.describe(total, digits)}" for r in bottom]
        return lines

    def write_csv(self, path: str | Path, groups: dict[str, frozenset[str]] | None = None) -> Path:
        """Every scored token, best first, duplicates last: rank, percentile, id, text, scores, groups."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        heads = [k for k in (self.scores[0] if self.scores else {}) if k != OVERALL]
        ranks = {r.token: r for r in self.ranked()}
        rows = sorted(zip(self.tokens, self.scores), key=lambda ts: (ts[0].duplicate_of is not None,
                                                                     -ts[1][self.objective]))
        with target.open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(["rank", "percentile", "id", "text", "is_word", "duplicate_of", "score", *heads, "groups"])
            for token, scores in rows:
                ranked = ranks.get(token)
                member = [name for name, keys in (groups or {}).items() if token.key in keys]
                out.writerow([ranked.rank if ranked else "", f"{ranked.percentile:.3f}" if ranked else "",
                              "" if token.id is None else token.id, token.text, int(token.is_word),
                              "" if token.duplicate_of is None else token.duplicate_of,
                              repr(scores[OVERALL]), *(repr(scores[h]) for h in heads), ";".join(member)])
        return target


def sweep_tokens(model: RewardModel, prompt: Prompt, selection: Selection, *, scorer: Scorer | None = None,
                 batch_size: int | None = None, progress: Progress | None = None, prefix_sharing: bool = True) -> Sweep:
    """Score every token of ``selection`` as the whole response to ``prompt`` (in full forward passes only,
    without ``prefix_sharing``)."""
    started = time.perf_counter()
    tokens = selection.tokens
    if isinstance(model, TokenSweep) and all(t.id is not None for t in tokens):
        from .fast import STRATEGIES, IdScorer, Unsupported

        try:
            fast = IdScorer(model, prompt, batch_size=batch_size, strategies=STRATEGIES if prefix_sharing else ())
        except Unsupported as exc:
            path = f"full passes over decoded token text (token ids unusable: {exc})"
        else:
            scores = fast.score([t.id for t in tokens if t.id is not None], progress)
            return Sweep(model.spec, prompt, selection, scores, fast.path, time.perf_counter() - started)
    else:
        path = "full passes over decoded token text, batched by the scorer"
    scorer = scorer or Scorer(model, batch_size=batch_size, prefix_sharing=prefix_sharing)
    pairs = [Pair(prompt, t.text) for t in tokens]
    found = scorer.score(pairs, progress)
    return Sweep(model.spec, prompt, selection, [found[p] for p in pairs], path, time.perf_counter() - started)


def select_for(model: RewardModel, spec: TokenSpec, tokenizer: Any | None) -> Selection:
    """The candidates of ``spec`` in the vocabulary of ``tokenizer``, else of the model's own tokenizer."""
    own = model.tokenizer if isinstance(model, Tokenized) else None
    if tokenizer is not None and own is not None:
        raise BackendError(f"{model.spec} sweeps its own tokenizer's vocabulary",
                           fix="Drop tokenizer: (--tokenizer); it is for models without one, such as python:")
    rows = model.model.get_input_embeddings().num_embeddings if isinstance(model, TokenSweep) else None
    return select(spec, tokenizer or own, max_id=rows)
