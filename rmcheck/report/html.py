"""``rmcheck report``: one self-contained HTML page of global sensitivity, and the HTML minimal pair.

The page has no external assets: inline CSS, matplotlib figures as base64 PNGs, and the numbers
as embedded JSON (``<script type="application/json" id="rmcheck-sensitivity">``) for tools.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import random
from pathlib import Path
from typing import Any, Sequence

from ..errors import RmcheckError
from .text import diff_chunks, shown
from ..results import load_run_document
from .sensitivity import Probe, Sensitivity, sensitivities

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1300px;color:#222;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right;white-space:nowrap}
td.small{white-space:normal}
th{background:#f4f4f4}td.l,th.l{text-align:left}.muted{color:#777}.small{font-size:12px}
img{max-width:100%;border:1px solid #eee}
.example{border:1px solid #ddd;border-radius:6px;padding:.6em .9em;margin:.7em 0;background:#fcfcfc}
.meta{font-size:13px;margin-bottom:.3em}.prompt{white-space:pre-wrap;color:#444;margin:.3em 0;font-style:italic}
.diff{white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;background:#fff;
padding:.5em;border:1px solid #eee}
del{background:#fdd;color:#900}ins{background:#dfd;color:#060;text-decoration:none}
.passed{color:#060}.failed{color:#b00}.flip{background:#fff3cd;padding:0 .3em;border-radius:3px}
"""


def write_report(paths: Sequence[str | Path], out: str | Path, *, seed: int = 0) -> Path:
    """Read run documents, write the sensitivity page to ``out``, and return its path."""
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(build_report(paths, seed=seed), encoding="utf-8")
    return target


def build_report(paths: Sequence[str | Path], *, seed: int = 0) -> str:
    docs = [(str(p), load_run_document(p)) for p in paths]
    found = sensitivities(docs, seed=seed)
    if not found:
        raise RmcheckError("no perturbed cases with scores in these run documents", where=", ".join(map(str, paths)),
                           fix="Run suites whose tests perturb responses (rmcheck run --json RUN.json) with this "
                               "rmcheck version, then report on RUN.json")
    models = list(dict.fromkeys(s.model for s in found))
    attributes = list(dict.fromkeys(s.attribute for s in found))
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>rmcheck sensitivity report</title>", f"<style>{CSS}</style></head><body>",
        "<h1>Reward-model sensitivity</h1>",
        f"<p class=muted>{len(models)} model(s), {len(attributes)} attribute(s), from {len(docs)} run document(s); "
        f"generated {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}.</p>",
        _runs_section(docs),
        "<h2>Sensitivity by model and attribute</h2>",
        "<p>Each cell is the mean change of score a perturbation along the attribute causes, in units of the "
        "model's score standard deviation over the original responses (so models compare); below it, how many "
        "pair cases the perturbation flipped (counterfactuals) out of all pair cases.</p>",
        _img(heatmap_png(found, models, attributes), "heat map of mean standardized delta per model and attribute"),
        _table(found),
        "<h2>Distributions of score deltas</h2>",
        "<p>Per attribute, every perturbed response's score change (standardized as above); boxes span the "
        "quartiles, the line is the median, dots are responses.</p>",
        _img(distributions_png(found, models, attributes), "score delta distributions per attribute"),
        "<h2>Representative examples</h2>",
        "<p>For each attribute and model, the cases whose delta is closest to the median (most typical of the "
        "attribute's effect), and the most typical counterfactual. Failing cases show their minimal "
        "counterfactual pair; others the full perturbation.</p>",
        *(_examples(attribute, [s for s in found if s.attribute == attribute], _deltas_by_model(found))
          for attribute in attributes),
        '<script type="application/json" id="rmcheck-sensitivity">',
        json.dumps([s.to_json() for s in found]).replace("</", "<\\/"), "</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


# -- sections -------------------------------------------------------------------------------------


def _runs_section(docs: Sequence[tuple[str, dict[str, Any]]]) -> str:
    rows = []
    for path, doc in docs:
        for model in doc.get("models", []):
            rows.append(f"<tr><td class=l>{_e(Path(path).name)}</td><td class=l>{_e(doc.get('created', ''))}</td>"
                        f"<td class=l>{_e(model.get('spec', ''))}</td>"
                        f"<td class='l small'>{_e(model.get('description', ''))}</td>"
                        f"<td class='l small'>{_e(str(model.get('fingerprint', ''))[:12])}</td></tr>")
    return ("<h2>Runs and models</h2><table><tr><th class=l>run</th><th class=l>created</th><th class=l>model</th>"
            "<th class=l>description</th><th class=l>fingerprint</th></tr>" + "".join(rows) + "</table>")


