"""``openai:MODEL?judge=pairwise`` and ``openai:MODEL?judge=listwise&k=4``: an LLM that picks the better response.

Pairwise, the LLM sees the question and two answers under their labels (A and B, or the labels a ``relabel`` test
gives) and ends with its verdict, ``[[A]]``, ``[[B]]`` or ``[[C]]`` for a tie. Listwise, it sees k answers
(labelled A, B, C, D, ...) and names the best one, ``[[A]]`` ... ``[[D]]``, as RewardBench 2 asks its generative
judges. An answer with no verdict, or with two different ones, does not parse: it is counted and shown, never
guessed. Raw answers are kept for the report and go through the ``openai:`` judge's cassettes, keyed by the
request (so each sample of a ``repeat:`` test, sent with its own ``seed``, is recorded apart).

``verdict=logprobs`` reads the verdict from the next-token probabilities of the labels instead
(:mod:`.logprob_verdict`): for small judges that prefer a label but do not write the verdict form.

Options after ``?``: ``judge`` (pairwise or listwise), ``k`` (listwise; default 4), ``verdict`` (text, the default,
or logprobs), ``temperature`` (default 0), ``max_tokens`` (text verdicts; default 512).
``[tool.rmcheck.judge] concurrency`` caps the requests in flight.
"""
from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence
from urllib.parse import parse_qsl

from ..backends.base import Pair, Scores
from ..errors import BackendError, RmcheckError, ScoreError
from ..llm import client as llm
from ..llm.cassette import Cassette, public_url, request_key
from . import logprob_verdict
from .interface import TIE_LABEL, Query, Verdict

#: The fingerprint's format, per way of reading the verdict.
FORMATS = {"text": "openai-verdict/1", "logprobs": "openai-logprob-verdict/1"}
STYLES = ("pairwise", "listwise")
OPTIONS = ("judge", "k", "verdict", "temperature", "max_tokens")
MAX_REPORTED = 5
_VERDICT = re.compile(r"\[\[([^\[\]\n]{1,20})\]\]")

PAIRWISE = ("You are an impartial judge. Read the user's question and the two assistants' answers below, and decide "
            "which answer serves the user better: consider helpfulness, relevance, accuracy, depth and level of "
            "detail. Explain your comparison in a few sentences. The order of the answers, their length and the "
            "assistants' names must not sway you. Then give your final verdict in exactly this form: "
            '"[[{a}]]" if assistant {a} is better, "[[{b}]]" if assistant {b} is better, "[[' + TIE_LABEL + ']]" for a tie.')
LISTWISE = ("You are an impartial judge. Read the user's question and the {k} assistants' answers below, and decide "
            "which answer serves the user best: consider helpfulness, relevance, accuracy, depth and level of "
            "detail. Explain your comparison in a few sentences. The order of the answers, their length and the "
            "assistants' names must not sway you. Then give your final verdict in exactly this form: {forms}.")


def build_judge(model: str, endpoint: llm.Endpoint, cassette: Cassette, table: Mapping[str, Any],
                query: str) -> "VerdictJudge":
    """The judge a spec's ``?judge=...`` options describe, or one :class:`BackendError` naming the bad option."""
    spec = f"openai:{model}?{query}"
    options = dict(parse_qsl(query, keep_blank_values=True))
    verdict = options.get("verdict", "text")
    bad = [f"option {key!r}" for key in sorted(set(options) - set(OPTIONS))]
    bad += [] if options.get("judge") in STYLES else [f"judge={options.get('judge', '')!r}"]
    bad += [] if verdict in FORMATS else [f"verdict={verdict!r}"]
    if bad:
        raise BackendError(f"model spec {spec}: unknown {bad[0]}", where="--rm",
                           fix="Write openai:MODEL?judge=pairwise or openai:MODEL?judge=listwise&k=4 (options: "
                               "verdict=text|logprobs, temperature=T, max_tokens=N)")
    if verdict == "logprobs" and "max_tokens" in options:
        raise BackendError(f"model spec {spec}: verdict=logprobs asks for one token, so max_tokens does not apply",
                           where="--rm", fix="Drop max_tokens, or drop verdict=logprobs")
    try:
        size = int(options.get("k", 4)) if options["judge"] == "listwise" else 2
        temperature = float(options.get("temperature", 0.0))
        max_tokens = int(options.get("max_tokens", 512))
        concurrency = int(table.get("concurrency", 8))
    except ValueError as exc:
        raise BackendError(f"model spec {spec}: bad option ({exc})", where="--rm",
                           fix="k and max_tokens are whole numbers, temperature a number") from None
    if "k" in options and options["judge"] == "pairwise" or not 2 <= size <= 26 or not 0 <= temperature <= 2 \
            or max_tokens < 1 or concurrency < 1:
        raise BackendError(f"model spec {spec}: an option is out of range", where="--rm",
                           fix="k (listwise only) from 2 to 26, temperature from 0 to 2, max_tokens and "
                               "[tool.rmcheck.judge] concurrency >= 1")
    return VerdictJudge(spec, model, endpoint, cassette, size, temperature, max_tokens, concurrency, verdict)


