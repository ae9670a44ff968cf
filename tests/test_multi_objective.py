"""Multi-objective RMs: ArmoRM-style gated heads from a model's own code, `objective:`, --list-objectives."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from fixtures.tiny_models import build_tiny_llama_rm, import_code, train_tokenizer  # noqa: E402
from rmcheck.backends import hf  # noqa: E402
from rmcheck.backends.base import ModelOptions, Pair, load_model  # noqa: E402
from rmcheck.cli import main  # noqa: E402
from rmcheck.engine import run_suites  # noqa: E402
from rmcheck.errors import BackendError  # noqa: E402

OBJECTIVES = ["helpfulness", "safety", "verbosity"]

#: A tiny ArmoRM look-alike: per-objective rewards from the last token, a softmax gate from the first
#: token, and the gated sum as the score (the output fields ArmoRM's own code returns).
MODELING = '''
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers import LlamaModel, LlamaPreTrainedModel
from transformers.utils import ModelOutput


@dataclass
class GatedOutput(ModelOutput):
    rewards: Optional[torch.FloatTensor] = None
    gating_output: Optional[torch.FloatTensor] = None
    score: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None


class TinyGatedRM(LlamaPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        self.regression_layer = nn.Linear(config.hidden_size, config.num_objectives, bias=False)
        self.gating = nn.Linear(config.hidden_size, config.num_objectives)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        hidden = self.model(input_ids, attention_mask=attention_mask).last_hidden_state
        last = (torch.eq(input_ids, self.config.pad_token_id).int().argmax(-1) - 1) % input_ids.shape[-1]
        rewards = self.regression_layer(hidden[torch.arange(len(input_ids)), last])
        gate = torch.softmax(self.gating(hidden[:, 0]), dim=-1)
        score = (gate * rewards).sum(dim=1, keepdim=True)
        return GatedOutput(rewards=rewards, gating_output=gate, score=score, logits=score)
'''

PAIRS = [
    Pair("What is the capital of Australia?", "Canberra."),
    Pair("Hi", "The cat answers the question. " * 4),
    Pair((("user", "Hi"), ("assistant", "Hello."), ("user", "Why?")), "Because."),
]


def build_gated_rm(out: Path, names: list[str] | None = OBJECTIVES, seed: int = 0) -> Path:
    """Save the tiny gated RM with its modeling file and an ``auto_map``, as a hub repo with custom code is."""
    from transformers import LlamaConfig

    out.mkdir(parents=True)
    (out / "modeling_tiny_gated.py").write_text(MODELING, encoding="utf-8")
    module = import_code(out / "modeling_tiny_gated.py")
    tokenizer = train_tokenizer(out)
    extra = {"objective_names": names} if names else {}
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256,
                         pad_token_id=tokenizer.pad_token_id, num_objectives=len(OBJECTIVES), initializer_range=0.2,
                         auto_map={"AutoModelForSequenceClassification": "modeling_tiny_gated.TinyGatedRM"}, **extra)
    torch.manual_seed(seed)
    module.TinyGatedRM(config).save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_gated_rm(tmp_path_factory.mktemp("gated") / "rm")


def load(path: Path, **options: object) -> hf.HFRewardModel:
    return load_model(f"hf:{path}", ModelOptions(trust_remote_code=True, **options))  # type: ignore[arg-type]


def test_gated_model_scores_each_head_and_its_gated_score(gated: Path) -> None:
    model = load(gated)
    assert model.objectives == tuple(OBJECTIVES)
    scores = model.score(PAIRS)
    for pair, got in zip(PAIRS, scores):
        assert set(got) == {*OBJECTIVES, "score"}
        row, _ = model.encode(pair)
        with torch.inference_mode():
            direct = model.model(input_ids=torch.tensor([row["input_ids"]]))
        assert [got[name] for name in OBJECTIVES] == pytest.approx(direct.rewards[0].tolist(), abs=1e-5)
        assert got["score"] == pytest.approx(direct.score.item(), abs=1e-5)
        # the overall score is the gated one, not the mean of the heads
        assert got["score"] != pytest.approx(sum(got[name] for name in OBJECTIVES) / 3, abs=1e-4)
    assert model.score(PAIRS[::-1])[::-1] == [pytest.approx(s, abs=1e-4) for s in scores]  # batch-independent


def test_custom_code_needs_the_explicit_opt_in(gated: Path) -> None:
    with pytest.raises(BackendError, match="ships its own model code.*--trust-remote-code"):
        load_model(f"hf:{gated}", ModelOptions())


def test_the_model_code_is_part_of_the_fingerprint(tmp_path: Path, gated: Path) -> None:
    copy = Path(shutil.copytree(gated, tmp_path / "copy"))
    before = load(copy).fingerprint
    modeling = copy / "modeling_tiny_gated.py"
    modeling.write_text(modeling.read_text() + "\n# edited\n", encoding="utf-8")
    assert load(copy).fingerprint != before


def test_objective_names_come_from_the_config_or_armorm_or_positions() -> None:
    assert hf.gated_objective_names(SimpleNamespace(num_objectives=2, objective_names=["a", "b"],
                                                    architectures=None)) == ("a", "b")
    armo = SimpleNamespace(num_objectives=19, architectures=["LlamaForRewardModelWithGating"])
    assert hf.gated_objective_names(armo)[4] == "helpsteer-verbosity"
    assert hf.gated_objective_names(SimpleNamespace(num_objectives=2, architectures=["X"])) == (
        "objective_0", "objective_1")


def test_output_without_rewards_is_one_clear_error(tmp_path: Path) -> None:
    path = build_tiny_llama_rm(tmp_path / "plain")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "num_objectives": 2}), encoding="utf-8")
    with pytest.raises(BackendError, match="no 'rewards' of shape"):
        load(path).score(PAIRS)


SUITE = """\
rmcheck: 1
suite: heads
cases:
  - id: capital
    prompt: What is the capital of Australia?
    response: Canberra is the capital of Australia. It was chosen as a compromise.
