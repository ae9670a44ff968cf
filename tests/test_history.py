"""``rmcheck history``: each test's pass rate across run documents, in the order they were created."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rmcheck.cli import main
from rmcheck.results import run_document


def _run(folder: Path, name: str, created: str, model: str, rates: dict[str, float | None]) -> Path:
    results = []
    for test, rate in rates.items():
        cases = [] if rate is None else [{"id": "c", "verdict": "passed" if rate else "failed", "delta": 0.0}]
        results.append({"suite": "s", "suite_file": "s.rmcheck.yaml", "line": 1, "test": test, "model": model,
                        "outcome": "not_applicable" if rate is None else "passed" if rate else "failed",
                        "pass_rate": rate, "cases": cases})
    doc = run_document(results, [{"spec": model}])
    doc["created"] = created
    path = folder / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_history_orders_runs_by_creation_and_marks_the_last_change(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    _run(runs, "a.json", "2026-03-01T00:00:00+00:00", "hf:org/rm@v2", {"$x$ costs {money}": 0.0, "steady": 1.0})
    _run(runs, "b.json", "2026-01-01T00:00:00+00:00", "hf:org/rm@v1", {"$x$ costs {money}": 1.0, "steady": 1.0})
    _run(runs, "c.json", "2026-02-01T00:00:00+00:00", "hf:org/rm@v1", {"$x$ costs {money}": 1.0, "steady": None})
    (runs / "notes.txt").write_text("not a run")
    plot = tmp_path / "history.png"
    assert main(["history", str(runs), "--plot", str(plot)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in lines[:3]] == [str(runs / n) for n in ("b.json", "c.json", "a.json")]
    assert lines[2].endswith("hf:org/rm@v2")
    assert lines[4].split() == ["test", "#1", "#2", "#3", "last", "change"]
    assert lines[5].split() == ["s::$x$", "costs", "{money}", "1.00", "1.00", "0.00", "-1.00", "(#2", "->", "#3)"]
    assert lines[6].split() == ["s::steady", "1.00", "—", "1.00"]
    if pytest.importorskip("matplotlib"):  # the $...$ label drew as plain text, not mathtext
        assert plot.read_bytes().startswith(b"\x89PNG") and lines[-1] == f"plot: {plot}"


def test_history_of_no_run_documents_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("no run documents. Name run documents (--json / --rmcheck-json files) or a folder that "
                        "holds them") and "\n" not in err
