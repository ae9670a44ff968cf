"""Edits as hunks, and the operator registry.

An operator never returns a finished string: it returns a :class:`Change`, the
original text plus a list of non-overlapping :class:`Hunk` edits. Any subset of
the hunks can be applied, which is what lets the shrinker remove them one by one.
"""
from __future__ import annotations

import inspect
import keyword
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence, Union

from ..errors import OperatorError
from ..registry import Registry, refs


@dataclass(frozen=True)
class Hunk:
    """Replace ``text[start:end]`` with ``replacement`` (``start == end`` inserts).

    Hunks that share a non-empty ``tie``, in every text one perturbation edits (prompt turns and
    responses alike), are one edit: the shrinker keeps or removes them together (a name swapped
    everywhere it occurs, never in half the places).
    """

    start: int
    end: int
    replacement: str
    tie: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"bad hunk span {self.start}:{self.end}")


@dataclass(frozen=True)
class Change:
    """An original text and the edits an operator proposes for it.

    Hunks may not overlap; several insertions at one offset apply in the order given.
    """

    original: str
    hunks: tuple[Hunk, ...]
    label: str = ""

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.hunks, key=lambda h: (h.start, h.end)))
        for before, after in zip(ordered, ordered[1:]):
            if after.start < before.end:
                raise ValueError(f"overlapping hunks {before} and {after}")
        if ordered and ordered[-1].end > len(self.original):
            raise ValueError(f"hunk {ordered[-1]} runs past the end of the text")
        object.__setattr__(self, "hunks", ordered)

    def apply(self, keep: Iterable[int] | None = None) -> str:
        """The text with the hunks whose indices are in ``keep`` applied (all by default)."""
        chosen = range(len(self.hunks)) if keep is None else sorted(set(keep))
        out, pos = [], 0
        for i in chosen:
            hunk = self.hunks[i]
            out.append(self.original[pos:hunk.start])
            out.append(hunk.replacement)
            pos = hunk.end
        out.append(self.original[pos:])
        return "".join(out)

    @property
    def text(self) -> str:
        return self.apply()


@dataclass
class OperatorContext:
    """What an operator may look at besides the text it edits.

    ``suite_path`` is the suite file (operators that record answers keep them beside it);
    ``settings`` holds run settings such as ``{"llm": "replay"}`` (see rmcheck.options).
    ``target`` says what the text is: ``"response"``, or ``"prompt"`` for a prompt-side edit (the last
    user turn; any turn, the system message included, for an operator that edits the whole
    conversation), when ``response`` holds the response it is asked with; ``prompts`` are the
    questions of every case of the suite (for operators such as ``swap_prompt``).
    """

    rng: random.Random
    prompt: str = ""
    lexicons: Mapping[str, Sequence[str]] = field(default_factory=dict)
    suite_path: Path | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    target: str = "response"
    response: str = ""
    prompts: Sequence[str] = ()


OperatorResult = Union[Change, Sequence[Change], None]


@dataclass(frozen=True)
class Dose:
    """How an operator's strength follows a dose: dose N sets ``argument`` to ``N * unit``, at most ``most``.

    A count (filler sentences, praise phrases) has ``unit=1``, so dose N is N of them; a rate has the
    operator's default rate as its unit, so dose N is N times as many edits (up to ``most``).
    """

    argument: str
    unit: float = 1
    most: float | None = None

    def value(self, dose: int) -> float:
        value = dose * self.unit if isinstance(self.unit, int) else round(dose * self.unit, 9)
        return value if self.most is None else min(value, self.most)

    def args(self, dose: int) -> dict[str, Any]:
        """The operator arguments that dose ``dose`` sets."""
        return {self.argument: self.value(dose)}

    def ladder(self, bound: int) -> list[int]:
        """Doses 1, 2, 4, ... up to ``bound``, without the doses that ``most`` makes equal to the one before."""
        doses = [1 << k for k in range(bound.bit_length()) if 1 << k <= bound]
        return [d for i, d in enumerate(doses) if i == 0 or self.value(d) != self.value(doses[i - 1])]


