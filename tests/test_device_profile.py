"""Device profiles: what the shared-prefix planner prices a forward pass at, on CPU and on a GPU's roofline."""
from __future__ import annotations

from pathlib import Path

import pytest

from rmcheck.scoring.device import CPU, GPUS, Shape, cpu_profile, dense_shape, profile_for, roofline
from rmcheck.scoring.kv import Row
from rmcheck.scoring.prefix import _passes

H100_8B = roofline(GPUS["h100"], 8e9, *dense_shape(8e9))


@pytest.mark.parametrize(("extra", "joins"), [(32768, True), (32769, False)])
def test_on_cpu_a_row_joins_while_it_adds_at_most_a_pass_of_attention_scores(extra: int, joins: bool) -> None:
    before, alone = Shape(1, 64, 64, 10_000), Shape(1, 8, 8, 500)
    after = Shape(2, 128, 128, 10_000 + 500 + extra)
    assert CPU.joins(before, after, alone) is joins


def test_a_roofline_reads_the_weights_once_a_pass_or_computes_whichever_is_longer() -> None:
    assert dense_shape(8e9) == (35, 4352)
    assert H100_8B.per_pass == pytest.approx(16e9 / 3.35e12)  # bf16 weights over the H100's bandwidth
    assert H100_8B.per_token == pytest.approx(16e9 / 989e12)
    small, large = Shape(1, 10, 10, 100), Shape(8, 4096, 4096, 4096 * 600)
    assert H100_8B.cost(small) == H100_8B.per_pass  # memory bound
    assert H100_8B.cost(large) == pytest.approx(4096 * H100_8B.per_token + 4096 * 600 * H100_8B.per_score)


def test_the_planner_pads_a_pass_only_while_the_profile_says_it_is_free() -> None:
    rows = [Row(None, ((1,) * 64,))] * 8 + [Row(None, ((1,) * 8,))] * 8
    assert _passes(rows, 4096, CPU) == [list(range(16))]  # 8-token rows padded to 64: cheaper than a pass on CPU
    # on an H100 an 8B model computes 8 x 64 tokens for longer than it reads its weights: padding would cost
    assert _passes(rows, 4096, H100_8B) == [list(range(8)), list(range(8, 16))]


def test_cpu_models_plan_with_the_cpu_profile() -> None:
    assert profile_for(object(), "cpu") is CPU


def test_a_cpu_profile_prices_tokens_by_model_size_and_keeps_the_tiny_models_constant() -> None:
    tiny = cpu_profile(81_920, 2, 64)  # the tiny Llama of the tests: the constant it was tuned with, tokens ~free
    assert (tiny.per_pass, tiny.per_score, tiny.alike) == (CPU.per_pass, CPU.per_score, CPU.alike)
    assert tiny.per_token < tiny.per_pass / 500  # a padded token: ~44 attention scores
    smol = cpu_profile(106e6, 30, 576)  # SmolLM2-135M: a padded token ~3.4 ms, a twelfth of its pass
    assert smol.per_token == pytest.approx(3.4e-3, rel=0.05)
    assert smol.per_pass / smol.per_token == pytest.approx(8.6, rel=0.05)
    rows = [Row(None, ((1,) * 64,))] * 8 + [Row(None, ((1,) * 8,))] * 8
    assert _passes(rows, 4096, tiny) == [list(range(16))]  # padding 8-token rows to 64 is free on the tiny model
    assert _passes(rows, 4096, smol) == [list(range(8)), list(range(8, 16))]  # on SmolLM2, 448 padded tokens are not


def test_cpu_models_plan_with_a_profile_of_their_size(tmp_path: Path) -> None:
    from fixtures.tiny_models import build_tiny_llama_rm
    from rmcheck import ModelOptions, load_model

    rm = load_model(f"hf:{build_tiny_llama_rm(tmp_path / 'rm')}", ModelOptions())
    profile = profile_for(rm.model, rm.device)
    assert profile.name.startswith("cpu, ") and "(2 x 64)" in profile.name
    assert profile.per_pass == CPU.per_pass and profile.per_token > 0
