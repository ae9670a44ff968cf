"""``rmcheck explain``: why does the RM prefer one response over the other, for one comparison or a dataset."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..contrastive import MAX_DOSE, explain
from ..engine import DEFAULT_SHRINK_BUDGET
from .progress import Progress
from ..options import RUN_ONLY, add_options, model_options, resolve_models, score_cache
from ..errors import RmcheckError
from ..stats import SEMIFACTUAL_MARGIN
from ..suite.datasets import FORMATS

DEFAULT_JSON = ".rmcheck/last-explain.json"


def add_parser(commands: Any) -> None:
    """Declare ``rmcheck explain`` on the CLI's subcommands."""
    parser = commands.add_parser(
        "explain", help="explain a comparison: which attribute perturbations flip the RM's preference",
        description="Perturb both responses along every attribute, classify each perturbed comparison as a "
                    "counterfactual (the preference flips), a semifactual (it holds though at least "
                    "--semifactual-margin of the margin closed), a tie or a small non-flip, and shrink each "
                    "attribute's counterfactuals to the fewest edits that still flip (replayed).")
    parser.add_argument("--rm", default=None, metavar="SPEC", help="the reward model (any spec --rm takes; default "
                        "as for rmcheck run)")
    parser.add_argument("--prompt", default=None, metavar="P", help="the prompt of one comparison")
    parser.add_argument("--chosen", default=None, metavar="A", help="the response labelled better")
    parser.add_argument("--rejected", default=None, metavar="B", help="the response labelled worse")
    parser.add_argument("--file", default=None, metavar="F", help="a dataset of comparisons instead")
    parser.add_argument("--format", default="jsonl", choices=FORMATS, help="the dataset's format (default jsonl)")
    parser.add_argument("--limit", default=None, type=int, metavar="N", help="explain the first N rows only")
    parser.add_argument("--attributes", default=None, metavar="A,B", help="attributes or operators to apply, "
                        "comma-separated (default: every applicable built-in operator)")
    parser.add_argument("--llm-attribute", action="append", default=[], metavar="NAME",
                        help="also rewrite each response with more and with less NAME by an LLM (llm_rewrite, "
                             "recorded to fixtures/cassettes/llm_rewrite; repeatable)")
    parser.add_argument("--semifactual-margin", type=float, default=SEMIFACTUAL_MARGIN, metavar="X",
                        help="a kept preference is a semifactual when the perturbation closed at least this share "
                             f"of the original margin (default {SEMIFACTUAL_MARGIN})")
    parser.add_argument("--max-dose", type=int, default=MAX_DOSE, metavar="N",
                        help="operators with a strength (filler sentences, typo rate, ...) climb doses 1, 2, 4, ... "
                             f"up to N until the preference flips (default {MAX_DOSE})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals (default 0)")
    parser.add_argument("--json", dest="explain_json", default=None, metavar="PATH",
                        help=f"write the explanations as JSON (default {DEFAULT_JSON})")
    add_options(parser.add_argument, pytest_style=False, skip=tuple(d for d in RUN_ONLY if d not in
                                                                    ("rmcheck_cache", "rmcheck_no_cache",
                                                                     "rmcheck_shrink_budget")))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    (spec, *more) = resolve_models([args.rm] if args.rm else [], Path.cwd())
    if more:
        raise RmcheckError(f"{len(more) + 1} models configured", where="rmcheck explain",
                           fix="explain takes one model: pass --rm SPEC")
    if args.limit is not None and args.limit < 1:
        raise RmcheckError(f"--limit {args.limit} is not a positive whole number", where="--limit", fix="Write e.g. --limit 50")
    get = lambda dest: getattr(args, dest)  # noqa: E731
    attributes = [a.strip() for a in (args.attributes or "").split(",") if a.strip()]
    progress = Progress()
    try:
        report = explain(spec, prompt=args.prompt, chosen=args.chosen, rejected=args.rejected, file=args.file,
                         format=args.format, limit=args.limit, attributes=attributes,
                         llm_attributes=args.llm_attribute, semifactual_margin=args.semifactual_margin,
                         max_dose=args.max_dose,
                         options=model_options(get), cache=score_cache(get, Path.cwd()), seed=args.seed,
                         shrink_budget=args.rmcheck_shrink_budget or DEFAULT_SHRINK_BUDGET, progress=progress)
    finally:
        progress.close()
    print(report.text())
    print(f"JSON: {report.write_json(args.explain_json or DEFAULT_JSON)}")
    return 0
