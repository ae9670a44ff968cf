"""``http://HOST:PORT`` and ``http://HOST1:PORT1,HOST2:PORT2[,...][?options]``: a reward model served over
vLLM's pooling API, by one server or by several replicas of it.

Works against ``rmcheck serve`` and ``vllm serve MODEL --runner pooling`` (a reward or
sequence-classification model). The exchange, per replica:

``GET /v1/models`` -> ``{"data": [{"id", "root", "max_model_len", "rmcheck": {"fingerprint",
"description", "objectives", "cacheable"}}]}``; ``rmcheck`` comes only from ``rmcheck serve``. Every replica
that answers must advertise the same id, root and fingerprint. ``GET /version`` (vLLM only) picks the fields
that ask for raw scores (:mod:`rmcheck.backends.vllm`). The fingerprint is the served model's own (rmcheck
serve), else the URLs, id and root (vLLM: names only, so those scores never go to the on-disk cache). Loading
asks every replica at once and starts as long as one answers; the others are marked down and asked (card,
identity, version) when their backoff ends, as in scoring. It fails only when none answers, naming each URL.

``POST /pooling``, one request per pair::

    {"model": MODEL, "messages": [...prompt turns..., {"role": "assistant", "content": RESPONSE}],
     "use_activation": false}            (nothing before vLLM 0.11.1: see rmcheck.backends.vllm)
 -> {"data": [{"index": 0, "object": "pooling", "data": VALUES}], "rmcheck": {"labels": ["score", ...]}}

``VALUES`` is one value per label (``[0.7]``, a number, or per-token rows, of which the last is used).
Labels come from ``rmcheck.labels``; without them one value is the score and several are objectives
``LABEL_0``, ``LABEL_1``, ... (overall: their mean). An answer is refused, with its URL, when it is not one
output of finite numbers, when its labels are not those ``rmcheck serve`` advertised, or when its number of
values differs from earlier answers'. A replica whose answers look activated (one-label scores all in (0, 1),
or rows summing to 1) is refused unless ``?activation=ok``: each replica is checked on its own.

Replicas: every pair of one prompt goes to the same replica (consistent hashing on the prompt), so
each replica's prefix cache stays warm. A replica that refuses, times out, dies or answers 408/429/5xx
is marked down with exponential backoff and its pairs go to the next replica on the ring; it is tried
again once its backoff ends. A pair fails only after ``retries + 1`` attempts per replica, with one
error naming every URL. A batch with any failed pair raises, so nothing from it reaches a cache.

Other server APIs: ``?protocol=rerank|tei-rerank|tei-predict|sglang-classify`` (:mod:`rmcheck.backends.wire`):
the same replicas, routing and checks, another card route, request and answer.

Process reward models: ``?steps=on[&step_tag=<extra_0>&system=TEXT&good=1]`` (:class:`HTTPProcessModel`): vLLM's
step pooling, one score per step.

Options: ``?timeout=60&retries=3&concurrency=16&backoff=0.5&api_key_env=NAME&activation=ok|off&max_answer_mb=16``
``&protocol=pooling&tokenizer=PATH_OR_ID&steps=on&step_tag=TEXT&system=TEXT&good=INDEX``.
``concurrency`` bounds the requests in flight per replica (below it the limit adapts: up while latency
holds, halved on 429 and timeouts); ``api_key_env`` sends ``Authorization: Bearer $NAME`` (``vllm serve
--api-key``) and the key is removed from every server message shown; ``activation=off`` says a vLLM
older than 0.11.1 was started with activation off, ``activation=ok`` accepts activated scores as they are;
``max_answer_mb`` bounds the bytes read of one answer; ``tokenizer`` is sglang-classify's (default: the card's root).
"""
from __future__ import annotations

import hashlib
import json
import os
import math
import queue
import threading
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ..errors import BackendError, ScoreError
from ..process.hf import DEFAULTS, QWEN, QWEN_SYSTEM
from ..process.model import Solution, checked_steps, lowest_step_scores
from .base import OVERALL, ModelOptions, Pair, Scores, normalise_scores, prompt_to_text
from .replicas import MAX_RETRY_AFTER, Failure, Rejected, Replica, Ring, failure_fix
from .vllm import ACTIVATION_OPTIONS, USE_ACTIVATION, ActivationCheck, Protocol, parse_version, protocol_for
from .wire import POOLING, Wire, number, shown, wire_for

