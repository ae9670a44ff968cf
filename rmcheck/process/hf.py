"""``hf:ID_OR_PATH[@REV]?prm=shepherd|qwen[&step_tag=..&good=..&bad=..&system=..]``: transformers process reward
models, each solution scored the way its model card scores one, one score per step.

- ``shepherd`` (Math-Shepherd): a causal LM reads ``f"{question} {output}"`` with the tokenizer's special tokens,
  where ``output`` is the steps, each followed by ``" " + step_tag``, joined by line breaks. At each step-tag
  token the step's score is P(good): the softmax over the logits of the ``good`` and ``bad`` tokens. Ids as the
  card takes them: the tag's last token, and ``"{good} {bad}"`` tokenized without special tokens (two tokens).
- ``qwen`` (Qwen2.5-Math-PRM): a model with a two-label token head (the card's ``AutoModel`` custom code, or
  ``AutoModelForTokenClassification``) reads the chat template's rendering of a system turn, the prompt's turns
  and an assistant turn of the steps, each followed by ``step_tag``. At each tag token the step's score is
  ``softmax(logits)[good]`` (label index or ``id2label`` name, default 1).

Batches are padded on the right with an attention mask: a token's logits do not depend on what follows it in a
causal model, so a solution's scores do not depend on its batch mates. Nothing is truncated: a solution over the
max length is an error.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from ..backends.pretrained import (LoadedModel, head_logits, load_pretrained, locate, model_identity,
                                   model_max_length, pinned, runtime, sha256, template_digest, tokenizer_digest)
from ..backends.base import ModelOptions, Pair, Scores, prompt_messages, prompt_to_text
from ..backends.encoding import pad_rows, render_template
from ..errors import BackendError, ScoreError
from .model import Solution, checked_steps, lowest_step_scores

FORMAT_VERSION = "hf-prm/1"
SHEPHERD, QWEN = "shepherd", "qwen"
#: The system prompt of Qwen2.5-Math-PRM's model card.
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
#: Each shape's options and their defaults (from the model cards).
DEFAULTS: dict[str, dict[str, str]] = {
    SHEPHERD: {"step_tag": "ки", "good": "+", "bad": "-"},
    QWEN: {"step_tag": "<extra_0>", "good": "1", "system": QWEN_SYSTEM},
}
OPTIONS = ("prm", "step_tag", "good", "bad", "system")
AUTO_CLASSES = {SHEPHERD: "AutoModelForCausalLM", QWEN: "AutoModelForTokenClassification"}


@dataclass(frozen=True)
class PRMSpec:
    """A ``?prm=`` spec's shape and settings, each the card's default unless the spec gives it."""

    prm: str
    step_tag: str
    good: str
    bad: str = ""
    system: str = ""


def parse(spec: str, options: dict[str, str]) -> PRMSpec:
    """The checked options of a ``?prm=`` spec; one :class:`BackendError` naming the option and the fix."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise BackendError(f"unknown option {unknown[0]!r} in {spec}", where="--rm",
                           fix=f"Options of hf: are: {', '.join(OPTIONS)}")
    shape = options.get("prm", "")
    if shape not in DEFAULTS:
        raise BackendError(f"prm={shape} in {spec}" if shape else f"{spec} gives options but no prm=", where="--rm",
                           fix=f"Name the process model's shape: ?prm={SHEPHERD} (a causal LM's logits at a step tag, "
                               f"Math-Shepherd) or ?prm={QWEN} (a two-label token head, Qwen2.5-Math-PRM)")
    foreign = sorted(set(options) - {"prm"} - set(DEFAULTS[shape]))
    if foreign:
        raise BackendError(f"{foreign[0]}= in {spec} does not apply to prm={shape}", where="--rm",
                           fix=f"Options of prm={shape}: {', '.join(DEFAULTS[shape])}")
    settings = {**DEFAULTS[shape], **{k: v for k, v in options.items() if k != "prm"}}
    for key in ("step_tag", "good", "bad"):
        if key in settings and not settings[key]:
            raise BackendError(f"{key}= is empty in {spec}", where="--rm",
                               fix=f"Give {key}=TEXT, or leave it out for the model card's {DEFAULTS[shape][key]!r}")
    return PRMSpec(prm=shape, **settings)


