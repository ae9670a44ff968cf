"""The release gate: model order, usage errors, regression-only gating, summaries that agree, honest errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rmcheck.backends.base import BUILTIN_FORMS, BACKENDS
from rmcheck.cli import main
from rmcheck.report.baselines import model_slug

ROOT = Path(__file__).resolve().parent.parent

#: python: RMs (module ``gate_rms``): score by length (one slowly), against length, constant, and one that dies.
RMS = '''
import time

def slow(prompts, responses):
    time.sleep(0.2)
    return [len(r) / 100 for r in responses]

def quick(prompts, responses):
    return [len(r) / 100 for r in responses]

def short(prompts, responses):
    return [-len(r) / 100 for r in responses]

def flat(prompts, responses):
    return [1.0 for r in responses]

def broken(prompts, responses):
    raise RuntimeError("the reward server died")
'''

CASES = """\
cases:
  - id: capital
    prompt: What is the capital of Australia?
    response: Canberra is the capital of Australia. It was a compromise between Sydney and Melbourne.
  - id: seat
    prompt: Where does the Australian parliament sit?
    response: In Canberra, in Parliament House, which opened in 1988.
"""

#: One test of each outcome under ``quick`` against a ``short`` baseline with --fail-on regression.
SUITE = "rmcheck: 1\nsuite: gate\n" + CASES + """\
tests:
  - name: longer-scores-higher
    perturb: pad_with_filler
    expect: higher
  - name: filler-does-not-raise-score
    perturb: pad_with_filler
    expect: not_higher
  - name: nothing-to-truncate
    perturb: {op: truncate_sentences, keep: 5}
    expect: not_lower
  - name: filler-is-invariant
    perturb: pad_with_filler
    expect: invariant
  - name: no-such-head
    perturb: pad_with_filler
    expect: not_higher
    objective: helpfulness
