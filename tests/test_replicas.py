"""Several replicas in one http:// spec: prompt affinity, failover without loss, backoff, adaptive concurrency."""
from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from fixtures.replicas import multi_spec, replicas
from fixtures.scripted_server import Reply
from fixtures.vllm_emulator import VLLMEmulator, raw_scores
from rmcheck import Pair, load_model
from rmcheck.backends.http import parse_spec
from rmcheck.engine import run_suites
from rmcheck.errors import BackendError, RmcheckError
from rmcheck.scoring import ScoreCache, Scorer

ROOT = Path(__file__).resolve().parent.parent
PAIRS = [Pair(f"Question {q}?", "word " * (r + 1)) for q in range(12) for r in range(4)]
SUITES = [ROOT / "suites" / f"{name}.rmcheck.yaml" for name in ("verbosity", "sycophancy")]
SLOW = "python:fixtures.replica_rms:slow_length_loving"


def emulators(stack: ExitStack, count: int, **kwargs: object) -> list[VLLMEmulator]:
    return [stack.enter_context(VLLMEmulator(**kwargs)) for _ in range(count)]  # type: ignore[arg-type]


def served_by(servers: list[VLLMEmulator]) -> dict[str, set[int]]:
    """Prompt -> the replicas (indices) that scored a pair of it."""
    seen: dict[str, set[int]] = {}
    for n, server in enumerate(servers):
        for body in server.pooling_calls():
            if not isinstance(body, dict):  # a request the kill cut short
                continue
            seen.setdefault(body["messages"][0]["content"], set()).add(n)
    return seen


def right(pair: Pair) -> dict[str, float]:
    return {"score": pytest.approx(raw_scores(pair.messages())[0])}


def test_a_spec_lists_replicas_in_the_multi_host_url_form() -> None:
    urls, settings = parse_spec("http://10.0.0.1:8000,10.0.0.2:8000,[::1]:9/v1?timeout=5")
    assert urls == ["http://10.0.0.1:8000", "http://10.0.0.2:8000", "http://[::1]:9"] and settings.timeout == 5
    for bad, message in [("http://a:1,,b:2", "bad server URL"), ("http://a:1,a:1", "listed twice"),
                         ("http://a:1,b:x", "bad host 'b:x'"), ("http://a:1?activation=maybe", "activation=maybe")]:
        with pytest.raises(RmcheckError, match=message):
            parse_spec(bad)


def test_every_pair_of_a_prompt_goes_to_one_replica_and_the_prompts_spread() -> None:
    with ExitStack() as stack:
        servers = emulators(stack, 3)
        model = load_model(multi_spec([s.url for s in servers], "backoff=0&timeout=5"))
        assert model.score(PAIRS) == [right(p) for p in PAIRS]
        seen = served_by(servers)
    assert len(seen) == 12 and all(len(where) == 1 for where in seen.values())
    assert len(set().union(*seen.values())) == 3  # 12 prompts over 3 replicas: each got some
    assert model.routing.affinity == 1.0 and "3 replicas" in model.describe()


def test_a_replica_killed_mid_batch_loses_nothing_and_is_tried_again_later() -> None:
    with ExitStack() as stack:
        servers = emulators(stack, 3, delay=0.02)
        model = load_model(multi_spec([s.url for s in servers], "backoff=2&timeout=5&concurrency=4"))
        victim = servers[1]
        killer = threading.Timer(0.05, victim.kill)
        killer.start()
        assert model.score(PAIRS) == [right(p) for p in PAIRS]  # in-flight pairs retried on the others
        killer.join()
        assert model.replicas[1].is_down() and "connection" in model.replicas[1].last_error
        assert model.routing.affinity < 1.0
        seen = served_by(servers)
        assert all(len(where) <= 2 for where in seen.values())  # the primary, then one fallback
        # a replica answering 503 is skipped while down, and gets its prompts back after its backoff
        healthy = servers[2]
        healthy.server.script(Reply({"error": {"message": "warming up"}}, 503))
        fresh = load_model(multi_spec([servers[0].url, healthy.url], "backoff=0.2&timeout=5&concurrency=1"))
        before = len(healthy.pooling_calls())
        assert fresh.score(PAIRS[:16]) == [right(p) for p in PAIRS[:16]]
        time.sleep(0.25)
        assert fresh.score([Pair(f"Later {q}?", "x") for q in range(8)])
        assert len(healthy.pooling_calls()) > before + 1  # served again once the backoff ended


def test_when_all_replicas_are_down_the_error_says_so_once_with_the_urls() -> None:
    with ExitStack() as stack:
        servers = emulators(stack, 2)
        model = load_model(multi_spec([s.url for s in servers], "retries=1&backoff=0&timeout=2"))
        for server in servers:
            server.kill()
        scorer = Scorer(model)
        with pytest.raises(BackendError) as caught:
            scorer.score(PAIRS)
    message = str(caught.value)
    assert message.startswith("all 2 replicas are down after 4 attempt(s): ")
    assert all(f"{s.url} (cannot connect (connection refused))" in message for s in servers)
    assert "\n" not in message and message.count("replicas are down") == 1 and scorer.memo == {}


