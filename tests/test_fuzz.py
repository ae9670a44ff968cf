"""The standing fuzzer (issue 17): mutants of the built-in suites and the root-cause seeds give a result or
an RmcheckError, within bounded time and memory, from the loader, ``rmcheck validate`` and the engine.

CI runs a few hundred examples; ``pytest tests/test_fuzz.py --hypothesis-profile=long`` runs 10,000.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzzing import BUILTIN, SNIPPETS, check, mutants
from tests.test_faults import ROOT_CAUSES

#: Examples in CI (the default profile), or as many as the chosen profile asks when that is more, run in
#: shards of at most 1,000 (``pytest -n 2 --hypothesis-profile=long`` runs the long profile's ten on two cores).
EXAMPLES = max(settings.default.max_examples, 300)
SHARDS = -(-EXAMPLES // 1000)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("shard", range(SHARDS))
@settings(max_examples=-(-EXAMPLES // SHARDS), deadline=None, database=None, derandomize=SHARDS == 1,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(data=mutants())
def test_a_mutated_suite_gives_a_result_or_an_rmcheck_error(folder: Path, shard: int, data: bytes) -> None:
    assert check(data, folder) is None, check(data, folder)


SEEDS = [*SNIPPETS, *(data for data, _ in ROOT_CAUSES.values()), *(text.encode() for text in BUILTIN.values())]


@pytest.mark.parametrize("data", SEEDS, ids=[f"seed{i}" for i in range(len(SEEDS))])
def test_every_seed_gives_a_result_or_an_rmcheck_error(data: bytes, tmp_path: Path) -> None:
    assert check(data, tmp_path) is None
