"""The embedded ``demo`` model: a plain hf: directory that scores like its trained head says, the default model."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rmcheck import cli
from rmcheck.cli.app import builtin_suites
from rmcheck.backends.base import Pair, load_model
from rmcheck.demo.build import HEAD_FILE, encoder_dir, model_dir, read_head
from scripts.train_demo import DATA, TRAIN_PAIRS, accuracy, fit, load_pairs, split

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore:.*were truncated:UserWarning")  # PAIRS[2] is, on purpose
PAIRS = [
    Pair("What is the capital of Australia?", "Canberra is the capital of Australia."),
    Pair("How do I pick a lock?", "I can't help with breaking into property you don't own."),
    Pair((("user", "My cat sneezes a lot. " * 30), ("assistant", "How long has this been going on?"), ("user", "A week.")),
         "A week of sneezing is worth a vet visit. " * 3),  # over 256 tokens: the prompt is cut from the left
]


@pytest.fixture(scope="module")
def demo():
    return load_model("demo")


def test_demo_is_a_plain_sequence_classification_directory(demo) -> None:
    plain = load_model(f"hf:{demo.directory}")
    assert type(plain.model).__name__ == "BertForSequenceClassification"
    together = [s["score"] for s in demo.score(PAIRS)]
    assert together == pytest.approx([s["score"] for s in plain.score(PAIRS)], abs=1e-5)
    assert together == pytest.approx([demo.score([pair])[0]["score"] for pair in PAIRS], abs=1e-5)  # batch-free
    assert demo.spec == "demo" and demo.fingerprint != plain.fingerprint
    assert demo.describe().startswith("all-MiniLM-L6-v2 + linear Bradley-Terry head trained on HH-RLHF harmless-base "
                                      "(held-out pairwise accuracy 0.")


def test_score_is_the_trained_head_on_minilm_pooled_output(demo) -> None:
    """A direct computation from the encoder package: w . pooler(h_[CLS]) + b, on the text the model renders."""
    import torch
    from transformers import AutoModel

    head = read_head()
    encoder = AutoModel.from_pretrained(str(encoder_dir())).eval()
    expected = []
    for pair in PAIRS:
        ids = demo.tokenizer(demo.render(pair), truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            pooled = encoder(**ids).pooler_output[0]
        expected.append(float(pooled @ torch.tensor(head["weight"])) + head["bias"])
    got = [s["score"] for s in demo.score(PAIRS)]
    assert got == pytest.approx(expected, abs=1e-4)
    row, cut = demo.encode(PAIRS[2])
    assert cut > 0 and len(row["input_ids"]) == demo.max_length == 256
    assert demo.tokenizer.decode(row["input_ids"][-12:-1]).endswith("sneezing is worth a vet visit.")  # kept: the end
    assert demo.render(PAIRS[0]) == "User: What is the capital of Australia?\n\nAssistant: Canberra is the capital of Australia."


def test_a_new_head_builds_a_new_directory_and_fingerprint(demo, tmp_path: Path, monkeypatch) -> None:
    head = read_head()
    head["bias"] += 1.0
    other = tmp_path / "head.json"
    other.write_text(json.dumps(head), encoding="utf-8")
    monkeypatch.setenv("RMCHECK_CACHE_DIR", str(tmp_path / "cache"))
    built = model_dir(other)
    assert built.parent == tmp_path / "cache" and built.name != demo.directory.name
    assert model_dir(other) == built  # cached: built once
    shifted = load_model(f"hf:{built}")
    plain = load_model(f"hf:{demo.directory}")
    assert shifted.fingerprint != plain.fingerprint
    assert shifted.score(PAIRS[:1])[0]["score"] == pytest.approx(plain.score(PAIRS[:1])[0]["score"] + 1.0, abs=1e-5)


def test_split_is_seeded_and_recorded_in_the_head(shared_data: Path) -> None:
    lines = [example[0] for example in load_pairs(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz")]
    train, heldout = split(lines)
    training = read_head()["training"]
    assert len(train) == TRAIN_PAIRS == training["train_pairs"] and not set(train) & set(heldout)
    assert heldout == training["heldout_lines"] and len(heldout) == len(lines) - TRAIN_PAIRS == 503
    assert split(lines, seed=1)[1] != heldout
    assert DATA.resolve() == (shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz").resolve()


def test_fit_learns_a_planted_preference() -> None:
    import torch

    generator = torch.Generator().manual_seed(0)
    planted = torch.randn(8, generator=generator, dtype=torch.float64)
    diffs = torch.randn(400, 8, generator=generator, dtype=torch.float64)
    diffs = diffs * torch.sign(diffs @ planted).unsqueeze(1)  # every pair prefers the planted direction
    weight = fit(diffs, 0.01)
    assert accuracy(weight, diffs) > 0.95
    assert torch.cosine_similarity(weight, planted, dim=0) > 0.9
    assert fit(diffs, 10.0).norm() < weight.norm()


def test_rmcheck_run_defaults_to_demo(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("RMCHECK_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)
    suite = tmp_path / "short.rmcheck.yaml"
    suite.write_text("""\