def test_concurrency_adapts_up_while_latency_holds_and_halves_on_429() -> None:
    with VLLMEmulator(delay=0.02) as server:  # long enough that a loaded machine's jitter still "holds"
        model = load_model(server.url + "?concurrency=8&backoff=0&timeout=5")
        replica = model.replicas[0]
        assert replica.limit == 4
        model.score([Pair(f"p{i}", "x") for i in range(100)])
        assert replica.limit > 4 and replica.peak <= 8
        raised = replica.limit
        server.server.script(*[Reply({"error": {"message": "slow down"}}, 429, {"Retry-After": "0"})] * 2)
        model.score([Pair("q", "y")])
        assert replica.limit <= raised / 2


def test_killing_one_of_three_serve_replicas_mid_run_keeps_verdicts_and_cache(tmp_path: Path) -> None:
    local = run_suites(SUITES, [SLOW])
    expected = {(r.suite, r.test): r.to_json() for r in local.results}
    with replicas(SLOW, 3) as running:
        spec = multi_spec([url for _, url in running], "backoff=0.2&timeout=10&concurrency=8")
        victim = running[1][0]
        killed = threading.Event()

        def kill_mid_run(label: str, done: int, total: int) -> None:
            if total and not killed.is_set():  # after the first batch, while the next is in flight
                killed.set()
                threading.Timer(0.01, os.kill, (victim.pid, signal.SIGKILL)).start()

        cache = ScoreCache(tmp_path / "cache")
        served = run_suites(SUITES, [spec], progress=kill_mid_run, cache=cache)
        victim.wait(timeout=10)
    assert killed.is_set() and not served.errors
    got = {(r.suite, r.test): r.to_json() for r in served.results}
    assert got.keys() == expected.keys()
    for key, mine in expected.items():
        assert (got[key]["outcome"], got[key]["counts"], got[key]["cases"]) == \
               (mine["outcome"], mine["counts"], mine["cases"]), key
    model = served.engine.model(spec)
    assert model.routing.affinity < 1.0  # the killed replica's prompts went elsewhere
    scored = local.engine.scorer(SLOW).memo
    assert cache.get(model.fingerprint, list(scored)) == scored  # every pair cached, each score right


def test_one_of_three_serve_replicas_dead_before_the_first_request_still_gives_the_healthy_verdicts() -> None:
    local = run_suites(SUITES, [SLOW])
    with replicas(SLOW, 3) as running:
        victim = running[1][0]
        victim.kill()
        victim.wait(timeout=10)
        spec = multi_spec([url for _, url in running], "backoff=5&timeout=10&retries=1")
        served = run_suites(SUITES, [spec])
    assert not served.errors
    got = {(r.suite, r.test): r.to_json() for r in served.results}
    for key, mine in {(r.suite, r.test): r.to_json() for r in local.results}.items():
        assert (got[key]["outcome"], got[key]["counts"], got[key]["cases"]) == \
               (mine["outcome"], mine["counts"], mine["cases"]), key
    model = served.engine.model(spec)
    answered = [(one["url"], one["answered"]) for one in model.provenance()["served_by"]]
    assert answered == [(url, url != running[1][1]) for _, url in running]


def test_a_replica_down_at_load_joins_when_back_and_none_answering_names_each_url() -> None:
    with ExitStack() as stack:
        servers = emulators(stack, 2)
        late = servers[1]
        late.server.script(Reply({"error": {"message": "loading"}}, 503))  # its /v1/models, at load
        model = load_model(multi_spec([s.url for s in servers], "backoff=0.2&timeout=5&retries=0"))
        assert list(model.served) == [servers[0].url] and model.replicas[1].is_down()
        assert model.score(PAIRS[:8]) == [right(p) for p in PAIRS[:8]] and not late.pooling_calls()
        time.sleep(0.25)
        assert model.score(PAIRS) == [right(p) for p in PAIRS]
        assert list(model.served) == [s.url for s in servers] and late.pooling_calls()
        record = model.provenance()["served_by"][1]
        assert record == {"url": late.url, "answered": True, "id": "org/reward-model", "root": "/models/org/reward-model",
                          "revision": None, "server_version": "0.34.0", "fingerprint": None,
                          "raw_scores_by": ["use_activation"]}
        for server in servers:
            server.kill()
        with pytest.raises(BackendError) as caught:
            load_model(multi_spec([s.url for s in servers], "backoff=0&timeout=2&retries=1"))
    message = str(caught.value)
    assert message.startswith("--rm: none of the 2 replicas answers /v1/models after 2 attempt(s) each: ")
    assert all(f"{s.url} (cannot connect (connection refused))" in message for s in servers) and "\n" not in message
