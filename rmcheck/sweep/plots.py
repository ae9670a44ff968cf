"""PNG plots of sweeps (matplotlib, the ``plots`` extra, Agg backend): scores by group (group members
labelled), score against log word frequency (a binned trend line, the extremes labelled), and for
several sweeps, model against model and framing against framing (percentiles, extremes labelled)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..backends.base import prompt_to_text
from ..errors import RmcheckError
from ..report.figures import plain_text
from .assertions import frequency_correlation
from .compare import agreement
from .core import Ranked, Sweep

LABELLED = 5  # extremes labelled at each end
MAX_GROUP_LABELS = 30


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RmcheckError("plots need matplotlib", fix="pip install 'rmcheck[plots]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@plain_text
def write_plots(sweep: Sweep, groups: Mapping[str, frozenset[str]], stem: str | Path, *,
                language: str | None = "en") -> list[Path]:
    """``STEM.by-group.png`` and ``STEM.frequency.png`` (when ``language`` is given, wordfreq is installed
    and the sweep holds words it knows)."""
    plt = _pyplot()
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    ranked = sweep.ranked()
    series = {f"all ({len(ranked)})": [r.score for r in ranked]}
    words = [r.score for r in ranked if r.token.is_word]
    if words and len(words) < len(ranked):
        series[f"words ({len(words)})"] = words
    labelled: dict[int, list[Ranked]] = {}  # box position -> a lexicon group's members, each labelled
    for name, keys in groups.items():
        members = [r for r in ranked if r.token.key in keys]
        if members:
            series[f"{name} ({len(members)})"] = [r.score for r in members]
            labelled[len(series)] = members
    written = []
    figure, axes = plt.subplots(figsize=(max(5.0, 1.4 * len(series)), 4.0))
    axes.boxplot(list(series.values()), showfliers=False)
    axes.set_xticks(range(1, len(series) + 1), list(series), rotation=20)
    for i, values in enumerate(series.values(), start=1):
        if len(values) <= 200:  # small groups: every token as a dot
            axes.plot([i] * len(values), values, ".", alpha=0.6)
    for i, members in labelled.items():
        for r in members[:MAX_GROUP_LABELS // 2] + members[-MAX_GROUP_LABELS // 2:] \
                if len(members) > MAX_GROUP_LABELS else members:
            axes.annotate(r.token.word, (i, r.score), xytext=(6, 0), textcoords="offset points", fontsize=7, va="center")
    axes.set_ylabel(sweep.objective)
    axes.set_title(_title(sweep), fontsize=9)
    figure.tight_layout()
    written.append(_save(figure, plt, stem.with_name(stem.name + ".by-group.png")))
    rho, known = 0.0, []
    if language:
        try:
            rho, known = frequency_correlation(ranked, language)
        except RmcheckError:  # no wordfreq: the frequency plot is left out
            pass
    if len(known) > 1:
        figure, axes = plt.subplots(figsize=(6.5, 4.5))
        xs, ys = np.array([z for _, z in known]), np.array([r.score for r, _ in known])
        axes.scatter(xs, ys, s=4, alpha=0.4)
        trend = _trend(xs, ys)
        if trend is not None:
            axes.plot(*trend, color="#c0392b", lw=1.5, label="mean score per frequency bin")
        in_plot = {r.token: z for r, z in known}
        _label_extremes(axes, [(in_plot[r.token], r) for r in ranked if r.token in in_plot])
        for name, keys in groups.items():  # lexicon groups (identity terms ...): coloured, each labelled
            members = [(z, r) for r, z in known if r.token.key in keys][:MAX_GROUP_LABELS]
            if members:
                axes.scatter([z for z, _ in members], [r.score for _, r in members], s=16, label=name)
                for z, r in members:
                    axes.annotate(r.token.word, (z, r.score), xytext=(4, -8), textcoords="offset points", fontsize=7)
        if trend is not None or groups:
            axes.legend(fontsize=7, loc="best")
        axes.set_xlabel(f"log10 word frequency (wordfreq zipf, {language})")
        axes.set_ylabel(sweep.objective)
        axes.set_title(f"{_title(sweep)}\nSpearman {rho:+.3f} over {len(known)} words", fontsize=9)
        figure.tight_layout()
        written.append(_save(figure, plt, stem.with_name(stem.name + ".frequency.png")))
    return written


def _trend(xs: np.ndarray, ys: np.ndarray, bins: int = 12) -> tuple[np.ndarray, np.ndarray] | None:
    """The mean score in equal-count frequency bins (a trend line that bends where the data does)."""
    if len(xs) < 2 * bins:
        return None
    order = np.argsort(xs)
    parts = [p for p in np.array_split(order, bins) if len(p)]
    return np.array([xs[p].mean() for p in parts]), np.array([ys[p].mean() for p in parts])


def _label_extremes(axes: Any, points: list[tuple[float, Ranked]]) -> None:
    """Label the best and worst ``LABELLED`` points (``points`` are (x, ranked), best first) with their text."""
    chosen = points[:LABELLED] + points[-LABELLED:] if len(points) > 2 * LABELLED else points
    for x, r in chosen:
        axes.annotate(r.token.word or repr(r.token.text), (x, r.score), xytext=(4, 2), textcoords="offset points",
                      fontsize=7)


@plain_text
def write_pair_plots(sweeps: Mapping[tuple[int, int], Sweep], stem: str | Path, *,
                     language: str | None = "en") -> list[Path]:
    """For sweeps keyed (model number, prompt number): ``STEM.models-P.png`` (every model against the first,
    per prompt) and ``STEM.framing-M.png`` (every prompt against the first, per model): percentile against
    percentile over the shared texts, extremes of the first labelled."""
    plt = _pyplot()
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    models = sorted({m for m, _ in sweeps})
    prompts = sorted({p for _, p in sweeps})
    written = []
    for name, groups in (("models", {p: [sweeps[(m, p)] for m in models] for p in prompts} if len(models) > 1 else {}),
                         ("framing", {m: [sweeps[(m, p)] for p in prompts] for m in models} if len(prompts) > 1 else {})):
        for number, group in groups.items():
            written.append(_pair_plot(plt, group, name, stem.with_name(f"{stem.name}.{name}-{number}.png")))
    return written


def _pair_plot(plt: Any, group: list[Sweep], name: str, path: Path) -> Path:
    first, others = group[0], group[1:]
    figure, axes = plt.subplots(1, len(others), figsize=(5.0 * len(others), 4.6), squeeze=False)
    for ax, other in zip(axes.flat, others):
        mine = {r.token.key: r for r in first.ranked()}
        theirs = {r.token.key: r for r in other.ranked()}
        shared = [key for key in mine if key in theirs]
        ax.scatter([mine[k].percentile for k in shared], [theirs[k].percentile for k in shared], s=4, alpha=0.4)
        for key in dict.fromkeys(shared[:LABELLED] + shared[-LABELLED:]):
            ax.annotate(mine[key].token.word, (mine[key].percentile, theirs[key].percentile), xytext=(3, 2),
                        textcoords="offset points", fontsize=7)
        g = agreement(first, other, LABELLED * 4)
        what = (lambda s: s.model) if name == "models" else (lambda s: prompt_to_text(s.prompt).splitlines()[-1][:50])
        ax.set_xlabel(f"percentile: {what(first)}", fontsize=8)
        ax.set_ylabel(f"percentile: {what(other)}", fontsize=8)
        ax.set_title(f"Spearman {g.spearman:+.3f}, Kendall {g.kendall:+.3f} ({g.shared} texts)", fontsize=9)
    figure.tight_layout()
    return _save(figure, plt, path)


def _title(sweep: Sweep) -> str:
    prompt = prompt_to_text(sweep.prompt).splitlines()[-1]
    return f"{sweep.model}\n{prompt[:80]}"


def _save(figure: Any, plt: Any, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
