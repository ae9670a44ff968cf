"""The scheduler between tests and a model: deduplicate, look up the cache, sort by length, batch, memoise.

A model that counts tokens (:class:`~rmcheck.backends.capabilities.CountsTokens`, as
``hf:`` models do) gets batches sized by a budget of padded tokens: pairs are sorted by
length, so each batch pads to its own longest pair (dynamic padding), and a batch
grows while (pairs x longest length) stays within the budget and the pair cap. Other
models get length-sorted batches of up to ``max_pairs``. A model is read from and
written to the on-disk cache only when it is ``cacheable`` (:class:`~rmcheck.backends.capabilities.Fingerprinted`:
its fingerprint covers everything that can change a score); each batch is written as soon as it is scored,
and replays of minimal pairs are kept apart from other scores. What a model reads of each pair
(:meth:`Scorer.inputs`) is kept there too, as a digest.
Decoder ``hf:`` models and local ``dpo:`` models share prefixes (:mod:`rmcheck.scoring.prefix`): pairs
with a long common token prefix are scored from its KV cache, the others in the batches above; a score is cached under
the same key whichever path computed it (the paths agree within the probe's tolerance).
"""
from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass, fields
from typing import Any, Callable, Container, Iterable, Mapping, Sequence

from ..backends.base import Pair, RewardModel, Scores, normalise_scores
from ..backends.capabilities import CountsTokens, PrefixHead, ShowsInputs, cacheable, model_inputs
from .cache import ScoreCache, input_digest
from .device import Shape
from .prefix import NO_SHARING, PrefixSharing, Work

ProgressCallback = Callable[[int, int], None]

#: The most pairs in one forward pass, and the most padded tokens (pairs x longest pair) for models that
#: count tokens. ``benchmarks/bench_scoring.py --study`` on a 2-core CPU (demo and tiny Llama RMs, long
#: and short pairs): length-sorting is what matters (unsorted batches of 32 were 1.0-2.5x slower);
#: sorted batches of 16-32 pairs and budgets of 4096-16384 tokens were within 6% of the best in
#: every set, while 128 pairs a batch were 10-20% slower.
DEFAULT_BATCH_SIZE = 32
DEFAULT_BATCH_TOKENS = 8192
#: Suffix of the cache key under which replays of minimal pairs are kept.
REPLAYS = ":replays"


@dataclass(frozen=True)
class BatchPolicy:
    """How pairs are grouped into forward passes."""

    max_pairs: int = DEFAULT_BATCH_SIZE
    max_tokens: int = DEFAULT_BATCH_TOKENS  # ignored for models that do not count tokens

    @classmethod
    def of(cls, batch_size: int | None, batch_tokens: int | None) -> "BatchPolicy":
        """The policy for the ``--batch-size`` and ``--batch-tokens`` options (None: the default)."""
        return cls(batch_size or DEFAULT_BATCH_SIZE, batch_tokens or DEFAULT_BATCH_TOKENS)

    def plan(self, pairs: Sequence[Pair], lengths: Sequence[int], *, by_tokens: bool) -> list[list[Pair]]:
        """Batches of ``pairs`` (sorted by ``lengths``, ascending): full by count, or by the token budget."""
        batches: list[list[Pair]] = []
        budget = self.max_tokens if by_tokens else None
        for pair, length in zip(pairs, lengths):
            last = batches[-1] if batches else []
            if last and len(last) < self.max_pairs and (budget is None or (len(last) + 1) * length <= budget):
                last.append(pair)
            else:
                batches.append([pair])
        return batches

    def describe(self, *, by_tokens: bool) -> str:
        if by_tokens:
            return f"length-sorted batches of at most {self.max_pairs} pairs and {self.max_tokens} padded tokens"
        return f"length-sorted batches of at most {self.max_pairs} pairs"