def build(source: str, revision: str | None, prm: PRMSpec, options: ModelOptions, spec: str) -> HFProcessModel:
    return HFProcessModel(source, revision, prm, options, spec)


class HFProcessModel(LoadedModel):
    """A process reward model loaded with transformers (see the module's docstring for the two shapes).

    As a scalar RM (ordinary suites) it scores a response split into steps at blank lines; the response's score is
    the lowest step score, as for ``python:`` process models."""

    objectives: tuple[str, ...] = ()

    def __init__(self, source: str, revision: str | None, prm: PRMSpec, options: ModelOptions, spec: str) -> None:
        self.spec, self.prm, self.options = spec, prm, options
        self.tokenizer, self.model, self.device = load_pretrained(spec, source, revision, options,
                                                                     auto_class=AUTO_CLASSES[prm.prm])
        config = self.model.config
        self.max_length, self.max_length_source = ((options.max_length, "--max-length") if options.max_length
                                                   else model_max_length(self.tokenizer, config))
        self.tag_id = self._tag_id()
        self.label_ids = self._good_bad() if prm.prm == SHEPHERD else (self._good_label(config),)
        if prm.prm == QWEN and not getattr(self.tokenizer, "chat_template", None):
            raise BackendError(f"{spec}: the tokenizer has no chat template, which prm={QWEN} renders the "
                               "conversation with", where="--rm",
                               fix=f"Use the PRM's own tokenizer (Qwen2.5-Math-PRM's has one), or ?prm={SHEPHERD}")
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        files, self.resolved_revision = locate(source, revision)
        self._fingerprint = sha256(json.dumps({
            "format": FORMAT_VERSION, "spec": spec, "prm": asdict(prm), "tag_id": self.tag_id,
            "label_ids": list(self.label_ids), **model_identity(self.model, files, self.resolved_revision),
            "tokenizer": tokenizer_digest(self.tokenizer),
            "template": template_digest(self.tokenizer.chat_template),
            "dtype": self.dtype, "attention": self.attn_implementation, "max_length": self.max_length,
            "runtime": runtime(self.device)}, sort_keys=True))

    # -- the card's ids -----------------------------------------------------------------------------------------

    def _tag_id(self) -> int:
        ids = self.tokenizer.encode(self.prm.step_tag, add_special_tokens=False)
        if not ids:
            raise BackendError(f"{self.spec}: the step tag {self.prm.step_tag!r} is no token", where="--rm",
                               fix="Name the model's step tag with ?step_tag=TEXT")
        return int(ids[-1])

    def _good_bad(self) -> tuple[int, int]:
        ids = self.tokenizer.encode(f"{self.prm.good} {self.prm.bad}", add_special_tokens=False)
        if len(ids) != 2:
            raise BackendError(f"{self.spec}: good={self.prm.good!r} and bad={self.prm.bad!r} tokenize as "
                               f"{self.tokenizer.convert_ids_to_tokens(ids)}, not one token each", where="--rm",
                               fix="Give the label tokens the model was trained to predict at the step tag "
                                   "(?good=TEXT&bad=TEXT, each one token)")
        return int(ids[0]), int(ids[1])

    def _good_label(self, config: Any) -> int:
        names = {str(name): int(i) for i, name in (getattr(config, "id2label", None) or {}).items()}
        good = self.prm.good
        index = int(good) if good.isdigit() else names.get(good)
        labels = int(getattr(config, "num_labels", 0) or 0)
        if index is None or not 0 <= index < labels:
            raise BackendError(f"{self.spec}: good={good} names none of the head's {labels} labels "
                               f"({', '.join(names) or 'none named'})", where="--rm",
                               fix="Give ?good= a label index (Qwen2.5-Math-PRM: 1, the positive label) or a name "
                                   "of config.id2label")
        return index

    # -- description --------------------------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def cacheable(self) -> bool:
        """Scalar scores may go to the on-disk cache where the revision pins the weights (as for ``hf:``)."""
        return pinned(self.resolved_revision)

    def reading(self) -> str:
        """Where and how a step's score is read."""
        tag = f"step tag {self.prm.step_tag!r} (token {self.tag_id})"
        if self.prm.prm == SHEPHERD:
            good, bad = self.prm.good, self.prm.bad
            return f"{tag}: P({good!r}) of the softmax over the logits of {good!r} and {bad!r}"
        return f"{tag}: softmax(logits)[{self.label_ids[0]}]; system prompt {self.prm.system[:40]!r}"

    def describe(self) -> str:
        return (f"{self.spec} ({type(self.model).__name__}); process model (prm={self.prm.prm}, one score per step): "
                f"{self.reading()}; revision: {self.resolved_revision}; device: {self.device}; dtype: {self.dtype}; "
                f"max length: {self.max_length} ({self.max_length_source})")

    def provenance(self) -> dict[str, Any]:
        return {**runtime(self.device), "dtype": self.dtype, "attn_implementation": self.attn_implementation,
                "prm": self.prm.prm, "step_scores": self.reading(), "max_length": self.max_length,
                "revision": self.resolved_revision}

    # -- scoring ------------------------------------------------------------------------------------------------

    def text(self, solution: Solution) -> str:
        """What the model reads for a solution, as the card writes it."""
        tag = self.prm.step_tag
        if self.prm.prm == SHEPHERD:
            return f"{prompt_to_text(solution.prompt)} " + "\n".join(f"{step} {tag}" for step in solution.steps)
        turns = prompt_messages(solution.prompt)
        system = [{"role": "system", "content": self.prm.system}] if self.prm.system and \
            turns[0]["role"] != "system" else []
        answer = {"role": "assistant", "content": "".join(f"{step}{tag}" for step in solution.steps)}
        return render_template(self.tokenizer, self.spec, [*system, *turns, answer])

    def score_steps(self, solutions: Sequence[Solution]) -> list[list[float]]:
        import torch

        if not solutions:
            return []
        texts = [self.text(s) for s in solutions]
        found = self.tokenizer(texts)  # both cards: tokenizer.encode(text), special tokens as the tokenizer adds them
        rows = [{"input_ids": list(ids), "attention_mask": [1] * len(ids)} for ids in found["input_ids"]]
        for row, solution in zip(rows, solutions):
            self._check(row["input_ids"], solution)
        batch = {k: v.to(self.device) for k, v in pad_rows(rows, self.pad_id, "right").items()}
        with torch.inference_mode():
            logits = head_logits(self.model(**batch), self.spec).float()
        if self.prm.prm == SHEPHERD:
            probabilities = logits[..., list(self.label_ids)].softmax(dim=-1)[..., 0]
        else:
            probabilities = logits.softmax(dim=-1)[..., self.label_ids[0]]
        ids = batch["input_ids"]
        raw = [probabilities[i][(ids[i] == self.tag_id) & (batch["attention_mask"][i] == 1)].cpu().tolist()
               for i in range(len(solutions))]
        return checked_steps(raw, solutions, self.spec)

    def _check(self, ids: list[int], solution: Solution) -> None:
        """The solution fits the max length, and shows exactly one step tag per step."""
        where = f"the solution to {prompt_to_text(solution.prompt)[:40]!r}"
        if len(ids) > self.max_length:
            raise BackendError(f"{self.spec}: {where} is {len(ids)} tokens, more than the max length "
                               f"{self.max_length}", fix="Shorten the solution or raise --max-length (rmcheck never "
                                                         "cuts a solution: every step tag must stay)")
        tags = ids.count(self.tag_id)
        if tags != len(solution.steps):
            raise ScoreError(f"{self.spec}: {where} has {tags} step-tag tokens ({self.prm.step_tag!r}, id "
                             f"{self.tag_id}) for its {len(solution.steps)} steps",
                             fix="A step's text holds the tag or merges with it: remove the tag from the steps, or "
                                 "name the model's tag with ?step_tag=")

    def score(self, pairs: Sequence[Pair]) -> list[Scores]:
        return lowest_step_scores(self, pairs)
