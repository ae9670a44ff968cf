"""``openai:MODEL[@BASE_URL]``: an LLM judge over any OpenAI-compatible chat endpoint, as a reward model.

(``openai:MODEL[@BASE_URL]?judge=pairwise|listwise`` is a judge that compares responses instead:
:mod:`rmcheck.judges.openai_pairwise`.)

The judge reads a rubric and rates each (prompt, response) on an integer scale, answering
with structured output (a JSON schema ``{"rating": N}``). When the endpoint returns
logprobs, the score is the expectation of the rating over the rating tokens' probabilities
at the rating's position (a continuous score); otherwise it is the rating itself. An answer
that does not parse is reported with its pair and raw text, never scored.

Settings: ``[tool.rmcheck.judge]`` (rubric, scale, concurrency, logprobs, max_tokens), over
``[tool.rmcheck.llm]`` (base_url, api_key_env, timeout, max_retries), over the ``OPENAI_*``
environment variables. Answers go through the same cassettes as ``llm_rewrite``, in
``<cassettes>/judge/<model>/`` (``--rmcheck-cassettes``, default ``fixtures/cassettes``).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..llm import client as llm
from ..llm.cassette import Cassette, public_url
from ..errors import BackendError, RmcheckError, ScoreError
from ..judges.openai_pairwise import VerdictJudge, build_judge
from .base import ModelOptions, Pair, Scores

FORMAT_VERSION = "openai-judge/1"
DEFAULT_SCALE = (1, 9)
DEFAULT_RUBRIC = ("Judge how good the assistant's response is for the user's prompt: helpful, correct, honest "
                  "and harmless, without rewarding length or flattery for their own sake.")
TOP_LOGPROBS = 20
SHOWN = 120
MAX_REPORTED = 5


def build(rest: str, options: ModelOptions) -> OpenAIJudge | VerdictJudge:
    rest, _, query = rest.partition("?")
    cut = rest.find("@http")
    model, base_url = (rest[:cut], rest[cut + 1:]) if cut >= 0 else (rest, "")
    if not model.strip():
        raise BackendError("openai: needs a model name", where="--rm",
                           fix="Write openai:MODEL or openai:MODEL@http://HOST:PORT/v1")
    where = f"--rm openai:{rest}"
    try:
        table = llm.settings_table(Path.cwd(), "llm", "judge")
        endpoint = llm.endpoint(table, base_url=base_url or None, where=where)
    except RmcheckError as exc:
        raise BackendError(exc.message, where=exc.where, fix=exc.fix) from None
    folder = Path(options.extra.get("cassettes") or "fixtures/cassettes") / "judge" / _safe(model.strip())
    cassette = Cassette(folder, str(options.extra.get("llm") or "auto"), endpoint.secrets())
    if query:  # ?judge=pairwise|listwise: an LLM that picks the better response (rmcheck.judges)
        return build_judge(model.strip(), endpoint, cassette, table, query)
    return OpenAIJudge(model.strip(), endpoint, cassette, table)


class OpenAIJudge:
    """Scores pairs by asking an LLM for a rating; ``concurrency`` requests at a time."""

    objectives: tuple[str, ...] = ()

    def __init__(self, model: str, endpoint: llm.Endpoint, cassette: Cassette, table: Mapping[str, Any]) -> None:
        self.model, self.endpoint, self.cassette = model, endpoint, cassette
        self.spec = f"openai:{model}"
        try:
            low, high = (int(v) for v in table.get("scale", DEFAULT_SCALE))
            self.scale = (low, high)
            self.concurrency = int(table.get("concurrency", 8))
            self.max_tokens = int(table.get("max_tokens", 32))
        except (TypeError, ValueError):
            raise BackendError("bad [tool.rmcheck.judge] setting", where="pyproject.toml",
                               fix="scale is [LOW, HIGH]; concurrency and max_tokens are whole numbers") from None
        if low >= high or self.concurrency < 1:
            raise BackendError(f"bad judge scale {self.scale} or concurrency {self.concurrency}", where="pyproject.toml",
                               fix="Use scale = [1, 9] (LOW < HIGH) and concurrency >= 1")
        self.rubric = str(table.get("rubric", DEFAULT_RUBRIC))
        self.logprobs = bool(table.get("logprobs", True))
        self._fingerprint = hashlib.sha256(json.dumps(
            [FORMAT_VERSION, model, public_url(endpoint.base_url), self.rubric, self.scale, self.logprobs,
             self.max_tokens], sort_keys=True).encode()).hexdigest()

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def describe(self) -> str:
        how = "expected rating over logprobs where the server sends them" if self.logprobs else "the parsed rating"
        return (f"{self.spec} (LLM judge at {public_url(self.endpoint.base_url)}, scale {self.scale[0]}-{self.scale[1]}, "
                f"score = {how})")

    def score(self, pairs: Sequence[Pair]) -> list[Scores]:
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(pairs)))) as pool:
            outcomes = list(pool.map(self._judge, pairs))
        failures = [o for o in outcomes if isinstance(o, RmcheckError)]
        if failures:
            messages = list(dict.fromkeys(f.message for f in failures))
            more = f" (and {len(messages) - MAX_REPORTED} more)" if len(messages) > MAX_REPORTED else ""
            raise ScoreError(f"{self.spec}: {len(failures)} of {len(pairs)} judge call(s) failed: "
                             + "; ".join(messages[:MAX_REPORTED]) + more, fix=failures[0].fix)
        return [{"score": value} for value in outcomes]  # type: ignore[misc]

    def request(self, pair: Pair) -> dict[str, Any]:
        low, high = self.scale
        system = (f"{self.rubric}\nRate the response with a whole number from {low} (worst) to {high} (best). "
                  f'Answer only with JSON: {{"rating": N}}.')
        user = f"<prompt>\n{pair.prompt_text}\n</prompt>\n\n<response>\n{pair.response}\n</response>"
        schema = {"type": "object", "properties": {"rating": {"type": "integer", "minimum": low, "maximum": high}},
                  "required": ["rating"], "additionalProperties": False}
        request: dict[str, Any] = {
            "model": self.model, "temperature": 0.0, "seed": 0, "max_tokens": self.max_tokens,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "rating", "strict": True, "schema": schema}},
        }
        if self.logprobs:
            request.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        return request

    def _judge(self, pair: Pair) -> float | RmcheckError:
        try:
            return llm.chat(self.endpoint, self.cassette, self.request(pair), lambda answer: self._parse(pair, answer))
        except RmcheckError as exc:
            return exc

    def _parse(self, pair: Pair, answer: Mapping[str, Any]) -> float:
        choices = answer.get("choices") or [{}]
        raw = llm.contents(answer)[0] if answer.get("choices") else ""
        rating = parse_rating(raw, self.scale)
        if rating is None:
            raise ScoreError(f"unparseable rating for the pair (prompt {_short(pair.prompt_text)!r}, response "
                             f"{_short(pair.response)!r}): the judge answered {_short(raw)!r}",
                             fix=f'The judge must answer {{"rating": N}} with N from {self.scale[0]} to {self.scale[1]}; '
                                 "check that the endpoint supports response_format json_schema, or adjust the rubric")
        expected = expected_rating(choices[0].get("logprobs"), rating, self.scale) if self.logprobs else None
        return float(rating) if expected is None else expected


def parse_rating(text: str, scale: tuple[int, int]) -> int | None:
    """The integer rating in ``{"rating": N}`` (or a bare number) within the scale; None otherwise."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, Mapping):
        value = value.get("rating")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        return None
    return int(value) if scale[0] <= value <= scale[1] else None


def expected_rating(logprobs: Mapping[str, Any] | None, rating: int, scale: tuple[int, int]) -> float | None:
    """sum(k * p(k)) / sum(p(k)) over the rating tokens offered at the position of the chosen rating.

    None when there are no logprobs, or the rating is not a single token of the answer.
    """
    for entry in (logprobs or {}).get("content") or []:
        if str(entry.get("token", "")).strip() != str(rating):
            continue
        weights: dict[int, float] = {}
        for alternative in entry.get("top_logprobs") or [entry]:
            token = str(alternative.get("token", "")).strip()
            if re.fullmatch(r"\d+", token) and scale[0] <= int(token) <= scale[1]:
                weights[int(token)] = weights.get(int(token), 0.0) + math.exp(float(alternative["logprob"]))
        total = sum(weights.values())
        return sum(k * w for k, w in weights.items()) / total if total > 0 else None
    return None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)
