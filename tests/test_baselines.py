"""The release gate against baselines committed beside the suites: total regressions never pass, however
few cases a test has; baselines are written by one flag, read from a folder, and listed when unused."""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from rmcheck.cli import main
from rmcheck.report.baselines import baseline_path, model_slug

#: python: RMs (module ``base_rms``): a clean one, its negated score head, and one that loves length.
RMS = '''
def clean(prompts, responses):
    return [1.0 if "Canberra" in r else 0.0 for r in responses]

def negated(prompts, responses):
    return [-s for s in clean(prompts, responses)]

def lengthy(prompts, responses):
    return [len(r.split()) / 10 for r in responses]
'''

#: Two cases: too few for any one-sided McNemar p <= 0.05 (the smallest is 1/4), so the drop decides.
SUITE = """\
rmcheck: 1
suite: small
cases:
  - id: capital
    prompt: What is the capital of Australia?
    chosen: Canberra is the capital of Australia.
    rejected: Sydney is the capital of Australia, as everybody knows from the opera house and the bridge.
  - id: seat
    prompt: Where does the Australian parliament sit?
    chosen: In Canberra, in Parliament House.
    rejected: In Sydney, in the opera house by the harbour, where every important thing happens.
tests:
  - name: prefers-the-right-answer
    attribute: factuality
    expect: prefers_chosen
  - name: filler-does-not-raise-score
    attribute: verbosity
    perturb: pad_with_filler
    expect: not_higher
"""

CLEAN, NEGATED, LENGTHY = (f"python:base_rms:{n}" for n in ("clean", "negated", "lengthy"))
ROW = "n = 2: too few paired cases for p ≤ 0.05; judged on the drop"


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(base_rms=RMS)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "small.rmcheck.yaml").write_text(SUITE, encoding="utf-8")
    pytester.syspathinsert()
    monkeypatch.chdir(pytester.path)
    monkeypatch.delenv("RMCHECK_MODEL", raising=False)
    return pytester


@pytest.fixture
def committed(project: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> Path:
    """The clean model's baseline, written beside the suite by ``rmcheck run --update-baseline``."""
    assert main(["run", "suites", "--rm", CLEAN, "--update-baseline"]) == 0
    path = baseline_path("suites/small.rmcheck.yaml", CLEAN)
    assert f"baseline: wrote {path} (2 tests)" in capsys.readouterr().out
    return path


def test_model_specs_become_safe_distinct_file_names() -> None:
    specs = ["demo", "hf:/path/x", "hf:/path-x", "hf:org/RM@v1.0", "hf:org/rm@v1.0", "python:mod:fn",
             "http://host:8000,host2:8000?timeout=5", "dpo:http://a,http://b,beta=0.1", "hf:" + "x/" * 80]
    slugs = [model_slug(s) for s in specs]
    assert slugs[0] == "demo" and len(set(slugs)) == len(specs)
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", s) and len(s) <= 80 for s in slugs)
    assert slugs[1].startswith("hf-path-x-") and slugs[5].startswith("python-mod-fn-")
    assert baseline_path("suites/identity.rmcheck.yaml", "demo") == Path("suites/__rmcheck__/identity.demo.json")


def test_a_baseline_is_compact_sorted_json_one_line_per_case(committed: Path) -> None:
    text = committed.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert (doc["model"], doc["suite_file"], sorted(doc["tests"])) == (
        CLEAN, "small.rmcheck.yaml", ["filler-does-not-raise-score", "prefers-the-right-answer"])
    case_lines = [line.strip().rstrip(",") for line in text.splitlines() if '"verdict"' in line]
    assert len(case_lines) == 2 + 4  # prefers: 2 cases; filler: chosen and rejected of each
    assert all(json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False) == line for line in case_lines)


@pytest.mark.parametrize("candidate", [NEGATED, LENGTHY])
def test_a_total_regression_of_a_two_case_test_fails_the_gate(project: pytest.Pytester, committed: Path,
                                                              capsys: pytest.CaptureFixture[str], candidate: str) -> None:
    assert main(["run", "suites", "--rm", candidate, "--baseline", "suites", "--fail-on", "regression",
                 "--json", "run.json"]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("small::prefers-the-right-answer "))
    assert row.split()[2:4] == ["1.00", "0.00"] and row.endswith(f"REGRESSION  {ROW}")
    result = next(r for r in json.loads((project.path / "run.json").read_text())["results"]
                  if r["test"] == "prefers-the-right-answer")
    assert result["status"] == "failed"
    assert result["baseline"]["path"] == str(committed)
    assert result["baseline"]["sha256"] == __import__("hashlib").sha256(committed.read_bytes()).hexdigest()
    assert main(["run", "suites", "--rm", CLEAN, "--json", "base.json"]) == 0
    capsys.readouterr()
    assert main(["compare", "base.json", "run.json"]) == 1  # rmcheck compare judges by the same rule
    assert next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("small::prefers-the-right-answer ")).endswith(f"REGRESSION  {ROW}")
    pytest_run = project.runpytest("--rm", candidate, "--rmcheck-baseline", "suites", "--rmcheck-fail-on",
                                   "regression", "-p", "no:cacheprovider", "-rx")
    assert pytest_run.ret == pytest.ExitCode.TESTS_FAILED
    pytest_run.stdout.fnmatch_lines([f"small::prefers-the-right-answer regressed against the baseline: pass rate "
                                     f"1.00 ({committed}) -> 0.00 ({candidate}) over the 2 cases both judged; drop "
                                     f"1.00 > max 0.00: yes; {ROW}; 2 case(s) passed -> failed, 0 failed -> passed"])
    assert "XFAIL" not in pytest_run.stdout.str()


