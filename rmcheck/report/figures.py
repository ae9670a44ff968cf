"""The report's matplotlib figures (the ``plots`` extra, Agg backend), as PNG bytes."""
from __future__ import annotations

import functools
import io
import random
from typing import Any, Callable, TypeVar

from ..errors import RmcheckError
from .sensitivity import Sensitivity


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


Draw = TypeVar("Draw", bound=Callable[..., Any])


def plain_text(draw: Draw) -> Draw:
    """``draw`` with every label as plain text: a ``$`` in an attribute, an id or a token is no mathtext
    (invalid mathtext raised from matplotlib) and no LaTeX."""
    @functools.wraps(draw)
    def plain(*args: Any, **kwargs: Any) -> Any:
        try:
            import matplotlib
        except ImportError:  # draw says which extra to install
            return draw(*args, **kwargs)
        with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
            return draw(*args, **kwargs)
    return plain  # type: ignore[return-value]


@plain_text
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
        ax.set_yticks(range(1, len(present) + 1), [short(m, 28) for m in present], fontsize=8)
        ax.set_title(attribute, fontsize=10)
        ax.set_xlabel("Δ score / sd", fontsize=8)
    for ax in list(axes.flat)[len(attributes):]:
        ax.set_visible(False)
    fig.tight_layout()
    return _png(fig, plt)


@plain_text
def case_deltas_png(result: dict[str, Any]) -> bytes:
    """One test's per-case deltas (passing and failing) against its threshold (an Allure attachment)."""
    plt = pyplot()
    cases = [c for c in result["cases"] if c.get("delta") is not None and c["verdict"] != "not_applicable"]
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(cases) + 1.4))
    for y, case in enumerate(cases):
        ax.barh(y, case["delta"], color="#c33" if case["verdict"] == "failed" else "#3a3")
    ax.set_yticks(range(len(cases)), [short(c["id"], 30) for c in cases], fontsize=8)
    for x in {result["threshold"], -result["threshold"]}:
        ax.axvline(x, color="#555", ls="--", lw=0.8)
    ax.set_xlabel("d (red: failed; dashed: ±t)")
    ax.set_title(f"{result['suite']}::{result['test']} [{short(result['model'])}]", fontsize=9)
    return _png(fig, plt)


def _png(fig: Any, plt: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def short(text: str, width: int = 40) -> str:
    """``text`` cut to ``width`` characters from the middle (both ends of a model spec tell models apart)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]
