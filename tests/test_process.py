"""Process (step-level) models: the ``process`` interface, step cases and operators, the step expectations with
their minimal step edits, the built-in step suite against planted PRMs, and ProcessBench's metric against an
independent port of its official evaluation (github.com/QwenLM/ProcessBench, code/run_eval.py)."""
from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from rmcheck.engine import run_suites
from rmcheck.errors import SuiteError
from rmcheck.perturb.base import OperatorContext
from rmcheck.process.operators import corrupt_step, drop_step, duplicate_step, miracle_step, swap_steps
from rmcheck.process.processbench import best_threshold
from rmcheck.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "process-steps.rmcheck.yaml"
PRMS = "python:tests.process_prms"
SOLUTION = ("Tom has 3 bags of 4 apples, so 3 * 4 = 12 apples.\n\nHe eats 2, so 12 - 2 = 10 apples remain.\n\n"
            "He doubles them: 10 * 2 = 20.\n\nThe answer is 20.")


def ctx(seed: int = 0) -> OperatorContext:
    return OperatorContext(rng=random.Random(seed))


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def step_suite(folder: Path, tests: str, cases: str | None = None) -> Path:
    cases = cases or """
  - id: apples
    prompt: Tom has 3 bags of 4 apples. He eats 2 and doubles the rest. How many apples?
    steps: ["Tom has 3 bags of 4 apples, so 3 * 4 = 12 apples.", "He eats 2, so 12 - 2 = 10 apples remain.",
            "He doubles them: 10 * 2 = 20.", "The answer is 20."]
"""
    return write(folder, "s.rmcheck.yaml", f"rmcheck: 1\nsuite: s\ncases:{cases}tests:\n{tests}")


# -- operators --------------------------------------------------------------------------------------------------


def test_corrupt_step_changes_the_result_of_the_step_it_names() -> None:
    assert corrupt_step(SOLUTION, ctx(), at=1).text.split("\n\n")[1] != "He eats 2, so 12 - 2 = 10 apples remain."
    edited = corrupt_step(SOLUTION, ctx(), at=1).text.split("\n\n")
    assert edited[1].startswith("He eats 2, so 12 - 2 = ") and edited[0::2] == SOLUTION.split("\n\n")[0::2]
    assert corrupt_step("The bigger share is greater.", ctx(), at="first").text == "The bigger share is smaller."
    assert corrupt_step("No detail here.", ctx()) is None and corrupt_step(SOLUTION, ctx(), at=9) is None


def test_structural_step_operators() -> None:
    steps = SOLUTION.split("\n\n")
    assert drop_step(SOLUTION, ctx(), at="first").text.split("\n\n") == steps[1:]
    assert drop_step(SOLUTION, ctx(), at="last").text.split("\n\n") == steps[:-1]
    assert swap_steps(SOLUTION, ctx(), at="last").text.split("\n\n") == [*steps[:2], steps[3], steps[2]]
    assert len(swap_steps(SOLUTION, ctx(), at=0).hunks) == 2  # one edit: the two hunks share a tie
    assert duplicate_step(SOLUTION, ctx(), at=1).text.split("\n\n") == [*steps[:2], steps[1], *steps[2:]]
    assert drop_step("one step", ctx()) is None and swap_steps("one step", ctx()) is None


def test_miracle_step_carries_the_wrong_value_but_keeps_the_final_answer() -> None:
    edited = miracle_step(SOLUTION, ctx(3), at="first").text.split("\n\n")
    wrong = int(edited[0].split("= ")[1].split()[0])
    assert wrong != 12
    assert edited[1] == f"He eats 2, so {wrong} - 2 = {wrong - 2} apples remain."
    assert edited[2] == f"He doubles them: {wrong - 2} * 2 = {(wrong - 2) * 2}." and edited[3] == "The answer is 20."
    assert {h.tie for h in miracle_step(SOLUTION, ctx(3), at="first").hunks} == {"miracle_step"}


