"""Shared-prefix scoring: the plan, equality with full passes, the probe's fallback, and the option."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from fixtures.tiny_models import (CHAT_TEMPLATE, EOS, build_tiny_bert_rm, build_tiny_llama_rm,  # noqa: E402
                                  build_tiny_lm, build_tiny_mistral_rm, build_tiny_qwen_rm)
from rmcheck.backends.base import ModelOptions, Pair, load_model  # noqa: E402
from rmcheck.cli.app import main  # noqa: E402
from rmcheck.engine import run_suites  # noqa: E402
from rmcheck.scoring import Scorer, kv, prefix  # noqa: E402
from rmcheck.scoring.cache import ScoreCache  # noqa: E402
from rmcheck.scoring.kv import Decoder, tolerance  # noqa: E402

BUILTIN = Path(__file__).resolve().parent.parent / "suites"
#: Two built-in suites: appended filler and truncation (long shared heads), flattery and refusals (prepended).
SUITES = ("verbosity", "sycophancy")
CONVERSATION = (("user", "The cat explains the question. " * 30), ("assistant", "A doctor answers two numbers."),
                ("user", "My neighbour finds a long story?"))
RESPONSE = "The assistant helps with the capital of Australia. Every student writes about the weather today."


@pytest.fixture(scope="session")
def rms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("prefix_rms")
    return {
        "llama-right": build_tiny_llama_rm(root / "llama-right"),
        "llama-left": build_tiny_llama_rm(root / "llama-left", padding_side="left"),
        "qwen-right": build_tiny_qwen_rm(root / "qwen-right"),
        "qwen-left": build_tiny_qwen_rm(root / "qwen-left", padding_side="left"),
        "llama-pad-eos": build_tiny_llama_rm(root / "llama-pad-eos", pad_token=EOS),
        "bert": build_tiny_bert_rm(root / "bert"),
    }


@pytest.fixture(scope="session")
def lms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``dpo:`` policies (seed 1) and references (seed 2): Llama with and without a generation prompt, Qwen2
    (grouped KV heads, q/k/v biases) with a tokenizer that says it pads on the left."""
    root = tmp_path_factory.mktemp("prefix_lms")
    return {"llama": build_tiny_lm(root / "llama", 1, positions=512),
            "llama-no-gen": build_tiny_lm(root / "llama-no-gen", 1, template=CHAT_TEMPLATE, positions=512),
            "llama-ref": build_tiny_lm(root / "llama-ref", 2, positions=512),
            "qwen": build_tiny_lm(root / "qwen", 1, family="qwen", padding_side="left", positions=512),
            "qwen-ref": build_tiny_lm(root / "qwen-ref", 2, family="qwen", padding_side="left", positions=512)}


def dpo_spec(lms: dict[str, Path], policy: str, span: str = "trl") -> str:
    return f"dpo:{lms[policy]},{lms[policy.split('-')[0] + '-ref']},beta=0.5,span={span}"


@pytest.fixture
def share_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """Group every pair that shares any prefix, so that the built-in suites' short prompts go through it."""
    monkeypatch.setattr(prefix, "MIN_GAIN", 1)
    monkeypatch.setattr(prefix, "MIN_PREFIX", 1)


def related_pairs() -> list[Pair]:
    """A conversation's pairs as a suite makes them: the original, cut, extended, prepended, and another prompt."""
    cuts = [Pair(CONVERSATION, RESPONSE[:n]) for n in range(12, len(RESPONSE), 9)]
    return [Pair(CONVERSATION, RESPONSE), *cuts, Pair(CONVERSATION, RESPONSE + " Our team ignores it."),
            Pair(CONVERSATION, "Sure! " + RESPONSE), Pair("Hi", "Hello.")]


# -- the plan --------------------------------------------------------------------------------------


