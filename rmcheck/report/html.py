"""``rmcheck report``: one self-contained HTML page that ranks models and points at their failures.

The page is rendered from Jinja2 templates (``report/templates``) with autoescaping on, so no text of a
run document (which may be untrusted) can become markup; numbers for tools are embedded as JSON in
``<script type="application/json">`` elements with ``<``, ``>`` and ``&`` escaped. There are no external
assets: inline CSS and vanilla JavaScript (sorting and filtering), matplotlib figures as base64 PNGs.

Sections: the scorecard (models ranked; pass rate per suite and test; accuracy for pair-preference
tests), the heat map (mean |Δ|/sd for invariance tests, signed mean Δ/sd for directional ones; each
cell links to its worst failure), the worst failures first, the sensitivity table and distributions,
representative examples, contrastive explanations (``rmcheck explain`` documents), and the runs. With
a baseline (``rmcheck report --baseline``, ``rmcheck compare --html``) the release gate comes first: its
verdict, each test's pass rates and p (or "judged on the drop"), and every flipped case's two sides.
"""
from __future__ import annotations

import base64
import datetime as _dt
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from markupsafe import Markup, escape

from ..errors import RmcheckError
from ..results import load_run_document
from .compare import Comparison
from .figures import case_deltas_png, distributions_png, pyplot, short
from .scorecard import Failure, accuracy, scorecard
from .sensitivity import Sensitivity, scales, sensitivities
from .text import diff_chunks, shown

