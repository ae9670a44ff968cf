"""``llm_rewrite``: an LLM rewrites the response along an instruction; the word diff becomes hunks.

The call goes through the official ``openai`` client to any OpenAI-compatible chat endpoint
(see :mod:`rmcheck.llm` for where base_url, model and key come from). Every answer is
recorded to the suite's cassette, ``<suite dir>/fixtures/cassettes/<suite file stem>/``, so
CI replays it offline (see :mod:`rmcheck.cassette`). The request's ``seed`` is drawn from
``ctx.rng``, which the test's ``seed`` seeds, so a suite's requests are reproducible.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from ..llm import client as llm
from ..llm.cassette import Cassette
from ..errors import OperatorError, RmcheckError
from .base import PROMPT, Change, Hunk, OperatorContext

MAX_VARIANTS = 16
SYSTEM = ("You rewrite text as instructed. Change only what the instruction asks for. Reply with the rewritten "
          "text only: no preamble, no quotes, no tags.")
SYSTEM_PROMPT = "You reword questions. You never answer them: you reply with the reworded question only."
#: One worked example per target (instruction, text, rewrite): small instruct models follow the format from it.
EXAMPLES = {
    "response": ("Replace a few words with synonyms.", "The soup is hot and tasty.", "The soup is warm and delicious."),
    "question": ("Reword the question.", "How do I bake bread at home?",
                 "What is the way to make bread in my own kitchen?"),
}
_TOKENS = re.compile(r"\s+|\S+")
#: The tags around the text in the request, where an answer echoes them (small models often do).
_STRAY_TAG = re.compile(r"^\s*<(?:response|question)>\s*|\s*</(?:response|question)>\s*$")


def llm_rewrite(text: str, ctx: OperatorContext, /, *, instruction: str = "", attribute: str = "",
                direction: str = "more", n: int = 1, temperature: float = 0.7, model: str | None = None,
                base_url: str | None = None) -> list[Change] | None:
    """Asks an LLM for ``n`` rewrites (variants); each one that changed the text becomes a :class:`Change`.

    With ``target: prompt`` the text is the question: the LLM rewords it, and a rewrite of a question
    that is no longer one (a small model answering it instead) is dropped like an unchanged one.
    """
    request = _request(text, ctx, instruction, attribute, direction, n, temperature, model)
    start = ctx.suite_path.parent if ctx.suite_path else Path.cwd()
    where = str(ctx.suite_path) if ctx.suite_path else "llm_rewrite"
    try:
        table = llm.settings_table(start, "llm")
        request["model"] = llm.model_name(model, table, where=where)
        endpoint = llm.endpoint(table, base_url=base_url, where=where)
        cassette = Cassette(cassette_folder(ctx.suite_path), str(ctx.settings.get("llm") or "auto"), endpoint.secrets())
        rewrites = llm.chat(endpoint, cassette, request, _rewrites)
    except RmcheckError as exc:
        raise OperatorError(f"llm_rewrite: {exc.message}", where=exc.where if exc.where != where else None,
                            fix=exc.fix) from None
    usable = [r for r in rewrites if ctx.target != PROMPT or not text.rstrip().endswith("?") or r.rstrip().endswith("?")]
    changes = [Change(text, diff_hunks(text, new)) for new in dict.fromkeys(_keep_edges(text, r) for r in usable)
               if _words(new) != _words(text) and new.strip()]
    return changes or None


def cassette_folder(suite_path: Path | None) -> Path:
    """``<suite dir>/fixtures/cassettes/<suite file stem>`` (the working directory without a suite)."""
    if suite_path is None:
        return Path.cwd() / "fixtures" / "cassettes" / "llm_rewrite"
    stem = suite_path.name.removesuffix(".yaml").removesuffix(".rmcheck")
    return suite_path.parent / "fixtures" / "cassettes" / stem


def diff_hunks(original: str, rewrite: str) -> tuple[Hunk, ...]:
    """Word-level edits that turn ``original`` into ``rewrite``, as hunks on ``original``.

    Edits separated only by white space are merged into one hunk, so every hunk is a run of
    words replaced, inserted or deleted; applying all of them gives ``rewrite`` exactly.
    """
    old, new = _TOKENS.findall(original), _TOKENS.findall(rewrite)
    offsets = [0]
    for token in old:
        offsets.append(offsets[-1] + len(token))
    groups: list[list[int]] = []  # [i1, i2, j1, j2] spans of merged non-equal opcodes
    gap_is_space = False
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            gap_is_space = all(t.isspace() for t in old[i1:i2])
        elif groups and gap_is_space:  # opcodes alternate, so the last equal run is the whole gap
            groups[-1][1], groups[-1][3] = i2, j2
        else:
            groups.append([i1, i2, j1, j2])
    return tuple(Hunk(offsets[i1], offsets[i2], "".join(new[j1:j2])) for i1, i2, j1, j2 in groups)


def _request(text: str, ctx: OperatorContext, instruction: str, attribute: str, direction: str, n: int,
             temperature: float, model: str | None) -> dict[str, Any]:
    if direction not in ("more", "less"):
        raise OperatorError(f"llm_rewrite: direction {direction!r} is neither 'more' nor 'less'",
                            fix="Write direction: more (the default) or direction: less")
    if not instruction and not attribute:
        raise OperatorError("llm_rewrite needs an instruction or an attribute",
                            fix="Add instruction: 'Make the response ...' or attribute: NAME (with direction: more|less)")
    if not isinstance(n, int) or not 1 <= n <= MAX_VARIANTS:
        raise OperatorError(f"llm_rewrite: n must be a whole number from 1 to {MAX_VARIANTS}, not {n!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise OperatorError(f"llm_rewrite: temperature must be a number from 0 to 2, not {temperature!r}")
    what = "question" if ctx.target == PROMPT else "response"
    task = instruction or (f"Rewrite the question with {direction} {attribute}, and keep its meaning."
                           if ctx.target == PROMPT else
                           f"Rewrite the response with {direction} {attribute}, and change nothing else.")
    if instruction and attribute:
        task += f" (Attribute: {direction} {attribute}.)"
    system = SYSTEM_PROMPT if ctx.target == PROMPT else f"{SYSTEM} The text answers the question: {ctx.prompt}"
    example, before, after = EXAMPLES[what]
    ask = lambda task, text: f"Instruction: {task}\n<{what}>\n{text}\n</{what}>"  # noqa: E731
    messages = [{"role": "system", "content": system}, {"role": "user", "content": ask(example, before)},
                {"role": "assistant", "content": after}, {"role": "user", "content": ask(task, text)}]
    return {"model": model, "messages": messages,
            "temperature": float(temperature), "seed": ctx.rng.randrange(2**31), "n": n}


def _rewrites(answer: dict[str, Any]) -> list[str]:
    texts = llm.contents(answer)
    if not texts:
        raise RmcheckError(f"the LLM answered with no choices: {str(answer)[:200]}",
                           fix="Check that the endpoint serves chat completions")
    return [_STRAY_TAG.sub("", t) for t in texts]


def _keep_edges(original: str, rewrite: str) -> str:
    """The rewrite with the original's leading and trailing white space (LLMs strip it)."""
    lead = original[:len(original) - len(original.lstrip())]
    trail = original[len(original.rstrip()):]
    return lead + rewrite.strip() + trail


def _words(text: str) -> str:
    return " ".join(text.split())
