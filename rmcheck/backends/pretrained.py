"""The transformers toolkit that ``hf:`` reward models, ``dpo:`` policies and ``hf:?prm=`` process models share.

Loading (:func:`load_pretrained`: the Auto class, dtype, device, ``--attn-implementation``, ``--device-map`` and
``--max-memory``, remote-code and tokenizer checks, each failure one :class:`~rmcheck.errors.BackendError`), the
``ID_OR_PATH[@REVISION]`` spec, the model's own max length, and what pins a loaded model for fingerprints
(revision, config, weights and code by content, tokenizer, template, runtime). Chat templates are rendered and
tokenized by :mod:`.encoding`.
"""
from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

from ..errors import BackendError
from .base import ModelOptions

#: A limit above this is "no limit" (tokenizers without one say 1e30).
SANE_MAX_LENGTH = 10_000_000
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16", "auto": "auto"}
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")
PLAIN_TEMPLATE = "plain 'User:/Assistant:'"
_COMMIT = re.compile(r"[0-9a-f]{40}")
#: What tokenizer.save_pretrained() writes: its settings, and its vocabulary (a fast tokenizer's tokenizer.json,
#: or a slow one's vocabulary file: GPT-2/Qwen, BERT, Llama/Mistral, T5, XLM-R).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
VOCABULARY_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "tokenizer.model", "spiece.model",
                    "sentencepiece.bpe.model")


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
    check_local_path(spec, source, revision)
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


class LoadedModel:
    """What a model loaded with :func:`load_pretrained` (as ``self.model``) says of itself in descriptions."""

    model: Any

    @property
    def dtype(self) -> str:
        return str(self.model.dtype).removeprefix("torch.")

    @property
    def attn_implementation(self) -> str:
        return str(getattr(self.model.config, "_attn_implementation", None) or "default")


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


def check_local_path(spec: str, source: str, revision: str | None) -> None:
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


# -- what the loaded model is -----------------------------------------------------------------------


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
