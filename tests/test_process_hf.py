"""``hf:`` process reward models (``?prm=shepherd|qwen``) against each model card's reference code, written here
from the cards' usage snippets (peiyi9979/math-shepherd-mistral-7b-prm, Qwen/Qwen2.5-Math-PRM-7B) and run on tiny
models built from those architectures' configs: a Llama causal LM for Math-Shepherd (a Mistral causal LM), and
Qwen2ForTokenClassification for Qwen2.5-Math-PRM (its own Qwen2ForProcessRewardModel is custom code); and the same
Qwen-style PRM served over ``http://...?steps=on`` by an emulated vLLM's step pooling (fixtures/vllm_emulator.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

from fixtures.tiny_models import build_tiny_llama_rm, build_tiny_qwen_prm, build_tiny_shepherd_prm
from fixtures.vllm_emulator import RELEASES, VLLMEmulator, step_pooler
from rmcheck.backends.base import ModelOptions, Pair, check_spec, load_model
from rmcheck.errors import BackendError, ScoreError
from rmcheck.process.model import Solution, StepScores

QUESTION = "Tom has 3 bags of 4 apples. He eats 2 and doubles the rest. How many apples?"
STEPS = [("Tom has 3 bags of 4 apples, so 3 * 4 = 12 apples.", "He eats 2, so 12 - 2 = 10 apples remain.",
          "He doubles them: 10 * 2 = 20.", "The answer is 20."),
         ("The cat explains the question.", "A doctor answers 3 - 1 = 2.\nThe river helps with two numbers."),
         ("The answer is 7.",)]
PARITY = 1e-5


@pytest.fixture(scope="module")
def shepherd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_shepherd_prm(tmp_path_factory.mktemp("shepherd"))


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen_prm(tmp_path_factory.mktemp("qwen-prm"))


def shepherd_card(model_dir: Path, question: str, steps: tuple[str, ...], good_token: str = "+",
                  bad_token: str = "-") -> list[float]:
    """Math-Shepherd's model card: "+"/"-" logits at every step tag "ки", softmax, P("+")."""
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    step_tag = "ки"
    candidate_tokens = tokenizer.encode(f"{good_token} {bad_token}")[1:]
    step_tag_id = tokenizer.encode(f"{step_tag}")[-1]
    output = "\n".join(f"{step} {step_tag}" for step in steps)
    input_id = torch.tensor([tokenizer.encode(f"{question} {output}")])
    with torch.no_grad():
        logits = model(input_id).logits[:, :, candidate_tokens]
        scores = logits.softmax(dim=-1)[:, :, 0]
        return scores[input_id == step_tag_id].tolist()


