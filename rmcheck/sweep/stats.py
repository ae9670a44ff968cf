"""Rank statistics for sweeps, and word frequencies from ``wordfreq`` (the ``sweep`` extra)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import RmcheckError


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ascending ranks from 1, ties sharing their average rank (as in Spearman's rho)."""
    data = np.asarray(values, dtype=float)
    order = np.argsort(data, kind="stable")
    ranks = np.empty(len(data))
    ranks[order] = np.arange(1, len(data) + 1)
    _, inverse, counts = np.unique(data, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def percentiles(values: Sequence[float]) -> np.ndarray:
    """Each value's position from the bottom, 0 (lowest) to 100 (highest); ties share one."""
    if len(values) < 2:
        return np.full(len(values), 100.0)
    return 100.0 * (average_ranks(values) - 1) / (len(values) - 1)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation; 0.0 when either side is constant."""
    ra, rb = average_ranks(a) - (len(a) + 1) / 2, average_ranks(b) - (len(b) + 1) / 2
    norm = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / norm) if norm else 0.0


def zipf_frequencies(words: Sequence[str], language: str) -> list[float]:
    """``wordfreq`` Zipf frequency (log10 of uses per billion words) of each word; 0.0 when unknown."""
    try:
        from wordfreq import zipf_frequency
    except ImportError:
        raise RmcheckError("word frequencies need the wordfreq package",
                           fix="pip install 'rmcheck[sweep]' (or pip install wordfreq)") from None
    try:
        return [zipf_frequency(word, language) for word in words]
    except LookupError as exc:
        raise RmcheckError(f"wordfreq has no word list for language {language!r} ({exc})",
                           fix="Use a language code wordfreq knows, such as en, de, fr, es") from None
