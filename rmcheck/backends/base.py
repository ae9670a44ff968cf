"""The reward-model protocol and the backend registry."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence, Union, runtime_checkable

from ..errors import BackendError, ScoreError
from ..registry import Registry

#: A prompt is a string (one user turn) or a conversation of ``{role, content}`` turns.
Prompt = Union[str, tuple[tuple[str, str], ...]]

#: Key of the overall score in a :data:`Scores` mapping.
OVERALL = "score"

#: Scores of one pair: the overall score under ``"score"``, plus any named objectives.
Scores = dict[str, float]


@dataclass(frozen=True)
class Pair:
    """One (prompt, response) to score. Hashable, so it can be deduplicated and cached."""

    prompt: Prompt
    response: str

    @property
    def prompt_text(self) -> str:
        """The prompt flattened to text (the last user turn for a conversation)."""
        return prompt_to_text(self.prompt)

    def messages(self) -> list[dict[str, str]]:
        """The chat messages of the pair: the prompt's turns, then the assistant response."""
        return [*prompt_messages(self.prompt), {"role": "assistant", "content": self.response}]


def prompt_messages(prompt: Prompt) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": role, "content": content} for role, content in prompt]


def prompt_to_text(prompt: Prompt) -> str:
    """A conversation as plain text: ``role: content`` lines; a string prompt unchanged."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"{role.capitalize()}: {content}" for role, content in prompt)


@dataclass
class ModelOptions:
    """Settings that apply to every backend that understands them."""

    device: str | None = None
    dtype: str | None = None
    max_length: int | None = None
    batch_size: int | None = None
    batch_tokens: int | None = None
    trust_remote_code: bool = False
    prefix_sharing: bool = True  # score pairs with a common token prefix from its KV cache (decoder hf: models)
    attn_implementation: str | None = None  # hf:, dpo: eager, sdpa, flash_attention_2, ... (None: transformers' default)
    device_map: str | None = None  # hf:, dpo: auto, balanced, sequential: shard over GPUs through accelerate
    max_memory: dict[str, str] | None = None  # with device_map: the most memory per device, {"0": "20GiB", "cpu": ...}
    padding_side: str | None = None  # hf: left or right (None: the tokenizer's own padding_side)
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class RewardModel(Protocol):
    """What rmcheck needs from a reward model.

    ``score`` takes a batch of pairs and returns one :data:`Scores` per pair.
    ``fingerprint`` must change whenever anything that could change a score does
    (weights, revision, dtype, template, max length, head): it keys the score cache.
    """

    spec: str
    objectives: tuple[str, ...]

    @property
    def fingerprint(self) -> str: ...

    def describe(self) -> str: ...

    def score(self, pairs: Sequence[Pair]) -> list[Scores]: ...


BackendFactory = Callable[[str, ModelOptions], RewardModel]

#: The built-in backends, each imported when a spec first names it.
BACKENDS: Registry[BackendFactory] = Registry("backend", "rmcheck.backends", {
    "python": "rmcheck.backends.python_callable:build", "hf": "rmcheck.backends.hf_spec:build",
    "demo": "rmcheck.demo.model:build", "openai": "rmcheck.backends.openai_judge:build",
    "http": "rmcheck.backends.http:build", "dpo": "rmcheck.backends.dpo:build"})


def register_backend(scheme: str, *, replace: bool = False) -> Callable[[BackendFactory], BackendFactory]:
    """Decorator: ``@register_backend("mine")`` makes ``--rm mine:REST`` build a model from ``REST``."""
    return BACKENDS.decorator(scheme, replace=replace)


def split_spec(spec: str) -> tuple[str, str]:
    """``"hf:path@rev"`` -> ``("hf", "path@rev")``; URLs keep their scheme in the rest."""
    if spec.startswith(("http://", "https://")):
        return "http", spec
    scheme, sep, rest = spec.partition(":")
    return (scheme, rest) if sep else (spec, "")


#: How each built-in scheme is written (``--help`` and the unknown-spec error list them).
BUILTIN_FORMS = {"demo": "demo", "hf": "hf:ID_OR_PATH[@REV][?prm=shepherd|qwen]",
                 "dpo": "dpo:POLICY,REFERENCE[,beta=B]",
                 "openai": "openai:MODEL", "http": "http://HOST:PORT[,HOST:PORT...] (or https://)",
                 "python": "python:MODULE:CALLABLE"}
SPEC_FORMS = ", ".join(BUILTIN_FORMS.values())

#: Cheap checks that a spec names something loadable (a path that exists, a module that imports), run
#: before any test so that a misspelt model is a usage error, not a failing test.
SpecCheck = Callable[[str, ModelOptions], None]
SPEC_CHECKS: Registry[SpecCheck] = Registry("spec check", None, {
    "python": "rmcheck.backends.python_callable:check", "hf": "rmcheck.backends.hf_spec:check"})


def register_spec_check(scheme: str, *, replace: bool = False) -> Callable[[SpecCheck], SpecCheck]:
    """Decorator: ``@register_spec_check("mine")`` checks the rest of a ``mine:`` spec before the run."""
    return SPEC_CHECKS.decorator(scheme, replace=replace)


def spec_forms() -> str:
    """Every registered scheme as it is written: ``demo, hf:ID_OR_PATH[@REV], ..., mine:...``."""
    return ", ".join(BUILTIN_FORMS.get(name, f"{name}:...") for name in BACKENDS.names())


def check_spec(spec: str, options: ModelOptions | None = None, *, where: str = "--rm") -> None:
    """Raise one clear :class:`BackendError` when ``spec`` cannot name a model (unknown scheme, a path that
    does not exist, a module that does not import), without loading the model."""
    scheme, rest = split_spec(spec.strip())
    if BACKENDS.get(scheme) is None:
        raise BackendError(f"unknown model spec {spec!r}", where=where, fix=f"Write one of: {spec_forms()}")
    check = SPEC_CHECKS.get(scheme)
    if check is not None:
        check(rest, options or ModelOptions())


def load_model(spec: str, options: ModelOptions | None = None, *, where: str = "--rm") -> RewardModel:
    """Build the reward model a spec names, or raise one clear :class:`BackendError`."""
    scheme, rest = split_spec(spec.strip())
    factory = BACKENDS.get(scheme)
    if factory is None:
        raise BackendError(f"unknown model spec {spec!r}", where=where, fix=f"Write one of: {spec_forms()}")
    return factory(rest, options or ModelOptions())


#: The pair :func:`objectives_of` scores when a backend learns its objectives only by scoring.
SAMPLE_PAIR = Pair("What is the capital of Australia?", "Canberra is the capital of Australia.")


def objectives_of(model: RewardModel) -> tuple[str, ...]:
    """The named objectives (heads) a model scores besides ``score``; scores one sample pair when
    the backend does not declare them up front (e.g. a python: callable returning dicts)."""
    if model.objectives:
        return tuple(model.objectives)
    (scores,) = normalise_scores(model.score([SAMPLE_PAIR]), 1, model.spec)
    return tuple(k for k in scores if k != OVERALL)


#: Scores beyond this magnitude are refused: their differences and spreads would overflow to infinity.
MAX_SCORE = 1e100


def normalise_scores(raw: Any, count: int, spec: str, pairs: Sequence[Pair] | None = None) -> list[Scores]:
    """Check a backend's answer strictly and turn it into :data:`Scores`.

    It must be a sequence (not a string or a mapping) of ``count`` numbers, or of ``count`` mappings
    with the same keys; every value finite and within ±:data:`MAX_SCORE`. Anything else raises a
    :class:`ScoreError` naming the pair (``pairs`` gives its text), and nothing of the batch is kept.
    """
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Iterable):
        raise ScoreError(f"model {spec} returned {type(raw).__name__}, not a list of scores",
                         fix="Return a list with one float (or one dict of floats) per pair")
    items = list(raw)
    if len(items) != count:
        raise ScoreError(f"model {spec} returned {len(items)} scores for {count} pairs",
                         fix="Return exactly one score per (prompt, response) pair, in order")
    out: list[Scores] = []
    for index, item in enumerate(items):
        name = _pair_name(index, pairs)
        if isinstance(item, Mapping):
            scores = {str(k): _as_float(v, spec, f"{name}, key {k!r}") for k, v in item.items()}
            if not scores:
                raise ScoreError(f"model {spec} returned an empty dict of scores for {name}")
            if OVERALL not in scores:
                scores[OVERALL] = sum(scores.values()) / len(scores)
        else:
            scores = {OVERALL: _as_float(item, spec, name)}
        if out and scores.keys() != out[0].keys():
            differ = sorted(scores.keys() ^ out[0].keys())
            raise ScoreError(f"model {spec} returned scores named {sorted(scores)} for {name} but "
                             f"{sorted(out[0])} for {_pair_name(0, pairs)} (they differ in {', '.join(differ)})",
                             fix="Return the same keys (objectives) for every pair")
        out.append(scores)
    return out


def _pair_name(index: int, pairs: Sequence[Pair] | None) -> str:
    if pairs is None or index >= len(pairs):
        return f"pair {index}"
    pair = pairs[index]
    return f"pair {index} (prompt {pair.prompt_text[:40]!r}, response {pair.response[:40]!r})"


def _as_float(value: Any, spec: str, name: str) -> float:
    if isinstance(value, (str, bytes, bool)):
        raise ScoreError(f"model {spec} returned {type(value).__name__} {value!r:.40} for {name}, not a number",
                         fix="Return floats (or dicts of floats)")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ScoreError(f"model {spec} returned a non-numeric score {value!r:.40} for {name}",
                         fix="Return floats (or dicts of floats)") from None
    if not math.isfinite(number) or abs(number) > MAX_SCORE:
        raise ScoreError(f"model {spec} returned a non-finite score ({number}) for {name}" if not math.isfinite(number)
                         else f"model {spec} returned the score {number} for {name}, beyond ±{MAX_SCORE:g}",
                         fix="Check the model for overflow or empty inputs; rmcheck never treats NaN or "
                             "infinity as a score, and caches nothing from this batch")
    return number
