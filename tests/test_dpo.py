"""The dpo: backend: implicit rewards of tiny causal LMs, checked against a direct computation."""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from fixtures.tiny_models import CHAT_TEMPLATE, EOS, GEN_TEMPLATE, build_tiny_lm, train_tokenizer  # noqa: E402
from rmcheck.backends import dpo  # noqa: E402
from rmcheck.backends.base import ModelOptions, Pair, load_model, prompt_messages  # noqa: E402
from rmcheck.errors import BackendError  # noqa: E402

PAIRS = [
    Pair("What is the capital of Australia?", "Canberra is the capital."),
    Pair("Hi", "The cat answers the question. " * 3),
    Pair((("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello."), ("user", "Why?")), "  Because."),
    Pair("Say it", "assistant"),  # the response text also occurs in the role marker
]


@functools.lru_cache(maxsize=None)
def trained_tokenizer(vocab_size: int) -> object:
    return train_tokenizer(vocab_size=vocab_size, chat_template=False)


def build_lm(out: Path, seed: int, template: str | None = GEN_TEMPLATE, vocab_size: int = 512) -> Path:
    """A 2-layer Llama causal LM with the fixture tokenizer; different seeds give different weights."""
    return build_tiny_lm(out, seed, template=template, tokenizer=copy.deepcopy(trained_tokenizer(vocab_size)))


@pytest.fixture(scope="module")
def lms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lms")
    return {"policy": build_lm(root / "policy", seed=1), "reference": build_lm(root / "reference", seed=2),
            "policy_no_gen": build_lm(root / "policy_no_gen", seed=1, template=CHAT_TEMPLATE),
            "policy_plain": build_lm(root / "policy_plain", seed=1, template=None),
            "other_vocab": build_lm(root / "other_vocab", seed=2, vocab_size=300)}


@functools.lru_cache(maxsize=None)
def plain_load(path: Path) -> tuple[object, object]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path)), AutoModelForCausalLM.from_pretrained(str(path)).eval()


def direct_logps(path: Path, pair: Pair) -> list[float]:
    """Per-token log-probabilities of the response, computed independently of the backend."""
    tokenizer, model = plain_load(path)
    prompt = tokenizer.apply_chat_template(prompt_messages(pair.prompt), add_generation_prompt=True, tokenize=True,
                                           return_dict=False)
    full = tokenizer.apply_chat_template(pair.messages(), tokenize=True, return_dict=False)
    assert full[:len(prompt)] == prompt
    with torch.inference_mode():
        logits = model(torch.tensor([full])).logits[0]
    logps = logits[:-1].log_softmax(-1).gather(-1, torch.tensor(full[1:])[:, None])[:, 0]
    return logps[len(prompt) - 1:].tolist()


def load(spec: str, **options: object) -> dpo.ImplicitRewardModel:
    return load_model(spec, ModelOptions(**options))  # type: ignore[arg-type]


def test_the_response_span_is_the_response_and_its_end_of_turn(lms: dict[str, Path]) -> None:
    model = load(f"dpo:{lms['policy']},none")
    for pair in PAIRS:
        ids, start = model.encode(pair)
        assert model.tokenizer.decode(ids[start:]).endswith(pair.response + EOS)  # the whole response ...
        assert pair.response not in model.tokenizer.decode(ids[start + 1:])  # ... from its first token on
        assert "<|assistant|>" in model.tokenizer.decode(ids[:start])  # the role header is not the response


@pytest.mark.parametrize("norm", ["sum", "mean"])
def test_reward_is_beta_times_the_log_ratio_over_response_tokens(lms: dict[str, Path], norm: str) -> None:
    model = load(f"dpo:{lms['policy']},{lms['reference']},beta=0.5,norm={norm}")
    reduce = (lambda xs: sum(xs) / len(xs)) if norm == "mean" else sum
    for pair, scores in zip(PAIRS, model.score(PAIRS)):
        policy, reference = reduce(direct_logps(lms["policy"], pair)), reduce(direct_logps(lms["reference"], pair))
        assert scores["policy_logp"] == pytest.approx(policy, abs=1e-4)
        assert scores["reference_logp"] == pytest.approx(reference, abs=1e-4)
        assert scores["score"] == pytest.approx(0.5 * (policy - reference), abs=1e-4)
        assert abs(scores["score"]) > 1e-3  # the policy differs from its reference


def test_reference_free_reward_and_a_policy_against_itself(lms: dict[str, Path]) -> None:
    free = load(f"dpo:{lms['policy']},none,beta=2")
    assert free.objectives == ("policy_logp",)
    for pair, scores in zip(PAIRS, free.score(PAIRS)):
        assert scores["score"] == pytest.approx(2 * sum(direct_logps(lms["policy"], pair)), abs=1e-3)
    same = load(f"dpo:{lms['policy']},{lms['policy']}")
    assert all(s["score"] == 0.0 for s in same.score(PAIRS))