class VerdictJudge:
    """Asks an LLM which of the shown responses is best; ``concurrency`` requests at a time."""

    objectives: tuple[str, ...] = ()
    reads_labels = True

    def __init__(self, spec: str, model: str, endpoint: llm.Endpoint, cassette: Cassette, size: int,
                 temperature: float, max_tokens: int, concurrency: int, verdict: str = "text") -> None:
        self.spec, self.model, self.endpoint, self.cassette = spec, model, endpoint, cassette
        self.size, self.temperature, self.max_tokens, self.concurrency = size, temperature, max_tokens, concurrency
        self.verdict = verdict
        self.fingerprint = hashlib.sha256(json.dumps(
            [FORMATS[verdict], model, public_url(endpoint.base_url), size, temperature, max_tokens]).encode()).hexdigest()

    def describe(self) -> str:
        style = "pairwise" if self.size == 2 else f"listwise over {self.size} responses"
        style += ", verdict from the labels' logprobs" if self.verdict == "logprobs" else \
            ", [[A]]/[[B]]/[[C]] (tie)" if self.size == 2 else ""
        return (f"{self.spec} (LLM judge at {public_url(self.endpoint.base_url)}, {style}, "
                f"temperature {self.temperature:g})")

    def score(self, pairs: Sequence[Pair]) -> list[Scores]:
        raise BackendError(f"model {self.spec} is a judge: it picks the better of {self.size} responses and scores "
                           "none alone", fix="Run it on judge tests (expect: consistent, kind: best_of_n), or drop "
                                             "?judge= to rate single responses")

    def judge(self, queries: Sequence[Query]) -> list[Verdict]:
        """Each distinct request asked once (under ``verdict=logprobs`` the samples of a presentation share one),
        then each query's verdict read from its answer."""
        requests = {q: self.request(q) for q in queries if len(q.responses) == self.size}
        distinct = {request_key(r): r for r in requests.values()}
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(distinct)))) as pool:
            answers = dict(zip(distinct, pool.map(self._ask, distinct.values())))
        outcomes = [self._verdict(q, requests.get(q), answers) for q in queries]
        failures = [o for o in outcomes if isinstance(o, RmcheckError)]
        if failures:
            messages = list(dict.fromkeys(f.message for f in failures))
            raise ScoreError(f"{self.spec}: {len(failures)} of {len(queries)} judge call(s) failed: "
                             + "; ".join(messages[:MAX_REPORTED]), fix=failures[0].fix)
        return outcomes  # type: ignore[return-value]

    def request(self, query: Query) -> dict[str, Any]:
        """The chat request for one query: the instructions, the question and the labelled answers (under
        ``verdict=logprobs``, ending with a request for the label alone, one token and its logprobs)."""
        labels = query.labels
        if self.verdict == "logprobs":
            system = logprob_verdict.system_prompt(labels)
        elif len(labels) == 2:
            system = PAIRWISE.format(a=labels[0], b=labels[1])
        else:
            forms = ", ".join(f'"[[{label}]]" if assistant {label} is best' for label in labels)
            system = LISTWISE.format(k=len(labels), forms=forms)
        answers = "\n\n".join(f"[The Start of Assistant {label}'s Answer]\n{text}\n[The End of Assistant {label}'s Answer]"
                              for label, text in zip(labels, query.responses))
        user = f"[User Question]\n{Pair(query.prompt, '').prompt_text}\n\n{answers}"
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        if self.verdict == "logprobs":
            messages[1]["content"] += "\n\n" + logprob_verdict.question(labels)
            return {"model": self.model, "messages": messages, **logprob_verdict.request_options()}
        return {"model": self.model, "temperature": self.temperature, "seed": query.sample, "max_tokens": self.max_tokens,
                "messages": messages}

    def _ask(self, request: dict[str, Any]) -> dict[str, Any] | RmcheckError:
        """The answer to ``request`` (replayed or asked; a logprob answer must carry logprobs to be kept)."""
        def usable(answer: dict[str, Any]) -> dict[str, Any]:
            if self.verdict == "logprobs":
                logprob_verdict.top_tokens(answer)
            return answer
        try:
            return llm.chat(self.endpoint, self.cassette, request, usable)
        except RmcheckError as exc:
            return exc

    def _verdict(self, query: Query, request: dict[str, Any] | None,
                 answers: Mapping[str, dict[str, Any] | RmcheckError]) -> Verdict | RmcheckError:
        if request is None:
            return BackendError(f"{self.spec} compares {self.size} responses, not {len(query.responses)}")
        answer = answers[request_key(request)]
        if isinstance(answer, RmcheckError):
            return answer
        if self.verdict == "logprobs":
            return logprob_verdict.parse(answer, query.labels, self.temperature, request, query.sample)
        return parse_verdict((llm.contents(answer) or [""])[0], query.labels)


def parse_verdict(text: str, labels: Sequence[str]) -> Verdict:
    """The verdict in ``text``: one-hot on the label named as ``[[LABEL]]`` (a pair's ``[[C]]``: a tie); no
    probabilities when no verdict, or two different ones, are named. ``raw`` keeps the text."""
    named = {found.strip() for found in _VERDICT.findall(text)}
    known = named & {*labels, *((TIE_LABEL,) if len(labels) == 2 else ())}
    if len(known) != 1:
        return Verdict(None, text)
    (label,) = known
    if label == TIE_LABEL and len(labels) == 2:
        return Verdict((0.5, 0.5), text)
    return Verdict(tuple(1.0 if x == label else 0.0 for x in labels), text)
