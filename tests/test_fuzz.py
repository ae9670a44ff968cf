"""The standing fuzzer (issues 17 and 27): mutants of the built-in suites and the root-cause seeds give a result
or an RmcheckError, within bounded time and memory, from the loader, ``rmcheck validate`` and the engine; so do
mutated data files (and ``rmcheck explain``'s reader), mutated run documents in ``rmcheck report``, ``compare``
and ``history``, and every operator on every case shape.

CI runs a few hundred examples; ``pytest tests/test_fuzz.py --hypothesis-profile=long`` runs 10,000 suites, and
``python benchmarks/fuzz_census.py`` counts every crash over 10,000 suites and 2,000 data files.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from rmcheck.perturb.base import OPERATORS
from tests.fuzzing import (BUILTIN, SHAPES, SNIPPETS, check, check_data, check_document, data_files, mutants,
                           operator_suite, run_documents)
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


#: Data files and run documents in CI: a tenth, and a thirtieth, of the suites (a report renders figures).
FILES, DOCUMENTS = EXAMPLES // 10, EXAMPLES // 30
SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


@settings(max_examples=FILES, deadline=None, database=None, derandomize=True, suppress_health_check=SLOW_OK)
@given(example=data_files())
def test_a_mutated_data_file_gives_a_result_or_an_rmcheck_error(folder: Path, example: tuple) -> None:
    assert check_data(example, folder) is None, check_data(example, folder)


@settings(max_examples=DOCUMENTS, deadline=None, database=None, derandomize=True, suppress_health_check=SLOW_OK)
@given(data=run_documents())
def test_a_mutated_run_document_gives_a_result_or_an_rmcheck_error(folder: Path, data: bytes) -> None:
    assert check_document(data, folder) is None, check_document(data, folder)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("op", OPERATORS.names())
def test_every_operator_on_every_case_shape_gives_a_result_or_an_rmcheck_error(op: str, shape: str,
                                                                              tmp_path: Path) -> None:
    assert check(operator_suite(op, shape), tmp_path) is None
