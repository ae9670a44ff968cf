"""Replicas of one served model: JSON over kept-alive connections, health with backoff, adaptive
concurrency, and a consistent-hash ring that sends every pair of one prompt to the same replica.

A :class:`Replica` makes one attempt at a time and says how it went: the answer, a :class:`Failure`
worth another attempt (refused, timed out, died, 408/429/5xx; the replica is then marked down with
exponential backoff), or a :class:`Rejected` request (any other status: the same on every replica).
Its in-flight requests are bounded by ``concurrency`` and, below that, by an adaptive limit: one more
after ``limit`` answers whose latency held (within twice the best seen), halved on 429 or a timeout.
Every message that quotes the server is stripped of the API key first. An answer is read up to
``max_answer_bytes`` and no further; one larger, or nested too deep to decode, is refused.
"""
from __future__ import annotations

import bisect
import hashlib
import http.client
import json
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

from ..errors import BackendError
from ..llm.cassette import redact

MAX_RETRY_AFTER = 30.0
MAX_BACKOFF = 30.0
SHOWN = 160
#: The largest answer read by default (``?max_answer_mb=``): a pooling answer is a few kilobytes.
MAX_ANSWER_BYTES = 16 * 2**20
RETRIED_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
OVERLOAD_STATUS = frozenset({429, 503})
#: Points per replica on the hash ring: enough for an even share of prompts with a handful of replicas.
VIRTUAL_NODES = 160
#: An answer's latency "holds" while it stays within this factor of the best seen (plus a little jitter).
LATENCY_HOLDS = 2.0
JITTER = 0.005


class Failure(Exception):
    """One failed attempt worth another (later here, or now on another replica)."""

    def __init__(self, what: str, retry_after: float | None = None, *, overload: bool = False) -> None:
        super().__init__(what)
        self.what, self.retry_after, self.overload = what, retry_after, overload


class Rejected(BackendError):
    """The server refused the request itself (4xx other than 408/429): another attempt would fail the same way."""

    def __init__(self, message: str, *, status: int, server_message: str, fix: str) -> None:
        super().__init__(message, fix=fix)
        self.status, self.server_message = status, server_message


