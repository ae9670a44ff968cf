"""The release gate: a test's status under ``--fail-on`` (``absolute``, ``regression`` or ``both``), given its
result and its comparison with the baseline. ``rmcheck run``, ``rmcheck compare`` and the pytest plugin decide
with these functions and :func:`rmcheck.report.compare.judge` (the regression rule), and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import RmcheckError

if TYPE_CHECKING:
    from .compare import TestChange


@dataclass
class Judged:
    """A result as the gate sees it: its JSON with ``status`` (and ``baseline``, the path and digest of the
    baseline it was compared against), the reason for an xfail, and the comparison with the baseline."""

    result: dict[str, Any]
    reason: str = ""
    change: TestChange | None = None

    @property
    def regressed(self) -> bool:
        return self.change is not None and self.change.regression


FAIL_ON = ("absolute", "regression", "both")


def fail_on_mode(value: str | None, has_baseline: bool, where: str = "--fail-on") -> str:
    """The gating mode: as given, else ``both`` with a baseline and ``absolute`` without."""
    mode = value or ("both" if has_baseline else "absolute")
    if mode != "absolute" and not has_baseline:
        raise RmcheckError(f"{mode} needs a baseline to regress against", where=where,
                           fix="Pass the folder of the suites' committed baselines (written by --update-baseline / "
                               "--rmcheck-update-baseline), or the released model's run document, with --baseline / "
                               "--rmcheck-baseline")
    return mode


def gate_status(result: dict[str, Any], change: TestChange | None, mode: str) -> tuple[str, str]:
    """A result's status under ``--fail-on MODE`` and why: (passed | failed | skipped | xfailed, reason).

    ``absolute`` fails a test below its min_pass_rate; ``regression`` fails one that regressed against the
    baseline (a test below its min_pass_rate that did not is xfailed); ``both`` fails on either.
    """
    if result["outcome"] == "not_applicable":
        return "skipped", "no case applicable"
    regressed = change is not None and change.regression
    below = result["outcome"] == "failed"
    if mode == "absolute" or (mode == "both" and not regressed):
        return ("failed", "below its min_pass_rate") if below else ("passed", "")
    if regressed:
        return "failed", "regressed against the baseline"
    if not below:
        return "passed", ""
    if change is None:
        return "xfailed", "not in the baseline, so it cannot regress"
    if change.base["outcome"] == "failed":
        return "xfailed", "fails in the baseline too"
    return "xfailed", f"below its min_pass_rate, but no regression against the baseline ({change.criteria()})"