QWEN_TAG = DEFAULTS[QWEN]["step_tag"]

FORMAT_VERSION = "http-pooling/1"
#: How far above its share of a batch one replica's load may go before prompts move to the next replica.
BALANCE = 0.05
#: A conversation of fewer UTF-8 bytes than this margin below ``max_model_len`` cannot exceed it.
TEMPLATE_MARGIN = 64


@dataclass(frozen=True)
class Settings:
    """How patiently and how widely to call the servers."""

    timeout: float = 60.0
    retries: int = 3
    concurrency: int = 16
    backoff: float = 0.5
    api_key_env: str = ""
    activation: str = ""
    max_answer_mb: float = 16.0
    protocol: str = POOLING
    tokenizer: str = ""
    steps: str = ""  # "on": a process reward model, one score per step (vLLM's step pooling)
    step_tag: str = QWEN_TAG
    system: str = QWEN_SYSTEM
    good: int = 1


@dataclass(frozen=True)
class Served:
    """What one replica said of itself when it first answered: its model card and vLLM version."""

    card: dict[str, Any]
    protocol: Protocol


@dataclass
class Routing:
    """Where pairs went: ``kept`` of ``pairs`` were answered by their prompt's own replica."""

    pairs: int = 0
    kept: int = 0

    @property
    def affinity(self) -> float:
        return self.kept / self.pairs if self.pairs else 1.0


def build(rest: str, options: ModelOptions) -> HTTPRewardModel:
    return HTTPProcessModel(rest) if parse_spec(rest)[1].steps == "on" else HTTPRewardModel(rest)


def parse_spec(spec: str) -> tuple[list[str], Settings]:
    """``http://a:1,b:2/prefix?timeout=5`` -> (``[http://a:1/prefix, http://b:2/prefix]``, Settings(timeout=5))."""
    usage = "Write http://HOST:PORT or http://HOST1:PORT1,HOST2:PORT2 (e.g. http://127.0.0.1:8000)"
    parts = urlsplit(spec.strip())
    hosts = parts.netloc.split(",")
    if parts.scheme not in ("http", "https") or not all(hosts):
        raise BackendError(f"bad server URL {spec!r}", where="--rm", fix=usage)
    path = parts.path.rstrip("/").removesuffix("/v1")
    urls = []
    for host in hosts:
        try:
            one = urlsplit(f"{parts.scheme}://{host}")
            one.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            one = None
        if one is None or not one.hostname or one.username is not None:
            raise BackendError(f"bad host {host!r} in {spec!r}", where="--rm", fix=usage)
        urls.append(urlunsplit((parts.scheme, host, path, "", "")))
    if len(set(urls)) < len(urls):
        raise BackendError(f"a replica is listed twice in {spec!r}", where="--rm", fix="List each HOST:PORT once")
    return urls, _settings(spec, dict(parse_qsl(parts.query, keep_blank_values=True)))


def _settings(spec: str, query: dict[str, str]) -> Settings:
    fields = {"timeout": float, "retries": int, "concurrency": int, "backoff": float, "api_key_env": str,
              "activation": str, "max_answer_mb": float, "protocol": str, "tokenizer": str, "steps": str,
              "step_tag": str, "system": str, "good": int}
    unknown = sorted(set(query) - set(fields))
    if unknown:
        raise BackendError(f"unknown option {unknown[0]!r} in {spec}", where="--rm",
                           fix=f"Options are: {', '.join(fields)}")
    try:
        settings = Settings(**{k: fields[k](v) for k, v in query.items()})
    except ValueError as exc:
        raise BackendError(f"bad option in {spec}: {exc}", where="--rm",
                           fix="Use numbers, e.g. ?timeout=30&retries=2") from None
    if (settings.timeout <= 0 or settings.retries < 0 or settings.concurrency < 1 or settings.backoff < 0
            or not 0 < settings.max_answer_mb < math.inf):
        raise BackendError(f"out-of-range option in {spec}", where="--rm",
                           fix="timeout > 0, retries >= 0, concurrency >= 1, backoff >= 0, max_answer_mb > 0")
    _check_steps(spec, settings, set(query))
    if settings.activation not in ACTIVATION_OPTIONS:
        raise BackendError(f"activation={settings.activation} in {spec}", where="--rm",
                           fix="Use activation=ok (accept activated scores) or activation=off (the server was "
                               "started with activation off)")
    return settings