class Replica:
    """One server: its connections (one per thread), its health and its concurrency limit."""

    def __init__(self, url: str, *, timeout: float, concurrency: int, backoff: float, api_key: str = "",
                 max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        parts = urlsplit(url)
        self.url = url
        self._scheme, self._host, self._port, self._prefix = parts.scheme, parts.hostname or "", parts.port, parts.path
        self.timeout, self.concurrency, self.backoff = timeout, concurrency, backoff
        self.max_answer_bytes = max_answer_bytes
        self._secret = api_key
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._local = threading.local()
        self._cond = threading.Condition()
        self.limit = float(max(1, concurrency // 2))
        self.in_flight = self.peak = 0
        self._streak = 0
        self._best = float("inf")
        self.down_until = 0.0
        self.failures = 0
        self.last_error = ""

    # -- health -------------------------------------------------------------------------------

    def is_down(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) < self.down_until

    def mark_down(self, failure: Failure) -> None:
        """Out of rotation for a while: ``backoff * 2**(n-1)`` after its n-th failure in a row (or Retry-After)."""
        with self._cond:
            now = time.monotonic()
            self.last_error = failure.what
            if failure.overload:
                self.limit = max(1.0, self.limit / 2)
                self._streak = 0
            if now < self.down_until:  # already down: the same outage
                return
            self.failures += 1
            wait = failure.retry_after if failure.retry_after is not None else self.backoff * 2 ** (self.failures - 1)
            self.down_until = now + min(wait, MAX_BACKOFF)

    # -- concurrency --------------------------------------------------------------------------

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the replica's in-flight places; an answer in time raises the limit, slowly."""
        with self._cond:
            while self.in_flight >= int(self.limit):
                self._cond.wait()
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        start, answered = time.monotonic(), False
        try:
            yield
            answered = True
        finally:
            with self._cond:
                self.in_flight -= 1
                if answered:
                    self._answered(time.monotonic() - start)
                self._cond.notify_all()

    def _answered(self, latency: float) -> None:
        self.failures = 0
        self._best = min(self._best, latency)
        if latency > LATENCY_HOLDS * self._best + JITTER:
            self._streak = 0
            return
        self._streak += 1
        if self._streak >= self.limit:
            self._streak = 0
            self.limit = min(float(self.concurrency), self.limit + 1)

    # -- exchanges ----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON exchange: the decoded answer, or :class:`Failure` / :class:`Rejected` / BackendError."""
        status, retry_after, raw = self.exchange(method, path, body)
        if status >= 400:
            message = self.server_message(raw)
            if status in RETRIED_STATUS:
                raise Failure(f"HTTP {status}: {message}", _seconds(retry_after), overload=status in OVERLOAD_STATUS)
            raise Rejected(f"HTTP {status} from {self.url}{path}: {message}", status=status, server_message=message,
                           fix=failure_fix(f"HTTP {status}"))
        try:
            return json.loads(raw)
        except ValueError:
            what = f"malformed JSON from {self.url}{path}: {self.quote(raw.decode('utf-8', 'replace'))!r}"
        except RecursionError:
            what = f"JSON nested too deep to decode from {self.url}{path}"
        raise BackendError(what, fix="Point --rm at a vLLM-compatible pooling server (rmcheck serve or vllm serve)")

    def request_with_retries(self, method: str, path: str, retries: int, body: Any = None) -> Any:
        """:meth:`request`, tried ``retries`` more times on failures worth it, here (no failover)."""
        for attempt in range(retries + 1):
            try:
                return self.request(method, path, body)
            except Failure as failure:
                last = failure
                if attempt < retries:
                    time.sleep(min(failure.retry_after if failure.retry_after is not None
                                   else self.backoff * 2 ** attempt, MAX_RETRY_AFTER))
        raise BackendError(f"{last.what} at {self.url}{path} after {retries + 1} attempt(s)", fix=failure_fix(last.what))

    def exchange(self, method: str, path: str, body: Any = None) -> tuple[int, str | None, bytes]:
        """Status, Retry-After and body of one request; connection trouble raises :class:`Failure`."""
        data = None if body is None else json.dumps(body).encode()
        try:
            return self._on_kept_alive(method, self._prefix + path, data)
        except TimeoutError:
            raise Failure(f"no answer within {self.timeout:g} s", overload=True) from None
        except (ConnectionRefusedError, socket.gaierror) as exc:
            raise Failure(f"cannot connect ({self.reason(exc)})") from None
        except (OSError, http.client.HTTPException) as exc:
            raise Failure(f"connection lost ({self.reason(exc)})") from None

    def _on_kept_alive(self, method: str, path: str, data: bytes | None) -> tuple[int, str | None, bytes]:
        """One request on this thread's kept-alive connection; one the server closed while idle is reopened once."""
        reused = getattr(self._local, "connection", None) is not None
        try:
            return self._send(method, path, data)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            return self._send(method, path, data)

    def _send(self, method: str, path: str, data: bytes | None) -> tuple[int, str | None, bytes]:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            connection = self._local.connection = kind(self._host, self._port, timeout=self.timeout)
        try:
            connection.request(method, path, body=data, headers=self._headers)
            response = connection.getresponse()
            return response.status, response.getheader("Retry-After"), self._read(response, path)
        except BaseException:
            self._local.connection = None
            connection.close()
            raise

    def _read(self, response: http.client.HTTPResponse, path: str) -> bytes:
        """The answer's body, refused (before reading it whole) when over ``max_answer_bytes``."""
        limit = self.max_answer_bytes
        declared = response.getheader("Content-Length", "")
        if not (declared.isdigit() and int(declared) > limit):
            body = response.read(limit + 1)
            if len(body) <= limit:
                return body
        raise BackendError(f"the answer from {self.url}{path} is over {limit / 2**20:g} MB",
                           fix="Check the server (a pooling answer is a few kilobytes), or raise ?max_answer_mb=N")

    # -- what the user sees -------------------------------------------------------------------

    def quote(self, text: str) -> str:
        """Server text as shown to the user: the API key removed (before shortening), one line, bounded."""
        text = " ".join(redact(text, [self._secret]).split())
        return text if len(text) <= SHOWN else text[:SHOWN] + "..."

    def server_message(self, raw: bytes) -> str:
        """The ``message`` of a vLLM/OpenAI error (``{"error": {"message"}}`` since vLLM 0.10.1, ``{"object":
        "error", "message"}`` before), else the text."""
        text = raw.decode("utf-8", "replace")
        try:
            body = json.loads(text)
            error = body.get("error", body)
            return self.quote(str(error.get("message", error) if isinstance(error, dict) else error))
        except (ValueError, AttributeError):
            return self.quote(text)

    def reason(self, exc: BaseException) -> str:
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused"
        return self.quote(f"{type(exc).__name__}: {exc}")


class Ring:
    """Consistent hashing: each key's replicas in order of preference (its own first, then the next ones)."""

    def __init__(self, replicas: Sequence[Replica]) -> None:
        points = sorted((_hash(f"{r.url}#{i}"), n) for n, r in enumerate(replicas) for i in range(VIRTUAL_NODES))
        self._hashes = [h for h, _ in points]
        self._owners = [n for _, n in points]
        self.replicas = list(replicas)

    def order(self, key: str) -> list[Replica]:
        start = bisect.bisect(self._hashes, _hash(key)) % len(self._hashes)
        seen: list[int] = []
        for n in self._owners[start:] + self._owners[:start]:
            if n not in seen:
                seen.append(n)
                if len(seen) == len(self.replicas):
                    break
        return [self.replicas[n] for n in seen]


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def failure_fix(what: str) -> str:
    if what.startswith(("cannot connect", "connection lost")):
        return ("Start the server (rmcheck serve --rm SPEC --port N, or vllm serve) and check the host and port; "
                "nothing from the failed batch was cached")
    if what.startswith("no answer"):
        return "Raise ?timeout=SECONDS in the spec, or lower ?concurrency=N; nothing from the failed batch was cached"
    if what.startswith("HTTP 429"):
        return "The server is rate-limiting: lower ?concurrency=N or raise ?retries=N"
    if what.startswith("HTTP 401"):
        return "Set the key the server expects in the variable ?api_key_env=NAME names"
    if what.startswith("HTTP 404"):
        return "Is it a pooling server? vLLM needs a reward/classification model (--runner pooling)"
    return "See the server's log; nothing from the failed batch was cached"


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