def test_at_must_name_a_step() -> None:
    with pytest.raises(Exception, match="at must be a step index from 0, first, last or random"):
        corrupt_step(SOLUTION, ctx(), at="middle")


# -- cases, reader and models -----------------------------------------------------------------------------------


def test_a_step_case_is_a_response_of_joined_steps(tmp_path: Path) -> None:
    suite = load_suite(step_suite(tmp_path, "  - {name: t, perturb: corrupt_step, expect: step_lower}\n"))
    (case,) = suite.cases
    assert case.steps[3] == "The answer is 20." and case.text("response") == "\n\n".join(case.steps)


@pytest.mark.parametrize("case,message", [
    ('  - {prompt: p, steps: ["a\\n\\nb"]}\n', "step 0 holds a blank line"),
    ("  - {prompt: p, steps: [a], label: 1}\n", "label 1 is not -1 or the index of one of its 1 steps"),
    ("  - {prompt: p, response: r, label: 0}\n", "label applies to a case with steps"),
    ("  - {prompt: p, steps: [a], response: r}\n", "has response, steps"),
])
def test_bad_step_cases_name_their_line(tmp_path: Path, case: str, message: str) -> None:
    path = step_suite(tmp_path, "  - {name: t, perturb: corrupt_step, expect: step_lower}\n", "\n" + case)
    with pytest.raises(SuiteError, match=message) as error:
        load_suite(path)
    assert f"{path}:4" in str(error.value)


def test_step_test_errors(tmp_path: Path) -> None:
    for test, message in [("{name: t, perturb: {op: corrupt_step, step: 1}, expect: step_lower}", "takes at:, not"),
                          ("{name: t, perturb: typos, expect: not_lower, aggregate: min}", "aggregate applies to"),
                          ("{name: t, perturb: typos, expect: step_lower, aggregate: min}", "aggregate applies to")]:
        with pytest.raises(SuiteError, match=message):
            load_suite(step_suite(tmp_path, f"  - {test}\n"))


def test_processbench_reader(tmp_path: Path) -> None:
    rows = [{"id": "gsm8k-0", "problem": "P", "steps": ["a", "b\n\nc"], "label": 1},
            {"id": "math-3", "problem": "Q", "steps": ["a"], "label": -1},
            {"problem": "R", "steps": [], "label": -1}]
    write(tmp_path, "pb.jsonl", "\n".join(map(json.dumps, rows)))
    suite = write(tmp_path, "s.rmcheck.yaml", "rmcheck: 1\nsuite: s\ncases:\n  - {file: pb.jsonl, format: processbench}\n"
                  "tests:\n  - {name: pb, kind: processbench}\n")
    with pytest.warns(UserWarning, match="skipped 1 malformed ProcessBench rows"):
        cases = load_suite(suite).cases
    assert [(c.id, c.subset, c.steps, c.label) for c in cases] == [
        ("gsm8k-0", "gsm8k", ("a", "b\nc"), 1), ("math-3", "math", ("a",), -1)]


MODELS = '''
def halves(prompts, steps):
    return [[0.5] * len(s) for s in steps]
halves.rmcheck_interface = "process"
def short(prompts, steps):
    return [[0.5] for s in steps]
short.rmcheck_interface = "process"
def nan(prompts, steps):
    return [[float("nan")] * len(s) for s in steps]
nan.rmcheck_interface = "process"
def odd(prompts, steps):
    return [[0.5]]
odd.rmcheck_interface = "mystery"
def scalar(prompts, responses):
    return [1.0] * len(responses)
'''


@pytest.mark.parametrize("name,message", [
    ("short", "process model python:prms_here:short returned 1 scores for the 4 steps of solution 0"),
    ("nan", "process model python:prms_here:nan returned nan for step 0 of solution 0"),
    ("odd", "declares rmcheck_interface = 'mystery', which rmcheck does not know"),
])
def test_a_process_model_with_wrong_answers_is_one_clear_error(tmp_path: Path, monkeypatch, name: str,
                                                              message: str) -> None:
    write(tmp_path, "prms_here.py", MODELS)
    monkeypatch.chdir(tmp_path)
    path = step_suite(tmp_path, "  - {name: t, perturb: corrupt_step, expect: step_lower}\n")
    ((_, error),) = run_suites([path], [f"python:prms_here:{name}"]).errors
    assert message in str(error) and "\n" not in str(error)


