"""The http:// backend against scripted pooling servers on 127.0.0.1: shapes, retries, and faults."""
from __future__ import annotations

import socket
from typing import Any, Iterator

import pytest

from fixtures.scripted_server import PeakCounter, Reply, ScriptedServer, error_body
from rmcheck import Pair, load_model
from rmcheck.errors import BackendError, RmcheckError
from rmcheck.scoring import Scorer

PAIRS = [Pair("Hi", "Hello!"), Pair((("system", "Be brief."), ("user", "Hi")), "Hey"), Pair("Q", "A longer answer.")]
FAST = "?retries=2&backoff=0&timeout=2"


def card(**extra: Any) -> dict:
    return {"object": "list", "data": [{"id": "org/rm", "object": "model", "root": "/models/rm", **extra}]}


def pooling(values: Any, labels: list[str] | None = None) -> dict:
    body: dict[str, Any] = {"object": "list", "model": "org/rm", "data": [{"index": 0, "object": "pooling", "data": values}]}
    if labels:
        body["rmcheck"] = {"labels": labels}
    return body


def length_route(shape: str = "list"):
    """A pooling server whose score is the response's length, in one of vLLM's output shapes."""
    def route(path: str, body: Any) -> Reply:
        if path == "/v1/models":
            return Reply(card())
        value = float(len(body["messages"][-1]["content"]))
        return Reply(pooling({"list": [value], "number": value, "tokens": [[0.0], [value]],
                              "heads": [value, -value]}[shape]))
    return route


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(length_route()) as running:
        yield running


