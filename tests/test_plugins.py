"""Registries are real plugin points: a test kind from an installed package's entry point, from a conftest.py or
from ``[tool.rmcheck] plugins`` runs from a YAML suite under ``rmcheck run`` and pytest, its sub-schema joins the
suite schema, and its parser's errors name the file and line. The built-ins are named lazily and all resolve.

Everything that registers a kind runs in a subprocess, so this session's registries stay as shipped.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rmcheck.backends.base import BACKENDS, SPEC_CHECKS
from rmcheck.kinds.registry import KINDS, TestKind
from rmcheck.perturb.base import OPERATORS
from rmcheck.suite.compose import builtin_schema, compose, render, shipped_path

#: A test kind written outside rmcheck, with the public API only: every response scores at least ``floor``.
KIND_MODULE = '''
from dataclasses import dataclass

from rmcheck import Pair, ParseContext, TestKind
from rmcheck.errors import SuiteError
from rmcheck.results import CaseResult, TestResult


@dataclass(frozen=True)
class FloorTest:
    name: str
    line: int
    floor: float
    kind: str = "score_floor"


def parse(raw, context: ParseContext) -> FloorTest:
    if raw["floor"] > 100:
        raise SuiteError(f"floor {raw['floor']} is above 100", where=context.where("floor"), fix="Lower it")
    return FloorTest(raw["name"], context.line, float(raw["floor"]))


def evaluate(engine, spec, requests):
    scores = engine.score(spec, [Pair(c.prompt, t) for r in requests for c in r.suite.cases for _, t in c.responses])
    out = {}
    for r in requests:
        result = TestResult(suite=r.suite.name, suite_file=str(r.suite.path), line=r.test.line, test=r.test.name,
                            model=spec, attribute="floor", expect="score_floor", rule="score >= floor",
                            objective=None, tolerance="0", threshold=r.test.floor, min_pass_rate=1.0)
        for c in r.suite.cases:
            for role, text in c.responses:
                s = scores[Pair(c.prompt, text)]["score"]
                result.cases.append(CaseResult(f"{c.id}:{role}", "passed" if s >= r.test.floor else "failed",
                                               delta=s - r.test.floor, source=c.source))
        out[r.key] = result
    return out


SCHEMA = {"type": "object", "required": ["name", "kind", "floor"], "additionalProperties": False,
          "properties": {"name": {"type": "string"}, "kind": {"const": "score_floor"}, "floor": {"type": "number"}}}
KIND = TestKind("score_floor", parse, evaluate, SCHEMA)
'''
RM = "def score(prompts, responses):\n    return [float(len(r)) for r in responses]\n"
SUITE = """\
rmcheck: 1
suite: floors
cases:
  - {id: long, prompt: Say something., response: A long enough answer.}
  - {id: short, prompt: Say something., response: Hi.}
tests:
  - name: at-least-five
    kind: score_floor
    floor: 5
  - name: at-least-one
    kind: score_floor
    floor: 1
