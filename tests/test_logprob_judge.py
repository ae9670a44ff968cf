"""``openai:MODEL?judge=pairwise&verdict=logprobs``: verdicts read from the labels' next-token probabilities, against
a scripted OpenAI-compatible server."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from fixtures.scripted_server import Reply, ScriptedServer, chat_completion
from rmcheck import ModelOptions, load_model
from rmcheck.engine import run_suites
from rmcheck.errors import RmcheckError
from rmcheck.judges.interface import Query
from rmcheck.judges.logprob_verdict import label_probabilities, parse
from rmcheck.results import TestResult as Result
from tests import planted_judges
from tests.test_judges import judge_project

SUITE = Path(__file__).resolve().parent.parent / "suites" / "judge-consistency.rmcheck.yaml"
ORDER, LABELS, REPEAT = "same-verdict-in-either-order", "same-verdict-under-other-labels", "same-verdict-on-every-sample"
_ASKED = re.compile(r"Answer with its label alone: (\S+) or (\S+)\.$")
_ANSWER = re.compile(r"\[The Start of Assistant (.+?)'s Answer\]\n(.*?)\n\[The End", re.S)


def top(weights: dict[str, float]) -> dict[str, Any]:
    """A one-token answer whose top logprobs are ``weights`` (token -> probability)."""
    alternatives = [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in weights.items()]
    return chat_completion(alternatives[0]["token"], logprobs=[{**alternatives[0], "top_logprobs": alternatives}])


def label_judge(path: str, body: dict[str, Any]) -> Reply:
    """Answers one token. The model named ``clean`` puts 0.6 on the better answer's label (spelt with a leading
    space) and 0.1 on the other's; ``biased`` puts 0.6 on the first label shown whatever it says; ``torn`` puts
    0.3 and 0.25 on the better and the other. None can judge the lock-picking question: no label among its top
    tokens. A request without logprobs gets a written ``[[A]]``."""
    if not body.get("logprobs"):
        return Reply(chat_completion("[[A]]"))
    user = body["messages"][-1]["content"]
    first, second = _ASKED.search(user).groups()  # type: ignore[union-attr]
    question = user.split("\n", 2)[1]
    if "lock" in question:
        return Reply(top({"I": 0.7, "The": 0.2}))
    answers = dict(_ANSWER.findall(user))
    better = max((first, second), key=lambda label: planted_judges.quality(question, answers[label]))
    other = second if better == first else first
    weights = {"biased": {first: 0.6, second: 0.1}, "clean": {f" {better}": 0.6, other: 0.1},
               "torn": {better: 0.3, other: 0.25}}[body["model"]]
    return Reply(top({"The": 0.2, **weights}))


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ScriptedServer]:
    judge_project(monkeypatch, tmp_path)
    with ScriptedServer(label_judge) as server:
        yield server


def spec(server: ScriptedServer, model: str, extra: str = "") -> str:
    return f"openai:{model}@{server.url}/v1?judge=pairwise&verdict=logprobs{extra}"


def results(paths: list[Path], specs: list[str], llm: str = "auto") -> dict[tuple[str, str], Result]:
    report = run_suites(paths, specs, ModelOptions(extra={"llm": llm}))
    assert not report.errors, report.errors
    return {(r.model, r.test): r for r in report.results}


def test_label_probabilities_sum_spellings_of_a_label_and_never_guess() -> None:
    log = math.log
    tokens = [("A", log(0.5)), (" A", log(0.1)), ("ĠB", log(0.2)), ("The", log(0.2)), ("A.", log(0.3))]
    assert label_probabilities(tokens, ("A", "B")) == pytest.approx((0.75, 0.25))
    assert label_probabilities(tokens, ("B", "A")) == pytest.approx((0.25, 0.75))
    assert label_probabilities([("2", log(0.3)), ("▁1", log(0.1))], ("1", "2")) == pytest.approx((0.25, 0.75))
    assert label_probabilities([("A", log(0.4))], ("A", "B")) == (1.0, 0.0)
    assert label_probabilities([("The", log(0.9)), ("a", log(0.1))], ("A", "B")) is None
    answer = top({"The": 0.9, "a": 0.1})
    unparsed = parse(answer, ("A", "B"), 0.0, {}, 0)
    assert unparsed.probs is None and unparsed.raw == "no label among the top 2 next tokens: 'The' 0.9, 'a' 0.1"
    with pytest.raises(RmcheckError, match="sent no logprobs"):
        parse(chat_completion("A"), ("A", "B"), 0.0, {}, 0)


def test_swap_order_catches_a_position_biased_logprob_judge_and_unlabelled_answers_are_counted(
        llm: ScriptedServer) -> None:
    found = results([SUITE], [spec(llm, "biased"), spec(llm, "clean")])
    biased, clean = found[(spec(llm, "biased"), ORDER)], found[(spec(llm, "clean"), ORDER)]
    assert biased.outcome == "failed" and biased.pass_rate == 0.0 and biased.details["position_bias"] == 1.0
    assert biased.details["minimal"][0]["change"] == "swap positions 1-2"
    assert biased.details["minimal"][0]["original"]["probs"] == pytest.approx([6 / 7, 1 / 7])
    assert clean.outcome == "passed" and clean.counts["passed"] == 9 and clean.details["position_bias"] == 0.0
    assert clean.details["unparsed"] == 2 and "no label among the top 2 next tokens: 'I' 0.7" in (clean.explanation
                                                                                                 or "")
    assert [c.id for c in clean.cases if c.verdict == "not_applicable"][0] == "lockpicking"
    body = llm.calls("/v1/chat/completions")[0].body
    assert "seed" not in body and body["temperature"] == 0
    assert body["logprobs"] is True and body["max_tokens"] == 1 and body["top_logprobs"] == 20
    assert body["messages"][-1]["content"].endswith("Answer with its label alone: A or B.")


def test_relabel_reads_the_labels_as_presented(llm: ScriptedServer) -> None:
    found = results([SUITE], [spec(llm, "clean"), spec(llm, "biased")])
    clean, biased = found[(spec(llm, "clean"), LABELS)], found[(spec(llm, "biased"), LABELS)]
    assert clean.outcome == "passed" and clean.counts["passed"] == 9  # verdicts under 1 and 2 parse and agree
    assert biased.outcome == "passed"  # labels alone do not sway it: the first label wins under either name
    asked = {call.body["messages"][-1]["content"].rsplit(": ", 1)[1] for call in llm.calls("/v1/chat/completions")}
    assert {"A or B.", "1 or 2."} <= asked


def test_repeats_share_one_answer_greedy_and_draw_reproducible_labels_at_a_temperature(llm: ScriptedServer,
                                                                                        tmp_path: Path) -> None:
    suite = tmp_path / "repeat.rmcheck.yaml"  # the built-in cases under its repeat test alone
    cases, tests = SUITE.read_text().split("\ntests:\n")
    (repeat,) = (test for test in tests.split("\n  - ") if REPEAT in test)
    suite.write_text(f"{cases}\ntests:\n  - {repeat.removeprefix('  - ')}\n")
    greedy = spec(llm, "torn")
    found = results([suite], [greedy])
    assert found[(greedy, REPEAT)].details["flip_rate"] == 0.0 and found[(greedy, REPEAT)].outcome == "passed"
    asked = [json.dumps(call.body, sort_keys=True) for call in llm.calls("/v1/chat/completions")]
    assert len(asked) == len(set(asked))  # five samples of a presentation are one request
    hot = spec(llm, "torn", "&temperature=1")
    first = results([suite], [hot])[(hot, REPEAT)]
    assert first.outcome == "failed" and first.details["flip_rate"] > 0.5  # p = 0.55 against 0.45: samples disagree
    assert len(llm.calls("/v1/chat/completions")) == len(asked)  # the same answers, replayed from the cassette
    again = results([suite], [hot], llm="replay")[(hot, REPEAT)]
    assert again.details["flip_rate"] == first.details["flip_rate"] and again.counts == first.counts


def test_text_and_logprob_answers_are_recorded_apart_and_replay_offline(llm: ScriptedServer, tmp_path: Path) -> None:
    specs = (f"openai:clean@{llm.url}/v1?judge=pairwise", spec(llm, "clean"))
    query = Query("Which city is Australia's capital?", ("Canberra.", "Sydney."), ("A", "B"))
    expected = [(1.0, 0.0), pytest.approx((6 / 7, 1 / 7))]
    assert [load_model(s).judge([query])[0].probs for s in specs] == expected
    recorded = [json.loads(p.read_text()) for p in (tmp_path / "fixtures" / "cassettes" / "judge" / "clean").iterdir()]
    assert sorted(bool(r["request"].get("logprobs")) for r in recorded) == [False, True]
    assert all(bool(r["request"].get("logprobs")) == ("logprobs" in r["response"]["choices"][0]) for r in recorded)
    llm.stop()
    replayed = [load_model(s, ModelOptions(extra={"llm": "replay"})) for s in specs]
    assert [model.judge([query])[0].probs for model in replayed] == expected
    assert replayed[0].fingerprint != replayed[1].fingerprint


@pytest.mark.parametrize("query, message", [
    ("judge=pairwise&verdict=tokens", "unknown verdict='tokens'"),
    ("judge=pairwise&verdict=logprobs&max_tokens=5", "verdict=logprobs asks for one token"),
])
def test_verdict_option_errors_are_one_line(llm: ScriptedServer, query: str, message: str) -> None:
    with pytest.raises(RmcheckError) as caught:
        load_model(f"openai:clean@{llm.url}/v1?{query}")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_server_without_logprobs_is_one_error(llm: ScriptedServer) -> None:
    llm.script(Reply(chat_completion("A")))
    query = Query("Which city is Australia's capital?", ("Canberra.", "Sydney."), ("A", "B"))
    with pytest.raises(RmcheckError, match="1 of 1 judge call\\(s\\) failed: the LLM sent no logprobs"):
        load_model(spec(llm, "clean")).judge([query])


def test_the_recording_server_sends_the_models_next_token_logprobs(tmp_path: Path) -> None:
    """fixtures/llm_server.py answers logprobs/top_logprobs as the OpenAI API shapes them, from the model's raw
    next-token distribution, each token as the tokenizer decodes it alone (a tiny causal LM stands in for SmolLM2)."""
    import threading

    import openai
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fixtures.llm_server import Generator, serve
    from fixtures.tiny_models import build_tiny_lm

    folder = build_tiny_lm(tmp_path / "lm")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    server = serve(Generator(model, tokenizer), 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    messages = [{"role": "user", "content": "Which is better, A or B?"}]
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="x")
        answer = client.chat.completions.create(model="m", messages=messages, max_tokens=2, temperature=0,
                                                logprobs=True, top_logprobs=5).model_dump(mode="json")
    finally:
        server.shutdown()
    content = answer["choices"][0]["logprobs"]["content"]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        expected = torch.topk(torch.log_softmax(model(**inputs).logits[0, -1], dim=-1), 5)
    first = content[0]["top_logprobs"]
    assert [t["token"] for t in first] == [tokenizer.decode([i]) for i in expected.indices.tolist()]
    assert [t["logprob"] for t in first] == pytest.approx(expected.values.tolist(), abs=1e-5)
    assert content[0]["token"] == first[0]["token"] and content[0]["logprob"] == pytest.approx(first[0]["logprob"])
    assert 1 <= len(content) <= 2 and all(len(c["top_logprobs"]) == 5 for c in content)