def test_plan_nests_groups_and_scores_every_sequence_once() -> None:
    prompt, head = list(range(100, 140)), list(range(1, 11))
    seqs = [prompt + head + [20, 21], prompt + head + [22], prompt + head + [23], prompt + [8], [5, 6, 7],
            prompt[:10] + [0]]
    alone, groups = prefix.plan(seqs, min_gain=16, min_prefix=16)
    assert sorted(alone + [i for g in groups for i in g.sequences()]) == list(range(len(seqs)))
    assert sorted(alone) == [4, 5]  # another prompt; a 10-token prefix is too short to be worth a group
    (group,) = groups
    assert group.tokens == tuple(prompt)  # the prompt runs once ...
    assert group.members == [3] and len(group.children) == 1  # ... and the response head once more
    (child,) = group.children
    assert child.start == len(prompt) and child.tokens == tuple(head) and sorted(child.members) == [0, 1, 2]
    for g in (group, child):
        assert all(len(seqs[i]) > g.end for i in g.sequences())  # each keeps a token of its own


def test_a_sequence_that_is_a_prefix_of_another_keeps_its_last_token() -> None:
    seqs = [list(range(50)), list(range(60))]
    _, (group,) = prefix.plan(seqs, min_gain=1, min_prefix=1)
    assert group.tokens == tuple(range(49)) and sorted(group.members) == [0, 1]


def test_a_head_stated_once_plans_as_the_whole_sequences() -> None:
    """A sweep states the template prefix once (``Seqs``): the plan is the one over the whole sequences, a tail of
    its own included (a sequence that is the head alone keeps the head's last token)."""
    head = tuple(range(100, 170))
    tails = [(1, 2, 3), (1, 2, 4), (5,), (1, 2, 3, 9), (6, 7), (), *((8, i) for i in range(20))]

    def shape(groups: list[prefix.Group]) -> list[Any]:
        return [(g.start, g.tokens, sorted(g.members), shape(g.children)) for g in groups]

    for gain, least in ((1, 1), (16, 64), (16, 80)):
        alone, groups = prefix.plan(prefix.Seqs(head, tails), gain, least)
        whole_alone, whole_groups = prefix.plan([list(head + t) for t in tails], gain, least)
        assert sorted(alone) == sorted(whole_alone) and shape(groups) == shape(whole_groups)
        assert sorted(alone + [i for g in groups for i in g.sequences()]) == list(range(len(tails)))


def test_the_score_depends_on_tokens_up_to_the_pooled_one() -> None:
    assert prefix.pooled_end([1, 2, 3, 0, 0], pad=0) == 3
    assert prefix.pooled_end([1, 2, 3], pad=None) == 3
    assert prefix.pooled_end([0, 0], pad=0) == 1


# -- equality with full passes ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["llama-right", "qwen-left"])
def test_one_pass_over_rows_with_unequal_prefixes_equals_full_passes(rms: dict[str, Path], name: str) -> None:
    """Rows continuing prefixes of 3, 9 and 14 tokens, and one with none, in one pass (the shorter prefixes padded);
    then one prefix's members packed into rows of their own: each suffix's head equals a full pass over it."""
    model = load_model(f"hf:{rms[name]}")
    decoder = Decoder(model.model, model.device)
    tokens = list(range(5, 40))
    heads, pasts = (3, 9, 14), []
    with torch.inference_mode():
        pasts = decoder.rows([kv.Row(None, (tuple(tokens[:n]),)) for n in heads], keep=True)
        assert [p.length for p in pasts] == list(heads)
        rows = [kv.Row(pasts[0], (tuple(tokens[3:7]), tuple(tokens[3:5]))), kv.Row(pasts[2], (tuple(tokens[14:20]),)),
                kv.Row(None, (tuple(tokens[:2]),)), kv.Row(pasts[1], (tuple(tokens[9:10]),))]
        members = [kv.Row(pasts[1], (tuple(tokens[9:12]), tuple(tokens[9:16]))), kv.Row(pasts[1], (tuple(tokens[9:11]),))]
        got = [*decoder.rows(rows)[:, 0].tolist(), *decoder.rows(members)[:, 0].tolist()]
        wholes = [tokens[:7], tokens[:5], tokens[:20], tokens[:2], tokens[:10], tokens[:12], tokens[:16], tokens[:11]]
        want = [model.model(input_ids=torch.tensor([w])).logits[0, 0].item() for w in wholes]
    assert max(abs(a - b) for a, b in zip(got, want)) <= 1e-4


