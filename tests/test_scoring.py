"""The scheduler: token-budget batches with dynamic padding, each pair scored once per run, cache reuse."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import pytest

from rmcheck.backends.base import Pair, Scores
from rmcheck.scoring.cache import ScoreCache
from rmcheck.errors import ScoreError
from rmcheck.scoring import DEFAULT_BATCH_SIZE, Scorer
from tests import engine_rms


class TokenModel:
    """A cacheable model whose tokens are the response's words; records every batch it scores."""

    spec = "test:tokens"
    objectives: tuple[str, ...] = ()
    cacheable = True

    def __init__(self, fingerprint: str = "f1", fail_on_batch: int | None = None) -> None:
        self.fingerprint = fingerprint
        self.fail_on_batch = fail_on_batch
        self.batches: list[list[Pair]] = []

    def describe(self) -> str:
        return self.spec

    def token_lengths(self, pairs: Sequence[Pair]) -> list[int]:
        return [len(p.response.split()) for p in pairs]

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        self.batches.append(list(pairs))
        if len(self.batches) == self.fail_on_batch:
            return [math.nan] * len(pairs)
        return [float(len(p.response)) for p in pairs]


def pairs(count: int, *, words: int = 0) -> list[Pair]:
    """Pairs of 1 to ``count`` words (``words`` fixes the length instead), distinct responses."""
    return [Pair(f"p{i}", " ".join(f"w{i}" for _ in range(words or i + 1))) for i in range(count)]


def test_batches_fill_a_token_budget_with_length_sorted_pairs() -> None:
    model = TokenModel()
    wanted = pairs(40)[::-1]
    scores = Scorer(model, batch_size=8, batch_tokens=100).score(wanted)
    assert scores == {p: {"score": float(len(p.response))} for p in wanted}
    lengths = [[len(p.response.split()) for p in batch] for batch in model.batches]
    assert sorted(n for batch in lengths for n in batch) == list(range(1, 41))  # each pair exactly once
    for batch, following in zip(lengths, lengths[1:] + [[]]):
        assert batch == sorted(batch) and (not following or batch[-1] <= following[0])
        assert len(batch) <= 8 and len(batch) * batch[-1] <= 100  # padded to its own longest pair
        if following:  # greedy: the next pair would have broken the budget or the cap
            assert len(batch) == 8 or (len(batch) + 1) * following[0] > 100
    assert lengths[:2] == [list(range(1, 9)), list(range(9, 15))]  # the pair cap binds, then the budget


def test_a_pair_longer_than_the_budget_is_scored_alone() -> None:
    model = TokenModel()
    Scorer(model, batch_tokens=5).score(pairs(2) + pairs(1, words=9))
    assert [[len(p.response.split()) for p in batch] for batch in model.batches] == [[1, 2], [9]]


def test_padding_is_counted() -> None:
    model = TokenModel()
    scorer = Scorer(model, batch_size=4, batch_tokens=1000)
    scorer.score(pairs(8))
    assert scorer.stats.tokens == sum(range(1, 9))
    assert scorer.stats.padded_tokens == 4 * 4 + 4 * 8
    assert "36 tokens, 12 padding" in scorer.stats.summary()


def test_models_that_do_not_count_tokens_get_length_sorted_batches_of_the_pair_cap(tmp_path: Path) -> None:
    from rmcheck.backends import load_model

    model = load_model("python:tests.engine_rms:marker")
    engine_rms.CALLS.clear()
    scorer = Scorer(model)
    scorer.score(pairs(DEFAULT_BATCH_SIZE * 2 + 5)[::-1])
    assert engine_rms.CALLS == [DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE, 5]
    assert "at most 32 pairs;" in scorer.describe() and "padded tokens" not in scorer.describe()
    assert "not cached" in scorer.describe()