def _table(found: list[Sensitivity]) -> str:
    head = ("<table><tr><th class=l>attribute</th><th class=l>model</th><th>responses</th><th>mean Δ [95% CI]</th>"
            "<th>median Δ</th><th>mean Δ / sd</th><th>counterfactuals</th><th>semifactuals</th><th>pass rate</th></tr>")
    rows = []
    for s in sorted(found, key=lambda s: (s.attribute, s.model)):
        low, high = s.ci
        pairs = len(s.pairs)
        share = lambda k: f"{k}/{pairs} ({k / pairs:.0%})" if pairs else "—"  # noqa: E731
        rate = "—" if s.pass_rate is None else f"{s.pass_rate:.2f}"
        rows.append(f"<tr><td class=l>{_e(s.attribute)}</td><td class=l>{_e(s.model)}</td><td>{len(s.deltas)}</td>"
                    f"<td>{s.mean:+.3g} [{low:+.3g}, {high:+.3g}]</td><td>{s.median:+.3g}</td>"
                    f"<td>{s.standardized_mean:+.2f}</td><td>{share(s.counterfactuals)}</td>"
                    f"<td>{share(s.semifactuals)}</td><td>{rate}</td></tr>")
    return head + "".join(rows) + "</table>"


def _deltas_by_model(found: list[Sensitivity]) -> dict[tuple[str, str], dict[str, float]]:
    """(test, case id) -> {model: delta}: how every model moved on the same perturbed case."""
    index: dict[tuple[str, str], dict[str, float]] = {}
    for s in found:
        for probe in s.probes:
            index.setdefault((probe.test, probe.case["id"]), {})[probe.model] = probe.delta
    return index


def _examples(attribute: str, group: list[Sensitivity], index: dict[tuple[str, str], dict[str, float]]) -> str:
    blocks = [f"<h3>{_e(attribute)}</h3>"]
    for s in group:
        blocks.append(f"<p class=small><b>{_e(s.model)}</b>: median Δ {s.median:+.3g}</p>")
        blocks.extend(_example(p, index[(p.test, p.case["id"])]) for p in s.representative())
    return "\n".join(blocks)


def _example(probe: Probe, by_model: dict[str, float]) -> str:
    case = probe.case
    flip = "" if probe.flipped is None else (
        " · <span class=flip>preference flipped (counterfactual)</span>" if probe.flipped
        else " · preference kept (semifactual)")
    meta = (f"<div class=meta><b>{_e(probe.test)}</b> · case {_e(case['id'])} · "
            f"<span class={case['verdict']}>{case['verdict']}</span> · Δ {probe.delta:+.3g}{flip}</div>")
    others = ("<div class='small muted'>Δ on this case by model: "
              + ", ".join(f"{_e(m)} {d:+.3g}" for m, d in by_model.items()) + "</div>") if len(by_model) > 1 else ""
    return f"<div class=example>{meta}{pair_html(case)}{others}</div>"


# -- the minimal pair as HTML ---------------------------------------------------------------------


def diff_html(before: str, after: str) -> str:
    """``after`` against ``before`` word by word, as HTML with ``<del>`` and ``<ins>``."""
    tags = {"equal": "{}", "removed": "<del>{}</del>", "added": "<ins>{}</ins>"}
    return "".join(tags[kind].format(_e(text if kind == "equal" else shown(text)))
                   for kind, text in diff_chunks(before, after))


def pair_html(case: dict[str, Any]) -> str:
    """One case of a run document as HTML: prompt, the (minimal) pair as a word diff, and the scores."""
    prompt = case.get("prompt", "")
    prompt_text = prompt if isinstance(prompt, str) else "\n".join(f"{t['role']}: {t['content']}" for t in prompt)
    role = case.get("role", "response")
    minimal = case.get("minimal")
    label = (f"minimal counterfactual of the {role} ({case.get('edits_kept')} of {case.get('edits_total')} edits, "
             f"{case.get('status')})" if minimal is not None else f"perturbation of the {role}")
    after = minimal if minimal is not None else case.get("perturbed", "")
    scores = case.get("response_scores", {})
    lines = []
    for name, s in scores.items():
        now = s.get("perturbed")
        lines.append(f"score({_e(name)}): {s['original']:.4g}" + (f" → {now:.4g}" if now is not None else " (unchanged)"))
    if minimal is not None and "scores" in case:
        lines.append(f"score({_e(role)}) at the minimal pair: {case['scores']['minimal']:.4g}")
    return (f"<div class=prompt>{_e(prompt_text)}</div><div class=small>{_e(label)}</div>"
            f"<div class=diff>{diff_html(case.get('original', ''), after)}</div>"
            f"<div class='small muted'>{'; '.join(lines)}</div>")


