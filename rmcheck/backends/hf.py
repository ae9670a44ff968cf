"""``hf:ID_OR_PATH[@REVISION]``: transformers sequence-classification reward models.

A pair becomes tokens the way the model's card scores one conversation (see :mod:`.encoding`): the
tokenizer's chat template tokenized as ``apply_chat_template(..., tokenize=True)`` does, a text pair for
encoders without a template, else a plain ``User: ...\n\nAssistant: ...`` text. A doubled BOS is dropped,
a conversation over the max length loses prompt tokens from the left (never response tokens), and
batches are padded on the tokenizer's side such that a pair's score does not depend on its batch mates
(see :meth:`HFRewardModel.pad_id`). :meth:`HFRewardModel.provenance` records all of it.
"""
from __future__ import annotations

import inspect
import itertools
import json
import warnings
from typing import Any, Sequence

from ..errors import BackendError
from .pretrained import (LoadedModel, check_local_path, head_logits, load_pretrained, locate, model_identity,
                         model_max_length, parse_spec, pinned, runtime, sha256, template_digest, template_name,
                         tokenizer_digest)
from .base import OVERALL, ModelOptions, Pair, Scores, normalise_scores
from .encoding import TEMPLATE, TEXT_PAIR, Encoding, Formatter, input_format, pad_rows, truncate_prompt
from .recent import Recent, take

#: Bumped whenever the way this backend turns pairs into tokens changes (it keys the score cache).
FORMAT_VERSION = "hf/2"
PADDING_SIDES = ("left", "right")


def build(rest: str, options: ModelOptions) -> HFRewardModel:
    """Load ``ID_OR_PATH[@REVISION]`` with AutoTokenizer and AutoModelForSequenceClassification."""
    source, revision = parse_spec(rest)
    return HFRewardModel(source, revision, options)


def check(rest: str, options: ModelOptions) -> None:
    """Before the run: the spec parses, and a local path exists and holds config.json."""
    source, revision = parse_spec(rest)
    check_local_path(f"hf:{rest}", source, revision)


class ResponseTooLong(BackendError):
    """A pair whose response (with its role header and closing tokens) alone exceeds the max length."""

    def __init__(self, spec: str, pair: Pair, tokens: int, max_length: int) -> None:
        self.pair = pair
        super().__init__(f"{spec}: a response is {tokens} tokens with its role header and closing tokens, more than "
                         f"the max length {max_length}, so no prompt truncation can fit it "
                         f"(response starts {pair.response[:40]!r})",
                         fix="Shorten the response or raise --max-length (rmcheck never cuts a response)")


