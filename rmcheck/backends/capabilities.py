"""What a reward model can do beyond :class:`~rmcheck.backends.base.RewardModel`, as named protocols.

Every model scores pairs; some also pin their scores for the on-disk cache, show what they read, count or
give token ids, let shared prefixes be read from a KV cache, sweep single tokens by id, compare responses
or score steps. Code that uses a capability asks ``isinstance(model, Capability)`` (all are
``runtime_checkable``), never ``hasattr``, so each contract is written once, here, and a backend of your
own gains a capability by having its members.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Hashable, Protocol, Sequence, runtime_checkable

from .base import Pair, RewardModel, Scores

if TYPE_CHECKING:
    from ..judges.interface import Query, Verdict
    from ..process.model import Solution


@runtime_checkable
class Fingerprinted(Protocol):
    """A model whose ``fingerprint`` may key the on-disk score cache: ``cacheable`` is True only when the
    fingerprint pins everything a score depends on (weights by content or by commit, never a branch name that
    can move). Without it, or with ``cacheable`` False, scores are kept for the run only."""

    @property
    def fingerprint(self) -> str: ...

    @property
    def cacheable(self) -> bool: ...


@runtime_checkable
class ShowsInputs(Protocol):
    """A model that says what it reads of each pair: ``inputs(pairs)`` gives one hashable value per pair (token
    ids after truncation, say), such that two pairs with equal inputs get equal scores. An edit two pairs'
    inputs do not show was cut away before the model (a kind reports it as not applicable)."""

    def inputs(self, pairs: Sequence[Pair]) -> Sequence[Hashable]: ...


@runtime_checkable
class CountsTokens(Protocol):
    """A model that prices pairs in tokens: ``token_lengths(pairs)`` is how many tokens a forward pass runs for
    each pair (after truncation). The scheduler then batches by a token budget and sorts by length."""

    def token_lengths(self, pairs: Sequence[Pair]) -> list[int]: ...


@runtime_checkable
class TokenIds(Protocol):
    """A model that gives the exact token ids each pair's forward pass reads (after truncation and any
    template), so pairs sharing a token prefix can share its computation."""

    def token_ids(self, pairs: Sequence[Pair]) -> list[list[int]]: ...


@runtime_checkable
class Tokenized(Protocol):
    """A model with a transformers tokenizer (its vocabulary is what a sweep selects from) and ``max_length``,
    the most tokens it reads of one pair."""

    tokenizer: Any
    max_length: int


@runtime_checkable
class ReportsProvenance(Protocol):
    """A model that gives its own account of what produced its scores: ``provenance()`` is a mapping of plain
    values (device, dtype, library versions, template, ...) recorded in the run document."""

    def provenance(self) -> dict[str, Any]: ...


@runtime_checkable
class PrefixHead(TokenIds, Protocol):
    """A transformers decoder whose score is its head's logits at the pooled token, readable after a shared
    prefix's KV cache (:class:`rmcheck.scoring.prefix.Heads`).

    ``model`` is the loaded transformers model (eval mode) and ``device`` where its inputs go;
    ``scores_from_logits`` turns one row of head logits per pair into scores; the head pools the rightmost
    token that is not ``native_pad_id`` (None: the last token). A ``gated`` model (its score is not a function
    of the logits) and an ``encoder`` (it attends both ways, so a prefix's keys depend on what follows) are
    scored in full passes."""

    model: Any
    device: Any
    native_pad_id: int | None
    gated: bool
    encoder: bool

    def scores_from_logits(self, rows: Sequence[Sequence[float]]) -> list[Scores]: ...


@runtime_checkable
class PrefixLogps(TokenIds, Protocol):
    """A model whose score comes from token log-probabilities under causal LMs (``dpo:``), readable after a
    shared prefix's KV caches (:class:`rmcheck.scoring.prefix.TokenLogps`).

    ``causal_lms`` are the LMs, each with a transformers ``model`` and its ``device``; ``scores_from_logps``
    gets, per pair, one list per LM of the log-probability of each token after the first."""

    @property
    def causal_lms(self) -> Sequence[Any]: ...

    def scores_from_logps(self, pairs: Sequence[Pair], logps: Sequence[Any]) -> list[Scores]: ...


@runtime_checkable
class TokenSweep(PrefixHead, Tokenized, Protocol):
    """A :class:`PrefixHead` whose single-token responses can be scored from token ids (:mod:`rmcheck.sweep.fast`):
    ``render(pair)`` is the text the model reads (its template applied), ``formatter`` says how it is tokenized
    (``format``, ``reward_token_id``), and ``pad_id(rows)`` is the id a batch of those rows is padded with."""

    formatter: Any

    def render(self, pair: Pair) -> str: ...

    def pad_id(self, ids: Sequence[Sequence[int]]) -> int: ...


@runtime_checkable
class Judge(Protocol):
    """A model that compares the responses of a query (:mod:`rmcheck.judges`): ``judge(queries)`` gives one
    verdict per query, P(each shown response is the best). ``size`` is how many responses it compares at once
    (2 for a pairwise judge, None for any number); ``reads_labels`` says whether labels reach it."""

    spec: str
    size: int | None
    reads_labels: bool

    def describe(self) -> str: ...

    def judge(self, queries: Sequence[Query]) -> list[Verdict]: ...


@runtime_checkable
class StepScores(Protocol):
    """A process reward model (:mod:`rmcheck.process`): ``score_steps(solutions)`` gives one list of floats per
    solution, one finite float per step."""

    spec: str

    def score_steps(self, solutions: Sequence[Solution]) -> list[list[float]]: ...


def cacheable(model: RewardModel) -> bool:
    """Whether ``model``'s scores may go to the on-disk cache (:class:`Fingerprinted`)."""
    return isinstance(model, Fingerprinted) and bool(model.cacheable)


def model_inputs(model: RewardModel, pairs: Sequence[Pair]) -> list[Hashable] | None:
    """What ``model`` reads of each pair (:class:`ShowsInputs`); None for a model that reads every pair whole."""
    return list(model.inputs(pairs)) if isinstance(model, ShowsInputs) else None
