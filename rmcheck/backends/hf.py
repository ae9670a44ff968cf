"""``hf:ID_OR_PATH[@REVISION]``: transformers sequence-classification reward models.

The tokenizer's own chat template formats each pair; without one, a plain
``User: ...\\n\\nAssistant: ...`` text is used and :meth:`HFRewardModel.describe` says so.
Batches are right-padded and scored under ``torch.inference_mode()``; a pair's score
does not depend on its batch mates (see :meth:`HFRewardModel.pad_id`).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

from ..errors import BackendError
from .base import (OVERALL, ModelOptions, Pair, Scores, normalise_scores, prompt_to_text, register_backend,
                   register_spec_check)

#: Bumped whenever the way this backend turns pairs into tokens changes (it keys the score cache).
FORMAT_VERSION = "hf/1"
DEFAULT_MAX_LENGTH = 4096
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16", "auto": "auto"}
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
PLAIN_TEMPLATE = "plain 'User:/Assistant:'"
_COMMIT = re.compile(r"[0-9a-f]{40}")


@register_backend("hf")
def build(rest: str, options: ModelOptions) -> HFRewardModel:
    """Load ``ID_OR_PATH[@REVISION]`` with AutoTokenizer and AutoModelForSequenceClassification."""
    source, revision = parse_spec(rest)
    return HFRewardModel(source, revision, options)


@register_spec_check("hf")
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


class HFRewardModel:
    """A sequence-classification reward model.

    With one label, the logit is the score. With several, every label of
    ``config.id2label`` is a named objective and ``"score"`` is their mean (unless a
    label is itself called ``"score"``, which then is the overall score).
    A gated multi-objective model (ArmoRM style: ``config.num_objectives``, custom code whose
    output has ``rewards`` of shape (batch, objectives) and ``score`` of shape (batch, 1)) has one
    objective per reward column and its gated ``score`` as the overall score.
    ``tokenizer`` and ``model`` are the loaded transformers objects (e.g. for vocabulary sweeps).
    """

    def __init__(self, source: str, revision: str | None, options: ModelOptions, *, spec: str | None = None) -> None:
        self.spec = spec or f"hf:{source}" + (f"@{revision}" if revision else "")
        self.source = source
        self.revision = revision
        self.tokenizer, self.model, self.device = load_pretrained(self.spec, source, revision, options)
        config = self.model.config
        self._head_config = config.get_text_config()
        self.native_pad_id: int | None = self._head_config.pad_token_id
        self.num_labels: int = config.num_labels
        self.gated = isinstance(getattr(config, "num_objectives", None), int)
        self.objectives: tuple[str, ...] = (
            gated_objective_names(config) if self.gated
            else tuple(str(config.id2label[i]) for i in range(self.num_labels)) if self.num_labels > 1 else ())
        self.max_length = options.max_length or default_max_length(self.tokenizer, config)
        self._template = self.tokenizer.chat_template
        self._files, self.resolved_revision = locate(source, revision)
        self._fingerprint = sha256(json.dumps(self._fingerprint_parts(), sort_keys=True))
        self._warned_truncation = False
        self._encoded: dict[Pair, tuple[dict[str, list[int]], int]] = {}  # by token_lengths(), for score()

    # -- description --------------------------------------------------------------------------

    @property
    def dtype(self) -> str:
        return str(self.model.dtype).removeprefix("torch.")

    def template_name(self) -> str:
        return template_name(self._template)

    def describe(self) -> str:
        pad = (f"config pad id {self.native_pad_id}" if self.native_pad_id is not None
               else "none in config, an id unused by the batch")
        return (f"{self.spec} ({type(self.model).__name__}); revision: {self.resolved_revision}; "
                f"device: {self.device}; dtype: {self.dtype}; max length: {self.max_length}; "
                f"objectives: {', '.join(self.objectives) or 'score'}; template: {self.template_name()}; "
                f"pad: {pad}")

    @property
    def fingerprint(self) -> str:
        """sha256 over everything that can change a score, taken at load time."""
        return self._fingerprint

    def _fingerprint_parts(self) -> dict[str, Any]:
        """The spec, revision, config.json, weights (by content in a local directory), tokenizer,
        template, dtype, max length, labels and pad id."""
        return {
            "format": FORMAT_VERSION,
            "spec": self.spec,
            **model_identity(self.model, self._files, self.resolved_revision),
            "tokenizer": tokenizer_digest(self.tokenizer),
            "template": template_digest(self._template),
            "dtype": self.dtype,
            "max_length": self.max_length,
            "labels": [self.num_labels, self.objectives],
            "pad_id": self.native_pad_id,
            "runtime": _runtime(self.device),
        }

    @property
    def cacheable(self) -> bool:
        """Scores may go to the on-disk cache: the fingerprint pins the weights (a local directory by
        content, a hub model by its commit), unless the revision is a name that can move (``main``)."""
        return self.resolved_revision == "local" or _COMMIT.fullmatch(self.resolved_revision) is not None

    # -- scoring ------------------------------------------------------------------------------

    def render(self, pair: Pair) -> str:
        """The text the model sees for a pair: the chat template's output, or the plain fallback."""
        messages = pair.messages()
        if self._template is None:
            return prompt_to_text(tuple((m["role"], m["content"]) for m in messages))
        try:
            return self.tokenizer.apply_chat_template(messages, tokenize=False)
        except Exception as exc:  # jinja raises whatever the template author chose
            raise BackendError(f"{self.spec}: the chat template rejected a conversation ({exc})",
                               fix="Check the roles and their order (many templates require user/assistant turns)"
                               ) from None

    def encode(self, pair: Pair) -> tuple[dict[str, list[int]], int]:
        """Token ids of a pair (no double BOS) and how many tokens truncation cut."""
        return self.encode_many([pair])[0]

    def encode_many(self, pairs: Sequence[Pair]) -> list[tuple[dict[str, list[int]], int]]:
        """:meth:`encode` for many pairs, in batched tokenizer calls (several times faster than one by one)."""
        texts = [self.render(pair) for pair in pairs]
        bos = self.tokenizer.bos_token
        specials = [not (bos and text.startswith(bos)) for text in texts]
        rows = self._tokenize(texts, specials)
        full = [len(row["input_ids"]) for row in rows]
        long = [i for i, n in enumerate(full) if n > self.max_length]
        for i, row in zip(long, self._tokenize([texts[i] for i in long], [specials[i] for i in long], truncate=True)):
            rows[i] = row
        return [(row, n - len(row["input_ids"])) for row, n in zip(rows, full)]

    def _tokenize(self, texts: list[str], specials: list[bool], *, truncate: bool = False) -> list[dict[str, list[int]]]:
        """The tokenizer's rows for ``texts``, one call per ``add_special_tokens`` value, in order."""
        rows: list[dict[str, list[int]]] = [{} for _ in texts]
        limit = {"truncation": True, "max_length": self.max_length} if truncate else {}
        for special in set(specials):
            at = [i for i, flag in enumerate(specials) if flag == special]
            encoding = self.tokenizer([texts[i] for i in at], add_special_tokens=special, **limit)
            names = [name for name in self.tokenizer.model_input_names if name in encoding]
            for j, i in enumerate(at):
                rows[i] = {name: list(encoding[name][j]) for name in names}
        return rows

    def inputs(self, pairs: Sequence[Pair]) -> list[tuple[int, ...]]:
        """The token ids the model reads for each pair, after truncation (see ``backends.base.model_inputs``)."""
        return [tuple(row["input_ids"]) for row, _ in self.encode_many(pairs)]

    def token_lengths(self, pairs: Sequence[Pair]) -> list[int]:
        """How many tokens the model sees for each pair (after truncation): the scheduler's batch cost."""
        return [len(ids) for ids in self.token_ids(pairs)]

    def token_ids(self, pairs: Sequence[Pair]) -> list[list[int]]:
        """The token ids the model sees for each pair (after truncation), for the scheduler's batches and
        shared prefixes. The encodings of the latest call are kept for :meth:`score`, so a pair is tokenized once."""
        encoded = self.encode_many(pairs)
        self._encoded = dict(zip(pairs, encoded))
        self._warn_truncation([cut for _, cut in encoded])
        return [row["input_ids"] for row, _ in encoded]

    def _encodings(self, pairs: Sequence[Pair]) -> list[tuple[dict[str, list[int]], int]]:
        """Encodings of ``pairs``: those :meth:`token_lengths` kept (released now), the rest encoded."""
        distinct = list(dict.fromkeys(pairs))
        found = {p: self._encoded.pop(p) for p in distinct if p in self._encoded}
        missing = [p for p in distinct if p not in found]
        found.update(zip(missing, self.encode_many(missing)))
        return [found[p] for p in pairs]

    def score(self, pairs: Sequence[Pair]) -> list[Scores]:
        if not pairs:
            return []
        import torch

        rows, cuts = zip(*self._encodings(pairs))
        self._warn_truncation(cuts)
        batch = right_pad(rows, self.pad_id([row["input_ids"] for row in rows]))
        with torch.inference_mode():
            output = self.model(**{k: v.to(self.device) for k, v in batch.items()})
        if self.gated:
            return normalise_scores(self._gated_scores(output), len(pairs), self.spec)
        return self.scores_from_logits(output.logits.float().cpu().tolist())

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
        """The id to right-pad with, such that the head still pools each sequence's own last token.

        Decoder heads pool the rightmost token that is not ``config.pad_token_id``; with right padding
        and causal attention that token, and so the score, is the same alone or in any batch. A model
        with no pad id pools the last token when alone; to keep that in a batch (even when the text
        ends with EOS, where padding with EOS would shift the pooled token), pad with an id the batch
        does not contain and tell the head about it.
        """
        if self.native_pad_id is not None:
            return self.native_pad_id
        used = set(itertools.chain.from_iterable(ids))
        pad = next(i for i in itertools.count() if i not in used)
        self._head_config.pad_token_id = pad
        return pad

    def _warn_truncation(self, cuts: Sequence[int]) -> None:
        cut = [n for n in cuts if n]
        if cut and not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(f"{self.spec}: {len(cut)} of {len(cuts)} pairs are longer than max length "
                          f"{self.max_length} and were truncated ({max(cut)} tokens cut at most, "
                          f"{self.tokenizer.truncation_side} side); their scores ignore the cut text",
                          stacklevel=3)


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