def _check_steps(spec: str, settings: Settings, given: set[str]) -> None:
    """``steps=on`` with its options, over vLLM's pooling API only."""
    step_options = sorted(given & {"step_tag", "system", "good"})
    if settings.steps not in ("", "on", "off"):
        raise BackendError(f"steps={settings.steps} in {spec}", where="--rm",
                           fix="Use steps=on for a served process reward model (vLLM step pooling), else leave it out")
    if settings.steps != "on" and step_options:
        raise BackendError(f"{step_options[0]}= in {spec} applies with steps=on only", where="--rm",
                           fix="Add steps=on (a process reward model served with step pooling), or drop it")
    if settings.steps == "on" and (settings.protocol != POOLING or not settings.step_tag or settings.good < 0):
        raise BackendError(f"steps=on in {spec} needs protocol=pooling, a step_tag and good >= 0", where="--rm",
                           fix="Serve the PRM with vLLM's step pooling (?protocol=pooling, the default); step_tag "
                               "is the separator the server's step_tag_id names, good the positive label's index")


def affinity_key(pair: Pair) -> str:
    """What routes a pair: its prompt (every turn before the response)."""
    return json.dumps(pair.messages()[:-1], sort_keys=True)


class HTTPRewardModel:
    """A served reward model; every pair is one request (``POST /pooling``) to its prompt's replica."""

    def __init__(self, spec: str) -> None:
        self.spec = spec.strip()
        self.urls, self.settings = parse_spec(self.spec)
        settings = self.settings
        self.wire: Wire = wire_for(settings.protocol, self.spec, settings.tokenizer)
        key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
        self.replicas = [Replica(url, timeout=settings.timeout, concurrency=settings.concurrency,
                                 backoff=settings.backoff, api_key=key,
                                 max_answer_bytes=int(settings.max_answer_mb * 2**20)) for url in self.urls]
        cards = self._load()
        first = next(r for r in self.replicas if r.url in cards)
        #: The first replica that answered at load, and its card: every other must serve the same model.
        self.reference, self._reference_card = first, cards[first.url]
        card = self._reference_card
        self.served_id = str(card["id"])
        extension = card.get("rmcheck") if isinstance(card.get("rmcheck"), dict) else {}
        self.objectives: tuple[str, ...] = tuple(str(o) for o in extension.get("objectives") or ())
        #: rmcheck serve labels every answer: ``score``, then its objectives; vLLM's width is its first answer's.
        self._labels = frozenset({OVERALL, *self.objectives}) if extension else None
        self._width: tuple[int, str] | None = None
        self._description = str(extension.get("description") or self.served_id)
        served = extension.get("fingerprint")
        #: rmcheck serve advertises the served model's own fingerprint: it alone fixes the scores, wherever
        #: they are served. vLLM advertises names only, so its scores are keyed by URLs and name, never cached.
        identity = ([FORMAT_VERSION, served] if served else
                    [FORMAT_VERSION, self.urls[0] if len(self.urls) == 1 else sorted(self.urls), self.served_id,
                     card.get("root")])
        if self.wire.name != POOLING:  # another request, another reading of the pair
            identity += [self.wire.name, self.wire.tokenizer]
        self._fingerprint = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
        self.cacheable = bool(served) and extension.get("cacheable") is True
        self.max_model_len = card.get("max_model_len") if isinstance(card.get("max_model_len"), int) else None
        self._extension = bool(extension)
        self.served: dict[str, Served] = {}
        self._admitting = threading.Lock()
        for replica in self.replicas:
            if replica.url in cards:
                self._admit(replica, cards[replica.url])
        self._activation = {r.url: ActivationCheck(r.url, enabled=not extension and settings.activation != "ok")
                            for r in self.replicas}
        self.ring = Ring(self.replicas)
        self.routing = Routing()
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._warned_length = False

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def describe(self) -> str:
        if len(self.urls) == 1:
            return f"{self.urls[0]} serving {self._description}"
        return f"{len(self.urls)} replicas ({', '.join(self.urls)}) serving {self._description}"

    # -- load ---------------------------------------------------------------------------------

    def _load(self) -> dict[str, dict[str, Any]]:
        """The model card of every replica that answers: all asked at once, in up to ``retries + 1`` rounds
        until one answers. Those that fail are marked down; only when none answers is it an error."""
        failures: dict[str, Failure] = {}
        cards: dict[str, dict[str, Any]] = {}
        with ThreadPoolExecutor(len(self.replicas), thread_name_prefix="rmcheck-http-load") as pool:
            for attempt in range(self.settings.retries + 1):
                asked = [r for r in self.replicas if r.url not in cards]
                for replica, got in zip(asked, pool.map(self._ask_card, asked)):
                    if isinstance(got, Failure):
                        failures[replica.url] = got
                    else:
                        cards[replica.url] = got
                if cards:
                    break
                if attempt < self.settings.retries:
                    hinted = [f.retry_after for f in failures.values() if f.retry_after is not None]
                    time.sleep(min(max(hinted) if hinted else self.settings.backoff * 2 ** attempt, MAX_RETRY_AFTER))
        if not cards:
            raise self._none_answers(failures, attempt + 1)
        for replica in self.replicas:
            if replica.url not in cards:
                replica.mark_down(failures[replica.url])
        return cards

    def _none_answers(self, failures: dict[str, Failure], attempts: int) -> BackendError:
        if len(self.replicas) == 1:
            url, failure = next(iter(failures.items()))
            return BackendError(f"{failure.what} at {url}{self.wire.cards[0]} after {attempts} attempt(s)", where="--rm",
                                fix="Start one with `rmcheck serve --rm SPEC --port N` (or vLLM), or check the URL")
        down = ", ".join(f"{url} ({failure.what})" for url, failure in failures.items())
        return BackendError(f"none of the {len(self.replicas)} replicas answers {self.wire.cards[0]} after {attempts} "
                            f"attempt(s) each: {down}", where="--rm",
                            fix="Start the servers (rmcheck serve --rm SPEC --port N, or vLLM), or check the URLs")

    def _ask_card(self, replica: Replica) -> dict[str, Any] | Failure:
        """One ``GET /v1/models`` (the API's card route; a 404 tries its next one): the model's card, or the
        :class:`Failure` worth another attempt."""
        for path in self.wire.cards:
            try:
                listing = replica.request("GET", path)
                break
            except Failure as failure:
                return failure
            except Rejected as rejected:
                if rejected.status != 404 or path == self.wire.cards[-1]:
                    raise BackendError(f"{rejected.message}", where="--rm",
                                       fix=f"{self.wire.fix}, or name the API it speaks: ?protocol=NAME") from None
        try:
            return self.wire.card(listing)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, StopIteration):
            raise BackendError(f"{replica.url}{path} describes no model: {shown(listing, replica)}", where="--rm",
                               fix=f"{self.wire.fix}, or name the API it speaks: ?protocol=NAME") from None

    def _admit(self, replica: Replica, card: dict[str, Any]) -> Served:
        """Take ``replica`` into rotation: the same model as the reference, asked for raw scores its version's way."""
        _same_model(self.reference, self._reference_card, replica, card)
        protocol = (Protocol(None, {"use_activation": False}) if self._extension else
                    Protocol(_text(card.get("version")), self.wire.raw) if self.wire.name != POOLING else
                    self._protocol(replica))
        served = self.served[replica.url] = Served(card, protocol)
        return served

    def _protocol(self, replica: Replica) -> Protocol:
        """The fields that ask vLLM at ``replica`` for raw scores (its version's, or an error)."""
        return protocol_for(self._version(replica), replica.url, self.settings.activation)

    def _admit_late(self, replica: Replica) -> Served:
        """A replica that was down at load, asked now (its card, identity and version); Failure while still down."""
        with self._admitting:
            served = self.served.get(replica.url)
            if served is not None:
                return served
            got = self._ask_card(replica)
            if isinstance(got, Failure):
                raise got
            return self._admit(replica, got)

    def _version(self, replica: Replica) -> str | None:
        """vLLM's ``GET /version`` (``{"version": "0.10.1"}``); None where the server has none."""
        try:
            status, _, raw = replica.exchange("GET", "/version")
            version = json.loads(raw).get("version") if status == 200 else None
        except (Failure, BackendError, ValueError, AttributeError, RecursionError):
            return None
        return str(version)[:40] if isinstance(version, (str, int, float)) else None

    def provenance(self) -> dict[str, Any]:
        """What each replica serves (model id, root, revision, vLLM version), as plain JSON values."""
        def one(replica: Replica) -> dict[str, Any]:
            served = self.served.get(replica.url)
            if served is None:
                return {"url": replica.url, "answered": False, "error": replica.last_error}
            card = served.card
            extension = card.get("rmcheck") if isinstance(card.get("rmcheck"), dict) else {}
            return {"url": replica.url, "answered": True, "id": _text(card.get("id")), "root": _text(card.get("root")),
                    "revision": _text(card.get("revision", extension.get("revision"))),
                    "server_version": served.protocol.version, "fingerprint": _text(extension.get("fingerprint")),
                    "raw_scores_by": sorted(served.protocol.fields)}

        return {"served_by": [one(r) for r in self.replicas]}

    # -- scoring ------------------------------------------------------------------------------

    def score(self, pairs: Sequence[Pair]) -> list[Scores]:
        if not pairs:
            return []
        done = self._answers(pairs)
        for (values, labels), replica in done:
            self._check_shape(replica, values, labels)
        for replica in self.replicas:
            self._activation[replica.url].check([values for (values, _), r in done if r is replica])
        scores = [dict(zip(labels, values)) for (values, labels), _ in done]
        return normalise_scores(scores, len(pairs), self.spec, pairs)

    def _answers(self, pairs: Sequence[Pair]) -> list[tuple[tuple[list[float], list[str]], Replica]]:
        """Each pair's values and labels, and the replica that answered it; raises when any pair fails."""
        self._warn_long(pairs)
        prepared = self.wire.prepare(pairs)
        orders = self._routes(pairs)
        answers: list[tuple[list[float], list[str]] | None] = [None] * len(pairs)
        answered_by: list[Replica | None] = [None] * len(pairs)
        tries: list[dict[str, int]] = [{} for _ in pairs]
        finished: queue.SimpleQueue[tuple[int, Replica, Future[tuple[list[float], list[str]]]]] = queue.SimpleQueue()
        running: set[Future[tuple[list[float], list[str]]]] = set()

        def send(i: int) -> None:
            future, replica = self._submit(prepared[i], orders[i], tries[i])
            running.add(future)
            future.add_done_callback(lambda done: finished.put((i, replica, done)))

        try:
            for i in range(len(pairs)):
                send(i)
            while running:  # one completion at a time, in the order they come
                i, replica, future = finished.get()
                running.discard(future)
                try:
                    answers[i] = future.result()
                except Failure:  # the replica is marked down already: the next one on the ring, or later
                    tries[i][replica.url] = tries[i].get(replica.url, 0) + 1
                    send(i)
                    continue
                answered_by[i] = replica
                self.routing.pairs += 1
                self.routing.kept += replica is orders[i][0]
        except BaseException:
            for future in running:  # send nothing more; let requests in flight end
                future.cancel()
            wait(running)
            raise
        return [(a, r) for a, r in zip(answers, answered_by) if a is not None and r is not None]

    def _check_shape(self, replica: Replica, values: list[float], labels: list[str]) -> None:
        """One answer's labels are those rmcheck serve advertised; vLLM's width is that of the first answer."""
        if self._labels is not None:
            if set(labels) != self._labels or len(labels) != len(self._labels):
                raise ScoreError(f"{replica.url}{self.wire.route} answered labels {labels} for one pair, where the model "
                                 f"advertises {sorted(self._labels)}",
                                 fix="List replicas of one model only, each an `rmcheck serve` of the same spec")
            return
        if self._width is None:
            self._width = (len(values), replica.url)
        width, first = self._width
        if len(values) != width:
            raise ScoreError(f"{replica.url}{self.wire.route} answered {len(values)} unlabelled values for one pair, where "
                             f"{first} answered {width}",
                             fix="List replicas of one model only (a reward model answers as many values for every "
                                 "pair); see the server's log")

    def _routes(self, pairs: Sequence[Pair]) -> list[list[Replica]]:
        """Each pair's replicas in order of preference, its prompt's replica first: consistent hashing with
        bounded loads (a replica takes at most ``1 + BALANCE`` times its share of the batch; a prompt whose
        replica is full goes, whole, to the next one on the ring that has room)."""
        groups: dict[str, list[int]] = {}
        for i, pair in enumerate(pairs):
            groups.setdefault(affinity_key(pair), []).append(i)
        now = time.monotonic()
        up = [r for r in self.replicas if not r.is_down(now)] or self.replicas
        capacity = (1 + BALANCE) * len(pairs) / len(up)
        load = {r.url: 0 for r in up}
        orders: list[list[Replica]] = [[] for _ in pairs]
        for key, members in groups.items():
            order = self.ring.order(key)
            room = [r for r in order if r.url in load and load[r.url] + len(members) <= capacity]
            chosen = room[0] if room else min(up, key=lambda r: load[r.url])
            load[chosen.url] += len(members)
            for i in members:
                orders[i] = [chosen] + [r for r in order if r is not chosen]
        return orders

    def _submit(self, prepared: dict[str, Any], order: list[Replica], tries: dict[str, int]
                ) -> tuple[Future[tuple[list[float], list[str]]], Replica]:
        """Send a pair (its ``prepared`` request) to the replica it should try next: up before down, fewest failures for this pair, then
        ring order; when all are down, to the one back soonest, after its backoff. Raises when all are spent."""
        now = time.monotonic()
        budget = self.settings.retries + 1
        live = [r for r in order if tries.get(r.url, 0) < budget]
        if not live:
            raise self._exhausted(order, tries)
        up = [r for r in live if not r.is_down(now)]
        replica = (min(up, key=lambda r: (tries.get(r.url, 0), order.index(r))) if up else
                   min(live, key=lambda r: (tries.get(r.url, 0), r.down_until)))
        pool = self._pools.get(replica.url)
        if pool is None:
            pool = self._pools[replica.url] = ThreadPoolExecutor(self.settings.concurrency,
                                                                 thread_name_prefix="rmcheck-http")
        return pool.submit(self._attempt, replica, prepared, replica.down_until), replica

    def _exhausted(self, order: list[Replica], tries: dict[str, int]) -> BackendError:
        attempts = sum(tries.values())
        if len(order) == 1:
            replica = order[0]
            return BackendError(f"{replica.last_error} at {replica.url}{self.wire.route} after {attempts} attempt(s)",
                                fix=failure_fix(replica.last_error))
        down = ", ".join(f"{r.url} ({r.last_error})" for r in self.replicas)
        return BackendError(f"all {len(order)} replicas are down after {attempts} attempt(s): {down}",
                            fix="Start the servers (or check the URLs); nothing from the failed batch was cached")

    def _attempt(self, replica: Replica, prepared: dict[str, Any], not_before: float) -> tuple[list[float], list[str]]:
        """One request (``POST /pooling``) at one replica: the values and labels, or :class:`Failure` (it is then
        down)."""
        time.sleep(max(0.0, not_before - time.monotonic()))
        try:
            served = self.served.get(replica.url) or self._admit_late(replica)
            body = self.wire.body(prepared, self.served_id, served.protocol.fields)
            with replica.slot():
                answer = replica.request("POST", self.wire.route, body)
        except Failure as failure:
            replica.mark_down(failure)
            raise
        return self.read(answer, replica, served)

    def read(self, answer: Any, replica: Replica, served: Served) -> tuple[list[float], list[str]]:
        """One pair's values and labels in ``answer``; ScoreError naming the URL when malformed."""
        return self.wire.parse(answer, replica)

    def _warn_long(self, pairs: Sequence[Pair]) -> None:
        """Warn (once) before sending a conversation longer than the server's ``max_model_len``."""
        limit = self.max_model_len
        if self._warned_length or limit is None:
            return
        for pair in pairs:
            messages = pair.messages()
            if sum(len(m["content"].encode()) for m in messages) + TEMPLATE_MARGIN * len(messages) < limit:
                continue  # a token covers at least one byte: it fits
            tokens = self._count_tokens(messages)
            if tokens is not None and tokens <= limit:
                continue
            self._warned_length = True
            counted = f"{tokens} tokens" if tokens is not None else "too many characters"
            warnings.warn(f"{self.describe()}: a conversation ({counted}, prompt {pair.prompt_text[:40]!r}) is "
                          f"longer than the server's max_model_len {limit}; the server will refuse or truncate it. "
                          f"Shorten the suite's texts or serve a longer context (vllm serve --max-model-len)",
                          stacklevel=3)
            return

    def _count_tokens(self, messages: list[dict[str, str]]) -> int | None:
        """vLLM's ``POST /tokenize`` of the conversation (``{"count"}``); None where the server has none."""
        if self.wire.name != POOLING:
            return None
        try:
            status, _, raw = self.replicas[0].exchange("POST", "/tokenize",
                                                       {"model": self.served_id, "messages": messages})
            count = json.loads(raw).get("count") if status == 200 else None
        except (Failure, ValueError, AttributeError):
            return None
        return count if isinstance(count, int) else None


