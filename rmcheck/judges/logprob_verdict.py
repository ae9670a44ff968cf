"""``verdict=logprobs``: a judge's verdict read from its next-token probabilities over the labels.

Small judges rarely end with ``[[A]]`` but still prefer one label. The judge is asked for the label of the better
answer alone, in one token (``max_tokens: 1``, ``logprobs: true``, ``top_logprobs: 20``, temperature 0, no seed),
and P(each response is best) = p(its label) / sum of p(every shown label), summed over the top tokens that read as
a label once spaces are stripped (``"A"`` and ``" A"``, or a tokenizer's ``Ġ``/``▁`` marks). Labels are the
presentation's, so ``relabel`` works. When no label is among the top tokens the answer does not parse: it is
counted, never guessed. A server that sends no logprobs is an error.

At temperature 0 the verdict is those probabilities, the same for every sample (``repeat`` cannot flip). At a
temperature T > 0 each sample draws one label from the labels' probabilities raised to 1/T (renormalised),
seeded by the request and the sample number: the verdict of a judge that samples its one-token answer, with the
same recorded answer serving every sample.
"""
from __future__ import annotations

import math
import random
from typing import Any, Mapping, Sequence

from ..errors import RmcheckError
from ..llm.cassette import request_key
from .interface import Verdict

TOP_LOGPROBS = 20
SHOWN_TOKENS = 5

PAIRWISE = ("You are an impartial judge. Read the user's question and the two assistants' answers below, and decide "
            "which answer serves the user better: consider helpfulness, relevance, accuracy, depth and level of "
            "detail. The order of the answers, their length and the assistants' names must not sway you. Answer "
            "with the label of the better assistant alone: {a} or {b}.")
LISTWISE = ("You are an impartial judge. Read the user's question and the {k} assistants' answers below, and decide "
            "which answer serves the user best: consider helpfulness, relevance, accuracy, depth and level of "
            "detail. The order of the answers, their length and the assistants' names must not sway you. Answer "
            "with the label of the best assistant alone: {labels}.")
QUESTION = "Which assistant's answer is better? Answer with its label alone: {labels}."


def system_prompt(labels: Sequence[str]) -> str:
    if len(labels) == 2:
        return PAIRWISE.format(a=labels[0], b=labels[1])
    return LISTWISE.format(k=len(labels), labels=", ".join(labels))


def question(labels: Sequence[str]) -> str:
    """The line that ends the user message: the label alone."""
    return QUESTION.format(labels=" or ".join(labels) if len(labels) == 2 else ", ".join(labels))


def request_options() -> dict[str, Any]:
    """What a logprob request asks for besides the model and messages (no seed: every sample shares the answer)."""
    return {"temperature": 0.0, "max_tokens": 1, "logprobs": True, "top_logprobs": TOP_LOGPROBS}


def as_label(token: str) -> str:
    """A token as the label it may spell: spaces and a tokenizer's word marks (``Ġ``, ``▁``) stripped."""
    return token.strip().lstrip("Ġ▁").strip()


def top_tokens(answer: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(token, logprob) of the first answer token's top alternatives; :class:`RmcheckError` if none were sent."""
    choices = answer.get("choices") or [{}]
    content = (choices[0].get("logprobs") or {}).get("content") or []
    if not content:
        raise RmcheckError("the LLM sent no logprobs for its answer token",
                           fix="verdict=logprobs needs an endpoint that returns logprobs and top_logprobs (vLLM, "
                               "OpenAI); drop verdict=logprobs to parse a written [[A]]/[[B]] verdict instead")
    first = content[0]
    return [(str(t.get("token", "")), float(t["logprob"])) for t in first.get("top_logprobs") or [first]]


def label_probabilities(tokens: Sequence[tuple[str, float]], labels: Sequence[str]) -> tuple[float, ...] | None:
    """p(each label) / p(any label) over ``tokens``; None when no label is among them."""
    mass = {label: 0.0 for label in labels}
    for token, logprob in tokens:
        label = as_label(token)
        if label in mass:
            mass[label] += math.exp(logprob)
    total = sum(mass.values())
    return tuple(mass[label] / total for label in labels) if total > 0 else None


def parse(answer: Mapping[str, Any], labels: Sequence[str], temperature: float, request: Mapping[str, Any],
          sample: int) -> Verdict:
    """The verdict of one recorded answer for one sample (see the module's docstring); ``raw`` shows the labels'
    probabilities, the top tokens and any draw."""
    tokens = top_tokens(answer)
    shown = ", ".join(f"{token!r} {math.exp(logprob):.3g}" for token, logprob in tokens[:SHOWN_TOKENS])
    probs = label_probabilities(tokens, labels)
    if probs is None:
        return Verdict(None, f"no label among the top {len(tokens)} next tokens: {shown}")
    raw = " ".join(f"p({label})={p:.3g}" for label, p in zip(labels, probs)) + f"; top tokens: {shown}"
    if temperature == 0:
        return Verdict(probs, raw)
    drawn = draw(probs, temperature, f"{request_key(request)}\x1f{sample}")
    return Verdict(tuple(1.0 if i == drawn else 0.0 for i in range(len(labels))),
                   f"drew {labels[drawn]} at temperature {temperature:g}; {raw}")


def draw(probs: Sequence[float], temperature: float, seed: str) -> int:
    """The index drawn from ``probs`` raised to 1/``temperature``, renormalised, with a generator seeded by ``seed``."""
    top = max(probs)
    weights = [(p / top) ** (1.0 / temperature) for p in probs]
    return random.Random(seed).choices(range(len(probs)), weights=weights)[0]