class HFRewardModel(LoadedModel):
    """A sequence-classification reward model.

    With one label, the logit is the score. With several, every label of
    ``config.id2label`` is a named objective and ``"score"`` is their mean (unless a
    label is itself called ``"score"``, which then is the overall score).
    A gated multi-objective model (ArmoRM style: ``config.num_objectives``, custom code whose
    output has ``rewards`` of shape (batch, objectives) and ``score`` of shape (batch, 1)) has one
    objective per reward column and its gated ``score`` as the overall score. A custom-code model
    loaded through ``AutoModel`` (InternLM2 reward style) may return a tuple or a tensor: its first
    tensor is the score, and ``config.reward_token_id`` is appended to every conversation.
    ``tokenizer`` and ``model`` are the loaded transformers objects (e.g. for vocabulary sweeps).
    """

    def __init__(self, source: str, revision: str | None, options: ModelOptions, *, spec: str | None = None) -> None:
        self.spec = spec or f"hf:{source}" + (f"@{revision}" if revision else "")
        self.source = source
        self.revision = revision
        self.options = options
        self.tokenizer, self.model, self.device = load_pretrained(self.spec, source, revision, options)
        config = self.model.config
        self._head_config = config.get_text_config()
        self.native_pad_id: int | None = self._head_config.pad_token_id
        self.num_labels: int = config.num_labels
        self.gated = isinstance(getattr(config, "num_objectives", None), int)
        self.objectives: tuple[str, ...] = (
            gated_objective_names(config) if self.gated
            else tuple(str(config.id2label[i]) for i in range(self.num_labels)) if self.num_labels > 1 else ())
        self.max_length, self.max_length_source = ((options.max_length, "--max-length") if options.max_length
                                                   else model_max_length(self.tokenizer, config))
        self._template = self.tokenizer.chat_template
        self.encoder = is_encoder(config)
        fmt = input_format(self.tokenizer, getattr(config, "model_type", ""))
        reward_token = getattr(config, "reward_token_id", None)
        self.formatter = Formatter(self.tokenizer, fmt, self.spec,
                                   reward_token_id=reward_token if isinstance(reward_token, int) else None)
        self.padding_side = padding_side(options.padding_side, self.tokenizer, encoder=self.encoder)
        self._positions = self.padding_side == "left" and accepts(self.model, "position_ids")
        # Tokenizers may return inputs the model does not take (GPT-NeoX's token_type_ids on transformers 4.x).
        self._forward_inputs = {"input_ids", "attention_mask", "token_type_ids", "position_ids"}
        if not takes_any_keyword(self.model):
            self._forward_inputs = {k for k in self._forward_inputs if k == "input_ids" or accepts(self.model, k)}
        self._files, self.resolved_revision = locate(source, revision)
        self.bos_removed = False  # set once a conversation came with two BOS tokens
        self._fingerprint = sha256(json.dumps(self._fingerprint_parts(), sort_keys=True))
        self._truncated: set[Pair] = set()
        self._encoded: dict[Pair, Encoding] = {}  # by token_ids(), for score()
        self._checked: Recent[Pair, Encoding] = Recent()  # by inputs(), for token_ids()

    # -- description --------------------------------------------------------------------------

    def template_name(self) -> str:
        if self.formatter.format == TEXT_PAIR:
            return f"none in tokenizer; text pair (prompt {self.tokenizer.sep_token} response)"
        return template_name(self._template)

    def bos_handling(self) -> str:
        """How the conversation's BOS comes about, and whether a doubled one was removed."""
        bos = self.tokenizer.bos_token
        if self.formatter.format == TEMPLATE:
            written = bool(bos) and bos in (self._template if isinstance(self._template, str) else "") or \
                "bos_token" in str(self._template)
            text = "written by the template" if written else "none (the template writes none)"
        else:
            text = "the tokenizer's special tokens"
        return text + ("; a doubled BOS was found and one removed" if self.bos_removed else "")

    def describe(self) -> str:
        pad = (f"config pad id {self.native_pad_id}" if self.native_pad_id is not None
               else "none in config, an id unused by the batch")
        return (f"{self.spec} ({type(self.model).__name__}); revision: {self.resolved_revision}; "
                f"device: {self.device}; dtype: {self.dtype}; attention: {self.attn_implementation}; "
                f"max length: {self.max_length} ({self.max_length_source}); "
                f"objectives: {', '.join(self.objectives) or 'score'}; template: {self.template_name()}; "
                f"BOS: {self.bos_handling()}; padding: {self.padding_side}, pad: {pad}; "
                f"truncation: prompt from the left")

    def provenance(self) -> dict[str, Any]:
        """What produced the scores, for the run document: everything here can change a score."""
        return {
            **runtime(self.device),
            "dtype": self.dtype,
            "attn_implementation": self.attn_implementation,
            "device_map": self.options.device_map,
            "padding_side": self.padding_side,
            "input_format": self.formatter.format,
            "template_source": ("tokenizer chat_template" if self.formatter.format == TEMPLATE else
                                self.template_name()),
            "template_sha256": template_digest(self._template) if self.formatter.format == TEMPLATE else None,
            "bos": self.bos_handling(),
            "max_length": self.max_length,
            "max_length_source": self.max_length_source,
            "truncation": "prompt tokens from the left; a response over the limit is an error",
            "revision": self.resolved_revision,
        }

    @property
    def fingerprint(self) -> str:
        """sha256 over everything that can change a score, taken at load time."""
        return self._fingerprint

    def _fingerprint_parts(self) -> dict[str, Any]:
        """The spec, revision, config.json, weights (by content in a local directory), tokenizer,
        template, input format, dtype, attention, padding, max length, labels and pad id."""
        return {
            "format": FORMAT_VERSION,
            "spec": self.spec,
            **model_identity(self.model, self._files, self.resolved_revision),
            "tokenizer": tokenizer_digest(self.tokenizer),
            "template": template_digest(self._template),
            "input_format": self.formatter.format,
            "dtype": self.dtype,
            "attention": self.attn_implementation,
            "padding_side": self.padding_side,
            "max_length": self.max_length,
            "labels": [self.num_labels, self.objectives],
            "pad_id": self.native_pad_id,
            "runtime": runtime(self.device),
        }

    @property
    def cacheable(self) -> bool:
        """Scores may go to the on-disk cache: the fingerprint pins the weights (a local directory by
        content, a hub model by its commit), unless the revision is a name that can move (``main``)."""
        return pinned(self.resolved_revision)

    # -- scoring ------------------------------------------------------------------------------

    def render(self, pair: Pair) -> str:
        """The text the model sees for a pair: the chat template's output, or the plain fallback."""
        return self.formatter.render(pair)

    def encode(self, pair: Pair) -> tuple[dict[str, list[int]], int]:
        """Token inputs of a pair (truncated to the max length) and how many prompt tokens were cut."""
        (encoding,) = self.encodings([pair])
        return encoding.inputs, encoding.cut

    def encodings(self, pairs: Sequence[Pair]) -> list[Encoding]:
        """The encodings of ``pairs`` as scored: doubled BOS removed, prompts cut from the left to the max length.

        Warns with the number of pairs truncated (each pair counted once per model); raises
        :class:`ResponseTooLong` for a pair whose response alone does not fit.
        """
        out = []
        for pair, encoding in zip(pairs, self.formatter.encode(pairs, self.max_length)):
            self.bos_removed |= encoding.bos_removed
            cut = truncate_prompt(encoding, self.max_length)
            if cut is None:
                raise ResponseTooLong(self.spec, pair, encoding.response_length, self.max_length)
            out.append(cut)
        self._warn_truncation([(p, e) for p, e in zip(pairs, out) if e.cut], len(pairs))
        return out

    def inputs(self, pairs: Sequence[Pair]) -> list[tuple[int, ...]]:
        """The token ids the model reads for each pair, after truncation (``capabilities.ShowsInputs``).
        The encodings are kept for :meth:`token_ids`, which usually follows when the pairs are scored
        (the most recent :data:`~rmcheck.backends.recent.KEPT_ITEMS`)."""
        return [tuple(e.ids) for e in self._checked.fill(pairs, self.encodings)]

    def token_lengths(self, pairs: Sequence[Pair]) -> list[int]:
        """How many tokens the model sees for each pair (after truncation): the scheduler's batch cost."""
        return [len(ids) for ids in self.token_ids(pairs)]

    def token_ids(self, pairs: Sequence[Pair]) -> list[list[int]]:
        """The token ids the model sees for each pair (after truncation), for the scheduler's batches and
        shared prefixes. The encodings of the latest call are kept for :meth:`score`, so a pair is tokenized once."""
        encoded = take(self._checked, pairs, self.encodings)
        self._encoded = dict(zip(pairs, encoded))
        return [e.ids for e in encoded]

    def batch(self, pairs: Sequence[Pair]) -> dict[str, Any]:
        """The padded input tensors of one forward pass over ``pairs`` (on the model's device)."""
        rows = [e.inputs for e in take(self._encoded, pairs, self.encodings)]
        batch = pad_rows(rows, self.pad_id([row["input_ids"] for row in rows]), self.padding_side,
                         positions=self._positions)
        return {k: v.to(self.device) for k, v in batch.items() if k in self._forward_inputs}

    def score(self, pairs: Sequence[Pair]) -> list[Scores]:
        if not pairs:
            return []
        import torch

        batch = self.batch(pairs)
        with torch.inference_mode():
            output = self.model(**batch)
        if self.gated:
            return normalise_scores(self._gated_scores(output), len(pairs), self.spec)
        values = head_logits(output, self.spec).float().reshape(len(pairs), -1).cpu().tolist()
        return self.scores_from_logits(values)

    def scores_from_logits(self, rows: Sequence[Sequence[float]]) -> list[Scores]:
        """Scores of the head's logits, one row per pair: the logit, or one objective per label."""
        raw = [row[0] if not self.objectives else dict(zip(self.objectives, row)) for row in rows]
        return normalise_scores(raw, len(rows), self.spec)

    def _gated_scores(self, output: Any) -> list[dict[str, float]]:
        """Per-objective ``rewards`` and the gated overall ``score`` of an ArmoRM-style output."""
        rewards, score = getattr(output, "rewards", None), getattr(output, "score", None)
        if rewards is None or score is None or tuple(rewards.shape[1:]) != (len(self.objectives),):
            raise BackendError(f"{self.spec}: config.num_objectives is {len(self.objectives)}, but the model's output "
                               f"has no 'rewards' of shape (batch, {len(self.objectives)}) and 'score'",
                               fix="Use a model whose forward returns rewards and score (ArmoRM style), "
                                   "or drop num_objectives from its config.json")
        overall = score.float().reshape(len(score), -1)[:, 0].cpu().tolist()
        return [{**dict(zip(self.objectives, row)), OVERALL: total}
                for row, total in zip(rewards.float().cpu().tolist(), overall)]

    def pad_id(self, ids: Sequence[Sequence[int]]) -> int:
        """The id to pad with, such that the head still pools each sequence's own last token.

        Decoder heads pool the rightmost token that is not ``config.pad_token_id``; with causal attention,
        an attention mask and (left padding) position ids counted per row, that token, and so the score,
        is the same alone or in any batch. A model with no pad id pools the last token when alone; to keep
        that in a batch (even when the text ends with EOS, where padding with EOS would shift the pooled
        token), pad with an id the batch does not contain and tell the head about it.
        """
        if self.native_pad_id is not None:
            return self.native_pad_id
        used = set(itertools.chain.from_iterable(ids))
        pad = next(i for i in itertools.count() if i not in used)
        self._head_config.pad_token_id = pad
        return pad

    def _warn_truncation(self, cut: list[tuple[Pair, Encoding]], total: int) -> None:
        new = [e.cut for p, e in cut if p not in self._truncated]
        if new:
            self._truncated.update(p for p, _ in cut)
            warnings.warn(f"{self.spec}: {len(new)} of {total} pairs are longer than max length {self.max_length} and "
                          f"were truncated: their prompts lost {max(new)} tokens at most, from the left; the responses "
                          f"are whole ({len(self._truncated)} pairs truncated so far)", stacklevel=3)


