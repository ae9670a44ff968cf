"""Reward functions that answer badly, for tests/test_faults.py (``python:tests.fault_rms:NAME``).

Each declares ``rmcheck_fingerprint`` so its good answers would be cached: the tests check that
nothing of a bad batch is.
"""
from __future__ import annotations

import math

rmcheck_fingerprint = "fault-rms-1"


def as_string(prompts: list[str], responses: list[str]) -> str:
    return "0.51.2"[: len(responses)]


def missing_keys(prompts: list[str], responses: list[str]) -> list[dict[str, float]]:
    return [{"honesty": 1.0, "verbosity": 2.0} if i == 0 else {"honesty": 1.0} for i, _ in enumerate(responses)]


def _poisoned(bad: float):
    def score(prompts: list[str], responses: list[str]) -> list[float]:
        return [bad if "Please note" in r or "I may be" in r or "fairly confident" in r else float(len(r))
                for r in responses]
    return score


infinite = _poisoned(math.inf)
not_a_number = _poisoned(math.nan)
overflowing = _poisoned(-1e308)
