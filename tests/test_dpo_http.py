"""dpo:http://POLICY,http://REFERENCE: the implicit reward of served policies equals the in-process dpo:."""
from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from fixtures.lm_server import LMServer  # noqa: E402
from rmcheck import load_model  # noqa: E402
from rmcheck.errors import BackendError  # noqa: E402
from tests.test_dpo import PAIRS, build_lm  # noqa: E402


@pytest.fixture(scope="module")
def lms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("served-lms")
    return {"policy": build_lm(root / "policy", seed=1), "reference": build_lm(root / "reference", seed=2)}


@pytest.mark.parametrize("settings", ["", ",beta=0.5,norm=mean"])
def test_served_policies_give_the_in_process_reward(lms: dict[str, Path], settings: str) -> None:
    with LMServer(lms["policy"]) as policy, LMServer(lms["reference"]) as reference:
        served = load_model(f"dpo:{policy.url},{reference.url}{settings}")
        remote = served.score(PAIRS)
    local = load_model(f"dpo:{lms['policy']},{lms['reference']}{settings}").score(PAIRS)
    assert served.objectives == ("policy_logp", "reference_logp") and served.cacheable is False
    for mine, theirs in zip(local, remote):
        assert theirs.keys() == mine.keys()
        for name, value in mine.items():
            assert theirs[name] == pytest.approx(value, abs=1e-4), name
    assert any(abs(s["score"]) > 1e-3 for s in remote)


def test_reference_free_and_refusals(lms: dict[str, Path]) -> None:
    with ExitStack() as stack:
        policy = stack.enter_context(LMServer(lms["policy"]))
        free = load_model(f"dpo:{policy.url},none,beta=2").score(PAIRS[:2])
        local = load_model(f"dpo:{lms['policy']},none,beta=2").score(PAIRS[:2])
        assert [s["score"] for s in free] == pytest.approx([s["score"] for s in local], abs=1e-4)
        other = stack.enter_context(LMServer(lms["reference"]))
        other.tokenize = lambda body: [5, 6, 7]  # type: ignore[method-assign]  # another tokenizer
        with pytest.raises(BackendError, match="tokenize a conversation differently"):
            load_model(f"dpo:{policy.url},{other.url}")
        with pytest.raises(BackendError, match="the policy is served but the reference"):
            load_model(f"dpo:{policy.url},{lms['reference']}")
