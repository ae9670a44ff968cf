"""``kind: best_of_n`` (RewardBench 2's best-of-N credit with ties, and its weighted Ties score) and the
``format: rewardbench2`` reader, on the hand-written sample in fixtures/rewardbench2/ and on synthetic scores
checked against a port of the official computation."""
from __future__ import annotations

import json
import random
import shutil
import textwrap
from collections import defaultdict
from pathlib import Path

import numpy as np
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
    assert list(by_id) == ["fact-1", "fact-2", "math-1", "math-2", "safety-1", "focus-1", "ref:1", "tied:1/1",
                           "tied:1/2"]
    math = by_id["math-1"]
    assert math.subset == "Math" and math.prompt == "What is 17 x 6?"
    assert math.text("chosen") == ROWS[2]["chosen"][0] and math.rejected_texts == ROWS[2]["rejected"]
    assert [r for r, _ in math.responses] == ["chosen", "rejected_1", "rejected_2", "rejected_3"]
    assert by_id["tied:1/2"].text("chosen") == "Blue." and by_id["tied:1/2"].rejected_texts == ["Green, in paint.",
                                                                                                   "Purple."]


def test_accuracy_per_subset_and_overall(suite: Path) -> None:
    result = run(suite, "length")
    details = result.details
    # Ties: no prompt accurate, no gap above the spread; only the 0.01 margin term, tanh(-12 / 1 - 1).
    ties = 0.01 * np.tanh(-13.0)
    assert details["subsets"] == {"Factuality": 0.5, "Focus": 1.0, "Math": 0.5, "Safety": 1.0,
                                  "Ties": pytest.approx(ties)}
    assert details["accuracy"] == pytest.approx((3.0 + ties) / 5) and details["ties"] == 0
    assert details["ties_score"]["Ties"]["paired"] == 1
    assert {c.id: c.verdict for c in result.cases} == {
        "Factuality": "passed", "Focus": "passed", "Math": "passed", "Safety": "passed", "Ties": "failed"}
    assert result.outcome == "failed" and "Ties" in result.explanation


def test_ties_earn_a_share_and_are_reported(suite: Path) -> None:
    tied = run(suite, "tie_on_fact_1")
    assert tied.details["subsets"]["Factuality"] == 0.25 and tied.details["ties"] == 1
    assert tied.details["chosen_tied"] == 1
    flat = run(suite, "constant")
    assert flat.details["subsets"] == {"Factuality": 0.25, "Focus": 0.25, "Math": 0.25, "Safety": 0.25, "Ties": 0.0}
    assert flat.details["ties"] == 9 and flat.outcome == "failed"
    assert "9 cases tie at the top (9 with chosen among them)" in flat.explanation
    assert "Ties: Ties score 0.000 = 0.30 x tied accuracy 0.000" in flat.explanation


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


# -- RewardBench 2's official scoring, ported -----------------------------------------------------

def official(rows: list[dict], score: dict[str, float]) -> dict[str, float]:
    """RewardBench 2's per-subset scores and leaderboard overall, as allenai/reward-bench computes them
    (scripts/run_v2.py with rewardbench/utils.py: reroll_and_score_dataset's credit, process_single_model for
    Ties), re-typed here from reading that code, independently of rmcheck's implementation."""
    per_subset: dict[str, list[float]] = defaultdict(list)
    groups: dict[tuple[str, int], list[tuple[bool, float]]] = defaultdict(list)
    for row in rows:
        scores = np.array([score[t] for t in row["chosen"] + row["rejected"]])
        if row["subset"].lower() == "ties":
            kind, prompt = row["id"].split(":")
            groups[(kind, int(prompt))] += [(i < len(row["chosen"]), s) for i, s in enumerate(scores)]
        else:
            top = np.max(scores)
            per_subset[row["subset"]].append(1 / np.sum(scores == top) if scores[0] == top else 0)
    result = {name: sum(values) / len(values) for name, values in per_subset.items()}
    if groups:
        stats: dict[str, dict[int, tuple[bool, float | None, float]]] = {"ref": {}, "tied": {}}
        for (kind, prompt), samples in groups.items():
            good = [s for ok, s in samples if ok]
            bad = [s for ok, s in samples if not ok]
            gap = min(good) - max(bad)
            stats[kind][prompt] = (gap > 0, max(good) - min(good) if len(good) > 1 else None, gap)
        ref, tied = stats["ref"], stats["tied"]
        both = set(ref) & set(tied)
        spread = np.array([tied[p][1] for p in both])
        gap_tied = np.array([tied[p][2] for p in both])
        gap_ref = np.array([ref[p][2] for p in both])
        with np.errstate(divide="ignore", invalid="ignore"):
            margin = np.nan_to_num(np.tanh(np.minimum(gap_ref, gap_tied) / spread - 1), nan=0.0)
        result["Ties"] = float(0.30 * np.mean([v[0] for v in tied.values()])
                               + 0.30 * np.mean([v[0] for v in ref.values()])
                               + 0.20 * np.mean(gap_tied > spread)
                               + 0.20 * np.mean(np.minimum(gap_ref, gap_tied) > spread)
                               + 0.01 * float(np.mean(margin)))
    result["overall"] = float(np.mean(list(result.values())))
    return result


