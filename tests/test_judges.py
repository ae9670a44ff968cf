"""Generative judges (issue 28): the pairwise interface, presentation tests, and the planted judges they catch."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from fixtures.scripted_server import Reply, ScriptedServer, chat_completion
from rmcheck.engine import RunReport, run_suites
from rmcheck.errors import BackendError, RmcheckError, SuiteError
from rmcheck.judges.openai_pairwise import parse_verdict
from rmcheck.judges.presentation import Presentation, apply, hunks, original
from rmcheck.results import TestResult as Result
from rmcheck.suite.loader import load_suite
from tests import planted_judges

SUITE = Path(__file__).resolve().parent.parent / "suites" / "judge-consistency.rmcheck.yaml"
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
PLANTED = "python:tests.planted_judges:"


def results(report: RunReport) -> dict[str, Result]:
    assert not report.errors, report.errors
    return {r.test: r for r in report.results}


@pytest.fixture(scope="module")
def built_in() -> dict[str, dict[str, Result]]:
    """The built-in suite against each planted judge, and against the clean one as a scalar RM."""
    names = ("clean", "position_biased", "stochastic", "scalar_clean")
    report = run_suites([SUITE], [PLANTED + name for name in names])
    return {name: {r.test: r for r in report.results if r.model == PLANTED + name} for name in names}


def test_swap_order_fails_the_position_biased_judge_with_a_minimal_pair_and_passes_the_clean_one(
        built_in: dict[str, dict[str, Result]]) -> None:
    clean, biased = (built_in[n]["same-verdict-in-either-order"] for n in ("clean", "position_biased"))
    assert clean.outcome == "passed" and clean.counts["passed"] == 10 and clean.details["position_bias"] == 0.0
    assert biased.outcome == "failed" and biased.pass_rate == 0.0
    assert biased.details["position_bias"] == 1.0 and biased.details["position_followed"] == {"1": 10}
    first = biased.details["minimal"][0]
    assert first["change"] == "swap positions 1-2" and first["status"] == "minimal"
    assert first["original"] == {"shown": "A: chosen, B: rejected", "verdict": "chosen wins", "probs": pytest.approx(
        first["original"]["probs"])} and first["changed"]["verdict"] == "rejected wins"
    text = biased.explanation or ""
    assert "position-bias rate 1.000 (verdict follows position 1: 10)" in text
    assert "smallest change that flips the verdict: swap positions 1-2 (1 of 1 changes; 1-minimal" in text
    assert "A: rejected, B: chosen  ->  rejected wins" in text
    assert [c.reason for c in biased.failures][0] == "swap positions 1-2 flips it: chosen wins -> rejected wins"


def test_repeats_catch_the_stochastic_judge_and_report_its_flip_rate(built_in: dict[str, dict[str, Result]]) -> None:
    clean, noisy = (built_in[n]["same-verdict-on-every-sample"] for n in ("clean", "stochastic"))
    assert clean.outcome == "passed" and clean.details["flip_rate"] == 0.0
    assert noisy.outcome == "failed" and noisy.details["flip_rate"] == noisy.counts["failed"] / 10 > 0
    assert all(m["change"].startswith("sample ") for m in noisy.details["minimal"])
    # a replay asks the stochastic judge afresh: a flip it does not repeat is reported as flaky, never as minimal
    for found in noisy.details["minimal"]:
        flipped = found["original"]["verdict"] != found["changed"]["verdict"]
        assert found["status"] == ("minimal" if flipped else "flaky")


def test_a_scalar_rm_runs_the_same_suite_through_the_pairwise_adaptor(built_in: dict[str, dict[str, Result]]) -> None:
    scalar = built_in["scalar_clean"]
    assert {t: r.outcome for t, r in scalar.items()} == {
        "same-verdict-in-either-order": "passed", "same-verdict-under-other-labels": "not_applicable",
        "same-verdict-on-every-sample": "passed", "same-best-in-shuffled-lists": "passed",
        "best-of-n-accuracy-over-orders": "passed"}
    assert scalar["same-verdict-in-either-order"].counts["passed"] == 12  # best-of-4 cases too: softmax over 4
    assert "sigmoid(s1 - s2)" in (scalar["same-verdict-in-either-order"].explanation or "")
    labels = scalar["same-verdict-under-other-labels"].cases[0].reason
    assert labels == "python:tests.planted_judges:scalar_clean is shown no labels, so relabel cannot change what it sees"


def test_best_of_n_under_a_judge_is_averaged_over_orders(built_in: dict[str, dict[str, Result]]) -> None:
    clean, biased = (built_in[n]["best-of-n-accuracy-over-orders"] for n in ("clean", "position_biased"))
    assert clean.details["accuracy"] == 1.0 and clean.outcome == "passed"
    assert biased.details["by_order"] == {"all": [1.0, 0.0]} and biased.details["accuracy"] == 0.5
    assert biased.outcome == "failed"


@pytest.mark.parametrize("answer, message", [
    ([1.3], "returned 1.3 for pair 0 (prompt 'Which?'), outside [0, 1]"),
    ([math.nan], "returned nan for pair 0 (prompt 'Which?'), outside [0, 1]"),
    ([0.5, 0.5], "returned 2 probabilities for 1 pairs"),
    (["0.5"], "returned str '0.5' for pair 0"),
    ({"p": 0.5}, "returned dict, not a list of probabilities"),
])
def test_a_bad_pairwise_answer_is_one_error_naming_the_model(answer: Any, message: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from rmcheck.judges.interface import Query
    from rmcheck.judges.python_pairwise import PythonPairwise

    def judge(prompts: list[str], first: list[str], second: list[str]) -> Any:
        return answer

    model = PythonPairwise("python:m:judge", judge)
    with pytest.raises(BackendError) as caught:
        model.judge([Query("Which?", ("a", "b"), ("A", "B"))])
    assert f"model python:m:judge {message}" in str(caught.value) and "\n" not in str(caught.value)


def test_scalar_tests_on_a_pairwise_judge_say_it_is_a_judge(tmp_path: Path) -> None:
    suite = tmp_path / "s.rmcheck.yaml"
    suite.write_text("rmcheck: 1\nsuite: s\ncases:\n  - {id: c, prompt: Hi, response: Hello}\n"
                     "tests:\n  - {name: t, perturb: pad_with_filler, expect: not_higher}\n")
    (error,) = [e for _, e in run_suites([suite], [PLANTED + "clean"]).errors]
    assert "is a pairwise judge (rmcheck_interface = 'pairwise'): it compares two responses" in str(error)


@pytest.mark.parametrize("test, message", [
    ("{name: t, perturb: {op: swap_order, target: chosen}, expect: consistent}",
     "swap_order shows the same texts another way and takes no 'target'"),
    ("{name: t, perturb: swap_order, expect: consistent, tolerance: 0.1}",
     "expect: consistent compares verdicts, so tolerance: does not apply"),
    ("{name: t, perturb: typos, expect: consistent}", "'typos' is no presentation operator"),
    ("{name: t, expect: consistent}", "expects consistent but has no presentation operator"),
    ("{name: t, perturb: {op: relabel, labels: [C, D]}, expect: consistent}", "'C' is a pairwise judge's tie verdict"),
    ("{name: t, perturb: {op: repeat, n: 1}, expect: consistent}", "n: must be a whole number >= 2"),
])
def test_suite_errors_name_the_line_and_the_fix(tmp_path: Path, test: str, message: str) -> None:
    suite = tmp_path / "s.rmcheck.yaml"
    suite.write_text(f"rmcheck: 1\nsuite: s\ncases:\n  - {{id: c, prompt: Hi, chosen: a, rejected: b}}\n"
                     f"tests:\n  - {test}\n")
    with pytest.raises(SuiteError) as caught:
        load_suite(suite)
    assert message in str(caught.value) and f"{suite}:6" in str(caught.value)


def test_presentation_changes_are_hunks_that_rebuild_the_target() -> None:
    start = original(4)
    end = Presentation((2, 0, 3, 1), ("1", "B", "3", "D"), 2)
    changes = hunks(start, end)
    assert apply(start, changes) == end and len(changes) == 3 + 2 + 1
    assert apply(start, []) == start


def test_parse_verdict_never_guesses() -> None:
    assert parse_verdict("A is better. [[A]]", ("A", "B")).probs == (1.0, 0.0)
    assert parse_verdict("Equal. [[C]]", ("A", "B")).probs == (0.5, 0.5)
    assert parse_verdict("[[2]]", ("1", "2")).probs == (0.0, 1.0)
    for text in ("Both are fine.", "[[A]] or maybe [[B]]", "[[C]]" + "", "[[E]]"):
        labels = ("A", "B", "C", "D") if text == "[[C]]" else ("A", "B")
        assert parse_verdict(text, labels).parsed is (text == "[[C]]")
    assert parse_verdict("no idea", ("A", "B")).raw == "no idea"


# -- an LLM judge over the OpenAI API (a scripted server) ---------------------------------------------------

_LABELS = re.compile(r'"\[\[(.+?)\]\]" if assistant')
_ANSWER = re.compile(r"\[The Start of Assistant (.+?)'s Answer\]\n(.*?)\n\[The End", re.S)


def label_biased(path: str, body: dict[str, Any]) -> Reply:
    """Reads the question under labels A and B; under any other labels it names the last one. It cannot judge
    the lock-picking question (it answers without a verdict)."""
    system, user = (m["content"] for m in body["messages"])
    labels = _LABELS.findall(system)
    question = user.split("\n", 2)[1]
    if "lock" in question:
        return Reply(chat_completion("Both answers have merit."))
    answers = _ANSWER.findall(user)
    best = max(answers, key=lambda a: planted_judges.quality(question, a[1]))[0]
    return Reply(chat_completion(f"Having compared them: [[{best if labels[:2] == ['A', 'B'] else labels[-1]}]]"))


def judge_project(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Work in ``folder`` as a user whose judge is not retried and times out after 5 s, with no OpenAI settings
    from the environment."""
    for name in ("CI", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(folder)
    (folder / "pyproject.toml").write_text("[tool.rmcheck.judge]\nmax_retries = 0\ntimeout = 5\n")


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ScriptedServer]:
    judge_project(monkeypatch, tmp_path)
    with ScriptedServer(label_biased) as server:
        yield server


