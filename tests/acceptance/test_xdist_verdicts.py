"""``pytest -n 2`` on torch-backed models gives the verdicts ``-n 0`` gives: the demo, a tiny ``hf:`` Llama and the
real SmolLM2-135M-Instruct, each through the command line a user types.

Every torch model once ended ``-n 2`` in an execnet INTERNALERROR (``torch.__version__`` in the provenance), with no
test run and no run document; python: stand-ins never showed it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.acceptance.conftest import ROOT, shell

SUITE = "sycophancy"  # single responses, a pair test and a preference test under a perturbation


def verdicts(document: dict) -> dict[str, tuple]:
    return {f"{r['suite']}::{r['test']}": (r["status"], round(r["pass_rate"], 6), r["counts"]["failed"])
            for r in document["results"]}


def run(workdir: Path, spec: str, workers: str, env: dict[str, str]) -> dict:
    out = f"run-{workers}.json"
    done = shell(f'pytest -p no:cacheprovider -n {workers} suites/ --rm "{spec}" --rmcheck-no-cache '
                 f"--rmcheck-json {out}", workdir, env)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
    assert "INTERNALERROR" not in done.stdout + done.stderr
    return json.loads((workdir / out).read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["demo", "tiny_llama", "smollm2"])
def test_two_workers_give_the_verdicts_of_one(model: str, request: pytest.FixtureRequest, tmp_path: Path,
                                              installed_env: dict[str, str]) -> None:
    spec = "demo" if model == "demo" else f"hf:{request.getfixturevalue(model)}"
    (tmp_path / "suites").mkdir()
    shutil.copy(ROOT / "suites" / f"{SUITE}.rmcheck.yaml", tmp_path / "suites")
    serial, parallel = run(tmp_path, spec, "0", installed_env), run(tmp_path, spec, "2", installed_env)
    assert verdicts(parallel) == verdicts(serial) and len(verdicts(serial)) == 3
    assert parallel["models"][0]["provenance"]["torch"] == serial["models"][0]["provenance"]["torch"]
