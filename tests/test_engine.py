"""The core without pytest: expectations, tolerance units, not-applicable cases, scoring, shrinking."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from rmcheck import Change, Hunk, register_operator
from rmcheck.engine import run_suites
from rmcheck.errors import ScoreError
from rmcheck.counterfactual.ddmin import ddmin, drive
from tests import engine_rms

MARKER = "python:tests.engine_rms:marker"


def suite(tmp_path: Path, tests: str, cases: str | None = None) -> Path:
    cases = cases or """\
          - {id: a, prompt: p1, response: Plain answer one.}
          - {id: b, prompt: p2, response: Plain answer two. UP}
          - {id: c, prompt: p3, chosen: Good UP answer., rejected: Bad answer.}
        """
    path = tmp_path / "t.rmcheck.yaml"
    path.write_text(f"rmcheck: 1\nsuite: t\ncases:\n{textwrap.indent(textwrap.dedent(cases), '  ')}tests:\n"
                    + textwrap.indent(textwrap.dedent(tests), "  "))
    return path


def outcome(tmp_path: Path, tests: str, spec: str = MARKER, **kw):
    report = run_suites([suite(tmp_path, tests, kw.pop("cases", None))], [spec], **kw)
    assert not report.errors, report.errors
    return report.results


@pytest.mark.parametrize(("text", "expect", "tolerance", "passes"), [
    (" UP", "higher", 0, True), (" UP", "higher", 1, False), ("", "higher", 0, False),
    (" DOWN", "lower", 0, True), (" UP", "lower", 0, False),
    (" DOWN", "not_lower", 0, False), (" DOWN", "not_lower", 1, True), (" UP", "not_lower", 0, True),
    (" UP", "not_higher", 0, False), (" UP", "not_higher", 1, True), (" DOWN", "not_higher", 0, True),
    (" UP", "invariant", 0, False), (" UP", "invariant", 1, True), (" DOWN", "invariant", 0.5, False),
    (" UP", "higher", "0.2 bt", True), (" UP", "higher", "0.25 bt", False),  # sigmoid(1) - 0.5 = 0.231
])
def test_expectations_and_tolerances(tmp_path: Path, text: str, expect: str, tolerance, passes: bool) -> None:
    (result,) = outcome(tmp_path, f"- {{name: t, perturb: {{op: append, text: '{text}'}}, expect: {expect}, tolerance: {tolerance!r}}}\n"
                        if text else f"- {{name: t, perturb: {{op: replace, find: 'one', with: 'one'}}, expect: {expect}}}\n")
    if not text:  # an edit that changes nothing is not applicable, never a pass
        assert result.outcome == "not_applicable"
        return
    assert result.counts["not_applicable"] == 0
    assert result.outcome == ("passed" if passes else "failed"), result.to_json()


def test_sd_tolerance_scales_with_the_spread_of_original_scores(tmp_path: Path) -> None:
    # originals score 0, 1, 1, 0 -> sample sd 0.577; appending UP moves each by 1.
    tests = "- {name: t, perturb: {op: append, text: ' UP'}, expect: invariant, tolerance: %s}\n"
    assert outcome(tmp_path, tests % "'1.8 sd'")[0].outcome == "passed"
    assert outcome(tmp_path, tests % "'1.7 sd'")[0].outcome == "failed"
    assert outcome(tmp_path, tests % "'1.8 sd'")[0].threshold == pytest.approx(1.8 * 0.57735, rel=1e-4)


def test_single_checks_run_on_both_sides_of_pair_cases_and_pair_checks_skip_single_cases(tmp_path: Path) -> None:
    single, pair = outcome(tmp_path, """\
        - {name: single, perturb: {op: append, text: ' UP'}, expect: higher}
        - {name: pair, expect: prefers_chosen}
        """)
    assert [c.id for c in single.cases] == ["a", "b", "c/chosen", "c/rejected"]
    assert pair.counts == {"passed": 1, "failed": 0, "not_applicable": 2}
    assert pair.pass_rate == 1.0 and pair.outcome == "passed"


def test_preference_kept_targets_one_side_and_skips_pairs_already_wrong(tmp_path: Path) -> None:
    cases = """\
      - {id: kept, prompt: p, chosen: Good UP., rejected: Bad.}
      - {id: wrong, prompt: q, chosen: Good., rejected: Bad UP.}
    """
    (result,) = outcome(tmp_path, "- {name: t, perturb: {op: append, text: ' UP UP', target: rejected}, expect: preference_kept}\n",
                        cases=cases)
    verdicts = {c.id: c.verdict for c in result.cases}
    assert verdicts == {"kept": "failed", "wrong": "not_applicable"}
    cf = result.failures[0].counterfactual
    assert cf.sides[0].role == "rejected" and cf.sides[1].role == "chosen"
    assert cf.deltas["original"] == 1 and cf.deltas["minimal"] == -1


def test_min_pass_rate_and_not_applicable_cases_are_reported_apart(tmp_path: Path) -> None:
    cases = """\
      - {id: one, prompt: p, response: Only one sentence here.}
      - {id: up, prompt: q, response: First sentence. Second UP sentence.}
      - {id: flat, prompt: r, response: First sentence. Second sentence.}
    """
    tests = "- {name: t, perturb: {op: truncate_sentences, keep: 1}, expect: not_lower, min_pass_rate: %s}\n"
    (strict,) = outcome(tmp_path, tests % 1.0, cases=cases)
    assert strict.counts == {"passed": 1, "failed": 1, "not_applicable": 1}
    assert strict.pass_rate == 0.5 and strict.outcome == "failed"
    assert "does not apply" in next(c for c in strict.cases if c.id == "one").reason
    assert outcome(tmp_path, tests % 0.5, cases=cases)[0].outcome == "passed"


def test_objective_asserts_on_one_head(tmp_path: Path) -> None:
    spec = "python:tests.engine_rms:heads"
    tests = "- {name: t, perturb: {op: append, text: ' maybe'}, expect: invariant, tolerance: 0.5, objective: %s}\n"
    assert outcome(tmp_path, tests % "verbosity", spec)[0].outcome == "passed"
    assert outcome(tmp_path, tests % "honesty", spec)[0].outcome == "failed"
    report = run_suites([suite(tmp_path, tests % "safety")], [spec])
    (request, error), = report.errors
    assert "no objective 'safety'" in str(error) and "honesty, verbosity" in str(error)
    assert str(error).startswith(f"{tmp_path / 't.rmcheck.yaml'}:")


@pytest.mark.parametrize(("spec", "phrase"), [
    ("python:tests.engine_rms:nan", "non-finite score"),
    ("python:tests.engine_rms:short_count", "returned 7 scores for 8 pairs"),
    ("python:tests.engine_rms:missing", "has no callable 'missing'"),
    ("nosuch:thing", "unknown model spec"),
])
def test_bad_models_give_one_clear_error(tmp_path: Path, spec: str, phrase: str) -> None:
    report = run_suites([suite(tmp_path, "- {name: t, perturb: {op: append, text: ' UP'}, expect: higher}\n")], [spec],
                        options=None)
    ((_, error),) = report.errors
    assert phrase in str(error) and "\n" not in str(error)


def test_every_distinct_pair_is_scored_once_across_tests(tmp_path: Path) -> None:
    engine_rms.CALLS.clear()
    results = outcome(tmp_path, """\
        - {name: up, perturb: {op: append, text: ' UP'}, expect: higher}
        - {name: up-again, perturb: {op: append, text: ' UP'}, expect: not_lower}
        - {name: flattery, perturb: add_flattery, expect: invariant}
        - {name: pair, expect: prefers_chosen}
        """)
    assert all(r.outcome != "failed" or r.test == "flattery" for r in results)
    # 4 originals + 4 appended (shared by two tests) + 4 flattered; flattery never fails, so no shrinking.
    assert sum(engine_rms.CALLS) == 12


# -- shrinking -----------------------------------------------------------------------------------

@given(st.integers(2, 10), st.lists(st.floats(-2, 2, allow_nan=False), min_size=10, max_size=10),
       st.floats(0.1, 3))
@settings(max_examples=60, deadline=None)
def test_ddmin_result_is_one_minimal(n: int, weights: list[float], threshold: float) -> None:
    def fails(subset: tuple[int, ...]) -> bool:
        return sum(weights[i] for i in subset) > threshold

    if not fails(tuple(range(n))):
        return
    shrunk = drive(ddmin(n, budget=10_000), fails)
    assert fails(shrunk.keep) and shrunk.one_minimal
    for i in shrunk.keep:
        assert not fails(tuple(j for j in shrunk.keep if j != i))


def test_ddmin_respects_its_budget() -> None:
    calls = []
    shrunk = drive(ddmin(64, budget=7), lambda s: calls.append(s) or (3 in s and 60 in s))
    assert len(calls) <= 7 and not shrunk.one_minimal and {3, 60} <= set(shrunk.keep)


@register_operator("tagged_ups")
def tagged_ups(text: str, ctx, /, *, counts: str) -> Change:
    """Test operator: hunk i inserts ``<i>`` and counts[i] UP markers before word i of ``text``."""
    starts = [m.start() for m in re.finditer(r"\S+", text)]
    ups = [int(c) for c in counts.split(",")]
    return Change(text, tuple(Hunk(starts[i], starts[i], f"<{i}>" + " UP" * c + " ") for i, c in enumerate(ups)))


@given(st.lists(st.integers(0, 3), min_size=1, max_size=8), st.integers(1, 6))
@settings(max_examples=40, deadline=None)
def test_reported_counterfactual_is_one_minimal_and_replayed(tmp_path_factory, ups: list[int], need: int) -> None:
    """End to end: the reported minimal pair fails on replay, and dropping any kept edit makes the case pass."""
    path = tmp_path_factory.mktemp("cf") / "t.rmcheck.yaml"
    counts = ",".join(map(str, ups))
    path.write_text("rmcheck: 1\nsuite: t\ncases:\n  - {id: x, prompt: p, response: 'a b c d e f g h'}\ntests:\n"
                    f"  - {{name: t, perturb: {{op: tagged_ups, counts: '{counts}'}}, expect: not_higher, tolerance: {need - 0.5}}}\n")
    report = run_suites([path], [MARKER])
    (result,) = report.results
    if sum(ups) < need:
        assert result.outcome == "passed"
        return
    (case,) = result.failures
    cf = case.counterfactual
    kept = [int(i) for i in re.findall(r"<(\d+)>", cf.sides[0].minimal)]
    assert cf.status == "minimal" and cf.edits_kept == len(kept) and cf.edits_total == len(ups)
    assert sum(ups[i] for i in kept) >= need  # the minimal pair still violates the expectation
    assert all(sum(ups[j] for j in kept if j != i) < need for i in kept)  # 1-minimal
    assert cf.deltas["minimal"] == sum(ups[i] for i in kept)
    scorer = report.engine.scorer(MARKER)
    shrunk = cf.edits_kept < cf.edits_total  # a minimal pair a shrink round found is replayed; the original is not
    assert scorer.stats.forward_pairs == len(scorer.memo) + shrunk  # each pair once, plus that replay


def test_a_minimal_pair_is_replayed_alone_and_one_that_then_passes_is_flaky(tmp_path: Path) -> None:
    """Shrink rounds score candidates two at a time, where ``batchy`` counts UPs; alone it scores 0. The minimal
    pair (one edit) is the only pair replayed, alone, and passes there: flaky, and the full perturbation is shown."""
    path = tmp_path / "t.rmcheck.yaml"
    path.write_text("rmcheck: 1\nsuite: t\ncases:\n  - {id: x, prompt: p, response: 'a b c d'}\ntests:\n"
                    "  - {name: t, perturb: {op: tagged_ups, counts: '1,1,1,1'}, expect: not_higher, tolerance: 0.5}\n")
    spec = "python:tests.engine_rms:batchy"
    report = run_suites([path], [spec])
    cf = report.results[0].failures[0].counterfactual
    assert cf.status == "flaky" and cf.edits_kept == cf.edits_total == 4 and cf.deltas["minimal"] == 4
    scorer = report.engine.scorer(spec)
    assert scorer.stats.forward_pairs == len(scorer.memo) + 1  # the minimal pair; the original is not replayed


def test_word_diff_marks_edits_and_makes_white_space_visible() -> None:
    from rmcheck.report.text import word_diff

    assert word_diff("Canberra is big.", "Canberra is very big.") == "Canberra is {+very +}big."
    assert word_diff("eight 8,849 metres", "eight 9,001 metres") == "eight [-8,849-]{+9,001+} metres"
    assert word_diff("a  b", "a\nb") == "a[-··-]{+⏎+}b"
