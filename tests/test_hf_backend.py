"""The hf: backend, on tiny models built from scratch in the session (no download)."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from statistics import mean
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from fixtures.tiny_models import BOS, EOS, build_tiny_bert_rm, build_tiny_llama_rm  # noqa: E402
from rmcheck.backends import hf  # noqa: E402  (registers hf:)
from rmcheck.backends.base import ModelOptions, Pair, load_model  # noqa: E402
from rmcheck.errors import BackendError  # noqa: E402

LABELS = {0: "helpfulness", 1: "safety", 2: "verbosity"}
PAIRS = [
    Pair("What is the capital of Australia?", "Canberra."),
    Pair("Hi", "The cat answers the question. " * 6),
    Pair(f"Say {EOS} twice", f"A doctor{EOS} helps{EOS}"),  # the EOS text inside the conversation
    Pair((("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello."), ("user", "Why?")), "Because."),
]


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_rms")
    return {
        "llama": build_tiny_llama_rm(root / "llama"),
        "llama_pad_eos": build_tiny_llama_rm(root / "llama_pad_eos", pad_token=EOS),
        "llama_no_pad": build_tiny_llama_rm(root / "llama_no_pad", pad_token=None),
        "bert": build_tiny_bert_rm(root / "bert"),
        "multi": build_tiny_llama_rm(root / "multi", id2label=LABELS),
    }


def load(path: Path | str, **options: Any) -> hf.HFRewardModel:
    return load_model(f"hf:{path}", ModelOptions(**options))


def overall(model: hf.HFRewardModel, pairs: list[Pair]) -> list[float]:
    return [scores["score"] for scores in model.score(pairs)]


def test_scores_are_plain_floats_and_deterministic(models: dict[str, Path]) -> None:
    model = load(models["llama"])
    first, second = model.score(PAIRS), model.score(PAIRS)
    assert first == second
    assert all(set(scores) == {"score"} and type(scores["score"]) is float for scores in first)
    assert len({round(scores["score"], 6) for scores in first}) == len(PAIRS)
    assert model.objectives == ()
    assert model.score([]) == []


@pytest.mark.parametrize("name", ["llama", "llama_pad_eos", "llama_no_pad", "bert"])
def test_score_does_not_depend_on_batch_mates_or_position(models: dict[str, Path], name: str) -> None:
    model = load(models[name])
    assert len({len(model.encode(pair)[0]["input_ids"]) for pair in PAIRS}) == len(PAIRS)  # padding happens
    alone = [overall(model, [pair])[0] for pair in PAIRS]
    assert overall(model, PAIRS) == pytest.approx(alone, abs=1e-4)
    assert overall(model, PAIRS[::-1])[::-1] == pytest.approx(alone, abs=1e-4)
    assert overall(model, [PAIRS[1], PAIRS[0]])[1] == pytest.approx(alone[0], abs=1e-4)


def test_model_without_pad_token_pools_its_last_token(models: dict[str, Path]) -> None:
    """Same weights; every text ends with EOS. Padding with EOS would pool the token before it."""
    with_pad = overall(load(models["llama"]), PAIRS)
    assert overall(load(models["llama_no_pad"]), PAIRS) == pytest.approx(with_pad, abs=1e-5)
    assert overall(load(models["llama_pad_eos"]), PAIRS) != pytest.approx(with_pad, abs=1e-5)


def test_labels_are_named_objectives_and_score_is_their_mean(models: dict[str, Path]) -> None:
    model = load(models["multi"])
    assert model.objectives == tuple(LABELS.values())
    for scores in model.score(PAIRS):
        assert set(scores) == {*LABELS.values(), "score"}
        assert scores["score"] == pytest.approx(mean(scores[label] for label in LABELS.values()))
    assert "objectives: helpfulness, safety, verbosity" in model.describe()


def test_chat_template_is_applied_with_a_single_bos(models: dict[str, Path]) -> None:
    model = load(models["llama"])
    assert model.render(PAIRS[0]) == (f"{BOS}<|user|>\nWhat is the capital of Australia?{EOS}"
                                      f"<|assistant|>\nCanberra.{EOS}")
    ids = model.encode(PAIRS[0])[0]["input_ids"]
    bos_id = model.tokenizer.bos_token_id
    assert ids[0] == bos_id and ids[1] != bos_id
    description = model.describe()
    assert description.startswith(f"hf:{models['llama']} (LlamaForSequenceClassification)")
    assert "template: tokenizer chat_template (sha256 " in description
    for part in ("revision: local", "device: cpu", "dtype: float32", "max length: 512"):
        assert part in description


def test_tokenizer_without_template_falls_back_to_plain_text_and_says_so(models: dict[str, Path]) -> None:
    model = load(models["bert"])
    assert model.render(PAIRS[0]) == "User: What is the capital of Australia?\n\nAssistant: Canberra."
    assert "template: none in tokenizer, plain 'User:/Assistant:' fallback" in model.describe()


def test_truncation_cuts_the_prompt_from_the_left_and_warns_once(models: dict[str, Path]) -> None:
    long = Pair("The cat answers the question. " * 6, "Canberra.")
    short = len(load(models["llama"]).encode(PAIRS[0])[0]["input_ids"])
    model = load(models["llama"], max_length=short)
    with pytest.warns(UserWarning, match=rf"1 of 2 pairs are longer than max length {short} and were truncated: "
                                         r"their prompts lost \d+ tokens at most, from the left"):
        model.score([PAIRS[0], long])
    inputs, cut = model.encode(long)
    full = load(models["llama"]).encode(long)[0]["input_ids"]
    assert cut == len(full) - short and inputs["input_ids"] == full[:1] + full[1 + cut:]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.score([PAIRS[0], long])
    with pytest.raises(hf.ResponseTooLong, match=rf"more than the max length {short}.*never cuts a response"):
        model.score([PAIRS[1]])


def test_fingerprint_tracks_weights_template_dtype_and_max_length(tmp_path: Path) -> None:
    path = build_tiny_llama_rm(tmp_path / "rm", seed=0)
    base = load(path).fingerprint
    assert load(path).fingerprint == base
    assert load(path, dtype="bfloat16").fingerprint != base
    assert load(path, max_length=64).fingerprint != base
    build_tiny_llama_rm(path, seed=1)
    reseeded = load(path).fingerprint
    assert reseeded != base
    template = path / "chat_template.jinja"
    template.write_text(template.read_text() + "\n")
    assert load(path).fingerprint != reseeded


def test_missing_directory_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    with pytest.raises(BackendError, match=f"no such model directory '{missing}'"):
        load(missing)


@pytest.mark.parametrize("options, message", [
    ({"dtype": "float8"}, "unknown dtype 'float8'"),
    ({"device": "gpu"}, "unknown device 'gpu'"),
    pytest.param({"device": "cuda"}, "torch sees no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")),
])
def test_bad_options_are_clear_errors(models: dict[str, Path], options: dict[str, str], message: str) -> None:
    with pytest.raises(BackendError, match=message):
        load(models["llama"], **options)


class LoadRecorder:
    """Records rmcheck's from_pretrained calls (not those transformers makes inside them); names in ``redirect``
    load from a local directory instead."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.redirect: dict[str, Path] = {}
        self.depth = 0

    def wrap(self, original: Any) -> Any:
        def from_pretrained(name: str, **kwargs: Any) -> Any:
            if not self.depth:
                self.calls.append({"name": name, **kwargs})
            if name in self.redirect:
                name, kwargs = self.redirect[name], {**kwargs, "revision": None}
            self.depth += 1
            try:
                return original(name, **kwargs)
            finally:
                self.depth -= 1

        return from_pretrained


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> LoadRecorder:
    recorder = LoadRecorder()
    for auto in (transformers.AutoConfig, transformers.AutoTokenizer, transformers.AutoModelForSequenceClassification):
        monkeypatch.setattr(auto, "from_pretrained", recorder.wrap(auto.from_pretrained))
    return recorder


