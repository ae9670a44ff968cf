"""Chat completions through the official ``openai`` client: settings, cassettes, one-line errors.

Used by the ``llm_rewrite`` operator and the ``openai:MODEL`` judge. Settings come, first
found wins, from the caller (suite arguments or the model spec), the ``[tool.rmcheck.llm]``
table of the nearest pyproject.toml, then the standard ``OPENAI_BASE_URL`` / ``OPENAI_MODEL``
/ ``OPENAI_API_KEY`` environment variables. The key itself is only ever read from the
environment (``api_key_env`` names the variable), never from a file.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from .cassette import Cassette, public_url, redact
from ..errors import RmcheckError
from ..options import pyproject_setting

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
#: Sent when the key variable is unset: local OpenAI-compatible servers (vLLM, Ollama) accept any key.
PLACEHOLDER_KEY = "not-set"
MAX_SHOWN = 200


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible chat endpoint and how patiently to call it."""

    base_url: str = DEFAULT_BASE_URL
    api_key_env: str = DEFAULT_KEY_ENV
    timeout: float = 60.0
    max_retries: int = 3

    @property
    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "") or PLACEHOLDER_KEY

    def secrets(self) -> tuple[str, ...]:
        key = self.api_key
        return () if key == PLACEHOLDER_KEY else (key,)


def settings_table(start: Path, *sections: str) -> dict[str, Any]:
    """``[tool.rmcheck.SECTION]`` tables of the nearest pyproject.toml, later sections winning."""
    merged: dict[str, Any] = {}
    for section in sections:
        table = pyproject_setting(start, section) or {}
        if not isinstance(table, Mapping):
            raise RmcheckError(f"[tool.rmcheck.{section}] must be a table", where="pyproject.toml",
                               fix=f"Write [tool.rmcheck.{section}] with keys such as base_url, model")
        merged.update(table)
    return merged


def endpoint(table: Mapping[str, Any], *, base_url: str | None = None, where: str) -> Endpoint:
    """The endpoint from explicit values, a settings table and the environment."""
    url = base_url or table.get("base_url") or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    try:
        found = Endpoint(str(url), str(table.get("api_key_env", DEFAULT_KEY_ENV)),
                         float(table.get("timeout", 60.0)), int(table.get("max_retries", 3)))
    except (TypeError, ValueError) as exc:
        raise RmcheckError(f"bad LLM setting: {exc}", where=where,
                           fix="timeout is seconds (a number), max_retries a whole number") from None
    if found.timeout <= 0 or found.max_retries < 0:
        raise RmcheckError("LLM timeout must be > 0 and max_retries >= 0", where=where)
    return found


def model_name(explicit: str | None, table: Mapping[str, Any], *, where: str) -> str:
    name = explicit or table.get("model") or os.environ.get("OPENAI_MODEL")
    if not name:
        raise RmcheckError("no LLM model named", where=where,
                           fix="Give 'model:' in the perturb, [tool.rmcheck.llm] model in pyproject.toml, or OPENAI_MODEL")
    return str(name)


_CLIENTS: dict[tuple[str, str, float, int], Any] = {}


def _client(ep: Endpoint) -> Any:
    try:
        import openai
    except ImportError:
        raise RmcheckError("the openai package is not installed", fix='pip install "rmcheck[openai]"') from None
    key = (ep.base_url, ep.api_key, ep.timeout, ep.max_retries)
    if key not in _CLIENTS:
        _CLIENTS[key] = openai.OpenAI(base_url=ep.base_url, api_key=ep.api_key, timeout=ep.timeout,
                                      max_retries=ep.max_retries)
    return _CLIENTS[key]


def chat(ep: Endpoint, cassette: Cassette, request: Mapping[str, Any], parse: Callable[[dict[str, Any]], T]) -> T:
    """``parse`` of the chat completion for ``request`` (keyword arguments of ``chat.completions.create``).

    The answer is replayed from or recorded to ``cassette``, keyed by the request and the
    base URL without credentials. ``parse`` gets ``{"model", "choices": [{"message": {"content"},
    "logprobs", ...}]}`` and raises :class:`RmcheckError` for an answer it cannot use.
    """
    recorded = {**request, "base_url": public_url(ep.base_url)}

    def live() -> dict[str, Any]:
        import openai

        try:
            completion = _client(ep).chat.completions.create(**request)
        except (openai.OpenAIError, ValueError) as exc:  # ValueError: a body that is not JSON
            raise _error(exc, ep) from None
        if not hasattr(completion, "choices"):
            raise RmcheckError(f"the LLM at {public_url(ep.base_url)} sent a malformed answer: "
                               f"{_shown(str(completion), ep)}", fix="Point base_url at an OpenAI-compatible /v1 endpoint")
        answer = completion.model_dump(mode="json", exclude_none=True)
        return {"model": answer.get("model"), "choices": answer.get("choices", [])}

    return cassette.call(recorded, live, parse)


def contents(answer: Mapping[str, Any]) -> list[str]:
    """The text of every choice of an answer (an empty string where a choice has none)."""
    return [str((choice.get("message") or {}).get("content") or "") for choice in answer.get("choices", [])]


def _shown(text: str, ep: Endpoint) -> str:
    text = redact(" ".join(text.split()), ep.secrets())
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


def _error(exc: Exception, ep: Endpoint) -> RmcheckError:
    """One line for a failed call: what happened, where, and the fix; the key never appears."""
    import openai

    url = public_url(ep.base_url)
    tries = f"{ep.max_retries + 1} attempt(s)"
    if isinstance(exc, openai.APITimeoutError):
        return RmcheckError(f"the LLM at {url} did not answer within {ep.timeout:g} s ({tries})",
                            fix="Raise timeout in [tool.rmcheck.llm], or check the server's load")
    if isinstance(exc, openai.APIConnectionError):
        return RmcheckError(f"cannot reach the LLM at {url} ({tries})",
                            fix="Start the server, or set base_url (the perturb, [tool.rmcheck.llm] or OPENAI_BASE_URL)")
    if isinstance(exc, openai.AuthenticationError):
        return RmcheckError(f"the LLM at {url} refused the API key (HTTP 401)", fix=f"Set {ep.api_key_env} to a valid key")
    if isinstance(exc, openai.RateLimitError):
        return RmcheckError(f"the LLM at {url} rate-limited every attempt (HTTP 429, {tries})",
                            fix="Wait, lower [tool.rmcheck.judge] concurrency, or raise max_retries")
    if isinstance(exc, openai.APIStatusError):
        retried = f" ({tries})" if exc.status_code in (408, 409) or exc.status_code >= 500 else ""
        message = re.sub(r"^Error code: \d+ - ", "", str(exc.message))
        return RmcheckError(f"HTTP {exc.status_code} from the LLM at {url}{retried}: {_shown(message, ep)}",
                            fix="Check the model name and the server's log")
    return RmcheckError(f"the LLM at {url} sent a malformed answer ({type(exc).__name__}: {_shown(str(exc), ep)})",
                        fix="Point base_url at an OpenAI-compatible /v1 endpoint")
