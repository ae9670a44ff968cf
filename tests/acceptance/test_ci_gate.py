"""``docs/ci-gate.yml`` run as GitHub Actions would run its job, step by step, from the file itself.

Each ``run:`` step is executed literally by bash in a fresh repository holding a copy of built-in suites, with the
workflow's ``env`` and the models set to ones made here: the job passes when the candidate is the released model
itself, and fails at the gate when the candidate is the released model with its score head negated (every
preference reversed). Steps that ``uses:`` an action stand for the runner's setup (checkout, Python, caches,
uploads) and are left out, as are the steps that install rmcheck (this environment has it).
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.acceptance.conftest import ROOT, shell

WORKFLOW = ROOT / "docs" / "ci-gate.yml"
SUITES = ("sycophancy", "factuality")  # the copy of built-in suites the gated repository starts from
ACTIONS = {"actions/checkout", "actions/setup-python", "actions/cache", "actions/upload-artifact"}


@dataclass
class Step:
    name: str
    ran: bool
    returncode: int | None = None
    output: str = ""


def steps_of(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    (job,) = workflow["jobs"].values()
    return list(job["steps"])


def expand(text: str, env: dict[str, str]) -> str:
    """``${{ env.NAME }}`` replaced as Actions does; any other expression is beyond this runner."""
    def value(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        assert expression.startswith("env."), f"docs/ci-gate.yml: expression ${{{{ {expression} }}}} is not run here"
        return env[expression.removeprefix("env.")]
    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def run_job(workdir: Path, models: dict[str, str], extra_env: dict[str, str]) -> list[Step]:
    """The workflow's job in ``workdir``: ``run:`` steps in order, each after a failure only with ``if: always()``."""
    workflow = YAML(typ="safe").load(WORKFLOW.read_text(encoding="utf-8"))
    env = {**{k: str(v) for k, v in workflow.get("env", {}).items()}, **models}
    done: list[Step] = []
    failed = False
    for step in steps_of(workflow):
        name = step.get("name") or step.get("uses", "")
        if "uses" in step:
            assert step["uses"].split("@")[0] in ACTIONS, f"docs/ci-gate.yml: unknown action {step['uses']}"
            continue
        if name.startswith("Install"):
            done.append(Step(name, ran=False))
            continue
        condition = str(step.get("if", "success()")).strip()
        assert condition in ("success()", "always()"), f"docs/ci-gate.yml: condition {condition!r} is not run here"
        if failed and condition != "always()":
            done.append(Step(name, ran=False))
            continue
        options = "-eo pipefail" if step.get("shell") == "bash" else "-e"
        result = shell(expand(step["run"], env), workdir, {**extra_env, **env, **{k: str(v) for k, v in
                                                                                    step.get("env", {}).items()}},
                       shell_options=options)
        done.append(Step(name, True, result.returncode, result.stdout + result.stderr))
        failed = failed or result.returncode != 0
    return done


def gated_repository(path: Path) -> Path:
    """A repository whose suites are a copy of some of rmcheck's built-in suites, as the workflow's notes advise."""
    (path / "suites").mkdir(parents=True)
    for name in SUITES:
        shutil.copy(ROOT / "suites" / f"{name}.rmcheck.yaml", path / "suites")
    return path


@pytest.fixture(scope="module")
def negated(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with its score head negated: every score, and so every preference, reversed."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("negated")
    model = AutoModelForSequenceClassification.from_pretrained(tiny_llama)
    with torch.no_grad():
        model.score.weight.neg_()
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(out)
    return out


def _report(steps: list[Step]) -> str:
    return "\n".join(f"--- {s.name}: {'exit ' + str(s.returncode) if s.ran else 'not run'}\n{s.output[-1500:]}"
                     for s in steps)


@pytest.mark.slow
def test_the_gate_passes_a_candidate_equal_to_the_released_model(tmp_path: Path, tiny_llama: Path,
                                                                  installed_env: dict[str, str]) -> None:
    spec = f"hf:{tiny_llama}"
    steps = run_job(gated_repository(tmp_path), {"BASE_RM": spec, "CANDIDATE_RM": spec}, installed_env)
    assert [s.name for s in steps if not s.ran] == [s.name for s in steps if s.name.startswith("Install")]
    assert all(s.returncode == 0 for s in steps if s.ran), _report(steps)
    assert (tmp_path / "runs" / "candidate.json").is_file()


@pytest.mark.slow
def test_the_gate_fails_a_candidate_that_reverses_every_preference(tmp_path: Path, tiny_llama: Path, negated: Path,
                                                                   installed_env: dict[str, str]) -> None:
    steps = run_job(gated_repository(tmp_path), {"BASE_RM": f"hf:{tiny_llama}", "CANDIDATE_RM": f"hf:{negated}"},
                    installed_env)
    failed = [s for s in steps if s.ran and s.returncode != 0]
    assert failed and "Gate" in failed[0].name, _report(steps)
    assert "regress" in failed[0].output