def test_clean_against_clean_passes(project: pytest.Pytester, committed: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "suites", "--rm", CLEAN, "--baseline", "suites", "--fail-on", "regression"]) == 0
    assert "OK: no regression beyond the thresholds" in capsys.readouterr().out
    project.runpytest("--rm", CLEAN, "--rmcheck-baseline", "suites").assert_outcomes(passed=2)


def test_a_drop_the_test_can_show_is_not_significant_passes_with_its_p(project: pytest.Pytester,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # 12 cases; the candidate loses one: one-sided p = 0.5, and p could reach 0.05, so the drop does not decide
    cases = "".join(f"  - id: c{i}\n    prompt: Capital {i}?\n    chosen: Canberra{' is it' * (i % 3)}.\n"
                    f"    rejected: {'Sydney, which is nice' if i else 'Sydney, or Perth'}.\n" for i in range(12))
    (project.path / "suites" / "small.rmcheck.yaml").write_text(
        "rmcheck: 1\nsuite: small\ncases:\n" + cases + "tests:\n  - name: prefers\n    expect: prefers_chosen\n"
        "    min_pass_rate: 0.5\n", encoding="utf-8")
    (project.path / "base_rms.py").write_text(RMS + '''
def flawed(prompts, responses):
    return [len(r) if "Perth" in r else s for r, s in zip(responses, clean(prompts, responses))]
''', encoding="utf-8")
    assert main(["run", "suites", "--rm", CLEAN, "--update-baseline"]) == 0
    capsys.readouterr()
    assert main(["run", "suites", "--rm", "python:base_rms:flawed", "--baseline", "suites", "--fail-on",
                 "regression"]) == 0
    out = capsys.readouterr().out
    assert "small::prefers: drop 0.08 > max 0.00: yes; McNemar p 0.5 <= 0.05: no" in out
    assert "OK: no regression beyond the thresholds" in out


def test_update_then_edit_a_suite_lists_unused_and_missing_baselines(project: pytest.Pytester, committed: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    suite = project.path / "suites" / "small.rmcheck.yaml"
    suite.write_text(SUITE.replace("name: filler-does-not-raise-score", "name: padding-does-not-raise-score"))
    (project.path / "suites" / "gone.rmcheck.yaml").write_text(SUITE.replace("suite: small", "suite: gone"))
    assert main(["run", "suites/gone.rmcheck.yaml", "--rm", CLEAN, "--update-baseline"]) == 0
    (project.path / "suites" / "gone.rmcheck.yaml").unlink()
    capsys.readouterr()
    assert main(["run", "suites", "--rm", CLEAN, "--baseline", "suites", "--fail-on", "regression"]) == 2
    out = capsys.readouterr().out
    missing = (f"error: {committed}: no baseline of small::padding-does-not-raise-score [{CLEAN}]. Write it with "
               f"`rmcheck run suites/small.rmcheck.yaml --rm {CLEAN} --update-baseline` (pytest: "
               f"--rmcheck-update-baseline) and commit it")
    gone = baseline_path("suites/gone.rmcheck.yaml", CLEAN)
    assert missing in out
    assert (f"2 unused baseline(s), of suites or tests that no longer exist (--update-baseline deletes them):\n"
            f"  {gone} (no suite suites/gone.rmcheck.yaml)\n"
            f"  {committed}::filler-does-not-raise-score (no such test in suites/small.rmcheck.yaml)") in out
    result = project.runpytest("--rm", CLEAN, "--rmcheck-baseline", "suites", "--rmcheck-fail-on", "regression")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"*rmcheck: {committed}: no baseline of small::padding-does-not-raise-score*",
                                 "rmcheck baseline: 2 unused baseline(s)*", f"  {gone} (no suite *",
                                 f"  {committed}::filler-does-not-raise-score (no such test in *"])
    assert main(["run", "suites", "--rm", CLEAN, "--update-baseline"]) == 0
    assert f"baseline: deleted {gone} (no suite suites/gone.rmcheck.yaml)" in capsys.readouterr().out
    assert sorted(json.loads(committed.read_text())["tests"]) == ["padding-does-not-raise-score",
                                                                  "prefers-the-right-answer"]
    assert main(["run", "suites", "--rm", CLEAN, "--baseline", "suites", "--fail-on", "regression"]) == 0
    assert "unused baseline" not in capsys.readouterr().out


