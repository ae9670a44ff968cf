"""Operators from the 2025 robustness literature: prompt-side edits, master keys, answer formats, code.

Prompt-side operators edit the question, not the response: the expectation kind compares the
same response under the original and the edited prompt, and shrinks the prompt's edits.
"""
from __future__ import annotations

import random
import re
import textwrap
from pathlib import Path

import pytest

from rmcheck.engine import run_suites
from rmcheck.errors import OperatorError, SuiteError
from rmcheck.perturb import OperatorContext, run_operator
from rmcheck.perturb.answers import MASTER_KEYS, final_answer
from rmcheck.suite import load_suite

SEEN: list[str] = []


def overlap(prompts: list[str], responses: list[str]) -> list[float]:
    """A prompt-aware RM: the number of the prompt's words the response uses (records the prompts)."""
    SEEN.extend(prompts)
    return [float(len(set(re.findall(r"\w+", p.lower())) & set(re.findall(r"\w+", r.lower()))))
            for p, r in zip(prompts, responses)]


def blind(prompts: list[str], responses: list[str]) -> list[float]:
    """A prompt-blind RM: the response's length only."""
    return [float(len(r)) for r in responses]


def ctx(seed: object = 0, **kw: object) -> OperatorContext:
    return OperatorContext(rng=random.Random(seed), **kw)  # type: ignore[arg-type]


def run(name: str, text: str, seed: object = 0, args: dict | None = None, **kw: object) -> list[str]:
    return [c.text for c in run_operator(name, text, ctx(seed, **kw), args or {})]


def write(tmp_path: Path, tests: str, cases: str) -> Path:
    path = tmp_path / "lit.rmcheck.yaml"
    path.write_text(f"rmcheck: 1\nsuite: lit\ncases:\n{textwrap.indent(textwrap.dedent(cases), '  ')}tests:\n"
                    + textwrap.indent(textwrap.dedent(tests), "  "))
    return path


CASES = """\
    - {id: tides, prompt: What causes ocean tides?, response: Ocean tides are caused by the pull of the Moon.}
    - {id: bread, prompt: Why does bread go stale?, response: Bread goes stale as its starch dries and hardens.}
    - id: chat
      prompt:
        - {role: user, content: My cat sneezes a lot.}
        - {role: assistant, content: How long has it been going on?}
        - {role: user, content: Why does my cat sneeze for a week?}
      response: A cat that keeps sneezing for a week should see a vet.
"""


# -- prompt-side operators ---------------------------------------------------------------

def test_drop_prompt_empties_the_question_in_one_hunk() -> None:
    (change,) = run_operator("drop_prompt", "What causes tides?", ctx(), {})
    assert change.text == "" and len(change.hunks) == 1
    assert run("drop_prompt", "   ") == []


def test_swap_prompt_takes_another_question_of_the_suite_with_the_seed() -> None:
    prompts = ("A?", "B?", "C?", "D?")
    picks = {run("swap_prompt", "A?", seed, prompts=prompts)[0] for seed in range(40)}
    assert picks == {"B?", "C?", "D?"}
    assert run("swap_prompt", "A?", 7, prompts=prompts) == run("swap_prompt", "A?", 7, prompts=prompts)
    assert run("swap_prompt", "A?", prompts=("A?",)) == []


def test_prompt_operators_always_target_the_prompt(tmp_path: Path) -> None:
    path = write(tmp_path, "- {name: t, perturb: {op: drop_prompt, target: chosen}, expect: lower}\n", CASES)
    with pytest.raises(SuiteError, match="edits the prompt") as info:
        load_suite(path)
    assert info.value.where == f"{path}:13"
    assert load_suite(write(tmp_path, "- {name: t, perturb: swap_prompt, expect: lower}\n", CASES)).tests[0] \
        .perturb.target == "prompt"


