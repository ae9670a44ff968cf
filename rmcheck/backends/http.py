"""``http://HOST:PORT`` (or ``https://``): a reward model served over vLLM's pooling API.

Works against ``rmcheck serve`` and against ``vllm serve MODEL --runner pooling`` (a reward
or sequence-classification model). The exact exchange:

``GET /v1/models`` (once, at load) ->
``{"object": "list", "data": [{"id": MODEL, "root": ..., "rmcheck": {"fingerprint", "description",
"objectives", "cacheable"}}]}``; ``rmcheck`` is present only from ``rmcheck serve``. The first model is used.
The fingerprint is the served model's own (rmcheck serve), else the URL, id and root (vLLM: names only,
so those scores never go to the on-disk cache).

``POST /pooling``, one request per pair, ``concurrency`` at a time (vLLM batches what
arrives together; so does ``rmcheck serve``)::

    {"model": MODEL, "messages": [...prompt turns..., {"role": "assistant", "content": RESPONSE}],
     "use_activation": false}
 -> {"object": "list", "model": MODEL, "data": [{"index": 0, "object": "pooling", "data": VALUES}],
     "rmcheck": {"labels": ["score", ...]}}

``VALUES`` is one value per label (``[0.7]``, a number, or ``[[...], ...]`` per token, of
which the last token's row is used). Labels come from ``rmcheck.labels``; without them one
value is the score and several are objectives ``LABEL_0``, ``LABEL_1``, ... (overall: their
mean). ``use_activation: false`` asks vLLM for raw logits rather than sigmoid/softmax
probabilities (vLLM before 0.10 ignores it).

Spec options as a query string: ``?timeout=60&retries=3&concurrency=16&backoff=0.5&api_key_env=NAME``
(the last sends ``Authorization: Bearer $NAME``, e.g. for ``vllm serve --api-key``).
Connection errors, timeouts, 408, 429 and 5xx are retried ``retries`` times with exponential
backoff (``Retry-After`` honoured up to 30 s); other errors and malformed JSON fail at once.
A batch with any failed pair raises, so nothing from a failed call reaches a cache.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ..errors import BackendError, ScoreError
from .base import ModelOptions, Pair, Scores, normalise_scores, register_backend

FORMAT_VERSION = "http-pooling/1"
MAX_RETRY_AFTER = 30.0
SHOWN = 160
RETRIED_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class Settings:
    """How patiently and how widely to call the server."""

    timeout: float = 60.0
    retries: int = 3
    concurrency: int = 16
    backoff: float = 0.5
    api_key_env: str = ""


@register_backend("http")
def build(rest: str, options: ModelOptions) -> HTTPRewardModel:
    return HTTPRewardModel(rest)


def parse_spec(spec: str) -> tuple[str, Settings]:
    """``http://host:port/prefix?timeout=5`` -> (``http://host:port/prefix``, Settings(timeout=5))."""
    parts = urlsplit(spec.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BackendError(f"bad server URL {spec!r}", where="--rm",
                           fix="Write http://HOST:PORT (e.g. http://127.0.0.1:8000)")
    path = parts.path.rstrip("/").removesuffix("/v1")
    query = dict(parse_qsl(parts.query))
    fields = {"timeout": float, "retries": int, "concurrency": int, "backoff": float, "api_key_env": str}
    unknown = sorted(set(query) - set(fields))
    if unknown:
        raise BackendError(f"unknown option {unknown[0]!r} in {spec}", where="--rm",
                           fix=f"Options are: {', '.join(fields)}")
    try:
        settings = Settings(**{k: fields[k](v) for k, v in query.items()})
    except ValueError as exc:
        raise BackendError(f"bad option in {spec}: {exc}", where="--rm",
                           fix="Use numbers, e.g. ?timeout=30&retries=2") from None
    if settings.timeout <= 0 or settings.retries < 0 or settings.concurrency < 1 or settings.backoff < 0:
        raise BackendError(f"out-of-range option in {spec}", where="--rm",
                           fix="timeout > 0, retries >= 0, concurrency >= 1, backoff >= 0")
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), settings