class Operator(Protocol):
    def __call__(self, text: str, ctx: OperatorContext, /, **args: Any) -> OperatorResult: ...


#: The built-in operators, each module imported when a suite first names one of its operators.
OPERATORS: Registry[Operator] = Registry("operator", "rmcheck.operators", {
    **refs("rmcheck.perturb.builtin", "pad_with_filler", "truncate_sentences", "markdown_list", "add_flattery",
           "add_hedge", "add_false_certainty", "prepend_refusal", "corrupt_numbers", "whitespace_noise", "typos",
           "swap_lexicon", "replace", "append", "prepend"),
    **refs("rmcheck.perturb.llm_rewrite", "llm_rewrite"),
    **refs("rmcheck.perturb.answers", "master_key", "answer_format"),
    **refs("rmcheck.perturb.code", "code_transform"),
    **refs("rmcheck.perturb.prompt_side", "drop_prompt", "swap_prompt"),
    **refs("rmcheck.process.operators", "corrupt_step", "drop_step", "swap_steps", "duplicate_step", "miracle_step")})
PROMPT = "prompt"
"""The ``target`` of a prompt-side edit: the operator edits the last user turn, and each response is
compared with itself under the original and the edited prompt."""
CONVERSATION = "conversation"
"""The ``target`` of an edit of the whole conversation: the operator edits every turn of the prompt (the
system message included) and every compared response, and each response is compared with its edited
copy under the edited prompt."""
RESPONSES = ("both", "response")
"""Targets that edit every response of a case and nothing else (chosen and rejected, or the one response)."""


def turn_role(index: int) -> str:
    """The role of turn ``index`` of a conversation prompt in an edit of the whole conversation."""
    return f"{PROMPT}[{index}]"


def in_prompt(role: str) -> bool:
    """Whether an edited ``role`` is the prompt (``prompt``) or a turn of it (``prompt[i]``), not a response."""
    return role == PROMPT or role.startswith(f"{PROMPT}[")


def operator(name: str | None = None, *, prompt_only: bool = False, dose: Dose | None = None,
             conversation: bool = False) -> Callable[[Operator], Operator]:
    """Decorator: mark an operator function with what it edits and its strength, without registering it
    (the built-ins are registered by name in :data:`OPERATORS`); see :func:`register_operator`."""
    def wrap(op: Operator) -> Operator:
        if prompt_only:
            setattr(op, "prompt_only", True)
        if conversation:
            setattr(op, "default_target", CONVERSATION)
        if dose is not None:
            if dose.argument not in inspect.signature(op).parameters:
                raise ValueError(f"Dose({dose.argument!r}) names no parameter of operator {name or op.__name__!r}")
            setattr(op, "dose", dose)
        return op

    return wrap


def register_operator(name: str | None = None, *, replace: bool = False, prompt_only: bool = False,
                      dose: Dose | None = None, conversation: bool = False) -> Callable[[Operator], Operator]:
    """Decorator: ``@register_operator("shout")`` makes ``perturb: shout`` usable in suites.

    The function takes ``(text, ctx, **args)`` and returns a :class:`Change`, a list of
    changes (variants), or ``None`` when it does not apply to ``text``. Any operator can edit
    the prompt with ``target: prompt``; ``prompt_only=True`` marks one that only makes sense
    there (``drop_prompt``), so its target is always the prompt. ``dose=Dose("n")`` declares the
    argument that sets the operator's strength, so suites (``dose: [1, 2, 4]``) and ``rmcheck explain``
    can climb it. ``conversation=True`` makes the whole conversation the default target (``swap_lexicon``:
    a name changes everywhere, so the response still answers its question); ``target: response`` then
    limits it to the responses.
    """
    mark = operator(name, prompt_only=prompt_only, dose=dose, conversation=conversation)
    return lambda op: OPERATORS.decorator(name, replace=replace)(mark(op))


