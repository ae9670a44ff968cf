"""What a ``vocab_sweep`` test asserts on a sweep; each failure names its offending tokens.

- ``group_rank``: every token of a lexicon group ranks at or above ``min_percentile``;
- ``frequency_bias``: abs(Spearman(score, log word frequency)) <= ``max_abs_spearman``;
- ``framing``: Spearman between this sweep and a sweep of another ``prompt`` <= ``max_spearman``;
- ``top_k`` / ``bottom_k``: the ``k`` best / worst tokens (a listing), none from ``must_not_contain``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..backends.base import Prompt
from ..errors import RmcheckError, SuiteError
from ..stats import spearman
from .core import Ranked, Sweep

SHOWN = 10  # offending tokens in the failure text; the JSON details hold up to DETAILED
DETAILED = 50

Groups = Mapping[str, frozenset[str]]


@dataclass
class Check:
    """The outcome of one assertion on one sweep."""

    label: str
    verdict: str  # passed, failed or not_applicable
    statistic: float | None
    summary: str
    lines: list[str] = field(default_factory=list)  # offending (or listed) tokens
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """What an assertion sees: the sweep, the lexicon groups, and sweeps of other prompts on demand."""

    sweep: Sweep
    groups: Groups
    other: Callable[[Prompt], Sweep]


def as_prompt(raw: Any) -> Prompt:
    """A YAML prompt (a string, or a list of {role, content} turns) as a :data:`Prompt`."""
    return raw if isinstance(raw, str) else tuple((str(t["role"]), str(t["content"])) for t in raw)


def token_json(r: Ranked, **extra: Any) -> dict[str, Any]:
    return {"id": r.token.id, "text": r.token.text, "score": r.score, "rank": r.rank,
            "percentile": round(r.percentile, 3), **extra}


def _listing(label: str, ranked: Sequence[Ranked], total: int) -> list[str]:
    lines = [f"{label}:"] + [f"  {r.describe(total)}" for r in ranked[:SHOWN]]
    if len(ranked) > SHOWN:
        lines.append(f"  ... and {len(ranked) - SHOWN} more (all in the CSV)")
    return lines


@dataclass(frozen=True)
class GroupRank:
    group: str
    min_percentile: float

    @property
    def rule(self) -> str:
        return f"every '{self.group}' token ranks at or above percentile {self.min_percentile:g}"

    def needs(self) -> tuple[str, ...]:
        return (self.group,)

    def check(self, ctx: Context) -> Check:
        ranked, total = ctx.sweep.ranked(), len(ctx.sweep.ranked())
        members = [r for r in ranked if r.token.key in ctx.groups[self.group]]
        label = f"group_rank[{self.group}]"
        if not members:
            return Check(label, "not_applicable", None, f"no token of group '{self.group}' is in the sweep")
        low = [r for r in members if r.percentile < self.min_percentile][::-1]
        lowest = min(r.percentile for r in members)
        summary = (f"{len(low)} of {len(members)} '{self.group}' tokens rank below percentile "
                   f"{self.min_percentile:g} (lowest at {lowest:.1f})")
        return Check(label, "failed" if low else "passed", lowest, summary,
                     _listing("lowest-ranked offending tokens", low, total) if low else [],
                     {"group_size": len(members), "offending": [token_json(r) for r in low[:DETAILED]]})


@dataclass(frozen=True)
class FrequencyBias:
    max_abs_spearman: float
    language: str = "en"

    @property
    def rule(self) -> str:
        return f"abs(Spearman(score, log word frequency)) <= {self.max_abs_spearman:g}"

    def check(self, ctx: Context) -> Check:
        ranked, total = ctx.sweep.ranked(), len(ctx.sweep.ranked())
        rho, words = frequency_correlation(ranked, self.language)
        if len(words) < 3:
            return Check("frequency_bias", "not_applicable", None,
                         f"only {len(words)} swept tokens are words with a known '{self.language}' frequency")
        failed = abs(rho) > self.max_abs_spearman
        summary = f"Spearman(score, log frequency) = {rho:+.3f} over {len(words)} words"
        lines: list[str] = []
        if failed:
            described = [f"  zipf {zipf:4.2f}  {r.describe(total)}" for r, zipf in words]
            lines = (["highest-scoring words (zipf = log10 uses per billion words):", *described[:SHOWN // 2],
                      "lowest-scoring words:", *described[::-1][:SHOWN // 2]])
        detail = [token_json(r, zipf=zipf) for r, zipf in words[:DETAILED // 2] + words[-DETAILED // 2:]]
        return Check("frequency_bias", "failed" if failed else "passed", rho, summary, lines,
                     {"spearman": rho, "words": len(words), "language": self.language, "examples": detail})


def frequency_correlation(ranked: Sequence[Ranked], language: str) -> tuple[float, list[tuple[Ranked, float]]]:
    """Spearman between score and Zipf frequency over the word tokens wordfreq knows, and those words."""
    candidates = [r for r in ranked if r.token.is_word]
    zipfs = zipf_frequencies([r.token.word for r in candidates], language)
    words = [(r, z) for r, z in zip(candidates, zipfs) if z > 0]
    rho = spearman([r.score for r, _ in words], [z for _, z in words]) if len(words) > 1 else 0.0
    return rho, words


@dataclass(frozen=True)
class Framing:
    prompt: Prompt
    max_spearman: float

    @property
    def rule(self) -> str:
        return f"Spearman(this prompt, the opposite framing) <= {self.max_spearman:g}"

    def check(self, ctx: Context) -> Check:
        other = ctx.other(self.prompt).with_objective(ctx.sweep.objective)
        mine = {r.token: r for r in ctx.sweep.ranked()}
        pairs = [(mine[r.token], r) for r in other.ranked() if r.token in mine]
        rho = spearman([a.score for a, _ in pairs], [b.score for _, b in pairs])
        failed = rho > self.max_spearman
        summary = f"Spearman between the two framings = {rho:+.3f} over {len(pairs)} tokens"
        both_high = sorted(pairs, key=lambda ab: -min(ab[0].percentile, ab[1].percentile))[:SHOWN // 2]
        both_low = sorted(pairs, key=lambda ab: max(ab[0].percentile, ab[1].percentile))[:SHOWN // 2]
        total = len(pairs)
        lines = []
        if failed:
            lines = (["ranked high under both framings (this prompt | the other):"]
                     + [f"  {a.describe(total)}  |  rank {b.rank} pct {b.percentile:.1f} score {b.score:+.4g}"
                        for a, b in both_high]
                     + ["ranked low under both framings:"]
                     + [f"  {a.describe(total)}  |  rank {b.rank} pct {b.percentile:.1f} score {b.score:+.4g}"
                        for a, b in both_low])
        examples = [token_json(a, other_score=b.score, other_rank=b.rank) for a, b in both_high + both_low]
        return Check("framing", "failed" if failed else "passed", rho, summary, lines,
                     {"spearman": rho, "tokens": len(pairs), "other_path": other.path, "examples": examples})


@dataclass(frozen=True)
class Extreme:
    """``top_k`` (best first) or ``bottom_k`` (worst first)."""

    end: str
    k: int
    must_not_contain: tuple[str, ...] = ()

    @property
    def rule(self) -> str:
        banned = f" has no token of {', '.join(self.must_not_contain)}" if self.must_not_contain else " is listed"
        return f"the {self.end.split('_')[0]} {self.k}{banned}"

    def needs(self) -> tuple[str, ...]:
        return self.must_not_contain

    def check(self, ctx: Context) -> Check:
        ranked = ctx.sweep.ranked()
        listed = (ranked if self.end == "top_k" else ranked[::-1])[:self.k]
        banned = {key: name for name in self.must_not_contain for key in ctx.groups[name]}
        bad = [r for r in listed if r.token.key in banned]
        total = len(ranked)
        summary = (f"{len(bad)} of the {self.end.split('_')[0]} {len(listed)} tokens belong to "
                   f"{', '.join(sorted({banned[r.token.key] for r in bad}))}" if bad
                   else f"the {self.end.split('_')[0]} {len(listed)} tokens listed")
        return Check(self.end, "failed" if bad else "passed", float(len(bad)), summary,
                     _listing("offending tokens", bad, total) if bad else [],
                     {"listing": [token_json(r) for r in listed],
                      "offending": [token_json(r, group=banned[r.token.key]) for r in bad]})


def parse_assertion(raw: Mapping[str, Any], *, where: str) -> Any:
    """One ``assert:`` entry, a mapping with one key (the schema checked the arguments' types)."""
    ((name, args),) = raw.items()
    if name == "group_rank":
        return GroupRank(str(args["group"]), float(args["min_percentile"]))
    if name == "frequency_bias":
        return FrequencyBias(float(args["max_abs_spearman"]), str(args.get("language", "en")))
    if name == "framing":
        return Framing(as_prompt(args["prompt"]), float(args["max_spearman"]))
    if name in ("top_k", "bottom_k"):
        return Extreme(name, int(args["k"]), tuple(str(g) for g in args.get("must_not_contain", ())))
    raise SuiteError(f"unknown sweep assertion {name!r}", where=where,
                     fix="Use group_rank, frequency_bias, framing, top_k or bottom_k")


def groups_needed(assertion: Any) -> tuple[str, ...]:
    needs = getattr(assertion, "needs", None)
    return needs() if needs else ()


def zipf_frequencies(words: Sequence[str], language: str) -> list[float]:
    """``wordfreq`` Zipf frequency (log10 of uses per billion words) of each word; 0.0 when unknown."""
    try:
        from wordfreq import zipf_frequency
    except ImportError:
        raise RmcheckError("word frequencies need the wordfreq package",
                           fix="pip install 'rmcheck[sweep]' (or pip install wordfreq)") from None
    try:
        return [zipf_frequency(word, language) for word in words]
    except LookupError as exc:
        raise RmcheckError(f"wordfreq has no word list for language {language!r} ({exc})",
                           fix="Use a language code wordfreq knows, such as en, de, fr, es") from None
