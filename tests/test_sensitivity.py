"""Global sensitivity per model and attribute, from run documents (hand-made and from real runs)."""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest

from rmcheck.results import load_run_document
from rmcheck.report.sensitivity import bootstrap_ci, probes, sensitivities
from tests.rundocs import write_run


def case(id: str, verdict: str = "passed", **scores: tuple[float, ...]) -> dict[str, Any]:
    """A judged case; each role's scores are (original,) or (original, perturbed)."""
    return {"id": id, "verdict": verdict, "delta": 0.0,
            "response_scores": {role: dict(zip(("original", "perturbed"), s)) for role, s in scores.items()}}


def result(model: str, cases: list[dict[str, Any]], *, attribute: str = "verbosity", perturb: str | None = "pad",
           test: str = "t", objective: str | None = None) -> dict[str, Any]:
    doc = {"suite": "s", "test": test, "model": model, "attribute": attribute, "objective": objective, "cases": cases}
    return {**doc, "perturb": perturb} if perturb else doc


def doc(*results: dict[str, Any]) -> dict[str, Any]:
    return {"rmcheck_run": 1, "models": [], "results": list(results)}


def test_deltas_and_flips_of_pair_and_single_cases() -> None:
    found = probes([("run.json", doc(result("m", [
        case("a", response=(1.0, 3.0)),                          # single response: no preference to flip
        case("p/chosen", chosen=(2.0, 0.5), rejected=(1.0,)),    # chosen drops below rejected: a counterfactual
        case("p/rejected", chosen=(2.0,), rejected=(1.0, 1.5)),  # half the margin closed, kept: a semifactual
        case("q", chosen=(2.0, 1.0), rejected=(1.0, 0.0)),       # both sides perturbed, margin unchanged: small
        {"id": "n", "verdict": "not_applicable", "delta": None},
    ])))])
    assert [(p.case["id"], p.deltas, p.flipped, p.outcome) for p in found] == [
        ("a", (2.0,), None, None), ("p/chosen", (-1.5,), True, "counterfactual"),
        ("p/rejected", (0.5,), False, "semifactual"), ("q", (-1.0, -1.0), False, "small")]
    (s,) = sensitivities([("run.json", doc(result("m", [p.case for p in found])))])
    assert s.deltas == [2.0, -1.5, 0.5, -1.0, -1.0]
    assert s.mean == pytest.approx(-0.2) and s.median == -1.0
    assert (len(s.pairs), s.counterfactuals, s.semifactuals, s.ties, s.count("small")) == (3, 1, 1, 0, 1)
    (strict,) = sensitivities([("run.json", doc(result("m", [p.case for p in found])))], semifactual_margin=0.6)
    assert (strict.semifactuals, strict.count("small")) == (0, 2)


def test_a_tie_after_perturbation_is_neither_flip_nor_semifactual_whichever_side_was_ahead() -> None:
    cases = [case("chosen-ahead", chosen=(2.0, 1.0), rejected=(1.0,)),
             case("rejected-ahead", chosen=(1.0, 2.0), rejected=(2.0,))]
    found = probes([("run.json", doc(result("m", cases)))])
    assert [p.outcome for p in found] == ["tie", "tie"] and [p.flipped for p in found] == [False, False]
    (s,) = sensitivities([("run.json", doc(result("m", cases)))])
    assert (s.counterfactuals, s.semifactuals, s.ties) == (0, 0, 2)


def test_groups_by_model_attribute_operator_and_objective() -> None:
    found = sensitivities([("a.json", doc(
        result("m1", [case("x", response=(0.0, 1.0))], perturb="pad", test="up"),
        result("m1", [case("x", response=(0.0, -1.0))], perturb="truncate", test="down"),
        result("m1", [case("x", response=(0.0, 5.0))], attribute="tone", test="t1"),
        result("m1", [case("x", response=(0.0, 7.0))], attribute="tone", test="t2", objective="safety"),
    )), ("b.json", doc(result("m1", [case("x", response=(0.0, 2.0))], perturb="pad", test="up")))])
    labels = {(s.model, s.attribute): s.mean for s in found}
    assert labels == {("m1 [a.json]", "verbosity: pad"): 1.0, ("m1 [a.json]", "verbosity: truncate"): -1.0,
                      ("m1 [a.json]", "tone"): 5.0, ("m1 [a.json]", "tone [safety]"): 7.0,
                      ("m1 [b.json]", "verbosity: pad"): 2.0}


def test_scale_is_the_sd_of_distinct_original_scores() -> None:
    originals = [1.0, 2.0, 4.0]
    cases = [case(f"c{i}", response=(o, o + 1)) for i, o in enumerate(originals)]
    (s,) = sensitivities([("r.json", doc(result("m", cases), result("m", cases, test="again")))])
    assert s.scale == pytest.approx(statistics.stdev(originals))  # each original counted once
    assert s.standardized_mean == pytest.approx(1 / statistics.stdev(originals))


def test_bootstrap_ci_is_seeded_and_about_the_normal_interval() -> None:
    values = [float(i) for i in range(100)]
    low, high = bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) == (low, high)
    assert bootstrap_ci(values, seed=4) != (low, high)
    se = statistics.stdev(values) / 10
    assert low < statistics.fmean(values) < high
    assert (high - low) / 2 == pytest.approx(1.96 * se, rel=0.15)
    assert bootstrap_ci([2.5] * 7) == (2.5, 2.5) and bootstrap_ci([1.0]) == (1.0, 1.0)


def test_representative_cases_are_closest_to_the_median_plus_a_counterfactual() -> None:
    cases = [case(f"c{i}", response=(0.0, d)) for i, d in enumerate([0.0, 1.0, 1.1, 5.0, 9.0])]
    cases.append(case("flip", chosen=(1.0, -20.0), rejected=(0.0,)))
    (s,) = sensitivities([("r.json", doc(result("m", cases)))])
    assert s.median == 1.05
    assert [p.case["id"] for p in s.representative()] == ["c1", "c2", "flip"]


def test_sensitivity_of_real_runs_finds_the_length_bias(tmp_path: Path) -> None:
    run = write_run(tmp_path, ["lengthy", "fair"], "run.json")
    found = {(s.model.split(":")[-1], s.attribute): s for s in sensitivities([(str(run), load_run_document(run))])}
    lengthy, fair = found[("lengthy", "verbosity")], found[("fair", "verbosity")]
    assert len(lengthy.deltas) == 4 and all(d > 0 for d in lengthy.deltas)  # 2 responses, chosen, rejected
    assert fair.deltas == [0.0] * 4 and fair.counterfactuals == 0 and fair.count("small") == 2
    # padding the short chosen answer makes it win (a counterfactual); padding rejected widens its lead
    assert (lengthy.counterfactuals, lengthy.semifactuals, lengthy.count("small")) == (1, 0, 1)
    assert [p.case["id"] for p in lengthy.probes if p.flipped] == ["close-call/chosen"]
    assert lengthy.pass_rate == 0.0 and fair.pass_rate == 1.0
    assert ("lengthy", "factuality") not in found  # prefers_chosen perturbs nothing