def edits_prompts(name: str) -> bool:
    """Whether operator ``name`` only edits prompts (its target is always ``prompt``)."""
    return bool(getattr(OPERATORS.get(name), "prompt_only", False))


def default_target(name: str) -> str:
    """What operator ``name`` edits when a test gives no ``target``: ``prompt``, ``conversation`` or ``both``."""
    return PROMPT if edits_prompts(name) else str(getattr(OPERATORS.get(name), "default_target", "both"))


def dose_of(name: str) -> Dose | None:
    """How operator ``name``'s strength follows a dose, or None when it has no strength."""
    found = getattr(OPERATORS.get(name), "dose", None)
    return found if isinstance(found, Dose) else None


def dosed() -> list[str]:
    """The registered operators with a strength (for messages)."""
    return [n for n in OPERATORS.names() if dose_of(n) is not None]


def get_operator(name: str, *, where: str | None = None) -> Operator:
    op = OPERATORS.get(name)
    if op is None:
        raise OperatorError(
            f"unknown operator {name!r}",
            where=where,
            fix=f"Use one of: {', '.join(OPERATORS.names())}; or register your own with @rmcheck.register_operator in conftest.py",
        )
    return op


def python_names(args: Mapping[str, Any]) -> dict[str, Any]:
    """YAML argument names as Python parameters: a keyword such as ``with`` becomes ``with_``."""
    return {f"{k}_" if keyword.iskeyword(k) else k: v for k, v in args.items()}


def yaml_name(parameter: str) -> str:
    return parameter[:-1] if parameter.endswith("_") and keyword.iskeyword(parameter[:-1]) else parameter


def check_arguments(name: str, args: Mapping[str, Any], *, where: str | None = None) -> None:
    """Raise a clear error for arguments the operator does not accept."""
    op = get_operator(name, where=where)
    args = python_names(args)
    params = list(inspect.signature(op).parameters.values())[2:]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    accepted = {p.name for p in params}
    for key in args:
        if key not in accepted:
            raise OperatorError(
                f"operator {name!r} takes no argument {yaml_name(key)!r}",
                where=where,
                fix=f"Its arguments are: {', '.join(sorted(map(yaml_name, accepted))) or 'none'}",
            )
    for p in params:
        if p.name in args and _scalar(p.annotation) and isinstance(args[p.name], (list, dict)):
            raise OperatorError(
                f"operator {name!r}: argument {yaml_name(p.name)} must be a single value, "
                f"not a {'list' if isinstance(args[p.name], list) else 'mapping'}",
                where=where, fix=f"Write {yaml_name(p.name)}: VALUE")
    missing = [yaml_name(p.name) for p in params if p.default is p.empty and p.name not in args]
    if missing:
        raise OperatorError(
            f"operator {name!r} needs argument(s) {', '.join(missing)}",
            where=where,
            fix=f"Write perturb: {{op: {name}, {missing[0]}: ...}}",
        )


def _scalar(annotation: Any) -> bool:
    """Whether a parameter's annotation names a plain scalar (``str``, ``int | None``, ...)."""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    names = {part.strip() for part in text.split("|")} - {"None"}
    return bool(names) and names <= {"str", "int", "float", "bool"}


def run_operator(name: str, text: str, ctx: OperatorContext, args: Mapping[str, Any]) -> list[Change]:
    """Run an operator and normalise its answer to a list of non-empty changes."""
    result = get_operator(name)(text, ctx, **python_names(args))
    if result is None:
        return []
    changes = [result] if isinstance(result, Change) else list(result)
    for change in changes:
        if not isinstance(change, Change):
            raise OperatorError(f"operator {name!r} returned {type(change).__name__}, not rmcheck.Change")
    return [c for c in changes if c.hunks and c.text != c.original]