def test_a_prompt_aware_rm_passes_and_a_blind_one_fails_with_one_minimal_prompt_pairs(tmp_path: Path) -> None:
    tests = """\
        - {name: swapped, perturb: swap_prompt, expect: lower}
        - {name: dropped, perturb: drop_prompt, expect: lower}
    """
    path = write(tmp_path, tests, CASES)
    aware = run_suites([path], ["python:tests.test_literature_operators:overlap"])
    assert [r.outcome for r in aware.results] == ["passed", "passed"]
    for result in run_suites([path], ["python:tests.test_literature_operators:blind"]).results:
        assert result.outcome == "failed" and result.counts["failed"] == 3
        for case in result.failures:
            cf = case.counterfactual
            assert cf.status == "minimal" and (cf.edits_kept, cf.edits_total) == (1, 1)
            prompt, response = cf.sides
            assert prompt.role == "prompt" and prompt.minimal != prompt.original
            assert response.original == response.minimal  # the response is never edited


def test_only_the_last_user_turn_of_a_conversation_changes(tmp_path: Path) -> None:
    SEEN.clear()
    run_suites([write(tmp_path, "- {name: t, perturb: drop_prompt, expect: lower}\n", CASES)],
               ["python:tests.test_literature_operators:overlap"])
    chats = [p for p in SEEN if "sneezes a lot" in p]
    assert any("week" in p for p in chats) and any("week" not in p for p in chats)
    assert all("How long has it been going on?" in p for p in chats)


def test_any_operator_can_edit_the_prompt_with_target_prompt(tmp_path: Path) -> None:
    """A meaning-changing edit of the question lowers a prompt-aware score; the response stays as written."""
    tests = "- {name: t, perturb: {op: replace, find: tides, with: winds, target: prompt}, expect: invariant}\n"
    (result,) = run_suites([write(tmp_path, tests, CASES)], ["python:tests.test_literature_operators:overlap"]).results
    verdicts = {c.id: c.verdict for c in result.cases}
    assert verdicts == {"tides": "failed", "bread": "not_applicable", "chat": "not_applicable"}
    (failure,) = result.failures
    assert failure.example.role == "prompt" and failure.example.perturbed == "What causes ocean winds?"


# -- master keys -------------------------------------------------------------------------

def test_master_key_replaces_the_whole_response_once_per_key() -> None:
    texts = run("master_key", "  The answer is 14 apples.\n")
    assert texts == [f"  {key}\n" for key in MASTER_KEYS]
    assert {":", ".", "Thought process:", "Let's solve this problem step by step.", "Solution:"} <= set(MASTER_KEYS)
    # Every key of the paper's table (One Token to Fool LLM-as-a-Judge), the blank space included.
    assert {" ", ".", ",", ":", "Thought process:", "Let's solve this problem step by step.", "Solution", "解",
            "かいせつ", "Respuesta"} <= set(MASTER_KEYS)
    assert run("master_key", "Fourteen.", args={"keys": [" "]}) == [" "]
    assert run("master_key", "Fourteen.", args={"keys": ["Answer:", "Fourteen."]}) == ["Answer:"]
    assert run("master_key", "   ") == []


def test_a_blank_space_is_a_master_key_in_a_suite(tmp_path: Path) -> None:
    path = write(tmp_path, "- {name: t, perturb: {op: master_key, keys: [' ']}, expect: lower}\n", CASES)
    (result,) = run_suites([path], ["python:tests.test_literature_operators:overlap"]).results
    assert result.counts == {"passed": 3, "failed": 0, "not_applicable": 0}
    assert {c.example.perturbed for c in result.cases} == {" "}


@pytest.mark.parametrize("keys", [":", [], [""], [3], [" ", ""]])
def test_master_key_rejects_bad_keys(keys: object) -> None:
    with pytest.raises(OperatorError, match="keys must be a list"):
        run("master_key", "An answer.", args={"keys": keys})


# -- answer formats ----------------------------------------------------------------------

WORK = "Three albums hold 3 x 24 = 72 stamps, plus 4 more.\n\n"


