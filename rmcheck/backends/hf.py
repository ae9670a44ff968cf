"""``hf:ID_OR_PATH[@REVISION]``: transformers sequence-classification reward models.

A pair becomes tokens the way the model's card scores one conversation (see :mod:`.encoding`): the
tokenizer's chat template tokenized as ``apply_chat_template(..., tokenize=True)`` does, a text pair for
encoders without a template, else a plain ``User: ...\n\nAssistant: ...`` text. A doubled BOS is dropped,
a conversation over the max length loses prompt tokens from the left (never response tokens), and
batches are padded on the tokenizer's side such that a pair's score does not depend on its batch mates
(see :meth:`HFRewardModel.pad_id`). :meth:`HFRewardModel.provenance` records all of it.
"""
from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

from ..errors import BackendError
from .base import OVERALL, ModelOptions, Pair, Scores, normalise_scores
from .encoding import PLAIN, TEMPLATE, TEXT_PAIR, Encoding, Formatter, input_format, pad_rows, truncate_prompt
from .recent import Recent, take

#: Bumped whenever the way this backend turns pairs into tokens changes (it keys the score cache).
FORMAT_VERSION = "hf/2"
#: A limit above this is "no limit" (tokenizers without one say 1e30).
SANE_MAX_LENGTH = 10_000_000
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16", "auto": "auto"}
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
PADDING_SIDES = ("left", "right")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")
PLAIN_TEMPLATE = "plain 'User:/Assistant:'"
_COMMIT = re.compile(r"[0-9a-f]{40}")
#: What tokenizer.save_pretrained() writes: its settings, and its vocabulary (a fast tokenizer's tokenizer.json,
#: or a slow one's vocabulary file: GPT-2/Qwen, BERT, Llama/Mistral, T5, XLM-R).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
VOCABULARY_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "tokenizer.model", "spiece.model",
                    "sentencepiece.bpe.model")


def build(rest: str, options: ModelOptions) -> HFRewardModel:
    """Load ``ID_OR_PATH[@REVISION]`` with AutoTokenizer and AutoModelForSequenceClassification."""
    source, revision = parse_spec(rest)
    return HFRewardModel(source, revision, options)


def check(rest: str, options: ModelOptions) -> None:
    """Before the run: the spec parses, and a local path exists and holds config.json."""
    source, revision = parse_spec(rest)
    _check_local_path(f"hf:{rest}", source, revision)


def parse_spec(rest: str) -> tuple[str, str | None]:
    """``"org/name@v1"`` -> ``("org/name", "v1")``; an existing path keeps any ``@`` it contains."""
    rest = rest.strip()
    if not rest:
        raise BackendError("hf: needs a model id or path", fix="Use hf:ORG/NAME[@REVISION] or hf:./local/model_dir")
    if "@" not in rest or Path(rest).expanduser().exists():
        return rest, None
    source, _, revision = rest.rpartition("@")
    if not source or not revision:
        raise BackendError(f"hf:{rest}: empty model id or revision around '@'",
                           fix="Use hf:ORG/NAME@REVISION (a branch, tag or commit hash)")
    return source, revision


class ResponseTooLong(BackendError):
    """A pair whose response (with its role header and closing tokens) alone exceeds the max length."""

    def __init__(self, spec: str, pair: Pair, tokens: int, max_length: int) -> None:
        self.pair = pair
        super().__init__(f"{spec}: a response is {tokens} tokens with its role header and closing tokens, more than "
                         f"the max length {max_length}, so no prompt truncation can fit it "
                         f"(response starts {pair.response[:40]!r})",
                         fix="Shorten the response or raise --max-length (rmcheck never cuts a response)")


class HFRewardModel:
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

    @property
    def dtype(self) -> str:
        return str(self.model.dtype).removeprefix("torch.")

    @property
    def attn_implementation(self) -> str:
        return str(getattr(self.model.config, "_attn_implementation", None) or "default")

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


