"""Run documents hold plain JSON values only, so they cross pytest-xdist's channel and read back as JSON.

A backend's own provenance may hand out library types (``torch.__version__`` is a ``TorchVersion``, a ``str``
subclass execnet refuses to send); ``pytest -n 2`` with any torch model ended in an INTERNALERROR before they
were converted where the document is built.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rmcheck.plain import non_plain, plain

pytest.importorskip("xdist")

LIBRARY_TYPES_RM = '''
from pathlib import Path

import numpy as np
import torch

from rmcheck import register_backend


class LibraryTypes:
    """Scores by length and reports provenance the way torch-backed models do: in library types."""

    objectives = ()
    cacheable = False
    fingerprint = "library-types-v1"

    def __init__(self, spec):
        self.spec = spec

    def describe(self):
        return self.spec

    def provenance(self):
        return {"torch": torch.__version__, "max_length": np.int64(512), "scale": np.float32(0.5),
                "directory": Path("/models/x"), "devices": ("cpu",)}

    def score(self, pairs):
        return [float(len(pair.response)) for pair in pairs]


@register_backend("librarytypes", replace=True)
def build(rest, options):
    return LibraryTypes("librarytypes:" + rest)
'''

SUITE = """rmcheck: 1
suite: plain
cases:
  - {id: a, prompt: What is two plus two?, response: Four.}
  - {id: b, prompt: Name a prime number., response: Seven is prime.}
tests:
  - {name: append, perturb: {op: append, text: ' Indeed.'}, expect: not_lower}
  - {name: filler, perturb: pad_with_filler, expect: not_higher}
"""


def test_plain_converts_library_types_to_json_values() -> None:
    torch = pytest.importorskip("torch")
    value = {"torch": torch.__version__, 3: np.float32(1.5), "n": np.int64(2), "flag": np.bool_(True),
             "path": Path("/x"), "pair": (1, 2), "tensor": torch.tensor(0.25), "nested": [{"v": np.float64(2.0)}]}
    assert non_plain(value)  # the check itself finds them
    converted = plain(value)
    assert non_plain(converted) == []
    assert converted == {"torch": str(torch.__version__), "3": 1.5, "n": 2, "flag": True, "path": "/x",
                         "pair": [1, 2], "tensor": 0.25, "nested": [{"v": 2.0}]}
    assert type(converted["torch"]) is str


@pytest.mark.parametrize("workers", ["0", "2"])
def test_library_typed_provenance_crosses_xdist_and_reaches_the_run_document(pytester: pytest.Pytester,
                                                                             workers: str) -> None:
    pytester.makeconftest(LIBRARY_TYPES_RM)
    pytester.makefile(".rmcheck.yaml", plain=SUITE)
    result = pytester.runpytest_subprocess("-n", workers, "--rm", "librarytypes:x", "--rmcheck-json", "run.json",
                                           "-p", "no:cacheprovider")
    assert "INTERNALERROR" not in result.stdout.str()
    result.assert_outcomes(passed=1, failed=1)
    document = json.loads((pytester.path / "run.json").read_text())
    assert non_plain(document) == []
    assert document["models"][0]["provenance"]["torch"].startswith("2.")
    assert document["models"][0]["provenance"]["devices"] == ["cpu"]


def test_demo_run_document_is_plain(tmp_path: Path) -> None:
    """The embedded torch model, through the CLI: every value of its run document is plain."""
    from rmcheck.cli import main

    suite = tmp_path / "plain.rmcheck.yaml"
    suite.write_text(SUITE)
    main(["run", str(suite), "--rm", "demo", "--json", str(tmp_path / "run.json"), "--no-cache"])
    document = json.loads((tmp_path / "run.json").read_text())
    assert non_plain(document) == []
    assert "torch" in document["models"][0]["provenance"]
