"""The built-in suite library catches planted flaws, and passes a clean reward model.

Every model in ``tests/planted_rms.py`` is the clean content oracle plus exactly one
flaw term. Running every built-in suite (``suites/*.rmcheck.yaml``) against it must
fail the test written to catch that flaw:

| model (``python:tests.planted_rms:NAME``) | planted flaw                       | suite         | failing test                    |
| ----------------------------------------- | ---------------------------------- | ------------- | ------------------------------- |
| ``length_loving``                         | + score per word                   | verbosity     | filler-does-not-raise-score     |
| ``flattery_loving``                       | bonus for praising the user        | sycophancy    | flattery-does-not-raise-score   |
| ``bullet_loving``                         | bonus per markdown bullet          | formatting    | bullets-do-not-move-score       |
| ``name_biased``                           | bonus depends on the first name    | identity      | name-swap-does-not-move-score   |
| ``whitespace_sensitive``                  | penalty per run of spaces/newlines | surface-noise | whitespace-noise-is-ignored     |
| ``hedge_punishing``                       | penalty per hedging phrase         | calibration   | hedging-is-not-punished         |
| ``number_blind``                          | numbers ignored                    | factuality    | wrong-numbers-lower-score       |
| ``certainty_loving``                      | bonus for "100% sure", "definitely"| calibration   | false-certainty-does-not-pay    |
| ``refusal_blind``                         | needless refusals cost nothing     | refusal       | needless-refusal-lowers-score   |
| ``refusal_averse``                        | penalty for every refusal          | safety        | safe-refusal-preferred          |
| ``typo_sensitive``                        | penalty per misspelled word        | surface-noise | typos-are-ignored               |
| ``prompt_blind``                          | the prompt is ignored              | prompt-sensitivity | mismatched-prompt-lowers-score, missing-prompt-lowers-score |
| ``master_key_loving``                     | a bare opener scores as a perfect answer | master-keys | master-keys-score-lower, punctuation-keys-score-lower |
| ``format_brittle``                        | bonus per ``\\boxed{}``            | answer-format | boxed-to-header-keeps-score     |

A flaw may also break a few other tests, where any RM with that flaw would
(``COLLATERAL`` lists them: a length-loving RM also likes the words flattery and
false certainty add). No flawed model fails a test outside its row and those.

``clean`` passes every test of every built-in suite. Not applicable is allowed
only for single-response cases in the pair tests (``prefers_chosen``,
``preference_kept``), which compare a chosen with a rejected response, and in the
answer-format suite, whose math cases have no code and code cases no final answer:
every other single-response test applies to every case of its suite, and no test as a
whole is not applicable.

The suites from the 2025 literature (prompt-sensitivity, master-keys, answer-format)
must catch their flaw with 1-minimal pairs: every failing case's counterfactual is
replayed and proven 1-minimal.

The suites run once per model (``report_for`` is cached for the whole session).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from rmcheck.engine import RunReport, run_suites
from rmcheck.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent
SUITES_DIR = ROOT / "suites"
#: Suites for process (step-level) models: these scalar RMs give no step scores, so their tests do not apply here;
#: tests/test_process.py proves them against planted process models.
PROCESS_SUITES = ("process-steps.rmcheck.yaml",)
#: Suites for generative judges (presentation tests): tests/test_judges.py proves them against planted judges.
JUDGE_SUITES = ("judge-consistency.rmcheck.yaml",)
SUITE_FILES = sorted(p for p in SUITES_DIR.glob("*.rmcheck.yaml") if p.name not in PROCESS_SUITES + JUDGE_SUITES)

#: model -> (suite, test) that its planted flaw must fail.
FLAWS: dict[str, tuple[str, str]] = {
    "length_loving": ("verbosity", "filler-does-not-raise-score"),
    "flattery_loving": ("sycophancy", "flattery-does-not-raise-score"),
    "bullet_loving": ("formatting", "bullets-do-not-move-score"),
    "name_biased": ("identity", "name-swap-does-not-move-score"),
    "whitespace_sensitive": ("surface-noise", "whitespace-noise-is-ignored"),
    "hedge_punishing": ("calibration", "hedging-is-not-punished"),
    "number_blind": ("factuality", "wrong-numbers-lower-score"),
    "certainty_loving": ("calibration", "false-certainty-does-not-pay"),
    "refusal_blind": ("refusal", "needless-refusal-lowers-score"),
    "refusal_averse": ("safety", "safe-refusal-preferred"),
    "typo_sensitive": ("surface-noise", "typos-are-ignored"),
    "prompt_blind": ("prompt-sensitivity", "mismatched-prompt-lowers-score"),
    "master_key_loving": ("master-keys", "master-keys-score-lower"),
    "format_brittle": ("answer-format", "boxed-to-header-keeps-score"),
}
LITERATURE = {"prompt-sensitivity", "master-keys", "answer-format"}
#: Tests whose operator applies to part of the suite only (the rest is not applicable), with how many cases it
#: must still apply to.
PARTIAL: dict[tuple[str, str], int] = {("answer-format", "boxed-to-header-keeps-score"): 12,
                                       ("answer-format", "code-rewrites-keep-score"): 10}

#: Other tests a flaw legitimately breaks too (any RM with that flaw would).
COLLATERAL: dict[str, set[tuple[str, str]]] = {
    "length_loving": {("sycophancy", "flattery-does-not-raise-score"),
                      ("calibration", "false-certainty-does-not-pay")},
    "flattery_loving": {("sycophancy", "preference-survives-flattery-on-rejected")},
    "bullet_loving": {("formatting", "preference-survives-markdown-on-rejected"),
                      ("safety", "preference-survives-markdown-on-rejected")},
    "number_blind": {("factuality", "correct-figure-preferred")},
    "prompt_blind": {("prompt-sensitivity", "missing-prompt-lowers-score")},
    "master_key_loving": {("master-keys", "punctuation-keys-score-lower")},
}


def spec(name: str) -> str:
    return f"python:tests.planted_rms:{name}"


@lru_cache(maxsize=None)
def report_for(name: str) -> RunReport:
    """Every built-in suite against one planted model, run once per session."""
    return run_suites(paths=[str(p) for p in SUITE_FILES], specs=[spec(name)])


def outcomes(name: str) -> dict[tuple[str, str], str]:
    return {(r.suite, r.test): r.outcome for r in report_for(name).results}


def _suite_tests() -> list[tuple[str, str]]:
    return [(yaml.safe_load(p.read_text(encoding="utf-8"))["suite"], t["name"])
            for p in SUITE_FILES for t in yaml.safe_load(p.read_text(encoding="utf-8"))["tests"]]


SUITE_TESTS = _suite_tests()


def test_the_library_is_there() -> None:
    names = {suite for suite, _ in SUITE_TESTS}
    assert {"verbosity", "formatting", "sycophancy", "calibration", "factuality", "refusal", "safety",
            "identity", "surface-noise"} | LITERATURE <= names
    for model, target in FLAWS.items():
        assert target in SUITE_TESTS, f"{model}: no test {target} in the built-in suites"


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: p.name)
def test_builtin_suite_is_substantial(path: Path) -> None:
    """rmcheck: 1, a name, a description, at least 20 written cases and 1 to 3 tests."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert doc["rmcheck"] == 1
    assert doc["suite"] and doc["description"].strip()
    assert len(doc["cases"]) >= 20
    assert 1 <= len(doc["tests"]) <= 3
    load_suite(path)  # and it validates


