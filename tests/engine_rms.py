"""Tiny reward functions for the engine's own tests (``python:tests.engine_rms:NAME``)."""
from __future__ import annotations

import math

CALLS: list[int] = []


def marker(prompts: list[str], responses: list[str]) -> list[float]:
    """+1 per ``UP`` and -1 per ``DOWN`` in the response; logs batch sizes in CALLS."""
    CALLS.append(len(responses))
    return [float(r.count("UP") - r.count("DOWN")) for r in responses]


def batchy(prompts: list[str], responses: list[str]) -> list[float]:
    """Like :func:`marker` in a batch of several pairs, 0 for a pair scored alone: batch composition matters."""
    return [float(r.count("UP")) if len(responses) > 1 else 0.0 for r in responses]


def heads(prompts: list[str], responses: list[str]) -> list[dict[str, float]]:
    """Two objectives: honesty rises with 'maybe', verbosity with length."""
    return [{"honesty": float(r.count("maybe")), "verbosity": len(r) / 100} for r in responses]


def nan(prompts: list[str], responses: list[str]) -> list[float]:
    return [math.nan for _ in responses]


def short_count(prompts: list[str], responses: list[str]) -> list[int]:
    return [1 for _ in responses[:-1]]