def head_logits(output: Any, spec: str) -> Any:
    """The score tensor of a forward pass: ``logits``, else the first tensor of a tuple or custom output."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    items = output.to_tuple() if hasattr(output, "to_tuple") else output if isinstance(output, (tuple, list)) else ()
    found = next((item for item in items if isinstance(item, torch.Tensor)), None)
    if found is None:
        raise BackendError(f"{spec}: the model's forward returned {type(output).__name__} with no score tensor",
                           fix="Use a model whose forward returns logits, a tensor, or a tuple starting with one")
    return found


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


def pinned(revision: str) -> bool:
    """Whether a resolved revision pins the weights: a local directory (hashed by content) or a commit hash."""
    return revision == "local" or _COMMIT.fullmatch(revision) is not None


# -- loading ------------------------------------------------------------------------------------


def load_pretrained(spec: str, source: str, revision: str | None, options: ModelOptions,
                    auto_class: str = "AutoModelForSequenceClassification") -> tuple[Any, Any, Any]:
    """Tokenizer, model (eval mode, on its device) and the device its inputs go to, or one clear BackendError.

    ``auto_class`` names the transformers Auto class that builds the model (``AutoModelForCausalLM`` for dpo:);
    a custom-code reward model that registers only ``AutoModel`` (InternLM2 style) is built with that.
    ``options.device_map`` (with ``max_memory``) shards the model through accelerate instead of moving it.
    """
    _check_local_path(spec, source, revision)
    import torch
    import transformers

    dtype = _dtype(options.dtype, torch)
    device = None if options.device_map else _device(options.device)
    common = {"revision": revision, "trust_remote_code": options.trust_remote_code}
    try:
        config = transformers.AutoConfig.from_pretrained(source, **common)
        _check_not_process(spec, config, auto_class)
        auto_class = _auto_class(config, auto_class)
        _check_remote_code(spec, config, auto_class, options)
        tokenizer = _load_tokenizer(spec, source, common)
        model = getattr(transformers, auto_class).from_pretrained(source, dtype=dtype, **common,
                                                                  **loading_options(options, config))
        if device is not None:
            model.to(device)
    except BackendError:
        raise
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ImportError, ...
        raise BackendError(f"cannot load {spec}: {_first_line(exc)}", fix=_load_fix(exc, source)) from None
    if _softcap_ignored(model.config):
        warnings.warn(f"{spec}: sdpa attention ignores the model's attention soft-capping (attn_logit_softcapping="
                      f"{model.config.attn_logit_softcapping}): scores differ from the model as trained; "
                      "use --attn-implementation eager (or flash_attention_2)", stacklevel=2)
    return tokenizer, model.eval(), device if device is not None else model.get_input_embeddings().weight.device


def loading_options(options: ModelOptions, config: Any = None) -> dict[str, Any]:
    """The ``from_pretrained`` keywords of ``--attn-implementation``, ``--device-map`` and ``--max-memory``.

    Without ``--attn-implementation``, a model whose config soft-caps attention logits (Gemma-2) loads with
    ``eager``: sdpa has no soft-capping, yet some transformers versions (4.56) pick it by default there, while
    others (4.42-4.4x, 5.x) pick eager. Elsewhere transformers' default stands.
    """
    kwargs: dict[str, Any] = {}
    attn = options.attn_implementation or ("eager" if getattr(config, "attn_logit_softcapping", None) else None)
    if attn:
        kwargs["attn_implementation"] = attn
    if options.device_map:
        if options.device_map not in DEVICE_MAPS:
            raise BackendError(f"unknown device map {options.device_map!r}", where="--device-map",
                               fix=f"Use one of {', '.join(DEVICE_MAPS)}")
        kwargs["device_map"] = options.device_map
        if options.max_memory:
            kwargs["max_memory"] = {int(k) if str(k).isdigit() else k: v for k, v in options.max_memory.items()}
    elif options.max_memory:
        raise BackendError("--max-memory applies only with --device-map", where="--max-memory",
                           fix="Add --device-map auto (or balanced, sequential), or drop --max-memory")
    return kwargs


def _softcap_ignored(config: Any) -> bool:
    """Whether the model soft-caps attention logits but runs sdpa, which does not (``--attn-implementation sdpa``
    with Gemma-2 on transformers versions that offer it)."""
    return bool(getattr(config, "attn_logit_softcapping", None)) and \
        getattr(config, "_attn_implementation", None) == "sdpa"


def parse_max_memory(text: str) -> dict[str, str]:
    """``"0=20GiB,1=20GiB,cpu=64GiB"`` -> ``{"0": "20GiB", "1": "20GiB", "cpu": "64GiB"}``."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        device, sep, amount = part.partition("=")
        if not sep or not device.strip() or not amount.strip():
            raise ValueError(f"{part!r} is not DEVICE=AMOUNT (e.g. 0=20GiB,cpu=64GiB)")
        out[device.strip()] = amount.strip()
    if not out:
        raise ValueError("no DEVICE=AMOUNT given (e.g. 0=20GiB,cpu=64GiB)")
    return out