def test_clean_runs_without_errors() -> None:
    report = report_for("clean")
    assert not report.errors, [str(e) for _, e in report.errors]
    assert sorted((r.suite, r.test) for r in report.results) == sorted(SUITE_TESTS)


@pytest.mark.parametrize("suite,test", SUITE_TESTS, ids=[f"{s}/{t}" for s, t in SUITE_TESTS])
def test_clean_passes(suite: str, test: str) -> None:
    (result,) = [r for r in report_for("clean").results if (r.suite, r.test) == (suite, test)]
    failing = [(c.id, c.delta) for c in result.failures]
    assert result.outcome == "passed", f"clean fails {suite}/{test}: {failing[:5]}"
    assert result.counts["failed"] == 0, failing
    # Not applicable only where a pair test meets a single-response case.
    singles = {c.id for c in load_suite(result.suite_file).cases if not c.is_pair}
    not_applicable = [c.id for c in result.cases if c.verdict == "not_applicable"]
    if result.expect in ("prefers_chosen", "preference_kept"):
        assert set(not_applicable) <= singles, set(not_applicable) - singles
    elif (suite, test) in PARTIAL:
        applied = {c.id.split("~")[0] for c in result.cases if c.verdict != "not_applicable"}
        assert len(applied) >= PARTIAL[(suite, test)], applied
    else:
        assert not not_applicable, not_applicable


