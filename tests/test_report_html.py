"""``rmcheck report``: one self-contained HTML page with plots, tables and representative minimal pairs."""
from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from rmcheck.cli import main  # noqa: E402
from rmcheck.errors import RmcheckError  # noqa: E402
from rmcheck.report.html import build_report, diff_html, pair_html  # noqa: E402
from tests.rundocs import write_run  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    return [write_run(root / "a", ["fair"], "base.json"), write_run(root / "b", ["lengthy", "flattered"], "cand.json")]


def test_report_is_one_self_contained_page(runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nested" / "report.html"
    assert main(["report", *map(str, runs), "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page) and "<link" not in page
    assert "<script src" not in page and "@import" not in page
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    assert [alt for alt, _ in images] == ["score delta distributions per attribute"]
    assert all(base64.b64decode(data).startswith(PNG) for _, data in images)
    assert page.count("<img") == 1  # the heat map is an HTML table whose cells link to failures


def test_page_numbers_and_examples(runs: list[Path]) -> None:
    page = build_report(runs)
    data = json.loads(re.search(r'id="rmcheck-sensitivity">\n(.*?)\n</script>', page, re.S).group(1))
    cells = {(d["model"].split(":")[-1], d["attribute"]): d for d in data}
    assert set(cells) == {(m, a) for m in ("fair", "lengthy", "flattered") for a in ("verbosity", "sycophancy")}
    assert cells[("lengthy", "verbosity")]["mean"] > 0 and cells[("fair", "verbosity")]["mean"] == 0
    assert cells[("lengthy", "verbosity")]["counterfactuals"] == 1
    assert cells[("flattered", "sycophancy")]["standardized_mean"] > 0 and cells[("flattered", "sycophancy")]["pass_rate"] == 0
    # the examples show minimal pairs as word diffs, with the cases' text escaped
    assert "<ins>" in page and "preference flipped (counterfactual)" in page
    assert "&lt;b&gt;Melbourne&lt;/b&gt;" in page and "<b>Melbourne</b>" not in page
    assert "Δ on this case by model: python:doc_rms:fair" in page
    for heading in ("Scorecard", "Worst failures first", "Runs and models", "Sensitivity by model and attribute",
                    "Distributions of score deltas", "Representative examples"):
        assert re.search(f"<h2 id=[^>]+>{heading}", page), heading


def test_pair_html_shows_the_minimal_pair_for_a_failing_case() -> None:
    case = {"id": "c", "verdict": "failed", "prompt": [{"role": "user", "content": "Hi <there>"}],
            "role": "response", "original": "A b.", "perturbed": "X A b. Y Z.", "minimal": "A b. Y",
            "scores": {"original": 1.0, "perturbed": 3.0, "minimal": 2.0}, "edits_kept": 1, "edits_total": 3,
            "status": "minimal", "response_scores": {"response": {"original": 1.0, "perturbed": 3.0}}}
    html = pair_html(case)
    assert "user: Hi &lt;there&gt;" in html
    assert "minimal counterfactual of the response (1 of 3 edits, minimal)" in html
    assert "A b.<ins> Y</ins>" in html and "Z" not in html
    assert "score(response): 1 → 3" in html and "at the minimal pair: 2" in html
    assert diff_html("a  b", "a b") == "a<del>··</del><ins>·</ins>b"


def test_pair_html_shows_both_texts_of_a_chosen_rejected_failure() -> None:
    case = {"id": "p", "verdict": "failed", "prompt": "Is sugar the cause?", "role": "chosen",
            "original": "Studies found no such effect.", "perturbed": "Studies found no such effect.",
            "minimal": "Studies found no such effect.", "scores": {"original": 0.9, "perturbed": 0.9, "minimal": 0.9},
            "edits_kept": 0, "edits_total": 0, "status": "as_written",
            "response_scores": {"chosen": {"original": 0.9}, "rejected": {"original": 1.7}},
            "other_sides": [{"role": "rejected", "original": "Absolutely, sugar does it.",
                             "perturbed": "Absolutely, sugar does it.", "minimal": "Absolutely, sugar does it.",
                             "scores": {"original": 1.7, "perturbed": 1.7, "minimal": 1.7}}]}
    html = pair_html(case)
    assert "chosen (as written)" in html and "Studies found no such effect." in html
    assert "rejected (as written)" in html and "Absolutely, sugar does it." in html
    edited = {**case, "other_sides": [{**case["other_sides"][0], "minimal": "Great question! Absolutely, sugar does it."}]}
    assert "rejected (edited)" in pair_html(edited) and "<ins>Great question! </ins>" in pair_html(edited)


def test_errors_name_the_file_and_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"rmcheck_run": 1, "results": []}), encoding="utf-8")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}), encoding="utf-8")
    for path, message in [(tmp_path / "missing.json", "cannot read run document"), (bad, "not JSON (line 1"),
                          (other, "not an rmcheck run document"), (empty, "no perturbed cases")]:
        assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 2
        err = capsys.readouterr().err.strip()
        assert str(path) in err and message in err and "\n" not in err
    assert not (tmp_path / "r.html").exists()


