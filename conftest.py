"""Shared fixtures for rmcheck's own tests (the repository root is on sys.path, so ``fixtures`` imports)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import settings
import scipy.stats  # noqa: F401  (imported once here: pytester's in-process runs drop modules they import, and
#                   numpy's C extensions cannot load twice in one process; rmcheck imports scipy lazily)
try:  # the same for torch's distributed modules, which saving a model imports (through accelerate): imported again
    import torch.distributed.fsdp  # noqa: F401  after pytester dropped them, they register c10d_functional twice
except ImportError:  # no torch, or a build without distributed support
    pass

SHARED_DATA = Path(__file__).resolve().parent.parent / "shared" / "data"


@pytest.fixture
def shared_data(monkeypatch: pytest.MonkeyPatch) -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip with the reason where it is absent.

    It lies outside the tests' suite folders, so suites may read it only because this opts in
    (``RMCHECK_DATA_ROOT``: ``file:`` paths are otherwise confined to the suite's rootdir)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (it ships beside the project, not in it)")
    monkeypatch.setenv("RMCHECK_DATA_ROOT", str(SHARED_DATA.parent))
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models on one torch thread: under ``pytest -n 2`` on two cores, OpenMP threads mostly spin-wait
    for each other (several times the CPU). Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ``--hypothesis-profile=long``: the standing fuzzer's local run (tests/test_fuzz.py), 10,000 examples.
settings.register_profile("long", max_examples=10_000, deadline=None)
