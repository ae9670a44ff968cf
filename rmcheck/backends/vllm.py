"""What each vLLM version needs to hand back raw scores, and how to tell that an answer was activated.

vLLM's pooling API changed how a client turns the classifier's activation (sigmoid for one label,
softmax for several) off:

- before 0.10 there is no per-request switch: activation is fixed when the server starts (its pooler
  config), so rmcheck refuses such a server unless told it was started raw (``?activation=off``) or
  that activated scores are acceptable (``?activation=ok``);
- the 0.10 series takes ``activation`` (classification models) or ``softmax`` (token-level reward
  models) per request, and rejects the field its task does not use with HTTP 400, so the client tries
  ``activation`` first and falls back to ``softmax`` once;
- 0.11 and later take ``use_activation`` (the older names are deprecated, then dropped and ignored).

A server without ``GET /version`` (a proxy, or something vLLM-compatible) gets ``use_activation``, the
current name. Whatever was sent, :class:`ActivationCheck` looks at the first answers: one-label scores
that all lie in (0, 1), or rows that all sum to 1, are probabilities, never raw scores.
"""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from typing import Sequence

from ..errors import BackendError, ScoreError

#: The first version with per-request activation control, and the first with ``use_activation``.
PER_REQUEST = (0, 10)
USE_ACTIVATION = (0, 11)
#: One-label scores seen before deciding whether they are probabilities.
SAMPLE = 4
ACTIVATION_OPTIONS = ("", "ok", "off")
RAW_FIX = ("restart vLLM with activation off (--pooler-config '{\"use_activation\": false}'; before 0.11 "
           "--override-pooler-config '{\"softmax\": false}') and add ?activation=off, or add ?activation=ok "
           "to use probabilities as they are")


def parse_version(text: object) -> tuple[int, ...] | None:
    """``"0.10.1rc2.dev3+g12"`` -> ``(0, 10, 1)``; None when it does not start with a number."""
    found = re.match(r"v?(\d+(?:\.\d+)*)", str(text).strip()) if text is not None else None
    return tuple(int(n) for n in found.group(1).split(".")) if found else None


@dataclass
class Protocol:
    """The raw-score fields one server takes: candidates in order, the first until the server rejects it."""

    version: str | None
    candidates: list[dict[str, bool]]
    chosen: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def fields(self) -> dict[str, bool]:
        return self.candidates[self.chosen] if self.candidates else {}

    def fall_back(self, sent: dict[str, bool], message: str) -> bool:
        """After an HTTP 400 that names a field we sent: move to the next candidate (True) if there is one."""
        with self._lock:
            if sent is not self.fields:  # another request already moved on: just resend
                return True
            if self.chosen + 1 < len(self.candidates) and any(name in message for name in sent):
                self.chosen += 1
                return True
            return False


def protocol_for(version: str | None, url: str, activation: str) -> Protocol:
    """The raw-score request fields for a vLLM server reporting ``version`` (None: no ``/version``)."""
    number = parse_version(version)
    if number is None or number >= USE_ACTIVATION:
        return Protocol(version, [{"use_activation": False}])
    if number >= PER_REQUEST:
        return Protocol(version, [{"activation": False}, {"softmax": False}])
    if activation in ("ok", "off"):
        return Protocol(version, [])
    raise BackendError(f"vLLM {version} at {url} applies sigmoid/softmax to every score and cannot turn it off "
                       f"per request (vLLM >= 0.10 can)", where="--rm", fix=f"Upgrade vLLM, or {RAW_FIX}")


class ActivationCheck:
    """Refuses answers that look activated, over the first answers (unless ``?activation=ok``)."""

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
