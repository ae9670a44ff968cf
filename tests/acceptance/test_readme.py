"""The README's front door, as a newcomer walks through it: the quick start, typed as written, gives the findings
the README shows; the test command is the one CI runs."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scripts import findings
from tests.acceptance.conftest import ROOT, fresh_checkout, shell

README = ROOT / "README.md"


def bash_blocks(text: str) -> list[tuple[str, str]]:
    """Each ```bash block of a Markdown text with the heading it stands under."""
    blocks, heading = [], ""
    for part in re.split(r"(^#+ [^\n]*$|^```bash\n.*?^```$)", text, flags=re.M | re.S):
        if part.startswith("#"):
            heading = part.lstrip("#").strip()
        elif part.startswith("```bash"):
            blocks.append((heading, part.removeprefix("```bash\n").removesuffix("```").strip()))
    return blocks


def command_under(heading: str, nth: int = 0) -> str:
    """The ``nth`` bash block under ``heading``: what a reader copies from there."""
    found = [block for under, block in bash_blocks(README.read_text(encoding="utf-8")) if under == heading]
    assert len(found) > nth, f"README.md has no bash block {nth} under '## {heading}'"
    return found[nth]


@pytest.mark.slow
def test_quick_start_as_written_gives_the_readme_findings(tmp_path: Path, user_env: dict[str, str]) -> None:
    """The quick start installs rmcheck and runs the main job; what it prints is what the README says it finds."""
    command = command_under("Quick start")
    checkout = fresh_checkout(tmp_path / "rmcheck")
    done = shell(command, checkout, user_env, timeout=1200)
    assert done.returncode in (0, 1), f"`{command}` exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert "JSON run document: .rmcheck/last-run.json" in done.stdout
    document = json.loads((checkout / ".rmcheck" / "last-run.json").read_text(encoding="utf-8"))
    committed = json.loads(findings.FACTS.read_text(encoding="utf-8"))
    found = findings.verdicts(done.stdout, document)
    assert findings.differences(committed, {**committed, **found}) == []
    assert done.returncode == (1 if document["summary"]["failed"] else 0)


def test_readme_findings_are_the_committed_run() -> None:
    """The README's findings section is exactly what the committed run renders (python scripts/findings.py)."""
    assert findings.main(["--check"]) == 0


def test_judge_findings_are_a_fresh_replay_of_the_cassettes(tmp_path: Path) -> None:
    """The README's real-judge findings are what a fresh run of the built-in judge suite gives against SmolLM2,
    replayed from the committed cassettes alone (--llm replay: a missing answer is an error, nothing is called)."""
    committed = json.loads(findings.JUDGE_FACTS.read_text(encoding="utf-8"))
    found = findings.run_judge_job(tmp_path)
    assert findings.judge_differences(committed, found) == []
    assert found["recorded_answers"] > 0 and found["results"]


def extras(command: str) -> set[str]:
    """The extras of the first ``pip install -e ".[A,B]"`` in a shell text."""
    match = re.search(r'install (?:-q )?-e "\.\[([\w,]+)\]"', command)
    assert match, f"no editable install with extras in {command!r}"
    return set(match.group(1).split(","))


def test_test_command_is_the_one_ci_runs() -> None:
    """The README's test command is what .ci/run runs on a clean checkout (there as python -m pytest -q, after
    installing at least the README's extras)."""
    install, _, run = command_under("Quick start", 1).partition(" && ")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert extras(install) <= extras(ci)
    assert run.replace("pytest", "python -m pytest -q", 1) in ci