@pytest.mark.parametrize("model", sorted(FLAWS))
def test_flaw_fails_its_test(model: str) -> None:
    report = report_for(model)
    assert not report.errors, [str(e) for _, e in report.errors]
    suite, test = FLAWS[model]
    (result,) = [r for r in report.results if (r.suite, r.test) == (suite, test)]
    assert result.outcome == "failed", f"{model} was not caught by {suite}/{test}: {result.counts}"
    failures = result.failures
    assert failures and all(c.counterfactual is not None for c in failures)
    # Each failure comes with a counterfactual that replayed (not flaky) and keeps at
    # most the edits the operator made.
    for case in failures:
        assert case.counterfactual.status != "flaky", case.id
        assert case.counterfactual.edits_kept <= case.counterfactual.edits_total
        if suite in LITERATURE:
            assert case.counterfactual.status == "minimal", (case.id, case.counterfactual.status)


@pytest.mark.parametrize("model", sorted(FLAWS))
def test_flaw_breaks_nothing_unexpected(model: str) -> None:
    failed = {key for key, outcome in outcomes(model).items() if outcome == "failed"}
    allowed = {FLAWS[model]} | COLLATERAL.get(model, set())
    assert failed <= allowed, f"{model} also fails {sorted(failed - allowed)}"


def test_every_flaw_is_a_different_model() -> None:
    """The planted models really differ from clean (a flaw term that never fires is no flaw)."""
    clean = outcomes("clean")
    for model in FLAWS:
        assert outcomes(model) != clean, model


def test_identity_swaps_the_name_in_the_question_too(tmp_path: Path) -> None:
    """``clean`` reads the question, so an answer about someone else costs reward: the name swapped in the
    response alone (``target: response``, what the suite did before) fails every case; the suite passes it."""
    suite = (SUITES_DIR / "identity.rmcheck.yaml").read_text(encoding="utf-8")
    narrowed = suite.replace("{op: swap_lexicon, lexicon: name}", "{op: swap_lexicon, lexicon: name, target: response}")
    assert narrowed != suite
    (tmp_path / "identity.rmcheck.yaml").write_text(narrowed, encoding="utf-8")
    (result,) = run_suites([str(tmp_path / "identity.rmcheck.yaml")], [spec("clean")]).results
    assert result.pass_rate == 0.0
    assert outcomes("clean")[FLAWS["name_biased"]] == "passed"


def test_name_bias_is_shown_with_the_name_swapped_in_the_question_too() -> None:
    """The minimal pair of a name-biased RM swaps the name in the prompt and the response as one edit, so it
    shows the bias, not an answer about someone else."""
    (result,) = [r for r in report_for("name_biased").results if (r.suite, r.test) == FLAWS["name_biased"]]
    assert result.failures
    for case in result.failures:
        cf = case.counterfactual
        sides = {side.role: side for side in cf.sides}
        assert (cf.edits_kept, cf.edits_total) == (1, 1), case.id
        assert sides["prompt"].minimal != sides["prompt"].original
        assert sides["response"].minimal != sides["response"].original
