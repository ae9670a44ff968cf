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
    assert [alt for alt, _ in images] == ["heat map of mean standardized delta per model and attribute",
                                         "score delta distributions per attribute"]
    assert all(base64.b64decode(data).startswith(PNG) for _, data in images)
    assert page.count("<img") == 2


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
    for heading in ("Runs and models", "Sensitivity by model and attribute", "Distributions of score deltas",
                    "Representative examples"):
        assert f"<h2>{heading}</h2>" in page


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