def test_trust_remote_code_is_off_unless_asked(models: dict[str, Path], loads: LoadRecorder) -> None:
    load(models["llama"])
    assert [call["trust_remote_code"] for call in loads.calls] == [False] * 3  # config, tokenizer, model
    load(models["llama"], trust_remote_code=True)
    assert [call["trust_remote_code"] for call in loads.calls[3:]] == [True] * 3


def test_model_with_custom_code_is_refused_clearly(models: dict[str, Path], tmp_path: Path) -> None:
    shutil.copytree(models["llama"], tmp_path / "custom")
    (tmp_path / "custom" / "config.json").write_text(
        '{"model_type": "rmcheck_custom", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig",'
        ' "AutoModelForSequenceClassification": "modeling_custom.CustomRM"}}')
    with pytest.raises(BackendError, match="custom code.*enable trust_remote_code"):
        load(tmp_path / "custom")


def test_revision_suffix_is_parsed_and_resolved_to_a_commit(
        models: dict[str, Path], loads: LoadRecorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--rmcheck--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "v1").write_text(commit)
    shutil.copytree(models["llama"], repo / "snapshots" / commit)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    loads.redirect["rmcheck/tiny"] = repo / "snapshots" / commit

    model = load_model("hf:rmcheck/tiny@v1")
    assert [(call["name"], call["revision"]) for call in loads.calls] == [("rmcheck/tiny", "v1")] * 3
    assert model.spec == "hf:rmcheck/tiny@v1"
    assert f"revision: {commit}" in model.describe()


@pytest.mark.parametrize("rest, expected", [("org/name", ("org/name", None)),
                                            ("org/name@v1.2", ("org/name", "v1.2")),
                                            ("org/name@refs/pr/1", ("org/name", "refs/pr/1"))])
def test_parse_spec(rest: str, expected: tuple[str, str | None]) -> None:
    assert hf.parse_spec(rest) == expected


def test_existing_path_with_at_sign_is_not_split(tmp_path: Path) -> None:
    (tmp_path / "rm@v2").mkdir()
    assert hf.parse_spec(str(tmp_path / "rm@v2")) == (str(tmp_path / "rm@v2"), None)