def test_step_tests_do_not_apply_to_a_scalar_rm(tmp_path: Path, monkeypatch) -> None:
    write(tmp_path, "prms_here.py", MODELS)
    monkeypatch.chdir(tmp_path)
    path = step_suite(tmp_path, "  - {name: t, perturb: corrupt_step, expect: step_lower}\n"
                                "  - {name: pb, kind: processbench}\n")
    results = run_suites([path], ["python:prms_here:scalar"]).results
    assert [r.outcome for r in results] == ["not_applicable"] * 2
    assert "gives no step scores" in results[0].cases[0].reason


# -- the built-in suite against planted PRMs ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def outcomes() -> dict[str, dict[str, object]]:
    specs = [f"{PRMS}:{name}" for name in ("careful", "final_only", "peeking")]
    report = run_suites([SUITE], specs)
    assert not report.errors
    return {spec.rpartition(":")[2]: {r.test: r for r in report.results if r.model == spec} for spec in specs}


def test_the_step_suite_is_substantial() -> None:
    doc = yaml.safe_load(SUITE.read_text(encoding="utf-8"))
    assert len(doc["cases"]) >= 30 and doc["description"].strip()
    assert {t["expect"] for t in doc["tests"]} == {"step_lower", "earlier_unchanged", "solution_lower"}


def test_careful_prm_passes_every_step_test(outcomes) -> None:
    for result in outcomes["careful"].values():
        assert result.outcome == "passed" and not result.counts["not_applicable"], (result.test, result.counts)


@pytest.mark.parametrize("model,failing", [
    ("final_only", {"corrupted-step-scores-lower", "swapped-steps-score-lower"}),
    ("peeking", {"earlier-steps-keep-their-scores"}),
])
def test_each_planted_flaw_fails_its_tests_with_minimal_step_edits(outcomes, model: str, failing: set[str]) -> None:
    assert {name for name, r in outcomes[model].items() if r.outcome == "failed"} == failing
    for name in failing:
        result = outcomes[model][name]
        assert all(c.counterfactual.status == "minimal" for c in result.failures)
        text = result.explanation
        assert "minimal step edit, replayed" in text and "<- first edited step" in text
        assert "step   before    after" in text and "\n      - step " in text and "\n      + step " in text


def test_peeking_failure_shows_earlier_scores_moving(outcomes) -> None:
    (first, *_) = outcomes["peeking"]["earlier-steps-keep-their-scores"].details["failures"]
    k = first["first_edited"]
    assert k == 3 and first["scores_before"][:k] != first["scores_after"][:k]


# -- ProcessBench's metric ----------------------------------------------------------------------------------------


def official(rows: list[tuple[int, list[float]]], threshold: float) -> tuple[float, float, float]:
    """An independent port of ProcessBench's evaluation (code/run_eval_prm_rlhflow.py): a step is judged right when
    its score is at least the threshold; the prediction is the first step judged wrong, else -1."""
    def predict(scores: list[float]) -> int:
        for sdx, score in enumerate(scores):
            if not score >= threshold:
                return sdx
        return -1

    res_data = [{"label": label, "match": predict(scores) == label} for label, scores in rows]
    data1 = [e for e in res_data if e["label"] != -1]
    data2 = [e for e in res_data if e["label"] == -1]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        acc1 = np.mean([e["match"] for e in data1]) * 100
        acc2 = np.mean([e["match"] for e in data2]) * 100
        f1 = 2 * acc1 * acc2 / (acc1 + acc2)
    return float(acc1), float(acc2), float(f1)