def qwen_card(model_dir: Path, question: str, steps: tuple[str, ...]) -> list[float]:
    """Qwen2.5-Math-PRM's model card: steps each followed by <extra_0> in the assistant turn after the card's system
    prompt, softmax of the token head, the positive label's probability at each <extra_0>."""
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForTokenClassification.from_pretrained(str(model_dir)).eval()

    def make_step_rewards(logits: torch.Tensor, token_masks: torch.Tensor) -> list[list[float]]:
        probabilities = F.softmax(logits, dim=-1) * token_masks.unsqueeze(-1)
        return [sample[sample != 0].view(-1, 2)[:, 1].tolist() for sample in probabilities]

    system = "Please reason step by step, and put your final answer within \\boxed{}."
    messages = [{"role": "system", "content": system},
                {"role": "user", "content": question},
                {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"}]
    conversation = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    input_ids = tokenizer.encode(conversation, return_tensors="pt")
    with torch.no_grad():
        outputs = model(input_ids=input_ids)
    step_sep_id = tokenizer.encode("<extra_0>")[0]
    return make_step_rewards(outputs[0], input_ids == step_sep_id)[0]


def solutions() -> list[Solution]:
    return [Solution(QUESTION, steps) for steps in STEPS]


@pytest.mark.parametrize("shape, card", [("shepherd", shepherd_card), ("qwen", qwen_card)])
def test_step_scores_equal_the_model_cards_reference_code(shape: str, card, request: pytest.FixtureRequest) -> None:
    model_dir = request.getfixturevalue(shape)
    model = load_model(f"hf:{model_dir}?prm={shape}", ModelOptions())
    assert isinstance(model, StepScores)
    got = model.score_steps(solutions())  # one padded batch
    for solution, scores in zip(solutions(), got):
        expected = card(model_dir, QUESTION, solution.steps)
        assert len(scores) == len(solution.steps) == len(expected)
        assert max(abs(a - b) for a, b in zip(scores, expected)) < PARITY
        assert len({round(s, 6) for s in expected}) > 1 or len(expected) == 1  # the tiny model discriminates
    alone = [model.score_steps([s])[0] for s in solutions()]
    assert max(abs(a - b) for x, y in zip(got, alone) for a, b in zip(x, y)) < PARITY  # batch mates change nothing


def test_spec_options_override_the_cards_defaults(shepherd: Path) -> None:
    default = load_model(f"hf:{shepherd}?prm=shepherd", ModelOptions())
    other = load_model(f"hf:{shepherd}?prm=shepherd&step_tag=%D0%BA%D0%B8&good=The&bad=cat", ModelOptions())
    (steps,) = STEPS[:1]
    (got,) = other.score_steps([Solution(QUESTION, steps)])
    expected = shepherd_card(shepherd, QUESTION, steps, good_token="The", bad_token="cat")
    assert max(abs(a - b) for a, b in zip(got, expected)) < PARITY
    assert max(abs(a - b) for a, b in zip(got, default.score_steps([Solution(QUESTION, steps)])[0])) > 1e-3
    assert "P('+')" in default.describe() and "P('The')" in other.describe()


def test_a_prm_scores_responses_by_its_lowest_step(qwen: Path) -> None:
    model = load_model(f"hf:{qwen}?prm=qwen", ModelOptions())
    (scores,) = model.score([Pair(QUESTION, "\n\n".join(STEPS[0]))])
    assert scores["score"] == pytest.approx(min(model.score_steps(solutions()[:1])[0]))


@pytest.mark.parametrize("options, message, fix", [
    ("?prm=mistral", "prm=mistral", "?prm=shepherd"),
    ("?step_tag=x", "gives options but no prm=", "?prm=qwen"),
    ("?prm=qwen&colour=red", "unknown option 'colour'", "prm, step_tag, good, bad, system"),
    ("?prm=qwen&bad=-", "bad= in", "Options of prm=qwen: step_tag, good, system"),
    ("?prm=shepherd&step_tag=", "step_tag= is empty", "'ки'"),
    ("?prm=shepherd&good", "'good' is not KEY=VALUE", "hf:ID_OR_PATH?prm=shepherd"),
])
def test_a_bad_option_is_one_error_naming_it_before_the_run(shepherd: Path, options: str, message: str,
                                                            fix: str) -> None:
    with pytest.raises(BackendError) as caught:
        check_spec(f"hf:{shepherd}{options}")
    assert message in str(caught.value) and fix in caught.value.fix


@pytest.mark.parametrize("shape, options, message", [
    ("shepherd", "&good=The cat", "tokenize as"),
    ("qwen", "&good=positive", "names none of the head's 2 labels"),
    ("qwen", "&good=2", "names none of the head's 2 labels"),
])
def test_labels_the_model_lacks_are_one_error(shape: str, options: str, message: str,
                                              request: pytest.FixtureRequest) -> None:
    with pytest.raises(BackendError, match=message):
        load_model(f"hf:{request.getfixturevalue(shape)}?prm={shape}{options}", ModelOptions())


def test_a_step_holding_the_tag_is_one_error_naming_the_solution(shepherd: Path) -> None:
    model = load_model(f"hf:{shepherd}?prm=shepherd", ModelOptions())
    with pytest.raises(ScoreError, match="has 3 step-tag tokens .* for its 2 steps") as caught:
        model.score_steps([Solution(QUESTION, ("Half ки done.", "The answer is 3."))])
    assert "?step_tag=" in caught.value.fix


def test_a_token_classifier_without_prm_is_refused_not_scored_as_a_sequence_rm(qwen: Path) -> None:
    with pytest.raises(BackendError, match="is a process reward model \\(Qwen2ForTokenClassification\\)") as caught:
        load_model(f"hf:{qwen}", ModelOptions())
    assert "?prm=qwen" in caught.value.fix


def test_a_scalar_rm_with_prm_qwen_says_what_is_missing(tmp_path: Path) -> None:
    model_dir = build_tiny_llama_rm(tmp_path / "rm")
    with pytest.raises(BackendError, match="names none of the head's 1 labels"):
        load_model(f"hf:{model_dir}?prm=qwen", ModelOptions())


# -- served: vLLM's step pooling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version, server_activation, option", [
    ("0.34.0", True, ""), ("0.11.1", True, ""),      # use_activation: false; rmcheck softmaxes the raw rows
    ("0.10.2", True, ""), ("0.9.2", True, ""),       # no switch: the server softmaxes each row, rmcheck reads it
    ("0.10.0", False, "&activation=off"),            # a server started raw says so; rmcheck softmaxes
])
def test_a_served_prm_gives_the_cards_step_scores(qwen: Path, version: str, server_activation: bool,
                                                  option: str) -> None:
    task = RELEASES[version].token_task
    with VLLMEmulator(version, task=task, steps=step_pooler(qwen), server_activation=server_activation) as server:
        model = load_model(f"{server.url}?steps=on{option}", ModelOptions())
        assert isinstance(model, StepScores) and "step pooling at '<extra_0>'" in model.describe()
        got = model.score_steps(solutions())
        (sent, *_) = server.pooling_calls()
    for solution, scores in zip(solutions(), got):
        expected = qwen_card(qwen, QUESTION, solution.steps)
        assert max(abs(a - b) for a, b in zip(scores, expected)) < PARITY
    assert sent["messages"][0]["content"].startswith("Please reason step by step")
    assert sent["messages"][-1]["content"].endswith("<extra_0>") and sent.get("use_activation", False) is False


def test_a_served_step_tag_the_server_does_not_pool_is_one_error(qwen: Path) -> None:
    with VLLMEmulator(task="token_classify", steps=step_pooler(qwen)) as server:
        model = load_model(f"{server.url}?steps=on&step_tag=%3Cextra_1%3E", ModelOptions())
        with pytest.raises(ScoreError, match="answered 0 step rows for a solution of 4 steps") as caught:
            model.score_steps(solutions()[:1])
    assert "step_tag_id" in caught.value.fix


def test_a_served_scalar_rm_is_no_step_scorer() -> None:
    with VLLMEmulator() as server:
        assert not isinstance(load_model(server.url, ModelOptions()), StepScores)


@pytest.mark.parametrize("options, message", [
    ("?step_tag=x", "step_tag= in"), ("?steps=yes", "steps=yes"), ("?steps=on&protocol=rerank", "needs protocol"),
    ("?steps=on&good=x", "bad option"),
])
def test_a_bad_step_option_is_one_error_before_any_request(options: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        load_model(f"http://127.0.0.1:9{options}", ModelOptions())
