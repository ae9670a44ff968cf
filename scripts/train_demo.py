"""Train (or evaluate) the demo model's Bradley-Terry head on HH-RLHF harmless-base.

    python -m scripts.train_demo              # retrain rmcheck/demo/head.json (5-10 minutes on 2 CPU cores)
    python -m scripts.train_demo --evaluate   # score the recorded held-out pairs with --rm demo

The usable pairs (see :func:`rmcheck.datasets.hh_rlhf_case`) are shuffled with ``random.Random(SEED)``
by line number; the first :data:`TRAIN_PAIRS` train the head, the rest are held out, and their line
numbers are recorded in the head file. Features are the demo model's own pooled states (captured
at its pooler while it scores), so training sees exactly what the model scores. The head is an
L2-regularised logistic regression on feature differences (chosen minus rejected) over
standardised features; the L2 weight is picked by 5-fold cross-validation on the training split.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from rmcheck.backends.base import ModelOptions, Pair
from rmcheck.demo.build import BUILD_VERSION, ENCODER_PACKAGE, HEAD_FILE, MAX_LENGTH, encoder_dir
from rmcheck.suite.datasets import read_hh_rlhf
from rmcheck.stats import spearman

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"
SEED = 0
TRAIN_PAIRS = 1800
L2_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
FOLDS = 5
BATCH = 32

#: (line number, prompt, chosen, rejected)
Example = tuple[int, Any, str, str]


def load_pairs(path: Path) -> list[Example]:
    """The usable HH-RLHF pairs of ``path`` with their line numbers."""
    rows = read_hh_rlhf(path, None, str(path))
    return [(int(source.rsplit(":", 1)[1]), tuple((t["role"], t["content"]) for t in row["prompt"]),
             row["chosen"], row["rejected"]) for row, source in rows]


def split(lines: Sequence[int], seed: int = SEED, train: int = TRAIN_PAIRS) -> tuple[list[int], list[int]]:
    """Line numbers of the training and held-out pairs: a seeded shuffle, cut after ``train``."""
    order = sorted(lines)
    random.Random(seed).shuffle(order)
    return sorted(order[:train]), sorted(order[train:])


def fit(diffs: Any, l2: float) -> Any:
    """Bradley-Terry weights w minimising mean(softplus(-diffs @ w)) + l2 * |w|^2 (float64 tensors)."""
    import torch

    weight = torch.zeros(diffs.shape[1], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight], max_iter=500, line_search_fn="strong_wolfe")

    def loss() -> Any:
        optimiser.zero_grad()
        value = torch.nn.functional.softplus(-(diffs @ weight)).mean() + l2 * weight.square().sum()
        value.backward()
        return value

    optimiser.step(loss)
    return weight.detach()


def accuracy(weight: Any, diffs: Any) -> float:
    return float((diffs @ weight > 0).double().mean())


def cross_validate(diffs: Any, grid: Sequence[float] = L2_GRID, folds: int = FOLDS) -> dict[float, float]:
    """Mean held-out-fold accuracy of each L2 weight (contiguous folds of the shuffled training rows)."""
    import torch

    parts = torch.arange(len(diffs)).tensor_split(folds)
    scores = {}
    for l2 in grid:
        fold_acc = []
        for part in parts:
            keep = torch.ones(len(diffs), dtype=torch.bool)
            keep[part] = False
            fold_acc.append(accuracy(fit(diffs[keep], l2), diffs[part]))
        scores[l2] = sum(fold_acc) / folds
    return scores


def features(pairs: Sequence[Pair]) -> Any:
    """The demo model's pooled output (its classifier's input) for each pair, captured as it scores."""
    import torch

    from rmcheck.backends.hf import HFRewardModel
    from rmcheck.demo.build import assemble

    with tempfile.TemporaryDirectory() as scratch:
        net, tokenizer = assemble(encoder_dir(), None, 0.0)
        net.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        model = HFRewardModel(scratch, None, ModelOptions(), spec="demo (no head)")
    pooled: list[Any] = []
    hook = model.model.classifier.register_forward_pre_hook(lambda _, args: pooled.append(args[0].double()))
    order = sorted(pairs, key=lambda p: len(p.prompt_text) + len(p.response))
    captured: dict[Pair, Any] = {}
    try:
        for start in range(0, len(order), BATCH):
            batch = order[start:start + BATCH]
            model.score(batch)
            captured.update(zip(batch, pooled.pop()))
            print(f"\rfeatures: {min(start + BATCH, len(order))}/{len(order)}", end="", file=sys.stderr, flush=True)
    finally:
        hook.remove()
    print(file=sys.stderr)
    return torch.stack([captured[p] for p in pairs])


def train(data: Path, out: Path) -> dict[str, Any]:
    """Train the head on the training split of ``data`` and write it to ``out``."""
    import torch

    examples = load_pairs(data)
    train_lines, heldout_lines = split([e[0] for e in examples])
    by_line = {e[0]: e for e in examples}
    chosen, rejected = _sides([by_line[n] for n in [*train_lines, *heldout_lines]])
    feats_c, feats_r = features(chosen), features(rejected)
    n = len(train_lines)
    train_feats = torch.cat([feats_c[:n], feats_r[:n]])
    scale = train_feats.std(dim=0) + 1e-6
    diffs = (feats_c - feats_r) / scale
    shuffled = torch.randperm(n, generator=torch.Generator().manual_seed(SEED))
    cv = cross_validate(diffs[:n][shuffled])
    l2 = max(cv, key=lambda k: cv[k])
    weight = fit(diffs[:n], l2) / scale
    bias = -float((train_feats @ weight).mean())  # centres the training responses' scores on 0
    raw = feats_c - feats_r
    head = {
        "rmcheck_demo_head": 1,
        "encoder": {"package": ENCODER_PACKAGE, "model": "sentence-transformers/all-MiniLM-L6-v2",
                    "pooling": "BertForSequenceClassification's own: the pretrained pooler on [CLS]",
                    "max_length": MAX_LENGTH, "truncation": "left", "build": BUILD_VERSION},
        "training": {
            "data": "hh-rlhf/harmless-base-test.jsonl.gz", "usable_pairs": len(examples), "seed": SEED,
            "split": f"random.Random({SEED}).shuffle(sorted line numbers); first {TRAIN_PAIRS} train",
            "train_pairs": n, "heldout_pairs": len(heldout_lines),
            "objective": "Bradley-Terry logistic loss on standardised feature differences + l2 * |w|^2",
            "l2": l2, "cv_accuracy": {str(k): round(v, 4) for k, v in cv.items()},
            "train_accuracy": round(accuracy(weight, raw[:n]), 4),
            "heldout_accuracy": round(accuracy(weight, raw[n:]), 4),
            "heldout_lines": heldout_lines,
        },
        "weight": [float(w) for w in weight],
        "bias": bias,
    }
    out.write_text(json.dumps(head, indent=1) + "\n", encoding="utf-8")
    return head


def evaluate(data: Path, head_file: Path = HEAD_FILE, limit: int | None = None) -> dict[str, float]:
    """Held-out pairwise accuracy of ``--rm demo`` itself, on the lines recorded in the head file."""
    from rmcheck.backends.base import load_model
    from rmcheck.scoring.scheduler import Scorer

    wanted = set(json.loads(head_file.read_text(encoding="utf-8"))["training"]["heldout_lines"])
    held = [e for e in load_pairs(data) if e[0] in wanted][:limit]
    chosen, rejected = _sides(held)
    scored = Scorer(load_model("demo"), batch_size=BATCH).score(chosen + rejected)
    scores = [scored[pair]["score"] for pair in chosen + rejected]
    wins = sum(c > r for c, r in zip(scores[:len(held)], scores[len(held):]))
    lengths = [len(p.response) for p in chosen + rejected]
    return {"pairs": len(held), "accuracy": wins / len(held), "spearman_score_length": spearman(scores, lengths)}


def _sides(examples: Sequence[Example]) -> tuple[list[Pair], list[Pair]]:
    return ([Pair(prompt, c) for _, prompt, c, _ in examples], [Pair(prompt, r) for _, prompt, _, r in examples])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.train_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"HH-RLHF harmless-base file (default {DATA})")
    parser.add_argument("--out", type=Path, default=HEAD_FILE, help="where to write the head")
    parser.add_argument("--evaluate", action="store_true", help="measure the held-out accuracy of --rm demo instead")
    args = parser.parse_args(argv)
    if args.evaluate:
        result = evaluate(args.data)
        print(f"demo: held-out pairwise accuracy {result['accuracy']:.4f} on {result['pairs']} HH-RLHF pairs; "
              f"Spearman(score, response length) {result['spearman_score_length']:+.2f}")
        return 0
    head = train(args.data, args.out)
    t = head["training"]
    print(f"wrote {args.out}: l2 {t['l2']}, train accuracy {t['train_accuracy']:.4f}, "
          f"held-out accuracy {t['heldout_accuracy']:.4f} ({t['heldout_pairs']} pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
