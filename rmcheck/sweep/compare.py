"""Sweeps compared: heterogeneity between models, and framing between prompts (the optimal/pessimal
tokens paper's two comparisons).

Two sweeps are compared over the texts both ranked (matched by :attr:`Token.key`, trimmed and
case-folded, so models with different tokenizers compare over their shared words): Spearman's rho and
Kendall's tau-b between their scores, and how many of one's top (bottom) k are also the other's top
(bottom) k. For two framings of one question ("greatest" against "worst"), the asymmetry is how far
the best of one is from being the worst of the other: the share of "greatest"'s top k that are not
in "worst"'s bottom k, and the other way round.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..backends.base import prompt_to_text
from .core import Sweep
from ..stats import kendall_tau, spearman


def _by_key(sweep: Sweep) -> dict[str, float]:
    """Each distinct key's best score (case variants of one word share a key)."""
    found: dict[str, float] = {}
    for r in sweep.ranked():
        found.setdefault(r.token.key, r.score)
    return found


@dataclass(frozen=True)
class Agreement:
    """How two sweeps rank their shared texts."""

    shared: int
    k: int
    spearman: float
    kendall: float
    top: int  # texts in both top-k
    bottom: int  # texts in both bottom-k
    top_vs_bottom: int  # a's top-k in b's bottom-k
    bottom_vs_top: int  # a's bottom-k in b's top-k

    @property
    def asymmetry(self) -> tuple[float, float]:
        """For framing pairs: the share of a's top-k not among b's bottom-k, and of a's bottom-k not among b's top-k."""
        return (1 - self.top_vs_bottom / self.k, 1 - self.bottom_vs_top / self.k) if self.k else (0.0, 0.0)


def agreement(a: Sweep, b: Sweep, k: int) -> Agreement:
    """Rank agreement of ``a`` and ``b`` over their shared texts, and the overlaps of their extremes."""
    sa, sb = _by_key(a), _by_key(b)
    keys = [key for key in sa if key in sb]
    x, y = [sa[key] for key in keys], [sb[key] for key in keys]
    k = min(k, len(keys) // 2) if len(keys) > 1 else 0
    top = lambda scores: set(sorted(keys, key=lambda key: -scores[key])[:k])  # noqa: E731
    bottom = lambda scores: set(sorted(keys, key=lambda key: scores[key])[:k])  # noqa: E731
    return Agreement(len(keys), k, spearman(x, y), kendall_tau(x, y) or 0.0, len(top(sa) & top(sb)),
                     len(bottom(sa) & bottom(sb)), len(top(sa) & bottom(sb)), len(bottom(sa) & top(sb)))


def heterogeneity_lines(sweeps: list[Sweep], k: int) -> list[str]:
    """Every pair of models that swept the same prompt: rank agreement and extreme overlaps."""
    lines: list[str] = []
    for i, a in enumerate(sweeps):
        for b in sweeps[i + 1:]:
            g = agreement(a, b, k)
            lines.append(f"  {a.model} vs {b.model}: Spearman {g.spearman:+.3f}, Kendall tau {g.kendall:+.3f} over "
                         f"{g.shared} shared texts; top-{g.k} overlap {g.top}/{g.k}, bottom-{g.k} overlap {g.bottom}/{g.k}")
    return lines


def framing_lines(sweeps: list[Sweep], k: int) -> list[str]:
    """Every pair of prompts one model swept: rank agreement and the asymmetry between the framings."""
    lines: list[str] = []
    for i, a in enumerate(sweeps):
        for b in sweeps[i + 1:]:
            g = agreement(a, b, k)
            one, other = _short(a), _short(b)
            lines.append(f"  {one} vs {other}: Spearman {g.spearman:+.3f}, Kendall tau {g.kendall:+.3f} over {g.shared} "
                         f"texts (a mirrored framing gives -1)")
            lines.append(f"    asymmetry: {g.k - g.top_vs_bottom}/{g.k} of the top-{g.k} for {one} are not in the "
                         f"bottom-{g.k} for {other}; {g.k - g.bottom_vs_top}/{g.k} of its bottom-{g.k} are not in "
                         f"the top-{g.k} for {other}")
    return lines


def _short(sweep: Sweep) -> str:
    text = prompt_to_text(sweep.prompt).splitlines()[-1]
    return repr(text if len(text) <= 50 else text[:49] + "…")