def test_without_matplotlib_the_error_names_the_extra(runs: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(RmcheckError, match=r"pip install 'rmcheck\[plots\]'"):
        build_report(runs)


# -- the scorecard, the heat map and the worst failures ---------------------------------------------


def hand_run() -> dict:
    """A run document of two models: an invariance test whose deltas cancel, a directional one, a pair test."""
    def case(id: str, delta: float, verdict: str, **scores: tuple[float, ...]) -> dict:
        return {"id": id, "verdict": verdict, "delta": delta, "original": f"{id} text", "perturbed": f"{id} text!",
                "response_scores": {r: dict(zip(("original", "perturbed"), s)) for r, s in scores.items()}}

    def result(model: str, test: str, expect: str, attribute: str, cases: list, perturb: str | None = "op") -> dict:
        counts = {v: sum(c["verdict"] == v for c in cases) for v in ("passed", "failed", "not_applicable")}
        rate = counts["passed"] / (counts["passed"] + counts["failed"])
        return {"suite": "s", "test": test, "model": model, "attribute": attribute, "expect": expect, "threshold": 0.5,
                "outcome": "passed" if rate == 1 else "failed", "pass_rate": rate, "counts": counts, "cases": cases,
                **({"perturb": perturb} if perturb else {})}

    results = []
    for model, swing in (("hf:org/a-very-long-model-name-that-ends-in-v1", 2.0), ("hf:org/a-very-long-model-name-that-ends-in-v2", 0.1)):
        results += [
            result(model, "names", "invariant", "identity",
                   [case("up", swing, "failed" if swing > 0.5 else "passed", response=(0.0, swing)),
                    case("down", -swing, "failed" if swing > 0.5 else "passed", response=(2.0, 2.0 - swing))]),
            result(model, "padding", "not_higher", "verbosity",
                   [case("pad", swing / 2, "passed", response=(1.0, 1.0 + swing / 2)),
                    case("pad2", 3 * swing, "failed" if swing > 0.5 else "passed", response=(0.0, 3 * swing))]),
            result(model, "pairs", "prefers_chosen", "factuality",
                   [case("p1", 1.0, "passed"), case("p2", -0.2 * swing, "failed"), case("p3", 0.3, "failed")],
                   perturb=None),
        ]
    return {"rmcheck_run": 1, "created": "now", "models": [], "results": results}


def test_scorecard_ranks_models_with_pass_rates_and_accuracy() -> None:
    from rmcheck.report.scorecard import accuracy, scorecard

    card = scorecard([("run.json", hand_run())], {})
    assert [(c.model[-2:], c.rank, c.passed, len(c.applicable)) for c in card.models] == [("v2", 1, 2, 3), ("v1", 2, 0, 3)]
    assert card.models[1].suite_rates() == {"s": pytest.approx(2 / 7)}
    pairs = next(t for t in card.tests if t.test == "pairs")
    assert {m[-2:]: accuracy(r) for m, r in pairs.by_model.items()} == {"v1": pytest.approx(2 / 3), "v2": pytest.approx(2 / 3)}
    assert accuracy({"details": {"accuracy": {"easy": 1.0, "normal": 0.5, "hard": None}}}) == 0.75
    assert accuracy({"details": {"accuracy": {"easy": 1.0}, "overall": 0.625}}) == 0.625  # RM-Bench's figure
    assert accuracy({"details": {"accuracy": 0.4, "subsets": {"a": 0.2, "b": 0.6}}}) == 0.4  # best_of_n
    assert accuracy({"expect": "higher", "cases": []}) is None
    # worst first: v1's padding case 3 * 2.0 = 6 is 5.5 beyond its threshold of 0.5
    worst = card.failures[0]
    assert (worst.model[-2:], worst.test, worst.case["id"], worst.severity) == ("v1", "s::padding", "pad2", 5.5)
    assert [f.severity for f in card.failures] == sorted((f.severity for f in card.failures), reverse=True)


def test_heat_map_uses_absolute_deltas_for_invariance_and_links_cells_to_worst_failures() -> None:
    from rmcheck.report.html import render_report

    page = render_report([("run.json", hand_run())])
    heat = {(model[-2:], attribute): (kind, float(value)) for attribute, model, kind, value in re.findall(
        r'title="([^"·]+) · (\S+): (mean \|Δ\|/sd|mean Δ/sd) ([+-]\d+\.\d+);', page)}
    # identity moved +2 and -2: the signed mean is 0, but the cell shows the mean |Δ| (over the model's sd)
    kind, value = heat[("v1", "identity")]
    assert kind == "mean |Δ|/sd" and value > 0.5
    assert heat[("v2", "identity")][1] < value  # v2 moved 0.1 each way
    assert heat[("v1", "verbosity")][0] == "mean Δ/sd" and heat[("v1", "verbosity")][1] > 0
    assert "|Δ|/sd</b>: invariance tests" in page and "<b>Δ/sd</b>: directional tests" in page
    # every linked cell points at an anchor that exists, and at the worst failure of its model and attribute
    links = re.findall(r'<a href="#(failure-\d+)">', page)
    assert links and all(f'id="{anchor}"' in page for anchor in links)
    first = re.search(r'id="failure-1"[^>]*>.*?</div>', page, re.S).group(0)
    assert "s::padding" in first and "pad2" in first
    # long model names are shortened from the middle: both ends stay
    assert re.search(r'<th data-col="hf:org/a-very-long-model-name-that-ends-in-v1"[^>]*>hf:<wbr>org/<wbr>a-<wbr>ve…t-<wbr>ends-<wbr>in-<wbr>v1</th>', page)


def test_short_names_keep_both_ends() -> None:
    from rmcheck.report.figures import short

    assert short("python:tests.planted_rms:length_loving", 20) == "python:te…gth_loving"
    assert len(short("x" * 100, 21)) == 21 and short("abc", 5) == "abc"


def test_report_has_a_section_for_explain_documents(runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "explain.json"
    assert main(["explain", "--rm", "python:tests.planted_rms:length_loving", "--prompt",
                 "What is the capital of Australia?", "--chosen", "Canberra is the capital.", "--rejected",
                 "Sydney is the capital of Australia, as everybody knows from the opera house and the bridge.",
                 "--json", str(out), "--no-cache"]) == 0
    page = build_report([*runs, out])
    assert '<h2 id="explanations">Contrastive explanations</h2>' in page
    assert "pad_with_filler on chosen" in page and "CF coverage" in page
    only = build_report([out])  # an explain document alone makes a page too
    assert "Contrastive explanations" in only and "Scorecard" not in only