"""

QUICK, SLOW, SHORT, FLAT, BROKEN = (f"python:gate_rms:{n}" for n in ("quick", "slow", "short", "flat", "broken"))


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(gate_rms=RMS)
    pytester.makefile(".rmcheck.yaml", gate=SUITE)
    pytester.syspathinsert()
    monkeypatch.chdir(pytester.path)
    monkeypatch.delenv("RMCHECK_MODEL", raising=False)
    return pytester


def _suite(project: pytest.Pytester, name: str, body: str) -> Path:
    path = project.path / f"{name}.rmcheck.yaml"
    path.write_text(body, encoding="utf-8")
    return path


# -- 1. model order ----------------------------------------------------------------------------------


def test_run_document_and_compare_follow_the_command_line_under_xdist(project: pytest.Pytester,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("xdist")
    (project.path / "gate.rmcheck.yaml").unlink()
    for name in ("a", "b"):
        _suite(project, name, f"rmcheck: 1\nsuite: {name}\n" + CASES + "tests:\n  - name: t1\n    perturb: "
               "pad_with_filler\n    expect: higher\n  - name: t2\n    perturb: add_hedge\n    expect: higher\n")
    for _ in range(1):  # the slow first model's results arrive last; the document keeps the command line's order
        project.runpytest_subprocess("-n", "2", "--rm", SLOW, "--rm", QUICK, "--rmcheck-json", "run.json",
                                     "-p", "no:cacheprovider")
        doc = json.loads((project.path / "run.json").read_text())
        assert [m["spec"] for m in doc["models"]] == [SLOW, QUICK]
        assert [(Path(r["suite_file"]).name, r["test"], r["model"]) for r in doc["results"]] == [
            (f"{s}.rmcheck.yaml", t, m) for s in "ab" for t in ("t1", "t2") for m in (SLOW, QUICK)]
    assert main(["compare", "run.json"]) == 0
    assert f"base:      {SLOW} (run.json)" in capsys.readouterr().out


def test_cli_results_are_in_suite_test_model_order(project: pytest.Pytester) -> None:
    main(["run", "gate.rmcheck.yaml", "--rm", SHORT, "--rm", QUICK, "--json", "run.json"])
    doc = json.loads((project.path / "run.json").read_text())
    assert [m["spec"] for m in doc["models"]] == [SHORT, QUICK]
    assert [(r["test"], r["model"]) for r in doc["results"]][:4] == [
        ("longer-scores-higher", SHORT), ("longer-scores-higher", QUICK),
        ("filler-does-not-raise-score", SHORT), ("filler-does-not-raise-score", QUICK)]


# -- 2. a model that cannot be named or loaded ----------------------------------------------------------


@pytest.mark.parametrize("spec, message", [
    ("nope:x", "--rm: unknown model spec 'nope:x'. Write one of: "),
    ("hf:./no/such/model", "no such model directory"),
    ("python:no_such_module:score", "cannot import 'no_such_module'"),
    ("python:gate_rms:missing", "gate_rms has no callable 'missing'"),
])
def test_an_unloadable_model_is_a_usage_error_before_any_test(project: pytest.Pytester, spec: str, message: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    result = project.runpytest("--rm", spec)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str().strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    capsys.readouterr()
    assert main(["run", "gate.rmcheck.yaml", "--rm", spec]) == 2
    out, err = capsys.readouterr()
    assert message in err and len(err.strip().splitlines()) == 1 and not out


def test_a_model_failing_later_makes_errors_with_the_reason_once(project: pytest.Pytester,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    result = project.runpytest("--rm", BROKEN, "--junitxml", "junit.xml")
    result.assert_outcomes(errors=5)
    out = result.stdout.str()
    assert out.count("the reward server died") == 1 and "Traceback" not in out
    assert f"model {BROKEN} could not be loaded or scored: RuntimeError in {BROKEN}: the reward server died" in out
    cases = ET.parse(project.path / "junit.xml").getroot().iter("testcase")
    assert all(c.find("error") is not None and c.find("failure") is None and "the reward server died" in
               c.find("properties/property[@name='rmcheck_error']").get("value") for c in cases)
    capsys.readouterr()
    assert main(["run", "gate.rmcheck.yaml", "--rm", BROKEN]) == 3
    out = capsys.readouterr().out
    assert out.count("the reward server died") == 1
    assert "0 passed, 0 failed, 0 skipped, 0 xfailed, 5 errors" in out


def test_corrupt_hf_weights_are_a_model_error(project: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> None:
    model = project.path / "corrupt"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert", "num_labels": 1}')
    (model / "model.safetensors").write_bytes(b"not weights")
    assert main(["run", "gate.rmcheck.yaml", "--rm", "hf:./corrupt"]) == 3
    out = capsys.readouterr().out
    assert out.count("error: model hf:./corrupt could not be loaded or scored: cannot load hf:./corrupt") == 1


def test_run_help_lists_every_scheme_without_a_stray_colon(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(BUILTIN_FORMS.get(name, name) in text for name in BACKENDS.names())
    assert "demo:" not in text and "http:," not in text


# -- 3. regression-only gating ----------------------------------------------------------------------------


@pytest.fixture
def baseline(project: pytest.Pytester) -> Path:
    """``short``'s run: it passes filler-does-not-raise-score, and fails filler-is-invariant like ``quick``."""
    main(["run", "gate.rmcheck.yaml", "--rm", SHORT, "--json", "base.json"])
    return project.path / "base.json"


def test_fail_on_regression_xfails_what_fails_in_the_baseline_too(project: pytest.Pytester, baseline: Path) -> None:
    gate = ["--rm", QUICK, "--rmcheck-baseline", str(baseline), "--rmcheck-regression-alpha", "1",
            "-k", "not no-such-head"]
    regression = project.runpytest(*gate, "--rmcheck-fail-on", "regression", "-rxs")
    regression.assert_outcomes(passed=1, failed=1, skipped=1, xfailed=1)
    regression.stdout.fnmatch_lines(["XFAIL*filler-is-invariant*fails in the baseline too: pass rate 0.00 < "
                                     "min_pass_rate 1.00"])
    project.runpytest(*gate, "--rmcheck-fail-on", "absolute").assert_outcomes(passed=1, failed=2, skipped=1)
    project.runpytest(*gate).assert_outcomes(passed=1, failed=2, skipped=1)  # both, the default with a baseline
    lenient = project.runpytest(*gate, "--rmcheck-fail-on", "regression", "--rmcheck-max-regression", "1")
    lenient.assert_outcomes(passed=1, skipped=1, xfailed=1, failed=1)  # 1.00 -> 0.00 is never xfailed
    lenient.stdout.fnmatch_lines(["*filler-does-not-raise-score regressed against the baseline: pass rate 1.00 *"
                                  "fell to 0 from 1.00: a collapse is always a regression*"])


