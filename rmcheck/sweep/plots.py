"""PNG plots of a sweep (matplotlib, the ``plots`` extra, Agg backend): scores by group, and
score against log word frequency."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..backends.base import prompt_to_text
from ..errors import RmcheckError
from .assertions import frequency_correlation
from .core import Sweep


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RmcheckError("plots need matplotlib", fix="pip install 'rmcheck[plots]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    for name, keys in groups.items():
        member = [r.score for r in ranked if r.token.key in keys]
        if member:
            series[f"{name} ({len(member)})"] = member
    written = []
    figure, axes = plt.subplots(figsize=(max(5.0, 1.4 * len(series)), 4.0))
    axes.boxplot(list(series.values()), showfliers=False)
    axes.set_xticks(range(1, len(series) + 1), list(series), rotation=20)
    for i, values in enumerate(series.values(), start=1):
        if len(values) <= 200:  # small groups: every token as a dot
            axes.plot([i] * len(values), values, ".", alpha=0.6)
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
        figure, axes = plt.subplots(figsize=(5.5, 4.0))
        axes.scatter([z for _, z in known], [r.score for r, _ in known], s=4, alpha=0.4)
        axes.set_xlabel(f"log10 word frequency (wordfreq zipf, {language})")
        axes.set_ylabel(sweep.objective)
        axes.set_title(f"{_title(sweep)}\nSpearman {rho:+.3f} over {len(known)} words", fontsize=9)
        figure.tight_layout()
        written.append(_save(figure, plt, stem.with_name(stem.name + ".frequency.png")))
    return written


def _title(sweep: Sweep) -> str:
    prompt = prompt_to_text(sweep.prompt).splitlines()[-1]
    return f"{sweep.model}\n{prompt[:80]}"


def _save(figure: Any, plt: Any, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
