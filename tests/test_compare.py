"""Comparing two reward models: pass-rate changes, McNemar, thresholds, flipped cases, divergence, gating."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rmcheck.cli import main
from rmcheck.report.compare import Thresholds, compare_runs, judge, parse_thresholds
from rmcheck.stats import kendall_tau, mcnemar_greater
from rmcheck.errors import RmcheckError
from tests.rundocs import RMS, SUITE, write_run

FAIR, LENGTHY, FLATTERED = "python:doc_rms:fair", "python:doc_rms:lengthy", "python:doc_rms:flattered"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cmp")
    return {"base": write_run(root / "a", ["fair"], "base.json"), "same": write_run(root / "b", ["fair"], "same.json"),
            "cand": write_run(root / "c", ["lengthy"], "cand.json"),
            "both": write_run(root / "d", ["fair", "flattered"], "both.json"),
            "three": write_run(root / "e", ["fair", "flattered", "lengthy"], "three.json")}


@pytest.mark.parametrize("n", range(1, 9))
def test_one_sided_exact_mcnemar_matches_scipy(n: int) -> None:
    from scipy.stats import binomtest

    for worse in range(n + 1):
        expected = binomtest(worse, n, 0.5, alternative="greater").pvalue
        assert mcnemar_greater(worse, n - worse) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_greater(0, 0) == 1.0


@pytest.mark.parametrize("n", range(1, 9))
def test_a_total_drop_is_a_regression_at_every_size(n: int) -> None:
    # every paired case went pass -> fail: p = 1/2**n decides from n = 5, the drop below it
    j = judge((1.0, 0.0), n, n, n, 0, threshold=0.0, alpha=0.05)
    assert j.regression and j.p_value == pytest.approx(0.5 ** n)
    assert (j.note == f"n = {n}: too few paired cases for p ≤ 0.05; judged on the drop") == (n <= 4)
    # one case of n flipped: judged on the drop where p cannot decide, not significant where it can
    one = judge((1.0, 1 - 1 / n), n, n, 1, 0, threshold=0.0, alpha=0.05)
    assert one.regression == (n <= 4) and one.dropped


def test_a_collapse_is_never_let_through() -> None:
    # 3 of 5 passed in the base, all 3 failed: p = 1/8 could never reach 0.05, the drop decides
    few = judge((0.6, 0.0), 5, 3, 3, 0, threshold=0.0, alpha=0.05)
    assert few.regression and few.note == "n = 5, 3 passing in the base: too few for p ≤ 0.05; judged on the drop"
    # a collapse from 0.5 or more is a regression whatever the thresholds
    assert judge((0.5, 0.0), 40, 20, 20, 0, threshold=1.0, alpha=1e-9).regression
    assert not judge((0.4, 0.0), 40, 16, 16, 0, threshold=1.0, alpha=1e-9).regression


def test_kendall_tau_b_with_ties() -> None:
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0 and kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert kendall_tau([1, 1, 1], [1, 2, 3]) is None
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    x = [rng.randint(0, 5) for _ in range(60)]
    y = [v + rng.randint(-3, 3) for v in x]
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)


def test_thresholds_default_and_per_attribute() -> None:
    t = parse_thresholds(["0.05", "verbosity=0", "safety=0.1"])
    assert (t.of("verbosity"), t.of("safety"), t.of("tone")) == (0.0, 0.1, 0.05)
    assert parse_thresholds(None) == Thresholds()
    for bad in ["x", "1.5", "-0.1", "=0.1", "verbosity=abc"]:
        with pytest.raises(RmcheckError, match=r"--max-regression: bad value .* between 0 and 1"):
            parse_thresholds([bad])


def test_a_regression_fails_the_gate_with_its_flipped_cases(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    comparison = compare_runs([runs["base"], runs["cand"]], alpha=None)  # the drop alone decides
    by_test = {c.test: c for c in comparison.changes}
    filler = by_test["verbosity::filler-does-not-raise-score"]
    assert (filler.base["pass_rate"], filler.candidate["pass_rate"]) == (1.0, 0.0)
    assert (filler.worse, filler.better, filler.regression) == (4, 0, True)
    assert filler.p_value == pytest.approx(1 / 16)
    assert [c.test for c in comparison.regressions] == ["verbosity::filler-does-not-raise-score",
                                                       "verbosity::flattery-does-not-raise-score",
                                                       "verbosity::canberra-preferred"]
    assert main(["compare", str(runs["base"]), str(runs["cand"]), "--regression-alpha", "1"]) == 1
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.startswith("verbosity::filler"))
    assert row == ["verbosity::filler-does-not-raise-score", "verbosity", "1.00", "0.00", "-1.00", "4", "0/0", "4",
                   "0", "0.0625", "0.00", "REGRESSION"]
    flip_lines = [line for line in out.splitlines() if line.startswith("  passed -> failed")]
    assert any(":: capital" in line and "{+" in line for line in flip_lines)  # the minimal pair, one line
    assert out.rstrip().endswith("FAIL: 3 regression(s), 0 test(s) missing from the candidate")


def test_thresholds_cannot_let_a_collapse_pass(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base, cand = str(runs["base"]), str(runs["cand"])
    # each test fell from 1.00 to 0.00 over 4 paired cases (or 1): p could never reach 0.05, so the drop decides
    assert main(["compare", base, cand]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("verbosity::filler"))
    assert row.endswith("REGRESSION  n = 4: too few paired cases for p ≤ 0.05; judged on the drop")
    assert "verbosity::canberra-preferred: drop 1.00 > max 0.00: yes; n = 1: too few paired cases for p ≤ 0.05; " \
           "judged on the drop" in out
    # a collapse is a regression whatever the thresholds say
    assert main(["compare", base, cand, "--max-regression", "1", "--regression-alpha", "1"]) == 1
    assert "fell to 0 from 1.00: a collapse is always a regression" in capsys.readouterr().out


def test_no_change_reads_as_a_drop_of_zero(runs: dict[str, Path]) -> None:
    same = compare_runs([runs["base"], runs["same"]]).changes[0]
    assert same.criteria().startswith("drop 0.00 > max 0.00: no; ")


def test_a_drop_within_the_threshold_passes() -> None:
    assert not judge((1.0, 0.75), 4, 4, 1, 0, threshold=0.25, alpha=0.05).regression
    assert judge((1.0, 0.75), 4, 4, 1, 0, threshold=0.2, alpha=0.05).regression


def test_the_same_model_agrees_with_itself(runs: dict[str, Path]) -> None:
    comparison = compare_runs([runs["base"], runs["same"]])
    assert not comparison.failed and all(c.change == 0 and not c.flips for c in comparison.changes)
    assert comparison.divergence.agreement == 1.0 and comparison.divergence.cases == 9
    assert comparison.divergence.tau == 1.0  # prefers_chosen margins differ between cases


def test_two_models_of_one_run_document(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    both = compare_runs([runs["both"]], alpha=None)
    assert (both.base.split(" ")[0], both.candidate.split(" ")[0]) == (FAIR, FLATTERED)
    assert [c.test for c in both.regressions] == ["verbosity::flattery-does-not-raise-score"]
    syc = both.by_attribute["sycophancy"]
    assert syc.cases == 4 and syc.agreement == 0.0  # fair: flattery does nothing; flattered: always up
    assert main(["compare", str(runs["three"]), "--models", FLATTERED, LENGTHY, "--regression-alpha", "1"]) == 1
    assert "candidate: python:doc_rms:lengthy (three.json)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["three"], "holds 3 models; compare needs two"),
    (["three", "--models", FAIR, "hf:nope"], "no results for model 'hf:nope'. Its models are: python:doc_rms:fair"),
    (["three", "cand"], "holds 3 models (python:doc_rms:fair, "),
    (["base", "cand", "base"], "3 run documents given"),
    (["base", "cand", "--max-regression", "lots"], "--max-regression: bad value 'lots'"),
])
def test_usage_errors_are_one_line(runs: dict[str, Path], capsys: pytest.CaptureFixture[str], args: list[str],
                                   message: str) -> None:
    argv = [str(runs[a]) if a in runs else a for a in args]
    assert main(["compare", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_a_test_missing_from_the_candidate_fails_the_gate(runs: dict[str, Path], tmp_path: Path) -> None:
    doc = json.loads(runs["cand"].read_text())
    doc["results"] = [r for r in doc["results"] if r["test"] != "canberra-preferred"]
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(doc))
    comparison = compare_runs([runs["base"], partial], thresholds=parse_thresholds(["1"]))
    assert comparison.missing == ["verbosity::canberra-preferred"] and comparison.failed


def test_pytest_baseline_fails_regressed_items(runs: dict[str, Path], pytester: pytest.Pytester) -> None:
    pytester.makepyfile(doc_rms=RMS)
    pytester.makefile(".rmcheck.yaml", v=SUITE.replace("expect: not_higher\n", "expect: not_higher\n    min_pass_rate: 0\n", 1))
    pytester.syspathinsert()
    result = pytester.runpytest("--rm", LENGTHY, "--rmcheck-baseline", str(runs["base"]), "-p", "no:cacheprovider",
                                "--junitxml", "junit.xml", "--rmcheck-regression-alpha", "1")
    result.assert_outcomes(failed=3)  # filler passes its own min_pass_rate 0 but regressed
    result.stdout.fnmatch_lines([
        "verbosity::filler-does-not-raise-score regressed against the baseline: pass rate 1.00 (*base.json) -> "
        "0.00 (python:doc_rms:lengthy) over the 4 cases both judged; drop 1.00 > max 0.00: yes; McNemar p 0.0625 "
        "<= 1: yes; 4 case(s) passed -> failed, 0 failed -> passed",
        "  case capital: d +0 -> +*{+*",
    ])
    result.stdout.fnmatch_lines(["rmcheck baseline: compared 3 tests: base python:doc_rms:fair (base.json) -> "
                                 "candidate python:doc_rms:lengthy",
                                 "rmcheck baseline: FAIL: 3 regression(s), 0 test(s) missing from the candidate"])
    allowed = pytester.runpytest("--rm", LENGTHY, "--rmcheck-baseline", str(runs["base"]), "-p", "no:cacheprovider",
                                 "--rmcheck-max-regression", "1", "--rmcheck-regression-alpha", "1")
    allowed.assert_outcomes(failed=3)  # each fell from 1.00 to 0.00: a collapse is a regression whatever the threshold


def test_pytest_baseline_errors_are_usage_errors(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(doc_rms=RMS)
    pytester.syspathinsert()
    result = pytester.runpytest("--rm", FAIR, "--rmcheck-baseline", str(tmp_path / "nope.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*nope.json: cannot read run document*"])


def test_cli_run_gates_against_a_baseline(runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "doc_rms.py").write_text(RMS, encoding="utf-8")
    (tmp_path / "v.rmcheck.yaml").write_text(SUITE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "doc_rms", raising=False)
    assert main(["run", "v.rmcheck.yaml", "--rm", FAIR, "--baseline", str(runs["base"])]) == 0
    assert "OK: no regression beyond the thresholds" in capsys.readouterr().out
    assert main(["run", "v.rmcheck.yaml", "--rm", LENGTHY, "--baseline", str(runs["base"]),
                 "--max-regression", "1"]) == 1
    out = capsys.readouterr().out  # every test fell from 1.00 to 0.00: no threshold lets a collapse through
    assert "FAIL: 3 regression(s), 0 test(s) missing from the candidate" in out
