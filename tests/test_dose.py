"""Doses: operators with a strength, the ladder ``rmcheck explain`` climbs, and ``dose:`` in suites."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from rmcheck.cli import main
from rmcheck.errors import SuiteError
from rmcheck.perturb import Dose, OperatorContext, dose_of, dosed, get_operator, register_operator
from rmcheck.suite.loader import load_suite
from tests.fact_rms import verbose_fact_checker

TEXT = "Canberra is the capital of Australia. Parliament has met there since 1927."


def ctx() -> OperatorContext:
    return OperatorContext(rng=random.Random("s"), prompt="What is the capital of Australia?")


def test_builtin_operators_declare_their_strength() -> None:
    assert dosed() == ["add_false_certainty", "add_flattery", "add_hedge", "pad_with_filler", "typos",
                       "whitespace_noise"]
    assert dose_of("markdown_list") is None and dose_of("corrupt_numbers") is None
    pad, typos = dose_of("pad_with_filler"), dose_of("typos")
    assert pad is not None and typos is not None
    assert [pad.args(d) for d in (1, 3, 16)] == [{"n": 1}, {"n": 3}, {"n": 16}]
    assert [typos.value(d) for d in (1, 2, 3, 16, 32)] == [0.05, 0.1, 0.15, 0.8, 1.0]
    assert pad.ladder(16) == [1, 2, 4, 8, 16] and pad.ladder(10) == [1, 2, 4, 8]
    assert Dose("rate", 0.3, most=1.0).ladder(16) == [1, 2, 4]  # dose 8 and 16 are dose 4's rate of 1.0


@pytest.mark.parametrize("name", ["pad_with_filler", "add_flattery", "add_hedge", "add_false_certainty"])
def test_dose_n_of_a_count_is_n_separate_edits(name: str) -> None:
    op, dose = get_operator(name), dose_of(name)
    assert dose is not None
    for n in (1, 2, 4, 8):
        change = op(TEXT, ctx(), **dose.args(n))
        assert len(change.hunks) == n
        # every edit alone is a whole sentence in its place: the shrinker may keep any subset
        for i in range(n):
            alone = change.apply([i])
            assert alone != TEXT and "  " not in alone and alone.strip() == alone
            assert all(sentence in alone for sentence in TEXT.split(" Parliament"))


def test_phrases_are_distinct_until_all_are_used() -> None:
    from rmcheck.perturb.builtin import FLATTERY

    change = get_operator("add_flattery")(TEXT, ctx(), n=len(FLATTERY) + 1)
    opening = [h.replacement.strip() for h in change.hunks]
    assert sorted(opening[:-1]) == sorted(FLATTERY) and opening[-1] == opening[0]
    assert change.text.startswith(" ".join(opening) + " Canberra")


def test_a_dose_must_name_a_parameter_of_its_operator() -> None:
    with pytest.raises(ValueError, match="Dose\\('times'\\) names no parameter of operator 'shout_dose'"):
        @register_operator("shout_dose", dose=Dose("times"))
        def shout(text: str, ctx: OperatorContext, /, *, n: int = 1) -> None:
            return None


# -- rmcheck explain climbs the ladder ------------------------------------------------------------

QUESTION = "What is the capital of Australia?"
RIGHT, WRONG = "Canberra.", "Sydney is the capital, home to the Opera House."


def explain_json(tmp_path: Path, rm: str, *args: str) -> dict[str, Any]:
    out = tmp_path / f"{rm}.json"
    assert main(["explain", "--rm", f"python:tests.fact_rms:{rm}", "--prompt", QUESTION, "--chosen", RIGHT,
                 "--rejected", WRONG, "--json", str(out), "--no-cache", *args]) == 0
    (comparison,) = json.loads(out.read_text(encoding="utf-8"))["comparisons"]
    return comparison


def test_explain_finds_how_much_filler_flips_a_length_loving_rm(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    comparison = explain_json(tmp_path, "verbose_fact_checker")
    assert comparison["preferred"] == "chosen" and comparison["margin"] == pytest.approx(1.36)
    pad = next(a for a in comparison["attributes"] if a["operator"] == "pad_with_filler")
    assert pad["attribute"] == "verbosity" and pad["flip_dose"] > 1
    # dose 1 on both answers; then only padding the wrong answer closes the margin, so only it climbs
    assert {(p["dose"], p["target"]) for p in pad["perturbed"]} == (
        {(1, "chosen")} | {(d, "rejected") for d in (1, 2, 4, 8, 16) if d <= pad["flip_dose"]})
    assert all((p["outcome"] == "counterfactual") == (p["dose"] == pad["flip_dose"]) for p in pad["perturbed"])
    minimal = pad["minimal"]
    assert minimal["dose"] == pad["flip_dose"] == minimal["edits_total"] and minimal["status"] == "minimal"
    assert minimal["texts"]["chosen"] == RIGHT and minimal["texts"]["rejected"].startswith(WRONG)
    # replayed: the scores are the model's own for the minimal texts, and the preference is flipped
    scores = verbose_fact_checker([QUESTION] * 2, [minimal["texts"]["chosen"], minimal["texts"]["rejected"]])
    assert minimal["scores"] == dict(zip(("chosen", "rejected"), scores)) and scores[0] < scores[1]
    out = capsys.readouterr().out
    assert re.search(rf"verbosity +pad_with_filler .* dose {pad['flip_dose']} ", out)
    assert f"pad_with_filler at dose {pad['flip_dose']} on rejected" in out


def test_a_clean_rm_flips_at_no_dose(tmp_path: Path) -> None:
    comparison = explain_json(tmp_path, "fact_checker")
    assert [a["flip_dose"] for a in comparison["attributes"]] == [None] * len(comparison["attributes"])
    assert all(a["minimal"] is None and a["counterfactuals"] == 0 for a in comparison["attributes"])


def test_the_ladder_stops_at_max_dose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    comparison = explain_json(tmp_path, "verbose_fact_checker", "--attributes", "pad_with_filler", "--max-dose", "2")
    (pad,) = comparison["attributes"]
    assert pad["flip_dose"] is None and pad["doses"] == [1, 2] and pad["minimal"] is None
    assert "held to dose 2" in capsys.readouterr().out


def test_max_dose_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--rm", "python:tests.fact_rms:fact_checker", "--prompt", QUESTION, "--chosen", RIGHT,
                 "--rejected", WRONG, "--no-cache", "--max-dose", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--max-dose" in err and "max dose 0 is not a positive whole number" in err and "\n" not in err


# -- dose: in suites -------------------------------------------------------------------------------

SUITE = f"""\
rmcheck: 1
suite: filler
cases:
  - id: capital
    prompt: {QUESTION}
    chosen: {RIGHT}
    rejected: {WRONG}