def pair_page(title: str, case: dict[str, Any]) -> str:
    """A standalone HTML page for one case (an Allure attachment)."""
    return (f"<!doctype html><html><head><meta charset=utf-8><style>{CSS}</style></head><body>"
            f"<h3>{_e(title)}</h3><div class=example>{pair_html(case)}</div></body></html>")


# -- figures ----------------------------------------------------------------------------------------


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, or one error naming the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise RmcheckError("the report's plots need matplotlib", where="rmcheck report",
                           fix="pip install 'rmcheck[plots]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def heatmap_png(found: list[Sensitivity], models: list[str], attributes: list[str]) -> bytes:
    plt = pyplot()
    by_key = {(s.model, s.attribute): s for s in found}
    values = [[by_key[(m, a)].standardized_mean if (m, a) in by_key else float("nan") for a in attributes]
              for m in models]
    limit = max((abs(v) for row in values for v in row if v == v), default=1.0) or 1.0
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(attributes) + 3), 0.9 * len(models) + 1.8))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(attributes)), attributes, rotation=30, ha="right")
    ax.set_yticks(range(len(models)), [_short(m) for m in models])
    for i, model in enumerate(models):
        for j, attribute in enumerate(attributes):
            s = by_key.get((model, attribute))
            if s is not None:
                flips = f"\n{s.counterfactuals}/{len(s.pairs)} flips" if s.pairs else ""
                ax.text(j, i, f"{s.standardized_mean:+.2f}{flips}", ha="center", va="center", fontsize=9,
                        color="white" if abs(s.standardized_mean) > 0.6 * limit else "black")
    fig.colorbar(image, ax=ax, label="mean Δ / sd of original scores")
    ax.set_title("Sensitivity: mean score change per attribute")
    return _png(fig, plt)


def distributions_png(found: list[Sensitivity], models: list[str], attributes: list[str]) -> bytes:
    plt = pyplot()
    columns = min(3, len(attributes))
    rows = -(-len(attributes) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 0.5 * len(models) * rows + 1.6 * rows),
                             squeeze=False)
    rng = random.Random(0)
    by_key = {(s.model, s.attribute): s for s in found}
    for ax, attribute in zip(axes.flat, attributes):
        present = [m for m in models if (m, attribute) in by_key]
        data = [[d / by_key[(m, attribute)].scale for d in by_key[(m, attribute)].deltas] for m in present]
        ax.boxplot(data, orientation="horizontal", widths=0.6, showfliers=False)
        for y, values in enumerate(data, start=1):
            ax.scatter(values, [y + rng.uniform(-0.18, 0.18) for _ in values], s=9, alpha=0.5)
        ax.axvline(0, color="#888", lw=0.8)
        ax.set_yticks(range(1, len(present) + 1), [_short(m, 28) for m in present], fontsize=8)
        ax.set_title(attribute, fontsize=10)
        ax.set_xlabel("Δ score / sd", fontsize=8)
    for ax in list(axes.flat)[len(attributes):]:
        ax.set_visible(False)
    fig.tight_layout()
    return _png(fig, plt)


def case_deltas_png(result: dict[str, Any]) -> bytes:
    """One test's per-case deltas (passing and failing) against its threshold (an Allure attachment)."""
    plt = pyplot()
    cases = [c for c in result["cases"] if c.get("delta") is not None and c["verdict"] != "not_applicable"]
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(cases) + 1.4))
    for y, case in enumerate(cases):
        ax.barh(y, case["delta"], color="#c33" if case["verdict"] == "failed" else "#3a3")
    ax.set_yticks(range(len(cases)), [_short(c["id"], 30) for c in cases], fontsize=8)
    for x in {result["threshold"], -result["threshold"]}:
        ax.axvline(x, color="#555", ls="--", lw=0.8)
    ax.set_xlabel("d (red: failed; dashed: ±t)")
    ax.set_title(f"{result['suite']}::{result['test']} [{_short(result['model'])}]", fontsize=9)
    return _png(fig, plt)


def _png(fig: Any, plt: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _img(png: bytes, alt: str) -> str:
    return f'<p><img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"></p>'


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _e(text: Any) -> str:
    return html.escape(str(text))