def test_relabel_catches_a_label_biased_llm_judge_and_unparseable_answers_are_counted(
        llm: ScriptedServer, tmp_path: Path) -> None:
    spec = f"openai:judge-1@{llm.url}/v1?judge=pairwise"
    found = results(run_suites([SUITE], [spec]))
    order, labels = found["same-verdict-in-either-order"], found["same-verdict-under-other-labels"]
    assert order.outcome == "passed" and order.details["unparsed"] == 2  # lockpicking, in both orders
    assert [c.id for c in order.cases if c.verdict == "not_applicable"][0] == "lockpicking"
    assert "unparsed: 'Both answers have merit.'" in (order.explanation or "")
    assert labels.outcome == "failed" and labels.counts["failed"] == 9
    first = labels.details["minimal"][0]
    assert first["changes_total"] == 2 and first["changes_kept"] == 1 and first["status"] == "minimal"
    assert first["change"] == "label of position 1: A -> 1"  # labels 1 and B: it names the last, B
    assert first["original"]["raw"] == "Having compared them: [[A]]" and first["changed"]["raw"].endswith("[[B]]")
    assert "judge answered: 'Having compared them: [[B]]'" in (labels.explanation or "")
    recorded = list((tmp_path / "fixtures" / "cassettes" / "judge" / "judge-1").glob("*.json"))
    assert recorded and all("[[" in json.loads(p.read_text())["response"]["choices"][0]["message"]["content"]
                            or "merit" in p.read_text() for p in recorded)