class _Retryable(Exception):
    """A failure worth another attempt; ``what`` describes it for the final error."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.what, self.retry_after = what, retry_after


class HTTPRewardModel:
    """A served reward model; every pair is one ``POST /pooling``."""

    def __init__(self, spec: str) -> None:
        self.spec = spec.strip()
        self.url, self.settings = parse_spec(self.spec)
        url = self.url
        parts = urlsplit(url)
        self._scheme, self._host, self._port, self._prefix = parts.scheme, parts.hostname or "", parts.port, parts.path
        self._local = threading.local()  # one kept-alive connection per thread
        self._pool: ThreadPoolExecutor | None = None
        try:
            listing = self._call("GET", "/v1/models")
        except BackendError as exc:
            raise BackendError(exc.message, where="--rm",
                               fix="Start one with `rmcheck serve --rm SPEC --port N` (or vLLM), or check the URL") from None
        card = _first_model(listing, url)
        self.served_id = str(card["id"])
        extension = card.get("rmcheck") or {}
        self.objectives: tuple[str, ...] = tuple(extension.get("objectives") or ())
        self._description = str(extension.get("description") or self.served_id)
        served = extension.get("fingerprint")
        #: rmcheck serve advertises the served model's own fingerprint: it alone fixes the scores, wherever
        #: they are served. vLLM advertises names only, so its scores are keyed by URL and name, never cached.
        identity = [FORMAT_VERSION, served] if served else [FORMAT_VERSION, url, self.served_id, card.get("root")]
        self._fingerprint = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
        self.cacheable = bool(served) and extension.get("cacheable") is True

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def describe(self) -> str:
        return f"{self.url} serving {self._description}"

    def score(self, pairs: Sequence[Pair]) -> list[Scores]:
        if not pairs:
            return []
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="rmcheck-http")
        futures = [self._pool.submit(self._score_one, pair) for pair in pairs]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:  # after a failure, send nothing more; let calls in flight end
            future.cancel()
        wait(futures)
        failed = next((f for f in futures if not f.cancelled() and f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
        return [f.result() for f in futures]

    def _score_one(self, pair: Pair) -> Scores:
        body = {"model": self.served_id, "messages": pair.messages(), "use_activation": False}
        answer = self._call("POST", "/pooling", body)
        try:
            values = _values(answer["data"][0]["data"])
            labels = (answer.get("rmcheck") or {}).get("labels") or (
                ["score"] if len(values) == 1 else [f"LABEL_{i}" for i in range(len(values))])
            if len(labels) != len(values):
                raise ValueError(f"{len(labels)} labels for {len(values)} values")
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ScoreError(f"unexpected answer from {self.url}/pooling ({exc}): {_short(json.dumps(answer))}",
                             fix="Serve a reward or classification model (vLLM: --runner pooling)") from None
        (scores,) = normalise_scores([dict(zip(labels, values))], 1, self.spec)
        return scores

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON exchange, with bounded retries; raises one clear :class:`BackendError`."""
        settings = self.settings
        for attempt in range(settings.retries + 1):
            try:
                return self._once(method, path, body)
            except _Retryable as exc:
                last = exc
                if attempt < settings.retries:
                    time.sleep(min(exc.retry_after if exc.retry_after is not None else settings.backoff * 2 ** attempt,
                                   MAX_RETRY_AFTER))
        raise BackendError(f"{last.what} at {self.url}{path} after {settings.retries + 1} attempt(s)",
                           fix=_fix(last.what))

    def _once(self, method: str, path: str, body: Any) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.settings.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ.get(self.settings.api_key_env, '')}"
        try:
            status, retry_after, raw = self._exchange(method, self._prefix + path, data, headers)
        except TimeoutError:
            raise _Retryable(f"no answer within {self.settings.timeout:g} s") from None
        except (ConnectionRefusedError, socket.gaierror) as exc:
            raise _Retryable(f"cannot connect ({_reason(exc)})") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Retryable(f"connection lost ({_reason(exc)})") from None
        if status >= 400:
            message = _server_message(raw)
            if status in RETRIED_STATUS:
                raise _Retryable(f"HTTP {status}: {message}", _retry_after(retry_after))
            raise BackendError(f"HTTP {status} from {self.url}{path}: {message}", fix=_fix(f"HTTP {status}"))
        try:
            return json.loads(raw)
        except ValueError:
            raise BackendError(f"malformed JSON from {self.url}{path}: {_short(raw.decode('utf-8', 'replace'))!r}",
                               fix="Point --rm at a vLLM-compatible pooling server (rmcheck serve or vllm serve)") from None

    def _exchange(self, method: str, path: str, data: bytes | None, headers: dict[str, str]
                  ) -> tuple[int, str | None, bytes]:
        """One request on this thread's kept-alive connection; one the server closed while idle is reopened once."""
        reused = getattr(self._local, "connection", None) is not None
        try:
            return self._send(method, path, data, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            return self._send(method, path, data, headers)

    def _send(self, method: str, path: str, data: bytes | None, headers: dict[str, str]
              ) -> tuple[int, str | None, bytes]:
        connection = self._connection()
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheader("Retry-After"), response.read()
        except BaseException:
            self._drop()
            raise

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            connection = self._local.connection = kind(self._host, self._port, timeout=self.settings.timeout)
        return connection

    def _drop(self) -> None:
        connection, self._local.connection = getattr(self._local, "connection", None), None
        if connection is not None:
            connection.close()


def _first_model(listing: Any, url: str) -> dict[str, Any]:
    try:
        card = listing["data"][0]
        str(card["id"])
        return card
    except (KeyError, IndexError, TypeError):
        raise BackendError(f"{url}/v1/models lists no model: {_short(json.dumps(listing))}", where="--rm",
                           fix="Point --rm at a vLLM-compatible server (rmcheck serve or vllm serve)") from None


def _values(data: Any) -> list[float]:
    """A pooling output as one value per label: a number, a list, or per-token rows (the last row)."""
    if isinstance(data, (int, float)):
        return [data]
    if isinstance(data, list) and data and isinstance(data[-1], list):
        return list(data[-1])
    if isinstance(data, list) and data:
        return list(data)
    raise ValueError(f"pooling data {data!r} is neither a number nor a list of numbers")


def _fix(what: str) -> str:
    if what.startswith(("cannot connect", "connection lost")):
        return ("Start the server (rmcheck serve --rm SPEC --port N, or vllm serve) and check the host and port; "
                "nothing from the failed batch was cached")
    if what.startswith("no answer"):
        return "Raise ?timeout=SECONDS in the spec, or lower ?concurrency=N; nothing from the failed batch was cached"
    if what.startswith("HTTP 429"):
        return "The server is rate-limiting: lower ?concurrency=N or raise ?retries=N"
    if what.startswith("HTTP 404"):
        return "Is it a pooling server? vLLM needs a reward/classification model (--runner pooling)"
    return "See the server's log; nothing from the failed batch was cached"


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _server_message(raw: bytes) -> str:
    """The ``message`` of an OpenAI/vLLM error body (``{"error": {"message"}}`` or ``{"message"}``), else the text."""
    text = raw.decode("utf-8", "replace")
    try:
        body = json.loads(text)
        error = body.get("error", body)
        return _short(str(error.get("message", error) if isinstance(error, dict) else error))
    except (ValueError, AttributeError):
        return _short(text)


def _reason(reason: Any) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."