def test_pytest_writes_baselines_once_under_xdist_and_gates_against_them(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    (project.path / "suites" / "other.rmcheck.yaml").write_text(SUITE.replace("suite: small", "suite: other"))
    update = project.runpytest_subprocess("-n", "2", "--rm", CLEAN, "--rmcheck-update-baseline",
                                          "-p", "no:cacheprovider")
    update.assert_outcomes(passed=4)
    written = sorted(p.name for p in (project.path / "suites" / "__rmcheck__").iterdir())
    assert written == [f"other.{model_slug(CLEAN)}.json", f"small.{model_slug(CLEAN)}.json"]
    update.stdout.fnmatch_lines(["rmcheck baseline: wrote suites/__rmcheck__/other.*.json (2 tests)"])
    gate = project.runpytest_subprocess("-n", "2", "--rm", LENGTHY, "--rmcheck-baseline", "suites",
                                        "--rmcheck-fail-on", "regression", "--rmcheck-json", "run.json",
                                        "-p", "no:cacheprovider")
    gate.assert_outcomes(failed=4)
    gate.stdout.fnmatch_lines([f"rmcheck baseline: REGRESSION small::prefers-the-right-answer: drop 1.00 > max "
                               f"0.00: yes; {ROW}"])
    sources = {r["baseline"]["path"] for r in json.loads((project.path / "run.json").read_text())["results"]}
    assert len(sources) == 2 and all(Path(project.path, s).is_file() for s in sources)


def test_a_negated_hf_score_head_fails_the_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Without pytester: its sys.modules snapshot would drop the torch.distributed modules that saving a model
    imports, and importing them again in a later test registers torch's c10d_functional library twice (a
    RuntimeError, then a segfault while pytest formats it)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from fixtures.tiny_models import build_tiny_llama_rm
    from rmcheck.backends.base import Pair, load_model

    (tmp_path / "suites").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RMCHECK_MODEL", raising=False)
    project = SimpleNamespace(path=tmp_path)
    clean = build_tiny_llama_rm(project.path / "rm")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(clean))
    with torch.no_grad():
        model.score.weight.neg_()
    model.save_pretrained(str(project.path / "rm-negated"))
    transformers.AutoTokenizer.from_pretrained(str(clean)).save_pretrained(str(project.path / "rm-negated"))
    # two cases the clean model gets right: chosen is whichever response it scores higher
    rm = load_model("hf:./rm")
    pairs = [("What is the capital of Australia?", "Canberra.", "Sydney, as everybody knows."),
             ("Where does parliament sit?", "In Canberra, in Parliament House.", "In the opera house.")]
    cases = ""
    for n, (prompt, a, b) in enumerate(pairs):
        sa, sb = (s["score"] for s in rm.score([Pair(prompt, a), Pair(prompt, b)]))
        chosen, rejected = (a, b) if sa > sb else (b, a)
        cases += f"  - id: c{n}\n    prompt: {prompt}\n    chosen: {chosen}\n    rejected: {rejected}\n"
    (project.path / "suites" / "small.rmcheck.yaml").write_text(
        "rmcheck: 1\nsuite: small\ncases:\n" + cases + "tests:\n  - name: prefers\n    expect: prefers_chosen\n")
    assert main(["run", "suites", "--rm", "hf:./rm", "--update-baseline", "--no-cache"]) == 0
    capsys.readouterr()
    assert main(["run", "suites", "--rm", "hf:./rm-negated", "--baseline", "suites", "--fail-on", "regression",
                 "--no-cache"]) == 1
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("small::prefers "))
    assert row.split()[2:4] == ["1.00", "0.00"] and row.endswith(f"REGRESSION  {ROW}")


def test_report_and_compare_put_the_gate_on_top_with_both_sides_of_each_flip(
        project: pytest.Pytester, committed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("jinja2")
    assert main(["run", "suites", "--rm", CLEAN, "--json", "base.json"]) == 0
    assert main(["run", "suites", "--rm", LENGTHY, "--json", "cand.json"]) == 1
    capsys.readouterr()
    assert main(["report", "cand.json", "--baseline", "suites", "-o", "report.html"]) == 0
    assert capsys.readouterr().out.startswith(f"FAIL: 2 regression(s), 0 test(s) missing from the candidate: "
                                              f"{LENGTHY} against {CLEAN} (baselines beside the suites under suites)")
    assert main(["compare", "base.json", "cand.json", "--html", "compare.html"]) == 1
    for page in ("report.html", "compare.html"):
        html = (project.path / page).read_text(encoding="utf-8")
        gate, toolbar = html.index('<section class="gate"'), html.index('<nav class="toolbar"')
        assert gate < toolbar and "Release gate: <span class=\"failed\">FAIL: 2 regression(s)" in html
        row = html[html.index("<td class=\"l\">small::prefers-the-right-answer</td>"):][:600]
        assert "<td>1.00</td><td>0.00</td>" in row and ROW in row and "REGRESSION" in row
        flips = html[html.index("small::filler-does-not-raise-score: 4 case(s) flipped"):]
        start = flips.index('<div class="failure"')
        first = flips[start:flips.index('<div class="failure"', start + 1)]
        assert "<b>base</b> (passed)" in first and "<b>candidate</b> (failed)" in first
        assert first.count("<ins>") >= 2  # the base's perturbed pair and the candidate's minimal one, as word diffs