def test_without_a_template_the_plain_user_assistant_text_is_used(lms: dict[str, Path]) -> None:
    model = load(f"dpo:{lms['policy_plain']},none,span=content")
    ids, start = model.encode(PAIRS[0])
    assert model.tokenizer.decode(ids) == "<s>User: What is the capital of Australia?\n\nAssistant: Canberra is the capital."
    trl = load(f"dpo:{lms['policy_plain']},none")  # TRL appends EOS to a plain completion
    assert trl.tokenizer.decode(trl.encode(PAIRS[0])[0]) == model.tokenizer.decode(ids) + EOS
    assert model.tokenizer.decode(ids[start:]).endswith("Canberra is the capital.")
    assert "Assistant:" in model.tokenizer.decode(ids[:start]) and "plain 'User:/Assistant:'" in model.describe()


def test_span_content_skips_the_role_header_that_span_trl_counts(lms: dict[str, Path]) -> None:
    """Without a generation prompt, TRL's span starts at the assistant's role header; content at the response."""
    with_gen = load(f"dpo:{lms['policy']},{lms['reference']}").score(PAIRS)
    content = load(f"dpo:{lms['policy_no_gen']},{lms['reference']},span=content").score(PAIRS)
    trl = load(f"dpo:{lms['policy_no_gen']},{lms['reference']},span=trl").score(PAIRS)
    assert [s["score"] for s in content] == pytest.approx([s["score"] for s in with_gen], abs=1e-5)
    assert all(abs(t["score"] - c["score"]) > 1e-4 for t, c in zip(trl, content))  # the header's log-ratio
    same_prompt = [Pair("Hi", "Canberra is the capital."), Pair("Hi", "The cat answers the question.")]
    margin = lambda model: (lambda a, b: a["score"] - b["score"])(*model.score(same_prompt))  # noqa: E731
    assert margin(load(f"dpo:{lms['policy_no_gen']},{lms['reference']},span=trl")) == pytest.approx(
        margin(load(f"dpo:{lms['policy_no_gen']},{lms['reference']},span=content")), abs=1e-4)


def test_scores_do_not_depend_on_batch_mates(lms: dict[str, Path]) -> None:
    model = load(f"dpo:{lms['policy']},{lms['reference']}")
    alone = [model.score([pair])[0]["score"] for pair in PAIRS]
    assert [s["score"] for s in model.score(PAIRS[::-1])][::-1] == pytest.approx(alone, abs=1e-4)