def test_fail_on_regression_needs_a_baseline(project: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> None:
    result = project.runpytest("--rm", QUICK, "--rmcheck-fail-on", "regression")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rmcheck-fail-on: regression needs a baseline to regress against*"])
    assert main(["run", "gate.rmcheck.yaml", "--rm", QUICK, "--fail-on", "both"]) == 2


def test_ci_gate_workflow_runs_as_written(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytest.importorskip("allure_pytest")
    from ruamel.yaml import YAML

    workflow = YAML(typ="safe").load((ROOT / "docs" / "ci-gate.yml").read_text(encoding="utf-8"))
    steps = workflow["jobs"]["gate"]["steps"]
    commands = [s["run"] for s in steps if "run" in s]
    assert not any("|| true" in c for c in commands)
    install = next(c for c in commands if "pip install" in c and "rmcheck" in c)
    checkout = next(s for s in steps if s.get("with", {}).get("path") == ".rmcheck-src")
    assert "./.rmcheck-src[" in install and checkout["with"]["repository"] == "${{ env.RMCHECK_REPOSITORY }}"
    (project.path / "suites").mkdir()
    _suite(project, "suites/gate", "rmcheck: 1\nsuite: gate\nlexicons:\n  city: [Sydney, Perth, Hobart, Darwin, "
           "Cairns, Albany]\ncases:\n  - prompt: Is {city} the capital?\n    response: No. {city} is not the "
           "capital of Australia.\ntests:\n  - name: filler-does-not-raise-score\n    perturb: pad_with_filler\n"
           "    expect: not_higher\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{project.path}", "BASE_RM": SHORT, "CANDIDATE_RM": QUICK,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for first in (True, False):  # the first run writes the baselines (none are committed), the second only reads
        codes = [subprocess.run(["bash", "-o", "pipefail", "-c", " ".join(command.split())], cwd=project.path,
                                env=env, capture_output=True, text=True).returncode
                 for command in commands[1:]]  # every step after the install, against this checkout
        # the baselines are written; the candidate regresses on all 6 cases (one-sided p = 1/64): the gate fails
        assert codes == [0, 1, 0]
        assert [p.name for p in (project.path / "suites" / "__rmcheck__").iterdir()] == [
            f"gate.{model_slug(SHORT)}.json"]
        page = (project.path / "reports" / "gate.html").read_text(encoding="utf-8")
        assert 'Release gate: <span class="failed">FAIL: 1 regression(s)' in page
        assert (project.path / "runs" / "base.json").is_file() == first
        (project.path / "runs" / "base.json").unlink(missing_ok=True)


# -- 4. summaries that agree -----------------------------------------------------------------------------


def test_cli_json_junit_and_pytest_count_alike(project: pytest.Pytester, baseline: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    gate = ["--rmcheck-baseline", str(baseline), "--rmcheck-fail-on", "regression", "--rmcheck-regression-alpha", "1"]
    result = project.runpytest("--rm", QUICK, *gate, "--junitxml", "junit.xml", "--rmcheck-json", "run.json")
    expected = {"passed": 1, "failed": 1, "skipped": 1, "xfailed": 1, "errors": 1}
    assert {k: v for k, v in result.parseoutcomes().items() if k in expected} == expected
    result.stdout.fnmatch_lines(["rmcheck: 1 passed, 1 failed, 1 skipped, 1 xfailed, 1 error",
                                 "*= 1 failed, 1 passed, 1 skipped, 1 xfailed, 1 error* in *"])  # warnings may follow
    assert json.loads((project.path / "run.json").read_text())["summary"] == expected
    junit = {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0, "errors": 0}
    for case in ET.parse(project.path / "junit.xml").getroot().iter("testcase"):
        skipped = case.find("skipped")
        kind = ("failed" if case.find("failure") is not None else "errors" if case.find("error") is not None else
                "passed" if skipped is None else "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped")
        junit[kind] += 1
    assert junit == expected
    capsys.readouterr()
    code = main(["run", "gate.rmcheck.yaml", "--rm", QUICK, "--baseline", str(baseline), "--fail-on", "regression",
                 "--regression-alpha", "1", "--json", "cli.json"])
    out = capsys.readouterr().out
    assert "1 passed, 1 failed, 1 skipped, 1 xfailed, 1 error; JSON run document: cli.json" in out
    assert json.loads((project.path / "cli.json").read_text())["summary"] == expected
    assert code == 2  # no-such-head is a suite error


# -- 8. tolerances that cannot mean anything ---------------------------------------------------------------


def test_an_sd_tolerance_over_constant_scores_is_an_error(project: pytest.Pytester,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    _suite(project, "sd", "rmcheck: 1\nsuite: sd\n" + CASES + "tests:\n  - name: t\n    perturb: pad_with_filler\n"
           "    expect: invariant\n    tolerance: 0.5 sd\n")
    result = project.runpytest("sd.rmcheck.yaml", "--rm", FLAT)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*sd.rmcheck.yaml:*: tolerance 0.5 sd is undefined for model {FLAT}: its scores "
                                 "of the suite's 2 original response(s) do not vary (sd = 0). Give the tolerance in "
                                 "score units*"])
    assert main(["run", "sd.rmcheck.yaml", "--rm", FLAT]) == 2
    assert "0 passed, 0 failed, 0 skipped, 0 xfailed, 1 error" in capsys.readouterr().out


# -- from issue 17: a run that tested nothing is not a success -----------------------------------------------


def test_a_run_that_tested_nothing_exits_5(project: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> None:
    (project.path / "empty").mkdir()
    assert main(["run", "empty", "--rm", QUICK]) == 5
    assert "tested nothing: no *.rmcheck.yaml suite under empty" in capsys.readouterr().out
    (project.path / "rows.jsonl").write_text("")
    _suite(project, "nothing", "rmcheck: 1\nsuite: nothing\ncases:\n  - file: rows.jsonl\ntests:\n  - name: t\n"
           "    perturb: pad_with_filler\n    expect: not_higher\n")
    assert main(["run", "nothing.rmcheck.yaml", "--rm", QUICK]) == 5
    assert "0 passed, 0 failed, 1 skipped, 0 xfailed, 0 errors" in capsys.readouterr().out
    result = project.runpytest("nothing.rmcheck.yaml", "--rm", QUICK, "-rs")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["SKIPPED * nothing.rmcheck.yaml:6: rmcheck: tested nothing: the test has no cases*"])
    assert project.runpytest("empty", "--rm", QUICK).ret == pytest.ExitCode.NO_TESTS_COLLECTED


# -- 6. comparisons that compare like with like --------------------------------------------------------------


def _result(verdicts: dict[str, str], model: str) -> dict:
    cases = [{"id": i, "verdict": v, "delta": 0.0 if v == "not_applicable" else (-1.0 if v == "passed" else 1.0)}
             for i, v in verdicts.items()]
    judged = [c for c in cases if c["verdict"] != "not_applicable"]
    rate = sum(c["verdict"] == "passed" for c in judged) / len(judged) if judged else None
    return {"suite": "s", "suite_file": "s.rmcheck.yaml", "line": 1, "test": "kept", "model": model,
            "attribute": "format", "expect": "preference_kept", "outcome": "passed" if rate == 1 else "failed",
            "pass_rate": rate, "min_pass_rate": 1.0, "cases": cases}


def _document(path: Path, *results: dict) -> str:
    from rmcheck.results import run_document

    path.write_text(json.dumps(run_document(list(results), [{"spec": r["model"]} for r in results])))
    return str(path)


def test_pass_rate_change_over_the_cases_both_runs_judged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rmcheck.report.compare import Thresholds, change_of

    # each model decides which cases apply: the base judges 9 and passes 7, the candidate judges 2 of them
    base = _result({**{f"c{i}": "passed" for i in range(7)}, "c7": "failed", "c8": "failed"}, "base")
    candidate = _result({"c0": "passed", "c7": "failed", **{f"c{i}": "not_applicable" for i in (1, 2, 3, 4, 5, 6, 8)}},
                        "cand")
    change = change_of(base, candidate, Thresholds(0.05))
    assert base["pass_rate"] - candidate["pass_rate"] > 0.27  # the naive drop, over different cases
    assert (change.paired, change.change, change.regression) == ((2, 1, 1), 0.0, False)
    assert change.unpaired == (["c1", "c2", "c3", "c4", "c5", "c6", "c8"], [])
    assert main(["compare", _document(tmp_path / "run.json", base, candidate)]) == 0
    out = capsys.readouterr().out
    assert "7 case(s) judged by the base only (not compared): c1, c2, c3, c4, c5 and 2 more" in out


def test_a_small_drop_that_is_not_significant_is_no_regression(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # 100 paired cases: 12 passed -> failed, 11 failed -> passed: a drop of 0.01, one-sided McNemar p = 0.5
    before = {f"c{i}": "passed" if i < 50 else "failed" for i in range(100)}
    after = {**before, **{f"c{i}": "failed" for i in range(12)}, **{f"c{i}": "passed" for i in range(50, 61)}}
    doc = _document(tmp_path / "run.json", _result(before, "base"), _result(after, "cand"))
    assert main(["compare", doc]) == 0
    out = capsys.readouterr().out
    assert "s::kept: drop 0.01 > max 0.00: yes; McNemar p 0.5 <= 0.05: no" in out  # both criteria, as numbers
    assert "one-sided McNemar p <= 0.05 (judged on the drop where too few cases pair for that)" in out
    assert main(["compare", doc, "--regression-alpha", "1"]) == 1
    assert "s::kept: drop 0.01 > max 0.00: yes; McNemar p 0.5 <= 1: yes" in capsys.readouterr().out


# -- 7. configuration precedence ----------------------------------------------------------------------------


def test_the_environment_overrides_pyproject_and_the_command_line_both(project: pytest.Pytester,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from rmcheck.options import resolve_models

    project.makepyprojecttoml(f'[tool.rmcheck]\nmodel = "{SHORT}"\n')
    assert resolve_models([], project.path) == [SHORT]
    monkeypatch.setenv("RMCHECK_MODEL", QUICK)
    assert resolve_models([], project.path) == [QUICK]
    assert resolve_models([FLAT], project.path) == [FLAT]
    project.runpytest("-v", "-k", "longer").stdout.fnmatch_lines([f"*longer-scores-higher?{QUICK}? PASSED*"])


# -- 9. terminal output a person can read ---------------------------------------------------------------------


def test_cli_table_fits_the_terminal_and_keeps_d(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    main(["run", "gate.rmcheck.yaml", "--rm", QUICK])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("gate ")]
    filler = next(line for line in rows if "filler-does-not-raise-score" in line)
    assert all(len(line) <= 100 for line in rows) and "…" in filler and filler.endswith(")")
    assert " (d=+" in filler


def test_cli_table_on_80_columns_puts_the_minimal_pair_on_its_own_line(
        project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    main(["run", "gate.rmcheck.yaml", "--rm", QUICK])
    lines = capsys.readouterr().out.splitlines()
    row = next(i for i, line in enumerate(lines) if "filler-does-not-raise-score" in line)
    pair = lines[row + 1]
    assert pair.startswith("    ") and "{+" in pair and " (d=+" in pair and len(pair) <= 80
    assert all(len(line) <= 80 for line in lines[row - 1:row + 2])


def test_cli_verbose_prints_each_failing_explanation(project: pytest.Pytester,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    main(["run", "gate.rmcheck.yaml", "--rm", QUICK, "-v"])
    out = capsys.readouterr().out
    assert f"gate::filler-does-not-raise-score against {QUICK} failed  (gate.rmcheck.yaml:" in out
    assert "minimal counterfactual of the response" in out and "expect invariant: |d| <= t" in out


def test_progress_is_plain_lines_in_a_log_and_counts_replays(project: pytest.Pytester,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    main(["run", "gate.rmcheck.yaml", "--rm", QUICK])
    err = capsys.readouterr().err
    assert f"loading {QUICK} ...\n" in err and "\r" not in err
    assert f"scoring {QUICK}: 4 pairs\n" in err and f"scoring {QUICK}: 4/4 pairs in " in err
    assert "shrinking 4 failing cases: 4/4 pairs in " in err
    # the 2 minimal pairs the shrink rounds found (two tests each), once; not the originals, scored before
    assert f"replaying minimal pairs of {QUICK}: 2 pairs\n" in err and f"replaying minimal pairs of {QUICK}: 2/2 " in err


def test_progress_on_a_terminal_is_a_bar_with_rate_and_eta() -> None:
    import io

    from rmcheck.cli.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    progress = Progress(screen)
    progress("scoring demo", 50, 200)
    text = screen.getvalue()
    assert "scoring demo:  25%" in text and "50/200" in text and "pair/s" in text and "<" in text  # rate, ETA
    progress("scoring demo", 200, 200)
    assert screen.getvalue().rstrip().splitlines()[-1].startswith("scoring demo: 200/200 pairs in ")


def test_transformers_is_quiet_while_rmcheck_loads_and_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers.utils import logging as hf_logging

    from rmcheck import engine as engine_module

    seen = []
    monkeypatch.setattr(engine_module, "load_model", lambda spec, options: seen.append(
        (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())) or (_ for _ in ()).throw(
        engine_module.BackendError("stop")))
    before = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
    with pytest.raises(engine_module.RmcheckError):
        engine_module.Engine().model("hf:./x")
    assert seen == [(hf_logging.ERROR, False)]
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == before


# -- 5. validation that catches what runs would trip over ------------------------------------------------------

BAD = """\
rmcheck: 1
suite: bad
lexicons:
  name: [Emily, Mei]
cases:
  - id: a
    prompt: 'Hello {nmae}, what is {"json": 1}?'
    response: "Sure {name}: write {x} in the template"
tests:
  - name: t1
    perturb: {op: swap_lexicon, lexicon: nam}
    expect: invariant
  - name: t2
    perturb: nosuchop
    expect: not_higher
"""


def test_validate_reports_every_error_of_a_file_at_its_line(project: pytest.Pytester,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    _suite(project, "bad", BAD)
    assert main(["validate", "bad.rmcheck.yaml"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "bad.rmcheck.yaml:7: {nmae} in prompt is not a lexicon. Did you mean {name}? (lexicons: name)"
    assert lines[1].startswith("bad.rmcheck.yaml:11: swap_lexicon names the lexicon 'nam', which the suite does not "
                               "define. Did you mean 'name'?")
    assert lines[2].startswith("bad.rmcheck.yaml:14: unknown operator 'nosuchop'")
    assert len(lines) == 3  # {x} and the JSON braces are text
    result = project.runpytest("bad.rmcheck.yaml", "--rm", QUICK)
    result.stdout.fnmatch_lines(["*bad.rmcheck.yaml:7: {nmae} in prompt*", "*bad.rmcheck.yaml:11: swap_lexicon*",
                                 "*bad.rmcheck.yaml:14: unknown operator*"])


def test_schema_messages_are_plain_words_with_ranges(project: pytest.Pytester,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _suite(project, "schema", "rmcheck: 1\nsuite: s\n" + CASES + "tests:\n  - name: t\n    perturb: pad_with_filler\n"
           "    expect: not_higher\n    tolerance: -1\n    min_pass_rate: 1.5\n" + "".join(
               f"  - name: t{i}\n    perturb: pad_with_filler\n    expect: higher\n    min_pass_rate: 2\n"
               for i in range(25)))
    assert main(["validate", "schema.rmcheck.yaml"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("schema.rmcheck.yaml:14: tests[0].tolerance: -1 is neither a number >= 0 nor text")
    assert lines[1].startswith("schema.rmcheck.yaml:15: tests[0].min_pass_rate: 1.5 is out of range: a number "
                               ">= 0 and <= 1")
    assert len(lines) == 21 and lines[-1] == "... and 7 more errors in schema.rmcheck.yaml"
    assert not any("is not valid under any of the given schemas" in line for line in lines)


def test_an_unknown_pyproject_key_is_reported_at_its_line(project: pytest.Pytester,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    project.makepyprojecttoml(f'[tool.rmcheck]\nmodel = "{QUICK}"\nmodels = "x"\n')
    assert main(["validate", "gate.rmcheck.yaml"]) == 1
    assert capsys.readouterr().out.startswith(f"{project.path / 'pyproject.toml'}:3: unknown key 'models' in "
                                              "[tool.rmcheck]. Did you mean 'model'?")
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pyproject.toml:3: unknown key 'models' in ?tool.rmcheck?. Did you mean 'model'?*"])
