"""What a run produces: per-case verdicts, per-test results, and the JSON run document."""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from .backends.base import prompt_to_text
from .counterfactual.minimise import Status
from .errors import RmcheckError
from .plain import plain
from .report.rundoc import check_run_document

RUN_FORMAT = 1

Verdict = Literal["passed", "failed", "not_applicable"]

STATUS_TEXT: dict[str, str] = {
    "minimal": "1-minimal: removing any one remaining edit makes the case pass, or leaves no edit",
    "budget": "shrink budget ran out; a smaller failing edit set may exist",
    "unshrinkable": "the expectation fails even with no edit, so every edit is shown",
    "flaky": "the minimal pair did not fail again on replay; showing the full perturbation",
    "as_written": "the pair as written: this test makes no edits",
}


@dataclass
class Side:
    """One response of a counterfactual: as written, fully perturbed, and minimally perturbed."""

    role: str
    original: str
    perturbed: str
    minimal: str
    scores: dict[str, float]  # original / perturbed / minimal


@dataclass
class Counterfactual:
    """The smallest edit of the original that still breaks the expectation."""

    prompt: Any
    sides: list[Side]
    deltas: dict[str, float]  # the compared margin d for original / perturbed / minimal
    edits_kept: int
    edits_total: int
    status: Status

    def to_json(self) -> dict[str, Any]:
        main, *others = self.sides
        doc: dict[str, Any] = {
            "prompt": prompt_json(self.prompt),
            "role": main.role, "original": main.original, "perturbed": main.perturbed, "minimal": main.minimal,
            "scores": main.scores, "deltas": self.deltas,
            "edits_kept": self.edits_kept, "edits_total": self.edits_total, "status": self.status,
        }
        if others:
            doc["other_sides"] = [asdict(s) for s in others]
        return doc

    @property
    def prompt_text(self) -> str:
        return prompt_to_text(self.prompt)


def prompt_json(prompt: Any) -> Any:
    """A prompt as the JSON document holds it: a string, or a list of ``{role, content}`` turns."""
    return prompt if isinstance(prompt, str) else [{"role": r, "content": c} for r, c in prompt]


@dataclass
class Example:
    """What a judged case compared: its main response before and after the perturbation, and the
    score of every response of the case (``perturbed`` only for the responses the perturbation changed)."""

    prompt: Any
    role: str
    original: str
    perturbed: str
    scores: dict[str, dict[str, float]]  # role -> {"original": s[, "perturbed": s]}


@dataclass
class CaseResult:
    id: str
    verdict: Verdict
    delta: float | None = None
    reason: str = ""
    source: str = ""
    counterfactual: Counterfactual | None = None
    example: Example | None = None
    dose: int | None = None  # a test with ``dose:``: the smallest dose that failed, else the largest judged

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": self.id, "verdict": self.verdict, "delta": self.delta}
        if self.reason:
            doc["reason"] = self.reason
        if self.dose is not None:
            doc["dose"] = self.dose
        if self.example is not None:
            ex = self.example
            doc.update(prompt=prompt_json(ex.prompt), role=ex.role, original=ex.original, perturbed=ex.perturbed,
                       response_scores=ex.scores)
        if self.counterfactual is not None:
            doc.update(self.counterfactual.to_json())
        return doc


@dataclass
class TestResult:
    """The verdict of one test of one suite against one model."""

    suite: str
    suite_file: str
    line: int
    test: str
    model: str
    attribute: str
    expect: str
    rule: str
    objective: str | None
    tolerance: str
    threshold: float
    min_pass_rate: float
    cases: list[CaseResult] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # kind-specific, copied into the JSON document
    explanation: str | None = None  # kind-specific failure text, used instead of the case-by-case one
    perturb: str | None = None  # the operator's name, for tests that perturb

    @property
    def counts(self) -> dict[str, int]:
        counts = {"passed": 0, "failed": 0, "not_applicable": 0}
        for case in self.cases:
            counts[case.verdict] += 1
        return counts

    @property
    def pass_rate(self) -> float | None:
        counts = self.counts
        applicable = counts["passed"] + counts["failed"]
        return counts["passed"] / applicable if applicable else None

    @property
    def outcome(self) -> Verdict:
        rate = self.pass_rate
        if rate is None:
            return "not_applicable"
        return "passed" if rate >= self.min_pass_rate else "failed"

    @property
    def passed(self) -> bool | None:
        return None if self.outcome == "not_applicable" else self.outcome == "passed"

    @property
    def failures(self) -> list[CaseResult]:
        return [c for c in self.cases if c.verdict == "failed"]

    def worst(self) -> CaseResult | None:
        """The failing case furthest past its threshold."""
        failing = [c for c in self.failures if c.delta is not None]
        return max(failing, key=lambda c: abs(c.delta or 0.0), default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite, "suite_file": self.suite_file, "line": self.line, "test": self.test,
            "model": self.model, "attribute": self.attribute, "expect": self.expect, "rule": self.rule,
            "objective": self.objective, "tolerance": self.tolerance, "threshold": self.threshold,
            "min_pass_rate": self.min_pass_rate, "outcome": self.outcome, "passed": self.passed,
            "pass_rate": self.pass_rate, "counts": self.counts, "cases": [c.to_json() for c in self.cases],
            **({"details": self.details} if self.details else {}),
            **({"perturb": self.perturb} if self.perturb else {}),
        }


