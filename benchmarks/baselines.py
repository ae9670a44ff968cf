"""What rmcheck is measured against: a naive pytest-style loop and a raw batched forward pass."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from rmcheck.backends.base import OVERALL, Pair, RewardModel
from rmcheck.kinds.expectation import plan
from rmcheck.suite import Suite


class CountingModel:
    """Counts the forward passes (``score`` calls) and pairs that reach a model."""

    def __init__(self, model: RewardModel) -> None:
        self.model, self.calls, self.pairs = model, 0, 0
        self._score = model.score
        model.score = self._counted  # type: ignore[method-assign]

    def _counted(self, pairs: Sequence[Pair]) -> Any:
        self.calls += 1
        self.pairs += len(pairs)
        return self._score(pairs)

    def reset(self) -> None:
        self.calls = self.pairs = 0


@dataclass
class NaiveRun:
    """The naive loop's verdict of each (test, case), and every distinct pair it scored."""

    verdicts: dict[tuple[str, str], str] = field(default_factory=dict)  # "passed" or "failed"
    distinct: set[Pair] = field(default_factory=set)


def naive_loop(model: RewardModel, suite: Suite) -> NaiveRun:
    """A hand-written pytest loop: for every test and case, one forward pass over the original and the
    perturbed response(s), the original re-scored for every test; the sd for "sd" tolerances from one
    forward pass per original response. The perturbations are rmcheck's own (the same edits)."""
    def score(pairs: list[Pair]) -> list[float]:
        run.distinct.update(pairs)
        return [s[OVERALL] for s in model.score(pairs)]

    run = NaiveRun()
    originals = [Pair(case.prompt, text) for case in suite.cases for _, text in case.responses]
    sd = statistics.stdev(score([pair])[0] for pair in originals)
    for test in suite.tests:
        threshold = test.tolerance.resolve(sd)
        trials, _ = plan(suite, test)
        for trial in trials:
            texts, prompt = trial.texts(), trial.case.prompt
            if test.expect.kind == "pair":
                before = Pair(prompt, trial.case.text("chosen")), Pair(prompt, trial.case.text("rejected"))
                after = Pair(prompt, texts["chosen"]), Pair(prompt, texts["rejected"])
                extra = list(before) if test.expect.name == "preference_kept" else []
                values = score([*after, *extra])
                if extra and not test.expect.holds(threshold.measure(values[2] - values[3]), threshold.value):
                    continue  # the model gets the original pair wrong: not applicable
                delta = values[0] - values[1]
            else:
                (role,) = trial.roles
                original, perturbed = score([Pair(prompt, trial.case.text(role)), Pair(prompt, texts[role])])
                delta = perturbed - original
            holds = test.expect.holds(threshold.measure(delta), threshold.value)
            run.verdicts[test.name, trial.label] = "passed" if holds else "failed"
    return run


def raw_forward(model: Any, pairs: Sequence[Pair], plan: Callable[[list[Pair], list[int]], list[list[Pair]]],
                *, by_length: bool = True) -> list[float]:
    """The limit: the same texts tokenized in one batched call, then padded and run through the model in
    the batches ``plan`` makes of the pairs (sorted by token length first when ``by_length``); no
    deduplication, cache or checks."""
    import torch

    tokenizer, bos = model.tokenizer, model.tokenizer.bos_token
    texts = [model.render(pair) for pair in pairs]
    special = not (bos and texts[0].startswith(bos))
    encoded = tokenizer(texts, truncation=True, max_length=model.max_length, add_special_tokens=special)
    rows = {pair: {name: encoded[name][i] for name in encoded} for i, pair in enumerate(pairs)}
    ordered = sorted(pairs, key=lambda p: len(rows[p]["input_ids"])) if by_length else list(pairs)
    scores: list[float] = []
    with torch.inference_mode():
        for batch in plan(ordered, [len(rows[p]["input_ids"]) for p in ordered]):
            inputs = tokenizer.pad([rows[p] for p in batch], return_tensors="pt")
            scores.extend(model.model(**inputs).logits[:, 0].tolist())
    return scores
