"""``rmcheck history``: each test's pass rate across run documents, in the order they were created."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import RmcheckError
from ..results import load_run_document
from .compare import models_in
from .figures import plain_text, pyplot, short


@dataclass
class History:
    """Pass rates per (test, model) over runs, oldest first; None where a run did not judge the test."""

    runs: list[tuple[str, str, str]]  # (path, created, its models)
    rates: dict[tuple[str, str], list[float | None]]  # (suite::test, model or "" where each run has one) -> rates

    def text(self) -> str:
        """One row per test (and model, where a run holds several), one column per run (``#1`` the oldest)."""
        lines = [f"#{n}  {created}  {path}  {models}" for n, (path, created, models) in enumerate(self.runs, start=1)]
        header = ["test", "model", *(f"#{n}" for n in range(1, len(self.runs) + 1)), "last change"]
        rows = [header] + [[test, model, *(_rate(r) for r in rates), _last_change(rates)]
                           for (test, model), rates in self.rates.items()]
        if not any(model for _, model in self.rates):
            rows = [row[:1] + row[2:] for row in rows]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        return "\n".join(lines + [""] + table)


def _rate(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.2f}"


def _last_change(rates: list[float | None]) -> str:
    """``-0.50 (#2 -> #3)``: the last run-to-run change of the rate, or blank when it never changed."""
    seen = [(n, r) for n, r in enumerate(rates, start=1) if r is not None]
    for (n0, r0), (n1, r1) in reversed(list(zip(seen, seen[1:]))):
        if abs(r1 - r0) > 1e-12:
            return f"{r1 - r0:+.2f} (#{n0} -> #{n1})"
    return ""


def run_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Run documents named by ``paths``: files as given, folders for their ``*.json`` files."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(path.glob("*.json"))
        else:
            found.append(path)
    if not found:
        raise RmcheckError("no run documents", where=", ".join(map(str, paths)),
                           fix="Name run documents (--json / --rmcheck-json files) or a folder that holds them")
    return found


def history(paths: Sequence[str | Path]) -> History:
    """Every test's pass rate across the run documents at ``paths``, in the order of ``created``: one series per
    test where each run holds one model (a release's model may change its spec), else per test and model."""
    docs = sorted(((str(p), load_run_document(p)) for p in run_paths(paths)),
                  key=lambda item: (str(item[1].get("created", "")), item[0]))
    split = any(len(models_in(doc)) > 1 for _, doc in docs)
    rates: dict[tuple[str, str], list[float | None]] = {}
    for n, (_, doc) in enumerate(docs):
        for result in doc["results"]:
            key = (f"{result['suite']}::{result['test']}", result["model"] if split else "")
            rates.setdefault(key, [None] * len(docs))[n] = result.get("pass_rate")
    return History([(path, str(doc.get("created", "?")), ", ".join(models_in(doc))) for path, doc in docs], rates)


@plain_text
def history_png(found: History, out: str | Path) -> Path:
    """One line per test and model: its pass rate over the runs (the ``plots`` extra)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(found.runs) + 3), 4.5))
    xs = list(range(1, len(found.runs) + 1))
    for (test, model), rates in found.rates.items():
        points = [(x, r) for x, r in zip(xs, rates) if r is not None]
        label = f"{short(test, 48)} [{short(model, 24)}]" if model else short(test, 60)
        ax.plot([x for x, _ in points], [r for _, r in points], marker="o", label=label)
    ax.set_xticks(xs, [f"#{x}\n{created[:16]}" for x, (_, created, _) in zip(xs, found.runs)], fontsize=7)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("pass rate")
    ax.set_title("pass rate per test across runs")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return target
