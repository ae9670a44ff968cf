"""rmcheck's statistics, for the reports, explanations, sweeps and the release gate: what a perturbation did to
a preference, bootstrap confidence intervals (scipy's BCa where it applies), the exact one-sided McNemar test of a
pass-rate drop, and rank statistics (ranks, percentiles, Spearman's rho, Kendall's tau-b). scipy is imported on
first use: it costs a second at start-up that most commands never need.

A perturbed comparison's outcome, relative to the original margin ``before`` = score(chosen) -
score(rejected) and the margin ``after`` the perturbation:

- ``counterfactual``: the preference flipped (``after`` has the other sign);
- ``tie``: ``after`` is exactly 0; neither a counterfactual nor a semifactual, whichever side was ahead;
- ``semifactual``: the preference held although the perturbation closed at least ``semifactual_margin``
  (default one half) of the original margin, i.e. ``(before - after) / before >= semifactual_margin``:
  a substantial perturbation that leaves the preference unchanged, as in Jiang et al. (ICLR 2025);
- ``small``: the preference held and less of the margin was closed (a small non-flip, reported apart).

An original tie has no preference to flip: its outcome is None.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Literal, Sequence

import numpy as np

Outcome = Literal["counterfactual", "semifactual", "tie", "small"]
OUTCOMES: tuple[Outcome, ...] = ("counterfactual", "semifactual", "tie", "small")
SEMIFACTUAL_MARGIN = 0.5
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


def closed(before: float, after: float) -> float:
    """The share of the original margin a perturbation took away (1 or more: it reached a tie or flipped)."""
    return (before - after) / before


def outcome(before: float, after: float, semifactual_margin: float = SEMIFACTUAL_MARGIN) -> Outcome | None:
    """What the perturbation that moved the margin from ``before`` to ``after`` did to the preference."""
    if before == 0:
        return None
    if after == 0:
        return "tie"
    if (after > 0) != (before > 0):
        return "counterfactual"
    return "semifactual" if closed(before, after) >= semifactual_margin else "small"


def bootstrap_ci(values: Sequence[float], *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES,
                 level: float = CONFIDENCE) -> tuple[float, float]:
    """Bootstrap interval of the mean (``scipy.stats.bootstrap``): BCa, or the percentile interval where
    BCa is undefined (fewer than three distinct resampled means); deterministic for a given seed.
    Constant data (or one value) gives a zero-width interval."""
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return (math.nan, math.nan)
    if len(data) == 1 or np.all(data == data[0]):
        return (float(data[0]), float(data[0]))
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns where BCa degenerates; the percentile interval follows
            found = _scipy_stats().bootstrap((data,), np.mean, n_resamples=resamples, confidence_level=level, method=method,
                              rng=np.random.default_rng(seed)).confidence_interval
        if math.isfinite(found.low) and math.isfinite(found.high):
            break
    return (float(found.low), float(found.high))


def mcnemar_greater(worse: int, better: int) -> float:
    """Exact one-sided McNemar p-value of a drop: P(X >= worse) for X ~ Binomial(worse + better, 1/2), where
    ``worse`` cases went pass -> fail and ``better`` fail -> pass (``binomtest(..., alternative="greater")``)."""
    n = worse + better
    return sum(math.comb(n, k) for k in range(worse, n + 1)) / 2 ** n


def smallest_p(flippable: int) -> float:
    """The smallest one-sided McNemar p that ``flippable`` cases (those passing in the base) can give: all flipped."""
    return mcnemar_greater(flippable, 0)


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ascending ranks from 1, ties sharing their average rank (as in Spearman's rho)."""
    return _scipy_stats().rankdata(np.asarray(values, dtype=float), method="average")


def percentiles(values: Sequence[float]) -> np.ndarray:
    """Each value's position from the bottom, 0 (lowest) to 100 (highest); ties share one."""
    if len(values) < 2:
        return np.full(len(values), 100.0)
    return 100.0 * (average_ranks(values) - 1) / (len(values) - 1)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (tie-aware); 0.0 when either side is constant."""
    constant = lambda values: len(values) < 2 or bool(np.all(np.asarray(values) == values[0]))  # noqa: E731
    return 0.0 if constant(a) or constant(b) else float(_scipy_stats().spearmanr(a, b).statistic)


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b (ties accounted for); None when either side is constant or too short."""
    if len(x) < 2:
        return None
    tau = float(_scipy_stats().kendalltau(x, y).statistic)
    return None if math.isnan(tau) else round(tau, 12)  # 1.0, not 0.9999999999999999


def _scipy_stats() -> Any:
    """scipy.stats, imported on first use."""
    from scipy import stats

    return stats
