"""llm_rewrite and cassettes, against a scripted OpenAI-compatible server on 127.0.0.1."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import given, settings, strategies as st

from fixtures.scripted_server import Reply, ScriptedServer, chat_completion, rewriter_and_judge
from rmcheck import Change, ModelOptions
from rmcheck.llm import client as llm
from rmcheck.engine import run_suites
from rmcheck.perturb.llm_rewrite import diff_hunks

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "fixtures" / "llm" / "rewrites.rmcheck.yaml"

RMS = '''
def lengthy(prompts, responses):
    return [len(r.split()) / 10 for r in responses]

def hates_large(prompts, responses):
    return [-float(r.count("large")) for r in responses]

def overlap(prompts, responses):
    words = lambda text: set(text.lower().replace("?", " ").split())
    return [float(len(words(p) & words(r))) for p, r in zip(prompts, responses)]
'''


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CI", "OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "rw_rms.py").write_text(RMS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(rewriter_and_judge) as running:
        yield running


def write_suite(tmp_path: Path, perturb: str) -> Path:
    path = tmp_path / "words.rmcheck.yaml"
    path.write_text(textwrap.dedent(f"""\
        rmcheck: 1
        suite: words
        cases:
          - {{id: dog, prompt: Describe the dog., response: The big dog is good and often helps.}}
          - {{id: cat, prompt: Describe the cat., response: A cat sleeps.}}
        tests:
          - name: synonyms
            perturb: {{op: llm_rewrite, {perturb}}}
            expect: invariant
        """))
    return path


def synonyms(server: ScriptedServer, **extra: str) -> str:
    args = {"instruction": "Use synonyms.", "n": "3", "model": "scripted", "base_url": f"{server.url}/v1", **extra}
    return ", ".join(f"{k}: {v!r}" if k == "instruction" else f"{k}: {v}" for k, v in args.items())


def run(path: Path, spec: str = "python:rw_rms:hates_large", **extra: str):
    report = run_suites([path], [spec], ModelOptions(extra=extra))
    return report.outcomes[0]


@given(st.lists(st.sampled_from(["a", "b", "big", "dog", " ", "\n", ".", "cat"]), max_size=12),
       st.lists(st.sampled_from(["a", "b", "large", "dog", " ", "  ", "!", "cat"]), max_size=12))
@settings(max_examples=200, deadline=None)
def test_diff_hunks_rebuild_the_rewrite_exactly(old: list[str], new: list[str]) -> None:
    original, rewrite = "".join(old), "".join(new)
    change = Change(original, diff_hunks(original, rewrite))  # Change rejects overlapping hunks
    assert change.apply() == rewrite
    assert change.apply(()) == original


def test_word_diff_gives_one_hunk_per_edited_run_of_words() -> None:
    hunks = diff_hunks("The big dog is good.", "The large dog remains good, really.")
    assert [(h.start, h.end, h.replacement) for h in hunks] == [(4, 7, "large"), (12, 20, "remains good, really.")]


def test_records_replays_offline_under_ci_and_shrinks_rewrites(server: ScriptedServer, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_suite(tmp_path, synonyms(server))
    first = run(path)
    # dog: variant 0 swaps 4 words, variant 1 the first half, variant 2 is unchanged (dropped); cat has nothing to change
    assert [(c.id, c.verdict) for c in first.cases] == [("dog~1", "failed"), ("dog~2", "failed"), ("cat", "not_applicable")]
    assert len(server.calls("/v1/chat/completions")) == 2
    cassettes = sorted((tmp_path / "fixtures" / "cassettes" / "words").glob("*.json"))
    assert len(cassettes) == 2
    minimal = first.cases[0].counterfactual
    # three hunks (big; is good; often), and only big -> large matters to this RM
    assert (minimal.edits_kept, minimal.edits_total, minimal.status) == (1, 3, "minimal")
    assert minimal.sides[0].minimal == "The large dog is good and often helps."

    server.stop()
    monkeypatch.setenv("CI", "true")
    replayed = run(path)
    assert [(c.id, c.verdict, c.delta) for c in replayed.cases] == [(c.id, c.verdict, c.delta) for c in first.cases]
    assert len(server.calls()) == 2

    cassettes[0].unlink()
    missing = run(path)
    assert f"{path}:7" in str(missing) and "CI=true forbids calling the LLM" in str(missing)
    assert "--rmcheck-llm=record" in str(missing) and str(cassettes[0]) in str(missing)

    monkeypatch.delenv("CI")
    (tmp_path / "pyproject.toml").write_text("[tool.rmcheck.llm]\nmax_retries = 0\n")
    unreachable = run(path)  # auto mode calls out for the missing answer; the server is gone
    assert f"cannot reach the LLM at {server.url}/v1 (1 attempt(s))" in str(unreachable)
    assert "\n" not in str(unreachable)


def test_modes_replay_record_and_live(server: ScriptedServer, tmp_path: Path) -> None:
    path = write_suite(tmp_path, synonyms(server))
    folder = tmp_path / "fixtures" / "cassettes" / "words"
    assert "--rmcheck-llm=replay forbids" in str(run(path, llm="replay"))
    assert not server.calls()
    run(path, llm="live")
    assert len(server.calls()) == 2 and not folder.exists()
    run(path)
    run(path, llm="record")
    assert len(server.calls()) == 6 and len(list(folder.glob("*.json"))) == 2
    run(path, llm="replay")
    assert len(server.calls()) == 6


def test_unchanged_rewrites_are_not_applicable(tmp_path: Path) -> None:
    echo = lambda path, body: Reply(chat_completion(body["messages"][-1]["content"].split("<response>\n")[1]
                                                    .split("\n</response>")[0]))  # noqa: E731
    with ScriptedServer(echo) as server:
        result = run(write_suite(tmp_path, synonyms(server, n="1")))
    assert result.outcome == "not_applicable"
    assert {c.reason for c in result.cases} == {"llm_rewrite does not apply (nothing to change)"}


def test_settings_come_from_pyproject_then_environment(server: ScriptedServer, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_suite(tmp_path, "attribute: wording")
    no_model = run(path)
    assert "no LLM model named" in str(no_model) and "[tool.rmcheck.llm] model" in str(no_model)
    (tmp_path / "pyproject.toml").write_text(f'[tool.rmcheck.llm]\nmodel = "from-pyproject"\nbase_url = "{server.url}/v1"\n')
    assert run(path, "python:rw_rms:lengthy").outcome == "passed"  # synonyms keep the length
    assert server.calls()[-1].body["model"] == "from-pyproject"
    assert "with more wording" in server.calls()[-1].body["messages"][-1]["content"]
    (tmp_path / "pyproject.toml").unlink()
    monkeypatch.setenv("OPENAI_MODEL", "from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
    run(path, llm="live")
    assert server.calls()[-1].body["model"] == "from-env"


@pytest.mark.parametrize(("perturb", "message"), [
    ("n: 2", "llm_rewrite needs an instruction or an attribute"),
    ("attribute: tone, direction: up", "direction 'up' is neither 'more' nor 'less'"),
    ("attribute: tone, n: 0", "n must be a whole number from 1 to 16"),
    ("attribute: tone, temperature: hot", "temperature must be a number from 0 to 2"),
])
def test_bad_arguments_name_the_test(tmp_path: Path, perturb: str, message: str) -> None:
    path = write_suite(tmp_path, perturb)
    error = run(path)
    assert message in str(error) and f"{path}:7" in str(error)


def test_the_example_suite_replays_its_committed_cassette_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(llm, "_client", lambda endpoint: pytest.fail("a live LLM call was attempted"))
    report = run_suites([EXAMPLE], ["python:rw_rms:lengthy"])
    assert not report.errors
    outcomes = {r.test: r.outcome for r in report.results}
    # Recorded from SmolLM2-135M-Instruct: its "synonyms" for the kettle answer drop half the words, its
    # "more verbose" answer is shorter, and it left the Canberra answer unchanged (not applicable).
    assert outcomes == {"synonyms-keep-the-score": "failed", "verbosity-does-not-buy-reward": "passed",
                        "paraphrased-question-keeps-the-score": "passed"}  # a length RM ignores the question
    by_test = {r.test: r for r in report.results}
    assert {c.verdict for c in by_test["synonyms-keep-the-score"].cases if c.id.startswith("capital")} \
        == {"not_applicable"}


def test_paraphrased_questions_from_a_real_model_catch_an_rm_that_keys_on_question_words(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The example suite's paraphrases (SmolLM2-135M-Instruct, replayed) move an RM that counts the question's
    words in the answer; the minimal pair is an edit of the question, the response untouched."""
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(llm, "_client", lambda endpoint: pytest.fail("a live LLM call was attempted"))
    report = run_suites([EXAMPLE], ["python:rw_rms:overlap"])
    (result,) = [r for r in report.results if r.test == "paraphrased-question-keeps-the-score"]
    assert result.outcome == "failed"
    # 'What is the capital of Australia?' answered as a statement is no question: dropped, never judged.
    assert not any(c.example and c.example.perturbed.startswith("A capital city") for c in result.cases)
    for case in result.failures:
        cf = case.counterfactual
        assert cf.status == "minimal" and cf.sides[0].role == "prompt" and cf.sides[0].minimal.endswith("?")
        assert cf.sides[1].minimal == cf.sides[1].original


def test_the_recording_server_speaks_the_openai_protocol(tmp_path: Path) -> None:
    """fixtures/llm_server.py (which recorded the example cassettes) answers rmcheck's client, on 127.0.0.1,
    with one choice per requested variant; a stand-in generator replaces the model here."""
    import threading

    from fixtures.llm_server import serve

    class Echo:
        def answer(self, body: dict) -> list[tuple[str, None]]:
            text = body["messages"][-1]["content"].split("<response>\n")[1].split("\n</response>")[0]
            return [(text.replace("big", "large"), None)] * int(body.get("n", 1))

    server = serve(Echo(), 0)  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        path = write_suite(tmp_path, f"instruction: Use synonyms., n: 2, model: m, base_url: 'http://{host}:{port}/v1'")
        result = run(path)
    finally:
        server.shutdown()
    assert result.outcome == "failed"  # hates_large: 'big' became 'large'
    assert [c.id for c in result.failures] == ["dog"]
