"""``kind: best_of_n`` (RewardBench 2's best-of-N credit with ties) and the ``format: rewardbench2`` reader,
on the hand-written sample in fixtures/rewardbench2/."""
from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from rmcheck.engine import run_suites
from rmcheck.errors import SuiteError
from rmcheck.kinds.best_of_n import credit
from rmcheck.suite import load_suite
from rmcheck.suite.datasets import DatasetWarning

SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "rewardbench2"
ROWS = [json.loads(line) for line in (SAMPLE / "sample.jsonl").read_text(encoding="utf-8").splitlines()]


def length(prompts: list[str], responses: list[str]) -> list[float]:
    return [float(len(r)) for r in responses]


def constant(prompts: list[str], responses: list[str]) -> list[float]:
    return [1.0 for _ in responses]


def tie_on_fact_1(prompts: list[str], responses: list[str]) -> list[float]:
    """Length, except that fact-1's chosen answer ties with its first rejected one."""
    fact = next(r for r in ROWS if r["id"] == "fact-1")
    return [100.0 if r in (fact["chosen"][0], fact["rejected"][0]) else float(len(r)) for r in responses]


@pytest.fixture()
def suite(tmp_path: Path) -> Path:
    shutil.copytree(SAMPLE, tmp_path / "rb2")
    return tmp_path / "rb2" / "best-of-4.rmcheck.yaml"


def run(path: Path, model: str):
    with pytest.warns(DatasetWarning, match="skipped 1 malformed RewardBench 2 rows"):
        report = run_suites([path], [f"python:tests.test_best_of_n:{model}"])
    assert not report.errors, report.errors
    (result,) = report.results
    return result


@pytest.mark.parametrize(("chosen", "rejected", "expected"), [
    (3.0, [1.0, 2.0, 0.5], (1.0, 1)), (3.0, [3.0, 2.0, 1.0], (0.5, 2)), (1.0, [1.0, 1.0, 1.0], (0.25, 4)),
    (1.0, [2.0, 0.0, 0.0], (0.0, 1)), (1.0, [2.0, 2.0, 0.0], (0.0, 2)),
])
def test_credit_is_one_over_the_ties_at_the_top(chosen: float, rejected: list[float],
                                                expected: tuple[float, int]) -> None:
    assert credit(chosen, rejected) == expected


def test_the_reader_keeps_rewardbench2_columns(suite: Path) -> None:
    with pytest.warns(DatasetWarning, match="skipped 1 malformed"):
        cases = load_suite(suite).cases
    by_id = {c.id: c for c in cases}
    assert list(by_id) == ["fact-1", "fact-2", "math-1", "math-2", "safety-1", "focus-1", "ties-1/1", "ties-1/2"]
    math = by_id["math-1"]
    assert math.subset == "Math" and math.prompt == "What is 17 x 6?"
    assert math.text("chosen") == ROWS[2]["chosen"][0] and math.rejected_texts == ROWS[2]["rejected"]
    assert [r for r, _ in math.responses] == ["chosen", "rejected_1", "rejected_2", "rejected_3"]
    assert by_id["ties-1/2"].text("chosen") == "Blue." and by_id["ties-1/2"].rejected_texts == ["Green, in paint.",
                                                                                                   "Purple."]


def test_accuracy_per_subset_and_overall(suite: Path) -> None:
    result = run(suite, "length")
    details = result.details
    assert details["subsets"] == {"Factuality": 0.5, "Focus": 1.0, "Math": 0.5, "Safety": 1.0, "Ties": 0.0}
    assert details["accuracy"] == pytest.approx(0.6) and details["ties"] == 0
    assert {c.id: c.verdict for c in result.cases} == {
        "Factuality": "passed", "Focus": "passed", "Math": "passed", "Safety": "passed", "Ties": "failed"}
    assert result.outcome == "failed" and "Ties" in result.explanation


def test_ties_earn_a_share_and_are_reported(suite: Path) -> None:
    tied = run(suite, "tie_on_fact_1")
    assert tied.details["subsets"]["Factuality"] == 0.25 and tied.details["ties"] == 1
    assert tied.details["chosen_tied"] == 1
    flat = run(suite, "constant")
    assert flat.details["subsets"] == {"Factuality": 0.25, "Focus": 0.25, "Math": 0.25, "Safety": 0.25,
                                       "Ties": pytest.approx(1 / 3)}
    assert flat.details["ties"] == 8 and flat.outcome == "failed"
    assert "8 cases tie at the top (8 with chosen among them)" in flat.explanation


def test_inline_best_of_n_cases_and_their_errors(tmp_path: Path) -> None:
    path = tmp_path / "b.rmcheck.yaml"
    body = """\
        rmcheck: 1
        suite: b
        cases:
          - {id: q, prompt: 2 + 2?, chosen: "4, since 2 + 2 = 4.", rejected: ["5", "22", "3"]}
          - {id: plain, prompt: Hi?, response: Hello.}
        tests:
          - {name: best, kind: best_of_n, min_accuracy: 0.9}
    """
    path.write_text(textwrap.dedent(body))
    (result,) = run_suites([path], ["python:tests.test_best_of_n:length"]).results
    assert result.outcome == "passed" and result.details["subsets"] == {"all": 1.0}
    assert [c.verdict for c in result.cases] == ["passed", "not_applicable"]
    path.write_text(textwrap.dedent(body).replace('["5", "22", "3"]', "[]"))
    with pytest.raises(SuiteError, match="rejected"):
        load_suite(path)
    path.write_text(textwrap.dedent(body).replace("min_accuracy: 0.9", "min_acc: 0.9"))
    with pytest.raises(SuiteError, match="unknown key 'min_acc'.*Did you mean 'min_accuracy'"):
        load_suite(path)