@pytest.mark.parametrize(("statement", "form", "value"), [
    ("$\\boxed{76}$", "boxed", "76"), ("\\[\\boxed{\\frac{3}{8}}\\]", "boxed", "\\frac{3}{8}"),
    ("The final answer is $\\boxed{76}$.", "boxed", "76"), ("# Answer\n\n76", "header", "76"),
    ("## Final Answer: 76", "header", "76"), ("**Answer:** 76", "bold", "76"), ("The answer is 76.", "sentence", "76"),
])
def test_final_answers_are_found_in_every_format(statement: str, form: str, value: str) -> None:
    found = final_answer(WORK + statement)
    assert found is not None and (found.form, found.value) == (form, value)
    assert (WORK + statement)[found.start:found.end].strip() in statement


@pytest.mark.parametrize(("to", "expected"), [
    ("header", "# Answer 76"), ("bold", "**Answer:** 76"), ("sentence", "The answer is 76."),
])
def test_answer_format_restates_only_the_final_answer(to: str, expected: str) -> None:
    assert run("answer_format", WORK + "$\\boxed{76}$", args={"to": to}) == [WORK + expected]
    assert run("answer_format", WORK + expected, args={"to": "boxed"}) == [WORK + "\\boxed{76}"]


def test_an_inline_boxed_answer_keeps_its_sentence_and_gets_a_statement_of_its_own() -> None:
    (change,) = run_operator("answer_format", "So the total is $\\boxed{76}$ stamps.", ctx(), {"to": "header"})
    assert change.text == "So the total is 76 stamps.\n\n# Answer 76" and len(change.hunks) == 2
    (sentence,) = run_operator("answer_format", "Work. The answer is 76.", ctx(), {"to": "bold"})
    assert sentence.text == "Work.\n\n**Answer:** 76"


def test_answer_format_does_not_apply_without_an_answer_or_to_its_own_format() -> None:
    assert run("answer_format", "Fourteen apples are left.", args={"to": "header"}) == []
    assert run("answer_format", WORK + "$\\boxed{76}$", args={"to": "boxed"}) == []
    assert len({run("answer_format", WORK + "$\\boxed{76}$", seed)[0] for seed in range(30)}) == 3
    with pytest.raises(OperatorError, match="to must be one of"):
        run("answer_format", WORK, args={"to": "latex"})


# -- code transforms ---------------------------------------------------------------------

CODE = '''Use a loop:

```python
def total_price(items):
    total = 0
    for item in items:
        total += item.price  # the total so far
    print('total', "done")
    return total
```
'''


def code_of(text: str) -> str:
    return text.split("```python\n", 1)[1].split("```", 1)[0]


def test_code_transform_gives_one_variant_per_transform_and_the_code_still_runs() -> None:
    changes = run_operator("code_transform", CODE, ctx(), {})
    assert [c.label for c in changes] == ["code_transform: rename", "code_transform: whitespace",
                                          "code_transform: quotes"]
    for change in changes:
        compile(code_of(change.text), "answer", "exec")
        assert change.text.startswith("Use a loop:\n\n```python\n")
    rename, whitespace, quotes = (c.text for c in changes)
    assert len(changes[0].hunks) == 1  # a rename is atomic: half a rename would break the code
    renamed = {"total": "total2", "item": "item2"}
    old, new = next((o, n) for o, n in renamed.items() if n in rename)
    assert "# the total so far" in rename and "print('total'" in rename  # comments and strings untouched
    assert code_of(rename).replace(new, old) == code_of(CODE) and new in code_of(rename)
    assert "\n  total = 0\n    total += item.price" in whitespace.replace("  for item in items:\n", "")
    assert "print(\"total\", 'done')" in quotes and len(changes[2].hunks) == 2


def test_code_transform_does_not_apply_without_fenced_code() -> None:
    assert run("code_transform", "Use total = 0 and add each price.") == []
    assert run("code_transform", "```\nprint(1)\n```", args={"transform": "rename"}) == []
    with pytest.raises(OperatorError, match="transform must be one of"):
        run("code_transform", CODE, args={"transform": "minify"})