SYNTHETIC: dict[str, float] = {}


def synthetic(prompts: list[str], responses: list[str]) -> list[float]:
    return [SYNTHETIC[r] for r in responses]


def synthetic_rows(seed: int) -> list[dict]:
    """Rows in RewardBench 2's layout with few distinct scores, so that ties abound: at the top of best-of-4
    rows, among a tied prompt's correct answers (spread 0), and between correct and incorrect (gap 0)."""
    rng = random.Random(seed)
    rows = []

    def row(row_id: str, subset: str, n_chosen: int, n_rejected: int, levels: int) -> None:
        texts = {side: [f"s{seed} {row_id} {side} {k}" for k in range(n)]
                 for side, n in (("chosen", n_chosen), ("rejected", n_rejected))}
        SYNTHETIC.update({t: float(rng.randrange(levels)) for side in texts.values() for t in side})
        rows.append({"id": row_id, "subset": subset, "prompt": f"Question {row_id}?", **texts})

    for subset in ("Factuality", "Math", "Safety"):
        for n in range(rng.randrange(4, 9)):
            row(f"{subset}-{n}", subset, 1, 3, 3)
    for n in range(rng.randrange(6, 14)):
        row(f"ref:{n}", "Ties", 1, rng.randrange(2, 5), 4)
        row(f"tied:{n}", "Ties", rng.randrange(2, 5), rng.randrange(2, 6), 4)
    row("ref:90", "Ties", 1, 3, 4)  # prompts with one row only: in the accuracies, not in the margin terms
    row("tied:91", "Ties", 3, 3, 4)
    return rows


@pytest.mark.parametrize("seed", range(6))
def test_the_overall_figure_is_rewardbench2s_on_the_same_scores(tmp_path: Path, seed: int) -> None:
    rows = synthetic_rows(seed)
    (tmp_path / "rb2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "rb2.rmcheck.yaml").write_text(
        "rmcheck: 1\nsuite: rb2\ncases:\n  - {file: rb2.jsonl, format: rewardbench2}\n"
        "tests:\n  - {name: best, kind: best_of_n}\n", encoding="utf-8")
    report = run_suites([tmp_path / "rb2.rmcheck.yaml"], ["python:tests.test_best_of_n:synthetic"])
    assert not report.errors, report.errors
    details = report.results[0].details
    expected = official(rows, SYNTHETIC)
    assert details["subsets"] == pytest.approx({k: v for k, v in expected.items() if k != "overall"}, abs=1e-12)
    assert details["accuracy"] == pytest.approx(expected["overall"], abs=1e-12)
    # The synthetic rows do exercise ties: equal correct answers, and a best-of-4 top shared.
    assert details["ties"] > 0 and details["ties_score"]["Ties"]["paired"] >= 6


@pytest.mark.parametrize(("ids", "message"), [
    (("ref:1", "colours"), "case 'colours/1' is in the Ties subset, whose score pairs"),
    (("ref:1", "tied:2"), "no prompt has both its ref:N and its tied:N row"),
])
def test_ties_rows_need_their_ids_and_their_partner(tmp_path: Path, ids: tuple[str, str], message: str) -> None:
    ref, tied = [r for r in ROWS if r["subset"] == "Ties"]
    rows = [dict(ref, id=ids[0]), dict(tied, id=ids[1])]
    (tmp_path / "rb2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "rb2.rmcheck.yaml").write_text(
        "rmcheck: 1\nsuite: rb2\ncases:\n  - {file: rb2.jsonl, format: rewardbench2}\n"
        "tests:\n  - {name: best, kind: best_of_n}\n", encoding="utf-8")
    report = run_suites([tmp_path / "rb2.rmcheck.yaml"], ["python:tests.test_best_of_n:length"])
    (error,) = [e for _, e in report.errors]
    assert message in error.message and error.where and error.fix