def test_a_pair_is_scored_once_per_run_and_once_per_fingerprint_across_runs(tmp_path: Path) -> None:
    cache = ScoreCache(tmp_path)
    first = Scorer(TokenModel(), cache=cache)
    first.score(pairs(10))
    first.score(pairs(12))  # 10 seen this run, 2 new
    assert (first.stats.memo_hits, first.stats.forward_pairs, first.stats.cache_hits) == (10, 12, 0)

    model = TokenModel()
    again = Scorer(model, cache=cache)  # a new run: nothing in memory, everything on disk
    assert again.score(pairs(12)) == first.score(pairs(12))
    assert (again.stats.cache_hits, again.stats.forward_pairs, model.batches) == (12, 0, [])

    changed = Scorer(TokenModel(fingerprint="f2"), cache=cache)
    changed.score(pairs(12))
    assert (changed.stats.cache_hits, changed.stats.forward_pairs) == (0, 12)


def test_nothing_from_a_failed_call_is_cached(tmp_path: Path) -> None:
    cache = ScoreCache(tmp_path)
    with pytest.raises(ScoreError, match="non-finite"):
        Scorer(TokenModel(fail_on_batch=2), batch_size=4, cache=cache).score(pairs(10))
    model = TokenModel()
    rerun = Scorer(model, batch_size=4, cache=cache)
    rerun.score(pairs(10))
    assert rerun.stats.cache_hits == 4  # the first batch, which succeeded
    assert [len(b) for b in model.batches] == [4, 2]


def test_uncacheable_models_never_touch_the_cache(tmp_path: Path) -> None:
    model = TokenModel()
    model.cacheable = False
    cache = ScoreCache(tmp_path / "cache")
    for _ in range(2):
        Scorer(model, cache=cache).score(pairs(3))
    assert len(model.batches) == 2 and not (tmp_path / "cache").exists()


def test_replay_goes_to_the_model_itself_once_per_fingerprint(tmp_path: Path) -> None:
    model = TokenModel()
    scorer = Scorer(model, cache=ScoreCache(tmp_path))
    scorer.score(pairs(3))
    assert scorer.replay(pairs(3)) == [scorer.memo[p] for p in pairs(3)]
    assert scorer.stats.forward_pairs == 6 and len(model.batches) == 2  # the memo and the cache are not asked
    rerun = Scorer(model, cache=ScoreCache(tmp_path))
    assert rerun.replay(pairs(3)) == [scorer.memo[p] for p in pairs(3)]
    assert rerun.stats.forward_pairs == 0 and rerun.stats.cache_hits == 3  # replays are cached apart


def test_confirm_replays_only_pairs_not_known_from_other_batches(tmp_path: Path) -> None:
    model = TokenModel()
    scorer = Scorer(model, cache=ScoreCache(tmp_path))
    judged = scorer.score(pairs(3))
    later = scorer.score(pairs(5)[3:])  # e.g. a shrink round
    confirmed = scorer.confirm(pairs(5) * 2, judged)
    assert model.batches[-1] == pairs(5)[3:]  # the later pass's pairs, each once, in a batch of their own
    assert {p: confirmed[p] for p in pairs(5)} == {**judged, **later}
    assert scorer.stats.forward_pairs == 7
    rerun = Scorer(model, cache=ScoreCache(tmp_path))
    rerun.score(pairs(5))
    rerun.confirm(pairs(5), judged)
    assert rerun.stats.forward_pairs == 0 and rerun.stats.cache_hits == 7  # replays stay in the cache


def _alone(model, wanted: list[Pair]) -> list[Scores]:
    return [model.score([p])[0] for p in wanted]


def test_hf_scores_do_not_depend_on_token_budget_batches(tmp_path: Path) -> None:
    """The batch-invariance guard, through the scheduler: budget-sized, dynamically padded batches."""
    from fixtures.tiny_models import build_tiny_llama_rm
    from rmcheck.backends import load_model

    model = load_model(f"hf:{build_tiny_llama_rm(tmp_path / 'rm')}")
    wanted = [Pair(f"Question {i}?", "The cat answers the question. " * (i % 7 + 1)) for i in range(24)]
    scorer = Scorer(model, batch_size=16, batch_tokens=400)
    scores = scorer.score(wanted)
    assert 1 < scorer.stats.batches < len(wanted) and scorer.stats.padded_tokens > scorer.stats.tokens
    assert [scores[p]["score"] for p in wanted] == pytest.approx([s["score"] for s in _alone(model, wanted)],
                                                                 abs=1e-4)
    assert model._encoded == {}  # encodings kept for the batches were all used
