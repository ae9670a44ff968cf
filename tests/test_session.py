"""One Session for the CLI and the plugin: run-document hooks of plugin modules reach ``rmcheck run --json`` as
well as pytest's run document, from ``[tool.rmcheck] plugins`` and from an installed package's entry point; a
failing hook is one error line; the gate's decisions are the same through both."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_plugins import RM, install_package, pytest_run, rmcheck_run

SUITE = """\
rmcheck: 1
suite: lengths
cases:
  - {id: a, prompt: Say something., response: A long enough answer.}
tests:
  - {name: filler, perturb: pad_with_filler, expect: not_higher}
"""

HOOK = '''
def rmcheck_run_document(document):
    document["serving"] = {"gpu": "none", "models": [m["spec"] for m in document["models"]]}
'''


def project(root: Path, **files: str) -> Path:
    """A user's folder with the suite, the length-loving RM and ``files`` (name -> text)."""
    root.mkdir(parents=True)
    for name, text in {"lengths.rmcheck.yaml": SUITE, "length_rm.py": RM, **files}.items():
        (root / name).write_text(text)
    return root


def documents(user: Path, pythonpath: Path | None = None) -> tuple[dict, dict]:
    """The run documents ``rmcheck run --json`` and ``pytest --rmcheck-json`` write in ``user``."""
    cli = rmcheck_run(user, "lengths.rmcheck.yaml", "--json", "cli.json", pythonpath=pythonpath)
    assert cli.returncode == 1 and "Traceback" not in cli.stderr, cli.stdout + cli.stderr
    under_pytest = pytest_run(user, "--rmcheck-json", "pytest.json", pythonpath=pythonpath)
    assert "1 failed" in under_pytest.stdout, under_pytest.stdout
    return (json.loads((user / "cli.json").read_text()), json.loads((user / "pytest.json").read_text()))


def test_a_pyproject_plugin_hook_adds_provenance_under_the_cli_and_pytest(tmp_path: Path) -> None:
    user = project(tmp_path / "user", **{"prov.py": HOOK,
                                         "pyproject.toml": '[tool.rmcheck]\nplugins = ["prov"]\n'})
    for document in documents(user):
        assert document["serving"] == {"gpu": "none", "models": ["python:length_rm:score"]}


def test_an_entry_point_plugin_hook_adds_provenance_under_the_cli_and_pytest(tmp_path: Path) -> None:
    site = install_package(tmp_path / "site", "provplugin", HOOK, "[rmcheck.plugins]\nprov = provplugin\n")
    user = project(tmp_path / "user")
    for document in documents(user, pythonpath=site):
        assert document["serving"]["models"] == ["python:length_rm:score"]


def test_a_failing_hook_is_one_error_line(tmp_path: Path) -> None:
    user = project(tmp_path / "user", **{"lengths.rmcheck.yaml": SUITE.replace("not_higher", "higher"),
                                         "pyproject.toml": '[tool.rmcheck]\nplugins = ["prov"]\n',
                                         "prov.py": "def rmcheck_run_document(document):\n    raise KeyError('gpu')\n"})
    out = rmcheck_run(user, "lengths.rmcheck.yaml", "--json", "cli.json")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "run-document hook prov.rmcheck_run_document failed: KeyError: 'gpu'" in out.stderr, out.stderr
    out = pytest_run(user, "--rmcheck-json", "pytest.json")
    assert "rmcheck: error:" in out.stdout and "KeyError: 'gpu'" in out.stdout
    assert out.returncode == 4, out.stdout  # the test passed, but no run document was written: not a green run


@pytest.mark.parametrize("fail_on", ["absolute", "regression", "both"])
def test_the_cli_and_pytest_gate_alike(tmp_path: Path, fail_on: str) -> None:
    """Base: the length-loving RM's run; candidate: the same RM. Both drivers give each test the same status."""
    user = project(tmp_path / "user")
    assert rmcheck_run(user, "lengths.rmcheck.yaml", "--json", "base.json").returncode == 1
    gate = ["--fail-on", fail_on, "--baseline", "base.json"]
    rmcheck_run(user, "lengths.rmcheck.yaml", "--json", "cli.json", *gate)
    pytest_run(user, "--rmcheck-json", "pytest.json", *(f"--rmcheck-{g[2:]}" if g.startswith("--") else g
                                                        for g in gate))
    statuses = [{r["test"]: r["status"] for r in json.loads((user / name).read_text())["results"]}
                for name in ("cli.json", "pytest.json")]
    assert statuses[0] == statuses[1] == {"filler": "failed" if fail_on != "regression" else "xfailed"}
