"""The http:// backend against the vLLM emulator, release by release: raw scores asked for the way each
release takes them, releases that cannot give them refused, activated answers refused, error shapes read,
long conversations warned about."""
from __future__ import annotations

import json
import urllib.request
import warnings
from dataclasses import replace

import pytest

from fixtures.vllm_emulator import RELEASES, VERSIONS, VLLMEmulator, activated, raw_scores
from rmcheck import Pair, load_model
from rmcheck.backends.vllm import USE_ACTIVATION, Protocol, parse_version
from rmcheck.errors import BackendError, RmcheckError, ScoreError

PAIRS = [Pair("What is the capital of Australia?", "Canberra is the capital of Australia."),
         Pair("What is the capital of Australia?", "Canberra."),
         Pair((("system", "Be brief."), ("user", "Hi")), "Hello there, how can I help you today?"),
         Pair("Name a prime.", "Seven is a prime number, and so are two, three and five.")]
FAST = "?retries=1&backoff=0&timeout=5"
PER_REQUEST = [v for v in VERSIONS if parse_version(v) >= USE_ACTIVATION]
NO_SWITCH = [v for v in VERSIONS if parse_version(v) < USE_ACTIVATION]


def expected(pair: Pair, labels: int = 1, activate: bool = False) -> dict[str, float]:
    values = raw_scores(pair.messages(), labels)
    values = activated(values) if activate else values
    if labels == 1:
        return {"score": pytest.approx(values[0])}
    named = {f"LABEL_{i}": pytest.approx(v) for i, v in enumerate(values)}
    return {**named, "score": pytest.approx(sum(values) / len(values))}


@pytest.mark.parametrize("token_level", [False, True])
@pytest.mark.parametrize("version", PER_REQUEST)
def test_raw_scores_from_every_release_that_can_give_them(version: str, token_level: bool) -> None:
    task = RELEASES[version].token_task if token_level else "classify"
    with VLLMEmulator(version, task=task) as server:
        model = load_model(server.url + FAST)
        assert model.score(PAIRS) == [expected(p) for p in PAIRS]
        assert model.cacheable is False  # vLLM advertises names only
        sent = {tuple(sorted(k for k in body if k not in ("model", "messages"))) for body in server.pooling_calls()}
    assert sent == {("use_activation",)}


