"""What each vLLM version needs to hand back raw scores, and how to tell that an answer was activated.

vLLM applies the classifier's activation (sigmoid for one label, softmax for several) unless told not to.
What its ``POST /pooling`` chat request can say about it, read from each release's source:

- up to 0.11.0 nothing: the chat request (``PoolingChatRequest = EmbeddingChatRequest``) carries no
  activation field, so ``activation``/``softmax`` are extra fields, logged and ignored (0.10.1-0.11.0 have
  them in ``PoolingParams``, for ``/classify``, ``/score`` and offline use, never from ``/pooling``).
  Activation is fixed when the server starts (``--override-pooler-config '{"softmax": false}'``), so
  rmcheck refuses such a server unless told it was started raw (``?activation=off``) or that activated
  scores are acceptable (``?activation=ok``);
- from 0.11.1 ``use_activation``. 0.11.1 also takes ``softmax``/``activation`` but mis-parses them
  (``vllm/config/pooler.py``, ``get_use_activation``: ``x := ... is not None`` turns ``false`` into
  ``True``), so rmcheck never sends the old names; 0.16 dropped them.

A server without ``GET /version`` (a proxy, or something vLLM-compatible) gets ``use_activation``, the
current name. Whatever was sent, :class:`ActivationCheck` looks at each replica's first answers: one-label
scores that all lie in (0, 1), or rows that all sum to 1, are probabilities, never raw scores.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

from ..errors import BackendError, ScoreError

#: The first vLLM whose ``/pooling`` chat request turns activation off per request (``use_activation``).
USE_ACTIVATION = (0, 11, 1)
#: One-label scores seen before deciding whether they are probabilities.
SAMPLE = 4
ACTIVATION_OPTIONS = ("", "ok", "off")
RAW_FIX = ("restart vLLM with activation off (--pooler-config '{\"use_activation\": false}' from 0.11.1, "
           "--override-pooler-config '{\"softmax\": false}' before) and add ?activation=off, or add "
           "?activation=ok to use probabilities as they are")


def parse_version(text: object) -> tuple[int, ...] | None:
    """``"0.10.1rc2.dev3+g12"`` -> ``(0, 10, 1)``; None when it does not start with a number."""
    found = re.match(r"v?(\d+(?:\.\d+)*)", str(text).strip()) if text is not None else None
    return tuple(int(n) for n in found.group(1).split(".")) if found else None


@dataclass(frozen=True)
class Protocol:
    """The raw-score fields one server takes (none where it was started raw, or activation is accepted)."""

    version: str | None
    fields: dict[str, bool]


def protocol_for(version: str | None, url: str, activation: str) -> Protocol:
    """The raw-score request fields for a vLLM server reporting ``version`` (None: no ``/version``)."""
    number = parse_version(version)
    if number is None or number >= USE_ACTIVATION:
        return Protocol(version, {"use_activation": False})
    if activation in ("ok", "off"):
        return Protocol(version, {})
    raise BackendError(f"vLLM {version} at {url} applies sigmoid/softmax to every score and its /pooling takes no "
                       f"switch to turn it off (use_activation, from vLLM 0.11.1)", where="--rm",
                       fix=f"Upgrade vLLM to 0.11.1 or later, or {RAW_FIX}")


class ActivationCheck:
    """Refuses one replica's answers that look activated, over its first answers (unless ``?activation=ok``)."""

    def __init__(self, where: str, enabled: bool) -> None:
        self.where = where
        self.pending = enabled
        self._seen: list[float] = []

    def check(self, rows: Sequence[Sequence[float]]) -> None:
        if not self.pending or not rows:
            return
        if len(rows[0]) > 1:
            self.pending = False
            if all(abs(math.fsum(row) - 1.0) < 1e-4 and min(row) >= 0 for row in rows):
                self._refuse(f"each of the first {len(rows)} answers has {len(rows[0])} values that sum to 1 (softmax)")
            return
        self._seen.extend(row[0] for row in rows if len(row) == 1)
        if len(self._seen) >= SAMPLE:
            self.pending = False
            if all(0.0 < value < 1.0 for value in self._seen):
                self._refuse(f"all of the first {len(self._seen)} scores lie in (0, 1) (sigmoid)")

    def _refuse(self, what: str) -> None:
        raise ScoreError(f"{self.where} returns activated scores, not raw ones: {what}",
                         fix=f"Scores must be raw logits; {RAW_FIX}")