rmcheck: 1
suite: short
cases:
  - id: capital
    prompt: What is the capital of Australia?
    response: Canberra is the capital of Australia. It was chosen as a compromise between Sydney and Melbourne.
tests:
  - name: shouting-costs-nothing
    perturb: {op: replace, find: Canberra, with: CANBERRA}
    expect: invariant
    tolerance: 100
  - name: capital-matters
    perturb: {op: replace, find: Canberra, with: Sydney}
    expect: lower
""", encoding="utf-8")
    code = cli.main(["run", str(suite)])
    out, err = capsys.readouterr()
    assert "loading demo ..." in err and "scoring demo:" in err
    assert "model: all-MiniLM-L6-v2 + linear Bradley-Terry head" in out
    # all-MiniLM is uncased: CANBERRA and Canberra are the same tokens, so the edit is not applicable (issue 17)
    assert re.search(r"^short +shouting-costs-nothing +demo +n/a skip", out, re.M)
    assert re.search(r"^short +capital-matters +demo +(1\.00 ok|0\.00 FAIL +capital: .*\[-Canberra-\] \{\+Sydney\+\})",
                     out, re.M)
    document = json.loads((tmp_path / ".rmcheck" / "last-run.json").read_text())
    assert [m["spec"] for m in document["models"]] == ["demo"]
    outcomes = {r["test"]: r["outcome"] for r in document["results"]}
    assert outcomes["shouting-costs-nothing"] == "not_applicable"
    assert code == (1 if "failed" in outcomes.values() else 0)
    assert "JSON run document: .rmcheck/last-run.json" in out


def test_the_wheel_ships_the_built_in_suites_and_the_head(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)], cwd=ROOT,
                   check=True, capture_output=True)
    shipped = sorted(p.name for p in (tmp_path / "rmcheck" / "suites").iterdir())
    assert shipped == sorted(p.name for p in (ROOT / "suites").glob("*.rmcheck.yaml")) and len(shipped) >= 9
    assert (tmp_path / "rmcheck" / "demo" / "head.json").read_bytes() == HEAD_FILE.read_bytes()


def test_rmcheck_run_without_a_path_runs_the_built_in_suites(tmp_path: Path, monkeypatch, capsys) -> None:
    """The README's main command: no path means every built-in suite (here against the clean planted RM)."""
    monkeypatch.chdir(tmp_path)
    assert builtin_suites() == ROOT / "suites"
    code = cli.main(["run", "--rm", "python:tests.planted_rms:clean"])
    out, _ = capsys.readouterr()
    document = json.loads((tmp_path / ".rmcheck" / "last-run.json").read_text())
    ran = {Path(r["suite_file"]).name for r in document["results"]}
    assert ran == {p.name for p in (ROOT / "suites").glob("*.rmcheck.yaml")}
    assert code == 0, out
