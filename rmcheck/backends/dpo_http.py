"""``dpo:http://POLICY_HOST:PORT,http://REF_HOST:PORT[,beta=B][,norm=sum|mean]``: the implicit DPO reward of
served policies (``vllm serve POLICY``), from log-probabilities over HTTP.

For each pair, the policy's server renders and tokenizes the conversation with its own chat template
(``POST /tokenize`` with ``messages``): once for the prompt with the generation prompt, once for the whole
conversation. The response tokens are those after the longest common prefix of the two, so the role header
and the prompt are excluded and the end-of-turn tokens count, as in the in-process ``dpo:``. Then
``POST /v1/completions`` with those token ids as the prompt and ``prompt_logprobs: 0`` gives
log p(token | tokens before it) for every token, on the policy's server and on the reference's
(the same ids: the two must tokenize alike, which is checked at load). ``REFERENCE`` may be ``none``.

Scores: ``score`` = B * (log pi(y|x) - log pi_ref(y|x)) summed (``norm=sum``) or averaged over the response
tokens, and the objectives ``policy_logp`` and ``reference_logp``. Served models advertise names only, so
these scores are never cached on disk.
"""
from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import BackendError, ScoreError
from .base import OVERALL, SAMPLE_PAIR, Pair, Scores, normalise_scores, prompt_messages
from .http import parse_spec as parse_url
from .replicas import Replica

if TYPE_CHECKING:
    from .dpo import DPOSpec

FORMAT_VERSION = "dpo-http/1"
CONCURRENCY = 8
TIMEOUT = 120.0
RETRIES = 2


class ServedLM:
    """One served causal LM: tokenization by its chat template, and prompt log-probabilities."""

    def __init__(self, url: str, spec: str) -> None:
        urls, _ = parse_url(url)
        if len(urls) != 1:
            raise BackendError(f"{spec}: {url} lists several servers", where="--rm",
                               fix="Name one server for the policy and one for the reference")
        self.replica = Replica(urls[0], timeout=TIMEOUT, concurrency=CONCURRENCY, backoff=0.5)
        self.url = urls[0]
        try:
            card = self.call("GET", "/v1/models")["data"][0]
            self.id, self.root = str(card["id"]), card.get("root")
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"{self.url}/v1/models lists no model", where="--rm",
                               fix="Point dpo: at OpenAI-compatible servers (vllm serve POLICY)") from None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.replica.request_with_retries(method, path, RETRIES, body)

    def tokens(self, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
        answer = self.call("POST", "/tokenize", {"model": self.id, "messages": messages,
                                                 "add_generation_prompt": generation_prompt})
        return _ints(answer, "tokens", self.url)

    def logps(self, ids: list[int], first: int) -> list[float]:
        """log p(ids[t] | ids[:t]) for t >= first (``first`` >= 1)."""
        answer = self.call("POST", "/v1/completions", {"model": self.id, "prompt": ids, "max_tokens": 1,
                                                       "temperature": 0, "prompt_logprobs": 0})
        try:
            rows = answer["choices"][0]["prompt_logprobs"]
            return [float(rows[t][str(ids[t])]["logprob"]) for t in range(first, len(ids))]
        except (KeyError, IndexError, TypeError, ValueError, OverflowError) as exc:
            raise ScoreError(f"{self.url}/v1/completions gave no prompt_logprobs for the conversation "
                             f"({type(exc).__name__}: {exc})",
                             fix="Serve the policy with vLLM (it answers prompt_logprobs), not a pooling server"
                             ) from None


class ServedImplicitReward:
    """The implicit reward of a served policy against a served reference (or reference-free)."""

    def __init__(self, spec: str, parsed: DPOSpec) -> None:
        if parsed.reference is not None and not parsed.reference.startswith(("http://", "https://")):
            raise BackendError(f"{spec}: the policy is served but the reference {parsed.reference!r} is not",
                               where="--rm", fix="Serve both (dpo:http://POLICY,http://REFERENCE) or neither")
        self.spec, self.parsed = spec, parsed
        self.policy = ServedLM(parsed.policy, spec)
        self.reference = ServedLM(parsed.reference, spec) if parsed.reference else None
        self.objectives: tuple[str, ...] = ("policy_logp",) + (("reference_logp",) if self.reference else ())
        self.cacheable = False
        if self.reference is not None:
            messages = SAMPLE_PAIR.messages()
            if self.reference.tokens(messages, False) != self.policy.tokens(messages, False):
                raise BackendError(f"{spec}: the policy and the reference tokenize a conversation differently",
                                   where="--rm", fix="Use the reference the policy was trained from (one tokenizer)")
        identity = [FORMAT_VERSION, *[(lm.url, lm.id, lm.root) for lm in self._lms()], parsed.beta, parsed.norm]
        self._fingerprint = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
        self._prompts: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def provenance(self) -> dict[str, Any]:
        """What each server serves (model id and root), as plain JSON values."""
        return {"served_by": [{"role": role, "url": lm.url, "id": lm.id, "root": None if lm.root is None else str(lm.root)}
                              for role, lm in zip(("policy", "reference"), self._lms())]}

    def describe(self) -> str:
        reference = f"{self.reference.id} at {self.reference.url}" if self.reference else "none"
        return (f"{self.spec} (implicit DPO reward, beta {self.parsed.beta:g}, {self.parsed.norm} over response "
                f"tokens); policy: {self.policy.id} at {self.policy.url}; reference: {reference}")

    def _lms(self) -> list[ServedLM]:
        return [self.policy] + ([self.reference] if self.reference else [])

    def score(self, pairs: Sequence[Pair]) -> list[Scores]:
        if not pairs:
            return []
        if self._pool is None:
            self._pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="rmcheck-dpo-http")
        return normalise_scores(list(self._pool.map(self._score_one, pairs)), len(pairs), self.spec, pairs)

    def encode(self, pair: Pair) -> tuple[list[int], int]:
        """The conversation's token ids and the index of its first response token (>= 1)."""
        key = json.dumps(prompt_messages(pair.prompt))
        with self._lock:
            prompt = self._prompts.get(key)
        if prompt is None:
            prompt = self.policy.tokens(prompt_messages(pair.prompt), True)
            with self._lock:
                self._prompts[key] = prompt
        ids = self.policy.tokens(pair.messages(), False)
        common = next((i for i, (a, b) in enumerate(zip(prompt, ids)) if a != b), min(len(prompt), len(ids)))
        return ids, max(1, common)

    def _score_one(self, pair: Pair) -> Scores:
        ids, start = self.encode(pair)
        values = {f"{name}_logp": _reduce(lm.logps(ids, start), self.parsed.norm)
                  for name, lm in zip(("policy", "reference"), self._lms())}
        values[OVERALL] = self.parsed.beta * (values["policy_logp"] - values.get("reference_logp", 0.0))
        return values


def _ints(answer: Any, key: str, url: str) -> list[int]:
    try:
        return [int(i) for i in answer[key]]
    except (KeyError, TypeError, ValueError):
        raise ScoreError(f"{url}/tokenize gave no {key!r}", fix="Serve the policy with vLLM (it has /tokenize)") from None


def _reduce(values: list[float], norm: str) -> float:
    return sum(values) / len(values) if norm == "mean" and values else sum(values)
