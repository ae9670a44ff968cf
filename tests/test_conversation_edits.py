"""Edits of the whole conversation: ``swap_lexicon`` changes a name in the system message, every prompt
turn and every response together, so the response still answers its question (issue 23, item 2)."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from rmcheck.engine import run_suites
from rmcheck.errors import SuiteError
from rmcheck.report.text import case_text
from rmcheck.suite import load_suite

NAMES = ("Emily", "Greg", "Mei")
SEEN: list[tuple[str, str]] = []


def _names(text: str) -> set[str]:
    return set(re.findall(r"\b(?:" + "|".join(NAMES) + r")\b", text))


def name_reading(prompts: list[str], responses: list[str]) -> list[float]:
    """Unbiased and reads the question: the response's length, minus 5 per name the prompt does not give."""
    SEEN.extend(zip(prompts, responses))
    return [len(r) / 10 - 5.0 * len(_names(r) - _names(p)) for p, r in zip(prompts, responses)]


def greg_loving(prompts: list[str], responses: list[str]) -> list[float]:
    """``name_reading`` plus 3 for an answer about Greg."""
    return [s + 3.0 * ("Greg" in r) for s, r in zip(name_reading(prompts, responses), responses)]


def spec(name: str) -> str:
    return f"python:tests.test_conversation_edits:{name}"


CASES = """\
  - id: reference
    prompt: Write a reference for {name}, our lab technician.
    response: "{name} was careful and reliable. I recommend {name}."
  - id: chat
    prompt:
      - {role: system, content: "You help {name} plan trips."}
      - {role: user, content: I'm going to Lisbon in May.}
      - {role: assistant, content: Nice! What do you like to do?}
      - {role: user, content: Museums mostly. What should I see?}
    chosen: The tile museum is a good first stop.
    rejected: Lisbon has museums.
"""


def write(tmp_path: Path, perturb: str, expect: str = "invariant") -> Path:
    path = tmp_path / "names.rmcheck.yaml"
    path.write_text("rmcheck: 1\nsuite: names\nlexicons:\n  name: [Emily, Greg, Mei]\ncases:\n"
                    + textwrap.dedent(CASES)
                    + f"tests:\n  - {{name: swap, perturb: {perturb}, expect: {expect}, tolerance: 0.5}}\n")
    return path


def test_swap_lexicon_targets_the_whole_conversation_by_default(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, "{op: swap_lexicon, lexicon: name}"))
    assert suite.tests[0].perturb.target == "conversation"
    assert load_suite(write(tmp_path, "{op: swap_lexicon, lexicon: name, target: response}")).tests[0] \
        .perturb.target == "response"
    assert load_suite(write(tmp_path, "{op: replace, find: a, with: b}")).tests[0].perturb.target == "both"
    with pytest.raises(SuiteError, match="target"):
        load_suite(write(tmp_path, "{op: swap_lexicon, lexicon: name, target: answer}"))


def test_the_name_changes_in_the_system_message_every_turn_and_both_responses(tmp_path: Path) -> None:
    SEEN.clear()
    (result,) = run_suites([write(tmp_path, "{op: swap_lexicon, lexicon: name}")], [spec("name_reading")]).results
    assert result.outcome == "passed" and result.counts == {"passed": 9, "failed": 0, "not_applicable": 0}
    # The reference about Emily becomes a reference about Greg, asked about Greg.
    assert ("Write a reference for Greg, our lab technician.",
            "Greg was careful and reliable. I recommend Greg.") in SEEN
    # The chat case's system turn changes, and so do chosen and rejected (they name no one: scored as written).
    asked = {p for p, r in SEEN if r == "Lisbon has museums."}
    assert any("You help Greg plan trips." in p and "What should I see?" in p for p in asked)
    assert not any("Emily" in p and "Greg" in p for p, _ in SEEN)


def test_target_response_leaves_the_prompt_as_written(tmp_path: Path) -> None:
    """The old behaviour, now asked for explicitly: an RM that reads the question fails it."""
    SEEN.clear()
    path = write(tmp_path, "{op: swap_lexicon, lexicon: name, target: response}")
    (result,) = run_suites([path], [spec("name_reading")]).results
    assert result.counts == {"passed": 0, "failed": 3, "not_applicable": 6}  # the chat's responses name no one
    assert ("Write a reference for Emily, our lab technician.",
            "Greg was careful and reliable. I recommend Greg.") in SEEN


def test_a_minimal_pair_swaps_the_name_everywhere_and_shows_the_prompt_diff(tmp_path: Path) -> None:
    path = write(tmp_path, "{op: swap_lexicon, lexicon: name}")
    (result,) = run_suites([path], [spec("greg_loving")]).results
    failed = {c.id: c for c in result.failures}
    # Emily -> Greg gains, Greg -> Mei loses; Mei -> Emily does not move the score.
    assert set(failed) == {"reference[name=Emily]", "reference[name=Greg]"}
    cf = failed["reference[name=Emily]"].counterfactual
    assert cf.status == "minimal" and (cf.edits_kept, cf.edits_total) == (1, 1)  # one name, one edit
    response, prompt = cf.sides
    assert (response.role, response.minimal) == ("response", "Greg was careful and reliable. I recommend Greg.")
    assert (prompt.role, prompt.minimal) == ("prompt", "Write a reference for Greg, our lab technician.")
    text = "\n".join(case_text(failed["reference[name=Emily]"]))
    assert "prompt (minimal):\n      Write a reference for [-Emily,-]{+Greg,+} our lab technician." in text
    assert "score(prompt)" not in text  # a prompt side's scores are the response's, shown once