def synthetic(seed: int) -> dict[str, list[tuple[int, list[float]]]]:
    """Step scores and labels per subset, with the edge cases: a subset of correct solutions only, one every
    prediction gets wrong, and one every prediction gets right (at threshold 0.5)."""
    rng = random.Random(seed)
    subsets: dict[str, list[tuple[int, list[float]]]] = {}
    for name in ("gsm8k", "math"):
        rows = []
        for _ in range(rng.randint(8, 30)):
            scores = [round(rng.random(), rng.choice((1, 2, 6))) for _ in range(rng.randint(1, 8))]
            rows.append((rng.randint(-1, len(scores) - 1), scores))
        subsets[name] = rows
    subsets["allcorrect"] = [(-1, [0.9, 0.8]), (-1, [0.7]), (-1, [0.2, 0.9])]
    subsets["allwrong"] = [(0, [0.9, 0.1]), (-1, [0.9, 0.1]), (1, [0.3, 0.2])]
    subsets["allright"] = [(1, [0.9, 0.1]), (-1, [0.9, 0.6]), (0, [0.4])]
    return subsets


def run_processbench(tmp_path: Path, monkeypatch, subsets, threshold: str) -> dict[str, object]:
    rows = [{"id": f"{name}-{i}", "problem": f"{name} problem {i}", "steps": [f"step {k}" for k in range(len(s))],
             "label": label} for name, group in subsets.items() for i, (label, s) in enumerate(group)]
    scores = {f"{name} problem {i}": s for name, group in subsets.items() for i, (_, s) in enumerate(group)}
    write(tmp_path, "pb.jsonl", "\n".join(map(json.dumps, rows)))
    write(tmp_path, "synthetic_prm.py", f"SCORES = {scores!r}\ndef prm(prompts, steps):\n"
                                        "    return [SCORES[p] for p in prompts]\nprm.rmcheck_interface = 'process'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(__import__("sys").modules, "synthetic_prm", raising=False)
    suite = write(tmp_path, "pb.rmcheck.yaml", "rmcheck: 1\nsuite: pb\ncases:\n  - {file: pb.jsonl, format: processbench}\n"
                  f"tests:\n  - {{name: pb, kind: processbench, threshold: {threshold}}}\n")
    (result,) = run_suites([suite], ["python:synthetic_prm:prm"]).results
    return result.details


def same(mine: float | None, theirs: float) -> bool:
    return math.isnan(theirs) if mine is None else mine == theirs


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", ["0.5", "0.35"])
def test_processbench_f1_equals_the_official_computation(tmp_path: Path, monkeypatch, seed: int, threshold: str
                                                         ) -> None:
    subsets = synthetic(seed)
    details = run_processbench(tmp_path, monkeypatch, subsets, threshold)
    assert set(details["subsets"]) == set(subsets)
    for name, rows in subsets.items():
        acc1, acc2, f1 = official(rows, float(threshold))
        got = details["subsets"][name]
        assert same(got["error_acc"], acc1) and same(got["correct_acc"], acc2) and same(got["f1"], f1), (name, got)
    edges = details["subsets"]
    assert edges["allcorrect"]["error_acc"] is None and edges["allcorrect"]["f1"] is None
    if threshold == "0.5":
        assert edges["allwrong"]["f1"] is None and edges["allright"]["f1"] == 100.0


@pytest.mark.parametrize("seed", range(3))
def test_best_threshold_is_the_best_of_every_threshold(tmp_path: Path, monkeypatch, seed: int) -> None:
    subsets = {k: v for k, v in synthetic(seed).items() if k in ("gsm8k", "math")}
    details = run_processbench(tmp_path, monkeypatch, subsets, "best")
    every = sorted({s for rows in subsets.values() for _, scores in rows for s in scores})
    candidates = [*every, math.nextafter(every[-1], math.inf)]
    value = lambda t: sum(np.nan_to_num(official(rows, t)[2]) for rows in subsets.values())  # noqa: E731
    best = max(candidates, key=value)
    assert details["swept"] is True and value(details["threshold"]) == value(best)
    assert details["threshold"] == min(t for t in candidates if value(t) == value(best))
    assert best_threshold(subsets) == details["threshold"]
