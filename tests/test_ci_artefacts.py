"""CI artefacts: JUnit XML properties, Allure attachments of failing cases, the example gate workflow."""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from rmcheck.report.ci import attach_failure, junit_properties
from tests.rundocs import RMS, SUITE

ROOT = Path(__file__).resolve().parent.parent

# Loaded here, in this process, because pytester's in-process runs unload modules first imported inside
# them, and numpy's C extension cannot be loaded twice.
pytest.importorskip("matplotlib.pyplot")
LENGTHY = "python:doc_rms:lengthy"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(doc_rms=RMS)
    pytester.makefile(".rmcheck.yaml", v=SUITE)
    pytester.syspathinsert()
    return pytester


def properties(junit: Path) -> dict[str, dict[str, str]]:
    cases = ET.parse(junit).getroot().iter("testcase")
    return {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")} for case in cases}


def test_junit_xml_carries_pass_rates_and_deltas(project: pytest.Pytester) -> None:
    project.runpytest("--rm", LENGTHY, "--junitxml", "junit.xml", "-p", "no:cacheprovider")
    props = properties(project.path / "junit.xml")
    filler = props[f"filler-does-not-raise-score[{LENGTHY}]"]
    assert filler["rmcheck_model"] == LENGTHY and filler["rmcheck_attribute"] == "verbosity"
    assert filler["rmcheck_pass_rate"] == "0" and filler["rmcheck_failed"] == "4"
    assert filler["rmcheck_not_applicable"] == "0" and filler["rmcheck_expect"] == "not_higher"
    assert float(filler["rmcheck_min_delta"]) > 0 and float(filler["rmcheck_mean_delta"]) > 0
    assert all(len(v) <= 200 for p in props.values() for v in p.values())
    assert "rmcheck_baseline_pass_rate" not in filler
    canberra = props[f"canberra-preferred[{LENGTHY}]"]
    assert canberra["rmcheck_passed"] == "0" and canberra["rmcheck_not_applicable"] == "2"


def test_junit_properties_with_a_baseline_change() -> None:
    from rmcheck.report.compare import Thresholds, change_of

    case = {"id": "c", "verdict": "failed", "delta": 0.5}
    result = {"suite": "s", "test": "t", "model": "m", "attribute": "", "expect": "not_higher", "pass_rate": 0.0,
              "min_pass_rate": 0.0, "counts": {"passed": 0, "failed": 1, "not_applicable": 0}, "threshold": 0.0,
              "cases": [case]}
    base = {**result, "pass_rate": 1.0, "cases": [{**case, "verdict": "passed", "delta": -0.1}]}
    props = dict(junit_properties(result, change_of(base, result, Thresholds(), alpha=None)))
    assert props["rmcheck_attribute"] == "s"  # the suite when the test has no attribute
    assert (props["rmcheck_baseline_pass_rate"], props["rmcheck_pass_rate_change"]) == ("1", "-1")
    assert (props["rmcheck_mcnemar_p"], props["rmcheck_regression"]) == ("0.5", "true")  # one-sided: P(X >= 1 | 1)


def allure_results(folder: Path) -> dict[str, dict]:
    found = {}
    for path in folder.glob("*-result.json"):
        data = json.loads(path.read_text())
        found[data["name"]] = data
    return found


def test_allure_attaches_minimal_pairs_and_plots_of_failing_cases(project: pytest.Pytester) -> None:
    pytest.importorskip("allure_pytest")
    project.runpytest("--rm", LENGTHY, "--alluredir", "allure", "-p", "no:cacheprovider")
    results = allure_results(project.path / "allure")
    filler = results[f"filler-does-not-raise-score[{LENGTHY}]"]
    assert filler["status"] == "failed"
    attachments = {a["name"]: a for a in filler["attachments"]}
    assert set(attachments) == {"minimal pair: capital", "minimal pair: close-call/chosen",
                                "minimal pair: close-call/rejected", "minimal pair: seat", "case deltas"}
    page = (project.path / "allure" / attachments["minimal pair: capital"]["source"]).read_text()
    assert attachments["minimal pair: capital"]["type"] == "text/html"
    assert "<ins>" in page and "What is the capital of Australia?" in page and "minimal counterfactual" in page
    png = project.path / "allure" / attachments["case deltas"]["source"]
    assert attachments["case deltas"]["type"] == "image/png" and png.read_bytes().startswith(b"\x89PNG")
    canberra = results[f"canberra-preferred[{LENGTHY}]"]
    assert {a["name"] for a in canberra["attachments"]} == {"minimal pair: close-call", "case deltas"}


def test_passing_tests_attach_nothing(project: pytest.Pytester) -> None:
    pytest.importorskip("allure_pytest")
    project.runpytest("--rm", "python:doc_rms:fair", "--alluredir", "allure", "-p", "no:cacheprovider")
    results = allure_results(project.path / "allure")
    assert results and all(r["status"] == "passed" and not r.get("attachments") for r in results.values())


def test_without_allure_nothing_is_attached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "allure", None)
    assert attach_failure({"suite": "s", "test": "t", "model": "m", "cases": []}) == 0


def test_only_perturbation_cases_get_pairs_and_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    attached: list[str] = []
    fake = SimpleNamespace(attach=lambda body, name, attachment_type: attached.append(name),
                           attachment_type=SimpleNamespace(HTML="html", TEXT="text", PNG="png"))
    monkeypatch.setitem(sys.modules, "allure", fake)
    result = {"suite": "s", "test": "t", "model": "m", "threshold": 0.0, "cases": [
        {"id": "group", "verdict": "failed", "delta": -0.2}]}  # another kind's case: it attaches its own artefacts
    assert attach_failure(result) == 0
    result["cases"].append({"id": "c", "verdict": "failed", "delta": 0.5, "prompt": "p", "role": "response",
                            "original": "a", "perturbed": "a b", "response_scores": {}})
    assert attach_failure(result) == 2 and attached == ["minimal pair: c", "case deltas"]


def test_the_example_workflow_gates_on_committed_baselines() -> None:
    """The workflow's gate is pytest against the baselines committed beside the suites, failing on regressions
    only, with JUnit and Allure artefacts; the report step puts the gate's verdict on top. (Running its steps is
    tests/acceptance/test_ci_gate.py's job.)"""
    from ruamel.yaml import YAML

    workflow = YAML(typ="safe").load((ROOT / "docs" / "ci-gate.yml").read_text(encoding="utf-8"))
    runs = [step.get("run", "") for step in workflow["jobs"]["gate"]["steps"]]
    gate = next(r for r in runs if "--rmcheck-baseline" in r)
    assert "--rmcheck-fail-on regression" in gate and "--junitxml" in gate and "--alluredir" in gate
    assert "|| true" not in gate  # the step fails exactly on a regression
    assert any("--update-baseline" in r for r in runs)
    assert any("rmcheck report" in r and "--baseline" in r for r in runs)
