"""``rmcheck sweep``: prompts over a vocabulary, for one model or several, with tables, CSVs and plots.

Several ``--prompt`` values (framing pairs such as "greatest" and "worst") are compared per model,
several ``--rm`` values per prompt (heterogeneity): see :mod:`rmcheck.sweep.compare`.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ..backends.base import ModelOptions, Prompt, load_model
from ..errors import RmcheckError
from ..options import RUN_ONLY, add_options, model_options

if TYPE_CHECKING:
    from ..sweep.core import Sweep

DEFAULT_CSV = ".rmcheck/last-sweep.csv"


def add_parser(commands: Any) -> None:
    """Declare ``rmcheck sweep`` on the CLI's subcommands."""
    sweep = commands.add_parser("sweep", help="score every single-token response to prompts; print the best and "
                                "worst, and how models and framings agree")
    sweep.add_argument("--rm", required=True, action="append", metavar="SPEC",
                       help="a reward model (any spec --rm takes); repeat to compare models (heterogeneity)")
    sweep.add_argument("--prompt", required=True, action="append", metavar="TEXT",
                       help="the user turn, e.g. 'What, in one word, is the greatest thing ever?'; repeat for framing "
                            "pairs ('... the worst thing ever?')")
    sweep.add_argument("--system", default=None, metavar="TEXT", help="a system turn before each prompt")
    sweep.add_argument("--tokens", default="all", metavar="all|words|FILE",
                       help="the whole vocabulary (default), word-like tokens, or a lexicon file (one word a line)")
    sweep.add_argument("--top-k", type=int, default=20, metavar="K",
                       help="rows of the top and bottom tables, and k of the overlaps (default 20)")
    sweep.add_argument("--out", default=DEFAULT_CSV, metavar="FILE.csv",
                       help=f"CSV of every token's score (default {DEFAULT_CSV}; several sweeps: FILE-M-P.csv)")
    sweep.add_argument("--plots", default=None, metavar="DIR", help="write PNG plots (by group, against frequency, "
                       "model against model, framing against framing)")
    sweep.add_argument("--group", action="append", default=[], metavar="NAME=FILE",
                       help="a lexicon group for the plots, the CSV and a rank summary (repeatable)")
    sweep.add_argument("--tokenizer", default=None, metavar="PATH",
                       help="the vocabulary to sweep for a model without a tokenizer (python:, http:)")
    sweep.add_argument("--objective", default=None, metavar="NAME", help="rank by this head of a multi-objective RM")
    sweep.add_argument("--language", default="en", metavar="CODE", help="wordfreq language of the words (default en)")
    add_options(sweep.add_argument, pytest_style=False, skip=RUN_ONLY)
    sweep.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    prompts = [p if args.system is None else (("system", args.system), ("user", p)) for p in args.prompt]
    command = SweepCommand(list(dict.fromkeys(args.rm)), prompts, args.tokens, args.top_k, args.out, args.plots,
                           args.group, args.tokenizer, args.objective, args.language)
    return run(command, model_options(lambda dest: getattr(args, dest)))


@dataclass
class SweepCommand:
    """What ``rmcheck sweep`` was asked for."""

    specs: Sequence[str]
    prompts: Sequence[Prompt]
    tokens: str = "all"
    top_k: int = 20
    out: str = DEFAULT_CSV
    plots: str | None = None
    groups: Sequence[str] = ()  # NAME=FILE
    tokenizer: str | None = None
    objective: str | None = None
    language: str = "en"


def run(command: SweepCommand, options: ModelOptions) -> int:
    """Sweep every prompt under every model, print each sweep's summary and tables, then how the framings
    (per model) and the models (per prompt) agree; write the CSVs (and plots)."""
    from ..sweep.compare import framing_lines, heterogeneity_lines
    from ..sweep.core import select_for, sweep_tokens
    from ..sweep.tokens import load_tokenizer, parse_tokens, read_lexicon

    if command.top_k < 1:
        raise RmcheckError(f"--top-k {command.top_k} is not a positive whole number", where="--top-k",
                           fix="Write e.g. --top-k 20")
    groups = {name: frozenset(e.strip().casefold() for e in read_lexicon(path, where=f"--group {name}={path}"))
              for name, path in (_group(g) for g in command.groups)}
    spec = parse_tokens(command.tokens, where="--tokens")
    vocabulary = load_tokenizer(command.tokenizer, trust_remote_code=options.trust_remote_code) \
        if command.tokenizer else None
    several = len(command.specs) * len(command.prompts) > 1
    sweeps: dict[tuple[int, int], "Sweep"] = {}
    for m, model_spec in enumerate(command.specs, start=1):
        model = load_model(model_spec, options)
        selection = select_for(model, spec, vocabulary)
        print(f"model: {model.describe()}")
        for p, prompt in enumerate(command.prompts, start=1):
            with _progress_bar(len(selection.tokens)) as progress:
                sweep = sweep_tokens(model, prompt, selection, batch_size=options.batch_size, progress=progress,
                                     prefix_sharing=options.prefix_sharing)
            sweep = sweeps[(m, p)] = sweep.with_objective(command.objective, where="--objective")
            _report(command, sweep, groups, f"-{m}-{p}" if several else "")
    if len(command.prompts) > 1:
        for m, model_spec in enumerate(command.specs, start=1):
            print(f"framing ({model_spec}):")
            print("\n".join(framing_lines([sweeps[(m, p)] for p in range(1, len(command.prompts) + 1)], command.top_k)))
    if len(command.specs) > 1:
        for p in range(1, len(command.prompts) + 1):
            print(f"heterogeneity across models ({sweeps[(1, p)].summary()[0]}):")
            print("\n".join(heterogeneity_lines([sweeps[(m, p)] for m in range(1, len(command.specs) + 1)],
                                                command.top_k)))
    if command.plots and several:
        from ..sweep.plots import write_pair_plots

        written = write_pair_plots(sweeps, Path(command.plots) / "sweep", language=command.language)
        print(f"plots: {', '.join(str(p) for p in written)}")
    return 0


def _report(command: SweepCommand, sweep: "Sweep", groups: dict[str, frozenset[str]], suffix: str) -> None:
    """One sweep's summary, tables, group ranks and frequency correlation; its CSV and plots."""
    from ..sweep.assertions import frequency_correlation

    for line in [*sweep.summary(), *sweep.table(command.top_k), *_group_lines(sweep, groups)]:
        print(line)
    try:
        rho, words = frequency_correlation(sweep.ranked(), command.language)
        if len(words) > 2:
            print(f"frequency: Spearman(score, log word frequency) = {rho:+.3f} over {len(words)} words "
                  f"(wordfreq, {command.language})")
    except RmcheckError as exc:
        print(f"frequency: not measured ({exc})")
    out = Path(command.out)
    print(f"CSV: {sweep.write_csv(out.with_name(out.stem + suffix + out.suffix) if suffix else out, groups)}")
    if command.plots:
        from ..sweep.plots import write_plots

        stem = Path(command.plots) / f"sweep{suffix}"
        print(f"plots: {', '.join(str(p) for p in write_plots(sweep, groups, stem, language=command.language))}")


def _group(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise RmcheckError(f"--group {text!r} is not NAME=FILE", fix="Write e.g. --group identity=identity.txt")
    return name, path


def _group_lines(sweep: "Sweep", groups: dict[str, frozenset[str]]) -> list[str]:
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