def _auto_class(config: Any, wanted: str) -> str:
    """``wanted``, or ``AutoModel`` for custom code that registers only that (InternLM2 reward models,
    Qwen2.5-Math-PRM)."""
    custom = getattr(config, "auto_map", None) or {}
    heads = ("AutoModelForSequenceClassification", "AutoModelForTokenClassification")
    if wanted in heads and wanted not in custom and "AutoModel" in custom:
        return "AutoModel"
    return wanted


#: Architectures that score tokens, not sequences: loaded as a sequence classifier, their token head would pool
#: the last token as if it were a sequence head (same weight names), silently.
PROCESS_ARCHITECTURES = ("ForTokenClassification", "ForProcessRewardModel")


def _check_not_process(spec: str, config: Any, auto_class: str) -> None:
    """Refuse a process reward model asked for as a sequence-classification RM."""
    found = [a for a in getattr(config, "architectures", None) or () if a.endswith(PROCESS_ARCHITECTURES)]
    if found and auto_class == "AutoModelForSequenceClassification":
        raise BackendError(f"{spec} is a process reward model ({found[0]}): it scores steps at a separator token, "
                           "not whole responses", where="--rm",
                           fix=f"Add ?prm=qwen ({spec}?prm=qwen) to score its steps (see docs/process.md)")


def _check_remote_code(spec: str, config: Any, auto_class: str, options: ModelOptions) -> None:
    """Refuse a model whose own code builds it when that code may not run: transformers would silently
    build a stock class with a randomly initialised head instead."""
    custom = (getattr(config, "auto_map", None) or {}).get(auto_class)
    if custom and not options.trust_remote_code:
        raise BackendError(f"{spec} ships its own model code ({custom}) and trust_remote_code is off",
                           where="--rm",
                           fix="Pass --trust-remote-code (pytest: --rmcheck-trust-remote-code) if you trust that code; "
                               "without it transformers would score with a randomly initialised head")


def _check_local_path(spec: str, source: str, revision: str | None) -> None:
    """Fail early, with the path, for a local model directory that cannot be loaded."""
    path = Path(source).expanduser()
    # a hub id is ORG/NAME: more folders than that name a local path
    looks_local = (source.startswith((".", "/", "~", "\\")) or path.is_absolute() or "\\" in source
                   or source.count("/") > 1)
    if looks_local and not path.exists():
        raise BackendError(f"{spec}: no such model directory {str(path.resolve())!r}",
                           fix="Pass an existing directory holding config.json and the weights, or a hub id ORG/NAME")
    if path.is_dir() and not (path / "config.json").is_file():
        raise BackendError(f"{spec}: no config.json in {str(path.resolve())!r}",
                           fix="Pass the directory that save_pretrained() wrote (config.json, weights, tokenizer)")
    if path.exists() and revision:
        raise BackendError(f"{spec}: a revision applies to hub models, not to the local path {str(path.resolve())!r}",
                           fix=f"Drop '@{revision}', or check out that revision into the directory")


def _load_tokenizer(spec: str, source: str, common: dict[str, Any]) -> Any:
    """AutoTokenizer's tokenizer; a local directory without the tokenizer's files says which are missing
    (transformers says "Couldn't instantiate the backend tokenizer from one of: .")."""
    import transformers

    try:
        return transformers.AutoTokenizer.from_pretrained(source, **common)
    except Exception:
        path = Path(source).expanduser()
        if not path.is_dir() or any((path / name).is_file() for name in VOCABULARY_FILES):
            raise  # not a missing file: the caller's message
        where = str(path.resolve())
        missing = [name for name in TOKENIZER_FILES if not (path / name).is_file()]
        raise BackendError(f"{spec}: no tokenizer in {where!r}: it lacks {', '.join(missing)} and a slow "
                           f"tokenizer's vocabulary ({', '.join(VOCABULARY_FILES[1:])})",
                           fix=f"Save the model's tokenizer beside it: tokenizer.save_pretrained({where!r})") from None


