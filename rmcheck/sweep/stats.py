"""Rank statistics for sweeps (scipy), and word frequencies from ``wordfreq`` (the ``sweep`` extra)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import RmcheckError


def _scipy_stats():  # type: ignore[no-untyped-def]
    """scipy.stats, imported on first use (it costs a second at start-up that most commands never need)."""
    from scipy import stats

    return stats


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ascending ranks from 1, ties sharing their average rank (as in Spearman's rho)."""
    return _scipy_stats().rankdata(np.asarray(values, dtype=float), method="average")


def percentiles(values: Sequence[float]) -> np.ndarray:
    """Each value's position from the bottom, 0 (lowest) to 100 (highest); ties share one."""
    if len(values) < 2:
        return np.full(len(values), 100.0)
    return 100.0 * (average_ranks(values) - 1) / (len(values) - 1)


def _constant(values: Sequence[float]) -> bool:
    return len(values) < 2 or bool(np.all(np.asarray(values) == values[0]))


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (tie-aware); 0.0 when either side is constant."""
    return 0.0 if _constant(a) or _constant(b) else float(_scipy_stats().spearmanr(a, b).statistic)


def kendall(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b (tie-aware); 0.0 when either side is constant."""
    return 0.0 if _constant(a) or _constant(b) else float(_scipy_stats().kendalltau(a, b).statistic)


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