"""


def project(root: Path, **files: str) -> Path:
    """A user's folder with the suite, the RM and ``files`` (name -> text)."""
    for name, text in {"floors.rmcheck.yaml": SUITE, "length_rm.py": RM, **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def run(args: list[str], cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTEST_ADDOPTS": "", **({"PYTHONPATH": str(pythonpath)} if pythonpath else {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def rmcheck_run(cwd: Path, *more: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run(["-m", "rmcheck.cli", "run", "--rm", "python:length_rm:score", "--no-cache", *more], cwd, pythonpath)


def pytest_run(cwd: Path, *more: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run(["-m", "pytest", "-p", "no:cacheprovider", "--rm", "python:length_rm:score", "--rmcheck-no-cache",
                "-q", *more], cwd, pythonpath)


def install_package(site: Path, name: str, module: str, entry_points: str) -> Path:
    """Put the package ``name`` in the folder ``site`` (for PYTHONPATH) as pip installs one: its ``__init__.py``
    holds ``module``, and its dist-info's entry_points.txt is ``entry_points``."""
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text(module)
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return site


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """A folder for PYTHONPATH holding the ``floorkind`` package, whose entry point names the kind in the
    ``rmcheck.kinds`` group."""
    return install_package(tmp_path / "site", "floorkind", KIND_MODULE,
                           "[rmcheck.kinds]\nscore_floor = floorkind:KIND\n")


def test_a_kind_from_an_entry_point_runs_under_rmcheck_run(tmp_path: Path, installed: Path) -> None:
    user = project(tmp_path / "user")
    out = rmcheck_run(user, "floors.rmcheck.yaml", pythonpath=installed)
    assert out.returncode == 1, out.stdout + out.stderr  # one test failed: "Hi." scores 3 < 5
    assert "Traceback" not in out.stderr
    assert "at-least-one" in out.stdout and "at-least-five" in out.stdout
    assert "1 passed, 1 failed" in out.stdout, out.stdout
    assert rmcheck_run(user, "floors.rmcheck.yaml").returncode == 2  # not installed: the suite is refused


def test_a_kind_from_an_entry_point_runs_under_pytest_xdist(tmp_path: Path, installed: Path) -> None:
    out = pytest_run(project(tmp_path / "user"), "-n", "2", pythonpath=installed)
    assert "[gw0]" in out.stdout or "[gw1]" in out.stdout, out.stdout + out.stderr  # it ran on a worker
    assert out.stdout.rstrip().splitlines()[-1].startswith("1 failed, 1 passed"), out.stdout


def test_a_kind_from_a_conftest_runs_under_pytest(tmp_path: Path) -> None:
    user = project(tmp_path / "user", **{"floorkind.py": KIND_MODULE, "conftest.py": """\
        import rmcheck
        from floorkind import SCHEMA, evaluate, parse

        rmcheck.register_kind("score_floor", parse, evaluate, schema=SCHEMA)
        """})
    out = pytest_run(user)
    assert out.stdout.rstrip().splitlines()[-1].startswith("1 failed, 1 passed"), out.stdout + out.stderr
    assert "at-least-five[python:length_rm:score]" in out.stdout


PLUGIN = """\
    import rmcheck
    from floorkind import SCHEMA, evaluate, parse

    rmcheck.register_kind("score_floor", parse, evaluate, schema=SCHEMA)
    """


def test_pyproject_plugins_load_for_the_cli_and_pytest(tmp_path: Path) -> None:
    user = project(tmp_path / "user", **{"floorkind.py": KIND_MODULE, "my_plugins.py": PLUGIN,
                                         "pyproject.toml": '[tool.rmcheck]\nplugins = ["my_plugins"]\n'})
    out = rmcheck_run(user, "floors.rmcheck.yaml")
    assert out.returncode == 1 and "1 passed, 1 failed" in out.stdout, out.stdout + out.stderr
    assert run(["-m", "rmcheck.cli", "validate", "floors.rmcheck.yaml"], user).returncode == 0
    out = pytest_run(user)
    assert out.stdout.rstrip().splitlines()[-1].startswith("1 failed, 1 passed"), out.stdout + out.stderr


def test_a_plugin_that_does_not_import_is_one_error_at_its_line(tmp_path: Path) -> None:
    user = project(tmp_path / "user", **{"pyproject.toml": '[tool.rmcheck]\nmodel = "demo"\nplugins = ["nowhere"]\n'})
    out = rmcheck_run(user, "floors.rmcheck.yaml")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{user / 'pyproject.toml'}:3: plugin module 'nowhere' could not be imported: ModuleNotFoundError" \
        in out.stderr, out.stderr
    out = pytest_run(user)
    assert out.returncode == pytest.ExitCode.USAGE_ERROR and "plugin module 'nowhere'" in out.stderr, out.stderr


def test_a_kind_parser_names_the_file_and_line(tmp_path: Path, installed: Path) -> None:
    user = project(tmp_path / "user", **{"floors.rmcheck.yaml": SUITE.replace("floor: 1\n", "floor: 500\n")})
    out = run(["-m", "rmcheck.cli", "validate", "floors.rmcheck.yaml"], user, installed)
    assert out.returncode == 1 and out.stdout.startswith("floors.rmcheck.yaml:12: floor 500 is above 100. Lower it")


def test_the_shipped_schema_is_the_composed_one() -> None:
    """Editors read suite-v1.schema.json; suites are validated against the schema composed from the registry."""
    assert shipped_path().read_text(encoding="utf-8") == render(builtin_schema()), \
        "run: python -m rmcheck.suite.compose"
    assert run(["-m", "rmcheck.suite.compose", "--check"], Path.cwd()).returncode == 0


def test_a_kind_joins_the_schema_with_its_own_defs() -> None:
    kinds = [KINDS.get(name) for name in KINDS.builtins]
    mine = TestKind("mine", lambda raw, context: None, lambda engine, spec, requests: {},
                    {"$ref": "#/$defs/mine_rule"}, {"mine_rule": {"type": "object"}}, needs_cases=False)
    schema = compose([*kinds, mine])
    assert schema["$defs"]["test"]["properties"]["kind"]["enum"][-1] == "mine"
    assert schema["$defs"]["mine_test"] == {"$ref": "#/$defs/mine_rule"} and "mine_rule" in schema["$defs"]
    assert schema["allOf"][0]["if"]["properties"]["tests"]["items"]["properties"]["kind"]["enum"] == [
        "vocab_sweep", "mine"]
    with pytest.raises(ValueError, match="defines \\$defs/prompt"):
        compose([*kinds, TestKind("clash", mine.parse, mine.evaluate, defs={"prompt": {}})])


@pytest.mark.parametrize("registry", [BACKENDS, SPEC_CHECKS, OPERATORS, KINDS], ids=lambda r: r.kind)
def test_every_builtin_resolves(registry) -> None:
    """A built-in is a ``module:attribute`` string until first use: each must name a real object."""
    for name in registry.builtins:
        found = registry.get(name)
        assert found is not None and getattr(found, "name", name) == name, name
