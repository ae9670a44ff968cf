"""``rmcheck explain``: counterfactuals, semifactuals, ties and minimal counterfactuals of comparisons."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from rmcheck.cli import main
from rmcheck.contrastive import explain, read_comparisons
from rmcheck.stats import outcome
from tests import planted_rms

HH = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"
PROMPT = "What is the capital of Australia?"
CHOSEN = ("The capital of Australia is Canberra, not Sydney as many people assume. Canberra was chosen in 1908 as a "
          "compromise between Sydney and Melbourne, the two largest rival cities. Parliament has met there since 1927.")
REJECTED = ("Sydney is the capital of Australia. It is the largest and best known city in the country, home to the "
            "famous opera house, the harbour bridge and beautiful beaches that attract millions of visitors.")
CONTRACT = {"attribute", "operator", "counterfactuals", "semifactuals", "minimal"}

#: A python: RM whose score is the number of "x" characters: appending text that has none changes nothing.
TIE_RMS = '''
def exes(prompts, responses):
    return [float(r.count("x")) for r in responses]
'''


def explain_cli(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "explain.json"
    assert main(["explain", *args, "--json", str(out), "--no-cache"]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def attributes(doc: dict[str, Any], index: int = 0) -> dict[str, dict[str, Any]]:
    return {a["operator"]: a for a in doc["comparisons"][index]["attributes"]}


def score(rm: str, prompt: Any, texts: list[str]) -> list[float]:
    return getattr(planted_rms, rm)([prompt] * len(texts), texts)


def test_length_loving_rm_has_a_verbosity_counterfactual_and_the_clean_rm_none(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    found = {}
    for rm in ("clean", "length_loving"):
        doc = explain_cli(tmp_path, "--rm", f"python:tests.planted_rms:{rm}", "--prompt", PROMPT,
                          "--chosen", CHOSEN, "--rejected", REJECTED)
        for entry in doc["comparisons"][0]["attributes"]:
            assert CONTRACT <= set(entry) and isinstance(entry["counterfactuals"], int)
        found[rm] = doc
    captured = capsys.readouterr()
    out = captured.out
    assert "explaining 1 comparison(s)" in captured.err  # progress on stderr, plain lines off a terminal
    assert "minimal counterfactuals (fewest edits that still flip, replayed):" in out
    assert "no counterfactual: no perturbation flipped the preference" in out
    clean, loving = found["clean"], found["length_loving"]
    assert clean["comparisons"][0]["preferred"] == loving["comparisons"][0]["preferred"] == "chosen"
    assert all(a["counterfactuals"] == 0 and a["minimal"] is None and a["flip_dose"] is None
               for a in clean["comparisons"][0]["attributes"])
    verbosity = [a for a in loving["comparisons"][0]["attributes"] if a["attribute"] == "verbosity"]
    flipped = {a["operator"]: a for a in verbosity if a["counterfactuals"]}
    assert list(flipped) == ["pad_with_filler", "truncate_sentences"]
    # truncating the preferred answer flips at once; padding the other one takes several filler sentences
    assert flipped["truncate_sentences"]["flip_dose"] == 1 and flipped["pad_with_filler"]["flip_dose"] > 1
    assert flipped["pad_with_filler"]["minimal"]["target"] == "rejected"
    minimal = flipped["truncate_sentences"]["minimal"]
    assert minimal["status"] == "minimal" and minimal["target"] == "chosen"
    # the replayed scores are the model's own scores of the minimal texts, and they flip the preference
    chosen, rejected = score("length_loving", PROMPT, [minimal["texts"]["chosen"], minimal["texts"]["rejected"]])
    assert minimal["scores"] == {"chosen": chosen, "rejected": rejected} and chosen < rejected
    assert minimal["texts"]["rejected"] == REJECTED and minimal["texts"]["chosen"] != CHOSEN
    # the clean RM survives the same truncation (a semifactual: it closed more than half of the margin)
    truncate = attributes(clean)["truncate_sentences"]
    assert truncate["semifactuals"] == 1 and truncate["counterfactuals"] == 0


def test_minimal_counterfactual_is_one_minimal_and_every_margin_is_the_models(tmp_path: Path) -> None:
    prompt, chosen = PROMPT, "Canberra is the capital."
    rejected = "Sydney is the capital of Australia, as everybody knows from the opera house and the bridge."
    doc = explain_cli(tmp_path, "--rm", "python:tests.planted_rms:length_loving", "--prompt", prompt,
                      "--chosen", chosen, "--rejected", rejected, "--attributes", "verbosity")
    (comparison,) = doc["comparisons"]
    before = comparison["margin"]
    assert before == pytest.approx(float.__sub__(*score("length_loving", prompt, [chosen, rejected])))
    assert comparison["preferred"] == "rejected"  # explained relative to the RM's own preference
    pad = attributes(doc)["pad_with_filler"]
    assert {a["attribute"] for a in comparison["attributes"]} == {"verbosity"}
    for entry in pad["perturbed"]:
        texts = {"chosen": chosen, "rejected": rejected, entry["target"]: entry["perturbed"]}
        after = float.__sub__(*score("length_loving", prompt, [texts["chosen"], texts["rejected"]]))
        assert entry["margin"] == pytest.approx(after) and entry["outcome"] == outcome(before, after)
    minimal = pad["minimal"]
    assert minimal["target"] == "chosen" and 1 <= minimal["edits_kept"] < minimal["edits_total"] == pad["flip_dose"]
    # 1-minimal: dropping any one kept filler sentence loses the flip
    kept = minimal["texts"]["chosen"].removeprefix(chosen).split(". ")
    assert len(kept) == minimal["edits_kept"]
    for drop in range(len(kept)):
        fewer = chosen + ". ".join(k for i, k in enumerate(kept) if i != drop)
        assert float.__sub__(*score("length_loving", prompt, [fewer, rejected])) < 0


def test_a_tie_after_perturbation_is_counted_as_a_tie(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tie_rms.py").write_text(TIE_RMS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    # rejected is ahead by one "x"; prepending a refusal (no "x") changes nothing; truncating rejected to its
    # first sentence drops its lead (a tie), truncating chosen changes nothing
    report = explain("python:tie_rms:exes", prompt="p", chosen="A box. Done.", rejected="An ox. Then x.",
                     attributes=["truncate_sentences", "prepend_refusal"])
    (e,) = report.explanations
    assert e.preferred == "rejected"
    by = {a.probe.operator: a for a in e.attributes}
    truncate = by["truncate_sentences"]
    assert [(s.perturbed.target, s.outcome) for s in truncate.scored] == [("chosen", "small"), ("rejected", "tie")]
    assert truncate.counterfactuals == 0 and truncate.minimal is None and truncate.count("semifactual") == 0
    assert {s.outcome for s in by["prepend_refusal"].scored} == {"small"}


def test_semifactual_margin_is_an_option(tmp_path: Path) -> None:
    args = ("--rm", "python:tests.planted_rms:clean", "--prompt", PROMPT, "--chosen", CHOSEN, "--rejected", REJECTED,
            "--attributes", "truncate_sentences")
    loose = attributes(explain_cli(tmp_path, *args))["truncate_sentences"]
    strict = attributes(explain_cli(tmp_path, *args, "--semifactual-margin", "0.95"))["truncate_sentences"]
    assert (loose["semifactuals"], loose["small_nonflips"]) == (1, 1)
    assert (strict["semifactuals"], strict["small_nonflips"]) == (0, 2)


@pytest.mark.parametrize("args, message", [
    ((), "give one comparison or one file"),
    (("--prompt", "p", "--chosen", "a"), "a comparison needs both responses"),
    (("--prompt", "p", "--chosen", "a", "--rejected", "b", "--attributes", "charm"), "unknown attribute or operator 'charm'"),
    (("--prompt", "p", "--chosen", "a", "--rejected", "b", "--semifactual-margin", "2"), "not in (0, 1]"),
    (("--file", "missing.jsonl"), "does not exist"),
])
def test_usage_errors_are_one_line_with_a_fix(args: tuple[str, ...], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--rm", "python:tests.planted_rms:clean", "--no-cache", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_dataset_mode_on_50_hh_rlhf_pairs_matches_a_direct_computation(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    if not HH.is_file():
        pytest.skip(f"HH-RLHF data not found at {HH} (it ships beside the project in ../shared/data)")
    rm = "length_loving"
    doc = explain_cli(tmp_path, "--rm", f"python:tests.planted_rms:{rm}", "--file", str(HH), "--format", "hh-rlhf",
                      "--limit", "50")
    assert "CF coverage (share with at least one counterfactual)" in capsys.readouterr().out
    comparisons, summary = doc["comparisons"], doc["summary"]
    assert len(comparisons) == summary["comparisons"] == 50
    rows = read_comparisons(HH, "hh-rlhf", 50)
    # every margin is the model's own, recomputed here from the texts in the JSON
    for c, row in zip(comparisons, rows):
        chosen, rejected = score(rm, row.prompt, [row.chosen, row.rejected])
        assert c["margin"] == pytest.approx(chosen - rejected)
        for a in c["attributes"]:
            for p in a["perturbed"]:
                texts = {"chosen": row.chosen, "rejected": row.rejected, p["target"]: p["perturbed"]}
                after = float.__sub__(*score(rm, row.prompt, [texts["chosen"], texts["rejected"]]))
                assert p["margin"] == pytest.approx(after) and p["outcome"] == outcome(c["margin"], after)
            assert a["counterfactuals"] == sum(p["outcome"] == "counterfactual" for p in a["perturbed"])
    preferring = [c for c in comparisons if c["preferred"] != "tie"]
    covered = [any(a["counterfactuals"] for a in c["attributes"]) for c in preferring]
    assert summary["coverage"] == pytest.approx(statistics.fmean(covered))
    low, high = summary["coverage_ci"]
    assert low <= summary["coverage"] <= high
    for s in summary["attributes"]:
        applied = [a for c in preferring for a in c["attributes"]
                   if (a["attribute"], a["operator"]) == (s["attribute"], s["operator"]) and a["perturbed"]]
        assert s["comparisons"] == len(applied)
        if applied:
            flags = [bool(a["counterfactuals"]) for a in applied]
            assert s["cf_rate"] == pytest.approx(statistics.fmean(flags))
            assert s["ci"][0] <= s["cf_rate"] <= s["ci"][1]
            assert s["counterfactuals"] == sum(a["counterfactuals"] for a in applied)
            example = s["representative"]["counterfactual"]
            assert (example is None) == (not any(flags))
    rates = {(s["attribute"], s["operator"]): s["cf_rate"] for s in summary["attributes"]}
    assert rates[("verbosity", "pad_with_filler")] > 0  # padding the shorter response flips a length-loving RM


def test_llm_attributes_are_recorded_to_cassettes_then_replayed_offline(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from fixtures.scripted_server import ScriptedServer, rewriter_and_judge

    for name in ("CI", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    args = dict(prompt=PROMPT, chosen="Canberra is the capital.", attributes=["typos"], llm_attributes=["verbosity"],
                rejected="Sydney is the capital of Australia, as everybody knows from the opera house and the bridge.")
    with ScriptedServer(rewriter_and_judge) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        monkeypatch.setenv("OPENAI_MODEL", "scripted")
        first = explain("python:tests.planted_rms:length_loving", **args).to_json()["comparisons"]
        calls = len(server.calls("/v1/chat/completions"))
    entries = [(a["attribute"], a["operator"], a["direction"]) for a in first[0]["attributes"]]
    assert entries == [("robustness", "typos", "less"), ("verbosity", "llm_rewrite", "more"),
                       ("verbosity", "llm_rewrite", "less")]
    more = first[0]["attributes"][1]
    # the scripted LLM lengthens the short chosen answer: the length-loving RM's preference flips
    assert more["counterfactuals"] >= 1 and more["minimal"]["target"] == "chosen"
    assert calls == 4 and len(list((tmp_path / "fixtures" / "cassettes" / "llm_rewrite").glob("*.json"))) == 4
    monkeypatch.setenv("CI", "true")  # the server is gone: only the cassettes can answer
    assert explain("python:tests.planted_rms:length_loving", **args).to_json()["comparisons"] == first
