"""pytest-xdist: each worker loads a model once, no pair is scored by two workers, the cache is shared."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("xdist")

CONFTEST = '''
import os

from rmcheck import register_backend


def log(line):
    with open(os.environ["RMCHECK_TEST_LOG"], "a") as handle:  # short appends: atomic across processes
        handle.write(f"{os.getpid()} {line}\\n")


class Counting:
    """Scores 0 for everything; logs each load and each scored pair with the process id."""

    objectives = ()
    cacheable = True
    fingerprint = "counting-v1"

    def __init__(self, spec):
        self.spec = spec
        log(f"load {spec}")

    def describe(self):
        return self.spec

    def score(self, pairs):
        for pair in pairs:
            log(f"score {pair.prompt_text}|{pair.response}")
        return [0.0] * len(pairs)


@register_backend("counting", replace=True)
def build(rest, options):
    return Counting("counting:" + rest)
'''


def suite(name: str) -> str:
    cases = "\n".join(f"  - {{id: c{i}, prompt: {name} question {i}?, response: The answer {i}. It is short.}}"
                      for i in range(4))
    return (f"rmcheck: 1\nsuite: {name}\ncases:\n{cases}\ntests:\n"
            "  - {name: append, perturb: {op: append, text: ' Indeed.'}, expect: invariant}\n"
            "  - {name: filler, perturb: pad_with_filler, expect: invariant}\n"
            "  - {name: flattery, perturb: add_flattery, expect: invariant}\n")


@pytest.fixture
def log(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytester.makeconftest(CONFTEST)
    pytester.makefile(".rmcheck.yaml", first=suite("first"), second=suite("second"))
    path = pytester.path / "calls.log"
    monkeypatch.setenv("RMCHECK_TEST_LOG", str(path))
    return path


def calls(log: Path) -> tuple[Counter[int], Counter[str], set[str]]:
    """Loads per process, how often each pair was scored, and the processes that scored."""
    loads: Counter[int] = Counter()
    scored: Counter[str] = Counter()
    scorers: set[str] = set()
    for line in log.read_text().splitlines() if log.exists() else []:
        pid, kind, rest = line.split(" ", 2)
        if kind == "load":
            loads[int(pid)] += 1
        else:
            scored[rest] += 1
            scorers.add(pid)
    return loads, scored, scorers


def test_two_workers_load_once_each_and_never_score_a_pair_twice(pytester: pytest.Pytester, log: Path) -> None:
    result = pytester.runpytest_subprocess("-n", "2", "--rm", "counting:a", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    loads, scored, scorers = calls(log)
    assert set(loads.values()) == {1} and len(loads) <= 2  # one load per worker process
    assert set(scored.values()) == {1}  # each pair scored by exactly one worker, once
    assert len(scored) == 2 * (4 + 3 * 4)  # per suite: 4 originals (shared by 3 tests) + 3 x 4 perturbed
    result.stdout.fnmatch_lines([f"scoring ?counting:a?: * 0 from the cache, {len(scored)} scored in *"])

    log.unlink()
    result = pytester.runpytest_subprocess("-n", "2", "--rm", "counting:a", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    loads, scored, _ = calls(log)
    assert not scored  # both workers found every pair in the shared cache
    result.stdout.fnmatch_lines([f"scoring ?counting:a?: * {2 * 16} from the cache, 0 scored in 0 forward passes"])


@pytest.mark.parametrize(("nodeid", "scope"), [
    ("suites/v.rmcheck.yaml::filler[hf:./m@v1]", "suites/v.rmcheck.yaml[hf:./m@v1]"),
    ("suites/v.rmcheck.yaml::truncate[demo]", "suites/v.rmcheck.yaml[demo]"),
    ("tests/test_x.py::test_a[1]", "tests/test_x.py::test_a[1]"),  # other items are scheduled one by one
])
def test_suite_scope_keeps_a_suite_and_model_together(nodeid: str, scope: str) -> None:
    from rmcheck.plugin import suite_scope

    assert suite_scope(nodeid) == scope