tests:
  - name: padding-on-the-safety-head
    attribute: verbosity
    objective: safety
    perturb: {op: pad_with_filler, n: 2}
    expect: invariant
    tolerance: 1000
  - name: no-such-head
    objective: honesty
    perturb: {op: pad_with_filler, n: 2}
    expect: invariant
"""


def test_objective_selects_one_gated_head(tmp_path: Path, gated: Path) -> None:
    suite = tmp_path / "heads.rmcheck.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    spec = f"hf:{gated}"
    report = run_suites([suite], [spec], ModelOptions(trust_remote_code=True))
    (result,) = report.results
    (case,) = result.cases
    memo = report.engine.scorer(spec).memo
    prompt = "What is the capital of Australia?"
    original = memo[Pair(prompt, "Canberra is the capital of Australia. It was chosen as a compromise.")]
    (perturbed,) = [s for s in memo.values() if s is not original]
    assert case.delta == pytest.approx(perturbed["safety"] - original["safety"])
    assert case.delta != pytest.approx(perturbed["score"] - original["score"])
    ((_, error),) = report.errors
    assert "no objective 'honesty'" in str(error) and "helpfulness, safety, verbosity" in str(error)


def test_list_objectives_shows_heads_and_runs_nothing(tmp_path: Path, gated: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dict_rm.py").write_text(
        "def score(prompts, responses):\n    return [{'honesty': 1.0, 'brevity': -len(r)} for r in responses]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["run", "--list-objectives", "--trust-remote-code", "--rm", f"hf:{gated}", "--rm", "python:dict_rm:score"])
    out = capsys.readouterr().out
    assert code == 0
    lines = [line.strip() for line in out.splitlines()]
    heads = lines[lines.index(next(l for l in lines if l.startswith(f"hf:{gated}"))) + 1:][:4]
    assert heads == ["score  (overall; the default)", *OBJECTIVES]
    assert "honesty" in lines and "brevity" in lines
    assert not (tmp_path / ".rmcheck").exists()  # no suite ran, no run document written
