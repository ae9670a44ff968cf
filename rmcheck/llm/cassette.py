"""Cassettes: recorded LLM answers, so CI replays LLM calls offline.

A cassette is a folder with one JSON file per request, ``<folder>/<key>.json``, where
``key`` is the SHA-256 of the request's canonical JSON (model, messages, sampling
settings, and the base URL without credentials). One file per request keeps concurrent
writers (pytest-xdist workers) apart, and makes a recording reviewable in a diff.

Modes (``--rmcheck-llm`` / ``--llm``):

- ``auto`` (default): replay a recorded answer; record a missing one by calling the LLM,
  except under ``CI=true``, where a missing answer is an error, never a silent call out;
- ``replay``: recorded answers only; a missing one is an error;
- ``record``: always call the LLM, and (re)write the answer;
- ``live``: always call the LLM; read and write nothing.

Only answers that parse are recorded. API keys never reach a cassette: requests carry no
headers, and any secret the caller names is redacted from the file before it is written.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..errors import RmcheckError

T = TypeVar("T")

MODES = ("auto", "replay", "record", "live")
FORMAT = 1
REDACTED = "<redacted>"


class CassetteError(RmcheckError):
    """A recorded answer that is missing (and may not be fetched) or unreadable."""


def in_ci() -> bool:
    """True under ``CI=true`` (or 1/yes), as CI services set it."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def public_url(url: str) -> str:
    """A base URL as it may be recorded: no ``user:password@``, no query string, no fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def request_key(request: Mapping[str, Any]) -> str:
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (of 8 characters or more) replaced by ``<redacted>``."""
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(secret, REDACTED)
    return text


@dataclass(frozen=True)
class Cassette:
    """Where answers are recorded, and the mode that says when to read, call and write."""

    folder: Path
    mode: str = "auto"
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise CassetteError(f"unknown LLM mode {self.mode!r}", where="--rmcheck-llm",
                                fix=f"Use one of: {', '.join(MODES)}")

    def path(self, request: Mapping[str, Any]) -> Path:
        return self.folder / f"{request_key(request)[:32]}.json"

    def call(self, request: Mapping[str, Any], live: Callable[[], dict[str, Any]],
             parse: Callable[[dict[str, Any]], T]) -> T:
        """``parse`` of the answer to ``request``: replayed, or fetched by ``live`` (and recorded if it parses)."""
        path = self.path(request)
        if self.mode in ("auto", "replay") and path.is_file():
            return parse(self._read(path))
        if self.mode == "replay" or (self.mode == "auto" and in_ci()):
            why = "--rmcheck-llm=replay" if self.mode == "replay" else "CI=true"
            raise CassetteError(
                f"no recorded LLM answer for this request (model {request.get('model')!r}; expected {path}) "
                f"and {why} forbids calling the LLM",
                fix="Record it where the LLM is reachable (pytest --rmcheck-llm=record, or rmcheck run --llm record) "
                    f"and commit {self.folder}")
        answer = live()
        parsed = parse(answer)
        if self.mode != "live":
            self._write(path, request, answer)
        return parsed

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            return entry["response"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CassetteError(f"unreadable cassette entry: {type(exc).__name__}: {exc}", where=str(path),
                                fix="Delete the file and record it again") from None

    def _write(self, path: Path, request: Mapping[str, Any], answer: dict[str, Any]) -> None:
        entry = {"rmcheck_cassette": FORMAT, "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "request": request, "response": answer}
        text = redact(json.dumps(entry, indent=2, ensure_ascii=False, sort_keys=True), self.secrets) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