@pytest.mark.parametrize("name", ["llama-right", "qwen-left", "llama-pad-eos"])
def test_shared_scores_equal_full_passes(rms: dict[str, Path], name: str) -> None:
    model = load_model(f"hf:{rms[name]}")
    pairs = related_pairs()
    shared, full = Scorer(model), Scorer(model, prefix_sharing=False)
    got, want = shared.score(pairs), full.score(pairs)
    assert max(abs(got[p]["score"] - want[p]["score"]) for p in pairs) <= 1e-4
    assert shared.path.startswith("shared prefixes") and "probe of 8 pairs matched" in shared.path
    assert shared.stats.shared_pairs == len(pairs) - 1  # all but the other prompt's pair
    assert shared.stats.computed_tokens * 3 < shared.stats.tokens == full.stats.computed_tokens
    assert full.path == prefix.NO_SHARING and "path: full forward passes" in full.describe()


@pytest.mark.parametrize(("family", "settings", "window"), [
    ("Llama", {}, None), ("Mistral", {"sliding_window": 4096}, 4096), ("Mistral", {"sliding_window": None}, None),
    ("Qwen2", {"use_sliding_window": False, "sliding_window": 4096}, None), ("Gemma2", {"sliding_window": 4096}, 4096),
])
def test_the_attention_window_is_read_from_the_config(family: str, settings: dict[str, Any], window: int | None) -> None:
    import transformers

    config = getattr(transformers, f"{family}Config")(**settings)
    assert prefix.attention_window(config) == window


def test_sequences_beyond_a_sliding_window_take_full_passes(tmp_path: Path, share_everything: None) -> None:
    """A Mistral RM attends to its last 24 tokens only; a packed pass attends to the whole prefix. Sequences
    within the window share prefixes, longer ones are scored by full passes, and every score equals a full
    pass's (the probe is skipped: it may happen to pick only short pairs)."""
    model = load_model(f"hf:{build_tiny_mistral_rm(tmp_path / 'mistral', sliding_window=24)}")
    sharing = prefix.PrefixSharing.of(model)
    assert sharing is not None and sharing.reader.window == 24
    sharing.active = True
    words = "The cat explains the question to every student today".split()
    pairs = [Pair("Hi", " ".join(words[:n])) for n in range(2, len(words) + 1)]
    pairs += [Pair("Hi", " ".join(words * 3)[:n]) for n in (90, 120, 150)]
    ids = sharing.ids(pairs)
    alone, groups, heads, sharers = sharing.split(ids)
    long = {i for i, s in enumerate(ids) if len(sharing.reader.relevant(s)) > 24}
    assert long and long <= set(alone) and groups  # the short ones share the prompt, the long ones do not
    got = {i: out for indices, outputs in sharing.score(groups, heads, prefix.Work())
           for h, out in zip(indices, outputs) for i in sharers[h]}
    shared = dict(zip(got, sharing.scores([pairs[i] for i in got], list(got.values()))))
    want = Scorer(model, prefix_sharing=False).score(pairs)
    assert set(shared) | set(alone) == set(range(len(pairs)))
    assert max(abs(shared[i]["score"] - want[pairs[i]]["score"]) for i in shared) <= 1e-4
    scorer = Scorer(model)  # with its probe
    assert max(abs(scorer.score(pairs)[p]["score"] - want[p]["score"]) for p in pairs) <= 1e-4
    assert scorer.path.startswith("shared prefixes") and "24-token attention window take full passes" in scorer.path


