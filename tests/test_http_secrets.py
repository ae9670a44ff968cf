"""The API key of an http:// spec never reaches what a run shows or writes, even when a server echoes it."""
from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.vllm_emulator import VLLMEmulator
from rmcheck import Pair, load_model
from rmcheck.errors import BackendError

SECRET = "sk-live-4f9a1c2e8b7d6a5f"
SUITE = """\
rmcheck: 1
suite: secrets
cases:
  - {id: capital, prompt: What is the capital of Australia?, response: Canberra is the capital of Australia.}
tests:
  - {name: padding, perturb: pad_with_filler, expect: not_higher}
"""


def test_a_401_that_echoes_the_key_shows_it_nowhere(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    monkeypatch.setenv("RM_KEY", SECRET)
    # a gateway that accepts the model listing, then refuses scoring and quotes the header it got
    with VLLMEmulator(api_key="another-key", guarded=("/pooling",), echo_auth=True) as server:
        spec = f"{server.url}?api_key_env=RM_KEY&retries=0"
        with pytest.raises(BackendError) as caught:
            load_model(spec).score([Pair("Q", "A")])
        assert "HTTP 401" in str(caught.value) and "Bearer <redacted>" in str(caught.value)
        assert SECRET not in str(caught.value)
        pytester.makefile(".rmcheck.yaml", secrets=SUITE)
        pytester.makepyfile(my_rm="def lengthy(prompts, responses):\n    return [len(r) / 10 for r in responses]\n")
        pytester.syspathinsert()  # a second model that scores, so the run document is written
        result = pytester.runpytest("--rm", spec, "--rm", "python:my_rm:lengthy", "--junitxml", "junit.xml", "--rmcheck-json", "run.json",
                                    "-p", "no:cacheprovider")
        assert all(call.headers.get("Authorization") == f"Bearer {SECRET}" for call in server.server.calls("/pooling"))
    shown = result.stdout.str() + result.stderr.str()
    assert "Bearer <redacted>" in shown and SECRET not in shown
    written = {path: path.read_text(encoding="utf-8", errors="replace") for path in Path(pytester.path).rglob("*")
               if path.is_file()}
    assert {"junit.xml", "run.json"} <= {path.name for path in written}
    assert "HTTP 401" in written[pytester.path / "junit.xml"]
    for path, text in written.items():
        assert SECRET not in text, path
