"""Prompt-side operators: the response stays, the question changes (length and prompt studies, 2025).

Reward models have been found to keep about 60% of their accuracy with the prompt removed or
replaced, i.e. they score responses largely without reading the question. These operators edit
the last user turn; the expectation kind then compares each response with itself under the
original and the edited prompt (a mismatched or missing question must score ``lower``).
"""
from __future__ import annotations

from .base import Change, Hunk, OperatorContext, operator


@operator(prompt_only=True)
def drop_prompt(text: str, ctx: OperatorContext, /) -> Change | None:
    """The last user turn becomes empty (one hunk). Not applicable to an empty question."""
    return Change(text, (Hunk(0, len(text), ""),), "drop_prompt") if text.strip() else None


@operator(prompt_only=True)
def swap_prompt(text: str, ctx: OperatorContext, /) -> Change | None:
    """The question of another case of the same suite, chosen with the test's seed (one hunk).

    Not applicable when the suite has no other question.
    """
    others = sorted({q for q in ctx.prompts if q.strip() and q.strip() != text.strip()})
    if not others:
        return None
    return Change(text, (Hunk(0, len(text), ctx.rng.choice(others)),), "swap_prompt")
