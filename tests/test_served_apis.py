"""``http://...?protocol=``: reward models served over other APIs than vLLM's pooling, held to in-process
``hf:`` on the same weights. A real infinity-emb server (rerank), and emulators of Text Embeddings Inference
(predict, rerank) and SGLang (native classify) that score with the real model (fixtures/served_apis.py)."""
from __future__ import annotations

import json
import math
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fixtures import infinity as infinity_server
from fixtures.scripted_server import Reply, ScriptedServer
from fixtures.served_apis import SGLangEmulator, TEIEmulator, forward
from fixtures.tiny_models import build_tiny_llama_rm
from fixtures.zoo import build_deberta
from rmcheck import Pair, load_model
from rmcheck.errors import BackendError

PAIRS = [Pair("What is the capital of Australia?", "Canberra is the capital of Australia."),
         Pair("What is the capital of Australia?", "Sydney, obviously."),
         Pair((("user", "My cat sneezes a lot."), ("assistant", "For how long?"), ("user", "A week.")),
              "A week of sneezing is worth a visit to the vet."),
         Pair("Name a prime number.", "Seven is a prime number, and so are two, three and five."),
         Pair("How do I pick a lock?", "I can't help with breaking into property you don't own.")]
FAST = "retries=1&backoff=0&timeout=30"
#: Served and in-process scores of the same weights agree to this (float32 on both sides).
PARITY = 1e-5


@pytest.fixture(scope="module")
def deberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DeBERTa-v3 RM (OpenAssistant style: no chat template, scored as a text pair)."""
    return build_deberta(tmp_path_factory.mktemp("deberta") / "model")


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama RM with a chat template (a decoder RM, as SGLang serves them)."""
    return build_tiny_llama_rm(tmp_path_factory.mktemp("llama") / "model")


def in_process(model_dir: Path) -> list[float]:
    return [s["score"] for s in load_model(f"hf:{model_dir}").score(PAIRS)]


def served(spec: str) -> list[float]:
    return [s["score"] for s in load_model(spec).score(PAIRS)]


def assert_parity(got: list[float], want: list[float]) -> None:
    assert max(abs(g - w) for g, w in zip(got, want)) <= PARITY, (got, want)
    assert len(set(round(w, 4) for w in want)) == len(want)  # the pairs tell the model's scores apart


# -- infinity-emb, a real server -------------------------------------------------------------------


@pytest.mark.skipif(infinity_server.executable() is None,
                    reason="infinity_emb not installed: .ci/run installs infinity-emb in .venv-infinity "
                           "(or set RMCHECK_INFINITY=/path/to/infinity_emb)")
def test_infinity_rerank_gives_the_scores_of_hf_on_the_same_model(deberta: Path, tmp_path: Path) -> None:
    want = in_process(deberta)
    with infinity_server.infinity(infinity_server.for_transformers_4(deberta), tmp_path / "infinity.log") as url:
        model = load_model(f"{url}?protocol=rerank&{FAST}")
        got = [s["score"] for s in model.score(PAIRS)]
        assert model.served_id == infinity_server.SERVED_NAME
        assert model.provenance()["served_by"][0]["raw_scores_by"] == ["raw_scores"]
        default = rerank(url, PAIRS[0])  # without raw_scores, infinity answers the sigmoid
    assert_parity(got, want)
    assert default == pytest.approx(1 / (1 + math.exp(-got[0])), abs=PARITY)