__all__ = ["build_report", "case_deltas_png", "diff_html", "pair_html", "pair_page", "pyplot", "render_report",
           "safe_json", "write_report"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_FAILURES = 50  # worst failures listed on the page
MAX_EXPLAINED = 20  # comparisons shown per explain document (all are in its JSON)


@lru_cache(maxsize=1)
def environment() -> Any:
    """The Jinja2 environment: the package's templates, autoescaped, strict about undefined names."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["breakable"] = breakable
    env.globals.update(short=short, diff_html=diff_html, prompt_text=prompt_text, fmt=fmt, rate_color=rate_color,
                       heat_color=heat_color, accuracy=accuracy)
    return env


def write_report(paths: Sequence[str | Path], out: str | Path, *, seed: int = 0,
                 gates: Sequence[Comparison] = ()) -> Path:
    """Read run documents (and ``rmcheck explain`` documents), write the page to ``out``, return its path;
    ``gates`` (release-gate comparisons) go on top."""
    page = build_report(paths, seed=seed, gates=gates)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target


def build_report(paths: Sequence[str | Path], *, seed: int = 0, gates: Sequence[Comparison] = ()) -> str:
    """The page for the documents at ``paths``."""
    return render_report([(str(p), load_document(p)) for p in paths], seed=seed, gates=gates)


def render_report(docs: Sequence[tuple[str, dict[str, Any]]], *, seed: int = 0,
                  gates: Sequence[Comparison] = ()) -> str:
    """The page for loaded documents, each ``(path, document)``, with the release gate's comparisons on top."""
    runs = [(p, d) for p, d in docs if "rmcheck_explain" not in d]
    explained = [d for _, d in docs if "rmcheck_explain" in d]
    found = sensitivities(runs, seed=seed)
    if not found and not explained:
        raise RmcheckError("no perturbed cases with scores in these run documents", where=", ".join(p for p, _ in docs),
                           fix="Run suites whose tests perturb responses (rmcheck run --json RUN.json) with this "
                               "rmcheck version, then report on RUN.json")
    sd = {model: s for (model, objective), s in scales([p for s in found for p in s.probes]).items() if objective is None}
    card = scorecard(runs, sd)
    models = list(dict.fromkeys([c.model for c in card.models] + [s.model for s in found]))
    attributes = list(dict.fromkeys(s.attribute for s in found))
    anchors = _failure_anchors(card.failures[:MAX_FAILURES])
    return environment().get_template("report.html.j2").render(
        generated=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        docs=runs, gates=gates, card=card, models=models, attributes=attributes, found=found,
        choices=list(dict.fromkeys(models + [str(d["model"].get("spec")) for d in explained])),
        cells={(s.model, s.attribute): s for s in found}, limit=_heat_limit(found), anchors=anchors,
        failures=card.failures[:MAX_FAILURES], failing_models={f.model for f in card.failures}, hidden_failures=max(len(card.failures) - MAX_FAILURES, 0),
        examples=[(a, [(s, s.representative()) for s in found if s.attribute == a]) for a in attributes],
        by_case=_deltas_by_model(found), explained=explained, max_explained=MAX_EXPLAINED,
        distributions=_png_uri(distributions_png(found, models, attributes)) if found else None,
        data=safe_json({"sensitivity": [s.to_json() for s in found],
                        "ranking": [{"rank": c.rank, "model": c.model, "tests_passed": c.passed,
                                     "tests": len(c.applicable), "mean_pass_rate": c.mean_pass_rate}
                                    for c in card.models]}),
        sensitivity_json=safe_json([s.to_json() for s in found]),
    )


def load_document(path: str | Path) -> dict[str, Any]:
    """A run document, or an ``rmcheck explain`` JSON document (``rmcheck_explain`` at its top)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        doc = None  # load_run_document names the problem
    if isinstance(doc, dict) and "rmcheck_explain" in doc:
        if not isinstance(doc.get("comparisons"), list) or not isinstance(doc.get("model"), dict):
            raise RmcheckError("not a complete rmcheck explain document", where=str(path),
                               fix="Pass the file that rmcheck explain --json wrote")
        return doc
    return load_run_document(path)


# -- values the templates show ------------------------------------------------------------------


def safe_json(value: Any) -> Markup:
    """JSON to embed in a ``<script type="application/json">`` element: ``<``, ``>`` and ``&`` escaped
    (as ``\\u003c`` ...), so no text in it can end the element or open a comment."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, default=str)
    return Markup(text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
                  .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def breakable(text: Any) -> Markup:
    """``text`` escaped, with a line-break opportunity (``<wbr>``) after each ``_ : / . -``, so narrow
    column headings wrap between the parts of a name instead of inside a word."""
    return Markup(re.sub(r"([_:/.\-])", r"\1<wbr>", str(escape(text))))


def fmt(value: Any, spec: str = ".2f") -> str:
    """A number formatted, or an em dash for None/NaN."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        return "—"
    return format(value, spec)


def rate_color(rate: Any) -> str:
    """A background from red (0) through yellow to green (1) for a pass rate; grey when there is none."""
    if not isinstance(rate, (int, float)) or rate != rate:
        return "#f0f0f0"
    r = min(max(float(rate), 0.0), 1.0)
    red, green = (248, 208, 208), (206, 240, 206)
    return "#" + "".join(f"{round(a + (b - a) * r):02x}" for a, b in zip(red, green))


def heat_color(value: float, limit: float) -> str:
    """A diverging background: red for positive, blue for negative, white at 0 (``limit`` is full colour)."""
    if value != value:
        return "#f0f0f0"
    t = min(abs(value) / (limit or 1.0), 1.0)
    end = (214, 96, 77) if value > 0 else (67, 147, 195)
    return "#" + "".join(f"{round(255 + (e - 255) * t):02x}" for e in end)


def _heat_limit(found: Sequence[Sensitivity]) -> float:
    return max((abs(s.heat) for s in found if s.heat == s.heat), default=1.0) or 1.0


def _failure_anchors(failures: Sequence[Failure]) -> dict[tuple[str, str], int]:
    """(model, attribute) -> the position of its worst listed failure (its anchor is ``failure-N``)."""
    anchors: dict[tuple[str, str], int] = {}
    for n, f in enumerate(failures, start=1):
        anchors.setdefault((f.model, f.attribute), n)
    return anchors


def _deltas_by_model(found: Sequence[Sensitivity]) -> dict[tuple[str, str], dict[str, float]]:
    """(test, case id) -> {model: delta}: how every model moved on the same perturbed case."""
    index: dict[tuple[str, str], dict[str, float]] = {}
    for s in found:
        for probe in s.probes:
            index.setdefault((probe.test, str(probe.case["id"])), {})[probe.model] = probe.delta
    return index


def prompt_text(prompt: Any) -> str:
    """A run document's prompt as text: a string, or ``role: content`` lines of its turns."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        return "\n".join(f"{t.get('role', '')}: {t.get('content', '')}" if isinstance(t, dict) else str(t)
                         for t in prompt)
    return "" if prompt is None else str(prompt)


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# -- the minimal pair as HTML (also an Allure attachment) -----------------------------------------


def diff_html(before: Any, after: Any) -> Markup:
    """``after`` against ``before`` word by word, as escaped HTML with ``<del>`` and ``<ins>``."""
    tags = {"equal": "{}", "removed": "<del>{}</del>", "added": "<ins>{}</ins>"}
    return Markup("".join(tags[kind].format(escape(text if kind == "equal" else shown(text)))
                          for kind, text in diff_chunks(str(before or ""), str(after or ""))))


def pair_html(case: dict[str, Any]) -> str:
    """One case of a run document as HTML: prompt, the (minimal) pair as a word diff, and the scores."""
    return str(environment().get_template("pair.html.j2").module.pair(case))  # type: ignore[attr-defined]


def pair_page(title: str, case: dict[str, Any]) -> str:
    """A standalone HTML page for one case (an Allure attachment)."""
    return environment().get_template("pair_page.html.j2").render(title=title, case=case)