@dataclass
class ScoringStats:
    """What a :class:`Scorer` has done: counts tests assert on, and the benchmark prints."""

    requested: int = 0  # distinct pairs per call, summed over calls: memo hits + cache hits + forward pairs
    memo_hits: int = 0
    cache_hits: int = 0
    forward_pairs: int = 0
    batches: int = 0
    tokens: int = 0  # tokens of the pairs sent (models that count tokens)
    padded_tokens: int = 0  # tokens of the padded batches, padding included
    shared_pairs: int = 0  # pairs scored from a shared prefix's KV cache (counted in forward_pairs too)
    shared_tokens: int = 0  # tokens of those pairs (counted in tokens too)
    computed_tokens: int = 0  # tokens the model ran: each shared prefix once, no padding

    def __add__(self, other: "ScoringStats") -> "ScoringStats":
        return ScoringStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def summary(self) -> str:
        text = (f"{self.requested} pairs asked for: {self.memo_hits} already scored this run, "
                f"{self.cache_hits} from the cache, {self.forward_pairs} scored in {self.batches} forward passes")
        if self.tokens:
            padding = self.padded_tokens - (self.tokens - self.shared_tokens)
            text += f" ({self.tokens} tokens, {padding} padding"
            if self.shared_pairs:
                text += (f"; {self.shared_pairs} pairs from shared prefixes: {self.computed_tokens} tokens computed, "
                         f"{self.tokens / max(self.computed_tokens, 1):.1f}x fewer")
            text += ")"
        return text