@pytest.mark.parametrize("name", ["llama-right", "llama-left", "qwen-right", "qwen-left", "dpo llama", "dpo qwen"])
def test_builtin_suites_give_equal_verdicts_and_minimal_pairs(rms: dict[str, Path], lms: dict[str, Path], name: str,
                                                              share_everything: None) -> None:
    paths = [BUILTIN / f"{suite}.rmcheck.yaml" for suite in SUITES]
    spec = dpo_spec(lms, name.split()[1]) if name.startswith("dpo") else f"hf:{rms[name]}"
    runs = {on: run_suites(paths, [spec], ModelOptions(prefix_sharing=on)) for on in (True, False)}
    shared, full = (runs[on].engine.used_scorer(spec) for on in (True, False))
    assert shared.path.startswith("shared prefixes") and shared.stats.shared_pairs > 100
    assert full.path == prefix.NO_SHARING
    verdicts = {on: [(c["id"], c["verdict"], c.get("perturbed"), c.get("minimal"))
                     for r in runs[on].results for c in r.to_json()["cases"]] for on in (True, False)}
    assert verdicts[True] == verdicts[False]
    assert [r.outcome for r in runs[True].results] == [r.outcome for r in runs[False].results]
    assert sum(1 for *_, minimal in verdicts[True] if minimal) >= 5  # the suites do shrink counterfactuals here
    common = shared.memo.keys() & full.memo.keys()
    assert max(abs(shared.memo[p][k] - full.memo[p][k]) for p in common for k in full.memo[p]) <= 1e-4


def test_replays_go_through_shared_prefixes_too(rms: dict[str, Path], share_everything: None) -> None:
    model = load_model(f"hf:{rms['llama-right']}")
    scorer = Scorer(model)
    pairs = related_pairs()
    first = scorer.score(pairs)
    again = scorer.replay(pairs)
    assert scorer.stats.shared_pairs == 2 * len(pairs)
    assert max(abs(first[p]["score"] - s["score"]) for p, s in zip(pairs, again)) <= 1e-4


def later_pairs() -> list[Pair]:
    """Pairs of :data:`CONVERSATION` a later call sends (a shrink round, a replay): new responses to the same prompt."""
    return [Pair(CONVERSATION, "Another answer entirely, about the trains of the north."),
            Pair(CONVERSATION, RESPONSE[:40] + " and then the weather.")]