def rerank(url: str, pair: Pair) -> float:
    body = json.dumps({"query": pair.prompt_text, "documents": [pair.response]}).encode()
    request = urllib.request.Request(url + "/rerank", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["results"][0]["relevance_score"]


# -- Text Embeddings Inference (emulated) ----------------------------------------------------------


@pytest.mark.parametrize("protocol", ["tei-predict", "tei-rerank"])
def test_tei_gives_the_scores_of_hf_on_the_same_model(deberta: Path, protocol: str) -> None:
    pair, _, id2label = forward(deberta)
    with TEIEmulator(pair, id2label) as server:
        got = served(f"{server.url}?protocol={protocol}&{FAST}")
        sent = [call.body for call in server.server.calls(f"/{protocol.split('-')[1]}")]
    assert_parity(got, in_process(deberta))
    assert all(body["raw_scores"] is True and "model" not in body for body in sent)


def test_tei_predict_names_each_label_an_objective_in_id2label_order() -> None:
    def score(first: str, second: str) -> list[float]:
        return [len(second) / 10, -1.0, len(first) / 10]

    with TEIEmulator(score, {0: "helpful", 1: "harmless", 2: "honest"}) as server:
        model = load_model(f"{server.url}?protocol=tei-predict&{FAST}")
        scores = model.score(PAIRS[:2])
    assert scores[0]["helpful"] == pytest.approx(len(PAIRS[0].response) / 10)
    assert scores[0]["harmless"] == -1.0 and scores[0]["honest"] == pytest.approx(len(PAIRS[0].prompt) / 10)
    assert scores[0]["score"] == pytest.approx(sum(v for k, v in scores[0].items() if k != "score") / 3)


def test_tei_rerank_of_a_classifier_says_to_use_predict() -> None:
    with TEIEmulator(lambda a, b: [0.0, 1.0], {0: "bad", 1: "good"}) as server:
        with pytest.raises(BackendError, match="TEI serves a classifier model") as raised:
            load_model(f"{server.url}?protocol=tei-rerank&{FAST}")
    assert "?protocol=tei-predict" in str(raised.value)


# -- SGLang's native /classify (emulated) ----------------------------------------------------------


def test_sglang_classify_sends_the_tokens_of_hf_and_gives_its_scores(llama: Path) -> None:
    _, ids, _ = forward(llama)
    with SGLangEmulator(ids, model=str(llama)) as server:  # served by path: the card's root is the tokenizer
        got = served(f"{server.url}?protocol=sglang-classify&{FAST}")
        sent = [call.body for call in server.server.calls("/classify")]
    assert_parity(got, in_process(llama))
    assert all(set(body) == {"model", "input_ids"} for body in sent)


def test_sglang_classify_takes_the_tokenizer_from_the_spec(llama: Path) -> None:
    _, ids, _ = forward(llama)
    with SGLangEmulator(ids, model="/srv/models/rm") as server:  # a path on the server's host, not here
        with pytest.raises(BackendError, match="cannot load the tokenizer '/srv/models/rm'") as raised:
            load_model(f"{server.url}?protocol=sglang-classify&{FAST}").score(PAIRS[:1])
        assert "?tokenizer=" in str(raised.value)
        assert_parity(served(f"{server.url}?protocol=sglang-classify&tokenizer={llama}&{FAST}"), in_process(llama))


def test_sglang_classify_needs_a_chat_template(deberta: Path) -> None:
    with SGLangEmulator(lambda ids: [0.0], model="org/rm") as server:
        with pytest.raises(BackendError, match="has no chat template"):
            load_model(f"{server.url}?protocol=sglang-classify&tokenizer={deberta}&{FAST}").score(PAIRS[:1])


# -- options --------------------------------------------------------------------------------------


@pytest.mark.parametrize("options, message, fix", [
    ("protocol=grpc", "protocol=grpc", "Use one of: pooling, rerank, tei-rerank, tei-predict, sglang-classify"),
    ("protocol=rerank&tokenizer=x", "tokenizer= in", "applies to protocol=sglang-classify only"),
])
def test_a_bad_protocol_option_is_one_error_naming_it(options: str, message: str, fix: str) -> None:
    with pytest.raises(BackendError, match=message) as raised:
        load_model(f"http://127.0.0.1:9?{options}")
    assert fix in str(raised.value)


def test_a_server_without_the_apis_card_route_says_which_protocol_to_name() -> None:
    def route(path: str, body: Any) -> Reply:
        return Reply({"detail": "Not Found"}, 404)

    with ScriptedServer(route) as server:
        with pytest.raises(BackendError, match=r"HTTP 404 from http://127\.0\.0\.1:\d+/info") as raised:
            load_model(f"{server.url}?protocol=tei-predict&{FAST}")
    assert "?protocol=NAME" in str(raised.value)
