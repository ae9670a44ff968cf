"""``rmcheck serve``: any rmcheck reward model behind vLLM's pooling API (Starlette + uvicorn).

Routes (the shapes :mod:`rmcheck.backends.http` documents):

- ``GET /v1/models``: the model card, with ``rmcheck: {fingerprint, description, objectives, cacheable,
  version}``, so a client's fingerprint changes whenever the served model's does;
- ``POST /pooling``: ``{"model"?, "messages": [..., {"role": "assistant", "content": ...}]}`` ->
  ``{"data": [{"index": 0, "object": "pooling", "data": [values]}], "rmcheck": {"labels": [...]}}``;
- ``GET /health``: 200 once the model is loaded.

One thread owns the model. Requests that arrive together are scored together, up to
``batch_size`` at a time, so concurrent clients (pytest-xdist workers) share batches.
Errors are ``{"error": {"message", "type", "code"}}``: 400 for a bad request, 404 for
another model's name, 413 for a body over ``max_request_bytes``, 422 when the model rejects a pair (not worth a retry), 500 otherwise.
"""
from __future__ import annotations

import asyncio
import json
import os
import queue
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from typing import Any

from ..version import __version__
from ..backends.base import OVERALL, ModelOptions, Pair, RewardModel, Scores, load_model, normalise_scores
from ..backends.capabilities import Tokenized, cacheable
from ..errors import RmcheckError
from ..limits import REQUEST_BYTES
from ..scoring.scheduler import DEFAULT_BATCH_SIZE


class Batcher:
    """Scores pairs on one worker thread, in batches of whatever is waiting (up to ``batch_size``)."""

    def __init__(self, model: RewardModel, batch_size: int) -> None:
        self.model, self.batch_size = model, batch_size
        self._queue: queue.Queue[tuple[Pair, Future[Scores]]] = queue.Queue()
        threading.Thread(target=self._work, name="rmcheck-serve-batcher", daemon=True).start()

    def submit(self, pair: Pair) -> Future[Scores]:
        future: Future[Scores] = Future()
        self._queue.put((pair, future))
        return future

    def _work(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            pairs = [pair for pair, _ in batch]
            try:
                scores = normalise_scores(self.model.score(pairs), len(pairs), self.model.spec)
            except Exception as exc:  # handed to each waiting request, which answers with an error
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, scores):
                future.set_result(result)


def model_card(model: RewardModel) -> dict[str, Any]:
    return {"id": model.spec, "object": "model", "created": int(time.time()), "owned_by": "rmcheck",
            "root": model.spec, "parent": None,
            "max_model_len": model.max_length if isinstance(model, Tokenized) else None,
            "rmcheck": {"fingerprint": model.fingerprint, "description": model.describe(),
                        "objectives": list(model.objectives), "cacheable": cacheable(model),
                        "version": __version__}}


def pair_from_messages(messages: Any) -> Pair:
    """The pair a chat request describes: the prompt turns, then the assistant response last.

    A lone user turn becomes a plain-string prompt (as a suite's string prompt is sent).
    """
    if not isinstance(messages, list) or len(messages) < 2:
        raise ValueError("'messages' must list the prompt turns and then the assistant response")
    turns = [(_text(m, "role"), _content(m)) for m in messages]
    if turns[-1][0] != "assistant":
        raise ValueError("the last message must be the assistant response to score")
    prompt = turns[:-1]
    return Pair(prompt[0][1] if len(prompt) == 1 and prompt[0][0] == "user" else tuple(prompt), turns[-1][1])


def _text(message: Any, key: str) -> str:
    if not isinstance(message, dict) or not isinstance(message.get(key), str):
        raise ValueError(f"every message needs a string {key!r}")
    return message[key]


