"""CI artefacts of a test result: JUnit XML properties and Allure attachments.

Properties are small strings (counts, rates, deltas) that CI dashboards can chart. Attachments
need allure-pytest to be active (the plugin calls :func:`attach_failure` only under ``--alluredir``);
plots also need matplotlib. Without them, nothing is attached and nothing fails.
"""
from __future__ import annotations

import statistics
from typing import Any

from .compare import TestChange
from ..errors import RmcheckError

#: Failing cases attached per test (worst first); the JSON run document holds them all.
MAX_ATTACHED = 10


def junit_properties(result: dict[str, Any], change: TestChange | None = None) -> list[tuple[str, str]]:
    """``(name, value)`` pairs for ``item.user_properties``: the JUnit XML ``<property>`` elements."""
    deltas = [c["delta"] for c in result["cases"] if c["verdict"] != "not_applicable" and c.get("delta") is not None]
    counts = result["counts"]
    props: list[tuple[str, Any]] = [
        ("rmcheck_model", result["model"]), ("rmcheck_attribute", result["attribute"] or result["suite"]),
        ("rmcheck_expect", result["expect"]), ("rmcheck_pass_rate", result["pass_rate"]),
        ("rmcheck_min_pass_rate", result["min_pass_rate"]), ("rmcheck_passed", counts["passed"]),
        ("rmcheck_failed", counts["failed"]), ("rmcheck_not_applicable", counts["not_applicable"]),
        ("rmcheck_threshold", result["threshold"]),
        ("rmcheck_mean_delta", statistics.fmean(deltas) if deltas else None),
        ("rmcheck_min_delta", min(deltas, default=None)), ("rmcheck_max_delta", max(deltas, default=None)),
    ]
    if change is not None:
        props += [("rmcheck_baseline_pass_rate", change.base["pass_rate"]), ("rmcheck_pass_rate_change", change.change),
                  ("rmcheck_mcnemar_p", change.p_value), ("rmcheck_regression", change.regression)]
    return [(name, _small(value)) for name, value in props if value is not None]


def _small(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:.4g}" if isinstance(value, float) else str(value)[:200]


def attach_failure(result: dict[str, Any], change: TestChange | None = None) -> int:
    """Attach each failing case's minimal pair (HTML), the case-delta plot and any baseline regression to the
    running Allure test; returns how many attachments were made (0 without allure-pytest)."""
    try:
        import allure
    except ImportError:
        return 0
    from .html import case_deltas_png, pair_page

    title = f"{result['suite']}::{result['test']} [{result['model']}]"
    failing = sorted((c for c in result["cases"] if c["verdict"] == "failed" and "original" in c),
                     key=lambda c: -abs(c.get("delta") or 0))
    made = 0
    for case in failing[:MAX_ATTACHED]:
        allure.attach(pair_page(f"{title} case {case['id']}", case), name=f"minimal pair: {case['id']}",
                      attachment_type=allure.attachment_type.HTML)
        made += 1
    if change is not None and change.regression:
        allure.attach(change.explain("baseline", result["model"]), name="regression against the baseline",
                      attachment_type=allure.attachment_type.TEXT)
        made += 1
    if not any("original" in c for c in result["cases"]):
        return made  # not a perturbation test (other kinds attach their own artefacts): nothing to plot
    try:
        png = case_deltas_png(result)
    except RmcheckError:  # no matplotlib: the plots are optional
        return made
    allure.attach(png, name="case deltas", attachment_type=allure.attachment_type.PNG)
    return made + 1