def accepts(model: Any, name: str) -> bool:
    """Whether the model's forward takes the keyword ``name``."""
    parameters = inspect.signature(model.forward).parameters
    return name in parameters


def takes_any_keyword(model: Any) -> bool:
    """Whether the model's forward takes ``**kwargs``."""
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(model.forward).parameters.values())


def is_encoder(config: Any) -> bool:
    """An encoder (BERT, DeBERTa, RoBERTa): it pools the first token, so it is always right-padded."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return getattr(config, "model_type", None) in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def padding_side(asked: str | None, tokenizer: Any, *, encoder: bool) -> str:
    """``asked``, else the tokenizer's ``padding_side``; always right for encoders."""
    side = asked or getattr(tokenizer, "padding_side", None) or "right"
    if side not in PADDING_SIDES:
        raise BackendError(f"unknown padding side {side!r}", fix="Use left or right")
    return "right" if encoder else side


#: The published names of ArmoRM-Llama3-8B's 19 objectives (its config does not carry them).
ARMORM_OBJECTIVES = (
    "helpsteer-helpfulness", "helpsteer-correctness", "helpsteer-coherence", "helpsteer-complexity",
    "helpsteer-verbosity", "ultrafeedback-overall_score", "ultrafeedback-instruction_following",
    "ultrafeedback-truthfulness", "ultrafeedback-honesty", "ultrafeedback-helpfulness", "beavertails-is_safe",
    "prometheus-score", "argilla-overall_quality", "argilla-judge_lm", "code-complexity", "code-style",
    "code-explanation", "code-instruction-following", "code-readability",
)


def gated_objective_names(config: Any) -> tuple[str, ...]:
    """Objective names of a gated model: ``config.objective_names``, else ArmoRM's published names when the
    architecture and count match, else ``objective_0``, ``objective_1``, ..."""
    count = config.num_objectives
    named = getattr(config, "objective_names", None)
    if isinstance(named, (list, tuple)) and len(named) == count:
        return tuple(str(n) for n in named)
    if count == len(ARMORM_OBJECTIVES) and "LlamaForRewardModelWithGating" in (config.architectures or ()):
        return ARMORM_OBJECTIVES
    return tuple(f"objective_{i}" for i in range(count))
