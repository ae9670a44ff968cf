"""openai:MODEL judges against a scripted OpenAI-compatible server: ratings, logprobs, faults, secrets."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from fixtures.scripted_server import (
    FAST_RETRY, PeakCounter, Reply, ScriptedServer, chat_completion, error_body, rewriter_and_judge)
from rmcheck import ModelOptions, Pair, load_model
from rmcheck.backends.openai_judge import expected_rating, parse_rating
from rmcheck.errors import RmcheckError

SECRET = "sk-rmcheck-TEST-5ecret-do-not-leak-0123456789"
PAIRS = [Pair("What is the capital of Australia?", "Canberra."), Pair("Hi", "Hello there, how can I help you today?")]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CI", "OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(rewriter_and_judge) as running:
        yield running


def judge(server: ScriptedServer, tmp_path: Path, llm: str = "auto", **settings: object):
    """An openai: judge at the scripted server; ``settings`` go to [tool.rmcheck.judge]."""
    table = "\n".join(f"{k} = {json.dumps(v)}" for k, v in {"max_retries": 2, "timeout": 5, **settings}.items())
    (tmp_path / "pyproject.toml").write_text(f"[tool.rmcheck.judge]\n{table}\n")
    return load_model(f"openai:judge-1@{server.url}/v1", ModelOptions(extra={"llm": llm}))


def rating(pair: Pair) -> int:
    """What the scripted judge answers: 1 + (words of its user message) % 9."""
    user = f"<prompt>\n{pair.prompt_text}\n</prompt>\n\n<response>\n{pair.response}\n</response>"
    return 1 + len(user.split()) % 9


def recorded(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "fixtures" / "cassettes" / "judge" / "judge-1").glob("*.json"))


def test_rating_from_structured_output_or_expected_over_logprobs(server: ScriptedServer, tmp_path: Path) -> None:
    plain = judge(server, tmp_path, logprobs=False).score(PAIRS)
    assert plain == [{"score": float(rating(p))} for p in PAIRS]
    body = server.calls()[0].body
    assert body["response_format"]["type"] == "json_schema" and "logprobs" not in body
    weighted = judge(server, tmp_path).score(PAIRS)  # alternatives: r with p=0.75, r+1 with p=0.25
    assert [s["score"] for s in weighted] == pytest.approx([r + 0.25 if r < 9 else 9.0 for r in map(rating, PAIRS)])
    assert server.calls()[-1].body["top_logprobs"] == 20


def test_parse_rating_and_expectation_edge_cases() -> None:
    assert parse_rating('{"rating": 7}', (1, 9)) == 7 and parse_rating("3", (1, 9)) == 3
    for bad in ("", "seven", '{"rating": 12}', '{"rating": 2.5}', '{"score": 4}', "true", "[5]"):
        assert parse_rating(bad, (1, 9)) is None, bad
    assert expected_rating(None, 5, (1, 9)) is None
    tokens = {"content": [{"token": "5", "logprob": 0.0, "top_logprobs": [
        {"token": "5", "logprob": -0.5}, {"token": " 5", "logprob": -3.0}, {"token": "x", "logprob": -0.1}]}]}
    assert expected_rating(tokens, 5, (1, 9)) == pytest.approx(5.0)


def test_unparseable_answers_are_reported_with_the_pair_and_never_recorded(server: ScriptedServer, tmp_path: Path) -> None:
    model = judge(server, tmp_path, concurrency=1)
    server.script(Reply(chat_completion("I would say it is quite good")))
    with pytest.raises(RmcheckError) as caught:
        model.score(PAIRS)
    message = str(caught.value)
    assert "1 of 2 judge call(s) failed" in message and "unparseable rating" in message
    assert "'What is the capital of Australia?'" in message and "'I would say it is quite good'" in message
    assert len(recorded(tmp_path)) == 1  # only the answer that parsed
    assert model.score(PAIRS)[0]["score"] == pytest.approx(rating(PAIRS[0]) + 0.25)
    assert len(recorded(tmp_path)) == 2


def test_replays_under_ci_and_a_missing_answer_is_an_error(server: ScriptedServer, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    first = judge(server, tmp_path).score(PAIRS)
    calls = len(server.calls())
    server.stop()
    monkeypatch.setenv("CI", "true")
    assert judge(server, tmp_path).score(PAIRS) == first and len(server.calls()) == calls
    with pytest.raises(RmcheckError, match="CI=true forbids calling the LLM"):
        judge(server, tmp_path).score([Pair("new", "pair")])


@pytest.mark.parametrize(("faults", "max_retries", "error", "calls"), [
    ([Reply(error_body("slow down", 429), 429, FAST_RETRY)] * 2, 2, None, 3),
    ([Reply(error_body("busy", 503), 503, FAST_RETRY)], 2, None, 2),
    ([Reply(error_body("boom", 500), 500, FAST_RETRY)] * 2, 1, "HTTP 500 from the LLM at {url}/v1 (2 attempt(s)): boom", 2),
    ([Reply(error_body("slow down", 429), 429, FAST_RETRY)] * 2, 1,
     "rate-limited every attempt (HTTP 429, 2 attempt(s))", 2),
    ([Reply(raw="{not json")], 0, "the LLM at {url}/v1 sent a malformed answer (JSONDecodeError", 1),
    ([Reply(chat_completion('{"rating": 5}'), delay=1.0)], 0, "did not answer within 0.25 s (1 attempt(s))", 1),
    ([Reply(error_body("no such model", 404), 404)], 2, "HTTP 404 from the LLM at {url}/v1: no such model", 1),
    ([Reply(die=True)], 0, "cannot reach the LLM at {url}/v1 (1 attempt(s))", 1),
    ([Reply(error_body("bad key", 401), 401)], 2, "the LLM at {url}/v1 refused the API key (HTTP 401)", 1),
])
def test_faults_give_a_clear_error_or_a_bounded_retry_and_nothing_is_recorded(
        server: ScriptedServer, tmp_path: Path, faults: list[Reply], max_retries: int, error: str | None,
        calls: int) -> None:
    model = judge(server, tmp_path, max_retries=max_retries, timeout=0.25, concurrency=1)
    server.script(*faults)
    pair = PAIRS[:1]
    if error is None:
        assert model.score(pair) == [{"score": pytest.approx(rating(pair[0]) + 0.25)}]
        assert len(recorded(tmp_path)) == 1
    else:
        with pytest.raises(RmcheckError) as caught:
            model.score(pair)
        assert error.format(url=server.url) in str(caught.value) and "\n" not in str(caught.value)
        assert recorded(tmp_path) == []
    assert len(server.calls()) == calls


def test_concurrency_is_capped(tmp_path: Path) -> None:
    counter = PeakCounter(rewriter_and_judge)
    with ScriptedServer(counter) as server:
        judge(server, tmp_path, concurrency=2, llm="live").score([Pair("p", f"answer {i}") for i in range(8)])
        assert len(server.calls()) == 8
    assert 1 <= counter.peak <= 2


def test_api_key_is_sent_but_never_written_printed_or_logged(pytester: pytest.Pytester, server: ScriptedServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    pytester.makefile(".toml", pyproject=f'[tool.rmcheck.llm]\nbase_url = "{server.url}/v1"\nmodel = "rewriter"\n')
    pytester.makefile(".rmcheck.yaml", verbose="""\
        rmcheck: 1
        suite: verbose
        cases:
          - {id: a, prompt: Say hi., response: Hi there.}
          - {id: b, prompt: What is 2 + 2?, response: It is 4.}
        tests:
          - {name: padding, perturb: {op: llm_rewrite, attribute: verbosity}, expect: not_higher}
        """)
    result = pytester.runpytest("--rm", "openai:judge-1", "--rmcheck-json", "run.json", "--log-cli-level=DEBUG",
                                "-p", "no:cacheprovider")
    assert result.ret in (0, 1), result.stdout.str()
    assert json.loads((pytester.path / "run.json").read_text())["results"][0]["counts"]["not_applicable"] == 0
    assert all(call.headers.get("Authorization", call.headers.get("authorization")) == f"Bearer {SECRET}"
               for call in server.calls())
    written = [p for p in pytester.path.rglob("*") if p.is_file()]
    assert len([p for p in written if "cassettes" in p.parts]) == 2 + 4  # 2 rewrites, 4 judged pairs
    for path in written:
        assert SECRET not in path.read_text(encoding="utf-8", errors="replace"), path
    assert SECRET not in result.stdout.str() + result.stderr.str()
    assert "HTTP Response: POST 200" in result.stdout.str()  # the openai client's debug log was captured too


def test_server_messages_that_echo_the_key_are_redacted(server: ScriptedServer, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server.script(Reply(error_body(f"invalid key {SECRET}", 400), 400))
    with pytest.raises(RmcheckError) as caught:
        judge(server, tmp_path).score(PAIRS[:1])
    assert "invalid key <redacted>" in str(caught.value) and SECRET not in str(caught.value)