def _same_model(first: Replica, card: dict[str, Any], replica: Replica, other: dict[str, Any]) -> None:
    def identity(c: dict[str, Any]) -> tuple[Any, ...]:
        return c.get("id"), c.get("root"), (c.get("rmcheck") or {}).get("fingerprint")

    if identity(card) != identity(other):
        shown = lambda c: f"id {c.get('id')!r}, root {c.get('root')!r}" + (  # noqa: E731
            f", fingerprint {str(c['rmcheck'].get('fingerprint'))[:12]}" if c.get("rmcheck") else "")
        raise BackendError(f"replica {replica.url} serves another model ({shown(other)}) than {first.url} "
                           f"({shown(card)})", where="--rm",
                           fix="List replicas of one model only (the same weights, name and revision)")


def _text(value: Any) -> str | None:
    """A card field as a bounded string for the run document (None where absent)."""
    return None if value is None else str(value)[:200]


class HTTPProcessModel(HTTPRewardModel):
    """``?steps=on``: a process reward model served with vLLM's step pooling (Qwen2.5-Math-PRM style).

    A solution is one ``POST /pooling`` of a system turn (``system``, unless the prompt has one), the prompt's turns
    and an assistant turn of the steps, each followed by ``step_tag``; the server answers one row per step-tag
    token (its ``step_tag_id``), each the head's labels. A step's score is ``softmax(row)[good]``, or ``row[good]``
    where the server activated the rows itself (vLLM before 0.11.1, unless ``?activation=off``)."""

    def describe(self) -> str:
        return (f"{super().describe()}; process model (step pooling at {self.settings.step_tag!r}, "
                f"P(label {self.settings.good}) per step)")

    def solution_pair(self, solution: Solution) -> Pair:
        turns = solution.prompt if isinstance(solution.prompt, tuple) else (("user", solution.prompt),)
        system = (("system", self.settings.system),) if self.settings.system and turns[0][0] != "system" else ()
        return Pair((*system, *turns), "".join(step + self.settings.step_tag for step in solution.steps))

    def score_steps(self, solutions: Sequence[Solution]) -> list[list[float]]:
        answers = self._answers([self.solution_pair(s) for s in solutions]) if solutions else []
        for ((scores, _), replica), solution in zip(answers, solutions):
            if len(scores) != len(solution.steps):
                raise ScoreError(f"{replica.url}{self.wire.route} answered {len(scores)} step rows for a solution of "
                                 f"{len(solution.steps)} steps (prompt {prompt_to_text(solution.prompt)[:40]!r})",
                                 fix=f"The server's step_tag_id must be the token of ?step_tag= "
                                     f"({self.settings.step_tag!r}), and no step may hold it; serve the PRM with "
                                     "step pooling (pooling_type STEP)")
        return checked_steps([scores for (scores, _), _ in answers], solutions, self.spec)

    def score(self, pairs: Sequence[Pair]) -> list[Scores]:
        return lowest_step_scores(self, pairs)

    def _protocol(self, replica: Replica) -> Protocol:
        """``use_activation: false`` where the version takes it; older servers softmax the rows (that is fine)."""
        version = self._version(replica)
        number = parse_version(version)
        return Protocol(version, {"use_activation": False} if number is None or number >= USE_ACTIVATION else {})

    def read(self, answer: Any, replica: Replica, served: Served) -> tuple[list[float], list[str]]:
        """The step scores in one answer: its rows, each softmaxed unless the server did, label ``good`` of each."""
        raw = bool(served.protocol.fields) or self.settings.activation == "off"
        good = self.settings.good
        try:
            (output,) = answer["data"]
            rows = [[number(v) for v in row] for row in output["data"]]
            if any(len(row) <= good for row in rows):
                raise ValueError(f"a row of {min(len(r) for r in rows)} labels has no label {good}")
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise ScoreError(f"unexpected step-pooling answer from {replica.url}{self.wire.route} ({exc}): "
                             f"{shown(answer, replica)}",
                             fix="Serve a process reward model with step pooling (vLLM: --runner pooling, "
                                 "pooling_type STEP) and give ?good= the positive label's index") from None
        return [_softmax(row)[good] if raw else row[good] for row in rows], []


def _softmax(row: list[float]) -> list[float]:
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    return [e / math.fsum(exps) for e in exps]
