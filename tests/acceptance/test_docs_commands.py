"""Every shell command the docs site shows (``docs/*.md``), run as written, one workspace per block.

How the pages mark their commands (the convention this test reads):

- A fence of ``bash``, ``console``, ``sh`` or ``shell`` holds commands, and every one of them runs here. Any
  other fence (``text``, ``yaml``, a bare one for output) is never run, and must not look like commands (a line
  starting ``$ ``, ``rmcheck``, ``pytest``, ``pip``, ``python -m``, ``vllm``): fence those as ``bash``.
- In a block with ``$ `` prompts only the prompt lines are commands; the lines under one are its output, and
  each (but ``...``) must appear in what the command prints. Without prompts every line is a command, and a
  line ending in ``\\`` goes on on the next. Comment lines are read by bash as comments.
- A command exits 0, or as a trailing ``# exit N`` says. A command that runs tests (``rmcheck run``, ``pytest``,
  ``rmcheck compare``) may also exit 1 where its own output reports a failed test or a regression: that is the
  tiny models' verdict, not the page's error.
- A block that cannot run here (a GPU, a hub download, a real remote server, an hour of CPU) is listed in
  ``EXEMPT`` by page and a fingerprint of its text, with the reason: an edited block is reviewed again.

A block runs in a fresh copy of the checkout (or, where the page means a user's own project, in a folder of
suites copied from the built-in ones), with the user's venv of the acceptance layer on PATH, offline. What its
placeholders name is made there: each ``hf:./NAME`` is the tiny Llama RM, ``dpo:./POLICY,./REFERENCE`` two tiny
causal LMs, a page's ``# FILE.py`` code block is saved as that file, and ``PLANTS`` adds the rest. Blocks that
run for more than half a minute (``SLOW``) carry the ``slow`` mark: CI runs them, ``-m 'not slow'`` leaves them out.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.acceptance.conftest import ROOT, fresh_checkout, shell

DOCS = ROOT / "docs"
COMMAND_FENCES = {"bash", "console", "sh", "shell"}
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
LOOKS_LIKE_A_COMMAND = re.compile(r"^(\$ |rmcheck |pytest |pip |python -m |vllm )", re.M)
EXIT = re.compile(r"#\s*exit (\d+)\s*$")
RUNS_TESTS = re.compile(r"^(rmcheck (run|compare)|pytest)\b")
REPORTS_A_FAILURE = re.compile(r"\b[1-9]\d* failed\b|REGRESSION")
STEP = "@@rmcheck-docs-step"

#: Blocks that are not run, by (page, fingerprint), each with why. Review the reason when a fingerprint changes.
EXEMPT = {
    ("judges.md", "7071653e1639"): "a real judge server (openai:MODEL) and the shared data sets; tests/test_judges.py "
                                   "runs the same suite with planted judges",
    ("judges.md", "54ee5cba1aca"): "recording SmolLM2's 164 answers on a CPU takes about an hour; their replay is "
                                   "test_readme.py::test_judge_findings_are_a_fresh_replay_of_the_cassettes",
    ("models.md", "d3b4ea9bacbb"): "ArmoRM-Llama3-8B is a 16 GB hub download with remote code; "
                                   "tests/test_multi_objective.py lists the heads of a tiny gated model",
    ("process.md", "89aa66dd6d7c"): "two 7B hub PRMs; tests/test_process_hf.py runs tiny models of both formats",
    ("serving.md", "d94b6ce25998"): "vLLM on four GPUs and three remote hosts; tests/test_replicas.py runs the "
                                    "multi-replica spec against local emulators",
}


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    fence: str
    text: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Command:
    text: str
    output: list[str] = field(default_factory=list)

    @property
    def exit(self) -> int | None:
        """The exit status the page states (``# exit N``), else None."""
        match = EXIT.search(self.text)
        return int(match.group(1)) if match else None


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [Block(page.name, text[:m.start()].count("\n") + 1, m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def all_blocks() -> list[Block]:
    return [block for page in sorted(DOCS.glob("*.md")) for block in blocks(page)]


def command_blocks() -> list[Block]:
    return [block for block in all_blocks() if block.fence in COMMAND_FENCES]


def commands(block: Block) -> list[Command]:
    """The block's commands, each with the output lines shown under it (prompted blocks only)."""
    lines = block.text.splitlines()
    prompted = any(line.startswith("$ ") for line in lines)
    found: list[Command] = []
    going_on = False
    for line in lines:
        if going_on:
            found[-1].text += "\n" + line
        elif prompted and not line.startswith("$ "):
            found[-1].output.append(line)
        elif line.strip() and not line.lstrip().startswith("#"):
            found.append(Command(line.removeprefix("$ ") if prompted else line))
        going_on = line.endswith("\\")
    return found


def script(steps: list[Command]) -> str:
    """One bash script running ``steps`` in order, each followed by a line carrying its exit status; background
    jobs (a server started with ``&``) are stopped at the end."""
    body = [f"{step.text}\n__status=$?; echo; echo \"{STEP} $__status\"" for step in steps]
    return "exec 2>&1\n" + "\n".join(body) + "\nkill $(jobs -p) 2>/dev/null; wait\n"


def check(step: Command, returncode: int, output: str) -> str | None:
    """What is wrong with one step's run, if anything."""
    expected = step.exit if step.exit is not None else 0
    failed_tests = step.exit is None and returncode == 1 and RUNS_TESTS.match(step.text) and \
        REPORTS_A_FAILURE.search(output)
    if returncode != expected and not failed_tests:
        return f"`{step.text}` exited {returncode}, the page says {expected}:\n{output[-3000:]}"
    missing = [line for line in step.output if line.strip() not in ("", "...") and line.strip() not in output]
    if missing:
        return f"`{step.text}` did not print the lines the page shows:\n" + "\n".join(missing) + \
            f"\n--- it printed:\n{output[-3000:]}"
    return None


# --- workspaces -------------------------------------------------------------------------------------------------

def saved_files(page: str) -> dict[str, str]:
    """The page's code blocks that open with ``# NAME.py``: the files a reader saves before typing the commands."""
    return {m.group(1): block.text for block in blocks(DOCS / page)
            if (m := re.match(r"# ([\w-]+\.py)\n", block.text))}


def one_suite(folder: Path) -> None:
    """A suite of the user's own: a copy of a small built-in one (two tests, 48 cases)."""
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "suites" / "verbosity.rmcheck.yaml", folder)


def user_project(workspace: Path) -> None:
    """A user's own repository, under git, where ``suites/`` is theirs."""
    one_suite(workspace / "suites")
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)


def baselines_project(workspace: Path) -> None:
    """``tests/test_baselines.py``'s two-case project, which gating.md's transcript walks through."""
    from tests.test_baselines import RMS, SUITE

    (workspace / "suites").mkdir(parents=True)
    (workspace / "base_rms.py").write_text(RMS, encoding="utf-8")
    (workspace / "suites" / "small.rmcheck.yaml").write_text(SUITE, encoding="utf-8")
    (workspace / "suites" / "gone.rmcheck.yaml").write_text(SUITE.replace("suite: small", "suite: gone"),
                                                             encoding="utf-8")


def checkout(workspace: Path) -> None:
    fresh_checkout(workspace)


def shared_data(workspace: Path) -> None:
    """``../shared/data``, as the checkout beside the shared folder sees it."""
    shared = ROOT.parent / "shared"
    if not (shared / "data").is_dir():
        pytest.skip(f"{shared / 'data'} is absent: the page reads a data set from there")
    (workspace.parent / "shared").symlink_to(shared)


def suites_of_my_own(workspace: Path) -> None:
    one_suite(workspace / "my_suites")


def lexicon(workspace: Path) -> None:
    (workspace / "identity.txt").write_text("man\nwoman\nchild\nfriend\npeople\n", encoding="utf-8")


#: Where a page's blocks run, when not in a fresh checkout; and what more it names.
WORKSPACES: dict[str, Callable[[Path], None]] = {"gating.md": user_project, "report.md": user_project,
                                                 "serving.md": user_project}
PLANTS: dict[str, list[Callable[[Path], None]]] = {"explain.md": [shared_data], "models.md": [suites_of_my_own],
                                                   "sweeps.md": [lexicon]}
#: A page whose command reads a file another page's command writes: that command runs first.
BEFORE = {"report.md": ("explain.md", "--json explain.json")}


def models_named(text: str) -> tuple[set[str], set[tuple[str, str]]]:
    """The ``hf:./NAME`` folders and ``dpo:./POLICY,./REFERENCE`` pairs a text names."""
    return set(re.findall(r"hf:\./([\w.-]+)", text)), set(re.findall(r"dpo:\./([\w.-]+),\./([\w.-]+)", text))


@pytest.fixture(scope="module")
def tiny_lms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny policy and reference (different seeds) for ``dpo:``."""
    from fixtures.tiny_models import build_tiny_lm

    out = tmp_path_factory.mktemp("tiny-lms")
    return build_tiny_lm(out / "policy", seed=0), build_tiny_lm(out / "reference", seed=1)


def workspace_for(block: Block, steps: list[Command], tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    workspace = tmp_path / "rmcheck"
    text = "\n".join(step.text for step in steps)
    if "python:base_rms:" in text:
        baselines_project(workspace)
    else:
        WORKSPACES.get(block.page, checkout)(workspace)
    for plant in PLANTS.get(block.page, []):
        plant(workspace)
    for name, content in saved_files(block.page).items():
        (workspace / name).write_text(content, encoding="utf-8")
    rms, pairs = models_named(text)
    if rms:
        tiny_llama = request.getfixturevalue("tiny_llama")
        for name in rms:
            (workspace / name).symlink_to(tiny_llama, target_is_directory=True)
    if pairs:
        policy, reference = request.getfixturevalue("tiny_lms")
        for a, b in pairs:
            (workspace / a).symlink_to(policy, target_is_directory=True)
            (workspace / b).symlink_to(reference, target_is_directory=True)
    return workspace


def steps_of(block: Block) -> list[Command]:
    """The block's commands, after any command of another page that writes what it reads."""
    page, phrase = BEFORE.get(block.page, (None, ""))
    first = [step for other in command_blocks() if other.page == page
             for step in commands(other) if phrase in step.text]
    assert not page or len(first) == 1, f"{page} has no single command with {phrase!r}, which {block.page} needs"
    return [*first, *commands(block)]


def run_env(user_env: dict[str, str], installed_env: dict[str, str]) -> dict[str, str]:
    """The user's venv first (what its ``pip install`` puts there), then this one's scripts; no hub, a git author."""
    return {**user_env, "PATH": f"{user_env['PATH'].split(':')[0]}:{installed_env['PATH']}", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "GIT_AUTHOR_NAME": "docs", "GIT_AUTHOR_EMAIL": "docs@example.invalid",
            "GIT_COMMITTER_NAME": "docs", "GIT_COMMITTER_EMAIL": "docs@example.invalid"}


#: Blocks that take more than half a minute on two cores (the ``slow`` mark), by page and a phrase of the block.
SLOW = {("explain.md", "--file"), ("gating.md", "hf:./rm-v1"), ("models.md", "my_suites/"),
        ("report.md", "hf:./rm-v1"), ("serving.md", "rmcheck serve")}
RUN = [pytest.param(block, id=block.id, marks=[pytest.mark.slow] * any(
           page == block.page and phrase in block.text for page, phrase in SLOW))
       for block in command_blocks() if (block.page, block.fingerprint) not in EXEMPT]


@pytest.mark.parametrize("block", RUN)
def test_docs_command_block_runs_as_written(block: Block, tmp_path: Path, request: pytest.FixtureRequest,
                                            user_env: dict[str, str], installed_env: dict[str, str]) -> None:
    steps = steps_of(block)
    workspace = workspace_for(block, steps, tmp_path, request)
    done = shell(script(steps), workspace, run_env(user_env, installed_env), timeout=900, shell_options="")
    parts = done.stdout.split(f"\n{STEP} ")
    assert len(parts) == len(steps) + 1, f"docs/{block.id}: the block stopped early:\n{done.stdout[-3000:]}"
    outputs = [parts[0], *(part.split("\n", 1)[-1] for part in parts[1:-1])]
    statuses = [int(part.split("\n", 1)[0]) for part in parts[1:]]
    problems = [check(step, status, output) for step, status, output in zip(steps, statuses, outputs)]
    assert not any(problems), f"docs/{block.id}:\n" + "\n\n".join(filter(None, problems))


def test_every_exemption_names_a_command_block_of_the_docs() -> None:
    """An exemption whose block changed or went away is stale: the edited block runs, or is reviewed again."""
    current = {(block.page, block.fingerprint) for block in command_blocks()}
    assert set(EXEMPT) <= current, f"stale exemptions (block edited or gone): {sorted(set(EXEMPT) - current)}"


def test_commands_are_fenced_as_commands() -> None:
    """A block that reads as commands but is fenced ``text`` (or bare) would escape this test."""
    hidden = [block.id for block in all_blocks() if block.fence not in COMMAND_FENCES | {"yaml", "python", "toml"}
              and LOOKS_LIKE_A_COMMAND.search(block.text)]
    assert hidden == [], f"fence these as bash (or console with $ prompts): {hidden}"


def test_a_transcript_is_read_as_commands_their_output_and_exit_codes() -> None:
    """``$`` lines are the commands, the lines under one its output, ``# exit N`` its status; a status or a line
    the run does not match is reported."""
    text = "$ rmcheck run a \\\n  --rm demo\nran a\n...\n$ rmcheck run b  # exit 2\nerror: b\n"
    block = Block("x.md", 1, "console", text)
    first, second = commands(block)
    assert (first.text, first.output, first.exit) == ("rmcheck run a \\\n  --rm demo", ["ran a", "..."], None)
    assert (second.output, second.exit) == (["error: b"], 2)
    assert check(first, 0, "ran a\n") is None and check(second, 2, "error: b (why)\n") is None
    assert "exited 0, the page says 2" in check(second, 0, "error: b\n")
    assert "ran a" in check(first, 0, "ran b\n")
    assert check(first, 1, "ran a\n0 passed, 2 failed") is None
    assert "exited 1, the page says 0" in check(first, 1, "ran a\n0 passed, 0 failed")