#: What a test came to, counted the same by pytest's line, JUnit, the CLI and the run document's summary:
#: skipped is a test with no applicable case, xfailed one that fails its min_pass_rate but did not regress
#: (``--fail-on regression``), errors a test that could not run (its model, or its tolerance).
STATUSES = ("passed", "failed", "skipped", "xfailed", "errors")


def status_of(result: dict[str, Any]) -> str:
    """A result's status: the gate's (``status``), else its own outcome."""
    return result.get("status") or {"not_applicable": "skipped"}.get(result["outcome"], result["outcome"])


def summary_counts(statuses: Iterable[str]) -> dict[str, int]:
    """``{"passed": N, "failed": N, "skipped": N, "xfailed": N, "errors": N}``."""
    counts = dict.fromkeys(STATUSES, 0)
    for status in statuses:
        counts[status] += 1
    return counts


def summary_line(counts: dict[str, int]) -> str:
    """``2 passed, 1 failed, 1 skipped, 0 xfailed, 1 error``: the CLI's last line."""
    parts = [f"{counts[s]} {s}" for s in STATUSES[:-1]]
    errors = counts["errors"]
    return ", ".join([*parts, f"{errors} error" + ("" if errors == 1 else "s")])


def ordered(results: Sequence[dict[str, Any]], models: Sequence[str]) -> list[dict[str, Any]]:
    """Results in a fixed order, whatever order xdist workers finish in: suite file, the test's place in
    the file, then the models in the order they were given (``--rm`` on the command line first)."""
    rank = {spec: i for i, spec in enumerate(models)}
    return sorted(results, key=lambda r: (r["suite_file"], r["line"], rank.get(r["model"], len(rank)), r["model"]))


def run_document(results: list[dict[str, Any]], models: list[dict[str, Any]],
                 errors: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The versioned JSON run document from per-test JSON results, model descriptions (in the order the
    models were given) and the tests that could not run (``{suite, suite_file, line, test, model, error}``)."""
    from .version import __version__

    specs = [m["spec"] for m in models]
    doc: dict[str, Any] = plain({
        "rmcheck_run": RUN_FORMAT,
        "rmcheck_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "models": models,
        "summary": summary_counts([*(status_of(r) for r in results), *("errors" for _ in errors)]),
        "results": ordered(results, specs),
    })
    if errors:
        doc["errors"] = plain(ordered(errors, specs))
    return doc


def load_run_document(path: str | Path) -> dict[str, Any]:
    """A JSON run document read back (for reports and comparisons), or one RmcheckError naming the file."""
    where = str(path)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_not_a_number)
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            raise RmcheckError(f"not JSON (line {exc.lineno}: {exc.msg})", where=where,
                               fix="Pass the file that --json / --rmcheck-json wrote") from None
        raise RmcheckError(f"not JSON text ({exc})", where=where,
                           fix="Pass the file that --json / --rmcheck-json wrote") from None
    except OSError as exc:
        raise RmcheckError(f"cannot read run document: {exc.strerror or exc}", where=where,
                           fix="Pass the file that --json / --rmcheck-json wrote") from None
    if not isinstance(doc, dict) or doc.get("rmcheck_run") != RUN_FORMAT:
        raise RmcheckError(f"not an rmcheck run document of format {RUN_FORMAT}", where=where,
                           fix="Pass a file written by rmcheck run --json or pytest --rmcheck-json")
    return check_run_document(doc, where)


def _not_a_number(name: str) -> float:
    raise ValueError(f"{name} is not a number a run document may hold")