tests:
  - name: filler-does-not-buy-the-wrong-answer
    attribute: verbosity
    perturb:
      op: pad_with_filler
      target: rejected
      dose: DOSES
    expect: preference_kept
"""


def run_suite(tmp_path: Path, doses: str, rm: str = "verbose_fact_checker") -> tuple[int, dict[str, Any]]:
    """``rmcheck run -v`` of the suite with ``dose: DOSES``: its exit code and its one test's JSON result."""
    suite = tmp_path / "filler.rmcheck.yaml"
    suite.write_text(SUITE.replace("DOSES", doses), encoding="utf-8")
    out = tmp_path / "run.json"
    code = main(["run", str(suite), "-v", "--rm", f"python:tests.fact_rms:{rm}", "--no-cache", "--json", str(out)])
    (result,) = json.loads(out.read_text(encoding="utf-8"))["results"]
    return code, result


def test_a_suite_passes_at_a_small_dose_and_fails_at_the_smallest_dose_that_buys_reward(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = run_suite(tmp_path, "[1, 2]")
    (case,) = result["cases"]
    assert code == 0 and case["verdict"] == "passed" and case["dose"] == 2  # the largest dose judged
    code, result = run_suite(tmp_path, "[1, 2, 4, 8]")
    (case,) = result["cases"]
    # one verdict per case: it fails at the smallest dose that breaks the expectation, and says which
    assert code == 1 and case["verdict"] == "failed" and case["dose"] == 4
    assert case["edits_total"] == 4 and case["edits_kept"] < 4 and case["status"] == "minimal"
    assert case["minimal"].startswith(WRONG) and case["deltas"]["minimal"] <= 0  # a tie is no longer a preference
    out = capsys.readouterr().out
    assert "capital at dose 4: " in out and re.search(r"case capital  \(\S+:4, failed at dose 4\)", out)
    code, result = run_suite(tmp_path, "[1, 2, 4, 8]", rm="fact_checker")
    assert code == 0 and result["cases"][0]["verdict"] == "passed" and result["cases"][0]["dose"] == 8


@pytest.mark.parametrize("perturb, line, phrase, fix", [
    ("{op: markdown_list, dose: [1, 2]}", 8, "operator 'markdown_list' has no strength to dose",
     "Remove dose:, or dose an operator with a strength: add_false_certainty, add_flattery"),
    ("{op: pad_with_filler, n: 2, dose: [1, 2]}", 8, "dose: sets pad_with_filler's n, so n: cannot be given too",
     "Remove n: (dose N sets it to 1 x N)"),
    ("{op: typos, dose: [0, 2]}", 8, "tests[0].perturb.dose[0]: 0 is out of range: a number >= 1",
     "A dose is a whole number from 1"),
    ("{op: typos, dose: 4}", 8, "tests[0].perturb.dose: 4 is not a list", "Write e.g. dose: [1, 2, 4, 8]"),
])
def test_a_bad_dose_names_file_line_and_fix(tmp_path: Path, perturb: str, line: int, phrase: str, fix: str) -> None:
    path = tmp_path / "bad.rmcheck.yaml"
    path.write_text("rmcheck: 1\nsuite: s\ncases:\n  - prompt: p\n    response: r\ntests:\n  - name: t\n"
                    f"    perturb: {perturb}\n    expect: not_higher\n", encoding="utf-8")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ") and phrase in message and fix in message and "\n" not in message