def pooled(server: VLLMEmulator, **fields: object) -> list:
    body = json.dumps({"model": server.model, "messages": PAIRS[0].messages(), **fields}).encode()
    request = urllib.request.Request(server.url + "/pooling", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.load(answer)["data"][0]["data"]


def test_0_11_1_mis_parses_the_old_names_and_rmcheck_is_immune() -> None:
    raw, on = raw_scores(PAIRS[0].messages()), activated(raw_scores(PAIRS[0].messages()))
    with VLLMEmulator("0.11.1") as server:
        # vllm/config/pooler.py get_use_activation: `softmax := ... is not None` makes `false` True
        assert pooled(server, softmax=False) == pooled(server, activation=False) == on
        assert pooled(server, softmax=False, use_activation=False) == on  # the old name wins, wrongly
        assert pooled(server, use_activation=False) == raw and pooled(server) == on
        assert load_model(server.url + FAST).score(PAIRS) == [expected(p) for p in PAIRS]
        mine = server.pooling_calls()[-len(PAIRS):]
        assert all("softmax" not in body and "activation" not in body for body in mine)
    with VLLMEmulator("0.17.0") as server:  # the old names are gone: ignored, activation stays on
        assert pooled(server, softmax=False) == on and pooled(server, use_activation=False) == raw


def test_the_token_level_task_has_each_releases_name() -> None:
    assert {v: RELEASES[v].token_task for v in VERSIONS} == {
        "0.9.2": "reward", "0.10.0": "encode", "0.10.2": "encode", "0.11.1": "token_classify",
        "0.17.0": "token_classify", "0.34.0": "token_classify"}
    with pytest.raises(ValueError, match="no pooling task 'reward'"):
        VLLMEmulator("0.11.1", task="reward")


@pytest.mark.parametrize("version", ["0.11.1", "0.34.0"])
def test_several_labels_are_objectives_and_softmax_rows_are_refused(version: str) -> None:
    with VLLMEmulator(version, labels=2) as server:
        assert load_model(server.url + FAST).score(PAIRS) == [expected(p, 2) for p in PAIRS]
    with VLLMEmulator(version, labels=2, server_activation=True) as server:
        model = load_model(server.url + FAST)
        served = model.served[server.url]  # as if the field were dropped (a proxy that drops it)
        model.served[server.url] = replace(served, protocol=Protocol(version, {}))
        with pytest.raises(ScoreError, match=r"activated scores, not raw ones: each of the first 4 answers has 2 "
                                             r"values that sum to 1 \(softmax\)"):
            model.score(PAIRS)


@pytest.mark.parametrize("version", NO_SWITCH)
def test_before_0_11_1_only_a_server_started_raw_will_do(version: str) -> None:
    with VLLMEmulator(version) as server:
        with pytest.raises(BackendError) as caught:
            load_model(server.url + FAST)
        message = str(caught.value)
        assert message.startswith(f"--rm: vLLM {version} at {server.url} applies sigmoid/softmax to every score")
        assert "--override-pooler-config" in message and "?activation=off" in message and "\n" not in message
        # told it was started raw, but it was not: the answers give it away
        with pytest.raises(ScoreError, match=r"returns activated scores.*all of the first 4 scores lie in \(0, 1\)"):
            load_model(server.url + FAST + "&activation=off").score(PAIRS)
        # activated scores accepted on purpose
        assert load_model(server.url + FAST + "&activation=ok").score(PAIRS) == [expected(p, activate=True)
                                                                                 for p in PAIRS]
    with VLLMEmulator(version, server_activation=False) as server:  # --override-pooler-config: raw
        assert load_model(server.url + FAST + "&activation=off").score(PAIRS) == [expected(p) for p in PAIRS]
        assert all(set(body) == {"model", "messages"} for body in server.pooling_calls())


def test_a_server_without_version_gets_use_activation_and_the_activation_check() -> None:
    with VLLMEmulator("0.9.2", expose_version=False) as server:  # an old vLLM behind a proxy: no /version
        model = load_model(server.url + FAST)
        assert model.served[server.url].protocol.fields == {"use_activation": False}
        with pytest.raises(ScoreError, match="activated scores"):
            model.score(PAIRS)


@pytest.mark.parametrize("version", ["0.10.0", "0.10.2"])  # flat errors before 0.10.1, nested after
def test_error_shapes_of_each_release_are_read(version: str) -> None:
    with VLLMEmulator(version, max_model_len=30, server_activation=False) as server:
        model = load_model(server.url + FAST + "&activation=off")
        long = Pair("Tell me everything.", "word " * 40)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(BackendError) as error:
                model.score([long])
        assert f"HTTP 400 from {server.url}/pooling: This model's maximum context length is 30 tokens" in str(error.value)
        mine = [str(w.message) for w in caught if "max_model_len" in str(w.message)]
        assert len(mine) == 1 and "longer than the server's max_model_len 30" in mine[0]
        assert "49 tokens" in mine[0]  # counted by the server's /tokenize


def test_unknown_fields_are_dropped_silently_like_vllm() -> None:
    with VLLMEmulator("0.17.0") as server:  # `softmax` is unknown there: ignored, scores activated
        model = load_model(server.url + FAST + "&activation=ok")
        model.served[server.url] = replace(model.served[server.url], protocol=Protocol("0.17.0", {"softmax": False}))
        assert model.score(PAIRS[:1]) == [expected(PAIRS[0], activate=True)]


def test_a_replica_that_serves_another_model_is_a_usage_error_naming_it() -> None:
    with VLLMEmulator() as one, VLLMEmulator(model="org/other-rm") as two:
        with pytest.raises(RmcheckError) as caught:
            load_model(f"http://127.0.0.1:{one.server.port},127.0.0.1:{two.server.port}{FAST}")
    message = str(caught.value)
    assert message.startswith(f"--rm: replica {two.url} serves another model (id 'org/other-rm'")
    assert f"than {one.url} (id 'org/reward-model'" in message and "List replicas of one model only" in message