def test_one_request_per_pair_in_vllm_pooling_shape(server: ScriptedServer) -> None:
    model = load_model(server.url + FAST)
    assert model.score(PAIRS) == [{"score": float(len(p.response))} for p in PAIRS]
    bodies = sorted((c.body for c in server.calls("/pooling")), key=lambda b: len(b["messages"]))
    assert len(bodies) == 3 and all(b["model"] == "org/rm" and b["use_activation"] is False for b in bodies)
    assert bodies[-1]["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                      {"role": "assistant", "content": "Hey"}]
    assert model.describe() == f"{server.url} serving org/rm"


@pytest.mark.parametrize(("shape", "expected"), [
    ("number", {"score": 6.0}), ("tokens", {"score": 6.0}),  # per-token rewards: the last token's row
    ("heads", {"LABEL_0": 6.0, "LABEL_1": -6.0, "score": 0.0}),  # several labels without names: objectives, mean
])
def test_vllm_output_shapes(shape: str, expected: dict) -> None:
    with ScriptedServer(length_route(shape)) as server:
        assert load_model(server.url + FAST).score(PAIRS[:1]) == [expected]


def test_fingerprint_follows_the_served_model_else_the_url_and_names() -> None:
    advertised: dict[str, Any] = {}
    with ScriptedServer(lambda path, body: Reply(card(**advertised))) as one, \
            ScriptedServer(lambda path, body: Reply(card(**advertised))) as two:
        def loaded(server: ScriptedServer = one, **extra: Any) -> tuple[str, bool]:
            advertised.clear()
            advertised.update(extra)
            model = load_model(server.url)
            return model.fingerprint, model.cacheable

        served = {"fingerprint": "abc", "cacheable": True}
        assert loaded(rmcheck=served) == loaded(two, rmcheck=served) == (loaded(rmcheck=served)[0], True)
        assert loaded(rmcheck={**served, "fingerprint": "abd"})[0] != loaded(rmcheck=served)[0]
        assert loaded(rmcheck={**served, "cacheable": False}) == (loaded(rmcheck=served)[0], False)
        plain = loaded()  # vLLM: names only, so the URL counts too, and scores are never cached
        assert plain[1] is False and plain[0] != loaded(two)[0] and plain[0] != loaded(root="/models/rm-v2")[0]
        assert loaded() == plain


def test_requests_run_concurrently_up_to_the_limit() -> None:
    counter = PeakCounter(length_route())
    with ScriptedServer(counter) as server:
        load_model(server.url + "?concurrency=3").score([Pair("p", "x" * i) for i in range(12)])
        assert len(server.calls("/pooling")) == 12
    assert 1 <= counter.peak <= 3


@pytest.mark.parametrize(("faults", "error", "calls"), [
    ([Reply(error_body("warming up", 503), 503)], None, 2),
    ([Reply(error_body("slow down", 429), 429, {"Retry-After": "0"})] * 2, None, 3),
    ([Reply(error_body("boom", 500), 500)] * 3, "HTTP 500: boom at {url}/pooling after 3 attempt(s)", 3),
    ([Reply(error_body("slow down", 429), 429, {"Retry-After": "0"})] * 3, "HTTP 429: slow down", 3),
    ([Reply(raw="<html>oops</html>")], "malformed JSON from {url}/pooling: '<html>oops</html>'", 1),
    ([Reply(pooling([]))], "unexpected answer from {url}/pooling", 1),
    ([Reply(error_body("bad messages", 400), 400)], "HTTP 400 from {url}/pooling: bad messages", 1),
    ([Reply(pooling([1.0]), delay=1.0)] * 3, "no answer within 0.2 s at {url}/pooling after 3 attempt(s)", 3),
])
def test_faults_give_a_clear_error_or_a_bounded_retry_and_nothing_is_cached(
        server: ScriptedServer, faults: list[Reply], error: str | None, calls: int) -> None:
    scorer = Scorer(load_model(server.url + "?retries=2&backoff=0&timeout=0.2"))
    server.script(*faults)
    if error is None:
        assert scorer.score(PAIRS[:1]) == {PAIRS[0]: {"score": 6.0}}
    else:
        with pytest.raises(BackendError) as caught:
            scorer.score(PAIRS[:1])
        assert error.format(url=server.url) in str(caught.value) and "\n" not in str(caught.value)
        assert scorer.memo == {}
    assert len(server.calls("/pooling")) == calls


def test_a_server_that_dies_mid_run_fails_the_batch_and_keeps_only_earlier_batches(server: ScriptedServer) -> None:
    scorer = Scorer(load_model(server.url + "?retries=2&backoff=0.01&concurrency=1"), batch_size=1)
    server.script(Reply(pooling([1.0])), Reply(die=True))
    with pytest.raises(BackendError) as caught:
        scorer.score(PAIRS)
    message = str(caught.value)
    assert f"at {server.url}/pooling after 3 attempt(s)" in message and "nothing from the failed batch was cached" in message
    assert ("connection lost" in message) or ("cannot connect (connection refused)" in message)
    assert len(scorer.memo) == 1  # the batch answered before the server died; nothing after


def test_an_unreachable_server_is_one_line_with_the_url_and_the_fix() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RmcheckError) as caught:
        load_model(f"http://127.0.0.1:{port}?retries=1&backoff=0")
    message = str(caught.value)
    assert message.startswith(f"--rm: cannot connect (connection refused) at http://127.0.0.1:{port}/v1/models after 2")
    assert "rmcheck serve --rm SPEC --port N" in message and "\n" not in message


@pytest.mark.parametrize(("spec", "message"), [
    ("http://127.0.0.1:1?timout=3", "unknown option 'timout'"),
    ("http://127.0.0.1:1?timeout=soon", "bad option"),
    ("http://127.0.0.1:1?concurrency=0", "out-of-range option"),
    ("http://", "bad server URL"),
])
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(RmcheckError, match=message):
        load_model(spec)


def test_a_server_without_the_pooling_api_says_so() -> None:
    def route(path: str, body: Any) -> Reply:
        return Reply(card()) if path == "/v1/models" else Reply(error_body("Not Found", 404), 404)

    with ScriptedServer(route) as server:
        with pytest.raises(BackendError, match="HTTP 404 .* Is it a pooling server"):
            load_model(server.url).score(PAIRS[:1])