@pytest.mark.parametrize("query, message", [
    ("judge=triwise", "unknown judge='triwise'"), ("judge=pairwise&k=4", "an option is out of range"),
    ("judge=pairwise&top_p=1", "unknown option 'top_p'"), ("judge=listwise&k=x", "bad option"),
])
def test_judge_spec_errors_are_one_line(llm: ScriptedServer, query: str, message: str) -> None:
    from rmcheck import load_model

    with pytest.raises(RmcheckError) as caught:
        load_model(f"openai:judge-1@{llm.url}/v1?{query}")
    assert message in str(caught.value) and "\n" not in str(caught.value)


# -- the same tests on the HH-RLHF and RM-Bench files beside the project ---------------------------------------

def test_the_built_in_tests_on_shared_hh_rlhf_and_rm_bench_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hh, rm = SHARED / "hh-rlhf" / "harmless-base-test.jsonl.gz", SHARED / "rm-bench" / "chat.json"
    if not (hh.is_file() and rm.is_file()):
        pytest.skip(f"HH-RLHF / RM-Bench data not found under {SHARED} (it ships beside the project in ../shared/data)")
    monkeypatch.setenv("RMCHECK_DATA_ROOT", str(SHARED))
    suite = tmp_path / "shared.rmcheck.yaml"
    tests = SUITE.read_text().split("\ntests:\n", 1)[1]
    suite.write_text(f"rmcheck: 1\nsuite: judge-consistency-shared\ncases:\n"
                     f"  - {{file: {hh}, format: hh-rlhf, limit: 20}}\n  - {{file: {rm}, format: rm-bench, limit: 3}}\n"
                     f"tests:\n{tests}")
    report = run_suites([suite], [PLANTED + "position_biased", PLANTED + "clean"])
    order = {r.model: r for r in report.results if r.test == "same-verdict-in-either-order"}
    biased, clean = order[PLANTED + "position_biased"], order[PLANTED + "clean"]
    assert biased.details["cases"] == clean.details["cases"] == 29  # 20 HH-RLHF pairs, 3 RM-Bench items x 3 styles
    assert biased.details["position_bias"] > 0.9 and clean.details["position_bias"] == 0.0