def _load_fix(exc: Exception, source: str) -> str:
    if "trust_remote_code" in str(exc):
        return ("The model ships its own Python code; enable trust_remote_code in the model options "
                "only if you trust that code")
    if Path(source).expanduser().exists():
        return "Check that the directory holds a sequence-classification model (config.json, weights, tokenizer)"
    return ("Check the hub id and revision; without network access, download the model first "
            "(huggingface-cli download ID) and set HF_HUB_OFFLINE=1, or pass a local directory")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else 'no details'}"


def _device(name: str | None) -> Any:
    import torch

    name = name or "cpu"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BackendError(f"unknown device {name!r}", fix="Use cpu, cuda, cuda:N, mps or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(f"device {name!r} asked for, but torch sees no CUDA GPU", fix="Use cpu or auto")
    return device


def _dtype(name: str | None, torch: Any) -> Any:
    key = DTYPES.get((name or "float32").lower())
    if key is None:
        raise BackendError(f"unknown dtype {name!r}", fix="Use float32, bfloat16, float16 or auto")
    return key if key == "auto" else getattr(torch, key)


def model_max_length(tokenizer: Any, config: Any) -> tuple[int, str]:
    """The model's own limit and where it comes from: the smaller of ``max_position_embeddings`` (or
    ``n_positions``, ``max_sequence_length``) and the tokenizer's ``model_max_length``, ignoring absent and
    insane values (tokenizers without a limit say 1e30)."""
    text = config.get_text_config()
    limits = [(getattr(text, name, None), f"config {name}")
              for name in ("max_position_embeddings", "n_positions", "max_sequence_length")]
    limits.append((getattr(tokenizer, "model_max_length", None), "tokenizer model_max_length"))
    sane = [(int(n), where) for n, where in limits if isinstance(n, (int, float)) and 0 < n <= SANE_MAX_LENGTH]
    if not sane:
        raise BackendError("the model declares no max length (no max_position_embeddings, no model_max_length)",
                           fix="Pass --max-length N (pytest: --rmcheck-max-length N)")
    return min(sane)


def locate(source: str, revision: str | None) -> tuple[Path | None, str]:
    """The directory the model was loaded from and its revision.

    A local directory is ``"local"``; a hub model is its cache snapshot, named by the commit hash;
    when the snapshot cannot be found, the revision asked for.
    """
    local = Path(source).expanduser()
    if local.is_dir():
        return local, "local"
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(source, "config.json", revision=revision)
    if not isinstance(found, str):
        return None, revision or "main"
    snapshot = Path(found).parent
    return snapshot, snapshot.name


# -- hashing ------------------------------------------------------------------------------------


def model_identity(model: Any, files: Path | None, revision: str) -> dict[str, Any]:
    """What pins a loaded model: its revision, config.json and, in a local directory, its weights and
    model code by content (a hub commit pins those)."""
    config_file = files / "config.json" if files is not None else None
    local = revision == "local" and files is not None
    return {
        "revision": revision,
        "config": (_file_digest([config_file]) if config_file is not None and config_file.is_file()
                   else sha256(model.config.to_json_string())),
        "weights": _file_digest(_weight_files(files)) if local else None,
        "code": _file_digest(sorted(files.glob("*.py"))) if local else None,
    }


def template_name(template: Any) -> str:
    """How a chat template is named in descriptions: by the start of its sha256, or the plain fallback."""
    if template is None:
        return f"none in tokenizer, {PLAIN_TEMPLATE} fallback"
    return f"tokenizer chat_template (sha256 {sha256(_template_text(template))[:8]})"


def template_digest(template: Any) -> str:
    return sha256(_template_text(template)) if template is not None else PLAIN_TEMPLATE


def runtime(device: Any) -> dict[str, str]:
    """The device kind and library versions that compute the scores: their kernels round differently."""
    import torch
    import transformers

    kind = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return {"device": kind, "torch": torch.__version__, "transformers": transformers.__version__}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _template_text(template: Any) -> str:
    return template if isinstance(template, str) else json.dumps(template, sort_keys=True)


def _weight_files(directory: Path) -> list[Path]:
    return sorted({p for pattern in WEIGHT_PATTERNS for p in directory.glob(pattern)})


def _file_digest(paths: Sequence[Path], chunk: int = 1 << 20) -> str:
    """sha256 over the names and contents of files, streamed in chunks."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(chunk), b""):
                digest.update(block)
    return digest.hexdigest()


def tokenizer_digest(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocab = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    settings = {"special": tokenizer.special_tokens_map, "truncation_side": tokenizer.truncation_side}
    return sha256(vocab + json.dumps(settings, sort_keys=True, default=str))