class Scorer:
    """Scores pairs for one model; a pair is never sent to the model twice in a session,
    nor at all when the cache holds it for this model's fingerprint."""

    def __init__(self, model: RewardModel, *, batch_size: int | None = None, batch_tokens: int | None = None,
                 cache: ScoreCache | None = None, prefix_sharing: bool = True) -> None:
        self.model = model
        self.policy = BatchPolicy.of(batch_size, batch_tokens)
        self.cache = cache if cacheable(model) else None
        self.memo: dict[Pair, Scores] = {}
        self.stats = ScoringStats()
        self.shapes: list[Shape] = []  # each forward pass of a model that counts tokens (a device profile prices them)
        self._token_lengths = model.token_lengths if isinstance(model, CountsTokens) else None
        # an encoder attends both ways: a prefix's KV depends on what follows
        encoder = isinstance(model, PrefixHead) and model.encoder
        self.sharing = PrefixSharing.of(model) if prefix_sharing and not encoder else None
        self._path = (NO_SHARING if not prefix_sharing
                      else "full forward passes (shared prefixes not used: an encoder, which attends both ways)"
                      if encoder else "full forward passes (the model gives no token ids to share)")

    def describe(self) -> str:
        """The batching, caching and scoring path in effect, for run headers."""
        batching = self.policy.describe(by_tokens=self._token_lengths is not None)
        if self.cache is not None:
            caching = f"score cache {self.cache.directory}"
        elif cacheable(self.model):
            caching = "score cache off"
        else:
            caching = "not cached (the model does not declare a complete fingerprint)"
        return f"{batching}; {caching}; path: {self.path}"

    @property
    def path(self) -> str:
        """How pairs are scored: shared prefixes, or full forward passes and why."""
        return self.sharing.describe() if self.sharing is not None else self._path

    def score(self, pairs: Iterable[Pair], progress: ProgressCallback | None = None) -> dict[Pair, Scores]:
        """Scores for every pair asked for; only pairs neither seen this run nor cached reach the model."""
        wanted = list(dict.fromkeys(pairs))
        self.stats.requested += len(wanted)
        todo = [p for p in wanted if p not in self.memo]
        self.stats.memo_hits += len(wanted) - len(todo)
        self._fetch(todo, self.model.fingerprint, self.model.spec, self.memo, progress)
        return {p: self.memo[p] for p in wanted}

    def inputs(self, pairs: Sequence[Pair]) -> dict[Pair, Any] | None:
        """What the model reads of each of the distinct ``pairs`` (:class:`~rmcheck.backends.capabilities.ShowsInputs`),
        or None for a model that reads every pair whole. With the cache, digests of it, kept there: a warm run
        asks the model (its tokenizer) only about pairs it has not seen."""
        if not isinstance(self.model, ShowsInputs):
            return None
        if self.cache is None:
            return dict(zip(pairs, model_inputs(self.model, pairs)))
        found: dict[Pair, Any] = self.cache.get_inputs(self.model.fingerprint, pairs) if pairs else {}
        todo = [p for p in pairs if p not in found]
        seen = model_inputs(self.model, todo) if todo else []
        try:
            fresh = dict(zip(todo, map(input_digest, seen)))
        except TypeError:  # inputs that are not plain data: compared as they are (never digests), never kept
            rest = [p for p in pairs if p in found]
            return {**dict(zip(todo, seen)), **dict(zip(rest, model_inputs(self.model, rest) if rest else []))}
        if fresh:
            self.cache.put_inputs(self.model.fingerprint, fresh.items())
        return {**found, **fresh}

    def replay(self, pairs: Sequence[Pair], progress: ProgressCallback | None = None) -> list[Scores]:
        """Score again from the model itself, bypassing the memo, in new batches (to confirm a counterfactual).

        Replays are cached apart from other scores: a warm re-run of an unchanged model repeats none."""
        distinct = list(dict.fromkeys(pairs))
        self.stats.requested += len(distinct)
        fresh: dict[Pair, Scores] = {}
        self._fetch(distinct, self.model.fingerprint + REPLAYS, f"{self.model.spec} (replays)", fresh, progress)
        return [fresh[p] for p in pairs]

    def confirm(self, pairs: Iterable[Pair], known: Container[Pair],
                progress: ProgressCallback | None = None) -> Mapping[Pair, Scores]:
        """Scores of ``pairs`` to confirm a finding with, outside the batches that found it: the pairs in ``known``
        (scored earlier, in batches of other pairs) keep their scores, the rest are replayed (:meth:`replay`)."""
        again = [p for p in dict.fromkeys(pairs) if p not in known]
        return ChainMap(dict(zip(again, self.replay(again, progress))) if again else {}, self.memo)

    def _fetch(self, pairs: list[Pair], key: str, label: str, into: dict[Pair, Scores],
               progress: ProgressCallback | None = None) -> None:
        """Put the scores of distinct ``pairs`` into ``into``: from the cache under ``key`` where it has them,
        else from the model, shared prefixes first and then planned batches, each kept (and cached) as soon
        as it is scored, so a failure later in the run loses only the failed batch."""
        found = self.cache.get(key, pairs) if self.cache is not None and pairs else {}
        self.stats.cache_hits += len(found)
        into.update(found)
        todo = [p for p in pairs if p not in found]
        done = 0

        def keep(batch: list[Pair], scores: list[Scores]) -> None:
            nonlocal done
            into.update(zip(batch, scores))
            if self.cache is not None:
                self.cache.put(key, label, zip(batch, scores))
            done += len(batch)
            if progress:
                progress(done, len(todo))

        sharing = self.sharing if self.sharing is not None and self.sharing.active is not False and todo else None
        ids = sharing.ids(todo) if sharing is not None else None
        lengths = (dict(zip(todo, map(len, ids))) if ids is not None
                   else dict(zip(todo, self._token_lengths(todo))) if self._token_lengths and todo
                   else {p: _char_length(p) for p in todo})
        rest = self._share(sharing, todo, ids, keep) if sharing is not None and ids is not None else todo
        for batch in self._batches(rest, lengths, counted=ids is not None or self._token_lengths is not None):
            keep(batch, self._forward(batch))

    def _share(self, sharing: PrefixSharing, todo: list[Pair], ids: list[list[int]],
               keep: Callable[[list[Pair], list[Scores]], None]) -> list[Pair]:
        """Score the pairs of ``todo`` that share prefixes (after a passing probe); the rest, to batch."""
        work = Work()
        left, scored = sharing.run(todo, ids, self._forward, work)
        for owners, scores in scored:
            batch = [todo[j] for j in owners]
            self.stats.forward_pairs += len(batch)
            self.stats.shared_pairs += len(batch)
            tokens = sum(len(ids[j]) for j in owners)
            self.stats.shared_tokens += tokens
            self.stats.tokens += tokens
            keep(batch, scores)
        self.stats.batches += work.passes
        self.stats.computed_tokens += work.tokens
        self.shapes += work.shapes
        return [todo[i] for i in left]

    def _batches(self, pairs: list[Pair], lengths: dict[Pair, int], *, counted: bool) -> list[list[Pair]]:
        """Length-sorted batches of ``pairs``; tokens go to the stats when ``lengths`` count tokens."""
        ordered = sorted(pairs, key=lengths.__getitem__)
        batches = self.policy.plan(ordered, [lengths[p] for p in ordered], by_tokens=self._token_lengths is not None)
        if counted:
            for batch in batches:
                tokens, longest = sum(lengths[p] for p in batch), lengths[batch[-1]]
                self.stats.tokens += tokens
                self.stats.computed_tokens += tokens
                self.stats.padded_tokens += len(batch) * longest
                self.shapes.append(Shape(len(batch), tokens, len(batch) * longest, len(batch) * longest ** 2))
        return batches

    def _forward(self, batch: list[Pair]) -> list[Scores]:
        self.stats.forward_pairs += len(batch)
        self.stats.batches += 1
        return normalise_scores(self.model.score(batch), len(batch), self.model.spec, batch)


def _char_length(pair: Pair) -> int:
    return len(pair.prompt_text) + len(pair.response)