# -- loading ------------------------------------------------------------------------------------


def load_pretrained(spec: str, source: str, revision: str | None, options: ModelOptions,
          auto_class: str = "AutoModelForSequenceClassification") -> tuple[Any, Any, Any]:
    """Tokenizer, model (eval mode, on its device) and device, or one clear BackendError.

    ``auto_class`` names the transformers Auto class that builds the model (``AutoModelForCausalLM`` for dpo:).
    """
    _check_local_path(spec, source, revision)
    import torch
    import transformers

    device, dtype = _device(options.device), _dtype(options.dtype, torch)
    common = {"revision": revision, "trust_remote_code": options.trust_remote_code}
    try:
        _check_remote_code(spec, transformers.AutoConfig.from_pretrained(source, **common), auto_class, options)
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **common)
        model = getattr(transformers, auto_class).from_pretrained(source, dtype=dtype, **common)
        model.to(device)
    except BackendError:
        raise
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ImportError, ...
        raise BackendError(f"cannot load {spec}: {_first_line(exc)}", fix=_load_fix(exc, source)) from None
    return tokenizer, model.eval(), device


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
    looks_local = source.startswith((".", "/", "~", "\\")) or path.is_absolute() or "\\" in source
    if looks_local and not path.exists():
        raise BackendError(f"{spec}: no such model directory {str(path.resolve())!r}",
                           fix="Pass an existing directory holding config.json and the weights, or a hub id ORG/NAME")
    if path.is_dir() and not (path / "config.json").is_file():
        raise BackendError(f"{spec}: no config.json in {str(path.resolve())!r}",
                           fix="Pass the directory that save_pretrained() wrote (config.json, weights, tokenizer)")
    if path.exists() and revision:
        raise BackendError(f"{spec}: a revision applies to hub models, not to the local path {str(path.resolve())!r}",
                           fix=f"Drop '@{revision}', or check out that revision into the directory")


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


def default_max_length(tokenizer: Any, config: Any) -> int:
    """min(tokenizer.model_max_length, the model's position limit, 4096)."""
    limits = [tokenizer.model_max_length, getattr(config.get_text_config(), "max_position_embeddings", None),
              DEFAULT_MAX_LENGTH]
    return min(int(n) for n in limits if n)


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


def right_pad(rows: Sequence[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Tensors of equal-length rows: ``input_ids`` padded with ``pad_id``, the other inputs with 0."""
    import torch

    width = max(len(row["input_ids"]) for row in rows)
    return {name: torch.tensor([row[name] + [pad_id if name == "input_ids" else 0] * (width - len(row[name]))
                                for row in rows])
            for name in rows[0]}


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


def _runtime(device: Any) -> dict[str, str]:
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
