"""The pytest plugin, driven through pytester as a user would run it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

RM = '''
def lengthy(prompts, responses):
    return [len(r.split()) / 10 for r in responses]

def fair(prompts, responses):
    return [1.0 if "Canberra" in r else 0.0 for r in responses]
'''

SUITE = """\
rmcheck: 1
suite: verbosity
cases:
  - id: capital
    prompt: What is the capital of Australia?
    response: Canberra is the capital of Australia. It was a compromise between Sydney and Melbourne.
tests:
  - name: filler-does-not-raise-score
    attribute: verbosity
    perturb: {op: pad_with_filler, n: 3}
    expect: not_higher
  - name: nothing-to-truncate
    perturb: {op: truncate_sentences, keep: 5}
    expect: not_lower
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(my_rm=RM)
    pytester.makefile(".rmcheck.yaml", verbosity=SUITE)
    pytester.syspathinsert()
    return pytester


def test_items_per_test_and_model_with_explained_failure(project: pytest.Pytester) -> None:
    result = project.runpytest("--rm", "python:my_rm:lengthy", "--rm", "python:my_rm:fair", "-v")
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    result.stdout.fnmatch_lines([
        "*verbosity.rmcheck.yaml::filler-does-not-raise-score?python:my_rm:lengthy? FAILED*",
        "*verbosity.rmcheck.yaml::filler-does-not-raise-score?python:my_rm:fair? PASSED*",
        "*verbosity.rmcheck.yaml::nothing-to-truncate?python:my_rm:fair? SKIPPED*",
    ])
    result.stdout.fnmatch_lines([
        "verbosity::filler-does-not-raise-score against python:my_rm:lengthy failed  (*verbosity.rmcheck.yaml:8)",
        "*expect not_higher: d <= t*",
        "*1 of 1 cases failed (pass rate 0.00 < min_pass_rate 1.00); 0 not applicable",
        "*prompt:",
        "*What is the capital of Australia?",
        "*minimal counterfactual of the response (1 of 3 edits; 1-minimal*",
        "*Canberra is the capital of Australia.*{+*+}*",
        "*score(response): original 1.4 -> minimal * (full perturbation *)",
    ])
    assert "Traceback" not in result.stdout.str()


def test_malformed_suite_is_a_one_line_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".rmcheck.yaml", broken="rmcheck: 1\nsuite: s\ncases:\n  - prompt: p\n    response: r\ntests:\n  - name: t\n    expected: higher\n")
    result = pytester.runpytest("--rm", "demo")
    out = result.stdout.str()
    assert "broken.rmcheck.yaml:8: unknown key 'expected' in tests[0]. Did you mean 'expect'?" in out
    assert "Traceback" not in out and "yamlmarks" not in out
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_default_model_is_demo(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RMCHECK_MODEL", raising=False)
    result = project.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["*verbosity.rmcheck.yaml::filler-does-not-raise-score?demo?",
                                 "*verbosity.rmcheck.yaml::nothing-to-truncate?demo?"])


def test_header_says_when_no_model_is_configured(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RMCHECK_MODEL", raising=False)
    project.runpytest("--collect-only").stdout.fnmatch_lines([
        "rmcheck: no model configured, so the embedded demo reward model is tested; name yours with --rm SPEC, "
        "the environment variable RMCHECK_MODEL=SPEC, or model = \"SPEC\" under [tool.rmcheck] in pyproject.toml"])
    for named in (["--rm", "demo"], ["--rm", "python:my_rm:fair"]):
        assert "no model configured" not in project.runpytest("--collect-only", *named).stdout.str()
    monkeypatch.setenv("RMCHECK_MODEL", "python:my_rm:fair")
    assert "no model configured" not in project.runpytest("--collect-only").stdout.str()


@pytest.mark.parametrize("how", ["pyproject", "env"])
def test_model_from_pyproject_or_environment(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "pyproject":
        project.makepyprojecttoml('[tool.rmcheck]\nmodel = "python:my_rm:fair"\n')
    else:
        monkeypatch.setenv("RMCHECK_MODEL", "python:my_rm:fair")
    result = project.runpytest("-v")
    result.stdout.fnmatch_lines(["*filler-does-not-raise-score?python:my_rm:fair? PASSED*"])


def _check_document(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert doc["rmcheck_run"] == 1 and doc["summary"] == {"passed": 0, "failed": 1, "skipped": 1, "xfailed": 0, "errors": 0}
    failed = next(r for r in doc["results"] if r["outcome"] == "failed")
    assert {k: failed[k] for k in ("suite", "test", "model", "attribute", "expect", "passed", "pass_rate")} == {
        "suite": "verbosity", "test": "filler-does-not-raise-score", "model": "python:my_rm:lengthy",
        "attribute": "verbosity", "expect": "not_higher", "passed": False, "pass_rate": 0.0}
    assert failed["counts"] == {"passed": 0, "failed": 1, "not_applicable": 0}
    (case,) = failed["cases"]
    assert case["id"] == "capital" and case["verdict"] == "failed" and case["delta"] > 0
    assert case["prompt"] == "What is the capital of Australia?"
    assert case["original"].startswith("Canberra") and len(case["perturbed"]) > len(case["minimal"]) > len(case["original"])
    assert set(case["scores"]) == {"original", "perturbed", "minimal"}
    assert (case["edits_kept"], case["edits_total"]) == (1, 3)
    assert doc["models"][0]["spec"] == "python:my_rm:lengthy" and doc["models"][0]["fingerprint"]


def test_json_run_document(project: pytest.Pytester) -> None:
    project.runpytest("--rm", "python:my_rm:lengthy", "--rmcheck-json", "out/run.json")
    _check_document(project.path / "out" / "run.json")


def test_json_run_document_is_written_once_under_xdist(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = project.runpytest_subprocess("-n", "2", "--rm", "python:my_rm:lengthy", "--rmcheck-json", "run.json")
    result.assert_outcomes(failed=1, skipped=1)
    _check_document(project.path / "run.json")


def test_a_conftest_adds_provenance_to_the_run_document(project: pytest.Pytester) -> None:
    """``pytest_rmcheck_run_document`` lets a conftest extend the document before it is written."""
    project.makeconftest('''
def pytest_rmcheck_run_document(document, config):
    document["provenance"] = {"gpu": "H200", "serving": "vllm 0.11.0", "results": len(document["results"])}
    for model in document["models"]:
        model["served_by"] = "replica-1"
''')
    result = project.runpytest("--rm", "python:my_rm:fair", "--rmcheck-json", "run.json")
    result.assert_outcomes(passed=1, skipped=1)
    doc = json.loads((project.path / "run.json").read_text())
    assert doc["provenance"] == {"gpu": "H200", "serving": "vllm 0.11.0", "results": 2}
    assert [m["served_by"] for m in doc["models"]] == ["replica-1"]