def _content(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # OpenAI content parts: text parts only
        if all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
            return "".join(p["text"] for p in content)
        raise ValueError("only text content parts can be scored")
    return _text(message, "content")


def labelled(scores: Scores) -> tuple[list[str], list[float]]:
    """``score`` first, then the objectives in sorted order."""
    labels = [OVERALL, *sorted(k for k in scores if k != OVERALL)] if len(scores) > 1 else [OVERALL]
    return labels, [scores[label] for label in labels]


class BodyTooLarge(Exception):
    """A request body over ``max_request_bytes``."""


#: Bytes past ``max_request_bytes`` read and dropped before a 413, so that a client still sending its body reads
#: the answer instead of a broken pipe; a body longer still has its connection closed under it.
DRAIN_BYTES = 1 << 20


async def read_body(request: Any) -> bytes:
    """The request body, refused once it passes ``max_request_bytes`` (the rest read and dropped, up to
    :data:`DRAIN_BYTES`), so parallel huge bodies cannot take the server's memory."""
    limit = REQUEST_BYTES.value
    declared = request.headers.get("content-length", "")
    too_large = BodyTooLarge(f"the request body is over the limit {REQUEST_BYTES.name} = {limit} bytes; "
                             f"start the server with {REQUEST_BYTES.variable}=N to raise it")
    if declared.isdigit() and int(declared) > limit + DRAIN_BYTES:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit + DRAIN_BYTES:
            break
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise too_large
    return b"".join(chunks)


def build_app(model: RewardModel, batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
    """The Starlette application serving ``model``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    batcher = Batcher(model, batch_size)

    def error(status: int, message: str, kind: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": status}}, status)

    async def models(_: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [model_card(model)]})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def pooling(request: Request) -> JSONResponse:
        try:
            body = json.loads(await read_body(request))
        except BodyTooLarge as exc:
            return error(413, str(exc), "RequestTooLargeError")
        except (ValueError, RecursionError):
            return error(400, "the body is not JSON", "BadRequestError")
        if not isinstance(body, dict):
            return error(400, "the body must be a JSON object", "BadRequestError")
        if body.get("model") not in (None, model.spec):
            return error(404, f"The model `{body['model']}` does not exist; this server has {model.spec}", "NotFoundError")
        if "messages" not in body:
            return error(400, "rmcheck serve scores chat-style requests: send 'messages' ending with the "
                              "assistant response", "BadRequestError")
        try:
            pair = pair_from_messages(body["messages"])
        except ValueError as exc:
            return error(400, str(exc), "BadRequestError")
        try:
            scores = await asyncio.wrap_future(batcher.submit(pair))
        except RmcheckError as exc:
            return error(422, str(exc), type(exc).__name__)
        except Exception as exc:  # the model crashed: the client may retry
            return error(500, f"{type(exc).__name__}: {exc}", "InternalServerError")
        labels, values = labelled(scores)
        return JSONResponse({"id": f"pool-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                             "model": model.spec, "data": [{"index": 0, "object": "pooling", "data": values}],
                             "usage": {"prompt_tokens": 0, "total_tokens": 0, "completion_tokens": 0},
                             "rmcheck": {"labels": labels}})

    return Starlette(routes=[Route("/v1/models", models), Route("/health", health),
                             Route("/pooling", pooling, methods=["POST"])])


def serve(spec: str, options: ModelOptions, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Load the model, bind ``host:port`` (0 picks a free port), print the URL, and serve until interrupted."""
    try:
        import uvicorn
    except ImportError:
        raise RmcheckError("rmcheck serve needs starlette and uvicorn", fix='pip install "rmcheck[serve]"') from None
    model = load_model(spec, options)
    try:
        sock = socket.create_server((host, port))
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise RmcheckError(f"cannot listen on {host}:{port} ({reason})", where="--port",
                           fix="Pick another --port (or --port 0 for a free one)") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted connections inherit it: no Nagle stalls
    app = build_app(model, options.batch_size or DEFAULT_BATCH_SIZE)
    url = f"http://{host}:{sock.getsockname()[1]}"
    print(f"rmcheck serve: {model.describe()}\nrmcheck serve: listening on {url} (use --rm {url}; Ctrl-C stops)",
          flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    print("rmcheck serve: stopped", file=sys.stderr, flush=True)