@pytest.mark.parametrize("name", ["hf llama-right", "hf qwen-left", "dpo llama-no-gen", "dpo qwen"])
@pytest.mark.parametrize("kept", [True, False])
def test_a_later_call_starts_from_the_kept_prompt(rms: dict[str, Path], lms: dict[str, Path], name: str, kept: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A prompt scored in one call is not computed again in the next (each a single pair here, which alone would
    go to a full pass); with no room to keep it in, it is, and the scores are the same either way."""
    if not kept:
        monkeypatch.setattr(prefix, "KEPT_TOKENS", 0)
    kind, which = name.split()
    model = load_model(dpo_spec(lms, which) if kind == "dpo" else f"hf:{rms[which]}")
    scorer, full = Scorer(model), Scorer(model, prefix_sharing=False)
    scorer.score(related_pairs()[:-2])  # responses that share a head: the kept prefix runs past the prompt
    ids = model.token_ids(later_pairs())
    prompt = len(os.path.commonprefix(ids))
    assert prompt >= 2 * prefix.MIN_PREFIX
    for pair, tokens in zip(later_pairs(), ids):
        before = scorer.stats.computed_tokens
        got, want = scorer.score([pair])[pair], full.score([pair])[pair]
        computed = scorer.stats.computed_tokens - before
        assert max(abs(got[k] - want[k]) for k in want) <= 1e-4
        assert computed <= len(tokens) - prompt + 1 if kept else computed == len(tokens)
    assert (scorer.stats.shared_pairs == len(related_pairs())) is kept
    assert (scorer.sharing.kept.used > 0) is kept


def test_kept_prefixes_are_found_by_their_head_and_dropped_least_recently_used_first() -> None:
    class State:
        def head(self, length: int) -> tuple[Any, int]:
            return self, length

    kept = prefix.KeptPrefixes(budget=9, key=2)
    a, b, c = State(), State(), State()
    kept.add((1, 2, 3, 4), a)
    kept.add((1, 2, 9), b)
    kept.add((7,), State())  # shorter than the key: not kept
    kept.add((8,) * 10, State())  # more than the budget: not kept
    assert kept.find([1, 2, 3, 4, 5], 10) == (a, 4)
    assert kept.find([1, 2, 3, 7], 10) == ((a, 3), 3)  # the common head of a longer kept prefix
    assert kept.find([1, 2, 3, 4, 5], 3) == ((a, 3), 3)  # never past the limit
    assert kept.find([1, 5, 3], 10) == (None, 0)  # shares fewer tokens than the key
    kept.add((5, 6, 7), c)  # 10 tokens, over the budget: b, the least recently used, goes
    assert kept.find([1, 2, 9, 9], 10) == ((a, 2), 2) and kept.find([5, 6, 7, 0], 9) == (c, 3)
    assert kept.used == 7 and len(kept.entries) == 2
    many = prefix.KeptPrefixes(budget=10**6, key=2)
    states = {i: State() for i in range(1, 30)}
    for i, state in states.items():  # all share a long head (a system prompt), as a model's template may add
        many.add((0, 0, 0, 0, i, i, 3), state)
    assert many.find([0, 0, 0, 0, 5, 5, 3, 1], 20) == (states[5], 7)
    assert many.find([0, 0, 0, 0, 28, 6], 20) == ((states[28], 5), 5)  # the few most recent are compared past the index
    assert many.find([0, 0, 0, 0, 99], 20)[1] == 4


# -- dpo: both models from shared prefixes -------------------------------------------------------


@pytest.mark.parametrize("policy,span", [("llama-no-gen", "trl"), ("llama-no-gen", "content"), ("qwen", "trl")])
def test_dpo_shared_log_probabilities_equal_full_passes(lms: dict[str, Path], policy: str, span: str) -> None:
    model = load_model(dpo_spec(lms, policy, span))
    pairs = related_pairs()
    shared, full = Scorer(model), Scorer(model, prefix_sharing=False)
    got, want = shared.score(pairs), full.score(pairs)
    assert all(got[p].keys() == want[p].keys() == {"score", "policy_logp", "reference_logp"} for p in pairs)
    assert max(abs(got[p][k] - want[p][k]) for p in pairs for k in want[p]) <= 1e-4
    assert len({round(want[p]["score"], 3) for p in pairs}) == len(pairs)  # the pairs do score apart
    assert shared.path.startswith("shared prefixes") and "probe of 8 pairs matched" in shared.path
    assert shared.stats.shared_pairs == len(pairs) - 1  # all but the other prompt's pair
    assert shared.stats.computed_tokens * 3 < shared.stats.tokens
    assert full.path == prefix.NO_SHARING and model.fingerprint == load_model(dpo_spec(lms, policy, span)).fingerprint


def test_dpo_spans_differ_the_same_way_on_both_paths(lms: dict[str, Path]) -> None:
    """Without a generation prompt span=trl counts the role header and span=content does not, on either path."""
    pairs = related_pairs()[:4]
    scores = {(span, on): Scorer(load_model(dpo_spec(lms, "llama-no-gen", span)), prefix_sharing=on).score(pairs)
              for span in ("trl", "content") for on in (True, False)}
    for on in (True, False):
        assert all(abs(scores["trl", on][p]["score"] - scores["content", on][p]["score"]) > 1e-3 for p in pairs)


def test_dpo_probe_mismatch_falls_back_and_says_why(lms: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model(dpo_spec(lms, "llama"))
    logps = Decoder.logps

    def off(self: Decoder, *args: Any, keep: bool = False) -> Any:
        found, kvs = logps(self, *args, keep=keep)
        return [[x + 1e-3 for x in row] for row in found], kvs

    monkeypatch.setattr(Decoder, "logps", off)
    pairs = related_pairs()
    scorer = Scorer(model)
    got = scorer.score(pairs)
    assert scorer.path.startswith("full forward passes (shared prefixes not used: the probe differs from full passes")
    assert scorer.stats.shared_pairs == 0 and got == Scorer(model, prefix_sharing=False).score(pairs)


def test_dpo_header_names_the_path_and_no_prefix_sharing_turns_it_off(lms: dict[str, Path], tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      share_everything: None) -> None:
    monkeypatch.chdir(tmp_path)
    suite = str(BUILTIN / "verbosity.rmcheck.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main(["run", suite, "--rm", dpo_spec(lms, "llama"), "--no-cache"])
        on = capsys.readouterr().out
        main(["run", suite, "--rm", dpo_spec(lms, "llama"), "--no-cache", "--no-prefix-sharing"])
    assert "path: shared prefixes (each prefix run once" in on
    assert f"path: {prefix.NO_SHARING}" in capsys.readouterr().out


# -- when it is not used ---------------------------------------------------------------------------


def test_encoders_keep_full_passes_and_the_header_says_why(rms: dict[str, Path], share_everything: None) -> None:
    scorer = Scorer(load_model(f"hf:{rms['bert']}"))
    scorer.score(related_pairs())
    assert scorer.path.startswith("full forward passes") and "encoder" in scorer.path
    assert scorer.stats.shared_pairs == 0


def test_a_probe_that_does_not_match_falls_back_to_full_passes(rms: dict[str, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model(f"hf:{rms['llama-right']}")
    rows = Decoder.rows

    def off(self: Decoder, *args: Any, keep: bool = False) -> Any:
        return rows(self, *args, keep=keep) if keep else rows(self, *args) + 1e-3

    monkeypatch.setattr(Decoder, "rows", off)
    pairs = related_pairs()
    scorer = Scorer(model)
    got = scorer.score(pairs)
    want = Scorer(model, prefix_sharing=False).score(pairs)
    assert scorer.path.startswith("full forward passes (shared prefixes not used: the probe differs from full passes")
    assert scorer.stats.shared_pairs == 0 and got == want


def test_cached_scores_do_not_depend_on_the_path(rms: dict[str, Path], tmp_path: Path) -> None:
    model = load_model(f"hf:{rms['llama-right']}")
    pairs = related_pairs()
    cache = ScoreCache(tmp_path / "cache")
    written = Scorer(model, cache=cache).score(pairs)
    reader = Scorer(model, cache=cache, prefix_sharing=False)
    assert reader.score(pairs) == written and reader.stats.cache_hits == len(pairs)


def test_no_prefix_sharing_in_the_cli_and_the_header(rms: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    suite = BUILTIN / "verbosity.rmcheck.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main(["run", str(suite), "--rm", f"hf:{rms['llama-right']}", "--no-cache", "--no-prefix-sharing"])
    assert f"path: {prefix.NO_SHARING}" in capsys.readouterr().out


def test_no_prefix_sharing_under_pytest(rms: dict[str, Path], pytester: pytest.Pytester) -> None:
    pytester.makefile(".rmcheck.yaml", suite=(BUILTIN / "verbosity.rmcheck.yaml").read_text())
    result = pytester.runpytest("-p", "no:cacheprovider", "--rm", f"hf:{rms['llama-right']}", "--rmcheck-no-cache",
                                "--no-prefix-sharing", "-W", "ignore")
    result.stdout.fnmatch_lines([f"scoring *path: {prefix.NO_SHARING}*"])


def test_the_probe_tolerance_is_absolute_for_scores_and_relative_for_long_sums() -> None:
    import torch

    assert tolerance(torch.float32, 3.5) == tolerance(torch.float32, -80.0) == 1e-4  # a head's score
    # a log-probability summed over a long response (dpo:) differs by float32 rounding in proportion to its size
    assert tolerance(torch.float32, -600.0) == pytest.approx(6e-4)
    assert tolerance(torch.bfloat16, -3.0) == pytest.approx(0.06)