@pytest.mark.parametrize("policy", ["policy", "policy_plain"])
def test_a_pair_is_tokenized_once_and_a_prompt_once(lms: dict[str, Path], policy: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The not-applicable check reads inputs(), then shared prefixes token_ids() and the scores: one encoding
    per pair, one per prompt; a second model keeps its own, and the ids are those of a fresh encoding."""
    model, fresh = load(f"dpo:{lms[policy]},{lms['reference']}"), load(f"dpo:{lms[policy]},{lms['reference']}")
    pairs = [Pair(PAIRS[2].prompt, f"Because {n}.") for n in range(4)] + PAIRS[:2]
    calls: list[str] = []
    tokenize = type(model.tokenizer).__call__
    monkeypatch.setattr(type(model.tokenizer), "__call__", lambda self, text, **kw: calls.append(text) or tokenize(
        self, text, **kw))
    seen = model.inputs(pairs)
    ids = model.token_ids(pairs)
    scores = model.scores_from_logps(pairs, [[[0.0] * len(i)] * 2 for i in ids])
    assert len(calls) == len(pairs) + 3 and len(scores) == len(pairs)  # 6 pairs, 3 prompts
    assert ids == [list(i) for i, _ in seen] == [fresh.encode(p)[0] for p in pairs]


def test_truncation_keeps_the_response(lms: dict[str, Path]) -> None:
    pair = Pair("The river finds the question. " * 8, "Canberra.")
    full = load(f"dpo:{lms['policy']},none")
    ids, start = full.encode(pair)
    short = load(f"dpo:{lms['policy']},none", max_length=len(ids) - 5)
    with pytest.warns(UserWarning, match="lose their first tokens"):
        cut_ids, cut_start = short.encode(pair)
    assert cut_ids == ids[5:] and cut_start == start - 5


def test_fingerprint_covers_both_models_beta_and_norm(lms: dict[str, Path]) -> None:
    base = f"dpo:{lms['policy']},{lms['reference']}"
    prints = {load(spec).fingerprint for spec in (base, base + ",beta=0.2", base + ",norm=mean",
                                                  f"dpo:{lms['policy']},none", f"dpo:{lms['reference']},{lms['policy']}")}
    assert len(prints) == 5
    assert load(base).fingerprint == load(base + ",beta=0.1").fingerprint  # the default, spelt out


@pytest.mark.parametrize("rest, message", [
    ("only-a-policy", "needs a policy and a reference"),
    ("p,r,beta=-1", "beta must be a positive number"),
    ("p,r,beta=x", "beta must be a positive number"),
    ("p,r,norm=max", "norm must be sum or mean"),
    ("p,r,temperature=2", "unknown setting 'temperature=2'"),
])
def test_bad_specs_are_one_line_errors(rest: str, message: str) -> None:
    with pytest.raises(BackendError, match=message) as info:
        dpo.parse_spec(rest)
    assert str(info.value).startswith(f"--rm: dpo:{rest}") and "\n" not in str(info.value)


def test_parse_spec_reads_reference_free_and_settings() -> None:
    assert dpo.parse_spec("a@v1, NONE ,norm=mean,beta=0.3") == dpo.DPOSpec("a@v1", None, 0.3, "mean")


def test_reference_with_another_tokenizer_is_refused(lms: dict[str, Path]) -> None:
    with pytest.raises(BackendError, match="different tokenizers"):
        load(f"dpo:{lms['policy']},{lms['other_vocab']}")


def test_implicit_and_explicit_rm_compare_within_one_run(lms: dict[str, Path], tmp_path: Path) -> None:
    """The divergence between a policy's implicit RM and an explicit RM, over the same perturbed pairs."""
    import json

    from fixtures.tiny_models import build_tiny_llama_rm
    from rmcheck.report.compare import compare_runs
    from rmcheck.engine import run_suites
    from rmcheck.results import run_document
    from tests.rundocs import SUITE

    suite = tmp_path / "v.rmcheck.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    implicit, explicit = f"dpo:{lms['policy']},{lms['reference']}", f"hf:{build_tiny_llama_rm(tmp_path / 'rm')}"
    report = run_suites([suite], [implicit, explicit], ModelOptions(), shrink_budget=5)
    assert not report.errors
    run = tmp_path / "run.json"
    run.write_text(json.dumps(run_document([r.to_json() for r in report.results], [])), encoding="utf-8")
    comparison = compare_runs([run], [implicit, explicit])
    judged = sum(c["verdict"] in ("passed", "failed") for r in report.results if r.model == implicit
                 for c in r.to_json()["cases"])
    assert comparison.divergence.cases == judged == 9
    assert 0 <= comparison.divergence.agreement <= 1 and -1 <= comparison.divergence.tau <= 1


def trl_rewards(policy: Path, reference: Path, pairs: list[Pair], beta: float) -> list[float]:
    """Rewards of ``pairs`` as TRL's DPOTrainer computes them: its own dataset tokenization, collator and
    log-probabilities, beta * (policy - reference) summed over its completion mask."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(str(policy))
    conversational = tokenizer.chat_template is not None
    rows = [{"prompt": prompt_messages(p.prompt), "chosen": [{"role": "assistant", "content": p.response}],
             "rejected": [{"role": "assistant", "content": p.response}]} if conversational else
            {"prompt": dpo_plain_prompt(p), "chosen": p.response, "rejected": p.response} for p in pairs]
    args = DPOConfig(output_dir=str(policy.parent / "trl"), beta=beta, report_to=[], max_length=None, use_cpu=True,
                     bf16=False)  # TRL turns on bf16 autocast by default; rmcheck compares in float32
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(str(policy)),
                         ref_model=AutoModelForCausalLM.from_pretrained(str(reference)), args=args,
                         train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(pairs))])
    chosen, _ = trainer.compute_ref_log_probs(trainer.model, batch)
    chosen_ref, _ = trainer.compute_ref_log_probs(trainer.ref_model, batch)
    return (beta * (chosen - chosen_ref)).tolist()


def dpo_plain_prompt(pair: Pair) -> str:
    """The prompt text of a template-less policy, as the dpo: backend writes it."""
    from rmcheck.backends.base import prompt_to_text

    return prompt_to_text(tuple((m["role"], m["content"]) for m in prompt_messages(pair.prompt))) + "\n\nAssistant: "


@pytest.mark.parametrize("policy", ["policy", "policy_no_gen", "policy_plain"])
def test_span_trl_is_trls_own_reward(lms: dict[str, Path], policy: str) -> None:
    """The default span against TRL's DPOTrainer itself, with and without a generation prompt or a template."""
    pytest.importorskip("trl", reason="TRL's reward computation is the reference (pip install trl)")
    model = load(f"dpo:{lms[policy]},{lms['reference']},beta=0.1")
    expected = trl_rewards(lms[policy], lms["reference"], PAIRS, 0.1)
    assert [s["score"] for s in model.score(PAIRS)] == pytest.approx(expected, abs=1e-5)
    content = [s["score"] for s in load(f"dpo:{lms[policy]},{lms['reference']},beta=0.1,span=content").score(PAIRS)]
    if policy == "policy_no_gen":  # TRL counts the role header: span=content differs from TRL, as documented
        assert max(abs(a - b) for a, b in zip(content, expected)) > 1e-3
