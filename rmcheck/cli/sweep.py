"""``rmcheck sweep``: one prompt over a vocabulary, with tables, a CSV and plots."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..backends.base import ModelOptions, Prompt, load_model
from ..errors import RmcheckError
from ..sweep.assertions import frequency_correlation
from ..sweep.core import Sweep, select_for, sweep_tokens
from ..sweep.tokens import load_tokenizer, parse_tokens, read_lexicon

DEFAULT_CSV = ".rmcheck/last-sweep.csv"


@dataclass
class SweepCommand:
    """What ``rmcheck sweep`` was asked for."""

    spec: str
    prompt: Prompt
    tokens: str = "all"
    top_k: int = 20
    out: str = DEFAULT_CSV
    plots: str | None = None
    groups: Sequence[str] = ()  # NAME=FILE
    tokenizer: str | None = None
    objective: str | None = None
    language: str = "en"


def run(command: SweepCommand, options: ModelOptions) -> int:
    """Sweep, then print the summary and the top and bottom tables; write the CSV (and plots)."""
    groups = {name: frozenset(e.strip().casefold() for e in read_lexicon(path, where=f"--group {name}={path}"))
              for name, path in (_group(g) for g in command.groups)}
    spec = parse_tokens(command.tokens, where="--tokens")
    model = load_model(command.spec, options)
    vocabulary = load_tokenizer(command.tokenizer, trust_remote_code=options.trust_remote_code) \
        if command.tokenizer else None
    selection = select_for(model, spec, vocabulary)
    with _progress_bar(len(selection.tokens)) as progress:
        sweep = sweep_tokens(model, command.prompt, selection, batch_size=options.batch_size, progress=progress)
    sweep = sweep.with_objective(command.objective, where="--objective")
    print(f"model: {model.describe()}")
    for line in [*sweep.summary(), *sweep.table(command.top_k), *_group_lines(sweep, groups)]:
        print(line)
    try:
        rho, words = frequency_correlation(sweep.ranked(), command.language)
        if len(words) > 2:
            print(f"frequency: Spearman(score, log word frequency) = {rho:+.3f} over {len(words)} words "
                  f"(wordfreq, {command.language})")
    except RmcheckError as exc:
        print(f"frequency: not measured ({exc})")
    print(f"CSV: {sweep.write_csv(command.out, groups)}")
    if command.plots:
        from ..sweep.plots import write_plots

        stem = Path(command.plots) / "sweep"
        print(f"plots: {', '.join(str(p) for p in write_plots(sweep, groups, stem, language=command.language))}")
    return 0


def _group(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise RmcheckError(f"--group {text!r} is not NAME=FILE", fix="Write e.g. --group identity=identity.txt")
    return name, path


def _group_lines(sweep: Sweep, groups: dict[str, frozenset[str]]) -> list[str]:
    ranked, lines = sweep.ranked(), []
    for name, keys in groups.items():
        members = [r for r in ranked if r.token.key in keys]
        if not members:
            lines.append(f"group {name}: no token in the sweep")
            continue
        low = members[-1]
        median = sorted(r.percentile for r in members)[len(members) // 2]
        lines.append(f"group {name}: {len(members)} tokens, median percentile {median:.1f}; "
                     f"lowest {low.token.text!r} at rank {low.rank} of {len(ranked)} (pct {low.percentile:.1f})")
    return lines


@contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[int, int], None] | None]:
    """A tqdm bar on stderr with the throughput in tokens/s (none without tqdm)."""
    try:
        from tqdm import tqdm
    except ImportError:
        yield None
        return
    bar = tqdm(total=total, unit="tok", file=sys.stderr, desc="sweep", dynamic_ncols=True)
    try:
        yield lambda done, _: bar.update(done - bar.n)
    finally:
        bar.close()
